//! The camera model and georeferencing: a pixel to a point on the sea surface, and back.
//!
//! Frames and conventions:
//! - Pixels: `u` to the right, `v` down, the centre of the top-left pixel at (0, 0) (OpenCV's).
//! - Camera: `x` right, `y` down, `z` along the optical axis (OpenCV's). A pinhole without
//!   distortion: frames from lenses with visible distortion should be undistorted first.
//! - Body: `x` forward, `y` right, `z` down (FRD, as MAVLink's ATTITUDE). With zero gimbal
//!   angles the camera looks forward, the top of the image up.
//! - World: north, east, down (NED) at the vehicle; attitude and gimbal angles are the
//!   aerospace Z-Y-X sequence (yaw, then pitch, then roll). Positive pitch raises the optical
//!   axis, so a gimbal pitch of −90° looks straight down (nadir).
//!
//! The sea surface is a plane at the vehicle's height below it. That height is GLOBAL_POSITION_INT's
//! `relative_alt` (above home) plus the height of home above the sea: zero for a coastal
//! take-off at the water's edge, which is how patrols launch; pass it otherwise. Tide and waves
//! are ignored (a metre of error in height moves a point by a metre times the tangent of the
//! view angle). Latitude and longitude come from a local tangent plane with the WGS84 radii of
//! curvature at the vehicle: within a few kilometres its error is centimetres, far below the
//! error from attitude.

use serde::Serialize;

use super::ImageryError;

const WGS84_A: f64 = 6_378_137.0;
const WGS84_E2: f64 = 6.694_379_990_14e-3;

/// A camera's lens and sensor, from its data sheet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Lens {
    /// Width of the sensor's active area, mm.
    pub sensor_width_mm: f64,
    /// Focal length, mm.
    pub focal_mm: f64,
}

impl Default for Lens {
    /// A 1" sensor behind an 8.8 mm lens (73.7° across), common on survey drones; the same
    /// default as [`crate::plan::Camera`]'s footprint.
    fn default() -> Lens {
        Lens {
            sensor_width_mm: 13.2,
            focal_mm: 8.8,
        }
    }
}

/// Pinhole intrinsics in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Intrinsics {
    pub width: u32,
    pub height: u32,
    /// Focal length in pixels, across and down.
    pub fx: f64,
    pub fy: f64,
    /// Principal point, pixels.
    pub cx: f64,
    pub cy: f64,
}

impl Intrinsics {
    /// Square pixels spread over the sensor's width, the principal point at the image centre
    /// (what a data sheet allows; a calibration gives better).
    pub fn from_lens(width: u32, height: u32, lens: Lens) -> Result<Intrinsics, ImageryError> {
        let ok = |x: f64| x.is_finite() && x > 0.0;
        if width == 0 || height == 0 {
            return Err(ImageryError::Camera(format!(
                "a {width}x{height} image has no pixels"
            )));
        }
        if !ok(lens.sensor_width_mm) || !ok(lens.focal_mm) {
            return Err(ImageryError::Camera(format!(
                "sensor width {} mm and focal length {} mm must be positive",
                lens.sensor_width_mm, lens.focal_mm
            )));
        }
        let f = lens.focal_mm / lens.sensor_width_mm * f64::from(width);
        Ok(Intrinsics {
            width,
            height,
            fx: f,
            fy: f,
            cx: (f64::from(width) - 1.0) / 2.0,
            cy: (f64::from(height) - 1.0) / 2.0,
        })
    }

    /// Whether (u, v) falls on the image (pixel centres run from 0 to width − 1).
    pub fn contains(&self, u: f64, v: f64) -> bool {
        u >= -0.5
            && v >= -0.5
            && u < f64::from(self.width) - 0.5
            && v < f64::from(self.height) - 0.5
    }
}

/// Where the vehicle is and how it is turned.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VehiclePose {
    pub lat_deg: f64,
    pub lon_deg: f64,
    /// Height of the camera above the sea surface, m.
    pub height_m: f64,
    pub roll_deg: f64,
    pub pitch_deg: f64,
    /// Heading, degrees clockwise from north.
    pub yaw_deg: f64,
}

/// What the gimbal's angles are measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GimbalFrame {
    /// All three relative to the vehicle's body: a camera fixed to the airframe, or a gimbal
    /// that reports body angles. The vehicle's roll and pitch tilt the view.
    Body,
    /// Roll and pitch relative to the horizon (a stabilised gimbal), yaw relative to the
    /// vehicle's heading: MOUNT_ORIENTATION's `roll`, `pitch` and `yaw`, and
    /// GIMBAL_DEVICE_ATTITUDE_STATUS in the vehicle frame.
    Horizon,
    /// Roll and pitch relative to the horizon, yaw from north: a gimbal locked on a bearing
    /// (GIMBAL_DEVICE_ATTITUDE_STATUS in the earth frame).
    Earth,
}

/// The gimbal's angles, degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Gimbal {
    pub roll_deg: f64,
    pub pitch_deg: f64,
    pub yaw_deg: f64,
    pub frame: GimbalFrame,
}

impl Gimbal {
    /// A camera fixed to the body, tilted down by `-pitch_deg` (−90: nadir).
    pub fn body_pitch(pitch_deg: f64) -> Gimbal {
        Gimbal {
            roll_deg: 0.0,
            pitch_deg,
            yaw_deg: 0.0,
            frame: GimbalFrame::Body,
        }
    }

    /// A stabilised gimbal at `pitch_deg` below the horizon, looking along the heading.
    pub fn horizon_pitch(pitch_deg: f64) -> Gimbal {
        Gimbal {
            roll_deg: 0.0,
            pitch_deg,
            yaw_deg: 0.0,
            frame: GimbalFrame::Horizon,
        }
    }
}

/// The pose of the camera when a frame was taken.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CameraPose {
    pub vehicle: VehiclePose,
    pub gimbal: Gimbal,
}

/// A point on the sea surface relative to the point below the vehicle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeaPoint {
    pub north_m: f64,
    pub east_m: f64,
    /// Slant range from the camera, m.
    pub range_m: f64,
}

type Mat3 = [[f64; 3]; 3];

/// One frame's geometry: intrinsics and pose, with the rotation from camera to NED worked out
/// once so that per-pixel calls are a few multiplications.
#[derive(Debug, Clone)]
pub struct View {
    pub intrinsics: Intrinsics,
    pub pose: CameraPose,
    /// Camera to NED.
    rotation: Mat3,
    /// Metres per radian of latitude and of longitude at the vehicle.
    m_per_rad_lat: f64,
    m_per_rad_lon: f64,
}

impl View {
    pub fn new(intrinsics: Intrinsics, pose: CameraPose) -> View {
        let v = &pose.vehicle;
        let g = &pose.gimbal;
        let gimbal = zyx(g.yaw_deg, g.pitch_deg, g.roll_deg);
        let mount_to_ned = match g.frame {
            GimbalFrame::Body => mul(&zyx(v.yaw_deg, v.pitch_deg, v.roll_deg), &gimbal),
            GimbalFrame::Horizon => zyx(v.yaw_deg + g.yaw_deg, g.pitch_deg, g.roll_deg),
            GimbalFrame::Earth => gimbal,
        };
        // Camera axes (right, down, forward) on the mount's (forward, right, down).
        const CAMERA_TO_MOUNT: Mat3 = [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        let (m_per_rad_lat, m_per_rad_lon) = radii(v.lat_deg);
        View {
            intrinsics,
            pose,
            rotation: mul(&mount_to_ned, &CAMERA_TO_MOUNT),
            m_per_rad_lat,
            m_per_rad_lon,
        }
    }

    /// The direction of pixel (u, v) in NED (not normalised).
    pub fn ray(&self, u: f64, v: f64) -> [f64; 3] {
        let i = &self.intrinsics;
        mulv(&self.rotation, [(u - i.cx) / i.fx, (v - i.cy) / i.fy, 1.0])
    }

    /// Where pixel (u, v) meets the sea, or `None` for a ray at or above the horizon (or a
    /// camera at or below the surface).
    pub fn sea_point(&self, u: f64, v: f64) -> Option<SeaPoint> {
        let h = self.pose.vehicle.height_m;
        let [n, e, d] = self.ray(u, v);
        // A ray within 1e-9 of level meets the plane beyond any useful range.
        if h.is_nan() || h <= 0.0 || d <= 1e-9 {
            return None;
        }
        let t = h / d;
        Some(SeaPoint {
            north_m: n * t,
            east_m: e * t,
            range_m: t * (n * n + e * e + d * d).sqrt(),
        })
    }

    /// Latitude and longitude, degrees, of pixel (u, v) on the sea surface.
    pub fn georeference(&self, u: f64, v: f64) -> Option<(f64, f64)> {
        let p = self.sea_point(u, v)?;
        Some(self.lat_lon(p.north_m, p.east_m))
    }

    /// The position `north_m`, `east_m` from the point below the vehicle.
    pub fn lat_lon(&self, north_m: f64, east_m: f64) -> (f64, f64) {
        let v = &self.pose.vehicle;
        (
            v.lat_deg + (north_m / self.m_per_rad_lat).to_degrees(),
            v.lon_deg + (east_m / self.m_per_rad_lon).to_degrees(),
        )
    }

    /// North and east, m, of a position from the point below the vehicle.
    pub fn local(&self, lat_deg: f64, lon_deg: f64) -> (f64, f64) {
        let v = &self.pose.vehicle;
        (
            (lat_deg - v.lat_deg).to_radians() * self.m_per_rad_lat,
            (lon_deg - v.lon_deg).to_radians() * self.m_per_rad_lon,
        )
    }

    /// The pixel that sees the sea surface at `north_m`, `east_m` from the point below the
    /// vehicle, or `None` behind the camera. It may lie outside the image
    /// ([`Intrinsics::contains`]).
    pub fn project_local(&self, north_m: f64, east_m: f64) -> Option<(f64, f64)> {
        self.project_ned([north_m, east_m, self.pose.vehicle.height_m])
    }

    /// The pixel of a point `ned` metres from the camera.
    pub fn project_ned(&self, ned: [f64; 3]) -> Option<(f64, f64)> {
        let [x, y, z] = mulv(&transpose(&self.rotation), ned);
        if z <= 1e-9 {
            return None;
        }
        let i = &self.intrinsics;
        Some((i.fx * x / z + i.cx, i.fy * y / z + i.cy))
    }

    /// The pixel that sees a position on the sea surface (the inverse of
    /// [`View::georeference`]).
    pub fn project(&self, lat_deg: f64, lon_deg: f64) -> Option<(f64, f64)> {
        let (n, e) = self.local(lat_deg, lon_deg);
        self.project_local(n, e)
    }

    /// Ground sample distance at (u, v), m per pixel: the geometric mean of the ground
    /// covered by one pixel's step across and one down (they differ in an oblique view).
    pub fn ground_sample_m(&self, u: f64, v: f64) -> Option<f64> {
        let p = self.sea_point(u, v)?;
        let across = self.sea_point(u + 1.0, v)?;
        let down = self.sea_point(u, v + 1.0)?;
        let d = |a: &SeaPoint| (a.north_m - p.north_m).hypot(a.east_m - p.east_m);
        Some((d(&across) * d(&down)).sqrt())
    }
}

/// The position `north_m`, `east_m` from (`lat_deg`, `lon_deg`) on the local tangent plane.
pub fn offset_lat_lon(lat_deg: f64, lon_deg: f64, north_m: f64, east_m: f64) -> (f64, f64) {
    let (m_lat, m_lon) = radii(lat_deg);
    (
        lat_deg + (north_m / m_lat).to_degrees(),
        lon_deg + (east_m / m_lon).to_degrees(),
    )
}

/// Metres between two positions a few kilometres apart at most (local tangent plane).
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (m_lat, m_lon) = radii((a.0 + b.0) / 2.0);
    ((b.0 - a.0).to_radians() * m_lat).hypot((b.1 - a.1).to_radians() * m_lon)
}

/// Metres per radian of latitude (meridian radius) and of longitude (prime vertical radius
/// times cos φ) on the WGS84 ellipsoid.
fn radii(lat_deg: f64) -> (f64, f64) {
    let (s, c) = lat_deg.to_radians().sin_cos();
    let w = (1.0 - WGS84_E2 * s * s).sqrt();
    (WGS84_A * (1.0 - WGS84_E2) / (w * w * w), WGS84_A / w * c)
}

/// Rz(yaw) · Ry(pitch) · Rx(roll), degrees.
fn zyx(yaw_deg: f64, pitch_deg: f64, roll_deg: f64) -> Mat3 {
    let (sy, cy) = yaw_deg.to_radians().sin_cos();
    let (sp, cp) = pitch_deg.to_radians().sin_cos();
    let (sr, cr) = roll_deg.to_radians().sin_cos();
    [
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ]
}

fn mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

fn mulv(a: &Mat3, v: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| a[i][0] * v[0] + a[i][1] * v[1] + a[i][2] * v[2])
}

fn transpose(a: &Mat3) -> Mat3 {
    [
        [a[0][0], a[1][0], a[2][0]],
        [a[0][1], a[1][1], a[2][1]],
        [a[0][2], a[1][2], a[2][2]],
    ]
}

/// Roll, pitch and yaw, degrees, of a unit quaternion (w, x, y, z) in the Z-Y-X sequence, as
/// GIMBAL_DEVICE_ATTITUDE_STATUS reports the gimbal.
pub fn quaternion_to_euler_deg(q: [f64; 4]) -> (f64, f64, f64) {
    let [w, x, y, z] = q;
    let sin_pitch = (2.0 * (w * y - z * x)).clamp(-1.0, 1.0);
    let pitch = sin_pitch.asin();
    // Looking straight up or down (a nadir gimbal, the usual case), roll and yaw turn about the
    // same axis and only their sum is defined: roll is taken as 0 and the whole turn as yaw.
    // The margin is what a quaternion sent as f32 can resolve.
    if sin_pitch.abs() > 0.999_999 {
        let yaw = (2.0 * (w * z - x * y)).atan2(1.0 - 2.0 * (x * x + z * z));
        return (0.0, pitch.to_degrees(), yaw.to_degrees());
    }
    let roll = (2.0 * (w * x + y * z)).atan2(1.0 - 2.0 * (x * x + y * y));
    let yaw = (2.0 * (w * z + x * y)).atan2(1.0 - 2.0 * (y * y + z * z));
    (roll.to_degrees(), pitch.to_degrees(), yaw.to_degrees())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(height_m: f64, roll: f64, pitch: f64, yaw: f64, gimbal: Gimbal) -> View {
        let intrinsics = Intrinsics::from_lens(1280, 720, Lens::default()).unwrap();
        let vehicle = VehiclePose {
            lat_deg: 34.25,
            lon_deg: 129.35,
            height_m,
            roll_deg: roll,
            pitch_deg: pitch,
            yaw_deg: yaw,
        };
        View::new(intrinsics, CameraPose { vehicle, gimbal })
    }

    #[test]
    fn nadir_view_looks_straight_down_with_the_top_of_the_image_ahead() {
        let v = view(100.0, 0.0, 0.0, 90.0, Gimbal::body_pitch(-90.0));
        let c = v.sea_point(639.5, 359.5).unwrap();
        assert!(
            c.north_m.abs() < 1e-9 && c.east_m.abs() < 1e-9 && (c.range_m - 100.0).abs() < 1e-9
        );
        // Heading east: the top of the image is east, the right edge south.
        let top = v.sea_point(639.5, 0.0).unwrap();
        assert!(top.east_m > 40.0 && top.north_m.abs() < 1e-6, "{top:?}");
        let right = v.sea_point(1279.0, 359.5).unwrap();
        assert!(
            right.north_m < -70.0 && right.east_m.abs() < 1e-6,
            "{right:?}"
        );
        // 100 m / 853.3 px: 0.117 m per pixel.
        assert!((v.ground_sample_m(639.5, 359.5).unwrap() - 100.0 / 853.333).abs() < 1e-4);
    }

    #[test]
    fn projection_and_georeferencing_are_inverses() {
        let gimbals = [
            Gimbal::body_pitch(-90.0),
            Gimbal::body_pitch(-40.0),
            Gimbal::horizon_pitch(-60.0),
            Gimbal {
                roll_deg: 3.0,
                pitch_deg: -30.0,
                yaw_deg: 200.0,
                frame: GimbalFrame::Earth,
            },
        ];
        for (k, g) in gimbals.into_iter().enumerate() {
            let v = view(50.0 + 40.0 * k as f64, 4.0, -6.0, 37.0 * k as f64, g);
            for (u, w) in [
                (0.0, 0.0),
                (1279.0, 719.0),
                (640.0, 360.0),
                (100.5, 600.25),
                (1200.0, 80.0),
            ] {
                let Some((lat, lon)) = v.georeference(u, w) else {
                    continue;
                };
                let (pu, pv) = v.project(lat, lon).unwrap();
                assert!(
                    (pu - u).abs() < 1e-6 && (pv - w).abs() < 1e-6,
                    "gimbal {k}: ({u}, {w}) came back as ({pu}, {pv})"
                );
            }
        }
    }

    #[test]
    fn rays_at_or_above_the_horizon_meet_no_sea() {
        // Looking at the horizon: the upper half of the image is sky.
        let v = view(100.0, 0.0, 0.0, 0.0, Gimbal::horizon_pitch(0.0));
        assert!(v.sea_point(640.0, 100.0).is_none());
        assert!(
            v.georeference(640.0, 359.5).is_none(),
            "the centre row is the horizon itself"
        );
        let below = v.sea_point(640.0, 719.0).unwrap();
        assert!(below.north_m > 100.0, "{below:?}");
        // A point behind the camera has no pixel.
        assert!(v.project_local(-500.0, 0.0).is_none());
        // A camera under water sees no sea surface.
        assert!(view(-1.0, 0.0, 0.0, 0.0, Gimbal::body_pitch(-90.0))
            .sea_point(640.0, 360.0)
            .is_none());
    }

    #[test]
    fn vehicle_attitude_tilts_a_body_fixed_camera_but_not_a_stabilised_one() {
        // Rolled 10° right (right wing down): the belly, and a body-fixed nadir camera, turn to
        // the left, 100·tan(10°) = 17.6 m west when heading north; a stabilised gimbal still
        // looks straight down.
        let body = view(100.0, 10.0, 0.0, 0.0, Gimbal::body_pitch(-90.0))
            .sea_point(639.5, 359.5)
            .unwrap();
        assert!(
            (body.east_m + 17.633).abs() < 0.01 && body.north_m.abs() < 1e-9,
            "{body:?}"
        );
        let level = view(100.0, 10.0, 0.0, 0.0, Gimbal::horizon_pitch(-90.0))
            .sea_point(639.5, 359.5)
            .unwrap();
        assert!(level.east_m.abs() < 1e-9 && level.north_m.abs() < 1e-9);
        // Nose down 5° with the camera 45° down: the centre ray is 50° down, 83.9 m ahead.
        let p = view(100.0, 0.0, -5.0, 0.0, Gimbal::body_pitch(-45.0))
            .sea_point(639.5, 359.5)
            .unwrap();
        assert!(
            (p.north_m - 100.0 / 50f64.to_radians().tan()).abs() < 1e-6,
            "{p:?}"
        );
    }

    #[test]
    fn attitude_noise_moves_a_nadir_point_by_the_height_times_the_angle() {
        // Errors of σ in roll and pitch each move the point seen at the centre of a nadir view by
        // h·δ: the horizontal error is Rayleigh-distributed with mean h·σ·√(π/2). Yaw turns the
        // view about that very point.
        let mut rng = crate::imagery::render::Rng::new(7);
        for sigma_deg in [0.5, 1.0, 2.0] {
            for h in [50.0, 200.0] {
                let truth = view(h, 0.0, 0.0, 30.0, Gimbal::body_pitch(-90.0));
                let (lat, lon) = truth.georeference(639.5, 359.5).unwrap();
                let n = 4000;
                let mean = (0..n)
                    .map(|_| {
                        let noisy = view(
                            h,
                            sigma_deg * rng.gaussian(),
                            sigma_deg * rng.gaussian(),
                            30.0 + sigma_deg * rng.gaussian(),
                            Gimbal::body_pitch(-90.0),
                        );
                        distance_m(noisy.georeference(639.5, 359.5).unwrap(), (lat, lon))
                    })
                    .sum::<f64>()
                    / f64::from(n);
                let expected = h * f64::to_radians(sigma_deg) * (std::f64::consts::PI / 2.0).sqrt();
                assert!(
                    (mean / expected - 1.0).abs() < 0.05,
                    "σ {sigma_deg}° at {h} m: mean {mean:.3} m, expected {expected:.3} m"
                );
            }
        }
    }

    #[test]
    fn local_tangent_plane_matches_the_ellipsoid() {
        // One degree of latitude at 34° is 110.9 km on WGS84 (a sphere says 111.2 km).
        let (lat, _) = radii(34.0);
        assert!(
            (lat.to_radians() * 1.0 - 110_900.0).abs() < 100.0,
            "{}",
            lat.to_radians()
        );
        let v = view(100.0, 0.0, 0.0, 0.0, Gimbal::body_pitch(-90.0));
        let (la, lo) = v.lat_lon(1000.0, -250.0);
        let (n, e) = v.local(la, lo);
        assert!((n - 1000.0).abs() < 1e-6 && (e + 250.0).abs() < 1e-6);
    }

    #[test]
    fn gimbal_quaternions_become_euler_angles() {
        // A quaternion for pitch −90° (nadir): rotation of −90° about y.
        let h = std::f64::consts::FRAC_1_SQRT_2;
        let (r, p, y) = quaternion_to_euler_deg([h, 0.0, -h, 0.0]);
        assert!(
            r.abs() < 1e-6 && (p + 90.0).abs() < 1e-6 && y.abs() < 1e-6,
            "{r} {p} {y}"
        );
        // Nadir, turned 30° from the vehicle's heading (yaw 30°, then pitch −90°), as f32.
        let (c, s) = ((15f64).to_radians().cos(), (15f64).to_radians().sin());
        let q = [c * h, s * h, -c * h, s * h].map(|v| f64::from(v as f32));
        let (r, p, y) = quaternion_to_euler_deg(q);
        assert!(
            r == 0.0 && (p + 90.0).abs() < 0.2 && (y - 30.0).abs() < 1e-3,
            "{r} {p} {y}"
        );
        let (r, p, y) = quaternion_to_euler_deg([(0.5f64).cos(), 0.0, 0.0, (0.5f64).sin()]);
        assert!(r.abs() < 1e-9 && p.abs() < 1e-9 && (y - 1f64.to_degrees()).abs() < 1e-9);
    }

    #[test]
    fn bad_lenses_are_refused() {
        assert!(Intrinsics::from_lens(0, 720, Lens::default()).is_err());
        assert!(Intrinsics::from_lens(
            1280,
            720,
            Lens {
                sensor_width_mm: 0.0,
                focal_mm: 8.8
            }
        )
        .is_err());
        assert!(Intrinsics::from_lens(
            1280,
            720,
            Lens {
                sensor_width_mm: 13.2,
                focal_mm: f64::NAN
            }
        )
        .is_err());
    }
}
