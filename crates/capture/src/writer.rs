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
//!
//! [`EventWriter::dispatch`] keeps several parts in flight: a part's events are enqueued
//! at once (without transactions) and a task per part waits for them, then for the part
//! before it, then stores its offset (or, with transactions, commits its transaction
//! once the one before it committed): offsets are stored in order, each only after
//! every event before it was acknowledged.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::Shared;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset as KafkaOffset, TopicPartitionList};
use sluice_core::{Header, OutputRecord};
use sluice_kafka::producer::{create_producer, producer_config, transactional_id};
use sluice_kafka::sink::{ErrorCounter, enqueue, publish};
use sluice_kafka::transaction::{CALL_TIMEOUT, TransactionError, Transactions};

use crate::offsets::{Offset, offset_key};
use crate::{Acknowledged, EventWriter, OffsetValue, OutRecord, WriteError};

/// Where the records go: in transactions, or published and acknowledged one step at a
/// time.
enum Output {
    Transactional(Arc<Transactions>),
    Plain(FutureProducer<ErrorCounter>),
}

/// The last dispatched part's outcome, which the next part waits for.
type Previous = Shared<Acknowledged>;

/// Publishes events and offsets (see the module docs).
pub struct KafkaWriter {
    output: Output,
    /// The last part dispatched (`None`: none, or all acknowledged before it).
    previous: Option<Previous>,
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

impl KafkaWriter {
    /// A producer for `properties` (librdkafka, verbatim); with `transactional`, a
    /// transactional producer initialised (fencing any older one with the same id,
    /// `sluice-capture.<server>.<database>`). Blocks up to 30 s.
    pub fn new(
        properties: &[(String, String)],
        offsets_topic: &str,
        server: &str,
        database: &str,
        transactional: bool,
    ) -> Result<Self, WriteError> {
        let transactional_id =
            transactional.then(|| transactional_id(&["sluice-capture", server, database]));
        let config = producer_config(properties, transactional_id.as_deref());
        let output = match &transactional_id {
            Some(id) => Output::Transactional(Arc::new(
                Transactions::init(&config, id, None).map_err(write_error)?,
            )),
            None => Output::Plain(
                create_producer(&config, None)
                    .map_err(|e| WriteError::Kafka(format!("creating the producer: {e}")))?,
            ),
        };
        Ok(Self {
            output,
            previous: None,
            offsets_topic: offsets_topic.to_owned(),
            offset_key: offset_key(server, database),
            transactional_id,
        })
    }

    fn output(&self, records: Vec<OutRecord>, offset: Vec<u8>) -> Vec<OutputRecord> {
        let mut out: Vec<OutputRecord> = records
            .into_iter()
            .map(|r| OutputRecord {
                timestamp: None,
                topic: r.topic,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(key, value)| Header {
                        key: key.into(),
                        value: Some(value),
                    })
                    .collect(),
            })
            .collect();
        out.push(OutputRecord {
            timestamp: None,
            topic: self.offsets_topic.clone(),
            key: Some(self.offset_key.clone()),
            value: Some(offset),
            headers: Vec::new(),
        });
        out
    }
}

/// A failed transaction as capture reports it: fenced stops for good; anything else
/// stops capture, which resumes from the stored offset.
fn write_error(error: TransactionError) -> WriteError {
    match error {
        TransactionError::Fenced { id, .. } => WriteError::Fenced(id),
        other => WriteError::Kafka(other.to_string()),
    }
}

impl<O: OffsetValue> EventWriter<O> for KafkaWriter {
    async fn dispatch(
        &mut self,
        records: Vec<OutRecord>,
        offset: O,
    ) -> Result<Acknowledged, WriteError> {
        let mut out = self.output(records, offset.encode());
        let previous = self.previous.take();
        let part: Acknowledged = match &self.output {
            Output::Transactional(transactions) => {
                let transactions = Arc::clone(transactions);
                Box::pin(async move {
                    if let Some(previous) = previous {
                        previous.await?;
                    }
                    transactions.commit(&out, None).await.map_err(write_error)
                })
            }
            Output::Plain(producer) => {
                let offset_record = out.pop();
                let events = enqueue(producer, &out)
                    .await
                    .map_err(|e| WriteError::Kafka(e.to_string()))?;
                drop(out);
                let producer = producer.clone();
                Box::pin(async move {
                    events
                        .acknowledged()
                        .await
                        .map_err(|e| WriteError::Kafka(e.to_string()))?;
                    if let Some(previous) = previous {
                        previous.await?;
                    }
                    publish(&producer, offset_record.as_slice())
                        .await
                        .map_err(|e| WriteError::Kafka(e.to_string()))
                })
            }
        };
        // Its own task: it makes progress whether or not the caller polls it (the next
        // part waits for it).
        let task = tokio::spawn(part);
        let outcome: Acknowledged = Box::pin(async move {
            task.await
                .unwrap_or_else(|e| Err(WriteError::Kafka(format!("publishing task: {e}"))))
        });
        let shared = outcome.shared();
        self.previous = Some(shared.clone());
        Ok(Box::pin(shared))
    }

    async fn commit(&mut self, records: Vec<OutRecord>, offset: O) -> Result<(), WriteError> {
        // The same path, awaited: after the parts dispatched before it. A failure is the
        // caller's to handle; the next part does not wait on (or inherit) it.
        let result = self.dispatch(records, offset).await?.await;
        if result.is_err() {
            self.previous = None;
        }
        result
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
    use crate::offsets::Position;
    use crate::sqlserver::lsn::Lsn;
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

    /// A writer for `props` (its transactional start-up blocks: off the async threads).
    async fn writer(props: &[(String, String)], transactional: bool) -> KafkaWriter {
        let props = props.to_vec();
        tokio::task::spawn_blocking(move || {
            KafkaWriter::new(&props, OFFSETS, "server1", "testDB", transactional)
        })
        .await
        .expect("join")
        .expect("writer")
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

    /// Several parts in flight, both modes: each acknowledgement resolves, the events
    /// are all there, and the offsets were stored in the order the parts were
    /// dispatched (the last stored is the last part's).
    #[tokio::test(flavor = "multi_thread")]
    async fn dispatched_parts_store_their_offsets_in_order() {
        for transactional in [false, true] {
            let cluster = cluster();
            let bootstrap = cluster.bootstrap_servers();
            let props = properties(&bootstrap);
            let mut writer = writer(&props, transactional).await;
            let mut parts = Vec::new();
            for n in 1..=5u8 {
                let records = (0..50).map(|i| record(i32::from(n) * 100 + i)).collect();
                parts.push(
                    writer
                        .dispatch(records, offset(n))
                        .await
                        .expect("dispatched"),
                );
            }
            for part in parts {
                part.await.expect("acknowledged");
            }
            assert_eq!(
                read_all(&bootstrap, TOPIC, 250).len(),
                250,
                "transactional: {transactional}"
            );
            let offsets = read_all(&bootstrap, OFFSETS, 5);
            let stored: Vec<Vec<u8>> = offsets.into_iter().filter_map(|(_, v)| v).collect();
            let expected: Vec<Vec<u8>> = (1..=5).map(|n| offset(n).encode()).collect();
            assert_eq!(
                stored, expected,
                "in dispatch order (transactional: {transactional})"
            );
            // A commit after dispatched parts goes after them.
            writer
                .commit(vec![record(9)], offset(6))
                .await
                .expect("commit");
            assert_eq!(
                read_offset(&props, OFFSETS, "server1", "testDB").await,
                Ok(Some(offset(6)))
            );
        }
    }

    /// A later part whose events are acknowledged first still stores its offset only
    /// after the part before it: the first part's topic leads on a broker 1.5 s away,
    /// the second's and the offsets' on a near one.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_later_part_acknowledged_first_waits_for_the_one_before() {
        const NEAR: &str = "server1.testDB.dbo.orders";
        let cluster = MockCluster::new(2).expect("mock cluster");
        cluster.create_topic(TOPIC, 1, 1).expect("topic");
        cluster.create_topic(NEAR, 1, 1).expect("topic");
        cluster.create_topic(OFFSETS, 1, 1).expect("offsets topic");
        cluster.partition_leader(TOPIC, 0, Some(1)).expect("leader");
        cluster.partition_leader(NEAR, 0, Some(2)).expect("leader");
        cluster
            .partition_leader(OFFSETS, 0, Some(2))
            .expect("leader");
        let bootstrap = cluster.bootstrap_servers();
        let props = properties(&bootstrap);
        let mut writer = writer(&props, false).await;
        // Metadata first, so the delay falls on the produce requests.
        writer
            .commit(vec![record(0)], offset(1))
            .await
            .expect("warm-up");
        cluster
            .broker_round_trip_time(1, Duration::from_millis(1_500))
            .expect("rtt");
        let far = writer
            .dispatch(vec![record(1)], offset(2))
            .await
            .expect("dispatched");
        let mut near_record = record(2);
        near_record.topic = NEAR.into();
        let near = writer
            .dispatch(vec![near_record], offset(3))
            .await
            .expect("dispatched");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            read_offset(&props, OFFSETS, "server1", "testDB").await,
            Ok(Some(offset(1))),
            "the near part's offset waits for the far part"
        );
        far.await.expect("far part");
        near.await.expect("near part");
        let stored: Vec<Vec<u8>> = read_all(&bootstrap, OFFSETS, 3)
            .into_iter()
            .filter_map(|(_, v)| v)
            .collect();
        let expected: Vec<Vec<u8>> = (1..=3).map(|n| offset(n).encode()).collect();
        assert_eq!(stored, expected);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn events_and_offsets_commit_in_one_transaction_and_read_back() {
        let cluster = cluster();
        let bootstrap = cluster.bootstrap_servers();
        let props = properties(&bootstrap);
        let mut writer = writer(&props, true).await;
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
        let mut writer = writer(&props, true).await;
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
