//! The tracker's own counters: what it accepted, stored, spilled, dropped and retried.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters updated by the tracker as it works; read with [`Telemetry::snapshot`].
#[derive(Debug, Default)]
pub(crate) struct Telemetry {
    pub(crate) tracked: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) dropped_buffer_full: AtomicU64,
    pub(crate) dropped_stopped: AtomicU64,
    pub(crate) dropped_shutdown: AtomicU64,
    pub(crate) stored: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) spilled: AtomicU64,
    pub(crate) drained: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) contention_retries: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) counter_failures: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) flush_nanos: AtomicU64,
    pub(crate) flush_nanos_max: AtomicU64,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Telemetry {
    pub(crate) fn record_flush(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        add(&self.flushes, 1);
        add(&self.flush_nanos, nanos);
        self.flush_nanos_max.fetch_max(nanos, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, queue_depth: u64) -> Snapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Snapshot {
            tracked: get(&self.tracked),
            invalid: get(&self.invalid),
            dropped_buffer_full: get(&self.dropped_buffer_full),
            dropped_stopped: get(&self.dropped_stopped),
            dropped_shutdown: get(&self.dropped_shutdown),
            stored: get(&self.stored),
            duplicates: get(&self.duplicates),
            spilled: get(&self.spilled),
            drained: get(&self.drained),
            retries: get(&self.retries),
            contention_retries: get(&self.contention_retries),
            dead_lettered: get(&self.dead_lettered),
            counter_failures: get(&self.counter_failures),
            queue_depth,
            flushes: get(&self.flushes),
            flush_seconds_total: Duration::from_nanos(get(&self.flush_nanos)).as_secs_f64(),
            flush_seconds_max: Duration::from_nanos(get(&self.flush_nanos_max)).as_secs_f64(),
        }
    }
}

/// The tracker's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Snapshot {
    /// Events accepted by `track()`.
    pub tracked: u64,
    /// Events rejected by validation.
    pub invalid: u64,
    /// Events refused because the buffer was full.
    pub dropped_buffer_full: u64,
    /// Events refused because the tracker was stopping or stopped.
    pub dropped_stopped: u64,
    /// Accepted events that could be neither stored nor spilled before the stop
    /// deadline, and were lost.
    pub dropped_shutdown: u64,
    /// Events stored for the first time (live and drained from the spill buffer).
    pub stored: u64,
    /// Events whose id was already stored.
    pub duplicates: u64,
    /// Events written to the spill buffer.
    pub spilled: u64,
    /// Events taken back from the spill buffer and stored (or found already stored).
    pub drained: u64,
    /// Failed attempts to store a batch that were retried (the store was unavailable
    /// or failed).
    pub retries: u64,
    /// Writes that lost a race with another writer (a deadlock or serialization
    /// failure) and were retried at once: not an outage.
    pub contention_retries: u64,
    /// Events the store refused for good (their data), kept in the dead letters.
    pub dead_lettered: u64,
    /// Failed attempts to apply counters (the write's days stay uncounted until the
    /// counter repair recounts them).
    pub counter_failures: u64,
    /// Events waiting in the buffer.
    pub queue_depth: u64,
    /// Batches stored.
    pub flushes: u64,
    /// Time spent storing batches, from the first attempt to success, in seconds.
    pub flush_seconds_total: f64,
    /// The longest such time, in seconds.
    pub flush_seconds_max: f64,
}
