//! E-gates end to end: headquarters publishes the trust list from a folder, two airports
//! receive it through sync and decide offline; a declaration used at both while they were cut
//! off raises exactly one replay alert once they sync.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Deployment, UdpRelay};
use mizugiwa_gate_edge::declaration::{self, Declaration};
use mizugiwa_gate_edge::trust::{PublicKeyFile, SigningKey};
use serde_json::{json, Value};

const KID: &str = "jp-moj-1";

/// The specimen passport of the example declaration, valid until 2035.
fn mrz() -> Vec<String> {
    declaration::example_mrz().to_vec()
}

fn declaration(id: &str) -> Declaration {
    let mut d = declaration::example();
    let now = time::OffsetDateTime::now_utc();
    d.id = id.into();
    d.issued_at = now - time::Duration::hours(1);
    d.arrival_date = now.date();
    d
}

fn site_config(gate: &str, token: &str, policy: &std::path::Path) -> String {
    format!(
        "[gates]\npolicy = \"{}\"\n[[gates.devices]]\nid = \"{gate}\"\ntoken_blake3 = \"{}\"\n",
        policy.display(),
        mizugiwa_field_node::gate::token_hash(token)
    )
}

async fn decide(site: &Daemon, token: &str, qr: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(site.url("/api/gate/decide"))
        .bearer_auth(token)
        .json(&json!({ "qr": qr, "mrz": mrz(), "face_score": 0.95 }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn reasons(answer: &Value) -> Vec<String> {
    answer["decision"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or("?").to_owned())
        .collect()
}

async fn replay_alerts(d: &Daemon, token: &str, declaration: &str) -> Vec<Value> {
    d.get(token, "/api/records/alerts")
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["fields"]["kind"] == "gate_replay")
        .filter(|a| a["id"] == format!("gate-replay-{declaration}"))
        .cloned()
        .collect()
}

async fn wait_until<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_airports_offline_use_one_declaration_and_exactly_one_replay_alert_follows() {
    let dep = Deployment::new(&[("hq", "command"), ("narita", "site"), ("kansai", "site")]);
    let key = SigningKey::ed25519_from_seed([7; 32]);
    let trust = dep.dir.path().join("trust");
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::write(
        trust.join(format!("{KID}.pub")),
        PublicKeyFile::new(key.public_key()).to_text().unwrap(),
    )
    .unwrap();
    let policy = dep.dir.path().join("gate-policy.toml");
    std::fs::write(
        &policy,
        "version = \"test-1\"\nface_match_threshold = 0.8\nrandom_selection_rate = 0.0\n",
    )
    .unwrap();
    let hq = Daemon::command_with(
        &dep,
        "hq",
        &[],
        "[gates]\ntrust_dir = \"trust\"\npublish_secs = 1\n",
    );
    let (to_hq_n, to_hq_k) = (
        UdpRelay::start(hq.sync_addr).await,
        UdpRelay::start(hq.sync_addr).await,
    );
    let (tn, tk) = ("narita-gate-token", "kansai-gate-token");
    let narita = Daemon::site_with(
        &dep,
        "narita",
        &[("hq", to_hq_n.addr())],
        &site_config("t1-g1", tn, &policy),
    );
    let kansai = Daemon::site_with(
        &dep,
        "kansai",
        &[("hq", to_hq_k.addr())],
        &site_config("t2-g4", tk, &policy),
    );
    let admin = hq.login("admin", "admin-pw").await;

    // The trust list reaches both airports through sync.
    for (site, token) in [(&narita, tn), (&kansai, tk)] {
        wait_until(30, "the trust list at the airport", || async {
            let r = reqwest::Client::new()
                .get(site.url("/api/gate/status"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            v["keys"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == KID))
        })
        .await;
    }

    // A good passenger opens the gate; the same declaration again is a replay, refused at once.
    let qr1 = mizugiwa_gate_edge::qr::issue(&declaration("D-E2E-1"), &key, KID).unwrap();
    let (status, first) = decide(&narita, tn, &qr1).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["open"], true, "{first}");
    let (_, again) = decide(&narita, tn, &qr1).await;
    assert_eq!(again["open"], false);
    assert!(reasons(&again).contains(&"replay".to_string()), "{again}");
    let officer = narita.login("officer", "officer-pw").await;
    assert_eq!(replay_alerts(&narita, &officer, "D-E2E-1").await.len(), 1);

    // Bad input: an unknown gate, a tampered QR, not JSON.
    assert_eq!(decide(&narita, "stolen-token", &qr1).await.0, 401);
    let mut tampered = qr1.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let (_, bad) = decide(&narita, tn, &String::from_utf8(tampered).unwrap()).await;
    assert_eq!(bad["open"], false);
    assert!(
        reasons(&bad).contains(&"verification_failed".to_string()),
        "{bad}"
    );
    let garbage = reqwest::Client::new()
        .post(narita.url("/api/gate/decide"))
        .bearer_auth(tn)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status().as_u16(), 400);

    // Both airports cut off from headquarters (and each other): the same declaration is
    // shown at both, and both open, as neither can know.
    to_hq_n.cut();
    to_hq_k.cut();
    let qr2 = mizugiwa_gate_edge::qr::issue(&declaration("D-E2E-2"), &key, KID).unwrap();
    let (_, at_narita) = decide(&narita, tn, &qr2).await;
    let (_, at_kansai) = decide(&kansai, tk, &qr2).await;
    assert_eq!(at_narita["open"], true, "{at_narita}");
    assert_eq!(at_kansai["open"], true, "{at_kansai}");

    // The links return: each airport learns of the other's use, and exactly one alert exists,
    // everywhere, naming both uses.
    to_hq_n.heal();
    to_hq_k.heal();
    let kansai_officer = kansai.login("officer", "officer-pw").await;
    for (d, token) in [
        (&hq, &admin),
        (&narita, &officer),
        (&kansai, &kansai_officer),
    ] {
        wait_until(60, "the replay alert everywhere", || async {
            replay_alerts(d, token, "D-E2E-2").await.len() == 1
        })
        .await;
    }
    // Give any late duplicate a chance to appear, then count again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alerts = replay_alerts(&hq, &admin, "D-E2E-2").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let detail = &alerts[0]["fields"]["detail"];
    assert_eq!(detail["uses"].as_array().unwrap().len(), 2, "{detail}");
    let all_replays = hq
        .get(&admin, "/api/records/alerts")
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["fields"]["kind"] == "gate_replay")
        .count();
    assert_eq!(all_replays, 2, "D-E2E-1 and D-E2E-2, once each");

    // The passages and throughput counters reached headquarters: the counters summed over
    // batches, the gate's site and name written once and there.
    wait_until(30, "the gate counters at hq", || async {
        let stats = hq.get(&admin, "/api/records/gate_stats").await;
        stats.as_array().unwrap().iter().any(|s| {
            s["id"] == "narita-t1-g1"
                && s["fields"]["opened"] == 2
                && s["fields"]["officer_lane"] == 2
                && s["fields"]["site"] == "narita"
                && s["fields"]["gate"] == "t1-g1"
        })
    })
    .await;

    // Each airport's decision journal reached headquarters whole: signed by the site's own
    // certificate, chained, every passage in it as signed.
    for (site, decisions) in [("narita", 4), ("kansai", 1)] {
        wait_until(30, "the journal at hq", || async {
            let j = hq.get(&admin, &format!("/api/gate/journal/{site}")).await;
            j["intact"] == true && j["verified"] == decisions
        })
        .await;
    }
    let j = hq.get(&admin, "/api/gate/journal/narita").await;
    assert_eq!(j["epochs"].as_array().unwrap().len(), 1, "{j}");
    assert_eq!(j["epochs"][0]["last_seq"], 4, "{j}");

    // A replica that rewrites a decision is caught: headquarters overwrites the outcome of
    // narita's first passage (a last-writer-wins field), which the site's signature does not
    // cover, and the check names that passage.
    let mut hq = hq;
    hq.interrupt(20).expect("hq stops on Ctrl-C");
    let db = hq.data_dir.join("hq.db");
    let (db, ca) = (db.to_str().unwrap(), dep.pki().join("ca.crt"));
    let ca = ca.to_str().unwrap();
    let intact = dep.run(&[
        "gate", "journal", "--db", db, "--ca", ca, "--site", "narita",
    ]);
    assert!(
        intact.contains("4 entries verified in 1 epoch(s); 0 problem(s)"),
        "{intact}"
    );
    let passage = first["passage"].as_str().unwrap();
    dep.run(&[
        "store",
        "put",
        "--db",
        db,
        "gate_passages",
        passage,
        "outcome=officer_lane",
    ]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mizugiwa"))
        .args([
            "gate", "journal", "--db", db, "--ca", ca, "--site", "narita",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["altered"], json!([passage]), "{report}");
    assert_eq!(report["intact"], false);
    // A certificate of another deployment does not vouch for anything.
    let other = tempfile::tempdir().unwrap();
    dep.run(&[
        "pki",
        "init",
        "--dir",
        other.path().to_str().unwrap(),
        "--deployment",
        "other",
    ]);
    let stranger = other.path().join("ca.crt");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mizugiwa"))
        .args([
            "gate",
            "journal",
            "--db",
            db,
            "--ca",
            stranger.to_str().unwrap(),
            "--site",
            "kansai",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not issued by this deployment's CA"),
        "{err}"
    );
}
