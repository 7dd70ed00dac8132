//! The HTTP API of SPEC §9 under `/api/analytics`, with `/healthz`, `/readyz`,
//! `/metrics` and the OpenAPI document. Only this crate knows HTTP and the wire format;
//! the request and response types live here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use analytics::core::case_study::CaseStudy;
use analytics::core::config::{ApiKey, Scope};
use analytics::core::event::RawEvent;
use analytics::stats::{Jobs, Stats};
use analytics::tracker::{TrackError, Tracker};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::openapi::path::{HttpMethod, Parameter, ParameterIn};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{Ref, RefOr, Response as ResponseDoc};
use utoipa::{IntoParams, IntoResponses, ToSchema};

use crate::auth::authorize;
use crate::error::ApiError;
use crate::extract::{
    AckParams, Admin, DateParams, FunnelParams, Ingest, Key, MonthParams, NoParams, Params,
    QueryParams, RangeParams, Read,
};
use crate::wire::{
    Accepted, Agents, Day, Flushed, Funnel, Health, IngestBody, IngestRefusals, Range, Ready,
    Realtime, Rejected, Tickets,
};

/// The largest request body (SPEC §9).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The most events one request may carry (SPEC §9).
pub const MAX_BATCH: usize = 1000;

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

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Access {
    /// Anyone (health, metrics, the page).
    Open,
    /// A key with this scope (or anyone on loopback when no keys are configured).
    Key(Scope),
}

/// Documented responses by status (an `IntoResponses` type's).
pub(crate) type Responses = fn() -> BTreeMap<String, RefOr<ResponseDoc>>;

/// The schema of a JSON body, as a reference, with the schemas it needs collected.
pub(crate) type SchemaOf = fn(&mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema>;

fn schema_of<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

/// An answer an endpoint gives: its status, what it means, and its content.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) description: &'static str,
    pub(crate) content_type: &'static str,
    /// The JSON schema of the content; none for text, CSV and HTML.
    pub(crate) schema: Option<SchemaOf>,
}

/// A JSON answer of type `T`.
fn json<T: ToSchema>(status: u16, description: &'static str) -> Answer {
    Answer {
        status,
        description,
        content_type: "application/json",
        schema: Some(schema_of::<T>),
    }
}

/// A 200 answer that is not JSON.
fn text(content_type: &'static str, description: &'static str) -> Answer {
    Answer {
        status: 200,
        description,
        content_type,
        schema: None,
    }
}

/// The query an endpoint takes: the names its extractor accepts, and their
/// documentation (both from the same struct).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Query {
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the OpenAPI test"))]
    pub(crate) names: &'static [&'static str],
    pub(crate) document: fn() -> Vec<Parameter>,
}

fn query<P: QueryParams + IntoParams>() -> Query {
    Query {
        names: P::NAMES,
        document: || P::into_params(|| Some(ParameterIn::Query)),
    }
}

/// One endpoint: what the OpenAPI document says of it, and its handler. The router
/// and the document are both built from [`endpoints`], so they cannot disagree.
pub(crate) struct Endpoint {
    pub(crate) method: HttpMethod,
    pub(crate) path: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) access: Access,
    pub(crate) query: Query,
    pub(crate) answers: Vec<Answer>,
    /// The request body's schema, for an endpoint that takes one.
    pub(crate) body: Option<SchemaOf>,
    /// Refusals beyond those of every keyed endpoint ([`Refusals`]).
    pub(crate) refusals: Option<Responses>,
    handler: MethodRouter<AppState>,
}

impl Endpoint {
    fn new(
        (method, path): (HttpMethod, &'static str),
        summary: &'static str,
        access: Access,
        query: Query,
        answer: Answer,
        handler: MethodRouter<AppState>,
    ) -> Endpoint {
        Endpoint {
            method,
            path,
            summary,
            access,
            query,
            answers: vec![answer],
            body: None,
            refusals: None,
            handler,
        }
    }
}

/// Every endpoint: the router serves them and the OpenAPI document describes them.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    use Access::{Key, Open};
    use HttpMethod::{Get, Post};
    let csv = |description| text("text/csv", description);
    vec![
        Endpoint {
            body: Some(schema_of::<IngestBody>),
            refusals: Some(IngestRefusals::responses),
            ..Endpoint::new(
                (Post, "/api/analytics/events"),
                "Ingest up to 1,000 events (1 MiB)",
                Key(Scope::Ingest),
                query::<AckParams>(),
                json::<Accepted>(
                    202,
                    "Taken; invalid events are listed by index and not stored",
                ),
                post(ingest),
            )
        },
        Endpoint::new(
            (Post, "/api/analytics/flush"),
            "Store everything buffered now; answers once stored",
            Key(Scope::Admin),
            query::<NoParams>(),
            json::<Flushed>(200, "Stored"),
            post(flush),
        ),
        Endpoint::new(
            (Get, "/api/analytics/realtime"),
            "Today's counters, this hour, the last 24 hours, active sessions, online agents",
            Key(Scope::Read),
            query::<NoParams>(),
            json::<Realtime>(200, "The real-time view"),
            get(realtime),
        ),
        Endpoint::new(
            (Get, "/api/analytics/daily"),
            "The metrics of one day",
            Key(Scope::Read),
            query::<DateParams>(),
            json::<Day>(200, "The day"),
            get(daily),
        ),
        Endpoint::new(
            (Get, "/api/analytics/range"),
            "The metrics of every day of an inclusive range of at most 366 days, and of the \
             whole range",
            Key(Scope::Read),
            query::<RangeParams>(),
            json::<Range>(200, "The days"),
            get(range),
        ),
        Endpoint::new(
            (Get, "/api/analytics/case-study"),
            "The monthly case study (SPEC §6)",
            Key(Scope::Read),
            query::<MonthParams>(),
            json::<CaseStudy>(200, "The case study"),
            get(case_study),
        ),
        Endpoint::new(
            (Get, "/api/analytics/agents"),
            "Each agent's figures for a month",
            Key(Scope::Read),
            query::<MonthParams>(),
            json::<Agents>(200, "The agents"),
            get(agents),
        ),
        Endpoint::new(
            (Get, "/api/analytics/tickets"),
            "Ticket figures for a month",
            Key(Scope::Read),
            query::<MonthParams>(),
            json::<Tickets>(200, "The tickets"),
            get(tickets),
        ),
        Endpoint::new(
            (Get, "/api/analytics/ai"),
            "The AI funnel (SPEC §5) of a month (default: the current one) or of start..end, \
             and of each day, each counted on its own: sessions, those the AI handled alone, \
             of those the ones whose customer came back within return_window_hours, durable \
             AI resolutions (handled alone, not back) and their rate, the return rate, \
             sessions without customer_id and their share, the money durable resolutions \
             save, and whether a return can still change the figure",
            Key(Scope::Read),
            query::<FunnelParams>(),
            json::<Funnel>(200, "The funnel"),
            get(ai),
        ),
        Endpoint::new(
            (Get, "/api/analytics/export/daily.csv"),
            "The daily metrics of an inclusive range of at most 366 days as CSV (UTF-8, \
             header row, RFC 4180, numbers unformatted, empty for null): date, then the raw \
             fields of the case study",
            Key(Scope::Read),
            query::<RangeParams>(),
            csv("CSV, one row per day"),
            get(export_daily),
        ),
        Endpoint::new(
            (Get, "/api/analytics/export/agents.csv"),
            "A month's agents as CSV: agent_id, sessions_handled, \
             avg_first_response_seconds, avg_handle_time_seconds, messages, transfers, and \
             the percentiles",
            Key(Scope::Read),
            query::<MonthParams>(),
            csv("CSV, one row per agent"),
            get(export_agents),
        ),
        Endpoint::new(
            (Get, "/api/analytics/export/sessions.csv"),
            "One row per session started in an inclusive range of days, from event detail, \
             streamed: session_id, started_at, date, channel, customer_id, ai_handled, \
             escalated, agent_id, first_response_seconds, handle_time_seconds, returned (the \
             same customer started another session within the return window)",
            Key(Scope::Read),
            query::<RangeParams>(),
            csv("CSV, one row per session in start order"),
            get(export_sessions),
        ),
        Endpoint::new(
            (Get, "/api/analytics/openapi.json"),
            "This document",
            Key(Scope::Read),
            query::<NoParams>(),
            text("application/json", "OpenAPI 3.1"),
            get(openapi),
        ),
        Endpoint::new(
            (Get, "/"),
            "The dashboard (HTML; a strict Content-Security-Policy; it reads only this API)",
            Open,
            query::<NoParams>(),
            text("text/html", "The page"),
            get(crate::dashboard::index),
        ),
        Endpoint::new(
            (Get, "/healthz"),
            "The process is up",
            Open,
            query::<NoParams>(),
            json::<Health>(200, "Up"),
            get(healthz),
        ),
        Endpoint {
            answers: vec![
                json::<Ready>(200, "Ready"),
                json::<Ready>(503, "A store is unavailable"),
            ],
            ..Endpoint::new(
                (Get, "/readyz"),
                "The database and the counters answer, and the last write to the event store \
                 went through",
                Open,
                query::<NoParams>(),
                json::<Ready>(200, "Ready"),
                get(readyz),
            )
        },
        Endpoint::new(
            (Get, "/metrics"),
            "Prometheus text: the tracker's telemetry and the jobs' runs",
            Open,
            query::<NoParams>(),
            text("text/plain", "Prometheus text format 0.0.4"),
            get(metrics),
        ),
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
        // A span per request, with its status and latency, all at DEBUG: a refusal or
        // a failure is logged by `ApiError` where it needs an operator (headers, and
        // so keys, are not recorded).
        .layer(
            tower_http::trace::TraceLayer::new_for_http().on_failure(
                tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
            ),
        )
        .with_state(state)
}

/// Ingest up to 1,000 events (1 MiB); scope ingest.
pub(crate) async fn ingest(
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
            Err(error) => rejected.push(Rejected {
                index,
                error: error.to_string(),
            }),
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
        Json(Accepted {
            accepted: n,
            rejected,
        }),
    )
        .into_response())
}

/// Store everything buffered now; answers once stored; scope admin.
pub(crate) async fn flush(
    State(state): State<AppState>,
    _: Key<Admin>,
) -> Result<Json<Flushed>, ApiError> {
    match state.inner.tracker.flush().await {
        Ok(()) => Ok(Json(Flushed { flushed: true })),
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

/// Today's counters, this hour, the last 24 hours, active sessions, online agents;
/// scope read.
pub(crate) async fn realtime(
    State(state): State<AppState>,
    _: Key<Read>,
    _: Params<NoParams>,
) -> Result<Json<Realtime>, ApiError> {
    Ok(Json(state.inner.stats.realtime().await?.into()))
}

/// The metrics of one day; scope read.
pub(crate) async fn daily(
    State(state): State<AppState>,
    _: Key<Read>,
    Params(params): Params<DateParams>,
) -> Result<Json<Day>, ApiError> {
    let date = params.date(&state.inner.stats)?;
    let raw = state.inner.stats.daily(date).await?;
    Ok(Json(Day { date, raw }))
}

/// The metrics of every day of an inclusive range of at most 366 days, and of the
/// whole range; scope read.
pub(crate) async fn range(
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

/// The monthly case study (SPEC §6); scope read.
pub(crate) async fn case_study(
    State(state): State<AppState>,
    _: Key<Read>,
    Params(params): Params<MonthParams>,
) -> Result<Json<analytics::core::case_study::CaseStudy>, ApiError> {
    let month = params.month(&state.inner.stats)?;
    Ok(Json(state.inner.stats.case_study(month).await?))
}

/// Each agent's figures for a month; scope read.
pub(crate) async fn agents(
    State(state): State<AppState>,
    _: Key<Read>,
    Params(params): Params<MonthParams>,
) -> Result<Json<Agents>, ApiError> {
    let month = params.month(&state.inner.stats)?;
    let agents = state.inner.stats.agents(month).await?;
    Ok(Json(Agents { month, agents }))
}

/// Ticket figures for a month; scope read.
pub(crate) async fn tickets(
    State(state): State<AppState>,
    _: Key<Read>,
    Params(params): Params<MonthParams>,
) -> Result<Json<Tickets>, ApiError> {
    let month = params.month(&state.inner.stats)?;
    let tickets = state.inner.stats.tickets(month).await?;
    Ok(Json(Tickets { month, tickets }))
}

/// The AI funnel (SPEC §5) of a month (default: the current one) or of start..end,
/// and of each day, each counted on its own (from its daily statistics once current,
/// else from event detail): sessions, those the AI handled alone, of those the ones
/// whose customer came back within `return_window_hours`, the durable AI resolutions
/// (handled alone, not back) and their rate, the return rate, sessions without
/// `customer_id` and their share, the money durable resolutions save, and whether a
/// return can still change the figure; scope read.
pub(crate) async fn ai(
    State(state): State<AppState>,
    _: Key<Read>,
    Params(params): Params<FunnelParams>,
) -> Result<Json<Funnel>, ApiError> {
    let range = params.range(&state.inner.stats)?;
    Ok(Json(state.inner.stats.ai_funnel(range).await?.into()))
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

/// The daily metrics of an inclusive range of at most 366 days as CSV (UTF-8, header
/// row, RFC 4180, numbers unformatted, empty for null): `date`, then the raw fields
/// of the case study; scope read.
pub(crate) async fn export_daily(
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

/// A month's agents as CSV: `agent_id`, `sessions_handled`,
/// `avg_first_response_seconds`, `avg_handle_time_seconds`, `messages`, `transfers`,
/// and the percentiles; scope read.
pub(crate) async fn export_agents(
    State(state): State<AppState>,
    _: Key<Read>,
    Params(params): Params<MonthParams>,
) -> Result<Response, ApiError> {
    let month = params.month(&state.inner.stats)?;
    let agents = state.inner.stats.agents(month).await?;
    let csv = crate::export::agents_csv(&agents).map_err(|error| ApiError::internal(&error))?;
    Ok(csv_response(csv.into(), &format!("agents-{month}.csv")))
}

/// One row per session started in an inclusive range of days, from event detail,
/// streamed: `session_id`, `started_at`, `date`, `channel`, `customer_id`,
/// `ai_handled`, `escalated`, `agent_id`, `first_response_seconds`,
/// `handle_time_seconds`, `returned` (the same customer started another session within
/// the return window); scope read.
pub(crate) async fn export_sessions(
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

/// This document.
pub(crate) async fn openapi(_: Key<Read>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document(),
    )
        .into_response()
}

/// The process is up.
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The database and the counters answer, and the last write to the event store went
/// through.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
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
        Json(Ready {
            status: if status == StatusCode::OK {
                "ready"
            } else {
                "unavailable"
            },
            database: word(database),
            counters: word(counters),
            writing: writing.unwrap_or_else(|| "ok".to_owned()),
        }),
    )
        .into_response()
}

/// Prometheus text: the tracker's telemetry and the jobs' runs.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
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
        let document: Value = serde_json::from_str(crate::openapi::document()).unwrap_or_default();
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
                let params = e.query.names.iter().map(|p| (*p).to_owned()).collect();
                let method = serde_json::to_value(&e.method).unwrap_or_default();
                (
                    method.as_str().unwrap_or("").to_owned(),
                    e.path.to_owned(),
                    params,
                )
            })
            .collect();
        assert_eq!(documented, served);
    }

    /// Every schema the document refers to is in it, and every answer the API gives
    /// is one it describes (the types the handlers return derive their schemas).
    #[test]
    fn the_openapi_document_is_whole() {
        fn refs(value: &Value, out: &mut BTreeSet<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        out.insert(target.clone());
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let document: Value = serde_json::from_str(crate::openapi::document()).unwrap_or_default();
        let mut targets = BTreeSet::new();
        refs(&document, &mut targets);
        for schema in [
            "Accepted",
            "ErrorBody",
            "Realtime",
            "Day",
            "Range",
            "CaseStudy",
            "Agents",
            "Tickets",
            "Funnel",
            "BusinessMetrics",
            "AiFunnel",
        ] {
            assert!(
                targets.contains(&format!("#/components/schemas/{schema}")),
                "{schema} is referred to"
            );
        }
        for target in targets {
            let name = target.trim_start_matches("#/components/schemas/");
            assert!(
                document["components"]["schemas"][name].is_object(),
                "{target} is in the document"
            );
        }
        assert_eq!(
            document["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
