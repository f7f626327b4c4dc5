//! Pixel ↔ WGS84 mapping of a scene, as a tie-point grid.
//!
//! Scenes come georeferenced two ways: a geotransform in some CRS (GeoTIFF products, usually
//! UTM), or ground control points (Sentinel-1 GRD measurement TIFFs carry a grid of about
//! 10 × 21 GCPs in lon/lat). Both become the same thing here, the way SNAP keeps tie-point
//! grids: longitude and latitude sampled on a regular grid of pixel positions, interpolated
//! bilinearly in between. A geotransform is sampled through GDAL's coordinate transformation
//! once, at open time (a 33 × 33 grid reproduces UTM to well under a centimetre over a
//! Sentinel-1 scene); GCPs that already form a grid are used as they are; scattered GCPs are
//! fitted with a least-squares polynomial (order 2 from six points, else 1) that is then
//! sampled. The result is plain data: `Send + Sync`, cheap to query from any thread, with no
//! GDAL handle kept alive.
//!
//! Going back from lon/lat to pixels (to draw the land mask into the image, to place AIS
//! positions) inverts the grid with Newton's method started from an affine fit.

use geo::{Distance, Haversine, Point};

/// Longitude and latitude (degrees) sampled on a grid of pixel positions.
#[derive(Debug, Clone, PartialEq)]
pub struct TiePointGrid {
    /// Pixel (column) positions of the grid's columns, strictly increasing.
    xs: Vec<f64>,
    /// Line (row) positions of the grid's rows, strictly increasing.
    ys: Vec<f64>,
    /// Longitude per node, row-major (`ys.len()` rows of `xs.len()`).
    lon: Vec<f64>,
    /// Latitude per node, row-major.
    lat: Vec<f64>,
    /// Affine least-squares fit (lon, lat) → (x, y), the inverse's starting point.
    inverse_guess: [f64; 6],
}

/// Why a grid could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeorefError {
    #[error("need at least 3 ground control points, the scene has {0}")]
    TooFewGcps(usize),
    #[error("the ground control points are degenerate (collinear or repeated)")]
    DegenerateGcps,
    #[error("a tie point is not a finite longitude/latitude: {0}")]
    NotFinite(String),
}

/// One ground control point: pixel position and WGS84 longitude/latitude.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TiePoint {
    pub pixel: f64,
    pub line: f64,
    pub lon: f64,
    pub lat: f64,
}

impl TiePointGrid {
    /// Samples `to_lonlat` on an `n × n` grid spanning a `width × height` image (pixel edges
    /// included, so the whole image interpolates rather than extrapolates).
    pub fn sample(
        width: usize,
        height: usize,
        n: usize,
        mut to_lonlat: impl FnMut(f64, f64) -> (f64, f64),
    ) -> Result<TiePointGrid, GeorefError> {
        let n = n.max(2);
        let axis = |len: usize| -> Vec<f64> {
            (0..n)
                .map(|i| len as f64 * i as f64 / (n - 1) as f64)
                .collect()
        };
        let (xs, ys) = (axis(width.max(1)), axis(height.max(1)));
        let mut points = Vec::with_capacity(n * n);
        for &y in &ys {
            for &x in &xs {
                let (lon, lat) = to_lonlat(x, y);
                points.push(TiePoint {
                    pixel: x,
                    line: y,
                    lon,
                    lat,
                });
            }
        }
        TiePointGrid::from_grid(xs, ys, &points)
    }

    /// A grid from ground control points: used as they are when they form a complete regular
    /// grid (Sentinel-1), otherwise fitted with a polynomial and sampled.
    pub fn from_gcps(
        width: usize,
        height: usize,
        gcps: &[TiePoint],
    ) -> Result<TiePointGrid, GeorefError> {
        if gcps.len() < 3 {
            return Err(GeorefError::TooFewGcps(gcps.len()));
        }
        if let Some(bad) = gcps.iter().find(|g| {
            !(g.lon.is_finite() && g.lat.is_finite() && g.pixel.is_finite() && g.line.is_finite())
        }) {
            return Err(GeorefError::NotFinite(format!("{bad:?}")));
        }
        let mut xs: Vec<f64> = gcps.iter().map(|g| g.pixel).collect();
        let mut ys: Vec<f64> = gcps.iter().map(|g| g.line).collect();
        for v in [&mut xs, &mut ys] {
            v.sort_by(f64::total_cmp);
            v.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
        }
        if xs.len() >= 2 && ys.len() >= 2 && xs.len() * ys.len() == gcps.len() {
            let mut ordered = gcps.to_vec();
            ordered.sort_by(|a, b| a.line.total_cmp(&b.line).then(a.pixel.total_cmp(&b.pixel)));
            let is_grid = ordered.iter().enumerate().all(|(i, g)| {
                (g.pixel - xs[i % xs.len()]).abs() < 1e-6
                    && (g.line - ys[i / xs.len()]).abs() < 1e-6
            });
            if is_grid {
                return TiePointGrid::from_grid(xs, ys, &ordered);
            }
        }
        let order = if gcps.len() >= 6 { 2 } else { 1 };
        let fit = Polynomial::fit(gcps, order).ok_or(GeorefError::DegenerateGcps)?;
        TiePointGrid::sample(width, height, 33, |x, y| fit.eval(x, y))
    }

    fn from_grid(
        xs: Vec<f64>,
        ys: Vec<f64>,
        points: &[TiePoint],
    ) -> Result<TiePointGrid, GeorefError> {
        if let Some(bad) = points
            .iter()
            .find(|p| !(p.lon.is_finite() && p.lat.is_finite()))
        {
            return Err(GeorefError::NotFinite(format!("{bad:?}")));
        }
        let inverse = Polynomial::fit_inverse_affine(points).ok_or(GeorefError::DegenerateGcps)?;
        Ok(TiePointGrid {
            lon: points.iter().map(|p| p.lon).collect(),
            lat: points.iter().map(|p| p.lat).collect(),
            xs,
            ys,
            inverse_guess: inverse,
        })
    }

    /// Longitude and latitude of the pixel position `(x, y)` (pixel edges at integers, so the
    /// centre of pixel (0, 0) is (0.5, 0.5)).
    pub fn to_lonlat(&self, x: f64, y: f64) -> (f64, f64) {
        let (i, fx) = cell(&self.xs, x);
        let (j, fy) = cell(&self.ys, y);
        let nx = self.xs.len();
        let at = |v: &[f64]| {
            let (a, b) = (v[j * nx + i], v[j * nx + i + 1]);
            let (c, d) = (v[(j + 1) * nx + i], v[(j + 1) * nx + i + 1]);
            (a * (1.0 - fx) + b * fx) * (1.0 - fy) + (c * (1.0 - fx) + d * fx) * fy
        };
        (at(&self.lon), at(&self.lat))
    }

    /// The pixel position of a longitude/latitude; `None` when Newton's method does not settle
    /// (far outside the grid, where the mapping folds).
    pub fn to_pixel(&self, lon: f64, lat: f64) -> Option<(f64, f64)> {
        let g = &self.inverse_guess;
        let (mut x, mut y) = (
            g[0] + g[1] * lon + g[2] * lat,
            g[3] + g[4] * lon + g[5] * lat,
        );
        for _ in 0..30 {
            let (lo, la) = self.to_lonlat(x, y);
            let (rlon, rlat) = (lon - lo, lat - la);
            // The Jacobian by central differences one pixel wide: exact for the bilinear cells
            // except across cell edges, where Newton still converges.
            let (ax, ay) = self.to_lonlat(x + 0.5, y);
            let (bx, by) = self.to_lonlat(x - 0.5, y);
            let (cx, cy) = self.to_lonlat(x, y + 0.5);
            let (dx, dy) = self.to_lonlat(x, y - 0.5);
            let (j11, j21, j12, j22) = (ax - bx, ay - by, cx - dx, cy - dy);
            let det = j11 * j22 - j12 * j21;
            if det.abs() < 1e-30 || !det.is_finite() {
                return None;
            }
            let sx = (j22 * rlon - j12 * rlat) / det;
            let sy = (-j21 * rlon + j11 * rlat) / det;
            x += sx;
            y += sy;
            if !(x.is_finite() && y.is_finite()) {
                return None;
            }
            if sx.abs() < 1e-6 && sy.abs() < 1e-6 {
                return Some((x, y));
            }
        }
        None
    }

    /// Ground distance in metres of one pixel step in x and in y at the pixel `(x, y)`.
    pub fn pixel_spacing_at(&self, x: f64, y: f64) -> (f64, f64) {
        let p = |(lon, lat): (f64, f64)| Point::new(lon, lat);
        let here = p(self.to_lonlat(x, y));
        (
            Haversine.distance(here, p(self.to_lonlat(x + 1.0, y))),
            Haversine.distance(here, p(self.to_lonlat(x, y + 1.0))),
        )
    }

    /// Bearing (degrees clockwise from north) of the direction `(dx, dy)` in pixels at `(x, y)`.
    pub fn bearing_of(&self, x: f64, y: f64, dx: f64, dy: f64) -> f64 {
        let (lon0, lat0) = self.to_lonlat(x, y);
        let (lon1, lat1) = self.to_lonlat(x + dx, y + dy);
        let east = (lon1 - lon0) * lat0.to_radians().cos();
        let north = lat1 - lat0;
        east.atan2(north).to_degrees().rem_euclid(360.0)
    }

    /// The lon/lat bounding box `(min_lon, min_lat, max_lon, max_lat)` of the grid.
    pub fn bounds(&self) -> (f64, f64, f64, f64) {
        let fold = |v: &[f64]| {
            v.iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)))
        };
        let (min_lon, max_lon) = fold(&self.lon);
        let (min_lat, max_lat) = fold(&self.lat);
        (min_lon, min_lat, max_lon, max_lat)
    }
}

/// The cell index left of `v` in `axis` and the fraction across it (extrapolating linearly
/// beyond the ends).
fn cell(axis: &[f64], v: f64) -> (usize, f64) {
    let last = axis.len() - 2;
    let i = match axis.binary_search_by(|a| a.total_cmp(&v)) {
        Ok(i) => i.min(last),
        Err(i) => i.saturating_sub(1).min(last),
    };
    (i, (v - axis[i]) / (axis[i + 1] - axis[i]))
}

/// A least-squares polynomial (pixel, line) → (lon, lat).
struct Polynomial {
    order: usize,
    lon: Vec<f64>,
    lat: Vec<f64>,
}

impl Polynomial {
    fn terms(order: usize, x: f64, y: f64) -> Vec<f64> {
        match order {
            1 => vec![1.0, x, y],
            _ => vec![1.0, x, y, x * x, x * y, y * y],
        }
    }

    fn fit(points: &[TiePoint], order: usize) -> Option<Polynomial> {
        // Normalised coordinates keep the normal equations well conditioned.
        let rows: Vec<Vec<f64>> = points
            .iter()
            .map(|p| Self::terms(order, p.pixel / 1e4, p.line / 1e4))
            .collect();
        let lon = least_squares(&rows, &points.iter().map(|p| p.lon).collect::<Vec<_>>())?;
        let lat = least_squares(&rows, &points.iter().map(|p| p.lat).collect::<Vec<_>>())?;
        Some(Polynomial { order, lon, lat })
    }

    fn eval(&self, x: f64, y: f64) -> (f64, f64) {
        let t = Self::terms(self.order, x / 1e4, y / 1e4);
        let dot = |c: &[f64]| c.iter().zip(&t).map(|(a, b)| a * b).sum();
        (dot(&self.lon), dot(&self.lat))
    }

    /// Affine (lon, lat) → (x, y) as `[x0, x_lon, x_lat, y0, y_lon, y_lat]`.
    fn fit_inverse_affine(points: &[TiePoint]) -> Option<[f64; 6]> {
        // Centred on the mean: a small scene's longitudes differ in the fifth decimal around
        // 130, which uncentred normal equations cannot tell from collinear.
        let n = points.len().max(1) as f64;
        let (mlon, mlat) = (
            points.iter().map(|p| p.lon).sum::<f64>() / n,
            points.iter().map(|p| p.lat).sum::<f64>() / n,
        );
        let rows: Vec<Vec<f64>> = points
            .iter()
            .map(|p| vec![1.0, p.lon - mlon, p.lat - mlat])
            .collect();
        let x = least_squares(&rows, &points.iter().map(|p| p.pixel).collect::<Vec<_>>())?;
        let y = least_squares(&rows, &points.iter().map(|p| p.line).collect::<Vec<_>>())?;
        Some([
            x[0] - x[1] * mlon - x[2] * mlat,
            x[1],
            x[2],
            y[0] - y[1] * mlon - y[2] * mlat,
            y[1],
            y[2],
        ])
    }
}

/// Solves the normal equations of `rows · c ≈ values` by Gaussian elimination with partial
/// pivoting; `None` when they are singular.
fn least_squares(rows: &[Vec<f64>], values: &[f64]) -> Option<Vec<f64>> {
    let n = rows.first()?.len();
    let mut a = vec![vec![0.0; n + 1]; n];
    for (row, v) in rows.iter().zip(values) {
        for i in 0..n {
            for j in 0..n {
                a[i][j] += row[i] * row[j];
            }
            a[i][n] += row[i] * v;
        }
    }
    let scale = a
        .iter()
        .map(|r| r[..n].iter().fold(0.0f64, |m, v| m.max(v.abs())))
        .fold(0.0f64, f64::max);
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() <= scale * 1e-13 {
            return None;
        }
        a.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col].clone();
            for (k, v) in a[row].iter_mut().enumerate().skip(col) {
                *v -= f * pivot_row[k];
            }
        }
    }
    let mut c = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|j| a[i][j] * c[j]).sum();
        c[i] = (a[i][n] - s) / a[i][i];
    }
    c.iter().all(|v| v.is_finite()).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gently rotated and sheared mapping, like a descending pass.
    fn truth(x: f64, y: f64) -> (f64, f64) {
        (
            129.0 + x * 1.1e-4 - y * 2.0e-5 + x * y * 1e-10,
            34.5 - y * 9.0e-5 - x * 1.5e-5,
        )
    }

    #[test]
    fn a_sampled_grid_round_trips_pixels() {
        let grid = TiePointGrid::sample(4000, 3000, 33, truth).unwrap();
        for &(x, y) in &[
            (0.5, 0.5),
            (1234.5, 987.5),
            (3999.5, 2999.5),
            (2000.0, 1500.0),
        ] {
            let (lon, lat) = grid.to_lonlat(x, y);
            let (tl, ta) = truth(x, y);
            assert!((lon - tl).abs() < 1e-9 && (lat - ta).abs() < 1e-9);
            let (bx, by) = grid.to_pixel(lon, lat).unwrap();
            assert!(
                (bx - x).abs() < 1e-4 && (by - y).abs() < 1e-4,
                "{bx},{by} vs {x},{y}"
            );
        }
        let (sx, sy) = grid.pixel_spacing_at(2000.0, 1500.0);
        assert!(sx > 9.0 && sx < 12.0 && sy > 9.0 && sy < 11.0, "{sx} {sy}");
    }

    #[test]
    fn the_tiniest_scenes_are_georeferenced_too() {
        // A 1 × 1 scene spans 10 m: its longitudes differ by 1e-4 degrees around 129, which the
        // inverse fit must not take for collinear points.
        for (w, h) in [(1, 1), (3, 2), (1, 70), (70, 1)] {
            let grid =
                TiePointGrid::sample(w, h, 33, truth).unwrap_or_else(|e| panic!("{w}×{h}: {e}"));
            let (x, y) = (w as f64 / 2.0, h as f64 / 2.0);
            let (lon, lat) = grid.to_lonlat(x, y);
            let (bx, by) = grid.to_pixel(lon, lat).unwrap();
            assert!(
                (bx - x).abs() < 1e-4 && (by - y).abs() < 1e-4,
                "{w}×{h}: {bx},{by} vs {x},{y}"
            );
        }
    }

    #[test]
    fn gcps_on_a_grid_are_used_as_they_are_and_scattered_ones_are_fitted() {
        let mut gcps = Vec::new();
        for j in 0..5 {
            for i in 0..7 {
                let (x, y) = (i as f64 * 500.0, j as f64 * 600.0);
                let (lon, lat) = truth(x, y);
                gcps.push(TiePoint {
                    pixel: x,
                    line: y,
                    lon,
                    lat,
                });
            }
        }
        gcps.reverse();
        let grid = TiePointGrid::from_gcps(3000, 2400, &gcps).unwrap();
        assert_eq!((grid.xs.len(), grid.ys.len()), (7, 5));
        let (lon, lat) = grid.to_lonlat(750.0, 900.0);
        let (tl, ta) = truth(750.0, 900.0);
        assert!((lon - tl).abs() < 1e-7 && (lat - ta).abs() < 1e-7);

        let scattered: Vec<TiePoint> = [
            (10.0, 20.0),
            (2900.0, 40.0),
            (1500.0, 1200.0),
            (30.0, 2300.0),
            (2950.0, 2390.0),
            (800.0, 1900.0),
            (2200.0, 700.0),
        ]
        .iter()
        .map(|&(x, y)| {
            let (lon, lat) = truth(x, y);
            TiePoint {
                pixel: x,
                line: y,
                lon,
                lat,
            }
        })
        .collect();
        let fitted = TiePointGrid::from_gcps(3000, 2400, &scattered).unwrap();
        let (lon, lat) = fitted.to_lonlat(1000.0, 1000.0);
        let (tl, ta) = truth(1000.0, 1000.0);
        assert!((lon - tl).abs() < 1e-6 && (lat - ta).abs() < 1e-6);
    }

    #[test]
    fn degenerate_or_too_few_gcps_are_errors() {
        let p = |x: f64| TiePoint {
            pixel: x,
            line: x,
            lon: 129.0 + x * 1e-4,
            lat: 34.0 + x * 1e-4,
        };
        assert_eq!(
            TiePointGrid::from_gcps(10, 10, &[p(0.0), p(1.0)]),
            Err(GeorefError::TooFewGcps(2))
        );
        assert_eq!(
            TiePointGrid::from_gcps(10, 10, &[p(0.0), p(1.0), p(2.0)]),
            Err(GeorefError::DegenerateGcps)
        );
        let nan = TiePoint {
            lon: f64::NAN,
            ..p(3.0)
        };
        assert!(matches!(
            TiePointGrid::from_gcps(10, 10, &[p(0.0), p(1.0), nan]),
            Err(GeorefError::NotFinite(_))
        ));
    }
}
