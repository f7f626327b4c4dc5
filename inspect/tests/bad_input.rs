//! Bad input gives clear errors, never a panic.

use image::{ImageBuffer, Luma, Rgb};
use mizugiwa_inspect::nqr::{self, NqrError, Recording};
use mizugiwa_inspect::xray::{
    generate, Category, GeneratorConfig, Manifest, Model, Scan, XrayError,
};
use std::path::Path;

fn fixture(dir: &Path) -> mizugiwa_inspect::xray::GeneratedScan {
    let mut config = GeneratorConfig::new(5, Category::Textiles);
    config.width = 64;
    config.height = 48;
    let generated = generate(&config).unwrap();
    generated.save(dir).unwrap();
    generated
}

fn load(dir: &Path, high: &str, low: &str, meta: &str) -> Result<Scan, XrayError> {
    Scan::load(dir.join(high), dir.join(low), dir.join(meta))
}

#[test]
fn corrupt_and_truncated_images() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    std::fs::write(dir.path().join("noise.png"), b"this is not an image at all").unwrap();
    let err = load(dir.path(), "noise.png", "low.png", "scanner.json").unwrap_err();
    assert!(matches!(err, XrayError::Image { .. }), "{err}");
    println!("{err}");

    let png = std::fs::read(dir.path().join("high.png")).unwrap();
    std::fs::write(dir.path().join("cut.png"), &png[..png.len() / 2]).unwrap();
    let err = load(dir.path(), "cut.png", "low.png", "scanner.json").unwrap_err();
    assert!(matches!(err, XrayError::Image { .. }), "{err}");
    println!("{err}");

    let err = load(dir.path(), "missing.png", "low.png", "scanner.json").unwrap_err();
    assert!(matches!(err, XrayError::Io { .. }), "{err}");
}

#[test]
fn wrong_bit_depth_or_colour() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    ImageBuffer::<Luma<u8>, _>::from_pixel(64, 48, Luma([100u8]))
        .save(dir.path().join("eight.png"))
        .unwrap();
    let err = load(dir.path(), "eight.png", "low.png", "scanner.json").unwrap_err();
    assert!(matches!(err, XrayError::BitDepth { .. }), "{err}");
    assert!(err.to_string().contains("16-bit grayscale"), "{err}");
    println!("{err}");
    ImageBuffer::<Rgb<u16>, _>::from_pixel(64, 48, Rgb([1000u16; 3]))
        .save(dir.path().join("rgb16.png"))
        .unwrap();
    let err = load(dir.path(), "high.png", "rgb16.png", "scanner.json").unwrap_err();
    assert!(matches!(err, XrayError::BitDepth { .. }), "{err}");
}

#[test]
fn tiff_is_accepted_and_mismatched_sizes_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let generated = fixture(dir.path());
    generated
        .scan
        .save(
            dir.path().join("high.tif"),
            dir.path().join("low.tif"),
            dir.path().join("s.json"),
        )
        .unwrap();
    let from_tiff = load(dir.path(), "high.tif", "low.tif", "s.json").unwrap();
    assert_eq!(from_tiff, generated.scan);

    ImageBuffer::<Luma<u16>, _>::from_pixel(48, 64, Luma([30000u16]))
        .save(dir.path().join("other.png"))
        .unwrap();
    let err = load(dir.path(), "high.png", "other.png", "scanner.json").unwrap_err();
    assert!(matches!(err, XrayError::SizeMismatch { .. }), "{err}");
    println!("{err}");

    ImageBuffer::<Luma<u16>, _>::from_pixel(8, 8, Luma([30000u16]))
        .save(dir.path().join("tiny.png"))
        .unwrap();
    let err = load(dir.path(), "tiny.png", "tiny.png", "scanner.json").unwrap_err();
    assert!(matches!(err, XrayError::TooSmall { .. }), "{err}");
}

#[test]
fn malformed_metadata_and_manifests() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    for (name, text, kind) in [
        ("m1.json", "{ not json", "json"),
        ("m2.json", r#"{"scanner_id": "x"}"#, "json"),
        (
            "m3.json",
            r#"{"scanner_id":"x","pixel_pitch_mm":-1,"high_energy_mev":3,"low_energy_mev":1,"air_value_high":60000,"air_value_low":60000,"wall_steel_mm":4}"#,
            "invalid",
        ),
        (
            "m4.json",
            r#"{"scanner_id":"x","pixel_pitch_mm":10,"high_energy_mev":30,"low_energy_mev":1,"air_value_high":60000,"air_value_low":60000,"wall_steel_mm":4}"#,
            "invalid",
        ),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
        let err = load(dir.path(), "high.png", "low.png", name).unwrap_err();
        println!("{name}: {err}");
        match kind {
            "json" => assert!(matches!(err, XrayError::Json { .. }), "{err}"),
            _ => assert!(matches!(err, XrayError::Invalid { .. }), "{err}"),
        }
    }
    for text in [
        "",
        r#"{"container_id":"C1","category":"bananas","declared_weight_kg":100}"#,
        r#"{"container_id":"C1","category":"textiles"}"#,
        r#"{"container_id":"C1","category":"textiles","declared_weight_kg":"heavy"}"#,
        r#"{"container_id":"C1","category":"textiles","declared_weight_kg":-5}"#,
        r#"{"container_id":"","category":"textiles","declared_weight_kg":5}"#,
    ] {
        let err = Manifest::from_json(text).unwrap_err();
        println!("{text:?}: {err}");
        assert!(
            matches!(err, XrayError::Json { .. } | XrayError::Invalid { .. }),
            "{err}"
        );
    }
    std::fs::write(dir.path().join("bad_manifest.json"), "[1,2,3]").unwrap();
    let err = Manifest::load(dir.path().join("bad_manifest.json")).unwrap_err();
    assert!(err.to_string().contains("bad_manifest.json"), "{err}");
}

#[test]
fn broken_model_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.onnx"), b"\x08\x07garbage").unwrap();
    let err = Model::load(dir.path().join("junk.onnx")).unwrap_err();
    assert!(matches!(err, XrayError::ModelLoad { .. }), "{err}");
    let err = Model::load(dir.path().join("absent.onnx")).unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

fn small_recording() -> Recording {
    let mut config = nqr::SimulationConfig::rdx(-20.0, 3);
    config.acquisition.trains = 1;
    config.acquisition.echoes_per_train = 4;
    nqr::simulate(&config).unwrap()
}

#[test]
fn truncated_and_damaged_signal_files() {
    let bytes = small_recording().to_bytes();
    for cut in [0, 5, 30, 59, 60, 61, bytes.len() - 1] {
        let err = Recording::from_bytes(&bytes[..cut]).unwrap_err();
        println!("cut at {cut}: {err}");
        assert!(
            matches!(err, NqrError::Truncated { .. }),
            "cut at {cut}: {err}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Recording::from_bytes(&longer).unwrap_err(),
        NqrError::Format(_)
    ));
    let mut wrong = bytes.clone();
    wrong[0] = b'X';
    assert!(matches!(
        Recording::from_bytes(&wrong).unwrap_err(),
        NqrError::Format(_)
    ));
    let mut version = bytes.clone();
    version[8] = 9;
    assert!(Recording::from_bytes(&version)
        .unwrap_err()
        .to_string()
        .contains("version 9"));
    let mut huge = bytes.clone();
    huge[44..48].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Recording::from_bytes(&huge).unwrap_err(),
        NqrError::Format(_)
    ));
    let mut nan = bytes.clone();
    nan[60..64].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(Recording::from_bytes(&nan)
        .unwrap_err()
        .to_string()
        .contains("finite"));
    let mut zero_rate = bytes;
    zero_rate[20..28].copy_from_slice(&0f64.to_le_bytes());
    assert!(matches!(
        Recording::from_bytes(&zero_rate).unwrap_err(),
        NqrError::Invalid { .. }
    ));

    let dir = tempfile::tempdir().unwrap();
    let err = Recording::read(dir.path().join("absent.bin")).unwrap_err();
    assert!(matches!(err, NqrError::Io { .. }), "{err}");
}

#[test]
fn calibration_for_another_acquisition_is_refused() {
    let recording = small_recording();
    let calibration = nqr::Calibration::simulate(
        nqr::Acquisition {
            trains: 1,
            echoes_per_train: 8,
            ..nqr::Acquisition::rdx_default()
        },
        nqr::DetectorConfig::rdx(),
        60,
        1,
    )
    .unwrap();
    let err = nqr::detect(&recording, &calibration, 0.01).unwrap_err();
    assert!(matches!(err, NqrError::CalibrationMismatch(_)), "{err}");
    let mut config = nqr::DetectorConfig::rdx();
    config.substance = "TNT".into();
    assert!(matches!(
        nqr::statistics(&recording, &config).unwrap_err(),
        NqrError::UnknownSubstance(_)
    ));
}
