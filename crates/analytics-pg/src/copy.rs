//! Rows of `analytics_events` in the text format of `COPY … FROM STDIN`: how
//! [`crate::PgStore`] writes batches, and what benchmarks compare it with.

use analytics_core::event::Event;
use analytics_core::metrics::Measure;
use chrono::{Datelike, Timelike};

/// The column list every `COPY` of events names, in the order [`encode`] writes.
pub const COLUMNS: &str = "event_id, occurred_at, event, product, session_id, agent_id, \
                                  ticket_id, value_micros, sla_met, properties";

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
