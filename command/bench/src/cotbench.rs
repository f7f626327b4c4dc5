//! Scenario 2: CoT ingest, pytak → taky → our gateway → `cot` records, with taky's own relay
//! rate under the same pytak load as the anchor, measured in the same run.
//!
//! taky 0.10 (the project's `.venv`) runs as a child process on a free loopback port, plain
//! TCP, in-memory persistence, log level `warning`. `pytak_load.py` (next to this crate's
//! Cargo.toml) sends CoT built by pytak as fast as it can for a fixed time. A raw TCP receiver
//! (ours, counting `</event>`) is connected to taky in both phases:
//!
//! * phase A (anchor): pytak → taky → raw receiver. taky's relay rate on its own.
//! * phase B: pytak → taky → raw receiver and our gateway (`gateway::start` with a real
//!   `Store`, synchronous=FULL as deployed); records stored per second, counted from the
//!   store's change events.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use mizugiwa_command::gateway::{self, TakSection};
use mizugiwa_command::records;
use mizugiwa_sync::{Store, StoreConfig, SystemClock};
use serde_json::Value as Json;
use tokio::io::AsyncReadExt;

use crate::common::{cpu_secs, Kid};

/// Settings of the CoT scenario.
#[derive(Clone, Debug)]
pub struct CotOpts {
    pub duration: Duration,
    pub connections: usize,
    pub uids: usize,
    pub venv: PathBuf,
    pub script: PathBuf,
}

/// One phase's figures.
#[derive(Clone, Debug, Default)]
pub struct Phase {
    pub sent: u64,
    pub send_secs: f64,
    /// Events taky delivered to the raw receiver.
    pub relayed: u64,
    /// First to last event at the raw receiver.
    pub relay_secs: f64,
    /// Records our gateway stored (phase B).
    pub stored: u64,
    pub store_secs: f64,
    /// Stored during the send window only.
    pub stored_in_window: u64,
    /// After pytak stopped, until our count stopped moving.
    pub drain_s: f64,
    pub gateway_received: u64,
    pub gateway_malformed: u64,
    pub gateway_stale: u64,
    pub taky_cpu: f64,
    pub pytak_cpu: f64,
    pub our_cpu: f64,
    pub taky_rss_kb: u64,
    /// Persisted events taky replayed to our gateway on connection (not counted).
    pub replayed: u64,
}

/// Both phases.
pub struct CotResult {
    pub opts: CotOpts,
    pub anchor: Phase,
    pub ours: Phase,
    pub taky_version: String,
    pub pytak_version: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Taky {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Taky {
    fn start(venv: &Path) -> anyhow::Result<Taky> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let conf = dir.path().join("taky.conf");
        std::fs::write(
            &conf,
            format!(
                "[taky]\nhostname = localhost\nnode_id = mizugiwa-bench\nbind_ip = 127.0.0.1\n\
                 root_dir = {root}\n\n[cot_server]\nport = {port}\n\n\
                 [dp_server]\nupload_path = {root}/dp-user\n\n[ssl]\nenabled = false\n",
                root = dir.path().display()
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("taky.log"))?;
        let child = Command::new(venv.join("bin/taky"))
            .arg("-c")
            .arg(&conf)
            .args(["-l", "warning"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting taky")?;
        let mut taky = Taky {
            child,
            port,
            _dir: dir,
        };
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(s)) = taky.child.try_wait() {
                anyhow::bail!("taky exited: {s}");
            }
            anyhow::ensure!(t.elapsed() < Duration::from_secs(30), "taky did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(taky)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn cpu(&self) -> f64 {
        cpu_secs(&self.child.id().to_string())
    }

    fn rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Taky {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counts events taky delivers on a plain TCP connection: occurrences of `</event>`.
#[derive(Default)]
struct Counter {
    n: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

impl Counter {
    fn add(&self, k: u64) {
        if k == 0 {
            return;
        }
        let now = Instant::now();
        self.first.lock().unwrap().get_or_insert(now);
        *self.last.lock().unwrap() = Some(now);
        self.n.fetch_add(k, Ordering::Relaxed);
    }
    fn reset(&self) {
        self.n.store(0, Ordering::Relaxed);
        *self.first.lock().unwrap() = None;
        *self.last.lock().unwrap() = None;
    }
    fn get(&self) -> u64 {
        self.n.load(Ordering::Relaxed)
    }
    fn span(&self) -> f64 {
        match (*self.first.lock().unwrap(), *self.last.lock().unwrap()) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => 0.0,
        }
    }
}

async fn raw_receiver(addr: String, counter: Arc<Counter>) -> anyhow::Result<()> {
    let mut conn = tokio::net::TcpStream::connect(&addr).await?;
    let mut buf = vec![0u8; 256 * 1024];
    let needle = b"</event>";
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        // Count across read boundaries: keep the last few bytes of the previous read.
        let mut joined = std::mem::take(&mut tail);
        joined.extend_from_slice(&buf[..n]);
        let count = joined.windows(needle.len()).filter(|w| w == needle).count() as u64;
        counter.add(count);
        let keep = joined.len().min(needle.len() - 1);
        tail = joined[joined.len() - keep..].to_vec();
    }
}

/// Runs pytak_load.py to the end; returns its summary line and its CPU time.
async fn pytak_load(opts: &CotOpts, taky: &Taky) -> anyhow::Result<(Json, f64)> {
    let mut kid = Kid::spawn_program(
        "pytak",
        &opts.venv.join("bin/python"),
        &[
            opts.script.display().to_string(),
            format!("tcp://{}", taky.addr()),
            "--duration".into(),
            opts.duration.as_secs_f64().to_string(),
            "--connections".into(),
            opts.connections.to_string(),
            "--uids".into(),
            opts.uids.to_string(),
        ],
    )?;
    kid.expect("ready", Duration::from_secs(60)).await?;
    let pid = kid.pid().to_string();
    let mut cpu = 0.0;
    let summary = loop {
        let c = cpu_secs(&pid);
        if c > 0.0 {
            cpu = c;
        }
        match tokio::time::timeout(
            Duration::from_millis(500),
            kid.expect("rate", Duration::from_secs(3600)),
        )
        .await
        {
            Ok(v) => break v?,
            Err(_) => continue,
        }
    };
    kid.finish(Duration::from_secs(10));
    Ok((summary, cpu))
}

/// Waits until `f()` stops changing for `quiet`, at most `max`; returns the time it last moved.
async fn settle(f: impl Fn() -> u64, quiet: Duration, max: Duration) -> f64 {
    let t = Instant::now();
    let (mut last, mut moved) = (f(), Instant::now());
    while t.elapsed() < max {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let v = f();
        if v != last {
            last = v;
            moved = Instant::now();
        } else if moved.elapsed() >= quiet {
            break;
        }
    }
    (moved - t).as_secs_f64()
}

/// The version of a Python distribution installed in the virtual environment.
fn dist_version(venv: &Path, dist: &str) -> String {
    let lib = venv.join("lib");
    std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|py| {
            std::fs::read_dir(py.path().join("site-packages"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(&format!("{dist}-"))
                .and_then(|r| r.strip_suffix(".dist-info"))
                .map(str::to_owned)
        })
        .next()
        .unwrap_or_else(|| "?".into())
}

pub async fn run(opts: &CotOpts, dir: PathBuf) -> anyhow::Result<CotResult> {
    let taky = Taky::start(&opts.venv)?;
    let counter = Arc::new(Counter::default());
    let raw = tokio::spawn(raw_receiver(taky.addr(), counter.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Phase A: taky alone relays to the raw receiver.
    eprintln!("cot: phase A (taky → raw receiver) for {:?}", opts.duration);
    let taky_cpu0 = taky.cpu();
    counter.reset();
    let (summary, pytak_cpu) = pytak_load(opts, &taky).await?;
    settle(
        || counter.get(),
        Duration::from_secs(2),
        Duration::from_secs(120),
    )
    .await;
    let anchor = Phase {
        sent: summary["sent"].as_u64().unwrap_or(0),
        send_secs: summary["seconds"].as_f64().unwrap_or(0.0),
        relayed: counter.get(),
        relay_secs: counter.span(),
        taky_cpu: taky.cpu() - taky_cpu0,
        pytak_cpu,
        taky_rss_kb: taky.rss_kb(),
        ..Phase::default()
    };
    let pytak_version = summary["pytak"].as_str().unwrap_or("?").to_owned();
    eprintln!("cot: phase A {anchor:?}");

    // Phase B: the same load, our gateway connected too.
    std::fs::create_dir_all(&dir)?;
    let store = Store::open(
        dir.join("gateway.db"),
        records::schema(),
        Arc::new(SystemClock::new()),
        StoreConfig::new("hq"),
    )?;
    let store = Arc::new(Mutex::new(store));
    let stored = Arc::new(AtomicU64::new(0));
    let stored_first = Arc::new(Mutex::new(None::<Instant>));
    let stored_last = Arc::new(Mutex::new(None::<Instant>));
    {
        let mut rx = store.lock().unwrap().subscribe();
        let (stored, first, last) = (stored.clone(), stored_first.clone(), stored_last.clone());
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let k = match rx.recv().await {
                    Ok(c) if c.collection == records::COT => 1,
                    Ok(_) => 0,
                    Err(RecvError::Lagged(n)) => n,
                    Err(RecvError::Closed) => break,
                };
                if k > 0 {
                    let now = Instant::now();
                    first.lock().unwrap().get_or_insert(now);
                    *last.lock().unwrap() = Some(now);
                    stored.fetch_add(k, Ordering::Relaxed);
                }
            }
        });
    }
    let gw = gateway::start(
        store.clone(),
        &TakSection {
            addr: taky.addr(),
            tls: None,
            republish_secs: 60,
        },
    );
    let t = Instant::now();
    while gw.stats.snapshot().connects == 0 {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(30),
            "gateway did not connect to taky"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // taky replays its persisted events (phase A's uids) to a new client: let that pass, then
    // count from zero.
    settle(
        || stored.load(Ordering::Relaxed),
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await;
    let replayed = stored.swap(0, Ordering::Relaxed);
    *stored_first.lock().unwrap() = None;
    *stored_last.lock().unwrap() = None;
    let received0 = gw.stats.snapshot().received;
    eprintln!(
        "cot: phase B (taky → raw receiver + our gateway) for {:?}",
        opts.duration
    );
    counter.reset();
    let taky_cpu0 = taky.cpu();
    let our_cpu0 = cpu_secs("self");
    let (summary, pytak_cpu) = pytak_load(opts, &taky).await?;
    let stored_in_window = stored.load(Ordering::Relaxed);
    let moved = settle(
        || stored.load(Ordering::Relaxed),
        Duration::from_secs(3),
        Duration::from_secs(600),
    )
    .await;
    settle(
        || counter.get(),
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await;
    let span = |a: &Mutex<Option<Instant>>, b: &Mutex<Option<Instant>>| match (
        *a.lock().unwrap(),
        *b.lock().unwrap(),
    ) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let gs = gw.stats.snapshot();
    let ours = Phase {
        sent: summary["sent"].as_u64().unwrap_or(0),
        send_secs: summary["seconds"].as_f64().unwrap_or(0.0),
        relayed: counter.get(),
        relay_secs: counter.span(),
        stored: stored.load(Ordering::Relaxed),
        store_secs: span(&stored_first, &stored_last),
        stored_in_window,
        drain_s: moved,
        gateway_received: gs.received - received0,
        replayed,
        gateway_malformed: gs.malformed,
        gateway_stale: gs.stale,
        taky_cpu: taky.cpu() - taky_cpu0,
        pytak_cpu,
        our_cpu: cpu_secs("self") - our_cpu0,
        taky_rss_kb: taky.rss_kb(),
    };
    eprintln!("cot: phase B {ours:?}");
    gw.shutdown().await;
    raw.abort();
    drop(taky);
    Ok(CotResult {
        opts: opts.clone(),
        anchor,
        ours,
        taky_version: dist_version(&opts.venv, "taky"),
        pytak_version,
    })
}
