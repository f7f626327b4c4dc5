//! The declaration QR code: CBOR → COSE_Sign1 → zlib → base45, behind a version prefix.
//!
//! The layout follows the EU digital COVID certificate ("HC1:"), with our own prefix
//! [`PREFIX`] (`MZ1:`, version 1) and the declaration CBOR of [`crate::declaration`] as the
//! COSE payload. [`issue`] signs and encodes; [`verify`] undoes every layer with a bound at each
//! step (text length, decompressed size, CBOR depth and duplicate keys) before trusting
//! anything, and returns a [`QrError`] naming the first thing that failed.
//!
//! ```
//! use mizugiwa_gate_edge::{qr, trust::*};
//! # let decl = mizugiwa_gate_edge::declaration::example();
//! let key = SigningKey::ed25519_from_seed([1; 32]);
//! let text = qr::issue(&decl, &key, "NRT-1").unwrap();
//! assert!(text.starts_with("MZ1:"));
//!
//! let mut trust = TrustList::new(decl.issued_at);
//! trust.insert("NRT-1", TrustedKey::new(key.public_key()));
//! let revoked = RevocationList::new(decl.issued_at);
//! let ok = qr::verify(&text, &trust, &revoked, decl.issued_at, &qr::VerifyPolicy::default());
//! assert_eq!(ok.unwrap().declaration, decl);
//! ```

use std::io::{Read, Write};

use ciborium::value::Value;
use coset::{iana, AsCborValue, CoseSign1, RegisteredLabelWithPrivate};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::cbor::{self, CborError};
use crate::declaration::{Declaration, DeclarationError};
use crate::trust::{Algorithm, RevocationList, SigningKey, TrustList};

/// Version prefix of the QR text.
pub const PREFIX: &str = "MZ1:";
/// Longest QR text accepted: the alphanumeric capacity of the largest QR code (version 40,
/// level L). Anything longer cannot have come from a QR code.
pub const MAX_TEXT_CHARS: usize = 4_296;
/// Most bytes the zlib layer may inflate to (a declaration with 100 goods lines is ~5 KiB).
pub const MAX_DECOMPRESSED_BYTES: usize = 16 * 1024;
/// COSE_Sign1 CBOR tag.
const COSE_SIGN1_TAG: u64 = 18;

/// Limits the verifier applies that depend on time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyPolicy {
    /// How far in the future `issued_at` may be (clock skew between issuer and gate).
    pub max_future_skew_secs: u64,
    /// Oldest trust list the gate still relies on.
    pub max_trust_list_age_secs: u64,
    /// Oldest revocation list the gate still relies on.
    pub max_revocation_list_age_secs: u64,
    /// Oldest declaration accepted (`None`: no limit).
    #[serde(default)]
    pub max_declaration_age_secs: Option<u64>,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        VerifyPolicy {
            max_future_skew_secs: 5 * 60,
            max_trust_list_age_secs: 7 * 24 * 3600,
            max_revocation_list_age_secs: 24 * 3600,
            max_declaration_age_secs: Some(7 * 24 * 3600),
        }
    }
}

/// A declaration whose signature verified under a trusted, unrevoked key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedDeclaration {
    pub declaration: Declaration,
    pub kid: String,
    pub alg: Algorithm,
}

/// Why a QR text was refused. Each variant is one reason an officer can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum QrError {
    #[error("QR text is {len} characters, more than the {max} a QR code can hold")]
    InputTooLong { len: usize, max: usize },
    #[error("QR text does not start with {expected:?} (starts with {found:?})")]
    BadPrefix { expected: String, found: String },
    #[error("QR text is not valid base45: {detail}")]
    BadBase45 { detail: String },
    #[error("QR payload is not valid zlib data: {detail}")]
    BadCompression { detail: String },
    #[error("QR payload inflates to more than {limit} bytes (decompression bomb)")]
    DecompressionBomb { limit: usize },
    #[error("malformed CBOR: {error}")]
    MalformedCbor { error: CborError },
    #[error("not a COSE_Sign1 structure: {detail}")]
    NotCoseSign1 { detail: String },
    #[error("no signature algorithm in the protected header")]
    AlgorithmMissing,
    #[error("signature algorithm \"none\" is never accepted")]
    AlgorithmNone,
    #[error("signature algorithm {alg} is not accepted (EdDSA or ES256)")]
    UnsupportedAlgorithm { alg: String },
    #[error("no key id (kid) in the COSE headers")]
    KeyIdMissing,
    #[error("key id {kid:?} is not in the trust list")]
    UnknownKeyId { kid: String },
    #[error("key id {kid:?} is revoked")]
    RevokedKeyId { kid: String },
    #[error("header says {header} but key {kid:?} is an {key} key")]
    AlgorithmMismatch {
        kid: String,
        header: Algorithm,
        key: Algorithm,
    },
    #[error("the signature does not verify under key {kid:?}")]
    BadSignature { kid: String },
    #[error("the COSE structure carries no payload")]
    PayloadMissing,
    #[error("the payload is not a valid declaration: {error}")]
    MalformedDeclaration { error: DeclarationError },
    #[error("key {kid:?} was not valid when the declaration was issued ({issued_at})")]
    KeyNotValid {
        kid: String,
        #[serde(with = "time::serde::rfc3339")]
        issued_at: OffsetDateTime,
    },
    #[error("declaration issued at {issued_at}, more than {max_skew_secs} s after now ({now})")]
    IssuedInFuture {
        #[serde(with = "time::serde::rfc3339")]
        issued_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        now: OffsetDateTime,
        max_skew_secs: u64,
    },
    #[error("declaration issued at {issued_at} is older than {max_age_secs} s")]
    DeclarationTooOld {
        #[serde(with = "time::serde::rfc3339")]
        issued_at: OffsetDateTime,
        max_age_secs: u64,
    },
    #[error("declaration {id:?} is revoked")]
    DeclarationRevoked { id: String },
    #[error("trust list last updated {updated_at}, older than {max_age_secs} s: sync it")]
    TrustListStale {
        #[serde(with = "time::serde::rfc3339")]
        updated_at: OffsetDateTime,
        max_age_secs: u64,
    },
    #[error("revocation list last updated {updated_at}, older than {max_age_secs} s: sync it")]
    RevocationListStale {
        #[serde(with = "time::serde::rfc3339")]
        updated_at: OffsetDateTime,
        max_age_secs: u64,
    },
}

/// Why signing failed (only on an encoder error; no input can cause it).
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("could not encode the COSE structure: {0}")]
    Encode(String),
}

/// Sign `declaration` with `key` under key id `kid` and return the QR text.
pub fn issue(declaration: &Declaration, key: &SigningKey, kid: &str) -> Result<String, IssueError> {
    seal(&declaration.to_cbor(), key, kid)
}

/// Sign arbitrary payload bytes into QR text (for tooling and tests; [`issue`] is the normal
/// entry point).
pub fn seal(payload: &[u8], key: &SigningKey, kid: &str) -> Result<String, IssueError> {
    let alg = match key.algorithm() {
        Algorithm::EdDSA => iana::Algorithm::EdDSA,
        Algorithm::ES256 => iana::Algorithm::ES256,
    };
    let protected = coset::HeaderBuilder::new()
        .algorithm(alg)
        .key_id(kid.as_bytes().to_vec())
        .build();
    let sign1 = coset::CoseSign1Builder::new()
        .protected(protected)
        .payload(payload.to_vec())
        .create_signature(b"", |tbs| key.sign(tbs))
        .build();
    let bytes = coset::TaggedCborSerializable::to_tagged_vec(sign1)
        .map_err(|e| IssueError::Encode(e.to_string()))?;
    Ok(encode_transport(&bytes))
}

/// zlib-compress, base45-encode and prefix COSE bytes.
pub fn encode_transport(cose: &[u8]) -> String {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let compressed: Vec<u8> = z
        .write_all(cose)
        .and_then(|()| z.finish())
        .unwrap_or_default();
    format!("{PREFIX}{}", base45::encode(compressed))
}

/// Undo the transport layers: length check, prefix, base45, bounded zlib inflation.
pub fn decode_transport(text: &str) -> Result<Vec<u8>, QrError> {
    if text.len() > MAX_TEXT_CHARS {
        return Err(QrError::InputTooLong {
            len: text.len(),
            max: MAX_TEXT_CHARS,
        });
    }
    let body = text
        .strip_prefix(PREFIX)
        .ok_or_else(|| QrError::BadPrefix {
            expected: PREFIX.to_string(),
            found: text.chars().take(PREFIX.len()).collect(),
        })?;
    let compressed = base45::decode(body).map_err(|e| QrError::BadBase45 {
        detail: e.to_string(),
    })?;
    let mut inflated = Vec::new();
    let limit = MAX_DECOMPRESSED_BYTES as u64;
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .take(limit + 1)
        .read_to_end(&mut inflated)
        .map_err(|e| QrError::BadCompression {
            detail: e.to_string(),
        })?;
    if inflated.len() > MAX_DECOMPRESSED_BYTES {
        return Err(QrError::DecompressionBomb {
            limit: MAX_DECOMPRESSED_BYTES,
        });
    }
    Ok(inflated)
}

/// Verify QR text against the trust and revocation lists at time `now`.
pub fn verify(
    text: &str,
    trust: &TrustList,
    revocations: &RevocationList,
    now: OffsetDateTime,
    policy: &VerifyPolicy,
) -> Result<VerifiedDeclaration, QrError> {
    // Stale lists first: whatever the QR says, the gate cannot vouch for it.
    if older_than(trust.updated_at, now, policy.max_trust_list_age_secs) {
        return Err(QrError::TrustListStale {
            updated_at: trust.updated_at,
            max_age_secs: policy.max_trust_list_age_secs,
        });
    }
    if older_than(
        revocations.updated_at,
        now,
        policy.max_revocation_list_age_secs,
    ) {
        return Err(QrError::RevocationListStale {
            updated_at: revocations.updated_at,
            max_age_secs: policy.max_revocation_list_age_secs,
        });
    }

    let cose_bytes = decode_transport(text)?;
    let sign1 = parse_cose_sign1(&cose_bytes)?;
    let header_alg = header_algorithm(&sign1)?;
    let kid = key_id(&sign1)?;
    if revocations.kids.contains(&kid) {
        return Err(QrError::RevokedKeyId { kid });
    }
    let trusted = trust
        .get(&kid)
        .ok_or_else(|| QrError::UnknownKeyId { kid: kid.clone() })?;
    let key_alg = trusted.key.algorithm();
    if key_alg != header_alg {
        return Err(QrError::AlgorithmMismatch {
            kid,
            header: header_alg,
            key: key_alg,
        });
    }
    // A detached payload is not a declaration; say so rather than "bad signature".
    let payload = sign1.payload.as_deref().ok_or(QrError::PayloadMissing)?;
    sign1.verify_signature(b"", |signature, data| {
        if trusted.key.verify(data, signature) {
            Ok(())
        } else {
            Err(QrError::BadSignature { kid: kid.clone() })
        }
    })?;

    // Only now is the payload authentic; parse it, still strictly.
    let value = cbor::decode_strict(payload).map_err(|error| QrError::MalformedCbor { error })?;
    let declaration = Declaration::from_cbor_value(&value)
        .map_err(|error| QrError::MalformedDeclaration { error })?;

    let issued_at = declaration.issued_at;
    let before_key = trusted.not_before.is_some_and(|nb| issued_at < nb);
    let after_key = trusted.not_after.is_some_and(|na| issued_at > na);
    if before_key || after_key {
        return Err(QrError::KeyNotValid { kid, issued_at });
    }
    if issued_at > now + secs(policy.max_future_skew_secs) {
        return Err(QrError::IssuedInFuture {
            issued_at,
            now,
            max_skew_secs: policy.max_future_skew_secs,
        });
    }
    if let Some(max_age) = policy.max_declaration_age_secs {
        if older_than(issued_at, now, max_age) {
            return Err(QrError::DeclarationTooOld {
                issued_at,
                max_age_secs: max_age,
            });
        }
    }
    if revocations.declaration_ids.contains(&declaration.id) {
        return Err(QrError::DeclarationRevoked {
            id: declaration.id.clone(),
        });
    }
    Ok(VerifiedDeclaration {
        declaration,
        kid,
        alg: header_alg,
    })
}

fn secs(s: u64) -> time::Duration {
    time::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX))
}

fn older_than(t: OffsetDateTime, now: OffsetDateTime, max_age_secs: u64) -> bool {
    now - t > secs(max_age_secs)
}

fn parse_cose_sign1(bytes: &[u8]) -> Result<CoseSign1, QrError> {
    let malformed = |error| QrError::MalformedCbor { error };
    let value = cbor::decode_strict(bytes).map_err(malformed)?;
    // Tagged (as issued) or untagged, as the EU DCC accepts; any other tag is not ours.
    let value = match value {
        Value::Tag(COSE_SIGN1_TAG, inner) => *inner,
        Value::Tag(tag, _) => {
            return Err(QrError::NotCoseSign1 {
                detail: format!("CBOR tag {tag}, expected {COSE_SIGN1_TAG} or none"),
            })
        }
        other => other,
    };
    // The protected header is CBOR inside a byte string: check it as strictly as the rest,
    // since coset decodes it with ciborium's defaults (duplicates kept).
    if let Some(Value::Bytes(protected)) = value.as_array().and_then(|a| a.first()) {
        if !protected.is_empty() {
            cbor::decode_strict(protected).map_err(malformed)?;
        }
    }
    CoseSign1::from_cbor_value(value).map_err(|e| QrError::NotCoseSign1 {
        detail: e.to_string(),
    })
}

/// The algorithm, which must be in the protected header (so it is covered by the signature).
fn header_algorithm(sign1: &CoseSign1) -> Result<Algorithm, QrError> {
    match &sign1.protected.header.alg {
        None => Err(QrError::AlgorithmMissing),
        Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::EdDSA)) => Ok(Algorithm::EdDSA),
        Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES256)) => Ok(Algorithm::ES256),
        Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::Reserved)) => {
            Err(QrError::AlgorithmNone)
        }
        Some(RegisteredLabelWithPrivate::Text(t)) if t.eq_ignore_ascii_case("none") => {
            Err(QrError::AlgorithmNone)
        }
        Some(RegisteredLabelWithPrivate::Text(t)) => {
            Err(QrError::UnsupportedAlgorithm { alg: t.clone() })
        }
        Some(RegisteredLabelWithPrivate::Assigned(other)) => Err(QrError::UnsupportedAlgorithm {
            alg: format!("{other:?}"),
        }),
        Some(RegisteredLabelWithPrivate::PrivateUse(n)) => {
            Err(QrError::UnsupportedAlgorithm { alg: n.to_string() })
        }
    }
}

/// The key id: protected header first, then unprotected (as the EU DCC allows; the signature
/// check binds the key anyway). Text when UTF-8, hex otherwise.
fn key_id(sign1: &CoseSign1) -> Result<String, QrError> {
    let raw = if sign1.protected.header.key_id.is_empty() {
        &sign1.unprotected.key_id
    } else {
        &sign1.protected.header.key_id
    };
    if raw.is_empty() {
        return Err(QrError::KeyIdMissing);
    }
    Ok(match std::str::from_utf8(raw) {
        Ok(s) => s.to_string(),
        Err(_) => hex::encode(raw),
    })
}

/// Why a QR code image could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("text does not fit in a QR code: {0}")]
    TooLong(String),
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// Render QR text as a PNG (8-bit greyscale, `module_px` pixels per module, 4-module quiet
/// zone). Error correction level Q when the text fits, else L.
pub fn render_png(text: &str, module_px: u32) -> Result<Vec<u8>, RenderError> {
    use qrcode::{Color, EcLevel, QrCode};
    let code = QrCode::with_error_correction_level(text, EcLevel::Q)
        .or_else(|_| QrCode::with_error_correction_level(text, EcLevel::L))
        .map_err(|e| RenderError::TooLong(e.to_string()))?;
    let modules = code.width();
    let colors = code.to_colors();
    let scale = module_px.clamp(1, 64) as usize;
    let quiet = 4;
    let side = (modules + 2 * quiet) * scale;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules + quiet, i / modules + quiet);
        for y in my * scale..(my + 1) * scale {
            let row = y * side;
            pixels[row + mx * scale..row + (mx + 1) * scale].fill(0);
        }
    }
    let mut out = Vec::new();
    {
        let side = u32::try_from(side).map_err(|e| RenderError::Png(e.to_string()))?;
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| RenderError::Png(e.to_string()))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| RenderError::Png(e.to_string()))?;
    }
    Ok(out)
}
