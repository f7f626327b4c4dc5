//! The thresholds of the behaviour rules, as a site's `[ais.behaviour]` table.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::MS_PER_MINUTE;

/// Thresholds of the behaviour rules: `[ais.behaviour]` in a site's configuration. Every field
/// has a default; unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BehaviourConfig {
    /// Silence, in minutes, after which a moving class A or B ship has an AIS gap (30). Raise it
    /// for satellite feeds, whose revisit time makes shorter silences normal.
    pub gap_minutes: u32,
    /// A ship is "moving" (and its silence a gap) above this speed over ground, knots (0.5).
    pub gap_min_speed_knots: f64,
    /// Implied speed between two fixes above which a position is spoofed, knots (50).
    pub max_implied_speed_knots: f64,
    /// Jumps shorter than this are never an impossible speed, metres (500): GNSS noise and
    /// one-second receive-time resolution make short jumps look fast.
    pub implied_speed_min_distance_m: f64,
    /// One MMSI reported from positions further apart than this ... (5 km)
    pub two_places_km: f64,
    /// ... within this many seconds is in two places at once (60).
    pub two_places_window_s: u32,
    /// Two slow ships closer than this are in an encounter, metres (500). Also the size of the
    /// grid's cells; 10 m to 50 km.
    pub encounter_distance_m: f64,
    /// An encounter is reported once it has lasted this long, minutes (120).
    pub encounter_min_minutes: u32,
    /// Both ships must be slower than this, knots (2).
    pub encounter_max_speed_knots: f64,
    /// A loitering ship stays within this distance of where it began, metres (1000).
    pub loiter_radius_m: f64,
    /// Loitering is reported once it has lasted this long, minutes (180).
    pub loiter_min_minutes: u32,
    /// A loitering ship stays slower than this, knots (3).
    pub loiter_max_speed_knots: f64,
    /// Fixes with navigational status moored or aground take no part in encounters and
    /// loitering (true).
    pub exclude_moored: bool,
    /// Minimum time between two spoofing alerts of one vessel (position jumps, and land,
    /// separately), minutes (60).
    pub repeat_after_minutes: u32,
    /// Vessels not heard for this long are forgotten, hours (24); more than `gap_minutes`.
    pub forget_after_hours: u32,
    /// Vessels followed at most (20,000); the least recently heard is forgotten first.
    pub max_vessels: usize,
    /// Pairs of close slow ships followed at most (100,000); further pairs are not followed
    /// until some separate (counted in [`BehaviourStats::pairs_refused`](super::BehaviourStats)).
    pub max_pairs: usize,
}

impl Default for BehaviourConfig {
    fn default() -> Self {
        BehaviourConfig {
            gap_minutes: 30,
            gap_min_speed_knots: 0.5,
            max_implied_speed_knots: 50.0,
            implied_speed_min_distance_m: 500.0,
            two_places_km: 5.0,
            two_places_window_s: 60,
            encounter_distance_m: 500.0,
            encounter_min_minutes: 120,
            encounter_max_speed_knots: 2.0,
            loiter_radius_m: 1000.0,
            loiter_min_minutes: 180,
            loiter_max_speed_knots: 3.0,
            exclude_moored: true,
            repeat_after_minutes: 60,
            forget_after_hours: 24,
            max_vessels: 20_000,
            max_pairs: 100_000,
        }
    }
}

/// A [`BehaviourConfig`] field out of its domain.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("ais.behaviour.{field}: {problem}")]
pub struct BehaviourConfigError {
    /// The field.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl BehaviourConfig {
    /// Checks every field; the error names the first bad one and what it must be.
    pub fn validate(&self) -> Result<(), BehaviourConfigError> {
        let bad = |field, problem: &str| {
            Err(BehaviourConfigError {
                field,
                problem: problem.to_string(),
            })
        };
        let positive = [
            ("max_implied_speed_knots", self.max_implied_speed_knots),
            ("two_places_km", self.two_places_km),
            ("encounter_max_speed_knots", self.encounter_max_speed_knots),
            ("loiter_radius_m", self.loiter_radius_m),
            ("loiter_max_speed_knots", self.loiter_max_speed_knots),
        ];
        for (field, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return bad(field, "must be a positive number");
            }
        }
        for (field, value) in [
            ("gap_min_speed_knots", self.gap_min_speed_knots),
            (
                "implied_speed_min_distance_m",
                self.implied_speed_min_distance_m,
            ),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(field, "must be zero or a positive number");
            }
        }
        if !(10.0..=50_000.0).contains(&self.encounter_distance_m) {
            return bad(
                "encounter_distance_m",
                "must be between 10 and 50,000 metres",
            );
        }
        for (field, value) in [
            ("gap_minutes", self.gap_minutes),
            ("encounter_min_minutes", self.encounter_min_minutes),
            ("loiter_min_minutes", self.loiter_min_minutes),
        ] {
            if value == 0 {
                return bad(field, "must be at least 1 minute");
            }
        }
        if u64::from(self.forget_after_hours) * 60 <= u64::from(self.gap_minutes) {
            return bad("forget_after_hours", "must be longer than gap_minutes");
        }
        if self.max_vessels == 0 {
            return bad("max_vessels", "must be at least 1");
        }
        Ok(())
    }

    pub(super) fn gap_ms(&self) -> i64 {
        i64::from(self.gap_minutes) * MS_PER_MINUTE
    }

    pub(super) fn forget_ms(&self) -> i64 {
        i64::from(self.forget_after_hours) * 60 * MS_PER_MINUTE
    }

    pub(super) fn repeat_ms(&self) -> i64 {
        i64::from(self.repeat_after_minutes) * MS_PER_MINUTE
    }
}
