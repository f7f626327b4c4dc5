//! `mizugiwa drone survey` and `check` end to end: a plan file written, read back and
//! checked; a fence the plan would break, and bad files, refused with nothing written.

use std::process::{Command, Output};

use serde_json::{json, Value};

fn drone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mizugiwa")).arg("drone").args(args).output().expect("run mizugiwa")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
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
    let ring = [(129.2, 34.3), (129.225, 34.3), (129.226, 34.311), (129.214, 34.3155), (129.201, 34.309), (129.2, 34.3)];
    std::fs::write(&area, polygon(&ring, false).to_string()).unwrap();
    let fence = dir.path().join("fence.geojson");
    let wide = [(129.19, 34.29), (129.24, 34.29), (129.24, 34.33), (129.19, 34.33), (129.19, 34.29)];
    let ok_fence = json!({ "type": "FeatureCollection", "features": [polygon(&wide, false)] });
    std::fs::write(&fence, ok_fence.to_string()).unwrap();
    let out = dir.path().join("patrol.plan");
    let (a, f, o) = (area.to_str().unwrap(), fence.to_str().unwrap(), out.to_str().unwrap());
    let base = ["survey", "--area", a, "--home", "34.2995,129.1995", "--alt", "120", "--heading", "30", "--fence", f, "-o", o];
    let r = drone(&base);
    assert!(r.status.success(), "{}", text(&r));
    assert!(text(&r).contains("lines 144 m apart (footprint 180 m at 120 m)"), "{}", text(&r));
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(plan["fileType"], "Plan");
    assert!(plan["mission"]["items"].as_array().unwrap().len() > 20);
    let c = drone(&["check", o]);
    assert!(c.status.success() && text(&c).contains("every leg inside its fence (1 inclusion, 0 exclusion zones)"), "{}", text(&c));

    // An exclusion zone in the middle of the area: refused, and no file.
    std::fs::remove_file(&out).unwrap();
    let hole = [(129.21, 34.305), (129.212, 34.305), (129.212, 34.307), (129.21, 34.305)];
    let bad_fence = json!({ "type": "FeatureCollection", "features": [polygon(&wide, false), polygon(&hole, true)] });
    std::fs::write(&fence, bad_fence.to_string()).unwrap();
    let r = drone(&base);
    assert!(!r.status.success() && text(&r).contains("crosses exclusion zone 0"), "{}", text(&r));
    assert!(!out.exists());

    // Bad files: a clear error, never a panic.
    std::fs::write(&out, "{\"fileType\": \"Plan\", \"mission\": {\"items\": 3}}").unwrap();
    let c = drone(&["check", o]);
    assert!(!c.status.success() && text(&c).contains("not a QGroundControl plan"), "{}", text(&c));
    std::fs::write(&area, "{\"type\": \"Polygon\", \"coordinates\": [[[500, 1]]]}").unwrap();
    let r = drone(&base);
    assert!(!r.status.success() && text(&r).contains("not a [lon, lat] position"), "{}", text(&r));
    assert!(!text(&r).contains("panicked"));
}
