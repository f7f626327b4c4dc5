//! The SAR scene inbox at a coastal node, end to end: a synthetic scene off Tsushima's west
//! coast (land, moving and still ships whose imaged positions are known) is dropped into the
//! folder while the site's AIS TCP source (fed by a test receiver) knows some of the ships.
//! Every ship becomes one detection where the radar imaged it; exactly the ships with AIS carry
//! their MMSI; exactly the others raise `dark_vessel` alerts with the evidence; the quicklook is
//! saved and the folder moves to `done/`. A corrupt GeoTIFF and a folder without one are
//! rejected with the reason and write nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use mizugiwa_command::records::{ALERTS, DETECTIONS};
use mizugiwa_field_node::ais::{run_tcp, SiteAis};
use mizugiwa_field_node::pipeline::{RecordPolicy, Sink, SourceConfig};
use mizugiwa_field_node::sar::SarSettings;
use mizugiwa_field_node::scanner::Context;
use mizugiwa_satellite::ais::encode::{tagged_position_sentence, PositionReportSpec};
use mizugiwa_satellite::ais::BehaviourConfig;
use mizugiwa_satellite::land::LandMask;
use mizugiwa_satellite::sar::acquisition::velocity_en;
use mizugiwa_satellite::sar::synth::{random_ships, write_scene, SceneSpec, ShipMix, TruthShip};
use mizugiwa_sync::{Record, Value};
use tokio::io::AsyncWriteExt;

const SITE: &str = "tsushima";
const SCENE: &str = "S1A-IW-GRDH-20261127T0151";
/// AIS reports this many seconds before and after the acquisition.
const REPORTS_S: [i64; 4] = [-120, -60, 60, 120];

/// Metres per degree of latitude and longitude at `lat` (as the correlation computes them).
fn metres_per_degree(lat: f64) -> (f64, f64) {
    let m_lat = 111_132.954 - 559.822 * (2.0 * lat.to_radians()).cos();
    (m_lat, 111_412.84 * lat.to_radians().cos())
}

fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (m_lat, m_lon) = metres_per_degree((a.1 + b.1) / 2.0);
    ((a.0 - b.0) * m_lon).hypot((a.1 - b.1) * m_lat)
}

fn float(r: &Record, field: &str) -> f64 {
    match r.get(field) {
        Some(Value::Float(v)) => *v,
        Some(Value::Int(v)) => *v as f64,
        other => panic!("{}: {field} is {other:?}", r.id),
    }
}

fn text(r: &Record, field: &str) -> Option<String> {
    match r.get(field) {
        Some(Value::Text(s)) => Some(s.clone()),
        None => None,
        other => panic!("{}: {field} is {other:?}", r.id),
    }
}

fn detail(r: &Record) -> serde_json::Value {
    match r.get("detail") {
        Some(Value::Json(s)) => serde_json::from_str(s).unwrap(),
        other => panic!("{}: detail is {other:?}", r.id),
    }
}

/// The truth ship imaged nearest to (lon, lat), and how far.
fn nearest(truth: &[TruthShip], lon: f64, lat: f64) -> (usize, f64) {
    truth
        .iter()
        .enumerate()
        .map(|(i, s)| (i, distance_m((lon, lat), (s.image_lon, s.image_lat))))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scene_becomes_detections_matched_with_ais_and_dark_vessel_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("sar");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = common::store(&data, SITE);

    // The scene: 10 km off Tsushima's west coast, an hour ago, with ships placed at random over
    // its sea (away from the shore buffer: a ship the mask hides is not what this test is about).
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let acquired_s = now_s - 3600;
    let mut spec = SceneSpec {
        width: 1024,
        height: 1024,
        center_lon: 129.2,
        center_lat: 34.3,
        seed: 11,
        ..SceneSpec::default()
    };
    spec.acquisition.time_ms = acquired_s * 1000;
    let land = LandMask::natural_earth();
    spec.land = Some(land.clone());
    let mix = ShipMix {
        near_shore_share: 0.0,
        moving_share: 0.6,
        max_sog_knots: 15.0,
        min_length_m: 90.0,
        max_length_m: 250.0,
        min_separation_m: 1_500.0,
        ..ShipMix::default()
    };
    spec.ships = random_ships(&spec, Some(land), 10, &mix, 5)
        .unwrap()
        .into_iter()
        .filter(|s| land.distance_to_shore_m(s.lon, s.lat) > s.length_m / 2.0 + 1_500.0)
        .take(6)
        .collect();
    let ships = spec.ships.clone();
    assert!(ships.len() >= 5, "the scene holds {} ships", ships.len());
    let scene_dir = inbox.join(SCENE);
    std::fs::create_dir_all(&scene_dir).unwrap();
    let truth = write_scene(&spec, &scene_dir.join("scene.tif"))
        .unwrap()
        .ships;
    let scene_has_land = (0..=10).any(|i| {
        (0..=10).any(|j| land.contains(129.15 + 0.01 * f64::from(i), 34.255 + 0.009 * f64::from(j)))
    });
    assert!(scene_has_land, "the scene shows some of Tsushima");

    // AIS for the first half of them: moving ones included, one still one at least, so that
    // both projections (a moving ship is imaged off its track) are exercised.
    let with_ais: Vec<usize> = (0..ships.len()).filter(|i| i % 2 == 0).collect();
    let dark: Vec<usize> = (0..ships.len()).filter(|i| i % 2 == 1).collect();
    assert!(
        with_ais.iter().any(|&i| ships[i].sog_knots > 3.0),
        "an AIS ship under way: {ships:?}"
    );
    assert!(
        dark.iter().any(|&i| ships[i].sog_knots > 3.0),
        "a dark ship under way: {ships:?}"
    );
    let mmsi = |i: usize| 431_100_000 + i as u32;
    let mut lines = Vec::new();
    for &dt in &REPORTS_S {
        for &i in &with_ais {
            let s = &ships[i];
            // Where its speed and course put it `dt` seconds from where it was at acquisition.
            let (e, n) = velocity_en(s.sog_knots, s.cog_deg);
            let (m_lat, m_lon) = metres_per_degree(s.lat);
            let spec = PositionReportSpec {
                mmsi: mmsi(i),
                lon: s.lon + e * dt as f64 / m_lon,
                lat: s.lat + n * dt as f64 / m_lat,
                sog_knots: s.sog_knots,
                cog_deg: s.cog_deg,
                utc_second: (acquired_s + dt).rem_euclid(60) as u8,
            };
            lines.push(tagged_position_sentence(&spec, acquired_s + dt, "rx-izuhara") + "\r\n");
        }
    }

    // The site: an AIS TCP source and the SAR inbox sharing one picture.
    let ais = SiteAis::new(SITE, &BehaviourConfig::default()).unwrap();
    let sink = std::sync::Arc::new(Sink::new(store.clone(), SITE, RecordPolicy::default()));
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = receiver.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let feed_task = tokio::spawn(run_tcp(
        addr,
        Duration::from_secs(1),
        ais.clone(),
        sink,
        stopped.clone(),
    ));
    let (mut feed, _) = tokio::time::timeout(Duration::from_secs(10), receiver.accept())
        .await
        .expect("the source connects")
        .unwrap();
    feed.write_all(lines.concat().as_bytes()).await.unwrap();
    let picture = ais.picture().clone();
    let last_ms = (acquired_s + REPORTS_S[3]) * 1000;
    let heard = with_ais.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("the AIS picture", Duration::from_secs(10), || {
            let tracks = picture.lock().unwrap();
            heard.iter().all(|&i| {
                tracks
                    .get(mmsi(i))
                    .and_then(|t| t.latest())
                    .is_some_and(|f| f.time_ms == last_ms)
            })
        })
    })
    .await
    .unwrap();

    // Beside the scene: a corrupt GeoTIFF and a folder without one.
    let corrupt = inbox.join("corrupt-tif");
    std::fs::create_dir_all(&corrupt).unwrap();
    let mut noise = vec![0u8; 64 * 1024];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(corrupt.join("scene.tif"), &noise).unwrap();
    let empty = inbox.join("no-tif");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("manifest.safe"), "not a scene").unwrap();
    for folder in [&corrupt, &empty, &scene_dir] {
        std::fs::write(folder.join("READY"), "").unwrap();
    }

    let source: SourceConfig = toml::from_str(&format!(
        "kind = \"sar_inbox\"\ndir = {inbox:?}\npoll_ms = 100\n"
    ))
    .unwrap();
    let SourceConfig::SarInbox {
        dir: sar_dir,
        poll_ms,
        detect,
        correlation,
        land: mask,
    } = source
    else {
        panic!("not a SAR inbox")
    };
    let ctx = Context::for_tests(store.clone(), SITE, &data);
    let started = Instant::now();
    let sar_task = mizugiwa_field_node::sar::start(
        sar_dir,
        poll_ms,
        SarSettings {
            detect,
            correlation,
            land: mask,
        },
        ais.picture().clone(),
        ctx,
        stopped,
    )
    .unwrap();
    let (inbox2, done_dir) = (inbox.clone(), inbox.join("done").join(SCENE));
    tokio::task::spawn_blocking(move || {
        wait_for("the scenes to be handled", Duration::from_secs(300), || {
            done_dir.is_dir()
                && inbox2.join("rejected/corrupt-tif").is_dir()
                && inbox2.join("rejected/no-tif").is_dir()
        })
    })
    .await
    .unwrap();
    eprintln!("scenes handled in {:.1} s", started.elapsed().as_secs_f64());
    assert!(!scene_dir.exists(), "the scene left the inbox");

    // Rejected, with the reason.
    let why = std::fs::read_to_string(inbox.join("rejected/no-tif/error.txt")).unwrap();
    assert!(why.contains("no scene"), "{why}");
    let why = std::fs::read_to_string(inbox.join("rejected/corrupt-tif/error.txt")).unwrap();
    assert!(!why.trim().is_empty());

    let (detections, alerts) = {
        let s = store.lock().unwrap();
        (s.list(DETECTIONS).unwrap(), s.list(ALERTS).unwrap())
    };

    // One detection per ship, where the radar imaged it.
    assert_eq!(detections.len(), ships.len(), "{detections:#?}");
    let mut seen = BTreeMap::new();
    for d in &detections {
        assert!(
            d.id.starts_with(&format!("{SITE}-sar-{SCENE}-")),
            "{}",
            d.id
        );
        assert_eq!(text(d, "source").as_deref(), Some("sar"));
        assert_eq!(text(d, "scene").as_deref(), Some(SCENE));
        assert_eq!(float(d, "at_ms") as i64, acquired_s * 1000);
        let (i, off) = nearest(&truth, float(d, "lon"), float(d, "lat"));
        assert!(off < 200.0, "{} is {off:.0} m from ship {i}", d.id);
        assert!(seen.insert(i, d).is_none(), "ship {i} detected twice");
        // Matched with AIS exactly when it had AIS.
        let matched = text(d, "matched_mmsi");
        if with_ais.contains(&i) {
            assert_eq!(
                matched,
                Some(mmsi(i).to_string()),
                "ship {i} ({} kn)",
                ships[i].sog_knots
            );
            let ais = &detail(d)["ais"];
            assert_eq!(ais["mmsi"], mmsi(i));
            // The AIS position brought to the acquisition and moved as the radar images a
            // moving ship (hundreds of metres at 14 kn) lands on the detection.
            assert!(
                ais["distance_m"].as_f64().unwrap() < 100.0,
                "ship {i}: {ais}"
            );
            assert_eq!(ais["projection"], "interpolated");
        } else {
            assert_eq!(matched, None, "dark ship {i} matched");
        }
    }

    // Dark-vessel alerts for exactly the ships without AIS, with the evidence.
    assert!(
        alerts
            .iter()
            .all(|a| text(a, "kind").as_deref() == Some("dark_vessel")),
        "{alerts:#?}"
    );
    assert_eq!(alerts.len(), dark.len(), "{alerts:#?}");
    let quicklook = data.join("evidence/sar").join(format!("{SCENE}.png"));
    let mut flagged = BTreeSet::new();
    for a in &alerts {
        assert!(
            a.id.starts_with(&format!("dark-{SITE}-{SCENE}-")),
            "{}",
            a.id
        );
        assert_eq!(text(a, "severity").as_deref(), Some("high"));
        let (i, off) = nearest(&truth, float(a, "lon"), float(a, "lat"));
        assert!(
            off < 200.0 && dark.contains(&i),
            "alert {} for ship {i} ({off:.0} m)",
            a.id
        );
        flagged.insert(i);
        let e = detail(a);
        let detection = &seen[&i].id;
        assert_eq!(e["detection"], format!("{DETECTIONS}/{detection}"));
        assert_eq!(e["scene"], SCENE);
        assert_eq!(e["acquired_ms"], acquired_s * 1000);
        assert!(e["length_m"].as_f64().unwrap() > 0.0, "{e}");
        let nearest_mmsi = e["nearest_mmsi"].as_u64().unwrap() as u32;
        assert!(with_ais.iter().any(|&j| mmsi(j) == nearest_mmsi), "{e}");
        assert!(
            e["nearest_distance_m"].as_f64().unwrap() > 1_000.0,
            "outside the gate: {e}"
        );
        assert_eq!(e["nearest_time_gap_s"], 60.0, "{e}");
        assert_eq!(e["quicklook_path"], quicklook.to_string_lossy().as_ref());
    }
    assert_eq!(flagged.into_iter().collect::<Vec<_>>(), dark);

    // The quicklook, a PNG, where the records say.
    let png = std::fs::read(&quicklook).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the quicklook is a PNG"
    );
    assert!(detections
        .iter()
        .all(|d| detail(d)["quicklook_path"] == quicklook.to_string_lossy().as_ref()));
    // Nothing from the rejected folders.
    assert!(detections
        .iter()
        .chain(&alerts)
        .all(|r| !r.id.contains("corrupt-tif") && !r.id.contains("no-tif")));
    assert!(
        !data.join("evidence/sar/corrupt-tif.png").exists()
            && !data.join("evidence/sar/no-tif.png").exists()
    );
    assert!(Path::new(&inbox.join("done")).read_dir().unwrap().count() == 1);

    let _ = stop.send(true);
    let _ = sar_task.await;
    let _ = feed_task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scene_dropped_again_under_the_same_name_keeps_every_earlier_record() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("sar");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = common::store(&data, SITE);
    // Open sea, no land mask: a few still ships, every one a detection and (no AIS) dark.
    let no_land = dir.path().join("no-land.geojson");
    std::fs::write(&no_land, r#"{"type": "FeatureCollection", "features": []}"#).unwrap();
    let mut spec = SceneSpec {
        width: 512,
        height: 512,
        seed: 8,
        ..SceneSpec::default()
    };
    let mix = ShipMix {
        moving_share: 0.0,
        min_length_m: 100.0,
        max_length_m: 200.0,
        ..ShipMix::default()
    };
    spec.ships = random_ships(&spec, None, 3, &mix, 9).unwrap();
    let scene = dir.path().join("scene.tif");
    write_scene(&spec, &scene).unwrap();

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let ctx = Context::for_tests(store.clone(), SITE, &data);
    let settings = SarSettings {
        land: Some(no_land),
        ..SarSettings::default()
    };
    let picture = std::sync::Arc::new(std::sync::Mutex::new(
        mizugiwa_satellite::ais::Tracks::default(),
    ));
    // Settings that would reject every scene (or flood the site with detections) are refused
    // when the source starts.
    for (bad, field) in [
        (
            SarSettings {
                detect: toml::from_str("[cfar]\npfa = nan").unwrap(),
                ..settings.clone()
            },
            "cfar.pfa",
        ),
        (
            SarSettings {
                correlation: toml::from_str("gate_m = nan").unwrap(),
                ..settings.clone()
            },
            "gate_m",
        ),
    ] {
        let err = mizugiwa_field_node::sar::start(
            inbox.clone(),
            50,
            bad,
            picture.clone(),
            ctx.clone(),
            stopped.clone(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains(field), "{err:#}");
    }
    let task = mizugiwa_field_node::sar::start(inbox.clone(), 50, settings, picture, ctx, stopped)
        .unwrap();
    // The same scene, under the same name, three times (a re-delivery, a re-run).
    for round in 1..=3 {
        let folder = inbox.join(SCENE);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(&scene, folder.join("scene.tif")).unwrap();
        std::fs::write(folder.join("READY"), "").unwrap();
        let done = inbox.join("done");
        tokio::task::spawn_blocking(move || {
            wait_for("the scene to be handled", Duration::from_secs(120), || {
                !folder.exists() && done.read_dir().map(|d| d.count()).unwrap_or(0) == round
            })
        })
        .await
        .unwrap();
    }
    let _ = stop.send(true);
    let _ = task.await;

    let (detections, alerts) = {
        let s = store.lock().unwrap();
        (s.list(DETECTIONS).unwrap(), s.list(ALERTS).unwrap())
    };
    let per_scene = spec.ships.len();
    assert_eq!(
        detections.len(),
        3 * per_scene,
        "{:#?}",
        detections.iter().map(|d| &d.id).collect::<Vec<_>>()
    );
    assert_eq!(alerts.len(), 3 * per_scene);
    let scenes: BTreeSet<String> = detections.iter().filter_map(|d| text(d, "scene")).collect();
    let want: BTreeSet<String> = [
        SCENE.to_string(),
        format!("{SCENE}.1"),
        format!("{SCENE}.2"),
    ]
    .into();
    assert_eq!(scenes, want);
    for d in &detections {
        let key = text(d, "scene").unwrap();
        let quicklook = data.join("evidence/sar").join(format!("{key}.png"));
        assert_eq!(
            detail(d)["quicklook_path"],
            quicklook.to_string_lossy().as_ref(),
            "{}",
            d.id
        );
        assert!(
            std::fs::read(&quicklook).unwrap().starts_with(b"\x89PNG"),
            "{}",
            quicklook.display()
        );
    }
}
