//! Configuration from the environment (SPEC §10): defaults, every variable, clear
//! errors, and secrets kept out of output.

use std::collections::HashMap;
use std::time::Duration;

use analytics_core::config::{Config, ConnectionUrl, Database, Scope, parse_api_keys};

fn config(vars: &[(&str, &str)]) -> Result<Config, analytics_core::error::ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|name| vars.get(name).cloned())
}

#[test]
fn defaults_are_those_of_the_spec() {
    let config = config(&[]).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.database, Database::embedded_default());
    assert!(
        matches!(&config.database, Database::Embedded(url) if url.expose().contains("analytics.db"))
    );
    assert_eq!(config.redis_url, None);
    assert_eq!(config.redis_prefix, "analytics");
    assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
    assert!(config.api_keys.is_empty());
    assert_eq!(config.timezone, chrono_tz::Asia::Shanghai);
    assert_eq!(config.cost_per_resolution.yuan(), 10.0);
    assert_eq!(config.batch_size, 1000);
    assert_eq!(config.flush_interval, Duration::from_millis(5000));
    assert_eq!(config.retention_days, 90);
    assert_eq!(config.validation_rules().retention_days, 90);
    assert_eq!(config.calendar().zone(), chrono_tz::Asia::Shanghai);
}

#[test]
fn every_variable_is_read() {
    let config = config(&[
        (
            "DATABASE_URL",
            "postgres://app:hunter2@db.internal:5432/analytics",
        ),
        ("REDIS_URL", "redis://127.0.0.1:6379/0"),
        ("ANALYTICS_REDIS_PREFIX", "tenant-a"),
        ("ANALYTICS_BIND", "0.0.0.0:9000"),
        (
            "ANALYTICS_API_KEYS",
            "ingest:k1-0123456789abcdef, read:k2-0123456789abcdef,admin:k3:with:colons:0123456789",
        ),
        ("ANALYTICS_TIMEZONE", "America/New_York"),
        ("ANALYTICS_COST_PER_RESOLUTION", "12.5"),
        ("ANALYTICS_BATCH_SIZE", "500"),
        ("ANALYTICS_FLUSH_INTERVAL_MS", "250"),
        ("ANALYTICS_RETENTION_DAYS", "30"),
    ])
    .unwrap();
    assert!(
        matches!(&config.database, Database::Postgres(url) if url.expose().ends_with("/analytics"))
    );
    assert_eq!(
        config.redis_url.as_ref().unwrap().expose(),
        "redis://127.0.0.1:6379/0"
    );
    assert_eq!(config.redis_prefix, "tenant-a");
    assert_eq!(config.bind.to_string(), "0.0.0.0:9000");
    let keys: Vec<(Scope, &str)> = config
        .api_keys
        .iter()
        .map(|k| (k.scope, k.key.expose()))
        .collect();
    assert_eq!(
        keys,
        [
            (Scope::Ingest, "k1-0123456789abcdef"),
            (Scope::Read, "k2-0123456789abcdef"),
            (Scope::Admin, "k3:with:colons:0123456789")
        ]
    );
    assert_eq!(config.timezone, chrono_tz::America::New_York);
    assert_eq!(config.cost_per_resolution.yuan(), 12.5);
    assert_eq!(config.batch_size, 500);
    assert_eq!(config.flush_interval, Duration::from_millis(250));
    assert_eq!(config.retention_days, 30);
    assert!(matches!(
        self::config(&[("DATABASE_URL", "sqlite://data/a.db")])
            .unwrap()
            .database,
        Database::Embedded(_)
    ));
}

#[test]
fn empty_variables_count_as_unset() {
    let config = config(&[
        ("DATABASE_URL", ""),
        ("ANALYTICS_BATCH_SIZE", "  "),
        ("ANALYTICS_API_KEYS", ""),
    ])
    .unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn bad_values_are_named_with_what_would_be_accepted() {
    let cases = [
        ("DATABASE_URL", "mysql://x", "postgres://"),
        ("REDIS_URL", "127.0.0.1:6379", "redis://"),
        ("ANALYTICS_REDIS_PREFIX", "a b", "white space"),
        ("ANALYTICS_BIND", "localhost:8080", "IP address and port"),
        (
            "ANALYTICS_API_KEYS",
            "reader:abc",
            "unknown scope \"reader\"",
        ),
        ("ANALYTICS_API_KEYS", "read", "entry 1 is not scope:key"),
        (
            "ANALYTICS_API_KEYS",
            "read:a-0123456789abcdef,admin:",
            "entry 2 has an empty key",
        ),
        (
            "ANALYTICS_API_KEYS",
            "read:a-0123456789abcdef,admin:short-key",
            "entry 2 has a key of 9 characters; keys must be at least 16",
        ),
        ("ANALYTICS_TIMEZONE", "Mars/Olympus", "IANA time zone"),
        ("ANALYTICS_COST_PER_RESOLUTION", "-1", "at least 0"),
        ("ANALYTICS_COST_PER_RESOLUTION", "ten", "number of yuan"),
        ("ANALYTICS_BATCH_SIZE", "0", "from 1 to 100000"),
        ("ANALYTICS_BATCH_SIZE", "1k", "whole number"),
        ("ANALYTICS_FLUSH_INTERVAL_MS", "-5", "whole number"),
        ("ANALYTICS_RETENTION_DAYS", "0", "from 1 to 36500"),
    ];
    for (variable, value, expected) in cases {
        let error = config(&[(variable, value)]).unwrap_err();
        assert_eq!(error.variable, variable);
        let message = error.to_string();
        assert!(message.starts_with(variable), "{message}");
        assert!(message.contains(expected), "{variable}={value}: {message}");
    }
}

#[test]
fn secrets_never_appear_in_debug_output_or_errors() {
    let config = config(&[
        ("DATABASE_URL", "postgres://app:hunter2@db:5432/analytics"),
        ("REDIS_URL", "redis://:s3cret@cache:6379"),
        ("ANALYTICS_API_KEYS", "admin:topsecretkey-0123456789"),
    ])
    .unwrap();
    let debug = format!("{config:?}");
    for secret in ["hunter2", "s3cret", "topsecretkey"] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
    assert!(
        debug.contains("postgres://app:***@db:5432/analytics"),
        "{debug}"
    );

    let error = parse_api_keys("admin:ok-0123456789abcdef,superuser:topsecretkey").unwrap_err();
    assert!(!error.to_string().contains("topsecretkey"), "{error}");
    let error = self::config(&[("DATABASE_URL", "mysql://root:hunter2@db")]).unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn a_redis_cluster_url_is_taken() {
    let config = config(&[("REDIS_URL", "redis+cluster://h1:7000,h2:7001")]).unwrap();
    assert_eq!(
        config.redis_url.as_ref().map(|url| url.expose()),
        Some("redis+cluster://h1:7000,h2:7001")
    );
}

#[test]
fn connection_urls_are_redacted_for_logs() {
    let cases = [
        ("postgres://app:pw@host/db", "postgres://app:***@host/db"),
        ("postgres://app@host/db", "postgres://app@host/db"),
        ("postgres://host/db?user=a", "postgres://host/db?user=a"),
        ("redis://:pw@host:6379", "redis://:***@host:6379"),
        (
            "redis+cluster://u:pw@h1:7000,h2:7001",
            "redis+cluster://u:***@h1:7000,h2:7001",
        ),
        ("sqlite://analytics.db", "sqlite://analytics.db"),
        ("postgres://app:p@ss@host/db", "postgres://app:***@host/db"),
        // Credentials as query parameters, in any case, and several of them.
        (
            "postgres://host/db?user=app&password=hunter2&sslmode=require",
            "postgres://host/db?user=app&password=***&sslmode=require",
        ),
        (
            "postgresql:///db?host=/run/pg&PASSWORD=hunter2&sslpassword=x",
            "postgresql:///db?host=/run/pg&PASSWORD=***&sslpassword=***",
        ),
        (
            "redis://host:6379/0?password=hunter2",
            "redis://host:6379/0?password=***",
        ),
        (
            "redis://u:hunter2@host/?password=hunter2#f",
            "redis://u:***@host/?password=***#f",
        ),
        (
            "sqlite:analytics.db?mode=rwc",
            "sqlite:analytics.db?mode=rwc",
        ),
    ];
    for (url, shown) in cases {
        assert_eq!(ConnectionUrl::new(url).redacted(), shown);
        assert_eq!(ConnectionUrl::new(url).to_string(), shown);
    }
}

#[test]
fn admin_keys_may_do_everything_others_only_their_scope() {
    assert!(Scope::Admin.allows(Scope::Ingest));
    assert!(Scope::Admin.allows(Scope::Read));
    assert!(Scope::Read.allows(Scope::Read));
    assert!(!Scope::Read.allows(Scope::Ingest));
    assert!(!Scope::Ingest.allows(Scope::Admin));
}

#[test]
fn the_return_window_is_read_in_hours_within_bounds() {
    assert_eq!(
        config(&[]).unwrap().return_window,
        std::time::Duration::from_secs(24 * 3600)
    );
    assert_eq!(
        config(&[("ANALYTICS_RETURN_WINDOW_HOURS", "48")])
            .unwrap()
            .return_window,
        std::time::Duration::from_secs(48 * 3600)
    );
    for bad in ["0", "721", "a day"] {
        let error = config(&[("ANALYTICS_RETURN_WINDOW_HOURS", bad)]).unwrap_err();
        assert!(
            error.to_string().contains("ANALYTICS_RETURN_WINDOW_HOURS"),
            "{error}"
        );
    }
}

#[test]
fn a_read_replica_is_a_postgres_url_beside_a_postgres_database() {
    assert_eq!(config(&[]).unwrap().database_read_url, None);
    let config_with = config(&[
        ("DATABASE_URL", "postgres://app@primary/analytics"),
        (
            "DATABASE_READ_URL",
            "postgres://app:hunter2@replica/analytics",
        ),
    ])
    .unwrap();
    let url = config_with.database_read_url.as_ref().unwrap();
    assert_eq!(url.expose(), "postgres://app:hunter2@replica/analytics");
    assert!(!format!("{config_with:?}").contains("hunter2"));
    for vars in [
        // No PostgreSQL database to be a replica of (the embedded default).
        vec![("DATABASE_READ_URL", "postgres://app@replica/analytics")],
        // Not PostgreSQL.
        vec![
            ("DATABASE_URL", "postgres://app@primary/analytics"),
            ("DATABASE_READ_URL", "sqlite://replica.db"),
        ],
    ] {
        let error = config(&vars).unwrap_err();
        assert!(error.to_string().contains("DATABASE_READ_URL"), "{error}");
    }
}
