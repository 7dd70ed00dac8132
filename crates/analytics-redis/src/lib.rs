//! Redis implementation of the counter and spill-buffer traits of `analytics-core`:
//! [`RedisStore`] is a `CounterStore` (real-time counters, SPEC §7) and a
//! `SpillBuffer` (events kept aside while PostgreSQL is down).
//!
//! Counters are derived data: PostgreSQL is the source of truth, and
//! `CounterStore::replace` rebuilds a bucket from its statistics. This crate depends on
//! `analytics-core` only, never on another adapter.
//!
//! Keys, all under the configured prefix (`analytics` by default):
//!
//! | key | type | holds | TTL |
//! |---|---|---|---|
//! | `{p}:daily:{date}` | hash | field → value for the day | 7 days |
//! | `{p}:hourly:{date}:{hour}` | hash | the same for the hour | 2 days |
//! | `{p}:monthly:{month}` | hash | the same for the month | 400 days |
//! | `{p}:agent:daily:{date}` | hash | `{field}\|{agent}` → value | 7 days |
//! | `{p}:agent:monthly:{month}` | hash | `{field}\|{agent}` → value | 400 days |
//! | `{p}:active_sessions` | sorted set | session → last activity (ms) | none |
//! | `{p}:agent_presence` | hash | agent → `{µs} {status}` of its latest status | none |
//! | `{p}:online_agents` | set | agents whose latest status is not offline | none |
//! | `{p}:counters_intact` | string | present while the counters are intact (set by a rebuild that saw no loss) | none |
//! | `{p}:counters_rebuilding` | string | the token of the counter rebuild under way | 1 hour |
//! | `{p}:event_buffer` | list | spilled events (JSON), oldest first | none |
//! | `{p}:event_buffer:claims` | sorted set | claim token → lease deadline (ms) | none |
//! | `{p}:event_buffer:claim:{token}` | list | the events of one claim | none |
//! | `{p}:event_buffer:dead` | list | spilled entries that are not events | none |
//!
//! Field names are `analytics_core::metrics::Field::name`; values are integers (counts,
//! and sums in millionths), so every increment is an exact `HINCRBY`.
#![deny(missing_docs)]

mod counters;
mod error;
mod keys;
mod spill;
#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

use deadpool_redis::{Pool, Runtime};

pub use counters::agent_status;
pub use deadpool_redis::redis;
pub use error::{Error, Result};
pub use keys::{DAILY_TTL, HOURLY_TTL, Keys, MONTHLY_TTL};
pub use spill::{MAX_CLAIM, dead_letters};

/// How a [`RedisStore`] connects and behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// The key prefix (`ANALYTICS_REDIS_PREFIX`).
    pub prefix: String,
    /// The most connections open at once.
    pub pool_size: usize,
    /// How long a spill-buffer claim stays with its drainer before another process may
    /// take its events back (a drainer that died loses nothing).
    pub claim_lease: Duration,
    /// Sessions idle for longer than this are removed from `{p}:active_sessions` when
    /// counters are applied (counting active sessions takes its own, shorter cutoff).
    pub session_horizon: Duration,
}

impl Default for RedisOptions {
    fn default() -> RedisOptions {
        RedisOptions {
            prefix: "analytics".to_owned(),
            pool_size: 8,
            claim_lease: Duration::from_secs(30),
            session_horizon: Duration::from_secs(24 * 3600),
        }
    }
}

/// Real-time counters and the spill buffer in Redis.
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool,
    keys: Keys,
    options: RedisOptions,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("keys", &self.keys)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on the Redis server at `url`. Connections are opened on first use, so
    /// this succeeds while Redis is down; operations then fail with a transient error.
    ///
    /// # Errors
    ///
    /// [`Error::Pool`] when `url` is not a Redis URL.
    pub fn connect(url: &str, options: RedisOptions) -> Result<RedisStore> {
        let mut config = deadpool_redis::Config::from_url(url);
        config.pool = Some(deadpool_redis::PoolConfig {
            max_size: options.pool_size,
            timeouts: deadpool_redis::Timeouts {
                wait: Some(Duration::from_secs(5)),
                create: Some(Duration::from_secs(5)),
                recycle: Some(Duration::from_secs(5)),
            },
            ..deadpool_redis::PoolConfig::default()
        });
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|error| Error::Pool(error.to_string()))?;
        Ok(RedisStore {
            pool,
            keys: Keys::new(&options.prefix),
            options,
        })
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The options.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    async fn connection(&self) -> Result<deadpool_redis::Connection> {
        self.pool.get().await.map_err(Error::from)
    }

    /// Checks that Redis answers.
    ///
    /// # Errors
    ///
    /// A transient [`Error`] when it does not.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.connection().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }
}
