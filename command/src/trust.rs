//! Publishing the e-gates' trust list from headquarters.
//!
//! The keys that sign declaration QR codes, and the keys revoked, live as files in one folder
//! at headquarters (`[gates] trust_dir` in command.toml): one `KID.pub` per trusted key (as
//! `mizugiwa gate keys new` writes it) and `revoked.txt` (one key id per line, a reason after
//! it, `#` starts a comment). The publisher mirrors the folder into the replicated store, so
//! every gate at every airport receives it through sync and keeps verifying offline:
//!
//! * `gate_keys/<kid>`: `key` (the file's text, parsed by the gate), `published_ms`; a key whose
//!   file is removed is deleted.
//! * `gate_revoked/<kid>`: `reason`, `revoked_ms`; never deleted (un-revoking is a new key).
//! * `gate_lists/current`: `published_ms`, `keys`, `revoked`, `publisher`, rewritten every
//!   `publish_secs` even when nothing changed. A gate measures the staleness of its lists
//!   from this heartbeat: it is how a gate knows it has not heard from headquarters.
//!
//! The publisher does not interpret the key files (that is the gate's job, with
//! `mizugiwa-gate-edge`); it refuses names that are not valid key ids and files over a size
//! limit, and a bad file never stops the others from being published.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use mizugiwa_sync::{FieldOp, Store, Value};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::records::{GATE_KEYS, GATE_LISTS, GATE_REVOKED};

/// The id of the list heartbeat record in `gate_lists`.
pub const CURRENT_LIST: &str = "current";

/// Key files larger than this are refused: a public key and its metadata are a few hundred bytes.
const MAX_KEY_FILE: u64 = 16 * 1024;

/// The `[gates]` section of command.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSection {
    /// Folder of `KID.pub` files and `revoked.txt`.
    pub trust_dir: PathBuf,
    /// Seconds between publications (default 300). Gates refuse lists older than their
    /// configured maximum age, so this must be well below it.
    #[serde(default = "default_publish_secs")]
    pub publish_secs: u64,
}

fn default_publish_secs() -> u64 {
    300
}

/// What one publication found in the folder.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Trusted key ids.
    pub keys: Vec<String>,
    /// Revoked key ids.
    pub revoked: Vec<String>,
    /// Files skipped, with why.
    pub skipped: Vec<String>,
}

/// A key id as it may appear in a file name and a record id.
pub fn valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= 64
        && kid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// What the trust folder holds.
#[derive(Debug, Default)]
pub struct TrustFolder {
    /// Trusted keys: kid → the key file's text.
    pub keys: BTreeMap<String, String>,
    /// Revocations: kid → reason.
    pub revoked: BTreeMap<String, String>,
    /// Files and lines that were not used, each with why.
    pub skipped: Vec<String>,
}

/// Reads the folder: trusted keys and revocations.
pub fn read_dir(dir: &Path) -> anyhow::Result<TrustFolder> {
    let mut keys = BTreeMap::new();
    let mut skipped = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading trust folder {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let Some(kid) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pub"))
        else {
            continue;
        };
        if !valid_kid(kid) {
            skipped.push(format!("{}: not a valid key id", path.display()));
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_KEY_FILE => {
                skipped.push(format!(
                    "{}: larger than {MAX_KEY_FILE} bytes",
                    path.display()
                ));
                continue;
            }
            Err(e) => {
                skipped.push(format!("{}: {e}", path.display()));
                continue;
            }
            Ok(_) => {}
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                keys.insert(kid.to_owned(), text);
            }
            Err(e) => skipped.push(format!("{}: {e}", path.display())),
        }
    }
    let mut revoked = BTreeMap::new();
    let list = dir.join("revoked.txt");
    if list.exists() {
        let text = std::fs::read_to_string(&list)
            .with_context(|| format!("reading {}", list.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (kid, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            if valid_kid(kid) {
                revoked.insert(kid.to_owned(), reason.trim().to_owned());
            } else {
                skipped.push(format!(
                    "{} line {}: not a valid key id",
                    list.display(),
                    n + 1
                ));
            }
        }
    }
    Ok(TrustFolder {
        keys,
        revoked,
        skipped,
    })
}

/// Mirrors the folder into the store once.
pub fn publish(
    store: &mut Store,
    dir: &Path,
    node: &str,
    now_ms: u64,
) -> anyhow::Result<Published> {
    let TrustFolder {
        keys,
        revoked,
        skipped,
    } = read_dir(dir)?;
    let now = Value::Int(now_ms as i64);
    for (kid, text) in &keys {
        let unchanged = store
            .get(GATE_KEYS, kid)?
            .is_some_and(|r| r.get("key") == Some(&Value::Text(text.clone())));
        if !unchanged {
            store.put(
                GATE_KEYS,
                kid,
                &[
                    ("key", FieldOp::Set(Value::Text(text.clone()))),
                    ("published_ms", FieldOp::Set(now.clone())),
                ],
            )?;
        }
    }
    for record in store.list(GATE_KEYS)? {
        if !keys.contains_key(&record.id) {
            store.delete(GATE_KEYS, &record.id)?;
        }
    }
    for (kid, reason) in &revoked {
        if store.get(GATE_REVOKED, kid)?.is_none() {
            store.put(
                GATE_REVOKED,
                kid,
                &[
                    ("reason", FieldOp::Set(Value::Text(reason.clone()))),
                    ("revoked_ms", FieldOp::Set(now.clone())),
                ],
            )?;
        }
    }
    let revoked_all: Vec<String> = store
        .list(GATE_REVOKED)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    store.put(
        GATE_LISTS,
        CURRENT_LIST,
        &[
            ("published_ms", FieldOp::Set(now)),
            ("keys", FieldOp::Set(Value::Int(keys.len() as i64))),
            (
                "revoked",
                FieldOp::Set(Value::Int(revoked_all.len() as i64)),
            ),
            ("publisher", FieldOp::Set(node.into())),
        ],
    )?;
    Ok(Published {
        keys: keys.into_keys().collect(),
        revoked: revoked_all,
        skipped,
    })
}

/// Publishes the folder now and then every `publish_secs` until the daemon stops.
pub fn start(
    store: Arc<Mutex<Store>>,
    node: String,
    cfg: TrustSection,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(cfg.publish_secs.max(1)));
        let mut last_report = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
            let (store, dir, node) = (store.clone(), cfg.trust_dir.clone(), node.clone());
            let result = tokio::task::spawn_blocking(move || {
                let mut s = store
                    .lock()
                    .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
                let now = s.now_ms();
                publish(&mut s, &dir, &node, now)
            })
            .await;
            match result {
                Ok(Ok(p)) => {
                    for why in &p.skipped {
                        tracing::warn!(%why, "trust folder entry skipped");
                    }
                    let report = (p.keys.clone(), p.revoked.clone());
                    if last_report.as_ref() != Some(&report) {
                        tracing::info!(keys = ?p.keys, revoked = ?p.revoked, "gate trust list published");
                        last_report = Some(report);
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %format!("{e:#}"), "gate trust list not published")
                }
                Err(e) => tracing::error!(error = %e, "gate trust list publisher failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mizugiwa_sync::{ManualClock, StoreConfig};

    fn store() -> Store {
        Store::open_in_memory(
            crate::records::schema(),
            Arc::new(ManualClock::new(1_000)),
            StoreConfig::new("hq"),
        )
        .unwrap()
    }

    #[test]
    fn the_folder_is_mirrored_and_removed_keys_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k1.pub"), "key one").unwrap();
        std::fs::write(dir.path().join("k2.pub"), "key two").unwrap();
        std::fs::write(dir.path().join("bad id!.pub"), "x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        std::fs::write(
            dir.path().join("revoked.txt"),
            "# lost laptop\nk0 stolen 2026-11-01\n\n",
        )
        .unwrap();
        let mut s = store();
        let p = publish(&mut s, dir.path(), "hq", 5_000).unwrap();
        assert_eq!(p.keys, ["k1", "k2"]);
        assert_eq!(p.revoked, ["k0"]);
        assert_eq!(p.skipped.len(), 1, "{:?}", p.skipped);
        let k1 = s.get(GATE_KEYS, "k1").unwrap().unwrap();
        assert_eq!(k1.get("key"), Some(&Value::Text("key one".into())));
        let r = s.get(GATE_REVOKED, "k0").unwrap().unwrap();
        assert_eq!(
            r.get("reason"),
            Some(&Value::Text("stolen 2026-11-01".into()))
        );
        let list = s.get(GATE_LISTS, CURRENT_LIST).unwrap().unwrap();
        assert_eq!(list.get("published_ms"), Some(&Value::Int(5_000)));

        std::fs::remove_file(dir.path().join("k2.pub")).unwrap();
        let p = publish(&mut s, dir.path(), "hq", 6_000).unwrap();
        assert_eq!(p.keys, ["k1"]);
        assert!(s.get(GATE_KEYS, "k2").unwrap().is_none());
        let list = s.get(GATE_LISTS, CURRENT_LIST).unwrap().unwrap();
        assert_eq!(list.get("published_ms"), Some(&Value::Int(6_000)));
    }

    #[test]
    fn a_missing_folder_is_an_error_that_changes_nothing() {
        let mut s = store();
        assert!(publish(&mut s, Path::new("/nonexistent/trust"), "hq", 1).is_err());
        assert!(s.list(GATE_LISTS).unwrap().is_empty());
    }
}
