//! Coastal drone patrol: corridor and survey planning along coastlines, a MAVLink 2 ground
//! station (mission, fence and rally transfer, telemetry, link loss, commands) and drone imagery
//! analysis with georeferencing.
//!
//! Built: [`plan`] (lawnmower surveys, geofence checks, endurance, QGroundControl `.plan`
//! files), [`corridor`] (corridor scans along a coastline), [`gcs`] (the ground station: mission
//! protocol, signing, link monitor, commands, tlogs), [`sim`] (a vehicle simulator speaking
//! the same protocol) and [`imagery`] (vessels and people on the water in a sortie's video,
//! georeferenced from the telemetry log, through OpenCV). Never imports `mizugiwa-sync`: the
//! site daemon turns its typed results into records.

pub mod corridor;
pub mod gcs;
pub mod imagery;
pub mod plan;
pub mod sim;
