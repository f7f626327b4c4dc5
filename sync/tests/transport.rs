//! Transport and PKI tests: real QUIC on 127.0.0.1 with real certificates made in
//! temporary directories. Nothing sleeps to synchronise; every wait has a deadline.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mizugiwa_sync::pki::{
    self, init_ca, issue, load_ca, peer_from_cert, validate_node_name, NodeIdentity, PkiError,
    Revocations, Role,
};
use mizugiwa_sync::transport::{
    close_code, Endpoint, Link, RefusedBy, TransportConfig, TransportError,
};
use tempfile::TempDir;

/// Counts allocations of 1 GiB or more, so the oversized-frame test can prove the
/// receiver never allocates what a peer merely announces. (On Linux a huge zeroed
/// allocation succeeds lazily, so "it did not crash" would prove nothing.)
struct CountingAlloc;

static HUGE_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
const HUGE: usize = 1 << 30;

fn note(size: usize) {
    if size >= HUGE {
        HUGE_ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Upper bound for any single awaited event.
const DEADLINE: Duration = Duration::from_secs(10);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A CA plus a directory for node files, living as long as the value.
struct Deployment {
    _dir: TempDir,
    ca_dir: PathBuf,
    nodes_dir: PathBuf,
}

impl Deployment {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_dir = dir.path().join("ca");
        let nodes_dir = dir.path().join("nodes");
        init_ca(&ca_dir, name).expect("init_ca");
        Deployment {
            _dir: dir,
            ca_dir,
            nodes_dir,
        }
    }

    fn node(&self, name: &str, role: Role) -> NodeIdentity {
        issue(&self.ca_dir, &self.nodes_dir, name, role).expect("issue");
        NodeIdentity::load_dir(&self.nodes_dir, name).expect("load identity")
    }

    fn ca(&self) -> rustls::pki_types::CertificateDer<'static> {
        load_ca(&self.ca_dir.join(pki::CA_CERT_FILE)).expect("load_ca")
    }
}

fn bind(
    identity: &NodeIdentity,
    ca: rustls::pki_types::CertificateDer<'static>,
    revocations: Revocations,
) -> Endpoint {
    bind_with(identity, ca, revocations, TransportConfig::default())
}

fn bind_with(
    identity: &NodeIdentity,
    ca: rustls::pki_types::CertificateDer<'static>,
    revocations: Revocations,
    config: TransportConfig,
) -> Endpoint {
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    Endpoint::bind(addr, identity, ca, revocations, config).expect("bind")
}

/// Runs `connect` and the server's next `accept` together, each under the deadline.
async fn connect_pair(
    client: &Endpoint,
    server: &Endpoint,
    name: &str,
) -> (Result<Link, TransportError>, Result<Link, TransportError>) {
    let addr = server.local_addr().expect("local_addr");
    let (connected, accepted) = tokio::join!(
        tokio::time::timeout(DEADLINE, client.connect(addr, name)),
        tokio::time::timeout(DEADLINE, server.accept()),
    );
    let connected = connected.expect("connect did not finish before the deadline");
    let accepted = accepted
        .expect("accept did not yield before the deadline")
        .expect("server endpoint closed unexpectedly");
    (connected, accepted)
}

async fn recv(
    link_rx: &mut mizugiwa_sync::transport::FrameReceiver,
) -> Result<Option<Vec<u8>>, TransportError> {
    tokio::time::timeout(DEADLINE, link_rx.recv())
        .await
        .expect("recv did not finish before the deadline")
}

/// After a refused handshake nothing else must come out of the server: no link sneaks
/// through later. (A bounded wait for an event that must not happen.)
async fn assert_no_link(server: &Endpoint) {
    if let Ok(Some(Ok(link))) =
        tokio::time::timeout(Duration::from_millis(300), server.accept()).await
    {
        panic!("a link from {} got through", link.peer.name);
    }
}

// ---------------------------------------------------------------------------------------
// 1. Two nodes of one CA
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn two_nodes_exchange_frames_both_ways() {
    init_tracing();
    let dep = Deployment::new("test");
    let site = dep.node("site-a", Role::Site);
    let command = dep.node("command-1", Role::Command);
    let config = TransportConfig {
        max_frame_bytes: 64 * 1024,
        ..TransportConfig::default()
    };
    let server = bind_with(&site, dep.ca(), Revocations::new(), config.clone());
    let client = bind_with(&command, dep.ca(), Revocations::new(), config);

    let (connected, accepted) = connect_pair(&client, &server, "site-a").await;
    let mut c = connected.expect("client link");
    let mut s = accepted.expect("server link");

    // Each side sees the other's certified identity.
    assert_eq!(c.peer.name, "site-a");
    assert_eq!(c.peer.role, Role::Site);
    assert_eq!(c.peer.serial, site.serial);
    assert_eq!(s.peer.name, "command-1");
    assert_eq!(s.peer.role, Role::Command);
    assert_eq!(s.peer.serial, command.serial);
    assert_eq!(c.remote, server.local_addr().expect("addr"));

    c.tx.send(b"hello from command").await.expect("send");
    assert_eq!(
        recv(&mut s.rx).await.expect("recv").as_deref(),
        Some(&b"hello from command"[..])
    );
    s.tx.send(b"hello from site").await.expect("send");
    assert_eq!(
        recv(&mut c.rx).await.expect("recv").as_deref(),
        Some(&b"hello from site"[..])
    );

    // Empty frames and frames of exactly the bound are legal.
    c.tx.send(b"").await.expect("send empty");
    assert_eq!(
        recv(&mut s.rx).await.expect("recv").as_deref(),
        Some(&b""[..])
    );
    let biggest = vec![0xa5u8; 64 * 1024];
    s.tx.send(&biggest).await.expect("send max");
    assert_eq!(recv(&mut c.rx).await.expect("recv"), Some(biggest));

    // One byte over is refused locally, and the stream stays usable.
    let too_big = vec![0u8; 64 * 1024 + 1];
    assert!(matches!(
        c.tx.send(&too_big).await,
        Err(TransportError::FrameTooLarge { len, max }) if len == 64 * 1024 + 1 && max == 64 * 1024
    ));

    // Split halves work from separate tasks.
    let (c_handle, mut c_tx, mut c_rx) = c.split();
    let (_s_handle, mut s_tx, mut s_rx) = s.split();
    let echo = tokio::spawn(async move {
        while let Some(frame) = s_rx.recv().await.expect("server recv") {
            s_tx.send(&frame).await.expect("server echo");
        }
        s_tx.finish().expect("server finish");
    });
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(frame) = c_rx.recv().await.expect("client recv") {
            got.push(frame);
        }
        got
    });
    for i in 0u32..50 {
        c_tx.send(&i.to_be_bytes()).await.expect("client send");
    }
    c_tx.finish().expect("client finish");
    let got = tokio::time::timeout(DEADLINE, reader)
        .await
        .expect("reader deadline")
        .expect("reader task");
    let want: Vec<Vec<u8>> = (0u32..50).map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(got, want);
    tokio::time::timeout(DEADLINE, echo)
        .await
        .expect("echo deadline")
        .expect("echo task");
    c_handle.close(close_code::NORMAL, "done");

    // A closed endpoint yields no more links.
    server.close(close_code::SHUTDOWN, "test over");
    let after = tokio::time::timeout(DEADLINE, server.accept())
        .await
        .expect("accept after close did not finish before the deadline");
    assert!(after.is_none(), "accept after close: {after:?}");
}

#[test]
fn bind_outside_a_runtime_is_an_error() {
    let dep = Deployment::new("test");
    let site = dep.node("site-a", Role::Site);
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let result = Endpoint::bind(
        addr,
        &site,
        dep.ca(),
        Revocations::new(),
        TransportConfig::default(),
    );
    assert!(
        matches!(result, Err(TransportError::Config(_))),
        "{result:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Another CA
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn client_from_another_ca_is_refused() {
    init_tracing();
    let dep = Deployment::new("test");
    let rogue_dep = Deployment::new("rogue");
    let site = dep.node("site-a", Role::Site);
    // Same name and role as a real node, but signed by a different CA; it trusts the real
    // CA so that only the server's check is exercised.
    let rogue = rogue_dep.node("command-1", Role::Command);
    let server = bind(&site, dep.ca(), Revocations::new());
    let client = bind(&rogue, dep.ca(), Revocations::new());

    let (connected, accepted) = connect_pair(&client, &server, "site-a").await;
    assert!(
        matches!(
            accepted,
            Err(TransportError::UnknownCa {
                by: RefusedBy::Us,
                ..
            })
        ),
        "server side: {accepted:?}"
    );
    assert!(
        matches!(
            connected,
            Err(TransportError::UnknownCa {
                by: RefusedBy::Peer,
                ..
            })
        ),
        "client side: {connected:?}"
    );
    let message = connected.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("mizugiwa pki issue"), "{message}");
    assert_no_link(&server).await;
}

#[tokio::test]
async fn server_from_another_ca_is_refused() {
    init_tracing();
    let dep = Deployment::new("test");
    let rogue_dep = Deployment::new("rogue");
    let rogue_site = rogue_dep.node("site-a", Role::Site);
    let command = dep.node("command-1", Role::Command);
    let server = bind(&rogue_site, dep.ca(), Revocations::new());
    let client = bind(&command, dep.ca(), Revocations::new());

    let (connected, accepted) = connect_pair(&client, &server, "site-a").await;
    assert!(
        matches!(
            connected,
            Err(TransportError::UnknownCa {
                by: RefusedBy::Us,
                ..
            })
        ),
        "client side: {connected:?}"
    );
    assert!(
        matches!(
            accepted,
            Err(TransportError::UnknownCa {
                by: RefusedBy::Peer,
                ..
            })
        ),
        "server side: {accepted:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Wrong server name
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn server_with_unexpected_name_is_refused() {
    init_tracing();
    let dep = Deployment::new("test");
    let site_a = dep.node("site-a", Role::Site);
    let _site_b = dep.node("site-b", Role::Site);
    let command = dep.node("command-1", Role::Command);
    let server = bind(&site_a, dep.ca(), Revocations::new());
    let client = bind(&command, dep.ca(), Revocations::new());

    // The client expects site-b at site-a's address.
    let (connected, accepted) = connect_pair(&client, &server, "site-b").await;
    match &connected {
        Err(TransportError::HandshakeRefused {
            by: RefusedBy::Us,
            reason,
            ..
        }) => {
            assert!(reason.contains("not valid for name"), "{reason}")
        }
        other => panic!("client side: {other:?}"),
    }
    assert!(
        matches!(
            accepted,
            Err(TransportError::HandshakeRefused {
                by: RefusedBy::Peer,
                ..
            })
        ),
        "server side: {accepted:?}"
    );
    assert_no_link(&server).await;

    // A name that can never be a node is refused before any packet is sent.
    let addr = server.local_addr().expect("addr");
    let bad = client.connect(addr, "Site_A").await;
    assert!(
        matches!(
            bad,
            Err(TransportError::Pki(PkiError::InvalidNodeName { .. }))
        ),
        "{bad:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Revocation at run time
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn client_revoked_at_run_time_is_refused() {
    init_tracing();
    let dep = Deployment::new("test");
    let site = dep.node("site-a", Role::Site);
    let command = dep.node("command-1", Role::Command);
    let revocations = Revocations::new();
    let server = bind(&site, dep.ca(), revocations.clone());
    let client = bind(&command, dep.ca(), Revocations::new());

    // Accepted before any revocation.
    let (connected, accepted) = connect_pair(&client, &server, "site-a").await;
    connected.expect("connect before revocation");
    accepted.expect("accept before revocation");

    // By serial, written the way an operator might paste it (upper case, colons).
    let pasted: String = command
        .serial
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    revocations.revoke_serial(&pasted);
    let (connected, accepted) = connect_pair(&client, &server, "site-a").await;
    assert!(
        matches!(
            accepted,
            Err(TransportError::Revoked {
                by: RefusedBy::Us,
                ..
            })
        ),
        "server side (serial): {accepted:?}"
    );
    assert!(
        matches!(
            connected,
            Err(TransportError::Revoked {
                by: RefusedBy::Peer,
                ..
            })
        ),
        "client side (serial): {connected:?}"
    );

    // Lifting the revocation (a new replicated list) lets it back in.
    revocations.replace_all(Vec::<String>::new(), Vec::<String>::new());
    let (connected, accepted) = connect_pair(&client, &server, "site-a").await;
    connected.expect("connect after lifting");
    accepted.expect("accept after lifting");

    // By node name.
    revocations.replace_all(Vec::<String>::new(), ["command-1"]);
    let (connected, accepted) = connect_pair(&client, &server, "site-a").await;
    assert!(
        matches!(
            accepted,
            Err(TransportError::Revoked {
                by: RefusedBy::Us,
                ..
            })
        ),
        "server side (node): {accepted:?}"
    );
    assert!(
        matches!(
            connected,
            Err(TransportError::Revoked {
                by: RefusedBy::Peer,
                ..
            })
        ),
        "client side (node): {connected:?}"
    );
    assert_no_link(&server).await;
}

#[tokio::test]
async fn revoked_server_is_refused_by_client() {
    init_tracing();
    let dep = Deployment::new("test");
    let site = dep.node("site-a", Role::Site);
    let command = dep.node("command-1", Role::Command);
    let client_revocations = Revocations::new();
    let server = bind(&site, dep.ca(), Revocations::new());
    let client = bind(&command, dep.ca(), client_revocations.clone());

    // A first connection succeeds (and would leave a resumable session behind if
    // resumption were enabled).
    let (connected, accepted) = connect_pair(&client, &server, "site-a").await;
    connected.expect("connect before revocation");
    accepted.expect("accept before revocation");

    client_revocations.revoke_node("site-a");
    let (connected, accepted) = connect_pair(&client, &server, "site-a").await;
    assert!(
        matches!(
            connected,
            Err(TransportError::Revoked {
                by: RefusedBy::Us,
                ..
            })
        ),
        "client side: {connected:?}"
    );
    assert!(
        matches!(
            accepted,
            Err(TransportError::Revoked {
                by: RefusedBy::Peer,
                ..
            })
        ),
        "server side: {accepted:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 5. Frame bounds
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_and_truncated_frames_are_errors() {
    init_tracing();
    let dep = Deployment::new("test");
    let site = dep.node("site-a", Role::Site);
    let command = dep.node("command-1", Role::Command);
    let config = TransportConfig {
        max_frame_bytes: 1024 * 1024,
        ..TransportConfig::default()
    };
    let server = bind_with(&site, dep.ca(), Revocations::new(), config.clone());
    let client = bind_with(&command, dep.ca(), Revocations::new(), config);

    // A raw sender announces a 4 GiB frame.
    let (connected, accepted) = connect_pair(&client, &server, "site-a").await;
    let c = connected.expect("client link");
    let mut s = accepted.expect("server link");
    let c_handle = c.handle();
    let mut raw = c.tx.into_inner();
    raw.write_all(&u32::MAX.to_be_bytes())
        .await
        .expect("raw write");
    let before = HUGE_ALLOCATIONS.load(Ordering::SeqCst);
    let result = recv(&mut s.rx).await;
    assert!(
        matches!(result, Err(TransportError::FrameTooLarge { len, max })
            if len == u32::MAX as usize && max == 1024 * 1024),
        "{result:?}"
    );
    assert_eq!(
        HUGE_ALLOCATIONS.load(Ordering::SeqCst),
        before,
        "the receiver allocated the announced frame"
    );
    // The receiver is unusable now; the caller closes with the agreed code.
    assert!(recv(&mut s.rx).await.is_err());
    s.close(close_code::FRAME_TOO_LARGE, "frame too large");
    let closed = tokio::time::timeout(DEADLINE, c_handle.closed())
        .await
        .expect("close deadline");
    match &closed {
        TransportError::PeerClosed { code, .. } => {
            assert_eq!(*code, u64::from(close_code::FRAME_TOO_LARGE));
            assert!(closed.to_string().contains("code 2"), "{closed}");
            assert!(!closed.is_orderly_close());
        }
        other => panic!("unexpected close: {other:?}"),
    }

    // A frame body cut short by the end of the stream.
    let (connected, accepted) = connect_pair(&client, &server, "site-a").await;
    let c = connected.expect("client link");
    let mut s = accepted.expect("server link");
    let mut raw = c.tx.into_inner();
    raw.write_all(&100u32.to_be_bytes())
        .await
        .expect("raw write");
    raw.write_all(&[7u8; 10]).await.expect("raw write");
    raw.finish().expect("finish");
    let result = recv(&mut s.rx).await;
    assert!(
        matches!(
            result,
            Err(TransportError::Truncated {
                expected: 100,
                got: 10,
                ..
            })
        ),
        "{result:?}"
    );

    // A length prefix cut short.
    let (connected, accepted) = connect_pair(&client, &server, "site-a").await;
    let c = connected.expect("client link");
    let mut s = accepted.expect("server link");
    let mut raw = c.tx.into_inner();
    raw.write_all(&[0u8, 0]).await.expect("raw write");
    raw.finish().expect("finish");
    let result = recv(&mut s.rx).await;
    assert!(
        matches!(
            result,
            Err(TransportError::Truncated {
                expected: 4,
                got: 2,
                ..
            })
        ),
        "{result:?}"
    );

    // A clean finish between frames is the end of the session, not an error.
    let (connected, accepted) = connect_pair(&client, &server, "site-a").await;
    let mut c = connected.expect("client link");
    let mut s = accepted.expect("server link");
    c.tx.send(b"last").await.expect("send");
    c.tx.finish().expect("finish");
    assert_eq!(
        recv(&mut s.rx).await.expect("recv").as_deref(),
        Some(&b"last"[..])
    );
    assert_eq!(recv(&mut s.rx).await.expect("recv"), None);
    assert_eq!(recv(&mut s.rx).await.expect("recv again"), None);
}

// ---------------------------------------------------------------------------------------
// 6. PKI
// ---------------------------------------------------------------------------------------

#[test]
fn node_names_are_validated() {
    for good in ["site-1", "a", "gate-07", "command", "x1", &"a".repeat(63)] {
        assert!(validate_node_name(good).is_ok(), "{good} should be valid");
    }
    for bad in [
        "",
        "-site",
        "site-",
        "Site",
        "site_1",
        "site.1",
        "sité",
        "1234",
        "0x1f",
        &"a".repeat(64),
    ] {
        assert!(
            matches!(
                validate_node_name(bad),
                Err(PkiError::InvalidNodeName { .. })
            ),
            "{bad:?} should be invalid"
        );
    }

    let dep = Deployment::new("test");
    let err = issue(&dep.ca_dir, &dep.nodes_dir, "Bad-Name", Role::Site);
    assert!(
        matches!(err, Err(PkiError::InvalidNodeName { .. })),
        "{err:?}"
    );
    assert!(!dep.nodes_dir.join("Bad-Name.crt").exists());
}

#[test]
fn ca_is_never_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = init_ca(dir.path(), "north").expect("first init");
    let before = std::fs::read(&first.cert).expect("read ca");
    let again = init_ca(dir.path(), "north");
    assert!(matches!(again, Err(PkiError::CaExists { .. })), "{again:?}");
    assert!(again
        .err()
        .map(|e| e.to_string().contains("refusing to overwrite"))
        .unwrap_or(false));
    assert_eq!(std::fs::read(&first.cert).expect("read ca"), before);

    // Even a lone key blocks a new CA.
    let dir2 = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir2.path().join(pki::CA_KEY_FILE), b"x").expect("write");
    assert!(matches!(
        init_ca(dir2.path(), "north"),
        Err(PkiError::CaExists { .. })
    ));

    assert!(matches!(
        init_ca(&dir.path().join("other"), ""),
        Err(PkiError::InvalidDeployment { .. })
    ));
}

#[test]
fn issued_certificate_parses_back() {
    let dep = Deployment::new("north");
    let issued = issue(&dep.ca_dir, &dep.nodes_dir, "gate-7", Role::Gate).expect("issue");
    assert_eq!(issued.cert, dep.nodes_dir.join("gate-7.crt"));
    assert_eq!(issued.key, dep.nodes_dir.join("gate-7.key"));
    assert!(issued.ca.exists(), "ca.crt copied next to the node files");
    assert_eq!(issued.serial.len(), 32);
    assert!(issued
        .serial
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));

    let identity = NodeIdentity::load(&issued.cert, &issued.key).expect("load");
    assert_eq!(identity.name, "gate-7");
    assert_eq!(identity.role, Role::Gate);
    assert_eq!(identity.serial, issued.serial);
    assert_eq!(identity.chain().len(), 2, "leaf then CA");
    assert_eq!(identity.chain()[1], dep.ca());

    let peer = peer_from_cert(&identity.chain()[0]).expect("peer_from_cert");
    assert_eq!(peer, identity.peer_identity());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in [&issued.key, &dep.ca_dir.join(pki::CA_KEY_FILE)] {
            let mode = std::fs::metadata(key).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
    }

    // Two issues, two different serials; the same node is not silently re-keyed.
    let other = issue(&dep.ca_dir, &dep.nodes_dir, "gate-8", Role::Gate).expect("issue");
    assert_ne!(other.serial, issued.serial);
    assert!(matches!(
        issue(&dep.ca_dir, &dep.nodes_dir, "gate-7", Role::Gate),
        Err(PkiError::AlreadyExists { .. })
    ));

    // A node directory belonging to another CA is not mixed up.
    let foreign = Deployment::new("south");
    assert!(matches!(
        issue(&foreign.ca_dir, &dep.nodes_dir, "site-9", Role::Site),
        Err(PkiError::ForeignCa { .. })
    ));
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let dep = Deployment::new("test");
    let a = issue(&dep.ca_dir, &dep.nodes_dir, "site-a", Role::Site).expect("issue");
    let b = issue(&dep.ca_dir, &dep.nodes_dir, "site-b", Role::Site).expect("issue");

    // A key from another issue.
    assert!(matches!(
        NodeIdentity::load(&a.cert, &b.key),
        Err(PkiError::KeyMismatch { .. })
    ));
    // A leaf is not a CA.
    assert!(matches!(load_ca(&a.cert), Err(PkiError::NotCa { .. })));
    // Missing, empty and garbage files.
    let junk = dep.nodes_dir.join("junk.pem");
    assert!(matches!(load_ca(&junk), Err(PkiError::Io { .. })));
    std::fs::write(&junk, b"").expect("write");
    assert!(matches!(load_ca(&junk), Err(PkiError::NoPem { .. })));
    std::fs::write(
        &junk,
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    assert!(load_ca(&junk).is_err());
    std::fs::write(
        &junk,
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    assert!(matches!(load_ca(&junk), Err(PkiError::BadCertificate(_))));
    assert!(
        peer_from_cert(&rustls::pki_types::CertificateDer::from(vec![
            0x30, 0x03, 1, 2
        ]))
        .is_err()
    );
    // The CA certificate names no node.
    assert!(matches!(
        peer_from_cert(&dep.ca()),
        Err(PkiError::BadCertificate(_))
    ));
    assert!(matches!(
        NodeIdentity::load_dir(&dep.nodes_dir, "../etc"),
        Err(PkiError::InvalidNodeName { .. })
    ));
}

#[test]
fn roles_and_revocations() {
    assert_eq!("gate".parse::<Role>().ok(), Some(Role::Gate));
    assert_eq!(Role::Command.as_str(), "command");
    assert!(matches!(
        "root".parse::<Role>(),
        Err(PkiError::UnknownRole(_))
    ));

    let peer = pki::PeerIdentity {
        name: "site-a".into(),
        role: Role::Site,
        serial: "1a2b3c".into(),
    };
    let revocations = Revocations::new();
    let view = revocations.clone();
    assert!(!view.is_revoked(&peer));
    revocations.revoke_serial("00:1A:2B:3C");
    assert!(
        view.is_revoked(&peer),
        "clones share the list; serials are normalised"
    );
    revocations.replace_all(["ffff"], Vec::<&str>::new());
    assert!(!view.is_revoked(&peer));
    revocations.revoke_node("site-a");
    assert!(view.is_revoked(&peer));
    // A node name that looks like a serial is not confused with one.
    revocations.replace_all(Vec::<&str>::new(), ["1a2b3c"]);
    assert!(!view.is_revoked(&peer));
    assert_eq!(view.nodes(), vec!["1a2b3c".to_string()]);
    assert!(view.serials().is_empty());
}

/// The driver shares one endpoint between tasks and spawns sessions on split halves, so
/// the types and futures must be `Send` (checked at compile time; never called).
#[allow(dead_code)]
fn endpoint_and_futures_are_send(endpoint: &Endpoint, addr: SocketAddr, link: Link) {
    fn is_send<T: Send>(_: &T) {}
    fn is_sync<T: Sync>(_: &T) {}
    is_sync(endpoint);
    is_send(&endpoint.connect(addr, "site-a"));
    is_send(&endpoint.accept());
    let (handle, mut tx, mut rx) = link.split();
    is_send(&handle.closed());
    is_send(&tx.send(b""));
    is_send(&rx.recv());
}
