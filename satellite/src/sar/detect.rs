//! The detection run over a whole scene: tiles with a halo, in parallel, land masked, CFAR,
//! then discrimination over all hits at once (a ship across a tile border is one ship).
//!
//! Each worker thread opens its own GDAL handle and takes the next tile from a shared counter,
//! so a slow tile (coast, many hits) does not hold the others back. The land polygons are
//! mapped into pixel coordinates once, buffered by the shore distance there, and rasterised
//! per tile by GDAL; only polygons whose box meets the tile are passed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use geo::{BoundingRect, Coord, LineString, MultiPolygon, Polygon};
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
    /// Worker threads; 0 uses every core.
    pub threads: usize,
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
    #[error(transparent)]
    Scene(#[from] SceneError),
    #[error("land mask: {0}")]
    Land(#[from] land::LandError),
}

/// Land polygons in the scene's pixel coordinates, grown by the shore buffer.
pub fn land_in_pixels(scene: &Scene, land: &LandMask, shore_buffer_m: f64) -> MultiPolygon<f64> {
    let (min_lon, min_lat, max_lon, max_lat) = scene.georef.bounds();
    // A margin for the buffer and for polygons whose vertices all lie outside the scene.
    let margin = 0.05;
    let near = land.intersecting(geo::Rect::new(
        Coord { x: min_lon - margin, y: min_lat - margin },
        Coord { x: max_lon + margin, y: max_lat + margin },
    ));
    let to_px = |ls: &LineString<f64>| -> Option<LineString<f64>> {
        ls.coords().map(|c| scene.georef.to_pixel(c.x, c.y).map(|(x, y)| Coord { x, y })).collect::<Option<Vec<_>>>().map(LineString::new)
    };
    let polygons: Vec<Polygon<f64>> = near
        .polygons()
        .0
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
    let start = Instant::now();
    let windows = Windows::from_metres(&config.cfar, scene.spacing_m);
    let thresholds = Thresholds::new(&config.cfar, &windows);
    let land_px = land.map(|l| land_in_pixels(scene, l, config.shore_buffer_m)).unwrap_or_else(|| MultiPolygon(Vec::new()));
    let land_boxes: Vec<geo::Rect<f64>> = land_px.0.iter().filter_map(|p| p.bounding_rect()).collect();
    let tile = config.tile_px.max(64);
    let (nx, ny) = (scene.width.div_ceil(tile), scene.height.div_ceil(tile));
    let total = nx * ny;
    let threads = match config.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(total.max(1));
    let (halo_x, halo_y) = windows.halo();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<(Vec<Hit>, TileStats, Option<DetectError>)> = Mutex::new(Default::default());

    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
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
                        let st = detect_tile(&intensity, mask.as_deref(), window, core, &windows, &thresholds, &mut hits);
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
        }
    });
    let (mut hits, stats, error) = results.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = error {
        return Err(e);
    }
    // Tiles finish in any order: sort so clusters and ids do not depend on thread timing.
    hits.sort_unstable_by_key(|h| (h.y, h.x));
    let (detections, rejected) = discriminate(&hits, &scene.georef, scene.spacing_m, &config.discrimination);
    Ok(DetectionRun {
        detections,
        windows,
        pixels: (scene.width * scene.height) as u64,
        tested: stats.tested,
        undecided: stats.undecided,
        hits: hits.len(),
        rejected,
        tiles: total,
        threads,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The land mask of a tile window, `None` when no land polygon comes near it.
fn tile_land(land: &MultiPolygon<f64>, boxes: &[geo::Rect<f64>], w: Window) -> Result<Option<Vec<u8>>, DetectError> {
    let (x0, y0, x1, y1) = (w.x0 as f64, w.y0 as f64, (w.x0 + w.width) as f64, (w.y0 + w.height) as f64);
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
    let window = PixelWindow { x0: w.x0, y0: w.y0, width: w.width, height: w.height };
    Ok(Some(land::rasterize_pixels(&MultiPolygon(near), window, true)?))
}

/// The run's detections as a GeoJSON FeatureCollection (points, with every measured property).
pub fn to_geojson(scene: &Scene, run: &DetectionRun, extra: impl Fn(&Detection) -> serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
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
