//! Durability: a writer process is killed with SIGKILL mid-stream; every write it acknowledged
//! (printed after `put` returned) is in the database afterwards, and the file is intact.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn kill_dash_nine_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("site.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mizugiwa"))
        .args([
            "store", "fill", "--node", "yokohama", "--count", "1000000", "--db",
        ])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the writer");
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < 300 {
        match lines.next() {
            Some(Ok(id)) => acked.push(id),
            other => panic!("writer stopped early: {other:?}"),
        }
    }
    // SIGKILL: no destructor, no flush, no checkpoint.
    child.kill().unwrap();
    child.wait().unwrap();
    // Anything printed before the kill landed also counts as acknowledged.
    acked.extend(lines.map_while(Result::ok));

    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);

    let list = Command::new(env!("CARGO_BIN_EXE_mizugiwa"))
        .args(["store", "list", "load", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let stored: std::collections::HashSet<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(stored.len() >= acked.len());
}
