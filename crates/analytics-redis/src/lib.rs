//! Redis implementation of the counter and spill-buffer traits of `analytics-core`
//! (`CounterStore`, `SpillBuffer`), with the key layout of SPEC §7.
//!
//! Not implemented yet: this crate holds its place in the layering (it depends on
//! `analytics-core` only, never on another adapter) until its issue lands.
#![deny(missing_docs)]
