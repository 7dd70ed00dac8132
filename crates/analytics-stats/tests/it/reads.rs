//! What a month's case study reads once its days are aggregated: daily statistics,
//! never event detail.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use analytics_core::event::{Event, FixedClock};
use analytics_core::memory::{MemoryCounters, MemoryStore};
use analytics_core::metrics::DaySummary;
use analytics_core::store::{CounterRecount, DirtyDay, EventStore, StatsStore, Written};
use analytics_core::testing::{at, event};
use analytics_core::time::{Calendar, DateRange, DayWindow};
use analytics_stats::{Jobs, Stats, StatsConfig, StatsStores};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::json;

/// An event store that counts how often detail is read.
struct Counting {
    inner: MemoryStore,
    summaries: AtomicU64,
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
    async fn summarize(&self, day: DayWindow) -> analytics_core::Result<DaySummary> {
        self.summaries.fetch_add(1, Ordering::Relaxed);
        self.inner.summarize(day).await
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
    });
    let stats_store = Arc::new(MemoryStore::new());
    let now = at("2026-01-20T04:00:00Z");
    let stored: Vec<Event> = (0..31 * 24)
        .map(|h| {
            event(
                "session.start",
                at("2025-11-30T16:30:00Z") + TimeDelta::hours(h),
                json!({"session_id": format!("s{h}")}),
            )
        })
        .collect();
    events.insert(&stored).await.unwrap();
    let stats = Stats::new(
        StatsStores {
            events: events.clone(),
            stats: stats_store.clone(),
            counters: Arc::new(MemoryCounters::new()),
        },
        Arc::new(FixedClock::new(now)),
        StatsConfig {
            calendar: Calendar::default(),
            cost: Default::default(),
            retention_days: 90,
            session_idle: Duration::from_secs(1800),
            days_ahead: 7,
        },
    );
    Jobs::new(stats.clone()).refresh().await.unwrap();
    let after_jobs = events.summaries.load(Ordering::Relaxed);
    // Each day once, and the day before the first (its AI funnel looks at the next day).
    assert_eq!(after_jobs, 32, "the job read each day once");

    let study = stats.case_study("2025-12".parse().unwrap()).await.unwrap();
    assert_eq!(study.raw.total_customers_served, 31 * 24);
    assert_eq!(
        events.summaries.load(Ordering::Relaxed),
        after_jobs,
        "the case study read no detail"
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
        StatsStores {
            events: store.clone(),
            stats: store.clone(),
            counters: Arc::new(MemoryCounters::new()),
        },
        Arc::new(FixedClock::new(at("2026-01-20T04:00:00Z"))),
        StatsConfig {
            calendar: Calendar::default(),
            cost: Default::default(),
            retention_days: 90,
            session_idle: Duration::from_secs(1800),
            days_ahead: 7,
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
