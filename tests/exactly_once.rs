//! Exactly-once delivery (Kafka transactions).
//!
//! What is verified where (README, Tests):
//! - tansu 0.6.0, the broker CI installs, does not implement transactions;
//! - librdkafka's mock cluster (a Kafka-protocol server on 127.0.0.1 inside the test
//!   process) runs the transactional protocol — InitProducerId, AddPartitionsToTxn,
//!   AddOffsetsToTxn, TxnOffsetCommit, EndTxn — and can inject errors, so it proves the
//!   flow: transactions commit with the consumer's offsets, an abortable error aborts the
//!   batch and the batch is processed again. It does not implement what makes
//!   transactions *exactly once* for readers: its fetches report no aborted transactions
//!   (a `read_committed` reader sees aborted records) and it does not fence an old
//!   producer epoch. So the exactly-once properties themselves
//! - are tested only against Apache Kafka, with `SLUICE_TEST_KAFKA_BOOTSTRAP` set
//!   (docker-compose): kill -9 mid-stream with `read_committed` seeing every event once,
//!   and a restarted producer fencing its zombie.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use sluice::config::Delivery;
use sluice_core::sink::{Sink, SinkError};
use sluice_core::{Origin, OutputRecord};
use sluice_kafka::transactional::ConsumerGroup;
use sluice_kafka::transactional::TransactionalKafkaSink;
use sluice_tests::components;

use crate::kafka::{CRASH_EVENTS, CRASH_TOPICS, kill_dash_nine_three_times, produce_numbers};
use crate::support::plugin;

/// A mock cluster of three brokers holding `topics` (name, partitions).
fn mock_cluster(
    topics: &[(&str, i32)],
) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(3).expect("librdkafka mock cluster");
    for (topic, partitions) in topics {
        cluster
            .create_topic(topic, *partitions, 1)
            .expect("mock topic");
    }
    cluster
}

fn assert_exactly_once(records: usize, seen: &std::collections::BTreeSet<i64>) {
    assert_eq!(seen.len(), CRASH_EVENTS, "every event is published");
    assert_eq!(
        records,
        CRASH_EVENTS,
        "read_committed sees each event exactly once ({} duplicates)",
        records - seen.len()
    );
}

#[test]
#[ignore = "needs SLUICE_TEST_KAFKA_BOOTSTRAP: a fresh Apache Kafka, e.g. docker compose up kafka"]
fn kill_dash_nine_with_exactly_once_against_apache_kafka() {
    let bootstrap = std::env::var("SLUICE_TEST_KAFKA_BOOTSTRAP")
        .expect("SLUICE_TEST_KAFKA_BOOTSTRAP is set (the test is ignored otherwise)");
    let (records, seen) = kill_dash_nine_three_times(&bootstrap, "exactly-once", true, false);
    assert_exactly_once(records, &seen);
}

#[test]
fn transactions_commit_on_the_mock_cluster_and_aborted_batches_are_processed_again() {
    const EVENTS: usize = 2_000;
    let cluster = mock_cluster(&CRASH_TOPICS);
    let bootstrap = cluster.bootstrap_servers();
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        produce_numbers(&bootstrap, EVENTS).await;
        // The first two attempts to add the consumed offsets to a transaction fail with
        // an error librdkafka classifies as abortable.
        cluster.request_errors(
            RDKafkaApiKey::AddOffsetsToTxn,
            &[
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
            ],
        );
        let mut config = crate::support::kafka_config(
            &bootstrap,
            "eos",
            "numbers",
            plugin("stamp", components::STAMP, &["numbers"], &["out"], &[]),
            200,
        );
        config.delivery = Delivery::ExactlyOnce;
        config.instance = Some("abort-test".to_owned());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sluice = tokio::spawn(sluice::app::run(config, async move {
            let _ = stopped.await;
        }));
        // The mock does not hide aborted records from any reader, so read everything: the
        // aborted batches show up twice, once aborted and once committed.
        let (records, seen) = crate::kafka::read_out(
            &bootstrap,
            EVENTS,
            Duration::from_secs(120),
            false,
            Duration::from_secs(2),
        )
        .await;
        stop.send(()).expect("sluice still running");
        let stats = tokio::time::timeout(Duration::from_secs(60), sluice)
            .await
            .expect("sluice stops")
            .expect("task")
            .expect("sluice ran cleanly");
        assert_eq!(seen.len(), EVENTS, "every event is published");
        assert_eq!(
            stats.transactions_aborted, 2,
            "each injected error aborted one transaction: {stats:?}"
        );
        assert!(
            records > EVENTS,
            "the aborted batches were processed again ({records} records for {EVENTS} events)"
        );
        assert_eq!(
            stats.records_in, EVENTS as u64,
            "aborted batches are counted once, when committed: {stats:?}"
        );
        println!(
            "{} transactions aborted and processed again; all {EVENTS} events published ({records} records, aborted ones included)",
            stats.transactions_aborted
        );
    });
}

#[test]
#[ignore = "needs SLUICE_TEST_KAFKA_BOOTSTRAP: Apache Kafka"]
fn a_restarted_producer_fences_its_zombie_on_apache_kafka() {
    let bootstrap = std::env::var("SLUICE_TEST_KAFKA_BOOTSTRAP")
        .expect("SLUICE_TEST_KAFKA_BOOTSTRAP is set (the test is ignored otherwise)");
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(crate::kafka::create_partitioned_topics(
        &bootstrap,
        &[("fencing.in", 1), ("fencing.out", 1)],
    ));
    let properties = vec![("bootstrap.servers".to_owned(), bootstrap.clone())];
    let group = || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "fencing")
            .create()
            .expect("consumer");
        ConsumerGroup::fixed(consumer.group_metadata().expect("group metadata"))
    };
    let record = |id: i64| OutputRecord {
        timestamp: None,
        topic: "fencing.out".to_owned(),
        key: Some(id.to_string().into_bytes()),
        value: Some(format!("{{\"id\":{id}}}").into_bytes()),
        headers: Vec::new(),
    };
    let position = |offset: i64| Origin {
        topic: "fencing.in".to_owned(),
        partition: 0,
        offset,
    };
    let id = "sluice.fencing.stamp.host-a";
    tokio.block_on(async {
        let mut zombie =
            TransactionalKafkaSink::new(&properties, id, group(), None).expect("first producer");
        zombie
            .send_batch(vec![record(0)], &[position(0)])
            .await
            .expect("the only producer commits");
        // The same instance restarts (same transactional.id) while the old one lives on.
        let mut restarted =
            TransactionalKafkaSink::new(&properties, id, group(), None).expect("second producer");
        match zombie.send_batch(vec![record(1)], &[position(1)]).await {
            Err(SinkError::Failed { reason, .. }) => assert!(
                reason.to_lowercase().contains("fenced"),
                "the zombie learns it was fenced: {reason}"
            ),
            other => panic!("the zombie must be fenced, got {other:?}"),
        }
        restarted
            .send_batch(vec![record(2)], &[position(1)])
            .await
            .expect("the new producer commits");

        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "fencing-reader")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .create()
            .expect("consumer");
        consumer.subscribe(&["fencing.out"]).expect("subscribe");
        let mut ids = Vec::new();
        while let Ok(message) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await
        {
            let message = message.expect("consume");
            ids.push(String::from_utf8_lossy(message.key().expect("key")).into_owned());
        }
        assert_eq!(ids, ["0", "2"], "the zombie's record never becomes visible");
    });
}
