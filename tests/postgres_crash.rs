//! Crash safety of PostgreSQL capture: `sluice capture` (the binary) killed with SIGKILL
//! at pseudo-random points while transactions of varying size insert, update and delete,
//! and once the PostgreSQL server restarted with `pg_ctl restart -m immediate`.
//! Afterwards every change is in Kafka (tansu) at least once, in commit order per key,
//! and the slot's `confirmed_flush_lsn` never passed what Kafka had acknowledged: every
//! sampled value is covered by an offset record Kafka had stored before the sample.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use sluice_tests::{Broker, Postgres, kafka_client, sluice_bin};

/// Transactions written; their sizes vary from 1 to `MAX_TX` changes (about 100,000
/// changes in all).
const TRANSACTIONS: usize = 800;
const MAX_TX: u64 = 250;
/// Cycles that end with capture killed by SIGKILL; the middle one also restarts the
/// server with `-m immediate` (so `KILLS + 1` kills and one server crash).
const KILLS: usize = 10;

/// A small deterministic generator (the test is reproducible run to run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// One expected change: the key, its version after the change (`None`: deleted).
type Change = (i64, Option<i64>);

/// The transactions as SQL, and the changes per key in commit order.
fn workload() -> (Vec<String>, BTreeMap<i64, Vec<Option<i64>>>) {
    let mut rng = Lcg(42);
    let mut live: Vec<i64> = Vec::new();
    let mut versions: HashMap<i64, i64> = HashMap::new();
    let mut expected: BTreeMap<i64, Vec<Option<i64>>> = BTreeMap::new();
    let mut next_id = 1;
    let mut transactions = Vec::new();
    for _ in 0..TRANSACTIONS {
        let size = 1 + rng.next(MAX_TX);
        let mut sql = String::from("BEGIN;");
        for _ in 0..size {
            let pick = if live.len() < 20 { 0 } else { rng.next(10) };
            let change: Change = match pick {
                0..=4 => {
                    let id = next_id;
                    next_id += 1;
                    live.push(id);
                    versions.insert(id, 1);
                    sql.push_str(&format!(
                        "INSERT INTO accounts VALUES ({id}, 1, repeat('p', 100));"
                    ));
                    (id, Some(1))
                }
                5..=8 => {
                    let id = live[rng.next(live.len() as u64) as usize];
                    let version = versions[&id] + 1;
                    versions.insert(id, version);
                    sql.push_str(&format!(
                        "UPDATE accounts SET version = {version} WHERE id = {id};"
                    ));
                    (id, Some(version))
                }
                _ => {
                    let id = live.swap_remove(rng.next(live.len() as u64) as usize);
                    sql.push_str(&format!("DELETE FROM accounts WHERE id = {id};"));
                    (id, None)
                }
            };
            expected.entry(change.0).or_default().push(change.1);
        }
        sql.push_str("COMMIT;");
        transactions.push(sql);
    }
    (transactions, expected)
}

fn config(pg: &Postgres, broker: &Broker, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("capture.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[capture]
type = "postgres"
connection = "{}"
topic_prefix = "crash"
tables = ["public.accounts"]
batch_size = 300
flush_interval = "20ms"
streaming_spill_dir = "{}"
heartbeat_interval = "300ms"
tombstones_on_delete = false

[kafka]
transactions = false
properties = {{ "bootstrap.servers" = "{}" }}
"#,
            pg.connection("postgres"),
            dir.join("spill").display(),
            broker.bootstrap
        ),
    )
    .expect("write config");
    std::fs::create_dir_all(dir.join("spill")).expect("spill dir");
    path
}

fn wait_slot_inactive(pg: &Postgres) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while pg
        .try_sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'debezium'")
        .map(|a| a == "t")
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the slot is released");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_capture(config: &std::path::Path, log: &std::path::Path) -> std::process::Child {
    std::process::Command::new(sluice_bin())
        .arg("capture")
        .arg("--config")
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("log"),
        )
        .spawn()
        .expect("sluice capture")
}

/// A record's key, value and Kafka timestamp (ms).
type Stamped = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// Every record of `topic` partition by partition: key, value, Kafka timestamp (ms).
fn consume(
    bootstrap: &str,
    topic: &str,
    until: impl Fn(usize) -> bool,
    limit: Duration,
) -> Vec<Stamped> {
    let consumer: BaseConsumer = kafka_client(bootstrap)
        .set("group.id", format!("crash-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(1)
        .max(1);
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p as i32, rdkafka::Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    // Capture has stopped: the topic holds at least this many records (tansu's high
    // watermark may lag what it serves, never lead it), so a pause of the broker under
    // load cannot end the read early.
    let stored: usize = (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p as i32, Duration::from_secs(10))
                .map_or(0, |(low, high)| (high - low).max(0) as usize)
        })
        .sum();
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut idle_since = Instant::now();
    while Instant::now() < deadline
        && !(until(out.len())
            && out.len() >= stored
            && idle_since.elapsed() > Duration::from_secs(2))
    {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            idle_since = Instant::now();
            out.push((
                m.key().map(<[u8]>::to_vec),
                m.payload().map(<[u8]>::to_vec),
                m.timestamp().to_millis().unwrap_or(i64::MAX),
            ));
        }
    }
    out
}

fn log_tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

#[test]
fn killed_capture_and_a_crashed_server_lose_nothing() {
    let pg = Postgres::start();
    // Transactions over 64 kB (most of those with more than ~100 changes) are streamed
    // while they run (protocol 2), so kills land while capture holds them on disk too.
    pg.sql("ALTER SYSTEM SET logical_decoding_work_mem = '64kB'");
    pg.sql("SELECT pg_reload_conf()");
    let broker = Broker::start();
    pg.sql(
        "CREATE TABLE accounts (id int PRIMARY KEY, version int NOT NULL, pad text);
         ALTER TABLE accounts REPLICA IDENTITY FULL;",
    );
    tokio::runtime::Runtime::new()
        .expect("tokio")
        .block_on(sluice_tests::create_topics(
            &broker.bootstrap,
            &[
                ("crash.public.accounts", 1),
                ("sluice.capture.offsets", 1),
                ("__debezium-heartbeat.crash", 1),
            ],
        ));
    let dir = tempfile::tempdir().expect("dir");
    let config = config(&pg, &broker, dir.path());
    let log = dir.path().join("capture.log");
    let (transactions, expected) = workload();
    let total: usize = expected.values().map(Vec::len).sum();
    assert!(total > 90_000, "about 100,000 changes, not {total}");

    // The first run creates the slot before anything is written: changes committed
    // before the slot exists are, rightly, nowhere (only their end state, in a snapshot).
    let mut first = Some(start_capture(&config, &log));
    let deadline = Instant::now() + Duration::from_secs(60);
    while pg
        .sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'debezium' AND active")
        != "1"
    {
        assert!(Instant::now() < deadline, "capture created its slot");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The writer holds `server` during each batch, so the server restart falls between
    // batches (a batch cut by the crash could not be retried without duplicates).
    let server = Arc::new(Mutex::new(()));
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (server, writing) = (Arc::clone(&server), Arc::clone(&writing));
        let port = pg.port;
        let psql = pg.binary("psql");
        std::thread::spawn(move || {
            for batch in transactions.chunks(4) {
                let _held = server.lock().expect("lock");
                let status = sluice_tests::pg_client(&psql, port)
                    .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", &batch.concat()])
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("psql");
                assert!(status.success(), "a batch of transactions");
                drop(_held);
                std::thread::sleep(Duration::from_millis(120));
            }
            writing.store(false, Ordering::SeqCst);
        })
    };
    // Samples of the slot's confirmed_flush_lsn, with when they were taken.
    let samples = Arc::new(Mutex::new(Vec::<(i64, i64)>::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (samples, sampling) = (Arc::clone(&samples), Arc::clone(&sampling));
        let (port, psql) = (pg.port, pg.binary("psql"));
        std::thread::spawn(move || {
            while sampling.load(Ordering::SeqCst) {
                let output = sluice_tests::pg_client(&psql, port)
                    .args(["-X", "-q", "-A", "-t"])
                    .args(["-c", "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = 'debezium'"])
                    .output();
                let at = now_ms();
                if let Ok(output) = output
                    && let Ok(lsn) = String::from_utf8_lossy(&output.stdout)
                        .trim()
                        .parse::<i64>()
                {
                    samples.lock().expect("samples").push((at, lsn));
                }
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };

    let mut rng = Lcg(7);
    for cycle in 0..=KILLS {
        let mut capture = first.take().unwrap_or_else(|| {
            wait_slot_inactive(&pg);
            start_capture(&config, &log)
        });
        std::thread::sleep(Duration::from_millis(400 + rng.next(1_600)));
        if cycle == KILLS / 2 {
            let _held = server.lock().expect("lock");
            pg.restart_immediate();
        }
        capture.kill().expect("SIGKILL");
        let _ = capture.wait();
    }
    writer.join().expect("writer");
    assert!(!writing.load(Ordering::SeqCst));
    // The last run catches up: the slot (moved by heartbeats once idle) passes the end
    // of the WAL as it was when the writer finished.
    let end: i64 = pg
        .sql("SELECT pg_current_wal_lsn() - '0/0'")
        .parse()
        .expect("lsn");
    wait_slot_inactive(&pg);
    let mut capture = start_capture(&config, &log);
    // A bound for a stall, not a speed test: under a loaded full suite with a debug
    // build most of the 100,000 changes can be left to this last run.
    let deadline = Instant::now() + Duration::from_secs(480);
    while pg
        .sql("SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = 'debezium'")
        .parse::<i64>()
        .unwrap_or(0)
        < end
    {
        assert!(
            Instant::now() < deadline,
            "capture caught up within 480 s: confirmed_flush_lsn {} of {end}; slot: {}\n(capture's log ends)\n{}",
            pg.sql("SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = 'debezium'"),
            pg.sql("SELECT active, active_pid, restart_lsn, confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'debezium'"),
            log_tail(&log)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    sampling.store(false, Ordering::SeqCst);
    sampler.join().expect("sampler");
    let streamed: i64 = pg
        .sql("SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 'debezium'")
        .parse()
        .expect("stream_txns");
    assert!(
        streamed > 0,
        "the server streamed in-progress transactions to capture"
    );
    capture.kill().expect("stop");
    let _ = capture.wait();
    let left: Vec<_> = std::fs::read_dir(dir.path().join("spill"))
        .expect("spill dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.len() <= 1,
        "each start removes what killed captures left; only the last one's remains: {left:?}"
    );
    let records = consume(
        &broker.bootstrap,
        "crash.public.accounts",
        |n| n >= total,
        Duration::from_secs(300),
    );

    // Every change, at least once, in commit order per key (a replay after a crash
    // restarts a key's sequence at an earlier change and continues from there).
    // A snapshot read (`r`) stands for every change up to the version it read.
    let mut seen: BTreeMap<i64, Vec<(bool, Option<i64>)>> = BTreeMap::new();
    for (_, value, _) in &records {
        let value: serde_json::Value =
            serde_json::from_slice(value.as_deref().expect("a value")).expect("json");
        let read = value["op"] == "r";
        let (id, version) = match value["op"].as_str() {
            Some("r" | "c" | "u") => (
                value["after"]["id"].as_i64().expect("id"),
                value["after"]["version"].as_i64(),
            ),
            Some("d") => (value["before"]["id"].as_i64().expect("id"), None),
            other => panic!("unexpected op {other:?}"),
        };
        seen.entry(id).or_default().push((read, version));
    }
    for (id, changes) in &expected {
        let got = seen.get(id).cloned().unwrap_or_default();
        let mut at = 0; // index into `changes` of the next new change
        for (n, (read, version)) in got.iter().enumerate() {
            let position = changes
                .iter()
                .position(|c| c == version)
                .unwrap_or_else(|| panic!("key {id}: unexpected change {version:?} in {got:?}"));
            if *read {
                at = at.max(position + 1);
                continue;
            }
            assert!(
                position <= at,
                "key {id}: change {n} ({version:?}) out of order: expected {:?}, got {got:?}",
                changes.get(at)
            );
            if position == at {
                at += 1;
            }
        }
        assert_eq!(
            at,
            changes.len(),
            "key {id}: {changes:?} all in Kafka, got {got:?}\n(capture's log ends)\n{}",
            log_tail(&log)
        );
    }
    let duplicates = records.len() - total;
    println!(
        "{} changes, {} records ({duplicates} redelivered), {} slot samples",
        total,
        records.len(),
        samples.lock().expect("samples").len()
    );

    // The slot never passed what Kafka had: each sample is covered by an offset record
    // Kafka stored at or before it.
    let offsets = consume(
        &broker.bootstrap,
        "sluice.capture.offsets",
        |_| true,
        Duration::from_secs(30),
    );
    let stored: Vec<(i64, i64)> = offsets
        .iter()
        .filter_map(|(_, value, ts)| {
            let value: serde_json::Value = serde_json::from_slice(value.as_deref()?).ok()?;
            Some((*ts, value["lsn"].as_i64()?))
        })
        .collect();
    let samples = samples.lock().expect("samples").clone();
    assert!(samples.len() > 10, "the slot was sampled");
    for (at, confirmed) in &samples {
        let covered = stored.iter().any(|(ts, lsn)| ts <= at && lsn >= confirmed);
        assert!(
            covered || *confirmed == samples[0].1,
            "confirmed_flush_lsn {confirmed} at {at} ms is beyond every offset Kafka held then"
        );
    }
}
