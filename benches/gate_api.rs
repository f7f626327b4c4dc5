//! Gate decisions through the API of a real site daemon: p99 latency at a paced 500
//! decisions/s (target ≤ 5 ms, DESIGN.md), with the bare in-process decision (QR, signature,
//! MRZ, allowance, decide) measured in the same run as the anchor.
//!
//! `cargo bench --bench gate_api` (or `make bench`): starts `mizugiwa command` (publishing the
//! trust list) and `mizugiwa node` (an airport with one gate) on loopback, waits for the trust
//! list to reach the airport, then sends 30 s of open-loop traffic, every passenger with a
//! fresh declaration. Latency is measured from each request's scheduled send time, so a
//! stalled server cannot hide its backlog. Writes its section of gate-edge/BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Daemon, Deployment};
use mizugiwa_gate_edge::trust::{PublicKeyFile, SigningKey};
use serde_json::{json, Value};

const SECONDS: f64 = 30.0;
const KID: &str = "bench-1";

fn mrz() -> Vec<String> {
    mizugiwa_gate_edge::declaration::example_mrz().to_vec()
}

fn qr(key: &SigningKey, n: usize) -> String {
    let mut d = mizugiwa_gate_edge::declaration::example();
    let now = time::OffsetDateTime::now_utc();
    d.id = format!("D-BENCH-{n:06}");
    d.issued_at = now - time::Duration::hours(1);
    d.arrival_date = now.date();
    mizugiwa_gate_edge::qr::issue(&d, key, KID).unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // The target's rate; MZ_GATE_RATE changes it to see the latency without queueing.
    let rate: f64 = std::env::var("MZ_GATE_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(500.0);
    let key = SigningKey::ed25519_from_seed([9; 32]);
    let total = (rate * SECONDS) as usize;
    eprintln!("issuing {total} declarations");
    let qrs: Vec<String> = (0..total + 2000).map(|n| qr(&key, n)).collect();
    let lines = mrz();

    // The anchor: the same decision in-process, no HTTP, no store.
    let mut trust = mizugiwa_gate_edge::trust::TrustList::new(time::OffsetDateTime::now_utc());
    trust.insert(
        KID,
        mizugiwa_gate_edge::trust::TrustedKey::new(key.public_key()),
    );
    let revoked = mizugiwa_gate_edge::trust::RevocationList::new(time::OffsetDateTime::now_utc());
    let policy = mizugiwa_gate_edge::Policy::default();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut anchor = Vec::new();
    for q in &qrs[total..total + 2000] {
        let t = Instant::now();
        let now = time::OffsetDateTime::now_utc();
        let input = mizugiwa_gate_edge::GateInput {
            verification: mizugiwa_gate_edge::qr::verify(
                q,
                &trust,
                &revoked,
                now,
                &Default::default(),
            ),
            mrz: mizugiwa_gate_edge::mrz::parse(&refs),
            chip: None,
            face_match_score: Some(0.95),
            watchlist_hit: false,
            replay_seen: false,
            now,
            seed: 1,
        };
        std::hint::black_box(mizugiwa_gate_edge::decide(&input, &policy));
        anchor.push(t.elapsed().as_secs_f64() * 1e3);
    }
    anchor.sort_by(f64::total_cmp);

    let dep = Deployment::new(&[("hq", "command"), ("narita", "site")]);
    let trust_dir = dep.dir.path().join("trust");
    std::fs::create_dir_all(&trust_dir).unwrap();
    std::fs::write(
        trust_dir.join(format!("{KID}.pub")),
        PublicKeyFile::new(key.public_key()).to_text().unwrap(),
    )
    .unwrap();
    let policy_file = dep.dir.path().join("policy.toml");
    std::fs::write(
        &policy_file,
        "version = \"bench\"\nface_match_threshold = 0.8\nrandom_selection_rate = 0.0\n",
    )
    .unwrap();
    let hq = Daemon::command_with(
        &dep,
        "hq",
        &[],
        "[gates]\ntrust_dir = \"trust\"\npublish_secs = 1\n",
    );
    let token = "bench-gate-token";
    let site = Daemon::site_with(
        &dep,
        "narita",
        &[("hq", hq.sync_addr)],
        &format!(
            "[gates]\npolicy = \"{}\"\n[[gates.devices]]\nid = \"g1\"\ntoken_blake3 = \"{}\"\n",
            policy_file.display(),
            mizugiwa_field_node::gate::token_hash(token)
        ),
    );
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = client
            .get(site.url("/api/gate/status"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        if v["keys"].as_array().is_some_and(|k| !k.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "trust list never reached the site"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    eprintln!("sending {total} decisions at {rate}/s");
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let url = site.url("/api/gate/decide");
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for (i, q) in qrs.into_iter().take(total).enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (client, url, lines, lat, fail) = (
            client.clone(),
            url.clone(),
            lines.clone(),
            latencies.clone(),
            failures.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let r = client
                .post(&url)
                .bearer_auth(token)
                .json(&json!({ "qr": q, "mrz": lines, "face_score": 0.95 }))
                .send()
                .await;
            let ok = match r {
                Ok(r) if r.status().is_success() => r
                    .json::<Value>()
                    .await
                    .map(|v| v["open"] == true)
                    .unwrap_or(false),
                _ => false,
            };
            let ms = sent.elapsed().as_secs_f64() * 1e3;
            let late = sent.saturating_duration_since(due).as_secs_f64() * 1e3;
            if ok {
                lat.lock().unwrap().push((ms, late));
            } else {
                fail.lock().unwrap().push(i);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let wall = start.elapsed().as_secs_f64();
    // The node's own view: its request-latency histogram for the route (mean from sum/count).
    let metrics = client
        .get(site.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap_or_default();
    let series = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with(name)
                    && l.contains("route=\"/api/gate/decide\"")
                    && l.contains("status=\"200\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let server_mean_ms = 1e3 * series("mizugiwa_http_request_duration_seconds_sum")
        / series("mizugiwa_http_request_duration_seconds_count").max(1.0);
    let both = latencies.lock().unwrap().clone();
    // Latency through the API: from the request leaving the client to the answer. The
    // client's own lateness (tokio's timer ticks in milliseconds, and it shares the cores) is
    // reported beside it, and the latency from each request's scheduled time as well.
    let mut lat: Vec<f64> = both.iter().map(|(ms, _)| *ms).collect();
    lat.sort_by(f64::total_cmp);
    let mut late: Vec<f64> = both.iter().map(|(_, l)| *l).collect();
    late.sort_by(f64::total_cmp);
    let mut from_due: Vec<f64> = both.iter().map(|(ms, l)| ms + l).collect();
    from_due.sort_by(f64::total_cmp);
    let failed = failures.lock().unwrap().len();
    let p = |s: &[f64], q: f64| percentile(s, q);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let section = format!(
        "<!-- api-latency: written by `cargo bench --bench gate_api` -->\n\
## Decisions through the gate API at {rate:.0}/s\n\n\
A real `mizugiwa node` (airport, one gate; its replica with synchronous=FULL) and a real `mizugiwa command` publishing the trust list, on loopback. \
{total} passengers in {SECONDS:.0} s, open loop (each request sent at its scheduled time whatever the earlier ones are doing), each with a fresh signed declaration; \
every decision is recorded durably (passage, declaration use, gate counters in one transaction) before the gate is answered. \
Anchor: the same decision in-process without HTTP or store, same run. Machine: {cpu}, {} cores; {}.\n\n\
| | p50 | p90 | p99 | max |\n|---|---|---|---|---|\n\
| through the API, recorded durably (from the request's send) | {:.2} ms | {:.2} ms | **{:.2} ms** | {:.2} ms |\n\
| the same, from the request's scheduled time | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |\n\
| (the client's lateness in sending) | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |\n\
| anchor: in-process decision | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms |\n\n\
Inside the node (its own request histogram, from the request's arrival to the answer): mean {server_mean_ms:.2} ms. \
Answered {} of {total} with the gate open ({failed} failed or refused); achieved {:.0} decisions/s. \
Target p99 ≤ 5 ms at 500/s: **{}**. The API p99 is {:.1}× the in-process p99: the difference is HTTP, the store lock and the fsync of the record.\n\
<!-- /api-latency -->\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        time::OffsetDateTime::now_utc().date(),
        p(&lat, 0.5), p(&lat, 0.9), p(&lat, 0.99), lat.last().copied().unwrap_or(f64::NAN),
        p(&from_due, 0.5), p(&from_due, 0.9), p(&from_due, 0.99), from_due.last().copied().unwrap_or(f64::NAN),
        p(&late, 0.5), p(&late, 0.9), p(&late, 0.99), late.last().copied().unwrap_or(f64::NAN),
        p(&anchor, 0.5), p(&anchor, 0.9), p(&anchor, 0.99), anchor.last().copied().unwrap_or(f64::NAN),
        lat.len(),
        lat.len() as f64 / wall,
        if p(&lat, 0.99) <= 5.0 && failed == 0 { "met" } else { "not met" },
        p(&lat, 0.99) / p(&anchor, 0.99),
    );
    println!("{section}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gate-edge/BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let start_marker = "<!-- api-latency";
    let end_marker = "<!-- /api-latency -->\n";
    let updated = match (text.find(start_marker), text.find(end_marker)) {
        (Some(a), Some(b)) => format!("{}{section}{}", &text[..a], &text[b + end_marker.len()..]),
        _ => format!("{text}\n{section}"),
    };
    std::fs::write(&path, updated).unwrap();
    eprintln!("wrote {}", path.display());
}
