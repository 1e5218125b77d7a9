//! The snapshot (`op: r`): every captured table read with `COPY ... TO STDOUT` inside a
//! REPEATABLE READ transaction that imported the slot's exported snapshot
//! (`SET TRANSACTION SNAPSHOT`), so it sees exactly the transactions that committed
//! before the slot's consistent point, and streaming takes over from there: no gap, no
//! overlap. COPY's text format gives the same text forms as pgoutput, so one mapping
//! serves both.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::envelope::{Op, Snapshot};
use crate::sqlserver::snapshot::Progress;
use crate::{Clock, EventWriter, OutRecord};

use super::PgError;
use super::catalog::{Catalog, qualified};
use super::config::PgSettings;
use super::envelope::{Change, PgSource, PgTable, key, value};
use super::offsets::{Lsn, PgOffset};
use super::pgoutput::Datum;
use super::protocol::quote_literal;

/// Where the snapshot stands.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotPoint {
    /// The slot's consistent point: streaming starts here.
    pub lsn: Lsn,
    /// The exported snapshot's name.
    pub tx_id: i64,
}

/// A row waiting for its marker (known once the next row, or the end, is seen).
struct Pending {
    table: usize,
    row: Vec<Datum>,
    first_in_table: bool,
}

/// Reads every table of `settings` under the exported snapshot `snapshot_name` and
/// publishes the rows; returns the completed snapshot's offset.
pub async fn run<W: EventWriter<PgOffset>>(
    catalog: &mut Catalog,
    writer: &mut W,
    settings: &PgSettings,
    snapshot_name: &str,
    lsn: Lsn,
    clock: &Clock,
    progress: &Progress,
) -> Result<PgOffset, PgError> {
    let started = clock();
    let mut tables = Vec::new();
    for name in &settings.tables {
        let relation = catalog.relation_of(name).await?;
        tables.push(catalog.table(&relation).await?);
    }
    let client = &catalog.client;
    let query = |what: &'static str| {
        move |e: tokio_postgres::Error| PgError::Query {
            what: what.into(),
            reason: e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned()),
        }
    };
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT {}",
            quote_literal(snapshot_name)
        ))
        .await
        .map_err(query("importing the slot's snapshot"))?;
    let tx_id: i64 = client
        .query_one("SELECT txid_current()", &[])
        .await
        .map_err(query("txid_current"))?
        .get(0);
    let offset = |completed| PgOffset::Snapshot {
        lsn,
        tx_id,
        completed,
    };
    let mut batch: Vec<OutRecord> = Vec::new();
    let mut pending: Option<Pending> = None;
    let mut first = true;
    let source = |snapshot| PgSource {
        ts_us: started,
        snapshot,
        tx_id: Some(tx_id),
        lsn: Some(lsn),
        last_commit_lsn: None,
    };
    let emit = |batch: &mut Vec<OutRecord>, p: Pending, marker: Snapshot| -> Result<(), PgError> {
        let table: &PgTable = &tables[p.table];
        let src = source(marker);
        let change = Change {
            op: Op::Read,
            before: None,
            after: Some(&p.row),
            source: src,
            transaction: None,
            now_us: clock(),
        };
        batch.push(OutRecord {
            topic: table.topic(&settings.events),
            key: key(table, &p.row, &settings.events, &src)?,
            value: Some(value(table, &change, &settings.events)?),
            headers: Vec::new(),
        });
        Ok(())
    };
    for (t, table) in tables.iter().enumerate() {
        let total: i64 = client
            .query_one(
                "SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = $1::regclass",
                &[&qualified(&settings.tables[t])],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        let name = table.id();
        let columns: Vec<String> = (0..=table.columns.iter().map(|c| c.index).max().unwrap_or(0))
            .map(|i| {
                table.columns.iter().find(|c| c.index == i).map_or_else(
                    || "NULL".to_owned(),
                    |c| super::protocol::quote_ident(&c.name),
                )
            })
            .collect();
        let sql = format!(
            "COPY (SELECT {} FROM {}) TO STDOUT",
            columns.join(", "),
            qualified(&settings.tables[t])
        );
        let stream = client.copy_out(&sql).await.map_err(query("COPY"))?;
        futures::pin_mut!(stream);
        let mut buffer = BytesMut::new();
        let mut done: u64 = 0;
        let mut first_in_table = true;
        tracing::info!(table = %name, estimated_rows = total, "snapshot of the table started");
        loop {
            let chunk = stream.next().await.transpose().map_err(query("COPY"))?;
            let end = chunk.is_none();
            if let Some(chunk) = chunk {
                buffer.extend_from_slice(&chunk);
            }
            while let Some(at) = buffer.iter().position(|&b| b == b'\n') {
                let line = buffer.split_to(at + 1).freeze();
                let row = copy_row(line.slice(..line.len() - 1));
                if let Some(previous) = pending.take() {
                    let marker = match (first, previous.first_in_table) {
                        (true, _) => Snapshot::First,
                        (false, true) => Snapshot::FirstInDataCollection,
                        _ => Snapshot::True,
                    };
                    first = false;
                    emit(&mut batch, previous, marker)?;
                }
                pending = Some(Pending {
                    table: t,
                    row,
                    first_in_table,
                });
                first_in_table = false;
                done += 1;
                if done.is_multiple_of(settings.batch_size as u64)
                    || batch.len() >= settings.batch_size
                {
                    progress_set(progress, &name, done, total.max(done as i64) as u64);
                    writer
                        .commit(std::mem::take(&mut batch), offset(false))
                        .await?;
                }
            }
            if end {
                break;
            }
        }
        // The table's last row: its marker is now known (unless it is the very last).
        if t + 1 < tables.len()
            && let Some(previous) = pending.take()
        {
            let marker = if first {
                Snapshot::First
            } else {
                Snapshot::LastInDataCollection
            };
            first = false;
            emit(&mut batch, previous, marker)?;
        }
        progress_set(progress, &name, done, done);
        tracing::info!(table = %name, rows = done, "snapshot of the table done");
    }
    if let Some(previous) = pending.take() {
        emit(&mut batch, previous, Snapshot::Last)?;
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(query("ending the snapshot"))?;
    writer.commit(batch, offset(true)).await?;
    Ok(offset(true))
}

fn progress_set(progress: &Progress, table: &str, done: u64, total: u64) {
    progress.set(table, done, total);
}

/// One line of COPY's text format: tab-separated, `\N` for NULL, backslash escapes.
fn copy_row(line: Bytes) -> Vec<Datum> {
    line.split(|&b| b == b'\t')
        .map(|field| {
            if field == b"\\N" {
                return Datum::Null;
            }
            if !field.contains(&b'\\') {
                return Datum::Text(line.slice_ref(field));
            }
            let mut out = Vec::with_capacity(field.len());
            let mut bytes = field.iter().copied().peekable();
            while let Some(b) = bytes.next() {
                if b != b'\\' {
                    out.push(b);
                    continue;
                }
                match bytes.next() {
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b'b') => out.push(8),
                    Some(b'f') => out.push(12),
                    Some(b'v') => out.push(11),
                    Some(d @ b'0'..=b'7') => {
                        let mut n = (d - b'0') as u32;
                        for _ in 0..2 {
                            match bytes.peek() {
                                Some(&o @ b'0'..=b'7') => {
                                    n = n * 8 + (o - b'0') as u32;
                                    bytes.next();
                                }
                                _ => break,
                            }
                        }
                        out.push(n as u8);
                    }
                    Some(b'x') => {
                        let mut n = 0u32;
                        for _ in 0..2 {
                            match bytes.peek().and_then(|&h| (h as char).to_digit(16)) {
                                Some(v) => {
                                    n = n * 16 + v;
                                    bytes.next();
                                }
                                None => break,
                            }
                        }
                        out.push(n as u8);
                    }
                    Some(other) => out.push(other),
                    None => {}
                }
            }
            Datum::Text(Bytes::from(out))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_lines_unescape() {
        let row = copy_row(Bytes::from_static(b"1\t\\N\ta\\tb\\\\c\\nd\t\\101\\x42"));
        assert_eq!(
            row,
            vec![
                Datum::Text(Bytes::from_static(b"1")),
                Datum::Null,
                Datum::Text(Bytes::from_static(b"a\tb\\c\nd")),
                Datum::Text(Bytes::from_static(b"AB")),
            ]
        );
    }
}
