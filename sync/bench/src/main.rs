//! `sync-bench`: the replicated store's benchmarks, with their anchor measured in the same run.
//!
//! * W1 record churn: 10k records × 6 fields; 70% single-field updates, 20% inserts, 10%
//!   deletes. Reports apply throughput (a fresh replica applying the whole log), bytes on the
//!   wire per field update, round trips, and metadata bytes per record at rest.
//! * Local write latency: one record write (one field) against a plain SQLite insert with the
//!   same pragmas (WAL, synchronous=FULL), on files in the same folder.
//! * W2 partition heal: three replicas; two sides each write N ops with 10% key overlap, then
//!   the sides sync (A↔B, B↔C) and the time to identical state hashes is measured.
//!
//! Not yet measured here: the automerge and yrs anchors named in DESIGN.md.

use std::sync::Arc;
use std::time::Instant;

use mizugiwa_sync::protocol::{Session, SessionConfig};
use mizugiwa_sync::{FieldOp, ManualClock, Schema, Store, StoreConfig, Value};

fn store(dir: &std::path::Path, name: &str, clock: &ManualClock) -> Store {
    Store::open(
        dir.join(format!("{name}.db")),
        Schema::new(),
        Arc::new(clock.clone()),
        StoreConfig::new(name),
    )
    .unwrap()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Full exchange between two stores; returns (bytes, frames, round trips ~ acks).
fn exchange(a: &mut Store, b: &mut Store) -> (u64, u64, u64) {
    let mut sa = Session::new(b.node(), SessionConfig::default());
    let mut sb = Session::new(a.node(), SessionConfig::default());
    sa.start(a).unwrap();
    sb.start(b).unwrap();
    loop {
        let mut moved = false;
        while let Some(f) = sa.poll_transmit(a).unwrap() {
            sb.handle_frame(&f, b).unwrap();
            moved = true;
        }
        while let Some(f) = sb.poll_transmit(b).unwrap() {
            sa.handle_frame(&f, a).unwrap();
            moved = true;
        }
        if !moved {
            break;
        }
    }
    let (x, y) = (sa.stats(), sb.stats());
    (
        x.bytes_sent + y.bytes_sent,
        x.frames_sent + y.frames_sent,
        x.acks_received + y.acks_received,
    )
}

const FIELDS: [&str; 6] = ["title", "state", "lat", "lon", "score", "owner"];

fn w1(dir: &std::path::Path, out: &mut String) {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut src = store(dir, "w1-src", &clock);
    let mut rng = Rng(42);
    let mut live: Vec<u32> = Vec::new();
    let mut next_id = 0u32;
    let mut field_updates = 0u64;
    for _ in 0..10_000 {
        clock.advance(1);
        let id = next_id;
        next_id += 1;
        let ops: Vec<(&str, FieldOp)> = FIELDS
            .iter()
            .map(|f| (*f, FieldOp::Set(Value::Int((rng.next() % 1000) as i64))))
            .collect();
        src.put("tracks", &format!("r{id}"), &ops).unwrap();
        field_updates += 6;
        live.push(id);
    }
    let t = Instant::now();
    let churn_ops = 10_000;
    for _ in 0..churn_ops {
        clock.advance(1);
        let r = rng.next() % 100;
        if r < 70 && !live.is_empty() {
            let id = live[(rng.next() as usize) % live.len()];
            let f = FIELDS[(rng.next() % 6) as usize];
            src.put(
                "tracks",
                &format!("r{id}"),
                &[(f, FieldOp::Set(Value::Int((rng.next() % 1000) as i64)))],
            )
            .unwrap();
            field_updates += 1;
        } else if r < 90 {
            let id = next_id;
            next_id += 1;
            let ops: Vec<(&str, FieldOp)> = FIELDS
                .iter()
                .map(|f| (*f, FieldOp::Set(Value::Int((rng.next() % 1000) as i64))))
                .collect();
            src.put("tracks", &format!("r{id}"), &ops).unwrap();
            field_updates += 6;
            live.push(id);
        } else if !live.is_empty() {
            let i = (rng.next() as usize) % live.len();
            let id = live.swap_remove(i);
            src.delete("tracks", &format!("r{id}")).unwrap();
            field_updates += 1;
        }
    }
    let churn_write_s = t.elapsed().as_secs_f64();
    let mut dst = store(dir, "w1-dst", &clock);
    let t = Instant::now();
    let (bytes, frames, acks) = exchange(&mut src, &mut dst);
    let apply_s = t.elapsed().as_secs_f64();
    assert_eq!(src.state_hash().unwrap(), dst.state_hash().unwrap());
    let (rows, at_rest) = dst.footprint().unwrap();
    let records = live.len() as f64;
    out.push_str(&format!(
        "### W1 record churn (10k records × 6 fields, then 10k churn ops: 70% update / 20% insert / 10% delete)\n\n\
         | measure | value |\n|---|---|\n\
         | field updates written at the source | {field_updates} |\n\
         | churn ops written (durable, one transaction each) | {churn_ops} in {churn_write_s:.2} s = {:.0} ops/s |\n\
         | full sync to an empty replica (read + encode + apply + commit) | {apply_s:.3} s |\n\
         | apply throughput | {:.0} field updates/s = {:.1} ms per 10k field updates |\n\
         | bytes on the wire (both directions, all frames) | {bytes} = **{:.2} B per field update** |\n\
         | frames / acknowledged batches (round trips) | {frames} / {acks} |\n\
         | entries at rest / live records | {rows} / {} |\n\
         | metadata + data bytes at rest per live record | {:.0} B |\n\n",
        churn_ops as f64 / churn_write_s,
        field_updates as f64 / apply_s,
        apply_s * 1e4 / field_updates as f64 * 1e3,
        bytes as f64 / field_updates as f64,
        live.len(),
        at_rest as f64 / records,
    ));
}

fn write_latency(dir: &std::path::Path, out: &mut String) {
    let n = 2000;
    let clock = ManualClock::new(1_700_000_000_000);
    let mut s = store(dir, "lat", &clock);
    let conn = rusqlite::Connection::open(dir.join("plain.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE t(id TEXT PRIMARY KEY, v INTEGER)")
        .unwrap();
    let mut plain = Vec::with_capacity(n);
    let mut ours = Vec::with_capacity(n);
    // Interleave the two so that disk and cache conditions are shared.
    for i in 0..n {
        let t = Instant::now();
        conn.execute(
            "INSERT INTO t VALUES (?1, ?2)",
            rusqlite::params![format!("r{i}"), i as i64],
        )
        .unwrap();
        plain.push(t.elapsed().as_secs_f64() * 1e6);
        clock.advance(1);
        let t = Instant::now();
        s.put(
            "tracks",
            &format!("r{}", i % 500),
            &[("score", FieldOp::Set(Value::Int(i as i64)))],
        )
        .unwrap();
        ours.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (v[v.len() / 2], v[v.len() * 99 / 100])
    };
    let (pm, p99) = med(&mut plain);
    let (om, o99) = med(&mut ours);
    out.push_str(&format!(
        "### Local write latency (one field of one record, durable; {n} writes each, interleaved)\n\n\
         | | median | p99 |\n|---|---|---|\n\
         | plain SQLite INSERT (WAL, synchronous=FULL) — anchor | {pm:.0} µs | {p99:.0} µs |\n\
         | mizugiwa `Store::put` | {om:.0} µs | {o99:.0} µs |\n\
         | **ratio** | **{:.2}×** | {:.2}× |\n\n",
        om / pm,
        o99 / p99
    ));
}

fn w2(dir: &std::path::Path, n: usize, out: &mut String) {
    let clock = ManualClock::new(1_700_000_000_000);
    // synchronous=NORMAL here: the setup writes 2n single-op transactions, and the heal being
    // measured commits one transaction per batch either way.
    let open = |name: String| {
        let mut cfg = StoreConfig::new(&name);
        cfg.durability = mizugiwa_sync::Durability::Normal;
        Store::open(
            dir.join(format!("{name}.db")),
            Schema::new(),
            Arc::new(clock.clone()),
            cfg,
        )
        .unwrap()
    };
    let (mut a, mut b, mut c) = (
        open(format!("w2a{n}")),
        open(format!("w2b{n}")),
        open(format!("w2c{n}")),
    );
    let mut rng = Rng(7);
    // Each side writes n ops; 10% of keys are shared.
    for (side, s) in [(0u64, &mut a), (1, &mut c)] {
        for i in 0..n {
            clock.advance(1);
            let key = if rng.next() % 10 == 0 {
                format!("shared{}", i % 1000)
            } else {
                format!("s{side}-{i}")
            };
            s.put(
                "tracks",
                &key,
                &[("score", FieldOp::Set(Value::Int(i as i64)))],
            )
            .unwrap();
        }
    }
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..2 {
        bytes += exchange(&mut a, &mut b).0;
        bytes += exchange(&mut b, &mut c).0;
    }
    let heal = t.elapsed().as_secs_f64();
    let h = a.state_hash().unwrap();
    assert_eq!(h, b.state_hash().unwrap());
    assert_eq!(h, c.state_hash().unwrap());
    out.push_str(&format!(
        "| {n} per side | {:.2} s | {:.1} MB |\n",
        heal,
        bytes as f64 / 1e6
    ));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out_path = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let dir = tempfile::tempdir().unwrap();
    let mut out = String::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    out.push_str(&format!(
        "# Sync benchmarks\n\nMeasured by `make bench` (`cargo run --release -p mizugiwa-sync-bench`), one run, on: {cpu}, {} cores, files in {}.\nAll numbers come from the same run; the anchor is measured beside ours.\n\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        dir.path().display()
    ));
    eprintln!("W1 churn ...");
    w1(dir.path(), &mut out);
    eprintln!("write latency ...");
    write_latency(dir.path(), &mut out);
    out.push_str("### W2 partition heal (3 replicas A–B–C; A and C each wrote N ops while apart, 10% key overlap)\n\nTime from the first sync to identical state hashes on all three, in-process sessions over SQLite files (synchronous=NORMAL), no network.\n\n| backlog | converge | wire bytes |\n|---|---|---|\n");
    for n in [10_000, 100_000] {
        eprintln!("W2 {n} ...");
        w2(dir.path(), n, &mut out);
    }
    out.push_str(
        "\nNot measured yet: the automerge and yrs anchors of DESIGN.md on the same W1 workload.\n",
    );
    print!("{out}");
    if let Some(p) = out_path {
        std::fs::write(p, &out).unwrap();
    }
}
