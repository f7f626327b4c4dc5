//! The drill report: `report.json` for machines and `report.html`, one self-contained page
//! (inline SVG, no script, no external request) for the BCP coordinator.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::check::{self, Recovery, Verdicts};
use crate::runner::Observed;
use crate::workload::Op;

#[derive(Serialize)]
struct Json<'a> {
    scenario: &'a crate::scenario::Scenario,
    passed: bool,
    started_at_unix_ms: u64,
    invariants: &'a Verdicts,
    converged_after_secs: Option<f64>,
    hashes: &'a BTreeMap<String, String>,
    recovery: &'a [Recovery],
    writes: BTreeMap<String, SiteWrites>,
    faults: &'a [crate::runner::FaultEvent],
    node_states: &'a [crate::runner::NodeState],
    lag: &'a [crate::workload::LagSample],
    refused_batches: &'a BTreeMap<String, u64>,
    attempts: &'a [crate::workload::Attempt],
    /// Every sync link's proxy counters (narrow links: what waited, what was tail-dropped).
    links: &'a [crate::proxy::LinkTally],
    /// Per site with an AIS feed: what it sent and what each live replica holds.
    ais: BTreeMap<String, AisSummary>,
}

#[derive(Serialize, Default)]
struct AisSummary {
    sentences: usize,
    delivered: usize,
    ships: usize,
    /// Live replica → its vessels records of this site.
    vessels: BTreeMap<String, usize>,
}

#[derive(Serialize, Default)]
struct SiteWrites {
    attempted: u64,
    acknowledged: u64,
    failed: u64,
}

/// Writes `report.json` and `report.html` into `dir`.
pub fn write(dir: &Path, o: &Observed, v: &Verdicts) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let recovery = check::recovery(o, v);
    let mut writes: BTreeMap<String, SiteWrites> = BTreeMap::new();
    for a in &o.attempts {
        let w = writes.entry(a.site.clone()).or_default();
        w.attempted += 1;
        if a.acked {
            w.acknowledged += 1;
        } else {
            w.failed += 1;
        }
    }
    let mut ais: BTreeMap<String, AisSummary> = BTreeMap::new();
    for (site, sent) in &o.ais_sent {
        let a = ais.entry(site.clone()).or_default();
        a.sentences = sent.len();
        a.delivered = sent.iter().filter(|s| s.delivered).count();
        a.ships = sent
            .iter()
            .map(|s| s.mmsi)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        for (node, vessels) in &o.vessels {
            let mine = vessels
                .values()
                .filter(|r| r["fields"]["site"] == site.as_str())
                .count();
            a.vessels.insert(node.clone(), mine);
        }
    }
    let json = Json {
        scenario: &o.scenario,
        passed: v.passed(),
        started_at_unix_ms: o.started_at_unix_ms,
        invariants: v,
        converged_after_secs: o.converged_after_secs,
        hashes: &o.hashes,
        recovery: &recovery,
        writes,
        faults: &o.faults,
        node_states: &o.states,
        lag: &o.lag,
        refused_batches: &o.refused_batches,
        attempts: &o.attempts,
        links: &o.links,
        ais,
    };
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&json)?)?;
    std::fs::write(dir.join("report.html"), html(o, v, &recovery))?;
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 900.0;
const LEFT: f64 = 110.0;

fn x_of(t_ms: u64, end_ms: u64) -> f64 {
    LEFT + (W - LEFT - 10.0) * (t_ms as f64 / end_ms.max(1) as f64)
}

/// The page.
fn html(o: &Observed, v: &Verdicts, recovery: &[Recovery]) -> String {
    let s = &o.scenario;
    let end_ms = o
        .lag
        .last()
        .map(|l| l.t_ms)
        .unwrap_or(0)
        .max((s.settle_at_secs() * 1000.0) as u64)
        + 1000;
    let mut h = String::new();
    let verdict = if v.passed() { "PASSED" } else { "FAILED" };
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Drill {name}: {verdict}</title>\
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:960px;color:#222}}\
h1 span.ok{{color:#1a7f37}} h1 span.bad{{color:#cf222e}} table{{border-collapse:collapse;margin:1em 0}}\
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}\
.pass{{color:#1a7f37;font-weight:bold}} .fail{{color:#cf222e;font-weight:bold}} code{{font-size:12px}}\
svg{{background:#fafafa;border:1px solid #ddd}}</style></head><body>\
<h1>Drill <code>{name}</code>: <span class=\"{cls}\">{verdict}</span></h1><p>{summary}</p>",
        name = esc(&s.name),
        cls = if v.passed() { "ok" } else { "bad" },
        summary = esc(&s.summary),
    );
    let _ = write!(
        h,
        "<p>{} nodes, workload {:.0} s at {} alerts/s per site, convergence bound {} s; \
         replicas identical {}.</p>",
        s.nodes.len(),
        s.duration_secs,
        s.workload.alerts_per_sec,
        s.converge_within_secs,
        match o.converged_after_secs {
            Some(t) => format!("{t:.2} s after the settle point"),
            None => "<b>never</b>".into(),
        }
    );

    // Invariants.
    h.push_str("<h2>Invariants</h2><table><tr><th>invariant</th><th>verdict</th><th>checked</th><th>evidence</th></tr>");
    for i in &v.0 {
        let _ = write!(
            h,
            "<tr><td><b>{}</b><br><small>{}</small></td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&i.name),
            esc(&i.description),
            if i.passed { "pass" } else { "fail" },
            if i.passed { "held" } else { "VIOLATED" },
            esc(&i.checked),
            i.evidence
                .iter()
                .map(|e| format!("<code>{}</code>", esc(e)))
                .collect::<Vec<_>>()
                .join("<br>")
        );
    }
    h.push_str("</table>");

    // Timeline: one row per node, coloured by condition; fault markers.
    h.push_str("<h2>Timeline</h2>");
    let nodes: Vec<&str> = s.nodes.iter().map(|n| n.name.as_str()).collect();
    let row_h = 26.0;
    let height = 40.0 + row_h * nodes.len() as f64 + 20.0;
    let _ = write!(
        h,
        "<svg width=\"{W}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, node) in nodes.iter().enumerate() {
        let y = 30.0 + row_h * i as f64;
        let _ = write!(h, "<text x=\"4\" y=\"{}\">{}</text>", y + 15.0, esc(node));
        let mine: Vec<&crate::runner::NodeState> =
            o.states.iter().filter(|st| st.node == *node).collect();
        for (k, st) in mine.iter().enumerate() {
            let until = mine.get(k + 1).map(|n| n.t_ms).unwrap_or(end_ms);
            let (colour, what) = match st.life {
                crate::cluster::Life::Running if st.disk_full => ("#bf8700", "disk full"),
                crate::cluster::Life::Running if st.skew_secs.is_some() => {
                    ("#8250df", "clock skewed")
                }
                crate::cluster::Life::Running if !st.reaches_command => {
                    ("#fb8f44", "cut off from HQ")
                }
                crate::cluster::Life::Running if st.degraded.is_some() => {
                    ("#1b7c83", "running, links degraded")
                }
                crate::cluster::Life::Running => ("#2da44e", "running, linked"),
                crate::cluster::Life::NotStarted => ("#eaeef2", "not started"),
                crate::cluster::Life::Killed => ("#cf222e", "killed"),
                crate::cluster::Life::Lost => ("#6e7781", "lost"),
                crate::cluster::Life::Died => ("#000000", "crashed"),
            };
            let (x0, x1) = (x_of(st.t_ms, end_ms), x_of(until, end_ms));
            let what = match &st.degraded {
                Some(d) if st.life == crate::cluster::Life::Running => format!("{what} ({d})"),
                _ => what.to_owned(),
            };
            let _ = write!(
                h,
                "<rect x=\"{x0:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"18\" fill=\"{colour}\"><title>{} {} from t={:.1} s</title></rect>",
                (x1 - x0).max(0.5),
                esc(node),
                esc(&what),
                st.t_ms as f64 / 1000.0
            );
        }
    }
    for f in &o.faults {
        let x = x_of(f.t_ms, end_ms);
        let _ = write!(
            h,
            "<line x1=\"{x:.1}\" y1=\"22\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#24292f\" stroke-dasharray=\"3,2\"><title>t={:.1} s: {}</title></line>",
            height - 20.0,
            f.t_ms as f64 / 1000.0,
            esc(&f.description)
        );
    }
    let settle = x_of((s.settle_at_secs() * 1000.0) as u64, end_ms);
    let _ = write!(
        h,
        "<line x1=\"{settle:.1}\" y1=\"22\" x2=\"{settle:.1}\" y2=\"{:.1}\" stroke=\"#0969da\" stroke-width=\"2\"><title>workload end / settle point</title></line>",
        height - 20.0
    );
    axis(&mut h, end_ms, height - 6.0);
    h.push_str("</svg><p><small>green: running and linked to a command center; teal: linked through degraded links (narrowed, delayed or lossy); orange: cut off; red: killed; grey: lost; purple: clock skewed; amber: disk full. Dashed lines: faults (hover for details); blue: end of the workload.</small></p>");
    h.push_str("<h3>Faults</h3><table><tr><th>t</th><th>fault</th><th>outcome</th></tr>");
    for f in &o.faults {
        let _ = write!(
            h,
            "<tr><td>{:.1} s</td><td>{}</td><td>{}</td></tr>",
            f.t_ms as f64 / 1000.0,
            esc(&f.description),
            esc(&match (&f.error, &f.note) {
                (Some(e), _) => format!("failed: {e}"),
                (None, Some(n)) => n.clone(),
                (None, None) => "applied".into(),
            })
        );
    }
    h.push_str("</table>");
    if o.links.iter().any(|l| l.narrowed > 0 || l.tail_dropped > 0) {
        h.push_str("<h3>Narrow links</h3><table><tr><th>link</th><th>datagrams (kB) through the cap</th><th>dropped at the tail (queue full)</th><th>longest wait (queue and sending)</th><th>dropped by cuts and loss</th></tr>");
        for l in o
            .links
            .iter()
            .filter(|l| l.narrowed > 0 || l.tail_dropped > 0)
        {
            let _ = write!(
                h,
                "<tr><td>{} → {}</td><td>{} ({:.1})</td><td>{}</td><td>{} ms</td><td>{}</td></tr>",
                esc(&l.from),
                esc(&l.to),
                l.narrowed,
                l.narrowed_bytes as f64 / 1000.0,
                l.tail_dropped,
                l.max_wait_ms,
                l.dropped
            );
        }
        h.push_str("</table>");
    }

    // Writes per site over time (5 s buckets), acknowledged and failed.
    h.push_str("<h2>Writes per site</h2>");
    let bucket = 5_000u64;
    let buckets = (end_ms / bucket + 1) as usize;
    let mut series: BTreeMap<&str, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
    for a in &o.attempts {
        let e = series
            .entry(a.site.as_str())
            .or_insert_with(|| (vec![0; buckets], vec![0; buckets]));
        let b = ((a.t_ms / bucket) as usize).min(buckets - 1);
        if a.acked {
            e.0[b] += 1;
        } else {
            e.1[b] += 1;
        }
    }
    let max = series
        .values()
        .flat_map(|(a, f)| a.iter().chain(f))
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    chart(
        &mut h,
        end_ms,
        &series
            .iter()
            .flat_map(|(site, (acked, failed))| {
                [
                    (format!("{site} acknowledged"), acked.clone(), false),
                    (format!("{site} failed"), failed.clone(), true),
                ]
            })
            .collect::<Vec<_>>(),
        bucket,
        max,
        "calls per 5 s",
    );

    // Replication lag at the command centers.
    h.push_str("<h2>Replication lag at the command centers</h2>");
    let mut lag: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for l in &o.lag {
        for (hq, per_site) in &l.missing {
            for (site, n) in per_site {
                lag.entry(format!("{site} → {hq}"))
                    .or_default()
                    .push((l.t_ms, *n));
            }
        }
    }
    let lag_max = lag
        .values()
        .flatten()
        .map(|p| p.1)
        .max()
        .unwrap_or(1)
        .max(1);
    let lag_h = 220.0;
    let _ = write!(
        h,
        "<svg width=\"{W}\" height=\"{lag_h}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    let palette = [
        "#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#57606a",
    ];
    for (i, (name, points)) in lag.iter().enumerate() {
        let colour = palette[i % palette.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(t, n)| {
                format!(
                    "{:.1},{:.1}",
                    x_of(*t, end_ms),
                    lag_h - 30.0 - (lag_h - 50.0) * (*n as f64 / lag_max as f64)
                )
            })
            .collect();
        let _ = write!(
            h,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/><text x=\"{}\" y=\"{}\" fill=\"{colour}\">{}</text>",
            path.join(" "),
            LEFT + 10.0 + 200.0 * (i % 4) as f64,
            14 + 14 * (i / 4),
            esc(name)
        );
    }
    let _ = write!(
        h,
        "<text x=\"4\" y=\"40\">{lag_max} alerts</text><text x=\"4\" y=\"{}\">0</text>",
        lag_h - 30.0
    );
    axis(&mut h, end_ms, lag_h - 6.0);
    h.push_str("</svg><p><small>Acknowledged alerts of each site that the command center does not have yet, sampled every second.</small></p>");

    // Recovery.
    h.push_str("<h2>Recovery per site</h2><table><tr><th>site</th><th>last outage ended</th><th>HQ caught up</th><th>recovery time</th><th>recovery point (acknowledged writes lost)</th></tr>");
    for r in recovery {
        let t = |v: Option<u64>| {
            v.map(|t| format!("t={:.1} s", t as f64 / 1000.0))
                .unwrap_or_else(|| "—".into())
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.site),
            t(r.outage_end_ms),
            t(r.caught_up_ms),
            r.recovery_secs
                .map(|s| format!("{s:.1} s"))
                .unwrap_or_else(|| "—".into()),
            r.lost_writes
        );
    }
    h.push_str("</table>");
    let calls = |op: Op| o.attempts.iter().filter(|a| a.op == op).count();
    let _ = write!(
        h,
        "<p><small>{} raises, {} acknowledgements, {} withdrawals and {} gate passages attempted; full detail in report.json.</small></p></body></html>",
        calls(Op::Raise),
        calls(Op::Ack),
        calls(Op::Withdraw),
        calls(Op::Pass)
    );
    h
}

fn axis(h: &mut String, end_ms: u64, y: f64) {
    let step = match end_ms / 1000 {
        0..=60 => 10,
        61..=300 => 30,
        301..=1200 => 120,
        _ => 600,
    };
    let mut t = 0;
    while t * 1000 <= end_ms {
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{y}\" font-size=\"10\">{t}s</text>",
            x_of(t * 1000, end_ms) - 6.0
        );
        t += step;
    }
}

fn chart(
    h: &mut String,
    end_ms: u64,
    series: &[(String, Vec<u64>, bool)],
    bucket: u64,
    max: u64,
    unit: &str,
) {
    let height = 200.0;
    let _ = write!(
        h,
        "<svg width=\"{W}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    let palette = ["#1a7f37", "#0969da", "#8250df", "#57606a"];
    let mut shown = 0;
    for (name, values, failed) in series {
        if *failed && values.iter().all(|v| *v == 0) {
            continue;
        }
        let colour = if *failed {
            "#cf222e"
        } else {
            palette[shown % palette.len()]
        };
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                format!(
                    "{:.1},{:.1}",
                    x_of(i as u64 * bucket + bucket / 2, end_ms),
                    height - 30.0 - (height - 50.0) * (*v as f64 / max as f64)
                )
            })
            .collect();
        let _ = write!(
            h,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/><text x=\"{}\" y=\"{}\" fill=\"{colour}\">{}</text>",
            points.join(" "),
            LEFT + 10.0 + 200.0 * (shown % 4) as f64,
            14 + 14 * (shown / 4),
            esc(name)
        );
        shown += 1;
    }
    let _ = write!(
        h,
        "<text x=\"4\" y=\"40\">{max} {unit}</text><text x=\"4\" y=\"{}\">0</text>",
        height - 30.0
    );
    axis(h, end_ms, height - 6.0);
    h.push_str("</svg>");
}
