//! NQR: Pd against SNR per echo at Pfa 1e-2 and 1e-3, temperature robustness of the GLRT,
//! interference with and without the reference channel, the calibration sample.

use mizugiwa_inspect::nqr::{
    self, detect, simulate, statistics, substance, Acquisition, AmCarrier, Calibration,
    DetectorConfig, DetectorKind, SimulationConfig,
};
use std::sync::OnceLock;

const CALIBRATION_RUNS: usize = 600;

/// Noise-only calibration of the default RDX screening with reference cancellation (seeds
/// 1_000..), shared by the tests of this file.
fn calibration() -> &'static Calibration {
    static CAL: OnceLock<Calibration> = OnceLock::new();
    CAL.get_or_init(|| {
        Calibration::simulate(
            Acquisition::rdx_default(),
            DetectorConfig::rdx(),
            CALIBRATION_RUNS,
            1_000,
        )
        .unwrap()
    })
}

/// Runs `trials` screenings from `make(seed)` in parallel and returns the fraction detected per
/// detector at each Pfa: `[kind][pfa index]`.
fn detection_rates(
    trials: u64,
    seed0: u64,
    pfas: &[f64],
    make: impl Fn(u64) -> SimulationConfig + Sync,
) -> Vec<Vec<f64>> {
    let cal = calibration();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let hits = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|w| {
                let make = &make;
                scope.spawn(move || {
                    let mut hits = vec![vec![0u64; pfas.len()]; 3];
                    for t in (w..trials).step_by(threads as usize) {
                        let rec = simulate(&make(seed0 + t)).unwrap();
                        let stats = statistics(&rec, &cal.detector).unwrap();
                        for (k, kind) in DetectorKind::ALL.into_iter().enumerate() {
                            for (j, &pfa) in pfas.iter().enumerate() {
                                if stats.get(kind) > cal.threshold(kind, pfa) {
                                    hits[k][j] += 1;
                                }
                            }
                        }
                    }
                    hits
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    (0..3)
        .map(|k| {
            (0..pfas.len())
                .map(|j| hits.iter().map(|h| h[k][j]).sum::<u64>() as f64 / trials as f64)
                .collect()
        })
        .collect()
}

#[test]
fn pd_against_snr_per_echo_at_pfa_1e2_and_1e3() {
    let pfas = [1e-2, 1e-3];
    let snrs = [-27.0, -24.0, -21.0, -18.0, -15.0];
    println!("Pd over 100 screenings per SNR (RDX 298 K, {CALIBRATION_RUNS} noise-only calibration runs)");
    println!("| SNR/echo dB | FFT peak 1e-2 | FFT peak 1e-3 | energy 1e-2 | energy 1e-3 | GLRT 1e-2 | GLRT 1e-3 |");
    let mut table = Vec::new();
    for (i, &snr) in snrs.iter().enumerate() {
        let rates = detection_rates(100, 50_000 + 1_000 * i as u64, &pfas, |seed| {
            SimulationConfig::rdx(snr, seed)
        });
        println!(
            "| {snr:>5.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            rates[0][0], rates[0][1], rates[1][0], rates[1][1], rates[2][0], rates[2][1]
        );
        table.push(rates);
    }
    let glrt = |i: usize, j: usize| table[i][2][j];
    // Thresholds stated in the README: at -15 dB per echo every detector finds RDX at Pfa
    // 1e-2 nine times in ten or more; at -18 dB the GLRT does at Pfa 1e-3; at -27 dB no
    // detector does better than one time in five.
    assert!(
        glrt(3, 1) >= 0.9,
        "GLRT Pd at -18 dB, Pfa 1e-3: {}",
        glrt(3, 1)
    );
    assert!(
        glrt(4, 1) >= 0.99,
        "GLRT Pd at -15 dB, Pfa 1e-3: {}",
        glrt(4, 1)
    );
    assert!(glrt(2, 0) >= glrt(2, 1));
    for (k, (low, high)) in table[0].iter().zip(&table[4]).enumerate() {
        assert!(low[1] <= 0.2, "detector {k} Pd at -27 dB: {}", low[1]);
        assert!(
            high[0] >= 0.9,
            "detector {k} Pd at -15 dB, Pfa 1e-2: {}",
            high[0]
        );
    }
    // The temperature-aware GLRT beats the energy detector where it matters.
    assert!(
        glrt(2, 1) > table[2][1][1],
        "GLRT not above energy at -21 dB"
    );
}

#[test]
fn noise_only_false_alarm_rate_matches_the_calibration() {
    // Fresh seeds (the calibration used 1_000..1_600).
    let rates = detection_rates(300, 500_000, &[1e-2], SimulationConfig::noise_only);
    println!(
        "noise-only false alarms at Pfa 1e-2 over 300 runs: FFT {:.3} energy {:.3} GLRT {:.3}",
        rates[0][0], rates[1][0], rates[2][0]
    );
    for (k, r) in rates.iter().enumerate() {
        // Binomial(300, 0.01): mean 3, P(X > 9) < 2e-3.
        assert!(r[0] <= 0.03, "detector {k} false alarm rate {}", r[0]);
    }
}

#[test]
fn glrt_detects_rdx_ten_kelvin_off_and_estimates_its_temperature() {
    let cal = calibration();
    for temperature in [288.0, 308.0] {
        let mut detected = 0;
        let mut errors = Vec::new();
        for seed in 0..40 {
            let mut config = SimulationConfig::rdx(-18.0, 70_000 + seed);
            config.temperature_k = temperature;
            let screening = detect(&simulate(&config).unwrap(), cal, 1e-3).unwrap();
            if screening.detected {
                detected += 1;
                errors.push((screening.estimated_temperature_k.unwrap() - temperature).abs());
            }
        }
        errors.sort_by(f64::total_cmp);
        let median = errors
            .get(errors.len() / 2)
            .copied()
            .unwrap_or(f64::INFINITY);
        println!("RDX at {temperature} K, -18 dB/echo: GLRT detected {detected}/40 at Pfa 1e-3, median |T error| {median:.1} K");
        assert!(
            detected >= 36,
            "GLRT detected only {detected}/40 at {temperature} K"
        );
        assert!(median <= 2.0, "temperature estimate off by {median} K");
    }
}

/// False-alarm rates at Pfa 1e-2 with AM interference, with the reference cancellation and
/// without (its own noise-only calibration, no reference channel).
fn interference_false_alarms(
    carriers: usize,
    inr_db: f64,
    trials: u64,
    seed0: u64,
) -> ([f64; 3], [f64; 3]) {
    let with_interference = |seed: u64, reference: bool| {
        let acquisition = Acquisition::rdx_default();
        SimulationConfig {
            interference: AmCarrier::random_set(carriers, &acquisition, inr_db, seed),
            reference_channel: reference,
            ..SimulationConfig::noise_only(seed)
        }
    };
    let cancelled = detection_rates(trials, seed0, &[1e-2], |seed| with_interference(seed, true));
    let mut plain = DetectorConfig::rdx();
    plain.cancel_interference = false;
    let cal_plain =
        Calibration::simulate(Acquisition::rdx_default(), plain.clone(), 200, 1_000).unwrap();
    let mut without = [0f64; 3];
    for seed in 0..trials {
        let stats = statistics(
            &simulate(&with_interference(seed0 + seed, false)).unwrap(),
            &plain,
        )
        .unwrap();
        for (k, kind) in DetectorKind::ALL.into_iter().enumerate() {
            if stats.get(kind) > cal_plain.threshold(kind, 1e-2) {
                without[k] += 1.0 / trials as f64;
            }
        }
    }
    (std::array::from_fn(|k| cancelled[k][0]), without)
}

#[test]
fn am_interference_is_cancelled_by_the_reference_channel() {
    // Three broadcast transmitters about 25 dB over the noise, one within 10 kHz of the lines,
    // each with its own coupling into the reference antenna.
    let (with, without) = interference_false_alarms(3, 25.0, 150, 80_000);
    println!("three AM carriers at ~25 dB, false alarms at Pfa 1e-2 (150 runs):");
    for (k, kind) in DetectorKind::ALL.into_iter().enumerate() {
        println!(
            "  {kind:?}: with reference cancellation {:.3}, without {:.3}",
            with[k], without[k]
        );
        // Binomial(150, 0.01): P(X > 6) < 5e-3; the bound is 4%.
        assert!(
            with[k] <= 0.04,
            "{kind:?} false alarms with cancellation: {}",
            with[k]
        );
        assert!(
            without[k] >= 3.0 * with[k].max(0.01),
            "{kind:?}: interference should hurt without the reference"
        );
    }
    // And RDX is still found through the interference.
    let acquisition = Acquisition::rdx_default();
    let config = SimulationConfig {
        interference: AmCarrier::random_set(3, &acquisition, 25.0, 90_000),
        ..SimulationConfig::rdx(-15.0, 90_000)
    };
    let screening = detect(&simulate(&config).unwrap(), calibration(), 1e-3).unwrap();
    assert!(screening.detected && screening.alert, "{screening:?}");
}

#[test]
fn nano2_calibration_sample_is_detected_without_an_alert() {
    let acquisition = Acquisition {
        carrier_hz: 4.64e6,
        ..Acquisition::rdx_default()
    };
    let detector = DetectorConfig {
        substance: "NaNO2".into(),
        ..DetectorConfig::rdx()
    };
    let cal = Calibration::simulate(acquisition, detector, 100, 7).unwrap();
    let config = SimulationConfig {
        acquisition,
        substance: substance::find("NaNO2").ok(),
        snr_per_echo_db: -15.0,
        ..SimulationConfig::rdx(0.0, 5)
    };
    let screening = detect(&simulate(&config).unwrap(), &cal, 1e-2).unwrap();
    println!("{screening:?}");
    assert!(screening.detected, "NaNO2 not seen");
    assert!(
        !screening.alert,
        "a calibration sample must not raise an alert"
    );
    assert!((screening.measurement_time_s - 0.4).abs() < 1e-9);
    assert!(screening.confidence > 0.99);
    let json = serde_json::to_string(&screening).unwrap();
    assert!(json.contains("\"glrt\""));
    let _ = nqr::Recording::from_bytes(&simulate(&config).unwrap().to_bytes()).unwrap();
}
