//! The drone video inbox at a coastal node: a rendered sortie (an MJPG video through OpenCV and
//! the ground station's telemetry log) dropped into the folder becomes detection records at the
//! right place, with crops as evidence; a sortie without its log is rejected with the reason and
//! writes nothing.

mod common;

use std::time::{Duration, Instant};

use mizugiwa_command::records::DETECTIONS;
use mizugiwa_drone::imagery::sortie::patrol_sortie;
use mizugiwa_field_node::pipeline::SourceConfig;
use mizugiwa_sync::Value;

fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let dn = (a.0 - b.0).to_radians() * 6_371_008.8;
    let de = (a.1 - b.1).to_radians() * 6_371_008.8 * a.0.to_radians().cos();
    dn.hypot(de)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_sortie_becomes_detections_with_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = common::store(&data, "tsushima");
    let source: SourceConfig = toml::from_str(&format!(
        "kind = \"drone_video_inbox\"\ndir = {:?}\npoll_ms = 100\nevery = 1\n",
        inbox
    ))
    .unwrap();
    let SourceConfig::DroneVideoInbox {
        dir: inbox_dir,
        poll_ms,
        every,
    } = source
    else {
        panic!("not a drone inbox")
    };
    let ctx = mizugiwa_field_node::scanner::Context::for_tests(store.clone(), "tsushima", &data);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task =
        mizugiwa_field_node::drone_video::start(inbox_dir, poll_ms, every, ctx, stopped).unwrap();

    // A sortie, written aside, then made ready.
    let mut sortie = patrol_sortie(3, 1280, 720, 2.0);
    sortie.fps = 5.0;
    let folder = inbox.join("uav1-20261126-0300");
    std::fs::create_dir_all(&folder).unwrap();
    sortie
        .write(
            &folder.join("video.avi"),
            &folder.join("telemetry.tlog"),
            |_, _| {},
        )
        .unwrap();
    let start = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(sortie.start_us) * 1000)
        .unwrap();
    let stamp = start
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    std::fs::write(
        folder.join("meta.json"),
        format!("{{\"video_start\": \"{stamp}\"}}"),
    )
    .unwrap();
    // Another without its log.
    let broken = inbox.join("uav2-20261126-0310");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::copy(folder.join("video.avi"), broken.join("video.avi")).unwrap();
    std::fs::write(broken.join("READY"), "").unwrap();
    std::fs::write(folder.join("READY"), "").unwrap();

    let deadline = Instant::now() + Duration::from_secs(120);
    while !(inbox.join("done/uav1-20261126-0300").exists()
        && inbox.join("rejected/uav2-20261126-0310").exists())
    {
        assert!(Instant::now() < deadline, "the sorties were not handled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let why = std::fs::read_to_string(inbox.join("rejected/uav2-20261126-0310/error.txt")).unwrap();
    assert!(why.contains("telemetry.tlog"), "{why}");

    let detections = store.lock().unwrap().list(DETECTIONS).unwrap();
    // One record per object: the boat and the person, each at its rendered place.
    assert_eq!(detections.len(), 2, "{detections:#?}");
    for d in &detections {
        assert!(d.id.starts_with("tsushima-uav1-20261126-0300-"), "{}", d.id);
        assert_eq!(d.get("source"), Some(&Value::Text("drone".into())));
        let Some(Value::Text(class)) = d.get("class") else {
            panic!("no class")
        };
        let (Some(Value::Float(lat)), Some(Value::Float(lon))) = (d.get("lat"), d.get("lon"))
        else {
            panic!("no position")
        };
        let truth = sortie
            .scene
            .targets
            .iter()
            .map(|t| distance_m((*lat, *lon), (t.lat_deg, t.lon_deg)))
            .fold(f64::INFINITY, f64::min);
        assert!(
            truth < 5.0,
            "{class} detection {:.1} m from the nearest target",
            truth
        );
        let Some(Value::Text(crop)) = d.get("crop_path") else {
            panic!("no evidence")
        };
        let jpeg = std::fs::read(crop).unwrap();
        assert!(jpeg.starts_with(&[0xFF, 0xD8]), "the evidence is a JPEG");
    }
    let classes: std::collections::BTreeSet<String> = detections
        .iter()
        .filter_map(|d| match d.get("class") {
            Some(Value::Text(c)) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        classes.into_iter().collect::<Vec<_>>(),
        vec!["person".to_string(), "vessel".to_string()]
    );
    let _ = stop.send(true);
    let _ = task.await;
}
