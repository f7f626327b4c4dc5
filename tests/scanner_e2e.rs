//! Scanner sources end to end on real processes: a port site with an X-ray inbox and an NQR
//! inbox, syncing to headquarters.
//!
//! A generated container scan with a steel block hidden in declared textiles is dropped into the
//! site's X-ray inbox (the files first, `READY` last): headquarters gets the inspection record
//! and its alert, the site keeps the heatmap, the folder moves to `done/`. A folder with a
//! corrupt image moves to `rejected/` with `error.txt` and writes nothing. An NQR signal file
//! with RDX becomes a screening and an `nqr_detection` alert at headquarters.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Daemon, Deployment};

fn wait_until(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_and_screenings_at_a_port_become_records_and_alerts_at_headquarters() {
    let dep = Deployment::new(&[("hq", "command"), ("honmoku", "site")]);
    let site_data = dep.dir.path().join("honmoku-data");
    std::fs::create_dir_all(&site_data).unwrap();

    // The NQR calibration is computed once here with the CLI (the same settings as the node's)
    // and left where the node caches it, so the node starts screening at once.
    let rdx = dep.dir.path().join("screening-0001.bin");
    dep.run(&[
        "nqr",
        "simulate",
        "--out",
        p(&rdx),
        "--substance",
        "RDX",
        "--snr-db",
        "-6",
        "--seed",
        "21",
    ]);
    let detected = dep.run(&[
        "nqr",
        "detect",
        p(&rdx),
        "--calibration",
        p(&site_data.join("nqr-calibration.json")),
    ]);
    assert!(detected.contains("\"detected\": true"), "{detected}");

    let hq = Daemon::command(&dep, "hq", &[]);
    let site = Daemon::site_with(
        &dep,
        "honmoku",
        &[("hq", hq.sync_addr)],
        "[[sources]]\nkind = \"xray_inbox\"\ndir = \"honmoku-data/xray\"\npoll_ms = 100\n\n\
         [[sources]]\nkind = \"nqr_inbox\"\ndir = \"honmoku-data/nqr\"\npoll_ms = 100\npfa = 1e-3\n",
    );
    let hq_viewer = hq.login("viewer", "viewer-pw").await;
    let site_officer = site.login("officer", "officer-pw").await;
    let inbox = site.data_dir.join("xray");

    // 1. A suspicious scan: files first; without READY the node leaves the folder alone.
    let scan = inbox.join("scan-0001");
    dep.run(&[
        "xray",
        "generate",
        "--out",
        p(&scan),
        "--seed",
        "7",
        "--category",
        "textiles",
        "--hidden",
        "metal-block",
    ]);
    std::fs::remove_file(scan.join("truth.json")).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(scan.join("high.png").is_file(), "not taken before READY");
    std::fs::write(scan.join("READY"), "").unwrap();

    let inspection = hq
        .wait_record(&hq_viewer, "inspections", "scan-0001", 60, |_| true)
        .await;
    let f = &inspection["fields"];
    assert_eq!(f["site"], "honmoku", "{inspection}");
    assert_eq!(f["container_id"], "MZGU0000007", "{inspection}");
    assert_eq!(f["declared_category"], "textiles");
    assert_eq!(f["alert"], true, "{inspection}");
    assert!(f["risk"].as_f64().unwrap() >= 0.5, "{inspection}");
    assert!(f["declared_weight_kg"].as_f64().unwrap() > 0.0);
    assert!(f["estimated_weight_kg"].as_f64().unwrap() > 0.0);
    assert!(f["at_ms"].as_i64().unwrap() > 0);
    assert!(
        f["reasons"].as_array().is_some_and(|r| !r.is_empty()),
        "reasons as JSON: {inspection}"
    );
    let heatmap = site.data_dir.join("heatmaps").join("scan-0001.png");
    assert_eq!(f["heatmap_path"], p(&heatmap), "{inspection}");
    assert!(std::fs::metadata(&heatmap).unwrap().len() > 1000);

    let alert = hq
        .wait_record(&hq_viewer, "alerts", "xray-honmoku-scan-0001", 30, |_| true)
        .await;
    let a = &alert["fields"];
    assert_eq!(a["kind"], "xray_risk", "{alert}");
    assert_eq!(a["status"], "new");
    assert_eq!(a["site"], "honmoku");
    assert_eq!(a["lat"], 34.2);
    assert_eq!(a["lon"], 129.3);
    assert!(
        a["title"].as_str().unwrap().contains("MZGU0000007"),
        "{alert}"
    );
    assert!(
        ["medium", "high"].contains(&a["severity"].as_str().unwrap()),
        "{alert}"
    );
    assert_eq!(
        a["detail"]["inspection"], "inspections/scan-0001",
        "{alert}"
    );
    wait_until(10, "the scan folder in done/", || {
        inbox.join("done/scan-0001/READY").is_file() && !scan.exists()
    });

    // 2. A bad scan: a corrupt high-energy image. Rejected with the reason, nothing written.
    let bad = inbox.join("scan-0002");
    dep.run(&[
        "xray",
        "generate",
        "--out",
        p(&bad),
        "--seed",
        "8",
        "--hidden",
        "metal-block",
    ]);
    let bytes = std::fs::read(bad.join("high.png")).unwrap();
    std::fs::write(bad.join("high.png"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(bad.join("READY"), "").unwrap();
    let error = inbox.join("rejected/scan-0002/error.txt");
    wait_until(30, "the bad scan in rejected/", || error.is_file());
    let why = std::fs::read_to_string(&error).unwrap();
    assert!(why.contains("high.png"), "{why}");
    assert!(!bad.exists());

    // 3. An NQR screening with RDX: a screening record and a critical alert.
    let nqr_inbox = site.data_dir.join("nqr");
    std::fs::create_dir_all(&nqr_inbox).unwrap();
    let aside = nqr_inbox.join(".screening-0001.bin.part");
    std::fs::copy(&rdx, &aside).unwrap();
    std::fs::rename(&aside, nqr_inbox.join("screening-0001.bin")).unwrap();
    let screening = hq
        .wait_record(&hq_viewer, "screenings", "screening-0001", 60, |_| true)
        .await;
    let s = &screening["fields"];
    assert_eq!(s["detected"], true, "{screening}");
    assert_eq!(s["alert"], true);
    assert_eq!(s["substance"], "RDX");
    assert_eq!(s["site"], "honmoku");
    assert!(s["confidence"].as_f64().unwrap() > 0.99, "{screening}");
    let nqr_alert = hq
        .wait_record(
            &hq_viewer,
            "alerts",
            "nqr-honmoku-screening-0001",
            30,
            |_| true,
        )
        .await;
    assert_eq!(nqr_alert["fields"]["kind"], "nqr_detection", "{nqr_alert}");
    assert_eq!(nqr_alert["fields"]["severity"], "critical");
    wait_until(10, "the signal file in done/", || {
        nqr_inbox.join("done/screening-0001.bin").is_file()
    });

    // Nothing of the bad scan anywhere: not at the site, not at headquarters.
    for (d, token) in [(&site, &site_officer), (&hq, &hq_viewer)] {
        let inspections = d.get(token, "/api/records/inspections").await;
        assert!(
            !inspections.to_string().contains("scan-0002"),
            "{}: {inspections}",
            d.name
        );
        let alerts = d.get(token, "/api/records/alerts").await;
        assert!(!alerts.to_string().contains("scan-0002"), "{}", d.name);
    }
}
