//! The detection run over a whole scene: tiles with a halo, in parallel, land masked, CFAR,
//! then discrimination over all hits at once (a ship across a tile border is one ship).
//!
//! Each worker thread opens its own GDAL handle and takes the next tile from a shared counter,
//! so a slow tile (coast, many hits) does not hold the others back. The land polygons are cut
//! to a box around the scene, mapped into pixel coordinates once, buffered by the shore
//! distance there, and rasterised per tile by GDAL; only polygons whose box meets the tile are
//! passed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use geo::{BooleanOps, BoundingRect, Coord, LineString, MultiPolygon, Polygon};
use serde::{Deserialize, Serialize};

use super::cfar::{detect_tile, CfarConfig, Hit, Thresholds, TileStats, Windows};
use super::discriminate::{discriminate, Detection, DiscriminationConfig, Rejections};
use super::scene::{Scene, SceneError, Window};
use crate::land::{self, LandMask, PixelWindow};

/// Everything a run is configured with (the `[sar]` table of a coastal site, and the CLI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    pub cfar: CfarConfig,
    pub discrimination: DiscriminationConfig,
    /// Land is grown by this much before masking: piers, moored ships and the coarse coastline
    /// would otherwise light up.
    pub shore_buffer_m: f64,
    /// Tile edge in pixels (the halo comes on top).
    pub tile_px: usize,
    /// Worker threads; 0 uses every core (at most [`MAX_THREADS`]).
    pub threads: usize,
}

/// The most worker threads a run takes: each holds a GDAL handle and a tile buffer.
pub const MAX_THREADS: usize = 256;

/// The widest background window, pixels each side of the pixel tested: the halo every tile
/// reads around itself (25 km at Sentinel-1's 10 m).
pub const MAX_HALO_PX: usize = 2_500;

/// The farthest apart, in pixels, hits may be and still join one cluster.
pub const MAX_CONNECT_PX: u32 = 50;

/// A [`DetectConfig`] field out of its domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct DetectConfigError {
    /// The field, as in the TOML table (`cfar.pfa`).
    pub field: &'static str,
    /// What it must be.
    pub problem: String,
}

impl DetectConfig {
    /// Checks every field; the error names the first bad one and what it must be. A NaN PFA
    /// would make every pixel a detection, a huge `connect_px` hang the clustering, a huge
    /// thread count fail to spawn.
    pub fn validate(&self) -> Result<(), DetectConfigError> {
        let bad = |field, problem: &str| {
            Err(DetectConfigError {
                field,
                problem: problem.to_string(),
            })
        };
        let c = &self.cfar;
        for (field, value) in [
            ("cfar.target_m", c.target_m),
            ("cfar.guard_m", c.guard_m),
            ("cfar.background_m", c.background_m),
            ("shore_buffer_m", self.shore_buffer_m),
            (
                "discrimination.min_length_m",
                self.discrimination.min_length_m,
            ),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(field, "must be zero or a positive number of metres");
            }
        }
        if !(c.pfa > 0.0 && c.pfa < 0.5) {
            return bad("cfar.pfa", "must be between 0 and 0.5");
        }
        if !(c.looks.is_finite() && c.looks > 0.0) {
            return bad("cfar.looks", "must be a positive number");
        }
        if !(0.0..=1.0).contains(&c.min_background_fraction) {
            return bad("cfar.min_background_fraction", "must be between 0 and 1");
        }
        if !(self.discrimination.max_length_m > self.discrimination.min_length_m) {
            return bad("discrimination.max_length_m", "must be above min_length_m");
        }
        if self.discrimination.connect_px > MAX_CONNECT_PX {
            return bad(
                "discrimination.connect_px",
                &format!("must be at most {MAX_CONNECT_PX} pixels"),
            );
        }
        if self.threads > MAX_THREADS {
            return bad(
                "threads",
                &format!("must be at most {MAX_THREADS} (0 uses every core)"),
            );
        }
        Ok(())
    }
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            cfar: CfarConfig::default(),
            discrimination: DiscriminationConfig::default(),
            shore_buffer_m: 200.0,
            tile_px: 512,
            threads: 0,
        }
    }
}

/// What a run found and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct DetectionRun {
    pub detections: Vec<Detection>,
    /// Window half-widths in pixels.
    pub windows: Windows,
    /// Pixels in the scene, tested, and left undecided (coast, swath edge).
    pub pixels: u64,
    pub tested: u64,
    pub undecided: u64,
    /// CFAR hits before clustering.
    pub hits: usize,
    pub rejected: Rejections,
    pub tiles: usize,
    pub threads: usize,
    pub seconds: f64,
}

impl DetectionRun {
    /// Scene pixels per second of wall time, millions.
    pub fn megapixels_per_second(&self) -> f64 {
        self.pixels as f64 / 1e6 / self.seconds.max(1e-9)
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("detection settings: {0}")]
    Config(#[from] DetectConfigError),
    #[error(transparent)]
    Scene(#[from] SceneError),
    #[error("land mask: {0}")]
    Land(#[from] land::LandError),
    #[error("cannot start a detection thread: {0}")]
    Spawn(std::io::Error),
}

/// Land polygons in the scene's pixel coordinates, grown by the shore buffer.
pub fn land_in_pixels(scene: &Scene, land: &LandMask, shore_buffer_m: f64) -> MultiPolygon<f64> {
    let (min_lon, min_lat, max_lon, max_lat) = scene.georef.bounds();
    // A margin for the buffer and for polygons whose vertices all lie outside the scene.
    let margin = 0.05;
    let around = geo::Rect::new(
        Coord {
            x: min_lon - margin,
            y: min_lat - margin,
        },
        Coord {
            x: max_lon + margin,
            y: max_lat + margin,
        },
    );
    let near = land.intersecting(around);
    let to_px = |ls: &LineString<f64>| -> Option<LineString<f64>> {
        ls.coords()
            .map(|c| scene.georef.to_pixel(c.x, c.y).map(|(x, y)| Coord { x, y }))
            .collect::<Option<Vec<_>>>()
            .map(LineString::new)
    };
    // A large island's polygon (Honshu, a continent) reaches hundreds of kilometres beyond the
    // scene, where the pixel grid folds and no longer inverts: cut it to the box around the
    // scene first, so that every vertex left maps.
    let clipped: Vec<Polygon<f64>> = near
        .polygons()
        .0
        .iter()
        .flat_map(|p| match p.bounding_rect() {
            Some(b)
                if b.min().x >= around.min().x
                    && b.min().y >= around.min().y
                    && b.max().x <= around.max().x
                    && b.max().y <= around.max().y =>
            {
                vec![p.clone()]
            }
            _ => p.intersection(&around.to_polygon()).0,
        })
        .collect();
    let polygons: Vec<Polygon<f64>> = clipped
        .iter()
        .filter_map(|p| {
            let exterior = to_px(p.exterior())?;
            let interiors = p.interiors().iter().filter_map(to_px).collect();
            Some(Polygon::new(exterior, interiors))
        })
        .collect();
    let polygons = MultiPolygon(polygons);
    let spacing = 0.5 * (scene.spacing_m.0 + scene.spacing_m.1);
    if shore_buffer_m > 0.0 && !polygons.0.is_empty() {
        land::buffer_pixels(&polygons, shore_buffer_m / spacing)
    } else {
        polygons
    }
}

/// Runs detection over a scene; `progress(done, total)` is called after every tile.
pub fn detect(
    scene: &Scene,
    land: Option<&LandMask>,
    config: &DetectConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<DetectionRun, DetectError> {
    config.validate()?;
    let start = Instant::now();
    let windows = Windows::from_metres(&config.cfar, scene.spacing_m);
    if windows.background.0.max(windows.background.1) > MAX_HALO_PX {
        let (sx, sy) = scene.spacing_m;
        let (bx, by) = windows.background;
        let problem = format!("{} m is {} × {} pixels at this scene's {sx:.2} × {sy:.2} m spacing, more than {} a side: every tile would read most of the scene", config.cfar.background_m, 2 * bx + 1, 2 * by + 1, 2 * MAX_HALO_PX + 1);
        return Err(DetectConfigError {
            field: "cfar.background_m",
            problem,
        }
        .into());
    }
    let thresholds = Thresholds::new(&config.cfar, &windows);
    let land_px = land
        .map(|l| land_in_pixels(scene, l, config.shore_buffer_m))
        .unwrap_or_else(|| MultiPolygon(Vec::new()));
    let land_boxes: Vec<geo::Rect<f64>> =
        land_px.0.iter().filter_map(|p| p.bounding_rect()).collect();
    let tile = config.tile_px.max(64);
    let (nx, ny) = (scene.width.div_ceil(tile), scene.height.div_ceil(tile));
    let total = nx * ny;
    let threads = match config.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, MAX_THREADS)
    .min(total.max(1));
    let (halo_x, halo_y) = windows.halo();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<(Vec<Hit>, TileStats, Option<DetectError>)> = Mutex::new(Default::default());

    // Workers take tiles until none are left: if the system refuses some threads, the ones
    // started still do every tile.
    let mut started = 0;
    let mut refused = None;
    std::thread::scope(|s| {
        for _ in 0..threads {
            let spawned = std::thread::Builder::new()
                .name("sar-detect".into())
                .spawn_scoped(s, || {
                    let mut hits = Vec::new();
                    let mut stats = TileStats::default();
                    let outcome = (|| -> Result<(), DetectError> {
                        let reader = scene.reader()?;
                        loop {
                            let t = next.fetch_add(1, Ordering::Relaxed);
                            if t >= total || failed.load(Ordering::Relaxed) {
                                return Ok(());
                            }
                            let (tx, ty) = (t % nx, t / nx);
                            let core = Window {
                                x0: tx * tile,
                                y0: ty * tile,
                                width: tile.min(scene.width - tx * tile),
                                height: tile.min(scene.height - ty * tile),
                            };
                            let x0 = core.x0.saturating_sub(halo_x);
                            let y0 = core.y0.saturating_sub(halo_y);
                            let window = Window {
                                x0,
                                y0,
                                width: (core.x0 + core.width + halo_x).min(scene.width) - x0,
                                height: (core.y0 + core.height + halo_y).min(scene.height) - y0,
                            };
                            let intensity = reader.read(window)?;
                            let mask = tile_land(&land_px, &land_boxes, window)?;
                            let st = detect_tile(
                                &intensity,
                                mask.as_deref(),
                                window,
                                core,
                                &windows,
                                &thresholds,
                                &mut hits,
                            );
                            stats.tested += st.tested;
                            stats.undecided += st.undecided;
                            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                        }
                    })();
                    let mut r = results.lock().unwrap_or_else(|e| e.into_inner());
                    r.0.append(&mut hits);
                    r.1.tested += stats.tested;
                    r.1.undecided += stats.undecided;
                    if let Err(e) = outcome {
                        failed.store(true, Ordering::Relaxed);
                        r.2.get_or_insert(e);
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
    });
    if let (0, Some(e)) = (started, refused) {
        return Err(DetectError::Spawn(e));
    }
    let (mut hits, stats, error) = results.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = error {
        return Err(e);
    }
    // Tiles finish in any order: sort so clusters and ids do not depend on thread timing.
    hits.sort_unstable_by_key(|h| (h.y, h.x));
    let (detections, rejected) = discriminate(
        &hits,
        &scene.georef,
        scene.spacing_m,
        &config.discrimination,
    );
    Ok(DetectionRun {
        detections,
        windows,
        pixels: (scene.width * scene.height) as u64,
        tested: stats.tested,
        undecided: stats.undecided,
        hits: hits.len(),
        rejected,
        tiles: total,
        threads: started,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The land mask of a tile window, `None` when no land polygon comes near it.
fn tile_land(
    land: &MultiPolygon<f64>,
    boxes: &[geo::Rect<f64>],
    w: Window,
) -> Result<Option<Vec<u8>>, DetectError> {
    let (x0, y0, x1, y1) = (
        w.x0 as f64,
        w.y0 as f64,
        (w.x0 + w.width) as f64,
        (w.y0 + w.height) as f64,
    );
    let near: Vec<Polygon<f64>> = land
        .0
        .iter()
        .zip(boxes)
        .filter(|(_, b)| b.min().x <= x1 && b.max().x >= x0 && b.min().y <= y1 && b.max().y >= y0)
        .map(|(p, _)| p.clone())
        .collect();
    if near.is_empty() {
        return Ok(None);
    }
    let window = PixelWindow {
        x0: w.x0,
        y0: w.y0,
        width: w.width,
        height: w.height,
    };
    Ok(Some(land::rasterize_pixels(
        &MultiPolygon(near),
        window,
        true,
    )?))
}

/// The run's detections as a GeoJSON FeatureCollection (points, with every measured property).
pub fn to_geojson(
    scene: &Scene,
    run: &DetectionRun,
    extra: impl Fn(&Detection) -> serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    let features: Vec<serde_json::Value> = run
        .detections
        .iter()
        .map(|d| {
            let mut properties = match serde_json::to_value(d) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => serde_json::Map::new(),
            };
            properties.extend(extra(d));
            serde_json::json!({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round(d.lon, 6), round(d.lat, 6)]},
                "properties": properties,
            })
        })
        .collect();
    serde_json::json!({
        "type": "FeatureCollection",
        "features": features,
        "properties": {
            "scene": scene.path.display().to_string(),
            "product": scene.product,
            "acquisition": scene.acquisition,
            "width": scene.width,
            "height": scene.height,
            "pixel_spacing_m": [scene.spacing_m.0, scene.spacing_m.1],
            "windows_px": run.windows,
            "tested": run.tested,
            "undecided": run.undecided,
            "hits": run.hits,
            "rejected": run.rejected,
            "seconds": run.seconds,
        }
    })
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// The windows in words, for logs and reports.
pub fn describe_windows(windows: &Windows, spacing_m: (f64, f64)) -> String {
    let size = |h: usize| 2 * h + 1;
    format!(
        "target {}×{} px, guard {}×{} px, background {}×{} px at {:.1}×{:.1} m",
        size(windows.target.0),
        size(windows.target.1),
        size(windows.guard.0),
        size(windows.guard.1),
        size(windows.background.0),
        size(windows.background.1),
        spacing_m.0,
        spacing_m.1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_that_would_flood_hang_or_crash_a_run_are_refused_with_the_field_named() {
        assert_eq!(DetectConfig::default().validate(), Ok(()));
        let mut flood = DetectConfig::default();
        flood.cfar.pfa = f64::NAN; // every pixel a detection
        let mut hang = DetectConfig::default();
        hang.discrimination.connect_px = u32::MAX; // (2r + 1)² lookups per hit
        let crash = DetectConfig {
            threads: 1_000_000,
            ..DetectConfig::default()
        }; // spawn fails
        let mut blind = DetectConfig::default();
        blind.cfar.background_m = f64::INFINITY;
        let shore = DetectConfig {
            shore_buffer_m: f64::NAN,
            ..DetectConfig::default()
        };
        let mut sizes = DetectConfig::default();
        sizes.discrimination.max_length_m = 10.0;
        for (config, field) in [
            (flood, "cfar.pfa"),
            (hang, "discrimination.connect_px"),
            (crash, "threads"),
            (blind, "cfar.background_m"),
            (shore, "shore_buffer_m"),
            (sizes, "discrimination.max_length_m"),
        ] {
            let why = config.validate().expect_err(field);
            assert_eq!(why.field, field, "{why}");
            assert!(why.to_string().starts_with(field), "{why}");
        }
    }
}
