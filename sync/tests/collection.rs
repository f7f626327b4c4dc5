//! Garbage collection, the collection horizon and snapshot resync: a replica that was offline
//! past the horizon comes back without resurrecting anything deleted while it was away, and
//! without losing what it wrote while offline.

mod common;

use std::sync::Arc;

use common::{replica, schema, sync_pair};
use mizugiwa_sync::{FieldOp, ManualClock, Store, StoreConfig, Value};

const HOUR: u64 = 3600 * 1000;

fn replica_with_horizon(name: &str, clock: &ManualClock) -> Store {
    let mut cfg = StoreConfig::new(name);
    cfg.collection_horizon_ms = HOUR;
    Store::open_in_memory(schema(), Arc::new(clock.clone()), cfg).unwrap()
}

fn title(s: &Store, id: &str) -> Option<Value> {
    s.get("alerts", id)
        .unwrap()
        .and_then(|r| r.get("title").cloned())
}

#[test]
fn a_replica_offline_past_the_horizon_resyncs_without_resurrecting_deletes() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut a = replica_with_horizon("a", &clock);
    let mut b = replica_with_horizon("b", &clock);
    let mut c = replica_with_horizon("c", &clock);
    for i in 0..5 {
        a.put(
            "alerts",
            &format!("r{i}"),
            &[("title", FieldOp::Set(Value::Int(i)))],
        )
        .unwrap();
    }
    for s in [&mut a, &mut b, &mut c] {
        s.announce().unwrap();
    }
    sync_pair(&mut a, &mut b);
    sync_pair(&mut b, &mut c);
    sync_pair(&mut a, &mut b);
    assert_eq!(title(&c, "r1"), Some(Value::Int(1)));

    // C goes offline. It keeps working: a new record, and an edit of one that A deletes.
    clock.advance(1000);
    c.put(
        "alerts",
        "c-offline",
        &[("title", FieldOp::Set("seen from the coast".into()))],
    )
    .unwrap();
    a.delete("alerts", "r1").unwrap();
    a.delete("alerts", "r2").unwrap();
    sync_pair(&mut a, &mut b);

    // Two hours later C is past the horizon: A and B collect the deletes without it.
    clock.advance(2 * HOUR);
    for _ in 0..2 {
        a.announce().unwrap();
        b.announce().unwrap();
        sync_pair(&mut a, &mut b);
    }
    let gc = a.collect_garbage().unwrap();
    assert_eq!(gc.expired, vec!["c".to_string()]);
    assert_eq!(gc.records_collected, 2, "{gc:?}");
    assert_eq!(b.collect_garbage().unwrap().records_collected, 2);

    // C comes back. It is behind A's collection frontier, so A makes it resync.
    sync_pair(&mut c, &mut a);
    assert!(!c.reset_frontier().is_empty(), "c was told to resync");
    sync_pair(&mut c, &mut a);
    for s in [&a, &b, &c] {
        assert_eq!(title(s, "r1"), None, "{} resurrected r1", s.node());
        assert_eq!(title(s, "r2"), None, "{} resurrected r2", s.node());
    }
    assert_eq!(
        title(&a, "c-offline"),
        Some(Value::Text("seen from the coast".into())),
        "c's offline write reached a"
    );
    sync_pair(&mut a, &mut b);
    assert_eq!(a.state_hash().unwrap(), c.state_hash().unwrap());
    assert_eq!(a.state_hash().unwrap(), b.state_hash().unwrap());

    // A brand-new replica that learns everything from C sees no deleted record either.
    let mut d = replica_with_horizon("d", &clock);
    sync_pair(&mut d, &mut c);
    assert_eq!(title(&d, "r1"), None);
    assert_eq!(title(&d, "r3"), Some(Value::Int(3)));
    assert_eq!(d.state_hash().unwrap(), a.state_hash().unwrap());
}

#[test]
fn nothing_is_collected_while_a_live_member_has_not_seen_the_delete() {
    let clock = ManualClock::new(1_700_000_000_000);
    let (mut a, mut b) = (replica("a", &clock), replica("b", &clock));
    a.put("alerts", "x", &[("title", FieldOp::Set("t".into()))])
        .unwrap();
    a.announce().unwrap();
    b.announce().unwrap();
    sync_pair(&mut a, &mut b);
    a.delete("alerts", "x").unwrap();
    // B has not seen the delete and is well within the horizon.
    assert_eq!(a.collect_garbage().unwrap().records_collected, 0);
    sync_pair(&mut a, &mut b);
    b.announce().unwrap();
    sync_pair(&mut a, &mut b);
    assert_eq!(a.collect_garbage().unwrap().records_collected, 1);
    let (rows_after, _) = a.footprint().unwrap();
    // Only member records remain: two, of three entries each (life, vv, interest).
    assert!(rows_after <= 6, "{rows_after} rows left");
}

/// The index of deleted records that garbage collection reads follows deletes, undeletes and
/// remote changes in any order: it always equals the records whose life is dead.
#[test]
fn the_deleted_record_index_follows_deletes_undeletes_and_sync() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut a = replica("a", &clock);
    let mut b = replica("b", &clock);
    let put = |s: &mut Store, id: &str| {
        s.put("alerts", id, &[("title", FieldOp::Set(id.into()))])
            .unwrap();
    };
    for id in ["r1", "r2", "r3", "r4"] {
        put(&mut a, id);
    }
    sync_pair(&mut a, &mut b);
    clock.advance(1);
    a.delete("alerts", "r1").unwrap();
    b.delete("alerts", "r2").unwrap();
    b.delete("alerts", "r3").unwrap();
    clock.advance(1);
    put(&mut b, "r3"); // undeleted at b
    let dead = |s: &Store| -> Vec<String> {
        s.deleted_records()
            .unwrap()
            .into_iter()
            .map(|(_, id)| id)
            .collect()
    };
    assert_eq!(dead(&a), ["r1"]);
    assert_eq!(dead(&b), ["r2"]);
    sync_pair(&mut a, &mut b);
    for s in [&a, &b] {
        assert_eq!(dead(s), ["r1", "r2"]);
        let live: Vec<String> = s
            .list("alerts")
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(live, ["r3", "r4"]);
        assert_eq!(s.collection_counts().unwrap()["alerts"], 2);
    }
    // Brought back at a after the sync: gone from the index on both sides.
    clock.advance(1);
    put(&mut a, "r1");
    sync_pair(&mut a, &mut b);
    assert_eq!(dead(&a), ["r2"]);
    assert_eq!(dead(&b), ["r2"]);
}

#[test]
fn put_all_writes_every_record_or_none_and_syncs_them_together() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut a = common::replica("a", &clock);
    let mut b = common::replica("b", &clock);
    let vv_before = a.version_vector().clone();
    // The second write is wrong for its field's kind: nothing of the batch may land.
    let err = a.put_all(&[
        ("alerts", "p1", &[("title", FieldOp::Set(Value::Int(1)))]),
        (
            "alerts",
            "p2",
            &[("assignees", FieldOp::Set(Value::Int(2)))],
        ),
    ]);
    assert!(err.is_err());
    assert!(a.get("alerts", "p1").unwrap().is_none());
    assert_eq!(a.version_vector(), &vv_before);
    a.put_all(&[
        ("alerts", "p1", &[("title", FieldOp::Set(Value::Int(1)))]),
        (
            "alerts",
            "p2",
            &[("assignees", FieldOp::Add("gate-1".into()))],
        ),
        (
            "alerts",
            "p2",
            &[("assignees", FieldOp::Add("gate-2".into()))],
        ),
    ])
    .unwrap();
    sync_pair(&mut a, &mut b);
    assert_eq!(title(&b, "p1"), Some(Value::Int(1)));
    let p2 = b.get("alerts", "p2").unwrap().unwrap();
    match p2.fields.get("assignees") {
        Some(mizugiwa_sync::FieldValue::Members(items)) => assert_eq!(items.len(), 2, "{items:?}"),
        other => panic!("assignees: {other:?}"),
    }
    assert_eq!(a.state_hash().unwrap(), b.state_hash().unwrap());
}

/// A partition where each side sees the other fall silent past the horizon: only the majority
/// side collects; the site cut off alone keeps its tombstones, resyncs on return, and nothing
/// written or deleted on either side is lost or brought back. (Found by the long-offline drill:
/// when both sides collected, each made the other resync and records written before the
/// partition vanished.)
#[test]
fn in_a_partition_only_the_majority_collects_and_nothing_is_lost() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut a = replica_with_horizon("a", &clock);
    let mut b = replica_with_horizon("b", &clock);
    let mut c = replica_with_horizon("c", &clock);
    for (s, prefix) in [(&mut a, "a"), (&mut c, "c")] {
        for i in 0..4 {
            s.put(
                "alerts",
                &format!("{prefix}{i}"),
                &[("title", FieldOp::Set(Value::Int(i)))],
            )
            .unwrap();
        }
    }
    for s in [&mut a, &mut b, &mut c] {
        s.announce().unwrap();
    }
    for _ in 0..2 {
        sync_pair(&mut a, &mut b);
        sync_pair(&mut b, &mut c);
    }
    assert_eq!(title(&b, "c1"), Some(Value::Int(1)));

    // The partition: {a, b} | {c}. Both sides write and delete.
    clock.advance(1000);
    a.delete("alerts", "a1").unwrap();
    a.delete("alerts", "c2").unwrap();
    c.delete("alerts", "c0").unwrap();
    c.delete("alerts", "a3").unwrap();
    c.put(
        "alerts",
        "c-offline",
        &[("title", FieldOp::Set(Value::Int(9)))],
    )
    .unwrap();
    c.put("alerts", "a0", &[("verdict", FieldOp::Set(Value::Int(7)))])
        .unwrap();
    sync_pair(&mut a, &mut b);

    // Past the horizon, everyone collects what it can.
    clock.advance(2 * HOUR);
    for _ in 0..2 {
        for s in [&mut a, &mut b, &mut c] {
            s.announce().unwrap();
        }
        sync_pair(&mut a, &mut b);
    }
    let gc_a = a.collect_garbage().unwrap();
    assert_eq!(
        gc_a.expired,
        vec!["c".to_string()],
        "the majority leaves c out"
    );
    assert_eq!(gc_a.records_collected, 2);
    let gc_c = c.collect_garbage().unwrap();
    assert!(gc_c.expired.is_empty(), "c alone is a minority: {gc_c:?}");
    assert_eq!(gc_c.records_collected, 0, "c keeps its tombstones");

    // The partition heals.
    for _ in 0..3 {
        sync_pair(&mut c, &mut a);
        sync_pair(&mut a, &mut b);
        sync_pair(&mut b, &mut c);
    }
    assert!(a.reset_frontier().is_empty(), "the majority never resyncs");
    assert!(b.reset_frontier().is_empty(), "the majority never resyncs");
    for s in [&a, &b, &c] {
        for gone in ["a1", "c2", "c0", "a3"] {
            assert_eq!(title(s, gone), None, "{} brought back {gone}", s.node());
        }
        for kept in ["a0", "a2", "c1", "c3", "c-offline"] {
            assert!(title(s, kept).is_some(), "{} lost {kept}", s.node());
        }
        let a0 = s.get("alerts", "a0").unwrap().unwrap();
        assert_eq!(
            a0.get("verdict"),
            Some(&Value::Int(7)),
            "{} lost c's edit",
            s.node()
        );
    }
    assert_eq!(a.state_hash().unwrap(), b.state_hash().unwrap());
    assert_eq!(a.state_hash().unwrap(), c.state_hash().unwrap());
}

/// Announcements answer data, not each other: a hub and its sites that exchange announcements
/// fall quiet once everyone has announced what they hold (before, every announcement made
/// every other member announce again, forever), wake again for new data, and otherwise only
/// beat once per quarter horizon so that a quiet member is not taken for a silent one.
#[test]
fn announcements_fall_quiet_without_new_data_and_beat_once_per_quarter_horizon() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut hub = replica_with_horizon("hub", &clock);
    let mut sites: Vec<Store> = (0..3)
        .map(|i| replica_with_horizon(&format!("site{i}"), &clock))
        .collect();
    for (i, s) in sites.iter_mut().enumerate() {
        s.put(
            "alerts",
            &format!("s{i}"),
            &[("title", FieldOp::Set(Value::Int(i as i64)))],
        )
        .unwrap();
    }
    // Rounds of: everyone announces if it wants to, then the hub syncs with every site twice.
    let round = |hub: &mut Store, sites: &mut Vec<Store>| -> usize {
        let mut announced = usize::from(hub.announce().unwrap());
        for s in sites.iter_mut() {
            announced += usize::from(s.announce().unwrap());
        }
        for _ in 0..2 {
            for s in sites.iter_mut() {
                sync_pair(hub, s);
            }
        }
        announced
    };
    let mut per_round = Vec::new();
    for _ in 0..6 {
        clock.advance(5_000);
        per_round.push(round(&mut hub, &mut sites));
    }
    assert_eq!(per_round[0], 4, "everyone announces first: {per_round:?}");
    assert_eq!(
        &per_round[3..],
        &[0, 0, 0],
        "announcements kept answering each other: {per_round:?}"
    );
    let hash = hub.state_hash().unwrap();
    for s in &sites {
        assert_eq!(s.state_hash().unwrap(), hash, "{} differs", s.node());
    }

    // New data at one site: it reaches everyone, and everyone who saw it announces once more.
    sites[1]
        .put("alerts", "late", &[("title", FieldOp::Set(Value::Int(9)))])
        .unwrap();
    let mut after_data = Vec::new();
    for _ in 0..4 {
        clock.advance(5_000);
        after_data.push(round(&mut hub, &mut sites));
    }
    assert!(after_data[..2].iter().sum::<usize>() >= 4, "{after_data:?}");
    assert_eq!(after_data[3], 0, "{after_data:?}");

    // Nothing happens for a quarter of the horizon: each member beats once, then is quiet.
    clock.advance(HOUR / 4);
    assert_eq!(round(&mut hub, &mut sites), 4);
    clock.advance(5_000);
    assert_eq!(round(&mut hub, &mut sites), 0);
    // Nobody is taken for silent: a delete is collected everywhere once all have seen it.
    hub.delete("alerts", "s0").unwrap();
    for _ in 0..3 {
        clock.advance(5_000);
        round(&mut hub, &mut sites);
    }
    let gc = hub.collect_garbage().unwrap();
    assert!(gc.expired.is_empty(), "{gc:?}");
    assert_eq!(gc.records_collected, 1, "{gc:?}");
}

/// A member whose announcement has not arrived yet (it just started, or announces rarely) may
/// have seen nothing: nobody collects until it has announced. Without this a site collected
/// deletes the command center had not seen and ordered it to resync (found by the clock-skew
/// drill once announcements became rarer).
#[test]
fn an_origin_that_has_not_announced_holds_back_collection() {
    let clock = ManualClock::new(1_700_000_000_000);
    let (mut a, mut b, mut c) = (
        replica("a", &clock),
        replica("b", &clock),
        replica("c", &clock),
    );
    a.put("alerts", "x", &[("title", FieldOp::Set("t".into()))])
        .unwrap();
    c.put("alerts", "from-c", &[("title", FieldOp::Set("c".into()))])
        .unwrap();
    // C's data reaches A before any announcement of C's does.
    sync_pair(&mut c, &mut a);
    a.announce().unwrap();
    b.announce().unwrap();
    sync_pair(&mut a, &mut b);
    a.delete("alerts", "x").unwrap();
    sync_pair(&mut a, &mut b);
    b.announce().unwrap();
    sync_pair(&mut a, &mut b);
    let gc = a.collect_garbage().unwrap();
    assert_eq!(gc.records_collected, 0, "collected behind c's back: {gc:?}");
    assert!(gc.members.contains(&"c".to_string()), "{gc:?}");
    // C catches up and announces: now the delete is stable.
    sync_pair(&mut a, &mut c);
    c.announce().unwrap();
    sync_pair(&mut a, &mut c);
    assert_eq!(a.collect_garbage().unwrap().records_collected, 1);
}

/// A resync ordered through one session (it drops data below the frontier and every resume
/// cursor) makes every other open session start over: the peers stream what they sent before
/// again. Before, they went on from where they were, and HQ stayed without a site's records
/// until that connection dropped (the clock-skew drill found it: HQ resynced through a site
/// whose snapshot it refused, and kept missing the other site's alerts).
#[test]
fn a_resync_makes_the_other_open_sessions_start_over() {
    use mizugiwa_sync::protocol::{Session, SessionConfig};
    let clock = ManualClock::new(1_700_000_000_000);
    let (mut hq, mut site) = (replica("hq", &clock), replica("site", &clock));
    for i in 0..3 {
        site.put(
            "alerts",
            &format!("a{i}"),
            &[("title", FieldOp::Set(Value::Int(i)))],
        )
        .unwrap();
    }
    let mut at_hq = Session::new("site", SessionConfig::default());
    let mut at_site = Session::new("hq", SessionConfig::default());
    at_hq.start(&hq).unwrap();
    at_site.start(&site).unwrap();
    common::pump(&mut at_hq, &mut hq, &mut at_site, &mut site);
    assert_eq!(title(&hq, "a1"), Some(Value::Int(1)));

    // Another peer orders HQ to resync past everything the site wrote.
    let frontier: mizugiwa_sync::VersionVector =
        [("site".to_string(), site.version_vector().get("site"))]
            .into_iter()
            .collect();
    hq.begin_resync(&frontier).unwrap();
    assert_eq!(title(&hq, "a1"), None, "dropped below the frontier");

    // The open session with the site brings it all back.
    common::pump(&mut at_hq, &mut hq, &mut at_site, &mut site);
    for i in 0..3 {
        assert_eq!(title(&hq, &format!("a{i}")), Some(Value::Int(i)));
    }
    assert_eq!(hq.state_hash().unwrap(), site.state_hash().unwrap());
}
