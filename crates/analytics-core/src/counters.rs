//! What one flush adds to the real-time counters ([`CounterBatch`]), computed from the
//! batch's events alone, and the buckets it adds to: the pure half of the counter
//! stores (`store::CounterStore` applies it).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::catalog::{AgentStatus, EventData};
use crate::event::Event;
use crate::metrics::Sums;
use crate::time::{Calendar, DayHour, YearMonth};

/// The period of a counter bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    /// A business day.
    Day(NaiveDate),
    /// An hour of a business day.
    Hour(DayHour),
    /// A business month.
    Month(YearMonth),
}

/// A set of counters: all events of a period, or one agent's events of a period.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket {
    /// The period.
    pub period: Period,
    /// The agent, for per-agent counters.
    pub agent: Option<String>,
}

impl Bucket {
    /// All events of a period.
    pub fn all(period: Period) -> Bucket {
        Bucket {
            period,
            agent: None,
        }
    }

    /// One agent's events of a period.
    pub fn agent(period: Period, agent: impl Into<String>) -> Bucket {
        Bucket {
            period,
            agent: Some(agent.into()),
        }
    }
}

/// The last thing a batch says about a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionMark {
    /// Whether the batch started the session.
    pub started: bool,
    /// Whether the batch ended the session.
    pub ended: bool,
    /// The latest event of the session in the batch.
    pub last_seen: DateTime<Utc>,
}

/// The last presence a batch reports for an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceMark {
    /// The status after the batch.
    pub status: AgentStatus,
    /// When the agent took it.
    pub at: DateTime<Utc>,
}

/// What one flush adds to the real-time counters: increments combined per bucket and
/// field, and the latest word on each session and agent in the batch.
///
/// Stores apply this with one command per bucket and field, not per event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CounterBatch {
    /// Increments by bucket: day, hour and month for all events; day and month per agent.
    pub increments: BTreeMap<Bucket, Sums>,
    /// Sessions started, seen or ended, by session id.
    pub sessions: BTreeMap<String, SessionMark>,
    /// Agents whose presence changed, by agent id.
    pub agents: BTreeMap<String, PresenceMark>,
}

impl CounterBatch {
    /// The counters of `events` (the ones new to the event store) in `calendar`.
    pub fn from_events<'a>(
        calendar: &Calendar,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> CounterBatch {
        let mut batch = CounterBatch::default();
        for event in events {
            batch.record(calendar, event);
        }
        batch
    }

    /// Adds one event.
    pub fn record(&mut self, calendar: &Calendar, event: &Event) {
        let at = event.timestamp();
        let hour = calendar.hour(at);
        let day = Period::Day(hour.date);
        let month = Period::Month(YearMonth::of(hour.date));
        let sums = Sums::of(event);
        for period in [day, Period::Hour(hour), month] {
            self.increments
                .entry(Bucket::all(period))
                .or_default()
                .merge(&sums);
        }
        if let Some(agent) = event.agent_id() {
            for period in [day, month] {
                self.increments
                    .entry(Bucket::agent(period, agent))
                    .or_default()
                    .merge(&sums);
            }
        }
        self.record_marks(event);
    }

    /// Adds what one event says of its session or agent, and no increments.
    pub fn record_marks(&mut self, event: &Event) {
        let at = event.timestamp();
        match event.data() {
            Some(EventData::SessionStart { session_id, .. }) => {
                self.mark_session(session_id, at, |m| m.started = true);
            }
            Some(EventData::SessionEnd { session_id, .. }) => {
                self.mark_session(session_id, at, |m| m.ended = true);
            }
            Some(
                EventData::SessionMessage { session_id, .. }
                | EventData::SessionEscalate { session_id, .. }
                | EventData::AgentSessionTakeover { session_id, .. }
                | EventData::AgentSessionMessage { session_id, .. },
            ) => self.mark_session(session_id, at, |_| {}),
            Some(EventData::AgentLogin { agent_id }) => {
                self.add_presence(agent_id, AgentStatus::Online, at);
            }
            Some(EventData::AgentLogout { agent_id, .. }) => {
                self.add_presence(agent_id, AgentStatus::Offline, at);
            }
            Some(EventData::AgentStatusChange { agent_id, to, .. }) => {
                self.add_presence(agent_id, *to, at);
            }
            _ => {}
        }
    }

    /// Adds a session's mark as stored events give it (read from detail by
    /// [`EventStore::marks`](crate::store::EventStore::marks)).
    pub fn add_session(&mut self, session: &str, mark: SessionMark) {
        self.mark_session(session, mark.last_seen, |m| {
            m.started |= mark.started;
            m.ended |= mark.ended;
        });
    }

    fn mark_session(&mut self, session: &str, at: DateTime<Utc>, mark: impl Fn(&mut SessionMark)) {
        let entry = self
            .sessions
            .entry(session.to_owned())
            .or_insert(SessionMark {
                started: false,
                ended: false,
                last_seen: at,
            });
        entry.last_seen = entry.last_seen.max(at);
        mark(entry);
    }

    /// Adds an agent's presence as an event gives it: the latest wins (at the same
    /// instant, the one added last).
    pub fn add_presence(&mut self, agent: &str, status: AgentStatus, at: DateTime<Utc>) {
        let entry = self
            .agents
            .entry(agent.to_owned())
            .or_insert(PresenceMark { status, at });
        // The latest event wins; at the same instant, the later one in the batch.
        if at >= entry.at {
            *entry = PresenceMark { status, at };
        }
    }

    /// Adds another batch, as if its events had been recorded after this one's: how
    /// increments that could not be applied wait for the next flush.
    pub fn merge(&mut self, other: CounterBatch) {
        for (bucket, sums) in other.increments {
            self.increments.entry(bucket).or_default().merge(&sums);
        }
        for (session, mark) in other.sessions {
            let entry = self.sessions.entry(session).or_insert(mark);
            entry.started |= mark.started;
            entry.ended |= mark.ended;
            entry.last_seen = entry.last_seen.max(mark.last_seen);
        }
        for (agent, mark) in other.agents {
            let entry = self.agents.entry(agent).or_insert(mark);
            if mark.at >= entry.at {
                *entry = mark;
            }
        }
    }

    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.increments.is_empty() && self.sessions.is_empty() && self.agents.is_empty()
    }
}
