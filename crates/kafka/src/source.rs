//! A source consuming Debezium change topics from Kafka (or any Kafka-protocol broker).
//!
//! - A consumer group over topic names or regex patterns (`^...`, librdkafka's syntax).
//! - Offsets are committed by sluice, never automatically: `enable.auto.commit` and
//!   `enable.auto.offset.store` are forced off, and a position is committed only after
//!   the pipeline reports the batch's outputs acknowledged by the sink (at-least-once).
//! - Batches are cut by count and by linger time: the first record is awaited as long as
//!   it takes, the rest of the batch at most `linger` more.
//! - On a rebalance, revoked partitions' in-flight records are still published by the
//!   pipeline; their commit then fails (the partition is gone) and is logged, so the new
//!   owner re-reads them: duplicates are possible, loss is not.
//!
//! Every other librdkafka consumer property (`bootstrap.servers`, SASL/SSL for MSK, ...)
//! is passed through verbatim.

use std::time::Duration;

use std::sync::Arc;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use serde::Deserialize;
use sluice_core::settings::{Problems, Range, flatten_config, topic_name};
use sluice_core::source::{Source, SourceError};
use sluice_core::telemetry::Telemetry;
use sluice_core::{Origin, RawRecord};

use crate::metrics::KafkaMetrics;
use crate::transactional::ConsumerGroup;

/// How a Kafka source is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSourceSettings {
    /// Topic names, or regex patterns starting with `^`.
    pub topics: Vec<String>,
    /// librdkafka consumer properties, verbatim (must include `bootstrap.servers` and
    /// `group.id`).
    pub properties: Vec<(String, String)>,
    /// How long a partial batch waits for more records.
    pub linger: Duration,
    /// Consumers per plugin, each a member of the plugin's consumer group with its own
    /// pipeline and plugin instance: up to this many partitions are processed in
    /// parallel (each partition by one consumer, in order).
    pub consumers: usize,
    /// A batch ends once its keys and values hold this many bytes (or `max` records, or
    /// the linger ran out), whichever comes first.
    pub batch_bytes: u64,
}

/// How long a Kafka batch waits for more records after its first: long enough to fill
/// batches under load, short enough to add little latency at low rates.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(20);

/// Default cap on the key and value bytes of one Kafka batch: 256 events of ~1 KB fit
/// four times over, and a batch of large events still stays a few MiB in flight.
pub const DEFAULT_BATCH_BYTES: u64 = 4 << 20;

/// `source.linger`: a consumer that waits longer than a minute for a batch only holds
/// events back (and nears `max.poll.interval.ms`, 5 minutes by default).
const LINGER_RANGE: Range<Duration> = Range {
    min: Duration::ZERO,
    max: Duration::from_secs(60),
    min_text: "0ms",
    max_text: "1m",
    example: "20ms",
};

/// `source.batch_bytes`: a lane holds up to three batches whole (one read ahead, one
/// transformed, one published), each as read and as output.
const BATCH_BYTES_RANGE: Range<u64> = Range {
    min: 1,
    max: 1 << 30,
    min_text: "1B",
    max_text: "1GiB",
    example: "4MiB",
};

/// `[source] type = "kafka"`, as written (each field is a [`KafkaSourceSettings`] field).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaSource {
    #[serde(default)]
    topics: Vec<String>,
    linger: Option<String>,
    consumers: Option<i64>,
    batch_bytes: Option<String>,
    #[serde(default)]
    properties: toml::Table,
}

impl RawKafkaSource {
    /// Validates the `[source]` table, adding every problem to `problems`.
    pub(crate) fn validate(self, problems: &mut Problems) -> KafkaSourceSettings {
        let mut properties = Vec::new();
        flatten_config(
            &self.properties,
            "",
            "source.properties",
            &mut properties,
            problems,
        );
        for required in ["bootstrap.servers", "group.id"] {
            if !properties.iter().any(|(k, _)| k == required) {
                problems.add("source.properties", format!("missing {required:?}"));
            }
        }
        for (index, topic) in self.topics.iter().enumerate() {
            // A `^` subscription is a regex, librdkafka's to match.
            if !topic.starts_with('^') {
                topic_name(topic, &format!("source.topics[{index}]"), problems);
            }
        }
        if self.topics.is_empty() {
            problems.add("source.topics", "list at least one topic (or a ^regex)");
        }
        let linger = self
            .linger
            .as_deref()
            .and_then(|text| LINGER_RANGE.check(text, "source.linger", problems))
            .unwrap_or(DEFAULT_LINGER);
        let consumers = match self.consumers {
            None => 1,
            Some(n) if (1..=64).contains(&n) => n as usize,
            Some(n) => {
                problems.add("source.consumers", format!("{n} is out of range (1 to 64)"));
                1
            }
        };
        let batch_bytes = self
            .batch_bytes
            .as_deref()
            .and_then(|text| BATCH_BYTES_RANGE.check(text, "source.batch_bytes", problems))
            .unwrap_or(DEFAULT_BATCH_BYTES);
        KafkaSourceSettings {
            topics: self.topics,
            properties,
            linger,
            consumers,
            batch_bytes,
        }
    }
}

/// Consumes change topics (see the module docs).
pub struct KafkaSource {
    /// Shared with the lane's exactly-once sink, which reads its group metadata.
    consumer: Arc<StreamConsumer<LagReporter>>,
    /// Its consumer group's `group.id`.
    group_id: String,
    linger: Duration,
    batch_bytes: u64,
    name: String,
    /// Records that arrived while the source was held (fetched before the pause took
    /// effect); the next batch starts with them.
    held: std::collections::VecDeque<RawRecord>,
    /// The batch being gathered, and when it leaves: kept here, not in `next_batch`, so
    /// a cancelled call loses nothing (the next call goes on with it).
    gathering: Vec<RawRecord>,
    gathering_until: Option<tokio::time::Instant>,
    paused: bool,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// A consumer subscribed to `settings.topics`. With `telemetry`, its consumer lag per
    /// partition is reported as lane `lane` from librdkafka's statistics (every 5 s
    /// unless `statistics.interval.ms` is set).
    pub fn new(
        settings: &KafkaSourceSettings,
        lane: &str,
        telemetry: Option<Arc<Telemetry>>,
    ) -> Result<Self, SourceError> {
        let name = format!("kafka topics {:?}", settings.topics);
        let error = |reason: String| SourceError::Failed {
            input: name.clone(),
            reason,
        };
        let mut config = ClientConfig::new();
        // A group with no committed position (a plugin deployed for the first time)
        // starts at the beginning of its topics, as Flink's KafkaSource and Kafka
        // Connect's sink consumers do: librdkafka's default (`latest`) would skip every
        // change already in the topic, the snapshot included. The properties may say
        // otherwise.
        config.set("auto.offset.reset", DEFAULT_OFFSET_RESET);
        for (key, value) in &settings.properties {
            config.set(key, value);
        }
        config.set("enable.auto.commit", "false");
        config.set("enable.auto.offset.store", "false");
        if telemetry.is_some()
            && !settings
                .properties
                .iter()
                .any(|(k, _)| k == "statistics.interval.ms")
        {
            config.set("statistics.interval.ms", "5000");
        }
        let reporter = LagReporter {
            lane: lane.to_owned(),
            metrics: telemetry.map(|telemetry| telemetry.report::<KafkaMetrics>()),
        };
        let consumer: StreamConsumer<LagReporter> = config
            .create_with_context(reporter)
            .map_err(|e| error(format!("creating the consumer: {e}")))?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| error(format!("subscribing: {e}")))?;
        let group_id = settings
            .properties
            .iter()
            .find(|(k, _)| k == "group.id")
            .map_or_else(|| lane.to_owned(), |(_, id)| id.clone());
        Ok(Self {
            consumer: Arc::new(consumer),
            group_id,
            linger: settings.linger,
            batch_bytes: settings.batch_bytes,
            name,
            held: std::collections::VecDeque::new(),
            gathering: Vec::new(),
            gathering_until: None,
            paused: false,
        })
    }

    /// This consumer's group, for a transactional sink that commits its positions
    /// ([`crate::transactional::TransactionalKafkaSink`]).
    pub fn group(&self) -> ConsumerGroup {
        let consumer = Arc::clone(&self.consumer);
        ConsumerGroup::of(move || consumer.group_metadata())
    }

    /// The `group.id` this consumer commits in (its lane's name if none was set).
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// librdkafka reports transient conditions (a broker connection lost, the poll
    /// interval exceeded, a rebalance in progress) as consume errors and recovers from
    /// them itself: log and go on. Only fatal errors stop the source.
    fn consumer_error(&self, error: rdkafka::error::KafkaError) -> Result<(), SourceError> {
        match error {
            rdkafka::error::KafkaError::MessageConsumptionFatal(_) => {
                Err(self.error(format!("consuming: {error}")))
            }
            other => {
                tracing::warn!(source = %self.name, error = %other, "consumer reported an error; librdkafka recovers");
                Ok(())
            }
        }
    }

    fn error(&self, reason: String) -> SourceError {
        SourceError::Failed {
            input: self.name.clone(),
            reason,
        }
    }
}

/// Reports consumer lag from librdkafka's statistics to telemetry.
pub struct LagReporter {
    lane: String,
    metrics: Option<Arc<KafkaMetrics>>,
}

impl rdkafka::ClientContext for LagReporter {
    fn stats(&self, statistics: Statistics) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        let mut lags = Vec::new();
        for (topic, stats) in &statistics.topics {
            for (partition, stats) in &stats.partitions {
                // librdkafka lists an internal partition -1 and reports -1 for
                // partitions this consumer does not fetch.
                if *partition >= 0 && stats.consumer_lag >= 0 {
                    lags.push((topic.clone(), *partition, stats.consumer_lag));
                }
            }
        }
        metrics.set_consumer_lag(&self.lane, lags);
    }
}

impl ConsumerContext for LagReporter {}

/// The consumer positions that follow `last` (per topic-partition, the last record
/// consumed): what to commit. The error names the topic-partition.
pub fn offsets_after(last: &[Origin]) -> Result<TopicPartitionList, String> {
    let mut positions = TopicPartitionList::new();
    for origin in last {
        positions
            .add_partition_offset(
                &origin.topic,
                origin.partition,
                Offset::Offset(origin.offset + 1),
            )
            .map_err(|e| format!("{}/{}: {e}", origin.topic, origin.partition))?;
    }
    Ok(positions)
}

/// Where a consumer group with no committed position starts (`auto.offset.reset`),
/// unless the source's properties set it.
pub const DEFAULT_OFFSET_RESET: &str = "earliest";

/// A consumed Kafka message as a raw record (key, value, headers, origin). A record
/// whose headers cannot be carried (a name that is not UTF-8) is `unreadable`, for the
/// dead-letter topic, instead of panicking as rdkafka's header accessors do.
pub fn to_raw(message: &rdkafka::message::BorrowedMessage<'_>) -> RawRecord {
    let crate::headers::ReadHeaders {
        headers,
        unreadable,
    } = crate::headers::read_headers(message);
    RawRecord {
        // A negative one (-1 is "none"; others only a raw client writes, the Java client
        // refuses them) is not passed on: a broker that refused it would stop the lane
        // for one record's timestamp.
        timestamp: message.timestamp().to_millis().filter(|ms| *ms >= 0),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
        origin: Origin {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        },
        unreadable,
    }
}

impl Source for KafkaSource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<RawRecord>>, SourceError> {
        // Cancel-safe: every record taken from the consumer is kept in `gathering` before
        // the next await, and `recv` only takes a message from the queue when it returns.
        let max = max.max(1);
        while self.gathering.len() < max {
            match self.held.pop_front() {
                Some(record) => self.gathering.push(record),
                None => break,
            }
        }
        while self.gathering.is_empty() {
            match self.consumer.recv().await {
                Ok(message) => self.gathering.push(to_raw(&message)),
                Err(e) => self.consumer_error(e)?,
            }
        }
        let size = |record: &RawRecord| {
            (record.key.as_ref().map_or(0, Vec::len) + record.value.as_ref().map_or(0, Vec::len))
                as u64
        };
        let mut bytes: u64 = self.gathering.iter().map(size).sum();
        let linger = self.linger;
        let deadline = *self
            .gathering_until
            .get_or_insert_with(|| tokio::time::Instant::now() + linger);
        while self.gathering.len() < max && bytes < self.batch_bytes {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => {
                    let record = to_raw(&message);
                    bytes += size(&record);
                    self.gathering.push(record);
                }
                Ok(Err(e)) => self.consumer_error(e)?,
                Err(_) => break,
            }
        }
        self.gathering_until = None;
        Ok(Some(std::mem::take(&mut self.gathering)))
    }

    async fn commit(&mut self, last: &[Origin]) -> Result<(), SourceError> {
        let positions = offsets_after(last).map_err(|e| self.error(format!("committing {e}")))?;
        if let Err(e) = self.consumer.commit(&positions, CommitMode::Async) {
            // A revoked partition cannot be committed; its new owner re-reads it.
            tracing::warn!(error = %e, "offset commit failed; those records will be read again");
        }
        Ok(())
    }

    async fn hold(&mut self) -> Result<(), SourceError> {
        // Pause every assigned partition (again after a rebalance, which resets it), so
        // nothing more is fetched, then serve the poll loop: librdkafka counts a consumer
        // that stops polling for `max.poll.interval.ms` as dead and takes its partitions.
        let assignment = self
            .consumer
            .assignment()
            .map_err(|e| self.error(format!("reading the assignment: {e}")))?;
        if assignment.count() > 0 {
            self.consumer
                .pause(&assignment)
                .map_err(|e| self.error(format!("pausing: {e}")))?;
            if !self.paused {
                tracing::info!(source = %self.name, "output is slow: partitions paused");
            }
            self.paused = true;
        }
        while let Ok(message) =
            tokio::time::timeout(Duration::from_millis(10), self.consumer.recv()).await
        {
            match message {
                Ok(message) => self.held.push_back(to_raw(&message)),
                Err(e) => self.consumer_error(e)?,
            }
        }
        Ok(())
    }

    async fn release(&mut self) -> Result<(), SourceError> {
        if !self.paused {
            return Ok(());
        }
        let assignment = self
            .consumer
            .assignment()
            .map_err(|e| self.error(format!("reading the assignment: {e}")))?;
        self.consumer
            .resume(&assignment)
            .map_err(|e| self.error(format!("resuming: {e}")))?;
        self.paused = false;
        tracing::info!(source = %self.name, held = self.held.len(), "output caught up: partitions resumed");
        Ok(())
    }

    async fn rewind(&mut self, first: &[Origin]) -> Result<(), SourceError> {
        // Records kept during a hold or gathered for the next batch come after the
        // batches read again: the seek fetches them anew, in order, so the kept copies of
        // rewound partitions go.
        let rewound = |record: &RawRecord| {
            first.iter().any(|origin| {
                origin.topic == record.origin.topic && origin.partition == record.origin.partition
            })
        };
        self.held.retain(|record| !rewound(record));
        self.gathering.retain(|record| !rewound(record));
        if self.gathering.is_empty() {
            self.gathering_until = None;
        }
        for origin in first {
            // A partition revoked meanwhile cannot be sought; its new owner reads it from
            // the last committed position anyway.
            if let Err(e) = self.consumer.seek(
                &origin.topic,
                origin.partition,
                Offset::Offset(origin.offset),
                Duration::from_secs(10),
            ) {
                tracing::warn!(
                    topic = %origin.topic,
                    partition = origin.partition,
                    offset = origin.offset,
                    error = %e,
                    "could not rewind after an aborted transaction"
                );
            }
        }
        Ok(())
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        // Leave the group cleanly so the partitions move at once, not after a timeout.
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "final commit on shutdown");
        }
        self.consumer.unsubscribe();
    }
}
