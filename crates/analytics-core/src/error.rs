//! The errors of the domain: rejected events, bad configuration, bad query input, and
//! the storage failures adapters report through the storage traits.

use std::fmt;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the domain layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event broke a rule of the catalog or the envelope.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// A configuration value is missing or malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A query argument (a month, a date, a range) is malformed.
    #[error("invalid {what} {input:?}: {expected}")]
    InvalidInput {
        /// What was being read, e.g. `month`.
        what: &'static str,
        /// What was given, cut to a readable length.
        input: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A storage backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    pub(crate) fn invalid_input(
        what: &'static str,
        input: &str,
        expected: impl Into<String>,
    ) -> Error {
        Error::InvalidInput {
            what,
            input: input.chars().take(64).collect(),
            expected: expected.into(),
        }
    }
}

/// Which part of an event a rejection is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// The event as a whole (for example, it is not a JSON object).
    Envelope,
    /// An envelope field: `event_id`, `event`, `product`, `timestamp` or `properties`.
    Field(String),
    /// A property inside `properties`.
    Property(String),
}

/// The rule an event broke.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Rule {
    /// A required value is absent or null.
    Missing,
    /// The value has the wrong JSON type.
    WrongType {
        /// What was expected, e.g. `a string`.
        expected: &'static str,
        /// What was found, e.g. `a number`.
        found: &'static str,
    },
    /// An identifier is the empty string.
    Empty,
    /// A string holds a NUL character (U+0000), which PostgreSQL cannot store.
    NulCharacter,
    /// A string is longer than allowed.
    TooLong {
        /// The most characters allowed.
        max: usize,
        /// How many characters it had.
        found: usize,
    },
    /// A number is below zero.
    Negative {
        /// The value.
        found: f64,
    },
    /// A number is not finite.
    NotFinite,
    /// An `int` property is a number with a fraction, or beyond the largest whole
    /// number kept (2⁶⁴ − 1).
    NotWhole {
        /// The number as it was sent.
        found: String,
    },
    /// A number is above the largest value accepted.
    TooLarge {
        /// The largest value accepted.
        max: f64,
        /// The value.
        found: f64,
    },
    /// A value is not one of a fixed set.
    NotOneOf {
        /// The accepted values, comma-separated.
        allowed: &'static str,
        /// The value given.
        found: String,
    },
    /// The event name is neither in the catalog nor a `custom.` name.
    UnknownEvent,
    /// A `custom.` name has characters or a length that are not allowed.
    BadCustomName,
    /// The product contradicts the catalog.
    ProductMismatch {
        /// The catalog's product for the event.
        expected: crate::catalog::Product,
        /// The product given.
        found: String,
    },
    /// The timestamp is not RFC 3339.
    NotRfc3339,
    /// The timestamp is too far in the future.
    InFuture {
        /// The tolerance, in seconds.
        max_skew_seconds: i64,
    },
    /// The timestamp is older than the retention window.
    TooOld {
        /// The retention window, in days.
        retention_days: u32,
    },
    /// `event_id` is not a UUID.
    NotUuid,
    /// The serialized properties are larger than allowed.
    TooBig {
        /// The most bytes allowed.
        max: usize,
        /// The size found.
        found: usize,
    },
    /// The envelope has a field SPEC §3 does not define.
    UnknownField,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Missing => f.write_str("is required"),
            Rule::WrongType { expected, found } => write!(f, "must be {expected}, not {found}"),
            Rule::Empty => f.write_str("must not be empty"),
            Rule::NulCharacter => {
                f.write_str("must not contain the NUL character (U+0000), which cannot be stored")
            }
            Rule::TooLong { max, found } => {
                write!(f, "must be at most {max} characters long (it has {found})")
            }
            Rule::Negative { found } => write!(f, "must be at least 0 (got {found})"),
            Rule::NotFinite => f.write_str("must be a finite number"),
            Rule::NotWhole { found } => write!(
                f,
                "must be a whole number from 0 to {} (got {found})",
                u64::MAX
            ),
            Rule::TooLarge { max, found } => write!(f, "must be at most {max} (got {found})"),
            Rule::NotOneOf { allowed, found } => {
                write!(f, "must be one of {allowed} (got {found:?})")
            }
            Rule::UnknownEvent => f.write_str(
                "is not in the event catalog (custom events are named `custom.<name>`)",
            ),
            Rule::BadCustomName => f.write_str(
                "is not a valid custom event name: `custom.` followed by letters, digits, \
                 `_`, `-` or `.`, at most 128 characters in all",
            ),
            Rule::ProductMismatch { expected, found } => {
                write!(f, "must be {expected} for this event (got {found:?})")
            }
            Rule::NotRfc3339 => f.write_str(
                "must be an RFC 3339 timestamp with an offset, such as 2025-12-01T10:00:00+08:00",
            ),
            Rule::InFuture { max_skew_seconds } => write!(
                f,
                "is more than {} minutes in the future",
                max_skew_seconds / 60
            ),
            Rule::TooOld { retention_days } => {
                write!(f, "is older than the {retention_days}-day retention window")
            }
            Rule::NotUuid => f.write_str("must be a UUID such as 0193a6e2-7c1e-7b4a-9f00-5d2c8a1e0b11"),
            Rule::TooBig { max, found } => write!(
                f,
                "must be at most {max} bytes when serialized (it is {found} bytes)"
            ),
            Rule::UnknownField => f.write_str(
                "is not an envelope field (expected event_id, event, product, timestamp, properties)",
            ),
        }
    }
}

/// An event that broke a rule: names the event, the property (or envelope field) and
/// the rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ValidationError {
    /// The event name as given (or `<missing>`), cut to a readable length.
    pub event: String,
    /// Which part of the event is wrong.
    pub location: Location,
    /// The rule it broke.
    pub rule: Rule,
}

impl ValidationError {
    pub(crate) fn new(event: &str, location: Location, rule: Rule) -> ValidationError {
        ValidationError {
            event: event.chars().take(crate::limits::MAX_STR_CHARS).collect(),
            location,
            rule,
        }
    }

    /// The property or envelope field at fault, if any.
    pub fn property(&self) -> Option<&str> {
        match &self.location {
            Location::Envelope => None,
            Location::Field(name) => Some(name),
            Location::Property(name) => Some(name),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event {:?}: ", self.event)?;
        match &self.location {
            Location::Envelope => write!(f, "the event {}", self.rule),
            Location::Field(name) => write!(f, "field `{name}` {}", self.rule),
            Location::Property(name) => write!(f, "property `{name}` {}", self.rule),
        }
    }
}

/// A configuration variable with a bad value.
///
/// The message never repeats the value of a secret variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    /// The environment variable (or flag) at fault.
    pub variable: &'static str,
    /// What is wrong and what would be accepted.
    pub message: String,
}

/// How a storage failure should be handled by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The backend could not be reached or timed out: retrying later may succeed.
    Unavailable,
    /// The backend refused the request or answered something unexpected.
    Failed,
    /// The request lost a race with a concurrent one (a deadlock or a serialization
    /// failure): the backend is healthy and retrying at once will succeed.
    Contention,
}

/// A failure reported by a storage backend.
#[derive(Debug, thiserror::Error)]
#[error("{backend} {}", match .kind {
    StoreErrorKind::Unavailable => "is unavailable",
    StoreErrorKind::Failed => "failed",
    StoreErrorKind::Contention => "lost a race with a concurrent write",
})]
pub struct StoreError {
    /// The backend, e.g. `postgres` or `redis`.
    pub backend: &'static str,
    /// Whether a retry may help.
    pub kind: StoreErrorKind,
    /// The backend's own error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    /// A failure that a retry may cure.
    pub fn unavailable(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError {
            backend,
            kind: StoreErrorKind::Unavailable,
            source: source.into(),
        }
    }

    /// A race lost to a concurrent request: retry at once.
    pub fn contention(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError {
            backend,
            kind: StoreErrorKind::Contention,
            source: source.into(),
        }
    }

    /// A failure that a retry will not cure.
    pub fn failed(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError {
            backend,
            kind: StoreErrorKind::Failed,
            source: source.into(),
        }
    }
}

impl Location {
    pub(crate) fn field(name: &str) -> Location {
        Location::Field(name.to_owned())
    }
}
