//! A seeded stream of raw events over December 2025 and January 2026 (to "now").

use analytics_core::event::RawEvent;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// "Now" in these tests: 2026-01-20T12:00:00+08:00.
pub(crate) fn now() -> DateTime<Utc> {
    analytics_core::testing::at("2026-01-20T04:00:00Z")
}

/// The first instant of the stream: 2025-12-01T00:00:00+08:00.
pub(crate) fn start() -> DateTime<Utc> {
    analytics_core::testing::at("2025-11-30T16:00:00Z")
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn value(&mut self, max: u64) -> f64 {
        // Up to three decimals, as clients send.
        self.below(max * 1000) as f64 / 1000.0
    }
}

fn raw(name: &str, at: DateTime<Utc>, properties: Value, rng: &mut Rng) -> RawEvent {
    RawEvent {
        event_id: Some(Uuid::from_u64_pair(rng.next(), rng.next())),
        timestamp: Some(at),
        ..RawEvent::new(name, properties)
    }
}

/// One event of any kind at `at`.
fn any_event(at: DateTime<Utc>, rng: &mut Rng) -> RawEvent {
    let s = format!("s-{}", rng.below(300));
    let a = format!("a-{}", rng.below(6));
    let t = format!("t-{}", rng.below(400));
    let (name, props) = match rng.below(20) {
        0..3 => ("session.start", json!({"session_id": s, "channel": "web"})),
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

/// The stream as it first arrives: events all over both months, plus events on every
/// day boundary and the month boundary, plus duplicates of some of them.
pub(crate) fn initial(seed: u64) -> Vec<RawEvent> {
    let mut rng = Rng(seed | 1);
    let span = (now() - start()).num_seconds();
    let mut events: Vec<RawEvent> = (0..4_000)
        .map(|_| {
            let at = start() + TimeDelta::seconds(rng.below(span as u64) as i64);
            any_event(at, &mut rng)
        })
        .collect();
    // On both sides of every Shanghai midnight (16:00Z), including 2025-12-31/2026-01-01.
    let mut midnight = start();
    while midnight < now() {
        events.push(any_event(midnight, &mut rng));
        events.push(any_event(midnight - TimeDelta::microseconds(1), &mut rng));
        midnight += TimeDelta::days(1);
    }
    // Duplicates: the same id and timestamp sent again, later in the stream.
    let duplicates: Vec<RawEvent> = events.iter().step_by(37).cloned().collect();
    events.extend(duplicates);
    events
}

/// Events that arrive after the jobs have run, dated in the past (December, yesterday)
/// and today, with duplicates of events already stored.
pub(crate) fn late(seed: u64, already: &[RawEvent]) -> Vec<RawEvent> {
    let mut rng = Rng(seed.wrapping_mul(31) | 1);
    let mut events = Vec::new();
    for day_ago in [46, 30, 1, 0] {
        for _ in 0..60 {
            let at =
                now() - TimeDelta::days(day_ago) - TimeDelta::seconds(rng.below(40_000) as i64);
            events.push(any_event(at, &mut rng));
        }
    }
    events.extend(already.iter().step_by(101).cloned());
    events
}

/// Events of today only, as more traffic after Redis lost its data.
pub(crate) fn today_more(seed: u64) -> Vec<RawEvent> {
    let mut rng = Rng(seed.wrapping_mul(17) | 1);
    (0..200)
        .map(|i| any_event(now() - TimeDelta::seconds(i * 60), &mut rng))
        .collect()
}
