//! The Markdown report: machine, date, caveats, one section per scenario, and the targets
//! judged with the numbers of this run.

use std::path::Path;

use crate::common::{self, thousands};
use crate::cotbench::CotResult;
use crate::ingest::{BacklogResult, IngestResult};
use crate::reconnect::{FleetResult, ReconnectOpts};

pub struct Report {
    head: String,
    body: String,
    verdicts: Vec<(String, String, String)>,
    /// What limits the numbers, each backed by a figure of this run.
    observations: Vec<String>,
}

fn verdict(ok: bool) -> String {
    if ok { "**met**" } else { "**not met**" }.into()
}

fn mb(kb: u64) -> String {
    format!("{:.0} MB", kb as f64 / 1024.0)
}

impl Report {
    pub fn new(quick: bool, dir: &Path, argv: Vec<String>) -> Report {
        let (cpu, cores) = common::machine();
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .unwrap_or(0);
        let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let git = |a: &[&str]| {
            std::process::Command::new("git")
                .arg("-C")
                .arg(repo)
                .args(a)
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        let commit = git(&["rev-parse", "--short", "HEAD"]);
        // The code being measured: the store and the command center (this crate aside).
        let dirty = !git(&["status", "--porcelain", "--", "sync/src", "command/src"]).is_empty();
        let args = argv.iter().skip(1).cloned().collect::<Vec<_>>().join(" ");
        let head = format!(
            "# Command-center benchmarks\n\n\
             Measured by `cargo run --release -p mizugiwa-command-bench --{}` (`make bench` runs it with `--out command/BENCHMARKS.md`), \
             one run{}, at commit `{commit}`{}, on: **{cpu}, {cores} cores**, {:.1} GB RAM; run started {date}; \
             load average at start {}; temporary files in {} (same disk as the workspace).\n\
             All numbers below come from this one run; the anchor (taky) and the targets are measured and judged in it.\n\n",
            if args.is_empty() { String::new() } else { format!(" {args}") },
            if quick { " (**--quick smoke run: shortened, not the full benchmark**)" } else { "" },
            if dirty { " with uncommitted changes in sync/src or command/src" } else { "" },
            mem as f64 / 1024.0 / 1024.0,
            common::loadavg(),
            dir.display(),
        );
        Report {
            head,
            body: String::new(),
            verdicts: Vec::new(),
            observations: Vec::new(),
        }
    }

    pub fn failed(&mut self, title: &str, e: &anyhow::Error) {
        self.body.push_str(&format!(
            "## {title}\n\n**The scenario failed:** `{e:#}`\n\n"
        ));
        self.verdicts
            .push((title.into(), "failed".into(), "**not measured**".into()));
    }

    pub fn ingest(&mut self, r: &IngestResult) {
        let o = &r.opts;
        let b = &mut self.body;
        let epr = if r.written > 0 {
            r.entries_written as f64 / r.written as f64
        } else {
            0.0
        };
        let offered = r.written as f64 / r.window_s;
        let applied_rate = r.applied_in_window as f64 / r.window_s;
        let covered_end = r
            .samples
            .last()
            .map(|s| s.covered_entries as f64 / epr.max(1e-9))
            .unwrap_or(0.0);
        let sustained = match r.drain_s {
            Some(d) => r.written as f64 / (r.window_s + d),
            None => covered_end / r.window_s,
        };
        let cores = common::machine().1 as f64;
        b.push_str(&format!(
            "## 1. Record ingest at HQ, with {} live dashboards\n\n\
             **Set-up.** HQ is a real `mizugiwa_command::runtime::Runtime` in command mode (replica with synchronous=FULL as deployed, \
             sync driver, dashboard and API, status record every 5 s) in the bench process. \
             {} sites run in a child process (`--role sites`): each its own SQLite replica (synchronous={}) with the deployment schema \
             and its own sync driver (QUIC, mutual TLS with certificates from `pki::init_ca`/`pki::issue`) dialling HQ on loopback. \
             {} writer threads at the sites put records at a paced total of {} records/s ({}): 60% vessel positions (one of 200 vessels per site, 6 fields), \
             25% new detections (6 fields), 15% new alerts (9 fields, `status` and JSON `detail` included); one `Store::put` (one transaction) per record. \
             {} dashboard clients in a second child process (`--role browsers`) log in through `/api/login` ({} users, Argon2id hashes from `auth::hash_password`) \
             and read `/api/events`; each record event's `at_ms` (vessels, detections) or `raised_ms` (alerts), set to the wall clock just before the site's put, \
             gives ingest-to-browser latency = browser's wall clock on receipt − write time (same machine, same clock).\n\n\
             Records *applied* at HQ are counted from HQ's store change events that came through a peer (a record touched by one applied batch counts once; \
             a lagged subscriber is told how many it missed, so the count is exact). Site writes *covered* by HQ come from HQ's version vector \
             (every field entry a site wrote up to that sequence is at HQ, or superseded there). A vessel written twice before the site's log was read travels once: \
             the log is compacted per field, so *applied* can be lower than *written* while HQ is fully caught up.\n\n",
            o.clients,
            o.sites,
            r.site_durability,
            o.writer_threads,
            thousands(o.rate as f64),
            if o.rate == 0 { "unpaced" } else { "open loop, catching up when behind" },
            o.clients,
            o.users,
        ));
        b.push_str(&interest_note());
        b.push_str(&format!(
            "| measure | value |\n|---|---|\n\
             | measurement window (writers running) | {:.1} s (warm-up for the memory baseline: {:.0} s) |\n\
             | records written at the sites (offered load) | {} = **{} records/s** (target offered: {}/s) |\n\
             | field entries written at the sites | {} ({:.2} per record) |\n\
             | records applied at HQ during the window | {} = **{} records/s** |\n\
             | site writes covered by HQ at the last sample of the window | {} of {} ({:.1}%) |\n\
             | drain: writers stopped → HQ covers every site write | {} |\n\
             | **end-to-end sustained rate** = written / (window + drain) | **{} records/s** = {:.2}× the 20,000 msg/s target |\n\
             | HQ store change events missed by the counting subscriber (lag, counted) | {} |\n\
             | HQ sync traffic during the window: received from the sites / sent to the sites | {:.1} MB / {:.1} MB ({:.2}×: {}) |\n\
             | CPU, HQ process (bench process) during the window | {:.1} s = {:.2} cores |\n\
             | CPU, sites process (whole run) / browsers process (whole run) | {:.1} s / {:.1} s |\n\
             | CPU busy, whole machine, during the window | {:.1} s = {:.2} of {cores:.0} cores |\n\
             | load average before / after | {} / {} |\n\n",
            r.window_s,
            o.warmup.as_secs_f64(),
            thousands(r.written as f64),
            thousands(offered),
            thousands(o.rate as f64),
            thousands(r.entries_written as f64),
            epr,
            thousands(r.applied_in_window as f64),
            thousands(applied_rate),
            thousands(covered_end),
            thousands(r.written as f64),
            100.0 * covered_end / (r.written.max(1) as f64),
            match r.drain_s {
                Some(d) => format!("{d:.1} s"),
                None => format!("**not within {:.0} s**", o.drain_max.as_secs_f64()),
            },
            thousands(sustained),
            sustained / 20_000.0,
            thousands(r.lagged_events as f64),
            r.hq_bytes_window.1 as f64 / 1e6,
            r.hq_bytes_window.0 as f64 / 1e6,
            r.hq_bytes_window.0 as f64 / r.hq_bytes_window.1.max(1) as f64,
            match common::site_interest() {
                mizugiwa_sync::Interest::Everything => "HQ forwards every site's records to every other site",
                mizugiwa_sync::Interest::Shared => "the sites hold only their own records: HQ sends them acknowledgements and its announcements",
            },
            r.hq_cpu_window,
            r.hq_cpu_window / r.window_s,
            r.sites_cpu,
            r.browsers_cpu,
            r.machine_busy_window,
            r.machine_busy_window / r.window_s,
            r.load_before,
            r.load_after,
        ));
        // Time series: every sample, or every 30 s for long runs.
        let step = if r.samples.len() > 14 { 6 } else { 1 };
        b.push_str(
            "Over time (rates over the interval since the previous row; latency = p99 of events received by all browsers in that interval; \
             lock wait = how long a probe thread waited for HQ's store mutex, sampled every 20 ms):\n\n\
             | t | written/s | applied at HQ/s | covered by HQ | HQ RSS | HQ CPU (cores) | browser latency p99 | store lock wait p99 / max |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        let mut prev = (0.0, 0u64, 0u64, 0.0);
        let mut lock_p99 = 0u64;
        let mut lock_max = 0u64;
        for (i, s) in r.samples.iter().enumerate() {
            lock_p99 = lock_p99.max(s.lock_p99_us);
            lock_max = lock_max.max(s.lock_max_us);
            if (i + 1) % step != 0 && i + 1 != r.samples.len() {
                continue;
            }
            let dt = (s.t - prev.0).max(1e-9);
            let (w0, w1) = (
                (prev.0 / 5.0).round() as usize,
                (s.t / 5.0).round() as usize,
            );
            let mut lat = common::Hist::default();
            for w in r.latency_windows.iter().take(w1).skip(w0) {
                lat.merge(w);
            }
            b.push_str(&format!(
                "| {:.0} s | {} | {} | {:.1}% | {} | {:.2} | {} | {:.1} ms / {:.1} ms |\n",
                s.t,
                thousands((s.written - prev.1) as f64 / dt),
                thousands((s.applied - prev.2) as f64 / dt),
                100.0 * s.covered_entries as f64 / epr.max(1e-9) / (s.written.max(1) as f64),
                mb(s.rss_kb),
                (s.hq_cpu - prev.3) / dt,
                if lat.count() > 0 {
                    format!("{} ms", thousands(lat.quantile(0.99) as f64))
                } else {
                    "—".into()
                },
                lock_p99 as f64 / 1e3,
                lock_max as f64 / 1e3,
            ));
            prev = (s.t, s.written, s.applied, s.hq_cpu);
            lock_p99 = 0;
            lock_max = 0;
        }
        b.push('\n');

        // Memory.
        let flat = r.rss_end_kb as f64 <= r.rss_warm_kb as f64 * 1.10;
        b.push_str(&format!(
            "**Memory of the HQ process** (VmRSS from /proc/self/status every 5 s; the bench process holds HQ and the measuring only):\n\n\
             | before HQ started | HQ up, {} dashboards logged in and streaming, sites connected (before any write) | after warm-up ({:.0} s) | end of window | max sampled | peak (VmHWM) from start to the end of the drain | end / after warm-up |\n\
             |---|---|---|---|---|---|---|\n\
             | {} | {} | {} | {} | {} | {} | {:.2}× |\n\n",
            o.clients,
            o.warmup.as_secs_f64(),
            mb(r.rss_start_kb),
            mb(r.rss_ready_kb),
            mb(r.rss_warm_kb),
            mb(r.rss_end_kb),
            mb(r.rss_max_kb),
            mb(r.rss_hwm_kb),
            r.rss_end_kb as f64 / r.rss_warm_kb.max(1) as f64,
        ));

        // Latency.
        let l = &r.latency;
        let clients = &r.browser_clients;
        let sum = |k: &str| {
            clients
                .iter()
                .map(|c| c[k].as_u64().unwrap_or(0))
                .sum::<u64>()
        };
        let p99s: Vec<u64> = clients
            .iter()
            .map(|c| c["p99_ms"].as_u64().unwrap_or(0))
            .collect();
        let errors: Vec<String> = clients
            .iter()
            .filter_map(|c| c["error"].as_str().map(str::to_owned))
            .filter(|e| e != "stream ended")
            .collect();
        b.push_str(&format!(
            "**Ingest-to-browser latency** over all {} clients:\n\n\
             | events received (all clients) | record events timed | p50 | p99 | max | mean | per-client p99 (min … max) | `reset`s: the hub's pump fell behind the store (all clients) | `reset`s: a client's stream fell behind the hub (events skipped) | id gaps without a reset | bytes received |\n\
             |---|---|---|---|---|---|---|---|---|---|---|\n\
             | {} | {} | {} ms | **{} ms** | {} ms | {:.0} ms | {} … {} ms | {} | {} ({} events) | {} ({} events) | {:.1} MB |\n\n\
             The hub published about {} events while the clients listened (widest id range a client saw); \
             {} clients × that = {} events to deliver.{}\n\n",
            clients.len(),
            thousands(sum("events") as f64),
            thousands(l.count() as f64),
            thousands(l.quantile(0.5) as f64),
            thousands(l.quantile(0.99) as f64),
            thousands(l.max() as f64),
            l.mean(),
            thousands(*p99s.iter().min().unwrap_or(&0) as f64),
            thousands(*p99s.iter().max().unwrap_or(&0) as f64),
            thousands(sum("resets") as f64),
            thousands(sum("client_resets") as f64),
            thousands(sum("skipped") as f64),
            thousands(sum("gaps") as f64),
            thousands(sum("missed") as f64),
            sum("bytes") as f64 / 1e6,
            thousands(r.hub_events as f64),
            clients.len(),
            thousands((r.hub_events * clients.len() as u64) as f64),
            if errors.is_empty() {
                String::new()
            } else {
                format!(" Client errors: {errors:?}.")
            },
        ));
        b.push_str("**After the run**, with HQ holding the data (each timed once: the housekeeping calls under the store mutex, as the daemon makes them; the snapshot through HTTP, as a browser fetches it):\n\n| what | cost |\n|---|---|\n");
        for (k, v) in &r.post {
            b.push_str(&format!("| {k} | {v} |\n"));
        }
        b.push('\n');
        let lock = &r.lock_wait;
        b.push_str(&format!(
            "Store mutex wait over the whole run (probe every 20 ms, {} samples): p50 {:.2} ms, p99 {:.1} ms, max {:.1} ms.\n\n",
            lock.count(),
            lock.quantile(0.5) as f64 / 1e3,
            lock.quantile(0.99) as f64 / 1e3,
            lock.max() as f64 / 1e3,
        ));
        let sc = &r.scan;
        let resets = sum("resets");
        self.observations.push(format!(
            "**Housekeeping under the store mutex, every 5 s.** HQ's status record (`runtime.rs`, `StatusWriter::write`) reads \
             `Store::collection_counts()` and the driver's housekeeping calls `collect_garbage()`. Both used to walk the whole entry index \
             (855 ms and 376 ms at 935850c with 550,000 records); the counts are now kept by the writes (only the first call counts) and the collection \
             reads only the deleted records. \
             With {} records at HQ after the ingest run they took {:.1} ms and {:.1} ms ({:.2}% of each 5 s). The writer's mutex is still held for each \
             applied batch's transaction and fsync: store mutex wait in the run p99 {:.0} ms, max {:.0} ms.",
            thousands(sc.records as f64),
            sc.counts_ms,
            sc.gc_ms,
            (sc.counts_ms + sc.gc_ms) / 50.0,
            r.lock_wait.quantile(0.99) as f64 / 1e3,
            r.lock_wait.max() as f64 / 1e3,
        ));
        self.observations.push(format!(
            "**The dashboard pump still falls behind, and browsers are told to reset.** `events::pump` reads each changed record back (once per pass \
             however often it changed) through a read-only connection of its own, so it no longer waits for the writer; the store's change channel \
             holds 4,096 events and one applied batch emits one per record touched. \
             In the ingest run the hub published {} `reset`s to all {} clients ({} in total), and the counting subscriber of this bench, which does nothing but count, \
             lagged by {} events: HQ's tokio workers were starved of CPU by the load generators on the same two cores (HQ itself used {:.2} cores). \
             Each `reset` makes a browser fetch `/api/snapshot`: after the run that took {:.1} s and {:.0} MB of JSON (HQ's peak RSS during that one request: \
             {:.0} MB), now read through a read-only connection while the writer goes on; {} clients reloading after one `reset` still cost about {:.0} s of reading.",
            thousands(resets as f64 / clients.len().max(1) as f64),
            clients.len(),
            thousands(resets as f64),
            thousands(r.lagged_events as f64),
            r.hq_cpu_window / r.window_s,
            sc.snapshot_ms / 1e3,
            sc.snapshot_mb,
            sc.snapshot_peak_mb,
            clients.len(),
            clients.len() as f64 * sc.snapshot_ms / 1e3,
        ));
        self.observations.push(match common::site_interest() {
            mizugiwa_sync::Interest::Everything => format!(
                "**HQ forwards every site's records to every other site** (`--site-interest everything`): in the ingest run HQ received \
                 {:.0} MB from the {} sites and sent {:.0} MB to them ({:.1}×). At a deployment-wide 20,000 records/s every site would have to apply 20,000 records/s \
                 and HQ send (N−1)× its ingest. In this bench the simulated sites pay that on the same two cores: the sites process used {:.0} CPU s against HQ's {:.0} s.",
                r.hq_bytes_window.1 as f64 / 1e6,
                o.sites,
                r.hq_bytes_window.0 as f64 / 1e6,
                r.hq_bytes_window.0 as f64 / r.hq_bytes_window.1.max(1) as f64,
                r.sites_cpu,
                r.hq_cpu_window,
            ),
            mizugiwa_sync::Interest::Shared => format!(
                "**The load generator and HQ share two cores.** The sites hold only their own records, so HQ forwards nothing of theirs to the others: \
                 in the ingest run HQ received {:.0} MB from the {} sites and sent {:.1} MB to them. What remains at the sites is writing: every record \
                 is a durable `Store::put` of its own (one transaction), and the sites process used {:.0} CPU s against HQ's {:.0} s; the whole machine \
                 was busy {:.2} of {:.0} cores. HQ applies what arrives in larger batches (section 1b bounds it).",
                r.hq_bytes_window.1 as f64 / 1e6,
                o.sites,
                r.hq_bytes_window.0 as f64 / 1e6,
                r.sites_cpu,
                r.hq_cpu_window,
                r.machine_busy_window / r.window_s,
                cores,
            ),
        });
        let sustain_ok = sustained >= 20_000.0 && r.drain_s.is_some_and(|d| d <= 5.0);
        self.verdicts.push((
            format!(
                "Ingest of records: sustain ≥ 20,000 msg/s for {} ({} s here)",
                "5 minutes",
                o.duration.as_secs()
            ),
            format!(
                "{} records/s end to end (offered {}/s, applied {}/s, drain {})",
                thousands(sustained),
                thousands(offered),
                thousands(applied_rate),
                r.drain_s
                    .map(|d| format!("{d:.1} s"))
                    .unwrap_or_else(|| "not finished".into())
            ),
            verdict(sustain_ok && o.duration.as_secs() >= 300),
        ));
        self.verdicts.push((
            "… with flat memory (end within 10% of the value after warm-up)".into(),
            format!(
                "{} → {} ({:.2}×)",
                mb(r.rss_warm_kb),
                mb(r.rss_end_kb),
                r.rss_end_kb as f64 / r.rss_warm_kb.max(1) as f64
            ),
            verdict(flat),
        ));
        self.verdicts.push((
            format!(
                "{} concurrent dashboard SSE clients, p99 ingest-to-browser ≤ 1 s",
                o.clients
            ),
            format!(
                "p99 {} ms over {} timed events; {} + {} resets (each one makes a browser reload the snapshot)",
                thousands(l.quantile(0.99) as f64),
                thousands(l.count() as f64),
                thousands(sum("resets") as f64),
                thousands(sum("client_resets") as f64),
            ),
            verdict(
                l.count() > 0
                    && l.quantile(0.99) <= 1000
                    && sum("resets") + sum("client_resets") == 0
            ),
        ));
    }

    pub fn backlog(&mut self, runs: &[Result<BacklogResult, String>]) {
        let Some(first) = runs.iter().find_map(|r| r.as_ref().ok()) else {
            self.body
                .push_str("## 1b. HQ's apply capacity (backlog)\n\n**Failed:** ");
            for r in runs {
                if let Err(e) = r {
                    self.body.push_str(&format!("`{e}` "));
                }
            }
            self.body.push_str("\n\n");
            return;
        };
        let o = &first.opts;
        let cores = common::machine().1 as f64;
        self.body.push_str(&format!(
            "## 1b. HQ's apply capacity: a backlog from {} site(s), with and without dashboards\n\n\
             The sustained run above is limited by its load generator as much as by HQ (every site write is a durable `Store::put` \
             on the same two cores; with `--site-interest everything` the sites must also apply each other's records, which HQ forwards). \
             To bound what HQ itself can apply, {} site(s) wrote {} new records each while offline (not timed: {:.1} s; every write a new record, \
             so nothing is compacted away before it travels), then connected at once; \
             the time is from starting the site drivers until HQ's version vector covers every write. \
             Large batches and few commits make this an **upper bound** of HQ's ingest, not a sustained rate.\n\n\
             | SSE clients | records (field entries) | HQ covers all after | **records/s** | field entries/s | records applied (change events) | HQ CPU | machine busy | HQ RSS before → after | SSE events delivered (all clients) / published by the hub / `reset`s |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
            o.sites,
            o.sites,
            thousands(o.per_site as f64),
            first.write_secs,
        ));
        for r in runs {
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    self.body.push_str(&format!(
                        "| — | **failed**: `{}` | | | | | | | | |\n",
                        e.replace('|', "/")
                    ));
                    continue;
                }
            };
            let rate = |n: f64| match r.converge_s {
                Some(s) if s > 0.0 => n / s,
                _ => 0.0,
            };
            self.body.push_str(&format!(
                "| {} | {} ({}) | {} | **{}** | {} | {} | {:.1} s | {:.1} of {:.1} CPU s | {} → {} | {} / {} / {} |\n",
                r.opts.clients,
                thousands(r.written as f64),
                thousands(r.entries as f64),
                r.converge_s.map(|s| format!("{s:.1} s")).unwrap_or_else(|| format!(
                    "**not within {:.0} s** ({} of {} entries covered)",
                    r.opts.max.as_secs_f64(),
                    thousands(r.covered_entries as f64),
                    thousands(r.entries as f64)
                )),
                thousands(rate(r.written as f64)),
                thousands(rate(r.entries as f64)),
                thousands(r.applied as f64),
                r.hq_cpu,
                r.busy,
                r.converge_s.unwrap_or(0.0) * cores,
                mb(r.rss_before_kb),
                mb(r.rss_after_kb),
                thousands(r.browser_events as f64),
                thousands(r.hub_events as f64),
                thousands(r.browser_resets as f64),
            ));
        }
        self.body.push('\n');
    }

    pub fn cot(&mut self, r: &CotResult) {
        let (a, o) = (&r.anchor, &r.ours);
        let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        let taky_a = rate(a.relayed, a.relay_secs);
        let taky_b = rate(o.relayed, o.relay_secs);
        let ours = rate(o.stored, o.store_secs);
        let ours_window = rate(o.stored_in_window, o.send_secs);
        let b = &mut self.body;
        b.push_str(&format!(
            "## 2. CoT ingest: pytak → taky → our gateway, against taky's own relay rate\n\n\
             **Set-up.** taky {} (the project's `.venv`) on a free loopback port, plain TCP, in-memory persistence, log level `warning`. \
             `command/bench/pytak_load.py` (pytak {}) opens {} pytak connection(s) and sends CoT built by pytak (`gen_cot_xml`, `serialize_cot`, through pytak's `TXWorker`) \
             as fast as it can for {:.0} s; each connection cycles through {} uids (a moving fleet: records are updated, not piled up). \
             A raw TCP receiver of ours (counts `</event>`) is connected to taky in both phases. \
             **Phase A (anchor)**: taky relays to the raw receiver only. **Phase B**: the same load with our gateway \
             (`mizugiwa_command::gateway::start`, a real `Store` with the deployment schema and synchronous=FULL as deployed) connected too; \
             records stored are counted from the store's change events on `cot`. taky broadcasts each event to every other client, so in phase B it writes each event twice.\n\n\
             | | pytak sent | pytak rate | taky relayed to the raw receiver | **taky relay rate** | our gateway: events received | records stored | **our ingest rate** | stored during the send window | our drain after pytak stopped | CPU: taky / pytak / us |\n\
             |---|---|---|---|---|---|---|---|---|---|---|\n\
             | A: taky alone (anchor) | {} | {}/s | {} | **{}/s** | — | — | — | — | — | {:.1} s / {:.1} s / — |\n\
             | B: taky + our gateway | {} | {}/s | {} | {}/s | {} | {} | **{}/s** | {} ({}/s) | {:.1} s | {:.1} s / {:.1} s / {:.1} s |\n\n\
             Rates are counts over first-to-last event at the receiving side. taky RSS at the end of each phase: {} / {}. \
             Gateway: {} malformed, {} stale on arrival; the {} persisted events taky replayed to the gateway when it connected are not counted.\n\n\
             **Ratio ours / taky:** {:.2}× against taky's relay rate alone (phase A), {:.2}× against taky's relay rate in the same phase (B).\n\n",
            r.taky_version,
            r.pytak_version,
            r.opts.connections,
            r.opts.duration.as_secs_f64(),
            r.opts.uids,
            thousands(a.sent as f64),
            thousands(rate(a.sent, a.send_secs)),
            thousands(a.relayed as f64),
            thousands(taky_a),
            a.taky_cpu,
            a.pytak_cpu,
            thousands(o.sent as f64),
            thousands(rate(o.sent, o.send_secs)),
            thousands(o.relayed as f64),
            thousands(taky_b),
            thousands(o.gateway_received as f64),
            thousands(o.stored as f64),
            thousands(ours),
            thousands(o.stored_in_window as f64),
            thousands(ours_window),
            o.drain_s,
            o.taky_cpu,
            o.pytak_cpu,
            o.our_cpu,
            mb(a.taky_rss_kb),
            mb(o.taky_rss_kb),
            o.gateway_malformed,
            o.gateway_stale,
            o.replayed,
            ours / taky_a.max(1e-9),
            ours / taky_b.max(1e-9),
        ));
        if o.stored > 0 && a.relayed > 0 {
            self.observations.push(format!(
                "**taky is the bottleneck in phase B; our cost is parsing, not commits.** The gateway writes every event that is waiting (up to 512) in one \
                 transaction, so a commit with its fsync serves hundreds of events; it stored {} of the {} events taky relayed to it, {:.1} s after pytak stopped. \
                 taky is one Python process at one core ({:.1} CPU s in {:.0} s) and in phase B writes each event to two clients, so it relays fewer. \
                 Our process spent {:.0} µs of CPU per stored event (XML parsing, the record's fields, the store's statements), taky {:.0} µs per relayed event (phase A).",
                thousands(o.stored as f64),
                thousands(o.relayed as f64),
                o.drain_s,
                o.taky_cpu,
                o.send_secs,
                o.our_cpu * 1e6 / o.stored as f64,
                a.taky_cpu * 1e6 / a.relayed as f64,
            ));
        }
        self.verdicts.push((
            "Ingest of CoT: compare with taky under the same pytak load, same run".into(),
            format!(
                "ours {}/s vs taky {}/s alone ({:.2}×), {}/s beside us ({:.2}×); the 20,000 msg/s target applies to CoT too: {}/s",
                thousands(ours),
                thousands(taky_a),
                ours / taky_a.max(1e-9),
                thousands(taky_b),
                ours / taky_b.max(1e-9),
                thousands(ours),
            ),
            verdict(ours >= 20_000.0),
        ));
    }

    pub fn reconnect(&mut self, opts: &ReconnectOpts, rs: &[FleetResult]) {
        let b = &mut self.body;
        b.push_str(&format!(
            "## 3. Sites reconnecting to HQ after an outage\n\n\
             **Set-up.** HQ is a real `Runtime` (command mode) in the bench process. The sites are replicas in child processes (`--role fleet`, at most {} per process), \
             each with its own SQLite file (synchronous=NORMAL), its own certificate and its own sync driver (one QUIC endpoint per site) dialling HQ on loopback. \
             *First contact*: each site holds 2 records; all drivers start at once. Then the fleet stays connected for {:.0} s (HQ fans {} \
             out to every other site; the idle figures are measured over the second half), \
             then the **outage**: every site driver shuts down. Offline, each site writes 5 records (status, 2 vessel positions, a detection, an alert). \
             **Reconnect**: all drivers start at once; converged = HQ's version vector covers every site's offline writes, then HQ's state is checked \
             (every site's offline alert and detection readable at HQ). Polled every 100 ms; longest wait {:.0} s.\n\n{}\
             | sites | processes | first contact: HQ covers all | reconnect: all sessions open | **reconnect: HQ covers all** | per-site p50 / p90 / max | state check | HQ CPU during reconnect | HQ bytes sent / received during reconnect | idle (connected, nothing written): HQ CPU, bytes/s sent, records/s applied | HQ RSS at end |\n\
             |---|---|---|---|---|---|---|---|---|---|---|\n",
            opts.per_process,
            opts.settle.as_secs_f64(),
            match common::site_interest() {
                mizugiwa_sync::Interest::Everything => "every site's records and `$members` announcements",
                mizugiwa_sync::Interest::Shared => "its own `$members` announcement",
            },
            opts.timeout.as_secs_f64(),
            interest_note(),
        ));
        let fmt_s = |s: Option<f64>, covered: usize, n: usize| match s {
            Some(s) => format!("{s:.1} s"),
            None => format!("not converged: {covered} of {n} covered"),
        };
        for r in rs {
            let c = &r.reconnect;
            b.push_str(&format!(
                "| {} | {} | {} | {} | **{}** | {:.1} / {:.1} / {:.1} s | {} of {} | {:.1} s | {:.1} / {:.1} MB | {:.2} cores, {:.0} kB/s, {:.0}/s | {} |\n",
                r.sites,
                r.processes,
                fmt_s(r.first.all_s, r.first.covered, r.sites),
                c.connected_s.map(|s| format!("{s:.1} s")).unwrap_or("—".into()),
                fmt_s(c.all_s, c.covered, r.sites),
                c.per_site.quantile(0.5) as f64 / 1e3,
                c.per_site.quantile(0.9) as f64 / 1e3,
                c.per_site.max() as f64 / 1e3,
                r.state_ok,
                r.state_checked,
                c.hq_cpu,
                c.hq_bytes_sent as f64 / 1e6,
                c.hq_bytes_received as f64 / 1e6,
                r.idle_hq_cpu_per_s,
                r.idle_hq_bytes_per_s / 1e3,
                r.idle_hq_applied_per_s,
                mb(r.hq_rss_kb),
            ));
        }
        b.push('\n');
        for r in rs {
            b.push_str(&format!(
                "* {} sites, first contact: HQ CPU {:.1} s, fleet CPU {:.1} s, HQ sent {:.1} MB / received {:.1} MB, machine busy {:.1} CPU s; \
                 reconnect: fleet CPU {:.1} s, machine busy {:.1} CPU s.\n",
                r.sites,
                r.first.hq_cpu,
                r.first.fleet_cpu,
                r.first.hq_bytes_sent as f64 / 1e6,
                r.first.hq_bytes_received as f64 / 1e6,
                r.first.busy,
                r.reconnect.fleet_cpu,
                r.reconnect.busy,
            ));
            for (phase, c) in [("first contact", &r.first), ("reconnect", &r.reconnect)] {
                if let Some(d) = &c.diagnosis {
                    b.push_str(&format!(
                        "* {} sites, {phase} **not converged** after {:.0} s ({} of {} covered): {d}.\n",
                        r.sites,
                        opts.timeout.as_secs_f64(),
                        c.covered,
                        r.sites
                    ));
                }
            }
            for note in &r.notes {
                b.push_str(&format!("* {note}.\n"));
            }
            if let Some(e) = &r.error {
                b.push_str(&format!(
                    "* {} sites: **the run stopped**: `{e}`; the columns after that point are empty.\n",
                    r.sites
                ));
            }
        }
        b.push('\n');
        if let (Some(small), Some(big)) = (
            rs.iter()
                .filter(|r| r.first.hq_bytes_sent > 0)
                .min_by_key(|r| r.sites),
            rs.iter()
                .filter(|r| r.first.hq_bytes_sent > 0)
                .max_by_key(|r| r.sites),
        ) {
            let first_contact = format!(
                "First contact: {} sites made HQ send {:.1} MB; {} sites {:.1} MB, with the fleet's processes using {:.0} CPU s against HQ's {:.0} s.",
                small.sites,
                small.first.hq_bytes_sent as f64 / 1e6,
                big.sites,
                big.first.hq_bytes_sent as f64 / 1e6,
                big.first.fleet_cpu,
                big.first.hq_cpu,
            );
            let idle_mb_s = small.idle_hq_bytes_per_s / 1e6;
            self.observations.push(match common::site_interest() {
                mizugiwa_sync::Interest::Shared => format!(
                    "**Sites hold only their own records.** HQ forwards no site's records to the others, and a site's `$members` \
                     announcement goes to HQ alone (sites that hold only shared records announce under their routed origin); HQ's own \
                     announcement still reaches every site, at most once a minute. {first_contact} Idle, HQ sent {idle_mb_s:.2} MB/s \
                     with {} sites connected.",
                    small.sites,
                ),
                mizugiwa_sync::Interest::Everything => format!(
                    "**Full replication through one hub (`--site-interest everything`): the sites pay N², announcements N³ per round.** \
                     HQ forwards every site's records and `$members` announcements to every other site. Announcements answer data only, \
                     at most once a minute per replica ({idle_mb_s:.1} MB/s from HQ in this run's idle window), but a fleet-wide change \
                     still makes every site announce a vector of N components that reaches N−1 others. {first_contact} The simulated \
                     sites share the two cores with HQ, so at hundreds of sites they stop answering within the 30 s idle timeout and HQ \
                     drops them. Sites that hold only their own records (`interest = \"shared\"`) avoid this."
                ),
            });
        }
        if rs
            .iter()
            .any(|r| r.first.all_s.is_none() || r.reconnect.all_s.is_none())
        {
            self.observations.push(
                "**Hundreds of sites at once: refused handshakes, idle timeouts, churn.** HQ's endpoint refuses connections beyond 64 handshakes in progress \
                 (`transport.rs`, `MAX_PENDING_HANDSHAKES`), refused sites back off up to 10 s, and sessions whose peer is too busy to answer for 30 s are dropped \
                 (idle timeout) and redialled; see the diagnosis lines of section 3 for the counts. Part of that overload is this bench's: all simulated sites share two cores \
                 and each must apply everything HQ forwards to it."
                    .into(),
            );
        }
        let thousand = rs.iter().find(|r| r.sites >= 1000);
        let (measured, ok) = match thousand {
            Some(r) if r.reconnect.all_s.is_some() || r.error.is_none() => (
                format!(
                    "{} sites: {}",
                    r.sites,
                    r.reconnect
                        .all_s
                        .map(|s| format!(
                            "{s:.1} s, state {} of {} sites",
                            r.state_ok, r.state_checked
                        ))
                        .unwrap_or_else(|| format!(
                            "not converged within {:.0} s ({} covered)",
                            opts.timeout.as_secs_f64(),
                            r.reconnect.covered
                        ))
                ),
                r.reconnect.all_s.is_some_and(|s| s <= 60.0) && r.state_ok == r.state_checked,
            ),
            Some(r) => (
                format!("failed: {}", r.error.clone().unwrap_or_default()),
                false,
            ),
            None => (
                format!(
                    "1,000 not run (sizes: {:?}); largest: {}",
                    opts.sizes,
                    rs.iter()
                        .rfind(|r| r.error.is_none())
                        .map(|r| format!(
                            "{} sites in {}",
                            r.sites,
                            r.reconnect
                                .all_s
                                .map(|s| format!("{s:.1} s"))
                                .unwrap_or("—".into())
                        ))
                        .unwrap_or_default()
                ),
                false,
            ),
        };
        self.verdicts.push((
            "1,000 sites reconnecting after an outage converge within 60 s".into(),
            measured,
            verdict(ok),
        ));
    }

    pub fn finish(self) -> String {
        let mut out = self.head;
        out.push_str(
            "## Targets\n\n| target (issue) | measured in this run | verdict |\n|---|---|---|\n",
        );
        for (t, m, v) in &self.verdicts {
            out.push_str(&format!("| {t} | {m} | {v} |\n"));
        }
        out.push('\n');
        if !self.observations.is_empty() {
            out.push_str(
                "## What limits these numbers (each point backed by a figure of this run)\n\n",
            );
            for o in &self.observations {
                out.push_str(&format!("* {o}\n"));
            }
            out.push('\n');
        }
        out.push_str(CAVEATS);
        out.push_str(&self.body);
        out
    }
}

/// What the simulated sites hold, for each section's set-up.
fn interest_note() -> String {
    match common::site_interest() {
        mizugiwa_sync::Interest::Shared => "**Site interest: `shared`** (`--site-interest`, the default here): each site holds the shared collections \
             (the gates' trust lists, declarations used, membership) and its own records, with what HQ wrote to them; HQ sends a site nothing of \
             another site's records (see `mizugiwa_sync::interest`). Runs before 2026-11-27 18:00 UTC replicated everything to every site, \
             as `--site-interest everything` does.\n\n"
            .to_owned(),
        mizugiwa_sync::Interest::Everything => "**Site interest: `everything`** (`--site-interest`): every site receives every other site's records \
             through HQ (full replication).\n\n"
            .to_owned(),
    }
}

const CAVEATS: &str = "## Caveats\n\n\
* **One 2-core machine for everything.** HQ, the load generators (sites, browsers, pytak, fleet) and taky share the same two cores; \
  every figure is what HQ achieves while its load generators compete with it for CPU. The generators run in child processes \
  (this binary re-invoked with `--role sites|browsers|fleet`) so that HQ's CPU time and memory are read for HQ alone, \
  but they are not isolated from it: the CPU columns show where the time went.\n\
* Loopback network: no latency, loss or bandwidth limit; QUIC and TLS costs are real.\n\
* Site replicas (the load generators) use synchronous=NORMAL; HQ and the CoT gateway's store use synchronous=FULL, as deployed.\n\
* Dashboard clients are Rust SSE readers, not browsers: they parse the SSE framing and find the timestamp in each event without \
  building a DOM or a JSON tree, and on `reset` they keep reading instead of reloading `/api/snapshot` as the dashboard does \
  (the cost of one snapshot is reported).\n\
* Other work on the machine during the run (another engineer's builds and tests) shows as the gap between \"CPU busy, whole machine\" \
  and the sum of our processes.\n\n";
