//! Where results go. A sink accepts batches of output records in order and reports
//! success only once they are durably handed off (written and flushed, or acknowledged
//! by the broker), so the pipeline may then commit the source position.

pub mod file;
pub mod kafka;
pub mod memory;

use std::future::Future;

use crate::runtime::OutputRecord;

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
}

/// A consumer of output records.
pub trait Sink: Send {
    /// Publishes `records` in order; returns once they are durably handed off.
    fn send(
        &mut self,
        records: Vec<OutputRecord>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Flushes anything buffered (called before shutdown).
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;
}
