//! The thin tokio driver: runs [`Session`]s over QUIC [`Link`]s.
//!
//! The protocol logic lives in [`crate::protocol`]; this module only moves frames. Each link
//! gets a reader task (so the network keeps draining while this side is busy sending, which
//! rules out the both-sides-blocked-on-send deadlock) and a loop that feeds frames to the
//! session and flushes what it wants to send after every frame, every local change and every
//! tick. Configured peers are dialled and redialled with backoff; any peer with a valid
//! certificate may dial in. A housekeeping task announces this replica's progress, collects
//! garbage, and applies the replicated revocation list to the TLS verifiers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::pki::{NodeIdentity, Revocations};
use crate::protocol::{Session, SessionConfig, SessionError};
use crate::store::Store;
use crate::transport::{close_code, Endpoint, Link, TransportConfig, TransportError};

/// A peer to dial.
#[derive(Debug, Clone, serde::Deserialize, Serialize)]
pub struct PeerAddr {
    /// Its node name (must match its certificate).
    pub name: String,
    /// Its QUIC address.
    pub addr: SocketAddr,
}

/// Settings of the sync driver.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Local UDP address to bind.
    pub listen: SocketAddr,
    /// Peers to dial.
    pub peers: Vec<PeerAddr>,
    /// Protocol tuning.
    pub session: SessionConfig,
    /// Transport tuning.
    pub transport: TransportConfig,
    /// How often to collect garbage and refresh revocations.
    pub housekeeping: Duration,
    /// Least time between two announcements of this replica's progress (`$members`), jittered
    /// by ±25 % and never more than an eighth of the collection horizon; the first comes at
    /// once. Each announcement is a vector with one component per member that reaches every
    /// member, so a fleet's announcements cost N² components per round; garbage collection
    /// works on a horizon of days and needs them rarely.
    pub announce_every: Duration,
    /// Longest wait between redials of an unreachable peer.
    pub max_redial: Duration,
}

impl SyncConfig {
    /// Defaults for a node listening on `listen` and dialling `peers`.
    pub fn new(listen: SocketAddr, peers: Vec<PeerAddr>) -> Self {
        SyncConfig {
            listen,
            peers,
            session: SessionConfig::default(),
            transport: TransportConfig::default(),
            housekeeping: Duration::from_secs(5),
            announce_every: Duration::from_secs(60),
            max_redial: Duration::from_secs(10),
        }
    }
}

/// What this node knows about one peer's link.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerStatus {
    /// Peer node name.
    pub peer: String,
    /// Whether a session is open now.
    pub connected: bool,
    /// Wall time (ms since the epoch) of the last frame from the peer.
    pub last_contact_ms: Option<u64>,
    /// Changes this node has seen that the peer has not acknowledged (version-vector gap).
    pub lag_changes: u64,
    /// Entries of this node's log past the peer's acknowledged cursor.
    pub lag_entries: u64,
    /// Bytes sent and received in the current or last session.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Why the last session ended, if it failed.
    pub last_error: Option<String>,
}

/// A running sync driver.
pub struct SyncHandle {
    local_addr: SocketAddr,
    status: Arc<Mutex<BTreeMap<String, PeerStatus>>>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    endpoint: Arc<Endpoint>,
}

impl SyncHandle {
    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The status of every peer seen so far.
    pub fn status(&self) -> Vec<PeerStatus> {
        self.status
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// A cloneable view of the peers' status, for status pages and metrics that outlive a
    /// borrow of this handle.
    pub fn status_view(&self) -> StatusView {
        StatusView(self.status.clone())
    }

    /// Stops every session and the endpoint. Bounded: tasks still running after
    /// [`SHUTDOWN_GRACE`] are aborted (and logged), and the peers are given as long again to
    /// hear the connections close.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.endpoint.close(0, "shutting down");
        join_within(self.tasks, SHUTDOWN_GRACE, "sync driver").await;
        if tokio::time::timeout(SHUTDOWN_GRACE, self.endpoint.wait_idle())
            .await
            .is_err()
        {
            tracing::warn!(
                grace = ?SHUTDOWN_GRACE,
                "connections still closing at shutdown; leaving them to the peers' idle timeout"
            );
        }
    }
}

/// How long a shutdown waits for its tasks (and, after them, for connections to close).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Waits for `tasks` to finish, at most `grace`; aborts the ones still running and logs how
/// many there were, so that a daemon's shutdown always ends and says what did not stop.
/// Returns the number aborted.
pub async fn join_within(tasks: Vec<JoinHandle<()>>, grace: Duration, what: &str) -> usize {
    let deadline = tokio::time::Instant::now() + grace;
    let mut stuck = 0;
    for mut t in tasks {
        if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
            t.abort();
            stuck += 1;
        }
    }
    if stuck > 0 {
        tracing::warn!(
            what,
            stuck,
            ?grace,
            "tasks did not stop within the grace period; aborted"
        );
    }
    stuck
}

/// The peers' status of a running driver (see [`SyncHandle::status_view`]).
#[derive(Clone, Default)]
pub struct StatusView(Arc<Mutex<BTreeMap<String, PeerStatus>>>);

impl StatusView {
    /// The status of every peer seen so far.
    pub fn get(&self) -> Vec<PeerStatus> {
        self.0
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }
}

type SharedStore = Arc<Mutex<Store>>;

/// Why the driver could not start.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Binding the endpoint failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Starts syncing `store` with the configured peers and whoever dials in.
pub fn start(
    store: SharedStore,
    identity: &NodeIdentity,
    ca: rustls::pki_types::CertificateDer<'static>,
    config: SyncConfig,
) -> Result<SyncHandle, DriverError> {
    let revocations = Revocations::new();
    refresh_revocations(&store, &revocations);
    let endpoint = Arc::new(Endpoint::bind(
        config.listen,
        identity,
        ca,
        revocations.clone(),
        config.transport.clone(),
    )?);
    let local_addr = endpoint.local_addr()?;
    let status: Arc<Mutex<BTreeMap<String, PeerStatus>>> = Default::default();
    let (shutdown, stop) = watch::channel(false);
    let mut tasks = Vec::new();
    let node = identity.name.clone();
    tracing::info!(node = %node, %local_addr, peers = config.peers.len(), "sync endpoint up");

    {
        let (endpoint, store, status, stop, session, revocations) = (
            endpoint.clone(),
            store.clone(),
            status.clone(),
            stop.clone(),
            config.session.clone(),
            revocations.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut stop2 = stop.clone();
            loop {
                let incoming = tokio::select! {
                    l = endpoint.accept() => l,
                    _ = stop2.changed() => break,
                };
                match incoming {
                    None => break,
                    Some(Ok(link)) => {
                        let links = LinkContext {
                            store: store.clone(),
                            status: status.clone(),
                            stop: stop.clone(),
                            session: session.clone(),
                            revocations: revocations.clone(),
                        };
                        tokio::spawn(async move {
                            let _ = run_link(link, links).await;
                        });
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "refused an incoming connection"),
                }
            }
        }));
    }
    for peer in config.peers.clone() {
        let (endpoint, store, status, mut stop, session, max_redial, revocations) = (
            endpoint.clone(),
            store.clone(),
            status.clone(),
            stop.clone(),
            config.session.clone(),
            config.max_redial,
            revocations.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                if *stop.borrow() {
                    break;
                }
                match endpoint.connect(peer.addr, &peer.name).await {
                    Ok(link) => {
                        backoff = Duration::from_millis(200);
                        let links = LinkContext {
                            store: store.clone(),
                            status: status.clone(),
                            stop: stop.clone(),
                            session: session.clone(),
                            revocations: revocations.clone(),
                        };
                        let _ = run_link(link, links).await;
                    }
                    Err(e) => {
                        tracing::debug!(peer = %peer.name, error = %e, "dial failed");
                        if let Ok(mut s) = status.lock() {
                            let st = s.entry(peer.name.clone()).or_default();
                            st.peer = peer.name.clone();
                            st.connected = false;
                            st.last_error = Some(e.to_string());
                        }
                    }
                }
                // Jittered over the whole of [backoff/2, backoff]: after an outage a fleet's
                // sites all fail at once, and redialling in lockstep they met a hub that refuses
                // handshakes beyond its limit in waves, ten seconds apart, with the cores idle
                // in between (1,000 sites took minutes to get back in).
                let wait = backoff.mul_f64(0.5 + 0.5 * rand::random::<f64>());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(max_redial);
            }
        }));
    }
    {
        let (store, mut stop, revocations, every, announce_every) = (
            store.clone(),
            stop.clone(),
            revocations.clone(),
            config.housekeeping,
            config.announce_every,
        );
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => break,
                }
                // Jittered, so that a fleet started (or reconnected) at once spreads out.
                let gap = announce_every.mul_f64(0.75 + 0.5 * rand::random::<f64>());
                if let Ok(mut s) = store.lock() {
                    if let Err(e) = s.announce_at_most_every(gap.as_millis() as u64) {
                        tracing::warn!(error = %e, "announcing progress failed");
                    }
                    if let Err(e) = s.collect_garbage() {
                        tracing::warn!(error = %e, "garbage collection failed");
                    }
                }
                refresh_revocations(&store, &revocations);
            }
        }));
    }
    Ok(SyncHandle {
        local_addr,
        status,
        shutdown,
        tasks,
        endpoint,
    })
}

fn refresh_revocations(store: &SharedStore, revocations: &Revocations) {
    // On any error keep the list we have: an unreadable list must never admit a revoked node.
    let revoked = match store.lock() {
        Ok(s) => s.revoked(),
        Err(_) => {
            tracing::error!("store lock poisoned; keeping the last revocation list");
            return;
        }
    };
    match revoked {
        Ok(revoked) => revocations.replace_all(revoked.clone(), revoked),
        Err(e) => tracing::error!(error = %e, "cannot read revocations; keeping the last list"),
    }
}

/// What every link's task shares with the driver.
struct LinkContext {
    store: SharedStore,
    status: Arc<Mutex<BTreeMap<String, PeerStatus>>>,
    stop: watch::Receiver<bool>,
    session: SessionConfig,
    revocations: Revocations,
}

/// Runs one session over one link until it ends, its log lines tagged with the peer.
async fn run_link(link: Link, cx: LinkContext) -> Result<(), SessionError> {
    use tracing::Instrument;
    let h = link.handle();
    let span = tracing::info_span!("sync", peer = %h.peer.name, remote = %h.remote);
    run_session(link, cx).instrument(span).await
}

async fn run_session(link: Link, cx: LinkContext) -> Result<(), SessionError> {
    let LinkContext {
        store,
        status,
        mut stop,
        session: config,
        revocations,
    } = cx;
    let (handle, mut tx, mut rx) = link.split();
    let peer = handle.peer.name.clone();
    tracing::info!("session open");
    // Bounded: at most `window` batches plus their acks can be in flight from the peer, so
    // this never blocks the peer for long, and a stalled consumer pushes back through QUIC.
    let (frames_tx, mut frames_rx) = mpsc::channel::<Result<Vec<u8>, TransportError>>(64);
    let reader = tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(Some(f)) => {
                    if frames_tx.send(Ok(f)).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = frames_tx.send(Err(e)).await;
                    break;
                }
            }
        }
    });
    let (mut events, mut session) = {
        let s = store.lock().map_err(|_| poisoned(&peer))?;
        let mut session = Session::new(&peer, config);
        session.start(&s)?;
        (s.subscribe(), session)
    };
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut status_at = std::time::Instant::now() - STATUS_EVERY;
    let result: Result<(), SessionError> = async {
        loop {
            // Flush everything the session wants to say.
            loop {
                let frame = {
                    let s = store.lock().map_err(|_| poisoned(&peer))?;
                    session.poll_transmit(&s)?
                };
                match frame {
                    Some(f) => {
                        if let Err(e) = tx.send(&f).await {
                            if e.is_orderly_close() {
                                tracing::info!(reason = %e, "peer ended the session");
                                return Ok(());
                            }
                            return Err(SessionError::Protocol { peer: peer.clone(), what: format!("link lost: {e}") });
                        }
                    }
                    None => break,
                }
            }
            // The peer status (lag, bytes) takes the store lock to read the version vector:
            // refreshed at most every STATUS_EVERY, not after every write at a busy site.
            if status_at.elapsed() >= STATUS_EVERY {
                update_status(&status, &store, &session, true, None);
                status_at = std::time::Instant::now();
            }
            tokio::select! {
                f = frames_rx.recv() => match f {
                    Some(Ok(frame)) => {
                        let r = {
                            let mut s = store.lock().map_err(|_| poisoned(&peer))?;
                            let r = session.handle_frame(&frame, &mut s);
                            if let Ok(mut st) = status.lock() {
                                st.entry(peer.clone()).or_default().last_contact_ms = Some(s.now_ms());
                            }
                            r
                        };
                        if let Err(e) = r {
                            // Tell the peer why before closing.
                            let refusal = store.lock().ok().and_then(|s| session.poll_transmit(&s).ok().flatten());
                            if let Some(f) = refusal {
                                let _ = tx.send(&f).await;
                                let _ = tx.finish();
                            }
                            return Err(e);
                        }
                    }
                    Some(Err(e)) if e.is_orderly_close() => {
                        tracing::info!(reason = %e, "peer ended the session");
                        return Ok(());
                    }
                    Some(Err(e)) => {
                        return Err(SessionError::Protocol { peer: peer.clone(), what: e.to_string() });
                    }
                    None => return Ok(()),
                },
                _ = events.recv() => {
                    // One delta for every write already announced: a transaction of several
                    // records sends one event each, and a wake per event would lock the store
                    // for nothing.
                    while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) =
                        events.try_recv()
                    {}
                }
                _ = tick.tick() => {
                    // The handshake checked revocation; a node revoked while connected is
                    // dropped here, within one tick of the revocation reaching this replica.
                    if revocations.is_revoked(&handle.peer) {
                        return Err(SessionError::Revoked { peer: peer.clone() });
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }
    .await;
    reader.abort();
    match &result {
        Ok(()) => {
            tracing::info!("session closed");
            handle.close(close_code::NORMAL, "bye");
        }
        Err(SessionError::Revoked { .. }) => {
            tracing::warn!("closing the session: the peer's certificate has been revoked");
            handle.close(close_code::REVOKED, "certificate revoked");
        }
        Err(e) => {
            tracing::warn!(error = %e, "session failed");
            handle.close(close_code::PROTOCOL_ERROR, "protocol error");
        }
    }
    update_status(
        &status,
        &store,
        &session,
        false,
        result.as_ref().err().map(|e| e.to_string()),
    );
    result
}

/// How often a live session refreshes its peer status at most.
const STATUS_EVERY: Duration = Duration::from_millis(100);

fn poisoned(peer: &str) -> SessionError {
    SessionError::Protocol {
        peer: peer.to_owned(),
        what: "store lock poisoned by an earlier panic".into(),
    }
}

fn update_status(
    status: &Arc<Mutex<BTreeMap<String, PeerStatus>>>,
    store: &SharedStore,
    session: &Session,
    connected: bool,
    error: Option<String>,
) {
    let Ok(s) = store.lock() else { return };
    let Ok(mut map) = status.lock() else { return };
    let st = map.entry(session.peer().to_owned()).or_default();
    st.peer = session.peer().to_owned();
    st.connected = connected;
    st.lag_changes = session.peer_lag(&s);
    st.lag_entries = s.log_end().saturating_sub(session.acked());
    st.bytes_sent = session.stats().bytes_sent;
    st.bytes_received = session.stats().bytes_received;
    if error.is_some() {
        st.last_error = error;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_shutdown_waits_for_its_tasks_but_not_forever() {
        let (stop, mut stopped) = watch::channel(false);
        let obedient = tokio::spawn(async move {
            let _ = stopped.wait_for(|s| *s).await;
        });
        let (_never_tx, never_rx) = tokio::sync::oneshot::channel::<()>();
        let deaf = tokio::spawn(async move {
            let _ = never_rx.await;
        });
        let deaf_abort = deaf.abort_handle();
        stop.send(true).unwrap();
        let started = tokio::time::Instant::now();
        let grace = Duration::from_millis(300);
        let aborted = join_within(vec![obedient, deaf], grace, "test").await;
        assert_eq!(aborted, 1, "only the task that ignores the stop is aborted");
        assert!(started.elapsed() >= grace);
        tokio::task::yield_now().await;
        assert!(deaf_abort.is_finished());
    }
}
