//! The Cursor-on-Target gateway: the store's picture out to a TAK server, TAK clients' events
//! in as records.
//!
//! Out: every change to a site, drone, vessel, detection or alert becomes a CoT event
//! ([`cot::event_for`]); sites and open alerts are also republished on a timer, because TAK
//! forgets what goes stale. In: each valid event from TAK becomes (or updates) record
//! `cot/<uid>`; records whose stale time has passed are deleted, so the picture at every
//! replica forgets them as TAK does.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mizugiwa_sync::{FieldOp, Store};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::cot::{self, CotEvent};
use crate::records::{self, ALERTS, COT, DETECTIONS, DRONES, SITES, VESSELS};
use crate::tak::{self, TakConfig, TakStats, TakTls};

/// The `[tak]` section of a daemon's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakSection {
    /// `host:port` of the TAK server's streaming CoT port (taky: 8087 TCP, 8089 TLS).
    pub addr: String,
    /// PEM files for TLS with a client certificate; plain TCP when absent.
    pub tls: Option<TakTlsSection>,
    /// Seconds between republishing sites and open alerts (default 60; TAK marks sites stale
    /// after 2 minutes).
    #[serde(default = "default_republish")]
    pub republish_secs: u64,
}

/// TLS files of the `[tak.tls]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakTlsSection {
    /// The TAK server's CA certificate.
    pub ca: PathBuf,
    /// Our client certificate.
    pub cert: PathBuf,
    /// Our private key.
    pub key: PathBuf,
    /// The name on the server certificate, if not the host of `addr`.
    pub server_name: Option<String>,
}

fn default_republish() -> u64 {
    60
}

/// Longest time a TAK client's event is kept.
const MAX_STALE_MS: u64 = 24 * 3600 * 1000;

const PUBLISHED: [&str; 5] = [SITES, DRONES, VESSELS, DETECTIONS, ALERTS];

/// A running gateway.
pub struct Gateway {
    /// Its counters.
    pub stats: Arc<TakStats>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Gateway {
    /// Stops the gateway.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn event_of(store: &Store, collection: &str, id: &str, now: u64) -> Option<CotEvent> {
    let record = store.get(collection, id).ok().flatten()?.to_json();
    let fields = record.get("fields")?.as_object()?;
    cot::event_for(collection, id, fields, now)
}

/// The record an event from TAK becomes: collection, id and field writes.
fn record_of(ev: &CotEvent) -> (String, String, Vec<(String, FieldOp)>) {
    let (collection, id, fields) = cot::record_for(ev);
    // A client's stale time is capped at a day: an event meant to last "forever" would
    // otherwise never be expired from every replica.
    let latest_stale = tak::now_ms() + MAX_STALE_MS;
    let ops = fields
        .iter()
        .map(|(f, v)| {
            let v = match (f.as_str(), v.as_u64()) {
                ("stale_ms", Some(stale)) if stale > latest_stale => {
                    serde_json::Value::from(latest_stale)
                }
                _ => v.clone(),
            };
            (f.clone(), FieldOp::Set(records::value_from_json(&v)))
        })
        .collect();
    (collection, id, ops)
}

/// Writes an event from TAK as a record. Returns whether it was stored.
pub fn ingest(store: &mut Store, ev: &CotEvent) -> bool {
    ingest_all(store, std::slice::from_ref(ev)) == 1
}

/// Writes events from TAK as records in one transaction (one fsync for the lot: a busy TAK
/// server relays thousands of events a second, and a commit per event was most of the
/// gateway's cost). If the transaction fails, the events are written one by one, so that one
/// bad event costs only itself. Returns how many were stored.
pub fn ingest_all(store: &mut Store, events: &[CotEvent]) -> usize {
    // The field names stay in `names`; the writes borrow them and take the values.
    let mut names: Vec<(String, String, Vec<String>)> = Vec::with_capacity(events.len());
    let mut values: Vec<Vec<FieldOp>> = Vec::with_capacity(events.len());
    for ev in events {
        let (collection, id, fields) = record_of(ev);
        let (fields, ops): (Vec<String>, Vec<FieldOp>) = fields.into_iter().unzip();
        names.push((collection, id, fields));
        values.push(ops);
    }
    let ops: Vec<Vec<(&str, FieldOp)>> = names
        .iter()
        .zip(values)
        .map(|((_, _, fields), ops)| fields.iter().map(String::as_str).zip(ops).collect())
        .collect();
    let writes: Vec<(&str, &str, &[(&str, FieldOp)])> = names
        .iter()
        .zip(&ops)
        .map(|((c, id, _), ops)| (c.as_str(), id.as_str(), ops.as_slice()))
        .collect();
    if store.put_all(&writes).is_ok() {
        return events.len();
    }
    writes
        .iter()
        .zip(events)
        .filter(|((c, id, ops), ev)| match store.put(c, id, ops) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(uid = %ev.uid, error = %e, "could not store a CoT event");
                false
            }
        })
        .count()
}

/// Deletes `cot` records past their stale time; returns how many.
pub fn expire(store: &mut Store, now: u64) -> usize {
    let stale: Vec<String> = store
        .list(COT)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.get("stale_ms")
                .and_then(|v| match v {
                    mizugiwa_sync::Value::Int(i) => Some(*i as u64),
                    mizugiwa_sync::Value::Float(f) => Some(*f as u64),
                    _ => None,
                })
                .is_some_and(|s| s <= now)
        })
        .map(|r| r.id)
        .collect();
    stale
        .iter()
        .filter(|id| store.delete(COT, id).unwrap_or(false))
        .count()
}

/// Most events from TAK written in one transaction.
const INGEST_BATCH: usize = 512;

/// Starts the gateway for `store`.
pub fn start(store: Arc<Mutex<Store>>, section: &TakSection) -> Gateway {
    let config = match &section.tls {
        None => TakConfig::tcp(section.addr.clone()),
        Some(t) => TakConfig::tls(
            section.addr.clone(),
            TakTls {
                ca_pem: t.ca.clone(),
                cert_pem: t.cert.clone(),
                key_pem: t.key.clone(),
                server_name: t.server_name.clone(),
            },
        ),
    };
    let stats = Arc::new(TakStats::default());
    let (out_tx, out_rx) = mpsc::channel::<CotEvent>(4096);
    let (in_tx, mut in_rx) = mpsc::channel::<CotEvent>(4096);
    let (stop, stopped) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(tak::run(config, out_rx, in_tx, stats.clone()))];

    // Out: changes, and the periodic republish.
    {
        let (store, mut stopped, republish) = (
            store.clone(),
            stopped.clone(),
            Duration::from_secs(section.republish_secs.max(1)),
        );
        tasks.push(tokio::spawn(async move {
            let mut changes = match store.lock() {
                Ok(s) => s.subscribe(),
                Err(_) => return,
            };
            let mut tick = tokio::time::interval(republish);
            let send = |ev: Option<CotEvent>| {
                if let Some(ev) = ev {
                    // Never block the store's consumers on a slow TAK server: the latest
                    // state is republished anyway.
                    if out_tx.try_send(ev).is_err() {
                        tracing::debug!("TAK outgoing queue full; event dropped");
                    }
                }
            };
            loop {
                tokio::select! {
                    change = changes.recv() => match change {
                        Ok(c) if PUBLISHED.contains(&c.collection.as_str()) => {
                            let ev = store.lock().ok().and_then(|s| event_of(&s, &c.collection, &c.record, tak::now_ms()));
                            send(ev);
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::debug!(missed = n, "TAK gateway lagged; the republish catches up");
                        }
                        Err(_) => break,
                    },
                    _ = tick.tick() => {
                        let now = tak::now_ms();
                        let events: Vec<CotEvent> = match store.lock() {
                            // Sites, and alerts still open: a resolved alert was sent once as
                            // already stale, which removed it from TAK clients.
                            Ok(s) => [SITES, ALERTS].iter().flat_map(|c| {
                                s.list(c).unwrap_or_default().into_iter()
                                    .filter(|r| r.fields.get("status").is_none_or(|v| *v != mizugiwa_sync::FieldValue::Status("resolved".into())))
                                    .filter_map(|r| event_of(&s, c, &r.id, now)).collect::<Vec<_>>()
                            }).collect(),
                            Err(_) => break,
                        };
                        for ev in events {
                            send(Some(ev));
                        }
                    }
                    _ = stopped.wait_for(|s| *s) => break,
                }
            }
            // Dropping `out_tx` here ends `tak::run`.
        }));
    }
    // In: events from TAK become records; stale ones are forgotten.
    {
        let mut stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let mut sweep = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    ev = in_rx.recv() => match ev {
                        Some(ev) => {
                            // Everything that arrived meanwhile goes in the same commit.
                            let mut batch = vec![ev];
                            while batch.len() < INGEST_BATCH {
                                match in_rx.try_recv() {
                                    Ok(ev) => batch.push(ev),
                                    Err(_) => break,
                                }
                            }
                            let store = store.clone();
                            let _ = tokio::task::spawn_blocking(move || {
                                if let Ok(mut s) = store.lock() {
                                    ingest_all(&mut s, &batch);
                                }
                            })
                            .await;
                        }
                        None => break,
                    },
                    _ = sweep.tick() => {
                        if let Ok(mut s) = store.lock() {
                            let n = expire(&mut s, tak::now_ms());
                            if n > 0 {
                                tracing::info!(expired = n, "stale CoT records removed");
                            }
                        }
                    }
                    // (The watch's guard must not live across the await above.)
                    _ = async { let _ = stopped.wait_for(|s| *s).await; } => break,
                }
            }
        }));
    }
    Gateway { stats, stop, tasks }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn hq_store() -> Store {
        Store::open_in_memory(
            records::schema(),
            Arc::new(mizugiwa_sync::SystemClock::new()),
            mizugiwa_sync::StoreConfig::new("hq"),
        )
        .unwrap()
    }

    /// A TAK client's position report, sent at `now`.
    fn event(uid: &str, callsign: &str, lat: f64, now: u64, stale: &str) -> CotEvent {
        let xml = format!(
            r#"<event version="2.0" uid="{uid}" type="a-f-G-U-C" how="h-e" time="{t}" start="{t}" stale="{stale}"><point lat="{lat}" lon="129.4" hae="0" ce="10" le="10"/><detail><contact callsign="{callsign}"/></detail></event>"#,
            t = cot::format_time(now)
        );
        cot::parse(xml.as_bytes()).unwrap()
    }

    #[test]
    fn an_event_that_would_never_go_stale_is_kept_a_day_at_most_then_expired() {
        let mut store = hq_store();
        let now = tak::now_ms();
        let ev = event(
            "ANDROID-forever",
            "Forever",
            34.3,
            now,
            "2999-01-01T00:00:00.000Z",
        );
        assert!(ingest(&mut store, &ev));
        let rec = store.get(COT, "ANDROID-forever").unwrap().unwrap();
        let stale = match rec.get("stale_ms") {
            Some(mizugiwa_sync::Value::Int(i)) => *i as u64,
            other => panic!("{other:?}"),
        };
        assert!(stale <= now + MAX_STALE_MS + 1000, "{stale}");
        assert_eq!(expire(&mut store, now), 0);
        assert_eq!(expire(&mut store, now + MAX_STALE_MS + 2000), 1);
        assert!(store.get(COT, "ANDROID-forever").unwrap().is_none());
    }

    /// A batch of events is stored in order: the later event of a uid wins, and every event is
    /// counted.
    #[test]
    fn a_batch_of_events_is_stored_in_order_and_every_event_counted() {
        let mut store = hq_store();
        let now = tak::now_ms();
        let stale = cot::format_time(now + 60_000);
        let batch = vec![
            event("ANDROID-a", "Alpha", 34.1, now, &stale),
            event("ANDROID-b", "Bravo", 34.2, now, &stale),
            event("ANDROID-a", "Alpha", 34.3, now, &stale),
        ];
        assert_eq!(ingest_all(&mut store, &batch), 3);
        assert_eq!(store.ids(COT).unwrap(), ["ANDROID-a", "ANDROID-b"]);
        let a = store.get(COT, "ANDROID-a").unwrap().unwrap().to_json();
        assert_eq!(a["fields"]["lat"], serde_json::json!(34.3), "{a}");
    }
}
