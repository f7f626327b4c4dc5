//! The gate decision: a pure, versioned function of what the gate saw and the policy.
//!
//! [`decide`] never reads a clock, a store or a random source: the time, the replay lookup
//! (`replay_seen`, answered by the field node from the replicated set of used declaration IDs)
//! and the random-selection seed are all in the [`GateInput`]. So the same input always gives
//! the same [`Decision`], which makes decisions replayable from the journal and testable.
//!
//! The gate opens only when nothing at all calls for an officer; otherwise the decision lists
//! every reason that applies, not just the first. When in doubt (a missing face score, goods
//! that cannot be assessed, a zone that cannot be read) it is the officer lane.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Date, OffsetDateTime};

use crate::allowance::{self, AllowanceError, Assessment, RuleBook};
use crate::mrz::{CheckedField, MrzError, MrzReport, Sex};
use crate::qr::{QrError, VerifiedDeclaration};

/// Version of the decision function; bump it whenever a rule here changes meaning.
pub const DECISION_FUNCTION_VERSION: &str = "mizugiwa-gate-decide/1";

/// DG1 of the passport chip, as supplied by the gate's reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChipData {
    pub document_number: String,
    pub surname: String,
    pub given_names: String,
    pub nationality: String,
    pub date_of_birth: Date,
    #[serde(default)]
    pub sex: Option<Sex>,
    pub date_of_expiry: Date,
}

/// Everything the gate knows about one passenger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateInput {
    /// The QR verification outcome ([`crate::qr::verify`]).
    pub verification: Result<VerifiedDeclaration, QrError>,
    /// The passport's MRZ as read by the gate ([`crate::mrz::parse`]).
    pub mrz: Result<MrzReport, MrzError>,
    /// Chip DG1, when the reader got it.
    #[serde(default)]
    pub chip: Option<ChipData>,
    /// Face-match score from the gate hardware, 0.0–1.0; `None` if it produced none.
    #[serde(default)]
    pub face_match_score: Option<f64>,
    /// A watchlist hit reported by an external check.
    #[serde(default)]
    pub watchlist_hit: bool,
    /// The declaration ID was already used (looked up by the caller in the replicated store).
    #[serde(default)]
    pub replay_seen: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub now: OffsetDateTime,
    /// Seed for random selection (per gate or per day; the draw also mixes in the declaration ID).
    pub seed: u64,
}

/// The decision policy, versioned so each decision says which policy made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub version: String,
    /// Scores below this send the passenger to an officer.
    pub face_match_threshold: f64,
    /// Share of otherwise clear passengers sent for a random check, 0.0–1.0.
    pub random_selection_rate: f64,
    /// Passport numbers on the watchlist (compared after removing fillers and spaces,
    /// case-insensitively).
    #[serde(default)]
    pub watchlist: BTreeSet<String>,
    /// Require chip data (a gate whose chip reader failed sends everyone to an officer).
    #[serde(default)]
    pub require_chip: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            version: "default-1".into(),
            face_match_threshold: 0.80,
            random_selection_rate: 0.02,
            watchlist: BTreeSet::new(),
            require_chip: false,
        }
    }
}

/// Open the gate, or send the passenger to an officer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Open,
    OfficerLane,
}

/// A field compared between the QR declaration, the MRZ and the chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComparedField {
    DocumentNumber,
    Surname,
    GivenNames,
    Nationality,
    DateOfBirth,
    Sex,
    DateOfExpiry,
}

/// A field on which the sources disagree, with what each said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disagreement {
    pub field: ComparedField,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mrz: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chip: Option<String>,
}

/// Why the passenger goes to an officer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// The QR code did not verify.
    VerificationFailed {
        error: QrError,
    },
    /// The declaration ID was used before.
    Replay {
        declaration_id: String,
    },
    ProhibitedOrRestrictedDeclared,
    OverAllowanceDeclared,
    CommercialGoodsDeclared,
    GoodsForOthersDeclared,
    CashOverLimitDeclared,
    UnaccompaniedBaggageDeclared,
    /// The declared goods exceed the allowances (duty is owed, or an officer must assess).
    OverAllowance {
        assessment: Assessment,
    },
    /// The declared goods could not be assessed.
    AllowanceNotAssessable {
        error: AllowanceError,
    },
    /// The passport zone could not be read.
    MrzUnreadable {
        error: MrzError,
    },
    /// Check digits failed or the zone holds impossible values.
    MrzInvalid {
        failed_checks: Vec<CheckedField>,
        problems: Vec<String>,
    },
    /// The QR declaration, the MRZ and the chip disagree.
    DataMismatch {
        fields: Vec<Disagreement>,
    },
    ChipMissing,
    PassportExpired {
        expiry: Date,
    },
    /// The expiry date could not be read from the MRZ or the chip.
    PassportExpiryUnknown,
    WatchlistHit,
    FaceMatchBelowThreshold {
        score: f64,
        threshold: f64,
    },
    FaceMatchMissing,
    RandomSelection {
        rate: f64,
    },
}

/// The outcome with every reason, and the versions that produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    pub reasons: Vec<Reason>,
    /// The declaration ID, when the QR verified.
    pub declaration_id: Option<String>,
    /// The allowance assessment, when one was made.
    pub assessment: Option<Assessment>,
    pub policy_version: String,
    pub decision_function_version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub decided_at: OffsetDateTime,
}

/// Decide with Japan's shipped allowance rules.
pub fn decide(input: &GateInput, policy: &Policy) -> Decision {
    match RuleBook::japan() {
        Ok(book) => decide_with_rules(input, policy, book),
        Err(error) => {
            // Only a broken build can get here; still decide, and decide for an officer.
            let mut d = decide_with_rules(input, policy, &RuleBook { rules: Vec::new() });
            d.reasons.push(Reason::AllowanceNotAssessable { error });
            d.outcome = Outcome::OfficerLane;
            d
        }
    }
}

/// Decide with an explicit allowance rule book.
pub fn decide_with_rules(input: &GateInput, policy: &Policy, rules: &RuleBook) -> Decision {
    let mut reasons = Vec::new();
    let mut assessment = None;
    let declaration = match &input.verification {
        Ok(v) => Some(&v.declaration),
        Err(error) => {
            reasons.push(Reason::VerificationFailed {
                error: error.clone(),
            });
            None
        }
    };

    if let Some(d) = declaration {
        if input.replay_seen {
            reasons.push(Reason::Replay {
                declaration_id: d.id.clone(),
            });
        }
        let a = d.answers;
        for (yes, reason) in [
            (
                a.prohibited_or_restricted,
                Reason::ProhibitedOrRestrictedDeclared,
            ),
            (a.over_allowance, Reason::OverAllowanceDeclared),
            (a.commercial_goods, Reason::CommercialGoodsDeclared),
            (a.carried_for_others, Reason::GoodsForOthersDeclared),
            (a.cash_over_limit, Reason::CashOverLimitDeclared),
            (
                a.unaccompanied_baggage,
                Reason::UnaccompaniedBaggageDeclared,
            ),
        ] {
            if yes {
                reasons.push(reason);
            }
        }
        let age = age_on(d.date_of_birth, d.arrival_date);
        let assessed = rules
            .for_date(d.arrival_date)
            .and_then(|set| allowance::assess_with(set, &d.goods, age));
        match assessed {
            Ok(a) => {
                if a.over_allowance() {
                    reasons.push(Reason::OverAllowance {
                        assessment: a.clone(),
                    });
                }
                assessment = Some(a);
            }
            Err(error) => reasons.push(Reason::AllowanceNotAssessable { error }),
        }
    }

    let mrz = match &input.mrz {
        Ok(report) => {
            if !report.valid {
                reasons.push(Reason::MrzInvalid {
                    failed_checks: report.failed_checks(),
                    problems: report.problems.clone(),
                });
            }
            Some(report)
        }
        Err(error) => {
            reasons.push(Reason::MrzUnreadable {
                error: error.clone(),
            });
            None
        }
    };
    if input.chip.is_none() && policy.require_chip {
        reasons.push(Reason::ChipMissing);
    }

    let today = input.now.date();
    let fields = disagreements(declaration, mrz, input.chip.as_ref(), today);
    if !fields.is_empty() {
        reasons.push(Reason::DataMismatch { fields });
    }

    // Expiry: the chip's when present (it is signed), else the zone's.
    let expiry = input
        .chip
        .as_ref()
        .map(|c| c.date_of_expiry)
        .or_else(|| mrz.and_then(MrzReport::expiry_date));
    match expiry {
        Some(expiry) if expiry < today => reasons.push(Reason::PassportExpired { expiry }),
        Some(_) => {}
        None => reasons.push(Reason::PassportExpiryUnknown),
    }

    let on_watchlist = [
        declaration.map(|d| d.passport_number.as_str()),
        mrz.map(|m| m.document_number.as_str()),
        input.chip.as_ref().map(|c| c.document_number.as_str()),
    ]
    .into_iter()
    .flatten()
    .any(|n| policy.watchlist.iter().any(|w| doc_key(w) == doc_key(n)));
    if input.watchlist_hit || on_watchlist {
        reasons.push(Reason::WatchlistHit);
    }

    match input.face_match_score {
        // NaN compares false with everything: treat it as below the threshold.
        Some(score) if score >= policy.face_match_threshold => {}
        Some(score) => reasons.push(Reason::FaceMatchBelowThreshold {
            score,
            threshold: policy.face_match_threshold,
        }),
        None => reasons.push(Reason::FaceMatchMissing),
    }

    let id = declaration.map(|d| d.id.as_str()).unwrap_or("");
    if selected_at_random(input.seed, id, policy.random_selection_rate) {
        reasons.push(Reason::RandomSelection {
            rate: policy.random_selection_rate,
        });
    }

    Decision {
        outcome: if reasons.is_empty() {
            Outcome::Open
        } else {
            Outcome::OfficerLane
        },
        reasons,
        declaration_id: declaration.map(|d| d.id.clone()),
        assessment,
        policy_version: policy.version.clone(),
        decision_function_version: DECISION_FUNCTION_VERSION.to_string(),
        decided_at: input.now,
    }
}

/// The random draw: SHA-256 of the seed and the declaration ID, read as a fraction of 2^64.
/// Deterministic, so a decision can be replayed; unpredictable to a passenger without the seed.
pub fn selected_at_random(seed: u64, declaration_id: &str, rate: f64) -> bool {
    let digest = Sha256::new()
        .chain_update(seed.to_be_bytes())
        .chain_update(declaration_id.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let draw = u64::from_be_bytes(first) as f64 / 18_446_744_073_709_551_616.0; // 2^64
                                                                                // A NaN rate compares false: nobody is selected by a broken policy value, but nothing else
                                                                                // is relaxed either.
    draw < rate
}

/// Age in whole years on `on`.
pub fn age_on(birth: Date, on: Date) -> u32 {
    let mut age = on.year() - birth.year();
    if (on.month() as u8, on.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    u32::try_from(age).unwrap_or(0)
}

/// Document numbers compared without fillers, spaces or case.
fn doc_key(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Names compared as MRZ-style words: upper-case letters and digits, any other run of
/// characters a single separator. Accents are not transliterated (an officer looks).
fn name_key(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect::<Vec<_>>()
        .join(" ")
}

fn fmt_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

fn disagreements(
    qr: Option<&crate::declaration::Declaration>,
    mrz: Option<&MrzReport>,
    chip: Option<&ChipData>,
    today: Date,
) -> Vec<Disagreement> {
    let mut out = Vec::new();
    let mut compare = |field,
                       qr: Option<String>,
                       mrz: Option<String>,
                       chip: Option<String>,
                       key: fn(&str) -> String| {
        let keys: Vec<String> = [&qr, &mrz, &chip]
            .into_iter()
            .flatten()
            .map(|v| key(v))
            .collect();
        if keys.windows(2).any(|w| w[0] != w[1]) {
            out.push(Disagreement {
                field,
                qr,
                mrz,
                chip,
            });
        }
    };
    fn same(s: &str) -> String {
        s.to_string()
    }
    compare(
        ComparedField::DocumentNumber,
        qr.map(|d| d.passport_number.clone()),
        mrz.map(|m| m.document_number.clone()),
        chip.map(|c| c.document_number.clone()),
        doc_key,
    );
    compare(
        ComparedField::Surname,
        qr.map(|d| d.surname.clone()),
        mrz.map(|m| m.surname.clone()),
        chip.map(|c| c.surname.clone()),
        name_key,
    );
    compare(
        ComparedField::GivenNames,
        qr.map(|d| d.given_names.clone()),
        mrz.map(|m| m.given_names.clone()),
        chip.map(|c| c.given_names.clone()),
        name_key,
    );
    compare(
        ComparedField::Nationality,
        qr.map(|d| d.nationality.clone()),
        mrz.map(|m| m.nationality.clone()),
        chip.map(|c| c.nationality.clone()),
        doc_key,
    );
    // Dates: the MRZ birth date is resolved against today; an unreadable one is "?" so that it
    // disagrees with any real date.
    compare(
        ComparedField::DateOfBirth,
        qr.map(|d| fmt_date(d.date_of_birth)),
        mrz.map(|m| {
            m.birth_date(today)
                .map(fmt_date)
                .unwrap_or_else(|| format!("?{}", m.date_of_birth))
        }),
        chip.map(|c| fmt_date(c.date_of_birth)),
        same,
    );
    compare(
        ComparedField::Sex,
        None,
        mrz.and_then(|m| m.sex).map(|s| format!("{s:?}")),
        chip.and_then(|c| c.sex).map(|s| format!("{s:?}")),
        same,
    );
    compare(
        ComparedField::DateOfExpiry,
        None,
        mrz.map(|m| {
            m.expiry_date()
                .map(fmt_date)
                .unwrap_or_else(|| format!("?{}", m.date_of_expiry))
        }),
        chip.map(|c| fmt_date(c.date_of_expiry)),
        same,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn age_counts_whole_years() {
        assert_eq!(age_on(date!(2005 - 05 - 02), date!(2025 - 05 - 01)), 19);
        assert_eq!(age_on(date!(2005 - 05 - 01), date!(2025 - 05 - 01)), 20);
        assert_eq!(age_on(date!(2030 - 01 - 01), date!(2025 - 05 - 01)), 0);
    }

    #[test]
    fn random_selection_follows_the_rate_and_the_seed() {
        let picked = (0..10_000)
            .filter(|i| selected_at_random(7, &format!("D-{i}"), 0.1))
            .count();
        assert!((800..1200).contains(&picked), "{picked}");
        assert!(!(0..1000).any(|i| selected_at_random(7, &format!("D-{i}"), 0.0)));
        assert!((0..1000).all(|i| selected_at_random(7, &format!("D-{i}"), 1.0)));
        let a: Vec<bool> = (0..200)
            .map(|i| selected_at_random(1, &format!("D-{i}"), 0.5))
            .collect();
        let b: Vec<bool> = (0..200)
            .map(|i| selected_at_random(2, &format!("D-{i}"), 0.5))
            .collect();
        assert_ne!(a, b, "the seed changes the draw");
    }

    #[test]
    fn names_compare_as_mrz_words() {
        assert_eq!(name_key("Anna-Maria  o'Neil"), "ANNA MARIA O NEIL");
        assert_eq!(doc_key("l898902c3<"), "L898902C3");
    }
}
