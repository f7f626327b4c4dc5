//! Fuzzing with proptest: the QR decoder and the MRZ parser never panic, whatever they read.

mod common;

use common::*;
use mizugiwa_gate_edge::decision::{decide, GateInput};
use mizugiwa_gate_edge::{mrz, qr};
use proptest::prelude::*;

/// The base45 alphabet, so generated texts get past the first layers.
const BASE45: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

fn base45_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(BASE45.chars().collect::<Vec<_>>()),
        0..max,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

fn mrz_chars(len: usize) -> impl Strategy<Value = String> {
    let alphabet: Vec<char> = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<<<<<<"
        .chars()
        .collect();
    proptest::collection::vec(proptest::sample::select(alphabet), len..=len)
        .prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn verify_never_panics_on_arbitrary_text(text in ".{0,300}") {
        let _ = verify(&text);
    }

    #[test]
    fn verify_never_panics_on_prefixed_base45(body in base45_text(600)) {
        let _ = verify(&format!("MZ1:{body}"));
    }

    #[test]
    fn verify_never_panics_on_arbitrary_cose_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        // Valid transport layers around random bytes: exercises the CBOR and COSE layers.
        let _ = verify(&qr::encode_transport(&bytes));
    }

    #[test]
    fn mutated_qr_texts_never_panic_and_never_verify_with_a_changed_payload(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), proptest::sample::select(BASE45.chars().collect::<Vec<_>>()), 0u8..3), 1..4)
    ) {
        let original = issue(&declaration());
        let mut chars: Vec<char> = original.chars().collect();
        for (at, c, op) in edits {
            let i = 4 + at.index(chars.len() - 4);
            match op {
                0 => chars[i] = c,
                1 => chars.insert(i, c),
                _ => { chars.remove(i); }
            }
        }
        let text: String = chars.into_iter().collect();
        if let Ok(v) = verify(&text) {
            // Base45 has a little slack; anything that still verifies must be the original.
            prop_assert_eq!(v.declaration, declaration());
        }
    }

    #[test]
    fn mutated_cose_bytes_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut cose = qr::decode_transport(&issue(&declaration())).expect("decode");
        for (at, x) in flips {
            let i = at.index(cose.len());
            cose[i] ^= x | 1;
        }
        let r = verify(&qr::encode_transport(&cose));
        prop_assert!(r.is_err(), "a changed COSE structure must not verify");
        let mut input = clean_input();
        input.verification = r;
        let _ = decide(&input, &policy());
    }

    #[test]
    fn mrz_parse_never_panics_on_arbitrary_lines(lines in proptest::collection::vec(".{0,60}", 0..5)) {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let _ = mrz::parse(&refs);
        let _ = mrz::parse_text(&lines.join("\n"));
    }

    #[test]
    fn mrz_parse_never_panics_on_well_shaped_zones(
        td3 in (mrz_chars(44), mrz_chars(44)),
        td1 in (mrz_chars(30), mrz_chars(30), mrz_chars(30)),
    ) {
        if let Ok(r) = mrz::parse(&[&td3.0, &td3.1]) {
            prop_assert_eq!(r.checks.len(), 5);
            let _ = r.birth_date(time::macros::date!(2025 - 01 - 01));
            let _ = r.expiry_date();
        }
        if let Ok(r) = mrz::parse(&[&td1.0, &td1.1, &td1.2]) {
            prop_assert_eq!(r.checks.len(), 4);
            let _ = r.birth_date(time::macros::date!(2025 - 01 - 01));
        }
    }

    #[test]
    fn any_single_digit_change_in_the_mrz_is_caught(pos in 0usize..44, c in proptest::sample::select("0123456789".chars().collect::<Vec<_>>())) {
        // Weights 7, 3, 1 are coprime to 10, so changing one digit to another always changes
        // the check digit. (Letters can collide: 'K' is 20, which weight 3 or 7 can turn into a
        // multiple of 10; that is a known limit of the ICAO scheme, not tested here.)
        let [l1, l2] = passport();
        let mut bytes = l2.clone().into_bytes();
        prop_assume!(bytes[pos].is_ascii_digit() && char::from(bytes[pos]) != c);
        bytes[pos] = c as u8;
        let altered = String::from_utf8(bytes).expect("ascii");
        let r = mrz::parse(&[&l1, &altered]).expect("well-shaped");
        prop_assert!(!r.valid, "change at {} to {} went unnoticed", pos, c);
    }

    #[test]
    fn decide_never_panics_on_odd_scores_and_times(score in proptest::option::of(any::<f64>()), secs in -4_000_000_000i64..4_000_000_000i64, seed in any::<u64>()) {
        let mut input: GateInput = clean_input();
        input.face_match_score = score;
        if let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) { input.now = t; }
        input.seed = seed;
        let _ = decide(&input, &policy());
    }
}
