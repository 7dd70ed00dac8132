//! Deterministic tests of the interleavings that once lost numbers: each forces one
//! order of a job and a concurrent writer with a second connection holding a
//! transaction open.

use std::sync::Arc;
use std::time::Duration;

use analytics_core::config::Config;
use analytics_core::counters::{Bucket, CounterBatch, Period};
use analytics_core::event::FixedClock;
use analytics_core::memory::{MemoryCounters, MemoryStore};
use analytics_core::metrics::Sums;
use analytics_core::store::Stores;
use analytics_core::store::{CounterStore as _, EventStore, StatsStore};
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

/// Counters whose `apply` of a batch without increments (the repair giving sessions and
/// agents back) says it has begun and waits to be let go.
struct PausingMarks {
    inner: MemoryCounters,
    reached: tokio::sync::Notify,
    go: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl analytics_core::store::CounterStore for PausingMarks {
    async fn apply(&self, batch: &CounterBatch) -> analytics_core::Result<()> {
        if batch.increments.is_empty() {
            self.reached.notify_one();
            self.go.notified().await;
        }
        self.inner.apply(batch).await
    }
    async fn read(&self, buckets: &[Bucket]) -> analytics_core::Result<Vec<Sums>> {
        self.inner.read(buckets).await
    }
    async fn replace(&self, bucket: &Bucket, sums: &Sums) -> analytics_core::Result<()> {
        self.inner.replace(bucket, sums).await
    }
    async fn active_sessions(
        &self,
        idle_cutoff: chrono::DateTime<chrono::Utc>,
    ) -> analytics_core::Result<u64> {
        self.inner.active_sessions(idle_cutoff).await
    }
    async fn online_agents(&self) -> analytics_core::Result<u64> {
        self.inner.online_agents().await
    }
    async fn read_agents(
        &self,
        period: Period,
    ) -> analytics_core::Result<std::collections::BTreeMap<String, Sums>> {
        self.inner.read_agents(period).await
    }
    async fn intact(&self) -> analytics_core::Result<bool> {
        self.inner.intact().await
    }
    async fn begin_rebuild(&self) -> analytics_core::Result<String> {
        self.inner.begin_rebuild().await
    }
    async fn finish_rebuild(&self, token: &str) -> analytics_core::Result<bool> {
        self.inner.finish_rebuild(token).await
    }
}

/// The counter repair gives the counters the latest word on each session from detail.
/// A write that ends a session while the repair is between reading that word and
/// applying it must not be undone by it (the older "started" applied after the end
/// would bring the session back): the write waits for the recent days' locks, so its
/// end lands after the repair's word. Forced here by pausing the repair's apply and
/// sending the end meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_during_the_repair_is_not_brought_back() {
    let now = at("2025-12-03T04:00:00Z");
    let store = Arc::new(MemoryStore::new());
    let counters = Arc::new(PausingMarks {
        inner: MemoryCounters::new(),
        reached: tokio::sync::Notify::new(),
        go: tokio::sync::Notify::new(),
    });
    let stats = Stats::new(
        Stores {
            events: store.clone(),
            stats: store.clone(),
            counters: counters.clone(),
            spill: None,
        },
        Arc::new(FixedClock::new(now)),
        StatsConfig::from_config(&Config::default()),
    );
    let jobs = Jobs::new(stats.clone());
    let calendar = *stats.calendar();
    // A session started ten minutes ago, stored and settled before the repair.
    let start = event(
        "session.start",
        now - chrono::TimeDelta::minutes(10),
        json!({"session_id": "s-1"}),
    );
    let written = store.write(std::slice::from_ref(&start)).await.unwrap();
    written.pending.unwrap().settle(false).await;

    // The repair rebuilds (the counters are new) and stops at giving the word back.
    let repair = tokio::spawn({
        let jobs = jobs.clone();
        async move { jobs.repair_counters().await }
    });
    counters.reached.notified().await;

    // Meanwhile the session ends: stored, then counted, as the tracker does it.
    let end = event(
        "session.end",
        now - chrono::TimeDelta::minutes(1),
        json!({"session_id": "s-1"}),
    );
    let ending = tokio::spawn({
        let store = store.clone();
        let counters = counters.clone();
        async move {
            let written = store.write(std::slice::from_ref(&end)).await.unwrap();
            counters
                .apply(&CounterBatch::from_events(&calendar, [&end]))
                .await
                .unwrap();
            written.pending.unwrap().settle(true).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !ending.is_finished(),
        "the end waits for the repair's locks on the recent days"
    );
    counters.go.notify_one();
    repair.await.unwrap().unwrap();
    ending.await.unwrap();

    let realtime = stats.realtime().await.unwrap();
    assert!(counters.inner.intact().await.unwrap(), "rebuilt");
    assert_eq!(realtime.active_sessions, 0, "the ended session stays ended");
}
