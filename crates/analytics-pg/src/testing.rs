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

/// A private PostgreSQL primary with a streaming replica (`pg_basebackup -R`), each on
/// a free loopback port, in a directory of its own: for tests of reading from a
/// replica. The shared test server is not touched. Both servers are stopped (by their
/// data directories, `pg_ctl stop -m immediate`) and the directory removed on drop.
///
/// The PostgreSQL programs come from `ANALYTICS_TEST_PG_BIN` or the newest
/// `/usr/lib/postgresql/*/bin`; as root they run as the `postgres` user.
#[derive(Debug)]
pub struct ReplicatedCluster {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    primary_port: u16,
    replica_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|error| panic!("no free port: {error}"))
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

impl ReplicatedCluster {
    /// Starts the primary (`wal_level = replica`), takes a base backup of it and starts
    /// the replica from it, and waits until both take connections.
    ///
    /// # Panics
    ///
    /// When a program is missing or fails: the test fails and says which.
    pub fn start() -> ReplicatedCluster {
        let bin = std::env::var_os("ANALYTICS_TEST_PG_BIN")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
                    .ok()?
                    .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                    .filter(|p| p.join("initdb").exists())
                    .collect();
                versions.sort();
                versions.pop()
            })
            .unwrap_or_else(|| {
                panic!("no PostgreSQL programs (set ANALYTICS_TEST_PG_BIN to their directory)")
            });
        let dir =
            std::env::temp_dir().join(format!("analytics-replica-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let cluster = ReplicatedCluster {
            dir,
            bin,
            primary_port: free_port(),
            replica_port: free_port(),
        };
        if is_root() {
            cluster.run(
                "chown",
                &["-R", "postgres:postgres", &cluster.path("")],
                false,
            );
        }
        let primary = cluster.path("primary");
        let replica = cluster.path("replica");
        cluster.run(
            "initdb",
            &["-D", &primary, "-A", "trust", "-U", "postgres", "--no-sync"],
            true,
        );
        cluster.pg_ctl_start(
            &primary,
            cluster.primary_port,
            "-c wal_level=replica -c max_wal_senders=4",
        );
        cluster.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &cluster.primary_port.to_string(),
                "-U",
                "postgres",
                "-D",
                &replica,
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
            true,
        );
        cluster.pg_ctl_start(&replica, cluster.replica_port, "-c hot_standby=on");
        cluster
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Runs a program (a PostgreSQL one from `bin` when `postgres`), as the `postgres`
    /// user when this is root.
    fn run(&self, program: &str, args: &[&str], postgres: bool) {
        let program = if postgres {
            self.bin.join(program).display().to_string()
        } else {
            program.to_owned()
        };
        let mut command = if postgres && is_root() {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--", &program]);
            command
        } else {
            std::process::Command::new(&program)
        };
        let output = command
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn pg_ctl_start(&self, data: &str, port: u16, settings: &str) {
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off {settings}",
            self.path("")
        );
        let log = format!("{data}.log");
        self.run(
            "pg_ctl",
            &["-D", data, "-o", &options, "-l", &log, "-w", "start"],
            true,
        );
    }

    /// Stops the replica (immediately, as a crash would).
    pub fn stop_replica(&self) {
        let replica = self.path("replica");
        self.run(
            "pg_ctl",
            &["-D", &replica, "-m", "immediate", "-w", "stop"],
            true,
        );
    }

    /// The primary's `postgres` database.
    pub fn primary_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.primary_port
        )
    }

    /// The replica's `postgres` database.
    pub fn replica_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.replica_port
        )
    }
}

impl Drop for ReplicatedCluster {
    fn drop(&mut self) {
        for data in ["replica", "primary"] {
            let data = self.path(data);
            let program = self.bin.join("pg_ctl").display().to_string();
            let mut command = if is_root() {
                let mut command = std::process::Command::new("runuser");
                command.args(["-u", "postgres", "--", &program]);
                command
            } else {
                std::process::Command::new(&program)
            };
            let _ = command
                .args(["-D", &data, "-m", "immediate", "-w", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
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

/// The binary `COPY` encoding of events the store writes with, for the benchmarks'
/// plain-`COPY` reference.
pub mod copy {
    pub use crate::copy::{BINARY_HEADER, BINARY_TRAILER, COLUMNS, encode_binary};
}
