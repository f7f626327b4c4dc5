//! The replicated store: CRDT records kept in one SQLite file.
//!
//! Each field of each record is a set of *entries*, at most one per origin node, none of
//! which dominates another ([`crate::field::dominates`]). That set is at once the field's state
//! (join the entries) and its compacted change log: every entry carries its origin's change
//! sequence (`oseq`) and this replica's local storage sequence (`lseq`), so "what changed
//! since" is an index range scan, and a superseded write simply no longer exists.
//!
//! Writes are acknowledged only after their SQLite transaction committed (WAL,
//! `synchronous=FULL` by default), so a `kill -9` loses nothing that was acknowledged.

mod checkpoint;
mod gc;
mod news;
mod replication;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::broadcast;

use crate::clock::{Clock, Hlc, HlcClock};
use crate::error::StoreError;
use crate::field::{self, FieldState, Life, MvRegister, Stamp, Versioned, LIFE_FIELD};
use crate::interest::{self, Interest};
use crate::schema::{validate_name, FieldKind, Schema};
use crate::value::Value;
use crate::vv::VersionVector;

pub use gc::{GcReport, Member};
pub use replication::ApplyReport;

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: an acknowledged write survives power loss.
    Full,
    /// `synchronous=NORMAL`: survives a process crash, may lose the last commits on power loss.
    Normal,
}

/// Settings of one replica.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// This node's name (its certificate name).
    pub node: String,
    /// Changes stamped further than this ahead of local time are refused.
    pub max_clock_skew_ms: u64,
    /// A member not heard from for this long no longer holds back garbage collection; if it
    /// comes back it resynchronises from a snapshot.
    pub collection_horizon_ms: u64,
    /// Commit durability.
    pub durability: Durability,
    /// What this replica holds: everything, or the shared collections and its own reports
    /// (see [`crate::interest`]).
    pub interest: Interest,
}

impl StoreConfig {
    /// Defaults for `node`: 60 s skew limit, 7-day horizon, full durability, holds everything.
    pub fn new(node: &str) -> Self {
        StoreConfig {
            node: node.to_owned(),
            max_clock_skew_ms: 60_000,
            collection_horizon_ms: 7 * 24 * 3600 * 1000,
            durability: Durability::Full,
            interest: Interest::Everything,
        }
    }
}

/// One operation on one field.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldOp {
    /// Write a value (`lww`, `mv`).
    Set(Value),
    /// Add a member (`set`).
    Add(String),
    /// Remove a member (`set`).
    Remove(String),
    /// Add to a counter, negative to subtract (`counter`).
    Increment(i64),
    /// Move a status forward (`status`); moving backwards is a no-op.
    Advance(String),
}

impl FieldOp {
    fn name(&self) -> &'static str {
        match self {
            FieldOp::Set(_) => "set",
            FieldOp::Add(_) => "add",
            FieldOp::Remove(_) => "remove",
            FieldOp::Increment(_) => "increment",
            FieldOp::Advance(_) => "advance",
        }
    }
}

/// What a field shows to a reader.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// A single value (`lww`, or an `mv` without conflict).
    Value(Value),
    /// Concurrent values of an `mv` field, all shown until one supersedes them.
    Conflict(Vec<Value>),
    /// Members of a `set`, sorted.
    Members(Vec<String>),
    /// A counter's value.
    Count(i64),
    /// A status name.
    Status(String),
}

impl FieldValue {
    /// The value as JSON (conflicts as `{"conflict": [...]}`).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            FieldValue::Value(v) => v.to_json(),
            FieldValue::Conflict(vs) => {
                serde_json::json!({ "conflict": vs.iter().map(Value::to_json).collect::<Vec<_>>() })
            }
            FieldValue::Members(m) => serde_json::json!(m),
            FieldValue::Count(c) => serde_json::json!(c),
            FieldValue::Status(s) => serde_json::json!(s),
        }
    }

    /// The single value, if the field holds one.
    pub fn value(&self) -> Option<&Value> {
        match self {
            FieldValue::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// A record as read from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Collection name.
    pub collection: String,
    /// Record id.
    pub id: String,
    /// Field values by name.
    pub fields: BTreeMap<String, FieldValue>,
    /// Newest write to the record.
    pub updated: Hlc,
}

impl Record {
    /// The record as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let fields: serde_json::Map<String, serde_json::Value> = self
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        serde_json::json!({
            "collection": self.collection,
            "id": self.id,
            "updated": self.updated.to_string(),
            "fields": fields,
        })
    }

    /// A field's single value.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field).and_then(FieldValue::value)
    }
}

/// A record changed, locally or through sync. Sent after the change is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// Collection name.
    pub collection: String,
    /// Record id.
    pub record: String,
    /// `None` for a local write, else the peer the change came from.
    pub via: Option<String>,
}

/// A replica of the store.
pub struct Store {
    /// Declared first so that it stops before the writer's connection closes.
    _checkpointer: Option<checkpoint::Checkpointer>,
    conn: Connection,
    path: String,
    schema: Schema,
    config: StoreConfig,
    clock: HlcClock,
    self_origin: i64,
    /// The sequence of this node's latest entry under each of its origins: its own name and
    /// its routed origins (see [`crate::interest`]). What the version vector's own components
    /// are raised to after a write. All draw from `local_seq`, so each has gaps where the
    /// others wrote.
    own_marks: BTreeMap<String, u64>,
    incarnation: u64,
    origin_ids: HashMap<String, i64>,
    /// Names by id. A read-only replica learns the names the writer interned after it opened
    /// on first meeting them, hence the cell.
    origin_names: RefCell<HashMap<i64, String>>,
    vv: VersionVector,
    local_seq: u64,
    next_lseq: u64,
    gc_frontier: VersionVector,
    reset_frontier: VersionVector,
    /// Snapshot resyncs begun since the store opened (see [`Store::resyncs`]).
    resyncs: u64,
    /// Which home the latest entries and vector movements concern (see [`Store::news_for`]).
    news: news::News,
    /// Wall time of the last announcement (`None`: none since the store opened).
    last_announced_ms: Option<u64>,
    /// Whether an entry outside `$members` was stored since the last announcement: only such
    /// entries make a new announcement worth sending.
    unannounced_data: bool,
    events: broadcast::Sender<ChangeEvent>,
    refused_batches: u64,
    /// Live records per collection, kept current by every write once counted (`None`: not
    /// counted yet, or invalidated by a rollback or a resync). A read-only replica never keeps
    /// it: another process writes its database.
    live_counts: RefCell<Option<BTreeMap<String, u64>>>,
    /// Opened by [`Store::open_read_only`]: another process (or handle) writes the database.
    read_only: bool,
    /// Held for the store's lifetime: one writer process per database (see [`Store::open`]).
    _lock: Option<std::fs::File>,
}

/// The path an in-memory replica reports (SQLite's own name for it).
const IN_MEMORY: &str = ":memory:";

/// The on-disk layout this build reads and writes (`PRAGMA user_version`).
const LAYOUT_VERSION: i64 = 3;

// `entry` is keyed by the local sequence (the rowid), so the log a peer reads is a range scan
// of the table itself and an applied entry is an append; the unique index finds a field's
// entries for merging. `tomb` lists the records that are deleted now, so that garbage
// collection looks at those and not at every record.
const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS replica(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    node TEXT NOT NULL,
    incarnation INTEGER NOT NULL,
    local_seq INTEGER NOT NULL,
    next_lseq INTEGER NOT NULL,
    hlc INTEGER NOT NULL,
    gc_frontier BLOB NOT NULL,
    reset_frontier BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS origin(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS entry(
    lseq INTEGER PRIMARY KEY,
    coll TEXT NOT NULL,
    rid TEXT NOT NULL,
    field TEXT NOT NULL,
    origin INTEGER NOT NULL,
    oseq INTEGER NOT NULL,
    hlc INTEGER NOT NULL,
    state BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS entry_by_field ON entry(coll, rid, field, origin);
CREATE TABLE IF NOT EXISTS tomb(coll TEXT NOT NULL, rid TEXT NOT NULL, PRIMARY KEY (coll, rid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen(origin INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cursor(peer TEXT PRIMARY KEY, incarnation INTEGER NOT NULL, lseq INTEGER NOT NULL);
";

/// One field's operation: the field's name and what to do to it.
pub type FieldWrite<'a> = (&'a str, FieldOp);

/// One record's writes as [`Store::put_all`] takes them: collection, record id, and the
/// operations on its fields.
pub type RecordWrite<'a> = (&'a str, &'a str, &'a [FieldWrite<'a>]);

/// One stored entry, decoded.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub origin: i64,
    pub oseq: u64,
    pub v: Versioned,
}

impl Store {
    /// Opens (or creates) the replica database at `path` for reading and writing.
    ///
    /// Only one process may do so at a time: the store keeps its sequences and version vector
    /// in memory, so a second writer would hand out the same sequence numbers. The lock is an
    /// advisory lock on `PATH.lock`, released when the store is dropped or the process dies;
    /// a second open fails with [`StoreError::InUse`]. Readers use [`Store::open_read_only`].
    pub fn open(
        path: impl AsRef<Path>,
        schema: Schema,
        wall: Arc<dyn Clock>,
        config: StoreConfig,
    ) -> Result<Store, StoreError> {
        let path_str = path.as_ref().display().to_string();
        let mut lock_path = path.as_ref().as_os_str().to_owned();
        lock_path.push(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Io {
                path: std::path::PathBuf::from(&lock_path).display().to_string(),
                source: e,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::InUse { path: path_str })
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Io {
                    path: path_str,
                    source: e,
                })
            }
        }
        let conn = Connection::open(path.as_ref())?;
        let mut store = Self::init(conn, path_str, schema, wall, config, false)?;
        store._lock = Some(lock);
        // Commits never checkpoint: the checkpointer thread does (see `checkpoint`).
        store.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        store._checkpointer = Some(
            checkpoint::Checkpointer::start(path.as_ref().to_path_buf()).map_err(|e| {
                StoreError::Io {
                    path: store.path.clone(),
                    source: e,
                }
            })?,
        );
        Ok(store)
    }

    /// Opens an existing replica read-only, beside the process that writes it (a daemon):
    /// reads see every committed write; writes fail.
    pub fn open_read_only(
        path: impl AsRef<Path>,
        schema: Schema,
        wall: Arc<dyn Clock>,
        config: StoreConfig,
    ) -> Result<Store, StoreError> {
        let path_str = path.as_ref().display().to_string();
        let conn = Connection::open_with_flags(
            path.as_ref(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Self::init(conn, path_str, schema, wall, config, true)
    }

    /// A read-only handle on this replica's file beside this writer, for readers that must
    /// not wait for it (the dashboard's event pump and its snapshots): in WAL mode a reader
    /// sees every committed write and never blocks the writer, nor the writer it. `None` for
    /// an in-memory replica, which has no file to share.
    pub fn reader(&self) -> Result<Option<Store>, StoreError> {
        if self.path == IN_MEMORY {
            return Ok(None);
        }
        Store::open_read_only(
            &self.path,
            self.schema.clone(),
            self.clock.wall().clone(),
            self.config.clone(),
        )
        .map(Some)
    }

    /// An in-memory replica (tests, simulations).
    pub fn open_in_memory(
        schema: Schema,
        wall: Arc<dyn Clock>,
        config: StoreConfig,
    ) -> Result<Store, StoreError> {
        Self::init(
            Connection::open_in_memory()?,
            IN_MEMORY.into(),
            schema,
            wall,
            config,
            false,
        )
    }

    fn init(
        conn: Connection,
        path: String,
        schema: Schema,
        wall: Arc<dyn Clock>,
        config: StoreConfig,
        read_only: bool,
    ) -> Result<Store, StoreError> {
        validate_name("node", &config.node)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        if !read_only {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.pragma_update(
            None,
            "synchronous",
            match config.durability {
                Durability::Full => "FULL",
                Durability::Normal => "NORMAL",
            },
        )?;
        // A larger page cache keeps the field index in memory while a backlog is applied.
        conn.pragma_update(None, "cache_size", -32768)?;
        let layout: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let has_tables: bool = conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'entry'",
            [],
            |r| r.get(0),
        )?;
        if has_tables && layout != LAYOUT_VERSION {
            return Err(StoreError::LayoutVersion {
                path,
                expected: LAYOUT_VERSION,
                found: layout,
            });
        }
        if !read_only {
            conn.execute_batch(SCHEMA_SQL)?;
            conn.pragma_update(None, "user_version", LAYOUT_VERSION)?;
        } else if !has_tables {
            return Err(StoreError::NotAReplica { path });
        }
        let row = conn
            .query_row(
                "SELECT node, incarnation, local_seq, next_lseq, hlc, gc_frontier, reset_frontier FROM replica WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Vec<u8>>(5)?,
                        r.get::<_, Vec<u8>>(6)?,
                    ))
                },
            )
            .optional()?;
        let (incarnation, local_seq, next_lseq, hlc, gc_frontier, reset_frontier) = match row {
            Some((node, inc, ls, nl, hlc, gcf, rf)) => {
                if node != config.node {
                    return Err(StoreError::NodeMismatch {
                        path,
                        expected: config.node.clone(),
                        found: node,
                    });
                }
                (
                    inc as u64,
                    ls as u64,
                    nl as u64,
                    hlc as u64,
                    VersionVector::from_bytes(&gcf)?,
                    VersionVector::from_bytes(&rf)?,
                )
            }
            None => {
                // A random incarnation tells peers that a database recreated under the same node
                // name starts its local sequence afresh, so their resume cursors no longer apply.
                let inc: u64 = rand::random::<u64>() >> 1;
                conn.execute(
                    "INSERT INTO replica(id, node, incarnation, local_seq, next_lseq, hlc, gc_frontier, reset_frontier)
                     VALUES (1, ?1, ?2, 0, 1, 0, x'00', x'00')",
                    params![config.node, inc as i64],
                )?;
                (inc, 0, 1, 0, VersionVector::new(), VersionVector::new())
            }
        };
        let clock = HlcClock::new(wall, Hlc(hlc), config.max_clock_skew_ms);
        let (events, _) = broadcast::channel(4096);
        let mut store = Store {
            _checkpointer: None,
            conn,
            path,
            schema,
            clock,
            self_origin: 0,
            own_marks: BTreeMap::new(),
            incarnation,
            origin_ids: HashMap::new(),
            origin_names: RefCell::new(HashMap::new()),
            vv: VersionVector::new(),
            local_seq,
            next_lseq,
            gc_frontier,
            reset_frontier,
            last_announced_ms: None,
            resyncs: 0,
            news: news::News::default(),
            unannounced_data: true,
            events,
            refused_batches: 0,
            live_counts: RefCell::new(None),
            read_only,
            config,
            _lock: None,
        };
        {
            let mut stmt = store.conn.prepare("SELECT id, name FROM origin")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (id, name) = row?;
                store.origin_ids.insert(name.clone(), id);
                store.origin_names.get_mut().insert(id, name);
            }
        }
        {
            let mut stmt = store.conn.prepare("SELECT origin, seq FROM seen")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
            let mut vv = VersionVector::new();
            for row in rows {
                let (id, seq) = row?;
                if let Some(name) = store.origin_names.get_mut().get(&id) {
                    vv.raise(name, seq as u64);
                }
            }
            store.vv = vv;
        }
        store.news = news::News::starting_at(store.next_lseq.saturating_sub(1), &store.vv);
        let node = store.config.node.clone();
        store.self_origin = store.intern(&node)?;
        // What the vector says of this node's own writes is exact (saved with each write), or
        // lower while a resync was under way, which only makes peers send some of them again.
        store.own_marks = store
            .vv
            .iter()
            .filter(|(origin, _)| interest::member_of(origin) == node)
            .map(|(origin, seq)| (origin.to_owned(), seq))
            .collect();
        Ok(store)
    }

    /// For a peer `holder` that holds only the shared collections and its own records: the
    /// last log position that may hold an entry it takes, and a stamp that changes whenever
    /// the part of this replica's vector it takes may have moved. A session skips reading the
    /// log (and building the scoped vector) while neither moved.
    pub fn news_for(&self, holder: &str) -> (u64, u64) {
        self.news.for_holder(holder)
    }

    /// The part of this replica's version vector that `holder`, holding `interest`, takes
    /// ([`Interest::scope`], read through the vector's origins by home rather than by
    /// filtering every component: a hub's vector has thousands).
    pub fn scope_for(&self, holder: &str, interest: Interest) -> VersionVector {
        match interest {
            Interest::Everything => self.vv.clone(),
            Interest::Shared => {
                let mut out = VersionVector::new();
                for origin in self.news.origins_for(holder) {
                    out.raise(origin, self.vv.get(origin));
                }
                out
            }
        }
    }

    /// How many changes a peer `holder` with `interest` and vector `peer_vv` lacks at most, of
    /// those it takes (see [`VersionVector::lag_behind`]).
    pub fn lag_of(&self, holder: &str, interest: Interest, peer_vv: &VersionVector) -> u64 {
        let lag = |origin: &str| self.vv.get(origin).saturating_sub(peer_vv.get(origin));
        match interest {
            Interest::Everything => peer_vv.lag_behind(&self.vv),
            Interest::Shared => self.news.origins_for(holder).map(lag).sum(),
        }
    }

    /// This replica's node name.
    pub fn node(&self) -> &str {
        &self.config.node
    }

    /// What this replica holds (see [`crate::interest`]).
    pub fn interest(&self) -> Interest {
        self.config.interest
    }

    /// The database's incarnation (random, fixed at creation).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The declared schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// What this replica has seen, per origin.
    pub fn version_vector(&self) -> &VersionVector {
        &self.vv
    }

    /// Up to where deleted records have been collected here.
    pub fn gc_frontier(&self) -> &VersionVector {
        &self.gc_frontier
    }

    /// Up to where this replica dropped its data for a snapshot resync.
    pub fn reset_frontier(&self) -> &VersionVector {
        &self.reset_frontier
    }

    /// Whether a snapshot resync is still catching up.
    pub fn resyncing(&self) -> bool {
        !self.vv.covers(&self.reset_frontier)
    }

    /// How many incoming batches were refused (clock skew, malformed).
    pub fn refused_batches(&self) -> u64 {
        self.refused_batches
    }

    /// Path of the database file (`:memory:` for in-memory replicas).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The injected wall clock, for callers that want the time without holding the store.
    pub fn wall_clock(&self) -> Arc<dyn Clock> {
        self.clock.wall().clone()
    }

    /// The injected clock's current wall time.
    pub fn now_ms(&self) -> u64 {
        self.clock.wall().now_ms()
    }

    /// Subscribes to change events (sent after each commit). A slow subscriber that falls more
    /// than 4096 events behind gets `Lagged` and should re-read what it shows.
    pub fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.events.subscribe()
    }

    /// Reads the origin names again (after a rollback undid some).
    fn reload_origins(&mut self) -> Result<(), StoreError> {
        let mut ids = HashMap::new();
        let mut names = HashMap::new();
        let mut stmt = self.conn.prepare_cached("SELECT id, name FROM origin")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (id, name) = row?;
            ids.insert(name.clone(), id);
            names.insert(id, name);
        }
        drop(stmt);
        self.origin_ids = ids;
        self.origin_names.replace(names);
        Ok(())
    }

    /// Interns a node name as a small integer (autocommitted: a stray name is harmless; inside
    /// a transaction that rolls back, [`Store::reload_origins`] forgets it).
    fn intern(&mut self, name: &str) -> Result<i64, StoreError> {
        if let Some(id) = self.origin_ids.get(name) {
            return Ok(*id);
        }
        self.conn.execute(
            "INSERT OR IGNORE INTO origin(name) VALUES (?1)",
            params![name],
        )?;
        let id: i64 = self.conn.query_row(
            "SELECT id FROM origin WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )?;
        self.origin_ids.insert(name.to_owned(), id);
        self.origin_names.get_mut().insert(id, name.to_owned());
        Ok(id)
    }

    fn origin_name(&self, id: i64) -> String {
        if let Some(name) = self.origin_names.borrow().get(&id) {
            return name.clone();
        }
        // Only a reader beside the writer gets here: the writer interned it since.
        let found: Option<String> = self
            .conn
            .prepare_cached("SELECT name FROM origin WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![id], |r| r.get(0)).optional())
            .ok()
            .flatten();
        match found {
            Some(name) => {
                self.origin_names.borrow_mut().insert(id, name.clone());
                name
            }
            None => format!("#{id}"),
        }
    }

    /// Loads the entries of every field of one record.
    pub(crate) fn record_entries(
        &self,
        coll: &str,
        rid: &str,
    ) -> Result<HashMap<String, Vec<Entry>>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT field, origin, oseq, hlc, state FROM entry WHERE coll = ?1 AND rid = ?2",
        )?;
        let rows = stmt.query_map(params![coll, rid], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })?;
        let mut out: HashMap<String, Vec<Entry>> = HashMap::new();
        for row in rows {
            let (field, origin, oseq, hlc, state) = row?;
            out.entry(field)
                .or_default()
                .push(self.decode_entry(origin, oseq, hlc, &state)?);
        }
        Ok(out)
    }

    /// Loads the entries of one field.
    fn field_entries(&self, coll: &str, rid: &str, field: &str) -> Result<Vec<Entry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT origin, oseq, hlc, state FROM entry WHERE coll = ?1 AND rid = ?2 AND field = ?3",
        )?;
        let rows = stmt.query_map(params![coll, rid, field], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (origin, oseq, hlc, state) = row?;
            out.push(self.decode_entry(origin, oseq, hlc, &state)?);
        }
        Ok(out)
    }

    /// Stores `entry` for a field, removing the entries it dominates. The caller has checked
    /// that nothing already stored dominates it. Returns the entry's local sequence.
    fn store_entry(
        &mut self,
        coll: &str,
        rid: &str,
        field: &str,
        existing: &[Entry],
        e: &Entry,
    ) -> Result<u64, StoreError> {
        if coll != gc::MEMBERS {
            self.unannounced_data = true;
        }
        for x in existing {
            if x.origin != e.origin && field::dominates(&e.v, &x.v) {
                self.conn
                    .prepare_cached("DELETE FROM entry WHERE coll = ?1 AND rid = ?2 AND field = ?3 AND origin = ?4")?
                    .execute(params![coll, rid, field, x.origin])?;
            }
        }
        if field == LIFE_FIELD {
            // The record's life after this entry: the join of what stays and the entry.
            let mut kept: Vec<Entry> = existing
                .iter()
                .filter(|x| x.origin != e.origin && !field::dominates(&e.v, &x.v))
                .cloned()
                .collect();
            kept.push(e.clone());
            let dead = matches!(
                join_entries(&kept).map(|v| v.state),
                Some(FieldState::Life(l)) if !l.alive()
            );
            let was_alive = matches!(
                join_entries(existing).map(|v| v.state),
                Some(FieldState::Life(l)) if l.alive()
            );
            if was_alive == dead {
                // Created, deleted or brought back: the live count moves.
                self.count_live(coll, if dead { -1 } else { 1 });
            }
            let sql = if dead {
                "INSERT OR IGNORE INTO tomb(coll, rid) VALUES (?1, ?2)"
            } else {
                "DELETE FROM tomb WHERE coll = ?1 AND rid = ?2"
            };
            self.conn.prepare_cached(sql)?.execute(params![coll, rid])?;
        }
        let lseq = self.next_lseq;
        self.next_lseq += 1;
        self.news.stored(&e.v.stamp.origin, lseq);
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO entry(coll, rid, field, origin, oseq, hlc, lseq, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                coll,
                rid,
                field,
                e.origin,
                e.oseq as i64,
                e.v.stamp.hlc.0 as i64,
                lseq as i64,
                e.v.state.encode()
            ])?;
        Ok(lseq)
    }

    fn save_replica_row(&self) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE replica SET local_seq = ?1, next_lseq = ?2, hlc = ?3, gc_frontier = ?4, reset_frontier = ?5 WHERE id = 1",
            )?
            .execute(params![
                self.local_seq as i64,
                self.next_lseq as i64,
                self.clock.last().0 as i64,
                self.gc_frontier.to_bytes(),
                self.reset_frontier.to_bytes()
            ])?;
        Ok(())
    }

    fn save_seen(&mut self, origin: &str, seq: u64) -> Result<(), StoreError> {
        let id = self.intern(origin)?;
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO seen(origin, seq) VALUES (?1, ?2)")?
            .execute(params![id, seq as i64])?;
        Ok(())
    }

    /// Runs `f` in an immediate transaction; on error, rolls back the database and restores
    /// the in-memory counters so that nothing changed.
    fn transact<T>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let saved = (
            self.vv.clone(),
            self.local_seq,
            self.next_lseq,
            self.gc_frontier.clone(),
            self.reset_frontier.clone(),
        );
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = f(self).and_then(|t| {
            self.save_replica_row()?;
            self.conn.execute_batch("COMMIT")?;
            Ok(t)
        });
        if result.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
            // Origins interned in the transaction are gone with it.
            let _ = self.reload_origins();
            // The vector goes back, and log positions will be handed out again.
            self.news.everything_moved(self.next_lseq);
            // The counts may have moved for writes that are now undone.
            self.live_counts.replace(None);
            (
                self.vv,
                self.local_seq,
                self.next_lseq,
                self.gc_frontier,
                self.reset_frontier,
            ) = saved;
            // Marks of undone writes: an origin interned by the transaction is gone; the others
            // come back to at most the restored sequence, which stays exact (every entry of
            // theirs up to it is committed). Cheaper than saving the map for every transaction.
            let (ids, last) = (&self.origin_ids, self.local_seq);
            self.own_marks.retain(|origin, _| ids.contains_key(origin));
            for seq in self.own_marks.values_mut() {
                *seq = (*seq).min(last);
            }
            // The HLC is left as it is: it only moves forward, and a newer reading is harmless.
        }
        result
    }

    /// Writes fields of a record, creating it (or bringing it back if deleted). Returns once
    /// the write is durable.
    pub fn put(
        &mut self,
        collection: &str,
        id: &str,
        ops: &[(&str, FieldOp)],
    ) -> Result<Hlc, StoreError> {
        validate_name("collection", collection)?;
        validate_name("record", id)?;
        for (f, _) in ops {
            validate_name("field", f)?;
        }
        self.write_local(collection, id, ops, false)
    }

    /// Deletes a record. Returns whether it existed.
    pub fn delete(&mut self, collection: &str, id: &str) -> Result<bool, StoreError> {
        validate_name("collection", collection)?;
        validate_name("record", id)?;
        let life = self.life(collection, id)?;
        if !life.map(|l| l.alive()).unwrap_or(false) {
            return Ok(false);
        }
        self.write_local(collection, id, &[], true)?;
        Ok(true)
    }

    /// Deletes several records of one collection in one transaction (one commit for the lot,
    /// where [`Store::delete`] commits each). Returns how many existed; on error none is
    /// deleted.
    pub fn delete_all(&mut self, collection: &str, ids: &[&str]) -> Result<usize, StoreError> {
        validate_name("collection", collection)?;
        let mut alive: Vec<&str> = Vec::with_capacity(ids.len());
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        for id in ids {
            validate_name("record", id)?;
            if seen.insert(*id) && self.life(collection, id)?.is_some_and(|l| l.alive()) {
                alive.push(id);
            }
        }
        if alive.is_empty() {
            return Ok(0);
        }
        let kinds = self.check_ops(collection, &[])?;
        self.transact(|s| {
            for id in &alive {
                let hlc = s.clock.tick();
                s.write_record(collection, id, &[], &kinds, true, hlc)?;
            }
            s.raise_own_version()?;
            Ok(())
        })?;
        for id in &alive {
            let _ = self.events.send(ChangeEvent {
                collection: collection.to_owned(),
                record: (*id).to_owned(),
                via: None,
            });
        }
        Ok(alive.len())
    }

    /// Writes into a store-owned (`$`) collection.
    pub(crate) fn put_system(
        &mut self,
        collection: &str,
        id: &str,
        ops: &[(&str, FieldOp)],
    ) -> Result<Hlc, StoreError> {
        self.write_local(collection, id, ops, false)
    }

    fn life(&self, coll: &str, rid: &str) -> Result<Option<Life>, StoreError> {
        Ok(
            join_entries(&self.field_entries(coll, rid, LIFE_FIELD)?).and_then(|v| match v.state {
                FieldState::Life(l) => Some(l),
                _ => None,
            }),
        )
    }

    fn write_local(
        &mut self,
        coll: &str,
        rid: &str,
        ops: &[(&str, FieldOp)],
        delete: bool,
    ) -> Result<Hlc, StoreError> {
        let kinds = self.check_ops(coll, ops)?;
        let hlc = self.clock.tick();
        self.transact(|s| {
            s.write_record(coll, rid, ops, &kinds, delete, hlc)?;
            s.raise_own_version()?;
            Ok(())
        })?;
        let _ = self.events.send(ChangeEvent {
            collection: coll.to_owned(),
            record: rid.to_owned(),
            via: None,
        });
        Ok(hlc)
    }

    /// Writes fields of several records in one transaction: all of them are durable when it
    /// returns, or none is written. For facts that must not be half recorded (a gate passage
    /// and the use of its declaration).
    pub fn put_all(&mut self, writes: &[RecordWrite]) -> Result<Hlc, StoreError> {
        let mut checked = Vec::with_capacity(writes.len());
        for (coll, id, ops) in writes {
            validate_name("collection", coll)?;
            validate_name("record", id)?;
            for (f, _) in ops.iter() {
                validate_name("field", f)?;
            }
            checked.push(self.check_ops(coll, ops)?);
        }
        let mut last = None;
        self.transact(|s| {
            for ((coll, id, ops), kinds) in writes.iter().zip(&checked) {
                let hlc = s.clock.tick();
                s.write_record(coll, id, ops, kinds, false, hlc)?;
                last = Some(hlc);
            }
            s.raise_own_version()?;
            Ok(())
        })?;
        for (coll, id, _) in writes {
            let _ = self.events.send(ChangeEvent {
                collection: (*coll).to_owned(),
                record: (*id).to_owned(),
                via: None,
            });
        }
        Ok(last.unwrap_or_else(|| self.clock.tick()))
    }

    /// Checks every operation against the schema before anything is written.
    fn check_ops(&self, coll: &str, ops: &[(&str, FieldOp)]) -> Result<Vec<FieldKind>, StoreError> {
        let mut kinds = Vec::with_capacity(ops.len());
        for (f, op) in ops {
            let kind = self.schema.kind(coll, f);
            let fits = matches!(
                (&kind, op),
                (FieldKind::Lww | FieldKind::Mv, FieldOp::Set(_))
                    | (FieldKind::Set, FieldOp::Add(_) | FieldOp::Remove(_))
                    | (FieldKind::Counter, FieldOp::Increment(_))
                    | (FieldKind::Status(_), FieldOp::Advance(_))
            );
            if !fits {
                return Err(StoreError::WrongOp {
                    field: f.to_string(),
                    kind: kind.name(),
                    op: op.name(),
                });
            }
            if let (FieldKind::Status(order), FieldOp::Advance(s)) = (&kind, op) {
                if !order.contains(s) {
                    return Err(StoreError::UnknownStatus {
                        field: f.to_string(),
                        value: s.clone(),
                        allowed: order.join(" < "),
                    });
                }
            }
            kinds.push(kind);
        }
        Ok(kinds)
    }

    /// After local writes, in their transaction: the replica's own components of the version
    /// vector (its name, and the routed origins it wrote under).
    fn raise_own_version(&mut self) -> Result<(), StoreError> {
        if !self.resyncing() {
            // Only the marks this write moved (one, usually) are copied out of the map.
            let due: Vec<(String, u64)> = self
                .own_marks
                .iter()
                .filter(|(origin, seq)| self.vv.get(origin) < **seq)
                .map(|(origin, seq)| (origin.clone(), *seq))
                .collect();
            for (origin, seq) in due {
                self.vv.raise(&origin, seq);
                self.news.vector_moved(&origin);
                self.save_seen(&origin, seq)?;
            }
        }
        Ok(())
    }

    /// This node's own origins and the sequence of its latest entry under each.
    pub(crate) fn own_components(&self) -> Vec<(String, u64)> {
        self.own_marks
            .iter()
            .map(|(origin, seq)| (origin.clone(), *seq))
            .collect()
    }

    /// Writes one record's fields (or its deletion) stamped `hlc`, inside a transaction.
    fn write_record(
        &mut self,
        coll: &str,
        rid: &str,
        ops: &[(&str, FieldOp)],
        kinds: &[FieldKind],
        delete: bool,
        hlc: Hlc,
    ) -> Result<(), StoreError> {
        let node = self.config.node.clone();
        let s = self;
        let mut writes: Vec<(String, FieldState)> = Vec::new();
        // Every entry of the record in one query (for a new record: none), rather than two
        // lookups per field written: a gate passage writes a dozen fields.
        let mut by_field = s.record_entries(coll, rid)?;
        // A reported collection's entries go under a routed origin, to the record's home, so
        // that replicas holding only the shared collections and their own records can leave
        // the others out and still keep exact vectors (see `crate::interest`).
        // A replica that holds only shared records announces its membership the same way: its
        // vector goes to the replicas that hold everything (they collect garbage for the fleet),
        // not to a thousand sites that would each receive a thousand vectors.
        let routed = s.schema.is_reported(coll)
            || (coll == gc::MEMBERS && s.config.interest == Interest::Shared);
        let origin_name = if routed {
            interest::routed_origin(&node, home(&by_field).unwrap_or(&node))
        } else {
            node.clone()
        };
        let self_origin = if origin_name == node {
            s.self_origin
        } else {
            s.intern(&origin_name)?
        };
        let stamp = Stamp {
            hlc,
            origin: origin_name.clone(),
        };
        let life_entries = by_field.remove(LIFE_FIELD).unwrap_or_default();
        let life = join_entries(&life_entries).and_then(|v| match v.state {
            FieldState::Life(l) => Some(l),
            _ => None,
        });
        let current = life.unwrap_or_default();
        if delete {
            writes.push((
                LIFE_FIELD.into(),
                FieldState::Life(Life {
                    cl: current.cl + 1,
                    killed_at: current.killed_at.max(hlc.0),
                }),
            ));
        } else if !current.alive() {
            writes.push((
                LIFE_FIELD.into(),
                FieldState::Life(Life {
                    cl: (current.cl + 1).max(2 * hlc.0 + 1),
                    killed_at: current.killed_at,
                }),
            ));
        }
        for ((f, op), kind) in ops.iter().zip(kinds) {
            let merged = || {
                let valid: Vec<Entry> = by_field
                    .get(*f)
                    .map(|v| {
                        v.iter()
                            .filter(|e| e.v.stamp.hlc.0 >= current.killed_at)
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                join_entries(&valid).map(|v| v.state)
            };
            let state = match (kind, op) {
                (FieldKind::Lww, FieldOp::Set(v)) => FieldState::Lww(v.clone()),
                (FieldKind::Mv, FieldOp::Set(v)) => {
                    let mut m = match merged() {
                        Some(FieldState::Mv(m)) => m,
                        _ => MvRegister::default(),
                    };
                    m.write(&node, v.clone());
                    FieldState::Mv(m)
                }
                (FieldKind::Set, FieldOp::Add(x) | FieldOp::Remove(x)) => {
                    let mut set = match merged() {
                        Some(FieldState::Set(set)) => set,
                        _ => crdts::Orswot::new(),
                    };
                    if matches!(op, FieldOp::Add(_)) {
                        field::set_add(&mut set, &node, x);
                    } else {
                        field::set_remove(&mut set, x);
                    }
                    FieldState::Set(set)
                }
                (FieldKind::Counter, FieldOp::Increment(d)) => {
                    let mut c = match merged() {
                        Some(FieldState::Counter(c)) => c,
                        _ => crdts::PNCounter::new(),
                    };
                    field::counter_add(&mut c, &node, *d);
                    FieldState::Counter(c)
                }
                (FieldKind::Status(order), FieldOp::Advance(name)) => {
                    let rank = order.iter().position(|o| o == name).unwrap_or(0) as u32;
                    match merged() {
                        Some(FieldState::Status(cur)) if cur >= rank => continue,
                        _ => FieldState::Status(rank),
                    }
                }
                _ => continue,
            };
            writes.push((f.to_string(), state));
        }
        for (f, state) in writes {
            // Entries of other origins do not change while this record is written, and this
            // origin's own entry is replaced in place: the entries read above stay current.
            let existing = if f == LIFE_FIELD {
                life_entries.clone()
            } else {
                by_field.get(&f).cloned().unwrap_or_default()
            };
            s.local_seq += 1;
            match s.own_marks.get_mut(&origin_name) {
                Some(mark) => *mark = s.local_seq,
                None => {
                    s.own_marks.insert(origin_name.clone(), s.local_seq);
                }
            }
            let e = Entry {
                origin: self_origin,
                oseq: s.local_seq,
                v: Versioned {
                    stamp: stamp.clone(),
                    state,
                },
            };
            s.store_entry(coll, rid, &f, &existing, &e)?;
        }
        Ok(())
    }

    /// Reads one record; `None` if it does not exist or was deleted.
    pub fn get(&self, collection: &str, id: &str) -> Result<Option<Record>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT field, origin, oseq, hlc, state FROM entry WHERE coll = ?1 AND rid = ?2",
        )?;
        let rows = stmt.query_map(params![collection, id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })?;
        let mut entries = Vec::new();
        for row in rows {
            let (f, origin, oseq, hlc, state) = row?;
            entries.push((f, self.decode_entry(origin, oseq, hlc, &state)?));
        }
        Ok(self.assemble_one(collection, id, entries))
    }

    /// Reads every live record of a collection, ordered by id.
    pub fn list(&self, collection: &str) -> Result<Vec<Record>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT rid, field, origin, oseq, hlc, state, coll FROM entry WHERE coll = ?1 ORDER BY rid, field")?;
        let rows = stmt.query_map(params![collection], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Vec<u8>>(5)?,
            ))
        })?;
        let mut by_record: Vec<(String, Vec<(String, Entry)>)> = Vec::new();
        for row in rows {
            let (rid, f, origin, oseq, hlc, state) = row?;
            let e = self.decode_entry(origin, oseq, hlc, &state)?;
            match by_record.last_mut() {
                Some((r, v)) if *r == rid => v.push((f, e)),
                _ => by_record.push((rid, vec![(f, e)])),
            }
        }
        Ok(by_record
            .into_iter()
            .filter_map(|(rid, rows)| self.assemble_one(collection, &rid, rows))
            .collect())
    }

    /// The ids of a collection's live records, sorted, without reading their fields.
    pub fn ids(&self, collection: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT e.rid FROM entry e WHERE e.coll = ?1 AND e.field = ?2 \
             AND NOT EXISTS (SELECT 1 FROM tomb t WHERE t.coll = e.coll AND t.rid = e.rid) \
             ORDER BY e.rid",
        )?;
        let rows = stmt.query_map(params![collection, LIFE_FIELD], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Live records per collection (collections without any are left out).
    pub fn collection_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        if let Some(counts) = self.live_counts.borrow().as_ref() {
            return Ok(counts.clone());
        }
        let counts = self.count_collections()?;
        if !self.read_only {
            self.live_counts.replace(Some(counts.clone()));
        }
        Ok(counts)
    }

    /// Moves the cached live count of `coll` (if counted) by `delta`.
    fn count_live(&self, coll: &str, delta: i64) {
        if let Some(counts) = self.live_counts.borrow_mut().as_mut() {
            let n = counts.entry(coll.to_owned()).or_default();
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                counts.remove(coll);
            }
        }
    }

    /// Forgets the cached counts: the next [`Store::collection_counts`] counts again.
    pub(crate) fn forget_counts(&self) {
        self.live_counts.replace(None);
    }

    fn count_collections(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        // Live records are those with a life entry and not in `tomb`; counted in SQL, without
        // decoding a single entry. This reads the whole entry index (tens of milliseconds at
        // a hundred thousand entries, under the store's lock), so it runs once and the writes
        // keep the counts current from then on; status and metrics read them every few seconds.
        let mut stmt = self.conn.prepare_cached(
            "SELECT l.coll, count(*) FROM (SELECT DISTINCT coll, rid FROM entry WHERE field = ?1) l \
             WHERE NOT EXISTS (SELECT 1 FROM tomb t WHERE t.coll = l.coll AND t.rid = l.rid) \
             GROUP BY l.coll",
        )?;
        let rows = stmt.query_map(params![LIFE_FIELD], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn decode_entry(
        &self,
        origin: i64,
        oseq: i64,
        hlc: i64,
        state: &[u8],
    ) -> Result<Entry, StoreError> {
        Ok(Entry {
            origin,
            oseq: oseq as u64,
            v: Versioned {
                stamp: Stamp {
                    hlc: Hlc(hlc as u64),
                    origin: self.origin_name(origin),
                },
                state: FieldState::decode(state)?,
            },
        })
    }

    /// Builds a record from its entries, or `None` if it is not alive.
    fn assemble_one(&self, coll: &str, rid: &str, rows: Vec<(String, Entry)>) -> Option<Record> {
        let merged = merge_fields(rows);
        let life = match merged.get(LIFE_FIELD).map(|v| &v.state) {
            Some(FieldState::Life(l)) if l.alive() => *l,
            _ => return None,
        };
        let mut updated = Hlc(0);
        let mut fields = BTreeMap::new();
        for (f, v) in merged {
            updated = updated.max(v.stamp.hlc);
            if f == LIFE_FIELD {
                continue;
            }
            let Some(v) = v.valid_after(life.killed_at) else {
                continue;
            };
            fields.insert(f.clone(), self.view(coll, &f, &v.state));
        }
        Some(Record {
            collection: coll.to_owned(),
            id: rid.to_owned(),
            fields,
            updated,
        })
    }

    fn view(&self, coll: &str, f: &str, state: &FieldState) -> FieldValue {
        match state {
            FieldState::Lww(v) => FieldValue::Value(v.clone()),
            FieldState::Mv(m) => {
                let mut vs = m.values();
                if vs.len() == 1 {
                    FieldValue::Value(vs.remove(0))
                } else {
                    FieldValue::Conflict(vs)
                }
            }
            FieldState::Set(s) => FieldValue::Members(field::set_members(s)),
            FieldState::Counter(c) => FieldValue::Count(field::counter_value(c)),
            FieldState::Status(rank) => FieldValue::Status(match self.schema.kind(coll, f) {
                FieldKind::Status(order) => order
                    .get(*rank as usize)
                    .cloned()
                    .unwrap_or_else(|| format!("#{rank}")),
                _ => format!("#{rank}"),
            }),
            FieldState::Life(l) => FieldValue::Value(Value::Int(l.cl as i64)),
        }
    }
}

/// Per-field merged state of a record, keeping for each field the entries newer than a delete
/// apart so that [`MergedField::valid_after`] can drop the previous life's writes.
pub(crate) struct MergedField {
    entries: Vec<Entry>,
    pub stamp: Stamp,
    pub state: FieldState,
}

impl MergedField {
    /// The join of the entries written at or after `killed_at`.
    pub fn valid_after(&self, killed_at: u64) -> Option<Versioned> {
        let valid: Vec<Entry> = self
            .entries
            .iter()
            .filter(|e| e.v.stamp.hlc.0 >= killed_at)
            .cloned()
            .collect();
        join_entries(&valid)
    }
}

/// The home of a reported record: the node that reported it, as the routed origins of its
/// entries say (the life entries first; the least name if several nodes created it
/// concurrently). `None` for a record not seen yet, or written before its collection was
/// reported.
fn home(by_field: &HashMap<String, Vec<Entry>>) -> Option<&str> {
    fn homes(entries: &[Entry]) -> Option<&str> {
        entries
            .iter()
            .filter_map(|e| interest::home_of(&e.v.stamp.origin))
            .min()
    }
    by_field
        .get(LIFE_FIELD)
        .and_then(|life| homes(life))
        .or_else(|| by_field.values().filter_map(|v| homes(v)).min())
}

pub(crate) fn merge_fields(rows: Vec<(String, Entry)>) -> BTreeMap<String, MergedField> {
    let mut by_field: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for (f, e) in rows {
        by_field.entry(f).or_default().push(e);
    }
    by_field
        .into_iter()
        .filter_map(|(f, entries)| {
            let j = join_entries(&entries)?;
            Some((
                f,
                MergedField {
                    entries,
                    stamp: j.stamp,
                    state: j.state,
                },
            ))
        })
        .collect()
}

/// The join of a field's entries, in a fixed order so every replica computes the same bytes.
pub(crate) fn join_entries(entries: &[Entry]) -> Option<Versioned> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.v.stamp.cmp(&b.v.stamp));
    let mut it = sorted.into_iter();
    let first = it.next()?.v.clone();
    Some(it.fold(first, |acc, e| field::join(&acc, &e.v)))
}
