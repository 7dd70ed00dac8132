//! The key layout of SPEC §7 under a configurable prefix, with hash tags on a Redis
//! Cluster (see the crate's documentation).

use std::time::Duration;

use analytics_core::counters::{Bucket, Period};
use analytics_core::time::YearMonth;
use chrono::NaiveDate;

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
    /// Whether keys carry hash tags (Redis Cluster).
    cluster: bool,
}

/// Which keys must live in one slot: a key's hash tag on a cluster, and one group for
/// everything on one server (where any keys may share a transaction).
pub fn slot_group(keys: &Keys, key: &str) -> String {
    if !keys.cluster {
        return String::new();
    }
    // As Redis does: the text between the first `{` and the next `}`, if not empty.
    key.split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(tag, _)| tag)
        .filter(|tag| !tag.is_empty())
        .unwrap_or(key)
        .to_owned()
}

impl Keys {
    /// Keys under `prefix` on one server: the layout of SPEC §7.
    pub fn new(prefix: &str) -> Keys {
        let prefix = if prefix.ends_with(':') {
            prefix.to_owned()
        } else {
            format!("{prefix}:")
        };
        Keys {
            prefix,
            cluster: false,
        }
    }

    /// Keys under `prefix` on a Redis Cluster: the same names, with hash tags.
    pub fn cluster(prefix: &str) -> Keys {
        Keys {
            cluster: true,
            ..Keys::new(prefix)
        }
    }

    /// Whether keys carry hash tags.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// `:{tag}` after a name on a cluster; nothing on one server.
    fn cluster_tag(&self, tag: &str) -> String {
        if self.cluster {
            format!(":{{{tag}}}")
        } else {
            String::new()
        }
    }

    /// `text` as a hash tag on a cluster, as it is on one server.
    fn tag(&self, text: std::fmt::Arguments<'_>) -> String {
        if self.cluster {
            format!("{{{text}}}")
        } else {
            text.to_string()
        }
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
            Period::Day(date) => (
                self.key(format_args!("{agent}daily:{}", self.day_tag(date))),
                DAILY_TTL,
            ),
            Period::Hour(hour) => (
                self.key(format_args!(
                    "{agent}hourly:{}:{:02}",
                    self.day_tag(hour.date),
                    hour.hour
                )),
                HOURLY_TTL,
            ),
            Period::Month(month) => (
                self.key(format_args!("{agent}monthly:{}", self.month_tag(month))),
                MONTHLY_TTL,
            ),
        }
    }

    /// A day's tag: its hashes (all events, each hour, each agent) and its intact
    /// marker share one slot on a cluster.
    fn day_tag(&self, date: NaiveDate) -> String {
        self.tag(format_args!("{date}"))
    }

    /// A month's tag.
    fn month_tag(&self, month: YearMonth) -> String {
        self.tag(format_args!("{month}"))
    }

    /// The groups whose intact markers a rebuild sets (`marked`) or [`CounterStore::intact`]
    /// checks: on a server the one marker; on a cluster the UTC days `today + offsets`
    /// and their months.
    ///
    /// [`CounterStore::intact`]: analytics_core::store::CounterStore::intact
    pub fn marker_groups(
        &self,
        today: NaiveDate,
        offsets: std::ops::RangeInclusive<i64>,
    ) -> Vec<String> {
        if !self.cluster {
            return vec![String::new()];
        }
        let days: Vec<NaiveDate> = offsets
            .map(|offset| today + chrono::TimeDelta::days(offset))
            .collect();
        let mut groups: Vec<String> = days.iter().map(ToString::to_string).collect();
        let mut months: Vec<String> = days.iter().map(|d| YearMonth::of(*d).to_string()).collect();
        months.dedup();
        groups.extend(months);
        groups
    }

    /// Sessions started and not ended, scored by last activity (on a cluster with the
    /// tag `{sessions}`, which [`Keys::applied`] keys share).
    pub fn active_sessions(&self) -> String {
        self.key(format_args!(
            "active_sessions{}",
            self.cluster_tag("sessions")
        ))
    }

    /// On a cluster, the key that records that flush `flush` was applied to `group`
    /// (a [`slot_group`]), in the group's slot.
    pub fn applied(&self, group: &str, flush: &str) -> String {
        self.key(format_args!("applied:{{{group}}}:{flush}"))
    }

    /// Each agent's latest status.
    pub fn agent_presence(&self) -> String {
        self.key(format_args!("agent_presence{}", self.cluster_tag("agents")))
    }

    /// Agents online now.
    pub fn online_agents(&self) -> String {
        self.key(format_args!("online_agents{}", self.cluster_tag("agents")))
    }

    /// A marker that vanishes with the counters when Redis loses its data; set only
    /// by a rebuild that saw no loss. One for all on a server; on a cluster one per
    /// [`slot_group`] (a day's or a month's), in the group's slot.
    pub fn intact(&self, group: &str) -> String {
        self.per_group("counters_intact", group)
    }

    /// The token of the counter rebuild under way: a loss during the rebuild takes it
    /// away, and the rebuild then does not mark the counters intact. Per group as
    /// [`Keys::intact`].
    pub fn rebuilding(&self, group: &str) -> String {
        self.per_group("counters_rebuilding", group)
    }

    fn per_group(&self, name: &str, group: &str) -> String {
        self.key(format_args!("{name}{}", self.cluster_tag(group)))
    }

    /// The spill buffer. On a cluster its keys share the tag `{spill}`: its scripts
    /// move events between them.
    pub fn event_buffer(&self) -> String {
        self.key(format_args!("event_buffer{}", self.cluster_tag("spill")))
    }

    /// Claims on the spill buffer and their lease deadlines.
    pub fn claims(&self) -> String {
        format!("{}:claims", self.event_buffer())
    }

    /// The prefix of claim lists; the token follows.
    pub fn claim_prefix(&self) -> String {
        format!("{}:claim:", self.event_buffer())
    }

    /// Spilled entries that could not be read back as events.
    pub fn dead_letters(&self) -> String {
        format!("{}:dead", self.event_buffer())
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
    use analytics_core::counters::{Bucket, Period};
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
            assert_eq!(keys.claims(), "analytics:event_buffer:claims");
            assert_eq!(keys.intact(""), "analytics:counters_intact");
            assert_eq!(slot_group(&keys, "analytics:daily:2025-12-01"), "");
        }
        let keys = Keys::cluster("analytics");
        let day = keys.bucket(&Bucket::all(Period::Day(date))).0;
        let hour = keys
            .bucket(&Bucket::agent(Period::Hour(DayHour { date, hour: 7 }), "a"))
            .0;
        assert_eq!(day, "analytics:daily:{2025-12-01}");
        assert_eq!(hour, "analytics:agent:hourly:{2025-12-01}:07");
        for key in [
            &day,
            &hour,
            &keys.intact("2025-12-01"),
            &keys.rebuilding("2025-12-01"),
        ] {
            assert_eq!(slot_group(&keys, key), "2025-12-01", "{key}");
        }
        assert_eq!(
            slot_group(&keys, &keys.agent_presence()),
            slot_group(&keys, &keys.online_agents())
        );
        for key in [keys.claims(), keys.claim_prefix(), keys.dead_letters()] {
            assert_eq!(slot_group(&keys, &key), "spill", "{key}");
        }
        assert_eq!(slot_group(&keys, &keys.active_sessions()), "sessions");
        assert_eq!(
            slot_group(&keys, &keys.applied("2025-12-01", "f")),
            "2025-12-01"
        );
        assert_eq!(
            hash_field("session.start", Some("a|b")),
            "session.start|a|b"
        );
    }
}
