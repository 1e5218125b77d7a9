//! Samples in, expected records out: every example plugin over `samples/`, compared with
//! the golden files in `tests/golden/` (rewrite them with `SLUICE_BLESS=1` and review
//! the diff).

use serde_json::Value;
use sluice_tests::{components, repo_root, sample};

use crate::support::{assert_golden, config, header, plugin, run};

fn golden(name: &str) -> std::path::PathBuf {
    repo_root().join("tests").join("golden").join(name)
}

#[test]
fn customers_cdm_maps_the_customers_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cdm = || {
        plugin(
            "customers-cdm",
            components::CUSTOMERS_CDM,
            &["server1.testDB.dbo.customers"],
            &["cdm.customer"],
            &[],
        )
    };
    let (bare, stats) = run(config(
        &sample("customers.jsonl"),
        &dir.path().join("bare.jsonl"),
        vec![cdm()],
        4,
    ));
    assert_golden(&bare, &golden("customers-cdm.jsonl"));
    assert_eq!(stats.dead_lettered, 0);
    assert_eq!(
        stats.tombstones_skipped, 1,
        "the Debezium tombstone is not an event"
    );

    // Both Debezium JSON forms give the same canonical records (scales come from the
    // schema in one and from the default in the other).
    let (with_schema, _) = run(config(
        &sample("customers.schema.jsonl"),
        &dir.path().join("schema.jsonl"),
        vec![cdm()],
        4,
    ));
    assert_golden(&with_schema, &golden("customers-cdm.jsonl"));
}

#[test]
fn passthrough_republishes_every_event_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let passthrough = plugin(
        "passthrough",
        components::PASSTHROUGH,
        &["*"],
        &["passthrough.*"],
        &[],
    );
    let (lines, _) = run(config(
        &sample("customers.jsonl"),
        &dir.path().join("out.jsonl"),
        vec![passthrough],
        3,
    ));
    assert_golden(&lines, &golden("passthrough.jsonl"));

    // Byte for byte: each output value is exactly the input line's value.
    let input = std::fs::read_to_string(sample("customers.jsonl")).expect("sample");
    let inputs: Vec<Value> = input
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let events: Vec<&Value> = inputs
        .iter()
        .filter(|line| !line["value"].is_null())
        .collect();
    assert_eq!(lines.len(), events.len());
    for (line, event) in lines.iter().zip(events) {
        let output: Value = serde_json::from_str(line).expect("JSON");
        assert_eq!(output["value"], event["value"]);
        assert_eq!(output["key"], event["key"]);
        assert_eq!(
            output["topic"],
            format!("passthrough.{}", event["topic"].as_str().expect("topic"))
        );
    }
}

#[test]
fn route_by_table_fans_out_and_filters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let route = plugin(
        "route-by-table",
        components::ROUTE_BY_TABLE,
        &["server1.testDB.dbo.*"],
        &["cdm.*", "audit.changes"],
        &[
            ("drop", "audit_log"),
            ("route.orders", "cdm.orders,cdm.orders.priority"),
        ],
    );
    let (lines, stats) = run(config(
        &sample("inventory.jsonl"),
        &dir.path().join("out.jsonl"),
        vec![route],
        5,
    ));
    assert_golden(&lines, &golden("route-by-table.jsonl"));
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert!(
        parsed
            .iter()
            .all(|l| !l["topic"].as_str().unwrap_or("").contains("audit_log")),
        "audit_log is filtered out"
    );
    let order_topics = parsed.iter().filter(|l| l["topic"] == "cdm.orders").count();
    let priority_topics = parsed
        .iter()
        .filter(|l| l["topic"] == "cdm.orders.priority")
        .count();
    assert!(
        order_topics > 0 && order_topics == priority_topics,
        "orders fan out to two topics"
    );
    assert!(parsed.iter().all(|l| header(l, "sluice.op").is_some()));
    assert_eq!(stats.dead_lettered, 0);
}

/// The three `customers-cdm` implementations, by language.
fn customers_cdm_in_every_language() -> [(&'static str, &'static str); 3] {
    [
        ("rust", components::CUSTOMERS_CDM),
        ("javascript", components::CUSTOMERS_CDM_JS),
        ("python", components::CUSTOMERS_CDM_PY),
    ]
}

/// An output line without its `sluice.plugin.sha256` header, the one part that names the
/// component rather than what it produced.
fn without_component_hash(line: &str) -> String {
    let marker = r#"["sluice.plugin.sha256",""#;
    match line.find(marker) {
        Some(start) => {
            let end = line[start + marker.len()..]
                .find("\"]")
                .map(|i| start + marker.len() + i + 2)
                .expect("a closed header pair");
            let end = if line[end..].starts_with(',') {
                end + 1
            } else {
                end
            };
            format!("{}{}", &line[..start], &line[end..])
        }
        None => line.to_owned(),
    }
}

#[test]
fn customers_cdm_in_javascript_and_python_publishes_what_rust_does_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    for sample_name in ["customers.jsonl", "customers.schema.jsonl"] {
        let outputs = customers_cdm_in_every_language().map(|(language, component)| {
            let cdm = plugin(
                "customers-cdm",
                component,
                &["server1.testDB.dbo.customers"],
                &["cdm.customer"],
                &[],
            );
            let output = dir.path().join(format!("{language}.{sample_name}"));
            let mut settings = config(&sample(sample_name), &output, vec![cdm], 4);
            // The second sample reuses the first one's compiled components (the
            // interpreters take seconds to compile in a debug build).
            settings.runtime.cache_dir = Some(dir.path().join("compiled"));
            let (lines, stats) = run(settings);
            assert_golden(&lines, &golden("customers-cdm.jsonl"));
            assert_eq!(stats.dead_lettered, 0, "{language} over {sample_name}");
            let lines: Vec<String> = lines.iter().map(|l| without_component_hash(l)).collect();
            (language, lines)
        });
        let (_, rust) = &outputs[0];
        assert_eq!(rust.len(), 9);
        assert!(
            rust[0].contains(r#"["sluice.plugin","customers-cdm"]"#),
            "{}",
            rust[0]
        );
        for (language, lines) in &outputs[1..] {
            for (index, (line, expected)) in lines.iter().zip(rust).enumerate() {
                assert_eq!(
                    line,
                    expected,
                    "{language}, {sample_name} record {}",
                    index + 1
                );
            }
            assert_eq!(lines.len(), rust.len(), "{language} over {sample_name}");
        }
    }
}

#[test]
fn customers_cdm_rejects_the_same_events_for_the_same_reasons_in_every_language() {
    let dir = tempfile::tempdir().expect("tempdir");
    let row = |id: Value, credit_limit: Value| {
        serde_json::json!({"id": id, "first_name": "Ann", "last_name": "Lee", "email": "ann@example.com",
            "credit_limit": credit_limit, "birth_date": 1, "created_at": 2, "updated_at": 3,
            "customer_guid": "AB", "is_active": true})
    };
    let event = |op: &str, before: Value, after: Value| {
        serde_json::json!({"topic": "server1.testDB.dbo.customers", "key": {"id": 1}, "value": {
            "before": before, "after": after, "op": op, "ts_ms": 5,
            "source": {"connector": "sqlserver", "name": "server1", "db": "testDB", "schema": "dbo",
                       "table": "customers", "snapshot": "false", "ts_ms": 4}}})
        .to_string()
    };
    let lines = [
        event("c", Value::Null, row(1.into(), "not base64!".into())),
        event("c", Value::Null, row(2.into(), 12.5.into())),
        event(
            "c",
            Value::Null,
            row(3.into(), "////////////////////////".into()),
        ),
        event("c", Value::Null, row(4.into(), "".into())),
        event("c", Value::Null, row("x".into(), Value::Null)),
        event("u", Value::Null, row(8.into(), "AV+Q".into())),
    ]
    .map(|line| line.to_string());
    let input = crate::support::write_lines(dir.path(), "bad.jsonl", &lines);
    let outputs = customers_cdm_in_every_language().map(|(language, component)| {
        let cdm = plugin("customers-cdm", component, &["*"], &["cdm.customer"], &[]);
        let output = dir.path().join(format!("{language}.jsonl"));
        let (lines, stats) = run(config(&input, &output, vec![cdm], 3));
        assert_eq!(stats.dead_lettered, 5, "{language}: {lines:#?}");
        let lines: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(&without_component_hash(l)).expect("JSON"))
            .collect();
        (language, lines)
    });
    let (_, rust) = &outputs[0];
    let codes: Vec<Option<String>> = rust.iter().map(|l| header(l, "sluice.dlq.code")).collect();
    let expected_codes = ["decode", "bad-decimal", "decode", "decode", "bad-row"];
    assert_eq!(codes[..5], expected_codes.map(|c| Some(c.to_owned())));
    assert_eq!(rust[5]["value"]["creditLimit"], "900.00");
    for (language, lines) in &outputs[1..] {
        assert_eq!(lines.len(), rust.len(), "{language}");
        for (index, (line, expected)) in lines.iter().zip(rust).enumerate() {
            let code = header(expected, "sluice.dlq.code");
            if code.as_deref() == Some("bad-row") {
                // The parser's own words differ by language (serde's, JSON.parse's,
                // Python's); the event, the code and everything else do not.
                let strip = |l: &Value| {
                    let mut l = l.clone();
                    let headers = l["headers"].as_array_mut().expect("headers");
                    headers.retain(|pair| pair[0] != "sluice.dlq.reason");
                    l
                };
                let reason = header(line, "sluice.dlq.reason").unwrap_or_default();
                assert!(reason.starts_with("after: "), "{language}: {reason}");
                assert_eq!(
                    strip(line),
                    strip(expected),
                    "{language}, record {}",
                    index + 1
                );
            } else {
                assert_eq!(line, expected, "{language}, record {}", index + 1);
            }
        }
    }
}
