//! Polylines in the local plane (metres): nearest points and stations along them, a stretch
//! cut out of one, and the region its normals sweep on one side.

use geo::{unary_union, Area, Coord, LineString, MultiPolygon, Orient, Polygon};

use super::shore::JOIN;

/// Coordinates closer than this (metres) are the same point.
pub(super) const SAME_M: f64 = 1e-3;

pub(super) fn close(a: Coord<f64>, b: Coord<f64>) -> bool {
    (a.x - b.x).abs() < SAME_M && (a.y - b.y).abs() < SAME_M
}

/// Consecutive repeated points removed.
pub(super) fn dedup(mut c: Vec<Coord<f64>>) -> Vec<Coord<f64>> {
    c.dedup_by(|b, a| close(*a, *b));
    c
}

pub(super) fn length(c: &[Coord<f64>]) -> f64 {
    c.windows(2).map(|w| dist(w[0], w[1])).sum()
}

pub(super) fn dist(a: Coord<f64>, b: Coord<f64>) -> f64 {
    (a.x - b.x).hypot(a.y - b.y)
}

/// The point of a polyline nearest to another point.
pub(super) struct Located {
    pub distance: f64,
    /// Distance along the polyline from its start, metres.
    pub station: f64,
    pub point: Coord<f64>,
}

pub(super) fn locate(line: &[Coord<f64>], p: Coord<f64>) -> Located {
    let mut best = Located {
        distance: f64::INFINITY,
        station: 0.0,
        point: line[0],
    };
    let mut station = 0.0;
    for w in line.windows(2) {
        let (a, b) = (w[0], w[1]);
        let len = dist(a, b);
        let t = if len > 0.0 {
            (((p.x - a.x) * (b.x - a.x) + (p.y - a.y) * (b.y - a.y)) / (len * len)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let q = Coord {
            x: a.x + t * (b.x - a.x),
            y: a.y + t * (b.y - a.y),
        };
        let d = dist(p, q);
        if d < best.distance {
            best = Located {
                distance: d,
                station: station + t * len,
                point: q,
            };
        }
        station += len;
    }
    best
}

/// The point `station` metres along the polyline.
fn at_station(line: &[Coord<f64>], station: f64) -> Coord<f64> {
    let mut s = 0.0;
    for w in line.windows(2) {
        let len = dist(w[0], w[1]);
        if s + len >= station && len > 0.0 {
            let t = ((station - s) / len).clamp(0.0, 1.0);
            return Coord {
                x: w[0].x + t * (w[1].x - w[0].x),
                y: w[0].y + t * (w[1].y - w[0].y),
            };
        }
        s += len;
    }
    line[line.len() - 1]
}

/// The part of a polyline from station `from` to station `to`; on a closed ring (first point
/// repeated last) it wraps round the start when `to < from`.
pub(super) fn cut(line: &[Coord<f64>], from: f64, to: f64, ring: bool) -> Vec<Coord<f64>> {
    let mut stations = Vec::with_capacity(line.len());
    let mut s = 0.0;
    stations.push(0.0);
    for w in line.windows(2) {
        s += dist(w[0], w[1]);
        stations.push(s);
    }
    let mut out = vec![at_station(line, from)];
    if to >= from {
        out.extend(
            line.iter()
                .zip(&stations)
                .filter(|(_, s)| **s > from && **s < to)
                .map(|(c, _)| *c),
        );
    } else if ring {
        out.extend(
            line.iter()
                .zip(&stations)
                .filter(|(_, s)| **s > from)
                .map(|(c, _)| *c),
        );
        out.extend(
            line.iter()
                .zip(&stations)
                .skip(1)
                .filter(|(_, s)| **s < to)
                .map(|(c, _)| *c),
        );
    }
    out.push(at_station(line, to));
    dedup(out)
}

/// The right normal of the direction from `a` to `b`, unit length.
pub(super) fn right_normal(a: Coord<f64>, b: Coord<f64>) -> Coord<f64> {
    let len = dist(a, b);
    Coord {
        x: (b.y - a.y) / len,
        y: -(b.x - a.x) / len,
    }
}

/// The region swept by the right normals of a polyline out to `depth`: a quadrilateral per
/// segment and a fan at each vertex where the line turns away from that side.
pub(super) fn slabs(line: &[Coord<f64>], depth: f64) -> MultiPolygon<f64> {
    let mut parts: Vec<Polygon<f64>> = Vec::new();
    let add = |c: Coord<f64>, n: Coord<f64>, k: f64| Coord {
        x: c.x + n.x * k,
        y: c.y + n.y * k,
    };
    for w in line.windows(2) {
        let n = right_normal(w[0], w[1]);
        let quad = vec![w[0], w[1], add(w[1], n, depth), add(w[0], n, depth), w[0]];
        parts.push(Polygon::new(LineString::new(quad), vec![]));
    }
    for w in line.windows(3) {
        let (n0, n1) = (right_normal(w[0], w[1]), right_normal(w[1], w[2]));
        let turn = (n0.x * n1.y - n0.y * n1.x).atan2(n0.x * n1.x + n0.y * n1.y);
        if turn <= 1e-9 {
            continue; // turning towards the right side: the quadrilaterals overlap there
        }
        let steps = (turn / JOIN).ceil().max(1.0) as usize;
        let a0 = n0.y.atan2(n0.x);
        let mut fan = vec![w[1]];
        for k in 0..=steps {
            let a = a0 + turn * k as f64 / steps as f64;
            fan.push(add(
                w[1],
                Coord {
                    x: a.cos(),
                    y: a.sin(),
                },
                depth,
            ));
        }
        fan.push(w[1]);
        parts.push(Polygon::new(LineString::new(fan), vec![]));
    }
    let parts: Vec<Polygon<f64>> = parts
        .into_iter()
        .map(|p| p.orient(geo::orient::Direction::Default))
        .filter(|p| p.unsigned_area() > 0.0)
        .collect();
    unary_union(parts.iter())
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Contains, Point};

    fn c(x: f64, y: f64) -> Coord<f64> {
        Coord { x, y }
    }

    #[test]
    fn a_stretch_of_a_ring_wraps_round_its_start() {
        let ring = [
            c(0.0, 0.0),
            c(10.0, 0.0),
            c(10.0, 10.0),
            c(0.0, 10.0),
            c(0.0, 0.0),
        ];
        assert_eq!(
            cut(&ring, 5.0, 15.0, true),
            vec![c(5.0, 0.0), c(10.0, 0.0), c(10.0, 5.0)]
        );
        assert_eq!(
            cut(&ring, 35.0, 5.0, true),
            vec![c(0.0, 5.0), c(0.0, 0.0), c(5.0, 0.0)]
        );
        let l = locate(&ring, c(4.0, -3.0));
        assert_eq!((l.distance, l.station, l.point), (3.0, 4.0, c(4.0, 0.0)));
    }

    #[test]
    fn slabs_sweep_the_right_side_and_fan_round_a_convex_corner() {
        // North then east: the right side is east then south, the corner at (0, 100) is convex there.
        let s = slabs(&[c(0.0, 0.0), c(0.0, 100.0), c(100.0, 100.0)], 10.0);
        let area = s.unsigned_area();
        let expected = 100.0 * 10.0 * 2.0 - 10.0 * 10.0; // the two strips overlap in a 10 m square
        assert!((area - expected).abs() < 1.0, "{area} vs {expected}");
        assert!(s.contains(&Point::new(5.0, 50.0)) && !s.contains(&Point::new(-5.0, 50.0)));
        // Turning left instead: the right side is outside the corner, and the fan fills it.
        let s = slabs(&[c(0.0, 0.0), c(0.0, 100.0), c(-100.0, 100.0)], 10.0);
        let quarter = std::f64::consts::PI * 100.0 / 4.0;
        assert!(
            (s.unsigned_area() - (2000.0 + quarter)).abs() < 2.0,
            "{}",
            s.unsigned_area()
        );
    }
}
