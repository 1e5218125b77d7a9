//! The initial snapshot: the position is `sys.fn_cdc_get_max_lsn()`, then every captured
//! table is read page by page (never held in memory) inside one snapshot-isolation
//! transaction and emitted as `op: "r"` events with Debezium's snapshot markers
//! (`first`, `first_in_data_collection`, `true`, `last_in_data_collection`, `last`).
//! Rows are streamed from one plain `SELECT` per table (no `ORDER BY`, as Debezium's);
//! every `batch_size` events are committed with a `snapshot_completed: false` offset, the
//! last with `true`. Each table's events carry the server's time as its read began. A
//! snapshot interrupted before its end is started again.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::StreamExt;

use super::lsn::Lsn;
use super::tables::{CdcTables, TablesError};
use crate::envelope::{self, Change, Op, Snapshot, Source, TableChange, TableSchema};
use crate::offsets::Offset;
use crate::{CaptureError, CaptureSettings, Clock, EventWriter, OutRecord};

/// Rows done and total per table, for the terminal and the metrics endpoint.
#[derive(Debug, Default)]
pub struct Progress {
    tables: Mutex<BTreeMap<String, (u64, u64)>>,
    /// Capture instances that disappeared and were dropped (streaming's, here so that
    /// one collector serves capture's metrics).
    instances_dropped: std::sync::atomic::AtomicU64,
    /// Changes left out by `event.processing.failure.handling.mode` (snapshot and
    /// stream).
    events_skipped: std::sync::atomic::AtomicU64,
}

impl Progress {
    /// Sets `sluice_capture_instances_dropped_total`.
    pub fn set_instances_dropped(&self, count: u64) {
        self.instances_dropped
            .store(count, std::sync::atomic::Ordering::Relaxed);
    }

    /// Adds `count` to `sluice_capture_events_skipped_total`.
    pub fn add_events_skipped(&self, count: u64) {
        self.events_skipped
            .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
    }

    /// Changes left out so far.
    pub fn events_skipped(&self) -> u64 {
        self.events_skipped
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set(&self, table: &str, done: u64, total: u64) {
        if let Ok(mut tables) = self.tables.lock() {
            tables.insert(table.to_owned(), (done, total));
        }
    }

    /// `(table, rows done, rows total)` for every table started.
    pub fn snapshot(&self) -> Vec<(String, u64, u64)> {
        self.tables
            .lock()
            .map(|t| t.iter().map(|(k, (d, n))| (k.clone(), *d, *n)).collect())
            .unwrap_or_default()
    }

    /// Prometheus text: `sluice_capture_snapshot_rows{table,state="done"|"total"}`.
    pub fn prometheus(&self) -> String {
        Progress::prometheus_of(&[(None, self)])
    }

    /// Prometheus text of several databases' progress (`database.names`): each metric
    /// declared once, each series labelled with its `database` where one is given.
    pub fn prometheus_of(databases: &[(Option<&str>, &Progress)]) -> String {
        let label = |database: Option<&str>| {
            database.map_or(String::new(), |db| format!("database=\"{db}\","))
        };
        let mut out = String::from(
            "# HELP sluice_capture_snapshot_rows Snapshot rows read and to read, per table.\n# TYPE sluice_capture_snapshot_rows gauge\n",
        );
        for (database, progress) in databases {
            let database = label(*database);
            for (table, done, total) in progress.snapshot() {
                out.push_str(&format!(
                    "sluice_capture_snapshot_rows{{{database}table=\"{table}\",state=\"done\"}} {done}\nsluice_capture_snapshot_rows{{{database}table=\"{table}\",state=\"total\"}} {total}\n"
                ));
            }
        }
        out.push_str("# HELP sluice_capture_instances_dropped_total Capture instances that disappeared while read (their unread changes are lost).\n# TYPE sluice_capture_instances_dropped_total counter\n");
        for (database, progress) in databases {
            let dropped = progress
                .instances_dropped
                .load(std::sync::atomic::Ordering::Relaxed);
            match database {
                Some(db) => out.push_str(&format!(
                    "sluice_capture_instances_dropped_total{{database=\"{db}\"}} {dropped}\n"
                )),
                None => out.push_str(&format!(
                    "sluice_capture_instances_dropped_total {dropped}\n"
                )),
            }
        }
        out.push_str("# HELP sluice_capture_events_skipped_total Changes left out because they could not be mapped (event.processing.failure.handling.mode warn or skip).\n# TYPE sluice_capture_events_skipped_total counter\n");
        for (database, progress) in databases {
            let skipped = progress.events_skipped();
            match database {
                Some(db) => out.push_str(&format!(
                    "sluice_capture_events_skipped_total{{database=\"{db}\"}} {skipped}\n"
                )),
                None => out.push_str(&format!("sluice_capture_events_skipped_total {skipped}\n")),
            }
        }
        out
    }
}

/// `source.snapshot` of a row, as Debezium's `setSnapshotMarker`: the last row of the
/// last table `last`, the first of the first `first`, then a table's last
/// `last_in_data_collection` (so a one-row table's row is that), its first
/// `first_in_data_collection`. An empty first or last table leaves its marker unused.
fn snapshot_marker(
    (first_table, last_table): (bool, bool),
    (first_row, last_row): (bool, bool),
) -> Snapshot {
    if last_row && last_table {
        Snapshot::Last
    } else if first_row && first_table {
        Snapshot::First
    } else if last_row {
        Snapshot::LastInDataCollection
    } else if first_row {
        Snapshot::FirstInDataCollection
    } else {
        Snapshot::True
    }
}

/// Each captured table's columns as of `position`: its newest capture instance that
/// started at or before it (streaming continues from there with that instance), else
/// its oldest.
pub async fn table_schemas<T: CdcTables>(
    tables: &mut T,
    settings: &CaptureSettings,
    position: Lsn,
) -> Result<Vec<TableSchema>, CaptureError> {
    let mut instances = tables.capture_instances().await?;
    settings.columns.apply(&mut instances)?;
    let mut schemas = Vec::new();
    for table in &settings.tables {
        let of_table = || instances.iter().filter(|i| &i.table.id() == table);
        let instance = of_table()
            .filter(|i| i.start_lsn <= position)
            .max_by_key(|i| i.start_lsn)
            .or_else(|| of_table().min_by_key(|i| i.start_lsn))
            .ok_or_else(|| TablesError::CdcNotEnabledOnTable {
                table: table.clone(),
            })?;
        schemas.push(instance.table.clone());
    }
    Ok(schemas)
}

/// Debezium's schema snapshot: a CREATE per table on `<prefix>`, before any row (none
/// when `include_schema_changes` is off). `source.snapshot` is `true`, and `last` for the
/// last table when no rows follow (`snapshot_mode = "no_data"`), as Debezium marks them.
pub fn schema_snapshot(
    settings: &CaptureSettings,
    schemas: &[TableSchema],
    position: Lsn,
    ts_ms: i64,
    clock: &Clock,
    no_data: bool,
) -> Vec<OutRecord> {
    if !settings.schema_changes {
        return Vec::new();
    }
    schemas
        .iter()
        .enumerate()
        .map(|(n, schema)| {
            let last = no_data && n + 1 == schemas.len();
            let source = Source {
                ts_ms,
                snapshot: if last { Snapshot::Last } else { Snapshot::True },
                change_lsn: None,
                commit_lsn: Some(position),
                event_serial_no: None,
            };
            let (key, value) = envelope::schema_change_event(
                &settings.events,
                schema,
                TableChange::Create,
                &source,
                clock() / 1_000,
            );
            OutRecord {
                topic: settings.events.prefix.clone(),
                key: Some(key),
                value: Some(value),
                headers: Vec::new(),
            }
        })
        .collect()
}

/// Runs the snapshot; returns the offset streaming starts from.
pub async fn run<T: CdcTables, W: EventWriter>(
    tables: &mut T,
    writer: &mut W,
    settings: &CaptureSettings,
    clock: &Clock,
    progress: &Progress,
) -> Result<Offset, CaptureError> {
    let database = settings.events.database.clone();
    // The position is read inside the snapshot transaction: under SNAPSHOT isolation
    // its first read fixes the version every table is then read at, so a change the
    // tables already show is at or before the position (the CDC job may lag, so some
    // changes at or before the snapshot can still be streamed again: duplicates,
    // never a loss).
    tables
        .begin_snapshot(settings.snapshot_isolation, &settings.tables)
        .await?;
    let position = tables
        .max_lsn()
        .await?
        .ok_or(TablesError::AgentNotRunning { database })?;
    let schemas = table_schemas(tables, settings, position).await?;
    tables
        .release_schema_locks(settings.snapshot_isolation)
        .await?;
    let ts_ms = tables.now_ms().await?;
    tracing::info!(%position, tables = schemas.len(), "snapshot started");
    let mut batch = schema_snapshot(settings, &schemas, position, ts_ms, clock, false);
    let mut parts = crate::InFlight::new(BATCHES_IN_FLIGHT);
    let last_table = schemas.len().saturating_sub(1);
    for (index, schema) in schemas.iter().enumerate() {
        let id = schema.id();
        let total = tables.count_rows(schema).await?;
        progress.set(&id, 0, total);
        // As Debezium's `getSnapshotSourceTimestamp`: the server's time as each table's
        // read begins.
        let ts_ms = tables.now_ms().await?;
        let mut done = 0u64;
        let select = settings
            .snapshot_overrides
            .iter()
            .find(|(table, _)| table.eq_ignore_ascii_case(&id))
            .map(|(_, select)| select.as_str());
        let mut rows = tables.snapshot_rows(schema, select).await?;
        // One row of look-ahead: a row's marker depends on whether it is its table's last.
        let mut next = rows.next().await.transpose()?;
        while let Some(row) = next.take() {
            next = rows.next().await.transpose()?;
            let marker = snapshot_marker(
                (index == 0, index == last_table),
                (done == 0, next.is_none()),
            );
            done += 1;
            let source = Source {
                ts_ms,
                snapshot: marker,
                change_lsn: None,
                commit_lsn: Some(position),
                event_serial_no: None,
            };
            let change = Change {
                op: Op::Read,
                before: None,
                after: Some(&row),
                source,
                transaction: None,
                now_us: clock(),
            };
            let mapped = envelope::key(schema, &row, &settings.events, &source)
                .and_then(|key| Ok((key, envelope::value(schema, &change, &settings.events)?)));
            match mapped {
                Ok((key, value)) => batch.push(OutRecord {
                    topic: schema.topic(&settings.events),
                    key,
                    value: Some(value),
                    headers: Vec::new(),
                }),
                Err(error) => {
                    settings.on_event_failure.handle(error)?;
                    progress.add_events_skipped(1);
                }
            }
            if done.is_multiple_of(settings.snapshot_progress_rows as u64) {
                progress.set(&id, done, total.max(done));
                tracing::info!(table = %id, done, total, "snapshot progress");
            }
            if batch.len() >= settings.batch_size {
                let offset = Offset::Snapshot {
                    commit: position,
                    completed: false,
                };
                // Kafka acknowledges while the next batch is read (each offset stored
                // after those before it).
                parts
                    .dispatch(writer, std::mem::take(&mut batch), offset)
                    .await?;
            }
        }
        drop(rows);
        progress.set(&id, done, total.max(done));
        tracing::info!(table = %id, done, total, "snapshot of the table read");
    }
    tables.end_snapshot().await?;
    let offset = Offset::Snapshot {
        commit: position,
        completed: true,
    };
    parts.settle().await?;
    writer.commit(batch, offset.clone()).await?;
    tracing::info!(%position, "snapshot completed");
    Ok(offset)
}

/// Snapshot batches handed to Kafka and not yet acknowledged, at most.
const BATCHES_IN_FLIGHT: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    /// `database.names`: one declaration per metric, each series labelled.
    #[test]
    fn several_databases_share_one_exposition() {
        let (sales, hr) = (Progress::default(), Progress::default());
        sales.set("dbo.customers", 5, 10);
        hr.set("dbo.customers", 1, 1);
        hr.set_instances_dropped(2);
        let text = Progress::prometheus_of(&[(Some("sales"), &sales), (Some("hr"), &hr)]);
        assert_eq!(
            text.matches("# TYPE sluice_capture_snapshot_rows").count(),
            1
        );
        assert!(text.contains(
            "sluice_capture_snapshot_rows{database=\"sales\",table=\"dbo.customers\",state=\"done\"} 5\n"
        ));
        assert!(text.contains(
            "sluice_capture_snapshot_rows{database=\"hr\",table=\"dbo.customers\",state=\"total\"} 1\n"
        ));
        assert!(text.contains("sluice_capture_instances_dropped_total{database=\"hr\"} 2\n"));
        sales.add_events_skipped(3);
        let text = Progress::prometheus_of(&[(Some("sales"), &sales), (Some("hr"), &hr)]);
        assert!(text.contains("sluice_capture_events_skipped_total{database=\"sales\"} 3\n"));
        assert!(text.contains("sluice_capture_events_skipped_total{database=\"hr\"} 0\n"));
        assert_eq!(
            text.matches("# TYPE sluice_capture_instances_dropped_total")
                .count(),
            1
        );
    }
}
