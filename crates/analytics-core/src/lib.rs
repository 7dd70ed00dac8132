//! The domain of the analytics service, with no I/O: the event catalog and envelope,
//! validation, business time, the metric model, the case study, configuration, and the
//! storage traits the adapters implement.
//!
//! Every other crate of the workspace depends on this one; it depends on none of them,
//! and on no database driver, HTTP stack or async runtime. See `ARCHITECTURE.md`.
//!
//! ```
//! use std::sync::Arc;
//! use analytics_core::catalog::EventData;
//! use analytics_core::event::{SystemClock, ValidationRules, Validator};
//! use analytics_core::metrics::Sums;
//! use analytics_core::report::{BusinessMetrics, CostPerResolution};
//!
//! let validator = Validator::new(ValidationRules::default(), Arc::new(SystemClock));
//! let event = validator.typed(EventData::SessionStart {
//!     session_id: "s-1".into(),
//!     customer_id: None,
//!     channel: Some("web".into()),
//!     user_agent: None,
//! })?;
//! let metrics = BusinessMetrics::from_sums(&Sums::of(&event), CostPerResolution::default());
//! assert_eq!(metrics.total_customers_served, 1);
//! assert_eq!(metrics.cost_saved_yuan, 10.0);
//! # Ok::<(), analytics_core::error::ValidationError>(())
//! ```
#![deny(missing_docs)]

pub mod case_study;
pub mod catalog;
pub mod config;
#[cfg(feature = "testing")]
pub mod conformance;
pub mod counters;
pub mod error;
pub mod event;
pub mod json;
pub mod limits;
pub mod memory;
pub mod metrics;
pub mod report;
pub mod rng;
pub mod sketch;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

pub use error::{Error, Result};
