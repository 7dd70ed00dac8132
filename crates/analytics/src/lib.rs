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
//! # Recording events from a product
//!
//! The seeds' chat handler records `session.start` when a conversation opens and one
//! `message.ai` per AI reply. In Rust a product builds typed events (or, for names
//! chosen at run time, a name and JSON properties) and hands them to the shared
//! tracker, which validates them exactly as below before buffering them; the legacy
//! name `message.ai` and its `response_time` property are still understood:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//!
//! use analytics::core::catalog::EventData;
//! use analytics::core::event::{RawEvent, SystemClock, Validator};
//! use analytics::core::config::Config;
//! use serde_json::json;
//!
//! // At start-up (the seeds' `lifespan`): one configuration for the process.
//! let config = Config::default();
//! let validator = Validator::new(config.validation_rules(), Arc::new(SystemClock));
//!
//! // In the chat handler.
//! let session_id = "s-1";
//! let started = validator.typed(EventData::SessionStart {
//!     session_id: session_id.into(),
//!     customer_id: None,
//!     channel: None,
//!     user_agent: Some("Mozilla/5.0".into()),
//! })?;
//!
//! let start = Instant::now();
//! // ... the AI answers ...
//! let response_time = start.elapsed().as_secs_f64() * 1000.0;
//! let replied = validator.raw(RawEvent::new(
//!     "message.ai",
//!     json!({ "session_id": session_id, "response_time": response_time, "tokens": 42 }),
//! ))?;
//!
//! assert_eq!(started.name(), "session.start");
//! assert_eq!(replied.name(), "session.message"); // stored under its catalog name
//! # Ok::<(), analytics::core::error::ValidationError>(())
//! ```
//!
//! The tracker itself (`init_tracker` at start-up, `tracker().track(..)` in handlers,
//! `stop().await` at shutdown) lands with the tracker crate; until then [`tracker`] is
//! empty.
#![deny(missing_docs)]

pub use analytics_core as core;
pub use analytics_embedded as embedded;
pub use analytics_pg as pg;
pub use analytics_redis as redis;
pub use analytics_stats as stats;
pub use analytics_tracker as tracker;
