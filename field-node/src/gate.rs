//! E-gates at an airport site: the gate API of the site daemon.
//!
//! A gate (the hardware at the arrival hall) sends what it read — the declaration QR text, the
//! passport's MRZ lines, the chip's DG1 fields, its face-match score — to
//! `POST /api/gate/decide` on its airport's field node, authenticated with its own token. The
//! node decides with `mizugiwa-gate-edge` against the trust list headquarters published into
//! the replicated store, and records the passage, the use of the declaration and the gate's
//! counters in one durable transaction before it answers: a gate opens only for a decision
//! that is on record. It all works with the link to headquarters down.
//!
//! **Replays.** Every use of a declaration is an element of the add-wins set `uses` of
//! `gate_uses/<declaration id>`, so two airports that were cut off when the same declaration
//! was shown at both learn of both uses when they sync. The second use at one node is refused
//! at once (officer lane, reason `replay`); a use learnt through sync raises the alert
//! `alerts/gate-replay-<declaration id>`. The id is the same everywhere, so however many nodes
//! notice, there is exactly one alert.
//!
//! **Journal.** Every decision is also an entry of the site's decision journal
//! (`mizugiwa_gate_edge::journal`): chained to the one before and signed with the site's
//! identity key, in the same transaction as the passage. The passage carries the entry
//! (`journal_seq`, `journal`, `journal_hash`, `journal_sig`); `gate_journals/<site>` carries the
//! site's certificate and the head, so headquarters can check that no decision was rewritten
//! or dropped (`mizugiwa gate journal`, `GET /api/gate/journal/<site>`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mizugiwa_command::records::{
    NewAlert, ALERTS, GATE_JOURNALS, GATE_KEYS, GATE_LISTS, GATE_PASSAGES, GATE_REVOKED,
    GATE_STATS, GATE_USES,
};
use mizugiwa_command::trust::CURRENT_LIST;
use mizugiwa_gate_edge::decision::ChipData;
use mizugiwa_gate_edge::journal::{self, Decided, JournalWriter};
use mizugiwa_gate_edge::mrz::{MrzError, MrzReport};
use mizugiwa_gate_edge::qr::{QrError, VerifiedDeclaration};
use mizugiwa_gate_edge::trust::{RevocationList, TrustList, TrustedKey};
use mizugiwa_gate_edge::{
    decide, mrz, qr, Decision, GateInput, Outcome, Policy, PublicKeyFile, VerifyPolicy,
};
use mizugiwa_sync::{Clock, FieldOp, FieldValue, FieldWrite, RecordWrite, Store, Value};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};

use crate::heartbeat::GateLinks;

/// The `[gates]` section of site.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSection {
    /// The gates allowed to ask for decisions.
    pub devices: Vec<GateDevice>,
    /// The decision policy (a TOML file of `mizugiwa-gate-edge`'s `Policy`); the default
    /// policy when absent.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// A trust list older than this (hours since headquarters last published it) sends every
    /// passenger to an officer. Default 72.
    #[serde(default = "default_max_list_age_hours")]
    pub max_list_age_hours: u64,
    /// Seed of the random selection (default: derived from the site name).
    #[serde(default)]
    pub selection_seed: Option<u64>,
    /// A gate that sent heartbeats on the site bus and then none for this long is offline
    /// (recorded, and alerted). Default 5.
    #[serde(default = "default_heartbeat_timeout_secs")]
    pub heartbeat_timeout_secs: u64,
}

fn default_heartbeat_timeout_secs() -> u64 {
    5
}

fn default_max_list_age_hours() -> u64 {
    72
}

/// One gate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateDevice {
    /// The gate's name, e.g. "t1-gate3".
    pub id: String,
    /// BLAKE3 (hex) of the gate's bearer token (`mizugiwa gate token` makes a pair).
    pub token_blake3: String,
}

/// A new random gate token (244 random bits from the OS, as two UUIDv4).
pub fn new_token() -> String {
    format!(
        "mzg_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The hash a device token is configured by.
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// What a gate sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// The declaration QR's text.
    pub qr: String,
    /// The MRZ lines as read (2 for a passport, 3 for an ID card).
    pub mrz: Vec<String>,
    /// The chip's DG1, if read.
    #[serde(default)]
    pub chip: Option<ChipData>,
    /// Face-match score from the gate's camera, 0.0-1.0.
    #[serde(default)]
    pub face_score: Option<f64>,
    /// A hit reported by an external watchlist check.
    #[serde(default)]
    pub watchlist_hit: bool,
}

/// The gate service of one site.
pub struct GateService {
    store: Arc<Mutex<Store>>,
    /// The replica's wall clock (the one its writes are stamped with).
    clock: Arc<dyn Clock>,
    site: String,
    devices: HashMap<String, String>,
    policy: Policy,
    verify: VerifyPolicy,
    seed: u64,
    lists: Mutex<Option<Arc<(TrustList, RevocationList)>>>,
    journal: Mutex<JournalWriter>,
    /// Gate counter records whose `site` and `gate` fields this process has written: they are
    /// set once, not rewritten with every passage (each rewrite is a new entry and a deleted
    /// one, pages of WAL for nothing).
    stats_named: Mutex<HashSet<String>>,
    /// The gates' links as their heartbeats on the site bus tell.
    pub links: Arc<GateLinks>,
    gate_ids: Vec<String>,
}

/// The site's identity as the journal needs it: the key that signs, the certificate that
/// proves whose key it is.
pub struct JournalIdentity {
    /// PKCS#8 PEM of the site's private key (`<pki_dir>/<site>.key`).
    pub key_pem: String,
    /// PEM of the site's certificate (`<pki_dir>/<site>.crt`).
    pub cert_pem: String,
}

impl JournalIdentity {
    /// Reads `<dir>/<site>.key` and `<dir>/<site>.crt`.
    pub fn load(dir: &std::path::Path, site: &str) -> anyhow::Result<JournalIdentity> {
        let read = |ext: &str| {
            let path = dir.join(format!("{site}.{ext}"));
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        Ok(JournalIdentity {
            key_pem: read("key")?,
            cert_pem: read("crt")?,
        })
    }
}

fn at(ms: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl GateService {
    /// The service for `site` as its config says; its journal continues from the head the
    /// replica holds (a new epoch when it holds none).
    pub fn new(
        store: Arc<Mutex<Store>>,
        site: &str,
        cfg: &GateSection,
        identity: &JournalIdentity,
    ) -> anyhow::Result<GateService> {
        let policy = match &cfg.policy {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading the gate policy {}", p.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing the gate policy {}", p.display()))?
            }
            None => Policy::default(),
        };
        let age = cfg.max_list_age_hours * 3600;
        let verify = VerifyPolicy {
            max_trust_list_age_secs: age,
            max_revocation_list_age_secs: age,
            ..VerifyPolicy::default()
        };
        let mut devices = HashMap::new();
        for d in &cfg.devices {
            let hash = d.token_blake3.trim().to_ascii_lowercase();
            if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                anyhow::bail!("gate {}: token_blake3 must be 64 hex digits", d.id);
            }
            devices.insert(hash, d.id.clone());
        }
        let journal = open_journal(&store, site, identity)?;
        let clock = store
            .lock()
            .map_err(|_| anyhow::anyhow!("store lock poisoned"))?
            .wall_clock();
        Ok(GateService {
            store,
            clock,
            site: site.to_owned(),
            devices,
            policy,
            verify,
            seed: cfg.selection_seed.unwrap_or_else(|| {
                u64::from_le_bytes(
                    blake3::hash(site.as_bytes()).as_bytes()[..8]
                        .try_into()
                        .unwrap_or([0; 8]),
                )
            }),
            lists: Mutex::new(None),
            journal: Mutex::new(journal),
            stats_named: Mutex::default(),
            links: Arc::default(),
            gate_ids: cfg.devices.iter().map(|d| d.id.clone()).collect(),
        })
    }

    /// The configured gates' ids.
    pub fn gate_ids(&self) -> &[String] {
        &self.gate_ids
    }

    /// The gate a bearer token belongs to.
    fn gate_of(&self, headers: &HeaderMap) -> Option<String> {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?;
        self.devices.get(&token_hash(token)).cloned()
    }

    /// The trust and revocation lists as last loaded (by [`watch`] when they change), or loaded
    /// now when they never were or the last load failed.
    fn lists(&self) -> anyhow::Result<Arc<(TrustList, RevocationList)>> {
        let kept = self
            .lists
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .clone();
        match kept {
            Some(l) => Ok(l),
            None => self.reload_lists(),
        }
    }

    /// Reads the trust and revocation lists from the replica and keeps them. Takes the store's
    /// lock, so [`watch`] does it on a blocking thread when HQ republishes, not a request.
    fn reload_lists(&self) -> anyhow::Result<Arc<(TrustList, RevocationList)>> {
        let store = self
            .store
            .lock()
            .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
        // Headquarters' heartbeat dates both lists: a gate that has not heard from it for
        // too long stops trusting them. Never published: the epoch, so stale.
        let published = store
            .get(GATE_LISTS, CURRENT_LIST)?
            .and_then(|r| match r.get("published_ms") {
                Some(Value::Int(ms)) => Some(*ms as u64),
                _ => None,
            })
            .unwrap_or(0);
        let mut trust = TrustList::new(at(published));
        for r in store.list(GATE_KEYS)? {
            match r.get("key") {
                Some(Value::Text(text)) => match PublicKeyFile::parse(text) {
                    Ok(file) => trust.insert(r.id.clone(), TrustedKey::new(file.key)),
                    Err(e) => {
                        tracing::warn!(kid = %r.id, error = %e, "published gate key unreadable; not trusted")
                    }
                },
                _ => tracing::warn!(kid = %r.id, "published gate key has no text; not trusted"),
            }
        }
        let mut revoked = RevocationList::new(at(published));
        revoked.kids = store.ids(GATE_REVOKED)?.into_iter().collect();
        let lists = Arc::new((trust, revoked));
        *self.lists.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = Some(lists.clone());
        Ok(lists)
    }

    /// Reads one request: verifies its QR against the trust lists as the replica holds them
    /// and parses its MRZ, at the replica's current time. Needs no store (the lists are cached),
    /// so the HTTP handlers do it side by side and the writer thread only decides, journals and
    /// commits.
    pub fn read_request(&self, req: &DecideRequest) -> anyhow::Result<ReadRequest> {
        let lists = self.lists()?;
        // The store's own clock, read without its lock: a sync session or the status writer
        // may hold that through an fsync.
        let now_ms = self.clock.now_ms();
        let lines: Vec<&str> = req.mrz.iter().map(String::as_str).collect();
        Ok(ReadRequest {
            verification: qr::verify(&req.qr, &lists.0, &lists.1, at(now_ms), &self.verify),
            mrz: mrz::parse(&lines),
            now_ms,
        })
    }

    /// Decides passages in order and records them all in one transaction (one fsync for the
    /// lot: group commit); the gates' answers, in order. A declaration shown twice within the
    /// batch is a replay exactly as if the batches had been apart.
    pub fn decide_batch(
        &self,
        jobs: Vec<(String, DecideRequest, ReadRequest)>,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut store = self
            .store
            .lock()
            .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
        let mut in_batch: HashMap<String, Vec<String>> = HashMap::new();
        let mut planned = Vec::with_capacity(jobs.len());
        let mut latest_ms = 0;
        // The lookups and the record of these uses happen under one lock: two gates of this
        // node cannot both see a declaration unused.
        for (gate, req, read) in jobs {
            let ReadRequest {
                verification,
                mrz,
                now_ms,
            } = read;
            latest_ms = latest_ms.max(now_ms);
            let mut prior_uses = match &verification {
                Ok(v) => uses_of(&store, &v.declaration.id)?,
                Err(_) => Vec::new(),
            };
            if let Ok(v) = &verification {
                prior_uses.extend(in_batch.get(&v.declaration.id).cloned().unwrap_or_default());
            }
            let decision: Decision = decide(
                &GateInput {
                    verification,
                    mrz,
                    chip: req.chip.clone(),
                    face_match_score: req.face_score,
                    watchlist_hit: req.watchlist_hit,
                    replay_seen: !prior_uses.is_empty(),
                    now: at(now_ms),
                    seed: self.seed,
                },
                &self.policy,
            );
            let plan = self.plan(&gate, decision, prior_uses, now_ms)?;
            if let Some((id, element)) = &plan.declaration_use {
                in_batch
                    .entry(id.clone())
                    .or_default()
                    .push(element.clone());
            }
            planned.push(plan);
        }
        // Journal the decisions in order, then record passages and journal head together.
        let mut journal = self
            .journal
            .lock()
            .map_err(|_| anyhow::anyhow!("journal lock poisoned"))?;
        let (epoch, seq_before, head_before) = {
            let (e, s, h) = journal.head();
            (e.to_owned(), s, h.to_owned())
        };
        for p in &mut planned {
            let sealed = match journal.append(p.journal.clone()) {
                Ok(sealed) => sealed,
                Err(e) => {
                    journal.rewind(seq_before, &head_before);
                    return Err(e.into());
                }
            };
            p.passage_ops.extend([
                (
                    "journal_seq",
                    FieldOp::Set(Value::Int(journal.head().1 as i64)),
                ),
                ("journal", FieldOp::Set(Value::Text(sealed.entry))),
                ("journal_hash", FieldOp::Set(Value::Text(sealed.hash))),
                ("journal_sig", FieldOp::Set(Value::Text(sealed.sig))),
            ]);
        }
        let (_, seq_after, head_after) = journal.head();
        let head_ops = [
            ("epoch", FieldOp::Set(Value::Text(epoch))),
            ("head_seq", FieldOp::Set(Value::Int(seq_after as i64))),
            (
                "head_hash",
                FieldOp::Set(Value::Text(head_after.to_owned())),
            ),
            ("at_ms", FieldOp::Set(Value::Int(latest_ms as i64))),
        ];
        // The gates' counters once per batch, however many passengers each gate had in it.
        let mut named = self
            .stats_named
            .lock()
            .map_err(|_| anyhow::anyhow!("gate stats lock poisoned"))?;
        let mut counted: BTreeMap<&str, (i64, i64, u64)> = BTreeMap::new();
        for p in &planned {
            let (opened, lane, at) = counted.entry(&p.gate).or_default();
            *opened += i64::from(p.opened);
            *lane += i64::from(!p.opened);
            *at = (*at).max(p.at_ms);
        }
        let stats: Vec<(String, Vec<FieldWrite>)> = counted
            .into_iter()
            .map(|(gate, (opened, lane, at))| {
                let id = format!("{}-{gate}", self.site);
                let mut ops = Vec::with_capacity(5);
                if !named.contains(&id) {
                    ops.push(("site", FieldOp::Set(Value::Text(self.site.clone()))));
                    ops.push(("gate", FieldOp::Set(gate.into())));
                }
                if opened > 0 {
                    ops.push(("opened", FieldOp::Increment(opened)));
                }
                if lane > 0 {
                    ops.push(("officer_lane", FieldOp::Increment(lane)));
                }
                ops.push(("at_ms", FieldOp::Set(Value::Int(at as i64))));
                (id, ops)
            })
            .collect();
        let mut writes: Vec<RecordWrite> = vec![(GATE_JOURNALS, &self.site, &head_ops)];
        for (id, ops) in &stats {
            writes.push((GATE_STATS, id, ops));
        }
        for p in &planned {
            writes.push((GATE_PASSAGES, &p.passage, &p.passage_ops));
            if let Some((id, _)) = &p.declaration_use {
                writes.push((GATE_USES, id, &p.use_ops));
            }
            if let Some((id, ops)) = &p.alert {
                writes.push((ALERTS, id, ops));
            }
        }
        if let Err(e) = store.put_all(&writes) {
            // Nothing of the batch is on record: the journal must not skip its numbers.
            journal.rewind(seq_before, &head_before);
            return Err(e.into());
        }
        named.extend(stats.into_iter().map(|(id, _)| id));
        drop(named);
        drop(journal);
        drop(store);
        Ok(planned
            .into_iter()
            .map(|p| {
                tracing::info!(gate = %p.answer["gate"], passage = %p.passage, open = %p.answer["open"], "gate decision");
                p.answer
            })
            .collect())
    }

    /// The records one decision makes, and the gate's answer.
    fn plan(
        &self,
        gate: &str,
        decision: Decision,
        prior_uses: Vec<String>,
        now_ms: u64,
    ) -> anyhow::Result<Planned> {
        let opened = decision.outcome == Outcome::Open;
        let site = Value::Text(self.site.clone());
        // Time-ordered (UUIDv7): a batch's passages land side by side in the store's index
        // instead of each on a random page, and the ids sort by time for the officer.
        let passage = uuid::Uuid::now_v7().simple().to_string();
        // The passage's own fields are what lists and dashboards filter on; the rest (reasons,
        // versions, duty) is in the signed journal entry the batch adds.
        let mut passage_ops: Vec<(&'static str, FieldOp)> = vec![
            ("site", FieldOp::Set(site)),
            ("gate", FieldOp::Set(gate.into())),
            ("at_ms", FieldOp::Set(Value::Int(now_ms as i64))),
            (
                "outcome",
                FieldOp::Set(if opened { "open" } else { "officer_lane" }.into()),
            ),
        ];
        if let Some(id) = &decision.declaration_id {
            passage_ops.push(("declaration_id", FieldOp::Set(id.clone().into())));
        }
        let journal = Decided {
            passage: passage.clone(),
            gate: gate.to_owned(),
            at_ms: now_ms,
            outcome: decision.outcome,
            reasons: decision.reasons.clone(),
            declaration_id: decision.declaration_id.clone(),
            duty_yen: decision.assessment.as_ref().map(|a| a.total_duty_yen),
            policy_version: decision.policy_version.clone(),
            decision_function: decision.decision_function_version.clone(),
        };
        let element = format!("{}/{gate}/{passage}@{now_ms}", self.site);
        let (declaration_use, alert) = match &decision.declaration_id {
            Some(id) => {
                let alert = (!prior_uses.is_empty()).then(|| {
                    let mut all = prior_uses.clone();
                    all.push(element.clone());
                    (
                        replay_alert_id(id),
                        replay_alert_ops(&self.site, id, &all, now_ms),
                    )
                });
                (Some((id.clone(), element.clone())), alert)
            }
            None => (None, None),
        };
        let answer = json!({
            "passage": passage,
            "gate": gate,
            "site": self.site,
            "open": opened,
            "decision": decision,
        });
        Ok(Planned {
            gate: gate.to_owned(),
            opened,
            at_ms: now_ms,
            use_ops: vec![("uses", FieldOp::Add(element))],
            passage,
            passage_ops,
            declaration_use,
            alert,
            journal,
            answer,
        })
    }

    /// Raises the replay alert for `declaration` if its uses (as synced) are more than one
    /// and nobody raised it yet. Returns whether it wrote the alert.
    pub fn check_replay(&self, declaration: &str) -> anyhow::Result<bool> {
        let mut store = self
            .store
            .lock()
            .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
        let uses = uses_of(&store, declaration)?;
        let alert = replay_alert_id(declaration);
        if uses.len() < 2 || store.get(ALERTS, &alert)?.is_some() {
            return Ok(false);
        }
        let now = store.now_ms();
        store.put(
            ALERTS,
            &alert,
            &replay_alert_ops(&self.site, declaration, &uses, now),
        )?;
        tracing::warn!(%declaration, uses = uses.len(), "declaration used more than once: replay alert raised");
        Ok(true)
    }
}

/// What one decision writes.
struct Planned {
    passage: String,
    passage_ops: Vec<(&'static str, FieldOp)>,
    gate: String,
    opened: bool,
    at_ms: u64,
    /// The declaration used, and this use's element of its `uses` set.
    declaration_use: Option<(String, String)>,
    use_ops: Vec<(&'static str, FieldOp)>,
    alert: Option<(String, Vec<(&'static str, FieldOp)>)>,
    journal: Decided,
    answer: serde_json::Value,
}

/// The site's journal writer: continues from the head in the replica, or opens a new epoch;
/// publishes the site's certificate beside it so its signatures can be checked anywhere.
fn open_journal(
    store: &Arc<Mutex<Store>>,
    site: &str,
    identity: &JournalIdentity,
) -> anyhow::Result<JournalWriter> {
    let key = journal::signing_key_from_pem(&identity.key_pem)?;
    let mut store = store
        .lock()
        .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
    let record = store.get(GATE_JOURNALS, site)?;
    let text = |f: &str| match record.as_ref().and_then(|r| r.get(f)) {
        Some(Value::Text(t)) => Some(t.clone()),
        _ => None,
    };
    let seq = match record.as_ref().and_then(|r| r.get("head_seq")) {
        Some(Value::Int(n)) => u64::try_from(*n).ok(),
        _ => None,
    };
    let writer = match (text("epoch"), seq, text("head_hash")) {
        (Some(epoch), Some(seq), Some(head)) => {
            tracing::info!(%epoch, seq, "gate journal continues");
            JournalWriter::resume(site, key, &epoch, seq, &head)?
        }
        _ => {
            let w = JournalWriter::start(site, key)?;
            tracing::info!(epoch = %w.head().0, "gate journal: new epoch");
            w
        }
    };
    if text("cert").as_deref() != Some(identity.cert_pem.as_str()) {
        store.put(
            GATE_JOURNALS,
            site,
            &[("cert", FieldOp::Set(Value::Text(identity.cert_pem.clone())))],
        )?;
    }
    Ok(writer)
}

/// Group commit: one thread takes the decisions waiting and records them in one transaction,
/// so that at a busy hall the fsync is paid once per batch, not once per passenger.
pub struct GateApi {
    svc: Arc<GateService>,
    jobs: Mutex<std::sync::mpsc::Sender<Job>>,
}

struct Job {
    gate: String,
    req: DecideRequest,
    read: ReadRequest,
    reply: tokio::sync::oneshot::Sender<anyhow::Result<serde_json::Value>>,
}

/// A gate's request as read by [`GateService::read_request`].
pub struct ReadRequest {
    verification: Result<VerifiedDeclaration, QrError>,
    mrz: Result<MrzReport, MrzError>,
    now_ms: u64,
}

/// Most decisions recorded in one transaction.
const MAX_BATCH: usize = 64;

impl GateApi {
    /// Starts the writer thread; it ends when the API is dropped.
    pub fn start(svc: Arc<GateService>) -> anyhow::Result<Arc<GateApi>> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let core = svc.clone();
        std::thread::Builder::new()
            .name("gate-writer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(j) => batch.push(j),
                            Err(_) => break,
                        }
                    }
                    let (inputs, replies): (Vec<_>, Vec<_>) = batch
                        .into_iter()
                        .map(|j| ((j.gate, j.req, j.read), j.reply))
                        .unzip();
                    match core.decide_batch(inputs) {
                        Ok(answers) => {
                            for (reply, answer) in replies.into_iter().zip(answers) {
                                let _ = reply.send(Ok(answer));
                            }
                        }
                        Err(e) => {
                            let msg = format!("{e:#}");
                            for reply in replies {
                                let _ = reply.send(Err(anyhow::anyhow!("{msg}")));
                            }
                        }
                    }
                }
            })?;
        Ok(Arc::new(GateApi {
            svc,
            jobs: Mutex::new(tx),
        }))
    }

    /// Queues one decision for the writer thread; its answer once it is on record.
    pub async fn decide(
        &self,
        gate: String,
        req: DecideRequest,
    ) -> anyhow::Result<serde_json::Value> {
        // Verification and MRZ parsing here, on the caller's task, side by side with other
        // gates' requests; the writer thread is left the replay lookup, the decision, the
        // journal and the commit.
        let read = self.svc.read_request(&req)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .send(Job {
                gate,
                req,
                read,
                reply,
            })
            .map_err(|_| anyhow::anyhow!("the gate writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the gate writer dropped the decision"))?
    }
}

fn uses_of(store: &Store, declaration: &str) -> anyhow::Result<Vec<String>> {
    Ok(match store.get(GATE_USES, declaration)? {
        Some(r) => match r.fields.get("uses") {
            Some(FieldValue::Members(m)) => m.clone(),
            _ => Vec::new(),
        },
        None => Vec::new(),
    })
}

fn replay_alert_id(declaration: &str) -> String {
    format!("gate-replay-{declaration}")
}

fn replay_alert_ops(
    site: &str,
    declaration: &str,
    uses: &[String],
    now_ms: u64,
) -> Vec<(&'static str, FieldOp)> {
    NewAlert {
        title: format!("Declaration {declaration} used more than once"),
        kind: "gate_replay",
        severity: "high",
        site,
        position: None,
        raised_ms: now_ms,
        detail: json!({ "declaration_id": declaration, "uses": uses }),
    }
    .ops()
}

/// Keeps the service's view of the store current: reloads the trust lists when they change,
/// and checks for replays when uses arrive through sync.
pub async fn watch(svc: Arc<GateService>, mut stopped: watch::Receiver<bool>) {
    let mut changes = match svc.store.lock() {
        Ok(s) => s.subscribe(),
        Err(_) => return,
    };
    loop {
        let event = tokio::select! {
            e = changes.recv() => e,
            _ = stopped.wait_for(|s| *s) => break,
        };
        match event {
            Ok(e) if [GATE_KEYS, GATE_REVOKED, GATE_LISTS].contains(&e.collection.as_str()) => {
                refresh_lists(&svc).await;
            }
            Ok(e) if e.collection == GATE_USES && e.via.is_some() => {
                let svc = svc.clone();
                let declaration = e.record.clone();
                let done =
                    tokio::task::spawn_blocking(move || svc.check_replay(&declaration)).await;
                if let Ok(Err(err)) = done {
                    tracing::error!(error = %format!("{err:#}"), "replay check failed");
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                // Missed changes: reload the lists, and look at every declaration used.
                tracing::warn!(missed, "gate watcher lagged; rechecking everything");
                refresh_lists(&svc).await;
                let svc = svc.clone();
                let _ = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                    let ids = svc
                        .store
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .ids(GATE_USES)?;
                    for id in ids {
                        svc.check_replay(&id)?;
                    }
                    Ok(())
                })
                .await;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

/// Reloads the service's trust lists on a blocking thread; when that fails (logged), forgets
/// them, so that the next request loads them itself rather than trusting a stale copy.
async fn refresh_lists(svc: &Arc<GateService>) {
    let reloading = svc.clone();
    let failure = match tokio::task::spawn_blocking(move || reloading.reload_lists()).await {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => format!("{e:#}"),
        Err(e) => e.to_string(),
    };
    tracing::error!(error = %failure, "gate trust lists not reloaded");
    if let Ok(mut kept) = svc.lists.lock() {
        *kept = None;
    }
}

/// The gate API's routes.
pub fn routes(svc: Arc<GateApi>) -> Router {
    Router::new()
        .route("/api/gate/decide", post(decide_handler))
        .route("/api/gate/status", get(status_handler))
        .with_state(svc)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn decide_handler(
    State(api): State<Arc<GateApi>>,
    headers: HeaderMap,
    body: Result<Json<DecideRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(gate) = api.svc.gate_of(&headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unknown gate: send `Authorization: Bearer <gate token>`",
        );
    };
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("send JSON {{qr, mrz: [lines], chip?, face_score?}}: {e}"),
            )
        }
    };
    if req.qr.len() > 8192 || req.mrz.len() > 3 || req.mrz.iter().any(|l| l.len() > 64) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "QR text over 8 KiB or MRZ over 3 lines of 64",
        );
    }
    // The decision is recorded durably (fsync) by the writer thread, off the async workers.
    match api.decide(gate, req).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "gate decision not recorded");
            // Not on record, so not open: the gate sends the passenger to an officer.
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("decision not recorded: {e:#}; officer lane"),
            )
        }
    }
}

async fn status_handler(State(api): State<Arc<GateApi>>, headers: HeaderMap) -> Response {
    let svc = api.svc.clone();
    if svc.gate_of(&headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "unknown gate");
    }
    let lists = match tokio::task::spawn_blocking({
        let svc = svc.clone();
        move || svc.lists()
    })
    .await
    {
        Ok(Ok(l)) => l,
        _ => return error(StatusCode::SERVICE_UNAVAILABLE, "trust lists unreadable"),
    };
    Json(json!({
        "site": svc.site,
        "keys": lists.0.keys.keys().collect::<Vec<_>>(),
        "revoked": lists.1.kids,
        "lists_published": lists.0.updated_at.unix_timestamp() * 1000,
        "policy_version": svc.policy.version,
        "gates": svc
            .links
            .snapshot(&svc.gate_ids)
            .into_iter()
            .map(|(id, link)| json!({ "id": id, "link": link }))
            .collect::<Vec<_>>(),
    }))
    .into_response()
}
