//! The replica's SQLite file: what commits write is copied from the write-ahead log into the
//! database file by the store's checkpointer thread, never by the commit a caller waits on; and
//! read-only handles beside the writer see what it committed.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{replica, schema, sync_pair};
use mizugiwa_sync::{FieldOp, ManualClock, Store, StoreConfig, SystemClock, Value};

#[test]
fn committed_pages_reach_the_database_file_while_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.db");
    let mut store = Store::open(
        &path,
        schema(),
        Arc::new(SystemClock::new()),
        StoreConfig::new("a"),
    )
    .unwrap();
    let size = || std::fs::metadata(&path).unwrap().len();
    let before = size();
    // About a hundred commits: a few hundred WAL pages, well under the 1000 at which SQLite's
    // own auto-checkpoint would copy them, so only the checkpointer thread can.
    for i in 0..100 {
        store
            .put(
                "alerts",
                &format!("r{i}"),
                &[("title", FieldOp::Set(Value::Text("x".repeat(300))))],
            )
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while size() < before + 32 * 1024 {
        assert!(
            Instant::now() < deadline,
            "the database file stayed at {} bytes: nothing was checkpointed",
            size()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Everything is readable, and after closing, a fresh open sees every record.
    assert_eq!(store.list("alerts").unwrap().len(), 100);
    drop(store);
    let again = Store::open(
        &path,
        schema(),
        Arc::new(SystemClock::new()),
        StoreConfig::new("a"),
    )
    .unwrap();
    assert_eq!(again.list("alerts").unwrap().len(), 100);
}

#[test]
fn a_reader_beside_the_writer_sees_what_is_committed_including_new_origins() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let mut a = Store::open(
        dir.path().join("a.db"),
        schema(),
        Arc::new(clock.clone()),
        StoreConfig::new("a"),
    )
    .unwrap();
    let mut reader = a.reader().unwrap().expect("a file replica has readers");
    assert!(replica("x", &clock).reader().unwrap().is_none());
    // Concurrent writes at a and at b, a node the reader has never heard of.
    let mut b = replica("b", &clock);
    let verdict = |v: i64| [("verdict", FieldOp::Set(Value::Int(v)))];
    a.put("alerts", "r1", &verdict(1)).unwrap();
    b.put("alerts", "r1", &verdict(2)).unwrap();
    // Same clock, same stamp: last-writer-wins breaks the tie by node name, so the reader
    // must know b by name, not by the number the writer gave it.
    let title = |t: &str| [("title", FieldOp::Set(Value::Text(t.into())))];
    a.put("alerts", "r1", &title("from a")).unwrap();
    b.put("alerts", "r1", &title("from b")).unwrap();
    b.put("alerts", "r2", &[("assignees", FieldOp::Add("ito".into()))])
        .unwrap();
    sync_pair(&mut a, &mut b);
    for id in ["r1", "r2"] {
        let (w, r) = (
            a.get("alerts", id).unwrap(),
            reader.get("alerts", id).unwrap(),
        );
        assert!(w.is_some());
        assert_eq!(
            w.map(|r| r.to_json()),
            r.map(|r| r.to_json()),
            "{id} as read beside the writer"
        );
    }
    assert_eq!(
        reader.get("alerts", "r1").unwrap().unwrap().get("title"),
        Some(&Value::Text("from b".into()))
    );
    assert_eq!(reader.state_hash().unwrap(), a.state_hash().unwrap());
    assert!(
        reader.put("alerts", "r3", &verdict(3)).is_err(),
        "a reader cannot write"
    );
}
