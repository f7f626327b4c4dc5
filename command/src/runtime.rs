//! What every Mizugiwa daemon runs, whether command center or field node: its replica of the
//! store, the sync driver, the web dashboard and API, and the node's own status record.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use mizugiwa_sync::driver::{self, PeerAddr, StatusView, SyncConfig, SyncHandle};
use mizugiwa_sync::pki::{self, NodeIdentity};
use mizugiwa_sync::{FieldOp, Interest, Store, StoreConfig, SystemClock, Value};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::audit::AuditLog;
use crate::auth::{Auth, UserConfig};
use crate::metrics::Metrics;
use crate::records::{self, SITES};
use crate::web::{self, Mode};

/// The `[sync]` section of a daemon's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// UDP address of the QUIC endpoint, e.g. "0.0.0.0:7400".
    pub listen: SocketAddr,
    /// Peers to dial (anyone with a certificate from the deployment CA may also dial in).
    #[serde(default)]
    pub peers: Vec<PeerAddr>,
    /// Refuse changes stamped more than this ahead of local time (default 60 s).
    #[serde(default = "default_skew")]
    pub max_clock_skew_ms: u64,
    /// Members silent longer than this stop holding back garbage collection (default 168 h).
    #[serde(default = "default_horizon")]
    pub collection_horizon_hours: u64,
    /// The same horizon in seconds, overriding the hours when set: for drills that rehearse
    /// a site coming back after the horizon without waiting a week.
    #[serde(default)]
    pub collection_horizon_secs: Option<u64>,
    /// What this replica holds: `"everything"` (the default; a command center, a relay, or a
    /// site that should keep a copy of every other site's records) or `"shared"` (the shared
    /// collections and this site's own reports: for large fleets, where receiving every other
    /// site's tracks and decisions would cost each site N times its own traffic).
    #[serde(default)]
    pub interest: Interest,
}

impl SyncSection {
    /// The collection horizon in milliseconds.
    pub fn collection_horizon_ms(&self) -> u64 {
        match self.collection_horizon_secs {
            Some(secs) => secs * 1000,
            None => self.collection_horizon_hours * 3600 * 1000,
        }
    }
}

fn default_skew() -> u64 {
    60_000
}

fn default_horizon() -> u64 {
    168
}

/// The `[http]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// TCP address of the dashboard and API, e.g. "127.0.0.1:8080".
    pub listen: SocketAddr,
    /// Hours a login lasts (default 12).
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
}

fn default_session_hours() -> u64 {
    12
}

/// Where a node is and what it is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// `port`, `airport`, `coast` or `command`.
    pub kind: String,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
}

/// Everything a daemon's runtime needs.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Node name; must match its certificate.
    pub node: String,
    /// Folder of the replica database and the audit log.
    pub data_dir: PathBuf,
    /// Folder holding `ca.crt`, `NODE.crt`, `NODE.key`.
    pub pki_dir: PathBuf,
    /// Sync settings.
    pub sync: SyncSection,
    /// Web settings.
    pub http: HttpSection,
    /// Operators.
    pub users: Vec<UserConfig>,
    /// Command or site mode.
    pub mode: Mode,
    /// Where the node is.
    pub location: Location,
    /// How often the node's status record is written.
    pub status_interval: Duration,
}

/// What a daemon's own capabilities get to build their routes on.
pub struct Extension {
    /// The local replica.
    pub store: Arc<Mutex<Store>>,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Becomes `true` when the daemon shuts down.
    pub stopped: watch::Receiver<bool>,
}

/// A running daemon core.
pub struct Runtime {
    /// The local replica.
    pub store: Arc<Mutex<Store>>,
    /// Queue depths the node's pipelines report, shown in status and metrics.
    pub queues: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Metrics registry.
    pub metrics: Metrics,
    http_addr: SocketAddr,
    sync_addr: SocketAddr,
    sync: SyncHandle,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Runtime {
    /// Opens the replica, starts syncing, serves the dashboard and starts writing status.
    pub async fn start(cfg: RuntimeConfig) -> anyhow::Result<Runtime> {
        Self::start_with(cfg, |_| Ok(axum::Router::new())).await
    }

    /// [`Runtime::start`], serving `routes` beside the dashboard's own: the site daemon adds
    /// its capabilities' APIs (gates, scanners) this way. `routes` is built once the replica is
    /// open; its routes share the dashboard's listener and request metrics.
    pub async fn start_with(
        cfg: RuntimeConfig,
        routes: impl FnOnce(Extension) -> anyhow::Result<axum::Router>,
    ) -> anyhow::Result<Runtime> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
        let identity = NodeIdentity::load_dir(&cfg.pki_dir, &cfg.node).with_context(|| {
            format!(
                "loading {}'s certificate from {} (issue one with `mizugiwa pki issue --node {}`)",
                cfg.node,
                cfg.pki_dir.display(),
                cfg.node
            )
        })?;
        let ca = pki::load_ca(&cfg.pki_dir.join("ca.crt"))?;
        let ca_for_checks = ca.clone();
        let mut store_cfg = StoreConfig::new(&cfg.node);
        store_cfg.max_clock_skew_ms = cfg.sync.max_clock_skew_ms;
        store_cfg.collection_horizon_ms = cfg.sync.collection_horizon_ms();
        store_cfg.interest = cfg.sync.interest;
        let db = cfg.data_dir.join(format!("{}.db", cfg.node));
        let store = Store::open(
            &db,
            records::schema(),
            Arc::new(SystemClock::new()),
            store_cfg,
        )
        .with_context(|| format!("opening {}", db.display()))?;
        let store = Arc::new(Mutex::new(store));
        let sync = driver::start(
            store.clone(),
            &identity,
            ca,
            SyncConfig::new(cfg.sync.listen, cfg.sync.peers.clone()),
        )?;
        let sync_addr = sync.local_addr();
        let metrics = Metrics::new(Some(sync.status_view()));
        let auth = Auth::new(
            &cfg.users,
            Duration::from_secs(cfg.http.session_hours * 3600),
        )?;
        let audit_path = cfg.data_dir.join("audit.jsonl");
        let audit = AuditLog::open(&audit_path)?;
        let (stop, stopped) = watch::channel(false);
        let state = web::state(
            &cfg.node,
            cfg.mode.clone(),
            store.clone(),
            auth,
            audit,
            metrics.clone(),
            stopped.clone(),
            ca_for_checks,
        );
        let listener = tokio::net::TcpListener::bind(cfg.http.listen)
            .await
            .with_context(|| format!("binding the dashboard to {}", cfg.http.listen))?;
        let http_addr = listener.local_addr()?;
        let extra = routes(Extension {
            store: store.clone(),
            metrics: metrics.clone(),
            stopped: stopped.clone(),
        })?;
        let mut tasks = Vec::new();
        {
            let mut stopped = stopped.clone();
            tasks.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                if let Err(e) = web::serve(listener, state, extra, shutdown).await {
                    tracing::error!(error = %e, "dashboard server failed");
                }
            }));
        }
        let queues: Arc<Mutex<BTreeMap<String, u64>>> = Default::default();
        {
            let writer = StatusWriter {
                store: store.clone(),
                node: cfg.node.clone(),
                location: cfg.location.clone(),
                data_dir: cfg.data_dir.clone(),
                peers: sync.status_view(),
                queues: queues.clone(),
                metrics: metrics.clone(),
                started: Instant::now(),
                started_ms: now_ms(),
            };
            let (every, mut stopped) = (cfg.status_interval, stopped.clone());
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stopped.wait_for(|s| *s) => break,
                    }
                    if let Err(e) = writer.write() {
                        tracing::warn!(error = %e, "could not write the node status record");
                    }
                }
            }));
        }
        tracing::info!(node = %cfg.node, %http_addr, %sync_addr, "node up");
        Ok(Runtime {
            store,
            queues,
            metrics,
            http_addr,
            sync_addr,
            sync,
            stop,
            tasks,
        })
    }

    /// The dashboard's bound address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The QUIC endpoint's bound address.
    pub fn sync_addr(&self) -> SocketAddr {
        self.sync_addr
    }

    /// Becomes `true` when the daemon shuts down: for tasks that run beside it.
    pub fn stopped(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// The peers' sync status.
    pub fn peers(&self) -> StatusView {
        self.sync.status_view()
    }

    /// Stops serving and syncing; the replica is closed when the last handle drops.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // The dashboard server waits for open requests to end; an SSE stream or a client
        // that never reads must not keep the daemon from stopping.
        driver::join_within(self.tasks, driver::SHUTDOWN_GRACE, "command runtime").await;
        self.sync.shutdown().await;
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Writes the node's `sites/<node>` record: the heartbeat the map's health colours come from.
struct StatusWriter {
    store: Arc<Mutex<Store>>,
    node: String,
    location: Location,
    data_dir: PathBuf,
    peers: StatusView,
    queues: Arc<Mutex<BTreeMap<String, u64>>>,
    metrics: Metrics,
    started: Instant,
    started_ms: u64,
}

impl StatusWriter {
    fn write(&self) -> anyhow::Result<()> {
        let (free, total) = disk_space(&self.data_dir).unwrap_or((0, 0));
        let queues = self.queues.lock().map(|q| q.clone()).unwrap_or_default();
        for (q, depth) in &queues {
            self.metrics.set_queue(q, *depth);
        }
        let peers: Vec<serde_json::Value> = self
            .peers
            .get()
            .into_iter()
            .map(|p| {
                serde_json::json!({
                    "peer": p.peer, "connected": p.connected,
                    "last_contact_ms": p.last_contact_ms,
                    "lag_changes": p.lag_changes, "lag_entries": p.lag_entries,
                })
            })
            .collect();
        let mut store = self.store.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let counts: BTreeMap<String, u64> = store
            .collection_counts()?
            .into_iter()
            .filter(|(c, _)| !c.starts_with('$'))
            .collect();
        let json = |v: serde_json::Value| FieldOp::Set(Value::Json(v.to_string()));
        store.put(
            SITES,
            &self.node,
            &[
                ("name", FieldOp::Set(self.node.clone().into())),
                ("kind", FieldOp::Set(self.location.kind.clone().into())),
                ("lat", FieldOp::Set(Value::Float(self.location.lat))),
                ("lon", FieldOp::Set(Value::Float(self.location.lon))),
                ("version", FieldOp::Set(env!("CARGO_PKG_VERSION").into())),
                (
                    "started_ms",
                    FieldOp::Set(Value::Int(self.started_ms as i64)),
                ),
                ("heartbeat_ms", FieldOp::Set(Value::Int(now_ms() as i64))),
                (
                    "uptime_s",
                    FieldOp::Set(Value::Int(self.started.elapsed().as_secs() as i64)),
                ),
                ("disk_free_bytes", FieldOp::Set(Value::Int(free as i64))),
                ("disk_total_bytes", FieldOp::Set(Value::Int(total as i64))),
                ("queues", json(serde_json::json!(queues))),
                ("peers", json(serde_json::json!(peers))),
                ("records", json(serde_json::json!(counts))),
            ],
        )?;
        Ok(())
    }
}

/// Free and total bytes of the file system holding `path`.
fn disk_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a properly sized out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let frsize = s.f_frsize as u64;
    Some((s.f_bavail as u64 * frsize, s.f_blocks as u64 * frsize))
}
