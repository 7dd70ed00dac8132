//! The differential test: a seeded two-month stream through the tracker into each
//! backend; the statistics must agree with the plain computation at every stage.

use std::sync::Arc;
use std::time::Duration;

use analytics_core::case_study::CaseStudy;
use analytics_core::event::{FixedClock, RawEvent};
use analytics_core::memory::{MemoryCounters, MemorySpill, MemoryStore};
use analytics_core::report::{AgentMetrics, BusinessMetrics, CostPerResolution, TicketMetrics};
use analytics_core::sketch::RELATIVE_ACCURACY;
use analytics_core::store::Stores;
use analytics_core::store::{CounterStore, EventStore, SpillBuffer, StatsStore};
use analytics_core::time::{Calendar, DateRange, YearMonth};
use analytics_pg::testing::TestDatabase;
use analytics_redis::testing::TestRedis;
use analytics_stats::{Jobs, Stats, StatsConfig};
use analytics_tracker::{Tracker, TrackerConfig};
use chrono::NaiveDate;

use crate::plain::Plain;
use crate::stream;

/// The real-time view's active sessions and online agents against a plain recount of
/// the events (each id once) since yesterday's start, as the counters keep them once
/// rebuilt: a session is active when it started, did not end and was seen within the
/// idle time (30 minutes); an agent is online when its latest presence is not offline.
async fn check_active(stats: &Stats, events: &[RawEvent], stage: &str) {
    let from = stats.recent_start();
    let now = stream::now();
    let mut seen = std::collections::HashSet::new();
    let mut sessions =
        std::collections::BTreeMap::<String, (bool, bool, chrono::DateTime<chrono::Utc>)>::new();
    let mut agents =
        std::collections::BTreeMap::<String, (chrono::DateTime<chrono::Utc>, bool)>::new();
    for event in events {
        let at = event.timestamp.unwrap();
        if !seen.insert(event.event_id.unwrap()) || at < from {
            continue;
        }
        let text = |key: &str| {
            event
                .properties
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        match event.event.as_str() {
            name @ ("session.start"
            | "session.end"
            | "session.message"
            | "message.ai"
            | "session.escalate"
            | "agent.session_takeover"
            | "agent.session_message") => {
                let mark = sessions
                    .entry(text("session_id").unwrap())
                    .or_insert((false, false, at));
                mark.0 |= name == "session.start";
                mark.1 |= name == "session.end";
                mark.2 = mark.2.max(at);
            }
            name @ ("agent.login" | "agent.logout" | "agent.status_change") => {
                let online = match name {
                    "agent.login" => true,
                    "agent.logout" => false,
                    _ => text("to").as_deref() != Some("offline"),
                };
                let agent = agents
                    .entry(text("agent_id").unwrap())
                    .or_insert((at, online));
                if at >= agent.0 {
                    *agent = (at, online);
                }
            }
            _ => {}
        }
    }
    let cutoff = now - chrono::TimeDelta::minutes(30);
    let active = sessions
        .values()
        .filter(|(started, ended, last)| *started && !*ended && *last >= cutoff)
        .count() as u64;
    let online = agents.values().filter(|(_, online)| *online).count() as u64;
    let realtime = stats.realtime().await.unwrap();
    assert!(
        active > 0 && online > 0,
        "{stage}: the stream has some of both"
    );
    assert_eq!(
        (realtime.active_sessions, realtime.online_agents),
        (active, online),
        "{stage}: (active sessions, online agents)"
    );
}

/// The real-time view's last 24 hours against a plain recount of the events (each id
/// once) by Shanghai wall-clock hour.
async fn check_hours(stats: &Stats, events: &[RawEvent], stage: &str) {
    use chrono::Timelike as _;
    let mut seen = std::collections::HashSet::new();
    let mut hours = std::collections::BTreeMap::<(NaiveDate, u8), (u64, u64)>::new();
    for event in events {
        if !seen.insert(event.event_id.unwrap()) {
            continue;
        }
        let local = event
            .timestamp
            .unwrap()
            .with_timezone(&chrono_tz::Asia::Shanghai);
        let hour = hours
            .entry((local.date_naive(), local.hour() as u8))
            .or_default();
        hour.0 += 1;
        hour.1 += u64::from(event.event == "session.start");
    }
    let realtime = stats.realtime().await.unwrap();
    assert_eq!(realtime.last_24_hours.len(), 24, "{stage}");
    for figures in &realtime.last_24_hours {
        let expected = hours
            .get(&(figures.date, figures.hour))
            .copied()
            .unwrap_or_default();
        assert_eq!(
            (figures.events, figures.sessions_started),
            expected,
            "{stage}: hour {} {}:00 (events, sessions started)",
            figures.date,
            figures.hour
        );
    }
    assert_eq!(realtime.this_hour, *realtime.last_24_hours.last().unwrap());
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn close(a: Option<f64>, b: Option<f64>, what: &str, stage: &str) {
    match (a, b) {
        (None, None) => {}
        (Some(a), Some(b)) => assert!(
            (a - b).abs() <= 1e-9 * a.abs().max(1.0),
            "{stage}: {what}: {a} vs plain {b}"
        ),
        _ => panic!("{stage}: {what}: {a:?} vs plain {b:?}"),
    }
}

/// A percentile against the exact one: within the stated relative accuracy, plus the
/// millionth of a unit values are kept to.
fn within(a: Option<f64>, exact: Option<f64>, what: &str, stage: &str) {
    match (a, exact) {
        (None, None) => {}
        (Some(a), Some(b)) => assert!(
            (a - b).abs() <= RELATIVE_ACCURACY * b.abs() + 1e-6,
            "{stage}: {what}: {a} vs exact {b}"
        ),
        _ => panic!("{stage}: {what}: {a:?} vs exact {exact:?}"),
    }
}

fn same_metrics(ours: &BusinessMetrics, plain: &BusinessMetrics, stage: &str) {
    for (what, a, b) in [
        (
            "response_time_ms_p50",
            ours.response_time_ms_p50,
            plain.response_time_ms_p50,
        ),
        (
            "response_time_ms_p90",
            ours.response_time_ms_p90,
            plain.response_time_ms_p90,
        ),
        (
            "first_response_seconds_p50",
            ours.first_response_seconds_p50,
            plain.first_response_seconds_p50,
        ),
        (
            "first_response_seconds_p90",
            ours.first_response_seconds_p90,
            plain.first_response_seconds_p90,
        ),
        (
            "handle_time_seconds_p50",
            ours.handle_time_seconds_p50,
            plain.handle_time_seconds_p50,
        ),
        (
            "handle_time_seconds_p90",
            ours.handle_time_seconds_p90,
            plain.handle_time_seconds_p90,
        ),
        (
            "resolution_time_hours_p50",
            ours.resolution_time_hours_p50,
            plain.resolution_time_hours_p50,
        ),
        (
            "resolution_time_hours_p90",
            ours.resolution_time_hours_p90,
            plain.resolution_time_hours_p90,
        ),
    ] {
        within(a, b, what, stage);
    }
    let counts = |m: &BusinessMetrics| {
        (
            m.total_customers_served,
            m.escalations,
            m.ai_resolved,
            m.sessions_handled,
            m.tickets_resolved,
        )
    };
    assert_eq!(counts(ours), counts(plain), "{stage}: counts");
    assert_eq!(ours.cost_saved_yuan, plain.cost_saved_yuan, "{stage}: cost");
    close(
        ours.ai_resolution_rate,
        plain.ai_resolution_rate,
        "ai_resolution_rate",
        stage,
    );
    close(
        ours.avg_response_time_ms,
        plain.avg_response_time_ms,
        "avg_response_time_ms",
        stage,
    );
    close(
        ours.avg_first_response_seconds,
        plain.avg_first_response_seconds,
        "avg_first_response_seconds",
        stage,
    );
    close(
        ours.avg_handle_time_seconds,
        plain.avg_handle_time_seconds,
        "avg_handle_time_seconds",
        stage,
    );
    close(
        ours.avg_resolution_time_hours,
        plain.avg_resolution_time_hours,
        "avg_resolution_time_hours",
        stage,
    );
    close(ours.sla_met_rate, plain.sla_met_rate, "sla_met_rate", stage);
}

fn same_agents(ours: &[AgentMetrics], plain: &[AgentMetrics], stage: &str) {
    assert_eq!(ours.len(), plain.len(), "{stage}: agents");
    for (a, b) in ours.iter().zip(plain) {
        assert_eq!(
            (&a.agent_id, a.sessions_handled, a.messages, a.transfers),
            (&b.agent_id, b.sessions_handled, b.messages, b.transfers),
            "{stage}: agent"
        );
        close(
            a.avg_first_response_seconds,
            b.avg_first_response_seconds,
            "agent first response",
            stage,
        );
        close(
            a.avg_handle_time_seconds,
            b.avg_handle_time_seconds,
            "agent handle time",
            stage,
        );
        for (what, x, y) in [
            (
                "agent first response p50",
                a.first_response_seconds_p50,
                b.first_response_seconds_p50,
            ),
            (
                "agent first response p90",
                a.first_response_seconds_p90,
                b.first_response_seconds_p90,
            ),
            (
                "agent handle time p50",
                a.handle_time_seconds_p50,
                b.handle_time_seconds_p50,
            ),
            (
                "agent handle time p90",
                a.handle_time_seconds_p90,
                b.handle_time_seconds_p90,
            ),
        ] {
            within(x, y, what, stage);
        }
    }
}

fn same_tickets(ours: &TicketMetrics, plain: &TicketMetrics, stage: &str) {
    assert_eq!(
        (ours.tickets_created, ours.tickets_resolved),
        (plain.tickets_created, plain.tickets_resolved),
        "{stage}: tickets"
    );
    close(
        ours.avg_resolution_time_hours,
        plain.avg_resolution_time_hours,
        "ticket resolution",
        stage,
    );
    close(ours.sla_met_rate, plain.sla_met_rate, "ticket sla", stage);
}

/// Every figure of both months and every day, against the plain computation.
async fn check(stats: &Stats, events: &[RawEvent], stage: &str) {
    let plain = Plain::of(events);
    for month in ["2025-11", "2025-12", "2026-01"] {
        let month: YearMonth = month.parse().unwrap();
        let (first, last) = (month.first_day(), month.last_day());
        let expected = plain.over(first, last).metrics();
        let study = stats.case_study(month).await.unwrap();
        same_metrics(
            &study.raw,
            &expected,
            &format!("{stage}, {month} case study"),
        );
        // Every display string and the story, as the plain figures would tell them.
        let told = CaseStudy::from_metrics(month, expected.clone());
        assert_eq!(study.period, told.period, "{stage}, {month}");
        assert_eq!(study.ai_chatbot, told.ai_chatbot, "{stage}, {month}");
        assert_eq!(
            study.agent_workbench, told.agent_workbench,
            "{stage}, {month}"
        );
        assert_eq!(study.tickets, told.tickets, "{stage}, {month}");
        assert_eq!(study.story, told.story, "{stage}, {month}");
        let agents: Vec<AgentMetrics> = plain
            .agents_over(first, last)
            .iter()
            .map(|(agent, figures)| figures.agent(agent))
            .collect();
        same_agents(
            &stats.agents(month).await.unwrap(),
            &agents,
            &format!("{stage}, {month} agents"),
        );
        same_tickets(
            &stats.tickets(month).await.unwrap(),
            &plain.over(first, last).tickets(),
            &format!("{stage}, {month} tickets"),
        );
    }
    // The AI funnel of each month and of each of its days, against a plain count:
    // customers come back across days and across the turn of the year.
    for month in ["2025-11", "2025-12", "2026-01"] {
        let month: YearMonth = month.parse().unwrap();
        // Each day counted on its own, as the statistics keep it.
        let plain_days: std::collections::BTreeMap<NaiveDate, (u64, u64, u64, u64)> = month
            .days()
            .iter()
            .map(|day| (day, crate::plain::funnel(events, day, day)[&day]))
            .collect();
        let report = stats.ai_funnel(month.days()).await.unwrap();
        let mut total = (0, 0, 0, 0);
        for (day, ours) in plain_days.iter().zip(&report.days) {
            let (date, counts) = day;
            assert_eq!(ours.date, *date);
            let got = (
                ours.funnel.sessions,
                ours.funnel.ai_handled,
                ours.funnel.returned,
                ours.funnel.sessions_without_customer,
            );
            assert_eq!(got, *counts, "{stage}, funnel of {date}");
            assert_eq!(
                ours.funnel.durable_ai_resolved,
                counts.1 - counts.2,
                "{stage}, {date}"
            );
            total = (
                total.0 + counts.0,
                total.1 + counts.1,
                total.2 + counts.2,
                total.3 + counts.3,
            );
        }
        let f = &report.total;
        assert_eq!(
            (
                f.sessions,
                f.ai_handled,
                f.returned,
                f.sessions_without_customer
            ),
            total,
            "{stage}, funnel of {month}"
        );
        close(
            f.durable_ai_resolution_rate,
            (total.0 > 0).then(|| (total.1 - total.2) as f64 / total.0 as f64),
            "durable_ai_resolution_rate",
            stage,
        );
        close(
            f.return_rate,
            (total.1 > 0).then(|| total.2 as f64 / total.1 as f64),
            "return_rate",
            stage,
        );
        assert_eq!(f.cost_saved_durable_yuan, (total.1 - total.2) as f64 * 10.0);
    }

    let range = DateRange::new(date("2025-11-30"), stats.today()).unwrap();
    let (total, series) = stats.range_with_total(range).await.unwrap();
    assert_eq!(series.len(), range.len());
    // The whole range: its percentiles over all its values, not a mean of days'.
    same_metrics(
        &total,
        &plain.over(range.start(), range.end()).metrics(),
        &format!("{stage}, the range"),
    );
    for (day, metrics) in series {
        same_metrics(
            &metrics,
            &plain.over(day, day).metrics(),
            &format!("{stage}, {day}"),
        );
    }
}

/// The stores of one backend, and how to make its counters lose everything.
struct Backend {
    events: Arc<dyn EventStore>,
    stats: Arc<dyn StatsStore>,
    counters: Arc<dyn CounterStore>,
    spill: Arc<dyn SpillBuffer>,
    wipe_counters: Box<dyn Fn()>,
}

async fn scenario(backend: Backend, seed: u64) {
    let clock = Arc::new(FixedClock::new(stream::now()));
    let tracker = Tracker::start_with_clock(
        TrackerConfig {
            flush_interval: Duration::from_millis(50),
            batch_size: 500,
            ..TrackerConfig::default()
        },
        Stores {
            events: backend.events.clone(),
            stats: backend.stats.clone(),
            counters: backend.counters.clone(),
            spill: Some(backend.spill.clone()),
        },
        clock.clone(),
    );
    let stores = Stores {
        events: backend.events.clone(),
        stats: backend.stats.clone(),
        counters: backend.counters.clone(),
        spill: None,
    };
    let config = StatsConfig {
        calendar: Calendar::default(),
        cost: CostPerResolution::default(),
        retention_days: 90,
        session_idle: Duration::from_secs(1800),
        days_ahead: 7,
        return_window: analytics_core::store::RETURN_WINDOW,
    };
    let stats = Stats::new(stores.clone(), clock.clone(), config.clone());
    let jobs = Jobs::new(stats.clone());
    let track = |events: &[RawEvent]| {
        for event in events {
            tracker
                .track_raw(event.clone())
                .unwrap_or_else(|e| panic!("{e}"));
        }
    };

    // 1. The stream arrives; no job has run: days come from detail and counters.
    let mut all = stream::initial(seed);
    track(&all);
    tracker.flush().await.unwrap();
    check(&stats, &all, "after the first flush").await;
    check_hours(&stats, &all, "after the first flush").await;
    // No repair has run: the counters are not known whole, and detail answers.
    check_active(&stats, &all, "after the first flush").await;

    // 2. The jobs run, twice: days come from daily statistics.
    jobs.run_all().await.unwrap();
    jobs.run_all().await.unwrap();
    assert!(backend.events.dirty_days().await.unwrap().is_empty());
    check(&stats, &all, "after the jobs ran twice").await;

    // 3. Late events for December, yesterday and today, and duplicates.
    let late = stream::late(seed, &all);
    track(&late);
    tracker.flush().await.unwrap();
    all.extend(late);
    check(&stats, &all, "with late events, before the jobs").await;
    jobs.run_all().await.unwrap();
    jobs.run_all().await.unwrap();
    check(&stats, &all, "with late events, after the jobs").await;

    // 4. Redis loses everything; more events arrive today; the repair job rebuilds.
    (backend.wipe_counters)();
    let more = stream::today_more(seed);
    track(&more);
    tracker.flush().await.unwrap();
    all.extend(more);
    // Before the repair the counters hold only what came after the loss: the hours
    // are read from detail.
    check_hours(&stats, &all, "after the counters were lost").await;
    check_active(&stats, &all, "after the counters were lost").await;
    jobs.repair_counters().await.unwrap();
    check(&stats, &all, "after the counters were lost and repaired").await;
    // After it, from the counters again where they are whole: their hours, sessions
    // and agents were rebuilt.
    check_hours(&stats, &all, "after the counters were lost and repaired").await;
    check_active(&stats, &all, "after the counters were lost and repaired").await;
    let today = stats.today();
    let realtime = stats.realtime().await.unwrap();
    let plain_today = Plain::of(&all).over(today, today).metrics();
    // The real-time view has no percentiles (null); `daily` of today has them.
    same_metrics(
        &realtime.today,
        &BusinessMetrics {
            response_time_ms_p50: None,
            response_time_ms_p90: None,
            first_response_seconds_p50: None,
            first_response_seconds_p90: None,
            handle_time_seconds_p50: None,
            handle_time_seconds_p90: None,
            resolution_time_hours_p50: None,
            resolution_time_hours_p90: None,
            ..plain_today.clone()
        },
        "real-time view",
    );
    same_metrics(
        &stats.daily(today).await.unwrap(),
        &plain_today,
        "today's daily",
    );

    // 5. Retention drops December's detail (a 19-day window ends on 2026-01-01).
    jobs.run_all().await.unwrap();
    let short = Jobs::new(Stats::new(
        stores,
        clock,
        StatsConfig {
            retention_days: 19,
            ..config
        },
    ));
    short.retention().await.unwrap();
    let december = Calendar::default().day_window(date("2025-12-15"));
    assert!(
        backend
            .events
            .summarize(december)
            .await
            .unwrap()
            .totals
            .is_empty(),
        "December's detail is gone"
    );
    check(&stats, &all, "after retention dropped December's detail").await;

    assert!(tracker.stop(Duration::from_secs(10)).await.clean);
    let t = tracker.telemetry();
    assert!(
        t.duplicates > 0,
        "duplicates were sent and recognized: {t:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_agree_with_a_plain_computation_on_postgres_and_redis() {
    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let pg = Arc::new(analytics_pg::PgStore::new(
        db.store().pool().clone(),
        *db.store().calendar(),
    ));
    let counters = Arc::new(redis.store().clone());
    let prefix = redis.prefix().to_owned();
    let wipe = move || {
        let url = analytics_redis::testing::server_url();
        let mut conn = analytics_redis::testing::redis::Client::open(url)
            .unwrap()
            .get_connection()
            .unwrap();
        let keys: Vec<String> = analytics_redis::testing::redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query(&mut conn)
            .unwrap();
        if !keys.is_empty() {
            let _: () = analytics_redis::testing::redis::cmd("UNLINK")
                .arg(keys)
                .query(&mut conn)
                .unwrap();
        }
    };
    scenario(
        Backend {
            events: pg.clone(),
            stats: pg,
            counters: counters.clone(),
            spill: counters,
            wipe_counters: Box::new(wipe),
        },
        7,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_agree_with_a_plain_computation_on_the_in_memory_stores() {
    let store = Arc::new(MemoryStore::new());
    let counters = Arc::new(MemoryCounters::new());
    let wiped = counters.clone();
    scenario(
        Backend {
            events: store.clone(),
            stats: store,
            counters,
            spill: Arc::new(MemorySpill::new()),
            wipe_counters: Box::new(move || wiped.clear()),
        },
        7,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_agree_with_a_plain_computation_on_the_embedded_store() {
    let db = analytics_embedded::testing::TestEmbedded::new().await;
    let store = Arc::new(db.store().clone());
    let counters = Arc::new(MemoryCounters::new());
    let wiped = counters.clone();
    scenario(
        Backend {
            events: store.clone(),
            stats: store,
            counters,
            spill: Arc::new(MemorySpill::new()),
            wipe_counters: Box::new(move || wiped.clear()),
        },
        7,
    )
    .await;
}
