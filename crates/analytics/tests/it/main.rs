//! End-to-end tests of the facade: the tracker on real PostgreSQL and Redis.

// Panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backends;
mod disk;
mod end_to_end;
mod replica;
mod torture;
