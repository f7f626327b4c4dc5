//! The passes: offset curves of the land at each pass's distance from the shore, clipped to the
//! stretch's sea, and the fill-in passes where the camera would miss part of the corridor.

use geo::{Area, BooleanOps, LineString, MultiLineString, MultiPolygon, Simplify};

use super::route::{self, Piece};
use super::shore::grown;

/// The offset curve `d` metres off the land, clipped to `clip`, joined into pieces (pieces
/// shorter than `min_len` dropped) and simplified to within `tolerance` metres.
pub(super) fn offset_curve(
    land: &MultiPolygon<f64>,
    d: f64,
    clip: Option<&MultiPolygon<f64>>,
    min_len: f64,
    tolerance: f64,
) -> Vec<Piece> {
    let rings: Vec<LineString<f64>> = grown(land, d)
        .0
        .into_iter()
        .flat_map(|p| {
            let (exterior, interiors) = p.into_inner();
            std::iter::once(exterior).chain(interiors)
        })
        .collect();
    let lines = MultiLineString(rings);
    let lines = match clip {
        Some(c) => c.clip(&lines, false),
        None => lines,
    };
    route::pieces(lines, min_len)
        .into_iter()
        .map(|p| Piece {
            coords: LineString::new(p.coords).simplify(tolerance).0,
        })
        .collect()
}

/// Parts of the corridor the camera does not see along `path`: pieces larger than a tenth of
/// the footprint squared (smaller ones are rounding at the corridor's corners).
pub(super) fn gaps(
    corridor: &MultiPolygon<f64>,
    path: &[geo::Coord<f64>],
    footprint: f64,
) -> MultiPolygon<f64> {
    let seen = grown(&LineString::new(path.to_vec()), footprint / 2.0);
    let unseen = corridor.difference(&seen);
    MultiPolygon(
        unseen
            .0
            .into_iter()
            .filter(|p| p.unsigned_area() > footprint * footprint / 10.0)
            .collect(),
    )
}

/// Fill-in passes for `gaps`. Where an offset curve ends (in an inlet narrower than twice the
/// next pass's distance, the next pass does not exist), the sea between the last pass and the
/// inlet's middle can be farther than half a footprint from any pass. The offset curve half a
/// footprint beyond pass `k` always lies within half a footprint of such a point (on the way
/// from it to the shore), so the part of it near each gap is flown with pass `k`.
pub(super) fn fill_ins(
    land: &MultiPolygon<f64>,
    offsets: &[f64],
    gaps: &MultiPolygon<f64>,
    domain: Option<&MultiPolygon<f64>>,
    footprint: f64,
    tolerance: f64,
) -> Vec<Vec<Piece>> {
    let near_gaps = grown(gaps, footprint / 2.0);
    let clip = match domain {
        Some(d) => near_gaps.intersection(d),
        None => near_gaps,
    };
    offsets
        .windows(2)
        .map(|w| {
            let d = w[0] + footprint / 2.0;
            if d >= w[1] {
                return Vec::new(); // passes overlap by half a footprint or more: no gap to fill
            }
            offset_curve(land, d, Some(&clip), footprint / 10.0, tolerance)
        })
        .collect()
}
