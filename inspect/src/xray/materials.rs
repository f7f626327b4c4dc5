//! Mass attenuation coefficients of the material classes the generator and the weight estimate
//! use.
//!
//! Values are μ/ρ (total attenuation with coherent scattering, cm²/g) from the NIST tables of
//! Hubbell & Seltzer, "Tables of X-Ray Mass Attenuation Coefficients and Mass Energy-Absorption
//! Coefficients" (NISTIR 5632, computed with XCOM), at the tabulated energies 0.1-6 MeV.
//! Between tabulated energies we interpolate log-log, as NIST recommends.
//!
//! Each material class stands for a family of goods with a similar effective atomic number:
//! water for organic matter (textiles, food, paper, tobacco, drugs; Z_eff ≈ 7.4), aluminium for
//! inorganic goods (glass, ceramics, stone, light alloys; Z ≈ 13) and iron for steel (Z = 26).
//!
//! A cargo linac's two bands are modelled as monoenergetic at an effective energy (default
//! 1.0 MeV for the low band, 3.0 MeV for the high band, roughly the attenuation-weighted mean
//! energies of filtered 4 MV and 6 MV bremsstrahlung). Beam hardening and scatter are ignored;
//! see the crate README for what that means for the images.

use serde::{Deserialize, Serialize};

/// Material class of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Material {
    /// Organic, low Z (water as the reference composition).
    Organic,
    /// Inorganic / mixed, medium Z (aluminium as the reference).
    Inorganic,
    /// Iron and steel.
    Steel,
}

impl Material {
    pub const ALL: [Material; 3] = [Material::Organic, Material::Inorganic, Material::Steel];

    pub fn index(self) -> usize {
        self as usize
    }

    /// Density of the solid material, g/cm³ (bulk goods use lower densities).
    pub fn solid_density(self) -> f64 {
        match self {
            Material::Organic => 1.0,
            Material::Inorganic => 2.699,
            Material::Steel => 7.874,
        }
    }

    fn table(self) -> &'static [(f64, f64)] {
        match self {
            Material::Organic => WATER,
            Material::Inorganic => ALUMINIUM,
            Material::Steel => IRON,
        }
    }

    /// Mass attenuation coefficient μ/ρ in cm²/g at `energy_mev`, or `None` outside the
    /// tabulated 0.1-6 MeV.
    pub fn mass_attenuation(self, energy_mev: f64) -> Option<f64> {
        interpolate_log_log(self.table(), energy_mev)
    }
}

/// Lowest and highest tabulated energy, MeV.
pub const ENERGY_RANGE_MEV: (f64, f64) = (0.1, 6.0);

// (energy MeV, μ/ρ cm²/g), NISTIR 5632 tables 3 and 4.
const WATER: &[(f64, f64)] = &[
    (0.10, 0.1707),
    (0.15, 0.1505),
    (0.20, 0.1370),
    (0.30, 0.1186),
    (0.50, 0.09687),
    (0.80, 0.07865),
    (1.00, 0.07072),
    (1.25, 0.06323),
    (1.50, 0.05754),
    (2.00, 0.04942),
    (3.00, 0.03969),
    (4.00, 0.03403),
    (5.00, 0.03031),
    (6.00, 0.02770),
];
const ALUMINIUM: &[(f64, f64)] = &[
    (0.10, 0.1704),
    (0.15, 0.1378),
    (0.20, 0.1223),
    (0.30, 0.1042),
    (0.50, 0.08445),
    (0.80, 0.06841),
    (1.00, 0.06146),
    (1.25, 0.05496),
    (1.50, 0.05006),
    (2.00, 0.04324),
    (3.00, 0.03541),
    (4.00, 0.03106),
    (5.00, 0.02836),
    (6.00, 0.02655),
];
const IRON: &[(f64, f64)] = &[
    (0.10, 0.3717),
    (0.15, 0.1964),
    (0.20, 0.1460),
    (0.30, 0.1099),
    (0.50, 0.08414),
    (0.80, 0.06699),
    (1.00, 0.05995),
    (1.25, 0.05350),
    (1.50, 0.04883),
    (2.00, 0.04265),
    (3.00, 0.03621),
    (4.00, 0.03312),
    (5.00, 0.03146),
    (6.00, 0.03057),
];

fn interpolate_log_log(table: &[(f64, f64)], energy: f64) -> Option<f64> {
    if !energy.is_finite() {
        return None;
    }
    let window = table
        .windows(2)
        .find(|w| energy >= w[0].0 && energy <= w[1].0)?;
    let ((e0, m0), (e1, m1)) = (window[0], window[1]);
    let t = (energy.ln() - e0.ln()) / (e1.ln() - e0.ln());
    Some((m0.ln() + t * (m1.ln() - m0.ln())).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabulated_points_are_returned_exactly() {
        assert!((Material::Steel.mass_attenuation(1.0).unwrap() - 0.05995).abs() < 1e-9);
        assert!((Material::Organic.mass_attenuation(3.0).unwrap() - 0.03969).abs() < 1e-9);
    }

    #[test]
    fn interpolation_is_monotone_between_points_and_refuses_outside() {
        let m = Material::Inorganic.mass_attenuation(2.5).unwrap();
        assert!(m < 0.04324 && m > 0.03541);
        assert!(Material::Organic.mass_attenuation(0.05).is_none());
        assert!(Material::Organic.mass_attenuation(9.0).is_none());
    }

    #[test]
    fn low_to_high_ratio_orders_materials_by_atomic_number() {
        // Dual-energy material discrimination rests on this ordering.
        let ratio =
            |m: Material| m.mass_attenuation(1.0).unwrap() / m.mass_attenuation(3.0).unwrap();
        assert!(ratio(Material::Organic) > ratio(Material::Inorganic));
        assert!(ratio(Material::Inorganic) > ratio(Material::Steel));
    }
}
