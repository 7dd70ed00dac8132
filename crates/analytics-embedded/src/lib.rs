//! The embedded backend: the storage traits of `analytics-core` on SQLite, so the
//! service runs with no database server. The default when `DATABASE_URL` is unset.
//!
//! Not implemented yet: this crate holds its place in the layering (it depends on
//! `analytics-core` only, never on another adapter) until its issue lands.
#![deny(missing_docs)]
