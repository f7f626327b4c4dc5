//! `mizugiwa demo`: a deployment on one machine — the command center (hq) and three sites
//! (Yokohama port, Narita airport, Tsushima coast), each with its own CA-issued certificate
//! and SQLite replica, syncing over QUIC on loopback. Sites write records; the demo shows them
//! converging, cuts Tsushima off, keeps writing on both sides, heals, and shows convergence
//! again. Until the field node and command center daemons land, this is the replicated store
//! on its own.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use mizugiwa_sync::driver::{self, PeerAddr, SyncConfig, SyncHandle};
use mizugiwa_sync::pki::{self, NodeIdentity, Role};
use mizugiwa_sync::{Collection, FieldOp, Schema, Store, StoreConfig, SystemClock, Value};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Working folder for certificates and databases (default: a fresh temporary folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Stop after the scripted run instead of waiting for Ctrl-C.
    #[arg(long)]
    once: bool,
}

const SITES: [(&str, Role, u16); 4] = [
    ("hq", Role::Command, 7400),
    ("yokohama", Role::Site, 7401),
    ("narita", Role::Site, 7402),
    ("tsushima", Role::Site, 7403),
];

fn schema() -> Schema {
    Schema::new().collection(
        "alerts",
        Collection::default()
            .lww("title")
            .status("state", &["new", "acked", "resolved", "closed"])
            .set("assignees")
            .counter("sightings"),
    )
}

type Shared = Arc<Mutex<Store>>;

fn start(
    dir: &std::path::Path,
    store: &Shared,
    node: &str,
    port: u16,
    peers: Vec<PeerAddr>,
) -> anyhow::Result<SyncHandle> {
    let identity = NodeIdentity::load_dir(dir, node)?;
    let ca = pki::load_ca(&dir.join("ca.crt"))?;
    let mut cfg = SyncConfig::new(([127, 0, 0, 1], port).into(), peers);
    cfg.max_redial = Duration::from_secs(1);
    Ok(driver::start(store.clone(), &identity, ca, cfg)?)
}

async fn converged(stores: &[(&str, Shared)], deadline: Duration) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    loop {
        let hashes: Vec<String> = stores
            .iter()
            .map(|(_, s)| {
                s.lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))
                    .and_then(|s| Ok(s.state_hash()?))
            })
            .collect::<Result<_, _>>()?;
        if hashes.iter().all(|h| *h == hashes[0]) {
            return Ok(t0.elapsed());
        }
        anyhow::ensure!(
            t0.elapsed() < deadline,
            "replicas did not converge within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let tmp;
    let dir = match args.dir {
        Some(d) => d,
        None => {
            tmp = tempfile_dir()?;
            tmp.clone()
        }
    };
    std::fs::create_dir_all(&dir)?;
    if !dir.join("ca.crt").exists() {
        pki::init_ca(&dir, "demo")?;
    }
    for (node, role, _) in SITES {
        if !dir.join(format!("{node}.crt")).exists() {
            pki::issue(&dir, &dir, node, role)?;
        }
    }
    let stores: Vec<(&str, Shared)> = SITES
        .iter()
        .map(|(node, _, _)| {
            let s = Store::open(
                dir.join(format!("{node}.db")),
                schema(),
                Arc::new(SystemClock::new()),
                StoreConfig::new(node),
            )?;
            Ok((*node, Arc::new(Mutex::new(s))))
        })
        .collect::<anyhow::Result<_>>()?;
    let hq_addr = PeerAddr {
        name: "hq".into(),
        addr: ([127, 0, 0, 1], 7400).into(),
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let mut handles = Vec::new();
        for (i, (node, _, port)) in SITES.iter().enumerate() {
            // Sites dial hq and their neighbour, so they keep syncing when hq is down.
            let mut peers = Vec::new();
            if *node != "hq" {
                peers.push(hq_addr.clone());
                let next = SITES[1 + (i % 3)];
                if next.0 != *node {
                    peers.push(PeerAddr { name: next.0.into(), addr: ([127, 0, 0, 1], next.2).into() });
                }
            }
            handles.push(Some(start(&dir, &stores[i].1, node, *port, peers).with_context(|| format!("starting {node}"))?));
        }
        println!("mizugiwa demo: hq + yokohama, narita, tsushima syncing over QUIC on 127.0.0.1:7400-7403");
        println!("working folder: {}", dir.display());
        for (i, (node, s)) in stores.iter().enumerate().skip(1) {
            let mut s = s.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            s.put("alerts", &format!("{node}-1"), &[
                ("title", FieldOp::Set(Value::Text(format!("alert raised at {node}")))),
                ("state", FieldOp::Advance("new".into())),
                ("sightings", FieldOp::Increment(i as i64)),
            ])?;
        }
        let t = converged(&stores, Duration::from_secs(30)).await?;
        println!("all four replicas converged in {} ms", t.as_millis());

        println!("cutting tsushima off (its sync endpoint stops); both sides keep writing");
        if let Some(h) = handles[3].take() {
            h.shutdown().await;
        }
        stores[3].1.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.put("alerts", "tsushima-1", &[
            ("state", FieldOp::Advance("acked".into())),
            ("assignees", FieldOp::Add("patrol-3".into())),
            ("sightings", FieldOp::Increment(1)),
        ])?;
        stores[0].1.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.put("alerts", "tsushima-1", &[
            ("state", FieldOp::Advance("resolved".into())),
            ("assignees", FieldOp::Add("hq-duty-officer".into())),
            ("sightings", FieldOp::Increment(1)),
        ])?;
        println!("healing tsushima");
        handles[3] = Some(start(&dir, &stores[3].1, "tsushima", 7403, vec![hq_addr.clone()])?);
        let t = converged(&stores, Duration::from_secs(30)).await?;
        println!("converged again {} ms after the heal", t.as_millis());
        let rec = stores[2].1.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.get("alerts", "tsushima-1")?;
        if let Some(r) = rec {
            println!("tsushima-1 as narita sees it: {}", r.to_json());
        }
        if !args.once {
            println!("running; Ctrl-C to stop. Try: mizugiwa store list --db {} alerts", dir.join("hq.db").display());
            tokio::signal::ctrl_c().await?;
        }
        for h in handles.into_iter().flatten() {
            h.shutdown().await;
        }
        anyhow::Ok(())
    })
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("mizugiwa-demo-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
