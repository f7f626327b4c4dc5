//! AIS: NMEA 0183 AIVDM/AIVDO sentences to typed messages, and tracks per MMSI.
//!
//! ```text
//! line ─▶ nmea::parse_line ─▶ assembler::Assembler ─▶ messages::AisMessage ─▶ AisReport ─▶ Tracks
//!         tag blocks,          fragments joined,       bits read by             time, source,
//!         checksum, fields     timeouts, bounds        bits::BitReader          raw sentences
//!                                                                                      │
//!                                           behaviour::BehaviourMonitor ◀── TrackUpdate ┘
//!                                           gaps, spoofing, encounters, loitering → alerts
//! ```
//!
//! [`Decoder::feed_line`] runs the whole chain for one line. Nothing here panics on any input,
//! reads a clock, or grows without bound: every refused line comes back as an [`AisError`]
//! that names what was wrong, and leaves the decoder as it was.

pub mod assembler;
pub mod behaviour;
pub mod bits;
pub mod decoder;
pub mod encode;
mod error;
pub mod messages;
pub mod nmea;
pub mod tracks;
pub mod vessel;

pub use assembler::{AssemblerConfig, AssemblerStats};
pub use behaviour::{
    AlertKind, BehaviourAlert, BehaviourConfig, BehaviourConfigError, BehaviourMonitor,
    BehaviourStats, Evidence, LandTest,
};
pub use decoder::{AisReport, Decoder, TimeSource};
pub use error::AisError;
pub use messages::{
    AidToNavigation, AisMessage, BaseStationReport, ClassBExtended, ClassBPosition, Dimensions,
    Epfd, Eta, LatLon, LongRangePosition, NavStatus, PositionReport, RateOfTurn, ShipType,
    StaticAndVoyage, StaticDataPart, StaticDataReport, TimeStamp, UtcDateTime,
};
pub use tracks::{Fix, StationKind, Track, TrackConfig, TrackUpdate, Tracks};
pub use vessel::VesselStatic;
