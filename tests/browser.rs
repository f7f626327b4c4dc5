//! The dashboard in a real browser: Playwright (playwright-core from npm) drives Debian's
//! Chromium, headless, against the real `mizugiwa command`. It logs in, sees the map and the
//! site, and acknowledges a site's alert in the page; the acknowledgement then reaches the
//! site's own store through sync. A screenshot is kept in `target/test-artifacts/`.

mod common;

use std::process::Command;

use common::{Daemon, Deployment};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_acknowledges_a_site_alert_in_the_browser_and_the_site_sees_it() {
    let dep = Deployment::new(&[("hq", "command"), ("tsushima", "site")]);
    let hq = Daemon::command(&dep, "hq", &[]);
    let site = Daemon::site(&dep, "tsushima", &[("hq", hq.sync_addr)]);
    let officer = site.login("officer", "officer-pw").await;
    let alert = site
        .post(
            &officer,
            "/api/alerts",
            json!({"title": "Boat landing at Komoda beach", "severity": "critical",
                   "lat": 34.31, "lon": 129.39}),
        )
        .await;
    let id = alert["id"].as_str().unwrap().to_owned();
    let viewer = hq.login("viewer", "viewer-pw").await;
    hq.wait_record(&viewer, "alerts", &id, 30, |_| true).await;
    hq.wait_record(&viewer, "sites", "tsushima", 30, |_| true)
        .await;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let artifacts = root.join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("dashboard.png");
    let url = format!("http://{}", hq.http_addr);
    let out = tokio::task::spawn_blocking({
        let (root, id, screenshot) = (root.to_owned(), id.clone(), screenshot.clone());
        move || {
            Command::new("node")
                .current_dir(root.join("command/web"))
                .args(["tests/dashboard.mjs", "--url", &url, "--user", "operator"])
                .args([
                    "--password",
                    "operator-pw",
                    "--alert",
                    &id,
                    "--site",
                    "tsushima",
                ])
                .args(["--screenshot", screenshot.to_str().unwrap()])
                .output()
                .expect("node runs (make test installs it)")
        }
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser test failed:\n{text}");
    assert!(
        screenshot.metadata().unwrap().len() > 10_000,
        "a real screenshot"
    );

    // The click at headquarters reached the site's own replica.
    let at_site = site
        .wait_record(&officer, "alerts", &id, 60, |r| {
            r["fields"]["status"] == "acknowledged"
        })
        .await;
    assert_eq!(at_site["fields"]["acked_by"], "operator");
}
