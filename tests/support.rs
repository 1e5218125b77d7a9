//! Helpers shared by the end-to-end test modules.

use std::path::{Path, PathBuf};

use sluice::config::{Config, PluginConfig, SinkConfig, SourceConfig};
use sluice_core::topics::TopicPattern;
use sluice_kafka::connector::KafkaSinkSettings;
use sluice_pipeline::pipeline::{PipelineSettings, PipelineStats};
use sluice_pipeline::sink::file::FileSinkSettings;
use sluice_pipeline::source::file::FileSourceSettings;
use sluice_runtime::{PluginSpec, RuntimeOptions};

/// A sink that forwards every published record to the test as it is published.
pub struct ChannelSink(pub tokio::sync::mpsc::UnboundedSender<sluice_core::OutputRecord>);

impl sluice_core::sink::Sink for ChannelSink {
    async fn send(
        &mut self,
        records: Vec<sluice_core::OutputRecord>,
    ) -> Result<(), sluice_core::sink::SinkError> {
        for record in records {
            let _ = self.0.send(record);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), sluice_core::sink::SinkError> {
        Ok(())
    }
}

/// A plugin entry for [`config`].
pub fn plugin(
    name: &str,
    component: &str,
    inputs: &[&str],
    outputs: &[&str],
    settings: &[(&str, &str)],
) -> PluginConfig {
    PluginConfig {
        spec: PluginSpec {
            name: name.to_owned(),
            version: "0.1.0".to_owned(),
            config: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            limits: Default::default(),
        },
        team: None,
        path: PathBuf::from(component),
        inputs: inputs
            .iter()
            .map(|p| TopicPattern::parse(p).expect("valid pattern"))
            .collect(),
        outputs: outputs
            .iter()
            .map(|p| TopicPattern::parse(p).expect("valid pattern"))
            .collect(),
        role: Default::default(),
        parallelism: 1,
    }
}

/// A file-to-file configuration with the compile cache off (each test starts cold).
pub fn config(
    input: &Path,
    output: &Path,
    plugins: Vec<PluginConfig>,
    batch_size: usize,
) -> Config {
    Config {
        source: SourceConfig::File(FileSourceSettings {
            path: Some(input.to_owned()),
            topic: None,
        }),
        sink: SinkConfig::File(FileSinkSettings {
            path: Some(output.to_owned()),
        }),
        delivery: Default::default(),
        pipeline: PipelineSettings {
            batch_size,
            ..PipelineSettings::default()
        },
        isolation: Default::default(),
        instance: None,
        runtime: RuntimeOptions::default(),
        plugins,
        plugins_dir: None,
        admin_listen: None,
        capture: None,
    }
}

/// Runs `config` to the end of its input; returns the output lines and the counters.
pub fn run(config: Config) -> (Vec<String>, PipelineStats) {
    let SinkConfig::File(FileSinkSettings { path: Some(output) }) = config.sink.clone() else {
        panic!("tests write to a file")
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let stats = runtime
        .block_on(sluice::app::run(config, std::future::pending()))
        .expect("the pipeline runs");
    let text = std::fs::read_to_string(&output).expect("output written");
    (text.lines().map(str::to_owned).collect(), stats)
}

/// Writes `lines` to a file in `dir` and returns its path.
pub fn write_lines(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write test input");
    path
}

/// The value of header `name` in an output line, as text.
pub fn header(line: &serde_json::Value, name: &str) -> Option<String> {
    line["headers"]
        .as_array()?
        .iter()
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair[1].as_str().map(str::to_owned))
}

/// A bare Debezium create event of table `t` with the given `after` row.
pub fn create_event(after: serde_json::Value) -> String {
    serde_json::json!({
        "topic": "in",
        "key": {"id": after["id"]},
        "value": {
            "before": null,
            "after": after,
            "source": {"connector": "sqlserver", "name": "s", "db": "d", "schema": "dbo", "table": "t", "snapshot": "false"},
            "op": "c",
            "ts_ms": 1,
        }
    })
    .to_string()
}

/// [`create_event`]'s change event as a raw record at offset `id` of `in` partition 0,
/// as a source would read it.
pub fn create_record(id: i64) -> sluice_core::RawRecord {
    create_record_of(serde_json::json!({ "id": id }))
}

/// [`create_event`]'s change event of the row `after` as a raw record at offset
/// `after.id` of `in` partition 0, as a source would read it.
pub fn create_record_of(after: serde_json::Value) -> sluice_core::RawRecord {
    let id = after["id"].as_i64().unwrap_or(0);
    let line: serde_json::Value = serde_json::from_str(&create_event(after)).expect("JSON");
    sluice_core::RawRecord {
        timestamp: None,
        key: Some(line["key"].to_string().into_bytes()),
        value: Some(line["value"].to_string().into_bytes()),
        headers: Vec::new(),
        origin: sluice_core::Origin {
            topic: "in".to_owned(),
            partition: 0,
            offset: id,
        },
        unreadable: None,
    }
}

/// A route running the `stamp` plugin (`stamp = <stamp>`; see its source) from `in` to
/// `out` on a pool of `workers` plugin threads.
pub fn stamp_route(
    runtime: &sluice_runtime::Runtime,
    workers: usize,
    stamp: &str,
) -> sluice_pipeline::pipeline::Route {
    let config = plugin(
        "stamp",
        sluice_tests::components::STAMP,
        &["in"],
        &["out"],
        &[("stamp", stamp)],
    );
    let loaded = runtime.load_file(config.spec, &config.path).expect("load");
    let workers = (0..workers)
        .map(|_| sluice_runtime::PluginWorker::new(loaded.instantiate().expect("start")))
        .collect();
    let thread = sluice_runtime::PluginThread::spawn_pool(workers).expect("threads");
    sluice_pipeline::pipeline::Route::new(thread, config.inputs, config.outputs, config.role)
}

/// Compares output lines with a golden file; with `SLUICE_BLESS=1` rewrites it instead.
pub fn assert_golden(actual: &[String], golden: &Path) {
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(golden, actual.join("\n") + "\n").expect("bless golden file");
        return;
    }
    let expected = std::fs::read_to_string(golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with SLUICE_BLESS=1 to create it)",
            golden.display()
        )
    });
    let expected: Vec<String> = expected.lines().map(str::to_owned).collect();
    let differences = sluice::plugin_test::compare(actual, &expected);
    assert!(
        differences.is_empty(),
        "output differs from {}:\n{}",
        golden.display(),
        differences.join("\n")
    );
}

/// A Kafka-to-Kafka configuration on `bootstrap`: consumer group `group` reads `topic`
/// from the earliest offset through `plugin`, in batches of `batch_size`. Tests adjust
/// the rest (consumers, delivery, instance) on the result.
pub fn kafka_config(
    bootstrap: &str,
    group: &str,
    topic: &str,
    plugin: PluginConfig,
    batch_size: usize,
) -> Config {
    Config {
        source: SourceConfig::Kafka(sluice_kafka::source::KafkaSourceSettings {
            topics: vec![topic.to_owned()],
            // No `auto.offset.reset`: every test produces its events before sluice
            // starts, and a new group must read them by sluice's default (`earliest`).
            properties: vec![
                ("bootstrap.servers".into(), bootstrap.to_owned()),
                ("group.id".into(), group.to_owned()),
            ],
            linger: std::time::Duration::from_millis(20),
            consumers: 1,
            batch_bytes: sluice::config::DEFAULT_KAFKA_BATCH_BYTES,
        }),
        sink: SinkConfig::Kafka(KafkaSinkSettings {
            properties: vec![("bootstrap.servers".into(), bootstrap.to_owned())],
        }),
        delivery: Default::default(),
        pipeline: PipelineSettings {
            batch_size,
            ..PipelineSettings::default()
        },
        isolation: Default::default(),
        instance: None,
        runtime: RuntimeOptions::default(),
        plugins: vec![plugin],
        plugins_dir: None,
        admin_listen: None,
        capture: None,
    }
}

/// Reads `count` records from `topic` (from the start, in a group of its own) as the JSON
/// lines the file sink writes; panics if they do not all arrive within `limit`.
pub async fn read_json_lines(
    bootstrap: &str,
    topic: &str,
    count: usize,
    limit: std::time::Duration,
) -> Vec<String> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let consumer: StreamConsumer = sluice_tests::kafka_client(bootstrap)
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while lines.len() < count {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("{count} records on {topic} within {limit:?}"))
            .expect("consume");
        let raw = sluice_kafka::source::to_raw(&message);
        let record = sluice_core::OutputRecord {
            timestamp: None,
            topic: raw.origin.topic,
            key: raw.key,
            value: raw.value,
            headers: raw.headers,
        };
        lines.push(sluice_pipeline::sink::file::record_to_json_line(&record));
    }
    lines
}
