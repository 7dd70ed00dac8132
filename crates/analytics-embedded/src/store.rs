//! [`EmbeddedStore`]: event detail and daily statistics in one SQLite file.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::str::FromStr;
use std::time::Duration;

use analytics_core::event::Event;
use analytics_core::memory::{DayLocks, ProcessLocks};
use analytics_core::metrics::{DaySummary, Measure};
use analytics_core::sketch::DaySketches;
use analytics_core::store::{
    CounterRecount, DirtyDay, JobLock, PendingCounters, SessionQuery, SessionStream, Written,
};
use analytics_core::time::{Calendar, DateRange, DayWindow};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Connection as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use uuid::Uuid;

use crate::MIGRATOR;
use analytics_sql::{Lent as _, Tables};

use crate::checkpoint::Checkpointer;
use crate::error::{Error, Result, Sqlite};
use crate::writer::{Held, Writer};

/// Event detail and daily statistics in an embedded SQLite database.
///
/// SQLite takes one writer at a time: writes go through one connection ([`Writer`]),
/// so concurrent writers queue in the process instead of spinning on the database
/// lock; reads use a pool of their own (WAL lets them run beside the writer).
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    pool: SqlitePool,
    writer: Writer,
    calendar: Calendar,
    locks: ProcessLocks,
    /// Counter locks of the days (one process per file: in-process locks suffice).
    day_locks: DayLocks,
    /// Writes whose counters were applied and whose uncounted marks are still to be
    /// removed (see [`Settled`]).
    settled: Settled,
    /// The statistics tables.
    tables: Tables<Sqlite>,
    /// Checkpoints of the write-ahead log, off the writers' path.
    checkpointer: std::sync::Arc<Checkpointer>,
}

/// Settled writes taken for removal: put back on drop unless removed.
struct Taken<'a> {
    settled: &'a Settled,
    writes: Vec<i64>,
}

impl Taken<'_> {
    /// Their removal committed.
    fn removed(mut self) {
        self.writes.clear();
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if !self.writes.is_empty() {
            let writes = std::mem::take(&mut self.writes);
            self.settled
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(writes);
        }
    }
}

/// The ids of writes whose counters were applied: their uncounted marks are removed
/// by the next write's transaction, or before the marks are read, instead of by a
/// transaction of their own per write. Until then the days look uncounted, which only
/// ever makes statistics read detail; a crash in between leaves the marks, as if the
/// counters had not been applied (the counter repair recounts those days).
#[derive(Debug, Clone, Default)]
struct Settled(std::sync::Arc<std::sync::Mutex<Vec<i64>>>);

impl Settled {
    fn push(&self, write: i64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(write);
    }

    /// Takes the ids to remove; they come back unless [`Taken::removed`] says their
    /// removal committed (also when the write taking them is dropped half-way).
    fn take(&self) -> Taken<'_> {
        Taken {
            settled: self,
            writes: std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }

    /// Removes the marks of `writes` in the connection's transaction.
    async fn remove(conn: &mut SqliteConnection, writes: &[i64]) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "DELETE FROM analytics_uncounted WHERE write_id IN ({})",
            vec!["?"; writes.len()].join(", ")
        );
        let mut query = sqlx::query(&sql);
        for write in writes {
            query = query.bind(write);
        }
        query.execute(&mut *conn).await?;
        Ok(())
    }
}

fn micros(ts: DateTime<Utc>) -> i64 {
    ts.timestamp_micros()
}

impl EmbeddedStore {
    /// How the store opens its file (the benchmarks' plain-SQLite reference opens it
    /// the same way): WAL, `synchronous = NORMAL` (a commit is durable against a crash
    /// of the process, not of the machine: SQLite's recommended setting for WAL), and
    /// SQLite's default checkpoint every 1,000 pages of WAL (4,000 measured no faster
    /// end to end: BENCHMARKS.md). The store's own writer connection then turns the
    /// automatic checkpoint off: a task checkpoints in the background (`checkpoint.rs`).
    ///
    /// # Errors
    ///
    /// [`Error::Query`] when `url` is not an `sqlite:` URL.
    pub fn connect_options(url: &str) -> Result<SqliteConnectOptions> {
        Ok(SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5)))
    }

    /// Opens (creating if needed) the database at an `sqlite:` URL, applies the schema,
    /// and records or checks the business time zone.
    ///
    /// # Errors
    ///
    /// [`Error::Query`] when the file cannot be opened, [`Error::Migrate`] when the
    /// schema cannot be applied, [`Error::TimeZoneMismatch`] when the database was set
    /// up for another zone.
    pub async fn open(url: &str, calendar: Calendar) -> Result<EmbeddedStore> {
        let options = EmbeddedStore::connect_options(url)?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(crate::writer::WAIT)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    use sqlx::Executor as _;
                    conn.execute(crate::checkpoint::WRITER_PRAGMA).await?;
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone().read_only(true))
            .await?;
        let checkpointer = Checkpointer::start(options).await?;
        let store = EmbeddedStore {
            checkpointer: std::sync::Arc::new(checkpointer),
            tables: Tables::new(pool.clone()),
            pool,
            writer: Writer::new(writer),
            calendar,
            locks: ProcessLocks::default(),
            day_locks: DayLocks::default(),
            settled: Settled::default(),
        };
        store.check_time_zone().await?;
        Ok(store)
    }

    /// The connection pool for reads.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The business calendar days follow.
    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    async fn check_time_zone(&self) -> Result<()> {
        let mut writer = self.writer.lock().await?;
        let zone = self.calendar.zone().name();
        let checked = Tables::<Sqlite>::check_time_zone(&mut writer, zone).await;
        writer.finish(checked)
    }

    /// Closes the pool, so that the file can be opened again (by a restarted server).
    pub async fn close(&self) {
        if let Err(error) = self.apply_settled().await {
            tracing::warn!(%error, "removing settled writes' uncounted marks failed");
        }
        self.pool.close().await;
        self.writer.close().await;
        self.checkpointer.close().await;
    }

    /// The writer connection, for one piece of work (dead letters).
    pub(crate) async fn writer(&self) -> Result<Held> {
        self.writer.lock().await
    }
}

impl EmbeddedStore {
    /// Removes the uncounted marks of the writes settled since the last write.
    async fn apply_settled(&self) -> Result<()> {
        let taken = self.settled.take();
        if taken.writes.is_empty() {
            return Ok(());
        }
        let mut writer = self.writer.lock().await?;
        let result = async {
            let mut tx = writer.begin().await?;
            Settled::remove(&mut tx, &taken.writes).await?;
            tx.commit().await?;
            Ok::<_, Error>(())
        }
        .await;
        if result.is_ok() {
            taken.removed();
        }
        writer.finish(result)
    }
}

async fn summarize(conn: &mut SqliteConnection, window: DayWindow) -> Result<DaySummary> {
    let groups: Vec<(String, Option<String>, i64, i64, i64)> = sqlx::query_as(
        "SELECT event, agent_id, count(*), coalesce(sum(value_micros), 0), \
                coalesce(sum(sla_met), 0) \
         FROM analytics_events WHERE occurred_at >= ? AND occurred_at < ? \
         GROUP BY event, agent_id",
    )
    .bind(micros(window.start))
    .bind(micros(window.end))
    .fetch_all(&mut *conn)
    .await?;
    let mut summary = DaySummary::from_groups(groups).map_err(Error::Model)?;
    summary.sketches = sketches(conn, window).await?;
    Ok(summary)
}

/// The distributions of the durations of one business day's events: the events with
/// a summed quantity grouped by name, agent and value (the bin is picked in Rust).
async fn sketches(conn: &mut SqliteConnection, window: DayWindow) -> Result<DaySketches> {
    let groups: Vec<(String, Option<String>, i64, i64)> = sqlx::query_as(
        "SELECT event, agent_id, value_micros, count(*) \
         FROM analytics_events \
         WHERE occurred_at >= ? AND occurred_at < ? AND value_micros IS NOT NULL \
         GROUP BY event, agent_id, value_micros",
    )
    .bind(micros(window.start))
    .bind(micros(window.end))
    .fetch_all(&mut *conn)
    .await?;
    let mut sketches = DaySketches::default();
    sketches.add_value_groups(groups).map_err(Error::Model)?;
    Ok(sketches)
}

/// Rows per `INSERT` statement: 11 parameters a row, well under SQLite's 32,766.
const INSERT_ROWS: usize = 2_000;

/// The `INSERT` of `rows` events (`rows` ≤ [`INSERT_ROWS`]); with `skip_stored`, ids
/// already stored are skipped, otherwise one fails the statement. The plain full size
/// is built once (and the connection prepares it once).
fn insert_sql(rows: usize, skip_stored: bool) -> std::borrow::Cow<'static, str> {
    static FULL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    fn build(rows: usize, skip_stored: bool) -> String {
        let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        format!(
            "INSERT INTO analytics_events (event_id, occurred_at, event, product, session_id, \
                 agent_id, ticket_id, value_micros, sla_met, properties, received_at) \
             VALUES {}{}",
            vec![row; rows].join(", "),
            if skip_stored {
                " ON CONFLICT (event_id) DO NOTHING"
            } else {
                ""
            }
        )
    }
    if rows == INSERT_ROWS && !skip_stored {
        std::borrow::Cow::Borrowed(FULL.get_or_init(|| build(INSERT_ROWS, false)))
    } else {
        std::borrow::Cow::Owned(build(rows, skip_stored))
    }
}

/// A chunk's rows bound to its `INSERT` (of [`insert_sql`]).
fn bind_rows<'q>(
    sql: &'q str,
    persistent: bool,
    chunk: &[(&'q Event, &'q Encoded)],
    received: i64,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    let mut query = sqlx::query(sql).persistent(persistent);
    for (event, row) in chunk {
        query = query
            .bind(&row.id[..])
            .bind(row.at)
            .bind(event.name())
            .bind(event.product().map(|p| p.as_str()))
            .bind(event.session_id())
            .bind(event.agent_id())
            .bind(event.ticket_id())
            .bind(row.value_micros)
            .bind(row.sla_met)
            .bind(row.properties.as_str())
            .bind(received);
    }
    query
}

/// What a write binds for one event besides the event's own strings, computed before
/// the writer connection is taken (serializing properties is most of the work): the
/// single connection is held only to execute.
struct Encoded {
    id: [u8; 16],
    at: i64,
    value_micros: Option<i64>,
    sla_met: Option<bool>,
    properties: String,
}

fn encode(events: &[Event]) -> Vec<Encoded> {
    events
        .iter()
        .map(|event| {
            let measure = Measure::of(event);
            Encoded {
                id: *event.id().as_bytes(),
                at: micros(event.timestamp()),
                // Validated values are at most 1e15 millionths: they fit.
                value_micros: measure.value_micros.map(|v| v as i64),
                sla_met: measure.sla_met,
                properties: event.properties_json(),
            }
        })
        .collect()
}

/// Drives `write` to completion on this thread, where the runtime has several: a
/// write is a dozen statements, each a round trip to the connection's own thread, and
/// a task woken between them would wait for a runtime worker busy with other tasks
/// (the producers, the counters), leaving SQLite's thread idle meanwhile. Blocking in
/// place hands this worker's other tasks to another worker while the write runs.
async fn on_this_thread<T>(write: impl std::future::Future<Output = T>) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let handle = Handle::current();
    if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| handle.block_on(write))
    } else {
        write.await
    }
}

/// Writes the events in one transaction: the ids not stored yet, the dirty and
/// uncounted marks of their days. Returns the flags, the days, and the write id (none
/// when nothing was new).
async fn write_events(
    conn: &mut SqliteConnection,
    calendar: &Calendar,
    events: &[Event],
    encoded: &[Encoded],
    settled: &[i64],
) -> Result<(Vec<bool>, BTreeSet<NaiveDate>, Option<i64>)> {
    let mut tx = conn.begin().await?;
    Settled::remove(&mut tx, settled).await?;
    let received = micros(Utc::now());
    // Multi-row statements of the batch's distinct ids, first occurrences. Nearly
    // always no id is stored yet, so each chunk first goes as a plain `INSERT` (the
    // full size prepared once): all its rows are new. When an id is stored already the
    // statement fails and SQLite backs out only that statement; the chunk goes again
    // skipping stored ids, and the ids it inserted are read back by rowid (the rows a
    // statement inserts take the rowids after the table's largest, in order: the last
    // `affected` up to `last_insert_rowid`). Neither answers the inserted ids as rows,
    // which would cost a thousand rows through the driver per statement.
    let mut seen: HashSet<Uuid> = HashSet::with_capacity(events.len());
    let distinct: Vec<(&Event, &Encoded)> = events
        .iter()
        .zip(encoded)
        .filter(|(event, _)| seen.insert(event.id()))
        .collect();
    let mut inserted: HashSet<Uuid> = HashSet::with_capacity(distinct.len());
    for chunk in distinct.chunks(INSERT_ROWS) {
        // Only the plain full size is kept prepared: a statement of up to 22,000
        // parameters for every other size would pile up in the connection's cache.
        let plain = insert_sql(chunk.len(), false);
        let first = bind_rows(&plain, chunk.len() == INSERT_ROWS, chunk, received)
            .execute(&mut *tx)
            .await;
        let done = match first {
            Ok(_) => {
                inserted.extend(chunk.iter().map(|(event, _)| event.id()));
                continue;
            }
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                let skipping = insert_sql(chunk.len(), true);
                bind_rows(&skipping, false, chunk, received)
                    .execute(&mut *tx)
                    .await?
            }
            Err(error) => return Err(error.into()),
        };
        let affected = done.rows_affected();
        if affected == chunk.len() as u64 {
            inserted.extend(chunk.iter().map(|(event, _)| event.id()));
        } else if affected > 0 {
            let last = done.last_insert_rowid();
            let ids: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT event_id FROM analytics_events WHERE rowid > ? AND rowid <= ?",
            )
            .bind(last - affected as i64)
            .bind(last)
            .fetch_all(&mut *tx)
            .await?;
            if ids.len() as u64 != affected {
                return Err(Error::Query(sqlx::Error::Protocol(format!(
                    "{affected} rows inserted but {} read back by rowid",
                    ids.len()
                ))));
            }
            inserted.extend(ids.iter().filter_map(|id| Uuid::from_slice(id).ok()));
        }
    }
    // The first occurrence of an inserted id is the one stored.
    let mut flags = Vec::with_capacity(events.len());
    let mut days = BTreeSet::new();
    for event in events {
        let new = inserted.remove(&event.id());
        if new {
            days.insert(calendar.date(event.timestamp()));
        }
        flags.push(new);
    }
    if days.is_empty() {
        // Nothing new; the settled marks' removal commits all the same.
        tx.commit().await?;
        return Ok((flags, days, None));
    }
    let mut write = None;
    for day in &days {
        let version = sqlx::query("INSERT INTO analytics_dirty_days (day) VALUES (?)")
            .bind(day)
            .execute(&mut *tx)
            .await?
            .last_insert_rowid();
        let write = *write.get_or_insert(version);
        sqlx::query("INSERT INTO analytics_uncounted (write_id, day) VALUES (?, ?)")
            .bind(write)
            .bind(day)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok((flags, days, write))
}

/// The sessions export's query (see `EventStore::sessions` and `store::sessions_of`,
/// whose rules it follows).
const SESSIONS_SQL: &str = r#"WITH ev AS (
    SELECT session_id, event, occurred_at, agent_id, value_micros, properties,
           row_number() OVER (PARTITION BY session_id, event ORDER BY occurred_at, event_id) AS nth
    FROM analytics_events
    WHERE occurred_at >= ?1 AND occurred_at < ?3 AND session_id IS NOT NULL
      AND event IN ('session.start', 'session.escalate', 'agent.session_takeover',
                    'agent.session_release')
), sessions AS (
    SELECT session_id,
           min(occurred_at) FILTER (WHERE event = 'session.start') AS started_at,
           max(json_extract(properties, '$.channel')) FILTER (WHERE event = 'session.start') AS channel,
           max(json_extract(properties, '$.customer_id')) FILTER (WHERE event = 'session.start') AS customer_id,
           max(event = 'session.escalate') AS escalated,
           max(agent_id) FILTER (WHERE event = 'agent.session_takeover' AND nth = 1) AS agent_id,
           max(value_micros) FILTER (WHERE event = 'agent.session_takeover' AND nth = 1) AS first_response,
           sum(value_micros) FILTER (WHERE event = 'agent.session_release') AS handle_time
    FROM ev GROUP BY session_id
), started AS (
    SELECT *, lead(started_at) OVER (PARTITION BY customer_id ORDER BY started_at, session_id) AS next_start
    FROM sessions WHERE started_at IS NOT NULL
)
SELECT session_id, started_at, channel, customer_id, escalated, agent_id, first_response,
       handle_time,
       (customer_id IS NOT NULL AND next_start IS NOT NULL AND next_start <= started_at + ?4) AS returned
FROM started WHERE started_at < ?2
ORDER BY started_at, session_id"#;

analytics_sql::storage_traits!(EmbeddedStore, Sqlite);

/// The storage traits' methods, with this store's errors (`storage_traits!` makes the
/// trait impls of them).
impl EmbeddedStore {
    /// [`EventStore::sessions`](analytics_core::store::EventStore::sessions).
    pub fn sessions(&self, query: SessionQuery) -> SessionStream {
        analytics_sql::sessions::<Sqlite>(&self.pool, SESSIONS_SQL, query)
    }

    /// [`EventStore::write`](analytics_core::store::EventStore::write).
    pub async fn write(&self, events: &[Event]) -> Result<Written> {
        // The counter locks of the batch's days are shared before the transaction
        // begins: a recount holding one never waits for the single writer connection.
        let batch_days: BTreeSet<NaiveDate> = events
            .iter()
            .map(|e| self.calendar.date(e.timestamp()))
            .collect();
        let batch_days: Vec<NaiveDate> = batch_days.into_iter().collect();
        let guards = self.day_locks.share(&batch_days).await;
        // A transaction whose commit failed (a full disk: SQLITE_FULL) stays open on its
        // connection, and later writes would go into it and "succeed" without ever
        // reaching the file: after any error the connection is closed, which rolls the
        // transaction back, and the next write opens a new one.
        let encoded = encode(events);
        let mut writer = self.writer.lock().await?;
        let settled = self.settled.take();
        let writing = write_events(
            &mut writer,
            &self.calendar,
            events,
            &encoded,
            &settled.writes,
        );
        let result = on_this_thread(writing).await;
        let (flags, days, write) = match result {
            Ok(done) => {
                settled.removed();
                done
            }
            Err(error) => {
                writer.discard();
                return Err(error);
            }
        };
        drop(writer);
        self.checkpointer.wrote();
        let Some(write) = write else {
            return Ok(Written {
                new: flags,
                pending: None,
            });
        };
        Ok(Written {
            new: flags,
            pending: Some(Box::new(EmbeddedPending {
                settled: self.settled.clone(),
                write,
                days: days.into_iter().collect(),
                _guards: guards,
            })),
        })
    }

    /// [`EventStore::summarize`](analytics_core::store::EventStore::summarize).
    pub async fn summarize(&self, day: DayWindow) -> Result<DaySummary> {
        // A read transaction in WAL mode is one snapshot.
        self.tables
            .snapshot(None, |conn| Box::pin(summarize(conn, day)))
            .await
    }

    /// [`EventStore::sketches`](analytics_core::store::EventStore::sketches).
    pub async fn sketches(&self, day: DayWindow) -> Result<DaySketches> {
        sketches(&mut *self.pool.acquire().await?, day).await
    }

    /// [`EventStore::purge_before`](analytics_core::store::EventStore::purge_before).
    pub async fn purge_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let cutoff_day = self.calendar.date(cutoff);
        let mut writer = self.writer.lock().await?;
        let purged = async {
            let mut tx = writer.begin().await?;
            let dropped = sqlx::query("DELETE FROM analytics_events WHERE occurred_at < ?")
                .bind(micros(self.calendar.day_start(cutoff_day)))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            for table in ["analytics_dirty_days", "analytics_uncounted"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE day < ?"))
                    .bind(cutoff_day)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(dropped)
        }
        .await;
        let dropped = writer.finish(purged)?;
        tracing::info!(%cutoff_day, dropped, "deleted event detail past retention");
        Ok(dropped)
    }

    /// [`EventStore::dirty_days`](analytics_core::store::EventStore::dirty_days).
    pub async fn dirty_days(&self) -> Result<Vec<DirtyDay>> {
        let rows: Vec<(NaiveDate, i64)> =
            sqlx::query_as("SELECT day, version FROM analytics_dirty_days ORDER BY day, version")
                .fetch_all(&self.pool)
                .await?;
        let uncounted: BTreeSet<NaiveDate> = self.uncounted_days().await?.into_iter().collect();
        let mut days = BTreeMap::<NaiveDate, Vec<u64>>::new();
        for (day, version) in rows {
            days.entry(day).or_default().push(version as u64);
        }
        Ok(days
            .into_iter()
            .map(|(day, marks)| DirtyDay {
                day,
                marks,
                uncounted: uncounted.contains(&day),
            })
            .collect())
    }

    /// [`EventStore::clean_day`](analytics_core::store::EventStore::clean_day).
    pub async fn clean_day(&self, date: NaiveDate, marks: &[u64]) -> Result<()> {
        let mut writer = self.writer.lock().await?;
        let cleaned = async {
            let mut tx = writer.begin().await?;
            for mark in marks {
                sqlx::query("DELETE FROM analytics_dirty_days WHERE day = ? AND version = ?")
                    .bind(date)
                    .bind(i64::try_from(*mark).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        writer.finish(cleaned)
    }

    /// [`EventStore::uncounted_days`](analytics_core::store::EventStore::uncounted_days).
    pub async fn uncounted_days(&self) -> Result<Vec<NaiveDate>> {
        // Leftover marks only make days look uncounted (read from detail): a removal
        // that fails (a full disk) is no reason to fail the reading.
        if let Err(error) = self.apply_settled().await {
            tracing::warn!(%error, "removing settled writes' uncounted marks failed");
        }
        self.tables.uncounted_days().await
    }

    /// [`EventStore::lock_counters`](analytics_core::store::EventStore::lock_counters).
    pub async fn lock_counters(&self, date: NaiveDate) -> Result<Box<dyn CounterRecount>> {
        self.lock_counters_of(&[date]).await
    }

    /// [`EventStore::lock_counters_of`](analytics_core::store::EventStore::lock_counters_of).
    pub async fn lock_counters_of(&self, days: &[NaiveDate]) -> Result<Box<dyn CounterRecount>> {
        let mut guards = Vec::with_capacity(days.len());
        for day in days {
            guards.push(self.day_locks.exclusive(*day).await);
        }
        Ok(Box::new(EmbeddedRecount {
            writer: self.writer.clone(),
            days: days.to_vec(),
            _guards: guards,
        }))
    }
}

/// A committed write of the embedded store whose counters are pending.
#[derive(Debug)]
struct EmbeddedPending {
    settled: Settled,
    write: i64,
    days: Vec<NaiveDate>,
    _guards: Vec<tokio::sync::OwnedRwLockReadGuard<()>>,
}

#[async_trait]
impl PendingCounters for EmbeddedPending {
    fn days(&self) -> &[NaiveDate] {
        &self.days
    }

    async fn settle(self: Box<Self>, applied: bool) {
        // Removed with the next write or before the marks are read (`Settled`).
        if applied {
            self.settled.push(self.write);
        }
    }
}

/// A day's counter lock, held exclusively in this process.
struct EmbeddedRecount {
    writer: Writer,
    days: Vec<NaiveDate>,
    _guards: Vec<tokio::sync::OwnedRwLockWriteGuard<()>>,
}

#[async_trait]
impl CounterRecount for EmbeddedRecount {
    async fn finish(self: Box<Self>) -> analytics_core::Result<()> {
        let mut writer = self.writer.lock().await?;
        let cleared = async {
            for day in &self.days {
                sqlx::query("DELETE FROM analytics_uncounted WHERE day = ?")
                    .bind(day)
                    .execute(&mut *writer)
                    .await?;
            }
            Ok::<(), Error>(())
        }
        .await;
        writer.finish(cleared)?;
        Ok(())
    }
}

/// The statistics side of the storage traits.
impl EmbeddedStore {
    /// [`EventStore::prepare_days`](analytics_core::store::EventStore::prepare_days):
    /// nothing to prepare (one table, no partitions).
    pub async fn prepare_days(&self, _range: DateRange) -> Result<()> {
        Ok(())
    }

    /// [`StatsStore::put_day`](analytics_core::store::StatsStore::put_day).
    pub async fn put_day(&self, date: NaiveDate, summary: &DaySummary) -> Result<()> {
        let mut writer = self.writer.lock().await?;
        let put = async {
            let mut tx = writer.begin().await?;
            Tables::<Sqlite>::put_day(&mut tx, date, summary).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        writer.finish(put)
    }

    /// The statistics tables (the trait's reads go to them).
    pub fn tables(&self) -> &Tables<Sqlite> {
        &self.tables
    }

    /// [`StatsStore::claim_run`](analytics_core::store::StatsStore::claim_run).
    pub async fn claim_run(&self, jobs: &str, within: std::time::Duration) -> Result<bool> {
        // One process per file: the claim lives in the process, like the job locks.
        Ok(self.locks.claim_run(jobs, within))
    }

    /// [`StatsStore::try_lock`](analytics_core::store::StatsStore::try_lock).
    pub async fn try_lock(&self, job: &str) -> Result<Option<Box<dyn JobLock>>> {
        Ok(self.locks.try_lock(job))
    }
}
