//! A SAR scene opened through GDAL: size, georeferencing, what its samples are, and windows of
//! intensity read on demand.
//!
//! What the detector works on is *intensity* (power), whatever the file holds:
//! - a Sentinel-1 measurement TIFF inside its SAFE folder: amplitude numbers, calibrated to
//!   sigma0 with the calibration annotation (`f32`);
//! - a Sentinel-1 TIFF without its annotation: amplitude, squared (`f32`, uncalibrated);
//! - any other unsigned 8/16-bit band: intensity numbers as they are (`u16`, the exact path:
//!   the CFAR's integral images of 16-bit samples are exact in 64-bit integers);
//! - floating-point bands: intensity as it is (`f32`).
//!
//! Nodata: the band's nodata value, `NaN` and (for amplitude) 0 mark pixels outside the swath;
//! a negative or infinite floating-point sample is not intensity and is left out the same way.
//! A `Scene` holds no GDAL handle; every reader thread opens its own [`SceneReader`], as GDAL
//! datasets must not be shared between threads.

use std::path::{Path, PathBuf};

use gdal::raster::GdalDataType;
use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use gdal::{Dataset, Metadata};

use super::acquisition::{parse_utc_ms, Acquisition, LookSide};
use super::georef::{GeorefError, TiePoint, TiePointGrid};
use super::sentinel1::{self, Calibration, Sentinel1Error};

/// Why a scene could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    #[error("cannot open {path} as a raster: {message}")]
    Open { path: PathBuf, message: String },
    #[error("{path} has no georeferencing (neither a geotransform with a coordinate system nor ground control points)")]
    NoGeoreference { path: PathBuf },
    #[error("{path}: georeferencing unusable: {source}")]
    Georef { path: PathBuf, source: GeorefError },
    #[error("{path}: band 1 is {kind}, not a SAR intensity or amplitude band")]
    UnsupportedBand { path: PathBuf, kind: String },
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error(transparent)]
    Sentinel1(#[from] Sentinel1Error),
}

/// What the file's samples are and how they become intensity.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// Unsigned integer intensity, kept as `u16`.
    IntensityU16,
    /// Floating-point intensity.
    IntensityF32,
    /// Sentinel-1 amplitude calibrated to sigma0.
    Sigma0(Calibration),
    /// Amplitude without calibration: squared.
    AmplitudeSquared,
}

/// A window of the image: `width × height` pixels from column `x0`, row `y0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub x0: usize,
    pub y0: usize,
    pub width: usize,
    pub height: usize,
}

/// Intensity of a window, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Intensity {
    /// 16-bit intensity; `nodata` marks invalid pixels.
    U16 {
        samples: Vec<u16>,
        nodata: Option<u16>,
    },
    /// Floating-point intensity; `NaN` (and any negative or infinite value) marks invalid
    /// pixels.
    F32(Vec<f32>),
}

impl Intensity {
    /// The intensity of pixel `i` and whether it is valid.
    pub fn get(&self, i: usize) -> Option<f64> {
        match self {
            Intensity::U16 { samples, nodata } => {
                let v = samples[i];
                (Some(v) != *nodata).then_some(v as f64)
            }
            Intensity::F32(v) => Some(v[i] as f64).filter(|x| *x >= 0.0 && x.is_finite()),
        }
    }
}

/// An opened scene (no GDAL handle kept: see [`SceneReader`]).
#[derive(Debug, Clone)]
pub struct Scene {
    pub path: PathBuf,
    pub width: usize,
    pub height: usize,
    /// Pixel ↔ lon/lat.
    pub georef: TiePointGrid,
    /// Ground metres per pixel in x (columns) and y (rows), at mid-scene.
    pub spacing_m: (f64, f64),
    /// What the samples are.
    pub samples: Samples,
    /// The band's nodata value, if it declares one.
    pub nodata: Option<f64>,
    /// Acquisition geometry, when the product says (Sentinel-1 annotation, or the metadata
    /// items our generator and other tools write).
    pub acquisition: Option<Acquisition>,
    /// Which product family it was recognised as, for reports.
    pub product: String,
}

fn open(path: &Path) -> Result<Dataset, SceneError> {
    Dataset::open(path).map_err(|e| SceneError::Open {
        path: path.into(),
        message: e.to_string(),
    })
}

impl Scene {
    /// Opens a scene: reads its size, georeferencing, band type and acquisition metadata, and
    /// the Sentinel-1 annotation when the file sits in a SAFE folder.
    pub fn open(path: &Path) -> Result<Scene, SceneError> {
        let ds = open(path)?;
        let (width, height) = ds.raster_size();
        if ds.raster_count() < 1 || width == 0 || height == 0 {
            return Err(SceneError::Open {
                path: path.into(),
                message: "no raster band".into(),
            });
        }
        let band = ds.rasterband(1).map_err(|e| SceneError::Open {
            path: path.into(),
            message: e.to_string(),
        })?;
        let band_type = band.band_type();
        let nodata = band.no_data_value();
        let georef = georeference(path, &ds, width, height)?;
        let (sx, sy) = georef.pixel_spacing_at(width as f64 / 2.0, height as f64 / 2.0);
        let item = |key: &str| ds.metadata_item(key, "");
        let description = item("TIFFTAG_IMAGEDESCRIPTION").unwrap_or_default();
        let is_sentinel1 = description.starts_with("Sentinel-1")
            || path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("s1a-") || n.starts_with("s1b-") || n.starts_with("s1c-")
            });
        let annotation = sentinel1::annotation_paths(path);
        let integer = matches!(band_type, GdalDataType::UInt8 | GdalDataType::UInt16);
        let float = matches!(band_type, GdalDataType::Float32 | GdalDataType::Float64);
        if !(integer || float) {
            return Err(SceneError::UnsupportedBand {
                path: path.into(),
                kind: format!("{band_type:?}"),
            });
        }
        let (samples, acquisition, product) = match (&annotation, is_sentinel1 && integer) {
            (Some((annotation, calibration)), _) if integer => {
                let cal = Calibration::parse(calibration, &sentinel1::read(calibration)?)?;
                let acq =
                    sentinel1::parse_acquisition(annotation, &sentinel1::read(annotation)?, width)?;
                (
                    Samples::Sigma0(cal),
                    Some(acq),
                    "Sentinel-1 GRD (sigma0 from the SAFE calibration)".to_string(),
                )
            }
            (_, true) => (
                Samples::AmplitudeSquared,
                metadata_acquisition(&ds),
                "Sentinel-1 GRD (amplitude squared, no calibration annotation found)".to_string(),
            ),
            _ if integer => (
                Samples::IntensityU16,
                metadata_acquisition(&ds),
                "intensity (unsigned integer)".to_string(),
            ),
            _ => (
                Samples::IntensityF32,
                metadata_acquisition(&ds),
                "intensity (floating point)".to_string(),
            ),
        };
        // Products state their spacing more precisely than the geometry implies.
        let spacing_m = match item("PIXEL_SPACING_M").and_then(|s| s.trim().parse::<f64>().ok()) {
            Some(s) if s > 0.0 && s.is_finite() => (s, s),
            _ => (sx, sy),
        };
        Ok(Scene {
            path: path.into(),
            width,
            height,
            georef,
            spacing_m,
            samples,
            nodata,
            acquisition,
            product,
        })
    }

    /// A reader for this thread.
    pub fn reader(&self) -> Result<SceneReader<'_>, SceneError> {
        Ok(SceneReader {
            scene: self,
            dataset: open(&self.path)?,
        })
    }

    /// Longitude/latitude of the centre of pixel `(x, y)` given in fractional pixel units.
    pub fn lonlat(&self, x: f64, y: f64) -> (f64, f64) {
        self.georef.to_lonlat(x, y)
    }
}

/// Acquisition metadata items (`ACQUISITION_TIME_MS` or `ACQUISITION_TIME`,
/// `PLATFORM_HEADING`, `LOOK_SIDE`, `SLANT_RANGE_M`, `PLATFORM_VELOCITY_MS`, `INCIDENCE_DEG`),
/// when all are present.
fn metadata_acquisition(ds: &Dataset) -> Option<Acquisition> {
    let item = |key: &str| ds.metadata_item(key, "");
    let number = |key: &str| {
        item(key)
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    let time_ms = item("ACQUISITION_TIME_MS")
        .and_then(|s| s.trim().parse::<i64>().ok())
        .or_else(|| item("ACQUISITION_TIME").and_then(|t| parse_utc_ms(&t)))?;
    Some(Acquisition {
        time_ms,
        platform_heading_deg: number("PLATFORM_HEADING")?.rem_euclid(360.0),
        look_side: match item("LOOK_SIDE")?.trim().to_ascii_uppercase().as_str() {
            "LEFT" => LookSide::Left,
            _ => LookSide::Right,
        },
        slant_range_m: number("SLANT_RANGE_M")?,
        platform_velocity_ms: number("PLATFORM_VELOCITY_MS")?,
        incidence_deg: number("INCIDENCE_DEG")?,
    })
}

/// The tie-point grid from the geotransform (through GDAL's coordinate transformation to WGS84)
/// or from the GCPs.
fn georeference(
    path: &Path,
    ds: &Dataset,
    width: usize,
    height: usize,
) -> Result<TiePointGrid, SceneError> {
    let georef_err = |source| SceneError::Georef {
        path: path.into(),
        source,
    };
    let wgs84 = || -> Option<SpatialRef> {
        let mut srs = SpatialRef::from_epsg(4326).ok()?;
        srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        Some(srs)
    };
    let gcps = ds.gcps();
    if !gcps.is_empty() {
        let to_wgs84 = match ds.gcp_spatial_ref() {
            Some(mut srs) => {
                srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
                let target =
                    wgs84().ok_or_else(|| SceneError::NoGeoreference { path: path.into() })?;
                Some(
                    CoordTransform::new(&srs, &target).map_err(|e| SceneError::Read {
                        path: path.into(),
                        message: format!("GCP coordinate system: {e}"),
                    })?,
                )
            }
            None => None,
        };
        let mut points = Vec::with_capacity(gcps.len());
        for g in gcps {
            let (mut x, mut y) = ([g.x()], [g.y()]);
            if let Some(t) = &to_wgs84 {
                t.transform_coords(&mut x, &mut y, &mut [])
                    .map_err(|e| SceneError::Read {
                        path: path.into(),
                        message: format!("GCP outside its coordinate system: {e}"),
                    })?;
            }
            points.push(TiePoint {
                pixel: g.pixel(),
                line: g.line(),
                lon: x[0],
                lat: y[0],
            });
        }
        return TiePointGrid::from_gcps(width, height, &points).map_err(georef_err);
    }
    let gt = ds
        .geo_transform()
        .map_err(|_| SceneError::NoGeoreference { path: path.into() })?;
    // GDAL reports the default [0, 1, 0, 0, 0, 1] for files without one.
    if gt == [0.0, 1.0, 0.0, 0.0, 0.0, 1.0] {
        return Err(SceneError::NoGeoreference { path: path.into() });
    }
    let mut srs = ds
        .spatial_ref()
        .map_err(|_| SceneError::NoGeoreference { path: path.into() })?;
    srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let target = wgs84().ok_or_else(|| SceneError::NoGeoreference { path: path.into() })?;
    let transform = CoordTransform::new(&srs, &target).map_err(|e| SceneError::Read {
        path: path.into(),
        message: format!("coordinate system: {e}"),
    })?;
    let mut failed = None;
    let grid = TiePointGrid::sample(width, height, 33, |px, py| {
        let mut x = [gt[0] + px * gt[1] + py * gt[2]];
        let mut y = [gt[3] + px * gt[4] + py * gt[5]];
        if let Err(e) = transform.transform_coords(&mut x, &mut y, &mut []) {
            failed = Some(e.to_string());
        }
        (x[0], y[0])
    })
    .map_err(georef_err)?;
    match failed {
        Some(message) => Err(SceneError::Read {
            path: path.into(),
            message: format!("cannot transform the geotransform to WGS84: {message}"),
        }),
        None => Ok(grid),
    }
}

/// One thread's open handle on a scene.
pub struct SceneReader<'a> {
    scene: &'a Scene,
    dataset: Dataset,
}

impl SceneReader<'_> {
    /// The intensity of a window (which must lie inside the image).
    pub fn read(&self, w: Window) -> Result<Intensity, SceneError> {
        let scene = self.scene;
        let err = |e: gdal::errors::GdalError| SceneError::Read {
            path: scene.path.clone(),
            message: format!("reading {w:?}: {e}"),
        };
        if w.x0 + w.width > scene.width || w.y0 + w.height > scene.height {
            return Err(SceneError::Read {
                path: scene.path.clone(),
                message: format!(
                    "window {w:?} outside the {}×{} image",
                    scene.width, scene.height
                ),
            });
        }
        let band = self.dataset.rasterband(1).map_err(err)?;
        let at = (w.x0 as isize, w.y0 as isize);
        let size = (w.width, w.height);
        Ok(match &scene.samples {
            Samples::IntensityU16 => {
                let samples = band
                    .read_as::<u16>(at, size, size, None)
                    .map_err(err)?
                    .into_shape_and_vec()
                    .1;
                let nodata = scene
                    .nodata
                    .filter(|v| v.fract() == 0.0 && (0.0..=65535.0).contains(v))
                    .map(|v| v as u16);
                Intensity::U16 { samples, nodata }
            }
            Samples::IntensityF32 => {
                let mut v = band
                    .read_as::<f32>(at, size, size, None)
                    .map_err(err)?
                    .into_shape_and_vec()
                    .1;
                if let Some(nd) = scene.nodata {
                    let nd = nd as f32;
                    v.iter_mut()
                        .filter(|x| **x == nd)
                        .for_each(|x| *x = f32::NAN);
                }
                Intensity::F32(v)
            }
            Samples::AmplitudeSquared => {
                let dn = band
                    .read_as::<u16>(at, size, size, None)
                    .map_err(err)?
                    .into_shape_and_vec()
                    .1;
                Intensity::F32(
                    dn.iter()
                        .map(|&d| {
                            if d == 0 {
                                f32::NAN
                            } else {
                                (d as f32) * (d as f32)
                            }
                        })
                        .collect(),
                )
            }
            Samples::Sigma0(cal) => {
                let dn = band
                    .read_as::<u16>(at, size, size, None)
                    .map_err(err)?
                    .into_shape_and_vec()
                    .1;
                let mut out = vec![0f32; dn.len()];
                for (row, (dn, out)) in dn.chunks(w.width).zip(out.chunks_mut(w.width)).enumerate()
                {
                    cal.calibrate_row((w.y0 + row) as f64, w.x0, dn, out);
                }
                Intensity::F32(out)
            }
        })
    }
}
