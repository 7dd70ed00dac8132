//! The counter batch computation, the in-memory stores, and the mocks of the storage
//! traits.

use std::sync::Arc;

use analytics_core::catalog::Kind;
use analytics_core::counters::{Bucket, CounterBatch, Period};
use analytics_core::memory::{MemoryCounters, MemorySpill};
use analytics_core::metrics::Field;
use analytics_core::store::{CounterStore, EventStore, MockEventStore, SpillBuffer};
use analytics_core::time::{Calendar, DayHour, YearMonth};
use chrono::{NaiveDate, TimeDelta};
use serde_json::json;

use crate::support::{at, event};

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[test]
fn a_counter_batch_combines_increments_per_bucket_and_field() {
    let calendar = Calendar::default();
    // 2025-11-30T16:30Z is 00:30 on 2025-12-01 in Shanghai.
    let t = at("2025-11-30T16:30:00Z");
    let mut events = Vec::new();
    for i in 0..500 {
        events.push(event(
            "session.start",
            t,
            json!({"session_id": format!("s{i}")}),
        ));
        events.push(event(
            "session.message",
            t,
            json!({"session_id": format!("s{i}"), "response_time_ms": 2}),
        ));
    }
    events.push(event(
        "agent.session_takeover",
        t,
        json!({"agent_id": "a1", "session_id": "s1", "wait_duration_seconds": 5}),
    ));
    let batch = CounterBatch::from_events(&calendar, &events);

    let day = Period::Day(date("2025-12-01"));
    let hour = Period::Hour(DayHour {
        date: date("2025-12-01"),
        hour: 0,
    });
    let month = Period::Month("2025-12".parse::<YearMonth>().unwrap());
    assert_eq!(
        batch.increments.keys().cloned().collect::<Vec<_>>(),
        [
            Bucket::all(day),
            Bucket::agent(day, "a1"),
            Bucket::all(hour),
            Bucket::all(month),
            Bucket::agent(month, "a1"),
        ]
    );
    let totals = &batch.increments[&Bucket::all(day)];
    assert_eq!(totals.count(Kind::SessionStart), 500);
    assert_eq!(totals.get(Field::ResponseTimeMs), 500 * 2_000_000);
    assert_eq!(
        totals.iter().count(),
        5,
        "one increment per field, not per event"
    );
    assert_eq!(batch.increments[&Bucket::all(hour)], *totals);
    assert_eq!(
        batch.increments[&Bucket::agent(day, "a1")].count(Kind::AgentSessionTakeover),
        1
    );
    assert_eq!(batch.sessions.len(), 500);
}

#[test]
fn a_counter_batch_keeps_the_latest_word_on_sessions_and_agents() {
    let t = at("2025-12-10T02:00:00Z");
    let later = t + TimeDelta::minutes(5);
    let events = [
        event("session.start", t, json!({"session_id": "s1"})),
        event("session.end", later, json!({"session_id": "s1"})),
        event(
            "session.message",
            later,
            json!({"session_id": "s2", "response_time_ms": 1}),
        ),
        event(
            "agent.status_change",
            later,
            json!({"agent_id": "a1", "to": "away"}),
        ),
        // Arrives after but happened before: does not override.
        event("agent.login", t, json!({"agent_id": "a1"})),
        event("agent.logout", t, json!({"agent_id": "a2"})),
    ];
    let batch = CounterBatch::from_events(&Calendar::default(), &events);
    let s1 = batch.sessions["s1"];
    assert!(s1.started && s1.ended);
    assert_eq!(s1.last_seen, later);
    let s2 = batch.sessions["s2"];
    assert!(!s2.started && !s2.ended);
    assert_eq!(batch.agents["a1"].status.as_str(), "away");
    assert_eq!(batch.agents["a2"].status.as_str(), "offline");
    assert!(CounterBatch::default().is_empty());
}

#[test]
fn merged_counter_batches_equal_one_batch_of_all_events() {
    let calendar = Calendar::default();
    let t = at("2025-12-10T02:00:00Z");
    let events = [
        event("session.start", t, json!({"session_id": "s1"})),
        event("agent.login", t, json!({"agent_id": "a1"})),
        event(
            "session.end",
            t + TimeDelta::minutes(1),
            json!({"session_id": "s1"}),
        ),
        event(
            "agent.logout",
            t + TimeDelta::minutes(1),
            json!({"agent_id": "a1"}),
        ),
        event(
            "agent.session_takeover",
            t,
            json!({"agent_id": "a1", "session_id": "s1", "wait_duration_seconds": 3}),
        ),
    ];
    let all = CounterBatch::from_events(&calendar, &events);
    let mut merged = CounterBatch::from_events(&calendar, &events[..2]);
    merged.merge(CounterBatch::from_events(&calendar, &events[2..]));
    assert_eq!(merged, all);
}

#[tokio::test]
async fn the_memory_spill_buffer_loses_nothing_between_claim_and_ack() {
    let spill = MemorySpill::new();
    let t = at("2025-12-10T02:00:00Z");
    let events: Vec<_> = (0..5)
        .map(|i| event("agent.login", t, json!({"agent_id": format!("a{i}")})))
        .collect();
    spill.push(&events).await.unwrap();
    assert_eq!(spill.len().await.unwrap(), 5);

    let claim = spill.claim(3).await.unwrap().unwrap();
    assert_eq!(claim.events, events[..3]);
    // Not acknowledged (the store failed): the same events come back.
    let again = spill.claim(3).await.unwrap().unwrap();
    assert_eq!(again, claim);
    assert_eq!(spill.len().await.unwrap(), 5);

    spill.ack(&claim).await.unwrap();
    let rest = spill.claim(10).await.unwrap().unwrap();
    assert_eq!(rest.events, events[3..]);
    spill.ack(&rest).await.unwrap();
    assert!(spill.claim(10).await.unwrap().is_none());
    assert!(spill.is_empty().await.unwrap());
}

#[tokio::test]
async fn the_traits_are_usable_as_trait_objects_and_mockable() {
    let mut mock = MockEventStore::new();
    mock.expect_insert()
        .times(1)
        .returning(|events| Ok(vec![true; events.len()]));
    let store: Arc<dyn EventStore> = Arc::new(mock);
    let e = event(
        "agent.login",
        at("2025-12-10T02:00:00Z"),
        json!({"agent_id": "a"}),
    );
    assert_eq!(store.insert(&[e]).await.unwrap(), [true]);

    let counters: Arc<dyn CounterStore> = Arc::new(MemoryCounters::new());
    assert_eq!(counters.online_agents().await.unwrap(), 0);
}
