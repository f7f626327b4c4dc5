//! The MAVLink 2 ground station: mission, fence and rally transfer, heartbeats and the link
//! monitor, commands, signing per vehicle and telemetry logs.
//!
//! - [`mission`]: the mission protocol as transport-free state machines (both sides).
//! - [`codec`]: frames in and out, signing.
//! - [`station`]: the tokio task that owns a UDP or TCP port and drives everything.
//! - [`tlog`]: `.tlog` telemetry logs.
//! - [`items`]: patrol plans as mission, fence and rally items.

pub mod codec;
pub mod items;
pub mod mission;
pub mod station;
pub mod tlog;
