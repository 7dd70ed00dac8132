//! The embedded store conforms, keeps its data across a restart, and refuses another
//! time zone.

use analytics_core::conformance as suite;
use analytics_core::store::{EventStore, StatsStore};
use analytics_core::testing::{at, event};
use analytics_core::time::{Calendar, DateRange};
use analytics_embedded::testing::TestEmbedded;
use analytics_embedded::{EmbeddedStore, Error};
use chrono::NaiveDate;
use serde_json::json;

#[tokio::test]
async fn the_embedded_stores_conform() {
    suite::event_store_conforms(async || TestEmbedded::new().await, TestEmbedded::store).await;
    suite::stats_store_conforms(async || TestEmbedded::new().await, TestEmbedded::store).await;
}

#[tokio::test]
async fn data_survives_closing_and_reopening_the_file() {
    let db = TestEmbedded::new().await;
    let e = event(
        "ticket.closed",
        at("2025-12-01T02:00:00Z"),
        json!({"ticket_id": "t", "resolution_duration_hours": 2, "sla_met": true}),
    );
    db.store().insert(std::slice::from_ref(&e)).await.unwrap();
    let day = NaiveDate::from_ymd_opt(2025, 12, 1).unwrap();
    let summary = db
        .store()
        .summarize(Calendar::default().day_window(day))
        .await
        .unwrap();
    db.store().put_day(day, &summary).await.unwrap();
    db.store().close().await;

    let reopened = EmbeddedStore::open(&db.url(), Calendar::default())
        .await
        .unwrap();
    assert_eq!(
        reopened.insert(&[e]).await.unwrap(),
        [false],
        "the id is still known"
    );
    assert_eq!(
        reopened.days(DateRange::day(day)).await.unwrap(),
        [(day, summary.totals)]
    );
    assert_eq!(
        reopened
            .summarize(Calendar::default().day_window(day))
            .await
            .unwrap(),
        summary
    );
    reopened.close().await;
}

#[tokio::test]
async fn a_database_keeps_the_time_zone_it_was_set_up_with() {
    let db = TestEmbedded::new().await;
    db.store().close().await;
    let error = EmbeddedStore::open(&db.url(), Calendar::new(chrono_tz::America::New_York))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::TimeZoneMismatch { .. }), "{error}");
}

/// A file written before ids were kept as 16-byte blobs (migration 0004) keeps its
/// events: their ids are converted, so re-sending one is still recognized.
#[tokio::test]
async fn a_file_with_text_ids_is_converted_and_keeps_recognizing_them() {
    use sqlx::Connection as _;
    let path = std::env::temp_dir().join(format!(
        "analytics-test-{}.db",
        uuid::Uuid::now_v7().simple()
    ));
    let url = format!("sqlite://{}", path.display());
    let stored = event(
        "session.start",
        at("2025-12-01T02:00:00Z"),
        json!({"session_id": "s-old"}),
    );
    {
        // The schema as it was before 0004, with one event in it.
        let options = EmbeddedStore::connect_options(&url).unwrap();
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        for migration in analytics_embedded::MIGRATOR
            .iter()
            .filter(|m| m.version < 4)
        {
            sqlx::raw_sql(&migration.sql)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        sqlx::query(
            "INSERT INTO analytics_events (event_id, occurred_at, event, session_id, \
             properties, received_at) VALUES (?, ?, 'session.start', 's-old', '{}', 0)",
        )
        .bind(stored.id().to_string())
        .bind(stored.timestamp().timestamp_micros())
        .execute(&mut conn)
        .await
        .unwrap();
        // What sqlx records of the migrations it ran.
        sqlx::raw_sql(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        for migration in analytics_embedded::MIGRATOR
            .iter()
            .filter(|m| m.version < 4)
        {
            sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                 execution_time) VALUES (?, ?, TRUE, ?, 0)",
            )
            .bind(migration.version)
            .bind(&*migration.description)
            .bind(&*migration.checksum)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        conn.close().await.unwrap();
    }
    let store = EmbeddedStore::open(&url, Calendar::default())
        .await
        .unwrap();
    let again = event(
        "session.start",
        at("2025-12-03T02:00:00Z"),
        json!({"session_id": "s-new"}),
    );
    let resent = analytics_core::testing::event_with_id(
        stored.id(),
        "session.start",
        at("2025-12-02T02:00:00Z"),
        json!({"session_id": "s-old"}),
    );
    assert_eq!(
        store.insert(&[resent, again]).await.unwrap(),
        [false, true],
        "the converted id is still a duplicate"
    );
    let ids: Vec<Vec<u8>> = sqlx::query_scalar("SELECT event_id FROM analytics_events")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(ids.iter().all(|id| id.len() == 16), "ids are 16 bytes");
    assert!(ids.contains(&stored.id().as_bytes().to_vec()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// On a multi-threaded runtime a write blocks in place: from a worker (a spawned task,
/// as the tracker's writers) and from the thread that runs the runtime (`block_on`, as
/// a test body or a product's `main`), it stores, and a stored id is recognized.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_block_in_place_from_a_worker_and_from_the_runtime_thread() {
    let db = TestEmbedded::new().await;
    let first = event(
        "session.start",
        at("2025-12-01T02:00:00Z"),
        json!({"session_id": "s1"}),
    );
    let second = event(
        "session.start",
        at("2025-12-01T03:00:00Z"),
        json!({"session_id": "s2"}),
    );
    let written = db
        .store()
        .write(std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!(written.new, [true], "from the runtime's thread");
    let store = db.store().clone();
    let both = [first, second];
    let written = tokio::spawn(async move { store.write(&both).await.map(|w| w.new) })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(written, [false, true], "from a worker");
}

/// The writer connection does not checkpoint the write-ahead log itself; a task does,
/// after writes. Ten rounds of writes with pauses between them leave the log about one
/// round long (it starts over once a checkpoint has caught up), not ten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_checkpointed_in_the_background() {
    let db = TestEmbedded::new().await;
    let wal = std::path::PathBuf::from(format!("{}-wal", db.url().trim_start_matches("sqlite://")));
    let round = |n: usize| {
        (0..2_000)
            .map(|i| {
                event(
                    "session.message",
                    at("2025-12-01T02:00:00Z") + chrono::TimeDelta::seconds((n * 2_000 + i) as i64),
                    json!({"session_id": format!("s{n}-{i}"), "response_time_ms": i}),
                )
            })
            .collect::<Vec<_>>()
    };
    db.store().insert(&round(0)).await.unwrap();
    let one_round = std::fs::metadata(&wal).unwrap().len();
    assert!(
        one_round > 100_000,
        "a round fills the log: {one_round} bytes"
    );
    for n in 1..10 {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        db.store().insert(&round(n)).await.unwrap();
    }
    let after = std::fs::metadata(&wal).unwrap().len();
    assert!(
        after < 3 * one_round,
        "the log stays about a round long: {after} bytes after ten rounds of {one_round}"
    );
}
