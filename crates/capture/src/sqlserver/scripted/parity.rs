//! Scripted tests for the defects a reading against Debezium's SQL Server connector found
//! (issue 14): a restart inside a bulk primary-key update, a window streamed in bounded
//! memory, unbounded passes, instance switches and vanished instances, transaction
//! counts and headers, Debezium's offsets, topic and database names. Each failed on the
//! code before the fix.

use std::sync::atomic::AtomicUsize;

use super::*;

/// A bulk primary-key update in one transaction (commit 7): SQL Server logs it as the
/// deletes of one command and the inserts of the next, and the inserts' change LSNs are
/// below the deletes' (DBZ-2329). Rows are read in command order, so `change_lsn` falls
/// in the middle of the transaction.
fn bulk_key_update() -> Script {
    let mut script = Script::with_customers();
    let renumbered = |mut row: Vec<SqlValue>, id: i32| {
        row[0] = SqlValue::I32(id);
        row
    };
    script.row_in_command("dbo_customers", 7, 5, 1, Operation::Delete, sally());
    script.row_in_command("dbo_customers", 7, 6, 1, Operation::Delete, george());
    let (sally2, george2) = (renumbered(sally(), 2001), renumbered(george(), 2002));
    script.row_in_command("dbo_customers", 7, 2, 2, Operation::Insert, sally2);
    script.row_in_command("dbo_customers", 7, 3, 2, Operation::Insert, george2);
    script
}

fn bulk_expected() -> Vec<(String, String)> {
    pairs(&[
        ("d", 1001),
        ("-", 1001),
        ("d", 1002),
        ("-", 1002),
        ("c", 2001),
        ("c", 2002),
    ])
}

/// A crash after every possible part, then a restart from the stored offset: every
/// event exactly once (the command id in the offset orders the resume).
#[tokio::test]
async fn a_restart_inside_a_bulk_key_update_loses_nothing() {
    for crash_at in 1..=5 {
        let mut script = bulk_key_update();
        let (first, second) = crash_then_resume(&mut script, crash_at).await;
        let mut published = first.events();
        published.extend(second.events());
        assert_eq!(published, bulk_expected(), "crash at commit {crash_at}");
    }
}

/// The same with the offset as Debezium wrote it (no command id): Debezium's guard
/// stops skipping once change LSNs fall, so nothing is lost (some events come twice).
#[tokio::test]
async fn a_debezium_offset_inside_a_bulk_key_update_loses_nothing() {
    for crash_at in 1..=5 {
        let mut script = bulk_key_update();
        let settings = CaptureSettings {
            batch_size: 1,
            ..settings()
        };
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
        assert!(drain(&mut streamer, &mut script, &mut first).await.is_err());
        let stored = match first.offset() {
            Some(Offset::Stream(p, tx)) => Offset::Stream(Position { command: None, ..p }, tx),
            other => other.unwrap_or(start.clone()),
        };
        let mut second = Memory::default();
        let mut restarted = Streamer::new(settings, clock());
        restarted.resume_from(stored);
        drain(&mut restarted, &mut script, &mut second)
            .await
            .expect("resumed");
        let mut published = first.events();
        published.extend(second.events());
        for event in bulk_expected() {
            assert!(
                published.contains(&event),
                "{event:?} lost (crash at commit {crash_at}): {published:?}"
            );
        }
    }
}

/// A change table of `rows` inserts in one transaction, generated as it is read (as a
/// server's rows come off the connection), counting the rows handed out.
struct Generated {
    instance: CaptureInstance,
    rows: usize,
    read: Arc<AtomicUsize>,
}

impl CdcTables for Generated {
    async fn max_lsn(&mut self) -> Result<Option<Lsn>, TablesError> {
        Ok(Some(lsn(5)))
    }
    async fn capture_instances(&mut self) -> Result<Vec<CaptureInstance>, TablesError> {
        Ok(vec![self.instance.clone()])
    }
    async fn window_end(
        &mut self,
        from: Lsn,
        _transactions: u32,
    ) -> Result<Option<Lsn>, TablesError> {
        Ok((from <= lsn(5)).then_some(lsn(5)))
    }
    async fn changes<'a>(&'a mut self, reads: &'a [Read]) -> Result<Vec<Rows<'a>>, TablesError> {
        let read = Arc::clone(&self.read);
        let rows = self.rows;
        let stream = futures::stream::iter(0..rows).map(move |i| {
            read.fetch_add(1, AtomicOrdering::SeqCst);
            let mut values = anne();
            values[0] = SqlValue::I32(i as i32);
            Ok(ChangeRow {
                start_lsn: lsn(5),
                seqval: change(5, i as u16),
                operation: Operation::Insert,
                command_id: 1,
                commit_ts_ms: 1_795_162_500_005,
                values,
            })
        });
        // One table, one read.
        assert_eq!(reads.len(), 1);
        Ok(vec![stream.boxed()])
    }
    async fn begin_snapshot(
        &mut self,
        _isolation: super::SnapshotIsolation,
        _tables: &[String],
    ) -> Result<(), TablesError> {
        Ok(())
    }
    async fn count_rows(&mut self, _table: &TableSchema) -> Result<u64, TablesError> {
        Ok(0)
    }
    async fn snapshot_rows<'a>(
        &'a mut self,
        _table: &'a TableSchema,
        _select: Option<&'a str>,
    ) -> Result<BoxStream<'a, Result<Vec<SqlValue>, TablesError>>, TablesError> {
        Ok(futures::stream::empty().boxed())
    }
    async fn end_snapshot(&mut self) -> Result<(), TablesError> {
        Ok(())
    }
    async fn now_ms(&mut self) -> Result<i64, TablesError> {
        Ok(1_795_162_530_000)
    }
}

/// Records how many rows were read but not yet committed, at every commit.
struct Held {
    read: Arc<AtomicUsize>,
    committed: usize,
    most_held: usize,
}

impl EventWriter for Held {
    async fn commit(&mut self, records: Vec<OutRecord>, _offset: Offset) -> Result<(), WriteError> {
        // Rows read so far whose events were not committed before this commit.
        let held = self.read.load(AtomicOrdering::SeqCst) - self.committed;
        self.most_held = self.most_held.max(held);
        self.committed += records.iter().filter(|r| r.value.is_some()).count();
        Ok(())
    }
}

/// A 20,000-row transaction with `batch_size = 100`: parts are committed while the
/// window is read, so at most a part (and the merge's one row per table) is held, never
/// the window.
#[tokio::test]
async fn a_large_window_is_streamed_in_bounded_memory() {
    const ROWS: usize = 20_000;
    const BATCH: usize = 100;
    let read = Arc::new(AtomicUsize::new(0));
    let mut tables = Generated {
        instance: CaptureInstance {
            name: "dbo_customers".into(),
            table: customers(),
            start_lsn: lsn(1),
        },
        rows: ROWS,
        read: Arc::clone(&read),
    };
    let settings = CaptureSettings {
        batch_size: BATCH,
        tombstones: false,
        ..settings()
    };
    let mut writer = Held {
        read: Arc::clone(&read),
        committed: 0,
        most_held: 0,
    };
    let mut streamer = Streamer::new(settings, clock());
    streamer.resume_from(Offset::Snapshot {
        commit: lsn(2),
        completed: true,
    });
    assert!(streamer.pass(&mut tables, &mut writer).await.expect("pass"));
    assert_eq!(writer.committed, ROWS, "every row published");
    assert!(
        writer.most_held <= BATCH + 1,
        "held {} rows at once (batch {BATCH})",
        writer.most_held
    );
}

/// `max_transactions_per_pass = 0` (Debezium's `max.iteration.transactions = 0`): one
/// pass reads everything up to the max LSN.
#[tokio::test]
async fn zero_transactions_per_pass_means_unbounded() {
    let mut script = Script::with_customers();
    for commit in 5..10 {
        script.row("dbo_customers", commit, 1, Operation::Insert, anne());
    }
    let settings = CaptureSettings {
        max_transactions: 0,
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
    assert_eq!(writer.commits.len(), 1, "one pass");
    assert_eq!(writer.events().len(), 5);
}

/// A second capture instance with the same columns: the switch happens, without an
/// ALTER (Debezium: "Migration skipped, no table schema changes detected").
#[tokio::test]
async fn an_identical_new_instance_is_switched_to_without_a_schema_change() {
    let mut script = Script::with_customers();
    script.instances.push(CaptureInstance {
        name: "dbo_customers_v2".into(),
        table: customers(),
        start_lsn: lsn(10),
    });
    script.row("dbo_customers", 5, 1, Operation::Insert, anne());
    script.row("dbo_customers_v2", 12, 1, Operation::Delete, george());
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
    assert!(!topics.contains(&"server1"), "no schema change: {topics:?}");
    assert_eq!(
        writer.events(),
        pairs(&[("c", 1004), ("d", 1002), ("-", 1002)])
    );
}

/// By default a vanished instance is dropped as Debezium drops it: capture carries on
/// with the table's new instance, and counts it on `/metrics`.
#[tokio::test]
async fn a_vanished_instance_is_dropped_and_capture_continues() {
    let mut script = Script::with_customers();
    script.row("dbo_customers", 5, 1, Operation::Insert, anne());
    let mut writer = Memory::default();
    let mut streamer = Streamer::new(settings(), clock());
    streamer.resume_from(Offset::Snapshot {
        commit: lsn(2),
        completed: true,
    });
    drain(&mut streamer, &mut script, &mut writer)
        .await
        .expect("first pass");
    script.instances = vec![CaptureInstance {
        name: "dbo_customers_again".into(),
        table: customers(),
        start_lsn: lsn(20),
    }];
    script.row("dbo_customers_again", 21, 1, Operation::Insert, george());
    drain(&mut streamer, &mut script, &mut writer)
        .await
        .expect("dropped, not fatal");
    assert_eq!(writer.events(), pairs(&[("c", 1004), ("c", 1002)]));
    assert_eq!(streamer.dropped_instances(), 1);
    let progress = Progress::default();
    progress.set_instances_dropped(streamer.dropped_instances());
    assert!(
        progress
            .prometheus()
            .contains("sluice_capture_instances_dropped_total 1")
    );
}

/// A key-changing update is two data events in the transaction's counts (the delete and
/// the create, as Debezium's `TransactionMonitor` counts them), and its tombstone carries
/// the delete's `__debezium.newkey` header.
#[tokio::test]
async fn a_key_change_counts_two_events_and_its_tombstone_names_the_new_key() {
    let mut script = Script::with_customers();
    let mut renumbered = sally();
    renumbered[0] = SqlValue::I32(2001);
    script.update("dbo_customers", 5, 1, sally(), renumbered);
    // The next transaction: it ends the first.
    script.row("dbo_customers", 6, 1, Operation::Insert, anne());
    let settings = CaptureSettings {
        transaction_metadata: true,
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
    let records = writer.records();
    let json = |i: usize| -> serde_json::Value {
        serde_json::from_slice(records[i].value.as_ref().expect("value")).expect("JSON")
    };
    // BEGIN, delete, tombstone, create, END, BEGIN, create.
    assert_eq!(records.len(), 7);
    assert_eq!(json(1)["transaction"]["total_order"], 1);
    assert_eq!(json(3)["transaction"]["total_order"], 2);
    assert_eq!(json(3)["transaction"]["data_collection_order"], 2);
    assert_eq!(json(4)["event_count"], 2);
    assert_eq!(json(4)["data_collections"][0]["event_count"], 2);
    assert_eq!(records[2].value, None);
    assert_eq!(
        records[2].headers,
        vec![("__debezium.newkey".to_owned(), b"{\"id\":2001}".to_vec())]
    );
}

/// An offset Debezium wrote with `"change_lsn":"NULL"`: the commit is read again from
/// its first change, as Debezium does.
#[tokio::test]
async fn a_debezium_offset_without_a_change_lsn_reads_its_commit_again() {
    let mut script = Script::with_customers();
    script.row("dbo_customers", 5, 1, Operation::Insert, anne());
    script.row("dbo_customers", 6, 1, Operation::Insert, george());
    let stored = Offset::decode(
        format!(
            r#"{{"commit_lsn":"{}","change_lsn":"NULL","event_serial_no":1}}"#,
            lsn(6)
        )
        .as_bytes(),
    )
    .expect("Debezium's offset");
    let mut writer = Memory::default();
    let mut streamer = Streamer::new(settings(), clock());
    streamer.resume_from(stored);
    drain(&mut streamer, &mut script, &mut writer)
        .await
        .expect("capture");
    assert_eq!(writer.events(), pairs(&[("c", 1002)]));
}

/// Snapshot markers as Debezium's `setSnapshotMarker` sets them: a one-row table's row
/// is its last; an empty last table leaves `last` unused; each table's `ts_ms` is the
/// server's time as its read began.
#[tokio::test]
async fn snapshot_markers_for_one_row_and_empty_tables_follow_debezium() {
    let mut script = Script::with_customers();
    let orders = TableSchema {
        table: "orders".into(),
        ..customers()
    };
    script.instances.push(CaptureInstance {
        name: "dbo_orders".into(),
        table: orders,
        start_lsn: lsn(1),
    });
    script
        .snapshot
        .insert("dbo.customers".into(), vec![sally(), george()]);
    let settings = CaptureSettings::new(
        "server1",
        "testDB",
        vec!["dbo.orders".into(), "dbo.customers".into()],
    );
    let one_row = |script: &mut Script| {
        script.snapshot.insert("dbo.orders".into(), vec![anne()]);
    };
    let markers = |writer: &Memory| -> Vec<String> {
        writer
            .records()
            .iter()
            .filter_map(|r| r.value.as_ref())
            .map(|v| serde_json::from_slice::<serde_json::Value>(v).expect("JSON"))
            .filter(|v| v["op"] == "r")
            .map(|v| {
                v["source"]["snapshot"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    // An empty first table: no `first` at all.
    let mut writer = Memory::default();
    snapshot::run(
        &mut script,
        &mut writer,
        &settings,
        &clock(),
        &Progress::default(),
    )
    .await
    .expect("snapshot");
    assert_eq!(markers(&writer), ["first_in_data_collection", "last"]);
    // A one-row first table: its row is the first; the one-row last table's is `last`.
    one_row(&mut script);
    script
        .snapshot
        .insert("dbo.customers".into(), vec![george()]);
    let mut writer = Memory::default();
    snapshot::run(
        &mut script,
        &mut writer,
        &settings,
        &clock(),
        &Progress::default(),
    )
    .await
    .expect("snapshot");
    assert_eq!(markers(&writer), ["first", "last"]);
    // A one-row middle table between empty ones: `last_in_data_collection`, no `last`.
    script.snapshot.insert("dbo.customers".into(), vec![]);
    let settings = CaptureSettings::new(
        "server1",
        "testDB",
        vec![
            "dbo.customers".into(),
            "dbo.orders".into(),
            "dbo.customers".into(),
        ],
    );
    let mut writer = Memory::default();
    snapshot::run(
        &mut script,
        &mut writer,
        &settings,
        &clock(),
        &Progress::default(),
    )
    .await
    .expect("snapshot");
    assert_eq!(markers(&writer), ["last_in_data_collection"]);
}

/// Topic names as Debezium sanitises them, and the database as the server names it.
#[test]
fn topic_and_database_names_follow_debezium() {
    let mut table = customers();
    table.table = "Order Lines".into();
    assert_eq!(
        table.topic(&crate::fixtures::settings(false)),
        "server1.testDB.dbo.Order_Lines"
    );
    let config = config::parse(
        r#"
        [capture]
        connection = "server=tcp:db,1433;database=testdb;user=sa;password=x"
        topic_prefix = "server1"
        tables = ["dbo.Straße"]
        [kafka]
        properties = { "bootstrap.servers" = "k:9092" }
        "#,
        "c.toml",
    )
    .expect("valid");
    let config = with_server_database(&config, "testDB");
    assert_eq!(config.settings.events.database, "testDB");
    assert_eq!(config.topics(), ["server1.testDB.dbo.Stra_e"]);
}

/// `skipped.operations`: updates and deletes not published (a primary-key update is an
/// update, as Debezium judges it); inserts are.
#[tokio::test]
async fn skipped_operations_are_not_published() {
    let mut script = Script::with_customers();
    let mut renumbered = sally();
    renumbered[0] = SqlValue::I32(2001);
    script.row("dbo_customers", 5, 1, Operation::Insert, anne());
    script.update("dbo_customers", 6, 1, sally(), renumbered);
    script.row("dbo_customers", 7, 1, Operation::Delete, george());
    let config = config::parse(
        r#"
        [capture]
        connection = "server=tcp:db,1433;database=testDB;user=sa;password=x"
        topic_prefix = "server1"
        tables = ["dbo.customers"]
        "skipped.operations" = "u,d"
        [kafka]
        properties = { "bootstrap.servers" = "k:9092" }
        "#,
        "c.toml",
    )
    .expect("valid");
    let mut writer = Memory::default();
    let mut streamer = Streamer::new(config.settings, clock());
    streamer.resume_from(Offset::Snapshot {
        commit: lsn(2),
        completed: true,
    });
    drain(&mut streamer, &mut script, &mut writer)
        .await
        .expect("capture");
    assert_eq!(writer.events(), pairs(&[("c", 1004)]));
}

/// `column_exclude_list` and `message_key_columns`: the snapshot and the stream leave the
/// column out and key the table by the chosen columns.
#[tokio::test]
async fn excluded_columns_and_message_key_columns_shape_every_event() {
    let mut script = Script::with_customers();
    script
        .snapshot
        .insert("dbo.customers".into(), vec![sally()]);
    script.after_snapshot.insert(
        "dbo_customers".into(),
        vec![ChangeRow {
            start_lsn: lsn(5),
            seqval: change(5, 1),
            operation: Operation::Insert,
            command_id: 1,
            commit_ts_ms: 1_795_162_500_005,
            values: anne(),
        }],
    );
    let config = config::parse(
        r#"
        [capture]
        connection = "server=tcp:db,1433;database=testDB;user=sa;password=x"
        topic_prefix = "server1"
        tables = ["dbo.customers"]
        "column.exclude.list" = "dbo.customers.first_name, dbo.customers.last_name"
        "message.key.columns" = "dbo.customers:email"
        [kafka]
        properties = { "bootstrap.servers" = "k:9092" }
        "#,
        "c.toml",
    )
    .expect("valid");
    let settings = CaptureSettings {
        poll_interval: std::time::Duration::from_millis(1),
        ..config.settings
    };
    let mut writer = Memory::default();
    run(
        &mut script,
        &mut writer,
        &settings,
        None,
        clock(),
        &Progress::default(),
        tokio::time::sleep(std::time::Duration::from_millis(100)),
    )
    .await
    .expect("capture");
    let data: Vec<&OutRecord> = writer
        .records()
        .into_iter()
        .filter(|r| r.topic == "server1.testDB.dbo.customers")
        .collect();
    assert_eq!(data.len(), 2, "the snapshot row and the insert");
    for record in data {
        let key: serde_json::Value =
            serde_json::from_slice(record.key.as_ref().expect("key")).expect("JSON");
        assert!(key["email"].is_string() && key.get("id").is_none(), "{key}");
        let value: serde_json::Value =
            serde_json::from_slice(record.value.as_ref().expect("value")).expect("JSON");
        assert!(value["after"].get("first_name").is_none(), "{value}");
        assert!(value["after"]["id"].is_number(), "{value}");
    }
}
