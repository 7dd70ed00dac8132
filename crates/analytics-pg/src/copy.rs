//! Rows of `analytics_events` for `COPY … FROM STDIN WITH (FORMAT binary)`: how
//! [`crate::PgStore`] writes batches (the server parses no text for the ids, instants
//! and numbers), and what the benchmarks' reference `COPY` sends.

use analytics_core::event::Event;
use analytics_core::metrics::Measure;

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
    let value = measure.value_micros.map(|v| (v as i64).to_be_bytes());
    bytes(out, value.as_ref().map(|b| b.as_slice()));
    let sla_met = measure.sla_met.map(|b| [u8::from(b)]);
    bytes(out, sla_met.as_ref().map(|b| b.as_slice()));
    // jsonb: a version byte (1), then the JSON text.
    let properties = event.properties_json();
    out.extend_from_slice(&((properties.len() + 1) as i32).to_be_bytes());
    out.push(1);
    out.extend_from_slice(properties.as_bytes());
}
