use std::collections::HashMap;

use gdal::{Dataset, Metadata};

use super::*;
use crate::sar::acquisition::velocity_en;

fn read(path: &Path) -> (Dataset, Vec<u16>) {
    let ds = Dataset::open(path).unwrap();
    let (w, h) = ds.raster_size();
    let data = ds
        .rasterband(1)
        .unwrap()
        .read_as::<u16>((0, 0), (w, h), (w, h), None)
        .unwrap()
        .into_shape_and_vec()
        .1;
    (ds, data)
}

fn ship(lon: f64, lat: f64, sog_knots: f64, cog_deg: f64) -> ShipSpec {
    ShipSpec {
        lon,
        lat,
        length_m: 200.0,
        width_m: 32.0,
        heading_deg: cog_deg,
        rcs_db: 20.0,
        sog_knots,
        cog_deg,
    }
}

/// Mean and var/mean² of the valid pixels farther than `keep_off` pixels from every imaged ship.
fn sea_stats(data: &[u16], width: usize, truth: &Truth, keep_off: f64) -> (f64, f64) {
    let (mut n, mut sum, mut sum_sq) = (0.0, 0.0, 0.0);
    for (i, &v) in data.iter().enumerate() {
        let (x, y) = ((i % width) as f64 + 0.5, (i / width) as f64 + 0.5);
        if v == 0
            || truth
                .ships
                .iter()
                .any(|s| (s.image_x - x).hypot(s.image_y - y) < keep_off)
        {
            continue;
        }
        let v = v as f64;
        n += 1.0;
        sum += v;
        sum_sq += v * v;
    }
    let mean = sum / n;
    (mean, (sum_sq / n - mean * mean) / (mean * mean))
}

#[test]
fn formats_rfc3339_with_milliseconds() {
    assert_eq!(rfc3339_ms(1_795_209_342_123), "2026-11-20T21:15:42.123Z");
    assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    assert_eq!(rfc3339_ms(1_709_164_800_000), "2024-02-29T00:00:00.000Z");
    assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
}

#[test]
fn a_gamma_scene_reads_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scene.tif");
    let spec = SceneSpec {
        width: 512,
        height: 512,
        nodata_margin: 40,
        ships: vec![
            ship(129.0, 34.0, 0.0, 45.0),
            ship(129.02, 34.01, 0.0, 300.0),
        ],
        ..SceneSpec::default()
    };
    let truth = write_scene(&spec, &path).unwrap();
    let (ds, data) = read(&path);
    assert_eq!(ds.raster_size(), (512, 512));
    let band = ds.rasterband(1).unwrap();
    assert_eq!(band.no_data_value(), Some(0.0));
    assert_eq!(band.band_type(), gdal::raster::GdalDataType::UInt16);
    let item = |k: &str| ds.metadata_item(k, "");
    assert_eq!(
        item("ACQUISITION_TIME").as_deref(),
        Some("2026-11-20T21:15:42.123Z")
    );
    assert_eq!(
        item("ACQUISITION_TIME_MS").as_deref(),
        Some("1795209342123")
    );
    assert_eq!(item("PLATFORM_HEADING").as_deref(), Some("192"));
    assert_eq!(item("LOOK_SIDE").as_deref(), Some("RIGHT"));
    assert_eq!(item("SLANT_RANGE_M").as_deref(), Some("850000"));
    assert_eq!(item("PLATFORM_VELOCITY_MS").as_deref(), Some("7600"));
    assert_eq!(item("INCIDENCE_DEG").as_deref(), Some("37"));
    assert_eq!(item("PIXEL_SPACING_M").as_deref(), Some("10"));
    assert_eq!(item("MZ_SYNTHETIC").as_deref(), Some("1"));
    // North up, 10 m, in UTM zone 52 N, centred on the spec's centre.
    let gt = ds.geo_transform().unwrap();
    assert_eq!((gt[1], gt[2], gt[4], gt[5]), (10.0, 0.0, 0.0, -10.0));
    assert_eq!(ds.spatial_ref().unwrap().auth_code().unwrap(), 32652);
    let frame = Frame::new(512, 512, 10.0, 129.0, 34.0).unwrap();
    assert_eq!(gt, frame.geo_transform);
    assert!(ds.gcps().is_empty());

    // The slanted nodata edge: 40 columns on the top row, 20 at the bottom, valid after it.
    for row in [0, 255, 511] {
        let nd = spec.nodata_columns(row);
        assert!(
            data[row * 512..row * 512 + nd].iter().all(|&v| v == 0),
            "row {row}"
        );
        assert!(
            data[row * 512 + nd..(row + 1) * 512]
                .iter()
                .all(|&v| v >= 1),
            "row {row}"
        );
    }
    assert_eq!((spec.nodata_columns(0), spec.nodata_columns(511)), (40, 21));

    // Sea: mean 100, var/mean² = 1/L = 0.25.
    let (mean, ratio) = sea_stats(&data, 512, &truth, 30.0);
    assert!((mean - 100.0).abs() < 2.0, "{mean}");
    assert!((ratio - 0.25).abs() < 0.0125, "{ratio}");

    // Ships: still, so imaged where they are, and far brighter than the sea (20 dB: 10,000).
    for (s, t) in spec.ships.iter().zip(&truth.ships) {
        assert!(
            (t.lon - s.lon).abs() < 1e-9
                && (t.image_lon - s.lon).abs() < 1e-7
                && (t.image_lat - s.lat).abs() < 1e-7
        );
        let (cx, cy) = (t.image_x as usize, t.image_y as usize);
        let mut around = Vec::new();
        for y in cy - 1..=cy + 1 {
            for x in cx - 1..=cx + 1 {
                around.push(data[y * 512 + x] as f64);
            }
        }
        let m = around.iter().sum::<f64>() / around.len() as f64;
        assert!(m > 3_000.0, "ship at {cx},{cy}: {m}");
        assert_eq!(t.distance_to_shore_m, None);
    }
    // A 200 × 32 m hull covers about 64 pixels of 100 m².
    let bright = data.iter().filter(|&&v| v > 1_500).count();
    assert!((100..=200).contains(&bright), "{bright}");
}

#[test]
fn k_clutter_has_the_k_moments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.tif");
    let spec = SceneSpec {
        width: 512,
        height: 512,
        clutter: Clutter::K {
            looks: 4.0,
            shape: 5.0,
        },
        compress: false,
        ..SceneSpec::default()
    };
    let truth = write_scene(&spec, &path).unwrap();
    let (_, data) = read(&path);
    let (mean, ratio) = sea_stats(&data, 512, &truth, 0.0);
    let expected = (1.0 + 1.0 / 4.0) * (1.0 + 1.0 / 5.0) - 1.0; // 0.5
    assert!((mean - 100.0).abs() < 2.0, "{mean}");
    assert!(
        (ratio - expected).abs() < 0.05 * expected,
        "{ratio} vs {expected}"
    );
}

#[test]
fn the_gcp_grid_describes_the_same_ground() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gcp.tif");
    let spec = SceneSpec {
        width: 500,
        height: 400,
        georef: SynthGeoref::GcpGrid,
        center_lon: 139.9,
        center_lat: 35.3,
        ..SceneSpec::default()
    };
    write_scene(&spec, &path).unwrap();
    let ds = Dataset::open(&path).unwrap();
    assert!(ds.geo_transform().is_err() || ds.projection().is_empty());
    let gcps = ds.gcps();
    assert_eq!(gcps.len(), 121);
    assert_eq!(ds.gcp_spatial_ref().unwrap().auth_code().unwrap(), 4326);
    let frame = Frame::new(500, 400, 10.0, 139.9, 35.3).unwrap();
    for g in gcps {
        let (lon, lat) = frame.to_lonlat(&[(g.pixel(), g.line())]).unwrap()[0];
        assert!((g.x() - lon).abs() < 1e-9 && (g.y() - lat).abs() < 1e-9);
        // x is longitude, y latitude (not the EPSG axis order).
        assert!((139.0..141.0).contains(&g.x()) && (35.0..36.0).contains(&g.y()));
    }
    let centre = gcps
        .iter()
        .find(|g| g.pixel() == 250.0 && g.line() == 200.0)
        .unwrap();
    assert!((centre.x() - 139.9).abs() < 1e-9 && (centre.y() - 35.3).abs() < 1e-9);
    let corner = &gcps[0];
    assert_eq!((corner.pixel(), corner.line()), (0.0, 0.0));
    // The top-left corner is 2.5 km west and 2 km north of the centre on the UTM grid, which
    // is turned 0.6° from true north here (1.1° west of zone 54's meridian): 25 m at 2 km.
    let (m_lon, m_lat) = frame::metres_per_degree(35.3);
    assert!(((139.9 - corner.x()) * m_lon - 2_500.0).abs() < 50.0);
    assert!(((corner.y() - 35.3) * m_lat - 2_000.0).abs() < 50.0);
}

#[test]
fn land_is_drawn_where_the_mask_says() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("land.tif");
    let land = LandMask::natural_earth().clone();
    // Over Tsushima's west coast, 5 km a side: land and sea both.
    let spec = SceneSpec {
        width: 512,
        height: 512,
        center_lon: 129.25,
        center_lat: 34.35,
        land: Some(land.clone()),
        ..SceneSpec::default()
    };
    write_scene(&spec, &path).unwrap();
    let (_, data) = read(&path);
    let frame = Frame::new(512, 512, 10.0, 129.25, 34.35).unwrap();
    let mut pixels = Vec::new();
    for y in (0..512).step_by(4) {
        for x in (0..512).step_by(4) {
            pixels.push((x as f64 + 0.5, y as f64 + 0.5));
        }
    }
    let lonlat = frame.to_lonlat(&pixels).unwrap();
    let (mut land_sum, mut land_n, mut sea_sum, mut sea_n) = (0.0, 0.0, 0.0, 0.0);
    for (&(x, y), &(lon, lat)) in pixels.iter().zip(&lonlat) {
        if land.distance_to_shore_m(lon, lat) < 30.0 {
            continue; // the shore itself may fall either way
        }
        let v = data[y as usize * 512 + x as usize] as f64;
        if land.contains(lon, lat) {
            land_sum += v;
            land_n += 1.0;
        } else {
            sea_sum += v;
            sea_n += 1.0;
        }
    }
    assert!(
        land_n > 1_000.0 && sea_n > 1_000.0,
        "{land_n} land, {sea_n} sea samples"
    );
    let (land_mean, sea_mean) = (land_sum / land_n, sea_sum / sea_n);
    assert!((sea_mean - 100.0).abs() < 4.0, "{sea_mean}");
    assert!(land_mean > 500.0, "{land_mean}");
}

#[test]
fn the_same_seed_gives_the_same_scene() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SceneSpec {
        width: 300,
        height: 600,
        clutter: Clutter::K {
            looks: 3.0,
            shape: 2.0,
        },
        ships: vec![ship(129.0, 34.0, 12.0, 100.0)],
        ..SceneSpec::default()
    };
    let a = write_scene(&spec, &dir.path().join("a.tif")).unwrap();
    let b = write_scene(&spec, &dir.path().join("b.tif")).unwrap();
    let c = write_scene(
        &SceneSpec {
            seed: 2,
            ..spec.clone()
        },
        &dir.path().join("c.tif"),
    )
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c); // the truth does not depend on the speckle
    let (_, da) = read(&dir.path().join("a.tif"));
    let (_, db) = read(&dir.path().join("b.tif"));
    let (_, dc) = read(&dir.path().join("c.tif"));
    assert_eq!(da, db);
    assert!(da.iter().zip(&dc).filter(|(x, y)| x != y).count() > da.len() / 2);
}

#[test]
fn a_moving_ship_is_imaged_off_its_track() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moving.tif");
    // Closing on the right-looking radar of a 192° pass at 10 kn: imaged 300–400 m ahead
    // along the track (see acquisition.rs).
    let spec = SceneSpec {
        width: 400,
        height: 400,
        ships: vec![ship(129.0, 34.0, 10.0, 102.0)],
        ..SceneSpec::default()
    };
    let truth = write_scene(&spec, &path).unwrap();
    let t = &truth.ships[0];
    let expected = spec.acquisition.azimuth_shift_m(velocity_en(10.0, 102.0));
    let (m_lon, m_lat) = frame::metres_per_degree(34.0);
    let (de, dn) = ((t.image_lon - t.lon) * m_lon, (t.image_lat - t.lat) * m_lat);
    assert!(
        (de - expected.0).abs() < 1.0 && (dn - expected.1).abs() < 1.0,
        "{de},{dn} vs {expected:?}"
    );
    let shift = de.hypot(dn);
    assert!(shift > 300.0 && shift < 400.0, "{shift}");
    let (_, data) = read(&path);
    let at = |x: f64, y: f64| data[y as usize * 400 + x as usize];
    assert!(at(t.image_x, t.image_y) > 1_000);
    // Where the ship really is, there is only sea (its imaged hull is 30+ pixels away).
    let (tx, ty) = (200.0, 200.0);
    let around: f64 = (-2..=2)
        .flat_map(|dy| (-2..=2).map(move |dx| (dx, dy)))
        .map(|(dx, dy)| at(tx + dx as f64, ty + dy as f64) as f64)
        .sum::<f64>()
        / 25.0;
    assert!(around < 300.0, "{around}");
}

#[test]
fn truth_round_trips_through_json() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SceneSpec {
        width: 256,
        height: 256,
        land: Some(LandMask::natural_earth().clone()),
        ships: vec![ship(129.0, 34.0, 5.0, 10.0)],
        ..SceneSpec::default()
    };
    let truth = write_scene(&spec, &dir.path().join("t.tif")).unwrap();
    let d = truth.ships[0].distance_to_shore_m.unwrap();
    assert!(d > 10_000.0 && d < 30_000.0, "{d}");
    let json = dir.path().join("t.truth.json");
    truth.save_json(&json).unwrap();
    assert_eq!(Truth::load_json(&json).unwrap(), truth);
    std::fs::write(&json, "{\"ships\": [{}]}").unwrap();
    assert!(matches!(
        Truth::load_json(&json),
        Err(SynthError::Truth { .. })
    ));
    assert!(matches!(
        Truth::load_json(&dir.path().join("none.json")),
        Err(SynthError::Truth { .. })
    ));
}

#[test]
fn bad_specs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.tif");
    let base = SceneSpec {
        width: 64,
        height: 64,
        ..SceneSpec::default()
    };
    let cases = [
        SceneSpec {
            width: 0,
            ..base.clone()
        },
        SceneSpec {
            pixel_spacing_m: f64::NAN,
            ..base.clone()
        },
        SceneSpec {
            center_lat: 89.0,
            ..base.clone()
        },
        SceneSpec {
            sea_mean: -1.0,
            ..base.clone()
        },
        SceneSpec {
            clutter: Clutter::Gamma { looks: 0.0 },
            ..base.clone()
        },
        SceneSpec {
            clutter: Clutter::K {
                looks: 4.0,
                shape: f64::INFINITY,
            },
            ..base.clone()
        },
        SceneSpec {
            nodata_margin: 64,
            ..base.clone()
        },
        SceneSpec {
            ships: vec![ShipSpec {
                length_m: f64::NAN,
                ..ship(129.0, 34.0, 0.0, 0.0)
            }],
            ..base.clone()
        },
        SceneSpec {
            ships: vec![ShipSpec {
                sog_knots: -3.0,
                ..ship(129.0, 34.0, 0.0, 0.0)
            }],
            ..base.clone()
        },
    ];
    for spec in cases {
        assert!(
            matches!(write_scene(&spec, &path), Err(SynthError::Spec(_))),
            "{spec:?}"
        );
    }
    let unwritable = write_scene(&base, &dir.path().join("no/such/dir/x.tif"));
    assert!(
        matches!(unwritable, Err(SynthError::Gdal { .. })),
        "{unwritable:?}"
    );
    let mix = ShipMix {
        moving_share: 1.5,
        ..ShipMix::default()
    };
    assert!(random_ships(&base, None, 3, &mix, 1).is_err());
}

#[test]
fn random_ships_spread_over_the_sea() {
    let land = LandMask::natural_earth();
    // 20 km square over Tsushima's south-east coast.
    let spec = SceneSpec {
        width: 2048,
        height: 2048,
        center_lon: 129.4,
        center_lat: 34.25,
        nodata_margin: 100,
        ..SceneSpec::default()
    };
    let mix = ShipMix::default();
    let ships = random_ships(&spec, Some(land), 30, &mix, 11).unwrap();
    assert_eq!(ships.len(), 30);
    assert_eq!(
        ships,
        random_ships(&spec, Some(land), 30, &mix, 11).unwrap()
    );
    assert_ne!(
        ships,
        random_ships(&spec, Some(land), 30, &mix, 12).unwrap()
    );
    let spec = SceneSpec {
        ships: ships.clone(),
        land: Some(land.clone()),
        ..spec
    };
    let frame = Frame::new(2048, 2048, 10.0, 129.4, 34.25).unwrap();
    let (_, truth) = ships::image_ships(&spec, &frame).unwrap();
    let mut near = 0;
    let mut kinds: HashMap<bool, usize> = HashMap::new();
    for (i, (s, t)) in ships.iter().zip(&truth.ships).enumerate() {
        assert!((50.0..=350.0).contains(&s.length_m), "{s:?}");
        assert!((12.0..=25.0).contains(&s.rcs_db), "{s:?}");
        assert!((0.0..=18.0).contains(&s.sog_knots), "{s:?}");
        assert!(
            !land.contains(s.lon, s.lat) && !land.contains(t.image_lon, t.image_lat),
            "{s:?}"
        );
        let d = t.distance_to_shore_m.unwrap();
        assert!(d >= s.length_m / 2.0 + 100.0, "{s:?} {d}");
        near += usize::from(d <= 2_000.0);
        *kinds.entry(s.sog_knots > 0.0).or_default() += 1;
        assert!(t.image_x >= spec.nodata_columns(t.image_y as usize) as f64 && t.image_x < 2048.0);
        for u in &truth.ships[i + 1..] {
            let m = frame::metres_per_degree(s.lat);
            let apart = ((u.lon - t.lon) * m.0).hypot((u.lat - t.lat) * m.1);
            assert!(apart >= 995.0, "{apart}");
        }
    }
    assert!(near >= 4, "{near} of 30 near the shore");
    assert!(kinds[&true] >= 8 && kinds[&false] >= 4, "{kinds:?}");
    // Without land, and in a scene too small for 30 ships 1 km apart, fewer come back.
    let small = SceneSpec {
        width: 300,
        height: 300,
        ..SceneSpec::default()
    };
    let few = random_ships(&small, None, 30, &mix, 3).unwrap();
    assert!(!few.is_empty() && few.len() < 30, "{}", few.len());
}

#[test]
fn the_scene_reader_sees_what_was_drawn() {
    // Both georeferencing variants through `sar::scene`: the acquisition from the metadata
    // items, and every ship's imaged position at its pixel.
    let dir = tempfile::tempdir().unwrap();
    for georef in [SynthGeoref::Utm, SynthGeoref::GcpGrid] {
        let path = dir.path().join(format!("{georef:?}.tif"));
        let spec = SceneSpec {
            width: 600,
            height: 500,
            georef,
            ships: vec![
                ship(129.0, 34.0, 10.0, 102.0),
                ship(129.02, 33.99, 0.0, 0.0),
            ],
            ..SceneSpec::default()
        };
        let truth = write_scene(&spec, &path).unwrap();
        let scene = crate::sar::Scene::open(&path).unwrap();
        assert_eq!((scene.width, scene.height), (600, 500));
        assert_eq!(scene.acquisition, Some(spec.acquisition), "{georef:?}");
        assert_eq!(scene.nodata, Some(0.0));
        for t in &truth.ships {
            let (lon, lat) = scene.georef.to_lonlat(t.image_x, t.image_y);
            let (m_lon, m_lat) = frame::metres_per_degree(lat);
            let off = ((lon - t.image_lon) * m_lon).hypot((lat - t.image_lat) * m_lat);
            assert!(off < 1.0, "{georef:?}: {off} m");
        }
    }
}
