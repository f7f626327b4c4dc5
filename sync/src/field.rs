//! The state of one field, and how two states of the same field merge.
//!
//! Every kind is a join-semilattice over `(stamp, state)` pairs, where the stamp is the hybrid
//! logical clock and node name of the write:
//!
//! * `lww` keeps one winner, by stamp;
//! * `status` keeps the highest rank, `mv`, `set` and `counter` merge their states, and so
//!   does the record's life;
//! * the record's life is a causal length (odd = present) plus the time of the latest delete.
//!
//! The store keeps, per field, only entries that no other entry dominates; [`join`] and
//! [`dominates`] are the whole algebra it needs, and the property tests in this file check
//! their laws for every kind.

use std::collections::BTreeMap;

use crdts::{CmRDT, CvRDT, Orswot, PNCounter, VClock};
use serde::{Deserialize, Serialize};

use crate::clock::Hlc;
use crate::value::Value;
use crate::wire::{Reader, WireError, Writer};

/// Who wrote a field state, and when: the last-writer-wins order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// Hybrid logical clock of the write.
    pub hlc: Hlc,
    /// Name of the node that wrote it (breaks HLC ties the same way on every replica).
    pub origin: String,
}

/// A multi-value register: the values of concurrent writes, each tagged with its dot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MvRegister {
    clock: BTreeMap<String, u64>,
    values: BTreeMap<(String, u64), Value>,
}

impl MvRegister {
    /// Replaces every value this replica has seen with `value`.
    pub fn write(&mut self, actor: &str, value: Value) {
        let counter = self.clock.get(actor).copied().unwrap_or(0) + 1;
        self.clock.insert(actor.to_owned(), counter);
        self.values.clear();
        self.values.insert((actor.to_owned(), counter), value);
    }

    /// The current values: one, or several when writes were concurrent.
    pub fn values(&self) -> Vec<Value> {
        self.values.values().cloned().collect()
    }

    fn seen(&self, dot: &(String, u64)) -> bool {
        self.clock.get(&dot.0).copied().unwrap_or(0) >= dot.1
    }

    fn merge(&self, other: &MvRegister) -> MvRegister {
        let mut values = BTreeMap::new();
        for (dot, v) in &self.values {
            if other.values.contains_key(dot) || !other.seen(dot) {
                values.insert(dot.clone(), v.clone());
            }
        }
        for (dot, v) in &other.values {
            if self.values.contains_key(dot) || !self.seen(dot) {
                values.insert(dot.clone(), v.clone());
            }
        }
        let mut clock = self.clock.clone();
        for (a, c) in &other.clock {
            let e = clock.entry(a.clone()).or_insert(0);
            *e = (*e).max(*c);
        }
        MvRegister { clock, values }
    }
}

/// Whether a record exists: a causal length (odd = present, even = deleted) and the time of
/// the latest delete. Field writes older than the latest delete belong to a previous life of
/// the record and are not shown, on every replica alike, whether or not it has collected them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Life {
    /// Causal length. Inserts use `2·hlc + 1`, so an insert after a collected delete still
    /// outranks the tombstone that replicas which have not collected it yet still hold.
    pub cl: u64,
    /// HLC of the latest delete seen (0 if never deleted).
    pub killed_at: u64,
}

impl Life {
    /// Whether the record is present.
    pub fn alive(&self) -> bool {
        self.cl % 2 == 1
    }
}

/// The merged state of one field.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldState {
    /// Last writer wins.
    Lww(Value),
    /// Multi-value register.
    Mv(MvRegister),
    /// Add-wins observed-remove set.
    Set(Orswot<String, String>),
    /// Increment/decrement counter.
    Counter(PNCounter<String>),
    /// Rank in the field's declared status order.
    Status(u32),
    /// The record's life (the reserved field [`LIFE_FIELD`]).
    Life(Life),
}

/// The reserved field name that holds a record's [`Life`].
pub const LIFE_FIELD: &str = "$life";

/// A field state with the stamp of the write that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    /// Who wrote it, and when.
    pub stamp: Stamp,
    /// The state.
    pub state: FieldState,
}

impl FieldState {
    // Tags 0-7 are value tags: a last-writer-wins state is just its value, one byte shorter
    // on the wire than a separate kind tag would make it.
    fn tag(&self) -> Option<u8> {
        match self {
            FieldState::Lww(_) => None,
            FieldState::Mv(_) => Some(8),
            FieldState::Set(_) => Some(9),
            FieldState::Counter(_) => Some(10),
            FieldState::Status(_) => Some(11),
            FieldState::Life(_) => Some(12),
        }
    }

    fn is_winner_kind(&self) -> bool {
        matches!(self, FieldState::Lww(_))
    }

    /// Canonical bytes: equal states always encode to equal bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        w.into_bytes()
    }

    /// Appends the canonical encoding to `w`.
    pub fn encode_into(&self, w: &mut Writer) {
        if let Some(tag) = self.tag() {
            w.u8(tag);
        }
        match self {
            FieldState::Lww(v) => v.encode(w),
            FieldState::Mv(m) => {
                w.varint(m.clock.len() as u64);
                for (a, c) in &m.clock {
                    w.str(a);
                    w.varint(*c);
                }
                w.varint(m.values.len() as u64);
                for ((a, c), v) in &m.values {
                    w.str(a);
                    w.varint(*c);
                    v.encode(w);
                }
            }
            FieldState::Set(s) => w.bytes(&canonical_orswot(s)),
            // VClocks are BTreeMaps inside, so postcard's encoding is already canonical.
            FieldState::Counter(c) => w.bytes(&postcard::to_allocvec(c).unwrap_or_default()),
            FieldState::Status(rank) => w.varint(*rank as u64),
            FieldState::Life(l) => {
                w.varint(l.cl);
                w.varint(l.killed_at);
            }
        }
    }

    /// Decodes a state, refusing anything malformed.
    pub fn decode(bytes: &[u8]) -> Result<FieldState, WireError> {
        let mut r = Reader::new(bytes);
        let s = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(s)
    }

    /// Decodes a state from a reader.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<FieldState, WireError> {
        let mut peek = r.clone();
        Ok(match peek.u8()? {
            0..=7 => FieldState::Lww(Value::decode(r)?),
            tag => {
                *r = peek;
                Self::decode_tagged(tag, r)?
            }
        })
    }

    fn decode_tagged(tag: u8, r: &mut Reader<'_>) -> Result<FieldState, WireError> {
        Ok(match tag {
            8 => {
                let mut m = MvRegister::default();
                for _ in 0..r.count()? {
                    let a = r.str()?.to_owned();
                    m.clock.insert(a, r.varint()?);
                }
                for _ in 0..r.count()? {
                    let a = r.str()?.to_owned();
                    let c = r.varint()?;
                    m.values.insert((a, c), Value::decode(r)?);
                }
                FieldState::Mv(m)
            }
            9 => {
                let at = r.offset();
                let b = r.bytes()?;
                FieldState::Set(postcard::from_bytes(b).map_err(|_| WireError::Invalid {
                    what: "set state",
                    offset: at,
                })?)
            }
            10 => {
                let at = r.offset();
                let b = r.bytes()?;
                FieldState::Counter(postcard::from_bytes(b).map_err(|_| WireError::Invalid {
                    what: "counter state",
                    offset: at,
                })?)
            }
            11 => {
                let rank = r.varint()?;
                FieldState::Status(u32::try_from(rank).map_err(|_| r.invalid("status rank"))?)
            }
            12 => FieldState::Life(Life {
                cl: r.varint()?,
                killed_at: r.varint()?,
            }),
            _ => return Err(r.invalid("field state tag")),
        })
    }
}

/// `crdts::Orswot` keeps its members in hash maps, so its own serialization depends on hash
/// order. This mirror has the same shape with ordered maps; postcard encodes maps the same way
/// whatever their type, so the bytes decode straight back into an `Orswot`.
#[derive(Serialize, Deserialize)]
struct OrswotMirror {
    clock: VClock<String>,
    entries: BTreeMap<String, VClock<String>>,
    // Deferred removes arise only from remove contexts ahead of the set's clock; this store
    // always removes with the set's own read context, so there are none to carry.
    deferred: BTreeMap<u8, u8>,
}

fn canonical_orswot(s: &Orswot<String, String>) -> Vec<u8> {
    let read = s.read();
    let entries = read
        .val
        .iter()
        .map(|m| (m.clone(), s.contains(m).rm_clock))
        .collect();
    let mirror = OrswotMirror {
        clock: read.add_clock,
        entries,
        deferred: BTreeMap::new(),
    };
    postcard::to_allocvec(&mirror).unwrap_or_default()
}

/// Adds `member` to a set on behalf of `actor`.
pub fn set_add(s: &mut Orswot<String, String>, actor: &str, member: &str) {
    let op = s.add(member.to_owned(), s.read().derive_add_ctx(actor.to_owned()));
    s.apply(op);
}

/// Removes `member` from a set, with the set's own read context (observed-remove).
pub fn set_remove(s: &mut Orswot<String, String>, member: &str) {
    let member = member.to_owned();
    let op = s.rm(member.clone(), s.contains(&member).derive_rm_ctx());
    s.apply(op);
}

/// Reads a set's members, sorted.
pub fn set_members(s: &Orswot<String, String>) -> Vec<String> {
    let mut v: Vec<String> = s.read().val.into_iter().collect();
    v.sort();
    v
}

/// Adds `delta` to a counter on behalf of `actor`.
pub fn counter_add(c: &mut PNCounter<String>, actor: &str, delta: i64) {
    if delta > 0 {
        let op = c.inc_many(actor.to_owned(), delta as u64);
        c.apply(op);
    } else if delta < 0 {
        let op = c.dec_many(actor.to_owned(), delta.unsigned_abs());
        c.apply(op);
    }
}

/// Reads a counter (saturating at the bounds of `i64`).
pub fn counter_value(c: &PNCounter<String>) -> i64 {
    let s = c.read().to_string();
    s.parse::<i64>().unwrap_or(if s.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// The join (least upper bound) of two versions of one field.
pub fn join(a: &Versioned, b: &Versioned) -> Versioned {
    let stamp = a.stamp.clone().max(b.stamp.clone());
    let state = match (&a.state, &b.state) {
        (FieldState::Status(x), FieldState::Status(y)) => FieldState::Status(*x.max(y)),
        (FieldState::Mv(x), FieldState::Mv(y)) => FieldState::Mv(x.merge(y)),
        (FieldState::Set(x), FieldState::Set(y)) => {
            let mut m = x.clone();
            m.merge(y.clone());
            FieldState::Set(m)
        }
        (FieldState::Counter(x), FieldState::Counter(y)) => {
            let mut m = x.clone();
            m.merge(y.clone());
            FieldState::Counter(m)
        }
        (FieldState::Life(x), FieldState::Life(y)) => FieldState::Life(Life {
            cl: x.cl.max(y.cl),
            killed_at: x.killed_at.max(y.killed_at),
        }),
        // Plain last-writer-wins, and the fallback when two replicas disagree on a field's
        // kind (a schema mismatch): the newer write wins, the same on every replica.
        _ => {
            return if a.stamp >= b.stamp {
                a.clone()
            } else {
                b.clone()
            };
        }
    };
    Versioned { stamp, state }
}

/// Whether `a` already contains everything `b` says (so `b` can be dropped).
///
/// This also requires `a` to be at least as new as `b`: whether an entry is
/// shown depends on its stamp (writes older than the record's latest delete are hidden), so an
/// entry may only be dropped in favour of one that stays visible whenever it would have been.
pub fn dominates(a: &Versioned, b: &Versioned) -> bool {
    let j = join(a, b);
    let same = if a.state.is_winner_kind()
        || std::mem::discriminant(&a.state) != std::mem::discriminant(&b.state)
    {
        j == *a
    } else {
        j.state == a.state
    };
    same && a.stamp >= b.stamp
}

/// The bytes that identify a merged field for convergence checks: the state, plus the winning
/// stamp for winner kinds (two replicas agreeing on a value but not on who wrote it have not
/// converged).
pub fn canonical_for_hash(v: &Versioned) -> Vec<u8> {
    let mut w = Writer::new();
    v.state.encode_into(&mut w);
    if v.state.is_winner_kind() {
        w.varint(v.stamp.hlc.0);
        w.str(&v.stamp.origin);
    }
    w.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ACTORS: [&str; 3] = ["a", "b", "c"];

    #[derive(Debug, Clone)]
    enum Op {
        Lww(i64),
        Mv(i64),
        SetAdd(u8),
        SetRm(u8),
        Count(i64),
        Status(u32),
        Life(bool),
    }

    /// Replays random local operations on three actors with random merges between them, and
    /// returns every intermediate state of one kind.
    fn states(kind: u8, ops: &[(usize, Op, Option<usize>)]) -> Vec<Versioned> {
        let init = |actor: &str| Versioned {
            stamp: Stamp {
                hlc: Hlc(0),
                origin: actor.to_owned(),
            },
            state: match kind {
                0 => FieldState::Lww(Value::Null),
                1 => FieldState::Mv(MvRegister::default()),
                2 => FieldState::Set(Orswot::new()),
                3 => FieldState::Counter(PNCounter::new()),
                4 => FieldState::Status(0),
                _ => FieldState::Life(Life::default()),
            },
        };
        let mut reps: Vec<Versioned> = ACTORS.iter().map(|a| init(a)).collect();
        let mut out = reps.clone();
        for (t, (i, op, merge_from)) in ops.iter().enumerate() {
            let actor = ACTORS[*i];
            let mut v = reps[*i].clone();
            v.stamp = Stamp {
                hlc: Hlc(v.stamp.hlc.0.max(t as u64) + 1),
                origin: actor.to_owned(),
            };
            match (&mut v.state, op) {
                (FieldState::Lww(x), Op::Lww(n)) => *x = Value::Int(*n),
                (FieldState::Mv(m), Op::Mv(n)) => m.write(actor, Value::Int(*n)),
                (FieldState::Set(s), Op::SetAdd(e)) => set_add(s, actor, &e.to_string()),
                (FieldState::Set(s), Op::SetRm(e)) => set_remove(s, &e.to_string()),
                (FieldState::Counter(c), Op::Count(n)) => counter_add(c, actor, *n),
                (FieldState::Status(r), Op::Status(n)) => *r = (*r).max(*n),
                (FieldState::Life(l), Op::Life(del)) => {
                    if *del && l.alive() {
                        l.cl += 1;
                        l.killed_at = l.killed_at.max(v.stamp.hlc.0);
                    } else if !*del && !l.alive() {
                        l.cl = l.cl.max(2 * v.stamp.hlc.0 + 1);
                    }
                }
                _ => continue,
            }
            reps[*i] = v;
            if let Some(j) = merge_from {
                reps[*i] = join(&reps[*i], &reps[*j]);
            }
            out.extend(reps.iter().cloned());
        }
        out
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (-5i64..5).prop_map(Op::Lww),
            (-5i64..5).prop_map(Op::Mv),
            (0u8..4).prop_map(Op::SetAdd),
            (0u8..4).prop_map(Op::SetRm),
            (-3i64..4).prop_map(Op::Count),
            (0u32..4).prop_map(Op::Status),
            any::<bool>().prop_map(Op::Life),
        ]
    }

    fn script() -> impl Strategy<Value = Vec<(usize, Op, Option<usize>)>> {
        proptest::collection::vec((0usize..3, op(), proptest::option::of(0usize..3)), 1..24)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// join is commutative, associative and idempotent for every kind, and encoding
        /// round-trips canonically.
        #[test]
        fn every_kind_is_a_semilattice(kind in 0u8..6, ops in script(), picks in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..12)) {
            let all = states(kind, &ops);
            for (i, j, k) in picks {
                let (a, b, c) = (&all[i.index(all.len())], &all[j.index(all.len())], &all[k.index(all.len())]);
                let h = |v: &Versioned| canonical_for_hash(v);
                prop_assert_eq!(h(&join(a, b)), h(&join(b, a)), "commutative");
                prop_assert_eq!(h(&join(&join(a, b), c)), h(&join(a, &join(b, c))), "associative");
                prop_assert_eq!(h(&join(a, a)), h(a), "idempotent");
                prop_assert!(dominates(&join(a, b), a) && dominates(&join(a, b), b), "join is an upper bound");
                let decoded = FieldState::decode(&a.state.encode()).unwrap();
                prop_assert_eq!(decoded.encode(), a.state.encode(), "canonical encoding round-trips");
            }
        }
    }

    #[test]
    fn concurrent_mv_writes_are_all_kept_until_superseded() {
        let mut a = MvRegister::default();
        let mut b = MvRegister::default();
        a.write("a", Value::Int(1));
        b.write("b", Value::Int(2));
        let mut m = a.merge(&b);
        assert_eq!(m.values(), vec![Value::Int(1), Value::Int(2)]);
        m.write("a", Value::Int(3));
        assert_eq!(m.merge(&b).values(), vec![Value::Int(3)]);
    }

    #[test]
    fn a_remove_reaches_a_replica_that_still_has_the_member() {
        // The crdts issue: a remove does not advance the set's clock. State merge must still
        // drop the member everywhere the remove's state arrives.
        let mut a = Orswot::new();
        set_add(&mut a, "a", "officer-7");
        let mut b = a.clone();
        set_remove(&mut a, "officer-7");
        b.merge(a.clone());
        assert!(set_members(&b).is_empty());
        set_add(&mut b, "b", "officer-7");
        a.merge(b.clone());
        assert_eq!(
            set_members(&a),
            vec!["officer-7".to_string()],
            "add wins over an unseen remove"
        );
    }

    #[test]
    fn garbage_states_are_errors() {
        for bad in [
            &[][..],
            &[13],
            &[9, 200, 1],
            &[10, 1, 0xff],
            &[3, 0x80],
            &[5, 4, b'a'],
        ] {
            assert!(FieldState::decode(bad).is_err(), "{bad:?}");
        }
    }
}
