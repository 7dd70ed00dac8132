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
async fn the_embedded_event_store_conforms() {
    suite::event_store_keeps_each_id_once(TestEmbedded::new().await.store()).await;
    suite::event_store_summarizes_business_days(TestEmbedded::new().await.store()).await;
    suite::event_store_marks_dirty_days(TestEmbedded::new().await.store()).await;
    suite::event_store_tracks_uncounted_writes(TestEmbedded::new().await.store()).await;
    suite::event_store_keeps_dead_letters(TestEmbedded::new().await.store()).await;
    suite::event_store_purges_before(TestEmbedded::new().await.store()).await;
}

#[tokio::test]
async fn the_embedded_stats_store_conforms() {
    suite::stats_store_replaces_and_reads_days(TestEmbedded::new().await.store()).await;
    suite::stats_store_locks_jobs(TestEmbedded::new().await.store()).await;
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
