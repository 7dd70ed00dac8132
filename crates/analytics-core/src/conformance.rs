//! The storage conformance suite (feature `testing`): what every implementation of the
//! storage traits must do, written once. Each backend's test binary calls these
//! functions on a fresh store, so PostgreSQL, Redis, the embedded store and the
//! in-memory stores cannot drift apart.
//!
//! Every function panics, naming what failed, when the store does not conform.

use chrono::{NaiveDate, TimeDelta};
use serde_json::json;

use crate::counters::{Bucket, CounterBatch, Period};
use crate::event::Event;
use crate::metrics::{DaySummary, Sums};
use crate::store::{CounterStore, EventStore, SpillBuffer, StatsStore};
use crate::testing::{at, event, event_with_id};
use crate::time::{Calendar, DateRange, YearMonth};

/// Every part of the event store's contract, each on a fresh store: `fresh` makes
/// whatever owns one (a test database, a file), `store` lends it.
pub async fn event_store_conforms<G, S: EventStore>(
    fresh: impl AsyncFn() -> G,
    store: impl Fn(&G) -> &S,
) {
    event_store_keeps_each_id_once(store(&fresh().await)).await;
    event_store_summarizes_business_days(store(&fresh().await)).await;
    event_store_marks_dirty_days(store(&fresh().await)).await;
    event_store_tracks_uncounted_writes(store(&fresh().await)).await;
    event_store_keeps_dead_letters(store(&fresh().await)).await;
    event_store_answers_sessions(store(&fresh().await)).await;
    event_store_purges_before(store(&fresh().await)).await;
}

/// Every part of the statistics store's contract, each on a fresh store (as
/// [`event_store_conforms`]).
pub async fn stats_store_conforms<G, S: StatsStore>(
    fresh: impl AsyncFn() -> G,
    store: impl Fn(&G) -> &S,
) {
    stats_store_replaces_and_reads_days(store(&fresh().await)).await;
    stats_store_locks_jobs(store(&fresh().await)).await;
}

/// Every part of the counter store's contract, each on a fresh store (as
/// [`event_store_conforms`]).
pub async fn counter_store_conforms<G, S: CounterStore>(
    fresh: impl AsyncFn() -> G,
    store: impl Fn(&G) -> &S,
) {
    counter_store_counts_exactly(store(&fresh().await)).await;
    counter_store_knows_it_is_intact(store(&fresh().await)).await;
    counter_store_tracks_sessions_and_agents(store(&fresh().await)).await;
}

fn date(s: &str) -> NaiveDate {
    match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(date) => date,
        Err(error) => panic!("bad date {s}: {error}"),
    }
}

fn summary_of(events: &[Event]) -> DaySummary {
    let mut summary = DaySummary::default();
    events.iter().for_each(|e| summary.record(e));
    summary
}

/// A few varied events on 2025-12-01 in Shanghai, two of them at its edges.
fn december_first() -> Vec<Event> {
    vec![
        event(
            "session.start",
            at("2025-11-30T16:00:00Z"),
            json!({"session_id": "s1"}),
        ),
        event(
            "session.message",
            at("2025-11-30T17:00:00Z"),
            json!({"session_id": "s1", "response_time_ms": 1250.5}),
        ),
        event(
            "session.escalate",
            at("2025-11-30T17:01:00Z"),
            json!({"session_id": "s1"}),
        ),
        event(
            "agent.session_takeover",
            at("2025-11-30T17:02:00Z"),
            json!({"agent_id": "a1", "session_id": "s1", "wait_duration_seconds": 12.25}),
        ),
        event(
            "agent.session_release",
            at("2025-11-30T17:30:00Z"),
            json!({"agent_id": "a1", "session_id": "s1", "handle_duration_seconds": 600}),
        ),
        event(
            "ticket.closed",
            at("2025-12-01T08:00:00Z"),
            json!({"ticket_id": "t1", "resolution_duration_hours": 4.5, "sla_met": true, "note": "退款"}),
        ),
        event(
            "custom.banner_click",
            at("2025-12-01T09:00:00Z"),
            json!({"banner": "双十二"}),
        ),
        event(
            "agent.login",
            at("2025-12-01T15:59:59.999999Z"),
            json!({"agent_id": "a2"}),
        ),
    ]
}

/// `insert` stores each id once, within a batch and across batches, and says which
/// events were new.
pub async fn event_store_keeps_each_id_once(store: &dyn EventStore) {
    let events = december_first();
    let (a, b) = (&events[0], &events[1]);
    let flags = store
        .insert(&[a.clone(), b.clone(), a.clone()])
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    assert_eq!(flags, [true, true, false], "first batch");
    let flags = store
        .insert(&events)
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    let expected: Vec<bool> = (0..events.len()).map(|i| i >= 2).collect();
    assert_eq!(flags, expected, "a later batch repeating two events");
    // The same id re-sent without its timestamp, stamped anew on a later business day
    // (a client retrying across midnight): still stored once, on the first day only.
    let later = a.timestamp() + TimeDelta::days(3);
    let resent = event_with_id(
        a.id(),
        a.name(),
        later,
        serde_json::Value::Object(a.properties()),
    );
    let other = event("session.start", later, json!({"session_id": "s-late"}));
    let flags = store
        .insert(&[resent, other.clone()])
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    assert_eq!(flags, [false, true], "an id stored on another day");
    let later_day = store
        .summarize(Calendar::default().day_window(Calendar::default().date(later)))
        .await
        .unwrap_or_else(|e| panic!("summarize: {e}"));
    assert_eq!(
        later_day,
        summary_of(&[other]),
        "the re-sent id is not counted"
    );
    assert!(
        store
            .insert(&[])
            .await
            .unwrap_or_else(|e| panic!("insert: {e}"))
            .is_empty()
    );
    let day = store
        .summarize(Calendar::default().day_window(date("2025-12-01")))
        .await
        .unwrap_or_else(|e| panic!("summarize: {e}"));
    assert_eq!(day, summary_of(&events), "each event counted once");

    // A batch of several statements' worth (stores write a thousand rows a statement)
    // whose ids were partly stored before, some of them twice in the batch: the flags
    // say which of each are new, in every part of the batch.
    let when = at("2025-12-05T02:00:00Z");
    let big: Vec<Event> = (0..2_500)
        .map(|i| {
            event(
                "session.message",
                when + TimeDelta::milliseconds(i),
                json!({"session_id": format!("big-{i}"), "response_time_ms": i % 997 + 1}),
            )
        })
        .collect();
    let stored_before: Vec<Event> = big.iter().step_by(7).cloned().collect();
    store
        .insert(&stored_before)
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    let mut batch = big.clone();
    batch.extend(big.iter().skip(1_500).step_by(11).cloned());
    let flags = store
        .insert(&batch)
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    let expected: Vec<bool> = (0..batch.len())
        .map(|i| i < big.len() && i % 7 != 0)
        .collect();
    assert_eq!(flags, expected, "new ids across statements");
    let day = store
        .summarize(Calendar::default().day_window(date("2025-12-05")))
        .await
        .unwrap_or_else(|e| panic!("summarize: {e}"));
    assert_eq!(day, summary_of(&big), "the big batch, each event once");
}

/// `summarize` sums exactly the events of one business day, per agent too.
pub async fn event_store_summarizes_business_days(store: &dyn EventStore) {
    let calendar = Calendar::default();
    let mut events = december_first();
    let before = event(
        "session.start",
        at("2025-11-30T15:59:59.999999Z"),
        json!({"session_id": "s0"}),
    );
    let after = event(
        "session.start",
        at("2025-12-01T16:00:00Z"),
        json!({"session_id": "s9"}),
    );
    events.push(before.clone());
    events.push(after.clone());
    store
        .insert(&events)
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    let of = |d: &str| calendar.day_window(date(d));
    let first = store
        .summarize(of("2025-12-01"))
        .await
        .unwrap_or_else(|e| panic!("summarize: {e}"));
    assert_eq!(first, summary_of(&events[..8]), "2025-12-01");
    assert_eq!(first.agents.len(), 2, "agents a1 and a2");
    let last_november = store
        .summarize(of("2025-11-30"))
        .await
        .unwrap_or_else(|e| panic!("summarize: {e}"));
    assert_eq!(last_november, summary_of(&[before]));
    let second = store
        .summarize(of("2025-12-02"))
        .await
        .unwrap_or_else(|e| panic!("summarize: {e}"));
    assert_eq!(second, summary_of(&[after]));
    let empty = store
        .summarize(of("2025-12-03"))
        .await
        .unwrap_or_else(|e| panic!("summarize: {e}"));
    assert_eq!(empty, DaySummary::default());
}

/// Written days are dirty until exactly the marks read are cleaned: a write that comes
/// (or commits) after the marks were read keeps the day dirty.
pub async fn event_store_marks_dirty_days(store: &dyn EventStore) {
    let events = december_first();
    store
        .insert(&events)
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    let dirty = store
        .dirty_days()
        .await
        .unwrap_or_else(|e| panic!("dirty_days: {e}"));
    assert_eq!(
        dirty.iter().map(|d| d.day).collect::<Vec<_>>(),
        [date("2025-12-01")]
    );
    let read = dirty[0].clone();
    assert!(!read.marks.is_empty(), "a dirty day has marks");
    store
        .insert(&[event(
            "agent.login",
            at("2025-12-01T10:00:00Z"),
            json!({"agent_id": "late"}),
        )])
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    store
        .clean_day(read.day, &read.marks)
        .await
        .unwrap_or_else(|e| panic!("clean_day: {e}"));
    let again = store
        .dirty_days()
        .await
        .unwrap_or_else(|e| panic!("dirty_days: {e}"));
    assert_eq!(
        again.len(),
        1,
        "written after the marks were read: still dirty"
    );
    assert!(
        again[0].marks.iter().all(|m| !read.marks.contains(m)),
        "only the later write's mark is left"
    );
    store
        .clean_day(read.day, &again[0].marks)
        .await
        .unwrap_or_else(|e| panic!("clean_day: {e}"));
    assert!(
        store
            .dirty_days()
            .await
            .unwrap_or_else(|e| panic!("dirty_days: {e}"))
            .is_empty()
    );
    // Nothing new: no mark.
    store
        .insert(&events)
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    assert!(
        store
            .dirty_days()
            .await
            .unwrap_or_else(|e| panic!("dirty_days: {e}"))
            .is_empty(),
        "a write of stored ids only makes nothing dirty"
    );
}

/// A write's days stay uncounted until it settles as applied; one settled as not
/// applied stays uncounted until a recount of the day finishes. A recount waits for
/// writes in flight, and writes wait for a recount.
pub async fn event_store_tracks_uncounted_writes(store: &dyn EventStore) {
    let uncounted = || async {
        store
            .uncounted_days()
            .await
            .unwrap_or_else(|e| panic!("uncounted_days: {e}"))
    };
    let day = date("2025-12-01");
    let written = store
        .write(&december_first())
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let pending = written
        .pending
        .unwrap_or_else(|| panic!("a write of new events is pending"));
    assert_eq!(pending.days(), [day]);
    assert_eq!(uncounted().await, [day], "uncounted while pending");
    let dirty = store
        .dirty_days()
        .await
        .unwrap_or_else(|e| panic!("dirty_days: {e}"));
    assert!(dirty[0].uncounted, "dirty_days says so too");

    // A recount waits for the pending write.
    let recount = store.lock_counters(day);
    let waited = tokio::time::timeout(std::time::Duration::from_millis(300), recount).await;
    assert!(waited.is_err(), "a recount waits for a write in flight");
    pending.settle(true).await;
    assert!(uncounted().await.is_empty(), "settled as applied");

    // Settled as not applied: uncounted until a recount finishes.
    store
        .insert(&[event(
            "agent.login",
            at("2025-12-01T10:00:00Z"),
            json!({"agent_id": "late"}),
        )])
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    assert_eq!(uncounted().await, [day], "not applied: still uncounted");
    let recount = store
        .lock_counters(day)
        .await
        .unwrap_or_else(|e| panic!("lock_counters: {e}"));
    // A write to the day waits for the recount.
    let blocked = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        store.insert(&[event(
            "agent.login",
            at("2025-12-01T11:00:00Z"),
            json!({"agent_id": "later"}),
        )]),
    )
    .await;
    assert!(blocked.is_err(), "a write waits for a recount of its day");
    recount
        .finish()
        .await
        .unwrap_or_else(|e| panic!("finish: {e}"));
    assert!(uncounted().await.is_empty(), "recounted");
    let n = store
        .summarize(Calendar::default().day_window(day))
        .await
        .unwrap_or_else(|e| panic!("summarize: {e}"))
        .totals
        .total_events();
    assert_eq!(
        n,
        december_first().len() as u64 + 1,
        "the write that timed out while waiting stored nothing"
    );
}

/// Dead letters are kept with their reason and listed newest first; they are not
/// events (never summarized).
pub async fn event_store_keeps_dead_letters(store: &dyn EventStore) {
    let events = december_first();
    let first = at("2025-12-02T00:00:00Z");
    let later = at("2025-12-02T00:00:01Z");
    store
        .dead_letter(&events[..2], "value too long: \u{0}", first)
        .await
        .unwrap_or_else(|e| panic!("dead_letter: {e}"));
    store
        .dead_letter(&events[2..3], "refused", later)
        .await
        .unwrap_or_else(|e| panic!("dead_letter: {e}"));
    let dead = store
        .dead_letters(10)
        .await
        .unwrap_or_else(|e| panic!("dead_letters: {e}"));
    assert_eq!(dead.len(), 3);
    assert_eq!(dead[0].event_id, events[2].id(), "newest first");
    assert_eq!(dead[0].reason, "refused");
    assert_eq!(dead[0].dead_lettered_at, later);
    let mut older: Vec<_> = dead[1..]
        .iter()
        .map(|d| (d.event_id, d.event.clone()))
        .collect();
    older.sort();
    let mut expected: Vec<_> = events[..2]
        .iter()
        .map(|e| (e.id(), e.name().to_owned()))
        .collect();
    expected.sort();
    assert_eq!(older, expected);
    let envelope: serde_json::Value = serde_json::from_str(&dead[0].envelope)
        .unwrap_or_else(|e| panic!("the envelope is JSON: {e}"));
    assert_eq!(envelope["event_id"], events[2].id().to_string());
    assert_eq!(
        store
            .dead_letters(1)
            .await
            .unwrap_or_else(|e| panic!("dead_letters: {e}"))
            .len(),
        1
    );
    // Kept once per id (a retried batch refuses the same event again).
    store
        .dead_letter(&events[2..3], "refused again", later)
        .await
        .unwrap_or_else(|e| panic!("dead_letter: {e}"));
    assert_eq!(
        store
            .dead_letters(10)
            .await
            .unwrap_or_else(|e| panic!("dead_letters: {e}"))
            .len(),
        3,
        "once per id"
    );
    let summary = store
        .summarize(Calendar::default().day_window(date("2025-12-01")))
        .await
        .unwrap_or_else(|e| panic!("summarize: {e}"));
    assert_eq!(
        summary,
        DaySummary::default(),
        "dead letters are not events"
    );
}

/// `purge_before` removes the detail of the days before the cutoff day, and only that.
pub async fn event_store_purges_before(store: &dyn EventStore) {
    let calendar = Calendar::default();
    let old = event(
        "agent.login",
        at("2025-11-20T02:00:00Z"),
        json!({"agent_id": "a"}),
    );
    let kept = december_first();
    let mut all = kept.clone();
    all.push(old);
    store
        .insert(&all)
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    let dropped = store
        .purge_before(calendar.day_start(date("2025-12-01")))
        .await
        .unwrap_or_else(|e| panic!("purge_before: {e}"));
    assert_eq!(dropped, 1, "events dropped");
    let november = store
        .summarize(calendar.day_window(date("2025-11-20")))
        .await
        .unwrap_or_else(|e| panic!("summarize: {e}"));
    assert!(november.totals.is_empty(), "November's detail is gone");
    let december = store
        .summarize(calendar.day_window(date("2025-12-01")))
        .await
        .unwrap_or_else(|e| panic!("summarize: {e}"));
    assert_eq!(december, summary_of(&kept), "December's detail stays");
}

/// `put_day` replaces a day; `days`, `agents` and `agent_days` read ranges back.
pub async fn stats_store_replaces_and_reads_days(store: &dyn StatsStore) {
    let events = december_first();
    let first = summary_of(&events);
    let third = summary_of(&events[3..5]);
    store
        .put_day(date("2025-12-01"), &summary_of(&events[..1]))
        .await
        .unwrap_or_else(|e| panic!("put_day: {e}"));
    store
        .put_day(date("2025-12-01"), &first)
        .await
        .unwrap_or_else(|e| panic!("put_day: {e}"));
    store
        .put_day(date("2025-12-03"), &third)
        .await
        .unwrap_or_else(|e| panic!("put_day: {e}"));
    let range =
        DateRange::new(date("2025-11-30"), date("2025-12-31")).unwrap_or_else(|e| panic!("{e}"));
    let days = store
        .days(range)
        .await
        .unwrap_or_else(|e| panic!("days: {e}"));
    assert_eq!(
        days,
        [
            (date("2025-12-01"), first.totals),
            (date("2025-12-03"), third.totals)
        ]
    );
    let mut both = first.clone();
    both.merge(&third);
    let agent_days = store
        .agent_days(range)
        .await
        .unwrap_or_else(|e| panic!("agent_days: {e}"));
    let mut merged = std::collections::BTreeMap::<String, Sums>::new();
    for agents in agent_days.values() {
        for (agent, sums) in agents {
            merged.entry(agent.clone()).or_default().merge(sums);
        }
    }
    assert_eq!(merged, both.agents);
    assert_eq!(agent_days.get(&date("2025-12-03")), Some(&third.agents));
    let quiet = DateRange::day(date("2025-12-02"));
    assert!(
        store
            .days(quiet)
            .await
            .unwrap_or_else(|e| panic!("days: {e}"))
            .is_empty()
    );
    assert!(
        store
            .agent_days(quiet)
            .await
            .unwrap_or_else(|e| panic!("agent_days: {e}"))
            .is_empty()
    );
}

/// A job lock has one holder at a time and is free again once released.
pub async fn stats_store_locks_jobs(store: &dyn StatsStore) {
    let lock = store
        .try_lock("conformance")
        .await
        .unwrap_or_else(|e| panic!("try_lock: {e}"));
    let lock = lock.unwrap_or_else(|| panic!("a free lock is taken"));
    assert!(
        store
            .try_lock("conformance")
            .await
            .unwrap_or_else(|e| panic!("try_lock: {e}"))
            .is_none(),
        "held"
    );
    let other = store
        .try_lock("other job")
        .await
        .unwrap_or_else(|e| panic!("try_lock: {e}"));
    assert!(other.is_some(), "another job's lock is free");
    lock.release().await;
    assert!(
        store
            .try_lock("conformance")
            .await
            .unwrap_or_else(|e| panic!("try_lock: {e}"))
            .is_some(),
        "released"
    );

    // Scheduled runs are claimed once per interval.
    let claim = |jobs: &'static str, secs: u64| async move {
        store
            .claim_run(jobs, std::time::Duration::from_secs(secs))
            .await
            .unwrap_or_else(|e| panic!("claim_run: {e}"))
    };
    assert!(claim("conformance", 60).await, "the first claim");
    assert!(!claim("conformance", 60).await, "claimed a moment ago");
    assert!(
        claim("other jobs", 60).await,
        "other jobs are claimed apart"
    );
    assert!(
        claim("conformance", 0).await,
        "an interval of nothing has passed"
    );
    use futures_util::future::join;
    let ((a, b), (c, d)) = join(
        join(claim("raced", 60), claim("raced", 60)),
        join(claim("raced", 60), claim("raced", 60)),
    )
    .await;
    let claims = [a, b, c, d];
    assert_eq!(
        claims.iter().filter(|c| **c).count(),
        1,
        "of claims at once, one wins: {claims:?}"
    );
}

/// Counters add up across flushes, read back by bucket and by agent, and `replace`
/// sets a bucket exactly.
pub async fn counter_store_counts_exactly(store: &dyn CounterStore) {
    let calendar = Calendar::default();
    let events = december_first();
    store
        .apply(&CounterBatch::from_events(&calendar, &events[..3]))
        .await
        .unwrap_or_else(|e| panic!("apply: {e}"));
    store
        .apply(&CounterBatch::from_events(&calendar, &events[3..]))
        .await
        .unwrap_or_else(|e| panic!("apply: {e}"));
    let day = Period::Day(date("2025-12-01"));
    let month = Period::Month(YearMonth::of(date("2025-12-01")));
    let read = store
        .read(&[
            Bucket::all(day),
            Bucket::all(month),
            Bucket::agent(day, "a1"),
            Bucket::all(Period::Day(date("2025-12-02"))),
        ])
        .await
        .unwrap_or_else(|e| panic!("read: {e}"));
    let all = Sums::from_events(&events);
    assert_eq!(read[0], all, "day");
    assert_eq!(read[1], all, "month");
    assert_eq!(
        read[2],
        Sums::from_events(events.iter().filter(|e| e.agent_id() == Some("a1"))),
        "agent a1"
    );
    assert!(read[3].is_empty(), "a day without events");
    let agents = store
        .read_agents(day)
        .await
        .unwrap_or_else(|e| panic!("read_agents: {e}"));
    assert_eq!(
        agents.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a1", "a2"]
    );
    let hours: Sums = store
        .read(
            &calendar
                .recent_hours(at("2025-12-01T15:59:59Z"), 24)
                .into_iter()
                .map(|h| Bucket::all(Period::Hour(h)))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap_or_else(|e| panic!("read: {e}"))
        .iter()
        .sum();
    assert_eq!(hours, all, "the day's hours add up to the day");

    let truth = Sums::from_events(&events[..2]);
    store
        .replace(&Bucket::all(day), &truth)
        .await
        .unwrap_or_else(|e| panic!("replace: {e}"));
    store
        .replace(&Bucket::agent(day, "a1"), &Sums::new())
        .await
        .unwrap_or_else(|e| panic!("replace: {e}"));
    let read = store
        .read(&[Bucket::all(day), Bucket::agent(day, "a2")])
        .await
        .unwrap_or_else(|e| panic!("read: {e}"));
    assert_eq!(read[0], truth, "replaced day");
    assert_eq!(read[1].total_events(), 1, "other agents untouched");
    let agents = store
        .read_agents(day)
        .await
        .unwrap_or_else(|e| panic!("read_agents: {e}"));
    assert!(
        !agents.contains_key("a1") || agents["a1"].is_empty(),
        "a1 emptied"
    );
}

/// The counters are not intact until a rebuild finishes, and a rebuild finishes.
/// (Each backend's own tests show a loss making them not intact again, and a loss
/// during a rebuild keeping them so.)
pub async fn counter_store_knows_it_is_intact(store: &dyn CounterStore) {
    let intact = || async {
        store
            .intact()
            .await
            .unwrap_or_else(|e| panic!("intact: {e}"))
    };
    assert!(!intact().await, "new counters are not intact yet");
    let token = store
        .begin_rebuild()
        .await
        .unwrap_or_else(|e| panic!("begin_rebuild: {e}"));
    assert!(!intact().await, "not intact during a rebuild");
    assert!(
        store
            .finish_rebuild(&token)
            .await
            .unwrap_or_else(|e| panic!("finish_rebuild: {e}")),
        "a rebuild with nothing lost finishes"
    );
    assert!(intact().await, "intact after the rebuild");
    assert!(intact().await, "reading does not change it");
}

/// Active sessions and online agents follow the latest events.
pub async fn counter_store_tracks_sessions_and_agents(store: &dyn CounterStore) {
    let calendar = Calendar::default();
    let t = at("2025-12-01T02:00:00Z");
    let later = t + TimeDelta::minutes(30);
    let apply = |events: Vec<Event>| async move {
        store
            .apply(&CounterBatch::from_events(&calendar, &events))
            .await
            .unwrap_or_else(|e| panic!("apply: {e}"));
    };
    apply(vec![
        event("session.start", t, json!({"session_id": "s1"})),
        event("session.start", t, json!({"session_id": "s2"})),
        event("agent.login", t, json!({"agent_id": "a1"})),
        event("agent.login", t, json!({"agent_id": "a2"})),
    ])
    .await;
    apply(vec![
        event("session.end", later, json!({"session_id": "s1"})),
        event(
            "session.message",
            later,
            json!({"session_id": "ghost", "response_time_ms": 1}),
        ),
        event("agent.logout", later, json!({"agent_id": "a2"})),
        event(
            "agent.login",
            t - TimeDelta::minutes(1),
            json!({"agent_id": "a2"}),
        ),
    ])
    .await;
    assert_eq!(
        store
            .active_sessions(t)
            .await
            .unwrap_or_else(|e| panic!("active_sessions: {e}")),
        1
    );
    assert_eq!(
        store
            .active_sessions(later)
            .await
            .unwrap_or_else(|e| panic!("active_sessions: {e}")),
        0,
        "s2 idle"
    );
    assert_eq!(
        store
            .online_agents()
            .await
            .unwrap_or_else(|e| panic!("online_agents: {e}")),
        1,
        "a1; a2 logged out"
    );
}

/// Spilled events come back in order, once each acknowledged claim.
pub async fn spill_buffer_round_trips(spill: &dyn SpillBuffer) {
    let events = december_first();
    spill
        .push(&events[..5])
        .await
        .unwrap_or_else(|e| panic!("push: {e}"));
    spill
        .push(&events[5..])
        .await
        .unwrap_or_else(|e| panic!("push: {e}"));
    assert_eq!(
        spill.len().await.unwrap_or_else(|e| panic!("len: {e}")),
        events.len() as u64
    );
    let mut drained = Vec::new();
    while let Some(claim) = spill
        .claim(3)
        .await
        .unwrap_or_else(|e| panic!("claim: {e}"))
    {
        assert!(claim.events.len() <= 3);
        drained.extend(claim.events.iter().cloned());
        spill
            .ack(&claim)
            .await
            .unwrap_or_else(|e| panic!("ack: {e}"));
    }
    assert_eq!(drained, events, "in order, each once");
    assert!(
        spill
            .is_empty()
            .await
            .unwrap_or_else(|e| panic!("is_empty: {e}"))
    );
}

/// `sessions` answers the sessions started in the window, in start order, with their
/// hand-off, first response, handle time and whether the customer came back within
/// the return window — across midnight and the window's end — as `sessions_of` does.
pub async fn event_store_answers_sessions(store: &dyn EventStore) {
    use crate::store::{RETURN_WINDOW, SessionQuery, sessions_of};
    use futures_util::StreamExt as _;

    let t = |s: &str| at(s);
    let events = vec![
        // s1: escalated, taken over twice (the first takeover's agent and wait count),
        // released twice (summed); its customer comes back the next day (s3).
        event(
            "session.start",
            t("2025-12-01T02:00:00Z"),
            json!({"session_id": "s1", "customer_id": "c1", "channel": "web"}),
        ),
        event(
            "session.escalate",
            t("2025-12-01T02:01:00Z"),
            json!({"session_id": "s1"}),
        ),
        event(
            "agent.session_takeover",
            t("2025-12-01T02:02:00Z"),
            json!({"session_id": "s1", "agent_id": "a1", "wait_duration_seconds": 12.5}),
        ),
        event(
            "agent.session_takeover",
            t("2025-12-01T02:05:00Z"),
            json!({"session_id": "s1", "agent_id": "a2", "wait_duration_seconds": 40.0}),
        ),
        event(
            "agent.session_release",
            t("2025-12-01T02:10:00Z"),
            json!({"session_id": "s1", "agent_id": "a1", "handle_duration_seconds": 100.0}),
        ),
        event(
            "agent.session_release",
            t("2025-12-01T02:20:00Z"),
            json!({"session_id": "s1", "agent_id": "a2", "handle_duration_seconds": 60.25}),
        ),
        // s2: the AI alone, no customer id.
        event(
            "session.start",
            t("2025-12-01T03:00:00Z"),
            json!({"session_id": "s2", "channel": "app"}),
        ),
        event(
            "session.message",
            t("2025-12-01T03:00:01Z"),
            json!({"session_id": "s2", "response_time_ms": 900.0}),
        ),
        // s3: c1 again, 23 hours after s1, across midnight; escalated after the
        // window's end (still its own).
        event(
            "session.start",
            t("2025-12-02T01:00:00Z"),
            json!({"session_id": "s3", "customer_id": "c1"}),
        ),
        event(
            "session.escalate",
            t("2025-12-02T17:00:00Z"),
            json!({"session_id": "s3"}),
        ),
        // s4: c2, who comes back 25 hours later (not a return) in s5.
        event(
            "session.start",
            t("2025-12-01T05:00:00Z"),
            json!({"session_id": "s4", "customer_id": "c2"}),
        ),
        event(
            "session.start",
            t("2025-12-02T06:00:00Z"),
            json!({"session_id": "s5", "customer_id": "c2"}),
        ),
        // s6: before the window; s7: after it, but a return of c3 (s8 inside).
        event(
            "session.start",
            t("2025-11-30T15:00:00Z"),
            json!({"session_id": "s6", "customer_id": "c3"}),
        ),
        event(
            "session.start",
            t("2025-12-02T08:00:00Z"),
            json!({"session_id": "s8", "customer_id": "c3"}),
        ),
        event(
            "session.start",
            t("2025-12-02T17:30:00Z"),
            json!({"session_id": "s7", "customer_id": "c3"}),
        ),
    ];
    store
        .insert(&events)
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    // Business days 2025-12-01 and 2025-12-02 in Asia/Shanghai.
    let calendar = Calendar::default();
    let query = SessionQuery {
        from: calendar.day_start(date("2025-12-01")),
        to: calendar.day_start(date("2025-12-03")),
        window: RETURN_WINDOW,
    };
    let rows: Vec<_> = store
        .sessions(query)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|row| row.unwrap_or_else(|e| panic!("sessions: {e}")))
        .collect();
    assert_eq!(rows, sessions_of(&events, query), "as sessions_of computes");
    let ids: Vec<&str> = rows.iter().map(|r| r.session_id.as_str()).collect();
    assert_eq!(ids, ["s1", "s2", "s4", "s3", "s5", "s8"], "start order");
    let s1 = &rows[0];
    assert!(s1.escalated && s1.returned);
    assert_eq!(s1.agent_id.as_deref(), Some("a1"));
    assert_eq!(s1.first_response_micros, Some(12_500_000));
    assert_eq!(s1.handle_time_micros, Some(160_250_000));
    assert_eq!(s1.channel.as_deref(), Some("web"));
    let s2 = &rows[1];
    assert!(!s2.escalated && !s2.returned && s2.customer_id.is_none());
    assert_eq!(
        (
            s2.agent_id.as_deref(),
            s2.first_response_micros,
            s2.handle_time_micros
        ),
        (None, None, None)
    );
    assert!(!rows[2].returned, "s4: c2 came back after 25 hours");
    assert!(rows[3].escalated, "s3: escalated after the window's end");
    assert!(!rows[3].returned && !rows[4].returned);
    assert!(
        rows[5].returned,
        "s8: c3 came back within a day, after the window"
    );
}
