//! `realtime`: how long the real-time view takes on the embedded default, where it is
//! read from detail (in-process counters never answer for days or hours: another
//! process may write the same file): today's figures, each of the last 24 hours, and
//! the sessions and agents from the counters once the start-up repair rebuilt them.
//! Beside it, one summary of today's detail, which is what the view read for today
//! before its hours followed the same rule.

use std::sync::Arc;
use std::time::Instant;

use analytics::core::event::SystemClock;
use analytics::core::memory::MemoryCounters;
use analytics::core::store::Stores;
use analytics_embedded::testing::TestEmbedded;
use analytics_stats::{Jobs, Stats, StatsConfig};
use chrono::Utc;

use crate::{Row, Scale, workload};

pub(crate) async fn run(scale: Scale) -> anyhow::Result<Row> {
    let db = TestEmbedded::new().await;
    let store = Arc::new(db.store().clone());
    // The scale's events spread over the last 24 hours, stored as a tracker stores them.
    let now = Utc::now();
    for (i, chunk) in workload::events(scale.events, 1, now, 41)
        .chunks(4_000)
        .enumerate()
    {
        let written = store.write(chunk).await?;
        anyhow::ensure!(written.new.iter().all(|new| *new), "chunk {i} stored once");
        if let Some(pending) = written.pending {
            pending.settle(false).await;
        }
    }
    let stats = Stats::new(
        Stores::new(store.clone(), Arc::new(MemoryCounters::new())),
        Arc::new(SystemClock),
        StatsConfig::from_config(&analytics::core::config::Config::default()),
    );
    // As `serve` does before taking requests: the counters' sessions and agents rebuilt.
    Jobs::new(stats.clone()).repair_counters().await?;

    let runs = if scale.events < 1_000_000 { 50 } else { 20 };
    let mut view = Vec::with_capacity(runs);
    let mut today = Vec::with_capacity(runs);
    let window = stats.calendar().day_window(stats.today());
    for _ in 0..runs {
        let started = Instant::now();
        let realtime = stats.realtime().await?;
        view.push(started.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(realtime.events_today > 0, "today has events");
        let started = Instant::now();
        store.summarize(window).await?;
        today.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let (view_p50, view_p99) = percentiles(&mut view);
    let (today_p50, _) = percentiles(&mut today);
    eprintln!(
        "realtime: {runs} runs over {} events; view p50 {view_p50:.1} ms, p99 {view_p99:.1} \
         ms; today's summary alone p50 {today_p50:.1} ms",
        scale.events
    );
    Ok(Row {
        benchmark: format!(
            "Real-time view on the embedded store, {} events over the last 24 hours \
             (today and each hour from detail; {runs} runs)",
            scale.events
        ),
        figure: format!("p50 {view_p50:.1} ms, p99 {view_p99:.1} ms"),
        reference: format!(
            "one summary of today's detail: p50 {today_p50:.1} ms (ratio {:.2})",
            view_p50 / today_p50
        ),
        target: "none set; reported".to_owned(),
        met: true,
    })
}

fn percentiles(millis: &mut [f64]) -> (f64, f64) {
    millis.sort_by(f64::total_cmp);
    let p50 = millis[millis.len() / 2];
    let p99 = millis[(millis.len() - 1) * 99 / 100];
    (p50, p99)
}
