//! Keys: the trust list a gate verifies against, the revocation list, and signing keys.
//!
//! A gate trusts a declaration because its COSE signature verifies under a key in the
//! [`TrustList`], named by its key id (`kid`), and neither the key id nor the declaration ID is in
//! the [`RevocationList`]. Both lists carry `updated_at`: the field node rewrites them when the
//! replicated store brings a new version, and verification refuses to trust a list older than
//! the policy allows (a gate cut off for days must not keep trusting a key revoked meanwhile).
//!
//! Key files are standard PEM so `openssl` can read them: a signing key is PKCS#8
//! (`-----BEGIN PRIVATE KEY-----`), a public key is SubjectPublicKeyInfo
//! (`-----BEGIN PUBLIC KEY-----`). In the JSON trust list a public key is hex: the 32-byte Ed25519
//! key, or the 65-byte uncompressed SEC1 point for ES256.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::ecdsa::signature::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The signature algorithms a declaration may use (COSE names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// Ed25519 (COSE `EdDSA`, -8): how Mizugiwa issues declarations.
    EdDSA,
    /// ECDSA P-256 with SHA-256 (COSE `ES256`, -7): accepted, as in the EU DCC.
    ES256,
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
        })
    }
}

/// What went wrong reading or writing a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM Ed25519 or P-256 private key (PKCS#8 expected): {0}")]
    PrivatePem(String),
    #[error("not a PEM Ed25519 or P-256 public key (SubjectPublicKeyInfo expected): {0}")]
    PublicPem(String),
    #[error("bad hex public key: {0}")]
    Hex(String),
    #[error("not a valid {alg} public key: {detail}")]
    InvalidKey { alg: Algorithm, detail: String },
    #[error("could not encode key: {0}")]
    Encode(String),
}

/// A public key with its algorithm. Serialised as `{"alg": "EdDSA", "public_key": "<hex>"}`;
/// deserialising checks that the bytes are a valid key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PublicKeyRepr", into = "PublicKeyRepr")]
pub enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    Es256(p256::ecdsa::VerifyingKey),
}

#[derive(Serialize, Deserialize)]
struct PublicKeyRepr {
    alg: Algorithm,
    public_key: String,
}

impl TryFrom<PublicKeyRepr> for PublicKey {
    type Error = KeyError;
    fn try_from(r: PublicKeyRepr) -> Result<Self, KeyError> {
        PublicKey::from_hex(r.alg, &r.public_key)
    }
}

impl From<PublicKey> for PublicKeyRepr {
    fn from(k: PublicKey) -> Self {
        PublicKeyRepr {
            alg: k.algorithm(),
            public_key: k.to_hex(),
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, {})", self.algorithm(), self.to_hex())
    }
}

impl PublicKey {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Ed25519(_) => Algorithm::EdDSA,
            PublicKey::Es256(_) => Algorithm::ES256,
        }
    }

    /// Raw key bytes: 32 bytes for Ed25519, the uncompressed SEC1 point for P-256.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            PublicKey::Ed25519(k) => k.to_bytes().to_vec(),
            PublicKey::Es256(k) => k.to_encoded_point(false).as_bytes().to_vec(),
        }
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    pub fn from_bytes(alg: Algorithm, bytes: &[u8]) -> Result<Self, KeyError> {
        let invalid = |detail: String| KeyError::InvalidKey { alg, detail };
        match alg {
            Algorithm::EdDSA => {
                let raw: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| invalid(format!("{} bytes, 32 expected", bytes.len())))?;
                ed25519_dalek::VerifyingKey::from_bytes(&raw)
                    .map(PublicKey::Ed25519)
                    .map_err(|e| invalid(e.to_string()))
            }
            Algorithm::ES256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                .map(PublicKey::Es256)
                .map_err(|e| invalid(e.to_string())),
        }
    }

    pub fn from_hex(alg: Algorithm, text: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(text.trim()).map_err(|e| KeyError::Hex(e.to_string()))?;
        Self::from_bytes(alg, &bytes)
    }

    /// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_pem(&self) -> Result<String, KeyError> {
        let pem = match self {
            PublicKey::Ed25519(k) => k.to_public_key_pem(Default::default()),
            PublicKey::Es256(k) => k.to_public_key_pem(Default::default()),
        };
        pem.map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// Read a SubjectPublicKeyInfo PEM holding an Ed25519 or a P-256 key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::Ed25519(k));
        }
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem)
            .map(PublicKey::Es256)
            .map_err(|e| KeyError::PublicPem(e.to_string()))
    }

    /// SubjectPublicKeyInfo DER.
    pub fn to_der(&self) -> Result<Vec<u8>, KeyError> {
        let der = match self {
            PublicKey::Ed25519(k) => k.to_public_key_der(),
            PublicKey::Es256(k) => k.to_public_key_der(),
        };
        der.map(|d| d.into_vec())
            .map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// `SHA256:<hex>` of the SubjectPublicKeyInfo DER (what `openssl pkey -pubin -outform DER |
    /// sha256sum` prints): the key's name for operators comparing keys across sites.
    pub fn fingerprint(&self) -> Result<String, KeyError> {
        use sha2::{Digest, Sha256};
        Ok(format!(
            "SHA256:{}",
            hex::encode(Sha256::digest(self.to_der()?))
        ))
    }

    /// Check `signature` over `message`. Ed25519 uses the strict check (no small-order keys, no
    /// malleable signatures); ES256 takes the 64-byte `r || s` form COSE uses.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(k) => match ed25519_dalek::Signature::from_slice(signature) {
                Ok(sig) => k.verify_strict(message, &sig).is_ok(),
                Err(_) => false,
            },
            PublicKey::Es256(k) => match p256::ecdsa::Signature::from_slice(signature) {
                Ok(sig) => k.verify(message, &sig).is_ok(),
                Err(_) => false,
            },
        }
    }
}

/// Largest public key file [`PublicKeyFile::parse`] reads (a PEM public key is ~120 bytes; the
/// headquarters publisher refuses files over the same size).
pub const MAX_PUBLIC_KEY_FILE_BYTES: usize = 16 * 1024;

/// A `KID.pub` file: one SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), Ed25519 or
/// P-256, and nothing else. The key id is not in the file: it is the file name at headquarters
/// (`KID.pub`) and the record id in the replicated store (`gate_keys/<kid>`, whose `key` field
/// is the file's text, verbatim). The algorithm comes from the key's OID.
///
/// `mizugiwa gate keys new` writes these files; the field node parses the published text with
/// [`PublicKeyFile::parse`]. `openssl pkey -pubin -in KID.pub -text` reads them too.
///
/// ```
/// use mizugiwa_gate_edge::trust::{Algorithm, PublicKeyFile, SigningKey};
/// let key = SigningKey::ed25519_from_seed([3; 32]).public_key();
/// let text = PublicKeyFile::new(key.clone()).to_text().unwrap();
/// assert!(text.starts_with("-----BEGIN PUBLIC KEY-----"));
/// let file = PublicKeyFile::parse(&text).unwrap();
/// assert_eq!(file.algorithm(), Algorithm::EdDSA);
/// assert_eq!(file.key, key);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyFile {
    pub key: PublicKey,
}

impl PublicKeyFile {
    /// The file name extension (`KID.pub`).
    pub const EXTENSION: &'static str = "pub";

    pub fn new(key: PublicKey) -> Self {
        PublicKeyFile { key }
    }

    /// Read a public key file's text. Surrounding whitespace and CRLF line ends are accepted;
    /// anything else around the PEM block, a private key, a key of another type or a file over
    /// [`MAX_PUBLIC_KEY_FILE_BYTES`] is refused (the error never quotes key material).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        if text.len() > MAX_PUBLIC_KEY_FILE_BYTES {
            return Err(KeyError::PublicPem(format!(
                "{} bytes, more than the {MAX_PUBLIC_KEY_FILE_BYTES} a public key file may have",
                text.len()
            )));
        }
        if text.contains("PRIVATE KEY-----") {
            return Err(KeyError::PublicPem(
                "this is a private key: publish KID.pub, never KID.key".into(),
            ));
        }
        let normalised = text.trim().replace("\r\n", "\n");
        if normalised.matches("-----BEGIN ").count() != 1
            || !normalised.starts_with("-----BEGIN PUBLIC KEY-----")
            || !normalised.ends_with("-----END PUBLIC KEY-----")
        {
            return Err(KeyError::PublicPem(
                "expected exactly one -----BEGIN PUBLIC KEY----- block and nothing around it"
                    .into(),
            ));
        }
        PublicKey::from_pem(&format!("{normalised}\n")).map(PublicKeyFile::new)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }

    /// The file's text: the SubjectPublicKeyInfo PEM, ending with a newline.
    pub fn to_text(&self) -> Result<String, KeyError> {
        self.key.to_pem()
    }

    /// `SHA256:<hex>` of the key's SubjectPublicKeyInfo DER, the same as
    /// `openssl pkey -pubin -in KID.pub -outform DER | sha256sum`.
    pub fn fingerprint(&self) -> Result<String, KeyError> {
        self.key.fingerprint()
    }
}

/// A key that signs declarations.
#[derive(Clone)]
pub enum SigningKey {
    Ed25519(ed25519_dalek::SigningKey),
    Es256(p256::ecdsa::SigningKey),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print private material.
        write!(
            f,
            "SigningKey({}, public {})",
            self.algorithm(),
            self.public_key().to_hex()
        )
    }
}

impl SigningKey {
    /// A new Ed25519 key from the operating system's random source.
    pub fn generate_ed25519() -> Self {
        SigningKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng))
    }

    /// An Ed25519 key from a 32-byte seed: deterministic, for tests and simulations.
    pub fn ed25519_from_seed(seed: [u8; 32]) -> Self {
        SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// A new P-256 (ES256) key from the operating system's random source.
    pub fn generate_es256() -> Self {
        SigningKey::Es256(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::Ed25519(_) => Algorithm::EdDSA,
            SigningKey::Es256(_) => Algorithm::ES256,
        }
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            SigningKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            SigningKey::Es256(k) => PublicKey::Es256(*k.verifying_key()),
        }
    }

    /// Sign `message`; ES256 signatures come out as 64-byte `r || s`, as COSE wants.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            SigningKey::Es256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_bytes().to_vec()
            }
        }
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), readable by `openssl pkey`.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        let pem = match self {
            SigningKey::Ed25519(k) => k.to_pkcs8_pem(Default::default()),
            SigningKey::Es256(k) => k.to_pkcs8_pem(Default::default()),
        };
        pem.map(|p| p.to_string())
            .map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// Read a PKCS#8 PEM holding an Ed25519 or a P-256 private key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok(SigningKey::Ed25519(k));
        }
        p256::ecdsa::SigningKey::from_pkcs8_pem(pem)
            .map(SigningKey::Es256)
            .map_err(|e| KeyError::PrivatePem(e.to_string()))
    }
}

/// One trusted key: the key and the period it may sign in (both bounds optional).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKey {
    #[serde(flatten)]
    pub key: PublicKey,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_before: Option<OffsetDateTime>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_after: Option<OffsetDateTime>,
    /// Who holds the key (free text for operators, e.g. "Visit Japan Web issuer 2025").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl TrustedKey {
    pub fn new(key: PublicKey) -> Self {
        TrustedKey {
            key,
            not_before: None,
            not_after: None,
            label: None,
        }
    }
}

/// The keys gates accept, by key id, as of `updated_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustList {
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub keys: BTreeMap<String, TrustedKey>,
}

impl TrustList {
    pub fn new(updated_at: OffsetDateTime) -> Self {
        TrustList {
            updated_at,
            keys: BTreeMap::new(),
        }
    }

    /// Add or replace a key.
    pub fn insert(&mut self, kid: impl Into<String>, key: TrustedKey) {
        self.keys.insert(kid.into(), key);
    }

    pub fn get(&self, kid: &str) -> Option<&TrustedKey> {
        self.keys.get(kid)
    }
}

/// Revoked key ids and revoked declaration IDs, as of `updated_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(default)]
    pub kids: BTreeSet<String>,
    #[serde(default)]
    pub declaration_ids: BTreeSet<String>,
}

impl RevocationList {
    pub fn new(updated_at: OffsetDateTime) -> Self {
        RevocationList {
            updated_at,
            kids: BTreeSet::new(),
            declaration_ids: BTreeSet::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_for_both_algorithms() {
        for key in [
            SigningKey::ed25519_from_seed([7; 32]),
            SigningKey::generate_es256(),
        ] {
            let pem = key.to_pem().expect("encode");
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            let back = SigningKey::from_pem(&pem).expect("decode");
            assert_eq!(back.public_key(), key.public_key());
            let public_pem = key.public_key().to_pem().expect("encode public");
            assert_eq!(
                PublicKey::from_pem(&public_pem).expect("decode"),
                key.public_key()
            );
            let sig = key.sign(b"declaration");
            assert!(back.public_key().verify(b"declaration", &sig));
            assert!(!back.public_key().verify(b"declaratioN", &sig));
        }
    }

    #[test]
    fn public_key_files_round_trip_and_refuse_anything_else() {
        for key in [
            SigningKey::ed25519_from_seed([5; 32]),
            SigningKey::generate_es256(),
        ] {
            let file = PublicKeyFile::new(key.public_key());
            let text = file.to_text().expect("encode");
            assert!(text.starts_with("-----BEGIN PUBLIC KEY-----\n"));
            assert!(text.ends_with("-----END PUBLIC KEY-----\n"));
            let back = PublicKeyFile::parse(&text).expect("parse");
            assert_eq!(back, file);
            assert_eq!(back.algorithm(), key.algorithm());
            // Published verbatim, perhaps through an editor: CRLF and surrounding blanks pass.
            let crlf = format!("\n  {}\r\n", text.trim().replace('\n', "\r\n"));
            assert_eq!(PublicKeyFile::parse(&crlf).expect("crlf"), file);
            let fp = back.fingerprint().expect("fingerprint");
            assert!(fp.starts_with("SHA256:") && fp.len() == 7 + 64, "{fp}");

            let private = key.to_pem().expect("private pem");
            let e = PublicKeyFile::parse(&private).expect_err("a private key is no .pub file");
            assert!(e.to_string().contains("private key"), "{e}");
            assert!(!e
                .to_string()
                .contains(private.lines().nth(1).unwrap_or("-")));
            for bad in [
                String::new(),
                "not a key".to_string(),
                format!("# comment\n{text}"),
                format!("{text}trailing"),
                format!("{text}{text}"),
                text.replace('A', "B"),
                "x".repeat(MAX_PUBLIC_KEY_FILE_BYTES + 1),
            ] {
                assert!(PublicKeyFile::parse(&bad).is_err(), "{bad:?}");
            }
        }
        // The fingerprint is SHA-256 of the SubjectPublicKeyInfo DER, as openssl computes it.
        let key = SigningKey::ed25519_from_seed([5; 32]).public_key();
        let der = key.to_der().expect("der");
        assert_eq!(
            der.len(),
            44,
            "Ed25519 SPKI is 12 bytes of header and the 32-byte key"
        );
        assert_eq!(&der[12..], key.to_bytes().as_slice());
    }

    #[test]
    fn trust_list_json_round_trips_and_checks_keys() {
        let mut list = TrustList::new(time::macros::datetime!(2025-06-01 00:00 UTC));
        list.insert(
            "k1",
            TrustedKey::new(SigningKey::ed25519_from_seed([1; 32]).public_key()),
        );
        list.insert(
            "k2",
            TrustedKey::new(SigningKey::generate_es256().public_key()),
        );
        let json = serde_json::to_string(&list).expect("json");
        let back: TrustList = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, list);
        let bad = json.replacen("\"EdDSA\"", "\"ES256\"", 1);
        assert!(
            serde_json::from_str::<TrustList>(&bad).is_err(),
            "32 bytes are no P-256 key"
        );
    }
}
