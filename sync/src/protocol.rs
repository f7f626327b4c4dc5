//! The sync protocol as a deterministic state machine without I/O.
//!
//! A [`Session`] is one side of one connection. It never touches a socket or a clock: the
//! driver feeds it every frame that arrives ([`Session::handle_frame`]) and asks it for frames
//! to send ([`Session::poll_transmit`]) — after each frame, after each local change, and on a
//! periodic tick. Both sides run the same machine:
//!
//! 1. each side sends `Hello`: its node name, database incarnation, version vector, reset
//!    frontier, and how far it has already applied the other side's log (its resume cursor);
//! 2. if the peer is behind this side's garbage-collection frontier, this side answers
//!    `Resync` and sends nothing else until the peer has reset and said `Hello` again;
//! 3. otherwise each side streams its log from the peer's cursor in bounded `Batch` frames,
//!    leaving out what the peer's version vector says it has, at most `window` unacknowledged
//!    batches at a time (backpressure); the batch that reaches the end of the log carries the
//!    sender's version vector;
//! 4. the receiver applies each batch in one transaction and answers `Ack` with its new
//!    version vector, which the sender uses to filter what it sends next.
//!
//! Cursors are stored with the applied data, so a connection that drops mid-stream resumes
//! where it stopped; anything sent twice is merged idempotently.

use std::collections::VecDeque;

use crate::change::ChangeBatch;
use crate::error::StoreError;
use crate::interest::Interest;
use crate::store::Store;
use crate::vv::VersionVector;
use crate::wire::{Reader, WireError, Writer};

/// Protocol version spoken by this build.
pub const PROTOCOL_VERSION: u64 = 2;

/// How much of its log a sender may skip over (nothing in it for the peer) before it sends
/// an empty batch anyway, so that the peer's resume cursor moves: after a reconnect the sender
/// starts from that cursor, and a hub would otherwise read again everything since the peer's
/// last real batch.
const SKIP_WITHOUT_FRAME: u64 = 16_384;

/// One protocol frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Opens (or restarts) a session.
    Hello {
        /// Protocol version.
        version: u64,
        /// Sender's node name.
        node: String,
        /// Sender's database incarnation.
        incarnation: u64,
        /// What the sender has seen.
        vv: VersionVector,
        /// Up to where the sender dropped data for a snapshot resync.
        reset_frontier: VersionVector,
        /// The receiver's database incarnation the resume cursor refers to.
        resume_incarnation: u64,
        /// How far into the receiver's log the sender has applied.
        resume: u64,
        /// What the sender holds: the receiver sends it only that (since version 2).
        interest: Interest,
    },
    /// A slice of the sender's log (an encoded [`ChangeBatch`]).
    Batch(ChangeBatch),
    /// The receiver applied the sender's log up to `upto`; its version vector is now `vv`.
    Ack {
        /// End of the applied batch.
        upto: u64,
        /// Receiver's version vector after applying it: the part the sender takes
        /// ([`Interest::scope`]), all the sender needs to filter what it sends.
        vv: VersionVector,
    },
    /// The receiver is behind the sender's collection frontier and must resync.
    Resync {
        /// The sender's garbage-collection frontier.
        frontier: VersionVector,
    },
    /// The sender refuses to go on, with the reason.
    Refuse {
        /// Why.
        reason: String,
    },
}

impl Message {
    /// Encodes the message as one frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Message::Hello {
                version,
                node,
                incarnation,
                vv,
                reset_frontier,
                resume_incarnation,
                resume,
                interest,
            } => {
                w.u8(1);
                w.varint(*version);
                w.str(node);
                w.varint(*incarnation);
                vv.encode(&mut w);
                reset_frontier.encode(&mut w);
                w.varint(*resume_incarnation);
                w.varint(*resume);
                w.u8(match interest {
                    Interest::Everything => 0,
                    Interest::Shared => 1,
                });
            }
            Message::Batch(b) => {
                w.u8(2);
                let mut out = w.into_bytes();
                out.extend_from_slice(&b.encode());
                return out;
            }
            Message::Ack { upto, vv } => {
                w.u8(3);
                w.varint(*upto);
                vv.encode(&mut w);
            }
            Message::Resync { frontier } => {
                w.u8(4);
                frontier.encode(&mut w);
            }
            Message::Refuse { reason } => {
                w.u8(5);
                w.str(reason);
            }
        }
        w.into_bytes()
    }

    /// Decodes one frame.
    pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
        let mut r = Reader::new(frame);
        let msg = match r.u8()? {
            1 => {
                let version = r.varint()?;
                let node = r.str()?.to_owned();
                let incarnation = r.varint()?;
                let vv = VersionVector::decode(&mut r)?;
                let reset_frontier = VersionVector::decode(&mut r)?;
                let resume_incarnation = r.varint()?;
                let resume = r.varint()?;
                // Version 1 had no interest; such a peer is refused by its version, with a
                // message that says so, rather than as a malformed frame.
                let interest = if version >= 2 {
                    match r.u8()? {
                        0 => Interest::Everything,
                        1 => Interest::Shared,
                        _ => return Err(r.invalid("interest")),
                    }
                } else {
                    Interest::Everything
                };
                Message::Hello {
                    version,
                    node,
                    incarnation,
                    vv,
                    reset_frontier,
                    resume_incarnation,
                    resume,
                    interest,
                }
            }
            2 => return Ok(Message::Batch(ChangeBatch::decode(&frame[1..])?)),
            3 => Message::Ack {
                upto: r.varint()?,
                vv: VersionVector::decode(&mut r)?,
            },
            4 => Message::Resync {
                frontier: VersionVector::decode(&mut r)?,
            },
            5 => Message::Refuse {
                reason: r.str()?.to_owned(),
            },
            _ => return Err(r.invalid("message tag")),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The peer sent something that is not a valid frame.
    #[error("malformed frame from {peer}: {source}")]
    Malformed {
        /// The peer.
        peer: String,
        /// What was wrong.
        source: WireError,
    },
    /// The peer broke the protocol (e.g. a batch before `Hello`, a name that does not match
    /// its certificate).
    #[error("protocol violation by {peer}: {what}")]
    Protocol {
        /// The peer.
        peer: String,
        /// What it did.
        what: String,
    },
    /// The peer refused the session.
    #[error("{peer} refused the session: {reason}")]
    Refused {
        /// The peer.
        peer: String,
        /// Its reason.
        reason: String,
    },
    /// The peer's certificate was revoked while the session was open.
    #[error("{peer}'s certificate has been revoked; session closed")]
    Revoked {
        /// The peer.
        peer: String,
    },
    /// Applying or reading the store failed (the batch was rolled back).
    #[error("store error while syncing with {peer}: {source}")]
    Store {
        /// The peer.
        peer: String,
        /// The error.
        source: StoreError,
    },
}

/// Tuning of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Most entries in one batch.
    pub max_batch_entries: usize,
    /// Approximate byte bound of one batch (keep well under the transport's frame limit).
    pub max_batch_bytes: usize,
    /// Most unacknowledged batches in flight.
    pub window: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_batch_entries: 4096,
            max_batch_bytes: 512 * 1024,
            window: 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Waiting for the peer's `Hello`.
    Greeting,
    /// Streaming both ways.
    Streaming,
    /// The peer must resync before we stream to it.
    PeerMustResync,
}

/// Counters of one session, for `mizugiwa sync status` and metrics.
#[derive(Debug, Clone, Default)]
pub struct SessionStats {
    /// Frames and bytes sent.
    pub frames_sent: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Frames received.
    pub frames_received: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Entries the peer sent that were stored here.
    pub entries_stored: u64,
    /// Entries sent to the peer.
    pub entries_sent: u64,
    /// Round trips completed (batches acknowledged).
    pub acks_received: u64,
}

/// One side of one sync connection.
pub struct Session {
    peer: String,
    config: SessionConfig,
    phase: Phase,
    peer_incarnation: u64,
    /// What the peer holds (from its `Hello`): it is sent only that.
    peer_interest: Interest,
    peer_vv: VersionVector,
    send_cursor: u64,
    /// The end of the last batch actually sent: slices the peer does not take are skipped
    /// without a frame, but at most [`SKIP_WITHOUT_FRAME`] entries of the log at a time, so that
    /// the peer's resume cursor keeps up.
    sent_upto: u64,
    /// For a peer that holds only shared records: the store's news stamp for it
    /// ([`Store::news_for`]) when `last_complete` was taken.
    complete_news: Option<u64>,
    acked: u64,
    in_flight: VecDeque<u64>,
    outbox: VecDeque<Message>,
    last_complete: Option<(u64, VersionVector)>,
    /// The store's resync count when this side last said `Hello` (`None`: not yet).
    resyncs_greeted: Option<u64>,
    stats: SessionStats,
}

impl Session {
    /// A session with `peer` (the name its certificate proved).
    pub fn new(peer: &str, config: SessionConfig) -> Session {
        Session {
            peer: peer.to_owned(),
            config,
            phase: Phase::Greeting,
            peer_incarnation: 0,
            peer_interest: Interest::Everything,
            peer_vv: VersionVector::new(),
            send_cursor: 0,
            sent_upto: 0,
            complete_news: None,
            acked: 0,
            in_flight: VecDeque::new(),
            outbox: VecDeque::new(),
            last_complete: None,
            resyncs_greeted: None,
            stats: SessionStats::default(),
        }
    }

    /// The peer's node name.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// What the peer has acknowledged seeing.
    pub fn peer_vv(&self) -> &VersionVector {
        &self.peer_vv
    }

    /// The part of `store`'s version vector the peer takes.
    pub fn peer_scope(&self, store: &Store) -> VersionVector {
        store.scope_for(&self.peer, self.peer_interest)
    }

    /// How many changes the peer lacks at most, of those it takes (see
    /// [`VersionVector::lag_behind`]); no vector is built, a hub's has thousands of components.
    pub fn peer_lag(&self, store: &Store) -> u64 {
        store.lag_of(&self.peer, self.peer_interest, &self.peer_vv)
    }

    /// How far into this replica's log the peer has acknowledged.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Session counters.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// Whether the peer has acknowledged everything in `store`'s log and vector.
    pub fn peer_caught_up(&self, store: &Store) -> bool {
        self.phase == Phase::Streaming && self.in_flight.is_empty() && self.peer_lag(store) == 0
    }

    /// Queues this side's `Hello`. Call once when the connection opens.
    pub fn start(&mut self, store: &Store) -> Result<(), SessionError> {
        let hello = self.hello(store)?;
        self.outbox.push_back(hello);
        Ok(())
    }

    fn hello(&mut self, store: &Store) -> Result<Message, SessionError> {
        self.resyncs_greeted = Some(store.resyncs());
        let (resume_incarnation, resume) = store
            .cursor_row(&self.peer)
            .map_err(|e| self.store_err(e))?
            .unwrap_or((0, 0));
        Ok(Message::Hello {
            version: PROTOCOL_VERSION,
            node: store.node().to_owned(),
            incarnation: store.incarnation(),
            vv: store.version_vector().clone(),
            reset_frontier: store.reset_frontier().clone(),
            resume_incarnation,
            resume,
            interest: store.interest(),
        })
    }

    fn store_err(&self, source: StoreError) -> SessionError {
        SessionError::Store {
            peer: self.peer.clone(),
            source,
        }
    }

    fn violation(&self, what: impl Into<String>) -> SessionError {
        SessionError::Protocol {
            peer: self.peer.clone(),
            what: what.into(),
        }
    }

    /// Handles one frame from the peer. An error means the connection must be closed (after
    /// sending whatever [`Session::poll_transmit`] still yields, such as a `Refuse`); nothing
    /// from the offending frame was stored.
    pub fn handle_frame(&mut self, frame: &[u8], store: &mut Store) -> Result<(), SessionError> {
        self.stats.frames_received += 1;
        self.stats.bytes_received += frame.len() as u64;
        let msg = Message::decode(frame).map_err(|source| SessionError::Malformed {
            peer: self.peer.clone(),
            source,
        });
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                self.refuse(e.to_string());
                return Err(e);
            }
        };
        match msg {
            Message::Hello {
                version,
                node,
                incarnation,
                vv,
                reset_frontier,
                resume_incarnation,
                resume,
                interest,
            } => {
                if version != PROTOCOL_VERSION {
                    let e = self.violation(format!(
                        "speaks protocol {version}, this node speaks {PROTOCOL_VERSION}"
                    ));
                    self.refuse(e.to_string());
                    return Err(e);
                }
                if node != self.peer {
                    let e = self.violation(format!(
                        "says it is {node:?} but its certificate is for {:?}",
                        self.peer
                    ));
                    self.refuse(e.to_string());
                    return Err(e);
                }
                self.peer_incarnation = incarnation;
                self.peer_interest = interest;
                self.in_flight.clear();
                self.last_complete = None;
                self.complete_news = None;
                let mut knows = vv.clone();
                knows.merge(&reset_frontier);
                self.peer_vv = vv;
                // Only what the peer takes can hold it back: a site that holds the shared
                // collections is never behind on reports it never receives.
                let frontier = interest.scope(&self.peer, store.gc_frontier());
                if !knows.covers(&frontier) {
                    tracing::warn!(peer = %self.peer, "peer is behind this node's collection frontier; asking it to resync");
                    self.phase = Phase::PeerMustResync;
                    self.outbox.push_back(Message::Resync { frontier });
                    return Ok(());
                }
                self.send_cursor = if resume_incarnation == store.incarnation() {
                    resume.min(store.log_end())
                } else {
                    0
                };
                self.acked = self.send_cursor;
                self.sent_upto = self.send_cursor;
                self.phase = Phase::Streaming;
            }
            Message::Batch(batch) => {
                if self.phase == Phase::Greeting {
                    let e = self.violation("sent a batch before hello");
                    self.refuse(e.to_string());
                    return Err(e);
                }
                match store.apply_changes(&self.peer, self.peer_incarnation, &batch) {
                    Ok(report) => {
                        self.stats.entries_stored += report.stored as u64;
                        // The part of the vector the peer can hold entries of is all it needs to
                        // filter what it sends: at a hub, a site's share of thousands of
                        // components.
                        self.outbox.push_back(Message::Ack {
                            upto: batch.upto_lseq,
                            vv: self.peer_scope(store),
                        });
                    }
                    Err(e) => {
                        let e = self.store_err(e);
                        self.refuse(e.to_string());
                        return Err(e);
                    }
                }
            }
            Message::Ack { upto, vv } => {
                self.stats.acks_received += 1;
                while self.in_flight.front().is_some_and(|u| *u <= upto) {
                    self.in_flight.pop_front();
                }
                self.acked = self.acked.max(upto);
                self.peer_vv = vv;
            }
            Message::Resync { frontier } => {
                store
                    .begin_resync(&frontier)
                    .map_err(|e| self.store_err(e))?;
                let hello = self.hello(store)?;
                self.outbox.push_back(hello);
            }
            Message::Refuse { reason } => {
                return Err(SessionError::Refused {
                    peer: self.peer.clone(),
                    reason,
                });
            }
        }
        Ok(())
    }

    fn refuse(&mut self, reason: String) {
        self.outbox.push_back(Message::Refuse { reason });
    }

    /// The next frame to send, if any: queued replies first, then a new batch when the window
    /// has room and the log or the version vector moved since the peer last heard.
    pub fn poll_transmit(&mut self, store: &Store) -> Result<Option<Vec<u8>>, SessionError> {
        if self
            .resyncs_greeted
            .is_some_and(|greeted| greeted != store.resyncs())
        {
            // Another session made this replica resync: it dropped data and its cursors, and
            // this peer streams from where it thinks we are. Greet it again with the reset
            // cursor, or what it sent before the resync would not come again until the
            // connection drops (found by the clock-skew drill: HQ resynced through one site
            // and stayed without the other site's records).
            let hello = self.hello(store)?;
            self.outbox.push_back(hello);
        }
        if let Some(m) = self.outbox.pop_front() {
            return Ok(Some(self.sent(m.encode())));
        }
        if self.phase != Phase::Streaming || self.in_flight.len() >= self.config.window {
            return Ok(None);
        }
        loop {
            let peer_news =
                (self.peer_interest == Interest::Shared).then(|| store.news_for(&self.peer));
            if let (Some((relevant_upto, moved)), Some((upto, _))) =
                (peer_news, self.last_complete.as_mut())
            {
                // Nothing it takes was stored since what was last read for it, and its part of
                // the vector has not moved since the last one sent: skip the log without
                // reading it (nor building its part of the vector), unless the peer's resume
                // cursor is due to move.
                let end = store.log_end();
                if relevant_upto <= self.send_cursor
                    && self.complete_news == Some(moved)
                    && end.saturating_sub(self.sent_upto) < SKIP_WITHOUT_FRAME
                {
                    self.send_cursor = end;
                    *upto = end;
                    return Ok(None);
                }
            }
            if let Some((upto, vv)) = &self.last_complete {
                if *upto == store.log_end() && *vv == self.peer_scope(store) {
                    return Ok(None);
                }
            }
            // Nagle's rule: while a batch is unacknowledged, a small one waits for that ack
            // and then leaves with whatever was written meanwhile. A busy site (a gate hall
            // commits hundreds of times a second) then sends a few larger batches instead of
            // one per commit, each of which costs the peer a transaction and an fsync; an idle
            // site still sends every write at once, and a backlog still streams full batches
            // up to `window`.
            if !self.in_flight.is_empty()
                && store.log_end().saturating_sub(self.send_cursor)
                    < self.config.max_batch_entries as u64
            {
                return Ok(None);
            }
            let batch = store
                .read_changes_for(
                    &self.peer,
                    self.peer_interest,
                    self.send_cursor,
                    &self.peer_vv,
                    self.config.max_batch_entries,
                    self.config.max_batch_bytes,
                )
                .map_err(|e| self.store_err(e))?;
            // A slice with nothing the peer lacks or takes (at a hub, mostly other sites'
            // reports for a site that holds the shared collections) and no news in the vector
            // is skipped without a frame: an empty batch would still cost the peer a commit.
            let news = !batch.changes.is_empty()
                || batch.complete.as_ref().is_some_and(|vv| {
                    self.last_complete
                        .as_ref()
                        .is_none_or(|(_, last)| last != vv)
                });
            if !news && batch.upto_lseq.saturating_sub(self.sent_upto) < SKIP_WITHOUT_FRAME {
                self.send_cursor = batch.upto_lseq;
                match batch.complete {
                    Some(vv) => {
                        self.last_complete = Some((batch.upto_lseq, vv));
                        self.complete_news = peer_news.map(|(_, moved)| moved);
                        return Ok(None);
                    }
                    None => continue,
                }
            }
            self.send_cursor = batch.upto_lseq;
            self.sent_upto = batch.upto_lseq;
            self.in_flight.push_back(batch.upto_lseq);
            self.last_complete = batch.complete.clone().map(|vv| (batch.upto_lseq, vv));
            self.complete_news = peer_news
                .filter(|_| batch.complete.is_some())
                .map(|(_, moved)| moved);
            self.stats.entries_sent += batch.changes.len() as u64;
            return Ok(Some(self.sent(Message::Batch(batch).encode())));
        }
    }

    fn sent(&mut self, frame: Vec<u8>) -> Vec<u8> {
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += frame.len() as u64;
        frame
    }
}
