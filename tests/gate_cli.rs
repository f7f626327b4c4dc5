//! `mizugiwa gate ...` end to end: keys, issue, verify (open and each refusal), mrz, allowance,
//! run as the operator runs them, exit codes included.

use std::path::Path;
use std::process::{Command, Output};

use mizugiwa_gate_edge::{qr, trust::PublicKeyFile};
use serde_json::Value;

const KID: &str = "NRT-TEST-1";
const ISSUED: &str = "2025-05-01T09:00:00Z";
const DECIDED: &str = "2025-05-01T10:00:00Z";

fn gate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mizugiwa"))
        .arg("gate")
        .args(args)
        .output()
        .expect("run mizugiwa")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {:?} stderr {:?}", stdout(o), stderr(o)))
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The TD3 zone of the example declaration's passport (Anna Maria Eriksson, L898902C3, born
/// 1974-08-12), valid until 2035, with every check digit computed.
fn example_passport_zone() -> [String; 2] {
    mizugiwa_gate_edge::declaration::example_mrz()
}

/// Each reason as `reason`, or `reason/error.reason` for a failed verification.
fn reasons(decision: &Value) -> Vec<String> {
    decision["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| match r["error"]["reason"].as_str() {
            Some(e) => format!("{}/{e}", r["reason"].as_str().unwrap_or("?")),
            None => r["reason"].as_str().unwrap_or("?").to_string(),
        })
        .collect()
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A key pair in keys/, its public half in trust/, and a policy without random selection.
    fn new(alg: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        let out = gate(&[
            "keys",
            "new",
            "--kid",
            KID,
            "--out",
            path(&keys),
            "--alg",
            alg,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::create_dir(dir.path().join("trust")).expect("trust dir");
        std::fs::copy(
            keys.join(format!("{KID}.pub")),
            dir.path().join("trust").join(format!("{KID}.pub")),
        )
        .expect("publish the key");
        std::fs::write(
            dir.path().join("policy.toml"),
            "version = \"test-1\"\nrandom_selection_rate = 0.0\n",
        )
        .expect("policy");
        Fixture { dir }
    }

    fn p(&self, name: &str) -> String {
        path(&self.dir.path().join(name)).to_string()
    }

    fn issue(&self) -> String {
        let out = gate(&[
            "issue",
            "--key",
            &self.p(&format!("keys/{KID}.key")),
            "--kid",
            KID,
            "--example",
            "--now",
            ISSUED,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    }

    /// `gate verify` with the example passport, a good face score and the test policy.
    fn verify(&self, qr_text: &str) -> Output {
        let [l1, l2] = example_passport_zone();
        gate(&[
            "verify",
            qr_text,
            "--trust",
            &self.p("trust"),
            "--mrz",
            &l1,
            "--mrz",
            &l2,
            "--face",
            "0.93",
            "--policy",
            &self.p("policy.toml"),
            "--now",
            DECIDED,
        ])
    }
}

#[test]
fn keys_new_writes_a_private_pem_and_a_public_pem_gates_can_parse() {
    let f = Fixture::new("EdDSA");
    let key = f.dir.path().join(format!("keys/{KID}.key"));
    let key_text = std::fs::read_to_string(&key).expect("key");
    assert!(key_text.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "signing key mode {mode:o}");
    }
    let pub_text = std::fs::read_to_string(f.p(&format!("keys/{KID}.pub"))).expect("pub");
    let file = PublicKeyFile::parse(&pub_text).expect("the .pub file parses as gates parse it");
    assert_eq!(file.algorithm().to_string(), "EdDSA");

    // `keys show` names the same key from either file.
    let fingerprint = file.fingerprint().expect("fingerprint");
    for name in [format!("keys/{KID}.pub"), format!("keys/{KID}.key")] {
        let out = gate(&["keys", "show", &f.p(&name)]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains(&format!("kid:         {KID}")), "{text}");
        assert!(text.contains("alg:         EdDSA"), "{text}");
        assert!(text.contains(&fingerprint), "{text}");
    }

    // A key id names one key for good: no overwriting, and no invalid ids.
    let again = gate(&["keys", "new", "--kid", KID, "--out", &f.p("keys")]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    let bad = gate(&["keys", "new", "--kid", "no spaces", "--out", &f.p("keys")]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(&key).expect("key"),
        key_text,
        "untouched"
    );
}

#[test]
fn issue_then_verify_opens_the_gate_and_every_refusal_goes_to_the_officer() {
    let f = Fixture::new("EdDSA");
    let png = f.p("qr.png");
    let out = gate(&[
        "issue",
        "--key",
        &f.p(&format!("keys/{KID}.key")),
        "--kid",
        KID,
        "--example",
        "--png",
        &png,
        "--now",
        ISSUED,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out).trim().to_string();
    assert!(text.starts_with("MZ1:"), "{text}");
    let image = std::fs::read(&png).expect("png written");
    assert_eq!(&image[..8], b"\x89PNG\r\n\x1a\n");

    // The round trip: the gate opens, exit 0.
    let out = f.verify(&text);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let d = json(&out);
    assert_eq!(d["outcome"], "open", "{d:#}");
    assert_eq!(d["policy_version"], "test-1");
    assert!(d["declaration_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("EX-20250501T090000")));

    // One byte of the signature altered: officer lane, exit 2, the decision still printed.
    let mut cose = qr::decode_transport(&text).expect("decode");
    *cose.last_mut().expect("bytes") ^= 0x01;
    let out = f.verify(&qr::encode_transport(&cose));
    assert_eq!(out.status.code(), Some(2));
    let d = json(&out);
    assert_eq!(d["outcome"], "officer_lane");
    assert_eq!(reasons(&d), ["verification_failed/bad_signature"], "{d:#}");
    // One character of the text altered: refused too, whichever layer notices first.
    let mut chars: Vec<char> = text.chars().collect();
    chars[60] = if chars[60] == 'A' { 'B' } else { 'A' };
    let out = f.verify(&chars.into_iter().collect::<String>());
    assert_eq!(out.status.code(), Some(2));
    let r = reasons(&json(&out));
    assert!(
        r.len() == 1 && r[0].starts_with("verification_failed/"),
        "{r:?}"
    );

    // The key's file removed from the trust folder: unknown key id.
    let published = f.p(&format!("trust/{KID}.pub"));
    let saved = std::fs::read(&published).expect("pub");
    std::fs::remove_file(&published).expect("remove");
    let out = f.verify(&text);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(reasons(&json(&out)), ["verification_failed/unknown_key_id"]);
    std::fs::write(&published, saved).expect("restore");

    // The key id in revoked.txt (with a reason and a comment): revoked.
    std::fs::write(
        f.p("trust/revoked.txt"),
        format!("# revoked keys\n{KID} key leaked  # ticket 42\n"),
    )
    .expect("revoked.txt");
    let out = f.verify(&text);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(reasons(&json(&out)), ["verification_failed/revoked_key_id"]);
    std::fs::remove_file(f.p("trust/revoked.txt")).expect("unrevoke");

    // Without a face score or a passport zone the gate does not guess.
    let out = gate(&[
        "verify",
        &text,
        "--trust",
        &f.p("trust"),
        "--policy",
        &f.p("policy.toml"),
        "--now",
        DECIDED,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let r = reasons(&json(&out));
    assert!(r.contains(&"mrz_unreadable".to_string()), "{r:?}");
    assert!(r.contains(&"face_match_missing".to_string()), "{r:?}");
}

#[test]
fn es256_keys_issue_and_verify_too() {
    let f = Fixture::new("ES256");
    let text = f.issue();
    let out = f.verify(&text);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(json(&out)["outcome"], "open");
    let show = gate(&["keys", "show", &f.p(&format!("trust/{KID}.pub"))]);
    assert!(
        stdout(&show).contains("alg:         ES256"),
        "{}",
        stdout(&show)
    );
}

#[test]
fn verify_usage_errors_exit_1() {
    let f = Fixture::new("EdDSA");
    let text = f.issue();
    let out = gate(&["verify", &text, "--trust", &f.p("no-such-folder")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    // A misspelt policy setting is an error, not a silent default.
    std::fs::write(
        f.p("bad.toml"),
        "version = \"x\"\nrandom_selection_rat = 0.0\n",
    )
    .unwrap();
    let out = gate(&[
        "verify",
        &text,
        "--trust",
        &f.p("trust"),
        "--policy",
        &f.p("bad.toml"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("random_selection_rat"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn mrz_reports_every_check_digit_and_fails_on_a_wrong_one() {
    let line1 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<";
    let out = gate(&["mrz", line1, "L898902C36UTO7408122F1204159ZE184226B<<<<<10"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["valid"], true);
    assert_eq!(report["surname"], "ERIKSSON");
    assert_eq!(report["document_number"], "L898902C3");
    assert_eq!(report["checks"].as_array().map(Vec::len), Some(5));

    // Document number check digit 6 → 5: that check and the composite fail, and are named.
    let out = gate(&["mrz", line1, "L898902C35UTO7408122F1204159ZE184226B<<<<<10"]);
    assert_eq!(out.status.code(), Some(2));
    let report = json(&out);
    assert_eq!(report["valid"], false);
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["valid"] == false)
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert_eq!(failed, ["document_number", "composite"]);
    assert!(stderr(&out).contains("document_number"), "{}", stderr(&out));

    // Not a zone at all: an error, exit 1.
    let out = gate(&["mrz", "P<UTO", "L898"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn allowance_over_the_limit_owes_duty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let goods = dir.path().join("goods.json");
    std::fs::write(
        &goods,
        r#"[
  {"category": "whisky_brandy", "name": "whisky", "quantity": 5, "unit_value_yen": 6000, "volume_ml": 700},
  {"category": "cigarettes", "name": "cigarettes", "quantity": 400, "unit_value_yen": 30},
  {"category": "general", "name": "necktie", "quantity": 2, "unit_value_yen": 4000}
]"#,
    )
    .expect("goods");
    let out = gate(&[
        "allowance",
        path(&goods),
        "--age",
        "35",
        "--date",
        "2025-05-01",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let a = json(&out);
    // 2 bottles of 700 ml at ¥800/l, 200 cigarettes at ¥15: ¥1,120 + ¥3,000.
    assert_eq!(a["total_duty_yen"], 4_120, "{a:#}");
    assert_eq!(a["lines"][0]["taxed_quantity"], 2);
    assert_eq!(a["lines"][2]["duty_yen"], 0);
    assert!(stderr(&out).contains("you owe ¥4120"), "{}", stderr(&out));

    // Under 20: no alcohol or tobacco allowance at all.
    let out = gate(&[
        "allowance",
        path(&goods),
        "--age",
        "19",
        "--date",
        "2025-05-01",
    ]);
    assert!(json(&out)["total_duty_yen"].as_u64() > Some(4_120));
}

#[test]
fn token_prints_a_fresh_token_and_the_hash_the_site_keeps() {
    let a = gate(&["token", "--gate", "t1-gate3"]);
    let b = gate(&["token", "--gate", "t1-gate3"]);
    assert!(a.status.success(), "{}", stderr(&a));
    let (ta, tb) = (stdout(&a).trim().to_owned(), stdout(&b).trim().to_owned());
    assert_ne!(ta, tb, "every token is new");
    assert!(ta.len() >= 64, "{ta}");
    let hash = mizugiwa_field_node::gate::token_hash(&ta);
    assert!(
        stderr(&a).contains(&format!("token_blake3 = \"{hash}\"")),
        "{}",
        stderr(&a)
    );
    assert!(stderr(&a).contains("id = \"t1-gate3\""));
}
