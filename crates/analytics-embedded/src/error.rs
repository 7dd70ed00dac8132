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
    /// Whether retrying later may succeed: every query error that is not about the
    /// data — busy or locked, a full disk, an I/O error or a read-only file
    /// (SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY: retried until fixed, nothing counted
    /// stored meanwhile), the pool or the driver.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Query(sqlx::Error::Database(_)) => !self.is_rejected_data(),
            Error::Query(_) => true,
            _ => false,
        }
    }

    /// Whether SQLite refused the data itself (SQLITE_TOOBIG, SQLITE_CONSTRAINT,
    /// SQLITE_MISMATCH, with their extended codes): the same rows will be refused again.
    pub fn is_rejected_data(&self) -> bool {
        matches!(self, Error::Query(sqlx::Error::Database(db))
            if db.code()
                .and_then(|code| code.parse::<i32>().ok())
                .is_some_and(|code| matches!(code & 0xff, 18..=20)))
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
