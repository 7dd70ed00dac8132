//! The SQL stores' errors, and how they map onto the storage errors of
//! `analytics-core` (retryable or not).

use std::marker::PhantomData;

use analytics_core::error::StoreError;

use crate::Driver;

/// The result type of the SQL stores.
pub type Result<T, D> = std::result::Result<T, Error<D>>;

/// What can go wrong with a store's database `D`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<D: Driver> {
    /// A query or the connection failed (or the file could not be opened).
    #[error("{} query failed", D::STORE)]
    Query(#[from] sqlx::Error),
    /// Applying the migrations failed.
    #[error("{} migrations failed", D::STORE)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database holds events or statistics the domain model does not know.
    #[error(
        "{}: the database holds events or statistics the domain model does not know",
        D::STORE
    )]
    Model(#[source] analytics_core::Error),
    /// A sum is too large for a database integer.
    #[error(
        "{}: the statistics field {field:?} exceeds the largest integer the database stores",
        D::STORE
    )]
    Overflow {
        /// The field.
        field: String,
    },
    /// The database was set up for another business time zone.
    #[error(
        "{}: the database was set up for the time zone {stored}, not {configured}: its days \
         follow the zone they were created with",
        D::STORE
    )]
    TimeZoneMismatch {
        /// The zone recorded in the database.
        stored: String,
        /// The zone configured now.
        configured: String,
    },
    /// Never made: it carries the driver's type.
    #[doc(hidden)]
    #[error("unreachable")]
    Driver(std::convert::Infallible, PhantomData<D>),
}

impl<D: Driver> Error<D> {
    /// The database error behind a failed query, if that is what this is.
    pub fn database(&self) -> Option<&dyn sqlx::error::DatabaseError> {
        match self {
            Error::Query(sqlx::Error::Database(db)) => Some(db.as_ref()),
            _ => None,
        }
    }

    /// Whether it is a database error with this code (a PostgreSQL SQLSTATE, an SQLite
    /// result code).
    pub fn has_code(&self, code: &str) -> bool {
        self.database()
            .is_some_and(|db| db.code().as_deref() == Some(code))
    }

    /// Whether a transaction lost a race with another: the database is fine and
    /// retrying at once succeeds.
    pub fn is_contention(&self) -> bool {
        self.database().is_some_and(D::is_contention)
    }

    /// Whether the database refused the data itself ([`Driver::rejects_data`]).
    pub fn is_rejected_data(&self) -> bool {
        self.database().is_some_and(D::rejects_data)
    }

    /// Whether retrying later may succeed: the database is unreachable, restarting,
    /// busy or out of space — or answers with an error that is not about the data (a
    /// missing table, a permission): retrying is then the way not to lose events while
    /// an operator looks.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Query(sqlx::Error::Database(db)) => {
                !D::rejects_data(db.as_ref()) && !D::is_contention(db.as_ref())
            }
            // The connection, the pool, the protocol, the driver: not the data's fault.
            Error::Query(_) => true,
            Error::Migrate(sqlx::migrate::MigrateError::Execute(error)) => match error {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => D::is_unavailable(db.as_ref()),
                _ => false,
            },
            _ => false,
        }
    }
}

impl<D: Driver> From<Error<D>> for analytics_core::Error {
    fn from(error: Error<D>) -> analytics_core::Error {
        let store_error = if error.is_contention() {
            StoreError::contention(D::STORE, error)
        } else if error.is_transient() {
            StoreError::unavailable(D::STORE, error)
        } else {
            StoreError::failed(D::STORE, error)
        };
        analytics_core::Error::Store(store_error)
    }
}
