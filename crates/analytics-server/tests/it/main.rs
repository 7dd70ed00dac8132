//! End-to-end tests of the service: the real app on port 0 with its own database and
//! Redis prefix, and the real binary for signals and commands.

// Panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod binary;
mod dashboard;
mod export;
mod http;
mod limits;
