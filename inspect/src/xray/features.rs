//! Per-tile features the classifier reads.
//!
//! The image is cut into `TILE_SIZE`² tiles (a remainder narrower than a tile at the right or
//! bottom edge is not classified). For each tile we compute statistics of the log-attenuation
//! `A = ln(I0/I)` in both bands, their ratio (which falls with atomic number, see
//! [`super::materials`]), texture (gradients and the periodicity of stacked cartons), contrast
//! against the eight neighbouring tiles (concealed items are local anomalies inside goods) and
//! a coarse 4 × 4 layout. The same code produces the training set (see `examples/xray_dataset.rs`)
//! and the inference input, so the two cannot drift apart.

use super::Scan;

/// Tile edge, pixels (16 cm at the default 10 mm pitch).
pub const TILE_SIZE: usize = 16;
/// Features per tile.
pub const FEATURE_COUNT: usize = 34;

/// Layout of tiles over an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileGrid {
    pub tiles_x: usize,
    pub tiles_y: usize,
}

impl TileGrid {
    pub fn of(scan: &Scan) -> Self {
        TileGrid {
            tiles_x: scan.width as usize / TILE_SIZE,
            tiles_y: scan.height as usize / TILE_SIZE,
        }
    }

    pub fn len(&self) -> usize {
        self.tiles_x * self.tiles_y
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Pixels where the high band attenuates less than this carry no usable ratio (noise
/// dominates the quotient).
const MIN_ATTENUATION_FOR_RATIO: f32 = 0.2;

/// Features of every tile, row-major by tile, `FEATURE_COUNT` values each.
pub fn tile_features(scan: &Scan) -> (TileGrid, Vec<f32>) {
    let grid = TileGrid::of(scan);
    let width = scan.width as usize;
    let (high, low) = scan.log_attenuation();
    let tile_pixels = |tx: usize, ty: usize| {
        (ty * TILE_SIZE..(ty + 1) * TILE_SIZE)
            .flat_map(move |y| (tx * TILE_SIZE..(tx + 1) * TILE_SIZE).map(move |x| y * width + x))
    };

    // First pass: tile means and ratios, for the neighbourhood contrast.
    let mut mean_high = vec![0f32; grid.len()];
    let mut ratio = vec![0f32; grid.len()];
    for ty in 0..grid.tiles_y {
        for tx in 0..grid.tiles_x {
            let (mut sh, mut sl) = (0f32, 0f32);
            for p in tile_pixels(tx, ty) {
                sh += high[p];
                sl += low[p];
            }
            let n = (TILE_SIZE * TILE_SIZE) as f32;
            mean_high[ty * grid.tiles_x + tx] = sh / n;
            ratio[ty * grid.tiles_x + tx] = tile_ratio(sh / n, sl / n);
        }
    }

    let mut out = Vec::with_capacity(grid.len() * FEATURE_COUNT);
    let mut a = Vec::with_capacity(TILE_SIZE * TILE_SIZE);
    let mut b = Vec::with_capacity(TILE_SIZE * TILE_SIZE);
    for ty in 0..grid.tiles_y {
        for tx in 0..grid.tiles_x {
            a.clear();
            b.clear();
            let mut opaque = 0usize;
            for p in tile_pixels(tx, ty) {
                a.push(high[p]);
                b.push(low[p]);
                if scan.high[p] <= 2 {
                    opaque += 1;
                }
            }
            let index = ty * grid.tiles_x + tx;
            let mut f = [0f32; FEATURE_COUNT];
            let (ma, sa) = mean_std(&a);
            let (mb, sb) = mean_std(&b);
            let mut sorted = a.clone();
            sorted.sort_by(f32::total_cmp);
            f[0] = ma;
            f[1] = sa;
            f[2] = sorted[sorted.len() / 20];
            f[3] = sorted[sorted.len() * 19 / 20];
            f[4] = mb;
            f[5] = sb;
            f[6] = ratio[index];
            let per_pixel: Vec<f32> = a
                .iter()
                .zip(&b)
                .filter(|(h, _)| **h > MIN_ATTENUATION_FOR_RATIO)
                .map(|(h, l)| l / h)
                .collect();
            f[7] = if per_pixel.len() > 1 {
                mean_std(&per_pixel).1
            } else {
                0.0
            };
            f[8] = per_pixel.len() as f32 / a.len() as f32;
            let (gx, gy) = gradients(&a);
            f[9] = gx;
            f[10] = gy;
            f[11] = periodicity(&a, ma, true);
            f[12] = periodicity(&a, ma, false);
            let neighbours = neighbour_indices(grid, tx, ty);
            let mut around: Vec<f32> = neighbours.iter().map(|&k| mean_high[k]).collect();
            let around_mean = around.iter().sum::<f32>() / around.len().max(1) as f32;
            around.sort_by(f32::total_cmp);
            let around_median = around.get(around.len() / 2).copied().unwrap_or(ma);
            let around_ratio =
                neighbours.iter().map(|&k| ratio[k]).sum::<f32>() / neighbours.len().max(1) as f32;
            f[13] = around_mean;
            f[14] = ma - around_median;
            f[15] = around_ratio;
            f[16] = ratio[index] - around_ratio;
            f[17] = opaque as f32 / a.len() as f32;
            let block = TILE_SIZE / 4;
            for by in 0..4 {
                for bx in 0..4 {
                    let mut s = 0f32;
                    for y in 0..block {
                        for x in 0..block {
                            s += a[(by * block + y) * TILE_SIZE + bx * block + x];
                        }
                    }
                    f[18 + by * 4 + bx] = s / (block * block) as f32 - ma;
                }
            }
            out.extend_from_slice(&f);
        }
    }
    (grid, out)
}

/// Low/high attenuation ratio of a tile; zero where the tile attenuates too little to tell.
fn tile_ratio(mean_high: f32, mean_low: f32) -> f32 {
    if mean_high > MIN_ATTENUATION_FOR_RATIO {
        mean_low / mean_high
    } else {
        0.0
    }
}

fn mean_std(values: &[f32]) -> (f32, f32) {
    let n = values.len().max(1) as f32;
    let mean = values.iter().sum::<f32>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, var.sqrt())
}

/// Mean absolute horizontal and vertical differences inside a tile.
fn gradients(a: &[f32]) -> (f32, f32) {
    let (mut gx, mut gy) = (0f32, 0f32);
    for y in 0..TILE_SIZE {
        for x in 0..TILE_SIZE {
            let v = a[y * TILE_SIZE + x];
            if x + 1 < TILE_SIZE {
                gx += (a[y * TILE_SIZE + x + 1] - v).abs();
            }
            if y + 1 < TILE_SIZE {
                gy += (a[(y + 1) * TILE_SIZE + x] - v).abs();
            }
        }
    }
    let n = (TILE_SIZE * (TILE_SIZE - 1)) as f32;
    (gx / n, gy / n)
}

/// Strongest normalised autocorrelation at lags 3..=9 pixels along rows (or columns): stacked
/// cartons repeat every 5-9 cm, bales and crates do not repeat inside a tile.
fn periodicity(a: &[f32], mean: f32, along_rows: bool) -> f32 {
    let at = |line: usize, pos: usize| {
        if along_rows {
            a[line * TILE_SIZE + pos]
        } else {
            a[pos * TILE_SIZE + line]
        }
    };
    let mut energy = 0f32;
    for line in 0..TILE_SIZE {
        for pos in 0..TILE_SIZE {
            let d = at(line, pos) - mean;
            energy += d * d;
        }
    }
    if energy <= 1e-6 {
        return 0.0;
    }
    let mut best = 0f32;
    for lag in 3..=9 {
        let mut s = 0f32;
        for line in 0..TILE_SIZE {
            for pos in 0..TILE_SIZE - lag {
                s += (at(line, pos) - mean) * (at(line, pos + lag) - mean);
            }
        }
        // Normalise per overlapping pair so long lags are not penalised.
        let r = s / energy * TILE_SIZE as f32 / (TILE_SIZE - lag) as f32;
        best = best.max(r);
    }
    best
}

fn neighbour_indices(grid: TileGrid, tx: usize, ty: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(8);
    for dy in -1i64..=1 {
        for dx in -1i64..=1 {
            if dx == 0 && dy == 0 {
                continue;
            }
            let (x, y) = (tx as i64 + dx, ty as i64 + dy);
            if x >= 0 && y >= 0 && (x as usize) < grid.tiles_x && (y as usize) < grid.tiles_y {
                out.push(y as usize * grid.tiles_x + x as usize);
            }
        }
    }
    out
}
