//! 100,000 events from many tasks through the tracker into PostgreSQL and Redis.

use std::sync::Arc;
use std::time::Duration;

use analytics::core::catalog::EventData;
use analytics::core::counters::{Bucket, Period};
use analytics::core::store::Stores;
use analytics::core::store::{CounterStore, EventStore};
use analytics::tracker::{Tracker, TrackerConfig};
use analytics_pg::testing::TestDatabase;
use analytics_redis::testing::TestRedis;
use chrono::NaiveDate;

fn event(task: usize, i: usize) -> EventData {
    let session_id = format!("s-{task}-{}", i % 500);
    match i % 10 {
        0 => EventData::SessionStart {
            session_id,
            customer_id: None,
            channel: Some("web".into()),
            user_agent: None,
        },
        1..=6 => EventData::SessionMessage {
            session_id,
            response_time_ms: 200.0 + (i % 3000) as f64 * 0.75,
            tokens: Some(i as u64 % 400),
        },
        7 => EventData::AgentSessionTakeover {
            agent_id: format!("a-{}", task % 7),
            session_id,
            wait_duration_seconds: (i % 90) as f64 + 0.5,
        },
        8 => EventData::TicketClosed {
            ticket_id: format!("t-{task}-{i}"),
            resolution_duration_hours: (i % 48) as f64 / 4.0,
            sla_met: !i.is_multiple_of(3),
        },
        _ => EventData::SessionEnd {
            session_id,
            duration_seconds: Some(60.0),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_events_from_many_tasks_are_stored_and_counted_exactly() {
    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let pg = Arc::new(analytics_pg::PgStore::new(
        db.store().pool().clone(),
        *db.store().calendar(),
    ));
    let counters = Arc::new(redis.store().clone());
    let tracker = Tracker::start(
        TrackerConfig {
            flush_interval: Duration::from_millis(200),
            ..TrackerConfig::default()
        },
        Stores {
            events: pg.clone(),
            stats: pg.clone(),
            counters: counters.clone(),
            spill: Some(counters.clone()),
        },
    );

    const TASKS: usize = 16;
    const PER_TASK: usize = 6_250;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let tracker = tracker.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                // A full buffer is the tracker saying "not now": try again shortly.
                loop {
                    match tracker.track(event(task, i)) {
                        Ok(_) => break,
                        Err(analytics::tracker::TrackError::BufferFull) => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(other) => panic!("{other}"),
                    }
                }
                if i % 1_000 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let report = tracker.stop(Duration::from_secs(60)).await;
    assert!(report.clean, "{report:?}");

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM analytics_events")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(rows, 100_000);
    let t = tracker.telemetry();
    assert_eq!((t.tracked, t.stored, t.duplicates), (100_000, 100_000, 0));

    // The counters of every day equal what PostgreSQL says the day holds.
    let days: Vec<NaiveDate> = sqlx::query_scalar(
        "SELECT DISTINCT (occurred_at AT TIME ZONE 'Asia/Shanghai')::date FROM analytics_events ORDER BY 1",
    )
    .fetch_all(pg.pool())
    .await
    .unwrap();
    let mut total = 0;
    for day in days {
        let stored = pg.summarize(pg.calendar().day_window(day)).await.unwrap();
        let counted = counters
            .read(&[Bucket::all(Period::Day(day))])
            .await
            .unwrap();
        assert_eq!(counted[0], stored.totals, "{day}");
        total += stored.totals.total_events();
    }
    assert_eq!(total, 100_000);
}

/// PostgreSQL refuses some events for good (here a CHECK constraint the test adds; in
/// the field a value it cannot store): the batch is split until they are alone, they
/// are kept in `analytics_dead_letters` with PostgreSQL's reason, and every other event
/// of the batch is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_postgres_refuses_are_dead_lettered_and_the_rest_stored() {
    let db = TestDatabase::new().await;
    sqlx::query(
        "ALTER TABLE analytics_events ADD CONSTRAINT no_poison \
         CHECK (session_id IS DISTINCT FROM 'poison')",
    )
    .execute(db.store().pool())
    .await
    .unwrap();
    let store = Arc::new(analytics_pg::PgStore::new(
        db.store().pool().clone(),
        *db.store().calendar(),
    ));
    let tracker = Tracker::start(
        TrackerConfig {
            batch_size: 1_000,
            ..TrackerConfig::default()
        },
        Stores {
            events: store.clone(),
            stats: store.clone(),
            counters: Arc::new(analytics::core::memory::MemoryCounters::new()),
            spill: None,
        },
    );
    let mut events = Vec::new();
    for i in 0..999 {
        let session_id = if i == 500 || i == 17 {
            "poison".to_owned()
        } else {
            format!("s-{i}")
        };
        events.push(EventData::SessionStart {
            session_id,
            customer_id: None,
            channel: None,
            user_agent: None,
        });
    }
    for event in events {
        tracker.track(event).unwrap();
    }
    tracker.flush().await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM analytics_events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(stored, 997);
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 2, "{dead:#?}");
    assert!(
        dead.iter().all(|d| d.reason.contains("no_poison")),
        "{dead:?}"
    );
    assert_eq!(tracker.telemetry().dead_lettered, 2);
    assert!(tracker.stop(Duration::from_secs(10)).await.clean);
}
