//! sluice-core: what every part of sluice shares, and nothing that ties it to one
//! technology.
//!
//! - [`record`]: the plain records that flow between sources, the pipeline and sinks, and
//!   [`json_lines`], their JSON lines form; [`json_scan`]: the JSON checks of the hot path;
//! - [`source`] and [`sink`]: the traits every endpoint implements (file, Kafka, HTTP, ...),
//!   and [`connector`]: what a kind of endpoint provides to be configured and opened per
//!   lane;
//! - [`topics`]: topic patterns and Kafka's topic-name rules; [`text`]: outside text made
//!   safe for a log line;
//! - [`settings`]: sizes, durations, listen addresses and configuration problems;
//! - [`telemetry`]: the registry components push their reports to, and [`admin`], the
//!   HTTP server that renders it; [`status`]: the status page it serves at `/`.
//!
//! It must NOT depend on wasmtime, rdkafka, tiberius, notify or any other sluice crate:
//! everything else depends on it, so what it imports every build pays for.

pub mod admin;
pub mod connector;
pub mod json_lines;
pub mod json_scan;
pub mod record;
pub mod settings;
pub mod sink;
pub mod source;
pub mod status;
pub mod telemetry;
pub mod text;
pub mod topics;

pub use record::{Header, Origin, OutputRecord, RawRecord};
