//! Patrol planning: a lawnmower survey of an area, geofence checks of every leg, an endurance
//! estimate, and QGroundControl `.plan` files out and back in.
//!
//! Geometry is done in a local east/north plane in metres (equirectangular about the area's
//! centre). For patrol areas of a few tens of kilometres the distortion is far below the GPS
//! error and the camera footprint; planning a whole coastline would need a proper projection.
//!
//! Concave areas are refused when a leg between lines would leave them (split them into convex
//! parts); a cell decomposition would plan them whole.
//!
//! Corridor scans along a coastline are in [`crate::corridor`]. Not built yet: rally points
//! chosen on land.

use geo::{
    BooleanOps, BoundingRect, Contains, Coord, Intersects, Line, LineString, MultiLineString,
    Polygon, Rotate,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// The camera and how much its pictures must overlap side to side.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Camera {
    /// Sensor width, mm (the side across the flight line).
    pub sensor_width_mm: f64,
    /// Focal length, mm.
    pub focal_length_mm: f64,
}

impl Camera {
    /// Width of the ground seen straight down from `alt_m`, metres.
    pub fn footprint_width_m(&self, alt_m: f64) -> f64 {
        alt_m * self.sensor_width_mm / self.focal_length_mm
    }

    /// Distance between neighbouring lines for `side_overlap` (0..1) at `alt_m`.
    pub fn line_spacing_m(&self, alt_m: f64, side_overlap: f64) -> f64 {
        self.footprint_width_m(alt_m) * (1.0 - side_overlap)
    }
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct SurveyRequest {
    /// The area to cover, lon/lat degrees.
    pub area: Polygon<f64>,
    pub alt_m: f64,
    pub camera: Camera,
    pub side_overlap: f64,
    /// Direction of the lines, degrees clockwise from north.
    pub heading_deg: f64,
    /// Legs longer than this get intermediate waypoints.
    pub max_leg_m: f64,
}

/// A waypoint, lon/lat degrees and metres above home.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Waypoint {
    pub lat: f64,
    pub lon: f64,
    pub alt_m: f64,
}

/// Inclusion and exclusion polygons, lon/lat degrees.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Geofence {
    pub inclusions: Vec<Polygon<f64>>,
    pub exclusions: Vec<Polygon<f64>>,
}

/// A complete plan: home, waypoints, fence, rally points.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub home: Waypoint,
    pub waypoints: Vec<Waypoint>,
    pub fence: Geofence,
    pub rally: Vec<Waypoint>,
    pub cruise_speed_mps: f64,
}

/// Why a plan cannot be made or flown.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("line spacing {0} m is not positive: check altitude, camera and overlap (0..1)")]
    BadSpacing(f64),
    #[error("the area has no extent")]
    EmptyArea,
    #[error("leg {leg} of the survey leaves the area (it is not convex across the lines): split the area into convex parts, or survey it along another heading")]
    LeavesArea { leg: usize },
    #[error("leg {leg} ({from:?} → {to:?}) leaves the inclusion fence")]
    OutsideInclusion {
        leg: usize,
        from: (f64, f64),
        to: (f64, f64),
    },
    #[error("leg {leg} ({from:?} → {to:?}) crosses exclusion zone {zone}")]
    InExclusion {
        leg: usize,
        zone: usize,
        from: (f64, f64),
        to: (f64, f64),
    },
    #[error("not a QGroundControl plan: {0}")]
    BadPlanFile(String),
}

/// The local east/north plane about a reference point.
#[derive(Debug, Clone, Copy)]
pub struct LocalFrame {
    lat0: f64,
    lon0: f64,
    cos_lat0: f64,
}

impl LocalFrame {
    pub fn new(lat0: f64, lon0: f64) -> LocalFrame {
        LocalFrame {
            lat0,
            lon0,
            cos_lat0: lat0.to_radians().cos(),
        }
    }

    /// Lon/lat degrees → east/north metres.
    pub fn to_local(&self, c: Coord<f64>) -> Coord<f64> {
        Coord {
            x: (c.x - self.lon0).to_radians() * self.cos_lat0 * EARTH_RADIUS_M,
            y: (c.y - self.lat0).to_radians() * EARTH_RADIUS_M,
        }
    }

    /// East/north metres → lon/lat degrees.
    pub fn to_lonlat(&self, c: Coord<f64>) -> Coord<f64> {
        Coord {
            x: self.lon0 + (c.x / (self.cos_lat0 * EARTH_RADIUS_M)).to_degrees(),
            y: self.lat0 + (c.y / EARTH_RADIUS_M).to_degrees(),
        }
    }

    pub fn polygon(&self, p: &Polygon<f64>) -> Polygon<f64> {
        use geo::MapCoords;
        p.map_coords(|c| self.to_local(c))
    }
}

fn frame_for(area: &Polygon<f64>) -> Result<LocalFrame, PlanError> {
    let r = area.bounding_rect().ok_or(PlanError::EmptyArea)?;
    let c = r.center();
    Ok(LocalFrame::new(c.y, c.x))
}

/// A lawnmower over the area: parallel lines `spacing` apart, clipped to the area, flown
/// alternately, legs densified. Lines are placed half a spacing in from the area's edge so
/// the footprints cover the edge too.
pub fn survey(req: &SurveyRequest) -> Result<Vec<Waypoint>, PlanError> {
    let spacing = req.camera.line_spacing_m(req.alt_m, req.side_overlap);
    if !(spacing.is_finite() && spacing > 0.0) {
        return Err(PlanError::BadSpacing(spacing));
    }
    let frame = frame_for(&req.area)?;
    let local = frame.polygon(&req.area);
    // Rotate the area so that the lines run along the x axis, sweep, rotate back.
    let origin = geo::Point::new(0.0, 0.0);
    let turn = 90.0 - req.heading_deg; // heading clockwise from north → angle from east
    let rotated = local.rotate_around_point(-turn, origin);
    let r = rotated.bounding_rect().ok_or(PlanError::EmptyArea)?;
    if r.height() <= 0.0 || r.width() <= 0.0 {
        return Err(PlanError::EmptyArea);
    }
    let lines_needed = ((r.height() / spacing).ceil() as usize).max(1);
    let first_y = r.min().y + (r.height() - (lines_needed - 1) as f64 * spacing) / 2.0;
    let mut waypoints = Vec::new();
    let mut forward = true;
    for i in 0..lines_needed {
        let y = first_y + i as f64 * spacing;
        let sweep = MultiLineString::new(vec![LineString::from(vec![
            (r.min().x - 1.0, y),
            (r.max().x + 1.0, y),
        ])]);
        let mut pieces: Vec<(f64, f64)> = rotated
            .clip(&sweep, false)
            .0
            .iter()
            .filter_map(|ls| {
                let (a, b) = (ls.0.first()?, ls.0.last()?);
                Some((a.x.min(b.x), a.x.max(b.x)))
            })
            .filter(|(a, b)| b - a > 1e-6)
            .collect();
        if pieces.is_empty() {
            continue;
        }
        pieces.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !forward {
            pieces.reverse();
        }
        for (a, b) in pieces {
            let (from, to) = if forward { (a, b) } else { (b, a) };
            let n = ((to - from).abs() / req.max_leg_m.max(1.0)).ceil().max(1.0) as usize;
            for k in 0..=n {
                let x = from + (to - from) * k as f64 / n as f64;
                let p = geo::Point::new(x, y).rotate_around_point(turn, origin);
                let ll = frame.to_lonlat(p.0);
                waypoints.push(Waypoint {
                    lat: ll.y,
                    lon: ll.x,
                    alt_m: req.alt_m,
                });
            }
        }
        forward = !forward;
    }
    // In a concave area the way from one line (or piece of a line) to the next can cross
    // outside it; no waypoint list is better than one that flies over what it must not.
    let tolerance = geo::Buffer::buffer(&req.area, 1e-7);
    let fence = Geofence {
        inclusions: tolerance.0,
        exclusions: vec![],
    };
    check_legs(&waypoints, &fence).map_err(|e| match e {
        PlanError::OutsideInclusion { leg, .. } => PlanError::LeavesArea { leg },
        other => other,
    })?;
    Ok(waypoints)
}

/// Checks every leg (home → first waypoint, between waypoints, last → home) against the fence:
/// inside an inclusion polygon (when there are any) and clear of every exclusion.
pub fn check_fence(
    home: &Waypoint,
    waypoints: &[Waypoint],
    fence: &Geofence,
) -> Result<(), PlanError> {
    let mut points = vec![*home];
    points.extend_from_slice(waypoints);
    points.push(*home);
    check_legs(&points, fence)
}

/// Checks the legs between consecutive `points` against the fence.
fn check_legs(points: &[Waypoint], fence: &Geofence) -> Result<(), PlanError> {
    for (leg, w) in points.windows(2).enumerate() {
        let line = Line::new(
            Coord {
                x: w[0].lon,
                y: w[0].lat,
            },
            Coord {
                x: w[1].lon,
                y: w[1].lat,
            },
        );
        let (from, to) = ((w[0].lat, w[0].lon), (w[1].lat, w[1].lon));
        if !fence.inclusions.is_empty()
            && !fence
                .inclusions
                .iter()
                .any(|p| p.contains(&line) || covers_line(p, &line))
        {
            return Err(PlanError::OutsideInclusion { leg, from, to });
        }
        if let Some(zone) = fence.exclusions.iter().position(|p| p.intersects(&line)) {
            return Err(PlanError::InExclusion {
                leg,
                zone,
                from,
                to,
            });
        }
    }
    Ok(())
}

/// `contains` is false for a line lying along the boundary; a leg on the fence line is allowed.
fn covers_line(p: &Polygon<f64>, line: &Line<f64>) -> bool {
    use geo::Relate;
    p.relate(line).is_covers()
}

/// Length of the route home → waypoints → home, metres.
pub fn route_length_m(home: &Waypoint, waypoints: &[Waypoint]) -> f64 {
    let frame = LocalFrame::new(home.lat, home.lon);
    let mut points = vec![*home];
    points.extend_from_slice(waypoints);
    points.push(*home);
    points
        .windows(2)
        .map(|w| {
            let a = frame.to_local(Coord {
                x: w[0].lon,
                y: w[0].lat,
            });
            let b = frame.to_local(Coord {
                x: w[1].lon,
                y: w[1].lat,
            });
            let dz = w[1].alt_m - w[0].alt_m;
            ((b.x - a.x).powi(2) + (b.y - a.y).powi(2) + dz * dz).sqrt()
        })
        .sum()
}

/// Endurance estimate of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Endurance {
    pub distance_m: f64,
    pub flight_time_s: f64,
    /// Share of the usable battery the flight takes (1.0 = all of it).
    pub battery_fraction: f64,
    /// Whether it fits in the usable battery with the reserve kept.
    pub fits: bool,
}

/// Flight time at `cruise_mps` (plus climbing and descending at `vertical_mps`) against a
/// battery good for `max_flight_s`, keeping `reserve` (0..1) of it for the way back.
pub fn endurance(plan: &Plan, vertical_mps: f64, max_flight_s: f64, reserve: f64) -> Endurance {
    let distance_m = route_length_m(&plan.home, &plan.waypoints);
    let climb = plan.waypoints.iter().map(|w| w.alt_m).fold(0.0, f64::max);
    let flight_time_s =
        distance_m / plan.cruise_speed_mps.max(0.1) + 2.0 * climb / vertical_mps.max(0.1);
    let battery_fraction = flight_time_s / max_flight_s.max(1.0);
    Endurance {
        distance_m,
        flight_time_s,
        battery_fraction,
        fits: battery_fraction <= 1.0 - reserve,
    }
}

// MAVLink commands and frames used in plan files.
const MAV_CMD_NAV_WAYPOINT: u64 = 16;
const MAV_FRAME_GLOBAL_RELATIVE_ALT: u64 = 3;

fn ring(p: &Polygon<f64>) -> Vec<[f64; 2]> {
    let mut pts: Vec<[f64; 2]> = p.exterior().0.iter().map(|c| [c.y, c.x]).collect();
    if pts.len() > 1 && pts.first() == pts.last() {
        pts.pop(); // QGroundControl polygons are not closed
    }
    pts
}

/// The plan as a QGroundControl `.plan` file (JSON), for the autopilot's firmware type
/// (`3` ArduPilot, `12` PX4).
pub fn to_qgc_plan(plan: &Plan, firmware_type: u64) -> serde_json::Value {
    let items: Vec<serde_json::Value> = plan
        .waypoints
        .iter()
        .enumerate()
        .map(|(i, w)| {
            json!({
                "type": "SimpleItem",
                "autoContinue": true,
                "command": MAV_CMD_NAV_WAYPOINT,
                "doJumpId": i + 1,
                "frame": MAV_FRAME_GLOBAL_RELATIVE_ALT,
                "params": [0, 0, 0, null, w.lat, w.lon, w.alt_m],
                "Altitude": w.alt_m,
                "AltitudeMode": 1,
                "AMSLAltAboveTerrain": null
            })
        })
        .collect();
    let polygons: Vec<serde_json::Value> = plan
        .fence
        .inclusions
        .iter()
        .map(|p| (true, p))
        .chain(plan.fence.exclusions.iter().map(|p| (false, p)))
        .map(|(inclusion, p)| json!({ "inclusion": inclusion, "polygon": ring(p), "version": 1 }))
        .collect();
    json!({
        "fileType": "Plan",
        "version": 1,
        "groundStation": "Mizugiwa",
        "mission": {
            "version": 2,
            "firmwareType": firmware_type,
            "vehicleType": 2,
            "cruiseSpeed": plan.cruise_speed_mps,
            "hoverSpeed": 5,
            "globalPlanAltitudeMode": 1,
            "plannedHomePosition": [plan.home.lat, plan.home.lon, plan.home.alt_m],
            "items": items
        },
        "geoFence": { "version": 2, "polygons": polygons, "circles": [] },
        "rallyPoints": {
            "version": 2,
            "points": plan.rally.iter().map(|r| json!([r.lat, r.lon, r.alt_m])).collect::<Vec<_>>()
        }
    })
}

fn num(v: &serde_json::Value, what: &str) -> Result<f64, PlanError> {
    v.as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| PlanError::BadPlanFile(format!("{what} is not a number")))
}

fn lat_lon(v: &serde_json::Value, what: &str) -> Result<(f64, f64), PlanError> {
    let a = v
        .as_array()
        .ok_or_else(|| PlanError::BadPlanFile(format!("{what} is not [lat, lon, ...]")))?;
    if a.len() < 2 {
        return Err(PlanError::BadPlanFile(format!(
            "{what} is not [lat, lon, ...]"
        )));
    }
    let (lat, lon) = (num(&a[0], what)?, num(&a[1], what)?);
    if lat.abs() > 90.0 || lon.abs() > 180.0 {
        return Err(PlanError::BadPlanFile(format!(
            "{what}: ({lat}, {lon}) is not a position"
        )));
    }
    Ok((lat, lon))
}

/// Reads a QGroundControl `.plan` file: waypoints (simple NAV_WAYPOINT items in a relative
/// altitude frame), fence polygons and rally points. Anything else in the mission is refused
/// with its item number rather than silently dropped.
pub fn from_qgc_plan(v: &serde_json::Value) -> Result<Plan, PlanError> {
    if v["fileType"] != "Plan" {
        return Err(PlanError::BadPlanFile("fileType is not \"Plan\"".into()));
    }
    let mission = &v["mission"];
    let home = mission["plannedHomePosition"]
        .as_array()
        .filter(|a| a.len() == 3)
        .ok_or_else(|| {
            PlanError::BadPlanFile("mission.plannedHomePosition is not [lat, lon, alt]".into())
        })?;
    let (lat, lon) = lat_lon(&mission["plannedHomePosition"], "plannedHomePosition")?;
    let home = Waypoint {
        lat,
        lon,
        alt_m: num(&home[2], "home altitude")?,
    };
    let items = mission["items"]
        .as_array()
        .ok_or_else(|| PlanError::BadPlanFile("mission.items missing".into()))?;
    let mut waypoints = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if item["type"] != "SimpleItem"
            || item["command"].as_u64() != Some(MAV_CMD_NAV_WAYPOINT)
            || item["frame"].as_u64() != Some(MAV_FRAME_GLOBAL_RELATIVE_ALT)
        {
            return Err(PlanError::BadPlanFile(format!(
                "item {i}: only waypoints (SimpleItem, command 16, frame 3) are supported"
            )));
        }
        let p = item["params"]
            .as_array()
            .filter(|p| p.len() == 7)
            .ok_or_else(|| PlanError::BadPlanFile(format!("item {i}: params is not 7 values")))?;
        let (lat, lon) = lat_lon(&json!([p[4], p[5]]), &format!("item {i}"))?;
        waypoints.push(Waypoint {
            lat,
            lon,
            alt_m: num(&p[6], &format!("item {i} altitude"))?,
        });
    }
    let mut fence = Geofence::default();
    for (i, poly) in v["geoFence"]["polygons"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let pts = poly["polygon"]
            .as_array()
            .filter(|p| p.len() >= 3)
            .ok_or_else(|| {
                PlanError::BadPlanFile(format!("fence polygon {i}: fewer than 3 points"))
            })?;
        let coords = pts
            .iter()
            .map(|p| lat_lon(p, &format!("fence polygon {i}")).map(|(lat, lon)| (lon, lat)))
            .collect::<Result<Vec<_>, _>>()?;
        let polygon = Polygon::new(LineString::from(coords), vec![]);
        match poly["inclusion"].as_bool() {
            Some(true) => fence.inclusions.push(polygon),
            Some(false) => fence.exclusions.push(polygon),
            None => {
                return Err(PlanError::BadPlanFile(format!(
                    "fence polygon {i}: inclusion missing"
                )))
            }
        }
    }
    let mut rally = Vec::new();
    for (i, r) in v["rallyPoints"]["points"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let (lat, lon) = lat_lon(r, &format!("rally point {i}"))?;
        rally.push(Waypoint {
            lat,
            lon,
            alt_m: num(&r[2], &format!("rally point {i} altitude"))?,
        });
    }
    Ok(Plan {
        home,
        waypoints,
        fence,
        rally,
        cruise_speed_mps: mission["cruiseSpeed"].as_f64().unwrap_or(15.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Distance, Euclidean};

    /// A patrol area off Tsushima's west coast, about 2.3 × 1.7 km, a convex pentagon.
    fn area() -> Polygon<f64> {
        Polygon::new(
            LineString::from(vec![
                (129.200, 34.300),
                (129.225, 34.300),
                (129.226, 34.311),
                (129.214, 34.3155),
                (129.201, 34.309),
                (129.200, 34.300),
            ]),
            vec![],
        )
    }

    /// The same box with a notch cut out of a corner.
    fn notched() -> Polygon<f64> {
        Polygon::new(
            LineString::from(vec![
                (129.200, 34.300),
                (129.225, 34.300),
                (129.225, 34.315),
                (129.212, 34.315),
                (129.212, 34.308),
                (129.200, 34.308),
                (129.200, 34.300),
            ]),
            vec![],
        )
    }

    fn request(heading: f64) -> SurveyRequest {
        SurveyRequest {
            area: area(),
            alt_m: 120.0,
            // 13.2 mm × 8.8 mm 1" sensor, 8.8 mm lens: footprint 180 m wide at 120 m.
            camera: Camera {
                sensor_width_mm: 13.2,
                focal_length_mm: 8.8,
            },
            side_overlap: 0.2,
            heading_deg: heading,
            max_leg_m: 200.0,
        }
    }

    fn home() -> Waypoint {
        Waypoint {
            lat: 34.299,
            lon: 129.199,
            alt_m: 0.0,
        }
    }

    /// Share of a grid of points in the area within half a footprint of some leg.
    fn coverage(req: &SurveyRequest, wps: &[Waypoint]) -> f64 {
        let frame = frame_for(&req.area).unwrap();
        let local = frame.polygon(&req.area);
        let legs: Vec<Line<f64>> = wps
            .windows(2)
            .map(|w| {
                Line::new(
                    frame.to_local(Coord {
                        x: w[0].lon,
                        y: w[0].lat,
                    }),
                    frame.to_local(Coord {
                        x: w[1].lon,
                        y: w[1].lat,
                    }),
                )
            })
            .collect();
        let half = req.camera.footprint_width_m(req.alt_m) / 2.0;
        let r = local.bounding_rect().unwrap();
        let (mut inside, mut covered) = (0, 0);
        for i in 0..120 {
            for j in 0..120 {
                let p = geo::Point::new(
                    r.min().x + r.width() * (i as f64 + 0.5) / 120.0,
                    r.min().y + r.height() * (j as f64 + 0.5) / 120.0,
                );
                if !local.contains(&p) {
                    continue;
                }
                inside += 1;
                if legs.iter().any(|l| Euclidean.distance(&p, l) <= half) {
                    covered += 1;
                }
            }
        }
        covered as f64 / inside as f64
    }

    #[test]
    fn the_survey_covers_the_area_at_any_heading_and_stays_in_it() {
        for heading in [0.0, 37.0, 90.0, 133.0] {
            let req = request(heading);
            let wps = survey(&req).unwrap();
            assert!(wps.len() > 10, "heading {heading}: {} waypoints", wps.len());
            let c = coverage(&req, &wps);
            assert!(c >= 0.99, "heading {heading}: coverage {c:.4}");
            // The area (slightly grown for rounding) is the inclusion fence: every leg inside.
            let fence = Geofence {
                inclusions: vec![geo::Buffer::buffer(&area(), 1e-6)
                    .0
                    .into_iter()
                    .next()
                    .unwrap()],
                exclusions: vec![],
            };
            check_fence(&wps[0], &wps, &fence).unwrap_or_else(|e| panic!("heading {heading}: {e}"));
        }
        // Across the notch the way between lines would leave the area: refused, not flown.
        let err = survey(&SurveyRequest {
            area: notched(),
            ..request(90.0)
        })
        .unwrap_err();
        assert!(matches!(err, PlanError::LeavesArea { .. }), "{err:?}");
    }

    #[test]
    fn legs_through_an_exclusion_or_out_of_the_inclusion_are_refused() {
        let wps = survey(&request(0.0)).unwrap();
        let tiny = Polygon::new(
            LineString::from(vec![
                (129.205, 34.302),
                (129.206, 34.302),
                (129.206, 34.303),
                (129.205, 34.302),
            ]),
            vec![],
        );
        let err = check_fence(
            &home(),
            &wps,
            &Geofence {
                inclusions: vec![],
                exclusions: vec![area(), tiny.clone()],
            },
        );
        assert!(
            matches!(err, Err(PlanError::InExclusion { zone: 0, .. })),
            "{err:?}"
        );
        let err = check_fence(
            &home(),
            &wps,
            &Geofence {
                inclusions: vec![tiny],
                exclusions: vec![],
            },
        );
        assert!(
            matches!(err, Err(PlanError::OutsideInclusion { leg: 0, .. })),
            "{err:?}"
        );
    }

    #[test]
    fn legs_are_densified_and_spacing_follows_the_camera() {
        let req = request(90.0);
        let spacing = req.camera.line_spacing_m(req.alt_m, req.side_overlap);
        assert!((spacing - 144.0).abs() < 1e-9);
        let wps = survey(&req).unwrap();
        let frame = LocalFrame::new(34.3, 129.2);
        let legs: Vec<f64> = wps
            .windows(2)
            .map(|w| {
                let a = frame.to_local(Coord {
                    x: w[0].lon,
                    y: w[0].lat,
                });
                let b = frame.to_local(Coord {
                    x: w[1].lon,
                    y: w[1].lat,
                });
                ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
            })
            .collect();
        // Along the lines no leg is over 200 m; only the ways between lines (one per line,
        // a spacing or a little more) may be longer.
        let lines = (1.7e3 / spacing).ceil() as usize;
        let long = legs.iter().filter(|d| **d > 201.0).count();
        assert!(long < lines, "{long} legs over 200 m: {legs:?}");
        let coarse = survey(&SurveyRequest {
            max_leg_m: 5_000.0,
            ..req.clone()
        })
        .unwrap();
        assert!(
            coarse.len() * 3 < wps.len(),
            "densified {} vs {}",
            wps.len(),
            coarse.len()
        );
        assert_eq!(
            survey(&SurveyRequest {
                side_overlap: 1.0,
                ..req
            })
            .unwrap_err(),
            PlanError::BadSpacing(0.0)
        );
    }

    #[test]
    fn a_plan_file_round_trips_and_bad_files_are_refused() {
        let wps = survey(&request(45.0)).unwrap();
        let plan = Plan {
            home: home(),
            waypoints: wps,
            fence: Geofence {
                inclusions: vec![area()],
                exclusions: vec![],
            },
            rally: vec![Waypoint {
                lat: 34.299,
                lon: 129.198,
                alt_m: 30.0,
            }],
            cruise_speed_mps: 15.0,
        };
        let file = to_qgc_plan(&plan, 3);
        let text = serde_json::to_string_pretty(&file).unwrap();
        let back = from_qgc_plan(&serde_json::from_str(&text).unwrap()).unwrap();
        // JSON numbers come back within a few ulps (a nanometre here).
        let close = |a: &[Waypoint], b: &[Waypoint]| {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| {
                    (x.lat - y.lat).abs() < 1e-12
                        && (x.lon - y.lon).abs() < 1e-12
                        && (x.alt_m - y.alt_m).abs() < 1e-9
                })
        };
        assert!(close(&back.waypoints, &plan.waypoints));
        assert!(close(&back.rally, &plan.rally));
        assert!(close(&[back.home], &[plan.home]));
        assert_eq!(
            ring(&back.fence.inclusions[0]).len(),
            ring(&plan.fence.inclusions[0]).len()
        );
        assert!(back.fence.exclusions.is_empty());

        let e = endurance(&plan, 3.0, 30.0 * 60.0, 0.25);
        assert!(
            e.distance_m > 20_000.0 && e.flight_time_s > e.distance_m / 15.0,
            "{e:?}"
        );

        let mut bad = file.clone();
        bad["mission"]["items"][3]["command"] = json!(22);
        assert!(
            matches!(from_qgc_plan(&bad), Err(PlanError::BadPlanFile(m)) if m.starts_with("item 3"))
        );
        let mut bad = file.clone();
        bad["mission"]["items"][0]["params"][4] = json!(123.0);
        assert!(from_qgc_plan(&bad).is_err());
        assert!(from_qgc_plan(&json!({"fileType": "Mission"})).is_err());
        assert!(from_qgc_plan(&json!(null)).is_err());
    }
}
