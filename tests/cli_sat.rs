//! `mizugiwa sat detect` as an analyst runs it: a scene and a receiver's AIS log in, GeoJSON
//! with the dark vessels marked and a quicklook out; broken input refused with a clear message.

use std::path::Path;
use std::process::Command;

use mizugiwa_satellite::ais::encode::{tagged_position_sentence, PositionReportSpec};
use mizugiwa_satellite::sar::synth::{random_ships, write_scene, SceneSpec, ShipMix};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mizugiwa");

fn detect(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["sat", "detect"])
        .args(args)
        .output()
        .expect("run mizugiwa")
}

#[test]
fn a_scene_and_an_ais_log_give_geojson_with_the_dark_vessels_and_a_quicklook() {
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("scene.tif");
    let mut spec = SceneSpec {
        width: 1024,
        height: 1024,
        seed: 9,
        ..SceneSpec::default()
    };
    spec.acquisition.time_ms = 1_795_209_342_000;
    spec.ships = random_ships(
        &spec,
        None,
        6,
        &ShipMix {
            moving_share: 0.0,
            min_length_m: 90.0,
            ..ShipMix::default()
        },
        10,
    )
    .unwrap();
    let truth = write_scene(&spec, &scene).unwrap();
    // Ships 0, 2 and 4 broadcast (anchored: the same position before and after the pass).
    let t = spec.acquisition.time_ms / 1000;
    let mut log = String::from("garbage that is not NMEA\n");
    for i in [0usize, 2, 4] {
        let s = &spec.ships[i];
        for dt in [-120, 90] {
            let r = PositionReportSpec {
                mmsi: 431_500_000 + i as u32,
                lon: s.lon,
                lat: s.lat,
                sog_knots: 0.0,
                cog_deg: 0.0,
                utc_second: 0,
            };
            log.push_str(&tagged_position_sentence(&r, t + dt, "cli-test"));
            log.push('\n');
        }
    }
    let feed = dir.path().join("feed.nmea");
    std::fs::write(&feed, log).unwrap();
    let (geojson, quicklook) = (dir.path().join("out.geojson"), dir.path().join("q.png"));
    let out = detect(&[
        scene.to_str().unwrap(),
        "--ais",
        feed.to_str().unwrap(),
        "--no-land",
        "-o",
        geojson.to_str().unwrap(),
        "--quicklook",
        quicklook.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("6 detections"), "{stdout}");
    assert!(stdout.contains("3 matched, 3 dark"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 lines refused"));

    let fc: Value = serde_json::from_str(&std::fs::read_to_string(&geojson).unwrap()).unwrap();
    let features = fc["features"].as_array().unwrap();
    assert_eq!(features.len(), 6);
    let mut dark_ships = Vec::new();
    for f in features {
        let c = &f["geometry"]["coordinates"];
        let (lon, lat) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
        let ship = truth
            .ships
            .iter()
            .position(|s| {
                mizugiwa_satellite::matching::distance_m((lon, lat), (s.image_lon, s.image_lat))
                    < 100.0
            })
            .expect("each feature is a ship");
        let p = &f["properties"];
        if p["dark"] == Value::Bool(true) {
            assert!(p["evidence"]["nearest_mmsi"].is_u64());
            dark_ships.push(ship);
        } else {
            assert_eq!(p["matched_mmsi"], Value::from(431_500_000 + ship as u64));
        }
        assert!(p["length_m"].as_f64().unwrap() > 50.0);
    }
    dark_ships.sort();
    assert_eq!(dark_ships, vec![1, 3, 5]);
    assert_eq!(
        fc["properties"]["acquisition"]["time_ms"],
        Value::from(spec.acquisition.time_ms)
    );
    let png = std::fs::read(&quicklook).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn broken_input_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.tif");
    std::fs::write(&junk, b"II*\0not really a tiff at all").unwrap();
    let out_path = dir.path().join("out.geojson");
    let out = detect(&[junk.to_str().unwrap(), "-o", out_path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open") && stderr.contains("junk.tif"),
        "{stderr}"
    );
    assert!(
        !out_path.exists(),
        "nothing written for a scene that could not be read"
    );

    // A bad option value.
    let scene = dir.path().join("scene.tif");
    write_scene(
        &SceneSpec {
            width: 256,
            height: 256,
            ..SceneSpec::default()
        },
        &scene,
    )
    .unwrap();
    let out = detect(&[
        scene.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
        "--pfa",
        "2",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--pfa"));

    // A land mask that is not GeoJSON.
    let land = dir.path().join("land.geojson");
    std::fs::write(&land, "{\"type\": \"Nonsense\"}").unwrap();
    let out = detect(&[
        scene.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
        "--land",
        land.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(!Path::new(&out_path).exists());
}
