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
//! * W1 anchors: automerge and yrs (the anchors named in DESIGN.md) replay the same W1 ops in
//!   the same run (`anchors.rs`); their fresh-replica apply time is set against ours.

mod anchors;
mod heal_quic;

use std::sync::Arc;
use std::time::Instant;

use anchors::{W1Op, W1_CHURN, W1_RECORDS};
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

/// Writes one W1 op to our store: one transaction.
fn put_ours(src: &mut Store, op: &W1Op) {
    match *op {
        W1Op::Insert { id, values } => {
            let ops: Vec<(&str, FieldOp)> = FIELDS
                .iter()
                .zip(values)
                .map(|(f, v)| (*f, FieldOp::Set(Value::Int(v))))
                .collect();
            src.put("tracks", &anchors::key(id), &ops).unwrap();
        }
        W1Op::Update {
            id,
            field_idx,
            value,
        } => {
            src.put(
                "tracks",
                &anchors::key(id),
                &[(FIELDS[field_idx], FieldOp::Set(Value::Int(value)))],
            )
            .unwrap();
        }
        W1Op::Delete { id } => {
            src.delete("tracks", &anchors::key(id)).unwrap();
        }
    }
}

/// Our W1 figures the anchors section compares against.
struct W1Ours {
    apply_s: f64,
    field_updates: u64,
    wire_bytes: u64,
}

fn w1(dir: &std::path::Path, ops: &[W1Op], out: &mut String) -> W1Ours {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut src = store(dir, "w1-src", &clock);
    let (initial, churn) = ops.split_at(W1_RECORDS);
    // Every churn draw yields an op (nothing is ever left to skip), so the clock advances
    // exactly as when ops were drawn inline.
    assert_eq!(churn.len(), W1_CHURN);
    for op in initial {
        clock.advance(1);
        put_ours(&mut src, op);
    }
    let t = Instant::now();
    for op in churn {
        clock.advance(1);
        put_ours(&mut src, op);
    }
    let churn_write_s = t.elapsed().as_secs_f64();
    let churn_ops = churn.len();
    let field_updates: u64 = ops.iter().map(W1Op::field_updates).sum();
    let live = anchors::w1_model(ops).len();
    let mut dst = store(dir, "w1-dst", &clock);
    let t = Instant::now();
    let (bytes, frames, acks) = exchange(&mut src, &mut dst);
    let apply_s = t.elapsed().as_secs_f64();
    assert_eq!(src.state_hash().unwrap(), dst.state_hash().unwrap());
    let (rows, at_rest) = dst.footprint().unwrap();
    let records = live as f64;
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
        live,
        at_rest as f64 / records,
    ));
    W1Ours {
        apply_s,
        field_updates,
        wire_bytes: bytes,
    }
}

/// automerge and yrs replay the W1 ops; a fresh replica of each applies the whole history.
fn w1_anchors(ops: &[W1Op], ours: &W1Ours, out: &mut String) {
    eprintln!("W1 anchor automerge ...");
    let am = anchors::automerge_w1(ops, 1_700_000_000_000);
    eprintln!("W1 anchor yrs ...");
    let y = anchors::yrs_w1(ops);
    let fu = ours.field_updates as f64;
    let ratio = |anchor_s: f64| anchor_s / ours.apply_s;
    out.push_str(&format!(
        "### W1 anchors: automerge and yrs on the same ops\n\n\
         The same {} W1 ops (same `Rng(42)` sequence, {} field updates) replayed into automerge and yrs in this run: \
         one document, root map `tracks` → one nested map per record → six integer fields; one change / transaction per op. \
         Apply = a fresh, empty replica taking in the whole history. \
         Ratio = anchor time / our time (above 1× we are faster). \
         Ours is the full sync to an empty replica from the W1 table (source read + encode + session frames + apply + durable SQLite commit); \
         the anchors run in memory and never touch disk.\n\n\
         Targets (DESIGN.md): apply **≥ 10× automerge** and **faster than yrs**.\n\n\
         | system | apply time for the full history | field updates/s | ratio ours/anchor (anchor time / our time) | bytes per field update |\n\
         |---|---|---|---|---|\n\
         | mizugiwa: full sync to an empty replica (bytes: wire, both directions) | {:.3} s | {:.0} | 1.00× | {:.2} B |\n",
        ops.len(),
        ours.field_updates,
        ours.apply_s,
        fu / ours.apply_s,
        ours.wire_bytes as f64 / fu,
    ));
    for run in [&am, &y] {
        for r in &run.rows {
            let bytes = r
                .bytes
                .map(|b| format!("{:.2} B", b as f64 / fu))
                .unwrap_or_else(|| "—".into());
            let rt = ratio(r.secs);
            let rt = if r.anchor {
                format!("**{rt:.2}×**")
            } else {
                format!("{rt:.2}×")
            };
            out.push_str(&format!(
                "| {} | {:.3} s | {:.0} | {rt} | {bytes} |\n",
                r.label,
                r.secs,
                fu / r.secs,
            ));
        }
    }
    out.push('\n');
    let anchor = |run: &anchors::AnchorRun| run.rows.iter().find(|r| r.anchor).unwrap().secs;
    let fastest = |run: &anchors::AnchorRun| {
        run.rows
            .iter()
            .map(|r| r.secs)
            .fold(f64::INFINITY, f64::min)
    };
    let verdict = |ok: bool| if ok { "**met**" } else { "**not met**" };
    let (am_r, am_min) = (ratio(anchor(&am)), ratio(fastest(&am)));
    let (y_r, y_min) = (ratio(anchor(&y)), ratio(fastest(&y)));
    out.push_str(&format!(
        "* ≥ 10× automerge: {am_r:.2}× against the anchor row — {}; {am_min:.2}× against automerge's fastest row — {}.\n\
         * faster than yrs: {y_r:.2}× against the anchor row — {}; {y_min:.2}× against yrs' fastest row — {}.\n",
        verdict(am_r >= 10.0),
        verdict(am_min >= 10.0),
        verdict(y_r > 1.0),
        verdict(y_min > 1.0),
    ));
    for run in [&am, &y] {
        out.push_str(&format!(
            "* {} at the source: {} ops written in {:.2} s = {:.0} ops/s (in memory, one change / txn per op).\n",
            run.name,
            run.ops,
            run.write_s,
            run.ops as f64 / run.write_s
        ));
        for n in &run.notes {
            out.push_str(&format!("* {n}.\n"));
        }
    }
    out.push_str(
        "* Not like for like: our time includes the source side, the session protocol and durable commits; \
         the anchor rows are the receiving side only (unless stated), in memory. \
         automerge keeps the whole change history (hash graph) on both sides; yrs garbage-collects deleted records' contents. \
         In both anchors a record is one nested map, so two replicas inserting the same record id concurrently end up with one whole record winning, \
         where our store merges per field. \
         Bytes: ours are all frames on the wire both ways; automerge's are raw change bytes (or the compressed `save()`, or sync messages), \
         yrs' are lib0 v1 updates.\n\n",
    );
}

/// Measures and writes the local write latency table; returns the median ratio to the anchor.
fn write_latency(dir: &std::path::Path, out: &mut String) -> f64 {
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
    om / pm
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
            let key = if rng.next().is_multiple_of(10) {
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

/// What the numbers above mean for the targets, and what limits them (kept with the generator
/// so that `make bench` rewrites the file whole).
const FOOTER: &str = "
### Targets and what limits us

| target | status |
|---|---|
| ≤ 12 bytes on the wire per field update | met (W1 table) |
| local write ≤ 1.5× a plain SQLite insert | {LOCAL_WRITE} |
| apply ≥ 10× automerge, faster than yrs | **not met** (anchor table): our full sync to an empty replica is below automerge's change apply and about 4× slower than yrs' update apply |
| 100k-op backlog converges in ≤ 2 s | **not met** (W2 tables) |

Where the time goes (perf, this machine): per applied entry one indexed lookup of the record's
entries (now once per record, not per field), one append to `entry` plus its unique index, the
decode of the state and its re-encode for storage, and string allocations for collection,
record, field and origin names; durable commits per batch. SQLite and the allocator are about
two thirds of the profile. The anchors keep documents in memory and never touch disk. Closing a
10× gap needs a different at-rest shape, not tuning: e.g. one row per record and origin with
packed fields, names interned to integers in the wire format and at rest, and states moved as
bytes from log to log without decoding. That is the next piece of work on the store.
";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out_path = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let dir = tempfile::tempdir().unwrap();
    // `--quic-only N`: just the W2-over-QUIC heal with N ops per side (for profiling).
    if let Some(n) = args
        .iter()
        .position(|a| a == "--quic-only")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
    {
        let r = heal_quic::run(dir.path(), n);
        println!(
            "W2 over QUIC, {n} per side: {:.2} s, {} bytes",
            r.converge.as_secs_f64(),
            r.bytes
        );
        return;
    }
    if args.iter().any(|a| a == "--latency-only") {
        let mut text = String::new();
        write_latency(dir.path(), &mut text);
        print!("{text}");
        return;
    }
    if args.iter().any(|a| a == "--w1-only") {
        let mut scratch = String::new();
        let ours = w1(dir.path(), &anchors::w1_ops(), &mut scratch);
        println!("W1 full sync to an empty replica: {:.3} s", ours.apply_s);
        return;
    }
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
    let ops = anchors::w1_ops();
    let ours = w1(dir.path(), &ops, &mut out);
    w1_anchors(&ops, &ours, &mut out);
    eprintln!("write latency ...");
    let write_ratio = write_latency(dir.path(), &mut out);
    out.push_str("### W2 partition heal (3 replicas A–B–C; A and C each wrote N ops while apart, 10% key overlap)\n\nTime from the first sync to identical state hashes on all three, in-process sessions over SQLite files (synchronous=NORMAL), no network.\n\n| backlog | converge | wire bytes |\n|---|---|---|\n");
    for n in [10_000, 100_000] {
        eprintln!("W2 {n} ...");
        w2(dir.path(), n, &mut out);
    }
    out.push_str("\n### W2 over QUIC (the deployed path: three sync drivers, mutual TLS on loopback, synchronous=FULL)\n\nA and C dial B; time from starting the drivers until all three version vectors cover both backlogs (then state hashes are checked equal). The target is 100k ops converged in ≤ 2 s.\n\n| backlog | converge | wire bytes (sent, all links) |\n|---|---|---|\n");
    for n in [10_000, 100_000] {
        eprintln!("W2 over QUIC {n} ...");
        let r = heal_quic::run(dir.path(), n);
        out.push_str(&format!(
            "| {n} per side | {:.2} s | {:.1} MB |\n",
            r.converge.as_secs_f64(),
            r.bytes as f64 / 1e6
        ));
    }
    // The verdict follows this run's figure: the median depends on the disk's fsync time of the
    // day (1.22× on one day, 1.6-1.9× on another for the same code), so it is judged, not assumed.
    let local_write = if write_ratio <= 1.5 {
        format!("met in this run ({write_ratio:.2}×, write latency table)")
    } else {
        format!(
            "**not met** in this run ({write_ratio:.2}×, write latency table): a put replaces the record's entry (delete, insert, index updates) where the anchor appends one row, and the gap follows the disk's fsync time (1.22× in the run committed before 2026-11-27; 1.6-1.9× on 2026-11-27 for the code before and after that day's changes alike)"
        )
    };
    out.push_str(&FOOTER.replace("{LOCAL_WRITE}", &local_write));
    print!("{out}");
    if let Some(p) = out_path {
        std::fs::write(p, &out).unwrap();
    }
}
