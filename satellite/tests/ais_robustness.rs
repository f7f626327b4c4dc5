//! Radio garbage never panics the decoder, never grows it without bound, and a refused line
//! changes nothing.
//!
//! Fuzzing without cargo-fuzz: proptest feeds arbitrary text and bytes, real sentences with
//! random mutations (with the checksum recomputed, so the mutation reaches the payload decoder
//! instead of stopping at the checksum), random well-formed sentences of every shape, and long
//! random sequences of all of these through one decoder and one track store. A deterministic
//! sweep truncates every corpus sentence at every length with every fill-bit count.

use mizugiwa_satellite::ais::nmea::checksum;
use mizugiwa_satellite::ais::{AisError, AssemblerConfig, Decoder, TrackConfig, Tracks};
use proptest::prelude::*;

const CORPUS: &str = concat!(
    include_str!("../testdata/ais/libais-tagblock.nmea"),
    include_str!("../testdata/ais/libais-typeexamples.nmea"),
    include_str!("../testdata/ais/libais-test.aivdm"),
    include_str!("../testdata/ais/pyais-nmea_data_sample.txt"),
);

/// The corpus lines that are sentences.
fn sentences() -> Vec<&'static str> {
    CORPUS
        .lines()
        .filter(|l| l.contains("VDM") || l.contains("VDO"))
        .collect()
}

/// `!{body}*hh` with a correct checksum.
fn with_checksum(body: &str) -> String {
    format!("!{body}*{:02X}", checksum(body.as_bytes()))
}

/// The body (between `!` and `*`) of a sentence line, if it has one.
fn body(line: &str) -> Option<&str> {
    let start = line.find('!')? + 1;
    let end = start + line[start..].find('*')?;
    Some(&line[start..end])
}

const ARMOR: &[u8] = b"0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVW`abcdefghijklmnopqrstuvw";

fn small_decoder() -> Decoder {
    Decoder::with_config(AssemblerConfig {
        timeout_ms: 500,
        max_pending: 4,
    })
}

fn small_tracks() -> Tracks {
    Tracks::new(TrackConfig {
        history_len: 8,
        max_vessels: 16,
    })
}

/// Feeds a line and checks the invariants that hold whatever the line is.
fn feed(decoder: &mut Decoder, tracks: &mut Tracks, line: &str, now_ms: i64) {
    // Expiry is the one change time makes on its own; apply it first so that what is compared
    // below is the effect of the line alone.
    decoder.expire(now_ms);
    let pending_before = decoder.pending_groups();
    let stats_before = decoder.stats();
    match decoder.feed_line(line, now_ms) {
        Ok(Some(report)) => {
            assert!(report.message.mmsi() < 1 << 30);
            assert!(!report.sentences.is_empty() && report.sentences.len() <= 9);
            if let Some(p) = report.message.position() {
                assert!(p.lat.abs() <= 90.0 && p.lon.abs() <= 180.0);
            }
            tracks.update(&report);
        }
        Ok(None) => {}
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(e.to_string().len() < 200, "bounded message: {e}");
            // A refused line changes nothing, except that a line completing a message whose
            // payload then fails to decode has used up its fragment group.
            let payload_refused = matches!(
                e,
                AisError::UnsupportedType(_)
                    | AisError::Truncated { .. }
                    | AisError::BadField { .. }
            );
            if payload_refused && decoder.stats() != stats_before {
                assert_eq!(decoder.stats().completed, stats_before.completed + 1);
                assert!(pending_before - decoder.pending_groups() <= 1);
            } else {
                assert_eq!(decoder.stats(), stats_before, "{line:?}: {e}");
                assert_eq!(decoder.pending_groups(), pending_before, "{line:?}: {e}");
            }
        }
    }
    assert!(decoder.pending_groups() <= 4);
    assert!(tracks.len() <= 16);
    for track in tracks.iter() {
        assert!(track.fixes().len() <= 8);
        let times: Vec<i64> = track.fixes().map(|f| f.time_ms).collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "history in time order"
        );
    }
}

/// A mutation of a sentence body.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, char),
    Insert(usize, char),
    Delete(usize),
    Truncate(usize),
    SwapFields(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let any_char = prop_oneof![
        4 => proptest::sample::select(ARMOR.to_vec()).prop_map(char::from),
        2 => proptest::sample::select(b",*!\\:-0123456789AB".to_vec()).prop_map(char::from),
        1 => any::<char>(),
    ];
    prop_oneof![
        (any::<usize>(), any_char.clone()).prop_map(|(i, c)| Mutation::Replace(i, c)),
        (any::<usize>(), any_char).prop_map(|(i, c)| Mutation::Insert(i, c)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapFields(a, b)),
    ]
}

fn apply(body: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = body.chars().collect();
    for m in mutations {
        let n = chars.len().max(1);
        match *m {
            Mutation::Replace(i, c) => {
                if let Some(slot) = chars.get_mut(i % n) {
                    *slot = c;
                }
            }
            Mutation::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
            Mutation::Delete(i) => {
                if !chars.is_empty() {
                    chars.remove(i % chars.len());
                }
            }
            Mutation::Truncate(i) => chars.truncate(i % n),
            Mutation::SwapFields(a, b) => {
                let s: String = chars.iter().collect();
                let mut fields: Vec<&str> = s.split(',').collect();
                let len = fields.len();
                fields.swap(a % len, b % len);
                chars = fields.join(",").chars().collect();
            }
        }
    }
    chars.into_iter().collect()
}

/// A well-formed sentence of random shape: any fragment numbers, sequence id, channel, payload
/// (from the armoring alphabet) and fill bits, with a correct checksum, sometimes a tag block.
fn random_sentence() -> impl Strategy<Value = String> {
    (
        0u8..=10,
        0u8..=10,
        proptest::option::of(0u8..=9),
        proptest::sample::select(vec!["", "A", "B", "1", "2"]),
        proptest::collection::vec(proptest::sample::select(ARMOR.to_vec()), 0..90),
        0u8..=7,
        proptest::option::of((any::<u32>(), "[a-zA-Z0-9]{0,12}")),
    )
        .prop_map(|(count, number, seq, channel, payload, fill, tags)| {
            let payload = String::from_utf8(payload).unwrap_or_default();
            let seq = seq.map(|s| s.to_string()).unwrap_or_default();
            let sentence = with_checksum(&format!(
                "AIVDM,{count},{number},{seq},{channel},{payload},{fill}"
            ));
            match tags {
                Some((time, source)) => {
                    let tag = format!("s:{source},c:{time}");
                    format!("\\{tag}*{:02X}\\{sentence}", checksum(tag.as_bytes()))
                }
                None => sentence,
            }
        })
}

/// Any line at all, biased towards ones that get past the first checks.
fn any_line() -> impl Strategy<Value = String> {
    let corpus = sentences();
    let mutated = (
        proptest::sample::select(corpus.clone()),
        proptest::collection::vec(mutation(), 1..4),
        any::<bool>(),
    )
        .prop_map(|(line, mutations, fix_checksum)| {
            let body = body(line).unwrap_or(line);
            let mutated = apply(body, &mutations);
            if fix_checksum {
                with_checksum(&mutated)
            } else {
                format!("!{mutated}*00")
            }
        });
    prop_oneof![
        3 => proptest::sample::select(corpus).prop_map(str::to_owned),
        4 => mutated,
        3 => random_sentence(),
        1 => any::<String>(),
        1 => proptest::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// Cases per property: `default`, or `PROPTEST_CASES` for a long fuzzing run, e.g.
/// `PROPTEST_CASES=200000 cargo test --release -p mizugiwa-satellite --test ais_robustness`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(3000), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(line in any::<String>()) {
        feed(&mut small_decoder(), &mut small_tracks(), &line, 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let line = String::from_utf8_lossy(&bytes);
        feed(&mut small_decoder(), &mut small_tracks(), &line, 0);
    }

    #[test]
    fn mutated_real_sentences_never_panic(
        line in proptest::sample::select(sentences()),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let body = body(line).unwrap_or(line);
        let mutated = with_checksum(&apply(body, &mutations));
        feed(&mut small_decoder(), &mut small_tracks(), &mutated, 0);
    }

    #[test]
    fn random_well_formed_sentences_never_panic(line in random_sentence()) {
        feed(&mut small_decoder(), &mut small_tracks(), &line, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300), ..ProptestConfig::default() })]

    /// Long streams through one decoder and one track store, with time jumping about.
    #[test]
    fn streams_keep_every_bound(
        lines in proptest::collection::vec((any_line(), -1000i64..3000), 1..120),
    ) {
        let mut decoder = small_decoder();
        let mut tracks = small_tracks();
        let mut now = 1_700_000_000_000i64;
        for (line, step) in &lines {
            now += step;
            feed(&mut decoder, &mut tracks, line, now);
        }
    }
}

#[test]
fn every_truncation_and_fill_of_every_corpus_sentence_is_safe() {
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    for line in sentences() {
        let Some(body) = body(line) else { continue };
        let fields: Vec<&str> = body.split(',').collect();
        let [talker, count, number, seq, channel, payload, _fill] = fields[..] else {
            continue;
        };
        for end in 0..=payload.len() {
            for fill in 0..=7 {
                let truncated = with_checksum(&format!(
                    "{talker},{count},{number},{seq},{channel},{},{fill}",
                    &payload[..end]
                ));
                let mut decoder = small_decoder();
                let kind = match decoder.feed_line(&truncated, 0) {
                    Ok(Some(_)) => "decoded",
                    Ok(None) => "pending",
                    Err(e) => e.kind(),
                };
                *outcomes.entry(kind).or_default() += 1;
            }
        }
    }
    eprintln!("{outcomes:?}");
    for kind in outcomes.keys() {
        assert!(
            [
                "decoded",
                "pending",
                "truncated",
                "empty_payload",
                "bad_fill_bits",
                "unsupported_type",
                "bad_field",
                // second fragments, fed to a fresh decoder
                "bad_fragment_sequence",
            ]
            .contains(kind),
            "unexpected outcome {kind}: {outcomes:?}"
        );
    }
    assert!(outcomes["truncated"] > 10_000, "{outcomes:?}");
}

#[test]
fn a_refused_line_between_fragments_changes_nothing() {
    let first = "!AIVDM,2,1,3,B,55NBjP01mtGIL@CW;SM<D60P5Ld000000000000P0`<3557l0<50@kk@,0*66";
    let second = "!AIVDM,2,2,3,B,K5h@00000000000,2*72";
    let garbage = [
        "!AIVDM,2,2,3,B,K5h@00000000000,2*73",  // bad checksum
        "!AIVDM,2,2,4,B,K5h@00000000000,2*75",  // another group's second half
        "!AIVDM,2,2,3,B,K5h@0000000000x,2*0A",  // bad payload character
        "!AIVDM,2,1,3,B,55NBjP01mtGIL@CW,3*1A", // fill bits on a first fragment
        "\\c:abc*00\\!AIVDM,1,1,,B,1,0*1E",     // broken tag block
        "$GPGGA,092750.000,5321.6802,N*76",     // not AIS
        "",
    ];
    let mut decoder = Decoder::new();
    assert!(decoder.feed_line(first, 0).unwrap().is_none());
    for (i, line) in garbage.iter().enumerate() {
        assert!(decoder.feed_line(line, i as i64).is_err(), "{line}");
        assert_eq!(decoder.pending_groups(), 1, "after {line}");
    }
    let report = decoder.feed_line(second, 10).unwrap().expect("completed");
    assert_eq!(report.message.mmsi(), 367_309_440);
}

#[test]
fn errors_name_what_was_wrong() {
    let mut d = Decoder::new();
    let good = "AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0";
    let cases = [
        (format!("!{good}*5D"), "bad_checksum"),
        (format!("!{good}"), "missing_checksum"),
        (
            with_checksum("AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,6"),
            "bad_fill_bits",
        ),
        (
            with_checksum("AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00,0"),
            "truncated",
        ),
        (
            with_checksum("AIVDM,1,1,,B,85M67FC000G?ufbE`FepT@3n00Sa,0"),
            "unsupported_type",
        ),
        (
            with_checksum("AIVDM,2,2,7,B,15M67FC000G?ufbE`FepT@3n00Sa,0"),
            "bad_fragment_sequence",
        ),
        (
            with_checksum("AIVDM,1,2,,B,15M67FC000G?ufbE`FepT@3n00Sa,0"),
            "bad_fragment_sequence",
        ),
        (
            with_checksum("AIVDM,1,1,,B,15M67FC0x0G?ufbE`FepT@3n00Sa,0"),
            "bad_payload_char",
        ),
        (
            with_checksum("AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa"),
            "bad_field_count",
        ),
        (
            with_checksum("AIVDM,1,1,,BB,15M67FC000G?ufbE`FepT@3n00Sa,0"),
            "bad_field",
        ),
        (with_checksum("AIVDM,1,1,,B,,0"), "empty_payload"),
        (
            with_checksum("AIALR,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0"),
            "unsupported_sentence",
        ),
        (format!("\\s:x*00\\!{good}*5C"), "bad_checksum"),
        (format!("\\s:x!{good}*5C"), "bad_tag_block"),
        ("no sentence here".to_owned(), "not_a_sentence"),
        ("  ".to_owned(), "empty"),
        ("!".repeat(2000), "line_too_long"),
    ];
    for (line, kind) in cases {
        let err = d.feed_line(&line, 0).expect_err(&line);
        assert_eq!(err.kind(), kind, "{line}: {err}");
    }
}
