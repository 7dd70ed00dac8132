//! Questions answered from a streaming replica: exact whether it has caught up or not.

use std::sync::Arc;
use std::time::Duration;

use analytics::core::config::Config;
use analytics::core::event::{Event, SystemClock};
use analytics::core::memory::MemoryCounters;
use analytics::core::store::Stores;
use analytics::core::store::{EventStore, StatsStore};
use analytics::core::testing::event;
use analytics::core::time::{DateRange, YearMonth};
use analytics::pg::testing::ReplicatedCluster;
use analytics::pg::{PgStore, PoolOptions, ReplicaReads};
use analytics::stats::{Jobs, Stats, StatsConfig};
use chrono::{TimeDelta, Utc};
use serde_json::json;

fn stats_over(events: Arc<dyn EventStore>, stats: Arc<dyn StatsStore>) -> Stats {
    Stats::new(
        Stores {
            events,
            stats,
            // In-process counters never answer for days: days come from statistics
            // and detail, which is what the replica serves.
            counters: Arc::new(MemoryCounters::new()),
            spill: None,
        },
        Arc::new(SystemClock),
        StatsConfig::from_config(&Config::default()),
    )
}

fn sessions(n: usize, days_ago: i64, tag: &str) -> Vec<Event> {
    let at = Utc::now() - TimeDelta::days(days_ago);
    (0..n)
        .flat_map(|i| {
            let s = format!("{tag}-{i}");
            [
                event("session.start", at, json!({"session_id": s})),
                event(
                    "session.message",
                    at,
                    json!({"session_id": s, "response_time_ms": 500 + i * 10}),
                ),
            ]
        })
        .collect()
}

async fn sql(url: &str, statement: &str) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(statement).execute(&mut conn).await.unwrap();
}

/// Statistics and jobs on a primary with a streaming replica: once the replica has
/// replayed what the primary had when a question was asked, it answers; while its
/// replay is paused (a lagging replica), the primary answers. Either way every answer
/// equals the primary's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_answers_questions_exactly_and_only_once_it_has_caught_up() {
    let cluster = ReplicatedCluster::start();
    let calendar = Config::default().calendar();
    let primary = Arc::new(
        PgStore::connect(&cluster.primary_url(), calendar, PoolOptions::default())
            .await
            .unwrap(),
    );
    primary.migrate().await.unwrap();
    let replica = Arc::new(
        PgStore::connect(&cluster.replica_url(), calendar, PoolOptions::default())
            .await
            .unwrap(),
    );
    let reads = Arc::new(ReplicaReads::new(
        primary.clone(),
        replica,
        Duration::from_millis(500),
    ));
    let from_primary = stats_over(primary.clone(), primary.clone());
    let routed = stats_over(reads.clone(), reads.clone());
    let month = YearMonth::of(calendar.date(Utc::now() - TimeDelta::days(3)));
    let range = DateRange::new(
        calendar.date(Utc::now() - TimeDelta::days(4)),
        calendar.date(Utc::now() - TimeDelta::days(2)),
    )
    .unwrap();

    // Events on three past days, aggregated by the jobs over the routed stores
    // (writes to the primary, reads from the replica once caught up).
    for days_ago in 2..=4 {
        primary
            .insert(&sessions(30, days_ago, &format!("d{days_ago}")))
            .await
            .unwrap();
    }
    Jobs::new(routed.clone()).refresh().await.unwrap();
    assert!(primary.dirty_days().await.unwrap().is_empty());
    let (replica_before, _) = reads.reads();
    assert!(replica_before > 0, "the replica answered the job's reads");
    assert_eq!(
        routed.case_study(month).await.unwrap(),
        from_primary.case_study(month).await.unwrap()
    );
    assert_eq!(
        routed.range(range).await.unwrap(),
        from_primary.range(range).await.unwrap()
    );
    let (replica_caught_up, primary_caught_up) = reads.reads();
    assert!(
        replica_caught_up > replica_before,
        "a caught-up replica answers"
    );

    // The replica stops replaying: new events and a new aggregation on the primary
    // are not on it. Every answer still equals the primary's: the primary gives it.
    sql(&cluster.replica_url(), "SELECT pg_wal_replay_pause()").await;
    primary.insert(&sessions(20, 3, "late")).await.unwrap();
    Jobs::new(from_primary.clone()).refresh().await.unwrap();
    let study = from_primary.case_study(month).await.unwrap();
    assert_eq!(routed.case_study(month).await.unwrap(), study);
    assert_eq!(
        routed.range(range).await.unwrap(),
        from_primary.range(range).await.unwrap()
    );
    let (replica_paused, primary_paused) = reads.reads();
    assert_eq!(
        replica_paused, replica_caught_up,
        "a lagging replica answers nothing"
    );
    assert!(
        primary_paused > primary_caught_up,
        "the primary answers instead"
    );

    // Replay resumes: the replica answers again, the same.
    sql(&cluster.replica_url(), "SELECT pg_wal_replay_resume()").await;
    assert_eq!(routed.case_study(month).await.unwrap(), study);
    let (replica_resumed, primary_resumed) = reads.reads();
    assert!(
        replica_resumed > replica_paused,
        "the replica answers once caught up"
    );

    // The replica goes down: the primary answers, without waiting for it each time.
    cluster.stop_replica();
    let started = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(routed.case_study(month).await.unwrap(), study);
        assert_eq!(
            routed.range(range).await.unwrap(),
            from_primary.range(range).await.unwrap()
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a replica that is down costs little: {:?}",
        started.elapsed()
    );
    let (replica_down, primary_down) = reads.reads();
    assert_eq!(
        replica_down, replica_resumed,
        "a replica that is down answers nothing"
    );
    assert!(primary_down > primary_resumed);
}
