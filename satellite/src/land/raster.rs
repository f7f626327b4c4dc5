//! Land burnt into a scene's pixel grid, and the shore buffer.
//!
//! Polygons arrive already in the scene's pixel coordinates: the caller owns the
//! georeferencing (geotransform, GCPs, a UTM frame), this module only the burning, done by
//! GDAL (`GDALRasterizeGeometries`, what `gdal_rasterize` runs) so the rule for which pixel is
//! land is GDAL's, the same for the detector and the scene generator.

use gdal::raster::{rasterize, RasterizeOptions};
use gdal::vector::ToGdal;
use gdal::DriverManager;
use geo::{BoundingRect, Buffer, MultiPolygon};

use super::LandError;

/// A window of a scene in pixels: columns `x0..x0 + width`, rows `y0..y0 + height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelWindow {
    pub x0: usize,
    pub y0: usize,
    pub width: usize,
    pub height: usize,
}

/// Burns polygons given in the scene's pixel coordinates (x = column, y = row, the pixel at
/// column c, row r spanning [c, c + 1) × [r, r + 1) with its centre at (c + 0.5, r + 0.5)) into
/// a row-major mask of `window`: 1 inside, 0 outside. A pixel is inside when its centre is, or
/// with `all_touched` when the polygon touches it at all (GDAL's `ALL_TOUCHED`, for a
/// conservative mask).
///
/// GDAL does the burning, in a MEM dataset of the window's size whose geotransform is
/// `[x0, 1, 0, y0, 0, 1]`, so the result is what `gdal_rasterize` would give. Polygons whose
/// bounding box misses the window are left out before GDAL sees them.
///
/// ```
/// use geo::{polygon, MultiPolygon};
/// use mizugiwa_satellite::land::{rasterize_pixels, PixelWindow};
///
/// let square: MultiPolygon<f64> = polygon![(x: 2.0, y: 1.0), (x: 5.0, y: 1.0), (x: 5.0, y: 3.0), (x: 2.0, y: 3.0)].into();
/// let mask = rasterize_pixels(&square, PixelWindow { x0: 0, y0: 0, width: 8, height: 4 }, false)?;
/// assert_eq!(mask.iter().filter(|&&v| v == 1).count(), 6); // 3 columns × 2 rows
/// assert_eq!(mask[8 + 2], 1); // row 1, column 2
/// # Ok::<(), mizugiwa_satellite::land::LandError>(())
/// ```
pub fn rasterize_pixels(
    polygons_px: &MultiPolygon<f64>,
    window: PixelWindow,
    all_touched: bool,
) -> Result<Vec<u8>, LandError> {
    let PixelWindow {
        x0,
        y0,
        width,
        height,
    } = window;
    if width == 0 || height == 0 {
        return Err(LandError::Window(format!(
            "the window {width} × {height} is empty"
        )));
    }
    // GDAL sizes are C ints.
    if width > i32::MAX as usize || height > i32::MAX as usize {
        return Err(LandError::Window(format!(
            "the window {width} × {height} is larger than GDAL allows"
        )));
    }
    let len = width
        .checked_mul(height)
        .ok_or_else(|| LandError::Window(format!("the window {width} × {height} is too large")))?;
    let (wx0, wy0) = (x0 as f64, y0 as f64);
    let (wx1, wy1) = (wx0 + width as f64, wy0 + height as f64);
    let geometries = polygons_px
        .iter()
        .filter(|p| {
            p.bounding_rect().is_some_and(|b| {
                b.min().x < wx1 && b.max().x > wx0 && b.min().y < wy1 && b.max().y > wy0
            })
        })
        .map(|p| p.to_gdal())
        .collect::<Result<Vec<_>, _>>()?;
    if geometries.is_empty() {
        return Ok(vec![0; len]);
    }
    let driver = DriverManager::get_driver_by_name("MEM")?;
    let mut dataset = driver.create_with_band_type::<u8, _>("", width, height, 1)?;
    dataset.set_geo_transform(&[wx0, 1.0, 0.0, wy0, 0.0, 1.0])?;
    let burn = vec![1.0; geometries.len()];
    let options = RasterizeOptions {
        all_touched,
        ..Default::default()
    };
    rasterize(&mut dataset, &[1], &geometries, &burn, Some(options))?;
    let band = dataset.rasterband(1)?;
    let (_, mask) = band
        .read_as::<u8>((0, 0), (width, height), (width, height), None)?
        .into_shape_and_vec();
    Ok(mask)
}

/// Grows polygons (pixel coordinates) by `distance_px`, round joins: the shore buffer, so that
/// piers, breakwaters and the sidelobes of bright land stay out of the sea. A negative distance
/// shrinks them; zero, NaN or infinity give them back unchanged (a buffer of unknown size is
/// no buffer).
pub fn buffer_pixels(polys: &MultiPolygon<f64>, distance_px: f64) -> MultiPolygon<f64> {
    if !distance_px.is_finite() || distance_px == 0.0 || polys.0.is_empty() {
        return polys.clone();
    }
    polys.buffer(distance_px)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{polygon, Area};

    fn count(mask: &[u8]) -> usize {
        mask.iter().filter(|&&v| v == 1).count()
    }

    #[test]
    fn rasterizes_a_square_by_pixel_centres() {
        // 10.2..20.2 × 5.3..15.3 covers the centres 10.5..19.5 (10 columns) × 5.5..14.5 (10 rows).
        // (No edge on a pixel boundary nor through a centre: GDAL's rule for those is its own.)
        let square: MultiPolygon<f64> =
            polygon![(x: 10.2, y: 5.3), (x: 20.2, y: 5.3), (x: 20.2, y: 15.3), (x: 10.2, y: 15.3)]
                .into();
        let window = PixelWindow {
            x0: 0,
            y0: 0,
            width: 32,
            height: 20,
        };
        let mask = rasterize_pixels(&square, window, false).unwrap();
        assert_eq!(mask.len(), 32 * 20);
        assert_eq!(count(&mask), 100);
        assert_eq!(mask[5 * 32 + 10], 1);
        assert_eq!(mask[5 * 32 + 20], 0);
        assert_eq!(mask[4 * 32 + 10], 0);
        // All touched adds the partly covered column 20 and row 15.
        let touched = rasterize_pixels(&square, window, true).unwrap();
        assert_eq!(count(&touched), 121);
        assert_eq!(touched[15 * 32 + 20], 1);
        // A window offset into the scene sees the same pixels at scene coordinates.
        let offset = PixelWindow {
            x0: 12,
            y0: 10,
            width: 10,
            height: 10,
        };
        let part = rasterize_pixels(&square, offset, false).unwrap();
        // Columns 12..19 (8) × rows 10..14 (5).
        assert_eq!(count(&part), 40);
        assert_eq!(part[0], 1);
        assert_eq!(part[5 * 10], 0);
    }

    #[test]
    fn rasterizes_a_triangle() {
        // Right triangle with legs of 9.9 px from (0,0): a centre (c+0.5, r+0.5) is inside when
        // c + r + 1 < 9.9, i.e. c + r <= 8: 9 + 8 + ... + 1 = 45 pixels.
        let triangle: MultiPolygon<f64> =
            polygon![(x: 0.0, y: 0.0), (x: 9.9, y: 0.0), (x: 0.0, y: 9.9)].into();
        let mask = rasterize_pixels(
            &triangle,
            PixelWindow {
                x0: 0,
                y0: 0,
                width: 12,
                height: 12,
            },
            false,
        )
        .unwrap();
        assert_eq!(count(&mask), 45);
        for r in 0..12 {
            for c in 0..12 {
                assert_eq!(mask[r * 12 + c] == 1, c + r <= 8, "row {r} column {c}");
            }
        }
    }

    #[test]
    fn rasterize_rejects_an_empty_window_and_skips_far_polygons() {
        let square: MultiPolygon<f64> =
            polygon![(x: 0.0, y: 0.0), (x: 4.0, y: 0.0), (x: 4.0, y: 4.0), (x: 0.0, y: 4.0)].into();
        assert!(rasterize_pixels(
            &square,
            PixelWindow {
                x0: 0,
                y0: 0,
                width: 0,
                height: 4
            },
            false
        )
        .is_err());
        let far = rasterize_pixels(
            &square,
            PixelWindow {
                x0: 100,
                y0: 100,
                width: 4,
                height: 4,
            },
            true,
        )
        .unwrap();
        assert_eq!(far, vec![0; 16]);
    }

    #[test]
    fn buffer_grows_by_the_distance() {
        let square: MultiPolygon<f64> =
            polygon![(x: 0.0, y: 0.0), (x: 10.0, y: 0.0), (x: 10.0, y: 10.0), (x: 0.0, y: 10.0)]
                .into();
        let grown = buffer_pixels(&square, 2.0);
        // 100 + 4 sides × 10 × 2 + a circle of radius 2 at the corners.
        let expected = 100.0 + 80.0 + std::f64::consts::PI * 4.0;
        assert!(
            (grown.unsigned_area() - expected).abs() < 0.5,
            "{}",
            grown.unsigned_area()
        );
        assert_eq!(buffer_pixels(&square, f64::NAN), square);
        let shrunk = buffer_pixels(&square, -2.0);
        assert!(
            (shrunk.unsigned_area() - 36.0).abs() < 0.5,
            "{}",
            shrunk.unsigned_area()
        );
    }
}
