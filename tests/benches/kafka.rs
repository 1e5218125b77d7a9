//! Kafka → sluice → Kafka on the loopback test broker (one lane with one consumer, and
//! one with a consumer per partition), against a bare rdkafka
//! consume→produce relay with the same batching (the ceiling), in one run.
//!
//! - Throughput: `EVENTS` Debezium events of ~1 KB are produced to an input topic (3
//!   partitions) before the clock starts; each contender then consumes them from the start
//!   in a consumer group of its own and publishes to an output topic of its own; the
//!   figure is events / (time until the output topic holds them all).
//! - Latency: events are produced at a fixed rate (10k/s) while the contender runs; per
//!   event, the time from the producer's send to a consumer receiving its output record.
//!   Batching is tuned for latency here (source linger 2 ms, producer linger 1 ms,
//!   consumers' `fetch.wait.max.ms` 5), for every contender alike.
//! - Delivery modes: only at-least-once. tansu (the test broker) does not implement
//!   transactions, and a comparison on librdkafka's mock cluster did not complete (its
//!   phase stalled; see BENCHMARKS.md), so exactly-once is not measured here.
//!
//! `cargo bench -p sluice-tests --bench kafka` (add `-- --quick` for a smoke run).
//! Results and how to read them: BENCHMARKS.md.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice::config::Delivery;
use sluice::config::{Config, SinkConfig, SourceConfig};
use sluice_core::RawRecord;
use sluice_core::topics::TopicPattern;
use sluice_kafka::connector::KafkaSinkSettings;
use sluice_kafka::source::KafkaSourceSettings;
use sluice_pipeline::pipeline::PipelineSettings;
use sluice_runtime::{PluginSpec, RuntimeOptions};
use sluice_tests::{Broker, components};

const BATCH: usize = 256;
const PARTITIONS: i32 = 3;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let events = if quick { 20_000 } else { 200_000 };
    let latency_seconds = if quick { 2 } else { 5 };
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let records = sluice_tests::synthetic_customer_events(events);
    let bytes = records
        .iter()
        .map(|r| r.value.as_ref().map_or(0, Vec::len))
        .sum::<usize>()
        / records.len();

    let broker = Broker::start();
    let bootstrap = broker.bootstrap.clone();
    println!(
        "broker: tansu 0.6.0 on 127.0.0.1 (memory storage); {events} events of {bytes} B, {PARTITIONS} partitions; batches of {BATCH}"
    );
    println!();
    println!("| contender | events/s | vs relay | p50 latency | p99 latency |");
    println!("|---|---:|---:|---:|---:|");
    let contenders = [
        Contender::Relay,
        Contender::Sluice("passthrough", 1),
        Contender::Sluice("customers-cdm", 1),
        // One lane, a consumer per partition (issue 15, goal 1: ≥ 0.75 × min(N, cores)
        // × the one-consumer rate).
        Contender::Sluice("customers-cdm", PARTITIONS as usize),
    ];
    let mut relay_rate = 0.0;
    for (index, contender) in contenders.iter().enumerate() {
        let rate = tokio.block_on(throughput(
            &bootstrap,
            contender,
            &records,
            &format!("t{index}"),
            Delivery::AtLeastOnce,
            true,
        ));
        if matches!(contender, Contender::Relay) {
            relay_rate = rate;
        }
        let (p50, p99) = tokio.block_on(latency(
            &bootstrap,
            contender,
            &records,
            &format!("l{index}"),
            latency_seconds,
        ));
        println!(
            "| {} | {rate:.0} | {:.2}× | {:.1} ms | {:.1} ms |",
            contender.name(),
            rate / relay_rate,
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    drop(broker);
}

enum Contender {
    /// A bare rdkafka consume → produce loop with sluice's batching.
    Relay,
    /// sluice with one plugin, in this process: the plugin and the lane's consumers.
    Sluice(&'static str, usize),
}

impl Contender {
    fn name(&self) -> String {
        match self {
            Contender::Relay => "bare rdkafka relay".to_owned(),
            Contender::Sluice(plugin, 1) => format!("sluice({plugin})"),
            Contender::Sluice(plugin, consumers) => {
                format!("sluice({plugin}), {consumers} consumers in its lane")
            }
        }
    }

    fn output_topic(&self, input: &str) -> String {
        match self {
            Contender::Relay => format!("relay.{input}"),
            Contender::Sluice("passthrough", _) => format!("passthrough.{input}"),
            Contender::Sluice(..) => format!("cdm.{input}"),
        }
    }

    /// Runs the contender from `input` to its output topic until `stop` resolves;
    /// `linger` and `producer_linger_ms` trade latency for batching, and
    /// `fetch_wait_ms` is the consumer's `fetch.wait.max.ms`.
    fn spawn(
        &self,
        bootstrap: &str,
        input: &str,
        delivery: Delivery,
        linger: Duration,
        producer_linger_ms: &str,
        fetch_wait_ms: &str,
    ) -> (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        let output = self.output_topic(input);
        let handle = match self {
            Contender::Relay => tokio::spawn(relay(
                bootstrap.to_owned(),
                input.to_owned(),
                output,
                linger,
                producer_linger_ms.to_owned(),
                fetch_wait_ms.to_owned(),
                stopped,
            )),
            Contender::Sluice(plugin, consumers) => {
                let component = match *plugin {
                    "passthrough" => components::PASSTHROUGH,
                    _ => components::CUSTOMERS_CDM,
                };
                let mut config_values = Vec::new();
                if *plugin == "customers-cdm" {
                    config_values.push(("topic".to_owned(), output.clone()));
                }
                let config = Config {
                    source: SourceConfig::Kafka(KafkaSourceSettings {
                        topics: vec![input.to_owned()],
                        properties: vec![
                            ("bootstrap.servers".into(), bootstrap.to_owned()),
                            ("group.id".into(), format!("sluice-{input}")),
                            ("auto.offset.reset".into(), "earliest".into()),
                            ("fetch.wait.max.ms".into(), fetch_wait_ms.to_owned()),
                        ],
                        linger,
                        consumers: *consumers,
                        batch_bytes: sluice::config::DEFAULT_KAFKA_BATCH_BYTES,
                    }),
                    sink: SinkConfig::Kafka(KafkaSinkSettings {
                        properties: vec![
                            ("bootstrap.servers".into(), bootstrap.to_owned()),
                            ("linger.ms".into(), producer_linger_ms.to_owned()),
                        ],
                    }),
                    pipeline: PipelineSettings {
                        batch_size: BATCH,
                        ..PipelineSettings::default()
                    },
                    delivery,
                    isolation: Default::default(),
                    instance: Some("bench".to_owned()),
                    runtime: RuntimeOptions::default(),
                    plugins: vec![sluice::config::PluginConfig {
                        spec: PluginSpec {
                            name: (*plugin).to_owned(),
                            version: "1.0.0".to_owned(),
                            config: config_values,
                            limits: Default::default(),
                        },
                        team: None,
                        path: component.into(),
                        inputs: vec![TopicPattern::parse(input).expect("pattern")],
                        outputs: vec![TopicPattern::parse("*").expect("pattern")],
                        role: Default::default(),
                        parallelism: 1,
                    }],
                    plugins_dir: None,
                    admin_listen: None,
                    capture: None,
                };
                tokio::spawn(async move {
                    sluice::app::run(config, stopped)
                        .await
                        .expect("sluice runs");
                })
            }
        };
        (stop, handle)
    }
}

fn client(bootstrap: &str) -> ClientConfig {
    sluice_tests::kafka_client(bootstrap)
}

async fn create_topics(bootstrap: &str, topics: &[String]) {
    let topics: Vec<(&str, i32)> = topics.iter().map(|t| (t.as_str(), PARTITIONS)).collect();
    sluice_tests::create_topics(bootstrap, &topics).await;
}

/// The bare relay: consume a batch (first record, then up to BATCH within `linger`),
/// produce it, await every acknowledgement, commit; the loop sluice runs, minus sluice.
async fn relay(
    bootstrap: String,
    input: String,
    output: String,
    linger: Duration,
    producer_linger_ms: String,
    fetch_wait_ms: String,
    stopped: impl std::future::Future<Output = ()>,
) {
    let consumer: StreamConsumer = client(&bootstrap)
        .set("group.id", format!("relay-{input}"))
        .set("fetch.wait.max.ms", &fetch_wait_ms)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&input]).expect("subscribe");
    let producer: FutureProducer = client(&bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", &producer_linger_ms)
        .create()
        .expect("producer");
    tokio::pin!(stopped);
    loop {
        let first = tokio::select! {
            () = &mut stopped => return,
            message = consumer.recv() => message.expect("consume").detach(),
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(message) => batch.push(message.expect("consume").detach()),
                Err(_) => break,
            }
        }
        let mut deliveries = Vec::with_capacity(batch.len());
        let mut positions = TopicPartitionList::new();
        for message in &batch {
            let mut record = FutureRecord::<[u8], [u8]>::to(&output);
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            let delivery = loop {
                match producer.send_result(record) {
                    Ok(delivery) => break delivery,
                    Err((_, returned)) => {
                        record = returned;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            };
            deliveries.push(delivery);
            let _ = positions.add_partition_offset(
                message.topic(),
                message.partition(),
                Offset::Offset(message.offset() + 1),
            );
        }
        for delivery in deliveries {
            delivery.await.expect("delivered").expect("acknowledged");
        }
        consumer
            .commit(&positions, CommitMode::Async)
            .expect("commit");
    }
}

/// Produces `records` to `topic`, keyed as given, as fast as the producer takes them.
async fn produce_all(bootstrap: &str, topic: &str, records: &[RawRecord]) {
    let producer: FutureProducer = client(bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut deliveries = Vec::with_capacity(records.len());
    for record in records {
        let mut message = FutureRecord::<[u8], [u8]>::to(topic);
        if let Some(key) = &record.key {
            message = message.key(key);
        }
        if let Some(value) = &record.value {
            message = message.payload(value);
        }
        loop {
            match producer.send_result(message) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((_, returned)) => {
                    message = returned;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    for delivery in deliveries {
        delivery.await.expect("delivered").expect("acknowledged");
    }
}

/// Events per second of `contender` over `records` pre-produced to `<prefix>.in`.
async fn throughput(
    bootstrap: &str,
    contender: &Contender,
    records: &[RawRecord],
    prefix: &str,
    delivery: Delivery,
    create: bool,
) -> f64 {
    let input = format!("{prefix}.in");
    let output = contender.output_topic(&input);
    if create {
        create_topics(bootstrap, &[input.clone(), output.clone()]).await;
    }
    produce_all(bootstrap, &input, records).await;
    let counter = reader(bootstrap, &output, Offset::Beginning);
    let (stop, handle) = contender.spawn(
        bootstrap,
        &input,
        delivery,
        Duration::from_millis(20),
        "5",
        "500",
    );
    // The clock runs from the first output record to the last, so the time the
    // contender takes to join its consumer group (seconds on tansu) is not counted.
    let mut count = 0;
    let mut first = None;
    let limit = tokio::time::Instant::now() + Duration::from_secs(600);
    while count < records.len() {
        let message = tokio::time::timeout_at(limit, counter.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{}: only {count} of {} records after 10 minutes",
                    contender.name(),
                    records.len()
                )
            })
            .expect("count");
        drop(message);
        count += 1;
        first.get_or_insert_with(Instant::now);
    }
    let seconds = first.expect("records arrived").elapsed().as_secs_f64();
    let _ = stop.send(());
    handle.await.expect("contender stops");
    (records.len() - 1) as f64 / seconds
}

/// A consumer of every partition of `topic` from `from`, outside any group (no join).
fn reader(bootstrap: &str, topic: &str, from: Offset) -> StreamConsumer {
    // `assign` joins no group; librdkafka still wants a group id.
    let consumer: StreamConsumer = client(bootstrap)
        .set("group.id", format!("reader-{topic}"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()
        .expect("reader");
    let mut partitions = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions
            .add_partition_offset(topic, partition, from)
            .expect("partition");
    }
    consumer.assign(&partitions).expect("assign");
    consumer
}

/// p50 and p99 of send → output received, at 10k events/s for `seconds`.
async fn latency(
    bootstrap: &str,
    contender: &Contender,
    records: &[RawRecord],
    prefix: &str,
    seconds: u64,
) -> (Duration, Duration) {
    const RATE: usize = 10_000;
    let input = format!("{prefix}.in");
    let output = contender.output_topic(&input);
    create_topics(bootstrap, &[input.clone(), output.clone()]).await;
    let (stop, handle) = contender.spawn(
        bootstrap,
        &input,
        Delivery::AtLeastOnce,
        Duration::from_millis(2),
        "1",
        "5",
    );
    let reader = reader(bootstrap, &output, Offset::End);
    let producer: FutureProducer = client(bootstrap)
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    // Let the contender join its group (tansu takes up to ~30 s) before the clock
    // matters: wait until a probe event sent to each partition comes out the other side
    // (with a consumer per partition, every one of them must have joined). The probes
    // are the last events, which the measurement does not send.
    let probes = &records[records.len() - PARTITIONS as usize..];
    warm_up(bootstrap, &input, &reader, probes).await;
    let total = RATE * seconds as usize;
    let sent = std::sync::Arc::new(std::sync::Mutex::new(HashMap::<i64, Instant>::new()));
    let sender = {
        let sent = std::sync::Arc::clone(&sent);
        let records: Vec<RawRecord> = records.iter().take(total).cloned().collect();
        let input = input.clone();
        tokio::spawn(async move {
            // 100 events every 10 ms.
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            for chunk in records.chunks(RATE / 100) {
                tick.tick().await;
                for record in chunk {
                    let key = record.key.as_deref().expect("key");
                    sent.lock()
                        .expect("lock")
                        .insert(id_of(key), Instant::now());
                    let message = FutureRecord::<[u8], [u8]>::to(&input)
                        .key(key)
                        .payload(record.value.as_deref().expect("value"));
                    let _ = producer.send_result(message);
                }
            }
            producer
        })
    };
    let mut latencies = Vec::with_capacity(total);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds + 30);
    while latencies.len() < total.min(records.len()) {
        let Ok(message) = tokio::time::timeout_at(deadline, reader.recv()).await else {
            break;
        };
        let message = message.expect("read");
        let id = id_of(message.key().expect("key"));
        if let Some(at) = sent.lock().expect("lock").get(&id) {
            latencies.push(at.elapsed());
        }
    }
    let _producer = sender.await.expect("sender");
    let _ = stop.send(());
    handle.await.expect("contender stops");
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (at(0.50), at(0.99))
}

/// Sends probe `i` to partition `i` until the output of every probe has arrived through
/// `reader` (told apart by their ids), then drains what else of the warm-up arrives.
async fn warm_up(bootstrap: &str, input: &str, reader: &StreamConsumer, probes: &[RawRecord]) {
    let producer: FutureProducer = client(bootstrap).create().expect("producer");
    let started = Instant::now();
    let mut waiting: HashMap<i64, i32> = probes
        .iter()
        .zip(0..)
        .map(|(probe, partition)| (id_of(probe.key.as_deref().expect("key")), partition))
        .collect();
    while !waiting.is_empty() {
        for probe in probes {
            let key = probe.key.as_deref().expect("key");
            let Some(&partition) = waiting.get(&id_of(key)) else {
                continue;
            };
            let message = FutureRecord::<[u8], [u8]>::to(input)
                .partition(partition)
                .key(key)
                .payload(probe.value.as_deref().expect("value"));
            let _ = producer.send(message, Duration::from_secs(5)).await;
        }
        let round = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Ok(message)) = tokio::time::timeout_at(round, reader.recv()).await {
            if let Some(key) = message.key() {
                waiting.remove(&id_of(key));
            }
            if waiting.is_empty() {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the contender never started on partitions {:?}",
            waiting.values().collect::<Vec<_>>()
        );
    }
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), reader.recv()).await {}
}

/// The customer id of a key: `{"id": n}` (Debezium) or `{"customerId": n}` (the CDM
/// record).
fn id_of(key: &[u8]) -> i64 {
    let key: serde_json::Value = serde_json::from_slice(key).expect("JSON key");
    key.get("id")
        .or_else(|| key.get("customerId"))
        .and_then(serde_json::Value::as_i64)
        .unwrap_or_else(|| panic!("no customer id in key {key}"))
}
