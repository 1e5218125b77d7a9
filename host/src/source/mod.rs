//! Where change events come from. A source yields batches of raw records of one
//! partition in offset order, and is told when a batch is safely published so it can
//! commit that position.

pub mod file;

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
    #[error("{input} line {line}: {reason}")]
    BadLine {
        input: String,
        line: u64,
        reason: String,
    },
}

/// A producer of raw records.
pub trait Source: Send {
    /// The next batch of at most `max` records (all from one partition, in offset order),
    /// or `None` when the source is exhausted. Waits while nothing is available.
    fn next_batch(
        &mut self,
        max: usize,
    ) -> impl Future<Output = Result<Option<Vec<RawRecord>>, SourceError>> + Send;

    /// Records that every record of the partition up to and including `last` is published.
    fn commit(&mut self, last: &Origin) -> impl Future<Output = Result<(), SourceError>> + Send;
}
