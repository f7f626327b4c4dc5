//! Helpers for tests that drive the real `mizugiwa` binary: a deployment folder with its CA
//! and configs, daemons as child processes, an HTTP client, the live event feed, and a UDP
//! relay that can cut a QUIC link.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_mizugiwa");

/// Users every test daemon has: admin, operator, viewer, officer (operator), each with the
/// password `<name>-pw`.
const USERS: [(&str, &str); 4] = [
    ("admin", "admin"),
    ("operator", "operator"),
    ("viewer", "viewer"),
    ("officer", "operator"),
];

/// A folder with a deployment CA and node certificates.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    users_toml: String,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if std::env::var_os("MZ_KEEP").is_some() {
            let keep = tempfile::tempdir().unwrap().keep();
            let _ = std::fs::remove_dir(&keep);
            let _ = std::fs::rename(self.dir.path(), &keep);
            eprintln!("kept the deployment folder at {}", keep.display());
        }
    }
}

impl Deployment {
    pub fn new(nodes: &[(&str, &str)]) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        if std::env::var_os("MZ_KEEP").is_some() {
            eprintln!("deployment folder: {}", dir.path().display());
        }
        let mut d = Deployment {
            dir,
            users_toml: String::new(),
        };
        d.run(&["pki", "init", "--dir", d.pki().to_str().unwrap()]);
        for (node, role) in nodes {
            d.run(&[
                "pki",
                "issue",
                "--dir",
                d.pki().to_str().unwrap(),
                "--node",
                node,
                "--role",
                role,
            ]);
        }
        let mut users = String::new();
        for (name, role) in USERS {
            let hash = mizugiwa_command::auth::hash_password(&format!("{name}-pw")).unwrap();
            users.push_str(&format!(
                "[[users]]\nname = \"{name}\"\nrole = \"{role}\"\npassword_hash = \"{hash}\"\n\n"
            ));
        }
        d.users_toml = users;
        d
    }

    pub fn pki(&self) -> PathBuf {
        self.dir.path().join("pki")
    }

    /// Runs the binary to completion; panics with its output if it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new(BIN).args(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "mizugiwa {args:?} failed:\n{text}");
        text
    }
}

/// A daemon running as a child process; killed when dropped.
pub struct Daemon {
    pub name: String,
    pub http_addr: SocketAddr,
    pub sync_addr: SocketAddr,
    pub data_dir: PathBuf,
    child: Child,
    client: reqwest::Client,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peers_toml(peers: &[(&str, SocketAddr)]) -> String {
    peers
        .iter()
        .map(|(n, a)| format!("[[sync.peers]]\nname = \"{n}\"\naddr = \"{a}\"\n\n"))
        .collect()
}

impl Daemon {
    pub fn command(dep: &Deployment, name: &str, peers: &[(&str, SocketAddr)]) -> Daemon {
        Self::command_with(dep, name, peers, "")
    }

    /// A command center with more config appended (`[gates]`, `[tak]`, ...).
    pub fn command_with(
        dep: &Deployment,
        name: &str,
        peers: &[(&str, SocketAddr)],
        extra: &str,
    ) -> Daemon {
        let toml = format!(
            "node = \"{name}\"\ndata_dir = \"{name}-data\"\npki_dir = \"pki\"\nstatus_interval_secs = 1\n\n\
             [sync]\nlisten = \"127.0.0.1:0\"\n\n{}[http]\nlisten = \"127.0.0.1:0\"\n\n{}{extra}",
            peers_toml(peers),
            dep.users_toml
        );
        Self::spawn(dep, name, "command", toml)
    }

    pub fn site(dep: &Deployment, name: &str, peers: &[(&str, SocketAddr)]) -> Daemon {
        Self::site_with(dep, name, peers, "")
    }

    /// A site with more config appended (sources, bus, ...).
    pub fn site_with(
        dep: &Deployment,
        name: &str,
        peers: &[(&str, SocketAddr)],
        extra: &str,
    ) -> Daemon {
        let toml = format!(
            "node = \"{name}\"\ndata_dir = \"{name}-data\"\npki_dir = \"pki\"\nstatus_interval_secs = 1\n\n\
             [location]\nkind = \"coast\"\nlat = 34.2\nlon = 129.3\n\n\
             [sync]\nlisten = \"127.0.0.1:0\"\n\n{}[http]\nlisten = \"127.0.0.1:0\"\n\n{}\
             [[sources]]\nkind = \"inbox\"\ndir = \"{name}-data/inbox\"\npoll_ms = 100\n\n{extra}",
            peers_toml(peers),
            dep.users_toml
        );
        Self::spawn(dep, name, "node", toml)
    }

    fn spawn(dep: &Deployment, name: &str, sub: &str, toml: String) -> Daemon {
        let cfg = dep.dir.path().join(format!("{name}.toml"));
        std::fs::write(&cfg, toml).unwrap();
        let log = std::fs::File::create(dep.dir.path().join(format!("{name}.log"))).unwrap();
        let mut child = Command::new(BIN)
            .args([sub, "--config", cfg.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        // The daemon prints "... up: dashboard http://ADDR  sync ADDR" once it serves.
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let http = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(dep.dir.path().join(format!("{name}.log")))
                    .unwrap_or_default();
                panic!("{name} did not start: {line:?}\n{log}")
            });
        let sync = line.split("sync ").nth(1).unwrap().trim();
        Daemon {
            name: name.to_owned(),
            http_addr: http.parse().unwrap(),
            sync_addr: sync.parse().unwrap(),
            data_dir: dep.dir.path().join(format!("{name}-data")),
            child,
            client: reqwest::Client::new(),
        }
    }

    /// Sends SIGINT (Ctrl-C) and waits up to `secs` for a clean exit; returns the exit status.
    pub fn interrupt(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    pub fn audit_path(&self) -> PathBuf {
        self.data_dir.join("audit.jsonl")
    }

    pub async fn login(&self, user: &str, password: &str) -> String {
        let r = self
            .client
            .post(self.url("/api/login"))
            .json(&serde_json::json!({"user": user, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login {user} at {}", self.name);
        let v: Value = r.json().await.unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    pub async fn get(&self, token: &str, path: &str) -> Value {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> Value {
        let r = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "POST {path} at {}: {status} {v}",
            self.name
        );
        v
    }

    /// Polls the record until `cond` holds.
    pub async fn wait_record(
        &self,
        token: &str,
        collection: &str,
        id: &str,
        secs: u64,
        cond: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let all = self.get(token, &format!("/api/records/{collection}")).await;
            if let Some(r) = all
                .as_array()
                .and_then(|a| a.iter().find(|r| r["id"] == id))
            {
                if cond(r) {
                    return r.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{collection}/{id} at {} never got there: {all}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Writes a file into the site's inbox atomically (write aside, then rename).
    pub fn drop_inbox(&self, file: &str, record: &Value) {
        let inbox = self.data_dir.join("inbox");
        std::fs::create_dir_all(&inbox).unwrap();
        let tmp = self.data_dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, record.to_string()).unwrap();
        std::fs::rename(tmp, inbox.join(file)).unwrap();
    }
}

/// The SSE feed of a daemon, collected in the background.
pub struct EventFeed {
    events: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EventFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EventFeed {
    pub async fn open(d: &Daemon, token: &str) -> EventFeed {
        let resp = reqwest::Client::new()
            .get(d.url("/api/events"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let events: Arc<Mutex<Vec<Value>>> = Default::default();
        let sink = events.clone();
        let task = tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            let mut buf = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    let data: String = block
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect::<Vec<_>>()
                        .join("\n");
                    if let Ok(v) = serde_json::from_str::<Value>(&data) {
                        sink.lock().unwrap().push(v);
                    }
                }
            }
        });
        EventFeed { events, task }
    }

    pub async fn wait_for(&self, secs: u64, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(e) = self.events.lock().unwrap().iter().find(|e| cond(e)) {
                return e.clone();
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A UDP relay in front of a QUIC endpoint: forwards datagrams both ways until cut.
pub struct UdpRelay {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl UdpRelay {
    pub async fn start(target: SocketAddr) -> UdpRelay {
        let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let back = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        back.connect(target).await.unwrap();
        let addr = front.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let gate = open.clone();
        let task = tokio::spawn(async move {
            let mut client: Option<SocketAddr> = None;
            let (mut a, mut b) = (vec![0u8; 65536], vec![0u8; 65536]);
            loop {
                tokio::select! {
                    r = front.recv_from(&mut a) => if let Ok((n, from)) = r {
                        client = Some(from);
                        if gate.load(Ordering::SeqCst) { let _ = back.send(&a[..n]).await; }
                    },
                    r = back.recv(&mut b) => if let Ok(n) = r {
                        if let (Some(c), true) = (client, gate.load(Ordering::SeqCst)) {
                            let _ = front.send_to(&b[..n], c).await;
                        }
                    },
                }
            }
        });
        UdpRelay { addr, open, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every datagram from now on.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
    }

    /// Forwards again.
    pub fn heal(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// The path of a file inside the deployment folder.
pub fn path_in(dep: &Deployment, name: &str) -> PathBuf {
    dep.dir.path().join(name)
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
