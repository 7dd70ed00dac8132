//! The embedded backend: the storage traits of `analytics-core` on SQLite (sqlx, with
//! SQLite bundled), so the service runs with no database server — the default when
//! `DATABASE_URL` is unset, the way Grafana or n8n start. [`EmbeddedStore`] is an
//! `EventStore` and a `StatsStore`; real-time counters come from
//! `analytics_core::memory::MemoryCounters` (no spill buffer is needed: the store is a
//! local file).
//!
//! The database runs in WAL mode, so the server's readers never wait for the flusher's
//! writes. One service process per database file: job locks are held in the process.
//! This crate depends on `analytics-core` and on `analytics-sql` (what it shares with
//! the PostgreSQL store), never on another adapter.
#![deny(missing_docs)]

mod checkpoint;
mod error;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod writer;

pub use error::{Error, Result, Sqlite};
pub use store::EmbeddedStore;

/// The schema migrations of the embedded store (`crates/analytics-embedded/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
