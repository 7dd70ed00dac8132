//! The `analytics` service: the HTTP API of SPEC §9 ([`api`]), the dashboard at `/`
//! ([`dashboard`]), its authentication,
//! errors and metrics, its wire types and OpenAPI document ([`wire`], [`openapi`]),
//! and the server lifecycle ([`server`]). The binary in `main.rs`
//! adds the command line of SPEC §11.
#![deny(missing_docs)]

pub mod allocator;
pub mod api;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod export;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod server;
pub mod wire;
