//! `mizugiwa command`, `mizugiwa node`, `mizugiwa user` and `mizugiwa audit`: the daemons and
//! their operator tools.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The daemon's TOML config (see docs/command.toml and docs/site.toml).
    #[arg(long)]
    config: PathBuf,
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub fn command(args: DaemonArgs) -> anyhow::Result<()> {
    let cfg = mizugiwa_command::CommandConfig::load(&args.config)?;
    runtime()?.block_on(mizugiwa_command::run(cfg, ctrl_c()))
}

pub fn node(args: DaemonArgs) -> anyhow::Result<()> {
    let cfg = mizugiwa_field_node::SiteConfig::load(&args.config)?;
    runtime()?.block_on(mizugiwa_field_node::run(cfg, ctrl_c()))
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Read a password from stdin and print its Argon2id hash for a `[[users]]` entry.
    Hash,
}

pub fn user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Hash => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                anyhow::bail!("empty password on stdin");
            }
            println!("{}", mizugiwa_command::auth::hash_password(password)?);
            Ok(())
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of an audit log (DATA_DIR/audit.jsonl).
    Verify {
        /// The log file.
        path: PathBuf,
    },
}

pub fn audit(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify { path } => {
            let v = mizugiwa_command::audit::verify(&path)?;
            println!(
                "{}: {} entries, chain intact, head {}",
                path.display(),
                v.entries,
                v.head
            );
            Ok(())
        }
    }
}
