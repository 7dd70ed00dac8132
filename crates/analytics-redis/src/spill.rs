//! `SpillBuffer` on Redis: a list of events, drained through leased claims so that a
//! drainer that dies between taking events and storing them loses nothing.
//!
//! A claim moves up to `max` events from the head of `{p}:event_buffer` to a list of
//! its own, `{p}:event_buffer:claim:{token}`, and records a lease deadline in
//! `{p}:event_buffer:claims`, in one script. `ack` deletes the claim once the events
//! are stored. Every claim first returns the events of expired leases to the head of
//! the buffer, in order, so they are drained again (storing an event twice is harmless:
//! the event store is idempotent).

use analytics_core::event::Event;
use analytics_core::store::{SpillBuffer, SpillClaim};
use async_trait::async_trait;
use deadpool_redis::redis;
use uuid::Uuid;

use crate::RedisStore;
use crate::error::{Error, Result};

/// The most events one claim takes (keeps the script's `unpack` well within Lua's
/// limits).
pub const MAX_CLAIM: usize = 1_000;

/// KEYS: buffer, claims. ARGV: max, token, lease (ms), claim-list prefix.
const CLAIM_SCRIPT: &str = r"
local buffer, claims = KEYS[1], KEYS[2]
local max, token, lease, prefix = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4]
-- Sent again (a cluster client resends after a broken connection): the same events.
local mine = redis.call('LRANGE', prefix .. token, 0, -1)
if #mine > 0 then
  return mine
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for _, expired in ipairs(redis.call('ZRANGEBYSCORE', claims, '-inf', now)) do
  local list = prefix .. expired
  local items = redis.call('LRANGE', list, 0, -1)
  for i = #items, 1, -1 do
    redis.call('LPUSH', buffer, items[i])
  end
  redis.call('DEL', list)
  redis.call('ZREM', claims, expired)
end
local items = redis.call('LRANGE', buffer, 0, max - 1)
if #items == 0 then
  return items
end
redis.call('LTRIM', buffer, #items, -1)
redis.call('RPUSH', prefix .. token, unpack(items))
redis.call('ZADD', claims, now + lease, token)
return items
";

/// KEYS: buffer, claims. ARGV: claim-list prefix.
const LEN_SCRIPT: &str = r"
local n = redis.call('LLEN', KEYS[1])
for _, token in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  n = n + redis.call('LLEN', ARGV[1] .. token)
end
return n
";

impl RedisStore {
    /// [`SpillBuffer::claim`] under the token `token`: the same token claimed again
    /// (a request sent again) answers the events it claimed the first time.
    pub(crate) async fn claim_as(&self, max: usize, token: &str) -> Result<Option<SpillClaim>> {
        let max = max.clamp(1, MAX_CLAIM);
        let lease_ms = u64::try_from(self.options.claim_lease.as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.connection().await?;
        let items: Vec<String> = redis::cmd("EVAL")
            .arg(CLAIM_SCRIPT)
            .arg(2)
            .arg(self.keys.event_buffer())
            .arg(self.keys.claims())
            .arg(max)
            .arg(token)
            .arg(lease_ms)
            .arg(self.keys.claim_prefix())
            .query_async(&mut conn)
            .await?;
        if items.is_empty() {
            return Ok(None);
        }
        let mut events = Vec::with_capacity(items.len());
        let mut dead = Vec::new();
        for item in items {
            match serde_json::from_str::<Event>(&item) {
                Ok(event) => events.push(event),
                Err(error) => {
                    tracing::warn!(%error, "spilled entry is not an event; moved to dead letters");
                    dead.push(item);
                }
            }
        }
        if !dead.is_empty() {
            redis::cmd("RPUSH")
                .arg(self.keys.dead_letters())
                .arg(&dead)
                .query_async::<()>(&mut conn)
                .await?;
        }
        Ok(Some(SpillClaim {
            token: token.to_owned(),
            events,
        }))
    }
}

#[async_trait]
impl SpillBuffer for RedisStore {
    async fn push(&self, events: &[Event]) -> analytics_core::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut rpush = redis::cmd("RPUSH");
        rpush.arg(self.keys.event_buffer());
        for event in events {
            let json = serde_json::to_string(event).map_err(|error| Error::Unexpected {
                key: self.keys.event_buffer(),
                what: format!("an event that does not serialize: {error}"),
            })?;
            rpush.arg(json);
        }
        let mut conn = self.connection().await?;
        rpush
            .query_async::<()>(&mut conn)
            .await
            .map_err(Error::from)?;
        Ok(())
    }

    async fn claim(&self, max: usize) -> analytics_core::Result<Option<SpillClaim>> {
        Ok(self.claim_as(max, &Uuid::now_v7().to_string()).await?)
    }

    async fn ack(&self, claim: &SpillClaim) -> analytics_core::Result<()> {
        let mut conn = self.connection().await?;
        let claims = self.keys.claims();
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(format!("{}{}", self.keys.claim_prefix(), claim.token))
            .cmd("ZREM")
            .arg(&claims)
            .arg(&claim.token);
        self.transaction::<()>(&mut conn, &claims, None, pipe)
            .await?;
        Ok(())
    }

    async fn release(&self, claim: &SpillClaim) -> analytics_core::Result<()> {
        let mut conn = self.connection().await?;
        // Its lease ends now: the next claim returns its events to the buffer's head.
        redis::cmd("ZADD")
            .arg(self.keys.claims())
            .arg("XX")
            .arg(0)
            .arg(&claim.token)
            .query_async::<()>(&mut conn)
            .await
            .map_err(Error::from)?;
        Ok(())
    }

    async fn len(&self) -> analytics_core::Result<u64> {
        let mut conn = self.connection().await?;
        let n: u64 = redis::cmd("EVAL")
            .arg(LEN_SCRIPT)
            .arg(2)
            .arg(self.keys.event_buffer())
            .arg(self.keys.claims())
            .arg(self.keys.claim_prefix())
            .query_async(&mut conn)
            .await
            .map_err(Error::from)?;
        Ok(n)
    }
}

/// How many entries wait in the dead-letter list.
///
/// # Errors
///
/// A store error.
pub async fn dead_letters(store: &RedisStore) -> Result<u64> {
    let mut conn = store.connection().await?;
    Ok(redis::cmd("LLEN")
        .arg(store.keys.dead_letters())
        .query_async(&mut conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use analytics_core::store::SpillBuffer;
    use analytics_core::testing::event;

    use crate::testing::TestRedis;

    /// A claim sent twice with one token (a cluster client resends after a broken
    /// connection) answers the same events and takes no more: acknowledging it loses
    /// nothing that was not handed out.
    #[tokio::test]
    async fn a_claim_sent_again_answers_the_same_events() {
        let redis = TestRedis::new().await;
        let store = redis.store();
        let events: Vec<_> = (0..10)
            .map(|i| {
                let session = format!("s-{i}");
                event(
                    "session.start",
                    chrono::Utc::now(),
                    serde_json::json!({"session_id": session}),
                )
            })
            .collect();
        store
            .push(&events)
            .await
            .unwrap_or_else(|e| panic!("push: {e}"));
        let first = store
            .claim_as(4, "token-1")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let again = store
            .claim_as(4, "token-1")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ids = |claim: &Option<analytics_core::store::SpillClaim>| -> Vec<uuid::Uuid> {
            claim
                .iter()
                .flat_map(|c| c.events.iter().map(|e| e.id()))
                .collect()
        };
        assert_eq!(ids(&first).len(), 4);
        assert_eq!(ids(&first), ids(&again));
        assert_eq!(store.len().await.unwrap_or_default(), 10);
        if let Some(claim) = &again {
            store
                .ack(claim)
                .await
                .unwrap_or_else(|e| panic!("ack: {e}"));
        }
        assert_eq!(store.len().await.unwrap_or_default(), 6);
    }
}
