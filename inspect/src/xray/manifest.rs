//! The cargo manifest a container is declared with.

use super::{TileClass, XrayError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Declared category of goods; decides which tile classes are consistent with the declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Clothing, fabric bales.
    Textiles,
    /// Foodstuffs in cartons.
    Food,
    /// Tiles, sanitary ware, glass, stone.
    Ceramics,
    /// Machines, engine parts, steel products.
    Machinery,
    /// Appliances and electronics: aluminium, steel and plastic together.
    Electronics,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::Textiles,
        Category::Food,
        Category::Ceramics,
        Category::Machinery,
        Category::Electronics,
    ];

    /// Tile classes an image of this category may show without raising a question.
    /// Contraband is never expected. Organic is expected everywhere: pallets, crates and
    /// packing are wood, cardboard and plastic whatever the goods.
    pub fn expected_classes(self) -> &'static [TileClass] {
        use TileClass::*;
        match self {
            Category::Textiles | Category::Food => &[Clear, Organic],
            Category::Ceramics => &[Clear, Organic, Inorganic],
            Category::Machinery => &[Clear, Organic, Metal, Inorganic],
            Category::Electronics => &[Clear, Organic, Inorganic, Metal],
        }
    }

    /// Goods of this category are organic only (no inorganic or metal classes expected), so
    /// any region where dual-energy physics sees steel is something else.
    pub fn organic_only(self) -> bool {
        !self
            .expected_classes()
            .iter()
            .any(|c| matches!(c, TileClass::Inorganic | TileClass::Metal))
    }

    pub fn name(self) -> &'static str {
        match self {
            Category::Textiles => "textiles",
            Category::Food => "food",
            Category::Ceramics => "ceramics",
            Category::Machinery => "machinery",
            Category::Electronics => "electronics",
        }
    }
}

/// The manifest entry for one container (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Container number (ISO 6346), e.g. `"MZGU1234565"`.
    pub container_id: String,
    /// Declared category of goods.
    pub category: Category,
    /// Declared net weight of the goods, kilograms (without the container's tare).
    pub declared_weight_kg: f64,
}

impl Manifest {
    pub fn validate(&self) -> Result<(), XrayError> {
        if self.container_id.trim().is_empty() {
            return Err(XrayError::Invalid {
                what: "manifest",
                message: "container_id is empty".into(),
            });
        }
        if !(self.declared_weight_kg.is_finite() && self.declared_weight_kg >= 0.0) {
            return Err(XrayError::Invalid {
                what: "manifest",
                message: format!(
                    "declared_weight_kg must be zero or positive, got {}",
                    self.declared_weight_kg
                ),
            });
        }
        Ok(())
    }

    /// Parses and validates a manifest from JSON text.
    pub fn from_json(text: &str) -> Result<Self, XrayError> {
        let manifest: Manifest = serde_json::from_str(text).map_err(|e| XrayError::Json {
            what: "manifest",
            path: "<text>".into(),
            message: e.to_string(),
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Self, XrayError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| XrayError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| match e {
            XrayError::Json { what, message, .. } => XrayError::Json {
                what,
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), XrayError> {
        super::scan::write_json(path.as_ref(), self)
    }
}
