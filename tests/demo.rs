//! `mizugiwa demo --once`: the whole deployment (hq and three sites, real QUIC, the site bus,
//! simulated traffic, Tsushima's AIS feed and SAR pass) starts, every site's records reach hq,
//! and it stops cleanly.

use std::process::Command;

/// A base port with `n` free TCP and UDP ports after it (probed, then released).
fn free_run(n: u16) -> u16 {
    'search: for _ in 0..50 {
        let base = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if base > 65_000 {
            continue;
        }
        for p in base..base + n {
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_err()
                || std::net::UdpSocket::bind(("127.0.0.1", p)).is_err()
            {
                continue 'search;
            }
        }
        return base;
    }
    panic!("no free port range");
}

#[test]
fn the_demo_runs_every_site_into_hq_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_run(4);
    let sync = free_run(4);
    let bus = free_run(1);
    let out = Command::new(env!("CARGO_BIN_EXE_mizugiwa"))
        .args(["demo", "--once", "8", "--dir", dir.path().to_str().unwrap()])
        .args([
            "--http-port",
            &http.to_string(),
            "--sync-port",
            &sync.to_string(),
        ])
        .args(["--bus-port", &bus.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("hq sees every site: [\"hq\", \"narita\", \"tsushima\", \"yokohama\"]"),
        "{stdout}"
    );
    // Two simulated drones talked MAVLink to Tsushima's ground station, were launched on their
    // corridor patrols, and their positions (over the site bus) and sorties reached hq.
    assert!(stdout.contains("drones=2"), "the drones flew: {stdout}");
    assert!(
        stdout.contains("sorties=2"),
        "the patrols were launched: {stdout}"
    );
    // Tsushima's fleet broadcast NMEA to the site's AIS source; a synthetic SAR pass went into
    // its SAR inbox: the node detected all eight ships, found AIS for the five of the fleet and
    // raised one dark_vessel alert for each of the three that broadcast nothing.
    assert!(
        stdout.contains("vessels=5"),
        "the fleet's AIS reached hq: {stdout}"
    );
    assert!(
        stdout.contains("detections from sar=8 with AIS=5 dark_vessel alerts=3"),
        "the SAR pass: {stdout}"
    );
    assert!(!stderr.contains(" ERROR "), "{stderr}");
}
