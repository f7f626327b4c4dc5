//! The decision journal: every decision a node's gates made, hash-chained and signed by the node.
//!
//! Replicated records say what was decided; the journal proves it was decided there and then,
//! and that nothing was removed or rewritten afterwards. Entry `n` names the hash of entry
//! `n - 1`, and the node signs each entry's hash with its own identity key (the ECDSA P-256 key
//! of its site certificate, which the deployment's CA issued). Anyone holding the CA certificate
//! can then check a site's journal: rewrite one outcome, drop one passage, splice in a forged
//! one, and the chain or a signature breaks at exactly that entry.
//!
//! A journal is numbered in epochs: a node that starts without a journal (first start, or a
//! replacement machine after its disk was lost) opens a new epoch with a random id and starts
//! again at 1 from [`GENESIS`]; each epoch is a chain of its own, so a rebuilt node shows as a
//! new epoch, never as a forgery of the old one.
//!
//! An entry travels as [`SealedEntry`]: the entry's exact JSON text (hashed and signed as it is,
//! so verification never depends on re-serialising), its hash and the signature.
//!
//! ```
//! use mizugiwa_gate_edge::journal::*;
//! use mizugiwa_gate_edge::decision::Outcome;
//!
//! let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
//! let verifier = JournalVerifier::new(*key.verifying_key());
//! let mut journal = JournalWriter::start("narita", key).unwrap();
//! let mut sealed = Vec::new();
//! for passage in ["p1", "p2", "p3"] {
//!     sealed.push(journal.append(Decided {
//!         passage: passage.into(),
//!         gate: "t1-gate3".into(),
//!         at_ms: 1_780_000_000_000,
//!         outcome: Outcome::Open,
//!         reasons: vec![],
//!         declaration_id: None,
//!         duty_yen: None,
//!         policy_version: "2025-10".into(),
//!         decision_function: "1".into(),
//!     }).unwrap());
//! }
//! assert!(verifier.check("narita", sealed.iter()).is_intact());
//!
//! sealed.remove(1); // a decision taken out of the record
//! let report = verifier.check("narita", sealed.iter());
//! assert_eq!(report.problems[0].problem, Problem::Missing { from: 2, to: 2 });
//! ```

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::decision::{Outcome, Reason};

/// The version of the entry format; part of every entry and of the hash's domain.
pub const JOURNAL_VERSION: u32 = 1;

/// What an entry's `prev` holds for the first entry of a journal.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const DOMAIN: &[u8] = b"mizugiwa gate journal v1\n";

/// One decision as the node journals it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decided {
    /// The passage id (the record the decision is stored as).
    pub passage: String,
    pub gate: String,
    pub at_ms: u64,
    pub outcome: Outcome,
    pub reasons: Vec<Reason>,
    pub declaration_id: Option<String>,
    pub duty_yen: Option<u64>,
    pub policy_version: String,
    pub decision_function: String,
}

/// A journal entry: the decision and its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub v: u32,
    pub site: String,
    /// The journal's epoch (16 hex digits, random when the journal started).
    pub epoch: String,
    /// 1, 2, 3, ... per epoch, without gaps.
    pub seq: u64,
    /// The hash (hex SHA-256) of the entry before, [`GENESIS`] for the first.
    pub prev: String,
    #[serde(flatten)]
    pub decided: Decided,
}

/// An entry as stored and replicated: its exact text, hash and the node's signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedEntry {
    /// The entry's JSON text, exactly as hashed.
    pub entry: String,
    /// Hex SHA-256 over the domain tag and `entry`.
    pub hash: String,
    /// Hex of the DER ECDSA P-256 signature over `hash`'s bytes.
    pub sig: String,
}

/// Errors writing to or loading a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal signing key unreadable (expected a PKCS#8 PEM ECDSA P-256 key): {0}")]
    Key(String),
    #[error("journal head {0:?} is not a 16-digit hex epoch and a 64-digit hex hash")]
    BadHead(String),
    #[error("journal entry could not be encoded: {0}")]
    Encode(String),
}

/// Appends decisions to one site's journal.
pub struct JournalWriter {
    site: String,
    epoch: String,
    key: EntrySigner,
    seq: u64,
    head: String,
}

/// Signs entry hashes: ECDSA P-256 over SHA-256 of the hash, DER-encoded, exactly what
/// `p256`'s `Signer` makes and [`JournalVerifier`] checks, but through ring, whose signing is
/// several times faster (a gate hall signs one entry per passenger).
struct EntrySigner {
    pair: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl EntrySigner {
    fn new(key: &SigningKey) -> Result<EntrySigner, JournalError> {
        let rng = ring::rand::SystemRandom::new();
        let public = key.verifying_key().to_encoded_point(false);
        let pair = ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &key.to_bytes(),
            public.as_bytes(),
            &rng,
        )
        .map_err(|e| JournalError::Key(e.to_string()))?;
        Ok(EntrySigner { pair, rng })
    }

    fn sign(&self, hash: &[u8; 32]) -> Result<Vec<u8>, JournalError> {
        self.pair
            .sign(&self.rng, hash)
            .map(|sig| sig.as_ref().to_vec())
            .map_err(|_| JournalError::Encode("ECDSA signing failed".into()))
    }
}

fn entry_hash(text: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(text.as_bytes());
    h.finalize().into()
}

/// Reads a node's identity key (the PKCS#8 PEM its site certificate was issued for).
pub fn signing_key_from_pem(pem: &str) -> Result<SigningKey, JournalError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|e| JournalError::Key(e.to_string()))
}

impl JournalWriter {
    /// A new, empty journal: a new epoch.
    pub fn start(site: &str, key: SigningKey) -> Result<JournalWriter, JournalError> {
        let mut epoch = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut epoch);
        Ok(JournalWriter {
            site: site.to_owned(),
            epoch: hex::encode(epoch),
            key: EntrySigner::new(&key)?,
            seq: 0,
            head: GENESIS.to_owned(),
        })
    }

    /// Continues the journal of `epoch` whose last entry was `seq` with hash `head`.
    pub fn resume(
        site: &str,
        key: SigningKey,
        epoch: &str,
        seq: u64,
        head: &str,
    ) -> Result<JournalWriter, JournalError> {
        let hex_of = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex_of(head, 64) || !hex_of(epoch, 16) {
            return Err(JournalError::BadHead(format!("{epoch}/{head}")));
        }
        Ok(JournalWriter {
            site: site.to_owned(),
            epoch: epoch.to_ascii_lowercase(),
            key: EntrySigner::new(&key)?,
            seq,
            head: head.to_ascii_lowercase(),
        })
    }

    /// The epoch, and the last entry's sequence number and hash.
    pub fn head(&self) -> (&str, u64, &str) {
        (&self.epoch, self.seq, &self.head)
    }

    /// Chains and signs one decision. The writer moves on only when this returns `Ok`; the
    /// caller must store the entry durably before it acts on the decision, and call
    /// [`JournalWriter::rewind`] if that fails, so the journal never skips a number.
    pub fn append(&mut self, decided: Decided) -> Result<SealedEntry, JournalError> {
        let entry = Entry {
            v: JOURNAL_VERSION,
            site: self.site.clone(),
            epoch: self.epoch.clone(),
            seq: self.seq + 1,
            prev: self.head.clone(),
            decided,
        };
        let text =
            serde_json::to_string(&entry).map_err(|e| JournalError::Encode(e.to_string()))?;
        let hash = entry_hash(&text);
        let sig = self.key.sign(&hash)?;
        self.seq += 1;
        self.head = hex::encode(hash);
        Ok(SealedEntry {
            entry: text,
            hash: self.head.clone(),
            sig: hex::encode(sig),
        })
    }

    /// Goes back to an earlier head: the entries after it were never stored.
    pub fn rewind(&mut self, seq: u64, head: &str) {
        self.seq = seq;
        self.head = head.to_owned();
    }
}

/// What is wrong with a journal, entry by entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// Entries `from..=to` are not there (not synced yet, or removed).
    Missing { from: u64, to: u64 },
    /// The text does not parse as an entry (`at`: its place in what was checked).
    Unreadable { at: usize, error: String },
    /// The entry belongs to another site.
    WrongSite { seq: u64, site: String },
    /// The stored hash is not the hash of the stored text: the text was altered.
    HashMismatch { seq: u64 },
    /// The signature is not the node's over this hash.
    BadSignature { seq: u64 },
    /// The entry does not name the hash of the entry before it.
    BrokenLink { seq: u64 },
    /// Two different entries claim the same place (a node restored from an old copy, or a forgery).
    Fork { seq: u64 },
}

/// A problem and the epoch it is in (empty when the entry could not be read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub epoch: String,
    #[serde(flatten)]
    pub problem: Problem,
}

/// One epoch of a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpochReport {
    pub epoch: String,
    /// Entries whose hash, signature and link all hold.
    pub verified: u64,
    /// The highest sequence number seen.
    pub last_seq: u64,
    /// When its first entry present was decided.
    pub first_at_ms: u64,
}

/// The result of checking a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub site: String,
    /// Entries verified, over all epochs.
    pub verified: u64,
    /// The epochs, oldest first.
    pub epochs: Vec<EpochReport>,
    pub problems: Vec<Found>,
}

impl Report {
    /// Nothing missing, nothing altered.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks journals against one node's public key.
pub struct JournalVerifier {
    key: VerifyingKey,
}

type Chain<'a> = std::collections::BTreeMap<u64, (&'a SealedEntry, Entry)>;

impl JournalVerifier {
    pub fn new(key: VerifyingKey) -> JournalVerifier {
        JournalVerifier { key }
    }

    /// The verifier for a certificate's SubjectPublicKeyInfo (DER).
    pub fn from_spki_der(der: &[u8]) -> Result<JournalVerifier, JournalError> {
        VerifyingKey::from_public_key_der(der)
            .map(JournalVerifier::new)
            .map_err(|e| JournalError::Key(format!("site public key: {e}")))
    }

    /// Checks `site`'s entries, in any order: each one's hash, signature and link to the one
    /// before, and that none is missing from 1 to the highest of its epoch.
    pub fn check<'a>(
        &self,
        site: &str,
        entries: impl IntoIterator<Item = &'a SealedEntry>,
    ) -> Report {
        let mut problems = Vec::new();
        let mut epochs: std::collections::HashMap<String, Chain<'a>> = Default::default();
        for (at, sealed) in entries.into_iter().enumerate() {
            let entry: Entry = match serde_json::from_str(&sealed.entry) {
                Ok(e) => e,
                Err(e) => {
                    problems.push(Found {
                        epoch: String::new(),
                        problem: Problem::Unreadable {
                            at,
                            error: e.to_string(),
                        },
                    });
                    continue;
                }
            };
            let epoch = entry.epoch.clone();
            let problem = if entry.site != site {
                Some(Problem::WrongSite {
                    seq: entry.seq,
                    site: entry.site,
                })
            } else {
                let chain = epochs.entry(epoch.clone()).or_default();
                match chain.get(&entry.seq) {
                    Some((other, _)) if other.entry != sealed.entry => {
                        Some(Problem::Fork { seq: entry.seq })
                    }
                    Some(_) => None,
                    None => {
                        chain.insert(entry.seq, (sealed, entry));
                        None
                    }
                }
            };
            problems.extend(problem.map(|problem| Found { epoch, problem }));
        }
        let mut reports = Vec::new();
        for (epoch, chain) in &epochs {
            let (report, found) = self.check_chain(epoch, chain);
            reports.push(report);
            problems.extend(found.into_iter().map(|problem| Found {
                epoch: epoch.clone(),
                problem,
            }));
        }
        reports.sort_by(|a, b| (a.first_at_ms, &a.epoch).cmp(&(b.first_at_ms, &b.epoch)));
        Report {
            site: site.to_owned(),
            verified: reports.iter().map(|r| r.verified).sum(),
            epochs: reports,
            problems,
        }
    }

    fn check_chain(&self, epoch: &str, chain: &Chain<'_>) -> (EpochReport, Vec<Problem>) {
        let mut problems = Vec::new();
        let mut verified = 0;
        let mut expected = 1;
        let mut prev_hash: Option<String> = None;
        for (&seq, (sealed, entry)) in chain {
            if seq > expected {
                problems.push(Problem::Missing {
                    from: expected,
                    to: seq - 1,
                });
                prev_hash = None;
            }
            expected = seq + 1;
            let digest = entry_hash(&sealed.entry);
            let hash = hex::encode(digest);
            if !hash.eq_ignore_ascii_case(&sealed.hash) {
                problems.push(Problem::HashMismatch { seq });
                // The text was altered after sealing; the next entry still names the hash
                // that was sealed, so the chain goes on from that one.
                prev_hash = Some(sealed.hash.to_ascii_lowercase());
                continue;
            }
            let signed = hex::decode(&sealed.sig)
                .ok()
                .and_then(|der| Signature::from_der(&der).ok())
                .is_some_and(|sig| self.key.verify(&digest, &sig).is_ok());
            if !signed {
                problems.push(Problem::BadSignature { seq });
                prev_hash = Some(hash);
                continue;
            }
            let linked = match (&prev_hash, seq) {
                (_, 1) => entry.prev == GENESIS,
                (Some(p), _) => entry.prev.eq_ignore_ascii_case(p),
                // The entry before is missing: already reported; this one cannot be linked.
                (None, _) => true,
            };
            if linked {
                verified += 1;
            } else {
                problems.push(Problem::BrokenLink { seq });
            }
            prev_hash = Some(hash);
        }
        let report = EpochReport {
            epoch: epoch.to_owned(),
            verified,
            last_seq: chain.keys().next_back().copied().unwrap_or(0),
            first_at_ms: chain
                .values()
                .next()
                .map(|(_, e)| e.decided.at_ms)
                .unwrap_or(0),
        };
        (report, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(n: u32) -> Decided {
        Decided {
            passage: format!("p{n}"),
            gate: "g1".into(),
            at_ms: 1_780_000_000_000 + u64::from(n),
            outcome: if n.is_multiple_of(3) {
                Outcome::OfficerLane
            } else {
                Outcome::Open
            },
            reasons: if n.is_multiple_of(3) {
                vec![Reason::FaceMatchBelowThreshold {
                    score: 0.41,
                    threshold: 0.8,
                }]
            } else {
                vec![]
            },
            declaration_id: Some(format!("d{n}")),
            duty_yen: None,
            policy_version: "test".into(),
            decision_function: "1".into(),
        }
    }

    fn journal(n: u32) -> (JournalVerifier, Vec<SealedEntry>, SigningKey) {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let verifier = JournalVerifier::new(*key.verifying_key());
        let mut w = JournalWriter::start("nrt", key.clone()).unwrap();
        let entries = (1..=n).map(|i| w.append(decided(i)).unwrap()).collect();
        (verifier, entries, key)
    }

    fn problems(r: &Report) -> Vec<Problem> {
        r.problems.iter().map(|f| f.problem.clone()).collect()
    }

    #[test]
    fn an_intact_journal_verifies_in_any_order() {
        let (v, mut entries, _) = journal(20);
        entries.reverse();
        let r = v.check("nrt", &entries);
        assert!(r.is_intact(), "{r:?}");
        assert_eq!(r.verified, 20);
        assert_eq!(r.epochs.len(), 1);
        assert_eq!(r.epochs[0].last_seq, 20);
    }

    #[test]
    fn a_rewritten_outcome_breaks_the_hash_at_that_entry() {
        let (v, mut entries, _) = journal(6);
        entries[2].entry = entries[2].entry.replace("\"officer_lane\"", "\"open\"");
        assert_eq!(
            problems(&v.check("nrt", &entries)),
            vec![Problem::HashMismatch { seq: 3 }]
        );
    }

    #[test]
    fn a_rehashed_forgery_fails_the_signature_and_the_next_link() {
        let (v, mut entries, _) = journal(6);
        entries[2].entry = entries[2].entry.replace("\"officer_lane\"", "\"open\"");
        entries[2].hash = hex::encode(entry_hash(&entries[2].entry));
        assert_eq!(
            problems(&v.check("nrt", &entries)),
            vec![
                Problem::BadSignature { seq: 3 },
                Problem::BrokenLink { seq: 4 }
            ]
        );
    }

    #[test]
    fn another_key_signing_is_caught() {
        let (_, entries, _) = journal(3);
        let other = SigningKey::random(&mut rand_core::OsRng);
        let r = JournalVerifier::new(*other.verifying_key()).check("nrt", &entries);
        assert_eq!(r.verified, 0);
        assert_eq!(r.problems.len(), 3);
    }

    #[test]
    fn resuming_continues_the_chain_and_rewinding_leaves_no_gap() {
        let (v, mut entries, key) = journal(4);
        let last: Entry = serde_json::from_str(&entries[3].entry).unwrap();
        let mut w =
            JournalWriter::resume("nrt", key, &last.epoch, last.seq, &entries[3].hash).unwrap();
        let (seq, head) = (w.head().1, w.head().2.to_owned());
        let _lost = w.append(decided(5)).unwrap(); // never stored
        w.rewind(seq, &head);
        entries.push(w.append(decided(6)).unwrap());
        let r = v.check("nrt", &entries);
        assert!(r.is_intact(), "{r:?}");
        assert_eq!(r.epochs[0].last_seq, 5);
    }

    #[test]
    fn a_rebuilt_node_opens_a_new_epoch_not_a_fork() {
        let (v, mut entries, key) = journal(3);
        let mut again = JournalWriter::start("nrt", key).unwrap();
        entries.extend((7..9).map(|i| again.append(decided(i)).unwrap()));
        let r = v.check("nrt", &entries);
        assert!(r.is_intact(), "{r:?}");
        assert_eq!(
            r.epochs.iter().map(|e| e.last_seq).collect::<Vec<_>>(),
            vec![3, 2]
        );
        assert_eq!(r.verified, 5);
    }

    #[test]
    fn two_entries_in_one_place_are_a_fork_and_wrong_sites_are_named() {
        let (v, mut entries, key) = journal(3);
        let first: Entry = serde_json::from_str(&entries[0].entry).unwrap();
        let mut w =
            JournalWriter::resume("nrt", key.clone(), &first.epoch, 1, &entries[0].hash).unwrap();
        entries.push(w.append(decided(9)).unwrap());
        let mut kix = JournalWriter::start("kix", key).unwrap();
        entries.push(kix.append(decided(1)).unwrap());
        let found = problems(&v.check("nrt", &entries));
        assert!(found.contains(&Problem::Fork { seq: 2 }), "{found:?}");
        assert!(found.contains(&Problem::WrongSite {
            seq: 1,
            site: "kix".into()
        }));
    }

    #[test]
    fn garbage_is_reported_not_panicked_on() {
        let (v, mut entries, _) = journal(2);
        entries.push(SealedEntry {
            entry: "{not json".into(),
            hash: "zz".into(),
            sig: "".into(),
        });
        entries[0].sig = "00".into();
        let found = problems(&v.check("nrt", &entries));
        assert!(matches!(found[0], Problem::Unreadable { at: 2, .. }));
        assert_eq!(found[1], Problem::BadSignature { seq: 1 });
        let key = SigningKey::random(&mut rand_core::OsRng);
        assert!(JournalWriter::resume("nrt", key, "0011223344556677", 1, "xyz").is_err());
        assert!(signing_key_from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
    }
}
