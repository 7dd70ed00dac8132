//! The errors of the Redis store, and how they map onto the storage errors of
//! `analytics-core` (retryable or not).

use analytics_core::error::StoreError;
use deadpool_redis::redis::{ErrorKind, RedisError, ServerErrorKind};

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
    /// the pool is exhausted, or a cluster is failing over or resharding
    /// (`CLUSTERDOWN`, `TRYAGAIN`, `MASTERDOWN`, a redirection the client gave up on, no
    /// connection to the node of a slot).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Command(error) => {
                error.is_io_error()
                    || error.is_connection_dropped()
                    || error.is_connection_refusal()
                    || error.is_timeout()
                    || error.is_cluster_error()
                    || error.kind() == ErrorKind::ClusterConnectionNotFound
                    || matches!(error.kind(), ErrorKind::Server(ServerErrorKind::MasterDown))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_failing_over_is_transient_a_script_error_is_not() {
        for kind in [
            ServerErrorKind::ClusterDown,
            ServerErrorKind::TryAgain,
            ServerErrorKind::MasterDown,
        ] {
            let error = Error::Command(RedisError::from((ErrorKind::Server(kind), "down")));
            assert!(error.is_transient(), "{kind:?}");
        }
        let error = Error::Command(RedisError::from((
            ErrorKind::ClusterConnectionNotFound,
            "no node",
        )));
        assert!(error.is_transient());
        let error = Error::Command(RedisError::from((
            ErrorKind::Server(ServerErrorKind::CrossSlot),
            "keys in different slots",
        )));
        assert!(!error.is_transient());
    }
}
