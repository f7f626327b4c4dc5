//! The replica's SQLite file: what commits write is copied from the write-ahead log into the
//! database file by the store's checkpointer thread, never by the commit a caller waits on.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::schema;
use mizugiwa_sync::{FieldOp, Store, StoreConfig, SystemClock, Value};

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
