//! What dual-energy physics says about a scan without the classifier: the net mass of the
//! contents per pixel, which material dominates it, the net weight, and regions of dense metal.

use super::materials::Material;
use super::{Scan, XrayError};

/// Per-pixel contents of a scan with the container walls removed.
#[derive(Debug, Clone)]
pub struct Contents {
    pub width: usize,
    pub height: usize,
    /// Pixel edge, cm.
    pub pixel_cm: f64,
    /// Mass thickness of the contents along the beam, g/cm², row-major.
    pub mass_g_cm2: Vec<f32>,
    /// 0 (organic) .. 1 (steel): where the pixel's low/high attenuation ratio lies between the
    /// two materials' ratios, row-major.
    pub steel_share: Vec<f32>,
}

/// A connected region of dense metal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetalRegion {
    /// Area seen by the beam, cm².
    pub area_cm2: f64,
    /// Bounding box in pixels: x0, y0 inclusive, x1, y1 exclusive.
    pub bbox: (usize, usize, usize, usize),
}

/// A pixel is dense metal when steel dominates its contents and there is at least this much of
/// it along the beam (2.5 cm of solid steel): the goods of an honest textiles or food
/// container never reach it, a steel block or a gun barrel does.
pub const DENSE_METAL_G_CM2: f32 = 20.0;
/// Steel share from which a pixel counts as steel-dominated.
const STEEL_DOMINATED: f32 = 0.5;
/// Radius of the window over which the low/high ratio is taken, pixels.
const RATIO_RADIUS: usize = 2;

impl Contents {
    /// Per pixel, mass thickness `m = (A_high - A_walls) / (μ/ρ)_high` where `(μ/ρ)_high` is
    /// interpolated between organic and steel by the low/high ratio around the pixel (the ratio
    /// says which material dominates; in the high band the two differ by only ~9%, so a wrong
    /// guess costs little). Pixels the beam did not penetrate count as one count: a lower
    /// bound.
    pub fn of(scan: &Scan) -> Result<Self, XrayError> {
        let meta = &scan.meta;
        let mu = |m: Material, e: f64| {
            m.mass_attenuation(e).ok_or_else(|| XrayError::Invalid {
                what: "scanner metadata",
                message: format!("energy {e} MeV is outside the tabulated 0.1-6 MeV"),
            })
        };
        let (high_org, high_steel) = (
            mu(Material::Organic, meta.high_energy_mev)?,
            mu(Material::Steel, meta.high_energy_mev)?,
        );
        let ratio_org = mu(Material::Organic, meta.low_energy_mev)? / high_org;
        let ratio_steel = mu(Material::Steel, meta.low_energy_mev)? / high_steel;
        let wall_g_cm2 = meta.wall_steel_mm / 10.0 * Material::Steel.solid_density();
        let walls_high = high_steel * wall_g_cm2;
        let walls_low = mu(Material::Steel, meta.low_energy_mev)? * wall_g_cm2;
        let (high, low) = scan.log_attenuation();
        let (w, h) = (scan.width as usize, scan.height as usize);
        // Contents' attenuation in both bands with the walls removed.
        let content: Vec<(f64, f64)> = high
            .iter()
            .zip(&low)
            .map(|(&hi, &lo)| {
                let content_high = f64::from(hi) - walls_high;
                if content_high <= 0.0 {
                    (0.0, 0.0)
                } else {
                    (content_high, (f64::from(lo) - walls_low).max(0.0))
                }
            })
            .collect();
        // The low/high ratio of one pixel is dominated by photon noise where little gets
        // through (adjacent pixels of one steel block read anywhere from organic to steel), so
        // it is taken over a (2r+1)² window: sums of both bands from summed-area tables.
        let integral = |band: fn(&(f64, f64)) -> f64| {
            let mut table = vec![0f64; (w + 1) * (h + 1)];
            for y in 0..h {
                let mut row = 0.0;
                for x in 0..w {
                    row += band(&content[y * w + x]);
                    table[(y + 1) * (w + 1) + x + 1] = table[y * (w + 1) + x + 1] + row;
                }
            }
            table
        };
        let (sum_high, sum_low) = (integral(|c| c.0), integral(|c| c.1));
        let window = |table: &[f64], x: usize, y: usize| {
            let (x0, y0) = (
                x.saturating_sub(RATIO_RADIUS),
                y.saturating_sub(RATIO_RADIUS),
            );
            let (x1, y1) = ((x + RATIO_RADIUS + 1).min(w), (y + RATIO_RADIUS + 1).min(h));
            table[y1 * (w + 1) + x1] - table[y0 * (w + 1) + x1] - table[y1 * (w + 1) + x0]
                + table[y0 * (w + 1) + x0]
        };
        let mut mass_g_cm2 = Vec::with_capacity(w * h);
        let mut steel_share = Vec::with_capacity(w * h);
        for (i, &(content_high, _)) in content.iter().enumerate() {
            let (x, y) = (i % w, i / w);
            let window_high = window(&sum_high, x, y);
            if content_high <= 0.0 || window_high <= 0.0 {
                mass_g_cm2.push(0.0);
                steel_share.push(0.0);
                continue;
            }
            let ratio = window(&sum_low, x, y) / window_high;
            let share = ((ratio_org - ratio) / (ratio_org - ratio_steel)).clamp(0.0, 1.0);
            let mu_high = high_org + share * (high_steel - high_org);
            mass_g_cm2.push((content_high / mu_high) as f32);
            steel_share.push(share as f32);
        }
        Ok(Contents {
            width: scan.width as usize,
            height: scan.height as usize,
            pixel_cm: meta.pixel_pitch_mm / 10.0,
            mass_g_cm2,
            steel_share,
        })
    }

    /// Net weight of the contents, kg: the mass thickness summed over the image times the
    /// pixel area.
    pub fn weight_kg(&self) -> f64 {
        let grams_per_cm2: f64 = self.mass_g_cm2.iter().map(|&m| f64::from(m)).sum();
        grams_per_cm2 * self.pixel_cm * self.pixel_cm / 1000.0
    }

    fn is_dense_metal(&self, i: usize) -> bool {
        self.steel_share[i] >= STEEL_DOMINATED
            && self.steel_share[i] * self.mass_g_cm2[i] >= DENSE_METAL_G_CM2
    }

    /// The largest 4-connected region of dense metal pixels, if any.
    pub fn largest_metal_region(&self) -> Option<MetalRegion> {
        let (w, h) = (self.width, self.height);
        let mut seen = vec![false; w * h];
        let mut best: Option<(usize, (usize, usize, usize, usize))> = None;
        let mut stack = Vec::new();
        for start in 0..w * h {
            if seen[start] || !self.is_dense_metal(start) {
                continue;
            }
            seen[start] = true;
            stack.push(start);
            let (mut count, mut bbox) = (0usize, (w, h, 0, 0));
            while let Some(i) = stack.pop() {
                count += 1;
                let (x, y) = (i % w, i / w);
                bbox = (
                    bbox.0.min(x),
                    bbox.1.min(y),
                    bbox.2.max(x + 1),
                    bbox.3.max(y + 1),
                );
                let neighbours = [
                    (x > 0).then(|| i - 1),
                    (x + 1 < w).then(|| i + 1),
                    (y > 0).then(|| i - w),
                    (y + 1 < h).then(|| i + w),
                ];
                for n in neighbours.into_iter().flatten() {
                    if !seen[n] && self.is_dense_metal(n) {
                        seen[n] = true;
                        stack.push(n);
                    }
                }
            }
            if best.is_none_or(|(c, _)| count > c) {
                best = Some((count, bbox));
            }
        }
        best.map(|(count, bbox)| MetalRegion {
            area_cm2: count as f64 * self.pixel_cm * self.pixel_cm,
            bbox,
        })
    }
}

/// Net weight of the contents from attenuation, kg (see [`Contents::of`]).
pub fn estimate_weight_kg(scan: &Scan) -> Result<f64, XrayError> {
    Ok(Contents::of(scan)?.weight_kg())
}
