//! A seeded stream of raw events over December 2025 and January 2026 (to "now").

use analytics_core::event::RawEvent;
use analytics_core::testing::{Rng, any_event};
use chrono::{DateTime, TimeDelta, Utc};

/// "Now" in these tests: 2026-01-20T12:00:00+08:00.
pub(crate) fn now() -> DateTime<Utc> {
    analytics_core::testing::at("2026-01-20T04:00:00Z")
}

/// The first instant of the stream: 2025-12-01T00:00:00+08:00.
pub(crate) fn start() -> DateTime<Utc> {
    analytics_core::testing::at("2025-11-30T16:00:00Z")
}

/// The stream as it first arrives: events all over both months, plus events on every
/// day boundary and the month boundary, plus duplicates of some of them.
pub(crate) fn initial(seed: u64) -> Vec<RawEvent> {
    let mut rng = Rng::new(seed);
    let span = (now() - start()).num_seconds();
    let mut events: Vec<RawEvent> = (0..4_000)
        .map(|_| {
            let at = start() + TimeDelta::seconds(rng.below(span as u64) as i64);
            any_event(at, &mut rng)
        })
        .collect();
    // On both sides of every Shanghai midnight (16:00Z), including 2025-12-31/2026-01-01.
    let mut midnight = start();
    while midnight < now() {
        events.push(any_event(midnight, &mut rng));
        events.push(any_event(midnight - TimeDelta::microseconds(1), &mut rng));
        midnight += TimeDelta::days(1);
    }
    // Duplicates: the same id and timestamp sent again, later in the stream.
    let duplicates: Vec<RawEvent> = events.iter().step_by(37).cloned().collect();
    events.extend(duplicates);
    events
}

/// Events that arrive after the jobs have run, dated in the past (December, yesterday)
/// and today, with duplicates of events already stored.
pub(crate) fn late(seed: u64, already: &[RawEvent]) -> Vec<RawEvent> {
    let mut rng = Rng::new(seed.wrapping_mul(31));
    let mut events = Vec::new();
    for day_ago in [46, 30, 1, 0] {
        for _ in 0..60 {
            let at =
                now() - TimeDelta::days(day_ago) - TimeDelta::seconds(rng.below(40_000) as i64);
            events.push(any_event(at, &mut rng));
        }
    }
    events.extend(already.iter().step_by(101).cloned());
    events
}

/// Events of today only, as more traffic after Redis lost its data.
pub(crate) fn today_more(seed: u64) -> Vec<RawEvent> {
    let mut rng = Rng::new(seed.wrapping_mul(17));
    (0..200)
        .map(|i| any_event(now() - TimeDelta::seconds(i * 60), &mut rng))
        .collect()
}
