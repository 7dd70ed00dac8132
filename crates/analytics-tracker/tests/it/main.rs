//! Tests of the tracker with in-memory stores that fail on command.

// Panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod faults;
mod tracker;
