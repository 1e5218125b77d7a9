//! Exactly-once publishing to Kafka: each batch's output records and the source positions
//! it consumed are committed in one Kafka transaction.
//!
//! Per batch: `begin_transaction`, produce every record, `send_offsets_to_transaction`
//! with the consumer's group metadata (KIP-447: a consumer that lost its partitions in a
//! rebalance cannot commit them, so a zombie is fenced by the group generation), then
//! `commit_transaction`. A consumer reading with `isolation.level=read_committed` sees
//! the records of committed transactions only, so every event is published exactly once
//! even across crashes and rebalances.
//!
//! Errors, as librdkafka classifies them:
//! - *retriable* (a timeout of the commit): the same call is retried, a bounded number of
//!   times;
//! - *abortable* (a failed produce, a revoked partition): the transaction is aborted and
//!   [`SinkError::Aborted`] returned; the pipeline rewinds the source to the batch's first
//!   records and processes the batch again;
//! - *fatal* (this producer was fenced by a newer one with the same `transactional.id`):
//!   returned as an error that stops the pipeline. Only one process may own a
//!   transactional id; see [`transactional_id`].

use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::kafka::{ErrorCounter, error, publish};
use super::{Sink, SinkError};
use crate::runtime::{Origin, OutputRecord};

/// How long one transactional call (init, offsets, commit, abort) may block.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a retriable commit or offsets call is retried before the batch is aborted.
const RETRIES: u32 = 3;

/// The `transactional.id` of one lane's producer: `<prefix>.<group>.<instance>`, where
/// `group` is the lane's consumer group and `instance` names this process among its
/// peers (by default the host name). Two hosts then never share an id (they would fence
/// each other), and a host restarted under the same name fences its own zombie: the new
/// producer's `init_transactions` aborts whatever the old one left open.
pub fn transactional_id(prefix: &str, group: &str, instance: &str) -> String {
    format!("{prefix}.{group}.{instance}")
}

/// The name of this machine, the default instance of [`transactional_id`].
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "sluice".to_owned())
}

/// Publishes batches in transactions (see the module docs).
pub struct TransactionalKafkaSink {
    producer: FutureProducer<ErrorCounter>,
    transactional_id: String,
}

impl std::fmt::Debug for TransactionalKafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionalKafkaSink")
            .field("transactional_id", &self.transactional_id)
            .finish_non_exhaustive()
    }
}

impl TransactionalKafkaSink {
    /// A producer with `transactional.id` set, initialised for transactions (this fences
    /// any older producer with the same id). Blocks for up to [`CALL_TIMEOUT`].
    pub fn new(
        properties: &[(String, String)],
        transactional_id: &str,
        telemetry: Option<std::sync::Arc<crate::telemetry::Telemetry>>,
    ) -> Result<Self, SinkError> {
        let mut config = ClientConfig::new();
        config.set("acks", "all");
        config.set("enable.idempotence", "true");
        for (key, value) in properties {
            config.set(key, value);
        }
        config.set("transactional.id", transactional_id);
        let producer: FutureProducer<ErrorCounter> = config
            .create_with_context(ErrorCounter::new(telemetry))
            .map_err(|e| {
                error(format!(
                    "creating the transactional producer {transactional_id}: {e}"
                ))
            })?;
        producer.init_transactions(CALL_TIMEOUT).map_err(|e| {
            error(format!(
                "initialising transactions for {transactional_id}: {e}"
            ))
        })?;
        tracing::info!(%transactional_id, "transactional producer ready");
        Ok(Self {
            producer,
            transactional_id: transactional_id.to_owned(),
        })
    }

    /// Runs a blocking transactional call on the blocking pool, retrying retriable errors.
    async fn call(
        &self,
        what: &'static str,
        call: impl Fn(&FutureProducer<ErrorCounter>) -> Result<(), KafkaError> + Send + Sync + 'static,
    ) -> Result<(), KafkaError> {
        let call = std::sync::Arc::new(call);
        let mut attempt = 0;
        loop {
            let producer = self.producer.clone();
            let call = std::sync::Arc::clone(&call);
            let result = tokio::task::spawn_blocking(move || call(&producer))
                .await
                .unwrap_or_else(|e| {
                    Err(KafkaError::Canceled).inspect_err(|_| {
                        tracing::error!(error = %e, what, "transactional call panicked");
                    })
                });
            match result {
                Err(KafkaError::Transaction(e)) if e.is_retriable() && attempt < RETRIES => {
                    attempt += 1;
                    tracing::warn!(error = %e, what, attempt, "retrying a transactional call");
                }
                other => return other,
            }
        }
    }

    /// Aborts the open transaction after `cause`; returns what the pipeline should see.
    async fn abort(&self, cause: String) -> SinkError {
        tracing::warn!(transactional_id = %self.transactional_id, %cause, "aborting the transaction; the batch will be read again");
        match self
            .call("abort", |p| p.abort_transaction(CALL_TIMEOUT))
            .await
        {
            Ok(()) => SinkError::Aborted { reason: cause },
            Err(e) => error(format!(
                "{}: aborting after {cause}: {e}",
                self.transactional_id
            )),
        }
    }

    /// Classifies an error of a transactional call: abortable errors abort the
    /// transaction, anything else (fatal: fenced) stops the pipeline.
    async fn failed(&self, what: &str, e: KafkaError) -> SinkError {
        let abortable = match &e {
            KafkaError::Transaction(rd) => rd.txn_requires_abort(),
            _ => false,
        };
        if abortable {
            self.abort(format!("{what}: {e}")).await
        } else {
            error(format!("{}: {what}: {e}", self.transactional_id))
        }
    }
}

impl Sink for TransactionalKafkaSink {
    async fn send(&mut self, _records: Vec<OutputRecord>) -> Result<(), SinkError> {
        Err(error(format!(
            "{}: an exactly-once sink publishes only in transactions",
            self.transactional_id
        )))
    }

    async fn send_transaction(
        &mut self,
        records: Vec<OutputRecord>,
        positions: &[Origin],
        group: ConsumerGroupMetadata,
    ) -> Result<(), SinkError> {
        self.producer
            .begin_transaction()
            .map_err(|e| error(format!("{}: begin_transaction: {e}", self.transactional_id)))?;
        if let Err(e) = publish(&self.producer, &records).await {
            // A failed produce inside a transaction leaves it abortable.
            return Err(self.abort(e.to_string()).await);
        }
        let mut offsets = TopicPartitionList::new();
        for origin in positions {
            offsets
                .add_partition_offset(
                    &origin.topic,
                    origin.partition,
                    Offset::Offset(origin.offset + 1),
                )
                .map_err(|e| {
                    error(format!(
                        "offsets of {}/{}: {e}",
                        origin.topic, origin.partition
                    ))
                })?;
        }
        let group = std::sync::Arc::new(group);
        if let Err(e) = self
            .call("send_offsets_to_transaction", move |p| {
                p.send_offsets_to_transaction(&offsets, &group, CALL_TIMEOUT)
            })
            .await
        {
            return Err(self.failed("send_offsets_to_transaction", e).await);
        }
        if let Err(e) = self
            .call("commit_transaction", |p| p.commit_transaction(CALL_TIMEOUT))
            .await
        {
            return Err(self.failed("commit_transaction", e).await);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        // Every batch is committed (and so flushed) by its own transaction.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactional_ids_name_group_and_instance() {
        assert_eq!(
            transactional_id("sluice", "cdc.customers-cdm", "host-a"),
            "sluice.cdc.customers-cdm.host-a"
        );
        assert!(!host_name().is_empty());
    }
}
