//! Where results go. A sink accepts batches of output records in order and reports
//! success only once they are durably handed off (written and flushed, or acknowledged
//! by the broker), so the pipeline may then commit the source position.

use std::future::Future;

use crate::record::{Origin, OutputRecord};

/// Why a sink failed. Names the output it was writing.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{output}: {source}")]
    Io {
        output: String,
        #[source]
        source: std::io::Error,
    },
    /// The output refused or could not take the batch (a broker error, a client that
    /// could not be created, ...).
    #[error("{output}: {reason}")]
    Failed { output: String, reason: String },
    /// The batch was aborted: nothing of it took effect (an exactly-once transaction
    /// aborted; nothing of it is visible to `read_committed` consumers). The pipeline
    /// reads the batch again ([`crate::source::Source::rewind`]).
    #[error("transaction aborted: {reason}")]
    Aborted { reason: String },
}

/// Who commits the source positions of a batch a sink accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// The source commits them, after the sink acknowledged the records (at-least-once:
    /// a crash between the two repeats the batch).
    Pending,
    /// The sink committed them atomically with the records (a Kafka transaction with the
    /// consumer's offsets: exactly-once).
    Committed,
}

/// A consumer of output records.
pub trait Sink: Send {
    /// Publishes `records` in order; returns once they are durably handed off.
    fn send(
        &mut self,
        records: Vec<OutputRecord>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Publishes one batch of the pipeline, whose input ends at `positions` (per
    /// topic-partition, the last record consumed). A sink that commits the positions
    /// itself, atomically with the records, says so with [`Positions::Committed`]; the
    /// default publishes with [`Sink::send`] and leaves the commit to the source.
    /// [`SinkError::Aborted`] means nothing of the batch took effect.
    fn send_batch(
        &mut self,
        records: Vec<OutputRecord>,
        positions: &[Origin],
    ) -> impl Future<Output = Result<Positions, SinkError>> + Send {
        let _ = positions;
        async move { self.send(records).await.map(|()| Positions::Pending) }
    }

    /// Flushes anything buffered (called before shutdown).
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;
}
