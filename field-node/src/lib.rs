//! The site daemon (`mizugiwa node`): one port, airport or coast.
//!
//! It runs the shared daemon core of `mizugiwa-command` ([`mizugiwa_command::runtime`]: the
//! local replica, sync with the command center and neighbouring sites, the dashboard in site
//! mode, the node's status record) and adds the site's [`pipeline`]: sources (an inbox folder,
//! AIS feeds, X-ray and NQR scanners, later drones) whose observations become records.
//!
//! At ports and airports, [`scanner`] sources turn X-ray scans and NQR screenings dropped into
//! folders into inspection and screening records (and alerts), with `mizugiwa-inspect`.
//!
//! At an airport, [`gate`] serves the e-gates' API: decisions with `mizugiwa-gate-edge`,
//! recorded durably, replays caught across airports through the replicated store, every
//! decision in the site's signed journal; [`heartbeat`] follows the gates' heartbeats on the
//! bus and records when one goes silent.
//!
//! The [`bus`] (zenoh, peer mode, explicit endpoints) carries live data on the site's LAN.
//! Live data stays live: only downsampled breadcrumbs and current state become records, so
//! that sync carries what the picture needs and not every sensor sample.

pub mod ais;
pub mod bus;
pub mod config;
pub mod drone_video;
pub mod drones;
pub mod gate;
pub mod heartbeat;
pub mod pipeline;
pub mod sar;
pub mod scanner;

pub use config::{run, SiteConfig};
