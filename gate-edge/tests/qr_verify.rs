//! Issue → verify, and every way a QR code can be bad, each refused with its own reason.

mod common;

use std::io::Write;

use ciborium::value::Value;
use common::*;
use coset::{iana, CborSerializable, TaggedCborSerializable};
use mizugiwa_gate_edge::cbor::{CborError, MAX_DEPTH};
use mizugiwa_gate_edge::qr::{self, QrError, VerifyPolicy};
use mizugiwa_gate_edge::trust::{Algorithm, SigningKey, TrustedKey};
use time::Duration;

/// Build COSE_Sign1 bytes with a chosen protected header, signed by `key`.
fn cose_with(
    alg: Option<coset::Algorithm>,
    kid: &[u8],
    payload: &[u8],
    key: &SigningKey,
) -> Vec<u8> {
    let mut header = coset::HeaderBuilder::new().key_id(kid.to_vec()).build();
    header.alg = alg;
    sign_header(header, payload, key)
}

fn sign_header(h: coset::Header, payload: &[u8], key: &SigningKey) -> Vec<u8> {
    coset::CoseSign1Builder::new()
        .protected(h)
        .payload(payload.to_vec())
        .create_signature(b"", |tbs| key.sign(tbs))
        .build()
        .to_tagged_vec()
        .expect("encode")
}

fn assigned(a: iana::Algorithm) -> Option<coset::Algorithm> {
    Some(coset::RegisteredLabelWithPrivate::Assigned(a))
}

fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).expect("encode");
    out
}

#[test]
fn round_trip_ed25519() {
    let d = declaration();
    let text = issue(&d);
    assert!(text.starts_with("MZ1:"));
    let v = verify(&text).expect("verifies");
    assert_eq!(v.declaration, d);
    assert_eq!(v.kid, KID);
    assert_eq!(v.alg, Algorithm::EdDSA);
    // Small enough for a comfortable QR code.
    assert!(text.len() < 400, "{} chars", text.len());
    let png = qr::render_png(&text, 4).expect("png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn round_trip_es256() {
    let key = SigningKey::generate_es256();
    let d = declaration();
    let text = qr::issue(&d, &key, "es-1").expect("issue");
    let mut trust = trust();
    trust.insert("es-1", TrustedKey::new(key.public_key()));
    let v = qr::verify(&text, &trust, &revocations(), NOW, &VerifyPolicy::default()).expect("ok");
    assert_eq!(v.alg, Algorithm::ES256);
    assert_eq!(v.declaration, d);
}

#[test]
fn untagged_cose_is_accepted_and_other_tags_are_not() {
    let tagged = qr::decode_transport(&issue(&declaration())).expect("decode");
    let sign1 = coset::CoseSign1::from_tagged_slice(&tagged).expect("parse");
    let untagged = sign1.clone().to_vec().expect("encode");
    assert!(verify(&qr::encode_transport(&untagged)).is_ok());
    let value: Value = ciborium::de::from_reader(untagged.as_slice()).expect("cbor");
    let wrong_tag = cbor(&Value::Tag(98, Box::new(value)));
    assert!(matches!(
        verify(&qr::encode_transport(&wrong_tag)),
        Err(QrError::NotCoseSign1 { .. })
    ));
}

#[test]
fn an_altered_byte_breaks_the_signature() {
    let cose = qr::decode_transport(&issue(&declaration())).expect("decode");
    let sign1 = coset::CoseSign1::from_tagged_slice(&cose).expect("parse");
    let payload = sign1.payload.clone().expect("payload");
    // Flip one byte inside the payload, wherever it sits in the COSE bytes.
    let at = cose
        .windows(payload.len())
        .position(|w| w == payload.as_slice())
        .expect("payload inside")
        + payload.len() / 2;
    let mut altered = cose.clone();
    altered[at] ^= 0x01;
    assert!(matches!(
        verify(&qr::encode_transport(&altered)),
        Err(QrError::BadSignature { .. }) | Err(QrError::MalformedCbor { .. })
    ));
    // And a flipped bit in the signature itself.
    let mut altered = cose;
    let last = altered.len() - 1;
    altered[last] ^= 0x80;
    assert_eq!(
        verify(&qr::encode_transport(&altered)),
        Err(QrError::BadSignature { kid: KID.into() })
    );
}

#[test]
fn a_wrong_key_under_a_trusted_kid_is_refused() {
    let impostor = SigningKey::ed25519_from_seed([7; 32]);
    let text = qr::issue(&declaration(), &impostor, KID).expect("issue");
    assert_eq!(
        verify(&text),
        Err(QrError::BadSignature { kid: KID.into() })
    );
}

#[test]
fn unknown_and_revoked_key_ids_are_refused() {
    let text = qr::issue(&declaration(), &key(), "nobody").expect("issue");
    assert_eq!(
        verify(&text),
        Err(QrError::UnknownKeyId {
            kid: "nobody".into()
        })
    );

    let mut revoked = revocations();
    revoked.kids.insert(KID.into());
    let r = qr::verify(
        &issue(&declaration()),
        &trust(),
        &revoked,
        NOW,
        &VerifyPolicy::default(),
    );
    assert_eq!(r, Err(QrError::RevokedKeyId { kid: KID.into() }));
}

#[test]
fn algorithm_none_missing_unsupported_and_mismatched_are_refused() {
    let payload = declaration().to_cbor();
    let k = key();
    let none = cose_with(
        Some(coset::RegisteredLabelWithPrivate::Text("none".into())),
        KID.as_bytes(),
        &payload,
        &k,
    );
    assert_eq!(
        verify(&qr::encode_transport(&none)),
        Err(QrError::AlgorithmNone)
    );
    let reserved = cose_with(
        assigned(iana::Algorithm::Reserved),
        KID.as_bytes(),
        &payload,
        &k,
    );
    assert_eq!(
        verify(&qr::encode_transport(&reserved)),
        Err(QrError::AlgorithmNone)
    );
    let missing = cose_with(None, KID.as_bytes(), &payload, &k);
    assert_eq!(
        verify(&qr::encode_transport(&missing)),
        Err(QrError::AlgorithmMissing)
    );
    let es384 = cose_with(
        assigned(iana::Algorithm::ES384),
        KID.as_bytes(),
        &payload,
        &k,
    );
    assert!(matches!(
        verify(&qr::encode_transport(&es384)),
        Err(QrError::UnsupportedAlgorithm { .. })
    ));
    // Header claims ES256 but the trusted key is Ed25519.
    let mismatched = cose_with(
        assigned(iana::Algorithm::ES256),
        KID.as_bytes(),
        &payload,
        &k,
    );
    assert_eq!(
        verify(&qr::encode_transport(&mismatched)),
        Err(QrError::AlgorithmMismatch {
            kid: KID.into(),
            header: Algorithm::ES256,
            key: Algorithm::EdDSA
        })
    );
}

#[test]
fn a_missing_kid_or_payload_is_refused() {
    let payload = declaration().to_cbor();
    let no_kid = cose_with(assigned(iana::Algorithm::EdDSA), b"", &payload, &key());
    assert_eq!(
        verify(&qr::encode_transport(&no_kid)),
        Err(QrError::KeyIdMissing)
    );

    let protected = coset::HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(KID.as_bytes().to_vec())
        .build();
    let detached = coset::CoseSign1Builder::new()
        .protected(protected)
        .create_detached_signature(&payload, b"", |tbs| key().sign(tbs))
        .build()
        .to_tagged_vec()
        .expect("encode");
    assert_eq!(
        verify(&qr::encode_transport(&detached)),
        Err(QrError::PayloadMissing)
    );
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let text = format!("MZ1:{}", "A".repeat(qr::MAX_TEXT_CHARS));
    assert_eq!(
        verify(&text),
        Err(QrError::InputTooLong {
            len: qr::MAX_TEXT_CHARS + 4,
            max: qr::MAX_TEXT_CHARS
        })
    );
}

#[test]
fn a_decompression_bomb_is_stopped_at_the_cap() {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&vec![0u8; 1024 * 1024]).expect("write");
    let compressed = z.finish().expect("finish");
    let text = format!("MZ1:{}", base45::encode(&compressed));
    assert!(
        text.len() <= qr::MAX_TEXT_CHARS,
        "the bomb fits in a QR code: {}",
        text.len()
    );
    assert_eq!(
        verify(&text),
        Err(QrError::DecompressionBomb {
            limit: qr::MAX_DECOMPRESSED_BYTES
        })
    );
}

#[test]
fn bad_prefix_base45_and_zlib_are_refused() {
    let text = issue(&declaration());
    let hc1 = text.replacen("MZ1:", "HC1:", 1);
    assert!(matches!(verify(&hc1), Err(QrError::BadPrefix { .. })));
    assert!(matches!(verify("MZ1:!!!!"), Err(QrError::BadBase45 { .. })));
    assert!(matches!(
        verify("MZ1:AB"),
        Err(QrError::BadBase45 { .. }) | Err(QrError::BadCompression { .. })
    ));
    let not_zlib = format!("MZ1:{}", base45::encode(b"plain bytes, not zlib"));
    assert!(matches!(
        verify(&not_zlib),
        Err(QrError::BadCompression { .. })
    ));
}

#[test]
fn duplicate_keys_are_refused_in_the_envelope_and_in_the_payload() {
    // Signed payload whose map repeats key 1 (the declaration ID): two parsers could disagree.
    let mut v = declaration().to_cbor_value();
    if let Value::Map(m) = &mut v {
        m.push((Value::Integer(1.into()), Value::Text("D-OTHER".into())));
    }
    let text = qr::seal(&cbor(&v), &key(), KID).expect("seal");
    assert_eq!(
        verify(&text),
        Err(QrError::MalformedCbor {
            error: CborError::DuplicateKey { key: "1".into() }
        })
    );

    // Protected header {1: -8, 1: -8, 4: kid}: refused before any signature work.
    let protected = cbor(&Value::Map(vec![
        (Value::Integer(1.into()), Value::Integer((-8).into())),
        (Value::Integer(1.into()), Value::Integer((-8).into())),
        (
            Value::Integer(4.into()),
            Value::Bytes(KID.as_bytes().to_vec()),
        ),
    ]));
    let envelope = Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(protected),
            Value::Map(vec![]),
            Value::Bytes(declaration().to_cbor()),
            Value::Bytes(vec![0; 64]),
        ])),
    );
    assert!(matches!(
        verify(&qr::encode_transport(&cbor(&envelope))),
        Err(QrError::MalformedCbor {
            error: CborError::DuplicateKey { .. }
        })
    ));
}

#[test]
fn deep_nesting_is_refused_in_the_envelope_and_in_the_payload() {
    let mut deep = vec![0x81u8; 5_000];
    deep.push(0x00);
    assert_eq!(
        verify(&qr::encode_transport(&deep)),
        Err(QrError::MalformedCbor {
            error: CborError::TooDeep { max: MAX_DEPTH }
        })
    );
    let mut nested = Value::Integer(0.into());
    for _ in 0..MAX_DEPTH {
        nested = Value::Array(vec![nested]);
    }
    let mut v = declaration().to_cbor_value();
    if let Value::Map(m) = &mut v {
        m.push((Value::Integer(50.into()), nested));
    }
    let text = qr::seal(&cbor(&v), &key(), KID).expect("seal");
    assert_eq!(
        verify(&text),
        Err(QrError::MalformedCbor {
            error: CborError::TooDeep { max: MAX_DEPTH }
        })
    );
}

#[test]
fn a_signed_payload_that_is_no_declaration_is_refused() {
    let text = qr::seal(&cbor(&Value::Text("hello".into())), &key(), KID).expect("seal");
    assert!(matches!(
        verify(&text),
        Err(QrError::MalformedDeclaration { .. })
    ));
}

#[test]
fn issue_time_in_the_future_beyond_the_skew_is_refused() {
    let policy = VerifyPolicy::default();
    let mut d = declaration();
    d.issued_at = NOW + Duration::seconds(policy.max_future_skew_secs as i64 - 1);
    assert!(verify(&issue(&d)).is_ok(), "within the skew");
    d.issued_at = NOW + Duration::seconds(policy.max_future_skew_secs as i64 + 60);
    assert!(matches!(
        verify(&issue(&d)),
        Err(QrError::IssuedInFuture { .. })
    ));
}

#[test]
fn an_old_declaration_is_refused_when_the_policy_says_so() {
    let mut d = declaration();
    d.issued_at = NOW - Duration::days(30);
    assert!(matches!(
        verify(&issue(&d)),
        Err(QrError::DeclarationTooOld { .. })
    ));
    let lenient = VerifyPolicy {
        max_declaration_age_secs: None,
        ..VerifyPolicy::default()
    };
    assert!(qr::verify(&issue(&d), &trust(), &revocations(), NOW, &lenient).is_ok());
}

#[test]
fn stale_trust_and_revocation_lists_are_refused() {
    let policy = VerifyPolicy::default();
    let text = issue(&declaration());
    let mut old = trust();
    old.updated_at = NOW - Duration::seconds(policy.max_trust_list_age_secs as i64 + 1);
    assert!(matches!(
        qr::verify(&text, &old, &revocations(), NOW, &policy),
        Err(QrError::TrustListStale { .. })
    ));
    let mut old = revocations();
    old.updated_at = NOW - Duration::seconds(policy.max_revocation_list_age_secs as i64 + 1);
    assert!(matches!(
        qr::verify(&text, &trust(), &old, NOW, &policy),
        Err(QrError::RevocationListStale { .. })
    ));
}

#[test]
fn revoked_declarations_and_keys_outside_their_validity_are_refused() {
    let d = declaration();
    let mut revoked = revocations();
    revoked.declaration_ids.insert(d.id.clone());
    assert_eq!(
        qr::verify(
            &issue(&d),
            &trust(),
            &revoked,
            NOW,
            &VerifyPolicy::default()
        ),
        Err(QrError::DeclarationRevoked { id: d.id.clone() })
    );
    let mut t = trust();
    if let Some(k) = t.keys.get_mut(KID) {
        k.not_after = Some(d.issued_at - Duration::days(1));
    }
    assert!(matches!(
        qr::verify(
            &issue(&d),
            &t,
            &revocations(),
            NOW,
            &VerifyPolicy::default()
        ),
        Err(QrError::KeyNotValid { .. })
    ));
}

#[test]
fn errors_serialise_with_their_reason() {
    let e = QrError::UnknownKeyId { kid: "x".into() };
    let json = serde_json::to_value(&e).expect("json");
    assert_eq!(json["reason"], "unknown_key_id");
    let back: QrError = serde_json::from_value(json).expect("parse");
    assert_eq!(back, e);
}
