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
//! Window statistics (count, sum, sum of squares) cost the same per pixel whatever the window
//! sizes: column sums over each window's band of rows are slid down the tile one row at a
//! time (add the row entering, subtract the row leaving: straight loops the compiler
//! vectorises), and running sums along the row turn any horizontal span into two lookups.
//! Everything streams through memory in order, which is what makes it fast; summed-area
//! tables give the same O(1) but jump between rows a window apart for every pixel. For
//! 16-bit samples the sums are `u64` and the variance `n·Σx² − (Σx)²` is computed in `u128`:
//! exact, no cancellation however bright or large the scene (a running sum only ever adds
//! and subtracts integers). Floating-point scenes use `f64` sums per tile (a tile's sums stay
//! small enough that the loss is far below the speckle, as a sample counts in them at most
//! 10⁵ times the tile's median: see [`sum_cap`]); negative and infinite samples are invalid.

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
    TwoParameter,
    /// Per-pixel test against an L-look gamma quantile.
    Gamma,
    /// Per-pixel test against a K quantile with the shape estimated locally. The default: it
    /// finds the small boats the two-parameter test's target window averages away, and stays
    /// at its false alarm rate on textured sea where the gamma test does not.
    #[default]
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
            kind: CfarKind::K,
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
        let half = |size: f64, spacing: f64| {
            (size / (2.0 * spacing.max(1e-3)))
                .floor()
                .clamp(0.0, 10_000.0) as usize
        };
        let axis = |spacing: f64| {
            let t = half(config.target_m, spacing);
            let g = half(config.guard_m, spacing).max(t + 1);
            let b = half(config.background_m, spacing).max(g + 1);
            (t, g, b)
        };
        let (tx, gx, bx) = axis(spacing_m.0);
        let (ty, gy, by) = axis(spacing_m.1);
        Windows {
            target: (tx, ty),
            guard: (gx, gy),
            background: (bx, by),
        }
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
            min_ring: ((windows.ring_area() as f64)
                * config.min_background_fraction.clamp(0.0, 1.0))
            .ceil()
            .max(2.0) as u64,
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
    bisect(
        |t| 0.5 * statrs::function::erf::erfc(t / std::f64::consts::SQRT_2),
        pfa,
        0.0,
        40.0,
    )
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
        let mut tables = TABLES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        tables
            .entry(key)
            .or_insert_with(|| Box::leak(Box::new(KTable::compute(looks, pfa))))
    }

    fn compute(looks: f64, pfa: f64) -> KTable {
        let n = 40;
        let (lo, hi) = (Self::NU_MIN.ln(), Self::NU_MAX.ln());
        let ln_nu: Vec<f64> = (0..n)
            .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
            .collect();
        let factor = ln_nu
            .iter()
            .map(|&l| bisect(|x| k_ccdf(looks, l.exp(), x), pfa, 0.0, 1e5))
            .collect();
        KTable {
            ln_nu,
            factor,
            gamma: gamma_quantile(looks, pfa),
        }
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

/// Accumulator of the window sums: exact `u64` for 16-bit samples, `f64` otherwise.
trait Acc:
    Copy
    + Default
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::AddAssign
    + std::ops::SubAssign
{
    fn f64(self) -> f64;
    /// `n·Σx² − (Σx)²`, i.e. n² times the variance.
    fn n2_var(n: u64, sum: Self, sq: Self) -> f64;
}

impl Acc for u64 {
    /// Sums of 16-bit samples over a window stay far below 2⁶³: the signed conversion is one
    /// instruction where the unsigned one is a branchy sequence.
    #[inline(always)]
    fn f64(self) -> f64 {
        self as i64 as f64
    }
    #[inline(always)]
    fn n2_var(n: u64, sum: u64, sq: u64) -> f64 {
        // Exact in 64 bits for every window size at 10 m pixels; 128 bits beyond.
        if let (Some(a), Some(b)) = (n.checked_mul(sq), sum.checked_mul(sum)) {
            return a.saturating_sub(b) as i64 as f64;
        }
        let v = (n as u128 * sq as u128).saturating_sub(sum as u128 * sum as u128);
        // u128 → f64 is a slow library call; the difference nearly always fits 64 bits.
        match u64::try_from(v) {
            Ok(small) => small as f64,
            Err(_) => v as f64,
        }
    }
}

impl Acc for f64 {
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn n2_var(n: u64, sum: f64, sq: f64) -> f64 {
        (n as f64 * sq - sum * sum).max(0.0)
    }
}

/// Column sums over a band of rows, slid down one row at a time. The columns are padded with
/// `pad` zero columns on both sides, so sliding a horizontal span along the row never needs
/// clipping at the window's edges.
struct Band<A> {
    half_y: usize,
    pad: usize,
    width: usize,
    /// Whether sums of squares are needed (not for the target window).
    squares: bool,
    /// Whether counts are needed (not when the whole window is valid).
    counts: bool,
    n: Vec<u32>,
    s: Vec<A>,
    q: Vec<A>,
}

impl<A: Acc> Band<A> {
    fn new(width: usize, half_y: usize, pad: usize, squares: bool, counts: bool) -> Band<A> {
        let len = width + 2 * pad;
        Band {
            half_y,
            pad,
            width,
            squares,
            counts,
            n: vec![0; if counts { len } else { 0 }],
            s: vec![A::default(); len],
            q: vec![A::default(); if squares { len } else { 0 }],
        }
    }

    fn accumulate(&mut self, rows: &impl Rows<A>, y: usize, add: bool) {
        let cols = self.pad..self.pad + self.width;
        let q: &mut [A] = if self.squares {
            &mut self.q[cols.clone()]
        } else {
            &mut []
        };
        let n: &mut [u32] = if self.counts {
            &mut self.n[cols.clone()]
        } else {
            &mut []
        };
        rows.accumulate(y, add, n, &mut self.s[cols], q);
    }

    /// Positions the band on row `y` (from scratch).
    fn start(&mut self, rows: &impl Rows<A>, y: usize, height: usize) {
        self.n.fill(0);
        self.s.fill(A::default());
        self.q.fill(A::default());
        for r in y.saturating_sub(self.half_y)..(y + self.half_y + 1).min(height) {
            self.accumulate(rows, r, true);
        }
    }

    /// Moves the band from row `y - 1` to row `y`.
    fn advance(&mut self, rows: &impl Rows<A>, y: usize, height: usize) {
        if y + self.half_y < height {
            self.accumulate(rows, y + self.half_y, true);
        }
        if y > self.half_y {
            self.accumulate(rows, y - self.half_y - 1, false);
        }
    }

    /// Count, sum and sum of squares over window columns `x - half ..= x + half`.
    fn span(&self, x: usize, half: usize) -> (u32, A, A) {
        let (mut n, mut s, mut q) = (0u32, A::default(), A::default());
        for c in self.pad + x - half..=self.pad + x + half {
            if self.counts {
                n += self.n[c];
            }
            s += self.s[c];
            if self.squares {
                q += self.q[c];
            }
        }
        (n, s, q)
    }
}

/// The tile's samples as the bands read them. Validity, value and square are worked out from
/// the samples every time a row enters or leaves a band rather than stored: six passes over
/// 2–3 bytes a pixel stay in cache where six passes over 20 bytes a pixel of prepared planes
/// would not (that was three times slower).
trait Rows<A> {
    /// Adds (or subtracts) row `y`'s valid pixels to the column sums; `n` or `q` is empty
    /// when the counts or the squares are not wanted.
    fn accumulate(&self, y: usize, add: bool, n: &mut [u32], s: &mut [A], q: &mut [A]);
    /// Whether pixel `i` is sea with data.
    fn valid(&self, i: usize) -> bool;
    /// Whether every pixel of the window is (open sea, inside the swath: the common case, where
    /// window counts follow from the geometry alone).
    fn all_valid(&self) -> bool;
    /// The intensity of pixel `i`.
    fn value(&self, i: usize) -> f64;
}

struct U16Rows<'a> {
    width: usize,
    samples: &'a [u16],
    /// The nodata value, or 65536 (never equal to a sample) when there is none.
    nodata: u32,
    land: Option<&'a [u8]>,
}

impl Rows<u64> for U16Rows<'_> {
    fn accumulate(&self, y: usize, add: bool, n: &mut [u32], s: &mut [u64], q: &mut [u64]) {
        let w = self.width;
        let row = &self.samples[y * w..(y + 1) * w];
        let land = self.land.map(|l| &l[y * w..(y + 1) * w]);
        let nd = self.nodata;
        match (add, n.is_empty(), q.is_empty()) {
            (true, false, false) => accumulate_u16::<true, true, true>(row, land, nd, n, s, q),
            (true, false, true) => accumulate_u16::<true, true, false>(row, land, nd, n, s, q),
            (true, true, false) => accumulate_u16::<true, false, true>(row, land, nd, n, s, q),
            (true, true, true) => accumulate_u16::<true, false, false>(row, land, nd, n, s, q),
            (false, false, false) => accumulate_u16::<false, true, true>(row, land, nd, n, s, q),
            (false, false, true) => accumulate_u16::<false, true, false>(row, land, nd, n, s, q),
            (false, true, false) => accumulate_u16::<false, false, true>(row, land, nd, n, s, q),
            (false, true, true) => accumulate_u16::<false, false, false>(row, land, nd, n, s, q),
        }
    }

    #[inline(always)]
    fn valid(&self, i: usize) -> bool {
        self.samples[i] as u32 != self.nodata && self.land.is_none_or(|l| l[i] == 0)
    }

    fn all_valid(&self) -> bool {
        self.land.is_none_or(|l| l.iter().all(|&b| b == 0))
            && (self.nodata > u16::MAX as u32
                || self.samples.iter().all(|&v| v as u32 != self.nodata))
    }

    #[inline(always)]
    fn value(&self, i: usize) -> f64 {
        self.samples[i] as f64
    }
}

/// One row of 16-bit samples into (`ADD`) or out of column sums; counts (`N`) and squares (`Q`)
/// only when wanted. Every slice is cut to the row's length first, so the loops carry no
/// bounds checks and the compiler vectorises them.
fn accumulate_u16<const ADD: bool, const N: bool, const Q: bool>(
    row: &[u16],
    land: Option<&[u8]>,
    nodata: u32,
    n: &mut [u32],
    s: &mut [u64],
    q: &mut [u64],
) {
    let w = row.len();
    let s = &mut s[..w];
    let n: &mut [u32] = if N { &mut n[..w] } else { &mut [] };
    let q: &mut [u64] = if Q { &mut q[..w] } else { &mut [] };
    macro_rules! body {
        ($valid:expr) => {
            for x in 0..w {
                let v = row[x];
                let m = $valid(x, v) as u32;
                let vm = v as u32 * m;
                if ADD {
                    s[x] += vm as u64;
                } else {
                    s[x] -= vm as u64;
                }
                if N {
                    if ADD {
                        n[x] += m;
                    } else {
                        n[x] -= m;
                    }
                }
                if Q {
                    let sq = vm as u64 * vm as u64;
                    if ADD {
                        q[x] += sq;
                    } else {
                        q[x] -= sq;
                    }
                }
            }
        };
    }
    match land {
        None => body!(|_, v: u16| v as u32 != nodata),
        Some(land) => {
            let land = &land[..w];
            body!(|x: usize, v: u16| (v as u32 != nodata) & (land[x] == 0))
        }
    }
}

struct F32Rows<'a> {
    width: usize,
    samples: &'a [f32],
    land: Option<&'a [u8]>,
    /// Largest value a sample adds to the sums (see [`sum_cap`]); tested at its own value.
    cap: f64,
}

/// Whether a floating-point sample is intensity: finite and not negative (NaN is nodata; a
/// negative or infinite power is corrupt, or the file is not intensity at all).
#[inline(always)]
fn is_intensity(v: f32) -> bool {
    (0.0..f32::INFINITY).contains(&v)
}

/// How far above the tile's median a sample may count in the window sums: 50 dB, beyond any
/// ship on any sea.
const SUM_CAP_OVER_MEDIAN: f64 = 1e5;

/// The cap on what one floating-point sample adds to the window sums. The f64 sums are slid
/// (a row added, a row taken away); a corrupt sample of 1e30 entering and leaving them would
/// wipe out every sea value added in between, and the tile would light up below it. Capped
/// at 10⁵ times the tile's median the rounding stays far below the speckle.
fn sum_cap(samples: &[f32]) -> f64 {
    // A strided sample of at most ~65,000 values is plenty for a median.
    let step = (samples.len() / 65_536).max(1);
    let mut v: Vec<f32> = samples
        .iter()
        .step_by(step)
        .copied()
        .filter(|&x| is_intensity(x) && x > 0.0)
        .collect();
    if v.is_empty() {
        return f64::MAX;
    }
    let mid = v.len() / 2;
    let (_, median, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    *median as f64 * SUM_CAP_OVER_MEDIAN
}

impl Rows<f64> for F32Rows<'_> {
    fn accumulate(&self, y: usize, add: bool, n: &mut [u32], s: &mut [f64], q: &mut [f64]) {
        let w = self.width;
        let row = &self.samples[y * w..(y + 1) * w];
        for (x, &v) in row.iter().enumerate() {
            let ok = is_intensity(v) && self.land.is_none_or(|l| l[y * w + x] == 0);
            let (m, v) = if ok {
                (1u32, (v as f64).min(self.cap))
            } else {
                (0, 0.0)
            };
            if add {
                if let Some(n) = n.get_mut(x) {
                    *n += m;
                }
                s[x] += v;
                if let Some(q) = q.get_mut(x) {
                    *q += v * v;
                }
            } else {
                if let Some(n) = n.get_mut(x) {
                    *n -= m;
                }
                s[x] -= v;
                if let Some(q) = q.get_mut(x) {
                    *q -= v * v;
                }
            }
        }
    }

    #[inline(always)]
    fn valid(&self, i: usize) -> bool {
        is_intensity(self.samples[i]) && self.land.is_none_or(|l| l[i] == 0)
    }

    fn all_valid(&self) -> bool {
        self.land.is_none_or(|l| l.iter().all(|&b| b == 0))
            && self.samples.iter().all(|&v| is_intensity(v))
    }

    #[inline(always)]
    fn value(&self, i: usize) -> f64 {
        self.samples[i] as f64
    }
}

/// Runs the test over the `core` of a tile whose intensity and validity cover `window`
/// (core plus halo, clipped to the scene). `land[i]` is 1 on land; nodata is read from the
/// intensity itself. Hits are appended in scene coordinates.
pub fn detect_tile(
    intensity: &Intensity,
    land: Option<&[u8]>,
    window: Window,
    core: Window,
    windows: &Windows,
    thresholds: &Thresholds,
    hits: &mut Vec<Hit>,
) -> TileStats {
    match intensity {
        Intensity::U16 { samples, nodata } => {
            let rows = U16Rows {
                width: window.width,
                samples,
                nodata: nodata.map_or(65_536, u32::from),
                land,
            };
            match thresholds.kind {
                CfarKind::TwoParameter if rows.all_valid() => {
                    run_two_parameter::<_, true>(&rows, window, core, windows, thresholds, hits)
                }
                CfarKind::TwoParameter => {
                    run_two_parameter::<_, false>(&rows, window, core, windows, thresholds, hits)
                }
                CfarKind::Gamma | CfarKind::K if rows.all_valid() => {
                    run_quantile::<_, true>(&rows, window, core, windows, thresholds, hits)
                }
                CfarKind::Gamma | CfarKind::K => {
                    run_quantile::<_, false>(&rows, window, core, windows, thresholds, hits)
                }
            }
        }
        Intensity::F32(samples) => {
            let rows = F32Rows {
                width: window.width,
                samples,
                land,
                cap: sum_cap(samples),
            };
            match thresholds.kind {
                CfarKind::TwoParameter if rows.all_valid() => {
                    run_two_parameter::<_, true>(&rows, window, core, windows, thresholds, hits)
                }
                CfarKind::TwoParameter => {
                    run_two_parameter::<_, false>(&rows, window, core, windows, thresholds, hits)
                }
                CfarKind::Gamma | CfarKind::K if rows.all_valid() => {
                    run_quantile::<_, true>(&rows, window, core, windows, thresholds, hits)
                }
                CfarKind::Gamma | CfarKind::K => {
                    run_quantile::<_, false>(&rows, window, core, windows, thresholds, hits)
                }
            }
        }
    }
}

/// The columns entering (`at + half + k`) and leaving (`at - half - 1 + k`) a span of
/// half-width `half` at step `k` of a slide starting at column `at`.
/// Empty for arrays a band does not keep.
fn entering_leaving<T>(v: &[T], at: usize, half: usize, len: usize) -> (&[T], &[T]) {
    if v.is_empty() {
        return (&[], &[]);
    }
    (&v[at + half..][..len], &v[at - half - 1..][..len])
}

/// SNAP's test: every pixel needs the target window's mean and the ring's mean and variance.
fn run_two_parameter<A: Acc, const ALL_VALID: bool>(
    rows: &impl Rows<A>,
    window: Window,
    core: Window,
    windows: &Windows,
    th: &Thresholds,
    hits: &mut Vec<Hit>,
) -> TileStats {
    let mut stats = TileStats::default();
    let (w, h) = (window.width, window.height);
    let pad = windows
        .background
        .0
        .max(windows.guard.0)
        .max(windows.target.0)
        + 1;
    let mut target = Band::<A>::new(w, windows.target.1, pad, false, !ALL_VALID);
    let mut guard = Band::<A>::new(w, windows.guard.1, pad, true, !ALL_VALID);
    let mut background = Band::<A>::new(w, windows.background.1, pad, true, !ALL_VALID);
    let (tx, gx, bx) = (windows.target.0, windows.guard.0, windows.background.0);
    let (t, t2, min_ring) = (th.t, th.t * th.t, th.min_ring);
    let y_first = core.y0 - window.y0;
    let x_first = core.x0 - window.x0;
    for y in y_first..y_first + core.height {
        for band in [&mut target, &mut guard, &mut background] {
            if y == y_first {
                band.start(rows, y, h);
            } else {
                band.advance(rows, y, h);
            }
        }
        // Horizontal sums slid along the row: add the column entering, drop the one leaving.
        // The columns entering and leaving at step k are taken from slices cut once per row,
        // so the loop indexes them without bounds checks.
        let cw = core.width;
        let (mut tn, mut ts, _) = target.span(x_first, tx);
        let (mut gn, mut gs, mut gq) = guard.span(x_first, gx);
        let (mut bn, mut bs, mut bq) = background.span(x_first, bx);
        let band_rows = |half: usize| ((y + half + 1).min(h) - y.saturating_sub(half)) as u64;
        let (t_rows, g_rows, b_rows) = (
            band_rows(windows.target.1),
            band_rows(windows.guard.1),
            band_rows(windows.background.1),
        );
        let at = pad + x_first;
        let (tn_in, tn_out) = entering_leaving(&target.n, at, tx, cw);
        let (ts_in, ts_out) = entering_leaving(&target.s, at, tx, cw);
        let (gn_in, gn_out) = entering_leaving(&guard.n, at, gx, cw);
        let (gs_in, gs_out) = entering_leaving(&guard.s, at, gx, cw);
        let (gq_in, gq_out) = entering_leaving(&guard.q, at, gx, cw);
        let (bn_in, bn_out) = entering_leaving(&background.n, at, bx, cw);
        let (bs_in, bs_out) = entering_leaving(&background.s, at, bx, cw);
        let (bq_in, bq_out) = entering_leaving(&background.q, at, bx, cw);
        for k in 0..cw {
            let x = x_first + k;
            if k > 0 {
                if !ALL_VALID {
                    tn = tn - tn_out[k] + tn_in[k];
                    gn = gn - gn_out[k] + gn_in[k];
                    bn = bn - bn_out[k] + bn_in[k];
                }
                ts = ts - ts_out[k] + ts_in[k];
                gs = gs - gs_out[k] + gs_in[k];
                gq = gq - gq_out[k] + gq_in[k];
                bs = bs - bs_out[k] + bs_in[k];
                bq = bq - bq_out[k] + bq_in[k];
            }
            let i = y * w + x;
            let cols = |half: usize| ((x + half + 1).min(w) - x.saturating_sub(half)) as u64;
            let (n, tnf) = if ALL_VALID {
                // Window areas clipped to the window (only at the scene's edges).
                (
                    cols(bx) * b_rows - cols(gx) * g_rows,
                    (cols(tx) * t_rows) as f64,
                )
            } else {
                if !rows.valid(i) {
                    continue;
                }
                ((bn - gn) as u64, tn as f64)
            };
            if n < min_ring {
                stats.undecided += 1;
                continue;
            }
            stats.tested += 1;
            let (s, q) = (bs - gs, bq - gq);
            let nf = n as i64 as f64;
            let sf = s.f64();
            let value = rows.value(i);
            let threshold = {
                // d = mean_t − μ; mean_t > μ + tσ  ⇔  d > 0 and d²·n² > t²·(n·Σx² − (Σx)²),
                // multiplied through by tn² so that no pixel costs a division.
                // Both halves are evaluated without an early exit: d > 0 holds for half
                // the sea at random, a branch the processor would mispredict every other
                // pixel; the combined test is almost never true, so its branch is free.
                let d_scaled = ts.f64() * nf - sf * tnf; // d · tn · n
                let n2_var = A::n2_var(n, s, q);
                let passes = (d_scaled > 0.0) & (d_scaled * d_scaled > t2 * n2_var * tnf * tnf);
                if !passes {
                    continue;
                }
                sf / nf + t * n2_var.sqrt() / nf
            };
            hits.push(Hit {
                x: (x + window.x0) as u32,
                y: (y + window.y0) as u32,
                value: value as f32,
                threshold: threshold as f32,
                background: (sf / nf) as f32,
            });
        }
    }
    stats
}

/// The gamma and K tests: every pixel needs only the ring's mean, to be compared with the
/// gamma threshold (the K threshold is never below it); the ring's second moment, for the K
/// shape, is summed from the column sums only for the few pixels that pass. No target window.
/// `ALL_VALID`: no nodata and no land in the window, so counts come from the geometry.
fn run_quantile<A: Acc, const ALL_VALID: bool>(
    rows: &impl Rows<A>,
    window: Window,
    core: Window,
    windows: &Windows,
    th: &Thresholds,
    hits: &mut Vec<Hit>,
) -> TileStats {
    let mut stats = TileStats::default();
    let (w, h) = (window.width, window.height);
    let pad = windows.background.0.max(windows.guard.0) + 1;
    let mut guard = Band::<A>::new(w, windows.guard.1, pad, th.kind == CfarKind::K, !ALL_VALID);
    let mut background = Band::<A>::new(
        w,
        windows.background.1,
        pad,
        th.kind == CfarKind::K,
        !ALL_VALID,
    );
    let (gx, bx) = (windows.guard.0, windows.background.0);
    let inv_looks = 1.0 / th.looks;
    // Copied out of `th`: in registers for the loop rather than reloaded on every pixel.
    let (gamma, min_ring, is_k) = (th.gamma, th.min_ring, th.kind == CfarKind::K);
    let y_first = core.y0 - window.y0;
    let x_first = core.x0 - window.x0;
    let cw = core.width;
    for y in y_first..y_first + core.height {
        for band in [&mut guard, &mut background] {
            if y == y_first {
                band.start(rows, y, h);
            } else {
                band.advance(rows, y, h);
            }
        }
        let (mut gn, mut gs, _) = guard.span(x_first, gx);
        let (mut bn, mut bs, _) = background.span(x_first, bx);
        let band_rows = |half: usize| ((y + half + 1).min(h) - y.saturating_sub(half)) as u64;
        let (g_rows, b_rows) = (band_rows(windows.guard.1), band_rows(windows.background.1));
        let at = pad + x_first;
        let (gn_in, gn_out) = entering_leaving(&guard.n, at, gx, cw);
        let (gs_in, gs_out) = entering_leaving(&guard.s, at, gx, cw);
        let (bn_in, bn_out) = entering_leaving(&background.n, at, bx, cw);
        let (bs_in, bs_out) = entering_leaving(&background.s, at, bx, cw);
        for k in 0..cw {
            let x = x_first + k;
            if k > 0 {
                if !ALL_VALID {
                    gn = gn - gn_out[k] + gn_in[k];
                    bn = bn - bn_out[k] + bn_in[k];
                }
                gs = gs - gs_out[k] + gs_in[k];
                bs = bs - bs_out[k] + bs_in[k];
            }
            let i = y * w + x;
            let n = if ALL_VALID {
                // Window areas clipped to the window (only at the scene's edges).
                let cols = |half: usize| ((x + half + 1).min(w) - x.saturating_sub(half)) as u64;
                cols(bx) * b_rows - cols(gx) * g_rows
            } else {
                if !rows.valid(i) {
                    continue;
                }
                (bn - gn) as u64
            };
            if n < min_ring {
                stats.undecided += 1;
                continue;
            }
            stats.tested += 1;
            let (nf, sf) = (n as i64 as f64, (bs - gs).f64());
            let value = rows.value(i);
            // value > μ·γ without the division.
            if value * nf <= sf * gamma {
                continue;
            }
            let mu = sf / nf;
            let threshold = if is_k {
                let q = (background.span(x, bx).2 - guard.span(x, gx).2).f64();
                let ratio = (nf * q) / (sf * sf);
                let excess = ratio / (1.0 + inv_looks) - 1.0;
                let nu = if excess > 0.0 {
                    1.0 / excess
                } else {
                    f64::INFINITY
                };
                let thr = mu * th.k_factor(nu);
                if value <= thr {
                    continue;
                }
                thr
            } else {
                mu * gamma
            };
            hits.push(Hit {
                x: (x + window.x0) as u32,
                y: (y + window.y0) as u32,
                value: value as f32,
                threshold: threshold as f32,
                background: mu as f32,
            });
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
        assert_eq!(
            w,
            Windows {
                target: (3, 3),
                guard: (20, 20),
                background: (50, 50)
            }
        );
        assert_eq!(w.ring_area(), 101 * 101 - 41 * 41);
    }

    #[test]
    fn quantiles() {
        assert!(
            (gaussian_quantile(10f64.powf(-6.5)) - 4.98103).abs() < 1e-4,
            "{}",
            gaussian_quantile(10f64.powf(-6.5))
        );
        assert!((gaussian_quantile(0.025) - 1.95996).abs() < 1e-4);
        // One look: exponential intensity, P(I/μ > x) = e^{-x}.
        assert!((gamma_quantile(1.0, 1e-6) - 1e6f64.ln()).abs() < 1e-6);
        // K tails are heavier than gamma's, and tend to it as ν grows.
        let g = gamma_quantile(4.0, 1e-5);
        assert!(
            (k_ccdf(4.0, 1e4, g) - 1e-5).abs() < 2e-7,
            "{}",
            k_ccdf(4.0, 1e4, g)
        );
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
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
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
        (
            Intensity::U16 {
                samples,
                nodata: Some(0),
            },
            land,
            Window {
                x0: 0,
                y0: 0,
                width: w,
                height: h,
            },
        )
    }

    #[test]
    fn the_target_is_found_and_land_and_nodata_are_left_alone() {
        let (intensity, land, window) = tile();
        let windows = Windows::from_metres(&CfarConfig::default(), (10.0, 10.0));
        for kind in [CfarKind::TwoParameter, CfarKind::Gamma, CfarKind::K] {
            let config = CfarConfig {
                kind,
                ..CfarConfig::default()
            };
            let th = Thresholds::new(&config, &windows);
            let mut hits = Vec::new();
            let stats = detect_tile(
                &intensity,
                Some(&land),
                window,
                window,
                &windows,
                &th,
                &mut hits,
            );
            assert!(!hits.is_empty(), "{kind:?}");
            for h in &hits {
                assert!(
                    (96..=104).contains(&h.x) && (96..=104).contains(&h.y),
                    "{kind:?} {h:?}"
                );
                assert!(
                    h.background > 90.0 && h.background < 110.0,
                    "{kind:?} {h:?}"
                );
            }
            assert!(stats.tested > 10_000 && stats.undecided > 0, "{stats:?}");
            // Without the land mask the bright land raises no alarm either: it is undecided or
            // tested against itself, but never below its own level.
            let mut without = Vec::new();
            detect_tile(
                &intensity,
                None,
                window,
                window,
                &windows,
                &th,
                &mut without,
            );
            assert!(without.iter().all(|h| h.y >= 19), "{kind:?}");
        }
    }

    #[test]
    fn the_all_valid_shortcut_changes_nothing() {
        let (intensity, _, window) = tile();
        let Intensity::U16 { samples, .. } = &intensity else {
            unreachable!()
        };
        let rows = U16Rows {
            width: window.width,
            samples,
            nodata: 65_536,
            land: None,
        };
        assert!(rows.all_valid());
        let core = Window {
            x0: 30,
            y0: 40,
            width: 150,
            height: 120,
        };
        let windows = Windows::from_metres(&CfarConfig::default(), (10.0, 10.0));
        for kind in [CfarKind::Gamma, CfarKind::K, CfarKind::TwoParameter] {
            let th = Thresholds::new(
                &CfarConfig {
                    kind,
                    pfa: 1e-3,
                    ..CfarConfig::default()
                },
                &windows,
            );
            let (mut fast, mut general) = (Vec::new(), Vec::new());
            let (a, b) = if kind == CfarKind::TwoParameter {
                (
                    run_two_parameter::<_, true>(&rows, window, core, &windows, &th, &mut fast),
                    run_two_parameter::<_, false>(&rows, window, core, &windows, &th, &mut general),
                )
            } else {
                (
                    run_quantile::<_, true>(&rows, window, core, &windows, &th, &mut fast),
                    run_quantile::<_, false>(&rows, window, core, &windows, &th, &mut general),
                )
            };
            assert_eq!(a, b);
            assert_eq!(fast, general, "{kind:?}");
            assert!(fast.len() >= 9, "{kind:?}: {}", fast.len());
        }
    }

    #[test]
    fn one_absurd_float_sample_does_not_wreck_the_sums_of_its_column() {
        // Float sea with one corrupt sample: finite but far beyond any intensity. Entering and
        // leaving the f64 column sums it would wipe out everything added in between.
        let (w, h) = (200usize, 200usize);
        let mut seed = 7u64;
        let clean: Vec<f32> = (0..w * h)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                90.0 + (seed >> 59) as f32
            })
            .collect();
        let window = Window {
            x0: 0,
            y0: 0,
            width: w,
            height: h,
        };
        let windows = Windows::from_metres(&CfarConfig::default(), (10.0, 10.0));
        for bad in [1e30f32, 3e38, 1e12, -1e30, -5.0] {
            let mut spiked = clean.clone();
            spiked[5 * w + 100] = bad;
            for kind in [CfarKind::TwoParameter, CfarKind::Gamma, CfarKind::K] {
                let th = Thresholds::new(
                    &CfarConfig {
                        kind,
                        ..CfarConfig::default()
                    },
                    &windows,
                );
                let (mut a, mut b) = (Vec::new(), Vec::new());
                detect_tile(
                    &Intensity::F32(clean.clone()),
                    None,
                    window,
                    window,
                    &windows,
                    &th,
                    &mut a,
                );
                detect_tile(
                    &Intensity::F32(spiked.clone()),
                    None,
                    window,
                    window,
                    &windows,
                    &th,
                    &mut b,
                );
                // At most the sample itself, tested at its own value (smeared over the target
                // window by the two-parameter test).
                let elsewhere = b
                    .iter()
                    .filter(|h| h.x.abs_diff(100) > 3 || h.y.abs_diff(5) > 3)
                    .count();
                assert!(
                    a.is_empty() && elsewhere == 0,
                    "{bad} {kind:?}: {} hits on clean sea, {elsewhere} around the bad sample",
                    a.len()
                );
            }
        }
    }

    #[test]
    fn exact_integer_variance_on_bright_uint16() {
        // Near-saturated samples with a tiny spread: f64 sums of squares would cancel.
        let v = |n: u64, s: u64, q: u64| <u64 as Acc>::n2_var(n, s, q);
        let xs = [65_000u64, 65_001, 65_002, 65_003];
        let (s, q) = (
            xs.iter().sum::<u64>(),
            xs.iter().map(|x| x * x).sum::<u64>(),
        );
        assert_eq!(v(4, s, q), 20.0); // 4² · var, var = 1.25
    }
}
