//! Inspection at ports and airports, offline on the site's own machine.
//!
//! Two independent subsystems:
//!
//! - [`xray`]: dual-energy container scans (two 16-bit images plus scanner metadata), a
//!   physically grounded scan generator (Beer-Lambert in two energy bands, NIST XCOM mass
//!   attenuation coefficients), per-tile classification with an ONNX model run by tract, a
//!   manifest consistency risk score (category and weight) with reasons, and a heatmap overlay.
//! - [`nqr`]: nitrogen-14 nuclear quadrupole resonance screening: a spin-locked spin-echo (SLSE)
//!   signal model with a substance library, the binary signal file format, and detectors (echo
//!   summation + FFT peak, energy, GLRT over the unknown temperature) with reference-channel
//!   interference cancellation and thresholds calibrated on simulated noise-only runs.
//!
//! The crate is pure: no clock, no network, randomness only from explicit seeds. It never
//! imports `mizugiwa-sync`; the field node turns results into records.
//!
//! ```no_run
//! use mizugiwa_inspect::xray::{self, Model};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let scan = xray::Scan::load("high.png", "low.png", "scanner.json")?;
//! let manifest = xray::Manifest::load("manifest.json")?;
//! let model = Model::load("inspect/models/xray_tiles.onnx")?;
//! let result = model.scan(&scan, &manifest)?;
//! println!("risk {:.2}: {:?}", result.risk.score, result.risk.reasons);
//! xray::render_heatmap(&scan, &result).save("heatmap.png")?;
//! # Ok(()) }
//! ```

pub mod nqr;
pub mod xray;
