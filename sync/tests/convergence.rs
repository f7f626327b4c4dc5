//! Property tests: random writes on several replicas, random topologies, connections cut at
//! random points, batches applied out of order and twice — and at the end every replica shows
//! exactly the same records.

mod common;

use common::{exchange, pair, replica, small_batches, sync_pair};
use mizugiwa_sync::protocol::{Message, Session, SessionConfig};
use mizugiwa_sync::{FieldOp, ManualClock, Store, Value};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Action {
    Write {
        at: usize,
        rec: u8,
        op: u8,
        arg: i8,
    },
    Delete {
        at: usize,
        rec: u8,
    },
    /// A connection between two replicas that carries `budget` frames, then is cut.
    Link {
        a: usize,
        b: usize,
        budget: u8,
        order_seed: u64,
    },
}

fn action(n: usize) -> impl Strategy<Value = Action> {
    prop_oneof![
        5 => (0..n, 0u8..6, 0u8..7, any::<i8>()).prop_map(|(at, rec, op, arg)| Action::Write { at, rec, op, arg }),
        1 => (0..n, 0u8..6).prop_map(|(at, rec)| Action::Delete { at, rec }),
        3 => (0..n, 0..n, 0u8..30, any::<u64>()).prop_map(|(a, b, budget, order_seed)| Action::Link { a, b, budget, order_seed }),
    ]
}

fn write(store: &mut Store, rec: u8, op: u8, arg: i8) {
    let id = format!("r{rec}");
    let op = match op {
        0 => ("title", FieldOp::Set(Value::Int(arg as i64))),
        1 => ("verdict", FieldOp::Set(Value::Int(arg as i64 % 3))),
        2 => (
            "assignees",
            FieldOp::Add(format!("officer-{}", arg.rem_euclid(4))),
        ),
        3 => (
            "assignees",
            FieldOp::Remove(format!("officer-{}", arg.rem_euclid(4))),
        ),
        4 => ("comments", FieldOp::Increment(arg as i64 % 5)),
        5 => (
            "state",
            FieldOp::Advance(
                ["new", "acked", "resolved", "closed"][arg.rem_euclid(4) as usize].into(),
            ),
        ),
        _ => ("title", FieldOp::Set(Value::Text(format!("t{arg}")))),
    };
    store.put("alerts", &id, &[op]).expect("local write");
}

/// One connection along one of the allowed `links` (picked by `ends`) that carries `budget`
/// frames and is then cut; `order_seed` decides which side sends next when both could.
fn link(
    replicas: &mut [Store],
    links: &[(usize, usize)],
    ends: (usize, usize),
    budget: u8,
    order_seed: u64,
) -> Result<(), TestCaseError> {
    let (a, b) = links[(ends.0 * replicas.len() + ends.1) % links.len()];
    let (x, y) = pair(replicas, a, b);
    let mut s = order_seed;
    exchange(x, y, small_batches(), budget as usize, || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s & 1 == 0
    })
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(())
}

/// Full exchanges along the allowed links until nothing moves (as many rounds as replicas
/// suffice for any connected topology).
fn heal(replicas: &mut [Store], links: &[(usize, usize)]) {
    for _ in 0..replicas.len() {
        for &(a, b) in links {
            let (x, y) = pair(replicas, a, b);
            sync_pair(x, y);
        }
    }
}

/// `links` lists which pairs may talk (a chain, a star, a mesh...).
fn run(n: usize, actions: Vec<Action>, links: &[(usize, usize)]) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut replicas: Vec<Store> = (0..n).map(|i| replica(&format!("n{i}"), &clock)).collect();
    // Counted once now, the live counts are kept by every write and merge from here on.
    for r in &replicas {
        r.collection_counts().unwrap();
    }
    for act in actions {
        clock.advance(7);
        match act {
            Action::Write { at, rec, op, arg } => write(&mut replicas[at], rec, op, arg),
            Action::Delete { at, rec } => {
                replicas[at]
                    .delete("alerts", &format!("r{rec}"))
                    .expect("delete");
            }
            Action::Link {
                a,
                b,
                budget,
                order_seed,
            } => link(&mut replicas, links, (a, b), budget, order_seed)?,
        }
    }
    heal(&mut replicas, links);
    let hashes: Vec<String> = replicas.iter().map(|r| r.state_hash().unwrap()).collect();
    for (i, h) in hashes.iter().enumerate() {
        prop_assert_eq!(h, &hashes[0], "replica {} differs from replica 0", i);
    }
    let lists: Vec<_> = replicas.iter().map(|r| r.list("alerts").unwrap()).collect();
    for l in &lists {
        let strip = |v: &Vec<mizugiwa_sync::Record>| {
            v.iter()
                .map(|r| (r.id.clone(), r.fields.clone()))
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(strip(l), strip(&lists[0]));
    }
    for r in &replicas {
        prop_assert_eq!(r.version_vector(), replicas[0].version_vector());
        let alerts = r.list("alerts").unwrap().len() as u64;
        prop_assert_eq!(
            r.collection_counts()
                .unwrap()
                .get("alerts")
                .copied()
                .unwrap_or(0),
            alerts,
            "{}: live count kept by the writes differs from the records listed",
            r.node()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mesh_of_four_converges(actions in proptest::collection::vec(action(4), 1..60)) {
        let links: Vec<(usize, usize)> = (0..4).flat_map(|a| (0..4).filter(move |b| *b != a).map(move |b| (a, b))).collect();
        run(4, actions, &links)?;
    }

    #[test]
    fn chain_converges_through_the_middle(actions in proptest::collection::vec(action(3), 1..60)) {
        // A–B–C: A and C never talk directly; everything goes through B.
        run(3, actions, &[(0, 1), (1, 2)])?;
    }

    #[test]
    fn hub_and_spoke_converges(actions in proptest::collection::vec(action(4), 1..60)) {
        run(4, actions, &[(0, 1), (0, 2), (0, 3)])?;
    }

    /// Batches delivered out of order and twice, straight into the store: same result.
    #[test]
    fn any_delivery_order_and_duplication_converges(
        writes in proptest::collection::vec((0u8..6, 0u8..7, any::<i8>()), 1..40),
        order in proptest::collection::vec(any::<prop::sample::Index>(), 1..80),
    ) {
        let clock = ManualClock::new(1_700_000_000_000);
        let mut source = replica("src", &clock);
        for (rec, op, arg) in writes {
            clock.advance(3);
            write(&mut source, rec, op, arg);
        }
        let mut batches = Vec::new();
        let mut cursor = 0;
        loop {
            let b = source.read_changes(cursor, &Default::default(), 2, 1 << 20).unwrap();
            cursor = b.upto_lseq;
            let done = b.complete.is_some();
            batches.push(b);
            if done { break; }
        }
        let mut sink = replica("sink", &clock);
        for i in order {
            let mut b = batches[i.index(batches.len())].clone();
            b.complete = None; // out of order, a batch proves nothing about the sender's vector
            sink.apply_changes("src", source.incarnation(), &b).unwrap();
        }
        for b in &batches {
            sink.apply_changes("src", source.incarnation(), b).unwrap();
        }
        prop_assert_eq!(sink.state_hash().unwrap(), source.state_hash().unwrap());
    }
}

#[test]
fn a_write_at_a_reaches_c_through_b() {
    let clock = ManualClock::new(1_700_000_000_000);
    let (mut a, mut b, mut c) = (
        replica("a", &clock),
        replica("b", &clock),
        replica("c", &clock),
    );
    a.put(
        "alerts",
        "x",
        &[("title", FieldOp::Set("dark vessel".into()))],
    )
    .unwrap();
    sync_pair(&mut a, &mut b);
    sync_pair(&mut b, &mut c);
    let rec = c.get("alerts", "x").unwrap().expect("record reached c");
    assert_eq!(rec.get("title"), Some(&Value::Text("dark vessel".into())));
    assert_eq!(c.version_vector().get("a"), a.version_vector().get("a"));
}

#[test]
fn concurrent_acks_never_go_backwards_and_mv_conflicts_stay_visible() {
    let clock = ManualClock::new(1_700_000_000_000);
    let (mut site, mut hq) = (replica("site", &clock), replica("hq", &clock));
    site.put("alerts", "a1", &[("state", FieldOp::Advance("new".into()))])
        .unwrap();
    sync_pair(&mut site, &mut hq);
    clock.advance(10);
    hq.put(
        "alerts",
        "a1",
        &[
            ("state", FieldOp::Advance("resolved".into())),
            ("verdict", FieldOp::Set("smuggling".into())),
        ],
    )
    .unwrap();
    clock.advance(10);
    // The site acks later in wall time, without having seen HQ's resolve.
    site.put(
        "alerts",
        "a1",
        &[
            ("state", FieldOp::Advance("acked".into())),
            ("verdict", FieldOp::Set("fishing".into())),
        ],
    )
    .unwrap();
    sync_pair(&mut site, &mut hq);
    for s in [&site, &hq] {
        let r = s.get("alerts", "a1").unwrap().unwrap();
        assert_eq!(
            r.fields["state"],
            mizugiwa_sync::FieldValue::Status("resolved".into())
        );
        assert_eq!(
            r.fields["verdict"],
            // Concurrent values are listed in the order of their writers' dots: hq before site.
            mizugiwa_sync::FieldValue::Conflict(vec![
                Value::Text("smuggling".into()),
                Value::Text("fishing".into())
            ])
        );
    }
}

#[test]
fn delete_then_reinsert_shows_only_the_new_life() {
    let clock = ManualClock::new(1_700_000_000_000);
    let (mut a, mut b) = (replica("a", &clock), replica("b", &clock));
    a.put(
        "alerts",
        "r",
        &[
            ("title", FieldOp::Set("old".into())),
            ("comments", FieldOp::Increment(2)),
        ],
    )
    .unwrap();
    sync_pair(&mut a, &mut b);
    clock.advance(5);
    assert!(b.delete("alerts", "r").unwrap());
    sync_pair(&mut a, &mut b);
    assert!(a.get("alerts", "r").unwrap().is_none());
    clock.advance(5);
    a.put("alerts", "r", &[("comments", FieldOp::Increment(1))])
        .unwrap();
    sync_pair(&mut a, &mut b);
    for s in [&a, &b] {
        let r = s.get("alerts", "r").unwrap().expect("reinserted");
        assert_eq!(r.get("title"), None, "the old life's title is gone");
        assert_eq!(r.fields["comments"], mizugiwa_sync::FieldValue::Count(1));
    }
}

/// `delete_all` deletes the live records it is given in one commit, counts only those, and
/// the deletes travel like single ones; a bad name refuses the whole call and deletes nothing.
#[test]
fn delete_all_deletes_the_live_records_in_one_go() {
    let clock = ManualClock::new(1_700_000_000_000);
    let (mut a, mut b) = (replica("a", &clock), replica("b", &clock));
    for id in ["r1", "r2", "r3"] {
        a.put("alerts", id, &[("title", FieldOp::Set(id.into()))])
            .unwrap();
    }
    sync_pair(&mut a, &mut b);
    clock.advance(5);
    assert!(
        a.delete_all("alerts", &["r1", ""]).is_err(),
        "an empty record name is refused"
    );
    assert_eq!(
        a.ids("alerts").unwrap(),
        ["r1", "r2", "r3"],
        "nothing deleted"
    );
    // r2 twice and a record that never existed: counted once, and not at all.
    assert_eq!(
        a.delete_all("alerts", &["r1", "r2", "r2", "never"])
            .unwrap(),
        2
    );
    assert_eq!(a.delete_all("alerts", &["r1"]).unwrap(), 0, "already gone");
    sync_pair(&mut a, &mut b);
    for s in [&a, &b] {
        assert_eq!(s.ids("alerts").unwrap(), ["r3"]);
    }
}

/// Every frame `s` wants to send now.
fn flush(s: &mut Session, store: &Store) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(f) = s.poll_transmit(store).expect("poll") {
        out.push(f);
    }
    out
}

#[test]
fn while_a_batch_is_unacknowledged_small_writes_wait_and_then_leave_together() {
    let clock = ManualClock::new(1_700_000_000_000);
    let (mut a, mut b) = (replica("a", &clock), replica("b", &clock));
    let (mut sa, mut sb) = (
        Session::new("b", SessionConfig::default()),
        Session::new("a", SessionConfig::default()),
    );
    sa.start(&a).unwrap();
    sb.start(&b).unwrap();
    // Greetings (and whatever they lead to) until both sides are quiet.
    loop {
        let (to_b, to_a) = (flush(&mut sa, &a), flush(&mut sb, &b));
        if to_b.is_empty() && to_a.is_empty() {
            break;
        }
        for f in to_b {
            sb.handle_frame(&f, &mut b).unwrap();
        }
        for f in to_a {
            sa.handle_frame(&f, &mut a).unwrap();
        }
    }
    let put = |s: &mut Store, id: &str| {
        s.put(
            "alerts",
            id,
            &[("title", FieldOp::Set(Value::Text(id.into())))],
        )
        .unwrap();
    };
    put(&mut a, "first");
    let first = flush(&mut sa, &a);
    assert_eq!(first.len(), 1, "an idle link sends a write at once");
    for id in ["w2", "w3", "w4", "w5"] {
        put(&mut a, id);
        assert!(
            flush(&mut sa, &a).is_empty(),
            "a small batch waits while one is unacknowledged"
        );
    }
    sb.handle_frame(&first[0], &mut b).unwrap();
    for f in flush(&mut sb, &b) {
        sa.handle_frame(&f, &mut a).unwrap();
    }
    // Then one batch carries the four writes (beside any ack for what b sent meanwhile).
    let rest = flush(&mut sa, &a);
    let batches: Vec<usize> = rest
        .iter()
        .filter_map(|f| match Message::decode(f).unwrap() {
            Message::Batch(b) => Some(b.changes.len()),
            _ => None,
        })
        .collect();
    assert_eq!(
        batches,
        vec![8],
        "after the ack, one batch with the four writes (a title and a life entry each)"
    );
    for f in &rest {
        sb.handle_frame(f, &mut b).unwrap();
    }
    assert_eq!(b.list("alerts").unwrap().len(), 5);
}

/// A mesh where some replicas hold only the shared collections and their own reported records
/// (`Interest::Shared`), with writes to a shared and a reported collection, deletes, and
/// connections cut at random. At the end: every replica that holds everything shows the same
/// records; every replica shows the same shared records; and each vector is exactly the part
/// of the hub's that its replica takes, so nothing it takes is missing and nothing it leaves
/// out was claimed.
fn run_mixed(
    shared: [bool; 3],
    actions: Vec<(Action, bool)>,
    links: &[(usize, usize)],
) -> Result<(), TestCaseError> {
    use mizugiwa_sync::{Collection, Interest, StoreConfig};
    let clock = ManualClock::new(1_700_000_000_000);
    let schema = common::schema().collection("vessels", Collection::default().reported());
    let interests: Vec<Interest> = std::iter::once(Interest::Everything)
        .chain(shared.iter().map(|s| {
            if *s {
                Interest::Shared
            } else {
                Interest::Everything
            }
        }))
        .collect();
    let mut replicas: Vec<Store> = interests
        .iter()
        .enumerate()
        .map(|(i, interest)| {
            let mut cfg = StoreConfig::new(&format!("n{i}"));
            cfg.interest = *interest;
            Store::open_in_memory(schema.clone(), std::sync::Arc::new(clock.clone()), cfg).unwrap()
        })
        .collect();
    for (act, reported) in actions {
        clock.advance(7);
        match act {
            Action::Write { at, rec, op, arg } if reported => {
                // A replica creates records named after itself, or edits one it holds (a
                // hub acknowledging, correcting), so a record's home is in its name.
                let r = &mut replicas[at];
                let held = r.ids("vessels").unwrap();
                let id = if arg % 2 == 0 || held.is_empty() {
                    format!("v{at}-{rec}")
                } else {
                    held[rec as usize % held.len()].clone()
                };
                let field = ["lat", "lon", "speed"][op as usize % 3];
                r.put(
                    "vessels",
                    &id,
                    &[(field, FieldOp::Set(Value::Int(arg as i64)))],
                )
                .expect("local write");
            }
            Action::Write { at, rec, op, arg } => write(&mut replicas[at], rec, op, arg),
            Action::Delete { at, rec } if reported => {
                let r = &mut replicas[at];
                let held = r.ids("vessels").unwrap();
                if !held.is_empty() {
                    let id = held[rec as usize % held.len()].clone();
                    r.delete("vessels", &id).expect("delete");
                }
            }
            Action::Delete { at, rec } => {
                replicas[at]
                    .delete("alerts", &format!("r{rec}"))
                    .expect("delete");
            }
            Action::Link {
                a,
                b,
                budget,
                order_seed,
            } => link(&mut replicas, links, (a, b), budget, order_seed)?,
        }
    }
    heal(&mut replicas, links);
    let hub = &replicas[0];
    let alerts_only = ["alerts".to_string()];
    for (r, interest) in replicas.iter().zip(&interests) {
        prop_assert_eq!(
            r.state_hash_of(Some(&alerts_only)).unwrap(),
            hub.state_hash_of(Some(&alerts_only)).unwrap(),
            "{} differs from the hub on shared records",
            r.node()
        );
        prop_assert_eq!(
            r.version_vector(),
            &interest.scope(r.node(), hub.version_vector()),
            "{}'s vector is not the part of the hub's it takes",
            r.node()
        );
        if *interest == Interest::Everything {
            prop_assert_eq!(r.state_hash().unwrap(), hub.state_hash().unwrap());
        } else {
            // Its own records, exactly as the hub shows them (with every edit and delete made
            // elsewhere), and no other.
            let own = format!("v{}-", &r.node()[1..]);
            let strip = |v: Vec<mizugiwa_sync::Record>| {
                v.into_iter()
                    .filter(|r| r.id.starts_with(&own))
                    .map(|r| (r.id, r.fields))
                    .collect::<Vec<_>>()
            };
            let held = r.list("vessels").unwrap();
            prop_assert!(
                held.iter().all(|v| v.id.starts_with(&own)),
                "{} holds another site's vessel",
                r.node()
            );
            prop_assert_eq!(
                strip(held),
                strip(hub.list("vessels").unwrap()),
                "{}'s own vessels differ from the hub's",
                r.node()
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_mesh_of_mixed_interests_converges_on_what_each_holds(
        shared in any::<[bool; 3]>(),
        actions in proptest::collection::vec((action(4), any::<bool>()), 1..60),
    ) {
        let links: Vec<(usize, usize)> = (0..4).flat_map(|a| (0..4).filter(move |b| *b != a).map(move |b| (a, b))).collect();
        run_mixed(shared, actions, &links)?;
    }

    #[test]
    fn hub_and_spoke_with_shared_sites_converges(
        actions in proptest::collection::vec((action(4), any::<bool>()), 1..60),
    ) {
        run_mixed([true, true, true], actions, &[(0, 1), (0, 2), (0, 3)])?;
    }
}
