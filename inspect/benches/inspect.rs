//! Inspection benchmark: tract against onnxruntime on the same model and tile batches, NQR
//! screening time, and the ROC and Pd/Pfa tables. Writes `inspect/BENCHMARKS.md`.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-inspect cargo bench -j 1 -p mizugiwa-inspect --bench inspect
//! ```
//!
//! onnxruntime runs through `train/ort_run.py --bench` with the interpreter from `$MZ_PYTHON`
//! or `inspect/.venv-train/bin/python`.

use mizugiwa_inspect::nqr::{
    self, Acquisition, Calibration, DetectorConfig, DetectorKind, SimulationConfig,
};
use mizugiwa_inspect::xray::{
    generate, tile_features, GeneratorConfig, HiddenKind, Model, FEATURE_COUNT,
};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
use tract_onnx::prelude::*;

const SCANS: usize = 20;
const REPEAT: usize = 100;

/// One runtime's timings on the benchmark batches.
struct Timing {
    mean: f64,
    median: f64,
    p99: f64,
    /// Scans per second using every core.
    throughput: f64,
    version: String,
}

impl Timing {
    fn latencies(&self) -> String {
        format!(
            "{:.3} / {:.3} / {:.3} ms",
            self.mean * 1e3,
            self.median * 1e3,
            self.p99 * 1e3
        )
    }
}

/// Latency of `run` per batch on this thread, then throughput with one thread per core.
fn time_runtime(
    batches: &[(usize, Vec<f32>)],
    threads: usize,
    run: impl Fn(&[f32], usize) -> bool + Sync,
) -> Timing {
    for (n, f) in batches {
        run(f, *n); // warm-up: plans built, scratch allocated
    }
    let mut latencies = Vec::new();
    for _ in 0..REPEAT {
        for (n, f) in batches {
            let t = Instant::now();
            std::hint::black_box(run(f, *n));
            latencies.push(t.elapsed().as_secs_f64());
        }
    }
    latencies.sort_by(f64::total_cmp);
    let t = Instant::now();
    let run = &run;
    let done: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut n = 0;
                    for _ in 0..REPEAT {
                        for (rows, f) in batches {
                            n += usize::from(run(f, *rows));
                        }
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    Timing {
        mean: latencies.iter().sum::<f64>() / latencies.len() as f64,
        median: latencies[latencies.len() / 2],
        p99: latencies[latencies.len() * 99 / 100],
        throughput: done as f64 / t.elapsed().as_secs_f64(),
        version: "tract 0.23".into(),
    }
}

/// Runs `train/ort_run.py` with `args`; its standard output.
fn run_python(
    crate_dir: &std::path::Path,
    args: &[&str],
) -> Result<String, Box<dyn std::error::Error>> {
    let output = Command::new(python(crate_dir))
        .arg(crate_dir.join("train/ort_run.py"))
        .args(args)
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "ort_run.py {} failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut md = String::new();
    writeln!(md, "# inspect benchmarks\n")?;
    writeln!(
        md,
        "Written by `cargo bench -p mizugiwa-inspect --bench inspect` (release build).\n"
    )?;
    writeln!(md, "Date: {}  ", shell("date -u +%Y-%m-%dT%H:%MZ").trim())?;
    writeln!(md, "`nproc`: {}\n", shell("nproc").trim())?;
    writeln!(
        md,
        "```\n$ lscpu | head -20\n{}```\n",
        shell("lscpu | head -20")
    )?;

    // ---- X-ray: tract vs onnxruntime on the same batches ----
    let model_path = crate_dir.join("models/xray_tiles.onnx");
    let model = Model::load(&model_path)?;
    let mut batches = Vec::new();
    let mut scans = Vec::new();
    for i in 0..SCANS {
        let generated = generate(&GeneratorConfig::random(5_000_000 + i as u64, 0.5))?;
        let (grid, features) = tile_features(&generated.scan);
        batches.push((grid.len(), features));
        scans.push(generated);
    }
    let rows = batches[0].0;
    eprintln!("{SCANS} scans of {rows} tiles");
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("batches.f32");
    let bytes: Vec<u8> = batches
        .iter()
        .flat_map(|(_, f)| f.iter().flat_map(|v| v.to_le_bytes()))
        .collect();
    std::fs::write(&input, bytes)?;
    // The graph as trained, with the softmax in it, for the runtime-to-runtime comparison.
    let softmax_path = dir.path().join("xray_tiles_softmax.onnx");
    run_python(
        &crate_dir,
        &[
            "--with-softmax",
            &model_path.to_string_lossy(),
            &softmax_path.to_string_lossy(),
        ],
    )?;
    let softmax_plan = tract_onnx::onnx()
        .model_for_path(&softmax_path)?
        .with_input_fact(0, f32::fact([rows, FEATURE_COUNT]).into())?
        .into_optimized()?
        .into_runnable()?;

    let logits = time_runtime(&batches, threads, |f, n| model.logits(f, n).is_ok());
    let probabilities = time_runtime(&batches, threads, |f, n| model.predict(f, n).is_ok());
    let in_graph = time_runtime(&batches, threads, |f, n| {
        Tensor::from_shape(&[n, FEATURE_COUNT], f)
            .and_then(|t| softmax_plan.run(tvec!(t.into())))
            .is_ok()
    });
    let ort_bench = |model: &std::path::Path| -> Result<Timing, Box<dyn std::error::Error>> {
        let out = run_python(
            &crate_dir,
            &[
                "--bench",
                &model.to_string_lossy(),
                &input.to_string_lossy(),
                &rows.to_string(),
                &SCANS.to_string(),
                &REPEAT.to_string(),
                &threads.to_string(),
            ],
        )?;
        let ort: serde_json::Value = serde_json::from_str(&out)?;
        let num = |k: &str| ort[k].as_f64().unwrap_or(f64::NAN);
        Ok(Timing {
            mean: num("latency_mean_s"),
            median: num("latency_median_s"),
            p99: num("latency_p99_s"),
            throughput: num("throughput_threads_scans_per_s")
                .max(num("throughput_intra_op_scans_per_s")),
            version: ort["onnxruntime"].as_str().unwrap_or("?").to_string(),
        })
    };
    let ort_logits = ort_bench(&model_path)?;
    let ort_softmax = ort_bench(&softmax_path)?;
    // Whole pipeline on one core: features, inference, risk.
    let t = Instant::now();
    for s in &scans {
        std::hint::black_box(model.scan(&s.scan, &s.manifest)?);
    }
    let pipeline = t.elapsed().as_secs_f64() / scans.len() as f64;

    writeln!(
        md,
        "## X-ray tile model: tract 0.23 vs onnxruntime {}\n",
        ort_logits.version
    )?;
    writeln!(md, "Model `models/xray_tiles.onnx` (Gemm 34→64, Relu, Gemm 64→32, Relu, Gemm 32→7 → logits); {SCANS} generated scans of {rows} tiles × 34 features, each scan one batch, {REPEAT} rounds. Latency on one thread (onnxruntime `intra_op_num_threads=1`, timed in Python around `run`); throughput with all {threads} cores (tract: one thread per core sharing the plan; onnxruntime: the better of one single-threaded session per Python thread and one session with {threads} intra-op threads).\n")?;
    writeln!(md, "The product runs the first row: the graph ends at the logits and `Model::predict` takes the softmax over each tile's 7 logits in Rust. The second row is what the officer's scan needs from each side (features → probabilities); the third runs the graph as trained, Softmax included, in both runtimes.\n")?;
    writeln!(
        md,
        "| | tract mean / median / p99 | onnxruntime mean / median / p99 | latency ratio (mean) | tract scans/h, all cores | onnxruntime scans/h | throughput ratio |\n|---|---|---|---|---|---|---|"
    )?;
    for (name, ours, theirs) in [
        ("features → logits, same graph (deployed)", &logits, &ort_logits),
        ("features → probabilities: tract + Rust softmax vs onnxruntime with Softmax in the graph", &probabilities, &ort_softmax),
        ("graph with Softmax, same graph in both", &in_graph, &ort_softmax),
    ] {
        writeln!(
            md,
            "| {name} | {} | {} | **{:.2}×** | {:.0} | {:.0} | **{:.2}×** |",
            ours.latencies(),
            theirs.latencies(),
            ours.mean / theirs.mean,
            ours.throughput * 3600.0,
            theirs.throughput * 3600.0,
            ours.throughput / theirs.throughput
        )?;
    }
    writeln!(md, "\nTargets: latency ≤ 1.5× onnxruntime, throughput ≥ 1×. Whole tract pipeline per scan on one core (features, inference, risk, weight): {:.2} ms.\n", pipeline * 1e3)?;

    // ---- X-ray ROC on a held-out set ----
    let held_out = 200;
    let mut tile_scores = Vec::new();
    let mut scan_scores = Vec::new();
    // (alerts, scans) for clean honest containers and for containers hiding something.
    let mut alerts = [(0usize, 0usize); 2];
    for i in 0..held_out {
        let g = generate(&GeneratorConfig::random(9_500_000 + i, 0.5))?;
        let r = model.scan(&g.scan, &g.manifest)?;
        for (t, l) in r.tiles.iter().zip(&g.truth.tile_labels) {
            tile_scores.push((f64::from(t.contraband), l.is_contraband()));
        }
        let contraband = g
            .truth
            .hidden
            .iter()
            .any(|h| h.kind != HiddenKind::MetalBlock);
        scan_scores.push((r.risk.max_contraband, contraband));
        let slot = usize::from(!g.truth.hidden.is_empty());
        alerts[slot].0 += usize::from(r.risk.alert);
        alerts[slot].1 += 1;
    }
    writeln!(md, "## X-ray ROC (held-out generated set, seeds 9,500,000.., {held_out} scans, half with hidden items)\n")?;
    writeln!(md, "Score: tile contraband probability (cigarettes + drugs + weapon); per scan, its highest tile. Metal blocks count as negatives here (they are caught by the manifest check, not as contraband).\n")?;
    writeln!(md, "| level | positives / negatives | ROC-AUC | Pd at FAR 0.1% | 1% | 5% | 10% |\n|---|---|---|---|---|---|---|")?;
    for (name, scores) in [("tile", &tile_scores), ("scan", &scan_scores)] {
        let pos = scores.iter().filter(|s| s.1).count();
        write!(
            md,
            "| {name} | {pos} / {} | {:.4} |",
            scores.len() - pos,
            roc_auc(scores)
        )?;
        for far in [0.001, 0.01, 0.05, 0.1] {
            write!(md, " {:.3} |", detection_at_far(scores, far))?;
        }
        writeln!(md)?;
    }

    writeln!(
        md,
        "\nManifest risk alerts (score ≥ 0.5) on the same scans, honest declarations: clean containers {}/{} ({:.0}%), containers hiding items (incl. metal blocks) {}/{} ({:.0}%).",
        alerts[0].0,
        alerts[0].1,
        100.0 * alerts[0].0 as f64 / alerts[0].1.max(1) as f64,
        alerts[1].0,
        alerts[1].1,
        100.0 * alerts[1].0 as f64 / alerts[1].1.max(1) as f64
    )?;

    // ---- NQR ----
    let acquisition = Acquisition::rdx_default();
    let runs = 4000;
    let t = Instant::now();
    let cal = Calibration::simulate(acquisition, DetectorConfig::rdx(), runs, 1_000)?;
    let calibration_time = t.elapsed().as_secs_f64();
    let recordings: Vec<_> = (0..100)
        .map(|s| nqr::simulate(&SimulationConfig::rdx(-24.0, 200_000 + s)))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for r in &recordings {
        std::hint::black_box(nqr::detect(r, &cal, 1e-3)?);
    }
    let detect_time = t.elapsed().as_secs_f64() / recordings.len() as f64;
    writeln!(md, "\n## NQR screening (RDX, default acquisition: 4 trains × 32 echoes × 128 samples at 125 kHz, reference channel)\n")?;
    writeln!(
        md,
        "- measurement time per screening (instrument): {:.2} s (4 trains × 100 ms repetition)",
        acquisition.measurement_time_s()
    )?;
    writeln!(md, "- processing time per screening (cancellation, three detectors, decision), one core: {:.2} ms", detect_time * 1e3)?;
    writeln!(
        md,
        "- calibration: {runs} noise-only screenings on {threads} cores in {calibration_time:.1} s"
    )?;
    writeln!(
        md,
        "- thresholds (noise-normalised): {}\n",
        DetectorKind::ALL
            .iter()
            .map(|k| format!(
                "{k:?} {:.1} @1e-2, {:.1} @1e-3",
                cal.threshold(*k, 1e-2),
                cal.threshold(*k, 1e-3)
            ))
            .collect::<Vec<_>>()
            .join("; ")
    )?;
    let trials = 400u64;
    writeln!(md, "Pd over {trials} screenings per SNR (RDX at 298 K), thresholds from the {runs} noise-only runs:\n")?;
    writeln!(md, "| SNR per echo (dB) | FFT peak 1e-2 | FFT peak 1e-3 | energy 1e-2 | energy 1e-3 | GLRT 1e-2 | GLRT 1e-3 | GLRT 1e-3 at 288 K | GLRT 1e-3 at 308 K |\n|---|---|---|---|---|---|---|---|---|")?;
    for snr in [-33.0, -30.0, -27.0, -24.0, -21.0, -18.0] {
        let mut row = [0u64; 8];
        for s in 0..trials {
            let rec = nqr::simulate(&SimulationConfig::rdx(snr, 300_000 + s))?;
            let stats = nqr::statistics(&rec, &cal.detector)?;
            for (k, kind) in DetectorKind::ALL.into_iter().enumerate() {
                for (j, pfa) in [1e-2, 1e-3].into_iter().enumerate() {
                    row[k * 2 + j] += u64::from(stats.get(kind) > cal.threshold(kind, pfa));
                }
            }
            for (j, temperature) in [288.0, 308.0].into_iter().enumerate() {
                let config = SimulationConfig {
                    temperature_k: temperature,
                    ..SimulationConfig::rdx(snr, 400_000 + s)
                };
                let stats = nqr::statistics(&nqr::simulate(&config)?, &cal.detector)?;
                row[6 + j] += u64::from(stats.glrt > cal.threshold(DetectorKind::Glrt, 1e-3));
            }
        }
        writeln!(
            md,
            "| {snr:.0} | {} |",
            row.iter()
                .map(|h| format!("{:.3}", *h as f64 / trials as f64))
                .collect::<Vec<_>>()
                .join(" | ")
        )?;
    }
    let noise_trials = 4000u64;
    let mut fa = [[0u64; 2]; 3];
    for s in 0..noise_trials {
        let stats = nqr::statistics(
            &nqr::simulate(&SimulationConfig::noise_only(600_000 + s))?,
            &cal.detector,
        )?;
        for (k, kind) in DetectorKind::ALL.into_iter().enumerate() {
            for (j, pfa) in [1e-2, 1e-3].into_iter().enumerate() {
                fa[k][j] += u64::from(stats.get(kind) > cal.threshold(kind, pfa));
            }
        }
    }
    writeln!(
        md,
        "\nMeasured false-alarm rate on {noise_trials} fresh noise-only screenings: {}\n",
        DetectorKind::ALL
            .iter()
            .enumerate()
            .map(|(k, kind)| format!(
                "{kind:?} {:.4} (1e-2), {:.4} (1e-3)",
                fa[k][0] as f64 / noise_trials as f64,
                fa[k][1] as f64 / noise_trials as f64
            ))
            .collect::<Vec<_>>()
            .join("; ")
    )?;

    let out = crate_dir.join("BENCHMARKS.md");
    std::fs::write(&out, &md)?;
    println!("{md}");
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn shell(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn python(crate_dir: &std::path::Path) -> PathBuf {
    std::env::var_os("MZ_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir.join(".venv-train/bin/python"))
}

fn roc_auc(scores: &[(f64, bool)]) -> f64 {
    let mut sorted: Vec<(f64, bool)> = scores.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann-Whitney U with average ranks for ties.
    let (mut rank_sum, mut i) = (0f64, 0usize);
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        let avg = (i + j + 1) as f64 / 2.0;
        rank_sum += avg * sorted[i..j].iter().filter(|s| s.1).count() as f64;
        i = j;
    }
    let pos = scores.iter().filter(|s| s.1).count() as f64;
    let neg = scores.len() as f64 - pos;
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

fn detection_at_far(scores: &[(f64, bool)], far: f64) -> f64 {
    let mut neg: Vec<f64> = scores.iter().filter(|s| !s.1).map(|s| s.0).collect();
    neg.sort_by(|a, b| b.total_cmp(a));
    let threshold = neg[((far * neg.len() as f64).floor() as usize).saturating_sub(1)];
    let pos: Vec<f64> = scores.iter().filter(|s| s.1).map(|s| s.0).collect();
    pos.iter().filter(|p| **p > threshold).count() as f64 / pos.len().max(1) as f64
}
