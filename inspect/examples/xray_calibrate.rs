//! Calibrates the scan-level contraband alert of the X-ray risk score.
//!
//! ```text
//! cargo run --release -p mizugiwa-inspect --example xray_calibrate -- [MODEL.onnx] [SCANS]
//! ```
//!
//! Runs the model (default: the committed one) over SCANS (default 400) honest generated
//! containers without hidden items (seeds 7,000,000..) and as many hiding one item (seeds
//! 7,500,000..), and prints, for target false-alert rates on the clean containers, the
//! highest-tile contraband log-odds to alert at and the share of containers hiding contraband
//! it catches; then the outside-category tile counts of clean containers against those hiding
//! a metal block. `CONTRABAND_ALERT_LOGIT` in `src/xray/model.rs` comes from this run
//! (held-out results are in BENCHMARKS.md, on seeds 9,500,000..).

use mizugiwa_inspect::xray::{generate, GeneratorConfig, HiddenKind, Model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = match args.first() {
        Some(path) => Model::load(path)?,
        None => Model::committed()?,
    };
    let scans: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(400);
    let logit = |p: f64| {
        let p = p.clamp(1e-7, 1.0 - 1e-7);
        (p / (1.0 - p)).ln()
    };
    // Alerts under the risk score as built, for [clean, contraband, metal block].
    let mut alerts = [(0usize, 0usize); 3];
    let mut clean = Vec::new();
    let mut clean_outside = Vec::new();
    // Largest dense-metal area in containers declaring organic goods only: clean, and
    // hiding a metal block.
    let (mut clean_metal, mut block_metal) = (Vec::new(), Vec::new());
    for i in 0..scans {
        let g = generate(&GeneratorConfig::random(7_000_000 + i, 0.0))?;
        let r = model.scan(&g.scan, &g.manifest)?;
        clean.push(logit(r.risk.max_contraband));
        alerts[0].0 += usize::from(r.risk.alert);
        alerts[0].1 += 1;
        clean_outside.push(r.risk.outside_tiles);
        if g.manifest.category.organic_only() {
            clean_metal.push(r.dense_metal_cm2);
        }
    }
    let mut hiding = Vec::new();
    let mut metal_outside = Vec::new();
    for i in 0..scans {
        let mut config = GeneratorConfig::random(7_500_000 + i, 0.0);
        let kind = HiddenKind::ALL[(i % HiddenKind::ALL.len() as u64) as usize];
        config.hidden = vec![kind];
        let g = generate(&config)?;
        let r = model.scan(&g.scan, &g.manifest)?;
        let slot = if kind == HiddenKind::MetalBlock { 2 } else { 1 };
        alerts[slot].0 += usize::from(r.risk.alert);
        alerts[slot].1 += 1;
        if kind == HiddenKind::MetalBlock {
            metal_outside.push(r.risk.outside_tiles);
            if g.manifest.category.organic_only() {
                block_metal.push(r.dense_metal_cm2);
            }
        } else {
            hiding.push(logit(r.risk.max_contraband));
        }
    }
    clean.sort_by(|a, b| b.total_cmp(a));
    println!(
        "{} clean containers, {} hiding contraband, {} hiding a metal block",
        clean.len(),
        hiding.len(),
        metal_outside.len()
    );
    println!("false-alert rate | alert at log-odds | contraband caught");
    for rate in [0.01, 0.02, 0.05, 0.1, 0.2] {
        let k = ((rate * clean.len() as f64) as usize).min(clean.len() - 1);
        let threshold = clean[k];
        let caught = hiding.iter().filter(|&&l| l > threshold).count();
        println!(
            "{:>5.0}% | {threshold:>6.2} | {:.3}",
            rate * 100.0,
            caught as f64 / hiding.len() as f64
        );
    }
    for (name, counts) in [("clean", &clean_outside), ("metal block", &metal_outside)] {
        let bins = [0, 1, 2, 3, 6, 11, 21, 41];
        let counted: Vec<String> = bins
            .iter()
            .enumerate()
            .map(|(i, &from)| {
                let to = bins.get(i + 1).copied().unwrap_or(u32::MAX);
                let n = counts.iter().filter(|&&c| c >= from && c < to).count();
                format!("{from}+: {n}")
            })
            .collect();
        println!("outside-category tiles, {name}: {}", counted.join(", "));
    }
    for (name, areas) in [
        ("clean", &mut clean_metal),
        ("metal block", &mut block_metal),
    ] {
        areas.sort_by(f64::total_cmp);
        let q = |f: f64| areas[((areas.len() as f64 - 1.0) * f) as usize];
        println!(
            "dense metal cm² in containers declaring organic goods only, {name} ({}): min {:.0}, 5% {:.0}, median {:.0}, 95% {:.0}, max {:.0}",
            areas.len(), q(0.0), q(0.05), q(0.5), q(0.95), q(1.0)
        );
    }
    println!(
        "alerts with the risk score as built: clean {}/{}, hiding contraband {}/{}, hiding a metal block {}/{}",
        alerts[0].0, alerts[0].1, alerts[1].0, alerts[1].1, alerts[2].0, alerts[2].1
    );
    Ok(())
}
