//! BCP drills (`mizugiwa drill run SCENARIO.toml`): Jepsen for a customs service.
//!
//! A drill starts the real `mizugiwa` processes of a deployment ([`cluster`]), puts a
//! fault-injecting UDP proxy on every sync link ([`proxy`]), lets officers work at every site
//! through the sites' own APIs while logging whether each call was acknowledged
//! ([`workload`]) and coastal sites hear ships ([`ais_feed`]), applies a timeline of faults
//! (partitions, flapping links, latency, loss and bandwidth caps, `kill -9` and restart, a
//! command center lost for good, clock skew under libfaketime, a full disk), then checks the
//! invariants ([`check`]) and writes a report ([`report`]).
//!
//! The scenario format is in [`scenario`]; shipped scenarios are in `drills/scenarios/`.
//! Drills drive the binaries from outside: the one Mizugiwa crate this crate imports is
//! `mizugiwa-satellite`, for its AIS sentence encoder only ([`ais_feed`] serves a coastal site
//! real NMEA); replicas are read through the binary and the daemons' API.

pub mod ais_feed;
pub mod check;
pub mod cluster;
pub mod proxy;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod workload;

pub use runner::{run, run_file, RunOptions};
pub use scenario::Scenario;
