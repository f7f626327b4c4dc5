//! Changes as they travel between replicas, and their compact wire encoding.
//!
//! A [`ChangeBatch`] is what one sync frame carries: entries from the sender's compacted
//! change log in the order it stored them (its local sequence, `lseq`), the `lseq` range they
//! cover, and — on the batch that catches the receiver up — the sender's version vector.
//!
//! The encoding interns node, collection and field names once per batch, groups entries by
//! (origin, collection, record) so a record id is sent once however many of its fields
//! changed, and sends sequences and clocks as zigzag deltas from the previous entry.

use std::collections::HashMap;

use crate::clock::Hlc;
use crate::field::FieldState;
use crate::vv::VersionVector;
use crate::wire::{Reader, WireError, Writer};

/// One field state as written by its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Collection name.
    pub collection: String,
    /// Record id.
    pub record: String,
    /// Field name (or [`crate::field::LIFE_FIELD`]).
    pub field: String,
    /// Node that wrote it.
    pub origin: String,
    /// That node's change sequence.
    pub oseq: u64,
    /// Hybrid logical clock of the write.
    pub hlc: Hlc,
    /// The field's full state at the origin after the write.
    pub state: FieldState,
}

/// A bounded slice of a replica's change log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChangeBatch {
    /// The sender's local sequence this batch starts after.
    pub from_lseq: u64,
    /// The sender's local sequence this batch reaches (inclusive).
    pub upto_lseq: u64,
    /// The entries.
    pub changes: Vec<Change>,
    /// Set on the batch that reaches the end of the sender's log: the sender's version vector,
    /// which the receiver may adopt once the batch is applied.
    pub complete: Option<VersionVector>,
}

struct Interner<'a> {
    index: HashMap<&'a str, u64>,
    names: Vec<&'a str>,
}

impl<'a> Interner<'a> {
    fn id(&mut self, s: &'a str) -> u64 {
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        let i = self.names.len() as u64;
        self.names.push(s);
        self.index.insert(s, i);
        i
    }
}

impl ChangeBatch {
    /// Encodes the batch.
    pub fn encode(&self) -> Vec<u8> {
        let mut order: Vec<&Change> = self.changes.iter().collect();
        order.sort_by(|a, b| {
            (&a.origin, &a.collection, &a.record, a.oseq).cmp(&(
                &b.origin,
                &b.collection,
                &b.record,
                b.oseq,
            ))
        });
        let mut names = Interner {
            index: HashMap::new(),
            names: Vec::new(),
        };
        let mut body = Writer::new();
        // origin → collection → record → fields, so each name and id is written once.
        type Records<'c> = Vec<(&'c str, Vec<&'c Change>)>;
        let mut tree: Vec<(u64, Vec<(u64, Records<'_>)>)> = Vec::new();
        for c in order {
            let (o, col) = (names.id(&c.origin), names.id(&c.collection));
            if tree.last().map(|t| t.0) != Some(o) {
                tree.push((o, Vec::new()));
            }
            let colls = &mut tree.last_mut().expect("pushed above").1;
            if colls.last().map(|t| t.0) != Some(col) {
                colls.push((col, Vec::new()));
            }
            let recs = &mut colls.last_mut().expect("pushed above").1;
            if recs.last().map(|t| t.0) != Some(c.record.as_str()) {
                recs.push((&c.record, Vec::new()));
            }
            recs.last_mut().expect("pushed above").1.push(c);
        }
        let mut prev = Delta::default();
        body.varint(tree.len() as u64);
        for (o, colls) in &tree {
            body.varint(*o);
            body.varint(colls.len() as u64);
            for (col, recs) in colls {
                body.varint(*col);
                body.varint(recs.len() as u64);
                for (rid, changes) in recs {
                    body.str(rid);
                    body.varint(changes.len() as u64);
                    for c in changes {
                        body.varint(names.id(&c.field));
                        prev.put(&mut body, c.oseq, c.hlc);
                        c.state.encode_into(&mut body);
                    }
                }
            }
        }
        let mut w = Writer::new();
        w.varint(self.from_lseq);
        w.varint(self.upto_lseq.saturating_sub(self.from_lseq));
        match &self.complete {
            Some(vv) => {
                w.u8(1);
                vv.encode(&mut w);
            }
            None => w.u8(0),
        }
        w.varint(names.names.len() as u64);
        for n in &names.names {
            w.str(n);
        }
        let mut out = w.into_bytes();
        out.extend_from_slice(&body.into_bytes());
        out
    }

    /// Decodes a batch, refusing anything malformed.
    pub fn decode(bytes: &[u8]) -> Result<ChangeBatch, WireError> {
        let mut r = Reader::new(bytes);
        let from_lseq = r.varint()?;
        let upto_lseq = from_lseq
            .checked_add(r.varint()?)
            .ok_or_else(|| r.invalid("lseq range"))?;
        let complete = match r.u8()? {
            0 => None,
            1 => Some(VersionVector::decode(&mut r)?),
            _ => return Err(r.invalid("completion flag")),
        };
        let mut names = Vec::new();
        for _ in 0..r.count()? {
            names.push(r.str()?.to_owned());
        }
        let name = |r: &Reader<'_>, i: u64| -> Result<String, WireError> {
            names
                .get(i as usize)
                .cloned()
                .ok_or_else(|| r.invalid("name index"))
        };
        let mut changes = Vec::new();
        let mut prev = Delta::default();
        for _ in 0..r.count()? {
            let i = r.varint()?;
            let origin = name(&r, i)?;
            for _ in 0..r.count()? {
                let i = r.varint()?;
                let collection = name(&r, i)?;
                for _ in 0..r.count()? {
                    let record = r.str()?.to_owned();
                    for _ in 0..r.count()? {
                        let i = r.varint()?;
                        let field = name(&r, i)?;
                        let (oseq, hlc) = prev.get(&mut r)?;
                        let state = FieldState::decode_from(&mut r)?;
                        changes.push(Change {
                            collection: collection.clone(),
                            record: record.clone(),
                            field,
                            origin: origin.clone(),
                            oseq,
                            hlc,
                            state,
                        });
                    }
                }
            }
        }
        r.finish()?;
        Ok(ChangeBatch {
            from_lseq,
            upto_lseq,
            changes,
            complete,
        })
    }
}

/// Sequences and clocks as deltas from the previous entry: the clock's physical milliseconds
/// as a zigzag delta with a flag bit for a non-zero logical counter, which is rare.
#[derive(Default)]
struct Delta {
    seq: u64,
    ms: u64,
}

impl Delta {
    fn put(&mut self, w: &mut Writer, oseq: u64, hlc: Hlc) {
        w.zigzag(oseq.wrapping_sub(self.seq) as i64);
        let d = hlc.physical_ms().wrapping_sub(self.ms) as i64;
        let logical = hlc.logical();
        w.varint(((d << 1) ^ (d >> 63)) as u64 * 2 + (logical != 0) as u64);
        if logical != 0 {
            w.varint(logical as u64);
        }
        self.seq = oseq;
        self.ms = hlc.physical_ms();
    }

    fn get(&mut self, r: &mut Reader<'_>) -> Result<(u64, Hlc), WireError> {
        self.seq = self.seq.wrapping_add(r.zigzag()? as u64);
        let v = r.varint()?;
        let zz = v >> 1;
        let d = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
        self.ms = self.ms.wrapping_add(d as u64);
        let logical = if v & 1 == 1 { r.varint()? } else { 0 };
        if self.seq == 0 || self.ms >= 1 << 48 || logical > u16::MAX as u64 {
            return Err(r.invalid("sequence or clock"));
        }
        Ok((self.seq, Hlc::new(self.ms, logical as u16)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;
    use proptest::prelude::*;

    fn change(origin: &str, rid: &str, field: &str, oseq: u64, v: i64) -> Change {
        Change {
            collection: "alerts".into(),
            record: rid.into(),
            field: field.into(),
            origin: origin.into(),
            oseq,
            hlc: Hlc::new(1_700_000_000_000 + oseq, 0),
            state: FieldState::Lww(Value::Int(v)),
        }
    }

    #[test]
    fn batches_round_trip_and_stay_small() {
        let mut vv = VersionVector::new();
        vv.raise("yokohama", 40);
        let batch = ChangeBatch {
            from_lseq: 10,
            upto_lseq: 50,
            changes: (1..=40)
                .map(|i| {
                    change(
                        if i % 2 == 0 { "yokohama" } else { "narita" },
                        &format!("r{i}"),
                        "score",
                        i,
                        i as i64,
                    )
                })
                .collect(),
            complete: Some(vv),
        };
        let bytes = batch.encode();
        let mut back = ChangeBatch::decode(&bytes).unwrap();
        let mut expect = batch.clone();
        let key = |c: &Change| (c.origin.clone(), c.record.clone());
        back.changes.sort_by_key(key);
        expect.changes.sort_by_key(key);
        assert_eq!(back, expect);
        assert!(
            bytes.len() < 40 * 12,
            "{} bytes for 40 single-field updates",
            bytes.len()
        );
    }

    proptest! {
        #[test]
        fn garbage_is_an_error_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ChangeBatch::decode(&bytes);
        }

        #[test]
        fn truncations_and_bit_flips_of_a_real_batch_never_panic(cut in 0usize..200, flip in 0usize..200, bit in 0u8..8) {
            let batch = ChangeBatch {
                from_lseq: 1,
                upto_lseq: 9,
                changes: (1..=8).map(|i| change("a", "r1", &format!("f{i}"), i, -(i as i64))).collect(),
                complete: None,
            };
            let mut bytes = batch.encode();
            let n = bytes.len();
            bytes[flip % n] ^= 1 << bit;
            let _ = ChangeBatch::decode(&bytes);
            let _ = ChangeBatch::decode(&bytes[..cut.min(n)]);
        }
    }
}
