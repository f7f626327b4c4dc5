//! Reported collections and replicas that hold only the shared ones (`Interest::Shared`): a
//! site's reports reach the replicas that hold everything, by any road, and no other site;
//! shared records reach everyone; version vectors, garbage collection and resync stay exact.

mod common;

use std::sync::Arc;

use common::sync_pair;
use mizugiwa_sync::protocol::Message;
use mizugiwa_sync::{
    Collection, FieldOp, Interest, ManualClock, Schema, Store, StoreConfig, Value, VersionVector,
};

const HOUR: u64 = 3600 * 1000;

/// Alerts are shared; vessel tracks are reported.
fn schema() -> Schema {
    Schema::new()
        .collection(
            "alerts",
            Collection::default().status("status", &["new", "acked", "resolved"]),
        )
        .collection("vessels", Collection::default().reported())
}

fn replica(name: &str, interest: Interest, clock: &ManualClock) -> Store {
    let mut cfg = StoreConfig::new(name);
    cfg.interest = interest;
    cfg.collection_horizon_ms = HOUR;
    Store::open_in_memory(schema(), Arc::new(clock.clone()), cfg).unwrap()
}

fn put(s: &mut Store, coll: &str, id: &str, v: &str) {
    s.put(coll, id, &[("v", FieldOp::Set(Value::Text(v.into())))])
        .unwrap();
}

fn has(s: &Store, coll: &str, id: &str) -> bool {
    s.get(coll, id).unwrap().is_some()
}

fn shared_hash(s: &Store) -> String {
    s.state_hash_of(Some(&["alerts".to_string()])).unwrap()
}

#[test]
fn reports_reach_the_replicas_that_hold_everything_and_no_other_site() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut hq = replica("hq", Interest::Everything, &clock);
    let mut a = replica("a", Interest::Shared, &clock);
    let mut b = replica("b", Interest::Shared, &clock);
    put(&mut a, "alerts", "alert-a", "dark vessel");
    put(&mut a, "vessels", "v-a", "off the coast of a");
    put(&mut b, "alerts", "alert-b", "drone down");
    put(&mut b, "vessels", "v-b", "off the coast of b");

    for _ in 0..2 {
        sync_pair(&mut a, &mut hq);
        sync_pair(&mut b, &mut hq);
    }
    for (coll, id) in [
        ("alerts", "alert-a"),
        ("alerts", "alert-b"),
        ("vessels", "v-a"),
        ("vessels", "v-b"),
    ] {
        assert!(has(&hq, coll, id), "hq has {coll}/{id}");
    }
    assert!(has(&a, "alerts", "alert-b") && has(&b, "alerts", "alert-a"));
    assert!(has(&a, "vessels", "v-a") && has(&b, "vessels", "v-b"));
    assert!(!has(&a, "vessels", "v-b"), "a never receives b's reports");
    assert!(!has(&b, "vessels", "v-a"), "b never receives a's reports");

    // The vectors say exactly what each holds: a site has no component for another site's
    // reports, the hub has both; the shared components agree everywhere.
    assert_eq!(a.version_vector().get("b@b"), 0);
    assert!(a.version_vector().get("a@a") > 0);
    assert_eq!(
        hq.version_vector().get("b@b"),
        b.version_vector().get("b@b")
    );
    assert!(hq.version_vector().covers(a.version_vector()));
    assert!(hq.version_vector().covers(b.version_vector()));
    assert_eq!(shared_hash(&a), shared_hash(&hq));
    assert_eq!(shared_hash(&b), shared_hash(&hq));

    // An acknowledgement at the hub reaches the site (alerts are shared).
    hq.put(
        "alerts",
        "alert-a",
        &[("status", FieldOp::Advance("acked".into()))],
    )
    .unwrap();
    sync_pair(&mut a, &mut hq);
    let alert = a.get("alerts", "alert-a").unwrap().unwrap();
    assert_eq!(
        alert.fields.get("status"),
        Some(&mizugiwa_sync::FieldValue::Status("acked".into()))
    );

    // A correction made at the hub to a's report goes to a (its home), and to no other site.
    put(&mut hq, "vessels", "v-a", "corrected at hq");
    for _ in 0..2 {
        sync_pair(&mut a, &mut hq);
        sync_pair(&mut b, &mut hq);
    }
    let v = a.get("vessels", "v-a").unwrap().unwrap();
    assert_eq!(v.get("v"), Some(&Value::Text("corrected at hq".into())));
    assert!(!has(&b, "vessels", "v-a"));
    assert!(hq.version_vector().get("hq@a") > 0);
    assert_eq!(
        hq.version_vector().get("hq@a"),
        a.version_vector().get("hq@a")
    );
    assert_eq!(b.version_vector().get("hq@a"), 0);
    // A record the hub creates in a reported collection is its own: no site receives it.
    put(
        &mut hq,
        "vessels",
        "v-hq",
        "from a patrol report typed in at hq",
    );
    sync_pair(&mut a, &mut hq);
    assert!(!has(&a, "vessels", "v-hq"));
    // And a delete at the hub of a's report reaches a.
    hq.delete("vessels", "v-a").unwrap();
    sync_pair(&mut a, &mut hq);
    assert!(!has(&a, "vessels", "v-a"));
    put(&mut a, "vessels", "v-a", "seen again");
    sync_pair(&mut a, &mut hq);
    assert_eq!(
        hq.get("vessels", "v-a").unwrap().unwrap().get("v"),
        Some(&Value::Text("seen again".into()))
    );

    // Two sites syncing directly (the hub is down) exchange the shared records only.
    put(&mut a, "alerts", "alert-a2", "while hq is down");
    put(&mut a, "vessels", "v-a2", "while hq is down");
    sync_pair(&mut a, &mut b);
    assert!(has(&b, "alerts", "alert-a2"));
    assert!(!has(&b, "vessels", "v-a2"));
    assert_eq!(b.version_vector().get("a@a"), 0);
    // Later the hub gets both from a.
    sync_pair(&mut a, &mut hq);
    assert!(has(&hq, "vessels", "v-a2"));
}

#[test]
fn reports_travel_through_a_relay_that_holds_everything() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut a = replica("a", Interest::Shared, &clock);
    let mut relay = replica("relay", Interest::Everything, &clock);
    let mut hq = replica("hq", Interest::Everything, &clock);
    put(&mut a, "vessels", "v-a", "seen by a");
    put(&mut a, "alerts", "alert-a", "raised at a");
    // a reaches the hub only through the relay (a chain).
    sync_pair(&mut a, &mut relay);
    sync_pair(&mut relay, &mut hq);
    assert!(has(&hq, "vessels", "v-a"));
    assert!(has(&hq, "alerts", "alert-a"));
    assert_eq!(hq.state_hash().unwrap(), relay.state_hash().unwrap());
    assert!(hq.version_vector().get("a@a") > 0);

    // A site that holds only shared records is no relay for reports: what a writes reaches
    // the hub through b only if b holds everything.
    let mut b = replica("b", Interest::Shared, &clock);
    let mut hq2 = replica("hq2", Interest::Everything, &clock);
    put(&mut a, "vessels", "v-a2", "seen by a");
    sync_pair(&mut a, &mut b);
    sync_pair(&mut b, &mut hq2);
    assert!(!has(&hq2, "vessels", "v-a2"));
    assert!(has(&hq2, "alerts", "alert-a"));
    // And hq2's vector claims nothing of a's reports, so a sends them all when they meet.
    assert_eq!(hq2.version_vector().get("a@a"), 0);
    sync_pair(&mut a, &mut hq2);
    assert!(has(&hq2, "vessels", "v-a") && has(&hq2, "vessels", "v-a2"));
}

#[test]
fn a_deleted_report_is_collected_without_waiting_for_sites_that_never_take_it() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut hq = replica("hq", Interest::Everything, &clock);
    let mut a = replica("a", Interest::Shared, &clock);
    let mut b = replica("b", Interest::Shared, &clock);
    put(&mut a, "vessels", "v-a", "gone soon");
    put(&mut a, "alerts", "alert-a", "withdrawn soon");
    for s in [&mut hq, &mut a, &mut b] {
        s.announce().unwrap();
    }
    sync_pair(&mut a, &mut hq);
    sync_pair(&mut b, &mut hq);
    sync_pair(&mut a, &mut hq);

    a.delete("vessels", "v-a").unwrap();
    a.delete("alerts", "alert-a").unwrap();
    a.announce().unwrap();
    sync_pair(&mut a, &mut hq);
    // b has not seen the withdrawn alert: only the report may go.
    let gc = hq.collect_garbage().unwrap();
    assert_eq!(gc.records_collected, 1, "{gc:?}");
    assert!(hq.deleted_records().unwrap() == vec![("alerts".into(), "alert-a".into())]);

    // Once b has seen the alert's withdrawal and said so, it goes too.
    sync_pair(&mut b, &mut hq);
    b.announce().unwrap();
    sync_pair(&mut b, &mut hq);
    assert_eq!(hq.collect_garbage().unwrap().records_collected, 1);
    assert!(hq.deleted_records().unwrap().is_empty());

    // The hub's collection frontier now covers a's reports, which b never takes: b is not
    // told to resync for them.
    assert!(hq.gc_frontier().get("a@a") > 0);
    sync_pair(&mut b, &mut hq);
    assert!(b.reset_frontier().is_empty(), "b was told to resync");
    // A newcomer that holds only shared records resyncs (it has seen nothing the frontier
    // covers), from a frontier without other sites' reports, and then holds the shared
    // records and no report: it does not stay resyncing, waiting for reports it never takes.
    let mut c = replica("c", Interest::Shared, &clock);
    sync_pair(&mut c, &mut hq);
    sync_pair(&mut c, &mut hq);
    assert_eq!(c.reset_frontier().get("a@a"), 0);
    assert!(!c.resyncing());
    assert_eq!(shared_hash(&c), shared_hash(&hq));
    assert!(!has(&c, "vessels", "v-a"));

    // Sites that hold only shared records announce to the hub alone: the hub knows every
    // member, a site knows the hub (and members that hold everything), not the other sites.
    let members =
        |s: &Store| -> Vec<String> { s.members().unwrap().into_iter().map(|m| m.node).collect() };
    assert_eq!(members(&hq), vec!["a", "b", "hq"]);
    assert_eq!(members(&b), vec!["b", "hq"]);
    assert_eq!(
        hq.members().unwrap()[0].interest,
        Interest::Shared,
        "the hub knows a holds only shared records"
    );

    // a itself collects its deleted report once the hub has seen the delete.
    hq.announce().unwrap();
    sync_pair(&mut a, &mut hq);
    a.collect_garbage().unwrap();
    assert!(
        a.deleted_records().unwrap().is_empty(),
        "{:?}",
        a.deleted_records()
    );
}

#[test]
fn a_hub_sends_a_site_nothing_while_only_other_sites_reports_move() {
    use mizugiwa_sync::protocol::{Session, SessionConfig};
    let clock = ManualClock::new(1_700_000_000_000);
    let mut hq = replica("hq", Interest::Everything, &clock);
    let mut a = replica("a", Interest::Shared, &clock);
    let mut b = replica("b", Interest::Everything, &clock);
    let mut hq_to_a = Session::new("a", SessionConfig::default());
    let mut a_to_hq = Session::new("hq", SessionConfig::default());
    hq_to_a.start(&hq).unwrap();
    a_to_hq.start(&a).unwrap();
    common::pump(&mut hq_to_a, &mut hq, &mut a_to_hq, &mut a);
    let frames_before = hq_to_a.stats().frames_sent;
    // b's tracks pour into the hub.
    for i in 0..200 {
        put(&mut b, "vessels", &format!("v{i}"), "moving");
    }
    sync_pair(&mut b, &mut hq);
    assert!(hq.log_end() > 200);
    common::pump(&mut hq_to_a, &mut hq, &mut a_to_hq, &mut a);
    assert_eq!(
        hq_to_a.stats().frames_sent,
        frames_before,
        "no frame for a while only b's reports moved"
    );
    assert!(hq_to_a.peer_caught_up(&hq), "a lacks nothing it takes");
    // A shared write goes at once.
    put(&mut b, "alerts", "alert-b", "raised at b");
    sync_pair(&mut b, &mut hq);
    common::pump(&mut hq_to_a, &mut hq, &mut a_to_hq, &mut a);
    assert!(has(&a, "alerts", "alert-b"));
    assert!(!has(&a, "vessels", "v0"));
    // The hub acknowledges a's batches with the part of its vector a takes: nothing of b's
    // reports (a thousand sites would make each acknowledgement a thousand components).
    put(&mut a, "vessels", "v-a", "a's own");
    common::pump(&mut hq_to_a, &mut hq, &mut a_to_hq, &mut a);
    assert!(has(&hq, "vessels", "v-a"));
    assert!(hq.version_vector().get("b@b") > 0);
    assert_eq!(a_to_hq.peer_vv().get("b@b"), 0);
    assert_eq!(a_to_hq.peer_vv().get("a@a"), a.version_vector().get("a@a"));
}

#[test]
fn a_replica_keeps_nothing_it_does_not_take_even_if_a_peer_sends_it() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut b = replica("b", Interest::Everything, &clock);
    let mut a = replica("a", Interest::Shared, &clock);
    put(&mut b, "vessels", "v-b", "b's report");
    put(&mut b, "alerts", "alert-b", "b's alert");
    // A batch read as if a held everything (a peer that ignored a's interest).
    let batch = b
        .read_changes(0, &VersionVector::new(), 100, 1 << 20)
        .unwrap();
    assert!(batch.changes.iter().any(|c| c.origin == "b@b"));
    let incarnation = 1;
    let report = a.apply_changes("b", incarnation, &batch).unwrap();
    assert!(report.skipped > 0);
    assert!(has(&a, "alerts", "alert-b"));
    assert!(!has(&a, "vessels", "v-b"));
    assert_eq!(a.version_vector().get("b@b"), 0);
}

#[test]
fn hello_carries_the_interest_and_refuses_an_unknown_one() {
    let mut vv = VersionVector::new();
    vv.raise("a", 3);
    for interest in [Interest::Everything, Interest::Shared] {
        let hello = Message::Hello {
            version: mizugiwa_sync::protocol::PROTOCOL_VERSION,
            node: "a".into(),
            incarnation: 7,
            vv: vv.clone(),
            reset_frontier: VersionVector::new(),
            resume_incarnation: 0,
            resume: 0,
            interest,
        };
        let frame = hello.encode();
        assert_eq!(Message::decode(&frame).unwrap(), hello);
        let mut bad = frame.clone();
        *bad.last_mut().unwrap() = 9;
        let err = Message::decode(&bad).unwrap_err().to_string();
        assert!(err.contains("interest"), "{err}");
    }
}
