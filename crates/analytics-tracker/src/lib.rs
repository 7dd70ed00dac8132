//! The tracker: products call [`Tracker::track`] on their hot path; it validates the
//! event, stamps it, and hands it to a bounded buffer without waiting on anything. A
//! flusher task cuts the buffer into batches (every `batch_size` events or every
//! `flush_interval`), and writer tasks store each batch in the event store, then apply
//! the counters of the events that were new (SPEC §8).
//!
//! When the event store fails, writers back off exponentially, with jitter, one pause
//! shared by all of them. With a spill buffer, a writer sends its batch there after two
//! failed attempts, and while the pause runs batches go there without trying the store
//! (so a durable acknowledgement answers once its events are spilled); without one, a
//! writer holds its batch and retries. Batches that find every writer busy while the
//! store fails go to the spill buffer too, and idle writers drain it back once the store answers again: from their start, and as
//! soon as a batch was stored while the buffer holds events, claim after claim (one
//! writer at a time), not one round per flush interval. When the spill buffer fails
//! too, the flusher stops taking events and `track()` reports a full buffer: memory
//! stays bounded by configuration. A write that lost a race with another writer (a
//! deadlock) is retried at once and is not a failure. Counter failures never hold up
//! storage, and nothing waits in memory for them: the event store keeps the write's
//! days marked uncounted, statistics read those days from detail, and the counter
//! repair recounts them.
//!
//! The stores come in as trait objects; this crate knows no backend.
#![deny(missing_docs)]

mod flusher;
mod telemetry;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use analytics_core::config::Config;
use analytics_core::error::ValidationError;
use analytics_core::event::{
    Clock, Event, RawEvent, SystemClock, TypedEvent, ValidationRules, Validator,
};
use analytics_core::store::{SpillBuffer, Stores};
use analytics_core::time::Calendar;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

pub use telemetry::Snapshot;

use crate::telemetry::{Telemetry, add};

/// How many waiting batches a writer stores together by default: batches wait only
/// while every writer is busy, and then one write of several batches costs the store
/// one transaction instead of several (the embedded store, with its one writer
/// connection, went from 236,000–261,000 to 269,000–318,000 events/s; BENCHMARKS.md).
pub const MERGE_BATCHES: usize = 4;

/// How the tracker batches, buffers and retries.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// A batch is written when it has this many events (`ANALYTICS_BATCH_SIZE`).
    pub batch_size: usize,
    /// A partial batch is written after this long (`ANALYTICS_FLUSH_INTERVAL_MS`).
    pub flush_interval: Duration,
    /// Events `track()` may buffer before it refuses more.
    pub queue_capacity: usize,
    /// Batches written at once.
    pub writers: usize,
    /// Batches that may wait for a writer; one more goes to the spill buffer.
    pub waiting_batches: usize,
    /// How many waiting batches a writer may store together, in one write (one
    /// transaction), when it finds them waiting; 1 stores each on its own.
    pub merge_batches: usize,
    /// The first pause before retrying a failed write; it doubles up to `retry_max`.
    pub retry_initial: Duration,
    /// The longest pause between retries.
    pub retry_max: Duration,
    /// A store call that takes longer than this counts as failed.
    pub store_timeout: Duration,
    /// How long [`Tracker::flush`] waits for every event to be in the event store.
    pub flush_deadline: Duration,
    /// The business calendar of the counters.
    pub calendar: Calendar,
    /// The envelope rules.
    pub rules: ValidationRules,
}

impl Default for TrackerConfig {
    fn default() -> TrackerConfig {
        TrackerConfig::from_config(&Config::default())
    }
}

impl TrackerConfig {
    /// The tracker's settings from the service configuration.
    pub fn from_config(config: &Config) -> TrackerConfig {
        TrackerConfig {
            batch_size: config.batch_size,
            flush_interval: config.flush_interval,
            queue_capacity: (config.batch_size * 100).max(10_000),
            writers: 4,
            waiting_batches: 4,
            merge_batches: MERGE_BATCHES,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            store_timeout: Duration::from_secs(30),
            flush_deadline: Duration::from_secs(30),
            calendar: config.calendar(),
            rules: config.validation_rules(),
        }
    }

    /// The most events the tracker holds in memory: the buffer, the batches waiting for
    /// a writer, the batches being written (each writer up to `merge_batches`, taken
    /// from the waiting ones, which the flusher then fills again), and the batch being
    /// filled.
    pub fn memory_bound(&self) -> usize {
        self.queue_capacity
            + (self.waiting_batches + self.writers * self.merge_batches.max(1) + 1)
                * self.batch_size
    }
}

/// Why `track()` did not take an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrackError {
    /// The event broke the catalog or the envelope.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The buffer is full: the stores are not keeping up. The event is counted as
    /// dropped; the caller may retry it later with the same id.
    #[error("the analytics buffer is full")]
    BufferFull,
    /// The tracker is stopping or stopped.
    #[error("the analytics tracker is stopped")]
    Stopped,
    /// A flush did not see every event in the event store before its deadline (the
    /// store is down or slow; the events are kept, in memory or in the spill buffer).
    #[error("the event store did not take every buffered event within {0:?}")]
    NotStoredInTime(Duration),
}

/// What [`Tracker::stop`] did with the events it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopReport {
    /// Whether everything accepted was stored or spilled before the deadline.
    pub clean: bool,
    /// Accepted events that could be neither stored nor spilled, in this tracker's life.
    pub lost: u64,
}

/// Messages to the flusher.
#[derive(Debug)]
enum Control {
    /// Write everything buffered now; answer when it is stored (or spilled).
    Flush(oneshot::Sender<()>),
    /// Stop: write everything, then end the writers; answer once they have ended (the
    /// report is read from the shared telemetry by `Tracker::stop`).
    Stop(oneshot::Sender<()>),
}

/// State shared by `track()`, the flusher and the writers.
struct Shared {
    telemetry: Telemetry,
    /// Wakes a writer to drain the spill buffer now (a `flush()` is waiting for it).
    drain_now: tokio::sync::Notify,
    /// Why the last attempt to store a batch failed, while it is the last attempt.
    store_error: Mutex<Option<String>>,
    accepting: AtomicBool,
    /// Set by `stop()`: writers stop retrying after it.
    deadline: Mutex<Option<Instant>>,
}

impl Shared {
    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The tracker: cheap to clone, shared by every part of a product.
#[derive(Clone)]
pub struct Tracker {
    validator: Validator,
    queue: mpsc::Sender<Event>,
    control: mpsc::UnboundedSender<Control>,
    shared: Arc<Shared>,
    queue_capacity: usize,
    flusher: Arc<Mutex<Option<JoinHandle<()>>>>,
    spill: Option<Arc<dyn SpillBuffer>>,
    flush_deadline: Duration,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("telemetry", &self.telemetry())
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// Starts a tracker (its flusher and writers) on the current Tokio runtime, with the
    /// system clock.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (tasks cannot be spawned there).
    pub fn start(config: TrackerConfig, stores: Stores) -> Tracker {
        Tracker::start_with_clock(config, stores, Arc::new(SystemClock))
    }

    /// Like [`Tracker::start`], with the clock validation reads "now" from.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start_with_clock(
        config: TrackerConfig,
        stores: Stores,
        clock: Arc<dyn Clock>,
    ) -> Tracker {
        let (queue, queue_rx) = mpsc::channel(config.queue_capacity.max(1));
        let (control, control_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            telemetry: Telemetry::default(),
            drain_now: tokio::sync::Notify::new(),
            store_error: Mutex::new(None),
            accepting: AtomicBool::new(true),
            deadline: Mutex::new(None),
        });
        let validator = Validator::new(config.rules, clock);
        let queue_capacity = config.queue_capacity.max(1);
        let spill = stores.spill.clone();
        let flush_deadline = config.flush_deadline;
        let handle = flusher::spawn(config, stores, shared.clone(), queue_rx, control_rx);
        Tracker {
            validator,
            queue,
            control,
            shared,
            queue_capacity,
            flusher: Arc::new(Mutex::new(Some(handle))),
            spill,
            flush_deadline,
        }
    }

    /// Records a typed event. Never waits and never panics.
    ///
    /// # Errors
    ///
    /// [`TrackError::Invalid`] for an event that breaks the catalog,
    /// [`TrackError::BufferFull`] when the buffer is full, [`TrackError::Stopped`] after
    /// [`Tracker::stop`]. Each is counted.
    pub fn track(&self, event: impl Into<TypedEvent>) -> Result<Uuid, TrackError> {
        let event = self
            .validator
            .typed(event)
            .map_err(|error| self.invalid(error))?;
        self.enqueue(event)
    }

    /// Records an event given by name and JSON properties (the legacy alias and
    /// `custom.` names included). Never waits and never panics.
    ///
    /// # Errors
    ///
    /// As [`Tracker::track`].
    pub fn track_raw(&self, event: RawEvent) -> Result<Uuid, TrackError> {
        let event = self
            .validator
            .raw(event)
            .map_err(|error| self.invalid(error))?;
        self.enqueue(event)
    }

    /// Records an event validated elsewhere (for example by HTTP ingest, which reports
    /// validation errors per event).
    ///
    /// # Errors
    ///
    /// [`TrackError::BufferFull`] or [`TrackError::Stopped`].
    pub fn track_event(&self, event: Event) -> Result<Uuid, TrackError> {
        self.enqueue(event)
    }

    /// Records a batch of events validated elsewhere, all or none: either every event
    /// is buffered, or none is (the buffer had no room for all of them, or the tracker
    /// is stopped) and the caller may send the batch again.
    ///
    /// # Errors
    ///
    /// [`TrackError::BufferFull`] or [`TrackError::Stopped`]; every event of the batch
    /// is counted as dropped.
    pub fn track_events(&self, events: Vec<Event>) -> Result<(), TrackError> {
        let telemetry = &self.shared.telemetry;
        let n = events.len() as u64;
        if events.is_empty() {
            return Ok(());
        }
        if !self.shared.accepting.load(Ordering::Acquire) {
            add(&telemetry.dropped_stopped, n);
            return Err(TrackError::Stopped);
        }
        match self.queue.try_reserve_many(events.len()) {
            Ok(permits) => {
                for (permit, event) in permits.zip(events) {
                    permit.send(event);
                }
                add(&telemetry.tracked, n);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(())) => {
                add(&telemetry.dropped_buffer_full, n);
                Err(TrackError::BufferFull)
            }
            Err(mpsc::error::TrySendError::Closed(())) => {
                add(&telemetry.dropped_stopped, n);
                Err(TrackError::Stopped)
            }
        }
    }

    /// The validator `track()` uses, for callers that validate first.
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    fn invalid(&self, error: ValidationError) -> TrackError {
        add(&self.shared.telemetry.invalid, 1);
        TrackError::Invalid(error)
    }

    fn enqueue(&self, event: Event) -> Result<Uuid, TrackError> {
        let telemetry = &self.shared.telemetry;
        if !self.shared.accepting.load(Ordering::Acquire) {
            add(&telemetry.dropped_stopped, 1);
            return Err(TrackError::Stopped);
        }
        let id = event.id();
        match self.queue.try_send(event) {
            Ok(()) => {
                add(&telemetry.tracked, 1);
                Ok(id)
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                add(&telemetry.dropped_buffer_full, 1);
                Err(TrackError::BufferFull)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                add(&telemetry.dropped_stopped, 1);
                Err(TrackError::Stopped)
            }
        }
    }

    /// Writes everything buffered now, and answers once every event tracked before
    /// the call is in the event store, with its counters settled: batches stored, and
    /// the spill buffer drained (spilled events count only once drained; with a
    /// shared spill buffer that includes other processes' events).
    ///
    /// # Errors
    ///
    /// [`TrackError::NotStoredInTime`] when that has not happened within `deadline`
    /// (nothing is lost: the events stay buffered or spilled and keep being written),
    /// [`TrackError::Stopped`] after [`Tracker::stop`].
    pub async fn flush_within(&self, deadline: Duration) -> Result<(), TrackError> {
        let until = Instant::now() + deadline;
        self.cut_and_wait(until, deadline, self.lost()).await?;
        let Some(spill) = &self.spill else {
            return Ok(());
        };
        loop {
            match tokio::time::timeout_at(until, spill.len()).await {
                Err(_) => return Err(TrackError::NotStoredInTime(deadline)),
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(_)) | Ok(Err(_)) => {}
            }
            // Wake a writer to drain now rather than at its next idle moment.
            self.shared.drain_now.notify_one();
            if Instant::now() >= until {
                return Err(TrackError::NotStoredInTime(deadline));
            }
            tokio::time::sleep_until(until.min(Instant::now() + Duration::from_millis(20))).await;
        }
    }

    /// Buffers a batch whole (as [`Tracker::track_events`]) and answers once it is
    /// committed to the event store, or, while the store is down, written to the spill
    /// buffer: the durable acknowledgement of `POST /events`. The batch is cut at once
    /// together with whatever else is buffered, so concurrent callers share a write
    /// (group commit) and nobody waits for the flush interval.
    ///
    /// # Errors
    ///
    /// Those of [`Tracker::track_events`] (nothing was taken then), or
    /// [`TrackError::NotStoredInTime`] when the write did not complete within
    /// `deadline` (the events stay buffered and are written later; sending them again
    /// with the same ids counts nothing twice).
    pub async fn track_events_stored(
        &self,
        events: Vec<Event>,
        deadline: Duration,
    ) -> Result<(), TrackError> {
        if events.is_empty() {
            return Ok(());
        }
        let lost_before = self.lost();
        self.track_events(events)?;
        self.cut_and_wait(Instant::now() + deadline, deadline, lost_before)
            .await
    }

    /// Has the flusher cut what is buffered, and waits (until `until`) for every batch
    /// cut so far to be stored or spilled. Events are lost only at a stop past its
    /// deadline; if any were lost since `lost_before`, nothing in flight is reported
    /// stored (the caller sends again; nothing counts twice).
    async fn cut_and_wait(
        &self,
        until: Instant,
        deadline: Duration,
        lost_before: u64,
    ) -> Result<(), TrackError> {
        let (ack, done) = oneshot::channel();
        self.control
            .send(Control::Flush(ack))
            .map_err(|_| TrackError::Stopped)?;
        match tokio::time::timeout_at(until, done).await {
            Err(_) => Err(TrackError::NotStoredInTime(deadline)),
            Ok(Err(_)) => Err(TrackError::Stopped),
            Ok(Ok(())) if self.lost() > lost_before => Err(TrackError::Stopped),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Why the event store refuses writes, while the last attempt to store a batch
    /// failed (a full disk, an outage); `None` once a batch is stored again.
    pub fn store_error(&self) -> Option<String> {
        self.shared
            .store_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Events lost so far (at a stop past its deadline).
    fn lost(&self) -> u64 {
        self.shared
            .telemetry
            .dropped_shutdown
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// How long [`Tracker::flush`] waits (`TrackerConfig::flush_deadline`); `POST
    /// /events` waits as long for its durable acknowledgement.
    pub fn flush_deadline(&self) -> Duration {
        self.flush_deadline
    }

    /// [`Tracker::flush_within`] the configured `flush_deadline`.
    ///
    /// # Errors
    ///
    /// As [`Tracker::flush_within`].
    pub async fn flush(&self) -> Result<(), TrackError> {
        self.flush_within(self.flush_deadline).await
    }

    /// Stops taking events, writes everything held, and ends the flusher and writers.
    /// Writers stop retrying at `deadline` from now; what they hold then goes to the
    /// spill buffer, or is counted as lost.
    pub async fn stop(&self, deadline: Duration) -> StopReport {
        self.shared.accepting.store(false, Ordering::Release);
        *self
            .shared
            .deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + deadline);
        let (ack, done) = oneshot::channel();
        if self.control.send(Control::Stop(ack)).is_ok() {
            let _ = done.await;
        }
        let handle = self
            .flusher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
        let lost = self.telemetry().dropped_shutdown;
        StopReport {
            clean: lost == 0,
            lost,
        }
    }

    /// The tracker's counters now.
    pub fn telemetry(&self) -> Snapshot {
        let depth = self.queue_capacity.saturating_sub(self.queue.capacity());
        self.shared.telemetry.snapshot(depth as u64)
    }
}
