//! The envelope of SPEC §3: ids, products, the timestamp window, the size limit, the
//! legacy alias, custom events and reading envelopes from JSON.

use std::sync::Arc;

use analytics_core::catalog::{EventData, Kind, Product};
use analytics_core::error::{Location, Rule};
use analytics_core::event::{
    Event, FixedClock, MAX_PROPERTIES_BYTES, RawEvent, TypedEvent, ValidationRules, Validator,
};
use analytics_core::metrics::{Field, Sums};
use chrono::TimeDelta;
use serde_json::json;
use uuid::Uuid;

use crate::support::{at, now, raw_at, validator};

fn login() -> serde_json::Value {
    json!({"agent_id": "a-1"})
}

#[test]
fn an_event_id_is_kept_or_generated_as_uuid_v7() {
    let id = Uuid::parse_str("0193a6e2-7c1e-7b4a-9f00-5d2c8a1e0b11").unwrap();
    let given = validator()
        .raw(RawEvent {
            event_id: Some(id),
            ..RawEvent::new("agent.login", login())
        })
        .unwrap();
    assert_eq!(given.id(), id);

    let a = validator()
        .raw(RawEvent::new("agent.login", login()))
        .unwrap();
    let b = validator()
        .raw(RawEvent::new("agent.login", login()))
        .unwrap();
    assert_eq!(a.id().get_version_num(), 7);
    assert_ne!(a.id(), b.id());
}

#[test]
fn the_product_defaults_to_the_catalog_and_must_agree_with_it() {
    let with = |product: &str| {
        validator().raw(RawEvent {
            product: Some(product.to_owned()),
            ..RawEvent::new("agent.login", login())
        })
    };
    let defaulted = validator()
        .raw(RawEvent::new("agent.login", login()))
        .unwrap();
    assert_eq!(defaulted.product(), Some(Product::AgentWorkbench));
    assert_eq!(
        with("agent_workbench").unwrap().product(),
        Some(Product::AgentWorkbench)
    );

    let error = with("ai_chatbot").unwrap_err();
    assert_eq!(error.location, Location::Field("product".into()));
    assert_eq!(
        error.rule,
        Rule::ProductMismatch {
            expected: Product::AgentWorkbench,
            found: "ai_chatbot".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "event \"agent.login\": field `product` must be agent_workbench for this event (got \"ai_chatbot\")"
    );
    assert!(matches!(
        with("crm").unwrap_err().rule,
        Rule::NotOneOf { .. }
    ));
}

#[test]
fn timestamps_up_to_five_minutes_ahead_are_accepted() {
    let login_at =
        |offset: TimeDelta| validator().raw(raw_at("agent.login", now() + offset, login()));
    assert_eq!(
        login_at(TimeDelta::minutes(5)).unwrap().timestamp(),
        now() + TimeDelta::minutes(5)
    );
    let error = login_at(TimeDelta::minutes(5) + TimeDelta::seconds(1)).unwrap_err();
    assert_eq!(error.location, Location::Field("timestamp".into()));
    assert_eq!(
        error.rule,
        Rule::InFuture {
            max_skew_seconds: 300
        }
    );
    assert!(
        error
            .to_string()
            .contains("more than 5 minutes in the future")
    );
}

#[test]
fn timestamps_older_than_the_retention_window_are_rejected() {
    let login_at = |validator: &Validator, offset: TimeDelta| {
        validator.raw(raw_at("agent.login", now() - offset, login()))
    };
    let default = validator();
    assert!(login_at(&default, TimeDelta::days(90)).is_ok());
    let error = login_at(&default, TimeDelta::days(90) + TimeDelta::seconds(1)).unwrap_err();
    assert_eq!(error.rule, Rule::TooOld { retention_days: 90 });
    assert!(error.to_string().contains("90-day retention window"));

    let short = Validator::new(
        ValidationRules { retention_days: 7 },
        Arc::new(FixedClock::new(now())),
    );
    assert!(login_at(&short, TimeDelta::days(7)).is_ok());
    assert_eq!(
        login_at(&short, TimeDelta::days(8)).unwrap_err().rule,
        Rule::TooOld { retention_days: 7 }
    );
}

#[test]
fn the_typed_way_checks_the_timestamp_window_too() {
    let data = EventData::AgentLogin {
        agent_id: "a".into(),
    };
    let at = |ts| {
        validator().typed(TypedEvent {
            event_id: None,
            timestamp: Some(ts),
            data: data.clone(),
        })
    };
    assert!(at(now() - TimeDelta::days(1)).is_ok());
    assert!(matches!(
        at(now() + TimeDelta::hours(1)).unwrap_err().rule,
        Rule::InFuture { .. }
    ));
    assert!(matches!(
        at(now() - TimeDelta::days(91)).unwrap_err().rule,
        Rule::TooOld { .. }
    ));
}

#[test]
fn the_window_moves_with_the_injected_clock() {
    let clock = Arc::new(FixedClock::new(now()));
    let validator = Validator::new(ValidationRules::default(), clock.clone());
    let late = raw_at("agent.login", now() + TimeDelta::hours(1), login());
    assert!(validator.raw(late.clone()).is_err());
    clock.advance(TimeDelta::minutes(56));
    assert!(validator.raw(late).is_ok());
}

#[test]
fn timestamps_keep_microseconds_and_any_offset() {
    let event = validator()
        .raw(raw_at(
            "agent.login",
            at("2025-12-15T11:59:58.123456789+08:00"),
            login(),
        ))
        .unwrap();
    assert_eq!(event.timestamp(), at("2025-12-15T03:59:58.123456Z"));
}

/// A leap second (`…:59:60`) is the first instant after it, as PostgreSQL reads it: the
/// counters and the stores put it on the same day and hour.
#[test]
fn a_leap_second_is_the_instant_after_it() {
    for (sent, read) in [
        ("2025-12-14T15:59:60Z", "2025-12-14T16:00:00Z"),
        ("2025-12-14T23:59:60.25+08:00", "2025-12-14T16:00:00.25Z"),
    ] {
        let raw = RawEvent::from_json(json!({
            "event": "agent.login",
            "timestamp": sent,
            "properties": {"agent_id": "a-1"},
        }))
        .unwrap();
        let event = validator().raw(raw).unwrap();
        assert_eq!(event.timestamp(), at(read), "{sent}");
        assert_eq!(
            analytics_core::time::Calendar::default()
                .date(event.timestamp())
                .to_string(),
            "2025-12-15",
            "{sent}"
        );
    }
}

#[test]
fn properties_may_take_32_kib_serialized() {
    // `{"note":"…"}` is 11 bytes around the note.
    let props_of = |len: usize| json!({ "note": "x".repeat(len) });
    let fits = props_of(MAX_PROPERTIES_BYTES - 11);
    assert_eq!(
        serde_json::to_string(&fits).unwrap().len(),
        MAX_PROPERTIES_BYTES
    );
    assert!(validator().raw(RawEvent::new("custom.note", fits)).is_ok());

    let error = validator()
        .raw(RawEvent::new(
            "custom.note",
            props_of(MAX_PROPERTIES_BYTES - 10),
        ))
        .unwrap_err();
    assert_eq!(error.location, Location::Field("properties".into()));
    assert_eq!(
        error.rule,
        Rule::TooBig {
            max: 32768,
            found: 32769
        }
    );
}

#[test]
fn the_legacy_message_ai_is_stored_as_session_message() {
    let event = validator()
        .raw(RawEvent::new(
            "message.ai",
            json!({"session_id": "s-1", "response_time": 1234.5, "tokens": 12}),
        ))
        .unwrap();
    assert_eq!(event.name(), "session.message");
    assert_eq!(event.kind(), Some(Kind::SessionMessage));
    assert_eq!(event.product(), Some(Product::AiChatbot));
    assert_eq!(
        event.data(),
        Some(&EventData::SessionMessage {
            session_id: "s-1".into(),
            response_time_ms: 1234.5,
            tokens: Some(12)
        })
    );
    assert!(
        event.extra_properties().is_empty(),
        "response_time was read, not kept"
    );
    assert_eq!(Sums::of(&event).get(Field::ResponseTimeMs), 1_234_500_000);
}

#[test]
fn the_legacy_alias_prefers_response_time_ms_and_checks_the_same_rules() {
    let both = validator()
        .raw(RawEvent::new(
            "message.ai",
            json!({"session_id": "s-1", "response_time_ms": 800, "response_time": 1}),
        ))
        .unwrap();
    assert_eq!(
        both.data(),
        Some(&EventData::SessionMessage {
            session_id: "s-1".into(),
            response_time_ms: 800.0,
            tokens: None
        })
    );
    assert_eq!(
        both.extra_properties().get("response_time"),
        Some(&json!(1))
    );

    let error = validator()
        .raw(RawEvent::new("message.ai", json!({"session_id": "s-1"})))
        .unwrap_err();
    assert_eq!(
        error.event, "message.ai",
        "the error names the event as it was sent"
    );
    assert_eq!(
        error.location,
        Location::Property("response_time_ms".into())
    );
    // A bad `response_time` is named as it was sent.
    let error = validator()
        .raw(RawEvent::new(
            "message.ai",
            json!({"session_id": "s-1", "response_time": "5"}),
        ))
        .unwrap_err();
    assert_eq!(error.location, Location::Property("response_time".into()));
    assert!(error.to_string().contains("response_time"), "{error}");
}

/// An `int` that is not a whole number, or beyond 2⁶⁴ − 1, is refused saying so.
#[test]
fn an_int_with_a_fraction_or_too_large_says_what_is_accepted() {
    for tokens in [json!(2.5), json!(18_446_744_073_709_551_616.0_f64)] {
        let error = validator()
            .raw(RawEvent::new(
                "session.message",
                json!({"session_id": "s-1", "response_time_ms": 10, "tokens": tokens}),
            ))
            .unwrap_err();
        assert_eq!(error.location, Location::Property("tokens".into()));
        let text = error.to_string();
        assert!(
            text.contains("whole number from 0 to 18446744073709551615"),
            "{text}"
        );
        assert!(!text.contains("not a number"), "{text}");
    }
    let ok = validator()
        .raw(RawEvent::new(
            "session.message",
            json!({"session_id": "s-1", "response_time_ms": 10, "tokens": 3.0}),
        ))
        .unwrap();
    assert!(matches!(
        ok.data(),
        Some(EventData::SessionMessage {
            tokens: Some(3),
            ..
        })
    ));
}

#[test]
fn custom_events_are_kept_and_counted_apart() {
    let event = validator()
        .raw(RawEvent::new(
            "custom.promo_click",
            json!({"banner": "双十二", "position": 3}),
        ))
        .unwrap();
    assert_eq!(event.name(), "custom.promo_click");
    assert_eq!(event.kind(), None);
    assert_eq!(event.product(), None);
    assert_eq!(
        event.properties(),
        json!({"banner": "双十二", "position": 3})
            .as_object()
            .unwrap()
            .clone()
    );
    let sums = Sums::of(&event);
    assert_eq!(sums.get(Field::Custom), 1);
    assert_eq!(sums.total_events(), 1);
    assert!(Kind::ALL.iter().all(|k| sums.count(*k) == 0));

    let with_product = validator()
        .raw(RawEvent {
            product: Some("agent_workbench".into()),
            ..RawEvent::new("custom.shift_swap", json!(null))
        })
        .unwrap();
    assert_eq!(with_product.product(), Some(Product::AgentWorkbench));
    let back: Event = serde_json::from_value(serde_json::to_value(&with_product).unwrap()).unwrap();
    assert_eq!(back, with_product);
}

#[test]
fn custom_names_are_checked() {
    for bad in [
        "custom.",
        "custom.has space",
        "custom.中文",
        &format!("custom.{}", "x".repeat(122)),
    ] {
        let error = validator().raw(RawEvent::new(bad, json!({}))).unwrap_err();
        assert_eq!(error.rule, Rule::BadCustomName, "{bad}");
        assert_eq!(error.location, Location::Field("event".into()));
    }
    assert!(
        validator()
            .raw(RawEvent::new(
                format!("custom.{}", "x".repeat(121)),
                json!({})
            ))
            .is_ok()
    );
    assert!(
        validator()
            .raw(RawEvent::new("custom.a-b_c.d9", json!({})))
            .is_ok()
    );
}

#[test]
fn names_outside_the_catalog_are_rejected() {
    for name in [
        "session.started",
        "Session.Start",
        "ticket",
        "",
        "customs.x",
    ] {
        let error = validator().raw(RawEvent::new(name, json!({}))).unwrap_err();
        assert_eq!(error.rule, Rule::UnknownEvent, "{name:?}");
        assert_eq!(error.event, name);
        assert!(error.to_string().contains("not in the event catalog"));
    }
}

#[test]
fn envelopes_are_read_from_json_with_precise_errors() {
    let raw = RawEvent::from_json(json!({
        "event_id": "0193a6e2-7c1e-7b4a-9f00-5d2c8a1e0b11",
        "event": "session.start",
        "product": "ai_chatbot",
        "timestamp": "2025-12-01T10:00:00+08:00",
        "properties": {"session_id": "s-1"}
    }))
    .unwrap();
    assert_eq!(raw.timestamp, Some(at("2025-12-01T02:00:00Z")));
    assert_eq!(raw.product.as_deref(), Some("ai_chatbot"));
    let event = validator().raw(raw).unwrap();
    assert_eq!(
        event.id().to_string(),
        "0193a6e2-7c1e-7b4a-9f00-5d2c8a1e0b11"
    );

    let minimal = RawEvent::from_json(json!({"event": "custom.x"})).unwrap();
    assert_eq!(minimal, RawEvent::new("custom.x", serde_json::Value::Null));

    let cases = [
        (
            json!([1]),
            None,
            Rule::WrongType {
                expected: "a JSON object",
                found: "another JSON value",
            },
        ),
        (json!({"properties": {}}), Some("event"), Rule::Missing),
        (
            json!({"event": 7}),
            Some("event"),
            Rule::WrongType {
                expected: "a string",
                found: "another JSON value",
            },
        ),
        (
            json!({"event": "agent.login", "event_id": "42"}),
            Some("event_id"),
            Rule::NotUuid,
        ),
        (
            json!({"event": "agent.login", "timestamp": "2025-12-01 10:00"}),
            Some("timestamp"),
            Rule::NotRfc3339,
        ),
        (
            json!({"event": "agent.login", "timestamp": 1733000000}),
            Some("timestamp"),
            Rule::WrongType {
                expected: "a string",
                found: "another JSON value",
            },
        ),
        (
            json!({"event": "agent.login", "properties": [1]}),
            Some("properties"),
            Rule::WrongType {
                expected: "a JSON object",
                found: "another JSON value",
            },
        ),
        (
            json!({"event": "agent.login", "props": {}}),
            Some("props"),
            Rule::UnknownField,
        ),
    ];
    for (value, field, rule) in cases {
        let error = RawEvent::from_json(value.clone()).unwrap_err();
        assert_eq!(error.property(), field, "{value}");
        assert_eq!(error.rule, rule, "{value}");
    }
}

#[test]
fn restoring_a_stored_event_skips_the_window_but_not_the_catalog() {
    let old = RawEvent {
        event_id: Some(Uuid::now_v7()),
        timestamp: Some(now() - TimeDelta::days(400)),
        ..RawEvent::new("agent.login", login())
    };
    assert!(validator().raw(old.clone()).is_err());
    assert_eq!(
        Event::restore(old).unwrap().timestamp(),
        now() - TimeDelta::days(400)
    );

    let no_id = RawEvent {
        timestamp: Some(now()),
        ..RawEvent::new("agent.login", login())
    };
    assert_eq!(Event::restore(no_id).unwrap_err().rule, Rule::Missing);
}

/// A NUL character cannot be stored (PostgreSQL refuses it in text and `jsonb`): it is
/// refused at validation wherever it is — a catalog property, an optional string, a
/// property outside the catalog, nested, a key, a custom event's property — with the
/// property named, on every backend alike.
#[test]
fn a_nul_character_is_refused_wherever_it_is() {
    let cases = [
        (
            "session.start",
            json!({"session_id": "s\u{0}1"}),
            "session_id",
        ),
        (
            "session.start",
            json!({"session_id": "s-1", "channel": "we\u{0}b"}),
            "channel",
        ),
        (
            "session.start",
            json!({"session_id": "s-1", "note": "a\u{0}"}),
            "note",
        ),
        (
            "session.start",
            json!({"session_id": "s-1", "meta": {"tags": ["ok", "b\u{0}d"]}}),
            "meta.tags[1]",
        ),
        (
            "custom.banner_click",
            json!({"bad\u{0}key": 1}),
            "bad\\0key",
        ),
        (
            "custom.banner_click",
            json!({"banner": "双\u{0}十二"}),
            "banner",
        ),
    ];
    for (name, properties, property) in cases {
        let error = validator()
            .raw(RawEvent::new(name, properties.clone()))
            .unwrap_err();
        assert_eq!(
            (error.location.clone(), error.rule.clone()),
            (Location::Property(property.to_owned()), Rule::NulCharacter),
            "{name} {properties}"
        );
        assert!(error.to_string().contains("NUL"), "{error}");
    }
    // The typed path too.
    let error = validator()
        .typed(EventData::SessionStart {
            session_id: "s\u{0}".into(),
            customer_id: None,
            channel: None,
            user_agent: None,
        })
        .unwrap_err();
    assert_eq!(error.rule, Rule::NulCharacter);
    // Other control characters are kept.
    assert!(
        validator()
            .raw(RawEvent::new(
                "session.start",
                json!({"session_id": "s\u{1}\t1"})
            ))
            .is_ok()
    );
}
