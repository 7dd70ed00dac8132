//! Tests of the embedded store: the conformance suite, and what a local file must do.

// Panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store;
