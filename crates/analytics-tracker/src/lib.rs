//! The tracker: `track()` validates an event and hands it to a bounded buffer without
//! waiting on I/O; one flusher writes batches to the event store, then the counters.
//!
//! Not implemented yet: this crate holds its place in the layering (it depends on
//! `analytics-core` only; stores come in as trait objects) until its issue lands.
#![deny(missing_docs)]
