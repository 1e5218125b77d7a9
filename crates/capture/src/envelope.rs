//! Debezium's SQL Server change events, byte for byte: the key (`{"id":1001}`), the value
//! envelope (`before`, `after`, `source`, `transaction`, `op`, `ts_ms`, `ts_us`, `ts_ns`
//! in that order) and, with `schemas.enable=true`, both wrapped as
//! `{"schema":...,"payload":...}` with the schemas Debezium 3.0 declares
//! (`<prefix>.<db>.<schema>.<table>.Key` / `.Value` / `.Envelope`,
//! `io.debezium.connector.sqlserver.Source`, `event.block`).

use crate::sqlserver::lsn::Lsn;
use crate::sqlserver::types::{
    BinaryMode, Column, DecimalMode, MapError, SqlValue, TimePrecision, ValueModes, field_schema,
    key_field_schema, push_json_string, push_key_value, push_value,
};

/// The `source.version` sluice writes by default: the Debezium release whose events it
/// reproduces (consumers that branch on it see what they were written against).
pub const DEBEZIUM_VERSION: &str = "3.0.0.Final";

/// How events are written (the Debezium connector options that shape them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSettings {
    /// `topic.prefix` (the `name` in `source`).
    pub prefix: String,
    pub database: String,
    /// `source.version`.
    pub version: String,
    pub decimal_mode: DecimalMode,
    /// `time.precision.mode`.
    pub time_precision: TimePrecision,
    /// `binary.handling.mode`.
    pub binary_mode: BinaryMode,
    /// `schemas.enable` of the JSON converter (key and value alike).
    pub schemas: bool,
}

impl EventSettings {
    /// The three `*.mode` settings that shape values.
    pub fn value_modes(&self) -> ValueModes {
        ValueModes {
            decimal: self.decimal_mode,
            time: self.time_precision,
            binary: self.binary_mode,
        }
    }
}

/// One captured table and its columns, in the capture instance's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub schema: String,
    pub table: String,
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the primary key, in key order (empty: no key, the
    /// event key is null).
    pub key: Vec<usize>,
}

impl TableSchema {
    /// `schema.table`, how errors and config name a table.
    pub fn id(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// `<prefix>.<db>.<schema>.<table>`, sanitised as Debezium's topic naming does.
    pub fn topic(&self, settings: &EventSettings) -> String {
        topic_name(&format!(
            "{}.{}.{}.{}",
            settings.prefix, settings.database, self.schema, self.table
        ))
    }

    fn key_schema(&self, settings: &EventSettings) -> String {
        let fields: Vec<String> = self
            .key
            .iter()
            .map(|&i| key_field_schema(&self.columns[i], settings.value_modes()))
            .collect();
        format!(
            r#"{{"type":"struct","fields":[{}],"optional":false,"name":"{}.Key"}}"#,
            fields.join(","),
            self.topic(settings)
        )
    }

    fn row_schema(&self, settings: &EventSettings, field: &str) -> String {
        let fields: Vec<String> = self
            .columns
            .iter()
            .map(|c| field_schema(c, settings.value_modes()))
            .collect();
        format!(
            r#"{{"type":"struct","fields":[{}],"optional":true,"name":"{}.Value","field":"{field}"}}"#,
            fields.join(","),
            self.topic(settings)
        )
    }

    /// The envelope schema (`schemas.enable=true`).
    pub fn envelope_schema(&self, settings: &EventSettings) -> String {
        format!(
            r#"{{"type":"struct","fields":[{},{},{SOURCE_SCHEMA},{TRANSACTION_SCHEMA},{{"type":"string","optional":false,"field":"op"}},{{"type":"int64","optional":true,"field":"ts_ms"}},{{"type":"int64","optional":true,"field":"ts_us"}},{{"type":"int64","optional":true,"field":"ts_ns"}}],"optional":false,"name":"{}.Envelope","version":2}}"#,
            self.row_schema(settings, "before"),
            self.row_schema(settings, "after"),
            self.topic(settings)
        )
    }
}

/// A topic name as Debezium's topic naming strategy makes it: every character Kafka
/// refuses in a topic name (anything but ASCII letters, digits, `.`, `_` and `-`)
/// replaced by `_`, so a table named `Order Lines` or `Straße` gets the topic a
/// Debezium deployment gave it.
pub fn topic_name(name: &str) -> String {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.chars().all(valid) {
        return name.to_owned();
    }
    let sanitised: String = name
        .chars()
        .map(|c| if valid(c) { c } else { '_' })
        .collect();
    tracing::debug!(name, sanitised, "topic name sanitised");
    sanitised
}

/// Debezium 3.0.0.Final's `io.debezium.connector.sqlserver.Source` (its `snapshot`
/// enum lists fewer values than it emits; later releases list them all).
const SOURCE_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"string","optional":true,"field":"change_lsn"},{"type":"string","optional":true,"field":"commit_lsn"},{"type":"int64","optional":true,"field":"event_serial_no"}],"optional":false,"name":"io.debezium.connector.sqlserver.Source","field":"source"}"#;

pub(crate) const TRANSACTION_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"}"#;

/// `source.snapshot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    False,
    First,
    FirstInDataCollection,
    True,
    LastInDataCollection,
    Last,
}

impl Snapshot {
    pub fn as_str(self) -> &'static str {
        match self {
            Snapshot::False => "false",
            Snapshot::First => "first",
            Snapshot::FirstInDataCollection => "first_in_data_collection",
            Snapshot::True => "true",
            Snapshot::LastInDataCollection => "last_in_data_collection",
            Snapshot::Last => "last",
        }
    }
}

/// The `source` block's position fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The commit time (the snapshot's start for `op: r`), epoch ms.
    pub ts_ms: i64,
    pub snapshot: Snapshot,
    pub change_lsn: Option<Lsn>,
    pub commit_lsn: Option<Lsn>,
    pub event_serial_no: Option<i64>,
}

/// The `transaction` block (`provide.transaction.metadata=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionBlock {
    /// The commit LSN, as Debezium's SQL Server connector names a transaction.
    pub id: String,
    pub total_order: i64,
    pub data_collection_order: i64,
}

/// `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Create,
    Update,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Read => "r",
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
        }
    }
}

/// A row the mapper refused, named for the operator: table, column, LSN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table}: {error} (at LSN {lsn})")]
pub struct RowError {
    pub table: String,
    pub lsn: String,
    pub error: MapError,
}

fn row_error(table: &TableSchema, source: &Source, error: MapError) -> RowError {
    RowError {
        table: table.id(),
        lsn: source
            .change_lsn
            .or(source.commit_lsn)
            .map(|l| l.to_string())
            .unwrap_or_else(|| "-".into()),
        error,
    }
}

/// Whether a row is written as the record key (never masked) or as a value field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Key,
    Value,
}

fn push_row(
    out: &mut String,
    table: &TableSchema,
    columns: &[usize],
    row: &[SqlValue],
    modes: ValueModes,
    field: Field,
) -> Result<(), MapError> {
    out.push('{');
    for (n, &i) in columns.iter().enumerate() {
        let column = &table.columns[i];
        if n > 0 {
            out.push(',');
        }
        push_json_string(out, &column.name);
        out.push(':');
        let value = row.get(i).ok_or_else(|| MapError {
            column: column.name.clone(),
            reason: format!(
                "the row has {} values, not {}",
                row.len(),
                table.columns.len()
            ),
        })?;
        match field {
            Field::Key => push_key_value(out, column, value, modes)?,
            Field::Value => push_value(out, column, value, modes)?,
        }
    }
    out.push('}');
    Ok(())
}

/// The record key of `row`: the primary key (`None` for a table without one).
pub fn key(
    table: &TableSchema,
    row: &[SqlValue],
    settings: &EventSettings,
    source: &Source,
) -> Result<Option<Vec<u8>>, RowError> {
    if table.key.is_empty() {
        return Ok(None);
    }
    let mut payload = String::new();
    push_row(
        &mut payload,
        table,
        &table.key,
        row,
        settings.value_modes(),
        Field::Key,
    )
    .map_err(|e| row_error(table, source, e))?;
    Ok(Some(wrap(settings, || table.key_schema(settings), payload)))
}

/// One change event's value.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub op: Op,
    pub before: Option<&'a [SqlValue]>,
    pub after: Option<&'a [SqlValue]>,
    pub source: Source,
    pub transaction: Option<&'a TransactionBlock>,
    /// When sluice processed the event, epoch µs (`ts_ms`/`ts_us`/`ts_ns`).
    pub now_us: i64,
}

/// The value of a change event.
pub fn value(
    table: &TableSchema,
    change: &Change<'_>,
    settings: &EventSettings,
) -> Result<Vec<u8>, RowError> {
    let all: Vec<usize> = (0..table.columns.len()).collect();
    let modes = settings.value_modes();
    let mut p = String::with_capacity(512);
    let fail = |e| row_error(table, &change.source, e);
    p.push_str("{\"before\":");
    match change.before {
        Some(row) => push_row(&mut p, table, &all, row, modes, Field::Value).map_err(fail)?,
        None => p.push_str("null"),
    }
    p.push_str(",\"after\":");
    match change.after {
        Some(row) => push_row(&mut p, table, &all, row, modes, Field::Value).map_err(fail)?,
        None => p.push_str("null"),
    }
    p.push_str(",\"source\":");
    push_source(&mut p, settings, table, &change.source);
    p.push_str(",\"transaction\":");
    match change.transaction {
        Some(tx) => {
            p.push_str("{\"id\":");
            push_json_string(&mut p, &tx.id);
            p.push_str(&format!(
                ",\"total_order\":{},\"data_collection_order\":{}}}",
                tx.total_order, tx.data_collection_order
            ));
        }
        None => p.push_str("null"),
    }
    p.push_str(&format!(
        ",\"op\":\"{}\",\"ts_ms\":{},\"ts_us\":{},\"ts_ns\":{}}}",
        change.op.as_str(),
        change.now_us / 1_000,
        change.now_us,
        change.now_us * 1_000
    ));
    Ok(wrap(settings, || table.envelope_schema(settings), p))
}

/// `payload` as the JSON converter writes it: bare, or with `schemas.enable=true` as
/// `{"schema":...,"payload":...}` (`schema` is only built then).
pub(crate) fn wrap(
    settings: &EventSettings,
    schema: impl FnOnce() -> String,
    payload: String,
) -> Vec<u8> {
    if settings.schemas {
        format!(r#"{{"schema":{},"payload":{payload}}}"#, schema())
    } else {
        payload
    }
    .into_bytes()
}

/// The `source` block (`io.debezium.connector.sqlserver.Source`) of an event about
/// `table`.
fn push_source(p: &mut String, settings: &EventSettings, table: &TableSchema, s: &Source) {
    p.push_str("{\"version\":");
    push_json_string(p, &settings.version);
    p.push_str(",\"connector\":\"sqlserver\",\"name\":");
    push_json_string(p, &settings.prefix);
    p.push_str(&format!(
        ",\"ts_ms\":{},\"snapshot\":\"{}\",\"db\":",
        s.ts_ms,
        s.snapshot.as_str()
    ));
    push_json_string(p, &settings.database);
    p.push_str(&format!(
        ",\"sequence\":null,\"ts_us\":{},\"ts_ns\":{},\"schema\":",
        s.ts_ms * 1_000,
        s.ts_ms * 1_000_000
    ));
    push_json_string(p, &table.schema);
    p.push_str(",\"table\":");
    push_json_string(p, &table.table);
    p.push_str(&format!(
        ",\"change_lsn\":{},\"commit_lsn\":{},\"event_serial_no\":{}}}",
        optional_lsn(s.change_lsn),
        optional_lsn(s.commit_lsn),
        s.event_serial_no
            .map(|n| n.to_string())
            .unwrap_or_else(|| "null".into())
    ));
}

fn optional_lsn(lsn: Option<Lsn>) -> String {
    lsn.map(|l| format!("\"{l}\""))
        .unwrap_or_else(|| "null".into())
}

/// `io.debezium.connector.common.TransactionMetadataKey`.
const TRANSACTION_KEY_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"}],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataKey","version":1}"#;

/// `io.debezium.connector.common.TransactionMetadataValue`.
const TRANSACTION_VALUE_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"status"},{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":true,"field":"event_count"},{"type":"array","items":{"type":"struct","fields":[{"type":"string","optional":false,"field":"data_collection"},{"type":"int64","optional":false,"field":"event_count"}],"optional":true,"name":"event.collection","version":1},"optional":true,"field":"data_collections"},{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataValue","version":1}"#;

/// `io.debezium.connector.common.ServerNameKey` and `...Heartbeat`.
const HEARTBEAT_KEY_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"serverName"}],"optional":false,"name":"io.debezium.connector.common.ServerNameKey","version":1}"#;
const HEARTBEAT_VALUE_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.common.Heartbeat","version":1}"#;

/// `io.debezium.connector.sqlserver.SchemaChangeKey`.
const SCHEMA_CHANGE_KEY_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"databaseName"}],"optional":false,"name":"io.debezium.connector.sqlserver.SchemaChangeKey","version":1}"#;

/// `io.debezium.connector.sqlserver.SchemaChangeValue` after its `source` field: the
/// `tableChanges` array of `io.debezium.connector.schema.Change` (Debezium 3.0's
/// `SchemaFactory`: a table has no `attributes` yet).
const SCHEMA_CHANGE_VALUE_SCHEMA_REST: &str = r#"{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"field":"databaseName"},{"type":"string","optional":true,"field":"schemaName"},{"type":"string","optional":true,"field":"ddl"},{"type":"array","items":{"type":"struct","fields":[{"type":"string","optional":false,"field":"type"},{"type":"string","optional":false,"field":"id"},{"type":"struct","fields":[{"type":"string","optional":true,"field":"defaultCharsetName"},{"type":"array","items":{"type":"string","optional":false},"optional":true,"field":"primaryKeyColumnNames"},{"type":"array","items":{"type":"struct","fields":[{"type":"string","optional":false,"field":"name"},{"type":"int32","optional":false,"field":"jdbcType"},{"type":"int32","optional":true,"field":"nativeType"},{"type":"string","optional":false,"field":"typeName"},{"type":"string","optional":true,"field":"typeExpression"},{"type":"string","optional":true,"field":"charsetName"},{"type":"int32","optional":true,"field":"length"},{"type":"int32","optional":true,"field":"scale"},{"type":"int32","optional":false,"field":"position"},{"type":"boolean","optional":true,"field":"optional"},{"type":"boolean","optional":true,"field":"autoIncremented"},{"type":"boolean","optional":true,"field":"generated"},{"type":"string","optional":true,"field":"comment"},{"type":"string","optional":true,"field":"defaultValueExpression"},{"type":"array","items":{"type":"string","optional":false},"optional":true,"field":"enumValues"}],"optional":false,"name":"io.debezium.connector.schema.Column","version":1},"optional":false,"field":"columns"},{"type":"string","optional":true,"field":"comment"}],"optional":true,"name":"io.debezium.connector.schema.Table","version":1,"field":"table"}],"optional":false,"name":"io.debezium.connector.schema.Change","version":1},"optional":false,"field":"tableChanges"}],"optional":false,"name":"io.debezium.connector.sqlserver.SchemaChangeValue","version":1}"#;

/// A transaction boundary on `<prefix>.transaction`: key `{"id":...}`, value
/// `{"status":"BEGIN"|"END","id":...,"event_count":...,"data_collections":[...],"ts_ms":...}`
/// in the schema's field order. `counts` (END only) are the events per table, named
/// `<db>.<schema>.<table>` as Debezium's `TableId` prints them; `ts_ms` is the commit
/// time.
pub fn transaction_event(
    settings: &EventSettings,
    status: &str,
    id: &str,
    counts: Option<&[(String, i64)]>,
    ts_ms: i64,
) -> (Vec<u8>, Vec<u8>) {
    let mut v = format!("{{\"status\":\"{status}\",\"id\":");
    push_json_string(&mut v, id);
    match counts {
        None => v.push_str(",\"event_count\":null,\"data_collections\":null"),
        Some(counts) => {
            let total: i64 = counts.iter().map(|(_, n)| n).sum();
            v.push_str(&format!(",\"event_count\":{total},\"data_collections\":["));
            for (i, (name, n)) in counts.iter().enumerate() {
                if i > 0 {
                    v.push(',');
                }
                v.push_str("{\"data_collection\":");
                push_json_string(&mut v, name);
                v.push_str(&format!(",\"event_count\":{n}}}"));
            }
            v.push(']');
        }
    }
    v.push_str(&format!(",\"ts_ms\":{ts_ms}}}"));
    let mut k = String::from("{\"id\":");
    push_json_string(&mut k, id);
    k.push('}');
    (
        wrap(settings, || TRANSACTION_KEY_SCHEMA.to_owned(), k),
        wrap(settings, || TRANSACTION_VALUE_SCHEMA.to_owned(), v),
    )
}

/// A heartbeat on `__debezium-heartbeat.<prefix>`: key `{"serverName":...}`, value
/// `{"ts_ms":...}` (the wall clock, as Debezium's).
pub fn heartbeat_event(settings: &EventSettings, ts_ms: i64) -> (Vec<u8>, Vec<u8>) {
    let mut k = String::from("{\"serverName\":");
    push_json_string(&mut k, &settings.prefix);
    k.push('}');
    (
        wrap(settings, || HEARTBEAT_KEY_SCHEMA.to_owned(), k),
        wrap(
            settings,
            || HEARTBEAT_VALUE_SCHEMA.to_owned(),
            format!("{{\"ts_ms\":{ts_ms}}}"),
        ),
    )
}

/// `tableChanges[].type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableChange {
    /// A table first seen: at the snapshot (`ddl` null), or when streaming starts with
    /// no snapshot.
    Create,
    /// A new capture instance with other columns replaced the table's old one (`ddl`
    /// "N/A": SQL Server's CDC tables do not record the DDL).
    Alter,
}

/// A schema-change event on `<prefix>`, as Debezium's `SchemaChangeEvent` for SQL
/// Server: key `{"databaseName":...}`; value `source`, `ts_ms` (`now_ms`, when the
/// change was seen), `databaseName`, `schemaName`, `ddl`, and the table with its
/// columns as the JDBC driver describes them ([`crate::sqlserver::catalog`]).
pub fn schema_change_event(
    settings: &EventSettings,
    table: &TableSchema,
    change: TableChange,
    source: &Source,
    now_ms: i64,
) -> (Vec<u8>, Vec<u8>) {
    let mut k = String::from("{\"databaseName\":");
    push_json_string(&mut k, &settings.database);
    k.push('}');
    let mut v = String::from("{\"source\":");
    push_source(&mut v, settings, table, source);
    v.push_str(&format!(",\"ts_ms\":{now_ms},\"databaseName\":"));
    push_json_string(&mut v, &settings.database);
    v.push_str(",\"schemaName\":");
    push_json_string(&mut v, &table.schema);
    let (kind, ddl) = match change {
        TableChange::Create => ("CREATE", "null"),
        TableChange::Alter => ("ALTER", "\"N/A\""),
    };
    v.push_str(&format!(
        ",\"ddl\":{ddl},\"tableChanges\":[{{\"type\":\"{kind}\",\"id\":"
    ));
    let quoted: Vec<String> = [&settings.database, &table.schema, &table.table]
        .iter()
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect();
    push_json_string(&mut v, &quoted.join("."));
    v.push_str(",\"table\":{\"defaultCharsetName\":null,\"primaryKeyColumnNames\":[");
    for (n, &i) in table.key.iter().enumerate() {
        if n > 0 {
            v.push(',');
        }
        push_json_string(&mut v, &table.columns[i].name);
    }
    v.push_str("],\"columns\":[");
    for (n, column) in table.columns.iter().enumerate() {
        if n > 0 {
            v.push(',');
        }
        let type_name = column.jdbc_type_name();
        v.push_str("{\"name\":");
        push_json_string(&mut v, &column.name);
        v.push_str(&format!(
            ",\"jdbcType\":{},\"nativeType\":null,\"typeName\":",
            column.jdbc_type()
        ));
        push_json_string(&mut v, &type_name);
        v.push_str(",\"typeExpression\":");
        push_json_string(&mut v, &type_name);
        v.push_str(&format!(
            ",\"charsetName\":null,\"length\":{},\"scale\":{},\"position\":{},\"optional\":{},\"autoIncremented\":{},\"generated\":{},\"comment\":null,\"defaultValueExpression\":",
            column.jdbc_length(),
            column
                .jdbc_scale()
                .map_or_else(|| "null".to_owned(), |s| s.to_string()),
            n + 1,
            column.optional,
            column.catalog.identity,
            column.catalog.computed,
        ));
        match &column.catalog.default {
            Some(default) => push_json_string(&mut v, default),
            None => v.push_str("null"),
        }
        v.push_str(",\"enumValues\":null}");
    }
    v.push_str("],\"comment\":null}}]}");
    (
        wrap(settings, || SCHEMA_CHANGE_KEY_SCHEMA.to_owned(), k),
        wrap(
            settings,
            || {
                format!(
                    r#"{{"type":"struct","fields":[{SOURCE_SCHEMA},{SCHEMA_CHANGE_VALUE_SCHEMA_REST}"#
                )
            },
            v,
        ),
    )
}

#[cfg(test)]
mod tests;
