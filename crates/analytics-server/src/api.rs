//! The HTTP API of SPEC §9 under `/api/analytics`, with `/healthz`, `/readyz`,
//! `/metrics` and the OpenAPI document. Only this crate knows HTTP and the wire format;
//! the request and response types live here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use analytics::core::config::{ApiKey, Scope};
use analytics::core::event::RawEvent;
use analytics::core::report::{AgentMetrics, BusinessMetrics, TicketMetrics};
use analytics::core::time::YearMonth;
use analytics::stats::{Jobs, Stats};
use analytics::tracker::{TrackError, Tracker};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::authorize;
use crate::error::ApiError;
use crate::extract::{
    AckParams, Admin, DateParams, FunnelParams, Ingest, Key, MonthParams, NoParams, Params,
    RangeParams, Read,
};

/// The largest request body (SPEC §9).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The most events one request may carry (SPEC §9).
pub const MAX_BATCH: usize = 1000;

const OPENAPI: &str = include_str!("openapi.json");

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

struct Inner {
    tracker: Tracker,
    stats: Stats,
    keys: Vec<ApiKey>,
    jobs: Option<Jobs>,
    /// How long a client may take to send a body.
    body_timeout: std::time::Duration,
    requests_rejected_events: AtomicU64,
    /// Sessions exports in progress (each holds a database connection while its client
    /// reads): at most [`SESSION_EXPORTS`] at once.
    session_exports: Arc<tokio::sync::Semaphore>,
}

/// How many sessions exports may run at once; more are answered 503.
pub const SESSION_EXPORTS: usize = 2;

impl AppState {
    /// The state of an app over this tracker and these statistics, with these keys.
    pub fn new(tracker: Tracker, stats: Stats, keys: Vec<ApiKey>) -> AppState {
        AppState::build(
            tracker,
            stats,
            keys,
            None,
            std::time::Duration::from_secs(30),
        )
    }

    /// [`AppState::new`], with the scheduled jobs whose runs `/metrics` reports, and
    /// the time a client may take to send a body.
    pub fn with_jobs(
        tracker: Tracker,
        stats: Stats,
        keys: Vec<ApiKey>,
        jobs: Jobs,
        body_timeout: std::time::Duration,
    ) -> AppState {
        AppState::build(tracker, stats, keys, Some(jobs), body_timeout)
    }

    fn build(
        tracker: Tracker,
        stats: Stats,
        keys: Vec<ApiKey>,
        jobs: Option<Jobs>,
        body_timeout: std::time::Duration,
    ) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                tracker,
                stats,
                keys,
                jobs,
                body_timeout,
                requests_rejected_events: AtomicU64::new(0),
                session_exports: Arc::new(tokio::sync::Semaphore::new(SESSION_EXPORTS)),
            }),
        }
    }

    pub(crate) fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<(), ApiError> {
        authorize(&self.inner.keys, headers, scope)
    }
}

/// One endpoint: its method and path, the query parameters it takes, and its handler.
/// The router is built from this table, and a test holds the OpenAPI document to it.
struct Endpoint {
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the OpenAPI test"))]
    method: &'static str,
    path: &'static str,
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the OpenAPI test"))]
    params: &'static [&'static str],
    handler: MethodRouter<AppState>,
}

/// Every endpoint the OpenAPI document describes.
fn endpoints() -> Vec<Endpoint> {
    use crate::extract::QueryParams;
    let endpoint = |method, path, params, handler| Endpoint {
        method,
        path,
        params,
        handler,
    };
    vec![
        endpoint(
            "post",
            "/api/analytics/events",
            AckParams::NAMES,
            post(ingest),
        ),
        endpoint("post", "/api/analytics/flush", &[], post(flush)),
        endpoint(
            "get",
            "/api/analytics/realtime",
            NoParams::NAMES,
            get(realtime),
        ),
        endpoint("get", "/api/analytics/daily", DateParams::NAMES, get(daily)),
        endpoint(
            "get",
            "/api/analytics/range",
            RangeParams::NAMES,
            get(range),
        ),
        endpoint(
            "get",
            "/api/analytics/case-study",
            MonthParams::NAMES,
            get(case_study),
        ),
        endpoint(
            "get",
            "/api/analytics/agents",
            MonthParams::NAMES,
            get(agents),
        ),
        endpoint(
            "get",
            "/api/analytics/tickets",
            MonthParams::NAMES,
            get(tickets),
        ),
        endpoint("get", "/api/analytics/ai", FunnelParams::NAMES, get(ai)),
        endpoint(
            "get",
            "/api/analytics/export/daily.csv",
            RangeParams::NAMES,
            get(export_daily),
        ),
        endpoint(
            "get",
            "/api/analytics/export/agents.csv",
            MonthParams::NAMES,
            get(export_agents),
        ),
        endpoint(
            "get",
            "/api/analytics/export/sessions.csv",
            RangeParams::NAMES,
            get(export_sessions),
        ),
        endpoint("get", "/api/analytics/openapi.json", &[], get(openapi)),
        endpoint("get", "/", &[], get(crate::dashboard::index)),
        endpoint("get", "/healthz", &[], get(healthz)),
        endpoint("get", "/readyz", &[], get(readyz)),
        endpoint("get", "/metrics", &[], get(metrics)),
    ]
}

/// The router of the whole API.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for endpoint in endpoints() {
        router = router.route(endpoint.path, endpoint.handler);
    }
    router
        // The dashboard's script, style sheet and icon (not API endpoints).
        .route("/assets/{name}", get(crate::dashboard::asset))
        .fallback(|| async {
            ApiError::not_found("no such endpoint; see /api/analytics/openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::method_not_allowed("this endpoint does not take that method")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn ingest(
    State(state): State<AppState>,
    _: Key<Ingest>,
    Params(params): Params<AckParams>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    // Everything that can refuse the request is checked before the body is read (the
    // key and the query by the extractors, in that order), so that a client sending
    // `Expect: 100-continue` gets its answer without sending it.
    let durable = match params.ack.as_deref() {
        None | Some("stored") => true,
        Some("buffered") => false,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!(
                    "ack must be stored (the default: answered once committed) or buffered \
                     (got {:?})",
                    truncate(other)
                ),
            ));
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::unsupported_media_type(format!(
            "the body must be application/json (got {:?})",
            truncate(content_type)
        )));
    }
    let gzip = match content_encoding(&headers)? {
        Encoding::Identity => false,
        Encoding::Gzip => true,
    };
    let too_large =
        || ApiError::too_large(format!("the body is larger than {MAX_BODY_BYTES} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let body_timeout = state.inner.body_timeout;
    let body = tokio::time::timeout(body_timeout, axum::body::to_bytes(body, MAX_BODY_BYTES))
        .await
        .map_err(|_| {
            ApiError::timeout(format!(
                "the body did not arrive within {} s; send it again",
                body_timeout.as_secs_f64()
            ))
        })?
        .map_err(|error| {
            let over = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if over {
                too_large()
            } else {
                ApiError::bad_request(
                    "unreadable_body",
                    format!("the body could not be read: {error}"),
                )
            }
        })?;
    let body = if gzip { gunzip(&body)? } else { body };
    let value = strict_json::parse(&body).map_err(|error| {
        ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {error}"),
        )
    })?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object: {\"events\": [...]}",
        ));
    };
    let events = match fields.remove("events") {
        Some(Value::Array(events)) => events,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "`events` must be an array",
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "the body has no `events` array",
            ));
        }
    };
    if let Some(field) = fields.keys().next() {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!(
                "unknown field {:?} (the body is {{\"events\": [...]}})",
                truncate(field)
            ),
        ));
    }
    if events.len() > MAX_BATCH {
        return Err(ApiError::too_large(format!(
            "at most {MAX_BATCH} events per request (got {})",
            events.len()
        )));
    }
    let validator = state.inner.tracker.validator();
    let mut accepted = Vec::with_capacity(events.len());
    let mut rejected = Vec::new();
    for (index, value) in events.into_iter().enumerate() {
        match RawEvent::from_json(value).and_then(|raw| validator.raw(raw)) {
            Ok(event) => accepted.push(event),
            Err(error) => rejected.push(json!({"index": index, "error": error.to_string()})),
        }
    }
    state
        .inner
        .requests_rejected_events
        .fetch_add(rejected.len() as u64, Ordering::Relaxed);
    let n = accepted.len();
    let tracker = &state.inner.tracker;
    let taken = if durable {
        tracker
            .track_events_stored(accepted, tracker.flush_deadline())
            .await
    } else {
        tracker.track_events(accepted)
    };
    match taken {
        Ok(()) => {}
        Err(TrackError::BufferFull) => {
            return Err(ApiError::unavailable(
                "buffer_full",
                "the event buffer is full; send the batch again later with the same event ids",
            ));
        }
        Err(TrackError::NotStoredInTime(deadline)) => {
            return Err(ApiError::unavailable(
                "not_stored",
                format!(
                    "the events were taken but not stored within {} s (the event store is \
                     down or slow); send the batch again with the same event ids: nothing \
                     is counted twice",
                    deadline.as_secs()
                ),
            ));
        }
        Err(_) => {
            return Err(ApiError::unavailable(
                "shutting_down",
                "the service is shutting down; send the batch again",
            ));
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"accepted": n, "rejected": rejected})),
    )
        .into_response())
}

async fn flush(State(state): State<AppState>, _: Key<Admin>) -> Result<Json<Value>, ApiError> {
    match state.inner.tracker.flush().await {
        Ok(()) => Ok(Json(json!({"flushed": true}))),
        Err(TrackError::NotStoredInTime(deadline)) => Err(ApiError::unavailable(
            "not_stored",
            format!(
                "the event store did not take every accepted event within {} s (it is down or slow); nothing is lost: the events stay buffered or spilled and are written when it answers",
                deadline.as_secs()
            ),
        )),
        Err(_) => Err(ApiError::unavailable(
            "shutting_down",
            "the service is shutting down",
        )),
    }
}

async fn realtime(
    State(state): State<AppState>,
    _: Key<Read>,
    _: Params<NoParams>,
) -> Result<Json<analytics::stats::Realtime>, ApiError> {
    Ok(Json(state.inner.stats.realtime().await?))
}

#[derive(Serialize)]
struct Day {
    date: NaiveDate,
    raw: BusinessMetrics,
}

async fn daily(
    State(state): State<AppState>,
    _: Key<Read>,
    Params(params): Params<DateParams>,
) -> Result<Json<Day>, ApiError> {
    let date = params.date(&state.inner.stats)?;
    let raw = state.inner.stats.daily(date).await?;
    Ok(Json(Day { date, raw }))
}

#[derive(Serialize)]
struct Range {
    start: NaiveDate,
    end: NaiveDate,
    /// The whole range: sums over all its days, percentiles over all its values.
    total: BusinessMetrics,
    days: Vec<Day>,
}

async fn range(
    State(state): State<AppState>,
    _: Key<Read>,
    Params(params): Params<RangeParams>,
) -> Result<Json<Range>, ApiError> {
    let range = params.range()?;
    let (start, end) = (range.start(), range.end());
    let (total, days) = state.inner.stats.range_with_total(range).await?;
    let days = days
        .into_iter()
        .map(|(date, raw)| Day { date, raw })
        .collect();
    Ok(Json(Range {
        start,
        end,
        total,
        days,
    }))
}

async fn case_study(
    State(state): State<AppState>,
    _: Key<Read>,
    Params(params): Params<MonthParams>,
) -> Result<Json<analytics::core::case_study::CaseStudy>, ApiError> {
    let month = params.month(&state.inner.stats)?;
    Ok(Json(state.inner.stats.case_study(month).await?))
}

#[derive(Serialize)]
struct Agents {
    month: YearMonth,
    agents: Vec<AgentMetrics>,
}

async fn agents(
    State(state): State<AppState>,
    _: Key<Read>,
    Params(params): Params<MonthParams>,
) -> Result<Json<Agents>, ApiError> {
    let month = params.month(&state.inner.stats)?;
    let agents = state.inner.stats.agents(month).await?;
    Ok(Json(Agents { month, agents }))
}

#[derive(Serialize)]
struct Tickets {
    month: YearMonth,
    #[serde(flatten)]
    tickets: TicketMetrics,
}

async fn tickets(
    State(state): State<AppState>,
    _: Key<Read>,
    Params(params): Params<MonthParams>,
) -> Result<Json<Tickets>, ApiError> {
    let month = params.month(&state.inner.stats)?;
    let tickets = state.inner.stats.tickets(month).await?;
    Ok(Json(Tickets { month, tickets }))
}

/// `GET /ai?month=` or `?start=&end=`: the AI funnel (SPEC §5).
async fn ai(
    State(state): State<AppState>,
    _: Key<Read>,
    Params(params): Params<FunnelParams>,
) -> Result<Json<analytics::stats::FunnelReport>, ApiError> {
    let range = params.range(&state.inner.stats)?;
    Ok(Json(state.inner.stats.ai_funnel(range).await?))
}

/// A CSV answer, offered as a download named `filename`.
fn csv_response(body: axum::body::Body, filename: &str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) =
        axum::http::HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

async fn export_daily(
    State(state): State<AppState>,
    _: Key<Read>,
    Params(params): Params<RangeParams>,
) -> Result<Response, ApiError> {
    let range = params.range()?;
    let days = state.inner.stats.range(range).await?;
    let csv = crate::export::daily_csv(&days).map_err(|error| ApiError::internal(&error))?;
    Ok(csv_response(
        csv.into(),
        &format!("daily-{}-{}.csv", range.start(), range.end()),
    ))
}

async fn export_agents(
    State(state): State<AppState>,
    _: Key<Read>,
    Params(params): Params<MonthParams>,
) -> Result<Response, ApiError> {
    let month = params.month(&state.inner.stats)?;
    let agents = state.inner.stats.agents(month).await?;
    let csv = crate::export::agents_csv(&agents).map_err(|error| ApiError::internal(&error))?;
    Ok(csv_response(csv.into(), &format!("agents-{month}.csv")))
}

async fn export_sessions(
    State(state): State<AppState>,
    _: Key<Read>,
    Params(params): Params<RangeParams>,
) -> Result<Response, ApiError> {
    let range = params.range()?;
    let Ok(permit) = state.inner.session_exports.clone().try_acquire_owned() else {
        return Err(ApiError::unavailable(
            "busy",
            format!("{SESSION_EXPORTS} sessions exports are running; try again shortly"),
        ));
    };
    let stats = &state.inner.stats;
    // The first session (or the store's error) before the answer: a store that does
    // not answer is a 503, not a file cut after its header.
    let mut sessions = stats.sessions(range);
    let first = tokio::time::timeout(
        analytics::core::store::SESSION_STALL,
        futures_util::StreamExt::next(&mut sessions),
    )
    .await
    .map_err(|_| {
        ApiError::unavailable(
            "storage_unavailable",
            "the event store did not answer the sessions export in time",
        )
    })?;
    if let Some(Err(error)) = first {
        return Err(error.into());
    }
    let sessions: analytics::core::store::SessionStream = Box::pin(futures_util::StreamExt::chain(
        futures_util::stream::iter(first),
        sessions,
    ));
    let body = crate::export::sessions_csv(sessions, *stats.calendar());
    // The permit goes with the body: released when the last chunk is sent or the
    // client goes away.
    let body = futures_util::StreamExt::map(body, move |chunk| {
        let _ = &permit;
        chunk
    });
    Ok(csv_response(
        axum::body::Body::from_stream(body),
        &format!("sessions-{}-{}.csv", range.start(), range.end()),
    ))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    // Reading is not enough: a full disk refuses writes while reads work.
    let writing = state.inner.tracker.store_error();
    let (answers, counters) = state.inner.stats.ready().await;
    let database = writing.is_none() && answers;
    let status = if database && counters {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    (
        status,
        Json(json!({
            "status": if status == StatusCode::OK { "ready" } else { "unavailable" },
            "database": word(database),
            "counters": word(counters),
            "writing": writing.unwrap_or_else(|| "ok".to_owned()),
        })),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = crate::metrics::render(
        &state.inner.tracker.telemetry(),
        state.inner.requests_rejected_events.load(Ordering::Relaxed),
        &state
            .inner
            .jobs
            .as_ref()
            .map(Jobs::runs)
            .unwrap_or_default(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Caller input echoed in a message, cut to a readable length.
pub(crate) fn truncate(input: &str) -> String {
    const MAX: usize = 64;
    if input.chars().count() <= MAX {
        return input.to_owned();
    }
    let mut cut: String = input.chars().take(MAX).collect();
    cut.push('…');
    cut
}

/// A request body's content coding.
enum Encoding {
    Identity,
    Gzip,
}

/// The body's `Content-Encoding`: none or `identity`, or `gzip` (SDKs send it); any
/// other is 415.
fn content_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let value = value.to_str().unwrap_or("").trim();
    if value.is_empty() || value.eq_ignore_ascii_case("identity") {
        Ok(Encoding::Identity)
    } else if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
        Ok(Encoding::Gzip)
    } else {
        Err(ApiError::unsupported_media_type(format!(
            "the Content-Encoding {:?} is not supported (send gzip or no encoding)",
            truncate(value)
        )))
    }
}

/// Decompresses a gzip body, refusing one that is not gzip (400) or that inflates past
/// the body limit (413).
fn gunzip(body: &[u8]) -> Result<Bytes, ApiError> {
    use std::io::Read as _;
    let mut out = Vec::with_capacity(body.len() * 4);
    let limit = MAX_BODY_BYTES as u64 + 1;
    flate2::read::GzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|error| {
            ApiError::bad_request(
                "malformed_gzip",
                format!("the body is not valid gzip: {error}"),
            )
        })?;
    if out.len() as u64 >= limit {
        return Err(ApiError::too_large(format!(
            "the body is larger than {MAX_BODY_BYTES} bytes once decompressed"
        )));
    }
    Ok(Bytes::from(out))
}

/// JSON that refuses an object with the same key twice (which plain parsing would
/// resolve silently, keeping the last).
mod strict_json {
    use std::fmt;

    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    /// Parses `bytes`, refusing duplicate keys.
    pub(super) fn parse(bytes: &[u8]) -> serde_json::Result<Value> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let value = deserializer.deserialize_any(Strict)?;
        deserializer.end()?;
        Ok(value)
    }

    struct Strict;

    impl<'de> de::DeserializeSeed<'de> for Strict {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
            deserializer.deserialize_any(Strict)
        }
    }

    impl<'de> Visitor<'de> for Strict {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element_seed(Strict)? {
                items.push(item);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut object = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if object.contains_key(&key) {
                    let shown: String = key.chars().take(64).collect();
                    return Err(de::Error::custom(format!("duplicate key {shown:?}")));
                }
                let value = map.next_value_seed(Strict)?;
                object.insert(key, value);
            }
            Ok(Value::Object(object))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The OpenAPI document describes every endpoint the router serves, with the query
    /// parameters its extractor takes, and nothing else.
    #[test]
    fn the_openapi_document_describes_every_endpoint_and_its_parameters() {
        let document: Value = serde_json::from_str(OPENAPI).unwrap_or_default();
        let mut documented = BTreeSet::new();
        for (path, operations) in document["paths"].as_object().into_iter().flatten() {
            for (method, operation) in operations.as_object().into_iter().flatten() {
                let params: BTreeSet<String> = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect();
                documented.insert((method.clone(), path.clone(), params));
            }
        }
        let served: BTreeSet<(String, String, BTreeSet<String>)> = endpoints()
            .into_iter()
            .map(|e| {
                let params = e.params.iter().map(|p| (*p).to_owned()).collect();
                (e.method.to_owned(), e.path.to_owned(), params)
            })
            .collect();
        assert_eq!(documented, served);
    }
}
