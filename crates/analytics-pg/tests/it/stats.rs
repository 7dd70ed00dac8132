//! Daily statistics: aggregation from event detail, reads, and retention.

use analytics_core::event::Event;
use analytics_core::metrics::{DaySummary, Sums};
use analytics_core::report::{BusinessMetrics, CostPerResolution};
use analytics_core::store::{EventStore, StatsStore};
use analytics_core::testing::{at, event};
use analytics_core::time::{DateRange, YearMonth};
use analytics_pg::testing::TestDatabase;
use chrono::{NaiveDate, TimeDelta};
use serde_json::json;

/// Each agent's sums over `range`: the merge of its days.
async fn agents_over(
    store: &analytics_pg::PgStore,
    range: DateRange,
) -> std::collections::BTreeMap<String, Sums> {
    let mut agents = std::collections::BTreeMap::<String, Sums>::new();
    for day in store.agent_days(range).await.unwrap().into_values() {
        for (agent, sums) in day {
            agents.entry(agent).or_default().merge(&sums);
        }
    }
    agents
}

/// One day's statistics recomputed from detail and stored: the refresh job's two
/// steps.
async fn aggregate(store: &analytics_pg::PgStore, day: NaiveDate) -> DaySummary {
    let summary = store
        .summarize(store.calendar().day_window(day))
        .await
        .unwrap();
    store.put_day(day, &summary).await.unwrap();
    summary
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A varied day of events starting at `start`: sessions, replies, hand-offs, tickets,
/// custom events, two agents.
fn day_of_events(start: chrono::DateTime<chrono::Utc>, n: i64) -> Vec<Event> {
    // One group of events every 8 minutes.
    let mut events = Vec::new();
    for i in 0..n {
        let t = start + TimeDelta::minutes(i * 8);
        let s = format!("s-{}-{i}", start.timestamp());
        let agent = if i % 2 == 0 { "a-1" } else { "a-2" };
        events.push(event("session.start", t, json!({"session_id": s})));
        events.push(event(
            "session.message",
            t,
            json!({"session_id": s, "response_time_ms": 800 + i * 13}),
        ));
        if i % 4 == 0 {
            events.push(event("session.escalate", t, json!({"session_id": s})));
            events.push(event("agent.session_takeover", t, json!({"agent_id": agent, "session_id": s, "wait_duration_seconds": 10.5 + i as f64})));
            events.push(event(
                "agent.session_message",
                t,
                json!({"agent_id": agent, "session_id": s}),
            ));
            events.push(event(
                "agent.session_release",
                t,
                json!({"agent_id": agent, "session_id": s, "handle_duration_seconds": 300 + i}),
            ));
        }
        if i % 5 == 0 {
            events.push(event("ticket.closed", t, json!({"ticket_id": format!("t-{i}"), "resolution_duration_hours": 2.25, "sla_met": i % 10 == 0})));
        }
        if i % 6 == 0 {
            events.push(event("custom.banner_click", t, json!({"banner": "x"})));
        }
    }
    events
}

fn summary_of(events: &[Event]) -> DaySummary {
    let mut summary = DaySummary::default();
    events.iter().for_each(|e| summary.record(e));
    summary
}

#[tokio::test]
async fn aggregation_matches_the_metric_model_and_is_idempotent() {
    let db = TestDatabase::new().await;
    let store = db.store();
    // 2025-12-01 in Shanghai starts at 2025-11-30T16:00Z; 200 events × 8 min pass its end.
    let day_start = at("2025-11-30T16:00:00Z");
    let events = day_of_events(day_start, 200);
    let (inside, outside): (Vec<_>, Vec<_>) = events
        .iter()
        .cloned()
        .partition(|e| e.timestamp() < at("2025-12-01T16:00:00Z"));
    assert!(!outside.is_empty(), "the events spill into the next day");
    store.insert(&events).await.unwrap();

    let first = aggregate(store, date("2025-12-01")).await;
    assert_eq!(first, summary_of(&inside));
    let again = aggregate(store, date("2025-12-01")).await;
    assert_eq!(again, first);

    let range = DateRange::day(date("2025-12-01"));
    assert_eq!(
        store.days(range).await.unwrap(),
        [(date("2025-12-01"), first.totals)]
    );
    assert_eq!(agents_over(store, range).await, first.agents);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM analytics_daily_stats")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        rows as usize,
        first.totals.iter().count(),
        "re-running replaced, not added"
    );
    let events_recorded: i64 =
        sqlx::query_scalar("SELECT events FROM analytics_aggregated_days WHERE day = '2025-12-01'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(events_recorded as usize, inside.len());
}

#[tokio::test]
async fn aggregation_picks_up_late_events_for_a_finished_day() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let events = day_of_events(at("2025-12-01T16:00:00Z"), 50);
    store.insert(&events).await.unwrap();
    let before = aggregate(store, date("2025-12-02")).await;

    let late = event(
        "session.start",
        at("2025-12-02T15:59:59Z"),
        json!({"session_id": "late"}),
    );
    store.insert(std::slice::from_ref(&late)).await.unwrap();
    let after = aggregate(store, date("2025-12-02")).await;
    let mut expected = before.clone();
    expected.record(&late);
    assert_eq!(after, expected);
    assert_eq!(
        store
            .days(DateRange::day(date("2025-12-02")))
            .await
            .unwrap()[0]
            .1,
        expected.totals
    );
}

#[tokio::test]
async fn retention_drops_old_partitions_and_keeps_the_statistics() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let november: YearMonth = "2025-11".parse().unwrap();
    // Ten days of November and two of December.
    let mut all = Vec::new();
    for day in (1..=10).chain([29, 30]) {
        let start = store
            .calendar()
            .day_start(NaiveDate::from_ymd_opt(2025, 11, day).unwrap());
        all.extend(day_of_events(start + TimeDelta::minutes(3), 20));
    }
    all.extend(day_of_events(
        store.calendar().day_start(date("2025-12-01")),
        20,
    ));
    all.extend(day_of_events(
        store.calendar().day_start(date("2025-12-02")),
        20,
    ));
    store.insert(&all).await.unwrap();
    for day in november
        .days()
        .iter()
        .chain([date("2025-12-01"), date("2025-12-02")])
    {
        aggregate(store, day).await;
    }
    async fn month(store: &analytics_pg::PgStore, month: YearMonth) -> Sums {
        store
            .days(month.days())
            .await
            .unwrap()
            .iter()
            .map(|(_, s)| *s)
            .sum()
    }
    let november_before = month(store, november).await;
    let agents_before = agents_over(store, november.days()).await;
    assert_eq!(
        november_before,
        Sums::from_events(
            all.iter()
                .filter(|e| store.calendar().month(e.timestamp()) == november)
        )
    );

    // Keep detail from 2025-12-01 on.
    let dropped = store
        .purge_before(store.calendar().day_start(date("2025-12-01")))
        .await
        .unwrap();
    let november_events = all
        .iter()
        .filter(|e| store.calendar().month(e.timestamp()) == november)
        .count();
    assert_eq!(dropped as usize, november_events);
    assert_eq!(
        store.partition_days().await.unwrap(),
        [date("2025-12-01"), date("2025-12-02")]
    );
    let remaining: i64 = sqlx::query_scalar("SELECT count(*) FROM analytics_events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(remaining as usize, all.len() - november_events);

    // The month's statistics, and its case-study metrics, are what they were.
    assert_eq!(month(store, november).await, november_before);
    assert_eq!(agents_over(store, november.days()).await, agents_before);
    let cost = CostPerResolution::default();
    assert_eq!(
        BusinessMetrics::from_sums(&month(store, november).await, cost),
        BusinessMetrics::from_sums(&november_before, cost)
    );
    // Re-aggregating a purged day would erase it: the detail is gone, so only the
    // statistics job's own rule (never re-aggregate past retention) protects it. The
    // December days are untouched.
    assert_eq!(
        aggregate(store, date("2025-12-01")).await,
        summary_of(
            &all.iter()
                .filter(|e| store.calendar().date(e.timestamp()) == date("2025-12-01"))
                .cloned()
                .collect::<Vec<_>>()
        )
    );
}

#[tokio::test]
async fn concurrent_aggregations_of_a_day_agree_with_its_events() {
    let db = TestDatabase::new().await;
    let store = std::sync::Arc::new(analytics_pg::PgStore::new(
        db.store().pool().clone(),
        *db.store().calendar(),
    ));
    let day = date("2025-12-05");
    let start = store.calendar().day_start(day);
    let events = day_of_events(start, 150);
    let (first, rest) = events.split_at(events.len() / 2);
    store.insert(first).await.unwrap();
    // Aggregations of the same day race with each other and with more inserts.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = store.clone();
        let rest = rest.to_vec();
        tasks.push(tokio::spawn(async move {
            if i == 3 {
                store.insert(&rest).await.unwrap();
            }
            aggregate(&store, day).await
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Whatever the interleaving, one more run sees every event, and the rows are exact.
    let last = aggregate(&store, day).await;
    let in_day: Vec<Event> = events
        .iter()
        .filter(|e| store.calendar().date(e.timestamp()) == day)
        .cloned()
        .collect();
    assert_eq!(last, summary_of(&in_day));
    assert_eq!(
        store.days(DateRange::day(day)).await.unwrap(),
        [(day, last.totals)]
    );
    assert_eq!(agents_over(&store, DateRange::day(day)).await, last.agents);
}

#[tokio::test]
async fn a_job_lock_is_held_by_one_holder_at_a_time() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let other = analytics_pg::PgStore::new(
        sqlx::postgres::PgPoolOptions::new()
            .connect(db.url())
            .await
            .unwrap(),
        *store.calendar(),
    );
    let lock = store.try_lock("refresh").await.unwrap().expect("free");
    assert!(
        other.try_lock("refresh").await.unwrap().is_none(),
        "held by the first process"
    );
    assert!(
        other.try_lock("retention").await.unwrap().is_some(),
        "another job is free"
    );
    lock.release().await;
    let again = other.try_lock("refresh").await.unwrap().expect("released");
    // Dropped without release (a job that panicked): the lock goes with its connection.
    drop(again);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(store.try_lock("refresh").await.unwrap().is_some());
}
