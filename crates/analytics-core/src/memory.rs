//! In-memory implementations of the storage traits.
//!
//! They are the fakes that tests use when the test is about results, and
//! [`MemoryCounters`] is also the real in-process counter store used when `REDIS_URL` is
//! unset. Nothing here survives the process.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::catalog::AgentStatus;
use crate::counters::{Bucket, CounterBatch, Period};
use crate::error::Result;
use crate::event::Event;
use crate::metrics::{DaySummary, Sums};
use crate::sketch::DaySketches;
use crate::store::{
    CounterRecount, CounterStore, DeadLetter, DirtyDay, EventStore, JobLock, PendingCounters,
    SpillBuffer, SpillClaim, StatsStore, Written,
};
use crate::time::{Calendar, DateRange, DayWindow};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind; keep going.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Events and daily statistics in memory: an [`EventStore`] and a [`StatsStore`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    calendar: Calendar,
    events: Arc<Mutex<Events>>,
    days: Mutex<BTreeMap<NaiveDate, DaySummary>>,
    locks: ProcessLocks,
    day_locks: DayLocks,
}

#[derive(Debug, Default)]
struct Events {
    ids: HashSet<Uuid>,
    /// In insertion order.
    list: Vec<Event>,
    /// Dirty marks: the day and version of each write, until cleaned.
    dirty: Vec<(NaiveDate, u64)>,
    /// Uncounted marks: the version and day of each write whose counters are not
    /// known to be applied.
    uncounted: Vec<(u64, NaiveDate)>,
    /// Events refused for good, oldest first.
    dead: Vec<DeadLetter>,
    version: u64,
}

impl MemoryStore {
    /// An empty store on the Asia/Shanghai calendar.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// An empty store whose days are those of `calendar`.
    pub fn with_calendar(calendar: Calendar) -> MemoryStore {
        MemoryStore {
            calendar,
            ..MemoryStore::default()
        }
    }

    /// Every stored event, in insertion order.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.events).list.clone()
    }

    /// How many events are stored.
    pub fn len(&self) -> usize {
        lock(&self.events).list.len()
    }

    /// Whether no event is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    fn sessions(&self, query: crate::store::SessionQuery) -> crate::store::SessionStream {
        let rows = crate::store::sessions_of(lock(&self.events).list.iter(), query);
        Box::pin(futures_util::stream::iter(rows.into_iter().map(Ok)))
    }

    async fn write(&self, events: &[Event]) -> Result<Written> {
        // The days of the batch are locked before it is written, as the embedded store
        // does: a recount of a day waits for the write, and the write for a recount.
        let mut days: Vec<NaiveDate> = events
            .iter()
            .map(|e| self.calendar.date(e.timestamp()))
            .collect();
        days.sort_unstable();
        days.dedup();
        let guards = self.day_locks.share(&days).await;
        let mut stored = lock(&self.events);
        let stored = &mut *stored;
        stored.version += 1;
        let version = stored.version;
        let mut new_days = Vec::new();
        let new: Vec<bool> = events
            .iter()
            .map(|event| {
                let new = stored.ids.insert(event.id());
                if new {
                    stored.list.push(event.clone());
                    new_days.push(self.calendar.date(event.timestamp()));
                }
                new
            })
            .collect();
        if new_days.is_empty() {
            return Ok(Written { new, pending: None });
        }
        new_days.sort_unstable();
        new_days.dedup();
        for day in &new_days {
            stored.dirty.push((*day, version));
            stored.uncounted.push((version, *day));
        }
        Ok(Written {
            new,
            pending: Some(Box::new(MemoryPending {
                events: self.events.clone(),
                write: version,
                days: new_days,
                _guards: guards,
            })),
        })
    }

    async fn quarter_sums(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, Sums)>> {
        let stored = lock(&self.events);
        let mut quarters = BTreeMap::<DateTime<Utc>, Sums>::new();
        for event in stored
            .list
            .iter()
            .filter(|e| (from..to).contains(&e.timestamp()))
        {
            quarters
                .entry(crate::store::quarter_of(event.timestamp()))
                .or_default()
                .merge(&Sums::of(event));
        }
        Ok(quarters.into_iter().collect())
    }

    async fn marks(&self, from: DateTime<Utc>) -> Result<CounterBatch> {
        let stored = lock(&self.events);
        let mut recent: Vec<&Event> = stored
            .list
            .iter()
            .filter(|e| e.timestamp() >= from)
            .collect();
        recent.sort_by_key(|e| e.timestamp());
        let mut marks = CounterBatch::default();
        for event in recent {
            marks.record_marks(event);
        }
        Ok(marks)
    }

    async fn summarize(&self, day: DayWindow) -> Result<DaySummary> {
        let stored = lock(&self.events);
        let mut summary = DaySummary::default();
        for event in stored.list.iter().filter(|e| day.contains(e.timestamp())) {
            summary.record(event);
        }
        Ok(summary)
    }

    async fn sketches(&self, day: DayWindow) -> Result<DaySketches> {
        let stored = lock(&self.events);
        let mut sketches = DaySketches::default();
        for event in stored.list.iter().filter(|e| day.contains(e.timestamp())) {
            sketches.record(event);
        }
        Ok(sketches)
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let mut stored = lock(&self.events);
        let before = stored.list.len();
        // Ids stay known: a purged event sent again must not be counted again.
        stored.list.retain(|event| event.timestamp() >= cutoff);
        let cutoff_day = self.calendar.date(cutoff);
        stored.dirty.retain(|(day, _)| *day >= cutoff_day);
        Ok((before - stored.list.len()) as u64)
    }

    async fn dirty_days(&self) -> Result<Vec<DirtyDay>> {
        let stored = lock(&self.events);
        let mut days = BTreeMap::<NaiveDate, Vec<u64>>::new();
        for (day, version) in &stored.dirty {
            days.entry(*day).or_default().push(*version);
        }
        Ok(days
            .into_iter()
            .map(|(day, marks)| DirtyDay {
                day,
                marks,
                uncounted: stored.uncounted.iter().any(|(_, d)| *d == day),
            })
            .collect())
    }

    async fn clean_day(&self, date: NaiveDate, marks: &[u64]) -> Result<()> {
        lock(&self.events)
            .dirty
            .retain(|(day, version)| *day != date || !marks.contains(version));
        Ok(())
    }

    async fn uncounted_days(&self) -> Result<Vec<NaiveDate>> {
        let mut days: Vec<NaiveDate> = lock(&self.events)
            .uncounted
            .iter()
            .map(|(_, day)| *day)
            .collect();
        days.sort_unstable();
        days.dedup();
        Ok(days)
    }

    async fn dead_letter(&self, events: &[Event], reason: &str, at: DateTime<Utc>) -> Result<()> {
        let mut stored = lock(&self.events);
        for event in events {
            if stored.dead.iter().any(|d| d.event_id == event.id()) {
                continue;
            }
            stored.dead.push(DeadLetter {
                event_id: event.id(),
                event: event.name().to_owned(),
                dead_lettered_at: at,
                reason: reason.to_owned(),
                envelope: serde_json::to_string(event).unwrap_or_default(),
            });
        }
        Ok(())
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        Ok(lock(&self.events)
            .dead
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect())
    }

    async fn lock_counters(&self, date: NaiveDate) -> Result<Box<dyn CounterRecount>> {
        let guard = self.day_locks.exclusive(date).await;
        Ok(Box::new(MemoryRecount {
            events: self.events.clone(),
            day: date,
            _guard: guard,
        }))
    }
}

/// A write of the in-memory store whose counters are not settled yet.
#[derive(Debug)]
struct MemoryPending {
    events: Arc<Mutex<Events>>,
    write: u64,
    days: Vec<NaiveDate>,
    _guards: Vec<tokio::sync::OwnedRwLockReadGuard<()>>,
}

#[async_trait]
impl PendingCounters for MemoryPending {
    fn days(&self) -> &[NaiveDate] {
        &self.days
    }

    async fn settle(self: Box<Self>, applied: bool) {
        if applied {
            lock(&self.events)
                .uncounted
                .retain(|(write, _)| *write != self.write);
        }
    }
}

/// A recount of one day of the in-memory store.
struct MemoryRecount {
    events: Arc<Mutex<Events>>,
    day: NaiveDate,
    _guard: tokio::sync::OwnedRwLockWriteGuard<()>,
}

#[async_trait]
impl CounterRecount for MemoryRecount {
    async fn finish(self: Box<Self>) -> Result<()> {
        lock(&self.events)
            .uncounted
            .retain(|(_, day)| *day != self.day);
        Ok(())
    }
}

/// Per-day read-write locks in this process: writes share the locks of their days
/// while their counters are pending, a counter recount takes one exclusively. Used by
/// the in-memory store and the embedded store (one process per file).
#[derive(Debug, Clone, Default)]
pub struct DayLocks(Arc<Mutex<HashMap<NaiveDate, Arc<tokio::sync::RwLock<()>>>>>);

impl DayLocks {
    fn lock_of(&self, day: NaiveDate) -> Arc<tokio::sync::RwLock<()>> {
        let mut locks = lock(&self.0);
        // Forget the locks nobody holds or waits for.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(day).or_default().clone()
    }

    /// Shares the locks of `days` (sorted and without repeats: one order for every
    /// writer, so no two wait on each other).
    pub async fn share(&self, days: &[NaiveDate]) -> Vec<tokio::sync::OwnedRwLockReadGuard<()>> {
        let mut guards = Vec::with_capacity(days.len());
        for day in days {
            guards.push(self.lock_of(*day).read_owned().await);
        }
        guards
    }

    /// Takes the lock of one day exclusively.
    pub async fn exclusive(&self, day: NaiveDate) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.lock_of(day).write_owned().await
    }
}

#[async_trait]
impl StatsStore for MemoryStore {
    async fn put_day(&self, date: NaiveDate, summary: &DaySummary) -> Result<()> {
        lock(&self.days).insert(date, summary.clone());
        Ok(())
    }

    async fn days(&self, range: DateRange) -> Result<Vec<(NaiveDate, Sums)>> {
        Ok(lock(&self.days)
            .range(range.start()..=range.end())
            .map(|(date, summary)| (*date, summary.totals))
            .collect())
    }

    async fn agent_days(
        &self,
        range: DateRange,
    ) -> Result<BTreeMap<NaiveDate, BTreeMap<String, Sums>>> {
        Ok(lock(&self.days)
            .range(range.start()..=range.end())
            .map(|(date, summary)| (*date, summary.agents.clone()))
            .collect())
    }

    async fn sketch_days(
        &self,
        range: DateRange,
        per_agent: bool,
    ) -> Result<BTreeMap<NaiveDate, DaySketches>> {
        Ok(lock(&self.days)
            .range(range.start()..=range.end())
            .map(|(date, summary)| {
                let mut sketches = summary.sketches.clone();
                if !per_agent {
                    sketches.agents.clear();
                }
                (*date, sketches)
            })
            .collect())
    }

    async fn claim_run(&self, jobs: &str, within: std::time::Duration) -> Result<bool> {
        Ok(self.locks.claim_run(jobs, within))
    }

    async fn try_lock(&self, job: &str) -> Result<Option<Box<dyn JobLock>>> {
        Ok(self.locks.try_lock(job))
    }
}

/// Job locks held in the process, for stores that one process owns (the in-memory and
/// the embedded store).
#[derive(Debug, Clone, Default)]
pub struct ProcessLocks(
    Arc<Mutex<HashSet<String>>>,
    Arc<Mutex<HashMap<String, std::time::Instant>>>,
);

impl ProcessLocks {
    /// [`StatsStore::claim_run`] within the process.
    pub fn claim_run(&self, jobs: &str, within: std::time::Duration) -> bool {
        let now = std::time::Instant::now();
        let mut runs = lock(&self.1);
        match runs.get(jobs) {
            Some(started) if now.duration_since(*started) < within => false,
            _ => {
                runs.insert(jobs.to_owned(), now);
                true
            }
        }
    }

    /// Takes the lock of `job`, unless this process holds it already.
    pub fn try_lock(&self, job: &str) -> Option<Box<dyn JobLock>> {
        if !lock(&self.0).insert(job.to_owned()) {
            return None;
        }
        Some(Box::new(ProcessLock {
            locks: self.clone(),
            job: job.to_owned(),
        }))
    }
}

/// A job's lock in [`ProcessLocks`]: released on `release` or drop.
#[derive(Debug)]
struct ProcessLock {
    locks: ProcessLocks,
    job: String,
}

impl Drop for ProcessLock {
    fn drop(&mut self) {
        lock(&self.locks.0).remove(&self.job);
    }
}

#[async_trait]
impl JobLock for ProcessLock {
    async fn release(self: Box<Self>) {}
}

/// Real-time counters in memory: a [`CounterStore`].
#[derive(Debug, Default)]
pub struct MemoryCounters {
    state: Mutex<Counters>,
    /// Whether the counters were rebuilt since they were created or cleared.
    intact: std::sync::atomic::AtomicBool,
    /// Bumped by every clear, so that a rebuild that began before one does not mark
    /// the counters intact.
    generation: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct Counters {
    buckets: HashMap<Bucket, Sums>,
    /// Active sessions and when each was last seen.
    sessions: HashMap<String, DateTime<Utc>>,
    /// Each agent's latest status and when it was taken.
    agents: HashMap<String, (AgentStatus, DateTime<Utc>)>,
}

impl MemoryCounters {
    /// No counters.
    pub fn new() -> MemoryCounters {
        MemoryCounters::default()
    }

    /// Forgets every counter, as a Redis restart does.
    pub fn clear(&self) {
        let mut state = lock(&self.state);
        *state = Counters::default();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.intact
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl CounterStore for MemoryCounters {
    async fn apply(&self, batch: &CounterBatch) -> Result<()> {
        let mut state = lock(&self.state);
        for (bucket, sums) in &batch.increments {
            state.buckets.entry(bucket.clone()).or_default().merge(sums);
        }
        for (session, mark) in &batch.sessions {
            if mark.ended {
                state.sessions.remove(session);
            } else if mark.started {
                let seen = state
                    .sessions
                    .entry(session.clone())
                    .or_insert(mark.last_seen);
                *seen = (*seen).max(mark.last_seen);
            } else if let Some(seen) = state.sessions.get_mut(session) {
                *seen = (*seen).max(mark.last_seen);
            }
        }
        for (agent, mark) in &batch.agents {
            let entry = state
                .agents
                .entry(agent.clone())
                .or_insert((mark.status, mark.at));
            if mark.at >= entry.1 {
                *entry = (mark.status, mark.at);
            }
        }
        Ok(())
    }

    async fn read(&self, buckets: &[Bucket]) -> Result<Vec<Sums>> {
        let state = lock(&self.state);
        Ok(buckets
            .iter()
            .map(|bucket| state.buckets.get(bucket).copied().unwrap_or_default())
            .collect())
    }

    async fn replace(&self, bucket: &Bucket, sums: &Sums) -> Result<()> {
        lock(&self.state).buckets.insert(bucket.clone(), *sums);
        Ok(())
    }

    async fn active_sessions(&self, idle_cutoff: DateTime<Utc>) -> Result<u64> {
        Ok(lock(&self.state)
            .sessions
            .values()
            .filter(|seen| **seen >= idle_cutoff)
            .count() as u64)
    }

    async fn online_agents(&self) -> Result<u64> {
        Ok(lock(&self.state)
            .agents
            .values()
            .filter(|(status, _)| status.is_online())
            .count() as u64)
    }

    async fn intact(&self) -> Result<bool> {
        Ok(self.intact.load(std::sync::atomic::Ordering::SeqCst))
    }

    async fn begin_rebuild(&self) -> Result<String> {
        Ok(self
            .generation
            .load(std::sync::atomic::Ordering::SeqCst)
            .to_string())
    }

    async fn finish_rebuild(&self, token: &str) -> Result<bool> {
        // Under the state lock, so that no clear runs between the check and the store.
        let _state = lock(&self.state);
        let same = self
            .generation
            .load(std::sync::atomic::Ordering::SeqCst)
            .to_string()
            == token;
        if same {
            self.intact.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(same)
    }

    async fn read_agents(&self, period: Period) -> Result<BTreeMap<String, Sums>> {
        Ok(lock(&self.state)
            .buckets
            .iter()
            .filter(|(bucket, _)| bucket.period == period)
            .filter_map(|(bucket, sums)| bucket.agent.clone().map(|agent| (agent, *sums)))
            .collect())
    }
}

/// A spill buffer in memory: a [`SpillBuffer`].
#[derive(Debug, Default)]
pub struct MemorySpill {
    state: Mutex<Spill>,
}

#[derive(Debug, Default)]
struct Spill {
    waiting: VecDeque<Event>,
    /// Claimed and not yet acknowledged, oldest claim first.
    claimed: VecDeque<SpillClaim>,
    next_token: u64,
}

impl MemorySpill {
    /// An empty buffer.
    pub fn new() -> MemorySpill {
        MemorySpill::default()
    }
}

#[async_trait]
impl SpillBuffer for MemorySpill {
    async fn push(&self, events: &[Event]) -> Result<()> {
        lock(&self.state).waiting.extend(events.iter().cloned());
        Ok(())
    }

    async fn claim(&self, max: usize) -> Result<Option<SpillClaim>> {
        let mut state = lock(&self.state);
        // A claim that was never acknowledged is handed out again first.
        if let Some(claim) = state.claimed.front() {
            return Ok(Some(claim.clone()));
        }
        if state.waiting.is_empty() || max == 0 {
            return Ok(None);
        }
        let n = max.min(state.waiting.len());
        let events: Vec<Event> = state.waiting.drain(..n).collect();
        state.next_token += 1;
        let claim = SpillClaim {
            token: state.next_token.to_string(),
            events,
        };
        state.claimed.push_back(claim.clone());
        Ok(Some(claim))
    }

    async fn ack(&self, claim: &SpillClaim) -> Result<()> {
        lock(&self.state).claimed.retain(|c| c.token != claim.token);
        Ok(())
    }

    async fn len(&self) -> Result<u64> {
        let state = lock(&self.state);
        let claimed: usize = state.claimed.iter().map(|c| c.events.len()).sum();
        Ok((state.waiting.len() + claimed) as u64)
    }
}
