//! Migrations and the settings they record.

use analytics_core::time::Calendar;
use analytics_pg::testing::TestDatabase;
use analytics_pg::{Error, MIGRATOR, PgStore, PoolOptions};

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    let db = TestDatabase::new().await;
    let applied = |db: &TestDatabase| {
        let pool = db.store().pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(applied(&db).await as usize, MIGRATOR.iter().count());
    db.store().migrate().await.unwrap();
    db.store().migrate().await.unwrap();
    assert_eq!(applied(&db).await as usize, MIGRATOR.iter().count());
}

#[tokio::test]
async fn a_database_keeps_the_time_zone_it_was_set_up_with() {
    let db = TestDatabase::new().await;
    let stored: String =
        sqlx::query_scalar("SELECT value FROM analytics_settings WHERE key = 'timezone'")
            .fetch_one(db.store().pool())
            .await
            .unwrap();
    assert_eq!(stored, "Asia/Shanghai");

    let new_york = PgStore::connect(
        db.url(),
        Calendar::new(chrono_tz::America::New_York),
        PoolOptions::default(),
    )
    .await
    .unwrap();
    let error = new_york.migrate().await.unwrap_err();
    assert!(matches!(error, Error::TimeZoneMismatch { .. }), "{error}");
    assert!(error.to_string().contains("Asia/Shanghai"), "{error}");
    assert!(!error.is_transient());
    let core: analytics_core::Error = error.into();
    assert!(core.to_string().contains("postgres failed"), "{core}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_error() {
    let options = PoolOptions {
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_millis(500),
    };
    // Nothing listens on port 1.
    let error = PgStore::connect(
        "postgres://postgres@127.0.0.1:1/postgres",
        Calendar::default(),
        options,
    )
    .await
    .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    let core: analytics_core::Error = error.into();
    assert!(matches!(
        core,
        analytics_core::Error::Store(ref e) if e.kind == analytics_core::error::StoreErrorKind::Unavailable
    ));
}
