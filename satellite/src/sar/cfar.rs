//! Constant false alarm rate detection of bright targets on sea clutter.
//!
//! Around every pixel three centred windows, sized in metres like ESA SNAP's Adaptive
//! Thresholding (defaults: target 75 m, guard 400 m, background 1000 m, PFA 10^-6.5): the
//! clutter is estimated on the background ring (background window minus guard window, so the
//! ship itself and its sidelobes do not raise its own threshold), and the pixel is tested:
//!
//! - **two-parameter** (SNAP): the target window's mean against `μ + t·σ` of the ring, `t` the
//!   Gaussian quantile of 1 − PFA. Robust and conservative, but the PFA only holds for
//!   Gaussian clutter.
//! - **gamma**: the pixel against the ring mean times the 1 − PFA quantile of an L-look gamma
//!   intensity (fully developed speckle over homogeneous sea).
//! - **K**: the pixel against the quantile of a K distribution whose shape ν is estimated per
//!   pixel from the ring's moments (`E[I²]/E[I]² = (1 + 1/L)(1 + 1/ν)`): heavier tails where
//!   the sea is textured by swell and wind, so rough sea does not light up. Quantiles come
//!   from a table over ν computed once per (L, PFA) by integrating the gamma-textured gamma
//!   speckle numerically.
//!
//! Pixels outside the swath (nodata) and land are left out of every window's statistics and
//! never tested; a pixel whose ring has less than `min_background_fraction` of valid pixels
//! (at the coast, at the swath edge) is not decided.
//!
//! Statistics come from summed-area tables of count, sum and sum of squares over the tile and
//! its halo, so each pixel costs the same whatever the window sizes. For 16-bit samples the
//! tables are `u64` and the variance `n·Σx² − (Σx)²` is computed in `u128`: exact, no
//! cancellation however bright or large the scene. Floating-point scenes use `f64` tables
//! per tile (a tile's sums stay small enough that the loss is far below the speckle).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use statrs::function::gamma::{gamma_ur, ln_gamma};

use super::scene::{Intensity, Window};

/// Which test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CfarKind {
    /// SNAP's two-parameter test (target-window mean against μ + t·σ).
    #[default]
    TwoParameter,
    /// Per-pixel test against an L-look gamma quantile.
    Gamma,
    /// Per-pixel test against a K quantile with the shape estimated locally.
    K,
}

/// The detector's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CfarConfig {
    pub kind: CfarKind,
    /// Target window size, metres.
    pub target_m: f64,
    /// Guard window size, metres.
    pub guard_m: f64,
    /// Background window size, metres.
    pub background_m: f64,
    /// Probability of false alarm per test.
    pub pfa: f64,
    /// Equivalent number of looks of the intensity (gamma and K); Sentinel-1 IW GRD high
    /// resolution is about 4.4.
    pub looks: f64,
    /// Least share of the ring that must be valid sea for a pixel to be decided.
    pub min_background_fraction: f64,
}

impl Default for CfarConfig {
    fn default() -> Self {
        CfarConfig {
            kind: CfarKind::TwoParameter,
            target_m: 75.0,
            guard_m: 400.0,
            background_m: 1000.0,
            pfa: 10f64.powf(-6.5),
            looks: 4.4,
            min_background_fraction: 0.5,
        }
    }
}

/// Half-widths in pixels (x, y) of the three windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Windows {
    pub target: (usize, usize),
    pub guard: (usize, usize),
    pub background: (usize, usize),
}

impl Windows {
    /// Odd windows of `2h + 1` pixels with `h = floor(size / (2 · spacing))`, so a 75 m target
    /// window at 10 m is 7 pixels, the 400 m guard 41, the 1000 m background 101. The guard is
    /// kept larger than the target and the background larger than the guard.
    pub fn from_metres(config: &CfarConfig, spacing_m: (f64, f64)) -> Windows {
        let half = |size: f64, spacing: f64| (size / (2.0 * spacing.max(1e-3))).floor().clamp(0.0, 10_000.0) as usize;
        let axis = |spacing: f64| {
            let t = half(config.target_m, spacing);
            let g = half(config.guard_m, spacing).max(t + 1);
            let b = half(config.background_m, spacing).max(g + 1);
            (t, g, b)
        };
        let (tx, gx, bx) = axis(spacing_m.0);
        let (ty, gy, by) = axis(spacing_m.1);
        Windows { target: (tx, ty), guard: (gx, gy), background: (bx, by) }
    }

    /// The halo a tile needs around it: the background half-width.
    pub fn halo(&self) -> (usize, usize) {
        self.background
    }

    fn ring_area(&self) -> u64 {
        let area = |(x, y): (usize, usize)| ((2 * x + 1) * (2 * y + 1)) as u64;
        area(self.background) - area(self.guard)
    }
}

/// A pixel that passed the test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hit {
    /// Scene column and row.
    pub x: u32,
    pub y: u32,
    /// Its intensity.
    pub value: f32,
    /// The threshold it was tested against at its place (for the two-parameter test, the
    /// threshold on the target-window mean).
    pub threshold: f32,
    /// Ring mean: the local sea level.
    pub background: f32,
}

/// Per-tile counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TileStats {
    /// Pixels tested.
    pub tested: u64,
    /// Pixels not decided for want of valid background.
    pub undecided: u64,
}

/// Thresholds that depend only on the configuration, computed once per run.
#[derive(Debug, Clone)]
pub struct Thresholds {
    kind: CfarKind,
    /// Gaussian quantile t (two-parameter).
    t: f64,
    /// Gamma quantile of I/μ.
    gamma: f64,
    /// K quantiles of I/μ over ln ν (K only).
    k_table: Option<&'static KTable>,
    looks: f64,
    min_ring: u64,
}

impl Thresholds {
    pub fn new(config: &CfarConfig, windows: &Windows) -> Thresholds {
        let pfa = config.pfa.clamp(1e-15, 0.5);
        let looks = config.looks.max(0.5);
        Thresholds {
            kind: config.kind,
            t: gaussian_quantile(pfa),
            gamma: gamma_quantile(looks, pfa),
            k_table: (config.kind == CfarKind::K).then(|| KTable::get(looks, pfa)),
            looks,
            min_ring: ((windows.ring_area() as f64) * config.min_background_fraction.clamp(0.0, 1.0)).ceil().max(2.0) as u64,
        }
    }

    /// The Gaussian quantile used by the two-parameter test.
    pub fn t(&self) -> f64 {
        self.t
    }

    /// The normalised gamma threshold (threshold over background mean).
    pub fn gamma_factor(&self) -> f64 {
        self.gamma
    }

    /// The normalised K threshold for shape ν.
    pub fn k_factor(&self, nu: f64) -> f64 {
        self.k_table.map_or(self.gamma, |t| t.factor(nu))
    }
}

/// `Φ⁻¹(1 − pfa)`.
pub fn gaussian_quantile(pfa: f64) -> f64 {
    // Bisection on the tail: erfc is accurate far out where 1 − pfa is not.
    bisect(|t| 0.5 * statrs::function::erf::erfc(t / std::f64::consts::SQRT_2), pfa, 0.0, 40.0)
}

/// The x with `P(I/μ > x) = pfa` for L-look gamma intensity.
pub fn gamma_quantile(looks: f64, pfa: f64) -> f64 {
    bisect(|x| gamma_ur(looks, looks * x), pfa, 0.0, 1e4)
}

/// Finds x in [lo, hi] where the decreasing `ccdf(x)` equals `p`.
fn bisect(ccdf: impl Fn(f64) -> f64, p: f64, mut lo: f64, mut hi: f64) -> f64 {
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if ccdf(mid) > p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-12 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// K-distribution quantiles of I/μ over a grid of ln ν.
#[derive(Debug)]
struct KTable {
    ln_nu: Vec<f64>,
    factor: Vec<f64>,
    gamma: f64,
}

impl KTable {
    const NU_MIN: f64 = 0.3;
    const NU_MAX: f64 = 100.0;

    fn get(looks: f64, pfa: f64) -> &'static KTable {
        static TABLES: OnceLock<Mutex<HashMap<(u64, u64), &'static KTable>>> = OnceLock::new();
        let key = (looks.to_bits(), pfa.to_bits());
        let mut tables = TABLES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        tables.entry(key).or_insert_with(|| Box::leak(Box::new(KTable::compute(looks, pfa))))
    }

    fn compute(looks: f64, pfa: f64) -> KTable {
        let n = 40;
        let (lo, hi) = (Self::NU_MIN.ln(), Self::NU_MAX.ln());
        let ln_nu: Vec<f64> = (0..n).map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64).collect();
        let factor = ln_nu.iter().map(|&l| bisect(|x| k_ccdf(looks, l.exp(), x), pfa, 0.0, 1e5)).collect();
        KTable { ln_nu, factor, gamma: gamma_quantile(looks, pfa) }
    }

    fn factor(&self, nu: f64) -> f64 {
        if !(nu < Self::NU_MAX) {
            return self.gamma; // smooth sea: gamma (ν → ∞), and NaN lands here too
        }
        let l = nu.max(Self::NU_MIN).ln();
        let step = self.ln_nu[1] - self.ln_nu[0];
        let f = (l - self.ln_nu[0]) / step;
        let i = (f.floor() as usize).min(self.ln_nu.len() - 2);
        let w = f - i as f64;
        self.factor[i] * (1.0 - w) + self.factor[i + 1] * w
    }
}

/// `P(I/μ > x)` for K clutter: gamma texture τ (shape ν, mean 1) times L-look gamma speckle,
/// integrated over u = ln τ with Simpson's rule.
pub fn k_ccdf(looks: f64, nu: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    // Below τ = x/200 the speckle cannot lift I above x; the texture (mean 1, standard
    // deviation 1/√ν) has no mass above 1 + 10/√ν + 80/ν, nor below 1 − 10/√ν when ν is large.
    let spread = 10.0 / nu.sqrt();
    let a = (x / 200.0).max(1.0 - spread).ln();
    let b = (1.0 + spread + 80.0 / nu).ln();
    if a >= b {
        return 0.0;
    }
    let n = 400;
    let h = (b - a) / n as f64;
    let ln_norm = nu * nu.ln() - ln_gamma(nu);
    let f = |u: f64| {
        let tau = u.exp();
        (ln_norm + nu * u - nu * tau).exp() * gamma_ur(looks, looks * x / tau)
    };
    let mut sum = f(a) + f(b);
    for i in 1..n {
        sum += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    sum * h / 3.0
}

/// Accumulator of the summed-area tables: exact `u64` for 16-bit samples, `f64` otherwise.
trait Acc: Copy + Default + std::ops::Add<Output = Self> + std::ops::Sub<Output = Self> {
    fn f64(self) -> f64;
    /// `n·Σx² − (Σx)²`, i.e. n² times the variance.
    fn n2_var(n: u64, sum: Self, sq: Self) -> f64;
}

impl Acc for u64 {
    fn f64(self) -> f64 {
        self as f64
    }
    fn n2_var(n: u64, sum: u64, sq: u64) -> f64 {
        let v = (n as u128 * sq as u128).saturating_sub(sum as u128 * sum as u128);
        v as f64
    }
}

impl Acc for f64 {
    fn f64(self) -> f64 {
        self
    }
    fn n2_var(n: u64, sum: f64, sq: f64) -> f64 {
        (n as f64 * sq - sum * sum).max(0.0)
    }
}

/// Summed-area tables of a window with a stride of `width + 1`.
struct Tables<A> {
    stride: usize,
    count: Vec<u32>,
    sum: Vec<A>,
    sq: Vec<A>,
}

impl<A: Acc> Tables<A> {
    fn build(width: usize, height: usize, value: impl Fn(usize) -> Option<(A, A)>) -> Tables<A> {
        let stride = width + 1;
        let len = stride * (height + 1);
        let (mut count, mut sum, mut sq) = (vec![0u32; len], vec![A::default(); len], vec![A::default(); len]);
        for y in 0..height {
            let (mut c, mut s, mut q) = (0u32, A::default(), A::default());
            let row = (y + 1) * stride;
            for x in 0..width {
                if let Some((v, v2)) = value(y * width + x) {
                    c += 1;
                    s = s + v;
                    q = q + v2;
                }
                count[row + x + 1] = count[row - stride + x + 1] + c;
                sum[row + x + 1] = sum[row - stride + x + 1] + s;
                sq[row + x + 1] = sq[row - stride + x + 1] + q;
            }
        }
        Tables { stride, count, sum, sq }
    }

    /// Count, sum and sum of squares over columns [x0, x1) and rows [y0, y1).
    #[inline(always)]
    fn rect(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> (u32, A, A) {
        let (a, b, c, d) = (y0 * self.stride + x0, y0 * self.stride + x1, y1 * self.stride + x0, y1 * self.stride + x1);
        (
            self.count[d] + self.count[a] - self.count[b] - self.count[c],
            self.sum[d] + self.sum[a] - self.sum[b] - self.sum[c],
            self.sq[d] + self.sq[a] - self.sq[b] - self.sq[c],
        )
    }
}

/// Runs the test over the `core` of a tile whose intensity and validity cover `window`
/// (core plus halo, clipped to the scene). `valid[i]` is false for land; nodata is read from
/// the intensity itself. Hits are appended in scene coordinates.
pub fn detect_tile(
    intensity: &Intensity,
    land: Option<&[u8]>,
    window: Window,
    core: Window,
    windows: &Windows,
    thresholds: &Thresholds,
    hits: &mut Vec<Hit>,
) -> TileStats {
    let is_sea = |i: usize| land.is_none_or(|l| l[i] == 0);
    match intensity {
        Intensity::U16 { samples, nodata } => {
            let nd = *nodata;
            let value = |i: usize| {
                let v = samples[i];
                (Some(v) != nd && is_sea(i)).then(|| (v as u64, v as u64 * v as u64))
            };
            let tables = Tables::<u64>::build(window.width, window.height, value);
            run(&tables, |i| samples[i] as f64, |i| value(i).is_some(), window, core, windows, thresholds, hits)
        }
        Intensity::F32(v) => {
            let value = |i: usize| {
                let x = v[i] as f64;
                (x.is_finite() && is_sea(i)).then_some((x, x * x))
            };
            let tables = Tables::<f64>::build(window.width, window.height, value);
            run(&tables, |i| v[i] as f64, |i| value(i).is_some(), window, core, windows, thresholds, hits)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run<A: Acc>(
    tables: &Tables<A>,
    pixel: impl Fn(usize) -> f64,
    valid: impl Fn(usize) -> bool,
    window: Window,
    core: Window,
    windows: &Windows,
    th: &Thresholds,
    hits: &mut Vec<Hit>,
) -> TileStats {
    let mut stats = TileStats::default();
    let (w, h) = (window.width, window.height);
    // A box of half-widths (hx, hy) around (x, y), clipped to the window, as table corners.
    let span = |c: usize, half: usize, len: usize| (c.saturating_sub(half), (c + half + 1).min(len));
    let t2 = th.t * th.t;
    let inv_looks = 1.0 / th.looks;
    for cy in core.y0..core.y0 + core.height {
        let y = cy - window.y0;
        let (ty0, ty1) = span(y, windows.target.1, h);
        let (gy0, gy1) = span(y, windows.guard.1, h);
        let (by0, by1) = span(y, windows.background.1, h);
        for cx in core.x0..core.x0 + core.width {
            let x = cx - window.x0;
            let i = y * w + x;
            if !valid(i) {
                continue;
            }
            let (gx0, gx1) = span(x, windows.guard.0, w);
            let (bx0, bx1) = span(x, windows.background.0, w);
            let (gn, gs, gq) = tables.rect(gx0, gy0, gx1, gy1);
            let (bn, bs, bq) = tables.rect(bx0, by0, bx1, by1);
            let n = (bn - gn) as u64;
            if n < th.min_ring {
                stats.undecided += 1;
                continue;
            }
            stats.tested += 1;
            let (s, q) = (bs - gs, bq - gq);
            let nf = n as f64;
            let mu = s.f64() / nf;
            let value = pixel(i);
            let threshold = match th.kind {
                CfarKind::TwoParameter => {
                    let (tx0, tx1) = span(x, windows.target.0, w);
                    let (tn, ts, _) = tables.rect(tx0, ty0, tx1, ty1);
                    let mean_t = ts.f64() / tn as f64;
                    let d = mean_t - mu;
                    // mean_t > μ + tσ  ⇔  d > 0 and d²·n² > t²·(n·Σx² − (Σx)²)
                    if d <= 0.0 {
                        continue;
                    }
                    let n2_var = A::n2_var(n, s, q);
                    if d * d * nf * nf <= t2 * n2_var {
                        continue;
                    }
                    mu + th.t * n2_var.sqrt() / nf
                }
                CfarKind::Gamma => {
                    let thr = mu * th.gamma;
                    if value <= thr {
                        continue;
                    }
                    thr
                }
                CfarKind::K => {
                    // The K threshold is never below the gamma one: prescreen with it.
                    if value <= mu * th.gamma {
                        continue;
                    }
                    let m1 = s.f64();
                    let ratio = (nf * q.f64()) / (m1 * m1);
                    let excess = ratio / (1.0 + inv_looks) - 1.0;
                    let nu = if excess > 0.0 { 1.0 / excess } else { f64::INFINITY };
                    let thr = mu * th.k_factor(nu);
                    if value <= thr {
                        continue;
                    }
                    thr
                }
            };
            hits.push(Hit { x: cx as u32, y: cy as u32, value: value as f32, threshold: threshold as f32, background: mu as f32 });
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snap_geometry_at_ten_metres() {
        let w = Windows::from_metres(&CfarConfig::default(), (10.0, 10.0));
        assert_eq!(w, Windows { target: (3, 3), guard: (20, 20), background: (50, 50) });
        assert_eq!(w.ring_area(), 101 * 101 - 41 * 41);
    }

    #[test]
    fn quantiles() {
        assert!((gaussian_quantile(10f64.powf(-6.5)) - 4.98103).abs() < 1e-4, "{}", gaussian_quantile(10f64.powf(-6.5)));
        assert!((gaussian_quantile(0.025) - 1.95996).abs() < 1e-4);
        // One look: exponential intensity, P(I/μ > x) = e^{-x}.
        assert!((gamma_quantile(1.0, 1e-6) - 1e6f64.ln()).abs() < 1e-6);
        // K tails are heavier than gamma's, and tend to it as ν grows.
        let g = gamma_quantile(4.0, 1e-5);
        assert!((k_ccdf(4.0, 1e4, g) - 1e-5).abs() < 2e-7, "{}", k_ccdf(4.0, 1e4, g));
        assert!(k_ccdf(4.0, 2.0, g) > 1e-4);
        let table = KTable::get(4.0, 1e-5);
        assert!(table.factor(1.0) > table.factor(10.0) && table.factor(10.0) > g);
        assert_eq!(table.factor(f64::INFINITY), g);
        // Between table nodes the interpolated quantile keeps the false alarm rate within 2%.
        let err = k_ccdf(4.0, 1.0, table.factor(1.0)) / 1e-5 - 1.0;
        assert!(err.abs() < 0.02, "{err}");
    }

    /// A flat sea at 100 with one bright 3×3 target and a land strip along the top.
    fn tile() -> (Intensity, Vec<u8>, Window) {
        let (w, h) = (200usize, 200usize);
        let mut samples = vec![0u16; w * h];
        let mut seed = 12345u64;
        for (i, s) in samples.iter_mut().enumerate() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            *s = 90 + (seed >> 60) as u16 + (i % 3) as u16; // 90..108
        }
        for y in 99..102 {
            for x in 99..102 {
                samples[y * w + x] = 4000;
            }
        }
        let mut land = vec![0u8; w * h];
        land[..w * 20].fill(1);
        samples[..w * 20].fill(3000); // bright land must not be tested nor raise the sea's level
        samples[w * 150] = 0; // a nodata pixel
        (Intensity::U16 { samples, nodata: Some(0) }, land, Window { x0: 0, y0: 0, width: w, height: h })
    }

    #[test]
    fn the_target_is_found_and_land_and_nodata_are_left_alone() {
        let (intensity, land, window) = tile();
        let windows = Windows::from_metres(&CfarConfig::default(), (10.0, 10.0));
        for kind in [CfarKind::TwoParameter, CfarKind::Gamma, CfarKind::K] {
            let config = CfarConfig { kind, ..CfarConfig::default() };
            let th = Thresholds::new(&config, &windows);
            let mut hits = Vec::new();
            let stats = detect_tile(&intensity, Some(&land), window, window, &windows, &th, &mut hits);
            assert!(!hits.is_empty(), "{kind:?}");
            for h in &hits {
                assert!((96..=104).contains(&h.x) && (96..=104).contains(&h.y), "{kind:?} {h:?}");
                assert!(h.background > 90.0 && h.background < 110.0, "{kind:?} {h:?}");
            }
            assert!(stats.tested > 10_000 && stats.undecided > 0, "{stats:?}");
            // Without the land mask the bright land raises no alarm either: it is undecided or
            // tested against itself, but never below its own level.
            let mut without = Vec::new();
            detect_tile(&intensity, None, window, window, &windows, &th, &mut without);
            assert!(without.iter().all(|h| h.y >= 19), "{kind:?}");
        }
    }

    #[test]
    fn exact_integer_variance_on_bright_uint16() {
        // Near-saturated samples with a tiny spread: f64 sums of squares would cancel.
        let v = |n: u64, s: u64, q: u64| <u64 as Acc>::n2_var(n, s, q);
        let xs = [65_000u64, 65_001, 65_002, 65_003];
        let (s, q) = (xs.iter().sum::<u64>(), xs.iter().map(|x| x * x).sum::<u64>());
        assert_eq!(v(4, s, q), 20.0); // 4² · var, var = 1.25
    }
}
