//! The deployment's replicated collections and how their fields merge (see `docs/api.md`).
//!
//! Every replica opens its store with [`schema`], so that an acknowledgement made at a site and
//! one made at headquarters merge the same way everywhere.

use mizugiwa_sync::{Collection, FieldOp, Schema, Value};

/// Node health, one record per node, written by the node itself.
pub const SITES: &str = "sites";
/// Alerts and their workflow.
pub const ALERTS: &str = "alerts";
/// Latest drone positions.
pub const DRONES: &str = "drones";
/// Drone flights: one record per sortie (armed to disarmed), written by the site's ground
/// station when it starts and when it ends.
pub const SORTIES: &str = "sorties";
/// Latest AIS position per vessel (MMSI).
pub const VESSELS: &str = "vessels";
/// Detections from imagery and sensors.
pub const DETECTIONS: &str = "detections";
/// Gate throughput counters.
pub const GATE_STATS: &str = "gate_stats";
/// Downsampled tracks: one record per entity and minute.
pub const BREADCRUMBS: &str = "breadcrumbs";
/// Events ingested from TAK clients.
pub const COT: &str = "cot";
/// Keys trusted to sign declaration QR codes, one record per key id (published by HQ).
pub const GATE_KEYS: &str = "gate_keys";
/// Revoked signing keys, one record per key id (published by HQ, never deleted).
pub const GATE_REVOKED: &str = "gate_revoked";
/// The trust list's heartbeat: when HQ last published it (gates judge staleness by it).
pub const GATE_LISTS: &str = "gate_lists";
/// Declarations used at a gate: one record per declaration id with every use in an add-wins
/// set, so two gates that were offline when a declaration was replayed both see both uses.
pub const GATE_USES: &str = "gate_uses";
/// One record per passage through an e-gate: the decision and every reason.
pub const GATE_PASSAGES: &str = "gate_passages";
/// Each airport site's decision journal: `gate_journals/<site>` holds the site's certificate
/// (`cert`, PEM; its key signs the journal) and the journal's head (`epoch`, `head_seq`,
/// `head_hash`). The entries themselves are fields of the passages.
pub const GATE_JOURNALS: &str = "gate_journals";
/// X-ray inspections of containers and baggage.
pub const INSPECTIONS: &str = "inspections";
/// NQR screenings.
pub const SCREENINGS: &str = "screenings";

/// The collections the dashboard shows (and `/api/snapshot` returns).
pub const DASHBOARD_COLLECTIONS: [&str; 7] =
    [SITES, ALERTS, DRONES, VESSELS, DETECTIONS, GATE_STATS, COT];

/// The order an alert moves through. Concurrent actions merge to the furthest state, so an
/// acknowledgement never undoes a resolution made elsewhere.
pub const ALERT_STATES: [&str; 3] = ["new", "acknowledged", "resolved"];

/// What a site reports to the command center: its health, alerts, tracks, detections and
/// decisions. A site that holds only the shared collections (`interest = "shared"`) receives
/// its own records, with what others (headquarters acknowledging an alert) wrote to them, but
/// not other sites' records; the command center and relays (`"everything"`) receive them all
/// (see `mizugiwa_sync::interest`).
pub const REPORTED_COLLECTIONS: [&str; 13] = [
    SITES,
    ALERTS,
    DRONES,
    SORTIES,
    VESSELS,
    DETECTIONS,
    GATE_STATS,
    BREADCRUMBS,
    COT,
    GATE_PASSAGES,
    GATE_JOURNALS,
    INSPECTIONS,
    SCREENINGS,
];

/// The schema every replica of a deployment opens its store with. Fields not declared here
/// are last-writer-wins.
///
/// Shared, i.e. on every replica whatever it holds: the gates' trust lists and revocations
/// (published by headquarters) and the declarations used at gates (a QR code replayed at
/// another airport must be refused there). Everything else is reported.
pub fn schema() -> Schema {
    let mut schema = Schema::new().collection(GATE_USES, Collection::default().set("uses"));
    for name in REPORTED_COLLECTIONS {
        let spec = match name {
            ALERTS => Collection::default()
                .status("status", &ALERT_STATES)
                .set("comments"),
            GATE_STATS => Collection::default()
                .counter("opened")
                .counter("officer_lane"),
            _ => Collection::default(),
        };
        schema = schema.collection(name, spec.reported());
    }
    schema
}

/// Alert severities, lowest first.
pub const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// A new alert, as every raiser writes it (the dashboard and the workflow rely on these fields).
pub struct NewAlert<'a> {
    pub title: String,
    /// e.g. `gate_replay`, `xray_risk` (docs/api.md lists them).
    pub kind: &'a str,
    /// One of [`SEVERITIES`].
    pub severity: &'a str,
    pub site: &'a str,
    /// Where, when the alert has a place.
    pub position: Option<(f64, f64)>,
    pub raised_ms: u64,
    /// The evidence, a JSON object.
    pub detail: serde_json::Value,
}

impl NewAlert<'_> {
    /// The fields of `alerts/<id>` for this alert, status `new`.
    pub fn ops(&self) -> Vec<(&'static str, FieldOp)> {
        let mut ops = vec![
            ("title", FieldOp::Set(Value::Text(self.title.clone()))),
            ("kind", FieldOp::Set(self.kind.into())),
            ("severity", FieldOp::Set(self.severity.into())),
            ("site", FieldOp::Set(self.site.into())),
            ("raised_ms", FieldOp::Set(Value::Int(self.raised_ms as i64))),
            ("status", FieldOp::Advance(ALERT_STATES[0].into())),
            ("detail", FieldOp::Set(Value::Json(self.detail.to_string()))),
        ];
        if let Some((lat, lon)) = self.position {
            ops.push(("lat", FieldOp::Set(Value::Float(lat))));
            ops.push(("lon", FieldOp::Set(Value::Float(lon))));
        }
        ops
    }
}

/// A JSON value as a field value: numbers stay integers when they are, objects and arrays are
/// kept as JSON.
pub fn value_from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Text(s.clone()),
        other => Value::Json(other.to_string()),
    }
}
