//! PostgreSQL implementation of the storage traits of `analytics-core`
//! (`EventStore`, `StatsStore`), with the schema in `migrations/`.
//!
//! Not implemented yet: this crate holds its place in the layering (it depends on
//! `analytics-core` only, never on another adapter) until its issue lands.
#![deny(missing_docs)]
