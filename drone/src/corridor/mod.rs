//! Corridor scans along a coastline: passes parallel to the shore over a band of sea from
//! `offset` to `offset + width` metres off it, spaced from the camera footprint, flown back and
//! forth, never across the land.
//!
//! The coast is land polygons (Natural Earth's `land`, or a user's GeoJSON), a line along the
//! shore ([`SeaSide`] says which side the sea is on), or both; a stretch of it is chosen with two
//! points near the shore, or the whole coast is patrolled loop after loop.
//!
//! How (in a local east/north plane, [`LocalFrame`]):
//! - the passes are offset curves of the land: the boundaries of the land grown (geo's
//!   [`Buffer`](geo::Buffer)) by each pass's distance, `spacing` apart and centred in the band,
//!   so they never self-intersect in a bay, they round headlands, and they go round islets;
//! - where a pass stops short (an inlet narrower than twice its distance) and the camera would
//!   miss the inlet's middle, a fill-in pass half a footprint beyond the last one covers it;
//! - a stretch owns the sea swept by its seaward normals out to the corridor's outer edge: the
//!   passes are clipped to it, so every pass ends on the normals at the stretch's two ends and
//!   the turn from one pass to the next is a short hop along them;
//! - a way between two pieces that would cross land goes round the land instead, and every leg
//!   is checked against the land before the plan is returned;
//! - [`coverage`] measures the share of the corridor the camera sees along the route.
//!
//! ```
//! use mizugiwa_drone::corridor::{corridor_scan, Coast, CorridorRequest, SeaSide};
//! use mizugiwa_drone::plan::Camera;
//!
//! // A straight shore running north, the sea to the west (on the left walking north).
//! let shore = serde_json::json!({"type": "LineString", "coordinates": [[129.30, 34.30], [129.30, 34.33]]});
//! let req = CorridorRequest {
//!     coast: Coast::from_geojson(&shore).unwrap(),
//!     stretch: None,
//!     sea_side: Some(SeaSide::Left),
//!     offset_m: 50.0,
//!     width_m: 500.0,
//!     alt_m: 120.0,
//!     camera: Camera { sensor_width_mm: 13.2, focal_length_mm: 8.8 }, // 180 m wide at 120 m
//!     side_overlap: 0.2,
//!     max_leg_m: 200.0,
//! };
//! let plan = corridor_scan(&req).unwrap();
//! assert_eq!(plan.pass_offsets_m.len(), 4); // 500 m at 144 m spacing
//! assert!(plan.coverage >= 0.99);
//! assert!(plan.waypoints.iter().all(|w| w.lon < 129.30)); // all at sea
//! ```

mod coast;
mod passes;
mod polyline;
mod route;
mod shore;

use geo::{
    Area, BooleanOps, BoundingRect, Coord, Intersects, Line, LineString, MapCoords, MultiPolygon,
};
use geo::{Densify, Euclidean};

pub use coast::{Coast, SeaSide};
use shore::{grown, Shore, ShoreRequest};

use crate::plan::{Camera, LocalFrame, Waypoint};

/// What to plan.
#[derive(Debug, Clone)]
pub struct CorridorRequest {
    pub coast: Coast,
    /// Patrol only the shore between these two points (lon/lat, each snapped to the nearest
    /// shore within 5 km; the shorter way round an island). `None`: the whole line, or every
    /// shore of the land.
    pub stretch: Option<(Coord<f64>, Coord<f64>)>,
    /// Which side of a line the sea is on. `None`: the side away from the land when the coast
    /// has land, otherwise [`SeaSide::Right`] (OpenStreetMap's coastline convention).
    pub sea_side: Option<SeaSide>,
    /// Distance from the shore to the corridor's inner edge, metres.
    pub offset_m: f64,
    /// Width of the corridor, metres.
    pub width_m: f64,
    /// Flight altitude above home (taken as sea level), metres.
    pub alt_m: f64,
    pub camera: Camera,
    /// Side overlap of neighbouring passes' footprints, 0 ≤ overlap < 1.
    pub side_overlap: f64,
    /// Legs longer than this get intermediate waypoints, metres.
    pub max_leg_m: f64,
}

/// A planned corridor scan.
#[derive(Debug, Clone)]
pub struct CorridorPlan {
    /// The route, first pass to last, at the flight altitude.
    pub waypoints: Vec<Waypoint>,
    /// The corridor, lon/lat degrees.
    pub corridor: MultiPolygon<f64>,
    /// Distance of each pass from the shore, metres.
    pub pass_offsets_m: Vec<f64>,
    pub spacing_m: f64,
    pub footprint_m: f64,
    /// Share of the corridor the camera sees along the route ([`coverage`]).
    pub coverage: f64,
    /// The shore point nearest the first waypoint: a take-off place when none is given.
    pub shore_start: Waypoint,
    /// Length of the shore patrolled, metres.
    pub shore_m: f64,
}

impl CorridorPlan {
    /// The corridor as a GeoJSON feature (to look at it on a map beside the plan).
    pub fn corridor_geojson(&self) -> serde_json::Value {
        let polygons: Vec<serde_json::Value> = self
            .corridor
            .0
            .iter()
            .map(|p| {
                let ring = |l: &LineString<f64>| l.0.iter().map(|c| [c.x, c.y]).collect::<Vec<_>>();
                serde_json::json!(std::iter::once(ring(p.exterior()))
                    .chain(p.interiors().iter().map(ring))
                    .collect::<Vec<_>>())
            })
            .collect();
        serde_json::json!({
            "type": "Feature",
            "properties": { "passes": self.pass_offsets_m, "spacing_m": self.spacing_m, "coverage": self.coverage },
            "geometry": { "type": "MultiPolygon", "coordinates": polygons }
        })
    }
}

/// Why a corridor cannot be planned.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CorridorError {
    #[error("the coastline file is not usable GeoJSON: {0}")]
    BadCoast(String),
    #[error("the coastline is empty: it needs a LineString along the shore or land Polygons")]
    EmptyCoast,
    #[error("the coastline has {0} separate lines that do not join end to end: give one stretch of shore per plan")]
    SeveralLines(usize),
    #[error("{which} is {km:.1} km from the shore: give a point within 5 km of it")]
    FarFromCoast { which: &'static str, km: f64 },
    #[error("--from and --to are on different shores (islands): plan each shore on its own")]
    DifferentShores,
    #[error("the stretch between --from and --to has no length: give two different points")]
    EmptyStretch,
    #[error("the shore between --from and --to runs more than {km:.0} km away from them: choose points closer together")]
    StretchTooLong { km: f64 },
    #[error(
        "the coast spans {km:.0} km, too much for one plan: choose a stretch with --from and --to"
    )]
    TooLarge { km: f64 },
    #[error("cannot tell which side of the line the sea is on (the land lies on both or neither): give the sea side")]
    SeaSideUnknown,
    #[error(
        "the line closes on itself with the sea inside it: give the land as a polygon instead"
    )]
    SeaInsideRing,
    #[error("corridor width {0} m: give a positive number of metres")]
    BadWidth(f64),
    #[error("offset {0} m: give zero or a positive number of metres")]
    BadOffset(f64),
    #[error("side overlap {0}: it must be at least 0 and less than 1")]
    BadOverlap(f64),
    #[error("altitude {0} m: give a positive number of metres, up to 10 km")]
    BadAltitude(f64),
    #[error("camera sensor width and focal length must be positive millimetres")]
    BadCamera,
    #[error("longest leg {0} m: give a positive number of metres")]
    BadMaxLeg(f64),
    #[error("the corridor needs more than 100 passes {spacing_m:.1} m apart: narrow it, fly higher or overlap less")]
    TooManyPasses { spacing_m: f64 },
    #[error("no sea between {from_m} m and {to_m} m off this shore: the corridor is empty (is the sea side right?)")]
    NoSea { from_m: f64, to_m: f64 },
    #[error(
        "the corridor reaches {km} km off the shore: a coastal corridor reaches 50 km at most"
    )]
    TooFar { km: f64 },
    #[error("the route would have {0} waypoints: give a longer longest leg, or patrol a shorter stretch")]
    TooManyWaypoints(usize),
    #[error("leg {leg} (waypoint {leg} to {next}, near {at:?}) crosses land and no way round it was found: choose a shorter stretch", next = leg + 1)]
    CrossesLand { leg: usize, at: (f64, f64) },
}

/// The most passes one plan may have.
const MAX_PASSES: usize = 100;
/// The highest flight altitude taken, metres.
const MAX_ALT_M: f64 = 10_000.0;
/// The farthest a corridor may reach off the shore, metres.
const MAX_REACH_M: f64 = 50_000.0;
/// The most waypoints one plan may have (autopilots take a few hundred to a few thousand).
const MAX_WAYPOINTS: usize = 100_000;

/// Plans a corridor scan: passes, route and coverage. Every leg of the route (first waypoint
/// to last) is checked against the land; the legs from and to home and the user's geofence are
/// the caller's ([`crate::plan::check_fence`]).
pub fn corridor_scan(req: &CorridorRequest) -> Result<CorridorPlan, CorridorError> {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !positive(req.width_m) {
        return Err(CorridorError::BadWidth(req.width_m));
    }
    if !(req.offset_m.is_finite() && req.offset_m >= 0.0) {
        return Err(CorridorError::BadOffset(req.offset_m));
    }
    if !(req.side_overlap.is_finite() && (0.0..1.0).contains(&req.side_overlap)) {
        return Err(CorridorError::BadOverlap(req.side_overlap));
    }
    if !positive(req.alt_m) || req.alt_m > MAX_ALT_M {
        return Err(CorridorError::BadAltitude(req.alt_m));
    }
    if !positive(req.camera.sensor_width_mm) || !positive(req.camera.focal_length_mm) {
        return Err(CorridorError::BadCamera);
    }
    if !positive(req.max_leg_m) {
        return Err(CorridorError::BadMaxLeg(req.max_leg_m));
    }
    let reach = req.offset_m + req.width_m;
    if reach > MAX_REACH_M {
        return Err(CorridorError::TooFar { km: reach / 1000.0 });
    }
    let footprint_m = req.camera.footprint_width_m(req.alt_m);
    let spacing_m = req.camera.line_spacing_m(req.alt_m, req.side_overlap);
    let passes = (req.width_m / spacing_m).ceil().max(1.0);
    if passes > MAX_PASSES as f64 {
        return Err(CorridorError::TooManyPasses { spacing_m });
    }
    let passes = passes as usize;
    // Passes centred in the band: the footprints reach past both edges by the same amount.
    let first = req.offset_m + (req.width_m - (passes - 1) as f64 * spacing_m) / 2.0;
    let pass_offsets_m: Vec<f64> = (0..passes).map(|k| first + k as f64 * spacing_m).collect();

    let shore = Shore::new(&ShoreRequest {
        coast: &req.coast,
        stretch: req.stretch,
        sea_side: req.sea_side,
        reach_m: reach,
    })?;
    let corridor = shore.corridor(req.offset_m, req.width_m);
    // Less than a square metre per metre of width is no corridor (rounding slivers).
    if corridor.unsigned_area() < req.width_m {
        return Err(CorridorError::NoSea {
            from_m: req.offset_m,
            to_m: reach,
        });
    }

    // Passes: offset curves of the land, clipped to the stretch's sea.
    let clip_to = shore.domain.as_ref().map(|d| grown(d, 1.0));
    let tolerance = (footprint_m * 0.02).clamp(0.5, 5.0);
    // Slivers where a pass grazes the clip are dropped; they are far shorter than the
    // footprint is wide, so the neighbouring passes' footprints cover them.
    let sliver = spacing_m.min(req.width_m) / 2.0;
    let levels: Vec<Vec<route::Piece>> = pass_offsets_m
        .iter()
        .map(|&d| passes::offset_curve(&shore.land, d, clip_to.as_ref(), sliver, tolerance))
        .collect();
    // Ways between pieces go round the land between the corridor's inner edge and the first
    // pass: never nearer the shore than the offset asked for.
    let around = grown(&shore.land, (req.offset_m + pass_offsets_m[0]) / 2.0);
    let route = |extras: Vec<Vec<route::Piece>>| {
        let runs = match &shore.stretch {
            Some(s) => route::along_stretch(levels.clone(), extras, &s.0, shore.start_at_end),
            None => route::round_coast(levels.clone(), extras),
        };
        route::join(runs, &shore.land, &around)
    };
    let mut path = route(Vec::new());
    if path.len() < 2 {
        return Err(CorridorError::NoSea {
            from_m: req.offset_m,
            to_m: reach,
        });
    }
    let gaps = passes::gaps(&corridor, &path, footprint_m);
    if !gaps.0.is_empty() {
        let extras = passes::fill_ins(
            &shore.land,
            &pass_offsets_m,
            &gaps,
            clip_to.as_ref(),
            footprint_m,
            tolerance,
        );
        path = route(extras);
    }
    let waypoints = path.len() + (polyline::length(&path) / req.max_leg_m) as usize;
    if waypoints > MAX_WAYPOINTS {
        return Err(CorridorError::TooManyWaypoints(waypoints));
    }
    let path = Euclidean.densify(&LineString::new(path), req.max_leg_m);
    for (leg, w) in path.0.windows(2).enumerate() {
        if Line::new(w[0], w[1]).intersects(&shore.land) {
            let at = shore.frame.to_lonlat(w[0]);
            return Err(CorridorError::CrossesLand {
                leg: leg + 1,
                at: (at.y, at.x),
            });
        }
    }

    let frame = shore.frame;
    let waypoint = |c: Coord<f64>, alt_m: f64| {
        let ll = frame.to_lonlat(c);
        Waypoint {
            lat: ll.y,
            lon: ll.x,
            alt_m,
        }
    };
    let waypoints: Vec<Waypoint> = path.0.iter().map(|c| waypoint(*c, req.alt_m)).collect();
    let corridor = corridor.map_coords(|c| frame.to_lonlat(c));
    let coverage = coverage(&corridor, &waypoints, footprint_m);
    let start = shore::nearest_shore(&shore.land, shore.stretch.as_ref(), path.0[0]);
    Ok(CorridorPlan {
        waypoints,
        corridor,
        pass_offsets_m,
        spacing_m,
        footprint_m,
        coverage,
        shore_start: waypoint(start, 0.0),
        shore_m: shore.shore_m,
    })
}

/// Share (0..1) of the corridor (lon/lat) that a camera with a footprint `footprint_width_m`
/// wide sees along the route: the area of the corridor inside the route grown by half the
/// footprint, over the corridor's area.
///
/// ```
/// use geo::{polygon, MultiPolygon};
/// use mizugiwa_drone::{corridor::coverage, plan::Waypoint};
///
/// // A strip about 1.1 km long and 150 m wide, flown down its middle.
/// let strip = MultiPolygon(vec![polygon![(x: 129.0, y: 34.0), (x: 129.012, y: 34.0), (x: 129.012, y: 34.00135), (x: 129.0, y: 34.00135)]]);
/// let line = |lat| vec![Waypoint { lat, lon: 128.999, alt_m: 120.0 }, Waypoint { lat, lon: 129.013, alt_m: 120.0 }];
/// assert!(coverage(&strip, &line(34.000675), 180.0) > 0.999);
/// assert!((coverage(&strip, &line(34.000675), 75.0) - 0.5).abs() < 0.01);
/// assert_eq!(coverage(&strip, &line(34.01), 180.0), 0.0);
/// ```
pub fn coverage(
    corridor: &MultiPolygon<f64>,
    waypoints: &[Waypoint],
    footprint_width_m: f64,
) -> f64 {
    let Some(r) = corridor.bounding_rect() else {
        return 0.0;
    };
    let frame = LocalFrame::new(r.center().y, r.center().x);
    let local = corridor.map_coords(|c| frame.to_local(c));
    let area = local.unsigned_area();
    if area <= 0.0 || waypoints.is_empty() || footprint_width_m.is_nan() || footprint_width_m <= 0.0
    {
        return 0.0;
    }
    let mut path: Vec<Coord<f64>> = waypoints
        .iter()
        .map(|w| frame.to_local(Coord { x: w.lon, y: w.lat }))
        .collect();
    if path.len() == 1 {
        path.push(path[0]);
    }
    let swath = grown(&LineString::new(path), footprint_width_m / 2.0);
    (local.intersection(&swath).unsigned_area() / area).min(1.0)
}
