//! `sluice dlq replay` through the real binary on the test broker: a plugin dead-letters
//! some events, its fixed version is deployed, a dry run reports and publishes nothing,
//! a replay publishes every rejected event once (marked as replayed), and a second
//! replay publishes nothing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sluice_tests::{components, free_port, read_topic, sluice_bin};

use crate::safe_deploys::{
    broker_with, deploy, produce, read_exactly, rows_rejecting, start_sluice,
};

fn replay(config: &Path, extra: &[&str]) -> String {
    let output = Command::new(sluice_bin())
        .args(["dlq", "replay", "--config"])
        .arg(config)
        .args(["--plugin", "orders"])
        .args(extra)
        .env("SLUICE_LOG", "warn")
        .output()
        .expect("run sluice dlq replay");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn a_replay_after_a_fix_publishes_each_rejected_event_once() {
    let broker = broker_with(&["orders.in", "out", "sluice.dlq"]);
    let bootstrap = broker.bootstrap.clone();
    let rejected = [2i64, 5, 9];
    produce(
        &bootstrap,
        "orders.in",
        &rows_rejecting(20, &rejected, "price missing"),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins.d");
    let crm = plugins.join("crm");
    // Version 1 (`poison`) rejects the rows that ask; the fix (`stamp`) takes every row.
    deploy(
        &crm,
        "orders",
        components::POISON,
        "version = \"1.0.0\"\ninputs = [\"orders.in\"]\noutputs = [\"out\"]\n",
    );
    let sluice = start_sluice(dir.path(), &bootstrap, "orders.in", &plugins, free_port());
    let config = dir.path().join("sluice.toml");
    assert_eq!(read_exactly(&bootstrap, "out", 17).len(), 17);
    assert_eq!(read_exactly(&bootstrap, "sluice.dlq", 3).len(), 3);
    drop(sluice);

    deploy(
        &crm,
        "orders",
        components::STAMP,
        "version = \"1.0.1\"\ninputs = [\"orders.in\"]\noutputs = [\"out\"]\nconfig = { stamp = \"fixed\" }\n",
    );
    let dry = replay(&config, &["--dry-run"]);
    assert!(
        dry.contains("replayed 3, published 3, still rejected 0, other dead letters 0"),
        "{dry}"
    );
    assert_eq!(
        read_topic(&bootstrap, "out", Duration::from_secs(3), |r| r.len() > 17).len(),
        17,
        "a dry run publishes nothing"
    );

    let first = replay(&config, &[]);
    assert!(
        first.contains("replayed 3, published 3, still rejected 0"),
        "{first}"
    );
    let out = read_exactly(&bootstrap, "out", 20);
    assert_eq!(out.len(), 20, "every rejected event published once");
    let mut fixed: Vec<i64> = out
        .iter()
        .map(|(_, value)| {
            serde_json::from_slice::<Value>(value.as_deref().expect("value")).expect("JSON")
        })
        .filter(|value| value["stamp"] == "fixed")
        .map(|value| value["id"].as_i64().expect("id"))
        .collect();
    fixed.sort();
    assert_eq!(fixed, rejected, "the replayed events, by the fixed version");

    // Each replayed record says where in the dead-letter topic it came from, and keeps
    // the timestamp of the record it was made from (its dead letter kept it).
    let replayed = replayed_records(&bootstrap, "out", 20);
    let mut from: Vec<&str> = replayed.iter().map(|r| r.from.as_str()).collect();
    from.sort();
    assert_eq!(
        from,
        ["sluice.dlq/0/0", "sluice.dlq/0/1", "sluice.dlq/0/2"],
        "one record per dead letter, marked"
    );
    let input = replayed_records(&bootstrap, "orders.in", 20);
    for record in &replayed {
        let original = input
            .iter()
            .find(|r| Some(r.offset) == record.source_offset)
            .expect("the replayed record's input");
        assert!(record.timestamp.is_some());
        assert_eq!(
            record.timestamp, original.timestamp,
            "the record of offset {} replayed with its timestamp",
            original.offset
        );
    }

    let second = replay(&config, &[]);
    assert!(
        second.contains("replayed 0, published 0"),
        "a second replay finds nothing new: {second}"
    );
    assert_eq!(read_exactly(&bootstrap, "out", 20).len(), 20);

    // From an offset, in a group of its own: the dead letters again, at 1 and after.
    let again = replay(&config, &["--dry-run", "--since", "1", "--group", "audit"]);
    assert!(again.contains("replayed 2, published 2"), "{again}");
}

/// A record read back: its offset, timestamp, and `sluice.source.offset` and
/// `sluice.replayed.from` headers (empty when it has none).
struct ReadBack {
    offset: i64,
    timestamp: Option<i64>,
    source_offset: Option<i64>,
    from: String,
}

/// The first `count` records of `topic`; of `out`, only the replayed ones are kept.
fn replayed_records(bootstrap: &str, topic: &str, count: usize) -> Vec<ReadBack> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers;
    let consumer: BaseConsumer = sluice_tests::kafka_client(bootstrap)
        .set("group.id", format!("{topic}-read-back"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut found = Vec::new();
    let mut seen = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen < count && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            seen += 1;
            let header = |name: &str| {
                message.headers().and_then(|headers| {
                    headers
                        .iter()
                        .find(|header| header.key == name)
                        .map(|header| {
                            String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned()
                        })
                })
            };
            let from = header("sluice.replayed.from").unwrap_or_default();
            if topic != "out" || !from.is_empty() {
                found.push(ReadBack {
                    offset: message.offset(),
                    timestamp: message.timestamp().to_millis(),
                    source_offset: header("sluice.source.offset").and_then(|o| o.parse().ok()),
                    from,
                });
            }
        }
    }
    assert_eq!(seen, count, "{count} records on {topic}");
    found
}
