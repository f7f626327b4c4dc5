//! Sentinel-1 GRD products: calibration to sigma0 and the acquisition geometry, from the SAFE
//! folder's annotation XML.
//!
//! A GRD measurement TIFF holds amplitude digital numbers. ESA's calibration annotation
//! (`annotation/calibration/calibration-<measurement>.xml`) gives, on a sparse grid of lines
//! and pixels, the `sigmaNought` look-up value A; the calibrated backscatter is
//! `sigma0 = DN² / A²`, with A interpolated bilinearly between the vectors (ESA's
//! "Sentinel-1 Level 1 Detected Products" calibration note; SNAP's `Sentinel1Calibrator` does
//! the same). The product annotation (`annotation/<measurement>.xml`) gives the heading, the
//! times, the near slant range, the mid-swath incidence and the orbit velocity that the
//! correlation with AIS needs.

use std::path::{Path, PathBuf};

use super::acquisition::{parse_utc_ms, Acquisition, LookSide};

/// Why a Sentinel-1 annotation could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Sentinel1Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not well-formed XML: {message}")]
    Xml { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Content { path: PathBuf, message: String },
}

/// One calibration vector: the sigma0 look-up values along a line.
#[derive(Debug, Clone, PartialEq)]
struct CalibrationVector {
    line: f64,
    pixels: Vec<f64>,
    sigma_nought: Vec<f64>,
}

/// The sigma0 calibration of one measurement TIFF.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// Vectors by increasing line; at least one, each with increasing pixels.
    vectors: Vec<CalibrationVector>,
}

impl Calibration {
    /// Parses a `calibration-*.xml` annotation.
    pub fn parse(path: &Path, xml: &str) -> Result<Calibration, Sentinel1Error> {
        let doc = roxmltree::Document::parse(xml).map_err(|e| Sentinel1Error::Xml {
            path: path.into(),
            message: e.to_string(),
        })?;
        let content = |message: String| Sentinel1Error::Content {
            path: path.into(),
            message,
        };
        let mut vectors = Vec::new();
        for v in doc
            .descendants()
            .filter(|n| n.has_tag_name("calibrationVector"))
        {
            let text = |tag: &str| {
                v.children()
                    .find(|c| c.has_tag_name(tag))
                    .and_then(|c| c.text())
                    .unwrap_or("")
            };
            let numbers = |tag: &str| -> Result<Vec<f64>, Sentinel1Error> {
                text(tag)
                    .split_ascii_whitespace()
                    .map(|s| s.parse::<f64>().ok().filter(|x| x.is_finite()))
                    .collect::<Option<Vec<f64>>>()
                    .ok_or_else(|| content(format!("calibration vector has a bad <{tag}> list")))
            };
            let line: f64 = text("line")
                .trim()
                .parse()
                .ok()
                .filter(|l: &f64| l.is_finite())
                .ok_or_else(|| content("calibration vector without a numeric <line>".into()))?;
            let pixels = numbers("pixel")?;
            let sigma_nought = numbers("sigmaNought")?;
            if pixels.is_empty() || pixels.len() != sigma_nought.len() {
                return Err(content(format!(
                    "calibration vector at line {line}: {} pixels, {} sigmaNought values",
                    pixels.len(),
                    sigma_nought.len()
                )));
            }
            if pixels.windows(2).any(|w| w[1] <= w[0]) || sigma_nought.iter().any(|a| *a <= 0.0) {
                return Err(content(format!("calibration vector at line {line}: pixels not increasing or a non-positive value")));
            }
            vectors.push(CalibrationVector {
                line,
                pixels,
                sigma_nought,
            });
        }
        if vectors.is_empty() {
            return Err(content("no calibrationVector".into()));
        }
        vectors.sort_by(|a, b| a.line.total_cmp(&b.line));
        Ok(Calibration { vectors })
    }

    /// The sigmaNought look-up value A at a pixel (bilinear; held constant beyond the grid).
    pub fn sigma_nought_lut(&self, pixel: f64, line: f64) -> f64 {
        let along = |v: &CalibrationVector| interpolate(&v.pixels, &v.sigma_nought, pixel);
        let i = self.vectors.partition_point(|v| v.line <= line);
        if i == 0 {
            return along(&self.vectors[0]);
        }
        if i == self.vectors.len() {
            return along(&self.vectors[i - 1]);
        }
        let (a, b) = (&self.vectors[i - 1], &self.vectors[i]);
        let f = (line - a.line) / (b.line - a.line);
        along(a) * (1.0 - f) + along(b) * f
    }

    /// Calibrates one row segment of amplitude numbers to sigma0 (linear), `NaN` where the
    /// amplitude is the nodata value 0.
    pub fn calibrate_row(&self, line: f64, first_pixel: usize, dn: &[u16], out: &mut [f32]) {
        // The look-up value changes slowly along a row: interpolate it every 16 pixels.
        const STEP: usize = 16;
        let y = line + 0.5;
        let mut a_prev = self.sigma_nought_lut(first_pixel as f64, y);
        for (chunk, (dn, out)) in dn.chunks(STEP).zip(out.chunks_mut(STEP)).enumerate() {
            let x1 = (first_pixel + (chunk + 1) * STEP) as f64;
            let a_next = self.sigma_nought_lut(x1, y);
            for (k, (&d, o)) in dn.iter().zip(out.iter_mut()).enumerate() {
                let a = a_prev + (a_next - a_prev) * k as f64 / STEP as f64;
                *o = if d == 0 {
                    f32::NAN
                } else {
                    ((d as f64 * d as f64) / (a * a)) as f32
                };
            }
            a_prev = a_next;
        }
    }
}

/// Piecewise-linear interpolation of `ys` over increasing `xs`, held constant beyond the ends.
fn interpolate(xs: &[f64], ys: &[f64], x: f64) -> f64 {
    let i = xs.partition_point(|&p| p <= x);
    if i == 0 {
        return ys[0];
    }
    if i == xs.len() {
        return ys[i - 1];
    }
    let f = (x - xs[i - 1]) / (xs[i] - xs[i - 1]);
    ys[i - 1] * (1.0 - f) + ys[i] * f
}

/// Parses a product annotation (`annotation/<measurement>.xml`) into the acquisition geometry.
pub fn parse_acquisition(
    path: &Path,
    xml: &str,
    width: usize,
) -> Result<Acquisition, Sentinel1Error> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| Sentinel1Error::Xml {
        path: path.into(),
        message: e.to_string(),
    })?;
    let content = |message: String| Sentinel1Error::Content {
        path: path.into(),
        message,
    };
    let first = |tag: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .map(str::trim)
    };
    let number = |tag: &str| -> Result<f64, Sentinel1Error> {
        first(tag)
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .ok_or_else(|| content(format!("no numeric <{tag}>")))
    };
    let time = |tag: &str| {
        first(tag)
            .and_then(parse_utc_ms)
            .ok_or_else(|| content(format!("no time in <{tag}>")))
    };
    let start = time("productFirstLineUtcTime").or_else(|_| time("startTime"))?;
    let stop = time("productLastLineUtcTime").or_else(|_| time("stopTime"))?;
    let incidence = number("incidenceAngleMidSwath")?;
    let near_range = number("slantRangeTime")? * 299_792_458.0 / 2.0;
    let range_spacing = number("rangePixelSpacing")?;
    // Mid-swath slant range: the near range plus half the swath's ground range projected onto
    // the line of sight.
    let slant_range =
        near_range + width as f64 / 2.0 * range_spacing * incidence.to_radians().sin();
    let orbit = doc
        .descendants()
        .find(|n| n.has_tag_name("orbit"))
        .ok_or_else(|| content("no <orbit> in <orbitList>".into()))?;
    let velocity = orbit
        .children()
        .find(|n| n.has_tag_name("velocity"))
        .ok_or_else(|| content("orbit without <velocity>".into()))?;
    let component = |axis: &str| -> Result<f64, Sentinel1Error> {
        velocity
            .children()
            .find(|n| n.has_tag_name(axis))
            .and_then(|n| n.text())
            .and_then(|t| t.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .ok_or_else(|| content(format!("orbit velocity without a numeric <{axis}>")))
    };
    let speed =
        (component("x")?.powi(2) + component("y")?.powi(2) + component("z")?.powi(2)).sqrt();
    Ok(Acquisition {
        time_ms: start + (stop - start) / 2,
        platform_heading_deg: number("platformHeading")?.rem_euclid(360.0),
        look_side: LookSide::Right,
        slant_range_m: slant_range,
        platform_velocity_ms: speed,
        incidence_deg: incidence,
    })
}

/// The annotation files of a measurement TIFF inside a SAFE folder
/// (`X.SAFE/measurement/s1a-...-001.tiff` → `X.SAFE/annotation/s1a-...-001.xml` and
/// `X.SAFE/annotation/calibration/calibration-s1a-...-001.xml`), when they exist.
pub fn annotation_paths(measurement: &Path) -> Option<(PathBuf, PathBuf)> {
    let stem = measurement.file_stem()?.to_str()?;
    let safe = measurement.parent()?.parent()?;
    let annotation = safe.join("annotation").join(format!("{stem}.xml"));
    let calibration = safe
        .join("annotation")
        .join("calibration")
        .join(format!("calibration-{stem}.xml"));
    (annotation.is_file() && calibration.is_file()).then_some((annotation, calibration))
}

/// Reads a file of the SAFE folder.
pub fn read(path: &Path) -> Result<String, Sentinel1Error> {
    std::fs::read_to_string(path).map_err(|source| Sentinel1Error::Read {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALIBRATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<calibration><calibrationVectorList count="2">
 <calibrationVector><azimuthTime>2026-11-20T21:15:40.000000</azimuthTime><line>-10</line>
  <pixel count="3">0 100 200</pixel><sigmaNought count="3">500 600 700</sigmaNought></calibrationVector>
 <calibrationVector><azimuthTime>2026-11-20T21:15:41.000000</azimuthTime><line>90</line>
  <pixel count="3">0 100 200</pixel><sigmaNought count="3">520 620 720</sigmaNought></calibrationVector>
</calibrationVectorList></calibration>"#;

    #[test]
    fn sigma0_is_dn_squared_over_the_interpolated_lut() {
        let cal = Calibration::parse(Path::new("c.xml"), CALIBRATION).unwrap();
        assert_eq!(cal.sigma_nought_lut(50.0, 40.0), 560.0);
        assert_eq!(cal.sigma_nought_lut(-5.0, -50.0), 500.0);
        assert_eq!(cal.sigma_nought_lut(500.0, 500.0), 720.0);
        let mut out = [0f32; 3];
        cal.calibrate_row(39.5, 50, &[560, 0, 1120], &mut out);
        assert!((out[0] - 1.0).abs() < 1e-3, "{}", out[0]);
        assert!(out[1].is_nan());
        // Two pixels further along, the look-up value has grown by 2 (1 per 100 pixels × 100).
        let want = (1120.0f64 / cal.sigma_nought_lut(52.0, 40.0)).powi(2);
        assert!(
            (out[2] as f64 - want).abs() < 1e-3 * want,
            "{} vs {want}",
            out[2]
        );
    }

    #[test]
    fn broken_calibration_files_are_errors() {
        for bad in [
            "<calibration>",
            "<calibration/>",
            "<c><calibrationVector><line>0</line><pixel>0 1</pixel><sigmaNought>5</sigmaNought></calibrationVector></c>",
            "<c><calibrationVector><line>0</line><pixel>0 1</pixel><sigmaNought>5 x</sigmaNought></calibrationVector></c>",
            "<c><calibrationVector><line>0</line><pixel>1 0</pixel><sigmaNought>5 6</sigmaNought></calibrationVector></c>",
            // A line that is not a number would turn the rows around it into NaN (nodata).
            "<c><calibrationVector><line>NaN</line><pixel>0 1</pixel><sigmaNought>5 6</sigmaNought></calibrationVector>\
             <calibrationVector><line>0</line><pixel>0 1</pixel><sigmaNought>5 6</sigmaNought></calibrationVector></c>",
            "<c><calibrationVector><line>-inf</line><pixel>0 1</pixel><sigmaNought>5 6</sigmaNought></calibrationVector></c>",
        ] {
            assert!(Calibration::parse(Path::new("bad.xml"), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_annotation_gives_the_acquisition_geometry() {
        let xml = r#"<product><adsHeader><startTime>2026-11-20T21:15:30.000000</startTime></adsHeader>
<generalAnnotation><productInformation><pass>Descending</pass><platformHeading>-167.5</platformHeading></productInformation>
<orbitList count="1"><orbit><time>2026-11-20T21:15:00</time><velocity><x>3000</x><y>-6000</y><z>3500</z></velocity></orbit></orbitList></generalAnnotation>
<imageAnnotation><imageInformation><productFirstLineUtcTime>2026-11-20T21:15:30.000000</productFirstLineUtcTime>
<productLastLineUtcTime>2026-11-20T21:15:54.000000</productLastLineUtcTime><slantRangeTime>5.3e-03</slantRangeTime>
<rangePixelSpacing>10</rangePixelSpacing><incidenceAngleMidSwath>37.5</incidenceAngleMidSwath></imageInformation></imageAnnotation></product>"#;
        let acq = parse_acquisition(Path::new("a.xml"), xml, 25_000).unwrap();
        assert_eq!(acq.time_ms, parse_utc_ms("2026-11-20T21:15:42").unwrap());
        assert!((acq.platform_heading_deg - 192.5).abs() < 1e-9);
        assert!(
            acq.slant_range_m > 870_000.0 && acq.slant_range_m < 880_000.0,
            "{}",
            acq.slant_range_m
        );
        assert!((acq.platform_velocity_ms - 7_566.4).abs() < 1.0);
        assert!(parse_acquisition(Path::new("a.xml"), "<product/>", 10).is_err());
        // A velocity that is not a number would move every AIS position to NaN (all dark).
        for bad in ["<x>NaN</x>", "<x>inf</x>"] {
            let broken = xml.replace("<x>3000</x>", bad);
            assert!(
                parse_acquisition(Path::new("a.xml"), &broken, 25_000).is_err(),
                "{bad}"
            );
        }
    }
}
