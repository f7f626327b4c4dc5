//! TAK interop: taky (PyPI) is the TAK server, pytak the other TAK client, both from the
//! project's virtual environment (`scripts/install-deps.sh`, which `make test` runs, installs
//! them from `requirements-interop.txt`).
//!
//! Each test starts its own taky on a free loopback port with a configuration in a temporary
//! folder (plain TCP; for TLS, a site made by `takyctl setup` and a client certificate from
//! `takyctl build_client`), and stops it when done.
//!
//! The virtual environment is `$MIZUGIWA_VENV`, else `<workspace>/.venv`. Its absence fails
//! the tests: an interop test that skips silently proves nothing.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mizugiwa_command::cot::{self, CotEvent};
use mizugiwa_command::tak::{self, now_ms, TakClient, TakConfig, TakStats, TakTls};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Generous: the machine is small and busy (two cores, parallel builds).
const WAIT: Duration = Duration::from_secs(30);

fn venv() -> PathBuf {
    match std::env::var_os("MIZUGIWA_VENV") {
        Some(v) => PathBuf::from(v),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"),
    }
}

/// A program of the virtual environment; panics with what to do when it is missing.
fn venv_bin(name: &str) -> PathBuf {
    let path = venv().join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: the TAK interop tests need taky and pytak in the virtual environment \
         {} (run scripts/install-deps.sh, which `make test` does, or set MIZUGIWA_VENV)",
        path.display(),
        venv().display()
    );
    path
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tak/pytak_client.py")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The PEM files of a taky TLS site.
struct TakyCerts {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A running taky; stopped (and its folder removed) on drop.
struct Taky {
    child: Child,
    port: u16,
    certs: Option<TakyCerts>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Taky {
    fn start_tcp() -> Taky {
        Self::start_tcp_on(free_port())
    }

    fn start_tcp_on(port: u16) -> Taky {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("taky.conf");
        // No TLS; the management socket and data package folder live in the temporary folder.
        std::fs::write(
            &conf,
            format!(
                "[taky]\nhostname = localhost\nnode_id = mizugiwa-test\nbind_ip = 127.0.0.1\n\
                 root_dir = {root}\n\n[cot_server]\nport = {port}\n\n\
                 [dp_server]\nupload_path = {root}/dp-user\n\n[ssl]\nenabled = false\n",
                root = dir.path().display()
            ),
        )
        .unwrap();
        Self::launch(dir, &conf, port, None)
    }

    /// taky with TLS as its own tools set it up: `takyctl setup` makes the site's CA and
    /// server certificate (for `localhost`), `takyctl build_client --dump_pem` a client
    /// certificate signed by that CA. taky requires client certificates by default.
    fn start_tls() -> Taky {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        let port = free_port();
        run_ok(
            Command::new(venv_bin("takyctl"))
                .args(["setup", "--host", "localhost", "--public-ip", "127.0.0.1"])
                .args(["--bind-ip", "127.0.0.1"])
                .arg(&site),
        );
        let conf = site.join("taky.conf");
        let text = std::fs::read_to_string(&conf).unwrap();
        assert!(
            text.contains("port = 8089"),
            "unexpected taky.conf:\n{text}"
        );
        std::fs::write(
            &conf,
            text.replace("port = 8089", &format!("port = {port}")),
        )
        .unwrap();
        run_ok(
            Command::new(venv_bin("takyctl"))
                .arg("-c")
                .arg(&conf)
                .args(["build_client", "--dump_pem", "mizugiwa"])
                .current_dir(&site),
        );
        let find = |ext: &str| {
            std::fs::read_dir(&site)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| {
                    let name = p.file_name().unwrap().to_string_lossy();
                    name.starts_with("mizugiwa-") && name.ends_with(ext)
                })
                .unwrap_or_else(|| panic!("takyctl build_client wrote no *{ext}"))
        };
        let certs = TakyCerts {
            ca: site.join("ssl/ca.crt"),
            cert: find(".crt"),
            key: find(".key"),
        };
        Self::launch(dir, &conf, port, Some(certs))
    }

    fn launch(dir: tempfile::TempDir, conf: &Path, port: u16, certs: Option<TakyCerts>) -> Taky {
        let log = dir.path().join("taky.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(venv_bin("taky"))
            .arg("-c")
            .arg(conf)
            .args(["-l", "debug"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("starting taky");
        let mut taky = Taky {
            child,
            port,
            certs,
            log,
            _dir: dir,
        };
        // Ready when its port accepts connections.
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = taky.child.try_wait() {
                panic!("taky exited ({status}):\n{}", taky.log());
            }
            assert!(
                Instant::now() < deadline,
                "taky did not listen:\n{}",
                taky.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        taky
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn config(&self) -> TakConfig {
        let mut config = match &self.certs {
            None => TakConfig::tcp(self.addr()),
            Some(c) => TakConfig::tls(
                self.addr(),
                TakTls {
                    ca_pem: c.ca.clone(),
                    cert_pem: c.cert.clone(),
                    key_pem: c.key.clone(),
                    server_name: Some("localhost".into()),
                },
            ),
        };
        config.connect_timeout = Duration::from_secs(10);
        config.backoff_min = Duration::from_millis(200);
        config.backoff_max = Duration::from_secs(1);
        config
    }

    /// pytak's COT_URL and TLS arguments for this server.
    fn pytak_args(&self) -> Vec<String> {
        match &self.certs {
            None => vec![format!("tcp://{}", self.addr())],
            Some(c) => vec![
                format!("tls://{}", self.addr()),
                "--cert".into(),
                c.cert.display().to_string(),
                "--key".into(),
                c.key.display().to_string(),
                "--ca".into(),
                c.ca.display().to_string(),
                "--server-name".into(),
                "localhost".into(),
            ],
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Taky {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- taky log ---\n{}", self.log());
        }
    }
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("running a taky tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `pytak_client.py`; its JSON lines arrive on a channel.
struct Pytak {
    child: Child,
    lines: mpsc::UnboundedReceiver<Value>,
    stderr: Arc<std::sync::Mutex<String>>,
}

impl Pytak {
    fn spawn(taky: &Taky, extra: &[&str]) -> Pytak {
        let mut child = Command::new(venv_bin("python"))
            .arg(script())
            .args(taky.pytak_args())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting pytak_client.py");
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value =
                    serde_json::from_str(&line).unwrap_or_else(|_| json!({ "not_json": line }));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let (err_pipe, sink) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Pytak {
            child,
            lines,
            stderr,
        }
    }

    /// The next line, or `None` when pytak exited (or `WAIT` passed).
    async fn next(&mut self) -> Option<Value> {
        tokio::time::timeout(WAIT, self.lines.recv())
            .await
            .ok()
            .flatten()
    }

    async fn ready(&mut self) {
        let line = self.next().await;
        assert_eq!(
            line,
            Some(json!({"ready": true})),
            "pytak did not connect; stderr:\n{}",
            self.stderr()
        );
    }

    /// Lines until the event `uid`; returns that event and the ones before it.
    async fn until_uid(&mut self, uid: &str) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        while let Some(line) = self.next().await {
            if line["uid"] == uid {
                return (line, before);
            }
            before.push(line);
        }
        panic!(
            "pytak never received {uid}; it got {before:#?}\nstderr:\n{}",
            self.stderr()
        );
    }

    /// Every line until pytak exits.
    async fn rest(&mut self) -> Vec<Value> {
        let mut all = Vec::new();
        while let Some(line) = self.next().await {
            all.push(line);
        }
        all
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Pytak {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Shows the gateway's logs (malformed events are `warn`ed) in a failing test's output.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "mizugiwa_command=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Waits until `client` receives the event `uid`; returns it.
async fn recv_uid(client: &mut TakClient, uid: &str) -> CotEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, client.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {uid}"))
            .unwrap_or_else(|| panic!("connection closed while waiting for {uid}"));
        if ev.uid == uid {
            return ev;
        }
    }
}

/// Waits until `f()` holds.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connects and waits until taky has registered the connection: our ping is answered with a
/// pong (which the client counts as ignored chatter).
async fn connect(taky: &Taky) -> TakClient {
    let mut client = TakClient::connect(&taky.config()).await.expect("connect");
    let before = client.stats().snapshot().ignored;
    client
        .send(&CotEvent::ping("mizugiwa-test-ping", now_ms()))
        .await
        .unwrap();
    let stats = client.stats().clone();
    eventually("taky answers our ping", || {
        stats.snapshot().ignored > before
    })
    .await;
    client
}

fn drone_event(id: &str, lat: f64, lon: f64) -> CotEvent {
    let fields = json!({"lat": lat, "lon": lon, "alt_m": 80.0, "heading_deg": 45.0,
                        "speed_mps": 12.0, "battery_pct": 71, "mode": "AUTO", "link": "ok",
                        "site": "tsushima", "at_ms": now_ms()});
    cot::event_for("drones", id, fields.as_object().unwrap(), now_ms()).unwrap()
}

fn assert_close(got: &Value, want: f64) {
    let got = got.as_f64().unwrap_or(f64::NAN);
    // taky re-serialises points with six decimals.
    assert!((got - want).abs() < 1e-6, "{got} != {want}");
}

#[tokio::test]
async fn our_cot_reaches_a_pytak_client() {
    init_tracing();
    let taky = Taky::start_tcp();
    let mut ours = connect(&taky).await;
    let ev = drone_event("d-7", 34.123456, 129.654321);

    // pytak says hello first; once that reaches us, taky routes to pytak too.
    let mut py = Pytak::spawn(
        &taky,
        &[
            "--send",
            "pytak-hello-a,1,1,a-f-G-U-C,hello",
            "--until",
            &ev.uid,
        ],
    );
    py.ready().await;
    recv_uid(&mut ours, "pytak-hello-a").await;

    ours.send(&ev).await.unwrap();
    let (got, _) = py.until_uid(&ev.uid).await;
    assert_eq!(got["type"], "a-f-A-M-F-Q");
    assert_eq!(got["callsign"], "d-7");
    assert_close(&got["lat"], 34.123456);
    assert_close(&got["lon"], 129.654321);
    // What pytak received is CoT our own parser accepts, with the same identity.
    let back = cot::parse(got["xml"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(back.uid, ev.uid);
    assert_eq!(back.stale_ms, ev.stale_ms);
    assert_eq!(back.remarks(), ev.remarks());
    assert_eq!(ours.stats().snapshot().sent, 2); // the ping and the drone
}

#[tokio::test]
async fn a_pytak_event_becomes_a_record() {
    init_tracing();
    let taky = Taky::start_tcp();
    let mut ours = connect(&taky).await;
    let mut py = Pytak::spawn(
        &taky,
        &[
            "--send",
            "ANDROID-pytak-b,35.45,139.65,a-f-G-U-C,Viper 1",
            "--listen",
            "3",
        ],
    );
    py.ready().await;

    let ev = recv_uid(&mut ours, "ANDROID-pytak-b").await;
    assert_eq!(ev.event_type, "a-f-G-U-C");
    assert_eq!(ev.callsign(), Some("Viper 1"));
    assert!(!ev.is_stale(now_ms()));
    let (collection, id, fields) = cot::record_for(&ev);
    assert_eq!(collection, "cot");
    assert_eq!(id, "ANDROID-pytak-b");
    let fields: serde_json::Map<String, Value> = fields.into_iter().collect();
    assert_eq!(fields["source"], "tak");
    assert_eq!(fields["type"], "a-f-G-U-C");
    assert_eq!(fields["callsign"], "Viper 1");
    assert_close(&fields["lat"], 35.45);
    assert_close(&fields["lon"], 139.65);
    assert_eq!(fields["hae"], Value::Null);
    // pytak's default stale time is two minutes.
    let stale = fields["stale_ms"].as_u64().unwrap();
    let time = fields["time_ms"].as_u64().unwrap();
    assert!(
        (119_000..=121_000).contains(&(stale - time)),
        "{time} .. {stale}"
    );
    let stats = ours.stats().snapshot();
    assert_eq!((stats.malformed, stats.received), (0, 1));
}

#[tokio::test]
async fn stale_events_expire() {
    init_tracing();
    let taky = Taky::start_tcp();
    let mut ours = connect(&taky).await;
    let now = now_ms();

    // A site (stale in two minutes) and a detection observed long enough ago that it goes
    // stale two seconds from now.
    let site_fields = json!({"name": "Yokohama", "kind": "port", "lat": 35.45, "lon": 139.64});
    let site = cot::event_for("sites", "yokohama", site_fields.as_object().unwrap(), now).unwrap();
    let det_fields = json!({"lat": 35.4, "lon": 139.7, "source": "sar",
                            "at_ms": now + 2_000 - cot::STALE_DETECTION_MS});
    let det = cot::event_for(
        "detections",
        "yokohama-9",
        det_fields.as_object().unwrap(),
        now,
    )
    .unwrap();
    assert_eq!(det.stale_ms, now + 2_000);
    ours.send(&site).await.unwrap();
    ours.send(&det).await.unwrap();
    assert!(!det.is_stale(now_ms()));

    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert!(det.is_stale(now_ms()));
    assert!(!site.is_stale(now_ms()));

    // A client connecting now gets taky's persisted events: the site, not the stale detection.
    // It also sends an event that is already stale, then a fresh one.
    let mut py = Pytak::spawn(
        &taky,
        &[
            "--send",
            "pytak-stale-c,35.0,139.0,a-f-G-U-C,late,-5",
            "--send",
            "pytak-fresh-c,35.1,139.1,a-f-G-U-C,on time",
            "--listen",
            "3",
        ],
    );
    py.ready().await;
    let fresh = recv_uid(&mut ours, "pytak-fresh-c").await;
    assert!(!fresh.is_stale(now_ms()));
    // The stale one came first on the same stream and was dropped, not forwarded.
    let stats = ours.stats().snapshot();
    assert_eq!(stats.stale, 1, "{stats:?}");
    assert_eq!(stats.received, 1, "{stats:?}");

    let replayed: Vec<String> = py
        .rest()
        .await
        .iter()
        .filter_map(|l| l["uid"].as_str().map(String::from))
        .collect();
    assert!(
        replayed.contains(&site.uid),
        "site not replayed: {replayed:?}"
    );
    assert!(
        !replayed.contains(&det.uid),
        "stale detection replayed: {replayed:?}"
    );
}

/// Well-formed XML that taky routes but that is not valid CoT, garbage that taky refuses, a
/// connection cut mid-event and an oversized event: nothing but the valid sentinels reaches
/// the gateway's incoming channel, and the gateway stays connected.
#[tokio::test]
async fn malformed_cot_is_rejected_without_effect() {
    init_tracing();
    let taky = Taky::start_tcp();
    let stats = Arc::new(TakStats::default());
    let (out_tx, out_rx) = mpsc::channel(16);
    let (in_tx, mut in_rx) = mpsc::channel(16);
    let gateway = tokio::spawn(tak::run(taky.config(), out_rx, in_tx, stats.clone()));
    out_tx
        .send(CotEvent::ping("mizugiwa-test-ping", now_ms()))
        .await
        .unwrap();
    eventually("the gateway is connected and answered", || {
        stats.snapshot().ignored >= 1
    })
    .await;

    let t = |offset_s: i64| cot::format_time((now_ms() as i64 + offset_s * 1000) as u64);
    let event = |uid: &str, times: (i64, i64), point: &str, detail: &str| {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<event version=\"2.0\" uid=\"{uid}\" \
             type=\"a-f-G-U-C\" how=\"h-e\" time=\"{}\" start=\"{}\" stale=\"{}\">\
             <point {point} hae=\"0\" ce=\"1\" le=\"1\"/><detail>{detail}</detail></event>",
            t(times.0),
            t(times.0),
            t(times.1)
        )
    };
    let addr = taky.addr();
    let raw = |bytes: Vec<u8>| {
        let addr = addr.clone();
        async move {
            let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            conn.write_all(&bytes).await.unwrap();
            conn.flush().await.unwrap();
            // Give taky a moment to read before the connection closes.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };

    // Valid XML, invalid CoT: taky routes all three.
    let mut batch = String::new();
    batch += &event("raw-bad-lat", (0, 60), "lat=\"123.0\" lon=\"139.0\"", "");
    batch += &event("raw-nan-lon", (0, 60), "lat=\"35.0\" lon=\"nan\"", "");
    batch += &event(
        "raw-stale-before-start",
        (3600, 1800),
        "lat=\"35\" lon=\"139\"",
        "",
    );
    batch += &event("raw-sentinel-1", (0, 60), "lat=\"35.2\" lon=\"139.2\"", "");
    raw(batch.into_bytes()).await;
    // Not XML: taky drops that connection.
    raw(b"this is not CoT <<< >>> &&& </event>".to_vec()).await;
    // Cut mid-event.
    raw(b"<event version=\"2.0\" uid=\"raw-cut\" type=\"a-f-G\" how=\"m-g\" time=\"".to_vec())
        .await;
    // Larger than we accept: taky forwards it, we skip it.
    let remarks = format!("<remarks>{}</remarks>", "x".repeat(cot::MAX_EVENT_BYTES));
    let mut batch = event("raw-huge", (0, 60), "lat=\"35\" lon=\"139\"", &remarks);
    batch += &event("raw-sentinel-2", (0, 60), "lat=\"35.3\" lon=\"139.3\"", "");
    raw(batch.into_bytes()).await;

    let mut got = Vec::new();
    while got.last().map(|e: &CotEvent| e.uid.as_str()) != Some("raw-sentinel-2") {
        let ev = tokio::time::timeout(WAIT, in_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out; got {got:?}, stats {:?}", stats.snapshot()))
            .expect("gateway ended");
        got.push(ev);
    }
    let uids: Vec<&str> = got.iter().map(|e| e.uid.as_str()).collect();
    assert_eq!(uids, ["raw-sentinel-1", "raw-sentinel-2"]);
    let s = stats.snapshot();
    assert_eq!(s.malformed, 4, "{s:?}");
    assert_eq!((s.connects, s.failures), (1, 0), "{s:?}");

    // Closing the outgoing channel stops the gateway.
    drop(out_tx);
    tokio::time::timeout(WAIT, gateway)
        .await
        .expect("gateway did not stop")
        .unwrap();
}

#[tokio::test]
async fn gateway_reconnects_and_flushes_what_it_kept_offline() {
    init_tracing();
    let taky = Taky::start_tcp();
    let port = taky.port;
    let stats = Arc::new(TakStats::default());
    let (out_tx, out_rx) = mpsc::channel(16);
    let (in_tx, _in_rx) = mpsc::channel(16);
    let gateway = tokio::spawn(tak::run(taky.config(), out_rx, in_tx, stats.clone()));
    eventually("connected", || stats.snapshot().connects == 1).await;

    drop(taky);
    eventually("the loss is noticed", || stats.snapshot().failures >= 1).await;
    // Two positions of the same drone while offline: only the latest is kept and sent.
    out_tx.send(drone_event("d-9", 34.0, 129.0)).await.unwrap();
    let latest = drone_event("d-9", 34.5, 129.5);
    out_tx.send(latest.clone()).await.unwrap();

    let taky = Taky::start_tcp_on(port);
    eventually("reconnected", || stats.snapshot().connects == 2).await;
    let mut py = Pytak::spawn(&taky, &["--until", &latest.uid]);
    py.ready().await;
    let (got, before) = py.until_uid(&latest.uid).await;
    assert_close(&got["lat"], 34.5);
    assert!(before.iter().all(|l| l["uid"] != latest.uid));
    assert_eq!(stats.snapshot().sent, 1);

    drop(out_tx);
    tokio::time::timeout(WAIT, gateway).await.unwrap().unwrap();
}

#[tokio::test]
async fn tls_with_client_certificates() {
    init_tracing();
    let taky = Taky::start_tls();
    let mut ours = connect(&taky).await;
    let ev = drone_event("d-tls", 33.9, 130.9);
    let mut py = Pytak::spawn(
        &taky,
        &[
            "--send",
            "pytak-tls,33.5,130.5,a-f-G-U-C,Viper TLS",
            "--until",
            &ev.uid,
        ],
    );
    py.ready().await;
    let from_pytak = recv_uid(&mut ours, "pytak-tls").await;
    // Both clients completed a TLS handshake with a client certificate, which taky then
    // looked up in its certificate database.
    assert_eq!(
        taky.log().matches("against cert db").count(),
        2,
        "{}",
        taky.log()
    );
    assert_eq!(from_pytak.callsign(), Some("Viper TLS"));
    ours.send(&ev).await.unwrap();
    let (got, _) = py.until_uid(&ev.uid).await;
    assert_close(&got["lat"], 33.9);

    // A server certificate that does not chain to the configured CA is refused.
    let mut wrong = taky.config();
    let tls = wrong.tls.as_mut().unwrap();
    tls.ca_pem = tls.cert_pem.clone();
    let err = TakClient::connect(&wrong)
        .await
        .err()
        .expect("wrong CA accepted");
    assert!(err.to_string().contains("TLS handshake"), "{err}");
}

/// The daemon's gateway over a real replica: a site written to the store reaches a pytak
/// client as CoT; an event from pytak becomes a `cot` record; once stale, the record is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_publishes_the_store_and_stores_what_tak_clients_send() {
    use mizugiwa_command::gateway;
    use mizugiwa_sync::{FieldOp, Store, StoreConfig, Value as V};

    init_tracing();
    let taky = Taky::start_tcp();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path().join("hq.db"),
        mizugiwa_command::records::schema(),
        Arc::new(mizugiwa_sync::SystemClock::new()),
        StoreConfig::new("hq"),
    )
    .unwrap();
    let store = Arc::new(std::sync::Mutex::new(store));
    let gw = gateway::start(
        store.clone(),
        &gateway::TakSection {
            addr: taky.addr(),
            tls: None,
            republish_secs: 1,
        },
    );
    // pytak announces itself with an event that goes stale in 3 s, then listens.
    let mut py = Pytak::spawn(
        &taky,
        &[
            "--send",
            "ANDROID-viper,34.3,129.4,a-f-G-U-C,Viper 2,3",
            "--until",
            "mizugiwa.sites.tsushima",
        ],
    );
    py.ready().await;
    store
        .lock()
        .unwrap()
        .put(
            "sites",
            "tsushima",
            &[
                ("name", FieldOp::Set("tsushima".into())),
                ("kind", FieldOp::Set("coast".into())),
                ("lat", FieldOp::Set(V::Float(34.2029))),
                ("lon", FieldOp::Set(V::Float(129.2877))),
                ("heartbeat_ms", FieldOp::Set(V::Int(now_ms() as i64))),
            ],
        )
        .unwrap();
    // The site reaches pytak (on the change, or on the next republish).
    let (got, _) = py.until_uid("mizugiwa.sites.tsushima").await;
    assert_close(&got["lat"], 34.2029);
    // pytak's event is a record at hq...
    let has_viper = || {
        store
            .lock()
            .unwrap()
            .get("cot", "ANDROID-viper")
            .unwrap()
            .is_some()
    };
    eventually("pytak's event stored as cot/ANDROID-viper", has_viper).await;
    let rec = store
        .lock()
        .unwrap()
        .get("cot", "ANDROID-viper")
        .unwrap()
        .unwrap();
    assert_eq!(
        rec.get("callsign").and_then(|v| v.as_str()),
        Some("Viper 2")
    );
    // ...until it goes stale (3 s after it was sent; the sweep runs every 5 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while has_viper() {
        assert!(
            std::time::Instant::now() < deadline,
            "the stale CoT record was never removed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(gw.stats.snapshot().malformed, 0);
    gw.shutdown().await;
}
