//! Business statistics over the storage traits of `analytics-core`: metrics for a day,
//! a date range and a month, the case study, per-agent and ticket figures, the
//! real-time view ([`Stats`]), and the scheduled jobs that keep daily statistics exact
//! ([`Jobs`]).
//!
//! # Where each day's figures come from
//!
//! Every day of a question is read from exactly one source, so no event is counted
//! twice and none is missed where two sources meet:
//!
//! - a day that is not **dirty** (no events were written since it was aggregated) is
//!   read from daily statistics;
//! - a dirty day — today, as events keep coming; yesterday until the refresh job has
//!   aggregated it after its last event; a day that just received a late event — is
//!   read from the real-time counters when it is recent (`RECENT_DAYS`) and the
//!   counters are **whole** for it, otherwise summed from event detail.
//!
//! The event store marks a day dirty in the same transaction that writes its events,
//! and the refresh job removes exactly the marks it read before summarizing the day,
//! so a write that commits during the job, in any order, leaves the day dirty.
//!
//! Counters are whole for a day when they are shared by every writer (Redis, not
//! in-process counters, which another process never sees), intact (not lost since
//! their last rebuild, checked atomically with the read), and no write to the day is
//! **uncounted** (committed, with its counters failed, timed out or lost with its
//! process). The counter repair rebuilds a day under the day's counter lock, which
//! waits for writes between their commit and their counters and holds new ones back,
//! so the rebuilt counters and detail describe the same writes.
#![deny(missing_docs)]

mod jobs;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use analytics_core::Result;
use analytics_core::case_study::CaseStudy;
use analytics_core::config::Config;
use analytics_core::counters::{Bucket, Period};
use analytics_core::event::Clock;
use analytics_core::metrics::{FunnelCounts, Sums};
use analytics_core::report::{
    AgentMetrics, AiFunnel, BusinessMetrics, CostPerResolution, TicketMetrics,
};
use analytics_core::sketch::{DaySketches, Sketches};
use analytics_core::store::{RETURN_WINDOW, SessionQuery, SessionStream, Stores};
use analytics_core::time::{Calendar, DateRange, DayHour, DayWindow, YearMonth};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

pub use jobs::{JobOutcome, JobRuns, Jobs, SHARED_RUN};

/// Dirty days this recent (today and yesterday) are read from the real-time counters;
/// older dirty days are summed from event detail.
pub const RECENT_DAYS: i64 = 2;

/// How statistics are computed.
#[derive(Debug, Clone)]
pub struct StatsConfig {
    /// The business calendar.
    pub calendar: Calendar,
    /// The money an AI-resolved session saves.
    pub cost: CostPerResolution,
    /// Days of event detail kept (SPEC §3).
    pub retention_days: u32,
    /// A session with no activity for this long no longer counts as active.
    pub session_idle: Duration,
    /// Days ahead for which the event store is prepared (partitions).
    pub days_ahead: u32,
    /// How long after a session its customer's next session counts as a return.
    pub return_window: TimeDelta,
}

impl StatsConfig {
    /// The settings of the service configuration.
    pub fn from_config(config: &Config) -> StatsConfig {
        StatsConfig {
            calendar: config.calendar(),
            cost: config.cost_per_resolution,
            retention_days: config.retention_days,
            session_idle: Duration::from_secs(30 * 60),
            days_ahead: 7,
            return_window: TimeDelta::from_std(config.return_window).unwrap_or(RETURN_WINDOW),
        }
    }

    /// How many days after a day can still change its AI funnel (a return within the
    /// window after its last session).
    pub fn return_days(&self) -> i64 {
        let day = TimeDelta::days(1);
        (self.return_window.num_seconds() + day.num_seconds() - 1) / day.num_seconds()
    }
}

/// One hour of the real-time view.
#[derive(Debug, Clone, PartialEq)]
pub struct HourFigures {
    /// The business day.
    pub date: NaiveDate,
    /// The hour, 0–23.
    pub hour: u8,
    /// Events in the hour.
    pub events: u64,
    /// Sessions started in the hour.
    pub sessions_started: u64,
}

/// The real-time view: today so far, this hour, the last 24 hours, and who is active.
#[derive(Debug, Clone, PartialEq)]
pub struct Realtime {
    /// When the view was taken.
    pub as_of: DateTime<Utc>,
    /// Today's business date.
    pub date: NaiveDate,
    /// Events recorded today, all kinds.
    pub events_today: u64,
    /// Today's counters: events by name (`custom` for custom ones) and the summed
    /// durations, by field name.
    pub today_counters: Sums,
    /// Today's metrics so far, without percentiles (null; `daily` of today has them).
    pub today: BusinessMetrics,
    /// This hour.
    pub this_hour: HourFigures,
    /// The last 24 hours, oldest first, this hour last.
    pub last_24_hours: Vec<HourFigures>,
    /// Sessions started, not ended, and active within the idle time.
    pub active_sessions: u64,
    /// Agents logged in and not offline.
    pub online_agents: u64,
}

/// The AI funnel of a range of days (SPEC §5, `GET /ai`).
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelReport {
    /// The first day.
    pub start: NaiveDate,
    /// The last day.
    pub end: NaiveDate,
    /// How long after a session its customer's next session counts as a return.
    pub return_window_hours: f64,
    /// The whole range.
    pub total: AiFunnel,
    /// Each day, in order.
    pub days: Vec<FunnelDay>,
}

/// The AI funnel of one day.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelDay {
    /// The business day.
    pub date: NaiveDate,
    /// Its figures.
    pub funnel: AiFunnel,
}

/// Business statistics: every question of SPEC §5–§6 and §9.
#[derive(Clone)]
pub struct Stats {
    stores: Stores,
    clock: Arc<dyn Clock>,
    config: StatsConfig,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How one day of a question is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Statistics,
    Counters,
    Detail,
}

impl Stats {
    /// Statistics over these stores, with "now" from `clock`.
    pub fn new(stores: Stores, clock: Arc<dyn Clock>, config: StatsConfig) -> Stats {
        Stats {
            stores,
            clock,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StatsConfig {
        &self.config
    }

    /// The stores.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The sessions started on the days of `range`, from event detail, with returns
    /// within the configured return window (SPEC §9's sessions export), read as they
    /// are consumed.
    pub fn sessions(&self, range: DateRange) -> SessionStream {
        let calendar = &self.config.calendar;
        let after = range.end().succ_opt().unwrap_or(range.end());
        self.stores.events.sessions(SessionQuery {
            from: calendar.day_start(range.start()),
            to: calendar.day_start(after),
            window: self.config.return_window,
        })
    }

    /// The AI funnel of `range` (SPEC §5, `GET /ai`): the whole range and each day,
    /// counted over the sessions of event detail by the day of their start, or, for a
    /// day whose statistics are current, as the refresh job kept it with them (so the
    /// funnel outlives the detail). A day is provisional until the return window after
    /// its end has passed; the range, until that of its last day has.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn ai_funnel(&self, range: DateRange) -> Result<FunnelReport> {
        use futures_util::StreamExt as _;
        let calendar = self.config.calendar;
        let mut days: BTreeMap<NaiveDate, FunnelCounts> = range
            .iter()
            .map(|day| (day, FunnelCounts::default()))
            .collect();
        // A day whose statistics are current — it is clean, and so is the next day
        // (a return may come from there), and they were aggregated with the funnel —
        // answers from them; the others from detail (so a day whose detail retention
        // dropped answers from the statistics it left).
        let dirty: std::collections::BTreeSet<NaiveDate> = self
            .stores
            .events
            .dirty_days()
            .await?
            .into_iter()
            .map(|d| d.day)
            .collect();
        let mut from_detail = Vec::new();
        let stored: BTreeMap<NaiveDate, Sums> =
            self.stores.stats.days(range).await?.into_iter().collect();
        let return_days = self.config.return_days();
        for (day, counts) in days.iter_mut() {
            let current = (0..=return_days).all(|k| !dirty.contains(&(*day + TimeDelta::days(k))));
            match stored.get(day) {
                Some(sums)
                    if current
                        && (sums.get(analytics_core::metrics::Field::FunnelSessions) > 0
                            || sums.count(analytics_core::catalog::Kind::SessionStart) == 0) =>
                {
                    *counts = FunnelCounts::from_sums(sums);
                }
                _ => from_detail.push(*day),
            }
        }
        // Each day on its own (its sessions, their events and returns within the
        // window after the day), as the refresh job stores it: a range is the sum of
        // its days whichever way each was read.
        for day in from_detail {
            let mut sessions = self.sessions(DateRange::day(day));
            while let Some(session) = sessions.next().await {
                let session = session?;
                if let Some(counts) = days.get_mut(&calendar.date(session.started_at)) {
                    counts.record(&session);
                }
            }
        }
        let now = self.clock.now();
        let cost = self.config.cost;
        let provisional = |day: NaiveDate| {
            let end = calendar.day_start(day.succ_opt().unwrap_or(day));
            now < end + self.config.return_window
        };
        let mut total = FunnelCounts::default();
        for counts in days.values() {
            total.merge(counts);
        }
        Ok(FunnelReport {
            start: range.start(),
            end: range.end(),
            return_window_hours: self.config.return_window.num_seconds() as f64 / 3600.0,
            total: AiFunnel::from_counts(&total, cost, provisional(range.end())),
            days: days
                .into_iter()
                .map(|(date, counts)| FunnelDay {
                    date,
                    funnel: AiFunnel::from_counts(&counts, cost, provisional(date)),
                })
                .collect(),
        })
    }

    /// Whether the stores answer: the statistics store (a read of today's statistics)
    /// and the counters, in that order.
    pub async fn ready(&self) -> (bool, bool) {
        let today = DateRange::day(self.today());
        let database = self.stores.stats.days(today).await.is_ok();
        let counters = self.stores.counters.online_agents().await.is_ok();
        (database, counters)
    }

    /// The business calendar.
    pub fn calendar(&self) -> &Calendar {
        &self.config.calendar
    }

    /// Today's business date.
    pub fn today(&self) -> NaiveDate {
        self.config.calendar.date(self.clock.now())
    }

    /// The first of the recent days (yesterday): the days the counters answer for.
    pub fn recent_from(&self) -> NaiveDate {
        self.today() - TimeDelta::days(RECENT_DAYS - 1)
    }

    /// The first instant of the recent days: the counters' sessions and agents are
    /// rebuilt from the detail after it.
    pub fn recent_start(&self) -> DateTime<Utc> {
        self.config.calendar.day_start(self.recent_from())
    }

    /// The sums of the stored events by business hour within `[from, to)`, read in one
    /// go by quarter hour ([`EventStore::quarter_sums`]); hours without events are
    /// absent.
    ///
    /// [`EventStore::quarter_sums`]: analytics_core::store::EventStore::quarter_sums
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn hours_from_detail(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<BTreeMap<DayHour, Sums>> {
        let mut hours = BTreeMap::<DayHour, Sums>::new();
        for (quarter, sums) in self.stores.events.quarter_sums(from, to).await? {
            hours
                .entry(self.config.calendar.hour(quarter))
                .or_default()
                .merge(&sums);
        }
        Ok(hours)
    }

    /// How many sessions are active (started, not ended, seen within the idle time) and
    /// how many agents are online: from the counters while they are intact (rebuilt,
    /// sessions and agents included, and not lost since) and no write to a recent day
    /// is uncounted (`recent_uncounted`: its word on a session may be missing),
    /// otherwise from the detail of the recent days, as a rebuild would give them to
    /// the counters.
    async fn who_is_active(
        &self,
        now: DateTime<Utc>,
        recent_uncounted: bool,
    ) -> Result<(u64, u64)> {
        let idle = TimeDelta::from_std(self.config.session_idle).unwrap_or(TimeDelta::minutes(30));
        let counters = &self.stores.counters;
        if !recent_uncounted && counters.intact().await? {
            return Ok((
                counters.active_sessions(now - idle).await?,
                counters.online_agents().await?,
            ));
        }
        let marks = self.stores.events.marks(self.recent_start()).await?;
        let active = marks
            .sessions
            .values()
            .filter(|m| m.started && !m.ended && m.last_seen >= now - idle)
            .count();
        let online = marks
            .agents
            .values()
            .filter(|m| m.status.is_online())
            .count();
        Ok((active as u64, online as u64))
    }

    /// The source of each day of `range` that can hold events (none after today):
    /// statistics for a clean day; the counters for a dirty recent day that no write
    /// left uncounted (if they turn out not to be whole when read, detail instead);
    /// detail otherwise.
    async fn sources(&self, range: DateRange) -> Result<BTreeMap<NaiveDate, Source>> {
        let today = self.today();
        let dirty: BTreeMap<NaiveDate, bool> = self
            .stores
            .events
            .dirty_days()
            .await?
            .into_iter()
            .map(|d| (d.day, d.uncounted))
            .collect();
        let recent_from = self.recent_from();
        Ok(range
            .iter()
            .take_while(|day| *day <= today)
            .map(|day| {
                let source = match dirty.get(&day) {
                    None => Source::Statistics,
                    Some(false) if day >= recent_from => Source::Counters,
                    Some(_) => Source::Detail,
                };
                (day, source)
            })
            .collect())
    }

    /// The sums of every day of `range`, in order, days without events included.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn day_sums(&self, range: DateRange) -> Result<Vec<(NaiveDate, Sums)>> {
        let sources = self.sources(range).await?;
        Ok(self.sums_of(range, sources).await?.0)
    }

    /// The sums and the distributions of every day of `range`, in order, days without
    /// events included: each day's distributions from the same kind of source as its
    /// sums, except that a day read from the counters (which keep sums only) takes
    /// its distributions from detail.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn day_figures(&self, range: DateRange) -> Result<Vec<(NaiveDate, Sums, Sketches)>> {
        let sources = self.sources(range).await?;
        let mut sketches = self.sketches_of(range, &sources, false).await?;
        let (days, sources) = self.sums_of(range, sources).await?;
        let mut figures = Vec::with_capacity(days.len());
        for (day, mut sums) in days {
            let mut day_sketches = sketches.remove(&day).unwrap_or_default().totals;
            // A day read from statistics or detail has as many values in each
            // distribution as its sums count events (the counters are read apart from
            // detail and may be a moment ahead or behind: not checked). If not, the
            // two were read a moment apart, or the day was aggregated before
            // distributions were kept: both again from one snapshot of detail; what
            // still does not match (detail gone) has no percentiles.
            let source = sources.get(&day).copied();
            if source.is_some_and(|s| s != Source::Counters)
                && !day_sketches.mismatches(&sums).is_empty()
            {
                let summary = self
                    .stores
                    .events
                    .summarize(self.config.calendar.day_window(day))
                    .await?;
                if source == Some(Source::Detail) {
                    sums = summary.totals;
                }
                day_sketches = summary.sketches.totals;
                for field in day_sketches.mismatches(&sums) {
                    day_sketches.mark_incomplete(field);
                }
            }
            figures.push((day, sums, day_sketches));
        }
        Ok(figures)
    }

    /// The distributions of the days of `sources` (all of them, empty where a day has
    /// none), for all events and, when `per_agent`, per agent: a day with current
    /// statistics from the ones kept with them, any other from its detail.
    async fn sketches_of(
        &self,
        range: DateRange,
        sources: &BTreeMap<NaiveDate, Source>,
        per_agent: bool,
    ) -> Result<BTreeMap<NaiveDate, DaySketches>> {
        let mut days: BTreeMap<NaiveDate, DaySketches> = sources
            .keys()
            .map(|d| (*d, DaySketches::default()))
            .collect();
        if sources.values().any(|s| *s == Source::Statistics) {
            for (day, day_sketches) in self.stores.stats.sketch_days(range, per_agent).await? {
                if sources.get(&day) == Some(&Source::Statistics) {
                    days.insert(day, day_sketches);
                }
            }
        }
        for (day, source) in sources {
            if *source != Source::Statistics {
                let mut day_sketches = self
                    .stores
                    .events
                    .sketches(self.config.calendar.day_window(*day))
                    .await?;
                if !per_agent {
                    day_sketches.agents.clear();
                }
                days.insert(*day, day_sketches);
            }
        }
        Ok(days)
    }

    /// The sums of every day of `range`, and the source each day was read from in the
    /// end (a day whose counters were not whole is read from detail).
    async fn sums_of(
        &self,
        range: DateRange,
        mut sources: BTreeMap<NaiveDate, Source>,
    ) -> Result<(Vec<(NaiveDate, Sums)>, BTreeMap<NaiveDate, Source>)> {
        let mut sums: BTreeMap<NaiveDate, Sums> = range.iter().map(|d| (d, Sums::new())).collect();
        if sources.values().any(|s| *s == Source::Statistics) {
            for (day, day_sums) in self.stores.stats.days(range).await? {
                if sources.get(&day) == Some(&Source::Statistics) {
                    sums.insert(day, day_sums);
                }
            }
        }
        let counted: Vec<NaiveDate> = days_from(&sources, Source::Counters);
        if !counted.is_empty() {
            let buckets: Vec<Bucket> = counted
                .iter()
                .map(|d| Bucket::all(Period::Day(*d)))
                .collect();
            match self.stores.counters.read_whole(&buckets).await? {
                Some(read) => {
                    for (day, day_sums) in counted.iter().zip(read) {
                        sums.insert(*day, day_sums);
                    }
                }
                None => {
                    for day in counted {
                        sources.insert(day, Source::Detail);
                    }
                }
            }
        }
        for day in days_from(&sources, Source::Detail) {
            let summary = self
                .stores
                .events
                .summarize(self.config.calendar.day_window(day))
                .await?;
            sums.insert(day, summary.totals);
        }
        Ok((sums.into_iter().collect(), sources))
    }

    /// The per-agent sums over `range`.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn agent_sums(&self, range: DateRange) -> Result<BTreeMap<String, Sums>> {
        let sources = self.sources(range).await?;
        Ok(self.agent_sums_of(range, &sources).await?.0)
    }

    /// The per-agent sums over the days of `sources`, and those of the days read from
    /// statistics alone.
    async fn agent_sums_of(
        &self,
        range: DateRange,
        sources: &BTreeMap<NaiveDate, Source>,
    ) -> Result<(BTreeMap<String, Sums>, BTreeMap<String, Sums>)> {
        let mut agents = BTreeMap::<String, Sums>::new();
        let mut from_statistics = BTreeMap::<String, Sums>::new();
        let mut add = |day_agents: BTreeMap<String, Sums>| {
            for (agent, sums) in day_agents {
                agents.entry(agent).or_default().merge(&sums);
            }
        };
        if sources.values().any(|s| *s == Source::Statistics) {
            for (day, day_agents) in self.stores.stats.agent_days(range).await? {
                if sources.get(&day) == Some(&Source::Statistics) {
                    for (agent, sums) in &day_agents {
                        from_statistics
                            .entry(agent.clone())
                            .or_default()
                            .merge(sums);
                    }
                    add(day_agents);
                }
            }
        }
        let mut detail = days_from(sources, Source::Detail);
        for day in days_from(sources, Source::Counters) {
            match self
                .stores
                .counters
                .read_agents_whole(Period::Day(day))
                .await?
            {
                Some(day_agents) => add(day_agents),
                None => detail.push(day),
            }
        }
        for day in detail {
            add(self
                .stores
                .events
                .summarize(self.config.calendar.day_window(day))
                .await?
                .agents);
        }
        Ok((agents, from_statistics))
    }

    /// The metrics of one day.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn daily(&self, date: NaiveDate) -> Result<BusinessMetrics> {
        let (sums, sketches) = self.total(DateRange::day(date)).await?;
        Ok(BusinessMetrics::from_parts(
            &sums,
            &sketches,
            self.config.cost,
        ))
    }

    /// The sums and distributions of a whole range: the merge of its days.
    async fn total(&self, range: DateRange) -> Result<(Sums, Sketches)> {
        let mut sums = Sums::new();
        let mut sketches = Sketches::new();
        for (_, day_sums, day_sketches) in self.day_figures(range).await? {
            sums.merge(&day_sums);
            sketches.merge(&day_sketches);
        }
        Ok((sums, sketches))
    }

    /// The metrics of every day of a range, days without events included.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn range(&self, range: DateRange) -> Result<Vec<(NaiveDate, BusinessMetrics)>> {
        Ok(self
            .day_figures(range)
            .await?
            .into_iter()
            .map(|(day, sums, sketches)| {
                (
                    day,
                    BusinessMetrics::from_parts(&sums, &sketches, self.config.cost),
                )
            })
            .collect())
    }

    /// The metrics of a whole range (its percentiles over all of its values, merged
    /// from its days) and of each of its days.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn range_with_total(
        &self,
        range: DateRange,
    ) -> Result<(BusinessMetrics, Vec<(NaiveDate, BusinessMetrics)>)> {
        let cost = self.config.cost;
        let mut sums = Sums::new();
        let mut sketches = Sketches::new();
        let mut days = Vec::new();
        for (day, day_sums, day_sketches) in self.day_figures(range).await? {
            sums.merge(&day_sums);
            sketches.merge(&day_sketches);
            days.push((
                day,
                BusinessMetrics::from_parts(&day_sums, &day_sketches, cost),
            ));
        }
        Ok((BusinessMetrics::from_parts(&sums, &sketches, cost), days))
    }

    /// The sums of a month: the sum of its days.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn month_sums(&self, month: YearMonth) -> Result<Sums> {
        Ok(self
            .day_sums(month.days())
            .await?
            .into_iter()
            .map(|(_, s)| s)
            .sum())
    }

    /// The case study of a month (SPEC §6).
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn case_study(&self, month: YearMonth) -> Result<CaseStudy> {
        let (sums, sketches) = self.total(month.days()).await?;
        Ok(CaseStudy::from_parts(
            month,
            &sums,
            &sketches,
            self.config.cost,
        ))
    }

    /// Each agent's figures for a month, by agent id.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn agents(&self, month: YearMonth) -> Result<Vec<AgentMetrics>> {
        let range = month.days();
        let sources = self.sources(range).await?;
        let mut sketches = BTreeMap::<String, Sketches>::new();
        let mut from_statistics = BTreeMap::<String, Sketches>::new();
        for (day, day_sketches) in self.sketches_of(range, &sources, true).await? {
            let statistics = sources.get(&day) == Some(&Source::Statistics);
            for (agent, agent_sketches) in day_sketches.agents {
                if statistics {
                    from_statistics
                        .entry(agent.clone())
                        .or_default()
                        .merge(&agent_sketches);
                }
                sketches.entry(agent).or_default().merge(&agent_sketches);
            }
        }
        let (sums, statistics_sums) = self.agent_sums_of(range, &sources).await?;
        // Days aggregated before distributions were kept have an agent's sums and not
        // the distributions: that agent's percentiles of those fields are unknown.
        let none = Sketches::new();
        for (agent, agent_sums) in &statistics_sums {
            let mismatched = from_statistics
                .get(agent)
                .unwrap_or(&none)
                .mismatches(agent_sums);
            let agent_sketches = sketches.entry(agent.clone()).or_default();
            for field in mismatched {
                agent_sketches.mark_incomplete(field);
            }
        }
        Ok(sums
            .iter()
            .map(|(agent, sums)| {
                AgentMetrics::from_parts(agent.clone(), sums, sketches.get(agent).unwrap_or(&none))
            })
            .collect())
    }

    /// Ticket figures for a month.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn tickets(&self, month: YearMonth) -> Result<TicketMetrics> {
        Ok(TicketMetrics::from_sums(&self.month_sums(month).await?))
    }

    /// The sums of each hour of `hours` (of days up to today, in order): from the hour
    /// counters when the hour's day is recent, not in `uncounted` and the counters are
    /// whole (checked with the read) — the counter repair rebuilds the hours of every
    /// day it rebuilds — otherwise from detail, all such hours in one read.
    async fn hour_sums(
        &self,
        hours: &[DayHour],
        uncounted: &std::collections::BTreeSet<NaiveDate>,
    ) -> Result<Vec<Sums>> {
        let recent_from = self.recent_from();
        let counted: Vec<usize> = (0..hours.len())
            .filter(|i| hours[*i].date >= recent_from && !uncounted.contains(&hours[*i].date))
            .collect();
        let mut sums: Vec<Option<Sums>> = vec![None; hours.len()];
        if !counted.is_empty() {
            let buckets: Vec<Bucket> = counted
                .iter()
                .map(|i| Bucket::all(Period::Hour(hours[*i])))
                .collect();
            if let Some(read) = self.stores.counters.read_whole(&buckets).await? {
                for (i, hour_sums) in counted.into_iter().zip(read) {
                    sums[i] = Some(hour_sums);
                }
            }
        }
        let calendar = &self.config.calendar;
        let windows: Vec<DayWindow> = hours
            .iter()
            .zip(&sums)
            .filter(|(_, known)| known.is_none())
            .map(|(hour, _)| calendar.hour_window(*hour))
            .collect();
        if let (Some(first), Some(last)) = (
            windows.iter().map(|w| w.start).min(),
            windows.iter().map(|w| w.end).max(),
        ) {
            let mut from_detail = self.hours_from_detail(first, last).await?;
            for (hour, known) in hours.iter().zip(sums.iter_mut()) {
                if known.is_none() {
                    *known = Some(from_detail.remove(hour).unwrap_or_default());
                }
            }
        }
        Ok(sums.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// The real-time view: today's figures and the last 24 hours by the source rule of
    /// every other question; active sessions and online agents from the counters while
    /// they are intact, else from detail.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn realtime(&self) -> Result<Realtime> {
        let now = self.clock.now();
        let calendar = &self.config.calendar;
        let today = calendar.date(now);
        let hours = calendar.recent_hours(now, 24);
        // Today's figures and the hours by the same source rule as every other question
        // (so exact, whatever the counters went through). No
        // percentiles: today's would be read from its detail on every call of a view
        // that dashboards poll (`daily` of today has them).
        let today_sums: Sums = self
            .day_sums(DateRange::day(today))
            .await?
            .into_iter()
            .map(|(_, s)| s)
            .sum();
        // The days with uncounted writes, read once for the hours and for who is active.
        let recent_from = self.recent_from();
        let uncounted: std::collections::BTreeSet<NaiveDate> = self
            .stores
            .events
            .uncounted_days()
            .await?
            .into_iter()
            .filter(|day| *day >= recent_from)
            .collect();
        let read = self.hour_sums(&hours, &uncounted).await?;
        let figures = |hour: &DayHour, sums: &Sums| HourFigures {
            date: hour.date,
            hour: hour.hour,
            events: sums.total_events(),
            sessions_started: sums.count(analytics_core::catalog::Kind::SessionStart),
        };
        let last_24_hours: Vec<HourFigures> = hours
            .iter()
            .zip(&read)
            .map(|(h, s)| figures(h, s))
            .collect();
        let (active_sessions, online_agents) =
            self.who_is_active(now, !uncounted.is_empty()).await?;
        Ok(Realtime {
            as_of: now,
            date: today,
            events_today: today_sums.total_events(),
            today_counters: today_sums,
            today: BusinessMetrics::from_sums(&today_sums, self.config.cost),
            this_hour: last_24_hours.last().cloned().unwrap_or(HourFigures {
                date: today,
                hour: calendar.hour(now).hour,
                events: 0,
                sessions_started: 0,
            }),
            last_24_hours,
            active_sessions,
            online_agents,
        })
    }
}

fn days_from(sources: &BTreeMap<NaiveDate, Source>, source: Source) -> Vec<NaiveDate> {
    sources
        .iter()
        .filter(|(_, s)| **s == source)
        .map(|(day, _)| *day)
        .collect()
}
