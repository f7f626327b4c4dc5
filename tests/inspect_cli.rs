//! `mizugiwa xray` and `mizugiwa nqr` as an officer runs them: generated scans scored against
//! their manifests, simulated NQR screenings detected, and bad input refused with a message and
//! exit status 1 (never a panic).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mizugiwa");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Runs the binary, expects success and JSON on stdout.
fn json(args: &[&str]) -> Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "mizugiwa {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "mizugiwa {args:?}: not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs the binary, expects exit status 1, a message on stderr containing `says`, no panic.
fn fails(args: &[&str], says: &str) -> String {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "mizugiwa {args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(says),
        "mizugiwa {args:?}: {stderr:?} lacks {says:?}"
    );
    stderr
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn generate(dir: &Path, seed: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "xray",
        "generate",
        "--out",
        p(dir),
        "--seed",
        seed,
        "--category",
        "textiles",
    ];
    args.extend_from_slice(extra);
    json(&args)
}

fn scan(dir: &Path, extra: &[&str]) -> Value {
    let (high, low, manifest) = (
        dir.join("high.png"),
        dir.join("low.png"),
        dir.join("manifest.json"),
    );
    let mut args = vec![
        "xray",
        "scan",
        p(&high),
        p(&low),
        "--manifest",
        p(&manifest),
    ];
    args.extend_from_slice(extra);
    json(&args)
}

#[test]
fn a_metal_block_in_declared_textiles_raises_an_alert_a_clean_container_scores_lower() {
    let tmp = tempfile::tempdir().unwrap();
    let hidden = tmp.path().join("hidden");
    let summary = generate(&hidden, "7", &["--hidden", "metal-block"]);
    assert_eq!(summary["hidden"][0]["kind"], "metal_block", "{summary}");
    for f in [
        "high.png",
        "low.png",
        "meta.json",
        "manifest.json",
        "truth.json",
    ] {
        assert!(hidden.join(f).is_file(), "{f} written");
    }
    let heatmap = tmp.path().join("heatmap.png");
    let suspicious = scan(&hidden, &["--heatmap", p(&heatmap)]);
    let risk = &suspicious["risk"];
    assert_eq!(risk["alert"], true, "{suspicious}");
    let reasons = risk["reasons"].as_array().unwrap();
    assert!(!reasons.is_empty(), "an alert says why: {suspicious}");
    assert!(reasons[0]["message"].as_str().unwrap().len() > 10);
    assert!(suspicious["estimated_weight_kg"].as_f64().unwrap() > 0.0);
    assert!(suspicious["declared_weight_kg"].as_f64().unwrap() > 0.0);
    assert!(suspicious.get("tiles").is_none(), "tiles only with --tiles");
    assert!(std::fs::metadata(&heatmap).unwrap().len() > 1000);

    let with_tiles = scan(&hidden, &["--tiles"]);
    let (tx, ty) = (
        with_tiles["tiles_x"].as_u64().unwrap(),
        with_tiles["tiles_y"].as_u64().unwrap(),
    );
    assert_eq!(
        with_tiles["tiles"].as_array().unwrap().len() as u64,
        tx * ty
    );

    let clean = tmp.path().join("clean");
    generate(&clean, "7", &[]);
    let honest = scan(&clean, &[]);
    let (hidden_score, clean_score) = (
        risk["score"].as_f64().unwrap(),
        honest["risk"]["score"].as_f64().unwrap(),
    );
    assert!(
        clean_score < hidden_score,
        "clean {clean_score} vs hidden {hidden_score}"
    );
    assert_eq!(honest["risk"]["alert"], false, "{honest}");
}

#[test]
fn bad_scans_are_refused_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("scan");
    generate(&dir, "3", &[]);
    let (high, low, manifest, meta) = (
        dir.join("high.png"),
        dir.join("low.png"),
        dir.join("manifest.json"),
        dir.join("meta.json"),
    );
    // A PNG cut short.
    let corrupt = tmp.path().join("corrupt.png");
    let bytes = std::fs::read(&high).unwrap();
    std::fs::write(&corrupt, &bytes[..bytes.len() / 3]).unwrap();
    fails(
        &[
            "xray",
            "scan",
            p(&corrupt),
            p(&low),
            "--manifest",
            p(&manifest),
            "--meta",
            p(&meta),
        ],
        "cannot decode image",
    );
    // Not an image at all.
    let text = tmp.path().join("notes.png");
    std::fs::write(&text, "hello").unwrap();
    fails(
        &[
            "xray",
            "scan",
            p(&text),
            p(&low),
            "--manifest",
            p(&manifest),
            "--meta",
            p(&meta),
        ],
        "notes.png",
    );
    // A low-energy image of another size (16-bit grayscale, 32x32).
    let small = tmp.path().join("small.png");
    write_gray16(&small, 32, 32);
    fails(
        &[
            "xray",
            "scan",
            p(&high),
            p(&small),
            "--manifest",
            p(&manifest),
            "--meta",
            p(&meta),
        ],
        "differ in size",
    );
    // A malformed manifest.
    let bad_manifest = tmp.path().join("manifest.json");
    std::fs::write(
        &bad_manifest,
        r#"{"container_id": "MZGU1", "category": "toys""#,
    )
    .unwrap();
    fails(
        &[
            "xray",
            "scan",
            p(&high),
            p(&low),
            "--manifest",
            p(&bad_manifest),
        ],
        "malformed manifest",
    );
    // A missing file, and no metadata beside the images.
    fails(
        &[
            "xray",
            "scan",
            p(&tmp.path().join("nope.png")),
            p(&low),
            "--manifest",
            p(&manifest),
            "--meta",
            p(&meta),
        ],
        "nope.png",
    );
    fails(
        &[
            "xray",
            "scan",
            p(&small),
            p(&small),
            "--manifest",
            p(&manifest),
        ],
        "--meta",
    );
}

/// A minimal 16-bit grayscale PNG (stored, uncompressed deflate blocks), so the test needs no
/// image crate.
fn write_gray16(path: &Path, w: u32, h: u32) {
    fn crc(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn adler(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in data {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc(&body).to_be_bytes());
    }
    // Each row: filter byte 0 (none), then big-endian samples.
    let row: Vec<u8> = std::iter::once(0)
        .chain((0..w).flat_map(|_| 30_000u16.to_be_bytes()))
        .collect();
    let raw = row.repeat(h as usize);
    let mut z = vec![0x78, 0x01];
    for (i, block) in raw.chunks(65_535).enumerate() {
        let last = (i + 1) * 65_535 >= raw.len();
        z.push(u8::from(last));
        z.extend_from_slice(&(block.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(block.len() as u16)).to_le_bytes());
        z.extend_from_slice(block);
    }
    z.extend_from_slice(&adler(&raw).to_be_bytes());
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[16, 0, 0, 0, 0]); // 16-bit grayscale
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &z);
    chunk(&mut png, b"IEND", &[]);
    std::fs::write(path, png).unwrap();
}

#[test]
fn nqr_rdx_is_detected_noise_is_not_and_truncated_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (rdx, noise) = (tmp.path().join("rdx.bin"), tmp.path().join("noise.bin"));
    let sim = json(&[
        "nqr",
        "simulate",
        "--out",
        p(&rdx),
        "--substance",
        "RDX",
        "--snr-db",
        "-6",
        "--seed",
        "11",
    ]);
    assert_eq!(sim["substance"], "RDX", "{sim}");
    json(&[
        "nqr",
        "simulate",
        "--out",
        p(&noise),
        "--substance",
        "none",
        "--seed",
        "12",
    ]);

    // The first detection calibrates and caches beside the signal file.
    let cal = tmp.path().join("nqr-calibration.json");
    assert!(!cal.exists());
    let found = json(&["nqr", "detect", p(&rdx)]);
    assert!(cal.is_file(), "calibration cached");
    assert_eq!(found["detected"], true, "{found}");
    assert_eq!(found["alert"], true, "RDX is an explosive: {found}");
    assert_eq!(found["substance"], "RDX");
    assert!(found["confidence"].as_f64().unwrap() > 0.99, "{found}");
    let t = found["estimated_temperature_k"].as_f64().unwrap();
    assert!((t - 298.0).abs() <= 3.0, "temperature {t}");
    assert_eq!(found["decisions"].as_array().unwrap().len(), 3);

    // The cached calibration is reused, at an explicit path too.
    let clean = json(&["nqr", "detect", p(&noise), "--calibration", p(&cal)]);
    assert_eq!(clean["detected"], false, "{clean}");
    assert_eq!(clean["alert"], false);
    assert!(clean["estimated_temperature_k"].is_null());

    // Truncated, not a signal file, bad options.
    let bytes = std::fs::read(&rdx).unwrap();
    let truncated = tmp.path().join("truncated.bin");
    std::fs::write(&truncated, &bytes[..bytes.len() - 1000]).unwrap();
    fails(&["nqr", "detect", p(&truncated)], "truncated");
    let header_only = tmp.path().join("header.bin");
    std::fs::write(&header_only, &bytes[..30]).unwrap();
    fails(&["nqr", "detect", p(&header_only)], "truncated");
    let junk = tmp.path().join("junk.bin");
    std::fs::write(&junk, b"this is not a signal file at all, only text").unwrap();
    fails(&["nqr", "detect", p(&junk)], "not an NQR signal file");
    fails(&["nqr", "detect", p(&rdx), "--pfa", "2"], "--pfa");
    let bad_cal = tmp.path().join("bad-cal.json");
    std::fs::write(&bad_cal, "{}").unwrap();
    fails(
        &["nqr", "detect", p(&rdx), "--calibration", p(&bad_cal)],
        "not a calibration file",
    );
    fails(
        &["nqr", "simulate", "--out", p(&noise), "--substance", "TNT"],
        "unknown substance",
    );
}
