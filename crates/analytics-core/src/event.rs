//! The event envelope of SPEC §3 and its validation.
//!
//! Two ways in, one way out: products build an [`EventData`] (typed) and HTTP ingest
//! reads a [`RawEvent`] from JSON (dynamic); the [`Validator`] turns either into an
//! [`Event`], which cannot be invalid: its fields are private and only validation (or
//! [`Event::restore`], for events read back from storage) constructs one.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::catalog::{EventData, Kind, MAX_STR_CHARS, Product};
use crate::error::{Location, Rule, ValidationError};

/// The most bytes the `properties` object may take, serialized (SPEC §3).
pub const MAX_PROPERTIES_BYTES: usize = 32 * 1024;

/// How far in the future a timestamp may be (SPEC §3).
pub const MAX_FUTURE_SKEW: TimeDelta = TimeDelta::minutes(5);

/// The prefix of custom event names.
pub const CUSTOM_PREFIX: &str = "custom.";

/// The legacy name of `session.message` (first seed).
pub const LEGACY_MESSAGE_AI: &str = "message.ai";

/// What an event name means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// A catalog event; `alias` is true when it was given by its legacy name.
    Catalog {
        /// The event.
        kind: Kind,
        /// Whether the legacy alias `message.ai` was used.
        alias: bool,
    },
    /// A `custom.` event.
    Custom,
}

/// Reads an event name: a catalog name, the legacy alias, or a `custom.` name.
///
/// # Errors
///
/// [`Rule::UnknownEvent`] for any other name, [`Rule::BadCustomName`] for a `custom.`
/// name with characters or a length that are not allowed.
pub fn resolve_name(name: &str) -> Result<Name, Rule> {
    if let Some(kind) = Kind::from_name(name) {
        return Ok(Name::Catalog { kind, alias: false });
    }
    if name == LEGACY_MESSAGE_AI {
        return Ok(Name::Catalog {
            kind: Kind::SessionMessage,
            alias: true,
        });
    }
    if let Some(rest) = name.strip_prefix(CUSTOM_PREFIX) {
        let valid = !rest.is_empty()
            && name.len() <= MAX_STR_CHARS
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        return if valid {
            Ok(Name::Custom)
        } else {
            Err(Rule::BadCustomName)
        };
    }
    Err(Rule::UnknownEvent)
}

/// Where "now" comes from. Tests inject a [`FixedClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that says what it is told, for tests.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    /// A clock stopped at `now`.
    pub fn new(now: DateTime<Utc>) -> FixedClock {
        FixedClock(Mutex::new(now))
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An event as received, before any check of the catalog: the dynamic way in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvent {
    /// The idempotency key; generated when absent.
    #[serde(default)]
    pub event_id: Option<Uuid>,
    /// The event name.
    pub event: String,
    /// The product; defaults to the catalog's.
    #[serde(default)]
    pub product: Option<String>,
    /// When it happened; defaults to when it was received.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    /// The properties: a JSON object (or null for none).
    #[serde(default)]
    pub properties: Value,
}

impl RawEvent {
    /// An event with this name and properties, stamped on validation.
    pub fn new(event: impl Into<String>, properties: Value) -> RawEvent {
        RawEvent {
            event_id: None,
            event: event.into(),
            product: None,
            timestamp: None,
            properties,
        }
    }

    /// Reads one envelope of an HTTP batch, naming the field at fault when it is wrong.
    ///
    /// # Errors
    ///
    /// A [`ValidationError`] for a value that is not an object, a missing or non-string
    /// `event`, an `event_id` that is not a UUID, a `timestamp` that is not RFC 3339,
    /// `properties` that are not an object, or a field §3 does not define.
    pub fn from_json(value: Value) -> Result<RawEvent, ValidationError> {
        const MISSING: &str = "<missing>";
        let Value::Object(mut fields) = value else {
            return Err(ValidationError::new(
                MISSING,
                Location::Envelope,
                Rule::WrongType {
                    expected: "a JSON object",
                    found: "another JSON value",
                },
            ));
        };
        let event = match fields.remove("event") {
            Some(Value::String(name)) => name,
            None | Some(Value::Null) => {
                return Err(ValidationError::new(
                    MISSING,
                    Location::field("event"),
                    Rule::Missing,
                ));
            }
            Some(_) => {
                return Err(ValidationError::new(
                    MISSING,
                    Location::field("event"),
                    Rule::WrongType {
                        expected: "a string",
                        found: "another JSON value",
                    },
                ));
            }
        };
        let err = |field: &'static str, rule: Rule| {
            ValidationError::new(&event, Location::field(field), rule)
        };
        let string_field =
            |fields: &mut Map<String, Value>, field: &'static str| match fields.remove(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(err(
                    field,
                    Rule::WrongType {
                        expected: "a string",
                        found: "another JSON value",
                    },
                )),
            };
        let event_id = string_field(&mut fields, "event_id")?
            .map(|id| Uuid::try_parse(&id).map_err(|_| err("event_id", Rule::NotUuid)))
            .transpose()?;
        let product = string_field(&mut fields, "product")?;
        let timestamp = string_field(&mut fields, "timestamp")?
            .map(|ts| {
                DateTime::parse_from_rfc3339(&ts)
                    .map(|ts| ts.to_utc())
                    .map_err(|_| err("timestamp", Rule::NotRfc3339))
            })
            .transpose()?;
        let properties = match fields.remove("properties") {
            None | Some(Value::Null) => Value::Null,
            Some(object @ Value::Object(_)) => object,
            Some(_) => {
                return Err(err(
                    "properties",
                    Rule::WrongType {
                        expected: "a JSON object",
                        found: "another JSON value",
                    },
                ));
            }
        };
        if let Some(field) = fields.keys().next() {
            return Err(ValidationError::new(
                &event,
                Location::Field(field.chars().take(MAX_STR_CHARS).collect()),
                Rule::UnknownField,
            ));
        }
        Ok(RawEvent {
            event_id,
            event,
            product,
            timestamp,
            properties,
        })
    }
}

/// A typed event with optional envelope fields: the typed way in.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedEvent {
    /// The idempotency key; generated when absent.
    pub event_id: Option<Uuid>,
    /// When it happened; defaults to when it was validated.
    pub timestamp: Option<DateTime<Utc>>,
    /// The event and its properties.
    pub data: EventData,
}

impl From<EventData> for TypedEvent {
    fn from(data: EventData) -> TypedEvent {
        TypedEvent {
            event_id: None,
            timestamp: None,
            data,
        }
    }
}

/// A valid event: in the catalog (or `custom.`), with a known product, an id and a
/// timestamp. Only the [`Validator`] and [`Event::restore`] make one.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    id: Uuid,
    timestamp: DateTime<Utc>,
    product: Option<Product>,
    body: Body,
    /// Properties the catalog does not name, kept as given.
    extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
enum Body {
    Catalog(EventData),
    Custom(String),
}

impl Event {
    /// The idempotency key.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// When it happened, to the microsecond.
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }

    /// The product that recorded it; `None` only for a custom event sent without one.
    pub fn product(&self) -> Option<Product> {
        self.product
    }

    /// The stored name: the catalog name (never the legacy alias) or the `custom.` name.
    pub fn name(&self) -> &str {
        match &self.body {
            Body::Catalog(data) => data.kind().as_str(),
            Body::Custom(name) => name,
        }
    }

    /// The catalog event, or `None` for a custom event.
    pub fn kind(&self) -> Option<Kind> {
        self.data().map(EventData::kind)
    }

    /// The typed properties of a catalog event.
    pub fn data(&self) -> Option<&EventData> {
        match &self.body {
            Body::Catalog(data) => Some(data),
            Body::Custom(_) => None,
        }
    }

    /// The properties the catalog does not name (all of them for a custom event).
    pub fn extra_properties(&self) -> &Map<String, Value> {
        &self.extra
    }

    /// All properties, as they are stored.
    pub fn properties(&self) -> Map<String, Value> {
        let mut props = self.extra.clone();
        if let Body::Catalog(data) = &self.body {
            data.write(&mut props);
        }
        props
    }

    /// All properties as a JSON object, serialized without building a map: what stores
    /// write.
    pub fn properties_json(&self) -> String {
        // Serializing strings, numbers and a `Map` into a `String` cannot fail.
        serde_json::to_string(&Properties(self)).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The session this event names, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.data().and_then(EventData::session_id)
    }

    /// The agent this event names, if any.
    pub fn agent_id(&self) -> Option<&str> {
        self.data().and_then(EventData::agent_id)
    }

    /// The ticket this event names, if any.
    pub fn ticket_id(&self) -> Option<&str> {
        self.data().and_then(EventData::ticket_id)
    }

    /// Rebuilds an event read back from storage or the spill buffer: the catalog rules
    /// apply, the timestamp window does not (the event was accepted when it arrived).
    ///
    /// # Errors
    ///
    /// A [`ValidationError`] when the stored event has no id or timestamp, or no longer
    /// fits the catalog.
    pub fn restore(raw: RawEvent) -> Result<Event, ValidationError> {
        let missing =
            |field| ValidationError::new(&raw.event, Location::field(field), Rule::Missing);
        let id = raw.event_id.ok_or_else(|| missing("event_id"))?;
        let timestamp = raw.timestamp.ok_or_else(|| missing("timestamp"))?;
        build(
            id,
            timestamp,
            raw.event,
            raw.product.as_deref(),
            raw.properties,
        )
    }
}

/// The properties of an event, for serialization.
struct Properties<'a>(&'a Event);

impl Serialize for Properties<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        if let Body::Catalog(data) = &self.0.body {
            data.serialize_entries(&mut map)?;
        }
        for (key, value) in &self.0.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut envelope = serializer.serialize_struct("Event", 5)?;
        envelope.serialize_field("event_id", &self.id)?;
        envelope.serialize_field("event", self.name())?;
        match self.product {
            Some(product) => envelope.serialize_field("product", &product)?,
            None => envelope.skip_field("product")?,
        }
        envelope.serialize_field(
            "timestamp",
            &self.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        )?;
        envelope.serialize_field("properties", &Properties(self))?;
        envelope.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Event, D::Error> {
        let raw = RawEvent::deserialize(deserializer)?;
        Event::restore(raw).map_err(serde::de::Error::custom)
    }
}

/// The rules of the envelope that depend on configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationRules {
    /// Events older than this many days are rejected (SPEC §3, default 90).
    pub retention_days: u32,
}

impl Default for ValidationRules {
    fn default() -> ValidationRules {
        ValidationRules { retention_days: 90 }
    }
}

/// Turns what products and HTTP clients send into [`Event`]s.
#[derive(Debug, Clone)]
pub struct Validator {
    rules: ValidationRules,
    clock: Arc<dyn Clock>,
}

impl Validator {
    /// A validator that reads "now" from `clock`.
    pub fn new(rules: ValidationRules, clock: Arc<dyn Clock>) -> Validator {
        Validator { rules, clock }
    }

    /// The clock this validator reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Validates a typed event: the hot path of `track()`.
    ///
    /// # Errors
    ///
    /// A [`ValidationError`] naming the property and the rule it broke, or the
    /// timestamp outside the accepted window.
    pub fn typed(&self, event: impl Into<TypedEvent>) -> Result<Event, ValidationError> {
        let TypedEvent {
            event_id,
            timestamp,
            data,
        } = event.into();
        let kind = data.kind();
        data.check().map_err(|(property, rule)| {
            ValidationError::new(kind.as_str(), Location::Property(property.to_owned()), rule)
        })?;
        let timestamp = self.check_time(kind.as_str(), timestamp)?;
        Ok(Event {
            id: event_id.unwrap_or_else(Uuid::now_v7),
            timestamp,
            product: Some(kind.product()),
            body: Body::Catalog(data),
            extra: Map::new(),
        })
    }

    /// Validates an event given by name and JSON properties: the HTTP path.
    ///
    /// # Errors
    ///
    /// A [`ValidationError`] naming the event, the property or envelope field, and the
    /// rule it broke.
    pub fn raw(&self, raw: RawEvent) -> Result<Event, ValidationError> {
        let timestamp = self.check_time(&raw.event, raw.timestamp)?;
        let size = serialized_len(&raw.properties);
        if size > MAX_PROPERTIES_BYTES {
            return Err(ValidationError::new(
                &raw.event,
                Location::field("properties"),
                Rule::TooBig {
                    max: MAX_PROPERTIES_BYTES,
                    found: size,
                },
            ));
        }
        build(
            raw.event_id.unwrap_or_else(Uuid::now_v7),
            timestamp,
            raw.event,
            raw.product.as_deref(),
            raw.properties,
        )
    }

    /// Checks the timestamp window, or stamps "now"; truncates to microseconds, the
    /// precision every store keeps. A leap second (`23:59:60`, which RFC 3339 allows)
    /// is read as the first instant after it, as PostgreSQL reads it: one instant on
    /// every side — the day it is counted on in the counters, and the day it is stored
    /// and summed on.
    fn check_time(
        &self,
        event: &str,
        timestamp: Option<DateTime<Utc>>,
    ) -> Result<DateTime<Utc>, ValidationError> {
        let timestamp = timestamp.map(past_leap_second);
        let now = self.clock.now();
        let timestamp = match timestamp {
            None => now,
            Some(ts) if ts > now + MAX_FUTURE_SKEW => {
                return Err(ValidationError::new(
                    event,
                    Location::field("timestamp"),
                    Rule::InFuture {
                        max_skew_seconds: MAX_FUTURE_SKEW.num_seconds(),
                    },
                ));
            }
            Some(ts) if ts < now - TimeDelta::days(i64::from(self.rules.retention_days)) => {
                return Err(ValidationError::new(
                    event,
                    Location::field("timestamp"),
                    Rule::TooOld {
                        retention_days: self.rules.retention_days,
                    },
                ));
            }
            Some(ts) => ts,
        };
        Ok(truncate_to_micros(timestamp))
    }
}

fn past_leap_second(ts: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = ts.timestamp_subsec_nanos();
    if nanos < 1_000_000_000 {
        return ts;
    }
    DateTime::from_timestamp(ts.timestamp() + 1, nanos - 1_000_000_000).unwrap_or(ts)
}

fn truncate_to_micros(ts: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = ts.timestamp_subsec_nanos();
    ts - TimeDelta::nanoseconds(i64::from(nanos % 1_000))
}

/// The checks shared by [`Validator::raw`] and [`Event::restore`]: name, product,
/// properties.
fn build(
    id: Uuid,
    timestamp: DateTime<Utc>,
    name: String,
    product: Option<&str>,
    properties: Value,
) -> Result<Event, ValidationError> {
    let err = |location, rule| ValidationError::new(&name, location, rule);
    let resolved = resolve_name(&name).map_err(|rule| err(Location::field("event"), rule))?;
    let product = match product {
        None => None,
        Some(given) => Some(Product::from_name(given).ok_or_else(|| {
            err(
                Location::field("product"),
                Rule::NotOneOf {
                    allowed: "ai_chatbot, agent_workbench",
                    found: given.chars().take(MAX_STR_CHARS).collect(),
                },
            )
        })?),
    };
    let mut props = match properties {
        Value::Object(props) => props,
        Value::Null => Map::new(),
        _ => {
            return Err(err(
                Location::field("properties"),
                Rule::WrongType {
                    expected: "a JSON object",
                    found: "another JSON value",
                },
            ));
        }
    };
    if let Some(path) = nul_in(&props) {
        return Err(err(Location::Property(path), Rule::NulCharacter));
    }
    let (body, product) = match resolved {
        Name::Custom => (Body::Custom(name), product),
        Name::Catalog { kind, alias } => {
            if let Some(given) = product.filter(|given| *given != kind.product()) {
                return Err(err(
                    Location::field("product"),
                    Rule::ProductMismatch {
                        expected: kind.product(),
                        found: given.as_str().to_owned(),
                    },
                ));
            }
            let mut renamed = false;
            if alias
                && !props.contains_key("response_time_ms")
                && let Some(ms) = props.remove("response_time")
            {
                props.insert("response_time_ms".to_owned(), ms);
                renamed = true;
            }
            let data = EventData::take(kind, &mut props).map_err(|(property, rule)| {
                // Named as it was sent.
                let property = if renamed && property == "response_time_ms" {
                    "response_time"
                } else {
                    property
                };
                err(Location::Property(property.to_owned()), rule)
            })?;
            (Body::Catalog(data), Some(kind.product()))
        }
    };
    Ok(Event {
        id,
        timestamp,
        product,
        body,
        extra: props,
    })
}

/// The path (`a.b[2]`) of the first key or string under these properties that holds a
/// NUL character, if any: no store keeps one (PostgreSQL rejects it in `jsonb`), so it
/// is refused at validation, on every backend alike.
fn nul_in(props: &Map<String, Value>) -> Option<String> {
    fn walk(value: &Value, path: &mut String) -> bool {
        match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(key, item)| {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                let found = key.contains('\0') || walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    props.iter().find_map(|(key, value)| {
        let mut path = key.clone();
        (key.contains('\0') || walk(value, &mut path)).then(|| path.replace('\0', "\\0"))
    })
}

/// The length of `value` serialized as compact JSON, without building the string.
fn serialized_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` to an infallible writer cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}
