//! Gate heartbeats on the site bus: which e-gates of an airport are alive.
//!
//! Each gate terminal publishes a small JSON object on `mz/<site>/gate/<gate>/heartbeat` about
//! once a second (`{"state": "ok"}`; `state` is the terminal's own word for its health, e.g.
//! `ok`, `fault`, `closed`). The heartbeats are live data: they never become records. What
//! becomes a record is a change of link: when a gate that was heard goes silent for
//! `heartbeat_timeout_secs`, its `gate_stats/<site>-<gate>` record says `link = "offline"` and
//! an alert is raised (`kind = "gate_offline"`) so the hall's officers and headquarters know
//! that passengers are queueing at a dead gate; the first heartbeat after that sets
//! `link = "online"` again. A gate never heard from (one without a bus connection) is neither.
//!
//! Heartbeats from gates that are not configured are ignored and counted: the bus is a LAN
//! with explicit peers, but a name on it is not proof of anything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mizugiwa_command::records::{NewAlert, ALERTS, GATE_STATS};
use mizugiwa_sync::{FieldOp, Store, Value};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bus::SiteBus;

/// What the node knows of one gate's link.
#[derive(Debug, Clone, Serialize)]
pub struct GateLink {
    /// `online`, `offline` (heard before, silent now) or `unknown` (never heard).
    pub link: &'static str,
    /// The state the gate last reported.
    pub state: Option<String>,
    /// Seconds since its last heartbeat, if any.
    pub silent_secs: Option<f64>,
    /// Heartbeats received.
    pub heartbeats: u64,
}

struct Seen {
    last: Instant,
    state: Option<String>,
    online: bool,
    heartbeats: u64,
}

/// The links of a site's gates, shared by the monitor and the gate API.
#[derive(Default)]
pub struct GateLinks {
    gates: Mutex<HashMap<String, Seen>>,
    /// Heartbeats that were not JSON objects, or named a gate that is not configured.
    pub ignored: AtomicU64,
}

impl GateLinks {
    /// The link of each gate in `gates`, in that order.
    pub fn snapshot(&self, gates: &[String]) -> Vec<(String, GateLink)> {
        let seen = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates
            .iter()
            .map(|g| {
                let link = match seen.get(g) {
                    Some(s) => GateLink {
                        link: if s.online { "online" } else { "offline" },
                        state: s.state.clone(),
                        silent_secs: Some(s.last.elapsed().as_secs_f64()),
                        heartbeats: s.heartbeats,
                    },
                    None => GateLink {
                        link: "unknown",
                        state: None,
                        silent_secs: None,
                        heartbeats: 0,
                    },
                };
                (g.clone(), link)
            })
            .collect()
    }
}

/// Follows the gates' heartbeats until stopped.
pub struct HeartbeatMonitor {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A link change to record.
enum Change {
    Online,
    Offline,
}

impl HeartbeatMonitor {
    /// Subscribes to `mz/<site>/gate/*/heartbeat` for the configured `gates`.
    pub async fn start(
        bus: &SiteBus,
        store: Arc<Mutex<Store>>,
        links: Arc<GateLinks>,
        gates: Vec<String>,
        timeout: Duration,
    ) -> anyhow::Result<HeartbeatMonitor> {
        let key = bus.key("gate/*/heartbeat");
        let subscriber = bus
            .session()
            .declare_subscriber(&key)
            .await
            .map_err(|e| anyhow::anyhow!("subscribing to {key}: {e}"))?;
        let site = bus.site().to_owned();
        let (stop, mut stopped) = watch::channel(false);
        tracing::info!(%key, gates = gates.len(), timeout_secs = timeout.as_secs_f64(), "following gate heartbeats");
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250).min(timeout / 4));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let mut changes = Vec::new();
                tokio::select! {
                    s = subscriber.recv_async() => {
                        let Ok(sample) = s else { break };
                        // mz/<site>/gate/<gate>/heartbeat
                        let key = sample.key_expr().as_str().to_owned();
                        let gate = key.split('/').nth(3).unwrap_or("").to_owned();
                        let body = serde_json::from_slice::<serde_json::Value>(&sample.payload().to_bytes());
                        let state = match (&body, gates.contains(&gate)) {
                            (Ok(serde_json::Value::Object(o)), true) => {
                                o.get("state").and_then(|s| s.as_str()).map(|s| s.chars().take(32).collect())
                            }
                            _ => {
                                links.ignored.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(key, "ignoring a heartbeat (not JSON, or not a configured gate)");
                                continue;
                            }
                        };
                        let mut seen = links.gates.lock().unwrap_or_else(|p| p.into_inner());
                        let entry = seen.entry(gate.clone()).or_insert(Seen {
                            last: Instant::now(),
                            state: None,
                            online: false,
                            heartbeats: 0,
                        });
                        entry.last = Instant::now();
                        entry.state = state;
                        entry.heartbeats += 1;
                        if !entry.online {
                            entry.online = true;
                            changes.push((gate, Change::Online));
                        }
                    }
                    _ = tick.tick() => {
                        let mut seen = links.gates.lock().unwrap_or_else(|p| p.into_inner());
                        for (gate, s) in seen.iter_mut() {
                            if s.online && s.last.elapsed() >= timeout {
                                s.online = false;
                                changes.push((gate.clone(), Change::Offline));
                            }
                        }
                    }
                    _ = stopped.wait_for(|s| *s) => break,
                }
                for (gate, change) in changes {
                    let store = store.clone();
                    let site = site.clone();
                    let silent = timeout.as_secs();
                    let done = tokio::task::spawn_blocking(move || {
                        record(&store, &site, &gate, change, silent)
                    })
                    .await;
                    if let Ok(Err(e)) = done {
                        tracing::error!(error = %format!("{e:#}"), "could not record a gate's link change");
                    }
                }
            }
        });
        Ok(HeartbeatMonitor { stop, task })
    }

    /// Stops following.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn record(
    store: &Arc<Mutex<Store>>,
    site: &str,
    gate: &str,
    change: Change,
    silent_secs: u64,
) -> anyhow::Result<()> {
    let mut store = store
        .lock()
        .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
    let now = store.now_ms();
    let link = match change {
        Change::Online => "online",
        Change::Offline => "offline",
    };
    let stats = [
        ("site", FieldOp::Set(site.into())),
        ("gate", FieldOp::Set(gate.into())),
        ("link", FieldOp::Set(link.into())),
        ("link_changed_ms", FieldOp::Set(Value::Int(now as i64))),
    ];
    let stats_id = format!("{site}-{gate}");
    match change {
        Change::Online => {
            tracing::info!(gate, "gate online");
            store.put(GATE_STATS, &stats_id, &stats)?;
        }
        Change::Offline => {
            tracing::warn!(gate, silent_secs, "gate silent: offline");
            let alert = format!("gate-offline-{site}-{gate}-{now}");
            let alert_ops = NewAlert {
                title: format!("E-gate {gate} at {site} is not responding"),
                kind: "gate_offline",
                severity: "medium",
                site,
                position: None,
                raised_ms: now,
                detail: serde_json::json!({ "gate": gate, "silent_secs": silent_secs }),
            }
            .ops();
            store.put_all(&[
                (GATE_STATS, &stats_id, &stats),
                (ALERTS, &alert, &alert_ops),
            ])?;
        }
    }
    Ok(())
}
