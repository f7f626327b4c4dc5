//! Detectors for SLSE screenings and their calibration.
//!
//! Processing, in order:
//! 1. Blank the first samples of every echo window, where the pulse's piezoelectric ringing
//!    lives (the echo itself peaks mid-window).
//! 2. Reference-channel cancellation: a 25-tap least-squares filter, one for the whole
//!    screening, predicts the main coil's interference from the reference antenna's and is
//!    subtracted (see `cancel_interference`). The reference carries no NQR signal, so the
//!    signal survives (it only leaks through chance correlation, O(taps/samples)); the 12
//!    samples at each end of a window, where the filter reaches outside it, are dropped.
//! 3. Noise spectrum (per frequency bin) from differences of consecutive echoes (the signal
//!    changes by a few percent between echoes, the noise is independent), so statistics are
//!    scale-free and each bin is judged against the noise at its own frequency (cancellation
//!    colours the residual noise).
//! 4. Echo summation weighted by the expected train decay `exp(-(n+1)τ/T2eff)` (the matched
//!    filter across echoes, coherent across trains).
//! 5. Statistics on the summed echo, all normalised so that a bin or template of pure noise
//!    has unit mean:
//!    - FFT peak: highest zero-padded periodogram bin where the strongest line can be over the
//!      temperature range;
//!    - energy: sum of periodogram bins over every in-band line's range (no line shape);
//!    - GLRT over temperature: for each temperature on a grid, the matched filter of every
//!      in-band line at its frequency at that temperature (echo shape `exp(-|t|/T2*)`),
//!      with unknown complex amplitude per line, summed over lines; the maximum over the grid.
//!
//! Thresholds come from simulated noise-only screenings ([`Calibration`]): the empirical
//! distribution up to its 90% quantile and an exponential tail above it (peaks over threshold),
//! which extrapolates to Pfa 1e-3 from a thousand runs.

use super::signal::{simulate, Acquisition, SimulationConfig};
use super::substance::{self, Line, Substance, SubstanceRole};
use super::{NqrError, Recording};
use rustfft::num_complex::Complex64;
use rustfft::FftPlanner;
use serde::{Deserialize, Serialize};
use std::f64::consts::TAU;

/// The three detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    FftPeak,
    Energy,
    Glrt,
}

impl DetectorKind {
    pub const ALL: [DetectorKind; 3] = [
        DetectorKind::FftPeak,
        DetectorKind::Energy,
        DetectorKind::Glrt,
    ];
}

/// What to look for and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorConfig {
    /// Substance name in the library.
    pub substance: String,
    /// Temperatures the sample may have, K.
    pub temperature_range_k: (f64, f64),
    /// GLRT grid step, K.
    pub temperature_step_k: f64,
    /// Samples blanked at the start of each echo window, s.
    pub blank_s: f64,
    /// Cancel interference with the reference channel when the recording has one.
    pub cancel_interference: bool,
}

impl DetectorConfig {
    /// RDX between 268 and 328 K (±30 K around room temperature), 0.5 K grid, 100 µs blanking.
    pub fn rdx() -> Self {
        DetectorConfig {
            substance: "RDX".into(),
            temperature_range_k: (268.0, 328.0),
            temperature_step_k: 0.5,
            blank_s: 100e-6,
            cancel_interference: true,
        }
    }
}

/// The statistics of one screening (unit mean per noise bin or template).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetectorStatistics {
    pub fft_peak: f64,
    pub energy: f64,
    pub glrt: f64,
    /// Temperature at which the GLRT peaked, K.
    pub glrt_temperature_k: f64,
    /// Offset of the FFT peak from the carrier, Hz.
    pub fft_peak_offset_hz: f64,
    /// Estimated noise variance per complex sample after cancellation (mean of the noise
    /// spectrum).
    pub noise_variance: f64,
    /// Whether reference cancellation ran.
    pub cancelled: bool,
}

impl DetectorStatistics {
    pub fn get(&self, kind: DetectorKind) -> f64 {
        match kind {
            DetectorKind::FftPeak => self.fft_peak,
            DetectorKind::Energy => self.energy,
            DetectorKind::Glrt => self.glrt,
        }
    }
}

/// Computes all three statistics.
pub fn statistics(
    recording: &Recording,
    config: &DetectorConfig,
) -> Result<DetectorStatistics, NqrError> {
    let acq = recording.acquisition;
    acq.validate()?;
    let substance = substance::find(&config.substance)?;
    let (t_lo, t_hi) = config.temperature_range_k;
    if !(t_lo.is_finite() && t_hi.is_finite() && t_lo <= t_hi && config.temperature_step_k > 0.0) {
        return Err(NqrError::Invalid {
            what: "detector config",
            message: format!(
                "temperature range {t_lo}..{t_hi} K with step {} K",
                config.temperature_step_k
            ),
        });
    }
    let lines = substance.lines_in_band(acq.carrier_hz, acq.sample_rate_hz / 2.0, (t_lo, t_hi));
    if lines.is_empty() {
        return Err(NqrError::Invalid {
            what: "detector config",
            message: format!(
                "no {} line stays within ±{:.1} kHz of the carrier {:.4} MHz over {t_lo}-{t_hi} K",
                substance.name,
                acq.sample_rate_hz / 2e3,
                acq.carrier_hz / 1e6
            ),
        });
    }
    let (trains, echoes, m_len) = (
        acq.trains as usize,
        acq.echoes_per_train as usize,
        acq.samples_per_echo as usize,
    );
    let expected = acq.samples_per_channel() as usize;
    if recording.main.len() != expected
        || recording
            .reference
            .as_ref()
            .is_some_and(|r| r.len() != expected)
    {
        return Err(NqrError::Invalid {
            what: "recording",
            message: format!(
                "channels do not hold the {expected} samples the acquisition declares"
            ),
        });
    }
    let blank = ((config.blank_s * acq.sample_rate_hz).ceil() as usize).min(m_len / 4);
    let load = |samples: &[rustfft::num_complex::Complex32]| -> Vec<Complex64> {
        samples
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i % m_len < blank {
                    Complex64::new(0.0, 0.0)
                } else {
                    Complex64::new(f64::from(s.re), f64::from(s.im))
                }
            })
            .collect()
    };
    let cancel = config.cancel_interference && recording.reference.is_some();
    // With cancellation, the samples whose filter taps would reach outside the window are
    // dropped at both ends.
    let (start, end) = if cancel {
        (blank + CANCEL_HALF_TAPS, m_len - CANCEL_HALF_TAPS)
    } else {
        (blank, m_len)
    };
    if start + 8 > end {
        return Err(NqrError::Invalid {
            what: "acquisition",
            message: format!(
                "{m_len} samples per echo leave too few after blanking and cancellation; use at \
                 least {}",
                blank + 2 * CANCEL_HALF_TAPS + 8
            ),
        });
    }
    let mut main = load(&recording.main);
    let cancelled = match (&recording.reference, cancel) {
        (Some(reference), true) => {
            cancel_interference(&mut main, &load(reference), m_len, start, end);
            true
        }
        _ => false,
    };
    for (i, v) in main.iter_mut().enumerate() {
        let m = i % m_len;
        if m < start || m >= end {
            *v = Complex64::new(0.0, 0.0);
        }
    }

    // Noise spectrum from consecutive-echo differences within each train: the signal changes
    // by a few percent between echoes, the noise is independent. Per frequency bin rather than
    // one variance, because cancellation colours the residual (the filtered reference noise
    // is stronger where the filter matches a transmitter), and a line search must compare each
    // bin with the noise at that bin.
    let mut planner = FftPlanner::<f64>::new();
    let window_fft = planner.plan_fft_forward(m_len);
    let mut noise_psd = vec![0f64; m_len];
    let mut difference = vec![Complex64::new(0.0, 0.0); m_len];
    for t in 0..trains {
        for n in 0..echoes - 1 {
            let a = (t * echoes + n) * m_len;
            for (m, d) in difference.iter_mut().enumerate() {
                *d = main[a + m_len + m] - main[a + m];
            }
            window_fft.process(&mut difference);
            for (p, d) in noise_psd.iter_mut().zip(&difference) {
                *p += d.norm_sqr();
            }
        }
    }
    let pairs = (trains * (echoes - 1)).max(1) as f64;
    let live = (end - start) as f64;
    // Normalised so white noise of variance σ² gives σ² in every bin; smoothed over three bins.
    let raw: Vec<f64> = noise_psd.iter().map(|p| p / (2.0 * pairs * live)).collect();
    for (k, p) in noise_psd.iter_mut().enumerate() {
        let (l, r) = ((k + m_len - 1) % m_len, (k + 1) % m_len);
        *p = ((raw[l] + raw[k] + raw[r]) / 3.0).max(1e-30);
    }
    let noise_variance = noise_psd.iter().sum::<f64>() / m_len as f64;
    let fs = acq.sample_rate_hz;
    let psd_at = |frequency_hz: f64| {
        let k = (frequency_hz / fs * m_len as f64).round() as i64;
        noise_psd[k.rem_euclid(m_len as i64) as usize]
    };

    // Decay-weighted coherent echo sum.
    let weights: Vec<f64> = (0..echoes)
        .map(|n| (-((n + 1) as f64) * acq.echo_spacing_s / substance.t2_effective_s).exp())
        .collect();
    let mut summed = vec![Complex64::new(0.0, 0.0); m_len];
    for t in 0..trains {
        for (n, w) in weights.iter().enumerate() {
            let base = (t * echoes + n) * m_len;
            for (m, s) in summed.iter_mut().enumerate() {
                *s += main[base + m] * *w;
            }
        }
    }
    let sum_weight_sq = trains as f64 * weights.iter().map(|w| w * w).sum::<f64>();
    let strongest = lines
        .iter()
        .max_by(|a, b| a.relative_amplitude.total_cmp(&b.relative_amplitude))
        .copied()
        .unwrap_or(lines[0]);
    let margin = 1.0 / (TAU * substance.t2_star_s);
    let line_band = |line: &Line| {
        let f1 = line.frequency_at(t_lo, substance.reference_temperature_k) - acq.carrier_hz;
        let f2 = line.frequency_at(t_hi, substance.reference_temperature_k) - acq.carrier_hz;
        (f1.min(f2) - margin, f1.max(f2) + margin)
    };
    let bin_frequency = |k: usize, n: usize| {
        let f = k as f64 * fs / n as f64;
        if f >= fs / 2.0 {
            f - fs
        } else {
            f
        }
    };

    // FFT peak on a 4× zero-padded spectrum.
    let padded_len = 4 * m_len;
    let mut padded = summed.clone();
    padded.resize(padded_len, Complex64::new(0.0, 0.0));
    planner.plan_fft_forward(padded_len).process(&mut padded);
    let (lo, hi) = line_band(&strongest);
    let (mut fft_peak, mut fft_peak_offset_hz) = (0f64, 0f64);
    for (k, v) in padded.iter().enumerate() {
        let f = bin_frequency(k, padded_len);
        if f >= lo && f <= hi {
            let p = v.norm_sqr() / (sum_weight_sq * psd_at(f) * live);
            if p > fft_peak {
                fft_peak = p;
                fft_peak_offset_hz = f;
            }
        }
    }

    // Energy over every line's band, on the unpadded spectrum (independent bins under noise).
    let mut spectrum = summed.clone();
    planner.plan_fft_forward(m_len).process(&mut spectrum);
    let bands: Vec<(f64, f64)> = lines.iter().map(line_band).collect();
    let energy = spectrum
        .iter()
        .enumerate()
        .filter(|(k, _)| {
            let f = bin_frequency(*k, m_len);
            bands.iter().any(|(lo, hi)| f >= *lo && f <= *hi)
        })
        .map(|(k, v)| v.norm_sqr() / (sum_weight_sq * noise_psd[k] * live))
        .sum();

    // GLRT over the temperature grid.
    let envelope: Vec<f64> = (0..m_len)
        .map(|m| {
            if m < start || m >= end {
                0.0
            } else {
                (-acq.time_from_echo_centre(m).abs() / substance.t2_star_s).exp()
            }
        })
        .collect();
    let envelope_energy: f64 = envelope.iter().map(|e| e * e).sum();
    let shaped: Vec<Complex64> = summed.iter().zip(&envelope).map(|(s, e)| s * e).collect();
    let steps = ((t_hi - t_lo) / config.temperature_step_k).floor() as usize;
    let (mut glrt, mut glrt_temperature_k) = (0f64, t_lo);
    for i in 0..=steps {
        let temperature = t_lo + i as f64 * config.temperature_step_k;
        let mut lambda = 0.0;
        for line in &lines {
            let offset =
                line.frequency_at(temperature, substance.reference_temperature_k) - acq.carrier_hz;
            lambda += correlate(&shaped, offset, fs, &acq).norm_sqr()
                / (sum_weight_sq * psd_at(offset) * envelope_energy);
        }
        if lambda > glrt {
            glrt = lambda;
            glrt_temperature_k = temperature;
        }
    }

    Ok(DetectorStatistics {
        fft_peak,
        energy,
        glrt,
        glrt_temperature_k,
        fft_peak_offset_hz,
        noise_variance,
        cancelled,
    })
}

/// `Σ_m x_m exp(-j 2π f t_m)` with `t_m` from the echo centre.
fn correlate(x: &[Complex64], frequency_hz: f64, fs: f64, acq: &Acquisition) -> Complex64 {
    let step = Complex64::from_polar(1.0, -TAU * frequency_hz / fs);
    let mut rotor = Complex64::from_polar(1.0, -TAU * frequency_hz * acq.time_from_echo_centre(0));
    let mut acc = Complex64::new(0.0, 0.0);
    for v in x {
        acc += v * rotor;
        rotor *= step;
    }
    acc
}

/// Half-length of the reference canceller's filter: 2·12+1 taps span 200 µs at 125 kHz, so
/// the couplings of transmitters 10 kHz apart (the broadcast raster) are told apart; closer
/// transmitters with different couplings cannot be separated within a 1 ms echo window by
/// one reference antenna.
pub(crate) const CANCEL_HALF_TAPS: usize = 12;

/// Least-squares multichannel cancellation, in place: `y[m] = x[m] - Σ_d w_d r[m+d]` for
/// `d = -12..=12`, one weight vector for the whole screening (couplings do not change within
/// it), fitted and applied over the samples `start..end` of every window, where all taps fall
/// inside the window. A filter rather than one weight because each transmitter reaches the two
/// antennas with its own complex coupling: the filter's frequency response matches every
/// coupling at its transmitter's frequency. (A per-FFT-bin weight fails here: the window's
/// spectral leakage mixes strong transmitters in shared bins.) Taps look ahead as well as back:
/// the reference holds no NQR signal, so that cannot cancel the signal.
///
/// The normal equations are accumulated per lag over positions (`Σ_windows conj(r[u]) r[u+k]`)
/// and prefix-summed, so building them costs one pass per lag instead of one per tap pair.
fn cancel_interference(
    main: &mut [Complex64],
    reference: &[Complex64],
    m_len: usize,
    start: usize,
    end: usize,
) {
    let h = CANCEL_HALF_TAPS;
    let taps = 2 * h + 1;
    let windows = main.len() / m_len;
    if end <= start || start < h || end + h > m_len {
        return;
    }
    let lags = 4 * h + 1; // k = -2h..=2h, stored at k + 2h
                          // prefix[k][u] = Σ_{u' < u} Σ_w conj(r_w[u']) r_w[u' + k]  (zero where u' + k is outside)
    let mut prefix = vec![vec![Complex64::new(0.0, 0.0); m_len + 1]; lags];
    for (slot, row) in prefix.iter_mut().enumerate() {
        let k = slot as i64 - 2 * h as i64;
        let mut acc = (0f64, 0f64);
        for u in 0..m_len {
            let v = u as i64 + k;
            if v >= 0 && (v as usize) < m_len {
                for w in 0..windows {
                    let a = reference[w * m_len + u];
                    let b = reference[w * m_len + v as usize];
                    // conj(a) * b
                    acc.0 += a.re * b.re + a.im * b.im;
                    acc.1 += a.re * b.im - a.im * b.re;
                }
            }
            row[u + 1] = Complex64::new(acc.0, acc.1);
        }
    }
    // Augmented normal equations [A | b].
    let mut system = vec![vec![Complex64::new(0.0, 0.0); taps + 1]; taps];
    for (i, row) in system.iter_mut().enumerate() {
        // u = m + di over m in start..end
        let (lo, hi) = (start + i - h, end + i - h);
        for (j, entry) in row.iter_mut().take(taps).enumerate() {
            let slot = j + 2 * h - i; // (dj - di) + 2h
            *entry = prefix[slot][hi] - prefix[slot][lo];
        }
        let mut acc = (0f64, 0f64);
        for w in 0..windows {
            for m in start..end {
                let a = reference[w * m_len + m + i - h];
                let x = main[w * m_len + m];
                acc.0 += a.re * x.re + a.im * x.im;
                acc.1 += a.re * x.im - a.im * x.re;
            }
        }
        row[taps] = Complex64::new(acc.0, acc.1);
    }
    // Diagonal loading keeps the system solvable when the reference is silent.
    let trace: f64 = (0..taps).map(|i| system[i][i].re).sum();
    let loading = 1e-9 * (trace / taps as f64).max(1e-30);
    for (i, row) in system.iter_mut().enumerate() {
        row[i] += loading;
    }
    let Some(weights) = solve(system) else { return };
    for w in 0..windows {
        let base = w * m_len;
        let predicted: Vec<(f64, f64)> = (start..end)
            .map(|m| {
                let mut acc = (0f64, 0f64);
                for (i, weight) in weights.iter().enumerate() {
                    let r = reference[base + m + i - h];
                    acc.0 += weight.re * r.re - weight.im * r.im;
                    acc.1 += weight.re * r.im + weight.im * r.re;
                }
                acc
            })
            .collect();
        for (m, p) in (start..end).zip(predicted) {
            main[base + m].re -= p.0;
            main[base + m].im -= p.1;
        }
    }
}

/// Gaussian elimination with partial pivoting on an augmented matrix; `None` if singular.
fn solve(mut a: Vec<Vec<Complex64>>) -> Option<Vec<Complex64>> {
    let n = a.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&x, &y| a[x][col].norm().total_cmp(&a[y][col].norm()))?;
        if a[pivot][col].norm() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        let (upper, lower) = a.split_at_mut(col + 1);
        let pivot_row = &upper[col];
        for row in lower.iter_mut() {
            let factor = row[col] / pivot_row[col];
            for (target, v) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *target -= factor * v;
            }
        }
    }
    let mut x = vec![Complex64::new(0.0, 0.0); n];
    for row in (0..n).rev() {
        let mut s = a[row][n];
        for k in row + 1..n {
            s -= a[row][k] * x[k];
        }
        x[row] = s / a[row][row];
    }
    Some(x)
}

/// Noise-only distribution of one statistic with an exponential tail above its 90% quantile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailModel {
    /// Noise-only statistics, ascending.
    pub sorted: Vec<f64>,
    /// Tail start (90% quantile).
    pub tail_start: f64,
    /// Fraction of runs above `tail_start`.
    pub tail_fraction: f64,
    /// Mean excess above `tail_start` (scale of the exponential tail).
    pub tail_scale: f64,
}

impl TailModel {
    pub fn fit(mut values: Vec<f64>) -> Result<Self, NqrError> {
        if values.len() < 50 {
            return Err(NqrError::Invalid {
                what: "calibration",
                message: format!(
                    "{} noise-only runs are too few; use at least 50",
                    values.len()
                ),
            });
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let tail_start = values[n * 9 / 10];
        let excess: Vec<f64> = values
            .iter()
            .filter(|v| **v > tail_start)
            .map(|v| v - tail_start)
            .collect();
        let tail_fraction = excess.len() as f64 / n as f64;
        let tail_scale = (excess.iter().sum::<f64>() / excess.len().max(1) as f64).max(1e-12);
        Ok(TailModel {
            sorted: values,
            tail_start,
            tail_fraction: tail_fraction.max(1.0 / n as f64),
            tail_scale,
        })
    }

    /// Statistic that noise alone exceeds with probability `pfa`.
    pub fn threshold(&self, pfa: f64) -> f64 {
        let pfa = pfa.clamp(1e-12, 1.0);
        if pfa >= self.tail_fraction {
            let n = self.sorted.len();
            let index = (((1.0 - pfa) * n as f64).ceil() as usize).clamp(1, n) - 1;
            self.sorted[index]
        } else {
            self.tail_start + self.tail_scale * (self.tail_fraction / pfa).ln()
        }
    }

    /// Probability that noise alone reaches `statistic`.
    pub fn p_value(&self, statistic: f64) -> f64 {
        if statistic <= self.tail_start {
            let above = self.sorted.iter().filter(|v| **v >= statistic).count();
            above as f64 / self.sorted.len() as f64
        } else {
            self.tail_fraction * (-(statistic - self.tail_start) / self.tail_scale).exp()
        }
    }
}

/// Thresholds for one acquisition and detector configuration, from noise-only simulations.
/// Serialisable, so a site computes it once per instrument setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub acquisition: Acquisition,
    pub detector: DetectorConfig,
    pub runs: usize,
    pub seed: u64,
    pub fft_peak: TailModel,
    pub energy: TailModel,
    pub glrt: TailModel,
}

impl Calibration {
    /// Simulates `runs` noise-only screenings (coil noise, ringing, reference channel noise;
    /// no substance, no interference) on all cores and fits each statistic's tail.
    pub fn simulate(
        acquisition: Acquisition,
        detector: DetectorConfig,
        runs: usize,
        seed: u64,
    ) -> Result<Self, NqrError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(runs.max(1));
        let results: Vec<Result<Vec<DetectorStatistics>, NqrError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|worker| {
                    let detector = &detector;
                    scope.spawn(move || {
                        (worker..runs)
                            .step_by(threads)
                            .map(|run| {
                                let config = SimulationConfig {
                                    acquisition,
                                    reference_channel: detector.cancel_interference,
                                    ..SimulationConfig::noise_only(seed.wrapping_add(run as u64))
                                };
                                statistics(&simulate(&config)?, detector)
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(NqrError::Invalid {
                            what: "calibration",
                            message: "a worker thread panicked".into(),
                        })
                    })
                })
                .collect()
        });
        let mut all = Vec::with_capacity(runs);
        for r in results {
            all.extend(r?);
        }
        let pick = |kind: DetectorKind| all.iter().map(|s| s.get(kind)).collect::<Vec<_>>();
        Ok(Calibration {
            acquisition,
            fft_peak: TailModel::fit(pick(DetectorKind::FftPeak))?,
            energy: TailModel::fit(pick(DetectorKind::Energy))?,
            glrt: TailModel::fit(pick(DetectorKind::Glrt))?,
            detector,
            runs,
            seed,
        })
    }

    pub fn tail(&self, kind: DetectorKind) -> &TailModel {
        match kind {
            DetectorKind::FftPeak => &self.fft_peak,
            DetectorKind::Energy => &self.energy,
            DetectorKind::Glrt => &self.glrt,
        }
    }

    pub fn threshold(&self, kind: DetectorKind, pfa: f64) -> f64 {
        self.tail(kind).threshold(pfa)
    }

    fn check(&self, acquisition: &Acquisition) -> Result<(), NqrError> {
        let a = &self.acquisition;
        let same = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(1.0);
        if !(same(a.carrier_hz, acquisition.carrier_hz)
            && same(a.sample_rate_hz, acquisition.sample_rate_hz)
            && same(a.echo_spacing_s, acquisition.echo_spacing_s)
            && a.trains == acquisition.trains
            && a.echoes_per_train == acquisition.echoes_per_train
            && a.samples_per_echo == acquisition.samples_per_echo)
        {
            return Err(NqrError::CalibrationMismatch(format!(
                "calibrated for {a:?}, recording has {acquisition:?}"
            )));
        }
        Ok(())
    }
}

/// One detector's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub detector: DetectorKind,
    pub statistic: f64,
    pub threshold: f64,
    pub pfa: f64,
    pub detected: bool,
    /// Probability that noise alone reaches this statistic.
    pub p_value: f64,
    /// `1 - p_value`.
    pub confidence: f64,
}

/// The outcome of a screening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Screening {
    pub substance: String,
    pub role: SubstanceRole,
    /// The GLRT's decision (the primary detector: robust to the unknown temperature).
    pub detected: bool,
    pub confidence: f64,
    /// Sample temperature the GLRT fitted, if it detected.
    pub estimated_temperature_k: Option<f64>,
    /// Instrument time the screening took (trains × repetition time), s.
    pub measurement_time_s: f64,
    /// Detected and the substance is an explosive.
    pub alert: bool,
    pub decisions: Vec<Decision>,
    pub statistics: DetectorStatistics,
}

/// Screens a recording at false-alarm probability `pfa`.
pub fn detect(
    recording: &Recording,
    calibration: &Calibration,
    pfa: f64,
) -> Result<Screening, NqrError> {
    if !(pfa > 0.0 && pfa < 1.0) {
        return Err(NqrError::Invalid {
            what: "detector config",
            message: format!("false-alarm probability must be in (0, 1), got {pfa}"),
        });
    }
    calibration.check(&recording.acquisition)?;
    let stats = statistics(recording, &calibration.detector)?;
    let substance: &Substance = substance::find(&calibration.detector.substance)?;
    let decisions: Vec<Decision> = DetectorKind::ALL
        .into_iter()
        .map(|kind| {
            let statistic = stats.get(kind);
            let threshold = calibration.threshold(kind, pfa);
            let p_value = calibration.tail(kind).p_value(statistic);
            Decision {
                detector: kind,
                statistic,
                threshold,
                pfa,
                detected: statistic > threshold,
                p_value,
                confidence: 1.0 - p_value,
            }
        })
        .collect();
    let primary = decisions
        .iter()
        .find(|d| d.detector == DetectorKind::Glrt)
        .cloned()
        .ok_or_else(|| NqrError::Invalid {
            what: "detector config",
            message: "GLRT decision missing".into(),
        })?;
    Ok(Screening {
        substance: substance.name.to_string(),
        role: substance.role,
        detected: primary.detected,
        confidence: primary.confidence,
        estimated_temperature_k: primary.detected.then_some(stats.glrt_temperature_k),
        measurement_time_s: recording.acquisition.measurement_time_s(),
        alert: primary.detected && substance.role == SubstanceRole::Explosive,
        decisions,
        statistics: stats,
    })
}
