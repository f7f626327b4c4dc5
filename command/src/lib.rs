//! The command center (`mizugiwa command`) and the parts every daemon shares.
//!
//! * [`runtime`] — what every daemon runs: its replica, the sync driver, the dashboard and API
//!   ([`web`]), and its own status record. `mizugiwa-field-node` builds the site daemon on it.
//! * [`web`] — the dashboard (embedded [`assets`]), the HTTP API, live events with resume
//!   ([`events`]), operators and roles ([`auth`]), the hash-chained [`audit`] log and the
//!   Prometheus [`metrics`]; its reads go through [`readers`], read-only connections that never
//!   wait for the replica's writer.
//! * [`records`] — the deployment's collections and how their fields merge.
//! * [`cot`], [`tak`], [`gateway`] — Cursor-on-Target: the picture out to a TAK server, TAK
//!   clients' events in as records.
//! * [`trust`] — the e-gates' trust list, published from a folder at headquarters.
//! * [`config`] — `command.toml`, and [`run`], the command center daemon.

pub mod assets;
pub mod audit;
pub mod auth;
pub mod config;
pub mod cot;
pub mod events;
pub mod gate_journal;
pub mod gateway;
pub mod metrics;
pub mod readers;
pub mod records;
pub mod runtime;
pub mod tak;
pub mod trust;
pub mod web;

pub use config::{run, CommandConfig};
