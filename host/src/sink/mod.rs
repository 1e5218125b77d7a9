//! Where results go. A sink accepts batches of output records in order and reports
//! success only once they are durably handed off (written and flushed, or acknowledged
//! by the broker), so the pipeline may then commit the source position.

pub mod file;
pub mod kafka;
pub mod memory;
pub mod transactional;

use std::future::Future;

use rdkafka::consumer::ConsumerGroupMetadata;

use crate::runtime::{Origin, OutputRecord};

/// Why a sink failed. Names the output it was writing.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{output}: {source}")]
    Io {
        output: String,
        #[source]
        source: std::io::Error,
    },
    #[error("kafka: {reason}")]
    Kafka { reason: String },
    /// An exactly-once transaction was aborted (nothing of it is visible to
    /// `read_committed` consumers); the batch must be processed again.
    #[error("kafka transaction aborted: {reason}")]
    Aborted { reason: String },
}

/// A consumer of output records.
pub trait Sink: Send {
    /// Publishes `records` in order; returns once they are durably handed off.
    fn send(
        &mut self,
        records: Vec<OutputRecord>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Exactly-once: publishes `records` and commits the source `positions` (per
    /// topic-partition, the last record consumed) for the consumer group `group`, all in
    /// one transaction. [`SinkError::Aborted`] means nothing of it took effect.
    fn send_transaction(
        &mut self,
        records: Vec<OutputRecord>,
        positions: &[Origin],
        group: ConsumerGroupMetadata,
    ) -> impl Future<Output = Result<(), SinkError>> + Send {
        let _ = (records, positions, group);
        async {
            Err(SinkError::Kafka {
                reason:
                    "this sink cannot publish in transactions (exactly-once needs a kafka sink)"
                        .to_owned(),
            })
        }
    }

    /// Flushes anything buffered (called before shutdown).
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;
}
