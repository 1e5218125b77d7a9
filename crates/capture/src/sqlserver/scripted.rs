//! The capture loop driven by scripted CDC tables: snapshot then streaming, a restart in
//! the middle of a transaction (the skip rule: no duplicate, no loss), a capture-instance
//! switch, a cleanup gap, an update pair missing its after-image, a primary-key update,
//! transaction metadata and heartbeats. Not a substitute for a real SQL Server (see the
//! gated test in `tests/capture.rs`): this checks the loop's logic, not the SQL.

use std::collections::BTreeMap;

use futures::StreamExt;
use futures::stream::BoxStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};

use super::lsn::Lsn;
use super::snapshot::Progress;
use super::stream::Streamer;
use super::tables::{
    CaptureInstance, CdcTables, ChangeRow, Operation, Read, Rows, SnapshotIsolation, TablesError,
};
use super::types::{Column, SqlType, SqlValue};
use crate::envelope::TableSchema;
use crate::fixtures::{anne, customers, george, sally, sally_updated};
use crate::offsets::{Offset, Position};
use crate::*;

mod options;
mod parity;

fn lsn(n: u32) -> Lsn {
    let mut bytes = [0; 10];
    bytes[4..8].copy_from_slice(&n.to_be_bytes());
    Lsn(bytes)
}

/// A change LSN inside commit `n`.
fn change(n: u32, slot: u16) -> Lsn {
    let mut bytes = lsn(n).0;
    bytes[8..10].copy_from_slice(&slot.to_be_bytes());
    // Changes precede their commit record: one below the commit's block.
    bytes[4..8].copy_from_slice(&(n - 1).to_be_bytes());
    Lsn(bytes)
}

#[derive(Default)]
struct Script {
    max: Option<Lsn>,
    instances: Vec<CaptureInstance>,
    rows: BTreeMap<String, Vec<ChangeRow>>,
    snapshot: BTreeMap<String, Vec<Vec<SqlValue>>>,
    /// Rows committed once the snapshot has ended (they appear in `end_snapshot`).
    after_snapshot: BTreeMap<String, Vec<ChangeRow>>,
    /// The snapshot's calls, in order (`begin <isolation> <tables>`, `max_lsn`,
    /// `release`, `rows <table> <select>`, `end`).
    calls: Vec<String>,
}

impl Script {
    fn with_customers() -> Self {
        let mut script = Script {
            max: Some(lsn(2)),
            ..Script::default()
        };
        script.instances.push(CaptureInstance {
            name: "dbo_customers".into(),
            table: customers(),
            start_lsn: lsn(1),
        });
        script
    }

    fn row(
        &mut self,
        instance: &str,
        commit: u32,
        slot: u16,
        operation: Operation,
        values: Vec<SqlValue>,
    ) {
        self.row_in_command(instance, commit, slot, slot as i32, operation, values);
    }

    /// An update: its before-image (`__$operation` 3) and after-image (4) at one slot.
    fn update(
        &mut self,
        instance: &str,
        commit: u32,
        slot: u16,
        before: Vec<SqlValue>,
        after: Vec<SqlValue>,
    ) {
        self.row(instance, commit, slot, Operation::UpdateBefore, before);
        self.row(instance, commit, slot, Operation::UpdateAfter, after);
    }

    /// A row whose `__$command_id` is not its slot (a bulk statement's rows share one).
    fn row_in_command(
        &mut self,
        instance: &str,
        commit: u32,
        slot: u16,
        command_id: i32,
        operation: Operation,
        values: Vec<SqlValue>,
    ) {
        let row = ChangeRow {
            start_lsn: lsn(commit),
            seqval: change(commit, slot),
            operation,
            command_id,
            commit_ts_ms: 1_795_162_500_000 + commit as i64,
            values,
        };
        self.rows.entry(instance.into()).or_default().push(row);
        self.max = self.max.max(Some(lsn(commit)));
    }

    /// What SQL Server's cleanup job does with a low watermark of `watermark`: deletes
    /// the changes committed below it and moves every capture instance's `start_lsn`
    /// (what `fn_cdc_get_min_lsn` returns) up to it.
    fn cleanup(&mut self, watermark: Lsn) {
        for rows in self.rows.values_mut() {
            rows.retain(|r| r.start_lsn >= watermark);
        }
        for instance in &mut self.instances {
            instance.start_lsn = instance.start_lsn.max(watermark);
        }
    }

    /// Makes the rows scripted so far commit once the snapshot (at LSN 2) has ended.
    fn commit_rows_after_snapshot(&mut self) {
        self.after_snapshot = std::mem::take(&mut self.rows);
        self.max = Some(lsn(2));
    }

    fn commits(&self) -> Vec<Lsn> {
        let mut commits: Vec<Lsn> = self.rows.values().flatten().map(|r| r.start_lsn).collect();
        commits.sort();
        commits.dedup();
        commits
    }
}

impl CdcTables for Script {
    async fn max_lsn(&mut self) -> Result<Option<Lsn>, TablesError> {
        self.calls.push("max_lsn".into());
        Ok(self.max)
    }
    async fn capture_instances(&mut self) -> Result<Vec<CaptureInstance>, TablesError> {
        Ok(self.instances.clone())
    }
    async fn window_end(
        &mut self,
        from: Lsn,
        transactions: u32,
    ) -> Result<Option<Lsn>, TablesError> {
        Ok(self
            .commits()
            .into_iter()
            .filter(|c| *c >= from)
            .take(transactions as usize)
            .max())
    }
    async fn changes<'a>(&'a mut self, reads: &'a [Read]) -> Result<Vec<Rows<'a>>, TablesError> {
        Ok(reads
            .iter()
            .map(|read| {
                let mut rows: Vec<ChangeRow> = self
                    .rows
                    .get(&read.instance.name)
                    .into_iter()
                    .flatten()
                    .filter(|r| r.start_lsn >= read.from && r.start_lsn <= read.to)
                    .cloned()
                    .collect();
                // The server's ORDER BY, and its select list.
                rows.sort_by_key(|r| (r.start_lsn, r.command_id, r.seqval, r.operation));
                if let Some(full) = self.instances.iter().find(|i| i.name == read.instance.name) {
                    for row in &mut rows {
                        row.values = project(&full.table, &read.instance.table, &row.values);
                    }
                }
                futures::stream::iter(rows.into_iter().map(Ok)).boxed()
            })
            .collect())
    }
    async fn begin_snapshot(
        &mut self,
        isolation: SnapshotIsolation,
        tables: &[String],
    ) -> Result<(), TablesError> {
        self.calls
            .push(format!("begin {isolation:?} {}", tables.join(",")));
        Ok(())
    }
    async fn release_schema_locks(
        &mut self,
        isolation: SnapshotIsolation,
    ) -> Result<(), TablesError> {
        if isolation.release_sql().is_some() {
            self.calls.push("release".into());
        }
        Ok(())
    }
    async fn count_rows(&mut self, table: &TableSchema) -> Result<u64, TablesError> {
        Ok(self
            .snapshot
            .get(&table.id())
            .map_or(0, |rows| rows.len() as u64))
    }
    async fn snapshot_rows<'a>(
        &'a mut self,
        table: &'a TableSchema,
        select: Option<&'a str>,
    ) -> Result<BoxStream<'a, Result<Vec<SqlValue>, TablesError>>, TablesError> {
        self.calls
            .push(format!("rows {} {}", table.id(), select.unwrap_or("-")));
        let mut rows = self.snapshot.get(&table.id()).cloned().unwrap_or_default();
        if let Some(full) = self.instances.iter().find(|i| i.table.id() == table.id()) {
            rows = rows
                .iter()
                .map(|row| project(&full.table, table, row))
                .collect();
        }
        Ok(futures::stream::iter(rows.into_iter().map(Ok)).boxed())
    }
    async fn end_snapshot(&mut self) -> Result<(), TablesError> {
        self.calls.push("end".into());
        for (instance, rows) in std::mem::take(&mut self.after_snapshot) {
            self.max = self.max.max(rows.iter().map(|r| r.start_lsn).max());
            self.rows.entry(instance).or_default().extend(rows);
        }
        Ok(())
    }
    async fn now_ms(&mut self) -> Result<i64, TablesError> {
        Ok(1_795_162_530_000)
    }
}

/// The values of `row` (in `full`'s columns) that `wanted` selects, as a server returns
/// only the columns of its select list.
fn project(full: &TableSchema, wanted: &TableSchema, row: &[SqlValue]) -> Vec<SqlValue> {
    if !wanted
        .columns
        .iter()
        .all(|c| full.columns.iter().any(|f| f.name == c.name))
    {
        // Another instance's columns: the rows are already in its shape.
        return row.to_vec();
    }
    wanted
        .columns
        .iter()
        .filter_map(|c| full.columns.iter().position(|f| f.name == c.name))
        .filter_map(|i| row.get(i).cloned())
        .collect()
}

/// Keeps what was committed; fails (a crash) at commit number `crash_at` (1-based).
#[derive(Default)]
struct Memory {
    commits: Vec<(Vec<OutRecord>, Offset)>,
    crash_at: Option<usize>,
    attempts: usize,
}

impl EventWriter for Memory {
    async fn commit(&mut self, records: Vec<OutRecord>, offset: Offset) -> Result<(), WriteError> {
        self.attempts += 1;
        if self.crash_at == Some(self.attempts) {
            return Err(WriteError::Kafka("crash".into()));
        }
        self.commits.push((records, offset));
        Ok(())
    }
}

impl Memory {
    fn records(&self) -> Vec<&OutRecord> {
        self.commits.iter().flat_map(|(r, _)| r).collect()
    }
    fn offset(&self) -> Option<Offset> {
        self.commits.last().map(|(_, o)| o.clone())
    }
    /// `(op, key)` of every change event (`"-"` for tombstones), in order.
    fn events(&self) -> Vec<(String, String)> {
        self.records()
            .into_iter()
            .filter(|r| r.topic == "server1.testDB.dbo.customers")
            .map(|r| {
                let key =
                    String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
                let op = match &r.value {
                    None => "-".to_owned(),
                    Some(v) => serde_json::from_slice::<serde_json::Value>(v).expect("JSON")["op"]
                        .as_str()
                        .expect("op")
                        .to_owned(),
                };
                (op, key)
            })
            .collect()
    }
}

/// The stored offset after commit `n`'s first (and only) single-row change, slot 1.
fn after_single_change_of(n: u32) -> Offset {
    Offset::Stream(
        Position {
            commit: lsn(n),
            change: change(n, 1),
            serial: 1,
            command: Some(1),
        },
        None,
    )
}

fn pairs(list: &[(&str, i32)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(op, id)| (op.to_string(), format!("{{\"id\":{id}}}")))
        .collect()
}

fn clock() -> Clock {
    let now = Arc::new(AtomicI64::new(1_795_162_600_000_000));
    Arc::new(move || now.fetch_add(1_000_000, AtomicOrdering::SeqCst))
}

fn settings() -> CaptureSettings {
    CaptureSettings::new("server1", "testDB", vec!["dbo.customers".into()])
}

/// Runs capture (snapshot, then passes) over `script` with `settings` until 100 ms
/// have passed, by when the script is drained; returns how it ended, what it committed
/// and its progress.
async fn run_until_drained(
    mut script: Script,
    settings: CaptureSettings,
) -> (Result<(), CaptureError>, Memory, Progress) {
    let (mut writer, progress) = (Memory::default(), Progress::default());
    let settings = CaptureSettings {
        poll_interval: std::time::Duration::from_millis(1),
        ..settings
    };
    // Stops at the first pass boundary after 100 ms.
    let shutdown = tokio::time::sleep(std::time::Duration::from_millis(100));
    let result = run(
        &mut script,
        &mut writer,
        &settings,
        None,
        clock(),
        &progress,
        shutdown,
    )
    .await;
    (result, writer, progress)
}

async fn drain(
    streamer: &mut Streamer,
    script: &mut Script,
    writer: &mut Memory,
) -> Result<(), CaptureError> {
    while streamer.pass(script, writer).await? {}
    Ok(())
}

#[tokio::test]
async fn snapshot_then_streaming_emits_debezium_events_and_offsets() {
    let mut script = Script::with_customers();
    script
        .snapshot
        .insert("dbo.customers".into(), vec![sally(), george(), anne()]);
    script.update("dbo_customers", 5, 1, sally(), sally_updated());
    script.row("dbo_customers", 6, 1, Operation::Delete, george());
    script.commit_rows_after_snapshot();
    let (result, writer, progress) = run_until_drained(script, settings()).await;
    result.expect("capture");

    let markers: Vec<String> = writer
        .records()
        .iter()
        .filter_map(|r| r.value.as_ref())
        .filter_map(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
        .filter(|v| v["op"] == "r")
        .map(|v| {
            v["source"]["snapshot"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(markers, ["first", "true", "last"]);
    assert_eq!(
        writer.events(),
        pairs(&[
            ("r", 1001),
            ("r", 1002),
            ("r", 1004),
            ("u", 1001),
            ("d", 1002),
            ("-", 1002)
        ])
    );
    assert_eq!(
        progress.snapshot(),
        vec![("dbo.customers".to_owned(), 3, 3)]
    );
    assert!(
        progress
            .prometheus()
            .contains("sluice_capture_snapshot_rows{table=\"dbo.customers\",state=\"done\"} 3")
    );
    assert_eq!(
        writer.commits[0].1,
        Offset::Snapshot {
            commit: lsn(2),
            completed: true
        },
        "the snapshot's position is the max LSN"
    );
    assert_eq!(writer.offset(), Some(after_single_change_of(6)));
    // The update's source: both LSNs and serial 2.
    let update = writer
        .records()
        .into_iter()
        .find(|r| {
            r.value
                .as_ref()
                .is_some_and(|v| v.windows(8).any(|w| w == b"\"op\":\"u\""))
        })
        .expect("update");
    let value: serde_json::Value =
        serde_json::from_slice(update.value.as_ref().expect("value")).expect("JSON");
    assert_eq!(value["source"]["commit_lsn"], lsn(5).to_string());
    assert_eq!(value["source"]["change_lsn"], change(5, 1).to_string());
    assert_eq!(value["source"]["event_serial_no"], 2);
    assert_eq!(value["before"]["email"], "sally.thomas@example.com");
    assert_eq!(value["after"]["email"], "sally.t@example.org");
}

/// `run` commits one part at a time, in order, and a failed commit stops it with the
/// writer's own error, committing nothing after it.
#[tokio::test]
async fn run_publishes_in_order_and_stops_with_the_writers_error() {
    let mut script = Script::with_customers();
    script
        .snapshot
        .insert("dbo.customers".into(), vec![sally(), george(), anne()]);
    let settings = CaptureSettings {
        batch_size: 1,
        ..settings()
    };
    let mut writer = Memory {
        crash_at: Some(3),
        ..Memory::default()
    };
    let result = run(
        &mut script,
        &mut writer,
        &settings,
        None,
        clock(),
        &Progress::default(),
        std::future::pending(),
    )
    .await;
    assert_eq!(
        result,
        Err(CaptureError::Write(WriteError::Kafka("crash".into())))
    );
    assert_eq!(writer.attempts, 3, "nothing was committed past the failure");
    let all = pairs(&[("r", 1001), ("r", 1002), ("r", 1004)]);
    let committed = writer.events();
    assert!(
        committed.len() < all.len() && all.starts_with(&committed),
        "in order, up to the failure: {committed:?}"
    );
}

/// `snapshot_mode = "no_data"`: no rows are read, but the schema snapshot is written (a
/// CREATE marked `last`, as Debezium's), and streaming starts after the max LSN.
#[tokio::test]
async fn no_data_writes_the_schema_snapshot_and_streams_from_the_max_lsn() {
    let mut script = Script::with_customers();
    script
        .snapshot
        .insert("dbo.customers".into(), vec![sally(), george()]);
    // History before the max LSN (2): neither snapshotted nor streamed.
    script.row("dbo_customers", 1, 1, Operation::Insert, anne());
    script.max = Some(lsn(2));
    let settings = CaptureSettings {
        snapshot: SnapshotMode::NoData,
        poll_interval: std::time::Duration::from_millis(1),
        ..settings()
    };
    let mut writer = Memory::default();
    let shutdown = tokio::time::sleep(std::time::Duration::from_millis(100));
    run(
        &mut script,
        &mut writer,
        &settings,
        None,
        clock(),
        &Progress::default(),
        shutdown,
    )
    .await
    .expect("capture");
    let (schema, offset) = &writer.commits[0];
    assert_eq!(
        *offset,
        Offset::Snapshot {
            commit: lsn(2),
            completed: true
        }
    );
    assert_eq!(schema.len(), 1);
    let value: serde_json::Value =
        serde_json::from_slice(schema[0].value.as_ref().expect("value")).expect("JSON");
    assert_eq!(value["tableChanges"][0]["type"], "CREATE");
    assert_eq!(value["source"]["snapshot"], "last");
    assert_eq!(
        writer.events(),
        pairs(&[]),
        "no rows read, no history streamed"
    );
}

/// With transaction metadata, parts may end inside a SQL transaction: the open
/// transaction travels in the offset (Debezium's `TransactionContext`), so after a crash
/// anywhere the restarted capture continues its order and publishes its END (when the
/// next transaction begins) exactly once, as if nothing happened.
#[tokio::test]
async fn transaction_metadata_survives_crashes_inside_transactions() {
    // `(topic, status or total_order)` of every record.
    let expected = [
        ("server1.transaction", "BEGIN"),
        ("server1.testDB.dbo.customers", "1"),
        ("server1.testDB.dbo.customers", "2"),
        ("server1.transaction", "END"),
        ("server1.transaction", "BEGIN"),
        ("server1.testDB.dbo.customers", "1"),
    ];
    for crash_at in 1..=3 {
        let mut script = Script::with_customers();
        script.row("dbo_customers", 5, 1, Operation::Insert, anne());
        script.row("dbo_customers", 5, 2, Operation::Insert, sally());
        script.row("dbo_customers", 6, 1, Operation::Insert, george());
        let settings = CaptureSettings {
            batch_size: 1,
            transaction_metadata: true,
            ..settings()
        };
        let (first, second) = crash_then_resume_with(&mut script, crash_at, settings).await;
        let published: Vec<(String, String)> = first
            .records()
            .into_iter()
            .chain(second.records())
            .map(|r| {
                let value: serde_json::Value =
                    serde_json::from_slice(r.value.as_ref().expect("value")).expect("JSON");
                let what = match value["status"].as_str() {
                    Some(status) => status.to_owned(),
                    None => value["transaction"]["total_order"].to_string(),
                };
                (r.topic.clone(), what)
            })
            .collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(t, w)| (t.to_string(), w.to_string()))
            .collect();
        assert_eq!(published, expected, "crash at commit {crash_at}");
    }
}

/// Streams `script` from the snapshot at LSN 2, one event per commit, crashing at commit
/// `crash_at`; then restarts from the offset stored by then and streams to the end.
/// Returns what each run committed.
async fn crash_then_resume(script: &mut Script, crash_at: usize) -> (Memory, Memory) {
    let settings = CaptureSettings {
        batch_size: 1,
        ..settings()
    };
    crash_then_resume_with(script, crash_at, settings).await
}

/// [`crash_then_resume`] with other settings.
async fn crash_then_resume_with(
    script: &mut Script,
    crash_at: usize,
    settings: CaptureSettings,
) -> (Memory, Memory) {
    let start = Offset::Snapshot {
        commit: lsn(2),
        completed: true,
    };
    let mut first = Memory {
        crash_at: Some(crash_at),
        ..Memory::default()
    };
    let mut streamer = Streamer::new(settings.clone(), clock());
    streamer.resume_from(start.clone());
    let crashed = drain(&mut streamer, script, &mut first).await;
    assert!(crashed.is_err(), "crash at commit {crash_at}");
    let mut second = Memory::default();
    let mut restarted = Streamer::new(settings, clock());
    restarted.resume_from(first.offset().unwrap_or(start.clone()));
    drain(&mut restarted, script, &mut second)
        .await
        .expect("resumed");
    (first, second)
}

/// One transaction (commit 7): insert 1004, update 1001, delete 1002; a crash after each
/// possible event, then a restart from the stored offset: every event exactly once.
#[tokio::test]
async fn a_restart_in_the_middle_of_a_transaction_neither_loses_nor_duplicates() {
    let expected = pairs(&[("c", 1004), ("u", 1001), ("d", 1002), ("-", 1002)]);
    for crash_at in 1..=4 {
        let mut script = Script::with_customers();
        script.row("dbo_customers", 7, 1, Operation::Insert, anne());
        script.update("dbo_customers", 7, 2, sally(), sally_updated());
        script.row("dbo_customers", 7, 3, Operation::Delete, george());
        let (first, second) = crash_then_resume(&mut script, crash_at).await;
        // What a read_committed consumer saw, across the crash.
        let mut published = first.events();
        published.extend(second.events());
        assert_eq!(published, expected, "crash at commit {crash_at}");
    }
}

/// Two events at one change position (a delete and an insert sharing `__$seqval`):
/// `event_serial_no` counts on (1, then 2) as Debezium's does, so a restart between them
/// skips exactly the first.
#[tokio::test]
async fn events_sharing_a_position_count_on_and_resume_exactly() {
    let expected = pairs(&[("d", 1002), ("-", 1002), ("c", 1004)]);
    // Commits: the delete (+ tombstone), the insert, the pass's end.
    for crash_at in 1..=3 {
        let mut script = Script::with_customers();
        script.row("dbo_customers", 7, 1, Operation::Delete, george());
        script.row("dbo_customers", 7, 1, Operation::Insert, anne());
        let (first, second) = crash_then_resume(&mut script, crash_at).await;
        let mut published = first.events();
        published.extend(second.events());
        assert_eq!(published, expected, "crash at commit {crash_at}");
        let serials: Vec<serde_json::Value> = first
            .records()
            .into_iter()
            .chain(second.records())
            .filter_map(|r| r.value.as_ref())
            .map(|v| serde_json::from_slice::<serde_json::Value>(v).expect("JSON"))
            .map(|v| v["source"]["event_serial_no"].clone())
            .collect();
        assert_eq!(serials, [1, 2], "crash at commit {crash_at}");
    }
}

#[tokio::test]
async fn an_update_before_image_without_its_after_image_is_an_error() {
    let mut script = Script::with_customers();
    script.row("dbo_customers", 5, 1, Operation::UpdateBefore, sally());
    script.row("dbo_customers", 5, 2, Operation::Insert, anne());
    let mut streamer = Streamer::new(settings(), clock());
    streamer.resume_from(Offset::Snapshot {
        commit: lsn(2),
        completed: true,
    });
    let error = drain(&mut streamer, &mut script, &mut Memory::default())
        .await
        .expect_err("unpaired");
    assert_eq!(
        error.to_string(),
        format!(
            "dbo.customers: the update before-image (__$operation 3) at LSN {} is not followed by its after-image (4)",
            change(5, 1)
        )
    );
}

#[tokio::test]
async fn a_primary_key_update_is_delete_tombstone_create() {
    let mut script = Script::with_customers();
    let mut renumbered = sally();
    renumbered[0] = SqlValue::I32(2001);
    script.update("dbo_customers", 5, 1, sally(), renumbered);
    let mut writer = Memory::default();
    let mut streamer = Streamer::new(settings(), clock());
    streamer.resume_from(Offset::Snapshot {
        commit: lsn(2),
        completed: true,
    });
    drain(&mut streamer, &mut script, &mut writer)
        .await
        .expect("capture");
    assert_eq!(
        writer.events(),
        pairs(&[("d", 1001), ("-", 1001), ("c", 2001)])
    );
    let records = writer.records();
    assert_eq!(
        records[0].headers,
        vec![("__debezium.newkey".to_owned(), b"{\"id\":2001}".to_vec())]
    );
    assert_eq!(
        records[2].headers,
        vec![("__debezium.oldkey".to_owned(), b"{\"id\":1001}".to_vec())]
    );
}

#[tokio::test]
async fn a_second_capture_instance_is_switched_to_at_its_start_lsn() {
    let mut script = Script::with_customers();
    let mut v2 = customers();
    v2.columns.push(Column {
        name: "tier".into(),
        sql_type: SqlType::Text,
        optional: true,
        catalog: Default::default(),
        mask: None,
    });
    script.instances.push(CaptureInstance {
        name: "dbo_customers_v2".into(),
        table: v2,
        start_lsn: lsn(10),
    });
    script.row("dbo_customers", 5, 1, Operation::Insert, anne());
    // After the new instance starts, both instances hold the change: read it once, from
    // the new one.
    script.row("dbo_customers", 12, 1, Operation::Delete, george());
    let mut george_v2 = george();
    george_v2.push(SqlValue::String("gold".into()));
    script.row("dbo_customers_v2", 12, 1, Operation::Delete, george_v2);
    let mut writer = Memory::default();
    let mut streamer = Streamer::new(settings(), clock());
    streamer.resume_from(Offset::Snapshot {
        commit: lsn(2),
        completed: true,
    });
    drain(&mut streamer, &mut script, &mut writer)
        .await
        .expect("capture");
    let topics: Vec<&str> = writer.records().iter().map(|r| r.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "server1.testDB.dbo.customers",
            "server1",
            "server1.testDB.dbo.customers",
            "server1.testDB.dbo.customers"
        ]
    );
    let schema_change: serde_json::Value =
        serde_json::from_slice(writer.records()[1].value.as_ref().expect("value")).expect("JSON");
    assert_eq!(
        schema_change["tableChanges"][0]["table"]["columns"][10]["name"],
        "tier"
    );
    // Debezium's streaming ALTER: CDC tables keep no DDL text.
    assert_eq!(schema_change["ddl"], "N/A");
    assert_eq!(schema_change["tableChanges"][0]["type"], "ALTER");
    assert_eq!(
        schema_change["tableChanges"][0]["id"],
        r#""testDB"."dbo"."customers""#
    );
    assert_eq!(schema_change["source"]["commit_lsn"], lsn(10).to_string());
    assert_eq!(
        writer.records()[1].key.as_deref(),
        Some(&br#"{"databaseName":"testDB"}"#[..])
    );
    let delete: serde_json::Value =
        serde_json::from_slice(writer.records()[2].value.as_ref().expect("value")).expect("JSON");
    assert_eq!(
        delete["before"]["tier"], "gold",
        "read from the new instance"
    );
}

#[tokio::test]
async fn a_disappearing_capture_instance_is_a_loud_error_when_configured() {
    let mut script = Script::with_customers();
    script.row("dbo_customers", 5, 1, Operation::Insert, anne());
    let mut writer = Memory::default();
    let settings = CaptureSettings {
        on_vanished: plan::VanishedPolicy::Fail,
        ..settings()
    };
    let mut streamer = Streamer::new(settings, clock());
    streamer.resume_from(Offset::Snapshot {
        commit: lsn(2),
        completed: true,
    });
    drain(&mut streamer, &mut script, &mut writer)
        .await
        .expect("first pass");
    // CDC disabled and re-enabled: a new instance from LSN 20, the old one gone.
    script.instances = vec![CaptureInstance {
        name: "dbo_customers_again".into(),
        table: customers(),
        start_lsn: lsn(20),
    }];
    script.row("dbo_customers_again", 21, 1, Operation::Insert, george());
    let error = drain(&mut streamer, &mut script, &mut writer)
        .await
        .expect_err("gone");
    let text = error.to_string();
    assert!(
        text.contains("dbo.customers: capture instance dbo_customers disappeared"),
        "{text}"
    );
    assert!(text.contains(&lsn(20).to_string()), "{text}");
}

#[tokio::test]
async fn a_cleanup_gap_fails_by_default_and_re_snapshots_when_configured() {
    let stored = Offset::Stream(
        Position {
            commit: lsn(3),
            change: change(3, 1),
            serial: 1,
            command: Some(1),
        },
        None,
    );
    let script = || {
        let mut script = Script::with_customers();
        script
            .snapshot
            .insert("dbo.customers".into(), vec![sally()]);
        script.row("dbo_customers", 3, 1, Operation::Insert, george());
        script.row("dbo_customers", 5, 1, Operation::Delete, george());
        script.row("dbo_customers", 9, 1, Operation::Insert, anne());
        // The cleanup job ran with a watermark of 8: the delete at 5 is gone, and the
        // instance's start_lsn (fn_cdc_get_min_lsn) is 8, as on a server.
        script.cleanup(lsn(8));
        script
    };
    let progress = Progress::default();
    let mut writer = Memory::default();
    let error = run(
        &mut script(),
        &mut writer,
        &settings(),
        Some(stored.clone()),
        clock(),
        &progress,
        async {},
    )
    .await
    .expect_err("gap");
    assert!(matches!(error, CaptureError::CleanupGap { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("older than the oldest change left in dbo.customers"),
        "{error}"
    );
    assert!(writer.commits.is_empty());

    let settings = CaptureSettings {
        on_gap: GapPolicy::Snapshot,
        ..settings()
    };
    let mut writer = Memory::default();
    run(
        &mut script(),
        &mut writer,
        &settings,
        Some(stored),
        clock(),
        &progress,
        async {},
    )
    .await
    .expect("re-snapshot");
    assert_eq!(
        writer.events(),
        pairs(&[("r", 1001)]),
        "snapshot at max LSN 9 covers the insert"
    );
}

#[tokio::test]
async fn transaction_metadata_and_heartbeats_when_enabled() {
    let mut script = Script::with_customers();
    script.row("dbo_customers", 5, 1, Operation::Insert, anne());
    script.row("dbo_customers", 5, 2, Operation::Insert, george());
    script.row("dbo_customers", 6, 1, Operation::Insert, sally());
    let settings = CaptureSettings {
        transaction_metadata: true,
        heartbeat: Some(std::time::Duration::from_secs(3600)),
        ..settings()
    };
    let mut writer = Memory::default();
    let mut streamer = Streamer::new(settings, clock());
    streamer.resume_from(Offset::Snapshot {
        commit: lsn(2),
        completed: true,
    });
    drain(&mut streamer, &mut script, &mut writer)
        .await
        .expect("capture");
    let topics: Vec<&str> = writer.records().iter().map(|r| r.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "server1.transaction",
            "server1.testDB.dbo.customers",
            "server1.testDB.dbo.customers",
            "server1.transaction",
            "server1.transaction",
            "server1.testDB.dbo.customers",
            "__debezium-heartbeat.server1"
        ]
    );
    let value = |i: usize| -> serde_json::Value {
        serde_json::from_slice(writer.records()[i].value.as_ref().expect("value")).expect("JSON")
    };
    assert_eq!(value(0)["status"], "BEGIN");
    assert_eq!(
        value(0)["ts_ms"],
        value(1)["source"]["ts_ms"],
        "BEGIN carries the commit time"
    );
    assert_eq!(value(2)["transaction"]["total_order"], 2);
    assert_eq!(value(2)["transaction"]["id"], lsn(5).to_string());
    assert_eq!(value(3)["status"], "END");
    assert_eq!(value(3)["event_count"], 2);
    assert_eq!(
        value(3)["ts_ms"],
        value(5)["source"]["ts_ms"],
        "END is written when the next transaction begins, with that event's time (Debezium)"
    );
    assert_eq!(
        value(3)["data_collections"][0]["data_collection"],
        "testDB.dbo.customers",
        "Debezium names the table <db>.<schema>.<table>"
    );
}

#[tokio::test]
async fn a_snapshot_of_several_tables_marks_each_table_and_decodes() {
    let mut script = Script::with_customers();
    let orders = TableSchema {
        schema: "dbo".into(),
        table: "orders".into(),
        columns: vec![
            Column {
                name: "id".into(),
                sql_type: SqlType::Int,
                optional: false,
                catalog: Default::default(),
                mask: None,
            },
            Column {
                name: "status".into(),
                sql_type: SqlType::Text,
                optional: false,
                catalog: Default::default(),
                mask: None,
            },
        ],
        key: vec![0],
    };
    script.instances.push(CaptureInstance {
        name: "dbo_orders".into(),
        table: orders,
        start_lsn: lsn(1),
    });
    script
        .snapshot
        .insert("dbo.customers".into(), vec![sally(), george()]);
    let order = |id: i32| vec![SqlValue::I32(id), SqlValue::String("NEW".into())];
    script
        .snapshot
        .insert("dbo.orders".into(), vec![order(9001), order(9002)]);
    let settings = CaptureSettings {
        snapshot_progress_rows: 1,
        batch_size: 1,
        ..CaptureSettings::new(
            "server1",
            "testDB",
            vec!["dbo.customers".into(), "dbo.orders".into()],
        )
    };
    let mut writer = Memory::default();
    let progress = Progress::default();
    snapshot::run(&mut script, &mut writer, &settings, &clock(), &progress)
        .await
        .expect("snapshot");
    // The schema snapshot first: a CREATE per table on `<prefix>`.
    let (schema_changes, rows): (Vec<&OutRecord>, Vec<&OutRecord>) = writer
        .records()
        .into_iter()
        .partition(|r| r.topic == "server1");
    assert!(
        writer.records()[..2].iter().all(|r| r.topic == "server1"),
        "before the rows"
    );
    let created: Vec<(String, String)> = schema_changes
        .iter()
        .map(|record| {
            let value: serde_json::Value =
                serde_json::from_slice(record.value.as_ref().expect("value")).expect("JSON");
            (
                value["tableChanges"][0]["type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                value["tableChanges"][0]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        created,
        [
            ("CREATE".into(), r#""testDB"."dbo"."customers""#.into()),
            ("CREATE".into(), r#""testDB"."dbo"."orders""#.into())
        ]
    );
    let mut markers = Vec::new();
    for record in rows {
        // sluice's own Debezium decoder reads what capture writes.
        let raw = sluice_core::RawRecord {
            timestamp: None,
            key: record.key.clone(),
            value: record.value.clone(),
            headers: Vec::new(),
            origin: sluice_core::Origin {
                topic: record.topic.clone(),
                partition: 0,
                offset: 0,
            },
            unreadable: None,
        };
        let Ok(sluice_runtime::debezium::Decoded::Event(event)) =
            sluice_runtime::debezium::decode(raw)
        else {
            panic!("capture wrote an event sluice cannot decode");
        };
        assert_eq!(
            sluice_runtime::debezium::debezium_topic(&event.source),
            record.topic
        );
        let value: serde_json::Value = serde_json::from_slice(&event.value).expect("JSON");
        markers.push(
            value["source"]["snapshot"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(
        markers,
        [
            "first",
            "last_in_data_collection",
            "first_in_data_collection",
            "last"
        ]
    );
    // Committed one event at a time: the offsets say the snapshot is incomplete until
    // the last commit.
    let offsets: Vec<Offset> = writer.commits.iter().map(|(_, o)| o.clone()).collect();
    assert!(offsets[..offsets.len() - 1].iter().all(|o| matches!(
        o,
        Offset::Snapshot {
            completed: false,
            ..
        }
    )));
    assert_eq!(
        offsets.last(),
        Some(&Offset::Snapshot {
            commit: lsn(2),
            completed: true
        })
    );
    assert_eq!(
        progress.snapshot(),
        vec![
            ("dbo.customers".to_owned(), 2, 2),
            ("dbo.orders".to_owned(), 2, 2)
        ]
    );
}

#[tokio::test]
async fn the_change_tables_of_a_pass_are_merged_in_log_order() {
    let mut script = Script::with_customers();
    let orders = TableSchema {
        schema: "dbo".into(),
        table: "orders".into(),
        columns: vec![Column {
            name: "id".into(),
            sql_type: SqlType::Int,
            optional: false,
            catalog: Default::default(),
            mask: None,
        }],
        key: vec![0],
    };
    script.instances.push(CaptureInstance {
        name: "dbo_orders".into(),
        table: orders,
        start_lsn: lsn(1),
    });
    // Commit 5: an order, then a customer (command order); commit 6: a customer; commit 7:
    // an order.
    script.row(
        "dbo_orders",
        5,
        1,
        Operation::Insert,
        vec![SqlValue::I32(9001)],
    );
    script.row("dbo_customers", 5, 2, Operation::Insert, anne());
    script.row("dbo_customers", 6, 1, Operation::Delete, george());
    script.row(
        "dbo_orders",
        7,
        1,
        Operation::Insert,
        vec![SqlValue::I32(9002)],
    );
    let settings = CaptureSettings {
        tombstones: false,
        max_transactions: 1,
        ..CaptureSettings::new(
            "server1",
            "testDB",
            vec!["dbo.customers".into(), "dbo.orders".into()],
        )
    };
    let mut writer = Memory::default();
    let mut streamer = Streamer::new(settings, clock());
    streamer.resume_from(Offset::Snapshot {
        commit: lsn(2),
        completed: true,
    });
    drain(&mut streamer, &mut script, &mut writer)
        .await
        .expect("capture");
    let order: Vec<(String, String)> = writer
        .records()
        .iter()
        .map(|r| {
            (
                r.topic.clone(),
                String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    let expected = [
        ("server1.testDB.dbo.orders", 9001),
        ("server1.testDB.dbo.customers", 1004),
        ("server1.testDB.dbo.customers", 1002),
        ("server1.testDB.dbo.orders", 9002),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(t, id)| (t.to_string(), format!("{{\"id\":{id}}}")))
        .collect();
    assert_eq!(order, expected);
    // Windows of one new transaction each (max_transactions = 1): a pass, committed with
    // its offset, per commit 5, 6 and 7.
    assert_eq!(writer.commits.len(), 3, "one pass per transaction");
    assert_eq!(writer.offset(), Some(after_single_change_of(7)));
}

/// Sally with `updated_at` (a `datetime2(7)`, so a `NanoTimestamp`) on 9999-12-31:
/// beyond what 64 bits of nanoseconds since 1970 hold.
fn sally_in_9999() -> Vec<SqlValue> {
    let mut row = sally();
    row[7] = SqlValue::DateTime2 {
        days: 3_652_058,
        increments: 0,
        scale: 7,
    };
    row
}

/// `event.processing.failure.handling.mode`: by default a change that cannot be mapped
/// stops capture, and nothing of its pass is committed; with `warn` it is left out (in
/// the snapshot and the stream, an update's after-image included), counted, and the
/// events around it keep their positions.
#[tokio::test]
async fn a_change_that_cannot_be_mapped_stops_capture_or_is_left_out() {
    let script = || {
        let mut script = Script::with_customers();
        let mut far = sally_in_9999();
        far[0] = SqlValue::I32(1003);
        script
            .snapshot
            .insert("dbo.customers".into(), vec![sally(), far, anne()]);
        let mut far = sally_in_9999();
        far[0] = SqlValue::I32(1005);
        script.row("dbo_customers", 5, 1, Operation::Insert, far);
        script.row("dbo_customers", 5, 2, Operation::Insert, george());
        script.update("dbo_customers", 6, 1, sally(), sally_in_9999());
        script.row("dbo_customers", 7, 1, Operation::Delete, george());
        script.commit_rows_after_snapshot();
        script
    };
    let run_with = |on_event_failure| {
        let settings = CaptureSettings {
            on_event_failure,
            ..settings()
        };
        run_until_drained(script(), settings)
    };

    let (result, writer, progress) = run_with(crate::failures::FailureMode::Warn).await;
    result.expect("capture goes on");
    assert_eq!(
        writer.events(),
        pairs(&[
            ("r", 1001),
            ("r", 1004),
            ("c", 1002),
            ("d", 1002),
            ("-", 1002)
        ])
    );
    assert_eq!(progress.events_skipped(), 3);
    assert!(
        progress
            .prometheus()
            .contains("sluice_capture_events_skipped_total 3\n")
    );
    // The delete after the skipped update keeps the position it has without the skip.
    assert_eq!(writer.offset(), Some(after_single_change_of(7)));

    let (result, writer, progress) = run_with(crate::failures::FailureMode::Fail).await;
    let error = result.expect_err("capture stops").to_string();
    assert!(
        error.contains("dbo.customers")
            && error.contains("9999-12-31")
            && error.contains("event_processing_failure_handling_mode = \"warn\""),
        "{error}"
    );
    assert!(writer.events().is_empty(), "{:?}", writer.events());
    assert_eq!(progress.events_skipped(), 0);
}
