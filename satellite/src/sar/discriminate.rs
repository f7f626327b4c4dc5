//! From CFAR hits to ships: 8-connected clusters (bridging gaps of a pixel or two that speckle
//! leaves along a hull), their size and orientation, a size filter, one detection per ship.
//!
//! Hits are sparse (a few per million pixels plus the ships), so clusters are found by
//! union-find over a hash of hit positions rather than by labelling a full-scene raster.
//! Shape comes from the second moments of the cluster's bright core (the hits whose own
//! intensity passes the local threshold: the two-parameter test smears a ship by its target
//! window, the core does not), in metres: a uniform rectangle of length l has variance
//! l²/12 along its axis, so `length = √(12·λ₁ + s²)` with s the pixel size for the sampling.
//! The position is the centroid weighted by intensity above the local sea level.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::cfar::Hit;
use super::georef::TiePointGrid;

/// The size filter and clustering.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscriminationConfig {
    /// Shortest object kept, metres.
    pub min_length_m: f64,
    /// Longest object kept, metres (longer bright objects are platforms, breakwaters, ghosts).
    pub max_length_m: f64,
    /// Hits up to this many pixels apart (in x and in y) join one cluster; 1 is plain
    /// 8-connectivity. The default 3 (30 m at Sentinel-1's 10 m) keeps a long hull whose
    /// speckle leaves a dark pixel or two along it as one ship; two hulls moored closer than
    /// that come out as one object, longer than either.
    pub connect_px: u32,
}

impl Default for DiscriminationConfig {
    fn default() -> Self {
        DiscriminationConfig {
            min_length_m: 50.0,
            max_length_m: 600.0,
            connect_px: 3,
        }
    }
}

/// One detected object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Index in the run, in scene order (top to bottom).
    pub id: u32,
    pub lon: f64,
    pub lat: f64,
    /// Centroid in pixels (column, row), pixel edges at integers.
    pub x: f64,
    pub y: f64,
    /// Estimated length and width, metres.
    pub length_m: f64,
    pub width_m: f64,
    /// Bearing of the long axis, degrees in [0, 180): SAR cannot tell bow from stern.
    pub heading_deg: f64,
    /// Hits in the cluster.
    pub pixels: u32,
    /// Brightest intensity and the local sea level.
    pub peak: f64,
    pub background: f64,
    /// Peak over sea level, dB.
    pub contrast_db: f64,
    /// Bounding box in pixels: x0, y0, x1, y1 (inclusive).
    pub bbox: [u32; 4],
}

/// Why clusters were dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Rejections {
    pub too_short: u32,
    pub too_long: u32,
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let p = parent[parent[i as usize] as usize];
        parent[i as usize] = p;
        i = p;
    }
    i
}

/// Groups hits into clusters of indices (hits within `connect_px` in x and y of each other).
pub fn clusters(hits: &[Hit], connect_px: u32) -> Vec<Vec<usize>> {
    let at: HashMap<(u32, u32), u32> = hits
        .iter()
        .enumerate()
        .map(|(i, h)| ((h.x, h.y), i as u32))
        .collect();
    let mut parent: Vec<u32> = (0..hits.len() as u32).collect();
    let r = connect_px.max(1) as i64;
    for (i, h) in hits.iter().enumerate() {
        // Only neighbours ahead in scan order: each pair is looked at once.
        for dy in 0..=r {
            for dx in -r..=r {
                if dy == 0 && dx <= 0 {
                    continue;
                }
                let (nx, ny) = (h.x as i64 + dx, h.y as i64 + dy);
                if nx < 0 {
                    continue;
                }
                if let Some(&j) = at.get(&(nx as u32, ny as u32)) {
                    let (a, b) = (find(&mut parent, i as u32), find(&mut parent, j));
                    if a != b {
                        parent[a.max(b) as usize] = a.min(b);
                    }
                }
            }
        }
    }
    let mut groups: HashMap<u32, Vec<usize>> = HashMap::new();
    for i in 0..hits.len() {
        groups
            .entry(find(&mut parent, i as u32))
            .or_default()
            .push(i);
    }
    let mut out: Vec<Vec<usize>> = groups.into_values().collect();
    out.sort_by_key(|g| (hits[g[0]].y, hits[g[0]].x));
    out
}

/// Measures each cluster and keeps those of ship size.
pub fn discriminate(
    hits: &[Hit],
    georef: &TiePointGrid,
    spacing_m: (f64, f64),
    config: &DiscriminationConfig,
) -> (Vec<Detection>, Rejections) {
    let mut detections = Vec::new();
    let mut rejected = Rejections::default();
    let (sx, sy) = spacing_m;
    for group in clusters(hits, config.connect_px) {
        let members: Vec<&Hit> = group.iter().map(|&i| &hits[i]).collect();
        let core: Vec<&Hit> = members
            .iter()
            .copied()
            .filter(|h| h.value > h.threshold)
            .collect();
        let shape_of = if core.len() >= 2 { &core } else { &members };
        // Centroid weighted by intensity above the sea.
        let weight = |h: &Hit| ((h.value - h.background) as f64).max(1e-6);
        let wsum: f64 = members.iter().map(|h| weight(h)).sum();
        let cx = members
            .iter()
            .map(|h| weight(h) * (h.x as f64 + 0.5))
            .sum::<f64>()
            / wsum;
        let cy = members
            .iter()
            .map(|h| weight(h) * (h.y as f64 + 0.5))
            .sum::<f64>()
            / wsum;
        // Second moments of the core, in metres.
        let n = shape_of.len() as f64;
        let mx = shape_of.iter().map(|h| h.x as f64).sum::<f64>() / n;
        let my = shape_of.iter().map(|h| h.y as f64).sum::<f64>() / n;
        let (mut cxx, mut cyy, mut cxy) = (0.0, 0.0, 0.0);
        for h in shape_of {
            let (dx, dy) = ((h.x as f64 - mx) * sx, (h.y as f64 - my) * sy);
            cxx += dx * dx;
            cyy += dy * dy;
            cxy += dx * dy;
        }
        let (cxx, cyy, cxy) = (cxx / n, cyy / n, cxy / n);
        let mean = 0.5 * (cxx + cyy);
        let root = (0.25 * (cxx - cyy).powi(2) + cxy * cxy).sqrt();
        let (l1, l2) = (mean + root, (mean - root).max(0.0));
        let s2 = sx * sy;
        let length_m = (12.0 * l1 + s2).sqrt();
        let width_m = (12.0 * l2 + s2).sqrt();
        if length_m < config.min_length_m {
            rejected.too_short += 1;
            continue;
        }
        if length_m > config.max_length_m {
            rejected.too_long += 1;
            continue;
        }
        // The major axis in metres, back to a pixel direction for the bearing.
        let angle = 0.5 * (2.0 * cxy).atan2(cxx - cyy);
        let (ex, ey) = (angle.cos() / sx, angle.sin() / sy);
        let heading_deg = georef.bearing_of(cx, cy, ex, ey) % 180.0;
        let peak = members
            .iter()
            .map(|h| h.value as f64)
            .fold(f64::MIN, f64::max);
        let background =
            members.iter().map(|h| h.background as f64).sum::<f64>() / members.len() as f64;
        let (lon, lat) = georef.to_lonlat(cx, cy);
        let bbox = members.iter().fold([u32::MAX, u32::MAX, 0, 0], |b, h| {
            [b[0].min(h.x), b[1].min(h.y), b[2].max(h.x), b[3].max(h.y)]
        });
        detections.push(Detection {
            id: detections.len() as u32,
            lon,
            lat,
            x: cx,
            y: cy,
            length_m,
            width_m,
            heading_deg,
            pixels: members.len() as u32,
            peak,
            background,
            contrast_db: 10.0 * (peak / background.max(1e-12)).log10(),
            bbox,
        });
    }
    (detections, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(x: u32, y: u32) -> Hit {
        Hit {
            x,
            y,
            value: 1000.0,
            threshold: 500.0,
            background: 100.0,
        }
    }

    fn grid() -> TiePointGrid {
        // North-up, 10 m pixels near 34° N.
        TiePointGrid::sample(1000, 1000, 5, |x, y| {
            (129.0 + x * 10.0 / 92_300.0, 34.5 - y * 10.0 / 110_950.0)
        })
        .unwrap()
    }

    #[test]
    fn clusters_are_eight_connected() {
        let hits = vec![
            hit(10, 10),
            hit(11, 11),
            hit(12, 12),
            hit(14, 12),
            hit(30, 5),
        ];
        let c = clusters(&hits, 1);
        let sizes: Vec<usize> = c.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 3, 1]);
        assert_eq!(clusters(&hits, 2).len(), 2);
    }

    #[test]
    fn a_ship_shaped_cluster_gets_its_length_width_and_heading() {
        // 20 × 3 pixels lying east-west: 200 m × 30 m at 10 m pixels.
        let mut hits = Vec::new();
        for x in 100..120 {
            for y in 50..53 {
                hits.push(hit(x, y));
            }
        }
        let (d, rejected) = discriminate(
            &hits,
            &grid(),
            (10.0, 10.0),
            &DiscriminationConfig::default(),
        );
        assert_eq!(rejected, Rejections::default());
        assert_eq!(d.len(), 1);
        let d = &d[0];
        assert!((d.length_m - 200.0).abs() < 1.0, "{}", d.length_m);
        assert!((d.width_m - 30.0).abs() < 1.0, "{}", d.width_m);
        assert!((d.heading_deg - 90.0).abs() < 1.0, "{}", d.heading_deg);
        assert!((d.x - 110.0).abs() < 1e-9 && (d.y - 51.5).abs() < 1e-9);
        assert!((d.contrast_db - 10.0).abs() < 1e-9);

        // The same ship diagonal (north-east) keeps its length.
        let diag: Vec<Hit> = (0..15)
            .flat_map(|i| [hit(200 + i, 300 - i), hit(201 + i, 300 - i)])
            .collect();
        let (d, _) = discriminate(
            &diag,
            &grid(),
            (10.0, 10.0),
            &DiscriminationConfig::default(),
        );
        assert!(
            (d[0].heading_deg - 45.0).abs() < 3.0,
            "{}",
            d[0].heading_deg
        );
        assert!(
            d[0].length_m > 200.0 && d[0].length_m < 230.0,
            "{}",
            d[0].length_m
        );
    }

    #[test]
    fn specks_and_giants_are_filtered_out() {
        let speck = vec![hit(5, 5), hit(6, 5)];
        let wall: Vec<Hit> = (0..80).map(|x| hit(x, 500)).collect();
        let all: Vec<Hit> = speck.into_iter().chain(wall).collect();
        let (d, rejected) = discriminate(
            &all,
            &grid(),
            (10.0, 10.0),
            &DiscriminationConfig::default(),
        );
        assert!(d.is_empty());
        assert_eq!(
            rejected,
            Rejections {
                too_short: 1,
                too_long: 1
            }
        );
    }
}
