//! The key layout of SPEC §7 under a configurable prefix.

use std::time::Duration;

use analytics_core::store::{Bucket, Period};

const DAY: u64 = 24 * 3600;

/// The TTL of daily hashes (SPEC §7).
pub const DAILY_TTL: Duration = Duration::from_secs(7 * DAY);
/// The TTL of hourly hashes.
pub const HOURLY_TTL: Duration = Duration::from_secs(2 * DAY);
/// The TTL of monthly hashes.
pub const MONTHLY_TTL: Duration = Duration::from_secs(400 * DAY);

/// Builds every key under one prefix. A prefix that ends with `:` (as test prefixes
/// `test:{uuid}:` do) is used as it is; otherwise a `:` separates it from the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Keys {
        let prefix = if prefix.ends_with(':') {
            prefix.to_owned()
        } else {
            format!("{prefix}:")
        };
        Keys { prefix }
    }

    /// The prefix, ending with `:`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// The hash of a bucket and its TTL. Per-agent buckets share one hash per period.
    pub fn bucket(&self, bucket: &Bucket) -> (String, Duration) {
        let agent = if bucket.agent.is_some() { "agent:" } else { "" };
        match bucket.period {
            Period::Day(date) => (self.key(format_args!("{agent}daily:{date}")), DAILY_TTL),
            Period::Hour(hour) => (
                self.key(format_args!("{agent}hourly:{}:{:02}", hour.date, hour.hour)),
                HOURLY_TTL,
            ),
            Period::Month(month) => (
                self.key(format_args!("{agent}monthly:{month}")),
                MONTHLY_TTL,
            ),
        }
    }

    /// Sessions started and not ended, scored by last activity.
    pub fn active_sessions(&self) -> String {
        self.key(format_args!("active_sessions"))
    }

    /// Each agent's latest status.
    pub fn agent_presence(&self) -> String {
        self.key(format_args!("agent_presence"))
    }

    /// Agents online now.
    pub fn online_agents(&self) -> String {
        self.key(format_args!("online_agents"))
    }

    /// A marker that vanishes with the counters when Redis loses its data; set only
    /// by a rebuild that saw no loss.
    pub fn intact(&self) -> String {
        self.key(format_args!("counters_intact"))
    }

    /// The token of the counter rebuild under way: a loss during the rebuild takes it
    /// away, and the rebuild then does not mark the counters intact.
    pub fn rebuilding(&self) -> String {
        self.key(format_args!("counters_rebuilding"))
    }

    /// The spill buffer.
    pub fn event_buffer(&self) -> String {
        self.key(format_args!("event_buffer"))
    }

    /// Claims on the spill buffer and their lease deadlines.
    pub fn claims(&self) -> String {
        self.key(format_args!("event_buffer:claims"))
    }

    /// The prefix of claim lists; the token follows.
    pub fn claim_prefix(&self) -> String {
        self.key(format_args!("event_buffer:claim:"))
    }

    /// Spilled entries that could not be read back as events.
    pub fn dead_letters(&self) -> String {
        self.key(format_args!("event_buffer:dead"))
    }
}

/// The hash field of a metric field in a bucket: the field name, or
/// `{field}|{agent}` in a per-agent hash (field names never contain `|`).
pub(crate) fn hash_field(field: &str, agent: Option<&str>) -> String {
    match agent {
        Some(agent) => format!("{field}|{agent}"),
        None => field.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use analytics_core::store::{Bucket, Period};
    use analytics_core::time::DayHour;
    use chrono::NaiveDate;

    use super::*;

    #[test]
    fn keys_follow_the_spec_layout() {
        let date = NaiveDate::from_ymd_opt(2025, 12, 1).unwrap_or_default();
        for prefix in ["analytics", "analytics:"] {
            let keys = Keys::new(prefix);
            assert_eq!(
                keys.bucket(&Bucket::all(Period::Day(date))).0,
                "analytics:daily:2025-12-01"
            );
            assert_eq!(
                keys.bucket(&Bucket::all(Period::Hour(DayHour { date, hour: 7 })))
                    .0,
                "analytics:hourly:2025-12-01:07"
            );
            assert_eq!(
                keys.bucket(&Bucket::agent(
                    Period::Month(analytics_core::time::YearMonth::of(date)),
                    "a"
                ))
                .0,
                "analytics:agent:monthly:2025-12"
            );
            assert_eq!(keys.event_buffer(), "analytics:event_buffer");
        }
        assert_eq!(
            hash_field("session.start", Some("a|b")),
            "session.start|a|b"
        );
    }
}
