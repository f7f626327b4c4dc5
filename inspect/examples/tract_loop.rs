use mizugiwa_inspect::xray::*;
use std::time::Instant;
fn main() {
    let model = Model::committed().unwrap();
    let g = generate(&GeneratorConfig::random(5_000_000, 0.5)).unwrap();
    let (grid, f) = tile_features(&g.scan);
    let n = grid.len();
    let which = std::env::args().nth(1).unwrap_or_default();
    for _ in 0..100 { model.predict(&f, n).unwrap(); }
    let iters = 20000;
    let t = Instant::now();
    for _ in 0..iters { if which == "logits" { std::hint::black_box(model.logits(&f, n).unwrap()); } else { std::hint::black_box(model.predict(&f, n).unwrap()); } }
    println!("{which} {n} rows: {:.1} us/scan", t.elapsed().as_secs_f64() / iters as f64 * 1e6);
}
