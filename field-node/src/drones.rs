//! The coastal site's ground station: patrol drones over MAVLink 2, bridged to the site bus and
//! the store.
//!
//! - Telemetry goes to the site bus, live, on `mz/<site>/drone/<name>/telemetry` (what the
//!   [`crate::bus::DroneRecorder`] downsamples into `drones/<name>` records and breadcrumbs).
//! - A sortie is a record (`sorties/<name>-<start>`): when the vehicle armed and
//!   disarmed, how far it flew, how high. It is written when the vehicle arms and again when it
//!   disarms, so an interrupted flight still leaves its start on record.
//! - A vehicle whose heartbeats stop for `comm_lost_secs` raises a `drone_link_lost` alert
//!   with its last known position, battery and height: the patrol team must go and look.
//!
//! Everything else (uploading plans, commands) is the operator's, through
//! `mizugiwa drone upload|command` against the same port, or through this node's ground
//! station handle.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use mizugiwa_command::records::{NewAlert, ALERTS, SORTIES};
use mizugiwa_drone::gcs::codec::SigningKey;
use mizugiwa_drone::gcs::station::{Event, LinkSpec, Station, StationConfig, Telemetry};
use mizugiwa_sync::{FieldOp, Store, Value};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bus::{self, SiteBus};

/// The `[drones]` section of `site.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DronesConfig {
    /// The ground station's MAVLink port: `udpin:HOST:PORT`, `udpout:HOST:PORT` or `tcp:HOST:PORT`.
    pub link: String,
    /// Seconds without a heartbeat before a vehicle's link counts as lost (default 3.5).
    #[serde(default = "default_comm_lost")]
    pub comm_lost_secs: f64,
    /// Listen only to vehicles with a signing key, and only to their signed frames.
    #[serde(default)]
    pub require_signing: bool,
    /// Keep a `.tlog` of every frame here (relative paths are under the data dir).
    #[serde(default)]
    pub tlog_dir: Option<PathBuf>,
    /// Known vehicles, by MAVLink system id. Unlisted ones are named `<site>-uav<system id>`.
    #[serde(default)]
    pub vehicles: Vec<VehicleConfig>,
}

/// One `[[drones.vehicles]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VehicleConfig {
    pub system: u8,
    /// The name on the bus, in records and on the map: unique across the deployment (the
    /// `drones` record is keyed by it), e.g. `tsushima-uav1`.
    pub name: String,
    /// A file holding the vehicle's MAVLink 2 signing key, 64 hex digits (relative paths are
    /// under the PKI dir).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

fn default_comm_lost() -> f64 {
    3.5
}

impl DronesConfig {
    /// The ground station's configuration; reads the key files.
    pub fn station(
        &self,
        data_dir: &std::path::Path,
        pki_dir: &std::path::Path,
    ) -> anyhow::Result<StationConfig> {
        let link: LinkSpec = self
            .link
            .parse()
            .map_err(|e: String| anyhow::anyhow!("[drones] link: {e}"))?;
        let mut c = StationConfig::new(link);
        if !(self.comm_lost_secs > 0.0 && self.comm_lost_secs < 3600.0) {
            anyhow::bail!(
                "[drones] comm_lost_secs must be between 0 and 3600, not {}",
                self.comm_lost_secs
            );
        }
        c.comm_lost_after = Duration::from_secs_f64(self.comm_lost_secs);
        c.require_signing = self.require_signing;
        for v in &self.vehicles {
            if let Some(file) = &v.key_file {
                let path = pki_dir.join(file);
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "[drones] key of vehicle {}: reading {}",
                        v.name,
                        path.display()
                    )
                })?;
                let key: SigningKey = text.parse().map_err(|e: String| {
                    anyhow::anyhow!(
                        "[drones] key of vehicle {} in {}: {e}",
                        v.name,
                        path.display()
                    )
                })?;
                c.keys.insert(v.system, key);
            }
        }
        if let Some(dir) = &self.tlog_dir {
            let dir = data_dir.join(dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
            c.tlog = Some(dir.join(format!("gcs-{stamp}.tlog")));
        }
        Ok(c)
    }

    fn name(&self, site: &str, system: u8) -> String {
        self.vehicles
            .iter()
            .find(|v| v.system == system)
            .map(|v| v.name.clone())
            .unwrap_or_else(|| format!("{site}-uav{system}"))
    }
}

struct Sortie {
    id: String,
    started_ms: i64,
    distance_m: f64,
    max_alt_m: f64,
    last: Option<(f64, f64)>,
}

/// The running ground station and its bridge.
pub struct DroneStation {
    pub station: Station,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DroneStation {
    pub async fn start(
        cfg: &DronesConfig,
        station_cfg: StationConfig,
        bus: Arc<SiteBus>,
        store: Arc<Mutex<Store>>,
    ) -> anyhow::Result<DroneStation> {
        let link = station_cfg.link;
        let station = Station::start(station_cfg)
            .await
            .with_context(|| format!("opening the MAVLink port {link:?}"))?;
        tracing::info!(?link, addr = %station.local_addr(), "drone ground station up");
        let mut events = station.subscribe();
        let (stop, mut stopped) = watch::channel(false);
        let cfg = cfg.clone();
        let handle = station.clone();
        let task = tokio::spawn(async move {
            // By system id: a vehicle that comes back from another address (a radio or router
            // restart) is the same vehicle, in the same sortie.
            let mut sorties: HashMap<u8, Sortie> = HashMap::new();
            let mut last: HashMap<u8, Telemetry> = HashMap::new();
            // Vehicles whose loss is on record, until they are heard again.
            let mut alerted: std::collections::HashSet<u8> = std::collections::HashSet::new();
            // Events can be missed (a subscriber that falls behind is skipped ahead), so every few
            // seconds the station's own view of which links are lost is compared with what has
            // been raised: a lost drone is never left without its alert.
            let mut reconcile = tokio::time::interval(Duration::from_secs(5));
            reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                enum Wake {
                    Event(Event),
                    Reconcile,
                    Stop,
                }
                let wake = tokio::select! {
                    e = events.recv() => match e {
                        Ok(e) => Wake::Event(e),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(skipped = n, "drone bridge fell behind the ground station");
                            continue;
                        }
                        Err(_) => Wake::Stop,
                    },
                    _ = reconcile.tick() => Wake::Reconcile,
                    _ = stopped.wait_for(|s| *s) => Wake::Stop,
                };
                let event = match wake {
                    Wake::Event(e) => e,
                    Wake::Stop => break,
                    Wake::Reconcile => {
                        let site = bus.site().to_owned();
                        let Ok(vehicles) = handle.vehicles().await else {
                            break;
                        };
                        // A system is lost only if no address of it is alive (a vehicle that
                        // came back from another port leaves its old entry lost behind it).
                        let mut systems: std::collections::BTreeMap<u8, (bool, i64)> =
                            std::collections::BTreeMap::new();
                        for v in &vehicles {
                            let e = systems.entry(v.id.system).or_insert((false, 0));
                            e.0 |= !v.link_lost;
                            e.1 = e.1.max(v.telemetry.at_ms);
                        }
                        for (system, (alive, last_ms)) in systems {
                            if alive {
                                alerted.remove(&system);
                            } else if alerted.insert(system) {
                                let name = cfg.name(&site, system);
                                let silent_ms = (wall_ms() - last_ms).max(0) as u64;
                                tracing::warn!(vehicle = %name, "a lost drone link was found without its alert (events were missed)");
                                if let Err(e) = link_lost_alert(
                                    &store,
                                    &site,
                                    &name,
                                    last.get(&system),
                                    silent_ms,
                                ) {
                                    tracing::error!(error = %format!("{e:#}"), "could not record a lost drone link");
                                    alerted.remove(&system);
                                }
                            }
                        }
                        continue;
                    }
                };
                let site = bus.site().to_owned();
                match event {
                    Event::Telemetry { vehicle, telemetry } => {
                        let name = cfg.name(&site, vehicle.system);
                        let sample = bus::Telemetry {
                            lat: telemetry.lat,
                            lon: telemetry.lon,
                            alt_m: telemetry.rel_alt_m,
                            heading_deg: telemetry.heading_deg,
                            speed_mps: telemetry.ground_speed_mps,
                            battery_pct: telemetry.battery_pct.map(f64::from),
                            mode: Some(if telemetry.armed { "armed" } else { "disarmed" }.into()),
                            at_ms: telemetry.at_ms.max(0) as u64,
                        };
                        let json = serde_json::to_value(&sample).unwrap_or_default();
                        if let Err(e) = bus
                            .put_json(&format!("drone/{name}/telemetry"), &json)
                            .await
                        {
                            tracing::warn!(error = %e, "publishing drone telemetry");
                        }
                        track_sortie(
                            &store,
                            &site,
                            &name,
                            vehicle.system,
                            &telemetry,
                            &mut sorties,
                        );
                        last.insert(vehicle.system, telemetry);
                    }
                    Event::CommLost { vehicle, silent_ms } => {
                        // The old address of a vehicle now heard from another one is not a loss.
                        let alive_elsewhere = handle
                            .vehicles()
                            .await
                            .map(|vs| {
                                vs.iter().any(|v| {
                                    v.id.system == vehicle.system && v.id != vehicle && !v.link_lost
                                })
                            })
                            .unwrap_or(false);
                        // One alert per loss, however the loss was learnt of.
                        if !alive_elsewhere && alerted.insert(vehicle.system) {
                            let name = cfg.name(&site, vehicle.system);
                            if let Err(e) = link_lost_alert(
                                &store,
                                &site,
                                &name,
                                last.get(&vehicle.system),
                                silent_ms,
                            ) {
                                tracing::error!(error = %format!("{e:#}"), "could not record a lost drone link");
                                alerted.remove(&vehicle.system);
                            }
                        }
                    }
                    Event::CommRegained { vehicle, outage_ms } => {
                        alerted.remove(&vehicle.system);
                        tracing::info!(vehicle = %cfg.name(&site, vehicle.system), outage_ms, "drone link back");
                    }
                    _ => {}
                }
            }
        });
        Ok(DroneStation {
            station,
            stop,
            task,
        })
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.station.shutdown().await;
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn track_sortie(
    store: &Arc<Mutex<Store>>,
    site: &str,
    name: &str,
    vehicle: u8,
    t: &Telemetry,
    sorties: &mut HashMap<u8, Sortie>,
) {
    let write = |id: &str, ops: Vec<(&str, FieldOp)>| {
        let result = match store.lock() {
            Ok(mut s) => s
                .put(SORTIES, id, &ops)
                .map(|_| ())
                .map_err(anyhow::Error::from),
            Err(_) => Err(anyhow::anyhow!("store poisoned")),
        };
        if let Err(e) = result {
            tracing::error!(error = %format!("{e:#}"), sortie = id, "could not record a sortie");
        }
    };
    match (t.armed, sorties.get_mut(&vehicle)) {
        (true, None) => {
            let id = format!("{name}-{}", t.at_ms);
            tracing::info!(sortie = %id, "sortie started");
            write(
                &id,
                vec![
                    ("site", FieldOp::Set(site.into())),
                    ("vehicle", FieldOp::Set(name.into())),
                    ("started_ms", FieldOp::Set(Value::Int(t.at_ms))),
                    ("start_lat", FieldOp::Set(Value::Float(t.lat))),
                    ("start_lon", FieldOp::Set(Value::Float(t.lon))),
                    ("state", FieldOp::Set("flying".into())),
                ],
            );
            sorties.insert(
                vehicle,
                Sortie {
                    id,
                    started_ms: t.at_ms,
                    distance_m: 0.0,
                    max_alt_m: t.rel_alt_m,
                    last: Some((t.lat, t.lon)),
                },
            );
        }
        (true, Some(s)) => {
            if let Some(p) = s.last {
                s.distance_m += mizugiwa_drone::imagery::camera::distance_m(p, (t.lat, t.lon));
            }
            s.last = Some((t.lat, t.lon));
            s.max_alt_m = s.max_alt_m.max(t.rel_alt_m);
        }
        (false, Some(_)) => {
            let s = sorties.remove(&vehicle).expect("present");
            tracing::info!(sortie = %s.id, distance_m = s.distance_m.round(), "sortie ended");
            write(
                &s.id,
                vec![
                    ("ended_ms", FieldOp::Set(Value::Int(t.at_ms))),
                    (
                        "duration_s",
                        FieldOp::Set(Value::Float((t.at_ms - s.started_ms) as f64 / 1000.0)),
                    ),
                    (
                        "distance_m",
                        FieldOp::Set(Value::Float(s.distance_m.round())),
                    ),
                    ("max_alt_m", FieldOp::Set(Value::Float(s.max_alt_m.round()))),
                    ("end_lat", FieldOp::Set(Value::Float(t.lat))),
                    ("end_lon", FieldOp::Set(Value::Float(t.lon))),
                    ("state", FieldOp::Set("landed".into())),
                ],
            );
        }
        (false, None) => {}
    }
}

fn link_lost_alert(
    store: &Arc<Mutex<Store>>,
    site: &str,
    name: &str,
    last: Option<&Telemetry>,
    silent_ms: u64,
) -> anyhow::Result<()> {
    let now = wall_ms().max(0) as u64;
    let id = format!("drone-link-{site}-{name}-{now}");
    let flying = last.is_some_and(|t| t.armed && t.rel_alt_m > 1.0);
    let ops = NewAlert {
        title: match last {
            Some(t) if flying => format!(
                "Drone {name} lost in flight at {:.0} m, last seen {:.5}, {:.5}",
                t.rel_alt_m, t.lat, t.lon
            ),
            _ => format!("Drone {name}: link lost"),
        },
        kind: "drone_link_lost",
        // A drone lost in the air is a hazard and an asset at risk; one on the ground is not.
        severity: if flying { "high" } else { "medium" },
        site,
        position: last.map(|t| (t.lat, t.lon)),
        raised_ms: now,
        detail: serde_json::json!({
            "vehicle": name,
            "silent_ms": silent_ms,
            "last_alt_m": last.map(|t| t.rel_alt_m),
            "last_battery_pct": last.and_then(|t| t.battery_pct),
            "last_seen_ms": last.map(|t| t.at_ms),
            "armed": last.map(|t| t.armed),
        }),
    }
    .ops();
    tracing::warn!(
        vehicle = name,
        silent_ms,
        flying,
        "drone link lost: alert raised"
    );
    let mut s = store
        .lock()
        .map_err(|_| anyhow::anyhow!("store poisoned"))?;
    s.put(ALERTS, &id, &ops)?;
    Ok(())
}
