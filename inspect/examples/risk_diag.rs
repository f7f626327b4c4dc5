use mizugiwa_inspect::xray::*;
fn main() {
    let model = Model::committed().unwrap();
    let mut n = 0; let mut by = std::collections::HashMap::new();
    for i in 0..200u64 {
        let g = generate(&GeneratorConfig::random(9_500_000 + i, 0.5)).unwrap();
        if !g.truth.hidden.is_empty() { continue; }
        let r = model.scan(&g.scan, &g.manifest).unwrap();
        n += 1;
        if r.risk.alert {
            let k = format!("{:?}", r.risk.reasons.first().map(|x| x.kind));
            *by.entry(k).or_insert(0) += 1;
            println!("{:?} score {:.2} est {:.0} decl {:.0} outside_tiles {} maxc {:.2} | {}", g.manifest.category, r.risk.score, r.estimated_weight_kg, r.declared_weight_kg, r.risk.outside_tiles, r.risk.max_contraband, r.risk.reasons.iter().map(|x| format!("{:?}={:.2}", x.kind, x.score)).collect::<Vec<_>>().join(" "));
        }
    }
    println!("{n} clean; alerts by top reason {by:?}");
}
