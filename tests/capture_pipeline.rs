//! The seed pipeline in one process, as `docker compose up` runs it but without SQL
//! Server: `sluice run` with a `[capture]` table, its capture fed by CDC tables scripted
//! from `samples/customers.jsonl` (the rows, LSNs and commit times those events
//! describe), writing Debezium events to a real broker (tansu), read back by the lane of
//! `customers-cdm`, whose `cdm.customer` records must equal the golden file that the
//! same plugin produces from the samples themselves.
//!
//! What this proves: capture's events are what the transform side expects, through Kafka,
//! in one process. What it does not: the SQL against a real server (`tests/capture.rs`,
//! `SLUICE_TEST_MSSQL_URL`).

use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;
use sluice_capture::envelope::TableSchema;
use sluice_capture::sqlserver::lsn::Lsn;
use sluice_capture::sqlserver::tables::{
    CaptureInstance, CdcTables, ChangeRow, Operation, Read, Rows, SnapshotIsolation, TablesError,
};
use sluice_capture::sqlserver::types::SqlValue;
use sluice_tests::{Broker, components, repo_root, sample};

use crate::support::{kafka_config, plugin};

const TOPIC: &str = "server1.testDB.dbo.customers";

/// Days between 0001-01-01 (SQL Server's day 0) and 1970-01-01.
const DAYS_0001_TO_1970: i64 = 719_162;

/// A `datetime2(scale)` at `units` of 10^-scale s since the epoch, as tiberius reads it.
fn datetime2(units: i64, scale: u8) -> SqlValue {
    let per_day = 86_400 * 10i64.pow(scale as u32);
    SqlValue::DateTime2 {
        days: (units.div_euclid(per_day) + DAYS_0001_TO_1970) as u32,
        increments: units.rem_euclid(per_day) as u64,
        scale,
    }
}

/// A Debezium row image of the sample back into the values SQL Server would hold.
/// `updated_at` keeps whole 100 ns: the samples carry digits `datetime2(7)` cannot store.
fn row(image: &Value) -> Vec<SqlValue> {
    let text = |field: &str| match image[field].as_str() {
        Some(s) => SqlValue::String(s.to_owned()),
        None => SqlValue::Null,
    };
    let credit = match image["credit_limit"].as_str() {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64");
            let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
            let mut wide = [if negative { 0xff } else { 0 }; 16];
            wide[16 - bytes.len()..].copy_from_slice(&bytes);
            SqlValue::Numeric {
                value: i128::from_be_bytes(wide),
                scale: 2,
            }
        }
        None => SqlValue::Null,
    };
    let birth = match image["birth_date"].as_i64() {
        Some(days) => SqlValue::Date {
            days: (days + DAYS_0001_TO_1970) as u32,
        },
        None => SqlValue::Null,
    };
    vec![
        SqlValue::I32(image["id"].as_i64().expect("id") as i32),
        text("first_name"),
        text("last_name"),
        text("email"),
        credit,
        birth,
        datetime2(image["created_at"].as_i64().expect("created_at"), 3),
        datetime2(image["updated_at"].as_i64().expect("updated_at") / 100, 7),
        SqlValue::Guid(image["customer_guid"].as_str().expect("guid").to_owned()),
        SqlValue::Bit(image["is_active"].as_bool().expect("is_active")),
    ]
}

/// The change tables the samples describe: the `r` events are the snapshot (at their
/// `commit_lsn`), every other event one or two change rows.
struct SampleTables {
    instance: CaptureInstance,
    snapshot_at: Lsn,
    snapshot_ms: i64,
    snapshot: Vec<Vec<SqlValue>>,
    changes: Vec<ChangeRow>,
    /// Whether the snapshot has ended: before, the max LSN is the snapshot's.
    snapshot_done: bool,
}

impl SampleTables {
    fn from_samples() -> Self {
        let lsn = |v: &Value| Lsn::parse(v.as_str().expect("lsn")).expect("lsn");
        let mut tables = SampleTables {
            instance: CaptureInstance {
                name: "dbo_customers".into(),
                table: sluice_capture::fixtures::customers(),
                start_lsn: Lsn::ZERO.increment(),
            },
            snapshot_at: Lsn::ZERO,
            snapshot_ms: 0,
            snapshot: Vec::new(),
            changes: Vec::new(),
            snapshot_done: false,
        };
        let text = std::fs::read_to_string(sample("customers.jsonl")).expect("samples");
        for line in text.lines() {
            let line: Value = serde_json::from_str(line).expect("JSON line");
            let value = &line["value"];
            if value.is_null() {
                continue; // a tombstone: capture writes its own after the delete
            }
            let source = &value["source"];
            let change = |operation, image: &Value| ChangeRow {
                start_lsn: lsn(&source["commit_lsn"]),
                seqval: lsn(&source["change_lsn"]),
                operation,
                command_id: 1,
                commit_ts_ms: source["ts_ms"].as_i64().expect("ts_ms"),
                values: row(image),
            };
            match value["op"].as_str().expect("op") {
                "r" => {
                    tables.snapshot_at = lsn(&source["commit_lsn"]);
                    tables.snapshot_ms = source["ts_ms"].as_i64().expect("ts_ms");
                    tables.snapshot.push(row(&value["after"]));
                }
                "c" => tables
                    .changes
                    .push(change(Operation::Insert, &value["after"])),
                "u" => {
                    tables
                        .changes
                        .push(change(Operation::UpdateBefore, &value["before"]));
                    tables
                        .changes
                        .push(change(Operation::UpdateAfter, &value["after"]));
                }
                "d" => tables
                    .changes
                    .push(change(Operation::Delete, &value["before"])),
                other => panic!("unexpected op {other}"),
            }
        }
        tables
    }
}

impl CdcTables for SampleTables {
    async fn max_lsn(&mut self) -> Result<Option<Lsn>, TablesError> {
        Ok(Some(if self.snapshot_done {
            self.changes
                .iter()
                .map(|c| c.start_lsn)
                .max()
                .unwrap_or(self.snapshot_at)
        } else {
            self.snapshot_at
        }))
    }

    async fn capture_instances(&mut self) -> Result<Vec<CaptureInstance>, TablesError> {
        Ok(vec![self.instance.clone()])
    }

    async fn window_end(
        &mut self,
        from: Lsn,
        transactions: u32,
    ) -> Result<Option<Lsn>, TablesError> {
        let mut commits: Vec<Lsn> = self
            .changes
            .iter()
            .map(|c| c.start_lsn)
            .filter(|c| *c >= from)
            .collect();
        commits.dedup();
        Ok(commits.into_iter().take(transactions as usize).max())
    }

    async fn changes<'a>(&'a mut self, reads: &'a [Read]) -> Result<Vec<Rows<'a>>, TablesError> {
        let changes = &self.changes;
        Ok(reads
            .iter()
            .map(|read| {
                let rows = changes
                    .iter()
                    .filter(move |c| read.from <= c.start_lsn && c.start_lsn <= read.to)
                    .cloned()
                    .map(Ok);
                futures::stream::iter(rows).boxed()
            })
            .collect())
    }

    async fn begin_snapshot(
        &mut self,
        _isolation: SnapshotIsolation,
        _tables: &[String],
    ) -> Result<(), TablesError> {
        Ok(())
    }

    async fn count_rows(&mut self, _table: &TableSchema) -> Result<u64, TablesError> {
        Ok(self.snapshot.len() as u64)
    }

    async fn snapshot_rows<'a>(
        &'a mut self,
        _table: &'a TableSchema,
        _select: Option<&'a str>,
    ) -> Result<BoxStream<'a, Result<Vec<SqlValue>, TablesError>>, TablesError> {
        Ok(futures::stream::iter(self.snapshot.clone().into_iter().map(Ok)).boxed())
    }

    async fn end_snapshot(&mut self) -> Result<(), TablesError> {
        self.snapshot_done = true;
        Ok(())
    }

    async fn now_ms(&mut self) -> Result<i64, TablesError> {
        Ok(self.snapshot_ms)
    }
}

/// A CDM line as JSON, with `updatedAt` cut to whole 100 ns (what SQL Server stores), so the
/// golden file's values from the samples compare with what capture could read.
fn to_100ns(line: &str) -> Value {
    // As `sluice plugin test` compares: without the component's hash, which differs
    // between builds of the same source.
    let mut record = sluice::plugin_test::normalize(line);
    if let Some(updated) = record["value"]["updatedAt"].as_str() {
        // "2026-11-02T08:45:12.000001001Z": nine fraction digits, the last two below 100 ns.
        let (head, _) = updated.split_at(updated.len() - 3);
        record["value"]["updatedAt"] = Value::String(format!("{head}00Z"));
    }
    record
}

#[test]
fn capture_in_sluice_run_feeds_customers_cdm_through_kafka() {
    let broker = Broker::start();
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        sluice_tests::create_topics(
            &broker.bootstrap,
            &[
                (TOPIC, 1),
                ("server1", 1),
                ("sluice.capture.offsets", 1),
                ("cdm.customer", 1),
                ("sluice.dlq", 1),
            ],
        )
        .await;
        let mut config = kafka_config(
            &broker.bootstrap,
            "seed-pipeline",
            TOPIC,
            plugin(
                "customers-cdm",
                components::CUSTOMERS_CDM,
                &[TOPIC],
                &["cdm.customer"],
                &[],
            ),
            4,
        );
        // tansu has no transactions (README, Tests): at-least-once capture here.
        let capture = sluice_capture::config::parse(
            &format!(
                r#"
                [capture]
                connection = "server=tcp:127.0.0.1,1;database=testDB;user=sa;password=unused"
                topic_prefix = "server1"
                tables = ["dbo.customers"]
                poll_interval = "50ms"
                [capture.kafka]
                transactions = false
                properties = {{ "bootstrap.servers" = "{}" }}
                "#,
                broker.bootstrap
            ),
            "capture.toml",
        )
        .expect("capture config");
        config.capture = Some(sluice_capture::config::CaptureKind::SqlServer(
            capture.clone(),
        ));
        // The scripted tables stand in for SQL Server; `capture` is the config parsed above.
        let start: sluice::app::CaptureStarter = Box::new(move |_, telemetry, stopped| {
            Box::pin(async move {
                let mut tables = SampleTables::from_samples();
                sluice_capture::run_on(&mut tables, &capture, &telemetry, stopped).await
            })
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sluice = tokio::spawn(sluice::app::run_with(config, start, async move {
            let _ = stopped.await;
        }));

        let golden = std::fs::read_to_string(
            repo_root()
                .join("tests")
                .join("golden")
                .join("customers-cdm.jsonl"),
        )
        .expect("golden");
        let expected: Vec<Value> = golden.lines().map(to_100ns).collect();
        let actual: Vec<Value> = crate::support::read_json_lines(
            &broker.bootstrap,
            "cdm.customer",
            expected.len(),
            Duration::from_secs(120),
        )
        .await
        .iter()
        .map(|line| to_100ns(line))
        .collect();
        stop.send(()).expect("sluice still running");
        let stats = tokio::time::timeout(Duration::from_secs(60), sluice)
            .await
            .expect("sluice stops")
            .expect("task")
            .expect("sluice ran cleanly, capture included");
        for (n, (actual, expected)) in actual.iter().zip(&expected).enumerate() {
            assert_eq!(actual, expected, "CDM record {n}");
        }
        // Ten Debezium records (nine events and the delete's tombstone), none rejected.
        assert_eq!(stats.records_in, 10);
        assert_eq!(stats.dead_lettered, 0);
        // The schema snapshot went to `<prefix>`, as Debezium's does.
        assert_eq!(crate::kafka::published(&broker.bootstrap, "server1"), 1);
    });
}
