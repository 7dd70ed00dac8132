//! Analytics for the AI chatbot and the agent workbench: one crate that products
//! depend on.
//!
//! The layers are re-exported whole, by module, as in ripgrep's `grep` crate:
//!
//! | module | crate | holds |
//! |---|---|---|
//! | [`core`] | `analytics-core` | event catalog, validation, metrics, case study, config, storage traits |
//! | [`tracker`] | `analytics-tracker` | the buffered, non-blocking tracker |
//! | [`stats`] | `analytics-stats` | business statistics and the scheduled jobs |
//! | [`pg`] | `analytics-pg` | the PostgreSQL store |
//! | [`redis`] | `analytics-redis` | the Redis counters and spill buffer |
//! | [`embedded`] | `analytics-embedded` | the embedded store, used when no database is configured |
//!
//! Both products share one tracker per process: [`init_tracker`] starts it, [`tracker`]
//! returns it anywhere in the process.
//!
//! # Recording events from a product
//!
//! The seeds' chatbot starts the tracker in its `lifespan`, records `session.start`
//! when a conversation opens and one `message.ai` per AI reply, and stops the tracker
//! at shutdown, which writes whatever it still holds. In Rust (with in-memory stores
//! here; a service passes its PostgreSQL and Redis stores):
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//!
//! use analytics::core::catalog::EventData;
//! use analytics::core::event::RawEvent;
//! use analytics::core::memory::{MemoryCounters, MemoryStore};
//! use analytics::core::store::Stores;
//! use analytics::tracker::TrackerConfig;
//! use analytics::{init_tracker, tracker};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // lifespan: at start-up.
//! let events = Arc::new(MemoryStore::new());
//! let stores = Stores::new(events.clone(), Arc::new(MemoryCounters::new()));
//! init_tracker(TrackerConfig::default(), stores).expect("the first tracker of the process");
//!
//! chat_stream("s-1", "Mozilla/5.0").await;
//!
//! // lifespan: at shutdown, write what is buffered.
//! let report = tracker().expect("started").stop(Duration::from_secs(10)).await;
//! assert!(report.clean);
//! assert_eq!(events.len(), 2);
//! # }
//!
//! // The chat handler.
//! async fn chat_stream(session_id: &str, user_agent: &str) {
//!     let Some(tracker) = tracker() else { return };
//!     // Recording never waits and never fails the request: errors are counted.
//!     let _ = tracker.track(EventData::SessionStart {
//!         session_id: session_id.into(),
//!         customer_id: None,
//!         channel: None,
//!         user_agent: Some(user_agent.into()),
//!     });
//!
//!     let start = Instant::now();
//!     // ... the AI answers ...
//!     let response_time = start.elapsed().as_secs_f64() * 1000.0;
//!     let _ = tracker.track_raw(RawEvent::new(
//!         "message.ai",
//!         json!({ "session_id": session_id, "response_time": response_time, "tokens": 42 }),
//!     ));
//! }
//! ```
#![deny(missing_docs)]

use std::sync::{Arc, OnceLock};

pub use analytics_core as core;
pub use analytics_embedded as embedded;
pub use analytics_pg as pg;
pub use analytics_redis as redis;
pub use analytics_stats as stats;
pub use analytics_tracker as tracker;

use analytics_core::config::{Config, Database};
use analytics_core::memory::MemoryCounters;
use analytics_core::store::{CounterStore, EventStore, SpillBuffer, StatsStore, Stores};
use analytics_tracker::{Tracker, TrackerConfig};

static TRACKER: OnceLock<Tracker> = OnceLock::new();

/// Why [`init_tracker`] did not start a tracker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The process already has its tracker.
    #[error("the analytics tracker is already started")]
    AlreadyStarted,
    /// The tracker's tasks need a Tokio runtime, and none is running here.
    #[error("the analytics tracker must be started inside a Tokio runtime")]
    NoRuntime,
}

/// Starts the process-wide tracker on the current Tokio runtime.
///
/// # Errors
///
/// [`InitError::AlreadyStarted`] on a second call, [`InitError::NoRuntime`] outside a
/// Tokio runtime.
pub fn init_tracker(config: TrackerConfig, stores: Stores) -> Result<&'static Tracker, InitError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(InitError::NoRuntime);
    }
    let mut started = false;
    let tracker = TRACKER.get_or_init(|| {
        started = true;
        Tracker::start(config, stores)
    });
    if started {
        Ok(tracker)
    } else {
        Err(InitError::AlreadyStarted)
    }
}

/// The process-wide tracker, once [`init_tracker`] has started it.
pub fn tracker() -> Option<&'static Tracker> {
    TRACKER.get()
}

/// The stores a service runs on, chosen by [`connect`].
#[derive(Clone)]
pub struct Backends {
    /// Event detail and daily statistics in PostgreSQL or the embedded database;
    /// real-time counters in Redis or in-process; the spill buffer in Redis when
    /// configured.
    pub stores: Stores,
    /// With a PostgreSQL replica (`DATABASE_READ_URL`): what statistics and the jobs
    /// use instead of `events` and `stats` (writes to the primary, reads from the
    /// replica once it has caught up).
    pub reads: Option<Arc<analytics_pg::ReplicaReads>>,
    /// What was chosen, with passwords masked, for logs.
    pub description: String,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl Backends {
    /// The tracker of a service on these stores, as `config` sets it up: the one way
    /// the server, the demo and the commands start one.
    pub fn start_tracker(&self, config: &Config) -> Tracker {
        Tracker::start(TrackerConfig::from_config(config), self.stores.clone())
    }

    /// Statistics over these stores, as `config` sets them up, on the system clock (the
    /// scheduled jobs are `analytics::stats::Jobs::new` of them): the one way the
    /// server, the demo and the commands build them, so that all use one calendar.
    pub fn stats(&self, config: &Config) -> analytics_stats::Stats {
        analytics_stats::Stats::new(
            self.stats_stores(),
            Arc::new(analytics_core::event::SystemClock),
            analytics_stats::StatsConfig::from_config(config),
        )
    }

    /// The stores statistics read (and the jobs write): with a replica, detail and
    /// statistics through [`analytics_pg::ReplicaReads`].
    pub fn stats_stores(&self) -> Stores {
        match &self.reads {
            Some(reads) => Stores {
                events: reads.clone(),
                stats: reads.clone(),
                ..self.stores.clone()
            },
            None => self.stores.clone(),
        }
    }
}

/// Why [`connect`] could not open the configured stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// PostgreSQL could not be reached or migrated.
    #[error("cannot open PostgreSQL at {url}")]
    Postgres {
        /// The URL, password masked.
        url: String,
        /// What failed.
        #[source]
        source: analytics_pg::Error,
    },
    /// The embedded database could not be opened.
    #[error("cannot open the embedded database {url}")]
    Embedded {
        /// The URL.
        url: String,
        /// What failed.
        #[source]
        source: analytics_embedded::Error,
    },
    /// The Redis URL is not usable.
    #[error("cannot use Redis at {url}")]
    Redis {
        /// The URL, password masked.
        url: String,
        /// What failed.
        #[source]
        source: analytics_redis::Error,
    },
}

/// Opens the stores `config` names: PostgreSQL (`postgres://`, migrated on connect) or
/// the embedded database (`DATABASE_URL` unset or `sqlite:`), and Redis (`REDIS_URL`,
/// which also holds the spill buffer) or in-process counters.
///
/// # Errors
///
/// A [`ConnectError`] naming the store that could not be opened. Redis connections
/// are opened on first use, so a Redis that is down is not an error here.
pub async fn connect(config: &Config) -> Result<Backends, ConnectError> {
    let calendar = config.calendar();
    let mut reads = None;
    let (events, stats, database): (Arc<dyn EventStore>, Arc<dyn StatsStore>, String) =
        match &config.database {
            Database::Postgres(url) => {
                let postgres = |source| ConnectError::Postgres {
                    url: url.redacted(),
                    source,
                };
                let store = analytics_pg::PgStore::connect(
                    url.expose(),
                    calendar,
                    analytics_pg::PoolOptions::default(),
                )
                .await
                .map_err(postgres)?;
                store.migrate().await.map_err(postgres)?;
                let store = Arc::new(store);
                let mut description = format!("PostgreSQL at {url}");
                if let Some(read_url) = &config.database_read_url {
                    // The replica is not migrated: it replays the primary's schema. It
                    // is connected on first use: a replica that is down now is read
                    // around (the primary answers), not a reason not to start.
                    let replica = analytics_pg::PgStore::connect_lazy(
                        read_url.expose(),
                        calendar,
                        analytics_pg::PoolOptions::default(),
                    )
                    .map_err(|source| ConnectError::Postgres {
                        url: read_url.redacted(),
                        source,
                    })?;
                    reads = Some(Arc::new(analytics_pg::ReplicaReads::new(
                        store.clone(),
                        Arc::new(replica),
                        analytics_pg::REPLICA_WAIT,
                    )));
                    description.push_str(&format!(", questions from its replica at {read_url}"));
                }
                (store.clone(), store, description)
            }
            Database::Embedded(url) => {
                let store = analytics_embedded::EmbeddedStore::open(url.expose(), calendar)
                    .await
                    .map_err(|source| ConnectError::Embedded {
                        url: url.redacted(),
                        source,
                    })?;
                let store = Arc::new(store);
                (store.clone(), store, format!("the embedded database {url}"))
            }
        };
    let (counters, spill, redis): (Arc<dyn CounterStore>, Option<Arc<dyn SpillBuffer>>, String) =
        match &config.redis_url {
            Some(url) => {
                let store = analytics_redis::RedisStore::connect(
                    url.expose(),
                    analytics_redis::RedisOptions {
                        prefix: config.redis_prefix.clone(),
                        ..analytics_redis::RedisOptions::default()
                    },
                )
                .map_err(|source| ConnectError::Redis {
                    url: url.redacted(),
                    source,
                })?;
                let store = Arc::new(store);
                (
                    store.clone(),
                    Some(store),
                    format!("Redis at {url} (prefix {})", config.redis_prefix),
                )
            }
            None => (
                Arc::new(MemoryCounters::new()),
                None,
                "in-process counters".to_owned(),
            ),
        };
    Ok(Backends {
        stores: Stores {
            events,
            stats,
            counters,
            spill,
        },
        reads,
        description: format!("{database}, {redis}"),
    })
}
