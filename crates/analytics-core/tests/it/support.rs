//! Shared helpers: a validator on a fixed clock, and event builders.

use std::sync::Arc;

use analytics_core::event::{Event, FixedClock, RawEvent, ValidationRules, Validator};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// "Now" in the tests: 2025-12-15T12:00:00+08:00.
pub(crate) fn now() -> DateTime<Utc> {
    at("2025-12-15T04:00:00Z")
}

pub(crate) use analytics_core::testing::at;

/// A validator whose clock stands at [`now`], with the default 90-day retention.
pub(crate) fn validator() -> Validator {
    Validator::new(ValidationRules::default(), Arc::new(FixedClock::new(now())))
}

/// A raw event with a timestamp.
pub(crate) fn raw_at(name: &str, timestamp: DateTime<Utc>, properties: Value) -> RawEvent {
    RawEvent {
        timestamp: Some(timestamp),
        ..RawEvent::new(name, properties)
    }
}

/// A valid event, or a panic naming why not.
pub(crate) fn event(name: &str, timestamp: DateTime<Utc>, properties: Value) -> Event {
    validator()
        .raw(raw_at(name, timestamp, properties))
        .unwrap_or_else(|e| panic!("{name} should be valid: {e}"))
}
