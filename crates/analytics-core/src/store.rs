//! The storage traits the adapters implement (PostgreSQL, Redis, the embedded store and
//! the in-memory fakes of [`crate::memory`]). What one flush adds to the real-time
//! counters is computed in [`crate::counters`].
//!
//! The traits are `#[async_trait]` because the server picks backends at run time and
//! holds them as `Arc<dyn …>`. With the `mocks` feature each has a mockall mock
//! (`MockEventStore`, …) for tests about calls: retries, ordering, failure injection.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::counters::{Bucket, CounterBatch, Period};
use crate::error::Result;
use crate::event::Event;
use crate::metrics::{DaySummary, Sums};
use crate::sketch::DaySketches;
use crate::time::{DateRange, DayWindow};

/// How long after a session a new session of the same customer counts as a return
/// (the AI funnel and the sessions export, SPEC §5): 24 hours.
pub const RETURN_WINDOW: TimeDelta = TimeDelta::hours(24);

/// One session, as the sessions export tells it (SPEC §9), from event detail.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// The session.
    pub session_id: String,
    /// Its `session.start` (the earliest, if it was sent more than once).
    pub started_at: DateTime<Utc>,
    /// `channel` of its `session.start`.
    pub channel: Option<String>,
    /// `customer_id` of its `session.start`.
    pub customer_id: Option<String>,
    /// Whether it was handed to an agent (`session.escalate`).
    pub escalated: bool,
    /// The agent of its first `agent.session_takeover`.
    pub agent_id: Option<String>,
    /// `wait_duration_seconds` of its first takeover, in millionths of a second.
    pub first_response_micros: Option<u64>,
    /// `handle_duration_seconds` of its releases, summed, in millionths of a second.
    pub handle_time_micros: Option<u64>,
    /// Whether the same customer started another session within the return window
    /// after this one (never for a session without `customer_id`).
    pub returned: bool,
}

/// What the sessions export reads: the sessions started in `[from, to)`, with their
/// events up to `to + window` (a hand-off after midnight still belongs to its session)
/// and returns within `window` of each start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionQuery {
    /// The first instant.
    pub from: DateTime<Utc>,
    /// The end, exclusive.
    pub to: DateTime<Utc>,
    /// The return window.
    pub window: TimeDelta,
}

/// Sessions in start order (then by id), read as they are consumed: a store sends them
/// through a bounded channel, so a consumer that writes them out holds a few at a time.
pub type SessionStream = Pin<Box<dyn futures_core::Stream<Item = Result<SessionRow>> + Send>>;

/// A [`SessionStream`] of what a producer task sends into `rx`.
pub fn session_stream(rx: tokio::sync::mpsc::Receiver<Result<SessionRow>>) -> SessionStream {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|row| (row, rx))
    }))
}

/// Sends `rows` (a store's query, read in a task of its own) into the channel behind a
/// [`session_stream`], until they end, one fails (the error is sent, then the reading
/// stops), the consumer is gone, or it takes nothing for [`SESSION_STALL`]: then the
/// query is dropped and its connection given back.
pub async fn forward_sessions<S>(rows: S, tx: tokio::sync::mpsc::Sender<Result<SessionRow>>)
where
    S: futures_core::Stream<Item = Result<SessionRow>>,
{
    use futures_util::StreamExt as _;
    let mut rows = std::pin::pin!(rows);
    while let Some(item) = rows.next().await {
        let failed = item.is_err();
        let sent = tokio::time::timeout(SESSION_STALL, tx.send(item)).await;
        if !matches!(sent, Ok(Ok(()))) || failed {
            break;
        }
    }
}

/// How many sessions a store reads ahead of the consumer.
pub const SESSION_READ_AHEAD: usize = 256;

/// How long a store's reading task waits for a consumer that takes no session (a
/// client that stopped reading its download) before it ends the query and gives its
/// connection back.
pub const SESSION_STALL: std::time::Duration = std::time::Duration::from_secs(30);

/// The sessions of a query computed from events in memory: what every store's query
/// must answer (the in-memory store uses it; the tests compare with it).
pub fn sessions_of<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    query: SessionQuery,
) -> Vec<SessionRow> {
    use crate::catalog::Kind;
    use crate::metrics::Measure;

    /// A takeover: when, its id (the tie-break), its agent and its wait.
    type Takeover = (DateTime<Utc>, uuid::Uuid, Option<String>, Option<u64>);
    #[derive(Default)]
    struct Acc {
        started_at: Option<DateTime<Utc>>,
        channel: Option<String>,
        customer_id: Option<String>,
        escalated: bool,
        first_takeover: Option<Takeover>,
        handle_time: Option<u64>,
    }
    let end = query.to + query.window;
    let mut sessions = BTreeMap::<String, Acc>::new();
    for event in events {
        let (Some(session), Some(kind)) = (event.session_id(), event.kind()) else {
            continue;
        };
        let at = event.timestamp();
        if at < query.from || at >= end {
            continue;
        }
        let acc = sessions.entry(session.to_owned()).or_default();
        let value = Measure::of(event).value_micros;
        let property = |name: &str| {
            event
                .properties()
                .get(name)
                .and_then(|v| v.as_str().map(str::to_owned))
        };
        match kind {
            Kind::SessionStart => {
                acc.started_at = Some(acc.started_at.map_or(at, |s| s.min(at)));
                acc.channel = acc.channel.take().max(property("channel"));
                acc.customer_id = acc.customer_id.take().max(property("customer_id"));
            }
            Kind::SessionEscalate => acc.escalated = true,
            Kind::AgentSessionTakeover => {
                let candidate = (at, event.id(), event.agent_id().map(str::to_owned), value);
                if acc
                    .first_takeover
                    .as_ref()
                    .is_none_or(|first| (candidate.0, candidate.1) < (first.0, first.1))
                {
                    acc.first_takeover = Some(candidate);
                }
            }
            Kind::AgentSessionRelease => {
                acc.handle_time = Some(acc.handle_time.unwrap_or(0) + value.unwrap_or(0));
            }
            _ => {}
        }
    }
    // Started sessions in start order, then by id.
    let mut started: Vec<(DateTime<Utc>, String, Acc)> = sessions
        .into_iter()
        .filter_map(|(id, acc)| acc.started_at.map(|at| (at, id, acc)))
        .collect();
    started.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    // Each customer's next start.
    let mut next_start = vec![None; started.len()];
    let mut last_of_customer = std::collections::HashMap::<&str, usize>::new();
    for (i, (at, _, acc)) in started.iter().enumerate() {
        if let Some(customer) = acc.customer_id.as_deref()
            && let Some(previous) = last_of_customer.insert(customer, i)
        {
            next_start[previous] = Some(*at);
        }
    }
    started
        .iter()
        .zip(next_start)
        .filter(|((at, _, _), _)| *at < query.to)
        .map(|((at, id, acc), next)| {
            let (agent_id, first_response_micros) = match &acc.first_takeover {
                Some((_, _, agent, value)) => (agent.clone(), *value),
                None => (None, None),
            };
            SessionRow {
                session_id: id.clone(),
                started_at: *at,
                channel: acc.channel.clone(),
                customer_id: acc.customer_id.clone(),
                escalated: acc.escalated,
                agent_id,
                first_response_micros,
                handle_time_micros: acc.handle_time,
                returned: acc.customer_id.is_some()
                    && next.is_some_and(|next| next <= *at + query.window),
            }
        })
        .collect()
}

/// Event detail: the source of truth (SPEC §7).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Stores the events whose id is not stored yet, atomically for the batch, and
    /// marks the business days of the new ones dirty and **uncounted** in the same
    /// transaction.
    ///
    /// Returns one flag per input event, in order (`true` where the event was stored
    /// by this call, `false` where its id was already stored, by an earlier call or
    /// earlier in the same batch), and the write's [`PendingCounters`] when any event
    /// was new. Until they are settled, the write holds its days' counter locks: a
    /// counter rebuild of those days ([`EventStore::lock_counters`]) waits for it.
    /// The caller applies the counters of the new events, then settles.
    ///
    /// # Errors
    ///
    /// A store error; nothing of the batch is stored then.
    async fn write(&self, events: &[Event]) -> Result<Written>;

    /// Stores the events without applying counters: [`EventStore::write`], settled as
    /// not applied (the days stay uncounted, so statistics read them from detail until
    /// the counter repair recounts them). Returns the flags of `write`.
    ///
    /// # Errors
    ///
    /// A store error; nothing of the batch is stored then.
    async fn insert(&self, events: &[Event]) -> Result<Vec<bool>> {
        let written = self.write(events).await?;
        if let Some(pending) = written.pending {
            pending.settle(false).await;
        }
        Ok(written.new)
    }

    /// The latest word on each session and agent in the events stored at or after
    /// `from`, as a flush gives it to the counters ([`CounterBatch::sessions`] and
    /// [`CounterBatch::agents`]; no increments): what the counter repair gives back to
    /// counters that lost it, and what the real-time view reads while they have not.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn marks(&self, from: DateTime<Utc>) -> Result<CounterBatch>;

    /// The sums of the stored events in each quarter of an hour of UTC ([`QUARTER`])
    /// within `[from, to)` that has any, by the quarter's first instant, in order: every
    /// zone's hours are whole quarters, so a caller adds them up into its own hours. All
    /// events together (no agents, no distributions); one read.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn quarter_sums(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, Sums)>>;

    /// Sums the stored events of one business day, for all events and per agent, with
    /// the distributions of their durations ([`EventStore::sketches`]), read from one
    /// snapshot of the store.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn summarize(&self, day: DayWindow) -> Result<DaySummary>;

    /// The distributions of the durations of one business day's stored events, for all
    /// events and per agent (for percentiles of days without current statistics).
    ///
    /// # Errors
    ///
    /// A store error.
    async fn sketches(&self, day: DayWindow) -> Result<DaySketches>;

    /// The sessions started in the query's window, from event detail, in start order
    /// (then by id), read as they are consumed. A failure ends the stream with an
    /// error item.
    fn sessions(&self, query: SessionQuery) -> SessionStream;

    /// Removes event detail older than `cutoff` (a whole business day boundary), by
    /// dropping whole partitions where the backend has them. Returns how many events
    /// were removed, where the backend can tell cheaply.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn purge_before(&self, cutoff: DateTime<Utc>) -> Result<u64>;

    /// The business days that received events since they were last marked clean,
    /// each with the marks (versions) of the writes that made it dirty, and whether
    /// some write to it has counters that are not known to be applied.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn dirty_days(&self) -> Result<Vec<DirtyDay>>;

    /// Removes exactly these marks of a day, the ones read by [`EventStore::dirty_days`]
    /// before the day was summarized: a write that committed later keeps its mark, so
    /// the day stays dirty whatever the order in which writers commit.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn clean_day(&self, date: NaiveDate, marks: &[u64]) -> Result<()>;

    /// The business days with a write whose counters are not known to be applied
    /// (in flight, failed, or left by a process that died).
    ///
    /// # Errors
    ///
    /// A store error.
    async fn uncounted_days(&self) -> Result<Vec<NaiveDate>>;

    /// Takes a day's counter lock exclusively: waits until no write to the day is
    /// between its commit and settling its counters, and holds new writes to the day
    /// back until [`CounterRecount::finish`]. Meanwhile the day's counters can be
    /// rebuilt from detail exactly.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn lock_counters(&self, date: NaiveDate) -> Result<Box<dyn CounterRecount>>;

    /// Takes the counter locks of several days together, in the order given (callers
    /// sort them, as writes take them): a rebuild that reads across those days. Its
    /// `finish` counts every one of them. A store whose locks each hold a connection
    /// takes them on one.
    ///
    /// # Errors
    ///
    /// A store error; the locks taken are released.
    async fn lock_counters_of(&self, days: &[NaiveDate]) -> Result<Box<dyn CounterRecount>> {
        let mut recounts = Vec::with_capacity(days.len());
        for day in days {
            recounts.push(self.lock_counters(*day).await?);
        }
        Ok(Box::new(Recounts(recounts)))
    }

    /// Keeps events the store refused for a reason that retrying cannot fix (their data),
    /// with the reason and when, apart from the events: they are never counted, and
    /// `analytics dead-letters` lists them.
    ///
    /// # Errors
    ///
    /// A store error; nothing was kept then.
    async fn dead_letter(&self, events: &[Event], reason: &str, at: DateTime<Utc>) -> Result<()>;

    /// The dead letters, newest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Gets the store ready for events of these days (PostgreSQL creates partitions);
    /// a no-op by default.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn prepare_days(&self, range: DateRange) -> Result<()> {
        let _ = range;
        Ok(())
    }
}

/// What [`EventStore::write`] did.
#[derive(Debug)]
pub struct Written {
    /// One flag per input event: stored by this call.
    pub new: Vec<bool>,
    /// The write's counters, to settle once they are applied (or not); `None` when
    /// nothing was new.
    pub pending: Option<Box<dyn PendingCounters>>,
}

impl Written {
    /// A write that stored nothing new.
    pub fn nothing_new(n: usize) -> Written {
        Written {
            new: vec![false; n],
            pending: None,
        }
    }
}

/// A committed write whose counters are not applied yet. It holds the counter locks
/// of its days (shared with other writes) until settled or dropped.
#[async_trait]
pub trait PendingCounters: Send + Sync + std::fmt::Debug {
    /// The business days whose counter locks the write holds (those of its batch).
    fn days(&self) -> &[NaiveDate];

    /// Records whether the write's counters were applied: `true` removes its
    /// uncounted marks; `false` keeps them, so statistics read its days from detail
    /// until the counter repair recounts them. Releases the locks either way. Never
    /// fails: when the store cannot be reached, the marks stay (which errs on the safe
    /// side) and the locks go with the connection.
    async fn settle(self: Box<Self>, applied: bool);
}

/// A day's counter lock, held exclusively while its counters are rebuilt.
#[async_trait]
pub trait CounterRecount: Send + Sync {
    /// Removes the days' uncounted marks (the rebuild counted every write they stand
    /// for) and releases the locks.
    ///
    /// # Errors
    ///
    /// A store error; the lock is released anyway and the marks stay.
    async fn finish(self: Box<Self>) -> Result<()>;

    /// Releases the locks and keeps the marks (nothing was recounted).
    async fn release(self: Box<Self>) {}
}

/// The length of the slots of [`EventStore::quarter_sums`], in seconds.
pub const QUARTER: i64 = 900;

/// The first instant of the quarter of an hour (UTC) that `at` is in.
pub fn quarter_of(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp().div_euclid(QUARTER) * QUARTER, 0).unwrap_or(at)
}

/// Several days' counter locks, each taken on its own.
struct Recounts(Vec<Box<dyn CounterRecount>>);

#[async_trait]
impl CounterRecount for Recounts {
    async fn release(self: Box<Self>) {
        for recount in self.0 {
            recount.release().await;
        }
    }

    async fn finish(self: Box<Self>) -> Result<()> {
        let mut first_error = None;
        for recount in self.0 {
            if let Err(error) = recount.finish().await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// An event the store refused for good (see [`EventStore::dead_letter`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// The event's id.
    pub event_id: uuid::Uuid,
    /// The event's name.
    pub event: String,
    /// When it was set aside.
    pub dead_lettered_at: DateTime<Utc>,
    /// Why the store refused it.
    pub reason: String,
    /// The whole event as JSON (the envelope of SPEC §3).
    pub envelope: String,
}

/// A dirty business day (see [`EventStore::dirty_days`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyDay {
    /// The day.
    pub day: NaiveDate,
    /// The marks of the writes that made it dirty.
    pub marks: Vec<u64>,
    /// Whether a write to it has counters not known to be applied.
    pub uncounted: bool,
}

/// Daily statistics, kept forever (SPEC §7).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// Replaces the statistics of one business day (totals and per agent, sums and
    /// distributions), atomically.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn put_day(&self, date: NaiveDate, summary: &DaySummary) -> Result<()>;

    /// The totals of every day of `range` that has statistics, in date order.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn days(&self, range: DateRange) -> Result<Vec<(NaiveDate, Sums)>>;

    /// Per-agent sums of each day of `range` that has statistics.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn agent_days(
        &self,
        range: DateRange,
    ) -> Result<BTreeMap<NaiveDate, BTreeMap<String, Sums>>>;

    /// The distributions kept with the statistics of each day of `range` that has
    /// statistics: for all events, and per agent when `per_agent` (otherwise the
    /// agents are left empty).
    ///
    /// # Errors
    ///
    /// A store error.
    async fn sketch_days(
        &self,
        range: DateRange,
        per_agent: bool,
    ) -> Result<BTreeMap<NaiveDate, DaySketches>>;

    /// Claims this interval's run of the scheduled `jobs` for the caller, across every
    /// process on these stores: `true` (and the start recorded) unless a run of them
    /// started less than `within` ago, by the clock of the store. How several
    /// instances run the scheduled jobs once per interval between them instead of once
    /// each.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn claim_run(&self, jobs: &str, within: std::time::Duration) -> Result<bool>;

    /// Takes the lock of a scheduled job, if no other process holds it. The job runs
    /// while the lock is held; the lock is given back by [`JobLock::release`], or when
    /// the process dies.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn try_lock(&self, job: &str) -> Result<Option<Box<dyn JobLock>>>;
}

/// A scheduled job's lock, held while the job runs.
#[async_trait]
pub trait JobLock: Send + Sync {
    /// Gives the lock back.
    async fn release(self: Box<Self>);
}

/// Real-time counters (SPEC §7): derived data, rebuilt from the stores when lost.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// Applies what one flush adds.
    ///
    /// # Errors
    ///
    /// A store error; the counters may then be partly applied and are repaired by a
    /// rebuild.
    async fn apply(&self, batch: &CounterBatch) -> Result<()>;

    /// The sums of each bucket, in the order asked (empty sums where there are none).
    ///
    /// # Errors
    ///
    /// A store error.
    async fn read(&self, buckets: &[Bucket]) -> Result<Vec<Sums>>;

    /// Replaces one bucket's sums, to repair it from statistics.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn replace(&self, bucket: &Bucket, sums: &Sums) -> Result<()>;

    /// How many sessions are active: started, not ended, and seen at or after
    /// `idle_cutoff`.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn active_sessions(&self, idle_cutoff: DateTime<Utc>) -> Result<u64>;

    /// How many agents are online (logged in, last status not `offline`).
    ///
    /// # Errors
    ///
    /// A store error.
    async fn online_agents(&self) -> Result<u64>;

    /// Every agent's sums for a period.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn read_agents(&self, period: Period) -> Result<BTreeMap<String, Sums>>;

    /// The sums of each bucket, in the order asked, when the counters are whole: shared
    /// by every writer (not in-process counters, which another process never sees)
    /// and intact (not lost since the last rebuild), checked atomically with the read.
    /// `None` otherwise: the caller reads detail instead.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn read_whole(&self, buckets: &[Bucket]) -> Result<Option<Vec<Sums>>> {
        let _ = buckets;
        Ok(None)
    }

    /// Every agent's sums for a period, when the counters are whole (as
    /// [`CounterStore::read_whole`]).
    ///
    /// # Errors
    ///
    /// A store error.
    async fn read_agents_whole(&self, period: Period) -> Result<Option<BTreeMap<String, Sums>>> {
        let _ = period;
        Ok(None)
    }

    /// Whether the counters are intact: rebuilt at least once and not lost since (a
    /// Redis restart or flush; a new process for in-process counters). Read-only.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn intact(&self) -> Result<bool>;

    /// Starts a rebuild after a loss; returns its token for
    /// [`CounterStore::finish_rebuild`].
    ///
    /// # Errors
    ///
    /// A store error.
    async fn begin_rebuild(&self) -> Result<String>;

    /// Marks the counters intact, if nothing was lost since the rebuild with this
    /// token began. Returns whether it did.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn finish_rebuild(&self, token: &str) -> Result<bool>;
}

/// The stores a service runs on, in one bag: the tracker writes to `events`,
/// `counters` and `spill`; statistics and the jobs read `events`, `stats` and
/// `counters`.
#[derive(Clone)]
pub struct Stores {
    /// Event detail: the source of truth.
    pub events: Arc<dyn EventStore>,
    /// Daily statistics (the same database as `events` in a service).
    pub stats: Arc<dyn StatsStore>,
    /// Real-time counters.
    pub counters: Arc<dyn CounterStore>,
    /// Where batches go while the event store cannot take them; without one, the
    /// tracker holds them and `track()` refuses events once its buffer is full.
    pub spill: Option<Arc<dyn SpillBuffer>>,
}

impl Stores {
    /// One database for event detail and statistics, with `counters` and no spill
    /// buffer.
    pub fn new<D>(database: Arc<D>, counters: Arc<dyn CounterStore>) -> Stores
    where
        D: EventStore + StatsStore + 'static,
    {
        Stores {
            events: database.clone(),
            stats: database,
            counters,
            spill: None,
        }
    }

    /// The same stores with a spill buffer.
    pub fn with_spill(self, spill: Arc<dyn SpillBuffer>) -> Stores {
        Stores {
            spill: Some(spill),
            ..self
        }
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("spill", &self.spill.is_some())
            .finish_non_exhaustive()
    }
}

/// Events kept aside while the event store is down (SPEC §8).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SpillBuffer: Send + Sync {
    /// Appends events.
    ///
    /// # Errors
    ///
    /// A store error; nothing was appended then.
    async fn push(&self, events: &[Event]) -> Result<()>;

    /// Takes up to `max` of the oldest events for draining. They stay claimed, not
    /// removed, until [`SpillBuffer::ack`]: a process that dies in between loses
    /// nothing, and a later claim returns them again.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn claim(&self, max: usize) -> Result<Option<SpillClaim>>;

    /// Removes claimed events once they are stored.
    ///
    /// # Errors
    ///
    /// A store error; the events stay claimed then and will be returned again (storing
    /// them twice is harmless: inserts are idempotent).
    async fn ack(&self, claim: &SpillClaim) -> Result<()>;

    /// Gives a claim back at once, as if its lease had run out: its events are claimed
    /// again by the next claim, instead of waiting out the lease (a drainer whose store
    /// write failed). By default nothing: the lease runs out.
    ///
    /// # Errors
    ///
    /// A store error; the lease runs out then.
    async fn release(&self, claim: &SpillClaim) -> Result<()> {
        let _ = claim;
        Ok(())
    }

    /// How many events are waiting, claimed ones included.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn len(&self) -> Result<u64>;

    /// Whether no event is waiting.
    ///
    /// # Errors
    ///
    /// A store error.
    async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }
}

/// Events claimed from a [`SpillBuffer`].
#[derive(Debug, Clone, PartialEq)]
pub struct SpillClaim {
    /// The backend's handle for this claim.
    pub token: String,
    /// The events, oldest first.
    pub events: Vec<Event>,
}
