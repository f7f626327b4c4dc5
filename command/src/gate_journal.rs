//! Checking an airport site's gate decision journal against the replica.
//!
//! The site signs each decision with the key of its certificate and chains it to the one
//! before (`mizugiwa_gate_edge::journal`); the entries travel as fields of the passages, and
//! `gate_journals/<site>` carries the certificate and the head. Here, anywhere the records have
//! synced to (headquarters first of all), the check is:
//!
//! 1. the certificate was issued by this deployment's CA, is valid, and names the site;
//! 2. every entry's hash, signature and link hold, and no number is missing up to the head;
//! 3. every passage of the site is in the journal, and says what its entry says (a peer that
//!    rewrote a passage's `outcome` is caught here, since only the entry is signed).

use std::collections::BTreeMap;

use anyhow::Context;
use mizugiwa_gate_edge::journal::{Entry, Found, JournalVerifier, Problem, Report, SealedEntry};
use mizugiwa_sync::pki;
use mizugiwa_sync::{Store, Value};
use rustls::pki_types::CertificateDer;
use serde::Serialize;

use crate::records::{GATE_JOURNALS, GATE_PASSAGES};

/// The result of checking one site's journal.
#[derive(Debug, Serialize)]
pub struct JournalCheck {
    /// Entries chained, signed and linked; epochs; problems.
    #[serde(flatten)]
    pub report: Report,
    /// The certificate's serial (hex) whose key signed.
    pub signer_serial: String,
    /// Passages of the site without a journal entry.
    pub unjournaled: Vec<String>,
    /// Passages whose fields disagree with their signed entry.
    pub altered: Vec<String>,
}

impl JournalCheck {
    /// The journal holds, and every passage is in it as signed.
    pub fn is_intact(&self) -> bool {
        self.report.is_intact() && self.unjournaled.is_empty() && self.altered.is_empty()
    }
}

fn text(v: Option<&Value>) -> Option<&str> {
    match v {
        Some(Value::Text(t)) => Some(t),
        _ => None,
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    }
}

/// Checks `site`'s journal as `store` holds it; `ca` is the deployment's CA certificate.
pub fn check(
    store: &Store,
    ca: &CertificateDer<'_>,
    site: &str,
    now_unix: i64,
) -> anyhow::Result<JournalCheck> {
    let head = store.get(GATE_JOURNALS, site)?.with_context(|| {
        format!("no journal of site {site:?} in this replica (no gate decision synced yet?)")
    })?;
    let cert = text(head.get("cert"))
        .with_context(|| format!("site {site:?} has published no certificate"))?;
    let (signer, spki) = pki::verify_issued(cert, ca, now_unix)
        .with_context(|| format!("the certificate site {site:?} published"))?;
    anyhow::ensure!(
        signer.name == site,
        "site {site:?} published the certificate of {:?}",
        signer.name
    );
    let verifier = JournalVerifier::from_spki_der(&spki)?;

    let mut sealed = Vec::new();
    let mut unjournaled = Vec::new();
    let mut altered = Vec::new();
    let mut passages: BTreeMap<usize, (String, [Option<String>; 4])> = BTreeMap::new();
    for r in store.list(GATE_PASSAGES)? {
        if text(r.get("site")) != Some(site) {
            continue;
        }
        let (Some(entry), Some(hash), Some(sig)) = (
            text(r.get("journal")),
            text(r.get("journal_hash")),
            text(r.get("journal_sig")),
        ) else {
            unjournaled.push(r.id.clone());
            continue;
        };
        let shown = [
            text(r.get("gate")).map(str::to_owned),
            text(r.get("outcome")).map(str::to_owned),
            int(r.get("at_ms")).map(|n| n.to_string()),
            text(r.get("declaration_id")).map(str::to_owned),
        ];
        passages.insert(sealed.len(), (r.id.clone(), shown));
        sealed.push(SealedEntry {
            entry: entry.to_owned(),
            hash: hash.to_owned(),
            sig: sig.to_owned(),
        });
    }
    let mut report = verifier.check(site, &sealed);
    // A passage must say what its (signed) entry says; unreadable entries are reported already.
    for (i, (id, shown)) in &passages {
        let Ok(entry) = serde_json::from_str::<Entry>(&sealed[*i].entry) else {
            continue;
        };
        let outcome = serde_json::to_value(entry.decided.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        let signed = [
            Some(entry.decided.gate.clone()),
            outcome,
            Some(entry.decided.at_ms.to_string()),
            entry.decided.declaration_id.clone(),
        ];
        if entry.decided.passage != *id || signed != *shown {
            altered.push(id.clone());
        }
    }
    // Entries after the last one present but before the published head were dropped (or have
    // not synced yet).
    if let (Some(epoch), Some(head_seq)) = (text(head.get("epoch")), int(head.get("head_seq"))) {
        let last = report
            .epochs
            .iter()
            .find(|e| e.epoch == epoch)
            .map_or(0, |e| e.last_seq);
        if let Ok(head_seq) = u64::try_from(head_seq) {
            if head_seq > last {
                report.problems.push(Found {
                    epoch: epoch.to_owned(),
                    problem: Problem::Missing {
                        from: last + 1,
                        to: head_seq,
                    },
                });
            }
        }
    }
    Ok(JournalCheck {
        report,
        signer_serial: signer.serial,
        unjournaled,
        altered,
    })
}
