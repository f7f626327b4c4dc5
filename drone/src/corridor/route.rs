//! From passes to one route: pieces of each pass joined and put in flying order (boustrophedon
//! along a stretch, loop after loop round a whole coast), islands and pockets spliced in where
//! the route passes them, and the way between two pieces taken round the land, not across it.

use geo::{Coord, Intersects, Line, LineString, MultiLineString, MultiPolygon};

use super::polyline::{close, dedup, dist, length, locate};

/// A piece of a pass: an open polyline, or a closed loop (first point repeated last).
#[derive(Debug, Clone)]
pub(super) struct Piece {
    pub coords: Vec<Coord<f64>>,
}

impl Piece {
    pub fn closed(&self) -> bool {
        self.coords.len() > 3 && close(self.coords[0], self.coords[self.coords.len() - 1])
    }

    /// The loop restarted at its vertex `i`.
    fn rotated(&self, i: usize) -> Vec<Coord<f64>> {
        let ring = &self.coords[..self.coords.len() - 1];
        let mut out: Vec<Coord<f64>> = ring[i..].iter().chain(&ring[..i]).copied().collect();
        out.push(out[0]);
        out
    }

    fn nearest_vertex(&self, p: Coord<f64>) -> (usize, f64) {
        self.coords
            .iter()
            .enumerate()
            .map(|(i, c)| (i, dist(*c, p)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("a piece has points")
    }
}

/// The lines of a clipped pass joined where they meet (a clip cuts rings at their seam), with
/// pieces shorter than `min_len` dropped.
pub(super) fn pieces(lines: MultiLineString<f64>, min_len: f64) -> Vec<Piece> {
    let mut open: Vec<Vec<Coord<f64>>> = lines
        .0
        .into_iter()
        .map(|l| dedup(l.0))
        .filter(|c| c.len() >= 2)
        .collect();
    let mut out = Vec::new();
    while let Some(mut cur) = open.pop() {
        loop {
            let (head, tail) = (cur[0], cur[cur.len() - 1]);
            if cur.len() > 3 && close(head, tail) {
                break;
            }
            let Some(i) = open.iter().position(|l| {
                let (s, e) = (l[0], l[l.len() - 1]);
                close(s, tail) || close(e, tail) || close(e, head) || close(s, head)
            }) else {
                break;
            };
            let l = open.remove(i);
            let (s, e) = (l[0], l[l.len() - 1]);
            if close(s, tail) {
                cur.extend(l.into_iter().skip(1));
            } else if close(e, tail) {
                cur.extend(l.into_iter().rev().skip(1));
            } else if close(e, head) {
                let n = l.len() - 1;
                cur.splice(0..0, l.into_iter().take(n));
            } else {
                let n = l.len() - 1;
                cur.splice(0..0, l.into_iter().rev().take(n));
            }
        }
        if length(&cur) >= min_len {
            out.push(Piece { coords: cur });
        }
    }
    out
}

/// Flying order along an open stretch: each pass's pieces by their station along the stretch,
/// every other pass backwards (the first one too when `start_at_end`). Loops (round an islet,
/// in a pocket of sea) and the pass's `extras` are flown as excursions from the point of the
/// pass nearest to them.
pub(super) fn along_stretch(
    passes: Vec<Vec<Piece>>,
    mut extras: Vec<Vec<Piece>>,
    stretch: &[Coord<f64>],
    start_at_end: bool,
) -> Vec<Vec<Coord<f64>>> {
    let station = |c: Coord<f64>| locate(stretch, c).station;
    let mut runs = Vec::new();
    extras.resize(passes.len(), Vec::new());
    for (k, (pass, extra)) in passes.into_iter().zip(extras).enumerate() {
        let (mut side, open): (Vec<Piece>, Vec<Piece>) = pass.into_iter().partition(Piece::closed);
        side.extend(extra);
        let mut open: Vec<(f64, Vec<Coord<f64>>)> = open
            .into_iter()
            .map(|p| {
                let mut c = p.coords;
                if station(c[0]) > station(c[c.len() - 1]) {
                    c.reverse();
                }
                (station(c[0]), c)
            })
            .collect();
        let mut lone = Vec::new();
        for piece in side {
            if !splice(&mut open, &piece) {
                let first = piece
                    .coords
                    .iter()
                    .map(|c| station(*c))
                    .fold(f64::INFINITY, f64::min);
                lone.push((first, piece.coords));
            }
        }
        open.extend(lone);
        open.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut pass: Vec<Vec<Coord<f64>>> = open.into_iter().map(|(_, c)| c).collect();
        // Backwards: every odd pass, or every even one when starting from the far end.
        if k.is_multiple_of(2) == start_at_end {
            pass.reverse();
            for c in &mut pass {
                c.reverse();
            }
        }
        runs.extend(pass);
    }
    runs
}

/// Puts `piece` into the nearest of the `open` runs as an excursion: from the run's point
/// nearest to the piece, round the piece (a loop) or along it (an open piece, from its nearer
/// end), and back to that point. False when there is no run to put it in.
fn splice(open: &mut [(f64, Vec<Coord<f64>>)], piece: &Piece) -> bool {
    // (run, segment, point on the run, distance) of the closest approach.
    let mut best: Option<(usize, usize, Coord<f64>, f64)> = None;
    for (j, (_, run)) in open.iter().enumerate() {
        for (i, w) in run.windows(2).enumerate() {
            for c in &piece.coords {
                let q = locate(w, *c).point;
                let d = dist(q, *c);
                if best.is_none_or(|b| d < b.3) {
                    best = Some((j, i, q, d));
                }
            }
        }
    }
    let Some((j, i, q, _)) = best else {
        return false;
    };
    let excursion: Vec<Coord<f64>> = if piece.closed() {
        piece.rotated(piece.nearest_vertex(q).0)
    } else {
        let c = &piece.coords;
        if dist(c[0], q) <= dist(c[c.len() - 1], q) {
            c.clone()
        } else {
            c.iter().rev().copied().collect()
        }
    };
    let run = &mut open[j].1;
    let insert: Vec<Coord<f64>> = std::iter::once(q)
        .chain(excursion)
        .chain(std::iter::once(q))
        .collect();
    run.splice(i + 1..i + 1, insert);
    true
}

/// Flying order round a whole coast: pass after pass outwards, each loop started at its
/// vertex nearest to where the vehicle is, the nearest loop next, the pass's `extras` flown
/// as excursions from its nearest point.
pub(super) fn round_coast(
    passes: Vec<Vec<Piece>>,
    extras: Vec<Vec<Piece>>,
) -> Vec<Vec<Coord<f64>>> {
    let mut runs: Vec<Vec<Coord<f64>>> = Vec::new();
    let mut extras = extras.into_iter();
    for mut pass in passes {
        let mut level: Vec<(f64, Vec<Coord<f64>>)> = Vec::new();
        while !pass.is_empty() {
            let here = level
                .last()
                .map(|(_, r)| r[r.len() - 1])
                .or(runs.last().map(|r| r[r.len() - 1]));
            let (j, i) = match here {
                None => (0, 0),
                Some(h) => pass
                    .iter()
                    .enumerate()
                    .map(|(j, p)| (j, p.nearest_vertex(h)))
                    .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
                    .map(|(j, (i, _))| (j, i))
                    .expect("pass is not empty"),
            };
            let p = pass.remove(j);
            let run = if p.closed() {
                p.rotated(i)
            } else if i * 2 > p.coords.len() {
                p.coords.into_iter().rev().collect()
            } else {
                p.coords
            };
            level.push((0.0, run));
        }
        // Fill-ins are flown as excursions from the nearest point of this pass's loops.
        for piece in extras.next().unwrap_or_default() {
            if !splice(&mut level, &piece) {
                level.push((0.0, piece.coords));
            }
        }
        runs.extend(level.into_iter().map(|(_, r)| r));
    }
    runs
}

/// The runs joined into one path; where the straight way from one run to the next would cross
/// the land it goes round it along `around` (the land grown a little) instead.
pub(super) fn join(
    runs: Vec<Vec<Coord<f64>>>,
    land: &MultiPolygon<f64>,
    around: &MultiPolygon<f64>,
) -> Vec<Coord<f64>> {
    let mut path: Vec<Coord<f64>> = Vec::new();
    for run in runs {
        if let (Some(&a), Some(&b)) = (path.last(), run.first()) {
            path.extend(transit(a, b, land, around, 0));
        }
        path.extend(run);
    }
    dedup(path)
}

/// Where a straight way enters an obstacle's ring first and leaves it last.
struct Crossing<'a> {
    /// Distance from the way's start to the entry.
    from_a: f64,
    in_edge: usize,
    out_edge: usize,
    entry: Coord<f64>,
    exit: Coord<f64>,
    ring: &'a LineString<f64>,
}

/// The way from `a` to `b` (without `a`), round the land where the straight line crosses it.
fn transit(
    a: Coord<f64>,
    b: Coord<f64>,
    land: &MultiPolygon<f64>,
    around: &MultiPolygon<f64>,
    depth: usize,
) -> Vec<Coord<f64>> {
    let straight = Line::new(a, b);
    if depth > 8 || !straight.intersects(land) {
        return vec![b];
    }
    // The first obstacle along the line that it enters and leaves again.
    let mut best: Option<Crossing> = None;
    for poly in &around.0 {
        let ring = poly.exterior();
        let mut hits: Vec<(f64, usize, Coord<f64>)> = Vec::new();
        for (i, edge) in ring.lines().enumerate() {
            if let Some(geo::LineIntersection::SinglePoint { intersection, .. }) =
                geo::line_intersection::line_intersection(straight, edge)
            {
                hits.push((dist(a, intersection), i, intersection));
            }
        }
        if hits.len() < 2 {
            continue;
        }
        hits.sort_by(|x, y| x.0.total_cmp(&y.0));
        let (first, last) = (hits[0], hits[hits.len() - 1]);
        if best.as_ref().is_none_or(|b| first.0 < b.from_a) {
            best = Some(Crossing {
                from_a: first.0,
                in_edge: first.1,
                out_edge: last.1,
                entry: first.2,
                exit: last.2,
                ring,
            });
        }
    }
    let Some(Crossing {
        in_edge: i,
        out_edge: j,
        entry,
        exit,
        ring,
        ..
    }) = best
    else {
        return vec![b]; // nothing to go round: the land check refuses the leg
    };
    let n = ring.0.len() - 1; // closed ring: the last point repeats the first
                              // Forwards: from edge i's end to edge j's start; backwards: from edge i's start to edge j's end.
    let mut forward = vec![entry];
    let mut k = (i + 1) % n;
    while k != (j + 1) % n {
        forward.push(ring.0[k]);
        k = (k + 1) % n;
    }
    forward.push(exit);
    let mut backward = vec![entry];
    let mut k = i;
    while k != j {
        backward.push(ring.0[k]);
        k = (k + n - 1) % n;
    }
    backward.push(exit);
    let way = if length(&forward) <= length(&backward) {
        forward
    } else {
        backward
    };
    let mut out = way;
    out.extend(transit(exit, b, land, around, depth + 1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Intersects, Polygon};

    fn square(x0: f64, y0: f64, side: f64) -> Polygon<f64> {
        Polygon::new(
            LineString::from(vec![
                (x0, y0),
                (x0 + side, y0),
                (x0 + side, y0 + side),
                (x0, y0 + side),
                (x0, y0),
            ]),
            vec![],
        )
    }

    #[test]
    fn a_way_across_land_goes_round_it_the_short_way() {
        let land = MultiPolygon(vec![square(0.0, 0.0, 1000.0)]);
        let around = super::super::shore::grown(&land, 50.0);
        // From west to east, a little south of the middle: round the south side.
        let (a, b) = (
            Coord {
                x: -200.0,
                y: 400.0,
            },
            Coord {
                x: 1200.0,
                y: 400.0,
            },
        );
        let way = transit(a, b, &land, &around, 0);
        assert_eq!(*way.last().unwrap(), b);
        let mut points = vec![a];
        points.extend(&way);
        for w in points.windows(2) {
            assert!(!Line::new(w[0], w[1]).intersects(&land), "{:?} crosses", w);
        }
        assert!(
            points.iter().all(|c| c.y < 500.0),
            "went round the north: {points:?}"
        );
        assert!(
            length(&points) < 1400.0 + 2.0 * 460.0,
            "{}",
            length(&points)
        );
        // Clear of land: straight there.
        assert_eq!(
            transit(
                a,
                Coord {
                    x: -200.0,
                    y: 1400.0
                },
                &land,
                &around,
                0
            )
            .len(),
            1
        );
    }

    #[test]
    fn pieces_cut_at_a_ring_seam_are_joined_and_slivers_dropped() {
        let lines = MultiLineString(vec![
            LineString::from(vec![(5.0, 0.0), (10.0, 0.0), (10.0, 10.0)]),
            LineString::from(vec![(0.0, 10.0), (0.0, 0.0), (5.0, 0.0)]),
            LineString::from(vec![(10.0, 10.0), (0.0, 10.0)]),
            LineString::from(vec![(50.0, 0.0), (50.5, 0.0)]),
        ]);
        let p = pieces(lines, 1.0);
        assert_eq!(p.len(), 1);
        assert!(p[0].closed());
        assert!((length(&p[0].coords) - 40.0).abs() < 1e-9);
    }

    #[test]
    fn passes_alternate_and_a_loop_is_flown_from_the_nearest_point() {
        let stretch = [Coord { x: 0.0, y: 0.0 }, Coord { x: 1000.0, y: 0.0 }];
        let line = |y: f64| Piece {
            coords: vec![Coord { x: 1000.0, y }, Coord { x: 0.0, y }],
        };
        let islet = Piece {
            coords: vec![
                Coord { x: 480.0, y: 300.0 },
                Coord { x: 520.0, y: 300.0 },
                Coord { x: 520.0, y: 340.0 },
                Coord { x: 480.0, y: 340.0 },
                Coord { x: 480.0, y: 300.0 },
            ],
        };
        let runs = along_stretch(
            vec![vec![line(100.0), islet], vec![line(200.0)]],
            vec![],
            &stretch,
            false,
        );
        assert_eq!(runs.len(), 2);
        // First pass eastwards with the excursion round the loop from (480, 100), the point of
        // the pass nearest to it; the second pass westwards.
        assert_eq!(runs[0][0], Coord { x: 0.0, y: 100.0 });
        assert!(
            runs[0].contains(&Coord { x: 480.0, y: 100.0 })
                && runs[0].contains(&Coord { x: 520.0, y: 340.0 })
        );
        assert_eq!(
            *runs[0].last().unwrap(),
            Coord {
                x: 1000.0,
                y: 100.0
            }
        );
        assert_eq!(
            runs[1][0],
            Coord {
                x: 1000.0,
                y: 200.0
            }
        );
        let back = along_stretch(vec![vec![line(100.0)]], vec![], &stretch, true);
        assert_eq!(
            back[0][0],
            Coord {
                x: 1000.0,
                y: 100.0
            }
        );
    }
}
