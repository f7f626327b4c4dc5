//! The anomaly statistic: how far each pixel of the sea stands out from the water around it.
//!
//! As in SAR ship detection (CFAR), a pixel is compared with the water around it, not with a
//! fixed level: the background's mean and standard deviation come from a square window around
//! the pixel with a guard square cut out of its middle, so that an object does not hide itself
//! by raising its own background. Only clean-water pixels ([`super::water`]) count as
//! background, so shore, surf and other objects do not either. The statistic adds the squared
//! standardised differences of CIE Lab lightness and both colour axes: a white hull, a dark hull
//! and an orange life jacket on blue water all stand out, whichever way.
//!
//! The windows are sized in metres from the ground sample distance at the centre of the view and
//! work on the segmentation's grid of blocks, from exact first and second moments of the full
//! frame, so the cost does not grow with the window.

use opencv::core::{self, Mat, Point, Size};
use opencv::imgproc;
use opencv::prelude::*;

use super::water::Water;
use super::ImageryError;

/// Per-channel floors on the water's standard deviation (8-bit L*, a*, b*): perfectly flat
/// synthetic or over-compressed water would otherwise make every JPEG ripple an object.
const SIGMA_FLOOR: [f32; 3] = [2.0, 1.5, 1.5];

/// The anomaly statistic z² per full-resolution pixel of the sea (0 elsewhere, and where
/// too little water surrounds the pixel to know its background).
///
/// Three passes: block sums of L*, a*, b* and their squares over the frame; on the grid of
/// blocks, the clean-water sums over the background square minus the guard square (box
/// filters), hence the water's mean and standard deviation around each block; then each
/// pixel against those, interpolated between blocks. The full-resolution work is two plain
/// loops over the pixels rather than a dozen whole-image OpenCV operations, which spent
/// their time allocating and filling 11 MB intermediates.
pub fn z_squared(
    image: &Mat,
    water: &Water,
    gsd: f64,
    guard_m: f64,
    background_m: f64,
) -> Result<Mat, ImageryError> {
    let (w, h) = (image.cols() as usize, image.rows() as usize);
    let (sw, sh) = (water.clean.cols() as usize, water.clean.rows() as usize);
    let b = water.block as usize;
    let mut lab8 = Mat::default();
    imgproc::cvt_color(image, &mut lab8, imgproc::COLOR_BGR2Lab, 0)?;
    let lab = lab8.data_bytes()?;
    let clean = water.clean.data_bytes()?;
    let sea = water.sea.data_bytes()?;

    // 1. Per block: sums of x and x² for the three channels, centred on 128 so that the
    // squares keep their precision.
    let mut sums = vec![[0f32; 6]; sw * sh];
    for y in 0..h {
        let row = &lab[3 * w * y..3 * w * (y + 1)];
        let cells = &mut sums[(y / b) * sw..(y / b + 1) * sw];
        for (x, p) in row.chunks_exact(3).enumerate() {
            let s = &mut cells[x / b];
            for ch in 0..3 {
                let v = f32::from(p[ch]) - 128.0;
                s[ch] += v;
                s[3 + ch] += v * v;
            }
        }
    }
    // Clean-water blocks only, with their pixel counts.
    let mut s1 = Vec::with_capacity(sw * sh);
    let mut s2 = Vec::with_capacity(sw * sh);
    let mut n = Vec::with_capacity(sw * sh);
    for (i, s) in sums.iter().enumerate() {
        let (cx, cy) = (i % sw, i / sw);
        let count = ((w - cx * b).min(b) * (h - cy * b).min(b)) as f32;
        let k = if clean[i] != 0 { 1.0 } else { 0.0 };
        s1.push(core::Vec3f::from([s[0] * k, s[1] * k, s[2] * k]));
        s2.push(core::Vec3f::from([s[3] * k, s[4] * k, s[5] * k]));
        n.push(count * k);
    }

    // 2. Background squares on the block grid: windows in blocks, odd, within the frame.
    let px = gsd * water.scale.0;
    let limit = (2 * sw.max(sh) + 1).max(5) as i32;
    let odd = |m: f64| (((m / px).round() as i32) | 1).clamp(3, limit);
    let (guard, background) = (odd(guard_m), odd(background_m).max(odd(guard_m) + 2));
    let annulus = |src: &Mat| -> Result<Mat, ImageryError> {
        let (mut outer, mut inner, mut out) = (Mat::default(), Mat::default(), Mat::default());
        let anchor = Point::new(-1, -1);
        imgproc::box_filter(
            src,
            &mut outer,
            -1,
            Size::new(background, background),
            anchor,
            false,
            core::BORDER_CONSTANT,
        )?;
        imgproc::box_filter(
            src,
            &mut inner,
            -1,
            Size::new(guard, guard),
            anchor,
            false,
            core::BORDER_CONSTANT,
        )?;
        core::subtract(&outer, &inner, &mut out, &core::no_array(), -1)?;
        Ok(out)
    };
    let grid = |v: &[core::Vec3f]| -> Result<Mat, ImageryError> {
        Ok(Mat::new_rows_cols_with_data(sh as i32, sw as i32, v)?.try_clone()?)
    };
    let a1 = annulus(&grid(&s1)?)?;
    let a2 = annulus(&grid(&s2)?)?;
    let an = annulus(&Mat::new_rows_cols_with_data(sh as i32, sw as i32, &n)?.try_clone()?)?;
    let (a1, a2, an) = (
        a1.data_typed::<core::Vec3f>()?,
        a2.data_typed::<core::Vec3f>()?,
        an.data_typed::<f32>()?,
    );
    // Too little water around (a shore, a frame corner): no background, no test. Counted in
    // pixels: at least a tenth of the background square's ring.
    let min_count =
        0.1 * ((background * background - guard * guard) as f64 * (b * b) as f64) as f32;
    let mut mean = vec![[0f32; 3]; sw * sh];
    let mut inv_sigma = vec![[0f32; 3]; sw * sh];
    let mut valid = vec![false; sw * sh];
    for i in 0..sw * sh {
        let count = an[i].max(1.0);
        valid[i] = sea[i] != 0 && an[i] >= min_count;
        for ch in 0..3 {
            let m = a1[i][ch] / count;
            let var = (a2[i][ch] / count - m * m).max(SIGMA_FLOOR[ch] * SIGMA_FLOOR[ch]);
            mean[i][ch] = m;
            inv_sigma[i][ch] = 1.0 / var.sqrt();
        }
    }

    // 3. Each pixel of the sea against its background, interpolated bilinearly between
    // block centres.
    let axis = |len: usize, cells: usize| -> Vec<(usize, usize, f32)> {
        (0..len)
            .map(|x| {
                let f = ((x as f32 + 0.5) / b as f32 - 0.5).clamp(0.0, (cells - 1) as f32);
                let i = (f.floor() as usize).min(cells - 1);
                (i, (i + 1).min(cells - 1), f - i as f32)
            })
            .collect()
    };
    let (xs, ys) = (axis(w, sw), axis(h, sh));
    let mut z2 = vec![0f32; w * h];
    for (y, &(y0, y1, fy)) in ys.iter().enumerate() {
        let row = &lab[3 * w * y..3 * w * (y + 1)];
        let out = &mut z2[w * y..w * (y + 1)];
        let cy = y / b;
        for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
            if !valid[cy * sw + x / b] {
                continue;
            }
            let (i00, i01, i10, i11) = (y0 * sw + x0, y0 * sw + x1, y1 * sw + x0, y1 * sw + x1);
            let (w00, w01, w10, w11) = (
                (1.0 - fx) * (1.0 - fy),
                fx * (1.0 - fy),
                (1.0 - fx) * fy,
                fx * fy,
            );
            let mut sum = 0.0;
            for ch in 0..3 {
                let m = w00 * mean[i00][ch]
                    + w01 * mean[i01][ch]
                    + w10 * mean[i10][ch]
                    + w11 * mean[i11][ch];
                let k = w00 * inv_sigma[i00][ch]
                    + w01 * inv_sigma[i01][ch]
                    + w10 * inv_sigma[i10][ch]
                    + w11 * inv_sigma[i11][ch];
                let d = (f32::from(row[3 * x + ch]) - 128.0 - m) * k;
                sum += d * d;
            }
            out[x] = sum;
        }
    }
    Ok(Mat::new_rows_cols_with_data(h as i32, w as i32, &z2)?.try_clone()?)
}
