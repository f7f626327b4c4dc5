//! Writes a tile dataset from generated scans for `train/train_xray.py`.
//!
//! ```text
//! cargo run -p mizugiwa-inspect --example xray_dataset -- OUT_DIR SCANS SEED [P_HIDDEN]
//! ```
//!
//! Scan `i` uses generator seed `SEED + i` ([`GeneratorConfig::random`]). Output in OUT_DIR:
//! `features.f32` (little-endian f32, tiles × FEATURE_COUNT), `labels.u8` (tile class index),
//! `scan.u32` (scan index of each tile), `scan_hidden.u8` (1 if the scan hides contraband),
//! `meta.json`.

use mizugiwa_inspect::xray::{
    generate, tile_features, GeneratorConfig, HiddenKind, TileClass, FEATURE_COUNT,
};
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: xray_dataset OUT_DIR SCANS SEED [P_HIDDEN]".into());
    }
    let out = std::path::PathBuf::from(&args[0]);
    let scans: u64 = args[1].parse()?;
    let seed: u64 = args[2].parse()?;
    let p_hidden: f64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(0.7);
    std::fs::create_dir_all(&out)?;

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    type Chunk = Vec<(u64, Vec<f32>, Vec<u8>, bool)>;
    let chunks: Vec<Result<Chunk, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|worker| {
                scope.spawn(move || -> Result<Chunk, String> {
                    let mut rows = Vec::new();
                    for i in (worker..scans).step_by(threads as usize) {
                        let generated = generate(&GeneratorConfig::random(seed + i, p_hidden))
                            .map_err(|e| e.to_string())?;
                        let (_, features) = tile_features(&generated.scan);
                        let labels = generated
                            .truth
                            .tile_labels
                            .iter()
                            .map(|c| c.index() as u8)
                            .collect();
                        let contraband = generated
                            .truth
                            .hidden
                            .iter()
                            .any(|h| h.kind != HiddenKind::MetalBlock);
                        rows.push((i, features, labels, contraband));
                    }
                    Ok(rows)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into())))
            .collect()
    });
    let mut all = Vec::new();
    for chunk in chunks {
        all.extend(chunk?);
    }
    all.sort_by_key(|(i, ..)| *i);

    let mut features = std::io::BufWriter::new(std::fs::File::create(out.join("features.f32"))?);
    let mut labels = std::io::BufWriter::new(std::fs::File::create(out.join("labels.u8"))?);
    let mut scan_of = std::io::BufWriter::new(std::fs::File::create(out.join("scan.u32"))?);
    let mut hidden = Vec::new();
    let mut tiles = 0usize;
    let mut counts = [0usize; TileClass::COUNT];
    for (i, f, l, contraband) in &all {
        for v in f {
            features.write_all(&v.to_le_bytes())?;
        }
        labels.write_all(l)?;
        for &c in l {
            counts[c as usize] += 1;
            scan_of.write_all(&(*i as u32).to_le_bytes())?;
        }
        tiles += l.len();
        hidden.push(u8::from(*contraband));
    }
    std::fs::write(out.join("scan_hidden.u8"), &hidden)?;
    let classes: Vec<&str> = TileClass::ALL.iter().map(|c| c.name()).collect();
    let meta = serde_json::json!({
        "scans": scans, "seed": seed, "p_hidden": p_hidden, "tiles": tiles,
        "features": FEATURE_COUNT, "classes": classes, "class_counts": counts,
    });
    std::fs::write(out.join("meta.json"), serde_json::to_string_pretty(&meta)?)?;
    eprintln!("{tiles} tiles from {scans} scans; class counts {counts:?}");
    Ok(())
}
