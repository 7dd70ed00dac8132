//! Tests of `analytics-core`: one integration-test binary, one module per area.

// Panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod case_study;
mod catalog;
mod config;
mod conformance;
mod envelope;
mod metrics;
mod sketch;
mod stores;
mod support;
mod time;
