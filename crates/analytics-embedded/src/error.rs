//! SQLite as the shared SQL code knows it ([`Sqlite`]), and this crate's error: the
//! SQL stores' [`analytics_sql::Error`] with SQLite's classification.

use chrono::{DateTime, Utc};
use sqlx::error::DatabaseError;
use uuid::Uuid;

/// What can go wrong with the embedded database. Every query error that is not about
/// the data is transient — busy or locked, a full disk, an I/O error or a read-only
/// file (SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY: retried until fixed, nothing
/// counted stored meanwhile), the pool or the driver.
pub type Error = analytics_sql::Error<Sqlite>;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// SQLite: instants are microseconds since the epoch, parameters `?1`, and errors
/// are told apart by result code.
#[derive(Debug, Clone, Copy)]
pub struct Sqlite;

impl analytics_sql::Driver for Sqlite {
    type DB = sqlx::Sqlite;
    type Time = i64;
    type Id = String;
    const STORE: &'static str = "embedded database";
    const PARAMETER: char = '?';
    const PROPERTY_TO: &'static str = "json_extract(properties, '$.to')";
    const QUARTER_OF_EVENT: &'static str = "(occurred_at / 900000000)";

    fn time(at: DateTime<Utc>) -> i64 {
        at.timestamp_micros()
    }

    fn utc(time: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(time).unwrap_or_default()
    }

    fn id(id: Uuid) -> String {
        id.to_string()
    }

    fn uuid(id: String) -> Uuid {
        id.parse().unwrap_or_default()
    }

    /// SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH, with their extended codes.
    fn rejects_data(error: &dyn DatabaseError) -> bool {
        error
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 18..=20))
    }
}
