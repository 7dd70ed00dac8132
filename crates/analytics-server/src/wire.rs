//! The API's own request and response types: what goes over the wire (SPEC §9), and
//! what the OpenAPI document is derived from. The statistics layer's types are mapped
//! into these, so that a change there cannot change an answer unnoticed; the metric
//! blocks inside them (`BusinessMetrics`, `AgentMetrics`, `TicketMetrics`, `AiFunnel`,
//! the case study) are the report of SPEC §5–§6 itself, shared with the case study's
//! text and the CSV exports.

use analytics::core::metrics::Sums;
use analytics::core::report::{AgentMetrics, AiFunnel, BusinessMetrics, TicketMetrics};
use analytics::core::time::YearMonth;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

/// Every refusal: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// A refusal's code and message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code (`invalid_parameter`, `buffer_full`, …).
    pub code: &'static str,
    /// What is wrong, in words, naming the input.
    pub message: String,
}

/// `POST /events`: how many events were taken, and which were not.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Events taken (stored, or buffered with `ack=buffered`).
    pub accepted: usize,
    /// Events refused, by their index in the batch; the others were taken.
    pub rejected: Vec<Rejected>,
}

/// One refused event of a batch (fields in the order the API has always written
/// them).
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejected {
    /// Why, naming the field.
    pub error: String,
    /// Its index in `events`.
    pub index: usize,
}

/// `POST /events`'s body (documentation only: the body is parsed strictly by hand).
#[derive(Debug, ToSchema)]
#[allow(dead_code, reason = "documents the body the ingest handler parses")]
pub struct IngestBody {
    /// At most 1,000 events.
    #[schema(max_items = 1000)]
    events: Vec<Envelope>,
}

/// One event as a product sends it (SPEC §4).
#[derive(Debug, ToSchema)]
#[allow(dead_code, reason = "documents the body the ingest handler parses")]
pub struct Envelope {
    /// Idempotency key; a UUID v7 is generated when absent.
    #[schema(format = "uuid")]
    event_id: Option<String>,
    /// A catalog name (SPEC §4), the legacy `message.ai`, or `custom.<name>`.
    event: String,
    /// `ai_chatbot` or `agent_workbench`.
    product: Option<String>,
    /// RFC 3339; at most 5 minutes ahead, within the retention window.
    timestamp: Option<DateTime<Utc>>,
    /// The event's properties, at most 32 KiB serialized.
    #[schema(value_type = Object)]
    properties: Option<serde_json::Value>,
}

/// `POST /flush`: everything buffered is stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct Flushed {
    /// Always true (a flush that did not finish is a 503).
    pub flushed: bool,
}

/// One hour of the real-time view.
#[derive(Debug, Serialize, ToSchema)]
pub struct Hour {
    /// The business day.
    pub date: NaiveDate,
    /// The hour, 0–23.
    pub hour: u8,
    /// Events in the hour.
    pub events: u64,
    /// Sessions started in the hour.
    pub sessions_started: u64,
}

impl From<analytics::stats::HourFigures> for Hour {
    fn from(hour: analytics::stats::HourFigures) -> Hour {
        Hour {
            date: hour.date,
            hour: hour.hour,
            events: hour.events,
            sessions_started: hour.sessions_started,
        }
    }
}

/// Today's sums as counters: every field of the metric model except the AI funnel's,
/// which are not counted from events (the refresh job stores a day's funnel with its
/// statistics; `GET /ai` answers it) and would read 0 or not depending on where today
/// was read from.
#[derive(Debug)]
pub struct TodayCounters(Sums);

impl Serialize for TodayCounters {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use analytics::core::metrics::Field;
        serializer.collect_map(
            Field::all()
                .filter(|field| {
                    !matches!(
                        field,
                        Field::FunnelSessions
                            | Field::FunnelAiHandled
                            | Field::FunnelReturned
                            | Field::FunnelWithoutCustomer
                    )
                })
                .map(|field| (field.name(), self.0.get(field))),
        )
    }
}

/// `GET /realtime`: today so far, this hour, the last 24 hours, and who is active.
#[derive(Debug, Serialize, ToSchema)]
pub struct Realtime {
    /// When the view was taken.
    pub as_of: DateTime<Utc>,
    /// Today's business date.
    pub date: NaiveDate,
    /// Events recorded today, all kinds.
    pub events_today: u64,
    /// Today's counters: events by name (`custom` for custom ones) and the summed
    /// durations in millionths of their unit, by field name.
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    pub today_counters: TodayCounters,
    /// Today's metrics so far, without percentiles (null; `/daily` of today has them).
    pub today: BusinessMetrics,
    /// This hour.
    pub this_hour: Hour,
    /// The last 24 hours, oldest first, this hour last.
    pub last_24_hours: Vec<Hour>,
    /// Sessions started, not ended, and active within the idle time.
    pub active_sessions: u64,
    /// Agents logged in and not offline.
    pub online_agents: u64,
}

impl From<analytics::stats::Realtime> for Realtime {
    fn from(view: analytics::stats::Realtime) -> Realtime {
        Realtime {
            as_of: view.as_of,
            date: view.date,
            events_today: view.events_today,
            today_counters: TodayCounters(view.today_counters),
            today: view.today,
            this_hour: view.this_hour.into(),
            last_24_hours: view.last_24_hours.into_iter().map(Hour::from).collect(),
            active_sessions: view.active_sessions,
            online_agents: view.online_agents,
        }
    }
}

/// `GET /daily`: one day's metrics.
#[derive(Debug, Serialize, ToSchema)]
pub struct Day {
    /// The business day.
    pub date: NaiveDate,
    /// Its metrics (SPEC §5), null where there is no data.
    pub raw: BusinessMetrics,
}

/// `GET /range`: every day of an inclusive range of at most 366 days.
#[derive(Debug, Serialize, ToSchema)]
pub struct Range {
    /// The first day.
    pub start: NaiveDate,
    /// The last day.
    pub end: NaiveDate,
    /// The whole range: sums over all its days, percentiles over all its values.
    pub total: BusinessMetrics,
    /// Each day, in order.
    pub days: Vec<Day>,
}

/// `GET /agents`: each agent's figures for a month.
#[derive(Debug, Serialize, ToSchema)]
pub struct Agents {
    /// The month, `YYYY-MM`.
    #[schema(value_type = String, example = "2025-12")]
    pub month: YearMonth,
    /// One entry per agent with activity, by agent id.
    pub agents: Vec<AgentMetrics>,
}

/// `GET /tickets`: a month's ticket figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tickets {
    /// The month, `YYYY-MM`.
    #[schema(value_type = String, example = "2025-12")]
    pub month: YearMonth,
    /// The figures.
    #[serde(flatten)]
    pub tickets: TicketMetrics,
}

/// `GET /ai`: the AI funnel (SPEC §5) of a range of days, and of each day.
#[derive(Debug, Serialize, ToSchema)]
pub struct Funnel {
    /// The first day.
    pub start: NaiveDate,
    /// The last day.
    pub end: NaiveDate,
    /// How long after a session its customer's next session counts as a return.
    pub return_window_hours: f64,
    /// The whole range.
    #[serde(flatten)]
    pub total: AiFunnel,
    /// Each day, in order, counted on its own.
    pub days: Vec<FunnelDay>,
}

/// The AI funnel of one day.
#[derive(Debug, Serialize, ToSchema)]
pub struct FunnelDay {
    /// The business day.
    pub date: NaiveDate,
    /// Its figures.
    #[serde(flatten)]
    pub funnel: AiFunnel,
}

impl From<analytics::stats::FunnelReport> for Funnel {
    fn from(report: analytics::stats::FunnelReport) -> Funnel {
        Funnel {
            start: report.start,
            end: report.end,
            return_window_hours: report.return_window_hours,
            total: report.total,
            days: report
                .days
                .into_iter()
                .map(|day| FunnelDay {
                    date: day.date,
                    funnel: day.funnel,
                })
                .collect(),
        }
    }
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// `GET /readyz`: whether the stores answer (fields in the order the API has always
/// written them).
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ok`, or `unavailable`: the counters answer.
    pub counters: &'static str,
    /// `ok`, or `unavailable`: the database answers reads, and the last write went
    /// through.
    pub database: &'static str,
    /// `ready`, or `unavailable` (503).
    pub status: &'static str,
    /// `ok`, or why the last write to the event store failed.
    pub writing: String,
}

/// What every endpoint that needs a key may answer besides its own answer.
#[derive(Debug, IntoResponses)]
#[allow(
    dead_code,
    reason = "documents the refusals; the handlers answer ApiError"
)]
pub enum Refusals {
    /// Malformed request: the message names what is wrong.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Missing or unknown API key.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The key lacks the scope.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// A store is unavailable, or the service is shutting down; retry later.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// What `POST /events` may answer besides 202, in addition to [`Refusals`].
#[derive(Debug, IntoResponses)]
#[allow(
    dead_code,
    reason = "documents the refusals; the handler answers ApiError"
)]
pub enum IngestRefusals {
    /// The body took longer than the body timeout to arrive.
    #[response(status = 408)]
    Timeout(ErrorBody),
    /// The body is over 1 MiB, or holds more than 1,000 events.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not `application/json`, or its encoding is not gzip.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answers the handlers used to write with `json!` (keys sorted) come out byte
    /// for byte as before.
    #[test]
    fn answers_keep_their_wire_form() {
        let accepted = Accepted {
            accepted: 1,
            rejected: vec![Rejected {
                error: "no".to_owned(),
                index: 1,
            }],
        };
        let ready = Ready {
            counters: "ok",
            database: "unavailable",
            status: "unavailable",
            writing: "ok".to_owned(),
        };
        let error = ErrorBody {
            error: ErrorDetail {
                code: "buffer_full",
                message: "full".to_owned(),
            },
        };
        assert_eq!(
            text(&accepted),
            r#"{"accepted":1,"rejected":[{"error":"no","index":1}]}"#
        );
        assert_eq!(
            text(&ready),
            r#"{"counters":"ok","database":"unavailable","status":"unavailable","writing":"ok"}"#
        );
        assert_eq!(
            text(&error),
            r#"{"error":{"code":"buffer_full","message":"full"}}"#
        );
        assert_eq!(text(&Flushed { flushed: true }), r#"{"flushed":true}"#);
        assert_eq!(text(&Health { status: "ok" }), r#"{"status":"ok"}"#);
    }

    fn text<T: Serialize>(value: &T) -> String {
        serde_json::to_string(value).unwrap_or_default()
    }
}
