//! The lane hands the batch it read ahead to the plugin's threads while they still run
//! the one before: with a real plugin on a pool of two threads (so two batches can run
//! at once), every event is published once, in order, also when a publication is
//! aborted and the batches read after it (handed over already) are read again.

use std::sync::Arc;
use std::time::Duration;

use sluice_core::sink::{Positions, Sink, SinkError};
use sluice_core::source::{Source, SourceError};
use sluice_core::{Origin, OutputRecord, RawRecord};
use sluice_pipeline::pipeline::{Pipeline, PipelineSettings};
use sluice_runtime::debezium::{Decoded, decode};
use sluice_runtime::{ChangeEvent, Outcome, PluginThread, PluginWorker, Runtime, RuntimeOptions};
use sluice_tests::components;

use crate::support::{create_record, plugin, stamp_route};

const EVENTS: i64 = 120;

/// Yields records in offset order, `max` at a time; a rewind makes the records from the
/// given offset on due again.
struct MemorySource {
    records: Vec<RawRecord>,
    next: usize,
    rewinds: Vec<i64>,
}

impl Source for MemorySource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<RawRecord>>, SourceError> {
        let end = (self.next + max).min(self.records.len());
        let batch = self.records[self.next..end].to_vec();
        self.next = end;
        Ok((!batch.is_empty()).then_some(batch))
    }

    async fn commit(&mut self, _last: &[Origin]) -> Result<(), SourceError> {
        Ok(())
    }

    async fn rewind(&mut self, first: &[Origin]) -> Result<(), SourceError> {
        for origin in first {
            self.rewinds.push(origin.offset);
            self.next = self
                .next
                .min(usize::try_from(origin.offset).expect("offset"));
        }
        Ok(())
    }
}

/// Keeps what it publishes; aborts its `abort_at`-th batch (nothing of it is kept).
struct AbortOnceSink {
    sends: usize,
    abort_at: usize,
    published: Vec<OutputRecord>,
}

impl Sink for AbortOnceSink {
    async fn send(&mut self, _records: Vec<OutputRecord>) -> Result<(), SinkError> {
        unreachable!("the pipeline sends batches")
    }

    async fn send_batch(
        &mut self,
        records: Vec<OutputRecord>,
        _positions: &[Origin],
    ) -> Result<Positions, SinkError> {
        self.sends += 1;
        // Slower than the plugin, so that batches wait, handed over, behind it.
        tokio::time::sleep(Duration::from_millis(2)).await;
        if self.sends == self.abort_at {
            return Err(SinkError::Aborted {
                reason: "scripted".to_owned(),
            });
        }
        self.published.extend(records);
        Ok(Positions::Pending)
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

fn published_ids(records: &[OutputRecord]) -> Vec<i64> {
    records
        .iter()
        .map(|record| {
            let value: serde_json::Value =
                serde_json::from_slice(record.value.as_deref().expect("value")).expect("JSON");
            value["id"].as_i64().expect("id")
        })
        .collect()
}

#[test]
fn batches_handed_over_early_are_published_once_in_order_across_an_abort() {
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
        let route = stamp_route(&runtime, 2, "s");
        let mut source = MemorySource {
            records: (0..EVENTS).map(create_record).collect(),
            next: 0,
            rewinds: Vec::new(),
        };
        let mut sink = AbortOnceSink {
            sends: 0,
            abort_at: 5,
            published: Vec::new(),
        };
        let mut pipeline = Pipeline::new(
            vec![route],
            PipelineSettings {
                batch_size: 3,
                ..PipelineSettings::default()
            },
        );
        let stats = tokio::time::timeout(
            Duration::from_secs(60),
            pipeline.run(&mut source, &mut sink, std::future::pending()),
        )
        .await
        .expect("finishes within 60 s")
        .expect("runs");

        assert_eq!(
            published_ids(&sink.published),
            (0..EVENTS).collect::<Vec<_>>(),
            "every event once, in order"
        );
        // The fifth batch (offsets 12..=14) was aborted and read again from its start.
        assert_eq!(source.rewinds, [12]);
        // The aborted batch and those read after it are counted once, as published.
        assert_eq!(stats.records_in, EVENTS as u64);
        assert_eq!(stats.records_out, EVENTS as u64);
    });
}

fn events(ids: std::ops::Range<i64>) -> Arc<Vec<ChangeEvent>> {
    let events = ids
        .map(|id| match decode(create_record(id)).expect("decodes") {
            Decoded::Event(event) => event,
            Decoded::Tombstone => panic!("not a tombstone"),
        })
        .collect();
    Arc::new(events)
}

fn outcome_ids(outcomes: Vec<Outcome>) -> Vec<i64> {
    outcomes
        .into_iter()
        .flat_map(|outcome| match outcome {
            Outcome::Records(records) => published_ids(&records),
            other => panic!("not published: {other:?}"),
        })
        .collect()
}

#[test]
fn batches_queued_on_a_plugin_thread_each_get_their_own_outcomes() {
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
        let config = plugin("stamp", components::STAMP, &["in"], &["out"], &[]);
        let loaded = runtime.load_file(config.spec, &config.path).expect("load");
        let thread = PluginThread::spawn(PluginWorker::new(loaded.instantiate().expect("start")))
            .expect("thread");
        // Three batches queued before any outcome is asked for: the queue holds two per
        // worker, and the worker has taken (or will take) the first.
        let first = thread.submit(events(0..5)).await.expect("queued");
        let second = thread
            .try_reserve()
            .expect("room for a second batch")
            .submit(events(5..9));
        let third = thread.submit(events(9..12)).await.expect("queued");
        // A batch whose outcomes nobody waits for does not hold back the rest.
        drop(second);
        assert_eq!(
            outcome_ids(third.outcomes().await.expect("outcomes")),
            (9..12).collect::<Vec<_>>()
        );
        assert_eq!(
            outcome_ids(first.outcomes().await.expect("outcomes")),
            (0..5).collect::<Vec<_>>()
        );
        // A reserved place given back is free again.
        let reserved = thread.try_reserve().expect("room");
        drop(reserved);
        let last = thread.submit(events(12..14)).await.expect("queued");
        assert_eq!(
            outcome_ids(last.outcomes().await.expect("outcomes")),
            [12, 13]
        );
    });
}
