//! PostgreSQL capture end to end against a real PostgreSQL (started per test by
//! `sluice_tests::Postgres`: initdb, `wal_level=logical`, 127.0.0.1) and a real
//! Kafka-protocol broker (tansu): the snapshot and the stream as Debezium's envelopes
//! (golden files), the snapshot/stream hand-off, schema changes mid-stream, the
//! precondition errors, and crash safety (capture killed with SIGKILL, the server
//! restarted with `-m immediate`).
//!
//! tansu has no transactions (README, Tests): capture runs with `transactions = false`
//! (at-least-once) here.

use std::time::Duration;

use sluice_capture::config::{CaptureKind, parse_any};
use sluice_tests::{Broker, Postgres, read_topic, repo_root};

type Record = sluice_tests::KeyValue;

fn capture_config(pg: &Postgres, broker: &Broker, tables: &[&str], extra: &str) -> CaptureKind {
    let tables: Vec<String> = tables.iter().map(|t| format!("\"{t}\"")).collect();
    parse_any(
        &format!(
            r#"
            [capture]
            type = "postgres"
            connection = "{}"
            topic_prefix = "dbserver1"
            tables = [{}]
            flush_interval = "10ms"
            {extra}
            [kafka]
            transactions = false
            properties = {{ "bootstrap.servers" = "{}" }}
            "#,
            pg.connection("postgres"),
            tables.join(", "),
            broker.bootstrap
        ),
        "capture.toml",
    )
    .expect("capture config")
}

/// Capture running in the background of a test; stopped (cleanly) when dropped.
struct Running {
    runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), sluice_capture::CaptureError>>>,
}

impl Running {
    /// Creates `topics` and the offsets topic (one partition each; none when `topics` is
    /// empty), then starts capture.
    fn start(config: CaptureKind, bootstrap: &str, topics: &[&str]) -> Running {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        if !topics.is_empty() {
            let mut all: Vec<(&str, i32)> = topics.iter().map(|t| (*t, 1)).collect();
            all.push(("sluice.capture.offsets", 1));
            runtime.block_on(sluice_tests::create_topics(bootstrap, &all));
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            sluice_capture::run_config_any(&config, async move {
                let _ = stopped.await;
            })
            .await
        });
        Running {
            runtime,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops capture and returns how it ended.
    fn finish(mut self) -> Result<(), sluice_capture::CaptureError> {
        let _ = self.stop.take().expect("running").send(());
        let task = self.task.take().expect("running");
        self.runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(30), task).await })
            .expect("capture stops within 30 s")
            .expect("capture task")
    }

    /// Capture's result if it stopped on its own within `limit`.
    fn failure_within(mut self, limit: Duration) -> String {
        let task = self.task.take().expect("running");
        match self
            .runtime
            .block_on(async { tokio::time::timeout(limit, task).await })
        {
            Ok(Ok(Err(error))) => error.to_string(),
            other => panic!("capture should have failed, got {other:?}"),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn text(bytes: &Option<Vec<u8>>) -> String {
    bytes.as_deref().map_or_else(
        || "null".to_owned(),
        |b| String::from_utf8_lossy(b).into_owned(),
    )
}

/// Replaces what differs between runs (times, transaction ids, LSNs) with placeholders.
fn normalise(line: &str) -> String {
    let mut out = line.to_owned();
    for field in ["ts_ms", "ts_us", "ts_ns", "txId", "lsn"] {
        let needle = format!("\"{field}\":");
        let mut result = String::new();
        let mut rest = out.as_str();
        while let Some(at) = rest.find(&needle) {
            result.push_str(&rest[..at + needle.len()]);
            rest = &rest[at + needle.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '-'))
                .unwrap_or(rest.len());
            if end > 0 {
                result.push_str(&format!("<{field}>"));
            }
            rest = &rest[end..];
        }
        result.push_str(rest);
        out = result;
    }
    // `sequence`: ["<last commit>","<lsn>"] (either may be null).
    let mut result = String::new();
    let mut rest = out.as_str();
    while let Some(at) = rest.find("\"sequence\":\"[") {
        result.push_str(&rest[..at]);
        let end = rest[at..].find("]\"").expect("sequence ends") + at + 2;
        let inner = &rest[at + 13..end - 2];
        let parts: Vec<&str> = inner
            .split(',')
            .map(|p| if p == "null" { "null" } else { "<lsn>" })
            .collect();
        result.push_str(&format!("\"sequence\":\"[{}]\"", parts.join(",")));
        rest = &rest[end..];
    }
    result.push_str(rest);
    result
}

fn lines(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|(k, v)| normalise(&format!("{}\t{}", text(k), text(v))))
        .collect()
}

fn check_golden(actual: &[String], name: &str) {
    let path = repo_root().join("tests/golden/postgres").join(name);
    let text = format!("{}\n", actual.join("\n"));
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("golden dir");
        std::fs::write(&path, &text).expect("bless");
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (write it with SLUICE_BLESS=1)", path.display()));
    for (i, (a, e)) in actual.iter().zip(expected.lines()).enumerate() {
        assert_eq!(a, e, "{} line {}", path.display(), i + 1);
    }
    assert_eq!(
        actual.len(),
        expected.lines().count(),
        "{}: record count",
        path.display()
    );
}

/// Waits until capture streams from its slot (`no_data` starts without events).
fn wait_streaming(pg: &Postgres) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while pg
        .sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'debezium' AND active")
        != "1"
    {
        assert!(std::time::Instant::now() < deadline, "capture streams");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const CUSTOMERS: &str = "
    CREATE TABLE customers (
        id serial PRIMARY KEY,
        first_name text NOT NULL,
        last_name text,
        email varchar(255) NOT NULL
    );
    INSERT INTO customers (first_name, last_name, email) VALUES
        ('Sally', 'Thomas', 'sally.thomas@acme.com'),
        ('George', 'Bailey', 'gbailey@foobar.com');
";

/// The snapshot (`op: r`, markers `first`…`last`), then an insert, an update and a
/// delete with its tombstone, as Debezium's PostgreSQL connector writes them (golden
/// file, reviewed against the connector's documented events).
#[test]
fn snapshot_then_stream_are_debezium_envelopes() {
    let pg = Postgres::start();
    let broker = Broker::start();
    pg.sql(CUSTOMERS);
    let capture = Running::start(
        capture_config(&pg, &broker, &["public.customers"], ""),
        &broker.bootstrap,
        &["dbserver1.public.customers"],
    );
    let topic = "dbserver1.public.customers";
    read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 2
    });
    pg.sql(
        "INSERT INTO customers (first_name, last_name, email) VALUES ('Anne', 'Kretchmar', 'annek@noanswer.org');
         UPDATE customers SET first_name = 'Anne Marie' WHERE id = 3;
         DELETE FROM customers WHERE id = 1;",
    );
    let records = read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 6
    });
    capture.finish().expect("clean stop");
    check_golden(&lines(&records), "customers.txt");
}

/// A database (or role) may set how the server writes values as text: capture sets the
/// settings its reading depends on for its own sessions, so `bytea_output = escape` and
/// `client_encoding = LATIN1` on the database change nothing, in the snapshot or the
/// stream. (`lc_monetary` is fixed the same way; this machine has no other locale to set
/// it to.)
#[test]
fn a_databases_own_output_settings_change_no_value() {
    let pg = Postgres::start();
    let broker = Broker::start();
    pg.sql(
        "ALTER DATABASE postgres SET bytea_output = 'escape';
         ALTER DATABASE postgres SET client_encoding = 'LATIN1';
         CREATE TABLE blobs (id int PRIMARY KEY, b bytea, m money, t text);
         INSERT INTO blobs VALUES (1, '\\x00ff41'::bytea, 1234.56, U&'caf\\00E9');",
    );
    let topic = "dbserver1.public.blobs";
    let capture = Running::start(
        capture_config(&pg, &broker, &["public.blobs"], ""),
        &broker.bootstrap,
        &[topic],
    );
    read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        !r.is_empty()
    });
    wait_streaming(&pg);
    pg.sql("INSERT INTO blobs VALUES (2, '\\x7f0a'::bytea, -0.01, U&'na\\00EFve');");
    let records = read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 2
    });
    capture.finish().expect("clean stop");
    let after: Vec<(serde_json::Value, serde_json::Value, serde_json::Value)> = records
        .iter()
        .map(|(_, value)| {
            let value = json(value);
            let after = &value["after"];
            (after["b"].clone(), after["m"].clone(), after["t"].clone())
        })
        .collect();
    // bytea as base64 (binary.handling.mode bytes); money as a precise decimal (base64
    // of the unscaled value at scale 2): 123456 = 0x01e240, -1 = 0xff.
    assert_eq!(
        after,
        [
            (
                serde_json::json!("AP9B"),
                serde_json::json!("AeJA"),
                serde_json::json!("café")
            ),
            (
                serde_json::json!("fwo="),
                serde_json::json!("/w=="),
                serde_json::json!("naïve")
            )
        ]
    );
}

/// Every mapped type round-trips (insert, update, delete), edge values included: NULLs,
/// negative numerics, pre-1970 and BC dates, infinite timestamps, unicode, empty arrays;
/// `line` is not mapped (nor by Debezium) and is left out (with a warning), not the
/// table.
#[test]
fn every_supported_type_round_trips() {
    let pg = Postgres::start();
    let broker = Broker::start();
    pg.sql(
        "CREATE EXTENSION hstore;
         CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE TABLE types (
            id int PRIMARY KEY, i2 smallint, i8 bigint, r real, d double precision,
            n numeric(10,2), nv numeric, m money, b boolean, c char(3), v varchar(10), t text,
            dt date, tm time, tm3 time(3), tz timetz, ts timestamp, ts3 timestamp(3), tstz timestamptz,
            iv interval, u uuid, j json, jb jsonb, by bytea, e mood, ai int[], at text[],
            ip inet, cidr cidr, mac macaddr, h hstore, p point, ln line
         );
         ALTER TABLE types REPLICA IDENTITY FULL;
         INSERT INTO types VALUES (1, -32768, 9223372036854775807, 1.5, -2.25e-10,
            -12345678.90, -0.000123, -1234.56, true, 'ab', 'vé', 'Zoë 😀 \"quoted\"',
            '1969-07-20', '23:59:59.999999', '12:00:00.123', '10:00:00+02', '1900-01-01 00:00:00.000001',
            '2000-02-29 12:34:56.789', '1970-01-01 00:00:00+00', '1 year 2 months 3 days 04:05:06.5',
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": [1, 2]}', '{\"b\": null}', '\\x00ff10',
            'happy', '{}', '{\"x y\",NULL}', '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03',
            'k=>v, n=>NULL', '(1,2)', '{1,-1,0}');
         INSERT INTO types (id, dt, ts, tstz) VALUES (2, '0044-03-15 BC', 'infinity', '-infinity');",
    );
    let config = capture_config(&pg, &broker, &["public.types"], "");
    let capture = Running::start(config, &broker.bootstrap, &["dbserver1.public.types"]);
    let topic = "dbserver1.public.types";
    read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 2
    });
    pg.sql(
        "INSERT INTO types (id, n, nv, ai, tstz) VALUES (3, 0.5, 'NaN', '{-1,0,1}', '2038-01-19 03:14:08.5+01');
         UPDATE types SET n = -0.01, t = NULL WHERE id = 1;
         DELETE FROM types WHERE id = 2;",
    );
    let records = read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 6
    });
    capture.finish().expect("clean stop");
    check_golden(&lines(&records), "types.txt");
}

/// A change sluice cannot map (a timestamp of PostgreSQL's last years, past the µs a
/// `MicroTimestamp` holds, as Debezium cannot either) stops capture by default, before
/// anything after it is published, with an error naming the table, the column and what
/// to set; with `event_processing_failure_handling_mode = "warn"` it is left out (in the
/// snapshot and the stream), counted, and the changes around it flow. Arrays with other
/// lower bounds or several dimensions are published as Debezium publishes them.
#[test]
fn a_change_that_cannot_be_mapped_stops_capture_or_is_left_out_as_configured() {
    const TOO_LATE: &str = "294270-01-01 00:00:00";
    let pg = Postgres::start();
    let broker = Broker::start();
    pg.sql(&format!(
        "CREATE TABLE events (id int PRIMARY KEY, at timestamp, xs int[]);
         INSERT INTO events VALUES (1, '2026-12-08 10:00:00', '[0:2]={{5,1,2}}'),
                                   (2, '{TOO_LATE}', '{{}}'),
                                   (3, NULL, '{{{{1,2}},{{3,4}}}}');"
    ));
    let topic = "dbserver1.public.events";
    let admin = sluice_tests::free_port();
    let capture = Running::start(
        capture_config(
            &pg,
            &broker,
            &["public.events"],
            &format!(
                "event_processing_failure_handling_mode = \"warn\"\n[admin]\nlisten = \"127.0.0.1:{admin}\""
            ),
        ),
        &broker.bootstrap,
        &[topic],
    );
    read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 2
    });
    wait_streaming(&pg);
    pg.sql(&format!(
        "BEGIN; INSERT INTO events VALUES (4, '{TOO_LATE}', NULL);
                INSERT INTO events VALUES (5, '1969-07-20 20:17:40', '{{}}'); COMMIT;"
    ));
    let records = read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 3
    });
    let metrics = sluice_tests::http_get(admin, "/metrics").map(|(_, body)| body);
    capture.finish().expect("clean stop");
    let rows: Vec<(serde_json::Value, serde_json::Value, serde_json::Value)> = records
        .iter()
        .map(|(_, value)| {
            let after = json(value)["after"].clone();
            (
                after["id"].clone(),
                after["at"].clone(),
                after["xs"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                serde_json::json!(1),
                serde_json::json!(1_796_724_000_000_000i64),
                serde_json::json!([5, 1, 2])
            ),
            (
                serde_json::json!(3),
                serde_json::Value::Null,
                serde_json::json!([null, null])
            ),
            (
                serde_json::json!(5),
                serde_json::json!(-14_182_940_000_000i64),
                serde_json::json!([])
            ),
        ]
    );
    let metrics = metrics.expect("the admin server answers");
    assert!(
        metrics.contains("sluice_capture_events_skipped_total 2\n"),
        "{metrics}"
    );

    // The default: capture stops at the change, and what follows it is not published.
    pg.sql(&format!(
        "INSERT INTO events VALUES (6, '{TOO_LATE}', NULL);
         INSERT INTO events VALUES (7, '2000-01-01 00:00:00', NULL);"
    ));
    let error = Running::start(
        capture_config(&pg, &broker, &["public.events"], ""),
        &broker.bootstrap,
        &[],
    )
    .failure_within(Duration::from_secs(60));
    assert!(
        error.contains("public.events: column at")
            && error.contains("io.debezium.time.MicroTimestamp")
            && error.contains("event_processing_failure_handling_mode = \"warn\""),
        "{error}"
    );
    let after_stop = read_topic(&broker.bootstrap, topic, Duration::from_secs(3), |_| false);
    assert_eq!(
        after_stop.len(),
        3,
        "nothing published after the change that stopped it"
    );
}

/// Debezium's value modes for the types they change (`time.precision.mode = connect`,
/// `binary.handling.mode = hex`, `interval.handling.mode = string`,
/// `hstore.handling.mode = map`) and the types Debezium maps beyond the basic ones
/// (`bit`, `varbit`, ranges, `tsvector`, `citext`, `ltree`, `inet[]`), the same in the
/// snapshot and the stream; `name[]`, which Debezium leaves out, is left out.
#[test]
fn value_modes_and_more_types_as_debezium_writes_them_on_a_real_server() {
    let pg = Postgres::start();
    let broker = Broker::start();
    let row = "'1969-12-31', '12:00:00.123456', '2000-01-01 00:00:00.5', '\\x00ff10',
        '1 year 2 months 3 days 04:05:06.5', 'a=>1, b=>NULL', B'1', B'0000000100000010', B'101',
        '[1,10)', '[2020-01-01 00:00+00,2021-01-01 00:00+00)', 'a fat cat', 'MiXeD',
        'top.science', '{10.0.0.1,::1}', '{a,b}'";
    pg.sql(&format!(
        "CREATE EXTENSION hstore; CREATE EXTENSION citext; CREATE EXTENSION ltree;
         CREATE TABLE modes (id int PRIMARY KEY, d date, t time, ts timestamp, b bytea,
            iv interval, h hstore, flag bit(1), flags bit(16), vb varbit, r int4range,
            tr tstzrange, tv tsvector, c citext, l ltree, ips inet[], n name[]);
         INSERT INTO modes VALUES (1, {row});"
    ));
    let topic = "dbserver1.public.modes";
    let capture = Running::start(
        capture_config(
            &pg,
            &broker,
            &["public.modes"],
            r#"time_precision_mode = "connect"
            binary_handling_mode = "hex"
            interval_handling_mode = "string"
            hstore_handling_mode = "map""#,
        ),
        &broker.bootstrap,
        &[topic],
    );
    read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        !r.is_empty()
    });
    wait_streaming(&pg);
    pg.sql(&format!("INSERT INTO modes VALUES (2, {row});"));
    let records = read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 2
    });
    capture.finish().expect("clean stop");
    for (id, (_, value)) in records.iter().enumerate() {
        let expected = serde_json::json!({
            "id": id + 1,
            "d": -1,
            "t": 43_200_123,
            "ts": 946_684_800_500i64,
            "b": "00ff10",
            "iv": "P1Y2M3DT4H5M6.5S",
            "h": {"a": "1", "b": null},
            "flag": true,
            "flags": "AgE=",
            "vb": "BQ==",
            "r": "[1,10)",
            "tr": "[\"2020-01-01 00:00:00+00\",\"2021-01-01 00:00:00+00\")",
            "tv": "'a' 'cat' 'fat'",
            "c": "MiXeD",
            "l": "top.science",
            "ips": ["10.0.0.1", "::1"],
        });
        assert_eq!(json(value)["after"], expected, "record {id}");
    }
}

/// What teams moving from Debezium set per column, on PostgreSQL:
/// `column_exclude_list` (left out of the values, not read by the snapshot; a key
/// column stays in the key, as Debezium keeps it), `column_masks` (`chars`, and a hash
/// cut to a `varchar(n)`'s length) and `message_key_columns` (the key of a table without
/// a primary key), in the snapshot and the stream.
#[test]
fn column_lists_masks_and_message_key_columns_on_a_real_server() {
    let pg = Postgres::start();
    let broker = Broker::start();
    pg.sql(
        "CREATE TABLE people (id int PRIMARY KEY, name varchar(12), ssn text, email text);
         CREATE TABLE audit (event_id bigint NOT NULL, what text);
         ALTER TABLE audit REPLICA IDENTITY FULL;
         INSERT INTO people VALUES (1, 'Sally', '123-45-6789', 'sally@example.com');
         INSERT INTO audit VALUES (10, 'created');",
    );
    let topics = ["dbserver1.public.people", "dbserver1.public.audit"];
    let capture = Running::start(
        capture_config(
            &pg,
            &broker,
            &["public.people", "public.audit"],
            r#"column_exclude_list = 'public\.people\.(ssn|id)'
            message_key_columns = "public.audit:event_id"
            [[capture.column_masks]]
            columns = 'public\.people\.email'
            chars = 5
            [[capture.column_masks]]
            columns = 'public\.people\.name'
            hash = "SHA-256"
            salt = "CzQMA0cB5K"
            hash_version = 2"#,
        ),
        &broker.bootstrap,
        &topics,
    );
    read_topic(&broker.bootstrap, topics[1], Duration::from_secs(60), |r| {
        !r.is_empty()
    });
    wait_streaming(&pg);
    pg.sql(
        "INSERT INTO people VALUES (2, 'George', '987-65-4321', NULL);
         INSERT INTO audit VALUES (11, 'updated');",
    );
    let people = read_topic(&broker.bootstrap, topics[0], Duration::from_secs(60), |r| {
        r.len() >= 2
    });
    let audit = read_topic(&broker.bootstrap, topics[1], Duration::from_secs(60), |r| {
        r.len() >= 2
    });
    capture.finish().expect("clean stop");
    // SHA-256 of the salt then the name, lower-case hex, cut to varchar(12).
    let hashed = |name: &str| {
        let digest = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(format!("CzQMA0cB5K{name}").as_bytes())?;
                child.wait_with_output()
            })
            .expect("sha256sum");
        String::from_utf8_lossy(&digest.stdout)[..12].to_owned()
    };
    let rows: Vec<(String, serde_json::Value)> = people
        .iter()
        .map(|(key, value)| (text(key), json(value)["after"].clone()))
        .collect();
    assert_eq!(
        rows,
        [
            (
                r#"{"id":1}"#.to_owned(),
                serde_json::json!({"name": hashed("Sally"), "email": "*****"})
            ),
            (
                r#"{"id":2}"#.to_owned(),
                serde_json::json!({"name": hashed("George"), "email": "*****"})
            ),
        ]
    );
    let keys: Vec<String> = audit.iter().map(|(key, _)| text(key)).collect();
    assert_eq!(keys, [r#"{"event_id":10}"#, r#"{"event_id":11}"#]);
}

/// `table_include_list` (Debezium's `table.include.list`) instead of a list of tables:
/// the tables it keeps at the start are snapshotted and streamed, a table created later
/// that it keeps is streamed from its first change, and the others (a name it only
/// starts with included: patterns are whole names) are not captured.
#[test]
fn a_table_include_list_chooses_the_tables_now_and_later_on_a_real_server() {
    let pg = Postgres::start();
    let broker = Broker::start();
    pg.sql(
        "CREATE SCHEMA tenant_a; CREATE SCHEMA tenant_b; CREATE SCHEMA tenant_c;
         CREATE TABLE tenant_a.orders (id int PRIMARY KEY);
         CREATE TABLE tenant_b.orders (id int PRIMARY KEY);
         CREATE TABLE tenant_a.orders_archive (id int PRIMARY KEY);
         INSERT INTO tenant_a.orders VALUES (1);
         INSERT INTO tenant_b.orders VALUES (2);
         INSERT INTO tenant_a.orders_archive VALUES (3);",
    );
    let topics = [
        "dbserver1.tenant_a.orders",
        "dbserver1.tenant_b.orders",
        "dbserver1.tenant_c.orders",
        "dbserver1.tenant_a.orders_archive",
    ];
    let capture = Running::start(
        capture_config(
            &pg,
            &broker,
            &[],
            r#"table_include_list = 'tenant_.*\.orders'"#,
        ),
        &broker.bootstrap,
        &topics,
    );
    for topic in &topics[..2] {
        read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
            !r.is_empty()
        });
    }
    wait_streaming(&pg);
    pg.sql(
        "CREATE TABLE tenant_c.orders (id int PRIMARY KEY);
         INSERT INTO tenant_c.orders VALUES (4);
         INSERT INTO tenant_a.orders VALUES (5);
         INSERT INTO tenant_a.orders_archive VALUES (6);",
    );
    let keys = |topic: &str, count: usize| -> Vec<String> {
        read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
            r.len() >= count
        })
        .iter()
        .map(|(key, _)| text(key))
        .collect()
    };
    assert_eq!(keys(topics[2], 1), [r#"{"id":4}"#]);
    assert_eq!(keys(topics[0], 2), [r#"{"id":1}"#, r#"{"id":5}"#]);
    assert_eq!(keys(topics[1], 1), [r#"{"id":2}"#]);
    capture.finish().expect("clean stop");
    let archive = read_topic(&broker.bootstrap, topics[3], Duration::from_secs(2), |_| {
        false
    });
    assert!(archive.is_empty(), "{archive:?}");
    // Lists that keep no table stop capture, saying so.
    let error = Running::start(
        capture_config(&pg, &broker, &[], r#"table_include_list = 'billing\..*'"#),
        &broker.bootstrap,
        &[],
    )
    .failure_within(Duration::from_secs(30));
    assert!(
        error.contains("no table of the database is kept by capture.schema_include_list"),
        "{error}"
    );
}

/// `money` in a database whose `lc_monetary` has no fraction digits (`ja_JP`): ¥1,235
/// is stored as 1235, which the C locale capture reads in shows as `$12.35`; capture
/// publishes 1235, as Debezium (reading the database's own locale) does, in the snapshot
/// and the stream.
#[test]
fn money_means_what_the_databases_own_locale_stores_on_a_real_server() {
    let pg = Postgres::start_with_locales(&["ja_JP.UTF-8"]);
    let broker = Broker::start();
    pg.sql(
        "ALTER DATABASE postgres SET lc_monetary = 'ja_JP.UTF-8';
         CREATE TABLE prices (id int PRIMARY KEY, m money);",
    );
    // A new session, so that the database's setting applies to the insert's cast.
    pg.sql("INSERT INTO prices VALUES (1, 1235);");
    let topic = "dbserver1.public.prices";
    let capture = Running::start(
        capture_config(
            &pg,
            &broker,
            &["public.prices"],
            r#"decimal_handling_mode = "string""#,
        ),
        &broker.bootstrap,
        &[topic],
    );
    read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        !r.is_empty()
    });
    wait_streaming(&pg);
    pg.sql("INSERT INTO prices VALUES (2, -500);");
    let records = read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 2
    });
    capture.finish().expect("clean stop");
    let amounts: Vec<serde_json::Value> = records
        .iter()
        .map(|(_, value)| json(value)["after"]["m"].clone())
        .collect();
    assert_eq!(
        amounts,
        [serde_json::json!("1235"), serde_json::json!("-500")]
    );
}

/// `schema_include_list` with `table_exclude_list` (Debezium's lists, together): the
/// tables in the schemas kept, less those excluded, at the start and when created later.
#[test]
fn schema_and_table_lists_together_on_a_real_server() {
    let pg = Postgres::start();
    let broker = Broker::start();
    pg.sql(
        "CREATE SCHEMA tenant_a; CREATE SCHEMA tenant_b;
         CREATE TABLE tenant_a.orders (id int PRIMARY KEY);
         CREATE TABLE tenant_b.orders (id int PRIMARY KEY);
         CREATE TABLE tenant_b.items (id int PRIMARY KEY);
         INSERT INTO tenant_a.orders VALUES (1);
         INSERT INTO tenant_b.orders VALUES (2);
         INSERT INTO tenant_b.items VALUES (3);",
    );
    let topics = [
        "dbserver1.tenant_b.orders",
        "dbserver1.tenant_b.refunds",
        "dbserver1.tenant_a.orders",
        "dbserver1.tenant_b.items",
        "dbserver1.tenant_a.refunds",
    ];
    let capture = Running::start(
        capture_config(
            &pg,
            &broker,
            &[],
            r#"schema_include_list = "tenant_b"
            table_exclude_list = 'tenant_b\.items'"#,
        ),
        &broker.bootstrap,
        &topics,
    );
    read_topic(&broker.bootstrap, topics[0], Duration::from_secs(60), |r| {
        !r.is_empty()
    });
    wait_streaming(&pg);
    pg.sql(
        "CREATE TABLE tenant_b.refunds (id int PRIMARY KEY);
         CREATE TABLE tenant_a.refunds (id int PRIMARY KEY);
         INSERT INTO tenant_a.refunds VALUES (4);
         INSERT INTO tenant_b.items VALUES (5);
         INSERT INTO tenant_b.refunds VALUES (6);",
    );
    let refunds = read_topic(&broker.bootstrap, topics[1], Duration::from_secs(60), |r| {
        !r.is_empty()
    });
    capture.finish().expect("clean stop");
    let keys: Vec<String> = refunds.iter().map(|(key, _)| text(key)).collect();
    assert_eq!(keys, [r#"{"id":6}"#]);
    // Everything else committed before the refund, so it would have arrived by now.
    for topic in &topics[2..] {
        let records = read_topic(&broker.bootstrap, topic, Duration::from_secs(2), |_| false);
        assert!(records.is_empty(), "{topic}: {records:?}");
    }
}

/// Rows written while the snapshot runs appear exactly once: in the snapshot or in the
/// stream, never both, never neither.
#[test]
fn rows_written_during_the_snapshot_appear_exactly_once() {
    let pg = Postgres::start();
    let broker = Broker::start();
    pg.sql(
        "CREATE TABLE items (id int PRIMARY KEY, note text NOT NULL);
         INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(1, 60000) g;",
    );
    let capture = Running::start(
        capture_config(&pg, &broker, &["public.items"], "batch_size = 2000"),
        &broker.bootstrap,
        &["dbserver1.public.items"],
    );
    // Writes racing the snapshot: new rows, and updates of old ones.
    for round in 0..20 {
        let base = 100_000 + round * 10;
        pg.sql(&format!(
            "INSERT INTO items SELECT g, 'new' FROM generate_series({base}, {}) g;
             UPDATE items SET note = 'updated' WHERE id = {};",
            base + 9,
            round + 1
        ));
        std::thread::sleep(Duration::from_millis(50));
    }
    let expected = 60_000 + 200 + 20;
    let records = read_topic(
        &broker.bootstrap,
        "dbserver1.public.items",
        Duration::from_secs(180),
        |r| r.len() >= expected,
    );
    std::thread::sleep(Duration::from_secs(1));
    capture.finish().expect("clean stop");
    let mut reads_or_creates = std::collections::HashMap::<i64, usize>::new();
    let mut updates = 0;
    for (_, value) in &records {
        let value: serde_json::Value =
            serde_json::from_slice(value.as_deref().expect("no deletes")).expect("json");
        let id = value["after"]["id"].as_i64().expect("id");
        match value["op"].as_str() {
            Some("r" | "c") => *reads_or_creates.entry(id).or_default() += 1,
            Some("u") => updates += 1,
            other => panic!("unexpected op {other:?}"),
        }
    }
    assert_eq!(reads_or_creates.len(), 60_200, "every row, once");
    assert!(
        reads_or_creates.values().all(|&n| n == 1),
        "a row read and created twice"
    );
    // An update racing the snapshot is in it (the row read as updated) or streamed.
    assert!(updates <= 20, "{updates} updates");
    assert_eq!(records.len(), 60_200 + updates);
}

/// A column added mid-stream appears in the next event, without a restart.
#[test]
fn a_new_column_appears_without_a_restart() {
    let pg = Postgres::start();
    let broker = Broker::start();
    pg.sql(CUSTOMERS);
    let capture = Running::start(
        capture_config(
            &pg,
            &broker,
            &["public.customers"],
            "snapshot_mode = \"no_data\"",
        ),
        &broker.bootstrap,
        &["dbserver1.public.customers"],
    );
    let topic = "dbserver1.public.customers";
    wait_streaming(&pg);
    pg.sql("INSERT INTO customers (first_name, email) VALUES ('Before', 'b@x');");
    read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        !r.is_empty()
    });
    pg.sql(
        "ALTER TABLE customers ADD COLUMN vip boolean NOT NULL DEFAULT false;
         INSERT INTO customers (first_name, email, vip) VALUES ('After', 'a@x', true);",
    );
    let records = read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 2
    });
    capture.finish().expect("clean stop");
    let after = |i: usize| -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(records[i].1.as_deref().expect("value"))
            .expect("json")["after"]
            .clone()
    };
    assert!(after(0).get("vip").is_none(), "{}", after(0));
    assert_eq!(after(1)["vip"], serde_json::json!(true), "{}", after(1));
}

/// Each precondition fails with an error naming what to do.
#[test]
fn preconditions_fail_with_errors_that_say_what_to_do() {
    let pg = Postgres::start();
    let broker = Broker::start();
    pg.sql(
        "CREATE TABLE keyless (a int, b text);
         CREATE TABLE keyed (id int PRIMARY KEY);
         CREATE ROLE plain LOGIN;
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO plain;
         CREATE PUBLICATION narrow FOR TABLE keyed;",
    );
    tokio::runtime::Runtime::new()
        .expect("tokio")
        .block_on(sluice_tests::create_topics(
            &broker.bootstrap,
            &[("sluice.capture.offsets", 1)],
        ));
    let error = Running::start(
        capture_config(&pg, &broker, &["public.keyless"], ""),
        &broker.bootstrap,
        &[],
    )
    .failure_within(Duration::from_secs(30));
    assert!(
        error.contains("public.keyless has no primary key")
            && error.contains("REPLICA IDENTITY FULL"),
        "{error}"
    );
    let as_plain = |extra: &str| {
        let CaptureKind::Postgres(mut config) =
            capture_config(&pg, &broker, &["public.keyed"], extra)
        else {
            unreachable!()
        };
        config.connection = pg.connection("plain");
        CaptureKind::Postgres(config)
    };
    let error = Running::start(as_plain(""), &broker.bootstrap, &[])
        .failure_within(Duration::from_secs(30));
    assert!(
        error.contains("lacks the REPLICATION privilege")
            && error.contains("ALTER ROLE plain REPLICATION"),
        "{error}"
    );
    pg.sql("CREATE TABLE other (id int PRIMARY KEY);");
    let error = Running::start(
        capture_config(
            &pg,
            &broker,
            &["public.other"],
            "publication_name = \"narrow\"\npublication_autocreate_mode = \"disabled\"",
        ),
        &broker.bootstrap,
        &[],
    )
    .failure_within(Duration::from_secs(30));
    assert!(
        error.contains("publication \"narrow\" does not include public.other")
            && error.contains("ALTER PUBLICATION"),
        "{error}"
    );
    // A slot another reader holds.
    pg.sql("SELECT pg_create_logical_replication_slot('held', 'pgoutput');");
    let mut reader = pg
        .client("pg_recvlogical")
        .args([
            "--slot",
            "held",
            "--start",
            "-o",
            "proto_version=1",
            "-o",
            "publication_names=narrow",
            "-f",
            "/dev/null",
        ])
        .spawn()
        .expect("pg_recvlogical");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pg.sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'held'") != "t" {
        assert!(
            std::time::Instant::now() < deadline,
            "pg_recvlogical holds the slot"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let error = Running::start(
        capture_config(&pg, &broker, &["public.keyed"], "slot_name = \"held\""),
        &broker.bootstrap,
        &[],
    )
    .failure_within(Duration::from_secs(30));
    let _ = reader.kill();
    let _ = reader.wait();
    assert!(
        error.contains("replication slot \"held\" is in use by process")
            && error.contains("slot_name"),
        "{error}"
    );
}

#[test]
fn the_compose_postgres_capture_config_is_valid() {
    let path = repo_root().join("docker").join("capture-postgres.toml");
    match sluice_capture::config::load_any(&path) {
        Ok(CaptureKind::Postgres(config)) => {
            assert_eq!(
                config.topics(),
                ["dbserver1.public.customers", "dbserver1.public.orders"]
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A consumer moving from Debezium keeps per-key order only if each key lands on the
/// partition Kafka Connect's producer would pick: `toPositive(murmur2(key)) % n`.
#[test]
fn keys_land_on_the_partitions_kafka_connect_chooses() {
    // Kafka's own test vectors (UtilsTest.testMurmur2), so the reference is the Java one.
    assert_eq!(sluice_tests::java_murmur2(b"21"), -973_932_308);
    assert_eq!(sluice_tests::java_murmur2(b"foobar"), -790_332_482);
    let pg = Postgres::start();
    let broker = Broker::start();
    pg.sql(
        "CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO accounts SELECT n, 'account ' || n FROM generate_series(1, 40) n;",
    );
    const PARTITIONS: i32 = 4;
    let topic = "dbserver1.public.accounts";
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(sluice_tests::create_topics(
        &broker.bootstrap,
        &[(topic, PARTITIONS), ("sluice.capture.offsets", 1)],
    ));
    let capture = Running::start(
        capture_config(&pg, &broker, &["public.accounts"], ""),
        &broker.bootstrap,
        &[],
    );
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = sluice_tests::kafka_client(&broker.bootstrap)
        .set("group.id", "partition-check")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut placed: Vec<(Vec<u8>, i32)> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while placed.len() < 40 && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            placed.push((m.key().expect("a keyed record").to_vec(), m.partition()));
        }
    }
    capture.finish().expect("clean stop");
    assert_eq!(placed.len(), 40, "every snapshot row read back");
    for (key, partition) in &placed {
        let expected = sluice_tests::java_partition(key, PARTITIONS);
        assert_eq!(
            *partition,
            expected,
            "key {} on partition {partition}, Kafka Connect's is {expected}",
            String::from_utf8_lossy(key)
        );
    }
    let used: std::collections::BTreeSet<i32> = placed.iter().map(|(_, p)| *p).collect();
    assert!(used.len() > 1, "the keys spread over partitions: {used:?}");
}

fn json(bytes: &Option<Vec<u8>>) -> serde_json::Value {
    serde_json::from_slice(bytes.as_deref().expect("a value")).expect("JSON")
}

/// `schemas_enable`, `provide_transaction_metadata` and `heartbeat_interval` against a
/// real server: keys and values wrapped with their Kafka Connect schemas, BEGIN and END
/// on `<prefix>.transaction` around a transaction's events (each carrying its place in
/// it), and heartbeats that keep the slot moving while only uncaptured tables change.
#[test]
fn schemas_transaction_metadata_and_heartbeats_on_a_real_server() {
    let pg = Postgres::start();
    let broker = Broker::start();
    pg.sql(CUSTOMERS);
    pg.sql("CREATE TABLE audit (id serial PRIMARY KEY, note text)");
    let capture = Running::start(
        capture_config(
            &pg,
            &broker,
            &["public.customers"],
            "schemas_enable = true\nprovide_transaction_metadata = true\nheartbeat_interval = \"200ms\"\npublication_autocreate_mode = \"filtered\"",
        ),
        &broker.bootstrap,
        &[
            "dbserver1.public.customers",
            "dbserver1.transaction",
            "__debezium-heartbeat.dbserver1",
        ],
    );
    let topic = "dbserver1.public.customers";
    read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 2
    });
    wait_streaming(&pg);
    pg.sql(
        "BEGIN;
         INSERT INTO customers (first_name, last_name, email) VALUES ('Anne', 'Kretchmar', 'annek@noanswer.org');
         UPDATE customers SET email = 'sally.t@acme.com' WHERE id = 1;
         COMMIT;",
    );
    let records = read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 4
    });
    assert_eq!(records.len(), 4, "two snapshot reads and two changes");

    // Schemas: the key's and the envelope's, named after the topic.
    let key = json(&records[2].0.clone());
    assert_eq!(key["schema"]["name"], "dbserver1.public.customers.Key");
    assert_eq!(key["payload"], serde_json::json!({"id": 3}));
    let value = json(&records[2].1);
    assert_eq!(
        value["schema"]["name"],
        "dbserver1.public.customers.Envelope"
    );
    assert_eq!(value["payload"]["op"], "c");
    let source_schema = value["schema"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["field"] == "source")
        .expect("a source field");
    assert_eq!(
        source_schema["name"],
        "io.debezium.connector.postgresql.Source"
    );

    // Transaction metadata: the events carry one id and their order in it...
    let blocks: Vec<serde_json::Value> = records[2..]
        .iter()
        .map(|r| json(&r.1)["payload"]["transaction"].clone())
        .collect();
    let id = blocks[0]["id"]
        .as_str()
        .expect("a transaction id")
        .to_owned();
    let (xid, lsn) = id
        .split_once(':')
        .expect("txId:lsn, as Debezium's PostgreSQL");
    assert!(
        xid.parse::<u64>().is_ok() && lsn.parse::<u64>().is_ok(),
        "{id}"
    );
    assert_eq!(blocks[1]["id"], id.as_str());
    assert_eq!(
        (
            blocks[0]["total_order"].clone(),
            blocks[1]["total_order"].clone()
        ),
        (1.into(), 2.into())
    );
    assert_eq!(blocks[1]["data_collection_order"], 2);
    // ...and BEGIN and END frame them, END with the counts per table.
    let markers = read_topic(
        &broker.bootstrap,
        "dbserver1.transaction",
        Duration::from_secs(30),
        |r| r.len() >= 2,
    );
    let markers: Vec<serde_json::Value> = markers
        .iter()
        .map(|r| json(&r.1)["payload"].clone())
        .collect();
    assert_eq!(markers.len(), 2, "{markers:?}");
    assert_eq!(
        (markers[0]["status"].clone(), markers[0]["id"].clone()),
        ("BEGIN".into(), id.clone().into())
    );
    assert_eq!(markers[1]["status"], "END");
    assert_eq!(markers[1]["event_count"], 2);
    assert_eq!(
        markers[1]["data_collections"],
        serde_json::json!([{"data_collection": "public.customers", "event_count": 2}])
    );

    // Heartbeats: only an uncaptured table changes, yet the slot passes its WAL.
    pg.sql("INSERT INTO audit (note) SELECT 'n' || g FROM generate_series(1, 1000) g");
    let wal: i64 = pg
        .sql("SELECT pg_current_wal_lsn() - '0/0'")
        .parse()
        .expect("lsn");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let confirmed: i64 = pg
            .sql("SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = 'debezium'")
            .parse()
            .unwrap_or(0);
        if confirmed >= wal {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "heartbeats moved the slot past {wal} (it is at {confirmed})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let beats = read_topic(
        &broker.bootstrap,
        "__debezium-heartbeat.dbserver1",
        Duration::from_secs(30),
        |r| r.len() >= 2,
    );
    assert!(beats.len() >= 2, "heartbeats published");
    let beat = json(&beats[0].1);
    assert!(
        beat["payload"]["ts_ms"].as_i64().is_some_and(|t| t > 0),
        "{beat}"
    );
    assert_eq!(json(&beats[0].0)["payload"]["serverName"], "dbserver1");
    capture.finish().expect("clean stop");
}

/// TLS as libpq's `sslmode` says, on both of capture's connections (the catalog's and
/// the replication one), against a server that refuses TCP without TLS: `require`
/// captures; `disable` is refused by the server; `verify-full` captures when the
/// certificate names the host and is refused when it does not.
#[test]
fn tls_as_the_connection_strings_sslmode_says() {
    let pg = Postgres::start();
    let ca = pg.enable_tls();
    let broker = Broker::start();
    pg.sql(CUSTOMERS);
    let topic = "dbserver1.public.customers";
    let with = |connection: String| {
        let kind = capture_config(&pg, &broker, &["public.customers"], "");
        match kind {
            CaptureKind::Postgres(mut config) => {
                config.connection = connection;
                CaptureKind::Postgres(config)
            }
            CaptureKind::SqlServer(_) => unreachable!("a PostgreSQL capture"),
        }
    };
    let base = |host: &str| format!("host={host} port={} user=postgres dbname=postgres", pg.port);

    // Without TLS the server says no, and capture says why.
    let refused = Running::start(
        with(format!("{} sslmode=disable", base("127.0.0.1"))),
        &broker.bootstrap,
        &[topic],
    )
    .failure_within(Duration::from_secs(30));
    assert!(
        refused.contains("no encryption") || refused.contains("pg_hba.conf"),
        "{refused}"
    );

    // `require`: encrypted, the certificate not checked.
    let capture = Running::start(
        with(format!("{} sslmode=require", base("127.0.0.1"))),
        &broker.bootstrap,
        &[],
    );
    let records = read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 2
    });
    assert_eq!(records.len(), 2, "the snapshot over TLS");
    wait_streaming(&pg);
    pg.sql("INSERT INTO customers (first_name, email) VALUES ('Tls', 'tls@example.com')");
    let records = read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 3
    });
    assert_eq!(records.len(), 3, "streaming over TLS");
    capture.finish().expect("clean stop");
    let ssl_connections = pg.sql("SELECT count(*) FROM pg_stat_ssl WHERE ssl");
    assert_ne!(ssl_connections, "0", "the harness's own psql uses TLS too");

    // `verify-full`: the certificate must chain to sslrootcert and name the host.
    let wrong_host = Running::start(
        with(format!(
            "{} sslmode=verify-full sslrootcert={}",
            base("127.0.0.1"),
            ca.display()
        )),
        &broker.bootstrap,
        &[],
    )
    .failure_within(Duration::from_secs(30));
    assert!(
        wrong_host.to_lowercase().contains("certificate") || wrong_host.contains("TLS"),
        "{wrong_host}"
    );
    let capture = Running::start(
        with(format!(
            "{} sslmode=verify-full sslrootcert={}",
            base("localhost"),
            ca.display()
        )),
        &broker.bootstrap,
        &[],
    );
    wait_streaming(&pg);
    pg.sql("INSERT INTO customers (first_name, email) VALUES ('Verified', 'v@example.com')");
    let records = read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 4
    });
    assert_eq!(records.len(), 4, "streaming over verified TLS");
    capture.finish().expect("clean stop");
}

/// A client certificate (`sslcert`/`sslkey`) where pg_hba.conf asks for `cert`
/// authentication, on both connections: without one the server refuses and capture says
/// so; a key others can read is refused naming the file (as libpq refuses it); with the
/// certificate (its key in the PKCS#1 form `openssl genrsa -traditional` writes) capture
/// snapshots and streams, and the server sees the certificate's name on its connections.
#[test]
fn a_client_certificate_logs_in_where_pg_hba_asks_for_one() {
    let pg = Postgres::start();
    pg.enable_tls();
    let files = tempfile::tempdir().expect("temp dir");
    let client = pg.enable_client_certificates("capturer", files.path());
    let broker = Broker::start();
    pg.sql(CUSTOMERS);
    let topic = "dbserver1.public.customers";
    let as_capturer = |tls: &str| {
        let kind = capture_config(&pg, &broker, &["public.customers"], "");
        match kind {
            CaptureKind::Postgres(mut config) => {
                config.connection = format!("{} sslmode=require {tls}", pg.connection("capturer"));
                CaptureKind::Postgres(config)
            }
            CaptureKind::SqlServer(_) => unreachable!("a PostgreSQL capture"),
        }
    };

    let refused = Running::start(as_capturer(""), &broker.bootstrap, &[topic])
        .failure_within(Duration::from_secs(30));
    assert!(
        refused.contains("certificate"),
        "the server's refusal, passed on: {refused}"
    );

    let open_key = files.path().join("open.key");
    std::fs::copy(&client.key, &open_key).expect("copy");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let refused = Running::start(
        as_capturer(&format!(
            "sslcert={} sslkey={}",
            client.cert.display(),
            open_key.display()
        )),
        &broker.bootstrap,
        &[],
    )
    .failure_within(Duration::from_secs(30));
    assert!(
        refused.contains("open.key") && refused.contains("group or world access"),
        "{refused}"
    );

    let capture = Running::start(
        as_capturer(&format!(
            "sslcert={} sslkey={}",
            client.cert.display(),
            client.key.display()
        )),
        &broker.bootstrap,
        &[],
    );
    let records = read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 2
    });
    assert_eq!(records.len(), 2, "the snapshot, logged in by certificate");
    wait_streaming(&pg);
    let by_certificate = pg.sql(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE s.client_dn = '/CN=capturer' AND a.usename = 'capturer'",
    );
    assert_ne!(
        by_certificate, "0",
        "the replication connection presents the certificate"
    );
    pg.sql("INSERT INTO customers (first_name, email) VALUES ('Cert', 'cert@example.com')");
    let records = read_topic(&broker.bootstrap, topic, Duration::from_secs(60), |r| {
        r.len() >= 3
    });
    assert_eq!(records.len(), 3, "streaming, logged in by certificate");
    capture.finish().expect("clean stop");
}

/// Protocol 2: a transaction larger than `logical_decoding_work_mem` reaches capture
/// while it runs (kept in a file under `streaming_spill_dir` until it commits) and is
/// published once committed, whole and in commit order: a small transaction committed
/// while the large one was open comes first, a rolled-back savepoint's rows and a large
/// aborted transaction's rows never appear, and the server reports it streamed them.
#[test]
fn large_transactions_streamed_while_they_run_arrive_once_committed() {
    let pg = Postgres::start();
    pg.sql("ALTER SYSTEM SET logical_decoding_work_mem = '64kB'");
    pg.sql("SELECT pg_reload_conf()");
    let broker = Broker::start();
    pg.sql("CREATE TABLE big (id int PRIMARY KEY, label text NOT NULL, pad text)");
    let spill = tempfile::tempdir().expect("spill dir");
    let topic = "dbserver1.public.big";
    let capture = Running::start(
        capture_config(
            &pg,
            &broker,
            &["public.big"],
            &format!(
                "streaming_spill_dir = {:?}",
                spill.path().display().to_string()
            ),
        ),
        &broker.bootstrap,
        &[topic],
    );
    wait_streaming(&pg);
    let spilled_files = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(spill.path())
            .expect("spill dir")
            .flatten()
            .filter(|d| d.path().is_dir())
            .flat_map(|d| std::fs::read_dir(d.path()).expect("dir").flatten())
            .map(|e| e.path())
            .collect()
    };

    let (psql, port) = (pg.binary("psql"), pg.port);
    let insert = |from: i32, to: i32, label: &str| {
        format!(
            "INSERT INTO big SELECT i, '{label}', repeat('x', 200) FROM generate_series({from}, {to}) i;"
        )
    };
    let large = format!(
        "BEGIN; {} SAVEPOINT s; {} ROLLBACK TO SAVEPOINT s; {} SELECT pg_sleep(3); {} COMMIT;",
        insert(1, 3000, "kept"),
        insert(3001, 5000, "rolled back"),
        insert(5001, 6000, "kept"),
        insert(6001, 7000, "kept"),
    );
    let writer = std::thread::spawn(move || {
        let status = sluice_tests::pg_client(&psql, port)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", &large])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("psql");
        assert!(status.success(), "the large transaction");
    });
    std::thread::sleep(Duration::from_millis(1_200));
    let while_open = spilled_files();
    pg.sql("INSERT INTO big VALUES (0, 'small', NULL)");
    writer.join().expect("writer");
    assert!(
        while_open
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "changes")),
        "the open transaction's changes were on capture's disk while it ran: {while_open:?}"
    );
    pg.sql(&format!(
        "BEGIN; {} ROLLBACK;",
        insert(10_001, 15_000, "aborted")
    ));
    pg.sql("INSERT INTO big VALUES (20000, 'after', NULL)");

    let records = read_topic(&broker.bootstrap, topic, Duration::from_secs(120), |r| {
        r.len() >= 5_002
    });
    let values: Vec<serde_json::Value> = records.iter().map(|r| json(&r.1)).collect();
    let ids: Vec<i64> = values
        .iter()
        .map(|v| v["after"]["id"].as_i64().expect("id"))
        .collect();
    let mut expected = vec![0];
    expected.extend((1..=3000).chain(5001..=7000));
    expected.push(20000);
    assert_eq!(
        ids.len(),
        expected.len(),
        "each committed row once, nothing else"
    );
    assert_eq!(
        ids, expected,
        "commit order; the large transaction's rows in its order"
    );
    let large_tx: std::collections::BTreeSet<i64> = values[1..values.len() - 1]
        .iter()
        .map(|v| v["source"]["txId"].as_i64().expect("txId"))
        .collect();
    assert_eq!(large_tx.len(), 1, "one transaction");
    assert_ne!(values[0]["source"]["txId"], values[1]["source"]["txId"]);

    let streamed: i64 = pg
        .sql("SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 'debezium'")
        .parse()
        .expect("stream_txns");
    assert!(
        streamed >= 2,
        "the server streamed the large and the aborted transaction: {streamed}"
    );
    capture.finish().expect("clean stop");
    assert!(
        std::fs::read_dir(spill.path())
            .expect("dir")
            .next()
            .is_none(),
        "capture leaves nothing in streaming_spill_dir"
    );
}
