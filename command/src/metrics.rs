//! Prometheus metrics of a daemon (`/metrics`): sync lag and link state per peer, records per
//! collection, queue depths, live dashboard clients and request latencies.
//!
//! Gauges that describe state (lag, records) are read when scraped; request latencies are
//! recorded as they happen.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mizugiwa_sync::driver::StatusView;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A daemon's metrics registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    peers: Option<StatusView>,
    peer_connected: Family<Labels, Gauge>,
    peer_lag_changes: Family<Labels, Gauge>,
    peer_lag_entries: Family<Labels, Gauge>,
    peer_contact_age: Family<Labels, FloatGauge>,
    records: Family<Labels, Gauge>,
    queues: Family<Labels, Gauge>,
    sse_clients: Gauge,
    sessions: Gauge,
    refused_batches: Gauge,
    requests: Family<Labels, Histogram>,
}

impl Metrics {
    /// Metrics of a node whose sync driver reports through `peers`.
    pub fn new(peers: Option<StatusView>) -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Arc::new(Mutex::new(Registry::default())),
            peers,
            peer_connected: Family::default(),
            peer_lag_changes: Family::default(),
            peer_lag_entries: Family::default(),
            peer_contact_age: Family::default(),
            records: Family::default(),
            queues: Family::default(),
            sse_clients: Gauge::default(),
            sessions: Gauge::default(),
            refused_batches: Gauge::default(),
            requests: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 14))
            }),
        };
        registry.register(
            "mizugiwa_sync_peer_connected",
            "Whether a sync session with the peer is open (1) or not (0)",
            m.peer_connected.clone(),
        );
        registry.register(
            "mizugiwa_sync_lag_changes",
            "Changes this node has that the peer has not acknowledged",
            m.peer_lag_changes.clone(),
        );
        registry.register(
            "mizugiwa_sync_lag_entries",
            "Entries of this node's log past the peer's acknowledged cursor",
            m.peer_lag_entries.clone(),
        );
        registry.register(
            "mizugiwa_sync_last_contact_age_seconds",
            "Seconds since the last frame from the peer",
            m.peer_contact_age.clone(),
        );
        registry.register(
            "mizugiwa_records",
            "Live records per collection in this node's replica",
            m.records.clone(),
        );
        registry.register(
            "mizugiwa_queue_depth",
            "Items waiting in a pipeline queue",
            m.queues.clone(),
        );
        registry.register(
            "mizugiwa_dashboard_clients",
            "Open live-event streams",
            m.sse_clients.clone(),
        );
        registry.register(
            "mizugiwa_sessions",
            "Logged-in operator sessions",
            m.sessions.clone(),
        );
        registry.register(
            "mizugiwa_sync_refused_batches",
            "Batches from peers refused since start (a change stamped too far in the future: a peer's clock is wrong)",
            m.refused_batches.clone(),
        );
        registry.register(
            "mizugiwa_http_request_duration_seconds",
            "HTTP request latency by method, route and status",
            m.requests.clone(),
        );
        *m.registry.lock().expect("fresh mutex") = registry;
        m
    }

    /// Records one request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&labels(&[
                ("method", method),
                ("route", route),
                ("status", &status.to_string()),
            ]))
            .observe(took.as_secs_f64());
    }

    /// Sets the live record counts.
    pub fn set_records(&self, counts: &BTreeMap<String, u64>) {
        for (c, n) in counts {
            self.records
                .get_or_create(&labels(&[("collection", c)]))
                .set(*n as i64);
        }
    }

    /// Sets a queue's depth.
    pub fn set_queue(&self, queue: &str, depth: u64) {
        self.queues
            .get_or_create(&labels(&[("queue", queue)]))
            .set(depth as i64);
    }

    /// Sets the number of open event streams.
    pub fn set_sse_clients(&self, n: usize) {
        self.sse_clients.set(n as i64);
    }

    /// Sets the number of batches refused since start.
    pub fn set_refused_batches(&self, n: u64) {
        self.refused_batches.set(n as i64);
    }

    /// Sets the number of open sessions.
    pub fn set_sessions(&self, n: usize) {
        self.sessions.set(n as i64);
    }

    /// The text exposition, with the peers' state read now.
    pub fn encode(&self, now_ms: u64) -> String {
        if let Some(view) = &self.peers {
            for p in view.get() {
                let l = labels(&[("peer", &p.peer)]);
                self.peer_connected
                    .get_or_create(&l)
                    .set(i64::from(p.connected));
                self.peer_lag_changes
                    .get_or_create(&l)
                    .set(p.lag_changes as i64);
                self.peer_lag_entries
                    .get_or_create(&l)
                    .set(p.lag_entries as i64);
                if let Some(at) = p.last_contact_ms {
                    self.peer_contact_age
                        .get_or_create(&l)
                        .set(now_ms.saturating_sub(at) as f64 / 1000.0);
                }
            }
        }
        let mut out = String::new();
        if let Ok(r) = self.registry.lock() {
            let _ = encode(&mut out, &r);
        }
        out
    }
}
