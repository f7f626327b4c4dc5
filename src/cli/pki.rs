//! `mizugiwa pki`: the deployment's own certificate authority.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use mizugiwa_sync::pki::{self, Role};

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create the deployment CA (ca.crt, ca.key) in DIR.
    Init {
        /// Folder for the CA files.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// Deployment name, shown in the CA's name.
        #[arg(long, default_value = "mizugiwa")]
        deployment: String,
    },
    /// Issue a node certificate signed by the CA.
    Issue {
        /// Folder holding the CA.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// Node name (lowercase letters, digits, '-').
        #[arg(long)]
        node: String,
        /// site, command or gate.
        #[arg(long)]
        role: Role,
        /// Where to write NODE.crt and NODE.key (default: the CA folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Revoke a certificate serial or a node name; the revocation replicates to every node
    /// through the store, and their TLS verifiers refuse it from then on.
    Revoke {
        /// The replica database to record the revocation in.
        #[arg(long)]
        db: PathBuf,
        /// Certificate serial (hex) or node name.
        target: String,
        /// Why (kept with the revocation).
        #[arg(long, default_value = "revoked by operator")]
        reason: String,
    },
}

pub fn run(cmd: PkiCommand) -> anyhow::Result<()> {
    match cmd {
        PkiCommand::Init { dir, deployment } => {
            let paths = pki::init_ca(&dir, &deployment)?;
            println!("CA certificate: {}", paths.cert.display());
            println!("CA key:         {} (keep it offline)", paths.key.display());
        }
        PkiCommand::Issue {
            dir,
            node,
            role,
            out,
        } => {
            let out = out.unwrap_or_else(|| dir.clone());
            let issued = pki::issue(&dir, &out, &node, role)?;
            println!("node:        {node} ({role})");
            println!("certificate: {}", issued.cert.display());
            println!("key:         {}", issued.key.display());
            println!("serial:      {}", issued.serial);
        }
        PkiCommand::Revoke { db, target, reason } => {
            let mut store = super::store::open_existing(&db)?;
            store
                .revoke(&target, &reason)
                .context("recording the revocation")?;
            println!("revoked {target}: {reason} (replicates with the next sync)");
        }
    }
    Ok(())
}
