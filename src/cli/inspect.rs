//! `mizugiwa xray` and `mizugiwa nqr`: inspection at ports and airports with
//! `mizugiwa-inspect`, offline.
//!
//! * `xray scan`: classify a dual-energy scan's tiles and score it against its manifest;
//! * `xray generate`: write a generated scan (with hidden items if asked) and its ground truth;
//! * `nqr simulate`: write a simulated NQR screening as a signal file;
//! * `nqr detect`: screen a signal file (calibrating once and caching the calibration).
//!
//! Exit status: 0 when the command ran, whatever the verdict (an X-ray alert or an NQR detection
//! is data in the printed JSON, not a failure); 1 on bad arguments or bad input (unreadable or
//! corrupt images, mismatched sizes, malformed JSON, truncated signal files), with a message.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use mizugiwa_inspect::nqr::{self, Acquisition, AmCarrier, Calibration, DetectorConfig};
use mizugiwa_inspect::xray::{self, Category, GeneratorConfig, HiddenKind, Manifest, Model, Scan};

use mizugiwa_inspect::nqr::{
    STANDARD_CALIBRATION_RUNS as CALIBRATION_RUNS, STANDARD_CALIBRATION_SEED as CALIBRATION_SEED,
};

#[derive(Debug, Subcommand)]
pub enum XrayCommand {
    /// Classify a dual-energy scan and score it against its manifest: prints the result as JSON.
    ///
    /// The JSON holds the risk (score 0..1, alert, reasons in words), the declared and the
    /// estimated net weight, the tile grid and, with --tiles, every tile's class probabilities.
    /// The tile classifier is the committed model embedded in this binary unless --model names
    /// another ONNX file.
    ///
    /// Exit status: 0 when the scan was scored, whether it raised an alert or not (read
    /// `risk.alert`); 1 on bad input (unreadable or corrupt images, high and low of different
    /// sizes, not 16-bit grayscale, malformed manifest or metadata).
    Scan(ScanArgs),
    /// Generate a container scan: DIR/high.png, low.png (16-bit grayscale), meta.json (scanner
    /// metadata), manifest.json (the declaration) and truth.json (what is really inside).
    ///
    /// Physically grounded (Beer-Lambert in two energy bands, NIST attenuation coefficients,
    /// Poisson noise); the same seed gives the same files.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// High-energy image (16-bit grayscale PNG or TIFF).
    #[arg(value_name = "HIGH.png")]
    high: PathBuf,
    /// Low-energy image, registered with the high one (same size).
    #[arg(value_name = "LOW.png")]
    low: PathBuf,
    /// The container's manifest: {"container_id", "category", "declared_weight_kg"}.
    #[arg(long, value_name = "manifest.json")]
    manifest: PathBuf,
    /// Scanner metadata (default: meta.json, else scanner.json, beside HIGH).
    #[arg(long, value_name = "meta.json")]
    meta: Option<PathBuf>,
    /// ONNX tile classifier (default: the committed model embedded in this binary).
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Also write the heatmap overlay for the officer (PNG).
    #[arg(long, value_name = "out.png")]
    heatmap: Option<PathBuf>,
    /// Include every tile's probabilities in the JSON.
    #[arg(long)]
    tiles: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Folder for the files (created if missing; existing files are overwritten).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Seed: the same seed and options give the same scan.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Declared (and actual) category of goods.
    #[arg(long, value_enum, default_value = "textiles")]
    category: CategoryArg,
    /// Items to conceal among the goods, comma-separated (none by default: a clean container).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KIND,...")]
    hidden: Vec<HiddenArg>,
    /// Declared weight as a multiple of the goods' true weight (1 = honest; 0.4 = under-declared).
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
    declared_weight_factor: f64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CategoryArg {
    Textiles,
    Food,
    Ceramics,
    Machinery,
    Electronics,
}

impl From<CategoryArg> for Category {
    fn from(c: CategoryArg) -> Category {
        match c {
            CategoryArg::Textiles => Category::Textiles,
            CategoryArg::Food => Category::Food,
            CategoryArg::Ceramics => Category::Ceramics,
            CategoryArg::Machinery => Category::Machinery,
            CategoryArg::Electronics => Category::Electronics,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HiddenArg {
    /// Master cases of cigarette cartons.
    Cigarettes,
    /// Compressed drug bricks.
    Drugs,
    /// One to three firearms.
    Weapon,
    /// A solid steel block, 10-30 cm thick.
    MetalBlock,
}

impl From<HiddenArg> for HiddenKind {
    fn from(h: HiddenArg) -> HiddenKind {
        match h {
            HiddenArg::Cigarettes => HiddenKind::Cigarettes,
            HiddenArg::Drugs => HiddenKind::Drugs,
            HiddenArg::Weapon => HiddenKind::Weapon,
            HiddenArg::MetalBlock => HiddenKind::MetalBlock,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum NqrCommand {
    /// Simulate an NQR screening (the default RDX acquisition: 4 trains of 32 spin-locked
    /// echoes, 0.4 s of instrument time) and write it as a signal file.
    ///
    /// The spectrometer is tuned to RDX's 5.192 MHz line, the main coil and a signal-free
    /// reference antenna are recorded. NaNO2 (the benign calibration sample) has no line in that
    /// band: its screening reads like an empty one.
    Simulate(SimulateArgs),
    /// Screen a signal file for RDX: prints the screening as JSON (decision, confidence, the
    /// estimated sample temperature, every detector's statistic and threshold).
    ///
    /// Thresholds come from a calibration: 600 simulated noise-only screenings of the file's
    /// acquisition, computed on first use (a few seconds to a minute) and cached as JSON at
    /// --calibration, by default nqr-calibration.json beside the signal file.
    ///
    /// Exit status: 0 when the file was screened, detected or not (read `detected` and
    /// `alert`); 1 on bad input (not a signal file, truncated, inconsistent header, a
    /// calibration for another acquisition).
    Detect(DetectArgs),
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Signal file to write.
    #[arg(long, value_name = "SIGNAL.bin")]
    out: PathBuf,
    /// Substance in the coil: RDX, NaNO2, urea, or none (noise only).
    #[arg(long, default_value = "RDX")]
    substance: String,
    /// Peak amplitude of the strongest line in the first echo over the noise, dB per echo
    /// (-15 dB is detected 99% of the time at Pfa 1e-3).
    #[arg(long, default_value_t = -12.0, allow_negative_numbers = true, value_name = "DB")]
    snr_db: f64,
    /// Sample temperature, kelvin (lines shift by about -0.5 kHz/K).
    #[arg(long, default_value_t = 298.0, value_name = "K")]
    temperature_k: f64,
    /// AM broadcast transmitters in the band (picked up by both antennas).
    #[arg(long, default_value_t = 0, value_name = "N")]
    interference: usize,
    /// Transmitters' strength in the main coil over the noise, dB.
    #[arg(
        long,
        default_value_t = 25.0,
        allow_negative_numbers = true,
        value_name = "DB"
    )]
    inr_db: f64,
    /// Seed: the same seed and options give the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Signal file (format in inspect/README.md).
    #[arg(value_name = "SIGNAL.bin")]
    signal: PathBuf,
    /// False-alarm probability of the decision (thresholds are calibrated down to 1e-3).
    #[arg(long, default_value_t = 1e-3)]
    pfa: f64,
    /// Calibration file: read if present, else computed and written there (default:
    /// nqr-calibration.json beside the signal file).
    #[arg(long, value_name = "cal.json")]
    calibration: Option<PathBuf>,
}

pub fn run_xray(c: XrayCommand) -> anyhow::Result<()> {
    match c {
        XrayCommand::Scan(a) => scan(a),
        XrayCommand::Generate(a) => generate(a),
    }
}

pub fn run_nqr(c: NqrCommand) -> anyhow::Result<()> {
    match c {
        NqrCommand::Simulate(a) => simulate(a),
        NqrCommand::Detect(a) => detect(a),
    }
}

/// The scanner metadata beside `high`: meta.json, else scanner.json (as the crate's generator
/// names it).
fn default_meta(high: &Path) -> anyhow::Result<PathBuf> {
    let dir = high.parent().unwrap_or(Path::new("."));
    let candidates = [dir.join("meta.json"), dir.join("scanner.json")];
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => bail!(
            "no scanner metadata: pass --meta (looked for {} and {})",
            candidates[0].display(),
            candidates[1].display()
        ),
    }
}

/// Prints `value` as pretty JSON on stdout. A closed pipe (`| head`) ends the output quietly
/// instead of panicking like `println!`.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value)?;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing to stdout"))
        }
        _ => Ok(()),
    }
}

/// An inspection error as one sentence: their messages already include their source's, so
/// anyhow's chain would repeat it.
fn plain(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn scan(a: ScanArgs) -> anyhow::Result<()> {
    let meta = match a.meta {
        Some(m) => m,
        None => default_meta(&a.high)?,
    };
    let scan = Scan::load(&a.high, &a.low, &meta).map_err(plain)?;
    let manifest = Manifest::load(&a.manifest).map_err(plain)?;
    let model = match &a.model {
        Some(path) => Model::load(path).map_err(plain)?,
        None => Model::committed().map_err(plain)?,
    };
    let result = model.scan(&scan, &manifest).map_err(plain)?;
    let mut out = serde_json::to_value(&result)?;
    if let Some(path) = &a.heatmap {
        xray::render_heatmap(&scan, &result)
            .save(path)
            .with_context(|| format!("writing the heatmap {}", path.display()))?;
        out["heatmap"] = serde_json::json!(path);
    }
    if !a.tiles {
        if let Some(o) = out.as_object_mut() {
            o.remove("tiles");
        }
    }
    print_json(&out)?;
    Ok(())
}

fn generate(a: GenerateArgs) -> anyhow::Result<()> {
    if !(a.declared_weight_factor.is_finite() && a.declared_weight_factor > 0.0) {
        bail!(
            "--declared-weight-factor must be a positive number, got {}",
            a.declared_weight_factor
        );
    }
    let mut config = GeneratorConfig::new(a.seed, a.category.into())
        .with_hidden(a.hidden.iter().map(|&h| h.into()).collect());
    config.declared_weight_factor = a.declared_weight_factor;
    let generated = xray::generate(&config).map_err(plain)?;
    let dir = &a.out;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    generated
        .scan
        .save(
            dir.join("high.png"),
            dir.join("low.png"),
            dir.join("meta.json"),
        )
        .map_err(plain)?;
    generated
        .manifest
        .save(dir.join("manifest.json"))
        .map_err(plain)?;
    let truth = dir.join("truth.json");
    std::fs::write(
        &truth,
        serde_json::to_string_pretty(&generated.truth)? + "\n",
    )
    .with_context(|| format!("writing {}", truth.display()))?;
    let t = &generated.truth;
    let summary = serde_json::json!({
        "out": dir,
        "files": ["high.png", "low.png", "meta.json", "manifest.json", "truth.json"],
        "container_id": generated.manifest.container_id,
        "category": generated.manifest.category,
        "declared_weight_kg": generated.manifest.declared_weight_kg,
        "goods_weight_kg": t.goods_weight_kg,
        "total_weight_kg": t.total_weight_kg,
        "hidden": t.hidden,
        "width": generated.scan.width,
        "height": generated.scan.height,
    });
    print_json(&summary)?;
    Ok(())
}

fn simulate(a: SimulateArgs) -> anyhow::Result<()> {
    let substance = if a.substance.eq_ignore_ascii_case("none") {
        None
    } else {
        Some(nqr::substance::find(&a.substance).map_err(plain)?)
    };
    if !(200.0..=400.0).contains(&a.temperature_k) {
        bail!(
            "--temperature-k {} is outside 200-400 K (the linear line model's range)",
            a.temperature_k
        );
    }
    if !a.snr_db.is_finite() || !a.inr_db.is_finite() {
        bail!("--snr-db and --inr-db must be numbers");
    }
    if a.interference > 12 {
        bail!(
            "--interference {} is more than the band holds (12)",
            a.interference
        );
    }
    let acquisition = Acquisition::rdx_default();
    let config = nqr::SimulationConfig {
        substance,
        temperature_k: a.temperature_k,
        interference: AmCarrier::random_set(
            a.interference,
            &acquisition,
            a.inr_db,
            a.seed ^ 0x5eed_a11a,
        ),
        ..nqr::SimulationConfig::rdx(a.snr_db, a.seed)
    };
    let recording = nqr::simulate(&config).map_err(plain)?;
    recording.write(&a.out).map_err(plain)?;
    let summary = serde_json::json!({
        "out": a.out,
        "bytes": std::fs::metadata(&a.out).map(|m| m.len()).unwrap_or(0),
        "substance": substance.map(|s| s.name),
        "snr_per_echo_db": a.snr_db,
        "temperature_k": a.temperature_k,
        "interference": config.interference.len(),
        "channels": if recording.reference.is_some() { 2 } else { 1 },
        "acquisition": recording.acquisition,
        "measurement_time_s": recording.acquisition.measurement_time_s(),
    });
    print_json(&summary)?;
    Ok(())
}

/// Reads the calibration at `path`, or simulates one for `acquisition` and writes it there
/// (aside, then renamed, so a concurrent reader never sees half a file).
pub fn load_or_calibrate(path: &Path, acquisition: Acquisition) -> anyhow::Result<Calibration> {
    if path.exists() {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a calibration file (delete it to compute a new one)",
                path.display()
            )
        });
    }
    eprintln!(
        "calibrating: {CALIBRATION_RUNS} noise-only screenings (cached in {})",
        path.display()
    );
    let started = std::time::Instant::now();
    let cal = Calibration::simulate(
        acquisition,
        DetectorConfig::rdx(),
        CALIBRATION_RUNS,
        CALIBRATION_SEED,
    )
    .map_err(plain)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&cal)? + "\n")
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("calibrated in {:.1} s", started.elapsed().as_secs_f64());
    Ok(cal)
}

fn detect(a: DetectArgs) -> anyhow::Result<()> {
    if !(a.pfa > 0.0 && a.pfa < 1.0) {
        bail!("--pfa must be between 0 and 1 (exclusive), got {}", a.pfa);
    }
    let recording = nqr::Recording::read(&a.signal).map_err(plain)?;
    let cal_path = match a.calibration {
        Some(p) => p,
        None => a
            .signal
            .parent()
            .unwrap_or(Path::new("."))
            .join("nqr-calibration.json"),
    };
    let calibration = load_or_calibrate(&cal_path, recording.acquisition)?;
    let screening = nqr::detect(&recording, &calibration, a.pfa).map_err(plain)?;
    print_json(&screening)?;
    Ok(())
}
