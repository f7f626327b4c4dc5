//! The gate decision: a clean passenger opens the gate; anything else sends them to an officer
//! with every reason that applies.

mod common;

use common::*;
use mizugiwa_gate_edge::allowance::{GoodsCategory, GoodsItem};
use mizugiwa_gate_edge::decision::{
    decide, ComparedField, Decision, Outcome, Policy, Reason, DECISION_FUNCTION_VERSION,
};
use mizugiwa_gate_edge::mrz::{self, CheckedField};
use mizugiwa_gate_edge::qr::{self, QrError};
use mizugiwa_gate_edge::trust::SigningKey;
use time::macros::date;

fn has(d: &Decision, pred: impl Fn(&Reason) -> bool) -> bool {
    d.reasons.iter().any(pred)
}

#[test]
fn a_clean_passenger_opens_the_gate() {
    let d = decide(&clean_input(), &policy());
    assert_eq!(d.outcome, Outcome::Open, "{:#?}", d.reasons);
    assert!(d.reasons.is_empty());
    assert_eq!(d.declaration_id.as_deref(), Some("D-2025-000001"));
    assert_eq!(d.decision_function_version, DECISION_FUNCTION_VERSION);
    assert_eq!(d.policy_version, policy().version);
    assert!(d.assessment.is_some());
}

#[test]
fn decisions_are_deterministic_and_serialisable() {
    let input = clean_input();
    let p = Policy {
        random_selection_rate: 0.5,
        ..policy()
    };
    let a = decide(&input, &p);
    assert_eq!(a, decide(&input, &p));
    let json = serde_json::to_string(&a).expect("json");
    let back: Decision = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, a);
    let input_json = serde_json::to_string(&input).expect("input json");
    let input_back: mizugiwa_gate_edge::GateInput =
        serde_json::from_str(&input_json).expect("parse");
    assert_eq!(decide(&input_back, &p), a);
}

type ErrorCheck = fn(&QrError) -> bool;

/// Every bad QR sends the passenger to an officer, carrying the verification error.
#[test]
fn every_verification_failure_goes_to_the_officer_lane() {
    let d = declaration();
    let good = issue(&d);
    let impostor = qr::issue(&d, &SigningKey::ed25519_from_seed([3; 32]), KID).expect("issue");
    let unknown = qr::issue(&d, &key(), "nobody").expect("issue");
    let mut future = d.clone();
    future.issued_at = NOW + time::Duration::hours(2);
    let cases: Vec<(String, ErrorCheck)> = vec![
        (good.replacen("MZ1:", "XX1:", 1), |e| {
            matches!(e, QrError::BadPrefix { .. })
        }),
        ("MZ1:%%%%~".into(), |e| {
            matches!(e, QrError::BadBase45 { .. })
        }),
        (impostor, |e| matches!(e, QrError::BadSignature { .. })),
        (unknown, |e| matches!(e, QrError::UnknownKeyId { .. })),
        (issue(&future), |e| {
            matches!(e, QrError::IssuedInFuture { .. })
        }),
        (format!("MZ1:{}", "0".repeat(5000)), |e| {
            matches!(e, QrError::InputTooLong { .. })
        }),
    ];
    for (text, expected) in cases {
        let mut input = clean_input();
        input.verification = verify(&text);
        let decision = decide(&input, &policy());
        assert_eq!(decision.outcome, Outcome::OfficerLane, "{text}");
        assert!(
            has(
                &decision,
                |r| matches!(r, Reason::VerificationFailed { error } if expected(error))
            ),
            "{text}: {:?}",
            decision.reasons
        );
        assert_eq!(decision.declaration_id, None);
    }
}

#[test]
fn a_replayed_declaration_goes_to_the_officer_lane() {
    let mut input = clean_input();
    input.replay_seen = true;
    let d = decide(&input, &policy());
    assert_eq!(d.outcome, Outcome::OfficerLane);
    assert_eq!(
        d.reasons,
        vec![Reason::Replay {
            declaration_id: "D-2025-000001".into()
        }]
    );
}

#[test]
fn every_yes_answer_is_its_own_reason() {
    let mut decl = declaration();
    decl.answers.prohibited_or_restricted = true;
    decl.answers.commercial_goods = true;
    decl.answers.carried_for_others = true;
    decl.answers.cash_over_limit = true;
    decl.answers.unaccompanied_baggage = true;
    decl.answers.over_allowance = true;
    let mut input = clean_input();
    input.verification = verify(&issue(&decl));
    let d = decide(&input, &policy());
    assert_eq!(d.outcome, Outcome::OfficerLane);
    for expected in [
        Reason::ProhibitedOrRestrictedDeclared,
        Reason::OverAllowanceDeclared,
        Reason::CommercialGoodsDeclared,
        Reason::GoodsForOthersDeclared,
        Reason::CashOverLimitDeclared,
        Reason::UnaccompaniedBaggageDeclared,
    ] {
        assert!(d.reasons.contains(&expected), "missing {expected:?}");
    }
    assert_eq!(d.reasons.len(), 6);
}

#[test]
fn goods_over_the_allowance_carry_the_assessment() {
    let mut decl = declaration();
    decl.goods.push(GoodsItem::new(
        GoodsCategory::General,
        "handbag",
        1,
        250_000,
    ));
    let mut input = clean_input();
    input.verification = verify(&issue(&decl));
    let d = decide(&input, &policy());
    assert_eq!(d.outcome, Outcome::OfficerLane);
    let Some(Reason::OverAllowance { assessment }) = d
        .reasons
        .iter()
        .find(|r| matches!(r, Reason::OverAllowance { .. }))
    else {
        panic!("no over-allowance reason: {:?}", d.reasons);
    };
    assert_eq!(assessment.total_duty_yen, 37_500);
}

#[test]
fn an_expired_passport_goes_to_the_officer_lane() {
    let [l1, l2] = td3(
        "ERIKSSON",
        "ANNA MARIA",
        "L898902C3",
        "UTO",
        "740812",
        'F',
        "250430",
    );
    let mut input = clean_input();
    input.mrz = mrz::parse(&[&l1, &l2]);
    input.chip = None;
    let d = decide(&input, &policy());
    assert_eq!(
        d.reasons,
        vec![Reason::PassportExpired {
            expiry: date!(2025 - 04 - 30)
        }]
    );
}

#[test]
fn wrong_mrz_check_digits_go_to_the_officer_lane() {
    let [l1, l2] = passport();
    let mut bad = l2.into_bytes();
    bad[9] = if bad[9] == b'0' { b'1' } else { b'0' }; // document number check digit
    let bad = String::from_utf8(bad).expect("ascii");
    let mut input = clean_input();
    input.mrz = mrz::parse(&[&l1, &bad]);
    let d = decide(&input, &policy());
    assert_eq!(d.outcome, Outcome::OfficerLane);
    assert!(has(
        &d,
        |r| matches!(r, Reason::MrzInvalid { failed_checks, .. }
        if failed_checks.contains(&CheckedField::DocumentNumber)
            && failed_checks.contains(&CheckedField::Composite))
    ));

    input.mrz = mrz::parse(&[&l1]);
    let d = decide(&input, &policy());
    assert!(has(&d, |r| matches!(r, Reason::MrzUnreadable { .. })));
}

#[test]
fn mrz_qr_and_chip_disagreements_name_the_fields() {
    // The zone belongs to someone else (another number and birth date), correctly check-digited.
    let [l1, l2] = td3(
        "ERIKSSON",
        "ANNA MARIA",
        "X12345678",
        "UTO",
        "750101",
        'F',
        "340415",
    );
    let mut input = clean_input();
    input.mrz = mrz::parse(&[&l1, &l2]);
    let d = decide(&input, &policy());
    assert_eq!(d.outcome, Outcome::OfficerLane);
    let Some(Reason::DataMismatch { fields }) = d
        .reasons
        .iter()
        .find(|r| matches!(r, Reason::DataMismatch { .. }))
    else {
        panic!("no mismatch: {:?}", d.reasons);
    };
    let names: Vec<ComparedField> = fields.iter().map(|f| f.field).collect();
    assert_eq!(
        names,
        vec![ComparedField::DocumentNumber, ComparedField::DateOfBirth]
    );
    assert_eq!(fields[0].mrz.as_deref(), Some("X12345678"));
    assert_eq!(fields[0].qr.as_deref(), Some("L898902C3"));

    // Chip alone disagreeing on the expiry and sex.
    let mut input = clean_input();
    if let Some(chip) = input.chip.as_mut() {
        chip.date_of_expiry = date!(2033 - 01 - 01);
        chip.sex = Some(mizugiwa_gate_edge::mrz::Sex::Male);
    }
    let d = decide(&input, &policy());
    let Some(Reason::DataMismatch { fields }) = d
        .reasons
        .iter()
        .find(|r| matches!(r, Reason::DataMismatch { .. }))
    else {
        panic!("no mismatch: {:?}", d.reasons);
    };
    let names: Vec<ComparedField> = fields.iter().map(|f| f.field).collect();
    assert_eq!(names, vec![ComparedField::Sex, ComparedField::DateOfExpiry]);
}

#[test]
fn names_agree_across_case_and_punctuation() {
    let mut decl = declaration();
    decl.given_names = "anna-maria".into();
    let mut input = clean_input();
    input.verification = verify(&issue(&decl));
    assert_eq!(decide(&input, &policy()).outcome, Outcome::Open);
}

#[test]
fn face_score_watchlist_and_random_selection() {
    let mut input = clean_input();
    input.face_match_score = Some(0.5);
    let d = decide(&input, &policy());
    assert_eq!(
        d.reasons,
        vec![Reason::FaceMatchBelowThreshold {
            score: 0.5,
            threshold: policy().face_match_threshold
        }]
    );
    input.face_match_score = Some(f64::NAN);
    assert_eq!(decide(&input, &policy()).outcome, Outcome::OfficerLane);
    input.face_match_score = None;
    assert_eq!(
        decide(&input, &policy()).reasons,
        vec![Reason::FaceMatchMissing]
    );

    let mut input = clean_input();
    input.watchlist_hit = true;
    assert_eq!(
        decide(&input, &policy()).reasons,
        vec![Reason::WatchlistHit]
    );
    let listed = Policy {
        watchlist: ["l898902c3".to_string()].into(),
        ..policy()
    };
    assert_eq!(
        decide(&clean_input(), &listed).reasons,
        vec![Reason::WatchlistHit]
    );

    let always = Policy {
        random_selection_rate: 1.0,
        ..policy()
    };
    assert_eq!(
        decide(&clean_input(), &always).reasons,
        vec![Reason::RandomSelection { rate: 1.0 }]
    );
}

#[test]
fn a_missing_chip_counts_only_when_required() {
    let mut input = clean_input();
    input.chip = None;
    assert_eq!(decide(&input, &policy()).outcome, Outcome::Open);
    let strict = Policy {
        require_chip: true,
        ..policy()
    };
    assert_eq!(decide(&input, &strict).reasons, vec![Reason::ChipMissing]);
}

#[test]
fn all_reasons_are_listed_together() {
    let mut input = clean_input();
    input.replay_seen = true;
    input.watchlist_hit = true;
    input.face_match_score = Some(0.1);
    let d = decide(&input, &policy());
    assert_eq!(d.reasons.len(), 3, "{:?}", d.reasons);
}
