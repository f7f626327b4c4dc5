//! AIS ↔ SAR correlation on a real scene: ships that broadcast are matched to their
//! detections, the others come out dark, exactly; without the along-track shift of moving
//! ships the fast crossers would be called dark too. Also a Sentinel-1 SAFE folder in
//! miniature: calibration to sigma0 and the acquisition geometry from its annotation.

use mizugiwa_satellite::ais::encode::{tagged_position_sentence, PositionReportSpec};
use mizugiwa_satellite::ais::{Decoder, Tracks};
use mizugiwa_satellite::correlate::{correlate, project, CorrelationConfig, Projection};
use mizugiwa_satellite::matching::moved;
use mizugiwa_satellite::sar::acquisition::velocity_en;
use mizugiwa_satellite::sar::detect::{detect, DetectConfig};
use mizugiwa_satellite::sar::scene::Samples;
use mizugiwa_satellite::sar::synth::{random_ships, write_scene, SceneSpec, ShipMix};
use mizugiwa_satellite::sar::Scene;

#[test]
fn broadcasting_ships_match_and_exactly_the_silent_ones_are_dark() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scene.tif");
    let mut spec = SceneSpec {
        width: 1280,
        height: 1280,
        seed: 5,
        ..SceneSpec::default()
    };
    spec.acquisition.time_ms = 1_795_209_342_000; // a whole second, as tag-block times are
    let mut ships = random_ships(
        &spec,
        None,
        10,
        &ShipMix {
            moving_share: 0.0,
            min_length_m: 90.0,
            ..ShipMix::default()
        },
        6,
    )
    .unwrap();
    // The radar looks towards 282° on this descending pass: ships 0–3 cross the swath at
    // 14–16 kn, towards and away from it (imaged 400–600 m off their true positions); ship 4
    // steams along the track (no shift); the rest lie still.
    for (i, (sog, cog)) in [
        (16.0, 102.0),
        (14.0, 282.0),
        (15.0, 95.0),
        (16.0, 290.0),
        (12.0, 192.0),
    ]
    .into_iter()
    .enumerate()
    {
        ships[i].sog_knots = sog;
        ships[i].cog_deg = cog;
    }
    spec.ships = ships;
    let truth = write_scene(&spec, &path).unwrap();
    let t0 = spec.acquisition.time_ms;

    // AIS from ships 0, 1, 2, 4, 5, 7, 9 (3, 6 and 8 are dark): reports 50 s before and 70 s
    // after the acquisition, as a coastal receiver logs them (tag-block times).
    let broadcasting = [0usize, 1, 2, 4, 5, 7, 9];
    let mut lines = Vec::new();
    for &i in &broadcasting {
        let ship = &spec.ships[i];
        let (ve, vn) = velocity_en(ship.sog_knots, ship.cog_deg);
        for dt in [-50i64, 70] {
            let (lon, lat) = moved((ship.lon, ship.lat), ve * dt as f64, vn * dt as f64);
            let report = PositionReportSpec {
                mmsi: 431_000_100 + i as u32,
                lon,
                lat,
                sog_knots: ship.sog_knots,
                cog_deg: ship.cog_deg,
                utc_second: 0,
            };
            lines.push(tagged_position_sentence(
                &report,
                (t0 / 1000) + dt,
                "test-receiver",
            ));
        }
    }
    let mut decoder = Decoder::new();
    let mut tracks = Tracks::default();
    for line in &lines {
        let report = decoder
            .feed_line(line, t0)
            .expect("valid sentence")
            .expect("one-sentence message");
        tracks.update(&report);
    }

    let scene = Scene::open(&path).unwrap();
    let acq = scene
        .acquisition
        .expect("the generator writes the acquisition");
    let run = detect(&scene, None, &DetectConfig::default(), &|_, _| {}).unwrap();
    assert_eq!(
        run.detections.len(),
        spec.ships.len(),
        "one detection per ship"
    );
    // Which ship each detection is (truth imaged positions, within 200 m).
    let ship_of = |lon: f64, lat: f64| -> usize {
        let (i, d) = truth
            .ships
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    i,
                    mizugiwa_satellite::matching::distance_m(
                        (lon, lat),
                        (t.image_lon, t.image_lat),
                    ),
                )
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert!(d < 200.0, "a detection {d:.0} m from any ship");
        i
    };

    let config = CorrelationConfig {
        gate_m: 250.0,
        ..CorrelationConfig::default()
    };
    let projected = project(&tracks, &acq, &config);
    assert_eq!(projected.len(), broadcasting.len());
    assert!(projected
        .iter()
        .all(|p| p.projection == Projection::Interpolated && (p.time_gap_s - 50.0).abs() < 1e-9));
    let c = correlate(&run.detections, &projected, &config);
    let mut dark: Vec<usize> = c.dark.iter().map(|d| ship_of(d.lon, d.lat)).collect();
    dark.sort();
    assert_eq!(dark, vec![3, 6, 8]);
    for m in &c.matched {
        let d = run.detections.iter().find(|d| d.id == m.detection).unwrap();
        assert_eq!(
            m.ais.mmsi,
            431_000_100 + ship_of(d.lon, d.lat) as u32,
            "matched to the right vessel"
        );
        assert!(m.distance_m < 120.0, "{:.0} m", m.distance_m);
    }
    // Evidence: the dark crosser (3) has AIS ships somewhere, with a distance and report age.
    let three = c.dark.iter().find(|d| ship_of(d.lon, d.lat) == 3).unwrap();
    assert!(
        three.nearest_mmsi.is_some()
            && three.nearest_distance_m.unwrap() > 250.0
            && three.nearest_time_gap_s == Some(50.0)
    );

    // Without moving AIS positions the way the radar images moving ships, the crossers do not
    // match within the gate and would be reported dark.
    let unshifted = CorrelationConfig {
        azimuth_shift: false,
        ..config
    };
    let c2 = correlate(
        &run.detections,
        &project(&tracks, &acq, &unshifted),
        &unshifted,
    );
    let mut wrongly_dark: Vec<usize> = c2
        .dark
        .iter()
        .map(|d| ship_of(d.lon, d.lat))
        .filter(|i| !dark.contains(i))
        .collect();
    wrongly_dark.sort();
    assert_eq!(wrongly_dark, vec![0, 1, 2]);

    // Reports too far from the acquisition place nobody.
    let late = CorrelationConfig {
        max_interpolation_gap_s: 60.0,
        max_dead_reckoning_s: 30.0,
        ..config
    };
    assert!(project(&tracks, &acq, &late).is_empty());
}

#[test]
fn a_sentinel1_safe_folder_is_calibrated_to_sigma0() {
    let dir = tempfile::tempdir().unwrap();
    let safe = dir
        .path()
        .join("S1A_IW_GRDH_1SDV_20261120T211530_20261120T211554_TEST.SAFE");
    std::fs::create_dir_all(safe.join("measurement")).unwrap();
    std::fs::create_dir_all(safe.join("annotation/calibration")).unwrap();
    let stem = "s1a-iw-grd-vv-20261120t211530-20261120t211554-000001-000001-001";
    let tiff = safe.join("measurement").join(format!("{stem}.tiff"));

    // An amplitude scene with its GCP grid, like ESA's measurement TIFFs: the generator's GCP
    // variant gives the grid, its intensities become amplitudes here.
    let scratch = dir.path().join("scratch.tif");
    let spec = SceneSpec {
        width: 512,
        height: 512,
        georef: mizugiwa_satellite::sar::synth::SynthGeoref::GcpGrid,
        compress: false,
        ..SceneSpec::default()
    };
    write_scene(&spec, &scratch).unwrap();
    {
        let src = gdal::Dataset::open(&scratch).unwrap();
        let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
        let dst = src
            .create_copy(&driver, &tiff, &gdal::cpl::CslStringList::new())
            .unwrap();
        let mut band = dst.rasterband(1).unwrap();
        let buf = band
            .read_as::<u16>((0, 0), (512, 512), (512, 512), None)
            .unwrap();
        // Amplitude = √intensity × 25, so sigma0 = (DN / A)² = intensity × 625 / A².
        let (shape, data) = buf.into_shape_and_vec();
        let mut amp = gdal::raster::Buffer::new(
            shape,
            data.iter()
                .map(|&v| {
                    if v == 0 {
                        0
                    } else {
                        ((v as f64).sqrt() * 25.0).round().min(65535.0) as u16
                    }
                })
                .collect(),
        );
        band.write((0, 0), (512, 512), &mut amp).unwrap();
    }
    std::fs::write(
        safe.join("annotation/calibration").join(format!("calibration-{stem}.xml")),
        r#"<calibration><calibrationVectorList count="2">
<calibrationVector><line>0</line><pixel count="2">0 511</pixel><sigmaNought count="2">250 250</sigmaNought></calibrationVector>
<calibrationVector><line>511</line><pixel count="2">0 511</pixel><sigmaNought count="2">250 250</sigmaNought></calibrationVector>
</calibrationVectorList></calibration>"#,
    )
    .unwrap();
    std::fs::write(
        safe.join("annotation").join(format!("{stem}.xml")),
        r#"<product><generalAnnotation><productInformation><pass>Descending</pass><platformHeading>-168.0</platformHeading></productInformation>
<orbitList count="1"><orbit><velocity><x>3000</x><y>-6000</y><z>3500</z></velocity></orbit></orbitList></generalAnnotation>
<imageAnnotation><imageInformation><productFirstLineUtcTime>2026-11-20T21:15:30.000000</productFirstLineUtcTime>
<productLastLineUtcTime>2026-11-20T21:15:54.000000</productLastLineUtcTime><slantRangeTime>5.3e-03</slantRangeTime>
<rangePixelSpacing>10</rangePixelSpacing><incidenceAngleMidSwath>37.5</incidenceAngleMidSwath></imageInformation></imageAnnotation></product>"#,
    )
    .unwrap();

    let scene = Scene::open(&tiff).unwrap();
    assert!(
        matches!(scene.samples, Samples::Sigma0(_)),
        "{:?}",
        scene.product
    );
    let acq = scene.acquisition.unwrap();
    assert!((acq.platform_heading_deg - 192.0).abs() < 1e-9);
    assert_eq!(
        acq.time_ms,
        mizugiwa_satellite::sar::acquisition::parse_utc_ms("2026-11-20T21:15:42").unwrap()
    );
    // Mean sigma0 of the sea: intensity 100 × 625 / 250² = 1.0 (amplitude rounding aside).
    let tile = scene
        .reader()
        .unwrap()
        .read(mizugiwa_satellite::sar::Window {
            x0: 100,
            y0: 100,
            width: 200,
            height: 200,
        })
        .unwrap();
    let values: Vec<f64> = (0..40_000).filter_map(|i| tile.get(i)).collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    assert!((mean - 1.0).abs() < 0.05, "mean sigma0 {mean}");

    // A broken calibration annotation is an error, not a silent uncalibrated scene.
    std::fs::write(
        safe.join("annotation/calibration")
            .join(format!("calibration-{stem}.xml")),
        "<calibration>",
    )
    .unwrap();
    assert!(Scene::open(&tiff).is_err());
}
