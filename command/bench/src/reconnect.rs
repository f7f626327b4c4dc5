//! Scenario 3: many sites reconnecting to HQ at once after an outage.
//!
//! HQ is a real `Runtime` (command mode) in this process. The sites are replicas in child
//! processes (`--role fleet`, at most `per_process` sites each), every one with its own SQLite
//! file, its own certificate and its own sync driver (one QUIC endpoint per site) dialling HQ.
//!
//! 1. First contact: each site holds 2 records; all drivers start at once. Time until HQ's
//!    version vector covers every site's writes.
//! 2. Settle for a while (HQ fans every site's records out to every other site), then the
//!    outage: every site driver is shut down.
//! 3. Offline, each site writes 5 records (a status record, two vessel positions, a detection,
//!    an alert).
//! 4. Reconnect: all drivers start at once. Time until HQ's version vector covers every site's
//!    offline writes, then HQ's state is checked: every site's offline alert and detection are
//!    readable at HQ with the values written.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mizugiwa_command::records::{ALERTS, DETECTIONS, SITES, VESSELS};
use mizugiwa_sync::pki;
use mizugiwa_sync::{Durability, FieldOp, Store, Value};
use serde_json::json;

use crate::common::{self, cpu_secs, now_ms, say, Hist, Kid, SiteSeq};
use crate::ingest::{open_site, start_site_driver};

/// Settings.
#[derive(Clone, Debug)]
pub struct ReconnectOpts {
    pub sizes: Vec<usize>,
    pub per_process: usize,
    pub settle: Duration,
    pub timeout: Duration,
}

/// One convergence measurement.
#[derive(Clone, Debug, Default)]
pub struct Converge {
    /// Until HQ covered every site (None: not within the timeout).
    pub all_s: Option<f64>,
    /// Sites covered at the end of the wait.
    pub covered: usize,
    /// Per-site time until covered, ms.
    pub per_site: Hist,
    /// Until every site's session was open at HQ.
    pub connected_s: Option<f64>,
    pub hq_cpu: f64,
    pub fleet_cpu: f64,
    pub hq_bytes_sent: u64,
    pub hq_bytes_received: u64,
    pub busy: f64,
    /// When not converged: what HQ and the sites said about their links.
    pub diagnosis: Option<String>,
}

/// What one fleet size measured.
#[derive(Clone, Debug, Default)]
pub struct FleetResult {
    pub sites: usize,
    pub processes: usize,
    pub first: Converge,
    pub settle_s: f64,
    /// During the settle: HQ CPU seconds per second and bytes per second sent by HQ.
    pub idle_hq_cpu_per_s: f64,
    pub idle_hq_bytes_per_s: f64,
    pub idle_hq_applied_per_s: f64,
    pub reconnect: Converge,
    pub state_ok: usize,
    pub state_checked: usize,
    pub hq_rss_kb: u64,
    /// What went wrong or had to be worked around, for the report.
    pub notes: Vec<String>,
    pub error: Option<String>,
}

fn site_name(i: usize) -> String {
    format!("fleet-{i:04}")
}

fn hq_bytes(hq: &mizugiwa_command::runtime::Runtime) -> (u64, u64) {
    hq.peers()
        .get()
        .iter()
        .fold((0, 0), |(s, r), p| (s + p.bytes_sent, r + p.bytes_received))
}

/// Waits until HQ covers every site's `seqs`; per-site times go into the histogram.
async fn converge(
    hq: &mizugiwa_command::runtime::Runtime,
    seqs: &BTreeMap<String, SiteSeq>,
    timeout: Duration,
    t0: Instant,
) -> Converge {
    let mut pending: Vec<(&String, &SiteSeq)> = seqs.iter().collect();
    let mut c = Converge::default();
    while t0.elapsed() < timeout {
        {
            let s = hq.store.lock().unwrap();
            let vv = s.version_vector();
            let now = t0.elapsed().as_millis() as u64;
            pending.retain(|(site, seq)| {
                if seq.covered_by(vv, site) {
                    c.per_site.record(now);
                    false
                } else {
                    true
                }
            });
        }
        if c.connected_s.is_none() {
            let connected = hq.peers().get().iter().filter(|p| p.connected).count();
            if connected >= seqs.len() {
                c.connected_s = Some(t0.elapsed().as_secs_f64());
            }
        }
        if pending.is_empty() {
            c.all_s = Some(t0.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.covered = seqs.len() - pending.len();
    c
}

async fn one_size(n: usize, opts: &ReconnectOpts, dir: PathBuf) -> FleetResult {
    let mut r = FleetResult {
        sites: n,
        ..FleetResult::default()
    };
    if let Err(e) = phases(n, opts, dir, &mut r).await {
        eprintln!("reconnect {n}: failed: {e:#}");
        r.error = Some(format!("{e:#}"));
    }
    r
}

/// HQ's view of the links and the sites' own, for a phase that did not converge.
async fn diagnose(
    hq: &mizugiwa_command::runtime::Runtime,
    seqs: &BTreeMap<String, SiteSeq>,
    kids: &mut [Kid],
) -> String {
    let peers = hq.peers().get();
    let connected = peers.iter().filter(|p| p.connected).count();
    let (uncovered, uncovered_connected) = {
        let s = hq.store.lock().unwrap();
        let vv = s.version_vector();
        let un: Vec<&String> = seqs
            .iter()
            .filter(|(k, v)| !v.covered_by(vv, k))
            .map(|(k, _)| k)
            .collect();
        let uc = un
            .iter()
            .filter(|k| peers.iter().any(|p| &p.peer == **k && p.connected))
            .count();
        (un.len(), uc)
    };
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for p in &peers {
        if let Some(e) = &p.last_error {
            *errors.entry(shorten(e)).or_default() += 1;
        }
    }
    let mut sites_connected = 0;
    let mut site_errors: BTreeMap<String, u64> = BTreeMap::new();
    for k in kids.iter_mut() {
        k.drain();
        if k.say("status").is_err() {
            continue;
        }
        if let Ok(v) = k.expect("status", Duration::from_secs(60)).await {
            sites_connected += v["connected"].as_u64().unwrap_or(0);
            for (e, c) in v["errors"].as_object().into_iter().flatten() {
                *site_errors.entry(e.clone()).or_default() += c.as_u64().unwrap_or(0);
            }
        }
    }
    let top = |m: Vec<(String, u64)>| {
        let mut m = m;
        m.sort_by_key(|e| std::cmp::Reverse(e.1));
        m.iter()
            .take(5)
            .map(|(e, c)| format!("{c}× \"{e}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "HQ had {connected} sessions open ({} peers seen); {uncovered} sites not covered, {uncovered_connected} of them with a session open; \
         HQ's last error per peer: {}. The sites: {sites_connected} links to HQ open; their last errors: {}",
        peers.len(),
        top(errors.into_iter().map(|(e, c)| (e, c as u64)).collect()),
        top(site_errors.into_iter().collect()),
    )
}

/// A link error without its addresses, for counting.
fn shorten(e: &str) -> String {
    let mut out = String::new();
    for w in e.split(' ') {
        let w = if w.contains("127.0.0.1:") {
            "ADDR"
        } else if w.starts_with("fleet-") {
            "fleet-N"
        } else {
            w
        };
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out.chars().take(120).collect()
}

async fn phases(
    n: usize,
    opts: &ReconnectOpts,
    dir: PathBuf,
    r: &mut FleetResult,
) -> anyhow::Result<()> {
    let names: Vec<String> = (0..n).map(site_name).collect();
    eprintln!("reconnect {n}: issuing {n} certificates");
    let pki_dir = common::deployment(&dir, &names)?;
    let hq = common::start_hq(&dir.join("hq"), &pki_dir, vec![]).await?;
    let processes = n.div_ceil(opts.per_process);
    let spawn = |restart: bool| -> anyhow::Result<Vec<Kid>> {
        (0..processes)
            .map(|p| {
                let first = p * n / processes;
                let count = (p + 1) * n / processes - first;
                let mut args: Vec<String> = vec![
                    "--role".into(),
                    "fleet".into(),
                    "--hq-addr".into(),
                    hq.sync_addr().to_string(),
                    "--pki".into(),
                    pki_dir.display().to_string(),
                    "--data".into(),
                    dir.join("fleet").display().to_string(),
                    "--first".into(),
                    first.to_string(),
                    "--count".into(),
                    count.to_string(),
                ];
                if restart {
                    args.push("--restart".into());
                }
                Kid::spawn(&format!("fleet{p}"), &args)
            })
            .collect()
    };
    let mut kids = spawn(false)?;
    let mut seqs = BTreeMap::new();
    for k in &mut kids {
        seqs.extend(common::seqs_from(
            &k.expect("ready", Duration::from_secs(300)).await?,
        ));
    }
    r.processes = processes;
    let mut pids: Vec<String> = kids.iter().map(|k| k.pid().to_string()).collect();
    let fleet_cpu = |pids: &[String]| pids.iter().map(|p| cpu_secs(p)).sum::<f64>();

    // 1. First contact.
    eprintln!("reconnect {n}: first contact");
    let (cpu0, fcpu0, busy0) = (
        cpu_secs("self"),
        fleet_cpu(&pids),
        common::machine_busy_secs(),
    );
    let t0 = Instant::now();
    for k in &mut kids {
        k.say("connect")?;
    }
    r.first = converge(&hq, &seqs, opts.timeout, t0).await;
    if r.first.all_s.is_none() {
        r.first.diagnosis = Some(diagnose(&hq, &seqs, &mut kids).await);
    }
    // Byte counters are per session: the sessions now open all began with this phase.
    let b1 = hq_bytes(&hq);
    let b0 = (0, 0);
    r.first.hq_cpu = cpu_secs("self") - cpu0;
    r.first.fleet_cpu = fleet_cpu(&pids) - fcpu0;
    r.first.hq_bytes_sent = b1.0.saturating_sub(b0.0);
    r.first.hq_bytes_received = b1.1.saturating_sub(b0.1);
    r.first.busy = common::machine_busy_secs() - busy0;
    eprintln!("reconnect {n}: first contact {:?}", r.first);

    // 2. Settle, measuring what HQ does while nothing new is written.
    let applied = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let mut rx = hq.store.lock().unwrap().subscribe();
        let applied = applied.clone();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.recv().await {
                    Ok(c) if c.via.is_some() => {
                        applied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(k)) => {
                        applied.fetch_add(k, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }
    // Skip the first part of the settle (the fan-out of first contact), measure the rest.
    tokio::time::sleep(opts.settle / 2).await;
    let (cpu0, b0, a0, t) = (
        cpu_secs("self"),
        hq_bytes(&hq),
        applied.load(std::sync::atomic::Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(opts.settle / 2).await;
    let secs = t.elapsed().as_secs_f64();
    r.settle_s = opts.settle.as_secs_f64();
    r.idle_hq_cpu_per_s = (cpu_secs("self") - cpu0) / secs;
    r.idle_hq_bytes_per_s = hq_bytes(&hq).0.saturating_sub(b0.0) as f64 / secs;
    r.idle_hq_applied_per_s =
        (applied.load(std::sync::atomic::Ordering::Relaxed) - a0) as f64 / secs;
    eprintln!(
        "reconnect {n}: settled; HQ {:.2} CPU s/s, {:.0} B/s sent, {:.0} records/s applied",
        r.idle_hq_cpu_per_s, r.idle_hq_bytes_per_s, r.idle_hq_applied_per_s
    );

    // 3. The outage: every site's driver stops; the sites write offline.
    for k in &mut kids {
        k.say("disconnect")?;
    }
    let t = Instant::now();
    let mut graceful = true;
    for k in &mut kids {
        let left = Duration::from_secs(120).saturating_sub(t.elapsed());
        if k.expect("disconnected", left).await.is_err() {
            graceful = false;
        }
    }
    if !graceful {
        // The drivers did not all stop: the outage becomes a power cut. The fleet processes
        // are killed, HQ notices the links die (idle timeout), and the sites restart on
        // their databases.
        r.notes.push(format!(
            "{n} sites: `SyncHandle::shutdown` of every site driver did not complete within 120 s, \
             so the outage was made a power cut instead: the fleet processes were killed and restarted on their databases"
        ));
        eprintln!("reconnect {n}: graceful driver shutdown hung; killing the fleet");
        for k in kids.drain(..) {
            k.finish(Duration::from_secs(0));
        }
    }
    let t = Instant::now();
    while hq.peers().get().iter().any(|p| p.connected) && t.elapsed() < Duration::from_secs(90) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let still = hq.peers().get().iter().filter(|p| p.connected).count();
    if still > 0 {
        r.notes.push(format!(
            "{n} sites: {still} HQ sessions were still open 90 s into the outage"
        ));
    }
    if !graceful {
        kids = spawn(true)?;
        for k in &mut kids {
            k.expect("ready", Duration::from_secs(300)).await?;
        }
        pids = kids.iter().map(|k| k.pid().to_string()).collect();
    }
    for k in &mut kids {
        k.say("write")?;
    }
    let mut seqs = BTreeMap::new();
    for k in &mut kids {
        seqs.extend(common::seqs_from(
            &k.expect("written", Duration::from_secs(300)).await?,
        ));
    }
    // Let HQ's own status writes and housekeeping pass the outage.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 4. Reconnect, all at once.
    eprintln!("reconnect {n}: reconnecting");
    let (cpu0, fcpu0, busy0) = (
        cpu_secs("self"),
        fleet_cpu(&pids),
        common::machine_busy_secs(),
    );
    let t0 = Instant::now();
    for k in &mut kids {
        k.say("connect")?;
    }
    r.reconnect = converge(&hq, &seqs, opts.timeout, t0).await;
    if r.reconnect.all_s.is_none() {
        r.reconnect.diagnosis = Some(diagnose(&hq, &seqs, &mut kids).await);
    }
    let b1 = hq_bytes(&hq);
    let b0 = (0, 0);
    r.reconnect.hq_cpu = cpu_secs("self") - cpu0;
    r.reconnect.fleet_cpu = fleet_cpu(&pids) - fcpu0;
    r.reconnect.hq_bytes_sent = b1.0.saturating_sub(b0.0);
    r.reconnect.hq_bytes_received = b1.1.saturating_sub(b0.1);
    r.reconnect.busy = common::machine_busy_secs() - busy0;
    eprintln!("reconnect {n}: reconnect {:?}", r.reconnect);

    // Then the state: each site's offline alert and detection, as written.
    {
        let s = hq.store.lock().unwrap();
        for name in &names {
            r.state_checked += 1;
            let alert = s
                .get(ALERTS, &format!("{name}-offline-alert"))
                .ok()
                .flatten();
            let det = s
                .get(DETECTIONS, &format!("{name}-offline-det"))
                .ok()
                .flatten();
            let ok = alert
                .as_ref()
                .and_then(|a| a.get("site"))
                .and_then(|v| v.as_str())
                == Some(name.as_str())
                && det
                    .as_ref()
                    .and_then(|d| d.get("site"))
                    .and_then(|v| v.as_str())
                    == Some(name.as_str());
            if ok {
                r.state_ok += 1;
            }
        }
    }
    r.hq_rss_kb = common::rss_kb().0;
    for k in &mut kids {
        k.say("quit")?;
    }
    for k in kids {
        k.finish(Duration::from_secs(60));
    }
    hq.shutdown().await;
    Ok(())
}

pub async fn run(opts: &ReconnectOpts, dir: PathBuf) -> Vec<FleetResult> {
    let mut out = Vec::new();
    for &n in &opts.sizes {
        let d = dir.join(format!("fleet{n}"));
        out.push(one_size(n, opts, d.clone()).await);
        let _ = std::fs::remove_dir_all(&d);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// --role fleet

pub struct FleetArgs {
    pub hq_addr: std::net::SocketAddr,
    pub pki: PathBuf,
    pub data: PathBuf,
    pub first: usize,
    pub count: usize,
    /// Reopen existing databases without writing the initial records.
    pub restart: bool,
}

fn put(store: &Mutex<Store>, coll: &str, id: &str, ops: &[(&str, FieldOp)]) {
    store.lock().unwrap().put(coll, id, ops).unwrap();
}

pub fn role_fleet(a: FleetArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        std::fs::create_dir_all(&a.data)?;
        let ca = pki::load_ca(&a.pki.join("ca.crt"))?;
        let names: Vec<String> = (a.first..a.first + a.count).map(site_name).collect();
        let stores: Vec<Arc<Mutex<Store>>> = names
            .iter()
            .map(|n| Arc::new(Mutex::new(open_site(&a.data, n, Durability::Normal))))
            .collect();
        for (i, (n, s)) in names.iter().zip(&stores).enumerate() {
            if a.restart {
                break;
            }
            let idx = a.first + i;
            put(
                s,
                SITES,
                n,
                &[
                    ("name", FieldOp::Set(n.clone().into())),
                    ("kind", FieldOp::Set("coast".into())),
                    (
                        "lat",
                        FieldOp::Set(Value::Float(30.0 + (idx % 100) as f64 * 0.1)),
                    ),
                    (
                        "lon",
                        FieldOp::Set(Value::Float(128.0 + (idx / 100) as f64 * 0.1)),
                    ),
                    ("heartbeat_ms", FieldOp::Set(Value::Int(now_ms() as i64))),
                ],
            );
            put(
                s,
                VESSELS,
                &format!("{}", 440_000_000 + idx),
                &[
                    ("lat", FieldOp::Set(Value::Float(34.0))),
                    ("lon", FieldOp::Set(Value::Float(130.0))),
                    ("site", FieldOp::Set(n.clone().into())),
                    ("at_ms", FieldOp::Set(Value::Int(now_ms() as i64))),
                ],
            );
        }
        say(json!({"ready": true, "seqs": common::seqs_json(&names, &stores)}));
        let mut handles = Vec::new();
        let mut cmds = common::stdin_commands();
        while let Some(c) = cmds.recv().await {
            match c.as_str() {
                "connect" => {
                    for (n, s) in names.iter().zip(&stores) {
                        handles.push(start_site_driver(s.clone(), &a.pki, n, a.hq_addr, &ca)?);
                    }
                    say(json!({"connected": handles.len()}));
                }
                "disconnect" => {
                    futures_util::future::join_all(handles.drain(..).map(|h| h.shutdown())).await;
                    say(json!({"disconnected": names.len()}));
                }
                "write" => {
                    for (i, (n, s)) in names.iter().zip(&stores).enumerate() {
                        let idx = a.first + i;
                        let now = Value::Int(now_ms() as i64);
                        put(s, SITES, n, &[("heartbeat_ms", FieldOp::Set(now.clone()))]);
                        for k in 0..2 {
                            put(
                                s,
                                VESSELS,
                                &format!("{}", 440_000_000 + idx),
                                &[
                                    ("lat", FieldOp::Set(Value::Float(34.0 + k as f64 * 0.01))),
                                    ("lon", FieldOp::Set(Value::Float(130.0))),
                                    ("at_ms", FieldOp::Set(now.clone())),
                                ],
                            );
                        }
                        put(
                            s,
                            DETECTIONS,
                            &format!("{n}-offline-det"),
                            &[
                                ("site", FieldOp::Set(n.clone().into())),
                                ("source", FieldOp::Set("sar".into())),
                                ("lat", FieldOp::Set(Value::Float(34.1))),
                                ("lon", FieldOp::Set(Value::Float(130.1))),
                                ("at_ms", FieldOp::Set(now.clone())),
                            ],
                        );
                        put(
                            s,
                            ALERTS,
                            &format!("{n}-offline-alert"),
                            &[
                                (
                                    "title",
                                    FieldOp::Set("Dark vessel during the outage".into()),
                                ),
                                ("kind", FieldOp::Set("dark_vessel".into())),
                                ("severity", FieldOp::Set("high".into())),
                                ("site", FieldOp::Set(n.clone().into())),
                                ("raised_ms", FieldOp::Set(now.clone())),
                                ("status", FieldOp::Advance("new".into())),
                            ],
                        );
                    }
                    say(json!({"written": true, "seqs": common::seqs_json(&names, &stores)}));
                }
                "status" => {
                    let mut connected = 0;
                    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
                    for h in &handles {
                        for p in h.status() {
                            if p.connected {
                                connected += 1;
                            }
                            if let Some(e) = &p.last_error {
                                *errors.entry(shorten(e)).or_default() += 1;
                            }
                        }
                    }
                    say(json!({"status": true, "connected": connected, "errors": errors}));
                }
                "quit" => break,
                _ => {}
            }
        }
        futures_util::future::join_all(handles.drain(..).map(|h| h.shutdown())).await;
        say(json!({"exit": true, "cpu_s": cpu_secs("self")}));
        Ok(())
    })
}
