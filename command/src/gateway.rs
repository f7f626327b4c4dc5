//! The Cursor-on-Target gateway: the store's picture out to a TAK server, TAK clients' events
//! in as records.
//!
//! Out: every change to a site, drone, vessel, detection or alert becomes a CoT event
//! ([`cot::event_for`]); sites and open alerts are also republished on a timer, because TAK
//! forgets what goes stale. In: each valid event from TAK becomes (or updates) record
//! `cot/<uid>`; records whose stale time has passed are deleted, so the picture at every
//! replica forgets them as TAK does.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mizugiwa_sync::{FieldOp, RecordWrite, Store};
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

/// The stale time an event from TAK is stored with: its own, capped at a day from now (an
/// event meant to last "forever" would otherwise never be expired from every replica).
fn stored_stale_ms(ev: &CotEvent, now: u64) -> u64 {
    ev.stale_ms.min(now + MAX_STALE_MS)
}

/// The record an event from TAK received at `now` becomes: collection, id and field writes.
fn record_of(ev: &CotEvent, now: u64) -> (String, String, Vec<(String, FieldOp)>) {
    let (collection, id, fields) = cot::record_for(ev);
    let stale = stored_stale_ms(ev, now);
    let ops = fields
        .iter()
        .map(|(f, v)| {
            let v = match f.as_str() {
                "stale_ms" => serde_json::Value::from(stale),
                _ => v.clone(),
            };
            (f.clone(), FieldOp::Set(records::value_from_json(&v)))
        })
        .collect();
    (collection, id, ops)
}

/// Writes an event from TAK as a record. Returns whether it was stored.
pub fn ingest(store: &mut Store, ev: &CotEvent, now: u64) -> bool {
    ingest_all(store, std::slice::from_ref(ev), now) == 1
}

/// Writes events from TAK as records in one transaction (one fsync for the lot: a busy TAK
/// server relays thousands of events a second, and a commit per event was most of the
/// gateway's cost). If the transaction fails, the events are written one by one, so that one
/// bad event costs only itself. Returns how many were stored.
pub fn ingest_all(store: &mut Store, events: &[CotEvent], now: u64) -> usize {
    // The field names stay in `names`; the writes borrow them and take the values.
    let mut names: Vec<(String, String, Vec<String>)> = Vec::with_capacity(events.len());
    let mut values: Vec<Vec<FieldOp>> = Vec::with_capacity(events.len());
    for ev in events {
        let (collection, id, fields) = record_of(ev, now);
        let (fields, ops): (Vec<String>, Vec<FieldOp>) = fields.into_iter().unzip();
        names.push((collection, id, fields));
        values.push(ops);
    }
    let ops: Vec<Vec<(&str, FieldOp)>> = names
        .iter()
        .zip(values)
        .map(|((_, _, fields), ops)| fields.iter().map(String::as_str).zip(ops).collect())
        .collect();
    let writes: Vec<RecordWrite> = names
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

/// The stale time of a stored `cot` record.
fn stale_of(record: &mizugiwa_sync::Record) -> Option<u64> {
    match record.get("stale_ms")? {
        mizugiwa_sync::Value::Int(i) => Some(*i as u64),
        mizugiwa_sync::Value::Float(f) => Some(*f as u64),
        _ => None,
    }
}

/// When each `cot` record goes stale, soonest first, so that the sweep reads only the
/// records that are due instead of listing the whole collection under the store's lock
/// every few seconds (a busy TAK server keeps hundreds of thousands of them).
///
/// The queue is a hint, the store decides: a due record is read again before it is deleted,
/// and one whose stale time moved meanwhile (an update through sync) is queued again. Records
/// that arrive only through sync (another command replica's gateway) are found by
/// [`StaleQueue::rescan`], which the gateway runs at start and then every ten minutes.
#[derive(Debug, Default)]
pub struct StaleQueue {
    /// The latest stale time known per record.
    latest: HashMap<String, u64>,
    /// (stale time, record), soonest first; entries that `latest` no longer agrees with are
    /// left behind by updates and skipped when they come up.
    due: BinaryHeap<Reverse<(u64, String)>>,
}

impl StaleQueue {
    /// Queues every `cot` record in `store` (and forgets nothing already queued).
    pub fn rescan(&mut self, store: &Store) {
        for record in store.list(COT).unwrap_or_default() {
            if let Some(stale) = stale_of(&record) {
                self.queue(record.id, stale);
            }
        }
    }

    /// Notes the stale time of an event as [`ingest_all`] stored it at `now`.
    pub fn note(&mut self, ev: &CotEvent, now: u64) {
        self.queue(ev.uid.clone(), stored_stale_ms(ev, now));
    }

    fn queue(&mut self, id: String, stale: u64) {
        if self.latest.get(&id) == Some(&stale) {
            return;
        }
        self.latest.insert(id.clone(), stale);
        self.due.push(Reverse((stale, id)));
        // Updates leave entries behind; rebuild before they outnumber the live ones.
        if self.due.len() > 2 * self.latest.len() + 1024 {
            self.due = self
                .latest
                .iter()
                .map(|(id, &stale)| Reverse((stale, id.clone())))
                .collect();
        }
    }

    /// How many records are queued.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// True when no record is queued.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Deletes the queued `cot` records whose stale time has passed, in transactions of at
    /// most [`EXPIRE_BATCH`] (one commit each, not one per record: a burst of events going
    /// stale together must not hold the store for a commit apiece); returns how many.
    pub fn expire(&mut self, store: &mut Store, now: u64) -> usize {
        let mut due = Vec::new();
        // Queued again only after the loop: they are due, and would come straight back up.
        let mut retry = Vec::new();
        while let Some(Reverse((stale, _))) = self.due.peek() {
            if *stale > now {
                break;
            }
            let Some(Reverse((stale, id))) = self.due.pop() else {
                break;
            };
            if self.latest.get(&id) != Some(&stale) {
                continue; // superseded by a later stale time, queued separately
            }
            self.latest.remove(&id);
            // The store decides: the record may have moved on through sync.
            match store.get(COT, &id) {
                Ok(Some(record)) => match stale_of(&record) {
                    Some(current) if current > now => self.queue(id, current),
                    _ => due.push((id, stale)),
                },
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%id, error = %e, "could not read a CoT record to expire it");
                    retry.push((id, stale));
                }
            }
        }
        let mut expired = 0;
        for chunk in due.chunks(EXPIRE_BATCH) {
            let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
            match store.delete_all(COT, &ids) {
                Ok(n) => expired += n,
                Err(e) => {
                    // Kept for the next sweep.
                    tracing::warn!(records = ids.len(), error = %e, "could not delete stale CoT records");
                    retry.extend(chunk.iter().cloned());
                }
            }
        }
        for (id, stale) in retry {
            self.queue(id, stale);
        }
        expired
    }
}

/// Most events from TAK written in one transaction.
const INGEST_BATCH: usize = 512;

/// Most stale `cot` records deleted in one transaction.
const EXPIRE_BATCH: usize = 512;

/// How often the gateway lists the whole `cot` collection to queue the records that reached
/// this replica through sync rather than through its own TAK connection.
const RESCAN_STALE_EVERY: Duration = Duration::from_secs(600);

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
            let queue = Arc::new(Mutex::new(StaleQueue::default()));
            let mut sweep = tokio::time::interval(Duration::from_secs(5));
            let mut rescan = tokio::time::interval(RESCAN_STALE_EVERY);
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
                            let (store, queue) = (store.clone(), queue.clone());
                            let _ = tokio::task::spawn_blocking(move || {
                                // One time for the records and the queue: they agree on
                                // every capped stale time.
                                let now = tak::now_ms();
                                if let Ok(mut s) = store.lock() {
                                    ingest_all(&mut s, &batch, now);
                                }
                                if let Ok(mut q) = queue.lock() {
                                    batch.iter().for_each(|ev| q.note(ev, now));
                                }
                            })
                            .await;
                        }
                        None => break,
                    },
                    _ = sweep.tick() => {
                        let (store, queue) = (store.clone(), queue.clone());
                        let _ = tokio::task::spawn_blocking(move || {
                            let (Ok(mut s), Ok(mut q)) = (store.lock(), queue.lock()) else {
                                return;
                            };
                            let n = q.expire(&mut s, tak::now_ms());
                            if n > 0 {
                                tracing::info!(expired = n, queued = q.len(), "stale CoT records removed");
                            }
                        })
                        .await;
                    }
                    // The first tick is at once: the records stored before this start.
                    _ = rescan.tick() => {
                        let (store, queue) = (store.clone(), queue.clone());
                        let _ = tokio::task::spawn_blocking(move || {
                            if let (Ok(s), Ok(mut q)) = (store.lock(), queue.lock()) {
                                q.rescan(&s);
                            }
                        })
                        .await;
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
        assert!(ingest(&mut store, &ev, now));
        let rec = store.get(COT, "ANDROID-forever").unwrap().unwrap();
        let stale = match rec.get("stale_ms") {
            Some(mizugiwa_sync::Value::Int(i)) => *i as u64,
            other => panic!("{other:?}"),
        };
        assert!(stale <= now + MAX_STALE_MS + 1000, "{stale}");
        let mut queue = StaleQueue::default();
        queue.rescan(&store);
        assert_eq!(queue.expire(&mut store, now), 0);
        assert_eq!(queue.expire(&mut store, now + MAX_STALE_MS + 2000), 1);
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
        assert_eq!(ingest_all(&mut store, &batch, now), 3);
        assert_eq!(store.ids(COT).unwrap(), ["ANDROID-a", "ANDROID-b"]);
        let a = store.get(COT, "ANDROID-a").unwrap().unwrap().to_json();
        assert_eq!(a["fields"]["lat"], serde_json::json!(34.3), "{a}");
    }

    /// The queue deletes what is due and only that; a record whose stale time was pushed back
    /// by a later event stays until its new time; one deleted meanwhile costs nothing.
    #[test]
    fn the_stale_queue_expires_what_is_due_and_follows_updates() {
        let mut store = hq_store();
        let mut queue = StaleQueue::default();
        let now = tak::now_ms();
        let soon = cot::format_time(now + 10_000);
        let later = cot::format_time(now + 60_000);
        let batch = [
            event("ANDROID-a", "Alpha", 34.1, now, &soon),
            event("ANDROID-b", "Bravo", 34.2, now, &soon),
            event("ANDROID-c", "Charlie", 34.3, now, &soon),
        ];
        assert_eq!(ingest_all(&mut store, &batch, now), 3);
        batch.iter().for_each(|ev| queue.note(ev, now));
        // Alpha reports again and lives longer; Charlie is deleted by someone else.
        let update = event("ANDROID-a", "Alpha", 34.4, now + 5_000, &later);
        assert!(ingest(&mut store, &update, now + 5_000));
        queue.note(&update, now + 5_000);
        assert!(store.delete(COT, "ANDROID-c").unwrap());
        assert_eq!(queue.len(), 3);

        assert_eq!(queue.expire(&mut store, now + 9_000), 0, "nothing due yet");
        assert_eq!(queue.expire(&mut store, now + 11_000), 1, "only Bravo");
        assert_eq!(store.ids(COT).unwrap(), ["ANDROID-a"]);
        assert_eq!(queue.len(), 1);
        assert_eq!(
            queue.expire(&mut store, now + 61_000),
            1,
            "Alpha at its new time"
        );
        assert!(store.ids(COT).unwrap().is_empty());
        assert!(queue.is_empty());
    }

    /// Records stored before the gateway started (or through sync) are found by a rescan; a
    /// record whose stored stale time moved beyond the queued one is queued again, not deleted.
    #[test]
    fn a_rescan_finds_records_the_queue_was_not_told_about() {
        let mut store = hq_store();
        let now = tak::now_ms();
        let soon = cot::format_time(now + 10_000);
        let later = cot::format_time(now + 60_000);
        assert!(ingest(
            &mut store,
            &event("ANDROID-a", "Alpha", 34.1, now, &soon),
            now
        ));
        let mut queue = StaleQueue::default();
        assert_eq!(queue.expire(&mut store, now + 11_000), 0, "not told");
        queue.rescan(&store);
        // The record moves on without the queue hearing of it (as through sync).
        assert!(ingest(
            &mut store,
            &event("ANDROID-a", "Alpha", 34.2, now, &later),
            now
        ));
        assert_eq!(
            queue.expire(&mut store, now + 11_000),
            0,
            "re-read, not deleted"
        );
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.expire(&mut store, now + 61_000), 1);
        assert!(store.get(COT, "ANDROID-a").unwrap().is_none());
    }
}
