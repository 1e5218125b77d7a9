//! The snapshot (`op: r`): every captured table read with `COPY ... TO STDOUT` inside a
//! REPEATABLE READ transaction that imported the slot's exported snapshot
//! (`SET TRANSACTION SNAPSHOT`), so it sees exactly the transactions that committed
//! before the slot's consistent point, and streaming takes over from there: no gap, no
//! overlap. COPY's text format gives the same text forms as pgoutput, so one mapping
//! serves both.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::envelope::{Op, Snapshot};
use crate::failures::FailureMode;
use crate::sqlserver::snapshot::Progress;
use crate::{Clock, EventWriter, OutRecord};

use super::PgError;
use super::catalog::{Catalog, qualified};
use super::config::PgSettings;
use super::envelope::{Change, PgSource, PgTable, key, render_source, value_with_source};
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
    /// The row's COPY text line (without its newline), parsed by the encoding task.
    line: Bytes,
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
    let mut parts = crate::InFlight::new(settings.parts_in_flight);
    let mut pending: Option<Pending> = None;
    let mut first = true;
    let encoder = Arc::new(Encoder::new(tables, settings, (started, tx_id, lsn), clock));
    let mut rows = Encoding::new(Arc::clone(&encoder));
    for (t, table) in encoder.tables.iter().enumerate() {
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
        tracing::info!(table = %sluice_core::text::printable(&name), estimated_rows = total, "snapshot of the table started");
        loop {
            let chunk = stream.next().await.transpose().map_err(query("COPY"))?;
            let end = chunk.is_none();
            // The server sends a row per message: lines are cut from the message itself
            // (no copy); only a line split across messages goes through `buffer`.
            let mut lines = match chunk {
                Some(chunk) if buffer.is_empty() => chunk,
                Some(chunk) => {
                    buffer.extend_from_slice(&chunk);
                    buffer.split().freeze()
                }
                None => std::mem::take(&mut buffer).freeze(),
            };
            while let Some(at) = lines.iter().position(|&b| b == b'\n') {
                let mut line = lines.split_to(at + 1);
                line.truncate(at);
                if let Some(previous) = pending.take() {
                    let marker = match (first, previous.first_in_table) {
                        (true, _) => Snapshot::First,
                        (false, true) => Snapshot::FirstInDataCollection,
                        _ => Snapshot::True,
                    };
                    first = false;
                    rows.push(previous, marker);
                    rows.collect(&mut batch, false).await?;
                }
                pending = Some(Pending {
                    table: t,
                    line,
                    first_in_table,
                });
                first_in_table = false;
                done += 1;
                if done.is_multiple_of(settings.batch_size as u64) {
                    progress_set(progress, &name, done, total.max(done as i64) as u64);
                    progress.add_events_skipped(encoder.skipped.swap(0, Ordering::Relaxed));
                }
                if batch.len() >= settings.batch_size {
                    // Kafka acknowledges while the next batch is read (each offset
                    // stored after those before it).
                    parts
                        .dispatch(writer, std::mem::take(&mut batch), offset(false))
                        .await?;
                }
            }
            // A line the message did not finish waits for the next one.
            buffer.extend_from_slice(&lines);
            if end {
                break;
            }
        }
        // The table's last row: its marker is now known (unless it is the very last).
        if t + 1 < encoder.tables.len()
            && let Some(previous) = pending.take()
        {
            let marker = if first {
                Snapshot::First
            } else {
                Snapshot::LastInDataCollection
            };
            first = false;
            rows.push(previous, marker);
        }
        progress_set(progress, &name, done, done);
        tracing::info!(table = %sluice_core::text::printable(&name), rows = done, "snapshot of the table done");
    }
    if let Some(previous) = pending.take() {
        rows.push(previous, Snapshot::Last);
    }
    rows.collect(&mut batch, true).await?;
    progress.add_events_skipped(encoder.skipped.swap(0, Ordering::Relaxed));
    client
        .batch_execute("COMMIT")
        .await
        .map_err(query("ending the snapshot"))?;
    parts.settle().await?;
    writer.commit(batch, offset(true)).await?;
    Ok(offset(true))
}

/// What turns snapshot rows into records: the tables, their topics and the `source`
/// block of their middle rows (`snapshot: "true"`), rendered once. Shared by the
/// encoding workers.
struct Encoder {
    tables: Vec<PgTable>,
    topics: Vec<String>,
    middle_sources: Vec<String>,
    events: crate::envelope::EventSettings,
    /// The snapshot's start (epoch µs), transaction id and position.
    started: i64,
    tx_id: i64,
    lsn: Lsn,
    clock: Clock,
    on_event_failure: FailureMode,
    /// Rows left out by `on_event_failure` and not yet added to the progress.
    skipped: AtomicU64,
}

impl Encoder {
    fn new(
        tables: Vec<PgTable>,
        settings: &PgSettings,
        (started, tx_id, lsn): (i64, i64, Lsn),
        clock: &Clock,
    ) -> Encoder {
        let events = &settings.events;
        let mut encoder = Encoder {
            topics: tables.iter().map(|t| t.topic(events)).collect(),
            middle_sources: Vec::new(),
            tables,
            events: events.clone(),
            started,
            tx_id,
            lsn,
            clock: Arc::clone(clock),
            on_event_failure: settings.on_event_failure,
            skipped: AtomicU64::new(0),
        };
        encoder.middle_sources = encoder
            .tables
            .iter()
            .map(|t| render_source(t, &encoder.source(Snapshot::True), events))
            .collect();
        encoder
    }

    fn source(&self, snapshot: Snapshot) -> PgSource {
        PgSource {
            ts_us: self.started,
            snapshot,
            tx_id: Some(self.tx_id),
            lsn: Some(self.lsn),
            last_commit_lsn: None,
        }
    }

    fn encode(&self, rows: Vec<(Pending, Snapshot)>) -> Result<Vec<OutRecord>, PgError> {
        let mut records = Vec::with_capacity(rows.len());
        for (p, marker) in rows {
            let table: &PgTable = &self.tables[p.table];
            let source = self.source(marker);
            let row = copy_row(p.line);
            let change = Change {
                op: Op::Read,
                before: None,
                after: Some(&row),
                source,
                transaction: None,
                now_us: (self.clock)(),
            };
            let rendered_source =
                (marker == Snapshot::True).then(|| self.middle_sources[p.table].as_str());
            let mapped = key(table, &row, &self.events, &source).and_then(|key| {
                Ok((
                    key,
                    value_with_source(table, &change, &self.events, rendered_source)?,
                ))
            });
            match mapped {
                Ok((key, value)) => records.push(OutRecord {
                    topic: self.topics[p.table].clone(),
                    key,
                    value: Some(value),
                    headers: Vec::new(),
                }),
                Err(error) => {
                    self.on_event_failure.handle(error)?;
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(records)
    }
}

/// Rows per encoding task: large enough that a task's cost is the rows', small enough
/// that the workers stay busy and memory stays a few chunks.
const CHUNK_ROWS: usize = 512;

/// The snapshot's rows encoded on the blocking pool, a chunk per task, as many tasks at
/// once as the machine has cores; records come back in the order the rows were read.
struct Encoding {
    encoder: Arc<Encoder>,
    chunk: Vec<(Pending, Snapshot)>,
    in_flight: VecDeque<tokio::task::JoinHandle<Result<Vec<OutRecord>, PgError>>>,
    parallelism: usize,
}

impl Encoding {
    fn new(encoder: Arc<Encoder>) -> Encoding {
        Encoding {
            encoder,
            chunk: Vec::with_capacity(CHUNK_ROWS),
            in_flight: VecDeque::new(),
            parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }

    /// Queues a row with its marker; a full chunk starts encoding.
    fn push(&mut self, row: Pending, marker: Snapshot) {
        self.chunk.push((row, marker));
        if self.chunk.len() >= CHUNK_ROWS {
            self.dispatch();
        }
    }

    fn dispatch(&mut self) {
        if self.chunk.is_empty() {
            return;
        }
        let rows = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_ROWS));
        let encoder = Arc::clone(&self.encoder);
        self.in_flight
            .push_back(tokio::task::spawn_blocking(move || encoder.encode(rows)));
    }

    /// Appends the encoded chunks to `batch`, in order: with `all`, every row queued;
    /// else only as many chunks as keep at most eight per core in flight (the reader
    /// waits less on a slow chunk; memory stays a few thousand rows).
    async fn collect(&mut self, batch: &mut Vec<OutRecord>, all: bool) -> Result<(), PgError> {
        if all {
            self.dispatch();
        }
        let keep = if all { 0 } else { 8 * self.parallelism };
        while self.in_flight.len() > keep {
            let Some(task) = self.in_flight.pop_front() else {
                break;
            };
            let records = task.await.map_err(|e| PgError::Query {
                what: "encoding snapshot rows".into(),
                reason: e.to_string(),
            })??;
            batch.extend(records);
        }
        Ok(())
    }
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
