//! Every catalog entry with a valid event and invalid ones; the property types; the
//! typed and dynamic ways in agreeing.

use analytics_core::catalog::{AgentStatus, EventData, Kind, Product};
use analytics_core::error::{Location, Rule, ValidationError};
use analytics_core::event::{Event, RawEvent, TypedEvent};
use serde_json::{Value, json};

use crate::support::{now, validator};

/// A valid set of properties for each catalog event, with every optional property.
fn valid_properties(kind: Kind) -> Value {
    match kind {
        Kind::SessionStart => json!({
            "session_id": "s-1", "customer_id": "c-1", "channel": "web",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        }),
        Kind::SessionMessage => {
            json!({"session_id": "s-1", "response_time_ms": 1523.5, "tokens": 87})
        }
        Kind::SessionEscalate => json!({"session_id": "s-1", "reason": "客户要求人工"}),
        Kind::SessionEnd => json!({"session_id": "s-1", "duration_seconds": 312}),
        Kind::QueryOrder => json!({"session_id": "s-1", "order_id": "o-77", "success": true}),
        Kind::QueryTracking => {
            json!({"session_id": "s-1", "tracking_number": "SF123", "success": false})
        }
        Kind::AgentLogin => json!({"agent_id": "a-1"}),
        Kind::AgentLogout => json!({"agent_id": "a-1", "online_duration_seconds": 28800}),
        Kind::AgentStatusChange => json!({"agent_id": "a-1", "from": "online", "to": "busy"}),
        Kind::AgentSessionTakeover => {
            json!({"agent_id": "a-1", "session_id": "s-1", "wait_duration_seconds": 12.5})
        }
        Kind::AgentSessionMessage => json!({"agent_id": "a-1", "session_id": "s-1"}),
        Kind::AgentSessionRelease => {
            json!({"agent_id": "a-1", "session_id": "s-1", "handle_duration_seconds": 480})
        }
        Kind::AgentSessionTransfer => {
            json!({"agent_id": "a-1", "session_id": "s-1", "to_agent_id": "a-2"})
        }
        Kind::TicketCreated => json!({"ticket_id": "t-1", "source": "email", "priority": "high"}),
        Kind::TicketAssigned => json!({"ticket_id": "t-1", "agent_id": "a-1"}),
        Kind::TicketStatusChanged => json!({"ticket_id": "t-1", "from": "open", "to": "pending"}),
        Kind::TicketClosed => {
            json!({"ticket_id": "t-1", "resolution_duration_hours": 4.25, "sla_met": true})
        }
    }
}

/// An invalid variant of each event, with the property and the rule it breaks.
fn invalid_properties(kind: Kind) -> (Value, &'static str, Rule) {
    let wrong = |expected, found| Rule::WrongType { expected, found };
    match kind {
        Kind::SessionStart => (json!({"customer_id": "c-1"}), "session_id", Rule::Missing),
        Kind::SessionMessage => (
            json!({"session_id": "s-1", "response_time_ms": -3}),
            "response_time_ms",
            Rule::Negative { found: -3.0 },
        ),
        Kind::SessionEscalate => (
            json!({"session_id": "s-1", "reason": "x".repeat(1025)}),
            "reason",
            Rule::TooLong {
                max: 1024,
                found: 1025,
            },
        ),
        Kind::SessionEnd => (
            json!({"session_id": "s-1", "duration_seconds": "300"}),
            "duration_seconds",
            wrong("a number", "a string"),
        ),
        Kind::QueryOrder => (
            json!({"order_id": "o-1", "success": "yes"}),
            "success",
            wrong("a boolean", "a string"),
        ),
        Kind::QueryTracking => (
            json!({"tracking_number": ""}),
            "tracking_number",
            Rule::Empty,
        ),
        Kind::AgentLogin => (
            json!({"agent_id": 42}),
            "agent_id",
            wrong("a string", "a number"),
        ),
        Kind::AgentLogout => (json!({}), "agent_id", Rule::Missing),
        Kind::AgentStatusChange => (
            json!({"agent_id": "a-1", "to": "idle"}),
            "to",
            Rule::NotOneOf {
                allowed: "online, busy, away, offline",
                found: "idle".into(),
            },
        ),
        Kind::AgentSessionTakeover => (
            json!({"agent_id": "a-1", "session_id": "s-1"}),
            "wait_duration_seconds",
            Rule::Missing,
        ),
        Kind::AgentSessionMessage => (
            json!({"agent_id": "a-1", "session_id": "s".repeat(129)}),
            "session_id",
            Rule::TooLong {
                max: 128,
                found: 129,
            },
        ),
        Kind::AgentSessionRelease => (
            json!({"agent_id": "a-1", "session_id": "s-1", "handle_duration_seconds": 2e9}),
            "handle_duration_seconds",
            Rule::TooLarge {
                max: 1e9,
                found: 2e9,
            },
        ),
        Kind::AgentSessionTransfer => (
            json!({"agent_id": "a-1", "session_id": "s-1", "to_agent_id": null}),
            "to_agent_id",
            Rule::Missing,
        ),
        Kind::TicketCreated => (
            json!({"ticket_id": "t-1", "priority": ["high"]}),
            "priority",
            wrong("a string", "an array"),
        ),
        Kind::TicketAssigned => (json!({"agent_id": "a-1"}), "ticket_id", Rule::Missing),
        Kind::TicketStatusChanged => (json!({"ticket_id": "t-1"}), "to", Rule::Missing),
        Kind::TicketClosed => (
            json!({"ticket_id": "t-1", "resolution_duration_hours": 4, "sla_met": 1}),
            "sla_met",
            wrong("a boolean", "a number"),
        ),
    }
}

fn validate(name: &str, properties: Value) -> Result<Event, ValidationError> {
    validator().raw(RawEvent::new(name, properties))
}

#[test]
fn the_catalog_has_the_seventeen_events_of_the_spec() {
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "session.start",
            "session.message",
            "session.escalate",
            "session.end",
            "query.order",
            "query.tracking",
            "agent.login",
            "agent.logout",
            "agent.status_change",
            "agent.session_takeover",
            "agent.session_message",
            "agent.session_release",
            "agent.session_transfer",
            "ticket.created",
            "ticket.assigned",
            "ticket.status_changed",
            "ticket.closed",
        ]
    );
    for kind in Kind::ALL {
        let expected =
            if kind.as_str().starts_with("session.") || kind.as_str().starts_with("query.") {
                Product::AiChatbot
            } else {
                Product::AgentWorkbench
            };
        assert_eq!(kind.product(), expected, "{kind}");
        assert_eq!(Kind::from_name(kind.as_str()), Some(*kind));
    }
}

#[test]
fn every_catalog_event_accepts_a_valid_event() {
    for kind in Kind::ALL {
        let props = valid_properties(*kind);
        let event = validate(kind.as_str(), props.clone())
            .unwrap_or_else(|e| panic!("{kind} should be valid: {e}"));
        assert_eq!(event.kind(), Some(*kind));
        assert_eq!(event.name(), kind.as_str());
        assert_eq!(event.product(), Some(kind.product()));
        assert_eq!(
            event.timestamp(),
            now(),
            "stamped with the validator's clock"
        );
        assert_eq!(
            Value::Object(event.properties()),
            props,
            "{kind} keeps its properties"
        );
        assert!(event.extra_properties().is_empty());
        // Every property the example gives is one the catalog names.
        let known = kind.properties();
        for name in props.as_object().unwrap().keys() {
            assert!(known.contains(&name.as_str()), "{kind}: {name}");
        }
    }
}

#[test]
fn every_catalog_event_rejects_an_invalid_event_naming_property_and_rule() {
    for kind in Kind::ALL {
        let (props, property, rule) = invalid_properties(*kind);
        let error = validate(kind.as_str(), props).expect_err(kind.as_str());
        assert_eq!(error.event, kind.as_str());
        assert_eq!(
            error.location,
            Location::Property(property.to_owned()),
            "{kind}"
        );
        assert_eq!(error.rule, rule, "{kind}");
        let message = error.to_string();
        assert!(message.contains(kind.as_str()), "{message}");
        assert!(message.contains(property), "{message}");
    }
}

#[test]
fn error_messages_name_the_event_the_property_and_the_rule() {
    let error = validate(
        "session.message",
        json!({"session_id": "s-1", "response_time_ms": -3}),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "event \"session.message\": property `response_time_ms` must be at least 0 (got -3)"
    );
    let error = validate("agent.login", json!({})).unwrap_err();
    assert_eq!(
        error.to_string(),
        "event \"agent.login\": property `agent_id` is required"
    );
}

#[test]
fn str_properties_take_one_to_128_characters_counted_as_characters() {
    let ok = |id: String| validate("agent.login", json!({ "agent_id": id }));
    assert!(ok("a".into()).is_ok());
    assert!(
        ok("坐".repeat(128)).is_ok(),
        "128 characters of 3 bytes each"
    );
    assert_eq!(
        ok("坐".repeat(129)).unwrap_err().rule,
        Rule::TooLong {
            max: 128,
            found: 129
        }
    );
    assert_eq!(ok(String::new()).unwrap_err().rule, Rule::Empty);
}

#[test]
fn text_properties_may_be_empty_and_take_up_to_1024_characters() {
    let ok = |reason: String| {
        validate(
            "session.escalate",
            json!({ "session_id": "s-1", "reason": reason }),
        )
    };
    assert!(ok(String::new()).is_ok());
    assert!(ok("客".repeat(1024)).is_ok());
    assert!(ok("客".repeat(1025)).is_err());
}

#[test]
fn num_properties_are_finite_non_negative_and_bounded() {
    let takeover = |wait: Value| {
        validate(
            "agent.session_takeover",
            json!({"agent_id": "a", "session_id": "s", "wait_duration_seconds": wait}),
        )
    };
    assert!(takeover(json!(0)).is_ok());
    assert!(takeover(json!(0.001)).is_ok());
    assert!(takeover(json!(1e9)).is_ok());
    assert!(matches!(
        takeover(json!(-0.5)).unwrap_err().rule,
        Rule::Negative { .. }
    ));
    assert!(matches!(
        takeover(json!(1.5e9)).unwrap_err().rule,
        Rule::TooLarge { .. }
    ));
    assert!(matches!(
        takeover(json!(null)).unwrap_err().rule,
        Rule::Missing
    ));
    assert!(matches!(
        takeover(json!(true)).unwrap_err().rule,
        Rule::WrongType { .. }
    ));

    // JSON cannot carry NaN or infinity; the typed API can, and is checked too.
    for bad in [f64::NAN, f64::INFINITY] {
        let error = validator()
            .typed(EventData::AgentSessionTakeover {
                agent_id: "a".into(),
                session_id: "s".into(),
                wait_duration_seconds: bad,
            })
            .unwrap_err();
        assert_eq!(error.rule, Rule::NotFinite);
        assert_eq!(
            error.location,
            Location::Property("wait_duration_seconds".into())
        );
    }
}

#[test]
fn int_properties_are_whole_and_non_negative() {
    let message = |tokens: Value| {
        validate(
            "session.message",
            json!({"session_id": "s", "response_time_ms": 10, "tokens": tokens}),
        )
    };
    assert!(message(json!(0)).is_ok());
    assert!(message(json!(u64::MAX)).is_ok());
    let whole_float = message(json!(3.0)).unwrap();
    assert_eq!(
        whole_float.data(),
        Some(&EventData::SessionMessage {
            session_id: "s".into(),
            response_time_ms: 10.0,
            tokens: Some(3)
        })
    );
    assert!(matches!(
        message(json!(-1)).unwrap_err().rule,
        Rule::Negative { .. }
    ));
    assert!(matches!(
        message(json!(2.5)).unwrap_err().rule,
        Rule::NotWhole { .. }
    ));
    assert!(matches!(
        message(json!("7")).unwrap_err().rule,
        Rule::WrongType { .. }
    ));
}

#[test]
fn optional_properties_may_be_null_or_absent() {
    let event = validate(
        "session.start",
        json!({"session_id": "s-1", "customer_id": null}),
    )
    .unwrap();
    assert_eq!(
        event.properties(),
        json!({"session_id": "s-1"}).as_object().unwrap().clone()
    );
}

#[test]
fn properties_the_catalog_does_not_name_are_kept_as_they_are() {
    let event = validate(
        "ticket.created",
        json!({"ticket_id": "t-1", "tags": ["refund", "vip"], "nested": {"a": 1}}),
    )
    .unwrap();
    assert_eq!(
        Value::Object(event.extra_properties().clone()),
        json!({"tags": ["refund", "vip"], "nested": {"a": 1}})
    );
    assert_eq!(
        Value::Object(event.properties()),
        json!({"ticket_id": "t-1", "tags": ["refund", "vip"], "nested": {"a": 1}})
    );
}

#[test]
fn the_typed_and_the_dynamic_way_give_the_same_event() {
    for kind in Kind::ALL {
        let dynamic = validate(kind.as_str(), valid_properties(*kind)).unwrap();
        let typed = validator()
            .typed(TypedEvent {
                event_id: Some(dynamic.id()),
                timestamp: None,
                data: dynamic.data().unwrap().clone(),
            })
            .unwrap();
        assert_eq!(typed, dynamic, "{kind}");
    }
}

#[test]
fn the_typed_way_checks_the_same_rules() {
    let error = validator()
        .typed(EventData::AgentStatusChange {
            agent_id: String::new(),
            to: AgentStatus::Away,
            from: None,
        })
        .unwrap_err();
    assert_eq!(error.event, "agent.status_change");
    assert_eq!(error.location, Location::Property("agent_id".into()));
    assert_eq!(error.rule, Rule::Empty);

    let error = validator()
        .typed(EventData::SessionStart {
            session_id: "s".into(),
            customer_id: None,
            channel: None,
            user_agent: Some("u".repeat(1025)),
        })
        .unwrap_err();
    assert_eq!(error.location, Location::Property("user_agent".into()));
}

#[test]
fn events_round_trip_through_their_stored_json() {
    for kind in Kind::ALL {
        let mut props = valid_properties(*kind);
        props["extra"] = json!({"kept": true});
        let event = validate(kind.as_str(), props).unwrap();
        let direct: Value = serde_json::from_str(&event.properties_json()).unwrap();
        assert_eq!(direct, Value::Object(event.properties()), "{kind}");
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], kind.as_str());
        assert_eq!(json["product"], kind.product().as_str());
        assert_eq!(json["event_id"], event.id().to_string());
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event, "{kind}");
    }
}

#[test]
fn ids_accessors_follow_the_catalog() {
    let takeover = validate(
        "agent.session_takeover",
        json!({"agent_id": "a-9", "session_id": "s-9", "wait_duration_seconds": 1}),
    )
    .unwrap();
    assert_eq!(takeover.agent_id(), Some("a-9"));
    assert_eq!(takeover.session_id(), Some("s-9"));
    assert_eq!(takeover.ticket_id(), None);
    let assigned = validate(
        "ticket.assigned",
        json!({"ticket_id": "t-1", "agent_id": "a-1"}),
    )
    .unwrap();
    assert_eq!(
        (assigned.ticket_id(), assigned.agent_id()),
        (Some("t-1"), Some("a-1"))
    );
    let order = validate("query.order", json!({})).unwrap();
    assert_eq!(order.session_id(), None);
}
