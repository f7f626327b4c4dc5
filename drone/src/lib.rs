//! Coastal drone patrol: corridor and survey planning along coastlines, a MAVLink 2 ground
//! station (mission, fence and rally transfer, telemetry, link loss, commands) and drone imagery
//! analysis with georeferencing.
//!
//! Not built yet: see issue 5. Never imports `mizugiwa-sync`: the site daemon turns its typed
//! results into records.
