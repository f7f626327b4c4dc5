//! `mizugiwa drone frames|render`: vessels and people found in a sortie's video, placed on the
//! map from the telemetry log; and synthetic sorties to try it on.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use mizugiwa_drone::imagery::analyse::{analyse, AnalyseOptions};
use mizugiwa_drone::imagery::camera::{Gimbal, GimbalFrame, Intrinsics, Lens};
use mizugiwa_drone::imagery::detect::{Detector, DetectorConfig};
use mizugiwa_drone::imagery::detection::{feature_collection, Detection, DetectionClass};
use mizugiwa_drone::imagery::frames::FrameSource;
use mizugiwa_drone::imagery::render::TargetKind;
use mizugiwa_drone::imagery::sortie::patrol_sortie;
use mizugiwa_drone::imagery::timestamps::{file_stamp, rfc3339};
use mizugiwa_drone::imagery::track::{PoseTrack, TrackOptions};
use mizugiwa_drone::imagery::{quiet_opencv_log, ImageryError};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum ImageryCommand {
    /// Find vessels and people on the water in a sortie's video and put them on the map.
    ///
    /// Each frame's camera pose comes from the ground station's tlog (position, attitude and,
    /// when the vehicle sends it, the gimbal); the sea surface is taken to be at home's height
    /// minus --home-above-sea. Writes a GeoJSON FeatureCollection of detections and, with
    /// --crops, a JPEG of each as evidence.
    Frames(FramesArgs),
    /// Render a synthetic sortie over the sea off Tsushima (a boat, a person in the water and
    /// the coast), with its tlog and the true positions, to try `drone frames` on.
    Render {
        /// Directory to write `sortie-<start>.avi`, `sortie.tlog` and `truth.geojson` into.
        #[arg(short, long)]
        out: PathBuf,
        #[arg(long, default_value_t = 6.0)]
        seconds: f64,
        #[arg(long, default_value_t = 1280)]
        width: u32,
        #[arg(long, default_value_t = 720)]
        height: u32,
        /// Seed of the sea's texture and the sensor noise.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Time of the first frame, RFC 3339.
        #[arg(long, default_value = "2025-06-01T03:00:00Z", value_parser = parse_time)]
        start: u64,
    },
}

#[derive(Debug, clap::Args)]
pub struct FramesArgs {
    /// A video file (any container and codec OpenCV's FFmpeg reads), a stream URL
    /// (`rtsp://...`) or a directory of images.
    video: String,
    /// The sortie's telemetry log, as the ground station wrote it (`--tlog`).
    #[arg(long)]
    telemetry: PathBuf,
    /// The GeoJSON file to write.
    #[arg(short, long)]
    out: PathBuf,
    /// Directory for the evidence crops (`<detection id>.jpg`), created if missing.
    #[arg(long)]
    crops: Option<PathBuf>,
    /// When the first frame was taken: RFC 3339 (`2025-06-01T03:00:00Z`), or `log` for the
    /// start of the telemetry log. Default: a UTC stamp in the file name
    /// (`...20250601T030000Z...`).
    #[arg(long)]
    video_start: Option<String>,
    /// Frame rate of an image directory without time stamps in its file names.
    #[arg(long, default_value_t = 10.0)]
    fps: f64,
    /// Camera sensor width, mm (default: a 1" sensor).
    #[arg(long, default_value_t = 13.2)]
    sensor_width_mm: f64,
    /// Lens focal length, mm.
    #[arg(long, default_value_t = 8.8)]
    focal_mm: f64,
    /// Camera pitch, degrees (−90 looks straight down), when the log does not report the gimbal.
    #[arg(long, default_value_t = -90.0, allow_negative_numbers = true)]
    gimbal_pitch: f64,
    /// What --gimbal-pitch is measured from: the vehicle's body (a fixed camera) or the horizon
    /// (a stabilised gimbal).
    #[arg(long, value_enum, default_value_t = GimbalRef::Body)]
    gimbal_frame: GimbalRef,
    /// Height of home (where the log's relative altitude is 0) above the sea, m.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    home_above_sea: f64,
    /// The vehicle's system id, when the log holds several.
    #[arg(long)]
    system: Option<u8>,
    /// Analyse one frame in N.
    #[arg(long, default_value_t = 1)]
    every: u64,
    /// Anomaly threshold, standard deviations of the water.
    #[arg(long, default_value_t = 6.0)]
    threshold: f64,
    /// Skip frames the log does not cover instead of stopping.
    #[arg(long)]
    allow_partial: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GimbalRef {
    Body,
    Horizon,
}

fn parse_time(s: &str) -> Result<u64, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time (2025-06-01T03:00:00Z): {e}"))?;
    u64::try_from(t.unix_timestamp_nanos() / 1000).map_err(|_| format!("{s} is before 1970"))
}

pub fn run(c: ImageryCommand) -> anyhow::Result<()> {
    quiet_opencv_log();
    match c {
        ImageryCommand::Frames(args) => frames(args),
        ImageryCommand::Render {
            out,
            seconds,
            width,
            height,
            seed,
            start,
        } => render(&out, seconds, width, height, seed, start),
    }
}

fn frames(a: FramesArgs) -> anyhow::Result<()> {
    // Settings first: a typo should not cost a read of the whole log.
    if !(-180.0..=180.0).contains(&a.gimbal_pitch) {
        bail!(
            "--gimbal-pitch {} is not an angle in degrees",
            a.gimbal_pitch
        );
    }
    let lens = Lens {
        sensor_width_mm: a.sensor_width_mm,
        focal_mm: a.focal_mm,
    };
    Intrinsics::from_lens(1, 1, lens)?;
    let detector = Detector::new(DetectorConfig {
        threshold: a.threshold,
        ..Default::default()
    })?;
    let bytes = std::fs::read(&a.telemetry)
        .with_context(|| format!("reading the telemetry log {}", a.telemetry.display()))?;
    let track = PoseTrack::from_tlog(&bytes, a.system)
        .with_context(|| format!("reading the telemetry log {}", a.telemetry.display()))?;
    let start = match a.video_start.as_deref() {
        None => None,
        Some("log") => Some(track.span_us().0),
        Some(s) => Some(parse_time(s).map_err(anyhow::Error::msg)?),
    };
    let mut source = FrameSource::open(&a.video, start, a.fps)?;
    let fixed_gimbal = match a.gimbal_frame {
        GimbalRef::Body => Gimbal::body_pitch(a.gimbal_pitch),
        GimbalRef::Horizon => Gimbal::horizon_pitch(a.gimbal_pitch),
    };
    let options = AnalyseOptions {
        lens,
        track: TrackOptions {
            home_above_sea_m: a.home_above_sea,
            fixed_gimbal,
            ..Default::default()
        },
        every: a.every.max(1),
        allow_partial: a.allow_partial,
        ..Default::default()
    };
    let (log_start, log_end) = track.span_text();
    let gimbal = if track.has_gimbal() {
        "gimbal from the log".to_string()
    } else {
        format!(
            "fixed gimbal {:.0}° from the {:?}",
            a.gimbal_pitch, a.gimbal_frame
        )
        .to_lowercase()
    };
    eprintln!(
        "{}: vehicle {} in the log from {log_start} to {log_end}, {gimbal}",
        a.video, track.system_id
    );
    let progress = Progress::new();
    let result = analyse(
        &mut source,
        &track,
        &detector,
        &options,
        |read, expected| progress.show(read, expected),
    );
    progress.finish();
    let mut analysis = result?;

    // Crops first, then the GeoJSON that names them, through a temporary file: a failed run
    // leaves an earlier output as it was.
    let crop_names = match &a.crops {
        Some(dir) => Some(write_crops(dir, &analysis.detections)?),
        None => None,
    };
    let collection = feature_collection(&analysis.detections, |d| {
        crop_names
            .as_ref()
            .map(|dir| dir.join(format!("{}.jpg", d.id)).display().to_string())
    });
    write_atomically(
        &a.out,
        serde_json::to_string_pretty(&collection)?.as_bytes(),
    )?;

    let n = analysis.detections.len();
    eprintln!(
        "{} frames read, {} analysed ({} without water, {} in telemetry gaps, {} outside the log){}",
        analysis.frames_read,
        analysis.frames_analysed,
        analysis.frames_without_water,
        analysis.frames_in_gaps,
        analysis.frames_outside_log,
        match analysis.frames_expected {
            Some(e) if e > analysis.frames_read => format!("; the video said {e} frames: it may be truncated"),
            _ => String::new(),
        }
    );
    analysis.detections.sort_by_key(|d| (d.object, d.frame));
    for summary in objects(&analysis.detections) {
        eprintln!("{summary}");
    }
    eprintln!(
        "{n} detections of {} objects; wrote {}{}",
        analysis.objects,
        a.out.display(),
        crop_names
            .map(|d| format!(" and {n} crops in {}", d.display()))
            .unwrap_or_default()
    );
    Ok(())
}

/// One line per object: class, where, when and how big, over the frames it was seen in.
fn objects(detections: &[Detection]) -> Vec<String> {
    let mut out = Vec::new();
    for group in detections.chunk_by(|a, b| a.object == b.object) {
        let k = group.len() as f64;
        let lat = group.iter().map(|d| d.lat_deg).sum::<f64>() / k;
        let lon = group.iter().map(|d| d.lon_deg).sum::<f64>() / k;
        let mut lengths: Vec<f64> = group.iter().map(|d| d.length_m).collect();
        lengths.sort_by(f64::total_cmp);
        let class = if group.iter().any(|d| d.class == DetectionClass::Vessel) {
            DetectionClass::Vessel
        } else if group.iter().any(|d| d.class == DetectionClass::Person) {
            DetectionClass::Person
        } else {
            DetectionClass::Unknown
        };
        out.push(format!(
            "  object {}: {} at {lat:.6}, {lon:.6}, {:.1} m long, seen in {} frames from {} (best score {:.1})",
            group[0].object.unwrap_or(0),
            class.as_str(),
            lengths[lengths.len() / 2],
            group.len(),
            rfc3339(group[0].time_us),
            group.iter().map(|d| d.score).fold(0.0, f64::max),
        ));
    }
    out
}

fn write_crops(dir: &Path, detections: &[Detection]) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for d in detections {
        let path = dir.join(format!("{}.jpg", d.id));
        std::fs::write(&path, &d.crop_jpeg)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir.to_path_buf())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("geojson.partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Frames read so far on a terminal; nothing in a log or a pipe.
struct Progress {
    on: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
        }
    }

    fn show(&self, read: u64, expected: Option<u64>) {
        if self.on && read.is_multiple_of(10) {
            let of = expected.map(|e| format!(" of {e}")).unwrap_or_default();
            eprint!("\r  frame {read}{of}");
            let _ = std::io::stderr().flush();
        }
    }

    fn finish(&self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
    }
}

fn render(
    out: &Path,
    seconds: f64,
    width: u32,
    height: u32,
    seed: u64,
    start: u64,
) -> anyhow::Result<()> {
    if !(seconds > 0.0 && seconds <= 600.0)
        || width < 64
        || height < 48
        || width > 7680
        || height > 4320
    {
        bail!("render between 64x48 and 7680x4320 pixels, for up to 600 seconds");
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut sortie = patrol_sortie(seed, width, height, seconds);
    sortie.start_us = start;
    let video = out.join(format!("sortie-{}.avi", file_stamp(start)));
    let tlog = out.join("sortie.tlog");
    let progress = Progress::new();
    let written = sortie.write(&video, &tlog, |k, total| progress.show(k, Some(total)));
    progress.finish();
    written
        .map_err(|e: ImageryError| anyhow::anyhow!(e))
        .context("rendering the sortie")?;
    let truth: Vec<_> = sortie
        .scene
        .targets
        .iter()
        .map(|t| {
            let (kind, size) = match t.kind {
                TargetKind::Boat { length_m, .. } => ("vessel", length_m),
                TargetKind::Person { diameter_m } => ("person", diameter_m),
            };
            json!({
                "type": "Feature",
                "geometry": { "type": "Point", "coordinates": [t.lon_deg, t.lat_deg] },
                "properties": { "class": kind, "length_m": size },
            })
        })
        .collect();
    let truth_path = out.join("truth.geojson");
    std::fs::write(
        &truth_path,
        serde_json::to_string_pretty(&json!({ "type": "FeatureCollection", "features": truth }))?,
    )
    .with_context(|| format!("writing {}", truth_path.display()))?;
    let gimbal = match sortie.gimbal.frame {
        GimbalFrame::Horizon => "stabilised",
        _ => "fixed",
    };
    eprintln!(
        "wrote {} ({} frames, {width}x{height}, {} m up, {gimbal} camera {:.0}° down), {} and {}",
        video.display(),
        sortie.frames(),
        sortie.height_m,
        -sortie.gimbal.pitch_deg,
        tlog.display(),
        truth_path.display()
    );
    for t in &sortie.scene.targets {
        eprintln!("  {:?} at {:.6}, {:.6}", t.kind, t.lat_deg, t.lon_deg);
    }
    Ok(())
}
