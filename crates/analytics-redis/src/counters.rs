//! `CounterStore` on Redis: one flush is one `MULTI … EXEC` pipeline with one
//! `HINCRBY` per key and field, one `EXPIRE … NX` per key, and the session and agent
//! updates — on a cluster, one such transaction per slot group it touches.

use std::collections::{BTreeMap, HashMap};

use analytics_core::catalog::AgentStatus;
use analytics_core::counters::{Bucket, CounterBatch, Period};
use analytics_core::metrics::{Field, Sums};
use analytics_core::store::CounterStore;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use deadpool_redis::redis::{self, Pipeline, Value};

use crate::RedisStore;
use crate::error::{Error, Result};
use crate::keys::{Keys, hash_field, slot_group};

/// The UTC days, from today, whose groups a rebuild marks intact on a cluster: any time
/// zone's yesterday, today and tomorrow (which the rebuild recounts), and days after
/// them, which hold nothing yet.
const MARKED_DAYS: std::ops::RangeInclusive<i64> = -2..=7;
/// The UTC days, from today, whose groups must be marked for the counters to be intact
/// on a cluster: any time zone's yesterday and today.
const CHECKED_DAYS: std::ops::RangeInclusive<i64> = -2..=1;
/// The most sessions one session command names.
const SESSIONS_PER_COMMAND: usize = 1_000;

/// How long a group's intact marker lives on a cluster: past the last day it covers.
const MARKER_TTL_SECS: u64 = 14 * 24 * 3600;

/// One transaction of a flush: the key that routes it, its commands, and whether it
/// increments (running it twice would count twice).
struct Transaction {
    route: String,
    pipe: Pipeline,
    counting: bool,
}

/// The transactions of one flush, one per slot group (one in all on a server).
struct Transactions<'k> {
    keys: &'k Keys,
    groups: BTreeMap<String, Transaction>,
}

impl<'k> Transactions<'k> {
    fn new(keys: &'k Keys) -> Transactions<'k> {
        Transactions {
            keys,
            groups: BTreeMap::new(),
        }
    }

    /// The transactions, each with the key that routes it and, on a cluster, for one
    /// that increments, the key that makes it run once (`Keys::applied`) however often
    /// the client sends it (the others leave the same state when run twice).
    fn finish(self, flush: &str) -> Vec<(String, Option<String>, Pipeline)> {
        let keys = self.keys;
        self.groups
            .into_iter()
            .map(|(group, tx)| {
                let once = (keys.is_cluster() && tx.counting).then(|| keys.applied(&group, flush));
                (tx.route, once, tx.pipe)
            })
            .collect()
    }

    /// The transaction of `key`'s group; `counting` when the commands added increment.
    fn on(&mut self, key: &str, counting: bool) -> &mut Pipeline {
        let tx = self
            .groups
            .entry(slot_group(self.keys, key))
            .or_insert_with(|| Transaction {
                route: key.to_owned(),
                pipe: redis::pipe(),
                counting: false,
            });
        tx.counting |= counting;
        &mut tx.pipe
    }
}

/// Keeps each agent's latest status (by event time) and the set of online agents.
/// KEYS: presence hash, online set. ARGV: (agent, microseconds, status) triples.
const PRESENCE_SCRIPT: &str = r"
local presence, online = KEYS[1], KEYS[2]
for i = 1, #ARGV, 3 do
  local agent, at, status = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local current = redis.call('HGET', presence, agent)
  local current_at = current and tonumber(string.match(current, '^(%d+)'))
  if not current_at or tonumber(at) >= current_at then
    redis.call('HSET', presence, agent, at .. ' ' .. status)
    if status == 'offline' then
      redis.call('SREM', online, agent)
    else
      redis.call('SADD', online, agent)
    end
  end
end
return 0
";

fn millis(ts: DateTime<Utc>) -> i64 {
    ts.timestamp_millis()
}

fn as_i64(field: Field, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::Unexpected {
        key: field.name().to_owned(),
        what: format!("{value} exceeds a Redis integer"),
    })
}

impl RedisStore {
    /// The transactions of one flush (one per slot group), combined per key and field;
    /// `flush` names the flush (see [`RedisStore::apply_once`]).
    fn counter_pipeline(
        &self,
        batch: &CounterBatch,
        flush: &str,
    ) -> Result<Vec<(String, Option<String>, Pipeline)>> {
        let mut tx = Transactions::new(&self.keys);
        let mut expiries = BTreeMap::new();
        for (bucket, sums) in &batch.increments {
            let (key, ttl) = self.keys.bucket(bucket);
            let pipe = tx.on(&key, true);
            for (field, value) in sums.iter() {
                pipe.cmd("HINCRBY")
                    .arg(&key)
                    .arg(hash_field(field.name(), bucket.agent.as_deref()))
                    .arg(as_i64(field, value)?)
                    .ignore();
            }
            expiries.insert(key, ttl);
        }
        // A key gets its TTL when it is created; later flushes leave it running.
        for (key, ttl) in expiries {
            tx.on(&key, false)
                .cmd("EXPIRE")
                .arg(key)
                .arg(ttl.as_secs())
                .arg("NX")
                .ignore();
        }

        // Sessions: one command each for starts, activity and ends, of at most
        // SESSIONS_PER_COMMAND sessions (a cluster runs them in a script, whose
        // arguments Lua unpacks onto a bounded stack).
        let sessions = self.keys.active_sessions();
        let (mut started, mut touched, mut ended) = (Vec::new(), Vec::new(), Vec::new());
        for (session, mark) in &batch.sessions {
            let at = millis(mark.last_seen);
            if mark.ended {
                ended.push((None, session));
            } else if mark.started {
                started.push((Some(at), session));
            } else {
                touched.push((Some(at), session));
            }
        }
        // Activity keeps a started session alive (`XX`); it never starts one.
        for (head, members) in [
            (&["ZADD", "GT"][..], started),
            (&["ZADD", "XX", "GT"][..], touched),
            (&["ZREM"][..], ended),
        ] {
            for chunk in members.chunks(SESSIONS_PER_COMMAND) {
                let mut command = redis::cmd(head[0]);
                command.arg(&sessions).arg(&head[1..]);
                for (at, session) in chunk {
                    if let Some(at) = at {
                        command.arg(at);
                    }
                    command.arg(session);
                }
                tx.on(&sessions, false).add_command(command).ignore();
            }
        }
        if let Some(latest) = batch.sessions.values().map(|m| millis(m.last_seen)).max() {
            let horizon = TimeDelta::from_std(self.options.session_horizon)
                .unwrap_or(TimeDelta::days(1))
                .num_milliseconds();
            tx.on(&sessions, false)
                .cmd("ZREMRANGEBYSCORE")
                .arg(&sessions)
                .arg("-inf")
                .arg(format!("({}", latest - horizon))
                .ignore();
        }

        if !batch.agents.is_empty() {
            let presence = self.keys.agent_presence();
            let mut eval = redis::cmd("EVAL");
            eval.arg(PRESENCE_SCRIPT)
                .arg(2)
                .arg(&presence)
                .arg(self.keys.online_agents());
            for (agent, mark) in &batch.agents {
                eval.arg(agent)
                    .arg(mark.at.timestamp_micros())
                    .arg(mark.status.as_str());
            }
            tx.on(&presence, false).add_command(eval).ignore();
        }
        Ok(tx.finish(flush))
    }

    /// The distinct hashes that hold these buckets, sorted.
    fn hash_keys(&self, buckets: &[Bucket]) -> Vec<String> {
        let mut keys: Vec<String> = buckets.iter().map(|b| self.keys.bucket(b).0).collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// `keys` by slot group.
    fn by_group<'k>(&self, keys: &'k [String]) -> BTreeMap<String, Vec<&'k String>> {
        let mut groups = BTreeMap::<String, Vec<&String>>::new();
        for key in keys {
            groups
                .entry(slot_group(&self.keys, key))
                .or_default()
                .push(key);
        }
        groups
    }

    /// Each bucket's sums, from the hashes read by key.
    fn bucket_sums(
        &self,
        buckets: &[Bucket],
        hashes: &HashMap<String, HashMap<String, i64>>,
    ) -> Result<Vec<Sums>> {
        let empty = HashMap::new();
        buckets
            .iter()
            .map(|bucket| {
                let key = self.keys.bucket(bucket).0;
                let hash = hashes.get(&key).unwrap_or(&empty);
                sums_from_hash(&key, hash, bucket.agent.as_deref())
            })
            .collect()
    }

    /// Reads `keys` (hashes of one slot group) with the group's intact marker, in one
    /// transaction: `None` when the group is not intact.
    async fn read_group_whole(
        &self,
        conn: &mut crate::Connection,
        group: &str,
        keys: &[&String],
    ) -> Result<Option<Vec<HashMap<String, i64>>>> {
        let marker = self.keys.intact(group);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&marker);
        pipe.cmd("INFO").arg("server").arg("replication");
        for key in keys {
            pipe.cmd("HGETALL").arg(*key);
        }
        let mut values: Vec<Value> = self.transaction(conn, &marker, None, pipe).await?;
        let unexpected = |what: String| Error::Unexpected {
            key: self.keys.intact(group),
            what,
        };
        if values.len() < 2 {
            return Err(unexpected("a short answer to GET and INFO".to_owned()));
        }
        let rest = values.split_off(2);
        let info: String = redis::from_redis_value(values.remove(1))
            .map_err(|e| unexpected(format!("INFO answered {e}")))?;
        let marker: Option<String> = redis::from_redis_value(values.remove(0))
            .map_err(|e| unexpected(format!("GET answered {e}")))?;
        if !is_intact(marker.as_deref(), &info) {
            return Ok(None);
        }
        let hashes = rest
            .into_iter()
            .map(redis::from_redis_value)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| unexpected(format!("HGETALL answered {e}")))?;
        Ok(Some(hashes))
    }

    /// Applies what one flush adds, named `flush`: on a cluster each slot group's
    /// transaction first records the name in its slot (`Keys::applied`, for 10
    /// minutes) and does nothing if it is there already, because the cluster client
    /// sends a request again after a broken connection, which may have run. (One
    /// server's connection never sends a request twice.)
    ///
    /// # Errors
    ///
    /// A store error; the counters may then be partly applied (the day stays
    /// uncounted, and the repair recounts it).
    pub async fn apply_once(&self, batch: &CounterBatch, flush: &str) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let transactions = self.counter_pipeline(batch, flush)?;
        let mut conn = self.connection().await?;
        if let crate::Connection::Cluster(cluster) = &conn {
            // The groups' transactions go to their masters at once, on the one
            // multiplexed connection.
            let sent = transactions.into_iter().map(|(route, once, pipe)| {
                let mut conn = crate::Connection::Cluster(cluster.clone());
                async move {
                    self.transaction::<()>(&mut conn, &route, once.as_deref(), pipe)
                        .await
                }
            });
            futures_util::future::try_join_all(sent).await?;
            return Ok(());
        }
        for (route, once, pipe) in transactions {
            self.transaction::<()>(&mut conn, &route, once.as_deref(), pipe)
                .await?;
        }
        Ok(())
    }

    /// How many transactions [`CounterStore::apply`] sends for `batch`: one, or on a
    /// cluster one per slot group it touches.
    ///
    /// # Errors
    ///
    /// [`Error::Unexpected`] for a sum beyond a Redis integer.
    pub fn transactions_for(&self, batch: &CounterBatch) -> Result<usize> {
        Ok(self.counter_pipeline(batch, "")?.len())
    }

    /// How many commands [`CounterStore::apply`] sends for `batch` (without `MULTI` and
    /// `EXEC`): bounded by the keys and fields it touches, not by its events.
    ///
    /// # Errors
    ///
    /// [`Error::Unexpected`] for a sum beyond a Redis integer.
    pub fn commands_for(&self, batch: &CounterBatch) -> Result<usize> {
        Ok(self
            .counter_pipeline(batch, "")?
            .iter()
            .map(|(_, _, pipe)| pipe.cmd_iter().count())
            .sum())
    }
}

/// One entry of a counter hash: the metric field, the agent it belongs to (per-agent
/// hashes name it as `{field}|{agent}`), and the value.
fn parse_entry<'a>(key: &str, name: &'a str, value: i64) -> Result<(Field, Option<&'a str>, u64)> {
    let (field_name, agent) = match name.split_once('|') {
        Some((field, agent)) => (field, Some(agent)),
        None => (name, None),
    };
    let field = Field::from_name(field_name).ok_or_else(|| Error::Unexpected {
        key: key.to_owned(),
        what: format!("unknown field {name:?}"),
    })?;
    let value = u64::try_from(value).map_err(|_| Error::Unexpected {
        key: key.to_owned(),
        what: format!("negative value {value} in {name:?}"),
    })?;
    Ok((field, agent, value))
}

/// Reads a hash's fields into sums: all of them, or those of one agent.
fn sums_from_hash(key: &str, hash: &HashMap<String, i64>, agent: Option<&str>) -> Result<Sums> {
    let mut sums = Sums::new();
    for (name, value) in hash {
        let (field, owner, value) = parse_entry(key, name, *value)?;
        if owner == agent {
            sums.increment(field, value);
        }
    }
    Ok(sums)
}

/// Which data a node holds: the `run_id` of `INFO server` (it changes with every
/// start of Redis) and the `master_replid` of `INFO replication` (it changes when a
/// replica is promoted, also when a former master that copied its replica's data is
/// failed back), as `{run_id}:{master_replid}`. The scripts compute the same.
fn identity(info: &str) -> Option<String> {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
    };
    Some(format!(
        "{}:{}",
        field("run_id:")?,
        field("master_replid:")?
    ))
}

/// Whether the intact marker was set by a rebuild in this run of Redis, on the data it
/// holds: a restart that restores a snapshot (RDB or AOF) brings the marker back with
/// counters as old as the snapshot, and a failover (or a failback) to a node that may
/// have missed the last writes changes the `master_replid`; neither passes for whole
/// counters.
fn is_intact(marker: Option<&str>, info: &str) -> bool {
    marker.is_some_and(|marker| Some(marker) == identity(info).as_deref())
}

/// Reads a per-agent hash (`{field}|{agent}` fields) into sums by agent.
fn agents_from_hash(key: &str, hash: &HashMap<String, i64>) -> Result<BTreeMap<String, Sums>> {
    let mut agents = BTreeMap::<String, Sums>::new();
    for (name, value) in hash {
        let (field, agent, value) = parse_entry(key, name, *value)?;
        let agent = agent.ok_or_else(|| Error::Unexpected {
            key: key.to_owned(),
            what: format!("field {name:?} names no agent"),
        })?;
        agents
            .entry(agent.to_owned())
            .or_default()
            .increment(field, value);
    }
    Ok(agents)
}

/// Marks the counters (of a group, on a cluster) intact with the server's identity
/// (`{run_id}:{master_replid}`, see `identity`) if the
/// rebuild's token is still there (no loss since it began). KEYS: rebuilding token,
/// intact marker. ARGV: the token, the marker's TTL in seconds (0: none).
const FINISH_REBUILD_SCRIPT: &str = r"
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
local replid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
if run and replid and redis.call('GET', KEYS[1]) == ARGV[1] then
  run = run .. ':' .. replid
  if tonumber(ARGV[2]) > 0 then
    redis.call('SET', KEYS[2], run, 'EX', ARGV[2])
  else
    redis.call('SET', KEYS[2], run)
  end
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

#[async_trait]
impl CounterStore for RedisStore {
    async fn apply(&self, batch: &CounterBatch) -> analytics_core::Result<()> {
        // A flush is named only where a request can be sent twice (a cluster).
        let flush = if self.is_cluster() {
            uuid::Uuid::now_v7().simple().to_string()
        } else {
            String::new()
        };
        Ok(self.apply_once(batch, &flush).await?)
    }

    async fn read(&self, buckets: &[Bucket]) -> analytics_core::Result<Vec<Sums>> {
        // One HGETALL per distinct hash: per-agent buckets of a period share one.
        let keys = self.hash_keys(buckets);
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.connection().await?;
        let mut hashes = HashMap::new();
        for group_keys in self.by_group(&keys).into_values() {
            let mut pipe = redis::pipe();
            for key in &group_keys {
                pipe.cmd("HGETALL").arg(*key);
            }
            let read: Vec<HashMap<String, i64>> = self
                .transaction(&mut conn, group_keys[0], None, pipe)
                .await?;
            hashes.extend(group_keys.into_iter().cloned().zip(read));
        }
        Ok(self.bucket_sums(buckets, &hashes)?)
    }

    async fn replace(&self, bucket: &Bucket, sums: &Sums) -> analytics_core::Result<()> {
        let (key, ttl) = self.keys.bucket(bucket);
        let agent = bucket.agent.as_deref();
        let mut pipe = redis::pipe();
        match agent {
            None => {
                pipe.cmd("DEL").arg(&key).ignore();
            }
            Some(agent) => {
                let mut hdel = redis::cmd("HDEL");
                hdel.arg(&key);
                for field in Field::all() {
                    hdel.arg(hash_field(field.name(), Some(agent)));
                }
                pipe.add_command(hdel).ignore();
            }
        }
        if !sums.is_empty() {
            let mut hset = redis::cmd("HSET");
            hset.arg(&key);
            for (field, value) in sums.iter() {
                hset.arg(hash_field(field.name(), agent))
                    .arg(as_i64(field, value)?);
            }
            pipe.add_command(hset).ignore();
            let mut expire = redis::cmd("EXPIRE");
            expire.arg(&key).arg(ttl.as_secs());
            if agent.is_some() {
                // The hash is shared with other agents: keep its TTL if it has one.
                expire.arg("NX");
            }
            pipe.add_command(expire).ignore();
        }
        let mut conn = self.connection().await?;
        self.transaction::<()>(&mut conn, &key, None, pipe).await?;
        Ok(())
    }

    async fn active_sessions(&self, idle_cutoff: DateTime<Utc>) -> analytics_core::Result<u64> {
        let mut conn = self.connection().await?;
        let count: u64 = redis::cmd("ZCOUNT")
            .arg(self.keys.active_sessions())
            .arg(millis(idle_cutoff))
            .arg("+inf")
            .query_async(&mut conn)
            .await
            .map_err(Error::from)?;
        Ok(count)
    }

    async fn read_agents(&self, period: Period) -> analytics_core::Result<BTreeMap<String, Sums>> {
        let key = self.keys.bucket(&Bucket::agent(period, "")).0;
        let mut conn = self.connection().await?;
        let hash: HashMap<String, i64> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(Error::from)?;
        Ok(agents_from_hash(&key, &hash)?)
    }

    async fn read_whole(&self, buckets: &[Bucket]) -> analytics_core::Result<Option<Vec<Sums>>> {
        // Each group's marker and hashes in one transaction: a loss between two reads
        // cannot pass for whole counters.
        let keys = self.hash_keys(buckets);
        if keys.is_empty() {
            return Ok(self.intact().await?.then(Vec::new));
        }
        let mut conn = self.connection().await?;
        let mut hashes = HashMap::new();
        for (group, group_keys) in self.by_group(&keys) {
            match self
                .read_group_whole(&mut conn, &group, &group_keys)
                .await?
            {
                Some(read) => hashes.extend(group_keys.into_iter().cloned().zip(read)),
                None => return Ok(None),
            }
        }
        Ok(Some(self.bucket_sums(buckets, &hashes)?))
    }

    async fn read_agents_whole(
        &self,
        period: Period,
    ) -> analytics_core::Result<Option<BTreeMap<String, Sums>>> {
        let key = self.keys.bucket(&Bucket::agent(period, "")).0;
        let mut conn = self.connection().await?;
        let group = slot_group(&self.keys, &key);
        let Some(mut read) = self.read_group_whole(&mut conn, &group, &[&key]).await? else {
            return Ok(None);
        };
        let hash = read.pop().unwrap_or_default();
        Ok(Some(agents_from_hash(&key, &hash)?))
    }

    async fn intact(&self) -> analytics_core::Result<bool> {
        let mut conn = self.connection().await?;
        for group in self
            .keys
            .marker_groups(Utc::now().date_naive(), CHECKED_DAYS)
        {
            let marker = self.keys.intact(&group);
            let mut pipe = redis::pipe();
            pipe.cmd("GET")
                .arg(&marker)
                .cmd("INFO")
                .arg("server")
                .arg("replication");
            let (marker, info): (Option<String>, String) =
                self.transaction(&mut conn, &marker, None, pipe).await?;
            if !is_intact(marker.as_deref(), &info) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn begin_rebuild(&self) -> analytics_core::Result<String> {
        // The token names the UTC day the rebuild began on: it finishes with the same
        // groups if midnight passes meanwhile.
        let today = Utc::now().date_naive();
        let token = format!("{today}/{}", uuid::Uuid::now_v7());
        let mut conn = self.connection().await?;
        for group in self.keys.marker_groups(today, MARKED_DAYS) {
            redis::cmd("SET")
                .arg(self.keys.rebuilding(&group))
                .arg(&token)
                .arg("EX")
                .arg(3600)
                .query_async::<()>(&mut conn)
                .await
                .map_err(Error::from)?;
        }
        Ok(token)
    }

    async fn finish_rebuild(&self, token: &str) -> analytics_core::Result<bool> {
        let mut conn = self.connection().await?;
        let ttl = if self.keys.is_cluster() {
            MARKER_TTL_SECS
        } else {
            0
        };
        let began = token
            .split_once('/')
            .and_then(|(day, _)| day.parse::<NaiveDate>().ok())
            .unwrap_or_else(|| Utc::now().date_naive());
        let mut finished = true;
        for group in self.keys.marker_groups(began, MARKED_DAYS) {
            let done: i64 = redis::cmd("EVAL")
                .arg(FINISH_REBUILD_SCRIPT)
                .arg(2)
                .arg(self.keys.rebuilding(&group))
                .arg(self.keys.intact(&group))
                .arg(token)
                .arg(ttl)
                .query_async(&mut conn)
                .await
                .map_err(Error::from)?;
            finished &= done == 1;
        }
        Ok(finished)
    }

    async fn online_agents(&self) -> analytics_core::Result<u64> {
        let mut conn = self.connection().await?;
        let count: u64 = redis::cmd("SCARD")
            .arg(self.keys.online_agents())
            .query_async(&mut conn)
            .await
            .map_err(Error::from)?;
        Ok(count)
    }
}

/// The status an agent's presence entry records, for tests and diagnostics.
///
/// # Errors
///
/// A store error, or [`Error::Unexpected`] for an entry this store did not write.
pub async fn agent_status(store: &RedisStore, agent: &str) -> Result<Option<AgentStatus>> {
    let mut conn = store.connection().await?;
    let entry: Option<String> = redis::cmd("HGET")
        .arg(store.keys.agent_presence())
        .arg(agent)
        .query_async(&mut conn)
        .await?;
    let Some(entry) = entry else {
        return Ok(None);
    };
    let status = entry.split_once(' ').map(|(_, status)| status);
    AgentStatus::ALL
        .into_iter()
        .find(|s| Some(s.as_str()) == status)
        .map(Some)
        .ok_or_else(|| Error::Unexpected {
            key: store.keys.agent_presence(),
            what: format!("presence entry {entry:?}"),
        })
}
