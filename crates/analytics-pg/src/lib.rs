//! PostgreSQL implementation of the storage traits of `analytics-core`: [`PgStore`] is
//! an `EventStore` (event detail, partitioned by business day, idempotent on
//! `event_id`) and a `StatsStore` (daily statistics, kept forever).
//!
//! The schema is in the workspace's `migrations/`, embedded here as [`MIGRATOR`]. This
//! crate depends on `analytics-core` and on `analytics-sql` (what it shares with the
//! embedded store), never on another adapter.
//!
//! ```no_run
//! # async fn run() -> Result<(), analytics_pg::Error> {
//! use analytics_core::time::Calendar;
//! use analytics_pg::{PgStore, PoolOptions};
//!
//! let store = PgStore::connect(
//!     "postgres://postgres@127.0.0.1/analytics",
//!     Calendar::default(),
//!     PoolOptions::default(),
//! )
//! .await?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

// Public to the test kit only (`testing::copy`, for the benchmarks' reference).
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
mod copy;
mod error;
mod replica;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Pg, Result};
pub use replica::{REPLICA_REST, REPLICA_WAIT, ReplicaReads};
pub use store::{PgStore, PoolOptions};

/// The schema migrations of `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
