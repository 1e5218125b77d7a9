//! `sluice capture` beyond its unit tests (which drive the capture loop with scripted CDC
//! tables, `host/src/capture/scripted.rs`, and the transactional writer on librdkafka's
//! mock cluster):
//! - configuration errors as golden files (`tests/capture_config/*.toml` → `.err`);
//! - the offsets topic on the real test broker (tansu): events and offsets published
//!   without transactions, the offset read back as a restart does; and what tansu does
//!   with the transactional path;
//! - fencing of a second capture of one database, against Apache Kafka
//!   (`SLUICE_TEST_KAFKA_BOOTSTRAP`, e.g. `docker compose up kafka`);
//! - end to end against a real SQL Server (`SLUICE_TEST_MSSQL_URL`, e.g.
//!   `docker compose up mssql`): CDC enabled, rows written, events checked.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_capture::filters::TableSelection;
use sluice_capture::offsets::{Offset, Position};
use sluice_capture::writer::{KafkaWriter, read_offset};
use sluice_capture::{EventWriter, OutRecord, WriteError};
use sluice_tests::Broker;

const TOPIC: &str = "server1.testDB.dbo.customers";
const OFFSETS: &str = "sluice.capture.offsets";

#[test]
fn every_bad_capture_config_gives_its_golden_error() {
    let cases = crate::config_errors::check_golden_errors("capture_config", |_, path| {
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(path).expect("read case");
        sluice_capture::config::parse_any(&text, &name)
            .expect_err(&name)
            .to_string()
    });
    assert!(
        cases >= 3,
        "expected the golden cases in tests/capture_config"
    );
}

#[test]
fn the_compose_capture_config_is_valid() {
    let path = sluice_tests::repo_root()
        .join("docker")
        .join("capture.toml");
    if let Err(e) = sluice_capture::config::load(&path) {
        panic!("{e}");
    }
}

fn record(id: i32) -> OutRecord {
    OutRecord {
        topic: TOPIC.into(),
        key: Some(format!("{{\"id\":{id}}}").into_bytes()),
        value: Some(format!("{{\"op\":\"c\",\"id\":{id}}}").into_bytes()),
        headers: Vec::new(),
    }
}

fn offset(commit: u8, serial: i64) -> Offset {
    let mut bytes = [0; 10];
    bytes[9] = commit;
    Offset::Stream(
        Position {
            commit: sluice_capture::sqlserver::lsn::Lsn(bytes),
            change: sluice_capture::sqlserver::lsn::Lsn(bytes),
            serial,
            command: Some(1),
        },
        None,
    )
}

fn properties(bootstrap: &str) -> Vec<(String, String)> {
    vec![("bootstrap.servers".into(), bootstrap.into())]
}

#[test]
fn offsets_are_stored_and_read_back_on_tansu_without_transactions() {
    let broker = Broker::start();
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        sluice_tests::create_topics(&broker.bootstrap, &[(TOPIC, 1), (OFFSETS, 1)]).await;
        let props = properties(&broker.bootstrap);
        assert_eq!(
            read_offset(&props, OFFSETS, "server1", "testDB").await,
            Ok(None)
        );
        let mut writer =
            KafkaWriter::new(&props, OFFSETS, "server1", "testDB", false).expect("writer");
        writer
            .commit(vec![record(1), record(2)], offset(5, 1))
            .await
            .expect("commit");
        writer
            .commit(vec![record(3)], offset(6, 2))
            .await
            .expect("commit");
        // Another database's offset in the same topic does not interfere.
        let mut other =
            KafkaWriter::new(&props, OFFSETS, "server1", "otherDB", false).expect("writer");
        other
            .commit(Vec::new(), offset(9, 1))
            .await
            .expect("commit");
        // A restart reads the last offset of its own database.
        assert_eq!(
            read_offset(&props, OFFSETS, "server1", "testDB").await,
            Ok(Some(offset(6, 2)))
        );
        assert_eq!(
            read_offset(&props, OFFSETS, "server1", "otherDB").await,
            Ok(Some(offset(9, 1)))
        );
    });
}

/// tansu 0.6.0 does not implement transactions (README, Tests): this records what the
/// transactional writer gets from it, without asserting either way.
#[test]
fn the_transactional_writer_on_tansu() {
    let broker = Broker::start();
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        sluice_tests::create_topics(&broker.bootstrap, &[(TOPIC, 1), (OFFSETS, 1)]).await;
        let props = vec![
            ("bootstrap.servers".to_owned(), broker.bootstrap.clone()),
            ("transaction.timeout.ms".to_owned(), "10000".to_owned()),
        ];
        let created = tokio::task::spawn_blocking({
            let props = props.clone();
            move || KafkaWriter::new(&props, OFFSETS, "server1", "testDB", true)
        })
        .await
        .expect("join");
        match created {
            Err(e) => println!("tansu refuses the transactional writer: {e}"),
            Ok(mut writer) => {
                let committed = tokio::time::timeout(
                    Duration::from_secs(60),
                    writer.commit(vec![record(1)], offset(5, 1)),
                )
                .await;
                println!("tansu transactional commit: {committed:?}");
                let read = tokio::time::timeout(
                    Duration::from_secs(40),
                    read_offset(&props, OFFSETS, "server1", "testDB"),
                )
                .await;
                println!("tansu read_committed offset read-back: {read:?}");
                // A second writer with the same transactional.id: Apache Kafka fences
                // the first.
                let second = tokio::task::spawn_blocking({
                    let props = props.clone();
                    move || KafkaWriter::new(&props, OFFSETS, "server1", "testDB", true)
                })
                .await
                .expect("join");
                println!(
                    "tansu second transactional writer: {:?}",
                    second.as_ref().map(|_| "created")
                );
                let fenced = tokio::time::timeout(
                    Duration::from_secs(60),
                    writer.commit(vec![record(2)], offset(6, 1)),
                )
                .await;
                println!(
                    "tansu first writer after the second started (Apache Kafka: Fenced): {fenced:?}"
                );
            }
        }
    });
}

#[test]
#[ignore = "needs SLUICE_TEST_KAFKA_BOOTSTRAP: Apache Kafka, e.g. docker compose up kafka"]
fn a_second_capture_of_one_database_is_fenced_on_apache_kafka() {
    let bootstrap = std::env::var("SLUICE_TEST_KAFKA_BOOTSTRAP")
        .expect("SLUICE_TEST_KAFKA_BOOTSTRAP is set (the test is ignored otherwise)");
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        let topic_suffix = std::process::id();
        let offsets = format!("sluice.capture.offsets.{topic_suffix}");
        let data = format!("{TOPIC}.{topic_suffix}");
        sluice_tests::create_topics(&bootstrap, &[(&data, 1), (&offsets, 1)]).await;
        let props = properties(&bootstrap);
        let database = format!("fence{topic_suffix}");
        let new = |props: Vec<(String, String)>, offsets: String, database: String| {
            tokio::task::spawn_blocking(move || {
                KafkaWriter::new(&props, &offsets, "server1", &database, true)
            })
        };
        let mut first = new(props.clone(), offsets.clone(), database.clone())
            .await
            .expect("join")
            .expect("first");
        let mut event = record(1);
        event.topic = data.clone();
        first
            .commit(vec![event.clone()], offset(1, 1))
            .await
            .expect("first commits");
        let mut second = new(props.clone(), offsets.clone(), database.clone())
            .await
            .expect("join")
            .expect("second");
        let fenced = first.commit(vec![event.clone()], offset(2, 1)).await;
        assert!(matches!(fenced, Err(WriteError::Fenced(_))), "{fenced:?}");
        second
            .commit(vec![event], offset(3, 1))
            .await
            .expect("the new capture commits");
        assert_eq!(
            read_offset(&props, &offsets, "server1", &database).await,
            Ok(Some(offset(3, 1)))
        );
    });
}

/// One commit: its records and offset.
type Commit = (Vec<OutRecord>, Offset);

/// Collects what capture commits.
#[derive(Clone, Default)]
struct Collected(Arc<Mutex<Vec<Commit>>>);

impl EventWriter for Collected {
    async fn commit(&mut self, records: Vec<OutRecord>, offset: Offset) -> Result<(), WriteError> {
        self.0.lock().expect("lock").push((records, offset));
        Ok(())
    }
}

impl Collected {
    /// `(op, id)` of the change events on `topic` (`"-"` for tombstones).
    fn events(&self, topic: &str) -> Vec<(String, i64)> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|(records, _)| records.iter())
            .filter(|r| r.topic == topic)
            .map(|r| {
                let key: serde_json::Value =
                    serde_json::from_slice(r.key.as_deref().unwrap_or(b"null")).expect("key");
                let op = match &r.value {
                    None => "-".to_owned(),
                    Some(v) => serde_json::from_slice::<serde_json::Value>(v).expect("value")["op"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                };
                (op, key["id"].as_i64().unwrap_or(-1))
            })
            .collect()
    }
}

#[test]
#[ignore = "needs SLUICE_TEST_MSSQL_URL: an ADO.NET connection string of a SQL Server with the Agent running and a sysadmin login (docker compose up mssql; see README, Tests)"]
fn capture_from_a_real_sql_server() {
    let url = std::env::var("SLUICE_TEST_MSSQL_URL")
        .expect("SLUICE_TEST_MSSQL_URL is set (the test is ignored otherwise)");
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        use sluice_capture::sqlserver::{SqlServerTables, client};
        let run = |sql: String, url: String| async move {
            let mut client = client(&url).await.expect("connect");
            client
                .simple_query(sql.as_str())
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .into_results()
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        };
        run("IF DB_ID(N'sluice_test') IS NULL CREATE DATABASE sluice_test".into(), url.clone()).await;
        let db_url = format!("{url};database=sluice_test");
        let table = format!("customers_{}", std::process::id());
        run("IF (SELECT is_cdc_enabled FROM sys.databases WHERE name = DB_NAME()) = 0 EXEC sys.sp_cdc_enable_db".into(), db_url.clone()).await;
        run(format!(
            "CREATE TABLE dbo.{table} (id int NOT NULL PRIMARY KEY, email nvarchar(255) NULL, credit_limit decimal(12,2) NULL, \
             birth_date date NULL, updated_at datetime2(7) NOT NULL, guid uniqueidentifier NOT NULL, is_active bit NOT NULL); \
             INSERT INTO dbo.{table} VALUES (1001, N'sally@example.com', 5000.00, '1985-03-14', '2026-11-01T12:00:00.1234567', '6F9619FF-8B86-D011-B42D-00C04FC964FF', 1), \
             (1002, N'george@example.org', 1250.50, NULL, '2026-11-02T08:45:12', '0E984725-C51C-4BF4-9960-E1C80E27ABA0', 1); \
             EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'{table}', @role_name = NULL;"
        ), db_url.clone()).await;

        let mut settings = sluice_capture::CaptureSettings::new("server1", "sluice_test", vec![format!("dbo.{table}")]);
        settings.poll_interval = Duration::from_millis(200);
        let topic = format!("server1.sluice_test.dbo.{table}");
        let mut tables = SqlServerTables::connect(&db_url, &TableSelection::named(settings.tables.clone())).await.expect("CDC tables");
        // CDC's capture job must have run once (a max LSN) before capture starts.
        {
            use sluice_capture::sqlserver::tables::CdcTables;
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while tables.max_lsn().await.expect("max LSN").is_none() {
                assert!(std::time::Instant::now() < deadline, "no max LSN: is SQL Server Agent running?");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        let collected = Collected::default();
        let mut writer = collected.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let capture = tokio::spawn(async move {
            let progress = sluice_capture::sqlserver::snapshot::Progress::default();
            sluice_capture::run(&mut tables, &mut writer, &settings, None, sluice_capture::system_clock(), &progress, async {
                let _ = stopped.await;
            })
            .await
        });
        // Wait for the snapshot, then change rows.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while collected.events(&topic).len() < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        run(format!(
            "INSERT INTO dbo.{table} VALUES (1004, N'anne@example.org', -250.75, '1961-05-09', SYSUTCDATETIME(), NEWID(), 1); \
             UPDATE dbo.{table} SET email = N'sally.t@example.org' WHERE id = 1001; DELETE FROM dbo.{table} WHERE id = 1002;"
        ), db_url.clone()).await;
        let expected: Vec<(String, i64)> = [("r", 1001), ("r", 1002), ("c", 1004), ("u", 1001), ("d", 1002), ("-", 1002)]
            .iter()
            .map(|(op, id)| (op.to_string(), *id))
            .collect();
        // The Agent's capture job reads the log every few seconds.
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while collected.events(&topic).len() < expected.len() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let _ = stop.send(());
        capture.await.expect("join").expect("capture ran");
        assert_eq!(collected.events(&topic), expected);
        let values: Vec<serde_json::Value> = collected.0.lock().expect("lock").iter()
            .flat_map(|(r, _)| r.iter()).filter(|r| r.topic == topic).filter_map(|r| r.value.as_ref())
            .map(|v| serde_json::from_slice(v).expect("JSON")).collect();
        assert_eq!(values[0]["after"]["credit_limit"], "B6Eg");
        assert_eq!(values[0]["after"]["birth_date"], 5551);
        assert_eq!(values[0]["after"]["updated_at"], 1_793_534_400_123_456_700i64);
        assert_eq!(values[0]["after"]["guid"], "6F9619FF-8B86-D011-B42D-00C04FC964FF");
        assert_eq!(values[0]["source"]["snapshot"], "first");
        assert_eq!(values[3]["before"]["email"], "sally@example.com");
        assert_eq!(values[3]["after"]["email"], "sally.t@example.org");
        assert_eq!(values[3]["source"]["event_serial_no"], 2);
        // The schema snapshot: one CREATE for the table, its columns as the catalog says.
        let created: Vec<serde_json::Value> = collected.0.lock().expect("lock").iter()
            .flat_map(|(r, _)| r.iter()).filter(|r| r.topic == "server1").filter_map(|r| r.value.as_ref())
            .map(|v| serde_json::from_slice(v).expect("JSON")).collect();
        assert_eq!(created.len(), 1, "{created:?}");
        let change = &created[0]["tableChanges"][0];
        assert_eq!(change["type"], "CREATE");
        assert_eq!(change["table"]["primaryKeyColumnNames"], serde_json::json!(["id"]));
        let columns = &change["table"]["columns"];
        assert_eq!((columns[0]["jdbcType"].clone(), columns[0]["optional"].clone()), (4.into(), false.into()));
        assert_eq!((columns[1]["typeName"].clone(), columns[1]["length"].clone()), ("nvarchar".into(), 255.into()));
        assert_eq!((columns[4]["length"].clone(), columns[4]["scale"].clone()), (27.into(), 7.into()));
        run(format!("EXEC sys.sp_cdc_disable_table @source_schema = N'dbo', @source_name = N'{table}', @capture_instance = N'all'; DROP TABLE dbo.{table};"), db_url).await;
    });
}

/// `sluice capture convert <connector.json>` prints the golden TOML, and that TOML is a
/// valid `sluice capture` configuration.
#[test]
fn sluice_capture_convert_prints_the_golden_toml() {
    let dir = sluice_tests::repo_root().join("tests/capture_convert");
    let output = std::process::Command::new(sluice_tests::sluice_bin())
        .args(["capture", "convert"])
        .arg(dir.join("inventory.json"))
        .output()
        .expect("sluice runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).expect("utf8");
    let golden = std::fs::read_to_string(dir.join("inventory.toml")).expect("golden");
    assert_eq!(printed, golden);
    sluice_capture::config::parse(&printed, "inventory.toml").expect("a valid configuration");
}

/// [`Collected`] that fails (a crash) at commit number `crash_at`.
#[derive(Clone)]
struct Crashing {
    inner: Collected,
    attempts: Arc<Mutex<usize>>,
    crash_at: usize,
}

impl EventWriter for Crashing {
    async fn commit(&mut self, records: Vec<OutRecord>, offset: Offset) -> Result<(), WriteError> {
        let attempt = {
            let mut attempts = self.attempts.lock().expect("lock");
            *attempts += 1;
            *attempts
        };
        if attempt == self.crash_at {
            return Err(WriteError::Kafka("killed".into()));
        }
        self.inner.commit(records, offset).await
    }
}

/// Issue 14 against a real SQL Server: a column capture does not map (`hierarchyid`) is
/// left out and the table captured; a bulk primary-key update (one statement, logged as
/// deletes then inserts with falling change LSNs) with capture killed in its middle and
/// restarted from the stored offset publishes every event exactly once; and after the
/// cleanup job removed changes the stored offset still needed, capture refuses to go on.
#[test]
#[ignore = "needs SQL Server with the Agent running: SLUICE_TEST_MSSQL_URL (an ADO.NET connection string with a sysadmin login)"]
fn real_sql_server_unmapped_column_bulk_key_update_and_cleanup_gap() {
    let url = std::env::var("SLUICE_TEST_MSSQL_URL").expect("SLUICE_TEST_MSSQL_URL");
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        use sluice_capture::sqlserver::{SqlServerTables, client};
        use sluice_capture::sqlserver::tables::CdcTables;
        let run = |sql: String, url: String| async move {
            let mut client = client(&url).await.expect("connect");
            client
                .simple_query(sql.as_str())
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .into_results()
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        };
        run("IF DB_ID(N'sluice_test') IS NULL CREATE DATABASE sluice_test".into(), url.clone()).await;
        let db_url = format!("{url};database=sluice_test");
        let table = format!("places_{}", std::process::id());
        let instance = format!("dbo_{table}");
        run("IF (SELECT is_cdc_enabled FROM sys.databases WHERE name = DB_NAME()) = 0 EXEC sys.sp_cdc_enable_db".into(), db_url.clone()).await;
        let rows: Vec<String> = (1..=20).map(|id| format!("({id}, hierarchyid::Parse('/{id}/'), N'p{id}@example.org')")).collect();
        run(format!(
            "CREATE TABLE dbo.{table} (id int NOT NULL PRIMARY KEY, node hierarchyid NULL, email nvarchar(255) NULL); \
             INSERT INTO dbo.{table} VALUES {}; \
             EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'{table}', @role_name = NULL, @capture_instance = N'{instance}';",
            rows.join(", ")
        ), db_url.clone()).await;
        let mut settings = sluice_capture::CaptureSettings::new("server1", "sluice_test", vec![format!("dbo.{table}")]);
        settings.poll_interval = Duration::from_millis(200);
        settings.batch_size = 1;
        let topic = format!("server1.sluice_test.dbo.{table}");
        let connect = || async {
            SqlServerTables::connect(&db_url, &TableSelection::named(vec![format!("dbo.{table}")])).await.expect("CDC tables (a hierarchyid column must not stop them)")
        };
        let wait_for = |what: &'static str, done: Box<dyn Fn() -> bool + Send>| async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(90);
            while !done() {
                assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        };
        let mut tables = connect().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while tables.max_lsn().await.expect("max LSN").is_none() {
            assert!(std::time::Instant::now() < deadline, "no max LSN: is SQL Server Agent running?");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let progress = sluice_capture::sqlserver::snapshot::Progress::default();
        // 1. The snapshot, without the hierarchyid column.
        let snapshot = Collected::default();
        {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let mut writer = snapshot.clone();
            let settings = settings.clone();
            let capture = tokio::spawn(async move {
                let progress = sluice_capture::sqlserver::snapshot::Progress::default();
                let result = sluice_capture::run(&mut tables, &mut writer, &settings, None, sluice_capture::system_clock(), &progress, async { let _ = stopped.await; }).await;
                (tables, result)
            });
            let (seen, topic2) = (snapshot.clone(), topic.clone());
            wait_for("the snapshot", Box::new(move || seen.events(&topic2).len() >= 20)).await;
            let _ = stop.send(());
            let (back, result) = capture.await.expect("join");
            tables = back;
            result.expect("snapshot");
        }
        let stored = snapshot.0.lock().expect("lock").last().map(|(_, o)| o.clone()).expect("an offset");
        for record in snapshot.0.lock().expect("lock").iter().flat_map(|(r, _)| r.iter()).filter(|r| r.topic == topic) {
            let value: serde_json::Value = serde_json::from_slice(record.value.as_ref().expect("value")).expect("JSON");
            assert!(value["after"].get("node").is_none() && value["after"]["email"].is_string(), "{value}");
        }
        // 2. A bulk primary-key update; capture killed in its middle, then restarted.
        run(format!("UPDATE dbo.{table} SET id = id + 1000"), db_url.clone()).await;
        let mut expected: Vec<(String, i64)> = Vec::new();
        let killed = Crashing { inner: Collected::default(), attempts: Arc::default(), crash_at: 15 };
        let mut writer = killed.clone();
        let result = sluice_capture::run(&mut tables, &mut writer, &settings, Some(stored.clone()), sluice_capture::system_clock(), &progress, std::future::pending()).await;
        assert!(result.is_err(), "killed at commit 15");
        let resume = killed.inner.0.lock().expect("lock").last().map(|(_, o)| o.clone()).unwrap_or(stored);
        let restarted = Collected::default();
        {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let mut writer = restarted.clone();
            let settings = settings.clone();
            let capture = tokio::spawn(async move {
                let progress = sluice_capture::sqlserver::snapshot::Progress::default();
                let result = sluice_capture::run(&mut tables, &mut writer, &settings, Some(resume), sluice_capture::system_clock(), &progress, async { let _ = stopped.await; }).await;
                (tables, result)
            });
            let (first, second, topic2) = (killed.inner.clone(), restarted.clone(), topic.clone());
            // 20 deletes (each with its tombstone) and 20 creates.
            wait_for("the bulk update", Box::new(move || first.events(&topic2).len() + second.events(&topic2).len() >= 60)).await;
            let _ = stop.send(());
            let (back, result) = capture.await.expect("join");
            tables = back;
            result.expect("restarted capture");
        }
        let mut published = killed.inner.events(&topic);
        published.extend(restarted.events(&topic));
        for id in 1..=20 {
            expected.push(("d".into(), id));
            expected.push(("-".into(), id));
            expected.push(("c".into(), id + 1000));
        }
        let mut sorted = published.clone();
        sorted.sort();
        expected.sort();
        assert_eq!(sorted, expected, "every event exactly once across the kill: {published:?}");
        // 3. The cleanup job removes changes the stored offset still needs.
        let stored = restarted.0.lock().expect("lock").last().map(|(_, o)| o.clone()).expect("an offset");
        let before = tables.max_lsn().await.expect("max LSN");
        run(format!("INSERT INTO dbo.{table} (id, email) VALUES (5000, N'late@example.org')"), db_url.clone()).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while tables.max_lsn().await.expect("max LSN") == before {
            assert!(std::time::Instant::now() < deadline, "the insert never reached CDC");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        run(format!(
            "DECLARE @lwm binary(10) = sys.fn_cdc_get_max_lsn(); \
             EXEC sys.sp_cdc_cleanup_change_table @capture_instance = N'{instance}', @low_water_mark = @lwm, @threshold = 5000;"
        ), db_url.clone()).await;
        let error = sluice_capture::run(&mut tables, &mut Collected::default(), &settings, Some(stored), sluice_capture::system_clock(), &progress, async {}).await.expect_err("a cleanup gap");
        assert!(matches!(error, sluice_capture::CaptureError::CleanupGap { .. }), "{error}");
        run(format!("EXEC sys.sp_cdc_disable_table @source_schema = N'dbo', @source_name = N'{table}', @capture_instance = N'all'; DROP TABLE dbo.{table};"), db_url).await;
    });
}

/// `[capture]` in `sluice run`: when capture cannot start (here: no SQL Server at the
/// address), the run stops with an error naming capture and the address, instead of
/// running lanes whose input will never come.
#[test]
fn sluice_run_stops_when_its_capture_cannot_reach_sql_server() {
    let broker = Broker::start();
    // A loopback port nobody listens on (the listener is dropped at once).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        r#"
        [source]
        type = "kafka"
        topics = ["{TOPIC}"]
        [source.properties]
        "bootstrap.servers" = "{bootstrap}"
        "group.id" = "capture-unreachable"
        [sink]
        type = "kafka"
        [sink.properties]
        "bootstrap.servers" = "{bootstrap}"
        [runtime]
        cache_dir = ""
        [capture]
        connection = "server=tcp:127.0.0.1,{port};database=testDB;user=sa;password=x;TrustServerCertificate=true"
        topic_prefix = "server1"
        tables = ["dbo.customers"]
        [[plugin]]
        name = "customers-cdm"
        path = "{plugin}"
        inputs = ["{TOPIC}"]
        outputs = ["cdm.customer"]
        "#,
        bootstrap = broker.bootstrap,
        port = closed.port(),
        plugin = sluice_tests::components::CUSTOMERS_CDM,
    );
    let config = sluice::config::parse(&text, "run.toml", dir.path()).expect("valid config");
    let Some(sluice_capture::config::CaptureKind::SqlServer(capture)) = config.capture.as_ref()
    else {
        panic!("[capture] parsed as SQL Server's")
    };
    assert_eq!(
        capture.kafka,
        properties(&broker.bootstrap),
        "the producer takes the source's cluster, not its group.id"
    );
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let result = tokio.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(60),
            sluice::app::run(config, std::future::pending()),
        )
        .await
    });
    let error = result
        .expect("the run stopped by itself (no shutdown was sent)")
        .expect_err("capture could not connect");
    assert!(
        matches!(
            &error,
            sluice::app::RunError::Capture(sluice_capture::CaptureError::Tables(
                sluice_capture::sqlserver::tables::TablesError::Connect(_)
            ))
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("capture") && message.contains(&format!("127.0.0.1:{}", closed.port())),
        "{message}"
    );
}
