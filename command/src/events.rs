//! Live record events for dashboards, with resume.
//!
//! A pump turns the store's change notifications into numbered JSON events and keeps the most
//! recent ones in a ring. A browser that reconnects with `Last-Event-ID` gets everything after
//! that id from the ring; one that fell further behind (or saw another run of the daemon) is
//! told to `reset`, that is to reload the snapshot, so that it never shows a silently
//! incomplete picture.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use mizugiwa_sync::{ChangeEvent, Store};

use crate::readers::Readers;
use tokio::sync::broadcast;

/// One numbered event, already serialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its id; ids increase by one.
    pub id: u64,
    /// `record` or `reset`.
    pub kind: &'static str,
    /// The JSON payload.
    pub data: Arc<str>,
}

struct Ring {
    next: u64,
    buf: VecDeque<Event>,
}

/// The numbered event stream and its replay ring.
pub struct EventHub {
    ring: Mutex<Ring>,
    live: broadcast::Sender<Event>,
    capacity: usize,
}

/// What a (re)connecting client gets before the live stream.
#[derive(Debug)]
pub struct Resume {
    /// Events after the client's last id, oldest first (a `reset` first if it missed some).
    pub backlog: Vec<Event>,
    /// The live stream; skip ids up to `start_after`.
    pub live: broadcast::Receiver<Event>,
    /// The id the client is now up to once it has the backlog (after a `reset`: the newest id,
    /// whatever id the client claimed).
    pub start_after: u64,
}

impl EventHub {
    /// A hub keeping the last `capacity` events. Ids start at the current wall time in
    /// milliseconds times 1000, so ids from an earlier run of the daemon are always older than
    /// the ring and get a `reset`.
    pub fn new(capacity: usize) -> Arc<EventHub> {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64 * 1000)
            .unwrap_or(1);
        let (live, _) = broadcast::channel(capacity.max(16));
        Arc::new(EventHub {
            ring: Mutex::new(Ring {
                next: start,
                buf: VecDeque::with_capacity(capacity),
            }),
            live,
            capacity,
        })
    }

    /// Numbers and publishes an event.
    pub fn publish(&self, kind: &'static str, data: String) -> u64 {
        let Ok(mut ring) = self.ring.lock() else {
            return 0;
        };
        let event = Event {
            id: ring.next,
            kind,
            data: data.into(),
        };
        ring.next += 1;
        if ring.buf.len() == self.capacity {
            ring.buf.pop_front();
        }
        ring.buf.push_back(event.clone());
        // Sent under the lock so that the live order is the id order.
        let _ = self.live.send(event.clone());
        event.id
    }

    /// The id of the newest event (one less than the next).
    pub fn last_id(&self) -> u64 {
        self.ring.lock().map(|r| r.next - 1).unwrap_or(0)
    }

    /// Everything after `last_seen` (the client's `Last-Event-ID`, if any) and the live stream.
    pub fn resume(&self, last_seen: Option<u64>) -> Resume {
        let ring = match self.ring.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        let live = self.live.subscribe();
        let newest = ring.next - 1;
        let oldest_kept = ring.buf.front().map(|e| e.id).unwrap_or(ring.next);
        let (backlog, start_after) = match last_seen {
            None => (Vec::new(), newest),
            Some(id) if id >= oldest_kept.saturating_sub(1) && id <= newest => (
                ring.buf.iter().filter(|e| e.id > id).cloned().collect(),
                newest,
            ),
            Some(_) => (
                vec![Event {
                    id: newest,
                    kind: "reset",
                    data: format!("{{\"event_id\":{newest}}}").into(),
                }],
                newest,
            ),
        };
        Resume {
            backlog,
            live,
            start_after,
        }
    }

    /// Clients currently subscribed.
    pub fn clients(&self) -> usize {
        self.live.receiver_count()
    }
}

/// The JSON of one record event.
pub fn record_event(store: &Store, change: &ChangeEvent) -> String {
    let record = store
        .get(&change.collection, &change.record)
        .ok()
        .flatten()
        .map(|r| r.to_json());
    serde_json::json!({
        "collection": change.collection,
        "id": change.record,
        "record": record,
        "via": change.via,
    })
    .to_string()
}

/// Runs until the store's change channel closes: every durable change becomes an event. If
/// the pump falls behind the store, clients are told to reset rather than miss changes.
pub async fn pump(
    store: Arc<Mutex<Store>>,
    readers: Readers,
    hub: Arc<EventHub>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut changes = match store.lock() {
        Ok(s) => s.subscribe(),
        Err(_) => return,
    };
    loop {
        let change = tokio::select! {
            c = changes.recv() => c,
            _ = stop.wait_for(|s| *s) => return,
        };
        let mut lagged = None;
        let mut batch = Vec::new();
        match change {
            Ok(change) => batch.push(change),
            Err(broadcast::error::RecvError::Lagged(missed)) => lagged = Some(missed),
            Err(broadcast::error::RecvError::Closed) => return,
        }
        // Everything already announced goes out in one pass under one lock: a transaction
        // announces its records one by one (a busy gate hall commits hundreds a second), and
        // a record changed twice before the pump got to it is shown once, as it is now.
        while lagged.is_none() && batch.len() < PUMP_BATCH {
            match changes.try_recv() {
                Ok(change) => batch.push(change),
                Err(broadcast::error::TryRecvError::Lagged(missed)) => lagged = Some(missed),
                Err(_) => break,
            }
        }
        let batch = latest_per_record(batch);
        if !batch.is_empty() {
            // Read through a reader of its own: the writer's lock is for writing.
            let data: Vec<String> =
                match readers.read(|s| batch.iter().map(|c| record_event(s, c)).collect()) {
                    Ok(d) => d,
                    Err(_) => return,
                };
            for d in data {
                hub.publish("record", d);
            }
        }
        if let Some(missed) = lagged {
            tracing::warn!(
                missed,
                "event pump fell behind the store; clients will reload"
            );
            let id = hub.last_id() + 1;
            hub.publish("reset", format!("{{\"event_id\":{id}}}"));
        }
    }
}

/// Most change announcements the pump takes in one pass.
const PUMP_BATCH: usize = 512;

/// The changes to show, one per record (system collections left out), in the order of each
/// record's last change; `via` is that last change's.
fn latest_per_record(batch: Vec<ChangeEvent>) -> Vec<ChangeEvent> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<ChangeEvent> = batch
        .into_iter()
        .rev()
        .filter(|c| !c.collection.starts_with('$'))
        .filter(|c| seen.insert((c.collection.clone(), c.record.clone())))
        .collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pump_shows_each_record_once_at_its_last_change_and_skips_system_collections() {
        let ev = |c: &str, r: &str, via: Option<&str>| ChangeEvent {
            collection: c.into(),
            record: r.into(),
            via: via.map(Into::into),
        };
        let shown = latest_per_record(vec![
            ev("alerts", "a1", None),
            ev("gate_stats", "nrt-g1", None),
            ev("$members", "hq", None),
            ev("alerts", "a2", None),
            ev("gate_stats", "nrt-g1", Some("hq")),
        ]);
        let keys: Vec<_> = shown
            .iter()
            .map(|c| (c.collection.as_str(), c.record.as_str(), c.via.as_deref()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("alerts", "a1", None),
                ("alerts", "a2", None),
                ("gate_stats", "nrt-g1", Some("hq")),
            ]
        );
    }

    #[test]
    fn resume_replays_after_the_last_id_and_resets_when_too_far_behind() {
        let hub = EventHub::new(4);
        let ids: Vec<u64> = (0..6)
            .map(|i| hub.publish("record", format!("{i}")))
            .collect();
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
        // Kept: the last four.
        let r = hub.resume(Some(ids[3]));
        assert_eq!(
            r.backlog.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![ids[4], ids[5]]
        );
        assert!(hub.resume(Some(ids[5])).backlog.is_empty());
        assert_eq!(
            hub.resume(Some(ids[1])).backlog.len(),
            4,
            "just before the oldest kept: all of the ring"
        );
        let behind = hub.resume(Some(ids[0]));
        assert_eq!(behind.backlog.len(), 1);
        assert_eq!(behind.backlog[0].kind, "reset");
        let other_run = hub.resume(Some(42));
        assert_eq!(other_run.backlog[0].kind, "reset");
        let future = hub.resume(Some(ids[5] + 10));
        assert_eq!(future.backlog[0].kind, "reset");
        assert_eq!(
            future.start_after, ids[5],
            "a client claiming an id from the future is brought back to the present"
        );
        assert!(hub.resume(None).backlog.is_empty());
    }
}
