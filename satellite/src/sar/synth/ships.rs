//! Ships: where a SAR images them, which pixels their hull covers, and random fleets spread
//! over the sea of a scene.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::frame::{metres_per_degree, Frame, LocalAxes};
use super::{scene_bounds, SceneSpec, ShipSpec, SynthError, Truth, TruthShip};
use crate::land::LandMask;
use crate::sar::acquisition::velocity_en;

/// Subsamples a side when measuring how much of a pixel a hull covers.
const SUPERSAMPLE: usize = 4;

/// The pixels one ship's hull covers, with the share of each, and the hull's mean intensity.
pub(super) struct Footprint {
    pixels: Vec<(usize, usize, f64)>,
    mean: f64,
}

/// A pixel of a block with hull in it: `offset` in the block (row-major), the hull's share of
/// it (may exceed 1 where ships overlap; the renderer caps it) and the hulls' mean intensity.
pub(super) struct HullPixel {
    pub offset: usize,
    pub coverage: f64,
    pub mean: f64,
}

/// Where each ship of the spec is imaged, the pixels of its hull there, and the truth.
pub(super) fn image_ships(
    spec: &SceneSpec,
    frame: &Frame,
) -> Result<(Vec<Footprint>, Truth), SynthError> {
    let mut footprints = Vec::with_capacity(spec.ships.len());
    let mut truth = Vec::with_capacity(spec.ships.len());
    for s in &spec.ships {
        let Imaged {
            pixel: image,
            lonlat: image_lonlat,
        } = imaged_position(spec, frame, s.lon, s.lat, s.sog_knots, s.cog_deg)?;
        let at_image = frame.local_axes(image_lonlat.0, image_lonlat.1)?;
        footprints.push(Footprint {
            pixels: hull_pixels(spec, &at_image, image, s),
            mean: spec.sea_mean * 10f64.powf(s.rcs_db / 10.0),
        });
        truth.push(TruthShip {
            lon: s.lon,
            lat: s.lat,
            image_lon: image_lonlat.0,
            image_lat: image_lonlat.1,
            image_x: image.0,
            image_y: image.1,
            length_m: s.length_m,
            width_m: s.width_m,
            heading_deg: s.heading_deg,
            rcs_db: s.rcs_db,
            distance_to_shore_m: spec
                .land
                .as_ref()
                .map(|l| l.distance_to_shore_m(s.lon, s.lat)),
            sog_knots: s.sog_knots,
            cog_deg: s.cog_deg,
        });
    }
    Ok((footprints, Truth { ships: truth }))
}

/// Where a ship is imaged: pixel position (corner-based) and lon/lat.
struct Imaged {
    pixel: (f64, f64),
    lonlat: (f64, f64),
}

/// Where a ship at (lon, lat) moving at `sog` on `cog` is imaged.
fn imaged_position(
    spec: &SceneSpec,
    frame: &Frame,
    lon: f64,
    lat: f64,
    sog_knots: f64,
    cog_deg: f64,
) -> Result<Imaged, SynthError> {
    let p = frame.to_pixel(&[(lon, lat)])?[0];
    let (de, dn) = spec
        .acquisition
        .azimuth_shift_m(velocity_en(sog_knots, cog_deg));
    let (dx, dy) = frame.local_axes(lon, lat)?.to_pixels(de, dn);
    let pixel = (p.0 + dx, p.1 + dy);
    Ok(Imaged {
        pixel,
        lonlat: frame.to_lonlat(&[pixel])?[0],
    })
}

/// The pixels (row, column, covered share) of a hull centred at `centre` (pixel coordinates).
fn hull_pixels(
    spec: &SceneSpec,
    axes: &LocalAxes,
    centre: (f64, f64),
    ship: &ShipSpec,
) -> Vec<(usize, usize, f64)> {
    let (half_l, half_w) = (ship.length_m / 2.0, ship.width_m / 2.0);
    let (sin_h, cos_h) = ship.heading_deg.to_radians().sin_cos();
    let px_per_m = axes
        .east
        .0
        .hypot(axes.east.1)
        .max(axes.north.0.hypot(axes.north.1));
    let reach = half_l.hypot(half_w) * px_per_m + 1.0;
    let clamp = |v: f64, max: usize| v.floor().clamp(0.0, max as f64) as usize;
    let (c0, c1) = (
        clamp(centre.0 - reach, spec.width),
        clamp(centre.0 + reach + 1.0, spec.width),
    );
    let (r0, r1) = (
        clamp(centre.1 - reach, spec.height),
        clamp(centre.1 + reach + 1.0, spec.height),
    );
    let mut pixels = Vec::new();
    let step = 1.0 / SUPERSAMPLE as f64;
    for row in r0..r1 {
        for col in c0..c1 {
            let mut inside = 0;
            for j in 0..SUPERSAMPLE {
                for i in 0..SUPERSAMPLE {
                    let x = col as f64 + (i as f64 + 0.5) * step - centre.0;
                    let y = row as f64 + (j as f64 + 0.5) * step - centre.1;
                    let Some((me, mn)) = axes.to_metres(x, y) else {
                        continue;
                    };
                    let along = me * sin_h + mn * cos_h;
                    let across = me * cos_h - mn * sin_h;
                    if along.abs() <= half_l && across.abs() <= half_w {
                        inside += 1;
                    }
                }
            }
            if inside > 0 {
                pixels.push((row, col, inside as f64 / (SUPERSAMPLE * SUPERSAMPLE) as f64));
            }
        }
    }
    pixels
}

/// The hull pixels in rows `y0..y0 + rows`, sorted by offset, one entry per pixel (overlapping
/// hulls add their shares and average their means).
pub(super) fn block_overlay(
    footprints: &[Footprint],
    y0: usize,
    rows: usize,
    width: usize,
) -> Vec<HullPixel> {
    let mut entries: Vec<(usize, f64, f64)> = footprints
        .iter()
        .flat_map(|f| {
            f.pixels
                .iter()
                .filter(|(r, _, _)| *r >= y0 && *r < y0 + rows)
                .map(move |&(r, c, cov)| ((r - y0) * width + c, cov, f.mean))
        })
        .collect();
    entries.sort_by_key(|e| e.0);
    let mut out: Vec<HullPixel> = Vec::with_capacity(entries.len());
    for (offset, cov, mean) in entries {
        match out.last_mut() {
            Some(last) if last.offset == offset => {
                let total = last.coverage + cov;
                last.mean = (last.mean * last.coverage + mean * cov) / total;
                last.coverage = total;
            }
            _ => out.push(HullPixel {
                offset,
                coverage: cov,
                mean,
            }),
        }
    }
    out
}

/// How a random fleet is made up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShipMix {
    /// Share of ships placed within `near_shore_m` of the shore (when the scene has shore).
    pub near_shore_share: f64,
    /// "Close to shore" as xView3 scores it, metres.
    pub near_shore_m: f64,
    /// Share of ships under way (1 knot up to `max_sog_knots`); the rest lie still.
    pub moving_share: f64,
    pub max_sog_knots: f64,
    /// Hull lengths, log-uniform between these, metres.
    pub min_length_m: f64,
    pub max_length_m: f64,
    /// No two ships closer than this, at their true nor at their imaged positions, metres.
    pub min_separation_m: f64,
}

impl Default for ShipMix {
    fn default() -> Self {
        ShipMix {
            near_shore_share: 0.3,
            near_shore_m: 2_000.0,
            moving_share: 0.6,
            max_sog_knots: 18.0,
            min_length_m: 50.0,
            max_length_m: 350.0,
            min_separation_m: 1_000.0,
        }
    }
}

/// Tries per ship before giving up on it.
const ATTEMPTS: usize = 400;

/// `n` random ships over the sea of the scene `spec` describes (its size, spacing, centre,
/// nodata margin and acquisition; its `ships` and `land` are ignored: `land` is the mask to
/// keep them off). Every ship, at its true position and where it is imaged, lies inside the
/// valid part of the scene, its hull off land, at least `min_separation_m` from the others.
/// About `near_shore_share` of them lie within `near_shore_m` of the shore when there is
/// shore in the scene.
///
/// May return fewer than `n` ships when the sea is too small to hold them apart (a 5 km scene
/// holds at most about 25 ships 1 km apart): placement stops rather than loop forever.
/// Deterministic for a given seed.
pub fn random_ships(
    spec: &SceneSpec,
    land: Option<&LandMask>,
    n: usize,
    mix: &ShipMix,
    seed: u64,
) -> Result<Vec<ShipSpec>, SynthError> {
    let probability = |v: f64| (0.0..=1.0).contains(&v);
    if !(probability(mix.near_shore_share)
        && probability(mix.moving_share)
        && mix.near_shore_m.is_finite()
        && mix.max_sog_knots.is_finite()
        && mix.max_sog_knots >= 1.0
        && mix.min_length_m > 0.0
        && mix.max_length_m >= mix.min_length_m
        && mix.max_length_m <= 2_000.0
        && mix.min_separation_m.is_finite()
        && mix.min_separation_m >= 0.0)
    {
        return Err(SynthError::Spec(format!(
            "ship mix {mix:?} has an out-of-range value"
        )));
    }
    let area = SceneSpec {
        ships: Vec::new(),
        land: None,
        ..spec.clone()
    };
    area.validate()?;
    let frame = Frame::of(spec)?;
    let bounds = scene_bounds(spec, &frame, 0.05)?;
    let land = land.map(|l| l.intersecting(bounds)).unwrap_or_default();
    // Shore points inside the scene, to start near-shore ships from.
    let shore: Vec<(f64, f64)> = {
        let vertices: Vec<(f64, f64)> = land
            .polygons()
            .iter()
            .flat_map(|p| {
                p.exterior()
                    .coords()
                    .chain(p.interiors().iter().flat_map(|r| r.coords()))
            })
            .map(|c| (c.x, c.y))
            .collect();
        let px = frame.to_pixel(&vertices)?;
        vertices
            .into_iter()
            .zip(px)
            .filter(|(_, (x, y))| {
                *x >= 0.0 && *y >= 0.0 && *x < spec.width as f64 && *y < spec.height as f64
            })
            .map(|(v, _)| v)
            .collect()
    };
    let ps = spec.pixel_spacing_m;
    let mut rng = StdRng::seed_from_u64(seed);
    // Each placed ship with its true and its imaged pixel position.
    struct Placed {
        ship: ShipSpec,
        truth_px: (f64, f64),
        image_px: (f64, f64),
    }
    let mut placed: Vec<Placed> = Vec::with_capacity(n);
    'ships: for _ in 0..n {
        let want_near = !shore.is_empty() && rng.random::<f64>() < mix.near_shore_share;
        for attempt in 0..ATTEMPTS {
            let length_m =
                mix.min_length_m * (mix.max_length_m / mix.min_length_m).powf(rng.random::<f64>());
            let width_m = length_m / rng.random_range(5.5..7.5);
            let heading_deg = rng.random_range(0.0..360.0);
            let sog_knots = if rng.random::<f64>() < mix.moving_share {
                rng.random_range(1.0..=mix.max_sog_knots)
            } else {
                0.0
            };
            // Bigger hulls return more: 12 dB at the shortest to about 20 dB at 350 m, ±2.5 dB.
            let size = (length_m / 50.0).max(1.0).log10() / 7f64.log10();
            let rcs_db = (12.0 + 8.0 * size + rng.random_range(-2.5..2.5)).clamp(12.0, 25.0);
            let (lon, lat) = if want_near && attempt < ATTEMPTS / 2 {
                let (slon, slat) = shore[rng.random_range(0..shore.len())];
                let bearing = rng.random_range(0.0..360.0f64).to_radians();
                let d = rng.random_range(
                    length_m / 2.0 + 150.0..mix.near_shore_m.max(length_m / 2.0 + 200.0),
                );
                let (m_lon, m_lat) = metres_per_degree(slat);
                (
                    slon + d * bearing.sin() / m_lon,
                    slat + d * bearing.cos() / m_lat,
                )
            } else {
                let x = rng.random_range(0.0..spec.width as f64);
                let y = rng.random_range(0.0..spec.height as f64);
                frame.to_lonlat(&[(x, y)])?[0]
            };
            let ship = ShipSpec {
                lon,
                lat,
                length_m,
                width_m,
                heading_deg,
                rcs_db,
                sog_knots,
                cog_deg: heading_deg,
            };
            let truth_px = frame.to_pixel(&[(lon, lat)])?[0];
            let Imaged {
                pixel: image_px,
                lonlat: image,
            } = imaged_position(spec, &frame, lon, lat, sog_knots, heading_deg)?;
            let margin = length_m / 2.0 / ps + 4.0;
            let inside = |(x, y): (f64, f64)| {
                y >= margin
                    && y <= spec.height as f64 - margin
                    && x >= spec.nodata_columns(y as usize) as f64 + margin
                    && x <= spec.width as f64 - margin
            };
            let clear = length_m / 2.0 + 100.0;
            let off_land = |(lo, la): (f64, f64)| {
                !land.contains(lo, la) && land.distance_to_shore_m(lo, la) >= clear
            };
            let far = |a: (f64, f64), b: (f64, f64)| {
                (a.0 - b.0).hypot(a.1 - b.1) * ps >= mix.min_separation_m
            };
            let apart = placed
                .iter()
                .all(|p| far(p.truth_px, truth_px) && far(p.image_px, image_px));
            let near_enough = !want_near
                || attempt >= ATTEMPTS / 2
                || land.distance_to_shore_m(lon, lat) <= mix.near_shore_m;
            if inside(truth_px)
                && inside(image_px)
                && apart
                && off_land((lon, lat))
                && off_land(image)
                && near_enough
            {
                placed.push(Placed {
                    ship,
                    truth_px,
                    image_px,
                });
                continue 'ships;
            }
        }
        // No room for this one: the sea is full.
        break;
    }
    Ok(placed.into_iter().map(|p| p.ship).collect())
}
