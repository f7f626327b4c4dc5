//! The site bus on real zenoh sessions over loopback TCP: a drone peer publishes telemetry at
//! a high rate; the site records only downsampled state and breadcrumbs, ignores garbage, and
//! nothing arrives from a peer it was not told about when scouting is off.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{cfg, free_port};
use mizugiwa_field_node::bus::{DroneRecorder, SiteBus, Telemetry};
use mizugiwa_sync::{Store, StoreConfig, SystemClock, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_is_downsampled_into_records_and_garbage_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(dir.path(), "tsushima");
    let port = free_port();
    let site_cfg = cfg(vec![format!("tcp/127.0.0.1:{port}")], vec![]);
    let site = SiteBus::open("tsushima", &site_cfg).await.unwrap();
    let recorder = DroneRecorder::start(&site, store.clone(), &site_cfg)
        .await
        .unwrap();
    // The drone's ground link joins the bus as another peer.
    let drone = SiteBus::open(
        "tsushima",
        &cfg(vec![], vec![format!("tcp/127.0.0.1:{port}")]),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // 50 samples at 10 Hz of sample time: 5 s of flight.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let t0 = now - 10 * 60 * 1000;
    for i in 0..50u64 {
        let t = Telemetry {
            lat: 34.30 + i as f64 * 1e-4,
            lon: 129.40,
            alt_m: 120.0,
            heading_deg: 0.0,
            speed_mps: 11.0,
            battery_pct: Some(90.0),
            mode: Some("AUTO".into()),
            at_ms: t0 + i * 100,
        };
        drone
            .put_json("drone/uav1/telemetry", &serde_json::to_value(&t).unwrap())
            .await
            .unwrap();
    }
    drone
        .session()
        .put("mz/tsushima/drone/uav1/telemetry", "not json")
        .await
        .unwrap();
    // A sample stamped a day ahead (a clock or unit error) is refused, not recorded.
    let future = serde_json::json!({"lat": 34.0, "lon": 129.0, "at_ms": now + 86_400_000});
    drone
        .put_json("drone/uav1/telemetry", &future)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while recorder.stats.received.load(Ordering::Relaxed) < 52 {
        assert!(
            Instant::now() < deadline,
            "only {} samples arrived",
            recorder.stats.received.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = &recorder.stats;
    assert_eq!(s.malformed.load(Ordering::Relaxed), 2);
    // Sample times 0..4.9 s with one write per 2 s: at 0, 2 and 4 s. One breadcrumb per 10 s.
    assert_eq!(s.records.load(Ordering::Relaxed), 3);
    assert_eq!(s.breadcrumbs.load(Ordering::Relaxed), 1);
    let rec = store
        .lock()
        .unwrap()
        .get("drones", "uav1")
        .unwrap()
        .unwrap();
    assert_eq!(rec.get("at_ms"), Some(&Value::Int((t0 + 4000) as i64)));
    assert_eq!(rec.get("site").and_then(|v| v.as_str()), Some("tsushima"));
    assert_eq!(store.lock().unwrap().list("breadcrumbs").unwrap().len(), 1);
    recorder.shutdown().await;
    drone.close().await;
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_scouting_an_unlisted_peer_is_not_heard() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(
        Store::open(
            dir.path().join("s.db"),
            mizugiwa_command::records::schema(),
            Arc::new(SystemClock::new()),
            StoreConfig::new("tsushima"),
        )
        .unwrap(),
    ));
    let site_cfg = cfg(vec![format!("tcp/127.0.0.1:{}", free_port())], vec![]);
    let site = SiteBus::open("tsushima", &site_cfg).await.unwrap();
    let recorder = DroneRecorder::start(&site, store, &site_cfg).await.unwrap();
    // A stranger on the same machine, not connected to the site's endpoint.
    let stranger = SiteBus::open(
        "tsushima",
        &cfg(vec![format!("tcp/127.0.0.1:{}", free_port())], vec![]),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = serde_json::json!({"lat": 34.0, "lon": 129.0, "at_ms": 1});
    for _ in 0..10 {
        stranger.put_json("drone/x/telemetry", &t).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(recorder.stats.received.load(Ordering::Relaxed), 0);
    recorder.shutdown().await;
    stranger.close().await;
    site.close().await;
}
