use mizugiwa_inspect::xray::*;
fn main() {
    for seed in [11u64, 12, 13] {
        let config = GeneratorConfig::new(seed, Category::Textiles).with_hidden(vec![HiddenKind::MetalBlock]);
        let g = generate(&config).unwrap();
        let c = Contents::of(&g.scan).unwrap();
        let b = g.truth.hidden[0].bbox.clone();
        let (mut sh, mut ms, mut n) = (0f64, 0f64, 0);
        let mut shares = vec![];
        for y in b.y0..b.y1 { for x in b.x0..b.x1 { let i = y as usize * c.width + x as usize; sh += c.steel_share[i] as f64; ms += c.mass_g_cm2[i] as f64; n += 1; shares.push((c.steel_share[i], c.mass_g_cm2[i])); } }
        println!("seed {seed}: block {:?} {:.0} kg; mean share {:.2} mean mass {:.0} g/cm2; pitch {} cm; sample {:?}", b, g.truth.hidden[0].mass_kg, sh / n as f64, ms / n as f64, c.pixel_cm, &shares[shares.len()/2..shares.len()/2+5]);
    }
}
