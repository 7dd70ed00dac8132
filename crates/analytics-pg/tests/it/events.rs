//! Inserting events: idempotency on `event_id`, partitions by business day, concurrency.

use std::collections::HashSet;
use std::sync::Arc;

use analytics_core::store::EventStore;
use analytics_core::testing::{at, event, event_with_id};
use analytics_pg::testing::TestDatabase;
use chrono::{NaiveDate, TimeDelta};
use serde_json::json;
use uuid::Uuid;

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

async fn count(db: &TestDatabase, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(db.store().pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_duplicate_id_is_stored_once_in_the_same_or_a_later_batch() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let t = at("2025-12-10T02:00:00Z");
    let a = event("session.start", t, json!({"session_id": "s-a"}));
    let b = event("session.start", t, json!({"session_id": "s-b"}));

    assert_eq!(
        store
            .insert(&[a.clone(), b.clone(), a.clone()])
            .await
            .unwrap(),
        [true, true, false]
    );
    assert_eq!(
        store.insert(&[b.clone(), a.clone()]).await.unwrap(),
        [false, false]
    );
    // The same id with another timestamp (a client retry stamped anew) is still a duplicate.
    let retried = event_with_id(
        a.id(),
        "session.start",
        t + TimeDelta::minutes(3),
        json!({"session_id": "s-a"}),
    );
    let c = event("session.start", t, json!({"session_id": "s-c"}));
    assert_eq!(store.insert(&[retried, c]).await.unwrap(), [false, true]);

    assert_eq!(count(&db, "SELECT count(*) FROM analytics_events").await, 3);
    assert!(store.insert(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn events_keep_their_columns_and_properties() {
    let db = TestDatabase::new().await;
    let t = at("2025-12-10T02:00:00.123456Z");
    let closed = event(
        "ticket.closed",
        t,
        json!({"ticket_id": "t-1", "resolution_duration_hours": 4.5, "sla_met": true, "note": "退款"}),
    );
    let takeover = event(
        "agent.session_takeover",
        t,
        json!({"agent_id": "a-1", "session_id": "s\\1\t\"q\" ü", "wait_duration_seconds": 12.25}),
    );
    db.store()
        .insert(&[closed.clone(), takeover.clone()])
        .await
        .unwrap();

    type Row = (
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<bool>,
        serde_json::Value,
        chrono::DateTime<chrono::Utc>,
    );
    let row: Row =
        sqlx::query_as("SELECT event, product, ticket_id, value_micros, sla_met, properties, occurred_at FROM analytics_events WHERE event_id = $1")
            .bind(closed.id())
            .fetch_one(db.store().pool())
            .await
            .unwrap();
    assert_eq!(row.0, "ticket.closed");
    assert_eq!(row.1.as_deref(), Some("agent_workbench"));
    assert_eq!(row.2.as_deref(), Some("t-1"));
    assert_eq!(row.3, Some(4_500_000));
    assert_eq!(row.4, Some(true));
    assert_eq!(
        row.5,
        json!({"ticket_id": "t-1", "resolution_duration_hours": 4.5, "sla_met": true, "note": "退款"})
    );
    assert_eq!(row.6, t);

    let (agent, session, value): (Option<String>, Option<String>, Option<i64>) = sqlx::query_as(
        "SELECT agent_id, session_id, value_micros FROM analytics_events WHERE event_id = $1",
    )
    .bind(takeover.id())
    .fetch_one(db.store().pool())
    .await
    .unwrap();
    assert_eq!(
        (agent.as_deref(), session.as_deref(), value),
        (Some("a-1"), Some("s\\1\t\"q\" ü"), Some(12_250_000))
    );
}

#[tokio::test]
async fn an_event_lands_in_the_partition_of_its_business_day() {
    let db = TestDatabase::new().await;
    // 00:30 on 2025-12-01 in Shanghai.
    let e = event(
        "session.start",
        at("2025-11-30T16:30:00Z"),
        json!({"session_id": "s"}),
    );
    let before = event(
        "session.start",
        at("2025-11-30T15:59:59Z"),
        json!({"session_id": "s"}),
    );
    db.store()
        .insert(&[e.clone(), before.clone()])
        .await
        .unwrap();

    let partition = |id: Uuid| {
        let pool = db.store().pool().clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT tableoid::regclass::text FROM analytics_events WHERE event_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(partition(e.id()).await, "analytics_events_p20251201");
    assert_eq!(partition(before.id()).await, "analytics_events_p20251130");
    assert_eq!(
        db.store().partition_days().await.unwrap(),
        [date("2025-11-30"), date("2025-12-01")]
    );

    // The partition's bounds are the business day's.
    let bound: String = sqlx::query_scalar(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE relname = 'analytics_events_p20251201'",
    )
    .fetch_one(db.store().pool())
    .await
    .unwrap();
    assert!(
        bound.contains("2025-12-01 00:00:00+08") || bound.contains("2025-11-30 16:00:00+00"),
        "{bound}"
    );
}

#[tokio::test]
async fn partitions_are_created_ahead_and_on_demand() {
    let db = TestDatabase::new().await;
    let store = db.store();
    assert_eq!(
        store
            .ensure_partitions(date("2025-12-10").iter_days().take(4))
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        store
            .ensure_partitions(date("2025-12-10").iter_days().take(4))
            .await
            .unwrap(),
        0,
        "idempotent"
    );
    assert_eq!(
        store.partition_days().await.unwrap(),
        [
            date("2025-12-10"),
            date("2025-12-11"),
            date("2025-12-12"),
            date("2025-12-13")
        ]
    );

    // Another process dropped a partition this one still believes in: the insert
    // looks again and succeeds.
    sqlx::query("DROP TABLE analytics_events_p20251211")
        .execute(store.pool())
        .await
        .unwrap();
    let e = event(
        "agent.login",
        at("2025-12-11T03:00:00Z"),
        json!({"agent_id": "a"}),
    );
    assert_eq!(store.insert(&[e]).await.unwrap(), [true]);
    assert_eq!(
        count(&db, "SELECT count(*) FROM analytics_events_p20251211").await,
        1
    );
}

#[tokio::test]
async fn concurrent_inserts_lose_nothing_and_store_each_id_once() {
    let db = TestDatabase::new().await;
    let store = Arc::new(analytics_pg::PgStore::new(
        db.store().pool().clone(),
        *db.store().calendar(),
    ));
    let start = at("2025-12-01T00:00:00Z");
    // 8 tasks, 20 batches of 100 each; every batch also repeats 10 events of a shared set.
    let shared: Vec<_> = (0..10)
        .map(|i| {
            event(
                "agent.login",
                start,
                json!({"agent_id": format!("shared-{i}")}),
            )
        })
        .collect();
    let mut tasks = Vec::new();
    for task in 0..8 {
        let store = store.clone();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut new = 0;
            for batch in 0..20 {
                let mut events: Vec<_> = (0..90)
                    .map(|i| {
                        let ts = start + TimeDelta::minutes((task * 20 + batch) * 90 + i);
                        event(
                            "session.start",
                            ts,
                            json!({"session_id": format!("{task}-{batch}-{i}")}),
                        )
                    })
                    .collect();
                events.extend(shared.iter().cloned());
                new += store
                    .insert(&events)
                    .await
                    .unwrap()
                    .iter()
                    .filter(|n| **n)
                    .count();
            }
            new
        }));
    }
    let mut new = 0;
    for task in tasks {
        new += task.await.unwrap();
    }
    assert_eq!(
        new,
        8 * 20 * 90 + 10,
        "each shared event is new exactly once"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM analytics_events").await,
        8 * 20 * 90 + 10
    );
    let ids: HashSet<Uuid> = sqlx::query_scalar("SELECT event_id FROM analytics_events")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 8 * 20 * 90 + 10);
}

/// Two writers whose batches hold the same re-sent ids in opposite orders used to
/// deadlock on the partitions' primary keys (and the deadlock read as an outage).
/// Batches are now written in one order, business day then id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_sharing_ids_in_opposite_orders_never_deadlock() {
    let db = TestDatabase::new().await;
    let store = Arc::new(analytics_pg::PgStore::new(
        db.store().pool().clone(),
        *db.store().calendar(),
    ));
    let start = at("2025-12-01T15:00:00Z");
    let rounds = 20;
    let mut total = 0;
    for round in 0..rounds {
        // 2,000 events over two business days, sent whole by four writers at once, two
        // in the order given and two reversed.
        let events: Vec<_> = (0..2000)
            .map(|i| {
                event(
                    "session.start",
                    start + TimeDelta::seconds(i * 30),
                    json!({"session_id": format!("{round}-{i}")}),
                )
            })
            .collect();
        total += events.len();
        let mut tasks = Vec::new();
        let go = Arc::new(tokio::sync::Barrier::new(4));
        for writer in 0..4 {
            let store = store.clone();
            let go = go.clone();
            let mut batch = events.clone();
            if writer % 2 == 1 {
                batch.reverse();
            }
            tasks.push(tokio::spawn(async move {
                go.wait().await;
                store
                    .insert(&batch)
                    .await
                    .map(|flags| flags.iter().filter(|n| **n).count())
            }));
        }
        let mut new = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(n) => new += n,
                Err(error) => panic!("round {round}: a writer failed: {error:?}"),
            }
        }
        assert_eq!(new, events.len(), "round {round}: each event new once");
    }
    assert_eq!(
        count(&db, "SELECT count(*) FROM analytics_events").await,
        total as i64
    );
}

/// Writers storing the same ids dated on different business days at once (clients
/// retrying across midnight on several instances): each id is stored once, on one day,
/// and every writer learns which of its events were new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_store_an_id_once_across_days() {
    let db = TestDatabase::new().await;
    let store = Arc::new(analytics_pg::PgStore::new(
        db.store().pool().clone(),
        *db.store().calendar(),
    ));
    let ids: Vec<Uuid> = (0..1000).map(|_| Uuid::now_v7()).collect();
    let mut tasks = Vec::new();
    let go = Arc::new(tokio::sync::Barrier::new(4));
    for writer in 0..4i64 {
        let store = store.clone();
        let go = go.clone();
        // Writer w dates every event on day w, and half of its ids are its own.
        let batch: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let id = if i % 2 == 0 { *id } else { Uuid::now_v7() };
                event_with_id(
                    id,
                    "session.start",
                    at("2025-12-01T02:00:00Z") + TimeDelta::days(writer),
                    json!({"session_id": format!("{writer}-{i}")}),
                )
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            go.wait().await;
            let flags = store.insert(&batch).await.unwrap();
            batch
                .iter()
                .zip(flags)
                .filter(|(_, new)| *new)
                .map(|(e, _)| e.id())
                .collect::<Vec<Uuid>>()
        }));
    }
    let mut new = Vec::new();
    for task in tasks {
        new.extend(task.await.unwrap());
    }
    let distinct: HashSet<Uuid> = new.iter().copied().collect();
    assert_eq!(new.len(), distinct.len(), "no id reported new twice");
    assert_eq!(
        new.len(),
        500 + 4 * 500,
        "the shared ids once, the own ones each"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM analytics_events").await,
        new.len() as i64
    );
    assert_eq!(
        count(&db, "SELECT count(DISTINCT event_id) FROM analytics_events").await,
        new.len() as i64
    );
}

/// Retention forgets the ids of the days it drops (with their events), and only those.
#[tokio::test]
async fn retention_drops_the_ids_of_the_days_it_drops() {
    let db = TestDatabase::new().await;
    let store = db.store();
    let old = event(
        "session.start",
        at("2025-12-01T02:00:00Z"),
        json!({"session_id": "old"}),
    );
    let kept = event(
        "session.start",
        at("2025-12-03T02:00:00Z"),
        json!({"session_id": "kept"}),
    );
    assert_eq!(
        store.insert(&[old.clone(), kept.clone()]).await.unwrap(),
        [true, true]
    );
    assert_eq!(
        store
            .purge_before(at("2025-12-02T16:00:00Z"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM analytics_event_ids").await,
        1
    );
    // The dropped day's id is unknown again; the kept day's is still a duplicate.
    let later = at("2025-12-05T02:00:00Z");
    let again = |e: &analytics_core::event::Event| {
        event_with_id(
            e.id(),
            "session.start",
            later,
            json!({"session_id": "again"}),
        )
    };
    assert_eq!(
        store.insert(&[again(&old), again(&kept)]).await.unwrap(),
        [true, false]
    );
}
