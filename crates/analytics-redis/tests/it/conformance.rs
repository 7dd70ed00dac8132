//! The storage conformance suite on Redis, a fresh key prefix for each part.

use analytics_core::conformance as suite;
use analytics_redis::testing::TestRedis;

#[tokio::test]
async fn the_redis_counters_conform() {
    suite::counter_store_conforms(async || TestRedis::new().await, TestRedis::store).await;
}

#[tokio::test]
async fn the_redis_spill_buffer_conforms() {
    suite::spill_buffer_round_trips(TestRedis::new().await.store()).await;
}
