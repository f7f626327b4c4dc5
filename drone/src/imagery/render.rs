//! Synthetic frames: a sea with boats, people and a coast drawn from a known camera pose, so
//! that tests and benchmarks know where every target truly is ([`super::sortie`] films and
//! logs a whole flight with them).
//!
//! The sea is a texture fixed to the ground (a swell and two octaves of value noise, in
//! metres), lit brighter towards grazing angles where it reflects the sky, with sensor noise on
//! top. Targets are polygons on the sea surface projected with [`View::project_local`] (a plane
//! maps to the image by a homography, so projected straight edges stay exact) and filled with
//! anti-aliasing at sub-pixel precision. Everything is deterministic for a seed.

use opencv::core::{Mat, Point, Scalar, Vector, CV_8UC3};
use opencv::imgproc;
use opencv::prelude::*;

use super::camera::View;
use super::ImageryError;

/// A small deterministic generator (SplitMix64): renders and benchmarks take a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn gaussian(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What floats on the sea.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TargetKind {
    /// A hull `length_m` × `beam_m`, bow towards `heading_deg`, with a darker cabin amidships.
    Boat {
        length_m: f64,
        beam_m: f64,
        heading_deg: f64,
    },
    /// A head and shoulders (or a buoy) of `diameter_m`.
    Person { diameter_m: f64 },
}

/// A target at a known place: its footprint's centroid is at `lat_deg`, `lon_deg`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub lat_deg: f64,
    pub lon_deg: f64,
    pub kind: TargetKind,
    /// Colour, BGR.
    pub colour: [u8; 3],
}

/// The world a sortie flies over.
#[derive(Debug, Clone)]
pub struct Scene {
    /// Where the texture is anchored.
    pub origin_lat: f64,
    pub origin_lon: f64,
    pub seed: u64,
    /// Sea colour, BGR.
    pub sea: [f64; 3],
    /// Brightness swing of the waves, as a fraction.
    pub waves: f64,
    /// Sensor noise, 8-bit levels (standard deviation).
    pub noise: f64,
    pub targets: Vec<Target>,
    /// Land east of this many metres east of the origin (a wavy north–south coastline), if any.
    pub land_east_of_m: Option<f64>,
}

impl Scene {
    /// Open sea with a gentle swell, no targets.
    pub fn open_sea(origin_lat: f64, origin_lon: f64, seed: u64) -> Scene {
        Scene {
            origin_lat,
            origin_lon,
            seed,
            sea: [112.0, 84.0, 42.0],
            waves: 0.10,
            noise: 2.0,
            targets: Vec::new(),
            land_east_of_m: None,
        }
    }
}

/// Value noise: a hashed lattice, smoothly interpolated, in [-1, 1].
fn value_noise(seed: u64, x: f64, y: f64) -> f64 {
    let (xf, yf) = (x.floor(), y.floor());
    let (ix, iy) = (xf as i64, yf as i64);
    let (fx, fy) = (x - xf, y - yf);
    let smooth = |t: f64| t * t * (3.0 - 2.0 * t);
    let corner = |dx: i64, dy: i64| {
        let h = mix(seed
            ^ ((ix + dx) as u64).wrapping_mul(0x8CB9_2BA7_2F3D_8DD7)
            ^ ((iy + dy) as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        (h >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    };
    let (sx, sy) = (smooth(fx), smooth(fy));
    let top = corner(0, 0) + (corner(1, 0) - corner(0, 0)) * sx;
    let bottom = corner(0, 1) + (corner(1, 1) - corner(0, 1)) * sx;
    top + (bottom - top) * sy
}

const SKY: [f64; 3] = [222.0, 204.0, 186.0];
const SAND: [f64; 3] = [150.0, 188.0, 206.0];
const GREEN: [f64; 3] = [62.0, 104.0, 78.0];

/// The colour of the world at `north`, `east` m from the scene origin, seen along a ray that
/// leaves the vertical by an angle with cosine `cos_view`.
fn ground_colour(scene: &Scene, north: f64, east: f64, cos_view: f64) -> [f64; 3] {
    let s = scene.seed;
    if let Some(coast) = scene.land_east_of_m {
        let shore =
            coast + 15.0 * (north / 45.0).sin() + 6.0 * value_noise(s ^ 1, north / 30.0, 0.0);
        let inland = east - shore;
        if inland > 0.0 {
            let base = if inland < 14.0 { SAND } else { GREEN };
            let rough = if inland < 14.0 { 0.08 } else { 0.35 };
            let t = rough
                * (value_noise(s ^ 2, north / 1.5, east / 1.5)
                    + 0.5 * value_noise(s ^ 3, north / 0.5, east / 0.5));
            return base.map(|c| c * (1.0 + t));
        }
        if inland > -3.0 {
            // Surf: foam on the last metres of water.
            let foam = 0.5 + 0.3 * value_noise(s ^ 4, north / 0.7, east / 0.7);
            let sea = sea_colour(scene, north, east, cos_view);
            return [0, 1, 2].map(|i| sea[i] + (235.0 - sea[i]) * foam);
        }
    }
    sea_colour(scene, north, east, cos_view)
}

fn sea_colour(scene: &Scene, north: f64, east: f64, cos_view: f64) -> [f64; 3] {
    let s = scene.seed;
    let (sin30, cos30) = (0.5, 0.866_025_403_784_438_6);
    let swell = (std::f64::consts::TAU * (north * cos30 + east * sin30) / 22.0).sin();
    let chop =
        value_noise(s, north / 3.0, east / 3.0) + 0.5 * value_noise(s ^ 7, north / 0.9, east / 0.9);
    let v = 0.45 * swell + 0.55 * chop;
    // Water reflects more sky towards grazing angles (Schlick's approximation of Fresnel).
    let fresnel = 0.02 + 0.98 * (1.0 - cos_view.clamp(0.0, 1.0)).powi(5);
    [0, 1, 2].map(|i| {
        let water = scene.sea[i] * (1.0 + scene.waves * v);
        water + (SKY[i] - water) * fresnel
    })
}

/// A polygon on the sea around a target's centroid: (forward, starboard) m.
type Outline = Vec<(f64, f64)>;

/// The footprint of a target and, for a boat, its cabin.
fn footprint(kind: &TargetKind) -> (Outline, Option<Outline>) {
    match *kind {
        TargetKind::Boat {
            length_m: l,
            beam_m: b,
            ..
        } => {
            let hull = [
                (-0.5, -0.5),
                (0.25, -0.5),
                (0.38, -0.36),
                (0.5, 0.0),
                (0.38, 0.36),
                (0.25, 0.5),
                (-0.5, 0.5),
            ]
            .map(|(x, y)| (x * l, y * b));
            // Centre on the area centroid (shoelace), where the truth is stated.
            let (mut a, mut cx, mut cy) = (0.0, 0.0, 0.0);
            for i in 0..hull.len() {
                let (p, q) = (hull[i], hull[(i + 1) % hull.len()]);
                let cross = p.0 * q.1 - q.0 * p.1;
                a += cross;
                cx += (p.0 + q.0) * cross;
                cy += (p.1 + q.1) * cross;
            }
            let (cx, cy) = (cx / (3.0 * a), cy / (3.0 * a));
            let hull = hull.iter().map(|&(x, y)| (x - cx, y - cy)).collect();
            let cabin = [(-0.2, -0.3), (0.1, -0.3), (0.1, 0.3), (-0.2, 0.3)]
                .iter()
                .map(|&(x, y)| (x * l - cx, y * b - cy))
                .collect();
            (hull, Some(cabin))
        }
        TargetKind::Person { diameter_m } => {
            let r = diameter_m / 2.0;
            (
                (0..16)
                    .map(|k| (std::f64::consts::TAU * k as f64 / 16.0).sin_cos())
                    .map(|(s, c)| (r * c, r * s))
                    .collect(),
                None,
            )
        }
    }
}

/// A frame of `scene` seen from `view`, 8-bit BGR. `frame_seed` varies the sensor noise.
pub fn render(scene: &Scene, view: &View, frame_seed: u64) -> Result<Mat, ImageryError> {
    let (w, h) = (view.intrinsics.width as i32, view.intrinsics.height as i32);
    let mut image = Mat::new_rows_cols_with_default(h, w, CV_8UC3, Scalar::all(0.0))?;
    // The vehicle relative to the scene origin.
    let (on, oe) = view.local(scene.origin_lat, scene.origin_lon);
    let height = view.pose.vehicle.height_m;
    let mut rng = Rng::new(mix(scene.seed) ^ frame_seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let pixels = image.data_bytes_mut()?;
    for y in 0..h {
        for x in 0..w {
            let [n, e, d] = view.ray(f64::from(x), f64::from(y));
            let norm = (n * n + e * e + d * d).sqrt();
            let colour = if d > 1e-9 && height > 0.0 {
                let t = height / d;
                ground_colour(scene, n * t - on, e * t - oe, d / norm)
            } else {
                // Sky: paler towards the horizon.
                let up = (-d / norm).clamp(0.0, 1.0);
                [SKY[0] + 20.0 * up, SKY[1] - 10.0 * up, SKY[2] - 40.0 * up]
            };
            let at = 3 * (y * w + x) as usize;
            for c in 0..3 {
                // The sum of four uniforms is close enough to Gaussian for sensor noise and
                // cheaper than Box–Muller per channel.
                let noise = (rng.uniform() + rng.uniform() + rng.uniform() + rng.uniform() - 2.0)
                    * 1.732
                    * scene.noise;
                pixels[at + c] = (colour[c] + noise).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    for target in &scene.targets {
        draw_target(&mut image, view, target)?;
    }
    Ok(image)
}

fn draw_target(image: &mut Mat, view: &View, target: &Target) -> Result<(), ImageryError> {
    let (tn, te) = view.local(target.lat_deg, target.lon_deg);
    let heading = match target.kind {
        TargetKind::Boat { heading_deg, .. } => heading_deg.to_radians(),
        TargetKind::Person { .. } => 0.0,
    };
    let (s, c) = heading.sin_cos();
    // Sub-pixel vertices: OpenCV takes fixed point with 4 fractional bits.
    const SHIFT: i32 = 4;
    let to_pixels = |poly: &[(f64, f64)]| -> Option<Vector<Point>> {
        poly.iter()
            .map(|&(fwd, stbd)| {
                let (u, v) =
                    view.project_local(tn + fwd * c - stbd * s, te + fwd * s + stbd * c)?;
                (u.abs() < 1e5 && v.abs() < 1e5)
                    .then(|| Point::new((u * 16.0).round() as i32, (v * 16.0).round() as i32))
            })
            .collect()
    };
    let (hull, cabin) = footprint(&target.kind);
    let colour = Scalar::new(
        f64::from(target.colour[0]),
        f64::from(target.colour[1]),
        f64::from(target.colour[2]),
        0.0,
    );
    let Some(hull) = to_pixels(&hull) else {
        return Ok(());
    };
    imgproc::fill_poly(
        image,
        &Vector::<Vector<Point>>::from_iter([hull]),
        colour,
        imgproc::LINE_AA,
        SHIFT,
        Point::new(0, 0),
    )?;
    if let Some(cabin) = cabin.as_deref().and_then(to_pixels) {
        let grey = Scalar::new(118.0, 118.0, 124.0, 0.0);
        imgproc::fill_poly(
            image,
            &Vector::<Vector<Point>>::from_iter([cabin]),
            grey,
            imgproc::LINE_AA,
            SHIFT,
            Point::new(0, 0),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use opencv::core;

    use super::*;
    use crate::imagery::camera::{CameraPose, Gimbal, Intrinsics, Lens, VehiclePose};

    fn mean_bgr(image: &Mat) -> [f64; 3] {
        let m = core::mean(image, &core::no_array()).unwrap();
        [m[0], m[1], m[2]]
    }

    #[test]
    fn a_rendered_boat_lands_on_the_pixel_its_position_projects_to() {
        let mut scene = Scene::open_sea(34.2, 129.25, 3);
        let view = View::new(
            Intrinsics::from_lens(320, 240, Lens::default()).unwrap(),
            CameraPose {
                vehicle: VehiclePose {
                    lat_deg: 34.2,
                    lon_deg: 129.25,
                    height_m: 60.0,
                    roll_deg: 0.0,
                    pitch_deg: 0.0,
                    yaw_deg: 0.0,
                },
                gimbal: Gimbal::body_pitch(-90.0),
            },
        );
        let (lat, lon) = view.lat_lon(10.0, -5.0);
        scene.targets.push(Target {
            lat_deg: lat,
            lon_deg: lon,
            kind: TargetKind::Boat {
                length_m: 6.0,
                beam_m: 2.0,
                heading_deg: 90.0,
            },
            colour: [250, 250, 250],
        });
        let image = render(&scene, &view, 0).unwrap();
        let (u, v) = view.project(lat, lon).unwrap();
        let px = image
            .at_2d::<core::Vec3b>(v.round() as i32, u.round() as i32 + 6)
            .unwrap();
        // The hull is white around the cabin; the sea is blue (B > R).
        assert!(px[0] > 200 && px[2] > 200, "{px:?} at ({u}, {v})");
        let sea = image.at_2d::<core::Vec3b>(20, 20).unwrap();
        assert!(sea[0] > sea[2] + 30, "{sea:?}");
        // Deterministic for a seed, different noise for another frame.
        assert_eq!(
            mean_bgr(&render(&scene, &view, 0).unwrap()),
            mean_bgr(&image)
        );
        assert_ne!(
            mean_bgr(&render(&scene, &view, 1).unwrap()),
            mean_bgr(&image)
        );
    }
}
