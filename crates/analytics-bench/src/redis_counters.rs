//! `redis-counters`: counter batches per second for flushes of 1,000 events, beside
//! `redis-benchmark`'s pipelined `HINCRBY` rate on the same server in the same run.

use std::process::Command;
use std::time::Instant;

use analytics::core::store::{CounterBatch, CounterStore};
use analytics::core::time::Calendar;
use analytics_redis::testing::{TestRedis, server_url};
use anyhow::Context as _;
use chrono::Utc;

use crate::{Row, Scale, workload};

const BATCH: usize = 1_000;

pub(crate) async fn run(scale: Scale) -> anyhow::Result<Row> {
    let redis = TestRedis::new().await;
    let calendar = Calendar::default();
    // Flushes of recent events: a day of traffic, 1,000 events a flush.
    let n = (scale.events / 5).max(BATCH * 20);
    let events = workload::events(n, 1, Utc::now(), 7);

    let started = Instant::now();
    let mut commands = 0;
    for chunk in events.chunks(BATCH) {
        let batch = CounterBatch::from_events(&calendar, chunk);
        commands += redis.store().commands_for(&batch)?;
        redis.store().apply(&batch).await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let batches = events.len().div_ceil(BATCH);
    let batches_per_second = batches as f64 / elapsed;
    let commands_per_batch = commands as f64 / batches as f64;
    let our_commands_per_second = commands as f64 / elapsed;

    let reference = redis_benchmark(redis.prefix())?;
    let ratio = our_commands_per_second / reference;
    eprintln!(
        "redis-counters: {batches_per_second:.0} batches/s, {commands_per_batch:.0} commands a \
         batch, {our_commands_per_second:.0} commands/s; redis-benchmark {reference:.0} HINCRBY/s"
    );
    Ok(Row {
        benchmark: format!("Redis counters, {batches} flushes of {BATCH} events"),
        figure: format!(
            "{batches_per_second:.0} batches/s ({:.0} events/s; {commands_per_batch:.0} commands a batch)",
            batches_per_second * BATCH as f64
        ),
        reference: format!(
            "redis-benchmark pipelined HINCRBY {reference:.0}/s; ours {our_commands_per_second:.0} commands/s (ratio {ratio:.2})"
        ),
        target: "none set; reported".to_owned(),
        met: true,
    })
}

/// `redis-benchmark`'s rate for `HINCRBY` from one client pipelining 100 commands.
fn redis_benchmark(prefix: &str) -> anyhow::Result<f64> {
    let url = server_url();
    let address = url.trim_start_matches("redis://").trim_end_matches('/');
    let (host, port) = address.rsplit_once(':').unwrap_or((address, "6379"));
    let output = Command::new("redis-benchmark")
        .args([
            "-h", host, "-p", port, "-c", "1", "-P", "100", "-n", "500000", "-q",
        ])
        .args(["HINCRBY", &format!("{prefix}benchmark"), "field", "1"])
        .output()
        .context("cannot run redis-benchmark (Debian package redis-tools)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    // The last report reads "HINCRBY …: 643086.81 requests per second, p50=…".
    text.rsplit(": ")
        .find_map(|part| {
            part.strip_suffix(" requests per second").or_else(|| {
                part.split_once(" requests per second")
                    .map(|(rate, _)| rate)
            })
        })
        .and_then(|rate| rate.trim().parse().ok())
        .with_context(|| format!("cannot read redis-benchmark's output: {text}"))
}
