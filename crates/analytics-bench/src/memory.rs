//! `memory`: peak RSS while PostgreSQL is unreachable and 1,000,000 events arrive. The
//! tracker holds at most `TrackerConfig::memory_bound` events and refuses the rest, so
//! memory is bounded by configuration, not by the events offered. Runs in a process of
//! its own (`analytics-bench memory-worker N`) so that its peak is its own.

use std::sync::Arc;
use std::time::Duration;

use analytics::core::catalog::EventData;
use analytics::core::memory::MemoryCounters;
use analytics::core::time::Calendar;
use analytics::tracker::{Stores, TrackError, Tracker, TrackerConfig};
use analytics_pg::PgStore;
use anyhow::Context as _;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;

use crate::{Row, Scale};

/// The process's peak resident set, in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The worker: offers `n` events to a tracker whose PostgreSQL does not answer.
pub(crate) async fn worker(n: usize) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(200))
        .connect_lazy("postgres://postgres@127.0.0.1:1/unreachable")?;
    let config = TrackerConfig::default();
    let bound = config.memory_bound();
    let tracker = Tracker::start(
        config,
        Stores {
            events: Arc::new(PgStore::new(pool, Calendar::default())),
            counters: Arc::new(MemoryCounters::new()),
            spill: None,
        },
    );
    let baseline = peak_rss_kib();
    let (mut accepted, mut refused) = (0u64, 0u64);
    for i in 0..n {
        let data = EventData::SessionMessage {
            session_id: format!("session-{}", i % 100_000),
            response_time_ms: 800.0 + (i % 2000) as f64,
            tokens: Some(i as u64 % 500),
        };
        match tracker.track(data) {
            Ok(_) => accepted += 1,
            Err(TrackError::BufferFull) => refused += 1,
            Err(other) => return Err(other.into()),
        }
        if i % 10_000 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Let the flusher fill every place it has.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = json!({
        "baseline_kib": baseline, "peak_kib": peak_rss_kib(), "accepted": accepted,
        "refused": refused, "bound": bound, "offered": n,
    });
    println!("{out}");
    // PostgreSQL never answers: do not wait for a stop deadline.
    std::process::exit(0);
}

pub(crate) async fn run(scale: Scale) -> anyhow::Result<Row> {
    let output = tokio::process::Command::new(std::env::current_exe()?)
        .args(["memory-worker", &scale.events.to_string()])
        .output()
        .await
        .context("cannot run the memory worker")?;
    anyhow::ensure!(
        output.status.success(),
        "the memory worker failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value =
        serde_json::from_slice(&output.stdout).context("the memory worker's output")?;
    let get = |key: &str| result[key].as_u64().unwrap_or(0);
    let (peak, baseline) = (
        get("peak_kib") as f64 / 1024.0,
        get("baseline_kib") as f64 / 1024.0,
    );
    eprintln!("memory: {result}");
    Ok(Row {
        benchmark: format!(
            "Memory while PostgreSQL is unreachable, {} events offered",
            get("offered")
        ),
        figure: format!(
            "peak RSS {peak:.0} MiB (at start {baseline:.0} MiB); {} events held, {} refused",
            get("accepted"),
            get("refused")
        ),
        reference: format!("configured bound: {} events", get("bound")),
        target: "bounded by configuration, not by events offered".to_owned(),
        met: get("accepted") <= get("bound"),
    })
}
