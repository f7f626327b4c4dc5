//! Command-line interface: `mizugiwa <subcommand>`.

mod demo;
mod pki;
mod store;
mod sync;

use clap::{Parser, Subcommand};

/// Mizugiwa: resilient, offline-first field operations for a customs service.
#[derive(Debug, Parser)]
#[command(name = "mizugiwa", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The deployment's certificate authority: init, issue, revoke.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Read and write records in a replica by hand.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Run replication, or show its status.
    #[command(subcommand)]
    Sync(sync::SyncCommand),
    /// Run a whole deployment on this machine: a command center and three sites on loopback.
    Demo(demo::DemoArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Pki(c) => pki::run(c),
        Command::Store(c) => store::run(c),
        Command::Sync(c) => sync::run(c),
        Command::Demo(a) => demo::run(a),
    }
}
