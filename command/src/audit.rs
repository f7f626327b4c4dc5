//! The append-only, hash-chained audit log of operator actions (logins, acknowledgements,
//! assignments, comments).
//!
//! One JSON object per line. Each entry carries the hash of the previous one, and its own
//! hash covers every other field, so removing, reordering or editing any line breaks the chain
//! from that line on, and [`verify`] names the first line that does not hold. Appends are
//! flushed to disk before the action they record is reported done.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The hash the first entry chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 1.
    pub seq: u64,
    /// Wall time, ms since the epoch.
    pub at_ms: u64,
    /// Who did it (the user name, or the claimed name of a failed login).
    pub user: String,
    /// What: `login`, `login_failed`, `logout`, `ack`, `resolve`, `assign`, `comment`, `raise`.
    pub action: String,
    /// What it was done to (an alert id, ...), empty if nothing.
    pub target: String,
    /// Details (the assignee, the comment text, the client address, ...).
    pub detail: serde_json::Value,
    /// Hash of the previous entry ([`GENESIS`] for the first).
    pub prev: String,
    /// Hash of this entry: BLAKE3 over its canonical encoding without this field.
    pub hash: String,
}

/// The fields a hash covers, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    at_ms: u64,
    user: &'a str,
    action: &'a str,
    target: &'a str,
    detail: &'a serde_json::Value,
    prev: &'a str,
}

impl AuditEntry {
    fn compute_hash(&self) -> String {
        let canonical = serde_json::to_vec(&Hashed {
            seq: self.seq,
            at_ms: self.at_ms,
            user: &self.user,
            action: &self.action,
            target: &self.target,
            detail: &self.detail,
            prev: &self.prev,
        })
        .expect("audit entries always serialise");
        blake3::hash(&canonical).to_hex().to_string()
    }
}

/// Why the log cannot be trusted or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading or writing the file failed.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line does not hold: tampered, truncated or out of order.
    #[error("audit log {path} is broken at line {line}: {what}")]
    Broken {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        what: String,
    },
}

/// The result of verifying a whole log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Entries checked.
    pub entries: u64,
    /// Hash of the last entry (what a later audit can pin).
    pub head: String,
}

/// Checks every line of the log at `path`. A missing file is an empty, valid log.
pub fn verify(path: &Path) -> Result<Verified, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Verified {
                entries: 0,
                head: GENESIS.into(),
            })
        }
        Err(e) => return Err(io(e)),
    };
    let mut prev = GENESIS.to_owned();
    let mut seq = 0;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        let broken = |what: String| AuditError::Broken {
            path: path.to_owned(),
            line: i + 1,
            what,
        };
        let entry: AuditEntry =
            serde_json::from_str(&line).map_err(|e| broken(format!("not an audit entry: {e}")))?;
        if entry.seq != seq + 1 {
            return Err(broken(format!(
                "sequence {} where {} was expected (a line was removed or moved)",
                entry.seq,
                seq + 1
            )));
        }
        if entry.prev != prev {
            return Err(broken(
                "does not chain to the line before it (a line was removed, moved or edited)".into(),
            ));
        }
        if entry.compute_hash() != entry.hash {
            return Err(broken(
                "its content does not match its hash (edited)".into(),
            ));
        }
        prev = entry.hash;
        seq = entry.seq;
    }
    Ok(Verified {
        entries: seq,
        head: prev,
    })
}

/// An open log, appending after its verified head.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    seq: u64,
    head: String,
}

impl AuditLog {
    /// Opens (or creates) the log, verifying the chain first: a daemon does not append to a
    /// log it cannot vouch for.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let verified = verify(path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| AuditError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(AuditLog {
            path: path.to_owned(),
            file,
            seq: verified.entries,
            head: verified.head,
        })
    }

    /// Appends one entry and syncs it to disk.
    pub fn append(
        &mut self,
        at_ms: u64,
        user: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<AuditEntry, AuditError> {
        let mut entry = AuditEntry {
            seq: self.seq + 1,
            at_ms,
            user: user.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail,
            prev: self.head.clone(),
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        let mut line = serde_json::to_vec(&entry).expect("audit entries always serialise");
        line.push(b'\n');
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.seq = entry.seq;
        self.head = entry.hash.clone();
        Ok(entry)
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> Result<Vec<AuditEntry>, AuditError> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| AuditError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(n: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        for i in 0..n {
            log.append(
                1000 + i,
                "duty",
                "ack",
                &format!("a{i}"),
                serde_json::json!({}),
            )
            .unwrap();
        }
        (dir, path)
    }

    #[test]
    fn an_intact_log_verifies_and_reopens_after_its_head() {
        let (_d, path) = log_with(5);
        assert_eq!(verify(&path).unwrap().entries, 5);
        let mut log = AuditLog::open(&path).unwrap();
        let e = log
            .append(
                9,
                "admin",
                "login",
                "",
                serde_json::json!({"from": "127.0.0.1"}),
            )
            .unwrap();
        assert_eq!(e.seq, 6);
        assert_eq!(verify(&path).unwrap().entries, 6);
    }

    #[test]
    fn any_edit_removal_or_reordering_is_found_at_its_line() {
        let (_d, path) = log_with(5);
        let lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let write = |ls: &[String]| std::fs::write(&path, ls.join("\n") + "\n").unwrap();

        let mut edited = lines.clone();
        edited[2] = edited[2].replace("\"duty\"", "\"admin\"");
        write(&edited);
        let err = verify(&path).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("hash"), "{err}");

        let mut removed = lines.clone();
        removed.remove(1);
        write(&removed);
        assert!(verify(&path).unwrap_err().to_string().contains("line 2"));

        let mut swapped = lines.clone();
        swapped.swap(3, 4);
        write(&swapped);
        assert!(verify(&path).unwrap_err().to_string().contains("line 4"));

        // A rewritten chain needs every later hash recomputed; a truncated tail is the one
        // change a hash chain cannot show by itself, which is why `verify` reports the head.
        write(&lines[..3]);
        assert_eq!(verify(&path).unwrap().entries, 3);

        write(&lines);
        let mut garbage = lines.clone();
        garbage.push("{not json".into());
        write(&garbage);
        assert!(verify(&path).unwrap_err().to_string().contains("line 6"));
        assert!(
            AuditLog::open(&path).is_err(),
            "a broken log is not appended to"
        );
    }
}
