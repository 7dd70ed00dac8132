//! `case-study`: how long a month's case study takes over a year of daily statistics
//! in PostgreSQL, its medians and 90th percentiles merged from the days' sketches.

use std::sync::Arc;
use std::time::Instant;

use analytics::core::event::SystemClock;
use analytics::core::memory::MemoryCounters;
use analytics::core::metrics::DaySummary;
use analytics::core::store::Stores;
use analytics::core::time::YearMonth;
use analytics_pg::PgStore;
use analytics_pg::testing::TestDatabase;
use analytics_stats::{Stats, StatsConfig};
use chrono::{TimeDelta, Utc};

use crate::{Row, Scale, workload};

const DAYS: i64 = 365;

pub(crate) async fn run(scale: Scale) -> anyhow::Result<Row> {
    let db = TestDatabase::new().await;
    let pg = Arc::new(PgStore::new(
        db.store().pool().clone(),
        *db.store().calendar(),
    ));
    let calendar = *pg.calendar();
    let today = calendar.date(Utc::now());
    // A realistic day: the mix of the workload, 40 agents (sums and sketches).
    let mut day = DaySummary::default();
    for event in workload::events(20_000, 1, Utc::now(), 3) {
        day.record(&event);
    }
    for back in 1..=DAYS {
        pg.put_day(today - TimeDelta::days(back), &day).await?;
    }

    let stats = Stats::new(
        Stores {
            events: pg.clone(),
            stats: pg.clone(),
            counters: Arc::new(MemoryCounters::new()),
            spill: None,
        },
        Arc::new(SystemClock),
        StatsConfig::from_config(&analytics::core::config::Config::default()),
    );
    let month = YearMonth::of(today).prev();
    let runs = if scale.events < 1_000_000 { 100 } else { 500 };
    let (empty_p50, empty_p99) = measure(&stats, month, runs).await?;

    // Raw events over the whole year, loaded with COPY in chunks: 10 per event of the
    // scale (10,000,000 in a full run).
    let raw = scale.events * 10;
    pg.ensure_partitions(
        (today - TimeDelta::days(DAYS + 1))
            .iter_days()
            .take(DAYS as usize + 3),
    )
    .await?;
    let loaded = Instant::now();
    for chunk in 0..raw.div_ceil(100_000) {
        let events = workload::events(
            100_000.min(raw - chunk * 100_000),
            DAYS,
            Utc::now(),
            1_000 + chunk as u64,
        );
        crate::pg_insert::copy(&db, &events).await?;
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM analytics_events")
        .fetch_one(pg.pool())
        .await?;
    eprintln!(
        "case-study: {rows} raw events loaded in {:.0} s",
        loaded.elapsed().as_secs_f64()
    );
    sqlx::query("ANALYZE").execute(pg.pool()).await?;
    let (p50, p99) = measure(&stats, month, runs).await?;
    eprintln!(
        "case-study: {runs} runs; without raw events p50 {empty_p50:.2} ms, p99 {empty_p99:.2} ms; \
         with {rows} raw events p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
    Ok(Row {
        benchmark: format!(
            "Case study of {month} (percentiles from day sketches) over {DAYS} days of daily statistics, {rows} raw events present ({runs} runs)"
        ),
        figure: format!("p50 {p50:.2} ms, p99 {p99:.2} ms"),
        reference: format!("no raw events: p50 {empty_p50:.2} ms, p99 {empty_p99:.2} ms"),
        target: "p99 < 10 ms, flat as raw events grow".to_owned(),
        met: p99 < 10.0 && p99 < empty_p99 * 2.0 + 1.0,
    })
}

/// p50 and p99 of the case study of `month`, in milliseconds, after a warm-up.
async fn measure(stats: &Stats, month: YearMonth, runs: usize) -> anyhow::Result<(f64, f64)> {
    for _ in 0..20 {
        stats.case_study(month).await?;
    }
    let mut micros = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let study = stats.case_study(month).await?;
        micros.push(started.elapsed().as_micros() as u64);
        anyhow::ensure!(study.raw.total_customers_served > 0, "the month has data");
        anyhow::ensure!(
            study.raw.response_time_ms_p90.is_some() && study.raw.handle_time_seconds_p50.is_some(),
            "the month has percentiles"
        );
    }
    micros.sort_unstable();
    let p50 = micros[micros.len() / 2] as f64 / 1000.0;
    let p99 = micros[(micros.len() - 1) * 99 / 100] as f64 / 1000.0;
    Ok((p50, p99))
}
