//! Gate heartbeats on real zenoh sessions over loopback TCP: a gate terminal's heartbeats put
//! it online; when they stop, the gate is recorded offline and one alert is raised; the next
//! heartbeat brings it back. Garbage and unconfigured gates are ignored.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{cfg, free_port};
use mizugiwa_command::records::{ALERTS, GATE_STATS};
use mizugiwa_field_node::bus::SiteBus;
use mizugiwa_field_node::heartbeat::{GateLinks, HeartbeatMonitor};
use mizugiwa_sync::{Store, Value};
use serde_json::json;

fn link_of(links: &GateLinks, gate: &str) -> &'static str {
    links.snapshot(&[gate.to_owned()])[0].1.link
}

async fn wait_for(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn offline_alerts(store: &Arc<Mutex<Store>>) -> usize {
    let store = store.lock().unwrap();
    store
        .list(ALERTS)
        .unwrap()
        .iter()
        .filter(|a| a.get("kind") == Some(&Value::Text("gate_offline".into())))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_gate_goes_offline_with_one_alert_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(dir.path(), "narita");
    let port = free_port();
    let node_bus = SiteBus::open(
        "narita",
        &cfg(vec![format!("tcp/127.0.0.1:{port}")], vec![]),
    )
    .await
    .unwrap();
    let links = Arc::new(GateLinks::default());
    let gates = vec!["t1-g1".to_owned(), "t1-g2".to_owned()];
    let monitor = HeartbeatMonitor::start(
        &node_bus,
        store.clone(),
        links.clone(),
        gates,
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    // The gate terminal joins the bus as another peer.
    let gate = SiteBus::open(
        "narita",
        &cfg(vec![], vec![format!("tcp/127.0.0.1:{port}")]),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // Garbage and a gate nobody configured change nothing.
    gate.session()
        .put("mz/narita/gate/t1-g1/heartbeat", "not json")
        .await
        .unwrap();
    gate.put_json("gate/t9-rogue/heartbeat", &json!({ "state": "ok" }))
        .await
        .unwrap();
    wait_for(10, "both ignored", || {
        links.ignored.load(Ordering::Relaxed) >= 2
    })
    .await;
    assert_eq!(link_of(&links, "t1-g1"), "unknown");

    // Heartbeats: online, recorded once.
    for _ in 0..5 {
        gate.put_json("gate/t1-g1/heartbeat", &json!({ "state": "ok" }))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(link_of(&links, "t1-g1"), "online");
    assert_eq!(
        link_of(&links, "t1-g2"),
        "unknown",
        "never heard: neither online nor offline"
    );
    let snapshot = links.snapshot(&["t1-g1".to_owned()]);
    assert!(snapshot[0].1.heartbeats >= 4, "{snapshot:?}");
    assert_eq!(snapshot[0].1.state.as_deref(), Some("ok"));
    let stats = |store: &Arc<Mutex<Store>>| {
        store
            .lock()
            .unwrap()
            .get(GATE_STATS, "narita-t1-g1")
            .unwrap()
            .and_then(|r| r.get("link").cloned())
    };
    wait_for(5, "online on record", || {
        stats(&store) == Some(Value::Text("online".into()))
    })
    .await;
    assert_eq!(offline_alerts(&store), 0);

    // Silence past the timeout: offline on record, one alert.
    wait_for(5, "offline", || link_of(&links, "t1-g1") == "offline").await;
    wait_for(5, "offline on record", || {
        stats(&store) == Some(Value::Text("offline".into()))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        offline_alerts(&store),
        1,
        "one alert per outage, not one per tick"
    );

    // The gate comes back.
    gate.put_json("gate/t1-g1/heartbeat", &json!({ "state": "fault" }))
        .await
        .unwrap();
    wait_for(5, "online again", || link_of(&links, "t1-g1") == "online").await;
    wait_for(5, "online again on record", || {
        stats(&store) == Some(Value::Text("online".into()))
    })
    .await;
    assert_eq!(
        links.snapshot(&["t1-g1".to_owned()])[0].1.state.as_deref(),
        Some("fault")
    );

    monitor.shutdown().await;
    gate.close().await;
    node_bus.close().await;
}
