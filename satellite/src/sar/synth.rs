//! Synthetic SAR scenes whose truth is known: sea clutter from the speckle models CFAR assumes,
//! land from a [`LandMask`], ships imaged where a SAR puts them, written as GeoTIFFs the scene
//! reader opens like any other product. The tests, the benchmark and the demo run on them.
//!
//! The model, per pixel of intensity (digital number, `u16`):
//!
//! - sea: `sea_mean · τ · s`, speckle `s ~ Gamma(L, 1/L)` (mean 1, L looks) and texture `τ = 1`
//!   for gamma clutter or `τ ~ Gamma(ν, 1/ν)` for K clutter, so `var/mean² = 1/L` (gamma) or
//!   `(1 + 1/L)(1 + 1/ν) − 1` (K);
//! - land: `8 · sea_mean` times a smooth random texture, times speckle;
//! - ships: a rectangle of the ship's length and width along its heading, at the position
//!   where the SAR images it (moved along the track by its line-of-sight speed, see
//!   [`Acquisition::azimuth_shift_m`]), of mean `sea_mean · 10^(rcs_db/10)` with its own
//!   speckle; pixels the hull covers only in part mix hull and background by the covered share
//!   (4 × 4 supersampling);
//! - `0` is nodata (the band's nodata value): a slanted strip at the left edge like the edge of
//!   a Sentinel-1 swath. Valid samples are rounded and clamped to `1..=65535`.
//!
//! Rows are generated in blocks of 256 (one tile row of the GeoTIFF), in parallel, each block
//! from its own RNG seeded by the scene's seed and the block's index: the output depends on the
//! seed only, never on the number of threads.
//!
//! ```no_run
//! use mizugiwa_satellite::sar::synth::{random_ships, write_scene, SceneSpec, ShipMix};
//! use mizugiwa_satellite::land::LandMask;
//!
//! let mut spec = SceneSpec { width: 2048, height: 2048, center_lon: 129.55, center_lat: 34.4, ..SceneSpec::default() };
//! spec.land = Some(LandMask::natural_earth().clone());
//! spec.ships = random_ships(&spec, spec.land.as_ref(), 20, &ShipMix::default(), 7)?;
//! let truth = write_scene(&spec, "scene.tif".as_ref())?;
//! truth.save_json("scene.truth.json".as_ref())?;
//! # Ok::<(), mizugiwa_satellite::sar::synth::SynthError>(())
//! ```

mod frame;
mod render;
mod ships;

use std::path::{Path, PathBuf};

use gdal::raster::{Buffer, RasterCreationOptions};
use gdal::{DriverManager, Gcp, Metadata};
use geo::{Coord, LineString, MultiPolygon, Polygon, Rect};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::land::{LandError, LandMask};
use crate::sar::acquisition::{Acquisition, LookSide};
use frame::Frame;
use render::Render;
pub use ships::{random_ships, ShipMix};

/// Rows generated (and written) together: one row of 256 × 256 GeoTIFF tiles.
const BLOCK_ROWS: usize = 256;
/// GCPs a side for [`SynthGeoref::GcpGrid`] (Sentinel-1 GRD has about 10 × 21).
const GCP_GRID: usize = 11;
/// Land is this much brighter than the sea, on average, before its texture.
const LAND_BRIGHTNESS: f64 = 8.0;
/// Largest side accepted, pixels (GDAL takes C ints; a Sentinel-1 GRD is about 26,000 wide).
const MAX_SIDE: usize = 100_000;

/// How the scene is georeferenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SynthGeoref {
    /// Projected to the UTM zone of the centre (EPSG:326zz or 327zz), north up, a
    /// geotransform of `pixel_spacing_m`.
    Utm,
    /// No geotransform, an 11 × 11 grid of GCPs in EPSG:4326 (x = lon, y = lat), like a
    /// Sentinel-1 GRD measurement TIFF. The GCPs are computed from the same UTM grid, so both
    /// variants describe the same ground.
    GcpGrid,
}

/// The sea's intensity distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "model")]
pub enum Clutter {
    /// Fully developed speckle: intensity ~ Gamma(L, mean/L). Sentinel-1 IW GRD has L ≈ 4.4.
    Gamma { looks: f64 },
    /// K-distributed: speckle times a Gamma(ν, 1/ν) texture; spiky sea for small ν (1–5),
    /// gamma again as ν → ∞.
    K { looks: f64, shape: f64 },
}

/// One ship to draw.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShipSpec {
    /// True position at the acquisition time, degrees.
    pub lon: f64,
    pub lat: f64,
    pub length_m: f64,
    pub width_m: f64,
    /// Direction of the bow, degrees clockwise from true north.
    pub heading_deg: f64,
    /// Mean intensity of the hull above the sea's mean, dB (12–25 for 50–350 m ships in C band).
    pub rcs_db: f64,
    /// Speed and course over ground: a moving ship is imaged off its true position.
    pub sog_knots: f64,
    pub cog_deg: f64,
}

/// Everything that makes a synthetic scene.
#[derive(Debug, Clone)]
pub struct SceneSpec {
    pub width: usize,
    pub height: usize,
    /// Ground pixel spacing, metres (10 for Sentinel-1 GRD high resolution).
    pub pixel_spacing_m: f64,
    /// The scene's centre, degrees.
    pub center_lon: f64,
    pub center_lat: f64,
    pub georef: SynthGeoref,
    pub clutter: Clutter,
    /// Mean intensity of the sea, digital numbers.
    pub sea_mean: f64,
    /// Land to draw, if any (brighter and textured).
    pub land: Option<LandMask>,
    pub ships: Vec<ShipSpec>,
    /// Nodata columns at the left edge on the top row; the edge slants to half as many on the
    /// bottom row (see [`SceneSpec::nodata_columns`]).
    pub nodata_margin: usize,
    pub seed: u64,
    pub acquisition: Acquisition,
    /// DEFLATE-compress the GeoTIFF (smaller, about twice as slow to write).
    pub compress: bool,
}

impl Default for SceneSpec {
    /// 1024 × 1024 at 10 m off Tsushima, gamma clutter of 4 looks at 100, no land, no ships,
    /// a descending Sentinel-1-like pass on 2026-11-20 at 21:15:42.123 UTC.
    fn default() -> Self {
        SceneSpec {
            width: 1024,
            height: 1024,
            pixel_spacing_m: 10.0,
            center_lon: 129.0,
            center_lat: 34.0,
            georef: SynthGeoref::Utm,
            clutter: Clutter::Gamma { looks: 4.0 },
            sea_mean: 100.0,
            land: None,
            ships: Vec::new(),
            nodata_margin: 0,
            seed: 1,
            acquisition: Acquisition {
                time_ms: 1_795_209_342_123,
                platform_heading_deg: 192.0,
                look_side: LookSide::Right,
                slant_range_m: 850_000.0,
                platform_velocity_ms: 7_600.0,
                incidence_deg: 37.0,
            },
            compress: true,
        }
    }
}

impl SceneSpec {
    /// Nodata columns at the start of `row`: `nodata_margin` on the top row, slanting to half
    /// of it on the bottom row.
    pub fn nodata_columns(&self, row: usize) -> usize {
        let m = self.nodata_margin;
        m - m * row.min(self.height) / (2 * self.height.max(1))
    }

    /// Checks every number before anything is computed or written, so a bad spec is an error
    /// that names the field, never a panic or a silently wrong scene.
    fn validate(&self) -> Result<(), SynthError> {
        let bad = |m: String| Err(SynthError::Spec(m));
        if self.width == 0 || self.height == 0 || self.width > MAX_SIDE || self.height > MAX_SIDE {
            return bad(format!(
                "size {} × {} must be 1..={MAX_SIDE} a side",
                self.width, self.height
            ));
        }
        if !(self.pixel_spacing_m.is_finite()
            && self.pixel_spacing_m > 0.0
            && self.pixel_spacing_m <= 1_000.0)
        {
            return bad(format!(
                "pixel_spacing_m {} must be in (0, 1000]",
                self.pixel_spacing_m
            ));
        }
        // UTM is defined from 80° S to 84° N.
        if !((-180.0..=180.0).contains(&self.center_lon)
            && (-80.0..=84.0).contains(&self.center_lat))
        {
            return bad(format!(
                "centre ({}, {}) must be a lon/lat within UTM's -80..84° N",
                self.center_lon, self.center_lat
            ));
        }
        if !(self.sea_mean.is_finite()
            && self.sea_mean >= 1.0
            && self.sea_mean * LAND_BRIGHTNESS <= 60_000.0)
        {
            return bad(format!(
                "sea_mean {} must be in 1..=7500 (land is 8× brighter in u16)",
                self.sea_mean
            ));
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        match self.clutter {
            Clutter::Gamma { looks } if !positive(looks) => {
                return bad(format!("looks {looks} must be positive"))
            }
            Clutter::K { looks, shape } if !(positive(looks) && positive(shape)) => {
                return bad(format!(
                    "K clutter looks {looks} and shape {shape} must be positive"
                ))
            }
            _ => {}
        }
        if self.nodata_margin >= self.width {
            return bad(format!(
                "nodata_margin {} leaves no valid column of {}",
                self.nodata_margin, self.width
            ));
        }
        let a = &self.acquisition;
        if !(a.platform_heading_deg.is_finite()
            && positive(a.slant_range_m)
            && a.platform_velocity_ms.is_finite()
            && a.platform_velocity_ms >= 0.0
            && (0.0..90.0).contains(&a.incidence_deg))
        {
            return bad(format!(
                "acquisition {a:?} has a non-finite or out-of-range value"
            ));
        }
        for (i, s) in self.ships.iter().enumerate() {
            let ok = (-180.0..=180.0).contains(&s.lon)
                && (-90.0..=90.0).contains(&s.lat)
                && positive(s.length_m)
                && positive(s.width_m)
                && s.length_m <= 2_000.0
                && s.width_m <= 2_000.0
                && s.heading_deg.is_finite()
                && s.rcs_db.is_finite()
                && s.rcs_db.abs() <= 60.0
                && s.sog_knots.is_finite()
                && (0.0..=60.0).contains(&s.sog_knots)
                && s.cog_deg.is_finite();
            if !ok {
                return bad(format!(
                    "ship {i} {s:?} has a non-finite or out-of-range value"
                ));
            }
        }
        Ok(())
    }
}

/// What was drawn: one entry per ship of the spec, in the same order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub ships: Vec<TruthShip>,
}

/// A drawn ship: where it is and where the image shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthShip {
    /// True position at the acquisition time.
    pub lon: f64,
    pub lat: f64,
    /// Where it is imaged (the centre of the drawn hull).
    pub image_lon: f64,
    pub image_lat: f64,
    /// The imaged centre in pixel coordinates (x = column, y = row, corner-based: the centre of
    /// pixel (c, r) is (c + 0.5, r + 0.5)). [`random_ships`] keeps it inside the valid part of
    /// the scene; a hand-placed ship may be imaged outside it (then nothing of it is drawn).
    pub image_x: f64,
    pub image_y: f64,
    pub length_m: f64,
    pub width_m: f64,
    pub heading_deg: f64,
    pub rcs_db: f64,
    /// Metres from the true position to the nearest shore of the spec's land mask; `None`
    /// when the scene has no land mask.
    pub distance_to_shore_m: Option<f64>,
    pub sog_knots: f64,
    pub cog_deg: f64,
}

impl Truth {
    /// Writes the truth as pretty JSON.
    pub fn save_json(&self, path: &Path) -> Result<(), SynthError> {
        let err = |message: String| SynthError::Truth {
            path: path.to_path_buf(),
            message,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|e| err(e.to_string()))
    }

    /// Reads a truth file written by [`Truth::save_json`].
    pub fn load_json(path: &Path) -> Result<Truth, SynthError> {
        let err = |message: String| SynthError::Truth {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))
    }
}

/// What went wrong making a scene.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid scene spec: {0}")]
    Spec(String),
    #[error("{context}: {source}")]
    Gdal {
        context: String,
        #[source]
        source: gdal::errors::GdalError,
    },
    #[error(transparent)]
    Land(#[from] LandError),
    #[error("truth file {path}: {message}")]
    Truth { path: PathBuf, message: String },
}

fn gdal_err(context: &str) -> impl FnOnce(gdal::errors::GdalError) -> SynthError + '_ {
    move |source| SynthError::Gdal {
        context: context.to_string(),
        source,
    }
}

/// Writes the scene to `path` (a tiled `u16` GeoTIFF) and returns its truth.
pub fn write_scene(spec: &SceneSpec, path: &Path) -> Result<Truth, SynthError> {
    spec.validate()?;
    let frame = Frame::of(spec)?;
    let (footprints, truth) = ships::image_ships(spec, &frame)?;
    let land_px = land_in_pixels(spec, &frame)?;

    let mut options = vec![
        "TILED=YES",
        "BLOCKXSIZE=256",
        "BLOCKYSIZE=256",
        "BIGTIFF=IF_SAFER",
    ];
    if spec.compress {
        options.extend(["COMPRESS=DEFLATE", "ZLEVEL=1"]);
    }
    let options = RasterCreationOptions::from_iter(options);
    let driver = DriverManager::get_driver_by_name("GTiff").map_err(gdal_err("GeoTIFF driver"))?;
    let mut dataset = driver
        .create_with_band_type_with_options::<u16, _>(path, spec.width, spec.height, 1, &options)
        .map_err(gdal_err("creating the GeoTIFF"))?;
    match spec.georef {
        SynthGeoref::Utm => {
            dataset
                .set_spatial_ref(&frame.utm)
                .map_err(gdal_err("setting the projection"))?;
            dataset
                .set_geo_transform(&frame.geo_transform)
                .map_err(gdal_err("setting the geotransform"))?;
        }
        SynthGeoref::GcpGrid => {
            let mut grid = Vec::with_capacity(GCP_GRID * GCP_GRID);
            for j in 0..GCP_GRID {
                for i in 0..GCP_GRID {
                    let pixel = (i * spec.width) as f64 / (GCP_GRID - 1) as f64;
                    let line = (j * spec.height) as f64 / (GCP_GRID - 1) as f64;
                    grid.push((pixel, line));
                }
            }
            let lonlat = frame.to_lonlat(&grid)?;
            let gcps = grid
                .iter()
                .zip(&lonlat)
                .enumerate()
                .map(|(k, (&(pixel, line), &(x, y)))| Gcp {
                    id: (k + 1).to_string(),
                    info: String::new(),
                    pixel,
                    line,
                    x,
                    y,
                    z: 0.0,
                })
                .collect();
            dataset
                .set_gcps(gcps, &frame.wgs84)
                .map_err(gdal_err("setting the GCPs"))?;
        }
    }
    for (key, value) in metadata(spec) {
        dataset
            .set_metadata_item(key, &value, "")
            .map_err(gdal_err("writing metadata"))?;
    }
    {
        let mut band = dataset
            .rasterband(1)
            .map_err(gdal_err("opening the band"))?;
        band.set_no_data_value(Some(0.0))
            .map_err(gdal_err("setting nodata"))?;
        let blocks = spec.height.div_ceil(BLOCK_ROWS);
        // Generate a few blocks per thread at a time, then write them in order: memory stays
        // bounded for scenes of any size.
        let batch = rayon::current_num_threads().max(1) * 2;
        let render = Render {
            spec,
            land_px: &land_px,
            footprints: &footprints,
        };
        for first in (0..blocks).step_by(batch) {
            let rendered: Vec<Result<Vec<u16>, SynthError>> = (first..(first + batch).min(blocks))
                .into_par_iter()
                .map(|b| render.block(b))
                .collect();
            for (k, data) in rendered.into_iter().enumerate() {
                let y0 = (first + k) * BLOCK_ROWS;
                let rows = BLOCK_ROWS.min(spec.height - y0);
                let mut buffer = Buffer::new((spec.width, rows), data?);
                band.write((0, y0 as isize), (spec.width, rows), &mut buffer)
                    .map_err(gdal_err("writing samples"))?;
            }
        }
    }
    dataset.close().map_err(gdal_err("closing the GeoTIFF"))?;
    Ok(truth)
}

/// The metadata items the scene reader reads (see `sar::scene`), plus `MZ_SYNTHETIC=1`.
fn metadata(spec: &SceneSpec) -> Vec<(&'static str, String)> {
    let a = &spec.acquisition;
    let clutter = match spec.clutter {
        Clutter::Gamma { looks } => format!("gamma looks={looks}"),
        Clutter::K { looks, shape } => format!("K looks={looks} shape={shape}"),
    };
    vec![
        ("ACQUISITION_TIME", rfc3339_ms(a.time_ms)),
        ("ACQUISITION_TIME_MS", a.time_ms.to_string()),
        ("PLATFORM_HEADING", a.platform_heading_deg.to_string()),
        (
            "LOOK_SIDE",
            match a.look_side {
                LookSide::Right => "RIGHT",
                LookSide::Left => "LEFT",
            }
            .to_string(),
        ),
        ("SLANT_RANGE_M", a.slant_range_m.to_string()),
        ("PLATFORM_VELOCITY_MS", a.platform_velocity_ms.to_string()),
        ("INCIDENCE_DEG", a.incidence_deg.to_string()),
        ("PIXEL_SPACING_M", spec.pixel_spacing_m.to_string()),
        ("MZ_SYNTHETIC", "1".to_string()),
        ("MZ_CLUTTER", clutter),
        ("MZ_SEA_MEAN", spec.sea_mean.to_string()),
        ("MZ_SEED", spec.seed.to_string()),
    ]
}

/// UNIX milliseconds as RFC 3339 UTC with milliseconds, e.g. `2026-11-20T21:15:42.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days: proleptic Gregorian date of a day count from 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
}

/// The lon/lat box of the scene, grown by `margin` degrees.
fn scene_bounds(spec: &SceneSpec, frame: &Frame, margin: f64) -> Result<Rect<f64>, SynthError> {
    let (w, h) = (spec.width as f64, spec.height as f64);
    let rim: Vec<(f64, f64)> = (0..=8)
        .flat_map(|k| {
            let t = k as f64 / 8.0;
            [(t * w, 0.0), (t * w, h), (0.0, t * h), (w, t * h)]
        })
        .collect();
    let (mut min, mut max) = (
        Coord {
            x: f64::MAX,
            y: f64::MAX,
        },
        Coord {
            x: f64::MIN,
            y: f64::MIN,
        },
    );
    for (x, y) in frame.to_lonlat(&rim)? {
        min = Coord {
            x: min.x.min(x),
            y: min.y.min(y),
        };
        max = Coord {
            x: max.x.max(x),
            y: max.y.max(y),
        };
    }
    Ok(Rect::new(
        Coord {
            x: min.x - margin,
            y: min.y - margin,
        },
        Coord {
            x: max.x + margin,
            y: max.y + margin,
        },
    ))
}

/// The spec's land near the scene, in pixel coordinates.
fn land_in_pixels(spec: &SceneSpec, frame: &Frame) -> Result<MultiPolygon<f64>, SynthError> {
    let Some(land) = &spec.land else {
        return Ok(MultiPolygon(Vec::new()));
    };
    let near = land.intersecting(scene_bounds(spec, frame, 0.02)?);
    let ring_px = |ring: &LineString<f64>| -> Result<LineString<f64>, SynthError> {
        let pts: Vec<(f64, f64)> = ring.coords().map(|c| (c.x, c.y)).collect();
        Ok(LineString::from(frame.to_pixel(&pts)?))
    };
    let mut polygons = Vec::with_capacity(near.polygons().0.len());
    for p in near.polygons() {
        let interiors = p
            .interiors()
            .iter()
            .map(ring_px)
            .collect::<Result<Vec<_>, _>>()?;
        polygons.push(Polygon::new(ring_px(p.exterior())?, interiors));
    }
    Ok(MultiPolygon(polygons))
}

#[cfg(test)]
mod tests;
