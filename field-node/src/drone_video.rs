//! Drone sortie videos dropped into a folder become detections on the map.
//!
//! `kind = "drone_video_inbox"`: after a patrol, the team copies each sortie into
//! `DIR/<sortie-id>/`: the camera's video (`video.avi`, `.mp4`, `.mkv` or `.mov`, or a `frames/`
//! folder of images), the ground station's telemetry log `telemetry.tlog` (the node's own
//! `[drones] tlog_dir` holds one), an optional `meta.json`, and a `READY` marker written
//! **last**. The node finds the vessels and people on the water in every `every`-th frame
//! (`mizugiwa-drone`'s imagery: water segmentation, a CFAR-like anomaly test, the camera pose
//! from the log), groups the sightings of one object, and writes one
//! `detections/<site>-<sortie>-<n>` record per object (its best sighting; `source = "drone"`)
//! with the frame crop saved as evidence under `<data_dir>/evidence/<sortie>/`. All records of a
//! sortie go in one transaction. Then the folder moves to `DIR/done/`; a sortie with bad input
//! (no log, a log that does not cover the video, an unreadable video, bad `meta.json`) moves to
//! `DIR/rejected/` with `error.txt` saying why, and writes nothing.
//!
//! `meta.json` (every key optional):
//! `{"video_start": "2026-11-26T03:00:00Z" | "log", "system": 1, "gimbal_pitch_deg": -90,
//!   "gimbal_frame": "body" | "horizon", "sensor_width_mm": 13.2, "focal_mm": 8.8,
//!   "home_above_sea_m": 0}`. Without `video_start` the video's file name must carry its UTC
//! start (as cameras name files), or `"log"` says it started with the log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use mizugiwa_command::records::DETECTIONS;
use mizugiwa_drone::imagery::analyse::{analyse, AnalyseOptions};
use mizugiwa_drone::imagery::camera::{Gimbal, Lens};
use mizugiwa_drone::imagery::detect::{Detector, DetectorConfig};
use mizugiwa_drone::imagery::detection::Detection;
use mizugiwa_drone::imagery::frames::FrameSource;
use mizugiwa_drone::imagery::track::{PoseTrack, TrackOptions};
use mizugiwa_sync::{FieldOp, Value};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::scanner::{
    make_dirs, poll_ready_folders, reject, retry, unique, valid_id, Context, Failure,
};

/// What a sortie folder may say about itself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SortieMeta {
    video_start: Option<String>,
    system: Option<u8>,
    gimbal_pitch_deg: Option<f64>,
    gimbal_frame: Option<String>,
    sensor_width_mm: Option<f64>,
    focal_mm: Option<f64>,
    home_above_sea_m: Option<f64>,
}

const VIDEO_NAMES: [&str; 4] = ["video.avi", "video.mp4", "video.mkv", "video.mov"];

/// Starts the inbox: polls `dir` every `poll_ms`, analysing one frame in `every`.
pub fn start(
    dir: PathBuf,
    poll_ms: u64,
    every: u64,
    ctx: Context,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    make_dirs(&dir)?;
    let evidence = ctx.data_dir.join("evidence");
    std::fs::create_dir_all(&evidence)
        .with_context(|| format!("creating {}", evidence.display()))?;
    mizugiwa_drone::imagery::quiet_opencv_log();
    tracing::info!(dir = %dir.display(), every, "drone video inbox watching");
    Ok(tokio::spawn(async move {
        loop {
            let (ctx, dir) = (ctx.clone(), dir.clone());
            let polled = tokio::task::spawn_blocking(move || poll(&ctx, &dir, every.max(1))).await;
            if let Ok(Err(e)) = polled {
                tracing::warn!(error = %format!("{e:#}"), "drone video inbox scan failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(poll_ms)) => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
        }
    }))
}

fn poll(ctx: &Context, dir: &Path, every: u64) -> anyhow::Result<()> {
    poll_ready_folders(ctx, dir, "drone_video_inbox", |id, folder| {
        process(ctx, id, folder, every).map(|objects| format!("{objects} objects"))
    })
}

/// Analyses one sortie folder and writes its detections; returns how many objects.
fn process(ctx: &Context, id: &str, folder: &Path, every: u64) -> Result<usize, Failure> {
    valid_id(id).map_err(reject)?;
    let meta: SortieMeta = match std::fs::read_to_string(folder.join("meta.json")) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| reject(format!("meta.json: {e}")))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => SortieMeta::default(),
        Err(e) => return Err(reject(format!("meta.json: {e}"))),
    };
    let log = std::fs::read(folder.join("telemetry.tlog"))
        .map_err(|e| reject(format!("telemetry.tlog: {e}")))?;
    let track = PoseTrack::from_tlog(&log, meta.system)
        .map_err(|e| reject(format!("telemetry.tlog: {e}")))?;
    let video = VIDEO_NAMES
        .iter()
        .map(|n| folder.join(n))
        .chain(std::iter::once(folder.join("frames")))
        .find(|p| p.exists())
        .ok_or_else(|| {
            reject(format!(
                "no video: one of {} or a frames/ folder",
                VIDEO_NAMES.join(", ")
            ))
        })?;
    let start = match meta.video_start.as_deref() {
        Some("log") => Some(track.span_us().0),
        Some(t) => {
            Some(parse_rfc3339_us(t).map_err(|e| reject(format!("meta.json video_start: {e}")))?)
        }
        None => None,
    };
    let lens = Lens {
        sensor_width_mm: meta
            .sensor_width_mm
            .unwrap_or(Lens::default().sensor_width_mm),
        focal_mm: meta.focal_mm.unwrap_or(Lens::default().focal_mm),
    };
    let pitch = meta.gimbal_pitch_deg.unwrap_or(-90.0);
    if !(-180.0..=180.0).contains(&pitch) {
        return Err(reject(format!(
            "meta.json gimbal_pitch_deg {pitch} is not an angle"
        )));
    }
    let fixed_gimbal = match meta.gimbal_frame.as_deref().unwrap_or("body") {
        "body" => Gimbal::body_pitch(pitch),
        "horizon" => Gimbal::horizon_pitch(pitch),
        other => {
            return Err(reject(format!(
                "meta.json gimbal_frame {other:?}: body or horizon"
            )))
        }
    };
    let options = AnalyseOptions {
        lens,
        track: TrackOptions {
            home_above_sea_m: meta.home_above_sea_m.unwrap_or(0.0),
            fixed_gimbal,
            ..Default::default()
        },
        every,
        ..Default::default()
    };
    let detector = Detector::new(DetectorConfig::default()).map_err(reject)?;
    let video_name = video.to_string_lossy().into_owned();
    let mut source = FrameSource::open(&video_name, start, 10.0).map_err(reject)?;
    let analysis = analyse(&mut source, &track, &detector, &options, |_, _| {}).map_err(reject)?;

    // The best sighting of each object.
    let mut best: std::collections::BTreeMap<u32, &Detection> = std::collections::BTreeMap::new();
    let mut sightings: std::collections::BTreeMap<u32, u32> = std::collections::BTreeMap::new();
    for (i, d) in analysis.detections.iter().enumerate() {
        let object = d.object.unwrap_or(u32::MAX - i as u32);
        *sightings.entry(object).or_default() += 1;
        if best.get(&object).is_none_or(|b| d.score > b.score) {
            best.insert(object, d);
        }
    }

    // Evidence first: a record never points at a file that is not there. A sortie dropped again
    // under a name already used gets `<id>.1`, ... so earlier detections are never overwritten.
    let evidence = unique(&ctx.data_dir.join("evidence"), id);
    let key = evidence
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(id)
        .to_owned();
    std::fs::create_dir_all(&evidence)
        .with_context(|| format!("creating {}", evidence.display()))
        .map_err(retry)?;
    let mut records = Vec::new();
    for (n, (object, d)) in best.iter().enumerate() {
        let crop = evidence.join(format!("{}.jpg", d.id));
        if !d.crop_jpeg.is_empty() {
            std::fs::write(&crop, &d.crop_jpeg)
                .with_context(|| format!("writing {}", crop.display()))
                .map_err(retry)?;
        }
        let record_id = format!("{}-{key}-{n}", ctx.site);
        let ops: Vec<(&str, FieldOp)> = vec![
            ("site", FieldOp::Set(ctx.site.clone().into())),
            ("source", FieldOp::Set("drone".into())),
            ("class", FieldOp::Set(d.class.as_str().into())),
            ("lat", FieldOp::Set(Value::Float(d.lat_deg))),
            ("lon", FieldOp::Set(Value::Float(d.lon_deg))),
            (
                "length_m",
                FieldOp::Set(Value::Float((d.length_m * 10.0).round() / 10.0)),
            ),
            ("at_ms", FieldOp::Set(Value::Int((d.time_us / 1000) as i64))),
            ("sortie", FieldOp::Set(key.clone().into())),
            (
                "crop_path",
                FieldOp::Set(crop.to_string_lossy().into_owned().into()),
            ),
            (
                "detail",
                FieldOp::Set(Value::Json(
                    json!({
                        "vehicle": track.system_id,
                        "sightings": sightings.get(object).copied().unwrap_or(1),
                        "score": d.score,
                        "width_m": d.width_m,
                        "frame": d.frame,
                        "pixel": d.pixel,
                        "bbox": d.bbox,
                        "range_m": d.range_m,
                        "gsd_m": d.gsd_m,
                        "pose": d.pose,
                    })
                    .to_string(),
                )),
            ),
        ];
        records.push((record_id, ops));
    }
    let writes: Vec<mizugiwa_sync::RecordWrite> = records
        .iter()
        .map(|(rid, ops)| (DETECTIONS, rid.as_str(), ops.as_slice()))
        .collect();
    if !writes.is_empty() {
        ctx.store
            .lock()
            .map_err(|_| retry(anyhow::anyhow!("store lock poisoned")))?
            .put_all(&writes)
            .with_context(|| format!("writing the detections of sortie {id}"))
            .map_err(retry)?;
    }
    Ok(records.len())
}

/// `2026-11-26T03:00:00Z` (or with fractional seconds / an offset) as µs since the epoch.
fn parse_rfc3339_us(text: &str) -> Result<u64, String> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{text:?}: {e}"))?;
    u64::try_from(t.unix_timestamp_nanos() / 1000).map_err(|_| format!("{text:?} is before 1970"))
}
