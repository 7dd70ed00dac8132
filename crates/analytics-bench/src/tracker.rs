//! `track-latency`: how long `track()` takes, with 1 and 8 producing tasks.
//! `end-to-end`: events per second from `track()` until stored in PostgreSQL and
//! counted in Redis, beside a raw `COPY` of the same rows in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics::core::catalog::EventData;
use analytics::core::event::{SystemClock, Validator};
use analytics::core::memory::{MemoryCounters, MemoryStore};
use analytics::core::store::Stores;
use analytics::tracker::{TrackError, Tracker, TrackerConfig};
use analytics_pg::PgStore;
use analytics_pg::testing::TestDatabase;
use analytics_redis::testing::TestRedis;

use crate::workload::Rng;
use crate::{Row, Scale, pg_insert};

/// Typed events of the chatbot's and workbench's mix, as products build them.
pub(crate) fn typed_events(n: usize, seed: u64) -> Vec<EventData> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let session_id = format!("s-{}", rng.below(200_000));
            let agent_id = format!("agent-{}", rng.below(40));
            match rng.below(10) {
                0..2 => EventData::SessionStart {
                    session_id,
                    customer_id: None,
                    channel: Some("web".into()),
                    user_agent: None,
                },
                2..6 => EventData::SessionMessage {
                    session_id,
                    response_time_ms: rng.between(300.0, 4000.0),
                    tokens: Some(rng.below(800)),
                },
                6 => EventData::SessionEnd {
                    session_id,
                    duration_seconds: Some(rng.between(20.0, 900.0)),
                },
                7 => EventData::AgentSessionTakeover {
                    agent_id,
                    session_id,
                    wait_duration_seconds: rng.between(5.0, 90.0),
                },
                8 => EventData::AgentSessionMessage {
                    agent_id,
                    session_id,
                },
                _ => EventData::TicketClosed {
                    ticket_id: format!("t-{}", rng.below(50_000)),
                    resolution_duration_hours: rng.between(0.2, 30.0),
                    sla_met: rng.below(20) > 0,
                },
            }
        })
        .collect()
}

/// The events `data` makes, validated as `track()` validates them (the rows of a
/// reference, or of a peer, the same as ours).
pub(crate) fn validated(
    data: impl IntoIterator<Item = EventData>,
    config: &TrackerConfig,
) -> anyhow::Result<Vec<analytics::core::event::Event>> {
    let validator = Validator::new(config.rules, Arc::new(SystemClock));
    Ok(data
        .into_iter()
        .map(|data| validator.typed(data))
        .collect::<Result<_, _>>()?)
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(crate) async fn latency(scale: Scale) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for producers in [1, 8] {
        let n = scale.events;
        let tracker = Tracker::start(
            TrackerConfig {
                queue_capacity: n + 1,
                ..TrackerConfig::default()
            },
            Stores::new(
                Arc::new(MemoryStore::new()),
                Arc::new(MemoryCounters::new()),
            ),
        );
        let mut tasks = Vec::new();
        for task in 0..producers {
            let tracker = tracker.clone();
            let events = typed_events(n / producers, 100 + task as u64);
            tasks.push(tokio::spawn(async move {
                let mut nanos = Vec::with_capacity(events.len());
                for event in events {
                    let started = Instant::now();
                    let result = tracker.track(event);
                    nanos.push(started.elapsed().as_nanos() as u64);
                    result?;
                }
                Ok::<_, TrackError>(nanos)
            }));
        }
        let mut all = Vec::with_capacity(n);
        for task in tasks {
            all.extend(task.await??);
        }
        tracker.stop(Duration::from_secs(60)).await;
        all.sort_unstable();
        let (median, p99) = (percentile(&all, 0.5), percentile(&all, 0.99));
        eprintln!("track-latency: {producers} producers, median {median} ns, p99 {p99} ns");
        rows.push(Row {
            benchmark: format!(
                "track() latency, {producers} producing task(s), {} calls",
                all.len()
            ),
            figure: format!("median {median} ns, p99 {p99} ns"),
            reference: "—".to_owned(),
            target: "median < 1 µs".to_owned(),
            met: median < 1_000,
        });
    }
    Ok(rows)
}

pub(crate) const PRODUCERS: usize = 8;

/// Tracks `n` typed events from `producers` tasks (waiting 1 ms when the buffer is full)
/// and stops the tracker; returns events per second from the first `track()` until
/// everything is stored, how often a producer found the buffer full, and the CPU
/// seconds the process used in that time (all threads).
async fn drive(tracker: &Tracker, n: usize, producers: usize) -> anyhow::Result<(f64, u64, f64)> {
    let inputs: Vec<Vec<EventData>> = typed_events(n, 900)
        .chunks(n.div_ceil(producers))
        .map(<[EventData]>::to_vec)
        .collect();
    let started = Instant::now();
    let cpu = crate::memory::cpu_seconds();
    let mut tasks = Vec::new();
    for events in inputs {
        let tracker = tracker.clone();
        tasks.push(tokio::spawn(async move {
            let mut refused = 0u64;
            for (i, event) in events.into_iter().enumerate() {
                let mut event = Some(event);
                while let Some(data) = event.take() {
                    match tracker.track(data.clone()) {
                        Ok(_) => {}
                        Err(TrackError::BufferFull) => {
                            refused += 1;
                            event = Some(data);
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        Err(other) => return Err(other),
                    }
                }
                if i % 1_000 == 0 {
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
    let report = tracker.stop(Duration::from_secs(300)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = crate::memory::cpu_seconds() - cpu;
    anyhow::ensure!(report.clean, "the tracker lost events: {report:?}");
    let stored = tracker.telemetry().stored;
    anyhow::ensure!(stored as usize == n, "stored {stored} of {n}");
    Ok((n as f64 / elapsed, refused, cpu))
}

pub(crate) async fn end_to_end(scale: Scale) -> anyhow::Result<Row> {
    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let pg = Arc::new(PgStore::new(
        db.store().pool().clone(),
        *db.store().calendar(),
    ));
    let counters = Arc::new(redis.store().clone());
    let config = TrackerConfig::default();
    // The same rows for the reference COPY.
    let reference_events = validated(typed_events(scale.events, 900), &config)?;
    let tracker = Tracker::start(
        config,
        Stores {
            events: pg.clone(),
            stats: pg.clone(),
            counters: counters.clone(),
            spill: Some(counters.clone()),
        },
    );
    let (rate, refused, _) = drive(&tracker, scale.events, PRODUCERS).await?;

    let copy = pg_insert::keyed_copy(&db, &reference_events).await?;
    sqlx::query("TRUNCATE analytics_events, analytics_event_ids")
        .execute(pg.pool())
        .await?;
    let keyless = pg_insert::copy(&db, &reference_events).await?;
    let ratio = rate / copy;
    eprintln!(
        "end-to-end: {rate:.0} events/s ({refused} retries after a full buffer); raw COPY \
         (keyed) {copy:.0} events/s; ratio {ratio:.2}; COPY without a key {keyless:.0} events/s"
    );
    Ok(Row {
        benchmark: format!(
            "End to end, {} events from {PRODUCERS} tasks: track() → PostgreSQL + Redis",
            scale.events
        ),
        figure: format!("{rate:.0} events/s"),
        reference: format!(
            "raw COPY into partitions keyed on event_id {copy:.0} events/s (ratio {ratio:.2}); \
             without a key {keyless:.0} events/s (ratio {:.2})",
            rate / keyless
        ),
        target: "≥ 100,000 events/s and ≥ 0.6 × raw COPY (keyed)".to_owned(),
        met: rate >= 100_000.0 && ratio >= 0.6,
    })
}

/// `embedded-ingest`: the end-to-end figure on the embedded backend (an SQLite file and
/// in-process counters), beside the most plain SQLite does with the same rows into a
/// table of the same shape (`embedded_reference`), in the same run.
pub(crate) async fn embedded(scale: Scale) -> anyhow::Result<Row> {
    let config = TrackerConfig::default();
    let reference_events = validated(typed_events(scale.events, 900), &config)?;
    let (first, first_cpu) = crate::embedded::reference(&reference_events).await?;

    let db = analytics_embedded::testing::TestEmbedded::new().await;
    let tracker = Tracker::start(
        config,
        Stores::new(
            Arc::new(db.store().clone()),
            Arc::new(MemoryCounters::new()),
        ),
    );
    let (rate, refused, our_cpu) = drive(&tracker, scale.events, PRODUCERS).await?;
    drop(db);
    let (second, second_cpu) = crate::embedded::reference(&reference_events).await?;
    // The better of the two, so that warm-up favours the reference, not us (and its
    // CPU time).
    let (reference, reference_cpu) = if first >= second {
        (first, first_cpu)
    } else {
        (second, second_cpu)
    };
    let ratio = rate / reference;
    // CPU time (all threads) an event took, ours and the reference's.
    let per_event = |seconds: f64| seconds * 1e6 / scale.events as f64;
    eprintln!(
        "embedded-ingest: {rate:.0} events/s ({refused} retries after a full buffer); plain \
         SQLite {first:.0} and {second:.0} rows/s; ratio {ratio:.2}; CPU an event: ours \
         {:.2} µs, plain SQLite {:.2} µs",
        per_event(our_cpu),
        per_event(reference_cpu)
    );
    Ok(Row {
        benchmark: format!(
            "End to end, {} events from {PRODUCERS} tasks: track() → embedded SQLite + in-process counters",
            scale.events
        ),
        figure: format!(
            "{rate:.0} events/s (CPU {:.2} µs an event)",
            per_event(our_cpu)
        ),
        reference: format!(
            "plain SQLite through sqlx, a prepared 1,000-row INSERT per transaction into a \
             table of the same shape: {reference:.0} rows/s (ratio {ratio:.2}; CPU {:.2} µs a \
             row)",
            per_event(reference_cpu)
        ),
        target: "≥ 0.8 × plain SQLite".to_owned(),
        met: ratio >= 0.8,
    })
}

/// `spill-drain`: how fast events that were spilled to Redis during an outage reach
/// PostgreSQL once it answers again: a tenth of the scale's events are in the spill
/// buffer when a tracker starts on a working store; timed until every one of them is
/// stored, with no `flush()` to wake the writers.
pub(crate) async fn spill_drain(scale: Scale) -> anyhow::Result<Row> {
    use analytics::core::store::SpillBuffer;

    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let pg = Arc::new(PgStore::new(
        db.store().pool().clone(),
        *db.store().calendar(),
    ));
    let spill = Arc::new(redis.store().clone());
    let n = scale.events / 10;
    let config = TrackerConfig::default();
    let events = validated(typed_events(n, 77), &config)?;
    for chunk in events.chunks(config.batch_size) {
        spill.push(chunk).await?;
    }
    anyhow::ensure!(spill.len().await? as usize == n, "spilled {n} events");

    let started = Instant::now();
    let tracker = Tracker::start(
        TrackerConfig {
            flush_deadline: Duration::from_secs(600),
            ..config
        },
        Stores {
            events: pg.clone(),
            stats: pg.clone(),
            counters: Arc::new(MemoryCounters::new()),
            spill: Some(spill.clone()),
        },
    );
    // Nobody calls `flush` (it would wake the writers to drain): the writers drain on
    // their own, from their start.
    loop {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM analytics_event_ids")
            .fetch_one(pg.pool())
            .await?;
        if stored as usize == n {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "drained {stored} of {n} in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(spill.len().await? == 0, "the spill buffer is empty");
    tracker.stop(Duration::from_secs(10)).await;
    eprintln!("spill-drain: {n} events at {rate:.0} events/s");
    Ok(Row {
        benchmark: format!(
            "Spill drain: {n} events spilled to Redis during an outage, into PostgreSQL once it answers"
        ),
        figure: format!("{rate:.0} events/s"),
        reference: "before: one batch per flush interval, ~200 events/s (as reported in issue 13, not rerun)".to_owned(),
        target: "≥ 10,000 events/s (no wait for an interval)".to_owned(),
        met: rate >= 10_000.0,
    })
}
