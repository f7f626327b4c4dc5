//! Scanner sources: X-ray scans and NQR screenings dropped into folders become records.
//!
//! **X-ray** (`kind = "xray_inbox"`): a scan arrives as a folder `DIR/<scan-id>/` holding
//! `high.png`, `low.png` (16-bit grayscale), `meta.json` (scanner metadata; `scanner.json` is
//! accepted too), `manifest.json`, and a `READY` marker file written **last**: the node takes
//! only folders with `READY` in them, so a scanner (or a copy job) writes the four files first,
//! then creates `READY`. The scan id (the folder's name) is letters, digits, `-`, `_` and `.`,
//! at most 128, not starting with a dot (folders starting with a dot are left alone, so writing
//! aside as `.name` and renaming works too). The node runs the tile model and the manifest check
//! (`mizugiwa-inspect`) off the async runtime, saves the heatmap overlay as
//! `<data_dir>/heatmaps/<scan-id>.png`, and writes `inspections/<scan-id>` and, when the risk
//! reaches the alert threshold, `alerts/xray-<site>-<scan-id>`, both in one transaction. Then
//! the folder moves to `DIR/done/`; a folder with bad input (a missing or corrupt image,
//! mismatched sizes, malformed JSON, a bad scan id) moves to `DIR/rejected/` with an
//! `error.txt` inside saying why, and writes nothing. If the heatmap or the records cannot be
//! written (disk full), the folder stays where it is and is tried again at the next poll.
//!
//! **NQR** (`kind = "nqr_inbox"`): signal files `DIR/*.bin` (format in `inspect/README.md`),
//! taken once unchanged for a second (write aside and rename into the folder). Each is screened
//! for RDX at the configured false-alarm probability and becomes `screenings/<file-stem>`, plus
//! `alerts/nqr-<site>-<file-stem>` (kind `nqr_detection`) when the substance is detected and is
//! a threat; the file then moves to `done/`, or to `rejected/` with `<name>.error.txt` beside
//! it. Thresholds come from a calibration (600 simulated noise-only screenings, seconds on two
//! cores) computed once when the source starts and cached in `<data_dir>/nqr-calibration.json`;
//! files wait until it is ready.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use mizugiwa_command::records::{NewAlert, ALERTS, INSPECTIONS, SCREENINGS};
use mizugiwa_command::runtime::{Location, Runtime};
use mizugiwa_inspect::nqr::{self, Acquisition, Calibration, DetectorConfig};
use mizugiwa_inspect::xray::{self, Manifest, Model, Scan, RISK_ALERT_THRESHOLD};
use mizugiwa_sync::{FieldOp, Store, Value};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::SiteConfig;
use crate::pipeline::settled;

/// The marker file that says an X-ray scan folder is complete.
pub const READY: &str = "READY";
pub use mizugiwa_inspect::nqr::{
    STANDARD_CALIBRATION_RUNS as CALIBRATION_RUNS, STANDARD_CALIBRATION_SEED as CALIBRATION_SEED,
};
/// The cached NQR calibration, in the data folder.
pub const CALIBRATION_FILE: &str = "nqr-calibration.json";

/// One record of a [`Store::put_all`]: collection, id, operations.
type Write<'a> = (&'a str, &'a str, &'a [(&'a str, FieldOp)]);

/// What a scanner source writes with: the replica, the site, where it is.
#[derive(Clone)]
pub struct Context {
    pub(crate) store: Arc<Mutex<Store>>,
    queues: Arc<Mutex<std::collections::BTreeMap<String, u64>>>,
    pub(crate) site: String,
    location: Location,
    pub(crate) data_dir: PathBuf,
}

impl Context {
    pub fn new(cfg: &SiteConfig, runtime: &Runtime) -> Context {
        Context {
            store: runtime.store.clone(),
            queues: runtime.queues.clone(),
            site: cfg.node.clone(),
            location: cfg.location.clone(),
            data_dir: cfg.data_dir.clone(),
        }
    }

    /// A context over a bare store, for tests of the sources.
    pub fn for_tests(store: Arc<Mutex<Store>>, site: &str, data_dir: &Path) -> Context {
        Context {
            store,
            queues: Default::default(),
            site: site.into(),
            location: Location {
                kind: "coast".into(),
                lat: 34.2,
                lon: 129.3,
            },
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub(crate) fn queue(&self, name: &str, depth: u64) {
        if let Ok(mut q) = self.queues.lock() {
            q.insert(name.into(), depth);
        }
    }
}

/// Why an item was not stored.
pub(crate) enum Failure {
    /// The input is bad: move it to `rejected/` with the reason.
    Rejected(String),
    /// The node could not write (disk, store): leave the item for the next poll.
    Retry(anyhow::Error),
}

pub(crate) fn reject(e: impl std::fmt::Display) -> Failure {
    Failure::Rejected(e.to_string())
}

pub(crate) fn retry(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Retry(e.into())
}

fn now_ms(store: &Mutex<Store>) -> anyhow::Result<u64> {
    Ok(store
        .lock()
        .map_err(|_| anyhow::anyhow!("store lock poisoned"))?
        .now_ms())
}

/// A scan id or file stem usable as a record id and a file name.
pub(crate) fn valid_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not a valid id: letters, digits, '-', '_', '.', at most 128, not \
             starting with '.'"
        ))
    }
}

/// `dir/name`, or `dir/name.N` if that is taken.
pub(crate) fn unique(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| dir.join(format!("{name}.{n}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

pub(crate) fn make_dirs(dir: &Path) -> anyhow::Result<()> {
    for sub in ["", "done", "rejected"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// X-ray

/// Starts an X-ray inbox: loads the model (the committed one unless `model` names an ONNX
/// file), then polls `dir` every `poll_ms`.
pub async fn start_xray(
    dir: PathBuf,
    poll_ms: u64,
    model: Option<PathBuf>,
    alert_threshold: Option<f64>,
    ctx: Context,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let threshold = alert_threshold.unwrap_or(RISK_ALERT_THRESHOLD);
    if !(threshold > 0.0 && threshold <= 1.0) {
        anyhow::bail!("xray_inbox alert_threshold must be in (0, 1], got {threshold}");
    }
    make_dirs(&dir)?;
    std::fs::create_dir_all(ctx.data_dir.join("heatmaps"))
        .with_context(|| format!("creating {}", ctx.data_dir.join("heatmaps").display()))?;
    let model = tokio::task::spawn_blocking(move || match &model {
        Some(path) => Model::load(path).map_err(|e| anyhow::anyhow!("xray_inbox model: {e}")),
        None => Model::committed().map_err(|e| anyhow::anyhow!("{e}")),
    })
    .await??;
    tracing::info!(dir = %dir.display(), threshold, "X-ray inbox watching");
    Ok(tokio::spawn(async move {
        loop {
            let (ctx, dir, model) = (ctx.clone(), dir.clone(), model.clone());
            let polled =
                tokio::task::spawn_blocking(move || poll_xray(&ctx, &dir, &model, threshold)).await;
            if let Ok(Err(e)) = polled {
                tracing::warn!(error = %format!("{e:#}"), "X-ray inbox scan failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(poll_ms)) => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
        }
    }))
}

/// Handles every complete scan folder, in name order.
fn poll_xray(ctx: &Context, dir: &Path, model: &Model, threshold: f64) -> anyhow::Result<()> {
    poll_ready_folders(ctx, dir, "xray_inbox", |id, folder| {
        process_scan(ctx, id, folder, model, threshold).map(|alert| format!("alert={alert}"))
    })
}

/// One pass over a folder inbox whose items are sub-folders completed by a `READY` marker
/// (X-ray scans, drone sorties), in name order: each is handed to `process`, then moved to
/// `done/`, or to `rejected/` with `error.txt` saying why; an item that could not be stored
/// (disk, store) stays for the next pass. `queue` names the inbox in the node's queue depths.
pub(crate) fn poll_ready_folders(
    ctx: &Context,
    dir: &Path,
    queue: &str,
    mut process: impl FnMut(&str, &Path) -> Result<String, Failure>,
) -> anyhow::Result<()> {
    let mut ready: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            let path = e.path();
            let skip = name == "done" || name == "rejected" || name.starts_with('.');
            (!skip && path.is_dir() && path.join(READY).is_file()).then_some((name, path))
        })
        .collect();
    ready.sort();
    ctx.queue(queue, ready.len() as u64);
    for (id, folder) in ready {
        match process(&id, &folder) {
            Ok(outcome) => {
                tracing::info!(inbox = queue, item = %id, %outcome, "inbox item stored");
                let to = unique(&dir.join("done"), &id);
                std::fs::rename(&folder, &to)
                    .with_context(|| format!("moving {} to {}", folder.display(), to.display()))?;
            }
            Err(Failure::Rejected(why)) => {
                tracing::warn!(inbox = queue, item = %id, error = %why, "inbox item rejected");
                let to = unique(&dir.join("rejected"), &id);
                std::fs::rename(&folder, &to)
                    .with_context(|| format!("moving {} to {}", folder.display(), to.display()))?;
                std::fs::write(to.join("error.txt"), format!("{why}\n"))?;
            }
            Err(Failure::Retry(e)) => {
                tracing::warn!(inbox = queue, item = %id, error = %format!("{e:#}"), "inbox item not stored, will retry");
            }
        }
    }
    ctx.queue(queue, 0);
    Ok(())
}

/// Scores one scan folder and writes its records; returns whether it raised an alert.
fn process_scan(
    ctx: &Context,
    id: &str,
    folder: &Path,
    model: &Model,
    threshold: f64,
) -> Result<bool, Failure> {
    valid_id(id).map_err(reject)?;
    let meta = ["meta.json", "scanner.json"]
        .iter()
        .map(|m| folder.join(m))
        .find(|p| p.is_file())
        .ok_or_else(|| reject("no scanner metadata: meta.json (or scanner.json) is missing"))?;
    let scan = Scan::load(folder.join("high.png"), folder.join("low.png"), meta).map_err(reject)?;
    let manifest = Manifest::load(folder.join("manifest.json")).map_err(reject)?;
    let result = model.scan(&scan, &manifest).map_err(reject)?;

    // The heatmap first: a record never points at a file that is not there.
    let heatmap = ctx.data_dir.join("heatmaps").join(format!("{id}.png"));
    // Written aside (the format follows the extension), then renamed into place.
    let tmp = ctx.data_dir.join("heatmaps").join(format!(".{id}.tmp.png"));
    xray::render_heatmap(&scan, &result)
        .save(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))
        .map_err(retry)?;
    std::fs::rename(&tmp, &heatmap)
        .with_context(|| format!("writing {}", heatmap.display()))
        .map_err(retry)?;

    let risk = &result.risk;
    let alert = risk.score >= threshold;
    let reasons = serde_json::to_value(&risk.reasons).map_err(retry)?;
    let heatmap_path = heatmap.to_string_lossy().into_owned();
    let category = result.declared_category.name();
    let at_ms = now_ms(&ctx.store).map_err(retry)?;
    let inspection: Vec<(&str, FieldOp)> = vec![
        ("site", FieldOp::Set(ctx.site.clone().into())),
        ("scan_id", FieldOp::Set(id.into())),
        ("scanner_id", FieldOp::Set(result.scanner_id.clone().into())),
        (
            "container_id",
            FieldOp::Set(result.container_id.clone().into()),
        ),
        ("declared_category", FieldOp::Set(category.into())),
        (
            "declared_weight_kg",
            FieldOp::Set(Value::Float(result.declared_weight_kg)),
        ),
        (
            "estimated_weight_kg",
            FieldOp::Set(Value::Float(result.estimated_weight_kg)),
        ),
        ("risk", FieldOp::Set(Value::Float(risk.score))),
        ("alert", FieldOp::Set(Value::Bool(alert))),
        ("reasons", FieldOp::Set(Value::Json(reasons.to_string()))),
        ("at_ms", FieldOp::Set(Value::Int(at_ms as i64))),
        ("heatmap_path", FieldOp::Set(heatmap_path.clone().into())),
    ];
    let alert_id = format!("xray-{}-{id}", ctx.site);
    let alert_ops: Vec<(&str, FieldOp)> = if alert {
        let headline = risk
            .reasons
            .first()
            .map(|r| format!(": {}", r.message))
            .unwrap_or_default();
        NewAlert {
            title: format!(
                "Container {} (declared {category}): X-ray risk {:.2}{headline}",
                result.container_id, risk.score
            ),
            kind: "xray_risk",
            severity: if risk.score >= 0.9 { "high" } else { "medium" },
            site: &ctx.site,
            position: Some((ctx.location.lat, ctx.location.lon)),
            raised_ms: at_ms,
            detail: json!({
                "inspection": format!("{INSPECTIONS}/{id}"),
                "scan_id": id,
                "container_id": result.container_id,
                "scanner_id": result.scanner_id,
                "declared_category": category,
                "declared_weight_kg": result.declared_weight_kg,
                "estimated_weight_kg": result.estimated_weight_kg,
                "risk": risk.score,
                "threshold": threshold,
                "reasons": reasons,
                "heatmap_path": heatmap_path,
            }),
        }
        .ops()
    } else {
        Vec::new()
    };
    let mut writes: Vec<Write> = vec![(INSPECTIONS, id, &inspection)];
    if alert {
        writes.push((ALERTS, &alert_id, &alert_ops));
    }
    ctx.store
        .lock()
        .map_err(|_| retry(anyhow::anyhow!("store lock poisoned")))?
        .put_all(&writes)
        .with_context(|| format!("writing {INSPECTIONS}/{id}"))
        .map_err(retry)?;
    Ok(alert)
}

// ---------------------------------------------------------------------------------------------
// NQR

/// Starts an NQR inbox: the calibration first (from the cache or simulated, off the async
/// runtime), then polls `dir` every `poll_ms`.
pub fn start_nqr(
    dir: PathBuf,
    poll_ms: u64,
    pfa: f64,
    ctx: Context,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    if !(pfa > 0.0 && pfa < 1.0) {
        anyhow::bail!("nqr_inbox pfa must be in (0, 1), got {pfa}");
    }
    make_dirs(&dir)?;
    tracing::info!(dir = %dir.display(), pfa, "NQR inbox watching");
    Ok(tokio::spawn(async move {
        let path = ctx.data_dir.join(CALIBRATION_FILE);
        let calibration = loop {
            let path = path.clone();
            match tokio::task::spawn_blocking(move || load_or_calibrate(&path)).await {
                Ok(Ok(c)) => break Arc::new(c),
                Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "NQR calibration failed"),
                Err(e) => tracing::error!(error = %e, "NQR calibration failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
        };
        loop {
            let (ctx, dir, cal) = (ctx.clone(), dir.clone(), calibration.clone());
            let polled = tokio::task::spawn_blocking(move || poll_nqr(&ctx, &dir, &cal, pfa)).await;
            if let Ok(Err(e)) = polled {
                tracing::warn!(error = %format!("{e:#}"), "NQR inbox scan failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(poll_ms)) => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
        }
    }))
}

/// The cached calibration if it is one for the default RDX screening, else a new one (written
/// aside and renamed into place).
pub fn load_or_calibrate(path: &Path) -> anyhow::Result<Calibration> {
    let acquisition = Acquisition::rdx_default();
    let detector = DetectorConfig::rdx();
    if let Ok(text) = std::fs::read_to_string(path) {
        match serde_json::from_str::<Calibration>(&text) {
            Ok(c) if c.acquisition == acquisition && c.detector == detector => {
                tracing::info!(path = %path.display(), "NQR calibration loaded");
                return Ok(c);
            }
            Ok(_) => {
                tracing::warn!(path = %path.display(), "NQR calibration is for other settings; recalibrating")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "NQR calibration unreadable; recalibrating")
            }
        }
    }
    tracing::info!(
        runs = CALIBRATION_RUNS,
        "NQR calibration: simulating noise-only screenings"
    );
    let started = std::time::Instant::now();
    let cal = Calibration::simulate(acquisition, detector, CALIBRATION_RUNS, CALIBRATION_SEED)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&cal)? + "\n")
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(secs = started.elapsed().as_secs_f64(), path = %path.display(), "NQR calibration done");
    Ok(cal)
}

/// Handles every settled `*.bin` file, in name order.
fn poll_nqr(ctx: &Context, dir: &Path, cal: &Calibration, pfa: f64) -> anyhow::Result<()> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            let path = e.path();
            let take = path.is_file()
                && !name.starts_with('.')
                && path.extension().is_some_and(|x| x == "bin")
                && settled(&path);
            take.then_some((name, path))
        })
        .collect();
    files.sort();
    ctx.queue("nqr_inbox", files.len() as u64);
    for (name, path) in files {
        let stem = name.strip_suffix(".bin").unwrap_or(&name).to_owned();
        match process_signal(ctx, &stem, &path, cal, pfa) {
            Ok(alert) => {
                tracing::info!(file = %name, alert, "NQR screening stored");
                std::fs::rename(&path, unique(&dir.join("done"), &name))?;
            }
            Err(Failure::Rejected(why)) => {
                tracing::warn!(file = %name, error = %why, "NQR signal file rejected");
                let to = unique(&dir.join("rejected"), &name);
                std::fs::rename(&path, &to)?;
                let mut txt = to.into_os_string();
                txt.push(".error.txt");
                std::fs::write(txt, format!("{why}\n"))?;
            }
            Err(Failure::Retry(e)) => {
                tracing::warn!(file = %name, error = %format!("{e:#}"), "NQR screening not stored, will retry");
            }
        }
    }
    ctx.queue("nqr_inbox", 0);
    Ok(())
}

/// Screens one signal file and writes its records; returns whether it raised an alert.
fn process_signal(
    ctx: &Context,
    stem: &str,
    path: &Path,
    cal: &Calibration,
    pfa: f64,
) -> Result<bool, Failure> {
    valid_id(stem).map_err(reject)?;
    let recording = nqr::Recording::read(path).map_err(reject)?;
    let s = nqr::detect(&recording, cal, pfa).map_err(reject)?;
    let decisions = serde_json::to_value(&s.decisions).map_err(retry)?;
    let at_ms = now_ms(&ctx.store).map_err(retry)?;
    let role = match s.role {
        nqr::SubstanceRole::Explosive => "explosive",
        nqr::SubstanceRole::Calibration => "calibration",
    };
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut screening: Vec<(&str, FieldOp)> = vec![
        ("site", FieldOp::Set(ctx.site.clone().into())),
        ("file", FieldOp::Set(file.clone().into())),
        ("substance", FieldOp::Set(s.substance.clone().into())),
        ("role", FieldOp::Set(role.into())),
        ("detected", FieldOp::Set(Value::Bool(s.detected))),
        ("alert", FieldOp::Set(Value::Bool(s.alert))),
        ("confidence", FieldOp::Set(Value::Float(s.confidence))),
        (
            "measurement_time_s",
            FieldOp::Set(Value::Float(s.measurement_time_s)),
        ),
        ("pfa", FieldOp::Set(Value::Float(pfa))),
        (
            "decisions",
            FieldOp::Set(Value::Json(decisions.to_string())),
        ),
        ("at_ms", FieldOp::Set(Value::Int(at_ms as i64))),
    ];
    if let Some(t) = s.estimated_temperature_k {
        screening.push(("estimated_temperature_k", FieldOp::Set(Value::Float(t))));
    }
    let alert_id = format!("nqr-{}-{stem}", ctx.site);
    let alert_ops = NewAlert {
        title: format!(
            "NQR: {} detected in screening {stem} (confidence {:.3})",
            s.substance, s.confidence
        ),
        kind: "nqr_detection",
        severity: "critical",
        site: &ctx.site,
        position: Some((ctx.location.lat, ctx.location.lon)),
        raised_ms: at_ms,
        detail: json!({
            "screening": format!("{SCREENINGS}/{stem}"),
            "file": file,
            "substance": s.substance,
            "confidence": s.confidence,
            "estimated_temperature_k": s.estimated_temperature_k,
            "pfa": pfa,
            "decisions": decisions,
        }),
    }
    .ops();
    let mut writes: Vec<Write> = vec![(SCREENINGS, stem, &screening)];
    if s.alert {
        writes.push((ALERTS, &alert_id, &alert_ops));
    }
    ctx.store
        .lock()
        .map_err(|_| retry(anyhow::anyhow!("store lock poisoned")))?
        .put_all(&writes)
        .with_context(|| format!("writing {SCREENINGS}/{stem}"))
        .map_err(retry)?;
    Ok(s.alert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::SourceConfig;

    #[test]
    fn a_minimal_scanner_source_takes_the_defaults() {
        // The documented examples are parsed by `config::tests`.
        #[derive(serde::Deserialize)]
        struct Doc {
            sources: Vec<SourceConfig>,
        }
        let minimal: Doc =
            toml::from_str("[[sources]]\nkind = \"xray_inbox\"\ndir = \"x\"\n").unwrap();
        assert!(matches!(
            &minimal.sources[..],
            [SourceConfig::XrayInbox {
                poll_ms: 500,
                model: None,
                alert_threshold: None,
                ..
            }]
        ));
        assert!(toml::from_str::<Doc>(
            "[[sources]]\nkind = \"nqr_inbox\"\ndir = \"x\"\nthreshold = 1\n"
        )
        .is_err());
    }

    #[test]
    fn ids_are_safe_file_names() {
        for ok in ["scan-001", "MZGU0000007_2025.11.26", "a"] {
            assert!(valid_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "a b", "..", &"x".repeat(129)] {
            assert!(valid_id(bad).is_err(), "{bad}");
        }
    }
}
