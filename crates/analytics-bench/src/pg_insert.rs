//! `pg-insert`: events per second through `PgStore::insert` in batches of 1,000, beside
//! a raw `COPY` of the same rows into the same table, measured in the same run.

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

pub(crate) async fn run(scale: Scale) -> anyhow::Result<Vec<Row>> {
    let db = TestDatabase::new().await;
    let store = db.store();
    let end = Utc::now();
    let events = workload::events(scale.events, DAYS, end, 42);
    // Partitions exist before either measurement: DDL is not what is measured.
    let today = store.calendar().date(end);
    store
        .prepare_partitions(today - chrono::TimeDelta::days(DAYS + 1), DAYS as u32 + 2)
        .await?;

    let copy_first = copy(&db, &events).await?;
    truncate(&db).await?;
    let sequential = insert(&db, &events, 1).await?;
    truncate(&db).await?;
    let pipelined = insert(&db, &events, PIPELINED_WRITERS).await?;
    truncate(&db).await?;
    let copy_second = copy(&db, &events).await?;
    // The better COPY of the two, so that warm-up favours the reference, not us.
    let reference = copy_first.max(copy_second);
    eprintln!(
        "pg-insert: one writer {sequential:.0} events/s, {PIPELINED_WRITERS} writers \
         {pipelined:.0} events/s; COPY {copy_first:.0} and {copy_second:.0} events/s"
    );
    let row = |how: String, rate: f64| {
        let ratio = rate / reference;
        Row {
            benchmark: format!(
                "PostgreSQL insert, {} events in batches of {BATCH}, {how}",
                scale.events
            ),
            figure: format!("{rate:.0} events/s"),
            reference: format!("raw COPY {reference:.0} events/s (ratio {ratio:.2})"),
            target: "≥ 0.6 × raw COPY".to_owned(),
            met: ratio >= 0.6,
        }
    };
    Ok(vec![
        row("one batch at a time".to_owned(), sequential),
        row(format!("{PIPELINED_WRITERS} batches in flight"), pipelined),
    ])
}

async fn truncate(db: &TestDatabase) -> anyhow::Result<()> {
    sqlx::query("TRUNCATE analytics_events")
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

/// The reference: the same rows, encoded for `COPY … FROM STDIN` and streamed in one
/// `COPY` into the same table (no idempotency registry).
pub(crate) async fn copy(db: &TestDatabase, events: &[Event]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut copy = db
        .store()
        .pool()
        .copy_in_raw(&format!(
            "COPY analytics_events ({}) FROM STDIN",
            analytics_pg::copy::COLUMNS
        ))
        .await?;
    let mut buffer = String::with_capacity(1 << 20);
    for chunk in events.chunks(10_000) {
        buffer.clear();
        for event in chunk {
            analytics_pg::copy::encode(&mut buffer, event);
        }
        copy.send(buffer.as_bytes()).await?;
    }
    let rows = copy.finish().await?;
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        rows as usize == events.len(),
        "copied {rows} of {} rows",
        events.len()
    );
    Ok(events.len() as f64 / elapsed)
}
