//! Tests of the statistics: a differential test against a plain computation on real
//! PostgreSQL and Redis and on the in-memory stores, and what a case study reads.

// Panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod differential;
mod interleavings;
mod plain;
mod reads;
mod stream;
