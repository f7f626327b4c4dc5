//! The site's pipeline host: sources → observations → records.
//!
//! Each source runs as its own task and hands observations to the [`Sink`], which owns the
//! policy for turning them into records: records from the inbox are written as they are,
//! vessel positions update `vessels/<mmsi>` at most every `vessel_interval_secs` and add a
//! point to the vessel's breadcrumb of the minute, and alerts raised by a source's rules (AIS
//! behaviour) are written with their status field. A source learns that an observation is
//! stored only when the write is durable, so an inbox file is moved to `done/` only after all
//! its records are on disk.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use mizugiwa_command::records::{ALERTS, BREADCRUMBS, VESSELS};
use mizugiwa_command::runtime::Runtime;
use mizugiwa_sync::{FieldKind, FieldOp, Store, Value};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::SiteConfig;

/// One configured source.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// A folder watched for `*.json` files of records (see [`InboxFile`]).
    Inbox {
        /// The folder; `done/` and `rejected/` are made inside it.
        dir: PathBuf,
        /// Milliseconds between scans (default 500).
        #[serde(default = "default_poll_ms")]
        poll_ms: u64,
    },
    /// An AIS receiver's NMEA feed over TCP (this node connects, and reconnects).
    AisTcp {
        /// `host:port` of the receiver or AIS server.
        addr: String,
        /// Seconds between reconnection attempts (default 5).
        #[serde(default = "default_reconnect_secs")]
        reconnect_secs: u64,
    },
    /// AIS NMEA datagrams sent to this node over UDP (receivers' usual "UDP out").
    AisUdp {
        /// Local address to listen on, e.g. "0.0.0.0:10110".
        listen: std::net::SocketAddr,
    },
    /// A folder of dual-energy X-ray scans, one sub-folder per scan with a `READY` marker
    /// written last (see [`crate::scanner`]): each becomes `inspections/<scan-id>`, and
    /// `alerts/xray-<site>-<scan-id>` when its risk reaches the threshold.
    XrayInbox {
        /// The folder; `done/` and `rejected/` are made inside it.
        dir: PathBuf,
        /// Milliseconds between scans (default 500).
        #[serde(default = "default_poll_ms")]
        poll_ms: u64,
        /// ONNX tile classifier (default: the committed model built into the binary).
        #[serde(default)]
        model: Option<PathBuf>,
        /// Risk score (0..1] from which a scan raises an alert (default 0.5).
        #[serde(default)]
        alert_threshold: Option<f64>,
    },
    /// A folder of NQR signal files (`*.bin`, see [`crate::scanner`]): each becomes
    /// `screenings/<file-stem>`, and an `nqr_detection` alert when a threat is detected.
    NqrInbox {
        /// The folder; `done/` and `rejected/` are made inside it.
        dir: PathBuf,
        /// Milliseconds between scans (default 500).
        #[serde(default = "default_poll_ms")]
        poll_ms: u64,
        /// False-alarm probability of the decision (default 1e-3).
        #[serde(default = "default_pfa")]
        pfa: f64,
    },
    /// A folder of drone sorties, one sub-folder per sortie (video, `telemetry.tlog`,
    /// optional `meta.json`, `READY` written last; see [`crate::drone_video`]): the vessels and
    /// people found on the water become `detections/<site>-<sortie>-<n>` with the frame crop as
    /// evidence.
    DroneVideoInbox {
        /// The folder; `done/` and `rejected/` are made inside it.
        dir: PathBuf,
        /// Milliseconds between scans (default 500).
        #[serde(default = "default_poll_ms")]
        poll_ms: u64,
        /// Analyse one frame in this many (default 5: at 30 frames/s a boat stays in view for
        /// seconds, so 6 frames a second find it for a fifth of the work).
        #[serde(default = "default_every")]
        every: u64,
    },
    /// A folder of satellite SAR scenes, one sub-folder per scene (a GeoTIFF or a Sentinel-1
    /// `.SAFE`, `READY` written last; see [`crate::sar`]): vessels become
    /// `detections/<site>-sar-<scene>-<n>`, and those the site's AIS picture does not explain
    /// `dark_vessel` alerts.
    SarInbox {
        /// The folder; `done/` and `rejected/` are made inside it.
        dir: PathBuf,
        /// Milliseconds between scans (default 500).
        #[serde(default = "default_poll_ms")]
        poll_ms: u64,
        /// `[sources.detect]`: CFAR and discrimination (see `docs/site.toml`).
        #[serde(default)]
        detect: mizugiwa_satellite::sar::detect::DetectConfig,
        /// `[sources.correlation]`: matching with AIS.
        #[serde(default)]
        correlation: mizugiwa_satellite::correlate::CorrelationConfig,
        /// Land polygons (GeoJSON) instead of the built-in Natural Earth coastline.
        #[serde(default)]
        land: Option<PathBuf>,
    },
}

fn default_every() -> u64 {
    5
}

fn default_pfa() -> f64 {
    1e-3
}

fn default_reconnect_secs() -> u64 {
    5
}

fn default_poll_ms() -> u64 {
    500
}

impl SourceConfig {
    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        match self {
            SourceConfig::Inbox { dir, .. }
            | SourceConfig::NqrInbox { dir, .. }
            | SourceConfig::DroneVideoInbox { dir, .. } => {
                *dir = base.join(&*dir);
            }
            SourceConfig::XrayInbox { dir, model, .. } => {
                *dir = base.join(&*dir);
                if let Some(m) = model {
                    *m = base.join(&*m);
                }
            }
            SourceConfig::SarInbox { dir, land, .. } => {
                *dir = base.join(&*dir);
                if let Some(l) = land {
                    *l = base.join(&*l);
                }
            }
            SourceConfig::AisTcp { .. } | SourceConfig::AisUdp { .. } => {}
        }
    }
}

/// How observations become records.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordPolicy {
    /// A vessel's record is rewritten at most this often (seconds).
    pub vessel_interval_secs: u64,
    /// Breadcrumbs this site wrote are deleted (everywhere) after this many hours; 0 keeps
    /// them for ever. Default 168 (a week): tracks are for the picture, not an archive.
    pub breadcrumb_retention_hours: u64,
}

impl Default for RecordPolicy {
    fn default() -> Self {
        RecordPolicy {
            vessel_interval_secs: 10,
            breadcrumb_retention_hours: 168,
        }
    }
}

/// What sources observe.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A record to write as it is (fields are last-writer-wins unless the schema says
    /// otherwise).
    Record {
        /// Collection.
        collection: String,
        /// Record id.
        id: String,
        /// Field values.
        fields: Vec<(String, serde_json::Value)>,
    },
    /// A vessel position (from AIS).
    VesselPosition {
        /// MMSI.
        mmsi: u32,
        /// When it was reported, ms since the epoch.
        at_ms: u64,
        /// Latitude, degrees.
        lat: f64,
        /// Longitude, degrees.
        lon: f64,
        /// Speed over ground, knots.
        sog_kn: Option<f64>,
        /// Course over ground, degrees.
        cog_deg: Option<f64>,
    },
    /// An alert raised by a source's rules (AIS behaviour): `alerts/<id>` with the fields of
    /// [`mizugiwa_command::records::NewAlert::ops`] (so `status` advances to `new`, which never
    /// undoes an acknowledgement). Raised again under the same id (a gap reported while the
    /// ship is silent, then when it is heard again), the record's title, position and evidence
    /// are updated; its `raised_ms` stays the first one's.
    Alert {
        /// Record id in `alerts`.
        id: String,
        /// Field operations.
        ops: Vec<(&'static str, FieldOp)>,
    },
}

/// Converts a JSON value to a field value.
pub use mizugiwa_command::records::value_from_json as value_of;

/// The operations that write JSON value `v` into a field of `kind`: a value for registers,
/// members to add for a set, an amount for a counter, a state to advance to for a status.
pub fn ops_for(kind: FieldKind, v: &serde_json::Value) -> anyhow::Result<Vec<FieldOp>> {
    Ok(match kind {
        FieldKind::Lww | FieldKind::Mv => vec![FieldOp::Set(value_of(v))],
        FieldKind::Set => match v {
            serde_json::Value::String(s) => vec![FieldOp::Add(s.clone())],
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    serde_json::Value::String(s) => Ok(FieldOp::Add(s.clone())),
                    other => Ok(FieldOp::Add(other.to_string())),
                })
                .collect::<anyhow::Result<_>>()?,
            _ => anyhow::bail!("a set field takes a string or an array of members"),
        },
        FieldKind::Counter => match v.as_i64() {
            Some(n) => vec![FieldOp::Increment(n)],
            None => anyhow::bail!("a counter field takes an integer to add"),
        },
        FieldKind::Status(order) => match v.as_str() {
            Some(s) if order.iter().any(|o| o == s) => vec![FieldOp::Advance(s.to_owned())],
            _ => anyhow::bail!("a status field takes one of {order:?}"),
        },
    })
}

/// Turns observations into durable records.
pub struct Sink {
    store: Arc<Mutex<Store>>,
    site: String,
    policy: RecordPolicy,
    last_vessel_write: Mutex<HashMap<u32, u64>>,
}

impl Sink {
    /// A sink writing into `store` for `site`.
    pub fn new(store: Arc<Mutex<Store>>, site: &str, policy: RecordPolicy) -> Sink {
        Sink {
            store,
            site: site.to_owned(),
            policy,
            last_vessel_write: Mutex::new(HashMap::new()),
        }
    }

    /// Writes all `observations` in one durable transaction per record; returns how many
    /// records were written. Either every record of the call is written or an error says
    /// which one failed (earlier ones stay written: they are independent facts).
    pub fn write(&self, observations: &[Observation]) -> anyhow::Result<usize> {
        let mut store = self
            .store
            .lock()
            .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
        // Check every record before writing any, so that a bad one rejects its whole batch (an
        // inbox file) and a corrected file dropped again applies once.
        for o in observations {
            if let Observation::Alert { id, .. } = o {
                mizugiwa_sync::schema::validate_name("record", id)
                    .with_context(|| format!("{ALERTS}/{id}"))?;
            }
            if let Observation::Record {
                collection,
                id,
                fields,
            } = o
            {
                mizugiwa_sync::schema::validate_name("collection", collection)?;
                mizugiwa_sync::schema::validate_name("record", id)
                    .with_context(|| format!("{collection}/{id}"))?;
                for (f, v) in fields {
                    mizugiwa_sync::schema::validate_name("field", f)
                        .with_context(|| format!("{collection}/{id}"))?;
                    ops_for(store.schema().kind(collection, f), v)
                        .with_context(|| format!("{collection}/{id} field {f:?}"))?;
                }
            }
        }
        let mut written = 0;
        for o in observations {
            match o {
                Observation::Record {
                    collection,
                    id,
                    fields,
                } => {
                    let mut ops: Vec<(&str, FieldOp)> = Vec::new();
                    for (f, v) in fields {
                        for op in ops_for(store.schema().kind(collection, f), v)
                            .with_context(|| format!("{collection}/{id} field {f:?}"))?
                        {
                            ops.push((f.as_str(), op));
                        }
                    }
                    store
                        .put(collection, id, &ops)
                        .with_context(|| format!("writing {collection}/{id}"))?;
                    written += 1;
                }
                Observation::VesselPosition {
                    mmsi,
                    at_ms,
                    lat,
                    lon,
                    sog_kn,
                    cog_deg,
                } => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0);
                    if *at_ms > now + 5 * 60 * 1000 || !lat.is_finite() || !lon.is_finite() {
                        // A report from the future (a receiver with a wrong clock) would pin
                        // the vessel's throttle; it is dropped.
                        tracing::debug!(mmsi, at_ms, "vessel position stamped in the future");
                        continue;
                    }
                    let due = {
                        let mut last = self
                            .last_vessel_write
                            .lock()
                            .map_err(|_| anyhow::anyhow!("poisoned"))?;
                        let prev = last.get(mmsi).copied().unwrap_or(0);
                        let due =
                            at_ms.saturating_sub(prev) >= self.policy.vessel_interval_secs * 1000;
                        if due {
                            // Bounded like the decoder's tracks: vessels not heard from for
                            // an hour are forgotten when the map grows large.
                            if last.len() >= 20_000 {
                                let horizon = at_ms.saturating_sub(3_600_000);
                                last.retain(|_, t| *t >= horizon);
                            }
                            last.insert(*mmsi, *at_ms);
                        }
                        due
                    };
                    if !due {
                        continue;
                    }
                    let mut ops = vec![
                        ("lat", FieldOp::Set(Value::Float(*lat))),
                        ("lon", FieldOp::Set(Value::Float(*lon))),
                        ("at_ms", FieldOp::Set(Value::Int(*at_ms as i64))),
                        ("site", FieldOp::Set(self.site.clone().into())),
                    ];
                    if let Some(s) = sog_kn {
                        ops.push(("sog_kn", FieldOp::Set(Value::Float(*s))));
                    }
                    if let Some(c) = cog_deg {
                        ops.push(("cog_deg", FieldOp::Set(Value::Float(*c))));
                    }
                    store.put(VESSELS, &mmsi.to_string(), &ops)?;
                    add_breadcrumb(
                        &mut store,
                        "vessel",
                        &mmsi.to_string(),
                        &self.site,
                        *at_ms,
                        *lat,
                        *lon,
                    )?;
                    written += 1;
                }
                Observation::Alert { id, ops } => {
                    let raised = store
                        .get(ALERTS, id)
                        .with_context(|| format!("reading {ALERTS}/{id}"))?
                        .is_some();
                    let ops: Vec<(&str, FieldOp)> = ops
                        .iter()
                        .filter(|(f, _)| !(raised && *f == "raised_ms"))
                        .map(|(f, op)| (*f, op.clone()))
                        .collect();
                    store
                        .put(ALERTS, id, &ops)
                        .with_context(|| format!("writing {ALERTS}/{id}"))?;
                    written += 1;
                }
            }
        }
        Ok(written)
    }
}

/// Appends a point to the entity's breadcrumb record of the minute.
pub fn add_breadcrumb(
    store: &mut Store,
    kind: &str,
    entity: &str,
    site: &str,
    at_ms: u64,
    lat: f64,
    lon: f64,
) -> anyhow::Result<()> {
    let minute = at_ms / 60_000;
    let id = format!("{kind}:{entity}:{minute}");
    let mut points: Vec<serde_json::Value> = store
        .get(BREADCRUMBS, &id)?
        .and_then(|r| match r.get("points") {
            Some(Value::Json(s)) => serde_json::from_str(s).ok(),
            _ => None,
        })
        .unwrap_or_default();
    points.push(serde_json::json!([at_ms, lat, lon]));
    store.put(
        BREADCRUMBS,
        &id,
        &[
            ("kind", FieldOp::Set(kind.into())),
            ("entity", FieldOp::Set(entity.into())),
            ("site", FieldOp::Set(site.into())),
            ("at_ms", FieldOp::Set(Value::Int((minute * 60_000) as i64))),
            (
                "points",
                FieldOp::Set(Value::Json(serde_json::Value::Array(points).to_string())),
            ),
        ],
    )?;
    Ok(())
}

/// The content of an inbox file: one record, or an array of them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxFile {
    /// Collection.
    pub collection: String,
    /// Record id.
    pub id: String,
    /// Fields (JSON objects and arrays are stored as JSON values).
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// Parses an inbox file into observations; the error says what is wrong with it.
pub fn parse_inbox(bytes: &[u8]) -> anyhow::Result<Vec<Observation>> {
    let value: serde_json::Value = serde_json::from_slice(bytes).context("not JSON")?;
    let files: Vec<InboxFile> = if value.is_array() {
        serde_json::from_value(value)
    } else {
        serde_json::from_value(value).map(|f| vec![f])
    }
    .context("expected {\"collection\", \"id\", \"fields\": {...}} or an array of them")?;
    files
        .into_iter()
        .map(|f| {
            if f.collection.starts_with('$') {
                anyhow::bail!("collection {:?} is reserved", f.collection);
            }
            if f.fields.is_empty() {
                anyhow::bail!("record {}/{} has no fields", f.collection, f.id);
            }
            Ok(Observation::Record {
                collection: f.collection,
                id: f.id,
                fields: f.fields.into_iter().collect(),
            })
        })
        .collect()
}

/// Running sources.
pub struct Pipeline {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Stops every source after its current item.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts the configured sources.
pub async fn start(cfg: &SiteConfig, runtime: &Runtime) -> anyhow::Result<Pipeline> {
    let sink = Arc::new(Sink::new(
        runtime.store.clone(),
        &cfg.node,
        cfg.records.clone(),
    ));
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    // Every AIS source of the site feeds one picture and one set of behaviour rules; the SAR
    // inbox reads the picture.
    let ais = crate::ais::SiteAis::new(&cfg.node, &cfg.ais.behaviour)?;
    let picture = ais.picture().clone();
    for source in &cfg.sources {
        match source.clone() {
            SourceConfig::Inbox { dir, poll_ms } => {
                for sub in ["", "done", "rejected"] {
                    std::fs::create_dir_all(dir.join(sub))
                        .with_context(|| format!("creating {}", dir.join(sub).display()))?;
                }
                tracing::info!(dir = %dir.display(), "inbox source watching");
                let (sink, queues, mut stopped) =
                    (sink.clone(), runtime.queues.clone(), stopped.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let (sink, dir2, queues) = (sink.clone(), dir.clone(), queues.clone());
                        let scan =
                            tokio::task::spawn_blocking(move || scan_inbox(&dir2, &sink, &queues))
                                .await;
                        if let Ok(Err(e)) = scan {
                            tracing::warn!(error = %e, "inbox scan failed");
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(poll_ms)) => {}
                            _ = stopped.wait_for(|s| *s) => break,
                        }
                    }
                }));
            }
            SourceConfig::AisTcp {
                addr,
                reconnect_secs,
            } => {
                let (sink, stopped) = (sink.clone(), stopped.clone());
                tasks.push(tokio::spawn(crate::ais::run_tcp(
                    addr,
                    Duration::from_secs(reconnect_secs.max(1)),
                    ais.clone(),
                    sink,
                    stopped,
                )));
            }
            SourceConfig::AisUdp { listen } => {
                let socket = tokio::net::UdpSocket::bind(listen)
                    .await
                    .with_context(|| format!("binding the AIS UDP source to {listen}"))?;
                tracing::info!(%listen, "AIS UDP source listening");
                let (sink, stopped) = (sink.clone(), stopped.clone());
                tasks.push(tokio::spawn(crate::ais::run_udp(
                    socket,
                    ais.clone(),
                    sink,
                    stopped,
                )));
            }
            SourceConfig::XrayInbox {
                dir,
                poll_ms,
                model,
                alert_threshold,
            } => {
                let ctx = crate::scanner::Context::new(cfg, runtime);
                tasks.push(
                    crate::scanner::start_xray(
                        dir,
                        poll_ms,
                        model,
                        alert_threshold,
                        ctx,
                        stopped.clone(),
                    )
                    .await?,
                );
            }
            SourceConfig::DroneVideoInbox {
                dir,
                poll_ms,
                every,
            } => {
                let ctx = crate::scanner::Context::new(cfg, runtime);
                tasks.push(crate::drone_video::start(
                    dir,
                    poll_ms,
                    every,
                    ctx,
                    stopped.clone(),
                )?);
            }
            SourceConfig::SarInbox {
                dir,
                poll_ms,
                detect,
                correlation,
                land,
            } => {
                let ctx = crate::scanner::Context::new(cfg, runtime);
                let settings = crate::sar::SarSettings {
                    detect,
                    correlation,
                    land,
                };
                tasks.push(crate::sar::start(
                    dir,
                    poll_ms,
                    settings,
                    picture.clone(),
                    ctx,
                    stopped.clone(),
                )?);
            }
            SourceConfig::NqrInbox { dir, poll_ms, pfa } => {
                let ctx = crate::scanner::Context::new(cfg, runtime);
                tasks.push(crate::scanner::start_nqr(
                    dir,
                    poll_ms,
                    pfa,
                    ctx,
                    stopped.clone(),
                )?);
            }
        }
    }
    let has_ais = cfg
        .sources
        .iter()
        .any(|s| matches!(s, SourceConfig::AisTcp { .. } | SourceConfig::AisUdp { .. }));
    if has_ais {
        tasks.push(tokio::spawn(crate::ais::run_silence_checks(
            ais.clone(),
            crate::ais::SILENCE_CHECK_EVERY,
            sink.clone(),
            stopped.clone(),
        )));
    }
    if cfg.records.breadcrumb_retention_hours > 0 {
        let retention = Duration::from_secs(cfg.records.breadcrumb_retention_hours * 3600);
        let (store, site, mut stopped) = (runtime.store.clone(), cfg.node.clone(), stopped.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.wait_for(|s| *s) => break,
                }
                let (store, site) = (store.clone(), site.clone());
                match tokio::task::spawn_blocking(move || {
                    expire_breadcrumbs(&store, &site, retention)
                })
                .await
                {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::info!(deleted = n, "expired breadcrumbs deleted"),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %format!("{e:#}"), "breadcrumb expiry failed")
                    }
                    Err(e) => tracing::warn!(error = %e, "breadcrumb expiry failed"),
                }
            }
        }));
    }
    Ok(Pipeline { stop, tasks })
}

/// Deletes the breadcrumb records `site` wrote whose minute is older than `retention`;
/// returns how many. The store lock is taken per record, so sync and the API go on between.
pub fn expire_breadcrumbs(
    store: &Mutex<Store>,
    site: &str,
    retention: Duration,
) -> anyhow::Result<usize> {
    let lock = || {
        store
            .lock()
            .map_err(|_| anyhow::anyhow!("store lock poisoned"))
    };
    let (ids, now_ms) = {
        let s = lock()?;
        (s.ids(BREADCRUMBS)?, s.now_ms())
    };
    let cutoff_minute = now_ms.saturating_sub(retention.as_millis() as u64) / 60_000;
    let mut deleted = 0;
    for id in ids {
        // Ids are `kind:entity:minute` (see `add_breadcrumb`).
        let old = id
            .rsplit_once(':')
            .and_then(|(_, m)| m.parse::<u64>().ok())
            .is_some_and(|minute| minute < cutoff_minute);
        if !old {
            continue;
        }
        let mut s = lock()?;
        let ours = s
            .get(BREADCRUMBS, &id)?
            .is_some_and(|r| r.get("site") == Some(&Value::Text(site.to_owned())));
        if ours && s.delete(BREADCRUMBS, &id)? {
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// `dir/name`, or `dir/name.N` if that is taken: a file dropped twice keeps both copies.
fn unique(dir: &Path, name: &std::ffi::OsStr) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| {
            let mut s = name.to_owned();
            s.push(format!(".{n}"));
            dir.join(s)
        })
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Handles every `*.json` file in the inbox, oldest name first.
fn scan_inbox(
    dir: &Path,
    sink: &Sink,
    queues: &Mutex<BTreeMap<String, u64>>,
) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json") && settled(p))
        .collect();
    files.sort();
    if let Ok(mut q) = queues.lock() {
        q.insert("inbox".into(), files.len() as u64);
    }
    for path in files {
        let name = path.file_name().unwrap_or_default().to_owned();
        let result = std::fs::read(&path)
            .context("reading")
            .and_then(|bytes| parse_inbox(&bytes))
            .and_then(|obs| sink.write(&obs));
        match result {
            Ok(n) => {
                tracing::info!(file = ?name, records = n, "inbox file stored");
                std::fs::rename(&path, unique(&dir.join("done"), &name))?;
            }
            Err(e) => {
                tracing::warn!(file = ?name, error = %format!("{e:#}"), "inbox file rejected");
                let rejected = unique(&dir.join("rejected"), &name);
                std::fs::rename(&path, &rejected)?;
                let mut why = rejected.into_os_string();
                why.push(".error.txt");
                std::fs::write(why, format!("{e:#}\n"))?;
            }
        }
    }
    if let Ok(mut q) = queues.lock() {
        q.insert("inbox".into(), 0);
    }
    Ok(())
}

/// Whether a file in an inbox has been left unchanged for a second. Files still being written
/// are left for the next scan (writers should still write aside and rename into the inbox).
pub(crate) fn settled(p: &Path) -> bool {
    p.metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age >= Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_files_parse_or_say_why_not() {
        let one = br#"{"collection":"alerts","id":"a1","fields":{"title":"x","lat":34.2,"n":3,"detail":{"k":1}}}"#;
        let obs = parse_inbox(one).unwrap();
        assert_eq!(obs.len(), 1);
        let many = br#"[{"collection":"a","id":"1","fields":{"x":1}},{"collection":"a","id":"2","fields":{"x":2}}]"#;
        assert_eq!(parse_inbox(many).unwrap().len(), 2);
        for (bad, why) in [
            (&b"{"[..], "not JSON"),
            (br#"{"collection":"a"}"#, "expected"),
            (
                br#"{"collection":"$revoked","id":"x","fields":{"a":1}}"#,
                "reserved",
            ),
            (br#"{"collection":"a","id":"x","fields":{}}"#, "no fields"),
            (
                br#"{"collection":"a","id":"x","fields":{"a":1},"extra":1}"#,
                "expected",
            ),
        ] {
            let err = format!("{:#}", parse_inbox(bad).unwrap_err());
            assert!(err.contains(why), "{err}");
        }
    }

    /// A sink over a fresh in-memory replica of site `tsushima`.
    fn tsushima_sink() -> (Arc<Mutex<mizugiwa_sync::Store>>, Sink) {
        let store = mizugiwa_sync::Store::open_in_memory(
            mizugiwa_command::records::schema(),
            std::sync::Arc::new(mizugiwa_sync::ManualClock::new(1_700_000_000_000)),
            mizugiwa_sync::StoreConfig::new("tsushima"),
        )
        .unwrap();
        let store = Arc::new(Mutex::new(store));
        let sink = Sink::new(store.clone(), "tsushima", RecordPolicy::default());
        (store, sink)
    }

    #[test]
    fn a_batch_with_one_bad_record_writes_nothing() {
        let (store, sink) = tsushima_sink();
        let file = br#"[{"collection":"gate_stats","id":"g1","fields":{"opened":3}},
                        {"collection":"alerts","id":"a1","fields":{"status":"closed"}}]"#;
        let err = sink.write(&parse_inbox(file).unwrap()).unwrap_err();
        assert!(format!("{err:#}").contains("status"), "{err:#}");
        let s = store.lock().unwrap();
        assert!(
            s.get("gate_stats", "g1").unwrap().is_none(),
            "nothing written"
        );
    }

    #[test]
    fn an_alert_raised_again_updates_its_evidence_but_not_its_status_or_raising_time() {
        let (store, sink) = tsushima_sink();
        let alert = |title: &str, raised_ms: u64| Observation::Alert {
            id: "ais-tsushima-ais_gap-431000001-1".into(),
            ops: mizugiwa_command::records::NewAlert {
                title: title.into(),
                kind: "ais_gap",
                severity: "medium",
                site: "tsushima",
                position: Some((34.0, 129.0)),
                raised_ms,
                detail: serde_json::json!({"resumed": raised_ms > 1}),
            }
            .ops(),
        };
        assert_eq!(sink.write(&[alert("silent", 1)]).unwrap(), 1);
        store
            .lock()
            .unwrap()
            .put(
                ALERTS,
                "ais-tsushima-ais_gap-431000001-1",
                &[("status", FieldOp::Advance("acknowledged".into()))],
            )
            .unwrap();
        assert_eq!(sink.write(&[alert("heard again", 2)]).unwrap(), 1);
        let s = store.lock().unwrap();
        let r = s
            .get(ALERTS, "ais-tsushima-ais_gap-431000001-1")
            .unwrap()
            .unwrap();
        assert_eq!(r.get("title"), Some(&Value::Text("heard again".into())));
        assert_eq!(r.get("raised_ms"), Some(&Value::Int(1)));
        assert_eq!(
            r.get("detail"),
            Some(&Value::Json("{\"resumed\":true}".into()))
        );
        assert_eq!(
            r.fields.get("status"),
            Some(&mizugiwa_sync::FieldValue::Status("acknowledged".into()))
        );
    }

    #[test]
    fn values_become_the_operations_of_their_field_kind() {
        let status = FieldKind::Status(vec!["new".into(), "acknowledged".into()]);
        assert_eq!(
            ops_for(status.clone(), &serde_json::json!("new")).unwrap(),
            vec![FieldOp::Advance("new".into())]
        );
        assert!(ops_for(status, &serde_json::json!("closed")).is_err());
        assert_eq!(
            ops_for(FieldKind::Set, &serde_json::json!(["a", "b"]))
                .unwrap()
                .len(),
            2
        );
        assert!(ops_for(FieldKind::Counter, &serde_json::json!("x")).is_err());
    }

    #[test]
    fn json_values_map_to_field_values() {
        assert_eq!(value_of(&serde_json::json!(3)), Value::Int(3));
        assert_eq!(value_of(&serde_json::json!(3.5)), Value::Float(3.5));
        assert_eq!(value_of(&serde_json::json!("s")), Value::Text("s".into()));
        assert_eq!(
            value_of(&serde_json::json!({"a": [1]})),
            Value::Json("{\"a\":[1]}".into())
        );
    }

    #[test]
    fn only_this_sites_breadcrumbs_past_retention_are_deleted() {
        let clock = mizugiwa_sync::ManualClock::new(1_700_000_000_000);
        let store = mizugiwa_sync::Store::open_in_memory(
            mizugiwa_command::records::schema(),
            std::sync::Arc::new(clock.clone()),
            mizugiwa_sync::StoreConfig::new("tsushima"),
        )
        .unwrap();
        let store = Arc::new(Mutex::new(store));
        let start = 1_700_000_000_000u64;
        {
            let mut s = store.lock().unwrap();
            add_breadcrumb(
                &mut s,
                "vessel",
                "431000100",
                "tsushima",
                start,
                34.0,
                129.0,
            )
            .unwrap();
            add_breadcrumb(
                &mut s,
                "vessel",
                "431000200",
                "yokohama",
                start,
                35.0,
                139.0,
            )
            .unwrap();
            add_breadcrumb(
                &mut s,
                "drone",
                "d1",
                "tsushima",
                start + 2 * 3_600_000,
                34.1,
                129.1,
            )
            .unwrap();
        }
        clock.advance(3 * 3_600_000);
        let n = expire_breadcrumbs(&store, "tsushima", Duration::from_secs(2 * 3600)).unwrap();
        assert_eq!(n, 1);
        let s = store.lock().unwrap();
        let left: Vec<String> = s.ids(BREADCRUMBS).unwrap();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(
            left.iter().any(|id| id.starts_with("vessel:431000200:")),
            "another site's: kept"
        );
        assert!(
            left.iter().any(|id| id.starts_with("drone:d1:")),
            "recent: kept"
        );
    }
}
