//! The spill buffer: round trips without loss or duplication, crash between claim and
//! ack, entries that are not events.

use std::collections::HashSet;
use std::time::Duration;

use analytics_core::event::Event;
use analytics_core::store::SpillBuffer;
use analytics_core::testing::{at, event};
use analytics_redis::testing::TestRedis;
use analytics_redis::testing::redis::Commands;
use analytics_redis::{MAX_CLAIM, RedisOptions, dead_letters};
use chrono::TimeDelta;
use serde_json::json;
use uuid::Uuid;

fn events(n: usize) -> Vec<Event> {
    let t = at("2025-12-01T02:00:00Z");
    (0..n)
        .map(|i| {
            event(
                "session.message",
                t + TimeDelta::milliseconds(i as i64),
                json!({"session_id": format!("s-{i}"), "response_time_ms": i as f64 + 0.5, "note": "多字节\t\"quoted\""}),
            )
        })
        .collect()
}

#[tokio::test]
async fn events_round_trip_in_order_without_loss_or_duplication() {
    let redis = TestRedis::new().await;
    let spill = redis.store();
    let all = events(2_500);
    for chunk in all.chunks(700) {
        spill.push(chunk).await.unwrap();
    }
    assert_eq!(spill.len().await.unwrap(), 2_500);

    let mut drained = Vec::new();
    while let Some(claim) = spill.claim(1_000).await.unwrap() {
        assert!(claim.events.len() <= 1_000);
        drained.extend(claim.events.iter().cloned());
        spill.ack(&claim).await.unwrap();
    }
    assert_eq!(
        drained, all,
        "every event once, in order, equal to what was pushed"
    );
    assert_eq!(spill.len().await.unwrap(), 0);
    assert!(spill.is_empty().await.unwrap());
    assert!(
        redis.keys().is_empty(),
        "nothing left behind: {:?}",
        redis.keys()
    );
}

#[tokio::test]
async fn a_drainer_that_dies_between_claim_and_store_loses_nothing() {
    let redis = TestRedis::with_options(RedisOptions {
        claim_lease: Duration::from_millis(300),
        ..RedisOptions::default()
    })
    .await;
    let spill = redis.store();
    let all = events(50);
    spill.push(&all).await.unwrap();

    // A drainer takes 20 events and dies: no ack.
    let lost = spill.claim(20).await.unwrap().unwrap();
    assert_eq!(lost.events, all[..20]);
    assert_eq!(spill.len().await.unwrap(), 50, "claimed events still count");
    // While its lease runs, another drainer gets the rest, not the claimed ones.
    let other = spill.claim(100).await.unwrap().unwrap();
    assert_eq!(other.events, all[20..]);
    spill.ack(&other).await.unwrap();
    assert_eq!(spill.len().await.unwrap(), 20);

    // Once the lease has expired, the events come back, in order.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = spill.claim(100).await.unwrap().unwrap();
    assert_eq!(again.events, all[..20]);
    assert_ne!(again.token, lost.token);
    spill.ack(&again).await.unwrap();
    // The dead drainer's late ack is harmless.
    spill.ack(&lost).await.unwrap();
    assert_eq!(spill.len().await.unwrap(), 0);
    assert!(spill.claim(100).await.unwrap().is_none());
}

/// A drainer whose store write failed gives its claim back: the events are claimed
/// again at once, in order, not after the lease (30 s by default), and the returned
/// claim's late ack is harmless.
#[tokio::test]
async fn a_released_claim_is_claimed_again_at_once() {
    let redis = TestRedis::new().await;
    let spill = redis.store();
    let all = events(30);
    spill.push(&all).await.unwrap();
    let failed = spill.claim(20).await.unwrap().unwrap();
    assert_eq!(failed.events, all[..20]);
    spill.release(&failed).await.unwrap();
    assert_eq!(spill.len().await.unwrap(), 30, "nothing lost");
    let again = spill.claim(100).await.unwrap().unwrap();
    assert_eq!(again.events, all, "the released events first, in order");
    spill.ack(&again).await.unwrap();
    spill.ack(&failed).await.unwrap();
    assert_eq!(spill.len().await.unwrap(), 0);
}

#[tokio::test]
async fn concurrent_drainers_share_the_buffer_without_overlap() {
    let redis = TestRedis::new().await;
    let store = redis.store().clone();
    let all = events(3_000);
    store.push(&all).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            while let Some(claim) = store.claim(250).await.unwrap() {
                ids.extend(claim.events.iter().map(Event::id));
                store.ack(&claim).await.unwrap();
            }
            ids
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(seen.insert(id), "{id} drained twice");
        }
    }
    let expected: HashSet<Uuid> = all.iter().map(Event::id).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn entries_that_are_not_events_go_to_dead_letters() {
    let redis = TestRedis::new().await;
    let spill = redis.store();
    let good = events(2);
    spill.push(&good[..1]).await.unwrap();
    let mut conn = redis.connection();
    let _: () = conn
        .rpush(format!("{}event_buffer", redis.prefix()), "not an event")
        .unwrap();
    spill.push(&good[1..]).await.unwrap();

    let claim = spill.claim(10).await.unwrap().unwrap();
    assert_eq!(claim.events, good);
    spill.ack(&claim).await.unwrap();
    assert_eq!(dead_letters(spill).await.unwrap(), 1);
    assert_eq!(spill.len().await.unwrap(), 0);
    assert!(spill.claim(MAX_CLAIM * 2).await.unwrap().is_none());
}
