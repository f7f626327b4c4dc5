//! A dual-energy scan: two registered 16-bit images and the scanner's metadata.

use super::XrayError;
use image::{DynamicImage, ImageBuffer, ImageReader, Luma};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Scanner metadata written beside each scan (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanMeta {
    /// Scanner identifier, e.g. `"yokohama-honmoku-1"`.
    pub scanner_id: String,
    /// Size of one pixel at the container's mid-plane, millimetres (square pixels).
    pub pixel_pitch_mm: f64,
    /// Effective (attenuation-weighted) energy of the high band, MeV.
    pub high_energy_mev: f64,
    /// Effective energy of the low band, MeV.
    pub low_energy_mev: f64,
    /// Unattenuated (air) detector value of the high band, counts: I0 in Beer-Lambert.
    pub air_value_high: u16,
    /// Unattenuated detector value of the low band, counts.
    pub air_value_low: u16,
    /// Total steel the beam crosses in the container's two side walls, millimetres (tare
    /// calibration for the container type; removed from the weight estimate).
    pub wall_steel_mm: f64,
}

impl ScanMeta {
    /// Checks that every value is physically meaningful.
    pub fn validate(&self) -> Result<(), XrayError> {
        let invalid = |message: String| XrayError::Invalid {
            what: "scanner metadata",
            message,
        };
        if self.scanner_id.trim().is_empty() {
            return Err(invalid("scanner_id is empty".into()));
        }
        if !(self.pixel_pitch_mm.is_finite() && self.pixel_pitch_mm > 0.0) {
            return Err(invalid(format!(
                "pixel_pitch_mm must be a positive number, got {}",
                self.pixel_pitch_mm
            )));
        }
        for (name, e) in [
            ("high_energy_mev", self.high_energy_mev),
            ("low_energy_mev", self.low_energy_mev),
        ] {
            if !(e.is_finite() && e > 0.0) {
                return Err(invalid(format!("{name} must be positive, got {e}")));
            }
        }
        let (lo, hi) = super::materials::ENERGY_RANGE_MEV;
        for e in [self.high_energy_mev, self.low_energy_mev] {
            if e < lo || e > hi {
                return Err(invalid(format!(
                    "effective energy {e} MeV is outside the tabulated {lo}-{hi} MeV"
                )));
            }
        }
        if self.high_energy_mev <= self.low_energy_mev {
            return Err(invalid(format!(
                "high_energy_mev ({}) must exceed low_energy_mev ({})",
                self.high_energy_mev, self.low_energy_mev
            )));
        }
        if self.air_value_high == 0 || self.air_value_low == 0 {
            return Err(invalid("air values must be at least 1 count".into()));
        }
        if !(self.wall_steel_mm.is_finite() && self.wall_steel_mm >= 0.0) {
            return Err(invalid(format!(
                "wall_steel_mm must be zero or positive, got {}",
                self.wall_steel_mm
            )));
        }
        Ok(())
    }

    /// Reads and validates metadata from a JSON file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, XrayError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| XrayError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let meta: ScanMeta = serde_json::from_str(&text).map_err(|e| XrayError::Json {
            what: "scanner metadata",
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        meta.validate()?;
        Ok(meta)
    }
}

/// A registered pair of high/low energy images with their metadata. Pixels are row-major,
/// `width * height` long.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    pub meta: ScanMeta,
    pub width: u32,
    pub height: u32,
    pub high: Vec<u16>,
    pub low: Vec<u16>,
}

impl Scan {
    /// Builds a scan from raw pixel buffers, checking sizes and metadata.
    pub fn new(
        meta: ScanMeta,
        width: u32,
        height: u32,
        high: Vec<u16>,
        low: Vec<u16>,
    ) -> Result<Self, XrayError> {
        meta.validate()?;
        let expected = width as usize * height as usize;
        if high.len() != expected || low.len() != expected {
            return Err(XrayError::Invalid {
                what: "scan",
                message: format!(
                    "{width}x{height} needs {expected} pixels per band, got high {} and low {}",
                    high.len(),
                    low.len()
                ),
            });
        }
        let tile = super::TILE_SIZE as u32;
        if width < tile || height < tile {
            return Err(XrayError::TooSmall {
                width,
                height,
                tile,
            });
        }
        Ok(Scan {
            meta,
            width,
            height,
            high,
            low,
        })
    }

    /// Loads the two images (16-bit grayscale PNG or TIFF) and the metadata JSON.
    pub fn load(
        high: impl AsRef<Path>,
        low: impl AsRef<Path>,
        meta: impl AsRef<Path>,
    ) -> Result<Self, XrayError> {
        let meta = ScanMeta::load(meta)?;
        let high = read_gray16(high.as_ref())?;
        let low = read_gray16(low.as_ref())?;
        if high.dimensions() != low.dimensions() {
            return Err(XrayError::SizeMismatch {
                high_w: high.width(),
                high_h: high.height(),
                low_w: low.width(),
                low_h: low.height(),
            });
        }
        let (width, height) = high.dimensions();
        Scan::new(meta, width, height, high.into_raw(), low.into_raw())
    }

    /// Writes the images (format from the extension: `.png` or `.tif`) and the metadata JSON.
    pub fn save(
        &self,
        high: impl AsRef<Path>,
        low: impl AsRef<Path>,
        meta: impl AsRef<Path>,
    ) -> Result<(), XrayError> {
        for (path, pixels) in [(high.as_ref(), &self.high), (low.as_ref(), &self.low)] {
            let buffer: ImageBuffer<Luma<u16>, Vec<u16>> =
                ImageBuffer::from_raw(self.width, self.height, pixels.clone()).ok_or_else(
                    || XrayError::Invalid {
                        what: "scan",
                        message: "pixel buffer does not match the image size".into(),
                    },
                )?;
            buffer.save(path).map_err(|e| XrayError::Write {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        }
        write_json(meta.as_ref(), &self.meta)
    }

    /// Log-attenuation `ln(I0 / I)` of both bands, row-major (high, low). Zero counts are read
    /// as one count: the detector cannot tell them apart and `ln(0)` is not a measurement.
    pub fn log_attenuation(&self) -> (Vec<f32>, Vec<f32>) {
        let convert = |pixels: &[u16], air: u16| -> Vec<f32> {
            let ln_air = f32::from(air).ln();
            pixels
                .iter()
                .map(|&p| (ln_air - f32::from(p.max(1)).ln()).max(0.0))
                .collect()
        };
        (
            convert(&self.high, self.meta.air_value_high),
            convert(&self.low, self.meta.air_value_low),
        )
    }
}

/// Reads a 16-bit grayscale image, refusing anything else with a message saying what it was.
fn read_gray16(path: &Path) -> Result<ImageBuffer<Luma<u16>, Vec<u16>>, XrayError> {
    let image_error = |message: String| XrayError::Image {
        path: path.to_path_buf(),
        message,
    };
    let reader = ImageReader::open(path)
        .map_err(|source| XrayError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .with_guessed_format()
        .map_err(|e| image_error(e.to_string()))?;
    if reader.format().is_none() {
        return Err(image_error("unknown image format".into()));
    }
    let decoded = reader.decode().map_err(|e| image_error(e.to_string()))?;
    match decoded {
        DynamicImage::ImageLuma16(buffer) => Ok(buffer),
        other => Err(XrayError::BitDepth {
            path: path.to_path_buf(),
            found: format!("{:?}", other.color()),
        }),
    }
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), XrayError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| XrayError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(path, text + "\n").map_err(|e| XrayError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
