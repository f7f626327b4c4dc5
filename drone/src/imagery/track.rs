//! The vehicle's pose over a sortie, from the telemetry log the ground station wrote, and the
//! camera's pose at any instant in it.
//!
//! Times are the tlog's: when the ground station received each frame, microseconds since the
//! Unix epoch. The link's latency (tens of milliseconds) is below what the video's own clock
//! can promise, so it is not corrected for.

use mavlink::dialects::common::{GimbalDeviceFlags, MavMessage};

use super::camera::{quaternion_to_euler_deg, CameraPose, Gimbal, GimbalFrame, VehiclePose};
use super::timestamps::rfc3339;
use super::ImageryError;
use crate::gcs::codec::FrameSplitter;
use crate::gcs::tlog::read_tlog;

#[derive(Debug, Clone, Copy)]
struct Position {
    t_us: u64,
    lat_deg: f64,
    lon_deg: f64,
    /// Above home, m.
    rel_alt_m: f64,
}

#[derive(Debug, Clone, Copy)]
struct Angles {
    t_us: u64,
    roll_deg: f64,
    pitch_deg: f64,
    yaw_deg: f64,
}

/// How a pose is looked up.
#[derive(Debug, Clone, Copy)]
pub struct TrackOptions {
    /// Height of home (where `relative_alt` is zero) above the sea surface, m: 0 for a take-off
    /// at the water's edge.
    pub home_above_sea_m: f64,
    /// The gimbal when the log has no MOUNT_ORIENTATION or GIMBAL_DEVICE_ATTITUDE_STATUS.
    pub fixed_gimbal: Gimbal,
    /// Samples further apart than this are not interpolated across: the link dropped out and
    /// the vehicle may have turned in between.
    pub max_gap_us: u64,
    /// A frame up to this far beyond either end of the log takes the end sample.
    pub edge_tolerance_us: u64,
}

impl Default for TrackOptions {
    fn default() -> TrackOptions {
        TrackOptions {
            home_above_sea_m: 0.0,
            fixed_gimbal: Gimbal::body_pitch(-90.0),
            max_gap_us: 1_500_000,
            edge_tolerance_us: 500_000,
        }
    }
}

/// Why there is no pose for an instant.
#[derive(Debug, Clone, PartialEq)]
pub enum Uncovered {
    /// Before the log's first sample or after its last.
    Outside,
    /// Between two samples further apart than [`TrackOptions::max_gap_us`].
    Gap { seconds: f64 },
}

/// One vehicle's positions, attitudes and (when sent) gimbal angles from a tlog.
#[derive(Debug, Clone)]
pub struct PoseTrack {
    pub system_id: u8,
    positions: Vec<Position>,
    attitudes: Vec<Angles>,
    gimbal: Vec<(Angles, GimbalFrame)>,
}

impl PoseTrack {
    /// Reads a tlog's bytes. Takes the vehicle `system_id`, or the only one that sent
    /// positions; frames of other vehicles and messages it does not use are skipped.
    pub fn from_tlog(bytes: &[u8], system_id: Option<u8>) -> Result<PoseTrack, ImageryError> {
        let records = read_tlog(bytes);
        if records.is_empty() {
            return Err(ImageryError::Telemetry(
                "no MAVLink frames: not a tlog (8-byte big-endian time, then a frame), or empty"
                    .into(),
            ));
        }
        let mut messages = Vec::with_capacity(records.len());
        let mut splitter = FrameSplitter::default();
        for (t_us, bytes) in &records {
            for frame in splitter.push(bytes) {
                let (Ok(msg), Ok(system)) = (frame.parse(), u8::try_from(frame.system_id())) else {
                    continue;
                };
                messages.push((*t_us, system, msg));
            }
            splitter.end_of_datagram();
        }
        let mut senders: Vec<u8> = messages
            .iter()
            .filter(|(_, _, m)| matches!(m, MavMessage::GLOBAL_POSITION_INT(_)))
            .map(|(_, s, _)| *s)
            .collect();
        senders.sort_unstable();
        senders.dedup();
        let system_id = match (system_id, senders.as_slice()) {
            (_, []) => {
                return Err(ImageryError::Telemetry(
                    "no GLOBAL_POSITION_INT in the log: the vehicle's position is unknown".into(),
                ))
            }
            (Some(id), s) if !s.contains(&id) => {
                return Err(ImageryError::Telemetry(format!(
                    "no positions from system {id} in the log (it has {s:?})"
                )))
            }
            (Some(id), _) => id,
            (None, [only]) => *only,
            (None, s) => {
                return Err(ImageryError::Telemetry(format!(
                    "the log holds several vehicles ({s:?}): say which one (--system)"
                )))
            }
        };
        let mut track = PoseTrack {
            system_id,
            positions: Vec::new(),
            attitudes: Vec::new(),
            gimbal: Vec::new(),
        };
        for (t_us, system, msg) in messages {
            if system != system_id {
                continue;
            }
            match msg {
                MavMessage::GLOBAL_POSITION_INT(p) => track.positions.push(Position {
                    t_us,
                    lat_deg: f64::from(p.lat) / 1e7,
                    lon_deg: f64::from(p.lon) / 1e7,
                    rel_alt_m: f64::from(p.relative_alt) / 1000.0,
                }),
                MavMessage::ATTITUDE(a) => track.attitudes.push(Angles {
                    t_us,
                    roll_deg: f64::from(a.roll).to_degrees(),
                    pitch_deg: f64::from(a.pitch).to_degrees(),
                    yaw_deg: f64::from(a.yaw).to_degrees(),
                }),
                // Roll and pitch in the earth frame, yaw relative to the vehicle. Deprecated for
                // the gimbal protocol v2, but what ArduPilot sends for its mounts.
                #[allow(deprecated)]
                MavMessage::MOUNT_ORIENTATION(m) => track.gimbal.push((
                    Angles {
                        t_us,
                        roll_deg: f64::from(m.roll),
                        pitch_deg: f64::from(m.pitch),
                        yaw_deg: f64::from(m.yaw),
                    },
                    GimbalFrame::Horizon,
                )),
                MavMessage::GIMBAL_DEVICE_ATTITUDE_STATUS(g) => {
                    let (roll_deg, pitch_deg, yaw_deg) =
                        quaternion_to_euler_deg(g.q.map(f64::from));
                    // The message's rule: yaw in the earth frame when that flag says so, or
                    // (older gimbals, neither frame flag) when yaw is locked.
                    let earth = g
                        .flags
                        .contains(GimbalDeviceFlags::GIMBAL_DEVICE_FLAGS_YAW_IN_EARTH_FRAME)
                        || (!g
                            .flags
                            .contains(GimbalDeviceFlags::GIMBAL_DEVICE_FLAGS_YAW_IN_VEHICLE_FRAME)
                            && g.flags
                                .contains(GimbalDeviceFlags::GIMBAL_DEVICE_FLAGS_YAW_LOCK));
                    let frame = if earth {
                        GimbalFrame::Earth
                    } else {
                        GimbalFrame::Horizon
                    };
                    if roll_deg.is_finite() && pitch_deg.is_finite() && yaw_deg.is_finite() {
                        track.gimbal.push((
                            Angles {
                                t_us,
                                roll_deg,
                                pitch_deg,
                                yaw_deg,
                            },
                            frame,
                        ));
                    }
                }
                _ => {}
            }
        }
        if track.attitudes.is_empty() {
            return Err(ImageryError::Telemetry(format!(
                "no ATTITUDE from system {system_id} in the log: the camera's direction is unknown"
            )));
        }
        // A log appended across restarts of the ground station may step back in time.
        track.positions.sort_by_key(|p| p.t_us);
        track.attitudes.sort_by_key(|a| a.t_us);
        track.gimbal.sort_by_key(|g| g.0.t_us);
        Ok(track)
    }

    /// The instants with both a position and an attitude, µs.
    pub fn span_us(&self) -> (u64, u64) {
        let start = self.positions[0].t_us.max(self.attitudes[0].t_us);
        let end = self.positions[self.positions.len() - 1]
            .t_us
            .min(self.attitudes[self.attitudes.len() - 1].t_us);
        (start, end)
    }

    /// `start .. end` in RFC 3339, for messages.
    pub fn span_text(&self) -> (String, String) {
        let (a, b) = self.span_us();
        (rfc3339(a), rfc3339(b))
    }

    /// Whether the log reports the gimbal (otherwise the fixed gimbal of the options is used).
    pub fn has_gimbal(&self) -> bool {
        !self.gimbal.is_empty()
    }

    /// The camera's pose at `t_us`, interpolated between the samples around it.
    pub fn pose_at(&self, t_us: u64, options: &TrackOptions) -> Result<CameraPose, Uncovered> {
        let (start, end) = self.span_us();
        if t_us + options.edge_tolerance_us < start
            || t_us > end.saturating_add(options.edge_tolerance_us)
        {
            return Err(Uncovered::Outside);
        }
        let t = t_us.clamp(start, end);
        let p = interpolate(
            &self.positions,
            |p| p.t_us,
            t,
            options.max_gap_us,
            |a, b, f| Position {
                t_us: t,
                lat_deg: lerp(a.lat_deg, b.lat_deg, f),
                lon_deg: lerp(a.lon_deg, b.lon_deg, f),
                rel_alt_m: lerp(a.rel_alt_m, b.rel_alt_m, f),
            },
        )?;
        let a = interpolate(
            &self.attitudes,
            |a| a.t_us,
            t,
            options.max_gap_us,
            lerp_angles,
        )?;
        let gimbal = if self.gimbal.is_empty() {
            options.fixed_gimbal
        } else {
            // A gimbal reporting at a few hertz: hold the nearest report at the ends and across
            // gaps rather than lose the frame.
            let at = t.clamp(
                self.gimbal[0].0.t_us,
                self.gimbal[self.gimbal.len() - 1].0.t_us,
            );
            let (g, frame) = interpolate(
                &self.gimbal,
                |g| g.0.t_us,
                at,
                u64::MAX,
                |a, b, f| (lerp_angles(&a.0, &b.0, f), a.1),
            )
            .unwrap_or(self.gimbal[0]);
            Gimbal {
                roll_deg: g.roll_deg,
                pitch_deg: g.pitch_deg,
                yaw_deg: g.yaw_deg,
                frame,
            }
        };
        let vehicle = VehiclePose {
            lat_deg: p.lat_deg,
            lon_deg: p.lon_deg,
            height_m: p.rel_alt_m + options.home_above_sea_m,
            roll_deg: a.roll_deg,
            pitch_deg: a.pitch_deg,
            yaw_deg: a.yaw_deg.rem_euclid(360.0),
        };
        Ok(CameraPose { vehicle, gimbal })
    }
}

fn interpolate<S: Copy, T>(
    samples: &[S],
    time: impl Fn(&S) -> u64,
    t: u64,
    max_gap_us: u64,
    mix: impl Fn(&S, &S, f64) -> T,
) -> Result<T, Uncovered> {
    let i = samples.partition_point(|s| time(s) < t);
    if i < samples.len() && time(&samples[i]) == t {
        return Ok(mix(&samples[i], &samples[i], 0.0));
    }
    if i == 0 || i == samples.len() {
        return Err(Uncovered::Outside);
    }
    let (a, b) = (&samples[i - 1], &samples[i]);
    let gap = time(b) - time(a);
    if gap > max_gap_us {
        return Err(Uncovered::Gap {
            seconds: gap as f64 / 1e6,
        });
    }
    Ok(mix(a, b, (t - time(a)) as f64 / gap as f64))
}

fn lerp(a: f64, b: f64, f: f64) -> f64 {
    a + (b - a) * f
}

/// Angles the short way round (a heading from 359° to 1° passes 0°, not 180°).
fn lerp_angle(a: f64, b: f64, f: f64) -> f64 {
    a + ((b - a + 540.0).rem_euclid(360.0) - 180.0) * f
}

fn lerp_angles(a: &Angles, b: &Angles, f: f64) -> Angles {
    Angles {
        t_us: a.t_us,
        roll_deg: lerp_angle(a.roll_deg, b.roll_deg, f),
        pitch_deg: lerp(a.pitch_deg, b.pitch_deg, f),
        yaw_deg: lerp_angle(a.yaw_deg, b.yaw_deg, f),
    }
}

#[cfg(test)]
mod tests {
    #[allow(deprecated)]
    use mavlink::dialects::common::MOUNT_ORIENTATION_DATA;
    use mavlink::dialects::common::{ATTITUDE_DATA, GLOBAL_POSITION_INT_DATA};

    use super::*;
    use crate::gcs::codec::Encoder;

    fn record(out: &mut Vec<u8>, enc: &mut Encoder, t_us: u64, msg: &MavMessage) {
        out.extend_from_slice(&t_us.to_be_bytes());
        out.extend_from_slice(&enc.encode(msg, None));
    }

    fn position(lat: f64, alt: f64) -> MavMessage {
        MavMessage::GLOBAL_POSITION_INT(GLOBAL_POSITION_INT_DATA {
            lat: (lat * 1e7) as i32,
            lon: 1_293_000_000,
            relative_alt: (alt * 1000.0) as i32,
            ..Default::default()
        })
    }

    fn attitude(yaw_deg: f64) -> MavMessage {
        MavMessage::ATTITUDE(ATTITUDE_DATA {
            yaw: yaw_deg.to_radians() as f32,
            ..Default::default()
        })
    }

    #[test]
    fn poses_interpolate_between_samples_and_headings_wrap() {
        let mut log = Vec::new();
        let mut enc = Encoder::new(1, 1);
        record(&mut log, &mut enc, 1_000_000, &position(34.0, 100.0));
        record(&mut log, &mut enc, 1_000_000, &attitude(359.0));
        record(&mut log, &mut enc, 2_000_000, &position(34.001, 110.0));
        record(&mut log, &mut enc, 2_000_000, &attitude(3.0));
        // Another vehicle on the same link is ignored.
        let mut other = Encoder::new(2, 1);
        let mut two = log.clone();
        record(&mut two, &mut other, 1_500_000, &position(10.0, 5.0));
        let track = PoseTrack::from_tlog(&log, None).unwrap();
        let o = TrackOptions {
            home_above_sea_m: 2.0,
            ..Default::default()
        };
        let p = track.pose_at(1_250_000, &o).unwrap();
        assert!(
            (p.vehicle.lat_deg - 34.00025).abs() < 1e-9
                && (p.vehicle.height_m - 104.5).abs() < 1e-9
        );
        // 359° to 3° passes north.
        assert!(
            ((p.vehicle.yaw_deg + 180.0).rem_euclid(360.0) - 180.0).abs() < 1e-4,
            "{}",
            p.vehicle.yaw_deg
        );
        assert_eq!(p.gimbal, o.fixed_gimbal);
        assert!(
            track.pose_at(2_400_000, &o).is_ok(),
            "within the edge tolerance"
        );
        assert_eq!(track.pose_at(2_600_000, &o), Err(Uncovered::Outside));
        assert_eq!(track.pose_at(0, &o), Err(Uncovered::Outside));
        let strict = TrackOptions {
            max_gap_us: 500_000,
            ..o
        };
        assert_eq!(
            track.pose_at(1_500_000, &strict),
            Err(Uncovered::Gap { seconds: 1.0 })
        );
        assert!(
            matches!(PoseTrack::from_tlog(&two, None), Err(ImageryError::Telemetry(m)) if m.contains("several vehicles"))
        );
        assert_eq!(PoseTrack::from_tlog(&two, Some(1)).unwrap().system_id, 1);
    }

    #[test]
    fn the_gimbal_comes_from_mount_orientation_when_the_vehicle_sends_it() {
        let mut log = Vec::new();
        let mut enc = Encoder::new(1, 1);
        for k in 0..3u64 {
            record(&mut log, &mut enc, k * 100_000, &position(34.0, 100.0));
            record(&mut log, &mut enc, k * 100_000, &attitude(90.0));
        }
        #[allow(deprecated)]
        let mount = MavMessage::MOUNT_ORIENTATION(MOUNT_ORIENTATION_DATA {
            pitch: -45.0,
            yaw: 10.0,
            ..Default::default()
        });
        record(&mut log, &mut enc, 150_000, &mount);
        let track = PoseTrack::from_tlog(&log, None).unwrap();
        assert!(track.has_gimbal());
        let g = track
            .pose_at(50_000, &TrackOptions::default())
            .unwrap()
            .gimbal;
        assert_eq!(
            g,
            Gimbal {
                roll_deg: 0.0,
                pitch_deg: -45.0,
                yaw_deg: 10.0,
                frame: GimbalFrame::Horizon
            }
        );
    }

    #[test]
    fn logs_without_what_georeferencing_needs_are_refused() {
        assert!(
            matches!(PoseTrack::from_tlog(b"", None), Err(ImageryError::Telemetry(m)) if m.contains("not a tlog"))
        );
        assert!(PoseTrack::from_tlog(&[0x42; 300], None).is_err());
        let mut log = Vec::new();
        let mut enc = Encoder::new(1, 1);
        record(&mut log, &mut enc, 1, &attitude(0.0));
        assert!(
            matches!(PoseTrack::from_tlog(&log, None), Err(ImageryError::Telemetry(m)) if m.contains("no GLOBAL_POSITION_INT"))
        );
        let mut log = Vec::new();
        record(&mut log, &mut enc, 1, &position(34.0, 1.0));
        assert!(
            matches!(PoseTrack::from_tlog(&log, None), Err(ImageryError::Telemetry(m)) if m.contains("no ATTITUDE"))
        );
        // A truncated last record is dropped, the rest is read.
        let mut log = Vec::new();
        record(&mut log, &mut enc, 1, &position(34.0, 1.0));
        record(&mut log, &mut enc, 1, &attitude(0.0));
        record(&mut log, &mut enc, 2, &position(34.0, 1.0));
        log.truncate(log.len() - 5);
        assert!(PoseTrack::from_tlog(&log, Some(1)).is_ok());
    }
}
