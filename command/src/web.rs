//! The dashboard and HTTP API (see `docs/api.md`), served by both daemons: the command center
//! in command mode, a field node in site mode over its own replica.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use mizugiwa_sync::{FieldOp, Store, Value};
use serde::Deserialize;
use serde_json::json;

use crate::assets;
use crate::audit::AuditLog;
use crate::auth::{Auth, Role, Session};
use crate::events::EventHub;
use crate::metrics::Metrics;
use crate::readers::Readers;
use crate::records::{ALERTS, BREADCRUMBS, DASHBOARD_COLLECTIONS, SEVERITIES};

/// Which picture the dashboard shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Headquarters: every site.
    Command,
    /// One site, from its own replica.
    Site {
        /// The site's name.
        site: String,
    },
}

/// Everything the handlers share.
pub struct AppState {
    /// This node's name.
    pub node: String,
    /// Command or site mode.
    pub mode: Mode,
    /// The local replica (its writer: writes, and reads that need the writer's state).
    pub store: Arc<Mutex<Store>>,
    /// Read-only connections for the API's reads, which never wait for the writer.
    pub readers: Readers,
    /// Numbered live events.
    pub hub: Arc<EventHub>,
    /// Users and sessions.
    pub auth: Auth,
    /// The audit log.
    pub audit: Mutex<AuditLog>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Becomes `true` when the daemon shuts down: live streams end so the server can stop.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// At most two password checks at a time: Argon2 is slow and memory-hungry by design.
    pub login_permits: tokio::sync::Semaphore,
    /// The deployment's CA certificate: what sites' signatures are checked against.
    pub ca: rustls::pki_types::CertificateDer<'static>,
}

type Shared = Arc<AppState>;

/// An API error: a status and a message, as `{"error": ...}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError(status, msg.into())
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "request failed");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The router of the whole dashboard and API.
pub fn router(state: Shared, extra: Router) -> Router {
    let mut api = Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/snapshot", get(snapshot))
        .route("/api/records/{collection}", get(records_of))
        .route("/api/tracks", get(tracks))
        .route("/api/events", get(events))
        .route("/api/alerts", post(raise_alert))
        .route("/api/alerts/{id}", axum::routing::delete(withdraw_alert))
        .route("/api/alerts/{id}/{action}", post(alert_action))
        .route("/api/audit", get(audit_log))
        .route("/api/gate/journal/{site}", get(gate_journal));
    // Revoking a node cuts it off from the whole deployment: headquarters decides that, not a
    // site's local dashboard.
    if state.mode == Mode::Command {
        api = api.route("/api/revocations", post(revoke));
    }
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(api)
        .fallback(get(asset))
        .with_state(state.clone())
        .merge(extra)
        .layer(middleware::from_fn_with_state(state, observe))
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Shared,
    extra: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state, extra).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Records request latency per route.
async fn observe(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "static".into());
    // A fixed set: any token is a valid HTTP method, and labels must not grow from input.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH") => m,
        _ => "other",
    }
    .to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    // Event streams live for minutes; their latency is not a request latency.
    if route != "/api/events" {
        state
            .metrics
            .observe_request(&method, &route, resp.status().as_u16(), start.elapsed());
    }
    resp
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

const COOKIE: &str = "mz_session";

fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Some(t.trim().to_owned());
        }
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(&format!("{COOKIE}=")))
        .map(str::to_owned)
        .next()
}

/// The caller's session, if it holds at least `role`.
fn require(state: &AppState, headers: &HeaderMap, role: Role) -> ApiResult<Session> {
    let session = token_of(headers)
        .and_then(|t| state.auth.session(&t))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "log in first"))?;
    if session.role < role {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} may not do this: it needs the {} role",
                session.user,
                role.as_str()
            ),
        ));
    }
    Ok(session)
}

/// Appends to the audit log. Actions call it before they take effect and fail if it fails:
/// nothing an operator does may stand without its audit entry.
fn audit(
    state: &AppState,
    user: &str,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> ApiResult<()> {
    state
        .audit
        .lock()
        .map_err(|_| "audit log lock poisoned".to_string())
        .and_then(|mut a| {
            a.append(now_ms(), user, action, target, detail)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .map_err(|e| {
            tracing::error!(error = %e, user, action, target, "could not write the audit log");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the audit log cannot be written ({e}); nothing was done"),
            )
        })
}

async fn healthz(State(state): State<Shared>) -> Json<serde_json::Value> {
    let mode = match &state.mode {
        Mode::Command => "command",
        Mode::Site { .. } => "site",
    };
    Json(json!({ "status": "ok", "node": state.node, "mode": mode }))
}

async fn metrics(State(state): State<Shared>) -> ApiResult<Response> {
    let (counts, refused) = {
        let store = state.store.lock().map_err(ApiError::internal)?;
        (
            store.collection_counts().map_err(ApiError::internal)?,
            store.refused_batches(),
        )
    };
    state.metrics.set_refused_batches(refused);
    let counts: BTreeMap<String, u64> = counts
        .into_iter()
        .filter(|(c, _)| !c.starts_with('$'))
        .collect();
    state.metrics.set_records(&counts);
    state.metrics.set_sse_clients(state.hub.clients());
    state.metrics.set_sessions(state.auth.open_sessions());
    let body = state.metrics.encode(now_ms());
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

#[derive(Deserialize)]
struct LoginBody {
    user: String,
    password: String,
}

async fn login(
    State(state): State<Shared>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    body: Option<Json<LoginBody>>,
) -> ApiResult<Response> {
    let Json(body) = body.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "send JSON {\"user\": ..., \"password\": ...}",
        )
    })?;
    // Argon2 is deliberately slow and memory-hungry: off the async workers, two at a time.
    let _permit = state
        .login_permits
        .acquire()
        .await
        .map_err(ApiError::internal)?;
    let st = state.clone();
    let (user, password) = (body.user.clone(), body.password);
    let result = tokio::task::spawn_blocking(move || st.auth.login(&user, &password))
        .await
        .map_err(ApiError::internal)?;
    match result {
        Ok((token, session)) => {
            if let Err(e) = audit(
                &state,
                &session.user,
                "login",
                "",
                json!({ "from": from.to_string() }),
            ) {
                state.auth.logout(&token);
                return Err(e);
            }
            let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
            let mut resp = Json(json!({
                "token": token, "user": session.user, "role": session.role.as_str()
            }))
            .into_response();
            resp.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
            );
            Ok(resp)
        }
        Err(e) => {
            let claimed: String = body.user.chars().take(64).collect();
            // Best effort: a failed login changes nothing.
            let _ = audit(
                &state,
                &claimed,
                "login_failed",
                "",
                json!({ "from": from.to_string() }),
            );
            Err(ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
        }
    }
}

async fn logout(State(state): State<Shared>, headers: HeaderMap) -> ApiResult<Response> {
    let session = require(&state, &headers, Role::Viewer)?;
    if let Some(t) = token_of(&headers) {
        state.auth.logout(&t);
    }
    let _ = audit(&state, &session.user, "logout", "", json!({}));
    let mut resp = Json(json!({ "ok": true })).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("mz_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(resp)
}

async fn me(State(state): State<Shared>, headers: HeaderMap) -> ApiResult<Json<Session>> {
    Ok(Json(require(&state, &headers, Role::Viewer)?))
}

fn list_json(store: &Store, collection: &str) -> ApiResult<Vec<serde_json::Value>> {
    Ok(store
        .list(collection)
        .map_err(ApiError::internal)?
        .iter()
        .map(|r| r.to_json())
        .collect())
}

async fn snapshot(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    require(&state, &headers, Role::Viewer)?;
    // The event id is taken before reading, so that a client resuming from it sees every
    // change made after (some perhaps twice, which applying by record id makes harmless).
    let event_id = state.hub.last_id();
    let reading = state.clone();
    let collections = tokio::task::spawn_blocking(move || {
        reading.readers.read(|store| {
            let mut collections = serde_json::Map::new();
            for c in DASHBOARD_COLLECTIONS {
                collections.insert(c.into(), json!(list_json(store, c)?));
            }
            Ok::<_, ApiError>(collections)
        })
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)??;
    let (mode, site) = match &state.mode {
        Mode::Command => ("command", None),
        Mode::Site { site } => ("site", Some(site.clone())),
    };
    Ok(Json(json!({
        "node": state.node,
        "mode": mode,
        "site": site,
        "now_ms": now_ms(),
        "event_id": event_id,
        "collections": collections,
    })))
}

async fn records_of(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(collection): Path<String>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    require(&state, &headers, Role::Viewer)?;
    if collection.starts_with('$') {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "system collections are not served",
        ));
    }
    let records = tokio::task::spawn_blocking(move || {
        state.readers.read(|store| list_json(store, &collection))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)??;
    Ok(Json(records))
}

/// A site's gate decision journal, checked: chain, signatures, every passage in it as signed.
async fn gate_journal(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(site): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    require(&state, &headers, Role::Viewer)?;
    let check = tokio::task::spawn_blocking(move || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        state
            .readers
            .read(|store| crate::gate_journal::check(store, &state.ca, &site, now))?
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, format!("{e:#}")))?;
    let intact = check.is_intact();
    let mut body = serde_json::to_value(&check).map_err(ApiError::internal)?;
    body["intact"] = intact.into();
    Ok(Json(body))
}

#[derive(Deserialize)]
struct TrackQuery {
    kind: Option<String>,
    entity: Option<String>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
}

async fn tracks(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<TrackQuery>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    require(&state, &headers, Role::Viewer)?;
    let since = q.since_ms.unwrap_or(0);
    let until = q.until_ms.unwrap_or(u64::MAX);
    let reading = state.clone();
    let crumbs = tokio::task::spawn_blocking(move || reading.readers.read(|s| s.list(BREADCRUMBS)))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let mut by_entity: BTreeMap<(String, String), Vec<serde_json::Value>> = BTreeMap::new();
    for r in crumbs {
        let text = |f: &str| r.get(f).and_then(|v| v.as_str()).unwrap_or("").to_owned();
        let (kind, entity) = (text("kind"), text("entity"));
        if q.kind.as_ref().is_some_and(|k| *k != kind)
            || q.entity.as_ref().is_some_and(|e| *e != entity)
        {
            continue;
        }
        let points = match r.get("points") {
            Some(Value::Json(s)) => serde_json::from_str::<Vec<serde_json::Value>>(s).ok(),
            _ => None,
        }
        .unwrap_or_default();
        let entry = by_entity.entry((kind, entity)).or_default();
        for p in points {
            let at = p.get(0).and_then(|v| v.as_u64()).unwrap_or(0);
            if at >= since && at <= until {
                entry.push(p);
            }
        }
    }
    Ok(Json(
        by_entity
            .into_iter()
            .map(|((kind, entity), mut points)| {
                points.sort_by_key(|p| p.get(0).and_then(|v| v.as_u64()).unwrap_or(0));
                json!({ "kind": kind, "entity": entity, "points": points })
            })
            .collect(),
    ))
}

async fn events(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    require(&state, &headers, Role::Viewer)?;
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let resume = state.hub.resume(last_seen);
    let mut stop = state.shutdown.clone();
    // The session is checked again now and then: a stream ends with its session (logout,
    // expiry), not only when the browser closes it.
    let token = token_of(&headers).unwrap_or_default();
    let st = state.clone();
    let mut recheck = tokio::time::interval(Duration::from_secs(10));
    recheck.tick().await;
    let stream = async_stream::stream! {
        for e in resume.backlog {
            yield Ok(SseEvent::default().id(e.id.to_string()).event(e.kind).data(&*e.data));
        }
        let mut sent = resume.start_after;
        let mut live = resume.live;
        loop {
            let next = tokio::select! {
                n = live.recv() => n,
                _ = recheck.tick() => {
                    if st.auth.session(&token).is_none() {
                        break;
                    }
                    continue;
                }
                _ = stop.wait_for(|s| *s) => break,
            };
            match next {
                Ok(e) if e.id > sent || e.kind == "reset" => {
                    sent = sent.max(e.id);
                    yield Ok(SseEvent::default().id(e.id.to_string()).event(e.kind).data(&*e.data));
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // This client fell behind the live stream: have it reload.
                    yield Ok(SseEvent::default().event("reset").data(format!("{{\"event_id\":{sent}}}")));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}

#[derive(Deserialize)]
struct RaiseBody {
    title: String,
    severity: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    detail: Option<serde_json::Value>,
}

async fn raise_alert(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Option<Json<RaiseBody>>,
) -> ApiResult<Json<serde_json::Value>> {
    let session = require(&state, &headers, Role::Operator)?;
    let Json(body) = body.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "send JSON {\"title\", \"severity\", \"lat\", \"lon\"}",
        )
    })?;
    let severity = body.severity.unwrap_or_else(|| "medium".into());
    if !SEVERITIES.contains(&severity.as_str()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("severity must be one of {SEVERITIES:?}"),
        ));
    }
    if body.title.trim().is_empty() || body.title.len() > 500 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "title must be 1-500 characters",
        ));
    }
    for (name, v, limit) in [("lat", body.lat, 90.0), ("lon", body.lon, 180.0)] {
        if v.is_some_and(|v| !v.is_finite() || v.abs() > limit) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{name} out of range"),
            ));
        }
    }
    let site = match &state.mode {
        Mode::Command => state.node.clone(),
        Mode::Site { site } => site.clone(),
    };
    let id = format!("{site}-{}", uuid::Uuid::new_v4().simple());
    let mut ops: Vec<(&str, FieldOp)> = vec![
        ("title", FieldOp::Set(body.title.clone().into())),
        ("kind", FieldOp::Set("manual".into())),
        ("severity", FieldOp::Set(severity.into())),
        ("site", FieldOp::Set(site.into())),
        ("raised_ms", FieldOp::Set(Value::Int(now_ms() as i64))),
        ("raised_by", FieldOp::Set(session.user.clone().into())),
        ("status", FieldOp::Advance("new".into())),
    ];
    if let (Some(lat), Some(lon)) = (body.lat, body.lon) {
        ops.push(("lat", FieldOp::Set(Value::Float(lat))));
        ops.push(("lon", FieldOp::Set(Value::Float(lon))));
    }
    if let Some(d) = &body.detail {
        ops.push(("detail", FieldOp::Set(Value::Json(d.to_string()))));
    }
    audit(
        &state,
        &session.user,
        "raise",
        &id,
        json!({ "title": body.title }),
    )?;
    #[cfg(feature = "drill-fault-drop-write")]
    {
        use std::sync::atomic::{AtomicU64, Ordering};
        static RAISED: AtomicU64 = AtomicU64::new(0);
        if RAISED.fetch_add(1, Ordering::SeqCst) == 4 {
            tracing::error!(%id, "drill fault: acknowledging this alert without writing it");
            return Ok(Json(
                json!({ "collection": ALERTS, "id": id, "fields": {} }),
            ));
        }
    }
    let record = {
        let mut store = state.store.lock().map_err(ApiError::internal)?;
        store.put(ALERTS, &id, &ops).map_err(ApiError::internal)?;
        store.get(ALERTS, &id).map_err(ApiError::internal)?
    };
    Ok(Json(record.map(|r| r.to_json()).unwrap_or_default()))
}

#[derive(Deserialize, Default)]
struct ActionBody {
    assignee: Option<String>,
    text: Option<String>,
}

/// Withdraws an alert raised in error: the record is deleted on every replica (a later write
/// to it elsewhere brings it back, as an undelete, never silently).
async fn withdraw_alert(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let session = require(&state, &headers, Role::Operator)?;
    let mut store = state.store.lock().map_err(ApiError::internal)?;
    if store
        .get(ALERTS, &id)
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no alert {id:?}"),
        ));
    }
    audit(&state, &session.user, "withdraw", &id, json!({}))?;
    store.delete(ALERTS, &id).map_err(ApiError::internal)?;
    Ok(Json(json!({ "withdrawn": id })))
}

async fn alert_action(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<ActionBody>>,
) -> ApiResult<Json<serde_json::Value>> {
    let session = require(&state, &headers, Role::Operator)?;
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let (ops, detail): (Vec<(&str, FieldOp)>, serde_json::Value) = match action.as_str() {
        "ack" => (
            vec![
                ("status", FieldOp::Advance("acknowledged".into())),
                ("acked_by", FieldOp::Set(session.user.clone().into())),
                ("acked_ms", FieldOp::Set(Value::Int(now_ms() as i64))),
            ],
            json!({}),
        ),
        "resolve" => (
            vec![
                ("status", FieldOp::Advance("resolved".into())),
                ("resolved_by", FieldOp::Set(session.user.clone().into())),
                ("resolved_ms", FieldOp::Set(Value::Int(now_ms() as i64))),
            ],
            json!({}),
        ),
        "assign" => {
            let who = body.assignee.unwrap_or_default();
            if who.trim().is_empty() || who.len() > 100 {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "send JSON {\"assignee\": NAME} (1-100 characters)",
                ));
            }
            (
                vec![("assignee", FieldOp::Set(who.clone().into()))],
                json!({ "assignee": who }),
            )
        }
        "comment" => {
            let text = body.text.unwrap_or_default();
            if text.trim().is_empty() || text.len() > 2000 {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "send JSON {\"text\": ...} (1-2000 characters)",
                ));
            }
            let c = json!({ "at_ms": now_ms(), "by": session.user, "text": text }).to_string();
            (vec![("comments", FieldOp::Add(c))], json!({ "text": text }))
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown alert action {other:?}; use ack, resolve, assign or comment"),
            ))
        }
    };
    let record = {
        let mut store = state.store.lock().map_err(ApiError::internal)?;
        if store
            .get(ALERTS, &id)
            .map_err(ApiError::internal)?
            .is_none()
        {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no alert {id:?}"),
            ));
        }
        // On record before it takes effect (and only for an alert that exists).
        audit(&state, &session.user, &action, &id, detail)?;
        store.put(ALERTS, &id, &ops).map_err(ApiError::internal)?;
        store.get(ALERTS, &id).map_err(ApiError::internal)?
    };
    Ok(Json(record.map(|r| r.to_json()).unwrap_or_default()))
}

async fn audit_log(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    require(&state, &headers, Role::Admin)?;
    let audit = state.audit.lock().map_err(ApiError::internal)?;
    let verified = crate::audit::verify(audit.path());
    let entries = audit.entries().map_err(ApiError::internal)?;
    Ok(Json(json!({
        "verified": verified.as_ref().ok(),
        "error": verified.as_ref().err().map(|e| e.to_string()),
        "entries": entries,
    })))
}

#[derive(Deserialize)]
struct RevokeBody {
    target: String,
    reason: Option<String>,
}

/// Revokes a node name or certificate serial; the revocation replicates to every node, whose
/// handshakes refuse it and whose open sessions with it are closed.
async fn revoke(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Option<Json<RevokeBody>>,
) -> ApiResult<Json<serde_json::Value>> {
    let session = require(&state, &headers, Role::Admin)?;
    let Json(body) = body.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "send JSON {\"target\": NODE_OR_SERIAL, \"reason\": ...}",
        )
    })?;
    if body.target == state.node {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "a node cannot revoke itself",
        ));
    }
    let reason = body.reason.unwrap_or_else(|| "revoked by operator".into());
    audit(
        &state,
        &session.user,
        "revoke",
        &body.target,
        json!({ "reason": reason }),
    )?;
    state
        .store
        .lock()
        .map_err(ApiError::internal)?
        .revoke(&body.target, &reason)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(Json(json!({ "revoked": body.target, "reason": reason })))
}

async fn asset(uri: axum::http::Uri) -> Response {
    let path = match uri.path() {
        "/" => "/index.html",
        p => p,
    };
    match assets::find(path) {
        Some((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        None => {
            ApiError::new(StatusCode::NOT_FOUND, format!("no such page: {path}")).into_response()
        }
    }
}

/// Builds the shared state.
// Each argument is a separate part the daemon runtime owns and hands over once, here.
#[allow(clippy::too_many_arguments)]
pub fn state(
    node: &str,
    mode: Mode,
    store: Arc<Mutex<Store>>,
    auth: Auth,
    audit: AuditLog,
    metrics: Metrics,
    shutdown: tokio::sync::watch::Receiver<bool>,
    ca: rustls::pki_types::CertificateDer<'static>,
) -> Shared {
    let hub = EventHub::new(10_000);
    // The pump has a reader of its own: it must not queue behind a snapshot.
    tokio::spawn(crate::events::pump(
        store.clone(),
        Readers::open_or_writer(&store, 1),
        hub.clone(),
        shutdown.clone(),
    ));
    Arc::new(AppState {
        node: node.to_owned(),
        mode,
        readers: Readers::open_or_writer(&store, 2),
        store,
        hub,
        auth,
        audit: Mutex::new(audit),
        metrics,
        shutdown,
        login_permits: tokio::sync::Semaphore::new(2),
        ca,
    })
}
