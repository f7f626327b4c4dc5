//! `mizugiwa drone upload|watch|command|sim`: the ground station and the vehicle simulator.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use mizugiwa_drone::gcs::codec::SigningKey;
use mizugiwa_drone::gcs::items;
use mizugiwa_drone::gcs::mission::{self, Convention, ListKind, MissionItem};
use mizugiwa_drone::gcs::station::{
    Command, Event, LinkSpec, Station, StationConfig, VehicleStatus,
};
use mizugiwa_drone::plan;
use mizugiwa_drone::sim::{self, SimConfig};

#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    /// The MAVLink port: `udpin:HOST:PORT` (vehicles send to us), `udpout:HOST:PORT` (we send
    /// to a vehicle) or `tcp:HOST:PORT` (connect to a vehicle).
    #[arg(long, default_value = "udpin:0.0.0.0:14550")]
    link: LinkSpec,
    /// MAVLink 2 signing key, `HEX` (64 hex digits) for every vehicle or `SYSID:HEX` for one;
    /// repeat for several vehicles.
    #[arg(long = "key", value_parser = parse_key)]
    keys: Vec<(Option<u8>, SigningKey)>,
    /// Listen only to vehicles with a key, and only to their correctly signed frames.
    #[arg(long)]
    require_signing: bool,
    /// Report a vehicle lost after this many seconds without a heartbeat.
    #[arg(long, default_value_t = 3.5)]
    comm_lost_secs: f64,
    /// Log every frame in and out to this `.tlog` file (pymavlink and QGroundControl read it).
    #[arg(long)]
    tlog: Option<PathBuf>,
}

fn parse_key(s: &str) -> Result<(Option<u8>, SigningKey), String> {
    match s.split_once(':') {
        Some((sys, hex)) => {
            let sys: u8 = sys
                .parse()
                .map_err(|_| format!("{sys:?} is not a system id (1-255)"))?;
            Ok((Some(sys), hex.parse()?))
        }
        None => Ok((None, s.parse()?)),
    }
}

impl LinkArgs {
    fn config(&self) -> StationConfig {
        let mut c = StationConfig::new(self.link);
        c.comm_lost_after = Duration::try_from_secs_f64(self.comm_lost_secs.max(0.1))
            .unwrap_or(Duration::from_millis(3500));
        c.require_signing = self.require_signing;
        c.tlog = self.tlog.clone();
        let mut keys = HashMap::new();
        for (sys, key) in &self.keys {
            match sys {
                Some(s) => {
                    keys.insert(*s, key.clone());
                }
                None => {
                    for s in 1..=254u8 {
                        keys.entry(s).or_insert_with(|| key.clone());
                    }
                }
            }
        }
        c.keys = keys;
        c
    }
}

#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Upload a `.plan` file (mission, fence, rally) to a vehicle and read it back to verify.
    ///
    /// The plan's legs are checked against its fence before anything is sent. ArduPilot
    /// vehicles get home as mission item 0. Exit status 1 unless every list was accepted and
    /// read back identical.
    Upload {
        plan: PathBuf,
        #[command(flatten)]
        link: LinkArgs,
        /// The vehicle's system id (default: the first vehicle heard).
        #[arg(long)]
        system: Option<u8>,
        /// How long to wait for a vehicle.
        #[arg(long, default_value_t = 30.0)]
        wait_secs: f64,
        /// Do not read the lists back after uploading.
        #[arg(long)]
        no_verify: bool,
    },
    /// Watch every vehicle on a port: discoveries, positions (one line per vehicle per
    /// second), mission progress, link loss, rejected frames.
    Watch {
        #[command(flatten)]
        link: LinkArgs,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Stop after this many seconds (default: until interrupted).
        #[arg(long)]
        duration_secs: Option<f64>,
    },
    /// Send a command to a vehicle and wait for it to be accepted.
    Command {
        #[arg(value_enum)]
        action: Action,
        #[command(flatten)]
        link: LinkArgs,
        #[arg(long)]
        system: Option<u8>,
        /// Take-off altitude above home, metres.
        #[arg(long, default_value_t = 30.0)]
        alt: f32,
        #[arg(long, default_value_t = 30.0)]
        wait_secs: f64,
    },
    /// Simulated multicopters that speak MAVLink 2 to a ground station, for demos and tests.
    ///
    /// Vehicles get system ids 1..=COUNT and homes spaced along a line east of HOME. They
    /// accept missions and fly them when told to (`mizugiwa drone command arm`, then
    /// `mission-start`).
    Sim {
        /// Where the ground station listens.
        #[arg(long, default_value = "127.0.0.1:14550")]
        gcs: SocketAddr,
        #[arg(long, default_value_t = 1)]
        count: u8,
        /// First vehicle's home, `LAT,LON` (default: Izuhara, Tsushima).
        #[arg(long, value_parser = super::drone::parse_lat_lon, default_value = "34.2015,129.2875")]
        home: (f64, f64),
        /// Distance between neighbouring homes, metres.
        #[arg(long, default_value_t = 200.0)]
        spacing_m: f64,
        /// Position and attitude messages per second, each.
        #[arg(long, default_value_t = 5.0)]
        telemetry_hz: f64,
        #[arg(long, default_value_t = 15.0)]
        cruise_mps: f64,
        /// Announce as ArduPilot (mission item 0 is home).
        #[arg(long)]
        ardupilot: bool,
        /// Sign with this key (64 hex digits) and require signed frames.
        #[arg(long)]
        key: Option<SigningKey>,
        /// Stop after this many seconds (default: until interrupted).
        #[arg(long)]
        duration_secs: Option<f64>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Action {
    Arm,
    Disarm,
    Takeoff,
    MissionStart,
    Rtl,
    Land,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub fn run(cmd: LinkCommand) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        match cmd {
            LinkCommand::Upload {
                plan,
                link,
                system,
                wait_secs,
                no_verify,
            } => upload(plan, link, system, wait_secs, !no_verify).await,
            LinkCommand::Watch {
                link,
                json,
                duration_secs,
            } => watch(link, json, duration_secs).await,
            LinkCommand::Command {
                action,
                link,
                system,
                alt,
                wait_secs,
            } => {
                let station = Station::start(link.config())
                    .await
                    .context("opening the MAVLink port")?;
                let v = find_vehicle(&station, system, wait_secs).await?;
                let command = match action {
                    Action::Arm => Command::Arm,
                    Action::Disarm => Command::Disarm,
                    Action::Takeoff => Command::Takeoff { alt_m: alt },
                    Action::MissionStart => Command::MissionStart,
                    Action::Rtl => Command::ReturnToLaunch,
                    Action::Land => Command::Land,
                };
                station.command(v.id, command).await?;
                println!("{command:?}: accepted by {}", v.id);
                station.shutdown().await;
                Ok(())
            }
            LinkCommand::Sim {
                gcs,
                count,
                home,
                spacing_m,
                telemetry_hz,
                cruise_mps,
                ardupilot,
                key,
                duration_secs,
            } => {
                simulate(
                    gcs,
                    count,
                    home,
                    spacing_m,
                    telemetry_hz,
                    cruise_mps,
                    ardupilot,
                    key,
                    duration_secs,
                )
                .await
            }
        }
    })
}

async fn find_vehicle(
    station: &Station,
    system: Option<u8>,
    wait_secs: f64,
) -> anyhow::Result<VehicleStatus> {
    let deadline = Instant::now()
        + Duration::try_from_secs_f64(wait_secs)
            .map_err(|_| anyhow::anyhow!("--wait-secs {wait_secs} is not a duration"))?;
    eprintln!("waiting for a vehicle on {} ...", station.local_addr());
    loop {
        let found = station
            .vehicles()
            .await?
            .into_iter()
            .find(|v| !v.link_lost && system.is_none_or(|s| v.id.system == s));
        if let Some(v) = found {
            eprintln!("vehicle {} ({}, {})", v.id, v.autopilot, v.vehicle_type);
            return Ok(v);
        }
        if Instant::now() >= deadline {
            match system {
                Some(s) => bail!("no vehicle with system id {s} within {wait_secs} s"),
                None => bail!("no vehicle within {wait_secs} s"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn upload(
    path: PathBuf,
    link: LinkArgs,
    system: Option<u8>,
    wait_secs: f64,
    verify: bool,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let p = plan::from_qgc_plan(&v)?;
    plan::check_fence(&p.home, &p.waypoints, &p.fence)
        .context("the plan breaks its own fence; nothing uploaded")?;

    let station = Station::start(link.config())
        .await
        .context("opening the MAVLink port")?;
    let vehicle = find_vehicle(&station, system, wait_secs).await?;
    let convention = if vehicle.ardupilot {
        Convention::Ardupilot
    } else {
        Convention::Standard
    };
    let mission_items = items::mission_items(&p);
    let lists: [(ListKind, Vec<MissionItem>); 3] = [
        (
            ListKind::Mission,
            mission::for_upload(&mission_items, items::home_item(&p.home), convention),
        ),
        (ListKind::Fence, items::fence_items(&p.fence)),
        (ListKind::Rally, items::rally_items(&p.rally)),
    ];
    let mut failed = false;
    for (kind, list) in lists {
        match station.upload(vehicle.id, kind, list.clone()).await {
            Ok(r) => {
                let check = if !verify {
                    String::new()
                } else {
                    // ArduPilot keeps its own home as mission item 0: compare the mission proper.
                    let mission_proper = |l: &[MissionItem]| match kind {
                        ListKind::Mission => mission::from_download(l, convention),
                        _ => l.to_vec(),
                    };
                    match station.download(vehicle.id, kind).await {
                        Ok(back)
                            if mission::same_items(
                                &mission_proper(&list),
                                &mission_proper(&back),
                            ) =>
                        {
                            ", read back identical".to_string()
                        }
                        Ok(back) => {
                            failed = true;
                            format!(", READ BACK DIFFERENT ({} items)", back.len())
                        }
                        Err(e) => {
                            failed = true;
                            format!(", read back failed: {e}")
                        }
                    }
                };
                println!(
                    "{kind}: {} items accepted in {:.0} ms{check}",
                    r.items,
                    r.seconds * 1000.0
                );
            }
            Err(e) => {
                failed = true;
                println!("{kind}: FAILED: {e}");
            }
        }
    }
    station.shutdown().await;
    if failed {
        bail!("the upload did not complete; the vehicle may hold an older or empty list");
    }
    Ok(())
}

async fn watch(link: LinkArgs, json: bool, duration_secs: Option<f64>) -> anyhow::Result<()> {
    let station = Station::start(link.config())
        .await
        .context("opening the MAVLink port")?;
    eprintln!(
        "ground station on {} (Ctrl-C to stop)",
        station.local_addr()
    );
    let mut events = station.subscribe();
    let mut last_line: HashMap<(u8, SocketAddr), Instant> = HashMap::new();
    let stop = async {
        match duration_secs {
            Some(s) => {
                tokio::time::sleep(Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)).await
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    loop {
        let event = tokio::select! {
            _ = &mut stop => break,
            e = events.recv() => match e {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("(skipped {n} events)");
                    continue;
                }
                Err(_) => break,
            },
        };
        if let Event::Telemetry { vehicle, .. } = &event {
            let now = Instant::now();
            let key = (vehicle.system, vehicle.peer);
            if last_line
                .get(&key)
                .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1))
            {
                continue;
            }
            last_line.insert(key, now);
        }
        if json {
            println!("{}", serde_json::to_string(&event)?);
            continue;
        }
        match event {
            Event::Discovered { vehicle, autopilot, vehicle_type } => println!("{vehicle}: discovered ({autopilot}, {vehicle_type})"),
            Event::Telemetry { vehicle, telemetry: t } => println!(
                "{vehicle}: {:.6} {:.6} {:.0} m above home, {:.1} m/s heading {:.0}°, battery {}, {}, item {}",
                t.lat,
                t.lon,
                t.rel_alt_m,
                t.ground_speed_mps,
                t.heading_deg,
                t.battery_pct.map(|b| format!("{b}%")).unwrap_or_else(|| "?".into()),
                if t.armed { "armed" } else { "disarmed" },
                t.mission_seq.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            ),
            Event::CommLost { vehicle, silent_ms } => println!("{vehicle}: LINK LOST (silent {:.1} s)", silent_ms as f64 / 1000.0),
            Event::CommRegained { vehicle, outage_ms } => println!("{vehicle}: link back after {:.1} s", outage_ms as f64 / 1000.0),
            Event::Rejected { peer, system, reason, count } => println!("{peer} system {system}: {count} frames rejected ({reason:?})"),
            Event::MissionItemReached { vehicle, seq } => println!("{vehicle}: reached mission item {seq}"),
            Event::StatusText { vehicle, severity, text } => println!("{vehicle}: [{severity}] {text}"),
        }
    }
    station.shutdown().await;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn simulate(
    gcs: SocketAddr,
    count: u8,
    home: (f64, f64),
    spacing_m: f64,
    telemetry_hz: f64,
    cruise_mps: f64,
    ardupilot: bool,
    key: Option<SigningKey>,
    duration_secs: Option<f64>,
) -> anyhow::Result<()> {
    if count == 0 || count > 250 {
        bail!("--count must be 1 to 250 (system ids above are kept for ground stations)");
    }
    let mut vehicles = Vec::new();
    for i in 0..count {
        let east = f64::from(i) * spacing_m;
        let lon = home.1 + (east / (6_371_008.8 * home.0.to_radians().cos())).to_degrees();
        let mut c = SimConfig::new(i + 1, gcs, home.0, lon);
        c.telemetry_hz = telemetry_hz;
        c.cruise_mps = cruise_mps;
        if ardupilot {
            c.convention = Convention::Ardupilot;
        }
        c.require_signing = key.is_some();
        c.key = key.clone();
        let v = sim::spawn(c)
            .await
            .context("opening a vehicle's UDP port")?;
        eprintln!(
            "vehicle {} on {} → ground station {gcs}",
            i + 1,
            v.local_addr
        );
        vehicles.push(v);
    }
    let started = Instant::now();
    let mut report = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = report.tick() => {
                for v in &vehicles {
                    let s = v.state();
                    eprintln!(
                        "vehicle {}: {:?} {:.6} {:.6} {:.0} m, item {}/{}, battery {:.0}%",
                        s.system_id, s.mode, s.lat, s.lon, s.rel_alt_m, s.mission_seq, s.mission.len(), s.battery_pct
                    );
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
        if duration_secs.is_some_and(|d| started.elapsed().as_secs_f64() >= d) {
            break;
        }
    }
    for v in &vehicles {
        v.stop();
    }
    Ok(())
}
