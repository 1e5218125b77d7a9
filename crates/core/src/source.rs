//! Where change events come from. A source yields batches of raw records, in offset
//! order within each partition, and is told when a batch is safely published so it can
//! commit those positions.

use std::future::Future;

use crate::record::{Origin, RawRecord};

/// Why a source failed. Names the input it was reading.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{input}: {source}")]
    Io {
        input: String,
        #[source]
        source: std::io::Error,
    },
    /// The input failed (a broker error, a consumer that could not be created, ...).
    #[error("{input}: {reason}")]
    Failed { input: String, reason: String },
}

/// A producer of raw records.
pub trait Source: Send {
    /// The next batch of at most `max` records (in offset order within each partition),
    /// or `None` when the source is exhausted. Waits while nothing is available.
    ///
    /// Must be cancel-safe: a call dropped before it returns (the pipeline does so on
    /// shutdown, and to commit a batch whose publication finished meanwhile) loses no
    /// record; the next call yields them.
    fn next_batch(
        &mut self,
        max: usize,
    ) -> impl Future<Output = Result<Option<Vec<RawRecord>>, SourceError>> + Send;

    /// Records that, for each partition of `last` (one entry per topic-partition of the
    /// batch, its last record), every record up to and including it is published.
    fn commit(&mut self, last: &[Origin]) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Called now and then while the sink is still busy with a batch: stop fetching
    /// (pause) so memory stays bounded however long the output is slow, but stay alive
    /// (a Kafka consumer keeps its group membership). Records that still arrive are kept
    /// for the next batch, in order.
    fn hold(&mut self) -> impl Future<Output = Result<(), SourceError>> + Send {
        async { Ok(()) }
    }

    /// Called once the sink has caught up after [`Source::hold`]: fetch again.
    fn release(&mut self) -> impl Future<Output = Result<(), SourceError>> + Send {
        async { Ok(()) }
    }

    /// Makes the source yield again, per topic-partition of `first`, from that record on
    /// (the first records of a batch the sink aborted: [`crate::sink::SinkError::Aborted`]).
    fn rewind(&mut self, first: &[Origin]) -> impl Future<Output = Result<(), SourceError>> + Send {
        let _ = first;
        async {
            Err(SourceError::Failed {
                input: "source".to_owned(),
                reason: "this source cannot rewind (a sink that aborts batches needs a source that can replay them)".to_owned(),
            })
        }
    }
}
