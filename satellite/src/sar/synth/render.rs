//! Rendering one block of rows: clutter, land and hulls, from the block's own RNG.

use geo::MultiPolygon;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Gamma};

use super::{ships, Clutter, SceneSpec, SynthError, BLOCK_ROWS, LAND_BRIGHTNESS};
use crate::land::{rasterize_pixels, PixelWindow};

/// Everything a block needs, shared by the threads.
pub(super) struct Render<'a> {
    pub spec: &'a SceneSpec,
    pub land_px: &'a MultiPolygon<f64>,
    pub footprints: &'a [ships::Footprint],
}

impl Render<'_> {
    pub fn block(&self, index: usize) -> Result<Vec<u16>, SynthError> {
        let spec = self.spec;
        let w = spec.width;
        let y0 = index * BLOCK_ROWS;
        let rows = BLOCK_ROWS.min(spec.height - y0);
        let land = if self.land_px.0.is_empty() {
            None
        } else {
            Some(rasterize_pixels(
                self.land_px,
                PixelWindow {
                    x0: 0,
                    y0,
                    width: w,
                    height: rows,
                },
                false,
            )?)
        };
        let hulls = ships::block_overlay(self.footprints, y0, rows, w);
        let mut rng = StdRng::seed_from_u64(splitmix64(spec.seed ^ splitmix64(index as u64 + 1)));
        // `validate` checked looks and shape are positive and finite: Gamma::new cannot fail.
        let (looks, shape) = match spec.clutter {
            Clutter::Gamma { looks } => (looks, None),
            Clutter::K { looks, shape } => (looks, Some(shape)),
        };
        let speckle =
            Gamma::new(looks, 1.0 / looks).map_err(|e| SynthError::Spec(format!("looks: {e}")))?;
        let texture = match shape {
            Some(nu) => Some(
                Gamma::new(nu, 1.0 / nu).map_err(|e| SynthError::Spec(format!("shape: {e}")))?,
            ),
            None => None,
        };
        let land_seed = splitmix64(spec.seed ^ 0x6c61_6e64);
        let mut out = vec![0u16; w * rows];
        let mut hull = hulls.iter().peekable();
        for r in 0..rows {
            let row = y0 + r;
            for x in spec.nodata_columns(row)..w {
                let i = r * w + x;
                let background = if land.as_ref().is_some_and(|l| l[i] == 1) {
                    spec.sea_mean * LAND_BRIGHTNESS * land_texture(land_seed, x as f64, row as f64)
                } else {
                    spec.sea_mean * texture.as_ref().map_or(1.0, |t| t.sample(&mut rng))
                };
                let mut value = background * speckle.sample(&mut rng);
                while let Some(h) = hull.peek() {
                    if h.offset > i {
                        break;
                    }
                    if h.offset == i {
                        let c = h.coverage.min(1.0);
                        value = (1.0 - c) * value + c * h.mean * speckle.sample(&mut rng);
                    }
                    hull.next();
                }
                out[i] = value.round().clamp(1.0, 65_535.0) as u16;
            }
        }
        Ok(out)
    }
}

/// A smooth random texture for land, mean about 1 and 0.5–2 in range: two octaves of value
/// noise (cells of 48 and 12 pixels), a pure function of the seed and the position so every
/// block draws its part of the same field.
fn land_texture(seed: u64, x: f64, y: f64) -> f64 {
    let n1 = value_noise(seed, x, y, 48.0);
    let n2 = value_noise(seed ^ 0x9e37_79b9, x, y, 12.0);
    (1.2 * (n1 - 0.5) + 0.6 * (n2 - 0.5)).exp()
}

fn value_noise(seed: u64, x: f64, y: f64, cell: f64) -> f64 {
    let (gx, gy) = (x / cell, y / cell);
    let (ix, iy) = (gx.floor(), gy.floor());
    let smooth = |t: f64| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (smooth(gx - ix), smooth(gy - iy));
    let node = |dx: f64, dy: f64| {
        let h = splitmix64(
            seed ^ splitmix64(
                ((ix + dx) as i64 as u64) << 32 ^ ((iy + dy) as i64 as u64 & 0xffff_ffff),
            ),
        );
        (h >> 11) as f64 / (1u64 << 53) as f64
    };
    let top = node(0.0, 0.0) + sx * (node(1.0, 0.0) - node(0.0, 0.0));
    let bottom = node(0.0, 1.0) + sx * (node(1.0, 1.0) - node(0.0, 1.0));
    top + sy * (bottom - top)
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash, to derive block seeds and noise.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
