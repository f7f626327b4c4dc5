//! Distances on the ground, and one-to-one matching of two point sets within a distance gate,
//! minimising the total distance.
//!
//! Used twice: scoring detections against ground truth the way xView3 does (each truth object
//! matches at most one detection, within 200 m) and pairing SAR detections with AIS
//! positions. Pairs farther than the gate never match. The candidate pairs split the points
//! into independent groups (points with no candidate within the gate of each other); each
//! group is solved exactly with Kuhn-Munkres (`pathfinding`), so a scene with thousands of
//! ships costs a handful of tiny assignments rather than one cubic one.

use std::collections::HashMap;

use geo::{Distance, Haversine, Point};
use pathfinding::kuhn_munkres::kuhn_munkres_min;
use pathfinding::matrix::Matrix;

const WGS84_A: f64 = 6_378_137.0;
const WGS84_E2: f64 = 6.694_379_990_14e-3;

/// Metres per degree of longitude and of latitude on the WGS84 ellipsoid at `lat`.
pub fn metres_per_degree(lat: f64) -> (f64, f64) {
    let (s, c) = lat.to_radians().sin_cos();
    let w = (1.0 - WGS84_E2 * s * s).sqrt();
    let prime_vertical = WGS84_A / w;
    let meridian = WGS84_A * (1.0 - WGS84_E2) / (w * w * w);
    (
        prime_vertical * c * std::f64::consts::PI / 180.0,
        meridian * std::f64::consts::PI / 180.0,
    )
}

/// (east, north) metres from `a` to `b`, (lon, lat) points, on the local plane (fine over the
/// kilometres a ship moves between reports).
pub fn offset_m(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    let (m_lon, m_lat) = metres_per_degree((a.1 + b.1) / 2.0);
    ((b.0 - a.0) * m_lon, (b.1 - a.1) * m_lat)
}

/// The (lon, lat) point `p` moved by (east, north) metres.
pub fn moved(p: (f64, f64), east: f64, north: f64) -> (f64, f64) {
    let (m_lon, m_lat) = metres_per_degree(p.1);
    (p.0 + east / m_lon.max(1e-6), p.1 + north / m_lat)
}

/// Great-circle distance in metres between two (lon, lat) points.
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    Haversine.distance(Point::new(a.0, a.1), Point::new(b.0, b.1))
}

/// A matched pair: index in `a`, index in `b`, distance in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    pub a: usize,
    pub b: usize,
    pub distance_m: f64,
}

/// Matches `a` to `b` one-to-one within `gate_m` metres with the least total distance among
/// the matchings of largest size (an unmatched point costs more than any gated pair).
pub fn assign(a: &[(f64, f64)], b: &[(f64, f64)], gate_m: f64) -> Vec<Pair> {
    // No two points are farther apart than half the globe: a wider gate (or an infinite one)
    // changes nothing but would overflow the integer costs below. NaN stays NaN (no pairs).
    const HALF_GLOBE_M: f64 = 20_100_000.0;
    let gate_m = if gate_m > HALF_GLOBE_M {
        HALF_GLOBE_M
    } else {
        gate_m
    };
    // Candidate pairs, through a grid of cells about a gate wide.
    let cell_deg = (gate_m / 111_000.0).max(1e-6);
    let key = |p: (f64, f64)| {
        (
            (p.0 / cell_deg).floor() as i64,
            (p.1 / cell_deg).floor() as i64,
        )
    };
    let mut grid: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    for (j, &p) in b.iter().enumerate() {
        if p.0.is_finite() && p.1.is_finite() {
            grid.entry(key(p)).or_default().push(j);
        }
    }
    let mut candidates: Vec<Pair> = Vec::new();
    for (i, &p) in a.iter().enumerate() {
        if !(p.0.is_finite() && p.1.is_finite()) {
            continue;
        }
        let (cx, cy) = key(p);
        // Longitude cells shrink with latitude: widen the search east-west.
        let span_x = (1.0 / p.1.to_radians().cos().max(0.05)).ceil() as i64;
        for dx in -span_x..=span_x {
            for dy in -1..=1 {
                for &j in grid
                    .get(&(cx.saturating_add(dx), cy.saturating_add(dy)))
                    .into_iter()
                    .flatten()
                {
                    let d = distance_m(p, b[j]);
                    if d <= gate_m {
                        candidates.push(Pair {
                            a: i,
                            b: j,
                            distance_m: d,
                        });
                    }
                }
            }
        }
    }
    // Independent groups: union-find over a-indices and b-indices (b offset by a.len()).
    let mut parent: Vec<usize> = (0..a.len() + b.len()).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for c in &candidates {
        let (x, y) = (find(&mut parent, c.a), find(&mut parent, a.len() + c.b));
        if x != y {
            parent[x] = y;
        }
    }
    let mut groups: HashMap<usize, Vec<Pair>> = HashMap::new();
    for c in candidates {
        let root = find(&mut parent, c.a);
        groups.entry(root).or_default().push(c);
    }
    let mut out = Vec::new();
    for (_, pairs) in groups {
        if pairs.len() == 1 {
            out.push(pairs[0]);
            continue;
        }
        let mut rows: Vec<usize> = pairs.iter().map(|p| p.a).collect();
        let mut cols: Vec<usize> = pairs.iter().map(|p| p.b).collect();
        for v in [&mut rows, &mut cols] {
            v.sort_unstable();
            v.dedup();
        }
        // Kuhn-Munkres wants rows ≤ columns.
        let transpose = rows.len() > cols.len();
        let (r, c) = if transpose {
            (&cols, &rows)
        } else {
            (&rows, &cols)
        };
        // Costs in centimetres; a non-candidate costs more than the whole group's matching, so
        // the most pairs are made first and the total distance is minimised among them.
        let forbidden = (gate_m * 100.0).ceil() as i64 * (r.len() as i64 + 1) + 1;
        let mut m = Matrix::new(r.len(), c.len(), forbidden);
        for p in &pairs {
            let (ri, ci) = if transpose { (p.b, p.a) } else { (p.a, p.b) };
            let (ri, ci) = (
                r.binary_search(&ri).unwrap_or(0),
                c.binary_search(&ci).unwrap_or(0),
            );
            m[(ri, ci)] = (p.distance_m * 100.0).round() as i64;
        }
        let (_, assignment) = kuhn_munkres_min(&m);
        for (ri, &ci) in assignment.iter().enumerate() {
            if m[(ri, ci)] >= forbidden {
                continue;
            }
            let (ai, bi) = if transpose {
                (c[ci], r[ri])
            } else {
                (r[ri], c[ci])
            };
            if let Some(p) = pairs.iter().find(|p| p.a == ai && p.b == bi) {
                out.push(*p);
            }
        }
    }
    out.sort_by_key(|p| (p.a, p.b));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A point `east`, `north` metres from (129.3, 34.2).
    fn at(east: f64, north: f64) -> (f64, f64) {
        (
            129.3 + east / (111_320.0 * 34.2f64.to_radians().cos()),
            34.2 + north / 110_950.0,
        )
    }

    #[test]
    fn the_optimal_one_to_one_matching_is_found_within_the_gate() {
        // Greedy nearest-first would pair a0 with b0 (50 m) and leave a1 unmatched; the
        // optimum pairs a0-b1 (150 m) and a1-b0 (150 m).
        let a = [at(0.0, 0.0), at(200.0, 0.0), at(5000.0, 0.0)];
        let b = [at(50.0, 0.0), at(-150.0, 0.0), at(9000.0, 0.0)];
        let pairs = assign(&a, &b, 200.0);
        let idx: Vec<(usize, usize)> = pairs.iter().map(|p| (p.a, p.b)).collect();
        assert_eq!(idx, vec![(0, 1), (1, 0)]);
        assert!(pairs.iter().all(|p| (p.distance_m - 150.0).abs() < 1.0));
        assert!(assign(&a, &b, 10.0).is_empty());
        assert!(assign(&[], &b, 200.0).is_empty());
        assert!(assign(&[(f64::NAN, 1.0)], &b, 200.0).is_empty());
    }

    #[test]
    fn more_detections_than_truth_transposes() {
        let a = [at(0.0, 0.0), at(10.0, 0.0), at(20.0, 0.0)];
        let b = [at(12.0, 0.0)];
        let pairs = assign(&a, &b, 200.0);
        assert_eq!(pairs.len(), 1);
        assert_eq!((pairs[0].a, pairs[0].b), (1, 0));
    }

    #[test]
    fn a_gate_wider_than_the_earth_matches_everything_without_overflow() {
        let a = [at(0.0, 0.0), at(200.0, 0.0)];
        let b = [at(50.0, 0.0), at(-150.0, 0.0), at(9000.0, 0.0)];
        for gate in [1e17, 1e300, f64::INFINITY] {
            let pairs = assign(&a, &b, gate);
            let idx: Vec<(usize, usize)> = pairs.iter().map(|p| (p.a, p.b)).collect();
            assert_eq!(idx, vec![(0, 1), (1, 0)], "{gate}");
        }
        // Finite but absurd coordinates (a position dead-reckoned for ages) beside real ones.
        let pairs = assign(
            &[(1e300, 34.2), at(0.0, 0.0)],
            &[(-1e300, 1e300), at(10.0, 0.0)],
            200.0,
        );
        assert_eq!(
            pairs.iter().map(|p| (p.a, p.b)).collect::<Vec<_>>(),
            vec![(1, 1)]
        );
    }
}
