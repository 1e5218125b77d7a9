//! Debezium's SQL Server change events, byte for byte: the key (`{"id":1001}`), the value
//! envelope (`before`, `after`, `source`, `transaction`, `op`, `ts_ms`, `ts_us`, `ts_ns`
//! in that order) and, with `schemas.enable=true`, both wrapped as
//! `{"schema":...,"payload":...}` with the schemas Debezium 3.0 declares
//! (`<prefix>.<db>.<schema>.<table>.Key` / `.Value` / `.Envelope`,
//! `io.debezium.connector.sqlserver.Source`, `event.block`).

use super::lsn::Lsn;
use super::types::{
    Column, DecimalMode, MapError, SqlValue, field_schema, push_json_string, push_value,
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
    /// `schemas.enable` of the JSON converter (key and value alike).
    pub schemas: bool,
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

    /// `<prefix>.<db>.<schema>.<table>`.
    pub fn topic(&self, settings: &EventSettings) -> String {
        format!(
            "{}.{}.{}.{}",
            settings.prefix, settings.database, self.schema, self.table
        )
    }

    fn key_schema(&self, settings: &EventSettings) -> String {
        let fields: Vec<String> = self
            .key
            .iter()
            .map(|&i| field_schema(&self.columns[i], settings.decimal_mode))
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
            .map(|c| field_schema(c, settings.decimal_mode))
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

/// Debezium 3.0.0.Final's `io.debezium.connector.sqlserver.Source` (its `snapshot`
/// enum lists fewer values than it emits; later releases list them all).
const SOURCE_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"string","optional":true,"field":"change_lsn"},{"type":"string","optional":true,"field":"commit_lsn"},{"type":"int64","optional":true,"field":"event_serial_no"}],"optional":false,"name":"io.debezium.connector.sqlserver.Source","field":"source"}"#;

const TRANSACTION_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"}"#;

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
    fn as_str(self) -> &'static str {
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

fn push_row(
    out: &mut String,
    table: &TableSchema,
    columns: &[usize],
    row: &[SqlValue],
    mode: DecimalMode,
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
        push_value(out, column, value, mode)?;
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
    push_row(&mut payload, table, &table.key, row, settings.decimal_mode)
        .map_err(|e| row_error(table, source, e))?;
    Ok(Some(
        if settings.schemas {
            format!(
                r#"{{"schema":{},"payload":{payload}}}"#,
                table.key_schema(settings)
            )
        } else {
            payload
        }
        .into_bytes(),
    ))
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
    let mode = settings.decimal_mode;
    let mut p = String::with_capacity(512);
    let fail = |e| row_error(table, &change.source, e);
    p.push_str("{\"before\":");
    match change.before {
        Some(row) => push_row(&mut p, table, &all, row, mode).map_err(fail)?,
        None => p.push_str("null"),
    }
    p.push_str(",\"after\":");
    match change.after {
        Some(row) => push_row(&mut p, table, &all, row, mode).map_err(fail)?,
        None => p.push_str("null"),
    }
    let s = &change.source;
    p.push_str(",\"source\":{\"version\":");
    push_json_string(&mut p, &settings.version);
    p.push_str(",\"connector\":\"sqlserver\",\"name\":");
    push_json_string(&mut p, &settings.prefix);
    p.push_str(&format!(
        ",\"ts_ms\":{},\"snapshot\":\"{}\",\"db\":",
        s.ts_ms,
        s.snapshot.as_str()
    ));
    push_json_string(&mut p, &settings.database);
    p.push_str(&format!(
        ",\"sequence\":null,\"ts_us\":{},\"ts_ns\":{},\"schema\":",
        s.ts_ms * 1_000,
        s.ts_ms * 1_000_000
    ));
    push_json_string(&mut p, &table.schema);
    p.push_str(",\"table\":");
    push_json_string(&mut p, &table.table);
    p.push_str(&format!(
        ",\"change_lsn\":{},\"commit_lsn\":{},\"event_serial_no\":{}}}",
        optional_lsn(s.change_lsn),
        optional_lsn(s.commit_lsn),
        s.event_serial_no
            .map(|n| n.to_string())
            .unwrap_or_else(|| "null".into())
    ));
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
    Ok(if settings.schemas {
        format!(
            r#"{{"schema":{},"payload":{p}}}"#,
            table.envelope_schema(settings)
        )
    } else {
        p
    }
    .into_bytes())
}

fn optional_lsn(lsn: Option<Lsn>) -> String {
    lsn.map(|l| format!("\"{l}\""))
        .unwrap_or_else(|| "null".into())
}

/// A transaction boundary event on `<prefix>.transaction` (bare form):
/// `{"status":"BEGIN"|"END","id":...,"event_count":...,"data_collections":[...],"ts_ms":...}`.
pub fn transaction_event(
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
    (k.into_bytes(), v.into_bytes())
}

/// A heartbeat on `__debezium-heartbeat.<prefix>`: key `{"serverName":...}`, value
/// `{"ts_ms":...}`.
pub fn heartbeat_event(settings: &EventSettings, ts_ms: i64) -> (Vec<u8>, Vec<u8>) {
    let mut k = String::from("{\"serverName\":");
    push_json_string(&mut k, &settings.prefix);
    k.push('}');
    (
        k.into_bytes(),
        format!("{{\"ts_ms\":{ts_ms}}}").into_bytes(),
    )
}

/// A schema-change event on `<prefix>` (bare form), as Debezium's
/// `SchemaChangeEvent` value: the database, the capture-instance switch as `ddl` text,
/// and the table's new columns.
pub fn schema_change_event(
    settings: &EventSettings,
    table: &TableSchema,
    ddl: &str,
    ts_ms: i64,
    commit_lsn: Lsn,
) -> (Vec<u8>, Vec<u8>) {
    let mut k = String::from("{\"databaseName\":");
    push_json_string(&mut k, &settings.database);
    k.push('}');
    let mut v = String::from("{\"source\":{\"version\":");
    push_json_string(&mut v, &settings.version);
    v.push_str(",\"connector\":\"sqlserver\",\"name\":");
    push_json_string(&mut v, &settings.prefix);
    v.push_str(&format!(
        ",\"ts_ms\":{ts_ms},\"snapshot\":\"false\",\"db\":"
    ));
    push_json_string(&mut v, &settings.database);
    v.push_str(",\"schema\":");
    push_json_string(&mut v, &table.schema);
    v.push_str(",\"table\":");
    push_json_string(&mut v, &table.table);
    v.push_str(&format!(
        ",\"change_lsn\":null,\"commit_lsn\":\"{commit_lsn}\",\"event_serial_no\":null}},\"ts_ms\":{ts_ms},\"databaseName\":"
    ));
    push_json_string(&mut v, &settings.database);
    v.push_str(",\"schemaName\":");
    push_json_string(&mut v, &table.schema);
    v.push_str(",\"ddl\":");
    push_json_string(&mut v, ddl);
    v.push_str(",\"tableChanges\":[{\"type\":\"ALTER\",\"id\":");
    push_json_string(
        &mut v,
        &format!(
            "\"{}\".\"{}\".\"{}\"",
            settings.database, table.schema, table.table
        ),
    );
    v.push_str(",\"table\":{\"primaryKeyColumnNames\":[");
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
        v.push_str("{\"name\":");
        push_json_string(&mut v, &column.name);
        v.push_str(&format!(
            ",\"typeName\":\"{:?}\",\"position\":{},\"optional\":{}}}",
            column.sql_type,
            n + 1,
            column.optional
        ));
    }
    v.push_str("]}}]}");
    (k.into_bytes(), v.into_bytes())
}

#[cfg(test)]
mod tests;
