//! Deterministic tests of the interleavings that once lost numbers: each forces one
//! order of a job and a concurrent writer with a second connection holding a
//! transaction open.

use std::sync::Arc;
use std::time::Duration;

use analytics_core::config::Config;
use analytics_core::event::FixedClock;
use analytics_core::memory::MemoryCounters;
use analytics_core::store::Stores;
use analytics_core::store::{EventStore, StatsStore};
use analytics_core::testing::{at, event};
use analytics_core::time::DateRange;
use analytics_pg::PgStore;
use analytics_pg::testing::TestDatabase;
use analytics_stats::{JobOutcome, Jobs, Stats, StatsConfig};
use chrono::NaiveDate;
use serde_json::json;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 12, 1).unwrap()
}

/// Statistics and jobs over the test database, "now" two days after the day of the
/// tests (so that it is read from statistics or detail, not counters).
fn statistics_on(db: &TestDatabase) -> (Arc<PgStore>, Stats, Jobs) {
    let pg = Arc::new(PgStore::new(
        db.store().pool().clone(),
        *db.store().calendar(),
    ));
    let stats = Stats::new(
        Stores {
            events: pg.clone(),
            stats: pg.clone(),
            counters: Arc::new(MemoryCounters::new()),
            spill: None,
        },
        Arc::new(FixedClock::new(at("2025-12-03T04:00:00Z"))),
        StatsConfig::from_config(&Config::default()),
    );
    let jobs = Jobs::new(stats.clone());
    (pg, stats, jobs)
}

/// Waits until some session of this database waits for a lock on `table`.
async fn until_waiting_on(db: &TestDatabase, table: &str) {
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks \
             WHERE NOT granted AND relation = $1::regclass \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .bind(table)
        .fetch_one(db.store().pool())
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("nothing came to wait on {table}");
}

/// Writer A takes its dirty mark, then writer B takes a later one and commits; the
/// refresh reads B's mark, summarizes the day (without A's event), and A commits
/// before the refresh removes the marks. Cleaning "every mark up to the highest read"
/// removed A's mark too, and A's event never reached daily statistics. Only the marks
/// read may go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_commits_during_the_refresh_keeps_its_day_dirty() {
    let db = TestDatabase::new().await;
    let (pg, stats, jobs) = statistics_on(&db);
    pg.prepare_days(DateRange::day(day())).await.unwrap();

    // A: an open transaction with one event and its (earlier) mark. It also holds the
    // daily statistics table, so that the refresh stops after its summary.
    let mut a = PgConnection::connect(db.url()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut a).await.unwrap();
    sqlx::query(
        "INSERT INTO analytics_events (event_id, occurred_at, event, session_id, properties) \
         VALUES (gen_random_uuid(), $1, 'session.start', 's-a', '{\"session_id\": \"s-a\"}')",
    )
    .bind(at("2025-12-01T02:00:00Z"))
    .execute(&mut a)
    .await
    .unwrap();
    sqlx::query("INSERT INTO analytics_dirty_days (day) VALUES ($1)")
        .bind(day())
        .execute(&mut a)
        .await
        .unwrap();
    sqlx::query("LOCK TABLE analytics_daily_stats IN SHARE MODE")
        .execute(&mut a)
        .await
        .unwrap();

    // B: three events, committed, with a later mark.
    let b: Vec<_> = (0..3)
        .map(|i| {
            event(
                "session.start",
                at("2025-12-01T03:00:00Z"),
                json!({"session_id": format!("s-b{i}")}),
            )
        })
        .collect();
    pg.insert(&b).await.unwrap();

    // The refresh reads B's mark, sums B's events, and waits for A's lock.
    let refresh = tokio::spawn({
        let jobs = jobs.clone();
        async move { jobs.refresh().await }
    });
    until_waiting_on(&db, "analytics_daily_stats").await;
    sqlx::query("COMMIT").execute(&mut a).await.unwrap();
    assert_eq!(refresh.await.unwrap().unwrap(), JobOutcome::Ran(1));

    // A's mark survived: the day is still dirty, read from detail, and the next
    // refresh folds A's event into daily statistics.
    let dirty = pg.dirty_days().await.unwrap();
    assert_eq!(
        dirty.iter().map(|d| d.day).collect::<Vec<_>>(),
        [day()],
        "the late commit keeps its day dirty"
    );
    assert_eq!(stats.daily(day()).await.unwrap().total_customers_served, 4);
    assert_eq!(jobs.refresh().await.unwrap(), JobOutcome::Ran(1));
    assert!(pg.dirty_days().await.unwrap().is_empty());
    let stored = pg.days(DateRange::day(day())).await.unwrap();
    assert_eq!(
        stored[0]
            .1
            .count(analytics_core::catalog::Kind::SessionStart),
        4,
        "daily statistics hold all four events"
    );
    assert_eq!(stats.daily(day()).await.unwrap().total_customers_served, 4);
}

/// `analytics aggregate --from D --to D` rebuilds the days of the range from detail,
/// whatever the dirty marks say: here the day is clean and its statistics were lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregating_a_range_rebuilds_clean_days_too() {
    let db = TestDatabase::new().await;
    let (pg, stats, jobs) = statistics_on(&db);
    let events: Vec<_> = (0..5)
        .map(|i| {
            event(
                "session.start",
                at("2025-12-01T03:00:00Z"),
                json!({"session_id": format!("s{i}")}),
            )
        })
        .collect();
    pg.insert(&events).await.unwrap();
    jobs.refresh().await.unwrap();
    assert!(pg.dirty_days().await.unwrap().is_empty());
    sqlx::query("DELETE FROM analytics_daily_stats")
        .execute(pg.pool())
        .await
        .unwrap();
    assert_eq!(stats.daily(day()).await.unwrap().total_customers_served, 0);

    let range = DateRange::new(day(), NaiveDate::from_ymd_opt(2025, 12, 2).unwrap()).unwrap();
    assert_eq!(
        jobs.aggregate_days(range).await.unwrap(),
        JobOutcome::Ran(2)
    );
    assert_eq!(stats.daily(day()).await.unwrap().total_customers_served, 5);
}
