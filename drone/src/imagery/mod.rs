//! Drone imagery: frames from a video file, a stream or an image sequence; vessels and people on
//! the water found without a downloaded model; each detection put on the map from the
//! vehicle's pose, the gimbal and the camera, with the frame crop as evidence.
//!
//! The road from a sortie's video and telemetry log to detections:
//!
//! 1. [`frames::FrameSource`] reads frames through OpenCV's `videoio` (any container and codec
//!    its FFmpeg backend reads, or an `rtsp://`/`udp://` stream) or a directory of images, each
//!    frame with its time.
//! 2. [`track::PoseTrack`] reads the tlog the ground station wrote (GLOBAL_POSITION_INT,
//!    ATTITUDE and, when the vehicle sends them, MOUNT_ORIENTATION or
//!    GIMBAL_DEVICE_ATTITUDE_STATUS) and interpolates the camera's pose at each frame's time.
//! 3. [`detect::Detector`] segments the water, runs a CFAR-like anomaly test on it and measures
//!    each object on the sea surface with the [`camera::View`] of that frame.
//! 4. [`detection::Detection`] is the typed result (position, time, size, class, score, pose
//!    and a JPEG crop); [`detection::feature_collection`] writes them as GeoJSON.
//!
//! [`analyse::analyse`] drives the whole road; [`render`] draws synthetic frames from a known
//! pose and [`sortie`] films and logs a whole synthetic flight, so that tests and benchmarks
//! know the truth.
//!
//! ```
//! use mizugiwa_drone::imagery::camera::{CameraPose, Gimbal, Intrinsics, Lens, VehiclePose, View};
//!
//! // A 1" sensor behind an 8.8 mm lens, 100 m above the sea, looking straight down.
//! let intrinsics = Intrinsics::from_lens(1280, 720, Lens::default()).unwrap();
//! let vehicle = VehiclePose { lat_deg: 34.2, lon_deg: 129.3, height_m: 100.0, roll_deg: 0.0, pitch_deg: 0.0, yaw_deg: 0.0 };
//! let view = View::new(intrinsics, CameraPose { vehicle, gimbal: Gimbal::body_pitch(-90.0) });
//! // The image centre is the point below the vehicle; the top edge is north (the vehicle
//! // heads north), 42 m away.
//! let (lat, lon) = view.georeference(639.5, 359.5).unwrap();
//! assert!((lat - 34.2).abs() < 1e-9 && (lon - 129.3).abs() < 1e-9);
//! let top = view.sea_point(639.5, 0.0).unwrap();
//! assert!((top.north_m - 42.1).abs() < 0.1 && top.east_m.abs() < 1e-6);
//! ```

pub mod analyse;
mod anomaly;
pub mod camera;
pub mod detect;
pub mod detection;
pub mod frames;
pub mod render;
pub mod sortie;
pub mod timestamps;
pub mod track;
mod water;

/// What went wrong reading a sortie's imagery or telemetry, or running OpenCV on it.
#[derive(Debug, thiserror::Error)]
pub enum ImageryError {
    #[error("{source_name}: {reason}")]
    Frames { source_name: String, reason: String },
    #[error("telemetry: {0}")]
    Telemetry(String),
    #[error(
        "frame {frame} at {frame_time} is outside the telemetry log, which covers {log_start} to {log_end}: \
         the log is not of this video, or the video's start time is wrong (--video-start)"
    )]
    NotCovered {
        frame: u64,
        frame_time: String,
        log_start: String,
        log_end: String,
    },
    #[error("camera: {0}")]
    Camera(String),
    #[error("OpenCV: {0}")]
    OpenCv(#[from] opencv::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Keeps OpenCV's own log (GStreamer and image-sequence probes that print warnings for every
/// file they cannot open) off the terminal: every failure reaches the caller as an
/// [`ImageryError`] that says what was wrong. For binaries; a library should not change a
/// process-wide setting behind its caller's back.
pub fn quiet_opencv_log() {
    let _ = opencv::core::set_log_level(opencv::core::LogLevel::LOG_LEVEL_SILENT);
}
