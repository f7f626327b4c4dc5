//! Corridor scans on a real coast (Tsushima, Natural Earth 1:10m) and on made-up ones with the
//! awkward parts a coast has: an islet in the corridor, a narrow inlet, a bare line with a
//! hairpin. What is checked is what a patrol needs: no leg over land, every leg inside the
//! inclusion fence and clear of exclusions, the corridor seen by the camera (>= 99%), and the
//! `.plan` file read back as written.

use geo::{
    Area, Coord, Distance, Euclidean, Intersects, Line, LineString, MapCoords, MultiPolygon, Point,
    Polygon, Relate,
};
use mizugiwa_drone::corridor::{
    corridor_scan, coverage, Coast, CorridorError, CorridorPlan, CorridorRequest, SeaSide,
};
use mizugiwa_drone::plan::{self, Camera, Geofence, LocalFrame, Plan, PlanError, Waypoint};
use serde_json::json;

const TSUSHIMA: &str = include_str!("../data/tsushima.geojson");

fn tsushima() -> Coast {
    Coast::from_geojson(&serde_json::from_str(TSUSHIMA).unwrap()).unwrap()
}

/// Lon/lat of a `(lat, lon)` pair.
fn ll(lat: f64, lon: f64) -> Coord<f64> {
    Coord { x: lon, y: lat }
}

/// The west coast of Tsushima's northern island, about 30 km of shore with a narrow inlet.
fn west_coast() -> CorridorRequest {
    CorridorRequest {
        coast: tsushima(),
        stretch: Some((ll(34.42, 129.26), ll(34.60, 129.30))),
        sea_side: None,
        offset_m: 50.0,
        width_m: 500.0,
        alt_m: 120.0,
        // A 1" sensor (13.2 mm wide) behind an 8.8 mm lens: 180 m of sea across at 120 m.
        camera: Camera {
            sensor_width_mm: 13.2,
            focal_length_mm: 8.8,
        },
        side_overlap: 0.2,
        max_leg_m: 200.0,
    }
}

fn legs(wps: &[Waypoint]) -> impl Iterator<Item = (usize, Line<f64>)> + '_ {
    wps.windows(2)
        .enumerate()
        .map(|(i, w)| (i, Line::new(ll(w[0].lat, w[0].lon), ll(w[1].lat, w[1].lon))))
}

/// Metres from the waypoint to the nearest land.
fn metres_off(frame: &LocalFrame, land: &MultiPolygon<f64>, w: &Waypoint) -> f64 {
    let local = land.map_coords(|c| frame.to_local(c));
    Euclidean.distance(&Point::from(frame.to_local(ll(w.lat, w.lon))), &local)
}

fn land_of(coast: &Coast) -> MultiPolygon<f64> {
    MultiPolygon(coast.land.clone())
}

/// The plan's own checks, made again from the outside: no leg touches land, every waypoint at
/// least `offset` off it, the camera sees at least 99% of the corridor.
fn assert_at_sea_and_covered(req: &CorridorRequest, land: &MultiPolygon<f64>, plan: &CorridorPlan) {
    for (i, leg) in legs(&plan.waypoints) {
        assert!(!land.intersects(&leg), "leg {i} {leg:?} crosses land");
    }
    let frame = LocalFrame::new(plan.waypoints[0].lat, plan.waypoints[0].lon);
    for w in &plan.waypoints {
        let off = metres_off(&frame, land, w);
        assert!(
            off >= req.offset_m - 1.0,
            "{w:?} is {off:.1} m off the land, less than {}",
            req.offset_m
        );
    }
    let c = coverage(&plan.corridor, &plan.waypoints, plan.footprint_m);
    assert_eq!(c, plan.coverage);
    assert!(c >= 0.99, "coverage {c:.4}");
}

#[test]
fn tsushima_west_coast_corridor_is_flown_at_sea_and_seen_whole() {
    let req = west_coast();
    let plan = corridor_scan(&req).unwrap();
    assert_at_sea_and_covered(&req, &land_of(&req.coast), &plan);
    // 500 m at 144 m spacing: 4 passes centred in the band, 84 to 516 m off the 50 m offset.
    assert!((plan.spacing_m - 144.0).abs() < 1e-9);
    let expected = [84.0, 228.0, 372.0, 516.0];
    assert!(
        plan.pass_offsets_m
            .iter()
            .zip(expected)
            .all(|(a, b)| (a - b).abs() < 1e-6),
        "{:?}",
        plan.pass_offsets_m
    );
    assert!(
        (25_000.0..40_000.0).contains(&plan.shore_m),
        "{} m of shore",
        plan.shore_m
    );
    // The corridor is the sea 50-550 m off this shore: about 500 m × the shore's length.
    let frame = LocalFrame::new(34.5, 129.3);
    let area = plan
        .corridor
        .map_coords(|c| frame.to_local(c))
        .unsigned_area();
    assert!(
        area > 0.6 * 500.0 * plan.shore_m && area < 1.4 * 500.0 * plan.shore_m,
        "{area} m²"
    );
    // The route starts near --from and every leg is densified to 200 m.
    let first = plan.waypoints[0];
    assert!((first.lat - 34.42).abs() < 0.02, "starts at {first:?}");
    let local = |w: &Waypoint| frame.to_local(ll(w.lat, w.lon));
    for (i, w) in plan.waypoints.windows(2).enumerate() {
        let d = Euclidean.distance(Point::from(local(&w[0])), Point::from(local(&w[1])));
        assert!(d <= 200.0 + 1e-6, "leg {i} is {d:.1} m");
    }
    // The shore point offered as home is on the island's edge, next to the first waypoint.
    let home = plan.shore_start;
    assert!(metres_off(&frame, &land_of(&req.coast), &home) < 1.0);
    assert!(metres_off(&frame, &land_of(&req.coast), &first) < 100.0);
}

#[test]
fn coverage_holds_for_every_overlap_and_more_overlap_means_more_passes() {
    let mut last_passes = 0;
    for overlap in [0.0, 0.3, 0.6] {
        let req = CorridorRequest {
            side_overlap: overlap,
            ..west_coast()
        };
        let plan = corridor_scan(&req).unwrap();
        let spacing = 180.0 * (1.0 - overlap);
        assert!((plan.spacing_m - spacing).abs() < 1e-9);
        assert_eq!(plan.pass_offsets_m.len(), (500.0 / spacing).ceil() as usize);
        assert!(plan.pass_offsets_m.len() > last_passes);
        last_passes = plan.pass_offsets_m.len();
        assert!(
            plan.coverage >= 0.99,
            "overlap {overlap}: coverage {:.4}",
            plan.coverage
        );
    }
    // Flying a quarter of the passes (a footprint a quarter as wide) leaves most of the
    // corridor unseen: the coverage measure does see gaps.
    let plan = corridor_scan(&west_coast()).unwrap();
    let thin = coverage(&plan.corridor, &plan.waypoints, plan.footprint_m / 4.0);
    assert!(thin < 0.5, "{thin}");
}

#[test]
fn every_leg_is_checked_against_the_fence_and_a_breaking_one_is_named() {
    let req = west_coast();
    let plan = corridor_scan(&req).unwrap();
    let home = plan.shore_start;
    let rect = |w: f64, s: f64, e: f64, n: f64| {
        Polygon::new(
            LineString::from(vec![(w, s), (e, s), (e, n), (w, n), (w, s)]),
            vec![],
        )
    };
    // The operating area around the west coast, and Izuhara harbour on the east coast kept out.
    let area = rect(129.15, 34.38, 129.40, 34.66);
    let harbour = rect(129.28, 34.19, 129.31, 34.21);
    let fence = Geofence {
        inclusions: vec![area.clone()],
        exclusions: vec![harbour.clone()],
    };
    plan::check_fence(&home, &plan.waypoints, &fence).unwrap();
    // Every leg inside the inclusion and clear of the exclusion, checked here leg by leg too.
    for (i, leg) in legs(&plan.waypoints) {
        assert!(
            area.relate(&leg).is_covers() && !harbour.intersects(&leg),
            "leg {i}"
        );
    }

    // A no-fly box on the corridor halfway along: refused at the first leg into it.
    let mid = plan.waypoints[plan.waypoints.len() / 2];
    let nofly = rect(
        mid.lon - 0.002,
        mid.lat - 0.002,
        mid.lon + 0.002,
        mid.lat + 0.002,
    );
    let fence = Geofence {
        inclusions: vec![area.clone()],
        exclusions: vec![harbour, nofly.clone()],
    };
    let err = plan::check_fence(&home, &plan.waypoints, &fence).unwrap_err();
    let PlanError::InExclusion { leg, zone: 1, .. } = err else {
        panic!("{err:?}")
    };
    let mut points = vec![home];
    points.extend_from_slice(&plan.waypoints);
    points.push(home);
    let first_in = legs(&points).find(|(_, l)| nofly.intersects(l)).unwrap().0;
    assert_eq!(leg, first_in);
    assert!(err.to_string().contains(&format!("leg {leg} ")), "{err}");

    // An inclusion fence that leaves out the north end: the first leg past it is named.
    let short = rect(129.15, 34.38, 129.40, 34.55);
    let err = plan::check_fence(
        &home,
        &plan.waypoints,
        &Geofence {
            inclusions: vec![short],
            exclusions: vec![],
        },
    );
    assert!(
        matches!(err, Err(PlanError::OutsideInclusion { leg, .. }) if leg > 1),
        "{err:?}"
    );
}

#[test]
fn a_corridor_plan_file_round_trips() {
    let plan = corridor_scan(&west_coast()).unwrap();
    let home = plan.shore_start;
    let p = Plan {
        home,
        waypoints: plan.waypoints.clone(),
        fence: Geofence::default(),
        rally: vec![home],
        cruise_speed_mps: 12.0,
    };
    let text = serde_json::to_string_pretty(&plan::to_qgc_plan(&p, 12)).unwrap();
    let back = plan::from_qgc_plan(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(back.waypoints.len(), p.waypoints.len());
    for (a, b) in back.waypoints.iter().zip(&p.waypoints) {
        assert!(
            (a.lat - b.lat).abs() < 1e-12 && (a.lon - b.lon).abs() < 1e-12 && a.alt_m == b.alt_m,
            "{a:?} {b:?}"
        );
    }
    assert_eq!(back.cruise_speed_mps, 12.0);
    // Read back, the plan still covers the corridor.
    assert!(coverage(&plan.corridor, &back.waypoints, plan.footprint_m) >= 0.99);
    // The endurance estimate: four passes of ~30 km are more than one battery.
    let e = plan::endurance(&back, 3.0, 30.0 * 60.0, 0.25);
    assert!(e.distance_m > 4.0 * plan.shore_m * 0.8 && !e.fits, "{e:?}");
}

#[test]
fn the_whole_coast_is_flown_loop_after_loop() {
    let req = CorridorRequest {
        stretch: None,
        width_m: 200.0,
        side_overlap: 0.1,
        ..west_coast()
    };
    let plan = corridor_scan(&req).unwrap();
    assert_at_sea_and_covered(&req, &land_of(&req.coast), &plan);
    assert_eq!(plan.pass_offsets_m.len(), 2);
    // Both islands' shores, about 250 km of Natural Earth coastline.
    assert!(plan.shore_m > 150_000.0, "{}", plan.shore_m);
}

/// A straight coast running north along x = 0 in a local frame at 34.3 N 129.3 E, land to the
/// east, with whatever else is given, as lon/lat polygons.
fn local_coast(frame: &LocalFrame, polygons: &[Vec<(f64, f64)>]) -> Coast {
    let land = polygons
        .iter()
        .map(|ring| {
            Polygon::new(
                ring.iter()
                    .map(|&(x, y)| frame.to_lonlat(Coord { x, y }))
                    .collect(),
                vec![],
            )
        })
        .collect();
    Coast {
        land,
        lines: vec![],
    }
}

#[test]
fn passes_go_round_an_islet_in_the_corridor_and_into_an_inlet_without_touching_land() {
    let frame = LocalFrame::new(34.3, 129.3);
    // 6 km of straight coast with an inlet 400 m wide and 1.5 km deep, and an islet 300 m off.
    let main = vec![
        (0.0, -3000.0),
        (5000.0, -3000.0),
        (5000.0, 3000.0),
        (0.0, 3000.0),
        (0.0, 1200.0),
        (1500.0, 1000.0),
        (1500.0, 600.0),
        (0.0, 800.0),
        (0.0, -3000.0),
    ];
    let islet = vec![
        (-300.0, -1000.0),
        (-250.0, -1050.0),
        (-200.0, -1000.0),
        (-250.0, -900.0),
        (-300.0, -1000.0),
    ];
    let coast = local_coast(&frame, &[main, islet]);
    let req = CorridorRequest {
        coast,
        stretch: Some((
            frame.to_lonlat(Coord { x: 0.0, y: -2800.0 }),
            frame.to_lonlat(Coord { x: 0.0, y: 2800.0 }),
        )),
        ..west_coast()
    };
    let plan = corridor_scan(&req).unwrap();
    let land = land_of(&req.coast);
    assert_at_sea_and_covered(&req, &land, &plan);
    // Some waypoints are inside the inlet (east of the coast line), and some go round the
    // far side of the islet.
    let local: Vec<Coord<f64>> = plan
        .waypoints
        .iter()
        .map(|w| frame.to_local(ll(w.lat, w.lon)))
        .collect();
    assert!(local
        .iter()
        .any(|c| c.x > 500.0 && c.y > 600.0 && c.y < 1200.0));
    assert!(local
        .iter()
        .any(|c| c.x < -300.0 && (c.y + 1000.0).abs() < 60.0));
}

#[test]
fn a_bare_line_with_a_hairpin_keeps_the_corridor_on_its_sea_side() {
    let frame = LocalFrame::new(34.3, 129.3);
    // Drawn north then sharply back south-west: a V-shaped bay, sea on the left (west).
    let pts = [(0.0, 0.0), (0.0, 4000.0), (-800.0, 1500.0)];
    let line: Vec<[f64; 2]> = pts
        .iter()
        .map(|&(x, y)| {
            let c = frame.to_lonlat(Coord { x, y });
            [c.x, c.y]
        })
        .collect();
    let coast = Coast::from_geojson(&json!({"type": "LineString", "coordinates": line})).unwrap();
    let req = CorridorRequest {
        coast,
        stretch: None,
        sea_side: Some(SeaSide::Left),
        ..west_coast()
    };
    let plan = corridor_scan(&req).unwrap();
    assert!(plan.coverage >= 0.99, "{}", plan.coverage);
    let drawn = LineString::from(pts.to_vec());
    for (i, w) in plan.waypoints.windows(2).enumerate() {
        let (a, b) = (
            frame.to_local(ll(w[0].lat, w[0].lon)),
            frame.to_local(ll(w[1].lat, w[1].lon)),
        );
        assert!(
            !drawn.intersects(&Line::new(a, b)),
            "leg {i} crosses the coast line"
        );
        // At sea: west of the first stretch of coast.
        assert!(a.x < 0.0, "{a:?} is on the land side");
    }
    // The other side: the sea outside the V, the land inside it.
    let req = CorridorRequest {
        sea_side: Some(SeaSide::Right),
        ..req
    };
    let plan = corridor_scan(&req).unwrap();
    assert!(plan.coverage >= 0.99, "{}", plan.coverage);
    let inside = Polygon::new(
        LineString::from(vec![
            (0.0, 0.0),
            (0.0, 4000.0),
            (-800.0, 1500.0),
            (0.0, 0.0),
        ]),
        vec![],
    );
    for (i, w) in plan.waypoints.windows(2).enumerate() {
        let (a, b) = (
            frame.to_local(ll(w[0].lat, w[0].lon)),
            frame.to_local(ll(w[1].lat, w[1].lon)),
        );
        assert!(
            !inside.intersects(&Line::new(a, b)),
            "leg {i} goes into the V"
        );
    }
}

#[test]
fn a_line_and_the_land_tell_the_sea_side_themselves() {
    let frame = LocalFrame::new(34.3, 129.3);
    let coast = local_coast(
        &frame,
        &[vec![
            (0.0, -3000.0),
            (4000.0, -3000.0),
            (4000.0, 3000.0),
            (0.0, 3000.0),
            (0.0, -3000.0),
        ]],
    );
    let line = |ys: [f64; 2]| {
        LineString::new(
            ys.iter()
                .map(|&y| frame.to_lonlat(Coord { x: 0.0, y }))
                .collect(),
        )
    };
    for ys in [[-2000.0, 2000.0], [2000.0, -2000.0]] {
        let coast = Coast {
            lines: vec![line(ys)],
            ..coast.clone()
        };
        let plan = corridor_scan(&CorridorRequest {
            coast,
            stretch: None,
            ..west_coast()
        })
        .unwrap();
        assert!(plan
            .waypoints
            .iter()
            .all(|w| frame.to_local(ll(w.lat, w.lon)).x < -50.0));
        assert!(plan.coverage >= 0.99);
    }
    // Told the sea is on the land side: there is no sea there.
    let coast = Coast {
        lines: vec![line([-2000.0, 2000.0])],
        ..coast
    };
    let err = corridor_scan(&CorridorRequest {
        coast,
        stretch: None,
        sea_side: Some(SeaSide::Right),
        ..west_coast()
    });
    assert!(matches!(err, Err(CorridorError::NoSea { .. })), "{err:?}");
}

#[test]
fn bad_input_is_refused_with_what_was_wrong() {
    let ok = west_coast();
    let cases: Vec<(CorridorRequest, &str)> = vec![
        (CorridorRequest { coast: Coast::default(), ..west_coast() }, "coastline is empty"),
        (CorridorRequest { width_m: 0.0, ..west_coast() }, "corridor width 0 m"),
        (CorridorRequest { width_m: -5.0, ..west_coast() }, "corridor width -5 m"),
        (CorridorRequest { width_m: f64::NAN, ..west_coast() }, "corridor width NaN m"),
        (CorridorRequest { offset_m: -1.0, ..west_coast() }, "offset -1 m"),
        (CorridorRequest { side_overlap: 1.0, ..west_coast() }, "side overlap 1"),
        (CorridorRequest { side_overlap: -0.1, ..west_coast() }, "side overlap -0.1"),
        (CorridorRequest { alt_m: 0.0, ..west_coast() }, "altitude 0 m"),
        (CorridorRequest { max_leg_m: 0.0, ..west_coast() }, "longest leg 0 m"),
        (CorridorRequest { camera: Camera { sensor_width_mm: 0.0, focal_length_mm: 8.8 }, ..west_coast() }, "camera"),
        (CorridorRequest { side_overlap: 0.99, ..west_coast() }, "more than 100 passes 1.8 m apart"),
        (CorridorRequest { width_m: 1e6, ..west_coast() }, "reaches 1000.05 km off the shore"),
        (CorridorRequest { alt_m: 20_000.0, ..west_coast() }, "up to 10 km"),
        (CorridorRequest { max_leg_m: 0.01, ..west_coast() }, "waypoints: give a longer longest leg"),
        (CorridorRequest { stretch: Some((ll(34.42, 129.26), ll(34.9, 129.9))), ..west_coast() }, "--to is"),
        (CorridorRequest { stretch: Some((ll(34.42, 129.26), ll(34.42, 129.26))), ..west_coast() }, "no length"),
        // The southern island's west coast and the northern island's.
        (CorridorRequest { stretch: Some((ll(34.2, 129.17), ll(34.5, 129.28))), ..west_coast() }, "different shores"),
        (
            CorridorRequest {
                coast: Coast::from_geojson(&json!({"type": "MultiLineString", "coordinates": [
                    [[129.2, 34.3], [129.2, 34.31]], [[129.3, 34.3], [129.3, 34.31]]]}))
                .unwrap(),
                stretch: None,
                ..west_coast()
            },
            "2 separate lines",
        ),
        (
            // A closed line drawn clockwise with the sea on its right: the sea is inside it.
            CorridorRequest {
                coast: Coast::from_geojson(&json!({"type": "LineString", "coordinates": [
                    [129.2, 34.3], [129.2, 34.31], [129.21, 34.31], [129.21, 34.3], [129.2, 34.3]]}))
                .unwrap(),
                stretch: None,
                ..west_coast()
            },
            "sea inside",
        ),
    ];
    for (req, says) in cases {
        let e = corridor_scan(&req).expect_err(says).to_string();
        assert!(e.contains(says), "{says:?} not in {e:?}");
    }
    assert!(corridor_scan(&ok).is_ok());
    assert!(matches!(
        Coast::from_geojson(
            &json!({"type": "Polygon", "coordinates": [[[129.2, 34.3], [129.3, 94.0]]]})
        ),
        Err(CorridorError::BadCoast(_))
    ));
}
