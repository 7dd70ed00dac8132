//! CSV exports (SPEC §9): daily figures of a range, a month's agents, and one row per
//! session from event detail. UTF-8 with a header row, RFC 4180 quoting (the `csv`
//! crate), numbers unformatted (counts as integers, means in their unit with as many
//! digits as they need, rates as fractions), an empty field where the JSON has `null`.
//! The sessions export is produced as it is read, a few hundred rows at a time, so that
//! its size does not matter to memory.

use analytics::core::report::{AgentMetrics, BusinessMetrics};
use analytics::core::store::{SessionRow, SessionStream};
use analytics::core::time::Calendar;
use chrono::{NaiveDate, SecondsFormat};
use futures_util::StreamExt as _;
use serde_json::Value;

/// The columns of `daily.csv`: the date, then the §6 `raw` fields in their order.
pub const DAILY_COLUMNS: [&str; 21] = [
    "date",
    "total_customers_served",
    "escalations",
    "ai_resolved",
    "ai_resolution_rate",
    "avg_response_time_ms",
    "cost_saved_yuan",
    "sessions_handled",
    "avg_first_response_seconds",
    "avg_handle_time_seconds",
    "tickets_resolved",
    "avg_resolution_time_hours",
    "sla_met_rate",
    "response_time_ms_p50",
    "response_time_ms_p90",
    "first_response_seconds_p50",
    "first_response_seconds_p90",
    "handle_time_seconds_p50",
    "handle_time_seconds_p90",
    "resolution_time_hours_p50",
    "resolution_time_hours_p90",
];

/// The columns of `agents.csv`, as `/agents` names them.
pub const AGENT_COLUMNS: [&str; 10] = [
    "agent_id",
    "sessions_handled",
    "avg_first_response_seconds",
    "avg_handle_time_seconds",
    "messages",
    "transfers",
    "first_response_seconds_p50",
    "first_response_seconds_p90",
    "handle_time_seconds_p50",
    "handle_time_seconds_p90",
];

/// The columns of `sessions.csv`.
pub const SESSION_COLUMNS: [&str; 11] = [
    "session_id",
    "started_at",
    "date",
    "channel",
    "customer_id",
    "ai_handled",
    "escalated",
    "agent_id",
    "first_response_seconds",
    "handle_time_seconds",
    "returned",
];

/// A JSON value as a CSV field: strings as they are, numbers as JSON writes them,
/// `null` empty.
fn field(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

fn finish(writer: csv::Writer<Vec<u8>>) -> std::io::Result<Vec<u8>> {
    writer
        .into_inner()
        .map_err(|error| std::io::Error::other(error.to_string()))
}

/// `daily.csv`: one row per day.
///
/// # Errors
///
/// Only if a value cannot be written (not for these types).
pub fn daily_csv(days: &[(NaiveDate, BusinessMetrics)]) -> std::io::Result<Vec<u8>> {
    let mut out = writer();
    out.write_record(DAILY_COLUMNS)?;
    for (date, raw) in days {
        let raw = serde_json::to_value(raw).map_err(std::io::Error::other)?;
        let mut record = vec![date.to_string()];
        record.extend(DAILY_COLUMNS[1..].iter().map(|name| field(raw.get(*name))));
        out.write_record(&record)?;
    }
    finish(out)
}

/// `agents.csv`: one row per agent.
///
/// # Errors
///
/// Only if a value cannot be written (not for these types).
pub fn agents_csv(agents: &[AgentMetrics]) -> std::io::Result<Vec<u8>> {
    let mut out = writer();
    out.write_record(AGENT_COLUMNS)?;
    for agent in agents {
        let value = serde_json::to_value(agent).map_err(std::io::Error::other)?;
        let record: Vec<String> = AGENT_COLUMNS
            .iter()
            .map(|name| field(value.get(*name)))
            .collect();
        out.write_record(&record)?;
    }
    finish(out)
}

/// Seconds from millionths, unformatted.
fn seconds(micros: Option<u64>) -> String {
    micros.map_or_else(String::new, |m| (m as f64 / 1e6).to_string())
}

fn session_record(row: &SessionRow, calendar: &Calendar) -> [String; 11] {
    [
        row.session_id.clone(),
        row.started_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        calendar.date(row.started_at).to_string(),
        row.channel.clone().unwrap_or_default(),
        row.customer_id.clone().unwrap_or_default(),
        (!row.escalated).to_string(),
        row.escalated.to_string(),
        row.agent_id.clone().unwrap_or_default(),
        seconds(row.first_response_micros),
        seconds(row.handle_time_micros),
        row.returned.to_string(),
    ]
}

/// How many sessions go into one chunk of the body.
const ROWS_PER_CHUNK: usize = 256;

/// `sessions.csv` as a stream of chunks: the header, then the rows as the store reads
/// them. A store error ends the stream with an error (the response is cut short, so
/// that a client never takes a partial file for a whole one).
pub fn sessions_csv(
    sessions: SessionStream,
    calendar: Calendar,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    let header = {
        let mut out = writer();
        let _ = out.write_record(SESSION_COLUMNS);
        finish(out)
    };
    let rows = sessions.chunks(ROWS_PER_CHUNK).map(move |chunk| {
        let mut out = writer();
        for row in chunk {
            let row = row.map_err(|error| {
                tracing::error!(%error, "the sessions export failed while reading");
                std::io::Error::other(error.to_string())
            })?;
            out.write_record(session_record(&row, &calendar))?;
        }
        finish(out)
    });
    futures_util::stream::once(async move { header }).chain(rows)
}
