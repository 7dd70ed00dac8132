//! `seed-peer`: the seeds' design as a benchmark peer. `seed/seed_tracker.py` is the
//! tracker the seed documents describe (an asyncio tracker with a bounded queue,
//! batched flushes into Redis hashes and asyncpg `executemany` into PostgreSQL); it
//! runs on the same events as our end-to-end benchmark, from the same number of
//! producers, on its own fresh database and Redis prefix; then ours runs on them, with
//! each `track()` call timed the same way. Python's packages come from PyPI, installed
//! with pip into `target/bench/seed-venv` on the first run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics::core::store::Stores;
use analytics::tracker::{TrackError, Tracker, TrackerConfig};
use analytics_pg::PgStore;
use analytics_pg::testing::TestDatabase;
use analytics_redis::testing::{TestRedis, server_url};
use anyhow::Context as _;
use serde_json::Value;

use crate::tracker::{PRODUCERS, percentile, typed_events, validated};
use crate::{Row, Scale};

/// The packages the peer needs, pinned.
const PACKAGES: &[&str] = &["asyncpg==0.30.0", "redis==5.2.1"];

fn bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench")
}

/// The virtual environment's Python, made on first use.
async fn python() -> anyhow::Result<PathBuf> {
    let venv = bench_dir().join("seed-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(".installed");
    if marker.exists() {
        return Ok(python);
    }
    let status = tokio::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .await
        .context("python3 is needed for the seed peer")?;
    anyhow::ensure!(status.success(), "python3 -m venv failed");
    let status = tokio::process::Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        .args(PACKAGES)
        .status()
        .await?;
    anyhow::ensure!(status.success(), "pip install {PACKAGES:?} failed");
    std::fs::write(&marker, PACKAGES.join("\n"))?;
    Ok(python)
}

pub(crate) async fn run(scale: Scale) -> anyhow::Result<Row> {
    let n = scale.events;
    let config = TrackerConfig::default();
    let data = typed_events(n, 900);
    let events = validated(data.iter().cloned(), &config)?;
    std::fs::create_dir_all(bench_dir())?;
    let file = bench_dir().join("seed-events.jsonl");
    let mut lines = String::with_capacity(n * 200);
    for event in &events {
        lines.push_str(&serde_json::to_string(event)?);
        lines.push('\n');
    }
    std::fs::write(&file, lines)?;

    // The peer.
    let python = python().await?;
    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("seed/seed_tracker.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg("--events")
        .arg(&file)
        .args([
            "--pg",
            db.url(),
            "--redis",
            &server_url(),
            "--prefix",
            redis.prefix(),
        ])
        .args(["--producers", &PRODUCERS.to_string()])
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "the seed peer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let peer: Value = serde_json::from_slice(&output.stdout).context("the seed peer's output")?;
    anyhow::ensure!(
        peer["stored"].as_u64() == Some(n as u64),
        "the seed peer stored {} of {n}",
        peer["stored"]
    );
    let peer_rate = peer["events_per_s"].as_f64().unwrap_or(0.0);
    let peer_p50 = peer["track_p50_ns"].as_u64().unwrap_or(0);
    let peer_p99 = peer["track_p99_ns"].as_u64().unwrap_or(0);
    drop((db, redis));

    // Ours, on the same events, timed the same way.
    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let pg = Arc::new(PgStore::new(
        db.store().pool().clone(),
        *db.store().calendar(),
    ));
    let counters = Arc::new(redis.store().clone());
    let tracker = Tracker::start(
        config,
        Stores::new(pg, counters.clone()).with_spill(counters),
    );
    let shares: Vec<Vec<_>> = (0..PRODUCERS)
        .map(|p| data.iter().skip(p).step_by(PRODUCERS).cloned().collect())
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for share in shares {
        let tracker = tracker.clone();
        tasks.push(tokio::spawn(async move {
            let mut nanos = Vec::with_capacity(share.len());
            for (i, data) in share.into_iter().enumerate() {
                loop {
                    let timed = Instant::now();
                    match tracker.track(data.clone()) {
                        Ok(_) => {
                            nanos.push(timed.elapsed().as_nanos() as u64);
                            break;
                        }
                        Err(TrackError::BufferFull) => {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        Err(other) => return Err(other),
                    }
                }
                if i % 1_000 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            Ok(nanos)
        }));
    }
    let mut nanos = Vec::with_capacity(n);
    for task in tasks {
        nanos.extend(task.await??);
    }
    let report = tracker.stop(Duration::from_secs(300)).await;
    let ours = n as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(report.clean, "our tracker lost events: {report:?}");
    nanos.sort_unstable();
    let (p50, p99) = (percentile(&nanos, 0.5), percentile(&nanos, 0.99));
    let multiple = ours / peer_rate;
    eprintln!(
        "seed-peer: seed design {peer_rate:.0} events/s, track() median {peer_p50} ns p99 \
         {peer_p99} ns; ours {ours:.0} events/s ({multiple:.1}×), track() median {p50} ns p99 {p99} ns"
    );
    Ok(Row {
        benchmark: format!(
            "End to end, {n} events from {PRODUCERS} producers → PostgreSQL + Redis: ours beside \
             the seeds' design (Python asyncio tracker, bounded queue, asyncpg executemany, \
             Redis hashes)"
        ),
        figure: format!("ours {ours:.0} events/s, track() median {p50} ns, p99 {p99} ns"),
        reference: format!(
            "seed design {peer_rate:.0} events/s, track() median {peer_p50} ns, p99 {peer_p99} \
             ns; ours is {multiple:.1}× its throughput"
        ),
        target: "none set; reported".to_owned(),
        met: true,
    })
}
