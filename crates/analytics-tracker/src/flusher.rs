//! The flusher task and its writers.
//!
//! The flusher owns the buffer's receiving end. It cuts batches (full, or at each
//! interval) and hands them to `writers` writer tasks through a queue of
//! `waiting_batches`; when that queue is full it spills the batch, and when spilling
//! fails it waits for a writer (and stops reading the buffer, so `track()` reports it
//! full). Batches carry increasing ids; the flusher answers a `flush()` once every
//! batch up to the last one it cut is stored or spilled, and `Tracker::flush` then waits
//! for the spill buffer to be drained too.
//!
//! A flush waiting while every writer is busy cuts when one is free (or after
//! `GROUP_WAIT`), so concurrent durable acknowledgements share a write.
//!
//! A writer stores its batch, retrying with backoff and jitter until it succeeds, the
//! stop deadline passes, or — the store failing twice in a row — the batch goes to the
//! spill buffer (a lost race is retried at once; data the store refuses is isolated and
//! dead-lettered), and hands the counters of the new events to the counter
//! task, which applies them in groups and settles each write's pending counters with
//! the event store. An idle writer, or one woken by a waiting `flush()`, drains the
//! spill buffer, claim after claim.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use analytics_core::counters::CounterBatch;
use analytics_core::error::{Error, StoreErrorKind};
use analytics_core::event::Event;
use analytics_core::store::{CounterStore, PendingCounters, SpillBuffer, Stores, Written};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, timeout};

use crate::telemetry::add;
use crate::{Control, Shared, TrackerConfig};

/// How long counters may take before the increments are kept for the next flush.
const COUNTER_TIMEOUT: Duration = Duration::from_secs(2);

/// How often an idle writer looks at the spill buffer even when this process spilled
/// nothing: another process may have spilled and died.
const SPILL_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// The longest an idle writer waits for a batch before it looks at the spill buffer
/// (and, after a failed read of it, leaves the buffer alone): the flush interval, up to
/// this (the interval may be an hour).
const IDLE_TICK: Duration = Duration::from_secs(1);

/// The longest a flush waits for a free writer before it cuts anyway: long enough for
/// concurrent requests to share a write, short enough not to be felt.
const GROUP_WAIT: Duration = Duration::from_millis(5);

/// How many claims a writer drains in a row before it looks at its queue again.
const DRAIN_CLAIMS: usize = 64;

/// How many times in a row a write that lost a race (a deadlock) is retried at once
/// before it counts as a failure.
const MAX_CONTENTION: u32 = 10;

/// How many failed attempts a writer makes at a batch (the first, and a retry after
/// the writers' pause) before it sends the batch to the spill buffer, if there is one,
/// instead of holding it: while the event store is down, a durable acknowledgement
/// answers once its events are spilled (SPEC §9), and the writer is free for the next.
const SPILL_AFTER_FAILURES: u32 = 2;

/// What became of the batch a writer took.
enum Done {
    /// Committed; what is left is its counters.
    Stored(Settle),
    /// The event store is failing: the batch is in the spill buffer.
    Spilled,
    /// Not stored before the stop deadline (or, draining, not stored at the one try).
    NotStored,
}

/// A batch on its way to a writer.
#[derive(Debug)]
struct Job {
    id: u64,
    events: Vec<Event>,
}

/// Batches a writer stores together: their ids and their events, in order.
#[derive(Debug)]
struct Merged {
    ids: Vec<u64>,
    events: Vec<Event>,
}

/// What is left of a stored batch: applying the counters of its new events, then
/// settling its pending counters (as applied or not) with the event store.
struct Settle(Vec<(Box<dyn PendingCounters>, CounterBatch)>);

impl Settle {
    /// Hands the counters to the counter task, off the writer's path: the batch is
    /// stored (and answered) already; until its counters are settled its days read from
    /// detail, which is exact too. The stop waits for them.
    fn send(self, writers: &Writers) {
        for work in self.0 {
            writers.counting.begin();
            if let Err(mpsc::error::SendError((pending, _))) = writers.counter_work.send(work) {
                // The counter task is gone (the runtime is ending): the marks stay.
                writers.counting.end(1);
                drop(pending);
            }
        }
    }
}

/// How many stored batches' counters are being applied and settled, and a signal when
/// none is.
#[derive(Default)]
struct Counting {
    n: std::sync::atomic::AtomicUsize,
    zero: tokio::sync::Notify,
}

impl Counting {
    fn begin(&self) {
        self.n.fetch_add(1, Ordering::AcqRel);
    }

    fn end(&self, k: usize) {
        if self.n.fetch_sub(k, Ordering::AcqRel) == k {
            self.zero.notify_waiters();
        }
    }
}

/// The most stored batches whose counters are applied together.
const COUNTER_GROUP: usize = 64;

/// The counter task: applies the counters of stored batches, several at once when they
/// queue up (one `MULTI` for all: fewer commands than one per batch), then settles each
/// batch's pending counters. Ends when the writers are gone.
async fn apply_counters_in_groups(
    counters: Arc<dyn CounterStore>,
    shared: Arc<Shared>,
    counting: Arc<Counting>,
    mut work: mpsc::UnboundedReceiver<(Box<dyn PendingCounters>, CounterBatch)>,
) {
    // After a failure the counters are not tried for a while (doubling up to 5 s): the
    // writes settle as uncounted at once instead of each holding its connection for the
    // counter timeout while Redis does not answer.
    let mut resting_until: Option<Instant> = None;
    let mut rest = Duration::from_millis(100);
    while let Some(first) = work.recv().await {
        let mut group = vec![first];
        while group.len() < COUNTER_GROUP {
            match work.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let mut batch = CounterBatch::default();
        let mut pending = Vec::with_capacity(group.len());
        for (write, counters) in group {
            batch.merge(counters);
            pending.push(write);
        }
        let applied = if resting_until.is_some_and(|until| Instant::now() < until) {
            add(&shared.telemetry.counter_failures, 1);
            false
        } else if apply_counters(counters.as_ref(), &shared, &batch).await {
            resting_until = None;
            rest = Duration::from_millis(100);
            true
        } else {
            resting_until = Some(Instant::now() + rest);
            rest = (rest * 2).min(Duration::from_secs(5));
            false
        };
        for write in pending {
            let counting = counting.clone();
            tokio::spawn(async move {
                write.settle(applied).await;
                counting.end(1);
            });
        }
    }
}

/// Applies counters. Returns whether they were applied; when not, the writes stay
/// uncounted in the event store (statistics read their days from detail) until the
/// counter repair recounts them. Nothing waits in memory, so nothing is lost at a stop
/// or a crash.
async fn apply_counters(
    counters: &dyn CounterStore,
    shared: &Shared,
    batch: &CounterBatch,
) -> bool {
    if batch.is_empty() {
        return true;
    }
    let failed = match timeout(COUNTER_TIMEOUT, counters.apply(batch)).await {
        Ok(Ok(())) => return true,
        Ok(Err(error)) => error.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    add(&shared.telemetry.counter_failures, 1);
    tracing::warn!(error = %failed, "applying counters failed; the days are recounted from stored events");
    false
}

/// What the writers share.
struct Writers {
    config: TrackerConfig,
    stores: Stores,
    shared: Arc<Shared>,
    jobs: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    done: mpsc::UnboundedSender<u64>,
    /// Whether the spill buffer may hold events (set at start, when spilling, and every
    /// `SPILL_CHECK_INTERVAL`).
    spill_pending: AtomicBool,
    /// When the spill buffer was last found empty.
    spill_checked: Mutex<Instant>,
    /// When reading the spill buffer last failed (cleared by a read that works): the
    /// drain after a stored batch waits an idle tick after a failure, so that a
    /// spill buffer that is down is not tried after every batch.
    spill_failed: Mutex<Option<Instant>>,
    /// Writers storing a batch now.
    busy: std::sync::atomic::AtomicUsize,
    /// Signalled when a writer is done with a batch: a flush waiting for a free writer
    /// cuts.
    freed: tokio::sync::Notify,
    /// Whether a writer of this process is draining the spill buffer (one at a time:
    /// claim after claim at full speed is enough, and two would only race for claims).
    draining: AtomicBool,
    /// Stored batches whose counters are being applied and settled.
    counting: Arc<Counting>,
    /// To the counter task.
    counter_work: mpsc::UnboundedSender<(Box<dyn PendingCounters>, CounterBatch)>,
    /// Whether the last attempt to store a batch failed: only then do batches that
    /// find every writer busy go to the spill buffer (busy writers alone are a burst,
    /// which the buffer absorbs).
    store_failing: AtomicBool,
    /// While the event store is failing: when it last failed and the pause before it is
    /// tried again (doubling from `retry_initial` to `retry_max`, shared by the writers,
    /// so that an outage sees a probe per pause, not two attempts per batch).
    backoff: Mutex<Backoff>,
}

/// See [`Writers::backoff`].
#[derive(Debug)]
struct Backoff {
    failed_at: Option<Instant>,
    pause: Duration,
}

pub(crate) fn spawn(
    config: TrackerConfig,
    stores: Stores,
    shared: Arc<Shared>,
    queue: mpsc::Receiver<Event>,
    control: mpsc::UnboundedReceiver<Control>,
) -> JoinHandle<()> {
    let (jobs_tx, jobs_rx) = mpsc::channel(config.waiting_batches.max(1));
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let (counter_work, counter_rx) = mpsc::unbounded_channel();
    let counting = Arc::new(Counting::default());
    let writers = Arc::new(Writers {
        config: config.clone(),
        stores: stores.clone(),
        shared: shared.clone(),
        jobs: tokio::sync::Mutex::new(jobs_rx),
        done: done_tx,
        spill_pending: AtomicBool::new(stores.spill.is_some()),
        spill_checked: Mutex::new(Instant::now()),
        spill_failed: Mutex::new(None),
        store_failing: AtomicBool::new(false),
        backoff: Mutex::new(Backoff {
            failed_at: None,
            pause: config.retry_initial,
        }),
        busy: std::sync::atomic::AtomicUsize::new(0),
        freed: tokio::sync::Notify::new(),
        draining: AtomicBool::new(false),
        counting: counting.clone(),
        counter_work,
    });
    tokio::spawn(apply_counters_in_groups(
        stores.counters.clone(),
        shared.clone(),
        counting,
        counter_rx,
    ));
    let handles = (0..config.writers.max(1))
        .map(|_| tokio::spawn(writers.clone().run()))
        .collect();
    let flusher = Flusher {
        batch: Vec::with_capacity(config.batch_size),
        config,
        queue,
        control,
        jobs: Some(jobs_tx),
        done: done_rx,
        writers_state: writers,
        writers: handles,
        outstanding: BTreeSet::new(),
        next_id: 0,
        waiters: Vec::new(),
        cut_waiters: Vec::new(),
        cut_deadline: None,
    };
    tokio::spawn(flusher.run())
}

struct Flusher {
    config: TrackerConfig,
    queue: mpsc::Receiver<Event>,
    control: mpsc::UnboundedReceiver<Control>,
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::UnboundedReceiver<u64>,
    writers_state: Arc<Writers>,
    writers: Vec<JoinHandle<()>>,
    batch: Vec<Event>,
    /// Ids of batches cut and not yet stored or spilled.
    outstanding: BTreeSet<u64>,
    next_id: u64,
    /// `flush()` calls waiting for every batch up to an id.
    waiters: Vec<(u64, oneshot::Sender<()>)>,
    /// Flushes (durable acknowledgements, mostly) waiting for the next cut: while every
    /// writer is busy, the buffer keeps filling, and the next batch is cut when a writer
    /// is free — so concurrent requests share a write (group commit) instead of each
    /// cutting a small batch of its own.
    cut_waiters: Vec<oneshot::Sender<()>>,
    /// When the flushes waiting for a cut get one whether a writer is free or not (so
    /// that they always make progress, however busy the writers and the buffer are).
    cut_deadline: Option<Instant>,
}

impl Flusher {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.config.flush_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                biased;
                Some(control) = self.control.recv() => match control {
                    Control::Flush(ack) => {
                        self.cut_waiters.push(ack);
                        if self.writer_free() {
                            self.cut_for_waiters().await;
                        } else if self.cut_deadline.is_none() {
                            self.cut_deadline = Some(Instant::now() + GROUP_WAIT);
                        }
                    }
                    Control::Stop(ack) => {
                        self.shutdown().await;
                        let _ = ack.send(());
                        return;
                    }
                },
                Some(id) = self.done.recv() => self.complete(id),
                () = self.writers_state.freed.notified(), if !self.cut_waiters.is_empty() => {
                    if self.writer_free() {
                        self.cut_for_waiters().await;
                    }
                }
                () = tokio::time::sleep_until(self.cut_deadline.unwrap_or_else(Instant::now)),
                    if self.cut_deadline.is_some() => {
                    self.cut_for_waiters().await;
                }
                event = self.queue.recv() => match event {
                    Some(event) => {
                        self.batch.push(event);
                        if self.batch.len() >= self.config.batch_size {
                            self.dispatch().await;
                        }
                    }
                    // Every handle of the tracker is gone: write what is left and end.
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                _ = ticker.tick() => {
                    if !self.cut_waiters.is_empty() {
                        self.cut_for_waiters().await;
                    } else if !self.batch.is_empty() {
                        self.dispatch().await;
                    }
                }
            }
        }
    }

    /// Whether a batch cut now would go to an idle writer at once (no batch waits for
    /// one and some writer is not storing), or to the spill buffer (the event store is
    /// failing).
    fn writer_free(&self) -> bool {
        let writers = &self.writers_state;
        writers.store_failing.load(Ordering::Acquire)
            || (writers.busy.load(Ordering::Acquire) < self.config.writers.max(1)
                && self
                    .jobs
                    .as_ref()
                    .is_none_or(|jobs| jobs.capacity() == jobs.max_capacity()))
    }

    /// Cuts what is buffered for the flushes waiting for a cut.
    async fn cut_for_waiters(&mut self) {
        self.cut_deadline = None;
        self.cut().await;
        for ack in std::mem::take(&mut self.cut_waiters) {
            self.wait_for_cut(ack);
        }
    }

    /// Takes everything buffered now and dispatches it.
    async fn cut(&mut self) {
        while let Ok(event) = self.queue.try_recv() {
            self.batch.push(event);
            if self.batch.len() >= self.config.batch_size {
                self.dispatch().await;
            }
        }
        if !self.batch.is_empty() {
            self.dispatch().await;
        }
    }

    /// Hands the current batch to a writer. When every writer is busy it waits for one,
    /// unless the event store is failing: then the batch goes to the spill buffer (and
    /// when spilling fails too, it waits).
    async fn dispatch(&mut self) {
        let events = std::mem::replace(&mut self.batch, Vec::with_capacity(self.config.batch_size));
        let id = self.next_id;
        self.next_id += 1;
        self.outstanding.insert(id);
        let Some(jobs) = self.jobs.clone() else {
            self.writers_state.lost(&events, "the tracker has stopped");
            self.complete(id);
            return;
        };
        let job = match jobs.try_send(Job { id, events }) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                job
            }
        };
        let mut pause = self.config.retry_initial;
        loop {
            if self.writers_state.store_failing.load(Ordering::Acquire)
                && self.writers_state.try_spill(&job.events).await
            {
                self.complete(job.id);
                return;
            }
            tokio::select! {
                permit = jobs.reserve() => {
                    match permit {
                        Ok(permit) => permit.send(job),
                        Err(_) => self.writers_state.lost(&job.events, "the writers are gone"),
                    }
                    return;
                }
                Some(done) = self.done.recv() => self.complete(done),
                () = tokio::time::sleep(pause) => pause = (pause * 2).min(self.config.retry_max),
            }
        }
    }

    /// Marks a batch stored or spilled, and answers the `flush()` calls it completes.
    fn complete(&mut self, id: u64) {
        self.outstanding.remove(&id);
        let oldest = self.outstanding.first().copied();
        let (ready, waiting) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition::<Vec<_>, _>(|(upto, _)| oldest.is_none_or(|oldest| oldest > *upto));
        self.waiters = waiting;
        for (_, ack) in ready {
            let _ = ack.send(());
        }
    }

    /// Answers `ack` once every batch cut so far is done.
    fn wait_for_cut(&mut self, ack: oneshot::Sender<()>) {
        let upto = self.next_id.checked_sub(1);
        match (upto, self.outstanding.first()) {
            (Some(upto), Some(oldest)) if *oldest <= upto => self.waiters.push((upto, ack)),
            _ => {
                let _ = ack.send(());
            }
        }
    }

    async fn shutdown(&mut self) {
        self.cut_for_waiters().await;
        while !self.outstanding.is_empty() {
            match self.done.recv().await {
                Some(id) => self.complete(id),
                None => break,
            }
        }
        // No more jobs: writers end once the queue is empty.
        self.jobs = None;
        for handle in self.writers.drain(..) {
            let _ = handle.await;
        }
        // The counters of the last batches (bounded: each takes at most the counter
        // timeout and one statement).
        let counting = &self.writers_state.counting;
        let counted = counting.zero.notified();
        tokio::pin!(counted);
        counted.as_mut().enable();
        if counting.n.load(Ordering::Acquire) > 0 {
            let _ = timeout(COUNTER_TIMEOUT + self.config.store_timeout, counted).await;
        }
        for (_, ack) in self.waiters.drain(..) {
            let _ = ack.send(());
        }
    }
}

/// A factor in [0.5, 1.5) to spread retries of several processes apart.
fn jitter(pause: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    pause.mul_f64(0.5 + (random % 1000) as f64 / 1000.0)
}

impl Writers {
    async fn run(self: Arc<Self>) {
        // Whether there is more to drain now (at start, when the last drain stopped at its
        // claim limit, or when a batch was just stored while events wait in the spill
        // buffer): then the writer drains as soon as its queue is empty, not an interval
        // later.
        let mut more = self.spill_pending.load(Ordering::Acquire);
        loop {
            let next = if more {
                // A batch waiting goes first. If another writer holds the queue it is
                // waiting for batches itself (and would hold it for up to an interval):
                // drain.
                match self.jobs.try_lock() {
                    Ok(mut jobs) => match jobs.try_recv() {
                        Ok(job) => Some(Some(self.gather(job, &mut jobs))),
                        Err(mpsc::error::TryRecvError::Empty) => None,
                        Err(mpsc::error::TryRecvError::Disconnected) => Some(None),
                    },
                    Err(_) => None,
                }
            } else {
                let mut jobs = self.jobs.lock().await;
                tokio::select! {
                    job = jobs.recv() => Some(job.map(|job| self.gather(job, &mut jobs))),
                    () = tokio::time::sleep(self.idle_tick()) => None,
                    () = self.shared.drain_now.notified() => {
                        self.spill_pending.store(true, Ordering::Release);
                        None
                    }
                }
            };
            if matches!(next, Some(Some(_))) {
                self.busy.fetch_add(1, Ordering::AcqRel);
            }
            match next {
                Some(Some(job)) => {
                    let done = self.store(&job.events, true).await;
                    let stored = matches!(done, Done::Stored(_));
                    match done {
                        // Committed: the batches are done for `flush()` and the durable
                        // acknowledgement; their counters follow off the writer's path.
                        Done::Stored(settle) => settle.send(&self),
                        // Spilled: done for the durable acknowledgement; `flush()`
                        // waits for the drain.
                        Done::Spilled => {}
                        Done::NotStored => self.give_up(&job.events).await,
                    }
                    for id in &job.ids {
                        let _ = self.done.send(*id);
                    }
                    self.busy.fetch_sub(1, Ordering::AcqRel);
                    self.freed.notify_one();
                    // A batch stored while the spill buffer holds events (storage is
                    // back after an outage): drain it as soon as the queue is empty.
                    more = stored
                        && self.spill_pending.load(Ordering::Acquire)
                        && !self.spill_failed_recently();
                }
                Some(None) => return,
                None => more = self.drain_spill().await,
            }
        }
    }

    /// The batch `first` and, up to `merge_batches` in all, the batches waiting behind
    /// it: stored together, in one write.
    fn gather(&self, first: Job, jobs: &mut mpsc::Receiver<Job>) -> Merged {
        let mut merged = Merged {
            ids: vec![first.id],
            events: first.events,
        };
        while merged.ids.len() < self.config.merge_batches {
            let Ok(job) = jobs.try_recv() else { break };
            merged.ids.push(job.id);
            merged.events.extend(job.events);
        }
        merged
    }

    /// Stores a batch. With `persist`, retries (after the writers' shared pause) until it
    /// succeeds or the stop deadline passes; with a spill buffer that takes it, the batch
    /// goes there instead after [`SPILL_AFTER_FAILURES`] failed attempts in a row, or at
    /// once while the store is failing and its pause is not over. Without `persist`,
    /// tries once (contention aside) and never spills.
    /// Returns, when the batch is stored, what is left to do: apply its counters and
    /// settle the write's pending counters with the event store.
    ///
    /// A race lost to another writer (a deadlock) is retried at once: the store is
    /// healthy, so it neither counts as a failure nor sends batches to the spill
    /// buffer.
    async fn store(&self, events: &[Event], persist: bool) -> Done {
        let started = Instant::now();
        let mut contention = 0;
        let mut failures = 0;
        loop {
            // While the store is failing and its pause is not over, the batch goes to
            // the spill buffer without trying the store.
            if persist
                && self.stores.spill.is_some()
                && self.in_backoff()
                && self.try_spill(events).await
            {
                return Done::Spilled;
            }
            match timeout(self.config.store_timeout, self.stores.events.write(events)).await {
                Ok(Ok(written)) => {
                    self.recovered();
                    self.set_store_error(None);
                    self.shared.telemetry.record_flush(started.elapsed());
                    return Done::Stored(Settle(
                        self.account(events, written).into_iter().collect(),
                    ));
                }
                Ok(Err(Error::Store(error))) if error.kind == StoreErrorKind::Failed => {
                    // The store refused the data itself: isolate what it refuses.
                    tracing::warn!(error = %chain(&error), n_events = events.len(), "the store refused a batch; isolating the events it refuses");
                    if let Some(settle) = self.isolate(events).await {
                        self.recovered();
                        self.set_store_error(None);
                        self.shared.telemetry.record_flush(started.elapsed());
                        return Done::Stored(settle);
                    }
                }
                Ok(Err(Error::Store(error)))
                    if error.kind == StoreErrorKind::Contention && contention < MAX_CONTENTION =>
                {
                    contention += 1;
                    add(&self.shared.telemetry.contention_retries, 1);
                    tracing::debug!(%error, n_events = events.len(), "a write lost a race; retrying at once");
                    continue;
                }
                Ok(Err(error)) => {
                    let why = chain(&error);
                    tracing::warn!(error = %why, n_events = events.len(), "storing a batch failed");
                    self.set_store_error(Some(why));
                }
                Err(_) => {
                    tracing::warn!(n_events = events.len(), "storing a batch timed out");
                    self.set_store_error(Some("storing a batch timed out".to_owned()));
                }
            }
            let pause = self.failed();
            add(&self.shared.telemetry.retries, 1);
            if !persist {
                return Done::NotStored;
            }
            failures += 1;
            if failures >= SPILL_AFTER_FAILURES && self.try_spill(events).await {
                return Done::Spilled;
            }
            let now = Instant::now();
            let deadline = self.shared.deadline();
            if deadline.is_some_and(|deadline| now >= deadline) {
                return Done::NotStored;
            }
            let wake = now + pause;
            tokio::time::sleep_until(deadline.map_or(wake, |deadline| wake.min(deadline))).await;
        }
    }

    /// Records a failed attempt (the store is failing); returns the pause before it is
    /// tried again (with jitter: `retry_initial` after a success, then doubling to
    /// `retry_max`).
    fn failed(&self) -> Duration {
        self.store_failing.store(true, Ordering::Release);
        let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        let pause = if backoff.failed_at.is_some() {
            (backoff.pause * 2).min(self.config.retry_max)
        } else {
            self.config.retry_initial
        };
        backoff.pause = pause;
        backoff.failed_at = Some(Instant::now());
        jitter(pause)
    }

    /// Records a successful attempt (the store is not failing): the next failure starts
    /// the pauses over.
    fn recovered(&self) {
        self.store_failing.store(false, Ordering::Release);
        let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        backoff.failed_at = None;
        backoff.pause = self.config.retry_initial;
    }

    /// Whether the store failed less than the current pause ago.
    fn in_backoff(&self) -> bool {
        let backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        backoff
            .failed_at
            .is_some_and(|at| at.elapsed() < backoff.pause)
    }

    fn set_store_error(&self, error: Option<String>) {
        *self
            .shared
            .store_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error;
    }

    /// Counts a write in the telemetry; returns its counters to apply, if any.
    fn account(
        &self,
        events: &[Event],
        written: Written,
    ) -> Option<(Box<dyn PendingCounters>, CounterBatch)> {
        let new: Vec<&Event> = events
            .iter()
            .zip(&written.new)
            .filter_map(|(event, new)| new.then_some(event))
            .collect();
        let telemetry = &self.shared.telemetry;
        add(&telemetry.stored, new.len() as u64);
        add(&telemetry.duplicates, (events.len() - new.len()) as u64);
        written.pending.map(|pending| {
            let batch = CounterBatch::from_events(&self.config.calendar, new.iter().copied());
            (pending, batch)
        })
    }

    /// Stores a batch the store refused by halves, and halves of halves, until the
    /// events it refuses are alone: those go to the dead letters with the reason, the
    /// rest is stored (each part's counters go to the counter task at once, which lets
    /// its connection go). Returns `None` when a part failed for another reason (the
    /// store went away): the caller retries the whole batch (its stored parts then come
    /// back as duplicates, and dead letters are kept once per id).
    async fn isolate(&self, events: &[Event]) -> Option<Settle> {
        let mut parts: Vec<&[Event]> = vec![events];
        let mut contention = 0;
        while let Some(part) = parts.pop() {
            // Past the stop deadline the caller spills what is left, or counts it lost.
            if self
                .shared
                .deadline()
                .is_some_and(|deadline| Instant::now() >= deadline)
            {
                return None;
            }
            let attempt = timeout(self.config.store_timeout, self.stores.events.write(part)).await;
            match attempt {
                Ok(Ok(done)) => Settle(self.account(part, done).into_iter().collect()).send(self),
                Ok(Err(Error::Store(error)))
                    if error.kind == StoreErrorKind::Contention && contention < MAX_CONTENTION =>
                {
                    contention += 1;
                    add(&self.shared.telemetry.contention_retries, 1);
                    parts.push(part);
                }
                Ok(Err(Error::Store(error)))
                    if error.kind == StoreErrorKind::Failed && part.len() > 1 =>
                {
                    let (first, second) = part.split_at(part.len() / 2);
                    parts.push(second);
                    parts.push(first);
                }
                Ok(Err(Error::Store(error))) if error.kind == StoreErrorKind::Failed => {
                    let reason = chain(&error);
                    let kept = timeout(
                        self.config.store_timeout,
                        self.stores
                            .events
                            .dead_letter(part, &reason, chrono::Utc::now()),
                    )
                    .await;
                    if !matches!(kept, Ok(Ok(()))) {
                        return None;
                    }
                    add(&self.shared.telemetry.dead_lettered, part.len() as u64);
                    for event in part {
                        tracing::error!(
                            event_id = %event.id(),
                            event = event.name(),
                            reason,
                            "the store refused an event for good; kept in the dead letters"
                        );
                    }
                }
                _ => return None,
            }
        }
        Some(Settle(Vec::new()))
    }

    /// A batch that could not be stored before the stop deadline: spill it, or count
    /// it lost.
    async fn give_up(&self, events: &[Event]) {
        if self.try_spill(events).await {
            return;
        }
        self.lost(
            events,
            "the event store and the spill buffer failed until the stop deadline",
        );
    }

    /// Pushes a batch to the spill buffer, if there is one; returns whether it took it.
    async fn try_spill(&self, events: &[Event]) -> bool {
        let Some(spill) = &self.stores.spill else {
            return false;
        };
        match timeout(self.config.store_timeout, spill.push(events)).await {
            Ok(Ok(())) => {
                add(&self.shared.telemetry.spilled, events.len() as u64);
                self.spill_pending.store(true, Ordering::Release);
                tracing::warn!(
                    n_events = events.len(),
                    "event store busy or down; batch spilled"
                );
                true
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, n_events = events.len(), "spilling a batch failed");
                false
            }
            Err(_) => {
                tracing::warn!(n_events = events.len(), "spilling a batch timed out");
                false
            }
        }
    }

    fn lost(&self, events: &[Event], why: &str) {
        add(&self.shared.telemetry.dropped_shutdown, events.len() as u64);
        tracing::error!(n_events = events.len(), why, "events lost");
    }

    /// Drains the spill buffer, if it may hold events: claim after claim, at full
    /// speed, until it is empty, a store fails, or `DRAIN_CLAIMS` claims are done (then
    /// the writer looks at its queue again, and comes back at once). Returns whether it
    /// stopped at that limit.
    async fn drain_spill(self: &Arc<Self>) -> bool {
        let Some(spill) = &self.stores.spill else {
            return false;
        };
        if self.shared.deadline().is_some() {
            return false;
        }
        if !self.spill_pending.load(Ordering::Acquire) {
            let checked = *self
                .spill_checked
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if checked.elapsed() < SPILL_CHECK_INTERVAL {
                return false;
            }
        }
        if self.draining.swap(true, Ordering::AcqRel) {
            return false;
        }
        let more = self.drain_claims(spill).await;
        self.draining.store(false, Ordering::Release);
        more
    }

    /// How long an idle writer waits for a batch (see [`IDLE_TICK`]).
    fn idle_tick(&self) -> Duration {
        self.config.flush_interval.min(IDLE_TICK)
    }

    /// Whether reading the spill buffer failed less than an idle tick ago.
    fn spill_failed_recently(&self) -> bool {
        let tick = self.idle_tick();
        self.spill_failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < tick)
    }

    fn set_spill_failed(&self, failed: bool) {
        *self
            .spill_failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = failed.then(Instant::now);
    }

    /// Up to `DRAIN_CLAIMS` claims, stored one after the other. Returns whether all of
    /// them were taken and stored (the buffer may hold more).
    async fn drain_claims(self: &Arc<Self>, spill: &Arc<dyn SpillBuffer>) -> bool {
        for _ in 0..DRAIN_CLAIMS {
            match timeout(
                self.config.store_timeout,
                spill.claim(self.config.batch_size),
            )
            .await
            {
                Ok(Ok(Some(claim))) => {
                    self.set_spill_failed(false);
                    let Done::Stored(settle) = self.store(&claim.events, false).await else {
                        // The store failed: the claim goes back at once, so that its
                        // events are drained as soon as the store answers, not a lease
                        // later.
                        let _ = timeout(self.config.store_timeout, spill.release(&claim)).await;
                        return false;
                    };
                    settle.send(self);
                    add(&self.shared.telemetry.drained, claim.events.len() as u64);
                    // If this fails the claim's lease runs out and its events come
                    // back; storing them again is harmless.
                    let _ = timeout(self.config.store_timeout, spill.ack(&claim)).await;
                }
                Ok(Ok(None)) => {
                    self.set_spill_failed(false);
                    self.spill_pending.store(false, Ordering::Release);
                    *self
                        .spill_checked
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Instant::now();
                    return false;
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "reading the spill buffer failed");
                    self.set_spill_failed(true);
                    return false;
                }
                Err(_) => {
                    tracing::warn!("reading the spill buffer timed out");
                    self.set_spill_failed(true);
                    return false;
                }
            }
        }
        true
    }
}

/// An error and its causes, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
