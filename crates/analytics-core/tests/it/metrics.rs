//! The metric model: fields, sums, the derived metrics and their null rules, and the
//! property that merging daily sums in any order and grouping gives the month.

use std::collections::BTreeMap;

use analytics_core::catalog::Kind;
use analytics_core::event::{Event, RawEvent};
use analytics_core::metrics::{DaySummary, Field, Sums};
use analytics_core::report::{AgentMetrics, BusinessMetrics, CostPerResolution, TicketMetrics};
use analytics_core::time::Calendar;
use chrono::{NaiveDate, TimeDelta};
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{at, event};

#[test]
fn fields_have_stable_unique_names() {
    let names: Vec<&str> = Field::all().map(Field::name).collect();
    assert_eq!(names.len(), Field::COUNT);
    // Counts, `custom`, four duration sums, `sla_met`, four funnel counts.
    assert_eq!(names.len(), Kind::COUNT + 10);
    assert_eq!(Field::FunnelReturned.name(), "funnel_returned");
    for field in Field::all() {
        assert_eq!(Field::from_name(field.name()), Some(field));
    }
    assert_eq!(Field::Count(Kind::SessionStart).name(), "session.start");
    assert_eq!(Field::ResponseTimeMs.name(), "response_time_ms_sum");
    assert_eq!(Field::from_name("nope"), None);
}

#[test]
fn sums_count_events_and_sum_durations_in_millionths() {
    let t = at("2025-12-10T02:00:00Z");
    let events = [
        event("session.start", t, json!({"session_id": "s"})),
        event(
            "session.message",
            t,
            json!({"session_id": "s", "response_time_ms": 1500.25}),
        ),
        event(
            "session.message",
            t,
            json!({"session_id": "s", "response_time_ms": 0.5}),
        ),
        event(
            "ticket.closed",
            t,
            json!({"ticket_id": "t", "resolution_duration_hours": 4, "sla_met": true}),
        ),
        event(
            "ticket.closed",
            t,
            json!({"ticket_id": "u", "resolution_duration_hours": 2.5, "sla_met": false}),
        ),
        event("custom.x", t, json!({})),
    ];
    let sums = Sums::from_events(&events);
    assert_eq!(sums.count(Kind::SessionStart), 1);
    assert_eq!(sums.count(Kind::SessionMessage), 2);
    assert_eq!(sums.get(Field::ResponseTimeMs), 1_500_750_000);
    assert_eq!(sums.get(Field::ResolutionHours), 6_500_000);
    assert_eq!(sums.get(Field::SlaMet), 1);
    assert_eq!(sums.get(Field::Custom), 1);
    assert_eq!(sums.total_events(), 6);

    let json = serde_json::to_value(sums).unwrap();
    assert_eq!(json["session.message"], 2);
    assert_eq!(json["response_time_ms_sum"], 1_500_750_000u64);
    assert_eq!(json.as_object().unwrap().len(), Field::COUNT);
    assert_eq!(serde_json::from_value::<Sums>(json).unwrap(), sums);
    assert!(Sums::from_named([("bogus", 1)]).is_err());
}

#[test]
fn metrics_with_no_data_are_zero_or_null() {
    let metrics = BusinessMetrics::from_sums(&Sums::new(), CostPerResolution::default());
    assert_eq!(
        serde_json::to_value(&metrics).unwrap(),
        json!({
            "total_customers_served": 0, "escalations": 0, "ai_resolved": 0,
            "ai_resolution_rate": null, "avg_response_time_ms": null, "cost_saved_yuan": 0,
            "sessions_handled": 0, "avg_first_response_seconds": null,
            "avg_handle_time_seconds": null, "tickets_resolved": 0,
            "avg_resolution_time_hours": null, "sla_met_rate": null, "response_time_ms_p50": null, "response_time_ms_p90": null,
                "first_response_seconds_p50": null, "first_response_seconds_p90": null,
                "handle_time_seconds_p50": null, "handle_time_seconds_p90": null,
                "resolution_time_hours_p50": null, "resolution_time_hours_p90": null
        })
    );
    assert_eq!(
        serde_json::to_value(TicketMetrics::from_sums(&Sums::new())).unwrap(),
        json!({"tickets_created": 0, "tickets_resolved": 0, "avg_resolution_time_hours": null, "sla_met_rate": null})
    );
}

#[test]
fn ai_resolved_never_goes_below_zero() {
    let mut sums = Sums::new();
    sums.increment(Field::Count(Kind::SessionStart), 3);
    sums.increment(Field::Count(Kind::SessionEscalate), 5);
    let metrics = BusinessMetrics::from_sums(&sums, CostPerResolution::default());
    assert_eq!(metrics.ai_resolved, 0);
    assert_eq!(metrics.ai_resolution_rate, Some(0.0));
    assert_eq!(metrics.cost_saved_yuan, 0.0);
}

#[test]
fn metrics_follow_the_definitions_of_the_spec() {
    let t = at("2025-12-10T02:00:00Z");
    let mut events = Vec::new();
    for i in 0..4 {
        events.push(event(
            "session.start",
            t,
            json!({"session_id": format!("s{i}")}),
        ));
    }
    events.push(event("session.escalate", t, json!({"session_id": "s0"})));
    events.push(event(
        "session.message",
        t,
        json!({"session_id": "s0", "response_time_ms": 1000}),
    ));
    events.push(event(
        "session.message",
        t,
        json!({"session_id": "s1", "response_time_ms": 2000}),
    ));
    events.push(event(
        "agent.session_takeover",
        t,
        json!({"agent_id": "a", "session_id": "s0", "wait_duration_seconds": 20}),
    ));
    events.push(event(
        "agent.session_takeover",
        t,
        json!({"agent_id": "b", "session_id": "s9", "wait_duration_seconds": 40}),
    ));
    events.push(event(
        "agent.session_release",
        t,
        json!({"agent_id": "a", "session_id": "s0", "handle_duration_seconds": 300}),
    ));
    events.push(event(
        "agent.session_message",
        t,
        json!({"agent_id": "a", "session_id": "s0"}),
    ));
    events.push(event(
        "agent.session_transfer",
        t,
        json!({"agent_id": "a", "session_id": "s0", "to_agent_id": "b"}),
    ));
    events.push(event("ticket.created", t, json!({"ticket_id": "t1"})));
    events.push(event("ticket.created", t, json!({"ticket_id": "t2"})));
    events.push(event(
        "ticket.closed",
        t,
        json!({"ticket_id": "t1", "resolution_duration_hours": 3, "sla_met": true}),
    ));

    let sums = Sums::from_events(&events);
    let metrics = BusinessMetrics::from_sums(&sums, CostPerResolution::new(12.5).unwrap());
    assert_eq!(metrics.total_customers_served, 4);
    assert_eq!(metrics.escalations, 1);
    assert_eq!(metrics.ai_resolved, 3);
    assert_eq!(metrics.ai_resolution_rate, Some(0.75));
    assert_eq!(metrics.avg_response_time_ms, Some(1500.0));
    assert_eq!(metrics.cost_saved_yuan, 37.5);
    assert_eq!(metrics.sessions_handled, 2);
    assert_eq!(metrics.avg_first_response_seconds, Some(30.0));
    assert_eq!(metrics.avg_handle_time_seconds, Some(300.0));
    assert_eq!(metrics.tickets_resolved, 1);
    assert_eq!(metrics.avg_resolution_time_hours, Some(3.0));
    assert_eq!(metrics.sla_met_rate, Some(1.0));

    let tickets = TicketMetrics::from_sums(&sums);
    assert_eq!((tickets.tickets_created, tickets.tickets_resolved), (2, 1));

    let mut day = DaySummary::default();
    events.iter().for_each(|e| day.record(e));
    assert_eq!(day.totals, sums);
    let a = AgentMetrics::from_parts("a", &day.agents["a"], &day.sketches.agents["a"]);
    // One value each: the percentiles are that value.
    assert_eq!(
        serde_json::to_value(&a).unwrap(),
        json!({"agent_id": "a", "sessions_handled": 1, "avg_first_response_seconds": 20,
               "avg_handle_time_seconds": 300, "messages": 1, "transfers": 1,
               "first_response_seconds_p50": 20, "first_response_seconds_p90": 20,
               "handle_time_seconds_p50": 300, "handle_time_seconds_p90": 300})
    );
    let b = AgentMetrics::from_parts("b", &day.agents["b"], &day.sketches.agents["b"]);
    assert_eq!(b.handle_time_seconds_p50, None);
    assert_eq!(b.first_response_seconds_p90, Some(40.0));
    assert_eq!(b.avg_handle_time_seconds, None);
    assert_eq!(b.avg_first_response_seconds, Some(40.0));
}

#[test]
fn the_cost_per_resolution_must_be_a_finite_non_negative_number() {
    assert!(CostPerResolution::new(0.0).is_ok());
    assert!(CostPerResolution::new(-1.0).is_err());
    assert!(CostPerResolution::new(f64::NAN).is_err());
    assert_eq!(CostPerResolution::default().yuan(), 10.0);
}

/// One generated event: which kind, when in December 2025 (seconds from the start of
/// the month in Shanghai), a value in thousandths, a flag and an agent.
type Spec = (usize, i64, u64, bool, u8);

fn build(specs: &[Spec]) -> Vec<Event> {
    let month_start = at("2025-11-30T16:00:00Z");
    specs
        .iter()
        .map(|&(kind, offset, thousandths, flag, agent)| {
            let value = thousandths as f64 / 1000.0;
            let agent = format!("a{agent}");
            let (name, props) = match kind % 9 {
                0 => ("session.start", json!({"session_id": "s"})),
                1 => ("session.escalate", json!({"session_id": "s"})),
                2 => (
                    "session.message",
                    json!({"session_id": "s", "response_time_ms": value}),
                ),
                3 => (
                    "agent.session_takeover",
                    json!({"agent_id": agent, "session_id": "s", "wait_duration_seconds": value}),
                ),
                4 => (
                    "agent.session_release",
                    json!({"agent_id": agent, "session_id": "s", "handle_duration_seconds": value}),
                ),
                5 => (
                    "agent.session_message",
                    json!({"agent_id": agent, "session_id": "s"}),
                ),
                6 => (
                    "ticket.closed",
                    json!({"ticket_id": "t", "resolution_duration_hours": value, "sla_met": flag}),
                ),
                7 => ("ticket.created", json!({"ticket_id": "t"})),
                _ => ("custom.other", json!({"v": value})),
            };
            Event::restore(RawEvent {
                event_id: Some(Uuid::now_v7()),
                timestamp: Some(month_start + TimeDelta::seconds(offset)),
                ..RawEvent::new(name, props)
            })
            .unwrap()
        })
        .collect()
}

/// The metrics computed directly from the events, with no sums: counts and float means.
fn plain(events: &[Event]) -> (BTreeMap<&'static str, u64>, BTreeMap<&'static str, f64>) {
    let mut counts = BTreeMap::new();
    let mut totals = BTreeMap::<&str, f64>::new();
    for e in events {
        *counts
            .entry(e.kind().map_or("custom", |k| k.as_str()))
            .or_default() += 1;
        let props = e.properties();
        for (property, name) in [
            ("response_time_ms", "response"),
            ("wait_duration_seconds", "wait"),
            ("handle_duration_seconds", "handle"),
            ("resolution_duration_hours", "resolution"),
        ] {
            if let Some(Value::Number(n)) = props.get(property) {
                *totals.entry(name).or_default() += n.as_f64().unwrap();
            }
        }
    }
    (counts, totals)
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merging_daily_sums_in_any_order_and_grouping_gives_the_month(
        specs in prop::collection::vec(
            (0usize..9, 0i64..31 * 86_400, 0u64..10_000_000, any::<bool>(), 0u8..4),
            0..400,
        ),
        order_seed in any::<u64>(),
        cuts in prop::collection::vec(any::<bool>(), 31),
    ) {
        let events = build(&specs);
        let calendar = Calendar::default();
        let cost = CostPerResolution::default();

        // The whole month at once.
        let mut month = DaySummary::default();
        events.iter().for_each(|e| month.record(e));

        // Day by day, then merged in a shuffled order and an arbitrary grouping.
        let mut days = BTreeMap::<NaiveDate, DaySummary>::new();
        for e in &events {
            days.entry(calendar.date(e.timestamp())).or_default().record(e);
        }
        let mut daily: Vec<DaySummary> = days.into_values().collect();
        let mut state = order_seed | 1;
        for i in (1..daily.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            daily.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut groups = vec![DaySummary::default()];
        for (i, day) in daily.iter().enumerate() {
            if cuts[i % cuts.len()] { groups.push(DaySummary::default()); }
            groups.last_mut().unwrap().merge(day);
        }
        let mut merged = DaySummary::default();
        for group in groups.iter().rev() { merged.merge(group); }

        prop_assert_eq!(&merged, &month);
        prop_assert_eq!(
            BusinessMetrics::from_sums(&merged.totals, cost),
            BusinessMetrics::from_sums(&month.totals, cost)
        );
        for (agent, sums) in &merged.agents {
            prop_assert_eq!(AgentMetrics::from_sums(agent, sums), AgentMetrics::from_sums(agent, &month.agents[agent]));
        }

        // And the sums say what a direct computation over the events says.
        let (counts, totals) = plain(&events);
        let metrics = BusinessMetrics::from_sums(&merged.totals, cost);
        let count = |name: &str| counts.get(name).copied().unwrap_or(0);
        let mean = |total: &str, of: &str| (count(of) > 0).then(|| totals.get(total).copied().unwrap_or(0.0) / count(of) as f64);
        prop_assert_eq!(metrics.total_customers_served, count("session.start"));
        prop_assert_eq!(metrics.escalations, count("session.escalate"));
        prop_assert_eq!(metrics.ai_resolved, count("session.start").saturating_sub(count("session.escalate")));
        prop_assert_eq!(metrics.sessions_handled, count("agent.session_takeover"));
        prop_assert_eq!(metrics.tickets_resolved, count("ticket.closed"));
        prop_assert!(close(metrics.avg_response_time_ms, mean("response", "session.message")));
        prop_assert!(close(metrics.avg_first_response_seconds, mean("wait", "agent.session_takeover")));
        prop_assert!(close(metrics.avg_handle_time_seconds, mean("handle", "agent.session_release")));
        prop_assert!(close(metrics.avg_resolution_time_hours, mean("resolution", "ticket.closed")));
        let sla = events.iter().filter(|e| e.properties().get("sla_met") == Some(&json!(true))).count() as u64;
        prop_assert_eq!(metrics.sla_met_rate, (count("ticket.closed") > 0).then(|| sla as f64 / count("ticket.closed") as f64));
        prop_assert_eq!(merged.totals.total_events(), events.len() as u64);
    }
}
