//! `connect` opens the stores the configuration names, and they work together.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use analytics::core::catalog::EventData;
use analytics::core::config::Config;
use analytics::core::event::SystemClock;
use analytics::stats::{Stats, StatsConfig};
use analytics::tracker::{Tracker, TrackerConfig};
use analytics_pg::testing::TestDatabase;
use analytics_redis::testing::TestRedis;

/// A configuration from these variables alone.
pub(crate) fn config(vars: &[(&str, &str)]) -> Config {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|name| vars.get(name).cloned()).unwrap()
}

/// Tracks a few events through the backends and reads them back as statistics.
async fn round_trip(backends: &analytics::Backends, config: &Config) {
    let tracker = Tracker::start(TrackerConfig::from_config(config), backends.stores.clone());
    for i in 0..25 {
        tracker
            .track(EventData::SessionStart {
                session_id: format!("s-{i}"),
                customer_id: None,
                channel: None,
                user_agent: None,
            })
            .unwrap();
    }
    assert!(tracker.stop(Duration::from_secs(10)).await.clean);
    let stats = Stats::new(
        backends.stats_stores(),
        Arc::new(SystemClock),
        StatsConfig::from_config(config),
    );
    assert_eq!(
        stats
            .daily(stats.today())
            .await
            .unwrap()
            .total_customers_served,
        25
    );
    assert_eq!(stats.realtime().await.unwrap().active_sessions, 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqlite_url_opens_the_embedded_store_with_in_process_counters() {
    let path = std::env::temp_dir().join(format!("analytics-connect-{}.db", std::process::id()));
    let url = format!("sqlite://{}", path.display());
    let config = config(&[("DATABASE_URL", &url)]);
    let backends = analytics::connect(&config).await.unwrap();
    assert!(
        backends.description.contains("embedded"),
        "{}",
        backends.description
    );
    assert!(backends.description.contains("in-process counters"));
    assert!(backends.stores.spill.is_none());
    round_trip(&backends, &config).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_redis_urls_open_postgres_and_redis() {
    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let config = config(&[
        ("DATABASE_URL", db.url()),
        ("REDIS_URL", &analytics_redis::testing::server_url()),
        ("ANALYTICS_REDIS_PREFIX", redis.prefix()),
    ]);
    let backends = analytics::connect(&config).await.unwrap();
    assert!(
        backends
            .description
            .starts_with("PostgreSQL at postgres://"),
        "{}",
        backends.description
    );
    assert!(backends.description.contains("Redis at redis://"));
    assert!(backends.stores.spill.is_some());
    round_trip(&backends, &config).await;
    assert!(
        !redis.keys().is_empty(),
        "counters went to Redis under the prefix"
    );
}

#[tokio::test]
async fn an_unreachable_postgres_is_reported_with_its_url_masked() {
    let config = config(&[(
        "DATABASE_URL",
        "postgres://app:hunter2@127.0.0.1:1/analytics",
    )]);
    let error = analytics::connect(&config).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("postgres://app:***@127.0.0.1:1/analytics"),
        "{message}"
    );
    assert!(!format!("{error:?}").contains("hunter2"));
}
