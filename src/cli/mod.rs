//! Command-line interface: `mizugiwa <subcommand>`.

mod ais;
mod daemons;
mod demo;
mod drill;
mod drone;
mod drone_frames;
mod drone_link;
mod gate;
mod inspect;
mod pki;
mod sat;
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
#[allow(clippy::enum_variant_names)] // `mizugiwa command` is the command center's subcommand.
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
    /// Run the command center: sync hub, dashboard and API (`--config command.toml`).
    Command(daemons::DaemonArgs),
    /// Run a field node for one site (`--config site.toml`).
    Node(daemons::DaemonArgs),
    /// Operator accounts: hash a password for the config.
    #[command(subcommand)]
    User(daemons::UserCommand),
    /// The audit log: verify its hash chain.
    #[command(subcommand)]
    Audit(daemons::AuditCommand),
    /// BCP drills: run a scenario of faults against real processes and check the invariants.
    #[command(subcommand)]
    Drill(drill::DrillCommand),
    /// Airport e-gates: signing keys, test declaration QR codes, offline verification and
    /// decisions, passport zones, allowances and duty.
    #[command(subcommand)]
    Gate(gate::GateCommand),
    /// Coastal drone patrol: plan corridor scans and surveys as QGroundControl `.plan` files,
    /// upload them over MAVLink 2, watch and command vehicles, simulate vehicles, find vessels
    /// and people in a sortie's video.
    #[command(subcommand)]
    Drone(drone::DroneCommand),
    /// Run a whole deployment on this machine: a command center and three sites on loopback.
    Demo(demo::DemoArgs),
    /// Dual-energy X-ray container scans: score a scan against its manifest (risk, reasons,
    /// heatmap), generate test scans.
    #[command(subcommand)]
    Xray(inspect::XrayCommand),
    /// NQR screening for explosives: simulate a screening, detect in a signal file.
    #[command(subcommand)]
    Nqr(inspect::NqrCommand),
    /// AIS feeds: decode NMEA lines to JSON, listen to a receiver over TCP or UDP, follow its
    /// tracks and run the behaviour rules (gaps, spoofing, encounters, loitering).
    #[command(subcommand)]
    Ais(ais::AisCommand),
    /// Maritime picture: detect vessels in SAR scenes (CFAR through GDAL), correlate them with
    /// AIS and report the dark ones.
    #[command(subcommand)]
    Sat(sat::SatCommand),
}

/// For commands that print records and end: a closed pipe (`... | head`) ends the program
/// quietly, as for any Unix filter, instead of a panic in `println!`. Not for the daemons,
/// whose sockets must see EPIPE as an error rather than be killed by the signal.
fn quiet_on_closed_pipe() {
    // SAFETY: signal(2) with the default disposition, before this command starts any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    if matches!(
        cli.command,
        Command::Store(_) | Command::Gate(_) | Command::Audit(_)
    ) {
        quiet_on_closed_pipe();
    }
    match cli.command {
        Command::Pki(c) => pki::run(c),
        Command::Store(c) => store::run(c),
        Command::Sync(c) => sync::run(c),
        Command::Demo(a) => demo::run(a),
        Command::Drill(c) => drill::run(c),
        Command::Gate(c) => gate::run(c),
        Command::Drone(c) => drone::run(c),
        Command::Command(a) => daemons::command(a),
        Command::Node(a) => daemons::node(a),
        Command::User(c) => daemons::user(c),
        Command::Audit(c) => daemons::audit(c),
        Command::Xray(c) => inspect::run_xray(c),
        Command::Nqr(c) => inspect::run_nqr(c),
        Command::Ais(c) => ais::run(c),
        Command::Sat(c) => sat::run(c),
    }
}
