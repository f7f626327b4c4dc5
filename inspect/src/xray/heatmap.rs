//! The officer's overlay: the high-energy image with suspicious tiles tinted.

use super::{Scan, ScanResult};
use image::{Rgb, RgbImage};

/// Renders the scan (high band, log-scaled so dense and light goods both show) with each
/// tile tinted red by its contraband probability and amber by its probability of goods the
/// manifest does not explain. Save with `.save("out.png")`.
pub fn render_heatmap(scan: &Scan, result: &ScanResult) -> RgbImage {
    let (high, _) = scan.log_attenuation();
    // Scale so the most attenuating 1% of pixels are black.
    let mut sorted = high.clone();
    sorted.sort_by(f32::total_cmp);
    let top = sorted
        .get(sorted.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or(1.0)
        .max(1e-3);
    let tile = result.tile_size.max(1);
    let mut out = RgbImage::new(scan.width, scan.height);
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        let a = high[(y * scan.width + x) as usize];
        let gray = 255.0 * (1.0 - (a / top).clamp(0.0, 1.0));
        let (tx, ty) = (x / tile, y / tile);
        let (contraband, outside) = if tx < result.tiles_x && ty < result.tiles_y {
            let t = &result.tiles[(ty * result.tiles_x + tx) as usize];
            (t.contraband, (t.outside_category - t.contraband).max(0.0))
        } else {
            (0.0, 0.0)
        };
        let red = 0.65 * contraband;
        let amber = 0.5 * outside * (1.0 - red);
        let blend = |base: f32, tint: [f32; 3], c: usize, alpha: f32| {
            base * (1.0 - alpha) + tint[c] * alpha
        };
        let mut rgb = [gray; 3];
        for (c, v) in rgb.iter_mut().enumerate() {
            *v = blend(*v, [255.0, 30.0, 30.0], c, red);
            *v = blend(*v, [255.0, 170.0, 0.0], c, amber);
        }
        *pixel = Rgb(rgb.map(|v| v.round().clamp(0.0, 255.0) as u8));
    }
    out
}
