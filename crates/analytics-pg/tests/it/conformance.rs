//! The storage conformance suite on PostgreSQL, a fresh database for each part.

use analytics_core::conformance as suite;
use analytics_pg::testing::TestDatabase;

#[tokio::test]
async fn the_postgres_event_store_conforms() {
    suite::event_store_keeps_each_id_once(TestDatabase::new().await.store()).await;
    suite::event_store_summarizes_business_days(TestDatabase::new().await.store()).await;
    suite::event_store_marks_dirty_days(TestDatabase::new().await.store()).await;
    suite::event_store_tracks_uncounted_writes(TestDatabase::new().await.store()).await;
    suite::event_store_keeps_dead_letters(TestDatabase::new().await.store()).await;
    suite::event_store_answers_sessions(TestDatabase::new().await.store()).await;
    suite::event_store_purges_before(TestDatabase::new().await.store()).await;
}

#[tokio::test]
async fn the_postgres_stats_store_conforms() {
    suite::stats_store_replaces_and_reads_days(TestDatabase::new().await.store()).await;
    suite::stats_store_locks_jobs(TestDatabase::new().await.store()).await;
}
