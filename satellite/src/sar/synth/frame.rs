//! The ground a synthetic scene covers: a north-up grid in the UTM zone of its centre, and the
//! conversions between lon/lat, UTM and pixels. Both georeferencing variants (geotransform,
//! GCP grid) are written from this one frame, so they describe the same ground.

use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};

use super::SynthError;

pub(super) struct Frame {
    /// GDAL geotransform: pixel (x, y), corner-based, to UTM easting and northing.
    pub geo_transform: [f64; 6],
    pub utm: SpatialRef,
    pub wgs84: SpatialRef,
    to_utm: CoordTransform,
    to_lonlat: CoordTransform,
}

fn gdal(context: &str) -> impl FnOnce(gdal::errors::GdalError) -> SynthError + '_ {
    move |source| SynthError::Gdal {
        context: context.to_string(),
        source,
    }
}

/// A spatial reference that takes and gives (lon, lat) / (easting, northing) in that order,
/// whatever the authority's axis order (EPSG:4326 is lat, lon).
fn srs(epsg: u32) -> Result<SpatialRef, SynthError> {
    let mut srs = SpatialRef::from_epsg(epsg).map_err(gdal("coordinate system"))?;
    srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    Ok(srs)
}

/// EPSG code of the WGS84 UTM zone holding (lon, lat): 326zz north, 327zz south.
pub(super) fn utm_epsg(lon: f64, lat: f64) -> u32 {
    // lon is validated to -180..=180; 180 itself belongs to zone 60.
    let zone = (((lon + 180.0) / 6.0).floor() as i64 + 1).clamp(1, 60) as u32;
    if lat >= 0.0 {
        32600 + zone
    } else {
        32700 + zone
    }
}

pub(super) use crate::matching::metres_per_degree;

impl Frame {
    /// The frame of a scene spec.
    pub fn of(spec: &super::SceneSpec) -> Result<Frame, SynthError> {
        Frame::new(
            spec.width,
            spec.height,
            spec.pixel_spacing_m,
            spec.center_lon,
            spec.center_lat,
        )
    }

    /// The frame of a `width` × `height` scene of `spacing` metres centred on (lon, lat).
    pub fn new(
        width: usize,
        height: usize,
        spacing: f64,
        lon: f64,
        lat: f64,
    ) -> Result<Frame, SynthError> {
        let epsg = utm_epsg(lon, lat);
        let utm = srs(epsg)?;
        let wgs84 = srs(4326)?;
        let to_utm = CoordTransform::new(&wgs84, &utm).map_err(gdal("lon/lat to UTM"))?;
        let to_lonlat = CoordTransform::new(&utm, &wgs84).map_err(gdal("UTM to lon/lat"))?;
        let (mut x, mut y) = ([lon], [lat]);
        to_utm
            .transform_coords(&mut x, &mut y, &mut [])
            .map_err(gdal("scene centre to UTM"))?;
        let origin_x = x[0] - width as f64 * spacing / 2.0;
        let origin_y = y[0] + height as f64 * spacing / 2.0;
        Ok(Frame {
            geo_transform: [origin_x, spacing, 0.0, origin_y, 0.0, -spacing],
            utm,
            wgs84,
            to_utm,
            to_lonlat,
        })
    }

    /// Pixel coordinates (x = column, y = row, corner-based) of lon/lat points.
    pub fn to_pixel(&self, lonlat: &[(f64, f64)]) -> Result<Vec<(f64, f64)>, SynthError> {
        if lonlat.is_empty() {
            return Ok(Vec::new());
        }
        let mut x: Vec<f64> = lonlat.iter().map(|p| p.0).collect();
        let mut y: Vec<f64> = lonlat.iter().map(|p| p.1).collect();
        self.to_utm
            .transform_coords(&mut x, &mut y, &mut [])
            .map_err(gdal("lon/lat to UTM"))?;
        let [ox, sx, _, oy, _, sy] = self.geo_transform;
        Ok(x.iter()
            .zip(&y)
            .map(|(e, n)| ((e - ox) / sx, (n - oy) / sy))
            .collect())
    }

    /// Lon/lat of pixel coordinates (corner-based: the centre of pixel (c, r) is c + 0.5, r + 0.5).
    pub fn to_lonlat(&self, pixels: &[(f64, f64)]) -> Result<Vec<(f64, f64)>, SynthError> {
        if pixels.is_empty() {
            return Ok(Vec::new());
        }
        let [ox, sx, _, oy, _, sy] = self.geo_transform;
        let mut x: Vec<f64> = pixels.iter().map(|p| ox + p.0 * sx).collect();
        let mut y: Vec<f64> = pixels.iter().map(|p| oy + p.1 * sy).collect();
        self.to_lonlat
            .transform_coords(&mut x, &mut y, &mut [])
            .map_err(gdal("UTM to lon/lat"))?;
        Ok(x.into_iter().zip(y).collect())
    }

    /// How a small displacement of one metre east and one metre north at (lon, lat) moves in
    /// pixels. Includes the UTM scale factor and the grid convergence, so ships are drawn with
    /// their true heading and size.
    pub fn local_axes(&self, lon: f64, lat: f64) -> Result<LocalAxes, SynthError> {
        let (m_lon, m_lat) = metres_per_degree(lat);
        let step = 10.0;
        let p = self.to_pixel(&[
            (lon, lat),
            (lon + step / m_lon, lat),
            (lon, lat + step / m_lat),
        ])?;
        let east = ((p[1].0 - p[0].0) / step, (p[1].1 - p[0].1) / step);
        let north = ((p[2].0 - p[0].0) / step, (p[2].1 - p[0].1) / step);
        Ok(LocalAxes { east, north })
    }
}

/// Pixel vectors (x, y) of one metre east and one metre north at a point of the scene.
pub(super) struct LocalAxes {
    pub east: (f64, f64),
    pub north: (f64, f64),
}

impl LocalAxes {
    /// The pixel offset of a displacement in metres.
    pub fn to_pixels(&self, metres_east: f64, metres_north: f64) -> (f64, f64) {
        (
            metres_east * self.east.0 + metres_north * self.north.0,
            metres_east * self.east.1 + metres_north * self.north.1,
        )
    }

    /// Metres (east, north) of a pixel offset; `None` if the axes are degenerate, which a
    /// valid UTM frame never gives.
    pub fn to_metres(&self, dx: f64, dy: f64) -> Option<(f64, f64)> {
        let det = self.east.0 * self.north.1 - self.north.0 * self.east.1;
        if det.abs() < 1e-12 {
            return None;
        }
        Some((
            (dx * self.north.1 - dy * self.north.0) / det,
            (self.east.0 * dy - self.east.1 * dx) / det,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones() {
        assert_eq!(utm_epsg(129.3, 34.4), 32652);
        assert_eq!(utm_epsg(139.7, 35.7), 32654);
        assert_eq!(utm_epsg(-180.0, 10.0), 32601);
        assert_eq!(utm_epsg(180.0, -10.0), 32760);
    }

    #[test]
    fn pixels_and_lonlat_round_trip_north_up() {
        let frame = Frame::new(1000, 800, 10.0, 129.3, 34.4).unwrap();
        let centre = frame.to_pixel(&[(129.3, 34.4)]).unwrap()[0];
        assert!(
            (centre.0 - 500.0).abs() < 1e-6 && (centre.1 - 400.0).abs() < 1e-6,
            "{centre:?}"
        );
        let back = frame.to_lonlat(&[(123.5, 654.25)]).unwrap();
        let again = frame.to_pixel(&back).unwrap()[0];
        assert!((again.0 - 123.5).abs() < 1e-6 && (again.1 - 654.25).abs() < 1e-6);
        // A metre east is a tenth of a pixel to the right, a metre north a tenth up, give or
        // take the scale factor and the convergence (129.3 E is 0.3° from the zone's meridian).
        let axes = frame.local_axes(129.3, 34.4).unwrap();
        let (east, north) = (axes.east, axes.north);
        let back = axes
            .to_metres(axes.to_pixels(3.0, -4.0).0, axes.to_pixels(3.0, -4.0).1)
            .unwrap();
        assert!((back.0 - 3.0).abs() < 1e-9 && (back.1 + 4.0).abs() < 1e-9);
        assert!(
            (east.0 - 0.1).abs() < 1e-3 && east.1.abs() < 2e-3,
            "{east:?}"
        );
        assert!(
            (north.1 + 0.1).abs() < 1e-3 && north.0.abs() < 2e-3,
            "{north:?}"
        );
    }
}
