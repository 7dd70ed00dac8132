//! The scheduled jobs of the seeds' aggregator: refresh daily statistics (today,
//! yesterday, and any day that received late events), finalize days once their last
//! events are in, apply retention, prepare the event store ahead, and repair the
//! real-time counters from event detail.
//!
//! Every job is idempotent and runs in one process at a time: it takes its lock from
//! the statistics store (a PostgreSQL advisory lock) and skips its run when another
//! process holds it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use analytics_core::Result;
use analytics_core::counters::{Bucket, Period};
use analytics_core::metrics::Sums;
use analytics_core::time::{DateRange, DayHour, YearMonth};
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

/// How often one job ran in this process, was skipped because another process held
/// its lock, or failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobRuns {
    /// Runs that completed.
    pub ran: u64,
    /// Runs skipped: another process held the job's lock.
    pub skipped: u64,
    /// Runs that failed (tried again at the next tick).
    pub failed: u64,
}

/// The scheduled jobs.
#[derive(Debug, Clone)]
pub struct Jobs {
    stats: Stats,
    runs: Arc<Mutex<BTreeMap<&'static str, JobRuns>>>,
}

impl Jobs {
    /// The jobs over the stores of `stats`.
    pub fn new(stats: Stats) -> Jobs {
        Jobs {
            stats,
            runs: Arc::default(),
        }
    }

    /// How often each job ran, was skipped or failed in this process (shared by the
    /// clones of these jobs), by job name.
    pub fn runs(&self) -> BTreeMap<&'static str, JobRuns> {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn count(&self, name: &'static str, outcome: impl FnOnce(&mut JobRuns)) {
        outcome(
            self.runs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(name)
                .or_default(),
        );
    }

    /// Runs `job` under the lock named `name`, or skips it.
    async fn locked<F, Fut>(&self, name: &'static str, job: F) -> Result<JobOutcome>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<u64>>,
    {
        let Some(lock) = self.stats.stores.stats.try_lock(name).await? else {
            tracing::debug!(job = name, "held by another process; skipped");
            self.count(name, |r| r.skipped += 1);
            return Ok(JobOutcome::Skipped);
        };
        let result = job().await;
        lock.release().await;
        match &result {
            Ok(n) => {
                tracing::debug!(job = name, n, "job done");
                self.count(name, |r| r.ran += 1);
            }
            Err(error) => {
                tracing::warn!(job = name, %error, "job failed");
                self.count(name, |r| r.failed += 1);
            }
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

    /// Aggregates the dirty days (before `before`, when given) and removes, for each,
    /// exactly the marks read before summarizing it: a write that commits during the
    /// run (even one whose mark is older than a mark read) keeps its day dirty.
    ///
    /// A day's AI funnel depends on the next days too (a customer coming back within
    /// the return window), so the days before each dirty day that the window reaches
    /// and that are not dirty themselves are summarized again as well (they are not
    /// marked clean: they were not dirty).
    async fn aggregate_dirty(&self, before: Option<NaiveDate>) -> Result<u64> {
        let stores = &self.stats.stores;
        let dirty_days = stores.events.dirty_days().await?;
        let dirty: std::collections::BTreeSet<NaiveDate> =
            dirty_days.iter().map(|d| d.day).collect();
        let first_kept = self.first_kept_day();
        let mut days = 0;
        for dirty_day in dirty_days {
            if before.is_some_and(|before| dirty_day.day >= before) {
                continue;
            }
            let summary = self.day_summary(dirty_day.day).await?;
            stores.stats.put_day(dirty_day.day, &summary).await?;
            stores
                .events
                .clean_day(dirty_day.day, &dirty_day.marks)
                .await?;
            days += 1;
            for back in 1..=self.stats.config.return_days() {
                let previous = dirty_day.day - TimeDelta::days(back);
                if dirty.contains(&previous) || previous < first_kept {
                    continue;
                }
                let summary = self.day_summary(previous).await?;
                stores.stats.put_day(previous, &summary).await?;
            }
        }
        Ok(days)
    }

    /// The first day whose event detail retention keeps.
    fn first_kept_day(&self) -> NaiveDate {
        self.stats.today() - TimeDelta::days(i64::from(self.stats.config.retention_days))
    }

    /// A day's statistics from event detail: its sums, per agent, and its AI funnel.
    async fn day_summary(&self, day: NaiveDate) -> Result<analytics_core::metrics::DaySummary> {
        use futures_util::StreamExt as _;
        let mut summary = self
            .stats
            .stores
            .events
            .summarize(self.stats.config.calendar.day_window(day))
            .await?;
        let mut funnel = analytics_core::metrics::FunnelCounts::default();
        let mut sessions = self.stats.sessions(DateRange::day(day));
        while let Some(session) = sessions.next().await {
            funnel.record(&session?);
        }
        funnel.store_in(&mut summary.totals);
        Ok(summary)
    }

    /// Re-aggregates every day of `range` from event detail, dirty or not (`analytics
    /// aggregate`). Days marked dirty lose the marks read before they were summarized.
    /// Returns the days aggregated.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn aggregate_days(&self, range: DateRange) -> Result<JobOutcome> {
        self.locked("refresh", || async {
            let stores = &self.stats.stores;
            let dirty: std::collections::BTreeMap<NaiveDate, Vec<u64>> = stores
                .events
                .dirty_days()
                .await?
                .into_iter()
                .map(|d| (d.day, d.marks))
                .collect();
            for day in range.iter() {
                let summary = self.day_summary(day).await?;
                stores.stats.put_day(day, &summary).await?;
                if let Some(marks) = dirty.get(&day) {
                    stores.events.clean_day(day, marks).await?;
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

    /// Makes the counters whole again, exactly, while writers keep writing:
    ///
    /// - after the counters lost their data (a Redis restart or flush; a new process
    ///   for in-process counters), today and yesterday are rebuilt, then the counters
    ///   are marked intact — unless they were lost again meanwhile;
    /// - a day left uncounted (a write whose counters failed, or whose process died
    ///   after its commit) is rebuilt when recent or ahead of today (events may be
    ///   dated five minutes ahead), and just marked counted otherwise (older days'
    ///   counters are never read).
    ///
    /// A day is rebuilt under its counter lock ([`EventStore::lock_counters`]): no
    /// write to it is between its commit and its counters meanwhile, so detail and
    /// counters describe the same writes, and the day's buckets (all events and each
    /// agent, and each of its hours) are replaced with what detail says. Then, with
    /// every day from the first recent one rebuilt through tomorrow locked together
    /// ([`EventStore::lock_counters_of`]), the latest word on each session and agent
    /// since that day is read from detail and applied ([`EventStore::marks`]: the
    /// counters keep the newer of two words on an agent, and a session ended in those
    /// days stays ended). Months are rebuilt after a loss from daily statistics and
    /// detail, but no answer reads them (months are sums of days). Returns the buckets
    /// replaced.
    ///
    /// [`EventStore::lock_counters`]: analytics_core::store::EventStore::lock_counters
    /// [`EventStore::lock_counters_of`]: analytics_core::store::EventStore::lock_counters_of
    /// [`EventStore::marks`]: analytics_core::store::EventStore::marks
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn repair_counters(&self) -> Result<JobOutcome> {
        self.locked("counters", || async {
            let stores = &self.stats.stores;
            let today = self.stats.today();
            let recent_from = self.stats.recent_from();
            let rebuild = if stores.counters.intact().await? {
                None
            } else {
                tracing::info!("rebuilding today's and yesterday's counters from stored events (first run, or the counters lost their data)");
                Some(stores.counters.begin_rebuild().await?)
            };
            let mut days: std::collections::BTreeSet<NaiveDate> =
                stores.events.uncounted_days().await?.into_iter().collect();
            if rebuild.is_some() {
                // Tomorrow too: events may be dated up to five minutes ahead.
                days.extend(recent_from.iter_days().take_while(|d| *d <= today + TimeDelta::days(1)));
            }
            let mut replaced = 0;
            for day in days.iter().copied() {
                let recount = stores.events.lock_counters(day).await?;
                // Recent days, and days after today (dated a few minutes ahead: they
                // become today), are rebuilt; older days' counters are never read.
                if day >= recent_from {
                    let truth = stores
                        .events
                        .summarize(self.stats.config.calendar.day_window(day))
                        .await?;
                    replaced += self
                        .repair(Period::Day(day), &truth.totals, &truth.agents)
                        .await?;
                    replaced += self.repair_hours(day).await?;
                }
                recount.finish().await?;
            }
            // Then the latest word on each session and agent since the first recent day
            // rebuilt, read from detail with every day from it to tomorrow locked
            // together (in order, as writes take them): no write of those days is
            // between its commit and its counters meanwhile, so what is applied is what
            // the counters would hold, and a session ended meanwhile is not brought back
            // by an older word on it.
            if let Some(first) = days.iter().copied().find(|day| *day >= recent_from) {
                let last = days
                    .iter()
                    .copied()
                    .max()
                    .unwrap_or(first)
                    .max(today + TimeDelta::days(1));
                let locked: Vec<NaiveDate> =
                    first.iter_days().take_while(|day| *day <= last).collect();
                let recount = stores.events.lock_counters_of(&locked).await?;
                let from = self.stats.config.calendar.day_start(first);
                let marks = stores.events.marks(from).await?;
                if !marks.is_empty() {
                    stores.counters.apply(&marks).await?;
                }
                // Nothing to clear: each day's marks were cleared by its rebuild above,
                // and a write that came between left its own (it is counted).
                recount.release().await;
            }
            if let Some(token) = rebuild {
                let mut months = vec![YearMonth::of(recent_from)];
                if YearMonth::of(today) != months[0] {
                    months.push(YearMonth::of(today));
                }
                for month in months {
                    let totals = self.stats.month_sums(month).await?;
                    let agents = self.stats.agent_sums(month.days()).await?;
                    replaced += self.repair(Period::Month(month), &totals, &agents).await?;
                }
                if !stores.counters.finish_rebuild(&token).await? {
                    tracing::warn!("the counters were lost again during their rebuild; rebuilding at the next run");
                }
            }
            Ok(replaced)
        })
        .await
    }

    /// Replaces the hour buckets of `day` that differ from its detail (the real-time
    /// view reads them when the counters are whole), read in one go.
    async fn repair_hours(&self, day: NaiveDate) -> Result<u64> {
        let calendar = &self.stats.config.calendar;
        let stores = &self.stats.stores;
        let window = calendar.day_window(day);
        let truth = self
            .stats
            .hours_from_detail(window.start, window.end)
            .await?;
        let hours: Vec<DayHour> = (0..24)
            .map(|hour| DayHour { date: day, hour })
            .filter(|hour| {
                let window = calendar.hour_window(*hour);
                window.start < window.end // not skipped by a DST change
            })
            .collect();
        let buckets: Vec<Bucket> = hours
            .iter()
            .map(|h| Bucket::all(Period::Hour(*h)))
            .collect();
        let counted = stores.counters.read(&buckets).await?;
        let empty = Sums::new();
        let mut replaced = 0;
        for ((hour, bucket), counted) in hours.iter().zip(&buckets).zip(&counted) {
            let truth = truth.get(hour).unwrap_or(&empty);
            if counted != truth {
                stores.counters.replace(bucket, truth).await?;
                replaced += 1;
            }
        }
        Ok(replaced)
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

    /// Runs every job about every `every` (each pause drawn between ¾ and 1¼ of it, so
    /// that several processes do not tick in lockstep), the first time about `every`
    /// from now, until `stop` completes, logging failures (a failed run is tried again
    /// at the next tick). Several processes on the same stores share the runs: a tick
    /// that comes less than [`SHARED_RUN`] of `every` after another process started
    /// the jobs skips them ([`StatsStore::claim_run`]), so they run about once per
    /// interval between all of them, not once per process.
    ///
    /// [`StatsStore::claim_run`]: analytics_core::store::StatsStore::claim_run
    pub async fn run_periodically(
        &self,
        every: std::time::Duration,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(spread(every)) => {
                    match self.stats.stores.stats.claim_run(SCHEDULED, every.mul_f64(SHARED_RUN)).await {
                        Ok(true) => {
                            if let Err(error) = self.run_all().await {
                                tracing::warn!(%error, "scheduled jobs failed; will run again");
                            }
                        }
                        Ok(false) => {
                            tracing::debug!("another process ran the jobs this interval; skipped");
                            for job in JOBS {
                                self.count(job, |r| r.skipped += 1);
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, "claiming the scheduled run failed; will try again");
                        }
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

/// The name under which the scheduled runs are claimed.
const SCHEDULED: &str = "scheduled";

/// The scheduled jobs by their lock names, as `run_all` runs them.
const JOBS: [&str; 4] = ["prepare", "refresh", "counters", "retention"];

/// The share of the interval within which another process's start of the jobs skips
/// a tick: below the shortest pause (¾), so that one process alone never skips.
pub const SHARED_RUN: f64 = 0.7;

/// `every` times a factor drawn from [0.75, 1.25).
fn spread(every: std::time::Duration) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    every.mul_f64(0.75 + (random % 1000) as f64 / 2000.0)
}
