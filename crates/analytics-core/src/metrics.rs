//! The exact stored model of the business metrics of SPEC §5: mergeable sums and
//! counts.
//!
//! Everything that is stored (daily statistics, Redis counters) is a [`Sums`]: one
//! unsigned integer per [`Field`]. Durations are summed in millionths of their unit,
//! rounded once per event, so adding sums is exact, associative and commutative: merging
//! days in any order gives the month, bit for bit, and a mean over a month is the month's
//! sum over the month's count, never an average of averages. The derived report
//! ([`crate::report`]) is computed from sums only.

use std::collections::BTreeMap;
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use crate::catalog::{EventData, Kind};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::sketch::DaySketches;

/// How many units of a summed quantity make one unit: sums are kept in millionths.
pub const MICROS_PER_UNIT: f64 = 1e6;

/// A value of a `num` property in millionths of its unit, rounded to the nearest.
pub fn to_micros(value: f64) -> u64 {
    // Validated values are finite and in [0, 1e9], so this is at most 1e15 < 2^53: exact.
    (value * MICROS_PER_UNIT).round() as u64
}

/// One stored figure: a count of events, or a sum of a property in millionths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// How many events of this kind.
    Count(Kind),
    /// How many `custom.` events.
    Custom,
    /// Sum of `response_time_ms` of `session.message`, in millionths of a millisecond.
    ResponseTimeMs,
    /// Sum of `wait_duration_seconds` of `agent.session_takeover`, in millionths.
    WaitSeconds,
    /// Sum of `handle_duration_seconds` of `agent.session_release`, in millionths.
    HandleSeconds,
    /// Sum of `resolution_duration_hours` of `ticket.closed`, in millionths.
    ResolutionHours,
    /// How many `ticket.closed` had `sla_met = true`.
    SlaMet,
    /// The AI funnel's sessions started ([`FunnelCounts`]). Not counted from single
    /// events: the refresh job stores the funnel of a day with its statistics, so that
    /// it outlives the day's detail. Zero in counters and in sums of detail.
    FunnelSessions,
    /// The AI funnel's sessions handled by the AI alone.
    FunnelAiHandled,
    /// The AI funnel's AI-handled sessions whose customer came back.
    FunnelReturned,
    /// The AI funnel's sessions without `customer_id`.
    FunnelWithoutCustomer,
}

const SUM_FIELDS: [(Field, &str); 9] = [
    (Field::ResponseTimeMs, "response_time_ms_sum"),
    (Field::WaitSeconds, "wait_duration_seconds_sum"),
    (Field::HandleSeconds, "handle_duration_seconds_sum"),
    (Field::ResolutionHours, "resolution_duration_hours_sum"),
    (Field::SlaMet, "sla_met"),
    (Field::FunnelSessions, "funnel_sessions"),
    (Field::FunnelAiHandled, "funnel_ai_handled"),
    (Field::FunnelReturned, "funnel_returned"),
    (Field::FunnelWithoutCustomer, "funnel_without_customer"),
];

impl Field {
    /// How many fields there are.
    pub const COUNT: usize = Kind::COUNT + 1 + SUM_FIELDS.len();

    /// Every field, in storage order.
    pub fn all() -> impl Iterator<Item = Field> {
        (0..Field::COUNT).map(Field::from_index)
    }

    /// The field's position in storage order.
    pub const fn index(self) -> usize {
        match self {
            Field::Count(kind) => kind.index(),
            Field::Custom => Kind::COUNT,
            Field::ResponseTimeMs => Kind::COUNT + 1,
            Field::WaitSeconds => Kind::COUNT + 2,
            Field::HandleSeconds => Kind::COUNT + 3,
            Field::ResolutionHours => Kind::COUNT + 4,
            Field::SlaMet => Kind::COUNT + 5,
            Field::FunnelSessions => Kind::COUNT + 6,
            Field::FunnelAiHandled => Kind::COUNT + 7,
            Field::FunnelReturned => Kind::COUNT + 8,
            Field::FunnelWithoutCustomer => Kind::COUNT + 9,
        }
    }

    fn from_index(index: usize) -> Field {
        if index < Kind::COUNT {
            Field::Count(Kind::ALL[index])
        } else if index == Kind::COUNT {
            Field::Custom
        } else {
            SUM_FIELDS[(index - Kind::COUNT - 1).min(SUM_FIELDS.len() - 1)].0
        }
    }

    /// The stable name used by every store: the event name for counts, `custom`, or
    /// the property name with `_sum`, and `sla_met`.
    pub fn name(self) -> &'static str {
        match self {
            Field::Count(kind) => kind.as_str(),
            Field::Custom => "custom",
            other => SUM_FIELDS[other.index() - Kind::COUNT - 1].1,
        }
    }

    /// The field that sums the quantity of `kind`, if the metrics use one.
    pub const fn summed_by(kind: Kind) -> Option<Field> {
        match kind {
            Kind::SessionMessage => Some(Field::ResponseTimeMs),
            Kind::AgentSessionTakeover => Some(Field::WaitSeconds),
            Kind::AgentSessionRelease => Some(Field::HandleSeconds),
            Kind::TicketClosed => Some(Field::ResolutionHours),
            _ => None,
        }
    }

    /// The field with this name.
    pub fn from_name(name: &str) -> Option<Field> {
        if name == "custom" {
            return Some(Field::Custom);
        }
        Kind::from_name(name).map(Field::Count).or_else(|| {
            SUM_FIELDS
                .iter()
                .find(|(_, n)| *n == name)
                .map(|(field, _)| *field)
        })
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one event adds to the sums besides its count: stores keep it per event so
/// that they can sum without reading properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Measure {
    /// The summed quantity (see [`Field::summed_by`]) in millionths of its unit.
    pub value_micros: Option<u64>,
    /// `sla_met` of `ticket.closed`.
    pub sla_met: Option<bool>,
}

impl Measure {
    /// The measure of one event.
    pub fn of(event: &Event) -> Measure {
        let value = |v: &f64| Some(to_micros(*v));
        match event.data() {
            Some(EventData::SessionMessage {
                response_time_ms, ..
            }) => Measure {
                value_micros: value(response_time_ms),
                sla_met: None,
            },
            Some(EventData::AgentSessionTakeover {
                wait_duration_seconds,
                ..
            }) => Measure {
                value_micros: value(wait_duration_seconds),
                sla_met: None,
            },
            Some(EventData::AgentSessionRelease {
                handle_duration_seconds,
                ..
            }) => Measure {
                value_micros: value(handle_duration_seconds),
                sla_met: None,
            },
            Some(EventData::TicketClosed {
                resolution_duration_hours,
                sla_met,
                ..
            }) => Measure {
                value_micros: value(resolution_duration_hours),
                sla_met: Some(*sla_met),
            },
            _ => Measure::default(),
        }
    }
}

/// Counts and fixed-point sums for some set of events: a day, an hour, a month, an agent.
///
/// Adding two `Sums` gives the `Sums` of the union of their events.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sums {
    values: [u64; Field::COUNT],
}

impl Default for Sums {
    fn default() -> Sums {
        Sums {
            values: [0; Field::COUNT],
        }
    }
}

impl fmt::Debug for Sums {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (k.name(), v)))
            .finish()
    }
}

impl Sums {
    /// No events.
    pub fn new() -> Sums {
        Sums::default()
    }

    /// The sums of one event.
    pub fn of(event: &Event) -> Sums {
        let mut sums = Sums::new();
        sums.record(event);
        sums
    }

    /// The sums of a set of events.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Sums {
        let mut sums = Sums::new();
        for event in events {
            sums.record(event);
        }
        sums
    }

    /// The value of a field.
    pub fn get(&self, field: Field) -> u64 {
        self.values[field.index()]
    }

    /// Adds to a field.
    pub fn increment(&mut self, field: Field, value: u64) {
        let slot = &mut self.values[field.index()];
        *slot = slot.saturating_add(value);
    }

    /// How many events of a catalog kind.
    pub fn count(&self, kind: Kind) -> u64 {
        self.get(Field::Count(kind))
    }

    /// How many events in all, custom ones included.
    pub fn total_events(&self) -> u64 {
        Kind::ALL
            .iter()
            .map(|kind| self.count(*kind))
            .fold(self.get(Field::Custom), u64::saturating_add)
    }

    /// Whether no event was recorded.
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(|v| *v == 0)
    }

    /// The fields that are not zero, in storage order.
    pub fn iter(&self) -> impl Iterator<Item = (Field, u64)> + '_ {
        Field::all()
            .map(|field| (field, self.get(field)))
            .filter(|(_, value)| *value != 0)
    }

    /// Adds one event.
    pub fn record(&mut self, event: &Event) {
        let Some(kind) = event.kind() else {
            self.increment(Field::Custom, 1);
            return;
        };
        let measure = Measure::of(event);
        self.add_group(
            kind,
            1,
            measure.value_micros.unwrap_or(0),
            u64::from(measure.sla_met == Some(true)),
        );
    }

    /// Adds `count` events of `kind` whose summed quantities total `value_micros` and of
    /// which `sla_met` were closed within SLA: how stores fold rows grouped by event
    /// name back into sums.
    pub fn add_group(&mut self, kind: Kind, count: u64, value_micros: u64, sla_met: u64) {
        self.increment(Field::Count(kind), count);
        if let Some(field) = Field::summed_by(kind) {
            self.increment(field, value_micros);
        }
        if kind == Kind::TicketClosed {
            self.increment(Field::SlaMet, sla_met);
        }
    }

    /// Like [`Sums::add_group`], for a stored event name: a catalog name or a
    /// `custom.` name.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a name that is neither.
    pub fn add_named_group(
        &mut self,
        name: &str,
        count: u64,
        value_micros: u64,
        sla_met: u64,
    ) -> Result<()> {
        match crate::event::resolve_name(name) {
            Ok(crate::event::Name::Catalog { kind, alias: false }) => {
                self.add_group(kind, count, value_micros, sla_met);
                Ok(())
            }
            Ok(crate::event::Name::Custom) => {
                self.increment(Field::Custom, count);
                Ok(())
            }
            _ => Err(Error::invalid_input(
                "stored event name",
                name,
                "a catalog or custom. event name",
            )),
        }
    }

    /// Adds another set of sums.
    pub fn merge(&mut self, other: &Sums) {
        for (slot, value) in self.values.iter_mut().zip(other.values) {
            *slot = slot.saturating_add(value);
        }
    }

    /// Reads sums from `(field name, value)` pairs, as stores keep them.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a name that is not a [`Field`].
    pub fn from_named<'a>(pairs: impl IntoIterator<Item = (&'a str, u64)>) -> Result<Sums> {
        let mut sums = Sums::new();
        for (name, value) in pairs {
            let field = Field::from_name(name).ok_or_else(|| {
                Error::invalid_input("statistics field", name, "a field of the metric model")
            })?;
            sums.increment(field, value);
        }
        Ok(sums)
    }
}

impl AddAssign<&Sums> for Sums {
    fn add_assign(&mut self, other: &Sums) {
        self.merge(other);
    }
}

impl AddAssign for Sums {
    fn add_assign(&mut self, other: Sums) {
        self.merge(&other);
    }
}

impl Add for Sums {
    type Output = Sums;
    fn add(mut self, other: Sums) -> Sums {
        self.merge(&other);
        self
    }
}

impl Sum for Sums {
    fn sum<I: Iterator<Item = Sums>>(iter: I) -> Sums {
        iter.fold(Sums::new(), Add::add)
    }
}

impl<'a> Sum<&'a Sums> for Sums {
    fn sum<I: Iterator<Item = &'a Sums>>(iter: I) -> Sums {
        iter.fold(Sums::new(), |mut acc, s| {
            acc.merge(s);
            acc
        })
    }
}

impl Serialize for Sums {
    /// A JSON object of every field by name.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(Field::all().map(|field| (field.name(), self.get(field))))
    }
}

impl<'de> Deserialize<'de> for Sums {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Sums, D::Error> {
        let map = BTreeMap::<String, u64>::deserialize(deserializer)?;
        Sums::from_named(map.iter().map(|(k, v)| (k.as_str(), *v)))
            .map_err(serde::de::Error::custom)
    }
}

/// Sums per day from `(day, field name, value)` rows in day order, as stores keep
/// daily statistics.
///
/// # Errors
///
/// [`Error::InvalidInput`] for a field name that is not a [`Field`].
pub fn days_from_rows<D: PartialEq + Copy>(
    rows: impl IntoIterator<Item = (D, String, u64)>,
) -> Result<Vec<(D, Sums)>> {
    let mut days: Vec<(D, Sums)> = Vec::new();
    for (day, name, value) in rows {
        let field = Field::from_name(&name).ok_or_else(|| {
            Error::invalid_input("statistics field", &name, "a field of the metric model")
        })?;
        match days.last_mut() {
            Some((last, sums)) if *last == day => sums.increment(field, value),
            _ => {
                let mut sums = Sums::new();
                sums.increment(field, value);
                days.push((day, sums));
            }
        }
    }
    Ok(days)
}

/// Sums per day and agent from `(day, agent, field name, value)` rows, as stores keep
/// per-agent daily statistics.
///
/// # Errors
///
/// [`Error::InvalidInput`] for a field name that is not a [`Field`].
pub fn agent_days_from_rows<D: Ord>(
    rows: impl IntoIterator<Item = (D, String, String, u64)>,
) -> Result<BTreeMap<D, BTreeMap<String, Sums>>> {
    let mut days = BTreeMap::<D, BTreeMap<String, Sums>>::new();
    for (day, agent, name, value) in rows {
        let field = Field::from_name(&name).ok_or_else(|| {
            Error::invalid_input("statistics field", &name, "a field of the metric model")
        })?;
        days.entry(day)
            .or_default()
            .entry(agent)
            .or_default()
            .increment(field, value);
    }
    Ok(days)
}

/// The sums of one business day, for all events and per agent, and the
/// distributions of its summed quantities (for percentiles).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaySummary {
    /// All events of the day.
    pub totals: Sums,
    /// The events of the day that name an agent, by agent.
    pub agents: BTreeMap<String, Sums>,
    /// The distributions of the day's durations, for all events and per agent.
    pub sketches: DaySketches,
}

impl DaySummary {
    /// Adds one event.
    pub fn record(&mut self, event: &Event) {
        self.totals.record(event);
        if let Some(agent) = event.agent_id() {
            self.agents
                .entry(agent.to_owned())
                .or_default()
                .record(event);
        }
        self.sketches.record(event);
    }

    /// Adds `count` events stored under `name` (and `agent`, when they name one), as
    /// [`Sums::add_named_group`]: how stores fold rows grouped by event and agent.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a name that is neither a catalog nor a `custom.` name.
    pub fn add_named_group(
        &mut self,
        name: &str,
        agent: Option<String>,
        count: u64,
        value_micros: u64,
        sla_met: u64,
    ) -> Result<()> {
        self.totals
            .add_named_group(name, count, value_micros, sla_met)?;
        if let Some(agent) = agent {
            self.agents.entry(agent).or_default().add_named_group(
                name,
                count,
                value_micros,
                sla_met,
            )?;
        }
        Ok(())
    }

    /// The summary of `(event name, agent, count, value sum, sla met)` rows, grouped by
    /// event and agent, as stores sum a day's detail (distributions left empty).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a name that is neither a catalog nor a `custom.` name.
    pub fn from_groups(
        rows: impl IntoIterator<Item = (String, Option<String>, i64, i64, i64)>,
    ) -> Result<DaySummary> {
        let mut summary = DaySummary::default();
        for (event, agent, count, value, sla) in rows {
            summary.add_named_group(&event, agent, count as u64, value as u64, sla as u64)?;
        }
        Ok(summary)
    }

    /// Adds another summary.
    pub fn merge(&mut self, other: &DaySummary) {
        self.totals.merge(&other.totals);
        for (agent, sums) in &other.agents {
            self.agents.entry(agent.clone()).or_default().merge(sums);
        }
        self.sketches.merge(&other.sketches);
    }
}

/// The AI funnel of a period (SPEC §5, `GET /ai`): sessions started, those the AI
/// handled alone (no hand-off), of those the ones whose customer came back within the
/// return window, and the **durable** AI resolutions (handled alone and not back).
/// Counted over the sessions of event detail (`store::SessionRow`), by the day of their
/// start.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FunnelCounts {
    /// Sessions started.
    pub sessions: u64,
    /// Sessions without a hand-off to an agent.
    pub ai_handled: u64,
    /// Of the AI-handled sessions, those whose customer started another session
    /// within the return window.
    pub returned: u64,
    /// Sessions without `customer_id` (never counted as returned).
    pub without_customer: u64,
}

impl FunnelCounts {
    /// Adds one session.
    pub fn record(&mut self, session: &crate::store::SessionRow) {
        self.sessions += 1;
        if !session.escalated {
            self.ai_handled += 1;
            if session.returned {
                self.returned += 1;
            }
        }
        if session.customer_id.is_none() {
            self.without_customer += 1;
        }
    }

    /// The counts kept in a day's statistics.
    pub fn from_sums(sums: &Sums) -> FunnelCounts {
        FunnelCounts {
            sessions: sums.get(Field::FunnelSessions),
            ai_handled: sums.get(Field::FunnelAiHandled),
            returned: sums.get(Field::FunnelReturned),
            without_customer: sums.get(Field::FunnelWithoutCustomer),
        }
    }

    /// Sets the counts into a day's sums (replacing what they held).
    pub fn store_in(&self, sums: &mut Sums) {
        for (field, value) in [
            (Field::FunnelSessions, self.sessions),
            (Field::FunnelAiHandled, self.ai_handled),
            (Field::FunnelReturned, self.returned),
            (Field::FunnelWithoutCustomer, self.without_customer),
        ] {
            sums.values[field.index()] = value;
        }
    }

    /// Adds another period's counts.
    pub fn merge(&mut self, other: &FunnelCounts) {
        self.sessions += other.sessions;
        self.ai_handled += other.ai_handled;
        self.returned += other.returned;
        self.without_customer += other.without_customer;
    }
}
