//! Rows of `analytics_events` for `COPY … FROM STDIN`, in the binary format (how
//! [`crate::PgStore`] writes batches: the server parses no text for the ids, instants
//! and numbers) and in the text format (kept for comparison).

use analytics_core::event::Event;
use analytics_core::metrics::Measure;
use chrono::{Datelike, Timelike};

/// The column list every `COPY` of events names, in the order [`encode`] writes.
pub const COLUMNS: &str = "event_id, occurred_at, event, product, session_id, agent_id, \
                                  ticket_id, value_micros, sla_met, properties";

/// The start of a binary `COPY`: signature, flags, header extension length.
pub const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The end of a binary `COPY`.
pub const BINARY_TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Appends one event as a row of `COPY`'s binary format, in the order of [`COLUMNS`].
pub fn encode_binary(out: &mut Vec<u8>, event: &Event) {
    fn bytes(out: &mut Vec<u8>, value: Option<&[u8]>) {
        match value {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(value) => {
                out.extend_from_slice(&(value.len() as i32).to_be_bytes());
                out.extend_from_slice(value);
            }
        }
    }
    let measure = Measure::of(event);
    out.extend_from_slice(&10i16.to_be_bytes());
    bytes(out, Some(event.id().as_bytes()));
    let at = event.timestamp().timestamp_micros() - POSTGRES_EPOCH_MICROS;
    bytes(out, Some(&at.to_be_bytes()));
    bytes(out, Some(event.name().as_bytes()));
    bytes(out, event.product().map(|p| p.as_str().as_bytes()));
    bytes(out, event.session_id().map(str::as_bytes));
    bytes(out, event.agent_id().map(str::as_bytes));
    bytes(out, event.ticket_id().map(str::as_bytes));
    bytes(
        out,
        measure
            .value_micros
            .map(|v| (v as i64).to_be_bytes())
            .as_ref()
            .map(|b| &b[..]),
    );
    bytes(
        out,
        measure
            .sla_met
            .map(|b| [u8::from(b)])
            .as_ref()
            .map(|b| &b[..]),
    );
    // jsonb: a version byte (1), then the JSON text.
    let properties = event.properties_json();
    out.extend_from_slice(&((properties.len() + 1) as i32).to_be_bytes());
    out.push(1);
    out.extend_from_slice(properties.as_bytes());
}

/// Appends one event as a row of `COPY`'s text format.
pub fn encode(out: &mut String, event: &Event) {
    use std::fmt::Write as _;
    let measure = Measure::of(event);
    // The id and the instant need no escaping: written in place, without a String each.
    let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.push_str(event.id().hyphenated().encode_lower(&mut id));
    out.push('\t');
    let at = event.timestamp();
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z\t",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        // A leap second's nanoseconds run past 999,999,999: PostgreSQL has none.
        (at.nanosecond() % 1_000_000_000) / 1_000,
    );
    field(out, Some(event.name()));
    field(out, event.product().map(|p| p.as_str()));
    field(out, event.session_id());
    field(out, event.agent_id());
    field(out, event.ticket_id());
    match measure.value_micros {
        Some(value) => {
            let _ = write!(out, "{value}\t");
        }
        None => out.push_str("\\N\t"),
    }
    field(out, measure.sla_met.map(|b| if b { "t" } else { "f" }));
    field(out, Some(&event.properties_json()));
    // The last field ends the row, not another field.
    out.pop();
    out.push('\n');
}

/// Appends one field and its tab: `\N` for null, text with `\`, tab, newline and
/// carriage return escaped (copied in runs between them, not char by char).
fn field(out: &mut String, value: Option<&str>) {
    match value {
        None => out.push_str("\\N"),
        Some(value) => {
            let mut run = 0;
            for (i, byte) in value.bytes().enumerate() {
                let escaped = match byte {
                    b'\\' => "\\\\",
                    b'\t' => "\\t",
                    b'\n' => "\\n",
                    b'\r' => "\\r",
                    _ => continue,
                };
                // ASCII bytes are char boundaries.
                out.push_str(&value[run..i]);
                out.push_str(escaped);
                run = i + 1;
            }
            out.push_str(&value[run..]);
        }
    }
    out.push('\t');
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_escaped_for_copy() {
        let mut out = String::new();
        field(&mut out, Some("a\\b\tc\nd\re"));
        field(&mut out, None);
        field(&mut out, Some("ünïcode\\"));
        assert_eq!(out, "a\\\\b\\tc\\nd\\re\t\\N\tünïcode\\\\\t");
    }
}
