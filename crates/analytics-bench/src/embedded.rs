//! The embedded store's reference: the same rows inserted by plain SQLite through sqlx
//! into a table of the same shape — `analytics_events` of a fresh file made by the
//! store itself (its migrations, so the shape follows the store's), opened with the
//! store's own options (`EmbeddedStore::connect_options`) — one prepared multi-row `INSERT` of
//! 1,000 rows per transaction. No idempotency check, no marks, no counters: the most
//! SQLite does with these rows on this file.

use std::time::Instant;

use analytics::core::event::Event;
use analytics::core::metrics::Measure;
use analytics_embedded::EmbeddedStore;
use analytics_embedded::testing::TestEmbedded;
use sqlx::Connection as _;
use sqlx::sqlite::SqliteConnection;

const ROWS: usize = 1_000;
const COLUMNS: &str = "event_id, occurred_at, event, product, session_id, agent_id, ticket_id, \
                       value_micros, sla_met, properties, received_at";

/// Rows per second, and the CPU seconds the process used in that time (all threads).
pub(crate) async fn reference(events: &[Event]) -> anyhow::Result<(f64, f64)> {
    let db = TestEmbedded::new().await;
    let options = EmbeddedStore::connect_options(&db.url())?;
    let mut conn = SqliteConnection::connect_with(&options).await?;
    // Bind ids as the store's table keeps them.
    let id_type: String = sqlx::query_scalar(
        "SELECT type FROM pragma_table_info('analytics_events') WHERE name = 'event_id'",
    )
    .fetch_one(&mut conn)
    .await?;
    let blob_ids = id_type.eq_ignore_ascii_case("blob");
    let row = format!("({})", ["?"; 11].join(", "));
    let full = format!(
        "INSERT INTO analytics_events ({COLUMNS}) VALUES {}",
        vec![row.as_str(); ROWS].join(", ")
    );
    let started = Instant::now();
    let cpu = crate::memory::cpu_seconds();
    let received = chrono::Utc::now().timestamp_micros();
    for chunk in events.chunks(ROWS) {
        let sql = if chunk.len() == ROWS {
            full.clone()
        } else {
            format!(
                "INSERT INTO analytics_events ({COLUMNS}) VALUES {}",
                vec![row.as_str(); chunk.len()].join(", ")
            )
        };
        let mut query = sqlx::query(&sql);
        for event in chunk {
            let measure = Measure::of(event);
            query = if blob_ids {
                query.bind(event.id().as_bytes().to_vec())
            } else {
                query.bind(event.id().to_string())
            };
            query = query
                .bind(event.timestamp().timestamp_micros())
                .bind(event.name().to_owned())
                .bind(event.product().map(|p| p.as_str()))
                .bind(event.session_id().map(str::to_owned))
                .bind(event.agent_id().map(str::to_owned))
                .bind(event.ticket_id().map(str::to_owned))
                .bind(measure.value_micros.map(|v| v as i64))
                .bind(measure.sla_met)
                .bind(event.properties_json())
                .bind(received);
        }
        let mut tx = conn.begin().await?;
        query.execute(&mut *tx).await?;
        tx.commit().await?;
    }
    let rate = events.len() as f64 / started.elapsed().as_secs_f64();
    let cpu = crate::memory::cpu_seconds() - cpu;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM analytics_events")
        .fetch_one(&mut conn)
        .await?;
    anyhow::ensure!(stored as usize == events.len(), "stored {stored} rows");
    Ok((rate, cpu))
}
