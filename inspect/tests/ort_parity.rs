//! tract and onnxruntime (PyPI) agree on the committed model and the same inputs.
//!
//! The Python interpreter is `$MZ_PYTHON`, else `inspect/.venv-train/bin/python`; it needs
//! `inspect/requirements.txt`. The test fails (does not skip) when neither is there.

use mizugiwa_inspect::xray::{
    generate, tile_features, GeneratorConfig, Model, TileClass, FEATURE_COUNT,
};
use std::path::PathBuf;
use std::process::Command;

fn python() -> PathBuf {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Some(p) = std::env::var_os("MZ_PYTHON") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "MZ_PYTHON={} does not exist", p.display());
        return p;
    }
    let venv = crate_dir.join(".venv-train/bin/python");
    assert!(
        venv.exists(),
        "no Python with onnxruntime: set MZ_PYTHON or create {} with `python3 -m venv \
         inspect/.venv-train && inspect/.venv-train/bin/pip install -r inspect/requirements.txt`",
        venv.display()
    );
    venv
}

#[test]
fn tract_matches_onnxruntime_within_1e_4() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let model_path = crate_dir.join("models/xray_tiles.onnx");
    let model = Model::load(&model_path).unwrap();

    // Real tiles from two generated scans plus out-of-distribution rows (zeros, large values).
    let mut features = Vec::new();
    for seed in [77, 78] {
        let generated = generate(&GeneratorConfig::random(seed, 1.0)).unwrap();
        features.extend(tile_features(&generated.scan).1);
    }
    features.extend(std::iter::repeat_n(0.0f32, FEATURE_COUNT));
    features.extend((0..FEATURE_COUNT).map(|k| (k as f32 - 17.0) * 3.0));
    let rows = features.len() / FEATURE_COUNT;

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("features.f32");
    let output = dir.path().join("logits.f32");
    let bytes: Vec<u8> = features.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input, bytes).unwrap();
    let status = Command::new(python())
        .arg(crate_dir.join("train/ort_run.py"))
        .arg(&model_path)
        .arg(&input)
        .arg(rows.to_string())
        .arg(&output)
        .status()
        .expect("run the onnxruntime script");
    assert!(status.success(), "onnxruntime script failed: {status}");
    let reference: Vec<f32> = std::fs::read(&output)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();

    // The graph's output: the logits (the softmax is ours, tested in the model's unit tests).
    let ours = model.logits(&features, rows).unwrap();
    assert_eq!(ours.len(), rows * TileClass::COUNT);
    assert_eq!(reference.len(), ours.len());
    let max_diff = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("{rows} tiles, max |tract - onnxruntime| = {max_diff:.2e}");
    assert!(
        max_diff <= 1e-4,
        "tract and onnxruntime differ by {max_diff}"
    );
}
