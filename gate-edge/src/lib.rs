//! Airport e-gates: signed declaration QR codes, ICAO 9303 MRZ checks, Japan's duty-free
//! allowances and duty, and the pure gate decision function.
//!
//! A passenger shows a declaration QR code and a passport. The gate:
//! 1. verifies the QR offline ([`qr::verify`]): base45 → zlib → CBOR → COSE_Sign1, signed with
//!    Ed25519 (ES256 accepted) by a key in the synced [`trust::TrustList`] and not in the
//!    [`trust::RevocationList`];
//! 2. reads the passport zone ([`mrz::parse`]) and the chip's DG1 fields;
//! 3. assesses the declared goods against the allowances ([`allowance::assess`]);
//! 4. decides ([`decision::decide`]): open, or the officer lane with every reason;
//! 5. journals the decision ([`journal`]): hash-chained and signed with the node's key.
//!
//! Everything here is pure: time, the replay lookup and the random-selection seed are inputs,
//! so the field node owns storage and clocks and the decision is reproducible.
//!
//! ```
//! use mizugiwa_gate_edge::{decision, declaration, mrz, qr, trust::*};
//! let decl = declaration::example();
//! let key = SigningKey::ed25519_from_seed([9; 32]);
//! let text = qr::issue(&decl, &key, "NRT-1").unwrap();
//!
//! let now = decl.issued_at + time::Duration::hours(20);
//! let mut trust = TrustList::new(now);
//! trust.insert("NRT-1", TrustedKey::new(key.public_key()));
//! let revocations = RevocationList::new(now);
//! let verification = qr::verify(&text, &trust, &revocations, now, &qr::VerifyPolicy::default());
//!
//! let input = decision::GateInput {
//!     verification,
//!     mrz: mrz::parse(&[
//!         "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
//!         "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
//!     ]),
//!     chip: None,
//!     face_match_score: Some(0.93),
//!     watchlist_hit: false,
//!     replay_seen: false,
//!     now,
//!     seed: 42,
//! };
//! let d = decision::decide(&input, &decision::Policy::default());
//! // The ICAO specimen passport expired in 2012: officer lane, with that reason.
//! assert_eq!(d.outcome, decision::Outcome::OfficerLane);
//! assert!(d.reasons.iter().any(|r| matches!(r, decision::Reason::PassportExpired { .. })));
//! ```
//!
//! Never imports `mizugiwa-sync` or another domain crate.

pub mod allowance;
pub mod cbor;
pub mod decision;
pub mod declaration;
pub mod journal;
pub mod mrz;
pub mod qr;
pub mod trust;

pub use decision::{decide, Decision, GateInput, Outcome, Policy, Reason};
pub use qr::{QrError, VerifiedDeclaration, VerifyPolicy};
pub use trust::PublicKeyFile;
