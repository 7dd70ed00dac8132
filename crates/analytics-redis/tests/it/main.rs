//! Tests of `analytics-redis` against the real Redis server, each under its own key
//! prefix (`analytics_redis::testing::TestRedis`).

// Panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod conformance;
mod counters;
mod spill;
