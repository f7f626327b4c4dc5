//! Scenario files: the topology, the workload and the timeline of faults of one drill.
//!
//! ```toml
//! name = "typhoon-coast"
//! summary = "Tsushima is cut off while it keeps recording"
//! duration_secs = 40          # the workload runs this long
//! converge_within_secs = 20   # bound for convergence after the last fault / the workload end
//! mesh = false                # sites also sync with each other
//!
//! [[nodes]]
//! name = "hq"
//! role = "command"
//! [[nodes]]
//! name = "tsushima"
//! role = "site"
//! kind = "coast"
//! ais_vessels = 8             # ships in an AIS feed served to the site (NMEA over TCP)
//!
//! [workload]
//! alerts_per_sec = 2.0        # per writing site
//!
//! [[faults]]
//! at_secs = 5
//! action = "partition"
//! nodes = ["tsushima"]
//! [[faults]]
//! at_secs = 25
//! action = "heal"
//! [[faults]]
//! at_secs = 30
//! action = "degrade"          # latency_ms, loss_pct, bandwidth_kbps: any of them
//! nodes = ["tsushima"]
//! bandwidth_kbps = 64         # a satellite phone; over it, a second's queue, then tail drop
//! latency_ms = 300
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// One drill.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (file name without `.toml` by convention).
    pub name: String,
    /// What the drill rehearses, for the report.
    pub summary: String,
    /// How long the workload writes, in seconds. Every fault happens before it ends.
    pub duration_secs: f64,
    /// Every replica must reach identical state within this many seconds after the later of
    /// the last fault and the end of the workload.
    pub converge_within_secs: f64,
    /// Sites also dial each other (so they keep syncing while every command center is down).
    #[serde(default)]
    pub mesh: bool,
    /// Refuse changes stamped more than this ahead of a node's clock (default 60).
    #[serde(default = "default_skew_secs")]
    pub max_clock_skew_secs: u64,
    /// Members silent this long stop holding back garbage collection (default a week).
    #[serde(default = "default_horizon_secs")]
    pub collection_horizon_secs: u64,
    /// The processes.
    pub nodes: Vec<NodeSpec>,
    /// What the users do during the drill.
    #[serde(default)]
    pub workload: Workload,
    /// The timeline.
    #[serde(default)]
    pub faults: Vec<Fault>,
}

fn default_skew_secs() -> u64 {
    60
}

fn default_horizon_secs() -> u64 {
    7 * 24 * 3600
}

/// A node of the topology.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Node name (and certificate name).
    pub name: String,
    /// `command` or `site`.
    pub role: Role,
    /// For sites: `port`, `airport` or `coast` (default `port`).
    #[serde(default)]
    pub kind: Option<String>,
    /// Not started with the others: a standby that a `start` fault brings up.
    #[serde(default)]
    pub standby: bool,
    /// Put the node's data folder on its own file system of this size (a tmpfs; needs root),
    /// so that `disk_full` can fill it.
    #[serde(default)]
    pub disk_mb: Option<u64>,
    /// E-gates at this site (an airport): passengers go through them during the drill.
    #[serde(default)]
    pub gates: u32,
    /// Simulated drones (`mizugiwa drone sim`, one process for the site) talking MAVLink to
    /// this site's ground station throughout the drill: their telemetry becomes the site's
    /// drone records and breadcrumb tracks, which must reach headquarters after any outage.
    #[serde(default)]
    pub drones: u8,
    /// Ships in an AIS feed that the drill serves this (coastal) site as NMEA over TCP, read by
    /// the site's `ais_tcp` source throughout the drill (see [`crate::ais_feed`]): every ship
    /// the site heard must reach every command center as its `vessels/<mmsi>` record, with its
    /// latest position, after any outage.
    #[serde(default)]
    pub ais_vessels: u16,
}

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `mizugiwa command`.
    Command,
    /// `mizugiwa node`.
    Site,
}

/// The officers' activity at every site: raising alerts through the site's API, acknowledging
/// and withdrawing some of them. Every call is logged with whether it was acknowledged.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// Alerts raised per second at each writing site.
    pub alerts_per_sec: f64,
    /// After each raise, the chance of acknowledging one of the site's earlier alerts.
    pub ack_ratio: f64,
    /// After each raise, the chance of withdrawing (deleting) one of the site's earlier alerts.
    pub withdraw_ratio: f64,
    /// The sites that write (default: every site).
    pub sites: Option<Vec<String>>,
    /// Passengers per second through each gate of a site with `gates`.
    pub passengers_per_sec: f64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            alerts_per_sec: 2.0,
            ack_ratio: 0.3,
            withdraw_ratio: 0.1,
            sites: None,
            passengers_per_sec: 1.0,
        }
    }
}

/// A fault at a point of the timeline. (Unknown keys are refused by [`Action`]: serde cannot
/// deny them here, beside a flattened enum.)
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Fault {
    /// Seconds after the workload started.
    pub at_secs: f64,
    /// What happens.
    #[serde(flatten)]
    pub action: Action,
}

/// Faults and recoveries.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Cut every sync link between these nodes and all the others.
    Partition { nodes: Vec<String> },
    /// Cut the links between two groups only.
    Split { a: Vec<String>, b: Vec<String> },
    /// Links of these nodes go down and up every `period_secs` (half the period each) until
    /// `until_secs` (on the drill's clock), then stay up.
    Flap {
        nodes: Vec<String>,
        period_secs: f64,
        until_secs: f64,
    },
    /// Links of these nodes get latency, loss and a bandwidth cap (each optional, at least
    /// one given). The cap holds in each direction of each link: datagrams over it wait in a
    /// queue of a second's sending, and beyond that are dropped (see [`crate::proxy`]).
    Degrade {
        nodes: Vec<String>,
        /// Added one-way delay, ms.
        #[serde(default)]
        latency_ms: u64,
        /// Datagrams lost at random, percent.
        #[serde(default)]
        loss_pct: f64,
        /// The link's rate, kbit/s (a satellite phone: 64–128).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bandwidth_kbps: Option<u32>,
    },
    /// Every link back to normal.
    Heal,
    /// `kill -9`.
    Kill { node: String },
    /// Start a killed node again on the same data.
    Restart { node: String },
    /// Start a standby node for the first time.
    Start { node: String },
    /// `kill -9` and its data folder deleted: the machine is gone for good.
    Lose { node: String },
    /// Restart the node with its wall clock this far off (libfaketime).
    Skew { node: String, offset_secs: i64 },
    /// Restart the node with the right time.
    Unskew { node: String },
    /// Fill the node's file system (needs `disk_mb`).
    DiskFull { node: String },
    /// Free it again.
    DiskFree { node: String },
    /// The site's drones fall silent (their simulator is killed), as if shot down or out of
    /// radio range: the site must raise a `drone_link_lost` alert, which must reach every
    /// command center (needs `drones` on the node).
    DronesLost { node: String },
}

impl Action {
    /// Every node the action names.
    pub fn nodes(&self) -> Vec<&str> {
        match self {
            Action::Partition { nodes }
            | Action::Flap { nodes, .. }
            | Action::Degrade { nodes, .. } => nodes.iter().map(String::as_str).collect(),
            Action::Split { a, b } => a.iter().chain(b).map(String::as_str).collect(),
            Action::Heal => vec![],
            Action::Kill { node }
            | Action::Restart { node }
            | Action::Start { node }
            | Action::Lose { node }
            | Action::Skew { node, .. }
            | Action::Unskew { node }
            | Action::DiskFull { node }
            | Action::DiskFree { node }
            | Action::DronesLost { node } => vec![node.as_str()],
        }
    }

    /// A one-line description for logs and the report.
    pub fn describe(&self) -> String {
        match self {
            Action::Partition { nodes } => format!("partition {} from the rest", nodes.join(", ")),
            Action::Split { a, b } => format!("split {} | {}", a.join(", "), b.join(", ")),
            Action::Flap {
                nodes,
                period_secs,
                until_secs,
            } => format!(
                "links of {} flap every {period_secs} s until t={until_secs} s",
                nodes.join(", ")
            ),
            Action::Degrade {
                nodes,
                latency_ms,
                loss_pct,
                bandwidth_kbps,
            } => {
                let state = crate::proxy::LinkState::Degraded {
                    latency_ms: *latency_ms,
                    loss_pct: *loss_pct,
                    bandwidth_kbps: *bandwidth_kbps,
                };
                format!(
                    "links of {}: {}",
                    nodes.join(", "),
                    state.degradation().unwrap_or_default()
                )
            }
            Action::Heal => "heal every link".into(),
            Action::Kill { node } => format!("kill -9 {node}"),
            Action::Restart { node } => format!("restart {node}"),
            Action::Start { node } => format!("start {node}"),
            Action::Lose { node } => format!("{node} lost for good (killed, data deleted)"),
            Action::Skew { node, offset_secs } => format!("{node}'s clock {offset_secs:+} s"),
            Action::Unskew { node } => format!("{node}'s clock corrected"),
            Action::DiskFull { node } => format!("{node}'s disk full"),
            Action::DiskFree { node } => format!("{node}'s disk freed"),
            Action::DronesLost { node } => format!("{node}'s drones fall silent"),
        }
    }
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let s: Scenario =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        s.check()
            .with_context(|| format!("checking {}", path.display()))?;
        Ok(s)
    }

    /// Names must exist, times must be in order and inside the workload, and so on.
    pub fn check(&self) -> anyhow::Result<()> {
        let mut names = BTreeSet::new();
        for n in &self.nodes {
            let ok = !n.name.is_empty()
                && n.name.len() <= 40
                && n.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                bail!("node name {:?}: use 1-40 of a-z, 0-9 and -", n.name);
            }
            if !names.insert(n.name.as_str()) {
                bail!("node {:?} is listed twice", n.name);
            }
        }
        if !self
            .nodes
            .iter()
            .any(|n| n.role == Role::Command && !n.standby)
        {
            bail!("the topology needs a command center that starts with the drill");
        }
        if !(self.duration_secs > 0.0 && self.converge_within_secs > 0.0) {
            bail!("duration_secs and converge_within_secs must be positive");
        }
        let w = &self.workload;
        if !(w.alerts_per_sec > 0.0 && w.alerts_per_sec <= 200.0) {
            bail!("workload.alerts_per_sec must be in (0, 200]");
        }
        if !(w.passengers_per_sec > 0.0 && w.passengers_per_sec <= 100.0) {
            bail!("workload.passengers_per_sec must be in (0, 100]");
        }
        for n in self.nodes.iter().filter(|n| n.gates > 0) {
            if n.role != Role::Site || n.gates > 16 {
                bail!("node {:?}: gates (at most 16) belong to a site", n.name);
            }
        }
        for n in self.nodes.iter().filter(|n| n.ais_vessels > 0) {
            if n.role != Role::Site || n.ais_vessels > 500 {
                bail!(
                    "node {:?}: ais_vessels (at most 500) belong to a site",
                    n.name
                );
            }
        }
        for r in [w.ack_ratio, w.withdraw_ratio] {
            if !(0.0..=1.0).contains(&r) {
                bail!("workload ratios must be within 0..1");
            }
        }
        for s in w.sites.iter().flatten() {
            match self.node(s) {
                Some(n) if n.role == Role::Site => {}
                _ => bail!("workload site {s:?} is not a site of the topology"),
            }
        }
        let mut last = 0.0;
        for f in &self.faults {
            if f.at_secs < last {
                bail!("faults must be in time order ({} after {last})", f.at_secs);
            }
            if f.at_secs >= self.duration_secs {
                bail!(
                    "fault at {} s is not before the end of the workload ({} s)",
                    f.at_secs,
                    self.duration_secs
                );
            }
            last = f.at_secs;
            for n in f.action.nodes() {
                let Some(spec) = self.node(n) else {
                    bail!("fault at {} s names unknown node {n:?}", f.at_secs);
                };
                if matches!(f.action, Action::DiskFull { .. } | Action::DiskFree { .. })
                    && spec.disk_mb.is_none()
                {
                    bail!("disk faults need `disk_mb` on node {n:?}");
                }
                if matches!(f.action, Action::DronesLost { .. }) && spec.drones == 0 {
                    bail!("drones_lost needs `drones` on node {n:?}");
                }
            }
            if let Action::Flap {
                period_secs,
                until_secs,
                ..
            } = &f.action
            {
                if *period_secs <= 0.0 || *until_secs > self.duration_secs {
                    bail!("flap needs a positive period and must end within the workload");
                }
            }
            if let Action::Degrade {
                latency_ms,
                loss_pct,
                bandwidth_kbps,
                ..
            } = &f.action
            {
                if !(0.0..=100.0).contains(loss_pct) {
                    bail!("loss_pct must be within 0..100");
                }
                if bandwidth_kbps.is_some_and(|k| !(1..=10_000_000).contains(&k)) {
                    bail!("bandwidth_kbps must be within 1..10000000 (kbit/s)");
                }
                if *latency_ms == 0 && *loss_pct == 0.0 && bandwidth_kbps.is_none() {
                    bail!("degrade needs latency_ms, loss_pct or bandwidth_kbps");
                }
            }
        }
        Ok(())
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The sites whose officers write.
    pub fn writing_sites(&self) -> Vec<String> {
        match &self.workload.sites {
            Some(s) => s.clone(),
            None => self
                .nodes
                .iter()
                .filter(|n| n.role == Role::Site)
                .map(|n| n.name.clone())
                .collect(),
        }
    }

    /// Every gate of the drill: (site, gate id).
    pub fn gates(&self) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .flat_map(|n| (1..=n.gates).map(move |g| (n.name.clone(), format!("gate{g}"))))
            .collect()
    }

    /// When convergence is measured from: the later of the last fault and the workload's end.
    pub fn settle_at_secs(&self) -> f64 {
        let last_fault = self
            .faults
            .iter()
            .map(|f| match &f.action {
                Action::Flap { until_secs, .. } => *until_secs,
                _ => f.at_secs,
            })
            .fold(0.0, f64::max);
        last_fault.max(self.duration_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Scenario> {
        let s: Scenario = toml::from_str(text)?;
        s.check()?;
        Ok(s)
    }

    const BASE: &str = r#"
name = "t"
summary = "s"
duration_secs = 10
converge_within_secs = 5
[[nodes]]
name = "hq"
role = "command"
[[nodes]]
name = "a"
role = "site"
"#;

    #[test]
    fn a_good_scenario_parses() {
        let s = parse(&format!(
            "{BASE}\n[[faults]]\nat_secs = 1\naction = \"partition\"\nnodes = [\"a\"]\n[[faults]]\nat_secs = 2\naction = \"heal\"\n"
        ))
        .unwrap();
        assert_eq!(s.faults.len(), 2);
        assert_eq!(s.writing_sites(), ["a"]);
        assert_eq!(s.faults[1].action, Action::Heal);
    }

    #[test]
    fn a_link_can_be_narrowed_alone_or_with_latency_and_loss() {
        let s = parse(&format!(
            "{BASE}\n[[faults]]\nat_secs = 1\naction = \"degrade\"\nnodes = [\"a\"]\nbandwidth_kbps = 64\n\
             [[faults]]\nat_secs = 2\naction = \"degrade\"\nnodes = [\"a\"]\nbandwidth_kbps = 128\nlatency_ms = 300\nloss_pct = 1\n\
             [[faults]]\nat_secs = 3\naction = \"degrade\"\nnodes = [\"a\"]\nlatency_ms = 80\nloss_pct = 10\n"
        ))
        .unwrap();
        let described: Vec<String> = s.faults.iter().map(|f| f.action.describe()).collect();
        assert_eq!(
            described,
            [
                "links of a: narrowed to 64 kbit/s",
                "links of a: narrowed to 128 kbit/s, +300 ms, 1% loss",
                "links of a: +80 ms, 10% loss",
            ]
        );
        assert_eq!(
            s.faults[0].action,
            Action::Degrade {
                nodes: vec!["a".into()],
                latency_ms: 0,
                loss_pct: 0.0,
                bandwidth_kbps: Some(64)
            }
        );
    }

    /// The full-length drills run for hours and never in `make test`: their files at least
    /// load, as do the short ones, and each short one has its full version.
    #[test]
    fn every_shipped_scenario_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut loaded = 0;
        for sub in [dir.clone(), dir.join("short")] {
            for entry in std::fs::read_dir(&sub).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
                    assert_eq!(
                        Some(s.name.as_str()),
                        path.file_stem().and_then(|n| n.to_str())
                    );
                    assert!(
                        dir.join(path.file_name().unwrap()).exists(),
                        "{}",
                        path.display()
                    );
                    loaded += 1;
                }
            }
        }
        assert!(loaded >= 14, "{loaded}");
        let flapping = Scenario::load(&dir.join("short/flapping-links.toml")).unwrap();
        assert!(flapping.faults.iter().any(|f| matches!(
            f.action,
            Action::Degrade {
                bandwidth_kbps: Some(_),
                ..
            }
        )));
        let typhoon = Scenario::load(&dir.join("short/typhoon-coast.toml")).unwrap();
        assert!(typhoon.node("tsushima").unwrap().ais_vessels > 0);
    }

    #[test]
    fn ais_vessels_belong_to_sites() {
        let s =
            parse(&BASE.replace("role = \"site\"", "role = \"site\"\nais_vessels = 8")).unwrap();
        assert_eq!(s.node("a").unwrap().ais_vessels, 8);
        let err = parse(&BASE.replace("role = \"command\"", "role = \"command\"\nais_vessels = 8"))
            .unwrap_err();
        assert!(format!("{err:#}").contains("ais_vessels"), "{err:#}");
    }

    #[test]
    fn mistakes_are_explained() {
        for (extra, why) in [
            ("[[faults]]\nat_secs = 1\naction = \"kill\"\nnode = \"zz\"\n", "unknown node"),
            ("[[faults]]\nat_secs = 11\naction = \"heal\"\n", "before the end"),
            ("[[faults]]\nat_secs = 1\naction = \"disk_full\"\nnode = \"a\"\n", "disk_mb"),
            ("[[faults]]\nat_secs = 1\naction = \"explode\"\n", "unknown variant"),
            ("[[faults]]\nat_secs = 3\naction = \"heal\"\n[[faults]]\nat_secs = 2\naction = \"heal\"\n", "time order"),
            ("[[faults]]\nat_secs = 1\naction = \"degrade\"\nnodes = [\"a\"]\n", "needs latency_ms, loss_pct or bandwidth_kbps"),
            ("[[faults]]\nat_secs = 1\naction = \"degrade\"\nnodes = [\"a\"]\nbandwidth_kbps = 0\n", "bandwidth_kbps must be within"),
            ("[[faults]]\nat_secs = 1\naction = \"degrade\"\nnodes = [\"a\"]\nbandwidth = 64\n", "unknown field"),
        ] {
            let err = format!("{:#}", parse(&format!("{BASE}\n{extra}")).unwrap_err());
            assert!(err.contains(why), "{extra}: {err}");
        }
    }
}
