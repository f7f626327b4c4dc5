//! `mizugiwa demo`: a whole deployment on one machine — the command center (hq) and three
//! field nodes (Yokohama port, Narita airport, Tsushima coast), each with its own CA-issued
//! certificate, SQLite replica, sync endpoint and dashboard, syncing over QUIC on loopback,
//! with simulated traffic from each site. The hq dashboard address and demo logins are
//! printed; Ctrl-C stops everything cleanly.
//!
//! Simulated traffic: at Tsushima, a fleet in the strait broadcasting AIS to the site's real
//! `ais_tcp` source and a synthetic SAR pass dropped into its real `sar_inbox`, whose
//! detections and dark-vessel alerts come from the node itself (see `demo_sar.rs`); two
//! simulated patrol drones flying corridor patrols along its east coast through the site's real
//! MAVLink ground station (drone records, breadcrumbs, sorties); X-ray alerts at Yokohama; and
//! passengers at Narita's e-gates:
//! the demo signs their declarations with a demo issuer key whose public half headquarters
//! publishes as the trust list, and every passenger goes through Narita's real gate service
//! (verification, MRZ, allowances, decision, durable record; a few tampered, over-allowance
//! or replayed declarations among them).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use mizugiwa_command::auth::{hash_password, Role, UserConfig};
use mizugiwa_command::records::ALERTS;
use mizugiwa_command::runtime::{HttpSection, Location, Runtime, RuntimeConfig, SyncSection};
use mizugiwa_command::web::Mode;
use mizugiwa_drone::gcs::items as gcs_items;
use mizugiwa_drone::gcs::mission::ListKind;
use mizugiwa_drone::gcs::station::{Command as DroneCommand, LinkSpec, Station, StationConfig};
use mizugiwa_drone::plan::{Camera, Geofence, Plan};
use mizugiwa_drone::sim::{self, FlightMode, SimConfig};
use mizugiwa_field_node::bus::{BusConfig, DroneRecorder, SiteBus};
use mizugiwa_field_node::drones::{DroneStation, DronesConfig};
use mizugiwa_field_node::gate::{DecideRequest, GateApi, GateDevice, GateSection, GateService};
use mizugiwa_gate_edge::trust::{PublicKeyFile, SigningKey};
use mizugiwa_sync::driver::PeerAddr;
use mizugiwa_sync::pki::{self, Role as CertRole};
use mizugiwa_sync::{FieldOp, Value};

#[path = "demo_sar.rs"]
mod sar;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Working folder for certificates and databases (default: a fresh folder under /tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Run the traffic for this many seconds, check that hq sees every site, and exit.
    #[arg(long)]
    once: Option<u64>,
    /// First of the HTTP ports (hq; the sites take the next three).
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// First of the QUIC ports (hq; the sites take the next three).
    #[arg(long, default_value_t = 7400)]
    sync_port: u16,
    /// TCP port of Tsushima's site bus (zenoh).
    #[arg(long, default_value_t = 7447)]
    bus_port: u16,
}

/// Tsushima's coastline (Natural Earth, see drone/data/README.md), for the patrols' corridors.
const TSUSHIMA_COAST: &str = include_str!("../../drone/data/tsushima.geojson");

/// A corridor patrol along a stretch of Tsushima's coast, 100 to 500 m out to sea.
fn coastal_patrol(from: (f64, f64), to: (f64, f64)) -> anyhow::Result<Plan> {
    use mizugiwa_drone::corridor::{corridor_scan, Coast, CorridorRequest};
    let coast = Coast::from_geojson(&serde_json::from_str(TSUSHIMA_COAST)?)?;
    let scan = corridor_scan(&CorridorRequest {
        coast,
        stretch: Some((
            geo::Coord {
                x: from.1,
                y: from.0,
            },
            geo::Coord { x: to.1, y: to.0 },
        )),
        sea_side: None,
        offset_m: 100.0,
        width_m: 400.0,
        alt_m: 100.0,
        camera: Camera {
            sensor_width_mm: 13.2,
            focal_length_mm: 8.8,
        },
        side_overlap: 0.2,
        max_leg_m: 300.0,
    })?;
    Ok(Plan {
        home: scan.shore_start,
        waypoints: scan.waypoints,
        fence: Geofence::default(),
        rally: vec![scan.shore_start],
        cruise_speed_mps: 25.0,
    })
}

/// Tsushima's patrol drones: simulated multicopters (`mizugiwa_drone::sim`) talking MAVLink 2
/// to the site's real ground station, which feeds the bus, the drone records, breadcrumbs and
/// sorties. Each flies a corridor patrol along the east coast, lands, and goes again.
async fn fly_patrols(
    station: Station,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let patrols = [
        // Izuhara northwards, and the north island's east coast.
        coastal_patrol((34.20, 129.30), (34.235, 129.315))?,
        coastal_patrol((34.45, 129.40), (34.49, 129.42))?,
    ];
    let mut vehicles = Vec::new();
    for (i, plan) in patrols.iter().enumerate() {
        let mut c = SimConfig::new(
            i as u8 + 1,
            station.local_addr(),
            plan.home.lat,
            plan.home.lon,
        );
        c.cruise_mps = plan.cruise_speed_mps;
        c.climb_mps = 5.0;
        vehicles.push(sim::spawn(c).await?);
    }
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    // One launch at a time per vehicle: a launch still uploading is not started again.
    let mut launches: Vec<Option<tokio::task::JoinHandle<()>>> =
        patrols.iter().map(|_| None).collect();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let known = station.vehicles().await?;
        for (i, plan) in patrols.iter().enumerate() {
            let Some(v) = known.iter().find(|v| v.id.system == i as u8 + 1) else {
                continue;
            };
            // On the ground and disarmed: (re)load the patrol and launch it.
            if v.telemetry.armed
                || vehicles[i].state().mode != FlightMode::Landed
                || launches[i].as_ref().is_some_and(|l| !l.is_finished())
            {
                continue;
            }
            let station = station.clone();
            let (id, items) = (v.id, gcs_items::mission_items(plan));
            launches[i] = Some(tokio::spawn(async move {
                let launch = async {
                    station.upload(id, ListKind::Mission, items).await?;
                    station.command(id, DroneCommand::Arm).await?;
                    station.command(id, DroneCommand::MissionStart).await
                };
                if let Err(e) = launch.await {
                    tracing::warn!(error = %e, "demo patrol launch failed; retrying");
                }
            }));
        }
    }
    for v in &vehicles {
        v.stop();
    }
    Ok(())
}

struct Node {
    name: &'static str,
    kind: &'static str,
    lat: f64,
    lon: f64,
}

const NODES: [Node; 4] = [
    Node {
        name: "hq",
        kind: "command",
        lat: 35.6762,
        lon: 139.6503,
    },
    Node {
        name: "yokohama",
        kind: "port",
        lat: 35.4437,
        lon: 139.6380,
    },
    Node {
        name: "narita",
        kind: "airport",
        lat: 35.7720,
        lon: 140.3929,
    },
    Node {
        name: "tsushima",
        kind: "coast",
        lat: 34.2029,
        lon: 129.2877,
    },
];

const DEMO_USERS: [(&str, Role); 3] = [
    ("admin", Role::Admin),
    ("operator", Role::Operator),
    ("viewer", Role::Viewer),
];

fn users() -> anyhow::Result<Vec<UserConfig>> {
    DEMO_USERS
        .iter()
        .map(|(name, role)| {
            Ok(UserConfig {
                name: (*name).into(),
                role: *role,
                password_hash: hash_password(&format!("demo-{name}"))?,
            })
        })
        .collect()
}

fn config(dir: &Path, i: usize, args: &DemoArgs, users: &[UserConfig]) -> RuntimeConfig {
    let n = &NODES[i];
    let addr =
        |base: u16, j: usize| -> std::net::SocketAddr { ([127, 0, 0, 1], base + j as u16).into() };
    // Every site dials hq and its neighbour, so the sites keep syncing while hq is down.
    let peers = if i == 0 {
        vec![]
    } else {
        let next = 1 + (i % 3);
        vec![
            PeerAddr {
                name: "hq".into(),
                addr: addr(args.sync_port, 0),
            },
            PeerAddr {
                name: NODES[next].name.into(),
                addr: addr(args.sync_port, next),
            },
        ]
    };
    RuntimeConfig {
        node: n.name.into(),
        data_dir: dir.join(n.name),
        pki_dir: dir.join("pki"),
        sync: SyncSection {
            listen: addr(args.sync_port, i),
            peers,
            max_clock_skew_ms: 60_000,
            collection_horizon_hours: 168,
            collection_horizon_secs: None,
            interest: mizugiwa_sync::Interest::Everything,
        },
        http: HttpSection {
            listen: addr(args.http_port, i),
            session_hours: 12,
        },
        users: users.to_vec(),
        mode: if i == 0 {
            Mode::Command
        } else {
            Mode::Site {
                site: n.name.into(),
            }
        },
        location: Location {
            kind: n.kind.into(),
            lat: n.lat,
            lon: n.lon,
        },
        status_interval: Duration::from_secs(2),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Narita's gate token in the demo (a real site has one per gate, hashed in site.toml).
const DEMO_GATE_TOKEN: &str = "demo-narita-t1-gate1";
const DEMO_KID: &str = "demo-issuer";

/// The demo issuer's signing key (made once in the working folder), with its public key in
/// the folder headquarters publishes.
fn demo_issuer(dir: &Path) -> anyhow::Result<SigningKey> {
    let keys = dir.join("gate-keys");
    let trust = dir.join("gate-trust");
    std::fs::create_dir_all(&keys)?;
    std::fs::create_dir_all(&trust)?;
    let path = keys.join(format!("{DEMO_KID}.key"));
    let key = match std::fs::read_to_string(&path) {
        Ok(pem) => SigningKey::from_pem(&pem).map_err(|e| anyhow::anyhow!("{path:?}: {e}"))?,
        Err(_) => {
            let key = SigningKey::generate_ed25519();
            std::fs::write(&path, key.to_pem().map_err(|e| anyhow::anyhow!("{e}"))?)?;
            key
        }
    };
    let public = PublicKeyFile::new(key.public_key())
        .to_text()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::write(trust.join(format!("{DEMO_KID}.pub")), public)?;
    Ok(key)
}

/// Arriving passengers at Narita T1 gate 1, one every 2 s or so: most with a good declaration;
/// now and then goods over the allowance, a tampered QR, or a declaration shown again.
async fn passengers(
    api: std::sync::Arc<GateApi>,
    issuer: SigningKey,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(1800));
    let (mut n, mut last_qr) = (0u64, None::<String>);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        n += 1;
        let mut decl = mizugiwa_gate_edge::declaration::example();
        let now = time::OffsetDateTime::now_utc();
        decl.id = format!("D-DEMO-{}-{n:05}", now.unix_timestamp());
        decl.issued_at = now - time::Duration::hours(2);
        decl.arrival_date = now.date();
        if n % 7 == 3 {
            // 6 bottles of whisky: over the allowance, and declared as such.
            decl.goods.push(
                mizugiwa_gate_edge::allowance::GoodsItem::new(
                    mizugiwa_gate_edge::allowance::GoodsCategory::WhiskyBrandy,
                    "whisky",
                    6,
                    8_000,
                )
                .with_volume_ml(700),
            );
            decl.answers.over_allowance = true;
        }
        let Ok(mut qr) = mizugiwa_gate_edge::qr::issue(&decl, &issuer, DEMO_KID) else {
            continue;
        };
        if n % 11 == 5 {
            // A forged copy: one character changed.
            let mut b = qr.into_bytes();
            let i = b.len() / 2;
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            qr = String::from_utf8(b).unwrap_or_default();
        } else if n % 13 == 8 {
            // The previous passenger's declaration, shown again.
            if let Some(prev) = &last_qr {
                qr = prev.clone();
            }
        }
        last_qr = Some(qr.clone());
        let req = DecideRequest {
            qr,
            mrz: mizugiwa_gate_edge::declaration::example_mrz().to_vec(),
            chip: None,
            face_score: Some(0.9),
            watchlist_hit: false,
        };
        if let Err(e) = api.decide("t1-gate1".into(), req).await {
            tracing::warn!(error = %format!("{e:#}"), "demo passenger not decided");
        }
    }
}

/// The simulated traffic written straight into the sites' replicas, one step per second.
struct Traffic {
    step: u64,
    rng: u64,
}

impl Traffic {
    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn tick(&mut self, nodes: &[Runtime]) -> anyhow::Result<()> {
        self.step += 1;
        let now = now_ms();
        // (Tsushima's vessels come from its AIS source, its dark vessels from its SAR inbox.)
        // Yokohama: now and then a container whose X-ray does not match its manifest.
        if self.step % 60 == 10 {
            let mut s = nodes[1]
                .store
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?;
            let container = format!("MSCU{:07}", self.rand() % 10_000_000);
            s.put(
                ALERTS,
                &format!("yokohama-xray-{}", self.step),
                &[
                    (
                        "title",
                        FieldOp::Set(format!("X-ray/manifest mismatch in {container}").into()),
                    ),
                    ("kind", FieldOp::Set("xray_risk".into())),
                    ("severity", FieldOp::Set("medium".into())),
                    ("site", FieldOp::Set("yokohama".into())),
                    ("lat", FieldOp::Set(Value::Float(35.4437))),
                    ("lon", FieldOp::Set(Value::Float(139.6480))),
                    ("raised_ms", FieldOp::Set(Value::Int(now as i64))),
                    ("status", FieldOp::Advance("new".into())),
                ],
            )?;
        }
        Ok(())
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("mizugiwa-demo-{}", std::process::id())),
    };
    let pki_dir = dir.join("pki");
    std::fs::create_dir_all(&pki_dir)?;
    if !pki_dir.join("ca.crt").exists() {
        pki::init_ca(&pki_dir, "demo")?;
    }
    for (i, n) in NODES.iter().enumerate() {
        if !pki_dir.join(format!("{}.crt", n.name)).exists() {
            let role = if i == 0 {
                CertRole::Command
            } else {
                CertRole::Site
            };
            pki::issue(&pki_dir, &pki_dir, n.name, role)?;
        }
    }
    let users = users()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        // The declaration issuer's key; headquarters publishes its public half.
        let issuer = demo_issuer(&dir)?;
        let mut nodes = Vec::new();
        let mut gate_api = None;
        for (i, node) in NODES.iter().enumerate() {
            let cfg = config(&dir, i, &args, &users);
            let runtime = Runtime::start_with(cfg, |ext| {
                if node.name != "narita" {
                    return Ok(Default::default());
                }
                let section = GateSection {
                    devices: vec![GateDevice {
                        id: "t1-gate1".into(),
                        token_blake3: mizugiwa_field_node::gate::token_hash(DEMO_GATE_TOKEN),
                    }],
                    policy: None,
                    max_list_age_hours: 72,
                    selection_seed: None,
                    heartbeat_timeout_secs: 5,
                };
                let identity = mizugiwa_field_node::gate::JournalIdentity::load(&pki_dir, "narita")?;
                let svc = std::sync::Arc::new(GateService::new(ext.store.clone(), "narita", &section, &identity)?);
                tokio::spawn(mizugiwa_field_node::gate::watch(svc.clone(), ext.stopped.clone()));
                let api = GateApi::start(svc)?;
                gate_api = Some(api.clone());
                Ok(mizugiwa_field_node::gate::routes(api))
            })
            .await
            .with_context(|| format!("starting {}", node.name))?;
            if i == 0 {
                mizugiwa_command::trust::start(
                    runtime.store.clone(),
                    "hq".into(),
                    mizugiwa_command::trust::TrustSection {
                        trust_dir: dir.join("gate-trust"),
                        publish_secs: 10,
                    },
                    runtime.stopped(),
                );
            }
            nodes.push(runtime);
        }
        let gate_api = gate_api.context("narita's gate API did not start")?;
        let (stop_gates, gates_stopped) = tokio::sync::watch::channel(false);
        let passengers = tokio::spawn(passengers(gate_api, issuer, gates_stopped));
        // Tsushima's maritime picture through the site's real sources: the fleet's NMEA over
        // TCP into `ais_tcp`, and a SAR pass acquired four minutes ago into `sar_inbox`.
        let started_ms = now_ms() as i64;
        let (acquisition_ms, backlog_from_ms) = (started_ms - 4 * 60_000, started_ms - 10 * 60_000);
        let (stop_sea, sea_stopped) = tokio::sync::watch::channel(false);
        let (ais_addr, ais_feed) =
            sar::serve_ais(acquisition_ms, backlog_from_ms, sea_stopped.clone()).await?;
        let sar_inbox = dir.join(NODES[3].name).join("sar-inbox");
        let tsushima = sar::site_config(config(&dir, 3, &args, &users), ais_addr, &sar_inbox)?;
        let pipeline = mizugiwa_field_node::pipeline::start(&tsushima, &nodes[3]).await?;
        let sar_pass = tokio::spawn(sar::sar_pass(
            sar_inbox.clone(),
            acquisition_ms,
            backlog_from_ms,
            nodes[3].store.clone(),
            sea_stopped,
        ));
        // Tsushima's site bus, its drone recorder, its ground station and the patrol drones.
        let bus_cfg = BusConfig {
            listen: vec![format!("tcp/127.0.0.1:{}", args.bus_port)],
            connect: vec![],
            multicast_scouting: false,
            drone_record_secs: 2,
            breadcrumb_secs: 10,
        };
        let site_bus = std::sync::Arc::new(SiteBus::open("tsushima", &bus_cfg).await?);
        let recorder = DroneRecorder::start(&site_bus, nodes[3].store.clone(), &bus_cfg).await?;
        let drones_cfg: DronesConfig = toml::from_str(
            "link = \"udpin:127.0.0.1:0\"\n\
             [[vehicles]]\nsystem = 1\nname = \"tsushima-uav1\"\n\
             [[vehicles]]\nsystem = 2\nname = \"tsushima-uav2\"\n",
        )?;
        let mut station_cfg = StationConfig::new(LinkSpec::UdpIn("127.0.0.1:0".parse()?));
        station_cfg.comm_lost_after = Duration::from_secs_f64(drones_cfg.comm_lost_secs);
        let ground_station =
            DroneStation::start(&drones_cfg, station_cfg, site_bus.clone(), nodes[3].store.clone()).await?;
        let (stop_drone, drone_stopped) = tokio::sync::watch::channel(false);
        let drone = tokio::spawn(fly_patrols(ground_station.station.clone(), drone_stopped));
        println!("Mizugiwa demo: command center + Yokohama port, Narita airport, Tsushima coast");
        println!("  working folder  {}", dir.display());
        for (n, node) in nodes.iter().zip(NODES.iter()) {
            println!(
                "  {:<9} {:<8} dashboard http://{}  sync quic://{}",
                node.name,
                node.kind,
                n.http_addr(),
                n.sync_addr()
            );
        }
        println!(
            "  tsushima  AIS feed tcp://{ais_addr} ({} vessels), SAR inbox {}",
            sar::FLEET.len(),
            sar_inbox.display()
        );
        println!(
            "  log in as admin / demo-admin, operator / demo-operator or viewer / demo-viewer"
        );
        let mut traffic = Traffic {
            step: 0,
            rng: now_ms() | 1,
        };
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::signal::ctrl_c() => { println!("stopping"); break; }
            }
            if let Err(e) = traffic.tick(&nodes) {
                tracing::warn!(error = %format!("{e:#}"), "simulated traffic failed");
            }
            if let Some(secs) = args.once {
                if started.elapsed() >= Duration::from_secs(secs) {
                    break;
                }
            }
        }
        let mut result = Ok(());
        if args.once.is_some() {
            // Every site's status record and traffic must have reached hq.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (counts, scene) = {
                    let hq = nodes[0]
                        .store
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?;
                    let sites: Vec<String> = hq.list("sites")?.into_iter().map(|r| r.id).collect();
                    ((sites, hq.collection_counts()?), sar::scene_records(&hq, acquisition_ms)?)
                };
                let all = NODES.iter().all(|n| counts.0.contains(&n.name.to_string()));
                // The whole fleet (from AIS), both patrol drones and both of their sorties.
                let fleet = sar::FLEET.len() as u64;
                let wanted = [("vessels", fleet), ("gate_stats", 1), ("gate_passages", 1), ("drones", 2), ("sorties", 2)];
                // And the SAR pass: every ship detected, the fleet's matched with AIS, one
                // dark_vessel alert per dark ship and no other.
                if all
                    && scene.complete()
                    && wanted.iter().all(|(c, n)| counts.1.get(*c).is_some_and(|have| *have >= *n))
                {
                    println!("hq sees every site: {:?}", counts.0);
                    println!(
                        "SAR scene {} at hq: detections from sar={} with AIS={} dark_vessel alerts={}",
                        sar::scene_id(acquisition_ms),
                        scene.detections,
                        scene.with_ais,
                        scene.dark_alerts
                    );
                    let shown: Vec<String> = counts
                        .1
                        .iter()
                        .filter(|(c, _)| !c.starts_with('$'))
                        .map(|(c, n)| format!("{c}={n}"))
                        .collect();
                    println!("records at hq: {}", shown.join(" "));
                    break;
                }
                if Instant::now() > deadline {
                    result = Err(anyhow::anyhow!(
                        "hq did not receive every site's records: {counts:?}, SAR scene {scene:?}"
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let _ = stop_gates.send(true);
        let _ = passengers.await;
        // The site's sources first, so that the feed going away is not a dropped connection.
        pipeline.shutdown().await;
        let _ = stop_sea.send(true);
        match sar_pass.await {
            Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "demo SAR pass failed"),
            Err(e) => tracing::warn!(error = %e, "demo SAR pass failed"),
            Ok(Ok(())) => {}
        }
        let _ = ais_feed.await;
        let _ = stop_drone.send(true);
        if let Ok(Err(e)) = drone.await {
            tracing::warn!(error = %format!("{e:#}"), "demo patrols failed");
        }
        ground_station.shutdown().await;
        recorder.shutdown().await;
        if let Ok(bus) = std::sync::Arc::try_unwrap(site_bus) {
            bus.close().await;
        }
        // All at once, so that no node spends its shutdown redialling one already gone.
        let stopping: Vec<_> = nodes
            .into_iter()
            .map(|n| tokio::spawn(n.shutdown()))
            .collect();
        for s in stopping {
            let _ = s.await;
        }
        result
    })
}
