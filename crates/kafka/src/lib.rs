//! sluice-kafka: sluice's Kafka endpoints (librdkafka through rdkafka).
//!
//! - [`source`]: a consumer-group source of Debezium change topics;
//! - [`sink`]: a producer sink (at-least-once: a batch counts once acknowledged);
//! - [`transactional`]: the exactly-once sink, which commits each batch's records and the
//!   consumer's offsets in one transaction;
//! - [`producer`]: the one producer set-up and `transactional.id` scheme;
//!   [`transaction`]: the one transaction driver (the exactly-once sink and capture);
//! - [`metrics`]: client errors and consumer lag, pushed to telemetry;
//! - [`connector`]: the source and sink as connector kinds (`type = "kafka"`), lane groups
//!   and the exactly-once hand-off between a lane's consumer and its producer;
//! - [`dead_letters`]: reading a dead-letter topic for `sluice dlq replay`;
//! - [`headers`]: a consumed record's headers, whatever bytes their names hold.
//!
//! It depends on sluice-core only: not on the WebAssembly runtime or the pipeline, which
//! get Kafka endpoints through the [`sluice_core::source::Source`] and
//! [`sluice_core::sink::Sink`] traits.

pub mod connector;
pub mod dead_letters;
pub mod headers;
pub mod metrics;
pub mod producer;
pub mod sink;
pub mod source;
pub mod transaction;
pub mod transactional;
