//! A thin QUIC transport: mutual TLS against the deployment's CA, one bidirectional
//! stream per connection, and length-prefixed frames with a hard size bound.
//!
//! # Session rules
//!
//! * Every [`Endpoint`] is both server and client on one UDP socket.
//! * Both sides present a certificate issued by the deployment CA ([`crate::pki`]); each
//!   side refuses a peer whose certificate is not signed by that CA, or whose serial or
//!   node name is in the shared [`Revocations`] list *at handshake time*.
//! * The connecting side opens exactly one bidirectional stream and **writes first**: a
//!   fixed 8-byte preamble. QUIC announces a stream to the peer only once data is sent on
//!   it, so without this write the acceptor would never see the stream. The acceptor
//!   answers with the same preamble, and [`Endpoint::connect`] returns only after it has
//!   read that answer. This matters because in TLS 1.3 the client finishes its handshake
//!   before the server has checked the client's certificate: without the answer, a
//!   client the server refuses (unknown CA, revoked) would believe it was connected.
//! * After the preamble, each direction carries frames: a `u32` big-endian length, then
//!   that many bytes. A receiver refuses (without allocating) any frame longer than
//!   [`TransportConfig::max_frame_bytes`]; the caller should then close the connection
//!   with [`close_code::FRAME_TOO_LARGE`].
//! * A sender ends its direction with [`FrameSender::finish`]; the other side's
//!   [`FrameReceiver::recv`] then returns `Ok(None)`. A stream that ends inside a frame
//!   is an error ([`TransportError::Truncated`]).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ConnectionError, ReadError, ReadExactError, TransportErrorCode, VarInt, WriteError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    AlertDescription, CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore,
    SignatureScheme,
};
use tokio::sync::{mpsc, Mutex, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::pki::{
    peer_from_cert, validate_node_name, NodeIdentity, PeerIdentity, PkiError, Revocations,
};

/// ALPN protocol identifier of the sync protocol, version 1.
pub const ALPN: &[u8] = b"mizugiwa-sync/1";

/// The 8 bytes the connecting side writes first and the accepting side echoes.
const SESSION_PREAMBLE: [u8; 8] = *b"mzgw-s/1";

/// At most this many incoming handshakes are in progress at once; more are refused so a
/// flood of half-open connections cannot exhaust memory (each holds tens of kilobytes).
/// 64 made a fleet of 1,000 sites coming back after an outage queue for a minute at the
/// command center with its cores half idle; 256 still bounds a flood to a few megabytes.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// How many finished incoming links may wait for [`Endpoint::accept`].
const ACCEPT_QUEUE: usize = 16;

/// Application close codes used on sync connections.
pub mod close_code {
    /// Orderly end of the session.
    pub const NORMAL: u32 = 0;
    /// The peer broke the session protocol (bad preamble, undecodable frame, ...).
    pub const PROTOCOL_ERROR: u32 = 1;
    /// The peer announced a frame larger than the configured bound.
    pub const FRAME_TOO_LARGE: u32 = 2;
    /// This node is shutting down.
    pub const SHUTDOWN: u32 = 3;
    /// The peer has been revoked while connected.
    pub const REVOKED: u32 = 4;
}

/// Tunables of the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// Largest frame accepted or sent, in bytes (default 4 MiB; at most `u32::MAX`).
    pub max_frame_bytes: usize,
    /// A connection with no traffic for this long is dropped (default 30 s). Also the
    /// deadline for a handshake plus session set-up in [`Endpoint::connect`] and on accept.
    pub idle_timeout: Duration,
    /// Interval of keep-alive packets while connected (default 5 s; zero disables them).
    /// Must be shorter than `idle_timeout`.
    pub keep_alive: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_frame_bytes: 4 * 1024 * 1024,
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(5),
        }
    }
}

/// Which side of a handshake refused a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedBy {
    /// This node refused the peer's certificate.
    Us,
    /// The peer refused this node's certificate.
    Peer,
}

impl fmt::Display for RefusedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusedBy::Us => f.write_str("we refused the peer's certificate"),
            RefusedBy::Peer => f.write_str("the peer refused our certificate"),
        }
    }
}

/// Errors of the transport. Messages say what went wrong and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The transport configuration is unusable.
    #[error("invalid transport configuration: {0}")]
    Config(String),
    /// The TLS configuration could not be built from the identity and CA.
    #[error("cannot set up TLS: {0}; check the node certificate, key and ca.crt")]
    Tls(String),
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP socket on {addr}: {source}; is another process using the port?")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A connection attempt could not even be started.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The peer address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: quinn::ConnectError,
    },
    /// The peer's certificate chain does not lead to this deployment's CA (or ours does not
    /// lead to the peer's).
    #[error(
        "TLS handshake with {addr} failed ({by}): certificate is not signed by this \
         deployment's CA; issue one with `mizugiwa pki issue` and make sure both nodes use \
         the same ca.crt"
    )]
    UnknownCa {
        /// The peer address.
        addr: SocketAddr,
        /// Who refused whom.
        by: RefusedBy,
    },
    /// The certificate's serial or node name is on the revocation list.
    #[error(
        "TLS handshake with {addr} failed ({by}): certificate is revoked (by serial or node \
         name); if the node is trusted again, issue it a new certificate with \
         `mizugiwa pki issue` and lift the node revocation"
    )]
    Revoked {
        /// The peer address.
        addr: SocketAddr,
        /// Who refused whom.
        by: RefusedBy,
    },
    /// The handshake was refused for another reason (wrong name, expired, ALPN, ...).
    #[error(
        "TLS handshake with {addr} refused ({by}): {reason}; check that the peer name \
         matches its certificate and that both clocks are right"
    )]
    HandshakeRefused {
        /// The peer address.
        addr: SocketAddr,
        /// Who refused whom.
        by: RefusedBy,
        /// The TLS layer's explanation.
        reason: String,
    },
    /// The peer did not complete the handshake and session set-up in time.
    #[error("timed out {what} with {addr}; is the peer up and reachable over UDP?")]
    Timeout {
        /// The peer address.
        addr: SocketAddr,
        /// What was being waited for.
        what: &'static str,
    },
    /// The peer broke the session set-up rules.
    #[error("peer {addr} broke the session protocol: {reason}")]
    Protocol {
        /// The peer address.
        addr: SocketAddr,
        /// What was wrong.
        reason: String,
    },
    /// A frame is larger than the configured bound (announced by the peer, or handed to
    /// [`FrameSender::send`]). The stream is unusable afterwards: close the connection
    /// with [`close_code::FRAME_TOO_LARGE`].
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Announced or attempted frame length.
        len: usize,
        /// The configured bound.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream from {addr} ended inside a frame ({got} of {expected} bytes); the peer crashed or misbehaved")]
    Truncated {
        /// The peer address.
        addr: SocketAddr,
        /// Bytes the frame (or length prefix) should have had.
        expected: usize,
        /// Bytes received before the end.
        got: usize,
    },
    /// The stream was reset, stopped or already finished.
    #[error("sync stream with {addr} closed: {reason}")]
    StreamClosed {
        /// The peer address.
        addr: SocketAddr,
        /// What closed it.
        reason: String,
    },
    /// This node closed the connection (shutdown, or a session it ended).
    #[error("connection with {addr} lost: {reason}")]
    LocallyClosed {
        /// The peer address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The peer closed the connection on purpose, with an application close code
    /// ([`close_code`]).
    #[error("connection with {addr} lost: peer closed the connection with code {code}{}", if reason.is_empty() { String::new() } else { format!(" ({reason})") })]
    PeerClosed {
        /// The peer address.
        addr: SocketAddr,
        /// Its close code.
        code: u64,
        /// Its reason text.
        reason: String,
    },
    /// The connection ended (closed by this side, reset, idle timeout).
    #[error("connection with {addr} lost: {reason}")]
    ConnectionLost {
        /// The peer address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// A local I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A certificate or name problem found before any network traffic.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// A QUIC endpoint that accepts and opens mutually authenticated sync links.
///
/// Incoming handshakes run concurrently in the background (so one slow or hostile peer
/// cannot hold up the others) and finished links, or the reasons they were refused, queue
/// up for [`Endpoint::accept`]. Must be created inside a tokio runtime.
pub struct Endpoint {
    inner: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    config: TransportConfig,
    identity: PeerIdentity,
    incoming: Mutex<mpsc::Receiver<Result<Link, TransportError>>>,
    acceptor: JoinHandle<()>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("local_addr", &self.inner.local_addr().ok())
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // The background acceptor holds a clone of the quinn endpoint; stop it so the
        // socket is released together with this handle.
        self.acceptor.abort();
    }
}

impl Endpoint {
    /// Binds a UDP socket on `addr` and sets up both the server and the client side with
    /// this node's `identity`, trusting only `ca` and refusing anything in `revocations`.
    pub fn bind(
        addr: SocketAddr,
        identity: &NodeIdentity,
        ca: CertificateDer<'static>,
        revocations: Revocations,
        config: TransportConfig,
    ) -> Result<Endpoint, TransportError> {
        validate_config(&config)?;
        // quinn and the acceptor task need a runtime; report its absence instead of
        // letting `tokio::spawn` panic.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            TransportError::Config("Endpoint::bind must be called inside a tokio runtime".into())
        })?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots
            .add(ca)
            .map_err(|e| TransportError::Tls(format!("CA certificate unusable: {e}")))?;
        let roots = Arc::new(roots);

        let server_config = server_config(identity, &roots, &provider, &revocations, &config)?;
        let client_config = client_config(identity, &roots, &provider, &revocations, &config)?;

        let inner = {
            // quinn looks the runtime up from the current context.
            let _guard = runtime.enter();
            quinn::Endpoint::server(server_config, addr)
                .map_err(|source| TransportError::Bind { addr, source })?
        };

        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        let acceptor = runtime.spawn(accept_loop(inner.clone(), tx, config.clone()));
        let endpoint = Endpoint {
            inner,
            client_config,
            config,
            identity: identity.peer_identity(),
            incoming: Mutex::new(rx),
            acceptor,
        };
        info!(
            node = %endpoint.identity.name,
            addr = ?endpoint.inner.local_addr().ok(),
            "sync endpoint listening"
        );
        Ok(endpoint)
    }

    /// The bound UDP address (useful after binding port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, TransportError> {
        Ok(self.inner.local_addr()?)
    }

    /// This node's identity as presented to peers.
    pub fn identity(&self) -> &PeerIdentity {
        &self.identity
    }

    /// Connects to the node `peer_name` at `addr`, verifies its certificate (CA, name,
    /// revocation), opens the session stream and waits until the peer has accepted it.
    pub async fn connect(&self, addr: SocketAddr, peer_name: &str) -> Result<Link, TransportError> {
        let result = self.connect_inner(addr, peer_name).await;
        if let Err(err) = &result {
            warn!(peer = %addr, expected = peer_name, reason = %err, "outgoing sync connection failed");
        }
        result
    }

    async fn connect_inner(
        &self,
        addr: SocketAddr,
        peer_name: &str,
    ) -> Result<Link, TransportError> {
        validate_node_name(peer_name)?;
        let connecting = self
            .inner
            .connect_with(self.client_config.clone(), addr, peer_name)
            .map_err(|source| TransportError::Connect { addr, source })?;
        let max = self.config.max_frame_bytes;
        let set_up = async move {
            let conn = connecting.await.map_err(|e| connection_error(e, addr))?;
            let peer = peer_of(&conn, addr)?;
            if peer.name != peer_name {
                // webpki already matched the DNS SAN; this guards against a certificate
                // that lists several names.
                conn.close(close_code::PROTOCOL_ERROR.into(), b"unexpected node name");
                return Err(TransportError::HandshakeRefused {
                    addr,
                    by: RefusedBy::Us,
                    reason: format!(
                        "expected node {peer_name:?}, certificate names {:?}",
                        peer.name
                    ),
                });
            }
            let (mut send, mut recv) = conn
                .open_bi()
                .await
                .map_err(|e| connection_error(e, addr))?;
            // Writing first is what makes the stream visible to the acceptor.
            send.write_all(&SESSION_PREAMBLE)
                .await
                .map_err(|e| write_error(e, addr))?;
            let mut answer = [0u8; SESSION_PREAMBLE.len()];
            read_preamble(&mut recv, &mut answer, addr).await?;
            if answer != SESSION_PREAMBLE {
                conn.close(close_code::PROTOCOL_ERROR.into(), b"bad session preamble");
                return Err(TransportError::Protocol {
                    addr,
                    reason: "unexpected session preamble answer (not a Mizugiwa sync node?)".into(),
                });
            }
            Ok(Link::new(peer, addr, conn, send, recv, max))
        };
        match tokio::time::timeout(self.config.idle_timeout, set_up).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout {
                addr,
                what: "waiting for the handshake and session set-up",
            }),
        }
    }

    /// The next incoming link, or the reason an incoming connection was refused (already
    /// logged). `None` once the endpoint is closed.
    pub async fn accept(&self) -> Option<Result<Link, TransportError>> {
        self.incoming.lock().await.recv().await
    }

    /// Closes every connection at once with `code` and stops accepting. Pending data is
    /// discarded; finish the frame streams first for an orderly shutdown.
    pub fn close(&self, code: u32, reason: &str) {
        self.inner.close(code.into(), reason.as_bytes());
    }

    /// Waits until all connections are cleanly shut down (call after [`Endpoint::close`]).
    pub async fn wait_idle(&self) {
        self.inner.wait_idle().await;
    }
}

fn validate_config(config: &TransportConfig) -> Result<(), TransportError> {
    if config.max_frame_bytes == 0 || u32::try_from(config.max_frame_bytes).is_err() {
        return Err(TransportError::Config(format!(
            "max_frame_bytes must be between 1 and {} (the frame length prefix is 32 bits), got {}",
            u32::MAX,
            config.max_frame_bytes
        )));
    }
    if config.idle_timeout.is_zero() {
        return Err(TransportError::Config(
            "idle_timeout must not be zero".into(),
        ));
    }
    if !config.keep_alive.is_zero() && config.keep_alive >= config.idle_timeout {
        return Err(TransportError::Config(format!(
            "keep_alive ({:?}) must be shorter than idle_timeout ({:?}), or zero to disable it",
            config.keep_alive, config.idle_timeout
        )));
    }
    Ok(())
}

/// QUIC transport parameters; `peer_bidi_streams` is how many streams the peer may open.
fn quic_transport(
    config: &TransportConfig,
    peer_bidi_streams: u32,
) -> Result<Arc<quinn::TransportConfig>, TransportError> {
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(config.idle_timeout).map_err(|_| {
        TransportError::Config(format!(
            "idle_timeout {:?} is too large",
            config.idle_timeout
        ))
    })?;
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval((!config.keep_alive.is_zero()).then_some(config.keep_alive));
    // One session stream per connection, opened by the client; nothing else is needed.
    transport.max_concurrent_bidi_streams(peer_bidi_streams.into());
    transport.max_concurrent_uni_streams(0u32.into());
    transport.datagram_receive_buffer_size(None);
    Ok(Arc::new(transport))
}

fn server_config(
    identity: &NodeIdentity,
    roots: &Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
    revocations: &Revocations,
    config: &TransportConfig,
) -> Result<quinn::ServerConfig, TransportError> {
    let webpki = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| TransportError::Tls(format!("client verifier: {e}")))?;
    let verifier = Arc::new(RevocationAwareClientVerifier {
        inner: webpki,
        revocations: revocations.clone(),
    });
    let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TransportError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain().to_vec(), identity.key())
        .map_err(|e| TransportError::Tls(format!("node certificate or key: {e}")))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // No session resumption: a resumed TLS 1.3 session skips certificate verification,
    // so a client revoked after its first connection would get straight back in.
    tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    let quic = QuicServerConfig::try_from(tls).map_err(|e| TransportError::Tls(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    server.transport_config(quic_transport(config, 1)?);
    Ok(server)
}

fn client_config(
    identity: &NodeIdentity,
    roots: &Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
    revocations: &Revocations,
    config: &TransportConfig,
) -> Result<quinn::ClientConfig, TransportError> {
    let webpki = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| TransportError::Tls(format!("server verifier: {e}")))?;
    let verifier = Arc::new(RevocationAwareServerVerifier {
        inner: webpki,
        revocations: revocations.clone(),
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TransportError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(identity.chain().to_vec(), identity.key())
        .map_err(|e| TransportError::Tls(format!("node certificate or key: {e}")))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // No session resumption: it would skip the server certificate check, and with it the
    // revocation list (see `server_config`).
    tls.resumption = rustls::client::Resumption::disabled();
    let quic = QuicClientConfig::try_from(tls).map_err(|e| TransportError::Tls(e.to_string()))?;
    let mut client = quinn::ClientConfig::new(Arc::new(quic));
    // The server never opens streams towards the client.
    client.transport_config(quic_transport(config, 0)?);
    Ok(client)
}

/// After the CA check passed: the certificate must carry a Mizugiwa identity, and that
/// identity must not be revoked. Runs on every handshake, so run-time revocations apply
/// to the very next connection attempt.
fn check_peer_certificate(
    end_entity: &CertificateDer<'_>,
    revocations: &Revocations,
    presented_as: &'static str,
) -> Result<(), rustls::Error> {
    let peer = peer_from_cert(end_entity).map_err(|e| {
        info!(presented_as, reason = %e, "refusing certificate without a usable Mizugiwa identity");
        rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
    })?;
    if revocations.is_revoked(&peer) {
        info!(presented_as, node = %peer.name, serial = %peer.serial, "refusing revoked certificate");
        return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
    }
    Ok(())
}

/// webpki client verification against the deployment CA, plus the revocation list.
#[derive(Debug)]
struct RevocationAwareClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    revocations: Revocations,
}

impl ClientCertVerifier for RevocationAwareClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_peer_certificate(end_entity, &self.revocations, "client certificate")?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// webpki server verification (CA and expected node name), plus the revocation list.
#[derive(Debug)]
struct RevocationAwareServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    revocations: Revocations,
}

impl ServerCertVerifier for RevocationAwareServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        check_peer_certificate(end_entity, &self.revocations, "server certificate")?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    links: mpsc::Sender<Result<Link, TransportError>>,
    config: TransportConfig,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    while let Some(incoming) = endpoint.accept().await {
        let remote = incoming.remote_address();
        let Ok(permit) = pending.clone().try_acquire_owned() else {
            warn!(peer = %remote, "refusing connection: too many handshakes in progress");
            incoming.refuse();
            continue;
        };
        let links = links.clone();
        let config = config.clone();
        tokio::spawn(async move {
            let result = accept_one(incoming, remote, &config).await;
            drop(permit);
            match &result {
                Ok(link) => {
                    info!(peer = %remote, node = %link.peer.name, role = %link.peer.role, "accepted sync link")
                }
                Err(err) => {
                    warn!(peer = %remote, reason = %err, "refused incoming sync connection")
                }
            }
            // If nobody is accepting any more the endpoint is gone; dropping the link
            // closes the connection, which is the right outcome.
            let _ = links.send(result).await;
        });
    }
    debug!("sync endpoint closed; accept loop ends");
}

async fn accept_one(
    incoming: quinn::Incoming,
    remote: SocketAddr,
    config: &TransportConfig,
) -> Result<Link, TransportError> {
    let max = config.max_frame_bytes;
    let set_up = async move {
        let connecting = incoming.accept().map_err(|e| connection_error(e, remote))?;
        let conn = connecting.await.map_err(|e| connection_error(e, remote))?;
        let peer = peer_of(&conn, remote)?;
        let (mut send, mut recv) = conn
            .accept_bi()
            .await
            .map_err(|e| connection_error(e, remote))?;
        let mut preamble = [0u8; SESSION_PREAMBLE.len()];
        read_preamble(&mut recv, &mut preamble, remote).await?;
        if preamble != SESSION_PREAMBLE {
            conn.close(close_code::PROTOCOL_ERROR.into(), b"bad session preamble");
            return Err(TransportError::Protocol {
                addr: remote,
                reason: "unexpected session preamble (not a Mizugiwa sync node?)".into(),
            });
        }
        send.write_all(&SESSION_PREAMBLE)
            .await
            .map_err(|e| write_error(e, remote))?;
        Ok(Link::new(peer, remote, conn, send, recv, max))
    };
    match tokio::time::timeout(config.idle_timeout, set_up).await {
        Ok(result) => result,
        Err(_) => Err(TransportError::Timeout {
            addr: remote,
            what: "waiting for the handshake and session stream",
        }),
    }
}

async fn read_preamble(
    recv: &mut quinn::RecvStream,
    buf: &mut [u8],
    addr: SocketAddr,
) -> Result<(), TransportError> {
    recv.read_exact(buf).await.map_err(|e| match e {
        ReadExactError::FinishedEarly(got) => TransportError::Protocol {
            addr,
            reason: format!("session stream ended after {got} bytes of the preamble"),
        },
        ReadExactError::ReadError(e) => read_error(e, addr),
    })
}

/// The verified peer's identity, from the leaf of the chain it presented.
fn peer_of(conn: &quinn::Connection, addr: SocketAddr) -> Result<PeerIdentity, TransportError> {
    let refuse = |reason: String| {
        conn.close(
            close_code::PROTOCOL_ERROR.into(),
            b"no usable peer identity",
        );
        TransportError::HandshakeRefused {
            addr,
            by: RefusedBy::Us,
            reason,
        }
    };
    let chain = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(|| refuse("peer presented no certificate".into()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| refuse("peer presented an empty certificate chain".into()))?;
    peer_from_cert(leaf).map_err(|e| refuse(e.to_string()))
}

/// QUIC carries TLS alerts as transport error codes 0x100-0x1ff.
fn tls_alert(code: TransportErrorCode) -> Option<AlertDescription> {
    let code = u64::from(code);
    (0x100..0x200)
        .contains(&code)
        .then(|| AlertDescription::from((code & 0xff) as u8))
}

fn handshake_error(
    alert: AlertDescription,
    addr: SocketAddr,
    by: RefusedBy,
    reason: String,
) -> TransportError {
    match alert {
        AlertDescription::UnknownCA => TransportError::UnknownCa { addr, by },
        AlertDescription::CertificateRevoked => TransportError::Revoked { addr, by },
        _ => TransportError::HandshakeRefused {
            addr,
            by,
            reason: if reason.is_empty() {
                format!("TLS alert {alert:?}")
            } else {
                reason
            },
        },
    }
}

fn connection_error(err: ConnectionError, addr: SocketAddr) -> TransportError {
    match err {
        // Our own TLS stack refused the peer.
        ConnectionError::TransportError(te) => match tls_alert(te.code) {
            Some(alert) => handshake_error(alert, addr, RefusedBy::Us, te.reason),
            None => TransportError::ConnectionLost {
                addr,
                reason: te.to_string(),
            },
        },
        // The peer's TLS stack refused us.
        ConnectionError::ConnectionClosed(close) => match tls_alert(close.error_code) {
            Some(alert) => handshake_error(
                alert,
                addr,
                RefusedBy::Peer,
                String::from_utf8_lossy(&close.reason).into_owned(),
            ),
            None => TransportError::ConnectionLost {
                addr,
                reason: format!("aborted by peer: {close}"),
            },
        },
        ConnectionError::ApplicationClosed(close) => TransportError::PeerClosed {
            addr,
            code: close.error_code.into_inner(),
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        },
        ConnectionError::TimedOut => TransportError::Timeout {
            addr,
            what: "waiting for the peer (idle timeout)",
        },
        ConnectionError::LocallyClosed => TransportError::LocallyClosed {
            addr,
            reason: "closed by this node".into(),
        },
        other => TransportError::ConnectionLost {
            addr,
            reason: other.to_string(),
        },
    }
}

fn read_error(err: ReadError, addr: SocketAddr) -> TransportError {
    match err {
        ReadError::ConnectionLost(e) => connection_error(e, addr),
        ReadError::Reset(code) => TransportError::StreamClosed {
            addr,
            reason: format!("peer reset the stream (code {code})"),
        },
        other => TransportError::StreamClosed {
            addr,
            reason: other.to_string(),
        },
    }
}

fn write_error(err: WriteError, addr: SocketAddr) -> TransportError {
    match err {
        WriteError::ConnectionLost(e) => connection_error(e, addr),
        WriteError::Stopped(code) => TransportError::StreamClosed {
            addr,
            reason: format!("peer stopped reading (code {code})"),
        },
        other => TransportError::StreamClosed {
            addr,
            reason: other.to_string(),
        },
    }
}

/// An established sync session with one authenticated peer.
pub struct Link {
    /// Who the peer is, from its verified certificate.
    pub peer: PeerIdentity,
    /// The peer's UDP address.
    pub remote: SocketAddr,
    /// Outgoing frames.
    pub tx: FrameSender,
    /// Incoming frames.
    pub rx: FrameReceiver,
    conn: quinn::Connection,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("peer", &self.peer)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl Link {
    fn new(
        peer: PeerIdentity,
        remote: SocketAddr,
        conn: quinn::Connection,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        max_frame_bytes: usize,
    ) -> Link {
        Link {
            tx: FrameSender {
                stream: send,
                max: max_frame_bytes,
                remote,
            },
            rx: FrameReceiver {
                stream: recv,
                max: max_frame_bytes,
                remote,
                state: RecvState::Open,
            },
            peer,
            remote,
            conn,
        }
    }

    /// Closes the connection at once with an application `code` (see [`close_code`]) and
    /// a short reason the peer will see. Unsent data is discarded.
    pub fn close(&self, code: u32, reason: &str) {
        self.conn.close(VarInt::from_u32(code), reason.as_bytes());
    }

    /// A handle that can close or watch the connection independently of the frame halves.
    pub fn handle(&self) -> LinkHandle {
        LinkHandle {
            peer: self.peer.clone(),
            remote: self.remote,
            conn: self.conn.clone(),
        }
    }

    /// Splits the link so that reading and writing can run in separate tasks.
    pub fn split(self) -> (LinkHandle, FrameSender, FrameReceiver) {
        let handle = self.handle();
        (handle, self.tx, self.rx)
    }
}

/// Controls the connection of a [`Link`] after it was split.
#[derive(Clone)]
pub struct LinkHandle {
    /// Who the peer is, from its verified certificate.
    pub peer: PeerIdentity,
    /// The peer's UDP address.
    pub remote: SocketAddr,
    conn: quinn::Connection,
}

impl TransportError {
    /// Whether the connection ended in an orderly way: the peer said goodbye or is shutting
    /// down, or this node closed it.
    pub fn is_orderly_close(&self) -> bool {
        match self {
            TransportError::PeerClosed { code, .. } => {
                *code == u64::from(close_code::NORMAL) || *code == u64::from(close_code::SHUTDOWN)
            }
            TransportError::LocallyClosed { .. } => true,
            _ => false,
        }
    }
}

impl fmt::Debug for LinkHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkHandle")
            .field("peer", &self.peer)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl LinkHandle {
    /// Closes the connection at once, as [`Link::close`].
    pub fn close(&self, code: u32, reason: &str) {
        self.conn.close(VarInt::from_u32(code), reason.as_bytes());
    }

    /// Waits until the connection ends and says why.
    pub async fn closed(&self) -> TransportError {
        connection_error(self.conn.closed().await, self.remote)
    }
}

/// The sending half of a link: writes length-prefixed frames.
#[derive(Debug)]
pub struct FrameSender {
    stream: quinn::SendStream,
    max: usize,
    remote: SocketAddr,
}

impl FrameSender {
    /// Sends one frame. Frames larger than the configured bound are refused here, before
    /// anything is written, so the peer never has to reject them.
    pub async fn send(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        if frame.len() > self.max {
            return Err(TransportError::FrameTooLarge {
                len: frame.len(),
                max: self.max,
            });
        }
        // Cannot fail: max is at most u32::MAX (checked in `Endpoint::bind`).
        let len = u32::try_from(frame.len()).map_err(|_| TransportError::FrameTooLarge {
            len: frame.len(),
            max: self.max,
        })?;
        self.stream
            .write_all(&len.to_be_bytes())
            .await
            .map_err(|e| write_error(e, self.remote))?;
        self.stream
            .write_all(frame)
            .await
            .map_err(|e| write_error(e, self.remote))
    }

    /// Ends this direction cleanly: the peer's [`FrameReceiver::recv`] returns `Ok(None)`
    /// after the last frame.
    pub fn finish(&mut self) -> Result<(), TransportError> {
        self.stream
            .finish()
            .map_err(|_| TransportError::StreamClosed {
                addr: self.remote,
                reason: "stream already finished or reset".into(),
            })
    }

    /// The configured frame bound.
    pub fn max_frame_bytes(&self) -> usize {
        self.max
    }

    /// The raw QUIC stream, bypassing framing and its bound; for tests and diagnostic
    /// tools that must produce malformed traffic on purpose.
    pub fn into_inner(self) -> quinn::SendStream {
        self.stream
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvState {
    Open,
    Finished,
    /// A previous error left the stream between frames it can no longer find.
    Broken,
}

/// The receiving half of a link: reads length-prefixed frames.
#[derive(Debug)]
pub struct FrameReceiver {
    stream: quinn::RecvStream,
    max: usize,
    remote: SocketAddr,
    state: RecvState,
}

impl FrameReceiver {
    /// Receives the next frame; `Ok(None)` when the peer finished the stream cleanly
    /// between frames. An announced length above the bound returns
    /// [`TransportError::FrameTooLarge`] without reading or allocating the body; any
    /// error leaves the receiver unusable (later calls fail), so close the connection.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        match self.state {
            RecvState::Open => {}
            RecvState::Finished => return Ok(None),
            RecvState::Broken => {
                return Err(TransportError::StreamClosed {
                    addr: self.remote,
                    reason: "frame stream unusable after an earlier error; close the connection"
                        .into(),
                })
            }
        }
        let result = self.recv_frame().await;
        match &result {
            Ok(Some(_)) => {}
            Ok(None) => self.state = RecvState::Finished,
            Err(_) => self.state = RecvState::Broken,
        }
        result
    }

    async fn recv_frame(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        let mut prefix = [0u8; 4];
        match self.stream.read_exact(&mut prefix).await {
            Ok(()) => {}
            Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
            Err(ReadExactError::FinishedEarly(got)) => {
                return Err(TransportError::Truncated {
                    addr: self.remote,
                    expected: prefix.len(),
                    got,
                })
            }
            Err(ReadExactError::ReadError(e)) => return Err(read_error(e, self.remote)),
        }
        // u32 always fits in usize on the platforms quinn supports (32/64-bit); saturate
        // rather than assume, so an oversized length can never wrap to a small one.
        let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
        if len > self.max {
            return Err(TransportError::FrameTooLarge { len, max: self.max });
        }
        // Bounded by `max`, so this allocation is under our control, not the peer's.
        let mut frame = vec![0u8; len];
        match self.stream.read_exact(&mut frame).await {
            Ok(()) => Ok(Some(frame)),
            Err(ReadExactError::FinishedEarly(got)) => Err(TransportError::Truncated {
                addr: self.remote,
                expected: len,
                got,
            }),
            Err(ReadExactError::ReadError(e)) => Err(read_error(e, self.remote)),
        }
    }

    /// The configured frame bound.
    pub fn max_frame_bytes(&self) -> usize {
        self.max
    }

    /// The raw QUIC stream, bypassing framing; for tests and diagnostic tools.
    pub fn into_inner(self) -> quinn::RecvStream {
        self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        assert!(validate_config(&TransportConfig::default()).is_ok());
        let zero_frames = TransportConfig {
            max_frame_bytes: 0,
            ..TransportConfig::default()
        };
        assert!(matches!(
            validate_config(&zero_frames),
            Err(TransportError::Config(_))
        ));
        let slow_keep_alive = TransportConfig {
            keep_alive: Duration::from_secs(60),
            ..TransportConfig::default()
        };
        assert!(matches!(
            validate_config(&slow_keep_alive),
            Err(TransportError::Config(_))
        ));
    }

    #[test]
    fn alerts_map_to_typed_errors() {
        let addr: SocketAddr = ([127, 0, 0, 1], 1).into();
        let unknown_ca = TransportErrorCode::crypto(u8::from(AlertDescription::UnknownCA));
        let alert =
            tls_alert(unknown_ca).map(|a| handshake_error(a, addr, RefusedBy::Peer, String::new()));
        assert!(matches!(
            alert,
            Some(TransportError::UnknownCa {
                by: RefusedBy::Peer,
                ..
            })
        ));
        let revoked = TransportErrorCode::crypto(u8::from(AlertDescription::CertificateRevoked));
        let alert =
            tls_alert(revoked).map(|a| handshake_error(a, addr, RefusedBy::Us, String::new()));
        assert!(matches!(
            alert,
            Some(TransportError::Revoked {
                by: RefusedBy::Us,
                ..
            })
        ));
        assert!(tls_alert(TransportErrorCode::PROTOCOL_VIOLATION).is_none());
    }
}
