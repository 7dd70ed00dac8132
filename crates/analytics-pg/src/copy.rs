//! Rows of `analytics_events` in the text format of `COPY … FROM STDIN`: how
//! [`crate::PgStore`] writes batches, and what benchmarks compare it with.

use analytics_core::event::Event;
use analytics_core::metrics::Measure;
use chrono::SecondsFormat;

/// The column list every `COPY` of events names, in the order [`encode`] writes.
pub const COLUMNS: &str = "event_id, occurred_at, event, product, session_id, agent_id, \
                                  ticket_id, value_micros, sla_met, properties";

/// Appends one event as a row of `COPY`'s text format.
pub fn encode(out: &mut String, event: &Event) {
    let measure = Measure::of(event);
    field(out, Some(&event.id().to_string()));
    field(
        out,
        Some(
            &event
                .timestamp()
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        ),
    );
    field(out, Some(event.name()));
    field(out, event.product().map(|p| p.as_str()));
    field(out, event.session_id());
    field(out, event.agent_id());
    field(out, event.ticket_id());
    field(out, measure.value_micros.map(|v| v.to_string()).as_deref());
    field(out, measure.sla_met.map(|b| if b { "t" } else { "f" }));
    field(out, Some(&event.properties_json()));
    // The last field ends the row, not another field.
    out.pop();
    out.push('\n');
}

/// Appends one field and its tab: `\N` for null, text with `\`, tab, newline and
/// carriage return escaped.
fn field(out: &mut String, value: Option<&str>) {
    match value {
        None => out.push_str("\\N"),
        Some(value) => {
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
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
        assert_eq!(out, "a\\\\b\\tc\\nd\\re\t\\N\t");
    }
}
