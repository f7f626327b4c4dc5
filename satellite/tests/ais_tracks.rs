//! Tracks per MMSI: type 24 parts merged, history ordered and bounded, vessels bounded.

use mizugiwa_satellite::ais::nmea::checksum;
use mizugiwa_satellite::ais::{
    AisReport, Decoder, ShipType, StationKind, TrackConfig, Tracks, VesselStatic,
};

fn report(line: &str, now_ms: i64) -> AisReport {
    Decoder::new()
        .feed_line(line, now_ms)
        .expect("valid")
        .expect("complete")
}

/// Type 24 part A and part B of the same class B vessel, from libais's test data.
const PART_A: &str = "!AIVDM,1,1,,B,HE2K5MA`58hTpL0000000000000,2*37";
const PART_B: &str = "!AIVDM,1,1,,B,H52K5MDn13BijklG44oppk103210,0*75";

/// Armors six-bit values into a payload string.
fn armor(bits: &[(u32, u32)]) -> String {
    let mut all: Vec<bool> = Vec::new();
    for &(width, value) in bits {
        all.extend((0..width).rev().map(|i| value >> i & 1 == 1));
    }
    while !all.len().is_multiple_of(6) {
        all.push(false);
    }
    all.chunks(6)
        .map(|c| {
            let v = c.iter().fold(0u8, |acc, &b| acc << 1 | u8::from(b));
            char::from(if v < 40 { v + 48 } else { v + 56 })
        })
        .collect()
}

/// A class A position report for `mmsi` at (lat, lon) in 1/10000 minute, moving at 10 kn.
fn position_line(mmsi: u32, lat: i32, lon: i32) -> String {
    let payload = armor(&[
        (6, 1),
        (2, 0),
        (30, mmsi),
        (4, 0),
        (8, 0),
        (10, 100),
        (1, 1),
        (28, lon as u32 & 0x0fff_ffff),
        (27, lat as u32 & 0x07ff_ffff),
        (12, 900),
        (9, 90),
        (6, 30),
        (2, 0),
        (3, 0),
        (1, 0),
        (19, 0),
    ]);
    let body = format!("AIVDM,1,1,,A,{payload},0");
    format!("!{body}*{:02X}", checksum(body.as_bytes()))
}

#[test]
fn type_24_parts_merge_by_mmsi() {
    let a = report(PART_A, 1_000);
    let b = report(PART_B, 61_000);
    assert_eq!(a.message.mmsi(), b.message.mmsi());

    let mut tracks = Tracks::default();
    let first = tracks.update(&a);
    assert!(first.new_track && first.static_merged && !first.fix_added);
    let second = tracks.update(&b);
    assert!(!second.new_track && second.static_merged);

    let track = tracks.get(a.message.mmsi()).expect("track");
    assert_eq!(track.kind(), Some(StationKind::ClassB));
    assert_eq!(track.reports(), 2);
    let v: &VesselStatic = track.vessel();
    assert!(v.has_part_a && v.has_part_b);
    assert_eq!(v.updated_ms, Some(61_000));
    assert_eq!(v.name.as_deref(), Some("ZARLING"), "from part A");
    assert_eq!(v.callsign.as_deref(), Some("WDD7883"), "from part B");
    assert_eq!(v.ship_type, Some(ShipType(54)));
    assert_eq!(
        v.ship_type.map(ShipType::description),
        Some("anti-pollution equipment")
    );
    assert_eq!(v.vendor_id.as_deref(), Some("ACR"));
    assert_eq!((v.length_m(), v.beam_m()), (Some(11), Some(3)));
    // Part A alone left the part-B fields empty, and part B did not erase the name.
    let mut only_a = VesselStatic::default();
    only_a.merge(&a.message, 1_000);
    assert_eq!((only_a.callsign.clone(), only_a.ship_type), (None, None));
    assert_eq!(only_a.name, v.name);
}

#[test]
fn static_and_voyage_fills_the_vessel_record() {
    let mut decoder = Decoder::new();
    let mut tracks = Tracks::default();
    for line in [
        "!AIVDM,2,1,3,B,55NBjP01mtGIL@CW;SM<D60P5Ld000000000000P0`<3557l0<50@kk@,0*66",
        "!AIVDM,2,2,3,B,K5h@00000000000,2*72",
    ] {
        if let Some(r) = decoder.feed_line(line, 5).unwrap() {
            tracks.update(&r);
        }
    }
    let v = tracks.get(367_309_440).expect("track").vessel();
    assert_eq!(v.name.as_deref(), Some("SEA HAWK"));
    assert_eq!(v.imo, Some(7_729_526));
    assert_eq!(v.ship_type, Some(ShipType(32)));
    assert_eq!((v.length_m(), v.beam_m()), (Some(17), Some(8)));
    assert_eq!(v.destination.as_deref(), Some("TACOMA,WA"));
}

#[test]
fn history_is_time_ordered_deduplicated_and_bounded() {
    let mut tracks = Tracks::new(TrackConfig {
        history_len: 4,
        max_vessels: 10,
    });
    let mmsi = 211_000_001;
    let line = |i: i32| position_line(mmsi, 32_400_000 + i * 100, 8_400_000 + i * 100);
    // Out of order: 0, 2, 1, then a duplicate of 2 (another receiver), then 3, 4, 5.
    for (i, t) in [(0, 0), (2, 20_000), (1, 10_000), (2, 20_000)] {
        tracks.update(&report(&line(i), t));
    }
    let track = tracks.get(mmsi).unwrap();
    let times: Vec<i64> = track.fixes().map(|f| f.time_ms).collect();
    assert_eq!(times, vec![0, 10_000, 20_000]);
    let fix = track.latest().unwrap();
    assert_eq!(fix.sog_knots, Some(10.0));
    assert_eq!(fix.cog_deg, Some(90.0));
    assert_eq!(fix.heading_deg, Some(90));
    assert_eq!(fix.utc_second, Some(30));
    assert!((fix.position.lat - (32_400_200.0 / 600_000.0)).abs() < 1e-9);

    for (i, t) in [(3, 30_000), (4, 40_000), (5, 50_000)] {
        tracks.update(&report(&line(i), t));
    }
    let track = tracks.get(mmsi).unwrap();
    let times: Vec<i64> = track.fixes().map(|f| f.time_ms).collect();
    assert_eq!(
        times,
        vec![20_000, 30_000, 40_000, 50_000],
        "oldest dropped"
    );
    // A fix older than a full history is not kept.
    let update = tracks.update(&report(&line(9), 5_000));
    assert!(!update.fix_added);
    let track = tracks.get(mmsi).unwrap();
    assert_eq!(track.first_seen_ms(), 0);
    assert_eq!(track.fixes().len(), 4);

    let (before, after) = track.bracket(35_000);
    assert_eq!(before.map(|f| f.time_ms), Some(30_000));
    assert_eq!(after.map(|f| f.time_ms), Some(40_000));
    assert_eq!(track.bracket(60_000).1, None);
    let between: Vec<i64> = track
        .fixes_between(30_000, 40_000)
        .map(|f| f.time_ms)
        .collect();
    assert_eq!(between, vec![30_000, 40_000]);
}

#[test]
fn vessels_are_bounded_and_prunable() {
    let mut tracks = Tracks::new(TrackConfig {
        history_len: 2,
        max_vessels: 3,
    });
    for i in 0..5u32 {
        let update = tracks.update(&report(
            &position_line(211_000_000 + i, 0, 0),
            i64::from(i) * 1000,
        ));
        assert!(update.new_track);
        assert_eq!(update.evicted, (i >= 3).then(|| 211_000_000 + i - 3));
    }
    assert_eq!(tracks.len(), 3);
    assert!(tracks.get(211_000_000).is_none());
    assert_eq!(tracks.prune_before(4_000), 2);
    assert_eq!(tracks.len(), 1);
    assert!(tracks.get(211_000_004).is_some());
}

#[test]
fn the_tag_block_corpus_builds_a_track_in_satellite_time() {
    let mut decoder = Decoder::new();
    let mut tracks = Tracks::default();
    let text = include_str!("../testdata/ais/libais-tagblock.nmea");
    for line in text.lines() {
        if let Some(r) = decoder.feed_line(line, 0).unwrap() {
            tracks.update(&r);
        }
    }
    assert_eq!(tracks.len(), 2);
    let fishing = tracks.get(224_651_000).unwrap();
    let times: Vec<i64> = fishing.fixes().map(|f| f.time_ms).collect();
    // Received in the order 00:41:53, 00:35:22, 00:32:41 by two ORBCOMM satellites.
    assert_eq!(
        times,
        vec![1_418_171_561_000, 1_418_171_722_000, 1_418_172_113_000]
    );
    let sources: Vec<_> = fishing
        .fixes()
        .filter_map(|f| f.source.as_deref())
        .collect();
    assert_eq!(sources, vec!["rORBCOMM007", "rORBCOMM007", "rORBCOMM104"]);
    assert_eq!(
        tracks.get(219_005_012).unwrap().vessel().name.as_deref(),
        Some("ROSINANTE")
    );
}
