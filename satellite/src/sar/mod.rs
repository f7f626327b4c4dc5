//! SAR vessel detection: scenes read through GDAL, a land mask, CFAR, and one detection per
//! ship.
//!
//! ```text
//! scene::Scene ─▶ tiles with a halo ─▶ cfar (two-parameter or gamma/K) ─▶ discriminate ─▶ Detection
//!   GeoTIFF,       land + nodata          O(1) per pixel from integral       8-connected clusters,
//!   GCPs, S1        masked                images (exact for uint16)          length, width, heading
//! ```
pub mod acquisition;
pub mod cfar;
pub mod detect;
pub mod discriminate;
pub mod georef;
pub mod quicklook;
pub mod scene;
pub mod score;
pub mod sentinel1;
pub mod synth;

pub use acquisition::{Acquisition, LookSide};
pub use scene::{Intensity, Scene, SceneError, Window};
