//! Business statistics over the storage traits: metrics for days, ranges and months,
//! the case study, per-agent and ticket figures, and the scheduled aggregation and
//! retention jobs.
//!
//! Not implemented yet: this crate holds its place in the layering (it depends on
//! `analytics-core` only) until its issue lands.
#![deny(missing_docs)]
