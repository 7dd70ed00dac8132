//! The tables both SQL stores have in the same shape, read and written once.

use std::collections::BTreeMap;

use analytics_core::counters::{CounterBatch, SessionMark};
use analytics_core::event::Event;
use analytics_core::metrics::{DaySummary, Sums, agent_days_from_rows, days_from_rows};
use analytics_core::sketch::{DaySketches, sketch_days_from_rows};
use analytics_core::store::{
    DeadLetter, SESSION_READ_AHEAD, SessionQuery, SessionRow, SessionStream, forward_sessions,
    session_stream,
};
use analytics_core::time::DateRange;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::{Column, Driver, Error, Result, to_i64};

/// Rows per `INSERT` of a day's statistics: at most 3 parameters a row, well under
/// both databases' limits.
const INSERT_ROWS: usize = 500;

/// The tables of the same shape in both databases — the statistics, the recorded
/// time zone, the uncounted days, the dead letters — read on `reads` and written on
/// the connection the store passes (its writer, in its transaction).
#[derive(Debug)]
pub struct Tables<D: Driver> {
    reads: Pool<D::DB>,
    days: String,
    agent_days: String,
    sketch_days: String,
    dead_letters: String,
}

impl<D: Driver> Clone for Tables<D> {
    fn clone(&self) -> Tables<D> {
        Tables {
            reads: self.reads.clone(),
            days: self.days.clone(),
            agent_days: self.agent_days.clone(),
            sketch_days: self.sketch_days.clone(),
            dead_letters: self.dead_letters.clone(),
        }
    }
}

impl<D> Tables<D>
where
    D: Driver,
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    for<'q> <D::DB as Database>::Arguments<'q>: IntoArguments<'q, D::DB>,
    usize: ColumnIndex<<D::DB as Database>::Row>,
    NaiveDate: Column<D::DB>,
    String: Column<D::DB>,
    i64: Column<D::DB>,
    bool: Column<D::DB>,
    for<'q> &'q str: Encode<'q, D::DB> + Type<D::DB>,
{
    /// The tables of the database behind `reads`.
    pub fn new(reads: Pool<D::DB>) -> Tables<D> {
        Tables {
            reads,
            days: D::statement(
                "SELECT day, field, value FROM analytics_daily_stats \
                 WHERE day BETWEEN $1 AND $2 ORDER BY day",
            ),
            agent_days: D::statement(
                "SELECT day, agent_id, field, value FROM analytics_agent_daily_stats \
                 WHERE day BETWEEN $1 AND $2",
            ),
            sketch_days: D::statement(
                "SELECT day, agent_id, field, bins FROM analytics_daily_sketches \
                 WHERE day BETWEEN $1 AND $2 AND ($3 OR agent_id = '')",
            ),
            dead_letters: D::statement(
                "SELECT event_id, event, dead_lettered_at, reason, envelope \
                 FROM analytics_dead_letters ORDER BY dead_lettered_at DESC LIMIT $1",
            ),
        }
    }

    /// The pool reads go to.
    pub fn reads(&self) -> &Pool<D::DB> {
        &self.reads
    }

    /// Runs `read` in a read transaction on `reads`, which `snapshot` (a dialect's
    /// statement, if it needs one) makes one snapshot: a day's sums and distributions
    /// read in it agree with each other.
    ///
    /// # Errors
    ///
    /// What `read` fails with; [`Error::Query`].
    pub async fn snapshot<T>(
        &self,
        snapshot: Option<&str>,
        read: impl for<'c> FnOnce(
            &'c mut <D::DB as Database>::Connection,
        ) -> futures_util::future::BoxFuture<'c, Result<T, D>>,
    ) -> Result<T, D> {
        let mut tx = self.reads.begin().await?;
        if let Some(snapshot) = snapshot {
            sqlx::query(snapshot).execute(&mut *tx).await?;
        }
        let answer = read(&mut tx).await?;
        tx.commit().await?;
        Ok(answer)
    }

    /// Records the business time zone in a new database, or checks that it is the one
    /// recorded.
    ///
    /// # Errors
    ///
    /// [`Error::TimeZoneMismatch`] when the database was set up for another zone.
    pub async fn check_time_zone(
        conn: &mut <D::DB as Database>::Connection,
        zone: &str,
    ) -> Result<(), D> {
        sqlx::query(&D::statement(
            "INSERT INTO analytics_settings (key, value) VALUES ('timezone', $1) \
             ON CONFLICT (key) DO NOTHING",
        ))
        .bind(zone)
        .execute(&mut *conn)
        .await?;
        let (stored,): (String,) =
            sqlx::query_as("SELECT value FROM analytics_settings WHERE key = 'timezone'")
                .fetch_one(&mut *conn)
                .await?;
        if stored != zone {
            return Err(Error::TimeZoneMismatch {
                stored,
                configured: zone.to_owned(),
            });
        }
        Ok(())
    }

    /// Replaces one day's statistics, on `conn` (in the caller's transaction).
    ///
    /// # Errors
    ///
    /// [`Error::Overflow`] for a sum beyond a database integer; [`Error::Query`].
    pub async fn put_day(
        conn: &mut <D::DB as Database>::Connection,
        date: NaiveDate,
        summary: &DaySummary,
    ) -> Result<(), D> {
        let mut totals = Vec::new();
        for (field, value) in summary.totals.iter() {
            totals.push(("", field.name(), to_i64::<D>(field.name(), value)?));
        }
        let mut agents = Vec::new();
        for (agent, sums) in &summary.agents {
            for (field, value) in sums.iter() {
                agents.push((
                    agent.as_str(),
                    field.name(),
                    to_i64::<D>(field.name(), value)?,
                ));
            }
        }
        let sketches = summary.sketches.rows();
        replace_day::<D, i64>(
            conn,
            "analytics_daily_stats (day, field, value)",
            date,
            &totals,
        )
        .await?;
        replace_day::<D, i64>(
            conn,
            "analytics_agent_daily_stats (day, agent_id, field, value)",
            date,
            &agents,
        )
        .await?;
        replace_day::<D, String>(
            conn,
            "analytics_daily_sketches (day, agent_id, field, bins)",
            date,
            &sketches,
        )
        .await
    }

    /// The stored statistics of the days in `range` that have any, in order.
    ///
    /// # Errors
    ///
    /// [`Error::Query`]; [`Error::Model`] for a field the model does not know.
    pub async fn days(&self, range: DateRange) -> Result<Vec<(NaiveDate, Sums)>, D> {
        let rows: Vec<(NaiveDate, String, i64)> = sqlx::query_as(&self.days)
            .bind(range.start())
            .bind(range.end())
            .fetch_all(&self.reads)
            .await?;
        days_from_rows(
            rows.into_iter()
                .map(|(day, name, value)| (day, name, value as u64)),
        )
        .map_err(Error::Model)
    }

    /// The stored per-agent statistics of the days in `range`.
    ///
    /// # Errors
    ///
    /// [`Error::Query`]; [`Error::Model`] for a field the model does not know.
    pub async fn agent_days(
        &self,
        range: DateRange,
    ) -> Result<BTreeMap<NaiveDate, BTreeMap<String, Sums>>, D> {
        let rows: Vec<(NaiveDate, String, String, i64)> = sqlx::query_as(&self.agent_days)
            .bind(range.start())
            .bind(range.end())
            .fetch_all(&self.reads)
            .await?;
        agent_days_from_rows(
            rows.into_iter()
                .map(|(day, agent, name, value)| (day, agent, name, value as u64)),
        )
        .map_err(Error::Model)
    }

    /// The stored distributions of the days in `range`: the totals', and the agents'
    /// too when `per_agent`.
    ///
    /// # Errors
    ///
    /// [`Error::Query`]; [`Error::Model`] for a field or bins the model does not know.
    pub async fn sketch_days(
        &self,
        range: DateRange,
        per_agent: bool,
    ) -> Result<BTreeMap<NaiveDate, DaySketches>, D> {
        let rows: Vec<(NaiveDate, String, String, String)> = sqlx::query_as(&self.sketch_days)
            .bind(range.start())
            .bind(range.end())
            .bind(per_agent)
            .fetch_all(&self.reads)
            .await?;
        sketch_days_from_rows(rows).map_err(Error::Model)
    }

    /// Keeps `events` as dead letters, each id once, in one transaction on `conn`: a
    /// letter already kept stays as it is.
    ///
    /// # Errors
    ///
    /// [`Error::Query`].
    pub async fn dead_letter(
        conn: &mut <D::DB as Database>::Connection,
        events: &[Event],
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), D> {
        // Text PostgreSQL would refuse (a NUL) is escaped: the letter must be kept.
        let clean = |s: &str| s.replace('\0', "\\u0000");
        let reason = clean(reason);
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        for chunk in events.chunks(INSERT_ROWS) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${}, $1, $2, ${})", 3 * i + 3, 3 * i + 4, 3 * i + 5))
                .collect();
            let sql = D::statement(&format!(
                "INSERT INTO analytics_dead_letters \
                     (event_id, event, dead_lettered_at, reason, envelope) \
                 VALUES {} ON CONFLICT (event_id) DO NOTHING",
                values.join(", ")
            ));
            let mut query = sqlx::query(&sql)
                .persistent(false)
                .bind(D::time(at))
                .bind(reason.as_str());
            for event in chunk {
                query = query
                    .bind(D::id(event.id()))
                    .bind(clean(event.name()))
                    .bind(clean(&serde_json::to_string(event).unwrap_or_default()));
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest `limit` dead letters, newest first.
    ///
    /// # Errors
    ///
    /// [`Error::Query`].
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, D> {
        let rows: Vec<LetterRow<D>> = sqlx::query_as(&self.dead_letters)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.reads)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, event, at, reason, envelope)| DeadLetter {
                event_id: D::uuid(id),
                event,
                dead_lettered_at: D::utc(at),
                reason,
                envelope,
            })
            .collect())
    }

    /// [`EventStore::quarter_sums`](analytics_core::store::EventStore::quarter_sums):
    /// the events grouped by quarter and name in the database.
    ///
    /// # Errors
    ///
    /// [`Error::Query`], [`Error::Model`] for a stored name outside the catalog.
    pub async fn quarter_sums(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, Sums)>, D>
    where
        D::Time: Column<D::DB>,
    {
        let rows: Vec<(i64, String, i64, i64, i64)> = sqlx::query_as(
            &D::statement(
                "SELECT QUARTER_OF_EVENT AS quarter, event, count(*), \
                        CAST(coalesce(sum(value_micros), 0) AS BIGINT), \
                        CAST(coalesce(sum(CASE WHEN sla_met THEN 1 ELSE 0 END), 0) AS BIGINT) \
                 FROM analytics_events WHERE occurred_at >= $1 AND occurred_at < $2 \
                 GROUP BY quarter, event ORDER BY quarter",
            )
            .replace("QUARTER_OF_EVENT", D::QUARTER_OF_EVENT),
        )
        .bind(D::time(from))
        .bind(D::time(to))
        .fetch_all(&self.reads)
        .await?;
        let mut quarters: Vec<(DateTime<Utc>, DaySummary)> = Vec::new();
        for (quarter, event, count, value, sla) in rows {
            let start = DateTime::from_timestamp(quarter * analytics_core::store::QUARTER, 0)
                .unwrap_or_default();
            if quarters.last().is_none_or(|(last, _)| *last != start) {
                quarters.push((start, DaySummary::default()));
            }
            if let Some((_, summary)) = quarters.last_mut() {
                summary
                    .add_named_group(&event, None, count as u64, value as u64, sla as u64)
                    .map_err(Error::Model)?;
            }
        }
        Ok(quarters
            .into_iter()
            .map(|(start, summary)| (start, summary.totals))
            .collect())
    }

    /// [`EventStore::marks`](analytics_core::store::EventStore::marks): each session's
    /// latest word (started, ended, last seen) grouped in the database, and the agents'
    /// presence events in time order (a few a day each).
    ///
    /// # Errors
    ///
    /// [`Error::Query`].
    pub async fn marks(&self, from: DateTime<Utc>) -> Result<CounterBatch, D>
    where
        D::Time: Column<D::DB>,
        Option<String>: Column<D::DB>,
    {
        use analytics_core::catalog::{AgentStatus, Kind};
        let names = |kinds: &[Kind]| {
            kinds
                .iter()
                .map(|kind| format!("'{}'", kind.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let sessions: Vec<(String, D::Time, i64, i64)> = sqlx::query_as(&D::statement(&format!(
            "SELECT session_id, max(occurred_at), \
                    max(CAST(CASE WHEN event = 'session.start' THEN 1 ELSE 0 END AS BIGINT)), \
                    max(CAST(CASE WHEN event = 'session.end' THEN 1 ELSE 0 END AS BIGINT)) \
             FROM analytics_events \
             WHERE occurred_at >= $1 AND session_id IS NOT NULL AND event IN ({}) \
             GROUP BY session_id",
            names(&[
                Kind::SessionStart,
                Kind::SessionEnd,
                Kind::SessionMessage,
                Kind::SessionEscalate,
                Kind::AgentSessionTakeover,
                Kind::AgentSessionMessage,
            ])
        )))
        .bind(D::time(from))
        .fetch_all(&self.reads)
        .await?;
        let presence: Vec<(String, String, D::Time, Option<String>)> =
            // The dialect's `to` goes in after the parameters are numbered (SQLite's
            // JSON path holds a `$`).
            sqlx::query_as(
                &D::statement(&format!(
                    "SELECT agent_id, event, occurred_at, PROPERTY_TO FROM analytics_events \
                     WHERE occurred_at >= $1 AND agent_id IS NOT NULL AND event IN ({}) \
                     ORDER BY occurred_at, event_id",
                    names(&[Kind::AgentLogin, Kind::AgentLogout, Kind::AgentStatusChange])
                ))
                .replace("PROPERTY_TO", D::PROPERTY_TO),
            )
            .bind(D::time(from))
            .fetch_all(&self.reads)
            .await?;
        let mut marks = CounterBatch::default();
        for (session, last_seen, started, ended) in sessions {
            marks.add_session(
                &session,
                SessionMark {
                    started: started != 0,
                    ended: ended != 0,
                    last_seen: D::utc(last_seen),
                },
            );
        }
        for (agent, event, at, to) in presence {
            let status = match Kind::from_name(&event) {
                Some(Kind::AgentLogin) => Some(AgentStatus::Online),
                Some(Kind::AgentLogout) => Some(AgentStatus::Offline),
                _ => to.and_then(|to| AgentStatus::ALL.into_iter().find(|s| s.as_str() == to)),
            };
            if let Some(status) = status {
                marks.add_presence(&agent, status, D::utc(at));
            }
        }
        Ok(marks)
    }

    /// The days that have writes whose counters are not known to be applied, in order.
    ///
    /// # Errors
    ///
    /// [`Error::Query`].
    pub async fn uncounted_days(&self) -> Result<Vec<NaiveDate>, D> {
        let days: Vec<(NaiveDate,)> =
            sqlx::query_as("SELECT DISTINCT day FROM analytics_uncounted ORDER BY day")
                .fetch_all(&self.reads)
                .await?;
        Ok(days.into_iter().map(|(day,)| day).collect())
    }
}

/// Deletes a table's rows of `date` and inserts `rows` (agent, field, value; the agent
/// is left out where the table has none), a few hundred rows a statement.
async fn replace_day<D, V>(
    conn: &mut <D::DB as Database>::Connection,
    table: &str,
    date: NaiveDate,
    rows: &[(&str, &str, V)],
) -> Result<(), D>
where
    D: Driver,
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    for<'q> <D::DB as Database>::Arguments<'q>: IntoArguments<'q, D::DB>,
    NaiveDate: for<'q> Encode<'q, D::DB> + Type<D::DB>,
    for<'q> &'q str: Encode<'q, D::DB> + Type<D::DB>,
    V: for<'q> Encode<'q, D::DB> + Type<D::DB> + Sync,
{
    let name = table.split_whitespace().next().unwrap_or(table);
    let with_agent = table.contains("agent_id");
    sqlx::query(&D::statement(&format!("DELETE FROM {name} WHERE day = $1")))
        .bind(date)
        .execute(&mut *conn)
        .await?;
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut next = 2;
        let mut param = || {
            next += 1;
            format!("${}", next - 1)
        };
        let values: Vec<String> = chunk
            .iter()
            .map(|_| {
                let agent = if with_agent {
                    format!("{}, ", param())
                } else {
                    String::new()
                };
                format!("($1, {agent}{}, {})", param(), param())
            })
            .collect();
        let sql = D::statement(&format!("INSERT INTO {table} VALUES {}", values.join(", ")));
        let mut query = sqlx::query(&sql).persistent(false).bind(date);
        for (agent, field, value) in chunk {
            if with_agent {
                query = query.bind(*agent);
            }
            query = query.bind(*field).bind(value);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// One dead letter as stored: id, event name, when, reason, envelope.
type LetterRow<D> = (
    <D as Driver>::Id,
    String,
    <D as Driver>::Time,
    String,
    String,
);

/// One row of a sessions export query, as each store's `SESSIONS_SQL` answers it.
type SessionTuple<T> = (
    String,
    T,
    Option<String>,
    Option<String>,
    bool,
    Option<String>,
    Option<i64>,
    Option<i64>,
    bool,
);

/// The sessions export of `query`, read in a task of its own from `pool` with a
/// store's `sql`: parameters `$1` from, `$2` to, `$3` the end of the events read (`to`
/// plus the window), `$4` the return window in microseconds; one row a session in
/// start order (see [`analytics_core::store::EventStore::sessions`]).
pub fn sessions<D>(pool: &Pool<D::DB>, sql: &'static str, query: SessionQuery) -> SessionStream
where
    D: Driver,
    for<'c> &'c Pool<D::DB>: Executor<'c, Database = D::DB>,
    for<'q> <D::DB as Database>::Arguments<'q>: IntoArguments<'q, D::DB>,
    usize: ColumnIndex<<D::DB as Database>::Row>,
    String: Column<D::DB>,
    i64: Column<D::DB>,
    bool: Column<D::DB>,
{
    use futures_util::StreamExt as _;
    let pool = pool.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(SESSION_READ_AHEAD);
    tokio::spawn(async move {
        let rows = sqlx::query_as::<_, SessionTuple<D::Time>>(sql)
            .bind(D::time(query.from))
            .bind(D::time(query.to))
            .bind(D::time(query.to + query.window))
            .bind(query.window.num_microseconds().unwrap_or(i64::MAX))
            .fetch(&pool);
        let rows = rows.map(|row| {
            row.map(session_row::<D>)
                .map_err(|error| Error::<D>::from(error).into())
        });
        forward_sessions(rows, tx).await;
    });
    session_stream(rx)
}

fn session_row<D: Driver>(row: SessionTuple<D::Time>) -> SessionRow {
    let (session_id, started, channel, customer_id, escalated, agent_id, first, handle, returned) =
        row;
    SessionRow {
        session_id,
        started_at: D::utc(started),
        channel,
        customer_id,
        escalated,
        agent_id,
        first_response_micros: first.map(|v| v.max(0) as u64),
        handle_time_micros: handle.map(|v| v.max(0) as u64),
        returned,
    }
}
