//! The loop's overlap of one batch's publication with the next batch, and its commit and
//! abort rules, over a scripted source and sink. No plugin is needed: every record here
//! is malformed (not JSON), so each becomes one dead letter carrying its value, in order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use sluice_core::sink::{Positions, Sink, SinkError};
use sluice_core::source::{Source, SourceError};
use sluice_core::{Origin, OutputRecord, RawRecord};

use super::{Pipeline, PipelineSettings};

/// What the source and the sink did, in order.
#[derive(Debug, Clone, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, entry: String) {
        self.0.lock().expect("journal").push(entry);
    }

    fn entries(&self) -> Vec<String> {
        self.0.lock().expect("journal").clone()
    }

    fn position(&self, entry: &str) -> usize {
        let entries = self.entries();
        entries
            .iter()
            .position(|e| e == entry)
            .unwrap_or_else(|| panic!("{entry:?} not in {entries:?}"))
    }
}

fn record(partition: i32, offset: i64) -> RawRecord {
    RawRecord {
        timestamp: None,
        key: None,
        value: Some(format!("p{partition}-{offset}").into_bytes()),
        headers: Vec::new(),
        origin: Origin {
            topic: "in".to_owned(),
            partition,
            offset,
        },
        unreadable: None,
    }
}

/// Yields its records in list order, `max` at a time, skipping those already yielded;
/// a rewind makes a partition's records from the given offset on due again.
struct ScriptedSource {
    records: Vec<RawRecord>,
    yielded: Vec<bool>,
    reads: usize,
    second_read: Arc<Notify>,
    journal: Journal,
    /// Once every record is yielded, wait for more (a live source) instead of ending.
    then_idle: bool,
}

impl ScriptedSource {
    fn new(records: Vec<RawRecord>, journal: &Journal) -> Self {
        Self {
            yielded: vec![false; records.len()],
            records,
            reads: 0,
            second_read: Arc::new(Notify::new()),
            journal: journal.clone(),
            then_idle: false,
        }
    }
}

impl Source for ScriptedSource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<RawRecord>>, SourceError> {
        self.reads += 1;
        self.journal.push(format!("read {}", self.reads));
        if self.reads == 2 {
            self.second_read.notify_one();
        }
        let mut batch = Vec::new();
        for (record, yielded) in self.records.iter().zip(self.yielded.iter_mut()) {
            if batch.len() == max {
                break;
            }
            if !*yielded {
                *yielded = true;
                batch.push(record.clone());
            }
        }
        if batch.is_empty() && self.then_idle {
            std::future::pending::<()>().await;
        }
        Ok((!batch.is_empty()).then_some(batch))
    }

    async fn commit(&mut self, last: &[Origin]) -> Result<(), SourceError> {
        for origin in last {
            self.journal
                .push(format!("commit p{}@{}", origin.partition, origin.offset));
        }
        Ok(())
    }

    async fn rewind(&mut self, first: &[Origin]) -> Result<(), SourceError> {
        for origin in first {
            self.journal
                .push(format!("rewind p{}@{}", origin.partition, origin.offset));
            for (record, yielded) in self.records.iter().zip(self.yielded.iter_mut()) {
                if record.origin.partition == origin.partition
                    && record.origin.offset >= origin.offset
                {
                    *yielded = false;
                }
            }
        }
        Ok(())
    }
}

/// What the scripted sink does with its first batch.
enum First {
    Publish,
    Abort,
    Fail,
}

/// Publishes into `published`; its first batch waits for `gate` and is then published,
/// aborted or refused as `first` says.
struct ScriptedSink {
    gate: Arc<Notify>,
    first: First,
    sends: usize,
    published: Vec<OutputRecord>,
    journal: Journal,
}

fn values(records: &[OutputRecord]) -> String {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect::<Vec<_>>()
        .join(",")
}

impl Sink for ScriptedSink {
    async fn send(&mut self, _records: Vec<OutputRecord>) -> Result<(), SinkError> {
        unreachable!("the pipeline sends batches")
    }

    async fn send_batch(
        &mut self,
        records: Vec<OutputRecord>,
        _positions: &[Origin],
    ) -> Result<Positions, SinkError> {
        self.sends += 1;
        if self.sends == 1 {
            self.gate.notified().await;
            match self.first {
                First::Publish => {}
                First::Abort => {
                    self.journal.push(format!("abort {}", values(&records)));
                    return Err(SinkError::Aborted {
                        reason: "scripted".to_owned(),
                    });
                }
                First::Fail => {
                    return Err(SinkError::Failed {
                        output: "scripted".to_owned(),
                        reason: "refused".to_owned(),
                    });
                }
            }
        }
        self.journal.push(format!("sent {}", values(&records)));
        self.published.extend(records);
        Ok(Positions::Pending)
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

fn pipeline() -> Pipeline {
    Pipeline::new(
        Vec::new(),
        PipelineSettings {
            batch_size: 2,
            ..PipelineSettings::default()
        },
    )
}

fn sink(source: &ScriptedSource, first: First) -> ScriptedSink {
    ScriptedSink {
        // The first batch is published only once the second has been asked for: a loop
        // that waits for the publication before reading on never gets there.
        gate: source.second_read.clone(),
        first,
        sends: 0,
        published: Vec::new(),
        journal: source.journal.clone(),
    }
}

/// Runs the pipeline until the source ends (at most 10 s).
async fn run_to_end(source: &mut ScriptedSource, sink: &mut ScriptedSink) -> super::PipelineStats {
    tokio::time::timeout(
        Duration::from_secs(10),
        pipeline().run(source, sink, std::future::pending()),
    )
    .await
    .expect("finishes within 10 s")
    .expect("runs")
}

#[tokio::test]
async fn the_next_batch_is_read_while_the_last_one_is_published() {
    let journal = Journal::default();
    let mut source = ScriptedSource::new((0..6).map(|o| record(0, o)).collect(), &journal);
    let mut sink = sink(&source, First::Publish);
    // The first publication waits for the second read: a loop where the two do not
    // overlap never finishes (the helper's timeout fails it).
    let stats = run_to_end(&mut source, &mut sink).await;
    assert_eq!(values(&sink.published), "p0-0,p0-1,p0-2,p0-3,p0-4,p0-5");
    assert_eq!((stats.batches, stats.dead_lettered), (3, 6));
    let at = |entry: &str| journal.position(entry);
    assert!(
        at("read 2") < at("sent p0-0,p0-1"),
        "{:?}",
        journal.entries()
    );
    // One batch at a time, each committed after it was published and before the next is
    // handed over.
    for (batch, commit, next) in [
        ("sent p0-0,p0-1", "commit p0@1", Some("sent p0-2,p0-3")),
        ("sent p0-2,p0-3", "commit p0@3", Some("sent p0-4,p0-5")),
        ("sent p0-4,p0-5", "commit p0@5", None),
    ] {
        assert!(at(batch) < at(commit), "{:?}", journal.entries());
        if let Some(next) = next {
            assert!(at(commit) < at(next), "{:?}", journal.entries());
        }
    }
    let commits: Vec<String> = journal
        .entries()
        .into_iter()
        .filter(|e| e.starts_with("commit"))
        .collect();
    assert_eq!(commits, ["commit p0@1", "commit p0@3", "commit p0@5"]);
}

#[tokio::test]
async fn an_aborted_batch_is_read_again_with_the_batch_read_after_it() {
    let journal = Journal::default();
    // Batch 1 is partition 0, batch 2 (read while batch 1 is published) partition 1.
    let records = vec![record(0, 0), record(0, 1), record(1, 0), record(1, 1)];
    let mut source = ScriptedSource::new(records, &journal);
    let mut sink = sink(&source, First::Abort);
    let stats = run_to_end(&mut source, &mut sink).await;
    // Partition 1 was read but not published when batch 1 aborted: it is read again too.
    assert_eq!(values(&sink.published), "p0-0,p0-1,p1-0,p1-1");
    let entries = journal.entries();
    assert!(
        entries.contains(&"rewind p0@0".to_owned()) && entries.contains(&"rewind p1@0".to_owned()),
        "{entries:?}"
    );
    assert!(
        journal.position("abort p0-0,p0-1") < journal.position("rewind p0@0"),
        "{entries:?}"
    );
    assert_eq!(
        (
            stats.records_in,
            stats.dead_lettered,
            stats.transactions_aborted
        ),
        (4, 4, 1),
        "the aborted work and the batch after it are counted once"
    );
    let commits: Vec<&String> = entries.iter().filter(|e| e.starts_with("commit")).collect();
    assert_eq!(commits, ["commit p0@1", "commit p1@1"]);
}

#[tokio::test]
async fn a_refused_batch_stops_the_loop_and_nothing_is_committed() {
    let journal = Journal::default();
    let mut source = ScriptedSource::new((0..6).map(|o| record(0, o)).collect(), &journal);
    let mut sink = sink(&source, First::Fail);
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        pipeline().run(&mut source, &mut sink, std::future::pending()),
    )
    .await
    .expect("finishes")
    .expect_err("the sink refused a batch");
    assert!(error.to_string().contains("refused"), "{error}");
    assert!(sink.published.is_empty());
    assert!(
        !journal.entries().iter().any(|e| e.starts_with("commit")),
        "{:?}",
        journal.entries()
    );
}

#[tokio::test]
async fn shutdown_publishes_and_commits_the_batch_in_flight() {
    let journal = Journal::default();
    let mut source = ScriptedSource::new((0..6).map(|o| record(0, o)).collect(), &journal);
    // The first batch is held until the second read; shutdown comes with that read.
    let shutdown = source.second_read.clone();
    let mut sink = sink(&source, First::Publish);
    sink.gate = Arc::new(Notify::new());
    sink.gate.notify_one();
    let stats = tokio::time::timeout(
        Duration::from_secs(10),
        pipeline().run(&mut source, &mut sink, async move {
            shutdown.notified().await;
        }),
    )
    .await
    .expect("finishes")
    .expect("runs");
    // Whatever was handed to the sink before shutdown is published and committed; no
    // batch is left half done.
    let published = sink.published.len();
    assert!(published >= 2 && published.is_multiple_of(2), "{published}");
    let last = format!("commit p0@{}", published - 1);
    assert_eq!(
        journal.entries().iter().rfind(|e| e.starts_with("commit")),
        Some(&last),
        "{:?}",
        journal.entries()
    );
    assert_eq!(
        (stats.records_in as usize, stats.records_out as usize),
        (published, published),
        "every batch read was published"
    );
}

#[tokio::test]
async fn a_published_batch_is_committed_and_reported_while_the_source_is_idle() {
    let journal = Journal::default();
    let mut source = ScriptedSource::new((0..6).map(|o| record(0, o)).collect(), &journal);
    source.then_idle = true;
    let mut sink = sink(&source, First::Publish);
    let telemetry = Arc::new(sluice_core::telemetry::Telemetry::default());
    let watched = journal.clone();
    // Shutdown (which would settle the batch in flight anyway) comes only once the last
    // batch is committed: a loop that commits only when the next batch arrives hangs.
    let stats = tokio::time::timeout(
        Duration::from_secs(10),
        pipeline()
            .with_telemetry(telemetry.clone())
            .run(&mut source, &mut sink, async move {
                while !watched.entries().iter().any(|e| e == "commit p0@5") {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }),
    )
    .await
    .expect("the last batch is committed though no batch follows it")
    .expect("runs");
    assert_eq!(values(&sink.published), "p0-0,p0-1,p0-2,p0-3,p0-4,p0-5");
    assert_eq!(stats.records_in, 6);
    let reported = telemetry
        .report::<crate::metrics::PipelineMetrics>()
        .lane(super::SHARED_LANE)
        .stats();
    assert_eq!(
        (
            reported.batches,
            reported.records_in,
            reported.dead_lettered
        ),
        (3, 6, 6),
        "every published batch is reported"
    );
}

#[tokio::test]
async fn an_abort_also_reads_again_the_batch_read_ahead() {
    let journal = Journal::default();
    // Batch 1 is partition 0; batch 2 (partition 1) is read while batch 1 is transformed
    // and batch 3 (partition 2) while batch 2 is; batch 1 then aborts.
    let records = vec![
        record(0, 0),
        record(0, 1),
        record(1, 0),
        record(1, 1),
        record(2, 0),
        record(2, 1),
    ];
    let mut source = ScriptedSource::new(records, &journal);
    let mut sink = sink(&source, First::Abort);
    let stats = run_to_end(&mut source, &mut sink).await;
    let entries = journal.entries();
    assert_eq!(
        values(&sink.published),
        "p0-0,p0-1,p1-0,p1-1,p2-0,p2-1",
        "{entries:?}"
    );
    for partition in 0..3 {
        assert!(
            entries.contains(&format!("rewind p{partition}@0")),
            "{entries:?}"
        );
    }
    assert_eq!(
        (
            stats.records_in,
            stats.dead_lettered,
            stats.transactions_aborted
        ),
        (6, 6, 1),
        "every record counted once"
    );
    let commits: Vec<&String> = entries.iter().filter(|e| e.starts_with("commit")).collect();
    assert_eq!(commits, ["commit p0@1", "commit p1@1", "commit p2@1"]);
}
