//! Tests of `analytics-pg` against the real PostgreSQL server, one fresh database per
//! test (`analytics_pg::testing::TestDatabase`).

// Panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod events;
mod schema;
mod stats;
