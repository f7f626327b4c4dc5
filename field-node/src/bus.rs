//! The site bus: zenoh in peer mode on the site's own LAN, for live data that must not become
//! replicated history — drone telemetry, gate heartbeats, video frames.
//!
//! Key expressions are `mz/<site>/<kind>/<id>/<stream>`, e.g. `mz/tsushima/drone/uav1/telemetry`.
//! Peers are listed explicitly (listen and connect endpoints) and multicast scouting is off
//! unless the config turns it on: a site bus joins exactly the machines it was told about.
//!
//! The [`DroneRecorder`] is the one bridge from the bus to the store: it downsamples telemetry
//! to the `drones/<id>` record (at most every few seconds) and to breadcrumb points, so that
//! sync carries the picture, not every sample.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use mizugiwa_command::records::DRONES;
use mizugiwa_sync::{FieldOp, Store, Value};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::pipeline::add_breadcrumb;

/// The `[bus]` section of `site.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// Endpoints this node listens on, e.g. `["tcp/192.168.10.5:7447"]`.
    #[serde(default)]
    pub listen: Vec<String>,
    /// Endpoints of other bus peers to connect to.
    #[serde(default)]
    pub connect: Vec<String>,
    /// Discover peers by UDP multicast (off by default: explicit peers only).
    #[serde(default)]
    pub multicast_scouting: bool,
    /// A drone's record is rewritten at most this often, in seconds (default 2).
    #[serde(default = "default_drone_secs")]
    pub drone_record_secs: u64,
    /// One breadcrumb point per drone at most this often, in seconds (default 10).
    #[serde(default = "default_crumb_secs")]
    pub breadcrumb_secs: u64,
}

impl BusConfig {
    /// A bus with no endpoints: components of this node talk to each other, nothing else joins.
    pub fn private() -> BusConfig {
        BusConfig {
            listen: vec![],
            connect: vec![],
            multicast_scouting: false,
            drone_record_secs: default_drone_secs(),
            breadcrumb_secs: default_crumb_secs(),
        }
    }
}

fn default_drone_secs() -> u64 {
    2
}

fn default_crumb_secs() -> u64 {
    10
}

/// An open site bus.
pub struct SiteBus {
    session: zenoh::Session,
    site: String,
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

impl SiteBus {
    /// Joins the bus as a peer.
    pub async fn open(site: &str, cfg: &BusConfig) -> anyhow::Result<SiteBus> {
        let mut config = zenoh::Config::default();
        let set = |config: &mut zenoh::Config, key: &str, value: String| {
            config
                .insert_json5(key, &value)
                .map_err(|e| anyhow::anyhow!("bus config {key} = {value}: {e}"))
        };
        set(&mut config, "mode", "\"peer\"".into())?;
        set(
            &mut config,
            "scouting/multicast/enabled",
            cfg.multicast_scouting.to_string(),
        )?;
        set(&mut config, "listen/endpoints", json_list(&cfg.listen))?;
        set(&mut config, "connect/endpoints", json_list(&cfg.connect))?;
        let session = zenoh::open(config)
            .await
            .map_err(|e| anyhow::anyhow!("joining the site bus: {e}"))?;
        tracing::info!(site, listen = ?cfg.listen, connect = ?cfg.connect, "site bus up");
        Ok(SiteBus {
            session,
            site: site.to_owned(),
        })
    }

    /// The site this bus belongs to.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// The full key of `suffix` on this site's bus.
    pub fn key(&self, suffix: &str) -> String {
        format!("mz/{}/{suffix}", self.site)
    }

    /// Publishes a JSON value under `mz/<site>/<suffix>`.
    pub async fn put_json(&self, suffix: &str, value: &serde_json::Value) -> anyhow::Result<()> {
        self.session
            .put(self.key(suffix), value.to_string())
            .await
            .map_err(|e| anyhow::anyhow!("publishing {suffix}: {e}"))
    }

    /// The zenoh session, for components that subscribe themselves.
    pub fn session(&self) -> &zenoh::Session {
        &self.session
    }

    /// Leaves the bus.
    pub async fn close(self) {
        let _ = self.session.close().await;
    }
}

/// Samples stamped further ahead of this node's clock than this are refused.
const MAX_AHEAD_MS: u64 = 5 * 60 * 1000;

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One telemetry sample, as drones (or the ground station) publish it on
/// `mz/<site>/drone/<id>/telemetry`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct Telemetry {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Altitude above home, metres.
    #[serde(default)]
    pub alt_m: f64,
    /// Heading, degrees.
    #[serde(default)]
    pub heading_deg: f64,
    /// Ground speed, m/s.
    #[serde(default)]
    pub speed_mps: f64,
    /// Battery, percent.
    #[serde(default)]
    pub battery_pct: Option<f64>,
    /// Flight mode.
    #[serde(default)]
    pub mode: Option<String>,
    /// Sample time, ms since the epoch.
    pub at_ms: u64,
}

/// What the recorder has done.
#[derive(Debug, Default)]
pub struct RecorderStats {
    /// Samples received from the bus.
    pub received: AtomicU64,
    /// Samples that did not parse (ignored).
    pub malformed: AtomicU64,
    /// Drone record writes.
    pub records: AtomicU64,
    /// Breadcrumb points written.
    pub breadcrumbs: AtomicU64,
}

/// Downsamples drone telemetry from the bus into records.
pub struct DroneRecorder {
    /// Its counters.
    pub stats: Arc<RecorderStats>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DroneRecorder {
    /// Subscribes to `mz/<site>/drone/*/telemetry` and records into `store`.
    pub async fn start(
        bus: &SiteBus,
        store: Arc<Mutex<Store>>,
        cfg: &BusConfig,
    ) -> anyhow::Result<DroneRecorder> {
        let key = bus.key("drone/*/telemetry");
        let subscriber = bus
            .session()
            .declare_subscriber(&key)
            .await
            .map_err(|e| anyhow::anyhow!("subscribing to {key}: {e}"))?;
        let stats = Arc::new(RecorderStats::default());
        let (stop, mut stopped) = watch::channel(false);
        let (site, record_ms, crumb_ms, st) = (
            bus.site.clone(),
            cfg.drone_record_secs * 1000,
            cfg.breadcrumb_secs * 1000,
            stats.clone(),
        );
        let task = tokio::spawn(async move {
            // Last record write and last breadcrumb point per drone, by sample time.
            let mut last: HashMap<String, (u64, u64)> = HashMap::new();
            loop {
                let sample = tokio::select! {
                    s = subscriber.recv_async() => match s { Ok(s) => s, Err(_) => break },
                    _ = stopped.wait_for(|s| *s) => break,
                };
                st.received.fetch_add(1, Ordering::Relaxed);
                let key = sample.key_expr().as_str().to_owned();
                // mz/<site>/drone/<id>/telemetry
                let id = key.split('/').nth(3).unwrap_or("").to_owned();
                let t = match serde_json::from_slice::<Telemetry>(&sample.payload().to_bytes()) {
                    // A sample stamped far in the future would pin the throttle (and make a
                    // breadcrumb for a minute to come): refused like garbage.
                    Ok(t)
                        if t.lat.abs() <= 90.0
                            && t.lon.abs() <= 180.0
                            && !id.is_empty()
                            && t.at_ms <= wall_ms() + MAX_AHEAD_MS =>
                    {
                        t
                    }
                    _ => {
                        st.malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(key, "ignoring malformed telemetry");
                        continue;
                    }
                };
                let (rec_at, crumb_at) = last.get(&id).copied().unwrap_or((0, 0));
                let write_record = t.at_ms.saturating_sub(rec_at) >= record_ms;
                let write_crumb = t.at_ms.saturating_sub(crumb_at) >= crumb_ms;
                if !write_record && !write_crumb {
                    continue;
                }
                let result = record(&store, &site, &id, &t, write_record, write_crumb);
                match result {
                    Ok(()) => {
                        let entry = last.entry(id).or_insert((0, 0));
                        if write_record {
                            entry.0 = t.at_ms;
                            st.records.fetch_add(1, Ordering::Relaxed);
                        }
                        if write_crumb {
                            entry.1 = t.at_ms;
                            st.breadcrumbs.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "could not record drone telemetry")
                    }
                }
            }
        });
        Ok(DroneRecorder { stats, stop, task })
    }

    /// Stops recording.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn record(
    store: &Arc<Mutex<Store>>,
    site: &str,
    id: &str,
    t: &Telemetry,
    write_record: bool,
    write_crumb: bool,
) -> anyhow::Result<()> {
    let mut s = store
        .lock()
        .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
    if write_record {
        let mut ops = vec![
            ("site", FieldOp::Set(site.into())),
            ("lat", FieldOp::Set(Value::Float(t.lat))),
            ("lon", FieldOp::Set(Value::Float(t.lon))),
            ("alt_m", FieldOp::Set(Value::Float(t.alt_m))),
            ("heading_deg", FieldOp::Set(Value::Float(t.heading_deg))),
            ("speed_mps", FieldOp::Set(Value::Float(t.speed_mps))),
            ("at_ms", FieldOp::Set(Value::Int(t.at_ms as i64))),
            ("link", FieldOp::Set("ok".into())),
        ];
        if let Some(b) = t.battery_pct {
            ops.push(("battery_pct", FieldOp::Set(Value::Float(b))));
        }
        if let Some(m) = &t.mode {
            ops.push(("mode", FieldOp::Set(m.clone().into())));
        }
        s.put(DRONES, id, &ops)
            .with_context(|| format!("drones/{id}"))?;
    }
    if write_crumb {
        add_breadcrumb(&mut s, "drone", id, site, t.at_ms, t.lat, t.lon)?;
    }
    Ok(())
}
