//! `mizugiwa drone survey` and `check` end to end: a plan file written, read back and
//! checked; a fence the plan would break, and bad files, refused with nothing written.

use std::process::{Command, Output};

use serde_json::{json, Value};

fn drone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mizugiwa"))
        .arg("drone")
        .args(args)
        .output()
        .expect("run mizugiwa")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn polygon(ring: &[(f64, f64)], exclusion: bool) -> Value {
    json!({
        "type": "Feature",
        "properties": { "exclusion": exclusion },
        "geometry": { "type": "Polygon", "coordinates": [ring.iter().map(|(x, y)| json!([x, y])).collect::<Vec<_>>()] }
    })
}

#[test]
fn survey_writes_a_plan_that_checks_and_a_broken_fence_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let area = dir.path().join("area.geojson");
    let ring = [
        (129.2, 34.3),
        (129.225, 34.3),
        (129.226, 34.311),
        (129.214, 34.3155),
        (129.201, 34.309),
        (129.2, 34.3),
    ];
    std::fs::write(&area, polygon(&ring, false).to_string()).unwrap();
    let fence = dir.path().join("fence.geojson");
    let wide = [
        (129.19, 34.29),
        (129.24, 34.29),
        (129.24, 34.33),
        (129.19, 34.33),
        (129.19, 34.29),
    ];
    let ok_fence = json!({ "type": "FeatureCollection", "features": [polygon(&wide, false)] });
    std::fs::write(&fence, ok_fence.to_string()).unwrap();
    let out = dir.path().join("patrol.plan");
    let (a, f, o) = (
        area.to_str().unwrap(),
        fence.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let base = [
        "survey",
        "--area",
        a,
        "--home",
        "34.2995,129.1995",
        "--alt",
        "120",
        "--heading",
        "30",
        "--fence",
        f,
        "-o",
        o,
    ];
    let r = drone(&base);
    assert!(r.status.success(), "{}", text(&r));
    assert!(
        text(&r).contains("lines 144 m apart (footprint 180 m at 120 m)"),
        "{}",
        text(&r)
    );
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(plan["fileType"], "Plan");
    assert!(plan["mission"]["items"].as_array().unwrap().len() > 20);
    let c = drone(&["check", o]);
    assert!(
        c.status.success()
            && text(&c).contains("every leg inside its fence (1 inclusion, 0 exclusion zones)"),
        "{}",
        text(&c)
    );

    // An exclusion zone in the middle of the area: refused, and no file.
    std::fs::remove_file(&out).unwrap();
    let hole = [
        (129.21, 34.305),
        (129.212, 34.305),
        (129.212, 34.307),
        (129.21, 34.305),
    ];
    let bad_fence = json!({ "type": "FeatureCollection", "features": [polygon(&wide, false), polygon(&hole, true)] });
    std::fs::write(&fence, bad_fence.to_string()).unwrap();
    let r = drone(&base);
    assert!(
        !r.status.success() && text(&r).contains("crosses exclusion zone 0"),
        "{}",
        text(&r)
    );
    assert!(!out.exists());

    // Bad files: a clear error, never a panic.
    std::fs::write(
        &out,
        "{\"fileType\": \"Plan\", \"mission\": {\"items\": 3}}",
    )
    .unwrap();
    let c = drone(&["check", o]);
    assert!(
        !c.status.success() && text(&c).contains("not a QGroundControl plan"),
        "{}",
        text(&c)
    );
    std::fs::write(
        &area,
        "{\"type\": \"Polygon\", \"coordinates\": [[[500, 1]]]}",
    )
    .unwrap();
    let r = drone(&base);
    assert!(
        !r.status.success() && text(&r).contains("not a [lon, lat] position"),
        "{}",
        text(&r)
    );
    assert!(!text(&r).contains("panicked"));
}

/// The corridor GeoJSON written by `--corridor-out`, as polygons with their holes.
fn corridor_polygons(v: &Value) -> geo::MultiPolygon<f64> {
    let ring = |r: &Value| -> geo::LineString<f64> {
        r.as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
            .collect()
    };
    geo::MultiPolygon(
        v["geometry"]["coordinates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let rings = p.as_array().unwrap();
                geo::Polygon::new(ring(&rings[0]), rings[1..].iter().map(ring).collect())
            })
            .collect(),
    )
}

#[test]
fn plan_writes_a_corridor_scan_of_tsushima_and_refuses_a_broken_fence_and_bad_input() {
    use geo::Intersects;
    use mizugiwa_drone::{corridor, plan};

    let dir = tempfile::tempdir().unwrap();
    let coast = concat!(env!("CARGO_MANIFEST_DIR"), "/drone/data/tsushima.geojson");
    let out = dir.path().join("patrol.plan");
    let corridor_file = dir.path().join("corridor.geojson");
    let (o, c) = (out.to_str().unwrap(), corridor_file.to_str().unwrap());
    // The west coast of Tsushima's southern island, about 4.6 km of shore.
    let base = [
        "plan",
        "--coast",
        coast,
        "--from",
        "34.15,129.17",
        "--to",
        "34.19,129.175",
        "--width",
        "500",
        "--alt",
        "120",
    ];
    let r = drone(&[&base[..], &["-o", o, "--corridor-out", c]].concat());
    assert!(r.status.success(), "{}", text(&r));
    let said = text(&r);
    assert!(
        said.contains("4 passes 84-516 m off it, 144 m apart (footprint 180 m at 120 m)"),
        "{said}"
    );
    assert!(
        said.contains("corridor 50-550 m off the shore; fence checked"),
        "{said}"
    );
    let seen: f64 = said
        .split("the camera sees ")
        .nth(1)
        .and_then(|t| t.split('%').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(seen >= 99.0, "{said}");

    // The file read back: every leg at sea, the corridor seen, and `drone check` agrees.
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let p = plan::from_qgc_plan(&file).unwrap();
    assert!(p.waypoints.len() > 50);
    let land = corridor::Coast::from_geojson(
        &serde_json::from_str(&std::fs::read_to_string(coast).unwrap()).unwrap(),
    )
    .unwrap()
    .land;
    for w in p.waypoints.windows(2) {
        let leg = geo::Line::new((w[0].lon, w[0].lat), (w[1].lon, w[1].lat));
        assert!(
            !land.iter().any(|l| l.intersects(&leg)),
            "{leg:?} crosses land"
        );
    }
    let corridor_shape = corridor_polygons(
        &serde_json::from_str(&std::fs::read_to_string(&corridor_file).unwrap()).unwrap(),
    );
    assert!(corridor::coverage(&corridor_shape, &p.waypoints, 180.0) >= 0.99);
    let check = drone(&["check", o]);
    assert!(check.status.success(), "{}", text(&check));

    // An exclusion zone across the corridor: refused with the leg that enters it, nothing written.
    std::fs::remove_file(&out).unwrap();
    let fence = dir.path().join("fence.geojson");
    let zone = [
        (129.164, 34.165),
        (129.174, 34.165),
        (129.174, 34.170),
        (129.164, 34.170),
        (129.164, 34.165),
    ];
    std::fs::write(
        &fence,
        json!({"type": "FeatureCollection", "features": [polygon(&zone, true)]}).to_string(),
    )
    .unwrap();
    let r = drone(&[&base[..], &["-o", o, "--fence", fence.to_str().unwrap()]].concat());
    assert!(
        !r.status.success() && text(&r).contains("crosses exclusion zone 0"),
        "{}",
        text(&r)
    );
    assert!(
        text(&r).contains("nothing written") && !out.exists(),
        "{}",
        text(&r)
    );

    // Bad input: a clear error, no panic, no file.
    let empty = dir.path().join("empty.geojson");
    std::fs::write(&empty, r#"{"type": "FeatureCollection", "features": []}"#).unwrap();
    let garbage = dir.path().join("garbage.geojson");
    std::fs::write(
        &garbage,
        r#"{"type": "LineString", "coordinates": [[129.2, 34.3], [129.2]]}"#,
    )
    .unwrap();
    let cases: [(Vec<&str>, &str); 7] = [
        (
            vec!["plan", "--coast", coast, "--width=-5", "-o", o],
            "corridor width -5 m",
        ),
        (
            vec!["plan", "--coast", coast, "--overlap", "1", "-o", o],
            "side overlap 1",
        ),
        (
            vec!["plan", "--coast", empty.to_str().unwrap(), "-o", o],
            "coastline is empty",
        ),
        (
            vec!["plan", "--coast", garbage.to_str().unwrap(), "-o", o],
            "not a [lon, lat] position",
        ),
        (
            vec!["plan", "--coast", coast, "--from", "34.15,129.17", "-o", o],
            "--to",
        ),
        (
            vec![
                "plan",
                "--coast",
                coast,
                "--from",
                "35.0,129.17",
                "--to",
                "34.19,129.175",
                "-o",
                o,
            ],
            "--from is",
        ),
        (
            vec![
                "plan",
                "--coast",
                coast,
                "--from",
                "34.2,129.17",
                "--to",
                "34.5,129.28",
                "-o",
                o,
            ],
            "different shores",
        ),
    ];
    for (args, says) in cases {
        let r = drone(&args);
        let t = text(&r);
        assert!(!r.status.success() && t.contains(says), "{args:?}: {t}");
        assert!(!t.contains("panicked") && !out.exists(), "{args:?}: {t}");
    }
}

/// `mizugiwa drone render` then `drone frames`: the rendered boat and person found at their
/// true positions (within 2 m + 1% of the range), a crop per detection; bad inputs refused with
/// the output left as it was.
#[test]
fn frames_finds_the_rendered_boat_and_person_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = drone(&["render", "-o", d.to_str().unwrap(), "--seconds", "1"]);
    assert!(r.status.success(), "{}", text(&r));
    let video = d.join("sortie-20250601T030000Z.avi");
    let (v, tlog) = (video.to_str().unwrap(), d.join("sortie.tlog"));
    let (out, crops) = (d.join("detections.geojson"), d.join("crops"));
    let (t, o, c) = (
        tlog.to_str().unwrap(),
        out.to_str().unwrap(),
        crops.to_str().unwrap(),
    );
    let r = drone(&["frames", v, "--telemetry", t, "-o", o, "--crops", c]);
    assert!(r.status.success(), "{}", text(&r));
    assert!(
        text(&r).contains("10 frames read, 10 analysed") && text(&r).contains("of 2 objects"),
        "{}",
        text(&r)
    );

    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("truth.geojson")).unwrap()).unwrap();
    let found: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let features = found["features"].as_array().unwrap();
    assert!(features.len() >= 18, "{} detections", features.len());
    for class in ["vessel", "person"] {
        let target = truth["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["properties"]["class"] == class)
            .unwrap();
        let (tlon, tlat) = (
            target["geometry"]["coordinates"][0].as_f64().unwrap(),
            target["geometry"]["coordinates"][1].as_f64().unwrap(),
        );
        let mine: Vec<&Value> = features
            .iter()
            .filter(|f| f["properties"]["class"] == class)
            .collect();
        assert!(mine.len() >= 9, "{class}: {} detections", mine.len());
        for f in mine {
            let (lon, lat) = (
                f["geometry"]["coordinates"][0].as_f64().unwrap(),
                f["geometry"]["coordinates"][1].as_f64().unwrap(),
            );
            let err = ((lat - tlat) * 110_900.0)
                .hypot((lon - tlon) * 110_900.0 * tlat.to_radians().cos());
            let range = f["properties"]["range_m"].as_f64().unwrap();
            assert!(
                err < 2.0 + 0.01 * range,
                "{class} {} is {err:.2} m off",
                f["id"]
            );
            let crop = f["properties"]["crop"].as_str().unwrap();
            assert!(
                std::fs::read(crop).unwrap().starts_with(&[0xFF, 0xD8]),
                "{crop} is a JPEG"
            );
        }
    }

    // Bad input: a clear error, no panic, the earlier output untouched.
    let before = std::fs::read(&out).unwrap();
    let junk = d.join("junk.tlog");
    std::fs::write(&junk, "not telemetry").unwrap();
    let cases: [(Vec<&str>, &str); 5] = [
        (
            vec![
                "frames",
                "/nonexistent/sortie-20250601T030000Z.avi",
                "--telemetry",
                t,
                "-o",
                o,
            ],
            "no such file",
        ),
        (
            vec!["frames", v, "--telemetry", junk.to_str().unwrap(), "-o", o],
            "not a tlog",
        ),
        (
            vec!["frames", v, "--telemetry", "/nonexistent.tlog", "-o", o],
            "reading the telemetry log",
        ),
        (
            vec![
                "frames",
                v,
                "--telemetry",
                t,
                "-o",
                o,
                "--video-start",
                "2025-06-01T05:00:00Z",
            ],
            "outside the telemetry log",
        ),
        (
            vec![
                "frames",
                v,
                "--telemetry",
                t,
                "-o",
                o,
                "--video-start",
                "yesterday",
            ],
            "not an RFC 3339 time",
        ),
    ];
    for (args, expect) in cases {
        let r = drone(&args);
        assert!(
            !r.status.success() && text(&r).contains(expect),
            "{args:?}: {}",
            text(&r)
        );
        assert!(!text(&r).contains("panicked"), "{}", text(&r));
    }
    assert_eq!(std::fs::read(&out).unwrap(), before);
}
