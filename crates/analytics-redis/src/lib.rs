//! Redis implementation of the counter and spill-buffer traits of `analytics-core`:
//! [`RedisStore`] is a `CounterStore` (real-time counters, SPEC §7) and a
//! `SpillBuffer` (events kept aside while PostgreSQL is down).
//!
//! Counters are derived data: PostgreSQL is the source of truth, and
//! `CounterStore::replace` rebuilds a bucket from its statistics. This crate depends on
//! `analytics-core` only, never on another adapter.
//!
//! Keys, all under the configured prefix (`analytics` by default):
//!
//! | key | type | holds | TTL |
//! |---|---|---|---|
//! | `{p}:daily:{date}` | hash | field → value for the day | 7 days |
//! | `{p}:hourly:{date}:{hour}` | hash | the same for the hour | 2 days |
//! | `{p}:monthly:{month}` | hash | the same for the month | 400 days |
//! | `{p}:agent:daily:{date}` | hash | `{field}\|{agent}` → value | 7 days |
//! | `{p}:agent:monthly:{month}` | hash | `{field}\|{agent}` → value | 400 days |
//! | `{p}:active_sessions` | sorted set | session → last activity (ms) | none |
//! | `{p}:agent_presence` | hash | agent → `{µs} {status}` of its latest status | none |
//! | `{p}:online_agents` | set | agents whose latest status is not offline | none |
//! | `{p}:counters_intact` | string | present while the counters are intact (set by a rebuild that saw no loss) | none |
//! | `{p}:counters_rebuilding` | string | the token of the counter rebuild under way | 1 hour |
//! | `{p}:event_buffer` | list | spilled events (JSON), oldest first | none |
//! | `{p}:event_buffer:claims` | sorted set | claim token → lease deadline (ms) | none |
//! | `{p}:event_buffer:claim:{token}` | list | the events of one claim | none |
//! | `{p}:event_buffer:dead` | list | spilled entries that are not events | none |
//!
//! Field names are `analytics_core::metrics::Field::name`; values are integers (counts,
//! and sums in millionths), so every increment is an exact `HINCRBY`.
//!
//! ## Redis Cluster
//!
//! A URL `redis+cluster://host1:port1,host2:port2,…` names a cluster (any of its nodes;
//! the others are discovered). There every key gets a hash tag, so that what must
//! change or be read together lives in one slot, and every transaction, script and
//! pipeline stays within one slot:
//!
//! | group | keys (under the prefix) |
//! |---|---|
//! | a day `D` | `daily:{D}`, `hourly:{D}:{hh}`, `agent:daily:{D}`, `counters_intact:{D}`, `counters_rebuilding:{D}` |
//! | a month `M` | `monthly:{M}`, `agent:monthly:{M}`, `counters_intact:{M}`, `counters_rebuilding:{M}` |
//! | agents | `agent_presence:{agents}`, `online_agents:{agents}` |
//! | the spill buffer | `event_buffer:{spill}`, `…:claims`, `…:claim:{token}`, `…:dead` |
//! | sessions | `active_sessions:{sessions}` |
//! | (each of the above) | `applied:{tag}:{flush}`: a flush applied to the group, 10 minutes |
//!
//! A flush is then one transaction per group it touches instead of one in all, sent to
//! their masters at once; a transaction of several commands runs as one script there
//! (`TRANSACTION_SCRIPT`), because a script is redirected like any command when the
//! client's map of slots is stale (after a master restarted), where a `MULTI` only
//! aborts. The cluster client sends a request again after a broken connection,
//! although it may have run: each of a flush's scripts first sets the flush's
//! `applied` key in its slot and does nothing if it was set (an increment counts once),
//! a spill-buffer claim sent again answers the events it claimed the first time, and
//! the other requests leave the same state when run twice. A flush that fails part-way leaves its day uncounted, and the repair
//! recounts it, as on one server. A command waits at most 5 s in all on a cluster
//! (retries and redirections included), then fails as a transient error. A master that restarts empty loses only its slots, so the intact
//! marker is kept per day and month group, next to the hashes it vouches for, and
//! holds the `run_id` and `master_replid` of the node that holds it: a read of a day is
//! whole only if the day's own marker is there and was set in this run of its node on
//! this history of its data (a failover to a replica, or a failback, changes the
//! `master_replid`, so counters that may have missed the last writes are read from
//! detail and rebuilt). A rebuild marks the groups of the UTC days from two
//! before today to seven after (any time zone's yesterday, today and tomorrow, which
//! the rebuild recounts, and later days, which hold nothing yet), and the counters
//! are intact while the groups from two days before to one after are marked: a new
//! rebuild runs about once a week, or after a loss.
#![deny(missing_docs)]

mod counters;
mod error;
mod keys;
mod spill;
#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

use std::sync::Arc;

use deadpool_redis::Runtime;
use deadpool_redis::redis;
use deadpool_redis::redis::aio::ConnectionLike;
use deadpool_redis::redis::cluster::{ClusterClient, ClusterClientBuilder};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{Cmd, Pipeline, RedisFuture, Value};

pub use counters::agent_status;
pub use error::{Error, Result};
pub use keys::{DAILY_TTL, HOURLY_TTL, Keys, MONTHLY_TTL, slot_group};
pub use spill::{MAX_CLAIM, dead_letters};

/// How a [`RedisStore`] connects and behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// The key prefix (`ANALYTICS_REDIS_PREFIX`).
    pub prefix: String,
    /// The most connections open at once.
    pub pool_size: usize,
    /// How long a spill-buffer claim stays with its drainer before another process may
    /// take its events back (a drainer that died loses nothing).
    pub claim_lease: Duration,
    /// Sessions idle for longer than this are removed from `{p}:active_sessions` when
    /// counters are applied (counting active sessions takes its own, shorter cutoff).
    pub session_horizon: Duration,
}

impl Default for RedisOptions {
    fn default() -> RedisOptions {
        RedisOptions {
            prefix: "analytics".to_owned(),
            pool_size: 8,
            claim_lease: Duration::from_secs(30),
            session_horizon: Duration::from_secs(24 * 3600),
        }
    }
}

/// The scheme of a Redis Cluster URL: `redis+cluster://host:port,host:port,…`.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// The node URLs of a cluster URL (`redis+cluster://[user:password@]h1:p1,h2:p2,…`),
/// each as `redis://…` with the credentials of the first; `None` for a URL that does
/// not name a cluster.
pub fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let rest = url.trim().strip_prefix(CLUSTER_SCHEME)?;
    let (credentials, hosts) = match rest.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), rest),
    };
    Some(
        hosts
            .trim_end_matches('/')
            .split(',')
            .map(str::trim)
            .filter(|host| !host.is_empty())
            .map(|host| format!("redis://{credentials}{host}"))
            .collect(),
    )
}

/// A connection pool to one server, or one multiplexed connection to a cluster (it
/// keeps a connection to each master, follows the slots as they move, reconnects).
#[derive(Clone)]
enum Pool {
    Server(deadpool_redis::Pool),
    Cluster(Arc<ClusterPool>),
}

/// The cluster's client and its connection, opened on first use (and again after a
/// failed attempt), so that a store can be made while the cluster is down.
struct ClusterPool {
    client: ClusterClient,
    connection: tokio::sync::OnceCell<ClusterConnection>,
}

/// How long a command on a cluster may take in all, redirections and retries while a
/// master fails over included: then it fails as a transient error (on one server a
/// down Redis refuses the connection at once).
const CLUSTER_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs commands given as (argument count, name, arguments…) in ARGV after ARGV[1],
/// atomically, and returns their answers. KEYS[1] routes it to the slot of the keys the
/// commands touch. ARGV[1], unless empty, is a key of that slot set for 10 minutes
/// before the commands run; if it is set already they ran already, and nothing is done.
const TRANSACTION_SCRIPT: &str = r"
if ARGV[1] ~= '' and not redis.call('SET', ARGV[1], '1', 'NX', 'EX', 600) then
  return {}
end
local answers, i = {}, 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  answers[#answers + 1] = redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return answers
";

/// A connection to either: commands, pipelines and scripts are sent to the one server,
/// or routed by the slot of their first key in a cluster.
pub(crate) enum Connection {
    Server(deadpool_redis::Connection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Server(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Server(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Server(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Real-time counters and the spill buffer in Redis.
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool,
    keys: Keys,
    options: RedisOptions,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("keys", &self.keys)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on the Redis server at `url`, or on the cluster a `redis+cluster://` URL
    /// names. Connections are opened on first use, so this succeeds while Redis is
    /// down; operations then fail with a transient error.
    ///
    /// # Errors
    ///
    /// [`Error::Pool`] when `url` is not a Redis URL, or names a cluster with no node
    /// or under a prefix that holds a `{` (it would take the place of the hash tags).
    pub fn connect(url: &str, options: RedisOptions) -> Result<RedisStore> {
        let pool_config = deadpool_redis::PoolConfig {
            max_size: options.pool_size,
            timeouts: deadpool_redis::Timeouts {
                wait: Some(Duration::from_secs(5)),
                create: Some(Duration::from_secs(5)),
                recycle: Some(Duration::from_secs(5)),
            },
            ..deadpool_redis::PoolConfig::default()
        };
        let (pool, keys) = match cluster_nodes(url) {
            None => {
                let mut config = deadpool_redis::Config::from_url(url);
                config.pool = Some(pool_config);
                let pool = config
                    .create_pool(Some(Runtime::Tokio1))
                    .map_err(|error| Error::Pool(error.to_string()))?;
                (Pool::Server(pool), Keys::new(&options.prefix))
            }
            Some(nodes) => {
                if nodes.is_empty() {
                    return Err(Error::Pool(format!(
                        "{CLUSTER_SCHEME} names no node (write {CLUSTER_SCHEME}host:port,host:port)"
                    )));
                }
                if options.prefix.contains('{') || options.prefix.contains('}') {
                    return Err(Error::Pool(format!(
                        "a prefix for Redis Cluster must not hold braces (got {:?})",
                        options.prefix
                    )));
                }
                let client = ClusterClientBuilder::new(nodes)
                    .connection_timeout(Duration::from_secs(2))
                    .response_timeout(CLUSTER_RESPONSE_TIMEOUT)
                    .build()
                    .map_err(|error| Error::Pool(error.to_string()))?;
                let pool = ClusterPool {
                    client,
                    connection: tokio::sync::OnceCell::new(),
                };
                (
                    Pool::Cluster(Arc::new(pool)),
                    Keys::cluster(&options.prefix),
                )
            }
        };
        Ok(RedisStore {
            pool,
            keys,
            options,
        })
    }

    /// The connection pool to the one server; `None` on a cluster.
    pub fn server_pool(&self) -> Option<&deadpool_redis::Pool> {
        match &self.pool {
            Pool::Server(pool) => Some(pool),
            Pool::Cluster(_) => None,
        }
    }

    /// Whether this store is on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.pool, Pool::Cluster(_))
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The options.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    async fn connection(&self) -> Result<Connection> {
        Ok(match &self.pool {
            Pool::Server(pool) => Connection::Server(pool.get().await?),
            Pool::Cluster(pool) => {
                // Bounded: callers waiting while another one's attempt fails each try
                // in turn.
                let connect = pool
                    .connection
                    .get_or_try_init(|| pool.client.get_async_connection());
                match tokio::time::timeout(CLUSTER_RESPONSE_TIMEOUT, connect).await {
                    Ok(conn) => Connection::Cluster(conn?.clone()),
                    Err(_) => {
                        return Err(Error::Pool(
                            "no connection to the Redis Cluster within 5 s".to_owned(),
                        ));
                    }
                }
            }
        })
    }

    /// Runs `commands` (on keys of one slot group, `route` among them) as one
    /// transaction and returns their answers in order: `MULTI … EXEC` on a server; on a
    /// cluster one script that runs them (once, if `once` names a key of the group:
    /// see `TRANSACTION_SCRIPT`), because a script is redirected like any
    /// command when its slot has moved (or the client's map of slots is stale after a
    /// master restarted), where a `MULTI` that meets a moved slot only aborts. One
    /// command is sent as it is (it is atomic by itself; a script cannot run `EVAL`).
    pub(crate) async fn transaction<T: redis::FromRedisValue>(
        &self,
        conn: &mut Connection,
        route: &str,
        once: Option<&str>,
        mut commands: Pipeline,
    ) -> Result<T> {
        let scripted = matches!(conn, Connection::Cluster(_))
            && (once.is_some() || commands.cmd_iter().count() > 1);
        if !scripted {
            if matches!(conn, Connection::Server(_)) {
                commands.atomic();
            }
            return Ok(commands.query_async(conn).await?);
        }
        let mut eval = redis::cmd("EVAL");
        eval.arg(TRANSACTION_SCRIPT)
            .arg(1)
            .arg(route)
            .arg(once.unwrap_or(""));
        for command in commands.cmd_iter() {
            let args: Vec<&[u8]> = command
                .args_iter()
                .filter_map(|arg| match arg {
                    redis::Arg::Simple(bytes) => Some(bytes),
                    _ => None,
                })
                .collect();
            eval.arg(args.len()).arg(args);
        }
        Ok(eval.query_async(conn).await?)
    }

    /// Checks that Redis answers.
    ///
    /// # Errors
    ///
    /// A transient [`Error`] when it does not.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.connection().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::cluster_nodes;

    #[test]
    fn a_cluster_url_names_its_nodes_with_the_credentials_of_the_first() {
        assert_eq!(cluster_nodes("redis://127.0.0.1:6379"), None);
        assert_eq!(
            cluster_nodes("redis+cluster://h1:7000, h2:7001,h3:7002/"),
            Some(vec![
                "redis://h1:7000".to_owned(),
                "redis://h2:7001".to_owned(),
                "redis://h3:7002".to_owned()
            ])
        );
        assert_eq!(
            cluster_nodes("redis+cluster://user:p%40ss@h1:7000,h2:7001"),
            Some(vec![
                "redis://user:p%40ss@h1:7000".to_owned(),
                "redis://user:p%40ss@h2:7001".to_owned()
            ])
        );
        assert_eq!(cluster_nodes("redis+cluster://"), Some(vec![]));
    }
}
