//! Per-event isolation: a rejection, a trap (panic), or an output to a forbidden topic
//! affects only the event that caused it; every other event of the batch is published.

use serde_json::{Value, json};
use sluice_pipeline::pipeline::PipelineStats;
use sluice_runtime::PluginLimits;
use sluice_tests::components;

use crate::support::{config, create_event, header, plugin, run, write_lines};

/// Runs `poison` (input `in`, output `out`, its limits as `limits` leaves them) over a
/// create event per row of `rows`, in batches of `batch_size`: the output lines as JSON,
/// and the counters.
fn run_poison(
    rows: &[Value],
    batch_size: usize,
    limits: impl FnOnce(&mut PluginLimits),
) -> (Vec<Value>, PipelineStats) {
    run_poison_to(&["out"], rows, batch_size, limits)
}

/// [`run_poison`] with `outputs` as the plugin's allowed outputs.
fn run_poison_to(
    outputs: &[&str],
    rows: &[Value],
    batch_size: usize,
    limits: impl FnOnce(&mut PluginLimits),
) -> (Vec<Value>, PipelineStats) {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_lines(
        dir.path(),
        "in.jsonl",
        &rows.iter().cloned().map(create_event).collect::<Vec<_>>(),
    );
    let output = dir.path().join("out.jsonl");
    let mut poison = plugin("poison", components::POISON, &["in"], outputs, &[]);
    limits(&mut poison.spec.limits);
    let (lines, stats) = run(config(&input, &output, vec![poison], batch_size));
    let lines = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    (lines, stats)
}

#[test]
fn one_bad_event_costs_only_itself() {
    let rows = [
        json!({"id": 1}),
        json!({"id": 2, "reject": "customer 2 is on hold"}),
        json!({"id": 3}),
        json!({"id": 4, "panic": true}),
        json!({"id": 5}),
        json!({"id": 6, "forbidden": true}),
        json!({"id": 7}),
        json!({"id": 8, "panic": true}),
    ];
    // One batch holds all eight events, so the traps happen mid-batch.
    let (lines, stats) = run_poison(&rows, 64, |_| {});
    let summary: Vec<(String, Value)> = lines
        .iter()
        .map(|l| {
            (
                l["topic"].as_str().unwrap_or("").to_owned(),
                l["key"].clone(),
            )
        })
        .collect();
    let expected: Vec<(String, Value)> = [
        ("out", json!(1)),
        ("sluice.dlq", json!({"id": 2})),
        ("out", json!(3)),
        ("sluice.dlq", json!({"id": 4})),
        ("out", json!(5)),
        ("sluice.dlq", json!({"id": 6})),
        ("out", json!(7)),
        ("sluice.dlq", json!({"id": 8})),
    ]
    .into_iter()
    .map(|(topic, key)| (topic.to_owned(), key))
    .collect();
    assert_eq!(summary, expected, "every good event is published, in order");

    assert_eq!(
        header(&lines[1], "sluice.dlq.stage").as_deref(),
        Some("rejected")
    );
    assert_eq!(
        header(&lines[1], "sluice.dlq.reason").as_deref(),
        Some("customer 2 is on hold")
    );
    assert_eq!(
        header(&lines[1], "sluice.dlq.code").as_deref(),
        Some("asked")
    );
    assert_eq!(
        header(&lines[3], "sluice.dlq.stage").as_deref(),
        Some("trapped")
    );
    let trap_reason = header(&lines[3], "sluice.dlq.reason").expect("reason");
    assert!(
        trap_reason.contains("poison event 4"),
        "the panic message names the cause: {trap_reason}"
    );
    assert_eq!(
        header(&lines[5], "sluice.dlq.stage").as_deref(),
        Some("acl")
    );
    assert!(
        header(&lines[5], "sluice.dlq.reason")
            .expect("reason")
            .contains("\"secret.topic\"")
    );
    for dead in [&lines[1], &lines[3], &lines[5], &lines[7]] {
        assert_eq!(
            dead["value"]["op"], "c",
            "the dead letter carries the original event"
        );
        assert_eq!(header(dead, "sluice.plugin").as_deref(), Some("poison"));
        assert!(header(dead, "sluice.source.offset").is_some());
    }
    assert_eq!(
        header(&lines[0], "sluice.source.offset").as_deref(),
        Some("0"),
        "lineage headers on outputs"
    );
    assert_eq!(stats.rejected, 1);
    assert_eq!(stats.trapped, 2);
    assert_eq!(stats.output_violations, 1);
    assert_eq!(stats.dead_lettered, 4);
}

#[test]
fn malformed_records_go_to_the_dead_letter_topic_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = vec![
        create_event(json!({"id": 1})),
        "this is not json".to_owned(),
        r#"{"key":{"id":9},"value":{"op":"c","source":{"table":"t"}}}"#.to_owned(),
        create_event(json!({"id": 2})),
    ];
    let input = write_lines(dir.path(), "in.jsonl", &lines);
    let output = dir.path().join("out.jsonl");
    let poison = plugin("poison", components::POISON, &["*"], &["out"], &[]);
    let (out, stats) = run(config(&input, &output, vec![poison], 16));
    let out: Vec<Value> = out
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(out.len(), 4);
    assert_eq!(out[1]["topic"], "sluice.dlq");
    assert_eq!(
        out[1]["value"], "this is not json",
        "the original bytes are kept"
    );
    assert!(
        header(&out[1], "sluice.dlq.reason")
            .expect("reason")
            .starts_with("value is not valid JSON")
    );
    assert_eq!(
        header(&out[1], "sluice.dlq.stage").as_deref(),
        Some("decode")
    );
    assert!(
        header(&out[2], "sluice.dlq.reason")
            .expect("reason")
            .contains("without an `after` row")
    );
    assert_eq!(
        out[3]["key"],
        json!(2),
        "the stream goes on after malformed records"
    );
    assert_eq!(stats.malformed, 2);
}

#[test]
fn a_plugin_that_refuses_its_config_is_not_started_and_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_lines(dir.path(), "in.jsonl", &[create_event(json!({"id": 1}))]);
    let output = dir.path().join("out.jsonl");
    let cdm = plugin(
        "customers-cdm",
        components::CUSTOMERS_CDM,
        &["*"],
        &["cdm.customer"],
        &[("decimal.handling.mode", "bogus")],
    );
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    let error = runtime
        .block_on(sluice::app::run(
            config(&input, &output, vec![cdm], 16),
            std::future::pending(),
        ))
        .expect_err("init refuses the config");
    let message = error.to_string();
    assert!(
        message.contains("plugin customers-cdm@0.1.0: init refused its configuration"),
        "{message}"
    );
    assert!(message.contains("\"bogus\""), "{message}");
}

#[test]
fn files_that_are_not_components_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let truncated = dir.path().join("truncated.wasm");
    let bytes = std::fs::read(components::PASSTHROUGH).expect("component");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let text = dir.path().join("text.wasm");
    std::fs::write(&text, "hello").expect("write");
    let runtime = sluice_runtime::Runtime::new(Default::default()).expect("runtime");
    for (path, expected) in [
        (&truncated, "not a WebAssembly component"),
        (&text, "too short"),
    ] {
        let spec = sluice_runtime::PluginSpec {
            name: "x".into(),
            version: "1".into(),
            config: vec![],
            limits: Default::default(),
        };
        let error = runtime.load_file(spec, path).expect_err("refused");
        let message = error.to_string();
        assert!(
            message.starts_with(&path.display().to_string()),
            "{message}"
        );
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn a_runaway_loop_and_a_memory_bomb_trap_only_their_events() {
    let rows = [
        json!({"id": 1}),
        json!({"id": 2, "spin": true}),
        json!({"id": 3, "grow_mib": 4}),
        json!({"id": 4, "grow_mib": 256}),
        json!({"id": 5}),
    ];
    let (lines, stats) = run_poison(&rows, 16, |limits| {
        limits.memory_bytes = 32 << 20;
        limits.batch_deadline = std::time::Duration::from_millis(300);
    });
    let topics: Vec<&str> = lines
        .iter()
        .map(|l| l["topic"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(topics, ["out", "sluice.dlq", "out", "sluice.dlq", "out"]);
    let spin = header(&lines[1], "sluice.dlq.reason").expect("reason");
    assert!(spin.contains("CPU deadline exceeded"), "{spin}");
    let bomb = header(&lines[3], "sluice.dlq.reason").expect("reason");
    assert!(
        bomb.contains("memory cap exceeded") && bomb.contains("33554432"),
        "{bomb}"
    );
    assert_eq!(stats.trapped, 2);
}

#[test]
fn a_plugin_sees_no_environment_files_network_or_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_lines(
        dir.path(),
        "in.jsonl",
        &[create_event(json!({"id": 1, "sandbox": true}))],
    );
    let output = dir.path().join("out.jsonl");
    let poison = plugin("poison", components::POISON, &["in"], &["out"], &[]);
    let (lines, _) = run(config(&input, &output, vec![poison], 16));
    let report: Value = serde_json::from_str(&lines[0]).expect("JSON line");
    let report = &report["value"];
    assert_eq!(report["env"], 0, "no environment variables: {report}");
    assert_eq!(report["args"], 0, "no arguments: {report}");
    for denied in ["read_root", "read_etc_passwd", "write_tmp", "tcp_connect"] {
        let outcome = report[denied].as_str().expect("text");
        assert_ne!(outcome, "allowed", "{denied} must be denied: {report}");
    }
    assert!(!std::path::Path::new("/tmp/sluice-escape").exists());
    assert_eq!(
        report["wall_clock_ns"], 0,
        "the wall clock is stopped at the epoch: {report}"
    );
    assert_eq!(
        report["monotonic_moved"], 0,
        "the monotonic clock does not move: {report}"
    );
}

#[test]
fn deep_recursion_fan_out_bombs_and_huge_records_cost_only_their_events() {
    let rows = [
        json!({"id": 1, "recurse": 100}),
        json!({"id": 2, "recurse": 10_000_000}),
        json!({"id": 3, "fan_out": 3}),
        json!({"id": 4, "fan_out": 5_000}),
        json!({"id": 5, "huge_mib": 4}),
        json!({"id": 6}),
        // 600,000 empty headers: no bytes of their own, but 1.2 MB of Kafka framing (+ the key).
        json!({"id": 7, "header_flood": 600_000}),
    ];
    let (lines, stats) = run_poison(&rows, 16, |_| {});
    let topics: Vec<&str> = lines
        .iter()
        .map(|l| l["topic"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        topics,
        [
            "out",
            "sluice.dlq",
            "out",
            "out",
            "out",
            "sluice.dlq",
            "sluice.dlq",
            "out",
            "sluice.dlq"
        ]
    );
    let overflow = header(&lines[1], "sluice.dlq.reason").expect("reason");
    assert!(overflow.contains("stack overflow"), "{overflow}");
    let fan_out = header(&lines[5], "sluice.dlq.reason").expect("reason");
    assert!(
        fan_out.contains("5000 records for one event, over its limit of 1000"),
        "{fan_out}"
    );
    let huge = header(&lines[6], "sluice.dlq.reason").expect("reason");
    assert!(huge.contains("over its limit of 1048576 bytes"), "{huge}");
    assert_eq!(
        header(&lines[5], "sluice.dlq.stage").as_deref(),
        Some("limit")
    );
    assert_eq!(lines[7]["key"], json!(6), "the stream goes on");
    let flood = header(&lines[8], "sluice.dlq.reason").expect("reason");
    assert!(
        flood.contains("a record of 1200001 bytes")
            && flood.contains("over its limit of 1048576 bytes"),
        "{flood}"
    );
    assert_eq!(
        header(&lines[8], "sluice.dlq.stage").as_deref(),
        Some("limit")
    );
    assert_eq!(stats.trapped, 1);
}

/// Small records and headers cost the host several times their bytes in the plugin's
/// buffer: the records one batch makes the host hold count against the plugin's memory
/// cap, so the events that would pass it go to the dead-letter topic, alone. Also when
/// a trap in the batch has the host retry its events one call at a time: the calls
/// share the batch's count, so trapping does not multiply the budget.
#[test]
fn output_that_would_take_more_host_memory_than_the_plugins_cap_costs_only_its_events() {
    for trap_in_batch in [false, true] {
        // 20 records of 1,000 empty headers: ~160 KB in the plugin's buffer, ~0.96 MB as
        // host values. Eight of them fit an 8 MiB cap, the ninth would pass it.
        let mut rows: Vec<Value> = (1..=10)
            .map(|id| json!({"id": id, "header_spread": [20, 1000]}))
            .collect();
        if trap_in_batch {
            rows.push(json!({"id": 11, "panic": true}));
        }
        rows.push(json!({"id": 12}));
        let (lines, stats) = run_poison(&rows, 16, |limits| limits.memory_bytes = 8 << 20);
        let trapped = usize::from(trap_in_batch);
        assert_eq!(
            lines.len(),
            163 + trapped,
            "8 events' 160 records, 2 dead letters (and the panic's), a record; trap in batch: {trap_in_batch}"
        );
        assert!(lines[..160].iter().all(|line| line["topic"] == "out"));
        // The plugin's 1,000 and the 6 lineage headers the host adds.
        assert_eq!(lines[0]["headers"].as_array().map(Vec::len), Some(1006));
        for letter in &lines[160..162] {
            assert_eq!(letter["topic"], "sluice.dlq");
            let reason = header(letter, "sluice.dlq.reason").expect("reason");
            assert!(
                reason.contains("bytes of host memory")
                    && reason.contains("over its memory cap of 8388608 bytes (limits.memory)"),
                "{reason}"
            );
            assert_eq!(header(letter, "sluice.dlq.stage").as_deref(), Some("limit"));
        }
        if trap_in_batch {
            assert_eq!(
                header(&lines[162], "sluice.dlq.stage").as_deref(),
                Some("trapped")
            );
        }
        let last = &lines[162 + trapped];
        assert_eq!(last["topic"], "out");
        assert_eq!(last["key"], json!(12), "the stream goes on");
        assert_eq!(
            (stats.trapped, stats.output_violations),
            (trapped as u64, 2)
        );
    }
}

#[test]
fn a_plugin_that_loops_on_every_event_costs_about_one_deadline_per_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows: Vec<String> = (0..16)
        .map(|id| create_event(json!({"id": id, "spin": true})))
        .collect();
    let input = write_lines(dir.path(), "in.jsonl", &rows);
    let output = dir.path().join("out.jsonl");
    let mut poison = plugin("poison", components::POISON, &["in"], &["out"], &[]);
    poison.spec.limits.batch_deadline = std::time::Duration::from_millis(500);
    let started = std::time::Instant::now();
    let (lines, stats) = run(config(&input, &output, vec![poison], 16));
    // Without per-event shares of the deadline this batch would take 16 × 500 ms.
    println!(
        "16 looping events in one batch took {:?}",
        started.elapsed()
    );
    assert_eq!(lines.len(), 16);
    assert_eq!(stats.trapped, 16, "every event is dead-lettered");
    for line in &lines {
        let line: Value = serde_json::from_str(line).expect("JSON");
        assert!(
            header(&line, "sluice.dlq.reason")
                .expect("reason")
                .contains("CPU deadline exceeded")
        );
    }
}

/// A plugin allowed a pattern writes to at most `limits.max_output_topics` distinct
/// topics: an event writing to one more goes to the dead-letter topic, and the topics
/// already written stay open to the events after it, across batches.
#[test]
fn a_plugin_writes_to_at_most_its_limit_of_distinct_topics() {
    let rows = [
        json!({"id": 1, "write_to": "t.a"}),
        json!({"id": 2, "write_to": "t.b"}),
        json!({"id": 3, "write_to": "t.c"}),
        json!({"id": 4, "write_to": "t.a"}),
        json!({"id": 5, "write_to": "t.b"}),
        json!({"id": 6, "write_to": "t.d"}),
    ];
    let (lines, stats) = run_poison_to(&["t.*"], &rows, 2, |limits| {
        limits.max_output_topics = 2;
    });
    let topics: Vec<&str> = lines
        .iter()
        .map(|l| l["topic"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        topics,
        ["t.a", "t.b", "sluice.dlq", "t.a", "t.b", "sluice.dlq"]
    );
    for refused in [&lines[2], &lines[5]] {
        assert_eq!(
            header(refused, "sluice.dlq.stage").as_deref(),
            Some("limit")
        );
        let reason = header(refused, "sluice.dlq.reason").expect("reason");
        assert!(
            reason.contains("written to 2 distinct topics already")
                && reason.contains("limits.max_output_topics"),
            "{reason}"
        );
    }
    assert!(
        header(&lines[2], "sluice.dlq.reason")
            .expect("reason")
            .contains("\"t.c\"")
    );
    assert_eq!(stats.output_violations, 2);
}
