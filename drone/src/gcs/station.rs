//! The ground station: one MAVLink port, many vehicles.
//!
//! One task owns the socket and every piece of state (vehicles, transfers, pending commands),
//! so nothing is shared or locked; callers talk to it through [`Station`], a cheap handle that
//! sends requests and subscribes to [`Event`]s. A 20 ms tick drives the timers: heartbeats out,
//! the link monitor, and the deadlines of transfers and commands.
//!
//! Vehicles are told apart by the address they send from *and* their system id, so several
//! vehicles behind one radio (one address) and several radios (one system id each) both work.
//! With a signing key configured for a system id, everything sent to it is signed and frames
//! claiming that system id must carry a valid, fresh signature (one replay window per system,
//! whatever address the frames come from); with `require_signing`, systems without a key are
//! not listened to at all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mavlink::dialects::common::{
    MavAutopilot, MavCmd, MavMessage, MavModeFlag, MavResult, MavState, MavType, COMMAND_LONG_DATA,
    HEARTBEAT_DATA,
};
use mavlink::Message as _;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::codec::{Encoder, Frame, FrameSplitter, Signer, SigningKey};
use super::mission::{ListKind, MissionError, MissionItem, Receiver, Sender, Step, Target, Timing};
use super::tlog::TlogWriter;

/// Where the ground station's MAVLink port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSpec {
    /// Listen on a UDP port; vehicles send to it (`udpin:0.0.0.0:14550`, the usual setup).
    UdpIn(SocketAddr),
    /// Send to a vehicle's UDP port from an ephemeral one (`udpout:192.168.1.10:14555`).
    UdpOut(SocketAddr),
    /// Connect to a vehicle's TCP port (`tcp:127.0.0.1:5760`, as ArduPilot SITL offers).
    TcpOut(SocketAddr),
}

impl std::str::FromStr for LinkSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<LinkSpec, String> {
        let (scheme, addr) = s.split_once(':').ok_or_else(|| {
            format!("{s:?}: expected udpin:HOST:PORT, udpout:HOST:PORT or tcp:HOST:PORT")
        })?;
        let make: fn(SocketAddr) -> LinkSpec = match scheme {
            "udpin" | "udp" => LinkSpec::UdpIn,
            "udpout" => LinkSpec::UdpOut,
            "tcp" | "tcpout" => LinkSpec::TcpOut,
            other => {
                return Err(format!(
                    "{other:?}: the link kinds are udpin, udpout and tcp"
                ))
            }
        };
        let addr: SocketAddr = addr
            .parse()
            .map_err(|e| format!("{addr:?}: {e} (an IP address and port)"))?;
        Ok(make(addr))
    }
}

/// How the ground station behaves.
#[derive(Debug, Clone)]
pub struct StationConfig {
    pub link: LinkSpec,
    /// Our MAVLink identity; 255/190 is the conventional ground station.
    pub system_id: u8,
    pub component_id: u8,
    pub heartbeat_interval: Duration,
    /// A vehicle silent for this long is reported lost.
    pub comm_lost_after: Duration,
    pub timing: Timing,
    /// Signing keys by vehicle system id.
    pub keys: HashMap<u8, SigningKey>,
    /// Ignore vehicles without a key, and unsigned frames from those with one.
    pub require_signing: bool,
    /// Every frame in and out, in `.tlog` format.
    pub tlog: Option<PathBuf>,
}

impl StationConfig {
    pub fn new(link: LinkSpec) -> StationConfig {
        StationConfig {
            link,
            system_id: 255,
            component_id: 190,
            heartbeat_interval: Duration::from_secs(1),
            comm_lost_after: Duration::from_millis(3500),
            timing: Timing::default(),
            keys: HashMap::new(),
            require_signing: false,
            tlog: None,
        }
    }
}

/// A vehicle: the address it sends from and its system id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct VehicleId {
    pub system: u8,
    pub peer: SocketAddr,
}

impl std::fmt::Display for VehicleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "system {} at {}", self.system, self.peer)
    }
}

/// The latest known state of a vehicle.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Telemetry {
    /// Wall-clock time of the position, ms since the Unix epoch.
    pub at_ms: i64,
    pub lat: f64,
    pub lon: f64,
    /// Above mean sea level, metres.
    pub alt_m: f64,
    /// Above home, metres.
    pub rel_alt_m: f64,
    pub heading_deg: f64,
    pub ground_speed_mps: f64,
    pub climb_mps: f64,
    pub roll_deg: f64,
    pub pitch_deg: f64,
    pub yaw_deg: f64,
    pub battery_pct: Option<u8>,
    pub armed: bool,
    pub custom_mode: u32,
    /// The mission item being flown.
    pub mission_seq: Option<u16>,
}

/// A vehicle as the ground station sees it.
#[derive(Debug, Clone, Serialize)]
pub struct VehicleStatus {
    pub id: VehicleId,
    /// The component that sent the autopilot heartbeat (normally 1).
    pub component: u8,
    pub autopilot: String,
    pub vehicle_type: String,
    /// ArduPilot numbers missions from 1 (item 0 is home).
    pub ardupilot: bool,
    pub link_lost: bool,
    pub signed: bool,
    pub frames: u64,
    pub rejected_frames: u64,
    pub telemetry: Telemetry,
}

/// Why a frame was not listened to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// Signed with another key, or a replayed or stale timestamp.
    BadSignature,
    /// Unsigned, from a vehicle whose frames must be signed.
    Unsigned,
    /// From a system without a key while signing is required.
    NoKey,
}

/// What the ground station reports.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A vehicle's first heartbeat.
    Discovered {
        vehicle: VehicleId,
        autopilot: String,
        vehicle_type: String,
    },
    /// A new position (GLOBAL_POSITION_INT), with the latest of everything else.
    Telemetry {
        vehicle: VehicleId,
        telemetry: Telemetry,
    },
    /// No heartbeat for longer than the configured limit.
    CommLost {
        vehicle: VehicleId,
        silent_ms: u64,
    },
    CommRegained {
        vehicle: VehicleId,
        outage_ms: u64,
    },
    /// Frames that were dropped (reported at most once a second per sender, with the count).
    Rejected {
        peer: SocketAddr,
        system: u32,
        reason: Rejection,
        count: u64,
    },
    MissionItemReached {
        vehicle: VehicleId,
        seq: u16,
    },
    StatusText {
        vehicle: VehicleId,
        severity: String,
        text: String,
    },
}

/// Commands the patrol team sends.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Arm,
    Disarm,
    Takeoff { alt_m: f32 },
    MissionStart,
    ReturnToLaunch,
    Land,
}

impl Command {
    fn to_wire(self, target: Target, confirmation: u8) -> COMMAND_LONG_DATA {
        let mut c = COMMAND_LONG_DATA {
            target_system: target.system,
            target_component: target.component,
            confirmation,
            ..Default::default()
        };
        match self {
            Command::Arm => (c.command, c.param1) = (MavCmd::MAV_CMD_COMPONENT_ARM_DISARM, 1.0),
            Command::Disarm => (c.command, c.param1) = (MavCmd::MAV_CMD_COMPONENT_ARM_DISARM, 0.0),
            Command::Takeoff { alt_m } => {
                c.command = MavCmd::MAV_CMD_NAV_TAKEOFF;
                // Keep the current position and yaw: NaN means "unchanged".
                (c.param4, c.param5, c.param6, c.param7) = (f32::NAN, f32::NAN, f32::NAN, alt_m);
            }
            Command::MissionStart => c.command = MavCmd::MAV_CMD_MISSION_START,
            Command::ReturnToLaunch => c.command = MavCmd::MAV_CMD_NAV_RETURN_TO_LAUNCH,
            Command::Land => {
                c.command = MavCmd::MAV_CMD_NAV_LAND;
                (c.param4, c.param5, c.param6) = (f32::NAN, f32::NAN, f32::NAN);
            }
        }
        c
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error("{0}")]
    Mission(#[from] MissionError),
    #[error("no vehicle {0}")]
    UnknownVehicle(VehicleId),
    #[error("a {0} transfer with this vehicle is already under way")]
    Busy(ListKind),
    #[error("the vehicle answered {result:?} to {command:?}")]
    CommandRefused { command: Command, result: MavResult },
    #[error("no answer to {command:?} after {attempts} attempts")]
    CommandTimeout { command: Command, attempts: u32 },
    #[error("{command:?} not sent: {pending:?} (the same MAVLink command) is still waiting for its answer")]
    CommandPending { command: Command, pending: Command },
    #[error("no vehicle appeared within {0:?}")]
    NoVehicle(Duration),
    #[error("the ground station has stopped")]
    Stopped,
}

/// What a finished upload tells the caller.
#[derive(Debug, Clone, Serialize)]
pub struct UploadReport {
    pub kind: ListKind,
    pub items: usize,
    pub seconds: f64,
}

/// The handle to a running ground station.
#[derive(Clone)]
pub struct Station {
    requests: mpsc::Sender<Request>,
    events: broadcast::Sender<Event>,
    local_addr: SocketAddr,
}

enum Request {
    Upload {
        vehicle: VehicleId,
        kind: ListKind,
        items: Vec<MissionItem>,
        reply: oneshot::Sender<Result<UploadReport, StationError>>,
    },
    Download {
        vehicle: VehicleId,
        kind: ListKind,
        reply: oneshot::Sender<Result<Vec<MissionItem>, StationError>>,
    },
    Command {
        vehicle: VehicleId,
        command: Command,
        reply: oneshot::Sender<Result<(), StationError>>,
    },
    Vehicles {
        reply: oneshot::Sender<Vec<VehicleStatus>>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

impl Station {
    /// Opens the port and starts the station's task.
    pub async fn start(config: StationConfig) -> std::io::Result<Station> {
        let (inbound_tx, inbound_rx) = mpsc::channel::<Inbound>(1024);
        let (transport, local_addr, reader) = match config.link {
            LinkSpec::UdpIn(addr) | LinkSpec::UdpOut(addr) => {
                let bind: SocketAddr = match config.link {
                    LinkSpec::UdpIn(_) => addr,
                    _ if addr.is_ipv4() => "0.0.0.0:0".parse().expect("address"),
                    _ => "[::]:0".parse().expect("address"),
                };
                let socket = Arc::new(UdpSocket::bind(bind).await?);
                let local = socket.local_addr()?;
                let reader = tokio::spawn(read_udp(socket.clone(), inbound_tx));
                let default_peer = matches!(config.link, LinkSpec::UdpOut(_)).then_some(addr);
                (
                    Transport::Udp {
                        socket,
                        default_peer,
                    },
                    local,
                    reader,
                )
            }
            LinkSpec::TcpOut(addr) => {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let local = stream.local_addr()?;
                let (read, write) = stream.into_split();
                let reader = tokio::spawn(read_tcp(read, addr, inbound_tx));
                (
                    Transport::Tcp {
                        writer: write,
                        peer: addr,
                    },
                    local,
                    reader,
                )
            }
        };
        let tlog = match &config.tlog {
            Some(path) => Some(TlogWriter::open(path)?),
            None => None,
        };
        let (requests, request_rx) = mpsc::channel(64);
        let (events, _) = broadcast::channel(4096);
        let actor = Actor {
            encoder: Encoder::new(config.system_id, config.component_id),
            config,
            transport,
            vehicles: HashMap::new(),
            signers: HashMap::new(),
            splitters: HashMap::new(),
            transfers: HashMap::new(),
            commands: HashMap::new(),
            rejections: HashMap::new(),
            events: events.clone(),
            tlog,
            last_heartbeat_out: None,
            reader,
        };
        tokio::spawn(actor.run(inbound_rx, request_rx));
        Ok(Station {
            requests,
            events,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, StationError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(make(tx))
            .await
            .map_err(|_| StationError::Stopped)?;
        rx.await.map_err(|_| StationError::Stopped)
    }

    pub async fn vehicles(&self) -> Result<Vec<VehicleStatus>, StationError> {
        self.ask(|reply| Request::Vehicles { reply }).await
    }

    /// The first vehicle heard, waiting up to `timeout` for one.
    pub async fn wait_for_vehicle(&self, timeout: Duration) -> Result<VehicleStatus, StationError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(v) = self.vehicles().await?.into_iter().find(|v| !v.link_lost) {
                return Ok(v);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StationError::NoVehicle(timeout));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Uploads a list; returns only once the vehicle accepted all of it.
    pub async fn upload(
        &self,
        vehicle: VehicleId,
        kind: ListKind,
        items: Vec<MissionItem>,
    ) -> Result<UploadReport, StationError> {
        self.ask(|reply| Request::Upload {
            vehicle,
            kind,
            items,
            reply,
        })
        .await?
    }

    pub async fn download(
        &self,
        vehicle: VehicleId,
        kind: ListKind,
    ) -> Result<Vec<MissionItem>, StationError> {
        self.ask(|reply| Request::Download {
            vehicle,
            kind,
            reply,
        })
        .await?
    }

    /// Sends a command and waits for the vehicle to accept it.
    pub async fn command(&self, vehicle: VehicleId, command: Command) -> Result<(), StationError> {
        self.ask(|reply| Request::Command {
            vehicle,
            command,
            reply,
        })
        .await?
    }

    /// Stops the station: returns once the port is released and the tlog flushed.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.requests.send(Request::Shutdown { done }).await.is_ok() {
            let _ = finished.await;
        }
    }
}

struct Inbound {
    peer: SocketAddr,
    bytes: Vec<u8>,
    datagram: bool,
}

async fn read_udp(socket: Arc<UdpSocket>, to_actor: mpsc::Sender<Inbound>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, peer)) => {
                if to_actor
                    .send(Inbound {
                        peer,
                        bytes: buf[..n].to_vec(),
                        datagram: true,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // ICMP "port unreachable" from a vehicle that went away surfaces here on some
            // systems; the socket itself is fine.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => continue,
            Err(e) => {
                tracing::warn!(error = %e, "MAVLink UDP port failed");
                return;
            }
        }
    }
}

async fn read_tcp(
    mut read: tokio::net::tcp::OwnedReadHalf,
    peer: SocketAddr,
    to_actor: mpsc::Sender<Inbound>,
) {
    let mut buf = vec![0u8; 16_384];
    loop {
        match read.read(&mut buf).await {
            Ok(0) => {
                tracing::warn!(%peer, "MAVLink TCP link closed by the vehicle");
                return;
            }
            Ok(n) => {
                if to_actor
                    .send(Inbound {
                        peer,
                        bytes: buf[..n].to_vec(),
                        datagram: false,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "MAVLink TCP link failed");
                return;
            }
        }
    }
}

enum Transport {
    Udp {
        socket: Arc<UdpSocket>,
        default_peer: Option<SocketAddr>,
    },
    Tcp {
        writer: tokio::net::tcp::OwnedWriteHalf,
        peer: SocketAddr,
    },
}

struct VehicleState {
    status: VehicleStatus,
    last_heartbeat: Instant,
}

enum Transfer {
    Upload {
        machine: Sender,
        started: Instant,
        reply: oneshot::Sender<Result<UploadReport, StationError>>,
    },
    Download {
        machine: Receiver,
        reply: oneshot::Sender<Result<Vec<MissionItem>, StationError>>,
    },
}

struct PendingCommand {
    command: Command,
    target: Target,
    attempts: u32,
    deadline: Instant,
    reply: oneshot::Sender<Result<(), StationError>>,
}

struct RejectionCount {
    count: u64,
    reported_at: Option<Instant>,
}

struct Actor {
    config: StationConfig,
    transport: Transport,
    encoder: Encoder,
    vehicles: HashMap<VehicleId, VehicleState>,
    /// Signing state per system id: one key, one replay window and one outgoing timestamp per
    /// vehicle, whatever address its frames come from.
    signers: HashMap<u8, Signer>,
    splitters: HashMap<SocketAddr, FrameSplitter>,
    transfers: HashMap<VehicleId, Transfer>,
    /// Keyed by vehicle and command number: one outstanding command of each kind per vehicle.
    commands: HashMap<(VehicleId, u16), PendingCommand>,
    rejections: HashMap<(SocketAddr, u32, Rejection), RejectionCount>,
    events: broadcast::Sender<Event>,
    tlog: Option<TlogWriter>,
    last_heartbeat_out: Option<Instant>,
    /// The task reading the port: stopped with the station, so the port is released at once.
    reader: tokio::task::JoinHandle<()>,
}

/// MAV_COMP_ID_AUTOPILOT1.
const AUTOPILOT_COMPONENT: u8 = 1;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn debug_name<T: std::fmt::Debug>(v: T, prefix: &str) -> String {
    let s = format!("{v:?}");
    s.strip_prefix(prefix).unwrap_or(&s).to_ascii_lowercase()
}

impl Actor {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut requests: mpsc::Receiver<Request>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                Some(packet) = inbound.recv() => self.on_bytes(packet).await,
                request = requests.recv() => match request {
                    Some(Request::Shutdown { done }) => {
                        self.stop();
                        let _ = done.send(());
                        return;
                    }
                    None => break,
                    Some(r) => self.on_request(r).await,
                },
                _ = tick.tick() => self.on_tick().await,
            }
        }
        self.stop();
    }

    fn stop(&mut self) {
        self.reader.abort();
        if let Some(t) = &mut self.tlog {
            let _ = t.flush();
        }
    }

    async fn send_to(&mut self, peer: SocketAddr, system: Option<u8>, msg: &MavMessage) {
        let signer = match system {
            Some(system) => signer(&self.config, &mut self.signers, system),
            None => None,
        };
        let bytes = self.encoder.encode(msg, signer);
        if let Some(t) = &mut self.tlog {
            if let Err(e) = t.write(&bytes) {
                tracing::warn!(error = %e, "tlog write failed");
            }
        }
        let result = match &mut self.transport {
            Transport::Udp { socket, .. } => socket.send_to(&bytes, peer).await.map(|_| ()),
            // A peer that stops reading must not stall the station (its timers and every
            // other vehicle): a write that cannot complete in half a second is dropped.
            Transport::Tcp { writer, .. } => {
                match tokio::time::timeout(Duration::from_millis(500), writer.write_all(&bytes))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the vehicle is not reading",
                    )),
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "MAVLink send failed");
        }
    }

    async fn send_steps(&mut self, vehicle: VehicleId, step_msgs: Vec<MavMessage>) {
        for m in step_msgs {
            self.send_to(vehicle.peer, Some(vehicle.system), &m).await;
        }
    }

    fn reject(&mut self, peer: SocketAddr, system: u32, reason: Rejection, now: Instant) {
        let entry = self
            .rejections
            .entry((peer, system, reason))
            .or_insert(RejectionCount {
                count: 0,
                reported_at: None,
            });
        entry.count += 1;
        if entry
            .reported_at
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            entry.reported_at = Some(now);
            tracing::warn!(%peer, system, ?reason, count = entry.count, "MAVLink frames rejected");
            let _ = self.events.send(Event::Rejected {
                peer,
                system,
                reason,
                count: entry.count,
            });
        }
        if let Ok(s) = u8::try_from(system) {
            if let Some(v) = self.vehicles.get_mut(&VehicleId { system: s, peer }) {
                v.status.rejected_frames += 1;
            }
        }
    }

    /// Whether a frame from `peer` may be listened to.
    fn admit(&mut self, peer: SocketAddr, frame: &Frame, now: Instant) -> bool {
        let Ok(system) = u8::try_from(frame.system_id()) else {
            return false;
        };
        if let Some(signer) = signer(&self.config, &mut self.signers, system) {
            if signer.verify(frame) {
                return true;
            }
            let reason = if frame.is_signed() {
                Rejection::BadSignature
            } else {
                Rejection::Unsigned
            };
            self.reject(peer, frame.system_id(), reason, now);
            return false;
        }
        if self.config.require_signing {
            self.reject(peer, frame.system_id(), Rejection::NoKey, now);
            return false;
        }
        true
    }

    async fn on_bytes(&mut self, packet: Inbound) {
        let now = Instant::now();
        let splitter = self.splitters.entry(packet.peer).or_default();
        let frames = splitter.push(&packet.bytes);
        if packet.datagram {
            splitter.end_of_datagram();
        }
        for frame in frames {
            if let Some(t) = &mut self.tlog {
                let _ = t.write(frame.bytes());
            }
            if !self.admit(packet.peer, &frame, now) {
                continue;
            }
            let msg = match frame.parse() {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(peer = %packet.peer, message_id = frame.message_id(), error = %e, "unreadable MAVLink message");
                    continue;
                }
            };
            let Ok(system) = u8::try_from(frame.system_id()) else {
                continue;
            };
            let id = VehicleId {
                system,
                peer: packet.peer,
            };
            self.on_message(id, frame.component_id(), &msg, now).await;
        }
    }

    async fn on_message(&mut self, id: VehicleId, component: u8, msg: &MavMessage, now: Instant) {
        if let MavMessage::HEARTBEAT(hb) = msg {
            self.on_heartbeat(id, component, hb, now);
        }
        let signed = self.signers.contains_key(&id.system);
        let Some(vehicle) = self.vehicles.get_mut(&id) else {
            return;
        };
        vehicle.status.frames += 1;
        vehicle.status.signed = signed;
        let t = &mut vehicle.status.telemetry;
        match msg {
            MavMessage::GLOBAL_POSITION_INT(p) => {
                t.at_ms = now_ms();
                t.lat = f64::from(p.lat) / 1e7;
                t.lon = f64::from(p.lon) / 1e7;
                t.alt_m = f64::from(p.alt) / 1000.0;
                t.rel_alt_m = f64::from(p.relative_alt) / 1000.0;
                t.ground_speed_mps = f64::from(p.vx).hypot(f64::from(p.vy)) / 100.0;
                t.climb_mps = -f64::from(p.vz) / 100.0;
                if p.hdg != u16::MAX {
                    t.heading_deg = f64::from(p.hdg) / 100.0;
                }
                let telemetry = t.clone();
                let _ = self.events.send(Event::Telemetry {
                    vehicle: id,
                    telemetry,
                });
            }
            MavMessage::ATTITUDE(a) => {
                t.roll_deg = f64::from(a.roll).to_degrees();
                t.pitch_deg = f64::from(a.pitch).to_degrees();
                t.yaw_deg = f64::from(a.yaw).to_degrees().rem_euclid(360.0);
            }
            MavMessage::SYS_STATUS(s) => t.battery_pct = u8::try_from(s.battery_remaining).ok(),
            MavMessage::MISSION_CURRENT(m) => t.mission_seq = Some(m.seq),
            MavMessage::MISSION_ITEM_REACHED(r) => {
                let _ = self.events.send(Event::MissionItemReached {
                    vehicle: id,
                    seq: r.seq,
                });
            }
            MavMessage::STATUSTEXT(s) => {
                let text = s
                    .text
                    .to_str()
                    .unwrap_or("")
                    .trim_end_matches('\0')
                    .to_string();
                let severity = debug_name(s.severity, "MAV_SEVERITY_");
                let _ = self.events.send(Event::StatusText {
                    vehicle: id,
                    severity,
                    text,
                });
            }
            MavMessage::COMMAND_ACK(a)
                if a.target_system == 0 || a.target_system == self.config.system_id =>
            {
                self.on_command_ack(id, a.command, a.result)
            }
            _ => {}
        }
        // Mission and command traffic addressed to another ground station on the same link
        // (QGroundControl behind a router, say) must not drive ours.
        if msg
            .target_system_id()
            .is_some_and(|t| t != 0 && t != self.config.system_id)
        {
            return;
        }
        self.drive_transfer(id, Some(msg), now).await;
    }

    fn on_heartbeat(&mut self, id: VehicleId, component: u8, hb: &HEARTBEAT_DATA, now: Instant) {
        // Other ground stations and companion computers are not vehicles.
        if hb.autopilot == MavAutopilot::MAV_AUTOPILOT_INVALID
            || hb.mavtype == MavType::MAV_TYPE_GCS
        {
            return;
        }
        let armed = hb
            .base_mode
            .contains(MavModeFlag::MAV_MODE_FLAG_SAFETY_ARMED);
        match self.vehicles.get_mut(&id) {
            // A camera, gimbal or other component of the same system: not the autopilot, so
            // neither its armed state nor its liveness is the vehicle's. The autopilot's usual
            // component (1) takes over from whichever component was heard first.
            Some(v) if component != v.status.component && component != AUTOPILOT_COMPONENT => {}
            Some(v) => {
                v.status.component = component;
                if v.status.link_lost {
                    v.status.link_lost = false;
                    let outage_ms = now.duration_since(v.last_heartbeat).as_millis() as u64;
                    tracing::info!(vehicle = %id, outage_ms, "vehicle link regained");
                    let _ = self.events.send(Event::CommRegained {
                        vehicle: id,
                        outage_ms,
                    });
                }
                v.last_heartbeat = now;
                v.status.telemetry.armed = armed;
                v.status.telemetry.custom_mode = hb.custom_mode;
            }
            None => {
                let autopilot = debug_name(hb.autopilot, "MAV_AUTOPILOT_");
                let vehicle_type = debug_name(hb.mavtype, "MAV_TYPE_");
                tracing::info!(vehicle = %id, %autopilot, %vehicle_type, "vehicle discovered");
                let status = VehicleStatus {
                    id,
                    component,
                    autopilot: autopilot.clone(),
                    vehicle_type: vehicle_type.clone(),
                    ardupilot: hb.autopilot == MavAutopilot::MAV_AUTOPILOT_ARDUPILOTMEGA,
                    link_lost: false,
                    signed: false,
                    frames: 0,
                    rejected_frames: 0,
                    telemetry: Telemetry {
                        armed,
                        custom_mode: hb.custom_mode,
                        ..Telemetry::default()
                    },
                };
                self.vehicles.insert(
                    id,
                    VehicleState {
                        status,
                        last_heartbeat: now,
                    },
                );
                let _ = self.events.send(Event::Discovered {
                    vehicle: id,
                    autopilot,
                    vehicle_type,
                });
            }
        }
    }

    fn on_command_ack(&mut self, id: VehicleId, command: MavCmd, result: MavResult) {
        if result == MavResult::MAV_RESULT_IN_PROGRESS {
            return;
        }
        if let Some(p) = self.commands.remove(&(id, command as u16)) {
            let outcome = if result == MavResult::MAV_RESULT_ACCEPTED {
                Ok(())
            } else {
                Err(StationError::CommandRefused {
                    command: p.command,
                    result,
                })
            };
            let _ = p.reply.send(outcome);
        }
    }

    /// Feeds a message (or, with `None`, the clock) to the vehicle's transfer, sends what it
    /// answers and completes it when done.
    async fn drive_transfer(&mut self, id: VehicleId, msg: Option<&MavMessage>, now: Instant) {
        let Some(transfer) = self.transfers.get_mut(&id) else {
            return;
        };
        let step: Step = match (transfer, msg) {
            (Transfer::Upload { machine, .. }, Some(m)) => machine.on_message(m, now),
            (Transfer::Upload { machine, .. }, None) => machine.on_timeout(now),
            (Transfer::Download { machine, .. }, Some(m)) => machine.on_message(m, now),
            (Transfer::Download { machine, .. }, None) => machine.on_timeout(now),
        };
        self.send_steps(id, step.send).await;
        let Some(outcome) = step.done else { return };
        match self.transfers.remove(&id) {
            Some(Transfer::Upload {
                machine,
                started,
                reply,
            }) => {
                let report = outcome.map(|items| UploadReport {
                    kind: machine.kind(),
                    items: items.len(),
                    seconds: now.duration_since(started).as_secs_f64(),
                });
                match &report {
                    Ok(r) => {
                        tracing::info!(vehicle = %id, kind = %r.kind, items = r.items, seconds = r.seconds, "upload accepted")
                    }
                    Err(e) => tracing::warn!(vehicle = %id, error = %e, "upload failed"),
                }
                let _ = reply.send(report.map_err(StationError::from));
            }
            Some(Transfer::Download { reply, .. }) => {
                let _ = reply.send(outcome.map_err(StationError::from));
            }
            None => {}
        }
    }

    fn target(&self, id: VehicleId) -> Option<Target> {
        self.vehicles.get(&id).map(|v| Target {
            system: id.system,
            component: v.status.component,
        })
    }

    async fn on_request(&mut self, request: Request) {
        let now = Instant::now();
        match request {
            Request::Vehicles { reply } => {
                let mut list: Vec<VehicleStatus> =
                    self.vehicles.values().map(|v| v.status.clone()).collect();
                list.sort_by_key(|v| (v.id.system, v.id.peer));
                let _ = reply.send(list);
            }
            Request::Upload {
                vehicle,
                kind,
                items,
                reply,
            } => {
                let Some(target) = self.target(vehicle) else {
                    let _ = reply.send(Err(StationError::UnknownVehicle(vehicle)));
                    return;
                };
                if let Some(busy) = self.transfers.get(&vehicle) {
                    let _ = reply.send(Err(StationError::Busy(transfer_kind(busy))));
                    return;
                }
                match Sender::start(kind, &items, target, self.config.timing, now) {
                    Ok((machine, step)) => {
                        self.transfers.insert(
                            vehicle,
                            Transfer::Upload {
                                machine,
                                started: now,
                                reply,
                            },
                        );
                        self.send_steps(vehicle, step.send).await;
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Request::Download {
                vehicle,
                kind,
                reply,
            } => {
                let Some(target) = self.target(vehicle) else {
                    let _ = reply.send(Err(StationError::UnknownVehicle(vehicle)));
                    return;
                };
                if let Some(busy) = self.transfers.get(&vehicle) {
                    let _ = reply.send(Err(StationError::Busy(transfer_kind(busy))));
                    return;
                }
                let (machine, step) = Receiver::download(kind, target, self.config.timing, now);
                self.transfers
                    .insert(vehicle, Transfer::Download { machine, reply });
                self.send_steps(vehicle, step.send).await;
            }
            Request::Command {
                vehicle,
                command,
                reply,
            } => {
                let Some(target) = self.target(vehicle) else {
                    let _ = reply.send(Err(StationError::UnknownVehicle(vehicle)));
                    return;
                };
                let wire = command.to_wire(target, 0);
                let key = (vehicle, wire.command as u16);
                // One outstanding command per number and vehicle (the protocol matches the
                // acknowledgement by command number alone: arm and disarm share one).
                if let Some(pending) = self.commands.get(&key) {
                    let _ = reply.send(Err(StationError::CommandPending {
                        command,
                        pending: pending.command,
                    }));
                    return;
                }
                self.commands.insert(
                    key,
                    PendingCommand {
                        command,
                        target,
                        attempts: 1,
                        deadline: now + self.config.timing.reply_timeout,
                        reply,
                    },
                );
                self.send_to(
                    vehicle.peer,
                    Some(vehicle.system),
                    &MavMessage::COMMAND_LONG(wire),
                )
                .await;
            }
            Request::Shutdown { .. } => {}
        }
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        self.heartbeat_out(now).await;
        self.monitor_links(now);
        let ids: Vec<VehicleId> = self.transfers.keys().copied().collect();
        for id in ids {
            self.drive_transfer(id, None, now).await;
        }
        self.retry_commands(now).await;
        if let Some(t) = &mut self.tlog {
            let _ = t.flush();
        }
    }

    async fn heartbeat_out(&mut self, now: Instant) {
        if self
            .last_heartbeat_out
            .is_some_and(|t| now.duration_since(t) < self.config.heartbeat_interval)
        {
            return;
        }
        self.last_heartbeat_out = Some(now);
        let hb = MavMessage::HEARTBEAT(HEARTBEAT_DATA {
            custom_mode: 0,
            mavtype: MavType::MAV_TYPE_GCS,
            autopilot: MavAutopilot::MAV_AUTOPILOT_INVALID,
            base_mode: MavModeFlag::empty(),
            system_status: MavState::MAV_STATE_ACTIVE,
            mavlink_version: 3,
        });
        // Each vehicle gets its own copy (signed with its key); a `udpout`/`tcp` link also
        // announces us before any vehicle is known, so the vehicle learns where we are.
        let mut targets: Vec<(SocketAddr, Option<u8>)> = self
            .vehicles
            .keys()
            .map(|v| (v.peer, Some(v.system)))
            .collect();
        let default_peer = match &self.transport {
            Transport::Udp { default_peer, .. } => *default_peer,
            Transport::Tcp { peer, .. } => Some(*peer),
        };
        if let Some(p) = default_peer {
            if !targets.iter().any(|(peer, _)| *peer == p) {
                let system = self.config.keys.keys().next().copied();
                targets.push((p, system));
            }
        }
        for (peer, system) in targets {
            self.send_to(peer, system, &hb).await;
        }
    }

    fn monitor_links(&mut self, now: Instant) {
        for (id, v) in &mut self.vehicles {
            let silent = now.duration_since(v.last_heartbeat);
            if !v.status.link_lost && silent > self.config.comm_lost_after {
                v.status.link_lost = true;
                let silent_ms = silent.as_millis() as u64;
                tracing::warn!(vehicle = %id, silent_ms, "vehicle link lost");
                let _ = self.events.send(Event::CommLost {
                    vehicle: *id,
                    silent_ms,
                });
            }
        }
    }

    async fn retry_commands(&mut self, now: Instant) {
        let due: Vec<(VehicleId, u16)> = self
            .commands
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let Some(mut p) = self.commands.remove(&key) else {
                continue;
            };
            if p.attempts > self.config.timing.retries {
                let _ = p.reply.send(Err(StationError::CommandTimeout {
                    command: p.command,
                    attempts: p.attempts,
                }));
                continue;
            }
            // The confirmation field counts retransmissions, so the vehicle can tell a repeat
            // from a new command.
            let wire = p.command.to_wire(p.target, p.attempts.min(255) as u8);
            p.attempts += 1;
            p.deadline = now + self.config.timing.reply_timeout;
            self.commands.insert(key, p);
            self.send_to(
                key.0.peer,
                Some(key.0.system),
                &MavMessage::COMMAND_LONG(wire),
            )
            .await;
        }
    }
}

/// The signing state for a vehicle with a key (created on first use, in either direction).
/// A vehicle with a key must sign: unsigned frames claiming its system id are refused whether
/// or not `require_signing` is set (that setting is about vehicles without a key).
fn signer<'a>(
    config: &StationConfig,
    signers: &'a mut HashMap<u8, Signer>,
    system: u8,
) -> Option<&'a Signer> {
    let key = config.keys.get(&system)?;
    Some(
        signers
            .entry(system)
            .or_insert_with(|| Signer::new(key, 0, false)),
    )
}

fn transfer_kind(t: &Transfer) -> ListKind {
    match t {
        Transfer::Upload { machine, .. } => machine.kind(),
        Transfer::Download { machine, .. } => machine.kind(),
    }
}
