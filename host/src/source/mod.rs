//! Where change events come from. A source yields batches of raw records, in offset
//! order within each partition, and is told when a batch is safely published so it can
//! commit those positions.

pub mod file;
pub mod kafka;

use std::future::Future;

use crate::debezium::RawRecord;
use crate::runtime::Origin;

/// Why a source failed. Names the input it was reading.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{input}: {source}")]
    Io {
        input: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{input}: {reason}")]
    Kafka { input: String, reason: String },
}

/// A producer of raw records.
pub trait Source: Send {
    /// The next batch of at most `max` records (in offset order within each partition),
    /// or `None` when the source is exhausted. Waits while nothing is available.
    fn next_batch(
        &mut self,
        max: usize,
    ) -> impl Future<Output = Result<Option<Vec<RawRecord>>, SourceError>> + Send;

    /// Records that, for each partition of `last` (one entry per topic-partition of the
    /// batch, its last record), every record up to and including it is published.
    fn commit(&mut self, last: &[Origin]) -> impl Future<Output = Result<(), SourceError>> + Send;
}
