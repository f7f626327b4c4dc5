//! The invariants a drill holds the deployment to, judged from what it observed.

mod ais;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::cluster::Life;
use crate::runner::{NodeState, Observed};
use crate::scenario::Action;
use crate::workload::{Attempt, Op};

/// One invariant's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Short name.
    pub name: String,
    /// What it means, for the report's reader.
    pub description: String,
    pub passed: bool,
    /// What was checked, in numbers.
    pub checked: String,
    /// Each violation, precisely enough to find it in the logs.
    pub evidence: Vec<String>,
}

/// Every verdict of a drill.
#[derive(Debug, Clone, Serialize)]
pub struct Verdicts(pub Vec<Verdict>);

impl Verdicts {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.0.iter().all(|v| v.passed)
    }
}

/// Evidence lists are capped; the count is always given.
const MAX_EVIDENCE: usize = 50;

fn verdict(name: &str, description: &str, checked: String, evidence: Vec<String>) -> Verdict {
    let n = evidence.len();
    let mut evidence = evidence;
    if n > MAX_EVIDENCE {
        evidence.truncate(MAX_EVIDENCE);
        evidence.push(format!("... and {} more", n - MAX_EVIDENCE));
    }
    Verdict {
        name: name.into(),
        description: description.into(),
        passed: n == 0,
        checked,
        evidence,
    }
}

/// A node's condition at time `t_ms`.
pub fn state_at<'a>(states: &'a [NodeState], node: &str, t_ms: u64) -> Option<&'a NodeState> {
    states
        .iter()
        .rev()
        .find(|s| s.node == node && s.t_ms <= t_ms)
}

/// Whether a fault that stops, starts or restarts the call's site (or fills its disk) came
/// during the call or within a second of it: such a call may fail, and is not held against
/// the site.
fn process_fault_near(o: &Observed, a: &Attempt) -> bool {
    o.faults.iter().any(|f| {
        let disruptive = !matches!(
            f.action,
            Action::Partition { .. }
                | Action::Split { .. }
                | Action::Flap { .. }
                | Action::Degrade { .. }
                | Action::Heal
        );
        disruptive
            && f.action.nodes().contains(&a.site.as_str())
            && f.t_ms <= a.t_ms + a.took_ms + 1000
            && f.t_ms + 1000 >= a.t_ms
    })
}

/// Judges the drill.
pub fn check(o: &Observed) -> Verdicts {
    let live: Vec<&String> = o.finals.keys().collect();
    let raised: Vec<&Attempt> = o
        .attempts
        .iter()
        .filter(|a| a.op == Op::Raise && a.acked)
        .collect();
    // Any withdraw attempt, acknowledged or not, makes the alert's end state uncertain
    // (absent if the delete landed); only acknowledged ones must be absent.
    let withdraw_tried: BTreeSet<&str> = o
        .attempts
        .iter()
        .filter(|a| a.op == Op::Withdraw)
        .filter_map(|a| a.id.as_deref())
        .collect();
    let withdrawn: Vec<&Attempt> = o
        .attempts
        .iter()
        .filter(|a| a.op == Op::Withdraw && a.acked)
        .collect();
    let acked_acks: Vec<&Attempt> = o
        .attempts
        .iter()
        .filter(|a| a.op == Op::Ack && a.acked)
        .collect();
    let mut out = Vec::new();

    // 1. Nothing acknowledged is lost.
    let mut lost = Vec::new();
    let mut kept = 0;
    for a in &raised {
        let Some(id) = a.id.as_deref() else { continue };
        if withdraw_tried.contains(id) {
            continue;
        }
        kept += 1;
        let missing: Vec<&str> = live
            .iter()
            .filter(|n| !o.finals[**n].contains_key(id))
            .map(|n| n.as_str())
            .collect();
        if !missing.is_empty() {
            lost.push(format!(
                "alert {id} (raised at {} t={:.1} s, acknowledged) is missing at {}",
                a.site,
                a.t_ms as f64 / 1000.0,
                missing.join(", ")
            ));
        }
    }
    out.push(verdict(
        "no_acknowledged_write_lost",
        "Every alert a site acknowledged (and nobody withdrew) is on every surviving replica at the end.",
        format!("{kept} acknowledged alerts × {} replicas", live.len()),
        lost,
    ));

    // 2. Nothing deleted comes back.
    let mut back = Vec::new();
    for a in &withdrawn {
        let Some(id) = a.id.as_deref() else { continue };
        for n in &live {
            if o.finals[*n].contains_key(id) {
                back.push(format!(
                    "alert {id} (withdrawn at {} t={:.1} s, acknowledged) is present at {n}",
                    a.site,
                    a.t_ms as f64 / 1000.0
                ));
            }
        }
    }
    out.push(verdict(
        "no_deleted_record_returns",
        "No alert whose withdrawal was acknowledged exists on any replica at the end.",
        format!(
            "{} acknowledged withdrawals × {} replicas",
            withdrawn.len(),
            live.len()
        ),
        back,
    ));

    // 3. Acknowledged workflow steps hold.
    let mut regressed = Vec::new();
    let mut acks_checked = 0;
    for a in &acked_acks {
        let Some(id) = a.id.as_deref() else { continue };
        if withdraw_tried.contains(id) {
            continue;
        }
        acks_checked += 1;
        for n in &live {
            let status = o.finals[*n]
                .get(id)
                .and_then(|r| r["fields"]["status"].as_str().map(str::to_owned));
            if !matches!(status.as_deref(), Some("acknowledged" | "resolved")) {
                regressed.push(format!(
                    "alert {id} acknowledged at {} t={:.1} s has status {status:?} at {n}",
                    a.site,
                    a.t_ms as f64 / 1000.0
                ));
            }
        }
    }
    out.push(verdict(
        "acknowledged_actions_hold",
        "Every acknowledged alert acknowledgement is in force on every replica (status never goes back).",
        format!("{acks_checked} acknowledgements × {} replicas", live.len()),
        regressed,
    ));

    // 3b. Every gate decision on record reaches every replica.
    let passages: Vec<&Attempt> = o
        .attempts
        .iter()
        .filter(|a| a.op == Op::Pass && a.acked)
        .collect();
    if o.scenario.nodes.iter().any(|n| n.gates > 0) {
        let mut missing = Vec::new();
        for a in &passages {
            let Some(id) = a.id.as_deref() else { continue };
            let lacking: Vec<&str> = live
                .iter()
                .filter(|n| !o.finals[**n].contains_key(id))
                .map(|n| n.as_str())
                .collect();
            if !lacking.is_empty() {
                missing.push(format!(
                    "gate passage {id} (decided at {} t={:.1} s) is missing at {}",
                    a.site,
                    a.t_ms as f64 / 1000.0,
                    lacking.join(", ")
                ));
            }
        }
        out.push(verdict(
            "gate_decisions_reach_everywhere",
            "Every passage a gate was answered for is on record on every surviving replica at the end.",
            format!("{} passages × {} replicas", passages.len(), live.len()),
            missing,
        ));
    }

    // 3c. Every airport's decision journal holds on every replica: each decision signed by the
    // site, chained, none missing, every passage as signed, through kills and restarts.
    if !o.journals.is_empty() && o.journals.values().any(|c| !c.is_empty()) {
        let mut broken = Vec::new();
        let mut entries = 0;
        let mut checks = 0;
        for (replica, sites) in &o.journals {
            for (site, check) in sites {
                checks += 1;
                match check {
                    Ok(c) if c["intact"] == true => entries += c["verified"].as_u64().unwrap_or(0),
                    Ok(c) => broken.push(format!(
                        "{site}'s journal at {replica}: problems {}, passages outside it {}, altered {}",
                        c["problems"], c["unjournaled"], c["altered"]
                    )),
                    // An airport whose gates were never used has no journal yet: not a violation.
                    Err(e) if e.contains("no journal of site") && !passages.iter().any(|a| &a.site == site) => {}
                    Err(e) => broken.push(format!("{site}'s journal at {replica}: {e}")),
                }
            }
        }
        out.push(verdict(
            "gate_journals_intact",
            "Every airport's decision journal checks out on every replica: signed by the site's certificate, chained, nothing missing or rewritten.",
            format!("{checks} journal checks, {entries} entries verified"),
            broken,
        ));
    }

    // 4. Convergence within the bound.
    let bound = o.scenario.converge_within_secs;
    let mut not_converged = Vec::new();
    match o.converged_after_secs {
        Some(s) if s <= bound => {}
        Some(s) => not_converged.push(format!("converged after {s:.1} s, bound {bound} s")),
        None => {
            let distinct: BTreeSet<&String> = o.hashes.values().collect();
            not_converged.push(format!(
                "{} different state hashes at the end: {:?}",
                distinct.len(),
                o.hashes
            ))
        }
    }
    out.push(verdict(
        "replicas_converge",
        "After the last fault and the end of the workload, every running replica reaches the same state hash within the scenario's bound.",
        match o.converged_after_secs {
            Some(s) => format!("{} replicas, identical after {s:.2} s (bound {bound} s)", live.len()),
            None => format!("{} replicas (bound {bound} s)", live.len()),
        },
        not_converged,
    ));

    // 5. Sites keep working: every call to a running site with disk space is acknowledged,
    //    partitioned from headquarters or not.
    let mut refused = Vec::new();
    let mut during_outage = 0;
    let mut checked = 0;
    for a in &o.attempts {
        let Some(st) = state_at(&o.states, &a.site, a.t_ms) else {
            continue;
        };
        // A call that straddles a restart or a fault change is not held against the site.
        let end = state_at(&o.states, &a.site, a.t_ms + a.took_ms);
        let steady = |s: &NodeState| s.life == Life::Running && !s.disk_full;
        if !steady(st) || !end.is_some_and(steady) || process_fault_near(o, a) {
            continue;
        }
        checked += 1;
        if !st.reaches_command {
            during_outage += 1;
        }
        if !a.acked {
            refused.push(format!(
                "{:?} at {} t={:.1} s{} failed: {}",
                a.op,
                a.site,
                a.t_ms as f64 / 1000.0,
                if st.reaches_command {
                    ""
                } else {
                    " (cut off from headquarters)"
                },
                a.error.as_deref().unwrap_or("?")
            ));
        }
    }
    out.push(verdict(
        "sites_keep_working",
        "Officers' calls and gates' decisions at a running site succeed whether or not it can reach headquarters.",
        format!("{checked} calls, {during_outage} of them while the site was cut off"),
        refused,
    ));

    // 6. Alerts raised during an outage reach headquarters afterwards.
    let commands: Vec<&String> = live
        .iter()
        .copied()
        .filter(|n| {
            o.scenario
                .node(n)
                .is_some_and(|s| s.role == crate::scenario::Role::Command)
        })
        .collect();
    let mut unreached = Vec::new();
    let mut outage_alerts = 0;
    for a in &raised {
        let Some(id) = a.id.as_deref() else { continue };
        let cut = state_at(&o.states, &a.site, a.t_ms).is_some_and(|s| !s.reaches_command);
        if !cut || withdraw_tried.contains(id) {
            continue;
        }
        outage_alerts += 1;
        for c in &commands {
            if !o.finals[*c].contains_key(id) {
                unreached.push(format!(
                    "alert {id} raised at {} t={:.1} s during its outage never reached {c}",
                    a.site,
                    a.t_ms as f64 / 1000.0
                ));
            }
        }
    }
    out.push(verdict(
        "outage_alerts_reach_hq",
        "Alerts raised at a site while it was cut off from every command center are at every command center at the end.",
        format!("{outage_alerts} alerts raised during outages × {} command centers", commands.len()),
        unreached,
    ));

    // 6b. Drone tracks recorded while a site was cut off reach headquarters afterwards.
    let drone_sites: Vec<&crate::scenario::NodeSpec> =
        o.scenario.nodes.iter().filter(|n| n.drones > 0).collect();
    if !drone_sites.is_empty() {
        let points = |r: &serde_json::Value| -> Vec<u64> {
            let p = &r["fields"]["points"];
            let parsed;
            let list = match p {
                serde_json::Value::String(text) => {
                    parsed = serde_json::from_str::<serde_json::Value>(text).unwrap_or_default();
                    &parsed
                }
                other => other,
            };
            list.as_array()
                .into_iter()
                .flatten()
                .filter_map(|pt| pt.get(0).and_then(|t| t.as_u64()))
                .collect()
        };
        let mut missing = Vec::new();
        let mut during = 0usize;
        let mut notes = Vec::new();
        for site in &drone_sites {
            let Some(own) = o.tracks.get(&site.name) else {
                missing.push(format!(
                    "{} was not running at the end: its tracks cannot be read",
                    site.name
                ));
                continue;
            };
            let cut = |at_ms: u64| {
                at_ms
                    .checked_sub(o.started_at_unix_ms)
                    .and_then(|t| state_at(&o.states, &site.name, t))
                    .is_some_and(|s| s.life == Life::Running && !s.reaches_command)
            };
            // The longest stretch the site ran while cut off: shorter than a few breadcrumb
            // periods (2 s) plus the drones' rediscovery proves nothing either way.
            let mut longest_cut_ms = 0u64;
            let mut cut_since: Option<u64> = None;
            for st in o.states.iter().filter(|s| s.node == site.name) {
                let cut_now = st.life == Life::Running && !st.reaches_command;
                match (cut_now, cut_since) {
                    (true, None) => cut_since = Some(st.t_ms),
                    (false, Some(since)) => {
                        longest_cut_ms = longest_cut_ms.max(st.t_ms - since);
                        cut_since = None;
                    }
                    _ => {}
                }
            }
            let was_cut_running = longest_cut_ms >= 6_000;
            let mut site_points = 0;
            for (id, record) in own {
                for at in points(record).into_iter().filter(|t| cut(*t)) {
                    site_points += 1;
                    for c in &commands {
                        let there = o
                            .tracks
                            .get(*c)
                            .and_then(|t| t.get(id))
                            .is_some_and(|r| points(r).contains(&at));
                        if !there {
                            missing.push(format!("{} track point {id} @ {at} (recorded during its outage) is not at {c}", site.name));
                        }
                    }
                }
            }
            if was_cut_running && site_points == 0 {
                missing.push(format!("{} was cut off while running but recorded no drone track point then: its drones' telemetry stopped becoming records", site.name));
            }
            during += site_points;
            notes.push(format!(
                "{}: {} drones, {} tracks",
                site.name,
                site.drones,
                own.len()
            ));
        }
        out.push(verdict(
            "drone_tracks_through_outages",
            "Drone track points a site recorded while cut off from every command center are at every command center at the end.",
            format!("{during} points recorded during outages × {} command centers ({})", commands.len(), notes.join("; ")),
            missing,
        ));
    }

    // 6c. A site whose drones fell silent raised the alarm, and every command center has it.
    let silenced: Vec<&crate::runner::FaultEvent> = o
        .faults
        .iter()
        .filter(|f| matches!(f.action, Action::DronesLost { .. }) && f.error.is_none())
        .collect();
    if !silenced.is_empty() {
        let mut missing = Vec::new();
        for f in &silenced {
            let Action::DronesLost { node } = &f.action else {
                continue;
            };
            let after = o.started_at_unix_ms + f.t_ms;
            for c in &commands {
                let found = o.finals[*c].values().any(|r| {
                    let fields = &r["fields"];
                    fields["kind"] == "drone_link_lost"
                        && fields["site"] == node.as_str()
                        && fields["raised_ms"].as_u64().is_some_and(|t| t >= after)
                });
                if !found {
                    missing.push(format!(
                        "{node}'s drones fell silent at t={:.1} s but {c} has no drone_link_lost alert from {node} raised after it",
                        f.t_ms as f64 / 1000.0
                    ));
                }
            }
        }
        out.push(verdict(
            "lost_drones_alarm_hq",
            "When a site's drones fall silent, the site raises a drone_link_lost alert and every command center has it at the end, outage or not.",
            format!("{} drone losses × {} command centers", silenced.len(), commands.len()),
            missing,
        ));
    }

    // 6d. Every ship a site's AIS feed reported reaches every command center, with its latest
    // position.
    out.extend(ais::vessels_reach_hq(o, &commands));

    // 7. Clock skew beyond the limit is refused and reported, not merged.
    let skews: Vec<&crate::runner::FaultEvent> = o
        .faults
        .iter()
        .filter(|f| matches!(f.action, Action::Unskew { .. }))
        .collect();
    if o.faults
        .iter()
        .any(|f| matches!(f.action, Action::Skew { .. }))
    {
        let mut bad = Vec::new();
        if skews.is_empty() {
            bad.push("the scenario skews a clock but never corrects it: nothing to judge".into());
        }
        for f in &skews {
            let note = f.note.as_deref().unwrap_or("");
            let field = |k: &str| -> Option<u64> {
                note.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{k}=")))
                    .and_then(|v| v.parse().ok())
            };
            match (
                field("skewed_writes"),
                field("held_elsewhere"),
                field("refused_batches"),
            ) {
                (Some(written), Some(held), Some(refused)) => {
                    if written == 0 {
                        bad.push(format!("{}: the site made no writes while its clock was wrong: nothing was tested", f.description));
                    }
                    if held > 0 {
                        bad.push(format!("{}: {held} writes made with the wrong clock were merged elsewhere ({note})", f.description));
                    }
                    if refused == 0 {
                        bad.push(format!(
                            "{}: no peer reported a refused batch ({note})",
                            f.description
                        ));
                    }
                }
                _ => bad.push(format!("{}: no evidence recorded ({note})", f.description)),
            }
        }
        out.push(verdict(
            "clock_skew_refused",
            "While a site's clock is ahead beyond the limit, its writes are refused by every peer (and the refusals show in their metrics), not merged.",
            skews
                .iter()
                .map(|f| f.note.clone().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("; "),
            bad,
        ));
    }

    // 8. No process died on its own, and every fault could be applied.
    let mut broken: Vec<String> = o
        .died
        .iter()
        .map(|d| format!("exited on its own: {d}"))
        .collect();
    for f in &o.faults {
        if let Some(e) = &f.error {
            broken.push(format!(
                "fault at t={:.1} s ({}) could not be applied: {e}",
                f.t_ms as f64 / 1000.0,
                f.description
            ));
        }
    }
    out.push(verdict(
        "processes_survive",
        "No node exits unless the drill kills it, and every fault of the timeline was applied.",
        format!(
            "{} nodes, {} faults",
            o.scenario.nodes.len(),
            o.faults.len()
        ),
        broken,
    ));
    Verdicts(out)
}

/// Per site: how long after its last outage ended the command centers had all of its
/// acknowledged alerts again (recovery time), and how many it lost (recovery point).
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    pub site: String,
    /// When its last outage (cut off, killed, disk full) ended, ms after the start.
    pub outage_end_ms: Option<u64>,
    /// When the command centers next lacked none of its alerts.
    pub caught_up_ms: Option<u64>,
    pub recovery_secs: Option<f64>,
    /// Acknowledged alerts of the site missing somewhere at the end.
    pub lost_writes: usize,
}

/// Recovery of every writing site.
pub fn recovery(o: &Observed, verdicts: &Verdicts) -> Vec<Recovery> {
    let lost_by_site: BTreeMap<String, usize> = verdicts
        .0
        .iter()
        .filter(|v| v.name == "no_acknowledged_write_lost")
        .flat_map(|v| v.evidence.iter())
        .filter_map(|e| {
            e.split("raised at ")
                .nth(1)?
                .split(' ')
                .next()
                .map(str::to_owned)
        })
        .fold(BTreeMap::new(), |mut m, s| {
            *m.entry(s).or_default() += 1;
            m
        });
    o.scenario
        .writing_sites()
        .into_iter()
        .map(|site| {
            let mine: Vec<&NodeState> = o.states.iter().filter(|s| s.node == site).collect();
            let bad = |s: &NodeState| !s.reaches_command || s.life != Life::Running || s.disk_full;
            let mut outage_end = None;
            for w in mine.windows(2) {
                if bad(w[0]) && !bad(w[1]) {
                    outage_end = Some(w[1].t_ms);
                }
            }
            let caught_up = outage_end.and_then(|end| {
                o.lag
                    .iter()
                    .filter(|l| l.t_ms >= end && !l.missing.is_empty())
                    .find(|l| {
                        l.missing
                            .values()
                            .all(|m| m.get(&site).copied().unwrap_or(0) == 0)
                    })
                    .map(|l| l.t_ms)
            });
            Recovery {
                lost_writes: lost_by_site.get(&site).copied().unwrap_or(0),
                recovery_secs: match (outage_end, caught_up) {
                    (Some(e), Some(c)) => Some((c - e) as f64 / 1000.0),
                    _ => None,
                },
                site,
                outage_end_ms: outage_end,
                caught_up_ms: caught_up,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{NodeState, Observed};
    use serde_json::json;

    fn state(node: &str, t_ms: u64, reaches_command: bool) -> NodeState {
        NodeState {
            t_ms,
            node: node.into(),
            life: Life::Running,
            reaches_command,
            skew_secs: None,
            disk_full: false,
            degraded: None,
        }
    }

    fn track(points: &[u64]) -> serde_json::Value {
        let pts: Vec<serde_json::Value> = points.iter().map(|t| json!([t, 34.2, 129.3])).collect();
        json!({"id": "drone:tsushima-uav1:0", "fields": {"kind": "drone", "points": serde_json::to_string(&pts).unwrap()}})
    }

    fn observed(hq_points: &[u64]) -> Observed {
        let scenario: crate::scenario::Scenario = toml::from_str(
            "name = \"t\"\nsummary = \"s\"\nduration_secs = 30\nconverge_within_secs = 20\n\
             [[nodes]]\nname = \"hq\"\nrole = \"command\"\n\
             [[nodes]]\nname = \"tsushima\"\nrole = \"site\"\nkind = \"coast\"\ndrones = 1\n",
        )
        .unwrap();
        let start = 1_000_000;
        let id = "drone:tsushima-uav1:0".to_string();
        Observed {
            scenario,
            started_at_unix_ms: start,
            faults: vec![],
            // Cut off from 5 s to 20 s.
            states: vec![
                state("hq", 0, true),
                state("tsushima", 0, true),
                state("tsushima", 5_000, false),
                state("tsushima", 20_000, true),
            ],
            attempts: vec![],
            lag: vec![],
            died: vec![],
            converged_after_secs: Some(1.0),
            hashes: Default::default(),
            finals: [
                ("hq".to_string(), Default::default()),
                ("tsushima".to_string(), Default::default()),
            ]
            .into(),
            refused_batches: Default::default(),
            journals: Default::default(),
            tracks: [
                (
                    "tsushima".to_string(),
                    [(
                        id.clone(),
                        track(&[start + 1_000, start + 8_000, start + 21_000]),
                    )]
                    .into(),
                ),
                ("hq".to_string(), [(id, track(hq_points))].into()),
            ]
            .into(),
            ais_sent: Default::default(),
            vessels: Default::default(),
            links: vec![],
        }
    }

    fn drone_verdict(o: &Observed) -> Verdict {
        check(o)
            .0
            .into_iter()
            .find(|v| v.name == "drone_tracks_through_outages")
            .expect("the drone verdict")
    }

    #[test]
    fn a_track_point_from_the_outage_missing_at_hq_fails_the_drill() {
        let start = 1_000_000;
        let ok = drone_verdict(&observed(&[start + 1_000, start + 8_000, start + 21_000]));
        assert!(ok.passed, "{:?}", ok.evidence);
        assert!(
            ok.checked.starts_with("1 points recorded during outages"),
            "{}",
            ok.checked
        );
        // HQ lacks the point recorded at 8 s, during the cut (the others do not matter here).
        let lost = drone_verdict(&observed(&[start + 1_000, start + 21_000]));
        assert!(!lost.passed);
        assert!(
            lost.evidence[0].contains(&format!("@ {}", start + 8_000)),
            "{:?}",
            lost.evidence
        );
    }

    #[test]
    fn silent_drones_without_an_alarm_at_hq_fail_the_drill() {
        let start = 1_000_000;
        let mut o = observed(&[start + 1_000, start + 8_000, start + 21_000]);
        o.faults.push(crate::runner::FaultEvent {
            t_ms: 10_000,
            action: Action::DronesLost {
                node: "tsushima".into(),
            },
            description: "tsushima's drones fall silent".into(),
            error: None,
            note: None,
        });
        let verdict = |o: &Observed| {
            check(o)
                .0
                .into_iter()
                .find(|v| v.name == "lost_drones_alarm_hq")
                .expect("the verdict")
        };
        let v = verdict(&o);
        assert!(
            !v.passed && v.evidence[0].contains("no drone_link_lost alert"),
            "{:?}",
            v.evidence
        );
        // An alert raised before the drones fell silent does not count; one after does.
        let alert = |raised: u64| json!({"id": "a", "fields": {"kind": "drone_link_lost", "site": "tsushima", "raised_ms": raised}});
        o.finals
            .get_mut("hq")
            .unwrap()
            .insert("early".into(), alert(start + 9_000));
        assert!(!verdict(&o).passed);
        o.finals
            .get_mut("hq")
            .unwrap()
            .insert("late".into(), alert(start + 13_500));
        assert!(verdict(&o).passed);
    }
}
