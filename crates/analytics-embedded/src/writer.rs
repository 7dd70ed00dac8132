//! The embedded store's one writer connection, kept checked out of its pool.
//!
//! SQLite takes one writer at a time, so every write of the store goes through one
//! connection, and concurrent writers queue for it in the process (a fair lock)
//! instead of spinning on the database lock. Handed back to a pool after each write,
//! the connection would pass through a spawned task and a ping before the next writer
//! got it — gaps of 2 ms between writes at the median while the runtime's workers were
//! busy, a sixth of the end-to-end time (BENCHMARKS.md, `embedded-ingest`); kept here,
//! the next writer in line gets it as the last one lets go.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::{Result, Sqlite};

/// How long a write waits for the connection behind others before it fails (a
/// transient error: it is retried).
pub(crate) const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The writer connection, and the pool of one it is opened from.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    pool: SqlitePool,
    held: Arc<Mutex<Option<PoolConnection<sqlx::Sqlite>>>>,
}

/// The writer connection, lent to one write at a time.
#[derive(Debug)]
pub(crate) struct Held(OwnedMutexGuard<Option<PoolConnection<sqlx::Sqlite>>>);

impl Writer {
    /// The writer over `pool` (of one connection).
    pub(crate) fn new(pool: SqlitePool) -> Writer {
        Writer {
            pool,
            held: Arc::new(Mutex::new(None)),
        }
    }

    /// Waits for the connection (in order of asking, at most [`WAIT`]: then a
    /// transient error, as from a pool that timed out), opening it if none is open.
    pub(crate) async fn lock(&self) -> Result<Held> {
        let mut held = tokio::time::timeout(WAIT, self.held.clone().lock_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        if held.is_none() {
            *held = Some(self.pool.acquire().await?);
        }
        Ok(Held(held))
    }

    /// Closes the connection and the pool (once every write has let go).
    pub(crate) async fn close(&self) {
        if let Some(conn) = self.held.lock().await.take()
            && let Err(error) = conn.close().await
        {
            tracing::debug!(%error, "closing the writer connection failed");
        }
        self.pool.close().await;
    }
}

impl Held {
    /// Closes the connection after a failed write, so that the next write opens another:
    /// a transaction whose `COMMIT` failed (`SQLITE_FULL` on a full disk) stays open on
    /// its connection, and later writes would go into it and "succeed" without ever
    /// reaching the file; closing rolls it back.
    pub(crate) fn discard(mut self) {
        if let Some(mut conn) = self.0.take() {
            conn.close_on_drop();
        }
    }
}

impl analytics_sql::Lent<Sqlite> for Held {
    fn finish<T>(self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.discard();
        }
        result
    }
}

impl Deref for Held {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        // `lock` opens one before lending it, and only `discard`, which consumes the
        // loan, takes it out.
        self.0
            .as_deref()
            .unwrap_or_else(|| unreachable!("a lent writer holds its connection"))
    }
}

impl DerefMut for Held {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.0
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!("a lent writer holds its connection"))
    }
}
