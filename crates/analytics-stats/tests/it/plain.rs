//! The same figures computed plainly from the raw events, with none of the metric
//! model's machinery: dedupe by id, bucket by Shanghai day with chrono-tz, add floats.

use std::collections::{BTreeMap, HashSet};

use analytics_core::event::RawEvent;
use analytics_core::report::{AgentMetrics, BusinessMetrics, TicketMetrics};
use chrono::NaiveDate;
use serde_json::Value;

#[derive(Debug, Default, Clone)]
pub(crate) struct Figures {
    counts: BTreeMap<String, u64>,
    response: f64,
    wait: f64,
    handle: f64,
    resolution: f64,
    sla_met: u64,
    /// Every value of each duration, for exact percentiles.
    values: BTreeMap<&'static str, Vec<f64>>,
}

/// The exact `q`-quantile: the value at rank `⌊q · (n − 1)⌋` of the sorted values.
pub(crate) fn exact_quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * (sorted.len() as f64 - 1.0)) as usize;
    sorted.get(rank).copied()
}

impl Figures {
    fn add(&mut self, other: &Figures) {
        for (name, n) in &other.counts {
            *self.counts.entry(name.clone()).or_default() += n;
        }
        self.response += other.response;
        self.wait += other.wait;
        self.handle += other.handle;
        self.resolution += other.resolution;
        self.sla_met += other.sla_met;
        for (name, values) in &other.values {
            self.values.entry(name).or_default().extend(values);
        }
    }

    fn quantile(&self, name: &str, q: f64) -> Option<f64> {
        exact_quantile(self.values.get(name).map_or(&[][..], Vec::as_slice), q)
    }

    fn count(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    fn mean(sum: f64, n: u64) -> Option<f64> {
        (n > 0).then(|| sum / n as f64)
    }

    pub(crate) fn metrics(&self) -> BusinessMetrics {
        let served = self.count("session.start");
        let escalations = self.count("session.escalate");
        let resolved = served.saturating_sub(escalations);
        let closed = self.count("ticket.closed");
        BusinessMetrics {
            total_customers_served: served,
            escalations,
            ai_resolved: resolved,
            ai_resolution_rate: (served > 0).then(|| resolved as f64 / served as f64),
            avg_response_time_ms: Self::mean(self.response, self.count("session.message")),
            cost_saved_yuan: resolved as f64 * 10.0,
            sessions_handled: self.count("agent.session_takeover"),
            avg_first_response_seconds: Self::mean(self.wait, self.count("agent.session_takeover")),
            avg_handle_time_seconds: Self::mean(self.handle, self.count("agent.session_release")),
            tickets_resolved: closed,
            avg_resolution_time_hours: Self::mean(self.resolution, closed),
            sla_met_rate: (closed > 0).then(|| self.sla_met as f64 / closed as f64),
            response_time_ms_p50: self.quantile("response", 0.5),
            response_time_ms_p90: self.quantile("response", 0.9),
            first_response_seconds_p50: self.quantile("wait", 0.5),
            first_response_seconds_p90: self.quantile("wait", 0.9),
            handle_time_seconds_p50: self.quantile("handle", 0.5),
            handle_time_seconds_p90: self.quantile("handle", 0.9),
            resolution_time_hours_p50: self.quantile("resolution", 0.5),
            resolution_time_hours_p90: self.quantile("resolution", 0.9),
        }
    }

    pub(crate) fn agent(&self, agent: &str) -> AgentMetrics {
        AgentMetrics {
            agent_id: agent.to_owned(),
            sessions_handled: self.count("agent.session_takeover"),
            avg_first_response_seconds: Self::mean(self.wait, self.count("agent.session_takeover")),
            avg_handle_time_seconds: Self::mean(self.handle, self.count("agent.session_release")),
            messages: self.count("agent.session_message"),
            transfers: self.count("agent.session_transfer"),
            first_response_seconds_p50: self.quantile("wait", 0.5),
            first_response_seconds_p90: self.quantile("wait", 0.9),
            handle_time_seconds_p50: self.quantile("handle", 0.5),
            handle_time_seconds_p90: self.quantile("handle", 0.9),
        }
    }

    pub(crate) fn tickets(&self) -> TicketMetrics {
        let closed = self.count("ticket.closed");
        TicketMetrics {
            tickets_created: self.count("ticket.created"),
            tickets_resolved: closed,
            avg_resolution_time_hours: Self::mean(self.resolution, closed),
            sla_met_rate: (closed > 0).then(|| self.sla_met as f64 / closed as f64),
        }
    }
}

/// Figures by Shanghai day, for all events and per agent.
#[derive(Debug, Default)]
pub(crate) struct Plain {
    pub(crate) days: BTreeMap<NaiveDate, Figures>,
    pub(crate) agents: BTreeMap<NaiveDate, BTreeMap<String, Figures>>,
}

const AGENT_EVENTS: [&str; 8] = [
    "agent.login",
    "agent.logout",
    "agent.status_change",
    "agent.session_takeover",
    "agent.session_message",
    "agent.session_release",
    "agent.session_transfer",
    "ticket.assigned",
];

impl Plain {
    pub(crate) fn of(events: &[RawEvent]) -> Plain {
        let mut plain = Plain::default();
        let mut seen = HashSet::new();
        for event in events {
            if !seen.insert(event.event_id.expect("the stream sets ids")) {
                continue;
            }
            let day = event
                .timestamp
                .expect("the stream sets timestamps")
                .with_timezone(&chrono_tz::Asia::Shanghai)
                .date_naive();
            let name = match event.event.as_str() {
                "message.ai" => "session.message",
                custom if custom.starts_with("custom.") => "custom",
                name => name,
            };
            let number = |key: &str| event.properties.get(key).and_then(Value::as_f64);
            let mut figures = Figures::default();
            figures.counts.insert(name.to_owned(), 1);
            match name {
                "session.message" => {
                    figures.response = number("response_time_ms")
                        .or_else(|| number("response_time"))
                        .unwrap();
                    figures.values.insert("response", vec![figures.response]);
                }
                "agent.session_takeover" => {
                    figures.wait = number("wait_duration_seconds").unwrap();
                    figures.values.insert("wait", vec![figures.wait]);
                }
                "agent.session_release" => {
                    figures.handle = number("handle_duration_seconds").unwrap();
                    figures.values.insert("handle", vec![figures.handle]);
                }
                "ticket.closed" => {
                    figures.resolution = number("resolution_duration_hours").unwrap();
                    figures
                        .values
                        .insert("resolution", vec![figures.resolution]);
                    figures.sla_met = u64::from(event.properties["sla_met"] == Value::Bool(true));
                }
                _ => {}
            }
            plain.days.entry(day).or_default().add(&figures);
            if AGENT_EVENTS.contains(&name) {
                let agent = event.properties["agent_id"].as_str().unwrap().to_owned();
                plain
                    .agents
                    .entry(day)
                    .or_default()
                    .entry(agent)
                    .or_default()
                    .add(&figures);
            }
        }
        plain
    }

    /// The figures of the days from `first` to `last`.
    pub(crate) fn over(&self, first: NaiveDate, last: NaiveDate) -> Figures {
        let mut all = Figures::default();
        for (_, figures) in self.days.range(first..=last) {
            all.add(figures);
        }
        all
    }

    /// Each agent's figures over the days from `first` to `last`.
    pub(crate) fn agents_over(
        &self,
        first: NaiveDate,
        last: NaiveDate,
    ) -> BTreeMap<String, Figures> {
        let mut agents = BTreeMap::<String, Figures>::new();
        for (_, day) in self.agents.range(first..=last) {
            for (agent, figures) in day {
                agents.entry(agent.clone()).or_default().add(figures);
            }
        }
        agents
    }
}

/// The AI funnel of the sessions started on the Shanghai days `first..=last`, counted
/// plainly: each session id's earliest start in the days (and a day past them), an
/// escalation of it in that time, and whether the same customer started another
/// session within 24 hours. Returns per day (sessions, ai handled, returned of those,
/// without customer).
pub(crate) fn funnel(
    events: &[RawEvent],
    first: NaiveDate,
    last: NaiveDate,
) -> BTreeMap<NaiveDate, (u64, u64, u64, u64)> {
    use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};
    let shanghai = chrono_tz::Asia::Shanghai;
    let start_of = |day: NaiveDate| {
        shanghai
            .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
            .unwrap()
            .with_timezone(&Utc)
    };
    let from = start_of(first);
    let to = start_of(last.succ_opt().unwrap());
    let until = to + TimeDelta::hours(24);
    let mut seen = HashSet::new();
    // Per session: earliest start, its customer (the greatest, as the stores pick),
    // escalated.
    // Earliest start, customer, escalated.
    type Session = (Option<DateTime<Utc>>, Option<String>, bool);
    let mut sessions: BTreeMap<String, Session> = BTreeMap::new();
    for event in events {
        if !seen.insert(event.event_id.unwrap()) {
            continue;
        }
        let at = event.timestamp.unwrap();
        let Some(session) = event.properties.get("session_id").and_then(Value::as_str) else {
            continue;
        };
        if at < from || at >= until {
            continue;
        }
        let entry = sessions.entry(session.to_owned()).or_default();
        match event.event.as_str() {
            "session.start" => {
                entry.0 = Some(entry.0.map_or(at, |t: DateTime<Utc>| t.min(at)));
                let customer = event
                    .properties
                    .get("customer_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                entry.1 = entry.1.clone().max(customer);
            }
            "session.escalate" => entry.2 = true,
            _ => {}
        }
    }
    let mut started: Vec<(DateTime<Utc>, String, Option<String>, bool)> = sessions
        .into_iter()
        .filter_map(|(id, (at, customer, escalated))| at.map(|at| (at, id, customer, escalated)))
        .collect();
    started.sort();
    let mut out = BTreeMap::new();
    let mut day = first;
    while day <= last {
        out.insert(day, (0, 0, 0, 0));
        day = day.succ_opt().unwrap();
    }
    for (i, (at, _, customer, escalated)) in started.iter().enumerate() {
        if *at >= to {
            continue;
        }
        let returned = customer.is_some()
            && started[i + 1..]
                .iter()
                .find(|later| later.2 == *customer)
                .is_some_and(|later| later.0 <= *at + TimeDelta::hours(24));
        let counts = out
            .get_mut(&at.with_timezone(&shanghai).date_naive())
            .unwrap();
        counts.0 += 1;
        if !escalated {
            counts.1 += 1;
            if returned {
                counts.2 += 1;
            }
        }
        if customer.is_none() {
            counts.3 += 1;
        }
    }
    out
}
