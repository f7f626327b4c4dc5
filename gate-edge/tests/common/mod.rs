//! Shared fixtures: keys, lists, a passenger whose QR, MRZ and chip agree.
#![allow(dead_code)]

use mizugiwa_gate_edge::decision::{ChipData, GateInput, Policy};
use mizugiwa_gate_edge::declaration::{self, Declaration};
use mizugiwa_gate_edge::mrz::{self, Sex};
use mizugiwa_gate_edge::qr::{self, VerifyPolicy};
use mizugiwa_gate_edge::trust::{RevocationList, SigningKey, TrustList, TrustedKey};
use time::macros::{date, datetime};
use time::OffsetDateTime;

pub const KID: &str = "NRT-2025-1";
/// Arrival morning: twenty hours after the example declaration was issued.
pub const NOW: OffsetDateTime = datetime!(2025-05-01 08:00 UTC);

pub fn key() -> SigningKey {
    SigningKey::ed25519_from_seed([42; 32])
}

pub fn trust() -> TrustList {
    let mut t = TrustList::new(NOW - time::Duration::hours(1));
    t.insert(KID, TrustedKey::new(key().public_key()));
    t
}

pub fn revocations() -> RevocationList {
    RevocationList::new(NOW - time::Duration::hours(1))
}

pub fn declaration() -> Declaration {
    declaration::example()
}

pub fn issue(d: &Declaration) -> String {
    qr::issue(d, &key(), KID).expect("issue")
}

pub fn verify(text: &str) -> Result<qr::VerifiedDeclaration, qr::QrError> {
    qr::verify(
        text,
        &trust(),
        &revocations(),
        NOW,
        &VerifyPolicy::default(),
    )
}

/// A TD3 zone with correct check digits for the given fields.
pub fn td3(
    surname: &str,
    given: &str,
    number: &str,
    nationality: &str,
    birth: &str,
    sex: char,
    expiry: &str,
) -> [String; 2] {
    let pad = |s: String, n: usize| format!("{s:<<n$}");
    let name = format!("{}<<{}", surname.replace(' ', "<"), given.replace(' ', "<"));
    let l1 = pad(format!("P<{nationality}{name}"), 44);
    let number = pad(number.to_string(), 9);
    let personal = "<".repeat(14);
    let d = |s: &str| mrz::check_digit(s).expect("digit").to_string();
    let body = format!(
        "{number}{}{nationality}{birth}{}{sex}{expiry}{}{personal}{}",
        d(&number),
        d(birth),
        d(expiry),
        d(&personal)
    );
    let composite = format!("{}{}{}", &body[0..10], &body[13..20], &body[21..43]);
    [l1, format!("{body}{}", d(&composite))]
}

/// The example traveller's passport, valid until 2034.
pub fn passport() -> [String; 2] {
    td3(
        "ERIKSSON",
        "ANNA MARIA",
        "L898902C3",
        "UTO",
        "740812",
        'F',
        "340415",
    )
}

pub fn chip() -> ChipData {
    ChipData {
        document_number: "L898902C3".into(),
        surname: "ERIKSSON".into(),
        given_names: "ANNA MARIA".into(),
        nationality: "UTO".into(),
        date_of_birth: date!(1974 - 08 - 12),
        sex: Some(Sex::Female),
        date_of_expiry: date!(2034 - 04 - 15),
    }
}

/// A passenger for whom everything is in order.
pub fn clean_input() -> GateInput {
    let [l1, l2] = passport();
    GateInput {
        verification: verify(&issue(&declaration())),
        mrz: mrz::parse(&[&l1, &l2]),
        chip: Some(chip()),
        face_match_score: Some(0.95),
        watchlist_hit: false,
        replay_seen: false,
        now: NOW,
        seed: 1,
    }
}

/// The default policy without random selection, so a clean passenger opens the gate.
pub fn policy() -> Policy {
    Policy {
        random_selection_rate: 0.0,
        ..Policy::default()
    }
}
