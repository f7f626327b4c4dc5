//! Runs a drill: starts the deployment, runs the workload and the fault timeline, samples
//! replication lag, waits for convergence and hands everything to the checker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::sync::{watch, Mutex};

use crate::ais_feed::{self, AisFeed, AisSend};
use crate::check::{self, Verdicts};
use crate::cluster::{Cluster, Life};
use crate::proxy::{LinkState, LinkTally};
use crate::scenario::{Action, Role, Scenario};
use crate::workload::{self, Journal, LagSample, Officer, Op};

/// How a drill is run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The `mizugiwa` binary to drive.
    pub bin: PathBuf,
    /// Working folder for the deployment (certificates, configs, data, logs).
    pub work_dir: PathBuf,
    /// Nodes run by another build of the daemons (the checker's own test runs one node on
    /// a deliberately broken build); the tools always come from `bin`.
    pub replica_bins: BTreeMap<String, PathBuf>,
}

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultEvent {
    /// Milliseconds after the workload started.
    pub t_ms: u64,
    pub action: Action,
    pub description: String,
    /// `None` when it was applied; else why not.
    pub error: Option<String>,
    /// What the fault found worth recording (e.g. what peers held of a skewed site's writes).
    pub note: Option<String>,
}

/// A node's condition from `t_ms` on (until its next entry).
#[derive(Debug, Clone, Serialize)]
pub struct NodeState {
    pub t_ms: u64,
    pub node: String,
    pub life: Life,
    /// Some link to a running command center is up.
    pub reaches_command: bool,
    pub skew_secs: Option<i64>,
    pub disk_full: bool,
    /// What degrades its links (a bandwidth cap, latency, loss), when something does.
    pub degraded: Option<String>,
}

/// Everything a drill observed.
#[derive(Debug, Clone, Serialize)]
pub struct Observed {
    pub scenario: Scenario,
    pub started_at_unix_ms: u64,
    pub faults: Vec<FaultEvent>,
    pub states: Vec<NodeState>,
    pub attempts: Vec<workload::Attempt>,
    pub lag: Vec<LagSample>,
    /// Processes that exited on their own.
    pub died: Vec<String>,
    /// Seconds from the settle point until every live replica had the same state hash;
    /// `None` if they never did within the wait.
    pub converged_after_secs: Option<f64>,
    /// The final state hash of every live replica.
    pub hashes: BTreeMap<String, String>,
    /// Each live replica's alerts and gate passages at the end: id → record.
    pub finals: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// Batches refused for clock skew per node, as its /metrics said at the end.
    pub refused_batches: BTreeMap<String, u64>,
    /// Each live replica's check of each airport's decision journal at the end
    /// (`GET /api/gate/journal/<site>`): replica → site → the check, or the error.
    pub journals: BTreeMap<String, BTreeMap<String, Result<serde_json::Value, String>>>,
    /// Each live replica's drone breadcrumbs at the end (when the scenario has drones): id →
    /// record.
    pub tracks: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// What each site's AIS feed sent (sites with `ais_vessels`).
    pub ais_sent: BTreeMap<String, Vec<AisSend>>,
    /// Each live replica's `vessels` at the end (when the scenario has an AIS feed): MMSI →
    /// record.
    pub vessels: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// Every sync link's proxy counters at the end.
    pub links: Vec<LinkTally>,
}

/// The collections the drill compares replicas on: what the workload writes (the AIS feed
/// stops with the officers, so vessels settle too). Every node also writes its own heartbeat
/// every second, so whole-store hashes never settle.
pub const COMPARED: [&str; 5] = [
    "alerts",
    "gate_passages",
    "gate_uses",
    "gate_stats",
    "vessels",
];

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Shared {
    cluster: Mutex<Cluster>,
    states: std::sync::Mutex<Vec<NodeState>>,
    disk_full: std::sync::Mutex<BTreeSet<String>>,
    started: Instant,
}

impl Shared {
    /// Records every node's condition now.
    async fn snapshot(&self) {
        let t_ms = self.started.elapsed().as_millis() as u64;
        let cluster = self.cluster.lock().await;
        let full = self.disk_full.lock().map(|d| d.clone()).unwrap_or_default();
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        for (name, n) in &cluster.nodes {
            states.push(NodeState {
                t_ms,
                node: name.clone(),
                life: n.life,
                reaches_command: n.spec.role == Role::Command || cluster.reaches_command(name),
                skew_secs: n.skew_secs,
                disk_full: full.contains(name),
                degraded: cluster.degradation_of(name),
            });
        }
    }
}

/// Runs the scenario and checks it.
pub async fn run(scenario: &Scenario, opts: &RunOptions) -> anyhow::Result<(Observed, Verdicts)> {
    let mut cluster = Cluster::prepare(scenario, &opts.bin, &opts.work_dir).await?;
    for (node, bin) in &opts.replica_bins {
        cluster
            .nodes
            .get_mut(node)
            .with_context(|| format!("--replica-bin names unknown node {node:?}"))?
            .bin = Some(bin.clone());
    }
    // Command centers first, so that sites find them at once.
    let mut order: Vec<&crate::scenario::NodeSpec> =
        scenario.nodes.iter().filter(|n| !n.standby).collect();
    order.sort_by_key(|n| n.role != Role::Command);
    for n in order {
        tracing::info!(node = %n.name, "starting");
        cluster.start(&n.name).await?;
    }
    wait_until_connected(&cluster, scenario).await?;
    let started = Instant::now();
    let started_at_unix_ms = now_unix_ms();
    let shared = Arc::new(Shared {
        cluster: Mutex::new(cluster),
        states: Default::default(),
        disk_full: Default::default(),
        started,
    });
    shared.snapshot().await;
    let journal = Journal::default();
    let (stop, stopped) = watch::channel(false);

    let mut officers = Vec::new();
    {
        let cluster = shared.cluster.lock().await;
        for (i, site) in scenario.writing_sites().into_iter().enumerate() {
            let addr = cluster.nodes[&site].http;
            officers.push(tokio::spawn(workload::officer(
                site,
                addr,
                scenario.workload.clone(),
                0x5eed_0000 + i as u64 * 7919,
                started,
                journal.clone(),
                stopped.clone(),
            )));
        }
    }
    {
        let cluster = shared.cluster.lock().await;
        let per_sec = scenario.workload.passengers_per_sec;
        for (site, gate) in scenario.gates() {
            let count = (scenario.duration_secs * per_sec).ceil() as usize + 1;
            let declarations = cluster.issue_declarations(count).await?;
            officers.push(tokio::spawn(workload::gate(
                site.clone(),
                gate,
                cluster.nodes[&site].http,
                per_sec,
                declarations,
                started,
                journal.clone(),
                stopped.clone(),
            )));
        }
    }
    // Each site with drones gets its fleet of simulated vehicles (one process), talking MAVLink
    // to the site's ground station.
    {
        let mut cluster = shared.cluster.lock().await;
        let sites: Vec<String> = cluster
            .nodes
            .values()
            .filter(|n| n.mavlink.is_some())
            .map(|n| n.spec.name.clone())
            .collect();
        for site in sites {
            cluster.start_drones(&site)?;
        }
    }
    // Each site with `ais_vessels` gets its AIS feed, served from this process until the
    // workload ends. The site's number in the node list keeps the sites' MMSIs apart.
    let mut feeds = Vec::new();
    {
        let mut cluster = shared.cluster.lock().await;
        for (number, n) in scenario
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.ais_vessels > 0)
        {
            let listener = cluster.take_ais_listener(&n.name)?;
            let ships = ais_feed::ships(
                number as u32,
                n.ais_vessels,
                scenario.duration_secs,
                0xa150_0000 + number as u64 * 104_729,
            );
            feeds.push(AisFeed::start(
                &n.name,
                listener,
                ships,
                started,
                stopped.clone(),
            )?);
        }
    }
    // The sampler runs until the convergence wait is over, so the chart shows the catch-up.
    let (sampled_enough, sampling_done) = watch::channel(false);
    let sampler = tokio::spawn(sample_lag(shared.clone(), journal.clone(), sampling_done));
    let faults = run_timeline(shared.clone(), scenario.clone(), journal.clone()).await;

    // The workload runs its course.
    let end = started + Duration::from_secs_f64(scenario.duration_secs);
    tokio::time::sleep_until(end.into()).await;
    let _ = stop.send(true);
    for o in officers {
        let _ = o.await;
    }
    let mut ais_sent = BTreeMap::new();
    for f in &mut feeds {
        ais_sent.insert(f.site.clone(), f.sent().await);
    }
    let settle = started + Duration::from_secs_f64(scenario.settle_at_secs());
    tokio::time::sleep_until(settle.into()).await;
    tracing::info!("workload done; waiting for the replicas to converge");

    let (converged_after_secs, hashes) = wait_converged(&shared, scenario, settle).await;
    let _ = sampled_enough.send(true);
    let lag = sampler.await.unwrap_or_default();
    let mut cluster = shared.cluster.lock().await;
    let mut died = cluster.reap();
    let mut finals = BTreeMap::new();
    let mut refused_batches = BTreeMap::new();
    let mut journals = BTreeMap::new();
    let mut tracks = BTreeMap::new();
    let mut vessels = BTreeMap::new();
    let with_drones = scenario.nodes.iter().any(|n| n.drones > 0);
    let with_ais = !ais_sent.is_empty();
    let names: Vec<String> = cluster.nodes.keys().cloned().collect();
    for name in names {
        // A fleet that ended by itself is a failure of the drill's own tooling: say so, rather
        // than let it show only as tracks that stopped.
        if let Some(d) = cluster.stop_drones(&name).await? {
            died.push(d);
        }
    }
    let airports: Vec<String> = scenario
        .nodes
        .iter()
        .filter(|n| n.gates > 0)
        .map(|n| n.name.clone())
        .collect();
    for (name, n) in &cluster.nodes {
        if n.life != Life::Running {
            continue;
        }
        let mut officer = Officer::new(name, n.http);
        let mut records = officer
            .records("alerts")
            .await
            .map_err(|e| anyhow::anyhow!("reading {name}'s alerts at the end: {e}"))?;
        records.extend(
            officer
                .records("gate_passages")
                .await
                .map_err(|e| anyhow::anyhow!("reading {name}'s gate passages at the end: {e}"))?,
        );
        finals.insert(
            name.clone(),
            records
                .into_iter()
                .filter_map(|r| Some((r["id"].as_str()?.to_owned(), r)))
                .collect(),
        );
        refused_batches.insert(name.clone(), refused(&n.url("/metrics")).await.unwrap_or(0));
        let mut checks = BTreeMap::new();
        for site in &airports {
            let check = officer
                .call(
                    reqwest::Method::GET,
                    &format!("/api/gate/journal/{site}"),
                    None,
                )
                .await;
            checks.insert(site.clone(), check);
        }
        journals.insert(name.clone(), checks);
        if with_drones {
            let crumbs = officer
                .records("breadcrumbs")
                .await
                .map_err(|e| anyhow::anyhow!("reading {name}'s breadcrumbs at the end: {e}"))?;
            tracks.insert(
                name.clone(),
                crumbs
                    .into_iter()
                    .filter(|r| r["fields"]["kind"] == "drone")
                    .filter_map(|r| Some((r["id"].as_str()?.to_owned(), r)))
                    .collect(),
            );
        }
        if with_ais {
            let ships = officer
                .records("vessels")
                .await
                .map_err(|e| anyhow::anyhow!("reading {name}'s vessels at the end: {e}"))?;
            vessels.insert(
                name.clone(),
                ships
                    .into_iter()
                    .filter_map(|r| Some((r["id"].as_str()?.to_owned(), r)))
                    .collect(),
            );
        }
    }
    let links = cluster.link_tallies();
    cluster.shutdown().await;
    drop(cluster);
    // The silent feeds close their connections only now that the sites are stopped.
    drop(feeds);
    let states = shared.states.lock().map(|s| s.clone()).unwrap_or_default();
    let observed = Observed {
        scenario: scenario.clone(),
        started_at_unix_ms,
        faults,
        states,
        attempts: journal.attempts(),
        lag,
        died,
        converged_after_secs,
        hashes,
        finals,
        refused_batches,
        journals,
        tracks,
        ais_sent,
        vessels,
        links,
    };
    let verdicts = check::check(&observed);
    Ok((observed, verdicts))
}

/// Waits until every running site has an open session to some command center (its status
/// record at the command center says so), so that the drill starts from a connected state.
async fn wait_until_connected(cluster: &Cluster, scenario: &Scenario) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let hq = scenario
        .nodes
        .iter()
        .find(|n| n.role == Role::Command && !n.standby)
        .context("no command center")?;
    let mut officer = Officer::new(&hq.name, cluster.nodes[&hq.name].http);
    let sites: BTreeSet<String> = scenario
        .nodes
        .iter()
        .filter(|n| n.role == Role::Site && !n.standby)
        .map(|n| n.name.clone())
        .collect();
    loop {
        let seen: BTreeSet<String> = officer
            .records("sites")
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r["id"].as_str().map(str::to_owned))
            .collect();
        if sites.is_subset(&seen) && trust_lists_arrived(cluster, scenario).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the sites never reached {} before the drill: missing {:?}",
                hq.name,
                sites.difference(&seen).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Whether every airport's gates have the issuer's key (published by HQ, through sync).
async fn trust_lists_arrived(cluster: &Cluster, scenario: &Scenario) -> bool {
    for (site, gate) in scenario.gates() {
        let url = cluster.nodes[&site].url("/api/gate/status");
        let token = crate::cluster::gate_token(&site, &gate);
        let keys = match reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
        {
            Ok(r) => r.json::<serde_json::Value>().await.ok(),
            Err(_) => None,
        };
        let has = keys.is_some_and(|v| {
            v["keys"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == crate::cluster::ISSUER_KID))
        });
        if !has {
            return false;
        }
    }
    true
}

/// Applies the faults at their times; returns what happened.
async fn run_timeline(
    shared: Arc<Shared>,
    scenario: Scenario,
    journal: Journal,
) -> Vec<FaultEvent> {
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ev = events.clone();
    let task = tokio::spawn(async move {
        let mut skew_started: BTreeMap<String, u64> = BTreeMap::new();
        for f in &scenario.faults {
            let at = shared.started + Duration::from_secs_f64(f.at_secs);
            tokio::time::sleep_until(at.into()).await;
            let t_ms = shared.started.elapsed().as_millis() as u64;
            tracing::info!(t_ms, fault = %f.action.describe(), "fault");
            let mut note = None;
            let result: anyhow::Result<()> = async {
                let mut c = shared.cluster.lock().await;
                match &f.action {
                    Action::Partition { nodes } => {
                        let rest: Vec<String> = c
                            .nodes
                            .keys()
                            .filter(|n| !nodes.contains(n))
                            .cloned()
                            .collect();
                        c.set_links_between(nodes, &rest, LinkState::Cut);
                    }
                    Action::Split { a, b } => c.set_links_between(a, b, LinkState::Cut),
                    Action::Flap {
                        nodes,
                        period_secs,
                        until_secs,
                    } => {
                        let (shared, nodes) = (shared.clone(), nodes.clone());
                        let half = Duration::from_secs_f64(period_secs / 2.0);
                        let until = shared.started + Duration::from_secs_f64(*until_secs);
                        tokio::spawn(async move {
                            let mut cut = true;
                            while Instant::now() + half <= until {
                                {
                                    let c = shared.cluster.lock().await;
                                    let s = if cut { LinkState::Cut } else { LinkState::Up };
                                    c.set_links_of(&nodes, s);
                                }
                                shared.snapshot().await;
                                cut = !cut;
                                tokio::time::sleep(half).await;
                            }
                            shared
                                .cluster
                                .lock()
                                .await
                                .set_links_of(&nodes, LinkState::Up);
                            shared.snapshot().await;
                        });
                    }
                    Action::Degrade {
                        nodes,
                        latency_ms,
                        loss_pct,
                        bandwidth_kbps,
                    } => c.set_links_of(
                        nodes,
                        LinkState::Degraded {
                            latency_ms: *latency_ms,
                            loss_pct: *loss_pct,
                            bandwidth_kbps: *bandwidth_kbps,
                        },
                    ),
                    Action::Heal => c.heal_all(),
                    Action::Kill { node } => c.kill(node).await?,
                    Action::Restart { node } | Action::Start { node } => c.start(node).await?,
                    Action::Lose { node } => c.lose(node).await?,
                    Action::Skew { node, offset_secs } => {
                        skew_started.insert(node.clone(), t_ms);
                        c.set_skew(node, Some(*offset_secs)).await?
                    }
                    Action::Unskew { node } => {
                        // Before correcting the clock: what do the others hold of the writes
                        // the site made while its clock was wrong? They must hold none.
                        let since = skew_started.remove(node).unwrap_or(0);
                        note = Some(skew_evidence(&c, &journal, node, since, t_ms).await);
                        c.set_skew(node, None).await?
                    }
                    Action::DiskFull { node } => {
                        let bytes = c.fill_disk(node)?;
                        note = Some(format!("filled with {} MB", bytes / 1_000_000));
                        shared
                            .disk_full
                            .lock()
                            .map_err(|_| anyhow::anyhow!("poisoned"))?
                            .insert(node.clone());
                    }
                    Action::DronesLost { node } => {
                        if let Some(d) = c.stop_drones(node).await? {
                            note = Some(d);
                        }
                    }
                    Action::DiskFree { node } => {
                        c.free_disk(node)?;
                        shared
                            .disk_full
                            .lock()
                            .map_err(|_| anyhow::anyhow!("poisoned"))?
                            .remove(node);
                    }
                }
                Ok(())
            }
            .await;
            if let Err(e) = &result {
                tracing::error!(error = %format!("{e:#}"), fault = %f.action.describe(), "fault failed");
            }
            shared.snapshot().await;
            ev.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(FaultEvent {
                    t_ms,
                    action: f.action.clone(),
                    description: f.action.describe(),
                    error: result.err().map(|e| format!("{e:#}")),
                    note,
                });
        }
    });
    // The timeline ends before the workload does (checked when the scenario is loaded).
    let _ = task.await;
    let events = events.lock().unwrap_or_else(|e| e.into_inner()).clone();
    events
}

/// What the other running nodes hold of the skewed node's writes made since `since_ms`,
/// and how many batches they refused; written into the fault's note for the checker.
async fn skew_evidence(
    c: &Cluster,
    journal: &Journal,
    node: &str,
    since_ms: u64,
    now_ms: u64,
) -> String {
    let written: BTreeSet<String> = journal
        .attempts()
        .into_iter()
        .filter(|a| {
            a.site == node && a.op == Op::Raise && a.acked && a.t_ms >= since_ms && a.t_ms <= now_ms
        })
        .filter_map(|a| a.id)
        .collect();
    let mut held = 0usize;
    let mut refused_total = 0u64;
    for (name, n) in &c.nodes {
        if name == node || n.life != Life::Running {
            continue;
        }
        let mut o = Officer::new(name, n.http);
        if let Ok(records) = o.records("alerts").await {
            held += records
                .iter()
                .filter(|r| r["id"].as_str().is_some_and(|id| written.contains(id)))
                .count();
        }
        refused_total += refused(&n.url("/metrics")).await.unwrap_or(0);
    }
    format!(
        "skewed_writes={} held_elsewhere={held} refused_batches={refused_total}",
        written.len()
    )
}

/// `mizugiwa_sync_refused_batches` from a node's /metrics.
async fn refused(url: &str) -> Option<u64> {
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    text.lines()
        .find(|l| l.starts_with("mizugiwa_sync_refused_batches "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Every second until `done`: what each running command center lacks of each site's
/// acknowledged, not withdrawn alerts. Also notices crashed processes.
async fn sample_lag(
    shared: Arc<Shared>,
    journal: Journal,
    mut done: watch::Receiver<bool>,
) -> Vec<LagSample> {
    let mut samples = Vec::new();
    let mut officers: BTreeMap<String, Officer> = BTreeMap::new();
    loop {
        let t_ms = shared.started.elapsed().as_millis() as u64;
        let commands: Vec<(String, std::net::SocketAddr)> = {
            let mut c = shared.cluster.lock().await;
            c.reap();
            c.nodes
                .iter()
                .filter(|(_, n)| n.spec.role == Role::Command && n.life == Life::Running)
                .map(|(name, n)| (name.clone(), n.http))
                .collect()
        };
        let attempts = journal.attempts();
        let withdrawn: BTreeSet<&str> = attempts
            .iter()
            .filter(|a| a.op == Op::Withdraw)
            .filter_map(|a| a.id.as_deref())
            .collect();
        let mut missing = BTreeMap::new();
        for (name, addr) in commands {
            let o = officers
                .entry(name.clone())
                .or_insert_with(|| Officer::new(&name, addr));
            let Ok(records) = o.records("alerts").await else {
                continue;
            };
            let have: BTreeSet<&str> = records.iter().filter_map(|r| r["id"].as_str()).collect();
            let mut per_site: BTreeMap<String, u64> = BTreeMap::new();
            for a in attempts.iter().filter(|a| a.op == Op::Raise && a.acked) {
                let entry = per_site.entry(a.site.clone()).or_default();
                if let Some(id) = a.id.as_deref() {
                    if !have.contains(id) && !withdrawn.contains(id) {
                        *entry += 1;
                    }
                }
            }
            missing.insert(name, per_site);
        }
        samples.push(LagSample { t_ms, missing });
        if *done.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = done.changed() => {}
        }
    }
    samples
}

/// Polls the live replicas' state hashes from `settle` until they agree (or 3× the bound
/// passes); returns the seconds it took and the last hashes.
async fn wait_converged(
    shared: &Shared,
    scenario: &Scenario,
    settle: Instant,
) -> (Option<f64>, BTreeMap<String, String>) {
    let give_up = settle + Duration::from_secs_f64(scenario.converge_within_secs * 3.0 + 5.0);
    loop {
        let mut hashes = BTreeMap::new();
        {
            let c = shared.cluster.lock().await;
            for (name, n) in &c.nodes {
                if n.life == Life::Running {
                    match c.state_hash(name, &COMPARED).await {
                        Ok(h) => hashes.insert(name.clone(), h),
                        Err(e) => hashes.insert(name.clone(), format!("unreadable: {e:#}")),
                    };
                }
            }
        }
        let distinct: BTreeSet<&String> = hashes.values().collect();
        if distinct.len() == 1 {
            return (Some(settle.elapsed().as_secs_f64()), hashes);
        }
        if Instant::now() > give_up {
            return (None, hashes);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Loads, runs and reports a scenario file; returns whether every invariant held.
pub async fn run_file(path: &Path, opts: &RunOptions, report_dir: &Path) -> anyhow::Result<bool> {
    let scenario = Scenario::load(path)?;
    let (observed, verdicts) = run(&scenario, opts).await?;
    crate::report::write(report_dir, &observed, &verdicts)?;
    Ok(verdicts.passed())
}
