//! The one Kafka transaction driver, used by the exactly-once sink
//! ([`crate::transactional`]) and by capture's writer.
//!
//! One call of [`Transactions::commit`]: `begin_transaction`, produce every record,
//! optionally `send_offsets_to_transaction` with a consumer's group metadata (KIP-447: a
//! consumer that lost its partitions in a rebalance cannot commit them, so a zombie is
//! fenced by the group generation), then `commit_transaction`.
//!
//! Errors, as librdkafka classifies them:
//! - *retriable* (a timeout of the commit or of the offsets): the same call is retried,
//!   [`RETRIES`] times;
//! - *abortable* (a failed produce, a revoked partition): the transaction is aborted and
//!   [`TransactionError::Aborted`] returned; nothing of it is visible to
//!   `read_committed` consumers, so the caller may do the same work again;
//! - *fatal*, above all *fenced* (a newer producer with the same `transactional.id`):
//!   [`TransactionError::Fenced`] or [`TransactionError::Fatal`]; this producer cannot go
//!   on and the caller stops.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use sluice_core::OutputRecord;
use sluice_core::telemetry::Telemetry;

use crate::producer::create_producer;
use crate::sink::{ErrorCounter, publish};

/// How long one transactional call (init, offsets, commit, abort) may block.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a retriable call is retried before the transaction is aborted.
pub const RETRIES: u32 = 3;

/// Why a transaction did not commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// Aborted: nothing of it took effect; the same work may be done again.
    #[error("{id}: transaction aborted: {reason}")]
    Aborted { id: String, reason: String },
    /// A newer producer with the same `transactional.id` took over: this one must stop.
    #[error("{id}: fenced by a newer producer with the same transactional.id: {reason}")]
    Fenced { id: String, reason: String },
    /// The producer cannot go on (or the abort itself failed).
    #[error("{id}: {reason}")]
    Fatal { id: String, reason: String },
}

/// A transactional producer (see the module docs). One transaction at a time.
pub struct Transactions {
    producer: FutureProducer<ErrorCounter>,
    id: String,
}

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactions")
            .field("transactional_id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Transactions {
    /// A producer for `config` (which sets `transactional.id` = `id`), initialised for
    /// transactions: this fences any older producer with the same id and aborts what it
    /// left open. Blocks up to [`CALL_TIMEOUT`]: call it off the async worker threads.
    pub fn init(
        config: &ClientConfig,
        id: &str,
        telemetry: Option<Arc<Telemetry>>,
    ) -> Result<Self, TransactionError> {
        let fatal = |what: &str, e: KafkaError| TransactionError::Fatal {
            id: id.to_owned(),
            reason: format!("{what}: {e}"),
        };
        let producer = create_producer(config, telemetry)
            .map_err(|e| fatal("creating the transactional producer", e))?;
        producer
            .init_transactions(CALL_TIMEOUT)
            .map_err(|e| fatal("initialising transactions", e))?;
        tracing::info!(transactional_id = %id, "transactional producer ready");
        Ok(Self {
            producer,
            id: id.to_owned(),
        })
    }

    pub fn transactional_id(&self) -> &str {
        &self.id
    }

    /// Publishes `records` and, with `offsets`, commits those consumer positions for the
    /// group, all in one transaction (see the module docs for the errors).
    pub async fn commit(
        &self,
        records: &[OutputRecord],
        offsets: Option<(TopicPartitionList, Arc<ConsumerGroupMetadata>)>,
    ) -> Result<(), TransactionError> {
        if let Err(e) = self.producer.begin_transaction() {
            return Err(self.failed("begin_transaction", e).await);
        }
        if let Err(e) = publish(&self.producer, records).await {
            // A failed produce inside a transaction leaves it abortable.
            return Err(self.abort(e.to_string()).await);
        }
        if let Some((offsets, group)) = offsets
            && let Err(e) = self
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

    /// Runs a blocking transactional call on the blocking pool, retrying retriable errors.
    async fn call(
        &self,
        what: &'static str,
        call: impl Fn(&FutureProducer<ErrorCounter>) -> Result<(), KafkaError> + Send + Sync + 'static,
    ) -> Result<(), KafkaError> {
        let call = Arc::new(call);
        let mut attempt = 0;
        loop {
            let producer = self.producer.clone();
            let call = Arc::clone(&call);
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
                    tracing::warn!(transactional_id = %self.id, error = %e, what, attempt, "retrying a transactional call");
                }
                other => return other,
            }
        }
    }

    /// Aborts the open transaction after `cause`.
    async fn abort(&self, cause: String) -> TransactionError {
        tracing::warn!(transactional_id = %self.id, %cause, "aborting the transaction");
        match self
            .call("abort", |p| p.abort_transaction(CALL_TIMEOUT))
            .await
        {
            Ok(()) => TransactionError::Aborted {
                id: self.id.clone(),
                reason: cause,
            },
            Err(e) => TransactionError::Fatal {
                id: self.id.clone(),
                reason: format!("aborting after {cause}: {e}"),
            },
        }
    }

    /// Classifies an error of a transactional call: fenced stops, abortable aborts,
    /// anything else is fatal.
    async fn failed(&self, what: &str, e: KafkaError) -> TransactionError {
        let reason = format!("{what}: {e}");
        match &e {
            KafkaError::Transaction(rd) if is_fenced(rd.code()) => TransactionError::Fenced {
                id: self.id.clone(),
                reason,
            },
            KafkaError::Transaction(rd) if rd.txn_requires_abort() => self.abort(reason).await,
            _ => TransactionError::Fatal {
                id: self.id.clone(),
                reason,
            },
        }
    }
}

fn is_fenced(code: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        code,
        Code::Fenced | Code::ProducerFenced | Code::InvalidProducerEpoch
    )
}
