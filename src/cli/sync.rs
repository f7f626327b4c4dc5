//! `mizugiwa sync`: run replication with peers over QUIC, and show its status.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use mizugiwa_sync::driver::{self, PeerAddr, SyncConfig};
use mizugiwa_sync::pki::{self, NodeIdentity};
use serde::Deserialize;

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Run a replica and sync it with its peers until Ctrl-C.
    Run {
        /// The replica's TOML config (see `docs/sync.toml`).
        #[arg(long)]
        config: PathBuf,
    },
    /// Show peers, lag per peer and last contact of a running replica.
    Status {
        /// The replica database (its daemon writes DB.sync-status.json).
        #[arg(long)]
        db: PathBuf,
    },
}

/// A replica's config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// Node name; must match its certificate.
    pub node: String,
    /// SQLite database file.
    pub db: PathBuf,
    /// UDP address to listen on, e.g. "127.0.0.1:7400".
    pub listen: SocketAddr,
    /// Folder holding ca.crt, NODE.crt and NODE.key.
    pub pki_dir: PathBuf,
    /// Refuse changes stamped more than this ahead of local time (default 60 s).
    #[serde(default = "default_skew")]
    pub max_clock_skew_ms: u64,
    /// Members silent longer than this stop holding back garbage collection (default 168 h).
    #[serde(default = "default_horizon")]
    pub collection_horizon_hours: u64,
    /// Peers to dial.
    #[serde(default)]
    pub peers: Vec<PeerAddr>,
}

fn default_skew() -> u64 {
    60_000
}

fn default_horizon() -> u64 {
    168
}

fn status_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".sync-status.json");
    PathBuf::from(p)
}

pub fn run(cmd: SyncCommand) -> anyhow::Result<()> {
    match cmd {
        SyncCommand::Run { config } => {
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("reading {}", config.display()))?;
            let cfg: ReplicaConfig =
                toml::from_str(&text).with_context(|| format!("parsing {}", config.display()))?;
            let identity = NodeIdentity::load_dir(&cfg.pki_dir, &cfg.node)?;
            let ca = pki::load_ca(&cfg.pki_dir.join("ca.crt"))?;
            let mut store_cfg = mizugiwa_sync::StoreConfig::new(&cfg.node);
            store_cfg.max_clock_skew_ms = cfg.max_clock_skew_ms;
            store_cfg.collection_horizon_ms = cfg.collection_horizon_hours * 3600 * 1000;
            let store = mizugiwa_sync::Store::open(
                &cfg.db,
                mizugiwa_sync::Schema::new(),
                Arc::new(mizugiwa_sync::SystemClock::new()),
                store_cfg,
            )?;
            let store = Arc::new(Mutex::new(store));
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let handle = driver::start(store.clone(), &identity, ca, SyncConfig::new(cfg.listen, cfg.peers))?;
                println!("{} syncing on {}", cfg.node, handle.local_addr());
                let status_file = status_path(&cfg.db);
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            let vv = store.lock().map(|s| s.version_vector().to_string()).unwrap_or_default();
                            let doc = serde_json::json!({"node": cfg.node, "version_vector": vv, "peers": handle.status()});
                            let tmp = status_file.with_extension("tmp");
                            if std::fs::write(&tmp, serde_json::to_vec_pretty(&doc)?).is_ok() {
                                let _ = std::fs::rename(&tmp, &status_file);
                            }
                        }
                        _ = tokio::signal::ctrl_c() => break,
                    }
                }
                handle.shutdown().await;
                anyhow::Ok(())
            })?;
        }
        SyncCommand::Status { db } => {
            let path = status_path(&db);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "no status at {}: is `mizugiwa sync run` running for this database?",
                    path.display()
                )
            })?;
            let doc: serde_json::Value = serde_json::from_str(&text)?;
            println!(
                "node {}  seen {}",
                doc["node"].as_str().unwrap_or("?"),
                doc["version_vector"].as_str().unwrap_or("?")
            );
            println!(
                "{:<16} {:<10} {:>12} {:>12} {:>20}  last error",
                "peer", "link", "lag changes", "lag entries", "last contact (ms)"
            );
            for p in doc["peers"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{:<16} {:<10} {:>12} {:>12} {:>20}  {}",
                    p["peer"].as_str().unwrap_or("?"),
                    if p["connected"].as_bool() == Some(true) {
                        "up"
                    } else {
                        "down"
                    },
                    p["lag_changes"].to_string(),
                    p["lag_entries"].to_string(),
                    p["last_contact_ms"].to_string(),
                    p["last_error"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}
