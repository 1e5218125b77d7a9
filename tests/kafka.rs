//! Kafka end to end against a real broker on 127.0.0.1 (tansu, started per test): the
//! Debezium samples produced to a CDC topic, sluice with `customers-cdm` from Kafka to
//! Kafka, and `cdm.customer` consumed and compared with the same golden file as the
//! file pipeline.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice::config::{Config, SinkConfig, SourceConfig};
use sluice::pipeline::PipelineSettings;
use sluice::runtime::{Header, OutputRecord, RuntimeOptions};
use sluice::source::kafka::KafkaSourceSettings;
use sluice_tests::{Broker, components, repo_root, sample};

use crate::support::{assert_golden, plugin};

const CDC_TOPIC: &str = "server1.testDB.dbo.customers";

fn client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

async fn create_topics(bootstrap: &str, topics: &[&str]) {
    let admin: AdminClient<_> = client(bootstrap).create().expect("admin client");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    for result in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        result.expect("topic created");
    }
}

/// Produces the sample file's lines (key, value, tombstones) in order.
async fn produce_samples(bootstrap: &str) -> usize {
    let producer: FutureProducer = client(bootstrap).create().expect("producer");
    let text = std::fs::read_to_string(sample("customers.jsonl")).expect("sample");
    let mut count = 0;
    for line in text.lines() {
        let line: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        let key = line["key"].to_string();
        let value = (!line["value"].is_null()).then(|| line["value"].to_string());
        let mut record = FutureRecord::<String, String>::to(CDC_TOPIC).key(&key);
        if let Some(value) = &value {
            record = record.payload(value);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("produced");
        count += 1;
    }
    count
}

#[test]
fn customers_cdm_from_kafka_to_kafka_matches_the_golden_file() {
    let broker = Broker::start();
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        create_topics(
            &broker.bootstrap,
            &[CDC_TOPIC, "cdm.customer", "sluice.dlq"],
        )
        .await;
        assert_eq!(produce_samples(&broker.bootstrap).await, 10);

        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            source: SourceConfig::Kafka(KafkaSourceSettings {
                topics: vec![CDC_TOPIC.to_owned()],
                properties: vec![
                    ("bootstrap.servers".into(), broker.bootstrap.clone()),
                    ("group.id".into(), "sluice-e2e".into()),
                    ("auto.offset.reset".into(), "earliest".into()),
                ],
                linger: Duration::from_millis(20),
            }),
            sink: SinkConfig::Kafka {
                properties: vec![("bootstrap.servers".into(), broker.bootstrap.clone())],
            },
            pipeline: PipelineSettings {
                batch_size: 4,
                ..PipelineSettings::default()
            },
            runtime: RuntimeOptions::default(),
            plugins: vec![plugin(
                "customers-cdm",
                components::CUSTOMERS_CDM,
                &[CDC_TOPIC],
                &["cdm.customer"],
                &[],
            )],
            plugins_dir: None,
            admin_listen: None,
        };
        let _ = dir;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sluice = tokio::spawn(sluice::app::run(config, async move {
            let _ = stopped.await;
        }));

        let consumer: StreamConsumer = client(&broker.bootstrap)
            .set("group.id", "e2e-reader")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        consumer.subscribe(&["cdm.customer"]).expect("subscribe");
        let mut lines = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while lines.len() < 9 {
            let message = tokio::time::timeout_at(deadline, consumer.recv())
                .await
                .expect("all CDM records within the time limit")
                .expect("consume");
            let record = OutputRecord {
                topic: message.topic().to_owned(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                headers: message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|h| Header {
                                key: h.key.to_owned(),
                                value: h.value.map(<[u8]>::to_vec),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            lines.push(sluice::sink::file::record_to_json_line(&record));
        }
        stop.send(()).expect("sluice still running");
        let stats = tokio::time::timeout(Duration::from_secs(60), sluice)
            .await
            .expect("sluice stops")
            .expect("task")
            .expect("sluice ran cleanly");
        assert_eq!(stats.records_in, 10);
        assert_eq!(stats.dead_lettered, 0);
        assert_golden(
            &lines,
            &repo_root()
                .join("tests")
                .join("golden")
                .join("customers-cdm.jsonl"),
        );
    });
}
