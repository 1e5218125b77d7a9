//! The Kafka source and sink as connector kinds ([`sluice_core::connector`]):
//! `[source] type = "kafka"` and `[sink] type = "kafka"`.
//!
//! - Each lane consumes in a group of its own, `<group.id>.<plugin>` ([`lane_settings`]),
//!   so each plugin commits its own offsets; the shared lane keeps `group.id`.
//! - At-least-once, every lane publishes through one producer (thread-safe; the lanes
//!   share its connections and batching). A producer per lane consumer (as Kafka
//!   Connect gives each task one) was tried and taken back: on the test broker (tansu),
//!   several producers appending to one partition at once made a live reader of the
//!   output skip records that a later reader found (BENCHMARKS.md, "A producer per lane,
//!   tried").
//! - Exactly-once, each lane's sink is a transactional producer of its own
//!   (`<transactional.id or "sluice">.<group>.<instance>`) that commits the lane
//!   consumer's offsets in the batch's transaction: the consumer hands it a
//!   [`KafkaCommitHandle`].

use std::sync::Arc;

use sluice_core::connector::{CommitHandle, Delivery, SHARED_LANE, SinkKind, SinkRun, SourceKind};
use sluice_core::settings::Problems;
use sluice_core::sink::{Positions, Sink, SinkError};
use sluice_core::source::SourceError;
use sluice_core::telemetry::Telemetry;
use sluice_core::{Origin, OutputRecord};

use crate::producer::transactional_id;
use crate::sink::{KafkaSink, RawKafkaSink, error};
use crate::source::{KafkaSource, KafkaSourceSettings, RawKafkaSource};
use crate::transactional::{ConsumerGroup, TransactionalKafkaSink};

impl SourceKind for KafkaSourceSettings {
    type Raw = RawKafkaSource;
    type Source = KafkaSource;

    fn validate(raw: RawKafkaSource, _base: &std::path::Path, problems: &mut Problems) -> Self {
        raw.validate(problems)
    }

    fn consumers(&self) -> usize {
        self.consumers
    }

    fn transactional(&self) -> bool {
        true
    }

    async fn open(
        &self,
        lane: &str,
        telemetry: &Arc<Telemetry>,
    ) -> Result<KafkaSource, SourceError> {
        KafkaSource::new(
            &lane_settings(self, lane),
            lane,
            Some(Arc::clone(telemetry)),
        )
    }

    fn commit_handle(source: &KafkaSource) -> Option<CommitHandle> {
        Some(Arc::new(KafkaCommitHandle {
            group: source.group(),
            group_id: source.group_id().to_owned(),
        }))
    }
}

/// A lane's consumer settings: its own group, `<group.id>.<plugin>`, so each plugin
/// commits its own offsets (the shared lane keeps `group.id` as configured).
pub fn lane_settings(settings: &KafkaSourceSettings, lane: &str) -> KafkaSourceSettings {
    let mut settings = settings.clone();
    if lane != SHARED_LANE {
        for (key, value) in &mut settings.properties {
            if key == "group.id" {
                *value = format!("{value}.{lane}");
            }
        }
    }
    settings
}

/// What a lane's exactly-once sink needs from the lane's consumer: its group (metadata
/// read afresh per transaction) and the group's id (part of the `transactional.id`).
#[derive(Debug, Clone)]
pub struct KafkaCommitHandle {
    pub group: ConsumerGroup,
    pub group_id: String,
}

/// `[sink] type = "kafka"`, validated: librdkafka producer properties, verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSinkSettings {
    pub properties: Vec<(String, String)>,
}

/// What the lanes of a run share.
pub enum KafkaShared {
    /// At-least-once: one producer.
    Producer(KafkaSink),
    /// Exactly-once: each lane opens a transactional producer of its own with these
    /// properties and `transactional.id` prefix (the configured `transactional.id`, else
    /// "sluice").
    Transactions {
        properties: Vec<(String, String)>,
        prefix: String,
    },
}

/// A lane's Kafka sink.
#[derive(Debug)]
pub enum KafkaLaneSink {
    Producer(KafkaSink),
    Transactional(TransactionalKafkaSink),
}

impl SinkKind for KafkaSinkSettings {
    type Raw = RawKafkaSink;
    type Shared = KafkaShared;
    type Sink = KafkaLaneSink;

    fn validate(raw: RawKafkaSink, _base: &std::path::Path, problems: &mut Problems) -> Self {
        Self {
            properties: raw.validate(problems),
        }
    }

    fn transactional(&self) -> bool {
        true
    }

    async fn start(&self, run: &SinkRun) -> Result<KafkaShared, SinkError> {
        match run.delivery {
            Delivery::AtLeastOnce => Ok(KafkaShared::Producer(KafkaSink::new(
                &self.properties,
                Some(Arc::clone(&run.telemetry)),
            )?)),
            Delivery::ExactlyOnce => {
                let mut properties = self.properties.clone();
                let prefix = match properties.iter().position(|(k, _)| k == "transactional.id") {
                    Some(index) => properties.remove(index).1,
                    None => "sluice".to_owned(),
                };
                Ok(KafkaShared::Transactions { properties, prefix })
            }
        }
    }

    async fn open(
        shared: &KafkaShared,
        run: &SinkRun,
        _lane: &str,
        commit: Option<CommitHandle>,
    ) -> Result<KafkaLaneSink, SinkError> {
        let (properties, prefix) = match shared {
            KafkaShared::Producer(producer) => {
                return Ok(KafkaLaneSink::Producer(producer.clone()));
            }
            KafkaShared::Transactions { properties, prefix } => (properties.clone(), prefix),
        };
        let Some(handle) = commit.and_then(|handle| handle.downcast::<KafkaCommitHandle>().ok())
        else {
            return Err(error(
                "exactly-once needs a kafka source (validated with the configuration)".to_owned(),
            ));
        };
        let id = transactional_id(&[prefix, &handle.group_id, &run.instance]);
        let group = handle.group.clone();
        let telemetry = Some(Arc::clone(&run.telemetry));
        // `init_transactions` blocks until the coordinator answers.
        let sink = tokio::task::spawn_blocking(move || {
            TransactionalKafkaSink::new(&properties, &id, group, telemetry)
        })
        .await
        .map_err(|e| error(e.to_string()))??;
        Ok(KafkaLaneSink::Transactional(sink))
    }
}

impl Sink for KafkaLaneSink {
    async fn send(&mut self, records: Vec<OutputRecord>) -> Result<(), SinkError> {
        match self {
            KafkaLaneSink::Producer(sink) => sink.send(records).await,
            KafkaLaneSink::Transactional(sink) => sink.send(records).await,
        }
    }

    async fn send_batch(
        &mut self,
        records: Vec<OutputRecord>,
        positions: &[Origin],
    ) -> Result<Positions, SinkError> {
        match self {
            KafkaLaneSink::Producer(sink) => sink.send_batch(records, positions).await,
            KafkaLaneSink::Transactional(sink) => sink.send_batch(records, positions).await,
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            KafkaLaneSink::Producer(sink) => sink.flush().await,
            KafkaLaneSink::Transactional(sink) => sink.flush().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(group: &str) -> KafkaSourceSettings {
        KafkaSourceSettings {
            topics: vec!["t".to_owned()],
            properties: vec![
                ("bootstrap.servers".to_owned(), "127.0.0.1:9".to_owned()),
                ("group.id".to_owned(), group.to_owned()),
            ],
            linger: std::time::Duration::from_millis(1),
            consumers: 1,
            batch_bytes: 1 << 20,
        }
    }

    #[test]
    fn each_plugin_lane_consumes_in_a_group_of_its_own() {
        let group = |settings: KafkaSourceSettings| {
            settings
                .properties
                .into_iter()
                .find(|(k, _)| k == "group.id")
                .map(|(_, v)| v)
        };
        assert_eq!(
            group(lane_settings(&settings("cdm"), "customers")).as_deref(),
            Some("cdm.customers")
        );
        assert_eq!(
            group(lane_settings(&settings("cdm"), SHARED_LANE)).as_deref(),
            Some("cdm")
        );
    }

    #[tokio::test]
    async fn a_bad_producer_property_fails_the_run_at_start() {
        let sink = KafkaSinkSettings {
            properties: vec![
                ("bootstrap.servers".to_owned(), "127.0.0.1:9".to_owned()),
                ("no.such.property".to_owned(), "1".to_owned()),
            ],
        };
        let run = SinkRun {
            delivery: Delivery::AtLeastOnce,
            instance: "test".to_owned(),
            telemetry: Arc::new(Telemetry::default()),
        };
        let Err(error) = sink.start(&run).await else {
            panic!("a property librdkafka does not know is refused at start");
        };
        assert!(error.to_string().contains("no.such.property"), "{error}");
    }

    #[tokio::test]
    async fn an_exactly_once_sink_without_a_kafka_consumer_is_refused() {
        let sink = KafkaSinkSettings {
            properties: vec![("bootstrap.servers".to_owned(), "127.0.0.1:9".to_owned())],
        };
        let run = SinkRun {
            delivery: Delivery::ExactlyOnce,
            instance: "test".to_owned(),
            telemetry: Arc::new(Telemetry::default()),
        };
        let shared = sink.start(&run).await.expect("no connection needed");
        let not_kafka: CommitHandle = Arc::new(42_u8);
        for commit in [None, Some(not_kafka)] {
            let error = KafkaSinkSettings::open(&shared, &run, "lane", commit)
                .await
                .expect_err("refused");
            assert!(
                error
                    .to_string()
                    .contains("exactly-once needs a kafka source"),
                "{error}"
            );
        }
    }
}
