//! Membership and garbage collection.
//!
//! Each replica periodically writes its version vector into the `$members` collection (it
//! replicates like any record, so every member learns every other member's progress even
//! across multi-hop topologies). The component-wise minimum over the members heard from
//! within the collection horizon is the *stable frontier*: every change below it has reached
//! every live member. Deleted records whose delete lies below it are collected whole; a member
//! that comes back after the horizon is behind the collection frontier and must resynchronise
//! from a snapshot (see [`Store::begin_resync`]).

use rusqlite::params;

use super::{join_entries, Entry, FieldOp, Store};
use crate::clock::Hlc;
use crate::error::StoreError;
use crate::field::{FieldState, LIFE_FIELD};
use crate::interest::{self, Interest};
use crate::value::Value;
use crate::vv::VersionVector;

/// The collection where members announce their version vectors.
pub const MEMBERS: &str = "$members";
/// The collection of revoked certificates (record id = serial or node name).
pub const REVOKED: &str = "$revoked";

/// The life entries of every deleted record, by record.
const DELETED_LIVES_SQL: &str = "SELECT e.coll, e.rid, e.origin, e.oseq, e.hlc, e.state FROM tomb t \
     CROSS JOIN entry e ON e.coll = t.coll AND e.rid = t.rid AND e.field = ?1 ORDER BY t.coll, t.rid";

/// One member's last announcement in `$members`.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The member's node name.
    pub node: String,
    /// Its version vector when it announced.
    pub vv: VersionVector,
    /// When it announced.
    pub announced: Hlc,
    /// What it holds.
    pub interest: Interest,
}

/// What a garbage collection pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// The stable frontier used.
    pub frontier: VersionVector,
    /// Members counted in it.
    pub members: Vec<String>,
    /// Members left out because they were silent past the horizon.
    pub expired: Vec<String>,
    /// Deleted records collected.
    pub records_collected: usize,
    /// Entries removed.
    pub entries_removed: usize,
}

impl Store {
    /// Writes this replica's version vector into `$members` when data moved it since the last
    /// announcement, or as a heartbeat when the last one is a quarter of the collection horizon
    /// old (members silent past the horizon are left out of the stable frontier). Returns
    /// whether it wrote.
    ///
    /// Other members' announcements move the version vector too, but never make a new one:
    /// if they did, every announcement would make every other member announce again, forever,
    /// and with N members each sending N components to N−1 others the idle traffic would grow
    /// as N³ (it did: 15 MB/s at HQ with 200 idle sites). A vector that lags behind other
    /// members' announcements only holds back the collection of `$members` entries, which are
    /// never deleted; tombstones and log entries are data, and data always re-announces.
    pub fn announce(&mut self) -> Result<bool, StoreError> {
        let now = self.now_ms();
        if let Some(last) = self.last_announced_ms {
            let heartbeat_due = now.saturating_sub(last) >= self.config.collection_horizon_ms / 4;
            if !heartbeat_due && !self.unannounced_data {
                return Ok(false);
            }
        }
        let mut vv = self.vv.clone();
        let node = self.node().to_owned();
        vv.raise(&node, self.local_seq + 2);
        // Members that hold only the shared collections do not hold back the collection of
        // other members' reports (see `stable_frontier`).
        let interest = self.config.interest.name();
        self.put_system(
            MEMBERS,
            &node,
            &[
                ("vv", FieldOp::Set(Value::Bytes(vv.to_bytes()))),
                ("interest", FieldOp::Set(Value::Text(interest.to_owned()))),
            ],
        )?;
        self.last_announced_ms = Some(now);
        self.unannounced_data = false;
        Ok(true)
    }

    /// [`Store::announce`], unless the last announcement is less than `min_gap_ms` old (or an
    /// eighth of the collection horizon, if that is shorter): what the sync driver calls. A
    /// replica that has not announced since it opened announces at once, so that its peers
    /// know it as a member before anything of theirs is collected.
    pub fn announce_at_most_every(&mut self, min_gap_ms: u64) -> Result<bool, StoreError> {
        let gap = min_gap_ms.min(self.config.collection_horizon_ms / 8);
        if self
            .last_announced_ms
            .is_some_and(|last| self.now_ms().saturating_sub(last) < gap)
        {
            return Ok(false);
        }
        self.announce()
    }

    /// Every member's last announced version vector, the time of that announcement, and what
    /// the member holds (announcements without it are from replicas that hold everything).
    pub fn members(&self) -> Result<Vec<Member>, StoreError> {
        let mut out = Vec::new();
        for r in self.list(MEMBERS)? {
            if let Some(Value::Bytes(b)) = r.get("vv") {
                if let Ok(vv) = VersionVector::from_bytes(b) {
                    let interest = r
                        .get("interest")
                        .and_then(Value::as_str)
                        .and_then(Interest::from_name)
                        .unwrap_or_default();
                    out.push(Member {
                        node: r.id.clone(),
                        vv,
                        announced: r.updated,
                        interest,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The component-wise minimum of the version vectors of this replica and of every member
    /// heard from within the collection horizon.
    ///
    /// Members silent past the horizon are left out only while this replica hears from a
    /// strict majority of the members (itself included). In a partition both sides see the
    /// other fall silent; only the majority side may move on without it. A minority (a site
    /// cut off alone) keeps every tombstone until it is back, so that it never collects a
    /// delete the others have not seen, and never forces the majority to resync from it.
    /// With no majority (two members, one silent) nobody is left out. Revoked members (a
    /// decommissioned node is revoked) do not count at all.
    pub fn stable_frontier(&self) -> Result<(VersionVector, Vec<String>, Vec<String>), StoreError> {
        let now = self.now_ms();
        let revoked: std::collections::BTreeSet<String> = self.revoked()?.into_iter().collect();
        let others: Vec<(Member, bool)> = self
            .members()?
            .into_iter()
            .filter(|m| m.node != self.node() && !revoked.contains(&m.node))
            .map(|m| {
                let silent = now.saturating_sub(m.announced.physical_ms())
                    > self.config.collection_horizon_ms;
                (m, silent)
            })
            .collect();
        let heard = 1 + others.iter().filter(|(_, silent)| !silent).count();
        let majority = 2 * heard > 1 + others.len();
        let mut frontier = self.vv.clone();
        let (mut counted, mut expired) = (vec![self.node().to_owned()], Vec::new());
        for (member, silent) in others {
            if silent && majority {
                expired.push(member.node);
                continue;
            }
            match member.interest {
                Interest::Everything => frontier = frontier.meet(&member.vv),
                // A member that does not take other members' records has none of them and
                // never will: for those origins it stands aside rather than holding their
                // collection back forever. Only the origins it takes are read (a hub's
                // vector has thousands of components, and it has a thousand such members).
                Interest::Shared => {
                    for origin in self.news.origins_for(&member.node) {
                        let theirs = member.vv.get(origin);
                        if theirs < frontier.get(origin) {
                            frontier.set(origin, theirs);
                        }
                    }
                }
            }
            counted.push(member.node);
        }
        // Every origin that wrote is a member, announced or not. One whose announcement has
        // not arrived yet (it just started, or its data came by another road) may have seen
        // nothing: until it says otherwise, nothing is stable. Leaving it out let a site
        // collect deletes that the command center had not seen and then order it to resync.
        let known: std::collections::BTreeSet<&str> = counted
            .iter()
            .chain(&expired)
            .map(String::as_str)
            .chain(revoked.iter().map(String::as_str))
            .collect();
        let unannounced: Vec<String> = self
            .vv
            .iter()
            .map(|(origin, _)| interest::member_of(origin))
            .filter(|node| !known.contains(node))
            .map(str::to_owned)
            .collect::<std::collections::BTreeSet<String>>()
            .into_iter()
            .collect();
        if !unannounced.is_empty() {
            frontier = frontier.meet(&VersionVector::new());
            counted.extend(unannounced);
        }
        Ok((frontier, counted, expired))
    }

    /// The records deleted now (and not yet collected), by collection and id.
    pub fn deleted_records(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT coll, rid FROM tomb ORDER BY coll, rid")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Collects deleted records whose delete every live member has seen.
    pub fn collect_garbage(&mut self) -> Result<GcReport, StoreError> {
        let (frontier, members, expired) = self.stable_frontier()?;
        // Only records deleted now can be collected; `tomb` lists them. CROSS JOIN keeps
        // `tomb` the outer loop: with a plain JOIN SQLite preferred to walk the whole entry
        // index in order (no sort needed), which took 656 ms at HQ with 714,587 records,
        // every 5 s, under the writer's lock.
        let mut stmt = self.conn.prepare_cached(DELETED_LIVES_SQL)?;
        let rows = stmt.query_map(params![LIFE_FIELD], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Vec<u8>>(5)?,
            ))
        })?;
        let mut lives: Vec<((String, String), Vec<Entry>)> = Vec::new();
        for row in rows {
            let (coll, rid, origin, oseq, hlc, state) = row?;
            let e = self.decode_entry(origin, oseq, hlc, &state)?;
            let key = (coll, rid);
            match lives.last_mut() {
                Some((k, v)) if *k == key => v.push(e),
                _ => lives.push((key, vec![e])),
            }
        }
        drop(stmt);
        let stable: Vec<(String, String)> = lives
            .into_iter()
            .filter(|(_, entries)| {
                let dead = matches!(join_entries(entries).map(|v| v.state), Some(FieldState::Life(l)) if !l.alive());
                dead && entries
                    .iter()
                    .all(|e| e.oseq <= frontier.get(&e.v.stamp.origin))
            })
            .map(|(k, _)| k)
            .collect();
        let mut report = GcReport {
            frontier: frontier.clone(),
            members,
            expired,
            ..GcReport::default()
        };
        if stable.is_empty() {
            return Ok(report);
        }
        let removed = self.transact(|s| {
            let mut n = 0;
            for (coll, rid) in &stable {
                n += s
                    .conn
                    .prepare_cached("DELETE FROM entry WHERE coll = ?1 AND rid = ?2")?
                    .execute(params![coll, rid])?;
                s.conn
                    .prepare_cached("DELETE FROM tomb WHERE coll = ?1 AND rid = ?2")?
                    .execute(params![coll, rid])?;
            }
            s.gc_frontier.merge(&frontier);
            Ok(n)
        })?;
        report.records_collected = stable.len();
        report.entries_removed = removed;
        tracing::info!(node = %self.node(), records = stable.len(), entries = removed, %frontier, "collected deleted records");
        Ok(report)
    }

    /// Marks a certificate serial or node name as revoked, replicated to every member.
    pub fn revoke(&mut self, serial_or_node: &str, reason: &str) -> Result<(), StoreError> {
        if serial_or_node.is_empty() || serial_or_node.len() > 256 {
            return Err(StoreError::InvalidName {
                what: "revocation",
                name: serial_or_node.chars().take(64).collect(),
            });
        }
        self.put_system(
            REVOKED,
            serial_or_node,
            &[("reason", FieldOp::Set(Value::Text(reason.to_owned())))],
        )?;
        Ok(())
    }

    /// Every revoked serial or node name.
    pub fn revoked(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.list(REVOKED)?.into_iter().map(|r| r.id).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{ManualClock, Schema, StoreConfig};

    /// Collection runs every few seconds under the writer's lock: its cost must follow the
    /// deleted records, never the size of the whole store.
    #[test]
    fn collection_reads_the_deleted_records_not_every_entry() {
        let store = Store::open_in_memory(
            Schema::new(),
            Arc::new(ManualClock::new(0)),
            StoreConfig::new("a"),
        )
        .unwrap();
        let plan: Vec<String> = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {DELETED_LIVES_SQL}"))
            .unwrap()
            .query_map(params![LIFE_FIELD], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|step| step.starts_with("SCAN t")),
            "tomb is the outer loop: {plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN e")),
            "no walk over the entry index: {plan:?}"
        );
    }
}
