//! The event catalog of SPEC §4: every event name, its product and its typed properties.
//!
//! The catalog is written once, in the `catalog!` table at the bottom of this file. The
//! macro generates [`Kind`] (the names), [`EventData`] (the typed properties products
//! construct) and the code that reads those properties out of a JSON object, checks them
//! and writes them back, so the typed API and the JSON API cannot disagree.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Rule;

pub use crate::limits::{MAX_NUM, MAX_STR_CHARS, MAX_TEXT_CHARS};

/// The product that records an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Product {
    /// The AI chatbot that talks to shoppers.
    AiChatbot,
    /// The workbench where human agents take over conversations and work tickets.
    AgentWorkbench,
}

impl Product {
    /// Both products.
    pub const ALL: [Product; 2] = [Product::AiChatbot, Product::AgentWorkbench];

    /// The wire name, `ai_chatbot` or `agent_workbench`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Product::AiChatbot => "ai_chatbot",
            Product::AgentWorkbench => "agent_workbench",
        }
    }

    /// The product with this wire name.
    pub fn from_name(name: &str) -> Option<Product> {
        Product::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An agent's presence, the `to` of `agent.status_change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Available for conversations.
    Online,
    /// Logged in and working.
    Busy,
    /// Logged in but away.
    Away,
    /// Not working.
    Offline,
}

impl AgentStatus {
    /// Every status, in the order SPEC §4 lists them.
    pub const ALL: [AgentStatus; 4] = [
        AgentStatus::Online,
        AgentStatus::Busy,
        AgentStatus::Away,
        AgentStatus::Offline,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Online => "online",
            AgentStatus::Busy => "busy",
            AgentStatus::Away => "away",
            AgentStatus::Offline => "offline",
        }
    }

    /// Whether an agent in this status counts as online (logged in and not offline).
    pub const fn is_online(self) -> bool {
        !matches!(self, AgentStatus::Offline)
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The property types of SPEC §4. Each reads a JSON value, checks a typed value, and
/// writes it back.
mod kinds {
    use serde_json::Value;

    use super::{AgentStatus, MAX_NUM, MAX_STR_CHARS, MAX_TEXT_CHARS};
    use crate::error::Rule;

    fn json_type(value: &Value) -> &'static str {
        match value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    fn wrong_type(expected: &'static str, value: &Value) -> Rule {
        Rule::WrongType {
            expected,
            found: json_type(value),
        }
    }

    /// `str`: 1 to 128 characters.
    pub(super) struct Str;
    impl Str {
        pub(super) fn parse(value: Value) -> Result<String, Rule> {
            match value {
                Value::String(s) => Self::check(&s).map(|()| s),
                other => Err(wrong_type("a string", &other)),
            }
        }
        pub(super) fn check(value: &str) -> Result<(), Rule> {
            if value.is_empty() {
                return Err(Rule::Empty);
            }
            check_chars(value, MAX_STR_CHARS)
        }
        pub(super) fn to_json(value: &str) -> Value {
            Value::String(value.to_owned())
        }
        pub(super) fn ser(value: &str) -> &str {
            value
        }
    }

    /// `text`: up to 1,024 characters.
    pub(super) struct Text;
    impl Text {
        pub(super) fn parse(value: Value) -> Result<String, Rule> {
            match value {
                Value::String(s) => Self::check(&s).map(|()| s),
                other => Err(wrong_type("a string", &other)),
            }
        }
        pub(super) fn check(value: &str) -> Result<(), Rule> {
            check_chars(value, MAX_TEXT_CHARS)
        }
        pub(super) fn to_json(value: &str) -> Value {
            Value::String(value.to_owned())
        }
        pub(super) fn ser(value: &str) -> &str {
            value
        }
    }

    fn check_chars(value: &str, max: usize) -> Result<(), Rule> {
        if value.contains('\0') {
            return Err(Rule::NulCharacter);
        }
        // Byte length bounds the character count from above: skip counting short strings.
        if value.len() <= max {
            return Ok(());
        }
        let chars = value.chars().count();
        if chars > max {
            return Err(Rule::TooLong { max, found: chars });
        }
        Ok(())
    }

    /// `num`: a finite number, at least 0.
    pub(super) struct Num;
    impl Num {
        pub(super) fn parse(value: Value) -> Result<f64, Rule> {
            match &value {
                Value::Number(n) => {
                    let n = n.as_f64().ok_or(Rule::NotFinite)?;
                    Self::check(&n).map(|()| n)
                }
                other => Err(wrong_type("a number", other)),
            }
        }
        pub(super) fn check(value: &f64) -> Result<(), Rule> {
            let value = *value;
            if !value.is_finite() {
                Err(Rule::NotFinite)
            } else if value < 0.0 {
                Err(Rule::Negative { found: value })
            } else if value > MAX_NUM {
                Err(Rule::TooLarge {
                    max: MAX_NUM,
                    found: value,
                })
            } else {
                Ok(())
            }
        }
        pub(super) fn to_json(value: &f64) -> Value {
            crate::json::json_number(*value)
        }
        pub(super) fn ser(value: &f64) -> crate::json::JsonNumber {
            crate::json::JsonNumber(*value)
        }
    }

    /// `int`: a whole number, at least 0. `3.0` is read as 3.
    pub(super) struct Int;
    impl Int {
        pub(super) fn parse(value: Value) -> Result<u64, Rule> {
            let Value::Number(n) = &value else {
                return Err(wrong_type("a whole number", &value));
            };
            if let Some(n) = n.as_u64() {
                return Ok(n);
            }
            let not_whole = || Rule::NotWhole {
                found: n.to_string(),
            };
            match n.as_f64() {
                Some(f) if f < 0.0 => Err(Rule::Negative { found: f }),
                Some(f) => crate::json::exact_integer(f).ok_or_else(not_whole),
                None => Err(not_whole()),
            }
        }
        pub(super) fn check(_: &u64) -> Result<(), Rule> {
            Ok(())
        }
        pub(super) fn to_json(value: &u64) -> Value {
            Value::from(*value)
        }
        pub(super) fn ser(value: &u64) -> u64 {
            *value
        }
    }

    /// `bool`.
    pub(super) struct Flag;
    impl Flag {
        pub(super) fn parse(value: Value) -> Result<bool, Rule> {
            match value {
                Value::Bool(b) => Ok(b),
                other => Err(wrong_type("a boolean", &other)),
            }
        }
        pub(super) fn check(_: &bool) -> Result<(), Rule> {
            Ok(())
        }
        pub(super) fn to_json(value: &bool) -> Value {
            Value::Bool(*value)
        }
        pub(super) fn ser(value: &bool) -> bool {
            *value
        }
    }

    /// An agent status: `online`, `busy`, `away` or `offline`.
    pub(super) struct Status;
    impl Status {
        pub(super) fn parse(value: Value) -> Result<AgentStatus, Rule> {
            let Value::String(s) = &value else {
                return Err(wrong_type("a string", &value));
            };
            AgentStatus::ALL
                .into_iter()
                .find(|status| status.as_str() == s)
                .ok_or_else(|| Rule::NotOneOf {
                    allowed: "online, busy, away, offline",
                    found: s.chars().take(MAX_STR_CHARS).collect(),
                })
        }
        pub(super) fn check(_: &AgentStatus) -> Result<(), Rule> {
            Ok(())
        }
        pub(super) fn to_json(value: &AgentStatus) -> Value {
            Value::String(value.as_str().to_owned())
        }
        pub(super) fn ser(value: &AgentStatus) -> &'static str {
            value.as_str()
        }
    }
}

/// A property that broke a rule: its name and the rule.
pub(crate) type PropertyError = (&'static str, Rule);

fn take_required<T>(
    props: &mut Map<String, Value>,
    name: &'static str,
    parse: fn(Value) -> Result<T, Rule>,
) -> Result<T, PropertyError> {
    match props.remove(name) {
        None | Some(Value::Null) => Err((name, Rule::Missing)),
        Some(value) => parse(value).map_err(|rule| (name, rule)),
    }
}

fn take_optional<T>(
    props: &mut Map<String, Value>,
    name: &'static str,
    parse: fn(Value) -> Result<T, Rule>,
) -> Result<Option<T>, PropertyError> {
    match props.remove(name) {
        // An explicit null is read as "not given".
        None | Some(Value::Null) => Ok(None),
        Some(value) => parse(value).map(Some).map_err(|rule| (name, rule)),
    }
}

macro_rules! catalog {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $name:literal for $product:ident {
            $( $req:ident : $rty:ty as $rkind:ident ),* $(,)?
        }
        {
            $( $opt:ident : $oty:ty as $okind:ident ),* $(,)?
        };
    )*) => {
        /// The name of a catalog event.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Kind {
            /// Every catalog event, in the order of SPEC §4.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// The event's name, e.g. `session.start`.
            pub const fn as_str(self) -> &'static str {
                match self { $( Kind::$variant => $name, )* }
            }

            /// The product that records this event.
            pub const fn product(self) -> Product {
                match self { $( Kind::$variant => Product::$product, )* }
            }

            /// The catalog event with this name (aliases are not names: see
            /// [`crate::event::resolve_name`]).
            pub fn from_name(name: &str) -> Option<Kind> {
                match name {
                    $( $name => Some(Kind::$variant), )*
                    _ => None,
                }
            }

            /// The property names the catalog knows for this event, required first.
            pub const fn properties(self) -> &'static [&'static str] {
                match self {
                    $( Kind::$variant => &[
                        $( stringify!($req), )*
                        $( stringify!($opt), )*
                    ], )*
                }
            }
        }

        /// The typed properties of a catalog event: what a product constructs.
        ///
        /// Field types are plain Rust values; [`crate::event::Validator`] checks the rules
        /// the types cannot express (lengths, ranges).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "event", content = "properties")]
        pub enum EventData {
            $(
                $(#[doc = $doc])*
                #[serde(rename = $name)]
                $variant {
                    $(
                        #[doc = concat!("`", stringify!($req), "`, ", stringify!($rkind), ".")]
                        $req: $rty,
                    )*
                    $(
                        #[doc = concat!("`", stringify!($opt), "`, optional ", stringify!($okind), ".")]
                        #[serde(default, skip_serializing_if = "Option::is_none")]
                        $opt: Option<$oty>,
                    )*
                },
            )*
        }

        impl EventData {
            /// Which catalog event this is.
            pub const fn kind(&self) -> Kind {
                match self { $( EventData::$variant { .. } => Kind::$variant, )* }
            }

            /// Checks the rules of §4 that the field types cannot express.
            pub(crate) fn check(&self) -> Result<(), PropertyError> {
                match self {
                    $( EventData::$variant { $( $req, )* $( $opt, )* } => {
                        $( kinds::$rkind::check($req).map_err(|rule| (stringify!($req), rule))?; )*
                        $( if let Some(value) = $opt {
                            kinds::$okind::check(value).map_err(|rule| (stringify!($opt), rule))?;
                        } )*
                        Ok(())
                    } )*
                }
            }

            /// Moves this event's properties out of `props`, leaving the ones the catalog
            /// does not name.
            pub(crate) fn take(kind: Kind, props: &mut Map<String, Value>) -> Result<Self, PropertyError> {
                match kind {
                    $( Kind::$variant => Ok(EventData::$variant {
                        $( $req: take_required(props, stringify!($req), kinds::$rkind::parse)?, )*
                        $( $opt: take_optional(props, stringify!($opt), kinds::$okind::parse)?, )*
                    }), )*
                }
            }

            /// Serializes the properties as entries of a map, without building one.
            pub(crate) fn serialize_entries<M: serde::ser::SerializeMap>(
                &self,
                map: &mut M,
            ) -> Result<(), M::Error> {
                match self {
                    $( EventData::$variant { $( $req, )* $( $opt, )* } => {
                        $( map.serialize_entry(stringify!($req), &kinds::$rkind::ser($req))?; )*
                        $( if let Some(value) = $opt {
                            map.serialize_entry(stringify!($opt), &kinds::$okind::ser(value))?;
                        } )*
                    } )*
                }
                Ok(())
            }

            /// Writes the properties into `props`.
            pub(crate) fn write(&self, props: &mut Map<String, Value>) {
                match self {
                    $( EventData::$variant { $( $req, )* $( $opt, )* } => {
                        $( props.insert(stringify!($req).to_owned(), kinds::$rkind::to_json($req)); )*
                        $( if let Some(value) = $opt {
                            props.insert(stringify!($opt).to_owned(), kinds::$okind::to_json(value));
                        } )*
                    } )*
                }
            }
        }
    };
}

catalog! {
    /// `session.start`: one customer served.
    SessionStart = "session.start" for AiChatbot {
        session_id: String as Str,
    } {
        customer_id: String as Str,
        channel: String as Str,
        user_agent: String as Text,
    };
    /// `session.message`: one AI reply.
    SessionMessage = "session.message" for AiChatbot {
        session_id: String as Str,
        response_time_ms: f64 as Num,
    } {
        tokens: u64 as Int,
    };
    /// `session.escalate`: the conversation was handed to a human.
    SessionEscalate = "session.escalate" for AiChatbot {
        session_id: String as Str,
    } {
        reason: String as Text,
    };
    /// `session.end`: the conversation finished.
    SessionEnd = "session.end" for AiChatbot {
        session_id: String as Str,
    } {
        duration_seconds: f64 as Num,
    };
    /// `query.order`: an order look-up.
    QueryOrder = "query.order" for AiChatbot {
    } {
        session_id: String as Str,
        order_id: String as Str,
        success: bool as Flag,
    };
    /// `query.tracking`: a parcel-tracking look-up.
    QueryTracking = "query.tracking" for AiChatbot {
    } {
        session_id: String as Str,
        tracking_number: String as Str,
        success: bool as Flag,
    };
    /// `agent.login`.
    AgentLogin = "agent.login" for AgentWorkbench {
        agent_id: String as Str,
    } {};
    /// `agent.logout`.
    AgentLogout = "agent.logout" for AgentWorkbench {
        agent_id: String as Str,
    } {
        online_duration_seconds: f64 as Num,
    };
    /// `agent.status_change`.
    AgentStatusChange = "agent.status_change" for AgentWorkbench {
        agent_id: String as Str,
        to: AgentStatus as Status,
    } {
        from: String as Str,
    };
    /// `agent.session_takeover`: an agent picks up an escalated session.
    AgentSessionTakeover = "agent.session_takeover" for AgentWorkbench {
        agent_id: String as Str,
        session_id: String as Str,
        wait_duration_seconds: f64 as Num,
    } {};
    /// `agent.session_message`: an agent's message in a session.
    AgentSessionMessage = "agent.session_message" for AgentWorkbench {
        agent_id: String as Str,
        session_id: String as Str,
    } {};
    /// `agent.session_release`: the agent finished the session.
    AgentSessionRelease = "agent.session_release" for AgentWorkbench {
        agent_id: String as Str,
        session_id: String as Str,
        handle_duration_seconds: f64 as Num,
    } {};
    /// `agent.session_transfer`: the agent passed the session to another agent.
    AgentSessionTransfer = "agent.session_transfer" for AgentWorkbench {
        agent_id: String as Str,
        session_id: String as Str,
        to_agent_id: String as Str,
    } {};
    /// `ticket.created`.
    TicketCreated = "ticket.created" for AgentWorkbench {
        ticket_id: String as Str,
    } {
        source: String as Str,
        priority: String as Str,
    };
    /// `ticket.assigned`.
    TicketAssigned = "ticket.assigned" for AgentWorkbench {
        ticket_id: String as Str,
        agent_id: String as Str,
    } {};
    /// `ticket.status_changed`.
    TicketStatusChanged = "ticket.status_changed" for AgentWorkbench {
        ticket_id: String as Str,
        to: String as Str,
    } {
        from: String as Str,
    };
    /// `ticket.closed`.
    TicketClosed = "ticket.closed" for AgentWorkbench {
        ticket_id: String as Str,
        resolution_duration_hours: f64 as Num,
        sla_met: bool as Flag,
    } {};
}

impl Kind {
    /// How many catalog events there are.
    pub const COUNT: usize = Kind::ALL.len();

    /// This event's position in [`Kind::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EventData {
    /// The session this event belongs to, if it names one.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            EventData::SessionStart { session_id, .. }
            | EventData::SessionMessage { session_id, .. }
            | EventData::SessionEscalate { session_id, .. }
            | EventData::SessionEnd { session_id, .. }
            | EventData::AgentSessionTakeover { session_id, .. }
            | EventData::AgentSessionMessage { session_id, .. }
            | EventData::AgentSessionRelease { session_id, .. }
            | EventData::AgentSessionTransfer { session_id, .. } => Some(session_id),
            EventData::QueryOrder { session_id, .. }
            | EventData::QueryTracking { session_id, .. } => session_id.as_deref(),
            _ => None,
        }
    }

    /// The agent this event belongs to, if it names one.
    pub fn agent_id(&self) -> Option<&str> {
        match self {
            EventData::AgentLogin { agent_id }
            | EventData::AgentLogout { agent_id, .. }
            | EventData::AgentStatusChange { agent_id, .. }
            | EventData::AgentSessionTakeover { agent_id, .. }
            | EventData::AgentSessionMessage { agent_id, .. }
            | EventData::AgentSessionRelease { agent_id, .. }
            | EventData::AgentSessionTransfer { agent_id, .. }
            | EventData::TicketAssigned { agent_id, .. } => Some(agent_id),
            _ => None,
        }
    }

    /// The ticket this event belongs to, if it names one.
    pub fn ticket_id(&self) -> Option<&str> {
        match self {
            EventData::TicketCreated { ticket_id, .. }
            | EventData::TicketAssigned { ticket_id, .. }
            | EventData::TicketStatusChanged { ticket_id, .. }
            | EventData::TicketClosed { ticket_id, .. } => Some(ticket_id),
            _ => None,
        }
    }
}
