//! Counters: exact sums, commands bounded by keys and fields, TTLs, sessions and agents,
//! rebuild, and connection loss.

use std::collections::BTreeSet;
use std::time::Duration;

use analytics_core::catalog::{AgentStatus, Kind};
use analytics_core::counters::{Bucket, CounterBatch, Period};
use analytics_core::event::Event;
use analytics_core::metrics::{Field, Sums};
use analytics_core::store::CounterStore;
use analytics_core::testing::{at, event};
use analytics_core::time::{Calendar, DayHour, YearMonth};
use analytics_redis::testing::TestRedis;
use analytics_redis::testing::redis::{self, Commands};
use analytics_redis::{RedisOptions, RedisStore, agent_status};
use chrono::{NaiveDate, TimeDelta};
use serde_json::json;

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// 1,000 events of 20 kinds (the 17 of the catalog and 3 custom ones) over two hours of
/// 2025-12-01 in Shanghai, three agents, 50 sessions.
fn thousand_events() -> Vec<Event> {
    let start = at("2025-12-01T01:00:00Z"); // 09:00 in Shanghai
    (0..1000)
        .map(|i: i64| {
            let t = start + TimeDelta::seconds(i * 7);
            let s = format!("s-{}", i % 50);
            let a = format!("a-{}", i % 3);
            let v = (i % 97) as f64 + 0.25;
            let (name, props) = match i % 20 {
                0 => ("session.start", json!({"session_id": s})),
                1 => ("session.message", json!({"session_id": s, "response_time_ms": v * 10.0})),
                2 => ("session.escalate", json!({"session_id": s})),
                3 => ("session.end", json!({"session_id": s})),
                4 => ("query.order", json!({"session_id": s})),
                5 => ("query.tracking", json!({"session_id": s})),
                6 => ("agent.login", json!({"agent_id": a})),
                7 => ("agent.logout", json!({"agent_id": a})),
                8 => ("agent.status_change", json!({"agent_id": a, "to": "busy"})),
                9 => ("agent.session_takeover", json!({"agent_id": a, "session_id": s, "wait_duration_seconds": v})),
                10 => ("agent.session_message", json!({"agent_id": a, "session_id": s})),
                11 => ("agent.session_release", json!({"agent_id": a, "session_id": s, "handle_duration_seconds": v * 4.0})),
                12 => ("agent.session_transfer", json!({"agent_id": a, "session_id": s, "to_agent_id": "a-9"})),
                13 => ("ticket.created", json!({"ticket_id": format!("t-{i}")})),
                14 => ("ticket.assigned", json!({"ticket_id": format!("t-{i}"), "agent_id": a})),
                15 => ("ticket.status_changed", json!({"ticket_id": format!("t-{i}"), "to": "pending"})),
                16 => ("ticket.closed", json!({"ticket_id": format!("t-{i}"), "resolution_duration_hours": v / 10.0, "sla_met": i % 3 == 0})),
                17 => ("custom.a", json!({})),
                18 => ("custom.b", json!({})),
                _ => ("custom.c", json!({})),
            };
            event(name, t, props)
        })
        .collect()
}

#[tokio::test]
async fn counts_and_sums_of_a_batch_are_exact() {
    let redis = TestRedis::new().await;
    let store = redis.store();
    let calendar = Calendar::default();
    let events = thousand_events();
    // Applied in two flushes: increments add up.
    let (first, second) = events.split_at(400);
    store
        .apply(&CounterBatch::from_events(&calendar, first))
        .await
        .unwrap();
    store
        .apply(&CounterBatch::from_events(&calendar, second))
        .await
        .unwrap();

    let day = date("2025-12-01");
    let hour9 = Period::Hour(DayHour { date: day, hour: 9 });
    let hour10 = Period::Hour(DayHour {
        date: day,
        hour: 10,
    });
    let month = Period::Month(YearMonth::of(day));
    let buckets = [
        Bucket::all(Period::Day(day)),
        Bucket::all(hour9),
        Bucket::all(hour10),
        Bucket::all(month),
        Bucket::agent(Period::Day(day), "a-1"),
        Bucket::agent(month, "a-2"),
        Bucket::agent(Period::Day(day), "nobody"),
    ];
    let read = store.read(&buckets).await.unwrap();
    let all = Sums::from_events(&events);
    assert_eq!(read[0], all);
    assert_eq!(read[3], all);
    let in_hour = |h: u8| {
        Sums::from_events(
            events
                .iter()
                .filter(|e| calendar.hour(e.timestamp()).hour == h),
        )
    };
    assert_eq!(read[1], in_hour(9));
    assert_eq!(read[2], in_hour(10));
    assert_eq!(read[1] + read[2], all);
    let of_agent = |a: &str| Sums::from_events(events.iter().filter(|e| e.agent_id() == Some(a)));
    assert_eq!(read[4], of_agent("a-1"));
    assert_eq!(read[5], of_agent("a-2"));
    assert!(read[6].is_empty());
    assert_eq!(all.get(Field::Custom), 150);
    assert_eq!(all.count(Kind::SessionStart), 50);
}

#[tokio::test]
async fn the_last_24_hours_are_read_in_one_call() {
    let redis = TestRedis::new().await;
    let calendar = Calendar::default();
    let events = thousand_events();
    redis
        .store()
        .apply(&CounterBatch::from_events(&calendar, &events))
        .await
        .unwrap();
    // 14:00 in Shanghai: the last 24 hours cover all of the morning's events.
    let hours = calendar.recent_hours(at("2025-12-01T06:00:00Z"), 24);
    let buckets: Vec<Bucket> = hours
        .iter()
        .map(|h| Bucket::all(Period::Hour(*h)))
        .collect();
    let read = redis.store().read(&buckets).await.unwrap();
    assert_eq!(read.len(), 24);
    assert_eq!(read.iter().sum::<Sums>(), Sums::from_events(&events));
    assert_eq!(
        read.iter().filter(|s| !s.is_empty()).count(),
        2,
        "09:00 and 10:00"
    );
}

#[tokio::test]
async fn commands_per_batch_are_bounded_by_keys_and_fields_not_events() {
    let redis = TestRedis::new().await;
    let calendar = Calendar::default();
    let events = thousand_events();
    let batch = CounterBatch::from_events(&calendar, &events);
    let commands = redis.store().commands_for(&batch).unwrap();
    let fields: usize = batch.increments.values().map(|s| s.iter().count()).sum();
    let keys: BTreeSet<String> = batch
        .increments
        .keys()
        .map(|b| redis.store().keys().bucket(b).0)
        .collect();
    // One HINCRBY per key and field, one EXPIRE per key, at most three session
    // commands, one prune, one presence script.
    assert!(
        commands <= fields + keys.len() + 5,
        "{commands} commands for {fields} fields in {} keys",
        keys.len()
    );
    assert!(commands < 200, "{commands} commands for 1,000 events");
    // Twice the events in the same buckets: the same commands.
    let doubled: Vec<Event> = events.iter().cloned().chain(thousand_events()).collect();
    assert_eq!(
        redis
            .store()
            .commands_for(&CounterBatch::from_events(&calendar, &doubled))
            .unwrap(),
        commands
    );
}

#[tokio::test]
async fn keys_get_the_ttls_of_the_spec_once() {
    let redis = TestRedis::new().await;
    let calendar = Calendar::default();
    let events = thousand_events();
    redis
        .store()
        .apply(&CounterBatch::from_events(&calendar, &events))
        .await
        .unwrap();
    let p = redis.prefix();
    let mut conn = redis.connection();
    let ttl =
        |conn: &mut redis::Connection, key: &str| -> i64 { conn.ttl(format!("{p}{key}")).unwrap() };
    let day = 86_400;
    for (key, expected) in [
        ("daily:2025-12-01", 7 * day),
        ("hourly:2025-12-01:09", 2 * day),
        ("monthly:2025-12", 400 * day),
        ("agent:daily:2025-12-01", 7 * day),
        ("agent:monthly:2025-12", 400 * day),
    ] {
        let t = ttl(&mut conn, key);
        assert!((expected - 5..=expected).contains(&t), "{key}: ttl {t}");
    }
    for key in ["active_sessions", "agent_presence", "online_agents"] {
        assert_eq!(ttl(&mut conn, key), -1, "{key} has no TTL");
    }
    // A later flush leaves a running TTL alone.
    let _: () = conn.expire(format!("{p}daily:2025-12-01"), 1000).unwrap();
    redis
        .store()
        .apply(&CounterBatch::from_events(&calendar, &events[..10]))
        .await
        .unwrap();
    assert!(ttl(&mut conn, "daily:2025-12-01") <= 1000);
    // Every key is under the prefix.
    assert!(redis.keys().iter().all(|k| k.starts_with(p)));
}

#[tokio::test]
async fn active_sessions_and_online_agents_follow_the_events() {
    let redis = TestRedis::new().await;
    let store = redis.store();
    let calendar = Calendar::default();
    let t = at("2025-12-01T02:00:00Z");
    let apply = |events: Vec<Event>| async move {
        store
            .apply(&CounterBatch::from_events(&calendar, &events))
            .await
            .unwrap();
    };
    apply(vec![
        event("session.start", t, json!({"session_id": "s1"})),
        event("session.start", t, json!({"session_id": "s2"})),
        event("session.start", t, json!({"session_id": "s3"})),
        event("agent.login", t, json!({"agent_id": "a1"})),
        event("agent.login", t, json!({"agent_id": "a2"})),
    ])
    .await;
    assert_eq!(store.active_sessions(t).await.unwrap(), 3);
    assert_eq!(store.online_agents().await.unwrap(), 2);

    let later = t + TimeDelta::minutes(30);
    apply(vec![
        event("session.end", later, json!({"session_id": "s1"})),
        event(
            "session.message",
            later,
            json!({"session_id": "s2", "response_time_ms": 5}),
        ),
        // Activity for a session never started does not make it active.
        event(
            "session.message",
            later,
            json!({"session_id": "ghost", "response_time_ms": 5}),
        ),
        event(
            "agent.status_change",
            later,
            json!({"agent_id": "a1", "to": "away"}),
        ),
        event("agent.logout", later, json!({"agent_id": "a2"})),
    ])
    .await;
    assert_eq!(store.active_sessions(t).await.unwrap(), 2, "s2 and s3");
    assert_eq!(
        store.active_sessions(later).await.unwrap(),
        1,
        "s3 idle since t"
    );
    assert_eq!(
        store.online_agents().await.unwrap(),
        1,
        "a1 is away, still online"
    );
    assert_eq!(
        agent_status(store, "a1").await.unwrap(),
        Some(AgentStatus::Away)
    );
    assert_eq!(
        agent_status(store, "a2").await.unwrap(),
        Some(AgentStatus::Offline)
    );

    // A status older than the one recorded, arriving late, changes nothing.
    apply(vec![event(
        "agent.login",
        t + TimeDelta::minutes(1),
        json!({"agent_id": "a2"}),
    )])
    .await;
    assert_eq!(
        agent_status(store, "a2").await.unwrap(),
        Some(AgentStatus::Offline)
    );
    assert_eq!(store.online_agents().await.unwrap(), 1);
}

#[tokio::test]
async fn sessions_idle_past_the_horizon_are_pruned() {
    let redis = TestRedis::with_options(RedisOptions {
        session_horizon: Duration::from_secs(3600),
        ..RedisOptions::default()
    })
    .await;
    let store = redis.store();
    let calendar = Calendar::default();
    let t = at("2025-12-01T02:00:00Z");
    store
        .apply(&CounterBatch::from_events(
            &calendar,
            &[event("session.start", t, json!({"session_id": "old"}))],
        ))
        .await
        .unwrap();
    let later = t + TimeDelta::hours(2);
    store
        .apply(&CounterBatch::from_events(
            &calendar,
            &[event("session.start", later, json!({"session_id": "new"}))],
        ))
        .await
        .unwrap();
    let mut conn = redis.connection();
    let members: Vec<String> = conn
        .zrange(format!("{}active_sessions", redis.prefix()), 0, -1)
        .unwrap();
    assert_eq!(members, ["new"]);
}

#[tokio::test]
async fn rebuild_replaces_a_bucket_exactly() {
    let redis = TestRedis::new().await;
    let store = redis.store();
    let calendar = Calendar::default();
    let events = thousand_events();
    store
        .apply(&CounterBatch::from_events(&calendar, &events))
        .await
        .unwrap();
    let day = Bucket::all(Period::Day(date("2025-12-01")));
    let agent = Bucket::agent(Period::Day(date("2025-12-01")), "a-1");
    let other_agent = Bucket::agent(Period::Day(date("2025-12-01")), "a-2");
    let before_other = store
        .read(std::slice::from_ref(&other_agent))
        .await
        .unwrap()[0];

    // Statistics computed elsewhere (PostgreSQL) say something else: they win.
    let truth = Sums::from_events(&events[..100]);
    store.replace(&day, &truth).await.unwrap();
    let agent_truth =
        Sums::from_named([("agent.login", 2), ("wait_duration_seconds_sum", 5_000_000)]).unwrap();
    store.replace(&agent, &agent_truth).await.unwrap();
    let read = store
        .read(&[day.clone(), agent.clone(), other_agent])
        .await
        .unwrap();
    assert_eq!(read[0], truth);
    assert_eq!(read[1], agent_truth);
    assert_eq!(
        read[2], before_other,
        "other agents in the shared hash are untouched"
    );

    // A replaced key gets its TTL back even after Redis lost it.
    let mut conn = redis.connection();
    let _: () = conn
        .del(format!("{}daily:2025-12-01", redis.prefix()))
        .unwrap();
    store.replace(&day, &truth).await.unwrap();
    let ttl: i64 = conn
        .ttl(format!("{}daily:2025-12-01", redis.prefix()))
        .unwrap();
    assert!(ttl > 6 * 86_400, "{ttl}");
    // Replacing with nothing empties it.
    store.replace(&day, &Sums::new()).await.unwrap();
    assert!(store.read(&[day]).await.unwrap()[0].is_empty());
}

/// Counters are read as whole only while intact, checked in the same transaction as
/// the read; a loss during a rebuild keeps them not intact.
#[tokio::test]
async fn counters_are_whole_only_while_intact_and_a_loss_during_a_rebuild_shows() {
    let redis = TestRedis::new().await;
    let store = redis.store();
    let events = thousand_events();
    store
        .apply(&CounterBatch::from_events(&Calendar::default(), &events))
        .await
        .unwrap();
    let day = Period::Day(date("2025-12-01"));
    assert_eq!(
        store.read_whole(&[Bucket::all(day)]).await.unwrap(),
        None,
        "never rebuilt: not whole"
    );
    assert_eq!(store.read_agents_whole(day).await.unwrap(), None);
    let token = store.begin_rebuild().await.unwrap();
    assert!(store.finish_rebuild(&token).await.unwrap());
    let read = store.read(&[Bucket::all(day)]).await.unwrap();
    assert_eq!(
        store.read_whole(&[Bucket::all(day)]).await.unwrap(),
        Some(read)
    );
    assert_eq!(
        store.read_agents_whole(day).await.unwrap(),
        Some(store.read_agents(day).await.unwrap())
    );

    let mut conn = redis.connection();
    // Redis restarted from a snapshot: the marker comes back with old counters, but it
    // names another run of Redis, so they are not whole.
    let intact_key = format!("{}counters_intact", redis.prefix());
    let run: String = conn.get(&intact_key).unwrap();
    let _: () = conn.set(&intact_key, "an-earlier-run").unwrap();
    assert!(!store.intact().await.unwrap());
    assert_eq!(store.read_whole(&[Bucket::all(day)]).await.unwrap(), None);
    assert_eq!(store.read_agents_whole(day).await.unwrap(), None);
    let _: () = conn.set(&intact_key, run).unwrap();
    assert!(store.intact().await.unwrap());

    // Redis loses its data: not whole at once.
    for key in redis.keys() {
        let _: () = conn.del(key).unwrap();
    }
    assert!(!store.intact().await.unwrap());
    assert_eq!(store.read_whole(&[Bucket::all(day)]).await.unwrap(), None);
    // ... and again during a rebuild: the rebuild does not mark them intact.
    let token = store.begin_rebuild().await.unwrap();
    for key in redis.keys() {
        let _: () = conn.del(key).unwrap();
    }
    assert!(!store.finish_rebuild(&token).await.unwrap());
    assert!(!store.intact().await.unwrap());
}

#[tokio::test]
async fn a_broken_connection_is_replaced() {
    let redis = TestRedis::with_options(RedisOptions {
        pool_size: 1,
        ..RedisOptions::default()
    })
    .await;
    let store = redis.store();
    let calendar = Calendar::default();
    let batch = CounterBatch::from_events(&calendar, &thousand_events()[..20]);
    store.apply(&batch).await.unwrap();
    // Kill the pool's only connection from outside.
    let mut admin = redis.connection();
    let name = format!("victim-{}", redis.prefix());
    {
        let mut conn = store_connection_name(store, &name).await;
        let _: () = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    }
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    let id = list
        .lines()
        .find(|line| line.contains(&format!("name={name}")))
        .and_then(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .expect("the pool's connection is listed")
        .to_owned();
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&id)
        .query(&mut admin)
        .unwrap();

    // The next operations get a working connection, possibly after one failure.
    let first = store.apply(&batch).await;
    if first.is_err() {
        store.apply(&batch).await.unwrap();
    }
    let day = store
        .read(&[Bucket::all(Period::Day(date("2025-12-01")))])
        .await
        .unwrap();
    assert_eq!(day[0].total_events(), 40);
}

/// Names the pool's connection so that it can be found in `CLIENT LIST`.
async fn store_connection_name(store: &RedisStore, name: &str) -> impl redis::aio::ConnectionLike {
    let mut conn = store_conn(store).await;
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(name)
        .query_async(&mut conn)
        .await
        .unwrap();
    conn
}

async fn store_conn(store: &RedisStore) -> deadpool_redis::Connection {
    store.server_pool().unwrap().get().await.unwrap()
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_error() {
    let store = RedisStore::connect("redis://127.0.0.1:1", RedisOptions::default()).unwrap();
    let error = store.online_agents().await.unwrap_err();
    assert!(
        matches!(&error, analytics_core::Error::Store(e) if e.kind == analytics_core::error::StoreErrorKind::Unavailable),
        "{error:?}"
    );
    assert!(store.ping().await.unwrap_err().is_transient());
}

#[tokio::test]
async fn every_agent_of_a_period_is_read_at_once() {
    let redis = TestRedis::new().await;
    let calendar = Calendar::default();
    let events = thousand_events();
    redis
        .store()
        .apply(&CounterBatch::from_events(&calendar, &events))
        .await
        .unwrap();
    let agents = redis
        .store()
        .read_agents(Period::Day(date("2025-12-01")))
        .await
        .unwrap();
    assert_eq!(agents.keys().collect::<Vec<_>>(), ["a-0", "a-1", "a-2"]);
    for (agent, sums) in &agents {
        assert_eq!(
            *sums,
            Sums::from_events(events.iter().filter(|e| e.agent_id() == Some(agent)))
        );
    }
    assert!(
        redis
            .store()
            .read_agents(Period::Day(date("2025-12-02")))
            .await
            .unwrap()
            .is_empty()
    );
}
