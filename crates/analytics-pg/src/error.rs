//! The errors of the PostgreSQL store, and how they map onto the storage errors of
//! `analytics-core` (retryable or not).

use analytics_core::error::StoreError;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A query or the connection failed.
    #[error("postgres query failed")]
    Query(#[from] sqlx::Error),
    /// Applying the migrations failed.
    #[error("postgres migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database holds events or statistics the domain model does not know.
    #[error("postgres holds events or statistics the domain model does not know")]
    Model(#[source] analytics_core::Error),
    /// A sum is too large for a PostgreSQL `bigint`.
    #[error("the statistics field {field:?} exceeds the largest bigint")]
    Overflow {
        /// The field.
        field: String,
    },
    /// The database was set up for another business time zone.
    #[error(
        "the database was set up for the time zone {stored}, not {configured}: partitions \
         and daily statistics follow the zone they were created with"
    )]
    TimeZoneMismatch {
        /// The zone recorded in the database.
        stored: String,
        /// The zone configured now.
        configured: String,
    },
}

impl Error {
    /// Whether a transaction lost a race with another (40001 serialization failure,
    /// 40P01 deadlock): the server is fine and retrying at once succeeds.
    pub fn is_contention(&self) -> bool {
        matches!(self, Error::Query(sqlx::Error::Database(db))
            if matches!(db.code().as_deref(), Some("40001" | "40P01")))
    }

    /// Whether PostgreSQL refused the data itself (SQLSTATE class 22, data exception;
    /// class 23, integrity constraint violation; class 54, program limit exceeded):
    /// the same rows will be refused again, so a batch holding them is split until they
    /// are isolated and dead-lettered.
    pub fn is_rejected_data(&self) -> bool {
        matches!(self, Error::Query(sqlx::Error::Database(db))
        if db.code().is_some_and(|code| {
            code.starts_with("22") || code.starts_with("23") || code.starts_with("54")
        }))
    }

    /// Whether retrying later may succeed: the server is unreachable, restarting,
    /// overloaded — or answers with an error that is not about the data (a missing
    /// table, a permission): retrying is then the way not to lose events while an
    /// operator looks.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Query(sqlx::Error::Database(_)) => {
                !self.is_rejected_data() && !self.is_contention()
            }
            // The connection, the pool, the protocol: not the data's fault.
            Error::Query(_) => true,
            Error::Migrate(sqlx::migrate::MigrateError::Execute(error)) => is_transient(error),
            _ => false,
        }
    }
}

fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 53: insufficient resources; 57P0x: shutdown or
            // restart.
            code.starts_with("08") || code.starts_with("53") || code.starts_with("57P0")
        }),
        _ => false,
    }
}

impl From<Error> for analytics_core::Error {
    fn from(error: Error) -> analytics_core::Error {
        let store_error = if error.is_contention() {
            StoreError::contention("postgres", error)
        } else if error.is_transient() {
            StoreError::unavailable("postgres", error)
        } else {
            StoreError::failed("postgres", error)
        };
        analytics_core::Error::Store(store_error)
    }
}
