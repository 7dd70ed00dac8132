//! `redis-counters`: counter batches per second for flushes of 1,000 events, beside
//! `redis-benchmark`'s pipelined `HINCRBY` rate on the same server in the same run; and
//! the same flushes on a private three-master Redis Cluster (one transaction per slot
//! group), beside the server's figure.

use std::process::Command;
use std::time::Instant;

use analytics::core::counters::CounterBatch;
use analytics::core::event::Event;
use analytics::core::store::CounterStore;
use analytics::core::time::Calendar;
use analytics_redis::testing::{TestCluster, TestRedis, server_url};
use analytics_redis::{RedisOptions, RedisStore};
use anyhow::Context as _;
use chrono::Utc;

use crate::{Row, Scale, workload};

const BATCH: usize = 1_000;

/// Applies `events` in flushes of [`BATCH`]: seconds taken and commands sent.
async fn flushes(store: &RedisStore, events: &[Event]) -> anyhow::Result<(f64, usize)> {
    let calendar = Calendar::default();
    let started = Instant::now();
    let mut commands = 0;
    for chunk in events.chunks(BATCH) {
        let batch = CounterBatch::from_events(&calendar, chunk);
        commands += store.commands_for(&batch)?;
        store.apply(&batch).await?;
    }
    Ok((started.elapsed().as_secs_f64(), commands))
}

/// Flushes of recent events: a day of traffic, 1,000 events a flush.
fn recent_events(scale: Scale) -> Vec<Event> {
    let n = (scale.events / 5).max(BATCH * 20);
    workload::events(n, 1, Utc::now(), 7)
}

pub(crate) async fn run(scale: Scale) -> anyhow::Result<Vec<Row>> {
    let redis = TestRedis::new().await;
    let events = recent_events(scale);
    let (elapsed, commands) = flushes(redis.store(), &events).await?;
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
    let server = Row {
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
    };

    let cluster = tokio::task::spawn_blocking(|| TestCluster::start(3)).await?;
    let store = cluster.store(RedisOptions::default()).await;
    let (cluster_elapsed, cluster_commands) = flushes(&store, &events).await?;
    let cluster_per_second = batches as f64 / cluster_elapsed;
    let transactions = store.transactions_for(&CounterBatch::from_events(
        &Calendar::default(),
        &events[..BATCH],
    ))?;
    eprintln!(
        "redis-counters: cluster {cluster_per_second:.0} batches/s, {transactions} \
         transactions a batch, {:.0} commands a batch",
        cluster_commands as f64 / batches as f64
    );
    let on_cluster = Row {
        benchmark: format!(
            "Redis Cluster (3 masters) counters, {batches} flushes of {BATCH} events"
        ),
        figure: format!(
            "{cluster_per_second:.0} batches/s ({:.0} events/s; {transactions} transactions a batch)",
            cluster_per_second * BATCH as f64
        ),
        reference: format!(
            "one server {batches_per_second:.0} batches/s (ratio {:.2})",
            cluster_per_second / batches_per_second
        ),
        target: "none set; reported".to_owned(),
        met: true,
    };
    Ok(vec![server, on_cluster])
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
