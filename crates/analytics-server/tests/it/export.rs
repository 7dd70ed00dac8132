//! The CSV exports, parsed back and compared with the JSON answers and, for sessions,
//! with a plain computation over the events sent.

use analytics::core::event::{Event, RawEvent};
use analytics::core::store::{RETURN_WINDOW, SessionQuery, sessions_of};
use analytics::core::time::Calendar;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::api::{ADMIN, READ, app};
use crate::http::{get, post_json};

/// Sessions over the last two days: customers coming back, hand-offs, releases.
fn traffic(now: DateTime<Utc>) -> Vec<Value> {
    let mut events = Vec::new();
    for i in 0..60i64 {
        let start = now - TimeDelta::minutes(40 * i + 7);
        let s = format!("s{i}");
        let mut properties =
            json!({"session_id": s, "channel": if i % 2 == 0 { "web" } else { "app" }});
        if i % 5 != 0 {
            properties["customer_id"] = json!(format!("c{}", i % 9));
        }
        let mut push = |at: DateTime<Utc>, event: &str, properties: Value| {
            events.push(json!({
                "event_id": uuid::Uuid::now_v7().to_string(),
                "event": event,
                // Stores keep microseconds.
                "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "properties": properties,
            }));
        };
        push(start, "session.start", properties);
        push(
            start + TimeDelta::seconds(5),
            "session.message",
            json!({"session_id": s, "response_time_ms": 800.0 + i as f64}),
        );
        if i % 3 == 0 {
            let agent = format!("a{}", i % 4);
            push(
                start + TimeDelta::seconds(20),
                "session.escalate",
                json!({"session_id": s}),
            );
            push(
                start + TimeDelta::seconds(50),
                "agent.session_takeover",
                json!({"session_id": s, "agent_id": agent, "wait_duration_seconds": 10.25 + i as f64}),
            );
            push(
                start + TimeDelta::seconds(400),
                "agent.session_release",
                json!({"session_id": s, "agent_id": agent, "handle_duration_seconds": 300.5}),
            );
        }
    }
    events
}

fn csv_rows(body: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// A CSV field against its JSON value: the same number, string or null.
fn same(field: &str, json: &Value, what: &str) {
    match json {
        Value::Null => assert_eq!(field, "", "{what}: null is empty"),
        Value::Number(n) if n.is_u64() => {
            assert_eq!(field.parse::<u64>().unwrap(), n.as_u64().unwrap(), "{what}")
        }
        // serde_json reads floats to within an ulp or so (no `float_roundtrip`).
        Value::Number(n) => {
            let (csv, json) = (field.parse::<f64>().unwrap(), n.as_f64().unwrap());
            assert!(
                (csv - json).abs() <= 1e-14 * json.abs(),
                "{what}: the same number, unformatted: {csv} vs {json}"
            )
        }
        Value::String(s) => assert_eq!(field, s, "{what}"),
        other => panic!("{what}: unexpected {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exports_say_what_the_json_answers_say() {
    let app = app().await;
    let addr = app.server.addr();
    let now = Utc::now();
    let envelopes = traffic(now);
    for chunk in envelopes.chunks(100) {
        let answer = post_json(
            addr,
            "/api/analytics/events",
            Some(ADMIN),
            &json!({"events": chunk}),
        )
        .await;
        assert_eq!(answer.status, 202, "{}", answer.body);
    }
    let calendar = Calendar::default();
    let today = calendar.date(now);
    let start = today - TimeDelta::days(2);

    // daily.csv against /range.
    let range = get(
        addr,
        &format!("/api/analytics/range?start={start}&end={today}"),
        Some(READ),
    )
    .await
    .json();
    let answer = get(
        addr,
        &format!("/api/analytics/export/daily.csv?start={start}&end={today}"),
        Some(READ),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    let (header, rows) = csv_rows(&answer.body);
    let days = range["days"].as_array().unwrap();
    assert_eq!(rows.len(), days.len());
    assert_eq!(header[0], "date");
    // Every field of `raw`, percentiles included, has its column.
    let raw_fields: Vec<&String> = days[0]["raw"].as_object().unwrap().keys().collect();
    assert_eq!(header.len(), 1 + raw_fields.len(), "{header:?}");
    assert!(raw_fields.iter().all(|f| header.contains(f)), "{header:?}");
    assert!(
        days.iter()
            .any(|d| d["raw"]["response_time_ms_p90"].is_number()),
        "the days have percentiles"
    );
    for (row, day) in rows.iter().zip(days) {
        assert_eq!(row[0], day["date"].as_str().unwrap());
        for (name, field) in header.iter().zip(row).skip(1) {
            same(field, &day["raw"][name], name);
        }
    }
    assert!(rows.iter().any(|r| r[1] != "0"), "the days have sessions");

    // agents.csv against /agents.
    let month = today.format("%Y-%m").to_string();
    let agents = get(
        addr,
        &format!("/api/analytics/agents?month={month}"),
        Some(READ),
    )
    .await
    .json();
    let answer = get(
        addr,
        &format!("/api/analytics/export/agents.csv?month={month}"),
        Some(READ),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let (header, rows) = csv_rows(&answer.body);
    let agents = agents["agents"].as_array().unwrap();
    assert_eq!(rows.len(), agents.len());
    assert_eq!(
        header.len(),
        agents[0].as_object().unwrap().len(),
        "{header:?}"
    );
    for (row, agent) in rows.iter().zip(agents) {
        for (name, field) in header.iter().zip(row) {
            same(field, &agent[name], name);
        }
    }

    // sessions.csv against a plain computation over the events sent.
    let answer = get(
        addr,
        &format!("/api/analytics/export/sessions.csv?start={start}&end={today}"),
        Some(READ),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let (header, rows) = csv_rows(&answer.body);
    assert_eq!(
        header,
        [
            "session_id",
            "started_at",
            "date",
            "channel",
            "customer_id",
            "ai_handled",
            "escalated",
            "agent_id",
            "first_response_seconds",
            "handle_time_seconds",
            "returned"
        ]
    );
    let events: Vec<Event> = envelopes
        .iter()
        .map(|e| Event::restore(RawEvent::from_json(e.clone()).unwrap()).unwrap())
        .collect();
    let expected = sessions_of(
        &events,
        SessionQuery {
            from: calendar.day_start(start),
            to: calendar.day_start(today + TimeDelta::days(1)),
            window: RETURN_WINDOW,
        },
    );
    assert_eq!(rows.len(), expected.len());
    assert_eq!(rows.len(), 60, "every session of the two days");
    let seconds = |micros: Option<u64>| micros.map(|m| m as f64 / 1e6);
    for (row, want) in rows.iter().zip(&expected) {
        let what = &want.session_id;
        assert_eq!(row[0], want.session_id);
        assert_eq!(
            DateTime::parse_from_rfc3339(&row[1]).unwrap().to_utc(),
            want.started_at,
            "{what}"
        );
        assert_eq!(row[2], calendar.date(want.started_at).to_string());
        assert_eq!(row[3], want.channel.clone().unwrap_or_default(), "{what}");
        assert_eq!(
            row[4],
            want.customer_id.clone().unwrap_or_default(),
            "{what}"
        );
        assert_eq!(row[5], (!want.escalated).to_string(), "{what}");
        assert_eq!(row[6], want.escalated.to_string(), "{what}");
        assert_eq!(row[7], want.agent_id.clone().unwrap_or_default(), "{what}");
        let number = |field: &str| (!field.is_empty()).then(|| field.parse::<f64>().unwrap());
        assert_eq!(
            number(&row[8]),
            seconds(want.first_response_micros),
            "{what}"
        );
        assert_eq!(number(&row[9]), seconds(want.handle_time_micros), "{what}");
        assert_eq!(row[10], want.returned.to_string(), "{what}");
    }
    assert!(expected.iter().any(|s| s.returned) && expected.iter().any(|s| !s.returned));
    assert!(expected.iter().any(|s| s.escalated));

    // The AI funnel of the same days: each day counted on its own.
    let funnel = get(
        addr,
        &format!("/api/analytics/ai?start={start}&end={today}"),
        Some(READ),
    )
    .await;
    assert_eq!(funnel.status, 200, "{}", funnel.body);
    let funnel = funnel.json();
    let mut totals = [0u64; 4];
    for day in funnel["days"].as_array().unwrap() {
        let date =
            chrono::NaiveDate::parse_from_str(day["date"].as_str().unwrap(), "%Y-%m-%d").unwrap();
        let sessions = sessions_of(
            &events,
            SessionQuery {
                from: calendar.day_start(date),
                to: calendar.day_start(date + TimeDelta::days(1)),
                window: RETURN_WINDOW,
            },
        );
        let handled: Vec<_> = sessions.iter().filter(|s| !s.escalated).collect();
        let want = [
            sessions.len() as u64,
            handled.len() as u64,
            handled.iter().filter(|s| s.returned).count() as u64,
            sessions.iter().filter(|s| s.customer_id.is_none()).count() as u64,
        ];
        let got = [
            "sessions",
            "ai_handled",
            "returned",
            "sessions_without_customer",
        ]
        .map(|k| day[k].as_u64().unwrap());
        assert_eq!(got, want, "funnel of {date}");
        assert_eq!(
            day["durable_ai_resolved"].as_u64().unwrap(),
            want[1] - want[2]
        );
        for (total, n) in totals.iter_mut().zip(want) {
            *total += n;
        }
    }
    assert_eq!(
        [
            "sessions",
            "ai_handled",
            "returned",
            "sessions_without_customer"
        ]
        .map(|k| funnel[k].as_u64().unwrap()),
        totals
    );
    assert_eq!(totals[0], 60);
    assert_eq!(
        funnel["provisional"], true,
        "today's returns can still come"
    );
    assert_eq!(funnel["return_window_hours"], 24.0);
    let both = get(
        addr,
        &format!("/api/analytics/ai?month=2025-12&start={start}&end={today}"),
        Some(READ),
    )
    .await;
    assert_eq!(both.status, 400, "{}", both.body);

    // Bad input and keys.
    let answer = get(
        addr,
        "/api/analytics/export/sessions.csv?start=2025-13-01&end=2025-12-31",
        Some(READ),
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    let answer = get(
        addr,
        "/api/analytics/export/daily.csv?start=2025-01-01&end=2025-01-02",
        None,
    )
    .await;
    assert_eq!(answer.status, 401);
}

/// An event store whose sessions export sends one session, then nothing more: a
/// download that stays open.
struct Trickle(analytics::core::memory::MemoryStore);

#[async_trait::async_trait]
impl analytics::core::store::EventStore for Trickle {
    fn sessions(&self, _: SessionQuery) -> analytics::core::store::SessionStream {
        let row = analytics::core::store::SessionRow {
            session_id: "s".into(),
            started_at: Utc::now(),
            channel: None,
            customer_id: None,
            escalated: false,
            agent_id: None,
            first_response_micros: None,
            handle_time_micros: None,
            returned: false,
        };
        Box::pin(futures_util::StreamExt::chain(
            futures_util::stream::iter([Ok(row)]),
            futures_util::stream::pending(),
        ))
    }
    async fn write(
        &self,
        events: &[Event],
    ) -> analytics::core::Result<analytics::core::store::Written> {
        self.0.write(events).await
    }
    async fn quarter_sums(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> analytics::core::Result<
        Vec<(
            chrono::DateTime<chrono::Utc>,
            analytics::core::metrics::Sums,
        )>,
    > {
        self.0.quarter_sums(from, to).await
    }
    async fn marks(
        &self,
        from: chrono::DateTime<chrono::Utc>,
    ) -> analytics::core::Result<analytics::core::counters::CounterBatch> {
        self.0.marks(from).await
    }
    async fn summarize(
        &self,
        day: analytics::core::time::DayWindow,
    ) -> analytics::core::Result<analytics::core::metrics::DaySummary> {
        self.0.summarize(day).await
    }
    async fn sketches(
        &self,
        day: analytics::core::time::DayWindow,
    ) -> analytics::core::Result<analytics::core::sketch::DaySketches> {
        self.0.sketches(day).await
    }
    async fn purge_before(&self, cutoff: DateTime<Utc>) -> analytics::core::Result<u64> {
        self.0.purge_before(cutoff).await
    }
    async fn dirty_days(&self) -> analytics::core::Result<Vec<analytics::core::store::DirtyDay>> {
        self.0.dirty_days().await
    }
    async fn clean_day(
        &self,
        day: chrono::NaiveDate,
        marks: &[u64],
    ) -> analytics::core::Result<()> {
        self.0.clean_day(day, marks).await
    }
    async fn uncounted_days(&self) -> analytics::core::Result<Vec<chrono::NaiveDate>> {
        self.0.uncounted_days().await
    }
    async fn lock_counters(
        &self,
        day: chrono::NaiveDate,
    ) -> analytics::core::Result<Box<dyn analytics::core::store::CounterRecount>> {
        self.0.lock_counters(day).await
    }
    async fn dead_letter(
        &self,
        events: &[Event],
        reason: &str,
        at: DateTime<Utc>,
    ) -> analytics::core::Result<()> {
        self.0.dead_letter(events, reason, at).await
    }
    async fn dead_letters(
        &self,
        limit: usize,
    ) -> analytics::core::Result<Vec<analytics::core::store::DeadLetter>> {
        self.0.dead_letters(limit).await
    }
}

/// Reads a response's status line and headers, and leaves the body unread.
async fn open_download(addr: std::net::SocketAddr, path: &str) -> (u16, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "the server closed"
        );
        head.push(byte[0]);
    }
    let status = String::from_utf8_lossy(&head)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    (status, stream)
}

/// Sessions downloads hold a database connection while their clients read: at most
/// two run at once, the next is told to come back, and a client that goes away frees
/// its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_two_sessions_downloads_run_at_once() {
    use analytics::core::memory::{MemoryCounters, MemoryStore};
    use analytics::core::store::Stores;
    use analytics::tracker::{Tracker, TrackerConfig};
    use std::sync::Arc;

    let events = Arc::new(Trickle(MemoryStore::new()));
    let tracker = Tracker::start(
        TrackerConfig::default(),
        Stores {
            events: events.clone(),
            stats: Arc::new(MemoryStore::new()),
            counters: Arc::new(MemoryCounters::new()),
            spill: None,
        },
    );
    let stats = analytics::stats::Stats::new(
        analytics::core::store::Stores {
            events,
            stats: Arc::new(MemoryStore::new()),
            counters: Arc::new(MemoryCounters::new()),
            spill: None,
        },
        Arc::new(analytics::core::event::SystemClock),
        analytics::stats::StatsConfig::from_config(&analytics::core::config::Config::default()),
    );
    let app = analytics_server::api::router(analytics_server::api::AppState::new(
        tracker,
        stats,
        Vec::new(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let path = "/api/analytics/export/sessions.csv?start=2025-12-01&end=2025-12-02";
    let (first, one) = open_download(addr, path).await;
    let (second, two) = open_download(addr, path).await;
    assert_eq!((first, second), (200, 200));
    let busy = get(addr, path, None).await;
    assert_eq!(busy.status, 503, "{}", busy.body);
    assert_eq!(busy.error().0, "busy");
    // A client that goes away frees its place.
    drop(one);
    let mut freed = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let (status, _again) = open_download(addr, path).await;
        if status == 200 {
            freed = true;
            break;
        }
    }
    assert!(freed, "the place of a client that left is taken again");
    drop(two);
}
