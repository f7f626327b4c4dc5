//! Gate decisions per second on one core, signature verification included, against the bare
//! Ed25519 verification as the anchor (measured in the same run).
//!
//! One "full decision" is what a gate does per passenger: base45 → zlib → CBOR (strict) →
//! COSE_Sign1 → Ed25519 verify → declaration decode → MRZ parse with every check digit →
//! allowance assessment → decide. Run: `cargo bench -p mizugiwa-gate-edge --bench decide`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use mizugiwa_gate_edge::allowance::{GoodsCategory, GoodsItem};
use mizugiwa_gate_edge::decision::{decide, GateInput, Policy};
use mizugiwa_gate_edge::declaration;
use mizugiwa_gate_edge::mrz;
use mizugiwa_gate_edge::qr::{self, VerifyPolicy};
use mizugiwa_gate_edge::trust::{RevocationList, SigningKey, TrustList, TrustedKey};
use time::macros::datetime;

const L1: &str = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<";

struct Fixture {
    text: String,
    l2: String,
    trust: TrustList,
    revocations: RevocationList,
    policy: Policy,
    verify_policy: VerifyPolicy,
    key: SigningKey,
    tbs: Vec<u8>,
    signature: Vec<u8>,
}

fn fixture() -> Fixture {
    let mut decl = declaration::example();
    // A typical returning traveller: some alcohol, cigarettes, perfume and shopping.
    decl.goods = vec![
        GoodsItem::new(GoodsCategory::WhiskyBrandy, "whisky", 2, 8_000).with_volume_ml(700),
        GoodsItem::new(GoodsCategory::WineBeerOther, "wine", 2, 3_000).with_volume_ml(750),
        GoodsItem::new(GoodsCategory::Cigarettes, "cigarettes", 200, 30),
        GoodsItem::new(GoodsCategory::Perfume, "perfume", 1, 12_000).with_volume_ml(50),
        GoodsItem::new(GoodsCategory::General, "handbag", 1, 120_000),
        GoodsItem::new(GoodsCategory::General, "necktie", 3, 3_000),
        GoodsItem::new(GoodsCategory::TariffFree, "watch", 1, 90_000),
    ];
    let key = SigningKey::ed25519_from_seed([5; 32]);
    let text = qr::issue(&decl, &key, "NRT-1").expect("issue");
    let now = datetime!(2025-05-01 08:00 UTC);
    let mut trust = TrustList::new(now);
    trust.insert("NRT-1", TrustedKey::new(key.public_key()));
    let mrz_number = "L898902C36UTO7408122F";
    // Expiry 2034-04-15 with recomputed check digits.
    let expiry = "340415";
    let body = format!(
        "{mrz_number}{expiry}{}ZE184226B<<<<<1",
        mrz::check_digit(expiry).unwrap_or(0)
    );
    let composite = format!("{}{}{}", &body[0..10], &body[13..20], &body[21..43]);
    let l2 = format!("{body}{}", mrz::check_digit(&composite).unwrap_or(0));
    // The anchor signs a message as long as the COSE Sig_structure the gate verifies.
    let tbs = vec![0xA5u8; declaration::example().to_cbor().len() + 40];
    let signature = key.sign(&tbs);
    Fixture {
        text,
        l2,
        trust,
        revocations: RevocationList::new(now),
        policy: Policy::default(),
        verify_policy: VerifyPolicy::default(),
        key,
        tbs,
        signature,
    }
}

const NOW: time::OffsetDateTime = datetime!(2025-05-01 08:00 UTC);

fn full_decision(f: &Fixture, seed: u64) -> bool {
    let verification = qr::verify(&f.text, &f.trust, &f.revocations, NOW, &f.verify_policy);
    let input = GateInput {
        verification,
        mrz: mrz::parse(&[L1, &f.l2]),
        chip: None,
        face_match_score: Some(0.91),
        watchlist_hit: false,
        replay_seen: false,
        now: NOW,
        seed,
    };
    let d = decide(&input, &f.policy);
    d.decision_function_version.is_empty()
}

fn anchor(f: &Fixture) -> bool {
    f.key.public_key().verify(&f.tbs, &f.signature)
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    assert!(anchor(&f));
    assert!(qr::verify(&f.text, &f.trust, &f.revocations, NOW, &f.verify_policy).is_ok());
    assert!(mrz::parse(&[L1, &f.l2]).map(|r| r.valid).unwrap_or(false));

    let mut g = c.benchmark_group("gate");
    g.throughput(Throughput::Elements(1));
    let mut seed = 0u64;
    g.bench_function("full_decision", |b| {
        b.iter(|| {
            seed = seed.wrapping_add(1);
            black_box(full_decision(black_box(&f), seed))
        })
    });
    g.bench_function("ed25519_verify_anchor", |b| {
        b.iter(|| black_box(anchor(black_box(&f))))
    });
    g.bench_function("qr_verify_only", |b| {
        b.iter(|| {
            black_box(qr::verify(&f.text, &f.trust, &f.revocations, NOW, &f.verify_policy).is_ok())
        })
    });
    g.bench_function("mrz_parse_only", |b| {
        b.iter(|| black_box(mrz::parse(&[L1, black_box(&f.l2)]).is_ok()))
    });
    g.finish();
}

criterion_group!(benches, bench);

/// Count how many times `f` runs in `window` on this thread.
fn rate(window: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < window {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();

    // The headline numbers, measured back to back on this thread (one core).
    let f = fixture();
    let window = Duration::from_secs(3);
    let mut seed = 0u64;
    let decisions = rate(window, || {
        seed = seed.wrapping_add(1);
        black_box(full_decision(black_box(&f), seed));
    });
    let verifies = rate(window, || {
        black_box(anchor(black_box(&f)));
    });
    println!();
    println!("full decisions per second (one core): {decisions:.0}  (target >= 5000)");
    println!("bare Ed25519 verifications per second: {verifies:.0}");
    println!(
        "ratio: a full decision costs {:.2} Ed25519 verifications; {:.0}% of its time is the verification",
        verifies / decisions,
        100.0 * decisions / verifies
    );
}
