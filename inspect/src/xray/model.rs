//! Tile classification with tract and the manifest consistency risk score.

use super::physics::{Contents, MetalRegion};
use super::{tile_features, Category, Manifest, Scan, TileClass, XrayError, FEATURE_COUNT};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use tract_onnx::prelude::*;

/// A risk score at or above this raises an alert for the officer.
pub const RISK_ALERT_THRESHOLD: f64 = 0.5;
/// A tile counts as showing something the manifest does not explain when the probability mass
/// outside the declared category's classes reaches this.
const OUTSIDE_TILE_PROBABILITY: f32 = 0.7;
/// Tiles with at least this probability of being clear are not goods.
const CLEAR_TILE_PROBABILITY: f32 = 0.5;
/// Weight deviation |ln(estimated/declared)| at which the weight component reaches 0.5
/// (±42%), and the width of its logistic ramp. The estimate's error on honest generated
/// manifests stays within about ±15% (see tests/xray.rs).
const WEIGHT_DEVIATION_MID: f64 = 0.35;
const WEIGHT_DEVIATION_WIDTH: f64 = 0.06;

/// The tile classifier: an ONNX model (`features[N, 34] -> logits[N, 7]`) run by tract, and
/// the softmax over each tile's 7 logits in Rust.
///
/// The softmax is not in the graph because tract's softmax op is built for wide rows: on
/// `[555, 7]` it took longer than the model's three matrix products together (72 µs of 202 µs
/// per scan; the loop below takes a few µs). See `BENCHMARKS.md`.
///
/// tract optimises best for concrete shapes, so the model is kept as loaded and a plan is
/// built per batch size on first use and cached (a site's scanner always yields the same tile
/// count, so in practice there is one). Clones share the cache; `Model` is `Send + Sync`.
#[derive(Clone)]
pub struct Model {
    source: Arc<InferenceModel>,
    plans: Arc<RwLock<HashMap<usize, Arc<TypedRunnableModel>>>>,
}

/// Batch sizes whose plans are kept; beyond this the cache starts over.
const MAX_CACHED_PLANS: usize = 8;

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").finish_non_exhaustive()
    }
}

/// Class probabilities of one tile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TileResult {
    /// Tile column and row.
    pub tx: u32,
    pub ty: u32,
    /// Probabilities in [`TileClass::ALL`] order.
    pub probabilities: [f32; TileClass::COUNT],
    /// Most probable class.
    pub class: TileClass,
    /// Probability mass on classes the declared category does not explain (contraband
    /// included).
    pub outside_category: f32,
    /// Probability of cigarettes, drugs or a weapon.
    pub contraband: f32,
}

/// Why a scan scored as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonKind {
    /// Tiles look like something the declared category does not contain.
    OutsideCategory,
    /// A tile looks like cigarettes, drugs or a weapon.
    Contraband,
    /// Estimated weight differs from the declared weight.
    WeightMismatch,
    /// Dual-energy physics shows a region of dense metal the declared category does not
    /// contain.
    DenseMetal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskReason {
    pub kind: ReasonKind,
    /// This component's contribution, 0..1.
    pub score: f64,
    /// For the officer, e.g. "4 tiles look like metal, which textiles do not contain".
    pub message: String,
}

/// Manifest consistency risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// 0..1: `1 - Π(1 - component)` over the reasons' components.
    pub score: f64,
    /// `score >= RISK_ALERT_THRESHOLD`.
    pub alert: bool,
    /// Fraction of the probability mass of goods tiles outside the declared category.
    pub outside_mass_fraction: f64,
    /// Goods tiles whose outside-category probability is at least 0.7.
    pub outside_tiles: u32,
    /// Highest contraband probability of any tile.
    pub max_contraband: f64,
    /// Every component worth mentioning (≥ 0.05), highest first.
    pub reasons: Vec<RiskReason>,
}

/// Everything a scan produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanResult {
    pub scanner_id: String,
    pub container_id: String,
    pub declared_category: Category,
    pub tile_size: u32,
    pub tiles_x: u32,
    pub tiles_y: u32,
    /// Row-major.
    pub tiles: Vec<TileResult>,
    pub declared_weight_kg: f64,
    pub estimated_weight_kg: f64,
    /// Area of the largest region of dense metal (dual-energy physics, not the classifier),
    /// cm²; 0 when there is none.
    #[serde(default)]
    pub dense_metal_cm2: f64,
    pub risk: Risk,
}

/// The committed tile classifier (`inspect/models/xray_tiles.onnx`), embedded so that
/// binaries do not depend on finding the file at run time.
pub const COMMITTED_MODEL_ONNX: &[u8] = include_bytes!("../../models/xray_tiles.onnx");

impl Model {
    /// The committed tile classifier, from the bytes embedded in this crate.
    pub fn committed() -> Result<Self, XrayError> {
        Self::from_bytes(COMMITTED_MODEL_ONNX)
    }

    /// Loads an ONNX tile classifier and checks its input and output widths.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, XrayError> {
        let path = path.as_ref();
        let load_error = |message: String| XrayError::ModelLoad {
            path: path.to_path_buf(),
            message,
        };
        if !path.exists() {
            return Err(load_error(
                "file not found (the committed model is inspect/models/xray_tiles.onnx)".into(),
            ));
        }
        let source = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|e| load_error(format!("{e:#}")))?;
        Self::checked(source).map_err(load_error)
    }

    /// Loads an ONNX tile classifier from its bytes (e.g. a model embedded in a binary with
    /// `include_bytes!`) and checks its input and output widths like [`Model::load`]. Errors
    /// name the model `<embedded>`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, XrayError> {
        let load_error = |message: String| XrayError::ModelLoad {
            path: "<embedded>".into(),
            message,
        };
        let source = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(|e| load_error(format!("{e:#}")))?;
        Self::checked(source).map_err(load_error)
    }

    /// Wraps a parsed graph and probes it with one row of features.
    fn checked(source: InferenceModel) -> Result<Self, String> {
        let model = Model {
            source: Arc::new(source),
            plans: Arc::new(RwLock::new(HashMap::new())),
        };
        // One zero row checks the shapes end to end (`logits` refuses an output that is not
        // one value per class).
        model.logits(&[0.0; FEATURE_COUNT], 1).map_err(|e| {
            format!(
                "is not a tile classifier taking {FEATURE_COUNT} features and giving {} \
                 classes per tile: {e}",
                TileClass::COUNT
            )
        })?;
        Ok(model)
    }

    /// Runs the model on `rows` tiles of features (`rows * FEATURE_COUNT` values); returns
    /// `rows * TileClass::COUNT` class probabilities (the softmax of [`Model::logits`]).
    pub fn predict(&self, features: &[f32], rows: usize) -> Result<Vec<f32>, XrayError> {
        let mut values = self.logits(features, rows)?;
        softmax_rows(&mut values, TileClass::COUNT);
        Ok(values)
    }

    /// The model's own output: `rows * TileClass::COUNT` logits.
    pub fn logits(&self, features: &[f32], rows: usize) -> Result<Vec<f32>, XrayError> {
        if features.len() != rows * FEATURE_COUNT {
            return Err(XrayError::Inference(format!(
                "{} feature values for {rows} tiles, expected {}",
                features.len(),
                rows * FEATURE_COUNT
            )));
        }
        let input = Tensor::from_shape(&[rows, FEATURE_COUNT], features)
            .map_err(|e| XrayError::Inference(format!("{e:#}")))?;
        let outputs = self
            .plan(rows)?
            .run(tvec!(input.into()))
            .map_err(|e| XrayError::Inference(format!("{e:#}")))?;
        let view = outputs[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| XrayError::Inference(format!("{e:#}")))?;
        // Contiguous in practice: one copy.
        let values = view
            .as_slice()
            .map_or_else(|| view.iter().copied().collect(), <[f32]>::to_vec);
        if values.len() != rows * TileClass::COUNT {
            return Err(XrayError::Inference(format!(
                "model returned {} values for {rows} tiles",
                values.len()
            )));
        }
        Ok(values)
    }

    fn plan(&self, rows: usize) -> Result<Arc<TypedRunnableModel>, XrayError> {
        if let Some(plan) = self.plans.read().ok().and_then(|p| p.get(&rows).cloned()) {
            return Ok(plan);
        }
        let plan = self
            .source
            .as_ref()
            .clone()
            .with_input_fact(0, f32::fact([rows, FEATURE_COUNT]).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| XrayError::Inference(format!("{e:#}")))?;
        if let Ok(mut plans) = self.plans.write() {
            if plans.len() >= MAX_CACHED_PLANS {
                plans.clear();
            }
            plans.insert(rows, plan.clone());
        }
        Ok(plan)
    }

    /// Classifies every tile and scores the scan against its manifest.
    pub fn scan(&self, scan: &Scan, manifest: &Manifest) -> Result<ScanResult, XrayError> {
        manifest.validate()?;
        let (grid, features) = tile_features(scan);
        let probabilities = self.predict(&features, grid.len())?;
        let expected = manifest.category.expected_classes();
        let tiles: Vec<TileResult> = probabilities
            .chunks_exact(TileClass::COUNT)
            .enumerate()
            .map(|(i, p)| {
                let mut probs = [0f32; TileClass::COUNT];
                probs.copy_from_slice(p);
                let class = TileClass::ALL
                    .into_iter()
                    .max_by(|a, b| probs[a.index()].total_cmp(&probs[b.index()]))
                    .unwrap_or(TileClass::Clear);
                let outside = TileClass::ALL
                    .into_iter()
                    .filter(|c| !expected.contains(c))
                    .map(|c| probs[c.index()])
                    .sum();
                let contraband = TileClass::ALL
                    .into_iter()
                    .filter(|c| c.is_contraband())
                    .map(|c| probs[c.index()])
                    .sum();
                TileResult {
                    tx: (i % grid.tiles_x) as u32,
                    ty: (i / grid.tiles_x) as u32,
                    probabilities: probs,
                    class,
                    outside_category: outside,
                    contraband,
                }
            })
            .collect();
        let contents = Contents::of(scan)?;
        let estimated_weight_kg = contents.weight_kg();
        let metal = contents.largest_metal_region();
        let risk = assess(&tiles, manifest, estimated_weight_kg, metal);
        Ok(ScanResult {
            scanner_id: scan.meta.scanner_id.clone(),
            container_id: manifest.container_id.clone(),
            declared_category: manifest.category,
            tile_size: super::TILE_SIZE as u32,
            tiles_x: grid.tiles_x as u32,
            tiles_y: grid.tiles_y as u32,
            tiles,
            declared_weight_kg: manifest.declared_weight_kg,
            estimated_weight_kg,
            dense_metal_cm2: metal.map_or(0.0, |m| m.area_cm2),
            risk,
        })
    }
}

/// Numerically stable softmax over each row of `width` values: `exp(x - max) / Σ exp(x - max)`.
///
/// All rows' exponentials are taken in one pass with [`exp_nonpositive`] so that the loop
/// vectorises; libm's `expf`, called 7 times per tile, cost more than the model's matrix
/// products (38 µs a scan).
fn softmax_rows(values: &mut [f32], width: usize) {
    for row in values.chunks_exact_mut(width) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        row.iter_mut().for_each(|v| *v -= max);
    }
    values.iter_mut().for_each(|v| *v = exp_nonpositive(*v));
    for row in values.chunks_exact_mut(width) {
        let scale = 1.0 / row.iter().sum::<f32>();
        row.iter_mut().for_each(|v| *v *= scale);
    }
}

/// `e^x` for `x <= 0` (NaN gives NaN), relative error below 3e-7 (tested against `f64::exp`):
/// `x = n ln 2 + r` with `|r| <= ln 2 / 2`, `e^r` by a degree-7 polynomial, `2^n` written into the exponent bits. Below -87 the result flushes
/// to 0 (the smallest normal f32 is e^-87.3).
#[inline]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that `n * LN2_HI` is exact for the n that occur here.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let flushed = x < -87.0;
    let x = if flushed { -87.0 } else { x }; // NaN stays NaN
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Cephes' expf minimax polynomial for e^r - 1 - r on |r| <= ln 2 / 2, evaluated as two
    // shorter chains (Estrin) so that consecutive elements overlap in the pipeline. (Cephes'
    // first coefficient, 5.0000001e-1, is 0.5 once rounded to f32.)
    let r2 = r * r;
    let low = 0.5 + r * 1.666_666_5e-1 + r2 * (4.166_579_6e-2 + r * 8.333_452e-3);
    let high = 1.398_2e-3 + r * 1.987_569_2e-4;
    let p = 1.0 + r + r2 * (low + r2 * r2 * high);
    // 2^n: n + 127 (the biased exponent, 40..=127 here) lands in the low mantissa bits of
    // `n + 127 + 2^23`, and the shift moves it into the exponent field (the bits of 2^23
    // itself are shifted out). No float-to-int conversion, so the loop vectorises.
    let scale = f32::from_bits((n + (127.0 + 8_388_608.0)).to_bits() << 23);
    if flushed {
        0.0
    } else {
        p * scale
    }
}

/// Scan-level contraband evidence is the most suspicious tile's contraband log-odds; at this
/// value the contraband component reaches 0.5 and alerts on its own. Calibrated with
/// `cargo run --release -p mizugiwa-inspect --example xray_calibrate` on honest containers
/// (seeds 7,000,000..): about 3% of 400 clean containers reach it, 82% of 300 hiding cigarettes,
/// drugs or a weapon (a scan has 555 tiles, so a per-tile threshold alone flagged 78% of clean
/// containers with the model before this one).
const CONTRABAND_ALERT_LOGIT: f64 = 3.2;
/// Log-odds over which the contraband component goes from 0.27 to 0.73 (±1 width around the
/// alert point); 1.5 log-odds below the alert point it falls under 0.05 and is not mentioned.
const CONTRABAND_LOGIT_WIDTH: f64 = 0.5;
/// Outside-category tiles at which that component reaches 0.5: one stray tile is common on
/// clean containers (a dense food carton read as inorganic goods), two make a ~30 cm object
/// (same calibration run: 3% of clean containers show two or more, 55% of containers hiding a
/// metal block; most of the rest are declared as machinery or electronics, where metal is
/// expected). With both components, 6% of those clean containers alert.
const OUTSIDE_TILES_ALERT: f64 = 1.5;
const OUTSIDE_TILES_WIDTH: f64 = 0.5;

/// Dense metal area at which that component reaches 0.5, and the width of its ramp, cm². Same
/// calibration run, containers declaring textiles or food: the largest region in 168 clean
/// ones was 127 cm² (95% under 69 cm²), in 35 hiding a steel block 192..1580 cm² (median 852).
const DENSE_METAL_ALERT_CM2: f64 = 160.0;
const DENSE_METAL_WIDTH_CM2: f64 = 10.0;

/// Dense metal component of the risk, for categories of organic goods only.
fn dense_metal_component(area_cm2: f64) -> f64 {
    logistic((area_cm2 - DENSE_METAL_ALERT_CM2) / DENSE_METAL_WIDTH_CM2)
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Contraband component of the risk from the most suspicious tile's probability.
fn contraband_component(max_contraband: f64) -> f64 {
    let p = max_contraband.clamp(1e-9, 1.0 - 1e-9);
    logistic(((p / (1.0 - p)).ln() - CONTRABAND_ALERT_LOGIT) / CONTRABAND_LOGIT_WIDTH)
}

/// Outside-category component of the risk from the number of goods tiles that show what the
/// declared category does not contain.
fn outside_component(tiles: usize) -> f64 {
    if tiles == 0 {
        return 0.0;
    }
    logistic((tiles as f64 - OUTSIDE_TILES_ALERT) / OUTSIDE_TILES_WIDTH)
}

fn assess(
    tiles: &[TileResult],
    manifest: &Manifest,
    estimated_kg: f64,
    metal: Option<MetalRegion>,
) -> Risk {
    let category = manifest.category;
    let goods: Vec<&TileResult> = tiles
        .iter()
        .filter(|t| t.probabilities[TileClass::Clear.index()] < CLEAR_TILE_PROBABILITY)
        .collect();
    let outside_mass_fraction = if goods.is_empty() {
        0.0
    } else {
        goods
            .iter()
            .map(|t| f64::from(t.outside_category))
            .sum::<f64>()
            / goods.len() as f64
    };
    let outside: Vec<&&TileResult> = goods
        .iter()
        .filter(|t| t.outside_category >= OUTSIDE_TILE_PROBABILITY && !t.class.is_contraband())
        .collect();
    let mut reasons = Vec::new();

    let outside_score = outside_component(outside.len());
    if !outside.is_empty() {
        let mut by_class: Vec<(TileClass, usize)> = Vec::new();
        for t in &outside {
            match by_class.iter_mut().find(|(c, _)| *c == t.class) {
                Some((_, n)) => *n += 1,
                None => by_class.push((t.class, 1)),
            }
        }
        by_class.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let what: Vec<String> = by_class
            .iter()
            .map(|(c, n)| format!("{n} look like {}", c.name()))
            .collect();
        reasons.push(RiskReason {
            kind: ReasonKind::OutsideCategory,
            score: outside_score,
            message: format!(
                "{} tiles show goods that {} does not explain ({}); {:.0}% of the goods' \
                 probability mass lies outside the declared category",
                outside.len(),
                category.name(),
                what.join(", "),
                outside_mass_fraction * 100.0
            ),
        });
    }

    let worst = tiles
        .iter()
        .max_by(|a, b| a.contraband.total_cmp(&b.contraband));
    let max_contraband = worst.map_or(0.0, |t| f64::from(t.contraband));
    let contraband_score = contraband_component(max_contraband);
    if let Some(t) = worst.filter(|_| contraband_score >= 0.05) {
        let kind = [TileClass::Cigarettes, TileClass::Drugs, TileClass::Weapon]
            .into_iter()
            .max_by(|a, b| t.probabilities[a.index()].total_cmp(&t.probabilities[b.index()]))
            .unwrap_or(TileClass::Drugs);
        reasons.push(RiskReason {
            kind: ReasonKind::Contraband,
            score: contraband_score,
            message: format!(
                "tile at column {} row {} looks like {} (contraband probability {:.2})",
                t.tx,
                t.ty,
                kind.name(),
                t.contraband
            ),
        });
    }

    let declared = manifest.declared_weight_kg;
    let deviation = ((estimated_kg + 1.0) / (declared + 1.0)).ln();
    let weight_score =
        1.0 / (1.0 + (-(deviation.abs() - WEIGHT_DEVIATION_MID) / WEIGHT_DEVIATION_WIDTH).exp());
    if weight_score >= 0.05 {
        reasons.push(RiskReason {
            kind: ReasonKind::WeightMismatch,
            score: weight_score,
            message: format!(
                "estimated net weight {:.0} kg against {:.0} kg declared ({:+.0}%)",
                estimated_kg,
                declared,
                (estimated_kg / declared.max(1.0) - 1.0) * 100.0
            ),
        });
    }

    // Inorganic goods (ceramics, aluminium) lie between organic and steel in the dual-energy
    // ratio, so the physics check speaks only for organic-only categories.
    let metal_score = match metal {
        Some(region) if category.organic_only() => {
            let score = dense_metal_component(region.area_cm2);
            let (x0, y0, x1, y1) = region.bbox;
            reasons.push(RiskReason {
                kind: ReasonKind::DenseMetal,
                score,
                message: format!(
                    "{:.0} cm² of dense metal (steel-like dual-energy ratio, at least {:.1} cm of \
                     steel along the beam) at pixels x {x0}..{x1}, y {y0}..{y1}, which {} does \
                     not contain",
                    region.area_cm2,
                    f64::from(super::DENSE_METAL_G_CM2)
                        / super::materials::Material::Steel.solid_density(),
                    category.name()
                ),
            });
            score
        }
        _ => 0.0,
    };
    let score = 1.0
        - (1.0 - outside_score)
            * (1.0 - contraband_score)
            * (1.0 - weight_score)
            * (1.0 - metal_score);
    reasons.retain(|r| r.score >= 0.05);
    reasons.sort_by(|a, b| b.score.total_cmp(&a.score));
    Risk {
        score,
        alert: score >= RISK_ALERT_THRESHOLD,
        outside_mass_fraction,
        outside_tiles: outside.len() as u32,
        max_contraband,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_for_large_logits() {
        let mut rows = [
            1000.0, 999.0, -1000.0, 0.0, 0.0, 0.0, 0.0, //
            0.5, -0.25, 3.0, 2.0, -7.0, 0.0, 1.0,
        ];
        let second: Vec<f64> = rows[7..].iter().map(|&v| f64::from(v)).collect();
        softmax_rows(&mut rows, 7);
        let e = (-1f32).exp();
        assert!((rows[0] - 1.0 / (1.0 + e)).abs() < 1e-6, "{rows:?}");
        assert!((rows[1] - e / (1.0 + e)).abs() < 1e-6, "{rows:?}");
        assert_eq!(rows[2], 0.0);
        let max = second.iter().copied().fold(f64::MIN, f64::max);
        let sum: f64 = second.iter().map(|v| (v - max).exp()).sum();
        for (got, v) in rows[7..].iter().zip(&second) {
            let want = (v - max).exp() / sum;
            assert!((f64::from(*got) - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn exp_matches_f64_exp_to_3e_7_relative() {
        let mut worst = 0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let want = f64::from(x).exp();
            let got = f64::from(exp_nonpositive(x));
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 3e-7, "worst relative error {worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-100.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }

    #[test]
    fn the_embedded_model_loads_and_junk_bytes_are_refused() {
        let model = Model::committed().unwrap();
        let p = model.predict(&[0.0; FEATURE_COUNT * 2], 2).unwrap();
        assert_eq!(p.len(), 2 * TileClass::COUNT);
        for row in p.chunks_exact(TileClass::COUNT) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
            assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)), "{row:?}");
        }
        let err = Model::from_bytes(b"not an onnx model").unwrap_err();
        assert!(matches!(err, XrayError::ModelLoad { .. }), "{err}");
        assert!(err.to_string().contains("<embedded>"), "{err}");
    }
}
