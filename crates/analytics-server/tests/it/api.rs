//! The API in process: ingest to case study, partial batches, every bad request, keys.

use std::collections::HashMap;

use analytics::core::case_study::CaseStudy;
use analytics::core::config::Config;
use analytics::core::event::{Event, RawEvent};
use analytics::core::metrics::DaySummary;
use analytics::core::report::CostPerResolution;
use analytics::core::time::{Calendar, YearMonth};
use analytics_pg::testing::TestDatabase;
use analytics_redis::testing::TestRedis;
use analytics_server::server::{Server, check_bind};
use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};

use crate::http::{get, post_json, request};

pub(crate) const ADMIN: &str = "admin-key-0123456789";
pub(crate) const READ: &str = "read-key-0123456789";
const INGEST: &str = "ingest-key-0123456789";

pub(crate) struct App {
    pub(crate) server: Server,
    _db: TestDatabase,
    _redis: TestRedis,
}

fn config(vars: &[(&str, &str)]) -> Config {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|name| vars.get(name).cloned()).unwrap()
}

/// The real app on port 0, on its own database and Redis prefix, with three keys.
pub(crate) async fn app() -> App {
    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let keys = format!("admin:{ADMIN},read:{READ},ingest:{INGEST}");
    let server = Server::start(config(&[
        ("DATABASE_URL", db.url()),
        ("REDIS_URL", &analytics_redis::testing::server_url()),
        ("ANALYTICS_REDIS_PREFIX", redis.prefix()),
        ("ANALYTICS_BIND", "127.0.0.1:0"),
        ("ANALYTICS_API_KEYS", &keys),
        ("ANALYTICS_FLUSH_INTERVAL_MS", "100"),
    ]))
    .await
    .unwrap();
    App {
        server,
        _db: db,
        _redis: redis,
    }
}

/// Envelopes dated an hour ago, with ids.
fn envelopes() -> Vec<Value> {
    let at = (Utc::now() - TimeDelta::hours(1)).to_rfc3339();
    let mut events = Vec::new();
    for i in 0..40 {
        let s = format!("s-{i}");
        events.push(json!({"event_id": uuid::Uuid::now_v7().to_string(), "event": "session.start", "timestamp": at, "properties": {"session_id": s}}));
        events.push(json!({"event_id": uuid::Uuid::now_v7().to_string(), "event": "message.ai", "timestamp": at, "properties": {"session_id": s, "response_time": 1200 + i * 10}}));
        if i % 4 == 0 {
            events.push(json!({"event": "session.escalate", "timestamp": at, "properties": {"session_id": s}}));
            events.push(json!({"event": "agent.session_takeover", "timestamp": at, "properties": {"agent_id": "a1", "session_id": s, "wait_duration_seconds": 25}}));
            events.push(json!({"event": "agent.session_release", "timestamp": at, "properties": {"agent_id": "a1", "session_id": s, "handle_duration_seconds": 420}}));
        }
        if i % 8 == 0 {
            events.push(json!({"event": "ticket.closed", "timestamp": at, "product": "agent_workbench", "properties": {"ticket_id": format!("t-{i}"), "resolution_duration_hours": 3.5, "sla_met": i % 16 == 0}}));
        }
    }
    events
}

fn expected_case_study(events: &[Value]) -> CaseStudy {
    let parsed: Vec<Event> = events
        .iter()
        .map(|v| {
            Event::restore(RawEvent {
                event_id: Some(uuid::Uuid::now_v7()),
                ..RawEvent::from_json(v.clone()).unwrap()
            })
            .unwrap()
        })
        .collect();
    let month = Calendar::default().month(parsed[0].timestamp());
    let mut all = DaySummary::default();
    parsed.iter().for_each(|e| all.record(e));
    CaseStudy::from_parts(
        month,
        &all.totals,
        &all.sketches.totals,
        CostPerResolution::default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingested_events_make_the_case_study() {
    let app = app().await;
    let addr = app.server.addr();
    let events = envelopes();
    let accepted = post_json(
        addr,
        "/api/analytics/events",
        Some(INGEST),
        &json!({"events": events}),
    )
    .await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    assert_eq!(
        accepted.json(),
        json!({"accepted": events.len(), "rejected": []})
    );
    // The same batch again: accepted, and not counted again.
    let again = post_json(
        addr,
        "/api/analytics/events",
        Some(INGEST),
        &json!({"events": events[..2]}),
    )
    .await;
    assert_eq!(again.status, 202);
    let flushed = post_json(addr, "/api/analytics/flush", Some(ADMIN), &json!({})).await;
    assert_eq!(flushed.status, 200, "{}", flushed.body);

    let expected = expected_case_study(&events);
    let month = Calendar::default().month(Utc::now() - TimeDelta::hours(1));
    let study = get(
        addr,
        &format!("/api/analytics/case-study?month={month}"),
        Some(READ),
    )
    .await;
    assert_eq!(study.status, 200, "{}", study.body);
    assert_eq!(study.json(), serde_json::to_value(&expected).unwrap());
    assert_eq!(study.json()["ai_chatbot"]["total_customers_served"], 40);

    let day = Calendar::default().date(Utc::now() - TimeDelta::hours(1));
    let daily = get(
        addr,
        &format!("/api/analytics/daily?date={day}"),
        Some(READ),
    )
    .await;
    assert_eq!(daily.json()["date"], day.to_string());
    assert_eq!(daily.json()["raw"]["total_customers_served"], 40);
    let range = get(
        addr,
        &format!(
            "/api/analytics/range?start={}&end={day}",
            day - TimeDelta::days(2)
        ),
        Some(READ),
    )
    .await;
    assert_eq!(range.json()["days"].as_array().unwrap().len(), 3);
    assert_eq!(range.json()["days"][2]["raw"]["escalations"], 10);
    // The whole range, as the month's case study (all events are in both).
    assert_eq!(
        range.json()["total"],
        serde_json::to_value(&expected.raw).unwrap()
    );
    let agents = get(
        addr,
        &format!("/api/analytics/agents?month={month}"),
        Some(READ),
    )
    .await;
    assert_eq!(
        agents.json(),
        json!({"month": month.to_string(), "agents": [{"agent_id": "a1", "sessions_handled": 10, "avg_first_response_seconds": 25, "avg_handle_time_seconds": 420, "messages": 0, "transfers": 0,
               "first_response_seconds_p50": 25, "first_response_seconds_p90": 25, "handle_time_seconds_p50": 420, "handle_time_seconds_p90": 420}]})
    );
    let tickets = get(
        addr,
        &format!("/api/analytics/tickets?month={month}"),
        Some(READ),
    )
    .await;
    assert_eq!(
        tickets.json(),
        json!({"month": month.to_string(), "tickets_created": 0, "tickets_resolved": 5, "avg_resolution_time_hours": 3.5, "sla_met_rate": 0.6})
    );
    let realtime = get(addr, "/api/analytics/realtime", Some(READ)).await;
    assert_eq!(realtime.status, 200);
    let realtime = realtime.json();
    assert!(realtime["active_sessions"].is_u64());
    assert!(
        realtime["today_counters"]["session.start"].is_u64(),
        "{realtime}"
    );
    // The funnel is not counted from events: `/ai` answers it, not the counters.
    let counters = realtime["today_counters"].as_object().unwrap();
    assert!(
        counters.keys().all(|name| !name.starts_with("funnel_")),
        "{realtime}"
    );

    let metrics = get(addr, "/metrics", None).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("analytics_events_stored_total"),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("analytics_events_duplicate_total 2"),
        "{}",
        metrics.body
    );
    // Deadlock retries are counted apart from outages.
    for name in [
        "analytics_store_retries_total 0",
        "analytics_store_contention_retries_total 0",
    ] {
        assert!(metrics.body.contains(name), "{name}: {}", metrics.body);
    }
    assert!(app.server.shutdown().await.unwrap().clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_batch_stores_the_valid_events_and_names_the_others() {
    let app = app().await;
    let addr = app.server.addr();
    let now = Utc::now();
    let batch = json!({"events": [
        {"event": "session.start", "properties": {"session_id": "ok-1"}},
        {"event": "session.begin", "properties": {"session_id": "x"}},
        {"event": "session.message", "properties": {"session_id": "x"}},
        {"event": "session.message", "properties": {"session_id": "x", "response_time_ms": "fast"}},
        {"event": "agent.login", "timestamp": (now + TimeDelta::hours(1)).to_rfc3339(), "properties": {"agent_id": "a"}},
        {"event": "agent.login", "timestamp": (now - TimeDelta::days(91)).to_rfc3339(), "properties": {"agent_id": "a"}},
        {"event": "session.start", "properties": {"session_id": "ok-2"}},
        "not an object",
    ]});
    let response = post_json(addr, "/api/analytics/events", Some(INGEST), &batch).await;
    assert_eq!(response.status, 202, "{}", response.body);
    let json = response.json();
    assert_eq!(json["accepted"], 2);
    let rejected = json["rejected"].as_array().unwrap();
    let by_index: HashMap<u64, String> = rejected
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        by_index
            .keys()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        [1, 2, 3, 4, 5, 7].into()
    );
    assert!(
        by_index[&1].contains("session.begin") && by_index[&1].contains("not in the event catalog"),
        "{}",
        by_index[&1]
    );
    assert!(
        by_index[&2].contains("response_time_ms") && by_index[&2].contains("required"),
        "{}",
        by_index[&2]
    );
    assert!(
        by_index[&3].contains("response_time_ms") && by_index[&3].contains("must be a number"),
        "{}",
        by_index[&3]
    );
    assert!(
        by_index[&4].contains("timestamp") && by_index[&4].contains("future"),
        "{}",
        by_index[&4]
    );
    assert!(
        by_index[&5].contains("timestamp") && by_index[&5].contains("retention"),
        "{}",
        by_index[&5]
    );
    assert!(by_index[&7].contains("JSON object"), "{}", by_index[&7]);

    post_json(addr, "/api/analytics/flush", Some(ADMIN), &json!({})).await;
    let daily = get(addr, "/api/analytics/daily", Some(READ)).await;
    assert_eq!(
        daily.json()["raw"]["total_customers_served"],
        2,
        "only the valid events were stored"
    );
    app.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_right_status_and_a_clear_message() {
    let app = app().await;
    let addr = app.server.addr();
    let auth = format!("Bearer {ADMIN}");
    let post = |body: Vec<u8>, content_type: &'static str| {
        let auth = auth.clone();
        async move {
            request(
                addr,
                "POST",
                "/api/analytics/events",
                &[("Authorization", &auth), ("Content-Type", content_type)],
                &body,
            )
            .await
        }
    };
    let cases: Vec<(crate::http::Response, u16, &str, &str)> = vec![
        (post(b"{\"events\": [".to_vec(), "application/json").await, 400, "malformed_json", "not valid JSON"),
        (post(b"{\"events\": []}".to_vec(), "text/plain").await, 415, "unsupported_media_type", "application/json"),
        (post(b"[]".to_vec(), "application/json").await, 400, "invalid_body", "JSON object"),
        (post(b"{\"evnts\": []}".to_vec(), "application/json").await, 400, "invalid_body", "no `events` array"),
        (post(vec![b' '; 1024 * 1024 + 1], "application/json").await, 413, "too_large", "larger than"),
        (
            post(json!({"events": vec![json!({"event": "agent.login", "properties": {"agent_id": "a"}}); 1001]}).to_string().into_bytes(), "application/json").await,
            413, "too_large", "at most 1000 events",
        ),
        (get(addr, "/api/analytics/case-study?month=2025-13", Some(READ)).await, 400, "invalid_month", "YYYY-MM"),
        (get(addr, "/api/analytics/case-study?mnth=2025-12", Some(READ)).await, 400, "unknown_parameter", "mnth"),
        (get(addr, "/api/analytics/daily?date=2025-02-30", Some(READ)).await, 400, "invalid_input", "YYYY-MM-DD"),
        (get(addr, "/api/analytics/range?start=2025-12-01", Some(READ)).await, 400, "missing_parameter", "end"),
        (get(addr, "/api/analytics/range?start=2025-12-02&end=2025-12-01", Some(READ)).await, 400, "invalid_range", "on or after"),
        (get(addr, "/api/analytics/range?start=2024-01-01&end=2025-12-01", Some(READ)).await, 400, "invalid_range", "366"),
        (get(addr, "/api/analytics/nothing", Some(READ)).await, 404, "not_found", "no such endpoint"),
        (request(addr, "DELETE", "/api/analytics/events", &[], b"").await, 405, "method_not_allowed", "method"),
    ];
    for (response, status, code, words) in cases {
        assert_eq!(response.status, status, "{}", response.body);
        let (got_code, message) = response.error();
        assert_eq!(got_code, code, "{message}");
        assert!(
            message.contains(words),
            "{code}: {message:?} should mention {words:?}"
        );
    }
    // An empty batch is fine.
    let empty = post(
        b"{\"events\": []}".to_vec(),
        "application/json; charset=utf-8",
    )
    .await;
    assert_eq!(empty.status, 202);
    app.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_required_and_scoped() {
    let app = app().await;
    let addr = app.server.addr();
    let batch = json!({"events": []});
    let month = YearMonth::of(Calendar::default().date(Utc::now()));
    let study = format!("/api/analytics/case-study?month={month}");

    let missing = get(addr, &study, None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    assert_eq!(missing.error().0, "unauthorized");
    assert_eq!(get(addr, &study, Some("wrong-key")).await.status, 401);
    assert_eq!(
        request(addr, "GET", &study, &[("Authorization", "Basic abc")], b"")
            .await
            .status,
        401
    );
    // The scheme is case-insensitive (RFC 9110), and so is white space after it.
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        for gap in [" ", "  ", "\t"] {
            let value = format!("{scheme}{gap}{READ}");
            let response = request(addr, "GET", &study, &[("Authorization", &value)], b"").await;
            assert_eq!(response.status, 200, "{value:?}: {}", response.body);
        }
    }

    assert_eq!(
        get(addr, &study, Some(INGEST)).await.status,
        403,
        "ingest cannot read"
    );
    assert_eq!(
        post_json(addr, "/api/analytics/events", Some(READ), &batch)
            .await
            .status,
        403,
        "read cannot ingest"
    );
    let flush_by_ingest = post_json(addr, "/api/analytics/flush", Some(INGEST), &json!({})).await;
    assert_eq!(flush_by_ingest.status, 403, "only admin flushes");
    assert!(flush_by_ingest.error().1.contains("admin"));
    assert_eq!(
        post_json(addr, "/api/analytics/flush", Some(READ), &json!({}))
            .await
            .status,
        403
    );

    assert_eq!(get(addr, &study, Some(READ)).await.status, 200);
    assert_eq!(
        post_json(addr, "/api/analytics/events", Some(INGEST), &batch)
            .await
            .status,
        202
    );
    assert_eq!(
        get(addr, &study, Some(ADMIN)).await.status,
        200,
        "admin reads"
    );
    assert_eq!(
        post_json(addr, "/api/analytics/events", Some(ADMIN), &batch)
            .await
            .status,
        202,
        "admin ingests"
    );
    assert_eq!(
        post_json(addr, "/api/analytics/flush", Some(ADMIN), &json!({}))
            .await
            .status,
        200
    );

    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            get(addr, open, None).await.status,
            200,
            "{open} needs no key"
        );
    }
    // The document is a GET endpoint under /api/analytics like the others: `read`.
    let document = "/api/analytics/openapi.json";
    assert_eq!(get(addr, document, None).await.status, 401);
    assert_eq!(get(addr, document, Some(INGEST)).await.status, 403);
    let openapi = get(addr, document, Some(READ)).await.json();
    assert!(openapi["paths"]["/api/analytics/events"]["post"].is_object());
    assert_eq!(get(addr, "/readyz", None).await.json()["status"], "ready");
    app.server.shutdown().await.unwrap();
}

#[test]
fn a_public_address_without_keys_is_refused() {
    let error = check_bind(&config(&[("ANALYTICS_BIND", "0.0.0.0:8080")])).unwrap_err();
    assert!(error.to_string().contains("without API keys"), "{error}");
    assert!(
        check_bind(&config(&[
            ("ANALYTICS_BIND", "0.0.0.0:8080"),
            ("ANALYTICS_API_KEYS", "read:k-0123456789abcdef")
        ]))
        .is_ok()
    );
    assert!(check_bind(&config(&[("ANALYTICS_BIND", "127.0.0.1:8080")])).is_ok());
    assert!(check_bind(&config(&[("ANALYTICS_BIND", "[::1]:8080")])).is_ok());
}

/// An event store that never answers: the tracker's buffer fills up.
struct Stuck;

#[async_trait::async_trait]
impl analytics::core::store::EventStore for Stuck {
    fn sessions(
        &self,
        _: analytics::core::store::SessionQuery,
    ) -> analytics::core::store::SessionStream {
        Box::pin(futures_util::stream::pending())
    }
    async fn write(
        &self,
        _: &[analytics::core::event::Event],
    ) -> analytics::core::Result<analytics::core::store::Written> {
        std::future::pending().await
    }
    async fn quarter_sums(
        &self,
        _: chrono::DateTime<chrono::Utc>,
        _: chrono::DateTime<chrono::Utc>,
    ) -> analytics::core::Result<
        Vec<(
            chrono::DateTime<chrono::Utc>,
            analytics::core::metrics::Sums,
        )>,
    > {
        Ok(Vec::new())
    }
    async fn marks(
        &self,
        _: chrono::DateTime<chrono::Utc>,
    ) -> analytics::core::Result<analytics::core::counters::CounterBatch> {
        Ok(Default::default())
    }
    async fn summarize(
        &self,
        _: analytics::core::time::DayWindow,
    ) -> analytics::core::Result<analytics::core::metrics::DaySummary> {
        Ok(Default::default())
    }
    async fn sketches(
        &self,
        _: analytics::core::time::DayWindow,
    ) -> analytics::core::Result<analytics::core::sketch::DaySketches> {
        Ok(Default::default())
    }
    async fn purge_before(&self, _: chrono::DateTime<Utc>) -> analytics::core::Result<u64> {
        Ok(0)
    }
    async fn dirty_days(&self) -> analytics::core::Result<Vec<analytics::core::store::DirtyDay>> {
        Ok(Vec::new())
    }
    async fn clean_day(&self, _: chrono::NaiveDate, _: &[u64]) -> analytics::core::Result<()> {
        Ok(())
    }
    async fn uncounted_days(&self) -> analytics::core::Result<Vec<chrono::NaiveDate>> {
        Ok(Vec::new())
    }
    async fn dead_letter(
        &self,
        _: &[analytics::core::event::Event],
        _: &str,
        _: chrono::DateTime<Utc>,
    ) -> analytics::core::Result<()> {
        std::future::pending().await
    }
    async fn dead_letters(
        &self,
        _: usize,
    ) -> analytics::core::Result<Vec<analytics::core::store::DeadLetter>> {
        Ok(Vec::new())
    }
    async fn lock_counters(
        &self,
        _: chrono::NaiveDate,
    ) -> analytics::core::Result<Box<dyn analytics::core::store::CounterRecount>> {
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_answers_503_and_takes_nothing_of_the_batch() {
    use analytics::core::memory::{MemoryCounters, MemoryStore};
    use analytics::core::store::Stores;
    use analytics::tracker::{Tracker, TrackerConfig};
    use std::sync::Arc;

    let tracker = Tracker::start(
        TrackerConfig {
            queue_capacity: 150,
            batch_size: 10,
            writers: 1,
            waiting_batches: 1,
            store_timeout: std::time::Duration::from_secs(3600),
            flush_deadline: std::time::Duration::from_millis(300),
            ..TrackerConfig::default()
        },
        Stores {
            events: Arc::new(Stuck),
            stats: Arc::new(MemoryStore::new()),
            counters: Arc::new(MemoryCounters::new()),
            spill: None,
        },
    );
    let store = Arc::new(MemoryStore::new());
    let stats = analytics::stats::Stats::new(
        analytics::core::store::Stores {
            events: store.clone(),
            stats: store,
            counters: Arc::new(MemoryCounters::new()),
            spill: None,
        },
        Arc::new(analytics::core::event::SystemClock),
        analytics::stats::StatsConfig::from_config(&Config::default()),
    );
    let app = analytics_server::api::router(analytics_server::api::AppState::new(
        tracker.clone(),
        stats,
        Vec::new(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let batch = |n: usize| {
        let events: Vec<Value> = (0..n).map(|i| json!({"event": "session.start", "properties": {"session_id": format!("s{i}")}})).collect();
        json!({ "events": events })
    };
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let before = tracker.telemetry().tracked;
        let response =
            post_json(addr, "/api/analytics/events?ack=buffered", None, &batch(50)).await;
        let taken = tracker.telemetry().tracked - before;
        match response.status {
            202 => assert_eq!(taken, 50),
            503 => {
                assert_eq!(taken, 0, "nothing of a refused batch is taken");
                assert_eq!(response.error().0, "buffer_full");
                assert!(
                    response.error().1.contains("same event ids"),
                    "{}",
                    response.body
                );
                assert_eq!(response.header("retry-after"), Some("1"));
            }
            other => panic!("status {other}: {}", response.body),
        }
        statuses.push(response.status);
    }
    assert!(
        statuses.contains(&202) && statuses.contains(&503),
        "{statuses:?}"
    );
    // The store never answers: a flush cannot see the events stored before its deadline.
    let flushed = post_json(addr, "/api/analytics/flush", None, &json!({})).await;
    assert_eq!(flushed.status, 503, "{}", flushed.body);
    assert_eq!(flushed.error().0, "not_stored");
    assert!(
        flushed.error().1.contains("nothing is lost"),
        "{}",
        flushed.body
    );
}

/// A server without keys on its own database and Redis prefix, whose interval is a
/// minute: a batch is cut only by an acknowledgement or a flush.
async fn keyless_with_a_long_interval() -> (TestDatabase, TestRedis, Server) {
    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let server = Server::start(config(&[
        ("DATABASE_URL", db.url()),
        ("REDIS_URL", &analytics_redis::testing::server_url()),
        ("ANALYTICS_REDIS_PREFIX", redis.prefix()),
        ("ANALYTICS_BIND", "127.0.0.1:0"),
        ("ANALYTICS_FLUSH_INTERVAL_MS", "60000"),
    ]))
    .await
    .unwrap();
    (db, redis, server)
}

/// By default `POST /events` answers 202 once its events are committed: they are in
/// the database at that moment, no flush needed (a crash right after loses nothing).
/// `?ack=buffered` answers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_acknowledgement_means_committed() {
    let (db, _redis, server) = keyless_with_a_long_interval().await;
    let addr = server.addr();
    let stored = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM analytics_events")
            .fetch_one(db.store().pool())
            .await
            .unwrap()
    };
    let mut total = 0;
    for round in 0..5 {
        let events = envelopes();
        total += events.len() as i64;
        let response = post_json(
            addr,
            "/api/analytics/events",
            None,
            &json!({"events": events}),
        )
        .await;
        assert_eq!(response.status, 202, "{}", response.body);
        assert_eq!(
            stored().await,
            total,
            "round {round}: committed when answered"
        );
    }
    let buffered = envelopes();
    let n_buffered = buffered.len() as i64;
    let response = post_json(
        addr,
        "/api/analytics/events?ack=buffered",
        None,
        &json!({"events": buffered}),
    )
    .await;
    assert_eq!(response.status, 202, "{}", response.body);
    assert_eq!(
        stored().await,
        total,
        "buffered: answered before the interval"
    );
    let bad = post_json(
        addr,
        "/api/analytics/events?ack=maybe",
        None,
        &json!({"events": []}),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.error().1.contains("stored"), "{}", bad.body);
    assert!(server.shutdown().await.unwrap().clean);
    assert_eq!(
        stored().await,
        total + n_buffered,
        "the buffered ones at the stop"
    );
}

/// While PostgreSQL refuses connections and Redis works, the default acknowledgement
/// comes once the events are in the spill buffer (SPEC §9), and nothing is lost: they
/// are stored once PostgreSQL is back. (A request used to wait out its 30 s deadline and
/// get 503, with its batch held by a writer instead of spilled.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgresql_is_down_the_default_acknowledgement_comes_once_spilled() {
    use analytics::core::store::SpillBuffer as _;
    use sqlx::Connection as _;

    let (db, redis, server) = keyless_with_a_long_interval().await;
    let addr = server.addr();
    let first = envelopes();
    let response = post_json(
        addr,
        "/api/analytics/events",
        None,
        &json!({"events": first}),
    )
    .await;
    assert_eq!(response.status, 202, "{}", response.body);

    // PostgreSQL goes away for this database: new connections are refused, open ones
    // are ended.
    let mut admin = sqlx::PgConnection::connect(&analytics_pg::testing::server_url())
        .await
        .unwrap();
    let name = db.name().to_owned();
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&name)
    .execute(&mut admin)
    .await
    .unwrap();

    let down = envelopes();
    let started = std::time::Instant::now();
    let response = post_json(
        addr,
        "/api/analytics/events",
        None,
        &json!({"events": down}),
    )
    .await;
    assert_eq!(response.status, 202, "{}", response.body);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "answered once spilled, not at the deadline: {:?}",
        started.elapsed()
    );
    assert_eq!(
        redis.store().len().await.unwrap(),
        down.len() as u64,
        "the acknowledged events are in the spill buffer"
    );

    // PostgreSQL is back: a flush answers once the spill buffer is drained into it.
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    let flushed = post_json(addr, "/api/analytics/flush", None, &json!({})).await;
    assert_eq!(flushed.status, 200, "{}", flushed.body);
    assert_eq!(redis.store().len().await.unwrap(), 0);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM analytics_events")
        .fetch_one(db.store().pool())
        .await
        .unwrap();
    assert_eq!(stored, (first.len() + down.len()) as i64, "each event once");
    assert!(server.shutdown().await.unwrap().clean);
}

/// Bodies as SDKs and attackers send them: gzip, other encodings, duplicate keys, long
/// names echoed back, `Expect: 100-continue` over the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encodings_duplicate_keys_and_echoes_are_handled() {
    use std::io::Write as _;

    let app = app().await;
    let addr = app.server.addr();
    let auth = format!("Bearer {ADMIN}");
    let post = |body: Vec<u8>, encoding: Option<&'static str>, path: String| {
        let auth = auth.clone();
        async move {
            let mut headers = vec![
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ];
            if let Some(encoding) = encoding {
                headers.push(("Content-Encoding", encoding));
            }
            request(addr, "POST", &path, &headers, &body).await
        }
    };
    let events = "/api/analytics/events".to_owned();
    let gzip = |bytes: &[u8]| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    };
    let sent = envelopes();
    let n = sent.len();
    let batch = json!({"events": sent}).to_string().into_bytes();

    let zipped = post(gzip(&batch), Some("gzip"), events.clone()).await;
    assert_eq!(zipped.status, 202, "{}", zipped.body);
    assert_eq!(zipped.json()["accepted"], n);

    let long = "x".repeat(300);
    let cases = [
        (post(batch.clone(), Some("br"), events.clone()).await, 415, "unsupported_media_type", "gzip"),
        (post(b"not gzip".to_vec(), Some("gzip"), events.clone()).await, 400, "malformed_gzip", "gzip"),
        (
            post(gzip(&vec![b' '; 2 * 1024 * 1024]), Some("gzip"), events.clone()).await,
            413, "too_large", "decompressed",
        ),
        (
            post(b"{\"events\": [], \"events\": []}".to_vec(), None, events.clone()).await,
            400, "malformed_json", "duplicate key \"events\"",
        ),
        (
            post(
                br#"{"events": [{"event": "agent.login", "properties": {"agent_id": "a", "agent_id": "b"}}]}"#.to_vec(),
                None,
                events.clone(),
            )
            .await,
            400, "malformed_json", "duplicate key \"agent_id\"",
        ),
        (
            post(b"{\"events\": []}".to_vec(), None, format!("/api/analytics/events?{long}=1")).await,
            400, "unknown_parameter", "xxxx…",
        ),
    ];
    for (response, status, code, words) in cases {
        assert_eq!(response.status, status, "{}", response.body);
        let (got, message) = response.error();
        assert_eq!(got, code, "{message}");
        assert!(
            message.contains(words),
            "{message:?} should mention {words:?}"
        );
        assert!(!message.contains(&long), "echoed in full: {message}");
    }

    // `Expect: 100-continue` with a body over the limit: 413 at once, before the body.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/analytics/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
        .await
        .unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut stream, &mut answer),
    )
    .await
    .expect("an answer without the body")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // A chunked body (no Content-Length) over the limit: 413 too.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let chunk = vec![b' '; 1024 * 1024 + 10];
    let mut raw = format!(
        "POST /api/analytics/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        chunk.len()
    )
    .into_bytes();
    raw.extend_from_slice(&chunk);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, &raw).await;
    let mut answer = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    app.server.shutdown().await.unwrap();
}
