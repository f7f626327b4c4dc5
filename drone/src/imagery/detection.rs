//! Detections: what the imagery road hands on. A field node turns each into a record with its
//! crop as evidence; `mizugiwa drone frames` writes them as GeoJSON.

use serde::Serialize;
use serde_json::{json, Value};

use super::camera::{distance_m, CameraPose};
use super::timestamps::rfc3339;

/// What a detection looks like, from its size on the water.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectionClass {
    /// At least [`super::detect::DetectorConfig::vessel_min_m`] long: a boat, a ship.
    Vessel,
    /// At most [`super::detect::DetectorConfig::person_max_m`] long: a person in the water, a
    /// buoy, a package.
    Person,
    /// In between: a kayak, a jet ski, debris.
    Unknown,
}

impl DetectionClass {
    pub fn as_str(self) -> &'static str {
        match self {
            DetectionClass::Vessel => "vessel",
            DetectionClass::Person => "person",
            DetectionClass::Unknown => "unknown",
        }
    }
}

/// One object on the water in one frame.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// Unique within a run: `f000123-0` is frame 123's strongest detection.
    pub id: String,
    /// Index of the frame in its source.
    pub frame: u64,
    /// When the frame was taken, µs since the Unix epoch.
    pub time_us: u64,
    pub lat_deg: f64,
    pub lon_deg: f64,
    pub class: DetectionClass,
    /// Length and width on the sea surface, m (the sides of the smallest rotated rectangle
    /// around the object).
    pub length_m: f64,
    pub width_m: f64,
    /// The anomaly statistic at the object's strongest pixel: how many local standard deviations
    /// of the surrounding water it stands out by (colour and lightness together).
    pub score: f64,
    /// Centroid in the frame, pixels.
    pub pixel: [f64; 2],
    /// Bounding box in the frame: x, y, width, height, pixels.
    pub bbox: [i32; 4],
    /// Slant range from the camera, m.
    pub range_m: f64,
    /// Ground sample distance at the centroid, m per pixel.
    pub gsd_m: f64,
    /// The camera's pose the position was computed from.
    pub pose: CameraPose,
    /// The same object in other frames shares this number ([`group_sightings`]).
    pub object: Option<u32>,
    /// The frame around the object, JPEG: the evidence.
    #[serde(skip)]
    pub crop_jpeg: Vec<u8>,
}

/// A GeoJSON FeatureCollection of detections, one Point feature each. `crop` names each
/// detection's evidence file, when written.
pub fn feature_collection(
    detections: &[Detection],
    crop: impl Fn(&Detection) -> Option<String>,
) -> Value {
    let features: Vec<Value> = detections
        .iter()
        .map(|d| {
            let v = &d.pose.vehicle;
            let g = &d.pose.gimbal;
            json!({
                "type": "Feature",
                "id": d.id,
                "geometry": { "type": "Point", "coordinates": [round(d.lon_deg, 7), round(d.lat_deg, 7)] },
                "properties": {
                    "time": rfc3339(d.time_us),
                    "frame": d.frame,
                    "class": d.class.as_str(),
                    "object": d.object,
                    "length_m": round(d.length_m, 2),
                    "width_m": round(d.width_m, 2),
                    "score": round(d.score, 2),
                    "pixel": [round(d.pixel[0], 1), round(d.pixel[1], 1)],
                    "bbox": d.bbox,
                    "range_m": round(d.range_m, 1),
                    "gsd_m": round(d.gsd_m, 3),
                    "crop": crop(d),
                    "vehicle": {
                        "lat": round(v.lat_deg, 7), "lon": round(v.lon_deg, 7), "height_m": round(v.height_m, 2),
                        "roll_deg": round(v.roll_deg, 2), "pitch_deg": round(v.pitch_deg, 2), "yaw_deg": round(v.yaw_deg, 2),
                    },
                    "gimbal": {
                        "roll_deg": round(g.roll_deg, 2), "pitch_deg": round(g.pitch_deg, 2), "yaw_deg": round(g.yaw_deg, 2),
                        "frame": g.frame,
                    },
                },
            })
        })
        .collect();
    json!({ "type": "FeatureCollection", "features": features })
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Numbers the objects seen across frames: a detection within `radius_m` (plus half the
/// object's length) of an object seen at most `max_gap_us` earlier is that object again.
/// Detections are visited in time order; each joins the nearest open object of a compatible
/// class or starts a new one. Returns how many objects there are.
pub fn group_sightings(detections: &mut [Detection], radius_m: f64, max_gap_us: u64) -> u32 {
    struct Open {
        id: u32,
        lat: f64,
        lon: f64,
        t_us: u64,
        class: DetectionClass,
    }
    let mut order: Vec<usize> = (0..detections.len()).collect();
    order.sort_by_key(|&i| (detections[i].time_us, detections[i].frame));
    let mut open: Vec<Open> = Vec::new();
    let mut next = 0;
    for i in order {
        let d = &detections[i];
        let reach = radius_m + d.length_m / 2.0;
        let compatible = |a: DetectionClass, b: DetectionClass| {
            a == b || a == DetectionClass::Unknown || b == DetectionClass::Unknown
        };
        let best = open
            .iter_mut()
            .filter(|o| {
                d.time_us.saturating_sub(o.t_us) <= max_gap_us && compatible(o.class, d.class)
            })
            .map(|o| {
                let dist = distance_m((o.lat, o.lon), (d.lat_deg, d.lon_deg));
                (dist, o)
            })
            .filter(|(dist, _)| *dist <= reach)
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let id = match best {
            Some((_, o)) => {
                (o.lat, o.lon, o.t_us) = (d.lat_deg, d.lon_deg, d.time_us);
                if o.class == DetectionClass::Unknown {
                    o.class = d.class;
                }
                o.id
            }
            None => {
                open.push(Open {
                    id: next,
                    lat: d.lat_deg,
                    lon: d.lon_deg,
                    t_us: d.time_us,
                    class: d.class,
                });
                next += 1;
                next - 1
            }
        };
        detections[i].object = Some(id);
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imagery::camera::{Gimbal, VehiclePose};

    fn detection(frame: u64, lat: f64, class: DetectionClass) -> Detection {
        let vehicle = VehiclePose {
            lat_deg: 34.0,
            lon_deg: 129.0,
            height_m: 100.0,
            roll_deg: 0.0,
            pitch_deg: 0.0,
            yaw_deg: 0.0,
        };
        Detection {
            id: format!("f{frame:06}-0"),
            frame,
            time_us: 1_748_746_800_000_000 + frame * 100_000,
            lat_deg: lat,
            lon_deg: 129.0,
            class,
            length_m: 8.0,
            width_m: 2.5,
            score: 20.0,
            pixel: [10.0, 20.0],
            bbox: [1, 2, 3, 4],
            range_m: 100.0,
            gsd_m: 0.12,
            pose: crate::imagery::camera::CameraPose {
                vehicle,
                gimbal: Gimbal::body_pitch(-90.0),
            },
            object: None,
            crop_jpeg: vec![],
        }
    }

    #[test]
    fn the_same_boat_in_consecutive_frames_is_one_object() {
        // A boat drifting 1 m per frame, a second boat 500 m away, and the first boat seen
        // again after a long gap (a new sighting).
        let mut ds: Vec<Detection> = (0..5)
            .map(|k| detection(k, 34.0 + k as f64 * 1e-5, DetectionClass::Vessel))
            .collect();
        ds.push(detection(2, 34.0045, DetectionClass::Vessel));
        ds.push(detection(400, 34.0, DetectionClass::Vessel));
        ds.push(detection(3, 34.00003, DetectionClass::Person));
        let n = group_sightings(&mut ds, 10.0, 2_000_000);
        assert_eq!(n, 4);
        assert!(ds[..5].iter().all(|d| d.object == Some(0)));
        assert_eq!(ds[5].object, Some(1));
        assert_eq!(ds[6].object, Some(3));
        assert_eq!(
            ds[7].object,
            Some(2),
            "a person next to the boat is another object"
        );
    }

    #[test]
    fn geojson_features_carry_position_time_and_pose() {
        let d = detection(7, 34.1234567891, DetectionClass::Person);
        let v = feature_collection(&[d], |d| Some(format!("crops/{}.jpg", d.id)));
        let f = &v["features"][0];
        assert_eq!(f["geometry"]["coordinates"][1], 34.1234568);
        assert_eq!(f["properties"]["time"], "2025-06-01T03:00:00.700Z");
        assert_eq!(f["properties"]["class"], "person");
        assert_eq!(f["properties"]["crop"], "crops/f000007-0.jpg");
        assert_eq!(f["properties"]["gimbal"]["frame"], "body");
        assert_eq!(f["properties"]["vehicle"]["height_m"], 100.0);
    }
}
