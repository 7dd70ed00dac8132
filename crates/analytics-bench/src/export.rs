//! `sessions-export`: `sessions.csv` over a database of the scale's events (1,000,000
//! over 30 days), written by a separate process (`analytics-bench export-worker`) that
//! reports its peak resident set: the export is streamed, so the peak should not grow
//! with the sessions exported.

use std::time::Instant;

use analytics::core::store::{RETURN_WINDOW, SessionQuery};
use analytics::core::time::Calendar;
use analytics_pg::testing::TestDatabase;
use analytics_pg::{PgStore, PoolOptions};
use chrono::{TimeDelta, Utc};
use futures_util::StreamExt as _;
use serde_json::json;

use crate::memory::status_kib;
use crate::{Row, Scale, workload};

const DAYS: i64 = 30;
/// The bound: the peak may exceed the resident set at start by this much, whatever the
/// number of sessions.
const BOUND_MIB: f64 = 64.0;

/// The worker: exports every session of the last `DAYS` days from the database at `url`.
pub(crate) async fn worker(url: &str) -> anyhow::Result<()> {
    let calendar = Calendar::default();
    let store = PgStore::connect(url, calendar, PoolOptions::default()).await?;
    let today = calendar.date(Utc::now());
    let query = SessionQuery {
        from: calendar.day_start(today - TimeDelta::days(DAYS)),
        to: calendar.day_start(today + TimeDelta::days(1)),
        window: RETURN_WINDOW,
    };
    let start = status_kib("VmRSS:");
    let started = Instant::now();
    let mut chunks = std::pin::pin!(analytics_server::export::sessions_csv(
        store.sessions(query),
        calendar
    ));
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let out = json!({
        "start_kib": start, "peak_kib": status_kib("VmHWM:"), "rows": lines.saturating_sub(1),
        "bytes": bytes, "seconds": started.elapsed().as_secs_f64(),
    });
    println!("{out}");
    Ok(())
}

pub(crate) async fn run(scale: Scale) -> anyhow::Result<Row> {
    let db = TestDatabase::new().await;
    let store = db.store();
    let end = Utc::now() - TimeDelta::hours(1);
    let events = workload::events(scale.events, DAYS, end, 7);
    let today = store.calendar().date(end);
    store
        .ensure_partitions(
            (today - TimeDelta::days(DAYS + 1))
                .iter_days()
                .take(DAYS as usize + 3),
        )
        .await?;
    crate::pg_insert::copy(&db, &events).await?;
    let result = crate::memory::run_worker(&["export-worker", db.url()]).await?;
    eprintln!("sessions-export: {result}");
    let mib = |key: &str| result[key].as_u64().unwrap_or(0) as f64 / 1024.0;
    let (start, peak) = (mib("start_kib"), mib("peak_kib"));
    let rows = result["rows"].as_u64().unwrap_or(0);
    let seconds = result["seconds"].as_f64().unwrap_or(0.0);
    Ok(Row {
        benchmark: format!(
            "Sessions export (sessions.csv, streamed) of {} events over {DAYS} days on PostgreSQL",
            scale.events
        ),
        figure: format!(
            "{rows} sessions ({:.1} MB of CSV) in {seconds:.1} s; peak RSS {peak:.0} MiB (at start {start:.0} MiB)",
            result["bytes"].as_f64().unwrap_or(0.0) / 1e6
        ),
        reference: format!("bound: start + {BOUND_MIB:.0} MiB, whatever the size"),
        target: "peak within the bound".to_owned(),
        met: peak <= start + BOUND_MIB,
    })
}
