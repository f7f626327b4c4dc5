//! Coastal drone patrol: corridor and survey planning along coastlines, a MAVLink 2 ground
//! station (mission, fence and rally transfer, telemetry, link loss, commands) and drone imagery
//! analysis with georeferencing.
//!
//! Built so far: [`plan`] (lawnmower surveys, geofence checks, endurance, QGroundControl
//! `.plan` files). The rest of issue 5 (corridor along a coastline, the ground station, the
//! simulator, imagery) is not built yet. Never imports `mizugiwa-sync`: the site daemon turns its typed
//! results into records.

pub mod corridor;
pub mod gcs;
pub mod plan;
pub mod sim;
