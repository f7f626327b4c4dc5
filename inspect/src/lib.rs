//! Inspection: dual-energy X-ray inference with tract and manifest consistency, and NQR
//! screening (echo-train signal model and detectors).
//!
//! Not built yet: see issue 7. Never imports `mizugiwa-sync`.
