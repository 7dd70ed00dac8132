//! `memory`: peak RSS while PostgreSQL is unreachable and 1,000,000 events arrive. The
//! tracker holds at most `TrackerConfig::memory_bound` events and refuses the rest, so
//! memory is bounded by configuration, not by the events offered. Runs in a process of
//! its own (`analytics-bench memory-worker N`) so that its peak is its own.

use std::sync::Arc;
use std::time::Duration;

use analytics::core::catalog::EventData;
use analytics::core::memory::MemoryCounters;
use analytics::core::store::Stores;
use analytics::core::time::Calendar;
use analytics::tracker::{TrackError, Tracker, TrackerConfig};
use analytics_pg::PgStore;
use anyhow::Context as _;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;

use crate::{Row, Scale};

/// A field of `/proc/self/status` in KiB: `VmHWM:` (the peak resident set) or
/// `VmRSS:` (the resident set now).
pub(crate) fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix(field)
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// The CPU time this process has used so far, all threads, user and system
/// (`/proc/self/stat`'s `utime` and `stime`, in the kernel's fixed user-visible ticks
/// of 1/100 s).
pub(crate) fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // The fields after the command name, which is in parentheses and may hold
            // spaces: state is the third field, utime the 14th and stime the 15th.
            let rest = &stat[stat.rfind(')')? + 1..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// Runs this binary with `args` (a worker of a benchmark, measured in a process of its
/// own) and reads the JSON object it prints.
pub(crate) async fn run_worker(args: &[&str]) -> anyhow::Result<Value> {
    let output = tokio::process::Command::new(std::env::current_exe()?)
        .args(args)
        .output()
        .await
        .with_context(|| format!("cannot run {}", args[0]))?;
    anyhow::ensure!(
        output.status.success(),
        "{} failed: {}",
        args[0],
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).with_context(|| format!("the output of {}", args[0]))
}

/// The embedded worker: a burst of `n` events from 8 tasks into a tracker on the
/// embedded store (a fresh file) as fast as it takes them, then the resident set once
/// everything is stored and the process has been idle a second.
pub(crate) async fn embedded_worker(n: usize) -> anyhow::Result<()> {
    let db = analytics_embedded::testing::TestEmbedded::new().await;
    let tracker = Tracker::start(
        TrackerConfig::default(),
        Stores::new(
            Arc::new(db.store().clone()),
            Arc::new(MemoryCounters::new()),
        ),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = rss_kib();
    let mut tasks = Vec::new();
    for task in 0..8 {
        let tracker = tracker.clone();
        tasks.push(tokio::spawn(async move {
            let mut refused = 0u64;
            for i in (task..n).step_by(8) {
                loop {
                    let data = EventData::SessionMessage {
                        session_id: format!("session-{}", i % 100_000),
                        response_time_ms: 800.0 + (i % 2000) as f64,
                        tokens: Some(i as u64 % 500),
                    };
                    match tracker.track(data) {
                        Ok(_) => break,
                        Err(TrackError::BufferFull) => {
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        Err(other) => return Err(anyhow::Error::from(other)),
                    }
                }
                if i % 1_000 < 8 {
                    tokio::task::yield_now().await;
                }
            }
            Ok(refused)
        }));
    }
    let mut refused = 0;
    for task in tasks {
        refused += task.await??;
    }
    tracker.flush().await?;
    let drained = rss_kib();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib();
    let out = json!({
        "start_kib": start, "peak_kib": peak_rss_kib(), "drained_kib": drained,
        "idle_kib": idle, "offered": n, "retries": refused,
        "stored": tracker.telemetry().stored,
        "idle_anon_kib": status_kib("RssAnon:"), "idle_file_kib": status_kib("RssFile:"),
        "idle_shmem_kib": status_kib("RssShmem:"),
    });
    println!("{out}");
    tracker.stop(Duration::from_secs(10)).await;
    Ok(())
}

/// `memory` on the embedded store: the resident set after a burst, against the one at
/// start.
pub(crate) async fn run_embedded(scale: Scale) -> anyhow::Result<Row> {
    let result = run_worker(&["memory-embedded-worker", &scale.events.to_string()]).await?;
    eprintln!("memory (embedded): {result}");
    let mib = |key: &str| result[key].as_u64().unwrap_or(0) as f64 / 1024.0;
    let (start, peak, idle) = (mib("start_kib"), mib("peak_kib"), mib("idle_kib"));
    Ok(Row {
        benchmark: format!(
            "Memory after a burst of {} events from 8 tasks into the embedded store",
            result["offered"]
        ),
        figure: format!(
            "RSS {idle:.0} MiB a second after the queue drained (at start {start:.0} MiB, \
             peak {peak:.0} MiB, {} stored)",
            result["stored"]
        ),
        reference: format!("2 × the start-up figure: {:.0} MiB", 2.0 * start),
        target: "after the burst ≤ 2 × at start".to_owned(),
        met: idle <= 2.0 * start,
    })
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
        Stores::new(
            Arc::new(PgStore::new(pool, Calendar::default())),
            Arc::new(MemoryCounters::new()),
        ),
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
    let result = run_worker(&["memory-worker", &scale.events.to_string()]).await?;
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
