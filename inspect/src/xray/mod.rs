//! Dual-energy X-ray scans of containers: loading, generation, tile classification with tract,
//! manifest consistency and heatmaps.
//!
//! A scan is two registered 16-bit grayscale images of transmitted intensity (high and low
//! energy band, counts; brighter = less attenuation) plus [`ScanMeta`]. The image rows span the
//! container's interior height and the columns its length; the beam crosses the container's
//! width (both side walls, whose steel the metadata gives so the weight estimate can remove it).

mod features;
mod generate;
mod heatmap;
mod manifest;
pub mod materials;
mod model;
mod physics;
mod scan;

pub use features::{tile_features, TileGrid, FEATURE_COUNT, TILE_SIZE};
pub use generate::{
    generate, GeneratedScan, GeneratorConfig, GroundTruth, HiddenItem, HiddenKind, PixelBox,
};
pub use heatmap::render_heatmap;
pub use manifest::{Category, Manifest};
pub use model::{
    Model, ReasonKind, Risk, RiskReason, ScanResult, TileResult, COMMITTED_MODEL_ONNX,
    RISK_ALERT_THRESHOLD,
};
pub use physics::{estimate_weight_kg, Contents, MetalRegion, DENSE_METAL_G_CM2};
pub use scan::{Scan, ScanMeta};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a tile shows, as the classifier sees it. The order is the model's output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TileClass {
    /// Nothing but air and the container walls.
    Clear,
    /// Low-Z goods: textiles, food, paper, plastics.
    Organic,
    /// Medium-Z goods: ceramics, glass, stone, aluminium.
    Inorganic,
    /// Iron and steel: machinery, tools, metal blocks.
    Metal,
    /// Stacked cigarette cartons (dense, regular organic texture with foil).
    Cigarettes,
    /// Compressed drug packages (dense organic bricks).
    Drugs,
    /// Firearms (small steel shapes).
    Weapon,
}

impl TileClass {
    /// All classes in model output order.
    pub const ALL: [TileClass; 7] = [
        TileClass::Clear,
        TileClass::Organic,
        TileClass::Inorganic,
        TileClass::Metal,
        TileClass::Cigarettes,
        TileClass::Drugs,
        TileClass::Weapon,
    ];
    /// Number of classes (the model's output width).
    pub const COUNT: usize = 7;

    /// Index in the model output.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Contraband is never legitimate whatever the manifest says.
    pub fn is_contraband(self) -> bool {
        matches!(
            self,
            TileClass::Cigarettes | TileClass::Drugs | TileClass::Weapon
        )
    }

    /// Lower-case name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            TileClass::Clear => "clear",
            TileClass::Organic => "organic",
            TileClass::Inorganic => "inorganic",
            TileClass::Metal => "metal",
            TileClass::Cigarettes => "cigarettes",
            TileClass::Drugs => "drugs",
            TileClass::Weapon => "weapon",
        }
    }
}

/// Everything that can go wrong reading, generating or scanning X-ray data.
#[derive(Debug, thiserror::Error)]
pub enum XrayError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decode image {path}: {message} (expected a 16-bit grayscale PNG or TIFF)")]
    Image { path: PathBuf, message: String },
    #[error(
        "image {path} is {found}, expected 16-bit grayscale (one channel, 16 bits per sample) \
         as written by the scanner"
    )]
    BitDepth { path: PathBuf, found: String },
    #[error(
        "high and low energy images differ in size: high {high_w}x{high_h}, low {low_w}x{low_h}; \
         they must come from the same scan"
    )]
    SizeMismatch {
        high_w: u32,
        high_h: u32,
        low_w: u32,
        low_h: u32,
    },
    #[error("image is {width}x{height}, too small: at least one {tile}x{tile} tile is needed")]
    TooSmall { width: u32, height: u32, tile: u32 },
    #[error("malformed {what} {path}: {message}")]
    Json {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("invalid {what}: {message}")]
    Invalid { what: &'static str, message: String },
    #[error("cannot load model {path}: {message}")]
    ModelLoad { path: PathBuf, message: String },
    #[error("model inference failed: {0}")]
    Inference(String),
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
}
