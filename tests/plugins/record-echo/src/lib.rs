//! `record-echo`: `packed-echo`'s `echo` mode in the `transformer` world (one WIT record
//! per event, lowered field by field by the host), written without an SDK. Each event
//! becomes one record on `record.echo`: its key the event's key, its value a JSON object
//! of every field of the event as this plugin received it (the same fields, names and
//! encodings as `packed-echo`'s), its headers the event's headers; events whose `after`
//! image holds `"reject"` are rejected with code `asked`. The SDKs all build the packed
//! world, so this plugin is what keeps the host's other path tested end to end.

#![allow(unsafe_code)] // wit-bindgen's generated glue

wit_bindgen::generate!({ path: "../../../wit", world: "transformer" });

use exports::sluice::transform::transform::Guest;
use sluice::transform::types::{
    ChangeEvent, EventOutcome, Operation, OutputRecord, Rejection, SnapshotMarker, Span,
};

struct Echo;

impl Guest for Echo {
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn transform_batch(events: Vec<ChangeEvent>) -> Vec<EventOutcome> {
        events.into_iter().map(echo).collect()
    }
}

fn echo(event: ChangeEvent) -> EventOutcome {
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).expect("UTF-8");
    let span = |span: Option<Span>| {
        span.map(|s| text(&event.value[s.start as usize..(s.start + s.len) as usize]))
    };
    let after = span(event.after);
    if after.as_deref().is_some_and(|a| a.contains("\"reject\"")) {
        return EventOutcome::Rejected(Rejection {
            reason: "the row asks for it".into(),
            code: Some("asked".into()),
        });
    }
    let op = match event.op {
        Operation::Create => 0,
        Operation::Update => 1,
        Operation::Delete => 2,
        Operation::Read => 3,
        Operation::Truncate => 4,
        Operation::Message => 5,
    };
    let snapshot = match event.source.snapshot {
        SnapshotMarker::None => 0,
        SnapshotMarker::InProgress => 1,
        SnapshotMarker::First => 2,
        SnapshotMarker::FirstInDataCollection => 3,
        SnapshotMarker::LastInDataCollection => 4,
        SnapshotMarker::Last => 5,
        SnapshotMarker::Incremental => 6,
    };
    let source = &event.source;
    let transaction = event.transaction.as_ref();
    let fields = [
        ("op", op.to_string()),
        ("value", quote(Some(&text(&event.value)))),
        ("key", quote(event.key.as_deref().map(text).as_deref())),
        ("before", quote(span(event.before).as_deref())),
        ("after", quote(after.as_deref())),
        ("valueSchema", quote(span(event.value_schema).as_deref())),
        ("connector", quote(Some(&source.connector))),
        ("name", quote(Some(&source.name))),
        ("db", quote(Some(&source.db))),
        ("schema", quote(source.schema.as_deref())),
        ("table", quote(Some(&source.table))),
        ("changeLsn", quote(source.change_lsn.as_deref())),
        ("commitLsn", quote(source.commit_lsn.as_deref())),
        ("eventSerialNo", number(source.event_serial_no)),
        ("snapshot", snapshot.to_string()),
        ("sourceTsMs", number(source.ts_ms)),
        ("tsMs", number(event.ts_ms)),
        ("txId", quote(transaction.map(|t| t.id.as_str()))),
        ("txTotalOrder", number(transaction.map(|t| t.total_order))),
        (
            "txCollectionOrder",
            number(transaction.map(|t| t.data_collection_order)),
        ),
        ("topic", quote(Some(&event.origin.topic))),
        ("partition", event.origin.partition.to_string()),
        ("offset", event.origin.offset.to_string()),
    ];
    let json = fields
        .iter()
        .map(|(name, value)| format!("\"{name}\":{value}"))
        .collect::<Vec<_>>()
        .join(",");
    EventOutcome::Records(vec![OutputRecord {
        topic: "record.echo".into(),
        key: event.key.clone(),
        value: Some(format!("{{{json}}}").into_bytes()),
        headers: event.headers,
    }])
}

/// A JSON string (as `packed-echo` writes it) or `null`.
fn quote(text: Option<&str>) -> String {
    match text {
        None => "null".to_owned(),
        Some(text) => {
            let mut quoted = String::from("\"");
            for c in text.chars() {
                match c {
                    '"' => quoted.push_str("\\\""),
                    '\\' => quoted.push_str("\\\\"),
                    c if (c as u32) < 0x20 => quoted.push_str(&format!("\\u{:04x}", c as u32)),
                    c => quoted.push(c),
                }
            }
            quoted.push('"');
            quoted
        }
    }
}

fn number(value: Option<i64>) -> String {
    value.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

export!(Echo);
