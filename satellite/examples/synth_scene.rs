//! Writes a synthetic SAR scene and its truth (`<out>.truth.json` beside it).
//!
//! ```text
//! cargo run --release -p mizugiwa-satellite --example synth_scene -- out.tif \
//!     [--size 4096] [--ships 40] [--seed 1] [--clutter gamma|k] [--gcp] \
//!     [--center 129.55,34.4] [--no-land] [--nodata 0] [--no-compress]
//! ```
//!
//! By default the scene is centred off Tsushima's east coast with Natural Earth land drawn in,
//! so some ships lie close to the shore.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use mizugiwa_satellite::land::LandMask;
use mizugiwa_satellite::sar::synth::{
    random_ships, write_scene, Clutter, SceneSpec, ShipMix, SynthGeoref,
};

struct Args {
    out: PathBuf,
    size: usize,
    ships: usize,
    seed: u64,
    clutter: Clutter,
    gcp: bool,
    center: (f64, f64),
    land: bool,
    nodata: usize,
    compress: bool,
}

const USAGE: &str =
    "usage: synth_scene OUT.tif [--size N] [--ships N] [--seed N] [--clutter gamma|k] [--gcp] \
                     [--center LON,LAT] [--no-land] [--nodata COLUMNS] [--no-compress]";

fn parse() -> Result<Args, String> {
    let mut args = Args {
        out: PathBuf::new(),
        size: 4096,
        ships: 40,
        seed: 1,
        clutter: Clutter::Gamma { looks: 4.4 },
        gcp: false,
        center: (129.55, 34.4),
        land: true,
        nodata: 0,
        compress: true,
    };
    let mut out = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--size" => {
                args.size = value("--size")?
                    .parse()
                    .map_err(|e| format!("--size: {e}"))?
            }
            "--ships" => {
                args.ships = value("--ships")?
                    .parse()
                    .map_err(|e| format!("--ships: {e}"))?
            }
            "--seed" => {
                args.seed = value("--seed")?
                    .parse()
                    .map_err(|e| format!("--seed: {e}"))?
            }
            "--nodata" => {
                args.nodata = value("--nodata")?
                    .parse()
                    .map_err(|e| format!("--nodata: {e}"))?
            }
            "--clutter" => {
                args.clutter = match value("--clutter")?.as_str() {
                    "gamma" => Clutter::Gamma { looks: 4.4 },
                    "k" | "K" => Clutter::K {
                        looks: 4.4,
                        shape: 4.0,
                    },
                    other => return Err(format!("--clutter {other}: expected gamma or k")),
                }
            }
            "--center" => {
                let v = value("--center")?;
                let (lon, lat) = v
                    .split_once(',')
                    .ok_or_else(|| format!("--center {v}: expected LON,LAT"))?;
                args.center = (
                    lon.trim()
                        .parse()
                        .map_err(|e| format!("--center longitude: {e}"))?,
                    lat.trim()
                        .parse()
                        .map_err(|e| format!("--center latitude: {e}"))?,
                );
            }
            "--gcp" => args.gcp = true,
            "--no-land" => args.land = false,
            "--no-compress" => args.compress = false,
            "-h" | "--help" => return Err(USAGE.to_string()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}\n{USAGE}")),
            path if out.is_none() => out = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument {extra}\n{USAGE}")),
        }
    }
    args.out = out.ok_or_else(|| USAGE.to_string())?;
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut spec = SceneSpec {
        width: args.size,
        height: args.size,
        center_lon: args.center.0,
        center_lat: args.center.1,
        georef: if args.gcp {
            SynthGeoref::GcpGrid
        } else {
            SynthGeoref::Utm
        },
        clutter: args.clutter,
        land: args.land.then(|| LandMask::natural_earth().clone()),
        nodata_margin: args.nodata,
        seed: args.seed,
        compress: args.compress,
        ..SceneSpec::default()
    };
    let start = Instant::now();
    spec.ships = match random_ships(
        &spec,
        spec.land.as_ref(),
        args.ships,
        &ShipMix::default(),
        args.seed,
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("placing ships: {e}");
            return ExitCode::FAILURE;
        }
    };
    let placed = start.elapsed();
    let truth = match write_scene(&spec, &args.out) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("writing {}: {e}", args.out.display());
            return ExitCode::FAILURE;
        }
    };
    let written = start.elapsed() - placed;
    let truth_path = args.out.with_extension("truth.json");
    if let Err(e) = truth.save_json(&truth_path) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let near = truth
        .ships
        .iter()
        .filter(|s| s.distance_to_shore_m.is_some_and(|d| d <= 2_000.0))
        .count();
    let moving = truth.ships.iter().filter(|s| s.sog_knots > 0.0).count();
    println!(
        "{}: {} × {} px, {} of {} ships placed ({near} within 2 km of shore, {moving} moving) \
         in {:.2} s, scene written in {:.2} s; truth in {}",
        args.out.display(),
        spec.width,
        spec.height,
        truth.ships.len(),
        args.ships,
        placed.as_secs_f64(),
        written.as_secs_f64(),
        truth_path.display()
    );
    ExitCode::SUCCESS
}
