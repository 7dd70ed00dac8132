//! The scheduled jobs of the seeds' aggregator: refresh daily statistics (today,
//! yesterday, and any day that received late events), finalize days once their last
//! events are in, apply retention, prepare the event store ahead, and repair the
//! real-time counters from event detail.
//!
//! Every job is idempotent and runs in one process at a time: it takes its lock from
//! the statistics store (a PostgreSQL advisory lock) and skips its run when another
//! process holds it.

use std::future::Future;

use analytics_core::Result;
use analytics_core::metrics::Sums;
use analytics_core::store::{Bucket, Period};
use analytics_core::time::{DateRange, YearMonth};
use chrono::{NaiveDate, TimeDelta};

use crate::Stats;

/// What a job run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// The job ran; the number is what it worked on (days, buckets, events).
    Ran(u64),
    /// Another process holds the job's lock.
    Skipped,
}

/// The scheduled jobs.
#[derive(Debug, Clone)]
pub struct Jobs {
    stats: Stats,
}

impl Jobs {
    /// The jobs over the stores of `stats`.
    pub fn new(stats: Stats) -> Jobs {
        Jobs { stats }
    }

    /// Runs `job` under the lock named `name`, or skips it.
    async fn locked<F, Fut>(&self, name: &str, job: F) -> Result<JobOutcome>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<u64>>,
    {
        let Some(lock) = self.stats.stores.stats.try_lock(name).await? else {
            tracing::debug!(job = name, "held by another process; skipped");
            return Ok(JobOutcome::Skipped);
        };
        let result = job().await;
        lock.release().await;
        match &result {
            Ok(n) => tracing::debug!(job = name, n, "job done"),
            Err(error) => tracing::warn!(job = name, %error, "job failed"),
        }
        result.map(JobOutcome::Ran)
    }

    /// Re-aggregates every dirty day (today, yesterday until its last events are in,
    /// days that received late events) from event detail. Returns the days aggregated.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn refresh(&self) -> Result<JobOutcome> {
        self.locked("refresh", || self.aggregate_dirty(None)).await
    }

    /// Aggregates the dirty days (before `before`, when given) and marks each clean at
    /// the version read before aggregating it.
    async fn aggregate_dirty(&self, before: Option<NaiveDate>) -> Result<u64> {
        let stores = &self.stats.stores;
        let mut days = 0;
        for (day, version) in stores.events.dirty_days().await? {
            if before.is_some_and(|before| day >= before) {
                continue;
            }
            let summary = stores
                .events
                .summarize(self.stats.config.calendar.day_window(day))
                .await?;
            stores.stats.put_day(day, &summary).await?;
            stores.events.clean_day(day, version).await?;
            days += 1;
        }
        Ok(days)
    }

    /// Re-aggregates every day of `range` from event detail, dirty or not (`analytics
    /// aggregate`). Days marked dirty are cleaned at the version read before. Returns
    /// the days aggregated.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn aggregate_days(&self, range: DateRange) -> Result<JobOutcome> {
        self.locked("refresh", || async {
            let stores = &self.stats.stores;
            let dirty: std::collections::BTreeMap<NaiveDate, u64> =
                stores.events.dirty_days().await?.into_iter().collect();
            for day in range.iter() {
                let summary = stores
                    .events
                    .summarize(self.stats.config.calendar.day_window(day))
                    .await?;
                stores.stats.put_day(day, &summary).await?;
                if let Some(version) = dirty.get(&day) {
                    stores.events.clean_day(day, *version).await?;
                }
            }
            Ok(range.len() as u64)
        })
        .await
    }

    /// Drops event detail older than the retention window, after making sure the days
    /// it drops have final statistics. Returns the events dropped.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn retention(&self) -> Result<JobOutcome> {
        self.locked("retention", || async {
            let retention = TimeDelta::days(i64::from(self.stats.config.retention_days));
            let cutoff = self.stats.today() - retention;
            self.aggregate_dirty(Some(cutoff)).await?;
            let dropped = self
                .stats
                .stores
                .events
                .purge_before(self.stats.config.calendar.day_start(cutoff))
                .await?;
            Ok(dropped)
        })
        .await
    }

    /// Prepares the event store for yesterday through `days_ahead` days from today.
    /// Returns the days prepared.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn prepare(&self) -> Result<JobOutcome> {
        self.locked("prepare", || async {
            let today = self.stats.today();
            let ahead = TimeDelta::days(i64::from(self.stats.config.days_ahead));
            let range = DateRange::new(today - TimeDelta::days(1), today + ahead)?;
            self.stats.stores.events.prepare_days(range).await?;
            Ok(range.len() as u64)
        })
        .await
    }

    /// After the counters lost their data (a Redis restart or flush; a new process for
    /// in-process counters), makes the daily and monthly counters of today and
    /// yesterday (and their agents) equal to what event detail and daily statistics
    /// say, replacing the buckets that differ. While the counters are intact it changes
    /// nothing: replacing live counters would race with the increments of flushes in
    /// flight (missed increments are retried by the tracker instead). Hourly counters
    /// are not repaired (nothing stores hours; they expire in two days). Returns the
    /// buckets replaced.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn repair_counters(&self) -> Result<JobOutcome> {
        self.locked("counters", || async {
            let stores = &self.stats.stores;
            if stores.counters.check_intact().await? {
                return Ok(0);
            }
            tracing::info!("rebuilding today's and yesterday's counters from stored events (first run, or the counters lost their data)");
            let calendar = &self.stats.config.calendar;
            let today = self.stats.today();
            let mut replaced = 0;
            let mut months = Vec::new();
            for day in [today - TimeDelta::days(1), today] {
                let truth = stores.events.summarize(calendar.day_window(day)).await?;
                replaced += self
                    .repair(Period::Day(day), &truth.totals, &truth.agents)
                    .await?;
                let month = YearMonth::of(day);
                if !months.contains(&month) {
                    months.push(month);
                }
            }
            for month in months {
                let totals = self.stats.month_sums(month).await?;
                let agents = self.stats.agent_sums(month.days()).await?;
                replaced += self.repair(Period::Month(month), &totals, &agents).await?;
            }
            Ok(replaced)
        })
        .await
    }

    /// Replaces the buckets of `period` that differ from the truth.
    async fn repair(
        &self,
        period: Period,
        totals: &Sums,
        agents: &std::collections::BTreeMap<String, Sums>,
    ) -> Result<u64> {
        let counters = &self.stats.stores.counters;
        let mut replaced = 0;
        let all = Bucket::all(period);
        if counters.read(std::slice::from_ref(&all)).await?.first() != Some(totals) {
            counters.replace(&all, totals).await?;
            replaced += 1;
        }
        let counted = counters.read_agents(period).await?;
        let empty = Sums::new();
        let every_agent: std::collections::BTreeSet<&String> =
            counted.keys().chain(agents.keys()).collect();
        for agent in every_agent {
            let truth = agents.get(agent).unwrap_or(&empty);
            if counted.get(agent).unwrap_or(&empty) != truth {
                counters
                    .replace(&Bucket::agent(period, agent.clone()), truth)
                    .await?;
                replaced += 1;
            }
        }
        Ok(replaced)
    }

    /// Runs every job every `every`, the first time `every` from now, until `stop`
    /// completes, logging failures (a failed run is tried again at the next tick).
    pub async fn run_periodically(
        &self,
        every: std::time::Duration,
        stop: impl Future<Output = ()>,
    ) {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = ticker.tick() => {
                    if let Err(error) = self.run_all().await {
                        tracing::warn!(%error, "scheduled jobs failed; will run again");
                    }
                }
            }
        }
    }

    /// Runs every job once: prepare, refresh, repair the counters, retention.
    ///
    /// # Errors
    ///
    /// The first job that failed; the ones after it did not run.
    pub async fn run_all(&self) -> Result<()> {
        self.prepare().await?;
        self.refresh().await?;
        self.repair_counters().await?;
        self.retention().await?;
        Ok(())
    }
}
