//! The `packed-transformer` world (`wit/packed.wit`) in a real component: `packed-echo`
//! reads the batch with its own reader, written from the WIT file alone, and echoes every
//! field back; the host's writer must agree with it field for field. The same plugin,
//! told to break the outcome layout in each way, must trap only its batch, with the
//! violation named, never the host. `record-echo` reads the same events in the
//! `transformer` world, where the host lowers each event record instead.

use sluice_runtime::debezium::{Decoded, decode};
use sluice_runtime::wit::{Header, Origin};
use sluice_runtime::{
    ChangeEvent, Operation, Outcome, PluginSpec, Runtime, RuntimeOptions, SnapshotMarker,
    SourceInfo, Span, TransactionInfo,
};
use sluice_tests::components;

use crate::support::create_record;

fn load(mode: &str) -> sluice_runtime::PluginInstance {
    load_component(components::PACKED_ECHO, mode)
}

fn load_component(component: &str, mode: &str) -> sluice_runtime::PluginInstance {
    let spec = PluginSpec {
        name: "echo".into(),
        version: mode.into(),
        config: vec![("mode".into(), mode.into())],
        limits: Default::default(),
    };
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let plugin = runtime
        .load_file(spec, std::path::Path::new(component))
        .expect("the component loads");
    plugin.instantiate().expect("instantiate")
}

/// An event with every optional part present, extremes in the numbers and text that
/// needs care (quotes, non-ASCII).
fn full_event(table: &str, offset: i64) -> ChangeEvent {
    let value = format!(
        r#"{{"schema":{{"type":"struct"}},"payload":{{"before":{{"id":1,"name":"Zoë \"Z\""}},"after":{{"id":2}},"op":"u","source":{{"table":"{table}"}}}}}}"#
    );
    let find = |needle: &str, len: usize| Span {
        start: value.find(needle).expect("in value") as u32,
        len: len as u32,
    };
    ChangeEvent {
        op: Operation::Update,
        before: Some(find(r#"{"id":1"#, r#"{"id":1,"name":"Zoë \"Z\""}"#.len())),
        after: Some(find(r#"{"id":2}"#, 8)),
        value_schema: Some(find(r#"{"type":"struct"}"#, 17)),
        source: SourceInfo {
            connector: "postgresql".into(),
            name: "pg".into(),
            db: "shop".into(),
            schema: Some("public".into()),
            table: table.into(),
            change_lsn: Some("[\"24023128\",\"24023184\"]".into()),
            commit_lsn: Some("24023128".into()),
            event_serial_no: Some(i64::MIN),
            snapshot: SnapshotMarker::Incremental,
            ts_ms: Some(-1),
        },
        ts_ms: Some(i64::MAX),
        transaction: Some(TransactionInfo {
            id: "771:24023128".into(),
            total_order: 3,
            data_collection_order: -4,
        }),
        key: Some(br#"{"id":2}"#.to_vec()),
        headers: vec![
            Header {
                key: "trace".into(),
                value: Some(vec![0, 159, 146, 150]),
            },
            Header {
                key: "ünïcode".into(),
                value: None,
            },
        ],
        origin: Origin {
            topic: format!("pg.public.{table}"),
            partition: i32::MIN,
            offset,
        },
        value: value.into_bytes(),
    }
}

/// What `packed-echo` must have read for `event`, field by field.
fn expected(event: &ChangeEvent) -> serde_json::Value {
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).expect("UTF-8");
    let span = |span: &Option<Span>| {
        span.map(|s| text(&event.value[s.start as usize..(s.start + s.len) as usize]))
    };
    let source = &event.source;
    let snapshot = [
        SnapshotMarker::None,
        SnapshotMarker::InProgress,
        SnapshotMarker::First,
        SnapshotMarker::FirstInDataCollection,
        SnapshotMarker::LastInDataCollection,
        SnapshotMarker::Last,
        SnapshotMarker::Incremental,
    ]
    .iter()
    .position(|m| *m == source.snapshot)
    .expect("a marker");
    let op = [
        Operation::Create,
        Operation::Update,
        Operation::Delete,
        Operation::Read,
        Operation::Truncate,
        Operation::Message,
    ]
    .iter()
    .position(|o| *o == event.op)
    .expect("an op");
    let transaction = event.transaction.as_ref();
    serde_json::json!({
        "op": op,
        "value": text(&event.value),
        "key": event.key.as_deref().map(text),
        "before": span(&event.before),
        "after": span(&event.after),
        "valueSchema": span(&event.value_schema),
        "connector": source.connector,
        "name": source.name,
        "db": source.db,
        "schema": source.schema,
        "table": source.table,
        "changeLsn": source.change_lsn,
        "commitLsn": source.commit_lsn,
        "eventSerialNo": source.event_serial_no,
        "snapshot": snapshot,
        "sourceTsMs": source.ts_ms,
        "tsMs": event.ts_ms,
        "txId": transaction.map(|t| t.id.clone()),
        "txTotalOrder": transaction.map(|t| t.total_order),
        "txCollectionOrder": transaction.map(|t| t.data_collection_order),
        "topic": event.origin.topic,
        "partition": event.origin.partition,
        "offset": event.origin.offset,
    })
}

#[test]
fn a_packed_plugin_reads_every_field_the_host_writes() {
    echoes_every_field(load("echo"), "packed.echo");
}

/// The same events read by the JavaScript SDK's reader of the packed batch.
#[test]
fn the_javascript_sdk_reads_every_field_the_host_writes() {
    echoes_every_field(
        load_component(components::PACKED_ECHO_JS, "echo"),
        "packed.echo",
    );
}

/// The same events through the host's other path: `record-echo` is built for the
/// `transformer` world, where the host lowers each event record field by field.
#[test]
fn a_record_plugin_reads_every_field_the_host_lowers() {
    echoes_every_field(
        load_component(components::RECORD_ECHO, "echo"),
        "record.echo",
    );
}

/// Runs a batch of events with every optional part (and real decoded ones between)
/// through an echo plugin twice, and checks that every field came back as sent.
fn echoes_every_field(mut instance: sluice_runtime::PluginInstance, topic: &str) {
    let mut events = vec![
        full_event("customers", 0),
        full_event("customers", 1),
        full_event("orders", 2),
    ];
    // Real decoded events (bare envelope, no transaction, no headers) between them.
    for id in [7, 8] {
        let Decoded::Event(event) = decode(create_record(id)).expect("decodes") else {
            panic!("an event");
        };
        events.push(event);
    }
    events.push(full_event("customers", 9));
    // One the plugin rejects.
    let mut reject = full_event("orders", 10);
    let after = reject.value.len() as u32;
    reject.value.extend_from_slice(br#"{"reject":true}"#);
    reject.after = Some(Span {
        start: after,
        len: 15,
    });
    events.push(reject);

    for _ in 0..2 {
        // Twice: the host reuses its batch buffer.
        let outcomes = instance.transform_batch(&events).expect("a good batch");
        assert_eq!(outcomes.len(), events.len());
        for (event, outcome) in events.iter().zip(&outcomes).take(events.len() - 1) {
            let Outcome::Records(records) = outcome else {
                panic!("records for {:?}", event.origin);
            };
            assert_eq!(records.len(), 1);
            let record = &records[0];
            assert_eq!(record.topic, topic);
            assert_eq!(record.key, event.key);
            assert_eq!(
                record.headers,
                sluice_runtime::headers_out(event.headers.clone())
            );
            let echoed: serde_json::Value =
                serde_json::from_slice(record.value.as_deref().expect("a value")).expect("JSON");
            assert_eq!(echoed, expected(event), "offset {}", event.origin.offset);
        }
        let Outcome::Rejected(rejection) = &outcomes[events.len() - 1] else {
            panic!("the last event is rejected");
        };
        assert_eq!(rejection.reason, "the row asks for it");
        assert_eq!(rejection.code.as_deref(), Some("asked"));
    }
    // An empty batch is a batch too.
    assert_eq!(instance.transform_batch(&[]).expect("empty"), vec![]);
}

#[test]
fn a_packed_plugin_that_breaks_the_layout_traps_only_its_batch_with_the_violation_named() {
    let events = vec![full_event("customers", 0), full_event("customers", 1)];
    for (mode, violation) in [
        ("short", "transform-packed returned 1 outcomes for 2 events"),
        ("extra", "1 bytes left over after the last outcome"),
        ("wild-count", "the record count 4294967294 is more than"),
        ("bad-utf8", "a record's topic is not UTF-8"),
        ("version-2", "format version 2; this host reads version 1"),
    ] {
        let mut instance = load(mode);
        let trapped = instance
            .transform_batch(&events)
            .expect_err("a broken layout is a trap");
        assert!(
            trapped.reason.contains("contract violation") && trapped.reason.contains(violation),
            "{mode}: {}",
            trapped.reason
        );
    }
    // The host goes on: a good instance of the same component still works.
    assert_eq!(
        load("echo").transform_batch(&events).expect("good").len(),
        2
    );
}

/// `sluice_sdk.event_from_json` builds, natively, the event the host would hand a Python
/// plugin: the Python `customers-cdm` called on the samples that way publishes the golden
/// records, both JSON forms.
#[test]
fn python_events_made_natively_read_as_the_hosts() {
    let root = sluice_tests::repo_root();
    let script = r#"
import json, sys
import sluice_sdk, app
sluice_sdk._init([])
function, _, settings_type = sluice_sdk._plugin
settings = sluice_sdk.settings()
out = []
for line in open(sys.argv[1]):
    line = json.loads(line)
    if line["value"] is None:
        continue
    event = sluice_sdk.event_from_json(json.dumps(line["value"]), key=line["key"], topic=line["topic"])
    assert event.origin.topic == line["topic"] and event.key() == line["key"].get("payload", line["key"])
    for record in function(event, settings):
        out.append({"topic": record.topic, "key": json.loads(record.key),
                    "value": None if record.value is None else json.loads(record.value)})
print(json.dumps(out))
"#;
    let golden: Vec<serde_json::Value> = std::fs::read_to_string(
        root.join("tests/golden/customers-cdm.jsonl"),
    )
    .expect("golden")
    .lines()
    .map(|line| {
        let line: serde_json::Value = serde_json::from_str(line).expect("JSON");
        serde_json::json!({"topic": line["topic"], "key": line["key"], "value": line["value"]})
    })
    .collect();
    for sample in ["samples/customers.jsonl", "samples/customers.schema.jsonl"] {
        let output = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(root.join(sample))
            .env(
                "PYTHONPATH",
                format!(
                    "{}:{}",
                    root.join("sdk/python").display(),
                    root.join("plugins/customers-cdm-py").display()
                ),
            )
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "{sample}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let records: Vec<serde_json::Value> =
            serde_json::from_slice(&output.stdout).expect("the records as JSON");
        assert_eq!(records, golden, "{sample}");
    }
}

/// The three SDKs build `packed-transformer` components; `record-echo` is the
/// `transformer` one that keeps the host's other path tested.
#[test]
fn each_sdk_builds_the_world_it_says() {
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    for (component, world) in [
        (components::CUSTOMERS_CDM, "packed-transformer"),
        (components::PASSTHROUGH, "packed-transformer"),
        (components::CUSTOMERS_CDM_PY, "packed-transformer"),
        (components::CUSTOMERS_CDM_JS, "packed-transformer"),
        (components::PACKED_ECHO, "packed-transformer"),
        (components::RECORD_ECHO, "transformer"),
        (components::PACKED_ECHO_JS, "packed-transformer"),
    ] {
        let spec = PluginSpec {
            name: "world".into(),
            version: "1".into(),
            config: vec![],
            limits: Default::default(),
        };
        let plugin = runtime
            .load_file(spec, std::path::Path::new(component))
            .expect("loads");
        assert_eq!(plugin.world(), world, "{component}");
    }
}
