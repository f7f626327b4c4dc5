//! `command.toml` and the command center daemon.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::auth::UserConfig;
use crate::gateway::{self, TakSection};
use crate::runtime::{HttpSection, Location, Runtime, RuntimeConfig, SyncSection};
use crate::trust::{self, TrustSection};
use crate::web::Mode;

/// The command center's config file (documented example: `docs/command.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Node name; must match its certificate (issued with `--role command`).
    pub node: String,
    /// Folder of the replica database and the audit log.
    pub data_dir: PathBuf,
    /// Folder holding `ca.crt`, `NODE.crt` and `NODE.key`.
    pub pki_dir: PathBuf,
    /// Where headquarters is, for the map.
    #[serde(default = "hq_location")]
    pub location: Location,
    /// Seconds between status records (default 5).
    #[serde(default = "default_status_secs")]
    pub status_interval_secs: u64,
    /// Sync settings.
    pub sync: SyncSection,
    /// Dashboard and API.
    pub http: HttpSection,
    /// Operators.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// The Cursor-on-Target gateway to a TAK server, if any.
    pub tak: Option<TakSection>,
    /// The e-gates' trust list, published from a folder, if this center publishes it.
    #[serde(default)]
    pub gates: Option<TrustSection>,
}

fn hq_location() -> Location {
    Location {
        kind: "command".into(),
        lat: 35.6762,
        lon: 139.6503,
    }
}

fn default_status_secs() -> u64 {
    5
}

impl CommandConfig {
    /// Reads and checks a config file. Relative paths are taken from the file's folder.
    pub fn load(path: &Path) -> anyhow::Result<CommandConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut cfg: CommandConfig =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.data_dir = base.join(&cfg.data_dir);
        cfg.pki_dir = base.join(&cfg.pki_dir);
        if let Some(g) = cfg.gates.as_mut() {
            g.trust_dir = base.join(&g.trust_dir);
        }
        if let Some(tls) = cfg.tak.as_mut().and_then(|t| t.tls.as_mut()) {
            for p in [&mut tls.ca, &mut tls.cert, &mut tls.key] {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }

    /// The runtime this config describes.
    pub fn runtime(&self) -> RuntimeConfig {
        RuntimeConfig {
            node: self.node.clone(),
            data_dir: self.data_dir.clone(),
            pki_dir: self.pki_dir.clone(),
            sync: self.sync.clone(),
            http: self.http.clone(),
            users: self.users.clone(),
            mode: Mode::Command,
            location: self.location.clone(),
            status_interval: Duration::from_secs(self.status_interval_secs.max(1)),
        }
    }
}

/// Runs the command center until `shutdown` resolves.
pub async fn run(
    cfg: CommandConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let runtime = Runtime::start(cfg.runtime()).await?;
    let tak = cfg.tak.as_ref().map(|t| {
        tracing::info!(addr = %t.addr, tls = t.tls.is_some(), "Cursor-on-Target gateway to TAK");
        gateway::start(runtime.store.clone(), t)
    });
    let publisher = cfg.gates.as_ref().map(|g| {
        tracing::info!(dir = %g.trust_dir.display(), "publishing the e-gate trust list");
        trust::start(
            runtime.store.clone(),
            cfg.node.clone(),
            g.clone(),
            runtime.stopped(),
        )
    });
    println!(
        "command center {} up: dashboard http://{}  sync {}",
        cfg.node,
        runtime.http_addr(),
        runtime.sync_addr()
    );
    shutdown.await;
    tracing::info!("shutting down");
    if let Some(g) = tak {
        g.shutdown().await;
    }
    runtime.shutdown().await;
    if let Some(p) = publisher {
        let _ = p.await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_documented_command_config_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/command.toml");
        let cfg = super::CommandConfig::load(&path).unwrap();
        assert_eq!(cfg.node, "hq");
        assert_eq!(cfg.users.len(), 1);
    }
}
