//! Field-by-field agreement with pyais on the real corpora in `testdata/ais/`.
//!
//! `scripts/pyais_expected.py` decoded every file with pyais and wrote, per line that completes
//! a message, pyais's values in our conventions to `testdata/ais/pyais-expected.json`. Here the
//! same files go through our decoder line by line, and every field of every message must agree.
//! Where the two decoders disagree on whether to decode at all, the test says which way and why.

use std::collections::BTreeMap;

use mizugiwa_satellite::ais::{
    AisError, AisMessage, Decoder, Dimensions, RateOfTurn, StaticDataPart, TimeStamp,
};
use serde_json::{json, Map, Value};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ais");

fn dims(d: Option<Dimensions>) -> Value {
    match d {
        Some(d) => json!([d.to_bow, d.to_stern, d.to_port, d.to_starboard]),
        None => Value::Null,
    }
}

fn second(t: Option<TimeStamp>) -> u8 {
    match t {
        Some(TimeStamp::Second(s)) => s,
        None => 60,
        Some(TimeStamp::ManualInput) => 61,
        Some(TimeStamp::DeadReckoning) => 62,
        Some(TimeStamp::Inoperative) => 63,
    }
}

fn lat_lon(m: &AisMessage) -> (Value, Value) {
    match m.position() {
        Some(p) => (json!(p.lat), json!(p.lon)),
        None => (Value::Null, Value::Null),
    }
}

/// Our message in the shape `pyais_expected.py` writes.
fn view(m: &AisMessage) -> Value {
    let (lat, lon) = lat_lon(m);
    let mut v = json!({
        "msg_type": m.message_type(),
        "repeat": m.repeat(),
        "mmsi": m.mmsi(),
    });
    let extra = match m {
        AisMessage::Position(p) => json!({
            "nav_status": p.nav_status.map(|s| s.code()),
            "rot": match p.rot {
                None => Value::Null,
                Some(RateOfTurn::RightMoreThan5DegPer30s) => json!("right"),
                Some(RateOfTurn::LeftMoreThan5DegPer30s) => json!("left"),
                Some(RateOfTurn::DegreesPerMinute(r)) => json!(r.round() as i64),
            },
            "sog": p.sog_knots, "accuracy": p.position_accuracy, "lat": lat, "lon": lon,
            "cog": p.cog_deg, "heading": p.heading_deg, "second": second(p.timestamp),
            "manoeuvre": p.special_manoeuvre, "raim": p.raim, "radio": p.radio,
        }),
        AisMessage::BaseStation(b) => json!({
            "year": b.utc.year, "month": b.utc.month, "day": b.utc.day, "hour": b.utc.hour,
            "minute": b.utc.minute, "second": b.utc.second, "accuracy": b.position_accuracy,
            "lat": lat, "lon": lon, "epfd": b.epfd.map(|e| e.code()), "raim": b.raim,
            "radio": b.radio,
        }),
        AisMessage::StaticAndVoyage(s) => json!({
            "ais_version": s.ais_version, "imo": s.imo, "callsign": s.callsign, "name": s.name,
            "ship_type": s.ship_type.map(|t| t.0), "dims": dims(s.dimensions),
            "epfd": s.epfd.map(|e| e.code()),
            "eta": s.eta.map(|e| json!([e.month, e.day, e.hour, e.minute])),
            "draught": s.draught_m, "destination": s.destination, "dte_ready": s.dte_ready,
        }),
        AisMessage::ClassBPosition(b) => json!({
            "sog": b.sog_knots, "accuracy": b.position_accuracy, "lat": lat, "lon": lon,
            "cog": b.cog_deg, "heading": b.heading_deg, "second": second(b.timestamp),
            "cs": b.carrier_sense, "display": b.display, "dsc": b.dsc, "band": b.band,
            "msg22": b.msg22, "assigned": b.assigned, "raim": b.raim, "radio": b.radio,
        }),
        AisMessage::ClassBExtended(b) => json!({
            "sog": b.sog_knots, "accuracy": b.position_accuracy, "lat": lat, "lon": lon,
            "cog": b.cog_deg, "heading": b.heading_deg, "second": second(b.timestamp),
            "name": b.name, "ship_type": b.ship_type.map(|t| t.0), "dims": dims(b.dimensions),
            "epfd": b.epfd.map(|e| e.code()), "raim": b.raim, "dte_ready": b.dte_ready,
            "assigned": b.assigned,
        }),
        AisMessage::AidToNavigation(a) => json!({
            "aid_type": a.aid_type, "name": a.name, "accuracy": a.position_accuracy,
            "lat": lat, "lon": lon, "dims": dims(a.dimensions),
            "epfd": a.epfd.map(|e| e.code()), "second": second(a.timestamp),
            "off_position": a.off_position, "raim": a.raim, "virtual_aid": a.virtual_aid,
            "assigned": a.assigned,
        }),
        AisMessage::StaticData(s) => match &s.part {
            StaticDataPart::A { name } => json!({ "part": 0, "name": name }),
            StaticDataPart::B {
                ship_type,
                vendor_id,
                model,
                serial,
                callsign,
                dimensions,
                mothership_mmsi,
            } => json!({
                "part": 1, "ship_type": ship_type.map(|t| t.0), "vendor_id": vendor_id,
                "model": model, "serial": serial, "callsign": callsign,
                "dims": dims(*dimensions), "mothership_mmsi": mothership_mmsi,
            }),
        },
        AisMessage::LongRange(l) => json!({
            "accuracy": l.position_accuracy, "raim": l.raim,
            "nav_status": l.nav_status.map(|s| s.code()), "lat": lat, "lon": lon,
            "sog": l.sog_knots, "cog": l.cog_deg, "latency": l.position_latency_over_5s,
        }),
    };
    if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
        v.extend(extra);
    }
    v
}

/// Equal, with floats within 1e-6 (pyais rounds coordinates to six decimals).
fn same(ours: &Value, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-6,
            _ => a == b,
        },
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        _ => ours == theirs,
    }
}

fn diff(ours: &Value, theirs: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (key, expected) in theirs {
        let got = ours.get(key).unwrap_or(&Value::Null);
        if !same(got, expected) {
            out.push(format!("{key}: ours {got}, pyais {expected}"));
        }
    }
    if let Some(ours) = ours.as_object() {
        for key in ours.keys().filter(|k| !theirs.contains_key(*k)) {
            out.push(format!("{key}: not in the expected file"));
        }
    }
    out
}

#[derive(Default, Debug)]
struct Tally {
    agreed: usize,
    both_unsupported: usize,
    both_refused: usize,
    /// Lines we refuse as truncated that pyais decodes by padding with zeros (or leaves
    /// incomplete); each checked to be shorter than the type's minimum.
    stricter_truncated: Vec<String>,
    disagreements: Vec<String>,
}

#[test]
fn every_message_agrees_with_pyais_field_by_field() {
    let text = std::fs::read_to_string(format!("{DATA}/pyais-expected.json"))
        .expect("testdata/ais/pyais-expected.json");
    let expected: Value = serde_json::from_str(&text).expect("valid JSON");
    let files = expected["files"].as_object().expect("files");
    assert_eq!(files.len(), 4);

    let mut tally = Tally::default();
    for (name, entries) in files {
        let by_line: BTreeMap<u64, &Value> = entries
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| (e["line"].as_u64().expect("line"), e))
            .collect();
        let corpus = std::fs::read_to_string(format!("{DATA}/{name}")).expect("corpus file");
        let mut decoder = Decoder::new();
        for (index, line) in corpus.lines().enumerate() {
            let number = index as u64 + 1;
            let at = format!("{name}:{number}");
            let ours = decoder.feed_line(line, 0);
            let theirs = by_line.get(&number);
            match (ours, theirs) {
                (Ok(None), None) => {}
                (Err(_), None) => {} // a fragment pyais also held back, or a comment line
                (Ok(Some(report)), Some(e)) if e.get("message").is_some() => {
                    let theirs = e["message"].as_object().expect("message object");
                    let problems = diff(&view(&report.message), theirs);
                    if problems.is_empty() {
                        tally.agreed += 1;
                    } else {
                        tally.disagreements.push(format!("{at}: {problems:?}"));
                    }
                }
                (Err(AisError::UnsupportedType(t)), Some(e))
                    if e.get("unsupported").and_then(Value::as_u64) == Some(u64::from(t)) =>
                {
                    tally.both_unsupported += 1;
                }
                (Err(AisError::Truncated { needed, got, .. }), Some(e))
                    if e.get("bits").and_then(Value::as_u64) == Some(got as u64) =>
                {
                    assert!(got < needed);
                    tally.stricter_truncated.push(at);
                }
                (Err(_), Some(e)) if e.get("error").is_some() => tally.both_refused += 1,
                (ours, theirs) => tally.disagreements.push(format!(
                    "{at}: ours {:?}, pyais {:?}",
                    ours.map(|r| r.map(|r| view(&r.message))),
                    theirs
                )),
            }
        }
    }
    eprintln!("{tally:#?}");
    assert!(
        tally.disagreements.is_empty(),
        "{} disagreements:\n{}",
        tally.disagreements.len(),
        tally.disagreements.join("\n")
    );
    // Every supported message of the corpora, of each supported type, was compared.
    assert!(tally.agreed >= 800, "{tally:?}");
    assert!(tally.both_unsupported >= 200, "{tally:?}");
    // Noise in libais's "what is this?" section that happens to start like type 27.
    assert!(tally.stricter_truncated.len() <= 7, "{tally:?}");
}

/// pyais itself, from PyPI in the test venv (`make test` installs it and sets `MZ_PYTHON`),
/// decodes the corpora again now: its output must be the committed expectations the test
/// above holds our decoder to, so they are pyais's and not stale.
#[test]
fn pyais_from_pypi_agrees_with_the_committed_expectations() {
    let python = std::env::var_os("MZ_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
        });
    assert!(
        python.exists(),
        "no Python with pyais at {} (run `make deps`)",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("pyais-now.json");
    let out = std::process::Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/pyais_expected.py"
        ))
        .arg(&fresh)
        .output()
        .expect("pyais_expected.py runs");
    assert!(
        out.status.success(),
        "pyais_expected.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now: Value = serde_json::from_str(&std::fs::read_to_string(&fresh).unwrap()).unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{DATA}/pyais-expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        now["files"], committed["files"],
        "pyais {} decodes the corpora differently from the committed expectations",
        now["pyais_version"]
    );
}
