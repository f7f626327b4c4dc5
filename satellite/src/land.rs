//! The land mask: land polygons in WGS84 lon/lat, what is land, how far the shore is, and land
//! burnt into a scene's pixel grid.
//!
//! SAR vessel detection must never look for ships on land (buildings and cranes are brighter
//! than any hull), and xView3 scores "close to shore" detections (within 2 km) on their own, so
//! the detector and the scene generator both need the same three things: point in land,
//! distance to the shore, and a raster of land over a window of the scene.
//!
//! ```
//! use mizugiwa_satellite::land::LandMask;
//!
//! let land = LandMask::natural_earth();
//! assert!(land.contains(129.33, 34.4)); // Tsushima
//! assert!(!land.contains(135.0, 40.0)); // the middle of the Sea of Japan
//! let d = land.distance_to_shore_m(129.0, 34.0); // between Tsushima and Iki
//! assert!(d > 5_000.0 && d < 40_000.0);
//! ```
//!
//! Rasterising ([`rasterize_pixels`], in `land/raster.rs`) goes through GDAL, with polygons
//! already in the scene's pixel coordinates.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use geo::{BoundingRect, Coord, LineString, MultiPolygon, Polygon, Rect};

mod raster;

pub use raster::{buffer_pixels, rasterize_pixels, PixelWindow};

/// Natural Earth 1:10m land around Japan and Korea (122–150° E, 24–46° N), see
/// `satellite/data/README.md`.
const NATURAL_EARTH_JAPAN: &str = include_str!("../data/land-japan.geojson");

/// Mean Earth radius (IUGG), metres: the local projection of `distance_to_shore_m`.
const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// Metres per degree of latitude on that sphere.
const M_PER_DEG: f64 = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

/// What went wrong reading a land mask or rasterising one.
#[derive(Debug, thiserror::Error)]
pub enum LandError {
    #[error("cannot read land mask {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("land mask is not valid GeoJSON: {0}")]
    GeoJson(String),
    #[error(
        "land mask {at}: {kind} is not supported; a land mask holds Polygon or MultiPolygon \
         geometries (bare, as Features or in a FeatureCollection)"
    )]
    UnsupportedGeometry { at: String, kind: String },
    #[error("land mask {at}: {reason}")]
    BadGeometry { at: String, reason: String },
    #[error("rasterising land: {0}")]
    Window(String),
    #[error("rasterising land through GDAL: {0}")]
    Gdal(#[from] gdal::errors::GdalError),
}

/// Land polygons in WGS84 (x = longitude, y = latitude, degrees), with each polygon's bounding
/// box kept beside it so that point queries skip every polygon that cannot hold the point.
///
/// Longitudes are taken as they are: a mask crossing the antimeridian must be split there (as
/// Natural Earth is).
#[derive(Debug, Clone)]
pub struct LandMask {
    polygons: MultiPolygon<f64>,
    bounds: Vec<Rect<f64>>,
}

/// No land: every point is sea and the shore is infinitely far.
impl Default for LandMask {
    fn default() -> Self {
        LandMask {
            polygons: MultiPolygon(Vec::new()),
            bounds: Vec::new(),
        }
    }
}

impl LandMask {
    /// The vendored Natural Earth land around Japan and Korea (122–150° E, 24–46° N), parsed
    /// on first use and shared afterwards. Its shore is good to a few hundred metres (see
    /// `satellite/data/README.md`); load a detailed coastline for operations.
    pub fn natural_earth() -> &'static LandMask {
        static MASK: OnceLock<LandMask> = OnceLock::new();
        MASK.get_or_init(|| {
            // The file is compiled in and checked by `natural_earth_parses` below, so this
            // cannot fail at run time; it is not outside input.
            LandMask::from_geojson_str(NATURAL_EARTH_JAPAN)
                .expect("vendored land-japan.geojson parses")
        })
    }

    /// A mask of these polygons. Fails on a coordinate that is not a finite longitude and
    /// latitude (a projected file, most likely) or a ring of fewer than three points.
    pub fn from_polygons(polygons: MultiPolygon<f64>) -> Result<LandMask, LandError> {
        for (i, polygon) in polygons.iter().enumerate() {
            check_polygon(polygon, &format!("polygon {i}"))?;
        }
        Ok(Self::new_unchecked(polygons))
    }

    fn new_unchecked(polygons: MultiPolygon<f64>) -> LandMask {
        let polygons: MultiPolygon<f64> = polygons
            .into_iter()
            .filter(|p| p.exterior().0.len() >= 3)
            .collect::<Vec<_>>()
            .into();
        let bounds = polygons
            .iter()
            // A polygon with at least three points always has a bounding box.
            .filter_map(|p| p.bounding_rect())
            .collect();
        LandMask { polygons, bounds }
    }

    /// Reads land polygons from GeoJSON: a Polygon or MultiPolygon geometry, a Feature of one,
    /// a FeatureCollection of them (or a GeometryCollection of polygons). Any other geometry,
    /// a feature without geometry, or coordinates that are not lon/lat are errors that name
    /// the feature.
    pub fn from_geojson_str(text: &str) -> Result<LandMask, LandError> {
        let geojson: geojson::GeoJson = text
            .parse()
            .map_err(|e: geojson::Error| LandError::GeoJson(e.to_string()))?;
        let mut polygons = Vec::new();
        match geojson {
            geojson::GeoJson::Geometry(g) => collect_geometry(&g.value, "geometry", &mut polygons)?,
            geojson::GeoJson::Feature(f) => collect_feature(&f, "feature", &mut polygons)?,
            geojson::GeoJson::FeatureCollection(fc) => {
                for (i, f) in fc.features.iter().enumerate() {
                    collect_feature(f, &format!("feature {i}"), &mut polygons)?;
                }
            }
        }
        Ok(Self::new_unchecked(polygons.into()))
    }

    /// Reads a GeoJSON file, as [`LandMask::from_geojson_str`].
    pub fn from_geojson_file(path: impl AsRef<Path>) -> Result<LandMask, LandError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LandError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_geojson_str(&text)
    }

    /// The polygons, lon/lat.
    pub fn polygons(&self) -> &MultiPolygon<f64> {
        &self.polygons
    }

    /// True when the mask holds no land at all.
    pub fn is_empty(&self) -> bool {
        self.polygons.0.is_empty()
    }

    /// Whether (lon, lat) is on land: inside a polygon's exterior ring and outside its holes
    /// (even-odd crossing count). Polygons whose bounding box misses the point are skipped, so
    /// a query over open sea costs a few comparisons. Points exactly on the shore line may
    /// fall either way.
    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        if !lon.is_finite() || !lat.is_finite() {
            return false;
        }
        self.polygons.iter().zip(&self.bounds).any(|(polygon, b)| {
            lon >= b.min().x
                && lon <= b.max().x
                && lat >= b.min().y
                && lat <= b.max().y
                && std::iter::once(polygon.exterior())
                    .chain(polygon.interiors())
                    .filter(|ring| ring_crosses(ring, lon, lat))
                    .count()
                    % 2
                    == 1
        })
    }

    /// Approximate distance in metres from (lon, lat) to the nearest shore, i.e. the nearest
    /// edge of any polygon, on land or at sea alike. The polygons are projected on a local
    /// equirectangular plane centred on the point (metres east = Δlon·cos(lat)·R), which is
    /// within a fraction of a percent of the geodesic distance over the tens of kilometres that
    /// matter for "close to shore". Infinite for an empty mask or a non-finite point.
    pub fn distance_to_shore_m(&self, lon: f64, lat: f64) -> f64 {
        if !lon.is_finite() || !lat.is_finite() {
            return f64::INFINITY;
        }
        let ky = M_PER_DEG;
        let kx = ky * lat.to_radians().cos();
        let project = |c: Coord<f64>| ((c.x - lon) * kx, (c.y - lat) * ky);
        let mut best_sq = f64::INFINITY;
        for (polygon, b) in self.polygons.iter().zip(&self.bounds) {
            // Distance from the point to the polygon's box: a lower bound on its edges'.
            let (x0, y0) = project(b.min());
            let (x1, y1) = project(b.max());
            let dx = if x0 > 0.0 {
                x0
            } else if x1 < 0.0 {
                -x1
            } else {
                0.0
            };
            let dy = if y0 > 0.0 {
                y0
            } else if y1 < 0.0 {
                -y1
            } else {
                0.0
            };
            if dx * dx + dy * dy >= best_sq {
                continue;
            }
            for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
                for w in ring.0.windows(2) {
                    let d = segment_distance_sq(project(w[0]), project(w[1]));
                    if d < best_sq {
                        best_sq = d;
                    }
                }
            }
        }
        best_sq.sqrt()
    }

    /// The polygons whose bounding box meets `bbox` (lon/lat), whole: enough to cut a
    /// continent-sized mask down to a scene before projecting it.
    pub fn intersecting(&self, bbox: Rect<f64>) -> LandMask {
        let (min, max) = (bbox.min(), bbox.max());
        let mut polygons = Vec::new();
        let mut bounds = Vec::new();
        for (polygon, b) in self.polygons.iter().zip(&self.bounds) {
            if b.min().x <= max.x && b.max().x >= min.x && b.min().y <= max.y && b.max().y >= min.y
            {
                polygons.push(polygon.clone());
                bounds.push(*b);
            }
        }
        LandMask {
            polygons: polygons.into(),
            bounds,
        }
    }
}

/// Whether a horizontal ray from (x, y) towards +x crosses an odd number of this ring's edges
/// (the ring may be closed or not).
fn ring_crosses(ring: &LineString<f64>, x: f64, y: f64) -> bool {
    let pts = &ring.0;
    let n = pts.len();
    if n < 3 {
        return false;
    }
    let mut inside = false;
    let mut j = n - 1;
    for i in 0..n {
        let (a, b) = (pts[i], pts[j]);
        if (a.y > y) != (b.y > y) && x < (b.x - a.x) * (y - a.y) / (b.y - a.y) + a.x {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Squared distance from the origin to the segment a–b.
fn segment_distance_sq(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len_sq = dx * dx + dy * dy;
    let t = if len_sq > 0.0 {
        (-(a.0 * dx + a.1 * dy) / len_sq).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (px, py) = (a.0 + t * dx, a.1 + t * dy);
    px * px + py * py
}

fn collect_feature(
    f: &geojson::Feature,
    at: &str,
    out: &mut Vec<Polygon<f64>>,
) -> Result<(), LandError> {
    match &f.geometry {
        Some(g) => collect_geometry(&g.value, at, out),
        None => Err(LandError::BadGeometry {
            at: at.to_string(),
            reason: "has no geometry".into(),
        }),
    }
}

fn collect_geometry(
    value: &geojson::Value,
    at: &str,
    out: &mut Vec<Polygon<f64>>,
) -> Result<(), LandError> {
    match value {
        geojson::Value::Polygon(rings) => out.push(to_polygon(rings, at)?),
        geojson::Value::MultiPolygon(polys) => {
            for (i, rings) in polys.iter().enumerate() {
                out.push(to_polygon(rings, &format!("{at}, polygon {i}"))?);
            }
        }
        geojson::Value::GeometryCollection(members) => {
            for (i, g) in members.iter().enumerate() {
                collect_geometry(&g.value, &format!("{at}, member {i}"), out)?;
            }
        }
        other => {
            return Err(LandError::UnsupportedGeometry {
                at: at.to_string(),
                kind: other.type_name().to_string(),
            })
        }
    }
    Ok(())
}

fn to_polygon(rings: &[Vec<Vec<f64>>], at: &str) -> Result<Polygon<f64>, LandError> {
    let mut lines = Vec::with_capacity(rings.len());
    for (r, ring) in rings.iter().enumerate() {
        let mut coords = Vec::with_capacity(ring.len());
        for position in ring {
            // serde_json already refused non-numbers; a position may still be too short.
            let (Some(&x), Some(&y)) = (position.first(), position.get(1)) else {
                return Err(LandError::BadGeometry {
                    at: at.to_string(),
                    reason: format!("ring {r} has a position with fewer than two coordinates"),
                });
            };
            coords.push(Coord { x, y });
        }
        lines.push(LineString::from(coords));
    }
    if lines.is_empty() {
        return Err(LandError::BadGeometry {
            at: at.to_string(),
            reason: "polygon has no rings".into(),
        });
    }
    let exterior = lines.remove(0);
    let polygon = Polygon::new(exterior, lines);
    check_polygon(&polygon, at)?;
    Ok(polygon)
}

fn check_polygon(polygon: &Polygon<f64>, at: &str) -> Result<(), LandError> {
    for (r, ring) in std::iter::once(polygon.exterior())
        .chain(polygon.interiors())
        .enumerate()
    {
        // Polygon::new closes rings, so a triangle has four points.
        if ring.0.len() < 4 {
            return Err(LandError::BadGeometry {
                at: at.to_string(),
                reason: format!("ring {r} has fewer than three distinct points"),
            });
        }
        if let Some(c) = ring.0.iter().find(|c| {
            !(c.x.is_finite()
                && c.y.is_finite()
                && (-180.0..=180.0).contains(&c.x)
                && (-90.0..=90.0).contains(&c.y))
        }) {
            return Err(LandError::BadGeometry {
                at: at.to_string(),
                reason: format!(
                    "({}, {}) is not a longitude and latitude; land masks are WGS84 (EPSG:4326), \
                     reproject the file first",
                    c.x, c.y
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    #[test]
    fn natural_earth_parses() {
        let land = LandMask::natural_earth();
        assert!(!land.is_empty());
        assert!(land.polygons().0.len() > 100, "{}", land.polygons().0.len());
    }

    #[test]
    fn known_land_and_sea() {
        let land = LandMask::natural_earth();
        for (name, lon, lat) in [
            ("Tsushima", 129.33, 34.4),
            ("Tokyo", 139.69, 35.69),
            ("Seoul", 126.98, 37.57),
            ("Sapporo", 141.35, 43.06),
            ("Vladivostok hinterland", 132.2, 43.5),
            ("Okinawa", 127.8, 26.35),
        ] {
            assert!(land.contains(lon, lat), "{name} should be land");
        }
        for (name, lon, lat) in [
            ("Korea Strait west of Tsushima", 129.0, 34.0),
            ("middle of the Sea of Japan", 135.0, 40.0),
            ("Pacific off Boso", 142.0, 34.0),
            ("Yellow Sea", 124.0, 36.0),
            ("Tokyo Bay", 139.8, 35.5),
        ] {
            assert!(!land.contains(lon, lat), "{name} should be sea");
        }
        assert!(!land.contains(f64::NAN, 34.0));
    }

    #[test]
    fn distance_to_shore_is_about_right() {
        let land = LandMask::natural_earth();
        // 34.0 N 129.0 E: Tsushima's south tip (about 34.08 N 129.2 E) is roughly 20 km away.
        let d = land.distance_to_shore_m(129.0, 34.0);
        assert!(d > 10_000.0 && d < 30_000.0, "{d}");
        // The middle of the Sea of Japan is far from everything (Sado, Oki, Korea all > 150 km).
        assert!(land.distance_to_shore_m(135.0, 40.0) > 150_000.0);
        // A point 1 km east of a square's edge, at 35° N.
        let km_lon = 1_000.0 / (M_PER_DEG * 35f64.to_radians().cos());
        let square = LandMask::from_polygons(
            polygon![(x: 130.0, y: 34.9), (x: 130.1, y: 34.9), (x: 130.1, y: 35.1), (x: 130.0, y: 35.1)].into(),
        )
        .unwrap();
        let d = square.distance_to_shore_m(130.1 + km_lon, 35.0);
        assert!((d - 1_000.0).abs() < 1.0, "{d}");
        // Inside, it is the distance to the nearest edge too.
        let d = square.distance_to_shore_m(130.05, 35.0);
        assert!(d > 4_000.0 && d < 5_000.0, "{d}");
        assert!(LandMask::default()
            .distance_to_shore_m(130.0, 35.0)
            .is_infinite());
    }

    #[test]
    fn intersecting_keeps_what_meets_the_box() {
        let land = LandMask::natural_earth();
        let tsushima = land.intersecting(Rect::new(
            Coord { x: 129.2, y: 34.2 },
            Coord { x: 129.4, y: 34.6 },
        ));
        assert!(!tsushima.is_empty());
        assert!(tsushima.polygons().0.len() < 10);
        assert!(tsushima.contains(129.33, 34.4));
        // The Pacific south of Honshu, outside even the continent's box.
        let open_sea = land.intersecting(Rect::new(
            Coord { x: 146.9, y: 26.9 },
            Coord { x: 147.1, y: 27.1 },
        ));
        assert!(open_sea.is_empty());
    }

    #[test]
    fn holes_are_sea() {
        let with_lake = LandMask::from_polygons(
            Polygon::new(
                LineString::from(vec![(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]),
                vec![LineString::from(vec![
                    (4.0, 4.0),
                    (6.0, 4.0),
                    (6.0, 6.0),
                    (4.0, 6.0),
                ])],
            )
            .into(),
        )
        .unwrap();
        assert!(with_lake.contains(2.0, 2.0));
        assert!(!with_lake.contains(5.0, 5.0));
        assert!(!with_lake.contains(11.0, 5.0));
    }

    #[test]
    fn malformed_geojson_is_an_error() {
        let cases = [
            ("", "not valid GeoJSON"),
            ("{", "not valid GeoJSON"),
            ("[1, 2]", "not valid GeoJSON"),
            (
                r#"{"type": "Point", "coordinates": [129.0, 34.0]}"#,
                "Point is not supported",
            ),
            (
                r#"{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": [[0,0],[1,1]]}}]}"#,
                "feature 0: LineString",
            ),
            (
                r#"{"type": "Feature", "properties": {}, "geometry": null}"#,
                "has no geometry",
            ),
            (
                r#"{"type": "Polygon", "coordinates": [[[0,0],[1,1],[0,0]]]}"#,
                "fewer than three",
            ),
            (
                r#"{"type": "Polygon", "coordinates": [[[0],[1,1],[1,0],[0,0]]]}"#,
                "position",
            ),
            (r#"{"type": "Polygon", "coordinates": []}"#, "no rings"),
            (
                r#"{"type": "Polygon", "coordinates": [[[500000,3800000],[510000,3800000],[510000,3810000],[500000,3800000]]]}"#,
                "not a longitude and latitude",
            ),
        ];
        for (text, expected) in cases {
            match LandMask::from_geojson_str(text) {
                Err(e) => assert!(e.to_string().contains(expected), "{text}: {e}"),
                Ok(_) => panic!("{text} should not parse"),
            }
        }
        let missing = LandMask::from_geojson_file("/nonexistent/land.geojson").unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/land.geojson"),
            "{missing}"
        );
    }

    #[test]
    fn geojson_forms_are_read() {
        let square = r#"[[[130,34],[131,34],[131,35],[130,35],[130,34]]]"#;
        let bare = format!(r#"{{"type": "Polygon", "coordinates": {square}}}"#);
        let feature = format!(r#"{{"type": "Feature", "properties": null, "geometry": {bare}}}"#);
        let multi = format!(r#"{{"type": "MultiPolygon", "coordinates": [{square}]}}"#);
        let collection =
            format!(r#"{{"type": "FeatureCollection", "features": [{feature}, {feature}]}}"#);
        for text in [bare, feature, multi, collection] {
            let mask = LandMask::from_geojson_str(&text).unwrap();
            assert!(mask.contains(130.5, 34.5), "{text}");
            assert!(!mask.contains(129.5, 34.5), "{text}");
        }
    }
}
