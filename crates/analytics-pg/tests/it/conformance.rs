//! The storage conformance suite on PostgreSQL, a fresh database for each part.

use analytics_core::conformance as suite;
use analytics_pg::testing::TestDatabase;

#[tokio::test]
async fn the_postgres_stores_conform() {
    suite::event_store_conforms(async || TestDatabase::new().await, TestDatabase::store).await;
    suite::stats_store_conforms(async || TestDatabase::new().await, TestDatabase::store).await;
}
