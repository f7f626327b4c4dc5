//! `mizugiwa sat`: vessel detection in SAR scenes, correlation with AIS, synthetic scenes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use mizugiwa_satellite::ais::{Decoder, Tracks};
use mizugiwa_satellite::correlate::{correlate, project, Correlation, CorrelationConfig};
use mizugiwa_satellite::land::LandMask;
use mizugiwa_satellite::sar::cfar::CfarKind;
use mizugiwa_satellite::sar::detect::{describe_windows, detect, to_geojson, DetectConfig};
use mizugiwa_satellite::sar::quicklook::write_quicklook;
use mizugiwa_satellite::sar::Scene;

#[derive(Debug, Subcommand)]
pub enum SatCommand {
    /// Detect vessels in a SAR scene (GeoTIFF, Sentinel-1 measurement TIFF), optionally
    /// correlate them with an AIS feed to find the dark ones.
    Detect(DetectArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Cfar {
    /// ESA SNAP's two-parameter test (target-window mean against μ + t·σ).
    TwoParameter,
    /// Per pixel against an L-look gamma quantile.
    Gamma,
    /// Per pixel against a K quantile, shape estimated locally (rough sea).
    K,
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// The scene.
    scene: PathBuf,
    /// NMEA 0183 AIS recorded around the acquisition (tag-block times, as receivers log them):
    /// detections without an AIS partner are reported as dark vessels.
    #[arg(long)]
    ais: Option<PathBuf>,
    /// Where to write the detections (GeoJSON).
    #[arg(short, long)]
    output: PathBuf,
    /// Also write a quicklook PNG with the detections boxed (red: dark, green: AIS).
    #[arg(long)]
    quicklook: Option<PathBuf>,
    /// Which CFAR test (K by default; two-parameter is SNAP's).
    #[arg(long, value_enum, default_value = "k")]
    cfar: Cfar,
    /// Probability of false alarm per test.
    #[arg(long, default_value_t = 10f64.powf(-6.5))]
    pfa: f64,
    /// Equivalent number of looks (gamma and K).
    #[arg(long, default_value_t = 4.4)]
    looks: f64,
    /// Land polygons (GeoJSON) to mask instead of the built-in Natural Earth coastline.
    #[arg(long, conflicts_with = "no_land")]
    land: Option<PathBuf>,
    /// Mask no land (open-sea scenes).
    #[arg(long)]
    no_land: bool,
    /// Grow the land by this many metres before masking.
    #[arg(long, default_value_t = 200.0)]
    shore_buffer_m: f64,
    /// Objects shorter or longer than these are dropped.
    #[arg(long, default_value_t = 50.0)]
    min_length_m: f64,
    #[arg(long, default_value_t = 600.0)]
    max_length_m: f64,
    /// AIS-to-detection match gate, metres.
    #[arg(long, default_value_t = 1000.0)]
    gate_m: f64,
    /// Worker threads (0: every core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

pub fn run(command: SatCommand) -> anyhow::Result<()> {
    match command {
        SatCommand::Detect(args) => run_detect(args),
    }
}

fn run_detect(args: DetectArgs) -> anyhow::Result<()> {
    if !(args.pfa > 0.0 && args.pfa < 0.5) {
        bail!("--pfa must be between 0 and 0.5");
    }
    if !(args.min_length_m >= 0.0 && args.max_length_m > args.min_length_m) {
        bail!("--min-length-m must be below --max-length-m");
    }
    if !(args.gate_m.is_finite() && args.gate_m > 0.0) {
        bail!("--gate-m must be a positive number of metres");
    }
    let scene = Scene::open(&args.scene)?;
    let land = if args.no_land {
        None
    } else if let Some(path) = &args.land {
        Some(LandMask::from_geojson_file(path)?)
    } else {
        Some(LandMask::natural_earth().clone())
    };
    let mut config = DetectConfig {
        shore_buffer_m: args.shore_buffer_m,
        threads: args.threads,
        ..DetectConfig::default()
    };
    config.cfar.kind = match args.cfar {
        Cfar::TwoParameter => CfarKind::TwoParameter,
        Cfar::Gamma => CfarKind::Gamma,
        Cfar::K => CfarKind::K,
    };
    config.cfar.pfa = args.pfa;
    config.cfar.looks = args.looks;
    config.discrimination.min_length_m = args.min_length_m;
    config.discrimination.max_length_m = args.max_length_m;

    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} tiles {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let run = detect(&scene, land.as_ref(), &config, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();

    let correlation = match &args.ais {
        Some(path) => Some(correlate_feed(&scene, &run.detections, path, args.gate_m)?),
        None => None,
    };
    let matched_mmsi = |id: u32| {
        correlation
            .as_ref()
            .and_then(|c| c.matched.iter().find(|m| m.detection == id))
            .map(|m| m.ais.mmsi)
    };
    let geojson = to_geojson(&scene, &run, |d| {
        let mut extra = serde_json::Map::new();
        if let Some(c) = &correlation {
            if let Some(m) = c.matched.iter().find(|m| m.detection == d.id) {
                extra.insert("matched_mmsi".into(), m.ais.mmsi.into());
                extra.insert("ais".into(), serde_json::to_value(m).unwrap_or_default());
                extra.insert("dark".into(), false.into());
            } else if let Some(dark) = c.dark.iter().find(|x| x.detection == d.id) {
                extra.insert("dark".into(), true.into());
                extra.insert(
                    "evidence".into(),
                    serde_json::to_value(dark).unwrap_or_default(),
                );
            }
        }
        extra
    });
    std::fs::write(&args.output, serde_json::to_vec_pretty(&geojson)?)
        .with_context(|| format!("writing {}", args.output.display()))?;
    if let Some(q) = &args.quicklook {
        write_quicklook(
            &scene,
            &run.detections,
            |d| matched_mmsi(d.id).is_some(),
            2048,
            q,
        )?;
    }

    println!(
        "scene      {} ({}×{} px, {})",
        scene.path.display(),
        scene.width,
        scene.height,
        scene.product
    );
    println!(
        "windows    {}",
        describe_windows(&run.windows, scene.spacing_m)
    );
    println!(
        "cfar       {:?}, PFA {:.2e}: {} hits in {} tested pixels ({} undecided near land or the swath edge)",
        config.cfar.kind, config.cfar.pfa, run.hits, run.tested, run.undecided
    );
    println!(
        "objects    {} detections ({} too short, {} too long dropped) in {:.2} s, {:.0} Mpx/s on {} threads",
        run.detections.len(),
        run.rejected.too_short,
        run.rejected.too_long,
        run.seconds,
        run.megapixels_per_second(),
        run.threads
    );
    if let Some(c) = &correlation {
        println!(
            "ais        {} vessels placed at the acquisition time, {} matched, {} dark",
            c.projected,
            c.matched.len(),
            c.dark.len()
        );
    }
    println!();
    println!("  id   latitude   longitude  length  width  heading  contrast  AIS");
    for d in &run.detections {
        let ais = match (&correlation, matched_mmsi(d.id)) {
            (None, _) => String::new(),
            (Some(_), Some(mmsi)) => format!("{mmsi}"),
            (Some(_), None) => "DARK".into(),
        };
        println!(
            "{:>4}  {:>9.5}  {:>10.5}  {:>5.0} m {:>4.0} m  {:>5.0}°  {:>6.1} dB  {}",
            d.id, d.lat, d.lon, d.length_m, d.width_m, d.heading_deg, d.contrast_db, ais
        );
    }
    println!();
    println!("wrote {}", args.output.display());
    if let Some(q) = &args.quicklook {
        println!("wrote {}", q.display());
    }
    Ok(())
}

/// Decodes an AIS recording into tracks and correlates them with the detections.
fn correlate_feed(
    scene: &Scene,
    detections: &[mizugiwa_satellite::sar::discriminate::Detection],
    path: &Path,
    gate_m: f64,
) -> anyhow::Result<Correlation> {
    let Some(acquisition) = scene.acquisition else {
        bail!("{} gives no acquisition time and geometry, so AIS cannot be brought to it (Sentinel-1 SAFE annotation, or the ACQUISITION_TIME, PLATFORM_HEADING, ... metadata items)", scene.path.display());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut decoder = Decoder::new();
    let mut tracks = Tracks::default();
    let (mut refused, mut messages) = (0usize, 0usize);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // Lines without a tag-block time are stamped with the acquisition time: a recording
        // without times can only be taken as a snapshot.
        match decoder.feed_line(line, acquisition.time_ms) {
            Ok(Some(report)) => {
                messages += 1;
                tracks.update(&report);
            }
            Ok(None) => {}
            Err(_) => refused += 1,
        }
    }
    if refused > 0 {
        eprintln!("ais: {messages} messages decoded, {refused} lines refused");
    }
    let config = CorrelationConfig {
        gate_m,
        ..CorrelationConfig::default()
    };
    Ok(correlate(
        detections,
        &project(&tracks, &acquisition, &config),
        &config,
    ))
}
