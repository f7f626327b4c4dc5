//! Imagery benchmark: georeferencing error against altitude and attitude noise, and detection
//! speed on 1280 × 720 frames. Results go in `drone/BENCHMARKS.md`.
//!
//! ```text
//! cargo run --release -p mizugiwa-drone --example imagery_bench -- [--quick] [--out drone/BENCHMARKS.md]
//! ```
//!
//! `--out` puts the report in that file between `<!-- imagery_bench: begin -->` and
//! `<!-- imagery_bench: end -->` (appended the first time); `--quick` takes a tenth of the
//! samples.
//!
//! Georeferencing error is measured two ways, both with a camera fixed to the body (so the
//! vehicle's attitude error goes straight into the ray; a stabilised gimbal's own angle error
//! plays the same part):
//! - geometry: a true pixel georeferenced with a noisy pose (roll, pitch and yaw each off by a
//!   normal error of σ), over pixels spread evenly across the frame;
//! - end to end: a frame rendered from the true pose with a 7 m boat at a random place, the
//!   detector run with the noisy pose, its detection compared with the boat's true position.
//!
//! Detection speed: frames of a coast with a boat and a person, detection alone (frames
//! already decoded), with OpenCV's threads on all cores and on one; the anchor is decoding the
//! same frames from an MJPG video with OpenCV in the same run.

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mizugiwa_drone::imagery::camera::{
    distance_m, CameraPose, Gimbal, Intrinsics, Lens, VehiclePose, View,
};
use mizugiwa_drone::imagery::detect::{Detector, DetectorConfig};
use mizugiwa_drone::imagery::detection::DetectionClass;
use mizugiwa_drone::imagery::frames::{Frame, FrameSource};
use mizugiwa_drone::imagery::render::{render, Rng, Scene, Target, TargetKind};
use mizugiwa_drone::imagery::sortie::patrol_sortie;
use mizugiwa_drone::imagery::timestamps::file_stamp;

/// Everything printed, for `--out`.
static REPORT: Mutex<String> = Mutex::new(String::new());

macro_rules! say {
    ($($t:tt)*) => {{
        let line = format!($($t)*);
        println!("{line}");
        let mut r = REPORT.lock().unwrap();
        r.push_str(&line);
        r.push('\n');
    }};
}

const W: u32 = 1280;
const H: u32 = 720;

fn pose(height_m: f64, roll: f64, pitch: f64, yaw: f64, gimbal_pitch: f64) -> View {
    let vehicle = VehiclePose {
        lat_deg: 34.2,
        lon_deg: 129.25,
        height_m,
        roll_deg: roll,
        pitch_deg: pitch,
        yaw_deg: yaw,
    };
    View::new(
        Intrinsics::from_lens(W, H, Lens::default()).unwrap(),
        CameraPose {
            vehicle,
            gimbal: Gimbal::body_pitch(gimbal_pitch),
        },
    )
}

/// The true view and a noisy copy of it: attitude off by σ (degrees) on each axis and height
/// by `sigma_h` metres.
fn views(
    rng: &mut Rng,
    height_m: f64,
    gimbal_pitch: f64,
    sigma_deg: f64,
    sigma_h: f64,
) -> (View, View) {
    let (roll, pitch, yaw) = (
        4.0 * (rng.uniform() - 0.5),
        -3.0 + 2.0 * (rng.uniform() - 0.5),
        360.0 * rng.uniform(),
    );
    let truth = pose(height_m, roll, pitch, yaw, gimbal_pitch);
    let noisy = pose(
        height_m + sigma_h * rng.gaussian(),
        roll + sigma_deg * rng.gaussian(),
        pitch + sigma_deg * rng.gaussian(),
        yaw + sigma_deg * rng.gaussian(),
        gimbal_pitch,
    );
    (truth, noisy)
}

fn stats(mut errors: Vec<f64>) -> (f64, f64) {
    if errors.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    errors.sort_by(f64::total_cmp);
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    (
        mean,
        errors[((errors.len() as f64 * 0.95).ceil() as usize).min(errors.len()) - 1],
    )
}

/// Georeferencing error of true pixels under a noisy pose, m: (mean, p95, mean range).
fn geometry(
    rng: &mut Rng,
    height_m: f64,
    gimbal_pitch: f64,
    sigma_deg: f64,
    sigma_h: f64,
    n: usize,
) -> (f64, f64, f64) {
    let mut errors = Vec::with_capacity(n);
    let mut ranges = 0.0;
    while errors.len() < n {
        let (truth, noisy) = views(rng, height_m, gimbal_pitch, sigma_deg, sigma_h);
        let (u, v) = (
            rng.uniform() * f64::from(W - 1),
            rng.uniform() * f64::from(H - 1),
        );
        let (Some(p), Some(q), Some(s)) = (
            truth.georeference(u, v),
            noisy.georeference(u, v),
            truth.sea_point(u, v),
        ) else {
            continue;
        };
        errors.push(distance_m(p, q));
        ranges += s.range_m;
    }
    let (mean, p95) = stats(errors);
    (mean, p95, ranges / n as f64)
}

/// The same through rendering and detection: (mean, p95, share of frames the boat was found in).
fn end_to_end(
    rng: &mut Rng,
    detector: &Detector,
    height_m: f64,
    gimbal_pitch: f64,
    sigma_deg: f64,
    n: usize,
) -> (f64, f64, f64) {
    let mut errors = Vec::new();
    for k in 0..n {
        let (truth, noisy) = views(rng, height_m, gimbal_pitch, sigma_deg, 0.0);
        // Keep the boat (7 m, up to 60 px at 50 m) off the frame's edge.
        let (u, v) = (
            100.0 + rng.uniform() * f64::from(W - 200),
            100.0 + rng.uniform() * f64::from(H - 200),
        );
        let Some((lat, lon)) = truth.georeference(u, v) else {
            continue;
        };
        let mut scene = Scene::open_sea(34.2, 129.25, rng.next_u64());
        let colour = if k % 2 == 0 {
            [232, 232, 228]
        } else {
            [42, 40, 38]
        };
        let heading_deg = 360.0 * rng.uniform();
        scene.targets.push(Target {
            lat_deg: lat,
            lon_deg: lon,
            kind: TargetKind::Boat {
                length_m: 7.0,
                beam_m: 2.4,
                heading_deg,
            },
            colour,
        });
        let image = render(&scene, &truth, k as u64).unwrap();
        let found = detector
            .detect(
                &Frame {
                    index: k as u64,
                    time_us: 0,
                    image,
                },
                &noisy,
            )
            .unwrap();
        if let Some(d) = found
            .detections
            .iter()
            .find(|d| d.class == DetectionClass::Vessel)
        {
            errors.push(distance_m((d.lat_deg, d.lon_deg), (lat, lon)));
        }
    }
    let found = errors.len() as f64 / n as f64;
    let (mean, p95) = stats(errors);
    (mean, p95, found)
}

/// False detections on frames with nothing on the water: open sea and a coast across the
/// view, every height and camera angle of the tables, several seeds.
fn false_alarms(rng: &mut Rng, detector: &Detector, n: usize) {
    say!("\n## False detections on empty water\n");
    say!("| height | camera | frames | with a coast | false detections |");
    say!("|---|---|---|---|---|");
    for h in [50.0, 100.0, 200.0] {
        for gimbal in [-90.0, -45.0] {
            let mut false_detections = 0;
            for k in 0..n {
                let (truth, _) = views(rng, h, gimbal, 0.0, 0.0);
                let mut scene = Scene::open_sea(34.2, 129.25, rng.next_u64());
                if k % 2 == 1 {
                    // The coast through the middle of the view (the vehicle is at the scene's
                    // origin).
                    scene.land_east_of_m = Some(truth.sea_point(640.0, 360.0).unwrap().east_m);
                }
                let image = render(&scene, &truth, k as u64).unwrap();
                false_detections += detector
                    .detect(
                        &Frame {
                            index: k as u64,
                            time_us: 0,
                            image,
                        },
                        &truth,
                    )
                    .unwrap()
                    .detections
                    .len();
            }
            say!(
                "| {h:.0} m | {:.0}° down | {n} | {} | {false_detections} |",
                -gimbal,
                n / 2
            );
        }
    }
}

fn throughput(quick: bool) {
    let frames = if quick { 10 } else { 40 };
    let sortie = patrol_sortie(9, W, H, frames as f64 / 10.0);
    let images: Vec<(Frame, View)> = (0..frames)
        .map(|k| {
            (
                Frame {
                    index: k,
                    time_us: 0,
                    image: render(&sortie.scene, &sortie.view(k).unwrap(), k).unwrap(),
                },
                sortie.view(k).unwrap(),
            )
        })
        .collect();
    let detector = Detector::new(DetectorConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let video = dir
        .path()
        .join(format!("bench-{}.avi", file_stamp(sortie.start_us)));
    sortie
        .write(&video, &dir.path().join("bench.tlog"), |_, _| {})
        .unwrap();
    let cores = opencv::core::get_num_threads().unwrap();
    say!("\n## Detection speed, {W} x {H} frames ({frames} frames of a coast with a boat and a person)\n");
    say!("| stage | OpenCV threads | ms per frame | frames/s | Mpx/s |");
    say!("|---|---|---|---|---|");
    for threads in [cores, 1] {
        opencv::core::set_num_threads(threads).unwrap();
        // Decoding the MJPG video (the anchor): what reading the frames costs anyway.
        let t = Instant::now();
        let mut source = FrameSource::open(video.to_str().unwrap(), None, 10.0).unwrap();
        let mut decoded = 0;
        while source.next_frame().unwrap().is_some() {
            decoded += 1;
        }
        let decode = t.elapsed().as_secs_f64() / f64::from(decoded);
        let t = Instant::now();
        let mut found = 0;
        for (frame, view) in &images {
            found += detector.detect(frame, view).unwrap().detections.len();
        }
        let detect = t.elapsed().as_secs_f64() / frames as f64;
        let mpx = f64::from(W * H) / 1e6;
        say!(
            "| decode MJPG (anchor) | {threads} | {:.1} | {:.1} | {:.1} |",
            decode * 1e3,
            1.0 / decode,
            mpx / decode
        );
        say!(
            "| detect ({:.1} per frame; {:.2}x the decode time) | {threads} | {:.1} | {:.1} | {:.1} |",
            found as f64 / frames as f64,
            detect / decode,
            detect * 1e3,
            1.0 / detect,
            mpx / detect
        );
    }
    opencv::core::set_num_threads(cores).unwrap();
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {cores} cores")
}

fn write_out(path: &str) {
    const BEGIN: &str = "<!-- imagery_bench: begin -->";
    const END: &str = "<!-- imagery_bench: end -->";
    let report = REPORT
        .lock()
        .unwrap()
        .replacen("# Imagery benchmark", "## Imagery benchmark", 1)
        .replace("\n## ", "\n### ");
    let block = format!("{BEGIN}\n{}{END}\n", report.trim_start());
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(b)) if a < b => format!(
            "{}{block}{}",
            &old[..a],
            old[b + END.len()..].trim_start_matches('\n')
        ),
        _ => format!(
            "{}{}{block}",
            old,
            if old.is_empty() || old.ends_with("\n\n") {
                ""
            } else {
                "\n"
            }
        ),
    };
    std::fs::write(path, new).unwrap();
    eprintln!("wrote the report into {path}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let n_geo = if quick { 400 } else { 4000 };
    let n_e2e = if quick { 6 } else { 40 };
    let mut rng = Rng::new(2025);
    let detector = Detector::new(DetectorConfig::default()).unwrap();
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    say!("# Imagery benchmark\n");
    say!(
        "Measured by `cargo run --release -p mizugiwa-drone --example imagery_bench -- --out drone/BENCHMARKS.md`{}, started {} UTC, on **{}**. \
         Frames {W} x {H} from a 1\" sensor behind an 8.8 mm lens ({:.1}° across), the camera fixed to the body.",
        if quick { " --quick" } else { "" },
        &mizugiwa_drone::imagery::timestamps::rfc3339(secs * 1_000_000)[..16].replace('T', " "),
        machine(),
        2.0 * (6.6f64 / 8.8).atan().to_degrees()
    );
    say!("\nThe stated georeferencing error, with telemetry as logged and no noise added, is **2 m + 1% of the slant range** (asserted by `drone/tests/imagery.rs` and the unit tests in `drone/src/imagery/`); the noise-free rows show what the detector's centroid adds, under 0.2 m. Beyond that the pose dominates: the error grows with the slant range times the attitude error (1° is 1.75 cm per metre of range), and more along the line of sight in oblique views, where the ray meets the sea at a shallow angle; a height error moves points by the height error times the tangent of the view angle.");
    for (gimbal, name) in [
        (-90.0, "nadir (camera 90° down)"),
        (-45.0, "oblique (camera 45° down)"),
    ] {
        say!("\n## Georeferencing error, {name}: mean / p95, m\n");
        say!("Geometry: {n_geo} true pixels across the frame per cell. End to end: {n_e2e} rendered frames per cell, a 7 m boat, detected (found share in brackets).\n");
        say!("| height | mean range | attitude σ | geometry mean | geometry p95 | end to end mean | end to end p95 |");
        say!("|---|---|---|---|---|---|---|");
        for h in [50.0, 100.0, 200.0] {
            for sigma in [0.0, 0.5, 1.0, 2.0] {
                let (gm, gp, range) = geometry(&mut rng, h, gimbal, sigma, 0.0, n_geo);
                let (em, ep, found) = end_to_end(&mut rng, &detector, h, gimbal, sigma, n_e2e);
                say!(
                    "| {h:.0} m | {range:.0} m | {sigma}° | {gm:.2} | {gp:.2} | {em:.2} | {ep:.2} ({:.0}%) |",
                    found * 100.0
                );
            }
        }
    }
    say!("\n## Georeferencing error against height error (attitude exact), 100 m: mean / p95, m\n");
    say!("| camera | height σ | mean | p95 |");
    say!("|---|---|---|---|");
    for (gimbal, name) in [(-90.0, "nadir"), (-45.0, "45° down")] {
        for sigma_h in [0.0, 1.0, 3.0] {
            let (m, p, _) = geometry(&mut rng, 100.0, gimbal, 0.0, sigma_h, n_geo);
            say!("| {name} | {sigma_h} m | {m:.2} | {p:.2} |");
        }
    }
    false_alarms(&mut rng, &detector, if quick { 4 } else { 20 });
    throughput(quick);
    if let Some(path) = out {
        write_out(&path);
    }
}
