//! `mizugiwa gate`: the airport e-gates from the command line, with `mizugiwa-gate-edge`.
//!
//! * `keys new`, `keys show`: declaration signing keys (`KID.key`, `KID.pub`);
//! * `issue`: sign a declaration and print its QR text (and a PNG);
//! * `verify`: decide on a QR text and a passport as a gate would, offline, from a trust folder;
//! * `mrz`: read a passport zone with every check digit's verdict;
//! * `allowance`: "what do I owe?" for a list of goods.
//!
//! Exit status: 0 when the answer is yes (the gate opens, the zone is valid), 2 when the answer is
//! no but was printed (officer lane, invalid zone), 1 on any other error (bad arguments, files).
//! `main` maps every error to 1, so the "no" answers exit here with [`exit_no`].

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use mizugiwa_command::trust::{read_dir as read_trust_dir, valid_kid};
use mizugiwa_gate_edge::{
    allowance::{self, Assessment, GoodsItem},
    decision::{self, ChipData, GateInput, Outcome, Policy},
    declaration::{self, Declaration},
    mrz,
    qr::{self, VerifyPolicy},
    trust::{PublicKeyFile, RevocationList, SigningKey, TrustList, TrustedKey},
};
use time::{format_description::well_known::Rfc3339, Date, OffsetDateTime};

/// Exit status of a "no" that was printed: officer lane, invalid zone.
const EXIT_NO: i32 = 2;

#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Declaration signing keys: create a key pair, show a key file.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Sign a declaration and print its QR text on stdout (and write it as a PNG).
    Issue(IssueArgs),
    /// Decide on a QR text and a passport as a gate would, offline: prints the decision as JSON.
    ///
    /// The trust folder is read like headquarters publishes it: every KID.pub is a trusted key
    /// (files that do not parse are skipped with a warning), revoked.txt lists revoked key ids
    /// (one per line, a reason after it, `#` starts a comment). The folder is taken as fresh:
    /// both lists count as updated at --now, so their staleness limits never apply here.
    /// Replay is not checked (no store): the declaration ID counts as unused.
    ///
    /// Exit status: 0 the gate opens, 2 officer lane (the decision is printed all the same),
    /// 1 bad arguments or unreadable files.
    Verify(VerifyArgs),
    /// Read a passport zone: its fields and every check digit's verdict as JSON.
    ///
    /// TD3 (passports): 2 lines of 44 characters; TD1 (cards): 3 lines of 30. Quote the lines:
    /// `<` is special to the shell.
    ///
    /// Exit status: 0 valid, 2 read but invalid (a check digit or a date fails; the report is
    /// printed), 1 not readable as a zone at all (line count, length, characters).
    Mrz {
        /// The zone's lines; a single argument may hold them all, separated by newlines.
        #[arg(required = true, num_args = 1..=3, value_name = "LINE")]
        lines: Vec<String>,
    },
    /// "What do I owe?": goods against Japan's duty-free allowances, with the duty per line.
    ///
    /// Prints the assessment as JSON on stdout (each line with the rate and the rules behind
    /// it) and a table on stderr. The duty-free units are chosen in the traveller's favour.
    Allowance(AllowanceArgs),
    /// Make a gate's bearer token: the token (for the gate terminal's config) on stdout, and
    /// the `[[gates.devices]]` entry with its BLAKE3 hash (for site.toml) on stderr. The site
    /// keeps only the hash.
    Token {
        /// The gate's name, e.g. t1-gate3.
        #[arg(long)]
        gate: String,
    },
    /// Check an airport site's decision journal in a replica: the site's certificate against
    /// the CA, every entry's hash, signature and link, nothing missing up to the head, and every
    /// passage in the journal as signed. Prints the report as JSON; exit code 2 unless intact.
    /// Safe beside the running daemon.
    Journal {
        /// Replica database (e.g. headquarters' `data/hq.db`).
        #[arg(long)]
        db: PathBuf,
        /// The deployment's CA certificate.
        #[arg(long)]
        ca: PathBuf,
        /// The airport site.
        #[arg(long)]
        site: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a signing key pair: DIR/KID.key (PKCS#8 PEM, mode 0600; keep it with the issuer)
    /// and DIR/KID.pub (SubjectPublicKeyInfo PEM, `-----BEGIN PUBLIC KEY-----`, and nothing
    /// else; the key id is the file name). Copy KID.pub, never KID.key, into the trust folder
    /// headquarters publishes; gates parse it with `trust::PublicKeyFile::parse`. Existing files
    /// are never overwritten: a key id names one key for good.
    New {
        /// Key id: letters, digits, '-', '_', '.', at most 64 (e.g. NRT-2025-1).
        #[arg(long)]
        kid: String,
        /// Folder for the two files (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Signature algorithm: EdDSA (Ed25519, what declarations are issued with) or ES256.
        #[arg(long, value_enum, ignore_case = true, default_value = "EdDSA")]
        alg: KeyAlg,
    },
    /// Show a key file's key id (its file name), algorithm and fingerprint (SHA-256 of the
    /// SubjectPublicKeyInfo DER, as `openssl pkey -pubin -outform DER | sha256sum` prints).
    /// FILE may be a KID.pub or a KID.key.
    Show { file: PathBuf },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyAlg {
    #[value(name = "EdDSA")]
    EdDsa,
    #[value(name = "ES256")]
    Es256,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["declaration", "example"]))]
pub struct IssueArgs {
    /// The signing key (PKCS#8 PEM, as `gate keys new` writes it).
    #[arg(long, value_name = "DIR/KID.key")]
    key: PathBuf,
    /// The key id to put in the signature header (the name gates know the key by).
    #[arg(long)]
    kid: String,
    /// The declaration as JSON (the fields of gate-edge's `Declaration`; dates `YYYY-MM-DD`,
    /// `issued_at` RFC 3339). `--example --print-declaration` prints one to start from.
    #[arg(long, value_name = "decl.json")]
    declaration: Option<PathBuf>,
    /// Sign the built-in specimen declaration (Anna Maria Eriksson of Utopia, two bottles of
    /// wine and a toy), with a fresh declaration ID, issued now and arriving today.
    #[arg(long)]
    example: bool,
    /// Also write the QR code as a PNG.
    #[arg(long, value_name = "out.png")]
    png: Option<PathBuf>,
    /// Pixels per QR module in the PNG.
    #[arg(long, default_value_t = 6)]
    module_px: u32,
    /// The time to issue --example at (RFC 3339; default: now), for tests and drills.
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    now: Option<OffsetDateTime>,
    /// Print the declaration signed, as JSON, on stderr.
    #[arg(long)]
    print_declaration: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The QR text (`MZ1:...`).
    qr_text: String,
    /// The trust folder: KID.pub files and an optional revoked.txt.
    #[arg(long, value_name = "DIR")]
    trust: PathBuf,
    /// A line of the passport's zone, once per line, in order. Without it the zone counts as
    /// unreadable (officer lane).
    #[arg(long = "mrz", value_name = "LINE")]
    mrz: Vec<String>,
    /// The chip's DG1 fields as JSON: document_number, surname, given_names, nationality,
    /// date_of_birth, date_of_expiry (YYYY-MM-DD), optional sex ("M", "F", "X").
    #[arg(long, value_name = "chip.json")]
    chip: Option<PathBuf>,
    /// The face-match score from the gate camera, 0.0-1.0. Without it: officer lane.
    #[arg(long, value_name = "SCORE")]
    face: Option<f64>,
    /// Decision policy (TOML): `version` (required), and any of face_match_threshold,
    /// random_selection_rate, watchlist, require_chip; a `[verify]` table may set
    /// max_future_skew_secs, max_declaration_age_secs. Unset values keep their defaults
    /// (threshold 0.80, random selection 0.02, skew 300 s, age 7 days).
    #[arg(long, value_name = "policy.toml")]
    policy: Option<PathBuf>,
    /// The time of the decision (RFC 3339; default: now).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    now: Option<OffsetDateTime>,
    /// Seed of the random selection (a gate's is set by its node).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Debug, Args)]
pub struct AllowanceArgs {
    /// The goods: a JSON list of lines, each {"category": "whisky_brandy", "name": "whisky",
    /// "quantity": 4, "unit_value_yen": 5000, "volume_ml": 750} (optional volume_ml, weight_g,
    /// for_child). Categories: whisky_brandy, rum_gin_vodka, liqueur, distilled_spirits,
    /// wine_beer_other, cigarettes, cigars, heated_tobacco, other_tobacco, perfume, general,
    /// tariff_free.
    #[arg(value_name = "GOODS.json")]
    goods: PathBuf,
    /// The traveller's age (under 20: no alcohol or tobacco allowance; under 6: only the
    /// child's own goods).
    #[arg(long, default_value_t = 20)]
    age: u32,
    /// The arrival date, which picks the rules in force (default: today, UTC).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    date: Option<Date>,
}

pub fn run(cmd: GateCommand) -> anyhow::Result<()> {
    match cmd {
        GateCommand::Keys(KeysCommand::New { kid, out, alg }) => keys_new(&kid, &out, alg),
        GateCommand::Keys(KeysCommand::Show { file }) => keys_show(&file),
        GateCommand::Issue(args) => issue(args),
        GateCommand::Verify(args) => verify(args),
        GateCommand::Mrz { lines } => mrz_check(&lines),
        GateCommand::Allowance(args) => allowance(args),
        GateCommand::Journal { db, ca, site } => journal(&db, &ca, &site),
        GateCommand::Token { gate } => {
            let token = mizugiwa_field_node::gate::new_token();
            println!("{token}");
            eprintln!(
                "# in the airport's site.toml:\n[[gates.devices]]\nid = {gate:?}\ntoken_blake3 = \"{}\"",
                mizugiwa_field_node::gate::token_hash(&token)
            );
            Ok(())
        }
    }
}

fn journal(db: &std::path::Path, ca: &std::path::Path, site: &str) -> anyhow::Result<()> {
    let ca = mizugiwa_sync::pki::load_ca(ca)?;
    let store = crate::cli::store::open_reader(db)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let check = mizugiwa_command::gate_journal::check(&store, &ca, site, now)?;
    let intact = check.is_intact();
    let mut out = serde_json::to_value(&check)?;
    out["intact"] = intact.into();
    println!("{}", serde_json::to_string_pretty(&out)?);
    eprintln!(
        "{site}: {} entries verified in {} epoch(s); {} problem(s), {} passage(s) outside the journal, {} altered",
        check.report.verified,
        check.report.epochs.len(),
        check.report.problems.len(),
        check.unjournaled.len(),
        check.altered.len()
    );
    if !intact {
        exit_no();
    }
    Ok(())
}

/// Leave with [`EXIT_NO`] once the answer has been printed.
fn exit_no() -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(EXIT_NO);
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{e} (expected RFC 3339, e.g. 2025-05-01T09:30:00Z)"))
}

fn parse_date(s: &str) -> Result<Date, String> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|e| format!("{e} (expected YYYY-MM-DD)"))
}

fn check_kid(kid: &str) -> anyhow::Result<()> {
    if !valid_kid(kid) {
        bail!("key id {kid:?} is not valid: use letters, digits, '-', '_' and '.', at most 64");
    }
    Ok(())
}

fn read_text(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {what} {}", path.display()))
}

fn keys_new(kid: &str, out: &Path, alg: KeyAlg) -> anyhow::Result<()> {
    check_kid(kid)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let key_path = out.join(format!("{kid}.key"));
    let pub_path = out.join(format!("{kid}.{}", PublicKeyFile::EXTENSION));
    for path in [&key_path, &pub_path] {
        if path.exists() {
            bail!(
                "{} already exists: a key id names one key for good, choose a new one",
                path.display()
            );
        }
    }
    let key = match alg {
        KeyAlg::EdDsa => SigningKey::generate_ed25519(),
        KeyAlg::Es256 => SigningKey::generate_es256(),
    };
    let public = PublicKeyFile::new(key.public_key());
    let public_text = public.to_text()?;
    write_private(&key_path, key.to_pem()?.as_bytes())?;
    std::fs::write(&pub_path, &public_text)
        .with_context(|| format!("writing {}", pub_path.display()))?;
    println!("kid:         {kid}");
    println!("alg:         {}", key.algorithm());
    println!("fingerprint: {}", public.fingerprint()?);
    println!(
        "signing key: {} (mode 0600; keep it with the issuer)",
        key_path.display()
    );
    println!(
        "public key:  {} (publish it in the trust folder)",
        pub_path.display()
    );
    Ok(())
}

/// Create `path` (never overwrite it), readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn keys_show(file: &Path) -> anyhow::Result<()> {
    let text = read_text(file, "key file")?;
    let kid = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (kind, public) = if text.contains("PRIVATE KEY-----") {
        let key =
            SigningKey::from_pem(&text).with_context(|| format!("reading {}", file.display()))?;
        (
            "signing key (PKCS#8 PEM)",
            PublicKeyFile::new(key.public_key()),
        )
    } else {
        let public =
            PublicKeyFile::parse(&text).with_context(|| format!("reading {}", file.display()))?;
        ("public key (SubjectPublicKeyInfo PEM)", public)
    };
    println!("kid:         {kid}");
    println!("alg:         {}", public.algorithm());
    println!("fingerprint: {}", public.fingerprint()?);
    println!("public key:  {}", public.key.to_hex());
    println!("file:        {kind}");
    if !valid_kid(&kid) {
        eprintln!("warning: {kid:?} is not a valid key id; headquarters will not publish it");
    }
    Ok(())
}

fn issue(args: IssueArgs) -> anyhow::Result<()> {
    check_kid(&args.kid)?;
    let key = SigningKey::from_pem(&read_text(&args.key, "signing key")?)
        .with_context(|| format!("reading {}", args.key.display()))?;
    let declaration = match &args.declaration {
        Some(path) => serde_json::from_str::<Declaration>(&read_text(path, "declaration")?)
            .with_context(|| format!("{} is not a declaration", path.display()))?,
        None => {
            let now = args.now.unwrap_or_else(OffsetDateTime::now_utc);
            let mut d = declaration::example();
            d.id = fresh_declaration_id(now)?;
            d.issued_at = now.replace_nanosecond(0)?;
            d.arrival_date = now.date();
            d
        }
    };
    let text = qr::issue(&declaration, &key, &args.kid)?;
    println!("{text}");
    if let Some(png) = &args.png {
        let image = qr::render_png(&text, args.module_px)?;
        std::fs::write(png, image).with_context(|| format!("writing {}", png.display()))?;
    }
    eprintln!(
        "signed declaration {} with {} ({}): {} characters{}",
        declaration.id,
        args.kid,
        key.algorithm(),
        text.len(),
        args.png
            .as_ref()
            .map(|p| format!(", PNG {}", p.display()))
            .unwrap_or_default()
    );
    if args.print_declaration {
        eprintln!("{}", serde_json::to_string_pretty(&declaration)?);
    }
    Ok(())
}

/// `EX-YYYYMMDDTHHMMSS-NNNNNNNNN`: unique enough for test declarations, and obviously one.
fn fresh_declaration_id(now: OffsetDateTime) -> anyhow::Result<String> {
    let stamp = now
        .to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]-[subsecond digits:9]"
        ))?;
    Ok(format!("EX-{stamp}"))
}

fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let now = args.now.unwrap_or_else(OffsetDateTime::now_utc);
    let (policy, verify_policy) = match &args.policy {
        Some(path) => load_policy(path)?,
        None => (Policy::default(), VerifyPolicy::default()),
    };
    let (trust, revocations) = load_trust_folder(&args.trust, now)?;
    let chip = match &args.chip {
        Some(path) => Some(
            serde_json::from_str::<ChipData>(&read_text(path, "chip data")?)
                .with_context(|| format!("{} is not chip DG1 data", path.display()))?,
        ),
        None => None,
    };
    if let Some(score) = args.face {
        if !(0.0..=1.0).contains(&score) {
            bail!("--face {score}: a face-match score is between 0.0 and 1.0");
        }
    }
    let lines: Vec<&str> = args.mrz.iter().map(String::as_str).collect();
    let input = GateInput {
        verification: qr::verify(&args.qr_text, &trust, &revocations, now, &verify_policy),
        mrz: mrz::parse(&lines),
        chip,
        face_match_score: args.face,
        watchlist_hit: false,
        replay_seen: false,
        now,
        seed: args.seed,
    };
    let decision = decision::decide(&input, &policy);
    println!("{}", serde_json::to_string_pretty(&decision)?);
    let reasons: Vec<String> = decision
        .reasons
        .iter()
        .map(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(String::from))
                .unwrap_or_else(|| "?".into())
        })
        .collect();
    match decision.outcome {
        Outcome::Open => {
            eprintln!("open");
            Ok(())
        }
        Outcome::OfficerLane => {
            eprintln!("officer lane: {}", reasons.join(", "));
            exit_no()
        }
    }
}

/// The trust folder as a gate would hold it after a sync at `now`.
fn load_trust_folder(
    dir: &Path,
    now: OffsetDateTime,
) -> anyhow::Result<(TrustList, RevocationList)> {
    if !dir.is_dir() {
        bail!("trust folder {} does not exist", dir.display());
    }
    let mizugiwa_command::trust::TrustFolder {
        keys,
        revoked,
        skipped,
    } = read_trust_dir(dir)?;
    for s in skipped {
        eprintln!("warning: skipped {s}");
    }
    let mut trust = TrustList::new(now);
    for (kid, text) in keys {
        match PublicKeyFile::parse(&text) {
            Ok(file) => trust.insert(kid, TrustedKey::new(file.key)),
            Err(e) => eprintln!(
                "warning: skipped {}: {e}",
                dir.join(format!("{kid}.pub")).display()
            ),
        }
    }
    if trust.keys.is_empty() {
        eprintln!("warning: no trusted key in {}", dir.display());
    }
    let mut revocations = RevocationList::new(now);
    revocations.kids.extend(revoked.into_keys());
    Ok((trust, revocations))
}

/// The decision policy and the verifier's limits from a TOML file, over the defaults.
fn load_policy(path: &Path) -> anyhow::Result<(Policy, VerifyPolicy)> {
    let text = read_text(path, "policy")?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?;
    if !table.contains_key("version") {
        bail!(
            "{}: `version` is required (each decision names its policy)",
            path.display()
        );
    }
    let verify = match table.remove("verify") {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t,
        Some(_) => bail!("{}: `verify` must be a table", path.display()),
    };
    let policy: Policy = overlay(&Policy::default(), table)
        .with_context(|| format!("reading the policy in {}", path.display()))?;
    let verify_policy: VerifyPolicy = overlay(&VerifyPolicy::default(), verify)
        .with_context(|| format!("reading [verify] in {}", path.display()))?;
    if !(0.0..=1.0).contains(&policy.random_selection_rate)
        || !(0.0..=1.0).contains(&policy.face_match_threshold)
    {
        bail!(
            "{}: random_selection_rate and face_match_threshold are between 0.0 and 1.0",
            path.display()
        );
    }
    Ok((policy, verify_policy))
}

/// `defaults` with the values of `set` in their place; a key `defaults` does not have is an
/// error (a misspelt setting must not silently keep its default).
fn overlay<T>(defaults: &T, set: toml::Table) -> anyhow::Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut merged = toml::Table::try_from(defaults)?;
    for (k, v) in set {
        if !merged.contains_key(&k) {
            let known: Vec<&String> = merged.keys().collect();
            bail!("unknown setting `{k}` (known: {known:?})");
        }
        merged.insert(k, v);
    }
    Ok(merged.try_into()?)
}

fn mrz_check(lines: &[String]) -> anyhow::Result<()> {
    let report = match lines {
        [one] => mrz::parse_text(one),
        _ => mrz::parse(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
    }
    .context("not a machine-readable zone")?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if report.valid {
        return Ok(());
    }
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.valid)
        .map(|c| {
            let name = serde_json::to_value(c.field)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            format!("{name} (found {:?}, expected {})", c.found, c.expected)
        })
        .chain(report.problems.iter().cloned())
        .collect();
    eprintln!("invalid: {}", failed.join("; "));
    exit_no()
}

fn allowance(args: AllowanceArgs) -> anyhow::Result<()> {
    let goods: Vec<GoodsItem> = serde_json::from_str(&read_text(&args.goods, "goods")?)
        .with_context(|| format!("{} is not a JSON list of goods lines", args.goods.display()))?;
    let date = args
        .date
        .unwrap_or_else(|| OffsetDateTime::now_utc().date());
    let assessment = allowance::assess(&goods, args.age, date)?;
    println!("{}", serde_json::to_string_pretty(&assessment)?);
    eprint!("{}", owe_table(&assessment));
    Ok(())
}

/// The assessment for a person: one row per goods line, then the total.
fn owe_table(a: &Assessment) -> String {
    let mut t = format!(
        "{:<20} {:>6} {:>6} {:>6} {:>10}  rate\n",
        "goods", "qty", "free", "taxed", "duty ¥"
    );
    for l in &a.lines {
        let name: String = l.name.chars().take(20).collect();
        let duty = l
            .duty_yen
            .map(|d| d.to_string())
            .unwrap_or_else(|| "officer".into());
        t += &format!(
            "{name:<20} {:>6} {:>6} {:>6} {duty:>10}  {}\n",
            l.quantity, l.duty_free_quantity, l.taxed_quantity, l.rate
        );
    }
    t += &format!(
        "you owe ¥{} (age {}, rules from {}){}\n",
        a.total_duty_yen,
        a.traveller_age,
        a.rules_valid_from,
        if a.needs_officer {
            "; an officer must assess the lines marked \"officer\""
        } else {
            ""
        }
    );
    t
}
