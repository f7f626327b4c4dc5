//! The W1 op sequence, shared by our store and the anchors, and the two anchors of the design
//! doc (automerge and yrs) replaying exactly the same ops in the same run.
//!
//! Each anchor models the `tracks` collection the natural way for that library: one document,
//! a root map `tracks` holding one nested map per record (`r{id}`) with the six scalar fields.
//! One change / transaction per W1 op, like our one store transaction per op. Everything is in
//! memory: neither anchor writes to disk, while our number includes durable SQLite commits.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::{Rng, FIELDS};

/// Version strings for the report; keep in step with the `=` pins in Cargo.toml.
pub const AUTOMERGE_VERSION: &str = "0.12.0";
pub const YRS_VERSION: &str = "0.28.1";

/// Records inserted before the churn starts; the first `W1_RECORDS` ops are those inserts.
pub const W1_RECORDS: usize = 10_000;
/// Churn ops drawn after the initial records.
pub const W1_CHURN: usize = 10_000;

/// One W1 op on the `tracks` collection. Record `id` is stored under the key `r{id}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum W1Op {
    /// A new record with all six fields (in `FIELDS` order).
    Insert { id: u32, values: [i64; 6] },
    /// One field (`FIELDS[field_idx]`) of a live record.
    Update {
        id: u32,
        field_idx: usize,
        value: i64,
    },
    /// A live record goes away.
    Delete { id: u32 },
}

impl W1Op {
    /// Field updates this op counts for (an insert writes 6 fields; a delete counts as 1).
    pub fn field_updates(&self) -> u64 {
        match self {
            W1Op::Insert { .. } => 6,
            W1Op::Update { .. } | W1Op::Delete { .. } => 1,
        }
    }
}

pub fn key(id: u32) -> String {
    format!("r{id}")
}

/// The W1 ops, deterministically from `Rng(42)`: `W1_RECORDS` inserts, then `W1_CHURN` churn
/// draws (70% update of a random live record, 20% insert, 10% delete of a random live record).
///
/// The rng calls are exactly those of the original inline generator in `w1()`: per insert six
/// value draws; per churn draw one `% 100` draw, then for an update record, field and value, for
/// a delete the live index (removed by `swap_remove`). A churn draw that finds nothing to do
/// (delete with no live record; cannot happen with 10k initial records) produces no op.
pub fn w1_ops() -> Vec<W1Op> {
    let mut rng = Rng(42);
    let mut live: Vec<u32> = Vec::new();
    let mut next_id = 0u32;
    let mut ops = Vec::with_capacity(W1_RECORDS + W1_CHURN);
    let mut insert = |rng: &mut Rng, live: &mut Vec<u32>, ops: &mut Vec<W1Op>| {
        let id = next_id;
        next_id += 1;
        let values = std::array::from_fn(|_| (rng.next() % 1000) as i64);
        ops.push(W1Op::Insert { id, values });
        live.push(id);
    };
    for _ in 0..W1_RECORDS {
        insert(&mut rng, &mut live, &mut ops);
    }
    for _ in 0..W1_CHURN {
        let r = rng.next() % 100;
        if r < 70 && !live.is_empty() {
            let id = live[(rng.next() as usize) % live.len()];
            let field_idx = (rng.next() % 6) as usize;
            let value = (rng.next() % 1000) as i64;
            ops.push(W1Op::Update {
                id,
                field_idx,
                value,
            });
        } else if r < 90 {
            insert(&mut rng, &mut live, &mut ops);
        } else if !live.is_empty() {
            let i = (rng.next() as usize) % live.len();
            let id = live.swap_remove(i);
            ops.push(W1Op::Delete { id });
        }
    }
    ops
}

/// The state the ops leave behind: live record id → its six field values.
pub fn w1_model(ops: &[W1Op]) -> BTreeMap<u32, [i64; 6]> {
    let mut m = BTreeMap::new();
    for op in ops {
        match *op {
            W1Op::Insert { id, values } => {
                m.insert(id, values);
            }
            W1Op::Update {
                id,
                field_idx,
                value,
            } => m.get_mut(&id).expect("update of a live record")[field_idx] = value,
            W1Op::Delete { id } => {
                m.remove(&id).expect("delete of a live record");
            }
        }
    }
    m
}

/// One way of bringing a fresh replica up to date with the whole W1 history.
pub struct ApplyRow {
    pub label: String,
    pub secs: f64,
    /// Bytes that had to be moved for this variant (`None` when not meaningful).
    pub bytes: Option<u64>,
    /// This is the row the targets are checked against.
    pub anchor: bool,
}

pub struct AnchorRun {
    pub name: String,
    /// Writing all W1 ops at the source, one change / transaction each, in memory.
    pub write_s: f64,
    pub ops: usize,
    pub rows: Vec<ApplyRow>,
    /// Extra facts for the notes under the table.
    pub notes: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// automerge

/// automerge: one `AutoCommit` document, `ROOT["tracks"]` → map per record → scalar fields.
pub fn automerge_w1(ops: &[W1Op], base_ms: i64) -> AnchorRun {
    use automerge::sync::{Message, State, SyncDoc};
    use automerge::transaction::{CommitOptions, Transactable};
    use automerge::{ActorId, AutoCommit, Automerge, Change, ObjType, ReadDoc, ROOT};

    let model = w1_model(ops);
    let mut src = AutoCommit::new().with_actor(ActorId::from([1u8; 16]));
    let t = Instant::now();
    let tracks = src.put_object(ROOT, "tracks", ObjType::Map).unwrap();
    src.commit_with(CommitOptions::default().with_time(base_ms));
    for (i, op) in ops.iter().enumerate() {
        match *op {
            W1Op::Insert { id, values } => {
                let rec = src.put_object(&tracks, key(id), ObjType::Map).unwrap();
                for (f, v) in FIELDS.iter().zip(values) {
                    src.put(&rec, *f, v).unwrap();
                }
            }
            W1Op::Update {
                id,
                field_idx,
                value,
            } => {
                let (_, rec) = src.get(&tracks, key(id)).unwrap().expect("live record");
                src.put(&rec, FIELDS[field_idx], value).unwrap();
            }
            W1Op::Delete { id } => src.delete(&tracks, key(id)).unwrap(),
        }
        src.commit_with(CommitOptions::default().with_time(base_ms + 1 + i as i64));
    }
    let write_s = t.elapsed().as_secs_f64();

    // The source side of shipping the history: every change, as its encoded bytes.
    let t = Instant::now();
    let changes = src.get_changes(&[]);
    let change_bytes: Vec<Vec<u8>> = changes.iter().map(|c| c.raw_bytes().to_vec()).collect();
    let extract_s = t.elapsed().as_secs_f64();
    let n_changes = changes.len();
    let change_total: u64 = change_bytes.iter().map(|b| b.len() as u64).sum();
    let heads = src.get_heads();

    let check = |doc: &Automerge, what: &str| {
        let (_, tr) = doc.get(ROOT, "tracks").unwrap().expect("tracks");
        assert_eq!(
            doc.length(&tr),
            model.len(),
            "automerge {what}: live records"
        );
        for (id, values) in &model {
            let (_, rec) = doc.get(&tr, key(*id)).unwrap().expect("live record");
            for (f, v) in FIELDS.iter().zip(values) {
                let (val, _) = doc.get(&rec, *f).unwrap().expect("field");
                assert_eq!(val.as_i64(), Some(*v), "automerge {what}: r{id}.{f}");
            }
        }
        assert_eq!(doc.get_heads(), heads, "automerge {what}: heads");
    };

    // (1) The anchor: a fresh document decodes the change bytes and applies them all.
    let mut dst = Automerge::new();
    let t = Instant::now();
    let decoded: Vec<Change> = change_bytes
        .iter()
        .map(|b| Change::try_from(&b[..]).unwrap())
        .collect();
    dst.apply_changes(decoded).unwrap();
    let apply_bytes_s = t.elapsed().as_secs_f64();
    check(&dst, "apply_changes(from bytes)");
    drop(dst);

    // (2) Apply only: the same, with changes already decoded.
    let mut dst = Automerge::new();
    let pre = changes.clone();
    let t = Instant::now();
    dst.apply_changes(pre).unwrap();
    let apply_decoded_s = t.elapsed().as_secs_f64();
    drop(dst);

    // (3) Whole-document snapshot: save() at the source, load() at the fresh replica.
    let t = Instant::now();
    let saved = src.save();
    let save_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let loaded = Automerge::load(&saved).unwrap();
    let load_s = t.elapsed().as_secs_f64();
    check(&loaded, "load(save())");
    drop(loaded);

    // (4) automerge's own sync protocol to an empty peer, messages encoded and decoded.
    let mut src_doc = src.document().clone();
    let mut dst = Automerge::new();
    let (mut s_src, mut s_dst) = (State::new(), State::new());
    let (mut sync_bytes, mut msgs) = (0u64, 0u64);
    let t = Instant::now();
    loop {
        let mut moved = false;
        if let Some(m) = src_doc.generate_sync_message(&mut s_src) {
            let b = m.encode();
            sync_bytes += b.len() as u64;
            msgs += 1;
            dst.receive_sync_message(&mut s_dst, Message::decode(&b).unwrap())
                .unwrap();
            moved = true;
        }
        if let Some(m) = dst.generate_sync_message(&mut s_dst) {
            let b = m.encode();
            sync_bytes += b.len() as u64;
            msgs += 1;
            src_doc
                .receive_sync_message(&mut s_src, Message::decode(&b).unwrap())
                .unwrap();
            moved = true;
        }
        if !moved {
            break;
        }
    }
    let sync_s = t.elapsed().as_secs_f64();
    check(&dst, "sync protocol");

    AnchorRun {
        name: format!("automerge {AUTOMERGE_VERSION}"),
        write_s,
        ops: ops.len(),
        rows: vec![
            ApplyRow {
                label: format!(
                    "automerge {AUTOMERGE_VERSION}: decode {n_changes} change byte strings + `apply_changes` (**anchor**)"
                ),
                secs: apply_bytes_s,
                bytes: Some(change_total),
                anchor: true,
            },
            ApplyRow {
                label: format!(
                    "automerge: same, source `get_changes` + encode included (+{:.0} ms)",
                    extract_s * 1e3
                ),
                secs: extract_s + apply_bytes_s,
                bytes: Some(change_total),
                anchor: false,
            },
            ApplyRow {
                label: "automerge: `apply_changes` of already-decoded changes".into(),
                secs: apply_decoded_s,
                bytes: None,
                anchor: false,
            },
            ApplyRow {
                label: format!(
                    "automerge: `load()` of one `save()` (save itself {:.0} ms)",
                    save_s * 1e3
                ),
                secs: load_s,
                bytes: Some(saved.len() as u64),
                anchor: false,
            },
            ApplyRow {
                label: format!("automerge: sync protocol to an empty doc, in memory ({msgs} messages)"),
                secs: sync_s,
                bytes: Some(sync_bytes),
                anchor: false,
            },
        ],
        notes: vec![format!(
            "automerge: {n_changes} changes (the `tracks` map + one per op; {} updates rewrote a field's current value, which automerge drops as an empty commit), {change_total} B of change bytes, `save()` = {} B; the applied, loaded and synced docs have {} live records and the source's heads (checked field by field against the op model)",
            (ops.len() + 1).saturating_sub(n_changes),
            saved.len(),
            model.len()
        )],
    }
}

// ---------------------------------------------------------------------------------------------
// yrs

/// yrs: one `Doc`, root `MapRef` "tracks" → nested map per record → scalar fields.
pub fn yrs_w1(ops: &[W1Op]) -> AnchorRun {
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, Map, MapPrelim, MapRef, Out, ReadTxn, StateVector, Transact, Update};

    let model = w1_model(ops);
    let src = Doc::with_client_id(1);
    let tracks = src.get_or_insert_map("tracks");
    let updates: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    {
        let updates = updates.clone();
        src.observe_update_v1("bench", move |_, e| {
            updates.lock().unwrap().push(e.update.clone())
        })
        .unwrap();
    }
    let record = |txn: &yrs::TransactionMut, id: u32| -> MapRef {
        match tracks.get(txn, &key(id)) {
            Some(Out::YMap(m)) => m,
            other => panic!("r{id} is not a live record: {other:?}"),
        }
    };
    let t = Instant::now();
    for op in ops {
        let mut txn = src.transact_mut();
        match *op {
            W1Op::Insert { id, values } => {
                let rec = tracks.insert(&mut txn, key(id), MapPrelim::default());
                for (f, v) in FIELDS.iter().zip(values) {
                    rec.insert(&mut txn, *f, v);
                }
            }
            W1Op::Update {
                id,
                field_idx,
                value,
            } => {
                let rec = record(&txn, id);
                rec.insert(&mut txn, FIELDS[field_idx], value);
            }
            W1Op::Delete { id } => {
                tracks.remove(&mut txn, &key(id)).expect("live record");
            }
        }
        // Dropping the transaction commits it; the observer encodes its update.
    }
    let write_s = t.elapsed().as_secs_f64();
    src.unobserve_update_v1("bench").unwrap();
    let updates = std::mem::take(&mut *updates.lock().unwrap());
    let n_updates = updates.len();
    let update_total: u64 = updates.iter().map(|u| u.len() as u64).sum();

    let check = |doc: &Doc, what: &str| {
        let tr = doc.get_or_insert_map("tracks");
        let txn = doc.transact();
        assert_eq!(
            tr.len(&txn) as usize,
            model.len(),
            "yrs {what}: live records"
        );
        for (id, values) in &model {
            let rec = match tr.get(&txn, &key(*id)) {
                Some(Out::YMap(m)) => m,
                other => panic!("yrs {what}: r{id} missing: {other:?}"),
            };
            for (f, v) in FIELDS.iter().zip(values) {
                let got = rec.get(&txn, f).and_then(|o| match o {
                    Out::Any(yrs::Any::Number(n)) => n.as_i64(),
                    _ => None,
                });
                assert_eq!(got, Some(*v), "yrs {what}: r{id}.{f}");
            }
        }
        assert_eq!(
            txn.state_vector(),
            src.transact().state_vector(),
            "yrs {what}: state vector"
        );
    };

    // (1) The anchor: a fresh doc decodes and applies every per-transaction update, one
    // transaction per update.
    let dst = Doc::with_client_id(2);
    let t = Instant::now();
    for u in &updates {
        let u = Update::decode_v1(u).unwrap();
        dst.transact_mut().apply_update(u).unwrap();
    }
    let apply_incr_s = t.elapsed().as_secs_f64();
    check(&dst, "per-txn updates");
    drop(dst);

    // (2) The same updates decoded and applied in one transaction.
    let dst = Doc::with_client_id(3);
    let t = Instant::now();
    {
        let mut txn = dst.transact_mut();
        for u in &updates {
            txn.apply_update(Update::decode_v1(u).unwrap()).unwrap();
        }
    }
    let apply_one_txn_s = t.elapsed().as_secs_f64();
    check(&dst, "per-txn updates in one txn");
    drop(dst);

    // (3) One merged state update (what yrs' sync step 2 sends to an empty peer): encoded at
    // the source against an empty state vector, applied in one transaction.
    let t = Instant::now();
    let state = src
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let encode_state_s = t.elapsed().as_secs_f64();
    let dst = Doc::with_client_id(4);
    let t = Instant::now();
    dst.transact_mut()
        .apply_update(Update::decode_v1(&state).unwrap())
        .unwrap();
    let apply_state_s = t.elapsed().as_secs_f64();
    check(&dst, "merged state update");
    drop(dst);

    AnchorRun {
        name: format!("yrs {YRS_VERSION}"),
        write_s,
        ops: ops.len(),
        rows: vec![
            ApplyRow {
                label: format!(
                    "yrs {YRS_VERSION}: decode + `apply_update` of {n_updates} per-txn updates, one txn each (**anchor**)"
                ),
                secs: apply_incr_s,
                bytes: Some(update_total),
                anchor: true,
            },
            ApplyRow {
                label: "yrs: the same updates applied in one txn".into(),
                secs: apply_one_txn_s,
                bytes: Some(update_total),
                anchor: false,
            },
            ApplyRow {
                label: format!(
                    "yrs: one merged state update, decode + apply (encode at source +{:.0} ms not included)",
                    encode_state_s * 1e3
                ),
                secs: apply_state_s,
                bytes: Some(state.len() as u64),
                anchor: false,
            },
        ],
        notes: vec![format!(
            "yrs: {n_updates} updates, {update_total} B of updates, merged state update = {} B; every applied doc has {} live records and the source's state vector (checked field by field against the op model)",
            state.len(),
            model.len()
        )],
    }
}
