//! The seed pipeline on PostgreSQL, through the real `sluice` binary: the sample
//! database of docker-compose.yml (`samples/postgres/init.sql`) in a real PostgreSQL →
//! `sluice run` with a `[capture] type = "postgres"` table → Debezium events on a real
//! broker (tansu) → the `customers-cdm` lane → `cdm.customer`, equal to a golden file.
//!
//! What this proves beyond `tests/postgres.rs`: the PostgreSQL source block reaches the
//! plugin through the SDK's decoder (`lsn` as the change position, `public.customers` as
//! the table), and capture and the lanes run as one process.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sluice_tests::{KillOnDrop, Postgres, components, repo_root, sluice_bin};

use crate::safe_deploys::{broker_with, deploy};

const TOPIC: &str = "dbserver1.public.customers";

/// A CDM line with what differs between runs (WAL positions, commit times, the
/// component's hash, which changes with the toolchain) replaced by what it is, so the
/// rest is compared byte for byte.
fn normalised(line: &str) -> String {
    let mut record: Value = serde_json::from_str(line).expect("a JSON line");
    for header in record["headers"].as_array_mut().into_iter().flatten() {
        if header[0] == "sluice.plugin.sha256" {
            header[1] = Value::String("<sha256>".into());
        }
    }
    if let Some(value) = record.get_mut("value").filter(|v| v.is_object()) {
        let source = &mut value["source"];
        for (field, stands_for) in [
            ("changeLsn", "<lsn>"),
            ("commitLsn", "<commit lsn>"),
            ("tsMs", "<ts_ms>"),
        ] {
            if !source[field].is_null() {
                source[field] = Value::String(stands_for.into());
            }
        }
    }
    record.to_string()
}

#[test]
fn postgres_customers_through_sluice_run_match_the_golden_cdm() {
    let pg = Postgres::start();
    let init = std::fs::read_to_string(repo_root().join("samples/postgres/init.sql"))
        .expect("samples/postgres/init.sql");
    pg.sql(&init);
    let broker = broker_with(&[
        TOPIC,
        "dbserver1",
        "sluice.capture.offsets",
        "cdm.customer",
        "sluice.dlq",
    ]);
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = dir.path().join("plugins");
    deploy(
        &plugins,
        "customers-cdm",
        components::CUSTOMERS_CDM,
        &format!("version = \"1.0.0\"\ninputs = [\"{TOPIC}\"]\noutputs = [\"cdm.customer\"]\n"),
    );
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            r#"[source]
type = "kafka"
topics = ["{TOPIC}"]
linger = "50ms"
properties = {{ "bootstrap.servers" = "{bootstrap}", "group.id" = "pg-seed", "auto.offset.reset" = "earliest" }}

[sink]
type = "kafka"
properties = {{ "bootstrap.servers" = "{bootstrap}" }}

[runtime]
plugins_dir = {plugins:?}

# The publication of init.sql (customers and orders) is used as it is; tansu has no
# transactions (README, Tests): at-least-once capture here.
[capture]
type = "postgres"
connection = "{connection}"
topic_prefix = "dbserver1"
tables = ["public.customers"]
publication_autocreate_mode = "disabled"
flush_interval = "10ms"
[capture.kafka]
transactions = false
"#,
            bootstrap = broker.bootstrap,
            connection = pg.connection("postgres"),
        ),
    )
    .expect("config");
    let log = dir.path().join("sluice.log");
    let sluice = KillOnDrop(
        Command::new(sluice_bin())
            .args(["run", "--config"])
            .arg(&config)
            .env("SLUICE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("sluice starts"),
    );
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let read = |count: usize| {
        tokio.block_on(crate::support::read_json_lines(
            &broker.bootstrap,
            "cdm.customer",
            count,
            Duration::from_secs(90),
        ))
    };
    // The snapshot: the four sample customers (read without committing, so the read of
    // all seven below starts from the beginning).
    let snapshot = sluice_tests::read_topic(
        &broker.bootstrap,
        "cdm.customer",
        Duration::from_secs(90),
        |records| records.len() >= 4,
    );
    assert_eq!(
        snapshot.len(),
        4,
        "the snapshot reached cdm.customer\n{}",
        log_text()
    );
    // Then a stream: an insert, an update and a delete (a tombstone on cdm.customer).
    pg.sql(
        "INSERT INTO customers (first_name, last_name, email) VALUES ('Kenneth', 'Anderson', 'kander@acme.com');
         UPDATE customers SET email = 'sally.t@acme.com' WHERE id = 1;
         DELETE FROM customers WHERE id = 3;",
    );
    let lines = std::panic::catch_unwind(|| read(7))
        .unwrap_or_else(|_| panic!("the changes reached cdm.customer\n{}", log_text()));
    drop(sluice);
    let actual: Vec<String> = lines.iter().map(|l| normalised(l)).collect();
    let golden = repo_root().join("tests/golden/customers-cdm-postgres.jsonl");
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(&golden, actual.join("\n") + "\n").expect("bless");
    }
    let expected: Vec<String> = std::fs::read_to_string(&golden)
        .expect("golden file")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        actual,
        expected,
        "cdm.customer against {}",
        golden.display()
    );
}
