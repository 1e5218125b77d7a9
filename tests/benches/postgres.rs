//! PostgreSQL capture against baselines measured in the same run, on a server started
//! for the run (`sluice_tests::Postgres`):
//!
//! 1. Streaming: capture (pgoutput decoding, Debezium envelopes, offsets) into a writer
//!    that only counts, against `pg_recvlogical` reading the same WAL through pgoutput
//!    into /dev/null (the ceiling: the server's decoding and the wire). Events/s, ratio.
//! 2. Snapshot: capture's snapshot (COPY under the slot's exported snapshot, envelopes)
//!    against `COPY ... TO STDOUT` of the same table through psql into /dev/null. Rows/s.
//! 3. Memory: the peak resident size while one transaction of 1,000,000 rows streams
//!    (committed in batches: memory is bounded by the batch, not the transaction).
//! 4. Into Kafka: streaming capture into the test broker (tansu) through its Kafka writer
//!    (at-least-once: each part's events acknowledged, then its offset; one batch in
//!    flight, then `max_batches_in_flight`'s default), against a bare
//!    rdkafka producer sending the same records (collected from a first capture of the
//!    same WAL) and awaiting every delivery. Events/s, ratio.
//!
//! `cargo bench -p sluice-tests --bench postgres` (`-- --quick`: 50,000 rows; `-- --only
//! streaming|snapshot|memory|kafka`: one of them).
//! Results: BENCHMARKS.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sluice_capture::config::{CaptureKind, parse_any};
use sluice_capture::postgres::offsets::PgOffset;
use sluice_capture::sqlserver::snapshot::Progress;
use sluice_capture::{Acknowledged, EventWriter, OutRecord, WriteError};
use sluice_tests::{Broker, Postgres};

/// Keeps every record written (the records a bare producer then sends).
#[derive(Default)]
struct Collecting {
    records: Vec<OutRecord>,
    target: usize,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl EventWriter<PgOffset> for Collecting {
    async fn commit(&mut self, records: Vec<OutRecord>, _: PgOffset) -> Result<(), WriteError> {
        self.records.extend(records);
        if self.records.len() >= self.target
            && let Some(done) = self.done.take()
        {
            let _ = done.send(());
        }
        Ok(())
    }
}

/// The Kafka writer, noting when `target` events were acknowledged.
struct CountingKafka {
    inner: sluice_capture::writer::KafkaWriter,
    /// Events acknowledged (counted as parts are acknowledged, in order).
    events: Arc<AtomicU64>,
    target: u64,
    done: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
    reached: Arc<Mutex<Option<Instant>>>,
}

impl CountingKafka {
    fn new(
        inner: sluice_capture::writer::KafkaWriter,
        target: u64,
    ) -> (Self, tokio::sync::oneshot::Receiver<()>) {
        let (done, finished) = tokio::sync::oneshot::channel();
        let writer = CountingKafka {
            inner,
            events: Arc::default(),
            target,
            done: Arc::new(Mutex::new(Some(done))),
            reached: Arc::default(),
        };
        (writer, finished)
    }

    /// Counts `events` acknowledged; notes when the target is reached.
    fn acknowledged(&self) -> impl FnOnce(u64) + Send + 'static {
        let (counter, target) = (Arc::clone(&self.events), self.target);
        let (done, reached) = (Arc::clone(&self.done), Arc::clone(&self.reached));
        move |events| {
            if counter.fetch_add(events, Ordering::SeqCst) + events >= target
                && let Some(done) = done.lock().expect("lock").take()
            {
                *reached.lock().expect("lock") = Some(Instant::now());
                let _ = done.send(());
            }
        }
    }
}

impl EventWriter<PgOffset> for CountingKafka {
    async fn commit(
        &mut self,
        records: Vec<OutRecord>,
        offset: PgOffset,
    ) -> Result<(), WriteError> {
        let events = records.len() as u64;
        self.inner.commit(records, offset).await?;
        self.acknowledged()(events);
        Ok(())
    }

    async fn dispatch(
        &mut self,
        records: Vec<OutRecord>,
        offset: PgOffset,
    ) -> Result<Acknowledged, WriteError> {
        let events = records.len() as u64;
        let part = self.inner.dispatch(records, offset).await?;
        let count = self.acknowledged();
        Ok(Box::pin(async move {
            part.await?;
            count(events);
            Ok(())
        }))
    }
}

/// Runs capture into `writer` until it says it is done.
fn run_into<W: EventWriter<PgOffset>>(
    runtime: &tokio::runtime::Runtime,
    config: &sluice_capture::postgres::config::PgCaptureConfig,
    writer: &mut W,
    finished: tokio::sync::oneshot::Receiver<()>,
) {
    runtime
        .block_on(sluice_capture::postgres::run(
            config,
            writer,
            None,
            sluice_capture::system_clock(),
            &Progress::default(),
            async move {
                let _ = finished.await;
            },
        ))
        .expect("capture");
}

/// A bare producer sending `records` as they are, awaiting every delivery.
async fn bare_producer(bootstrap: &str, records: &[OutRecord]) -> f64 {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = sluice_tests::kafka_client(bootstrap)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(records.len());
    for r in records {
        let mut record = FutureRecord::<[u8], [u8]>::to(&r.topic);
        if let Some(key) = &r.key {
            record = record.key(key);
        }
        if let Some(value) = &r.value {
            record = record.payload(value);
        }
        deliveries.push(producer.send_result(record).expect("queued"));
    }
    for delivery in deliveries {
        delivery.await.expect("delivery").expect("produced");
    }
    started.elapsed().as_secs_f64()
}

/// Counts events and says when `target` were written (and notes when).
struct Counting {
    events: u64,
    target: u64,
    done: Option<tokio::sync::oneshot::Sender<()>>,
    reached: Option<Instant>,
}

impl EventWriter<PgOffset> for Counting {
    async fn commit(&mut self, records: Vec<OutRecord>, _: PgOffset) -> Result<(), WriteError> {
        self.events += records.len() as u64;
        if self.events >= self.target
            && let Some(done) = self.done.take()
        {
            self.reached = Some(Instant::now());
            let _ = done.send(());
        }
        Ok(())
    }
}

fn config(
    pg: &Postgres,
    slot: &str,
    snapshot: &str,
) -> sluice_capture::postgres::config::PgCaptureConfig {
    let text = format!(
        r#"
        [capture]
        type = "postgres"
        connection = "{}"
        topic_prefix = "bench"
        tables = ["public.t"]
        slot_name = "{slot}"
        snapshot_mode = "{snapshot}"
        batch_size = 10000
        [kafka]
        properties = {{ "bootstrap.servers" = "127.0.0.1:1" }}
        "#,
        pg.connection("postgres")
    );
    match parse_any(&text, "bench.toml").expect("config") {
        CaptureKind::Postgres(config) => config,
        CaptureKind::SqlServer(_) => unreachable!(),
    }
}

/// Runs capture until `target` events were written; returns the seconds from its start
/// to the write of the last of them (what follows, stopping, is not the work measured).
fn capture(
    runtime: &tokio::runtime::Runtime,
    config: &sluice_capture::postgres::config::PgCaptureConfig,
    target: u64,
) -> f64 {
    let (done, finished) = tokio::sync::oneshot::channel();
    let mut writer = Counting {
        events: 0,
        target,
        done: Some(done),
        reached: None,
    };
    let started = Instant::now();
    run_into(runtime, config, &mut writer, finished);
    assert!(
        writer.events >= target,
        "{} of {target} events",
        writer.events
    );
    writer
        .reached
        .expect("the target was reached")
        .duration_since(started)
        .as_secs_f64()
}

/// CPU time used so far, in clock ticks (100 per second): the whole machine's (every
/// process, exited ones included: the server's walsenders, the broker) and this
/// process's (capture or the bare producer, with librdkafka's threads).
fn cpu_ticks() -> (u64, u64) {
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let fields: Vec<u64> = s
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .filter_map(|f| f.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal: all but idle and iowait.
            Some(
                fields
                    .iter()
                    .take(8)
                    .enumerate()
                    .filter(|(i, _)| *i != 3 && *i != 4)
                    .map(|(_, v)| v)
                    .sum(),
            )
        })
        .unwrap_or(0);
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = &s[s.rfind(')')? + 2..];
            let fields: Vec<&str> = after.split_whitespace().collect();
            // utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    (machine, own)
}

/// µs of CPU per event between two [`cpu_ticks`] readings: (machine, this process).
fn cpu_per_event(before: (u64, u64), after: (u64, u64), events: u64) -> (f64, f64) {
    let us = |ticks: u64| ticks as f64 * 10_000.0 / events as f64;
    (us(after.0 - before.0), us(after.1 - before.1))
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only streaming|snapshot|memory`: one measurement (for profiling it).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let runs = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let rows: u64 = if quick { 50_000 } else { 500_000 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let pg = Postgres::start();
    pg.sql(
        "CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2), at timestamptz);
         CREATE PUBLICATION dbz_publication FOR TABLE t;
         SELECT pg_create_logical_replication_slot('stream_sluice', 'pgoutput');
         SELECT pg_create_logical_replication_slot('stream_recv', 'pgoutput');
         SELECT pg_create_logical_replication_slot('kafka_collect', 'pgoutput');
         SELECT pg_create_logical_replication_slot('kafka_sluice', 'pgoutput');
         SELECT pg_create_logical_replication_slot('kafka_sluice_1', 'pgoutput');",
    );
    // The WAL both readers stream: `rows` inserts in transactions of 1,000.
    for start in (0..rows).step_by(100_000) {
        let end = (start + 100_000).min(rows);
        let mut sql = String::new();
        for from in (start..end).step_by(1_000) {
            sql.push_str(&format!(
                "INSERT INTO t SELECT g, 'customer ' || g, g * 1.25, now() FROM generate_series({}, {}) g;",
                from + 1,
                (from + 1_000).min(end)
            ));
        }
        pg.sql(&sql);
    }
    let end_lsn = pg.sql("SELECT pg_current_wal_lsn()");

    // 1. Streaming.
    if runs("streaming") {
        let started = Instant::now();
        let status = pg
            .client("pg_recvlogical")
            .args([
                "--slot",
                "stream_recv",
                "--start",
                "--endpos",
                &end_lsn,
                "-o",
                "proto_version=1",
                "-o",
                "publication_names=dbz_publication",
                "-f",
                "/dev/null",
            ])
            .status()
            .expect("pg_recvlogical");
        assert!(status.success());
        let recv = started.elapsed().as_secs_f64();
        let sluice = capture(&runtime, &config(&pg, "stream_sluice", "no_data"), rows);
        println!(
            "streaming {rows} inserts: pg_recvlogical {:.0}/s, sluice (null writer) {:.0}/s, ratio {:.2}",
            rows as f64 / recv,
            rows as f64 / sluice,
            recv / sluice
        );
    }

    // 2. Snapshot.
    if runs("snapshot") {
        let cpu = cpu_ticks();
        let started = Instant::now();
        let copied = pg.sql("COPY t TO STDOUT").lines().count();
        let copy = started.elapsed().as_secs_f64();
        let copy_cpu = cpu_per_event(cpu, cpu_ticks(), rows);
        assert_eq!(copied as u64, rows);
        let cpu = cpu_ticks();
        let snapshot = capture(&runtime, &config(&pg, "snapshot_sluice", "initial"), rows);
        let (machine, own) = cpu_per_event(cpu, cpu_ticks(), rows);
        println!(
            "snapshot {rows} rows: COPY TO STDOUT (psql) {:.0}/s, sluice {:.0}/s, ratio {:.2}; \
             CPU per row: COPY {:.2} us (machine), sluice {machine:.2} us (machine) / {own:.2} us (its process)",
            rows as f64 / copy,
            rows as f64 / snapshot,
            copy / snapshot,
            copy_cpu.0,
        );
    }

    // 3. One transaction of 1,000,000 rows (250,000 with --quick).
    // 3. Memory (before 4, which holds its records: the peak would be its).
    if runs("memory") {
        let big: u64 = if quick { 250_000 } else { 1_000_000 };
        pg.sql(&format!(
            "SELECT pg_create_logical_replication_slot('big', 'pgoutput');
             SELECT pg_create_logical_replication_slot('big_v1', 'pgoutput');
         INSERT INTO t SELECT g, repeat('x', 100), g, now() FROM generate_series({}, {}) g;",
            rows + 1,
            rows + big
        ));
        // Protocol 1 first (the server spills the transaction and sends it after its
        // commit), then protocol 2 (streamed while decoded, capture spills it).
        for (slot, streaming) in [("big_v1", false), ("big", true)] {
            let mut settings = config(&pg, slot, "no_data");
            settings.settings.streaming = streaming;
            let before = peak_rss_kb();
            let seconds = capture(&runtime, &settings, big);
            let after = peak_rss_kb();
            println!(
                "one transaction of {big} rows, protocol {}: {:.0} events/s, peak RSS {} MiB before, {} MiB after",
                if streaming { 2 } else { 1 },
                big as f64 / seconds,
                before / 1024,
                after / 1024
            );
        }
        let streamed =
            pg.sql("SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 'big'");
        println!("  (the server streamed {streamed} transaction(s) on the protocol 2 slot)");
    }

    // 4. Into Kafka, against a bare producer of the same records.
    if runs("kafka") {
        let broker = Broker::start();
        runtime.block_on(sluice_tests::create_topics(
            &broker.bootstrap,
            &[("bench.public.t", 1), ("sluice.capture.offsets", 1)],
        ));
        let (done, finished) = tokio::sync::oneshot::channel();
        let mut collected = Collecting {
            target: rows as usize,
            done: Some(done),
            ..Collecting::default()
        };
        run_into(
            &runtime,
            &config(&pg, "kafka_collect", "no_data"),
            &mut collected,
            finished,
        );
        let records = &collected.records[..rows as usize];
        let cpu = cpu_ticks();
        let bare = runtime.block_on(bare_producer(&broker.bootstrap, records));
        let bare_cpu = cpu_per_event(cpu, cpu_ticks(), rows);
        let properties = vec![
            ("bootstrap.servers".to_owned(), broker.bootstrap.clone()),
            ("linger.ms".to_owned(), "5".to_owned()),
        ];
        // One batch in flight at a time (as before `max_batches_in_flight`), then the
        // default, each from its own slot over the same WAL.
        let mut rates = Vec::new();
        for (slot, in_flight) in [("kafka_sluice_1", 1), ("kafka_sluice", 4)] {
            let inner = sluice_capture::writer::KafkaWriter::new(
                &properties,
                "sluice.capture.offsets",
                "bench",
                slot,
                false,
            )
            .expect("writer");
            let (mut writer, finished) = CountingKafka::new(inner, rows);
            let mut kafka_config = config(&pg, slot, "no_data");
            kafka_config.settings.parts_in_flight = in_flight;
            let cpu = cpu_ticks();
            let started = Instant::now();
            run_into(&runtime, &kafka_config, &mut writer, finished);
            let used = cpu_per_event(cpu, cpu_ticks(), rows);
            let reached = writer
                .reached
                .lock()
                .expect("lock")
                .expect("every event acknowledged");
            rates.push((
                in_flight,
                rows as f64 / reached.duration_since(started).as_secs_f64(),
                used,
            ));
        }
        let bare_rate = rows as f64 / bare;
        for (in_flight, rate, (machine, own)) in rates {
            println!(
                "into Kafka (tansu), {rows} inserts, {in_flight} batch(es) in flight: bare producer of the same records {bare_rate:.0}/s, sluice {rate:.0}/s, ratio {:.2}; \
                 CPU per event: bare producer {:.1} us (machine) / {:.1} us (its process), sluice {machine:.1} us / {own:.1} us: CPU-bound ratio on a saturated machine {:.2}",
                rate / bare_rate,
                bare_cpu.0,
                bare_cpu.1,
                bare_cpu.0 / machine
            );
        }
    }
}
