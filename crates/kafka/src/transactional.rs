//! Exactly-once publishing to Kafka: each batch's output records and the source positions
//! it consumed are committed in one Kafka transaction ([`crate::transaction`]).
//!
//! Exactly-once is this endpoint's business, not the pipeline's: the sink is built for one
//! lane with a handle on the lane's consumer ([`ConsumerGroup`]), and commits the batch's
//! positions itself ([`Positions::Committed`]). A consumer reading with
//! `isolation.level=read_committed` sees the records of committed transactions only, so
//! every event is published exactly once even across crashes and rebalances.
//!
//! An aborted transaction (a failed produce, a revoked partition) becomes
//! [`SinkError::Aborted`]: the pipeline rewinds the source to the batch's first records
//! and processes the batch again. A fenced producer (a newer one with the same
//! `transactional.id`; see [`crate::producer::transactional_id`]) stops the lane.

use std::sync::Arc;

use rdkafka::consumer::ConsumerGroupMetadata;
use sluice_core::sink::{Positions, Sink, SinkError};
use sluice_core::telemetry::Telemetry;
use sluice_core::{Origin, OutputRecord};

use crate::producer::producer_config;
use crate::sink::error;
use crate::source::offsets_after;
use crate::transaction::{TransactionError, Transactions};

/// The consumer group whose positions a transactional sink commits: read afresh for every
/// transaction, since a rebalance changes the group's generation.
#[derive(Clone)]
pub struct ConsumerGroup(Arc<dyn Fn() -> Option<Arc<ConsumerGroupMetadata>> + Send + Sync>);

impl std::fmt::Debug for ConsumerGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsumerGroup")
    }
}

impl ConsumerGroup {
    /// The group of a live consumer (see [`crate::source::KafkaSource::group`]).
    pub fn of(
        metadata: impl Fn() -> Option<ConsumerGroupMetadata> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(move || metadata().map(Arc::new)))
    }

    /// Always the same metadata (tools and tests that commit for a group they do not
    /// consume in).
    pub fn fixed(metadata: ConsumerGroupMetadata) -> Self {
        let metadata = Arc::new(metadata);
        Self(Arc::new(move || Some(Arc::clone(&metadata))))
    }

    fn metadata(&self) -> Option<Arc<ConsumerGroupMetadata>> {
        (self.0)()
    }
}

/// Publishes batches in transactions (see the module docs).
#[derive(Debug)]
pub struct TransactionalKafkaSink {
    transactions: Transactions,
    group: ConsumerGroup,
}

impl TransactionalKafkaSink {
    /// A producer with `transactional.id` set, initialised for transactions (this fences
    /// any older producer with the same id), committing for `group`. Blocks for up to
    /// [`crate::transaction::CALL_TIMEOUT`].
    pub fn new(
        properties: &[(String, String)],
        transactional_id: &str,
        group: ConsumerGroup,
        telemetry: Option<Arc<Telemetry>>,
    ) -> Result<Self, SinkError> {
        let config = producer_config(properties, Some(transactional_id));
        let transactions = Transactions::init(&config, transactional_id, telemetry)
            .map_err(|e| error(e.to_string()))?;
        Ok(Self {
            transactions,
            group,
        })
    }
}

impl Sink for TransactionalKafkaSink {
    async fn send(&mut self, _records: Vec<OutputRecord>) -> Result<(), SinkError> {
        Err(error(format!(
            "{}: an exactly-once sink publishes only whole batches with their positions",
            self.transactions.transactional_id()
        )))
    }

    async fn send_batch(
        &mut self,
        records: Vec<OutputRecord>,
        positions: &[Origin],
    ) -> Result<Positions, SinkError> {
        let group = self.group.metadata().ok_or_else(|| {
            error("exactly-once needs the consumer's group metadata (a kafka source in a consumer group)".to_owned())
        })?;
        let offsets = offsets_after(positions).map_err(|e| error(format!("offsets of {e}")))?;
        match self
            .transactions
            .commit(&records, Some((offsets, group)))
            .await
        {
            Ok(()) => Ok(Positions::Committed),
            Err(TransactionError::Aborted { reason, .. }) => Err(SinkError::Aborted { reason }),
            Err(e) => Err(error(e.to_string())),
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        // Every batch is committed (and so flushed) by its own transaction.
        Ok(())
    }
}
