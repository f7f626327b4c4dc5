//! What the scenarios share: process figures from /proc, a log-linear histogram, child
//! processes of this binary speaking JSON lines, the deployment set-up (CA, certificates,
//! users) and the HQ runtime.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mizugiwa_command::auth::{self, Role as UserRole, UserConfig};
use mizugiwa_command::runtime::{HttpSection, Location, Runtime, RuntimeConfig, SyncSection};
use mizugiwa_command::web::Mode;
use mizugiwa_sync::pki::{self, Role};
use mizugiwa_sync::{interest, Interest, Store, VersionVector};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Resident set size and its high-water mark of this process, kB (/proc/self/status).
pub fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Returns freed heap memory to the OS and resets the peak-RSS mark (VmHWM), so that each
/// scenario's memory figures are its own, not what an earlier one left in the allocator.
pub fn fresh_memory_baseline() {
    // SAFETY: malloc_trim only releases free memory at the allocator's discretion.
    unsafe {
        libc::malloc_trim(0);
    }
    // "5" resets the peak resident set size (Linux >= 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU seconds (user + system) used so far by process `pid` ("self" for this one).
pub fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat; here indices 11 and 12 (after the name).
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / if hz > 0.0 { hz } else { 100.0 }
}

/// Machine-wide busy CPU seconds (all cores) from /proc/stat, to see what else ran.
pub fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or("");
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return 0.0;
    }
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    let total: f64 = v.iter().take(8).sum();
    (total - v[3] - v[4]) / if hz > 0.0 { hz } else { 100.0 }
}

/// The 1-minute load average.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

/// CPU model and core count.
pub fn machine() -> (String, usize) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (cpu, cores)
}

/// A log-linear histogram of non-negative integers: exact below 64, then 64 buckets per
/// power of two (under 1.6% relative error). Cheap to record, mergeable, and small enough to
/// ship between processes as JSON.
#[derive(Clone, Debug, Default)]
pub struct Hist {
    counts: BTreeMap<u32, u64>,
    n: u64,
    max: u64,
    sum: u128,
}

const SUB: u32 = 64;

impl Hist {
    fn bucket(v: u64) -> u32 {
        if v < SUB as u64 {
            return v as u32;
        }
        let exp = 63 - v.leading_zeros(); // >= 6
        let shift = exp - 6;
        let sub = ((v >> shift) as u32) - SUB; // 0..64
        SUB + (exp - 6) * SUB + sub
    }

    fn lower(b: u32) -> u64 {
        if b < SUB {
            return b as u64;
        }
        let exp = (b - SUB) / SUB + 6;
        let sub = (b - SUB) % SUB;
        ((SUB + sub) as u64) << (exp - 6)
    }

    pub fn record(&mut self, v: u64) {
        *self.counts.entry(Self::bucket(v)).or_default() += 1;
        self.n += 1;
        self.max = self.max.max(v);
        self.sum += v as u128;
    }

    pub fn merge(&mut self, o: &Hist) {
        for (b, c) in &o.counts {
            *self.counts.entry(*b).or_default() += c;
        }
        self.n += o.n;
        self.max = self.max.max(o.max);
        self.sum += o.sum;
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum as f64 / self.n as f64
        }
    }

    /// The value at quantile `q` (0..=1): the lower bound of its bucket, or the maximum.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let target = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (b, c) in &self.counts {
            seen += c;
            if seen >= target {
                return Self::lower(*b).min(self.max);
            }
        }
        self.max
    }

    pub fn to_json(&self) -> Value {
        json!({
            "n": self.n, "max": self.max, "sum": self.sum as f64,
            "b": self.counts.iter().map(|(b, c)| [*b as u64, *c]).collect::<Vec<_>>(),
        })
    }

    pub fn from_json(v: &Value) -> Hist {
        let mut h = Hist {
            n: v["n"].as_u64().unwrap_or(0),
            max: v["max"].as_u64().unwrap_or(0),
            sum: v["sum"].as_f64().unwrap_or(0.0) as u128,
            ..Hist::default()
        };
        for pair in v["b"].as_array().into_iter().flatten() {
            if let (Some(b), Some(c)) = (pair[0].as_u64(), pair[1].as_u64()) {
                h.counts.insert(b as u32, c);
            }
        }
        h
    }
}

/// A child process: this binary re-invoked with `--role ...`. It prints one JSON object per
/// line on stdout (read by a thread into a channel) and takes commands, one per line, on stdin.
pub struct Kid {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<Value>,
}

impl Kid {
    /// This binary in a child role, holding the same site interest as this process.
    pub fn spawn(name: &str, args: &[String]) -> anyhow::Result<Kid> {
        let exe = std::env::current_exe()?;
        let mut args = args.to_vec();
        args.extend([
            "--site-interest".to_owned(),
            site_interest().name().to_owned(),
        ]);
        Self::spawn_program(name, &exe, &args)
    }

    pub fn spawn_program(name: &str, program: &Path, args: &[String]) -> anyhow::Result<Kid> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        let who = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("[{who}] {line}"),
                }
            }
        });
        Ok(Kid {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one command line.
    pub fn say(&mut self, cmd: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        writeln!(stdin, "{cmd}")?;
        stdin.flush()?;
        Ok(())
    }

    /// The next JSON line that has `key`, skipping others (returned in `skipped`).
    pub async fn expect(&mut self, key: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(v)) if v.get(key).is_some() => return Ok(v),
                Ok(Some(_)) => {}
                Ok(None) => bail!("{} exited before sending {key:?}", self.name),
                Err(_) => bail!("{} sent no {key:?} within {timeout:?}", self.name),
            }
        }
    }

    /// Every line received so far, without waiting.
    pub fn drain(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(v) = self.lines.try_recv() {
            out.push(v);
        }
        out
    }

    /// Closes stdin and waits for the process to exit (killing it after `grace`).
    pub fn finish(mut self, grace: Duration) {
        self.stdin.take();
        let t = Instant::now();
        while t.elapsed() < grace {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads commands from stdin (one per line) into a channel, for child roles. EOF sends "quit".
pub fn stdin_commands() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim().to_owned()).is_err() {
                return;
            }
        }
        let _ = tx.send("quit".into());
    });
    rx
}

/// Prints one JSON line on stdout (child roles talk to the parent this way).
pub fn say(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// A deployment in a temporary folder: the CA, HQ's certificate, and `sites` site
/// certificates named `prefix-NNNN`.
pub fn deployment(dir: &Path, sites: &[String]) -> anyhow::Result<PathBuf> {
    let pki_dir = dir.join("pki");
    pki::init_ca(&pki_dir, "bench")?;
    pki::issue(&pki_dir, &pki_dir, "hq", Role::Command)?;
    for s in sites {
        pki::issue(&pki_dir, &pki_dir, s, Role::Site)?;
    }
    Ok(pki_dir)
}

/// Dashboard users: `n` viewers `viewerK` with password `bench-viewer-K`, hashed with the
/// daemon's own `auth::hash_password` (Argon2id).
pub fn users(n: usize) -> anyhow::Result<Vec<(UserConfig, String)>> {
    (0..n)
        .map(|k| {
            let password = format!("bench-viewer-{k}");
            Ok((
                UserConfig {
                    name: format!("viewer{k}"),
                    role: UserRole::Viewer,
                    password_hash: auth::hash_password(&password)?,
                },
                password,
            ))
        })
        .collect()
}

/// Starts HQ: a real `Runtime` in command mode, on loopback ports chosen by the OS, writing
/// its status every 5 s (the `command.toml` default).
pub async fn start_hq(
    data_dir: &Path,
    pki_dir: &Path,
    users: Vec<UserConfig>,
) -> anyhow::Result<Runtime> {
    Runtime::start(RuntimeConfig {
        node: "hq".into(),
        data_dir: data_dir.to_path_buf(),
        pki_dir: pki_dir.to_path_buf(),
        sync: SyncSection {
            listen: "127.0.0.1:0".parse().unwrap(),
            peers: vec![],
            max_clock_skew_ms: 60_000,
            collection_horizon_hours: 168,
            collection_horizon_secs: None,
            interest: mizugiwa_sync::Interest::Everything,
        },
        http: HttpSection {
            listen: "127.0.0.1:0".parse().unwrap(),
            session_hours: 12,
        },
        users,
        mode: Mode::Command,
        location: Location {
            kind: "command".into(),
            lat: 35.6762,
            lon: 139.6503,
        },
        status_interval: Duration::from_secs(5),
    })
    .await
}

/// Size of the files in `dir` whose names start with `prefix`, bytes.
pub fn files_size(dir: &Path, prefix: &str) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// A small deterministic generator.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Formats a count with thousands separators.
pub fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hist_quantiles_are_close() {
        let mut h = Hist::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for q in [0.5, 0.9, 0.99] {
            let got = h.quantile(q) as f64;
            let want = q * 100_000.0;
            assert!((got - want).abs() / want < 0.02, "{q}: {got} vs {want}");
        }
        assert_eq!(h.max(), 100_000);
        let back = Hist::from_json(&h.to_json());
        assert_eq!(back.quantile(0.99), h.quantile(0.99));
        for v in [0u64, 5, 63, 64, 65, 127, 128, 1000, 1 << 40] {
            assert!(Hist::lower(Hist::bucket(v)) <= v);
        }
    }
}

/// What every simulated site holds (`--site-interest`, set once in `main`; default `shared`,
/// as a fleet of hundreds of sites would be configured).
static SITE_INTEREST: std::sync::OnceLock<Interest> = std::sync::OnceLock::new();

/// Sets [`site_interest`] (first call wins).
pub fn set_site_interest(interest: Interest) {
    let _ = SITE_INTEREST.set(interest);
}

/// What every simulated site holds.
pub fn site_interest() -> Interest {
    *SITE_INTEREST.get().unwrap_or(&Interest::Shared)
}

/// How far a site has written, per origin: its own name (shared collections and membership)
/// and its reports (`site@site`, see `mizugiwa_sync::interest`). Both draw from one counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SiteSeq {
    pub own: u64,
    pub reports: u64,
}

impl SiteSeq {
    /// What `store` (the site's own replica) has written.
    pub fn of(store: &Store, site: &str) -> SiteSeq {
        let vv = store.version_vector();
        SiteSeq {
            own: vv.get(site),
            reports: vv.get(&interest::reports_origin(site)),
        }
    }

    pub fn to_json(self) -> Value {
        json!([self.own, self.reports])
    }

    pub fn from_json(v: &Value) -> SiteSeq {
        SiteSeq {
            own: v[0].as_u64().unwrap_or(0),
            reports: v[1].as_u64().unwrap_or(0),
        }
    }

    /// Field entries the site has written (its sequence counter).
    pub fn entries(self) -> u64 {
        self.own.max(self.reports)
    }

    /// Whether `vv` (HQ's) holds everything the site had written at this point.
    pub fn covered_by(self, vv: &VersionVector, site: &str) -> bool {
        vv.get(site) >= self.own && vv.get(&interest::reports_origin(site)) >= self.reports
    }

    /// How far into the site's writes `vv` reaches, by the newer of its two origins: nearly
    /// all of a site's entries are reports, its own origin moves only with its membership
    /// announcements (for the progress samples; convergence is judged by [`SiteSeq::covered_by`]).
    pub fn reach(vv: &VersionVector, site: &str) -> u64 {
        vv.get(site).max(vv.get(&interest::reports_origin(site)))
    }
}

/// The `seqs` object of a child's message, by site.
pub fn seqs_from(v: &Value) -> BTreeMap<String, SiteSeq> {
    v["seqs"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), SiteSeq::from_json(v)))
                .collect()
        })
        .unwrap_or_default()
}

/// The `seqs` object for a child's message: each site's [`SiteSeq`].
pub fn seqs_json(names: &[String], stores: &[std::sync::Arc<std::sync::Mutex<Store>>]) -> Value {
    Value::Object(
        names
            .iter()
            .zip(stores)
            .map(|(n, s)| (n.clone(), SiteSeq::of(&s.lock().unwrap(), n).to_json()))
            .collect(),
    )
}
