//! A key prefix of its own per test (feature `testing`).
//!
//! Each [`TestRedis`] uses the prefix `test:{uuid}:` on the server named by
//! `ANALYTICS_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) and deletes its keys
//! with `SCAN` + `UNLINK` when dropped — never `FLUSHDB` — so tests share the server and
//! run in parallel. A test that cannot reach the server fails and says so.

use deadpool_redis::redis;
use uuid::Uuid;

use crate::{RedisOptions, RedisStore};

/// The variable that names the server for tests.
pub const TEST_URL_VARIABLE: &str = "ANALYTICS_TEST_REDIS_URL";

/// The server tests use.
pub fn server_url() -> String {
    std::env::var(TEST_URL_VARIABLE)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// A store under a fresh prefix, whose keys are deleted on drop.
#[derive(Debug)]
pub struct TestRedis {
    prefix: String,
    store: RedisStore,
}

impl TestRedis {
    /// A store under `test:{uuid}:`.
    ///
    /// # Panics
    ///
    /// When the test server does not answer.
    pub async fn new() -> TestRedis {
        TestRedis::with_options(RedisOptions::default()).await
    }

    /// A store under `test:{uuid}:` with these options (their prefix is replaced).
    ///
    /// # Panics
    ///
    /// When the test server does not answer.
    pub async fn with_options(options: RedisOptions) -> TestRedis {
        let prefix = format!("test:{}:", Uuid::now_v7().simple());
        let url = server_url();
        let store = RedisStore::connect(
            &url,
            RedisOptions {
                prefix: prefix.clone(),
                ..options
            },
        )
        .unwrap_or_else(|error| panic!("bad Redis test URL {url}: {error}"));
        store.ping().await.unwrap_or_else(|error| {
            panic!(
                "cannot reach the Redis test server at {url} (set {TEST_URL_VARIABLE} to \
                 another one, or start it): {error}"
            )
        });
        TestRedis { prefix, store }
    }

    /// The store.
    pub fn store(&self) -> &RedisStore {
        &self.store
    }

    /// The prefix, `test:{uuid}:`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every key under the prefix, sorted.
    ///
    /// # Panics
    ///
    /// When the server does not answer.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = scan(&self.prefix).unwrap_or_else(|error| panic!("SCAN failed: {error}"));
        keys.sort();
        keys
    }

    /// A plain connection to the test server, for inspecting keys.
    ///
    /// # Panics
    ///
    /// When the server does not answer.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(server_url())
            .and_then(|client| client.get_connection())
            .unwrap_or_else(|error| panic!("cannot connect to Redis: {error}"))
    }
}

fn scan(prefix: &str) -> redis::RedisResult<Vec<String>> {
    let client = redis::Client::open(server_url())?;
    let mut conn = client.get_connection()?;
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query(&mut conn)?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let Ok(keys) = scan(&self.prefix) else {
            return;
        };
        if keys.is_empty() {
            return;
        }
        if let Ok(mut conn) =
            redis::Client::open(server_url()).and_then(|client| client.get_connection())
        {
            let _ = redis::cmd("UNLINK").arg(&keys).query::<()>(&mut conn);
        }
    }
}
