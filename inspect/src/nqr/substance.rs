//! The substance library: 14N NQR lines and their temperature dependence.
//!
//! Frequencies vary with temperature because lattice vibrations average the electric field
//! gradient; over the range met in screening (roughly 250-330 K) a line is well described by
//! `f(T) = f(T_ref) + c · (T - T_ref)` with a negative coefficient `c`.
//!
//! Sources (values rounded; coefficients are literature-typical magnitudes and must be
//! replaced by the site's own calibration measurements before operational use):
//! - RDX lines (ν+ 5.240/5.192/5.047 MHz, ν- 3.458/3.410/3.359 MHz near room temperature):
//!   Garroway et al., "Remote sensing by nuclear quadrupole resonance", IEEE TGRS 39(6), 2001;
//!   the 5.192 MHz line shifts by about -0.5 kHz/K, as modelled by Jakobsson, Mossberg, Rowe
//!   and Smith, "Exploiting temperature dependency in the detection of NQR signals", IEEE TSP
//!   54(5), 2006. Relaxation: T1 ≈ 13 ms, T2* ≈ 0.7 ms at room temperature (Garroway 2001);
//!   the SLSE effective T2 is of the order of 10-20 ms.
//! - NaNO2 (ν+ ≈ 4.64 MHz, ν- ≈ 3.60 MHz at room temperature), the usual benign calibration
//!   sample; temperature coefficient of order -1 kHz/K (Petersen and Bray, J. Chem. Phys. 64,
//!   1976, measured the temperature dependence).
//! - Urea (ν+ 2.913 MHz, ν- 2.348 MHz, T2* 0.78/0.52 ms; Iselin, NQR of urea, as cited in the
//!   OSTI record "Using nitrogen-14 NQR and electric field gradient information for the study of
//!   radiation effects"); temperature coefficient not modelled (zero).

use serde::{Deserialize, Serialize};

/// What a substance is screened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubstanceRole {
    /// A threat: a detection raises an alert.
    Explosive,
    /// A benign sample used to check the instrument.
    Calibration,
}

/// One NQR line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Line {
    pub label: &'static str,
    /// Frequency at the substance's reference temperature, Hz.
    pub frequency_hz: f64,
    /// df/dT, Hz per kelvin.
    pub temperature_coefficient_hz_per_k: f64,
    /// Amplitude relative to the substance's strongest line (same excitation).
    pub relative_amplitude: f64,
}

impl Line {
    /// Frequency at `temperature_k`, Hz.
    pub fn frequency_at(&self, temperature_k: f64, reference_k: f64) -> f64 {
        self.frequency_hz + self.temperature_coefficient_hz_per_k * (temperature_k - reference_k)
    }
}

/// A substance and its relaxation times.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Substance {
    pub name: &'static str,
    pub role: SubstanceRole,
    pub reference_temperature_k: f64,
    pub lines: &'static [Line],
    /// Echo shape decay (inverse linewidth), s.
    pub t2_star_s: f64,
    /// Decay of echo amplitudes along a spin-locked train, s.
    pub t2_effective_s: f64,
    /// Spin-lattice relaxation, s: trains are repeated no faster than about 5 T1.
    pub t1_s: f64,
}

impl Substance {
    /// Lines whose frequency over `temperatures` stays inside the receiver band around
    /// `carrier_hz` (±`half_band_hz`).
    pub fn lines_in_band(
        &self,
        carrier_hz: f64,
        half_band_hz: f64,
        temperatures: (f64, f64),
    ) -> Vec<Line> {
        self.lines
            .iter()
            .filter(|l| {
                [temperatures.0, temperatures.1].iter().all(|&t| {
                    (l.frequency_at(t, self.reference_temperature_k) - carrier_hz).abs()
                        < half_band_hz
                })
            })
            .copied()
            .collect()
    }
}

const RDX_LINES: &[Line] = &[
    Line {
        label: "RDX nu+ 5.240",
        frequency_hz: 5.2401e6,
        temperature_coefficient_hz_per_k: -470.0,
        relative_amplitude: 0.7,
    },
    Line {
        label: "RDX nu+ 5.192",
        frequency_hz: 5.1920e6,
        temperature_coefficient_hz_per_k: -500.0,
        relative_amplitude: 1.0,
    },
    Line {
        label: "RDX nu+ 5.047",
        frequency_hz: 5.0475e6,
        temperature_coefficient_hz_per_k: -390.0,
        relative_amplitude: 0.8,
    },
    Line {
        label: "RDX nu- 3.458",
        frequency_hz: 3.4589e6,
        temperature_coefficient_hz_per_k: -200.0,
        relative_amplitude: 0.5,
    },
    Line {
        label: "RDX nu- 3.410",
        frequency_hz: 3.4104e6,
        temperature_coefficient_hz_per_k: -200.0,
        relative_amplitude: 0.6,
    },
    Line {
        label: "RDX nu- 3.359",
        frequency_hz: 3.3596e6,
        temperature_coefficient_hz_per_k: -180.0,
        relative_amplitude: 0.5,
    },
];

const NANO2_LINES: &[Line] = &[
    Line {
        label: "NaNO2 nu+ 4.640",
        frequency_hz: 4.640e6,
        temperature_coefficient_hz_per_k: -1000.0,
        relative_amplitude: 1.0,
    },
    Line {
        label: "NaNO2 nu- 3.603",
        frequency_hz: 3.603e6,
        temperature_coefficient_hz_per_k: -700.0,
        relative_amplitude: 0.8,
    },
];

const UREA_LINES: &[Line] = &[
    Line {
        label: "urea nu+ 2.913",
        frequency_hz: 2.91332e6,
        temperature_coefficient_hz_per_k: 0.0,
        relative_amplitude: 1.0,
    },
    Line {
        label: "urea nu- 2.348",
        frequency_hz: 2.34788e6,
        temperature_coefficient_hz_per_k: 0.0,
        relative_amplitude: 0.7,
    },
];

/// The library.
pub const LIBRARY: &[Substance] = &[
    Substance {
        name: "RDX",
        role: SubstanceRole::Explosive,
        reference_temperature_k: 298.0,
        lines: RDX_LINES,
        t2_star_s: 0.7e-3,
        t2_effective_s: 15e-3,
        t1_s: 13e-3,
    },
    Substance {
        name: "NaNO2",
        role: SubstanceRole::Calibration,
        reference_temperature_k: 298.0,
        lines: NANO2_LINES,
        t2_star_s: 0.5e-3,
        t2_effective_s: 20e-3,
        t1_s: 90e-3,
    },
    Substance {
        name: "urea",
        role: SubstanceRole::Calibration,
        reference_temperature_k: 298.0,
        lines: UREA_LINES,
        t2_star_s: 0.78e-3,
        t2_effective_s: 15e-3,
        t1_s: 50e-3,
    },
];

/// Looks a substance up by name (case-insensitive).
pub fn find(name: &str) -> Result<&'static Substance, super::NqrError> {
    LIBRARY
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| super::NqrError::UnknownSubstance(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdx_main_line_moves_down_half_a_kilohertz_per_kelvin() {
        let rdx = find("rdx").unwrap();
        let line = rdx.lines[1];
        let shift = line.frequency_at(308.0, 298.0) - line.frequency_at(298.0, 298.0);
        assert!((shift + 5000.0).abs() < 1e-6);
    }

    #[test]
    fn band_selection_keeps_lines_that_stay_inside() {
        let rdx = find("RDX").unwrap();
        let lines = rdx.lines_in_band(5.192e6, 62_500.0, (268.0, 328.0));
        let labels: Vec<_> = lines.iter().map(|l| l.label).collect();
        assert_eq!(labels, ["RDX nu+ 5.240", "RDX nu+ 5.192"]);
        assert!(find("TNT").is_err());
    }
}
