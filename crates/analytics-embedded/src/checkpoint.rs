//! Checkpoints of the embedded database's write-ahead log, off the writers' path.
//!
//! With SQLite's default (`wal_autocheckpoint = 1000`), the commit that takes the log
//! past 1,000 pages copies them into the database file itself, on the writer
//! connection: a write in every few stalls while the others wait for the connection
//! (`perf`: 12 % of SQLite's thread in `walCheckpoint`). The writer connection turns
//! that off, and this task checkpoints on a connection of its own every
//! [`PERIOD`] after writes: a `PASSIVE` checkpoint copies what it can without waiting
//! for the writer or the readers, and the writer starts the log over once a
//! checkpoint has caught up. Commits are as durable as before (WAL,
//! `synchronous = NORMAL`); only when the log is copied changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio::task::AbortHandle;

use crate::error::Result;

/// How often the log is checkpointed while writes come.
pub(crate) const PERIOD: Duration = Duration::from_millis(250);

/// The statement the writer connection runs when it connects.
pub(crate) const WRITER_PRAGMA: &str = "PRAGMA wal_autocheckpoint = 0";

/// The background checkpoints of one database file.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    due: Arc<AtomicBool>,
    pool: SqlitePool,
    task: AbortHandle,
}

impl Checkpointer {
    /// Starts checkpointing the database `options` open, on a connection of its own.
    pub(crate) async fn start(options: SqliteConnectOptions) -> Result<Checkpointer> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let due = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(pool.clone(), due.clone())).abort_handle();
        Ok(Checkpointer { due, pool, task })
    }

    /// A write committed: the log has grown.
    pub(crate) fn wrote(&self) {
        self.due.store(true, Ordering::Release);
    }

    /// Stops the task and copies the whole log into the database, leaving it empty
    /// (so that the file stands alone once closed).
    pub(crate) async fn close(&self) {
        self.task.abort();
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            tracing::debug!(%error, "the last checkpoint failed");
        }
        self.pool.close().await;
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(pool: SqlitePool, due: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !due.swap(false, Ordering::AcqRel) {
            continue;
        }
        // A failure (a full disk, a busy file) leaves the log to the next round; the
        // commits are in it either way.
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!(%error, "a checkpoint failed; the next one will copy its pages");
        }
    }
}
