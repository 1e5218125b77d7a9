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
