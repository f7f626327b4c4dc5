//! What the rules report: one [`BehaviourAlert`] per condition, with the evidence of its kind,
//! serialised flat (`id`, `mmsi`, `position`, `time_ms`, `start_ms`, `kind`, evidence fields) so
//! that the field node stores it as one JSON record.

use serde::{Deserialize, Serialize};

use crate::ais::messages::{LatLon, NavStatus};

/// The rule an alert comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A moving ship fell silent.
    AisGap,
    /// A jump between two fixes at an impossible speed.
    AisSpoofingSpeed,
    /// A ship's position on land.
    AisSpoofingLand,
    /// One MMSI in two places at once.
    AisSpoofingTwoPlaces,
    /// Two slow ships close together for a long time.
    Encounter,
    /// A ship staying slow in a small area for a long time.
    Loitering,
}

impl AlertKind {
    /// The name used in JSON and alert ids (`ais_gap`, `encounter`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::AisGap => "ais_gap",
            AlertKind::AisSpoofingSpeed => "ais_spoofing_speed",
            AlertKind::AisSpoofingLand => "ais_spoofing_land",
            AlertKind::AisSpoofingTwoPlaces => "ais_spoofing_two_places",
            AlertKind::Encounter => "encounter",
            AlertKind::Loitering => "loitering",
        }
    }
}

/// One condition found by a rule. Serialises flat: the common fields, `kind`, and the
/// evidence of that kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BehaviourAlert {
    /// `kind-mmsi[-other]-start_ms`: the same condition always has the same id (a gap reported
    /// while silent and again when the ship reappears; the same encounter on every node).
    pub id: String,
    /// The vessel (the lower MMSI of an encounter).
    pub mmsi: u32,
    /// Where: the fix that raised it, the last known position of a silent ship, the midpoint of
    /// an encounter.
    pub position: LatLon,
    /// When the rule fired, UNIX milliseconds (a fix's receive time, or the clock for a
    /// silence).
    pub time_ms: i64,
    /// When the condition began (the silence, the earlier fix of a jump, the encounter or
    /// loitering episode).
    pub start_ms: i64,
    /// What the rule saw.
    #[serde(flatten)]
    pub evidence: Evidence,
}

impl BehaviourAlert {
    /// The rule it comes from.
    pub fn kind(&self) -> AlertKind {
        match self.evidence {
            Evidence::AisGap { .. } => AlertKind::AisGap,
            Evidence::AisSpoofingSpeed { .. } => AlertKind::AisSpoofingSpeed,
            Evidence::AisSpoofingLand { .. } => AlertKind::AisSpoofingLand,
            Evidence::AisSpoofingTwoPlaces { .. } => AlertKind::AisSpoofingTwoPlaces,
            Evidence::Encounter { .. } => AlertKind::Encounter,
            Evidence::Loitering { .. } => AlertKind::Loitering,
        }
    }

    /// Every MMSI involved.
    pub fn mmsis(&self) -> Vec<u32> {
        match self.evidence {
            Evidence::Encounter { other_mmsi, .. } => vec![self.mmsi, other_mmsi],
            _ => vec![self.mmsi],
        }
    }
}

/// What a rule saw, per kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// A moving ship fell silent.
    AisGap {
        /// Its last fix before the silence.
        last_position: LatLon,
        /// Its speed at that fix, knots.
        last_speed_knots: f64,
        /// Seconds of silence so far (or in all, once it resumed).
        silent_s: f64,
        /// Seconds of it during which the caller said the feed itself was down (not counted
        /// against the ship).
        feed_down_s: f64,
        /// The ship has been heard again.
        resumed: bool,
        /// Where it reappeared, if the report that ended the silence had a position.
        resumed_position: Option<LatLon>,
    },
    /// A jump at an impossible speed.
    AisSpoofingSpeed {
        /// The other fix of the jump.
        other_position: LatLon,
        /// Its receive time.
        other_ms: i64,
        /// Length of the jump, metres.
        distance_m: f64,
        /// Time between the fixes, seconds.
        interval_s: f64,
        /// Distance over time (at least one second), knots.
        implied_speed_knots: f64,
        /// Bearing of the jump from the earlier to the later fix, degrees.
        bearing_deg: f64,
        /// The speed over ground the ship itself reported, knots.
        reported_speed_knots: Option<f64>,
        /// Receivers of the fix and of the other one.
        sources: [Option<String>; 2],
    },
    /// A ship's position on land.
    AisSpoofingLand {
        /// Reported speed over ground, knots.
        speed_knots: Option<f64>,
        /// Reported navigational status.
        nav_status: Option<NavStatus>,
        /// Receiver of the fix.
        source: Option<String>,
    },
    /// One MMSI in two places at once.
    AisSpoofingTwoPlaces {
        /// The other place.
        other_position: LatLon,
        /// When it was reported there.
        other_ms: i64,
        /// Distance between the places, kilometres.
        distance_km: f64,
        /// Time between the reports, seconds.
        interval_s: f64,
        /// Receivers of the fix and of the other one.
        sources: [Option<String>; 2],
    },
    /// Two slow ships close together.
    Encounter {
        /// The higher MMSI of the pair.
        other_mmsi: u32,
        /// Latest positions of `mmsi` and `other_mmsi`.
        positions: [LatLon; 2],
        /// Seconds since the first fix showing them close.
        duration_s: f64,
        /// Distance now, metres.
        distance_m: f64,
        /// Closest seen, metres.
        min_distance_m: f64,
    },
    /// A ship staying slow in a small area.
    Loitering {
        /// Where the episode began.
        anchor: LatLon,
        /// Seconds since then.
        duration_s: f64,
        /// Furthest fix from the anchor, metres.
        max_offset_m: f64,
        /// Fixes in the episode.
        fixes: u32,
    },
}
