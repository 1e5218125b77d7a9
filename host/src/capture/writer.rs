//! Publishing capture events to Kafka with their offset.
//!
//! Transactional (the default): each commit is one Kafka transaction holding the events
//! and the offset record (a compacted topic, key `["sluice-capture",{"server":...,
//! "database":...}]`), so a crash never loses or duplicates an event for
//! `read_committed` consumers. The `transactional.id` is `sluice-capture.<server>.<database>`:
//! a second `sluice capture` of the same database fences the first (its next commit fails
//! with [`WriteError::Fenced`] and it stops).
//!
//! Without transactions (`transactions = false`, for brokers that lack them): events are
//! published and acknowledged, then the offset record; a crash in between republishes
//! the events after the last stored offset (at-least-once).

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset as KafkaOffset, TopicPartitionList};

use super::offsets::{Offset, offset_key};
use super::{EventWriter, OffsetValue, OutRecord, WriteError};
use crate::runtime::{Header, OutputRecord};
use crate::sink::kafka::ErrorCounter;

/// librdkafka's partitioner matching the Java client's: murmur2 of the key (random for
/// null keys, as the Java client spreads them).
pub const PARTITIONER: &str = "murmur2_random";

/// How long one transactional call (init, commit, abort) may block.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The `transactional.id` of the capture of `database` on `server` (the topic prefix).
pub fn transactional_id(server: &str, database: &str) -> String {
    format!("sluice-capture.{server}.{database}")
}

/// Publishes events and offsets (see the module docs).
pub struct KafkaWriter {
    producer: FutureProducer<ErrorCounter>,
    offsets_topic: String,
    offset_key: Vec<u8>,
    transactional_id: Option<String>,
}

impl std::fmt::Debug for KafkaWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaWriter")
            .field("offsets_topic", &self.offsets_topic)
            .field("transactional_id", &self.transactional_id)
            .finish_non_exhaustive()
    }
}

fn is_fenced(error: &KafkaError) -> bool {
    match error {
        KafkaError::Transaction(e) => {
            matches!(
                e.code(),
                rdkafka::types::RDKafkaErrorCode::Fenced
                    | rdkafka::types::RDKafkaErrorCode::ProducerFenced
                    | rdkafka::types::RDKafkaErrorCode::InvalidProducerEpoch
            )
        }
        _ => false,
    }
}

/// The producer's configuration: idempotent, `acks=all`, the Java client's partitioner,
/// then `properties` verbatim (they may override), then the transactional id.
fn producer_config(
    properties: &[(String, String)],
    transactional_id: Option<&str>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("acks", "all");
    config.set("enable.idempotence", "true");
    // Kafka's Java producer (Kafka Connect's, so Debezium's) places a key by murmur2;
    // librdkafka's default (`consistent_random`, CRC32) places it elsewhere, so a topic
    // Debezium wrote would get one key on two partitions and lose its order.
    config.set("partitioner", PARTITIONER);
    for (key, value) in properties {
        config.set(key, value);
    }
    if let Some(id) = transactional_id {
        config.set("transactional.id", id);
    }
    config
}

impl KafkaWriter {
    /// A producer for `properties` (librdkafka, verbatim); with `transactional`, a
    /// transactional producer initialised (fencing any older one with the same id).
    /// Blocks up to 30 s.
    pub fn new(
        properties: &[(String, String)],
        offsets_topic: &str,
        server: &str,
        database: &str,
        transactional: bool,
    ) -> Result<Self, WriteError> {
        let transactional_id = transactional.then(|| transactional_id(server, database));
        let config = producer_config(properties, transactional_id.as_deref());
        let producer: FutureProducer<ErrorCounter> = config
            .create_with_context(ErrorCounter::new(None))
            .map_err(|e| WriteError::Kafka(format!("creating the producer: {e}")))?;
        if let Some(id) = &transactional_id {
            producer.init_transactions(CALL_TIMEOUT).map_err(|e| {
                WriteError::Kafka(format!("initialising transactions for {id}: {e}"))
            })?;
            tracing::info!(transactional_id = %id, "capture producer ready");
        }
        Ok(Self {
            producer,
            offsets_topic: offsets_topic.to_owned(),
            offset_key: offset_key(server, database),
            transactional_id,
        })
    }

    fn output(&self, records: Vec<OutRecord>, offset: Vec<u8>) -> Vec<OutputRecord> {
        let mut out: Vec<OutputRecord> = records
            .into_iter()
            .map(|r| OutputRecord {
                topic: r.topic,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(key, value)| Header {
                        key,
                        value: Some(value),
                    })
                    .collect(),
            })
            .collect();
        out.push(OutputRecord {
            topic: self.offsets_topic.clone(),
            key: Some(self.offset_key.clone()),
            value: Some(offset),
            headers: Vec::new(),
        });
        out
    }

    async fn blocking(
        &self,
        call: impl FnOnce(&FutureProducer<ErrorCounter>) -> Result<(), KafkaError> + Send + 'static,
    ) -> Result<(), KafkaError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || call(&producer))
            .await
            .unwrap_or(Err(KafkaError::Canceled))
    }

    async fn transaction(&self, id: &str, records: Vec<OutputRecord>) -> Result<(), WriteError> {
        let failed = |what: &str, e: KafkaError| {
            if is_fenced(&e) {
                WriteError::Fenced(id.to_owned())
            } else {
                WriteError::Kafka(format!("{id}: {what}: {e}"))
            }
        };
        self.producer
            .begin_transaction()
            .map_err(|e| failed("begin_transaction", e))?;
        let result = match crate::sink::kafka::publish(&self.producer, &records).await {
            Ok(()) => self
                .blocking(|p| p.commit_transaction(CALL_TIMEOUT))
                .await
                .map_err(|e| failed("commit_transaction", e)),
            Err(e) => Err(WriteError::Kafka(format!("{id}: {e}"))),
        };
        if let Err(error) = result {
            if !matches!(error, WriteError::Fenced(_)) {
                // Nothing of this commit is visible; capture stops and resumes from the
                // stored offset.
                if let Err(e) = self.blocking(|p| p.abort_transaction(CALL_TIMEOUT)).await {
                    tracing::warn!(transactional_id = %id, error = %e, "aborting the transaction failed");
                }
            }
            return Err(error);
        }
        Ok(())
    }
}

impl<O: OffsetValue> EventWriter<O> for KafkaWriter {
    async fn commit(&mut self, records: Vec<OutRecord>, offset: O) -> Result<(), WriteError> {
        let mut out = self.output(records, offset.encode());
        match self.transactional_id.clone() {
            Some(id) => self.transaction(&id, out).await,
            None => {
                // Events first, acknowledged; then the offset.
                let offset_record = out.pop();
                crate::sink::kafka::publish(&self.producer, &out)
                    .await
                    .map_err(|e| WriteError::Kafka(e.to_string()))?;
                crate::sink::kafka::publish(&self.producer, offset_record.as_slice())
                    .await
                    .map_err(|e| WriteError::Kafka(e.to_string()))
            }
        }
    }
}

/// Reads the last offset stored for `server`/`database` in `topic` (partition 0, from the
/// start to the end; `read_committed`, so an aborted transaction's offset is never
/// seen). `None` when there is none.
pub async fn read_offset(
    properties: &[(String, String)],
    topic: &str,
    server: &str,
    database: &str,
) -> Result<Option<Offset>, WriteError> {
    read_offset_value(properties, topic, server, database)
        .await?
        .map(|value| Offset::decode(&value).map_err(|e| WriteError::Kafka(e.to_string())))
        .transpose()
}

/// The last offset record's value stored for `server`/`database` in `topic`, whatever
/// its source ([`read_offset`] decodes SQL Server's).
pub async fn read_offset_value(
    properties: &[(String, String)],
    topic: &str,
    server: &str,
    database: &str,
) -> Result<Option<Vec<u8>>, WriteError> {
    let mut config = ClientConfig::new();
    for (key, value) in properties {
        if !key.starts_with("transactional") && key != "acks" && key != "enable.idempotence" {
            config.set(key, value);
        }
    }
    config.set("group.id", "sluice-capture-offsets");
    config.set("enable.auto.commit", "false");
    config.set("isolation.level", "read_committed");
    let key = offset_key(server, database);
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let error = |what: &str, e: KafkaError| {
            WriteError::Kafka(format!("offsets topic {topic}: {what}: {e}"))
        };
        let consumer: BaseConsumer = config
            .create()
            .map_err(|e| error("creating the consumer", e))?;
        let (low, high) = consumer
            .fetch_watermarks(&topic, 0, CALL_TIMEOUT)
            .map_err(|e| error("watermarks", e))?;
        if high <= low {
            return Ok(None);
        }
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, KafkaOffset::Beginning)
            .map_err(|e| error("assign", e))?;
        consumer
            .assign(&assignment)
            .map_err(|e| error("assign", e))?;
        let mut last = None;
        let deadline = std::time::Instant::now() + CALL_TIMEOUT;
        loop {
            if std::time::Instant::now() > deadline {
                return Err(WriteError::Kafka(format!(
                    "offsets topic {topic}: not read to its end ({high}) within {CALL_TIMEOUT:?}"
                )));
            }
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                // read_committed stops at the last stable offset, below `high` when
                // transaction markers end the log.
                if let Ok(position) = consumer.position()
                    && let Some(p) = position.elements_for_topic(&topic).first()
                    && let KafkaOffset::Offset(o) = p.offset()
                    && o >= high - 1
                {
                    break;
                }
                continue;
            };
            let message = message.map_err(|e| error("reading", e))?;
            if message.key() == Some(key.as_slice()) {
                last = message.payload().map(<[u8]>::to_vec);
            }
            if message.offset() + 1 >= high {
                break;
            }
        }
        Ok(last)
    })
    .await
    .map_err(|e| WriteError::Kafka(format!("reading offsets: {e}")))?
}

#[cfg(test)]
mod tests {
    //! Against librdkafka's mock cluster (in process, on 127.0.0.1), which runs the
    //! transactional protocol but neither hides aborted records from `read_committed`
    //! readers nor fences an older producer epoch (tried: the first writer kept
    //! committing after a second one with the same transactional.id started). Fencing is
    //! tested against Apache Kafka in `tests/capture.rs` (`SLUICE_TEST_KAFKA_BOOTSTRAP`).

    use super::*;
    use crate::capture::lsn::Lsn;
    use crate::capture::offsets::Position;
    use rdkafka::mocking::MockCluster;

    const TOPIC: &str = "server1.testDB.dbo.customers";
    const OFFSETS: &str = "sluice.capture.offsets";

    fn cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic(TOPIC, 1, 1).expect("topic");
        cluster.create_topic(OFFSETS, 1, 1).expect("offsets topic");
        cluster
    }

    fn record(id: i32) -> OutRecord {
        OutRecord {
            topic: TOPIC.into(),
            key: Some(format!("{{\"id\":{id}}}").into_bytes()),
            value: Some(format!("{{\"op\":\"c\",\"id\":{id}}}").into_bytes()),
            headers: vec![("h".into(), b"v".to_vec())],
        }
    }

    fn offset(n: u8) -> Offset {
        let mut bytes = [0; 10];
        bytes[9] = n;
        Offset::Stream(
            Position {
                commit: Lsn(bytes),
                change: Lsn(bytes),
                serial: 1,
                command: Some(1),
            },
            None,
        )
    }

    fn properties(bootstrap: &str) -> Vec<(String, String)> {
        vec![("bootstrap.servers".into(), bootstrap.into())]
    }

    /// A record's key and value.
    type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

    /// Every record of `topic`, read_committed, from the start.
    fn read_all(bootstrap: &str, topic: &str, expect: usize) -> Vec<KeyValue> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "t")
            .set("isolation.level", "read_committed")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, KafkaOffset::Beginning)
            .expect("tpl");
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while out.len() < expect && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                out.push((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec)));
            }
        }
        out
    }

    /// Keys land on the partitions Kafka Connect's producer chose (murmur2), unless the
    /// properties say otherwise.
    #[test]
    fn the_producer_partitions_keys_as_the_java_client_does() {
        let config = producer_config(&properties("k:9092"), None);
        assert_eq!(config.get("partitioner"), Some("murmur2_random"));
        let mut own = properties("k:9092");
        own.push(("partitioner".into(), "consistent_random".into()));
        assert_eq!(
            producer_config(&own, Some("t")).get("partitioner"),
            Some("consistent_random")
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn events_and_offsets_commit_in_one_transaction_and_read_back() {
        let cluster = cluster();
        let bootstrap = cluster.bootstrap_servers();
        let props = properties(&bootstrap);
        let mut writer = tokio::task::spawn_blocking({
            let props = props.clone();
            move || KafkaWriter::new(&props, OFFSETS, "server1", "testDB", true)
        })
        .await
        .expect("join")
        .expect("writer");
        assert_eq!(
            writer.transactional_id.as_deref(),
            Some("sluice-capture.server1.testDB")
        );
        assert_eq!(
            read_offset(&props, OFFSETS, "server1", "testDB").await,
            Ok(None)
        );
        writer
            .commit(vec![record(1), record(2)], offset(1))
            .await
            .expect("first commit");
        writer
            .commit(vec![record(3)], offset(2))
            .await
            .expect("second commit");
        let events = read_all(&bootstrap, TOPIC, 3);
        assert_eq!(events.len(), 3);
        assert_eq!(events[2].0.as_deref(), Some(&b"{\"id\":3}"[..]));
        assert_eq!(
            read_offset(&props, OFFSETS, "server1", "testDB").await,
            Ok(Some(offset(2))),
            "the last offset of the database"
        );
        assert_eq!(
            read_offset(&props, OFFSETS, "server1", "otherDB").await,
            Ok(None)
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_transaction_is_aborted_and_the_next_commit_succeeds() {
        let cluster = cluster();
        let props = properties(&cluster.bootstrap_servers());
        let mut writer = tokio::task::spawn_blocking({
            let props = props.clone();
            move || KafkaWriter::new(&props, OFFSETS, "server1", "testDB", true)
        })
        .await
        .expect("join")
        .expect("writer");
        // Adding the partitions to the transaction fails (abortable).
        cluster.request_errors(
            rdkafka::types::RDKafkaApiKey::AddPartitionsToTxn,
            &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
        );
        let error = writer
            .commit(vec![record(1)], offset(1))
            .await
            .expect_err("produce fails");
        assert!(matches!(error, WriteError::Kafka(_)), "{error}");
        writer
            .commit(vec![record(2)], offset(2))
            .await
            .expect("the next transaction commits");
        assert_eq!(
            read_offset(&props, OFFSETS, "server1", "testDB").await,
            Ok(Some(offset(2)))
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn without_transactions_events_then_the_offset() {
        let cluster = cluster();
        let bootstrap = cluster.bootstrap_servers();
        let props = properties(&bootstrap);
        let mut writer =
            KafkaWriter::new(&props, OFFSETS, "server1", "testDB", false).expect("writer");
        assert_eq!(writer.transactional_id, None);
        writer
            .commit(vec![record(1)], offset(7))
            .await
            .expect("commit");
        assert_eq!(read_all(&bootstrap, TOPIC, 1).len(), 1);
        assert_eq!(
            read_offset(&props, OFFSETS, "server1", "testDB").await,
            Ok(Some(offset(7)))
        );
    }
}
