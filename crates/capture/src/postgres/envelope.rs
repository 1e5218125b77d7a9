//! Debezium's PostgreSQL change events, byte for byte: the key (primary key, else the
//! replica identity's columns), the value envelope (`before`, `after`, `source`,
//! `transaction`, `op`, `ts_ms`, `ts_us`, `ts_ns`), truncates (`op: t`) and logical
//! decoding messages (`op: m`), with the source block of
//! `io.debezium.connector.postgresql.Source` (`PostgresSourceInfoStructMaker`: the
//! common fields, then `schema, table, txId, lsn, xmin`; `sequence` is
//! `["<last commit lsn>","<lsn>"]` as a string, as `SourceInfo.sequence()` writes it).
//! Transaction boundaries and heartbeats are the shared ones ([`crate::envelope`]).

use crate::envelope::{EventSettings, Op, Snapshot, TRANSACTION_SCHEMA, TransactionBlock, wrap};
use crate::masks::Mask;
use crate::sqlserver::types::{push_i64, push_json_string, push_u64};

use super::offsets::Lsn;
use super::pgoutput::Datum;
use super::types::{Kind, ValueError, push_value, schema};

/// Debezium's `unavailable.value.placeholder`: an unchanged TOASTed value the server did
/// not send (`before`/`after` of an update without REPLICA IDENTITY FULL).
pub const UNAVAILABLE: &str = "__debezium_unavailable_value";

/// One captured column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgColumn {
    pub name: String,
    pub kind: Kind,
    pub optional: bool,
    /// Its index in the server's tuples (unmapped columns are skipped, so it can differ
    /// from the column's place here).
    pub index: usize,
    /// `column.mask.*` (character columns only), with the column's declared length
    /// (`varchar(n)`, `char(n)`), to which a hash is cut, as Debezium cuts it.
    pub mask: Option<(Mask, Option<usize>)>,
}

/// A captured table as the last `Relation` message (or the snapshot) described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTable {
    pub schema: String,
    pub table: String,
    pub columns: Vec<PgColumn>,
    /// Indexes into `columns` of the event key: `message_key_columns`' columns, else the
    /// primary key, else the replica identity index (empty: the key is null).
    pub key: Vec<usize>,
    /// Indexes into `columns` of the value's fields: all but those
    /// `column_include_list`/`column_exclude_list` leave out (which stay in `columns`
    /// only when the key has them, as Debezium's key keeps them).
    pub value: Vec<usize>,
}

impl PgTable {
    /// `schema.table`, as Debezium names a PostgreSQL data collection.
    pub fn id(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// `<prefix>.<schema>.<table>`.
    pub fn topic(&self, settings: &EventSettings) -> String {
        format!("{}.{}.{}", settings.prefix, self.schema, self.table)
    }

    fn row_schema(
        &self,
        settings: &EventSettings,
        columns: &[usize],
        name: &str,
        field: Option<&str>,
    ) -> String {
        let fields: Vec<String> = columns
            .iter()
            .map(|&i| {
                let c = &self.columns[i];
                schema(&c.kind, c.optional, Some(&c.name), settings.decimal_mode)
            })
            .collect();
        let mut out = format!(
            r#"{{"type":"struct","fields":[{}],"optional":{},"name":"{}.{name}""#,
            fields.join(","),
            field.is_some(),
            self.topic(settings)
        );
        if let Some(field) = field {
            out.push_str(&format!(r#","field":"{field}""#));
        }
        out.push('}');
        out
    }

    fn envelope_schema(&self, settings: &EventSettings) -> String {
        let all = &self.value;
        format!(
            r#"{{"type":"struct","fields":[{},{},{SOURCE_SCHEMA},{TRANSACTION_SCHEMA},{{"type":"string","optional":false,"field":"op"}},{{"type":"int64","optional":true,"field":"ts_ms"}},{{"type":"int64","optional":true,"field":"ts_us"}},{{"type":"int64","optional":true,"field":"ts_ns"}}],"optional":false,"name":"{}.Envelope","version":2}}"#,
            self.row_schema(settings, all, "Value", Some("before")),
            self.row_schema(settings, all, "Value", Some("after")),
            self.topic(settings)
        )
    }
}

/// `io.debezium.connector.postgresql.Source` (Debezium 3.0).
const SOURCE_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"}"#;

/// The `source` block's position fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgSource {
    /// The commit time (the snapshot's start for `op: r`), epoch µs.
    pub ts_us: i64,
    pub snapshot: Snapshot,
    pub tx_id: Option<i64>,
    pub lsn: Option<Lsn>,
    /// The last commit LSN before this event (the sequence's first element).
    pub last_commit_lsn: Option<Lsn>,
}

/// A row the mapper refused, named for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table}: column {column}: {error} (at LSN {lsn})")]
pub struct PgRowError {
    pub table: String,
    pub column: String,
    pub lsn: String,
    /// Boxed: row errors are rare, and results on the hot path stay small.
    pub error: Box<ValueError>,
}

fn push_row(
    out: &mut String,
    table: &PgTable,
    columns: impl Iterator<Item = usize>,
    row: &[Datum],
    settings: &EventSettings,
    source: &PgSource,
    field: Field,
) -> Result<(), PgRowError> {
    out.push('{');
    for (n, i) in columns.enumerate() {
        let column = &table.columns[i];
        if n > 0 {
            out.push(',');
        }
        push_json_string(out, &column.name);
        out.push(':');
        let datum = row.get(column.index).unwrap_or(&Datum::Null);
        if let (Field::Value, Some((mask, length))) = (field, &column.mask) {
            let text = match datum {
                Datum::Null => None,
                Datum::Unchanged => Some(std::borrow::Cow::Borrowed(UNAVAILABLE)),
                Datum::Text(bytes) => Some(String::from_utf8_lossy(bytes)),
            };
            match mask.apply(text.as_deref(), *length) {
                Some(masked) => push_json_string(out, &masked),
                None => out.push_str("null"),
            }
            continue;
        }
        match datum {
            Datum::Null => out.push_str("null"),
            Datum::Unchanged => push_unavailable(out, &column.kind),
            Datum::Text(bytes) => {
                // Valid UTF-8 in all but broken databases: checked, not copied.
                let text = match std::str::from_utf8(bytes) {
                    Ok(text) => std::borrow::Cow::Borrowed(text),
                    Err(_) => String::from_utf8_lossy(bytes),
                };
                push_value(out, &column.kind, &text, settings.decimal_mode).map_err(|error| {
                    PgRowError {
                        table: table.id(),
                        column: column.name.clone(),
                        lsn: source
                            .lsn
                            .map_or_else(|| "-".into(), super::offsets::lsn_text),
                        error: Box::new(error),
                    }
                })?;
            }
        }
    }
    out.push('}');
    Ok(())
}

/// Whether a row is written as the record key (never masked) or as a value field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Key,
    Value,
}

/// Debezium's placeholder for an unchanged TOASTed value: the text for string types,
/// its bytes for binary ones, null for the rest.
fn push_unavailable(out: &mut String, kind: &Kind) {
    match kind {
        Kind::Text | Kind::Named(_) | Kind::Enum(_) | Kind::Hstore { map: false } => {
            push_json_string(out, UNAVAILABLE)
        }
        Kind::Bytea(binary) => push_json_string(
            out,
            &crate::sqlserver::types::binary_text(UNAVAILABLE.as_bytes(), *binary),
        ),
        Kind::Array(item) if matches!(**item, Kind::Text) => {
            out.push('[');
            push_json_string(out, UNAVAILABLE);
            out.push(']');
        }
        _ => out.push_str("null"),
    }
}

/// The record key of `row` (`None`: the table has neither a primary key nor a replica
/// identity index).
pub fn key(
    table: &PgTable,
    row: &[Datum],
    settings: &EventSettings,
    source: &PgSource,
) -> Result<Option<Vec<u8>>, PgRowError> {
    if table.key.is_empty() {
        return Ok(None);
    }
    let mut payload = String::with_capacity(32);
    push_row(
        &mut payload,
        table,
        table.key.iter().copied(),
        row,
        settings,
        source,
        Field::Key,
    )?;
    Ok(Some(wrap(
        settings,
        || table.row_schema(settings, &table.key, "Key", None),
        payload,
    )))
}

/// One change event's value.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub op: Op,
    pub before: Option<&'a [Datum]>,
    pub after: Option<&'a [Datum]>,
    pub source: PgSource,
    pub transaction: Option<&'a TransactionBlock>,
    /// When sluice processed the event, epoch µs.
    pub now_us: i64,
}

/// The value of a change event.
pub fn value(
    table: &PgTable,
    change: &Change<'_>,
    settings: &EventSettings,
) -> Result<Vec<u8>, PgRowError> {
    value_with_source(table, change, settings, None)
}

/// The `source` block of events about `table` at `source`, rendered once for the many
/// events that share it (the snapshot's rows, but for their first and last).
pub fn render_source(table: &PgTable, source: &PgSource, settings: &EventSettings) -> String {
    let mut p = String::with_capacity(320);
    push_source(&mut p, settings, &table.schema, &table.table, source);
    p
}

/// [`value`], with the `source` block already rendered ([`render_source`] of
/// `change.source`) when given.
pub fn value_with_source(
    table: &PgTable,
    change: &Change<'_>,
    settings: &EventSettings,
    rendered_source: Option<&str>,
) -> Result<Vec<u8>, PgRowError> {
    let mut p = String::with_capacity(512);
    for (name, image) in [
        ("{\"before\":", change.before),
        (",\"after\":", change.after),
    ] {
        p.push_str(name);
        match image {
            Some(row) => push_row(
                &mut p,
                table,
                table.value.iter().copied(),
                row,
                settings,
                &change.source,
                Field::Value,
            )?,
            None => p.push_str("null"),
        }
    }
    push_tail(
        &mut p,
        settings,
        (&table.schema, &table.table),
        change.op.as_str(),
        (&change.source, rendered_source),
        change.transaction,
        change.now_us,
    );
    Ok(wrap(settings, || table.envelope_schema(settings), p))
}

/// `,"source":...,"transaction":...,"op":...,"ts_*":...}`; the source block as
/// rendered when it is (`(source, Some(rendered))`).
fn push_tail(
    p: &mut String,
    settings: &EventSettings,
    (schema, table): (&str, &str),
    op: &str,
    (source, rendered): (&PgSource, Option<&str>),
    transaction: Option<&TransactionBlock>,
    now_us: i64,
) {
    p.push_str(",\"source\":");
    match rendered {
        Some(rendered) => p.push_str(rendered),
        None => push_source(p, settings, schema, table, source),
    }
    p.push_str(",\"transaction\":");
    match transaction {
        Some(tx) => {
            p.push_str("{\"id\":");
            push_json_string(p, &tx.id);
            p.push_str(",\"total_order\":");
            push_i64(p, tx.total_order);
            p.push_str(",\"data_collection_order\":");
            push_i64(p, tx.data_collection_order);
            p.push('}');
        }
        None => p.push_str("null"),
    }
    p.push_str(",\"op\":\"");
    p.push_str(op);
    p.push_str("\",\"ts_ms\":");
    push_i64(p, now_us.div_euclid(1_000));
    p.push_str(",\"ts_us\":");
    push_i64(p, now_us);
    p.push_str(",\"ts_ns\":");
    push_i64(p, now_us * 1_000);
    p.push('}');
}

/// A truncate (`op: t`, key null) of `table`.
pub fn truncate_value(
    table: &PgTable,
    source: &PgSource,
    transaction: Option<&TransactionBlock>,
    now_us: i64,
    settings: &EventSettings,
) -> Vec<u8> {
    let mut p = String::from("{\"before\":null,\"after\":null");
    push_tail(
        &mut p,
        settings,
        (&table.schema, &table.table),
        "t",
        (source, None),
        transaction,
        now_us,
    );
    wrap(settings, || table.envelope_schema(settings), p)
}

/// A logical decoding message (`pg_logical_emit_message`) on `<prefix>.message`: key
/// `{"prefix":...}`, value `{"op":"m","ts_ms":...,"source":...,"message":{"prefix":...,
/// "content":<base64>}}` (the source's schema and table empty), as Debezium's
/// `LogicalDecodingMessage` events.
pub fn message_event(
    settings: &EventSettings,
    prefix: &str,
    content: &[u8],
    source: &PgSource,
    now_us: i64,
) -> (Vec<u8>, Vec<u8>) {
    use base64::Engine;
    let mut k = String::from("{\"prefix\":");
    push_json_string(&mut k, prefix);
    k.push('}');
    let mut v = format!(
        "{{\"op\":\"m\",\"ts_ms\":{},\"source\":",
        now_us.div_euclid(1_000)
    );
    push_source(&mut v, settings, "", "", source);
    v.push_str(",\"message\":{\"prefix\":");
    push_json_string(&mut v, prefix);
    v.push_str(",\"content\":\"");
    v.push_str(&base64::engine::general_purpose::STANDARD.encode(content));
    v.push_str("\"}}");
    (
        wrap(settings, || MESSAGE_KEY_SCHEMA.to_owned(), k),
        wrap(
            settings,
            || {
                format!(
                    r#"{{"type":"struct","fields":[{{"type":"string","optional":false,"field":"op"}},{{"type":"int64","optional":true,"field":"ts_ms"}},{SOURCE_SCHEMA},{MESSAGE_SCHEMA}],"optional":false,"name":"io.debezium.connector.postgresql.MessageValue"}}"#
                )
            },
            v,
        ),
    )
}

const MESSAGE_KEY_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":true,"field":"prefix"}],"optional":false,"name":"io.debezium.connector.postgresql.MessageKey"}"#;
const MESSAGE_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":true,"field":"prefix"},{"type":"bytes","optional":true,"field":"content"}],"optional":true,"name":"io.debezium.connector.postgresql.Message","field":"message"}"#;

fn push_optional(p: &mut String, n: Option<i64>) {
    match n {
        Some(n) => push_i64(p, n),
        None => p.push_str("null"),
    }
}

/// The `source` block.
fn push_source(p: &mut String, settings: &EventSettings, schema: &str, table: &str, s: &PgSource) {
    p.push_str("{\"version\":");
    push_json_string(p, &settings.version);
    p.push_str(",\"connector\":\"postgresql\",\"name\":");
    push_json_string(p, &settings.prefix);
    p.push_str(",\"ts_ms\":");
    push_i64(p, s.ts_us.div_euclid(1_000));
    p.push_str(",\"snapshot\":\"");
    p.push_str(s.snapshot.as_str());
    p.push_str("\",\"db\":");
    push_json_string(p, &settings.database);
    // `SourceInfo.sequence()`: a JSON array of two strings (or nulls), as a string.
    let part = |p: &mut String, lsn: Option<Lsn>| match lsn {
        Some(lsn) => {
            p.push_str("\\\"");
            push_u64(p, lsn);
            p.push_str("\\\"");
        }
        None => p.push_str("null"),
    };
    p.push_str(",\"sequence\":\"[");
    part(p, s.last_commit_lsn);
    p.push(',');
    part(p, s.lsn);
    p.push_str("]\",\"ts_us\":");
    push_i64(p, s.ts_us);
    p.push_str(",\"ts_ns\":");
    push_i64(p, s.ts_us * 1_000);
    p.push_str(",\"schema\":");
    push_json_string(p, schema);
    p.push_str(",\"table\":");
    push_json_string(p, table);
    p.push_str(",\"txId\":");
    push_optional(p, s.tx_id);
    p.push_str(",\"lsn\":");
    push_optional(p, s.lsn.map(|l| l as i64));
    p.push_str(",\"xmin\":null}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn settings() -> EventSettings {
        EventSettings {
            prefix: "dbserver1".into(),
            database: "postgres".into(),
            version: "3.0.0.Final".into(),
            decimal_mode: crate::sqlserver::types::DecimalMode::Precise,
            time_precision: Default::default(),
            binary_mode: Default::default(),
            schemas: false,
        }
    }

    fn customers() -> PgTable {
        PgTable {
            schema: "inventory".into(),
            table: "customers".into(),
            columns: vec![
                PgColumn {
                    name: "id".into(),
                    kind: Kind::Int32,
                    optional: false,
                    index: 0,
                    mask: None,
                },
                PgColumn {
                    name: "first_name".into(),
                    kind: Kind::Text,
                    optional: false,
                    index: 1,
                    mask: None,
                },
                PgColumn {
                    name: "email".into(),
                    kind: Kind::Text,
                    optional: true,
                    index: 3,
                    mask: None,
                },
            ],
            key: vec![0],
            value: vec![0, 1, 2],
        }
    }

    /// A streamed change to `row` (its after-image) with no position or times.
    fn streamed(op: Op, row: &[Datum]) -> Change<'_> {
        Change {
            op,
            before: None,
            after: Some(row),
            source: PgSource {
                ts_us: 0,
                snapshot: Snapshot::False,
                tx_id: None,
                lsn: None,
                last_commit_lsn: None,
            },
            transaction: None,
            now_us: 0,
        }
    }

    fn text(s: &'static str) -> Datum {
        Datum::Text(Bytes::from_static(s.as_bytes()))
    }

    /// The insert of Debezium's PostgreSQL documentation ("create event"), with its
    /// positions: `sequence` `["24023119","24023128"]`, `txId` 555, `lsn` 24023128.
    #[test]
    fn an_insert_is_written_as_debezium_documents_it() {
        let row = [
            text("1"),
            text("Anne"),
            text("ignored (unmapped)"),
            text("annek@noanswer.org"),
        ];
        let source = PgSource {
            ts_us: 1_559_033_904_863_000,
            snapshot: Snapshot::False,
            tx_id: Some(555),
            lsn: Some(24_023_128),
            last_commit_lsn: Some(24_023_119),
        };
        let change = Change {
            op: Op::Create,
            before: None,
            after: Some(&row),
            source,
            transaction: None,
            now_us: 1_559_033_904_863_123,
        };
        let value = String::from_utf8(value(&customers(), &change, &settings()).expect("maps"))
            .expect("utf8");
        assert_eq!(
            value,
            r#"{"before":null,"after":{"id":1,"first_name":"Anne","email":"annek@noanswer.org"},"source":{"version":"3.0.0.Final","connector":"postgresql","name":"dbserver1","ts_ms":1559033904863,"snapshot":"false","db":"postgres","sequence":"[\"24023119\",\"24023128\"]","ts_us":1559033904863000,"ts_ns":1559033904863000000,"schema":"inventory","table":"customers","txId":555,"lsn":24023128,"xmin":null},"transaction":null,"op":"c","ts_ms":1559033904863,"ts_us":1559033904863123,"ts_ns":1559033904863123000}"#
        );
        let key = key(&customers(), &row, &settings(), &source)
            .expect("key")
            .expect("a key");
        assert_eq!(key, br#"{"id":1}"#);
    }

    /// A column the column lists leave out of the value stays in the key (as Debezium's
    /// key keeps it); a mask applies to the value only, NULL and TOASTed values included
    /// for `chars`, and a hash is cut to the column's declared length.
    #[test]
    fn value_columns_and_masks_shape_the_value_not_the_key() {
        let mut table = customers();
        table.value = vec![1, 2];
        table.columns[1].mask = Some((
            Mask::Hash {
                algorithm: crate::masks::HashAlgorithm::Sha256,
                salt: "salt".into(),
                v2: true,
            },
            Some(10),
        ));
        table.columns[2].mask = Some((Mask::Chars(4), None));
        let row = [text("7"), text("Anne"), Datum::Null, Datum::Null];
        let change = streamed(Op::Create, &row);
        let source = change.source;
        let written: serde_json::Value =
            serde_json::from_slice(&value(&table, &change, &settings()).expect("maps"))
                .expect("JSON");
        let hash = &hex::encode(crate::masks::HashAlgorithm::Sha256.digest(b"salt", b"Anne"))[..10];
        assert_eq!(
            written["after"],
            serde_json::json!({"first_name": hash, "email": "****"})
        );
        let key = key(&table, &row, &settings(), &source)
            .expect("key")
            .expect("a key");
        assert_eq!(key, br#"{"id":7}"#);
        let schemas = EventSettings {
            schemas: true,
            ..settings()
        };
        let written: serde_json::Value =
            serde_json::from_slice(&value(&table, &change, &schemas).expect("maps")).expect("JSON");
        let fields: Vec<&str> = written["schema"]["fields"][1]["fields"]
            .as_array()
            .expect("after's fields")
            .iter()
            .map(|f| f["field"].as_str().expect("name"))
            .collect();
        assert_eq!(fields, ["first_name", "email"]);
    }

    #[test]
    fn unchanged_toast_values_get_the_placeholder_and_bad_values_name_their_column() {
        let row = [text("1"), Datum::Unchanged, Datum::Null, Datum::Null];
        let change = streamed(Op::Update, &row);
        let value = String::from_utf8(value(&customers(), &change, &settings()).expect("maps"))
            .expect("utf8");
        assert!(
            value.contains(r#""first_name":"__debezium_unavailable_value","email":null"#),
            "{value}"
        );
        assert!(value.contains(r#""sequence":"[null,null]""#), "{value}");
        let bad = [text("x")];
        let change = Change {
            after: Some(&bad),
            ..change
        };
        let error = super::value(&customers(), &change, &settings()).expect_err("not an int");
        assert_eq!(error.column, "id");
    }

    #[test]
    fn messages_and_truncates() {
        let source = PgSource {
            ts_us: 1_000,
            snapshot: Snapshot::False,
            tx_id: Some(7),
            lsn: Some(9),
            last_commit_lsn: None,
        };
        let (k, v) = message_event(&settings(), "audit", b"hi", &source, 2_000);
        assert_eq!(k, br#"{"prefix":"audit"}"#);
        let v = String::from_utf8(v).expect("utf8");
        assert!(v.starts_with(r#"{"op":"m","ts_ms":2,"source":{"#), "{v}");
        assert!(v.ends_with(r#""schema":"","table":"","txId":7,"lsn":9,"xmin":null},"message":{"prefix":"audit","content":"aGk="}}"#), "{v}");
        let t = String::from_utf8(truncate_value(
            &customers(),
            &source,
            None,
            2_000,
            &settings(),
        ))
        .expect("utf8");
        assert!(
            t.starts_with(r#"{"before":null,"after":null,"source":"#) && t.contains(r#""op":"t""#),
            "{t}"
        );
    }
}
