//! A sink that keeps records in memory (for `sluice plugin test`, tests and benchmarks).

use sluice_core::OutputRecord;
use sluice_core::sink::{Sink, SinkError};

/// Collects every record sent to it, in order.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub records: Vec<OutputRecord>,
}

impl Sink for MemorySink {
    async fn send(&mut self, records: Vec<OutputRecord>) -> Result<(), SinkError> {
        self.records.extend(records);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
