//! Tile classification with tract and the manifest consistency risk score.

use super::materials::Material;
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

/// The tile classifier: an ONNX model (`features[N, 34] -> probabilities[N, 7]`) run by tract.
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
        // One zero row checks the shapes end to end.
        let probe = model
            .predict(&[0.0; FEATURE_COUNT], 1)
            .map_err(|e| format!("does not take {FEATURE_COUNT} features per tile: {e}"))?;
        if probe.len() != TileClass::COUNT {
            return Err(format!(
                "outputs {} values per tile, expected {} classes",
                probe.len(),
                TileClass::COUNT
            ));
        }
        Ok(model)
    }

    /// Runs the model on `rows` tiles of features (`rows * FEATURE_COUNT` values); returns
    /// `rows * TileClass::COUNT` probabilities.
    pub fn predict(&self, features: &[f32], rows: usize) -> Result<Vec<f32>, XrayError> {
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
        if view.len() != rows * TileClass::COUNT {
            return Err(XrayError::Inference(format!(
                "model returned {} values for {rows} tiles",
                view.len()
            )));
        }
        Ok(view.iter().copied().collect())
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
        let estimated_weight_kg = estimate_weight_kg(scan)?;
        let risk = assess(&tiles, manifest, estimated_weight_kg);
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
            risk,
        })
    }
}

/// Net weight of the contents from attenuation, kg.
///
/// Per pixel, mass thickness `m = (A_high - A_walls) / (μ/ρ)_high` where `(μ/ρ)_high` is
/// interpolated between organic and steel by the pixel's low/high ratio (the ratio says which
/// material dominates; in the high band the two differ by only ~9%, so a wrong guess costs
/// little). Summed over the image and multiplied by the pixel area. Pixels the beam did not
/// penetrate (≤ 2 counts) contribute what their last measurable value says: a lower bound.
pub fn estimate_weight_kg(scan: &Scan) -> Result<f64, XrayError> {
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
    let mut grams_per_cm2 = 0f64;
    for (&h, &l) in high.iter().zip(&low) {
        let content_high = f64::from(h) - walls_high;
        if content_high <= 0.0 {
            continue;
        }
        let content_low = (f64::from(l) - walls_low).max(0.0);
        let ratio = content_low / content_high;
        let steel_share = ((ratio_org - ratio) / (ratio_org - ratio_steel)).clamp(0.0, 1.0);
        let mu_high = high_org + steel_share * (high_steel - high_org);
        grams_per_cm2 += content_high / mu_high;
    }
    let pixel_cm = meta.pixel_pitch_mm / 10.0;
    Ok(grams_per_cm2 * pixel_cm * pixel_cm / 1000.0)
}

/// Risk from the most suspicious tile. Single tiles of honest cargo reach contraband
/// probabilities around 0.5 now and then (held-out scans, see BENCHMARKS.md), so the component
/// starts at 0.5 and reaches 1 at 0.9.
fn contraband_component(max_contraband: f64) -> f64 {
    ((max_contraband - CONTRABAND_FLOOR) / (0.9 - CONTRABAND_FLOOR)).clamp(0.0, 1.0)
}

/// Contraband probability below which a single tile adds no risk.
const CONTRABAND_FLOOR: f64 = 0.5;

fn assess(tiles: &[TileResult], manifest: &Manifest, estimated_kg: f64) -> Risk {
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

    // Undeclared material: two adjacent tiles already make a 30 cm object.
    let outside_score = 1.0 - (-(outside.len() as f64) / 2.0).exp();
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
    if let Some(t) = worst.filter(|t| f64::from(t.contraband) > CONTRABAND_FLOOR) {
        let kind = [TileClass::Cigarettes, TileClass::Drugs, TileClass::Weapon]
            .into_iter()
            .max_by(|a, b| t.probabilities[a.index()].total_cmp(&t.probabilities[b.index()]))
            .unwrap_or(TileClass::Drugs);
        reasons.push(RiskReason {
            kind: ReasonKind::Contraband,
            score: 0.0, // set below
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

    let contraband_score = contraband_component(max_contraband);
    if let Some(r) = reasons
        .iter_mut()
        .find(|r| r.kind == ReasonKind::Contraband)
    {
        r.score = contraband_score;
    }
    let score = 1.0 - (1.0 - outside_score) * (1.0 - contraband_score) * (1.0 - weight_score);
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
    fn the_embedded_model_loads_and_junk_bytes_are_refused() {
        let model = Model::committed().unwrap();
        let p = model.predict(&[0.0; FEATURE_COUNT * 2], 2).unwrap();
        assert_eq!(p.len(), 2 * TileClass::COUNT);
        let err = Model::from_bytes(b"not an onnx model").unwrap_err();
        assert!(matches!(err, XrayError::ModelLoad { .. }), "{err}");
        assert!(err.to_string().contains("<embedded>"), "{err}");
    }
}
