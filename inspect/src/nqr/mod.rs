//! Nitrogen-14 NQR screening with spin-locked spin-echo (SLSE) trains.
//!
//! - [`substance`]: the library of lines (RDX, the NaNO2 calibration sample, urea) with their
//!   linear temperature dependence.
//! - [`simulate`]: the signal model: echo trains with T2 decay, coil thermal noise,
//!   piezoelectric ringing, AM broadcast interference seen by the main coil and by a
//!   signal-free reference antenna, sampled at complex baseband.
//! - [`Recording`]: the binary signal file (see `format.rs` and the crate README).
//! - [`detect`]: echo summation + FFT peak, energy and temperature-GLRT detectors with
//!   reference-channel interference cancellation; thresholds from [`Calibration`].

mod detect;
mod format;
mod signal;
pub mod substance;

pub use detect::{
    detect, statistics, Calibration, Decision, DetectorConfig, DetectorKind, DetectorStatistics,
    Screening, TailModel,
};
pub use format::Recording;

/// Noise-only screenings of the standard calibration that the CLI and the site daemon make and
/// cache (the exponential tail fitted above the 90% quantile then holds down to Pfa 1e-3).
/// One definition, so that a calibration cached by one is accepted by the other.
pub const STANDARD_CALIBRATION_RUNS: usize = 600;
/// Seed of the standard calibration's noise-only screenings.
pub const STANDARD_CALIBRATION_SEED: u64 = 1_000;
pub use signal::{simulate, Acquisition, AmCarrier, Ringing, SimulationConfig};
pub use substance::{Line, Substance, SubstanceRole};

/// Everything that can go wrong simulating, reading or screening NQR signals.
#[derive(Debug, thiserror::Error)]
pub enum NqrError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not an NQR signal file: {0}")]
    Format(String),
    #[error(
        "signal file is truncated: {expected} bytes expected from its header, {found} present \
         (was the transfer interrupted?)"
    )]
    Truncated { expected: u64, found: u64 },
    #[error("unknown substance {0:?}; the library has: RDX, NaNO2, urea")]
    UnknownSubstance(String),
    #[error("invalid {what}: {message}")]
    Invalid { what: &'static str, message: String },
    #[error(
        "calibration does not match this recording: {0}; calibrate with the recording's \
         acquisition settings"
    )]
    CalibrationMismatch(String),
}
