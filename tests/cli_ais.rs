//! `mizugiwa ais` as an operator runs it: a real receiver's file decoded and checked against
//! pyais's independent decode, garbage refused and counted without a crash, and `listen`
//! against a TCP server (with a reconnection) and over UDP, decoding what they serve, with the
//! behaviour rules flagging a spoofed jump.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mizugiwa");
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/satellite/testdata/ais");
/// How long a `listen` may take to get its messages before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// The classic position report of MMSI 366053209 (San Francisco Bay).
const CLASSIC: &str = "!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C";
/// The same with a wrong checksum.
const CORRUPT: &str = "!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5D";
/// pyais's two-sentence type 5 example: the tug SEA HAWK, MMSI 367309440.
const SEA_HAWK: [&str; 2] = [
    "!AIVDM,2,1,3,B,55NBjP01mtGIL@CW;SM<D60P5Ld000000000000P0`<3557l0<50@kk@,0*66",
    "!AIVDM,2,2,3,B,K5h@00000000000,2*72",
];
/// An ORBCOMM satellite report with a tag block (receiver and time), MMSI 224651000.
const TAGGED: &str = "\\s:rORBCOMM104,q:u,c:1418172113,T:2014-12-10 00.41.53*55\\!AIVDM,1,1,,B,13F?Vv700<DJuLEtvep`iToV0<00,0*78";

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mizugiwa");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait for mizugiwa");
    writer.join().expect("stdin writer");
    out
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits for `child` to end by itself within the deadline (killing it and failing if not).
fn finish(mut child: Child) -> Output {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < DEADLINE => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("killed");
                panic!(
                    "mizugiwa ais listen did not finish:\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    stderr(&out)
                );
            }
        }
    }
    child.wait_with_output().expect("output")
}

#[test]
fn decode_a_receivers_file_as_pyais_does() {
    let file = format!("{DATA}/pyais-nmea_data_sample.txt");
    let out = run(&["ais", "decode", &file], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let reports = json_lines(&out);
    assert_eq!(reports.len(), 770);

    // Message by message, the same MMSIs and types as pyais decoded (the lines pyais refused
    // or we do not decode left out on its side).
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{DATA}/pyais-expected.json")).expect("expected"),
    )
    .expect("expected JSON");
    let want: Vec<(u64, u64)> = expected["files"]["pyais-nmea_data_sample.txt"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e.get("message"))
        .map(|m| (m["mmsi"].as_u64().unwrap(), m["msg_type"].as_u64().unwrap()))
        .collect();
    let got: Vec<(u64, u64)> = reports
        .iter()
        .map(|r| {
            let m = &r["message"];
            let msg_type = match m["kind"].as_str() {
                Some("Position") | Some("BaseStation") => m["msg_type"].as_u64().unwrap(),
                Some("ClassBPosition") => 18,
                Some("StaticData") => 24,
                other => panic!("unexpected {other:?} in {r}"),
            };
            (m["mmsi"].as_u64().unwrap(), msg_type)
        })
        .collect();
    assert_eq!(got, want);

    let first = &reports[0];
    assert_eq!(first["message"]["kind"], "Position");
    assert_eq!(first["message"]["msg_type"], 3);
    assert_eq!(first["message"]["sog_knots"], 14.6);
    let pos = &first["message"]["position"];
    assert!(
        (pos["lat"].as_f64().unwrap() - 36.910433).abs() < 1e-6,
        "{pos}"
    );
    assert!(
        (pos["lon"].as_f64().unwrap() - 20.760008).abs() < 1e-6,
        "{pos}"
    );
    assert_eq!(first["time_source"], "Arrival");
    assert_eq!(
        first["sentences"][0],
        "!AIVDM,1,1,,A,33P;Tw0tjBQO22:E7dm66DrB20UP,0*2E"
    );

    // The receiver's empty-slot sentences and binary messages, counted by kind.
    let err = stderr(&out);
    assert!(
        err.contains("770 messages, 108 refused (empty_payload 100, unsupported_type 8)"),
        "{err}"
    );
    assert!(
        err.contains("12 incomplete multi-sentence messages"),
        "{err}"
    );
}

#[test]
fn decode_reads_standard_input_with_tag_blocks_and_multi_sentence_messages() {
    let input = format!("{TAGGED}\n{}\r\n{}\n\n", SEA_HAWK[0], SEA_HAWK[1]);
    let out = run(&["ais", "decode", "-"], input.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let reports = json_lines(&out);
    assert_eq!(reports.len(), 2, "{reports:?}");
    let tagged = &reports[0];
    assert_eq!(tagged["message"]["mmsi"], 224651000);
    assert_eq!(tagged["received_ms"], 1_418_172_113_000i64);
    assert_eq!(tagged["time_source"], "TagBlock");
    assert_eq!(tagged["source"], "rORBCOMM104");
    let hawk = &reports[1];
    assert_eq!(hawk["message"]["kind"], "StaticAndVoyage");
    assert_eq!(hawk["message"]["name"], "SEA HAWK");
    assert_eq!(hawk["sentences"].as_array().map(Vec::len), Some(2));
    assert!(
        stderr(&out).contains("3 lines, 2 messages, 0 refused"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn garbage_is_refused_and_counted_without_a_crash() {
    // Pseudo-random bytes (invalid UTF-8, NULs, control characters), a 100 kB line, a bad
    // checksum, half sentences, and one good sentence in the middle.
    let mut garbage = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..20_000 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        garbage.push((x >> 24) as u8);
    }
    garbage.extend_from_slice(b"\n");
    garbage.extend_from_slice(CLASSIC.as_bytes());
    garbage.extend_from_slice(b"\n");
    garbage.extend_from_slice(CORRUPT.as_bytes());
    garbage.extend_from_slice(b"\n!AIVDM,2,1,9,A,55NBjP01mtGIL@CW\n!AIVDM,,,\n\x00\x00\xff\n");
    garbage.extend(std::iter::repeat_n(b'!', 100_000));
    let out = run(&["ais", "decode", "-"], &garbage);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let reports = json_lines(&out);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["message"]["mmsi"], 366053209);
    assert!(err.contains(", 1 messages, "), "{err}");
    assert!(
        err.contains("bad_checksum 1") && err.contains("line_too_long"),
        "{err}"
    );
    assert!(
        !err.contains("refused line"),
        "quiet without --verbose: {err}"
    );

    let out = run(&["ais", "decode", "--verbose", "-"], &garbage);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("refused line") && err.contains("checksum mismatch"),
        "{err}"
    );
    assert!(err.contains("longer than the 1024 allowed"), "{err}");
}

#[test]
fn decode_of_a_missing_file_fails_with_a_message() {
    let out = run(&["ais", "decode", "/nonexistent/feed.nmea"], b"");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot open /nonexistent/feed.nmea"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn listen_over_tcp_decodes_what_the_server_sends_and_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    // A receiver that serves a burst, drops the connection, and serves more on the next one.
    std::thread::spawn(move || {
        let Ok((mut first, _)) = listener.accept() else {
            return;
        };
        let burst = format!(
            "{CLASSIC}\r\n{CORRUPT}\r\n{}\r\n{}\r\n",
            SEA_HAWK[0], SEA_HAWK[1]
        );
        let (a, b) = burst.split_at(20); // a line split across two reads
        let _ = first.write_all(a.as_bytes());
        let _ = first.flush();
        let _ = first.write_all(b.as_bytes());
        drop(first);
        let Ok((mut second, _)) = listener.accept() else {
            return;
        };
        let _ = second.write_all(format!("{TAGGED}\n").as_bytes());
        // Hold the connection until the client leaves.
        let _ = second.read_to_end(&mut Vec::new());
    });
    let url = format!("tcp://{addr}");
    let child = Command::new(BIN)
        .args(["ais", "listen", &url, "--count", "3"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mizugiwa");
    let out = finish(child);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let mmsis: Vec<u64> = json_lines(&out)
        .iter()
        .map(|r| r["message"]["mmsi"].as_u64().unwrap())
        .collect();
    assert_eq!(mmsis, [366053209, 367309440, 224651000], "{err}");
    assert_eq!(err.matches("connected to").count(), 2, "{err}");
    assert!(
        err.contains("closed the connection") && err.contains("reconnecting"),
        "{err}"
    );
    assert!(
        err.contains("3 messages, 1 refused (bad_checksum 1)"),
        "{err}"
    );
}

#[test]
fn listen_over_udp_decodes_datagrams() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let url = format!("udp://127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args(["ais", "listen", &url, "--count", "2"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mizugiwa");
    // Wait until it listens, then send: one datagram with a good and a bad line, one whose
    // only line has no newline.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let err_pipe = child.stderr.take().expect("stderr");
    let stderr_reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = ready_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    ready_rx.recv_timeout(DEADLINE).expect("mizugiwa listens");
    let sender = UdpSocket::bind("127.0.0.1:0").expect("sender");
    sender
        .send_to(
            format!("{CLASSIC}\n{CORRUPT}\n").as_bytes(),
            ("127.0.0.1", port),
        )
        .expect("send");
    sender
        .send_to(TAGGED.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let out = finish(child);
    let err = stderr_reader.join().expect("stderr");
    assert!(out.status.success(), "{err}");
    let mmsis: Vec<u64> = json_lines(&out)
        .iter()
        .map(|r| r["message"]["mmsi"].as_u64().unwrap())
        .collect();
    assert_eq!(mmsis, [366053209, 224651000], "{err}");
    assert!(
        err.contains("2 messages, 1 refused (bad_checksum 1)"),
        "{err}"
    );
}

/// A tagged type 1 position report of `mmsi` at `lat`, `lon`, received at `c_s` (UNIX s).
fn tagged_position(mmsi: u32, lat: f64, lon: f64, sog_knots: f64, c_s: u64) -> String {
    let fields: [(u32, i64); 16] = [
        (6, 1),
        (2, 0),
        (30, i64::from(mmsi)),
        (4, 0),
        (8, -128),
        (10, (sog_knots * 10.0).round() as i64),
        (1, 0),
        (28, (lon * 600_000.0).round() as i64),
        (27, (lat * 600_000.0).round() as i64),
        (12, 900),
        (9, 90),
        (6, 30),
        (2, 0),
        (3, 0),
        (1, 0),
        (19, 0),
    ];
    let mut bits = Vec::new();
    for (width, value) in fields {
        bits.extend((0..width).rev().map(|i| (value >> i) & 1 == 1));
    }
    let payload: String = bits
        .chunks(6)
        .map(|c| {
            let v = c.iter().fold(0u8, |acc, &b| acc << 1 | u8::from(b)) << (6 - c.len());
            char::from(if v < 40 { v + 48 } else { v + 56 })
        })
        .collect();
    let xor = |s: &str| s.bytes().fold(0u8, |a, b| a ^ b);
    let body = format!("AIVDM,1,1,,A,{payload},0");
    let tag = format!("s:rTEST,c:{c_s}");
    format!("\\{tag}*{:02X}\\!{body}*{:02X}", xor(&tag), xor(&body))
}

#[test]
fn listen_with_behaviour_reports_a_spoofed_jump() {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // 16 km north in ten minutes: 51.8 kn implied, while the ship says 12 kn.
    let t0 = now_s - 3_600;
    let lines = [
        tagged_position(431_000_001, 32.7, 129.7, 12.0, t0),
        tagged_position(
            431_000_001,
            32.7 + 16_000.0 / 111_195.08,
            129.7,
            12.0,
            t0 + 600,
        ),
    ];
    let decoded = run(&["ais", "decode", "-"], lines.join("\n").as_bytes());
    assert_eq!(json_lines(&decoded).len(), 2, "{}", stderr(&decoded));

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.write_all(format!("{}\n", lines.join("\n")).as_bytes());
            let _ = s.read_to_end(&mut Vec::new());
        }
    });
    let url = format!("tcp://{addr}");
    let child = Command::new(BIN)
        .args(["ais", "listen", &url, "--behaviour", "--count", "2"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mizugiwa");
    let out = finish(child);
    assert!(out.status.success(), "{}", stderr(&out));
    let alerts = json_lines(&out);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a["kind"], "ais_spoofing_speed");
    assert_eq!(a["mmsi"], 431_000_001);
    assert_eq!(a["time_ms"], (t0 + 600) as i64 * 1000);
    let speed = a["implied_speed_knots"].as_f64().expect("speed");
    assert!((51.0..53.0).contains(&speed), "{a}");
    assert_eq!(a["reported_speed_knots"], 12.0);
    assert_eq!(a["sources"][0], "rTEST");
}
