//! The TAK connection: CoT over a TCP stream, plain or TLS with a client certificate.
//!
//! [`TakClient`] is one connection: [`TakClient::send`] writes events, [`TakClient::recv`]
//! yields the parsed events the server routes to us. [`run`] is what the daemon calls: it keeps
//! a client connected (reconnecting with exponential backoff), sends what arrives on its
//! outgoing channel and forwards what TAK sends on its incoming channel.
//!
//! Incoming data is untrusted. It is split with [`CotStream`] (bounded), checked with
//! [`cot::parse`]; malformed documents are logged (`tracing::warn`), counted in [`TakStats`]
//! and never forwarded. Also dropped (and counted): ping/pong chatter, events already stale on
//! arrival, and our own events echoed back (taky replays persisted events to every new
//! connection, ours included).
//!
//! Liveness: [`run`] pings the server (`t-x-c-t`) and drops a connection on which nothing
//! arrived for `idle_timeout`; a write that makes no progress for `write_timeout` drops it too.
//!
//! The wire format is the TAK "streaming XML" protocol (TAK protocol version 0), which taky and
//! TAK Server both accept; the protobuf upgrade (version 1) is not negotiated.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::cot::{self, CotEvent, CotStream, UID_PREFIX};

/// Where and how to reach the TAK server.
#[derive(Debug, Clone)]
pub struct TakConfig {
    /// `host:port` of the server's streaming CoT port (taky: 8087 TCP, 8089 TLS).
    pub addr: String,
    /// `None`: plain TCP. `Some`: TLS with a client certificate.
    pub tls: Option<TakTls>,
    pub connect_timeout: Duration,
    /// A write that takes longer (the server stopped reading) fails and the connection is
    /// dropped, so a hung server cannot stall the gateway.
    pub write_timeout: Duration,
    /// [`run`] sends a `t-x-c-t` ping this often; `None` to stay silent.
    pub ping_interval: Option<Duration>,
    /// [`run`] drops a connection on which nothing (not even a pong) arrived for this long: a
    /// dead peer behind a silent network is otherwise only noticed when TCP gives up, many
    /// minutes later. Needs `ping_interval` (and a server that answers pings, as taky does);
    /// `None` to disable.
    pub idle_timeout: Option<Duration>,
    /// First and longest wait between reconnection attempts (doubling in between).
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Events kept while disconnected (the latest per uid), flushed on reconnection.
    pub offline_capacity: usize,
}

impl TakConfig {
    /// Plain TCP to `addr` with the default timings.
    pub fn tcp(addr: impl Into<String>) -> Self {
        TakConfig {
            addr: addr.into(),
            tls: None,
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(100)),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            offline_capacity: 4096,
        }
    }

    /// TLS to `addr` with a client certificate, default timings.
    pub fn tls(addr: impl Into<String>, tls: TakTls) -> Self {
        TakConfig {
            tls: Some(tls),
            ..Self::tcp(addr)
        }
    }
}

/// The PEM files for a TLS connection. TAK servers authenticate clients by certificate (taky:
/// `takyctl build_client --dump_pem NAME` writes `NAME-<uuid>.crt` and `.key`; its CA is
/// `ssl/ca.crt` of the taky site).
#[derive(Debug, Clone)]
pub struct TakTls {
    /// CA certificate(s) the server certificate must chain to.
    pub ca_pem: PathBuf,
    /// Our certificate (chain), leaf first.
    pub cert_pem: PathBuf,
    /// Our private key (PKCS#8, PKCS#1 RSA or SEC1).
    pub key_pem: PathBuf,
    /// The name the server certificate must carry; `None`: the host part of `addr`.
    pub server_name: Option<String>,
}

/// Errors of the TAK connection.
#[derive(Debug, thiserror::Error)]
pub enum TakError {
    #[error("connecting to TAK server {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connecting to TAK server {0}: timed out")]
    Timeout(String),
    #[error("TLS set-up: {0}")]
    TlsConfig(String),
    #[error("TLS handshake with {addr}: {source}")]
    Handshake {
        addr: String,
        source: std::io::Error,
    },
    #[error("writing to TAK server: {0}")]
    Write(std::io::Error),
    #[error("writing to TAK server: no progress in {0:?}")]
    WriteTimeout(Duration),
}

/// Counters of a gateway, shared with whoever reports metrics.
#[derive(Debug, Default)]
pub struct TakStats {
    /// Connections established.
    pub connects: AtomicU64,
    /// Connection attempts that failed, and connections lost.
    pub failures: AtomicU64,
    /// Events written to the server.
    pub sent: AtomicU64,
    /// Events received and forwarded.
    pub received: AtomicU64,
    /// Documents refused by the parser (or junk between them).
    pub malformed: AtomicU64,
    /// Events already stale when they arrived.
    pub stale: AtomicU64,
    /// Our own events coming back, and ping/pong chatter.
    pub ignored: AtomicU64,
    /// Outgoing events dropped while disconnected (offline buffer full or stale at flush).
    pub dropped: AtomicU64,
}

/// A copy of [`TakStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TakStatsSnapshot {
    pub connects: u64,
    pub failures: u64,
    pub sent: u64,
    pub received: u64,
    pub malformed: u64,
    pub stale: u64,
    pub ignored: u64,
    pub dropped: u64,
}

impl TakStats {
    pub fn snapshot(&self) -> TakStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TakStatsSnapshot {
            connects: get(&self.connects),
            failures: get(&self.failures),
            sent: get(&self.sent),
            received: get(&self.received),
            malformed: get(&self.malformed),
            stale: get(&self.stale),
            ignored: get(&self.ignored),
            dropped: get(&self.dropped),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Parsed events buffered between the reader task and [`TakClient::recv`]; when full, the
/// reader stops reading and TCP pushes back on the server.
const INCOMING_QUEUE: usize = 256;

/// One connection to a TAK server.
pub struct TakClient {
    writer: WriteHalf<Box<dyn Io>>,
    write_timeout: Duration,
    incoming: mpsc::Receiver<CotEvent>,
    reader: JoinHandle<()>,
    /// When the reader last got bytes (wall ms): the liveness signal for `idle_timeout`.
    last_rx_ms: Arc<AtomicU64>,
    stats: Arc<TakStats>,
}

impl TakClient {
    /// Connects (and, with TLS, completes the handshake) with fresh counters.
    pub async fn connect(config: &TakConfig) -> Result<TakClient, TakError> {
        Self::connect_with_stats(config, Arc::new(TakStats::default())).await
    }

    /// Connects, counting into `stats`.
    pub async fn connect_with_stats(
        config: &TakConfig,
        stats: Arc<TakStats>,
    ) -> Result<TakClient, TakError> {
        let io = match tokio::time::timeout(config.connect_timeout, open(config)).await {
            Ok(r) => r,
            Err(_) => Err(TakError::Timeout(config.addr.clone())),
        };
        let io = match io {
            Ok(io) => io,
            Err(e) => {
                bump(&stats.failures);
                return Err(e);
            }
        };
        bump(&stats.connects);
        let (rd, writer) = tokio::io::split(io);
        let (tx, incoming) = mpsc::channel(INCOMING_QUEUE);
        let last_rx_ms = Arc::new(AtomicU64::new(now_ms()));
        let reader = tokio::spawn(read_loop(rd, tx, last_rx_ms.clone(), stats.clone()));
        Ok(TakClient {
            writer,
            write_timeout: config.write_timeout,
            incoming,
            reader,
            last_rx_ms,
            stats,
        })
    }

    /// Writes one event. An error means the connection is unusable.
    pub async fn send(&mut self, ev: &CotEvent) -> Result<(), TakError> {
        self.send_bytes(ev.to_xml().as_bytes()).await?;
        bump(&self.stats.sent);
        Ok(())
    }

    /// Writes raw bytes (tests use it to play a misbehaving client).
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), TakError> {
        let write = async {
            self.writer.write_all(bytes).await?;
            // TLS buffers records until flushed.
            self.writer.flush().await
        };
        match tokio::time::timeout(self.write_timeout, write).await {
            Ok(r) => r.map_err(TakError::Write),
            Err(_) => Err(TakError::WriteTimeout(self.write_timeout)),
        }
    }

    /// Milliseconds since the server last sent anything (events, pongs, even junk).
    pub fn idle_ms(&self) -> u64 {
        now_ms().saturating_sub(self.last_rx_ms.load(Ordering::Relaxed))
    }

    /// The next valid event from the server; `None` once the connection has ended.
    pub async fn recv(&mut self) -> Option<CotEvent> {
        self.incoming.recv().await
    }

    /// This connection's counters.
    pub fn stats(&self) -> &Arc<TakStats> {
        &self.stats
    }

    /// Closes the connection (TLS: with a close_notify).
    pub async fn close(mut self) {
        // Bounded: the peer may be the reason we are closing.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.writer.shutdown()).await;
        self.reader.abort();
    }
}

impl Drop for TakClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn open(config: &TakConfig) -> Result<Box<dyn Io>, TakError> {
    let tcp = TcpStream::connect(&config.addr)
        .await
        .map_err(|source| TakError::Connect {
            addr: config.addr.clone(),
            source,
        })?;
    // CoT events are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &config.tls else {
        return Ok(Box::new(tcp));
    };
    let connector = tls_connector(tls)?;
    let name = match &tls.server_name {
        Some(n) => n.clone(),
        None => host_of(&config.addr).to_string(),
    };
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| TakError::TlsConfig(format!("invalid server name {name:?}")))?;
    let stream = connector
        .connect(server_name, tcp)
        .await
        .map_err(|source| TakError::Handshake {
            addr: config.addr.clone(),
            source,
        })?;
    Ok(Box::new(stream))
}

/// `host` of `host:port` / `[v6]:port`.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Builds the rustls client configuration (ring provider, TLS 1.2 and 1.3): the server must
/// chain to `ca_pem`, and we authenticate with `cert_pem`/`key_pem`. Loaded at each connection,
/// so renewed certificates are picked up by the next reconnection.
fn tls_connector(tls: &TakTls) -> Result<TlsConnector, TakError> {
    let err = |what: &str, path: &PathBuf, e: &dyn std::fmt::Display| {
        TakError::TlsConfig(format!("{what} {}: {e}", path.display()))
    };
    let mut roots = RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(&tls.ca_pem)
        .map_err(|e| err("reading CA", &tls.ca_pem, &e))?;
    for ca in cas {
        let ca = ca.map_err(|e| err("reading CA", &tls.ca_pem, &e))?;
        roots
            .add(ca)
            .map_err(|e| err("using CA", &tls.ca_pem, &e))?;
    }
    if roots.is_empty() {
        return Err(err("reading CA", &tls.ca_pem, &"no certificate"));
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_pem)
        .map_err(|e| err("reading certificate", &tls.cert_pem, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| err("reading certificate", &tls.cert_pem, &e))?;
    if chain.is_empty() {
        return Err(err("reading certificate", &tls.cert_pem, &"no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_pem)
        .map_err(|e| err("reading key", &tls.key_pem, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TakError::TlsConfig(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| err("using certificate", &tls.cert_pem, &e))?;
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Reads the connection until it ends, forwarding valid events to `tx`.
async fn read_loop(
    mut rd: ReadHalf<Box<dyn Io>>,
    tx: mpsc::Sender<CotEvent>,
    last_rx_ms: Arc<AtomicU64>,
    stats: Arc<TakStats>,
) {
    let mut splitter = CotStream::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) => {
                tracing::info!("TAK server closed the connection");
                return;
            }
            Ok(n) => {
                last_rx_ms.store(now_ms(), Ordering::Relaxed);
                n
            }
            Err(e) => {
                tracing::warn!("reading from TAK server: {e}");
                return;
            }
        };
        splitter.push(&buf[..n]);
        while let Some(doc) = splitter.next_document() {
            let doc = match doc {
                Ok(doc) => doc,
                Err(e) => {
                    tracing::warn!("malformed CoT from TAK server: {e}");
                    bump(&stats.malformed);
                    continue;
                }
            };
            let ev = match cot::parse(&doc) {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(
                        // Debug-quoted: the bytes are the peer's, control characters included.
                        "malformed CoT from TAK server: {e}: {:?}",
                        String::from_utf8_lossy(&doc[..doc.len().min(200)])
                    );
                    bump(&stats.malformed);
                    continue;
                }
            };
            if ev.is_ping() || ev.uid.starts_with(UID_PREFIX) {
                bump(&stats.ignored);
                continue;
            }
            if ev.is_stale(now_ms()) {
                tracing::debug!(uid = %ev.uid, "dropping stale CoT event");
                bump(&stats.stale);
                continue;
            }
            bump(&stats.received);
            if tx.send(ev).await.is_err() {
                return; // The client was dropped.
            }
        }
    }
}

/// Why a connected session ended.
enum SessionEnd {
    /// The daemon closed the outgoing channel, or dropped the incoming receiver: stop.
    Shutdown,
    /// The connection failed: reconnect.
    Lost,
}

/// Keeps a gateway connected to the TAK server until `outgoing` is closed (or `incoming` is
/// dropped): sends every event from `outgoing`, forwards every valid incoming event (see the
/// module documentation for what is filtered) to `incoming`.
///
/// Reconnects with exponential backoff (`backoff_min` doubling to `backoff_max`; reset after a
/// connection that lasted longer than `backoff_max`). While disconnected it keeps the latest
/// event per uid (up to `offline_capacity`) and sends those not yet stale on reconnection, so
/// positions are not replayed in bulk and no memory grows without bound.
pub async fn run(
    config: TakConfig,
    mut outgoing: mpsc::Receiver<CotEvent>,
    incoming: mpsc::Sender<CotEvent>,
    stats: Arc<TakStats>,
) {
    let mut backoff = config.backoff_min;
    let mut offline: HashMap<String, CotEvent> = HashMap::new();
    loop {
        match TakClient::connect_with_stats(&config, stats.clone()).await {
            Ok(mut client) => {
                tracing::info!(addr = %config.addr, tls = config.tls.is_some(), "connected to TAK server");
                let since = Instant::now();
                let end =
                    session(&config, &mut client, &mut outgoing, &incoming, &mut offline).await;
                client.close().await;
                if let SessionEnd::Shutdown = end {
                    return;
                }
                bump(&stats.failures);
                if since.elapsed() > config.backoff_max {
                    backoff = config.backoff_min;
                }
                tracing::warn!(addr = %config.addr, "lost TAK connection; reconnecting in {backoff:?}");
            }
            Err(e) => tracing::warn!("{e}; retrying in {backoff:?}"),
        }
        // Wait, but keep taking outgoing events so the daemon never blocks on us.
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                ev = outgoing.recv() => match ev {
                    Some(ev) => keep_offline(&mut offline, ev, config.offline_capacity, &stats),
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(config.backoff_max);
    }
}

fn keep_offline(
    offline: &mut HashMap<String, CotEvent>,
    ev: CotEvent,
    capacity: usize,
    stats: &TakStats,
) {
    if offline.len() >= capacity && !offline.contains_key(&ev.uid) {
        bump(&stats.dropped);
        return;
    }
    offline.insert(ev.uid.clone(), ev);
}

async fn session(
    config: &TakConfig,
    client: &mut TakClient,
    outgoing: &mut mpsc::Receiver<CotEvent>,
    incoming: &mpsc::Sender<CotEvent>,
    offline: &mut HashMap<String, CotEvent>,
) -> SessionEnd {
    // Flush what accumulated while we were away, oldest first, skipping what went stale.
    let mut backlog: Vec<CotEvent> = offline.drain().map(|(_, ev)| ev).collect();
    backlog.sort_by_key(|ev| ev.time_ms);
    let now = now_ms();
    let mut backlog = backlog.into_iter();
    while let Some(ev) = backlog.next() {
        if ev.is_stale(now) {
            bump(&client.stats.dropped);
            continue;
        }
        if let Err(e) = client.send(&ev).await {
            tracing::warn!("{e}");
            offline.insert(ev.uid.clone(), ev);
            offline.extend(backlog.map(|ev| (ev.uid.clone(), ev)));
            return SessionEnd::Lost;
        }
    }

    let period = config.ping_interval.unwrap_or(Duration::from_secs(3600));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            ev = outgoing.recv() => {
                let Some(ev) = ev else { return SessionEnd::Shutdown };
                if let Err(e) = client.send(&ev).await {
                    tracing::warn!("{e}");
                    keep_offline(offline, ev, config.offline_capacity, &client.stats);
                    return SessionEnd::Lost;
                }
            }
            ev = client.recv() => {
                let Some(ev) = ev else { return SessionEnd::Lost };
                if incoming.send(ev).await.is_err() {
                    return SessionEnd::Shutdown;
                }
            }
            _ = ping.tick(), if config.ping_interval.is_some() => {
                if let Some(idle) = config.idle_timeout {
                    if client.idle_ms() > idle.as_millis() as u64 {
                        tracing::warn!("nothing from the TAK server in {idle:?}; reconnecting");
                        return SessionEnd::Lost;
                    }
                }
                let ping = CotEvent::ping(&format!("{UID_PREFIX}gateway-ping"), now_ms());
                if let Err(e) = client.send_bytes(ping.to_xml().as_bytes()).await {
                    tracing::warn!("{e}");
                    return SessionEnd::Lost;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_addr() {
        assert_eq!(host_of("localhost:8089"), "localhost");
        assert_eq!(host_of("127.0.0.1:8087"), "127.0.0.1");
        assert_eq!(host_of("[::1]:8087"), "::1");
        assert_eq!(host_of("tak.example"), "tak.example");
    }

    #[test]
    fn offline_buffer_keeps_latest_per_uid_and_is_bounded() {
        let stats = TakStats::default();
        let mut offline = HashMap::new();
        let ev = |uid: &str, t: u64| CotEvent {
            time_ms: t,
            uid: uid.to_string(),
            ..CotEvent::ping("x", 0)
        };
        keep_offline(&mut offline, ev("a", 1), 2, &stats);
        keep_offline(&mut offline, ev("a", 2), 2, &stats);
        keep_offline(&mut offline, ev("b", 3), 2, &stats);
        keep_offline(&mut offline, ev("c", 4), 2, &stats);
        assert_eq!(offline.len(), 2);
        assert_eq!(offline["a"].time_ms, 2);
        assert_eq!(stats.snapshot().dropped, 1);
    }

    fn quick(addr: String) -> TakConfig {
        TakConfig {
            ping_interval: Some(Duration::from_millis(100)),
            idle_timeout: Some(Duration::from_millis(300)),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_millis(100),
            ..TakConfig::tcp(addr)
        }
    }

    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn silent_servers_are_dropped_and_redialled() {
        // A server that accepts and then never says anything (not even pongs).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        let stats = Arc::new(TakStats::default());
        let (out_tx, out_rx) = mpsc::channel(1);
        let (in_tx, _in_rx) = mpsc::channel(1);
        let gateway = tokio::spawn(run(quick(addr), out_rx, in_tx, stats.clone()));
        until("redialled", || stats.snapshot().connects >= 2).await;
        assert!(stats.snapshot().failures >= 1);
        drop(out_tx);
        gateway.await.unwrap();
        server.abort();
    }

    #[tokio::test]
    async fn run_stops_while_disconnected_and_keeps_events_meanwhile() {
        // Nobody listens on this port once the listener is gone.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let stats = Arc::new(TakStats::default());
        let (out_tx, out_rx) = mpsc::channel(4);
        let (in_tx, _in_rx) = mpsc::channel(1);
        let gateway = tokio::spawn(run(quick(addr), out_rx, in_tx, stats.clone()));
        until("a failed attempt", || stats.snapshot().failures >= 1).await;
        // The channel keeps draining: more events than its capacity go through.
        for i in 0..10 {
            let ev = CotEvent {
                uid: format!("mizugiwa.test.{i}"),
                ..CotEvent::ping("x", now_ms())
            };
            tokio::time::timeout(Duration::from_secs(10), out_tx.send(ev))
                .await
                .expect("run stopped taking events while offline")
                .unwrap();
        }
        drop(out_tx);
        tokio::time::timeout(Duration::from_secs(10), gateway)
            .await
            .expect("run did not stop")
            .unwrap();
        assert_eq!(stats.snapshot().connects, 0);
    }

    #[tokio::test]
    async fn tls_config_errors_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let tls = TakTls {
            ca_pem: missing.clone(),
            cert_pem: missing.clone(),
            key_pem: missing,
            server_name: None,
        };
        let Err(e) = tls_connector(&tls) else {
            panic!("missing files accepted")
        };
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }
}
