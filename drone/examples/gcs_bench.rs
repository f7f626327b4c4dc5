//! Ground-station benchmark (issue 5), results in `drone/BENCHMARKS.md`:
//!
//! 1. Telemetry ingest: 100 simulated vehicles at 50 messages/s each (GLOBAL_POSITION_INT and
//!    ATTITUDE at 25 Hz, plus heartbeat, SYS_STATUS and MISSION_CURRENT at 1 Hz) on one UDP
//!    port; the CPU share of one core the ground station uses (its process alone: the vehicles
//!    run in a child process) and whether every position reached a subscriber.
//! 2. Mission upload time against the same MAVSDK vehicle (MAVSDK's C++ core from PyPI, acting
//!    as the autopilot): ours, pymavlink's and MAVProxy's, in the same run.
//!
//! ```text
//! cargo run --release -p mizugiwa-drone --example gcs_bench -- [--out drone/BENCHMARKS.md]
//! ```
//! The upload comparison needs the interop peers (`make deps` installs them into `.venv`;
//! `MZ_PYTHON` points at that Python). Without them it is skipped and says so.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mizugiwa_drone::gcs::mission::{ListKind, MissionItem};
use mizugiwa_drone::gcs::station::{Event, LinkSpec, Station, StationConfig};
use mizugiwa_drone::sim::{self, SimConfig};

const VEHICLES: u8 = 100;
const HZ: f64 = 25.0;
const SECONDS: u64 = 30;

/// Process CPU seconds (user + system) from /proc/self/stat.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of the file (utime, stime) are 11 and 12 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cpu}, {cores} cores")
}

/// The child process: the simulated fleet.
async fn run_fleet(gcs: SocketAddr, secs: u64) {
    let mut fleet = Vec::new();
    for i in 0..VEHICLES {
        let mut c = SimConfig::new(i + 1, gcs, 34.2 + f64::from(i) * 0.001, 129.28);
        c.telemetry_hz = HZ;
        fleet.push(sim::spawn(c).await.expect("vehicle"));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let sent: u64 = fleet.iter().map(|v| v.state().frames_sent).sum();
    println!("{sent}");
}

struct Ingest {
    seconds: f64,
    cpu: f64,
    positions: u64,
    vehicles: usize,
    frames_sent: u64,
}

async fn ingest() -> Ingest {
    let station = Station::start(StationConfig::new(LinkSpec::UdpIn(
        "127.0.0.1:0".parse().unwrap(),
    )))
    .await
    .unwrap();
    let mut events = station.subscribe();
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args([
            "--fleet",
            &station.local_addr().to_string(),
            &(SECONDS + 5).to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("fleet process");
    // Warm-up: all vehicles heard.
    let warm = Instant::now();
    loop {
        if station.vehicles().await.unwrap().len() == usize::from(VEHICLES)
            || warm.elapsed() > Duration::from_secs(20)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while events.try_recv().is_ok() {}
    let (cpu0, t0) = (cpu_secs(), Instant::now());
    let mut positions = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(SECONDS);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(Event::Telemetry { .. })) => positions += 1,
            Ok(Ok(_)) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                eprintln!("subscriber lagged by {n}")
            }
            Ok(Err(_)) | Err(_) => break,
        }
    }
    let (cpu, seconds) = (cpu_secs() - cpu0, t0.elapsed().as_secs_f64());
    let vehicles = station.vehicles().await.unwrap().len();
    let out = child.wait_with_output().expect("fleet");
    let frames_sent = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    station.shutdown().await;
    Ingest {
        seconds,
        cpu,
        positions,
        vehicles,
        frames_sent,
    }
}

fn mission(n: u16) -> Vec<MissionItem> {
    (0..n)
        .map(|seq| MissionItem {
            seq,
            frame: 6,
            command: if seq == 0 { 22 } else { 16 },
            current: 0,
            autocontinue: 1,
            param1: 0.0,
            param2: 0.0,
            param3: 0.0,
            param4: 0.0,
            x: 342_000_000 + i32::from(seq) * 500,
            y: 1_292_800_000 + i32::from(seq % 7) * 900,
            z: 60.0,
        })
        .collect()
}

struct Uploads {
    ours: Vec<f64>,
    pymavlink: Result<Vec<f64>, String>,
    mavproxy: Result<Vec<f64>, String>,
}

fn python() -> Option<String> {
    let p = std::env::var("MZ_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python").into());
    std::path::Path::new(&p).exists().then_some(p)
}

fn peers_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

const ITEMS: u16 = 50;
const REPEATS: usize = 10;

/// Times `REPEATS` uploads of the same mission to a fresh MAVSDK vehicle with each ground
/// station in turn.
async fn uploads(python: &str) -> Result<Uploads, String> {
    let items = mission(ITEMS);
    // Ours.
    let port = free_udp_port();
    let mut vehicle = crate::peers::mavsdk_vehicle(python, port)?;
    let station = Station::start(StationConfig::new(LinkSpec::UdpIn(
        format!("127.0.0.1:{port}").parse().unwrap(),
    )))
    .await
    .map_err(|e| e.to_string())?;
    let v = station
        .wait_for_vehicle(Duration::from_secs(20))
        .await
        .map_err(|e| e.to_string())?;
    let mut ours = Vec::new();
    for _ in 0..REPEATS {
        let t = Instant::now();
        station
            .upload(v.id, ListKind::Mission, items.clone())
            .await
            .map_err(|e| e.to_string())?;
        ours.push(t.elapsed().as_secs_f64());
    }
    station.shutdown().await;
    let _ = vehicle.kill();
    let _ = vehicle.wait();

    let file = std::env::temp_dir().join(format!("gcs-bench-mission-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_string(&items).unwrap()).map_err(|e| e.to_string())?;
    let pymavlink = crate::peers::pymavlink_uploads(python, &file, REPEATS);
    let mavproxy = crate::peers::mavproxy_uploads(python, &file, REPEATS);
    let _ = std::fs::remove_file(&file);
    Ok(Uploads {
        ours,
        pymavlink,
        mavproxy,
    })
}

mod peers {
    //! The Python peers in `drone/tests/peers` (see its README for their JSON lines).
    use super::*;

    pub fn mavsdk_vehicle(python: &str, port: u16) -> Result<std::process::Child, String> {
        Command::new(python)
            .arg(peers_dir().join("mavsdk_vehicle.py"))
            .args(["--gcs", &format!("udp://127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the MAVSDK vehicle: {e}"))
    }

    fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(out)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn pymavlink_uploads(
        python: &str,
        file: &std::path::Path,
        repeats: usize,
    ) -> Result<Vec<f64>, String> {
        timed_uploads(
            python,
            "pymavlink_gcs.py",
            "--upload-mission",
            file,
            repeats,
        )
    }

    pub fn mavproxy_uploads(
        python: &str,
        file: &std::path::Path,
        repeats: usize,
    ) -> Result<Vec<f64>, String> {
        if !peers_dir().join("mavproxy_upload.py").exists() {
            return Err("no MAVProxy driver (drone/tests/peers/mavproxy_upload.py)".into());
        }
        timed_uploads(python, "mavproxy_upload.py", "--mission", file, repeats)
    }

    /// Runs a ground-station `script` against a fresh MAVSDK vehicle, uploading `file`
    /// `repeats` times, and returns the time of each accepted upload.
    fn timed_uploads(
        python: &str,
        script: &str,
        file_flag: &str,
        file: &std::path::Path,
        repeats: usize,
    ) -> Result<Vec<f64>, String> {
        let port = free_udp_port();
        let mut vehicle = mavsdk_vehicle(python, port)?;
        let out = Command::new(python)
            .arg(peers_dir().join(script))
            .args(["--link", &format!("udpin:127.0.0.1:{port}"), file_flag])
            .arg(file)
            .args(["--repeat", &repeats.to_string()])
            .output()
            .map_err(|e| e.to_string());
        let _ = vehicle.kill();
        let _ = vehicle.wait();
        let out = out?;
        let times: Vec<f64> = json_lines(&out.stdout)
            .iter()
            .filter(|e| e["event"] == "uploaded" && e["result"] == "ACCEPTED")
            .filter_map(|e| e["seconds"].as_f64())
            .collect();
        if times.len() == repeats {
            Ok(times)
        } else {
            Err(format!(
                "{script}: {} of {repeats} uploads accepted; stderr: {}",
                times.len(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ))
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if args.get(1).map(String::as_str) == Some("--fleet") {
        let gcs: SocketAddr = args[2].parse().unwrap();
        let secs: u64 = args[3].parse().unwrap();
        rt.block_on(run_fleet(gcs, secs));
        return;
    }
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let started = time_now();
    eprintln!(
        "telemetry ingest: {VEHICLES} vehicles × {} msg/s for {SECONDS} s ...",
        HZ * 2.0
    );
    let ingest = rt.block_on(ingest());
    let offered = f64::from(VEHICLES) * HZ * 2.0;
    let positions_expected = f64::from(VEHICLES) * HZ * ingest.seconds;
    let uploads = match python() {
        Some(p) => {
            eprintln!("mission uploads against MAVSDK: ours, pymavlink, MAVProxy ...");
            rt.block_on(uploads(&p))
        }
        None => Err("no Python with the interop peers (run `make deps`)".into()),
    };

    let mut md = String::new();
    let w = &mut md;
    use std::fmt::Write as _;
    let _ = writeln!(w, "## Ground station\n");
    let _ = writeln!(
        w,
        "Measured by `cargo run --release -p mizugiwa-drone --example gcs_bench -- --out drone/BENCHMARKS.md`, one run started {started}, on **{}**. Everything (ground station, simulated vehicles, MAVSDK, pymavlink, MAVProxy) shares this machine and loopback UDP.\n",
        machine()
    );
    let _ = writeln!(
        w,
        "### Telemetry ingest: {VEHICLES} vehicles at {} msg/s each\n",
        HZ * 2.0
    );
    let _ = writeln!(w, "The ground station (one `Station` on one UDP port, every frame parsed, per-vehicle state updated, a telemetry event broadcast per position and read by a subscriber) runs in the bench process; the {VEHICLES} simulated vehicles (`mizugiwa_drone::sim`, GLOBAL_POSITION_INT and ATTITUDE at {HZ} Hz each, HEARTBEAT, SYS_STATUS and MISSION_CURRENT at 1 Hz) run in a child process, so the CPU below is the ground station's alone.\n");
    let _ = writeln!(w, "| measure | value |\n|---|---|");
    let _ = writeln!(w, "| window | {:.1} s |", ingest.seconds);
    let _ = writeln!(
        w,
        "| offered load (position + attitude) | {offered:.0} msg/s (+ {} msg/s at 1 Hz) |",
        u32::from(VEHICLES) * 3
    );
    let _ = writeln!(
        w,
        "| frames sent by the fleet (whole run, incl. warm-up) | {} |",
        ingest.frames_sent
    );
    let _ = writeln!(
        w,
        "| vehicles tracked | {} of {VEHICLES} |",
        ingest.vehicles
    );
    let _ = writeln!(
        w,
        "| positions delivered to the subscriber | {} = {:.0}/s (nominal {:.0}/s; the simulators' timers catch up after a late tick, so slightly more is normal, less would be loss) |",
        ingest.positions,
        ingest.positions as f64 / ingest.seconds,
        positions_expected / ingest.seconds
    );
    let _ = writeln!(
        w,
        "| **CPU, ground station process** | **{:.1}% of one core** ({:.2} s CPU in {:.1} s) |",
        100.0 * ingest.cpu / ingest.seconds,
        ingest.cpu,
        ingest.seconds
    );
    let _ = writeln!(
        w,
        "| CPU per message | {:.1} µs |\n",
        1e6 * ingest.cpu / (ingest.seconds * (offered + f64::from(VEHICLES) * 3.0))
    );

    let _ = writeln!(
        w,
        "### Mission upload time against the same MAVSDK vehicle\n"
    );
    match &uploads {
        Ok(u) => {
            let _ = writeln!(w, "A {ITEMS}-item mission (take-off and waypoints, MISSION_ITEM_INT) uploaded {REPEATS} times to MAVSDK's C++ core (PyPI `mavsdk`, `MissionRawServer`, acting as the autopilot; a fresh vehicle per ground station) by each ground station in turn, over loopback UDP. Time = MISSION_COUNT sent → MISSION_ACK ACCEPTED received.\n");
            let _ = writeln!(
                w,
                "| ground station | median | min | max | vs ours (median) |\n|---|---|---|---|---|"
            );
            let row = |w: &mut String, name: &str, t: &Result<Vec<f64>, String>| match t {
                Ok(t) => {
                    let m = median(t);
                    let _ = writeln!(
                        w,
                        "| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {:.2}× |",
                        m * 1e3,
                        t.iter().copied().fold(f64::INFINITY, f64::min) * 1e3,
                        t.iter().copied().fold(0.0, f64::max) * 1e3,
                        m / median(&u.ours)
                    );
                }
                Err(e) => {
                    let _ = writeln!(w, "| {name} | not measured: {e} | | | |");
                }
            };
            row(w, "**Mizugiwa** (`Station::upload`)", &Ok(u.ours.clone()));
            row(
                w,
                "pymavlink (`drone/tests/peers/pymavlink_gcs.py`)",
                &u.pymavlink,
            );
            row(
                w,
                "MAVProxy (`wp load`, `drone/tests/peers/mavproxy_upload.py`)",
                &u.mavproxy,
            );
        }
        Err(e) => {
            let _ = writeln!(w, "Not measured in this run: {e}.");
        }
    }
    print!("{md}");
    if let Some(path) = out {
        write_section(&path, &md);
        eprintln!("wrote {path}");
    }
}

/// Puts `section` between this benchmark's markers in `path`, keeping what other benchmarks
/// wrote there (the imagery benchmark shares `drone/BENCHMARKS.md`).
fn write_section(path: &str, section: &str) {
    const BEGIN: &str = "<!-- gcs_bench: begin -->";
    const END: &str = "<!-- gcs_bench: end -->";
    let block = format!("{BEGIN}\n{section}{END}\n");
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(b)) if a < b => format!(
            "{}{block}{}",
            &old[..a],
            &old[b + END.len()..].trim_start_matches('\n')
        ),
        _ if old.is_empty() => block,
        _ => format!("{}\n{block}", old.trim_end()),
    };
    let mut f = std::fs::File::create(path).expect("output file");
    f.write_all(new.as_bytes()).expect("write");
}

fn time_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
