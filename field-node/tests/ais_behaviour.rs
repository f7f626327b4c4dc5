//! AIS behaviour alerts at a coastal node: tagged NMEA from a receiver (a test TCP server) goes
//! through the real `ais_tcp` source into a real store, and the site's rules turn a spoofed
//! jump, a ship on land, an encounter, a ship that went silent and came back, and one that stays
//! silent into `alerts/ais-<site>-...` records of the right kind, severity and place, while a
//! ship going about its business raises nothing. Receive times come from the tag blocks, so
//! hours of traffic arrive in one burst.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mizugiwa_command::records::{ALERTS, VESSELS};
use mizugiwa_field_node::ais::{run_silence_checks, run_tcp, SiteAis};
use mizugiwa_field_node::pipeline::{RecordPolicy, Sink};
use mizugiwa_satellite::ais::encode::{tagged_position_sentence, PositionReportSpec};
use mizugiwa_satellite::ais::BehaviourConfig;
use mizugiwa_satellite::land::LandMask;
use mizugiwa_sync::{FieldValue, Record, Value};
use tokio::io::AsyncWriteExt;

const SITE: &str = "tsushima";
const NORMAL: u32 = 431_000_010;
const SPOOFER: u32 = 431_000_020;
const MEET_A: u32 = 431_000_030;
const MEET_B: u32 = 431_000_031;
const RETURNS: u32 = 431_000_040;
const ON_LAND: u32 = 431_000_050;
const SILENT: u32 = 431_000_060;

/// One position report: (receive time, s), MMSI, lon, lat, speed (kn), course.
#[derive(Clone, Copy)]
struct Report {
    t: i64,
    mmsi: u32,
    lon: f64,
    lat: f64,
    sog: f64,
    cog: f64,
}

impl Report {
    fn line(&self) -> String {
        let spec = PositionReportSpec {
            mmsi: self.mmsi,
            lon: self.lon,
            lat: self.lat,
            sog_knots: self.sog,
            cog_deg: self.cog,
            utc_second: self.t.rem_euclid(60) as u8,
        };
        tagged_position_sentence(&spec, self.t, "rx-izuhara")
    }
}

/// Metres per degree of longitude at `lat`.
fn m_per_deg_lon(lat: f64) -> f64 {
    111_320.0 * lat.to_radians().cos()
}

/// A ship steaming east at `sog` knots, at (`lon`, `lat`) at time `from` (seconds).
struct Steaming {
    mmsi: u32,
    lon: f64,
    lat: f64,
    sog: f64,
    from: i64,
}

impl Steaming {
    /// Its reports at `times` (seconds).
    fn reports(&self, times: impl IntoIterator<Item = i64>) -> Vec<Report> {
        let mps = self.sog * 1852.0 / 3600.0;
        times
            .into_iter()
            .map(|t| Report {
                t,
                mmsi: self.mmsi,
                lon: self.lon + mps * (t - self.from) as f64 / m_per_deg_lon(self.lat),
                lat: self.lat,
                sog: self.sog,
                cog: 90.0,
            })
            .collect()
    }
}

fn text(r: &Record, field: &str) -> String {
    match r.get(field) {
        Some(Value::Text(s)) => s.clone(),
        other => panic!("{}: {field} is {other:?}", r.id),
    }
}

fn float(r: &Record, field: &str) -> f64 {
    match r.get(field) {
        Some(Value::Float(v)) => *v,
        Some(Value::Int(v)) => *v as f64,
        other => panic!("{}: {field} is {other:?}", r.id),
    }
}

fn detail(r: &Record) -> serde_json::Value {
    match r.get("detail") {
        Some(Value::Json(s)) => serde_json::from_str(s).unwrap(),
        other => panic!("{}: detail is {other:?}", r.id),
    }
}

/// The alerts stored so far, by (kind, MMSI).
fn alerts(store: &std::sync::Mutex<mizugiwa_sync::Store>) -> BTreeMap<(String, u64), Record> {
    store
        .lock()
        .unwrap()
        .list(ALERTS)
        .unwrap()
        .into_iter()
        .map(|r| ((text(&r, "kind"), detail(&r)["mmsi"].as_u64().unwrap()), r))
        .collect()
}

fn close(r: &Record, lon: f64, lat: f64) -> bool {
    (float(r, "lon") - lon).abs() < 1e-4 && (float(r, "lat") - lat).abs() < 1e-4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagged_traffic_through_the_tcp_source_raises_the_right_alerts_and_no_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(dir.path(), SITE);
    let sink = Arc::new(Sink::new(store.clone(), SITE, RecordPolicy::default()));
    let ais = SiteAis::new(SITE, &BehaviourConfig::default()).unwrap();
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = receiver.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let source = tokio::spawn(run_tcp(
        addr,
        Duration::from_secs(1),
        ais.clone(),
        sink.clone(),
        stopped.clone(),
    ));

    // Receive times in the last three hours (the rules ignore reports from the future and from
    // before their memory), in seconds.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let min = 60;
    let mut reports = Vec::new();
    // Going about its business: 12 kn, a report every 30 s until a minute ago.
    reports.extend(
        Steaming {
            mmsi: NORMAL,
            lon: 128.95,
            lat: 34.05,
            sog: 12.0,
            from: now - 20 * min,
        }
        .reports((now - 20 * min..=now - min).step_by(30)),
    );
    // A spoofer: one of its positions 3 km north of where it is, 30 s after the one before
    // (194 kn; under the 5 km of "two places").
    let mut spoofer = Steaming {
        mmsi: SPOOFER,
        lon: 128.95,
        lat: 33.95,
        sog: 10.0,
        from: now - 15 * min,
    }
    .reports((now - 15 * min..=now - 5 * min).step_by(30));
    let jumped = &mut spoofer[10];
    jumped.lat += 3_000.0 / 111_200.0;
    let spoofed = *jumped;
    reports.extend(spoofer);
    // Two ships drifting 200 m apart for 2 h 15 min: an encounter (2 h), not yet loitering (3 h).
    for (mmsi, lat) in [(MEET_A, 34.0), (MEET_B, 34.0 + 200.0 / 111_200.0)] {
        reports.extend(
            Steaming {
                mmsi,
                lon: 129.1,
                lat,
                sog: 0.3,
                from: now - 140 * min,
            }
            .reports((now - 140 * min..=now - 5 * min).step_by(3 * 60)),
        );
    }
    // Under way at 10 kn, silent for 70 minutes, heard again where its speed took it.
    reports.extend(
        Steaming {
            mmsi: RETURNS,
            lon: 128.85,
            lat: 34.15,
            sog: 10.0,
            from: now - 100 * min,
        }
        .reports(
            (now - 100 * min..=now - 15 * min)
                .step_by(30)
                .filter(|t| *t <= now - 90 * min || *t >= now - 20 * min),
        ),
    );
    let back = *reports
        .iter()
        .find(|r| r.mmsi == RETURNS && r.t >= now - 20 * min)
        .unwrap();
    let before_gap = *reports
        .iter()
        .rfind(|r| r.mmsi == RETURNS && r.t <= now - 90 * min)
        .unwrap();
    // A ship reporting a position in the middle of Tsushima.
    let on_land = Report {
        t: now - 10 * min,
        mmsi: ON_LAND,
        lon: 129.33,
        lat: 34.4,
        sog: 0.0,
        cog: 0.0,
    };
    reports.push(on_land);
    // Under way at 8 kn, silent for the last 40 minutes.
    reports.extend(
        Steaming {
            mmsi: SILENT,
            lon: 128.9,
            lat: 33.9,
            sog: 8.0,
            from: now - 50 * min,
        }
        .reports((now - 50 * min..=now - 40 * min).step_by(30)),
    );
    let last_silent = *reports.iter().rfind(|r| r.mmsi == SILENT).unwrap();
    reports.sort_by_key(|r| (r.t, r.mmsi));
    let last = *reports.last().unwrap();
    assert_eq!(
        last.mmsi, NORMAL,
        "the normal ship's last report comes last"
    );

    // The scenario itself: every ship at sea but the one on land.
    let land = LandMask::natural_earth();
    for r in &reports {
        if r.mmsi == ON_LAND {
            assert!(
                land.contains(r.lon, r.lat) && land.distance_to_shore_m(r.lon, r.lat) > 2_000.0
            );
        } else {
            assert!(
                !land.contains(r.lon, r.lat),
                "{} at {}, {} is on land",
                r.mmsi,
                r.lon,
                r.lat
            );
        }
    }

    let (mut feed, _) = tokio::time::timeout(Duration::from_secs(10), receiver.accept())
        .await
        .expect("the source connects")
        .unwrap();
    let burst: String = reports.iter().map(|r| r.line() + "\r\n").collect();
    feed.write_all(burst.as_bytes()).await.unwrap();

    // The whole burst is stored once the last report's position is.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let at = store
            .lock()
            .unwrap()
            .get(VESSELS, &NORMAL.to_string())
            .unwrap()
            .and_then(|r| r.get("at_ms").cloned());
        if at == Some(Value::Int(last.t * 1000)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the feed was not stored: vessels/{NORMAL} at {at:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let found = alerts(&store);
    let keys: Vec<_> = found.keys().cloned().collect();
    let key = |kind: &str, mmsi: u32| (kind.to_string(), u64::from(mmsi));
    assert_eq!(
        keys,
        vec![
            key("ais_gap", RETURNS),
            key("ais_spoofing_land", ON_LAND),
            key("ais_spoofing_speed", SPOOFER),
            key("encounter", MEET_A),
        ],
        "{found:#?}"
    );
    for ((kind, _), r) in &found {
        assert!(r.id.starts_with(&format!("ais-{SITE}-{kind}-")), "{}", r.id);
        assert_eq!(
            r.fields.get("status"),
            Some(&FieldValue::Status("new".into())),
            "a status field"
        );
        assert_eq!(text(r, "site"), SITE);
        let severity = if kind == "ais_gap" { "medium" } else { "high" };
        assert_eq!(text(r, "severity"), severity, "{kind}");
        assert!(
            text(r, "title").contains(&detail(r)["mmsi"].to_string()),
            "{}",
            text(r, "title")
        );
    }

    let spoof = &found[&key("ais_spoofing_speed", SPOOFER)];
    assert!(
        close(spoof, spoofed.lon, spoofed.lat),
        "the alert is where the false position was"
    );
    assert_eq!(
        spoof.id,
        format!(
            "ais-{SITE}-ais_spoofing_speed-{SPOOFER}-{}",
            spoofed.t * 1000
        )
    );
    assert!(detail(spoof)["implied_speed_knots"].as_f64().unwrap() > 150.0);

    assert!(close(
        &found[&key("ais_spoofing_land", ON_LAND)],
        on_land.lon,
        on_land.lat
    ));

    let meet = &found[&key("encounter", MEET_A)];
    let d = detail(meet);
    assert_eq!(d["other_mmsi"], MEET_B);
    assert!(d["duration_s"].as_f64().unwrap() >= 120.0 * 60.0, "{d}");
    assert!(d["min_distance_m"].as_f64().unwrap() < 250.0, "{d}");
    // Between the two ships, somewhere along their drift.
    let midpoint = 34.0 + 100.0 / 111_200.0;
    let drifted = reports
        .iter()
        .filter(|r| r.mmsi == MEET_A)
        .map(|r| r.lon)
        .fold(0.0, f64::max);
    assert!((float(meet, "lat") - midpoint).abs() < 1e-4, "{meet:?}");
    assert!((129.1..=drifted).contains(&float(meet, "lon")), "{meet:?}");

    let gap = &found[&key("ais_gap", RETURNS)];
    let d = detail(gap);
    assert_eq!(d["resumed"], true, "{d}");
    assert_eq!(
        gap.id,
        format!("ais-{SITE}-ais_gap-{RETURNS}-{}", before_gap.t * 1000)
    );
    assert!(
        close(gap, back.lon, back.lat),
        "a gap that ended is placed where the ship reappeared"
    );
    let silent_s = d["silent_s"].as_f64().unwrap();
    assert!((silent_s - 70.0 * 60.0).abs() < 60.0, "{d}");

    // The silence check (every minute in a node; here every 100 ms) finds the ship still silent,
    // and only it: the others were heard within `gap_minutes`.
    let checks = tokio::spawn(run_silence_checks(
        ais.clone(),
        Duration::from_millis(100),
        sink.clone(),
        stopped.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    let silent = loop {
        if let Some(r) = alerts(&store).remove(&key("ais_gap", SILENT)) {
            break r;
        }
        assert!(Instant::now() < deadline, "no gap for the silent ship");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(detail(&silent)["resumed"], false);
    assert_eq!(text(&silent, "severity"), "medium");
    assert!(
        close(&silent, last_silent.lon, last_silent.lat),
        "a silent ship is placed where it was last seen"
    );
    // A few more checks: still one alert per condition, and nothing about the normal ship.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let found = alerts(&store);
    assert_eq!(found.len(), 5, "{:#?}", found.keys());
    assert!(found.keys().all(|(_, mmsi)| *mmsi != u64::from(NORMAL)));

    let _ = stop.send(true);
    let _ = source.await;
    let _ = checks.await;
}
