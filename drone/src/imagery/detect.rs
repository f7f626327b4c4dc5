//! Vessels and people on the water without a trained model: the water found
//! ([`super::water`]), a CFAR-like anomaly test on it ([`super::anomaly`]), then each object
//! measured on the sea surface.
//!
//! Pixels above the threshold are closed (gaps up to `join_m`), their outer contours found, and
//! each contour measured on its core: centroid, and the smallest rotated rectangle with its
//! corners projected onto the sea, hence length and width in metres, which filter out specks and
//! coastlines and tell a vessel from a person. Objects cut by the frame's edge are left to the
//! frames that see them whole; faint blobs hugging a much stronger one are its compression
//! ringing and are dropped.

use opencv::core::{
    self, Mat, Point, Point2f, Rect, RotatedRect, Scalar, Size, Size2f, Vector, CV_8U,
};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

use super::anomaly;
use super::camera::View;
use super::detection::{Detection, DetectionClass};
use super::frames::Frame;
use super::water::{self, WaterConfig};
use super::ImageryError;

/// How objects are found and told apart. Every length is on the sea surface.
#[derive(Debug, Clone, Copy)]
pub struct DetectorConfig {
    pub water: WaterConfig,
    /// Anomaly threshold, in standard deviations of the water (the square root of the summed
    /// squares over L*, a*, b*). For Gaussian water a pixel passes 6 with probability 7e-8.
    pub threshold: f64,
    /// Side of the guard square, m: objects up to about this long do not raise their own
    /// background.
    pub guard_m: f64,
    /// Side of the background square, m.
    pub background_m: f64,
    /// Pieces of one object closer than this are joined, m.
    pub join_m: f64,
    /// Objects shorter or longer than these are dropped, m.
    pub min_length_m: f64,
    pub max_length_m: f64,
    /// Up to this long: [`DetectionClass::Person`]; from `vessel_min_m`: a vessel, m.
    pub person_max_m: f64,
    pub vessel_min_m: f64,
    /// Fewest pixels an object may cover.
    pub min_pixels: i32,
    /// Quality of the evidence crops, 1–100.
    pub crop_quality: i32,
}

impl Default for DetectorConfig {
    fn default() -> DetectorConfig {
        DetectorConfig {
            water: WaterConfig::default(),
            threshold: 6.0,
            guard_m: 30.0,
            background_m: 80.0,
            join_m: 0.6,
            min_length_m: 0.3,
            max_length_m: 60.0,
            person_max_m: 2.0,
            vessel_min_m: 3.0,
            min_pixels: 2,
            crop_quality: 90,
        }
    }
}

/// What one frame gave.
#[derive(Debug, Default)]
pub struct FrameDetections {
    /// Strongest first; ids are `f<frame>-<rank>`.
    pub detections: Vec<Detection>,
    /// Share of the frame that is clean water (0: no water found, nothing searched).
    pub water_fraction: f64,
}

/// Finds objects on the water in frames.
#[derive(Debug, Clone)]
pub struct Detector {
    config: DetectorConfig,
}

/// An object's core: where it stands out by at least this share of its peak statistic.
const CORE_SHARE: f64 = 0.3;

/// A weaker detection this close to a stronger one (pixels beyond the stronger one's box), with
/// less than SIDELOBE_SHARE of its score, is the stronger one's compression ringing (JPEG
/// works in 8- and 16-pixel blocks), not another object.
const SIDELOBE_PX: f64 = 16.0;
const SIDELOBE_SHARE: f64 = 0.3;

impl Detector {
    pub fn new(config: DetectorConfig) -> Result<Detector, ImageryError> {
        let c = &config;
        let positive = [
            c.threshold,
            c.guard_m,
            c.background_m,
            c.min_length_m,
            c.max_length_m,
            c.person_max_m,
            c.vessel_min_m,
        ];
        if positive.iter().any(|x| !(x.is_finite() && *x > 0.0)) || c.join_m < 0.0 {
            return Err(ImageryError::Camera(format!(
                "detector settings must be positive: {c:?}"
            )));
        }
        if c.background_m <= c.guard_m {
            return Err(ImageryError::Camera(format!(
                "the background square ({} m) must be larger than the guard square ({} m)",
                c.background_m, c.guard_m
            )));
        }
        if c.min_length_m >= c.max_length_m || c.person_max_m > c.vessel_min_m {
            return Err(ImageryError::Camera("length limits out of order".into()));
        }
        Ok(Detector { config })
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// The objects on the water in `frame`, seen from `view`.
    pub fn detect(&self, frame: &Frame, view: &View) -> Result<FrameDetections, ImageryError> {
        let c = &self.config;
        let image = &frame.image;
        let (w, h) = (image.cols(), image.rows());
        if (w as u32, h as u32) != (view.intrinsics.width, view.intrinsics.height) {
            return Err(ImageryError::Camera(format!(
                "frame {} is {w}x{h} but the camera was set up for {}x{}",
                frame.index, view.intrinsics.width, view.intrinsics.height
            )));
        }
        let water = water::segment(image, view, &c.water)?;
        if water.fraction == 0.0 {
            return Ok(FrameDetections::default());
        }
        let Some(gsd) = reference_gsd(view) else {
            return Ok(FrameDetections::default());
        };
        let z2 = anomaly::z_squared(image, &water, gsd, c.guard_m, c.background_m)?;
        let mut hot = Mat::default();
        imgproc::threshold(
            &z2,
            &mut hot,
            c.threshold * c.threshold,
            255.0,
            imgproc::THRESH_BINARY,
        )?;
        let mut hot_sea = Mat::default();
        hot.convert_to(&mut hot_sea, CV_8U, 1.0, 0.0)?;
        let join = (((c.join_m / gsd).round() as i32) | 1).clamp(3, 15);
        let kernel = imgproc::get_structuring_element(
            imgproc::MORPH_ELLIPSE,
            Size::new(join, join),
            Point::new(-1, -1),
        )?;
        let mut closed = Mat::default();
        imgproc::morphology_ex(
            &hot_sea,
            &mut closed,
            imgproc::MORPH_CLOSE,
            &kernel,
            Point::new(-1, -1),
            1,
            core::BORDER_CONSTANT,
            imgproc::morphology_default_border_value()?,
        )?;
        let mut contours = Vector::<Vector<Point>>::new();
        imgproc::find_contours(
            &closed,
            &mut contours,
            imgproc::RETR_EXTERNAL,
            imgproc::CHAIN_APPROX_NONE,
            Point::new(0, 0),
        )?;
        let mut detections = Vec::new();
        for contour in contours.iter() {
            if let Some(d) = self.measure(frame, view, &contour, &z2)? {
                detections.push(d);
            }
        }
        detections.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut kept: Vec<Detection> = Vec::with_capacity(detections.len());
        for d in detections {
            if !kept.iter().any(|k| is_sidelobe(&d, k)) {
                kept.push(d);
            }
        }
        let mut detections = kept;
        for (rank, d) in detections.iter_mut().enumerate() {
            d.id = format!("f{:06}-{rank}", frame.index);
        }
        Ok(FrameDetections {
            detections,
            water_fraction: water.fraction,
        })
    }

    /// One contour as a detection, or `None` when it is too small, too large or off the sea.
    fn measure(
        &self,
        frame: &Frame,
        view: &View,
        contour: &Vector<Point>,
        z2: &Mat,
    ) -> Result<Option<Detection>, ImageryError> {
        let c = &self.config;
        let r = imgproc::bounding_rect(contour)?;
        // Cut by the frame's edge: its size and centre would be wrong, and the frames before or
        // after see it whole.
        let (w, h) = (frame.image.cols(), frame.image.rows());
        if r.x <= 0 || r.y <= 0 || r.x + r.width >= w || r.y + r.height >= h {
            return Ok(None);
        }
        let mut mask = Mat::new_rows_cols_with_default(r.height, r.width, CV_8U, Scalar::all(0.0))?;
        let one = Vector::<Vector<Point>>::from_iter([contour.clone()]);
        imgproc::draw_contours(
            &mut mask,
            &one,
            -1,
            Scalar::all(255.0),
            -1,
            imgproc::LINE_8,
            &core::no_array(),
            0,
            Point::new(-r.x, -r.y),
        )?;
        if core::count_non_zero(&mask)? < c.min_pixels {
            return Ok(None);
        }
        let z_roi = Mat::roi(z2, r)?;
        let mut peak = 0.0;
        core::min_max_loc(&z_roi, None, Some(&mut peak), None, None, &mask)?;
        // The object is measured on its core, where it stands out by at least CORE_SHARE of its
        // peak: compression smears a small saturated object (an orange life jacket) into a
        // faint halo of chroma several pixels wide, and a wake trails a boat; the core is the
        // object. Holes in the core (a grey cabin on a white hull) are filled.
        let level = (c.threshold * c.threshold).max(CORE_SHARE * CORE_SHARE * peak);
        let mut core_px = Mat::default();
        imgproc::threshold(&z_roi, &mut core_px, level, 255.0, imgproc::THRESH_BINARY)?;
        let mut core8 = Mat::default();
        core_px.convert_to(&mut core8, CV_8U, 1.0, 0.0)?;
        let mut core_in = Mat::default();
        core::bitwise_and(&core8, &mask, &mut core_in, &core::no_array())?;
        let mut pieces = Vector::<Vector<Point>>::new();
        imgproc::find_contours(
            &core_in,
            &mut pieces,
            imgproc::RETR_EXTERNAL,
            imgproc::CHAIN_APPROX_NONE,
            Point::new(0, 0),
        )?;
        let mut body = Mat::new_rows_cols_with_default(r.height, r.width, CV_8U, Scalar::all(0.0))?;
        imgproc::draw_contours(
            &mut body,
            &pieces,
            -1,
            Scalar::all(255.0),
            -1,
            imgproc::LINE_8,
            &core::no_array(),
            0,
            Point::new(0, 0),
        )?;
        let m = imgproc::moments(&body, true)?;
        if m.m00 <= 0.0 {
            return Ok(None);
        }
        let (cu, cv) = (
            m.m10 / m.m00 + f64::from(r.x),
            m.m01 / m.m00 + f64::from(r.y),
        );
        let Some(centre) = view.sea_point(cu, cv) else {
            return Ok(None);
        };
        if centre.range_m > c.water.max_range_m {
            return Ok(None);
        }
        // The smallest rectangle through the outer pixel centres, grown by half a pixel all
        // round to cover the pixels themselves, with its corners on the sea.
        let mut points = Vector::<Point>::new();
        core::find_non_zero(&body, &mut points)?;
        let rect = imgproc::min_area_rect(&points)?;
        let grown = RotatedRect::new(
            Point2f::new(rect.center.x + r.x as f32, rect.center.y + r.y as f32),
            Size2f::new(rect.size.width + 1.0, rect.size.height + 1.0),
            rect.angle,
        )?;
        let mut corners = [Point2f::default(); 4];
        grown.points(&mut corners)?;
        let ground: Option<Vec<_>> = corners
            .iter()
            .map(|p| view.sea_point(f64::from(p.x), f64::from(p.y)))
            .collect();
        let Some(ground) = ground else {
            return Ok(None);
        };
        let side = |a: usize, b: usize| {
            (ground[a].north_m - ground[b].north_m).hypot(ground[a].east_m - ground[b].east_m)
        };
        let (s1, s2) = (side(0, 1), side(1, 2));
        let (length_m, width_m) = (s1.max(s2), s1.min(s2));
        if length_m < c.min_length_m || length_m > c.max_length_m {
            return Ok(None);
        }
        let class = if length_m <= c.person_max_m {
            DetectionClass::Person
        } else if length_m >= c.vessel_min_m {
            DetectionClass::Vessel
        } else {
            DetectionClass::Unknown
        };
        let (lat_deg, lon_deg) = view.lat_lon(centre.north_m, centre.east_m);
        Ok(Some(Detection {
            id: String::new(),
            frame: frame.index,
            time_us: frame.time_us,
            lat_deg,
            lon_deg,
            class,
            length_m,
            width_m,
            score: peak.sqrt(),
            pixel: [cu, cv],
            bbox: [r.x, r.y, r.width, r.height],
            range_m: centre.range_m,
            gsd_m: view.ground_sample_m(cu, cv).unwrap_or(f64::NAN),
            pose: view.pose,
            object: None,
            crop_jpeg: crop(&frame.image, r, c.crop_quality)?,
        }))
    }
}

/// Whether `weak` is ringing around `strong` ([`SIDELOBE_PX`], [`SIDELOBE_SHARE`]).
fn is_sidelobe(weak: &Detection, strong: &Detection) -> bool {
    let [x, y, w, h] = strong.bbox.map(f64::from);
    let (dx, dy) = (
        (weak.pixel[0] - (x + w / 2.0)).abs() - w / 2.0,
        (weak.pixel[1] - (y + h / 2.0)).abs() - h / 2.0,
    );
    weak.score < SIDELOBE_SHARE * strong.score && dx.max(0.0).hypot(dy.max(0.0)) <= SIDELOBE_PX
}

/// The ground sample distance that sizes the windows: at the image centre, or, when the
/// centre sees no sea (a view up to the horizon), at the middle of the bottom row.
fn reference_gsd(view: &View) -> Option<f64> {
    let i = &view.intrinsics;
    view.ground_sample_m(i.cx, i.cy)
        .or_else(|| view.ground_sample_m(i.cx, f64::from(i.height) - 1.0))
}

/// The object with a margin of its own size (at least 24 pixels) around it, as JPEG.
fn crop(image: &Mat, r: Rect, quality: i32) -> Result<Vec<u8>, ImageryError> {
    let margin = r.width.max(r.height).max(24);
    let x0 = (r.x - margin).max(0);
    let y0 = (r.y - margin).max(0);
    let x1 = (r.x + r.width + margin).min(image.cols());
    let y1 = (r.y + r.height + margin).min(image.rows());
    let roi = Mat::roi(image, Rect::new(x0, y0, x1 - x0, y1 - y0))?;
    let mut buf = Vector::<u8>::new();
    let params = Vector::<i32>::from_iter([imgcodecs::IMWRITE_JPEG_QUALITY, quality.clamp(1, 100)]);
    imgcodecs::imencode(".jpg", &roi, &mut buf, &params)?;
    Ok(buf.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imagery::camera::{distance_m, CameraPose, Gimbal, Intrinsics, Lens, VehiclePose};
    use crate::imagery::render::{render, Scene, Target, TargetKind};

    /// The georeferencing error the tests hold detections to: 2 m plus 1% of the slant range.
    fn stated_error_m(range_m: f64) -> f64 {
        2.0 + 0.01 * range_m
    }

    fn view(height_m: f64, gimbal: Gimbal, yaw_deg: f64) -> View {
        let vehicle = VehiclePose {
            lat_deg: 34.2,
            lon_deg: 129.25,
            height_m,
            roll_deg: 2.0,
            pitch_deg: -4.0,
            yaw_deg,
        };
        View::new(
            Intrinsics::from_lens(1280, 720, Lens::default()).unwrap(),
            CameraPose { vehicle, gimbal },
        )
    }

    fn detect(scene: &Scene, view: &View, seed: u64) -> FrameDetections {
        let image = render(scene, view, seed).unwrap();
        let frame = Frame {
            index: 3,
            time_us: 1_748_746_800_000_000,
            image,
        };
        Detector::new(DetectorConfig::default())
            .unwrap()
            .detect(&frame, view)
            .unwrap()
    }

    #[test]
    fn a_rendered_boat_and_person_are_found_where_they_are() {
        // Nadir at 100 m (the case) and an oblique stabilised view.
        for (k, v) in [
            view(100.0, Gimbal::body_pitch(-90.0), 20.0),
            view(80.0, Gimbal::horizon_pitch(-50.0), 250.0),
        ]
        .iter()
        .enumerate()
        {
            let mut scene = Scene::open_sea(34.2, 129.25, k as u64);
            let (blat, blon) = v.georeference(420.0, 300.0).unwrap();
            let (plat, plon) = v.georeference(900.0, 500.0).unwrap();
            scene.targets = vec![
                Target {
                    lat_deg: blat,
                    lon_deg: blon,
                    kind: TargetKind::Boat {
                        length_m: 8.0,
                        beam_m: 2.6,
                        heading_deg: 120.0,
                    },
                    colour: [40, 38, 36],
                },
                Target {
                    lat_deg: plat,
                    lon_deg: plon,
                    kind: TargetKind::Person { diameter_m: 0.5 },
                    colour: [20, 110, 245],
                },
            ];
            let found = detect(&scene, v, 0);
            assert_eq!(
                found.detections.len(),
                2,
                "view {k}: {:#?}",
                found.detections
            );
            let boat = found
                .detections
                .iter()
                .find(|d| d.class == DetectionClass::Vessel)
                .expect("the boat");
            let err = distance_m((boat.lat_deg, boat.lon_deg), (blat, blon));
            assert!(
                err < stated_error_m(boat.range_m),
                "view {k}: boat {err:.2} m off at {:.0} m",
                boat.range_m
            );
            assert!(
                err < 0.5,
                "without pose noise the centroid is within half a metre: {err}"
            );
            assert!(
                (boat.length_m - 8.0).abs() < 1.5,
                "length {}",
                boat.length_m
            );
            let person = found
                .detections
                .iter()
                .find(|d| d.class == DetectionClass::Person)
                .expect("the person");
            let err = distance_m((person.lat_deg, person.lon_deg), (plat, plon));
            assert!(
                err < stated_error_m(person.range_m),
                "view {k}: person {err:.2} m off"
            );
            assert!(person.length_m < 1.5 && person.score > boat.score * 0.3);
            // The crop is a JPEG that shows the object.
            let crop = opencv::imgcodecs::imdecode(
                &Vector::from_slice(&boat.crop_jpeg),
                opencv::imgcodecs::IMREAD_COLOR,
            )
            .unwrap();
            assert!(crop.cols() > boat.bbox[2] && crop.rows() > boat.bbox[3]);
            assert_eq!(
                boat.id,
                format!("f000003-{}", if boat.score > person.score { 0 } else { 1 })
            );
        }
    }

    #[test]
    fn open_sea_and_a_coast_give_no_detections() {
        for (k, v) in [
            view(50.0, Gimbal::body_pitch(-90.0), 0.0),
            view(150.0, Gimbal::horizon_pitch(-35.0), 90.0),
            view(100.0, Gimbal::horizon_pitch(-10.0), 0.0),
        ]
        .iter()
        .enumerate()
        {
            let mut scene = Scene::open_sea(34.2, 129.25, 10 + k as u64);
            // The coast crosses the view (east of the vehicle, across the line of sight).
            let ahead = v
                .sea_point(640.0, 360.0)
                .map_or(100.0, |p| p.east_m.max(30.0));
            scene.land_east_of_m = Some(ahead);
            let found = detect(&scene, v, 1);
            assert!(
                found.detections.is_empty(),
                "view {k}: {:#?}",
                found
                    .detections
                    .iter()
                    .map(|d| (d.pixel, d.score, d.length_m))
                    .collect::<Vec<_>>()
            );
            assert!(
                found.water_fraction > 0.2,
                "view {k}: water {}",
                found.water_fraction
            );
        }
    }

    #[test]
    fn a_frame_without_water_is_not_searched() {
        let v = view(100.0, Gimbal::body_pitch(-90.0), 0.0);
        let mut scene = Scene::open_sea(34.2, 129.25, 5);
        scene.land_east_of_m = Some(-500.0);
        let found = detect(&scene, &v, 0);
        assert_eq!(found.water_fraction, 0.0);
        assert!(found.detections.is_empty());
        // Looking at the sky: nothing below the horizon, nothing searched.
        let sky = view(100.0, Gimbal::horizon_pitch(40.0), 0.0);
        assert_eq!(
            detect(&Scene::open_sea(34.2, 129.25, 5), &sky, 0).water_fraction,
            0.0
        );
    }

    #[test]
    fn tiny_and_odd_sized_frames_do_not_break_anything() {
        for (w, h) in [(1, 1), (3, 2), (17, 9), (641, 359)] {
            let vehicle = VehiclePose {
                lat_deg: 34.2,
                lon_deg: 129.25,
                height_m: 50.0,
                roll_deg: 0.0,
                pitch_deg: 0.0,
                yaw_deg: 0.0,
            };
            let v = View::new(
                Intrinsics::from_lens(w, h, Lens::default()).unwrap(),
                CameraPose {
                    vehicle,
                    gimbal: Gimbal::body_pitch(-90.0),
                },
            );
            let found = detect(&Scene::open_sea(34.2, 129.25, 1), &v, 0);
            assert!(found.detections.is_empty(), "{w}x{h}");
        }
    }

    #[test]
    fn a_frame_of_another_size_than_the_camera_is_refused() {
        let v = view(100.0, Gimbal::body_pitch(-90.0), 0.0);
        let image =
            Mat::new_rows_cols_with_default(10, 10, opencv::core::CV_8UC3, Scalar::all(0.0))
                .unwrap();
        let e = Detector::new(DetectorConfig::default())
            .unwrap()
            .detect(
                &Frame {
                    index: 0,
                    time_us: 0,
                    image,
                },
                &v,
            )
            .unwrap_err();
        assert!(e.to_string().contains("10x10"), "{e}");
        assert!(Detector::new(DetectorConfig {
            guard_m: 100.0,
            ..Default::default()
        })
        .is_err());
        assert!(Detector::new(DetectorConfig {
            threshold: f64::NAN,
            ..Default::default()
        })
        .is_err());
    }
}
