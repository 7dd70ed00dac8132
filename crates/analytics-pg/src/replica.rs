//! Statistics reads from a streaming replica (`DATABASE_READ_URL`), exact.
//!
//! [`ReplicaReads`] is the event and statistics store that statistics and the jobs use
//! when a replica is configured: writes, locks and claims go to the primary; a read
//! goes to the replica once the replica has replayed the primary's WAL up to where it
//! was when the read began (`pg_current_wal_lsn()` on the primary, then
//! `pg_last_wal_replay_lsn()` on the replica, waiting up to a bound), and to the
//! primary otherwise. Whatever was committed before a question was asked is therefore
//! in the answer from either, so an answer from the replica is the primary's answer of
//! a moment at or after the question — the same guarantee reading the primary gives.
//! In particular the dirty days (what a day is read from) and the daily statistics
//! are read from one consistent state, and the refresh job removes only the marks it
//! read, so marks read from a replica are never more than the primary holds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use analytics_core::event::Event;
use analytics_core::metrics::{DaySummary, Sums};
use analytics_core::sketch::DaySketches;
use analytics_core::store::{
    CounterRecount, DeadLetter, DirtyDay, EventStore, JobLock, SESSION_READ_AHEAD, SessionQuery,
    SessionStream, StatsStore, Written, forward_sessions, session_stream,
};
use analytics_core::time::{DateRange, DayWindow};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use tokio::time::Instant;

use crate::store::PgStore;

/// How long a read waits for the replica to catch up before the primary answers it.
pub const REPLICA_WAIT: Duration = Duration::from_millis(200);

/// The primary for writes, and a replica for reads that it has caught up with.
#[derive(Debug)]
pub struct ReplicaReads {
    primary: Arc<PgStore>,
    replica: Arc<PgStore>,
    wait: Duration,
    from_replica: AtomicU64,
    from_primary: AtomicU64,
}

/// Whether `replica` has replayed the primary's WAL as of now, waiting up to `wait`.
/// A replica that does not answer, or is not a standby, has not.
async fn caught_up(primary: &PgStore, replica: &PgStore, wait: Duration) -> bool {
    let Ok(target) = sqlx::query_scalar::<_, String>("SELECT pg_current_wal_lsn()::text")
        .fetch_one(primary.pool())
        .await
    else {
        return false;
    };
    let deadline = Instant::now() + wait;
    loop {
        let replayed: Result<Option<bool>, _> =
            sqlx::query_scalar("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn")
                .bind(&target)
                .fetch_one(replica.pool())
                .await;
        match replayed {
            Ok(Some(true)) => return true,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            _ => return false,
        }
    }
}

impl ReplicaReads {
    /// Writes to `primary`, reads from `replica` once it has caught up (waiting up to
    /// `wait` for it).
    pub fn new(primary: Arc<PgStore>, replica: Arc<PgStore>, wait: Duration) -> ReplicaReads {
        ReplicaReads {
            primary,
            replica,
            wait,
            from_replica: AtomicU64::new(0),
            from_primary: AtomicU64::new(0),
        }
    }

    /// How many reads the replica answered, and how many the primary (the replica had
    /// not caught up in time, or did not answer).
    pub fn reads(&self) -> (u64, u64) {
        (
            self.from_replica.load(Ordering::Relaxed),
            self.from_primary.load(Ordering::Relaxed),
        )
    }

    /// The store that answers a read begun now.
    async fn reader(&self) -> &PgStore {
        if caught_up(&self.primary, &self.replica, self.wait).await {
            self.from_replica.fetch_add(1, Ordering::Relaxed);
            &self.replica
        } else {
            self.from_primary.fetch_add(1, Ordering::Relaxed);
            &self.primary
        }
    }
}

#[async_trait]
impl EventStore for ReplicaReads {
    async fn write(&self, events: &[Event]) -> analytics_core::Result<Written> {
        self.primary.write(events).await
    }

    async fn summarize(&self, day: DayWindow) -> analytics_core::Result<DaySummary> {
        self.reader().await.summarize(day).await
    }

    async fn sketches(&self, day: DayWindow) -> analytics_core::Result<DaySketches> {
        self.reader().await.sketches(day).await
    }

    fn sessions(&self, query: SessionQuery) -> SessionStream {
        let (tx, rx) = tokio::sync::mpsc::channel(SESSION_READ_AHEAD);
        let (primary, replica, wait) = (self.primary.clone(), self.replica.clone(), self.wait);
        tokio::spawn(async move {
            let store = if caught_up(&primary, &replica, wait).await {
                replica
            } else {
                primary
            };
            forward_sessions(store.sessions(query), tx).await;
        });
        session_stream(rx)
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>) -> analytics_core::Result<u64> {
        self.primary.purge_before(cutoff).await
    }

    async fn dirty_days(&self) -> analytics_core::Result<Vec<DirtyDay>> {
        self.reader().await.dirty_days().await
    }

    async fn clean_day(&self, date: NaiveDate, marks: &[u64]) -> analytics_core::Result<()> {
        self.primary.clean_day(date, marks).await
    }

    async fn uncounted_days(&self) -> analytics_core::Result<Vec<NaiveDate>> {
        self.primary.uncounted_days().await
    }

    async fn lock_counters(
        &self,
        date: NaiveDate,
    ) -> analytics_core::Result<Box<dyn CounterRecount>> {
        self.primary.lock_counters(date).await
    }

    async fn dead_letter(
        &self,
        events: &[Event],
        reason: &str,
        at: DateTime<Utc>,
    ) -> analytics_core::Result<()> {
        self.primary.dead_letter(events, reason, at).await
    }

    async fn dead_letters(&self, limit: usize) -> analytics_core::Result<Vec<DeadLetter>> {
        self.primary.dead_letters(limit).await
    }

    async fn prepare_days(&self, range: DateRange) -> analytics_core::Result<()> {
        self.primary.prepare_days(range).await
    }
}

#[async_trait]
impl StatsStore for ReplicaReads {
    async fn put_day(&self, date: NaiveDate, summary: &DaySummary) -> analytics_core::Result<()> {
        self.primary.put_day(date, summary).await
    }

    async fn days(&self, range: DateRange) -> analytics_core::Result<Vec<(NaiveDate, Sums)>> {
        self.reader().await.days(range).await
    }

    async fn agents(&self, range: DateRange) -> analytics_core::Result<BTreeMap<String, Sums>> {
        self.reader().await.agents(range).await
    }

    async fn agent_days(
        &self,
        range: DateRange,
    ) -> analytics_core::Result<BTreeMap<NaiveDate, BTreeMap<String, Sums>>> {
        self.reader().await.agent_days(range).await
    }

    async fn sketch_days(
        &self,
        range: DateRange,
        per_agent: bool,
    ) -> analytics_core::Result<BTreeMap<NaiveDate, DaySketches>> {
        self.reader().await.sketch_days(range, per_agent).await
    }

    async fn claim_run(&self, jobs: &str, within: Duration) -> analytics_core::Result<bool> {
        self.primary.claim_run(jobs, within).await
    }

    async fn try_lock(&self, job: &str) -> analytics_core::Result<Option<Box<dyn JobLock>>> {
        self.primary.try_lock(job).await
    }
}
