//! Water segmentation: which pixels of a frame are open sea, without a trained model.
//!
//! The sea in a patrol frame is the large, smooth region whose colour is blue, green-blue or
//! grey, and it lies below the horizon. Land (vegetation, sand, rock, buildings) is warmer in
//! colour or rougher in texture; the sky is above the horizon, which the camera model knows.
//! On a frame reduced to about 320 pixels across (segmentation needs regions, not detail):
//!
//! 1. Geometry: pixels whose ray meets the sea surface within the range limit and steeply
//!    enough below the horizon.
//! 2. Seed: of those, pixels that look like water (CIE Lab `b*` not warm, local standard
//!    deviation of lightness low), opened to drop specks; the largest connected region is the
//!    seed, if it covers enough of the frame.
//! 3. Water model: the seed's median and spread (MAD) of L*, a*, b* and texture, robust to the
//!    boats and people inside it.
//! 4. Grow: every pixel within `k` robust standard deviations of the model and not rougher than
//!    the seed's texture allows, in regions that touch the seed; closed to bridge wave crests.
//!    These are the *clean water* pixels the anomaly test takes its background from.
//! 5. Fill: holes in the water smaller than the largest vessel (in square metres, from the
//!    ground sample distance at the hole) are things on the water and join the *sea*, the
//!    region searched. Holes larger than that (islands, rocks, piers) stay out, and so do the
//!    edges of the land, eroded by a pixel.

use opencv::core::{self, Mat, Point, Scalar, Size, Vector};
use opencv::imgproc;
use opencv::prelude::*;

use super::camera::View;
use super::ImageryError;

/// How water is told from land and sky.
#[derive(Debug, Clone, Copy)]
pub struct WaterConfig {
    /// About how wide the reduced frame is, pixels: the frame is cut into square blocks of a
    /// whole number of pixels, one reduced pixel each.
    pub work_width: u32,
    /// Warmest water, as CIE Lab `b*` (8-bit, 128 is neutral): sand, vegetation and soil are
    /// warmer; turbid coastal water is a little warm.
    pub max_b: u8,
    /// Roughest water in the seed: the local standard deviation of 8-bit lightness over 5 × 5
    /// reduced pixels.
    pub max_texture: f32,
    /// How far from the water model a pixel may be, in robust standard deviations.
    pub k: f32,
    /// Smallest share of the frame the seed must cover to be taken for water.
    pub min_fraction: f64,
    /// Holes in the water up to this area are objects on it, m².
    pub max_object_area_m2: f64,
    /// Pixels further than this are left out (too coarse to measure anything), m.
    pub max_range_m: f64,
    /// Pixels that look at the sea at a shallower angle below the horizon than this are left
    /// out, degrees: a flat sea is the wrong model there (a hull 2 m high stretches 11 m
    /// along the water at 10°) and the sea's sheen changes faster than any background window.
    pub min_depression_deg: f64,
}

impl Default for WaterConfig {
    fn default() -> WaterConfig {
        WaterConfig {
            work_width: 320,
            max_b: 140,
            max_texture: 14.0,
            k: 4.5,
            min_fraction: 0.05,
            max_object_area_m2: 1200.0,
            max_range_m: 2500.0,
            min_depression_deg: 10.0,
        }
    }
}

/// The reduced-resolution masks (255 = in) and the reduction factor.
pub struct Water {
    /// Where the anomaly test looks: water and what floats in it.
    pub sea: Mat,
    /// Water itself: the anomaly test's background.
    pub clean: Mat,
    /// Full-resolution pixels per reduced pixel, across and down (the block's side, except
    /// that a last, partial block stretches the mean a little).
    pub scale: (f64, f64),
    /// Side of a block, full-resolution pixels: reduced pixel (x / block, y / block) holds
    /// pixel (x, y).
    pub block: i32,
    /// Share of the frame that is clean water.
    pub fraction: f64,
}

fn mat_u8(rows: i32, cols: i32, data: &[u8]) -> Result<Mat, ImageryError> {
    Ok(Mat::new_rows_cols_with_data(rows, cols, data)?.try_clone()?)
}

/// Segments `frame` (8-bit BGR) seen from `view`.
pub fn segment(frame: &Mat, view: &View, cfg: &WaterConfig) -> Result<Water, ImageryError> {
    let (w, h) = (frame.cols(), frame.rows());
    let block = ((f64::from(w) / f64::from(cfg.work_width.max(16))).round() as i32).max(1);
    let (sw, sh) = ((w + block - 1) / block, (h + block - 1) / block);
    let scale = (w as f64 / sw as f64, h as f64 / sh as f64);
    let mut small = Mat::default();
    imgproc::resize(
        frame,
        &mut small,
        Size::new(sw, sh),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )?;
    let mut lab = Mat::default();
    imgproc::cvt_color(&small, &mut lab, imgproc::COLOR_BGR2Lab, 0)?;
    let texture = texture(&lab)?;
    let lab_px = lab.data_bytes()?;
    let tex_px = texture.data_typed::<f32>()?;
    let n = (sw * sh) as usize;

    // 1. Geometry.
    let mut geo = vec![0u8; n];
    let min_sin = cfg.min_depression_deg.to_radians().sin();
    for y in 0..sh {
        for x in 0..sw {
            let (u, v) = (
                (x as f64 + 0.5) * scale.0 - 0.5,
                (y as f64 + 0.5) * scale.1 - 0.5,
            );
            let steep =
                |p: &super::camera::SeaPoint| view.pose.vehicle.height_m / p.range_m >= min_sin;
            if view
                .sea_point(u, v)
                .is_some_and(|p| p.range_m <= cfg.max_range_m && steep(&p))
            {
                geo[(y * sw + x) as usize] = 255;
            }
        }
    }
    let empty = |fraction| -> Result<Water, ImageryError> {
        let zero = mat_u8(sh, sw, &vec![0u8; n])?;
        Ok(Water {
            sea: zero.clone(),
            clean: zero,
            scale,
            block,
            fraction,
        })
    };

    // 2. Seed.
    let candidate: Vec<u8> = (0..n)
        .map(|i| {
            if geo[i] == 255 && lab_px[3 * i + 2] <= cfg.max_b && tex_px[i] <= cfg.max_texture {
                255
            } else {
                0
            }
        })
        .collect();
    let mut opened = Mat::default();
    let k3 =
        imgproc::get_structuring_element(imgproc::MORPH_RECT, Size::new(3, 3), Point::new(-1, -1))?;
    morph(
        &mat_u8(sh, sw, &candidate)?,
        &mut opened,
        imgproc::MORPH_OPEN,
        &k3,
    )?;
    let (labels, areas) = components(&opened)?;
    let Some((seed_label, seed_area)) = areas
        .iter()
        .enumerate()
        .skip(1)
        .max_by_key(|(_, a)| **a)
        .map(|(l, a)| (l as i32, *a))
    else {
        return empty(0.0);
    };
    if (seed_area as f64) < cfg.min_fraction * n as f64 {
        return empty(0.0);
    }
    let seed_px = labels.data_typed::<i32>()?;

    // 3. Water model from the seed.
    let mut hist = [[0u32; 256]; 4];
    for i in (0..n).filter(|&i| seed_px[i] == seed_label) {
        for c in 0..3 {
            hist[c][usize::from(lab_px[3 * i + c])] += 1;
        }
        hist[3][(tex_px[i] * 4.0).clamp(0.0, 255.0) as usize] += 1;
    }
    let floors = [3.0, 2.0, 2.0];
    let model: Vec<(f32, f32)> = (0..3)
        .map(|c| median_and_sigma(&hist[c], 1.0, floors[c]))
        .collect();
    let (tex_median, tex_sigma) = median_and_sigma(&hist[3], 0.25, 0.5);
    let max_tex = cfg.max_texture.max(tex_median + cfg.k * tex_sigma);

    // 4. Grow within the model, in regions touching the seed.
    let k2 = cfg.k * cfg.k;
    let grown: Vec<u8> = (0..n)
        .map(|i| {
            let d2: f32 = (0..3)
                .map(|c| ((f32::from(lab_px[3 * i + c]) - model[c].0) / model[c].1).powi(2))
                .sum();
            if geo[i] == 255 && d2 <= k2 && tex_px[i] <= max_tex {
                255
            } else {
                0
            }
        })
        .collect();
    let (grown_labels, grown_areas) = components(&mat_u8(sh, sw, &grown)?)?;
    let grown_px = grown_labels.data_typed::<i32>()?;
    let mut touches = vec![false; grown_areas.len()];
    for i in (0..n).filter(|&i| seed_px[i] == seed_label) {
        touches[grown_px[i] as usize] = true;
    }
    touches[0] = false;
    let water: Vec<u8> = (0..n)
        .map(|i| {
            if touches[grown_px[i] as usize] {
                255
            } else {
                0
            }
        })
        .collect();
    let mut clean = Mat::default();
    morph(
        &mat_u8(sh, sw, &water)?,
        &mut clean,
        imgproc::MORPH_CLOSE,
        &k3,
    )?;
    let geo_mat = mat_u8(sh, sw, &geo)?;
    let mut clean_geo = Mat::default();
    core::bitwise_and(&clean, &geo_mat, &mut clean_geo, &core::no_array())?;
    let clean = clean_geo;

    // 5. Fill object-sized holes. Something cut by the frame's edge is not a hole and is left
    // out: its size and centre would be wrong, and a patrol's next frames see it whole. (Padding
    // the frame with water instead would turn the corner of a coast into an "object".)
    let mut contours = Vector::<Vector<Point>>::new();
    let mut hierarchy = Vector::<core::Vec4i>::new();
    imgproc::find_contours_with_hierarchy(
        &clean,
        &mut contours,
        &mut hierarchy,
        imgproc::RETR_CCOMP,
        imgproc::CHAIN_APPROX_SIMPLE,
        Point::new(0, 0),
    )?;
    let mut filled = clean.try_clone()?;
    for (i, contour) in contours.iter().enumerate() {
        // In RETR_CCOMP the holes are the contours with a parent.
        if hierarchy.get(i)?[3] < 0 {
            continue;
        }
        let area_px = imgproc::contour_area(&contour, false)?.max(1.0);
        let r = imgproc::bounding_rect(&contour)?;
        let (cu, cv) = (
            (r.x as f64 + r.width as f64 / 2.0) * scale.0,
            (r.y as f64 + r.height as f64 / 2.0) * scale.1,
        );
        let Some(gsd) = view.ground_sample_m(cu, cv) else {
            continue;
        };
        if area_px * scale.0 * scale.1 * gsd * gsd <= cfg.max_object_area_m2 {
            let one = Vector::<Vector<Point>>::from_iter([contour]);
            imgproc::draw_contours(
                &mut filled,
                &one,
                -1,
                Scalar::all(255.0),
                -1,
                imgproc::LINE_8,
                &core::no_array(),
                0,
                Point::new(0, 0),
            )?;
        }
    }
    let mut sea = Mat::default();
    core::bitwise_and(&filled, &geo_mat, &mut sea, &core::no_array())?;
    let mut eroded = Mat::default();
    morph(&sea, &mut eroded, imgproc::MORPH_ERODE, &k3)?;
    let fraction = core::count_non_zero(&clean)? as f64 / n as f64;
    Ok(Water {
        sea: eroded,
        clean,
        scale,
        block,
        fraction,
    })
}

/// Local standard deviation of lightness over 5 × 5 pixels, f32.
fn texture(lab: &Mat) -> Result<Mat, ImageryError> {
    let mut l8 = Mat::default();
    core::extract_channel(lab, &mut l8, 0)?;
    let mut l = Mat::default();
    l8.convert_to(&mut l, core::CV_32F, 1.0, 0.0)?;
    let mut l2 = Mat::default();
    core::multiply(&l, &l, &mut l2, 1.0, -1)?;
    let (mut m, mut m2) = (Mat::default(), Mat::default());
    let k = Size::new(5, 5);
    imgproc::blur(&l, &mut m, k, Point::new(-1, -1), core::BORDER_REFLECT)?;
    imgproc::blur(&l2, &mut m2, k, Point::new(-1, -1), core::BORDER_REFLECT)?;
    let mut mm = Mat::default();
    core::multiply(&m, &m, &mut mm, 1.0, -1)?;
    let mut var = Mat::default();
    core::subtract(&m2, &mm, &mut var, &core::no_array(), -1)?;
    let mut pos = Mat::default();
    core::max(&var, &Scalar::all(0.0), &mut pos)?;
    let mut sd = Mat::default();
    core::sqrt(&pos, &mut sd)?;
    Ok(sd)
}

fn morph(src: &Mat, dst: &mut Mat, op: i32, kernel: &Mat) -> Result<(), ImageryError> {
    imgproc::morphology_ex(
        src,
        dst,
        op,
        kernel,
        Point::new(-1, -1),
        1,
        core::BORDER_CONSTANT,
        imgproc::morphology_default_border_value()?,
    )?;
    Ok(())
}

/// 8-connected components: the label image (i32) and each label's area (label 0 is the
/// background).
fn components(mask: &Mat) -> Result<(Mat, Vec<i32>), ImageryError> {
    let (mut labels, mut stats, mut centroids) = (Mat::default(), Mat::default(), Mat::default());
    let count = imgproc::connected_components_with_stats(
        mask,
        &mut labels,
        &mut stats,
        &mut centroids,
        8,
        core::CV_32S,
    )?;
    let areas = (0..count)
        .map(|l| stats.at_2d::<i32>(l, imgproc::CC_STAT_AREA).copied())
        .collect::<Result<Vec<_>, _>>()?;
    Ok((labels, areas))
}

/// Median and robust standard deviation (1.4826 × MAD, at least `floor`) of a histogram whose
/// bins are `bin` units wide.
fn median_and_sigma(hist: &[u32; 256], bin: f32, floor: f32) -> (f32, f32) {
    let total: u64 = hist.iter().map(|&c| u64::from(c)).sum();
    let quantile = |counts: &dyn Fn(usize) -> u64, len: usize| -> usize {
        let mut acc = 0;
        for i in 0..len {
            acc += counts(i);
            if 2 * acc >= total {
                return i;
            }
        }
        len - 1
    };
    let median = quantile(&|i| u64::from(hist[i]), 256);
    // Absolute deviations from the median, binned the same way.
    let deviation = |d: usize| -> u64 {
        let lo = median.checked_sub(d).map_or(0, |i| u64::from(hist[i]));
        let hi = if d > 0 {
            hist.get(median + d).map_or(0, |&c| u64::from(c))
        } else {
            0
        };
        lo + hi
    };
    let mad = quantile(&deviation, 256);
    (median as f32 * bin, (1.4826 * mad as f32 * bin).max(floor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_statistics_ignore_a_minority() {
        let mut hist = [0u32; 256];
        hist[100] = 50;
        hist[101] = 30;
        hist[99] = 30;
        hist[250] = 20; // a boat
        let (m, s) = median_and_sigma(&hist, 1.0, 0.0);
        assert_eq!(m, 100.0);
        assert!((s - 1.4826).abs() < 1e-4, "{s}");
    }
}
