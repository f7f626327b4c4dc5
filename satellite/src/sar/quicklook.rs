//! A quicklook PNG for the analyst: the scene in decibels, decimated by GDAL to at most
//! `max_size` pixels a side, land tinted, every detection boxed (red: dark, green: matched to
//! AIS) and written through GDAL's PNG driver.

use std::path::Path;

use gdal::raster::Buffer;
use gdal::{Dataset, DriverManager};

use super::discriminate::Detection;
use super::scene::{Samples, Scene, SceneError};

/// Writes the quicklook; `matched(d)` says whether a detection has an AIS partner.
pub fn write_quicklook(
    scene: &Scene,
    detections: &[Detection],
    matched: impl Fn(&Detection) -> bool,
    max_size: usize,
    out: &Path,
) -> Result<(), SceneError> {
    let err = |message: String| SceneError::Read {
        path: out.into(),
        message,
    };
    let scale = (scene.width.max(scene.height) as f64 / max_size.max(16) as f64).max(1.0);
    let (w, h) = (
        ((scene.width as f64 / scale).round() as usize).max(1),
        ((scene.height as f64 / scale).round() as usize).max(1),
    );
    let ds = Dataset::open(&scene.path).map_err(|e| err(e.to_string()))?;
    let band = ds.rasterband(1).map_err(|e| err(e.to_string()))?;
    // GDAL decimates (averaging keeps speckle from dominating the picture).
    let values = band
        .read_as::<f32>(
            (0, 0),
            (scene.width, scene.height),
            (w, h),
            Some(gdal::raster::ResampleAlg::Average),
        )
        .map_err(|e| err(e.to_string()))?
        .into_shape_and_vec()
        .1;
    let amplitude = matches!(
        scene.samples,
        Samples::Sigma0(_) | Samples::AmplitudeSquared
    );
    let nodata = scene.nodata.map(|v| v as f32);
    let db: Vec<f32> = values
        .iter()
        .map(|&v| {
            let p = if amplitude { v * v } else { v };
            if Some(v) == nodata || !(p > 0.0) || !p.is_finite() {
                f32::NAN
            } else {
                10.0 * p.log10()
            }
        })
        .collect();
    // Stretch between the 2nd and 99.5th percentiles of valid pixels.
    let mut sorted: Vec<f32> = db.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f32::total_cmp);
    let pick = |q: f64| {
        sorted
            .get(((sorted.len().saturating_sub(1)) as f64 * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let (lo, hi) = (pick(0.02), pick(0.995).max(pick(0.02) + 1.0));
    let mut rgb = [vec![0u8; w * h], vec![0u8; w * h], vec![0u8; w * h]];
    for (i, v) in db.iter().enumerate() {
        let g = if v.is_finite() {
            (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0) as u8
        } else {
            0
        };
        for c in &mut rgb {
            c[i] = g;
        }
    }
    for d in detections {
        let colour = if matched(d) {
            [40u8, 220, 90]
        } else {
            [255u8, 40, 40]
        };
        // A box a little larger than the object, at least 7 quicklook pixels.
        let half = ((d.length_m / scene.spacing_m.0.max(1e-3) / scale / 2.0) + 3.0).max(3.5);
        let (cx, cy) = (d.x / scale, d.y / scale);
        let (x0, x1) = ((cx - half).floor() as i64, (cx + half).ceil() as i64);
        let (y0, y1) = ((cy - half).floor() as i64, (cy + half).ceil() as i64);
        let mut put = |x: i64, y: i64| {
            if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
                let i = y as usize * w + x as usize;
                for (c, v) in rgb.iter_mut().zip(colour) {
                    c[i] = v;
                }
            }
        };
        for x in x0..=x1 {
            put(x, y0);
            put(x, y1);
        }
        for y in y0..=y1 {
            put(x0, y);
            put(x1, y);
        }
    }
    let mem = DriverManager::get_driver_by_name("MEM").map_err(|e| err(e.to_string()))?;
    let image = mem
        .create_with_band_type::<u8, _>("", w, h, 3)
        .map_err(|e| err(e.to_string()))?;
    for (i, data) in rgb.into_iter().enumerate() {
        let mut buffer = Buffer::new((w, h), data);
        image
            .rasterband(i + 1)
            .map_err(|e| err(e.to_string()))?
            .write((0, 0), (w, h), &mut buffer)
            .map_err(|e| err(e.to_string()))?;
    }
    let png = DriverManager::get_driver_by_name("PNG").map_err(|e| err(e.to_string()))?;
    image
        .create_copy(&png, out, &gdal::cpl::CslStringList::new())
        .map_err(|e| err(format!("writing the PNG: {e}")))?;
    Ok(())
}
