//! A fresh, migrated PostgreSQL database per test (feature `testing`).
//!
//! Each [`TestDatabase`] creates `analytics_test_<uuid>` on the server named by
//! `ANALYTICS_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! migrates it, and drops it when it goes out of scope, so tests run in parallel and
//! never see each other's data. `DATABASE_URL` is deliberately not used: it selects the
//! service's own database.
//!
//! A test that cannot reach the server fails with a message saying so: nothing is
//! skipped silently.

use analytics_core::time::Calendar;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use uuid::Uuid;

use crate::{PgStore, PoolOptions};

/// The variable that names the server for tests.
pub const TEST_URL_VARIABLE: &str = "ANALYTICS_TEST_PG_URL";

const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server tests use.
pub fn server_url() -> String {
    std::env::var(TEST_URL_VARIABLE)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_URL.to_owned())
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// A migrated database of its own, dropped on drop.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    store: PgStore,
}

impl TestDatabase {
    /// A new database with the schema, for the Asia/Shanghai calendar.
    ///
    /// # Panics
    ///
    /// When the test server cannot be reached or the schema cannot be applied: the
    /// test fails and says why.
    pub async fn new() -> TestDatabase {
        TestDatabase::with_calendar(Calendar::default()).await
    }

    /// A new database with the schema, for `calendar`.
    ///
    /// # Panics
    ///
    /// As [`TestDatabase::new`].
    pub async fn with_calendar(calendar: Calendar) -> TestDatabase {
        let server = server_url();
        let name = format!("analytics_test_{}", Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(&server)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "cannot reach the PostgreSQL test server (set {TEST_URL_VARIABLE} to another \
                 one, or start it): {error}"
                )
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|error| panic!("cannot create the test database {name}: {error}"));
        let _ = admin.close().await;
        let url = with_database(&server, &name);
        let store = PgStore::connect(&url, calendar, PoolOptions::default())
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {name}: {error}"));
        store
            .migrate()
            .await
            .unwrap_or_else(|error| panic!("cannot migrate {name}: {error:?}"));
        TestDatabase { name, url, store }
    }

    /// The store on this database.
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop happens inside the test's runtime, which may be single-threaded: do the
        // async clean-up on a thread of its own.
        let name = self.name.clone();
        let server = server_url();
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&server).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
