//! `mizugiwa store`: records in a replica, by hand.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;
use mizugiwa_sync::{FieldOp, Schema, Store, StoreConfig, SystemClock, Value, VersionVector};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Write fields of a record: `field=value` (JSON or text), `field+=N` (counter).
    Put {
        /// Replica database.
        #[arg(long)]
        db: PathBuf,
        /// Node name (needed only when the database is new).
        #[arg(long)]
        node: Option<String>,
        /// Collection.
        collection: String,
        /// Record id.
        id: String,
        /// Field assignments.
        #[arg(required = true)]
        fields: Vec<String>,
    },
    /// Print a record as JSON.
    Get {
        /// Replica database.
        #[arg(long)]
        db: PathBuf,
        /// Collection.
        collection: String,
        /// Record id.
        id: String,
    },
    /// Print the replica's state hash: equal hashes mean equal records (a replica's own
    /// history and sync bookkeeping do not count). Safe beside a running daemon.
    Hash {
        /// Replica database.
        #[arg(long)]
        db: PathBuf,
        /// Hash only these collections (repeatable); default all.
        #[arg(long = "collection")]
        collections: Vec<String>,
    },
    /// Print every record of a collection, one JSON object per line.
    List {
        /// Replica database.
        #[arg(long)]
        db: PathBuf,
        /// Collection.
        collection: String,
    },
    /// Delete a record.
    Delete {
        /// Replica database.
        #[arg(long)]
        db: PathBuf,
        /// Collection.
        collection: String,
        /// Record id.
        id: String,
    },
    /// Follow changes as they land in the database (local writes and sync), as JSON lines.
    Watch {
        /// Replica database.
        #[arg(long)]
        db: PathBuf,
        /// Only this collection.
        #[arg(long)]
        collection: Option<String>,
        /// Start from the beginning of the log instead of now.
        #[arg(long)]
        from_start: bool,
    },
    /// Write COUNT records as fast as durability allows, printing each id once acknowledged
    /// (used by the durability test and for load).
    Fill {
        /// Replica database.
        #[arg(long)]
        db: PathBuf,
        /// Node name (needed only when the database is new).
        #[arg(long)]
        node: Option<String>,
        /// Collection.
        #[arg(long, default_value = "load")]
        collection: String,
        /// How many records.
        #[arg(long, default_value_t = 1000)]
        count: u64,
    },
}

/// Opens a replica whose node name is recorded in the file (or given, for a new file).
pub fn open(db: &Path, node: Option<&str>) -> anyhow::Result<Store> {
    let recorded = Store::node_of(db).with_context(|| format!("reading {}", db.display()))?;
    let node = match (recorded, node) {
        (Some(r), Some(n)) if r != n => bail!("{} belongs to node {r:?}, not {n:?}", db.display()),
        (Some(r), _) => r,
        (None, Some(n)) => n.to_owned(),
        (None, None) => bail!(
            "{} is a new database: say which node it belongs to with --node",
            db.display()
        ),
    };
    Ok(Store::open(
        db,
        Schema::new(),
        Arc::new(SystemClock::new()),
        StoreConfig::new(&node),
    )?)
}

/// Opens an existing replica for writing (fails while a daemon runs on it).
pub fn open_existing(db: &Path) -> anyhow::Result<Store> {
    if !db.exists() {
        bail!("no database at {}", db.display());
    }
    open(db, None)
}

/// Opens an existing replica read-only; works beside the daemon that writes it.
pub fn open_reader(db: &Path) -> anyhow::Result<Store> {
    let node = Store::node_of(db)
        .with_context(|| format!("reading {}", db.display()))?
        .ok_or_else(|| anyhow::anyhow!("no replica database at {}", db.display()))?;
    Ok(Store::open_read_only(
        db,
        Schema::new(),
        Arc::new(SystemClock::new()),
        StoreConfig::new(&node),
    )?)
}

fn parse_assignment(s: &str) -> anyhow::Result<(String, FieldOp)> {
    if let Some((f, n)) = s.split_once("+=") {
        let n: i64 = n
            .trim()
            .parse()
            .with_context(|| format!("{s:?}: `+=` takes an integer"))?;
        return Ok((f.to_owned(), FieldOp::Increment(n)));
    }
    let Some((f, v)) = s.split_once('=') else {
        bail!("{s:?} is not an assignment: write field=value or field+=N");
    };
    let value = match serde_json::from_str::<serde_json::Value>(v) {
        Ok(j) => Value::from_json(&j),
        Err(_) => Value::Text(v.to_owned()),
    };
    Ok((f.to_owned(), FieldOp::Set(value)))
}

pub fn run(cmd: StoreCommand) -> anyhow::Result<()> {
    match cmd {
        StoreCommand::Put {
            db,
            node,
            collection,
            id,
            fields,
        } => {
            let mut store = open(&db, node.as_deref())?;
            let ops: Vec<(String, FieldOp)> = fields
                .iter()
                .map(|f| parse_assignment(f))
                .collect::<Result<_, _>>()?;
            let refs: Vec<(&str, FieldOp)> =
                ops.iter().map(|(f, o)| (f.as_str(), o.clone())).collect();
            let hlc = store.put(&collection, &id, &refs)?;
            println!("{collection}/{id} written at {hlc}");
        }
        StoreCommand::Get { db, collection, id } => {
            let store = open_reader(&db)?;
            match store.get(&collection, &id)? {
                Some(r) => println!("{}", serde_json::to_string_pretty(&r.to_json())?),
                None => bail!("no record {collection}/{id}"),
            }
        }
        StoreCommand::Hash { db, collections } => {
            let store = open_reader(&db)?;
            let only = (!collections.is_empty()).then_some(collections.as_slice());
            println!("{}", store.state_hash_of(only)?);
        }
        StoreCommand::List { db, collection } => {
            let store = open_reader(&db)?;
            for r in store.list(&collection)? {
                println!("{}", r.to_json());
            }
        }
        StoreCommand::Delete { db, collection, id } => {
            let mut store = open_existing(&db)?;
            if !store.delete(&collection, &id)? {
                bail!("no record {collection}/{id}");
            }
            println!("{collection}/{id} deleted");
        }
        StoreCommand::Watch {
            db,
            collection,
            from_start,
        } => {
            // Another process (the sync daemon) may be writing: follow the change log itself,
            // which every write extends, rather than in-process events.
            let store = open_reader(&db)?;
            let mut cursor = if from_start { 0 } else { store.log_end() };
            let stdout = std::io::stdout();
            loop {
                let batch = store.read_changes(cursor, &VersionVector::new(), 1000, 1 << 20)?;
                cursor = batch.upto_lseq;
                let mut seen = std::collections::BTreeSet::new();
                for c in &batch.changes {
                    if collection.as_ref().is_some_and(|w| *w != c.collection)
                        || c.collection.starts_with('$')
                    {
                        continue;
                    }
                    if !seen.insert((c.collection.clone(), c.record.clone())) {
                        continue;
                    }
                    let line = match store.get(&c.collection, &c.record)? {
                        Some(r) => r.to_json(),
                        None => {
                            serde_json::json!({"collection": c.collection, "id": c.record, "deleted": true})
                        }
                    };
                    let mut out = stdout.lock();
                    writeln!(out, "{line}")?;
                    out.flush()?;
                }
                if batch.complete.is_some() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        StoreCommand::Fill {
            db,
            node,
            collection,
            count,
        } => {
            let mut store = open(&db, node.as_deref())?;
            let stdout = std::io::stdout();
            for i in 0..count {
                let id = format!("w{i:08}");
                store.put(
                    &collection,
                    &id,
                    &[("seq", FieldOp::Set(Value::Int(i as i64)))],
                )?;
                // Printed only after `put` returned, i.e. after the commit is durable.
                let mut out = stdout.lock();
                writeln!(out, "{id}")?;
                out.flush()?;
            }
        }
    }
    Ok(())
}
