//! Decoding Debezium change-event envelopes into the [`ChangeEvent`]s plugins receive.
//!
//! Accepts both JSON converter forms (`schemas.enable=false`: the bare envelope;
//! `schemas.enable=true`: `{"schema": ..., "payload": <envelope>}`). The value bytes are
//! kept as they are; the decoder scans them once and records where `before`, `after` and
//! the schema lie (byte spans), without building a DOM of the rows.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

pub use sluice_core::RawRecord;

use crate::bindings::{ChangeEvent, Operation, SnapshotMarker, SourceInfo, Span, TransactionInfo};
use crate::boundary;
use sluice_core::json_scan;

/// Why a record is not a change event. The text goes to the dead-letter headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("value is not valid JSON: {0}")]
    NotJson(String),
    #[error("value is not valid UTF-8 (so not JSON): {0}")]
    NotUtf8(String),
    #[error("expected a JSON object (a Debezium envelope), found {0}")]
    NotAnObject(&'static str),
    /// The source could not read the record (see [`RawRecord::unreadable`]).
    #[error("{0}")]
    Unreadable(String),
    #[error("not a Debezium envelope: {0}")]
    NotAnEnvelope(String),
    #[error("value is larger than 4 GiB")]
    TooLarge,
}

/// What a raw record decodes to.
// Events are the common case and are moved once into the batch; boxing them would cost an
// allocation per event for the sake of the rare tombstone.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Event(ChangeEvent),
    /// A Debezium tombstone (null value): not passed to plugins.
    Tombstone,
}

/// An envelope's fields as borrowed text (`raw`: a nested value's JSON; JSON `null`
/// reads as `None`). Filled by the scanner ([`fast_envelope`]) or, where the scanner
/// cannot tell, by serde, which then decides what is accepted and says why not.
#[derive(Debug, Default, PartialEq, Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "raw")]
    schema: Option<&'a str>,
    #[serde(borrow, default, deserialize_with = "raw")]
    payload: Option<&'a str>,
    #[serde(borrow, default, deserialize_with = "raw")]
    before: Option<&'a str>,
    #[serde(borrow, default, deserialize_with = "raw")]
    after: Option<&'a str>,
    #[serde(borrow, default)]
    op: Option<Cow<'a, str>>,
    #[serde(default)]
    ts_ms: Option<i64>,
    #[serde(borrow, default)]
    source: Option<Source<'a>>,
    #[serde(borrow, default)]
    transaction: Option<Transaction<'a>>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
struct Source<'a> {
    #[serde(borrow, default)]
    connector: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    db: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    schema: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    table: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    change_lsn: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    commit_lsn: Option<Cow<'a, str>>,
    /// Postgres: a number; others may send text.
    #[serde(borrow, default, deserialize_with = "raw")]
    lsn: Option<&'a str>,
    #[serde(borrow, default)]
    file: Option<Cow<'a, str>>,
    #[serde(default)]
    pos: Option<i64>,
    #[serde(borrow, default, deserialize_with = "raw")]
    event_serial_no: Option<&'a str>,
    #[serde(borrow, default, deserialize_with = "raw")]
    snapshot: Option<&'a str>,
    #[serde(default)]
    ts_ms: Option<i64>,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Transaction<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(default)]
    total_order: i64,
    #[serde(default)]
    data_collection_order: i64,
}

/// A nested value as its JSON text, borrowed; `null` as `None`.
fn raw<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<&'de str>, D::Error> {
    Ok(Option::<&'de RawValue>::deserialize(deserializer)?.map(RawValue::get))
}

/// Reads an envelope: the scanner first, serde where the scanner cannot tell (so serde's
/// rules and messages hold for everything the scanner does not accept).
fn read_envelope(text: &str) -> Result<Envelope<'_>, serde_json::Error> {
    match fast_envelope(text) {
        Some(envelope) => Ok(envelope),
        None => serde_json::from_str(text),
    }
}

/// The envelope as serde would read it, or `None`: the text is not valid JSON, a name
/// is repeated or escaped, a known field has a form that needs serde's conversions (a
/// string with escapes, a number that is not a plain integer, a struct as an array).
/// One pass: `source` is read while it is scanned.
fn fast_envelope(text: &str) -> Option<Envelope<'_>> {
    let bytes = text.as_bytes();
    let mut envelope = Envelope::default();
    let mut seen = 0u8;
    let start = text.len() - text.trim_start_matches(JSON_WHITESPACE).len();
    let end = json_scan::walk_object(text, start, json_scan::MAX_DEPTH, |name, at| {
        let field = match name {
            "schema" => 0,
            "payload" => 1,
            "before" => 2,
            "after" => 3,
            "op" => 4,
            "ts_ms" => 5,
            "source" => 6,
            "transaction" => 7,
            _ => return json_scan::value_end_within(bytes, at, json_scan::MAX_DEPTH - 1),
        };
        // serde refuses a repeated field; it says so.
        if seen & (1 << field) != 0 {
            return None;
        }
        seen |= 1 << field;
        // `source` and `transaction` are read while they are scanned.
        if bytes.get(at) == Some(&b'{') {
            if field == 6 {
                let (source, end) = fast_source(text, at)?;
                envelope.source = Some(source);
                return Some(end);
            }
            if field == 7 {
                let (transaction, end) = fast_transaction(text, at)?;
                envelope.transaction = Some(transaction);
                return Some(end);
            }
        }
        let end = json_scan::value_end_within(bytes, at, json_scan::MAX_DEPTH - 1)?;
        let raw = &text[at..end];
        match field {
            0 => envelope.schema = non_null(raw),
            1 => envelope.payload = non_null(raw),
            2 => envelope.before = non_null(raw),
            3 => envelope.after = non_null(raw),
            4 => envelope.op = plain_string(raw)?,
            5 => envelope.ts_ms = plain_integer(raw)?,
            // Not an object: `null`, or a form for serde (it reads a struct from an array).
            _ => (raw == "null").then_some(())?,
        }
        Some(end)
    })?;
    text[end..]
        .trim_start_matches(JSON_WHITESPACE)
        .is_empty()
        .then_some(envelope)
}

/// `source`, the object at `start` of `text`, and where it ends.
fn fast_source(text: &str, start: usize) -> Option<(Source<'_>, usize)> {
    let bytes = text.as_bytes();
    let mut source = Source::default();
    let mut seen = 0u16;
    let end = json_scan::walk_object(text, start, json_scan::MAX_DEPTH - 1, |name, at| {
        let field = match name {
            "connector" => 0,
            "name" => 1,
            "db" => 2,
            "schema" => 3,
            "table" => 4,
            "change_lsn" => 5,
            "commit_lsn" => 6,
            "lsn" => 7,
            "file" => 8,
            "pos" => 9,
            "event_serial_no" => 10,
            "snapshot" => 11,
            "ts_ms" => 12,
            _ => 13,
        };
        let end = json_scan::value_end_within(bytes, at, json_scan::MAX_DEPTH - 2)?;
        if field == 13 {
            return Some(end);
        }
        if seen & (1 << field) != 0 {
            return None;
        }
        seen |= 1 << field;
        let raw = &text[at..end];
        match field {
            0 => source.connector = plain_string(raw)?,
            1 => source.name = plain_string(raw)?,
            2 => source.db = plain_string(raw)?,
            3 => source.schema = plain_string(raw)?,
            4 => source.table = plain_string(raw)?,
            5 => source.change_lsn = plain_string(raw)?,
            6 => source.commit_lsn = plain_string(raw)?,
            7 => source.lsn = non_null(raw),
            8 => source.file = plain_string(raw)?,
            9 => source.pos = plain_integer(raw)?,
            10 => source.event_serial_no = non_null(raw),
            11 => source.snapshot = non_null(raw),
            _ => source.ts_ms = plain_integer(raw)?,
        }
        Some(end)
    })?;
    Some((source, end))
}

/// `transaction`, the object at `start` of `text`, and where it ends.
fn fast_transaction(text: &str, start: usize) -> Option<(Transaction<'_>, usize)> {
    let bytes = text.as_bytes();
    let (mut id, mut total_order, mut data_collection_order) = (None, None, None);
    let end = json_scan::walk_object(text, start, json_scan::MAX_DEPTH - 1, |name, at| {
        let end = json_scan::value_end_within(bytes, at, json_scan::MAX_DEPTH - 2)?;
        let raw = &text[at..end];
        // Each is required to be present once and of its type (an integer may not be
        // `null` here: serde refuses that).
        let slot_taken = match name {
            "id" => id.replace(plain_string(raw)??).is_some(),
            "total_order" => total_order.replace(plain_integer(raw)??).is_some(),
            "data_collection_order" => data_collection_order
                .replace(plain_integer(raw)??)
                .is_some(),
            _ => false,
        };
        (!slot_taken).then_some(end)
    })?;
    let transaction = Transaction {
        id: id?,
        total_order: total_order.unwrap_or_default(),
        data_collection_order: data_collection_order.unwrap_or_default(),
    };
    Some((transaction, end))
}

/// JSON's whitespace (not Unicode's: serde refuses a no-break space around a value).
const JSON_WHITESPACE: [char; 4] = [' ', '\n', '\r', '\t'];

fn non_null(raw: &str) -> Option<&str> {
    (raw != "null").then_some(raw)
}

/// `Some(None)` for `null`, `Some(Some(text))` for a string without escapes (borrowed,
/// as serde borrows it); `None` (ask serde) for anything else.
fn plain_string(raw: &str) -> Option<Option<Cow<'_, str>>> {
    if raw == "null" {
        return Some(None);
    }
    let text = raw.strip_prefix('"')?.strip_suffix('"')?;
    (!text.contains('\\')).then_some(Some(Cow::Borrowed(text)))
}

/// `Some(None)` for `null`, `Some(Some(n))` for an integer that fits `i64`; `None` (ask
/// serde) for anything else, `-0` included (serde reads it as a float).
fn plain_integer(raw: &str) -> Option<Option<i64>> {
    if raw == "null" {
        return Some(None);
    }
    if raw == "-0" {
        return None;
    }
    // `raw` is checked JSON, so this refuses exactly fractions, exponents and overflow.
    raw.parse::<i64>().ok().map(Some)
}

/// A record that is not a change event, returned whole for the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub error: DecodeError,
    pub record: RawRecord,
}

/// Decodes one raw record. The record's value is moved into the event; a malformed
/// record comes back whole (boxed: the error path is rare, the `Ok` path is hot).
pub fn decode(record: RawRecord) -> Result<Decoded, Box<Malformed>> {
    if let Some(reason) = &record.unreadable {
        let error = DecodeError::Unreadable(reason.clone());
        return Err(Box::new(Malformed { error, record }));
    }
    let Some(value) = record.value.as_deref() else {
        return Ok(Decoded::Tombstone);
    };
    match scan(value) {
        Ok(parts) => {
            let RawRecord {
                key,
                value,
                headers,
                origin,
                unreadable: _,
                // The pipeline takes it before decoding (events do not carry it).
                timestamp: _,
            } = record;
            Ok(Decoded::Event(ChangeEvent {
                op: parts.op,
                value: value.unwrap_or_default(),
                before: parts.before,
                after: parts.after,
                source: parts.source,
                ts_ms: parts.ts_ms,
                transaction: parts.transaction,
                value_schema: parts.value_schema,
                key,
                headers: boundary::headers_in(headers),
                origin: origin.into(),
            }))
        }
        Err(error) => Err(Box::new(Malformed { error, record })),
    }
}

/// The decoded parts of an envelope, with spans into the value bytes.
struct Parts {
    op: Operation,
    before: Option<Span>,
    after: Option<Span>,
    value_schema: Option<Span>,
    source: SourceInfo,
    ts_ms: Option<i64>,
    transaction: Option<TransactionInfo>,
}

fn scan(value: &[u8]) -> Result<Parts, DecodeError> {
    if u32::try_from(value.len()).is_err() {
        return Err(DecodeError::TooLarge);
    }
    // serde would read an array as a struct's fields in order: only an object is one.
    if value.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(not_an_envelope(value, None));
    }
    // UTF-8 checked once for the whole value (a fast pass), so that serde reads `str`
    // and does not check each string and raw row again.
    let text = std::str::from_utf8(value).map_err(|_| not_an_envelope(value, None))?;
    let outer = read_envelope(text).map_err(|e| not_an_envelope(value, Some(e)))?;
    let (envelope, value_schema) = match (outer.payload, outer.op.is_some()) {
        (Some(payload), false) => {
            let inner = read_envelope(payload)
                .map_err(|e| DecodeError::NotAnEnvelope(format!("payload: {e}")))?;
            (inner, outer.schema.filter(|s| *s != "null"))
        }
        _ => (outer, None),
    };
    let op = match envelope.op.as_deref() {
        Some("c") => Operation::Create,
        Some("u") => Operation::Update,
        Some("d") => Operation::Delete,
        Some("r") => Operation::Read,
        Some("t") => Operation::Truncate,
        Some("m") => Operation::Message,
        Some(other) => {
            return Err(DecodeError::NotAnEnvelope(format!("unknown op {other:?}")));
        }
        None => return Err(DecodeError::NotAnEnvelope("missing `op`".into())),
    };
    let source = envelope
        .source
        .ok_or_else(|| DecodeError::NotAnEnvelope("missing `source`".into()))?;
    let before = row_span(value, "before", envelope.before)?;
    let after = row_span(value, "after", envelope.after)?;
    match op {
        Operation::Create | Operation::Update | Operation::Read if after.is_none() => {
            return Err(DecodeError::NotAnEnvelope(format!(
                "op {:?} without an `after` row",
                envelope.op.as_deref().unwrap_or_default()
            )));
        }
        Operation::Delete if before.is_none() => {
            return Err(DecodeError::NotAnEnvelope(
                "op \"d\" without a `before` row".into(),
            ));
        }
        _ => {}
    }
    Ok(Parts {
        op,
        before,
        after,
        value_schema: value_schema.map(|raw| span_of(value, raw)),
        source: source_info(source)?,
        ts_ms: envelope.ts_ms,
        transaction: envelope.transaction.map(|t| TransactionInfo {
            id: t.id.into_owned(),
            total_order: t.total_order,
            data_collection_order: t.data_collection_order,
        }),
    })
}

/// Why `value` did not deserialize as an envelope, said as precisely as possible. Only
/// called on the error path, so the extra passes over the bytes cost nothing per event.
fn not_an_envelope(value: &[u8], error: Option<serde_json::Error>) -> DecodeError {
    if let Err(utf8) = std::str::from_utf8(value) {
        return DecodeError::NotUtf8(format!("invalid byte at offset {}", utf8.valid_up_to()));
    }
    if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(value) {
        return DecodeError::NotJson(syntax.to_string());
    }
    let first = value.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'"') => DecodeError::NotAnObject("a string"),
        Some(b'[') => DecodeError::NotAnObject("an array"),
        Some(b't' | b'f') => DecodeError::NotAnObject("a boolean"),
        Some(b'n') => DecodeError::NotAnObject("null"),
        Some(b'{') => DecodeError::NotAnEnvelope(error.map(|e| e.to_string()).unwrap_or_default()),
        _ => DecodeError::NotAnObject("a number"),
    }
}

/// The span of a row image, `None` when absent or `null`; an error when not an object.
fn row_span(value: &[u8], field: &str, raw: Option<&str>) -> Result<Option<Span>, DecodeError> {
    match raw {
        None => Ok(None),
        Some("null") => Ok(None),
        Some(raw) if raw.starts_with('{') => Ok(Some(span_of(value, raw))),
        Some(_) => Err(DecodeError::NotAnEnvelope(format!(
            "`{field}` is not an object"
        ))),
    }
}

/// Where `raw` (borrowed from `value`) lies in `value`.
fn span_of(value: &[u8], text: &str) -> Span {
    // `text` borrows from `value` (the scanner's slice or serde_json's borrowed
    // RawValue), so the pointer difference is its offset; `scan` checked that `value`
    // fits in u32.
    let start = text.as_ptr() as usize - value.as_ptr() as usize;
    debug_assert!(start + text.len() <= value.len());
    Span {
        start: start as u32,
        len: text.len() as u32,
    }
}

fn source_info(source: Source<'_>) -> Result<SourceInfo, DecodeError> {
    let change_lsn = match (&source.change_lsn, source.lsn, &source.file) {
        (Some(lsn), _, _) => Some(lsn.to_string()),
        (None, Some(lsn), _) if lsn != "null" => Some(lsn.trim_matches('"').to_owned()),
        (None, _, Some(file)) => Some(format!("{file}:{}", source.pos.unwrap_or(0))),
        _ => None,
    };
    let event_serial_no = match source.event_serial_no {
        None | Some("null") => None,
        Some(raw) => Some(raw.trim_matches('"').parse::<i64>().map_err(|_| {
            DecodeError::NotAnEnvelope(format!("source.event_serial_no {raw} is not an integer"))
        })?),
    };
    let snapshot = match source.snapshot {
        None | Some("null" | "false" | "\"false\"") => SnapshotMarker::None,
        Some("true" | "\"true\"") => SnapshotMarker::InProgress,
        Some("\"first\"") => SnapshotMarker::First,
        Some("\"first_in_data_collection\"") => SnapshotMarker::FirstInDataCollection,
        Some("\"last_in_data_collection\"") => SnapshotMarker::LastInDataCollection,
        Some("\"last\"") => SnapshotMarker::Last,
        Some("\"incremental\"") => SnapshotMarker::Incremental,
        Some(other) => {
            return Err(DecodeError::NotAnEnvelope(format!(
                "source.snapshot {other} is not a known snapshot marker"
            )));
        }
    };
    Ok(SourceInfo {
        connector: source.connector.map(Cow::into_owned).unwrap_or_default(),
        name: source.name.map(Cow::into_owned).unwrap_or_default(),
        db: source.db.map(Cow::into_owned).unwrap_or_default(),
        schema: source.schema.map(Cow::into_owned),
        table: source
            .table
            .map(Cow::into_owned)
            .ok_or_else(|| DecodeError::NotAnEnvelope("missing `source.table`".into()))?,
        change_lsn,
        commit_lsn: source.commit_lsn.map(Cow::into_owned),
        event_serial_no,
        snapshot,
        ts_ms: source.ts_ms,
    })
}

/// The topic Debezium writes a table's events to: `<prefix>.<db>.<schema>.<table>`
/// (without the schema part for databases without schemas).
pub fn debezium_topic(source: &SourceInfo) -> String {
    match &source.schema {
        Some(schema) => format!("{}.{}.{}.{}", source.name, source.db, schema, source.table),
        None => format!("{}.{}.{}", source.name, source.db, source.table),
    }
}

/// Entry points for the coverage-guided fuzzers in `fuzz/` (built with `--cfg fuzzing`
/// only): the claims the decoder's fast paths make, checked on any input.
#[cfg(fuzzing)]
pub mod fuzzing {
    /// The scanner reads an envelope exactly as serde does, or leaves it to serde.
    pub fn scanner_agrees_with_serde(text: &str) {
        if let Some(fast) = super::fast_envelope(text) {
            let slow: super::Envelope<'_> = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("the scanner read what serde refuses ({e}): {text}"));
            assert_eq!(fast, slow, "the scanner and serde disagree on {text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::Origin;

    fn record(value: &str) -> RawRecord {
        RawRecord {
            timestamp: None,
            key: Some(br#"{"id":1}"#.to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: Vec::new(),
            origin: Origin {
                topic: "t".into(),
                partition: 0,
                offset: 7,
            },
            unreadable: None,
        }
    }

    fn event(value: &str) -> ChangeEvent {
        match decode(record(value)) {
            Ok(Decoded::Event(event)) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    fn slice(event: &ChangeEvent, span: Option<Span>) -> &str {
        let span = span.expect("span");
        std::str::from_utf8(&event.value[span.start as usize..(span.start + span.len) as usize])
            .expect("utf8")
    }

    const BARE: &str = r#"{"before":null,"after":{"id":1,"email":"a@b.c"},"source":{"version":"3.0.0.Final","connector":"sqlserver","name":"server1","ts_ms":1559729995937,"snapshot":"false","db":"testDB","sequence":null,"schema":"dbo","table":"customers","change_lsn":"00000027:00000758:0003","commit_lsn":"00000027:00000758:0005","event_serial_no":"1"},"op":"c","ts_ms":1559729998706,"transaction":null}"#;

    #[test]
    fn decodes_the_bare_form_with_spans_into_the_original_bytes() {
        let event = event(BARE);
        assert_eq!(event.op, Operation::Create);
        assert_eq!(event.before, None);
        assert_eq!(slice(&event, event.after), r#"{"id":1,"email":"a@b.c"}"#);
        assert_eq!(
            event.value,
            BARE.as_bytes(),
            "the value is kept byte for byte"
        );
        assert_eq!(event.source.table, "customers");
        assert_eq!(event.source.schema.as_deref(), Some("dbo"));
        assert_eq!(
            event.source.event_serial_no,
            Some(1),
            "string serial numbers are accepted"
        );
        assert_eq!(event.source.snapshot, SnapshotMarker::None);
        assert_eq!(event.ts_ms, Some(1559729998706));
        assert_eq!(event.origin.offset, 7);
        assert_eq!(
            debezium_topic(&event.source),
            "server1.testDB.dbo.customers"
        );
    }

    #[test]
    fn decodes_the_schema_and_payload_form() {
        let value = format!(
            r#"{{"schema":{{"type":"struct","name":"x.Envelope"}},"payload":{}}}"#,
            BARE.replace(r#""snapshot":"false""#, r#""snapshot":true"#)
        );
        let event = event(&value);
        assert_eq!(
            slice(&event, event.value_schema),
            r#"{"type":"struct","name":"x.Envelope"}"#
        );
        assert_eq!(slice(&event, event.after), r#"{"id":1,"email":"a@b.c"}"#);
        assert_eq!(
            event.source.snapshot,
            SnapshotMarker::InProgress,
            "boolean markers are accepted"
        );
    }

    #[test]
    fn invalid_utf8_and_unreadable_records_say_so() {
        let mut bytes = record("");
        bytes.value = Some(b"{\"op\":\"c\xff\"}".to_vec());
        let error = decode(bytes).expect_err("not UTF-8").error;
        assert_eq!(
            error.to_string(),
            "value is not valid UTF-8 (so not JSON): invalid byte at offset 8"
        );
        let mut unreadable = record(BARE);
        unreadable.unreadable = Some("line 3 is too long".into());
        let malformed = decode(unreadable).expect_err("unreadable");
        assert_eq!(malformed.error.to_string(), "line 3 is too long");
    }

    /// The scanner reads what it accepts exactly as serde does, and leaves to serde
    /// what it cannot tell. Texts: the envelopes of these tests, forms only serde reads,
    /// and each of them with one byte removed, replaced or inserted.
    #[test]
    fn the_scanner_reads_envelopes_as_serde_does() {
        let payload_form = format!(r#"{{"schema":{{"type":"struct"}},"payload":{BARE}}}"#);
        let accepted = [
            BARE,
            &payload_form,
            r#" {"op":"c","after":{},"source":{"table":"t","lsn":5,"pos":-3},"transaction":{"id":"x","total_order":2}} "#,
            r#"{"op":"d","before":{"a":[1,{"b":null}]},"source":{"table":"t","extra":{"deep":[[]]}},"ts_ms":null}"#,
            r#"{"op":null,"source":null,"transaction":null,"before":null}"#,
        ];
        for text in accepted {
            let fast = fast_envelope(text).unwrap_or_else(|| panic!("the scanner reads {text}"));
            let serde: Envelope<'_> = serde_json::from_str(text).expect("serde reads it");
            assert_eq!(fast, serde, "{text}");
        }
        let for_serde = [
            r#"{"op":"c","op":"u"}"#,
            r#"{"op":"\u0063"}"#,
            r#"{"ts_ms":-0}"#,
            r#"{"ts_ms":1e3}"#,
            r#"{"ts_ms":9223372036854775808}"#,
            r#"{"source":["sqlserver"]}"#,
            r#"{"source":{"table":"t","table":"u"}}"#,
            r#"{"transaction":{"total_order":1}}"#,
            r#"{"transaction":{"id":"x","total_order":null}}"#,
            "\u{a0}{\"op\":\"c\"}",
            r#"{"op":"c"} x"#,
        ];
        for text in for_serde {
            assert_eq!(fast_envelope(text), None, "left to serde: {text}");
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let inserts = b" ,:\"\\{}[]0-n";
        let (mut tried, mut agreed) = (0, 0);
        for text in accepted.iter().chain(&for_serde) {
            for _ in 0..2_000 {
                let mut bytes = text.as_bytes().to_vec();
                let at = random(bytes.len());
                if !bytes[at].is_ascii() {
                    continue;
                }
                match random(3) {
                    0 => {
                        bytes.remove(at);
                    }
                    1 => bytes[at] = inserts[random(inserts.len())],
                    _ => bytes.insert(at, inserts[random(inserts.len())]),
                }
                let Ok(mutated) = String::from_utf8(bytes) else {
                    continue;
                };
                tried += 1;
                if let Some(fast) = fast_envelope(&mutated) {
                    let serde: Envelope<'_> = serde_json::from_str(&mutated).unwrap_or_else(|e| {
                        panic!("serde refuses what the scanner read: {mutated}: {e}")
                    });
                    assert_eq!(fast, serde, "{mutated}");
                    agreed += 1;
                }
            }
        }
        assert!(tried > 20_000 && agreed > 1_000, "{agreed} of {tried}");
    }

    #[test]
    fn a_null_value_is_a_tombstone() {
        let mut tombstone = record("");
        tombstone.value = None;
        assert_eq!(decode(tombstone), Ok(Decoded::Tombstone));
    }

    #[test]
    fn malformed_values_are_refused_with_a_reason_and_returned_whole() {
        let cases = [
            ("not json", "value is not valid JSON"),
            (
                r#""a valid JSON string""#,
                "expected a JSON object (a Debezium envelope), found a string",
            ),
            ("[1]", "found an array"),
            ("42", "found a number"),
            (
                r#"{"op":5}"#,
                "not a Debezium envelope: invalid type: integer `5`",
            ),
            (r#"{"after":{}}"#, "missing `op`"),
            (r#"{"op":"x","source":{"table":"t"}}"#, "unknown op \"x\""),
            (r#"{"op":"c","after":{"id":1}}"#, "missing `source`"),
            (
                r#"{"op":"c","source":{"table":"t"}}"#,
                "without an `after` row",
            ),
            (
                r#"{"op":"d","source":{"table":"t"},"after":null}"#,
                "without a `before` row",
            ),
            (
                r#"{"op":"c","source":{"table":"t"},"after":[1]}"#,
                "`after` is not an object",
            ),
            (
                r#"{"op":"c","source":{},"after":{}}"#,
                "missing `source.table`",
            ),
        ];
        for (value, expected) in cases {
            let malformed = decode(record(value)).expect_err(value);
            let error = &malformed.error;
            assert!(error.to_string().contains(expected), "{value}: {error}");
            assert_eq!(
                malformed.record.value.as_deref(),
                Some(value.as_bytes()),
                "the record comes back intact"
            );
        }
    }
}
