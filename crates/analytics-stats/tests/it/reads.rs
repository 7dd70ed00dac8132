//! What a month's case study reads once its days are aggregated: daily statistics,
//! never event detail.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use analytics_core::event::{Event, FixedClock};
use analytics_core::memory::{MemoryCounters, MemoryStore};
use analytics_core::metrics::DaySummary;
use analytics_core::store::Stores;
use analytics_core::store::{CounterRecount, DirtyDay, EventStore, StatsStore, Written};
use analytics_core::testing::{at, event};
use analytics_core::time::{Calendar, DateRange, DayWindow};
use analytics_stats::{Jobs, Stats, StatsConfig};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::json;

/// An event store that counts how often detail is read.
struct Counting {
    inner: MemoryStore,
    summaries: AtomicU64,
    sketch_reads: AtomicU64,
}

#[async_trait]
impl EventStore for Counting {
    async fn write(&self, events: &[Event]) -> analytics_core::Result<Written> {
        self.inner.write(events).await
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
    ) -> analytics_core::Result<analytics_core::counters::CounterBatch> {
        self.inner.marks(from).await
    }
    async fn summarize(&self, day: DayWindow) -> analytics_core::Result<DaySummary> {
        self.summaries.fetch_add(1, Ordering::Relaxed);
        self.inner.summarize(day).await
    }
    async fn sketches(
        &self,
        day: DayWindow,
    ) -> analytics_core::Result<analytics_core::sketch::DaySketches> {
        self.sketch_reads.fetch_add(1, Ordering::Relaxed);
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

#[tokio::test]
async fn an_aggregated_month_is_read_from_daily_statistics_only() {
    let events = Arc::new(Counting {
        inner: MemoryStore::new(),
        summaries: AtomicU64::new(0),
        sketch_reads: AtomicU64::new(0),
    });
    let stats_store = Arc::new(MemoryStore::new());
    let now = at("2026-01-20T04:00:00Z");
    let stored: Vec<Event> = (0..31 * 24)
        .flat_map(|h| {
            let when = at("2025-11-30T16:30:00Z") + TimeDelta::hours(h);
            [
                event(
                    "session.start",
                    when,
                    json!({"session_id": format!("s{h}")}),
                ),
                event(
                    "session.message",
                    when,
                    json!({"session_id": format!("s{h}"), "response_time_ms": h % 100 + 1}),
                ),
            ]
        })
        .collect();
    events.insert(&stored).await.unwrap();
    let stats = Stats::new(
        Stores {
            events: events.clone(),
            stats: stats_store.clone(),
            counters: Arc::new(MemoryCounters::new()),
            spill: None,
        },
        Arc::new(FixedClock::new(now)),
        StatsConfig {
            calendar: Calendar::default(),
            cost: Default::default(),
            retention_days: 90,
            session_idle: Duration::from_secs(1800),
            days_ahead: 7,
            return_window: analytics_core::store::RETURN_WINDOW,
        },
    );
    Jobs::new(stats.clone()).refresh().await.unwrap();
    let after_jobs = events.summaries.load(Ordering::Relaxed);
    // Each day once, and the day before the first (its AI funnel looks at the next day).
    assert_eq!(after_jobs, 32, "the job read each day once");

    let study = stats.case_study("2025-12".parse().unwrap()).await.unwrap();
    assert_eq!(study.raw.total_customers_served, 31 * 24);
    // Its percentiles are merged from the days' sketches, within 1 % of the exact ones.
    let values: Vec<f64> = (0..31 * 24).map(|h| (h % 100 + 1) as f64).collect();
    for (got, q) in [
        (study.raw.response_time_ms_p50, 0.5),
        (study.raw.response_time_ms_p90, 0.9),
    ] {
        let exact = crate::plain::exact_quantile(&values, q).unwrap();
        let got = got.unwrap();
        assert!(
            (got - exact).abs() <= 0.01 * exact,
            "p{q}: {got} vs {exact}"
        );
    }
    assert_eq!(
        events.summaries.load(Ordering::Relaxed),
        after_jobs,
        "the case study read no detail"
    );
    assert_eq!(
        events.sketch_reads.load(Ordering::Relaxed),
        0,
        "nor sketched any from detail"
    );
    assert_eq!(
        stats_store
            .days(DateRange::new(at_date("2025-12-01"), at_date("2025-12-31")).unwrap())
            .await
            .unwrap()
            .len(),
        31
    );
}

fn at_date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[tokio::test]
async fn a_job_whose_lock_is_held_elsewhere_skips_its_run() {
    let store = Arc::new(MemoryStore::new());
    store
        .insert(&[event(
            "agent.login",
            at("2026-01-20T02:00:00Z"),
            json!({"agent_id": "a"}),
        )])
        .await
        .unwrap();
    let stats = Stats::new(
        Stores {
            events: store.clone(),
            stats: store.clone(),
            counters: Arc::new(MemoryCounters::new()),
            spill: None,
        },
        Arc::new(FixedClock::new(at("2026-01-20T04:00:00Z"))),
        StatsConfig {
            calendar: Calendar::default(),
            cost: Default::default(),
            retention_days: 90,
            session_idle: Duration::from_secs(1800),
            days_ahead: 7,
            return_window: analytics_core::store::RETURN_WINDOW,
        },
    );
    let jobs = Jobs::new(stats);
    let held = store.try_lock("refresh").await.unwrap().expect("free");
    assert_eq!(
        jobs.refresh().await.unwrap(),
        analytics_stats::JobOutcome::Skipped
    );
    assert_eq!(
        store.dirty_days().await.unwrap().len(),
        1,
        "nothing was aggregated"
    );
    held.release().await;
    assert_eq!(
        jobs.refresh().await.unwrap(),
        analytics_stats::JobOutcome::Ran(1)
    );
    assert!(store.dirty_days().await.unwrap().is_empty());
    // Running it again changes nothing.
    assert_eq!(
        jobs.refresh().await.unwrap(),
        analytics_stats::JobOutcome::Ran(0)
    );

    // The periodic runner runs the jobs until told to stop.
    store
        .insert(&[event(
            "agent.login",
            at("2026-01-20T03:00:00Z"),
            json!({"agent_id": "b"}),
        )])
        .await
        .unwrap();
    jobs.run_periodically(
        Duration::from_millis(10),
        tokio::time::sleep(Duration::from_millis(100)),
    )
    .await;
    assert!(store.dirty_days().await.unwrap().is_empty());
}

/// The return window is configurable: a customer back 30 hours later is a return with
/// a 48-hour window and not with the default 24; the day stays provisional until the
/// window after it has passed, and the refresh keeps the funnel of the days the
/// window reaches back to when a later day changes.
#[tokio::test]
async fn the_return_window_decides_what_counts_as_a_return() {
    let first = at("2025-12-01T02:00:00Z");
    let events = Arc::new(MemoryStore::new());
    let stats_store = Arc::new(MemoryStore::new());
    let stats_with = |hours: i64, now: DateTime<Utc>| {
        Stats::new(
            Stores {
                events: events.clone(),
                stats: stats_store.clone(),
                counters: Arc::new(MemoryCounters::new()),
                spill: None,
            },
            Arc::new(FixedClock::new(now)),
            StatsConfig {
                calendar: Calendar::default(),
                cost: Default::default(),
                retention_days: 90,
                session_idle: Duration::from_secs(1800),
                days_ahead: 7,
                return_window: TimeDelta::hours(hours),
            },
        )
    };
    let day = DateRange::day(Calendar::default().date(first));
    events
        .insert(&[event(
            "session.start",
            first,
            json!({"session_id": "a", "customer_id": "c"}),
        )])
        .await
        .unwrap();
    let now = first + TimeDelta::hours(40);
    let wide = stats_with(48, now);
    Jobs::new(wide.clone()).refresh().await.unwrap();
    // The customer comes back 30 hours later, on the next day.
    events
        .insert(&[event(
            "session.start",
            first + TimeDelta::hours(30),
            json!({"session_id": "b", "customer_id": "c"}),
        )])
        .await
        .unwrap();
    let funnel = wide.ai_funnel(day).await.unwrap();
    assert_eq!((funnel.total.sessions, funnel.total.returned), (1, 1));
    assert!(funnel.total.provisional, "48 hours have not passed");
    assert_eq!(funnel.return_window_hours, 48.0);
    let narrow = stats_with(24, now).ai_funnel(day).await.unwrap();
    assert_eq!((narrow.total.sessions, narrow.total.returned), (1, 0));
    assert!(!narrow.total.provisional, "24 hours have passed");
    // After the refresh the first day answers from its statistics, with the return.
    Jobs::new(wide.clone()).refresh().await.unwrap();
    let stored = stats_store.days(day).await.unwrap();
    assert_eq!(
        analytics_core::metrics::FunnelCounts::from_sums(&stored[0].1).returned,
        1,
        "the refresh of the next day re-summarized the first"
    );
    assert_eq!(wide.ai_funnel(day).await.unwrap().total.returned, 1);
}

/// A day whose statistics were kept before distributions were (an upgrade): while its
/// detail is kept, its distribution is read from detail; once retention dropped it,
/// the month's percentiles of what that day counts are null — never a percentile of
/// the other days' values passed off as the month's.
#[tokio::test]
async fn days_aggregated_without_distributions_give_no_partial_percentiles() {
    let events = Arc::new(MemoryStore::new());
    let stats_store = Arc::new(MemoryStore::new());
    let calendar = Calendar::default();
    let (first, second) = (at_date("2025-12-02"), at_date("2025-12-03"));
    let mut all = Vec::new();
    for (day, base) in [(first, 100), (second, 5_000)] {
        let when = calendar.day_start(day) + TimeDelta::hours(3);
        for i in 0..20 {
            all.push(event(
                "session.message",
                when,
                json!({"session_id": format!("{day}-{i}"), "response_time_ms": base + i}),
            ));
            all.push(event(
                "agent.session_takeover",
                when,
                json!({"session_id": format!("{day}-{i}"), "agent_id": "a1", "wait_duration_seconds": base + i}),
            ));
        }
    }
    events.insert(&all).await.unwrap();
    let stats = Stats::new(
        Stores {
            events: events.clone(),
            stats: stats_store.clone(),
            counters: Arc::new(MemoryCounters::new()),
            spill: None,
        },
        Arc::new(FixedClock::new(at("2026-01-20T04:00:00Z"))),
        StatsConfig {
            calendar,
            cost: Default::default(),
            retention_days: 90,
            session_idle: Duration::from_secs(1800),
            days_ahead: 7,
            return_window: analytics_core::store::RETURN_WINDOW,
        },
    );
    Jobs::new(stats.clone()).refresh().await.unwrap();
    let december = "2025-12".parse().unwrap();
    let complete = stats.case_study(december).await.unwrap().raw;
    let agents = stats.agents(december).await.unwrap();
    assert!(complete.response_time_ms_p50.is_some());
    // The first day as an older version kept it: sums, no distributions.
    let mut old = events.summarize(calendar.day_window(first)).await.unwrap();
    old.sketches = Default::default();
    stats_store.put_day(first, &old).await.unwrap();
    assert_eq!(
        stats.case_study(december).await.unwrap().raw,
        complete,
        "read from detail"
    );
    assert_eq!(
        stats.agents(december).await.unwrap()[0].first_response_seconds_p50,
        None,
        "an agent's distribution is not re-read: unknown until the day is aggregated again"
    );
    assert!(agents[0].first_response_seconds_p50.is_some());

    // Retention drops the first day's detail: unknown, not the second day's alone.
    events
        .purge_before(calendar.day_start(second))
        .await
        .unwrap();
    let raw = stats.case_study(december).await.unwrap().raw;
    assert_eq!(raw.total_customers_served, complete.total_customers_served);
    assert_eq!(raw.avg_response_time_ms, complete.avg_response_time_ms);
    assert_eq!(raw.response_time_ms_p50, None);
    assert_eq!(raw.first_response_seconds_p90, None);
    // The second day alone still has its own.
    assert!(
        stats
            .daily(second)
            .await
            .unwrap()
            .response_time_ms_p50
            .is_some()
    );
}
