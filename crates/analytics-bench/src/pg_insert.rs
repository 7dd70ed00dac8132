//! `pg-insert`: events per second through `PgStore::insert` in batches of 1,000, beside
//! a raw `COPY` of the same rows into partitions keyed on `event_id` (and, reported,
//! into the events table itself, which has no key of its own), in the same run.

use std::sync::Arc;
use std::time::Instant;

use analytics::core::event::Event;
use analytics::core::store::EventStore;
use analytics_pg::PgStore;
use analytics_pg::testing::TestDatabase;
use chrono::Utc;
use sqlx::postgres::PgPoolCopyExt;

use crate::{Row, Scale, workload};

const BATCH: usize = 1_000;
const DAYS: i64 = 30;
/// Batches in flight in the pipelined measurement.
const PIPELINED_WRITERS: usize = 4;

/// Prints what `n` stored events take on disk (after `VACUUM ANALYZE`): event detail
/// (the partitions, with their TOAST and indexes) and the id registry, per event.
async fn storage(db: &TestDatabase, n: usize) -> anyhow::Result<()> {
    let pool = db.store().pool();
    sqlx::query("VACUUM ANALYZE").execute(pool).await?;
    let (detail, registry): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::int8 \
                 FROM pg_inherits WHERE inhparent = 'analytics_events'::regclass), \
                pg_total_relation_size('analytics_event_ids')",
    )
    .fetch_one(pool)
    .await?;
    let per = |bytes: i64| bytes as f64 / n.max(1) as f64;
    eprintln!(
        "pg-insert: storage for {n} events: detail {} MiB ({:.0} bytes an event), id \
         registry {} MiB ({:.0} bytes an event)",
        detail >> 20,
        per(detail),
        registry >> 20,
        per(registry)
    );
    Ok(())
}

pub(crate) async fn run(scale: Scale) -> anyhow::Result<Vec<Row>> {
    let db = TestDatabase::new().await;
    let store = db.store();
    let end = Utc::now();
    let events = workload::events(scale.events, DAYS, end, 42);
    // Partitions exist before either measurement: DDL is not what is measured.
    let today = store.calendar().date(end);
    store
        .ensure_partitions(
            (today - chrono::TimeDelta::days(DAYS + 1))
                .iter_days()
                .take(DAYS as usize + 3),
        )
        .await?;

    let copy_first = keyed_copy(&db, &events).await?;
    let sequential = insert(&db, &events, 1).await?;
    truncate(&db).await?;
    let pipelined = insert(&db, &events, PIPELINED_WRITERS).await?;
    storage(&db, events.len()).await?;
    truncate(&db).await?;
    let copy_second = keyed_copy(&db, &events).await?;
    let keyless = copy(&db, &events).await?;
    truncate(&db).await?;
    // The better COPY of the two, so that warm-up favours the reference, not us.
    let reference = copy_first.max(copy_second);
    eprintln!(
        "pg-insert: one writer {sequential:.0} events/s, {PIPELINED_WRITERS} writers \
         {pipelined:.0} events/s; keyed COPY {copy_first:.0} and {copy_second:.0} events/s; \
         COPY without a key {keyless:.0} events/s"
    );
    let row = |how: String, rate: f64| {
        let ratio = rate / reference;
        Row {
            benchmark: format!(
                "PostgreSQL insert, {} events in batches of {BATCH}, {how}",
                scale.events
            ),
            figure: format!("{rate:.0} events/s"),
            reference: format!(
                "raw COPY into partitions keyed on event_id {reference:.0} events/s (ratio \
                 {ratio:.2}); without a key {keyless:.0} events/s (ratio {:.2})",
                rate / keyless
            ),
            target: "≥ 0.6 × raw COPY (keyed)".to_owned(),
            met: ratio >= 0.6,
        }
    };
    Ok(vec![
        row("one batch at a time".to_owned(), sequential),
        row(format!("{PIPELINED_WRITERS} batches in flight"), pipelined),
    ])
}

async fn truncate(db: &TestDatabase) -> anyhow::Result<()> {
    sqlx::query("TRUNCATE analytics_events, analytics_event_ids")
        .execute(db.store().pool())
        .await?;
    sqlx::query("CHECKPOINT").execute(db.store().pool()).await?;
    Ok(())
}

/// Our path: `EventStore::insert` in batches of 1,000, with `writers` batches in
/// flight at once (1 is the tracker's single flusher writing one batch after another).
async fn insert(db: &TestDatabase, events: &[Event], writers: usize) -> anyhow::Result<f64> {
    let store = Arc::new(PgStore::new(
        db.store().pool().clone(),
        *db.store().calendar(),
    ));
    let batches: Vec<Vec<Event>> = events.chunks(BATCH).map(<[Event]>::to_vec).collect();
    let per_writer = batches.len().div_ceil(writers);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for share in batches.chunks(per_writer) {
        let share = share.to_vec();
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut stored = 0;
            for batch in share {
                stored += store
                    .insert(&batch)
                    .await?
                    .iter()
                    .filter(|new| **new)
                    .count();
            }
            Ok::<_, analytics::core::Error>(stored)
        }));
    }
    let mut stored = 0;
    for task in tasks {
        stored += task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        stored == events.len(),
        "stored {stored} of {} events",
        events.len()
    );
    Ok(events.len() as f64 / elapsed)
}

/// The rows copied into `analytics_events` itself: partitions without a key of their
/// own (the id registry is the key), so the most PostgreSQL can do with these rows and
/// no guarantee at all. Reported beside the reference; also how benchmarks load events.
pub(crate) async fn copy(db: &TestDatabase, events: &[Event]) -> anyhow::Result<f64> {
    copy_into(db, "analytics_events", events).await
}

/// The reference: the same rows, encoded for `COPY … FROM STDIN` and streamed in one
/// `COPY` into a table of the same shape whose partitions (the same business days) are
/// keyed on `event_id`: what storing them with an id key costs at the least, and the
/// yardstick issue 13 set its ratio against. The key of the events table itself moved
/// to the id registry (`migrations/0006_event_ids.sql`), which this does not fill.
/// The partitions are made like those of `analytics_events` that exist; the table is
/// emptied afterwards.
pub(crate) async fn keyed_copy(db: &TestDatabase, events: &[Event]) -> anyhow::Result<f64> {
    sqlx::query(
        "DO $$ \
         DECLARE p record; \
         BEGIN \
             CREATE TABLE IF NOT EXISTS bench_keyed_events \
                 (LIKE analytics_events INCLUDING DEFAULTS) PARTITION BY RANGE (occurred_at); \
             FOR p IN \
                 SELECT 'bench_keyed_' || c.relname AS name, \
                        pg_get_expr(c.relpartbound, c.oid) AS bound \
                 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = 'analytics_events'::regclass \
             LOOP \
                 IF to_regclass(p.name) IS NULL THEN \
                     EXECUTE format('CREATE TABLE %I PARTITION OF bench_keyed_events %s', \
                                    p.name, p.bound); \
                     EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (event_id)', p.name); \
                 END IF; \
             END LOOP; \
         END $$",
    )
    .execute(db.store().pool())
    .await?;
    let rate = copy_into(db, "bench_keyed_events", events).await?;
    sqlx::query("TRUNCATE bench_keyed_events")
        .execute(db.store().pool())
        .await?;
    sqlx::query("CHECKPOINT").execute(db.store().pool()).await?;
    Ok(rate)
}

async fn copy_into(db: &TestDatabase, table: &str, events: &[Event]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut copy = db
        .store()
        .pool()
        .copy_in_raw(&format!(
            "COPY {table} ({}) FROM STDIN WITH (FORMAT binary)",
            analytics_pg::testing::copy::COLUMNS
        ))
        .await?;
    // The store's own encoding: binary rows between a header and a trailer.
    let mut buffer = Vec::with_capacity(1 << 22);
    buffer.extend_from_slice(analytics_pg::testing::copy::BINARY_HEADER);
    for chunk in events.chunks(10_000) {
        for event in chunk {
            analytics_pg::testing::copy::encode_binary(&mut buffer, event);
        }
        copy.send(buffer.as_slice()).await?;
        buffer.clear();
    }
    copy.send(&analytics_pg::testing::copy::BINARY_TRAILER[..])
        .await?;
    let rows = copy.finish().await?;
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        rows as usize == events.len(),
        "copied {rows} of {} rows",
        events.len()
    );
    Ok(events.len() as f64 / elapsed)
}
