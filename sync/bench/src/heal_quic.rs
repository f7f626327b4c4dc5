//! W2 over the real transport: three replicas A–B–C, each with its own SQLite file
//! (synchronous=FULL, as deployed) and its own sync driver, connected by QUIC with mutual TLS on
//! loopback. A and C write their backlogs while apart; then A and C dial B and the time until
//! all three hold every change (equal version vectors, then checked by equal state hashes) is
//! measured.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mizugiwa_sync::driver::{self, PeerAddr, SyncConfig};
use mizugiwa_sync::pki::{self, NodeIdentity, Role};
use mizugiwa_sync::{Durability, FieldOp, Schema, Store, StoreConfig, SystemClock, Value};

/// What one heal over QUIC measured.
pub struct QuicHeal {
    /// From starting the drivers until every replica's version vector covered both backlogs.
    pub converge: Duration,
    /// Bytes sent over all links (both directions).
    pub bytes: u64,
}

fn open(dir: &Path, node: &str, durability: Durability) -> Store {
    let mut cfg = StoreConfig::new(node);
    cfg.durability = durability;
    Store::open(
        dir.join(format!("{node}.db")),
        Schema::new(),
        Arc::new(SystemClock::new()),
        cfg,
    )
    .expect("open store")
}

/// Writes `n` single-field ops at A and at C (10% of keys shared), then heals over QUIC.
pub fn run(dir: &Path, n: usize) -> QuicHeal {
    let dir = dir.join(format!("quic{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    pki::init_ca(&dir, "bench").unwrap();
    for node in ["a", "b", "c"] {
        pki::issue(&dir, &dir, node, Role::Site).unwrap();
    }
    // The backlogs are written with synchronous=NORMAL to keep the setup short; the heal runs
    // on databases reopened with the deployed setting.
    let mut rng = super::Rng(11);
    for (side, node) in [(0u64, "a"), (1, "c")] {
        let mut s = open(&dir, node, Durability::Normal);
        for i in 0..n {
            let key = if rng.next().is_multiple_of(10) {
                format!("shared{}", i % 1000)
            } else {
                format!("s{side}-{i}")
            };
            s.put(
                "tracks",
                &key,
                &[("score", FieldOp::Set(Value::Int(i as i64)))],
            )
            .unwrap();
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stores: Vec<Arc<Mutex<Store>>> = ["a", "b", "c"]
            .iter()
            .map(|n| Arc::new(Mutex::new(open(&dir, n, Durability::Full))))
            .collect();
        let ca = pki::load_ca(&dir.join("ca.crt")).unwrap();
        let start = |i: usize, peers: Vec<PeerAddr>| {
            let node = ["a", "b", "c"][i];
            let identity = NodeIdentity::load_dir(&dir, node).unwrap();
            let cfg = SyncConfig::new("127.0.0.1:0".parse().unwrap(), peers);
            driver::start(stores[i].clone(), &identity, ca.clone(), cfg).unwrap()
        };
        eprintln!("heal starts");
        let t = Instant::now();
        let hb = start(1, vec![]);
        let to_b = vec![PeerAddr {
            name: "b".into(),
            addr: hb.local_addr(),
        }];
        let ha = start(0, to_b.clone());
        let hc = start(2, to_b);
        let target = {
            let mut vv = stores[0].lock().unwrap().version_vector().clone();
            vv.merge(stores[2].lock().unwrap().version_vector());
            vv
        };
        loop {
            let done = stores.iter().all(|s| {
                let s = s.lock().unwrap();
                target
                    .iter()
                    .all(|(o, seq)| s.version_vector().get(o) >= seq)
            });
            if done {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(600),
                "W2 over QUIC did not converge"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let converge = t.elapsed();
        let bytes: u64 = [&ha, &hb, &hc]
            .iter()
            .flat_map(|h| h.status())
            .map(|p| p.bytes_sent)
            .sum();
        let hash = stores[0].lock().unwrap().state_hash().unwrap();
        for s in &stores[1..] {
            assert_eq!(hash, s.lock().unwrap().state_hash().unwrap());
        }
        for h in [ha, hb, hc] {
            h.shutdown().await;
        }
        QuicHeal { converge, bytes }
    })
}
