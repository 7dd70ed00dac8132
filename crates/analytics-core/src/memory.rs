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
use crate::error::Result;
use crate::event::Event;
use crate::metrics::{DaySummary, Sums};
use crate::store::{
    Bucket, CounterBatch, CounterStore, EventStore, JobLock, Period, SpillBuffer, SpillClaim,
    StatsStore,
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
    events: Mutex<Events>,
    days: Mutex<BTreeMap<NaiveDate, DaySummary>>,
    locks: ProcessLocks,
}

#[derive(Debug, Default)]
struct Events {
    ids: HashSet<Uuid>,
    /// In insertion order.
    list: Vec<Event>,
    /// Days written since they were marked clean, with their version.
    dirty: BTreeMap<NaiveDate, u64>,
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
    async fn insert(&self, events: &[Event]) -> Result<Vec<bool>> {
        let mut stored = lock(&self.events);
        let stored = &mut *stored;
        stored.version += 1;
        Ok(events
            .iter()
            .map(|event| {
                let new = stored.ids.insert(event.id());
                if new {
                    stored.list.push(event.clone());
                    stored
                        .dirty
                        .insert(self.calendar.date(event.timestamp()), stored.version);
                }
                new
            })
            .collect())
    }

    async fn summarize(&self, day: DayWindow) -> Result<DaySummary> {
        let stored = lock(&self.events);
        let mut summary = DaySummary::default();
        for event in stored.list.iter().filter(|e| day.contains(e.timestamp())) {
            summary.record(event);
        }
        Ok(summary)
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let mut stored = lock(&self.events);
        let before = stored.list.len();
        // Ids stay known: a purged event sent again must not be counted again.
        stored.list.retain(|event| event.timestamp() >= cutoff);
        let cutoff_day = self.calendar.date(cutoff);
        stored.dirty.retain(|day, _| *day >= cutoff_day);
        Ok((before - stored.list.len()) as u64)
    }

    async fn dirty_days(&self) -> Result<Vec<(NaiveDate, u64)>> {
        Ok(lock(&self.events)
            .dirty
            .iter()
            .map(|(day, version)| (*day, *version))
            .collect())
    }

    async fn clean_day(&self, date: NaiveDate, version: u64) -> Result<()> {
        let mut stored = lock(&self.events);
        if stored.dirty.get(&date).is_some_and(|v| *v <= version) {
            stored.dirty.remove(&date);
        }
        Ok(())
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

    async fn agents(&self, range: DateRange) -> Result<BTreeMap<String, Sums>> {
        let mut agents = BTreeMap::<String, Sums>::new();
        for summary in lock(&self.days)
            .range(range.start()..=range.end())
            .map(|(_, s)| s)
        {
            for (agent, sums) in &summary.agents {
                agents.entry(agent.clone()).or_default().merge(sums);
            }
        }
        Ok(agents)
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

    async fn try_lock(&self, job: &str) -> Result<Option<Box<dyn JobLock>>> {
        Ok(self.locks.try_lock(job))
    }
}

/// Job locks held in the process, for stores that one process owns (the in-memory and
/// the embedded store).
#[derive(Debug, Clone, Default)]
pub struct ProcessLocks(Arc<Mutex<HashSet<String>>>);

impl ProcessLocks {
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
    intact: std::sync::atomic::AtomicBool,
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
        *lock(&self.state) = Counters::default();
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

    async fn check_intact(&self) -> Result<bool> {
        Ok(self.intact.swap(true, std::sync::atomic::Ordering::SeqCst))
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
