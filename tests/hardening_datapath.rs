//! Hardening of the data path, through the real `sluice` binary: an output topic Kafka
//! refuses costs one event, a lane whose sink fails for good stops alone, an input line
//! that cannot be read costs only itself, and a partial batch leaves `linger` after its
//! first record.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_tests::{Broker, components, free_port, http_get as get, sluice_bin};

use crate::support::create_event;

/// Starts `sluice run` on a configuration file written to `dir`.
fn spawn_sluice(dir: &Path, config: &str, stdin: Stdio, stdout: Stdio) -> Child {
    let path = dir.join("sluice.toml");
    std::fs::write(&path, config).expect("write config");
    Command::new(sluice_bin())
        .args(["run", "--config"])
        .arg(&path)
        .env("SLUICE_LOG", "info")
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice starts")
}

const GOOD_EVENTS: usize = 2000;

#[test]
fn invalid_output_topics_dead_letter_their_events_and_a_failed_lane_stops_alone() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap.clone();
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(sluice_tests::create_topics(
        &bootstrap,
        &[
            ("good.in", 1),
            ("hostile.in", 1),
            ("broken.in", 1),
            ("out", 1),
            ("sluice.dlq", 1),
        ],
    ));
    tokio.block_on(async {
        let producer: FutureProducer = sluice_tests::kafka_client(&bootstrap)
            .create()
            .expect("producer");
        let mut records: Vec<(&str, String, String)> = Vec::new();
        let mut send = |topic: &'static str, id: usize, after: serde_json::Value| {
            let line: serde_json::Value = serde_json::from_str(&create_event(after)).expect("JSON");
            records.push((
                topic,
                format!(r#"{{"id":{id}}}"#),
                line["value"].to_string(),
            ));
        };
        for id in 0..GOOD_EVENTS {
            send("good.in", id, serde_json::json!({ "id": id }));
        }
        send("hostile.in", 1, serde_json::json!({ "id": 1 }));
        send(
            "hostile.in",
            2,
            serde_json::json!({ "id": 2, "write_to": "" }),
        );
        send(
            "hostile.in",
            3,
            serde_json::json!({ "id": 3, "write_to_len": 100_000 }),
        );
        send(
            "hostile.in",
            4,
            serde_json::json!({ "id": 4, "write_to": ".." }),
        );
        send("hostile.in", 5, serde_json::json!({ "id": 5 }));
        // A 2 MiB record, allowed by the plugin's limit but over the producer's
        // message.max.bytes (1 MB): the sink refuses the batch for good.
        send(
            "broken.in",
            1,
            serde_json::json!({ "id": 1, "huge_mib": 2 }),
        );
        let sends = records.iter().map(|(topic, key, value)| {
            producer.send(
                FutureRecord::to(topic).key(key).payload(value),
                Duration::from_secs(30),
            )
        });
        for sent in futures::future::join_all(sends).await {
            sent.expect("produced");
        }
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let admin = free_port();
    let plugin = |name: &str, input: &str, outputs: &str, limits: &str| {
        format!(
            "[[plugin]]\nname = \"{name}\"\npath = {path:?}\ninputs = [\"{input}\"]\noutputs = [{outputs}]\n{limits}\n",
            path = components::POISON,
        )
    };
    let config = format!(
        r#"[source]
type = "kafka"
topics = ["good.in", "hostile.in", "broken.in"]
properties = {{ "bootstrap.servers" = "{bootstrap}", "group.id" = "hardening", "auto.offset.reset" = "earliest" }}

[sink]
type = "kafka"
properties = {{ "bootstrap.servers" = "{bootstrap}" }}

[admin]
listen = "127.0.0.1:{admin}"

[runtime]
plugin_memory = "1GiB"

{good}
{hostile}
{broken}
"#,
        good = plugin("good", "good.in", "\"out\"", ""),
        hostile = plugin("hostile", "hostile.in", "\"*\"", ""),
        broken = plugin(
            "broken",
            "broken.in",
            "\"*\"",
            "[plugin.limits]\nmax_record_bytes = \"8MiB\""
        ),
    );
    let mut child = spawn_sluice(dir.path(), &config, Stdio::null(), Stdio::null());
    let stderr = child.stderr.take().expect("stderr");
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });

    let (out, dead) = tokio.block_on(async {
        let consumer: StreamConsumer = sluice_tests::kafka_client(&bootstrap)
            .set("group.id", "hardening-reader")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        consumer
            .subscribe(&["out", "sluice.dlq"])
            .expect("subscribe");
        let mut out = Vec::new();
        let mut dead = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
        // Every good event, the hostile plugin's two good events and its three bad ones.
        while out.len() < GOOD_EVENTS + 2 || dead.len() < 3 {
            let message = tokio::time::timeout_at(deadline, consumer.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "out: {} of {}, dead letters: {dead:?}",
                        out.len(),
                        GOOD_EVENTS + 2
                    )
                })
                .expect("consume");
            let header = |name: &str| {
                message.headers().and_then(|headers| {
                    headers
                        .iter()
                        .find(|h| h.key == name)
                        .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
                })
            };
            if message.topic() == "out" {
                out.push((
                    header("sluice.plugin").expect("lineage"),
                    String::from_utf8_lossy(message.key().expect("key")).into_owned(),
                ));
            } else {
                dead.push((
                    header("sluice.dlq.stage").expect("stage"),
                    header("sluice.dlq.reason").expect("reason"),
                    header("sluice.source.offset").expect("offset"),
                ));
            }
        }
        (out, dead)
    });

    // The broken lane stopped alone: /ready and the metric name it.
    let mut ready = None;
    for _ in 0..100 {
        ready = get(admin, "/ready");
        if ready
            .as_ref()
            .is_some_and(|(_, body)| body.contains("broken"))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = ready.expect("admin answers");
    let (_, metrics) = get(admin, "/metrics").expect("metrics");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let exit = child.wait().expect("wait");
    let log = log.join().expect("log reader");

    let good = out.iter().filter(|(plugin, _)| plugin == "good").count();
    assert_eq!(
        good, GOOD_EVENTS,
        "the other team's lane published every event"
    );
    let mut hostile: Vec<&str> = out
        .iter()
        .filter(|(plugin, _)| plugin == "hostile")
        .map(|(_, key)| key.as_str())
        .collect();
    hostile.sort_unstable();
    assert_eq!(
        hostile,
        ["1", "5"],
        "the hostile plugin's good events went on"
    );
    let mut dead = dead;
    dead.sort_by(|a, b| a.2.cmp(&b.2));
    assert!(dead.iter().all(|(stage, ..)| stage == "acl"), "{dead:?}");
    assert!(dead[0].1.contains("cannot be empty"), "{}", dead[0].1);
    assert!(
        dead[1].1.contains("over Kafka's limit of 249 characters"),
        "{}",
        dead[1].1
    );
    assert!(dead[1].1.len() <= 1024, "the reason header is bounded");
    assert!(dead[2].1.contains("reserved"), "{}", dead[2].1);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("lane broken stopped") && !body.contains("lane good"),
        "{body}"
    );
    assert!(
        metrics.contains("sluice_lane_failed{lane=\"broken\"} 1"),
        "{metrics}"
    );
    // Each lane's plugin holds its 64 MiB cap of the budget (the stopped lane's may
    // have been given back).
    assert!(
        metrics.contains("sluice_plugin_memory_budget_bytes 1073741824\n"),
        "{metrics}"
    );
    let reserved = metrics
        .lines()
        .find_map(|line| line.strip_prefix("sluice_plugin_memory_reserved_bytes "))
        .and_then(|value| value.parse::<u64>().ok());
    assert!(
        matches!(reserved, Some(bytes) if bytes == 2 * (64 << 20) || bytes == 3 * (64 << 20)),
        "{reserved:?}: {metrics}"
    );
    assert!(
        log.contains("lane stopped by an error; the other lanes keep running"),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "no colour codes in a piped log");
    assert_eq!(
        exit.code(),
        Some(1),
        "a run with a failed lane ends in error: {log}"
    );
}

#[test]
fn an_unreadable_input_line_costs_only_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.jsonl");
    let output = dir.path().join("output.jsonl");
    let mut text = Vec::new();
    for line in [
        create_event(serde_json::json!({ "id": 1 })).into_bytes(),
        b"{\"op\":\"c\",\"after\":{\"id\":2,\"name\":\"caf\xe9\"}}".to_vec(),
        br#""a valid JSON string""#.to_vec(),
        br#"{"key":{"id":4},"value":{"op":"c"},"headers":[["h","v"]]}"#.to_vec(),
        create_event(serde_json::json!({ "id": 5 })).into_bytes(),
    ] {
        text.extend_from_slice(&line);
        text.push(b'\n');
    }
    std::fs::write(&input, text).expect("write input");
    let config = format!(
        "[source]\ntype = \"file\"\npath = {input:?}\n\n[sink]\ntype = \"file\"\npath = {output:?}\n\n[[plugin]]\nname = \"poison\"\npath = {path:?}\ninputs = [\"*\"]\noutputs = [\"out\"]\n",
        path = components::POISON,
    );
    let child = spawn_sluice(dir.path(), &config, Stdio::null(), Stdio::null());
    let result = child.wait_with_output().expect("sluice runs");
    let log = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "the run goes on: {log}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .expect("output")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    let published: Vec<String> = lines
        .iter()
        .filter(|line| line["topic"] == "out")
        .map(|line| line["key"].to_string())
        .collect();
    assert_eq!(
        published,
        ["1", "5"],
        "the lines around the bad ones: {lines:?}"
    );
    let dead: Vec<(String, String)> = lines
        .iter()
        .filter(|line| line["topic"] == "sluice.dlq")
        .map(|line| {
            (
                crate::support::header(line, "sluice.source.offset").expect("offset"),
                crate::support::header(line, "sluice.dlq.reason").expect("reason"),
            )
        })
        .collect();
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert_eq!(dead[0].0, "1", "the line number is the position");
    assert!(dead[0].1.contains("not valid UTF-8"), "{}", dead[0].1);
    assert_eq!(
        dead[1].1,
        "expected a JSON object (a Debezium envelope), found a string"
    );
    assert!(
        dead[2].1.contains("`headers` that are not an object"),
        "{}",
        dead[2].1
    );
}

#[test]
fn a_partial_batch_leaves_linger_after_its_first_record_on_a_slow_stdin() {
    const LINES: usize = 40;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[source]\ntype = \"file\"\n\n[sink]\ntype = \"file\"\n\n[pipeline]\nbatch_size = 256\n\n[[plugin]]\nname = \"poison\"\npath = {path:?}\ninputs = [\"*\"]\noutputs = [\"out\"]\n",
        path = components::POISON,
    );
    let mut child = spawn_sluice(dir.path(), &config, Stdio::piped(), Stdio::piped());
    let stdout = child.stdout.take().expect("stdout");
    let (first_output, seen) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut count = 0;
        for _ in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if count == 0 {
                let _ = first_output.send(());
            }
            count += 1;
        }
        count
    });
    // Write only once the pipeline runs, so plugin compilation is not counted.
    let stderr = child.stderr.take().expect("stderr");
    let (running, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("lane starting") {
                let _ = running.send(());
            }
        }
    });
    started
        .recv_timeout(Duration::from_secs(120))
        .expect("the pipeline starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut written = 0;
    // One event every 45 ms, less than the 50 ms linger: with a linger restarted on
    // every line nothing comes out before the writer stops.
    while written < LINES {
        let line = create_event(serde_json::json!({ "id": written }));
        writeln!(stdin, "{line}").expect("write");
        stdin.flush().expect("flush");
        written += 1;
        if seen.recv_timeout(Duration::from_millis(45)).is_ok() {
            break;
        }
    }
    drop(stdin);
    let total = reader.join().expect("reader");
    let status = child.wait().expect("wait");
    assert!(status.success());
    assert_eq!(total, written, "every event written is published");
    assert!(
        written < LINES,
        "the first output came only after all {LINES} lines were written"
    );
}
