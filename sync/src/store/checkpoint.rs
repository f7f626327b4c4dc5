//! Copying the write-ahead log into the database file off the writer's path.
//!
//! SQLite's default checkpoints the WAL inside the commit that pushes it past 1000 pages: that
//! one commit then writes every page back into the database file and fsyncs it. At a busy
//! site (a gate hall records a passage per commit, each touching about a dozen pages) that is
//! several checkpoints a second, and the unlucky commits took 20-80 ms where the others take
//! under one, on the very path a gate waits on. So the writer never checkpoints (its
//! `wal_autocheckpoint` is 0) and a thread with its own connection runs passive checkpoints
//! every [`EVERY`]: passive checkpoints take no lock a writer needs, so commits go on while it
//! copies. The WAL still stays small: SQLite rewinds it at the first commit after a checkpoint
//! has copied everything, which at this pace is a few megabytes.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// How often the checkpointer copies what was committed.
const EVERY: Duration = Duration::from_millis(100);

/// A running checkpointer; stops (after a last checkpoint) when dropped.
pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (already in WAL mode).
    pub(crate) fn start(path: PathBuf) -> std::io::Result<Checkpointer> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let conn = match Connection::open(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "checkpointer could not open the database; the WAL will only be copied when the store closes");
                        return;
                    }
                };
                let _ = conn.busy_timeout(Duration::from_secs(5));
                // A failing checkpoint (a full disk) is logged when it starts failing and when
                // it recovers, not ten times a second.
                let mut failing = false;
                loop {
                    let last = matches!(
                        stopped.recv_timeout(EVERY),
                        Ok(()) | Err(RecvTimeoutError::Disconnected)
                    );
                    let t = Instant::now();
                    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                    }) {
                        Ok((log, copied)) => {
                            if std::mem::take(&mut failing) {
                                tracing::info!("checkpoints succeed again");
                            }
                            tracing::trace!(log, copied, ms = t.elapsed().as_millis() as u64, "checkpoint")
                        }
                        Err(e) if !failing => {
                            failing = true;
                            tracing::warn!(error = %e, "checkpoint failed; the WAL grows until one succeeds (retrying every 100 ms)");
                        }
                        Err(_) => {}
                    }
                    if last {
                        return;
                    }
                }
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
