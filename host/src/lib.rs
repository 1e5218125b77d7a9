//! sluice: a WebAssembly transformation host for change-data-capture streams.
//!
//! Data path: a [`source`] yields batches of raw records; the [`pipeline`] decodes each
//! Debezium envelope ([`debezium`]), runs the events through the plugins that subscribe
//! to them ([`runtime`]), checks and stamps their output, sends rejected and malformed
//! events to the dead-letter topic, and hands everything to a [`sink`] before it commits
//! the source position.

pub mod admin;
pub mod app;
pub mod capture;
pub mod config;
pub mod debezium;
pub mod lanes;
pub mod pipeline;
pub mod plugin_new;
pub mod plugin_test;
pub mod reload;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod telemetry;
pub mod topics;
