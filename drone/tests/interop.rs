//! The ground station against vehicles and ground stations nobody here wrote:
//!
//! - MAVSDK's C++ core (PyPI `mavsdk`, `MissionRawServer`/`TelemetryServer`/`ActionServer`) as
//!   the vehicle: mission, fence and rally uploaded and accepted, downloaded identical, the
//!   commands accepted, and a comm-lost alert 3.5 s ± 1 s after it stops.
//! - pymavlink as a second, independent vehicle with MAVLink 2 signing: the right key works, a
//!   wrong key is rejected in both directions.
//! - pymavlink as the ground station flying our simulator, signed.
//! - pymavlink's `mavlogdump.py` reading our telemetry log.
//!
//! The peers live in `drone/tests/peers` (see its README) and run from the project's venv
//! (`$MZ_PYTHON`, which `make test` sets after installing them).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command as Process, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mizugiwa_drone::gcs::codec::SigningKey;
use mizugiwa_drone::gcs::items;
use mizugiwa_drone::gcs::mission::{ListKind, MissionItem};
use mizugiwa_drone::gcs::station::{Command, Event, LinkSpec, Rejection, Station, StationConfig};
use mizugiwa_drone::plan::{Geofence, Plan, Waypoint};
use mizugiwa_drone::sim::{self, SimConfig};
use serde_json::Value;

fn python() -> PathBuf {
    let p = std::env::var_os("MZ_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    assert!(
        p.exists(),
        "no Python with the interop peers at {} (run `make deps`)",
        p.display()
    );
    p
}

fn peer(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(script)
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A peer process and its JSON-lines events.
struct Peer {
    child: Child,
    events: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Peer {
    fn start(script: &str, args: &[String]) -> Peer {
        let mut child = Process::new(python())
            .arg(peer(script))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {script}: {e}"));
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        Peer {
            child,
            events,
            seen: Vec::new(),
        }
    }

    /// Waits for an event matching `pred` (events before it are kept in `seen`).
    fn wait(&mut self, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!("{what}: not seen within {secs} s; events: {:?}", self.seen),
            }
        }
    }

    fn drain(&mut self) {
        while let Ok(v) = self.events.try_recv() {
            self.seen.push(v);
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn plan() -> Plan {
    let (lat, lon) = (34.2015, 129.2875);
    let square = |lat: f64, lon: f64, d: f64| {
        geo::Polygon::new(
            geo::LineString::from(vec![
                (lon, lat),
                (lon + d, lat),
                (lon + d, lat + d),
                (lon, lat + d),
                (lon, lat),
            ]),
            vec![],
        )
    };
    Plan {
        home: Waypoint {
            lat,
            lon,
            alt_m: 0.0,
        },
        waypoints: (0..12)
            .map(|i| Waypoint {
                lat: lat + 0.0004 * f64::from(i),
                lon: lon + 0.0007 * f64::from(i % 3),
                alt_m: 60.0,
            })
            .collect(),
        fence: Geofence {
            inclusions: vec![square(lat - 0.01, lon - 0.01, 0.03)],
            exclusions: vec![
                square(lat + 0.015, lon + 0.015, 0.002),
                square(lat - 0.008, lon + 0.01, 0.001),
            ],
        },
        rally: vec![
            Waypoint {
                lat: lat + 0.001,
                lon,
                alt_m: 30.0,
            },
            Waypoint {
                lat,
                lon: lon + 0.001,
                alt_m: 30.0,
            },
        ],
        cruise_speed_mps: 15.0,
    }
}

async fn station(port: u16, config: impl FnOnce(&mut StationConfig)) -> Station {
    let mut c = StationConfig::new(LinkSpec::UdpIn(
        format!("127.0.0.1:{port}").parse().unwrap(),
    ));
    config(&mut c);
    Station::start(c).await.unwrap()
}

/// Items as a peer prints them, for comparison with ours.
fn items_of(v: &Value) -> Vec<MissionItem> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| MissionItem {
            seq: i["seq"].as_u64().unwrap() as u16,
            frame: i["frame"].as_u64().unwrap() as u8,
            command: i["command"].as_u64().unwrap() as u16,
            current: i["current"].as_u64().unwrap() as u8,
            autocontinue: i["autocontinue"].as_u64().unwrap() as u8,
            param1: i["param1"].as_f64().map_or(f32::NAN, |f| f as f32),
            param2: i["param2"].as_f64().map_or(f32::NAN, |f| f as f32),
            param3: i["param3"].as_f64().map_or(f32::NAN, |f| f as f32),
            param4: i["param4"].as_f64().map_or(f32::NAN, |f| f as f32),
            x: i["x"].as_i64().unwrap() as i32,
            y: i["y"].as_i64().unwrap() as i32,
            z: i["z"].as_f64().unwrap() as f32,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mavsdk_vehicle_takes_every_list_and_command_and_its_loss_is_noticed() {
    let port = free_udp_port();
    let tlog = tempfile::NamedTempFile::new().unwrap();
    let gcs = station(port, |c| c.tlog = Some(tlog.path().to_path_buf())).await;
    let mut events = gcs.subscribe();
    let mut vehicle = Peer::start(
        "mavsdk_vehicle.py",
        &[
            "--gcs".into(),
            format!("udpout://127.0.0.1:{port}"),
            "--sysid".into(),
            "1".into(),
        ],
    );
    vehicle.wait(60, "MAVSDK ready", |v| v["event"] == "ready");
    let v = gcs.wait_for_vehicle(Duration::from_secs(30)).await.unwrap();
    assert_eq!(v.id.system, 1);
    assert!(!v.ardupilot, "MAVSDK numbers missions from 0");

    let plan = plan();
    let lists = [
        (ListKind::Mission, items::mission_items(&plan)),
        (ListKind::Fence, items::fence_items(&plan.fence)),
        (ListKind::Rally, items::rally_items(&plan.rally)),
    ];
    for (kind, list) in &lists {
        let report = gcs
            .upload(v.id, *kind, list.clone())
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(report.items, list.len());
        // MAVSDK saw exactly what we sent.
        let got = vehicle.wait(10, "incoming list", |e| {
            e["event"] == "incoming_mission"
                && e["mission_type"] == kind.to_string().as_str()
                && e["result"] == "SUCCESS"
        });
        assert_eq!(&items_of(&got), list, "{kind} as MAVSDK received it");
        // And gives it back identical.
        assert_eq!(
            &gcs.download(v.id, *kind).await.unwrap(),
            list,
            "{kind} downloaded"
        );
    }

    for command in [
        Command::Arm,
        Command::Takeoff { alt_m: 25.0 },
        Command::MissionStart,
        Command::ReturnToLaunch,
        Command::Land,
    ] {
        gcs.command(v.id, command)
            .await
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    }
    vehicle.wait(5, "arming seen by MAVSDK", |e| {
        e["event"] == "arm_disarm" && e["arm"] == true
    });

    // Telemetry from MAVSDK's TelemetryServer arrives (the script's position is Yokohama).
    let position = loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Ok(Event::Telemetry { telemetry, .. })) => break telemetry,
            Ok(_) => continue,
            Err(_) => panic!("no position from MAVSDK"),
        }
    };
    assert!(
        (position.lat - 35.4437).abs() < 1e-4 && (position.lon - 139.638).abs() < 1e-4,
        "{position:?}"
    );

    // Stop the vehicle: comm lost 3.5 s ± 1 s later.
    vehicle.stop();
    let stopped = Instant::now();
    let silent_for = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Ok(Event::CommLost { vehicle, .. })) if vehicle == v.id => break stopped.elapsed(),
            Ok(_) => continue,
            Err(_) => panic!("no comm-lost event within 10 s"),
        }
    };
    assert!(
        silent_for >= Duration::from_millis(2500) && silent_for <= Duration::from_millis(4500),
        "comm lost after {silent_for:?}"
    );
    gcs.shutdown().await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    // pymavlink's mavlogdump reads our log: MAVSDK's positions and our mission count in it.
    let dump = Process::new(python())
        .args([
            "-m",
            "pymavlink.tools.mavlogdump",
            "--types",
            "GLOBAL_POSITION_INT,MISSION_COUNT",
            "--format",
            "json",
        ])
        .arg(tlog.path())
        .env("MAVLINK20", "1")
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "mavlogdump failed: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&dump.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let types: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["meta"]["type"].as_str())
        .collect();
    assert!(types.contains(&"GLOBAL_POSITION_INT"), "{types:?}");
    let counts: Vec<u64> = lines
        .iter()
        .filter(|l| l["meta"]["type"] == "MISSION_COUNT")
        .filter_map(|l| l["data"]["count"].as_u64())
        .collect();
    assert!(
        counts.contains(&(lists[0].1.len() as u64)),
        "our MISSION_COUNT in the log: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymavlink_vehicle_with_signing_right_and_wrong_keys() {
    let key = "5a".repeat(32);
    let wrong = "a5".repeat(32);

    // Same key both ways: works, and the frames are signed.
    let port = free_udp_port();
    let gcs = station(port, |c| {
        c.keys.insert(7, key.parse::<SigningKey>().unwrap());
        c.require_signing = true;
    })
    .await;
    let mut vehicle = Peer::start(
        "pymavlink_vehicle.py",
        &[
            "--gcs".into(),
            format!("udpout:127.0.0.1:{port}"),
            "--sysid".into(),
            "7".into(),
            "--sign-key".into(),
            key.clone(),
            "--require-signing".into(),
        ],
    );
    vehicle.wait(30, "pymavlink vehicle ready", |v| v["event"] == "ready");
    let v = gcs.wait_for_vehicle(Duration::from_secs(10)).await.unwrap();
    assert!(v.ardupilot, "it announces itself as ArduPilot");
    let rally = items::rally_items(&plan().rally);
    gcs.upload(v.id, ListKind::Rally, rally.clone())
        .await
        .unwrap();
    let up = vehicle.wait(5, "upload seen", |e| e["event"] == "mission_uploaded");
    assert_eq!(items_of(&up), rally);
    assert_eq!(gcs.download(v.id, ListKind::Rally).await.unwrap(), rally);
    gcs.command(v.id, Command::Arm).await.unwrap();
    let cmd = vehicle.wait(5, "command seen", |e| e["event"] == "command");
    assert_eq!(cmd["signed"], true);
    vehicle.drain();
    assert!(
        !vehicle.seen.iter().any(|e| e["event"] == "rejected"),
        "good frames rejected: {:?}",
        vehicle.seen
    );
    assert!(gcs.vehicles().await.unwrap()[0].signed);
    gcs.shutdown().await;
    vehicle.stop();

    // Wrong key: the vehicle listens (udpin) and we reach out to it (udpout), signing with our
    // key; it signs with another. Each side must drop the other's frames.
    let vport = free_udp_port();
    let mut vehicle = Peer::start(
        "pymavlink_vehicle.py",
        &[
            "--gcs".into(),
            format!("udpin:127.0.0.1:{vport}"),
            "--sysid".into(),
            "7".into(),
            "--sign-key".into(),
            wrong,
            "--require-signing".into(),
        ],
    );
    vehicle.wait(30, "pymavlink vehicle ready", |v| v["event"] == "ready");
    let mut config = StationConfig::new(LinkSpec::UdpOut(
        format!("127.0.0.1:{vport}").parse().unwrap(),
    ));
    config.keys.insert(7, key.parse::<SigningKey>().unwrap());
    config.heartbeat_interval = Duration::from_millis(250);
    let gcs = Station::start(config).await.unwrap();
    let mut events = gcs.subscribe();
    let r = vehicle.wait(10, "the vehicle rejecting our frames", |e| {
        e["event"] == "rejected"
    });
    assert_eq!(r["reason"], "bad_signature", "{r}");
    let rejected = loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Ok(Event::Rejected {
                system: 7, reason, ..
            })) => break reason,
            Ok(_) => continue,
            Err(_) => panic!("the station did not reject the wrongly signed vehicle"),
        }
    };
    assert_eq!(rejected, Rejection::BadSignature);
    assert!(
        gcs.vehicles().await.unwrap().is_empty(),
        "a vehicle with the wrong key was listened to"
    );
    vehicle.drain();
    assert!(!vehicle
        .seen
        .iter()
        .any(|e| e["event"] == "command" || e["event"] == "mission_uploaded"));
    gcs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vehicle_over_tcp_like_sitl() {
    // The vehicle listens on TCP (as ArduPilot SITL does on 5760); the station connects.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut vehicle = Peer::start(
        "pymavlink_vehicle.py",
        &[
            "--gcs".into(),
            format!("tcpin:127.0.0.1:{port}"),
            "--sysid".into(),
            "3".into(),
        ],
    );
    vehicle.wait(30, "pymavlink vehicle ready", |v| v["event"] == "ready");
    let mut gcs = None;
    for _ in 0..50 {
        match Station::start(StationConfig::new(LinkSpec::TcpOut(
            format!("127.0.0.1:{port}").parse().unwrap(),
        )))
        .await
        {
            Ok(s) => {
                gcs = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let gcs = gcs.expect("connected to the vehicle's TCP port");
    let v = gcs.wait_for_vehicle(Duration::from_secs(10)).await.unwrap();
    assert_eq!(v.id.system, 3);
    // ArduPilot numbering: home first.
    let plan = plan();
    let list = mizugiwa_drone::gcs::mission::for_upload(
        &items::mission_items(&plan),
        items::home_item(&plan.home),
        mizugiwa_drone::gcs::mission::Convention::Ardupilot,
    );
    gcs.upload(v.id, ListKind::Mission, list.clone())
        .await
        .unwrap();
    assert_eq!(gcs.download(v.id, ListKind::Mission).await.unwrap(), list);
    let up = vehicle.wait(5, "upload seen", |e| e["event"] == "mission_uploaded");
    assert_eq!(items_of(&up), list);
    gcs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymavlink_ground_station_flies_our_simulator_signed() {
    let key = "3c".repeat(32);
    let port = free_udp_port();
    let mut c = SimConfig::new(
        4,
        format!("127.0.0.1:{port}").parse().unwrap(),
        34.2015,
        129.2875,
    );
    c.key = Some(key.parse().unwrap());
    c.require_signing = true;
    c.cruise_mps = 50.0;
    c.climb_mps = 20.0;
    let mut vehicle = sim::spawn(c).await.unwrap();
    let mission: Vec<MissionItem> = items::mission_items(&plan()).into_iter().take(4).collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_string(&mission).unwrap()).unwrap();
    let out = tokio::task::spawn_blocking({
        let path = file.path().to_path_buf();
        move || {
            Process::new(python())
                .arg(peer("pymavlink_gcs.py"))
                .args([
                    "--link",
                    &format!("udpin:127.0.0.1:{port}"),
                    "--upload-mission",
                ])
                .arg(path)
                .args([
                    "--download",
                    "--sign-key",
                    &key,
                    "--require-signing",
                    "--command",
                    "400,1",
                    "--command",
                    "300",
                ])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        out.status.success(),
        "pymavlink GCS failed: {events:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uploaded = events.iter().find(|e| e["event"] == "uploaded").unwrap();
    assert_eq!(uploaded["result"], "ACCEPTED");
    let compare = events.iter().find(|e| e["event"] == "compare").unwrap();
    assert_eq!(compare["equal"], true, "{compare}");
    let acks: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "command_ack")
        .collect();
    assert_eq!(acks.len(), 2);
    assert!(acks.iter().all(|a| a["result"] == 0), "{acks:?}");
    // And it flies what pymavlink uploaded.
    let s = vehicle
        .wait_for(Duration::from_secs(20), |s| s.mission_seq >= 2)
        .await
        .expect("flying the mission");
    assert_eq!(s.mission, mission);
    assert_eq!(s.rejected_frames, 0);
    vehicle.stop();
}
