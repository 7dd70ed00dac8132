//! `analytics demo`: a realistic synthetic month — shoppers talking to the chatbot, a
//! sixth of the conversations handed to a dozen agents, tickets — tracked through the
//! real tracker into the configured stores, then aggregated and told as a case study.
//! Event ids are derived from the month and a sequence number, so running the demo
//! twice for one month stores nothing twice.

use std::time::Duration;

use analytics::core::case_study::CaseStudy;
use analytics::core::catalog::{AgentStatus, EventData};
use analytics::core::config::Config;
use analytics::core::event::TypedEvent;
use analytics::core::time::YearMonth;
use analytics::stats::Jobs;
use analytics::tracker::{TrackError, Tracker};
use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use analytics::core::rng::Rng;

struct Feed<'a> {
    tracker: &'a Tracker,
    month_key: u64,
    seq: u64,
    now: DateTime<Utc>,
    tracked: u64,
}

impl Feed<'_> {
    /// Tracks one event at `at`, waiting while the buffer is full; events after now
    /// are not invented.
    async fn track(&mut self, at: DateTime<Utc>, data: EventData) -> anyhow::Result<()> {
        self.seq += 1;
        if at > self.now {
            return Ok(());
        }
        let event = TypedEvent {
            event_id: Some(Uuid::from_u64_pair(self.month_key, self.seq)),
            timestamp: Some(at),
            data,
        };
        loop {
            match self.tracker.track(event.clone()) {
                Ok(_) => break,
                Err(TrackError::BufferFull) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(error) => return Err(error.into()),
            }
        }
        self.tracked += 1;
        Ok(())
    }
}

/// Fills `month` (default: last month) and returns its case study.
///
/// # Errors
///
/// A store that cannot be opened, an event the catalog refuses (a month outside the
/// retention window), or a failed job.
pub(crate) async fn run(config: &Config, month: Option<YearMonth>) -> anyhow::Result<CaseStudy> {
    let backends = analytics::connect(config).await?;
    let calendar = config.calendar();
    let now = Utc::now();
    let month = month.unwrap_or_else(|| YearMonth::of(calendar.date(now)).prev());
    eprintln!("demo: filling {month} in {}", backends.description);
    let tracker = backends.start_tracker(config);
    let month_key = u64::from(month.year().unsigned_abs()) * 100 + u64::from(month.month());
    let mut rng = Rng::new(month_key.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut feed = Feed {
        tracker: &tracker,
        month_key,
        seq: 0,
        now,
        tracked: 0,
    };
    let agents: Vec<String> = (1..=12).map(|i| format!("agent-{i:02}")).collect();
    let days: Vec<_> = month.days().iter().collect();

    for (n, day) in days.iter().enumerate() {
        let start = calendar.day_start(*day);
        // Agents work 09:00–21:00.
        for agent in &agents {
            let login = start + TimeDelta::hours(9) + TimeDelta::minutes(rng.below(30) as i64);
            feed.track(
                login,
                EventData::AgentLogin {
                    agent_id: agent.clone(),
                },
            )
            .await?;
            feed.track(
                login + TimeDelta::hours(4),
                EventData::AgentStatusChange {
                    agent_id: agent.clone(),
                    from: Some("online".into()),
                    to: AgentStatus::Away,
                },
            )
            .await?;
            feed.track(
                login + TimeDelta::hours(5),
                EventData::AgentStatusChange {
                    agent_id: agent.clone(),
                    from: Some("away".into()),
                    to: AgentStatus::Online,
                },
            )
            .await?;
            feed.track(
                login + TimeDelta::hours(12),
                EventData::AgentLogout {
                    agent_id: agent.clone(),
                    online_duration_seconds: Some(12.0 * 3600.0),
                },
            )
            .await?;
        }
        // About 180 shoppers a day, more on weekends.
        let sessions = 150 + rng.below(60) + if n % 7 >= 5 { 40 } else { 0 };
        for i in 0..sessions {
            let session_id = format!("demo-{day}-{i}");
            let mut t = start + TimeDelta::seconds(8 * 3600 + rng.below(15 * 3600) as i64);
            feed.track(
                t,
                EventData::SessionStart {
                    session_id: session_id.clone(),
                    customer_id: Some(format!("customer-{}", rng.below(4_000))),
                    channel: Some(["web", "app", "wechat"][rng.below(3) as usize].into()),
                    user_agent: None,
                },
            )
            .await?;
            for _ in 0..2 + rng.below(5) {
                t += TimeDelta::seconds(10 + rng.below(50) as i64);
                feed.track(
                    t,
                    EventData::SessionMessage {
                        session_id: session_id.clone(),
                        response_time_ms: rng.between(600.0, 2_400.0),
                        tokens: Some(80 + rng.below(400)),
                    },
                )
                .await?;
            }
            if rng.chance(0.25) {
                feed.track(
                    t,
                    EventData::QueryOrder {
                        session_id: Some(session_id.clone()),
                        order_id: Some(format!("order-{}", rng.below(100_000))),
                        success: Some(rng.chance(0.95)),
                    },
                )
                .await?;
            }
            if rng.chance(0.15) {
                feed.track(
                    t,
                    EventData::QueryTracking {
                        session_id: Some(session_id.clone()),
                        tracking_number: Some(format!("SF{}", rng.below(1_000_000_000))),
                        success: Some(true),
                    },
                )
                .await?;
            }
            if rng.chance(0.15) {
                let agent = agents[rng.below(agents.len() as u64) as usize].clone();
                feed.track(
                    t,
                    EventData::SessionEscalate {
                        session_id: session_id.clone(),
                        reason: Some("customer asked for a person".into()),
                    },
                )
                .await?;
                let wait = rng.between(8.0, 55.0);
                t += TimeDelta::milliseconds((wait * 1000.0) as i64);
                feed.track(
                    t,
                    EventData::AgentSessionTakeover {
                        agent_id: agent.clone(),
                        session_id: session_id.clone(),
                        wait_duration_seconds: wait,
                    },
                )
                .await?;
                for _ in 0..2 + rng.below(4) {
                    feed.track(
                        t,
                        EventData::AgentSessionMessage {
                            agent_id: agent.clone(),
                            session_id: session_id.clone(),
                        },
                    )
                    .await?;
                }
                if rng.chance(0.05) {
                    feed.track(
                        t,
                        EventData::AgentSessionTransfer {
                            agent_id: agent.clone(),
                            session_id: session_id.clone(),
                            to_agent_id: agents[0].clone(),
                        },
                    )
                    .await?;
                }
                let handle = rng.between(240.0, 780.0);
                t += TimeDelta::milliseconds((handle * 1000.0) as i64);
                feed.track(
                    t,
                    EventData::AgentSessionRelease {
                        agent_id: agent,
                        session_id: session_id.clone(),
                        handle_duration_seconds: handle,
                    },
                )
                .await?;
            }
            t += TimeDelta::seconds(30);
            feed.track(
                t,
                EventData::SessionEnd {
                    session_id,
                    duration_seconds: Some(rng.between(60.0, 900.0)),
                },
            )
            .await?;
        }
        // A few tickets a day, most closed within SLA.
        for i in 0..3 + rng.below(5) {
            let ticket_id = format!("ticket-{day}-{i}");
            let agent = agents[rng.below(agents.len() as u64) as usize].clone();
            let opened = start + TimeDelta::seconds(9 * 3600 + rng.below(8 * 3600) as i64);
            feed.track(
                opened,
                EventData::TicketCreated {
                    ticket_id: ticket_id.clone(),
                    source: Some("chat".into()),
                    priority: Some(["low", "normal", "high"][rng.below(3) as usize].into()),
                },
            )
            .await?;
            feed.track(
                opened,
                EventData::TicketAssigned {
                    ticket_id: ticket_id.clone(),
                    agent_id: agent,
                },
            )
            .await?;
            let hours = rng.between(0.5, 7.5);
            feed.track(
                opened + TimeDelta::seconds((hours * 3600.0) as i64),
                EventData::TicketClosed {
                    ticket_id,
                    resolution_duration_hours: hours,
                    sla_met: rng.chance(0.95),
                },
            )
            .await?;
        }
        eprintln!(
            "demo: {day} done ({}/{} days, {} events)",
            n + 1,
            days.len(),
            feed.tracked
        );
    }

    let report = tracker.stop(Duration::from_secs(60)).await;
    anyhow::ensure!(report.clean, "{} events could not be stored", report.lost);
    let stats = backends.stats(config);
    Jobs::new(stats.clone()).refresh().await?;
    eprintln!("demo: {} events stored and aggregated", feed.tracked);
    Ok(stats.case_study(month).await?)
}
