use mizugiwa_inspect::xray::*;
fn auc(s: &[(f64, bool)]) -> f64 { let p: Vec<f64> = s.iter().filter(|x| x.1).map(|x| x.0).collect(); let n: Vec<f64> = s.iter().filter(|x| !x.1).map(|x| x.0).collect(); let mut w = 0.0; for a in &p { for b in &n { w += if a > b {1.0} else if a == b {0.5} else {0.0}; } } w / (p.len() * n.len()) as f64 }
fn pd_at(s: &[(f64, bool)], far: f64) -> f64 { let mut n: Vec<f64> = s.iter().filter(|x| !x.1).map(|x| x.0).collect(); n.sort_by(|a,b| b.total_cmp(a)); let k = ((far * n.len() as f64).floor() as usize).min(n.len()-1); let th = n[k]; let p: Vec<f64> = s.iter().filter(|x| x.1).map(|x| x.0).collect(); p.iter().filter(|&&x| x > th).count() as f64 / p.len() as f64 }
fn main() {
    let model = match std::env::args().nth(1) { Some(p) => Model::load(p).unwrap(), None => Model::committed().unwrap() };
    let mut alerts = [0usize; 4];
    let names = ["max", "2x2 mean", "pair min", "3x3 sum", "top3 sum", "2x2 logit"];
    let mut sc: Vec<Vec<(f64,bool)>> = vec![vec![]; names.len()];
    let mut cls = std::collections::HashMap::new();
    for i in 0..300u64 {
        let g = generate(&GeneratorConfig::random(7_000_000 + i, 0.5)).unwrap();
        let r = model.scan(&g.scan, &g.manifest).unwrap();
        let pos = g.truth.hidden.iter().any(|h| h.kind != HiddenKind::MetalBlock);
        let slot = usize::from(!g.truth.hidden.is_empty()); alerts[slot * 2] += usize::from(r.risk.alert); alerts[slot * 2 + 1] += 1;
        let (w, h) = (r.tiles_x as usize, r.tiles_y as usize);
        let c = |x: usize, y: usize| r.tiles[y * w + x].contraband as f64;
        if !pos { for (t, l) in r.tiles.iter().zip(&g.truth.tile_labels) { if t.contraband > 0.7 { *cls.entry(format!("{:?}->{:?}", l, t.class)).or_insert(0) += 1; } } }
        let mut v = [0f64; 6];
        let mut all: Vec<f64> = r.tiles.iter().map(|t| t.contraband as f64).collect();
        all.sort_by(|a,b| b.total_cmp(a));
        v[0] = all[0]; v[4] = all[..3].iter().sum();
        for y in 0..h { for x in 0..w {
            if x + 1 < w && y + 1 < h { let m = (c(x,y)+c(x+1,y)+c(x,y+1)+c(x+1,y+1))/4.0; v[1] = v[1].max(m);
              let lg = |p: f64| (p.clamp(1e-4, 1.0-1e-4) / (1.0 - p.clamp(1e-4,1.0-1e-4))).ln(); v[5] = v[5].max(lg(c(x,y))+lg(c(x+1,y))+lg(c(x,y+1))+lg(c(x+1,y+1))); }
            let mut best_n = 0f64; for (dx, dy) in [(1i32,0i32),(-1,0),(0,1),(0,-1)] { let (nx, ny) = (x as i32 + dx, y as i32 + dy); if nx >= 0 && ny >= 0 && (nx as usize) < w && (ny as usize) < h { best_n = best_n.max(c(nx as usize, ny as usize)); } }
            v[2] = v[2].max(c(x,y).min(best_n));
            let mut s3 = 0.0; for dy in 0..3 { for dx in 0..3 { if x+dx < w && y+dy < h { s3 += c(x+dx,y+dy); } } } v[3] = v[3].max(s3);
        }}
        for k in 0..6 { sc[k].push((v[k], pos)); }
    }
    for k in 0..6 { println!("{:10} auc {:.3} pd@1% {:.2} pd@5% {:.2} pd@10% {:.2}", names[k], auc(&sc[k]), pd_at(&sc[k], 0.01), pd_at(&sc[k], 0.05), pd_at(&sc[k], 0.1)); }
    println!("alerts: clean {}/{}, hiding {}/{}", alerts[0], alerts[1], alerts[2], alerts[3]);
    let mut v: Vec<_> = cls.into_iter().collect(); v.sort_by_key(|x| std::cmp::Reverse(x.1)); println!("{:?}", &v[..v.len().min(12)]);
}
