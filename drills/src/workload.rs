//! What the officers do during a drill, through each site's own API, with every call written
//! to the journal: what was asked, when, and whether the site acknowledged it.
//!
//! An acknowledgement is the API's success answer, which the daemons send only once the
//! write is durable in their replica. The checker holds the deployment to exactly those.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::cluster::{PASSWORD, USER};
use crate::scenario::Workload;

/// What a call asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `POST /api/alerts`.
    Raise,
    /// `POST /api/alerts/{id}/ack`.
    Ack,
    /// `DELETE /api/alerts/{id}`.
    Withdraw,
    /// `POST /api/gate/decide`: a passenger at an e-gate (id: the passage on record).
    Pass,
}

/// One call of the workload.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// Milliseconds after the workload started.
    pub t_ms: u64,
    /// The site asked.
    pub site: String,
    pub op: Op,
    /// The alert (for a raise: the id the site gave it, when acknowledged).
    pub id: Option<String>,
    /// Acknowledged: the site said the write is durable.
    pub acked: bool,
    /// Why not, when not.
    pub error: Option<String>,
    /// How long the call took.
    pub took_ms: u64,
}

/// Every attempt of the drill.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<Attempt>>>);

impl Journal {
    fn push(&self, a: Attempt) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(a);
    }

    /// A copy of the attempts so far.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// An officer's session at one site.
pub struct Officer {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Officer {
    pub fn new(_site: &str, addr: SocketAddr) -> Officer {
        Officer {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            token: None,
        }
    }

    async fn login(&mut self) -> Result<String, String> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let r = self
            .http
            .post(format!("{}/api/login", self.base))
            .json(&json!({"user": USER, "password": PASSWORD}))
            .send()
            .await
            .map_err(|e| format!("login: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("login: HTTP {}", r.status()));
        }
        let v: Value = r.json().await.map_err(|e| format!("login: {e}"))?;
        let t = v["token"].as_str().ok_or("login: no token")?.to_owned();
        self.token = Some(t.clone());
        Ok(t)
    }

    /// One API call; on 401 (the daemon restarted and forgot the session) logs in again once.
    pub async fn call(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        for attempt in 0..2 {
            let token = self.login().await?;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(token);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let r = req.send().await.map_err(|e| short(&e))?;
            let status = r.status();
            if status == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                self.token = None;
                continue;
            }
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                return Err(format!(
                    "HTTP {status}: {}",
                    v["error"].as_str().unwrap_or("")
                ));
            }
            return Ok(v);
        }
        Err("unauthorised".into())
    }

    /// Every record of a collection at this site.
    pub async fn records(&mut self, collection: &str) -> Result<Vec<Value>, String> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/api/records/{collection}"),
                None,
            )
            .await?;
        v.as_array().cloned().ok_or_else(|| "not a list".into())
    }
}

fn short(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        e.to_string()
    }
}

/// Runs one site's officer until `stop`: raises alerts at the configured rate, and after each
/// raise acknowledges or withdraws one of the site's earlier alerts now and then. Only the
/// site's own, acknowledged, not withdrawn alerts are acted on, so the expected end state of
/// every alert is known.
pub async fn officer(
    site: String,
    addr: SocketAddr,
    workload: Workload,
    seed: u64,
    started: Instant,
    journal: Journal,
    mut stop: watch::Receiver<bool>,
) {
    let mut officer = Officer::new(&site, addr);
    let mut rng = seed | 1;
    let mut rand = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut live: Vec<String> = Vec::new();
    let every = Duration::from_secs_f64(1.0 / workload.alerts_per_sec);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        n += 1;
        let t0 = Instant::now();
        let body = json!({
            "title": format!("drill {site} #{n}"),
            "severity": "low",
            "lat": 34.0 + rand(),
            "lon": 129.0 + rand(),
        });
        let r = officer
            .call(reqwest::Method::POST, "/api/alerts", Some(body))
            .await;
        let id = r
            .as_ref()
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned));
        journal.push(Attempt {
            t_ms: t0.duration_since(started).as_millis() as u64,
            site: site.clone(),
            op: Op::Raise,
            acked: id.is_some(),
            error: match (&r, &id) {
                (Err(e), _) => Some(e.clone()),
                (Ok(_), None) => Some("answer without an id".into()),
                _ => None,
            },
            id: id.clone(),
            took_ms: t0.elapsed().as_millis() as u64,
        });
        if let Some(id) = id {
            live.push(id);
        }
        if live.len() > 1 && rand() < workload.ack_ratio {
            let id = live[(rand() * live.len() as f64) as usize % live.len()].clone();
            act(&mut officer, &journal, &site, started, Op::Ack, &id).await;
        }
        if live.len() > 1 && rand() < workload.withdraw_ratio {
            let i = (rand() * live.len() as f64) as usize % live.len();
            // Acknowledged or not (the daemon may have deleted it and failed to answer), the
            // alert is touched no more: no later write may legitimately bring it back.
            let id = live.swap_remove(i);
            act(&mut officer, &journal, &site, started, Op::Withdraw, &id).await;
        }
    }
}

/// Acknowledges (`Op::Ack`) or withdraws (`Op::Withdraw`) one alert.
async fn act(
    officer: &mut Officer,
    journal: &Journal,
    site: &str,
    started: Instant,
    op: Op,
    id: &str,
) -> bool {
    let t0 = Instant::now();
    let (method, path) = match op {
        Op::Withdraw => (reqwest::Method::DELETE, format!("/api/alerts/{id}")),
        Op::Ack | Op::Raise | Op::Pass => (reqwest::Method::POST, format!("/api/alerts/{id}/ack")),
    };
    let r = officer.call(method, &path, None).await;
    journal.push(Attempt {
        t_ms: t0.duration_since(started).as_millis() as u64,
        site: site.to_owned(),
        op,
        id: Some(id.to_owned()),
        acked: r.is_ok(),
        error: r.as_ref().err().cloned(),
        took_ms: t0.elapsed().as_millis() as u64,
    });
    r.is_ok()
}

/// Passengers through one gate until `stop`: each with a fresh signed declaration, the
/// specimen passport and a good face score. Acknowledged = the site answered with a decision
/// on record (gate open or officer lane alike: the gate kept deciding).
#[allow(clippy::too_many_arguments)]
pub async fn gate(
    site: String,
    gate: String,
    addr: SocketAddr,
    per_sec: f64,
    declarations: Vec<String>,
    started: Instant,
    journal: Journal,
    mut stop: watch::Receiver<bool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let token = crate::cluster::gate_token(&site, &gate);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for qr in declarations {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let t0 = Instant::now();
        let r = http
            .post(format!("http://{addr}/api/gate/decide"))
            .bearer_auth(&token)
            .json(&json!({ "qr": qr, "mrz": crate::cluster::EXAMPLE_MRZ, "face_score": 0.93 }))
            .send()
            .await;
        let (passage, error) = match r {
            Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                Ok(v) => match v["passage"].as_str() {
                    Some(p) => (Some(p.to_owned()), None),
                    None => (None, Some("answer without a passage".to_owned())),
                },
                Err(e) => (None, Some(e.to_string())),
            },
            Ok(r) => (None, Some(format!("HTTP {}", r.status()))),
            Err(e) => (None, Some(short(&e))),
        };
        journal.push(Attempt {
            t_ms: t0.duration_since(started).as_millis() as u64,
            site: site.clone(),
            op: Op::Pass,
            acked: passage.is_some(),
            id: passage,
            error,
            took_ms: t0.elapsed().as_millis() as u64,
        });
    }
}

/// What each live command center had of each site's acknowledged alerts, sampled each second:
/// the replication lag the report charts.
#[derive(Debug, Clone, Serialize)]
pub struct LagSample {
    pub t_ms: u64,
    /// command center → site → acknowledged raises of the site it does not have yet.
    pub missing: BTreeMap<String, BTreeMap<String, u64>>,
}
