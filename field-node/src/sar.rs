//! SAR scenes dropped into a folder become vessel detections, and the dark ones alerts.
//!
//! `kind = "sar_inbox"`: a coastal site receives satellite scenes (a Sentinel-1 GRD as a
//! `.SAFE` folder, or any GeoTIFF) and copies each into `DIR/<scene-id>/` with a `READY`
//! marker written **last**. The node detects the vessels (`mizugiwa-satellite`: GDAL, land
//! mask, CFAR, discrimination), brings the site's AIS picture (every AIS source of the site
//! feeds it) to the scene's acquisition time, matches them one-to-one, and writes:
//! - one `detections/<site>-sar-<scene>-<n>` per vessel (`source = "sar"`, `matched_mmsi`
//!   when an AIS vessel was there, the measurements and the scene in `detail`);
//! - one `alerts/dark-<site>-<scene>-<n>` (`kind = "dark_vessel"`) per detection without AIS,
//!   with the evidence: the nearest AIS vessel, its distance and how old its report was;
//! - the quicklook PNG under `<data_dir>/evidence/sar/<scene>.png` (its path in `detail`).
//!
//! All records of a scene go in one transaction, then the folder moves to `DIR/done/`. A scene
//! GDAL cannot read, without georeferencing, or with a broken annotation moves to
//! `DIR/rejected/` with `error.txt` and writes nothing. A scene without acquisition time is
//! still searched, but nothing is called dark: without a time there is no AIS to compare with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use mizugiwa_command::records::{NewAlert, ALERTS, DETECTIONS};
use mizugiwa_satellite::ais::Tracks;
use mizugiwa_satellite::correlate::{correlate, project, Correlation, CorrelationConfig};
use mizugiwa_satellite::land::LandMask;
use mizugiwa_satellite::sar::detect::{detect, DetectConfig, DetectError};
use mizugiwa_satellite::sar::quicklook::write_quicklook;
use mizugiwa_satellite::sar::Scene;
use mizugiwa_sync::{FieldOp, FieldWrite, RecordWrite, Value};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ais::now_ms;
use crate::scanner::{make_dirs, poll_ready_folders, reject, retry, valid_id, Context, Failure};

/// The site's AIS picture: every AIS source of the site updates it, the SAR inbox reads it.
pub type AisPicture = Arc<Mutex<Tracks>>;

/// The `sar_inbox` source's settings beyond the folder.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SarSettings {
    /// Detection (CFAR kind, windows, PFA, looks, sizes, shore buffer, tiles, threads).
    pub detect: DetectConfig,
    /// AIS matching (gate, interpolation and dead-reckoning limits).
    pub correlation: CorrelationConfig,
    /// Land polygons (GeoJSON) instead of the built-in Natural Earth coastline.
    pub land: Option<PathBuf>,
}

/// Starts the inbox.
pub fn start(
    dir: PathBuf,
    poll_ms: u64,
    settings: SarSettings,
    picture: AisPicture,
    ctx: Context,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    // Checked here, not per scene: a bad setting would otherwise reject every scene.
    settings
        .detect
        .validate()
        .map_err(|e| anyhow::anyhow!("sar_inbox [sources.detect] {e}"))?;
    settings
        .correlation
        .validate()
        .map_err(|e| anyhow::anyhow!("sar_inbox [sources.correlation] {e}"))?;
    make_dirs(&dir)?;
    let land = match &settings.land {
        Some(path) => LandMask::from_geojson_file(path)
            .with_context(|| format!("sar_inbox land {}", path.display()))?,
        None => LandMask::natural_earth().clone(),
    };
    let land = Arc::new(land);
    let settings = Arc::new(settings);
    tracing::info!(dir = %dir.display(), cfar = ?settings.detect.cfar.kind, "SAR scene inbox watching");
    Ok(tokio::spawn(async move {
        loop {
            let (ctx, dir, settings, land, picture) = (
                ctx.clone(),
                dir.clone(),
                settings.clone(),
                land.clone(),
                picture.clone(),
            );
            let polled = tokio::task::spawn_blocking(move || {
                poll_ready_folders(&ctx, &dir, "sar_inbox", |id, folder| {
                    process(&ctx, id, folder, &settings, &land, &picture)
                })
            })
            .await;
            if let Ok(Err(e)) = polled {
                tracing::warn!(error = %format!("{e:#}"), "SAR inbox scan failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(poll_ms)) => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
        }
    }))
}

/// The scene file of a folder: a GeoTIFF in it, or the first measurement TIFF of a `.SAFE`
/// folder in it (VV first, as ship detection prefers co-polarisation).
fn scene_file(folder: &Path) -> Result<PathBuf, String> {
    let list = |dir: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let is_tiff = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff"))
    };
    let entries = list(folder);
    if let Some(safe) = entries
        .iter()
        .find(|p| p.is_dir() && p.extension().and_then(|e| e.to_str()) == Some("SAFE"))
    {
        let measurements: Vec<PathBuf> = list(&safe.join("measurement"))
            .into_iter()
            .filter(|p| is_tiff(p))
            .collect();
        return measurements
            .iter()
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains("-vv-"))
            })
            .or(measurements.first())
            .cloned()
            .ok_or_else(|| format!("{} has no measurement TIFF", safe.display()));
    }
    let tiffs: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| p.is_file() && is_tiff(p))
        .collect();
    match tiffs.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err("no scene: a GeoTIFF (.tif) or a Sentinel-1 .SAFE folder".into()),
        _ => Err(format!("{} GeoTIFFs: one scene per folder", tiffs.len())),
    }
}

/// Detects, correlates and writes one scene; returns a summary.
fn process(
    ctx: &Context,
    id: &str,
    folder: &Path,
    settings: &SarSettings,
    land: &LandMask,
    picture: &AisPicture,
) -> Result<String, Failure> {
    valid_id(id).map_err(reject)?;
    let path = scene_file(folder).map_err(reject)?;
    let scene = Scene::open(&path).map_err(reject)?;
    // A thread the system refused now may start later; anything else is the scene's fault.
    let run = detect(&scene, Some(land), &settings.detect, &|_, _| {}).map_err(|e| match e {
        DetectError::Spawn(_) => retry(anyhow::anyhow!("{e}")),
        e => reject(format!("{e}")),
    })?;
    let correlation: Option<Correlation> = scene.acquisition.map(|acq| {
        let projected = {
            let tracks = picture.lock().unwrap_or_else(|e| e.into_inner());
            project(&tracks, &acq, &settings.correlation)
        };
        correlate(&run.detections, &projected, &settings.correlation)
    });

    // Evidence first: a record never points at a file that is not there. A scene dropped again
    // under a name already used gets `<id>.1`, ... so earlier detections are never overwritten.
    let evidence_dir = ctx.data_dir.join("evidence").join("sar");
    std::fs::create_dir_all(&evidence_dir)
        .with_context(|| format!("creating {}", evidence_dir.display()))
        .map_err(retry)?;
    // The key is the first of `<id>`, `<id>.1`, ... whose quicklook is not there yet (not
    // `unique` on the file name: `<id>.png.1` and `<id>.png.2` would share the key `<id>.png`).
    let key = std::iter::once(id.to_owned())
        .chain((1..).map(|n| format!("{id}.{n}")))
        .find(|k| !evidence_dir.join(format!("{k}.png")).exists())
        .unwrap_or_else(|| id.to_owned());
    let quicklook = evidence_dir.join(format!("{key}.png"));
    let matched = |d: u32| {
        correlation
            .as_ref()
            .and_then(|c| c.matched.iter().find(|m| m.detection == d))
    };
    write_quicklook(
        &scene,
        &run.detections,
        |d| matched(d.id).is_some(),
        2048,
        &quicklook,
    )
    .map_err(|e| retry(anyhow::anyhow!("{e}")))?;

    let at_ms = scene.acquisition.map(|a| a.time_ms).unwrap_or_else(now_ms);
    let scene_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let mut records: Vec<(&str, String, Vec<FieldWrite>)> = Vec::new();
    for d in &run.detections {
        let m = matched(d.id);
        let mut ops: Vec<(&str, FieldOp)> = vec![
            ("site", FieldOp::Set(ctx.site.clone().into())),
            ("source", FieldOp::Set("sar".into())),
            ("class", FieldOp::Set("vessel".into())),
            ("lat", FieldOp::Set(Value::Float(d.lat))),
            ("lon", FieldOp::Set(Value::Float(d.lon))),
            ("length_m", FieldOp::Set(Value::Float(d.length_m.round()))),
            ("at_ms", FieldOp::Set(Value::Int(at_ms))),
            ("scene", FieldOp::Set(key.clone().into())),
            (
                "detail",
                FieldOp::Set(Value::Json(
                    json!({
                        "scene_file": scene_name,
                        "product": scene.product,
                        "width_m": d.width_m.round(),
                        "heading_deg": d.heading_deg.round(),
                        "contrast_db": (d.contrast_db * 10.0).round() / 10.0,
                        "pixels": d.pixels,
                        "pixel": [d.x, d.y],
                        "cfar": settings.detect.cfar.kind,
                        "ais": m.map(|m| json!({"mmsi": m.ais.mmsi, "name": m.ais.name, "distance_m": m.distance_m.round(), "time_gap_s": m.ais.time_gap_s.round(), "projection": m.ais.projection})),
                        "quicklook_path": quicklook.to_string_lossy(),
                    })
                    .to_string(),
                )),
            ),
        ];
        if let Some(m) = m {
            ops.push(("matched_mmsi", FieldOp::Set(m.ais.mmsi.to_string().into())));
        }
        records.push((DETECTIONS, format!("{}-sar-{key}-{}", ctx.site, d.id), ops));
    }
    let dark = correlation
        .as_ref()
        .map(|c| c.dark.as_slice())
        .unwrap_or_default();
    for v in dark {
        let nearest = match (v.nearest_mmsi, v.nearest_distance_m) {
            (Some(mmsi), Some(dist)) => format!(", nearest AIS {mmsi} at {:.1} km", dist / 1000.0),
            _ => ", no AIS vessel in the picture".into(),
        };
        let ops = NewAlert {
            title: format!(
                "Dark vessel: {:.0} m, no AIS at {:.4}° N {:.4}° E{nearest}",
                v.length_m, v.lat, v.lon
            ),
            kind: "dark_vessel",
            severity: "high",
            site: &ctx.site,
            position: Some((v.lat, v.lon)),
            raised_ms: now_ms() as u64,
            detail: json!({
                "detection": format!("{DETECTIONS}/{}-sar-{key}-{}", ctx.site, v.detection),
                "scene": key,
                "acquired_ms": at_ms,
                "length_m": v.length_m.round(),
                "nearest_mmsi": v.nearest_mmsi,
                "nearest_distance_m": v.nearest_distance_m.map(f64::round),
                "nearest_time_gap_s": v.nearest_time_gap_s.map(f64::round),
                "quicklook_path": quicklook.to_string_lossy(),
            }),
        }
        .ops();
        records.push((
            ALERTS,
            format!("dark-{}-{key}-{}", ctx.site, v.detection),
            ops,
        ));
    }
    let writes: Vec<RecordWrite> = records
        .iter()
        .map(|(c, rid, ops)| (*c, rid.as_str(), ops.as_slice()))
        .collect();
    if !writes.is_empty() {
        ctx.store
            .lock()
            .map_err(|_| retry(anyhow::anyhow!("store lock poisoned")))?
            .put_all(&writes)
            .with_context(|| format!("writing the detections of scene {id}"))
            .map_err(retry)?;
    }
    Ok(match &correlation {
        Some(c) => format!(
            "{} vessels, {} with AIS, {} dark ({:.1} s)",
            run.detections.len(),
            c.matched.len(),
            c.dark.len(),
            run.seconds
        ),
        None => format!(
            "{} vessels, no acquisition time: not correlated ({:.1} s)",
            run.detections.len(),
            run.seconds
        ),
    })
}
