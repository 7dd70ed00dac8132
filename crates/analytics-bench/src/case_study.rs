//! `case-study`: how long a month's case study takes over a year of daily statistics
//! in PostgreSQL.

use std::sync::Arc;
use std::time::Instant;

use analytics::core::event::SystemClock;
use analytics::core::memory::MemoryCounters;
use analytics::core::metrics::DaySummary;
use analytics::core::store::StatsStore;
use analytics::core::time::YearMonth;
use analytics_pg::PgStore;
use analytics_pg::testing::TestDatabase;
use analytics_stats::{Stats, StatsConfig, StatsStores};
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
    // A realistic day: the mix of the workload, 40 agents.
    let mut day = DaySummary::default();
    for event in workload::events(20_000, 1, Utc::now(), 3) {
        day.record(&event);
    }
    for back in 1..=DAYS {
        pg.put_day(today - TimeDelta::days(back), &day).await?;
    }

    let stats = Stats::new(
        StatsStores {
            events: pg.clone(),
            stats: pg.clone(),
            counters: Arc::new(MemoryCounters::new()),
        },
        Arc::new(SystemClock),
        StatsConfig::from_config(&analytics::core::config::Config::default()),
    );
    let month = YearMonth::of(today).prev();
    let runs = if scale.events < 1_000_000 { 100 } else { 500 };
    for _ in 0..20 {
        stats.case_study(month).await?;
    }
    let mut micros = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let study = stats.case_study(month).await?;
        micros.push(started.elapsed().as_micros() as u64);
        anyhow::ensure!(study.raw.total_customers_served > 0, "the month has data");
    }
    micros.sort_unstable();
    let p50 = micros[micros.len() / 2] as f64 / 1000.0;
    let p99 = micros[(micros.len() - 1) * 99 / 100] as f64 / 1000.0;
    eprintln!("case-study: {runs} runs, p50 {p50:.2} ms, p99 {p99:.2} ms");
    Ok(Row {
        benchmark: format!(
            "Case study of {month} over {DAYS} days of daily statistics ({runs} runs)"
        ),
        figure: format!("p50 {p50:.2} ms, p99 {p99:.2} ms"),
        reference: "—".to_owned(),
        target: "p99 < 10 ms".to_owned(),
        met: p99 < 10.0,
    })
}
