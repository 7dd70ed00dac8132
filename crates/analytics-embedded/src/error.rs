//! The errors of the embedded store, and how they map onto the storage errors of
//! `analytics-core` (retryable or not).

use analytics_core::error::StoreError;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong with the embedded database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A query failed, or the file could not be opened.
    #[error("embedded database query failed")]
    Query(#[from] sqlx::Error),
    /// Applying the schema failed.
    #[error("embedded database migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database holds events or statistics the domain model does not know.
    #[error("the embedded database holds events or statistics the domain model does not know")]
    Model(#[source] analytics_core::Error),
    /// A statistics row names a field the metric model does not know.
    #[error(
        "the embedded database holds the statistics field {field:?}, which the metric model does not know"
    )]
    UnknownField {
        /// The field name found.
        field: String,
    },
    /// A sum is too large for an SQLite integer.
    #[error("the statistics field {field:?} exceeds the largest integer")]
    Overflow {
        /// The field.
        field: String,
    },
    /// The database was set up for another business time zone.
    #[error(
        "the embedded database was set up for the time zone {stored}, not {configured}: daily \
         statistics follow the zone they were created with"
    )]
    TimeZoneMismatch {
        /// The zone recorded in the database.
        stored: String,
        /// The zone configured now.
        configured: String,
    },
}

impl Error {
    /// Whether retrying later may succeed: the database is busy or locked, or the pool
    /// timed out.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Query(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => true,
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
            Error::Query(sqlx::Error::Database(db)) => db
                .code()
                .and_then(|code| code.parse::<i32>().ok())
                .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
            _ => false,
        }
    }
}

impl From<Error> for analytics_core::Error {
    fn from(error: Error) -> analytics_core::Error {
        let store_error = if error.is_transient() {
            StoreError::unavailable("embedded database", error)
        } else {
            StoreError::failed("embedded database", error)
        };
        analytics_core::Error::Store(store_error)
    }
}
