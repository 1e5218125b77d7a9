//! Safe deploys through the real `sluice` binary on the test broker: a shadow version is
//! compared and publishes nothing, `sluice plugin promote` swaps it in with nothing lost
//! or repeated, and a canary serves its share of the keys, each key always on one
//! version.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use sluice_tests::{
    Broker, KeyValue, KillOnDrop, components, free_port, http_get, read_topic, run_sluice_quietly,
    sluice_bin, wait_for_metrics,
};

use crate::support::create_event;

/// Produces one create event per row to `topic`, keyed like Debezium (`{"id": n}`).
pub(crate) fn produce(bootstrap: &str, topic: &str, rows: &[Value]) {
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        let producer: FutureProducer = sluice_tests::kafka_client(bootstrap)
            .create()
            .expect("producer");
        for row in rows {
            let line: Value = serde_json::from_str(&create_event(row.clone())).expect("event");
            producer
                .send(
                    FutureRecord::to(topic)
                        .key(&line["key"].to_string())
                        .payload(&line["value"].to_string()),
                    Duration::from_secs(30),
                )
                .await
                .expect("produced");
        }
    });
}

/// Starts `sluice run` reading `input` from the broker, with a plugins directory and an
/// admin port; one batch takes everything already in the topic.
pub(crate) fn start_sluice(
    dir: &Path,
    bootstrap: &str,
    input: &str,
    plugins: &Path,
    admin: u16,
) -> KillOnDrop {
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            r#"[source]
type = "kafka"
topics = ["{input}"]
linger = "1s"
properties = {{ "bootstrap.servers" = "{bootstrap}", "group.id" = "deploys", "auto.offset.reset" = "earliest" }}

[sink]
type = "kafka"
properties = {{ "bootstrap.servers" = "{bootstrap}" }}

[pipeline]
batch_size = 1000

[runtime]
plugins_dir = {plugins:?}

[admin]
listen = "127.0.0.1:{admin}"
"#
        ),
    )
    .expect("config");
    run_sluice_quietly(&config)
}

/// Every record of `topic`: waits until `expected` are there, then a little longer, so
/// an extra record would be seen.
pub(crate) fn read_exactly(bootstrap: &str, topic: &str, expected: usize) -> Vec<KeyValue> {
    read_topic(bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= expected
    });
    read_topic(bootstrap, topic, Duration::from_secs(3), |r| {
        r.len() > expected
    })
}

fn json_of(bytes: &Option<Vec<u8>>) -> Value {
    serde_json::from_slice(bytes.as_deref().expect("a value")).expect("JSON")
}

pub(crate) fn deploy(folder: &Path, name: &str, component: &str, manifest: &str) {
    std::fs::create_dir_all(folder).expect("team folder");
    std::fs::copy(component, folder.join(format!("{name}.wasm"))).expect("component");
    std::fs::write(folder.join(format!("{name}.toml")), manifest).expect("manifest");
}

/// A broker for one test, with `topics` (one partition each) created.
pub(crate) fn broker_with(topics: &[&str]) -> Broker {
    let broker = Broker::start();
    let topics: Vec<(&str, i32)> = topics.iter().map(|topic| (*topic, 1)).collect();
    tokio::runtime::Runtime::new()
        .expect("tokio")
        .block_on(sluice_tests::create_topics(&broker.bootstrap, &topics));
    broker
}

/// Rows `{"id": n}` for n in 0..count; the rows in `rejected` ask `poison` to reject
/// them with `reason`.
pub(crate) fn rows_rejecting(count: i64, rejected: &[i64], reason: &str) -> Vec<Value> {
    (0..count)
        .map(|id| {
            if rejected.contains(&id) {
                json!({"id": id, "reject": reason})
            } else {
                json!({"id": id})
            }
        })
        .collect()
}

/// Rows 0..100; `poison` rejects rows 5, 15, 25, 35 and 45.
const REJECTED: [i64; 5] = [5, 15, 25, 35, 45];

#[test]
fn a_shadow_is_compared_not_published_and_promote_swaps_it_in_without_loss() {
    let broker = broker_with(&["orders.in", "out", "sluice.dlq"]);
    let bootstrap = broker.bootstrap.clone();
    produce(
        &bootstrap,
        "orders.in",
        &rows_rejecting(100, &REJECTED, "not yet"),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins.d");
    let crm = plugins.join("crm");
    // Serving: `poison` publishes {"id"} and rejects the rows that ask. Shadow: `stamp`
    // publishes {"id", "stamp"}: one field more, and it rejects nothing.
    deploy(
        &crm,
        "orders",
        components::POISON,
        "version = \"1.0.0\"\ninputs = [\"orders.in\"]\noutputs = [\"out\"]\n",
    );
    deploy(
        &crm,
        "orders-next",
        components::STAMP,
        "version = \"2.0.0\"\nmode = \"shadow\"\nshadows = \"orders\"\ninputs = [\"orders.in\"]\noutputs = [\"out\"]\nconfig = { stamp = \"v2\" }\n",
    );
    let admin = free_port();
    let sluice = start_sluice(dir.path(), &bootstrap, "orders.in", &plugins, admin);
    wait_for_metrics(
        admin,
        &[
            "sluice_shadow_events_total{plugin=\"orders-next\",version=\"2.0.0\",of=\"orders\",result=\"equal\"} 0\n",
            "sluice_shadow_events_total{plugin=\"orders-next\",version=\"2.0.0\",of=\"orders\",result=\"differing\"} 95\n",
            "sluice_shadow_events_total{plugin=\"orders-next\",version=\"2.0.0\",of=\"orders\",result=\"rejected_by_one_only\"} 5\n",
            "sluice_shadow_events_total{plugin=\"orders-next\",version=\"2.0.0\",of=\"orders\",result=\"dropped\"} 0\n",
            "sluice_plugin_events_total{plugin=\"orders\",version=\"1.0.0\",mode=\"serve\"} 100\n",
        ],
    );

    // Published: the serving version's records only.
    let out = read_exactly(&bootstrap, "out", 95);
    assert_eq!(out.len(), 95, "the shadow published nothing");
    assert!(
        out.iter()
            .all(|(_, value)| json_of(value).get("stamp").is_none()),
        "every record is the serving version's"
    );
    assert_eq!(read_exactly(&bootstrap, "sluice.dlq", 5).len(), 5);

    // `/plugins`: the shadow's counts and its first differences, as JSON.
    let (_, body) = http_get(admin, "/plugins").expect("plugins");
    let listed: Value = serde_json::from_str(&body).expect("JSON");
    let shadow = listed
        .as_array()
        .expect("a list")
        .iter()
        .find(|plugin| plugin["name"] == "orders-next")
        .unwrap_or_else(|| panic!("no shadow in {listed}"));
    assert_eq!(shadow["mode"], "shadow");
    assert_eq!(shadow["of"], "orders");
    let comparison = &shadow["comparison"];
    assert_eq!(comparison["compared"], 100, "{comparison}");
    assert_eq!(comparison["differing"], 95, "{comparison}");
    let examples = comparison["examples"].as_array().expect("examples");
    assert_eq!(examples.len(), 10, "the default number of examples");
    assert_eq!(examples[0]["event"]["offset"], 0);
    assert_eq!(examples[0]["kind"], "differs");
    assert_eq!(examples[0]["serving"][0]["value"], json!({"id": 0}));
    assert_eq!(
        examples[0]["shadow"][0]["value"],
        json!({"id": 0, "stamp": "v2"})
    );
    let rejected = examples
        .iter()
        .find(|example| example["event"]["offset"] == 5)
        .expect("row 5 among the first ten");
    assert_eq!(rejected["kind"], "dead-lettered by the old version only");
    let (_, page) = http_get(admin, "/").expect("status page");
    assert!(
        page.contains("orders-next 2.0.0 <small>shadow</small>")
            && page.contains("compared 100: 0 equal, 95 differ, 5 rejected by one only, 0 dropped"),
        "{page}"
    );

    // Promote: the shadow becomes `orders`, the shadow goes away.
    let promoted = Command::new(sluice_bin())
        .args(["plugin", "promote"])
        .arg(&plugins)
        .arg("orders-next")
        .output()
        .expect("promote");
    assert!(
        promoted.status.success(),
        "{}",
        String::from_utf8_lossy(&promoted.stderr)
    );
    assert!(!crm.join("orders-next.toml").exists());
    let manifest = std::fs::read_to_string(crm.join("orders.toml")).expect("manifest");
    assert!(
        manifest.contains("2.0.0") && !manifest.contains("shadow"),
        "{manifest}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = http_get(admin, "/plugins").expect("plugins");
        let listed: Value = serde_json::from_str(&body).expect("JSON");
        let listed = listed.as_array().expect("a list");
        if listed.len() == 1 && listed[0]["name"] == "orders" && listed[0]["version"] == "2.0.0" {
            assert_eq!(listed[0]["mode"], "serve");
            break;
        }
        assert!(Instant::now() < deadline, "not promoted: {listed:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let more: Vec<Value> = (100..150i64).map(|id| json!({"id": id})).collect();
    produce(&bootstrap, "orders.in", &more);
    let out = read_exactly(&bootstrap, "out", 145);
    drop(sluice);
    assert_eq!(
        out.len(),
        145,
        "nothing lost or repeated across the promotion"
    );
    let ids: BTreeSet<i64> = out
        .iter()
        .map(|(_, value)| json_of(value)["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 145, "no id twice");
    for (_, value) in &out[95..] {
        let value = json_of(value);
        assert_eq!(value["stamp"], "v2", "after the promotion: {value}");
        assert!(value["id"].as_i64().expect("id") >= 100, "{value}");
    }
}

#[test]
fn a_canary_serves_its_share_of_keys_each_key_on_one_version() {
    const KEYS: i64 = 400;
    let broker = broker_with(&["cart.in", "out"]);
    let bootstrap = broker.bootstrap.clone();
    // Every key twice: a key must land on the same version both times.
    let rows: Vec<Value> = (0..KEYS)
        .chain(0..KEYS)
        .map(|id| json!({"id": id}))
        .collect();
    produce(&bootstrap, "cart.in", &rows);

    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins.d");
    let shop = plugins.join("shop");
    deploy(
        &shop,
        "cart",
        components::STAMP,
        "version = \"1.0.0\"\ninputs = [\"cart.in\"]\noutputs = [\"out\"]\nconfig = { stamp = \"v1\" }\n",
    );
    deploy(
        &shop,
        "cart-next",
        components::STAMP,
        "version = \"1.1.0\"\nmode = \"canary\"\ncanary_of = \"cart\"\nshare = \"25%\"\ninputs = [\"cart.in\"]\noutputs = [\"out\"]\nconfig = { stamp = \"v2\" }\n",
    );
    let admin = free_port();
    let sluice = start_sluice(dir.path(), &bootstrap, "cart.in", &plugins, admin);
    let out = read_exactly(&bootstrap, "out", 2 * KEYS as usize);
    let (_, metrics) = http_get(admin, "/metrics").expect("metrics");
    drop(sluice);
    assert_eq!(out.len(), 2 * KEYS as usize, "every event served once");

    let mut versions: BTreeMap<Vec<u8>, BTreeSet<String>> = BTreeMap::new();
    for (key, value) in &out {
        let stamp = json_of(value)["stamp"].as_str().expect("stamp").to_owned();
        versions
            .entry(key.clone().expect("key"))
            .or_default()
            .insert(stamp);
    }
    assert_eq!(versions.len(), KEYS as usize);
    assert!(
        versions.values().all(|stamps| stamps.len() == 1),
        "a key never flips between versions"
    );
    let on_canary: BTreeSet<&Vec<u8>> = versions
        .iter()
        .filter(|(_, stamps)| stamps.contains("v2"))
        .map(|(key, _)| key)
        .collect();
    // 25% of 400 keys: 100, give or take 3 standard deviations (√(400·0.25·0.75) ≈ 8.7).
    assert!(
        (74..=126).contains(&on_canary.len()),
        "{} of {KEYS} keys on the canary",
        on_canary.len()
    );
    // The hash is of the input record's key (`{"id":n}`); `stamp` keys its output by n.
    let chosen: BTreeSet<&Vec<u8>> = versions
        .keys()
        .filter(|key| {
            let id = String::from_utf8_lossy(key);
            let input_key = format!("{{\"id\":{id}}}");
            sluice_pipeline::candidates::canary_takes(Some(input_key.as_bytes()), 250)
        })
        .collect();
    assert_eq!(
        on_canary, chosen,
        "the keys the stable hash gives the canary"
    );
    assert!(
        metrics.contains(&format!(
            "sluice_plugin_events_total{{plugin=\"cart-next\",version=\"1.1.0\",mode=\"canary\"}} {}\n",
            2 * on_canary.len()
        )),
        "{metrics}"
    );
}

#[test]
fn a_shadow_that_traps_or_hangs_changes_nothing_that_is_published() {
    let broker = broker_with(&["pay.in", "out", "sluice.dlq"]);
    let bootstrap = broker.bootstrap.clone();
    // Row 3 makes `poison` panic, row 7 makes it loop until its deadline.
    let rows: Vec<Value> = (0..20i64)
        .map(|id| match id {
            3 => json!({"id": id, "panic": true}),
            7 => json!({"id": id, "spin": true}),
            _ => json!({"id": id}),
        })
        .collect();
    produce(&bootstrap, "pay.in", &rows);

    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins.d");
    let billing = plugins.join("billing");
    deploy(
        &billing,
        "pay",
        components::STAMP,
        "version = \"1.0.0\"\ninputs = [\"pay.in\"]\noutputs = [\"out\"]\nconfig = { stamp = \"v1\" }\n",
    );
    deploy(
        &billing,
        "pay-next",
        components::POISON,
        "version = \"1.1.0\"\nmode = \"shadow\"\nshadows = \"pay\"\ninputs = [\"pay.in\"]\noutputs = [\"out\"]\nlimits = { batch_deadline = \"500ms\" }\n",
    );
    let admin = free_port();
    let sluice = start_sluice(dir.path(), &bootstrap, "pay.in", &plugins, admin);
    let out = read_exactly(&bootstrap, "out", 20);
    wait_for_metrics(
        admin,
        &[
            "sluice_shadow_events_total{plugin=\"pay-next\",version=\"1.1.0\",of=\"pay\",result=\"differing\"} 18\n",
            "sluice_shadow_events_total{plugin=\"pay-next\",version=\"1.1.0\",of=\"pay\",result=\"rejected_by_one_only\"} 2\n",
        ],
    );
    let dead = read_exactly(&bootstrap, "sluice.dlq", 0);
    drop(sluice);
    assert_eq!(
        out.len(),
        20,
        "every event published by the serving version"
    );
    for (_, value) in &out {
        assert_eq!(
            json_of(value)["stamp"],
            "v1",
            "the serving version's record"
        );
    }
    assert!(
        dead.is_empty(),
        "the shadow's traps are compared, not dead-lettered: {dead:?}"
    );
}
