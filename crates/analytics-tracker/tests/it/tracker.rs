//! The tracker against stores that work, fail N times, hang, fail for good, or fail
//! only for counters.

use std::sync::Arc;
use std::time::Duration;

use analytics_core::catalog::EventData;
use analytics_core::counters::CounterBatch;
use analytics_core::event::{Event, RawEvent};
use analytics_core::memory::{MemoryCounters, MemorySpill, MemoryStore};
use analytics_core::metrics::Sums;
use analytics_core::store::Stores;
use analytics_core::store::{
    CounterStore, EventStore, MockCounterStore, MockEventStore, PendingCounters, SpillBuffer,
    Written,
};
use analytics_core::time::Calendar;
use analytics_tracker::{TrackError, Tracker, TrackerConfig};
use serde_json::json;

use crate::faults::{Fault, FaultyCounters, FaultyEvents, daily_counters_and_sums};

fn config() -> TrackerConfig {
    TrackerConfig {
        batch_size: 100,
        flush_interval: Duration::from_millis(50),
        queue_capacity: 20_000,
        writers: 2,
        waiting_batches: 2,
        retry_initial: Duration::from_millis(5),
        retry_max: Duration::from_millis(50),
        store_timeout: Duration::from_millis(200),
        ..TrackerConfig::default()
    }
}

struct Setup {
    events: Arc<FaultyEvents>,
    counters: Arc<FaultyCounters>,
    spill: Arc<MemorySpill>,
    tracker: Tracker,
}

fn setup(config: TrackerConfig) -> Setup {
    let events = Arc::new(FaultyEvents::new());
    let counters = Arc::new(FaultyCounters::new());
    let spill = Arc::new(MemorySpill::new());
    let tracker = Tracker::start(
        config,
        Stores {
            events: events.clone(),
            stats: Arc::new(MemoryStore::new()),
            counters: counters.clone(),
            spill: Some(spill.clone()),
        },
    );
    Setup {
        events,
        counters,
        spill,
        tracker,
    }
}

fn message(i: usize) -> EventData {
    EventData::SessionMessage {
        session_id: format!("s-{}", i % 97),
        response_time_ms: 100.0 + (i % 1000) as f64 * 1.5,
        tokens: Some(i as u64),
    }
}

/// Tracks `n` events from `tasks` tasks at once; returns them as the tracker accepted
/// them (by id).
async fn track_many(tracker: &Tracker, n: usize, tasks: usize) -> usize {
    let mut handles = Vec::new();
    for task in 0..tasks {
        let tracker = tracker.clone();
        handles.push(tokio::spawn(async move {
            let mut accepted = 0;
            for i in (task..n).step_by(tasks) {
                if tracker.track(message(i)).is_ok() {
                    accepted += 1;
                }
            }
            accepted
        }));
    }
    let mut accepted = 0;
    for handle in handles {
        accepted += handle.await.unwrap();
    }
    accepted
}

/// Flushes, then waits until whatever was spilled has been drained back and stored.
async fn settle(setup: &Setup) {
    setup.tracker.flush().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let t = setup.tracker.telemetry();
            if setup.spill.is_empty().await.unwrap() && t.drained == t.spilled {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the spill buffer is drained");
}

/// Every event stored exactly once, and the counters equal the stored events.
async fn assert_stored_once_and_counted(setup: &Setup, expected: usize) {
    let stored = setup.events.inner.events();
    assert_eq!(stored.len(), expected, "stored events");
    let ids: std::collections::HashSet<_> = stored.iter().map(Event::id).collect();
    assert_eq!(ids.len(), expected, "no event twice");
    // Counters follow the commit off the writers' path: give them a moment.
    let mut last = None;
    for _ in 0..250 {
        let (counters, sums) = daily_counters_and_sums(setup.counters.as_ref(), &stored).await;
        if counters == sums {
            return;
        }
        last = Some((counters, sums));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (counters, sums) = last.unwrap();
    assert_eq!(counters, sums, "counters match the stored events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tracked_event_is_stored_once_and_counted() {
    let s = setup(config());
    let accepted = track_many(&s.tracker, 5_000, 4).await;
    assert_eq!(accepted, 5_000);
    s.tracker.flush().await.unwrap();
    assert_stored_once_and_counted(&s, 5_000).await;
    let t = s.tracker.telemetry();
    assert_eq!(
        (t.tracked, t.stored, t.duplicates, t.spilled),
        (5_000, 5_000, 0, 0)
    );
    // Batches of 100, stored one by one or, when they wait, up to MERGE_BATCHES a write.
    let fewest = 5_000u64.div_ceil(100 * analytics_tracker::MERGE_BATCHES as u64);
    assert!((fewest..500).contains(&t.flushes), "{t:?}");
    assert_eq!(t.queue_depth, 0);
    assert!(s.tracker.stop(Duration::from_secs(1)).await.clean);
}

/// Batches that wait while every writer is busy are stored together, up to
/// `merge_batches` a write; with 1, each on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_that_wait_are_stored_together() {
    for merge in [4, 1] {
        let s = setup(TrackerConfig {
            merge_batches: merge,
            ..config()
        });
        // The first writes are slow (within the store timeout): both writers are busy
        // while batches queue.
        s.events
            .faults
            .set(Fault::Hang(2, Duration::from_millis(150)));
        assert_eq!(track_many(&s.tracker, 2_000, 2).await, 2_000);
        s.tracker.flush().await.unwrap();
        assert_stored_once_and_counted(&s, 2_000).await;
        let writes = s.events.writes.lock().unwrap().clone();
        let largest = writes.iter().copied().max().unwrap_or(0);
        assert!(largest <= 100 * merge, "merge {merge}: {writes:?}");
        if merge > 1 {
            assert!(largest > 100, "waiting batches were merged: {writes:?}");
        }
        assert!(s.tracker.stop(Duration::from_secs(1)).await.clean);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_fails_n_times_gets_every_event_once() {
    let s = setup(config());
    s.events.faults.set(Fault::Fail(7));
    track_many(&s.tracker, 1_000, 2).await;
    settle(&s).await;
    assert_stored_once_and_counted(&s, 1_000).await;
    assert!(s.tracker.telemetry().retries >= 7);
    s.tracker.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_hangs_past_the_interval_is_timed_out_and_retried() {
    let s = setup(config());
    // 600 ms: longer than the flush interval (50 ms) and the store timeout (200 ms).
    s.events
        .faults
        .set(Fault::Hang(2, Duration::from_millis(600)));
    track_many(&s.tracker, 500, 1).await;
    settle(&s).await;
    assert_stored_once_and_counted(&s, 500).await;
    assert!(s.tracker.telemetry().retries >= 2);
    s.tracker.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_store_is_down_batches_spill_and_are_drained_after_recovery() {
    let s = setup(config());
    s.events.faults.set(Fault::Down);
    track_many(&s.tracker, 3_000, 2).await;
    // Batches that find every writer busy are spilled, and a writer spills its own after
    // a retry. A flush cannot finish: it waits for the drain.
    let flush = tokio::time::timeout(Duration::from_millis(300), s.tracker.flush()).await;
    assert!(flush.is_err(), "flush waits while the store is down");
    let spilled = s.spill.len().await.unwrap();
    assert_eq!(spilled, 3_000, "everything spilled");
    assert!(s.events.inner.is_empty());

    s.events.faults.set(Fault::None);
    // Idle writers drain the spill buffer.
    settle(&s).await;
    assert_stored_once_and_counted(&s, 3_000).await;
    let t = s.tracker.telemetry();
    assert_eq!(t.spilled, spilled);
    assert_eq!(t.drained, spilled);
    assert_eq!(t.stored, 3_000);
    assert!(s.tracker.stop(Duration::from_secs(1)).await.clean);
}

/// While the event store is down, a durable acknowledgement comes once its events are
/// in the spill buffer (SPEC §9), even with every writer idle: the writer that takes the
/// batch spills it after a retry instead of holding it until the store answers (the
/// request used to wait out its deadline and get 503 with nothing spilled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_acknowledgement_answers_once_spilled_while_the_store_is_down() {
    let s = setup(TrackerConfig {
        flush_interval: Duration::from_secs(30),
        ..config()
    });
    s.events.faults.set(Fault::Down);
    let validator = s.tracker.validator().clone();
    let events: Vec<Event> = (0..150)
        .map(|i| validator.typed(message(i)).unwrap())
        .collect();
    tokio::time::timeout(
        Duration::from_secs(5),
        s.tracker
            .track_events_stored(events.clone(), Duration::from_secs(30)),
    )
    .await
    .expect("answered well before its deadline")
    .expect("acknowledged once spilled");
    assert_eq!(s.spill.len().await.unwrap(), 150, "the events are spilled");
    assert!(s.events.inner.is_empty());
    let t = s.tracker.telemetry();
    assert_eq!(t.spilled, 150, "{t:?}");
    assert!(t.retries >= 2, "{t:?}");

    // Without a spill buffer there is nowhere durable to put them: the writer holds the
    // batch, and the acknowledgement waits for the store (503 at its deadline).
    let alone = Tracker::start(
        config(),
        Stores {
            events: s.events.clone(),
            stats: Arc::new(MemoryStore::new()),
            counters: s.counters.clone(),
            spill: None,
        },
    );
    let held = alone.validator().typed(message(1_000)).unwrap();
    assert!(matches!(
        alone
            .track_events_stored(vec![held], Duration::from_millis(300))
            .await,
        Err(TrackError::NotStoredInTime(_))
    ));

    // The store comes back: the spilled events are drained and stored once, and the
    // held one is stored too.
    s.events.faults.set(Fault::None);
    settle(&s).await;
    assert!(alone.stop(Duration::from_secs(1)).await.clean);
    assert_stored_once_and_counted(&s, 151).await;
    assert!(s.tracker.stop(Duration::from_secs(1)).await.clean);
}

/// While the store is down, the writers share one backoff: batches go to the spill
/// buffer without trying the store while the pause runs, so the store sees a probe per
/// pause, not two attempts per batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_store_is_down_it_is_probed_at_the_backoff_pace() {
    let s = setup(TrackerConfig {
        batch_size: 50,
        retry_initial: Duration::from_millis(300),
        retry_max: Duration::from_secs(2),
        ..config()
    });
    s.events.faults.set(Fault::Down);
    track_many(&s.tracker, 3_000, 2).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while s.spill.len().await.unwrap() < 3_000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("every batch spilled");
    let attempts = s.events.writes.lock().unwrap().len();
    assert!(
        attempts < 20,
        "{attempts} attempts at a store that is down for 60 batches"
    );
    s.events.faults.set(Fault::None);
    settle(&s).await;
    assert_stored_once_and_counted(&s, 3_000).await;
    assert!(s.tracker.stop(Duration::from_secs(1)).await.clean);
}

/// Once the store answers again, the spill buffer is drained claim after claim, without
/// waiting for a flush interval between claims or rounds of claims, and without anyone
/// calling `flush` (the drain used to take one batch per interval: ~200 events/s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spill_drains_at_full_speed_once_the_store_is_back() {
    let s = setup(TrackerConfig {
        batch_size: 10,
        flush_interval: Duration::from_secs(2),
        ..config()
    });
    s.events.faults.set(Fault::Down);
    track_many(&s.tracker, 8_000, 2).await;
    // Batches are cut at each interval (or when full); wait until most were spilled.
    tokio::time::timeout(Duration::from_secs(20), async {
        while s.spill.len().await.unwrap() < 7_000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("batches spill while the store is down");

    s.events.faults.set(Fault::None);
    // About 800 claims of 10: at a round of 64 claims per 2 s interval this took 25 s
    // (one claim per interval before that); now well under a second.
    // A claim is acknowledged (taken out of the buffer) after its events are stored.
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while s.events.inner.len() < 8_000 || !s.spill.is_empty().await.unwrap() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the spill buffer drains without waiting for intervals: {} stored, {} still \
         spilled, {:?}",
        s.events.inner.len(),
        s.spill.len().await.unwrap_or_default(),
        s.tracker.telemetry()
    );
    assert_stored_once_and_counted(&s, 8_000).await;
    assert!(s.tracker.stop(Duration::from_secs(1)).await.clean);
}

/// `flush` means stored: spilled events count only once drained back into the event
/// store (it used to answer as soon as every batch was stored *or spilled*).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_answers_once_spilled_events_are_drained_into_the_store() {
    let s = setup(TrackerConfig {
        // Idle writers would only look at the spill buffer after this long.
        flush_interval: Duration::from_secs(30),
        batch_size: 100,
        ..config()
    });
    s.events.faults.set(Fault::Down);
    track_many(&s.tracker, 3_000, 2).await;
    // The batches are cut at a flush; wait until most of them were spilled.
    let early = tokio::time::timeout(Duration::from_millis(300), s.tracker.flush()).await;
    assert!(early.is_err(), "no flush while the store is down");
    tokio::time::timeout(Duration::from_secs(10), async {
        while s.spill.len().await.unwrap() < 2_000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("batches spill while the store is down");

    s.events.faults.set(Fault::None);
    s.tracker.flush().await.unwrap();
    assert_eq!(
        s.events.inner.len(),
        3_000,
        "when flush answers, every event is in the event store"
    );
    assert!(s.spill.is_empty().await.unwrap());
    assert_stored_once_and_counted(&s, 3_000).await;
    assert!(s.tracker.stop(Duration::from_secs(1)).await.clean);
}

/// A flush that cannot see everything stored before its deadline says so, and loses
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_past_its_deadline_says_so_and_loses_nothing() {
    let s = setup(config());
    s.events.faults.set(Fault::Down);
    track_many(&s.tracker, 500, 1).await;
    match s.tracker.flush_within(Duration::from_millis(300)).await {
        Err(TrackError::NotStoredInTime(deadline)) => {
            assert_eq!(deadline, Duration::from_millis(300));
        }
        other => panic!("expected NotStoredInTime, got {other:?}"),
    }
    s.events.faults.set(Fault::None);
    s.tracker.flush().await.unwrap();
    assert_stored_once_and_counted(&s, 500).await;
    assert!(s.tracker.stop(Duration::from_secs(1)).await.clean);
}

/// A write that commits but answers after the store timeout is retried, and the retry
/// finds every id stored: no counters are applied for it. Its days stay uncounted in
/// the event store (nothing waits in memory), so statistics read them from detail
/// until the counter repair recounts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_answered_too_late_leaves_its_days_uncounted() {
    let s = setup(TrackerConfig {
        writers: 1,
        ..config()
    });
    s.events
        .faults
        .set(Fault::Late(1, Duration::from_millis(500)));
    track_many(&s.tracker, 50, 1).await;
    s.tracker.flush().await.unwrap();
    let t = s.tracker.telemetry();
    assert_eq!(
        (t.stored, t.duplicates),
        (0, 50),
        "the retry found them stored: {t:?}"
    );
    assert_eq!(s.events.inner.len(), 50);
    assert!(
        !s.events.inner.uncounted_days().await.unwrap().is_empty(),
        "the late commit's days are uncounted"
    );
    assert!(s.tracker.stop(Duration::from_secs(1)).await.clean);
}

/// A batch the store refuses for good (its data) never blocks the others: it is split
/// until the refused events are alone, those are dead-lettered with the reason, and
/// everything else is stored and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_events_are_isolated_and_dead_lettered_and_the_rest_stored() {
    let s = setup(TrackerConfig {
        batch_size: 1_000,
        ..config()
    });
    let mut poisoned = Vec::new();
    for i in 0..1_000 {
        let event = if i % 333 == 7 {
            let event = analytics_core::testing::event(
                "session.start",
                chrono::Utc::now(),
                json!({"session_id": crate::faults::POISON}),
            );
            poisoned.push(event.id());
            event
        } else {
            analytics_core::testing::event(
                "session.start",
                chrono::Utc::now(),
                json!({"session_id": format!("s-{i}")}),
            )
        };
        s.tracker.track_event(event).unwrap();
    }
    s.tracker.flush().await.unwrap();
    assert_stored_once_and_counted(&s, 1_000 - poisoned.len()).await;
    let dead = s.events.inner.dead_letters(10).await.unwrap();
    let mut dead_ids: Vec<_> = dead.iter().map(|d| d.event_id).collect();
    dead_ids.sort();
    poisoned.sort();
    assert_eq!(dead_ids, poisoned, "exactly the refused events");
    assert!(
        dead.iter().all(|d| d.reason.contains("refuses")),
        "{dead:?}"
    );
    let t = s.tracker.telemetry();
    assert_eq!((t.dead_lettered, t.retries, t.spilled), (3, 0, 0), "{t:?}");
    assert!(s.tracker.stop(Duration::from_secs(1)).await.clean);
}

/// A write that lost a race with another writer (a deadlock) is retried at once: it is
/// counted apart from outages and sends nothing to the spill buffer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_race_is_retried_at_once_and_is_not_an_outage() {
    let s = setup(config());
    s.events.faults.set(Fault::Contention(3));
    track_many(&s.tracker, 1_000, 2).await;
    s.tracker.flush().await.unwrap();
    assert_stored_once_and_counted(&s, 1_000).await;
    let t = s.tracker.telemetry();
    assert_eq!(t.contention_retries, 3, "{t:?}");
    assert_eq!((t.retries, t.spilled), (0, 0), "not an outage: {t:?}");
    assert!(s.tracker.stop(Duration::from_secs(1)).await.clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_down_for_good_loses_nothing_at_stop_and_a_later_tracker_drains_it() {
    let s = setup(config());
    s.events.faults.set(Fault::Down);
    track_many(&s.tracker, 2_000, 2).await;
    let report = s.tracker.stop(Duration::from_millis(200)).await;
    assert!(report.clean, "{report:?}");
    assert_eq!(
        s.spill.len().await.unwrap(),
        2_000,
        "everything held went to the spill buffer"
    );
    assert!(matches!(
        s.tracker.track(message(0)),
        Err(TrackError::Stopped)
    ));
    assert_eq!(s.tracker.telemetry().dropped_stopped, 1);

    // The store comes back; a new process drains what the old one spilled.
    s.events.faults.set(Fault::None);
    let next = Tracker::start(
        config(),
        Stores {
            events: s.events.clone(),
            stats: Arc::new(MemoryStore::new()),
            counters: s.counters.clone(),
            spill: Some(s.spill.clone()),
        },
    );
    tokio::time::timeout(Duration::from_secs(10), async {
        while !s.spill.is_empty().await.unwrap() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("drained");
    next.stop(Duration::from_secs(1)).await;
    assert_stored_once_and_counted(&s, 2_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_counter_store_never_holds_up_storage_and_leaves_its_days_uncounted() {
    let s = setup(config());
    s.counters.faults.set(Fault::Down);
    track_many(&s.tracker, 2_000, 2).await;
    s.tracker.flush().await.unwrap();
    assert_eq!(
        s.events.inner.len(),
        2_000,
        "events are stored while counters fail"
    );
    assert!(s.tracker.telemetry().counter_failures >= 1);
    // Nothing waits in memory: the event store knows which days are not counted, so
    // statistics read them from detail and the counter repair rebuilds them.
    let days: Vec<_> = {
        let calendar = Calendar::default();
        let mut days: Vec<_> = s
            .events
            .inner
            .events()
            .iter()
            .map(|e| calendar.date(e.timestamp()))
            .collect();
        days.sort_unstable();
        days.dedup();
        days
    };
    assert_eq!(s.events.inner.uncounted_days().await.unwrap(), days);

    // Counters back: a write whose counters are applied settles only its own marks.
    s.counters.faults.set(Fault::None);
    s.tracker.track(message(1_000_000)).unwrap();
    s.tracker.flush().await.unwrap();
    assert_eq!(
        s.events.inner.uncounted_days().await.unwrap(),
        days,
        "the failed writes stay uncounted"
    );
    s.tracker.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_is_refused_and_counted() {
    let s = setup(TrackerConfig {
        queue_capacity: 10,
        writers: 1,
        waiting_batches: 1,
        batch_size: 5,
        ..config()
    });
    // No spill buffer room matters here: the store hangs, so nothing drains quickly.
    s.events
        .faults
        .set(Fault::Hang(1_000, Duration::from_secs(5)));
    let mut full = 0;
    for i in 0..1_000 {
        match s.tracker.track(message(i)) {
            Ok(_) => {}
            Err(TrackError::BufferFull) => full += 1,
            Err(other) => panic!("{other}"),
        }
    }
    assert!(full > 0);
    let t = s.tracker.telemetry();
    assert_eq!(t.dropped_buffer_full, full);
    assert_eq!(t.tracked + t.dropped_buffer_full, 1_000);
    s.events.faults.set(Fault::None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_leaves_nothing_behind() {
    let s = setup(TrackerConfig {
        flush_interval: Duration::from_secs(60),
        ..config()
    });
    let accepted = track_many(&s.tracker, 10_050, 4).await;
    let report = s.tracker.stop(Duration::from_secs(5)).await;
    assert!(report.clean);
    assert_stored_once_and_counted(&s, accepted).await;
    assert!(s.spill.is_empty().await.unwrap());
    assert!(matches!(s.tracker.flush().await, Err(TrackError::Stopped)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_events_are_refused_with_the_catalog_error_and_counted() {
    let s = setup(config());
    let error = s
        .tracker
        .track_raw(RawEvent::new("session.start", json!({})))
        .unwrap_err();
    assert!(error.to_string().contains("session_id"), "{error}");
    let error = s
        .tracker
        .track(EventData::AgentLogin {
            agent_id: String::new(),
        })
        .unwrap_err();
    assert!(matches!(error, TrackError::Invalid(_)));
    let id = s
        .tracker
        .track_raw(RawEvent::new(
            "message.ai",
            json!({"session_id": "s", "response_time": 5}),
        ))
        .unwrap();
    s.tracker.flush().await.unwrap();
    assert_eq!(s.events.inner.events()[0].id(), id);
    assert_eq!(s.tracker.telemetry().invalid, 2);
    s.tracker.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_applied_after_storage_and_only_for_new_events() {
    let store = Arc::new(MemoryStore::new());
    let tracker = Tracker::start(
        config(),
        Stores {
            events: store.clone(),
            stats: store.clone(),
            counters: Arc::new(MemoryCounters::new()),
            spill: None,
        },
    );
    let first = tracker.track(message(1)).unwrap();
    tracker.flush().await.unwrap();
    tracker.stop(Duration::from_secs(1)).await;
    let stored = store.events();

    // The same event again, plus one new: the store says which is new, and the counters
    // get exactly the new one, after the insert.
    let again = stored[0].clone();
    assert_eq!(again.id(), first);
    let mut sequence = mockall::Sequence::new();
    let mut events = MockEventStore::new();
    let settled = Arc::new(std::sync::Mutex::new(None));
    events
        .expect_write()
        .times(1)
        .in_sequence(&mut sequence)
        .returning({
            let settled = settled.clone();
            move |batch| {
                Ok(Written {
                    new: batch
                        .iter()
                        .map(|e| e.name() != "session.message")
                        .collect(),
                    pending: Some(Box::new(Settled(settled.clone()))),
                })
            }
        });
    let fresh = tracker_validator_event();
    let expected = CounterBatch::from_events(&Calendar::default(), std::slice::from_ref(&fresh));
    let mut counters = MockCounterStore::new();
    counters
        .expect_apply()
        .times(1)
        .in_sequence(&mut sequence)
        .withf(move |batch| *batch == expected)
        .returning(|_| Ok(()));
    let tracker = Tracker::start(
        config(),
        Stores {
            events: Arc::new(events),
            stats: Arc::new(MemoryStore::new()),
            counters: Arc::new(counters),
            spill: None,
        },
    );
    tracker.track_event(again).unwrap();
    tracker.track_event(fresh).unwrap();
    tracker.flush().await.unwrap();
    let t = tracker.telemetry();
    assert_eq!((t.stored, t.duplicates), (1, 1));
    // The stop waits for the counters that follow the commit.
    tracker.stop(Duration::from_secs(1)).await;
    assert_eq!(
        *settled.lock().unwrap(),
        Some(true),
        "the write settles as applied after its counters"
    );
}

/// Pending counters that record how they were settled.
#[derive(Debug)]
struct Settled(Arc<std::sync::Mutex<Option<bool>>>);

#[async_trait::async_trait]
impl PendingCounters for Settled {
    fn days(&self) -> &[chrono::NaiveDate] {
        &[]
    }
    async fn settle(self: Box<Self>, applied: bool) {
        *self.0.lock().unwrap() = Some(applied);
    }
}

fn tracker_validator_event() -> Event {
    analytics_core::testing::event(
        "agent.login",
        chrono::Utc::now(),
        json!({"agent_id": "a-1"}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_still_writes_what_was_tracked() {
    let store = Arc::new(MemoryStore::new());
    let counters: Arc<dyn CounterStore> = Arc::new(MemoryCounters::new());
    let tracker = Tracker::start(
        TrackerConfig {
            flush_interval: Duration::from_secs(60),
            ..config()
        },
        Stores {
            events: store.clone(),
            stats: store.clone(),
            counters,
            spill: None,
        },
    );
    for i in 0..250 {
        tracker.track(message(i)).unwrap();
    }
    drop(tracker);
    tokio::time::timeout(Duration::from_secs(5), async {
        while store.len() < 250 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("written after the last handle was dropped");
    assert_eq!(Sums::from_events(&store.events()).total_events(), 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_buffered_whole_or_not_at_all() {
    let s = setup(TrackerConfig {
        queue_capacity: 10,
        batch_size: 1,
        writers: 1,
        waiting_batches: 1,
        flush_interval: Duration::from_secs(60),
        ..config()
    });
    s.events
        .faults
        .set(Fault::Hang(1_000, Duration::from_secs(5)));
    let validator = s.tracker.validator().clone();
    let mut refused = 0;
    for round in 0..100 {
        let batch: Vec<Event> = (0..4)
            .map(|i| validator.typed(message(round * 4 + i)).unwrap())
            .collect();
        let before = s.tracker.telemetry();
        let result = s.tracker.track_events(batch);
        let after = s.tracker.telemetry();
        match result {
            Ok(()) => assert_eq!(after.tracked - before.tracked, 4),
            Err(TrackError::BufferFull) => {
                assert_eq!(
                    after.tracked, before.tracked,
                    "nothing of a refused batch is taken"
                );
                assert_eq!(after.dropped_buffer_full - before.dropped_buffer_full, 4);
                refused += 1;
            }
            Err(other) => panic!("{other}"),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(refused > 0, "the buffer filled up");
    assert!(s.tracker.track_events(Vec::new()).is_ok());
    s.events.faults.set(Fault::None);
}
