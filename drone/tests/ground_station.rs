//! The ground station against the vehicle simulator, over real UDP sockets: transfers of all
//! three lists, commands and a flown mission, the link monitor, signing, and vehicles that
//! misbehave (garbage, silence, out-of-sequence requests).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mavlink::dialects::common::{
    MavAutopilot, MavMessage, MavMissionType, MavModeFlag, MavState, MavType, HEARTBEAT_DATA,
    MISSION_REQUEST_INT_DATA,
};
use mizugiwa_drone::gcs::codec::{Encoder, FrameSplitter, SigningKey};
use mizugiwa_drone::gcs::items;
use mizugiwa_drone::gcs::mission::{Convention, ListKind, MissionError, Timing};
use mizugiwa_drone::gcs::station::{
    Command, Event, LinkSpec, Rejection, Station, StationConfig, StationError,
};
use mizugiwa_drone::gcs::tlog::read_tlog;
use mizugiwa_drone::plan::{Geofence, Plan, Waypoint};
use mizugiwa_drone::sim::{self, FlightMode, SimConfig};
use tokio::net::UdpSocket;

const HOME: (f64, f64) = (34.2015, 129.2875);

fn plan() -> Plan {
    let wp = |dn: f64, de: f64| Waypoint {
        lat: HOME.0 + dn / 111_000.0,
        lon: HOME.1 + de / 92_000.0,
        alt_m: 40.0,
    };
    let square = |lat: f64, lon: f64, d: f64| {
        geo::Polygon::new(
            geo::LineString::from(vec![
                (lon, lat),
                (lon + d, lat),
                (lon + d, lat + d),
                (lon, lat + d),
                (lon, lat),
            ]),
            vec![],
        )
    };
    Plan {
        home: Waypoint {
            lat: HOME.0,
            lon: HOME.1,
            alt_m: 0.0,
        },
        waypoints: vec![wp(150.0, 0.0), wp(150.0, 150.0), wp(0.0, 150.0)],
        fence: Geofence {
            inclusions: vec![square(HOME.0 - 0.01, HOME.1 - 0.01, 0.02)],
            exclusions: vec![square(HOME.0 + 0.005, HOME.1 + 0.005, 0.002)],
        },
        rally: vec![Waypoint {
            lat: HOME.0 + 0.001,
            lon: HOME.1,
            alt_m: 20.0,
        }],
        cruise_speed_mps: 15.0,
    }
}

async fn station(config: impl FnOnce(&mut StationConfig)) -> Station {
    let mut c = StationConfig::new(LinkSpec::UdpIn("127.0.0.1:0".parse().unwrap()));
    config(&mut c);
    Station::start(c).await.unwrap()
}

fn fast_sim(gcs: SocketAddr, system: u8) -> SimConfig {
    let mut c = SimConfig::new(system, gcs, HOME.0, HOME.1);
    c.cruise_mps = 60.0;
    c.climb_mps = 20.0;
    c
}

#[tokio::test]
async fn upload_download_fly_and_lose_the_link() {
    let tlog = tempfile::NamedTempFile::new().unwrap();
    let gcs = station(|c| c.tlog = Some(tlog.path().to_path_buf())).await;
    let mut events = gcs.subscribe();
    let mut vehicle = sim::spawn(fast_sim(gcs.local_addr(), 1)).await.unwrap();
    let v = gcs.wait_for_vehicle(Duration::from_secs(5)).await.unwrap();
    assert_eq!(v.id.system, 1);
    assert!(!v.ardupilot);

    let plan = plan();
    let lists = [
        (ListKind::Mission, items::mission_items(&plan)),
        (ListKind::Fence, items::fence_items(&plan.fence)),
        (ListKind::Rally, items::rally_items(&plan.rally)),
    ];
    for (kind, list) in &lists {
        let report = gcs.upload(v.id, *kind, list.clone()).await.unwrap();
        assert_eq!(report.items, list.len());
        assert_eq!(
            &gcs.download(v.id, *kind).await.unwrap(),
            list,
            "{kind} round trip"
        );
    }
    let state = vehicle.state();
    assert_eq!(state.mission, lists[0].1);
    assert_eq!(state.fence, lists[1].1);
    let fence = items::fence_from_items(&state.fence).unwrap();
    assert_eq!((fence.inclusions.len(), fence.exclusions.len()), (1, 1));

    // A second transfer while one runs is refused, not interleaved.
    let (a, b) = tokio::join!(
        gcs.download(v.id, ListKind::Mission),
        gcs.download(v.id, ListKind::Fence)
    );
    assert!(a.is_ok());
    assert!(
        matches!(b, Err(StationError::Busy(ListKind::Mission))),
        "{b:?}"
    );

    // Fly it: arm, start, and watch it pass every waypoint and come home.
    assert!(matches!(
        gcs.command(v.id, Command::MissionStart).await,
        Err(StationError::CommandRefused { .. })
    ));
    gcs.command(v.id, Command::Arm).await.unwrap();
    gcs.command(v.id, Command::MissionStart).await.unwrap();
    let landed = vehicle
        .wait_for(Duration::from_secs(30), |s| {
            s.mode == FlightMode::Landed && s.mission_seq as usize >= lists[0].1.len()
        })
        .await
        .expect("the mission was flown and the vehicle landed at home");
    assert!((landed.lat - HOME.0).abs() < 1e-5 && (landed.lon - HOME.1).abs() < 1e-5);
    let mut reached = Vec::new();
    let mut positions = 0;
    while let Ok(e) = events.try_recv() {
        match e {
            Event::MissionItemReached { seq, .. } => reached.push(seq),
            Event::Telemetry { telemetry, .. } if telemetry.rel_alt_m > 30.0 => positions += 1,
            _ => {}
        }
    }
    assert_eq!(reached, vec![0, 1, 2, 3, 4]);
    assert!(positions > 5, "telemetry in flight: {positions}");

    // The vehicle goes silent: comm lost after 3.5 s (± the tick and heartbeat period).
    vehicle.stop();
    let stopped = Instant::now();
    let lost = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Ok(Event::CommLost { vehicle, silent_ms })) => {
                break (vehicle, silent_ms, stopped.elapsed())
            }
            Ok(_) => continue,
            Err(_) => panic!("no comm-lost event"),
        }
    };
    assert_eq!(lost.0, v.id);
    assert!(
        lost.2 >= Duration::from_millis(2500) && lost.2 <= Duration::from_millis(4600),
        "{:?}",
        lost.2
    );
    assert!(gcs.vehicles().await.unwrap()[0].link_lost);
    gcs.shutdown().await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The tlog holds both directions, readable frame by frame.
    let log = read_tlog(&std::fs::read(tlog.path()).unwrap());
    assert!(log.len() > 50);
    let mut splitter = FrameSplitter::default();
    let from_us = log
        .iter()
        .filter(|(_, f)| splitter.push(f)[0].system_id() == 255)
        .count();
    assert!(from_us > 10 && from_us < log.len());
    assert!(log.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[tokio::test]
async fn ardupilot_missions_carry_home_as_item_zero() {
    let gcs = station(|_| {}).await;
    let mut c = fast_sim(gcs.local_addr(), 7);
    c.convention = Convention::Ardupilot;
    let mut vehicle = sim::spawn(c).await.unwrap();
    let v = gcs.wait_for_vehicle(Duration::from_secs(5)).await.unwrap();
    assert!(v.ardupilot);
    let plan = plan();
    let mission = items::mission_items(&plan);
    let list = mizugiwa_drone::gcs::mission::for_upload(
        &mission,
        items::home_item(&plan.home),
        Convention::Ardupilot,
    );
    gcs.upload(v.id, ListKind::Mission, list).await.unwrap();
    let back = gcs.download(v.id, ListKind::Mission).await.unwrap();
    assert_eq!(
        mizugiwa_drone::gcs::mission::from_download(&back, Convention::Ardupilot),
        mission
    );
    gcs.command(v.id, Command::Arm).await.unwrap();
    gcs.command(v.id, Command::MissionStart).await.unwrap();
    // It starts at item 1 (the take-off), not at home.
    let s = vehicle
        .wait_for(Duration::from_secs(5), |s| s.rel_alt_m > 5.0)
        .await
        .unwrap();
    assert!(s.mission_seq >= 1);
}

#[tokio::test]
async fn several_vehicles_on_one_port_with_their_own_keys() {
    let key = |b: u8| SigningKey([b; 32]);
    let gcs = station(|c| {
        c.keys.insert(1, key(1));
        c.keys.insert(2, key(2));
        c.require_signing = true;
    })
    .await;
    let mut events = gcs.subscribe();
    let mut good = Vec::new();
    for system in [1u8, 2] {
        let mut c = fast_sim(gcs.local_addr(), system);
        c.key = Some(key(system));
        c.require_signing = true;
        good.push(sim::spawn(c).await.unwrap());
    }
    // Vehicle 3 signs with a key that is not its own; vehicle 4 does not sign at all.
    let mut c = fast_sim(gcs.local_addr(), 3);
    c.key = Some(key(9));
    let _wrong = sim::spawn(c).await.unwrap();
    let _unsigned = sim::spawn(fast_sim(gcs.local_addr(), 4)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let vehicles = gcs.vehicles().await.unwrap();
    let systems: Vec<u8> = vehicles.iter().map(|v| v.id.system).collect();
    assert_eq!(
        systems,
        vec![1, 2],
        "only correctly signed vehicles are listened to"
    );
    assert!(vehicles.iter().all(|v| v.signed));
    let mut reasons = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Event::Rejected { system, reason, .. } = e {
            reasons.push((system, reason));
        }
    }
    assert!(reasons.contains(&(3, Rejection::NoKey)), "{reasons:?}");
    assert!(reasons.contains(&(4, Rejection::NoKey)), "{reasons:?}");

    // Each vehicle gets its own mission, routed by address and system id, signed with its key.
    for (i, v) in vehicles.iter().enumerate() {
        let mut mission = items::mission_items(&plan());
        mission.truncate(2 + i);
        gcs.upload(v.id, ListKind::Mission, mission.clone())
            .await
            .unwrap();
        assert_eq!(good[i].state().mission, mission);
        assert_eq!(good[i].state().rejected_frames, 0);
    }
    for g in &mut good {
        g.stop();
    }
}

#[tokio::test]
async fn a_wrong_key_is_rejected_both_ways() {
    // The station signs to system 5 with key A and reaches out to the vehicle's port (udpout);
    // the vehicle signs with key B and requires signatures.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut c = fast_sim("127.0.0.1:9".parse().unwrap(), 5);
    c.listen = Some(port);
    c.key = Some(SigningKey([0xB; 32]));
    c.require_signing = true;
    let vehicle = sim::spawn(c).await.unwrap();
    let mut config = StationConfig::new(LinkSpec::UdpOut(port));
    config.keys.insert(5, SigningKey([0xA; 32]));
    config.heartbeat_interval = Duration::from_millis(200);
    let gcs = Station::start(config).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        vehicle.state().rejected_frames >= 3,
        "the vehicle accepted frames signed with the wrong key"
    );
    assert!(
        gcs.vehicles().await.unwrap().is_empty(),
        "the station accepted a vehicle signing with the wrong key"
    );
    vehicle.stop();

    // With the right key on both sides the same setup works.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut c = fast_sim("127.0.0.1:9".parse().unwrap(), 5);
    c.listen = Some(port);
    c.key = Some(SigningKey([0xA; 32]));
    c.require_signing = true;
    let vehicle = sim::spawn(c).await.unwrap();
    let mut config = StationConfig::new(LinkSpec::UdpOut(port));
    config.keys.insert(5, SigningKey([0xA; 32]));
    config.require_signing = true;
    let gcs = Station::start(config).await.unwrap();
    let v = gcs.wait_for_vehicle(Duration::from_secs(5)).await.unwrap();
    gcs.command(v.id, Command::Arm).await.unwrap();
    assert_eq!(vehicle.state().rejected_frames, 0);
    vehicle.stop();
}

/// A hand-driven vehicle on a raw socket, for behaviour the simulator would never show.
struct RawVehicle {
    socket: UdpSocket,
    encoder: Encoder,
    gcs: SocketAddr,
}

impl RawVehicle {
    async fn new(gcs: SocketAddr, system: u8) -> RawVehicle {
        RawVehicle {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            encoder: Encoder::new(system, 1),
            gcs,
        }
    }

    async fn send(&mut self, msg: &MavMessage) {
        let bytes = self.encoder.encode(msg, None);
        self.socket.send_to(&bytes, self.gcs).await.unwrap();
    }

    async fn heartbeat(&mut self) {
        self.send(&MavMessage::HEARTBEAT(HEARTBEAT_DATA {
            custom_mode: 0,
            mavtype: MavType::MAV_TYPE_QUADROTOR,
            autopilot: MavAutopilot::MAV_AUTOPILOT_PX4,
            base_mode: MavModeFlag::empty(),
            system_status: MavState::MAV_STATE_STANDBY,
            mavlink_version: 3,
        }))
        .await;
    }

    async fn recv(&mut self, timeout: Duration) -> Option<MavMessage> {
        let mut buf = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (n, _) = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf))
                .await
                .ok()?
                .ok()?;
            let frames = FrameSplitter::default().push(&buf[..n]);
            for f in frames {
                match f.parse() {
                    Ok(MavMessage::HEARTBEAT(_)) => continue,
                    Ok(m) => return Some(m),
                    Err(_) => continue,
                }
            }
        }
    }
}

#[tokio::test]
async fn garbage_silence_and_out_of_sequence_requests_fail_cleanly() {
    let gcs = station(|c| {
        c.timing = Timing {
            reply_timeout: Duration::from_millis(200),
            item_timeout: Duration::from_millis(100),
            retries: 2,
        };
    })
    .await;
    let mut raw = RawVehicle::new(gcs.local_addr(), 9).await;

    // Garbage and truncated frames first: nothing breaks, nothing is invented.
    let junk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut truncated =
        Encoder::new(9, 1).encode(&MavMessage::HEARTBEAT(HEARTBEAT_DATA::default()), None);
    truncated.truncate(truncated.len() - 4);
    for datagram in [
        &b"\xfd\xff\x00\x00garbage"[..],
        &[0u8; 600][..],
        &truncated[..],
        b"\xfe",
    ] {
        junk.send_to(datagram, gcs.local_addr()).await.unwrap();
    }
    raw.heartbeat().await;
    let v = gcs.wait_for_vehicle(Duration::from_secs(2)).await.unwrap();
    assert_eq!(gcs.vehicles().await.unwrap().len(), 1);

    // Silence: the upload is retried, then fails with a timeout.
    let mission = items::mission_items(&plan());
    let started = Instant::now();
    let err = gcs
        .upload(v.id, ListKind::Mission, mission.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StationError::Mission(MissionError::Timeout { attempts: 3, .. })
        ),
        "{err}"
    );
    assert!(started.elapsed() >= Duration::from_millis(600));
    let mut counts = 0;
    while let Some(m) = raw.recv(Duration::from_millis(50)).await {
        match m {
            MavMessage::MISSION_COUNT(_) => counts += 1,
            MavMessage::MISSION_ACK(a) => assert_eq!(
                a.mavtype,
                mavlink::dialects::common::MavMissionResult::MAV_MISSION_OPERATION_CANCELLED
            ),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(counts, 3, "the count is sent once and retried twice");

    // Out of sequence: the vehicle asks for item 3 before item 1.
    let upload = {
        let gcs = gcs.clone();
        let mission = mission.clone();
        tokio::spawn(async move { gcs.upload(v.id, ListKind::Mission, mission).await })
    };
    assert!(matches!(
        raw.recv(Duration::from_secs(1)).await,
        Some(MavMessage::MISSION_COUNT(_))
    ));
    let request = |seq| {
        MavMessage::MISSION_REQUEST_INT(MISSION_REQUEST_INT_DATA {
            seq,
            target_system: 255,
            target_component: 190,
            mission_type: MavMissionType::MAV_MISSION_TYPE_MISSION,
        })
    };
    raw.send(&request(0)).await;
    assert!(
        matches!(raw.recv(Duration::from_secs(1)).await, Some(MavMessage::MISSION_ITEM_INT(i)) if i.seq == 0)
    );
    raw.send(&request(3)).await;
    let err = upload.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            StationError::Mission(MissionError::OutOfSequence {
                seq: 3,
                expected: 1,
                ..
            })
        ),
        "{err}"
    );

    // Commands nobody answers time out too; a second command of the same MAVLink number (disarm
    // shares arm's) is refused while the first waits, so an answer is never credited to the
    // wrong one.
    let (first, second) = tokio::join!(gcs.command(v.id, Command::Arm), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        gcs.command(v.id, Command::Disarm).await
    });
    assert!(
        matches!(
            second,
            Err(StationError::CommandPending {
                command: Command::Disarm,
                pending: Command::Arm
            })
        ),
        "{second:?}"
    );
    assert!(
        matches!(first, Err(StationError::CommandTimeout { attempts: 3, .. })),
        "{first:?}"
    );
}

#[tokio::test]
async fn a_vehicle_with_a_key_must_sign_even_when_signing_is_not_required() {
    let gcs = station(|c| {
        c.keys.insert(9, SigningKey([9; 32]));
    })
    .await;
    let mut events = gcs.subscribe();
    // Someone sends unsigned frames claiming system 9.
    let mut raw = RawVehicle::new(gcs.local_addr(), 9).await;
    raw.heartbeat().await;
    let reason = loop {
        match tokio::time::timeout(Duration::from_secs(3), events.recv()).await {
            Ok(Ok(Event::Rejected {
                system: 9, reason, ..
            })) => break reason,
            Ok(_) => continue,
            Err(_) => panic!("the unsigned frame was not rejected"),
        }
    };
    assert_eq!(reason, Rejection::Unsigned);
    assert!(gcs.vehicles().await.unwrap().is_empty());
    // An unkeyed system is still listened to (signing is not required).
    let mut other = RawVehicle::new(gcs.local_addr(), 10).await;
    other.heartbeat().await;
    assert_eq!(
        gcs.wait_for_vehicle(Duration::from_secs(2))
            .await
            .unwrap()
            .id
            .system,
        10
    );
}
