//! Read-only connections to the daemon's replica, for everything that only reads it.
//!
//! The replica has one writer behind one mutex: the sync sessions apply batches through it, the
//! gates record passages through it, operators' acks go through it. A dashboard snapshot of a
//! large replica used to read under that same mutex for seconds (31 s for 146 MB at HQ in the
//! ingest benchmark), and the event pump read every changed record under it: everything behind
//! the writer waited. In WAL mode SQLite lets readers on their own connections see every
//! committed write while the writer goes on, so readers take one of these instead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mizugiwa_sync::Store;

/// A few read-only handles on the replica (or, for an in-memory replica, the writer itself).
pub struct Readers {
    pool: Vec<Mutex<Store>>,
    next: AtomicUsize,
    writer: Arc<Mutex<Store>>,
}

impl Readers {
    /// Opens `n` read-only handles beside `writer`'s replica; none for an in-memory replica,
    /// whose reads then go through the writer.
    pub fn open(writer: &Arc<Mutex<Store>>, n: usize) -> anyhow::Result<Readers> {
        let mut pool = Vec::with_capacity(n);
        {
            let w = writer.lock().map_err(|_| poisoned())?;
            for _ in 0..n {
                match w.reader()? {
                    Some(r) => pool.push(Mutex::new(r)),
                    None => break,
                }
            }
        }
        Ok(Readers {
            pool,
            ..Readers::writer_only(writer)
        })
    }

    /// No read-only handles: every read goes through the writer.
    fn writer_only(writer: &Arc<Mutex<Store>>) -> Readers {
        Readers {
            pool: Vec::new(),
            next: AtomicUsize::new(0),
            writer: writer.clone(),
        }
    }

    /// [`Readers::open`], or when that fails (logged), reads through the writer.
    pub fn open_or_writer(writer: &Arc<Mutex<Store>>, n: usize) -> Readers {
        Readers::open(writer, n).unwrap_or_else(|e| {
            tracing::warn!(error = %format!("{e:#}"), "no read-only connection to the replica; reads go through the writer");
            Readers::writer_only(writer)
        })
    }

    /// Runs `f` on a free reader (or, when all are busy, waits for one in turn).
    pub fn read<T>(&self, f: impl FnOnce(&Store) -> T) -> anyhow::Result<T> {
        if self.pool.is_empty() {
            let w = self.writer.lock().map_err(|_| poisoned())?;
            return Ok(f(&w));
        }
        for r in &self.pool {
            if let Ok(r) = r.try_lock() {
                return Ok(f(&r));
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        let r = self.pool[i].lock().map_err(|_| poisoned())?;
        Ok(f(&r))
    }
}

fn poisoned() -> anyhow::Error {
    anyhow::anyhow!("store lock poisoned by an earlier panic")
}
