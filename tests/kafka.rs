//! Kafka end to end against a real broker on 127.0.0.1 (tansu, started per test): the
//! Debezium samples produced to a CDC topic, sluice with `customers-cdm` from Kafka to
//! Kafka, and `cdm.customer` consumed and compared with the same golden file as the
//! file pipeline.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice::config::SourceConfig;
use sluice_core::OutputRecord;
use sluice_kafka::source::KafkaSourceSettings;
use sluice_pipeline::pipeline::PipelineSettings;
use sluice_runtime::RuntimeOptions;
use sluice_tests::{Broker, components, repo_root, sample};

use crate::support::{assert_golden, plugin};

const CDC_TOPIC: &str = "server1.testDB.dbo.customers";

fn client(bootstrap: &str) -> ClientConfig {
    sluice_tests::kafka_client(bootstrap)
}

async fn create_topics(bootstrap: &str, topics: &[&str]) {
    let topics: Vec<(&str, i32)> = topics.iter().map(|t| (*t, 1)).collect();
    create_partitioned_topics(bootstrap, &topics).await;
}

pub(crate) async fn create_partitioned_topics(bootstrap: &str, topics: &[(&str, i32)]) {
    sluice_tests::create_topics(bootstrap, topics).await;
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
        let config = crate::support::kafka_config(
            &broker.bootstrap,
            "sluice-e2e",
            CDC_TOPIC,
            plugin(
                "customers-cdm",
                components::CUSTOMERS_CDM,
                &[CDC_TOPIC],
                &["cdm.customer"],
                &[],
            ),
            4,
        );
        let _ = dir;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sluice = tokio::spawn(sluice::app::run(config, async move {
            let _ = stopped.await;
        }));

        let lines = crate::support::read_json_lines(
            &broker.bootstrap,
            "cdm.customer",
            9,
            Duration::from_secs(120),
        )
        .await;
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

/// A broker this test did not start (Apache Kafka from docker-compose).
struct ExternalBroker {
    bootstrap: String,
}

/// A sluice configuration file reading `numbers` and writing `out` through `stamp`,
/// with `delivery` "at-least-once" or "exactly-once".
pub(crate) fn write_numbers_config(
    dir: &std::path::Path,
    bootstrap: &str,
    group: &str,
    delivery: &str,
) -> std::path::PathBuf {
    let config = dir.join(format!("{group}.toml"));
    std::fs::write(
        &config,
        format!(
            "[source]\ntype = \"kafka\"\ntopics = [\"numbers\"]\n[source.properties]\n\"bootstrap.servers\" = \"{bootstrap}\"\n\
             \"group.id\" = \"{group}\"\n\"auto.offset.reset\" = \"earliest\"\n\"session.timeout.ms\" = \"6000\"\n\
             [sink]\ntype = \"kafka\"\n[sink.properties]\n\"bootstrap.servers\" = \"{bootstrap}\"\n\
             [pipeline]\nbatch_size = 500\ndelivery = \"{delivery}\"\ninstance = \"{group}-test\"\n[runtime]\ncache_dir = {:?}\n\
             [[plugin]]\nname = \"stamp\"\npath = {:?}\ninputs = [\"numbers\"]\noutputs = [\"out\"]\n",
            dir.join("cache").display().to_string(),
            components::STAMP,
        ),
    )
    .expect("config");
    config
}

/// Produces `count` numbered change events to `numbers`, keyed by number.
pub(crate) async fn produce_numbers(bootstrap: &str, count: usize) {
    let producer: FutureProducer = client(bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut deliveries = Vec::new();
    for id in 0..count {
        let line: serde_json::Value =
            serde_json::from_str(&crate::support::create_event(serde_json::json!({"id": id})))
                .expect("event");
        let key = line["key"].to_string();
        let value = line["value"].to_string();
        loop {
            match producer.send_result(FutureRecord::to("numbers").key(&key).payload(&value)) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
    for delivery in deliveries {
        delivery.await.expect("delivery").expect("produced");
    }
}

pub(crate) fn spawn_sluice(config: &std::path::Path) -> std::process::Child {
    std::process::Command::new(sluice_tests::sluice_bin())
        .args(["run", "--config"])
        .arg(config)
        .env("SLUICE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start sluice")
}

/// Reads `out` until every id below `count` was seen or the time is up, then `linger`
/// longer (to catch late duplicates); `isolation.level` is `read_committed` if
/// `committed`. Returns how many records were read and the ids seen.
pub(crate) async fn read_out(
    bootstrap: &str,
    count: usize,
    limit: Duration,
    committed: bool,
    linger: Duration,
) -> (usize, std::collections::BTreeSet<i64>) {
    let consumer: StreamConsumer = client(bootstrap)
        .set("group.id", "crash-reader")
        .set("auto.offset.reset", "earliest")
        .set(
            "isolation.level",
            if committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()
        .expect("consumer");
    consumer.subscribe(&["out"]).expect("subscribe");
    let mut seen = std::collections::BTreeSet::new();
    let mut records = 0;
    let mut deadline = tokio::time::Instant::now() + limit;
    let mut lingering = false;
    loop {
        if seen.len() >= count && !lingering {
            lingering = true;
            deadline = tokio::time::Instant::now() + linger;
        }
        let Ok(message) = tokio::time::timeout_at(deadline, consumer.recv()).await else {
            break;
        };
        let message = message.expect("consume");
        let value: serde_json::Value =
            serde_json::from_slice(message.payload().expect("value")).expect("JSON");
        seen.insert(value["id"].as_i64().expect("id"));
        records += 1;
    }
    (records, seen)
}

/// How many records a topic holds (the sum of its partitions' high watermarks).
pub(crate) fn published(bootstrap: &str, topic: &str) -> i64 {
    let consumer: rdkafka::consumer::BaseConsumer = client(bootstrap).create().expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .sum()
}

/// Events of the crash-safety tests.
pub(crate) const CRASH_EVENTS: usize = 100_000;

/// Topics of the crash-safety tests and their partitions.
pub(crate) const CRASH_TOPICS: [(&str, i32); 3] = [("numbers", 3), ("out", 3), ("sluice.dlq", 1)];

/// Creates the topics (unless `topics_exist`: librdkafka's mock cluster has no
/// CreateTopics), produces [`CRASH_EVENTS`] numbered events, runs sluice (`delivery`) as a child process
/// and kills it with SIGKILL three times mid-stream, then runs it once more until `out`
/// holds every event and stops it with SIGTERM. Returns how many records a consumer
/// (`read_committed` if `committed`) read and the distinct ids among them.
pub(crate) fn kill_dash_nine_three_times(
    bootstrap: &str,
    delivery: &str,
    committed: bool,
    topics_exist: bool,
) -> (usize, std::collections::BTreeSet<i64>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        if !topics_exist {
            create_partitioned_topics(bootstrap, &CRASH_TOPICS).await;
        }
        produce_numbers(bootstrap, CRASH_EVENTS).await;
    });
    let config = write_numbers_config(dir.path(), bootstrap, "crash", delivery);
    // Each kill lands mid-stream: once the output has passed 20k, 40k and 60k records,
    // after a further delay from a fixed seed (reproducible, not aligned with batches).
    let mut seed: u64 = 0x5eed_cafe;
    let mut published_at_kills = Vec::new();
    for round in 0..3i64 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut child = spawn_sluice(&config);
        let started = std::time::Instant::now();
        while published(bootstrap, "out") < (round + 1) * 20_000 {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "round {round}: no progress"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis((seed >> 33) % 300));
        child.kill().expect("kill -9");
        let status = child.wait().expect("wait");
        assert!(
            !status.success(),
            "round {round}: sluice was killed, not finished"
        );
        published_at_kills.push(published(bootstrap, "out"));
    }
    println!("records in `out` (high watermarks) after each kill: {published_at_kills:?}");
    assert!(
        published_at_kills
            .iter()
            .any(|&n| n > 0 && n < CRASH_EVENTS as i64),
        "at least one kill must land mid-stream for this test to mean anything: {published_at_kills:?}"
    );
    let mut last = spawn_sluice(&config);
    let (records, seen) = tokio.block_on(read_out(
        bootstrap,
        CRASH_EVENTS,
        Duration::from_secs(240),
        committed,
        Duration::from_secs(3),
    ));
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(last.id().to_string())
        .status();
    let status = last.wait().expect("wait");
    assert!(status.success(), "SIGTERM stops sluice cleanly: {status}");
    let missing: Vec<i64> = (0..CRASH_EVENTS as i64)
        .filter(|id| !seen.contains(id))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{delivery} lost events, e.g. {missing:?} ({} of {CRASH_EVENTS} seen)",
        seen.len()
    );
    (records, seen)
}

#[test]
fn kill_dash_nine_at_random_points_loses_nothing() {
    let broker = Broker::start();
    let (records, seen) =
        kill_dash_nine_three_times(&broker.bootstrap, "at-least-once", false, false);
    println!(
        "kill -9 three times over {CRASH_EVENTS} events: all {CRASH_EVENTS} published; {} duplicates read (at-least-once)",
        records - seen.len()
    );
}

/// A record read from the dead-letter topic: its headers (names read as bytes, see
/// `sluice_kafka::headers`), value and timestamp.
struct DeadLetterRead {
    headers: Vec<sluice_core::Header>,
    payload: Option<Vec<u8>>,
    timestamp: Option<i64>,
}

/// A record read from `out`: its key (as text), partition and timestamp.
struct Published {
    key: String,
    partition: i32,
    timestamp: Option<i64>,
}

impl DeadLetterRead {
    /// The text of header `name`.
    fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|h| h.key == name).and_then(|h| {
            h.value
                .as_deref()
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
    }
}

/// Runs `sluice run` with `poison` from `topic` to `out` until `records` records are on
/// `out` and the dead-letter topic together (at most 120 s), then stops it cleanly;
/// gives the records published to `out` and the dead letters, in the order read.
async fn poison_lane_output(
    bootstrap: &str,
    topic: &str,
    records: usize,
) -> (Vec<Published>, Vec<DeadLetterRead>) {
    let config = crate::support::kafka_config(
        bootstrap,
        &format!("sluice-{topic}"),
        topic,
        plugin("poison", components::POISON, &[topic], &["out"], &[]),
        PipelineSettings::default().batch_size,
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sluice = tokio::spawn(sluice::app::run(config, async move {
        let _ = stopped.await;
    }));
    let consumer: StreamConsumer = client(bootstrap)
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer
        .subscribe(&["out", "sluice.dlq"])
        .expect("subscribe");
    let mut out = Vec::new();
    let mut dead = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while out.len() + dead.len() < records {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .expect("every record within the time limit")
            .expect("consume");
        if message.topic() == "out" {
            out.push(Published {
                key: String::from_utf8_lossy(message.key().expect("key")).into_owned(),
                partition: message.partition(),
                timestamp: message.timestamp().to_millis(),
            });
        } else {
            dead.push(DeadLetterRead {
                headers: sluice_kafka::headers::read_headers(&message).headers,
                payload: message.payload().map(<[u8]>::to_vec),
                timestamp: message.timestamp().to_millis(),
            });
        }
    }
    stop.send(()).expect("running");
    sluice.await.expect("task").expect("clean stop");
    (out, dead)
}

/// The keys of [`poison_lane_output`]'s records.
fn keys(out: &[Published]) -> Vec<&str> {
    out.iter().map(|record| record.key.as_str()).collect()
}

/// A topic a Flink job (Kafka's Java producer) wrote before keeps each key on its
/// partition when sluice writes it: `sluice run`'s sink places keys by murmur2.
#[test]
fn sluice_run_puts_each_key_on_the_partition_a_java_producer_would() {
    const EVENTS: usize = 40;
    const PARTITIONS: i32 = 4;
    let broker = Broker::start();
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        create_partitioned_topics(
            &broker.bootstrap,
            &[("keyed", 1), ("out", PARTITIONS), ("sluice.dlq", 1)],
        )
        .await;
        let producer: FutureProducer = client(&broker.bootstrap).create().expect("producer");
        for id in 1..=EVENTS {
            let line: serde_json::Value = serde_json::from_str(&crate::support::create_event(
                serde_json::json!({ "id": id }),
            ))
            .expect("JSON");
            producer
                .send(
                    FutureRecord::to("keyed")
                        .key(&line["key"].to_string())
                        .payload(&line["value"].to_string()),
                    Duration::from_secs(10),
                )
                .await
                .expect("produced");
        }
        let (out, dead) = poison_lane_output(&broker.bootstrap, "keyed", EVENTS).await;
        assert!(dead.is_empty());
        assert_eq!(out.len(), EVENTS);
        for Published { key, partition, .. } in &out {
            let java = sluice_tests::java_partition(key.as_bytes(), PARTITIONS);
            assert_eq!(
                *partition, java,
                "key {key} on partition {partition}, the Java producer's is {java}"
            );
        }
        let used: std::collections::BTreeSet<i32> = out.iter().map(|r| r.partition).collect();
        assert_eq!(used.len(), PARTITIONS as usize, "the keys spread: {used:?}");
    });
}

/// A plugin's records and a dead letter keep the timestamp of the record they came from
/// (as a Flink job's output and Kafka Connect's dead letters do), not the time sluice
/// published them: consumers that window, retain or seek by time see the source's times.
#[test]
fn records_keep_the_timestamp_of_the_record_they_came_from() {
    // 2001-09-09, long before this test runs: the producer's clock cannot give these.
    const SOURCE_TIME: i64 = 1_000_000_000_000;
    let broker = Broker::start();
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        create_topics(&broker.bootstrap, &["timed", "out", "sluice.dlq"]).await;
        let producer: FutureProducer = client(&broker.bootstrap).create().expect("producer");
        let rows = [
            serde_json::json!({"id": 1}),
            serde_json::json!({"id": 2, "reject": "no"}),
            serde_json::json!({"id": 3}),
        ];
        for (at, row) in rows.into_iter().enumerate() {
            let line: serde_json::Value =
                serde_json::from_str(&crate::support::create_event(row)).expect("JSON");
            producer
                .send(
                    FutureRecord::to("timed")
                        .key(&line["key"].to_string())
                        .payload(&line["value"].to_string())
                        .timestamp(SOURCE_TIME + at as i64),
                    Duration::from_secs(10),
                )
                .await
                .expect("produced");
        }
        let (out, dead) = poison_lane_output(&broker.bootstrap, "timed", 3).await;
        let published: Vec<(&str, Option<i64>)> = out
            .iter()
            .map(|record| (record.key.as_str(), record.timestamp))
            .collect();
        assert_eq!(
            published,
            [("1", Some(SOURCE_TIME)), ("3", Some(SOURCE_TIME + 2))]
        );
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].timestamp, Some(SOURCE_TIME + 1));
    });
}

#[test]
fn poison_events_and_a_trapping_plugin_go_to_the_dead_letter_topic_and_the_stream_goes_on() {
    let broker = Broker::start();
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        create_topics(&broker.bootstrap, &["mixed", "out", "sluice.dlq"]).await;
        let producer: FutureProducer = client(&broker.bootstrap).create().expect("producer");
        let values = [
            crate::support::create_event(serde_json::json!({"id": 1})),
            crate::support::create_event(serde_json::json!({"id": 2, "reject": "no thanks"})),
            crate::support::create_event(serde_json::json!({"id": 3, "panic": true})),
            r#"{"key":{"id":4},"value":"\u0000 not an envelope"}"#.to_owned(),
            crate::support::create_event(serde_json::json!({"id": 5})),
        ];
        for line in &values {
            let line: serde_json::Value = serde_json::from_str(line).expect("JSON");
            let value = match &line["value"] {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let key = line["key"].to_string();
            producer
                .send(
                    FutureRecord::to("mixed").key(&key).payload(&value),
                    Duration::from_secs(10),
                )
                .await
                .expect("produced");
        }
        let (out, dead) = poison_lane_output(&broker.bootstrap, "mixed", 5).await;
        let mut dead: Vec<(String, String, String)> = dead
            .iter()
            .map(|letter| {
                (
                    letter.header("sluice.dlq.stage").expect("stage"),
                    letter.header("sluice.dlq.reason").expect("reason"),
                    letter.header("sluice.source.offset").expect("offset"),
                )
            })
            .collect();
        assert_eq!(keys(&out), ["1", "5"], "the good events are published");
        dead.sort_by(|a, b| a.2.cmp(&b.2));
        assert_eq!(dead[0].0, "rejected");
        assert_eq!(dead[0].1, "no thanks");
        assert_eq!(dead[1].0, "trapped");
        assert!(dead[1].1.contains("poison event 3"), "{}", dead[1].1);
        assert_eq!(dead[2].0, "decode");
        assert_eq!(dead[2].2, "3", "the source offset of the malformed record");
    });
}

/// Produces one record with a header whose name is `name`, bytes that need not be UTF-8:
/// rdkafka's API takes names as `&str`, so this goes through librdkafka's C API (as a
/// producer in another language, or a buggy one, can write such a name).
#[allow(unsafe_code)]
fn produce_with_raw_header_name(
    bootstrap: &str,
    topic: &str,
    key: &[u8],
    value: &[u8],
    name: &[u8],
) {
    use rdkafka::bindings as rdsys;
    use rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
    use rdkafka::bindings::rd_kafka_vtype_t::*;
    use rdkafka::producer::{BaseProducer, Producer};
    let producer: BaseProducer = client(bootstrap).create().expect("producer");
    let topic = std::ffi::CString::new(topic).expect("topic");
    // SAFETY: the header list is new and handed to librdkafka with the record (it owns
    // it once producev succeeds); every pointer is to a live buffer of the given length,
    // copied by librdkafka (RD_KAFKA_MSG_F_COPY) before the call returns.
    unsafe {
        let headers = rdsys::rd_kafka_headers_new(1);
        let added = rdsys::rd_kafka_header_add(
            headers,
            name.as_ptr().cast(),
            name.len() as isize,
            b"v".as_ptr().cast(),
            1,
        );
        assert_eq!(added, RD_KAFKA_RESP_ERR_NO_ERROR);
        let produced = rdsys::rd_kafka_producev(
            producer.client().native_ptr(),
            RD_KAFKA_VTYPE_TOPIC,
            topic.as_ptr(),
            RD_KAFKA_VTYPE_MSGFLAGS,
            rdsys::RD_KAFKA_MSG_F_COPY,
            RD_KAFKA_VTYPE_VALUE,
            value.as_ptr(),
            value.len(),
            RD_KAFKA_VTYPE_KEY,
            key.as_ptr(),
            key.len(),
            RD_KAFKA_VTYPE_HEADERS,
            headers,
            RD_KAFKA_VTYPE_END,
        );
        assert_eq!(produced, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");
}

/// rdkafka's header accessors unwrap each name as UTF-8: a record whose producer wrote
/// another name panicked the lane, and again at every restart from the committed offset.
/// Now that record alone goes to the dead-letter topic, its name's bytes in the reason,
/// and the records around it are published.
#[test]
fn a_header_name_that_is_not_utf8_costs_only_its_record() {
    let broker = Broker::start();
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        create_topics(&broker.bootstrap, &["headers", "out", "sluice.dlq"]).await;
        let producer: FutureProducer = client(&broker.bootstrap).create().expect("producer");
        let envelope = |id: i64| {
            let line: serde_json::Value =
                serde_json::from_str(&crate::support::create_event(serde_json::json!({"id": id})))
                    .expect("JSON");
            line["value"].to_string()
        };
        for id in 1..=3 {
            let value = envelope(id);
            let key = id.to_string();
            if id == 2 {
                produce_with_raw_header_name(
                    &broker.bootstrap,
                    "headers",
                    key.as_bytes(),
                    value.as_bytes(),
                    b"tr\xffce",
                );
                continue;
            }
            producer
                .send(
                    FutureRecord::to("headers").key(&key).payload(&value),
                    Duration::from_secs(10),
                )
                .await
                .expect("produced");
        }
        let (out, dead) = poison_lane_output(&broker.bootstrap, "headers", 3).await;
        let dead: Vec<_> = dead
            .iter()
            .map(|letter| {
                (
                    letter.header("sluice.dlq.stage").expect("stage"),
                    letter.header("sluice.dlq.reason").expect("reason"),
                    letter.header("sluice.source.offset").expect("offset"),
                    letter.header("tr\u{fffd}ce"),
                    letter.payload.clone(),
                )
            })
            .collect();
        assert_eq!(
            keys(&out),
            ["1", "3"],
            "the records around it are published"
        );
        assert_eq!(dead.len(), 1);
        let (stage, reason, offset, header, payload) = &dead[0];
        assert_eq!(stage, "decode");
        assert!(
            reason.contains("header 0's name is not UTF-8 (bytes 74 72 ff 63 65)"),
            "{reason}"
        );
        assert_eq!(offset, "1");
        assert_eq!(
            header.as_deref(),
            Some("v"),
            "the header kept, its name made readable"
        );
        assert_eq!(
            payload.as_deref(),
            Some(envelope(2).as_bytes()),
            "the record's value kept whole"
        );
    });
}

/// Needs a broker whose group coordinator handles two members reliably: tansu 0.6.0's
/// JoinGroup timed out in about one run of three here, so this test runs only against
/// a fresh Apache Kafka named by `SLUICE_TEST_KAFKA_BOOTSTRAP` (e.g. `docker compose up kafka`,
/// then `SLUICE_TEST_KAFKA_BOOTSTRAP=127.0.0.1:9092`); see the README.
#[test]
#[ignore = "needs SLUICE_TEST_KAFKA_BOOTSTRAP: Apache Kafka"]
fn two_processes_share_a_group_and_the_survivor_takes_over() {
    const EVENTS: usize = 20_000;
    let bootstrap = std::env::var("SLUICE_TEST_KAFKA_BOOTSTRAP")
        .expect("SLUICE_TEST_KAFKA_BOOTSTRAP is set (the test is ignored otherwise)");
    let broker = ExternalBroker { bootstrap };
    let dir = tempfile::tempdir().expect("tempdir");
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        create_partitioned_topics(
            &broker.bootstrap,
            &[("numbers", 4), ("out", 4), ("sluice.dlq", 1)],
        )
        .await;
        produce_numbers(&broker.bootstrap, EVENTS).await;
    });
    let config = write_numbers_config(dir.path(), &broker.bootstrap, "pair", "at-least-once");
    let mut first = spawn_sluice(&config);
    let mut second = spawn_sluice(&config);
    // Let both join and work, then stop one cleanly: it leaves the group and the other
    // gets its partitions.
    std::thread::sleep(Duration::from_secs(8));
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(second.id().to_string())
        .status();
    assert!(
        second.wait().expect("wait").success(),
        "the stopped process exits cleanly"
    );
    let (_, seen) = tokio.block_on(read_out(
        &broker.bootstrap,
        EVENTS,
        Duration::from_secs(180),
        false,
        Duration::ZERO,
    ));
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(first.id().to_string())
        .status();
    let _ = first.wait();
    let missing: Vec<i64> = (0..EVENTS as i64)
        .filter(|id| !seen.contains(id))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "events lost in the hand-over, e.g. {missing:?} ({} of {EVENTS} seen)",
        seen.len()
    );
}

/// A sink that stalls on its second batch until the test opens the gate.
struct StallingSink {
    batches: usize,
    gate: tokio::sync::watch::Receiver<bool>,
    published: tokio::sync::mpsc::UnboundedSender<OutputRecord>,
}

impl sluice_core::sink::Sink for StallingSink {
    async fn send(
        &mut self,
        records: Vec<OutputRecord>,
    ) -> Result<(), sluice_core::sink::SinkError> {
        self.batches += 1;
        if self.batches == 2 {
            let _ = self.gate.wait_for(|open| *open).await;
        }
        for record in records {
            let _ = self.published.send(record);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), sluice_core::sink::SinkError> {
        Ok(())
    }
}

#[test]
fn a_stalled_output_pauses_the_source_and_work_resumes_without_duplicates() {
    const EVENTS: usize = 2_000;
    let broker = Broker::start();
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        create_partitioned_topics(&broker.bootstrap, &[("numbers", 1)]).await;
        produce_numbers(&broker.bootstrap, EVENTS).await;
        let settings = KafkaSourceSettings {
            topics: vec!["numbers".to_owned()],
            properties: vec![
                ("bootstrap.servers".into(), broker.bootstrap.clone()),
                ("group.id".into(), "stall".into()),
                ("auto.offset.reset".into(), "earliest".into()),
                ("session.timeout.ms".into(), "6000".into()),
                // The stall below lasts longer than this: a consumer that stopped
                // polling would be dropped from its group and re-read what it published.
                ("max.poll.interval.ms".into(), "7000".into()),
                // A small prefetch, so the pause is what bounds memory.
                ("queued.max.messages.kbytes".into(), "256".into()),
            ],
            linger: Duration::from_millis(20),
            consumers: 1,
            batch_bytes: sluice::config::DEFAULT_KAFKA_BATCH_BYTES,
        };
        let mut source =
            sluice_kafka::source::KafkaSource::new(&settings, "stamp", None).expect("source");
        let (open, gate) = tokio::sync::watch::channel(false);
        let (published, mut received) = tokio::sync::mpsc::unbounded_channel();
        let mut sink = StallingSink {
            batches: 0,
            gate,
            published,
        };
        let runtime = sluice_runtime::Runtime::new(RuntimeOptions::default()).expect("runtime");
        let stamp = plugin("stamp", components::STAMP, &["numbers"], &["out"], &[]);
        let config = crate::support::config(
            std::path::Path::new("unused"),
            std::path::Path::new("unused"),
            vec![stamp],
            100,
        );
        let routes = sluice::app::start_routes(&runtime, &config).expect("plugin loads");
        let mut pipeline = sluice_pipeline::pipeline::Pipeline::new(
            routes,
            PipelineSettings {
                batch_size: 100,
                ..PipelineSettings::default()
            },
        )
        .with_lane("stamp");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = async {
            pipeline
                .run(&mut source, &mut sink, async move {
                    let _ = stopped.await;
                })
                .await
        };
        let test = async {
            // The first batch goes through; the second stalls for longer than
            // max.poll.interval.ms.
            let first = tokio::time::timeout(Duration::from_secs(120), received.recv())
                .await
                .expect("the first batch within 2 minutes");
            assert!(first.is_some());
            tokio::time::sleep(Duration::from_secs(12)).await;
            open.send(true).expect("sink waiting");
            let mut ids = vec![];
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            // Everything, then a few seconds more to catch re-reads.
            let mut extra = None;
            loop {
                let limit = extra.unwrap_or(deadline);
                match tokio::time::timeout_at(limit, received.recv()).await {
                    Ok(Some(record)) => {
                        let value: serde_json::Value =
                            serde_json::from_slice(record.value.as_deref().expect("value"))
                                .expect("JSON");
                        ids.push(value["id"].as_i64().expect("id"));
                    }
                    _ => break,
                }
                if ids.len() + 1 >= EVENTS && extra.is_none() {
                    extra = Some(tokio::time::Instant::now() + Duration::from_secs(5));
                }
            }
            stop.send(()).expect("pipeline running");
            ids
        };
        let (stats, ids) = tokio::join!(run, test);
        let stats = stats.expect("pipeline");
        let mut distinct = ids.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len() + 1,
            EVENTS,
            "every event after the first batch's first record is published"
        );
        assert_eq!(
            ids.len(),
            distinct.len(),
            "the held consumer kept its partitions: nothing was read twice ({stats:?})"
        );
    });
}

#[test]
fn three_consumers_split_the_partitions_and_keep_each_partitions_order() {
    const EVENTS: usize = 3_000;
    let broker = Broker::start();
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        create_partitioned_topics(&broker.bootstrap, &[("numbers", 3), ("out", 3)]).await;
        produce_numbers(&broker.bootstrap, EVENTS).await;
        let mut config = crate::support::kafka_config(
            &broker.bootstrap,
            "parallel",
            "numbers",
            plugin("stamp", components::STAMP, &["numbers"], &["out"], &[]),
            50,
        );
        if let SourceConfig::Kafka(settings) = &mut config.source {
            settings.consumers = 3;
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sluice = tokio::spawn(sluice::app::run(config, async move {
            let _ = stopped.await;
        }));
        // The plugin's consumer group has three members, one per consumer.
        let admin: rdkafka::consumer::BaseConsumer =
            client(&broker.bootstrap).create().expect("admin consumer");
        let started = std::time::Instant::now();
        let members = loop {
            let members = admin
                .fetch_group_list(Some("parallel.stamp"), Duration::from_secs(5))
                .ok()
                .and_then(|list| list.groups().first().map(|g| g.members().len()))
                .unwrap_or(0);
            if members == 3 || started.elapsed() > Duration::from_secs(90) {
                break members;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert_eq!(members, 3, "one group member per consumer");

        let consumer: StreamConsumer = client(&broker.bootstrap)
            .set("group.id", "parallel-reader")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        consumer.subscribe(&["out"]).expect("subscribe");
        let mut ids = std::collections::BTreeSet::new();
        let mut records = 0;
        // Per (output partition, source partition): the source offsets in the order read.
        let mut order: std::collections::BTreeMap<(i32, String), Vec<i64>> = Default::default();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while ids.len() < EVENTS {
            let message = tokio::time::timeout_at(deadline, consumer.recv())
                .await
                .expect("every event within 2 minutes")
                .expect("consume");
            let raw = sluice_kafka::source::to_raw(&message);
            let header = |name: &str| {
                raw.headers
                    .iter()
                    .find(|h| h.key == name)
                    .and_then(|h| h.value.as_deref())
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .expect("lineage header")
            };
            let value: serde_json::Value =
                serde_json::from_slice(raw.value.as_deref().expect("value")).expect("JSON");
            ids.insert(value["id"].as_i64().expect("id"));
            records += 1;
            order
                .entry((raw.origin.partition, header("sluice.source.partition")))
                .or_default()
                .push(header("sluice.source.offset").parse().expect("offset"));
        }
        stop.send(()).expect("sluice running");
        tokio::time::timeout(Duration::from_secs(60), sluice)
            .await
            .expect("sluice stops")
            .expect("task")
            .expect("sluice ran cleanly");
        assert_eq!(records, EVENTS, "each event once");
        for ((out, source), offsets) in &order {
            assert!(
                offsets.windows(2).all(|w| w[0] < w[1]),
                "source partition {source} reached output partition {out} out of order"
            );
        }
    });
}

#[test]
fn kafka_batches_are_cut_by_bytes() {
    const EVENTS: usize = 200;
    let broker = Broker::start();
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        create_partitioned_topics(&broker.bootstrap, &[("numbers", 1)]).await;
        produce_numbers(&broker.bootstrap, EVENTS).await;
        let settings = KafkaSourceSettings {
            topics: vec!["numbers".to_owned()],
            properties: vec![
                ("bootstrap.servers".into(), broker.bootstrap.clone()),
                ("group.id".into(), "bytes".into()),
                ("auto.offset.reset".into(), "earliest".into()),
            ],
            // Far longer than the test: batches end by bytes, not by time.
            linger: Duration::from_secs(30),
            consumers: 1,
            batch_bytes: 2048,
        };
        let mut source =
            sluice_kafka::source::KafkaSource::new(&settings, "stamp", None).expect("source");
        let mut batches = Vec::new();
        let mut total = 0;
        while total < EVENTS {
            let batch = tokio::time::timeout(
                Duration::from_secs(120),
                sluice_core::source::Source::next_batch(&mut source, 1000),
            )
            .await
            .expect("a batch within 2 minutes")
            .expect("consume")
            .expect("kafka never ends");
            let bytes: usize = batch
                .iter()
                .map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len))
                .sum();
            total += batch.len();
            batches.push((batch.len(), bytes));
        }
        let (first_len, _) = batches[0];
        let record_bytes = batches[0].1 / first_len;
        for (len, bytes) in &batches {
            // A batch stops at the first record that reaches the cap.
            assert!(
                *bytes < 2048 + record_bytes,
                "a batch of {len} records holds {bytes} bytes, past the 2 KiB cap: {batches:?}"
            );
        }
        assert!(
            batches.len() >= EVENTS * record_bytes / (2048 + record_bytes),
            "{batches:?}"
        );
    });
}
