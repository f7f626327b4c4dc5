//! The store's side of replication: reading its change log in local order, applying batches
//! from peers, resume cursors, snapshot resync and state hashes.

use std::collections::{BTreeSet, HashMap};

use rusqlite::{params, OptionalExtension};

use super::{merge_fields, ChangeEvent, Entry, Store};
use crate::change::{Change, ChangeBatch};
use crate::clock::Hlc;
use crate::error::StoreError;
use crate::field::{self, FieldState, Stamp, Versioned, LIFE_FIELD};
use crate::interest::Interest;
use crate::vv::VersionVector;

/// What applying one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Entries stored (new information).
    pub stored: usize,
    /// Entries already known or superseded here.
    pub skipped: usize,
    /// The cursor into the sender's log after this batch.
    pub cursor: u64,
    /// Whether the batch carried the sender's version vector and it was adopted.
    pub completed: bool,
}

impl Store {
    /// Reads the next slice of this replica's log after `after_lseq`, leaving out entries the
    /// peer has already seen according to `peer_vv`. At most `max_entries` entries and about
    /// `max_bytes` bytes. When the slice reaches the end of the log, it carries this replica's
    /// version vector. For a peer that holds everything; see [`Store::read_changes_for`].
    pub fn read_changes(
        &self,
        after_lseq: u64,
        peer_vv: &VersionVector,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<ChangeBatch, StoreError> {
        self.read_changes_for(
            "",
            Interest::Everything,
            after_lseq,
            peer_vv,
            max_entries,
            max_bytes,
        )
    }

    /// [`Store::read_changes`] for `peer`, which holds `interest`: entries of origins it does
    /// not take are left out, and the version vector at the end of the log is the part of
    /// this replica's that concerns it ([`Interest::scope`]).
    pub fn read_changes_for(
        &self,
        peer: &str,
        interest: Interest,
        after_lseq: u64,
        peer_vv: &VersionVector,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<ChangeBatch, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT coll, rid, field, origin, oseq, hlc, lseq, state FROM entry WHERE lseq > ?1 ORDER BY lseq LIMIT ?2",
        )?;
        // Read a few more rows than we may send, since already-seen rows are skipped.
        let scan_limit = (max_entries.max(1) * 4) as i64;
        let rows = stmt.query_map(params![after_lseq as i64, scan_limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Vec<u8>>(7)?,
            ))
        })?;
        let mut changes = Vec::new();
        let mut upto = after_lseq;
        let mut bytes = 0usize;
        let mut scanned = 0usize;
        let mut cut = false;
        for row in rows {
            let (coll, rid, f, origin, oseq, hlc, lseq, state) = row?;
            scanned += 1;
            if changes.len() >= max_entries || bytes >= max_bytes {
                cut = true;
                break;
            }
            upto = lseq as u64;
            let origin = self.origin_name(origin);
            if (oseq as u64) <= peer_vv.get(&origin) || !interest.wants(peer, &origin) {
                continue;
            }
            bytes += coll.len() + rid.len() + f.len() + state.len() + 8;
            changes.push(Change {
                collection: coll,
                record: rid,
                field: f,
                origin,
                oseq: oseq as u64,
                hlc: Hlc(hlc as u64),
                state: FieldState::decode(&state)?,
            });
        }
        let at_end = !cut && (scanned as i64) < scan_limit;
        let complete = if at_end {
            upto = upto.max(self.next_lseq - 1);
            Some(self.scope_for(peer, interest))
        } else {
            None
        };
        Ok(ChangeBatch {
            from_lseq: after_lseq,
            upto_lseq: upto,
            changes,
            complete,
        })
    }

    /// The highest local sequence stored so far (the end of this replica's log).
    pub fn log_end(&self) -> u64 {
        self.next_lseq - 1
    }

    /// How far into `peer`'s log this replica has applied, for that peer's `incarnation`.
    pub fn cursor(&self, peer: &str, incarnation: u64) -> Result<u64, StoreError> {
        let row: Option<(i64, i64)> = self
            .conn
            .query_row(
                "SELECT incarnation, lseq FROM cursor WHERE peer = ?1",
                params![peer],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((inc, lseq)) if inc as u64 == incarnation => lseq as u64,
            _ => 0,
        })
    }

    /// Applies a batch received from `peer` (whose database has `incarnation`) in one
    /// transaction. A batch with any change stamped too far in the future is refused whole.
    pub fn apply_changes(
        &mut self,
        peer: &str,
        incarnation: u64,
        batch: &ChangeBatch,
    ) -> Result<ApplyReport, StoreError> {
        for c in &batch.changes {
            if let Err(skew) = self.clock.check(c.hlc) {
                self.refused_batches += 1;
                tracing::warn!(peer, origin = %c.origin, %skew, "refusing a batch: clock skew");
                return Err(StoreError::ClockSkew {
                    origin: c.origin.clone(),
                    skew,
                });
            }
            for (what, name) in [
                ("collection", &c.collection),
                ("record", &c.record),
                ("field", &c.field),
                ("origin", &c.origin),
            ] {
                if name.is_empty() || name.len() > 256 {
                    self.refused_batches += 1;
                    return Err(StoreError::InvalidName {
                        what,
                        name: name.chars().take(64).collect(),
                    });
                }
            }
        }
        for c in &batch.changes {
            self.intern(&c.origin)?;
        }
        let prior_cursor = self.cursor(peer, incarnation)?;
        // Change events are only built when someone listens (a UI, a pipeline, a sync link).
        let notify = self.events.receiver_count() > 0;
        let mut touched: BTreeSet<(String, String)> = BTreeSet::new();
        let report = self.transact(|s| {
            let mut report = ApplyReport::default();
            let mut cached: Option<(String, String, HashMap<String, Vec<Entry>>)> = None;
            let (node, interest) = (s.config.node.clone(), s.config.interest);
            for c in &batch.changes {
                // A peer sends only what this replica takes; if one sent more, it is not kept,
                // or this replica's vector would lose its meaning (see `crate::interest`).
                if c.oseq <= s.vv.get(&c.origin) || !interest.wants(&node, &c.origin) {
                    report.skipped += 1;
                    continue;
                }
                let origin = s.origin_ids[&c.origin];
                // A batch lists a record's fields together: its entries are loaded once.
                let fresh = !matches!(&cached, Some((coll, rid, _)) if *coll == c.collection && *rid == c.record);
                if fresh {
                    let entries = s.record_entries(&c.collection, &c.record)?;
                    cached = Some((c.collection.clone(), c.record.clone(), entries));
                }
                let Some((_, _, fields)) = cached.as_mut() else {
                    unreachable!("filled above")
                };
                let existing = fields.remove(&c.field).unwrap_or_default();
                if existing.iter().any(|x| x.origin == origin && x.oseq >= c.oseq) {
                    fields.insert(c.field.clone(), existing);
                    report.skipped += 1;
                    continue;
                }
                let e = Entry {
                    origin,
                    oseq: c.oseq,
                    v: Versioned {
                        stamp: Stamp {
                            hlc: c.hlc,
                            origin: c.origin.clone(),
                        },
                        state: c.state.clone(),
                    },
                };
                // Compare with each stored entry, not with their join: the join may owe part of
                // its state to entries a later delete hides.
                if existing.iter().any(|x| field::dominates(&x.v, &e.v)) {
                    fields.insert(c.field.clone(), existing);
                    report.skipped += 1;
                    continue;
                }
                s.clock.observe(c.hlc);
                s.store_entry(&c.collection, &c.record, &c.field, &existing, &e)?;
                // What the field holds now, as `store_entry` left it.
                let mut kept: Vec<Entry> = existing
                    .into_iter()
                    .filter(|x| x.origin != e.origin && !field::dominates(&e.v, &x.v))
                    .collect();
                kept.push(e);
                if let Some((_, _, fields)) = cached.as_mut() {
                    fields.insert(c.field.clone(), kept);
                }
                if notify {
                    touched.insert((c.collection.clone(), c.record.clone()));
                }
                report.stored += 1;
            }
            // Resume cursors only move over contiguous ranges of the sender's log.
            report.cursor = prior_cursor;
            if batch.from_lseq <= prior_cursor && batch.upto_lseq > prior_cursor {
                s.conn
                    .prepare_cached("INSERT OR REPLACE INTO cursor(peer, incarnation, lseq) VALUES (?1, ?2, ?3)")?
                    .execute(params![peer, incarnation as i64, batch.upto_lseq as i64])?;
                report.cursor = batch.upto_lseq;
            }
            if let Some(sender_vv) = &batch.complete {
                // Everything the sender had when it read this batch is now merged here, so its
                // version vector holds for this replica too.
                let before = s.vv.clone();
                s.vv.merge(&interest.scope(&node, sender_vv));
                if !s.resyncing() {
                    // Own writes made while resyncing did not raise the vector.
                    for (origin, seq) in s.own_components() {
                        s.vv.raise(&origin, seq);
                    }
                }
                let changed: Vec<(String, u64)> = s
                    .vv
                    .iter()
                    .filter(|(o, seq)| before.get(o) != *seq)
                    .map(|(o, seq)| (o.to_owned(), seq))
                    .collect();
                for (o, seq) in changed {
                    s.news.vector_moved(&o);
                    s.save_seen(&o, seq)?;
                }
                report.completed = true;
            }
            Ok(report)
        })?;
        for (collection, record) in touched {
            let _ = self.events.send(ChangeEvent {
                collection,
                record,
                via: Some(peer.to_owned()),
            });
        }
        Ok(report)
    }

    /// Drops every entry covered by `frontier` and forgets what this replica has seen, so that
    /// a snapshot from a peer that has collected garbage up to `frontier` can be taken without
    /// bringing back anything that peer deleted. Changes made here after `frontier` are kept
    /// and will be sent on.
    pub fn begin_resync(&mut self, frontier: &VersionVector) -> Result<(), StoreError> {
        tracing::warn!(node = %self.config.node, %frontier, "resynchronising from a snapshot: this replica was offline past the collection horizon");
        let ids: Vec<(i64, u64)> = frontier
            .iter()
            .filter_map(|(o, seq)| self.origin_ids.get(o).map(|id| (*id, seq)))
            .collect();
        self.transact(|s| {
            for (id, seq) in &ids {
                s.conn.execute(
                    "DELETE FROM entry WHERE origin = ?1 AND oseq <= ?2",
                    params![id, *seq as i64],
                )?;
            }
            // Deleted records whose life entries all went: nothing left to collect.
            s.conn.execute(
                "DELETE FROM tomb WHERE NOT EXISTS (SELECT 1 FROM entry e \
                 WHERE e.coll = tomb.coll AND e.rid = tomb.rid AND e.field = ?1)",
                params![LIFE_FIELD],
            )?;
            s.forget_counts();
            s.conn.execute("DELETE FROM seen", [])?;
            s.conn.execute("DELETE FROM cursor", [])?;
            s.vv = VersionVector::new();
            s.news.everything_moved(s.next_lseq);
            s.reset_frontier.merge(frontier);
            Ok(())
        })?;
        self.resyncs += 1;
        Ok(())
    }

    /// How many snapshot resyncs this handle has begun: a session that sees it move greets
    /// its peer again, so that the peer streams its log afresh (see `Session::poll_transmit`).
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// A hash of every live record's visible state (system collections except revocations are
    /// left out). Two replicas with equal hashes show exactly the same records.
    pub fn state_hash(&self) -> Result<String, StoreError> {
        self.state_hash_of(None)
    }

    /// [`Store::state_hash`] over the named collections only (all when `None`): replicas that
    /// keep writing their own heartbeats can still be compared on the records that matter.
    pub fn state_hash_of(&self, collections: Option<&[String]>) -> Result<String, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT coll, rid, field, origin, oseq, hlc, state FROM entry WHERE coll NOT LIKE '$members%' ORDER BY coll, rid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Vec<u8>>(6)?,
            ))
        })?;
        let mut hasher = blake3::Hasher::new();
        let mut current: Option<(String, String)> = None;
        let mut fields: Vec<(String, Entry)> = Vec::new();
        let mut flush = |key: &Option<(String, String)>, fields: &mut Vec<(String, Entry)>| {
            if let Some((coll, rid)) = key {
                let merged = merge_fields(std::mem::take(fields));
                let life = match merged.get(LIFE_FIELD).map(|m| &m.state) {
                    Some(FieldState::Life(l)) if l.alive() => *l,
                    _ => return,
                };
                hasher.update(coll.as_bytes());
                hasher.update(&[0]);
                hasher.update(rid.as_bytes());
                hasher.update(&[0]);
                for (f, m) in &merged {
                    if f == LIFE_FIELD {
                        continue;
                    }
                    if let Some(v) = m.valid_after(life.killed_at) {
                        hasher.update(f.as_bytes());
                        hasher.update(&[0]);
                        hasher.update(&field::canonical_for_hash(&v));
                    }
                }
            }
            fields.clear();
        };
        for row in rows {
            let (coll, rid, f, origin, oseq, hlc, state) = row?;
            if collections.is_some_and(|only| !only.contains(&coll)) {
                continue;
            }
            let key = Some((coll, rid));
            if key != current {
                flush(&current, &mut fields);
                current = key;
            }
            fields.push((f, self.decode_entry(origin, oseq, hlc, &state)?));
        }
        flush(&current, &mut fields);
        Ok(hasher.finalize().to_hex().to_string())
    }

    /// Bytes and rows the store keeps, for the benchmarks' metadata figures.
    pub fn footprint(&self) -> Result<(u64, u64), StoreError> {
        let rows: i64 = self
            .conn
            .query_row("SELECT count(*) FROM entry", [], |r| r.get(0))?;
        let bytes: i64 = self.conn.query_row(
            "SELECT coalesce(sum(length(coll) + length(rid) + length(field) + length(state) + 24), 0) FROM entry",
            [],
            |r| r.get(0),
        )?;
        Ok((rows as u64, bytes as u64))
    }
}

impl Store {
    /// The stored resume cursor for `peer`: the peer database's incarnation and how far into
    /// its log this replica has applied.
    pub fn cursor_row(&self, peer: &str) -> Result<Option<(u64, u64)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT incarnation, lseq FROM cursor WHERE peer = ?1",
                params![peer],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .optional()?)
    }
}

impl Store {
    /// The node name recorded in an existing database file, or `None` if there is no file yet.
    pub fn node_of(path: &std::path::Path) -> Result<Option<String>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let has_table: bool = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'replica'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)?;
        if !has_table {
            return Ok(None);
        }
        Ok(conn
            .query_row("SELECT node FROM replica WHERE id = 1", [], |r| r.get(0))
            .optional()?)
    }
}
