//! The shipped drills, short versions, against the real binary; and the checker caught out
//! by a deliberately broken replica. Drills start several daemons each, so they run one at a
//! time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mizugiwa");
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Outcome {
    passed: bool,
    stdout: String,
    report: Value,
    html: String,
}

fn drill(scenario: &str, extra: &[&str]) -> Outcome {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let report_dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("drill")
        .arg("run")
        .arg(
            root.join("drills/scenarios/short")
                .join(format!("{scenario}.toml")),
        )
        .arg("--report")
        .arg(report_dir.path())
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = std::fs::read(report_dir.path().join("report.json"))
        .unwrap_or_else(|e| panic!("no report ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    let html = std::fs::read_to_string(report_dir.path().join("report.html")).unwrap();
    let report: Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(
        out.status.success(),
        report["passed"].as_bool().unwrap(),
        "the exit code follows the verdict"
    );
    Outcome {
        passed: out.status.success(),
        stdout: format!("{stdout}\n{stderr}"),
        report,
        html,
    }
}

fn invariant<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["invariants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no invariant {name}"))
}

/// A shipped drill passes, and the report shows the work it did.
fn passes(scenario: &str) -> Outcome {
    let o = drill(scenario, &[]);
    assert!(o.passed, "drill {scenario} failed:\n{}", o.stdout);
    let acked = o.report["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["op"] == "raise" && a["acked"] == true)
        .count();
    assert!(acked > 30, "{scenario}: only {acked} acknowledged raises");
    assert!(o.report["converged_after_secs"].as_f64().is_some());
    assert!(o.html.contains("<svg") && o.html.contains("PASSED"));
    o
}

#[test]
fn typhoon_coast() {
    let o = passes("typhoon-coast");
    let reached = invariant(&o.report, "outage_alerts_reach_hq");
    assert!(
        !reached["checked"].as_str().unwrap().starts_with("0 "),
        "alerts were raised while cut off: {reached}"
    );
    // The site's AIS feed ran, and ships first heard while it was cut off reached HQ.
    let ships = invariant(&o.report, "ais_vessels_reach_hq");
    assert!(
        !ships["checked"].as_str().unwrap().starts_with("0 "),
        "no ship was heard: {ships}"
    );
}

#[test]
fn earthquake_hq() {
    let o = passes("earthquake-hq");
    // The standby command center holds every acknowledged alert although it started empty
    // after the first one was lost.
    assert!(o.report["hashes"].get("hq-backup").is_some());
    assert!(
        o.report["hashes"].get("hq").is_none(),
        "the lost one is not counted"
    );
    // Narita's gates kept deciding while no command center existed, and every passage on
    // record reached every replica, the new command center included.
    let gates = invariant(&o.report, "gate_decisions_reach_everywhere");
    assert_eq!(gates["passed"], true, "{gates}");
    assert!(
        !gates["checked"].as_str().unwrap().starts_with("0 "),
        "{gates}"
    );
}

#[test]
fn flapping_links() {
    let o = passes("flapping-links");
    // The narrow-link fault really carried sync traffic through the bandwidth cap.
    let links = o.report["links"]
        .as_array()
        .expect("link counters in the report");
    assert!(
        links
            .iter()
            .any(|l| l["narrowed"].as_u64().unwrap_or(0) > 0),
        "no datagram went through the cap: {links:?}"
    );
}

#[test]
fn long_offline() {
    let o = passes("long-offline");
    let withdrawals = invariant(&o.report, "no_deleted_record_returns");
    assert!(!withdrawals["checked"].as_str().unwrap().starts_with("0 "));
}

#[test]
fn clock_skew() {
    let o = passes("clock-skew");
    let skew = invariant(&o.report, "clock_skew_refused");
    assert_eq!(skew["passed"], true, "{skew}");
}

#[test]
fn disk_full() {
    let o = passes("disk-full");
    // Calls failed while the disk was full, and were not held against the site.
    let failed = o.report["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["site"] == "yokohama" && a["acked"] == false)
        .count();
    assert!(failed > 0, "the full disk refused nothing");
}

#[test]
fn site_crash() {
    passes("site-crash");
}

/// The broken build acknowledges its fifth alert without writing it: the drill must fail,
/// and the report must name exactly that alert.
#[test]
fn the_checker_names_an_acknowledged_write_a_broken_replica_dropped() {
    let broken: PathBuf = Path::new(BIN).with_file_name("mizugiwa-broken-replica");
    assert!(
        broken.exists(),
        "{} is missing: `make test` builds it first (cargo build -p mizugiwa-broken-replica)",
        broken.display()
    );
    let o = drill(
        "typhoon-coast",
        &["--replica-bin", &format!("yokohama={}", broken.display())],
    );
    assert!(
        !o.passed,
        "the drill passed with a replica that drops writes"
    );
    let fifth = o.report["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["site"] == "yokohama" && a["op"] == "raise" && a["acked"] == true)
        .nth(4)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let lost = invariant(&o.report, "no_acknowledged_write_lost");
    assert_eq!(lost["passed"], false);
    let evidence: Vec<&str> = lost["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    assert!(
        evidence[0].contains(&fifth),
        "{evidence:?} does not name {fifth}"
    );
    assert!(o.html.contains(&fifth) && o.html.contains("FAILED"));
}
