//! The deployment under drill: a CA and certificates, one config per node, the `mizugiwa`
//! processes, and a [`LinkProxy`] on every sync link.
//!
//! Everything goes through the operator binary, as an operator would: `mizugiwa pki`,
//! `mizugiwa user hash`, `mizugiwa command|node --config`, `mizugiwa store hash`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::proxy::{LinkProxy, LinkState};
use crate::scenario::{NodeSpec, Role, Scenario};

/// The operator every node knows; the workload and the checker log in as it.
pub const USER: &str = "drill";
/// Its password.
pub const PASSWORD: &str = "drill-officer-pw";

/// The drill's declaration issuer (its public key is HQ's trust list).
pub const ISSUER_KID: &str = "drill-issuer";

/// The bearer token of one gate.
pub fn gate_token(site: &str, gate: &str) -> String {
    format!("drill-{site}-{gate}-token")
}

/// The specimen passport of `mizugiwa gate issue --example`, with a machine-readable zone
/// valid until 2035 (check digits computed by `mizugiwa gate mrz`).
pub const EXAMPLE_MRZ: [&str; 2] = [
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F3504152ZE184226B<<<<<16",
];

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Life {
    /// A standby not started yet.
    NotStarted,
    /// Running.
    Running,
    /// Killed by the drill (may be restarted).
    Killed,
    /// Gone for good, with its data.
    Lost,
    /// Exited on its own: a crash.
    Died,
}

/// One node's process and files.
pub struct NodeProc {
    pub spec: NodeSpec,
    pub http: SocketAddr,
    pub quic: SocketAddr,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub life: Life,
    /// The clock offset it runs with now.
    pub skew_secs: Option<i64>,
    /// Its data folder is a tmpfs this drill mounted.
    pub mounted: bool,
    /// Another build of the daemon to run it with.
    pub bin: Option<PathBuf>,
    /// The site's MAVLink port (UDP), when it has drones.
    pub mavlink: Option<SocketAddr>,
    /// The AIS feed the site reads (`ais_tcp`), when it has `ais_vessels`.
    pub ais: Option<SocketAddr>,
    /// Its listener, bound before the site starts, until the feed takes it.
    ais_listener: Option<std::net::TcpListener>,
    child: Option<Child>,
    /// Its drones (`mizugiwa drone sim`), while they fly.
    fleet: Option<Child>,
}

impl NodeProc {
    /// The replica database.
    pub fn db(&self) -> PathBuf {
        self.data_dir.join(format!("{}.db", self.spec.name))
    }

    /// The base URL of its API.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }
}

/// The whole deployment.
pub struct Cluster {
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub nodes: BTreeMap<String, NodeProc>,
    pub links: Vec<LinkProxy>,
}

/// A free loopback port for `kind` ("udp" or "tcp"), released for the node to take.
fn free_port(udp: bool) -> std::io::Result<SocketAddr> {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
    }
}

impl Cluster {
    /// Creates the CA, certificates, configs and link proxies; starts nothing.
    pub async fn prepare(scenario: &Scenario, bin: &Path, dir: &Path) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let pki = dir.join("pki");
        run_tool(bin, &["pki", "init", "--dir", path_str(&pki)?]).await?;
        for n in &scenario.nodes {
            let role = match n.role {
                Role::Command => "command",
                Role::Site => "site",
            };
            run_tool(
                bin,
                &[
                    "pki",
                    "issue",
                    "--dir",
                    path_str(&pki)?,
                    "--node",
                    &n.name,
                    "--role",
                    role,
                ],
            )
            .await?;
        }
        let hash = hash_password(bin, PASSWORD).await?;
        if scenario.nodes.iter().any(|n| n.gates > 0) {
            let keys = dir.join("gate-keys");
            run_tool(
                bin,
                &[
                    "gate",
                    "keys",
                    "new",
                    "--kid",
                    ISSUER_KID,
                    "--out",
                    path_str(&keys)?,
                ],
            )
            .await?;
            std::fs::create_dir_all(dir.join("gate-trust"))?;
            std::fs::copy(
                keys.join(format!("{ISSUER_KID}.pub")),
                dir.join("gate-trust").join(format!("{ISSUER_KID}.pub")),
            )?;
        }
        let mut nodes = BTreeMap::new();
        for spec in &scenario.nodes {
            let data_dir = dir.join(format!("{}-data", spec.name));
            let (ais_listener, ais) = if spec.ais_vessels > 0 {
                let (l, addr) = crate::ais_feed::listen()?;
                (Some(l), Some(addr))
            } else {
                (None, None)
            };
            nodes.insert(
                spec.name.clone(),
                NodeProc {
                    spec: spec.clone(),
                    http: free_port(false)?,
                    quic: free_port(true)?,
                    config: dir.join(format!("{}.toml", spec.name)),
                    log: dir.join(format!("{}.log", spec.name)),
                    data_dir,
                    life: Life::NotStarted,
                    skew_secs: None,
                    mounted: false,
                    bin: None,
                    mavlink: if spec.drones > 0 {
                        Some(free_port(true)?)
                    } else {
                        None
                    },
                    ais,
                    ais_listener,
                    child: None,
                    fleet: None,
                },
            );
        }
        // Who dials whom: every site dials every command center (standbys included: their
        // address is in the plan before they exist); with `mesh`, sites dial each other once.
        let mut dials: Vec<(String, String)> = Vec::new();
        let sites: Vec<&NodeSpec> = scenario
            .nodes
            .iter()
            .filter(|n| n.role == Role::Site)
            .collect();
        for (i, s) in sites.iter().enumerate() {
            for c in scenario.nodes.iter().filter(|n| n.role == Role::Command) {
                dials.push((s.name.clone(), c.name.clone()));
            }
            if scenario.mesh {
                for t in &sites[i + 1..] {
                    dials.push((s.name.clone(), t.name.clone()));
                }
            }
        }
        let mut links = Vec::new();
        for (from, to) in dials {
            links.push(LinkProxy::start(&from, &to, nodes[&to].quic).await?);
        }
        let cluster = Cluster {
            dir: dir.to_owned(),
            bin: bin.to_owned(),
            nodes,
            links,
        };
        for n in cluster.nodes.values() {
            std::fs::write(&n.config, cluster.config_toml(scenario, n, &hash))
                .with_context(|| format!("writing {}", n.config.display()))?;
        }
        Ok(cluster)
    }

    fn config_toml(&self, scenario: &Scenario, n: &NodeProc, hash: &str) -> String {
        let mut t = format!(
            "node = \"{name}\"\ndata_dir = \"{name}-data\"\npki_dir = \"pki\"\nstatus_interval_secs = 1\n\n",
            name = n.spec.name
        );
        if n.spec.role == Role::Site {
            t.push_str(&format!(
                "[location]\nkind = \"{}\"\nlat = 34.2\nlon = 129.3\n\n",
                n.spec.kind.as_deref().unwrap_or("port")
            ));
        }
        t.push_str(&format!(
            "[sync]\nlisten = \"{}\"\nmax_clock_skew_ms = {}\ncollection_horizon_secs = {}\n\n",
            n.quic,
            scenario.max_clock_skew_secs * 1000,
            scenario.collection_horizon_secs
        ));
        for l in self.links.iter().filter(|l| l.from == n.spec.name) {
            t.push_str(&format!(
                "[[sync.peers]]\nname = \"{}\"\naddr = \"{}\"\n\n",
                l.to,
                l.addr()
            ));
        }
        t.push_str(&format!(
            "[http]\nlisten = \"{}\"\n\n[[users]]\nname = \"{USER}\"\nrole = \"admin\"\npassword_hash = \"{hash}\"\n\n",
            n.http
        ));
        let any_gates = scenario.nodes.iter().any(|n| n.gates > 0);
        if n.spec.role == Role::Command && any_gates {
            t.push_str("[gates]\ntrust_dir = \"gate-trust\"\npublish_secs = 2\n");
        }
        if let Some(mavlink) = n.mavlink {
            // Breadcrumbs every 2 s, so that a short outage still has points to lose.
            t.push_str(&format!(
                "[bus]\nbreadcrumb_secs = 2\n\n[drones]\nlink = \"udpin:{mavlink}\"\ncomm_lost_secs = 3.5\n\n"
            ));
        }
        if let Some(ais) = n.ais {
            // Vessel records every 2 s (a ship reports every 2 s), so that a position written
            // during an outage is soon overtaken by a newer one that must also arrive.
            t.push_str(&format!(
                "[[sources]]\nkind = \"ais_tcp\"\naddr = \"{ais}\"\nreconnect_secs = 1\n\n[records]\nvessel_interval_secs = 2\n\n"
            ));
        }
        if n.spec.gates > 0 {
            t.push_str("[gates]\n");
            for g in 1..=n.spec.gates {
                let id = format!("gate{g}");
                t.push_str(&format!(
                    "[[gates.devices]]\nid = \"{id}\"\ntoken_blake3 = \"{}\"\n",
                    blake3::hash(gate_token(&n.spec.name, &id).as_bytes()).to_hex()
                ));
            }
        }
        t
    }

    /// Starts a site's drones: one `mizugiwa drone sim` process flying `drones` vehicles
    /// against the site's MAVLink port for the whole drill. They outlive a killed site, as real
    /// drones would, and the restarted site finds them again.
    pub fn start_drones(&mut self, name: &str) -> anyhow::Result<()> {
        let bin = self.bin.clone();
        let n = self
            .nodes
            .get_mut(name)
            .with_context(|| format!("no node {name:?}"))?;
        let Some(mavlink) = n.mavlink else {
            return Ok(());
        };
        let log = std::fs::File::create(n.log.with_extension("drones.log"))?;
        let child = tokio::process::Command::new(&bin)
            .args([
                "drone",
                "sim",
                "--gcs",
                &mavlink.to_string(),
                "--count",
                &n.spec.drones.to_string(),
            ])
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}'s drones"))?;
        n.fleet = Some(child);
        Ok(())
    }

    /// Stops a site's drones; says so if they had already stopped by themselves.
    pub async fn stop_drones(&mut self, name: &str) -> anyhow::Result<Option<String>> {
        let n = self
            .nodes
            .get_mut(name)
            .with_context(|| format!("no node {name:?}"))?;
        let Some(mut fleet) = n.fleet.take() else {
            return Ok(None);
        };
        let died = match fleet.try_wait() {
            Ok(Some(status)) => Some(format!(
                "{name}'s drone fleet (mizugiwa drone sim) exited by itself: {status}"
            )),
            _ => None,
        };
        let _ = fleet.start_kill();
        let _ = fleet.wait().await;
        Ok(died)
    }

    /// The listener of a site's AIS feed, for the feed to serve on (once).
    pub fn take_ais_listener(&mut self, name: &str) -> anyhow::Result<std::net::TcpListener> {
        let n = self
            .nodes
            .get_mut(name)
            .with_context(|| format!("no node {name:?}"))?;
        n.ais_listener
            .take()
            .with_context(|| format!("{name} has no AIS feed to serve"))
    }

    /// What degrades the links of `node` now (a bandwidth cap, latency, loss), if any.
    pub fn degradation_of(&self, node: &str) -> Option<String> {
        self.links
            .iter()
            .filter(|l| l.touches(node))
            .find_map(|l| l.state().degradation())
    }

    /// Every link's counters now.
    pub fn link_tallies(&self) -> Vec<crate::proxy::LinkTally> {
        self.links.iter().map(LinkProxy::tally).collect()
    }

    /// Starts (or restarts) a node and waits until it serves.
    pub async fn start(&mut self, name: &str) -> anyhow::Result<()> {
        let n = self
            .nodes
            .get_mut(name)
            .with_context(|| format!("no node {name:?}"))?;
        let bin = n.bin.clone().unwrap_or_else(|| self.bin.clone());
        if n.life == Life::Lost {
            bail!("{name} was lost for good");
        }
        if let (Some(mb), false) = (n.spec.disk_mb, n.mounted) {
            std::fs::create_dir_all(&n.data_dir)?;
            mount_tmpfs(&n.data_dir, mb).await?;
            n.mounted = true;
        }
        let sub = match n.spec.role {
            Role::Command => "command",
            Role::Site => "node",
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)?;
        let mut cmd = Command::new(&bin);
        if let Some(offset) = n.skew_secs {
            // libfaketime, preloaded into the daemon itself (the `faketime` wrapper would
            // leave the daemon running when killed): it moves the wall clock only, so timers
            // and timeouts (monotonic) stay true, as on a machine whose clock was set wrong.
            cmd.env("LD_PRELOAD", libfaketime()?)
                .env("FAKETIME", format!("{offset:+}"))
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        cmd.args([sub, "--config", path_str(&n.config)?])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({})", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let up = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if line.contains(" up: ") {
                    return Ok::<_, std::io::Error>(true);
                }
            }
            Ok(false)
        })
        .await;
        match up {
            Ok(Ok(true)) => {}
            _ => {
                let _ = child.start_kill();
                let tail = std::fs::read_to_string(&n.log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(15).collect();
                bail!(
                    "{name} did not come up; last log lines:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        // Keep draining stdout so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        n.child = Some(child);
        n.life = Life::Running;
        Ok(())
    }

    /// `kill -9`.
    pub async fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let n = self
            .nodes
            .get_mut(name)
            .with_context(|| format!("no node {name:?}"))?;
        if let Some(mut child) = n.child.take() {
            child.start_kill()?;
            let _ = child.wait().await;
        }
        n.life = Life::Killed;
        Ok(())
    }

    /// Killed, and its data deleted.
    pub async fn lose(&mut self, name: &str) -> anyhow::Result<()> {
        self.kill(name).await?;
        let n = self.nodes.get_mut(name).context("no node")?;
        if n.mounted {
            unmount(&n.data_dir).await;
            n.mounted = false;
        }
        let _ = std::fs::remove_dir_all(&n.data_dir);
        n.life = Life::Lost;
        Ok(())
    }

    /// Restarts the node with its clock offset (or corrected, with `None`).
    pub async fn set_skew(&mut self, name: &str, offset: Option<i64>) -> anyhow::Result<()> {
        self.kill(name).await?;
        self.nodes.get_mut(name).context("no node")?.skew_secs = offset;
        self.start(name).await
    }

    /// Fills the node's file system (a tmpfs of `disk_mb`).
    pub fn fill_disk(&self, name: &str) -> anyhow::Result<u64> {
        use std::io::Write;
        let n = self.nodes.get(name).context("no node")?;
        if !n.mounted {
            bail!("{name}'s data folder is not on its own file system");
        }
        let mut f = std::fs::File::create(n.data_dir.join("drill-filler"))?;
        let block = vec![0xA5u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(k) => written += k as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(e.into()),
            }
        }
        let _ = f.sync_all();
        Ok(written)
    }

    /// Frees it again.
    pub fn free_disk(&self, name: &str) -> anyhow::Result<()> {
        let n = self.nodes.get(name).context("no node")?;
        std::fs::remove_file(n.data_dir.join("drill-filler")).context("removing the filler")?;
        Ok(())
    }

    /// Puts every link between a node of `a` and a node of `b` in `state`.
    pub fn set_links_between(&self, a: &[String], b: &[String], state: LinkState) {
        for l in &self.links {
            let crosses = (a.contains(&l.from) && b.contains(&l.to))
                || (a.contains(&l.to) && b.contains(&l.from));
            if crosses {
                l.set(state);
            }
        }
    }

    /// Puts every link touching one of `nodes` in `state`.
    pub fn set_links_of(&self, nodes: &[String], state: LinkState) {
        for l in &self.links {
            if nodes.iter().any(|n| l.touches(n)) {
                l.set(state);
            }
        }
    }

    /// Every link back up.
    pub fn heal_all(&self) {
        for l in &self.links {
            l.set(LinkState::Up);
        }
    }

    /// Whether `node` has at least one link up to a running command center (through the
    /// proxies; says nothing of whether a session is open).
    pub fn reaches_command(&self, node: &str) -> bool {
        self.links.iter().any(|l| {
            l.touches(node)
                && l.state() != LinkState::Cut
                && [&l.from, &l.to].iter().any(|other| {
                    self.nodes.get(other.as_str()).is_some_and(|n| {
                        n.spec.role == Role::Command
                            && n.life == Life::Running
                            && n.spec.name != node
                    })
                })
        })
    }

    /// Notices processes that exited on their own.
    pub fn reap(&mut self) -> Vec<String> {
        let mut died = Vec::new();
        for (name, n) in &mut self.nodes {
            if let Some(child) = n.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    tracing::error!(node = %name, %status, "node exited on its own");
                    n.child = None;
                    n.life = Life::Died;
                    died.push(format!("{name}: {status}"));
                }
            }
        }
        died
    }

    /// Signs `count` fresh declarations with the drill's issuer key (`mizugiwa gate issue`).
    pub async fn issue_declarations(&self, count: usize) -> anyhow::Result<Vec<String>> {
        let key = self.dir.join("gate-keys").join(format!("{ISSUER_KID}.key"));
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let text = run_tool(
                &self.bin,
                &[
                    "gate",
                    "issue",
                    "--key",
                    path_str(&key)?,
                    "--kid",
                    ISSUER_KID,
                    "--example",
                ],
            )
            .await?;
            out.push(text.lines().next().unwrap_or("").trim().to_owned());
        }
        Ok(out)
    }

    /// The replica's state hash over `collections`, read beside the running daemon.
    pub async fn state_hash(&self, name: &str, collections: &[&str]) -> anyhow::Result<String> {
        let n = self.nodes.get(name).context("no node")?;
        let db = n.db();
        let mut args = vec!["store", "hash", "--db", path_str(&db)?];
        for c in collections {
            args.extend(["--collection", c]);
        }
        Ok(run_tool(&self.bin, &args).await?.trim().to_owned())
    }

    /// Stops every node: SIGINT, then SIGKILL after 10 s; unmounts the tmpfs folders.
    pub async fn shutdown(&mut self) {
        for n in self.nodes.values_mut() {
            if let Some(child) = n.child.as_mut() {
                if let Some(pid) = child.id() {
                    // SAFETY: kill(2) on our own child's pid.
                    unsafe { libc::kill(pid as i32, libc::SIGINT) };
                }
            }
        }
        for n in self.nodes.values_mut() {
            if let Some(mut child) = n.child.take() {
                if tokio::time::timeout(Duration::from_secs(10), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
            }
            if n.mounted {
                unmount(&n.data_dir).await;
                n.mounted = false;
            }
        }
    }
}

/// Where Debian's libfaketime is (package `faketime`, installed by `make deps`).
fn libfaketime() -> anyhow::Result<&'static str> {
    const CANDIDATES: [&str; 3] = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ];
    CANDIDATES
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("clock-skew faults need libfaketime (Debian package `faketime`)")
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not valid UTF-8", p.display()))
}

/// Runs `mizugiwa ARGS` to completion; its stdout, or an error with its stderr.
pub async fn run_tool(bin: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {} {}", bin.display(), args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`mizugiwa {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn hash_password(bin: &Path, password: &str) -> anyhow::Result<String> {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new(bin)
        .args(["user", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    stdin.write_all(format!("{password}\n").as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "mizugiwa user hash: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn mount_tmpfs(dir: &Path, mb: u64) -> anyhow::Result<()> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
        .arg(dir)
        .output()
        .await
        .context("running mount")?;
    if !out.status.success() {
        bail!(
            "could not mount a {mb} MB tmpfs on {} for the disk faults (they need root): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

async fn unmount(dir: &Path) {
    let _ = Command::new("umount").arg("-l").arg(dir).output().await;
}
