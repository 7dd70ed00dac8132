//! Stores that fail on command: the next N calls, every call, or by hanging.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use analytics_core::counters::{Bucket, CounterBatch, Period};
use analytics_core::error::StoreError;
use analytics_core::event::Event;
use analytics_core::memory::{MemoryCounters, MemoryStore};
use analytics_core::metrics::{DaySummary, Sums};
use analytics_core::store::{CounterRecount, CounterStore, DirtyDay, EventStore, Written};
use analytics_core::time::{Calendar, DayWindow};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

/// What the next calls do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fault {
    /// Work.
    None,
    /// Fail the next N calls.
    Fail(u32),
    /// Hang this long on the next N calls, then work.
    Hang(u32, Duration),
    /// Fail every call.
    Down,
    /// Lose a race (a deadlock) on the next N calls.
    Contention(u32),
    /// Do the work, then hang this long before answering, on the next N calls (a
    /// commit whose answer is late).
    Late(u32, Duration),
}

#[derive(Debug)]
pub(crate) struct Faults(Mutex<Fault>);

impl Faults {
    fn new() -> Faults {
        Faults(Mutex::new(Fault::None))
    }

    pub(crate) fn set(&self, fault: Fault) {
        *self.0.lock().unwrap() = fault;
    }

    /// Applies the fault to one call: an error to return, or nothing.
    async fn call(&self, backend: &'static str) -> analytics_core::Result<()> {
        let fault = {
            let mut fault = self.0.lock().unwrap();
            let now = *fault;
            *fault = match now {
                Fault::Fail(1) | Fault::Hang(1, _) | Fault::Contention(1) | Fault::Late(1, _) => {
                    Fault::None
                }
                Fault::Late(n, d) => Fault::Late(n - 1, d),
                Fault::Fail(n) => Fault::Fail(n - 1),
                Fault::Contention(n) => Fault::Contention(n - 1),
                Fault::Hang(n, d) => Fault::Hang(n - 1, d),
                other => other,
            };
            now
        };
        match fault {
            Fault::None => Ok(()),
            Fault::Fail(_) | Fault::Down => {
                Err(StoreError::unavailable(backend, "injected failure").into())
            }
            Fault::Contention(_) => {
                Err(StoreError::contention(backend, "injected deadlock").into())
            }
            // The caller does the work first (see `FaultyEvents::write`).
            Fault::Late(..) => Ok(()),
            Fault::Hang(_, pause) => {
                tokio::time::sleep(pause).await;
                Ok(())
            }
        }
    }
}

/// A [`MemoryStore`] whose inserts fail on command, and that refuses for good (as a
/// database refuses data) any batch holding an event of the session `poison`.
#[derive(Debug)]
pub(crate) struct FaultyEvents {
    pub(crate) inner: MemoryStore,
    pub(crate) faults: Faults,
    /// The sizes of the writes asked for, in order.
    pub(crate) writes: Mutex<Vec<usize>>,
}

/// The session whose events [`FaultyEvents`] refuses.
pub(crate) const POISON: &str = "poison";

impl FaultyEvents {
    pub(crate) fn new() -> FaultyEvents {
        FaultyEvents {
            inner: MemoryStore::new(),
            faults: Faults::new(),
            writes: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl EventStore for FaultyEvents {
    async fn write(&self, events: &[Event]) -> analytics_core::Result<Written> {
        self.writes.lock().unwrap().push(events.len());
        let late = match *self.faults.0.lock().unwrap() {
            Fault::Late(_, pause) => Some(pause),
            _ => None,
        };
        self.faults.call("events").await?;
        if events.iter().any(|e| e.session_id() == Some(POISON)) {
            return Err(StoreError::failed("events", "a value the store refuses").into());
        }
        let written = self.inner.write(events).await?;
        if let Some(pause) = late {
            tokio::time::sleep(pause).await;
        }
        Ok(written)
    }
    fn sessions(
        &self,
        query: analytics_core::store::SessionQuery,
    ) -> analytics_core::store::SessionStream {
        self.inner.sessions(query)
    }
    async fn quarter_sums(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> analytics_core::Result<Vec<(chrono::DateTime<chrono::Utc>, analytics_core::metrics::Sums)>>
    {
        self.inner.quarter_sums(from, to).await
    }
    async fn marks(
        &self,
        from: chrono::DateTime<chrono::Utc>,
    ) -> analytics_core::Result<CounterBatch> {
        self.inner.marks(from).await
    }
    async fn summarize(&self, day: DayWindow) -> analytics_core::Result<DaySummary> {
        self.inner.summarize(day).await
    }
    async fn sketches(
        &self,
        day: DayWindow,
    ) -> analytics_core::Result<analytics_core::sketch::DaySketches> {
        self.inner.sketches(day).await
    }
    async fn purge_before(&self, cutoff: DateTime<Utc>) -> analytics_core::Result<u64> {
        self.inner.purge_before(cutoff).await
    }
    async fn dirty_days(&self) -> analytics_core::Result<Vec<DirtyDay>> {
        self.inner.dirty_days().await
    }
    async fn clean_day(&self, date: NaiveDate, marks: &[u64]) -> analytics_core::Result<()> {
        self.inner.clean_day(date, marks).await
    }
    async fn uncounted_days(&self) -> analytics_core::Result<Vec<NaiveDate>> {
        self.inner.uncounted_days().await
    }
    async fn dead_letter(
        &self,
        events: &[Event],
        reason: &str,
        at: DateTime<Utc>,
    ) -> analytics_core::Result<()> {
        self.inner.dead_letter(events, reason, at).await
    }
    async fn dead_letters(
        &self,
        limit: usize,
    ) -> analytics_core::Result<Vec<analytics_core::store::DeadLetter>> {
        self.inner.dead_letters(limit).await
    }
    async fn lock_counters(
        &self,
        date: NaiveDate,
    ) -> analytics_core::Result<Box<dyn CounterRecount>> {
        self.inner.lock_counters(date).await
    }
}

/// [`MemoryCounters`] whose `apply` fails on command.
#[derive(Debug)]
pub(crate) struct FaultyCounters {
    pub(crate) inner: MemoryCounters,
    pub(crate) faults: Faults,
}

impl FaultyCounters {
    pub(crate) fn new() -> FaultyCounters {
        FaultyCounters {
            inner: MemoryCounters::new(),
            faults: Faults::new(),
        }
    }
}

#[async_trait]
impl CounterStore for FaultyCounters {
    async fn apply(&self, batch: &CounterBatch) -> analytics_core::Result<()> {
        self.faults.call("counters").await?;
        self.inner.apply(batch).await
    }
    async fn read(&self, buckets: &[Bucket]) -> analytics_core::Result<Vec<Sums>> {
        self.inner.read(buckets).await
    }
    async fn replace(&self, bucket: &Bucket, sums: &Sums) -> analytics_core::Result<()> {
        self.inner.replace(bucket, sums).await
    }
    async fn active_sessions(&self, idle_cutoff: DateTime<Utc>) -> analytics_core::Result<u64> {
        self.inner.active_sessions(idle_cutoff).await
    }
    async fn online_agents(&self) -> analytics_core::Result<u64> {
        self.inner.online_agents().await
    }
    async fn read_agents(&self, period: Period) -> analytics_core::Result<BTreeMap<String, Sums>> {
        self.inner.read_agents(period).await
    }
    async fn intact(&self) -> analytics_core::Result<bool> {
        self.inner.intact().await
    }
    async fn begin_rebuild(&self) -> analytics_core::Result<String> {
        self.inner.begin_rebuild().await
    }
    async fn finish_rebuild(&self, token: &str) -> analytics_core::Result<bool> {
        self.inner.finish_rebuild(token).await
    }
}

/// The daily counters of every day the events fall on, next to the sums of the
/// events, by day.
pub(crate) async fn daily_counters_and_sums(
    counters: &dyn CounterStore,
    events: &[Event],
) -> (BTreeMap<NaiveDate, Sums>, BTreeMap<NaiveDate, Sums>) {
    let calendar = Calendar::default();
    let mut expected = BTreeMap::<NaiveDate, Sums>::new();
    for event in events {
        expected
            .entry(calendar.date(event.timestamp()))
            .or_default()
            .record(event);
    }
    let buckets: Vec<Bucket> = expected
        .keys()
        .map(|d| Bucket::all(Period::Day(*d)))
        .collect();
    let read = counters.read(&buckets).await.unwrap();
    (expected.keys().copied().zip(read).collect(), expected)
}
