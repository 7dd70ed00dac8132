//! The errors of the Redis store, and how they map onto the storage errors of
//! `analytics-core` (retryable or not).

use analytics_core::error::StoreError;
use deadpool_redis::redis::RedisError;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A command failed or the connection broke.
    #[error("redis command failed")]
    Command(#[from] RedisError),
    /// No connection could be had from the pool (Redis unreachable, or all busy).
    #[error("no redis connection: {0}")]
    Pool(String),
    /// Redis holds a value this store did not write.
    #[error("redis holds an unexpected value at {key}: {what}")]
    Unexpected {
        /// The key.
        key: String,
        /// What is wrong with it.
        what: String,
    },
}

impl From<deadpool_redis::PoolError> for Error {
    fn from(error: deadpool_redis::PoolError) -> Error {
        match error {
            deadpool_redis::PoolError::Backend(error) => Error::Command(error),
            other => Error::Pool(other.to_string()),
        }
    }
}

impl Error {
    /// Whether retrying later may succeed: Redis is unreachable, the connection broke,
    /// or the pool is exhausted.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Command(error) => {
                error.is_io_error()
                    || error.is_connection_dropped()
                    || error.is_connection_refusal()
                    || error.is_timeout()
            }
            Error::Pool(_) => true,
            Error::Unexpected { .. } => false,
        }
    }
}

impl From<Error> for analytics_core::Error {
    fn from(error: Error) -> analytics_core::Error {
        let store_error = if error.is_transient() {
            StoreError::unavailable("redis", error)
        } else {
            StoreError::failed("redis", error)
        };
        analytics_core::Error::Store(store_error)
    }
}
