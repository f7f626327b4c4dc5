//! AIS ↔ SAR correlation: which detected ships were broadcasting, and which were dark.
//!
//! Each AIS track is brought to the scene's acquisition time: between the last report before
//! and the first after it (when they are close enough in time) by interpolation, else from the
//! nearest report by dead reckoning on its speed and course (for a bounded time). The position
//! is then moved the way the radar images a moving ship, along the platform's track by
//! `-(R/V)·v_los` (see [`crate::sar::acquisition`]): without it, a ship at 15 kn crossing the
//! swath lands several hundred metres from its AIS position and would be called dark. Then
//! detections and projected AIS positions are matched one-to-one within a gate
//! ([`crate::matching`]); every detection left over is a dark-vessel candidate, with the
//! nearest AIS track as evidence (how far, how old its report was).

use serde::{Deserialize, Serialize};

use crate::ais::{Fix, Track, Tracks};
use crate::matching::{assign, distance_m, moved, offset_m};
use crate::sar::acquisition::{velocity_en, Acquisition};
use crate::sar::discriminate::Detection;

/// Correlation parameters (the `[sar.correlation]` table of a coastal site).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorrelationConfig {
    /// Largest distance between a detection and a projected AIS position that still matches.
    pub gate_m: f64,
    /// Interpolate only between reports at most this far apart.
    pub max_interpolation_gap_s: f64,
    /// Dead-reckon at most this far from the nearest report.
    pub max_dead_reckoning_s: f64,
    /// Apply the SAR azimuth shift of moving ships (needs the acquisition geometry).
    pub azimuth_shift: bool,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        CorrelationConfig {
            gate_m: 1000.0,
            max_interpolation_gap_s: 1800.0,
            max_dead_reckoning_s: 1200.0,
            azimuth_shift: true,
        }
    }
}

/// A [`CorrelationConfig`] field out of its domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct CorrelationConfigError {
    /// The field, as in the TOML table.
    pub field: &'static str,
    /// What it must be.
    pub problem: String,
}

impl CorrelationConfig {
    /// Checks every field; the error names the first bad one. A gate that is not a distance
    /// (NaN) would match nothing and call every detection dark.
    pub fn validate(&self) -> Result<(), CorrelationConfigError> {
        let bad = |field, problem: &str| {
            Err(CorrelationConfigError {
                field,
                problem: problem.to_string(),
            })
        };
        if !(self.gate_m.is_finite() && self.gate_m > 0.0) {
            return bad("gate_m", "must be a positive number of metres");
        }
        for (field, value) in [
            ("max_interpolation_gap_s", self.max_interpolation_gap_s),
            ("max_dead_reckoning_s", self.max_dead_reckoning_s),
        ] {
            if !(value >= 0.0) {
                return bad(field, "must be zero or a positive number of seconds");
            }
        }
        Ok(())
    }
}

/// How a projected position was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Projection {
    Interpolated,
    DeadReckoned,
}

/// One AIS vessel at the acquisition time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectedAis {
    pub mmsi: u32,
    pub name: Option<String>,
    /// Where the vessel was at the acquisition time.
    pub lon: f64,
    pub lat: f64,
    /// Where the radar images it (moved by the azimuth shift).
    pub image_lon: f64,
    pub image_lat: f64,
    pub projection: Projection,
    /// Seconds between the acquisition and the nearest report.
    pub time_gap_s: f64,
    pub sog_knots: Option<f64>,
    pub cog_deg: Option<f64>,
    /// Length from the static data, metres.
    pub length_m: Option<f64>,
}

/// A detection with an AIS partner.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    pub detection: u32,
    pub ais: ProjectedAis,
    pub distance_m: f64,
}

/// The evidence for a dark vessel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DarkVessel {
    pub detection: u32,
    pub lon: f64,
    pub lat: f64,
    pub length_m: f64,
    /// The nearest projected AIS vessel (matched elsewhere or outside the gate), if any.
    pub nearest_mmsi: Option<u32>,
    pub nearest_distance_m: Option<f64>,
    /// How old the nearest vessel's report was at the acquisition time.
    pub nearest_time_gap_s: Option<f64>,
}

/// The outcome for one scene.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Correlation {
    pub matched: Vec<Match>,
    pub dark: Vec<DarkVessel>,
    /// AIS vessels that could be placed at the acquisition time.
    pub projected: usize,
}

/// Projects every track that can be placed at `acq.time_ms`.
pub fn project(
    tracks: &Tracks,
    acq: &Acquisition,
    config: &CorrelationConfig,
) -> Vec<ProjectedAis> {
    tracks
        .iter()
        .filter_map(|t| project_track(t, acq, config))
        .collect()
}

/// One track at the acquisition time, `None` when no report is close enough in time.
pub fn project_track(
    track: &Track,
    acq: &Acquisition,
    config: &CorrelationConfig,
) -> Option<ProjectedAis> {
    let t = acq.time_ms;
    let (before, after) = track.bracket(t);
    let gap = |f: &Fix| seconds_between(t, f.time_ms).abs();
    let (lon, lat, velocity, projection, time_gap_s, nearest) = match (before, after) {
        (Some(b), Some(a))
            if seconds_between(b.time_ms, a.time_ms) <= config.max_interpolation_gap_s =>
        {
            let f = if a.time_ms == b.time_ms {
                0.0
            } else {
                seconds_between(b.time_ms, t) / seconds_between(b.time_ms, a.time_ms)
            };
            let lon = b.position.lon + (a.position.lon - b.position.lon) * f;
            let lat = b.position.lat + (a.position.lat - b.position.lat) * f;
            // Velocity from the two reports: it is what the ship actually did in between.
            let dt = seconds_between(b.time_ms, a.time_ms);
            let velocity = if dt > 0.0 {
                let (e, n) = offset_m(
                    (b.position.lon, b.position.lat),
                    (a.position.lon, a.position.lat),
                );
                (e / dt, n / dt)
            } else {
                fix_velocity(b)
            };
            let nearest = if gap(b) <= gap(a) { b } else { a };
            (
                lon,
                lat,
                velocity,
                Projection::Interpolated,
                gap(nearest),
                nearest,
            )
        }
        (b, a) => {
            let nearest = match (b, a) {
                (Some(b), Some(a)) => {
                    if gap(b) <= gap(a) {
                        b
                    } else {
                        a
                    }
                }
                (Some(f), None) | (None, Some(f)) => f,
                (None, None) => return None,
            };
            if gap(nearest) > config.max_dead_reckoning_s {
                return None;
            }
            let velocity = fix_velocity(nearest);
            let dt = seconds_between(nearest.time_ms, t);
            let (lon, lat) = moved(
                (nearest.position.lon, nearest.position.lat),
                velocity.0 * dt,
                velocity.1 * dt,
            );
            (
                lon,
                lat,
                velocity,
                Projection::DeadReckoned,
                gap(nearest),
                nearest,
            )
        }
    };
    let (de, dn) = if config.azimuth_shift {
        acq.azimuth_shift_m(velocity)
    } else {
        (0.0, 0.0)
    };
    let (image_lon, image_lat) = moved((lon, lat), de, dn);
    let vessel = track.vessel();
    Some(ProjectedAis {
        mmsi: track.mmsi(),
        name: vessel.name.clone(),
        lon,
        lat,
        image_lon,
        image_lat,
        projection,
        time_gap_s,
        sog_knots: nearest.sog_knots,
        cog_deg: nearest.cog_deg,
        length_m: vessel
            .dimensions
            .as_ref()
            .map(|d| (d.to_bow + d.to_stern) as f64)
            .filter(|l| *l > 0.0),
    })
}

/// Matches detections with projected AIS; the rest of the detections are dark.
pub fn correlate(
    detections: &[Detection],
    ais: &[ProjectedAis],
    config: &CorrelationConfig,
) -> Correlation {
    let det: Vec<(f64, f64)> = detections.iter().map(|d| (d.lon, d.lat)).collect();
    let imaged: Vec<(f64, f64)> = ais.iter().map(|a| (a.image_lon, a.image_lat)).collect();
    let pairs = assign(&det, &imaged, config.gate_m);
    let mut matched_det = vec![false; detections.len()];
    let matched = pairs
        .iter()
        .map(|p| {
            matched_det[p.a] = true;
            Match {
                detection: detections[p.a].id,
                ais: ais[p.b].clone(),
                distance_m: p.distance_m,
            }
        })
        .collect();
    let dark = detections
        .iter()
        .zip(&matched_det)
        .filter(|(_, m)| !**m)
        .map(|(d, _)| {
            let nearest = ais
                .iter()
                .map(|a| (a, distance_m((d.lon, d.lat), (a.image_lon, a.image_lat))))
                .min_by(|x, y| x.1.total_cmp(&y.1));
            DarkVessel {
                detection: d.id,
                lon: d.lon,
                lat: d.lat,
                length_m: d.length_m,
                nearest_mmsi: nearest.map(|(a, _)| a.mmsi),
                nearest_distance_m: nearest.map(|(_, dist)| dist),
                nearest_time_gap_s: nearest.map(|(a, _)| a.time_gap_s),
            }
        })
        .collect();
    Correlation {
        matched,
        dark,
        projected: ais.len(),
    }
}

/// Seconds from `from_ms` to `to_ms`, exact for any two times (report and scene times come
/// from outside: an `i64` difference of them can overflow).
fn seconds_between(from_ms: i64, to_ms: i64) -> f64 {
    (to_ms as i128 - from_ms as i128) as f64 / 1000.0
}

/// Velocity (east, north) in m/s from a report's speed and course; still when it gives none.
fn fix_velocity(f: &Fix) -> (f64, f64) {
    match (f.sog_knots, f.cog_deg) {
        (Some(s), Some(c)) => velocity_en(s, c),
        _ => (0.0, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ais::encode::{tagged_position_sentence, PositionReportSpec};
    use crate::ais::Decoder;
    use crate::sar::acquisition::LookSide;

    fn acquisition(time_ms: i64) -> Acquisition {
        Acquisition {
            time_ms,
            platform_heading_deg: 192.0,
            look_side: LookSide::Right,
            slant_range_m: 850_000.0,
            platform_velocity_ms: 7_600.0,
            incidence_deg: 37.0,
        }
    }

    #[test]
    fn reports_and_scenes_at_the_ends_of_time_place_nobody_rather_than_overflow() {
        // Tag-block times as far apart as an i64 allows (`c:` takes any UNIX time), and scene
        // metadata (`ACQUISITION_TIME_MS`) at the other end.
        let mut decoder = Decoder::new();
        let mut tracks = Tracks::default();
        for unix_s in [1_000_000_000i64, 9_223_372_036_854_775] {
            let spec = PositionReportSpec {
                mmsi: 431_000_001,
                lon: 129.3,
                lat: 34.2,
                sog_knots: 10.0,
                cog_deg: 90.0,
                utc_second: 0,
            };
            let report = decoder
                .feed_line(&tagged_position_sentence(&spec, unix_s, "rx"), 0)
                .unwrap()
                .unwrap();
            tracks.update(&report);
        }
        let unlimited = CorrelationConfig {
            max_interpolation_gap_s: f64::INFINITY,
            max_dead_reckoning_s: f64::INFINITY,
            ..CorrelationConfig::default()
        };
        for t in [i64::MIN, i64::MIN + 1, -1, i64::MAX] {
            assert!(
                project(&tracks, &acquisition(t), &CorrelationConfig::default()).is_empty(),
                "{t}"
            );
            for p in project(&tracks, &acquisition(t), &unlimited) {
                assert!(p.time_gap_s >= 1e9, "{t}: {p:?}");
            }
        }
        // Between the two reports, 292 million years apart: interpolated all the same.
        let between = project(&tracks, &acquisition(2_000_000_000_000), &unlimited);
        assert_eq!(between.len(), 1);
        assert_eq!(between[0].projection, Projection::Interpolated);
        assert!((between[0].time_gap_s - 1e9).abs() < 1.0);
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    #[test]
    fn a_gate_that_is_not_a_distance_is_refused() {
        assert_eq!(CorrelationConfig::default().validate(), Ok(()));
        // A NaN gate matches nothing: every detection would be called dark.
        for gate_m in [f64::NAN, 0.0, -5.0, f64::INFINITY] {
            let why = CorrelationConfig {
                gate_m,
                ..CorrelationConfig::default()
            }
            .validate()
            .unwrap_err();
            assert_eq!(why.field, "gate_m", "{why}");
        }
        let why = CorrelationConfig {
            max_dead_reckoning_s: f64::NAN,
            ..CorrelationConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            why.to_string(),
            "max_dead_reckoning_s: must be zero or a positive number of seconds"
        );
    }
}
