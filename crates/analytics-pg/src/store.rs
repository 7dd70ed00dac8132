//! [`PgStore`]: event detail and daily statistics in PostgreSQL.
//!
//! Event detail is range-partitioned by business day (`analytics_events_pYYYYMMDD`,
//! bounds from the [`Calendar`]); partitions are created on demand before an insert
//! needs them (and, through `EventStore::prepare_days`, before a recount reads them),
//! and retention drops them whole. An id is stored once across every day: each write
//! claims its ids in the registry `analytics_event_ids` and stores only the events
//! whose ids it claimed.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use analytics_core::event::Event;
use analytics_core::metrics::DaySummary;
use analytics_core::sketch::DaySketches;
use analytics_core::store::{
    CounterRecount, DirtyDay, JobLock, PendingCounters, SessionQuery, SessionStream, Written,
};
use analytics_core::time::{Calendar, DateRange, DayWindow};
use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, Postgres};
use uuid::Uuid;

use analytics_sql::{Tables, to_i64};

use crate::error::{Error, Pg, Result};
use crate::{MIGRATOR, copy};

/// The first key of every advisory lock this store takes (the second is the job).
const LOCK_CLASS: i32 = 1_634_623_852;

/// SQLSTATE of "no partition of relation found for row".
const NO_PARTITION: &str = "23514";

/// SQLSTATE of a unique violation.
const UNIQUE_VIOLATION: &str = "23505";

/// How the connection pool is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most connections open at once.
    pub max_connections: u32,
    /// How long to wait for a connection before failing (a transient error).
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> PoolOptions {
        PoolOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Event detail and daily statistics in PostgreSQL.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    calendar: Calendar,
    /// Business days whose partition is known to exist.
    partitions: Mutex<HashSet<NaiveDate>>,
    /// The statistics tables.
    tables: Tables<Pg>,
}

impl PgStore {
    /// Connects a pool to `url`.
    ///
    /// # Errors
    ///
    /// [`Error::Query`] when the server cannot be reached.
    pub async fn connect(url: &str, calendar: Calendar, options: PoolOptions) -> Result<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await?;
        Ok(PgStore::new(pool, calendar))
    }

    /// A store whose pool connects to `url` on first use (a server that is down now is
    /// not an error here; its operations fail until it answers).
    ///
    /// # Errors
    ///
    /// [`Error::Query`] when `url` is not a PostgreSQL URL.
    pub fn connect_lazy(url: &str, calendar: Calendar, options: PoolOptions) -> Result<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy(url)?;
        Ok(PgStore::new(pool, calendar))
    }

    /// A store on an existing pool.
    pub fn new(pool: PgPool, calendar: Calendar) -> PgStore {
        PgStore {
            tables: Tables::new(pool.clone()),
            pool,
            calendar,
            partitions: Mutex::new(HashSet::new()),
        }
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The business calendar partitions and statistics follow.
    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    /// Applies the migrations that have not run yet (a no-op when all have), then
    /// records the business time zone or checks it against the recorded one.
    ///
    /// # Errors
    ///
    /// [`Error::Migrate`] when a migration fails, [`Error::TimeZoneMismatch`] when the
    /// database was set up for another zone.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        self.check_time_zone().await
    }

    /// Records the business time zone in a new database, or checks that it is the one
    /// recorded.
    ///
    /// # Errors
    ///
    /// [`Error::TimeZoneMismatch`] when the database was set up for another zone.
    pub async fn check_time_zone(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        Tables::<Pg>::check_time_zone(&mut conn, self.calendar.zone().name()).await
    }

    fn known_partitions(&self) -> MutexGuard<'_, HashSet<NaiveDate>> {
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes sure the partitions of these business days exist. Returns how many were
    /// created.
    ///
    /// # Errors
    ///
    /// [`Error::Query`].
    pub async fn ensure_partitions(
        &self,
        days: impl IntoIterator<Item = NaiveDate>,
    ) -> Result<usize> {
        let missing: BTreeSet<NaiveDate> = {
            let known = self.known_partitions();
            days.into_iter()
                .filter(|day| !known.contains(day))
                .collect()
        };
        if missing.is_empty() {
            return Ok(0);
        }
        let windows: Vec<DayWindow> = missing
            .iter()
            .map(|d| self.calendar.day_window(*d))
            .collect();
        let created: Vec<bool> = sqlx::query_scalar(
            "SELECT analytics_ensure_partition(day, day_start, day_end) \
             FROM UNNEST($1::date[], $2::timestamptz[], $3::timestamptz[]) \
                  AS t(day, day_start, day_end)",
        )
        .bind(windows.iter().map(|w| w.date).collect::<Vec<_>>())
        .bind(windows.iter().map(|w| w.start).collect::<Vec<_>>())
        .bind(windows.iter().map(|w| w.end).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await?;
        self.known_partitions().extend(missing);
        let created = created.into_iter().filter(|c| *c).count();
        if created > 0 {
            tracing::debug!(created, "created event partitions");
        }
        Ok(created)
    }

    /// The business days that have a partition, in order.
    ///
    /// # Errors
    ///
    /// [`Error::Query`].
    pub async fn partition_days(&self) -> Result<Vec<NaiveDate>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'analytics_events'::regclass ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(names
            .iter()
            .filter_map(|name| name.strip_prefix("analytics_events_p"))
            .filter_map(|day| NaiveDate::parse_from_str(day, "%Y%m%d").ok())
            .collect())
    }

    /// Stores the events (unique ids, sorted by business day and id) and returns the
    /// ids that were new, with the write's pending counters.
    ///
    /// The write claims its ids in `analytics_event_ids` (the registry that makes an id
    /// unique across days, `migrations/0006_event_ids.sql`) in its transaction, then
    /// stores, with one `COPY`, only the events whose ids it claimed, so no other write
    /// can collide with them. A batch almost never holds an id that is already stored,
    /// so the ids are first claimed with one binary `COPY` (the cheapest way; `INSERT …
    /// ON CONFLICT` in the round trip of `BEGIN` measured 20 % slower end to end); when
    /// that meets a stored id, nothing was stored, and the write starts again claiming
    /// with `INSERT … ON CONFLICT DO NOTHING RETURNING`. Ids are claimed in sorted
    /// order: two writers whose batches share ids take their index locks in the same
    /// order and never deadlock; one that meets an id another has claimed but not
    /// committed waits for that commit, then fails over to the second way (or claims
    /// it, if the other rolled back).
    ///
    /// The connection stays with the pending counters: it holds the days' shared
    /// counter locks until they are settled. If anything fails after the locks were
    /// taken, or the future is dropped, the connection is closed, which releases them.
    async fn write_sorted(
        &self,
        events: &[&Event],
        days: &BTreeSet<NaiveDate>,
    ) -> Result<(HashSet<Uuid>, Option<PgPending>)> {
        let locked: Vec<NaiveDate> = days.iter().copied().collect();
        let mut ids: Vec<Uuid> = events.iter().map(|e| e.id()).collect();
        ids.sort_unstable();
        let mut conn = Guarded::new(self.pool.acquire().await?);
        // The transaction is driven by hand so that BEGIN goes with the locks and COMMIT
        // with the marks, one round trip each (simple-query statements; the values are
        // dates and a UUID, formatted, never text from events).
        let begin = format!("BEGIN; SELECT analytics_lock_days({})", date_array(&locked));
        simple(conn.get(), &begin).await?;
        let write = Uuid::now_v7();
        let fresh: HashSet<Uuid> = match copy_ids(conn.get(), &ids).await {
            Ok(()) => {
                copy_in(conn.get(), events).await?;
                self.mark_and_commit(conn.get(), events, write).await?;
                ids.into_iter().collect()
            }
            Err(error) if error.has_code(UNIQUE_VIOLATION) => {
                // The failed COPY aborted the transaction (the session's locks stay):
                // start again, claiming only the ids nobody holds.
                simple(conn.get(), "ROLLBACK; BEGIN").await?;
                let fresh = claim_ids(conn.get(), &ids).await?;
                let new: Vec<&Event> = events
                    .iter()
                    .copied()
                    .filter(|e| fresh.contains(&e.id()))
                    .collect();
                if !new.is_empty() {
                    copy_in(conn.get(), &new).await?;
                }
                self.mark_and_commit(conn.get(), &new, write).await?;
                fresh
            }
            Err(error) => return Err(error),
        };
        let pending = PgPending {
            conn: Some(conn.done()),
            write: (!fresh.is_empty()).then_some(write),
            locked,
        };
        if fresh.is_empty() {
            // Nothing new: no counters to wait for.
            Box::new(pending).settle(true).await;
            return Ok((fresh, None));
        }
        Ok((fresh, Some(pending)))
    }

    /// Marks the days of the new events dirty and uncounted under `write` (see
    /// `migrations/0004_uncounted_writes.sql`) and commits, in one round trip.
    async fn mark_and_commit(
        &self,
        conn: &mut PgConnection,
        new: &[&Event],
        write: Uuid,
    ) -> Result<()> {
        let days: BTreeSet<NaiveDate> = new
            .iter()
            .map(|e| self.calendar.date(e.timestamp()))
            .collect();
        let sql = if days.is_empty() {
            "COMMIT".to_owned()
        } else {
            let days: Vec<NaiveDate> = days.into_iter().collect();
            format!(
                "SELECT analytics_begin_write({}, '{write}'); COMMIT",
                date_array(&days)
            )
        };
        simple(conn, &sql).await
    }
}

/// Runs statements with the simple-query protocol (several in one round trip).
async fn simple(conn: &mut PgConnection, sql: &str) -> Result<()> {
    use sqlx::Executor as _;
    conn.execute(sql).await?;
    Ok(())
}

/// A `date[]` literal of these dates.
fn date_array(days: &[NaiveDate]) -> String {
    let list: Vec<String> = days
        .iter()
        .map(|d| d.format("%Y-%m-%d").to_string())
        .collect();
    format!("'{{{}}}'::date[]", list.join(","))
}

/// A pooled connection that is closed, not returned to the pool, unless the work on it
/// completed: a connection left mid-transaction, or holding session locks, must not be
/// reused.
struct Guarded {
    conn: Option<PoolConnection<Postgres>>,
}

impl Guarded {
    fn new(conn: PoolConnection<Postgres>) -> Guarded {
        Guarded { conn: Some(conn) }
    }

    fn get(&mut self) -> &mut PoolConnection<Postgres> {
        // Only `done` takes the connection out, and it consumes the guard.
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("the connection is taken only by done()"))
    }

    fn done(mut self) -> PoolConnection<Postgres> {
        self.conn
            .take()
            .unwrap_or_else(|| unreachable!("the connection is taken only by done()"))
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}

/// A committed write whose counters are pending: its connection holds the shared
/// counter locks of the batch's days.
#[derive(Debug)]
struct PgPending {
    conn: Option<PoolConnection<Postgres>>,
    /// The write id; `None` when nothing was new.
    write: Option<Uuid>,
    locked: Vec<NaiveDate>,
}

impl Drop for PgPending {
    fn drop(&mut self) {
        // Dropped without settling: closing the connection releases the locks.
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}

#[async_trait]
impl PendingCounters for PgPending {
    fn days(&self) -> &[NaiveDate] {
        &self.locked
    }

    async fn settle(mut self: Box<Self>, applied: bool) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        // Losing this commit in a crash of the server only leaves the marks (the days
        // are read from detail and recounted): it need not wait for the WAL flush. The
        // values are a UUID, dates and a boolean, formatted, never text from events.
        let write = match self.write {
            Some(write) => format!("'{write}'"),
            None => "NULL".to_owned(),
        };
        let sql = format!(
            "BEGIN; SET LOCAL synchronous_commit = off; \
             SELECT analytics_settle_write({write}, {}, {applied}); COMMIT",
            date_array(&self.locked)
        );
        let settled = simple(&mut conn, &sql).await;
        if let Err(error) = settled {
            // The marks stay (statistics read the days from detail until the repair
            // recounts them); closing the connection releases the locks.
            tracing::warn!(%error, write = ?self.write, "settling a write's counters failed");
            conn.close_on_drop();
        }
    }
}

/// Days' counter locks, held exclusively on a connection of their own.
struct PgRecount {
    conn: Option<PoolConnection<Postgres>>,
    days: Vec<NaiveDate>,
}

impl Drop for PgRecount {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}

#[async_trait]
impl CounterRecount for PgRecount {
    async fn release(mut self: Box<Self>) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let unlocked = sqlx::query(
            "SELECT pg_advisory_unlock(1634623853, analytics_counter_lock_key(d)) \
             FROM unnest($1::date[]) AS d",
        )
        .bind(&self.days)
        .execute(&mut *conn)
        .await;
        if unlocked.is_err() {
            // Closed, the connection takes its locks with it.
            conn.close_on_drop();
        }
    }

    async fn finish(mut self: Box<Self>) -> analytics_core::Result<()> {
        let Some(mut conn) = self.conn.take() else {
            return Ok(());
        };
        let result = sqlx::query(
            "WITH cleared AS (DELETE FROM analytics_uncounted WHERE day = ANY($1)) \
             SELECT pg_advisory_unlock(1634623853, analytics_counter_lock_key(d)) \
             FROM unnest($1::date[]) AS d",
        )
        .bind(&self.days)
        .execute(&mut *conn)
        .await;
        if result.is_err() {
            conn.close_on_drop();
        }
        result.map_err(Error::from)?;
        Ok(())
    }
}

/// Writes the batch with one `COPY`.
async fn copy_in(conn: &mut PgConnection, events: &[&Event]) -> Result<()> {
    let mut data = Vec::with_capacity(19 + events.len() * 300 + 2);
    data.extend_from_slice(copy::BINARY_HEADER);
    for event in events {
        copy::encode_binary(&mut data, event);
    }
    data.extend_from_slice(&copy::BINARY_TRAILER);
    copy_data(
        conn,
        &format!(
            "COPY analytics_events ({}) FROM STDIN WITH (FORMAT binary)",
            copy::COLUMNS
        ),
        &data,
    )
    .await
}

/// Runs one `COPY … FROM STDIN` with `data`; aborts it if sending fails.
async fn copy_data(conn: &mut PgConnection, statement: &str, data: &[u8]) -> Result<()> {
    let mut copy = conn.copy_in_raw(statement).await?;
    if let Err(error) = copy.send(data).await {
        let _ = copy.abort("sending the data failed").await;
        return Err(error.into());
    }
    copy.finish().await?;
    Ok(())
}

/// Claims the ids (sorted) in the registry with one binary `COPY` (a third cheaper for
/// the server than text); fails with a unique violation when one of them is stored.
async fn copy_ids(conn: &mut PgConnection, ids: &[Uuid]) -> Result<()> {
    // The binary format: signature, flags, header extension length; per row the number
    // of fields and each field's length and bytes; -1 fields at the end.
    let mut data = Vec::with_capacity(19 + ids.len() * 22 + 2);
    data.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    data.extend_from_slice(&0i32.to_be_bytes());
    data.extend_from_slice(&0i32.to_be_bytes());
    for id in ids {
        data.extend_from_slice(&1i16.to_be_bytes());
        data.extend_from_slice(&16i32.to_be_bytes());
        data.extend_from_slice(id.as_bytes());
    }
    data.extend_from_slice(&(-1i16).to_be_bytes());
    copy_data(
        conn,
        "COPY analytics_event_ids (event_id) FROM STDIN WITH (FORMAT binary)",
        &data,
    )
    .await
}

/// Claims the ids (sorted) that nobody holds; returns them.
async fn claim_ids(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashSet<Uuid>> {
    let fresh: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO analytics_event_ids (event_id) \
         SELECT id FROM UNNEST($1::uuid[]) AS t(id) ORDER BY id \
         ON CONFLICT DO NOTHING \
         RETURNING event_id",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(fresh.into_iter().collect())
}

/// Sums the events of one business day, per event name and agent.
async fn summarize(conn: &mut PgConnection, window: DayWindow) -> Result<DaySummary> {
    let groups: Vec<(String, Option<String>, i64, i64, i64)> = sqlx::query_as(
        "SELECT event, agent_id, count(*)::int8, coalesce(sum(value_micros), 0)::int8, \
                count(*) FILTER (WHERE sla_met)::int8 \
         FROM analytics_events \
         WHERE occurred_at >= $1 AND occurred_at < $2 \
         GROUP BY event, agent_id",
    )
    .bind(window.start)
    .bind(window.end)
    .fetch_all(&mut *conn)
    .await?;
    let mut summary = DaySummary::from_groups(groups).map_err(Error::Model)?;
    summary.sketches = sketches(conn, window).await?;
    Ok(summary)
}

/// One group of a day's durations: event, agent, bin (null for zeros), least and
/// greatest value, count.
type BinGroup = (String, Option<String>, Option<i64>, i64, i64, i64);

/// The bin of a value in PostgreSQL's arithmetic: `floor(ln(value) / ln γ)`, null
/// for zero (see `sketch::gamma_ln`).
const BIN_SQL: &str =
    "floor(ln(nullif(value_micros, 0)::float8 / 1000000.0::float8) / $3::float8)::int8";

/// The distributions of the durations of one business day's events: the events with
/// a summed quantity grouped by name, agent and bin, each group with its least and
/// greatest value and count — a few hundred rows, not one per distinct value. The
/// bin is checked in Rust against the crate's mapping (least and greatest in one bin,
/// so every value between them is too); a group that straddles two (PostgreSQL's `ln`
/// differing in the last bit at an edge) is read value by value.
async fn sketches(conn: &mut PgConnection, window: DayWindow) -> Result<DaySketches> {
    let gamma_ln = analytics_core::sketch::gamma_ln();
    let groups: Vec<BinGroup> = sqlx::query_as(&format!(
        "SELECT event, agent_id, {BIN_SQL} AS bin, min(value_micros)::int8, \
                    max(value_micros)::int8, count(*)::int8 \
             FROM analytics_events \
             WHERE occurred_at >= $1 AND occurred_at < $2 AND value_micros IS NOT NULL \
             GROUP BY event, agent_id, bin"
    ))
    .bind(window.start)
    .bind(window.end)
    .bind(gamma_ln)
    .fetch_all(&mut *conn)
    .await?;
    let mut sketches = DaySketches::default();
    for (event, agent, bin, least, greatest, count) in groups {
        let added = sketches
            .add_named_range(
                &event,
                agent.as_deref(),
                least as u64,
                greatest as u64,
                count as u64,
            )
            .map_err(Error::Model)?;
        if added {
            continue;
        }
        let values: Vec<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT value_micros, count(*)::int8 FROM analytics_events \
             WHERE occurred_at >= $1 AND occurred_at < $2 AND value_micros IS NOT NULL \
               AND event = $4 AND agent_id IS NOT DISTINCT FROM $5 \
               AND {BIN_SQL} IS NOT DISTINCT FROM $6 \
             GROUP BY value_micros"
        ))
        .bind(window.start)
        .bind(window.end)
        .bind(gamma_ln)
        .bind(&event)
        .bind(&agent)
        .bind(bin)
        .fetch_all(&mut *conn)
        .await?;
        sketches
            .add_value_groups(
                values
                    .into_iter()
                    .map(|(value, count)| (event.clone(), agent.clone(), value, count)),
            )
            .map_err(Error::Model)?;
    }
    Ok(sketches)
}

/// The sessions export's query (see `EventStore::sessions` and `store::sessions_of`,
/// whose rules it follows: text compared byte by byte, as Rust does).
const SESSIONS_SQL: &str = r#"WITH ev AS (
    SELECT session_id, event, occurred_at, agent_id, value_micros, properties,
           row_number() OVER (PARTITION BY session_id, event ORDER BY occurred_at, event_id) AS nth
    FROM analytics_events
    WHERE occurred_at >= $1 AND occurred_at < $3 AND session_id IS NOT NULL
      AND event IN ('session.start', 'session.escalate', 'agent.session_takeover',
                    'agent.session_release')
), sessions AS (
    SELECT session_id,
           min(occurred_at) FILTER (WHERE event = 'session.start') AS started_at,
           max(properties->>'channel' COLLATE "C") FILTER (WHERE event = 'session.start') AS channel,
           max(properties->>'customer_id' COLLATE "C") FILTER (WHERE event = 'session.start') AS customer_id,
           bool_or(event = 'session.escalate') AS escalated,
           max(agent_id) FILTER (WHERE event = 'agent.session_takeover' AND nth = 1) AS agent_id,
           max(value_micros) FILTER (WHERE event = 'agent.session_takeover' AND nth = 1) AS first_response,
           sum(value_micros) FILTER (WHERE event = 'agent.session_release')::int8 AS handle_time
    FROM ev GROUP BY session_id
), started AS (
    SELECT *, lead(started_at) OVER (PARTITION BY customer_id
                                     ORDER BY started_at, session_id COLLATE "C") AS next_start
    FROM sessions WHERE started_at IS NOT NULL
)
SELECT session_id, started_at, channel, customer_id, escalated, agent_id, first_response,
       handle_time,
       (customer_id IS NOT NULL AND next_start IS NOT NULL
        AND next_start <= started_at + $4 * interval '1 microsecond') AS returned
FROM started WHERE started_at < $2
ORDER BY started_at, session_id COLLATE "C""#;

analytics_sql::storage_traits!(PgStore, Pg);

/// The storage traits' methods, with this store's errors (`storage_traits!` makes the
/// trait impls of them).
impl PgStore {
    /// [`EventStore::sessions`](analytics_core::store::EventStore::sessions).
    pub fn sessions(&self, query: SessionQuery) -> SessionStream {
        analytics_sql::sessions::<Pg>(&self.pool, SESSIONS_SQL, query)
    }

    /// A connection to write on (dead letters).
    pub(crate) async fn writer(&self) -> Result<PoolConnection<Postgres>> {
        Ok(self.pool.acquire().await?)
    }

    /// [`EventStore::write`](analytics_core::store::EventStore::write).
    pub async fn write(&self, events: &[Event]) -> Result<Written> {
        // Only the first occurrence of an id in the batch can be new.
        let mut seen = HashSet::with_capacity(events.len());
        let first: Vec<bool> = events.iter().map(|e| seen.insert(e.id())).collect();
        let mut unique: Vec<(NaiveDate, &Event)> = events
            .iter()
            .zip(&first)
            .filter(|(_, first)| **first)
            .map(|(event, _)| (self.calendar.date(event.timestamp()), event))
            .collect();
        if unique.is_empty() {
            return Ok(Written::nothing_new(events.len()));
        }
        // One lock order for every writer: business day (partition), then id.
        unique.sort_unstable_by_key(|(day, event)| (*day, event.id()));
        let days: BTreeSet<NaiveDate> = unique.iter().map(|(day, _)| *day).collect();
        let unique: Vec<&Event> = unique.into_iter().map(|(_, event)| event).collect();
        self.ensure_partitions(days.iter().copied()).await?;
        let (fresh, pending) = match self.write_sorted(&unique, &days).await {
            Err(error) if error.has_code(NO_PARTITION) => {
                // A partition this process thought existed is gone: look again, once.
                self.known_partitions().clear();
                self.ensure_partitions(days.iter().copied()).await?;
                self.write_sorted(&unique, &days).await?
            }
            result => result?,
        };
        Ok(Written {
            new: events
                .iter()
                .zip(first)
                .map(|(event, first)| first && fresh.contains(&event.id()))
                .collect(),
            pending: pending.map(|p| Box::new(p) as Box<dyn PendingCounters>),
        })
    }

    /// [`EventStore::summarize`](analytics_core::store::EventStore::summarize).
    pub async fn summarize(&self, day: DayWindow) -> Result<DaySummary> {
        // The sums and the distributions from one snapshot.
        self.tables
            .snapshot(
                Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
                |conn| Box::pin(summarize(conn, day)),
            )
            .await
    }

    /// [`EventStore::sketches`](analytics_core::store::EventStore::sketches).
    pub async fn sketches(&self, day: DayWindow) -> Result<DaySketches> {
        sketches(&mut *self.pool.acquire().await?, day).await
    }

    /// [`EventStore::purge_before`](analytics_core::store::EventStore::purge_before).
    pub async fn purge_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let cutoff_day = self.calendar.date(cutoff);
        let dropped: i64 = sqlx::query_scalar("SELECT analytics_drop_partitions_before($1)")
            .bind(cutoff_day)
            .fetch_one(&self.pool)
            .await?;
        sqlx::query(
            "WITH uncounted AS (DELETE FROM analytics_uncounted WHERE day < $1) \
             DELETE FROM analytics_dirty_days WHERE day < $1",
        )
        .bind(cutoff_day)
        .execute(&self.pool)
        .await?;
        self.known_partitions().retain(|day| *day >= cutoff_day);
        tracing::info!(%cutoff_day, dropped, "dropped event partitions past retention");
        Ok(dropped as u64)
    }

    /// [`EventStore::dirty_days`](analytics_core::store::EventStore::dirty_days).
    pub async fn dirty_days(&self) -> Result<Vec<DirtyDay>> {
        let rows: Vec<(NaiveDate, Vec<i64>, bool)> = sqlx::query_as(
            "SELECT d.day, array_agg(d.version ORDER BY d.version), \
                    EXISTS (SELECT 1 FROM analytics_uncounted u WHERE u.day = d.day) \
             FROM analytics_dirty_days d GROUP BY d.day ORDER BY d.day",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(day, marks, uncounted)| DirtyDay {
                day,
                marks: marks.into_iter().map(|v| v as u64).collect(),
                uncounted,
            })
            .collect())
    }

    /// [`EventStore::clean_day`](analytics_core::store::EventStore::clean_day).
    pub async fn clean_day(&self, date: NaiveDate, marks: &[u64]) -> Result<()> {
        let marks: Vec<i64> = marks
            .iter()
            .map(|m| i64::try_from(*m).unwrap_or(i64::MAX))
            .collect();
        sqlx::query("DELETE FROM analytics_dirty_days WHERE day = $1 AND version = ANY($2)")
            .bind(date)
            .bind(&marks)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// [`EventStore::uncounted_days`](analytics_core::store::EventStore::uncounted_days).
    pub async fn uncounted_days(&self) -> Result<Vec<NaiveDate>> {
        self.tables.uncounted_days().await
    }

    /// [`EventStore::lock_counters`](analytics_core::store::EventStore::lock_counters).
    pub async fn lock_counters(&self, date: NaiveDate) -> Result<Box<dyn CounterRecount>> {
        self.lock_counters_of(&[date]).await
    }

    /// [`EventStore::lock_counters_of`](analytics_core::store::EventStore::lock_counters_of):
    /// the days' locks on one connection (writes blocked behind them hold connections
    /// of the pool already).
    pub async fn lock_counters_of(&self, days: &[NaiveDate]) -> Result<Box<dyn CounterRecount>> {
        let mut conn = Guarded::new(self.pool.acquire().await?);
        for date in days {
            // Writes in flight hold the day's lock shared until their counters are
            // settled. An exclusive request waiting in PostgreSQL's queue would hold
            // every new write to the day behind it, so the lock is tried without
            // queueing for a while, and only then waited for, briefly.
            let until = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let locked: bool = sqlx::query_scalar(
                    "SELECT pg_try_advisory_lock(1634623853, analytics_counter_lock_key($1))",
                )
                .bind(date)
                .fetch_one(&mut **conn.get())
                .await?;
                if locked {
                    break;
                }
                if tokio::time::Instant::now() >= until {
                    simple(conn.get(), "SET lock_timeout = '2s'").await?;
                    sqlx::query(
                        "SELECT pg_advisory_lock(1634623853, analytics_counter_lock_key($1))",
                    )
                    .bind(date)
                    .execute(&mut **conn.get())
                    .await?;
                    simple(conn.get(), "RESET lock_timeout").await?;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(Box::new(PgRecount {
            conn: Some(conn.done()),
            days: days.to_vec(),
        }))
    }

    /// [`EventStore::prepare_days`](analytics_core::store::EventStore::prepare_days).
    pub async fn prepare_days(&self, range: DateRange) -> Result<()> {
        self.ensure_partitions(range.iter()).await?;
        Ok(())
    }

    /// [`StatsStore::put_day`](analytics_core::store::StatsStore::put_day), recording in
    /// `analytics_aggregated_days` when. Puts of one day take turns (a transaction
    /// advisory lock per day): two at once would both delete, then collide inserting.
    pub async fn put_day(&self, date: NaiveDate, summary: &DaySummary) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(date.num_days_from_ce())
            .execute(&mut *tx)
            .await?;
        Tables::<Pg>::put_day(&mut tx, date, summary).await?;
        sqlx::query(
            "INSERT INTO analytics_aggregated_days (day, aggregated_at, events) \
             VALUES ($1, now(), $2) \
             ON CONFLICT (day) DO UPDATE SET aggregated_at = now(), events = EXCLUDED.events",
        )
        .bind(date)
        .bind(to_i64::<Pg>("events", summary.totals.total_events())?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The statistics tables (the trait's reads go to them).
    pub fn tables(&self) -> &Tables<Pg> {
        &self.tables
    }

    /// [`StatsStore::claim_run`](analytics_core::store::StatsStore::claim_run).
    pub async fn claim_run(&self, jobs: &str, within: std::time::Duration) -> Result<bool> {
        // One statement: the row is taken only when the last start is old enough, so
        // of several instances claiming at once exactly one gets the interval.
        let claimed: Option<String> = sqlx::query_scalar(
            "INSERT INTO analytics_job_runs (jobs, started_at) VALUES ($1, clock_timestamp()) \
             ON CONFLICT (jobs) DO UPDATE SET started_at = EXCLUDED.started_at \
             WHERE analytics_job_runs.started_at <= clock_timestamp() - make_interval(secs => $2) \
             RETURNING jobs",
        )
        .bind(jobs)
        .bind(within.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        Ok(claimed.is_some())
    }

    /// [`StatsStore::try_lock`](analytics_core::store::StatsStore::try_lock).
    pub async fn try_lock(&self, job: &str) -> Result<Option<Box<dyn JobLock>>> {
        let mut conn = self.pool.acquire().await?;
        let key = job_key(job);
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        Ok(locked.then(|| {
            Box::new(PgJobLock {
                conn: Some(conn),
                key,
            }) as Box<dyn JobLock>
        }))
    }
}

/// The advisory-lock key of a job: a stable hash of its name, away from the keys of
/// partitions (1) and days (their day number).
fn job_key(job: &str) -> i32 {
    // FNV-1a, folded into the negative range, which day numbers never use.
    let hash = job.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    -((hash & 0x7fff_ffff) as i32) - 1
}

/// A job's session advisory lock on a connection of its own. Released explicitly;
/// dropped without release, the connection is closed, which releases it too.
struct PgJobLock {
    conn: Option<PoolConnection<Postgres>>,
    key: i32,
}

impl Drop for PgJobLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}

#[async_trait]
impl JobLock for PgJobLock {
    async fn release(mut self: Box<Self>) {
        if let Some(mut conn) = self.conn.take() {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                .bind(LOCK_CLASS)
                .bind(self.key)
                .execute(&mut *conn)
                .await;
            if unlocked.is_err() {
                conn.close_on_drop();
            }
        }
    }
}
