//! The AIS invariant: every ship a coastal site heard reaches every command center, with the
//! latest position the site had of it, however long the site was cut off.

use std::collections::BTreeMap;

use super::{state_at, verdict, Verdict};
use crate::cluster::Life;
use crate::runner::{NodeState, Observed};

/// A sentence counts as heard when the site took it and then ran, with disk space, for this
/// long: ample for the site to decode it and write the vessel's record.
const STORED_WITHIN_MS: u64 = 2_000;

/// Whether `site` ran, with disk space, from `from_ms` to `to_ms` without a break.
fn steady(states: &[NodeState], site: &str, from_ms: u64, to_ms: u64) -> bool {
    let ok = |s: &NodeState| s.life == Life::Running && !s.disk_full;
    state_at(states, site, from_ms).is_some_and(ok)
        && states
            .iter()
            .filter(|s| s.node == site && s.t_ms > from_ms && s.t_ms <= to_ms)
            .all(ok)
}

/// A vessel record's `at_ms` (the time of its position).
fn at_ms(record: &serde_json::Value) -> Option<u64> {
    let v = &record["fields"]["at_ms"];
    v.as_u64().or_else(|| v.as_f64().map(|f| f as u64))
}

/// The verdict `ais_vessels_reach_hq`, when some site has an AIS feed.
pub(super) fn vessels_reach_hq(o: &Observed, commands: &[&String]) -> Option<Verdict> {
    if o.ais_sent.is_empty() {
        return None;
    }
    let mut evidence = Vec::new();
    let mut heard_total = 0usize;
    let mut heard_cut_off = 0usize;
    let mut notes = Vec::new();
    for (site, sent) in &o.ais_sent {
        // MMSI → (when the site first took a report of it, whether it was cut off then).
        let mut heard: BTreeMap<u32, (u64, bool)> = BTreeMap::new();
        for s in sent.iter().filter(|s| s.delivered) {
            if heard.contains_key(&s.mmsi)
                || !steady(&o.states, site, s.t_ms, s.t_ms + STORED_WITHIN_MS)
            {
                continue;
            }
            let cut = state_at(&o.states, site, s.t_ms).is_some_and(|st| !st.reaches_command);
            heard.insert(s.mmsi, (s.t_ms, cut));
        }
        notes.push(format!(
            "{site}: {} sentences, {} ships heard",
            sent.len(),
            heard.len()
        ));
        if heard.is_empty() {
            evidence.push(format!(
                "{site}'s AIS feed sent {} sentences but none reached the site while it ran: nothing was tested",
                sent.len()
            ));
            continue;
        }
        let Some(own) = o.vessels.get(site) else {
            evidence.push(format!(
                "{site} was not running at the end: the ships it heard cannot be compared"
            ));
            continue;
        };
        heard_total += heard.len();
        for (mmsi, (first_ms, cut)) in &heard {
            let id = mmsi.to_string();
            let when = format!(
                "first heard at {site} t={:.1} s{}",
                *first_ms as f64 / 1000.0,
                if *cut { ", while cut off" } else { "" }
            );
            if *cut {
                heard_cut_off += 1;
            }
            let site_at = own.get(&id).and_then(at_ms);
            if !own.contains_key(&id) {
                evidence.push(format!(
                    "vessel {mmsi} ({when}) is missing at {site} itself"
                ));
            }
            for c in commands {
                match o.vessels.get(*c).and_then(|v| v.get(&id)) {
                    None => evidence.push(format!("vessel {mmsi} ({when}) is missing at {c}")),
                    Some(r) => match (at_ms(r), site_at) {
                        (Some(there), Some(here)) if there < here => evidence.push(format!(
                            "vessel {mmsi} ({when}) is at {c} with its position of {there} (UNIX ms), {:.1} s older than {site}'s ({here})",
                            (here - there) as f64 / 1000.0
                        )),
                        (None, _) => evidence.push(format!("vessel {mmsi} ({when}) at {c} has no position time")),
                        _ => {}
                    },
                }
            }
        }
    }
    Some(verdict(
        "ais_vessels_reach_hq",
        "Every ship a site's AIS feed reported while the site ran is a vessels/<mmsi> record at every command center at the end, with a position no older than the site's.",
        format!(
            "{heard_total} ships heard ({heard_cut_off} first while cut off) × {} command centers ({})",
            commands.len(),
            notes.join("; ")
        ),
        evidence,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ais_feed::AisSend;
    use serde_json::json;

    fn state(node: &str, t_ms: u64, life: Life, reaches_command: bool) -> NodeState {
        NodeState {
            t_ms,
            node: node.into(),
            life,
            reaches_command,
            skew_secs: None,
            disk_full: false,
            degraded: None,
        }
    }

    fn vessel(at_ms: u64) -> serde_json::Value {
        json!({"fields": {"lat": 33.95, "lon": 129.2, "at_ms": at_ms, "site": "tsushima"}})
    }

    const FIX: u64 = 1_800_000_000_000;

    /// Tsushima is cut off from 5 s to 20 s and killed from 24 s to 27 s. Ship 1 is heard from
    /// the start, ship 2 first during the cut, ship 3 only while the site is dead.
    fn observed(hq: &[(u32, u64)]) -> Observed {
        let scenario: crate::scenario::Scenario = toml::from_str(
            "name = \"t\"\nsummary = \"s\"\nduration_secs = 30\nconverge_within_secs = 20\n\
             [[nodes]]\nname = \"hq\"\nrole = \"command\"\n\
             [[nodes]]\nname = \"tsushima\"\nrole = \"site\"\nkind = \"coast\"\nais_vessels = 3\n",
        )
        .unwrap();
        let send = |t_ms: u64, mmsi: u32, delivered: bool| AisSend {
            t_ms,
            mmsi,
            at_ms: FIX + t_ms / 1000 * 1000,
            delivered,
        };
        let sent = vec![
            send(1_000, 431_001_001, true),
            send(9_000, 431_001_002, true),
            send(11_000, 431_001_001, true),
            send(22_500, 431_001_002, true),
            // Taken by a dying site's socket, then sent to nobody.
            send(23_900, 431_001_003, true),
            send(25_000, 431_001_003, false),
        ];
        let site: BTreeMap<String, serde_json::Value> = [
            ("431001001".to_string(), vessel(FIX + 11_000)),
            ("431001002".to_string(), vessel(FIX + 22_000)),
        ]
        .into();
        Observed {
            scenario,
            started_at_unix_ms: 1_000_000,
            faults: vec![],
            states: vec![
                state("hq", 0, Life::Running, true),
                state("tsushima", 0, Life::Running, true),
                state("tsushima", 5_000, Life::Running, false),
                state("tsushima", 20_000, Life::Running, true),
                state("tsushima", 24_000, Life::Killed, true),
                state("tsushima", 27_000, Life::Running, true),
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
            tracks: Default::default(),
            ais_sent: [("tsushima".to_string(), sent)].into(),
            vessels: [
                ("tsushima".to_string(), site),
                (
                    "hq".to_string(),
                    hq.iter()
                        .map(|(m, at)| (m.to_string(), vessel(*at)))
                        .collect(),
                ),
            ]
            .into(),
            links: vec![],
        }
    }

    fn ais_verdict(o: &Observed) -> Verdict {
        super::super::check(o)
            .0
            .into_iter()
            .find(|v| v.name == "ais_vessels_reach_hq")
            .expect("the AIS verdict")
    }

    #[test]
    fn ships_heard_during_an_outage_reach_hq_with_their_latest_position() {
        let v = ais_verdict(&observed(&[
            (431_001_001, FIX + 11_000),
            (431_001_002, FIX + 22_000),
        ]));
        assert!(v.passed, "{:?}", v.evidence);
        // Ship 3 was only ever sent to a dying site: not held against anyone.
        assert!(
            v.checked
                .starts_with("2 ships heard (1 first while cut off) × 1 command centers"),
            "{}",
            v.checked
        );
    }

    #[test]
    fn a_ship_missing_at_hq_or_behind_the_site_fails_the_drill_by_name() {
        // The ship first heard while cut off never reached HQ.
        let v = ais_verdict(&observed(&[(431_001_001, FIX + 11_000)]));
        assert!(!v.passed);
        assert_eq!(v.evidence.len(), 1, "{:?}", v.evidence);
        assert!(v.evidence[0].starts_with("vessel 431001002 (first heard at tsushima t=9.0 s, while cut off) is missing at hq"), "{:?}", v.evidence);
        // HQ has it, but only the position from before the heal.
        let v = ais_verdict(&observed(&[
            (431_001_001, FIX + 11_000),
            (431_001_002, FIX + 9_000),
        ]));
        assert!(!v.passed);
        assert!(
            v.evidence[0].contains("vessel 431001002")
                && v.evidence[0].contains("13.0 s older than tsushima's"),
            "{:?}",
            v.evidence
        );
        // A feed that never reached a running site tested nothing.
        let mut o = observed(&[]);
        for s in o.ais_sent.get_mut("tsushima").unwrap() {
            s.delivered = false;
        }
        let v = ais_verdict(&o);
        assert!(
            !v.passed && v.evidence[0].contains("nothing was tested"),
            "{:?}",
            v.evidence
        );
    }
}
