//! A realistic synthetic stream of events: the mix of a customer-service day.

use analytics::core::event::{Event, RawEvent};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

pub(crate) use analytics::core::rng::Rng;

/// One event name and its properties, drawn from the day's mix.
pub(crate) fn draw(rng: &mut Rng) -> (&'static str, Value) {
    let session = format!("s-{}", rng.below(200_000));
    let agent = format!("agent-{}", rng.below(40));
    let ticket = format!("t-{}", rng.below(50_000));
    match rng.below(100) {
        0..15 => (
            "session.start",
            json!({"session_id": session, "customer_id": format!("c-{}", rng.below(1_000_000)), "channel": "web", "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"}),
        ),
        15..57 => (
            "session.message",
            json!({"session_id": session, "response_time_ms": rng.between(300.0, 4000.0), "tokens": rng.below(800)}),
        ),
        57..59 => (
            "session.escalate",
            json!({"session_id": session, "reason": "customer asked for a human"}),
        ),
        59..71 => (
            "session.end",
            json!({"session_id": session, "duration_seconds": rng.between(20.0, 900.0)}),
        ),
        71..74 => (
            "query.order",
            json!({"session_id": session, "order_id": format!("o-{}", rng.below(1_000_000)), "success": rng.below(10) > 0}),
        ),
        74..76 => (
            "query.tracking",
            json!({"session_id": session, "tracking_number": format!("SF{}", rng.below(1_000_000_000)), "success": true}),
        ),
        76..78 => (
            "agent.session_takeover",
            json!({"agent_id": agent, "session_id": session, "wait_duration_seconds": rng.between(5.0, 90.0)}),
        ),
        78..84 => (
            "agent.session_message",
            json!({"agent_id": agent, "session_id": session}),
        ),
        84..86 => (
            "agent.session_release",
            json!({"agent_id": agent, "session_id": session, "handle_duration_seconds": rng.between(60.0, 1200.0)}),
        ),
        86 => (
            "agent.status_change",
            json!({"agent_id": agent, "from": "online", "to": "busy"}),
        ),
        87 => (
            "agent.session_transfer",
            json!({"agent_id": agent, "session_id": session, "to_agent_id": format!("agent-{}", rng.below(40))}),
        ),
        88..91 => (
            "ticket.created",
            json!({"ticket_id": ticket, "source": "chat", "priority": "normal"}),
        ),
        91..93 => (
            "ticket.assigned",
            json!({"ticket_id": ticket, "agent_id": agent}),
        ),
        93..95 => (
            "ticket.status_changed",
            json!({"ticket_id": ticket, "from": "open", "to": "pending"}),
        ),
        95..98 => (
            "ticket.closed",
            json!({"ticket_id": ticket, "resolution_duration_hours": rng.between(0.2, 30.0), "sla_met": rng.below(20) > 0}),
        ),
        _ => (
            "custom.banner_click",
            json!({"banner": format!("promo-{}", rng.below(20)), "position": rng.below(5)}),
        ),
    }
}

/// `n` events with fresh ids, spread evenly over the `days` days before `end`.
pub(crate) fn events(n: usize, days: i64, end: DateTime<Utc>, seed: u64) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    let span = TimeDelta::days(days).num_milliseconds();
    (0..n)
        .map(|i| {
            let (name, properties) = draw(&mut rng);
            let offset = span * i as i64 / n.max(1) as i64;
            let raw = RawEvent {
                event_id: Some(Uuid::now_v7()),
                timestamp: Some(end - TimeDelta::milliseconds(span - offset)),
                ..RawEvent::new(name, properties)
            };
            Event::restore(raw)
                .unwrap_or_else(|error| unreachable!("the workload is valid: {error}"))
        })
        .collect()
}
