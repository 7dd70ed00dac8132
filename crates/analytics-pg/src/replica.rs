//! Statistics reads from a streaming replica (`DATABASE_READ_URL`), exact.
//!
//! [`ReplicaReads`] is the event and statistics store that statistics and the jobs use
//! when a replica is configured: writes, locks and claims go to the primary; a read
//! goes to the replica once the replica has replayed the primary's WAL up to where it
//! was when the read began (`pg_current_wal_insert_lsn()` on the primary, then
//! `pg_last_wal_replay_lsn()` on the replica, waiting up to a bound), and to the
//! primary otherwise. Whatever was committed before a question was asked is therefore
//! in the answer from either, so an answer from the replica is the primary's answer of
//! a moment at or after the question — the same guarantee reading the primary gives.
//! In particular the dirty days (what a day is read from) and the daily statistics
//! are read from one consistent state, and the refresh job removes only the marks it
//! read, so marks read from a replica are never more than the primary holds.
//!
//! A replica that fails — unreachable, a read cancelled by recovery, not a replica of
//! this primary — costs at most the wait: the read goes to the primary, and the
//! replica is left alone for [`REPLICA_REST`] before it is tried again.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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

/// How long a replica that failed is left alone.
pub const REPLICA_REST: Duration = Duration::from_secs(5);

/// What decides where reads go, shared with the sessions export's task.
#[derive(Debug)]
struct Route {
    primary: Arc<PgStore>,
    replica: Arc<PgStore>,
    wait: Duration,
    /// Until when the replica is left alone after a failure.
    resting_until: Mutex<Option<Instant>>,
    /// Whether the replica is a standby of this primary (same system identifier),
    /// once known.
    same_cluster: tokio::sync::OnceCell<bool>,
    from_replica: AtomicU64,
    from_primary: AtomicU64,
}

impl Route {
    fn rest(&self) {
        *self
            .resting_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + REPLICA_REST);
    }

    fn resting(&self) -> bool {
        self.resting_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Whether the replica has replayed the primary's WAL as of now, waiting up to
    /// `wait` in all. A replica that does not answer, is not a standby, or is not a
    /// standby of this primary has not (and the first two rest it).
    async fn caught_up(&self) -> bool {
        if self.resting() {
            return false;
        }
        let answered = std::sync::atomic::AtomicBool::new(false);
        match tokio::time::timeout(self.wait, self.check(&answered)).await {
            Ok(Ok(caught_up)) => caught_up,
            Ok(Err(())) => {
                self.rest();
                false
            }
            // Lagging (it answered, behind): the primary answers this read, the next
            // one tries again. Silent all along (unreachable, connecting): rest it.
            Err(_) => {
                if !answered.load(Ordering::Relaxed) {
                    self.rest();
                }
                false
            }
        }
    }

    async fn check(&self, answered: &std::sync::atomic::AtomicBool) -> Result<bool, ()> {
        let same = self
            .same_cluster
            .get_or_try_init(|| async {
                let id = "SELECT system_identifier::text FROM pg_control_system()";
                let primary: String = sqlx::query_scalar(id)
                    .fetch_one(self.primary.pool())
                    .await
                    .map_err(|_| ())?;
                let replica: String = sqlx::query_scalar(id)
                    .fetch_one(self.replica.pool())
                    .await
                    .map_err(|_| ())?;
                if primary != replica {
                    tracing::error!(
                        "DATABASE_READ_URL is not a replica of DATABASE_URL (another system \
                         identifier); questions are read from the primary"
                    );
                }
                Ok::<_, ()>(primary == replica)
            })
            .await?;
        if !*same {
            return Ok(false);
        }
        // The insert position: past every commit the primary shows, whether or not its
        // WAL is flushed yet (`synchronous_commit = off` transactions included).
        let target: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
            .fetch_one(self.primary.pool())
            .await
            .map_err(|_| ())?;
        loop {
            let replayed: Option<bool> =
                sqlx::query_scalar("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn")
                    .bind(&target)
                    .fetch_one(self.replica.pool())
                    .await
                    .map_err(|_| ())?;
            answered.store(true, Ordering::Relaxed);
            match replayed {
                Some(true) => return Ok(true),
                // Not a standby (promoted, or another server): never answers.
                None => return Err(()),
                Some(false) => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    }

    /// `read` of the replica once it has caught up, else (or if that read fails) of
    /// the primary.
    async fn read<'a, T, F, Fut>(&'a self, read: F) -> crate::Result<T>
    where
        F: Fn(&'a PgStore) -> Fut,
        Fut: Future<Output = crate::Result<T>> + 'a,
    {
        if self.caught_up().await {
            match read(&self.replica).await {
                Ok(answer) => {
                    self.from_replica.fetch_add(1, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(error) => {
                    tracing::warn!(%error, "a read from the replica failed; reading from the primary");
                    self.rest();
                }
            }
        }
        self.from_primary.fetch_add(1, Ordering::Relaxed);
        read(&self.primary).await
    }
}

/// The primary for writes, and a replica for reads that it has caught up with.
#[derive(Debug)]
pub struct ReplicaReads {
    route: Arc<Route>,
}

impl ReplicaReads {
    /// Writes to `primary`, reads from `replica` once it has caught up (waiting up to
    /// `wait` for it).
    pub fn new(primary: Arc<PgStore>, replica: Arc<PgStore>, wait: Duration) -> ReplicaReads {
        ReplicaReads {
            route: Arc::new(Route {
                primary,
                replica,
                wait,
                resting_until: Mutex::new(None),
                same_cluster: tokio::sync::OnceCell::new(),
                from_replica: AtomicU64::new(0),
                from_primary: AtomicU64::new(0),
            }),
        }
    }

    /// How many reads the replica answered, and how many the primary (the replica had
    /// not caught up in time, failed, or is resting).
    pub fn reads(&self) -> (u64, u64) {
        (
            self.route.from_replica.load(Ordering::Relaxed),
            self.route.from_primary.load(Ordering::Relaxed),
        )
    }

    fn primary(&self) -> &PgStore {
        &self.route.primary
    }
}

#[async_trait]
impl EventStore for ReplicaReads {
    async fn write(&self, events: &[Event]) -> analytics_core::Result<Written> {
        Ok(self.primary().write(events).await?)
    }

    async fn quarter_sums(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> analytics_core::Result<Vec<(DateTime<Utc>, analytics_core::metrics::Sums)>> {
        Ok(self
            .route
            .read(|store| store.tables().quarter_sums(from, to))
            .await?)
    }

    /// From the primary: the counter repair writes what it reads into the counters.
    async fn marks(
        &self,
        from: DateTime<Utc>,
    ) -> analytics_core::Result<analytics_core::counters::CounterBatch> {
        Ok(self.primary().tables().marks(from).await?)
    }

    async fn summarize(&self, day: DayWindow) -> analytics_core::Result<DaySummary> {
        Ok(self.route.read(|store| store.summarize(day)).await?)
    }

    async fn sketches(&self, day: DayWindow) -> analytics_core::Result<DaySketches> {
        Ok(self.route.read(|store| store.sketches(day)).await?)
    }

    fn sessions(&self, query: SessionQuery) -> SessionStream {
        let (tx, rx) = tokio::sync::mpsc::channel(SESSION_READ_AHEAD);
        let route = self.route.clone();
        tokio::spawn(async move {
            let store = if route.caught_up().await {
                route.from_replica.fetch_add(1, Ordering::Relaxed);
                route.replica.clone()
            } else {
                route.from_primary.fetch_add(1, Ordering::Relaxed);
                route.primary.clone()
            };
            forward_sessions(store.sessions(query), tx).await;
        });
        session_stream(rx)
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>) -> analytics_core::Result<u64> {
        Ok(self.primary().purge_before(cutoff).await?)
    }

    async fn dirty_days(&self) -> analytics_core::Result<Vec<DirtyDay>> {
        Ok(self.route.read(|store| store.dirty_days()).await?)
    }

    async fn clean_day(&self, date: NaiveDate, marks: &[u64]) -> analytics_core::Result<()> {
        Ok(self.primary().clean_day(date, marks).await?)
    }

    async fn uncounted_days(&self) -> analytics_core::Result<Vec<NaiveDate>> {
        Ok(self.primary().uncounted_days().await?)
    }

    async fn lock_counters(
        &self,
        date: NaiveDate,
    ) -> analytics_core::Result<Box<dyn CounterRecount>> {
        Ok(self.primary().lock_counters(date).await?)
    }

    async fn lock_counters_of(
        &self,
        days: &[NaiveDate],
    ) -> analytics_core::Result<Box<dyn CounterRecount>> {
        Ok(self.primary().lock_counters_of(days).await?)
    }

    async fn dead_letter(
        &self,
        events: &[Event],
        reason: &str,
        at: DateTime<Utc>,
    ) -> analytics_core::Result<()> {
        Ok(self.primary().dead_letter(events, reason, at).await?)
    }

    async fn dead_letters(&self, limit: usize) -> analytics_core::Result<Vec<DeadLetter>> {
        Ok(self.primary().dead_letters(limit).await?)
    }

    async fn prepare_days(&self, range: DateRange) -> analytics_core::Result<()> {
        Ok(self.primary().prepare_days(range).await?)
    }
}

#[async_trait]
impl StatsStore for ReplicaReads {
    async fn put_day(&self, date: NaiveDate, summary: &DaySummary) -> analytics_core::Result<()> {
        Ok(self.primary().put_day(date, summary).await?)
    }

    async fn days(&self, range: DateRange) -> analytics_core::Result<Vec<(NaiveDate, Sums)>> {
        Ok(self.route.read(|store| store.tables().days(range)).await?)
    }

    async fn agent_days(
        &self,
        range: DateRange,
    ) -> analytics_core::Result<BTreeMap<NaiveDate, BTreeMap<String, Sums>>> {
        Ok(self
            .route
            .read(|store| store.tables().agent_days(range))
            .await?)
    }

    async fn sketch_days(
        &self,
        range: DateRange,
        per_agent: bool,
    ) -> analytics_core::Result<BTreeMap<NaiveDate, DaySketches>> {
        Ok(self
            .route
            .read(|store| store.tables().sketch_days(range, per_agent))
            .await?)
    }

    async fn claim_run(&self, jobs: &str, within: Duration) -> analytics_core::Result<bool> {
        Ok(self.primary().claim_run(jobs, within).await?)
    }

    async fn try_lock(&self, job: &str) -> analytics_core::Result<Option<Box<dyn JobLock>>> {
        Ok(self.primary().try_lock(job).await?)
    }
}
