//! The shore in the local plane: the land to keep off, the stretch of shore to patrol with the
//! sea on its right, and the part of the sea that belongs to that stretch.

use geo::algorithm::buffer::{BufferStyle, LineJoin};
use geo::orient::Direction;
use geo::{
    unary_union, Area, BooleanOps, BoundingRect, Buffer, Contains, Coord, CoordsIter, Intersects,
    LineString, MapCoords, MultiPolygon, Orient, Point, Polygon, Rect,
};

use super::polyline::{
    close, cut, dedup, dist, length, locate, right_normal, slabs, Located, SAME_M,
};
use super::{Coast, CorridorError, SeaSide};
use crate::plan::LocalFrame;

/// Round joins of buffers: arc segments are at most this many radii long (about 6°).
pub(super) const JOIN: f64 = 0.1;
/// How far beyond the stretch the land is kept when a stretch of a larger coast is patrolled.
const CROP_MARGIN_M: f64 = 30_000.0;
/// A whole coast wider than this is too large for one local plane: choose a stretch.
const MAX_EXTENT_M: f64 = 300_000.0;

/// `g` grown by `d` metres with round joins and caps.
pub(super) fn grown<G: Buffer<Scalar = f64>>(g: &G, d: f64) -> MultiPolygon<f64> {
    g.buffer_with_style(BufferStyle::new(d).line_join(LineJoin::Round(JOIN)))
}

/// The shore of one plan, in the local east/north plane (metres).
pub(super) struct Shore {
    pub frame: LocalFrame,
    /// What the vehicle keeps off: the land (exterior rings only), or for a bare line the
    /// strip behind it on the land side.
    pub land: MultiPolygon<f64>,
    /// The stretch patrolled, sea on its right; `None` for the whole coast.
    pub stretch: Option<LineString<f64>>,
    /// The sea swept by the stretch's normals out to the corridor's outer edge; `None` for
    /// the whole coast (all of the sea near it).
    pub domain: Option<MultiPolygon<f64>>,
    /// Length of shore patrolled, metres.
    pub shore_m: f64,
    /// Whether the first pass starts at the stretch's end (where `--from` is, or where a line
    /// drawn with the sea on its left begins).
    pub start_at_end: bool,
}

/// What the shore is built from.
pub(super) struct ShoreRequest<'a> {
    pub coast: &'a Coast,
    pub stretch: Option<(Coord<f64>, Coord<f64>)>,
    pub sea_side: Option<SeaSide>,
    /// The corridor's outer edge, metres off the shore.
    pub reach_m: f64,
}

impl Shore {
    pub fn new(req: &ShoreRequest) -> Result<Shore, CorridorError> {
        let coast = req.coast;
        if coast.is_empty() {
            return Err(CorridorError::EmptyCoast);
        }
        let line = join_lines(&coast.lines)?;
        // The area of interest: the stretch's ends, the line, or the whole land.
        let interest = match (&req.stretch, &line) {
            (Some((a, b)), _) => Rect::new(*a, *b),
            (None, Some(l)) => bbox(l.coords().copied()).ok_or(CorridorError::EmptyCoast)?,
            (None, None) => bbox(
                coast
                    .land
                    .iter()
                    .flat_map(|p| p.exterior().coords().copied()),
            )
            .ok_or(CorridorError::EmptyCoast)?,
        };
        let centre = interest.center();
        let frame = LocalFrame::new(centre.y, centre.x);
        // Keep the land near the area of interest only (a whole Natural Earth layer is fine).
        let crop = if req.stretch.is_some() || line.is_some() {
            let margin = CROP_MARGIN_M + req.reach_m;
            let (lo, hi) = (
                frame.to_local(interest.min()),
                frame.to_local(interest.max()),
            );
            let rect = Rect::new(
                frame.to_lonlat(Coord {
                    x: lo.x - margin,
                    y: lo.y - margin,
                }),
                frame.to_lonlat(Coord {
                    x: hi.x + margin,
                    y: hi.y + margin,
                }),
            );
            Some(rect)
        } else {
            None
        };
        let land_ll: Vec<Polygon<f64>> = coast
            .land
            .iter()
            .filter(|p| match (crop, p.bounding_rect()) {
                (Some(c), Some(b)) => c.intersects(&b),
                (None, _) => true,
                (Some(_), None) => false,
            })
            .map(|p| Polygon::new(p.exterior().clone(), vec![]).orient(Direction::Default))
            .collect();
        // Polygons of a file may overlap or touch (islands cut from tiles, a user's drawing):
        // union them first.
        let land_ll = unary_union(land_ll.iter());
        let land_ll = match crop {
            Some(rect) => land_ll.intersection(&rect.to_polygon()),
            None => land_ll,
        };
        let land = fill(&land_ll.map_coords(|c| frame.to_local(c)));
        if crop.is_none() {
            let r = bbox(land.exterior_coords_iter()).ok_or(CorridorError::EmptyCoast)?;
            let extent = r.width().max(r.height());
            if extent > MAX_EXTENT_M {
                return Err(CorridorError::TooLarge {
                    km: extent / 1000.0,
                });
            }
        }
        let ends = req
            .stretch
            .map(|(a, b)| (frame.to_local(a), frame.to_local(b)));

        match line {
            Some(line) => {
                let mut s = dedup(line.coords().map(|c| frame.to_local(*c)).collect());
                if s.len() < 2 {
                    return Err(CorridorError::EmptyCoast);
                }
                let side = match (req.sea_side, land.0.is_empty()) {
                    (Some(side), _) => side,
                    (None, true) => SeaSide::Right,
                    (None, false) => {
                        side_away_from(&s, &land).ok_or(CorridorError::SeaSideUnknown)?
                    }
                };
                if side == SeaSide::Left {
                    s.reverse();
                }
                let mut start_at_end = side == SeaSide::Left;
                let closed = s.len() > 3 && close(s[0], s[s.len() - 1]);
                if closed && land.0.is_empty() {
                    // An island drawn as a line: its inside is the land, if the sea is outside.
                    let ring = Polygon::new(LineString::new(s.clone()), vec![]);
                    if ring.signed_area() < 0.0 {
                        return Err(CorridorError::SeaInsideRing);
                    }
                    return Shore::from_land(
                        frame,
                        MultiPolygon(vec![ring]),
                        ends,
                        None,
                        req.reach_m,
                    );
                }
                if ends.is_none() {
                    let r = bbox(s.iter().copied()).ok_or(CorridorError::EmptyCoast)?;
                    if r.width().max(r.height()) > MAX_EXTENT_M {
                        return Err(CorridorError::TooLarge {
                            km: r.width().max(r.height()) / 1000.0,
                        });
                    }
                }
                if let Some((a, b)) = ends {
                    let (sa, sb) = (locate(&s, a), locate(&s, b));
                    check_near("--from", &sa)?;
                    check_near("--to", &sb)?;
                    start_at_end = sa.station > sb.station;
                    s = cut(
                        &s,
                        sa.station.min(sb.station),
                        sa.station.max(sb.station),
                        false,
                    );
                }
                if length(&s) <= SAME_M {
                    return Err(CorridorError::EmptyStretch);
                }
                let mut domain = slabs(&s, req.reach_m);
                let land = if land.0.is_empty() {
                    // Behind a bare line the land is taken to be deeper than the corridor is wide.
                    let mut behind = s.clone();
                    behind.reverse();
                    let behind = slabs(&behind, 2.0 * req.reach_m);
                    domain = domain.difference(&behind);
                    behind
                } else {
                    domain = domain.difference(&land);
                    land
                };
                Ok(Shore {
                    frame,
                    land,
                    shore_m: length(&s),
                    stretch: Some(LineString::new(s)),
                    domain: Some(domain),
                    start_at_end,
                })
            }
            None => {
                let crop =
                    crop.map(|r| Rect::new(frame.to_local(r.min()), frame.to_local(r.max())));
                Shore::from_land(frame, land, ends, crop, req.reach_m)
            }
        }
    }

    /// Land polygons only: the whole coast, or the stretch of one shore between two points.
    fn from_land(
        frame: LocalFrame,
        land: MultiPolygon<f64>,
        ends: Option<(Coord<f64>, Coord<f64>)>,
        crop: Option<Rect<f64>>,
        reach_m: f64,
    ) -> Result<Shore, CorridorError> {
        if land.unsigned_area() <= 0.0 {
            return Err(CorridorError::EmptyCoast);
        }
        // Exterior rings counter-clockwise: walking along one, the sea is on the right.
        let rings: Vec<Vec<Coord<f64>>> = land
            .0
            .iter()
            .map(|p| dedup(p.exterior().0.clone()))
            .collect();
        let Some((a, b)) = ends else {
            let shore_m = rings.iter().map(|r| length(r)).sum();
            return Ok(Shore {
                frame,
                land,
                stretch: None,
                domain: None,
                shore_m,
                start_at_end: false,
            });
        };
        let nearest_ring = |p: Coord<f64>| {
            rings
                .iter()
                .enumerate()
                .map(|(i, r)| (i, locate(r, p)))
                .min_by(|x, y| x.1.distance.total_cmp(&y.1.distance))
                .expect("land has a ring")
        };
        let (ia, la) = nearest_ring(a);
        let (ib, lb) = nearest_ring(b);
        check_near("--from", &la)?;
        check_near("--to", &lb)?;
        if ia != ib {
            return Err(CorridorError::DifferentShores);
        }
        let ring = &rings[ia];
        let perimeter = length(ring);
        let ahead = (lb.station - la.station).rem_euclid(perimeter);
        // The shorter way round, taken in the ring's direction so the sea stays on the right.
        let start_at_end = ahead > perimeter - ahead;
        let s = if start_at_end {
            cut(ring, lb.station, la.station, true)
        } else {
            cut(ring, la.station, lb.station, true)
        };
        let s = dedup(s);
        if s.len() < 2 || length(&s) <= SAME_M {
            return Err(CorridorError::EmptyStretch);
        }
        // The crop around the stretch's ends must not have cut the stretch itself.
        if let Some(r) = crop {
            let on_crop_edge = |c: &Coord<f64>| {
                [
                    c.x - r.min().x,
                    r.max().x - c.x,
                    c.y - r.min().y,
                    r.max().y - c.y,
                ]
                .iter()
                .any(|d| d.abs() < 1.0)
            };
            if s.iter().any(on_crop_edge) {
                return Err(CorridorError::StretchTooLong {
                    km: CROP_MARGIN_M / 1000.0,
                });
            }
        }
        let domain = slabs(&s, reach_m).difference(&land);
        Ok(Shore {
            frame,
            land,
            shore_m: length(&s),
            stretch: Some(LineString::new(s)),
            domain: Some(domain),
            start_at_end,
        })
    }

    /// The corridor: sea between `offset` and `offset + width` metres off the land, within
    /// the stretch's domain.
    pub fn corridor(&self, offset: f64, width: f64) -> MultiPolygon<f64> {
        let outer = grown(&self.land, offset + width);
        let inner = if offset > 0.0 {
            grown(&self.land, offset)
        } else {
            self.land.clone()
        };
        let band = outer.difference(&inner);
        match &self.domain {
            Some(d) => band.intersection(d),
            None => band,
        }
    }
}

/// Several lines joined end to end (in either direction) into one; an error when they do not
/// all meet.
fn join_lines(lines: &[LineString<f64>]) -> Result<Option<LineString<f64>>, CorridorError> {
    let Some(first) = lines.first() else {
        return Ok(None);
    };
    let mut joined: Vec<Coord<f64>> = first.0.clone();
    let mut rest: Vec<&LineString<f64>> = lines[1..].iter().collect();
    // Degrees: 1e-7 is about a centimetre.
    let meet = |a: Coord<f64>, b: Coord<f64>| (a.x - b.x).abs() < 1e-7 && (a.y - b.y).abs() < 1e-7;
    while !rest.is_empty() {
        let (head, tail) = (joined[0], joined[joined.len() - 1]);
        let Some(i) = rest.iter().position(|l| {
            let (s, e) = (l.0[0], l.0[l.0.len() - 1]);
            meet(s, tail) || meet(e, tail) || meet(e, head) || meet(s, head)
        }) else {
            return Err(CorridorError::SeveralLines(lines.len()));
        };
        let l = rest.remove(i);
        let (s, e) = (l.0[0], l.0[l.0.len() - 1]);
        if meet(s, tail) {
            joined.extend(l.0.iter().skip(1));
        } else if meet(e, tail) {
            joined.extend(l.0.iter().rev().skip(1));
        } else if meet(e, head) {
            joined.splice(0..0, l.0[..l.0.len() - 1].iter().copied());
        } else {
            joined.splice(0..0, l.0.iter().rev().take(l.0.len() - 1).copied());
        }
    }
    Ok(Some(LineString::new(joined)))
}

fn bbox(coords: impl Iterator<Item = Coord<f64>>) -> Option<Rect<f64>> {
    let mut r: Option<Rect<f64>> = None;
    for c in coords {
        r = Some(match r {
            None => Rect::new(c, c),
            Some(r) => Rect::new(
                Coord {
                    x: r.min().x.min(c.x),
                    y: r.min().y.min(c.y),
                },
                Coord {
                    x: r.max().x.max(c.x),
                    y: r.max().y.max(c.y),
                },
            ),
        });
    }
    r
}

/// Exterior rings only, counter-clockwise: water enclosed by land is not the sea we patrol.
fn fill(mp: &MultiPolygon<f64>) -> MultiPolygon<f64> {
    MultiPolygon(
        mp.0.iter()
            .map(|p| Polygon::new(p.exterior().clone(), vec![]).orient(Direction::Default))
            .filter(|p| p.unsigned_area() > 0.0)
            .collect(),
    )
}

/// How far from the shore `--from` and `--to` may be.
const SNAP_M: f64 = 5_000.0;

fn check_near(which: &'static str, l: &Located) -> Result<(), CorridorError> {
    if l.distance > SNAP_M {
        return Err(CorridorError::FarFromCoast {
            which,
            km: l.distance / 1000.0,
        });
    }
    Ok(())
}

/// Which side of the line the land is not on, from probes a little way off each segment;
/// `None` when the land does not tell.
fn side_away_from(line: &[Coord<f64>], land: &MultiPolygon<f64>) -> Option<SeaSide> {
    let (mut left, mut right) = (0usize, 0usize);
    for w in line.windows(2) {
        let n = right_normal(w[0], w[1]);
        let probe = (dist(w[0], w[1]) / 4.0).min(25.0);
        let mid = Coord {
            x: (w[0].x + w[1].x) / 2.0,
            y: (w[0].y + w[1].y) / 2.0,
        };
        if land.contains(&Point::from(Coord {
            x: mid.x + n.x * probe,
            y: mid.y + n.y * probe,
        })) {
            right += 1;
        }
        if land.contains(&Point::from(Coord {
            x: mid.x - n.x * probe,
            y: mid.y - n.y * probe,
        })) {
            left += 1;
        }
    }
    match left.cmp(&right) {
        std::cmp::Ordering::Greater => Some(SeaSide::Right),
        std::cmp::Ordering::Less => Some(SeaSide::Left),
        std::cmp::Ordering::Equal => None,
    }
}

/// Distance from `p` to the nearest shore point, and that point.
pub(super) fn nearest_shore(
    land: &MultiPolygon<f64>,
    stretch: Option<&LineString<f64>>,
    p: Coord<f64>,
) -> Coord<f64> {
    if let Some(s) = stretch {
        return locate(&s.0, p).point;
    }
    land.0
        .iter()
        .map(|poly| locate(&poly.exterior().0, p))
        .min_by(|a, b| a.distance.total_cmp(&b.distance))
        .map(|l| l.point)
        .unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_that_meet_are_joined_either_way_round() {
        let ls = |p: &[(f64, f64)]| LineString::from(p.to_vec());
        let joined = join_lines(&[
            ls(&[(1.0, 0.0), (2.0, 0.0)]),
            ls(&[(3.0, 0.0), (2.0, 0.0)]),
            ls(&[(1.0, 0.0), (0.0, 0.0)]),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            joined,
            ls(&[(0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (3.0, 0.0)])
        );
        assert_eq!(
            join_lines(&[ls(&[(0.0, 0.0), (1.0, 0.0)]), ls(&[(5.0, 0.0), (6.0, 0.0)])]),
            Err(CorridorError::SeveralLines(2))
        );
    }
}
