//! sluice: the `sluice` binary's library: CLI commands, configuration composition and
//! wiring of the crates below.
//!
//! - [`config`]: `sluice run`'s configuration, composed of each connector's own table;
//! - [`connectors`]: the source and sink kinds, registered one line each;
//! - [`app`]: from a validated configuration to running lanes (and `[capture]`);
//! - [`plugin_new`], [`plugin_test`], [`plugin_diff`]: the `sluice plugin` commands;
//! - [`dlq`]: `sluice dlq replay`.
//!
//! The data path lives in the crates it wires: sluice-core (records, traits, telemetry),
//! sluice-runtime (wasmtime), sluice-pipeline (pipeline, lanes, reload, file endpoints),
//! sluice-kafka, sluice-http and sluice-capture. Nothing below depends on this crate.

pub mod app;
pub mod config;
pub mod connectors;
pub mod dlq;
pub mod plugin_diff;
pub mod plugin_new;
pub mod plugin_test;
