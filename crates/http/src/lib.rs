//! sluice-http: the HTTP sink. Each batch is POSTed to a URL as JSON lines
//! ([`sluice_core::json_lines`]); a batch counts as sent only on a 2xx answer, and a
//! failed attempt (5xx, 429, a lost connection, a timeout) is retried with exponential
//! backoff, so delivery is at-least-once, in order.
//!
//! It depends on sluice-core only (and hyper, confined to this crate).

pub mod sink;

pub use sink::{HttpSink, HttpSinkConfig, RawHttpSink};
