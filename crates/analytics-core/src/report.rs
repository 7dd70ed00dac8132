//! The derived report of SPEC §5: the metrics a period's [`Sums`] give — means,
//! rates, the AI funnel, the money saved — in their own units, as the case study and
//! the API show them. Computed from sums only, never stored.

use serde::{Deserialize, Serialize};

use crate::catalog::Kind;
use crate::error::{ConfigError, Result};
use crate::metrics::{Field, FunnelCounts, MICROS_PER_UNIT, Sums};
use crate::sketch::Sketches;

/// The money an AI-resolved session saves, in yuan (SPEC §5, default ¥10).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct CostPerResolution(f64);

impl CostPerResolution {
    /// A cost in yuan.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `yuan` is negative or not finite.
    pub fn new(yuan: f64) -> Result<CostPerResolution> {
        if yuan.is_finite() && yuan >= 0.0 {
            Ok(CostPerResolution(yuan))
        } else {
            Err(ConfigError {
                variable: "ANALYTICS_COST_PER_RESOLUTION",
                message: format!("must be a finite number of yuan, at least 0 (got {yuan})"),
            }
            .into())
        }
    }

    /// The cost in yuan.
    pub fn yuan(self) -> f64 {
        self.0
    }
}

impl Default for CostPerResolution {
    fn default() -> CostPerResolution {
        CostPerResolution(10.0)
    }
}

fn mean(sum_micros: u64, count: u64) -> Option<f64> {
    (count > 0).then(|| sum_micros as f64 / count as f64 / MICROS_PER_UNIT)
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

use crate::json::serde_with as num_serde;

/// The metrics of SPEC §5 for a period, in their own units: the `raw` block of the case
/// study (§6) and of `/daily` and `/range` (§9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BusinessMetrics {
    /// Count of `session.start`.
    pub total_customers_served: u64,
    /// Count of `session.escalate`.
    pub escalations: u64,
    /// `max(0, total_customers_served − escalations)`.
    pub ai_resolved: u64,
    /// `ai_resolved / total_customers_served`, a fraction; null without sessions.
    #[serde(serialize_with = "num_serde::option")]
    pub ai_resolution_rate: Option<f64>,
    /// Mean `response_time_ms` of `session.message`; null without messages.
    #[serde(serialize_with = "num_serde::option")]
    pub avg_response_time_ms: Option<f64>,
    /// `ai_resolved × cost per resolution`, in yuan.
    #[serde(serialize_with = "num_serde::one")]
    pub cost_saved_yuan: f64,
    /// Count of `agent.session_takeover`.
    pub sessions_handled: u64,
    /// Mean `wait_duration_seconds` of takeovers; null without takeovers.
    #[serde(serialize_with = "num_serde::option")]
    pub avg_first_response_seconds: Option<f64>,
    /// Mean `handle_duration_seconds` of releases; null without releases.
    #[serde(serialize_with = "num_serde::option")]
    pub avg_handle_time_seconds: Option<f64>,
    /// Count of `ticket.closed`.
    pub tickets_resolved: u64,
    /// Mean `resolution_duration_hours` of `ticket.closed`; null without closed tickets.
    #[serde(serialize_with = "num_serde::option")]
    pub avg_resolution_time_hours: Option<f64>,
    /// Closed with `sla_met = true` over `tickets_resolved`, a fraction; null without
    /// closed tickets.
    #[serde(serialize_with = "num_serde::option")]
    pub sla_met_rate: Option<f64>,
    /// Median `response_time_ms` of `session.message` (within 1 %); null without.
    #[serde(serialize_with = "num_serde::option")]
    pub response_time_ms_p50: Option<f64>,
    /// 90th percentile `response_time_ms`; null without messages.
    #[serde(serialize_with = "num_serde::option")]
    pub response_time_ms_p90: Option<f64>,
    /// Median `wait_duration_seconds` of takeovers; null without takeovers.
    #[serde(serialize_with = "num_serde::option")]
    pub first_response_seconds_p50: Option<f64>,
    /// 90th percentile `wait_duration_seconds`; null without takeovers.
    #[serde(serialize_with = "num_serde::option")]
    pub first_response_seconds_p90: Option<f64>,
    /// Median `handle_duration_seconds` of releases; null without releases.
    #[serde(serialize_with = "num_serde::option")]
    pub handle_time_seconds_p50: Option<f64>,
    /// 90th percentile `handle_duration_seconds`; null without releases.
    #[serde(serialize_with = "num_serde::option")]
    pub handle_time_seconds_p90: Option<f64>,
    /// Median `resolution_duration_hours` of `ticket.closed`; null without.
    #[serde(serialize_with = "num_serde::option")]
    pub resolution_time_hours_p50: Option<f64>,
    /// 90th percentile `resolution_duration_hours`; null without closed tickets.
    #[serde(serialize_with = "num_serde::option")]
    pub resolution_time_hours_p90: Option<f64>,
}

impl BusinessMetrics {
    /// Derives the metrics from the sums and the distributions of a period.
    pub fn from_parts(
        sums: &Sums,
        sketches: &Sketches,
        cost: CostPerResolution,
    ) -> BusinessMetrics {
        let (response_time_ms_p50, response_time_ms_p90) = sketches.p50_p90(Field::ResponseTimeMs);
        let (first_response_seconds_p50, first_response_seconds_p90) =
            sketches.p50_p90(Field::WaitSeconds);
        let (handle_time_seconds_p50, handle_time_seconds_p90) =
            sketches.p50_p90(Field::HandleSeconds);
        let (resolution_time_hours_p50, resolution_time_hours_p90) =
            sketches.p50_p90(Field::ResolutionHours);
        BusinessMetrics {
            response_time_ms_p50,
            response_time_ms_p90,
            first_response_seconds_p50,
            first_response_seconds_p90,
            handle_time_seconds_p50,
            handle_time_seconds_p90,
            resolution_time_hours_p50,
            resolution_time_hours_p90,
            ..BusinessMetrics::from_sums(sums, cost)
        }
    }

    /// Derives the metrics from the sums of a period, without percentiles.
    pub fn from_sums(sums: &Sums, cost: CostPerResolution) -> BusinessMetrics {
        let served = sums.count(Kind::SessionStart);
        let escalations = sums.count(Kind::SessionEscalate);
        let ai_resolved = served.saturating_sub(escalations);
        let takeovers = sums.count(Kind::AgentSessionTakeover);
        let closed = sums.count(Kind::TicketClosed);
        BusinessMetrics {
            total_customers_served: served,
            escalations,
            ai_resolved,
            ai_resolution_rate: ratio(ai_resolved, served),
            avg_response_time_ms: mean(
                sums.get(Field::ResponseTimeMs),
                sums.count(Kind::SessionMessage),
            ),
            cost_saved_yuan: ai_resolved as f64 * cost.yuan(),
            sessions_handled: takeovers,
            avg_first_response_seconds: mean(sums.get(Field::WaitSeconds), takeovers),
            avg_handle_time_seconds: mean(
                sums.get(Field::HandleSeconds),
                sums.count(Kind::AgentSessionRelease),
            ),
            tickets_resolved: closed,
            avg_resolution_time_hours: mean(sums.get(Field::ResolutionHours), closed),
            sla_met_rate: ratio(sums.get(Field::SlaMet), closed),
            response_time_ms_p50: None,
            response_time_ms_p90: None,
            first_response_seconds_p50: None,
            first_response_seconds_p90: None,
            handle_time_seconds_p50: None,
            handle_time_seconds_p90: None,
            resolution_time_hours_p50: None,
            resolution_time_hours_p90: None,
        }
    }
}

/// One agent's figures for a period (SPEC §9 `/agents`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentMetrics {
    /// The agent.
    pub agent_id: String,
    /// Count of the agent's `agent.session_takeover`.
    pub sessions_handled: u64,
    /// Mean `wait_duration_seconds` of the agent's takeovers.
    #[serde(serialize_with = "num_serde::option")]
    pub avg_first_response_seconds: Option<f64>,
    /// Mean `handle_duration_seconds` of the agent's releases.
    #[serde(serialize_with = "num_serde::option")]
    pub avg_handle_time_seconds: Option<f64>,
    /// Count of the agent's `agent.session_message`.
    pub messages: u64,
    /// Count of the agent's `agent.session_transfer`.
    pub transfers: u64,
    /// Median `wait_duration_seconds` of the agent's takeovers (within 1 %).
    #[serde(serialize_with = "num_serde::option")]
    pub first_response_seconds_p50: Option<f64>,
    /// 90th percentile `wait_duration_seconds` of the agent's takeovers.
    #[serde(serialize_with = "num_serde::option")]
    pub first_response_seconds_p90: Option<f64>,
    /// Median `handle_duration_seconds` of the agent's releases.
    #[serde(serialize_with = "num_serde::option")]
    pub handle_time_seconds_p50: Option<f64>,
    /// 90th percentile `handle_duration_seconds` of the agent's releases.
    #[serde(serialize_with = "num_serde::option")]
    pub handle_time_seconds_p90: Option<f64>,
}

impl AgentMetrics {
    /// Derives one agent's figures from the sums and distributions of its events.
    pub fn from_parts(
        agent_id: impl Into<String>,
        sums: &Sums,
        sketches: &Sketches,
    ) -> AgentMetrics {
        let (first_response_seconds_p50, first_response_seconds_p90) =
            sketches.p50_p90(Field::WaitSeconds);
        let (handle_time_seconds_p50, handle_time_seconds_p90) =
            sketches.p50_p90(Field::HandleSeconds);
        AgentMetrics {
            first_response_seconds_p50,
            first_response_seconds_p90,
            handle_time_seconds_p50,
            handle_time_seconds_p90,
            ..AgentMetrics::from_sums(agent_id, sums)
        }
    }

    /// Derives one agent's figures from the sums of its events, without percentiles.
    pub fn from_sums(agent_id: impl Into<String>, sums: &Sums) -> AgentMetrics {
        let takeovers = sums.count(Kind::AgentSessionTakeover);
        AgentMetrics {
            agent_id: agent_id.into(),
            sessions_handled: takeovers,
            avg_first_response_seconds: mean(sums.get(Field::WaitSeconds), takeovers),
            avg_handle_time_seconds: mean(
                sums.get(Field::HandleSeconds),
                sums.count(Kind::AgentSessionRelease),
            ),
            messages: sums.count(Kind::AgentSessionMessage),
            transfers: sums.count(Kind::AgentSessionTransfer),
            first_response_seconds_p50: None,
            first_response_seconds_p90: None,
            handle_time_seconds_p50: None,
            handle_time_seconds_p90: None,
        }
    }
}

/// Ticket figures for a period (SPEC §9 `/tickets`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketMetrics {
    /// Count of `ticket.created`.
    pub tickets_created: u64,
    /// Count of `ticket.closed`.
    pub tickets_resolved: u64,
    /// Mean `resolution_duration_hours` of `ticket.closed`.
    #[serde(serialize_with = "num_serde::option")]
    pub avg_resolution_time_hours: Option<f64>,
    /// Closed with `sla_met = true` over closed, a fraction.
    #[serde(serialize_with = "num_serde::option")]
    pub sla_met_rate: Option<f64>,
}

impl TicketMetrics {
    /// Derives ticket figures from the sums of a period (the percentiles of resolution
    /// time are in the case study's `raw`: `/tickets` keeps SPEC §9's fields).
    pub fn from_sums(sums: &Sums) -> TicketMetrics {
        let closed = sums.count(Kind::TicketClosed);
        TicketMetrics {
            tickets_created: sums.count(Kind::TicketCreated),
            tickets_resolved: closed,
            avg_resolution_time_hours: mean(sums.get(Field::ResolutionHours), closed),
            sla_met_rate: ratio(sums.get(Field::SlaMet), closed),
        }
    }
}

/// The AI funnel's figures (SPEC §5): counts, rates as fractions (null without a
/// denominator), the money the durable resolutions save, and whether the figure is
/// still provisional (a return can still come: the window after the period's last
/// session start has not passed).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AiFunnel {
    /// Sessions started.
    pub sessions: u64,
    /// Sessions the AI handled alone (no hand-off).
    pub ai_handled: u64,
    /// Of those, sessions whose customer came back within the window.
    pub returned: u64,
    /// `ai_handled − returned`: handled alone and not back within the window.
    pub durable_ai_resolved: u64,
    /// `durable_ai_resolved / sessions`.
    #[serde(serialize_with = "num_serde::option")]
    pub durable_ai_resolution_rate: Option<f64>,
    /// `returned / ai_handled`.
    #[serde(serialize_with = "num_serde::option")]
    pub return_rate: Option<f64>,
    /// Sessions without `customer_id` (counted as not returned).
    pub sessions_without_customer: u64,
    /// `sessions_without_customer / sessions`: how far the figure can be judged.
    #[serde(serialize_with = "num_serde::option")]
    pub without_customer_share: Option<f64>,
    /// `durable_ai_resolved × cost per resolution`, in yuan.
    #[serde(serialize_with = "num_serde::one")]
    pub cost_saved_durable_yuan: f64,
    /// Whether a return may still change the figure.
    pub provisional: bool,
}

impl AiFunnel {
    /// The figures of some counts.
    pub fn from_counts(
        counts: &FunnelCounts,
        cost: CostPerResolution,
        provisional: bool,
    ) -> AiFunnel {
        let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        let durable = counts.ai_handled - counts.returned;
        AiFunnel {
            sessions: counts.sessions,
            ai_handled: counts.ai_handled,
            returned: counts.returned,
            durable_ai_resolved: durable,
            durable_ai_resolution_rate: ratio(durable, counts.sessions),
            return_rate: ratio(counts.returned, counts.ai_handled),
            sessions_without_customer: counts.without_customer,
            without_customer_share: ratio(counts.without_customer, counts.sessions),
            cost_saved_durable_yuan: durable as f64 * cost.yuan(),
            provisional,
        }
    }
}
