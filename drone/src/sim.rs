//! A multicopter simulator that speaks MAVLink 2 like a real autopilot, for the demo, the
//! drills, the benchmark and the tests.
//!
//! It is the vehicle side of everything the ground station does: heartbeats, telemetry
//! (GLOBAL_POSITION_INT, ATTITUDE, SYS_STATUS, MISSION_CURRENT), the mission protocol for all
//! three lists (the same state machines as the ground station, [`crate::gcs::mission`], in the
//! other role), commands (arm, take-off, mission start, return, land) and signing. Flight is
//! kinematic: constant climb and cruise speeds, turns on the spot, a battery that drains with
//! time in the air. Good enough to fly a patrol along the coast on the dashboard; not a flight
//! dynamics model.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mavlink::dialects::common::{
    MavAutopilot, MavCmd, MavMessage, MavMissionResult, MavModeFlag, MavResult, MavState,
    MavSysStatusSensor, MavType, MissionState, ATTITUDE_DATA, COMMAND_ACK_DATA, COMMAND_LONG_DATA,
    GLOBAL_POSITION_INT_DATA, HEARTBEAT_DATA, MISSION_ACK_DATA, MISSION_CURRENT_DATA,
    MISSION_ITEM_REACHED_DATA, SYS_STATUS_DATA,
};
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::gcs::codec::{Encoder, FrameSplitter, Signer, SigningKey};
use crate::gcs::items::cmd;
use crate::gcs::mission::{Convention, ListKind, MissionItem, Receiver, Sender, Target, Timing};

const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// One simulated vehicle.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub system_id: u8,
    /// Where the ground station listens. Once a ground station has sent something, the vehicle
    /// answers wherever that came from, as an autopilot's `udpin` port does.
    pub gcs: SocketAddr,
    /// The vehicle's own port (default: any free one).
    pub listen: Option<SocketAddr>,
    pub home_lat: f64,
    pub home_lon: f64,
    /// Home altitude above mean sea level, metres.
    pub home_alt_m: f64,
    pub cruise_mps: f64,
    pub climb_mps: f64,
    /// Position and attitude messages per second (each).
    pub telemetry_hz: f64,
    /// Behave like ArduPilot: announce itself as such, and treat mission item 0 as home.
    pub convention: Convention,
    /// Sign everything, and check the signatures of what arrives.
    pub key: Option<SigningKey>,
    pub require_signing: bool,
    /// Minutes of flight on a full battery.
    pub endurance_min: f64,
}

impl SimConfig {
    pub fn new(system_id: u8, gcs: SocketAddr, home_lat: f64, home_lon: f64) -> SimConfig {
        SimConfig {
            system_id,
            gcs,
            listen: None,
            home_lat,
            home_lon,
            home_alt_m: 5.0,
            cruise_mps: 15.0,
            climb_mps: 3.0,
            telemetry_hz: 5.0,
            convention: Convention::Standard,
            key: None,
            require_signing: false,
            endurance_min: 40.0,
        }
    }
}

/// What the vehicle is doing (reported as the heartbeat's custom mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlightMode {
    Landed = 0,
    Takeoff = 1,
    Mission = 2,
    Hold = 3,
    ReturnToLaunch = 4,
    Land = 5,
}

/// A snapshot for tests and the CLI.
#[derive(Debug, Clone, Serialize)]
pub struct SimState {
    pub system_id: u8,
    pub lat: f64,
    pub lon: f64,
    pub rel_alt_m: f64,
    pub heading_deg: f64,
    pub armed: bool,
    pub mode: FlightMode,
    pub mission_seq: u16,
    pub battery_pct: f64,
    pub mission: Vec<MissionItem>,
    pub fence: Vec<MissionItem>,
    pub rally: Vec<MissionItem>,
    /// Frames dropped for a bad or missing signature.
    pub rejected_frames: u64,
    pub frames_sent: u64,
}

/// A running simulated vehicle; [`SimHandle::stop`] or dropping the handle stops it.
pub struct SimHandle {
    state: watch::Receiver<SimState>,
    stop: watch::Sender<bool>,
    pub local_addr: SocketAddr,
}

impl SimHandle {
    pub fn state(&self) -> SimState {
        self.state.borrow().clone()
    }

    /// Stops the vehicle at once: it goes silent, as if it had crashed or lost its radio.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits until `pred` holds for the vehicle's state, up to `timeout`.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&SimState) -> bool,
    ) -> Option<SimState> {
        let r = tokio::time::timeout(timeout, self.state.wait_for(|s| pred(s))).await;
        match r {
            Ok(Ok(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

/// Starts a vehicle on its own UDP port, talking to `config.gcs`.
pub async fn spawn(config: SimConfig) -> std::io::Result<SimHandle> {
    let any: SocketAddr = if config.gcs.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("address");
    let bind = config.listen.unwrap_or(any);
    let socket = UdpSocket::bind(bind).await?;
    let local_addr = socket.local_addr()?;
    let vehicle = Vehicle::new(config);
    let (state_tx, state_rx) = watch::channel(vehicle.snapshot());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(vehicle.run(socket, state_tx, stop_rx));
    Ok(SimHandle {
        state: state_rx,
        stop: stop_tx,
        local_addr,
    })
}

enum Transfer {
    Receiving(Receiver),
    Sending(Sender),
}

struct Vehicle {
    config: SimConfig,
    encoder: Encoder,
    signer: Option<Signer>,
    splitter: FrameSplitter,
    /// Position east/north of home, metres, and height above home.
    east: f64,
    north: f64,
    up: f64,
    heading_deg: f64,
    speed: f64,
    climb: f64,
    armed: bool,
    mode: FlightMode,
    takeoff_alt: f64,
    mission: Vec<MissionItem>,
    fence: Vec<MissionItem>,
    rally: Vec<MissionItem>,
    seq: u16,
    battery: f64,
    transfer: Option<(Transfer, Target)>,
    /// The last list received, to acknowledge again if our acknowledgement was lost.
    last_received: Option<(ListKind, u16)>,
    gcs_target: Target,
    rejected: u64,
    sent: u64,
    started: Instant,
}

impl Vehicle {
    fn new(config: SimConfig) -> Vehicle {
        let signer = config
            .key
            .as_ref()
            .map(|k| Signer::new(k, 0, !config.require_signing));
        Vehicle {
            encoder: Encoder::new(config.system_id, 1),
            signer,
            splitter: FrameSplitter::default(),
            east: 0.0,
            north: 0.0,
            up: 0.0,
            heading_deg: 0.0,
            speed: 0.0,
            climb: 0.0,
            armed: false,
            mode: FlightMode::Landed,
            takeoff_alt: 30.0,
            mission: Vec::new(),
            fence: Vec::new(),
            rally: Vec::new(),
            seq: 0,
            battery: 100.0,
            transfer: None,
            last_received: None,
            gcs_target: Target {
                system: 255,
                component: 190,
            },
            rejected: 0,
            sent: 0,
            started: Instant::now(),
            config,
        }
    }

    fn lat_lon(&self) -> (f64, f64) {
        let lat = self.config.home_lat + (self.north / EARTH_RADIUS_M).to_degrees();
        let lon = self.config.home_lon
            + (self.east / (EARTH_RADIUS_M * self.config.home_lat.to_radians().cos())).to_degrees();
        (lat, lon)
    }

    fn local(&self, lat: f64, lon: f64) -> (f64, f64) {
        let north = (lat - self.config.home_lat).to_radians() * EARTH_RADIUS_M;
        let east = (lon - self.config.home_lon).to_radians()
            * EARTH_RADIUS_M
            * self.config.home_lat.to_radians().cos();
        (east, north)
    }

    fn snapshot(&self) -> SimState {
        let (lat, lon) = self.lat_lon();
        SimState {
            system_id: self.config.system_id,
            lat,
            lon,
            rel_alt_m: self.up,
            heading_deg: self.heading_deg,
            armed: self.armed,
            mode: self.mode,
            mission_seq: self.seq,
            battery_pct: self.battery,
            mission: self.mission.clone(),
            fence: self.fence.clone(),
            rally: self.rally.clone(),
            rejected_frames: self.rejected,
            frames_sent: self.sent,
        }
    }

    async fn run(
        mut self,
        socket: UdpSocket,
        state: watch::Sender<SimState>,
        mut stop: watch::Receiver<bool>,
    ) {
        let dt = Duration::from_millis(50);
        let mut physics = tokio::time::interval(dt);
        // At most 1 kHz and at least 0.1 Hz (an absurd rate must not make a zero period).
        let hz = if self.config.telemetry_hz.is_finite() {
            self.config.telemetry_hz.clamp(0.1, 1000.0)
        } else {
            5.0
        };
        let telemetry_period = Duration::from_secs_f64(1.0 / hz);
        let mut telemetry = tokio::time::interval(telemetry_period);
        let mut slow = tokio::time::interval(Duration::from_secs(1));
        let mut buf = vec![0u8; 4096];
        loop {
            let mut out = Vec::new();
            tokio::select! {
                _ = stop.changed() => return,
                r = socket.recv_from(&mut buf) => {
                    if let Ok((n, from)) = r {
                        if self.on_datagram(&buf[..n], &mut out) {
                            self.config.gcs = from;
                        }
                        state.send_replace(self.snapshot());
                    }
                }
                _ = physics.tick() => {
                    self.step(dt.as_secs_f64(), &mut out);
                    if let Some((t, _)) = &mut self.transfer {
                        let now = Instant::now();
                        let step = match t {
                            Transfer::Receiving(r) => r.on_timeout(now),
                            Transfer::Sending(s) => s.on_timeout(now),
                        };
                        out.extend(step.send);
                        if step.done.is_some() {
                            self.transfer = None;
                        }
                    }
                    state.send_replace(self.snapshot());
                }
                _ = telemetry.tick() => self.telemetry(&mut out),
                _ = slow.tick() => self.slow_telemetry(&mut out),
            }
            for msg in out {
                let bytes = self.encoder.encode(&msg, self.signer.as_ref());
                if socket.send_to(&bytes, self.config.gcs).await.is_ok() {
                    self.sent += 1;
                }
            }
        }
    }

    /// Handles a datagram; true if it held at least one frame the vehicle accepted.
    fn on_datagram(&mut self, bytes: &[u8], out: &mut Vec<MavMessage>) -> bool {
        let frames = self.splitter.push(bytes);
        self.splitter.end_of_datagram();
        let mut accepted = false;
        for frame in frames {
            if let Some(signer) = &self.signer {
                if !signer.verify(&frame) {
                    self.rejected += 1;
                    continue;
                }
            }
            let Ok(msg) = frame.parse() else { continue };
            accepted = true;
            let from = Target {
                system: frame.system_id() as u8,
                component: frame.component_id(),
            };
            self.on_message(&msg, from, out);
        }
        accepted
    }

    fn on_message(&mut self, msg: &MavMessage, from: Target, out: &mut Vec<MavMessage>) {
        let now = Instant::now();
        let timing = Timing::default();
        match msg {
            MavMessage::HEARTBEAT(_) => {
                self.gcs_target = from;
                return;
            }
            MavMessage::COMMAND_LONG(c) if c.target_system == self.config.system_id => {
                out.push(self.on_command(c));
                return;
            }
            MavMessage::MISSION_COUNT(c) if c.target_system == self.config.system_id => {
                let Some(kind) = ListKind::from_wire(c.mission_type) else {
                    return;
                };
                match &self.transfer {
                    // The same ground station announcing the same list again (our first request
                    // was lost): the transfer under way re-requests on its own timer.
                    Some((Transfer::Receiving(r), partner))
                        if *partner == from && r.kind() == kind =>
                    {
                        return
                    }
                    // Another transfer is under way: one at a time, as PX4 does.
                    Some(_) => {
                        out.push(MavMessage::MISSION_ACK(MISSION_ACK_DATA {
                            target_system: from.system,
                            target_component: from.component,
                            mavtype: MavMissionResult::MAV_MISSION_DENIED,
                            mission_type: c.mission_type,
                            opaque_id: 0,
                        }));
                        return;
                    }
                    None => {}
                }
                // A new upload: the last one's acceptance must not be repeated for it.
                self.last_received = None;
                let (receiver, step) = Receiver::accept_upload(kind, c.count, from, timing, now);
                out.extend(step.send);
                match step.done {
                    Some(Ok(items)) => self.store(kind, items),
                    Some(Err(_)) => {}
                    None => self.transfer = Some((Transfer::Receiving(receiver), from)),
                }
                return;
            }
            MavMessage::MISSION_REQUEST_LIST(r) if r.target_system == self.config.system_id => {
                let Some(kind) = ListKind::from_wire(r.mission_type) else {
                    return;
                };
                let list = match kind {
                    ListKind::Mission => self.mission.clone(),
                    ListKind::Fence => self.fence.clone(),
                    ListKind::Rally => self.rally.clone(),
                };
                if let Ok((sender, step)) = Sender::start(kind, &list, from, timing, now) {
                    out.extend(step.send);
                    self.transfer = Some((Transfer::Sending(sender), from));
                }
                return;
            }
            MavMessage::MISSION_ITEM_INT(item) if self.transfer.is_none() => {
                // Our acceptance of the last upload was lost and the ground station sent the
                // last item again: accept again.
                if let (Some((kind, count)), Some(k)) =
                    (self.last_received, ListKind::from_wire(item.mission_type))
                {
                    if kind == k
                        && item.target_system == self.config.system_id
                        && count.checked_sub(1) == Some(item.seq)
                    {
                        out.push(MavMessage::MISSION_ACK(MISSION_ACK_DATA {
                            target_system: from.system,
                            target_component: from.component,
                            mavtype: MavMissionResult::MAV_MISSION_ACCEPTED,
                            mission_type: item.mission_type,
                            opaque_id: 0,
                        }));
                    }
                }
                return;
            }
            _ => {}
        }
        let Some((transfer, _)) = &mut self.transfer else {
            return;
        };
        let step = match transfer {
            Transfer::Receiving(r) => r.on_message(msg, now),
            Transfer::Sending(s) => s.on_message(msg, now),
        };
        out.extend(step.send);
        if let Some(done) = step.done {
            let transfer = self.transfer.take();
            if let (Some((Transfer::Receiving(r), _)), Ok(items)) = (transfer, done) {
                self.store(r.kind(), items);
            }
        }
    }

    fn store(&mut self, kind: ListKind, items: Vec<MissionItem>) {
        self.last_received = Some((kind, items.len() as u16));
        match kind {
            ListKind::Mission => {
                self.mission = items;
                self.seq = 0;
            }
            ListKind::Fence => self.fence = items,
            ListKind::Rally => self.rally = items,
        }
    }

    fn first_mission_seq(&self) -> u16 {
        match self.config.convention {
            Convention::Ardupilot => 1,
            Convention::Standard => 0,
        }
    }

    fn on_command(&mut self, c: &COMMAND_LONG_DATA) -> MavMessage {
        let result = match c.command {
            MavCmd::MAV_CMD_COMPONENT_ARM_DISARM if c.param1 >= 0.5 => {
                self.armed = true;
                MavResult::MAV_RESULT_ACCEPTED
            }
            MavCmd::MAV_CMD_COMPONENT_ARM_DISARM => {
                if self.up > 0.5 {
                    MavResult::MAV_RESULT_DENIED
                } else {
                    self.armed = false;
                    MavResult::MAV_RESULT_ACCEPTED
                }
            }
            MavCmd::MAV_CMD_NAV_TAKEOFF if self.armed => {
                self.takeoff_alt = if c.param7.is_finite() && c.param7 > 1.0 {
                    f64::from(c.param7)
                } else {
                    30.0
                };
                self.mode = FlightMode::Takeoff;
                MavResult::MAV_RESULT_ACCEPTED
            }
            MavCmd::MAV_CMD_MISSION_START
                if self.armed && self.mission.len() > usize::from(self.first_mission_seq()) =>
            {
                self.seq = self.first_mission_seq();
                self.mode = FlightMode::Mission;
                MavResult::MAV_RESULT_ACCEPTED
            }
            MavCmd::MAV_CMD_NAV_RETURN_TO_LAUNCH if self.armed => {
                self.mode = FlightMode::ReturnToLaunch;
                MavResult::MAV_RESULT_ACCEPTED
            }
            MavCmd::MAV_CMD_NAV_LAND if self.armed => {
                self.mode = FlightMode::Land;
                MavResult::MAV_RESULT_ACCEPTED
            }
            MavCmd::MAV_CMD_NAV_TAKEOFF
            | MavCmd::MAV_CMD_MISSION_START
            | MavCmd::MAV_CMD_NAV_RETURN_TO_LAUNCH
            | MavCmd::MAV_CMD_NAV_LAND => MavResult::MAV_RESULT_TEMPORARILY_REJECTED,
            _ => MavResult::MAV_RESULT_UNSUPPORTED,
        };
        MavMessage::COMMAND_ACK(COMMAND_ACK_DATA {
            command: c.command,
            result,
            target_system: self.gcs_target.system,
            target_component: self.gcs_target.component,
            ..Default::default()
        })
    }

    /// Moves towards (east, north, up) at cruise and climb speed; true when there.
    fn fly_to(&mut self, east: f64, north: f64, up: f64, dt: f64) -> bool {
        let (de, dn, du) = (east - self.east, north - self.north, up - self.up);
        let horizontal = de.hypot(dn);
        let step_h = self.config.cruise_mps * dt;
        if horizontal > step_h {
            self.east += de / horizontal * step_h;
            self.north += dn / horizontal * step_h;
            self.heading_deg = de.atan2(dn).to_degrees().rem_euclid(360.0);
            self.speed = self.config.cruise_mps;
        } else {
            self.east = east;
            self.north = north;
            self.speed = 0.0;
        }
        let step_v = self.config.climb_mps * dt;
        self.climb = du.clamp(-step_v, step_v) / dt;
        self.up += du.clamp(-step_v, step_v);
        horizontal <= step_h && du.abs() <= step_v
    }

    fn step(&mut self, dt: f64, out: &mut Vec<MavMessage>) {
        if self.up > 0.1 {
            self.battery =
                (self.battery - dt / (self.config.endurance_min * 60.0) * 100.0).max(0.0);
        }
        match self.mode {
            FlightMode::Landed | FlightMode::Hold => {
                self.speed = 0.0;
                self.climb = 0.0;
            }
            FlightMode::Takeoff => {
                let (e, n, alt) = (self.east, self.north, self.takeoff_alt);
                if self.fly_to(e, n, alt, dt) {
                    self.mode = FlightMode::Hold;
                }
            }
            FlightMode::ReturnToLaunch => {
                let alt = self.up.max(30.0);
                if self.east.hypot(self.north) > 1.0 {
                    self.fly_to(0.0, 0.0, alt, dt);
                } else {
                    self.mode = FlightMode::Land;
                }
            }
            FlightMode::Land => {
                let (e, n) = (self.east, self.north);
                if self.fly_to(e, n, 0.0, dt) {
                    self.mode = FlightMode::Landed;
                    self.armed = false;
                }
            }
            FlightMode::Mission => self.fly_mission(dt, out),
        }
    }

    fn fly_mission(&mut self, dt: f64, out: &mut Vec<MavMessage>) {
        let Some(item) = self.mission.get(usize::from(self.seq)).copied() else {
            self.mode = FlightMode::Hold;
            return;
        };
        let reached = match item.command {
            cmd::NAV_TAKEOFF => {
                let (e, n) = (self.east, self.north);
                self.fly_to(e, n, f64::from(item.z), dt)
            }
            cmd::NAV_WAYPOINT => {
                let (e, n) = self.local(f64::from(item.x) / 1e7, f64::from(item.y) / 1e7);
                self.fly_to(e, n, f64::from(item.z), dt)
            }
            cmd::NAV_RETURN_TO_LAUNCH => {
                self.mode = FlightMode::ReturnToLaunch;
                true
            }
            cmd::NAV_LAND => {
                self.mode = FlightMode::Land;
                true
            }
            // Anything else (camera triggers, speed changes) is done at once.
            _ => true,
        };
        if reached {
            out.push(MavMessage::MISSION_ITEM_REACHED(
                MISSION_ITEM_REACHED_DATA { seq: self.seq },
            ));
            self.seq += 1;
            if usize::from(self.seq) >= self.mission.len() && self.mode == FlightMode::Mission {
                self.mode = FlightMode::Hold;
            }
        }
    }

    fn telemetry(&mut self, out: &mut Vec<MavMessage>) {
        let (lat, lon) = self.lat_lon();
        let time_boot_ms = self.started.elapsed().as_millis() as u32;
        let heading = self.heading_deg.to_radians();
        out.push(MavMessage::GLOBAL_POSITION_INT(GLOBAL_POSITION_INT_DATA {
            time_boot_ms,
            lat: (lat * 1e7).round() as i32,
            lon: (lon * 1e7).round() as i32,
            alt: ((self.config.home_alt_m + self.up) * 1000.0).round() as i32,
            relative_alt: (self.up * 1000.0).round() as i32,
            vx: (self.speed * heading.cos() * 100.0).round() as i16,
            vy: (self.speed * heading.sin() * 100.0).round() as i16,
            vz: (-self.climb * 100.0).round() as i16,
            hdg: (self.heading_deg * 100.0).round() as u16 % 36_000,
        }));
        out.push(MavMessage::ATTITUDE(ATTITUDE_DATA {
            time_boot_ms,
            // A multicopter leans into its motion: a few degrees of pitch at cruise.
            roll: 0.0,
            pitch: -(self.speed / self.config.cruise_mps.max(1.0) * 8.0).to_radians() as f32,
            yaw: heading as f32,
            ..Default::default()
        }));
    }

    fn slow_telemetry(&mut self, out: &mut Vec<MavMessage>) {
        let mut base_mode = MavModeFlag::MAV_MODE_FLAG_CUSTOM_MODE_ENABLED;
        if self.armed {
            base_mode |= MavModeFlag::MAV_MODE_FLAG_SAFETY_ARMED;
        }
        if self.mode == FlightMode::Mission {
            base_mode |= MavModeFlag::MAV_MODE_FLAG_AUTO_ENABLED;
        }
        out.push(MavMessage::HEARTBEAT(HEARTBEAT_DATA {
            custom_mode: self.mode as u32,
            mavtype: MavType::MAV_TYPE_QUADROTOR,
            autopilot: match self.config.convention {
                Convention::Ardupilot => MavAutopilot::MAV_AUTOPILOT_ARDUPILOTMEGA,
                Convention::Standard => MavAutopilot::MAV_AUTOPILOT_GENERIC,
            },
            base_mode,
            system_status: if self.armed {
                MavState::MAV_STATE_ACTIVE
            } else {
                MavState::MAV_STATE_STANDBY
            },
            mavlink_version: 3,
        }));
        let sensors = MavSysStatusSensor::MAV_SYS_STATUS_SENSOR_GPS;
        out.push(MavMessage::SYS_STATUS(SYS_STATUS_DATA {
            onboard_control_sensors_present: sensors,
            onboard_control_sensors_enabled: sensors,
            onboard_control_sensors_health: sensors,
            voltage_battery: (14_800.0 + self.battery * 12.0) as u16,
            current_battery: if self.up > 0.1 { 1800 } else { 50 },
            battery_remaining: self.battery.round() as i8,
            ..Default::default()
        }));
        out.push(MavMessage::MISSION_CURRENT(MISSION_CURRENT_DATA {
            seq: self.seq,
            total: self.mission.len() as u16,
            mission_state: match (self.mission.is_empty(), self.mode) {
                (true, _) => MissionState::MISSION_STATE_NO_MISSION,
                (false, FlightMode::Mission) => MissionState::MISSION_STATE_ACTIVE,
                (false, _) if usize::from(self.seq) >= self.mission.len() => {
                    MissionState::MISSION_STATE_COMPLETE
                }
                _ => MissionState::MISSION_STATE_NOT_STARTED,
            },
            ..Default::default()
        }));
    }
}
