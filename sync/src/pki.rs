//! The deployment's own certificate authority.
//!
//! Every Mizugiwa deployment runs its own small CA: one self-signed root (`ca.crt`/`ca.key`)
//! signs one leaf certificate per node. A leaf names its node twice — subject CN and a DNS
//! SAN (the DNS SAN is what TLS checks) — and carries its role as a URI SAN
//! `urn:mizugiwa:role:<role>`. Leaves are valid for both TLS server and client
//! authentication because every node both accepts and opens sync connections.
//!
//! Keys are ECDSA P-256 rather than Ed25519: rustls/ring and webpki support P-256 for both
//! signing and verification on every TLS 1.3 path, it is the one signature scheme TLS 1.3
//! makes mandatory to implement, and the hardware key stores and inspection tools field
//! sites are likely to meet (TPMs, smart cards, older OpenSSL builds) handle it too, which
//! is not true of Ed25519.
//!
//! Revocation is by certificate serial or by node name ([`Revocations`]); the list is
//! distributed through the replicated store and consulted on every TLS handshake.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

/// File name of the CA certificate inside a CA or node directory.
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the CA private key inside the CA directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// Prefix of the URI SAN that carries a node's role.
pub const ROLE_URI_PREFIX: &str = "urn:mizugiwa:role:";

/// Lifetime of the CA certificate (10 years).
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of a node certificate (2 years).
const LEAF_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);
/// Certificates start being valid this long before they are made: field machines run
/// offline for weeks and their clocks drift, and a node whose clock is a few hours behind
/// the CA's must still accept a freshly issued certificate.
const BACKDATE: Duration = Duration::from_secs(24 * 3600);
/// Upper bound for the deployment name, so that "Mizugiwa <deployment> CA" stays within
/// the 64-character X.509 limit for a common name.
const MAX_DEPLOYMENT_LEN: usize = 48;

/// Errors of the PKI functions. Messages say what went wrong and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file or directory could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("read", "create", ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `init_ca` found an existing CA.
    #[error(
        "a CA already exists at {path}; refusing to overwrite it (a new CA would invalidate \
         every node certificate of the deployment; move the old one away first if that is \
         really intended)"
    )]
    CaExists {
        /// The existing CA file.
        path: PathBuf,
    },
    /// `issue` would overwrite an existing node certificate or key.
    #[error(
        "{path} already exists; refusing to overwrite it (to re-issue a node, revoke the old \
         certificate's serial and move its files away first)"
    )]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A node name does not follow the naming rules.
    #[error(
        "invalid node name {name:?}: {reason} (use 1-63 characters of a-z, 0-9 and '-', \
         not starting or ending with '-')"
    )]
    InvalidNodeName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A deployment name cannot be used in the CA's common name.
    #[error(
        "invalid deployment name {name:?}: {reason} (use 1-{MAX_DEPLOYMENT_LEN} printable characters)"
    )]
    InvalidDeployment {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A role string is not one of the known roles.
    #[error("unknown role {0:?}: expected one of \"site\", \"command\", \"gate\"")]
    UnknownRole(String),
    /// A PEM file holds nothing usable.
    #[error("{path} holds no {what} in PEM format")]
    NoPem {
        /// The file.
        path: PathBuf,
        /// What was expected in it.
        what: &'static str,
    },
    /// A PEM file could not be decoded.
    #[error("{path} is not valid PEM ({what}): {reason}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What was expected in it.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// A certificate could not be parsed or lacks what Mizugiwa needs.
    #[error("bad certificate: {0}")]
    BadCertificate(String),
    /// The file given as CA certificate is not a CA certificate.
    #[error("{path} is not a CA certificate (it lacks the CA basic constraint)")]
    NotCa {
        /// The file.
        path: PathBuf,
    },
    /// A private key does not belong to the certificate it is paired with.
    #[error("the key in {key} does not belong to the certificate in {cert}; keep the files of one issue together")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// `issue` found a `ca.crt` in the output directory from another CA.
    #[error(
        "{path} belongs to a different CA than the one issuing; use a separate output directory"
    )]
    ForeignCa {
        /// The conflicting file.
        path: PathBuf,
    },
    /// Key generation or certificate signing failed.
    #[error("cannot {action}: {source}")]
    Generate {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },
    /// The system clock is before 1970, so no validity period can be computed.
    #[error("the system clock is set before 1970; fix the clock before issuing certificates")]
    Clock,
}

/// The role a node plays in the deployment; carried in its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A field site (checkpoint, port, border crossing).
    Site,
    /// A command post.
    Command,
    /// A gate edge device.
    Gate,
}

impl Role {
    /// The role's name as used in certificates and on the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Site => "site",
            Role::Command => "command",
            Role::Gate => "gate",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "site" => Ok(Role::Site),
            "command" => Ok(Role::Command),
            "gate" => Ok(Role::Gate),
            other => Err(PkiError::UnknownRole(other.to_string())),
        }
    }
}

/// Where [`init_ca`] put the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPaths {
    /// The CA certificate (PEM).
    pub cert: PathBuf,
    /// The CA private key (PEM, mode 0600 on unix).
    pub key: PathBuf,
}

/// What [`issue`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedPaths {
    /// The node's certificate chain: leaf then CA (PEM).
    pub cert: PathBuf,
    /// The node's private key (PEM, mode 0600 on unix).
    pub key: PathBuf,
    /// The CA certificate copied next to them.
    pub ca: PathBuf,
    /// The leaf's serial number, lowercase hex without separators.
    pub serial: String,
}

/// Who a peer is, as stated by its (verified) certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerIdentity {
    /// Node name (from the DNS SAN).
    pub name: String,
    /// Role (from the `urn:mizugiwa:role:` URI SAN).
    pub role: Role,
    /// Certificate serial, lowercase hex without separators.
    pub serial: String,
}

/// This node's own certificate chain and private key, ready for TLS.
pub struct NodeIdentity {
    /// Node name (from the leaf's DNS SAN).
    pub name: String,
    /// Role (from the leaf's URI SAN).
    pub role: Role,
    /// Leaf serial, lowercase hex without separators.
    pub serial: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

// Written by hand so that the private key never ends up in a log line.
impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("serial", &self.serial)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

// `PrivateKeyDer` is deliberately not `Clone`; cloning an identity is still legitimate
// (one endpoint per socket), so it is done explicitly here.
impl Clone for NodeIdentity {
    fn clone(&self) -> Self {
        NodeIdentity {
            name: self.name.clone(),
            role: self.role,
            serial: self.serial.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl NodeIdentity {
    /// Loads a node's certificate chain (leaf first) and private key from PEM files, and
    /// checks that they belong together.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, PkiError> {
        let cert_pem = read_file(cert_path)?;
        let chain = certs_from_pem(cert_path, &cert_pem)?;
        let leaf = chain.first().ok_or_else(|| PkiError::NoPem {
            path: cert_path.to_path_buf(),
            what: "certificate",
        })?;
        let peer = peer_from_cert(leaf)?;

        let key_pem = read_file(key_path)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| pem_error(key_path, "private key", e))?;
        // A mismatched pair would only show up as an obscure handshake failure later.
        let key_pair = KeyPair::try_from(&key).map_err(|source| PkiError::Generate {
            action: "use the private key",
            source,
        })?;
        let (_, parsed) = parse_cert(leaf)?;
        if parsed.public_key().subject_public_key.data.as_ref() != key_pair.public_key_raw() {
            return Err(PkiError::KeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            });
        }

        Ok(NodeIdentity {
            name: peer.name,
            role: peer.role,
            serial: peer.serial,
            chain,
            key,
        })
    }

    /// Loads `<dir>/<node>.crt` and `<dir>/<node>.key`, the layout [`issue`] writes.
    pub fn load_dir(dir: &Path, node: &str) -> Result<Self, PkiError> {
        validate_node_name(node)?;
        Self::load(
            &dir.join(format!("{node}.crt")),
            &dir.join(format!("{node}.key")),
        )
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// A copy of the private key, for building TLS configurations inside this crate.
    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// This node's identity as its peers see it.
    pub fn peer_identity(&self) -> PeerIdentity {
        PeerIdentity {
            name: self.name.clone(),
            role: self.role,
            serial: self.serial.clone(),
        }
    }
}

/// Checks a node name: 1-63 characters of `[a-z0-9-]`, not starting or ending with `-`,
/// and not a number (TLS server names cannot look like IPv4 addresses, so names such as
/// `1234` or `0x1f` could never be connected to).
pub fn validate_node_name(name: &str) -> Result<(), PkiError> {
    let bad = |reason| {
        Err(PkiError::InvalidNodeName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 63 {
        return bad("it is longer than 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("it contains a character other than a-z, 0-9 and '-'");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return bad("it starts or ends with '-'");
    }
    let all_digits = name.bytes().all(|b| b.is_ascii_digit());
    let hex_number = name
        .strip_prefix("0x")
        .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_hexdigit()));
    if all_digits || hex_number {
        return bad("it looks like a number, which TLS does not accept as a server name");
    }
    // Stay in lockstep with what rustls will accept as a server name at connect time.
    if DnsName::try_from(name).is_err() {
        return bad("it is not a valid DNS name");
    }
    Ok(())
}

fn validate_deployment(deployment: &str) -> Result<(), PkiError> {
    let bad = |reason| {
        Err(PkiError::InvalidDeployment {
            name: deployment.to_string(),
            reason,
        })
    };
    if deployment.trim().is_empty() {
        return bad("it is empty");
    }
    if deployment.chars().count() > MAX_DEPLOYMENT_LEN {
        return bad("it is too long");
    }
    if deployment.chars().any(char::is_control) {
        return bad("it contains control characters");
    }
    Ok(())
}

/// Creates the deployment's CA in `dir`: `ca.crt` and `ca.key` (PEM; the key with mode
/// 0600 on unix). Refuses to overwrite an existing CA.
pub fn init_ca(dir: &Path, deployment: &str) -> Result<CaPaths, PkiError> {
    validate_deployment(deployment)?;
    let paths = CaPaths {
        cert: dir.join(CA_CERT_FILE),
        key: dir.join(CA_KEY_FILE),
    };
    for path in [&paths.cert, &paths.key] {
        if path.exists() {
            return Err(PkiError::CaExists { path: path.clone() });
        }
    }
    fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        action: "create directory",
        path: dir.to_path_buf(),
        source,
    })?;

    let key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| PkiError::Generate {
            action: "generate the CA key",
            source,
        })?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("Mizugiwa {deployment} CA"));
    dn.push(DnType::OrganizationName, "Mizugiwa");
    params.distinguished_name = dn;
    // Path length 0: this CA signs node certificates directly, never sub-CAs.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    set_validity(&mut params, CA_VALIDITY)?;
    let cert = params
        .self_signed(&key)
        .map_err(|source| PkiError::Generate {
            action: "sign the CA certificate",
            source,
        })?;

    // Key first: if writing it fails no half-made CA certificate is left behind.
    write_new(&paths.key, key.serialize_pem().as_bytes(), true, |path| {
        PkiError::CaExists { path }
    })?;
    write_new(&paths.cert, cert.pem().as_bytes(), false, |path| {
        PkiError::CaExists { path }
    })?;
    tracing::info!(cert = %paths.cert.display(), deployment, "created deployment CA");
    Ok(paths)
}

/// Issues a certificate for `node` with `role`, signed by the CA in `ca_dir`, and writes
/// `<out_dir>/<node>.crt` (leaf then CA), `<out_dir>/<node>.key` and `<out_dir>/ca.crt`.
/// Refuses to overwrite an existing certificate or key of that node.
pub fn issue(
    ca_dir: &Path,
    out_dir: &Path,
    node: &str,
    role: Role,
) -> Result<IssuedPaths, PkiError> {
    validate_node_name(node)?;
    let ca_cert_path = ca_dir.join(CA_CERT_FILE);
    let ca_key_path = ca_dir.join(CA_KEY_FILE);
    let ca_cert_pem = read_file(&ca_cert_path)?;
    let ca_der = load_ca(&ca_cert_path)?;
    let ca_key_pem = String::from_utf8(read_file(&ca_key_path)?).map_err(|_| PkiError::BadPem {
        path: ca_key_path.clone(),
        what: "CA private key",
        reason: "not UTF-8 text".into(),
    })?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|source| PkiError::Generate {
        action: "load the CA key",
        source,
    })?;
    let (_, ca_parsed) = parse_cert(&ca_der)?;
    if ca_parsed.public_key().subject_public_key.data.as_ref() != ca_key.public_key_raw() {
        return Err(PkiError::KeyMismatch {
            cert: ca_cert_path,
            key: ca_key_path,
        });
    }
    let issuer =
        Issuer::from_ca_cert_der(&ca_der, ca_key).map_err(|source| PkiError::Generate {
            action: "use the CA certificate as issuer",
            source,
        })?;

    let paths = IssuedPaths {
        cert: out_dir.join(format!("{node}.crt")),
        key: out_dir.join(format!("{node}.key")),
        ca: out_dir.join(CA_CERT_FILE),
        serial: String::new(),
    };
    for path in [&paths.cert, &paths.key] {
        if path.exists() {
            return Err(PkiError::AlreadyExists { path: path.clone() });
        }
    }
    // Checked before anything is written, so a conflict leaves out_dir untouched.
    let copy_ca = match fs::read(&paths.ca) {
        Ok(existing) => {
            let existing = certs_from_pem(&paths.ca, &existing)?;
            if existing.first() != Some(&ca_der) {
                return Err(PkiError::ForeignCa { path: paths.ca });
            }
            false
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(source) => {
            return Err(PkiError::Io {
                action: "read",
                path: paths.ca,
                source,
            })
        }
    };

    let key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| PkiError::Generate {
            action: "generate the node key",
            source,
        })?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node);
    params.distinguished_name = dn;
    let dns = node.try_into().map_err(|source| PkiError::Generate {
        action: "encode the node name",
        source,
    })?;
    let role_uri = format!("{ROLE_URI_PREFIX}{}", role.as_str());
    let uri = role_uri
        .as_str()
        .try_into()
        .map_err(|source| PkiError::Generate {
            action: "encode the role URI",
            source,
        })?;
    params.subject_alt_names = vec![SanType::DnsName(dns), SanType::URI(uri)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Every node is both a TLS server (accepting sync) and a TLS client (opening sync).
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let serial = random_serial();
    let serial_hex = serial_to_hex(serial.as_ref());
    params.serial_number = Some(serial);
    set_validity(&mut params, LEAF_VALIDITY)?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|source| PkiError::Generate {
            action: "sign the node certificate",
            source,
        })?;

    fs::create_dir_all(out_dir).map_err(|source| PkiError::Io {
        action: "create directory",
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut chain_pem = cert.pem();
    chain_pem.push_str(&String::from_utf8_lossy(&ca_cert_pem));
    write_new(&paths.key, key.serialize_pem().as_bytes(), true, |path| {
        PkiError::AlreadyExists { path }
    })?;
    write_new(&paths.cert, chain_pem.as_bytes(), false, |path| {
        PkiError::AlreadyExists { path }
    })?;
    if copy_ca {
        write_new(&paths.ca, &ca_cert_pem, false, |path| {
            PkiError::AlreadyExists { path }
        })?;
    }
    tracing::info!(node, role = role.as_str(), serial = %serial_hex, "issued node certificate");
    Ok(IssuedPaths {
        serial: serial_hex,
        ..paths
    })
}

/// Loads the deployment's CA certificate (the first certificate in a PEM file) and checks
/// that it is a CA.
pub fn load_ca(path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    let pem = read_file(path)?;
    let cert = certs_from_pem(path, &pem)?
        .into_iter()
        .next()
        .ok_or_else(|| PkiError::NoPem {
            path: path.to_path_buf(),
            what: "certificate",
        })?;
    let (_, parsed) = parse_cert(&cert)?;
    if !parsed.is_ca() {
        return Err(PkiError::NotCa {
            path: path.to_path_buf(),
        });
    }
    Ok(cert)
}

/// Reads a peer's identity from its leaf certificate: the name from the DNS SAN, the role
/// from the `urn:mizugiwa:role:` URI SAN, the serial as lowercase hex. Does not verify the
/// certificate; the TLS layer has done that before this is called.
pub fn peer_from_cert(cert: &CertificateDer<'_>) -> Result<PeerIdentity, PkiError> {
    let (serial, parsed) = parse_cert(cert)?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| PkiError::BadCertificate(format!("unreadable subjectAltName: {e}")))?
        .ok_or_else(|| PkiError::BadCertificate("it has no subjectAltName extension".into()))?;
    let mut name = None;
    let mut role = None;
    for general_name in &san.value.general_names {
        match general_name {
            GeneralName::DNSName(dns) if name.is_none() => name = Some(*dns),
            GeneralName::URI(uri) => {
                if let Some(r) = uri.strip_prefix(ROLE_URI_PREFIX) {
                    if role.is_some() {
                        return Err(PkiError::BadCertificate(
                            "it carries more than one Mizugiwa role".into(),
                        ));
                    }
                    role = Some(r.parse::<Role>()?);
                }
            }
            _ => {}
        }
    }
    let name =
        name.ok_or_else(|| PkiError::BadCertificate("it names no node (no DNS SAN)".into()))?;
    validate_node_name(name)?;
    let role = role.ok_or_else(|| {
        PkiError::BadCertificate(format!(
            "it carries no Mizugiwa role ({ROLE_URI_PREFIX}<role> URI SAN); issue it with `mizugiwa pki issue`"
        ))
    })?;
    Ok(PeerIdentity {
        name: name.to_string(),
        role,
        serial,
    })
}

/// Checks, outside any TLS handshake, that `cert` (PEM) was issued by the deployment's `ca`
/// and is valid at `now_unix`; returns the node it names and its SubjectPublicKeyInfo (DER).
/// For checking what a node signed with its identity key, e.g. a site's decision journal.
pub fn verify_issued(
    cert_pem: &str,
    ca: &CertificateDer<'_>,
    now_unix: i64,
) -> Result<(PeerIdentity, Vec<u8>), PkiError> {
    let cert = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .next()
        .ok_or_else(|| PkiError::BadCertificate("no PEM certificate in the text".into()))?
        .map_err(|e| PkiError::BadCertificate(format!("unreadable PEM: {e}")))?;
    let (_, ca_parsed) = parse_cert(ca)?;
    let (_, parsed) = parse_cert(&cert)?;
    parsed
        .verify_signature(Some(ca_parsed.public_key()))
        .map_err(|e| {
            PkiError::BadCertificate(format!("not issued by this deployment's CA: {e}"))
        })?;
    let now = x509_parser::time::ASN1Time::from_timestamp(now_unix)
        .map_err(|e| PkiError::BadCertificate(format!("time {now_unix}: {e}")))?;
    if !parsed.validity().is_valid_at(now) {
        return Err(PkiError::BadCertificate(format!(
            "outside its validity ({} to {})",
            parsed.validity().not_before,
            parsed.validity().not_after
        )));
    }
    let spki = parsed.public_key().raw.to_vec();
    Ok((peer_from_cert(&cert)?, spki))
}

/// Revoked certificate serials and node names, shared between the TLS verifiers and the
/// code that follows the replicated revocation list. Cloning is cheap (one `Arc`); every
/// clone sees every update, and verifiers consult it on every handshake.
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    inner: Arc<RwLock<RevokedSets>>,
}

// Serials and names are kept apart so that a node name that happens to be valid hex can
// never collide with a serial.
#[derive(Debug, Default)]
struct RevokedSets {
    serials: HashSet<String>,
    nodes: HashSet<String>,
}

impl Revocations {
    /// An empty revocation list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Revokes one certificate by serial (hex; `:` separators, upper case and leading
    /// zero bytes are accepted and normalised).
    pub fn revoke_serial(&self, serial: &str) {
        let serial = normalize_serial(serial);
        self.write().serials.insert(serial);
    }

    /// Revokes every certificate of a node, whatever its serial.
    pub fn revoke_node(&self, node: &str) {
        self.write().nodes.insert(node.to_string());
    }

    /// Whether a peer's certificate serial or its node name is revoked.
    pub fn is_revoked(&self, peer: &PeerIdentity) -> bool {
        let sets = self.read();
        sets.nodes.contains(&peer.name) || sets.serials.contains(&normalize_serial(&peer.serial))
    }

    /// Replaces the whole list at once (as when a new replicated list arrives), so no
    /// handshake ever sees a half-applied update.
    pub fn replace_all<S, N>(&self, serials: S, nodes: N)
    where
        S: IntoIterator,
        S::Item: AsRef<str>,
        N: IntoIterator,
        N::Item: AsRef<str>,
    {
        let sets = RevokedSets {
            serials: serials
                .into_iter()
                .map(|s| normalize_serial(s.as_ref()))
                .collect(),
            nodes: nodes.into_iter().map(|n| n.as_ref().to_string()).collect(),
        };
        *self.write() = sets;
    }

    /// The revoked serials, sorted (normalised lowercase hex).
    pub fn serials(&self) -> Vec<String> {
        let mut v: Vec<String> = self.read().serials.iter().cloned().collect();
        v.sort();
        v
    }

    /// The revoked node names, sorted.
    pub fn nodes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.read().nodes.iter().cloned().collect();
        v.sort();
        v
    }

    // A panic while holding the lock cannot leave the sets half-updated (every update is
    // a single insert or a whole replacement), so a poisoned lock is still safe to use.
    fn read(&self) -> RwLockReadGuard<'_, RevokedSets> {
        self.inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, RevokedSets> {
        self.inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Lowercase hex, no separators, no leading zero bytes: the one spelling used for serials
/// everywhere (certificates, revocation lists, logs).
fn normalize_serial(serial: &str) -> String {
    let hex: String = serial
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '\t' | '\n' | '\r'))
        .flat_map(char::to_lowercase)
        .collect();
    let mut s = hex.as_str();
    while s.len() > 2 && s.starts_with("00") {
        s = &s[2..];
    }
    s.to_string()
}

fn serial_to_hex(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    normalize_serial(&hex)
}

/// 16 random bytes (RFC 5280 allows up to 20). The first byte is kept in 0x01..=0x7f so the
/// DER integer is positive and needs neither padding nor trimming: the bytes written are
/// exactly the bytes read back, and so is the hex.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f).max(1);
    SerialNumber::from_slice(&bytes)
}

fn set_validity(params: &mut CertificateParams, lifetime: Duration) -> Result<(), PkiError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| PkiError::Clock)?;
    // rcgen takes `time::OffsetDateTime`; building it from the epoch keeps the `time`
    // crate out of this crate's direct dependencies.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let start = now.saturating_sub(BACKDATE);
    params.not_before = epoch + Duration::from_secs(start.as_secs());
    params.not_after = epoch + Duration::from_secs((now + lifetime).as_secs());
    Ok(())
}

fn parse_cert<'a>(cert: &'a CertificateDer<'_>) -> Result<(String, X509Certificate<'a>), PkiError> {
    let (rest, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| PkiError::BadCertificate(format!("cannot parse X.509: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::BadCertificate(
            "trailing bytes after the certificate".into(),
        ));
    }
    Ok((serial_to_hex(parsed.raw_serial()), parsed))
}

fn certs_from_pem(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, "certificate", e))?;
    if certs.is_empty() {
        return Err(PkiError::NoPem {
            path: path.to_path_buf(),
            what: "certificate",
        });
    }
    Ok(certs)
}

fn pem_error(path: &Path, what: &'static str, e: rustls::pki_types::pem::Error) -> PkiError {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => PkiError::NoPem {
            path: path.to_path_buf(),
            what,
        },
        other => PkiError::BadPem {
            path: path.to_path_buf(),
            what,
            reason: other.to_string(),
        },
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, PkiError> {
    fs::read(path).map_err(|source| PkiError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// Creates `path` (never overwriting: `create_new` also closes the race between the
/// existence check and the write) and writes `data`; private files get mode 0600 from
/// the start so the key is never readable by others, not even briefly.
fn write_new(
    path: &Path,
    data: &[u8],
    private: bool,
    exists: impl FnOnce(PathBuf) -> PkiError,
) -> Result<(), PkiError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            exists(path.to_path_buf())
        } else {
            PkiError::Io {
                action: "create",
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|source| PkiError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_normalisation() {
        assert_eq!(normalize_serial("00:1A:bc"), "1abc");
        assert_eq!(normalize_serial("7f00"), "7f00");
        assert_eq!(normalize_serial("00"), "00");
        assert_eq!(serial_to_hex(&[0, 0, 0x12, 0x34]), "1234");
    }

    #[test]
    fn role_round_trip() {
        for role in [Role::Site, Role::Command, Role::Gate] {
            assert_eq!(role.as_str().parse::<Role>().ok(), Some(role));
        }
        assert!(matches!(
            "admin".parse::<Role>(),
            Err(PkiError::UnknownRole(_))
        ));
    }
}
