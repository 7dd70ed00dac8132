//! PostgreSQL as the shared SQL code knows it ([`Pg`]), and this crate's error: the
//! SQL stores' [`analytics_sql::Error`] with PostgreSQL's classification.

use chrono::{DateTime, Utc};
use sqlx::error::DatabaseError;
use uuid::Uuid;

/// What can go wrong talking to PostgreSQL.
pub type Error = analytics_sql::Error<Pg>;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// PostgreSQL: instants are `timestamptz`, parameters `$1`, and errors are told apart
/// by SQLSTATE.
#[derive(Debug, Clone, Copy)]
pub struct Pg;

fn sqlstate(error: &dyn DatabaseError) -> String {
    error
        .code()
        .map(|code| code.into_owned())
        .unwrap_or_default()
}

impl analytics_sql::Driver for Pg {
    type DB = sqlx::Postgres;
    type Time = DateTime<Utc>;
    type Id = Uuid;
    const STORE: &'static str = "postgres";
    const PARAMETER: char = '$';
    const PROPERTY_TO: &'static str = "properties->>'to'";
    const QUARTER_OF_EVENT: &'static str =
        "CAST(floor(extract(epoch FROM occurred_at) / 900) AS BIGINT)";

    fn time(at: DateTime<Utc>) -> DateTime<Utc> {
        at
    }

    fn utc(time: DateTime<Utc>) -> DateTime<Utc> {
        time
    }

    fn id(id: Uuid) -> Uuid {
        id
    }

    fn uuid(id: Uuid) -> Uuid {
        id
    }

    /// Class 22, data exception; class 23, integrity constraint violation; class 54,
    /// program limit exceeded.
    fn rejects_data(error: &dyn DatabaseError) -> bool {
        let code = sqlstate(error);
        code.starts_with("22") || code.starts_with("23") || code.starts_with("54")
    }

    /// 40001 serialization failure, 40P01 deadlock.
    fn is_contention(error: &dyn DatabaseError) -> bool {
        matches!(sqlstate(error).as_str(), "40001" | "40P01")
    }

    /// 08, connection exception; 53, insufficient resources; 57P0x, shutdown or
    /// restart.
    fn is_unavailable(error: &dyn DatabaseError) -> bool {
        let code = sqlstate(error);
        code.starts_with("08") || code.starts_with("53") || code.starts_with("57P0")
    }
}
