//! The behaviour rules on synthetic tracks: each fires when it should, once, and not in the
//! near miss; the grid finds every neighbour; random streams never panic and stay bounded.

use geo::Destination;
use proptest::prelude::*;

use super::*;
use crate::ais::messages::{
    AidToNavigation, AisMessage, BaseStationReport, ClassBPosition, PositionReport, UtcDateTime,
};
use crate::ais::{TimeSource, TrackConfig};

const T0: i64 = 1_700_000_000_000;
const MIN: i64 = MS_PER_MINUTE;
/// Off Nagasaki.
const HERE: LatLon = LatLon {
    lat: 32.70,
    lon: 129.70,
};

fn offset(p: LatLon, bearing_deg: f64, metres: f64) -> LatLon {
    let q = Haversine.destination(point(p), bearing_deg, metres);
    LatLon {
        lat: q.y(),
        lon: q.x(),
    }
}

fn report(message: AisMessage, t: i64, source: Option<&str>) -> AisReport {
    AisReport {
        message,
        received_ms: t,
        time_source: TimeSource::TagBlock,
        source: source.map(str::to_string),
        channel: Some('A'),
        own_ship: false,
        sentences: Vec::new(),
    }
}

fn class_a(mmsi: u32, t: i64, p: LatLon, sog: f64, status: Option<NavStatus>) -> AisReport {
    let m = AisMessage::Position(PositionReport {
        msg_type: 1,
        repeat: 0,
        mmsi,
        nav_status: status,
        rot: None,
        sog_knots: Some(sog),
        position_accuracy: false,
        position: Some(p),
        cog_deg: None,
        heading_deg: None,
        timestamp: None,
        special_manoeuvre: None,
        raim: false,
        radio: 0,
    });
    report(m, t, None)
}

fn class_b(mmsi: u32, t: i64, p: LatLon, sog: Option<f64>) -> AisReport {
    let m = AisMessage::ClassBPosition(ClassBPosition {
        repeat: 0,
        mmsi,
        sog_knots: sog,
        position_accuracy: false,
        position: Some(p),
        cog_deg: None,
        heading_deg: None,
        timestamp: None,
        carrier_sense: true,
        display: false,
        dsc: false,
        band: false,
        msg22: false,
        assigned: false,
        raim: false,
        radio: 0,
    });
    report(m, t, None)
}

fn base_station(mmsi: u32, t: i64, p: LatLon) -> AisReport {
    let utc = UtcDateTime {
        year: None,
        month: None,
        day: None,
        hour: None,
        minute: None,
        second: None,
    };
    let m = AisMessage::BaseStation(BaseStationReport {
        msg_type: 4,
        repeat: 0,
        mmsi,
        utc,
        position_accuracy: true,
        position: Some(p),
        epfd: None,
        raim: false,
        radio: 0,
    });
    report(m, t, None)
}

fn aid(mmsi: u32, t: i64, p: LatLon) -> AisReport {
    let m = AisMessage::AidToNavigation(AidToNavigation {
        repeat: 0,
        mmsi,
        aid_type: Some(1),
        name: None,
        position_accuracy: true,
        position: Some(p),
        dimensions: None,
        epfd: None,
        timestamp: None,
        off_position: false,
        raim: false,
        virtual_aid: false,
        assigned: false,
    });
    report(m, t, None)
}

/// Tracks and a monitor, fed as the node feeds them.
struct Watch {
    tracks: Tracks,
    monitor: BehaviourMonitor,
    alerts: Vec<BehaviourAlert>,
}

impl Watch {
    fn new() -> Watch {
        Watch::with(BehaviourConfig::default())
    }

    fn with(config: BehaviourConfig) -> Watch {
        Watch {
            tracks: Tracks::default(),
            monitor: BehaviourMonitor::new(config).expect("valid config"),
            alerts: Vec::new(),
        }
    }

    /// Feeds a report with the clock at its receive time; returns its alerts (also kept).
    fn feed(&mut self, r: AisReport) -> Vec<BehaviourAlert> {
        let t = r.received_ms;
        self.feed_at(r, t)
    }

    fn feed_at(&mut self, r: AisReport, now: i64) -> Vec<BehaviourAlert> {
        let update = self.tracks.update(&r);
        let out = self.monitor.observe(&r, &update, &self.tracks, now);
        for a in &out {
            // Every alert must be storable as JSON and read back unchanged.
            let json = serde_json::to_string(a).expect("serialises");
            let back: BehaviourAlert = serde_json::from_str(&json).expect("reads back");
            assert_eq!(
                (&back.id, back.kind(), back.time_ms),
                (&a.id, a.kind(), a.time_ms)
            );
            assert!(json.contains(&format!("\"kind\":\"{}\"", a.kind().as_str())));
        }
        self.alerts.extend(out.iter().cloned());
        out
    }

    fn of(&self, kind: AlertKind) -> Vec<&BehaviourAlert> {
        self.alerts.iter().filter(|a| a.kind() == kind).collect()
    }
}

// --- configuration ------------------------------------------------------------------------

#[test]
fn config_has_documented_defaults_and_refuses_unknown_or_bad_fields() {
    let c: BehaviourConfig = serde_json::from_str(r#"{"gap_minutes": 45}"#).unwrap();
    assert_eq!(c.gap_minutes, 45);
    assert_eq!(c.max_implied_speed_knots, 50.0);
    assert_eq!(c.encounter_distance_m, 500.0);
    assert_eq!(c.encounter_min_minutes, 120);
    assert_eq!(c.encounter_max_speed_knots, 2.0);
    assert!(c.validate().is_ok());
    assert!(serde_json::from_str::<BehaviourConfig>(r#"{"gap_minute": 45}"#).is_err());

    let bad = |c: BehaviourConfig, field: &str| {
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, field);
        assert!(e
            .to_string()
            .starts_with(&format!("ais.behaviour.{field}: ")));
        assert!(BehaviourMonitor::new(c).is_err());
    };
    let d = BehaviourConfig::default;
    bad(
        BehaviourConfig {
            gap_minutes: 0,
            ..d()
        },
        "gap_minutes",
    );
    bad(
        BehaviourConfig {
            max_implied_speed_knots: f64::NAN,
            ..d()
        },
        "max_implied_speed_knots",
    );
    bad(
        BehaviourConfig {
            encounter_distance_m: 1.0,
            ..d()
        },
        "encounter_distance_m",
    );
    bad(
        BehaviourConfig {
            forget_after_hours: 1,
            gap_minutes: 90,
            ..d()
        },
        "forget_after_hours",
    );
    bad(
        BehaviourConfig {
            max_vessels: 0,
            ..d()
        },
        "max_vessels",
    );
}

// --- AIS gaps -----------------------------------------------------------------------------

/// A class A ship at 12 kn reporting every 10 s until `t_end`, then silent.
fn steaming(w: &mut Watch, mmsi: u32, from: i64, to: i64) -> LatLon {
    let mut p = HERE;
    let mut t = from;
    while t <= to {
        w.feed(class_a(
            mmsi,
            t,
            p,
            12.0,
            Some(NavStatus::UnderWayUsingEngine),
        ));
        p = offset(p, 90.0, 12.0 * KNOT * 10.0);
        t += 10_000;
    }
    p
}

#[test]
fn a_moving_ship_silent_past_the_threshold_gaps_once_and_again_when_it_resumes() {
    let mut w = Watch::new();
    let last = steaming(&mut w, 211_000_001, T0, T0 + 5 * MIN);
    let silent_from = T0 + 5 * MIN;
    assert!(
        w.monitor.check_silent(silent_from + 30 * MIN).is_empty(),
        "30 min is not more"
    );
    let open = w.monitor.check_silent(silent_from + 31 * MIN);
    assert_eq!(open.len(), 1, "{open:?}");
    let a = &open[0];
    assert_eq!(
        (a.kind(), a.mmsi, a.start_ms),
        (AlertKind::AisGap, 211_000_001, silent_from)
    );
    assert_eq!(a.id, format!("ais_gap-211000001-{silent_from}"));
    let Evidence::AisGap {
        resumed,
        silent_s,
        last_speed_knots,
        ..
    } = &a.evidence
    else {
        panic!("{a:?}")
    };
    assert!(!resumed && (*silent_s - 31.0 * 60.0).abs() < 1e-9 && *last_speed_knots == 12.0);
    assert!(
        w.monitor.check_silent(silent_from + 40 * MIN).is_empty(),
        "reported once"
    );

    // It reappears 50 km away: the same gap (same id) closes, with where it came back.
    let back = offset(last, 90.0, 50_000.0);
    let resumed = w.feed(class_a(
        211_000_001,
        silent_from + 45 * MIN,
        back,
        12.0,
        None,
    ));
    let gaps: Vec<_> = resumed
        .iter()
        .filter(|a| a.kind() == AlertKind::AisGap)
        .collect();
    assert_eq!(gaps.len(), 1, "{resumed:?}");
    assert_eq!(gaps[0].id, a.id);
    assert_eq!(gaps[0].position, back);
    assert!(matches!(
        gaps[0].evidence,
        Evidence::AisGap { resumed: true, resumed_position: Some(p), .. } if p == back
    ));
    // 50 km in 45 minutes is 36 kn: no spoofing alert on top.
    assert!(
        resumed.iter().all(|a| a.kind() == AlertKind::AisGap),
        "{resumed:?}"
    );
}

#[test]
fn a_gap_is_reported_on_resumption_even_without_a_scan_and_not_below_the_threshold() {
    let mut w = Watch::new();
    let p = steaming(&mut w, 211_000_002, T0, T0 + 2 * MIN);
    let out = w.feed(class_a(211_000_002, T0 + 2 * MIN + 29 * MIN, p, 12.0, None));
    assert!(out.is_empty(), "29 min: {out:?}");
    let out = w.feed(class_a(
        211_000_002,
        T0 + 31 * MIN + 31 * MIN,
        p,
        12.0,
        None,
    ));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].kind(), AlertKind::AisGap);
    assert_eq!(out[0].start_ms, T0 + 31 * MIN);
}

#[test]
fn stationary_ships_base_stations_and_aids_never_gap() {
    let mut w = Watch::new();
    // A moored class A at 0 kn, silent for two hours.
    w.feed(class_a(211_000_003, T0, HERE, 0.0, Some(NavStatus::Moored)));
    // A class B drifting at 0.4 kn (not "moving").
    w.feed(class_b(
        211_000_004,
        T0,
        offset(HERE, 0.0, 5_000.0),
        Some(0.4),
    ));
    w.feed(base_station(2_110_005, T0, offset(HERE, 0.0, 10_000.0)));
    w.feed(aid(992_110_006, T0, offset(HERE, 0.0, 15_000.0)));
    assert!(w.monitor.check_silent(T0 + 120 * MIN).is_empty());
    let later = T0 + 121 * MIN;
    w.feed(class_a(
        211_000_003,
        later,
        HERE,
        0.0,
        Some(NavStatus::Moored),
    ));
    w.feed(base_station(2_110_005, later, offset(HERE, 0.0, 10_000.0)));
    assert!(w.of(AlertKind::AisGap).is_empty(), "{:?}", w.alerts);
}

#[test]
fn a_class_b_without_speed_over_ground_gaps_on_its_implied_speed() {
    let mut w = Watch::new();
    w.feed(class_b(211_000_007, T0, HERE, None));
    // 600 m in 60 s: 19 kn implied.
    w.feed(class_b(
        211_000_007,
        T0 + MIN,
        offset(HERE, 0.0, 600.0),
        None,
    ));
    let open = w.monitor.check_silent(T0 + 40 * MIN);
    assert_eq!(open.len(), 1, "{open:?}");
}

// --- spoofing: speed and two places -------------------------------------------------------

/// Two fixes ten minutes apart at `knots` implied; the alerts.
fn jump(knots: f64) -> Vec<BehaviourAlert> {
    let mut w = Watch::new();
    let metres = knots * KNOT * 600.0;
    w.feed(class_a(211_000_010, T0, HERE, 10.0, None));
    w.feed(class_a(
        211_000_010,
        T0 + 10 * MIN,
        offset(HERE, 45.0, metres),
        10.0,
        None,
    ));
    w.alerts
}

#[test]
fn an_implied_speed_above_the_threshold_is_spoofing_and_just_below_is_not() {
    assert!(jump(49.0).is_empty(), "{:?}", jump(49.0));
    let alerts = jump(51.0);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a.kind(), AlertKind::AisSpoofingSpeed);
    assert_eq!((a.start_ms, a.time_ms), (T0, T0 + 10 * MIN));
    let Evidence::AisSpoofingSpeed {
        implied_speed_knots,
        bearing_deg,
        interval_s,
        reported_speed_knots,
        ..
    } = &a.evidence
    else {
        panic!("{a:?}")
    };
    assert!(
        (implied_speed_knots - 51.0).abs() < 1e-6,
        "{implied_speed_knots}"
    );
    assert!((bearing_deg - 45.0).abs() < 0.01, "{bearing_deg}");
    assert_eq!((*interval_s, *reported_speed_knots), (600.0, Some(10.0)));
}

#[test]
fn short_jumps_are_noise_not_spoofing() {
    // 400 m in 2 s is 389 kn, but shorter than the 500 m floor: GNSS noise and jitter.
    let mut w = Watch::new();
    w.feed(class_a(211_000_011, T0, HERE, 30.0, None));
    w.feed(class_a(
        211_000_011,
        T0 + 2_000,
        offset(HERE, 0.0, 400.0),
        30.0,
        None,
    ));
    assert!(w.alerts.is_empty(), "{:?}", w.alerts);
    // 600 m in 2 s is not.
    w.feed(class_a(
        211_000_011,
        T0 + 4_000,
        offset(HERE, 0.0, 1_000.0),
        30.0,
        None,
    ));
    assert_eq!(w.of(AlertKind::AisSpoofingSpeed).len(), 1, "{:?}", w.alerts);
}

#[test]
fn one_mmsi_in_two_places_is_reported_once_and_never_also_as_speed() {
    let mut w = Watch::new();
    let far = offset(HERE, 180.0, 50_000.0);
    let mmsi = 211_000_012;
    // Two transmitters with one identity, heard by two receivers, alternating for 20 min.
    for i in 0..40 {
        let t = T0 + i * 30_000;
        let (p, rx) = if i % 2 == 0 {
            (HERE, "rx-north")
        } else {
            (far, "rx-south")
        };
        let mut r = class_a(mmsi, t, p, 0.0, None);
        r.source = Some(rx.to_string());
        w.feed(r);
    }
    assert_eq!(w.alerts.len(), 1, "{:?}", w.alerts);
    let a = &w.alerts[0];
    assert_eq!(a.kind(), AlertKind::AisSpoofingTwoPlaces);
    let Evidence::AisSpoofingTwoPlaces {
        distance_km,
        interval_s,
        sources,
        ..
    } = &a.evidence
    else {
        panic!("{a:?}")
    };
    assert!((distance_km - 50.0).abs() < 1e-6 && *interval_s == 30.0);
    assert_eq!(
        sources,
        &[Some("rx-south".to_string()), Some("rx-north".to_string())]
    );
    // After the spacing, the same condition is reported again.
    let t = T0 + 61 * MIN;
    w.feed(class_a(mmsi, t, HERE, 0.0, None));
    w.feed(class_a(mmsi, t + 30_000, far, 0.0, None));
    assert_eq!(
        w.of(AlertKind::AisSpoofingTwoPlaces).len(),
        2,
        "{:?}",
        w.alerts
    );
    assert!(w.of(AlertKind::AisSpoofingSpeed).is_empty());
}

#[test]
fn two_places_needs_both_the_distance_and_the_window() {
    // 4.9 km in 30 s: not two places (under 5 km), but an impossible 317 kn.
    let mut w = Watch::new();
    w.feed(class_a(211_000_013, T0, HERE, 0.0, None));
    w.feed(class_a(
        211_000_013,
        T0 + 30_000,
        offset(HERE, 0.0, 4_900.0),
        0.0,
        None,
    ));
    assert_eq!(w.alerts.len(), 1);
    assert_eq!(w.alerts[0].kind(), AlertKind::AisSpoofingSpeed);
    // 50 km in 61 s: outside the window, so a speed alert, not two places.
    let mut w = Watch::new();
    w.feed(class_a(211_000_014, T0, HERE, 0.0, None));
    w.feed(class_a(
        211_000_014,
        T0 + 61_000,
        offset(HERE, 0.0, 50_000.0),
        0.0,
        None,
    ));
    assert_eq!(w.alerts.len(), 1);
    assert_eq!(w.alerts[0].kind(), AlertKind::AisSpoofingSpeed);
}

#[test]
fn one_spoofed_fix_between_good_ones_is_one_alert_even_out_of_order() {
    let mut w = Watch::new();
    let mmsi = 211_000_015;
    let a = HERE;
    let b = offset(HERE, 90.0, 10.0 * KNOT * 1_200.0);
    w.feed(class_a(mmsi, T0, a, 10.0, None));
    w.feed(class_a(mmsi, T0 + 20 * MIN, b, 10.0, None));
    assert!(w.alerts.is_empty());
    // A satellite delivers, late, a fix in between that is 100 km away.
    let spoofed = offset(HERE, 0.0, 100_000.0);
    w.feed_at(
        class_a(mmsi, T0 + 10 * MIN, spoofed, 10.0, None),
        T0 + 25 * MIN,
    );
    assert_eq!(w.alerts.len(), 1, "{:?}", w.alerts);
    assert_eq!(w.alerts[0].position, spoofed);
}

// --- spoofing: land -------------------------------------------------------------------------

#[test]
fn ships_on_land_are_spoofing_once_per_spacing_but_stations_on_land_are_not() {
    let land = |lon: f64, _lat: f64| lon > 130.0;
    let mut w = Watch::new();
    w.monitor = BehaviourMonitor::new(BehaviourConfig::default())
        .unwrap()
        .with_land_test(land);
    let sea = LatLon {
        lat: 32.7,
        lon: 129.99,
    };
    let ashore = LatLon {
        lat: 32.7,
        lon: 130.01,
    };
    w.feed(class_a(211_000_020, T0, sea, 0.0, None));
    assert!(w.alerts.is_empty());
    for i in 0..20 {
        w.feed(class_a(211_000_021, T0 + i * MIN, ashore, 0.0, None));
    }
    w.feed(base_station(2_110_022, T0, ashore));
    w.feed(aid(992_110_023, T0, ashore));
    assert_eq!(w.alerts.len(), 1, "{:?}", w.alerts);
    assert_eq!(w.alerts[0].kind(), AlertKind::AisSpoofingLand);
    assert_eq!(w.alerts[0].mmsi, 211_000_021);
    w.feed(class_a(211_000_021, T0 + 80 * MIN, ashore, 0.0, None));
    assert_eq!(w.of(AlertKind::AisSpoofingLand).len(), 2);
}

// --- encounters -------------------------------------------------------------------------------

/// Two ships `apart` metres apart at `knots`, reporting every minute for `minutes`.
fn side_by_side(w: &mut Watch, from: i64, minutes: i64, apart: f64, knots: f64) {
    for k in 0..=minutes {
        let t = from + k * MIN;
        w.feed(class_a(211_000_030, t, HERE, knots, None));
        w.feed(class_a(
            211_000_031,
            t + 10_000,
            offset(HERE, 90.0, apart),
            knots,
            None,
        ));
    }
}

#[test]
fn an_encounter_is_reported_once_after_two_hours_and_not_at_one_fifty_nine() {
    let mut w = Watch::new();
    side_by_side(&mut w, T0, 119, 300.0, 0.5);
    assert!(w.alerts.is_empty(), "1h59: {:?}", w.alerts);

    let mut w = Watch::new();
    side_by_side(&mut w, T0, 121, 300.0, 0.5);
    let e = w.of(AlertKind::Encounter);
    assert_eq!(e.len(), 1, "{:?}", w.alerts);
    let a = e[0];
    assert_eq!(
        a.start_ms,
        T0 + 10_000,
        "the first fix that showed them close"
    );
    assert_eq!(
        a.id,
        format!("encounter-211000030-211000031-{}", T0 + 10_000)
    );
    assert_eq!(a.mmsis(), vec![211_000_030, 211_000_031]);
    let Evidence::Encounter {
        distance_m,
        duration_s,
        ..
    } = &a.evidence
    else {
        panic!("{a:?}")
    };
    assert!((distance_m - 300.0).abs() < 1e-6 && *duration_s == 120.0 * 60.0);
    assert!(distance_m_between(a.position, HERE) < 151.0, "the midpoint");

    // Still together an hour later: nothing new.
    side_by_side(&mut w, T0 + 122 * MIN, 60, 300.0, 0.5);
    assert_eq!(w.of(AlertKind::Encounter).len(), 1);
    // They separate (2 km), then meet again for another two hours: a second encounter.
    side_by_side(&mut w, T0 + 183 * MIN, 5, 2_000.0, 0.5);
    side_by_side(&mut w, T0 + 189 * MIN, 121, 300.0, 0.5);
    let e = w.of(AlertKind::Encounter);
    assert_eq!(e.len(), 2, "{:?}", w.alerts);
    assert_eq!(e[1].start_ms, T0 + 189 * MIN + 10_000);
}

fn distance_m_between(a: LatLon, b: LatLon) -> f64 {
    distance_m(a, b)
}

#[test]
fn ships_600_m_apart_or_faster_than_2_kn_or_moored_never_encounter() {
    let mut w = Watch::new();
    side_by_side(&mut w, T0, 240, 600.0, 0.5);
    assert!(
        w.of(AlertKind::Encounter).is_empty(),
        "600 m: {:?}",
        w.alerts
    );
    assert_eq!(
        w.of(AlertKind::Loitering).len(),
        2,
        "each of them loiters, though"
    );
    let mut w = Watch::new();
    side_by_side(&mut w, T0, 240, 300.0, 2.0);
    assert!(
        w.of(AlertKind::Encounter).is_empty(),
        "2 kn is not under 2 kn"
    );
    let mut w = Watch::new();
    for k in 0..=240 {
        let t = T0 + k * MIN;
        let moored = Some(NavStatus::Moored);
        w.feed(class_a(211_000_032, t, HERE, 0.0, moored));
        w.feed(class_a(
            211_000_033,
            t,
            offset(HERE, 0.0, 50.0),
            0.0,
            moored,
        ));
    }
    assert!(w.alerts.is_empty(), "berthed side by side: {:?}", w.alerts);
    assert_eq!(w.monitor.stats().grid_entries, 0);
}

#[test]
fn a_silent_partner_ends_the_encounter() {
    let mut w = Watch::new();
    // B goes silent after an hour; A stays. B comes back at 90 min for the rest.
    for k in 0..=130 {
        let t = T0 + k * MIN;
        w.feed(class_a(211_000_034, t, HERE, 0.5, None));
        if !(60..90).contains(&k) {
            w.feed(class_b(
                211_000_035,
                t + 5_000,
                offset(HERE, 0.0, 200.0),
                Some(0.5),
            ));
        }
    }
    assert!(w.of(AlertKind::Encounter).is_empty(), "{:?}", w.alerts);
    assert_eq!(w.monitor.stats().pairs, 1, "the new pair since 90 min");
}

#[test]
fn encounters_are_found_across_the_antimeridian() {
    let mut w = Watch::new();
    let east = LatLon {
        lat: 10.0,
        lon: 179.999,
    };
    let west = LatLon {
        lat: 10.0,
        lon: -179.9995,
    };
    assert!(distance_m(east, west) < 200.0);
    for k in 0..=121 {
        let t = T0 + k * MIN;
        w.feed(class_a(211_000_036, t, east, 1.0, None));
        w.feed(class_a(211_000_037, t, west, 1.0, None));
    }
    assert_eq!(w.of(AlertKind::Encounter).len(), 1, "{:?}", w.alerts);
}

// --- loitering --------------------------------------------------------------------------------

/// A ship circling 800 m around HERE at `knots`, a fix every 3 minutes, for `minutes`.
fn circling(w: &mut Watch, mmsi: u32, minutes: i64, knots: f64, status: Option<NavStatus>) {
    for k in 0..=minutes / 3 {
        let p = offset(HERE, (k * 40 % 360) as f64, 400.0);
        w.feed(class_a(mmsi, T0 + k * 3 * MIN, p, knots, status));
    }
}

#[test]
fn loitering_is_reported_once_after_three_hours_and_not_before() {
    let mut w = Watch::new();
    circling(&mut w, 211_000_040, 177, 1.0, None);
    assert!(w.alerts.is_empty(), "2h57: {:?}", w.alerts);
    let mut w = Watch::new();
    circling(&mut w, 211_000_040, 300, 1.0, None);
    let l = w.of(AlertKind::Loitering);
    assert_eq!(l.len(), 1, "{:?}", w.alerts);
    assert_eq!((l[0].start_ms, l[0].time_ms), (T0, T0 + 180 * MIN));
    let Evidence::Loitering {
        max_offset_m,
        fixes,
        ..
    } = &l[0].evidence
    else {
        panic!()
    };
    assert!(*max_offset_m <= 800.0 + 1e-6 && *fixes == 61);
}

#[test]
fn moving_away_or_too_fast_is_not_loitering() {
    let mut w = Watch::new();
    circling(&mut w, 211_000_041, 300, 3.5, None);
    assert!(w.alerts.is_empty(), "3.5 kn: {:?}", w.alerts);
    // 2 kn straight ahead: slow, but leaves the 1 km circle every ~16 minutes.
    let mut w = Watch::new();
    for k in 0..=100 {
        let p = offset(HERE, 90.0, 2.0 * KNOT * 180.0 * k as f64);
        w.feed(class_a(211_000_042, T0 + k * 3 * MIN, p, 2.0, None));
    }
    assert!(w.alerts.is_empty(), "{:?}", w.alerts);
}

#[test]
fn a_moored_ship_with_a_gap_is_neither_a_gap_nor_a_loiter_and_a_gap_restarts_loitering() {
    for status in [
        Some(NavStatus::Moored),
        Some(NavStatus::UnderWayUsingEngine),
    ] {
        let mut w = Watch::new();
        let mmsi = 211_000_043;
        // 0 kn for 90 minutes, silent for an hour, 0 kn again until five hours.
        for k in (0..=90).step_by(3).chain((150..=300).step_by(3)) {
            w.feed(class_a(mmsi, T0 + k * MIN, HERE, 0.0, status));
        }
        w.monitor.check_silent(T0 + 140 * MIN);
        assert!(w.of(AlertKind::AisGap).is_empty(), "{status:?}: not moving");
        assert!(
            w.of(AlertKind::Loitering).is_empty(),
            "{status:?}: {:?}",
            w.alerts
        );
        // Watched without a gap for three hours after the gap, the one under way loiters.
        w.feed(class_a(mmsi, T0 + 330 * MIN, HERE, 0.0, status));
        let loiters = w.of(AlertKind::Loitering).len();
        assert_eq!(
            loiters,
            usize::from(status != Some(NavStatus::Moored)),
            "{status:?}"
        );
    }
}

// --- memory -------------------------------------------------------------------------------------

#[test]
fn state_is_bounded_and_forgotten() {
    let config = BehaviourConfig {
        max_vessels: 50,
        max_pairs: 100,
        ..BehaviourConfig::default()
    };
    let mut w = Watch::with(config);
    // 500 slow ships in one anchorage, all within 100 m of each other.
    for i in 0..500u32 {
        let p = offset(HERE, f64::from(i % 360), f64::from(i % 100));
        w.feed(class_a(
            300_000_000 + i,
            T0 + i64::from(i) * 1_000,
            p,
            0.1,
            None,
        ));
        let s = w.monitor.stats();
        assert!(
            s.vessels <= 50 && s.pairs <= 100 && s.grid_entries <= 50,
            "{s:?}"
        );
    }
    let s = w.monitor.stats();
    assert!(s.pairs_refused > 0, "{s:?}");
    // Tracks evicting a vessel makes the monitor forget it too.
    let mut small = Watch::with(BehaviourConfig::default());
    small.tracks = Tracks::new(TrackConfig {
        history_len: 8,
        max_vessels: 2,
    });
    for i in 0..5u32 {
        small.feed(class_a(
            400_000_000 + i,
            T0,
            offset(HERE, 0.0, f64::from(i)),
            0.1,
            None,
        ));
    }
    assert_eq!(small.monitor.stats().vessels, 2);
    // A day later with no news, everything is forgotten.
    w.monitor.check_silent(T0 + 25 * 60 * MIN);
    assert_eq!(
        w.monitor.stats(),
        BehaviourStats {
            pairs_refused: s.pairs_refused,
            ..Default::default()
        }
    );
}

#[test]
fn reports_from_the_future_or_too_old_are_ignored() {
    let mut w = Watch::new();
    w.feed_at(class_a(211_000_050, T0 + 11 * MIN, HERE, 12.0, None), T0);
    w.feed_at(
        class_a(211_000_051, T0 - 25 * 60 * MIN, HERE, 12.0, None),
        T0,
    );
    assert_eq!(w.monitor.stats().vessels, 0);
}

// --- the grid and random streams -------------------------------------------------------------

proptest! {
    #[test]
    fn the_grid_finds_every_neighbour_within_its_cell_size(
        lat in -90.0f64..=90.0,
        lon in -180.0f64..=180.0,
        bearing in 0.0f64..360.0,
        fraction in 0.0f64..1.0,
        cell_m in 10.0f64..50_000.0,
    ) {
        let grid = Grid::new(cell_m);
        let p = LatLon { lat, lon };
        let q = offset(p, bearing, cell_m * fraction);
        prop_assume!(distance_m(p, q) < cell_m);
        prop_assert!(grid.around(p).contains(&grid.cell(q)), "{p:?} {q:?}");
    }

    #[test]
    fn random_fix_streams_never_panic_and_stay_bounded(
        steps in proptest::collection::vec(
            (0u32..6, -7_200_000i64..7_200_000, -90.0f64..=90.0, -180.0f64..=180.0,
             proptest::option::of(0.0f64..102.3), 0u8..16, 0u8..5),
            1..200,
        ),
    ) {
        let config = BehaviourConfig {
            max_vessels: 4,
            max_pairs: 3,
            encounter_distance_m: 50_000.0,
            gap_minutes: 1,
            forget_after_hours: 1,
            ..BehaviourConfig::default()
        };
        let mut w = Watch::with(config);
        w.tracks = Tracks::new(TrackConfig { history_len: 4, max_vessels: 5 });
        w.monitor = BehaviourMonitor::new(w.monitor.config().clone())
            .unwrap()
            .with_land_test(|lon: f64, lat: f64| lon + lat > 100.0);
        let mut now = T0;
        for (mmsi, dt, lat, lon, sog, status, what) in steps {
            now = now.saturating_add(dt);
            let p = LatLon { lat, lon };
            let r = match what {
                0 => class_b(mmsi, now, p, sog),
                1 => base_station(mmsi, now, p),
                2 => aid(mmsi, now, p),
                _ => class_a(mmsi, now, p, sog.unwrap_or(0.0), NavStatus::from_code(status)),
            };
            // The clock runs on its own, sometimes behind the reports.
            let clock = now + dt / 2;
            w.feed_at(r, clock);
            w.monitor.check_silent(clock);
            let s = w.monitor.stats();
            prop_assert!(s.vessels <= 4 && s.pairs <= 3 && s.grid_entries <= s.vessels);
        }
    }
}

// --- delivery: bursts and feed outages --------------------------------------------------------

/// `r` with the UTC second the ship stamped on its fix.
fn stamped(mut r: AisReport, second: u8) -> AisReport {
    if let AisMessage::Position(p) = &mut r.message {
        p.timestamp = Some(crate::ais::TimeStamp::Second(second));
    }
    r
}

#[test]
fn a_backlog_delivered_at_once_is_not_an_impossible_speed() {
    // Fixes 20 s apart at 20 kn (206 m) ... then 3 minutes of backlog flushed within 3 ms.
    let mut w = Watch::new();
    let mmsi = 211_000_060;
    let mut p = HERE;
    for (i, second) in [0u8, 20, 40].into_iter().enumerate() {
        w.feed(stamped(
            class_a(mmsi, T0 + i as i64 * 20_000, p, 20.0, None),
            second,
        ));
        p = offset(p, 0.0, 20.0 * KNOT * 20.0);
    }
    for (i, second) in [10u8, 30, 50].into_iter().enumerate() {
        let t = T0 + 3 * MIN + i as i64;
        p = offset(p, 0.0, 20.0 * KNOT * 60.0);
        w.feed(stamped(class_a(mmsi, t, p, 20.0, None), second));
    }
    assert!(w.alerts.is_empty(), "{:?}", w.alerts);
    // Stamps that agree with the receive times: the jump is judged.
    let t = T0 + 4 * MIN;
    w.feed(stamped(class_a(mmsi, t, p, 20.0, None), 0));
    let far = offset(p, 0.0, 3_000.0);
    w.feed(stamped(class_a(mmsi, t + 10_000, far, 20.0, None), 10));
    assert_eq!(w.of(AlertKind::AisSpoofingSpeed).len(), 1, "{:?}", w.alerts);
}

#[test]
fn silence_while_the_feed_was_down_is_not_a_gap() {
    let mut w = Watch::new();
    let last = steaming(&mut w, 211_000_061, T0, T0 + 2 * MIN);
    let silent_from = T0 + 2 * MIN;
    w.monitor.feed_lost(silent_from + MIN);
    assert!(
        w.monitor.check_silent(silent_from + 60 * MIN).is_empty(),
        "the feed is down"
    );
    w.monitor.feed_restored(silent_from + 50 * MIN);
    // 52 minutes of silence, 49 of them with the feed down: 3 minutes against the ship.
    let out = w.feed(class_a(
        211_000_061,
        silent_from + 52 * MIN,
        last,
        12.0,
        None,
    ));
    assert!(out.is_empty(), "{out:?}");

    // Another ship silent 45 minutes, 10 of them with the feed down: a 35-minute gap.
    let mut w = Watch::new();
    steaming(&mut w, 211_000_062, T0, T0 + 2 * MIN);
    w.monitor.feed_lost(T0 + 10 * MIN);
    w.monitor.feed_restored(T0 + 20 * MIN);
    assert!(
        w.monitor.check_silent(T0 + 2 * MIN + 39 * MIN).is_empty(),
        "29 min against it"
    );
    let open = w.monitor.check_silent(T0 + 2 * MIN + 45 * MIN);
    assert_eq!(open.len(), 1, "{open:?}");
    let Evidence::AisGap {
        silent_s,
        feed_down_s,
        ..
    } = open[0].evidence
    else {
        panic!("{open:?}")
    };
    assert_eq!((silent_s, feed_down_s), (45.0 * 60.0, 10.0 * 60.0));
}
