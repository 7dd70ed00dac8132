//! What the PostgreSQL store (`analytics-pg`) and the embedded SQLite store
//! (`analytics-embedded`) share, written once over sqlx's generic [`sqlx::Database`]:
//!
//! - [`Driver`]: what a store tells about its database — how it stores an instant, how
//!   it numbers parameters, and which of its errors are about the data, a race, or an
//!   outage;
//! - [`Error`]: the stores' one error type, and how it maps onto the storage errors of
//!   `analytics-core`;
//! - [`Tables`]: the statistics tables (`analytics_daily_stats`,
//!   `analytics_agent_daily_stats`, `analytics_daily_sketches`), the recorded business
//!   time zone and the uncounted days, which have the same schema in both databases;
//! - [`sessions`]: the sessions export's stream around a dialect's query.
//!
//! What differs — how events are written and locked, retention, the SQL of the day's
//! sums and of the sessions export — stays in each store.
#![deny(missing_docs)]

mod error;
mod tables;

use chrono::{DateTime, Utc};

pub use error::{Error, Result};
pub use tables::{Tables, sessions};

/// A value a column of `DB` holds, bound and read back as it is.
pub trait Column<DB: sqlx::Database>:
    for<'q> sqlx::Encode<'q, DB>
    + for<'r> sqlx::Decode<'r, DB>
    + sqlx::Type<DB>
    + Send
    + Sync
    + Unpin
    + 'static
{
}

impl<DB: sqlx::Database, T> Column<DB> for T where
    T: for<'q> sqlx::Encode<'q, DB>
        + for<'r> sqlx::Decode<'r, DB>
        + sqlx::Type<DB>
        + Send
        + Sync
        + Unpin
        + 'static
{
}

/// A store's database, as the shared code needs to know it.
pub trait Driver: std::fmt::Debug + Send + Sync + 'static {
    /// sqlx's database.
    type DB: sqlx::Database + sqlx::database::HasStatementCache;
    /// How an instant is stored (PostgreSQL `timestamptz`, SQLite microseconds).
    type Time: Column<Self::DB>;
    /// How a dead letter's event id is stored (PostgreSQL `uuid`, SQLite text).
    type Id: Column<Self::DB>;
    /// The store's name in errors and logs.
    const STORE: &'static str;
    /// The character before a parameter's number: `$1` in PostgreSQL, `?1` in SQLite.
    const PARAMETER: char;
    /// The expression of an event's `to` property as text (`agent.status_change`).
    const PROPERTY_TO: &'static str;
    /// The expression of the number of the quarter of an hour (UTC) an event happened
    /// in, counted from the epoch (`store::QUARTER`).
    const QUARTER_OF_EVENT: &'static str;
    /// An instant as stored.
    fn time(at: DateTime<Utc>) -> Self::Time;
    /// A stored instant (one out of range reads as the epoch).
    fn utc(time: Self::Time) -> DateTime<Utc>;
    /// An event id as stored in dead letters.
    fn id(id: uuid::Uuid) -> Self::Id;
    /// A stored event id (one that does not parse reads as nil).
    fn uuid(id: Self::Id) -> uuid::Uuid;
    /// Whether the database refused the data itself: the same rows will be refused
    /// again, so a batch holding them is split until they are isolated.
    fn rejects_data(error: &dyn sqlx::error::DatabaseError) -> bool;
    /// Whether a transaction lost a race with another: retrying at once succeeds.
    fn is_contention(_error: &dyn sqlx::error::DatabaseError) -> bool {
        false
    }
    /// Whether an error the database answered while migrating says it is unavailable
    /// (shutting down, out of connections), not that the schema is wrong.
    fn is_unavailable(_error: &dyn sqlx::error::DatabaseError) -> bool {
        false
    }
    /// A statement written with `$n` parameters, in this dialect.
    fn statement(sql: &str) -> String {
        sql.replace('$', &Self::PARAMETER.to_string())
    }
}

/// A store's connection to write on, lent for one piece of work.
pub trait Lent<D: Driver>:
    std::ops::DerefMut<Target = <D::DB as sqlx::Database>::Connection> + Send
{
    /// Ends the loan with the work's result. After a failure the store may close the
    /// connection: a transaction whose `COMMIT` failed (a full disk) can stay open on
    /// it.
    ///
    /// # Errors
    ///
    /// The work's.
    fn finish<T>(self, result: Result<T, D>) -> Result<T, D>;
}

/// A pooled connection goes back to its pool, which tests it before reuse.
impl<D: Driver> Lent<D> for sqlx::pool::PoolConnection<D::DB> {
    fn finish<T>(self, result: Result<T, D>) -> Result<T, D> {
        result
    }
}

/// A sum as a database integer.
///
/// # Errors
///
/// [`Error::Overflow`] when it exceeds `i64`.
pub fn to_i64<D: Driver>(field: &str, value: u64) -> Result<i64, D> {
    i64::try_from(value).map_err(|_| Error::Overflow {
        field: field.to_owned(),
    })
}

/// A store's own result as `analytics_core`'s (used by [`storage_traits!`]).
#[doc(hidden)]
pub async fn converted<T, D: Driver>(
    result: impl std::future::Future<Output = Result<T, D>>,
) -> analytics_core::Result<T> {
    Ok(result.await?)
}

#[doc(hidden)]
pub mod __private {
    pub use analytics_core;
    pub use async_trait::async_trait;
}

/// The storage traits (`EventStore`, `StatsStore`) of a SQL store on driver `D`,
/// written once: each method calls the store's inherent method of the same name, which
/// returns the store's own [`Result`], and converts its error into `analytics_core`'s
/// once; the statistics reads go straight to the store's [`Tables`] (its inherent
/// `tables()`), and dead letters are written by [`Tables::dead_letter`] on the
/// store's writer connection (its inherent `writer()`, a [`Lent`] connection).
#[macro_export]
macro_rules! storage_traits {
    ($store:ty, $driver:ty) => {
        const _: () = {
            use std::collections::BTreeMap;

            use chrono::{DateTime, NaiveDate, Utc};
            use $crate::__private::analytics_core::Result;
            use $crate::__private::analytics_core::event::Event;
            use $crate::__private::analytics_core::metrics::{DaySummary, Sums};
            use $crate::__private::analytics_core::sketch::DaySketches;
            // Each call goes through `converted`, which takes only a store's own
            // `Result`: a missing inherent method fails to compile instead of calling
            // the trait's (itself).
            use $crate::__private::analytics_core::store::{
                CounterRecount, DeadLetter, DirtyDay, JobLock, SessionQuery, SessionStream, Written,
            };
            use $crate::__private::analytics_core::time::{DateRange, DayWindow};

            #[$crate::__private::async_trait]
            impl $crate::__private::analytics_core::store::EventStore for $store {
                fn sessions(&self, query: SessionQuery) -> SessionStream {
                    <$store>::sessions(self, query)
                }
                async fn write(&self, events: &[Event]) -> Result<Written> {
                    $crate::converted(<$store>::write(self, events)).await
                }
                async fn quarter_sums(
                    &self,
                    from: DateTime<Utc>,
                    to: DateTime<Utc>,
                ) -> Result<Vec<(DateTime<Utc>, Sums)>> {
                    $crate::converted(self.tables().quarter_sums(from, to)).await
                }
                async fn marks(
                    &self,
                    from: DateTime<Utc>,
                ) -> Result<$crate::__private::analytics_core::counters::CounterBatch> {
                    $crate::converted(self.tables().marks(from)).await
                }
                async fn summarize(&self, day: DayWindow) -> Result<DaySummary> {
                    $crate::converted(<$store>::summarize(self, day)).await
                }
                async fn sketches(&self, day: DayWindow) -> Result<DaySketches> {
                    $crate::converted(<$store>::sketches(self, day)).await
                }
                async fn purge_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
                    $crate::converted(<$store>::purge_before(self, cutoff)).await
                }
                async fn dirty_days(&self) -> Result<Vec<DirtyDay>> {
                    $crate::converted(<$store>::dirty_days(self)).await
                }
                async fn clean_day(&self, date: NaiveDate, marks: &[u64]) -> Result<()> {
                    $crate::converted(<$store>::clean_day(self, date, marks)).await
                }
                async fn uncounted_days(&self) -> Result<Vec<NaiveDate>> {
                    $crate::converted(<$store>::uncounted_days(self)).await
                }
                async fn lock_counters(&self, date: NaiveDate) -> Result<Box<dyn CounterRecount>> {
                    $crate::converted(<$store>::lock_counters_of(self, &[date])).await
                }
                async fn lock_counters_of(
                    &self,
                    days: &[NaiveDate],
                ) -> Result<Box<dyn CounterRecount>> {
                    $crate::converted(<$store>::lock_counters_of(self, days)).await
                }
                async fn dead_letter(
                    &self,
                    events: &[Event],
                    reason: &str,
                    at: DateTime<Utc>,
                ) -> Result<()> {
                    $crate::converted(async move {
                        let mut writer = <$store>::writer(self).await?;
                        let written =
                            $crate::Tables::<$driver>::dead_letter(&mut writer, events, reason, at)
                                .await;
                        $crate::Lent::<$driver>::finish(writer, written)
                    })
                    .await
                }
                async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
                    $crate::converted(self.tables().dead_letters(limit)).await
                }
                async fn prepare_days(&self, range: DateRange) -> Result<()> {
                    $crate::converted(<$store>::prepare_days(self, range)).await
                }
            }

            #[$crate::__private::async_trait]
            impl $crate::__private::analytics_core::store::StatsStore for $store {
                async fn put_day(&self, date: NaiveDate, summary: &DaySummary) -> Result<()> {
                    $crate::converted(<$store>::put_day(self, date, summary)).await
                }
                async fn days(&self, range: DateRange) -> Result<Vec<(NaiveDate, Sums)>> {
                    $crate::converted(self.tables().days(range)).await
                }
                async fn agent_days(
                    &self,
                    range: DateRange,
                ) -> Result<BTreeMap<NaiveDate, BTreeMap<String, Sums>>> {
                    $crate::converted(self.tables().agent_days(range)).await
                }
                async fn sketch_days(
                    &self,
                    range: DateRange,
                    per_agent: bool,
                ) -> Result<BTreeMap<NaiveDate, DaySketches>> {
                    $crate::converted(self.tables().sketch_days(range, per_agent)).await
                }
                async fn claim_run(&self, jobs: &str, within: std::time::Duration) -> Result<bool> {
                    $crate::converted(<$store>::claim_run(self, jobs, within)).await
                }
                async fn try_lock(&self, job: &str) -> Result<Option<Box<dyn JobLock>>> {
                    $crate::converted(<$store>::try_lock(self, job)).await
                }
            }
        };
    };
}
