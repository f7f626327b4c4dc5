//! The SLSE signal model at complex baseband.
//!
//! A screening repeats `trains` spin-locked spin-echo trains every `repetition_time_s`. Each
//! train has `echoes_per_train` echoes `echo_spacing_s` apart; the receiver records
//! `samples_per_echo` complex samples at `sample_rate_hz` centred on each echo, mixed down
//! from `carrier_hz`. For a line at `f(T)` the echo is
//!
//! `s[n, m] = A · w_l · exp(-(n+1)·τ/T2eff) · exp(-|t_m|/T2*) · exp(j(2π (f(T) - f_c) t_m + φ_l))`
//!
//! with `t_m` the time from the echo centre: the echo refocuses at its centre, so the phase
//! there is the same in every echo and every train (coherent summation works), and the
//! off-resonance shows as a frequency inside the window.
//!
//! Around it: coil thermal noise (circular complex Gaussian, variance σ² per sample),
//! piezoelectric ringing (a damped oscillation after every pulse, the same in every echo and
//! not decaying with T2, at the start of each window), and AM broadcast carriers (continuous in
//! absolute time, amplitude-modulated by audio tones) that reach the main coil and, with a
//! different complex coupling per transmitter, the reference antenna, which sees no NQR signal
//! and has its own thermal noise.

use super::substance::{self, Substance};
use super::NqrError;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rustfft::num_complex::Complex32;
use serde::{Deserialize, Serialize};
use std::f64::consts::TAU;

/// How the spectrometer acquired a screening (stored in the signal file header).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Acquisition {
    pub carrier_hz: f64,
    pub sample_rate_hz: f64,
    pub echo_spacing_s: f64,
    pub repetition_time_s: f64,
    pub trains: u32,
    pub echoes_per_train: u32,
    pub samples_per_echo: u32,
}

/// Upper bound on samples per channel a file may declare (1 GiB of complex f32 per channel).
pub(crate) const MAX_SAMPLES_PER_CHANNEL: u64 = 1 << 27;

impl Acquisition {
    /// The default RDX screening: carrier on the 5.192 MHz line, ±62.5 kHz band, 4 trains of
    /// 32 echoes 1.5 ms apart, 128 samples (1.02 ms) per echo, a train every 100 ms (≥ 5 T1).
    pub fn rdx_default() -> Self {
        Acquisition {
            carrier_hz: 5.192e6,
            sample_rate_hz: 125e3,
            echo_spacing_s: 1.5e-3,
            repetition_time_s: 0.1,
            trains: 4,
            echoes_per_train: 32,
            samples_per_echo: 128,
        }
    }

    pub fn validate(&self) -> Result<(), NqrError> {
        let invalid = |message: String| NqrError::Invalid {
            what: "acquisition",
            message,
        };
        for (name, v) in [
            ("carrier_hz", self.carrier_hz),
            ("sample_rate_hz", self.sample_rate_hz),
            ("echo_spacing_s", self.echo_spacing_s),
            ("repetition_time_s", self.repetition_time_s),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(format!("{name} must be positive, got {v}")));
            }
        }
        if self.trains == 0 || self.echoes_per_train < 2 || self.samples_per_echo < 16 {
            return Err(invalid(format!(
                "need at least 1 train, 2 echoes and 16 samples per echo, got {} trains, {} \
                 echoes, {} samples",
                self.trains, self.echoes_per_train, self.samples_per_echo
            )));
        }
        if self.samples_per_channel() > MAX_SAMPLES_PER_CHANNEL {
            return Err(invalid(format!(
                "{} samples per channel exceeds the limit of {MAX_SAMPLES_PER_CHANNEL}",
                self.samples_per_channel()
            )));
        }
        let window = f64::from(self.samples_per_echo) / self.sample_rate_hz;
        if window > self.echo_spacing_s {
            return Err(invalid(format!(
                "echo window {window:.2e} s is longer than the echo spacing {:.2e} s",
                self.echo_spacing_s
            )));
        }
        Ok(())
    }

    pub fn echoes(&self) -> usize {
        self.trains as usize * self.echoes_per_train as usize
    }

    pub fn samples_per_channel(&self) -> u64 {
        u64::from(self.trains) * u64::from(self.echoes_per_train) * u64::from(self.samples_per_echo)
    }

    /// Time the screening occupies the instrument, s.
    pub fn measurement_time_s(&self) -> f64 {
        f64::from(self.trains) * self.repetition_time_s
    }

    /// Time of sample `m` from its echo centre, s.
    pub fn time_from_echo_centre(&self, m: usize) -> f64 {
        (m as f64 - f64::from(self.samples_per_echo) / 2.0) / self.sample_rate_hz
    }
}

/// Piezoelectric (or magnetoacoustic) ringing after each pulse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ringing {
    /// Initial amplitude relative to the noise standard deviation, dB.
    pub amplitude_db: f64,
    /// Decay time constant, s.
    pub decay_s: f64,
    /// Offset of the ringing from the carrier, Hz.
    pub offset_hz: f64,
}

/// One AM broadcast transmitter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AmCarrier {
    /// Offset from the spectrometer carrier, Hz.
    pub offset_hz: f64,
    /// Carrier amplitude in the main coil relative to the noise standard deviation, dB.
    pub inr_db: f64,
    /// Modulation index (0..1).
    pub modulation_index: f64,
    /// Two audio tones modulating the carrier, Hz.
    pub audio_hz: [f64; 2],
    /// Coupling into the reference antenna relative to the main coil: magnitude, phase (rad).
    pub reference_gain: f64,
    pub reference_phase: f64,
}

impl AmCarrier {
    /// `count` transmitters at random offsets in the band, at least
    /// [`AmCarrier::MIN_SPACING_HZ`] apart (broadcast channels sit on a 9 or 10 kHz raster; one
    /// lands within 10 kHz of the carrier, where the lines are), random modulation and
    /// reference couplings of 1.5-3×. Fewer are returned if the band cannot hold `count`.
    pub fn random_set(
        count: usize,
        acquisition: &Acquisition,
        inr_db: f64,
        seed: u64,
    ) -> Vec<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let half = acquisition.sample_rate_hz * 0.45;
        let mut offsets: Vec<f64> = Vec::new();
        for k in 0..count {
            for _attempt in 0..1000 {
                let f = if k == 0 {
                    rng.random_range(-10e3..10e3)
                } else {
                    rng.random_range(-half..half)
                };
                if offsets
                    .iter()
                    .all(|o| (o - f).abs() >= Self::MIN_SPACING_HZ)
                {
                    offsets.push(f);
                    break;
                }
            }
        }
        offsets
            .into_iter()
            .map(|offset_hz| AmCarrier {
                offset_hz,
                inr_db: inr_db + rng.random_range(-3.0..3.0),
                modulation_index: rng.random_range(0.3..0.8),
                audio_hz: [
                    rng.random_range(200.0..1500.0),
                    rng.random_range(1500.0..4500.0),
                ],
                reference_gain: rng.random_range(1.5..3.0),
                reference_phase: rng.random_range(0.0..TAU),
            })
            .collect()
    }

    /// Closest spacing of transmitters in [`AmCarrier::random_set`], Hz.
    pub const MIN_SPACING_HZ: f64 = 10e3;
}

/// One simulated screening.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationConfig {
    pub acquisition: Acquisition,
    /// Substance present, or `None` for a clean item.
    pub substance: Option<&'static Substance>,
    /// Sample temperature, K.
    pub temperature_k: f64,
    /// Peak amplitude of the strongest in-band line in the first echo over the noise standard
    /// deviation per complex sample, dB ("SNR per echo").
    pub snr_per_echo_db: f64,
    /// Noise standard deviation per complex sample (both channels).
    pub noise_sigma: f64,
    pub ringing: Option<Ringing>,
    pub interference: Vec<AmCarrier>,
    /// Record the reference antenna as a second channel.
    pub reference_channel: bool,
    pub seed: u64,
}

impl SimulationConfig {
    /// RDX at 298 K with the default acquisition, mild ringing, no interference, reference
    /// channel on.
    pub fn rdx(snr_per_echo_db: f64, seed: u64) -> Self {
        SimulationConfig {
            acquisition: Acquisition::rdx_default(),
            substance: substance::find("RDX").ok(),
            temperature_k: 298.0,
            snr_per_echo_db,
            noise_sigma: 1.0,
            ringing: Some(Ringing {
                amplitude_db: 20.0,
                decay_s: 15e-6,
                offset_hz: 8e3,
            }),
            interference: Vec::new(),
            reference_channel: true,
            seed,
        }
    }

    /// The same without any substance.
    pub fn noise_only(seed: u64) -> Self {
        SimulationConfig {
            substance: None,
            ..SimulationConfig::rdx(0.0, seed)
        }
    }
}

/// Simulates a screening.
pub fn simulate(config: &SimulationConfig) -> Result<super::Recording, NqrError> {
    let acq = config.acquisition;
    acq.validate()?;
    if !(config.noise_sigma.is_finite() && config.noise_sigma >= 0.0) {
        return Err(NqrError::Invalid {
            what: "simulation",
            message: "noise_sigma must be zero or positive".into(),
        });
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let (trains, echoes, samples) = (
        acq.trains as usize,
        acq.echoes_per_train as usize,
        acq.samples_per_echo as usize,
    );
    let total = trains * echoes * samples;
    let sigma = config.noise_sigma;
    // Circular complex Gaussian: each component has variance σ²/2.
    let component = sigma / std::f64::consts::SQRT_2;
    let gaussian = |rng: &mut StdRng| -> (f64, f64) {
        let re: f64 = StandardNormal.sample(rng);
        let im: f64 = StandardNormal.sample(rng);
        (re * component, im * component)
    };

    // Precomputed per-sample echo shape for each line: the echo is the same in every echo up
    // to the train decay factor.
    let mut echo_shape = vec![(0f64, 0f64); samples];
    if let Some(substance) = config.substance {
        let half_band = acq.sample_rate_hz / 2.0;
        let lines = substance.lines_in_band(
            acq.carrier_hz,
            half_band,
            (config.temperature_k, config.temperature_k),
        );
        let strongest = lines
            .iter()
            .map(|l| l.relative_amplitude)
            .fold(0.0, f64::max);
        if strongest > 0.0 {
            let amplitude =
                sigma.max(1e-12) * 10f64.powf(config.snr_per_echo_db / 20.0) / strongest;
            // The first echo comes one spacing after the preparation pulse.
            let first_decay = (-acq.echo_spacing_s / substance.t2_effective_s).exp();
            for line in &lines {
                let offset = line
                    .frequency_at(config.temperature_k, substance.reference_temperature_k)
                    - acq.carrier_hz;
                let phase = rng.random_range(0.0..TAU);
                for (m, s) in echo_shape.iter_mut().enumerate() {
                    let t = acq.time_from_echo_centre(m);
                    let a = amplitude * line.relative_amplitude / first_decay
                        * (-t.abs() / substance.t2_star_s).exp();
                    let p = TAU * offset * t + phase;
                    s.0 += a * p.cos();
                    s.1 += a * p.sin();
                }
            }
        }
    }
    let t2_effective = config.substance.map_or(f64::INFINITY, |s| s.t2_effective_s);

    let ringing_shape: Vec<(f64, f64)> = match config.ringing {
        Some(r) => {
            let amplitude = sigma * 10f64.powf(r.amplitude_db / 20.0);
            let phase = rng.random_range(0.0..TAU);
            (0..samples)
                .map(|m| {
                    let t = m as f64 / acq.sample_rate_hz;
                    let a = amplitude * (-t / r.decay_s).exp();
                    let p = TAU * r.offset_hz * t + phase;
                    (a * p.cos(), a * p.sin())
                })
                .collect()
        }
        None => vec![(0.0, 0.0); samples],
    };

    let carriers: Vec<(AmCarrier, f64)> = config
        .interference
        .iter()
        .map(|c| (*c, rng.random_range(0.0..TAU)))
        .collect();

    let mut main = Vec::with_capacity(total);
    let mut reference = Vec::with_capacity(if config.reference_channel { total } else { 0 });
    for train in 0..trains {
        for n in 0..echoes {
            let decay = (-((n + 1) as f64) * acq.echo_spacing_s / t2_effective).exp();
            let echo_centre =
                train as f64 * acq.repetition_time_s + (n + 1) as f64 * acq.echo_spacing_s;
            for m in 0..samples {
                let (nr, ni) = gaussian(&mut rng);
                let mut re = echo_shape[m].0 * decay + ringing_shape[m].0 + nr;
                let mut im = echo_shape[m].1 * decay + ringing_shape[m].1 + ni;
                let (mut ref_re, mut ref_im) = (0.0, 0.0);
                if !carriers.is_empty() {
                    let t = echo_centre + acq.time_from_echo_centre(m);
                    for (c, phase0) in &carriers {
                        let envelope = sigma
                            * 10f64.powf(c.inr_db / 20.0)
                            * (1.0
                                + c.modulation_index
                                    * 0.5
                                    * ((TAU * c.audio_hz[0] * t).cos()
                                        + (TAU * c.audio_hz[1] * t).sin()));
                        let p = TAU * c.offset_hz * t + phase0;
                        let (ir, ii) = (envelope * p.cos(), envelope * p.sin());
                        re += ir;
                        im += ii;
                        let (g, gp) = (c.reference_gain, c.reference_phase);
                        ref_re += g * (ir * gp.cos() - ii * gp.sin());
                        ref_im += g * (ir * gp.sin() + ii * gp.cos());
                    }
                }
                main.push(Complex32::new(re as f32, im as f32));
                if config.reference_channel {
                    let (nr, ni) = gaussian(&mut rng);
                    reference.push(Complex32::new((ref_re + nr) as f32, (ref_im + ni) as f32));
                }
            }
        }
    }
    Ok(super::Recording {
        acquisition: acq,
        main,
        reference: config.reference_channel.then_some(reference),
    })
}
