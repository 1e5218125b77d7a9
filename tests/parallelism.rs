//! A plugin's `parallelism`: each batch divided by key among instances, the outcomes put
//! back in the batch's order. With a real plugin that keeps state per key (`stamp` with
//! `count`), every key's events reach one instance, in order, batch after batch, while
//! no instance takes them all; and a whole run publishes what one instance publishes.

use std::sync::Arc;

use sluice_runtime::debezium::{Decoded, decode};
use sluice_runtime::{ChangeEvent, Outcome, Runtime, RuntimeOptions, start_plugin};
use sluice_tests::{components, repo_root, sample};

use crate::support::{assert_golden, config, create_record, plugin, run};

/// The `n`th event is of key `n % keys`; its offset is `n`.
fn events(range: std::ops::Range<i64>, keys: i64) -> Arc<Vec<ChangeEvent>> {
    Arc::new(
        range
            .map(|n| {
                let mut record = create_record(n % keys);
                record.origin.offset = n;
                match decode(record).expect("decodes") {
                    Decoded::Event(event) => event,
                    Decoded::Tombstone => panic!("not a tombstone"),
                }
            })
            .collect(),
    )
}

/// (id, seen, taken) of each published record, in order.
fn published(outcomes: Vec<Outcome>) -> Vec<(i64, u64, u64)> {
    outcomes
        .into_iter()
        .flat_map(|outcome| match outcome {
            Outcome::Records(records) => records,
            other => panic!("not published: {other:?}"),
        })
        .map(|record| {
            let value: serde_json::Value =
                serde_json::from_slice(record.value.as_deref().expect("value")).expect("JSON");
            (
                value["id"].as_i64().expect("id"),
                value["seen"].as_u64().expect("seen"),
                value["taken"].as_u64().expect("taken"),
            )
        })
        .collect()
}

/// Runs 300 events of 10 keys in batches of 25 through `stamp` (counting per key) with
/// `parallelism`, two batches in flight at a time (as a lane reading ahead hands them
/// over), and returns what was published.
fn run_divided(parallelism: usize) -> Vec<(i64, u64, u64)> {
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
        let config = plugin(
            "stamp",
            components::STAMP,
            &["in"],
            &["out"],
            &[("count", "true")],
        );
        let loaded = Arc::new(runtime.load_file(config.spec, &config.path).expect("load"));
        let thread = start_plugin(&loaded, 1, parallelism).expect("threads");
        let mut out = Vec::new();
        let mut in_flight = None;
        for start in (0..300).step_by(25) {
            let batch = events(start..start + 25, 10);
            // Through the reserved-place path when there is room, as the lane does.
            let submitted = match thread.try_reserve() {
                Some(slot) => slot.submit(batch),
                None => thread.submit(batch).await.expect("queued"),
            };
            if let Some(before) = in_flight.replace(submitted) {
                out.extend(published(before.outcomes().await.expect("outcomes")));
            }
        }
        let last = in_flight.expect("a batch in flight");
        out.extend(published(last.outcomes().await.expect("outcomes")));
        out
    })
}

#[test]
fn a_divided_batch_comes_back_in_order_with_each_key_on_one_instance() {
    let divided = run_divided(3);
    assert_eq!(divided.len(), 300);
    // In the order of the events.
    let ids: Vec<i64> = divided.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(ids, (0..300).map(|n| n % 10).collect::<Vec<_>>());
    // Each key's events reached one instance, in order: the k-th event of a key is the
    // k-th that instance saw of it.
    for (n, (id, seen, _)) in divided.iter().enumerate() {
        assert_eq!(*seen, n as u64 / 10 + 1, "event {n} (key {id})");
    }
    // And the work was divided: no instance took every event.
    let most = divided
        .iter()
        .map(|(_, _, taken)| *taken)
        .max()
        .expect("some");
    assert!(most < 300, "one instance took all {most} events");

    // One instance publishes the same records (only `taken` differs).
    let single = run_divided(1);
    let without_taken = |records: &[(i64, u64, u64)]| -> Vec<(i64, u64)> {
        records.iter().map(|(id, seen, _)| (*id, *seen)).collect()
    };
    assert_eq!(without_taken(&divided), without_taken(&single));
    assert_eq!(single.last().map(|(_, _, taken)| *taken), Some(300));
}

/// `customers-cdm` in JavaScript (a plugin slow enough to want it) with `parallelism = 3`
/// publishes the golden records, in order, from both Debezium JSON forms.
#[test]
fn a_run_with_parallelism_publishes_what_one_instance_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (index, input) in ["customers.jsonl", "customers.schema.jsonl"]
        .into_iter()
        .enumerate()
    {
        let mut cdm = plugin(
            "customers-cdm",
            components::CUSTOMERS_CDM_JS,
            &["server1.testDB.dbo.customers"],
            &["cdm.customer"],
            &[],
        );
        cdm.parallelism = 3;
        let (lines, stats) = run(config(
            &sample(input),
            &dir.path().join(format!("out-{index}.jsonl")),
            vec![cdm],
            8,
        ));
        assert_golden(
            &lines,
            &repo_root()
                .join("tests")
                .join("golden")
                .join("customers-cdm.jsonl"),
        );
        assert_eq!(stats.dead_lettered, 0);
    }
}
