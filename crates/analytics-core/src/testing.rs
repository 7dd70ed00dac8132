//! Event fixtures for tests (feature `testing`): events at fixed instants, built
//! without the timestamp window so that tests can use any date.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::event::{Event, RawEvent};

/// An instant from RFC 3339.
///
/// # Panics
///
/// When `rfc3339` is not RFC 3339: a mistake in the test.
pub fn at(rfc3339: &str) -> DateTime<Utc> {
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(ts) => ts.to_utc(),
        Err(error) => panic!("bad test timestamp {rfc3339:?}: {error}"),
    }
}

/// A catalog-valid event with a fresh id at `timestamp`.
///
/// # Panics
///
/// When the event breaks the catalog: a mistake in the test.
pub fn event(name: &str, timestamp: DateTime<Utc>, properties: Value) -> Event {
    event_with_id(Uuid::now_v7(), name, timestamp, properties)
}

/// A catalog-valid event with the given id at `timestamp`.
///
/// # Panics
///
/// When the event breaks the catalog: a mistake in the test.
pub fn event_with_id(id: Uuid, name: &str, timestamp: DateTime<Utc>, properties: Value) -> Event {
    let raw = RawEvent {
        event_id: Some(id),
        timestamp: Some(timestamp),
        ..RawEvent::new(name, properties)
    };
    match Event::restore(raw) {
        Ok(event) => event,
        Err(error) => panic!("bad test event {name}: {error}"),
    }
}

pub use crate::rng::Rng;

/// A raw event with a seeded id.
fn raw(name: &str, at: DateTime<Utc>, properties: Value, rng: &mut Rng) -> RawEvent {
    RawEvent {
        event_id: Some(Uuid::from_u64_pair(rng.next_u64(), rng.next_u64())),
        timestamp: Some(at),
        ..RawEvent::new(name, properties)
    }
}

/// One event of any kind of the catalog (and a custom one) at `at`, with a seeded id:
/// 300 sessions, 6 agents and 400 tickets, so that events of one session or ticket
/// meet.
pub fn any_event(at: DateTime<Utc>, rng: &mut Rng) -> RawEvent {
    let n = rng.below(300);
    let s = format!("s-{n}");
    // Sessions' customers: 37 of them, so that customers come back across days and
    // months; every fifth session without one.
    let start = if n.is_multiple_of(5) {
        json!({"session_id": s, "channel": "web"})
    } else {
        json!({"session_id": s, "channel": "web", "customer_id": format!("c-{}", n % 37)})
    };
    let a = format!("a-{}", rng.below(6));
    let t = format!("t-{}", rng.below(400));
    let (name, props) = match rng.below(20) {
        0..3 => ("session.start", start),
        3..5 => (
            "session.message",
            json!({"session_id": s, "response_time_ms": rng.value(5000), "tokens": rng.below(500)}),
        ),
        5 => (
            "message.ai",
            json!({"session_id": s, "response_time": rng.value(5000)}),
        ),
        6 => (
            "session.escalate",
            json!({"session_id": s, "reason": "人工"}),
        ),
        7 => (
            "session.end",
            json!({"session_id": s, "duration_seconds": rng.value(900)}),
        ),
        8 => ("query.order", json!({"session_id": s, "success": true})),
        9 => ("query.tracking", json!({"tracking_number": "SF1"})),
        10 => ("agent.login", json!({"agent_id": a})),
        11 => ("agent.logout", json!({"agent_id": a})),
        12 => ("agent.status_change", json!({"agent_id": a, "to": "away"})),
        13 => (
            "agent.session_takeover",
            json!({"agent_id": a, "session_id": s, "wait_duration_seconds": rng.value(120)}),
        ),
        14 => (
            "agent.session_message",
            json!({"agent_id": a, "session_id": s}),
        ),
        15 => (
            "agent.session_release",
            json!({"agent_id": a, "session_id": s, "handle_duration_seconds": rng.value(1800)}),
        ),
        16 => (
            "agent.session_transfer",
            json!({"agent_id": a, "session_id": s, "to_agent_id": "a-9"}),
        ),
        17 => (
            "ticket.created",
            json!({"ticket_id": t, "priority": "high"}),
        ),
        18 => (
            if rng.below(2) == 0 {
                "ticket.assigned"
            } else {
                "ticket.status_changed"
            },
            json!({"ticket_id": t, "agent_id": a, "to": "pending"}),
        ),
        _ => {
            if rng.below(4) == 0 {
                ("custom.banner_click", json!({"banner": "双十二"}))
            } else {
                (
                    "ticket.closed",
                    json!({"ticket_id": t, "resolution_duration_hours": rng.value(72), "sla_met": rng.below(10) < 8}),
                )
            }
        }
    };
    raw(name, at, props, rng)
}
