//! End to end on real processes: `mizugiwa command` and `mizugiwa node` with their own
//! certificates, SQLite replicas and HTTP servers, the site reaching headquarters through a
//! UDP relay that the test can cut.
//!
//! A record dropped into the site's inbox appears on headquarters' live event feed; with the
//! link cut, the site and headquarters both write (a new alert at the site, an
//! acknowledgement at headquarters); after the heal both show both, and the event feed shows
//! them as they arrive. Bad requests (no login, wrong role, forged token) are refused.

mod common;

use std::time::Duration;

use common::{Daemon, Deployment, EventFeed, UdpRelay};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_record_reaches_the_dashboard_and_a_partition_heals() {
    let dep = Deployment::new(&[("hq", "command"), ("tsushima", "site")]);
    let hq = Daemon::command(&dep, "hq", &[]);
    let relay = UdpRelay::start(hq.sync_addr).await;
    let site = Daemon::site(&dep, "tsushima", &[("hq", relay.addr())]);

    let hq_admin = hq.login("admin", "admin-pw").await;
    let hq_viewer = hq.login("viewer", "viewer-pw").await;
    let site_officer = site.login("officer", "officer-pw").await;
    let feed = EventFeed::open(&hq, &hq_viewer).await;

    // 1. A record written at the site (through its inbox) reaches the command center's feed.
    site.drop_inbox(
        "a1.json",
        &json!({"collection": "alerts", "id": "tsushima-a1",
                "fields": {"title": "Dark vessel off Izuhara", "severity": "high",
                           "kind": "dark_vessel", "site": "tsushima", "status": "new",
                           "lat": 34.2, "lon": 129.3}}),
    );
    feed.wait_for(30, "the site's alert on hq's feed", |e| {
        e["collection"] == "alerts"
            && e["id"] == "tsushima-a1"
            && e["record"]["fields"]["title"] == "Dark vessel off Izuhara"
    })
    .await;
    // The site's health record arrives too.
    feed.wait_for(30, "the site's status record", |e| {
        e["collection"] == "sites" && e["id"] == "tsushima"
    })
    .await;

    // 2. Cut the link. Both sides keep working and write.
    relay.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked = hq
        .post(&hq_admin, "/api/alerts/tsushima-a1/ack", json!({}))
        .await;
    assert_eq!(acked["fields"]["status"], "acknowledged", "{acked}");
    site.drop_inbox(
        "a2.json",
        &json!({"collection": "alerts", "id": "tsushima-a2",
                "fields": {"title": "Boat landing at Komoda beach", "severity": "critical",
                           "site": "tsushima", "status": "new"}}),
    );
    site.wait_record(&site_officer, "alerts", "tsushima-a2", 30, |_| true)
        .await;
    // The officer at the site comments while cut off; it must survive the merge with hq's ack.
    site.post(
        &site_officer,
        "/api/alerts/tsushima-a1/comment",
        json!({"text": "patrol boat 2 dispatched"}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let at_hq = hq.get(&hq_viewer, "/api/records/alerts").await;
    assert!(
        !at_hq.to_string().contains("tsushima-a2"),
        "the partition held: hq cannot have seen a2 yet"
    );

    // 3. Heal: both converge, and hq's live feed shows the site's write.
    relay.heal();
    feed.wait_for(60, "a2 on hq's feed after the heal", |e| {
        e["id"] == "tsushima-a2" && e["record"].is_object()
    })
    .await;
    let a1 = site
        .wait_record(&site_officer, "alerts", "tsushima-a1", 60, |r| {
            r["fields"]["status"] == "acknowledged"
        })
        .await;
    assert_eq!(a1["fields"]["acked_by"], "admin");
    let comments = a1["fields"]["comments"].to_string();
    assert!(comments.contains("patrol boat 2 dispatched"), "{a1}");
    let at_hq = hq
        .wait_record(&hq_viewer, "alerts", "tsushima-a1", 60, |r| {
            r["fields"]["comments"]
                .to_string()
                .contains("patrol boat 2")
        })
        .await;
    assert_eq!(at_hq["fields"]["status"], "acknowledged");

    // 4. Concurrent actions never go backwards: the site resolves, hq acknowledges again.
    site.post(&site_officer, "/api/alerts/tsushima-a1/resolve", json!({}))
        .await;
    hq.post(&hq_admin, "/api/alerts/tsushima-a1/ack", json!({}))
        .await;
    for d in [&hq, &site] {
        let token = if d.name == "hq" {
            &hq_viewer
        } else {
            &site_officer
        };
        d.wait_record(token, "alerts", "tsushima-a1", 60, |r| {
            r["fields"]["status"] == "resolved"
        })
        .await;
    }
    let hq_alert = hq.get(&hq_viewer, "/api/records/alerts").await;
    assert!(hq_alert.to_string().contains("resolved"));

    // 5. The audit log recorded the logins and the actions, and its chain verifies.
    let audit = hq.get(&hq_admin, "/api/audit").await;
    let actions: Vec<String> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(actions.contains(&"login".to_string()) && actions.contains(&"ack".to_string()));
    assert!(audit["error"].is_null(), "{audit}");
    let verify = dep.run(&["audit", "verify", hq.audit_path().to_str().unwrap()]);
    assert!(verify.contains("chain intact"), "{verify}");

    // 6. Metrics show the site as a peer of hq, with records per collection.
    let metrics = hq.get_text("/metrics").await;
    assert!(
        metrics.contains("mizugiwa_sync_peer_connected{peer=\"tsushima\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("mizugiwa_records{collection=\"alerts\"}"));
    assert!(metrics.contains("mizugiwa_http_request_duration_seconds"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_and_wrong_role_requests_are_refused() {
    let dep = Deployment::new(&[("hq", "command")]);
    let hq = Daemon::command(&dep, "hq", &[]);
    let viewer = hq.login("viewer", "viewer-pw").await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", hq.http_addr);

    let r = client.get(url("/api/snapshot")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .get(url("/api/snapshot"))
        .bearer_auth("0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a forged token is refused");
    let r = client
        .post(url("/api/login"))
        .json(&json!({"user": "admin", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .post(url("/api/alerts"))
        .bearer_auth(&viewer)
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a viewer may not raise alerts");
    let r = client
        .get(url("/api/audit"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a viewer may not read the audit log");
    let before = hq.get(&viewer, "/api/records/alerts").await;
    let admin = hq.login("admin", "admin-pw").await;
    for bad in [
        json!({"title": ""}),
        json!({"title": "x", "severity": "apocalyptic"}),
        json!({"title": "x", "lat": 123.0, "lon": 0.0}),
    ] {
        let r = client
            .post(url("/api/alerts"))
            .bearer_auth(&admin)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = client
        .post(url("/api/alerts/no-such-alert/ack"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        hq.get(&viewer, "/api/records/alerts").await,
        before,
        "refused requests changed nothing"
    );
    let audit = hq.get(&admin, "/api/audit").await;
    assert!(audit.to_string().contains("login_failed"));
}

/// A coastal site fed by an AIS receiver over TCP (real sentences from a live receiver, with
/// garbage mixed in) and over UDP: vessels appear at the site and at headquarters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ais_feeds_over_tcp_and_udp_become_vessels_at_the_site_and_hq() {
    use tokio::io::AsyncWriteExt;

    let corpus = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/satellite/testdata/ais/pyais-nmea_data_sample.txt"
    ))
    .unwrap();
    // The receiver: a TCP server that sends the corpus with junk between the sentences.
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_addr = receiver.local_addr().unwrap();
    let feed = corpus.clone();
    tokio::spawn(async move {
        let (mut conn, _) = receiver.accept().await.unwrap();
        for (i, line) in feed.lines().enumerate() {
            if i % 50 == 0 {
                conn.write_all(b"!AIVDM,garbage*00\r\n\x00\xff\xfe\r\n")
                    .await
                    .unwrap();
            }
            conn.write_all(line.as_bytes()).await.unwrap();
            conn.write_all(b"\r\n").await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    });
    let udp_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let extra = format!(
        "[[sources]]\nkind = \"ais_tcp\"\naddr = \"{tcp_addr}\"\n\n\
         [[sources]]\nkind = \"ais_udp\"\nlisten = \"127.0.0.1:{udp_port}\"\n"
    );
    let dep = Deployment::new(&[("hq", "command"), ("tsushima", "site")]);
    let hq = Daemon::command(&dep, "hq", &[]);
    let site = Daemon::site_with(&dep, "tsushima", &[("hq", hq.sync_addr)], &extra);
    let officer = site.login("officer", "officer-pw").await;
    // The classic type 1 report (MMSI 366053209), sent by UDP.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(
        b"!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C\r\n",
        ("127.0.0.1", udp_port),
    )
    .unwrap();
    let v = site
        .wait_record(&officer, "vessels", "366053209", 30, |_| true)
        .await;
    assert!((v["fields"]["lat"].as_f64().unwrap() - 37.802118).abs() < 1e-5);
    // The TCP corpus holds dozens of distinct vessels.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let n = loop {
        let vessels = site.get(&officer, "/api/records/vessels").await;
        let n = vessels.as_array().unwrap().len();
        if n >= 20 || std::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(n >= 20, "only {n} vessels from the TCP feed");
    let viewer = hq.login("viewer", "viewer-pw").await;
    hq.wait_record(&viewer, "vessels", "366053209", 30, |_| true)
        .await;
    let crumbs = hq.get(&viewer, "/api/tracks?kind=vessel").await;
    assert!(
        !crumbs.as_array().unwrap().is_empty(),
        "breadcrumbs reach hq"
    );
}

/// A site revoked at headquarters while connected is dropped and refused from then on; its
/// later writes never reach HQ. The CLI cannot write into a database a daemon holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_revoked_at_hq_is_cut_off_and_refused() {
    let dep = Deployment::new(&[("hq", "command"), ("tsushima", "site")]);
    let hq = Daemon::command(&dep, "hq", &[]);
    let site = Daemon::site(&dep, "tsushima", &[("hq", hq.sync_addr)]);
    let admin = hq.login("admin", "admin-pw").await;
    site.drop_inbox(
        "before.json",
        &json!({"collection": "detections", "id": "before", "fields": {"source": "sar"}}),
    );
    hq.wait_record(&admin, "detections", "before", 30, |_| true)
        .await;

    // Writing into hq's database beside the running daemon is refused with a clear message.
    let db = hq.data_dir.join("hq.db");
    let out = std::process::Command::new(common::BIN)
        .args(["pki", "revoke", "--db", db.to_str().unwrap(), "tsushima"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Reading beside it works.
    let listed = dep.run(&["store", "list", "--db", db.to_str().unwrap(), "detections"]);
    assert!(listed.contains("before"), "{listed}");

    // A viewer may not revoke; the admin does, through the API.
    let viewer = hq.login("viewer", "viewer-pw").await;
    let r = reqwest::Client::new()
        .post(hq.url("/api/revocations"))
        .bearer_auth(&viewer)
        .json(&json!({"target": "tsushima"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    hq.post(
        &admin,
        "/api/revocations",
        json!({"target": "tsushima", "reason": "laptop lost in the typhoon"}),
    )
    .await;
    // Within a housekeeping pass or two hq drops the session (the site record says so).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let metrics = hq.get_text("/metrics").await;
        if metrics.contains("mizugiwa_sync_peer_connected{peer=\"tsushima\"} 0") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked site stayed connected:\n{metrics}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    site.drop_inbox(
        "after.json",
        &json!({"collection": "detections", "id": "after", "fields": {"source": "sar"}}),
    );
    let officer = site.login("officer", "officer-pw").await;
    site.wait_record(&officer, "detections", "after", 30, |_| true)
        .await;
    // The site keeps redialling (every second at most); hq keeps refusing.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let at_hq = hq.get(&admin, "/api/records/detections").await;
    assert!(
        !at_hq.to_string().contains("\"after\""),
        "a write made after revocation reached hq: {at_hq}"
    );
    let log = std::fs::read_to_string(dep.dir.path().join("hq.log")).unwrap();
    assert!(log.contains("revoked"), "hq logs the refusal clearly");
}

/// A dashboard that reconnects with `Last-Event-ID` gets exactly the events it missed; one
/// that presents an id from before the server's memory (or another run) is told to reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_feed_resumes_from_last_event_id() {
    use futures_util::StreamExt;

    let dep = Deployment::new(&[("hq", "command")]);
    let hq = Daemon::command(&dep, "hq", &[]);
    let op = hq.login("operator", "operator-pw").await;
    let client = reqwest::Client::new();
    // Reads SSE blocks of the given event name until `done` holds; returns (id, data).
    async fn read_events(
        resp: reqwest::Response,
        kind: &str,
        done: impl Fn(&[(u64, serde_json::Value)]) -> bool,
    ) -> Vec<(u64, serde_json::Value)> {
        let mut body = resp.bytes_stream();
        let (mut buf, mut out) = (String::new(), Vec::new());
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while !done(&out) {
            let chunk = tokio::time::timeout_at(deadline, body.next())
                .await
                .expect("events in time")
                .expect("stream open")
                .unwrap();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
                };
                if field("event:").as_deref() == Some(kind) {
                    let id = field("id:").and_then(|i| i.parse().ok()).unwrap_or(0);
                    let data = serde_json::from_str(&field("data:").unwrap_or_default())
                        .unwrap_or(serde_json::Value::Null);
                    out.push((id, data));
                }
            }
        }
        out
    }
    let raise = |title: &'static str| {
        let (client, url, op) = (client.clone(), hq.url("/api/alerts"), op.clone());
        async move {
            let r = client
                .post(url)
                .bearer_auth(op)
                .json(&json!({"title": title, "severity": "low"}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
    };
    let first = client
        .get(hq.url("/api/events"))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap();
    raise("one").await;
    let is_alert = |title: &'static str| {
        move |es: &[(u64, serde_json::Value)]| {
            es.iter()
                .any(|(_, d)| d["record"]["fields"]["title"] == title)
        }
    };
    let seen = read_events(first, "record", is_alert("one")).await;
    let last_id = seen.last().unwrap().0;
    // Disconnected (the response is dropped); two more alerts are raised meanwhile.
    raise("two").await;
    raise("three").await;
    let resumed = client
        .get(hq.url("/api/events"))
        .bearer_auth(&op)
        .header("Last-Event-ID", last_id.to_string())
        .send()
        .await
        .unwrap();
    let missed = read_events(resumed, "record", is_alert("three")).await;
    let titles: Vec<String> = missed
        .iter()
        .filter(|(_, d)| d["collection"] == "alerts")
        .map(|(_, d)| {
            d["record"]["fields"]["title"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert!(titles.contains(&"two".to_string()), "{missed:?}");
    assert!(
        !titles.contains(&"one".to_string()),
        "nothing seen before is repeated"
    );
    assert!(
        missed.iter().all(|(id, _)| *id > last_id),
        "only what was missed"
    );
    let stale = client
        .get(hq.url("/api/events"))
        .bearer_auth(&op)
        .header("Last-Event-ID", "42")
        .send()
        .await
        .unwrap();
    let reset = read_events(stale, "reset", |es| !es.is_empty()).await;
    assert!(reset[0].1["event_id"].as_u64().unwrap() >= last_id);
}

/// Ctrl-C stops a daemon promptly and cleanly even while dashboards hold live event streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_daemon_with_open_dashboards() {
    let dep = Deployment::new(&[("hq", "command")]);
    let mut hq = Daemon::command(&dep, "hq", &[]);
    let viewer = hq.login("viewer", "viewer-pw").await;
    let feeds = [
        EventFeed::open(&hq, &viewer).await,
        EventFeed::open(&hq, &viewer).await,
    ];
    feeds[0]
        .wait_for(10, "a first event", |e| e["collection"] == "sites")
        .await;
    let status = tokio::task::block_in_place(|| hq.interrupt(10));
    let status = status.expect("hq did not stop within 10 s of Ctrl-C");
    assert!(status.success(), "{status:?}");
}

/// A live stream ends with its session: after logout the feed closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_feed_ends_when_its_session_does() {
    use futures_util::StreamExt;

    let dep = Deployment::new(&[("hq", "command")]);
    let hq = Daemon::command(&dep, "hq", &[]);
    let viewer = hq.login("viewer", "viewer-pw").await;
    let resp = reqwest::Client::new()
        .get(hq.url("/api/events"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    hq.post(&viewer, "/api/logout", json!({})).await;
    let mut body = resp.bytes_stream();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its session");
}
