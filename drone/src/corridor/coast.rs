//! Coastlines read from GeoJSON: land polygons (Natural Earth's `land` layer, or a user's own),
//! lines drawn along the shore, or both.

use geo::{Coord, LineString, Polygon};
use serde_json::Value;

use super::CorridorError;

/// A coastline as read from a file, lon/lat degrees.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Coast {
    /// Land. Interior rings (lakes) are dropped on reading: a lake is not the sea.
    pub land: Vec<Polygon<f64>>,
    /// Lines along the shore. Joined end to end when they meet; several separate lines are
    /// refused by the planner (one stretch per plan).
    pub lines: Vec<LineString<f64>>,
}

/// Which side of a line along the shore the sea is on, looking along the line.
///
/// OpenStreetMap draws `natural=coastline` with the land on the left and the sea on the right,
/// and so do GeoJSON land polygons (exterior rings run counter-clockwise, RFC 7946), so
/// [`SeaSide::Right`] is what a line cut from either kind of data means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeaSide {
    Left,
    #[default]
    Right,
}

impl Coast {
    /// Reads the polygons and lines of a GeoJSON geometry, feature, feature collection or
    /// geometry collection. Points are ignored; anything malformed is refused with where it is.
    ///
    /// ```
    /// use mizugiwa_drone::corridor::Coast;
    ///
    /// let v = serde_json::json!({"type": "LineString", "coordinates": [[129.2, 34.3], [129.21, 34.31]]});
    /// let coast = Coast::from_geojson(&v).unwrap();
    /// assert_eq!(coast.lines.len(), 1);
    /// assert!(Coast::from_geojson(&serde_json::json!({"type": "LineString", "coordinates": [[500, 1]]})).is_err());
    /// ```
    pub fn from_geojson(v: &Value) -> Result<Coast, CorridorError> {
        let mut coast = Coast::default();
        collect(v, "", &mut coast)?;
        Ok(coast)
    }

    /// Whether the coast has neither land nor lines.
    pub fn is_empty(&self) -> bool {
        self.land.is_empty() && self.lines.is_empty()
    }
}

/// `at` and `what` joined into a place name for error messages: "feature 3 Polygon".
fn sub(at: &str, what: &str) -> String {
    if at.is_empty() {
        what.to_string()
    } else {
        format!("{at} {what}")
    }
}

fn bad(at: &str, what: impl std::fmt::Display) -> CorridorError {
    CorridorError::BadCoast(if at.is_empty() {
        what.to_string()
    } else {
        format!("{at}: {what}")
    })
}

fn collect(v: &Value, at: &str, coast: &mut Coast) -> Result<(), CorridorError> {
    let kind = v["type"]
        .as_str()
        .ok_or_else(|| bad(at, "not a GeoJSON object (no \"type\")"))?;
    match kind {
        "FeatureCollection" => {
            let features = v["features"]
                .as_array()
                .ok_or_else(|| bad(at, "FeatureCollection without features"))?;
            for (i, f) in features.iter().enumerate() {
                collect(f, &sub(at, &format!("feature {i}")), coast)?;
            }
        }
        "GeometryCollection" => {
            let geometries = v["geometries"]
                .as_array()
                .ok_or_else(|| bad(at, "GeometryCollection without geometries"))?;
            for (i, g) in geometries.iter().enumerate() {
                collect(g, &sub(at, &format!("geometry {i}")), coast)?;
            }
        }
        "Feature" if v["geometry"].is_null() => {}
        "Feature" => collect(&v["geometry"], at, coast)?,
        "LineString" => coast
            .lines
            .push(line(&v["coordinates"], &sub(at, "LineString"))?),
        "MultiLineString" => {
            for (i, l) in array(&v["coordinates"], at)?.iter().enumerate() {
                coast
                    .lines
                    .push(line(l, &sub(at, &format!("MultiLineString line {i}")))?);
            }
        }
        "Polygon" => coast
            .land
            .push(polygon(&v["coordinates"], &sub(at, "Polygon"))?),
        "MultiPolygon" => {
            for (i, p) in array(&v["coordinates"], at)?.iter().enumerate() {
                coast
                    .land
                    .push(polygon(p, &sub(at, &format!("MultiPolygon polygon {i}")))?);
            }
        }
        "Point" | "MultiPoint" => {}
        other => return Err(bad(at, format!("unknown GeoJSON type {other:?}"))),
    }
    Ok(())
}

fn array<'a>(v: &'a Value, at: &str) -> Result<&'a Vec<Value>, CorridorError> {
    v.as_array()
        .ok_or_else(|| bad(at, "coordinates is not an array"))
}

fn position(p: &Value, at: &str) -> Result<Coord<f64>, CorridorError> {
    match (
        p.get(0).and_then(Value::as_f64),
        p.get(1).and_then(Value::as_f64),
    ) {
        (Some(lon), Some(lat)) if lon.abs() <= 180.0 && lat.abs() <= 90.0 => {
            Ok(Coord { x: lon, y: lat })
        }
        _ => Err(bad(at, format!("not a [lon, lat] position: {p}"))),
    }
}

fn positions(v: &Value, at: &str) -> Result<Vec<Coord<f64>>, CorridorError> {
    array(v, at)?.iter().map(|p| position(p, at)).collect()
}

fn line(v: &Value, at: &str) -> Result<LineString<f64>, CorridorError> {
    let coords = positions(v, at)?;
    if coords.len() < 2 {
        return Err(bad(at, "a line needs at least 2 positions"));
    }
    Ok(LineString::new(coords))
}

fn polygon(v: &Value, at: &str) -> Result<Polygon<f64>, CorridorError> {
    let rings = array(v, at)?;
    let exterior = positions(
        rings
            .first()
            .ok_or_else(|| bad(at, "a polygon without rings"))?,
        at,
    )?;
    if exterior.len() < 4 {
        return Err(bad(at, "a polygon ring needs at least 4 positions"));
    }
    Ok(Polygon::new(LineString::new(exterior), vec![]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_every_kind_of_geojson_and_refuses_malformed_positions() {
        let v = json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {}, "geometry": {"type": "MultiPolygon", "coordinates": [
                [[[0, 0], [1, 0], [1, 1], [0, 0]], [[0.2, 0.1], [0.3, 0.1], [0.3, 0.2], [0.2, 0.1]]],
                [[[2, 2], [3, 2], [3, 3], [2, 2]]]]}},
            {"type": "Feature", "properties": {}, "geometry": null},
            {"type": "Feature", "properties": {}, "geometry": {"type": "GeometryCollection", "geometries": [
                {"type": "Point", "coordinates": [0, 0]},
                {"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]], [[1, 1], [2, 1, 5]]]}]}}
        ]});
        let coast = Coast::from_geojson(&v).unwrap();
        assert_eq!(coast.land.len(), 2);
        assert!(coast.land[0].interiors().is_empty(), "lakes dropped");
        assert_eq!(coast.lines.len(), 2);

        for (bad, says) in [
            (
                json!({"type": "LineString", "coordinates": [[0, 0]]}),
                "at least 2 positions",
            ),
            (
                json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}),
                "at least 4 positions",
            ),
            (
                json!({"type": "Polygon", "coordinates": []}),
                "without rings",
            ),
            (
                json!({"type": "LineString", "coordinates": [[0, 0], [0, 91]]}),
                "not a [lon, lat] position",
            ),
            (
                json!({"type": "LineString", "coordinates": [[0, 0], ["a", 1]]}),
                "not a [lon, lat] position",
            ),
            (
                json!({"type": "FeatureCollection", "features": [{"type": "Circle"}]}),
                "feature 0: unknown GeoJSON type",
            ),
            (json!([1, 2]), "not a GeoJSON object"),
        ] {
            let e = Coast::from_geojson(&bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(
            Coast::from_geojson(&json!({"type": "Point", "coordinates": [0, 0]}))
                .unwrap()
                .is_empty()
        );
    }
}
