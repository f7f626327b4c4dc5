//! Synthetic sorties: a straight patrol leg over a [`Scene`], filmed as an MJPG video and logged
//! as a tlog, with the true pose at every instant.

use std::path::Path;

// MOUNT_ORIENTATION is deprecated in favour of the gimbal protocol v2, but ArduPilot still
// sends it for its mounts, so the sorties a patrol flies carry it.
#[allow(deprecated)]
use mavlink::dialects::common::MOUNT_ORIENTATION_DATA;
use mavlink::dialects::common::{
    MavAutopilot, MavMessage, MavModeFlag, MavState, MavType, ATTITUDE_DATA,
    GLOBAL_POSITION_INT_DATA, HEARTBEAT_DATA,
};
use opencv::core::Size;
use opencv::prelude::*;
use opencv::videoio;

use super::camera::{
    offset_lat_lon, CameraPose, Gimbal, GimbalFrame, Intrinsics, Lens, VehiclePose, View,
};
use super::render::{render, Scene, Target, TargetKind};
use super::ImageryError;
use crate::gcs::codec::Encoder;

/// A straight patrol leg over a scene, filmed and logged.
#[derive(Debug, Clone)]
pub struct Sortie {
    pub scene: Scene,
    /// When the first frame is taken, µs since the Unix epoch.
    pub start_us: u64,
    pub seconds: f64,
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    pub lens: Lens,
    /// The vehicle at the first frame.
    pub start_lat: f64,
    pub start_lon: f64,
    pub height_m: f64,
    pub heading_deg: f64,
    pub speed_mps: f64,
    /// Forward lean at cruise (negative: nose down), degrees.
    pub lean_deg: f64,
    /// Amplitude of a 0.2 Hz roll sway, degrees.
    pub sway_deg: f64,
    /// The camera. A [`GimbalFrame::Horizon`] gimbal reports itself in MOUNT_ORIENTATION; a
    /// body-fixed camera does not (the analysis must be told its pitch).
    pub gimbal: Gimbal,
    /// Telemetry rate, Hz, and how long the log runs before the first and after the last frame.
    pub telemetry_hz: f64,
    pub log_margin_s: f64,
}

impl Sortie {
    /// Number of frames.
    pub fn frames(&self) -> u64 {
        (self.seconds * self.fps).round().max(0.0) as u64
    }

    /// The true camera pose `t_s` seconds after the first frame.
    pub fn pose_at(&self, t_s: f64) -> CameraPose {
        let start = VehiclePose {
            lat_deg: self.start_lat,
            lon_deg: self.start_lon,
            height_m: self.height_m,
            roll_deg: 0.0,
            pitch_deg: 0.0,
            yaw_deg: self.heading_deg,
        };
        let (sh, ch) = self.heading_deg.to_radians().sin_cos();
        let d = self.speed_mps * t_s;
        let (lat_deg, lon_deg) = offset_lat_lon(self.start_lat, self.start_lon, d * ch, d * sh);
        let vehicle = VehiclePose {
            lat_deg,
            lon_deg,
            roll_deg: self.sway_deg * (std::f64::consts::TAU * 0.2 * t_s).sin(),
            pitch_deg: self.lean_deg,
            ..start
        };
        CameraPose {
            vehicle,
            gimbal: self.gimbal,
        }
    }

    /// The view of frame `k`.
    pub fn view(&self, k: u64) -> Result<View, ImageryError> {
        Ok(View::new(
            Intrinsics::from_lens(self.width, self.height, self.lens)?,
            self.pose_at(k as f64 / self.fps),
        ))
    }

    /// Writes the video (MJPG in AVI, which every OpenCV build can write) and the tlog
    /// (GLOBAL_POSITION_INT, ATTITUDE, HEARTBEAT, and MOUNT_ORIENTATION for a stabilised
    /// gimbal). `progress` hears each frame written.
    pub fn write(
        &self,
        video: &Path,
        tlog: &Path,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<(), ImageryError> {
        std::fs::write(tlog, self.telemetry()).map_err(|e| ImageryError::Io {
            path: tlog.display().to_string(),
            source: e,
        })?;
        let fourcc = videoio::VideoWriter::fourcc('M', 'J', 'P', 'G')?;
        let size = Size::new(self.width as i32, self.height as i32);
        let name = video
            .to_str()
            .ok_or_else(|| ImageryError::Camera(format!("{} is not UTF-8", video.display())))?;
        let mut writer = videoio::VideoWriter::new(name, fourcc, self.fps, size, true)?;
        if !writer.is_opened()? {
            return Err(ImageryError::Frames {
                source_name: name.into(),
                reason: "OpenCV cannot write an MJPG video here".into(),
            });
        }
        let total = self.frames();
        for k in 0..total {
            writer.write(&render(&self.scene, &self.view(k)?, k)?)?;
            progress(k + 1, total);
        }
        writer.release()?;
        Ok(())
    }

    /// The tlog's bytes: the vehicle's telemetry from `log_margin_s` before the first frame
    /// to as long after the last.
    pub fn telemetry(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = Encoder::new(1, 1);
        let dt = 1.0 / self.telemetry_hz.max(0.1);
        let end = self.seconds + self.log_margin_s;
        let mut t = -self.log_margin_s;
        let mut k = 0u64;
        while t <= end + 1e-9 {
            let at_us = (self.start_us as i64 + (t * 1e6).round() as i64).max(0) as u64;
            let boot_ms = ((t + self.log_margin_s + 60.0) * 1000.0) as u32;
            let pose = self.pose_at(t);
            let v = &pose.vehicle;
            let mut push = |msg: MavMessage| {
                out.extend_from_slice(&at_us.to_be_bytes());
                out.extend_from_slice(&enc.encode(&msg, None));
            };
            if k.is_multiple_of(self.telemetry_hz.round().max(1.0) as u64) {
                push(MavMessage::HEARTBEAT(HEARTBEAT_DATA {
                    custom_mode: 3,
                    mavtype: MavType::MAV_TYPE_QUADROTOR,
                    autopilot: MavAutopilot::MAV_AUTOPILOT_ARDUPILOTMEGA,
                    base_mode: MavModeFlag::MAV_MODE_FLAG_SAFETY_ARMED
                        | MavModeFlag::MAV_MODE_FLAG_CUSTOM_MODE_ENABLED,
                    system_status: MavState::MAV_STATE_ACTIVE,
                    mavlink_version: 3,
                }));
            }
            let (sh, ch) = self.heading_deg.to_radians().sin_cos();
            push(MavMessage::GLOBAL_POSITION_INT(GLOBAL_POSITION_INT_DATA {
                time_boot_ms: boot_ms,
                lat: (v.lat_deg * 1e7).round() as i32,
                lon: (v.lon_deg * 1e7).round() as i32,
                alt: ((v.height_m + 3.0) * 1000.0).round() as i32,
                relative_alt: (v.height_m * 1000.0).round() as i32,
                vx: (self.speed_mps * ch * 100.0).round() as i16,
                vy: (self.speed_mps * sh * 100.0).round() as i16,
                vz: 0,
                hdg: (self.heading_deg.rem_euclid(360.0) * 100.0).round() as u16,
            }));
            push(MavMessage::ATTITUDE(ATTITUDE_DATA {
                time_boot_ms: boot_ms,
                roll: v.roll_deg.to_radians() as f32,
                pitch: v.pitch_deg.to_radians() as f32,
                yaw: v.yaw_deg.to_radians() as f32,
                ..Default::default()
            }));
            if pose.gimbal.frame == GimbalFrame::Horizon {
                let g = &pose.gimbal;
                #[allow(deprecated)] // See the import.
                push(MavMessage::MOUNT_ORIENTATION(MOUNT_ORIENTATION_DATA {
                    time_boot_ms: boot_ms,
                    roll: g.roll_deg as f32,
                    pitch: g.pitch_deg as f32,
                    yaw: g.yaw_deg as f32,
                    yaw_absolute: (v.yaw_deg + g.yaw_deg).rem_euclid(360.0) as f32,
                }));
            }
            k += 1;
            t = -self.log_margin_s + k as f64 * dt;
        }
        out
    }
}

/// The sortie of the README and the tests: 100 m over the sea off Tsushima's west coast, a
/// stabilised camera 60° down, a 9 m boat and a person in the water ahead, the coast to the
/// east. `width` × `height` frames for `seconds` at 10 frames/s.
pub fn patrol_sortie(seed: u64, width: u32, height: u32, seconds: f64) -> Sortie {
    let (lat, lon) = (34.2, 129.25);
    let mut scene = Scene::open_sea(lat, lon, seed);
    let (boat_lat, boat_lon) = offset_lat_lon(lat, lon, 110.0, 12.0);
    let (person_lat, person_lon) = offset_lat_lon(lat, lon, 95.0, -20.0);
    scene.targets = vec![
        Target {
            lat_deg: boat_lat,
            lon_deg: boat_lon,
            kind: TargetKind::Boat {
                length_m: 9.0,
                beam_m: 2.8,
                heading_deg: 35.0,
            },
            colour: [235, 235, 232],
        },
        Target {
            lat_deg: person_lat,
            lon_deg: person_lon,
            kind: TargetKind::Person { diameter_m: 0.6 },
            colour: [20, 110, 245],
        },
    ];
    scene.land_east_of_m = Some(70.0);
    Sortie {
        scene,
        start_us: 1_748_746_800_000_000,
        seconds,
        fps: 10.0,
        width,
        height,
        lens: Lens::default(),
        start_lat: lat,
        start_lon: lon,
        height_m: 100.0,
        heading_deg: 0.0,
        speed_mps: 8.0,
        lean_deg: -4.0,
        sway_deg: 1.5,
        gimbal: Gimbal::horizon_pitch(-60.0),
        telemetry_hz: 10.0,
        log_margin_s: 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortie_telemetry_is_a_tlog_the_track_reads_back() {
        let sortie = patrol_sortie(1, 64, 48, 2.0);
        let track = super::super::track::PoseTrack::from_tlog(&sortie.telemetry(), None).unwrap();
        let (a, b) = track.span_us();
        assert_eq!(
            (a, b),
            (sortie.start_us - 1_000_000, sortie.start_us + 3_000_000)
        );
        assert!(track.has_gimbal());
        let p = track
            .pose_at(sortie.start_us + 1_250_000, &Default::default())
            .unwrap();
        let truth = sortie.pose_at(1.25);
        assert!((p.vehicle.lat_deg - truth.vehicle.lat_deg).abs() < 2e-7);
        assert!(
            (p.vehicle.roll_deg - truth.vehicle.roll_deg).abs() < 0.05,
            "{} {}",
            p.vehicle.roll_deg,
            truth.vehicle.roll_deg
        );
        assert_eq!(p.gimbal, truth.gimbal);
    }
}
