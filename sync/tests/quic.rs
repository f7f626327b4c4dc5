//! Real QUIC on loopback with real certificates: a chain A–B–C of replicas, each with its own
//! SQLite file. A write at A reaches C through B; with B gone, A and C are partitioned and
//! both write; when B comes back, all three converge.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mizugiwa_sync::driver::{self, PeerAddr, SyncConfig, SyncHandle};
use mizugiwa_sync::pki::{self, NodeIdentity, Role};
use mizugiwa_sync::{FieldOp, Schema, Store, StoreConfig, SystemClock, Value};

type Shared = Arc<Mutex<Store>>;

fn open(dir: &Path, node: &str) -> Shared {
    let store = Store::open(
        dir.join(format!("{node}.db")),
        Schema::new(),
        Arc::new(SystemClock::new()),
        StoreConfig::new(node),
    )
    .unwrap();
    Arc::new(Mutex::new(store))
}

fn start(
    dir: &Path,
    store: &Shared,
    node: &str,
    listen: SocketAddr,
    peers: Vec<PeerAddr>,
) -> SyncHandle {
    let identity = NodeIdentity::load_dir(dir, node).unwrap();
    let ca = pki::load_ca(&dir.join("ca.crt")).unwrap();
    let mut cfg = SyncConfig::new(listen, peers);
    cfg.max_redial = Duration::from_millis(500);
    cfg.housekeeping = Duration::from_millis(500);
    driver::start(store.clone(), &identity, ca, cfg).unwrap()
}

/// Waits until `cond` holds, checking after every change event of `watch` (and at least every
/// 200 ms, for changes that arrive through other replicas), failing after `secs`.
async fn until(secs: u64, what: &str, watch: &Shared, mut cond: impl FnMut() -> bool) {
    let mut events = watch.lock().unwrap().subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "timed out waiting for {what}");
        let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), events.recv()).await;
    }
}

fn title(s: &Shared, id: &str) -> Option<Value> {
    s.lock()
        .unwrap()
        .get("alerts", id)
        .unwrap()
        .and_then(|r| r.get("title").cloned())
}

fn hash(s: &Shared) -> String {
    s.lock().unwrap().state_hash().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_write_reaches_the_far_end_and_a_partition_heals() {
    let dir = tempfile::tempdir().unwrap();
    pki::init_ca(dir.path(), "test").unwrap();
    for n in ["a", "b", "c"] {
        pki::issue(dir.path(), dir.path(), n, Role::Site).unwrap();
    }
    let (a, b, c) = (
        open(dir.path(), "a"),
        open(dir.path(), "b"),
        open(dir.path(), "c"),
    );
    let hb = start(dir.path(), &b, "b", "127.0.0.1:0".parse().unwrap(), vec![]);
    let b_addr = hb.local_addr();
    let to_b = vec![PeerAddr {
        name: "b".into(),
        addr: b_addr,
    }];
    let ha = start(
        dir.path(),
        &a,
        "a",
        "127.0.0.1:0".parse().unwrap(),
        to_b.clone(),
    );
    let hc = start(
        dir.path(),
        &c,
        "c",
        "127.0.0.1:0".parse().unwrap(),
        to_b.clone(),
    );

    a.lock()
        .unwrap()
        .put(
            "alerts",
            "x",
            &[("title", FieldOp::Set("dark vessel off Tsushima".into()))],
        )
        .unwrap();
    until(20, "a's write to reach c", &c, || title(&c, "x").is_some()).await;
    assert_eq!(
        title(&c, "x"),
        Some(Value::Text("dark vessel off Tsushima".into()))
    );

    // Partition: B goes away, A and C cannot reach each other.
    hb.shutdown().await;
    a.lock()
        .unwrap()
        .put("alerts", "x", &[("title", FieldOp::Set("from a".into()))])
        .unwrap();
    a.lock()
        .unwrap()
        .put("alerts", "only-a", &[("title", FieldOp::Set("a".into()))])
        .unwrap();
    c.lock()
        .unwrap()
        .put("alerts", "x", &[("title", FieldOp::Set("from c".into()))])
        .unwrap();
    c.lock()
        .unwrap()
        .put("alerts", "only-c", &[("title", FieldOp::Set("c".into()))])
        .unwrap();
    assert_eq!(title(&a, "only-c"), None);

    // Heal: B comes back on the same address.
    let hb = start(dir.path(), &b, "b", b_addr, vec![]);
    until(30, "all three replicas to converge", &a, || {
        let h = hash(&a);
        h == hash(&b) && h == hash(&c) && title(&a, "only-c").is_some()
    })
    .await;
    // Last writer wins on the conflicting field, identically everywhere.
    assert_eq!(title(&a, "x"), Some(Value::Text("from c".into())));
    assert_eq!(title(&c, "only-a"), Some(Value::Text("a".into())));
    let status = ha.status();
    assert!(
        status.iter().any(|p| p.peer == "b" && p.connected),
        "{status:?}"
    );
    for h in [ha, hb, hc] {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_revoked_through_the_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    pki::init_ca(dir.path(), "test").unwrap();
    for n in ["hq", "rogue"] {
        pki::issue(dir.path(), dir.path(), n, Role::Site).unwrap();
    }
    let (hq, rogue) = (open(dir.path(), "hq"), open(dir.path(), "rogue"));
    hq.lock().unwrap().revoke("rogue", "laptop stolen").unwrap();
    let hh = start(
        dir.path(),
        &hq,
        "hq",
        "127.0.0.1:0".parse().unwrap(),
        vec![],
    );
    rogue
        .lock()
        .unwrap()
        .put(
            "alerts",
            "fake",
            &[("title", FieldOp::Set("all clear".into()))],
        )
        .unwrap();
    let before = hash(&hq);
    let hr = start(
        dir.path(),
        &rogue,
        "rogue",
        "127.0.0.1:0".parse().unwrap(),
        vec![PeerAddr {
            name: "hq".into(),
            addr: hh.local_addr(),
        }],
    );
    // Wait until the rogue's dialler has been refused at least once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let refused = hr.status().iter().any(|p| {
            p.last_error
                .as_deref()
                .is_some_and(|e| e.contains("revoked"))
        });
        if refused {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rogue was never refused: {:?}",
            hr.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        hash(&hq),
        before,
        "nothing from the revoked node was stored"
    );
    assert!(title(&hq, "fake").is_none());
    hr.shutdown().await;
    hh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_revoked_while_connected_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    pki::init_ca(dir.path(), "test").unwrap();
    for n in ["hq", "laptop"] {
        pki::issue(dir.path(), dir.path(), n, Role::Site).unwrap();
    }
    let (hq, laptop) = (open(dir.path(), "hq"), open(dir.path(), "laptop"));
    let hh = start(
        dir.path(),
        &hq,
        "hq",
        "127.0.0.1:0".parse().unwrap(),
        vec![],
    );
    let hl = start(
        dir.path(),
        &laptop,
        "laptop",
        "127.0.0.1:0".parse().unwrap(),
        vec![PeerAddr {
            name: "hq".into(),
            addr: hh.local_addr(),
        }],
    );
    let put = |id: &str| {
        laptop
            .lock()
            .unwrap()
            .put("alerts", id, &[("title", FieldOp::Set(id.into()))])
            .unwrap();
    };
    put("before");
    until(20, "the laptop's first write at hq", &hq, || {
        title(&hq, "before").is_some()
    })
    .await;
    // Revoke at hq while the session is open; the next housekeeping pass loads the revocation
    // and the open session is closed.
    hq.lock().unwrap().revoke("laptop", "stolen").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while hh
        .status()
        .iter()
        .any(|p| p.peer == "laptop" && p.connected)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "session with the revoked laptop stayed open: {:?}",
            hh.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reason = hh
        .status()
        .into_iter()
        .find(|p| p.peer == "laptop")
        .and_then(|p| p.last_error)
        .unwrap_or_default();
    assert!(reason.contains("revoked"), "closed for: {reason:?}");
    put("after");
    // Give the laptop's dialler several redial attempts; all must be refused.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        title(&hq, "after").is_none(),
        "a write made after revocation reached hq"
    );
    hl.shutdown().await;
    hh.shutdown().await;
}
