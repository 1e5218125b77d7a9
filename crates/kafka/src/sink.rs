//! A sink publishing output records to Kafka with their key and headers.
//!
//! `send` returns only when every record of the batch is acknowledged by the broker
//! (`acks=all` and idempotence by default), so the pipeline commits source offsets only
//! after publication. Every librdkafka producer property is passed through verbatim.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use serde::Deserialize;
use sluice_core::OutputRecord;
use sluice_core::settings::{Problems, flatten_config};
use sluice_core::sink::{Sink, SinkError};
use sluice_core::telemetry::Telemetry;

use crate::metrics::KafkaMetrics;
use crate::producer::{create_producer, producer_config};

/// `[sink] type = "kafka"`, as written: librdkafka producer properties, verbatim.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaSink {
    #[serde(default)]
    properties: toml::Table,
}

impl RawKafkaSink {
    /// The producer properties, flattened (`sink.properties`); problems to `problems`.
    pub(crate) fn validate(self, problems: &mut Problems) -> Vec<(String, String)> {
        let mut properties = Vec::new();
        flatten_config(
            &self.properties,
            "",
            "sink.properties",
            &mut properties,
            problems,
        );
        if !properties.iter().any(|(k, _)| k == "bootstrap.servers") {
            problems.add("sink.properties", "missing \"bootstrap.servers\"");
        }
        properties
    }
}

/// Publishes records (see the module docs). Clones share one producer.
#[derive(Clone)]
pub struct KafkaSink {
    producer: FutureProducer<ErrorCounter>,
}

/// Counts (and logs) the errors librdkafka reports about a producer's client: brokers
/// unreachable, authentication failures, ... (`sluice_producer_errors_total`).
pub struct ErrorCounter {
    metrics: Option<Arc<KafkaMetrics>>,
}

impl ErrorCounter {
    pub fn new(telemetry: Option<Arc<Telemetry>>) -> Self {
        Self {
            metrics: telemetry.map(|telemetry| telemetry.report::<KafkaMetrics>()),
        }
    }
}

impl rdkafka::ClientContext for ErrorCounter {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::error!(%error, reason, "kafka producer error");
        if let Some(metrics) = &self.metrics {
            metrics.count_producer_error();
        }
    }
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink").finish_non_exhaustive()
    }
}

pub(crate) fn error(reason: String) -> SinkError {
    SinkError::Failed {
        output: "kafka".to_owned(),
        reason,
    }
}

impl KafkaSink {
    /// `properties` are librdkafka producer properties (must include `bootstrap.servers`);
    /// client errors are counted in `telemetry`.
    pub fn new(
        properties: &[(String, String)],
        telemetry: Option<Arc<Telemetry>>,
    ) -> Result<Self, SinkError> {
        let producer = create_producer(&producer_config(properties, None), telemetry)
            .map_err(|e| error(format!("creating the producer: {e}")))?;
        Ok(Self { producer })
    }
}

/// Enqueues every record of `records` on `producer` (librdkafka batches them) and waits
/// for every acknowledgement. Waits while the local queue is full.
pub async fn publish<C: rdkafka::ClientContext + 'static>(
    producer: &FutureProducer<C>,
    records: &[OutputRecord],
) -> Result<(), SinkError> {
    enqueue(producer, records).await?.acknowledged().await
}

/// Records handed to the producer, their acknowledgements to come ([`Deliveries::acknowledged`]).
#[must_use = "enqueued records are only known to be published once acknowledged"]
pub struct Deliveries {
    /// The topics, each once; a delivery names its topic by index.
    topics: Vec<String>,
    deliveries: Vec<(usize, rdkafka::producer::DeliveryFuture)>,
}

impl Deliveries {
    /// Waits for every acknowledgement; the first failure is the error.
    pub async fn acknowledged(self) -> Result<(), SinkError> {
        for (topic, delivery) in self.deliveries {
            let topic = &self.topics[topic];
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(error(format!("publishing to {topic}: {e}"))),
                Err(_) => {
                    return Err(error(format!(
                        "publishing to {topic}: the producer was dropped"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Enqueues every record of `records` on `producer` (librdkafka batches them), waiting
/// while the local queue is full; returns their acknowledgements to await.
pub async fn enqueue<C: rdkafka::ClientContext + 'static>(
    producer: &FutureProducer<C>,
    records: &[OutputRecord],
) -> Result<Deliveries, SinkError> {
    let mut deliveries = Vec::with_capacity(records.len());
    let mut topics: Vec<String> = Vec::new();
    for record in records {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for header in &record.headers {
            headers = headers.insert(KafkaHeader {
                key: &header.key,
                value: header.value.as_deref(),
            });
        }
        let mut message = FutureRecord::<[u8], [u8]>::to(&record.topic).headers(headers);
        if let Some(key) = &record.key {
            message = message.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            message = message.payload(value.as_slice());
        }
        if let Some(timestamp) = record.timestamp {
            message = message.timestamp(timestamp);
        }
        let delivery = loop {
            match producer.send_result(message) {
                Ok(delivery) => break delivery,
                Err((e, returned)) => {
                    if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) {
                        // Local queue full: wait for acknowledgements to make room.
                        message = returned;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    return Err(error(format!("producing to {}: {e}", record.topic)));
                }
            }
        };
        let topic = match topics.iter().rposition(|t| *t == record.topic) {
            Some(index) => index,
            None => {
                topics.push(record.topic.clone());
                topics.len() - 1
            }
        };
        deliveries.push((topic, delivery));
    }
    Ok(Deliveries { topics, deliveries })
}

impl Sink for KafkaSink {
    async fn send(&mut self, records: Vec<OutputRecord>) -> Result<(), SinkError> {
        publish(&self.producer, &records).await
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(30)))
            .await
            .map_err(|e| error(format!("flushing: {e}")))?
            .map_err(|e| error(format!("flushing: {e}")))
    }
}
