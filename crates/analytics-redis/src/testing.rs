//! A key prefix of its own per test (feature `testing`).
//!
//! Each [`TestRedis`] uses the prefix `test:{uuid}:` on the server named by
//! `ANALYTICS_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) and deletes its keys
//! with `SCAN` + `UNLINK` when dropped — never `FLUSHDB` — so tests share the server and
//! run in parallel. A test that cannot reach the server fails and says so.

/// The Redis driver, for tests that look at keys directly.
pub use deadpool_redis::redis;
use uuid::Uuid;

use crate::{RedisOptions, RedisStore};

/// The variable that names the server for tests.
pub const TEST_URL_VARIABLE: &str = "ANALYTICS_TEST_REDIS_URL";

/// The server tests use.
pub fn server_url() -> String {
    std::env::var(TEST_URL_VARIABLE)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// A store under a fresh prefix, whose keys are deleted on drop.
#[derive(Debug)]
pub struct TestRedis {
    prefix: String,
    store: RedisStore,
}

impl TestRedis {
    /// A store under `test:{uuid}:`.
    ///
    /// # Panics
    ///
    /// When the test server does not answer.
    pub async fn new() -> TestRedis {
        TestRedis::with_options(RedisOptions::default()).await
    }

    /// A store under `test:{uuid}:` with these options (their prefix is replaced).
    ///
    /// # Panics
    ///
    /// When the test server does not answer.
    pub async fn with_options(options: RedisOptions) -> TestRedis {
        let prefix = format!("test:{}:", Uuid::now_v7().simple());
        let url = server_url();
        let store = RedisStore::connect(
            &url,
            RedisOptions {
                prefix: prefix.clone(),
                ..options
            },
        )
        .unwrap_or_else(|error| panic!("bad Redis test URL {url}: {error}"));
        store.ping().await.unwrap_or_else(|error| {
            panic!(
                "cannot reach the Redis test server at {url} (set {TEST_URL_VARIABLE} to \
                 another one, or start it): {error}"
            )
        });
        TestRedis { prefix, store }
    }

    /// The store.
    pub fn store(&self) -> &RedisStore {
        &self.store
    }

    /// The prefix, `test:{uuid}:`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every key under the prefix, sorted.
    ///
    /// # Panics
    ///
    /// When the server does not answer.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = scan(&self.prefix).unwrap_or_else(|error| panic!("SCAN failed: {error}"));
        keys.sort();
        keys
    }

    /// A plain connection to the test server, for inspecting keys.
    ///
    /// # Panics
    ///
    /// When the server does not answer.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(server_url())
            .and_then(|client| client.get_connection())
            .unwrap_or_else(|error| panic!("cannot connect to Redis: {error}"))
    }
}

fn scan(prefix: &str) -> redis::RedisResult<Vec<String>> {
    let client = redis::Client::open(server_url())?;
    scan_on(&mut client.get_connection()?, prefix)
}

/// Every key under `prefix` on the server of `conn`.
fn scan_on(conn: &mut redis::Connection, prefix: &str) -> redis::RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query(conn)?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let Ok(keys) = scan(&self.prefix) else {
            return;
        };
        if keys.is_empty() {
            return;
        }
        if let Ok(mut conn) =
            redis::Client::open(server_url()).and_then(|client| client.get_connection())
        {
            let _ = redis::cmd("UNLINK").arg(&keys).query::<()>(&mut conn);
        }
    }
}

/// A private Redis Cluster of masters (no replicas) on free loopback ports, each
/// `redis-server --cluster-enabled yes` without persistence in a directory of its own,
/// joined by `redis-cli --cluster create`: for tests of the store on a cluster. The
/// shared test server is not touched; the nodes are killed (by their processes) and
/// the directory removed on drop.
#[derive(Debug)]
pub struct TestCluster {
    dir: std::path::PathBuf,
    ports: Vec<u16>,
    nodes: Vec<Option<std::process::Child>>,
}

/// A section of `INFO` of the server of `conn`; empty when it does not answer.
fn info(conn: &mut redis::Connection, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query(conn)
        .unwrap_or_default()
}

/// A loopback port that is free, and whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    for _ in 0..100 {
        let Ok(port) = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
        else {
            continue;
        };
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair for a Redis Cluster node");
}

impl TestCluster {
    /// Starts `masters` nodes, creates the cluster over them, and waits until every
    /// node reports `cluster_state:ok`.
    ///
    /// # Panics
    ///
    /// When `redis-server` or `redis-cli` is missing or fails: the test fails and says
    /// which.
    pub fn start(masters: usize) -> TestCluster {
        TestCluster::start_with_replicas(masters, 0)
    }

    /// [`TestCluster::start`] with `replicas` replicas of each master.
    ///
    /// # Panics
    ///
    /// As [`TestCluster::start`].
    pub fn start_with_replicas(masters: usize, replicas: usize) -> TestCluster {
        let nodes = masters * (1 + replicas);
        let dir = std::env::temp_dir().join(format!(
            "analytics-redis-cluster-{}",
            Uuid::now_v7().simple()
        ));
        let mut cluster = TestCluster {
            dir,
            ports: Vec::new(),
            nodes: Vec::new(),
        };
        while cluster.ports.len() < nodes {
            let port = free_cluster_port();
            if !cluster.ports.contains(&port) {
                cluster.ports.push(port);
            }
        }
        for i in 0..nodes {
            // A port found free may be taken before the node binds it (its bus port
            // +10,000 lies among those the kernel hands to outgoing connections): a
            // node that exits at once is started again on other ports.
            let mut attempts = 0;
            loop {
                let mut node = cluster.spawn(i);
                std::thread::sleep(std::time::Duration::from_millis(100));
                if matches!(node.try_wait(), Ok(None)) || attempts == 5 {
                    cluster.nodes.push(Some(node));
                    break;
                }
                attempts += 1;
                loop {
                    let port = free_cluster_port();
                    if !cluster.ports.contains(&port) {
                        cluster.ports[i] = port;
                        break;
                    }
                }
            }
        }
        for i in 0..nodes {
            cluster.wait_for(i, |conn| redis::cmd("PING").query::<String>(conn).is_ok());
        }
        let addresses: Vec<String> = cluster
            .ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let out = std::process::Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .unwrap_or_else(|error| panic!("cannot run redis-cli: {error}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_ok();
        cluster.wait_replicas_synced();
        cluster
    }

    /// Waits until every replica's link to its master is up (its first sync done).
    fn wait_replicas_synced(&self) {
        for i in 0..self.ports.len() {
            self.wait_for(i, |conn| {
                let replication = info(conn, "replication");
                replication.contains("role:master") || replication.contains("master_link_status:up")
            });
        }
    }

    fn spawn(&self, i: usize) -> std::process::Child {
        let port = self.ports[i];
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-node-timeout", "2000"])
            .args(["--save", "", "--appendonly", "no"])
            // Replicas synchronize at once (not after the default 5 s).
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&dir)
            .args(["--logfile", "redis.log", "--daemonize", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start redis-server: {error}"))
    }

    fn client(&self, i: usize) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{}", self.ports[i]))?.get_connection()
    }

    /// Waits up to 30 s for `ready` to hold on node `i`.
    fn wait_for(&self, i: usize, ready: impl Fn(&mut redis::Connection) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if self.client(i).is_ok_and(|mut conn| ready(&mut conn)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("Redis Cluster node {} did not become ready", self.ports[i]);
    }

    /// Waits until every node reports the cluster whole.
    pub fn wait_ok(&self) {
        for i in 0..self.ports.len() {
            self.wait_for(i, |conn| {
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query::<String>(conn)
                    .is_ok_and(|cluster| {
                        cluster.contains("cluster_state:ok")
                            && cluster.contains("cluster_slots_ok:16384")
                    })
            });
        }
    }

    /// The URL of the cluster for `REDIS_URL`: `redis+cluster://` and every node.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("{}{}", crate::CLUSTER_SCHEME, nodes.join(","))
    }

    /// A store on the cluster under a fresh prefix `test:{uuid}:`.
    ///
    /// # Panics
    ///
    /// When the cluster does not answer.
    pub async fn store(&self, options: RedisOptions) -> RedisStore {
        let store = RedisStore::connect(
            &self.url(),
            RedisOptions {
                prefix: format!("test:{}:", Uuid::now_v7().simple()),
                ..options
            },
        )
        .unwrap_or_else(|error| panic!("bad cluster URL: {error}"));
        store
            .ping()
            .await
            .unwrap_or_else(|error| panic!("the test cluster does not answer: {error}"));
        store
    }

    /// The node that holds `key`'s slot.
    ///
    /// # Panics
    ///
    /// When the cluster does not answer.
    pub fn node_of(&self, key: &str) -> usize {
        // Only the node that serves the slot answers; the others redirect (MOVED).
        (0..self.ports.len())
            .find(|i| {
                self.client(*i).is_ok_and(|mut conn| {
                    redis::cmd("EXISTS")
                        .arg(key)
                        .query::<u64>(&mut conn)
                        .is_ok()
                })
            })
            .unwrap_or_else(|| panic!("no node serves {key}"))
    }

    /// A replica of master `master`.
    ///
    /// # Panics
    ///
    /// When it has none.
    pub fn replica_of(&self, master: usize) -> usize {
        let port = self.ports[master];
        (0..self.ports.len())
            .find(|i| {
                self.client(*i).is_ok_and(|mut conn| {
                    let replication = info(&mut conn, "replication");
                    replication.contains("role:slave")
                        && replication.contains(&format!("master_port:{port}\r"))
                })
            })
            .unwrap_or_else(|| panic!("master {port} has no replica"))
    }

    /// Promotes replica `i` to master of its master's slots, once every replica has
    /// acknowledged every write (`WAIT` on each master), with `CLUSTER FAILOVER
    /// TAKEOVER` (no handshake with a master that may not know its replica yet; the
    /// former master becomes its replica), and waits until it is master and the
    /// cluster whole.
    ///
    /// # Panics
    ///
    /// When the failover does not happen within 30 s.
    pub fn fail_over_to(&self, i: usize) {
        for master in 0..self.ports.len() {
            let Ok(mut conn) = self.client(master) else {
                continue;
            };
            if info(&mut conn, "replication").contains("role:master") {
                let _: redis::RedisResult<i64> =
                    redis::cmd("WAIT").arg(1).arg(5_000).query(&mut conn);
            }
        }
        let mut conn = self
            .client(i)
            .unwrap_or_else(|error| panic!("cluster node down: {error}"));
        let _: () = redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .arg("TAKEOVER")
            .query(&mut conn)
            .unwrap_or_else(|error| panic!("CLUSTER FAILOVER: {error}"));
        self.wait_for(i, |conn| info(conn, "replication").contains("role:master"));
        self.wait_ok();
        self.wait_replicas_synced();
    }

    /// Kills node `i` (`SIGKILL`) and starts it again, empty (no persistence) but with
    /// its slots (its `nodes.conf`), and waits until the cluster is whole again: a
    /// master that crashed and restarted.
    ///
    /// # Panics
    ///
    /// When the node does not come back.
    pub fn restart(&mut self, i: usize) {
        if let Some(mut node) = self.nodes[i].take() {
            let _ = node.kill();
            let _ = node.wait();
        }
        self.nodes[i] = Some(self.spawn(i));
        self.wait_ok();
    }

    /// Every key under `prefix` on every node, sorted.
    ///
    /// # Panics
    ///
    /// When a node does not answer.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for i in 0..self.ports.len() {
            let mut conn = self
                .client(i)
                .unwrap_or_else(|error| panic!("cluster node down: {error}"));
            keys.extend(
                scan_on(&mut conn, prefix).unwrap_or_else(|error| panic!("SCAN failed: {error}")),
            );
        }
        keys.sort();
        keys
    }

    /// Deletes every key under `prefix` on every node: the counters lost their data.
    ///
    /// # Panics
    ///
    /// When a node does not answer.
    pub fn wipe(&self, prefix: &str) {
        for i in 0..self.ports.len() {
            let mut conn = self
                .client(i)
                .unwrap_or_else(|error| panic!("cluster node down: {error}"));
            let keys = scan_on(&mut conn, prefix).unwrap_or_else(|error| panic!("SCAN: {error}"));
            for key in keys {
                let _: () = redis::cmd("DEL")
                    .arg(&key)
                    .query(&mut conn)
                    .unwrap_or_else(|error| panic!("DEL {key}: {error}"));
            }
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().filter_map(Option::as_mut) {
            let _ = node.kill();
            let _ = node.wait();
        }
        // The nodes' logs stay for a test that failed.
        if std::thread::panicking() {
            eprintln!("Redis Cluster logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
