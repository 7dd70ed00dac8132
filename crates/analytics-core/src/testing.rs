//! Event fixtures for tests (feature `testing`): events at fixed instants, built
//! without the timestamp window so that tests can use any date.

use chrono::{DateTime, Utc};
use serde_json::Value;
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
