//! The coastal ground station end to end on this machine: a simulated drone over real UDP
//! MAVLink, the node's station, the site bus (zenoh) and the SQLite store. Telemetry becomes the
//! drone's record and breadcrumbs, a flight becomes a sortie record, and a drone that falls
//! silent in the air raises a `drone_link_lost` alert with its last position.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mizugiwa_command::records::{ALERTS, DRONES, SORTIES};
use mizugiwa_drone::gcs::station::Command;
use mizugiwa_drone::sim::{self, FlightMode, SimConfig};
use mizugiwa_field_node::bus::{BusConfig, DroneRecorder, SiteBus};
use mizugiwa_field_node::drones::{DroneStation, DronesConfig, VehicleConfig};
use mizugiwa_sync::Value;

async fn wait_for(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_sorties_and_a_lost_drone_become_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(dir.path(), "tsushima");
    let mut bus_cfg = BusConfig::private();
    bus_cfg.drone_record_secs = 1;
    bus_cfg.breadcrumb_secs = 1;
    let bus = Arc::new(SiteBus::open("tsushima", &bus_cfg).await.unwrap());
    let recorder = DroneRecorder::start(&bus, store.clone(), &bus_cfg)
        .await
        .unwrap();

    let cfg: DronesConfig = toml::from_str(
        r#"
        link = "udpin:127.0.0.1:0"
        comm_lost_secs = 2.0
        tlog_dir = "tlogs"
        [[vehicles]]
        system = 3
        name = "kamome"
        "#,
    )
    .unwrap();
    assert_eq!(cfg.vehicles[0].name, "kamome");
    let station_cfg = cfg.station(dir.path(), dir.path()).unwrap();
    let node = DroneStation::start(&cfg, station_cfg, bus.clone(), store.clone())
        .await
        .unwrap();

    let mut c = SimConfig::new(3, node.station.local_addr(), 34.2015, 129.2875);
    c.climb_mps = 10.0;
    let mut vehicle = sim::spawn(c).await.unwrap();
    let v = node
        .station
        .wait_for_vehicle(Duration::from_secs(5))
        .await
        .unwrap();

    // Telemetry reaches the drone's record through the bus.
    let record = |collection: &str, id: &str| store.lock().unwrap().get(collection, id).unwrap();
    wait_for(10, "the drone record", || {
        record(DRONES, "kamome").is_some()
    })
    .await;

    // A short flight: a sortie opens on arming and closes on landing.
    node.station.command(v.id, Command::Arm).await.unwrap();
    node.station
        .command(v.id, Command::Takeoff { alt_m: 20.0 })
        .await
        .unwrap();
    vehicle
        .wait_for(Duration::from_secs(10), |s| s.rel_alt_m >= 19.0)
        .await
        .expect("took off");
    let sorties = || store.lock().unwrap().list(SORTIES).unwrap();
    wait_for(5, "a sortie record", || sorties().len() == 1).await;
    assert_eq!(
        sorties()[0].get("state"),
        Some(&Value::Text("flying".into()))
    );
    node.station.command(v.id, Command::Land).await.unwrap();
    vehicle
        .wait_for(Duration::from_secs(15), |s| s.mode == FlightMode::Landed)
        .await
        .expect("landed");
    wait_for(5, "the sortie to close", || {
        sorties()[0].get("state") == Some(&Value::Text("landed".into()))
    })
    .await;
    let s = &sorties()[0];
    assert_eq!(s.get("vehicle"), Some(&Value::Text("kamome".into())));
    assert!(
        matches!(s.get("max_alt_m"), Some(Value::Float(a)) if *a >= 18.0),
        "{s:?}"
    );

    // Up again, then silence in the air: an alert with the last known position.
    node.station.command(v.id, Command::Arm).await.unwrap();
    node.station
        .command(v.id, Command::Takeoff { alt_m: 20.0 })
        .await
        .unwrap();
    vehicle
        .wait_for(Duration::from_secs(10), |s| s.rel_alt_m >= 10.0)
        .await
        .expect("took off again");
    tokio::time::sleep(Duration::from_millis(500)).await;
    vehicle.stop();
    let lost = || {
        store
            .lock()
            .unwrap()
            .list(ALERTS)
            .unwrap()
            .into_iter()
            .filter(|a| a.get("kind") == Some(&Value::Text("drone_link_lost".into())))
            .collect::<Vec<_>>()
    };
    wait_for(6, "the link-lost alert", || lost().len() == 1).await;
    // The bridge's periodic check against the station's own view (every 5 s) finds the same
    // loss already on record: still one alert.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(lost().len(), 1, "one alert per loss");
    let alert = &lost()[0];
    assert_eq!(
        alert.get("severity"),
        Some(&Value::Text("high".into())),
        "lost in the air"
    );
    assert!(matches!(alert.get("lat"), Some(Value::Float(lat)) if (lat - 34.2015).abs() < 0.001));
    assert_eq!(
        format!("{:?}", alert.fields.get("status")),
        "Some(Status(\"new\"))"
    );

    node.shutdown().await;
    recorder.shutdown().await;
    let tlogs: Vec<_> = std::fs::read_dir(dir.path().join("tlogs"))
        .unwrap()
        .collect();
    assert_eq!(tlogs.len(), 1);

    // Bad configuration is refused with the reason.
    let bad: DronesConfig = toml::from_str("link = \"serial:/dev/ttyUSB0\"").unwrap();
    let err = bad.station(dir.path(), dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("link kinds are udpin, udpout and tcp"),
        "{err}"
    );
    let missing_key = DronesConfig {
        vehicles: vec![VehicleConfig {
            system: 1,
            name: "a".into(),
            key_file: Some("nope.key".into()),
        }],
        ..toml::from_str("link = \"udpin:127.0.0.1:0\"").unwrap()
    };
    assert!(missing_key
        .station(dir.path(), dir.path())
        .unwrap_err()
        .to_string()
        .contains("nope.key"));
}
