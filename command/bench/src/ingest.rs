//! Scenario 1: record ingest at HQ with live dashboards.
//!
//! Three processes, so that each one's CPU and memory can be read on its own:
//!
//! * this one (`hq`): a real `Runtime` in command mode (replica with synchronous=FULL, sync
//!   driver, dashboard and API, status record every 5 s), plus the measuring: RSS and CPU from
//!   /proc/self every 5 s, records applied (the store's change events that came through a
//!   peer), HQ's version vector, and a probe timing how long taking the store mutex waits;
//! * `--role sites`: N replicas, each its own SQLite file and its own sync driver (QUIC with
//!   mutual TLS, certificates from the deployment CA) dialling HQ, and writer threads putting
//!   records (60% vessel positions, 25% new detections, 15% new alerts) at a paced total rate;
//! * `--role browsers`: 50 dashboard clients, each logged in through `/api/login` and reading
//!   `/api/events`; each record event's `at_ms` (vessels, detections) or `raised_ms` (alerts),
//!   set to the wall time just before the site's `Store::put`, gives ingest-to-browser latency.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use mizugiwa_command::records::{self, ALERTS, DETECTIONS, VESSELS};
use mizugiwa_sync::driver::{self, PeerAddr, SyncConfig, SyncHandle};
use mizugiwa_sync::pki::{self, NodeIdentity};
use mizugiwa_sync::{Durability, FieldOp, Store, StoreConfig, SystemClock, Value};
use serde_json::{json, Value as Json};

use crate::common::{self, cpu_secs, now_ms, rss_kb, say, Hist, Kid, Rng, SiteSeq};

/// Settings of the ingest scenario.
#[derive(Clone, Debug)]
pub struct IngestOpts {
    pub duration: Duration,
    pub warmup: Duration,
    pub sites: usize,
    /// Total offered records/s over all sites (0: as fast as the writers go).
    pub rate: u64,
    pub writer_threads: usize,
    pub clients: usize,
    pub users: usize,
    pub durability: Durability,
    pub drain_max: Duration,
}

/// One 5-second sample at HQ.
#[derive(Clone, Debug)]
pub struct Sample {
    pub t: f64,
    pub rss_kb: u64,
    pub hq_cpu: f64,
    pub applied: u64,
    pub covered_entries: u64,
    pub written: u64,
    pub lock_p99_us: u64,
    pub lock_max_us: u64,
}

/// The whole-store operations timed after the run.
#[derive(Clone, Debug, Default)]
pub struct Scans {
    pub records: u64,
    pub counts_ms: f64,
    pub gc_ms: f64,
    pub snapshot_ms: f64,
    pub snapshot_mb: f64,
    pub snapshot_peak_mb: f64,
}

/// What the ingest scenario measured.
pub struct IngestResult {
    pub opts: IngestOpts,
    pub samples: Vec<Sample>,
    pub window_s: f64,
    pub written: u64,
    pub entries_written: u64,
    pub applied_in_window: u64,
    pub lagged_events: u64,
    pub drain_s: Option<f64>,
    pub hq_cpu_window: f64,
    /// Sync bytes HQ sent and received during the window (all site sessions).
    pub hq_bytes_window: (u64, u64),
    pub sites_cpu: f64,
    pub browsers_cpu: f64,
    pub machine_busy_window: f64,
    pub lock_wait: Hist,
    pub latency: Hist,
    pub latency_windows: Vec<Hist>,
    pub browser_clients: Vec<Json>,
    pub hub_events: u64,
    pub post: BTreeMap<String, String>,
    pub scan: Scans,
    pub rss_start_kb: u64,
    /// After HQ started, the dashboards logged in and connected, and the sites connected.
    pub rss_ready_kb: u64,
    pub rss_warm_kb: u64,
    pub rss_end_kb: u64,
    pub rss_max_kb: u64,
    pub rss_hwm_kb: u64,
    pub site_durability: &'static str,
    pub load_before: String,
    pub load_after: String,
}

fn site_name(i: usize) -> String {
    format!("site-{i:04}")
}

/// Runs HQ here and the sites and browsers as child processes.
pub async fn run(opts: &IngestOpts, dir: PathBuf) -> anyhow::Result<IngestResult> {
    let load_before = common::loadavg();
    let names: Vec<String> = (0..opts.sites).map(site_name).collect();
    let pki_dir = common::deployment(&dir, &names)?;
    let users = common::users(opts.users)?;
    let (rss_start_kb, _) = rss_kb();
    let hq = common::start_hq(
        &dir.join("hq"),
        &pki_dir,
        users.iter().map(|(u, _)| u.clone()).collect(),
    )
    .await?;
    eprintln!(
        "ingest: HQ up (dashboard {}, sync {})",
        hq.http_addr(),
        hq.sync_addr()
    );

    // Records applied at HQ: change events that came through a peer. A lagged receiver is told
    // how many it missed, so the count stays exact.
    let applied = Arc::new(AtomicU64::new(0));
    let lagged = Arc::new(AtomicU64::new(0));
    {
        let mut rx = hq.store.lock().unwrap().subscribe();
        let (applied, lagged) = (applied.clone(), lagged.clone());
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.recv().await {
                    Ok(c) => {
                        if c.via.is_some() && !c.collection.starts_with('$') {
                            applied.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        applied.fetch_add(n, Ordering::Relaxed);
                        lagged.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }
    // How long does taking the store mutex wait? A thread of its own, every 20 ms.
    let lock_hist = Arc::new(Mutex::new(Hist::default()));
    let lock_window = Arc::new(Mutex::new(Hist::default()));
    let probing = Arc::new(AtomicBool::new(true));
    {
        let (store, all, window, probing) = (
            hq.store.clone(),
            lock_hist.clone(),
            lock_window.clone(),
            probing.clone(),
        );
        std::thread::spawn(move || {
            while probing.load(Ordering::Relaxed) {
                let t = Instant::now();
                drop(store.lock().unwrap());
                let us = t.elapsed().as_micros() as u64;
                all.lock().unwrap().record(us);
                window.lock().unwrap().record(us);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
    }

    let user_arg = users
        .iter()
        .map(|(u, p)| format!("{}:{}", u.name, p))
        .collect::<Vec<_>>()
        .join(",");
    let mut browsers = Kid::spawn(
        "browsers",
        &[
            "--role".into(),
            "browsers".into(),
            "--http".into(),
            hq.http_addr().to_string(),
            "--clients".into(),
            opts.clients.to_string(),
            "--users".into(),
            user_arg,
        ],
    )?;
    let ready = browsers.expect("ready", Duration::from_secs(600)).await?;
    eprintln!(
        "ingest: {} dashboard clients connected ({ready})",
        opts.clients
    );

    let mut sites = Kid::spawn(
        "sites",
        &[
            "--role".into(),
            "sites".into(),
            "--hq-addr".into(),
            hq.sync_addr().to_string(),
            "--pki".into(),
            pki_dir.display().to_string(),
            "--data".into(),
            dir.join("sites").display().to_string(),
            "--sites".into(),
            opts.sites.to_string(),
            "--rate".into(),
            opts.rate.to_string(),
            "--duration".into(),
            opts.duration.as_secs_f64().to_string(),
            "--threads".into(),
            opts.writer_threads.to_string(),
            "--durability".into(),
            match opts.durability {
                Durability::Full => "full",
                Durability::Normal => "normal",
            }
            .into(),
        ],
    )?;
    sites.expect("ready", Duration::from_secs(120)).await?;
    // Every site connected before the clock starts.
    let t = Instant::now();
    loop {
        let connected = hq.peers().get().iter().filter(|p| p.connected).count();
        if connected >= opts.sites {
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(120),
            "only {connected} of {} sites connected",
            opts.sites
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    eprintln!(
        "ingest: {} sites connected; writing for {:?}",
        opts.sites, opts.duration
    );

    let site_names: Vec<String> = names.clone();
    let covered = |store: &Store| -> u64 {
        let vv = store.version_vector();
        site_names.iter().map(|s| SiteSeq::reach(vv, s)).sum()
    };
    let (rss_ready_kb, _) = rss_kb();
    let bytes = |hq: &mizugiwa_command::runtime::Runtime| {
        hq.peers().get().iter().fold((0u64, 0u64), |(s, r), p| {
            (s + p.bytes_sent, r + p.bytes_received)
        })
    };
    let bytes0 = bytes(&hq);
    let start = Instant::now();
    let cpu0 = cpu_secs("self");
    let busy0 = common::machine_busy_secs();
    let applied0 = applied.load(Ordering::Relaxed);
    sites.say("go")?;
    let mut samples = Vec::new();
    let mut written = 0u64;
    let done;
    let mut next_sample = Duration::from_secs(5);
    *lock_window.lock().unwrap() = Hist::default();
    loop {
        // Sites report progress each second; "done" when the writers stop.
        let mut finished = None;
        for line in sites.drain() {
            if let Some(n) = line.get("written").and_then(Json::as_u64) {
                written = n;
            }
            if line.get("done").is_some() {
                finished = Some(line);
            }
        }
        if let Some(d) = finished {
            done = d;
            break;
        }
        if start.elapsed() >= next_sample {
            let (rss, _) = rss_kb();
            let cov = covered(&hq.store.lock().unwrap());
            let lw = std::mem::take(&mut *lock_window.lock().unwrap());
            samples.push(Sample {
                t: start.elapsed().as_secs_f64(),
                rss_kb: rss,
                hq_cpu: cpu_secs("self") - cpu0,
                applied: applied.load(Ordering::Relaxed) - applied0,
                covered_entries: cov,
                written,
                lock_p99_us: lw.quantile(0.99),
                lock_max_us: lw.max(),
            });
            let s = samples.last().unwrap();
            eprintln!(
                "ingest: t={:.0}s written={} applied={} rss={} MB hq_cpu={:.1}s lock p99={} µs max={} µs",
                s.t,
                s.written,
                s.applied,
                s.rss_kb / 1024,
                s.hq_cpu,
                s.lock_p99_us,
                s.lock_max_us
            );
            next_sample += Duration::from_secs(5);
        }
        anyhow::ensure!(
            start.elapsed() < opts.duration + Duration::from_secs(120),
            "the sites never finished writing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let window_s = done["secs"]
        .as_f64()
        .unwrap_or(start.elapsed().as_secs_f64());
    let written = done["written"].as_u64().unwrap_or(written);
    let applied_in_window = applied.load(Ordering::Relaxed) - applied0;
    let hq_cpu_window = cpu_secs("self") - cpu0;
    let bytes1 = bytes(&hq);
    let hq_bytes_window = (
        bytes1.0.saturating_sub(bytes0.0),
        bytes1.1.saturating_sub(bytes0.1),
    );
    let machine_busy_window = common::machine_busy_secs() - busy0;
    let (rss_end_kb, _) = rss_kb();
    let seqs = common::seqs_from(&done);
    let entries_written: u64 = seqs.values().map(|s| s.entries()).sum();
    // Drain: how long after the writers stopped until HQ covers every site's last write.
    let t_done = Instant::now();
    let drain_s = loop {
        let all = {
            let s = hq.store.lock().unwrap();
            let vv = s.version_vector();
            seqs.iter().all(|(site, seq)| seq.covered_by(vv, site))
        };
        if all {
            break Some(t_done.elapsed().as_secs_f64());
        }
        if t_done.elapsed() > opts.drain_max {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("ingest: writers done; drain {drain_s:?}");
    // Let the last events reach the browsers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    browsers.say("stop")?;
    let result = browsers.expect("result", Duration::from_secs(120)).await?;
    sites.say("quit")?;
    let sites_exit = sites.expect("exit", Duration::from_secs(120)).await?;
    let browsers_cpu = result["cpu_s"].as_f64().unwrap_or(0.0);
    let sites_cpu = sites_exit["cpu_s"].as_f64().unwrap_or(0.0);
    browsers.finish(Duration::from_secs(10));
    sites.finish(Duration::from_secs(10));
    probing.store(false, Ordering::Relaxed);

    let latency = Hist::from_json(&result["latency"]);
    let latency_windows: Vec<Hist> = result["windows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Hist::from_json)
        .collect();
    let browser_clients = result["clients"].as_array().cloned().unwrap_or_default();
    // Events the hub published while the clients listened: the widest id range any client saw.
    let hub_events = browser_clients
        .iter()
        .map(|c| {
            let (f, l) = (
                c["first_id"].as_u64().unwrap_or(0),
                c["last_id"].as_u64().unwrap_or(0),
            );
            if f == 0 {
                0
            } else {
                l - f + 1
            }
        })
        .max()
        .unwrap_or(0);

    let (_, rss_hwm_kb) = rss_kb();
    // After the run: what the periodic whole-store scans cost now that HQ holds the data.
    let mut post = BTreeMap::new();
    let mut scan = Scans::default();
    {
        let mut s = hq.store.lock().unwrap();
        let t = Instant::now();
        let counts = s.collection_counts()?;
        scan.counts_ms = t.elapsed().as_secs_f64() * 1e3;
        scan.records = counts
            .iter()
            .filter(|(c, _)| !c.starts_with('$'))
            .map(|(_, n)| n)
            .sum();
        post.insert(
            "collection_counts() (status record every 5 s, /metrics)".into(),
            format!("{:.0} ms", scan.counts_ms),
        );
        post.insert("records at HQ".into(), format!("{counts:?}"));
        let t = Instant::now();
        s.collect_garbage()?;
        scan.gc_ms = t.elapsed().as_secs_f64() * 1e3;
        post.insert(
            "collect_garbage() (driver housekeeping every 5 s)".into(),
            format!("{:.0} ms", scan.gc_ms),
        );
    }
    post.insert(
        "HQ database (hq.db + WAL)".into(),
        format!(
            "{:.0} MB",
            common::files_size(&dir.join("hq"), "hq.db") as f64 / 1e6
        ),
    );
    common::fresh_memory_baseline();
    let (rss0, _) = rss_kb();
    match snapshot_cost(&hq, &users[0].0.name, &users[0].1).await {
        Ok((ms, bytes)) => {
            let (_, peak) = rss_kb();
            scan.snapshot_ms = ms;
            scan.snapshot_mb = bytes as f64 / 1e6;
            scan.snapshot_peak_mb = peak as f64 / 1024.0;
            post.insert(
                "GET /api/snapshot (what a `reset` makes every browser do; read through a read-only connection beside the writer)".into(),
                format!(
                    "{ms:.0} ms, {:.1} MB of JSON; HQ peak RSS during it {} MB (from {} MB)",
                    bytes as f64 / 1e6,
                    peak / 1024,
                    rss0 / 1024
                ),
            );
        }
        Err(e) => {
            post.insert("GET /api/snapshot".into(), format!("failed: {e}"));
        }
    }
    hq.shutdown().await;

    let warm = samples
        .iter()
        .find(|s| s.t >= opts.warmup.as_secs_f64())
        .or(samples.first())
        .map(|s| s.rss_kb)
        .unwrap_or(rss_start_kb);
    let rss_max_kb = samples.iter().map(|s| s.rss_kb).max().unwrap_or(0);
    let lock_wait = lock_hist.lock().unwrap().clone();
    Ok(IngestResult {
        opts: opts.clone(),
        samples,
        window_s,
        written,
        entries_written,
        applied_in_window,
        lagged_events: lagged.load(Ordering::Relaxed),
        drain_s,
        hq_cpu_window,
        hq_bytes_window,
        sites_cpu,
        browsers_cpu,
        machine_busy_window,
        lock_wait,
        latency,
        latency_windows,
        browser_clients,
        hub_events,
        post,
        scan,
        rss_start_kb,
        rss_ready_kb,
        rss_warm_kb: warm,
        rss_end_kb,
        rss_max_kb,
        rss_hwm_kb,
        site_durability: match opts.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        },
        load_before,
        load_after: common::loadavg(),
    })
}

/// Settings of the backlog (capacity) run.
#[derive(Clone, Debug)]
pub struct BacklogOpts {
    pub sites: usize,
    pub per_site: u64,
    pub clients: usize,
    pub users: usize,
    pub max: Duration,
}

/// What the backlog run measured.
pub struct BacklogResult {
    pub opts: BacklogOpts,
    pub written: u64,
    pub entries: u64,
    pub write_secs: f64,
    pub converge_s: Option<f64>,
    pub covered_entries: u64,
    pub applied: u64,
    pub hq_cpu: f64,
    pub busy: f64,
    pub rss_before_kb: u64,
    pub rss_after_kb: u64,
    pub browser_events: u64,
    pub browser_resets: u64,
    pub hub_events: u64,
}

/// HQ's apply capacity: the sites write a backlog while offline (not timed), then connect at
/// once; time until HQ covers every write, with the dashboard clients connected. The write
/// side costs nothing during the measurement, so this is an upper bound of what HQ can apply
/// (large batches, few commits), not a sustained rate.
pub async fn run_backlog(opts: &BacklogOpts, dir: PathBuf) -> anyhow::Result<BacklogResult> {
    let names: Vec<String> = (0..opts.sites).map(site_name).collect();
    let pki_dir = common::deployment(&dir, &names)?;
    let users = common::users(opts.users)?;
    let hq = common::start_hq(
        &dir.join("hq"),
        &pki_dir,
        users.iter().map(|(u, _)| u.clone()).collect(),
    )
    .await?;
    let applied = Arc::new(AtomicU64::new(0));
    {
        let mut rx = hq.store.lock().unwrap().subscribe();
        let applied = applied.clone();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.recv().await {
                    Ok(c) if c.via.is_some() && !c.collection.starts_with('$') => {
                        applied.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        applied.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }
    let user_arg = users
        .iter()
        .map(|(u, p)| format!("{}:{}", u.name, p))
        .collect::<Vec<_>>()
        .join(",");
    let mut browsers = if opts.clients > 0 {
        let mut b = Kid::spawn(
            "browsers",
            &[
                "--role".into(),
                "browsers".into(),
                "--http".into(),
                hq.http_addr().to_string(),
                "--clients".into(),
                opts.clients.to_string(),
                "--users".into(),
                user_arg,
            ],
        )?;
        b.expect("ready", Duration::from_secs(600)).await?;
        Some(b)
    } else {
        None
    };
    eprintln!(
        "backlog: writing {} records at each of {} sites (offline)",
        opts.per_site, opts.sites
    );
    let mut sites = Kid::spawn(
        "sites",
        &[
            "--role".into(),
            "sites".into(),
            "--hq-addr".into(),
            hq.sync_addr().to_string(),
            "--pki".into(),
            pki_dir.display().to_string(),
            "--data".into(),
            dir.join("sites").display().to_string(),
            "--sites".into(),
            opts.sites.to_string(),
            "--backlog".into(),
            opts.per_site.to_string(),
        ],
    )?;
    let ready = sites.expect("ready", Duration::from_secs(3600)).await?;
    let seqs = common::seqs_from(&ready);
    let entries: u64 = seqs.values().map(|s| s.entries()).sum();
    let (rss_before_kb, _) = rss_kb();
    let (cpu0, busy0, a0) = (
        cpu_secs("self"),
        common::machine_busy_secs(),
        applied.load(Ordering::Relaxed),
    );
    eprintln!(
        "backlog: {} records written in {:.1} s; connecting",
        ready["written"], ready["write_secs"]
    );
    let t0 = Instant::now();
    sites.say("go")?;
    let mut covered_entries;
    let converge_s = loop {
        let all = {
            let s = hq.store.lock().unwrap();
            let vv = s.version_vector();
            covered_entries = seqs
                .iter()
                .map(|(k, seq)| SiteSeq::reach(vv, k).min(seq.entries()))
                .sum();
            seqs.iter().all(|(k, seq)| seq.covered_by(vv, k))
        };
        if all {
            break Some(t0.elapsed().as_secs_f64());
        }
        if t0.elapsed() > opts.max {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let hq_cpu = cpu_secs("self") - cpu0;
    let busy = common::machine_busy_secs() - busy0;
    let applied_n = applied.load(Ordering::Relaxed) - a0;
    let (rss_after_kb, _) = rss_kb();
    eprintln!("backlog: converged {converge_s:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let result = match browsers.as_mut() {
        Some(b) => {
            b.say("stop")?;
            b.expect("result", Duration::from_secs(120)).await?
        }
        None => json!({}),
    };
    sites.say("quit")?;
    let _ = sites.expect("exit", Duration::from_secs(120)).await;
    if let Some(b) = browsers {
        b.finish(Duration::from_secs(10));
    }
    sites.finish(Duration::from_secs(10));
    hq.shutdown().await;
    let clients = result["clients"].as_array().cloned().unwrap_or_default();
    let sum = |k: &str| {
        clients
            .iter()
            .map(|c| c[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let hub_events = clients
        .iter()
        .map(|c| {
            let (f, l) = (
                c["first_id"].as_u64().unwrap_or(0),
                c["last_id"].as_u64().unwrap_or(0),
            );
            if f == 0 {
                0
            } else {
                l - f + 1
            }
        })
        .max()
        .unwrap_or(0);
    Ok(BacklogResult {
        opts: opts.clone(),
        written: ready["written"].as_u64().unwrap_or(0),
        entries,
        write_secs: ready["write_secs"].as_f64().unwrap_or(0.0),
        converge_s,
        covered_entries,
        applied: applied_n,
        hq_cpu,
        busy,
        rss_before_kb,
        rss_after_kb,
        browser_events: sum("events"),
        browser_resets: sum("resets") + sum("client_resets"),
        hub_events,
    })
}

/// Logs in and times one `/api/snapshot`.
async fn snapshot_cost(
    hq: &mizugiwa_command::runtime::Runtime,
    user: &str,
    password: &str,
) -> anyhow::Result<(f64, usize)> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let base = format!("http://{}", hq.http_addr());
    let token = login(&client, &base, user, password).await?;
    let t = Instant::now();
    let body = client
        .get(format!("{base}/api/snapshot"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    Ok((t.elapsed().as_secs_f64() * 1e3, body.len()))
}

async fn login(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<String> {
    let resp: Json = client
        .post(format!("{base}/api/login"))
        .json(&json!({ "user": user, "password": password }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    resp["token"]
        .as_str()
        .map(str::to_owned)
        .context("login answered without a token")
}

// ---------------------------------------------------------------------------------------------
// --role sites

/// Arguments of the sites role.
pub struct SitesArgs {
    pub hq_addr: std::net::SocketAddr,
    pub pki: PathBuf,
    pub data: PathBuf,
    pub sites: usize,
    pub rate: u64,
    pub duration: Duration,
    pub threads: usize,
    pub durability: Durability,
    /// Backlog mode: write this many records per site before connecting, connect on "go".
    pub backlog: u64,
}

/// Opens a site replica with the deployment's schema.
pub fn open_site(data: &std::path::Path, name: &str, durability: Durability) -> Store {
    let mut cfg = StoreConfig::new(name);
    cfg.durability = durability;
    cfg.interest = common::site_interest();
    Store::open(
        data.join(format!("{name}.db")),
        records::schema(),
        Arc::new(SystemClock::new()),
        cfg,
    )
    .expect("open site store")
}

/// Starts a site's sync driver dialling HQ.
pub fn start_site_driver(
    store: Arc<Mutex<Store>>,
    pki_dir: &std::path::Path,
    name: &str,
    hq: std::net::SocketAddr,
    ca: &rustls::pki_types::CertificateDer<'static>,
) -> anyhow::Result<SyncHandle> {
    let identity = NodeIdentity::load_dir(pki_dir, name)?;
    let cfg = SyncConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![PeerAddr {
            name: "hq".into(),
            addr: hq,
        }],
    );
    Ok(driver::start(store, &identity, ca.clone(), cfg)?)
}

/// One site write: 60% a vessel position (one of 200 vessels per site, or a new vessel each
/// time when `unique`), 25% a new detection, 15% a new alert. The timestamp field is the wall
/// time just before the put.
pub fn write_record(
    store: &Mutex<Store>,
    site: &str,
    site_idx: usize,
    k: u64,
    rng: &mut Rng,
    unique: bool,
) {
    let r = rng.unit();
    let lat = 33.0 + rng.unit() * 3.0;
    let lon = 129.0 + rng.unit() * 3.0;
    let now = Value::Int(now_ms() as i64);
    let site_v: Value = site.to_owned().into();
    if r < 0.60 {
        let vessel = rng.next() % 200;
        let mmsi = if unique {
            format!("{site}-{k}")
        } else {
            format!("{}", 431_000_000 + site_idx * 1000 + vessel as usize)
        };
        let ops = [
            ("lat", FieldOp::Set(Value::Float(lat))),
            ("lon", FieldOp::Set(Value::Float(lon))),
            ("sog_kn", FieldOp::Set(Value::Float(rng.unit() * 20.0))),
            ("cog_deg", FieldOp::Set(Value::Float(rng.unit() * 360.0))),
            ("site", FieldOp::Set(site_v)),
            ("at_ms", FieldOp::Set(now)),
        ];
        store.lock().unwrap().put(VESSELS, &mmsi, &ops).unwrap();
    } else if r < 0.85 {
        let id = format!("{site}-det-{k}");
        let ops = [
            ("site", FieldOp::Set(site_v)),
            ("source", FieldOp::Set("sar".into())),
            ("lat", FieldOp::Set(Value::Float(lat))),
            ("lon", FieldOp::Set(Value::Float(lon))),
            (
                "length_m",
                FieldOp::Set(Value::Float(20.0 + rng.unit() * 200.0)),
            ),
            ("at_ms", FieldOp::Set(now)),
        ];
        store.lock().unwrap().put(DETECTIONS, &id, &ops).unwrap();
    } else {
        let id = format!("{site}-{k:010}");
        let ops = [
            (
                "title",
                FieldOp::Set(format!("Dark vessel {k} off {site}").into()),
            ),
            ("kind", FieldOp::Set("dark_vessel".into())),
            ("severity", FieldOp::Set("high".into())),
            ("site", FieldOp::Set(site_v)),
            ("lat", FieldOp::Set(Value::Float(lat))),
            ("lon", FieldOp::Set(Value::Float(lon))),
            ("raised_ms", FieldOp::Set(now)),
            ("status", FieldOp::Advance("new".into())),
            (
                "detail",
                FieldOp::Set(Value::Json(
                    json!({"gap_s": 1800, "last_mmsi": 431_000_000 + k % 1000}).to_string(),
                )),
            ),
        ];
        store.lock().unwrap().put(ALERTS, &id, &ops).unwrap();
    }
}

pub fn role_sites(a: SitesArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        std::fs::create_dir_all(&a.data)?;
        let ca = pki::load_ca(&a.pki.join("ca.crt"))?;
        let names: Vec<String> = (0..a.sites).map(site_name).collect();
        let stores: Vec<Arc<Mutex<Store>>> = names
            .iter()
            .map(|n| Arc::new(Mutex::new(open_site(&a.data, n, a.durability))))
            .collect();
        let mut handles = Vec::new();
        if a.backlog > 0 {
            // Written while offline, one thread per site; the drivers start on "go".
            let t = Instant::now();
            let writers: Vec<_> = names
                .iter()
                .zip(&stores)
                .enumerate()
                .map(|(i, (n, s))| {
                    let (n, s, count) = (n.clone(), s.clone(), a.backlog);
                    std::thread::spawn(move || {
                        let mut rng = Rng(0x5eed ^ (i as u64 + 1));
                        for k in 0..count {
                            write_record(&s, &n, i, k, &mut rng, true);
                        }
                    })
                })
                .collect();
            for w in writers {
                let _ = w.join();
            }
            let secs = t.elapsed().as_secs_f64();
            let mut cmds = common::stdin_commands();
            say(json!({"ready": true, "written": a.backlog * a.sites as u64, "write_secs": secs, "seqs": common::seqs_json(&names, &stores)}));
            while let Some(c) = cmds.recv().await {
                match c.as_str() {
                    "go" => {
                        for (n, s) in names.iter().zip(&stores) {
                            handles.push(start_site_driver(s.clone(), &a.pki, n, a.hq_addr, &ca)?);
                        }
                        say(json!({"connected": true}));
                    }
                    "quit" => break,
                    _ => {}
                }
            }
            futures_util::future::join_all(handles.into_iter().map(|h| h.shutdown())).await;
            say(json!({"exit": true, "cpu_s": cpu_secs("self")}));
            return Ok(());
        }
        for (n, s) in names.iter().zip(&stores) {
            handles.push(start_site_driver(s.clone(), &a.pki, n, a.hq_addr, &ca)?);
        }
        let mut cmds = common::stdin_commands();
        say(json!({"ready": true}));
        while let Some(c) = cmds.recv().await {
            if c == "go" {
                break;
            }
            if c == "quit" {
                return Ok(());
            }
        }
        let written = Arc::new(AtomicU64::new(0));
        let threads = a.threads.clamp(1, a.sites);
        let per_thread = a.rate as f64 / threads as f64;
        let start = Instant::now();
        let mut writers = Vec::new();
        for t in 0..threads {
            let mine: Vec<(usize, String, Arc<Mutex<Store>>)> = (0..a.sites)
                .filter(|i| i % threads == t)
                .map(|i| (i, names[i].clone(), stores[i].clone()))
                .collect();
            let (written, duration) = (written.clone(), a.duration);
            writers.push(std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1));
                let mut n = 0u64;
                loop {
                    let el = start.elapsed();
                    if el >= duration {
                        break;
                    }
                    let due = if per_thread > 0.0 {
                        (el.as_secs_f64() * per_thread) as u64
                    } else {
                        n + 64
                    };
                    if n >= due {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    for _ in 0..(due - n).min(64) {
                        let (idx, name, store) = &mine[(n % mine.len() as u64) as usize];
                        write_record(store, name, *idx, n, &mut rng, false);
                        n += 1;
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        while writers.iter().any(|w| !w.is_finished()) {
            tick.tick().await;
            say(json!({"t": start.elapsed().as_secs_f64(), "written": written.load(Ordering::Relaxed)}));
        }
        for w in writers {
            let _ = w.join();
        }
        let secs = start.elapsed().as_secs_f64();
        let seqs = common::seqs_json(&names, &stores);
        say(json!({"done": true, "written": written.load(Ordering::Relaxed), "secs": secs, "seqs": seqs}));
        while let Some(c) = cmds.recv().await {
            if c == "quit" {
                break;
            }
        }
        futures_util::future::join_all(handles.into_iter().map(|h| h.shutdown())).await;
        say(json!({"exit": true, "cpu_s": cpu_secs("self")}));
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// --role browsers

/// Arguments of the browsers role.
pub struct BrowsersArgs {
    pub http: String,
    pub clients: usize,
    pub users: Vec<(String, String)>,
    pub window: Duration,
}

#[derive(Default)]
struct ClientStats {
    events: u64,
    records: u64,
    timed: u64,
    /// Numbered `reset`s: the hub's pump lagged behind the store (every client gets them).
    resets: u64,
    /// Unnumbered `reset`s: this client's stream lagged behind the hub.
    client_resets: u64,
    /// Events skipped after a client reset.
    skipped: u64,
    lagging: bool,
    /// Id jumps without a reset before them (should be none).
    gaps: u64,
    missed: u64,
    bytes: u64,
    first_id: u64,
    last_id: u64,
    latency: Hist,
    windows: Vec<Hist>,
    error: Option<String>,
}

/// The wall-ms timestamp a record event carries (`at_ms` or `raised_ms`).
fn stamp_of(data: &[u8]) -> Option<u64> {
    for key in [&b"\"at_ms\":"[..], &b"\"raised_ms\":"[..]] {
        if let Some(p) = find(data, key) {
            let digits = &data[p + key.len()..];
            let end = digits
                .iter()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(digits.len());
            return std::str::from_utf8(&digits[..end]).ok()?.parse().ok();
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn browse(
    base: String,
    token: String,
    stats: Arc<Mutex<ClientStats>>,
    ready: tokio::sync::mpsc::Sender<()>,
    t0: Instant,
    window: Duration,
) {
    let client = match reqwest::Client::builder().no_proxy().build() {
        Ok(c) => c,
        Err(e) => {
            stats.lock().unwrap().error = Some(e.to_string());
            return;
        }
    };
    let resp = client
        .get(format!("{base}/api/events"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .and_then(|r| r.error_for_status());
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            stats.lock().unwrap().error = Some(e.to_string());
            let _ = ready.send(()).await;
            return;
        }
    };
    let _ = ready.send(()).await;
    let mut body = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                stats.lock().unwrap().error = Some(e.to_string());
                return;
            }
        };
        buf.extend_from_slice(&chunk);
        let now = now_ms();
        let widx = (t0.elapsed().as_secs_f64() / window.as_secs_f64()) as usize;
        let mut st = stats.lock().unwrap();
        st.bytes += chunk.len() as u64;
        let mut consumed = 0;
        while let Some(end) = find(&buf[consumed..], b"\n\n") {
            let block = &buf[consumed..consumed + end];
            consumed += end + 2;
            let (mut id, mut kind, mut data): (Option<u64>, &[u8], &[u8]) = (None, b"", b"");
            for line in block.split(|b| *b == b'\n') {
                let value = |prefix: usize| {
                    let v = &line[prefix..];
                    v.strip_prefix(b" ").unwrap_or(v)
                };
                if line.starts_with(b"id:") {
                    id = std::str::from_utf8(value(3))
                        .ok()
                        .and_then(|s| s.parse().ok());
                } else if line.starts_with(b"event:") {
                    kind = value(6);
                } else if line.starts_with(b"data:") {
                    data = value(5);
                }
            }
            if kind.is_empty() && data.is_empty() {
                continue; // keep-alive comment
            }
            st.events += 1;
            if kind == b"reset" && id.is_none() {
                // This client's stream lagged behind the hub: events were skipped (told).
                st.client_resets += 1;
                st.lagging = true;
                continue;
            }
            if let Some(id) = id {
                if st.first_id == 0 {
                    st.first_id = id;
                } else if id > st.last_id + 1 {
                    if st.lagging {
                        st.skipped += id - st.last_id - 1;
                    } else {
                        st.gaps += 1;
                        st.missed += id - st.last_id - 1;
                    }
                }
                st.lagging = false;
                st.last_id = st.last_id.max(id);
            }
            if kind == b"reset" {
                // A numbered reset: the hub's pump fell behind the store's changes.
                st.resets += 1;
                continue;
            }
            if kind == b"record" {
                st.records += 1;
                if let Some(at) = stamp_of(data) {
                    let lat = now.saturating_sub(at);
                    st.timed += 1;
                    st.latency.record(lat);
                    if st.windows.len() <= widx {
                        st.windows.resize(widx + 1, Hist::default());
                    }
                    st.windows[widx].record(lat);
                }
            }
        }
        buf.drain(..consumed);
    }
    stats.lock().unwrap().error = Some("stream ended".into());
}

pub fn role_browsers(a: BrowsersArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let base = format!("http://{}", a.http);
        let client = reqwest::Client::builder().no_proxy().build()?;
        let t = Instant::now();
        let mut tokens = Vec::new();
        for c in 0..a.clients {
            let (user, password) = &a.users[c % a.users.len()];
            tokens.push(login(&client, &base, user, password).await?);
        }
        let login_ms = t.elapsed().as_secs_f64() * 1e3;
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(a.clients);
        let t0 = Instant::now();
        let stats: Vec<Arc<Mutex<ClientStats>>> = (0..a.clients)
            .map(|_| Arc::new(Mutex::new(ClientStats::default())))
            .collect();
        for (token, st) in tokens.into_iter().zip(&stats) {
            tokio::spawn(browse(
                base.clone(),
                token,
                st.clone(),
                ready_tx.clone(),
                t0,
                a.window,
            ));
        }
        for _ in 0..a.clients {
            ready_rx.recv().await;
        }
        let errors: Vec<String> = stats
            .iter()
            .filter_map(|s| s.lock().unwrap().error.clone())
            .collect();
        say(json!({"ready": true, "logins": a.clients, "login_ms": login_ms, "errors": errors}));
        let mut cmds = common::stdin_commands();
        while let Some(c) = cmds.recv().await {
            if c == "stop" || c == "quit" {
                break;
            }
        }
        let mut all = Hist::default();
        let mut windows: Vec<Hist> = Vec::new();
        let mut clients = Vec::new();
        for s in &stats {
            let s = s.lock().unwrap();
            all.merge(&s.latency);
            for (i, w) in s.windows.iter().enumerate() {
                if windows.len() <= i {
                    windows.resize(i + 1, Hist::default());
                }
                windows[i].merge(w);
            }
            clients.push(json!({
                "events": s.events, "records": s.records, "timed": s.timed, "resets": s.resets,
                "client_resets": s.client_resets, "skipped": s.skipped,
                "gaps": s.gaps, "missed": s.missed, "bytes": s.bytes,
                "first_id": s.first_id, "last_id": s.last_id,
                "p50_ms": s.latency.quantile(0.5), "p99_ms": s.latency.quantile(0.99),
                "max_ms": s.latency.max(), "error": s.error,
            }));
        }
        say(json!({
            "result": true,
            "latency": all.to_json(),
            "windows": windows.iter().map(Hist::to_json).collect::<Vec<_>>(),
            "clients": clients,
            "cpu_s": cpu_secs("self"),
        }));
        Ok(())
    })
}
