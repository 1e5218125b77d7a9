//! What capture costs on top of the SQL Server reads, measured against baselines in the
//! same run. The CDC tables are in memory (a synthetic stream of update pairs of
//! `dbo.customers`, ten changes per transaction), so the figures are capture's own work:
//! merging, pairing, the Debezium envelope, offsets and Kafka, not SQL Server's.
//!
//! 1. Encoding: capture's loop into a writer that only counts, against the same events
//!    built as `serde_json::Value`s and serialized (a generic JSON encoder doing the same
//!    job): events/s and the ratio.
//! 2. Publishing: capture into Kafka (the test broker, at-least-once: events, then the
//!    offset record) against a bare rdkafka producer sending the same number of records of
//!    the same size: events/s and the ratio.
//!
//! 3. Memory: one SQL transaction of many updates, its rows generated as they are read
//!    (as a server's come off the connection): the peak heap capture adds (counted by
//!    the allocator), against the same rows collected into a `Vec` (what a pass held
//!    before it streamed).
//!
//! `cargo bench -p sluice-tests --bench capture` (add `-- --quick` for a smoke run).
//! Results and how to read them: BENCHMARKS.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use sluice_capture::envelope::TableSchema;
use sluice_capture::offsets::Offset;
use sluice_capture::sqlserver::lsn::Lsn;
use sluice_capture::sqlserver::tables::{
    CaptureInstance, CdcTables, ChangeRow, Operation, Read, Rows, SnapshotIsolation, TablesError,
};
use sluice_capture::sqlserver::types::SqlValue;
use sluice_capture::{CaptureSettings, EventWriter, OutRecord, WriteError};
use sluice_tests::Broker;

/// Changes per SQL transaction.
const PER_TRANSACTION: usize = 10;
const TOPIC: &str = "server1.testDB.dbo.customers";

fn row(i: usize, email: &str) -> Vec<SqlValue> {
    vec![
        SqlValue::I32(100_000 + i as i32),
        SqlValue::String(format!("Firstname{i}")),
        SqlValue::String("Lastname-Example".into()),
        SqlValue::String(email.into()),
        SqlValue::Numeric {
            value: 100_000 + i as i128,
            scale: 2,
        },
        SqlValue::Date {
            days: 724_000 + (i % 9000) as u32,
        },
        SqlValue::DateTime2 {
            days: 739_900,
            increments: 34_200_125,
            scale: 3,
        },
        SqlValue::DateTime2 {
            days: 739_920,
            increments: 432_001_234_567,
            scale: 7,
        },
        SqlValue::Guid("6f9619ff-8b86-d011-b42d-00c04fc964ff".into()),
        SqlValue::Bit(!i.is_multiple_of(7)),
    ]
}

fn lsn(n: u64, slot: u16) -> Lsn {
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    bytes[8..].copy_from_slice(&slot.to_be_bytes());
    Lsn(bytes)
}

/// `events` updates (a before and an after row each), `PER_TRANSACTION` per commit.
struct Synthetic {
    instance: CaptureInstance,
    rows: Vec<ChangeRow>,
}

impl Synthetic {
    fn new(events: usize) -> Self {
        let mut rows = Vec::with_capacity(events * 2);
        for i in 0..events {
            let commit = lsn(1 + (i / PER_TRANSACTION) as u64, 0xffff);
            let change = lsn(
                1 + (i / PER_TRANSACTION) as u64,
                (i % PER_TRANSACTION) as u16,
            );
            for (operation, email) in [
                (
                    Operation::UpdateBefore,
                    format!("old.address.{i}@example.com"),
                ),
                (
                    Operation::UpdateAfter,
                    format!("new.address.{i}@example.org"),
                ),
            ] {
                rows.push(ChangeRow {
                    start_lsn: commit,
                    seqval: change,
                    operation,
                    command_id: (i % PER_TRANSACTION) as i32,
                    commit_ts_ms: 1_763_900_000_000,
                    values: row(i, &email),
                });
            }
        }
        Self {
            instance: CaptureInstance {
                name: "dbo_customers".into(),
                table: sluice_capture::fixtures::customers(),
                start_lsn: lsn(0, 1),
            },
            rows,
        }
    }
}

impl CdcTables for Synthetic {
    async fn max_lsn(&mut self) -> Result<Option<Lsn>, TablesError> {
        Ok(self.rows.last().map(|r| r.start_lsn))
    }
    async fn capture_instances(&mut self) -> Result<Vec<CaptureInstance>, TablesError> {
        Ok(vec![self.instance.clone()])
    }
    async fn window_end(
        &mut self,
        from: Lsn,
        transactions: u32,
    ) -> Result<Option<Lsn>, TablesError> {
        let first = self.rows.partition_point(|r| r.start_lsn < from);
        let rows = transactions as usize * PER_TRANSACTION * 2;
        Ok(self.rows[first..]
            .iter()
            .take(rows)
            .map(|r| r.start_lsn)
            .max())
    }
    async fn changes<'a>(&'a mut self, reads: &'a [Read]) -> Result<Vec<Rows<'a>>, TablesError> {
        // Rows are cloned as they are read, as a server's come off the connection.
        let rows = &self.rows;
        Ok(reads
            .iter()
            .map(|read| {
                let first = rows.partition_point(|r| r.start_lsn < read.from);
                let end = rows.partition_point(|r| r.start_lsn <= read.to);
                futures::stream::iter(rows[first..end].iter().cloned().map(Ok)).boxed()
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
        Ok(1_763_900_000_000)
    }
}

/// One SQL transaction of `updates` update pairs, generated as they are read.
struct OneTransaction {
    instance: CaptureInstance,
    updates: usize,
}

impl OneTransaction {
    fn rows(updates: usize) -> impl Iterator<Item = ChangeRow> + Send + 'static {
        (0..updates).flat_map(|i| {
            let change = lsn(1, 0).increment_by(i);
            [
                (
                    Operation::UpdateBefore,
                    format!("old.address.{i}@example.com"),
                ),
                (
                    Operation::UpdateAfter,
                    format!("new.address.{i}@example.org"),
                ),
            ]
            .into_iter()
            .map(move |(operation, email)| ChangeRow {
                start_lsn: lsn(2, 0),
                seqval: change,
                operation,
                command_id: 1,
                commit_ts_ms: 1_763_900_000_000,
                values: row(i, &email),
            })
        })
    }
}

/// `increment_by` for the synthetic change LSNs.
trait Increment {
    fn increment_by(self, n: usize) -> Lsn;
}

impl Increment for Lsn {
    fn increment_by(self, n: usize) -> Lsn {
        let mut bytes = self.0;
        bytes[2..10].copy_from_slice(&(n as u64).to_be_bytes());
        Lsn(bytes)
    }
}

impl CdcTables for OneTransaction {
    async fn max_lsn(&mut self) -> Result<Option<Lsn>, TablesError> {
        Ok(Some(lsn(2, 0)))
    }
    async fn capture_instances(&mut self) -> Result<Vec<CaptureInstance>, TablesError> {
        Ok(vec![self.instance.clone()])
    }
    async fn window_end(
        &mut self,
        from: Lsn,
        _transactions: u32,
    ) -> Result<Option<Lsn>, TablesError> {
        Ok((from <= lsn(2, 0)).then_some(lsn(2, 0)))
    }
    async fn changes<'a>(&'a mut self, reads: &'a [Read]) -> Result<Vec<Rows<'a>>, TablesError> {
        let updates = self.updates;
        Ok(reads
            .iter()
            .map(|_| futures::stream::iter(Self::rows(updates).map(Ok)).boxed())
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
        Ok(1_763_900_000_000)
    }
}

/// The system allocator, counting the bytes live and their peak, so the memory part
/// measures the heap capture holds exactly (resident memory would hide reuse of memory
/// freed by the parts before it).
struct PeakHeap;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// Unsafe: a `GlobalAlloc` must be an `unsafe impl`; this one only forwards to `System`
// and counts, in this benchmark binary alone.
#[allow(unsafe_code)]
mod peak_heap {
    use super::{LIVE, PEAK, PeakHeap};
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::Ordering;

    fn grew(bytes: usize) {
        let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }

    unsafe impl GlobalAlloc for PeakHeap {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded unchanged to the system allocator.
            let pointer = unsafe { System.alloc(layout) };
            if !pointer.is_null() {
                grew(layout.size());
            }
            pointer
        }
        unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
            // SAFETY: forwarded unchanged to the system allocator.
            unsafe { System.dealloc(pointer, layout) };
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
            // SAFETY: forwarded unchanged to the system allocator.
            let moved = unsafe { System.realloc(pointer, layout, size) };
            if !moved.is_null() {
                LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
                grew(size);
            }
            moved
        }
    }

    #[global_allocator]
    static HEAP: PeakHeap = PeakHeap;
}

/// The peak heap `work` adds above what was live when it began, MiB.
fn peak_added_mib(work: impl FnOnce()) -> f64 {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    work();
    (PEAK.load(Ordering::Relaxed) - before) as f64 / (1024.0 * 1024.0)
}

/// Counts the data events it is given (and their bytes), then drops them.
#[derive(Clone, Default)]
struct Counting {
    events: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
}

impl EventWriter for Counting {
    async fn commit(&mut self, records: Vec<OutRecord>, _offset: Offset) -> Result<(), WriteError> {
        let data: Vec<&OutRecord> = records.iter().filter(|r| r.topic == TOPIC).collect();
        let bytes: usize = data
            .iter()
            .map(|r| r.value.as_ref().map_or(0, Vec::len))
            .sum();
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.events.fetch_add(data.len(), Ordering::Relaxed);
        Ok(())
    }
}

/// Runs capture over `events` synthetic updates into `writer` until `done()` says all
/// arrived; returns the elapsed time.
async fn capture<W: EventWriter>(
    events: usize,
    writer: &mut W,
    done: impl Fn() -> bool,
) -> Duration {
    let mut tables = Synthetic::new(events);
    let settings = CaptureSettings {
        poll_interval: Duration::from_millis(1),
        ..CaptureSettings::new("server1", "testDB", vec!["dbo.customers".into()])
    };
    let progress = sluice_capture::sqlserver::snapshot::Progress::default();
    let start = Instant::now();
    let shutdown = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    sluice_capture::run(
        &mut tables,
        writer,
        &settings,
        Some(Offset::Snapshot {
            commit: lsn(0, 1),
            completed: true,
        }),
        sluice_capture::system_clock(),
        &progress,
        shutdown,
    )
    .await
    .expect("capture");
    start.elapsed()
}

/// The same events as `serde_json::Value`s, serialized: the generic-encoder baseline.
fn serde_baseline(events: usize) -> (Duration, usize) {
    let start = Instant::now();
    let mut bytes = 0;
    for i in 0..events {
        let image = |email: String| {
            json!({
                "id": 100_000 + i, "first_name": format!("Firstname{i}"),
                "last_name": "Lastname-Example", "email": email, "credit_limit": "AYag",
                "birth_date": 5000 + i % 9000, "created_at": 1_763_000_000_000i64,
                "updated_at": 1_763_900_000_123_456_700i64,
                "customer_guid": "6F9619FF-8B86-D011-B42D-00C04FC964FF", "is_active": !i.is_multiple_of(7),
            })
        };
        let value = json!({
            "before": image(format!("old.address.{i}@example.com")),
            "after": image(format!("new.address.{i}@example.org")),
            "source": {
                "version": "3.0.0.Final", "connector": "sqlserver", "name": "server1",
                "ts_ms": 1_763_900_000_000i64, "snapshot": "false", "db": "testDB",
                "sequence": null, "ts_us": 1_763_900_000_000_000i64,
                "ts_ns": 1_763_900_000_000_000_000i64, "schema": "dbo", "table": "customers",
                "change_lsn": format!("00000000:{:08x}:{:04x}", i / PER_TRANSACTION, i % PER_TRANSACTION),
                "commit_lsn": format!("00000000:{:08x}:ffff", i / PER_TRANSACTION),
                "event_serial_no": 2
            },
            "transaction": null, "op": "u", "ts_ms": 1_763_900_000_500i64,
            "ts_us": 1_763_900_000_500_000i64, "ts_ns": 1_763_900_000_500_000_000i64,
        });
        let key = serde_json::to_vec(&json!({ "id": 100_000 + i })).expect("key");
        let value = serde_json::to_vec(&value).expect("value");
        bytes += value.len();
        std::hint::black_box((key, value));
    }
    (start.elapsed(), bytes / events)
}

/// A bare producer sending `events` records of `size` bytes, waiting for every delivery.
async fn bare_producer(bootstrap: &str, topic: &str, events: usize, size: usize) -> Duration {
    let producer: FutureProducer = sluice_tests::kafka_client(bootstrap)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        // Every record is queued before the first delivery is awaited.
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let payload = vec![b'x'; size];
    let start = Instant::now();
    let mut deliveries = Vec::with_capacity(events);
    for i in 0..events {
        let key = format!("{{\"id\":{}}}", 100_000 + i);
        deliveries.push(
            producer
                .send_result(FutureRecord::to(topic).key(&key).payload(&payload))
                .expect("queued"),
        );
    }
    for delivery in deliveries {
        delivery.await.expect("delivery").expect("produced");
    }
    start.elapsed()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let events = if quick { 20_000 } else { 200_000 };
    let rounds = if quick { 1 } else { 3 };
    let tokio = tokio::runtime::Runtime::new().expect("tokio");

    // 1. Encoding, best of `rounds`.
    let mut capture_best = Duration::MAX;
    let mut serde_best = Duration::MAX;
    let mut size = 0;
    for _ in 0..rounds {
        let counting = Counting::default();
        let mut writer = counting.clone();
        let elapsed = tokio.block_on(capture(events, &mut writer, || {
            counting.events.load(Ordering::Relaxed) >= events
        }));
        assert_eq!(counting.events.load(Ordering::Relaxed), events);
        size = counting.bytes.load(Ordering::Relaxed) / events;
        capture_best = capture_best.min(elapsed);
        let (elapsed, _) = serde_baseline(events);
        serde_best = serde_best.min(elapsed);
    }
    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    println!(
        "{events} update events of {size} B (value), {PER_TRANSACTION} per transaction; best of {rounds}"
    );
    println!();
    println!("| encoding | events/s | vs serde_json |");
    println!("|---|---:|---:|");
    println!(
        "| serde_json::Value + to_vec (baseline) | {:.0} | 1.00× |",
        rate(serde_best)
    );
    println!(
        "| capture loop (pairing, envelope, offsets), no Kafka | {:.0} | {:.2}× |",
        rate(capture_best),
        rate(capture_best) / rate(serde_best)
    );

    // 2. Publishing to the test broker.
    let broker = Broker::start();
    tokio.block_on(async {
        sluice_tests::create_topics(
            &broker.bootstrap,
            &[(TOPIC, 1), ("bare", 1), ("sluice.capture.offsets", 1)],
        )
        .await;
    });
    let bare = tokio.block_on(bare_producer(&broker.bootstrap, "bare", events, size));
    let properties = vec![
        ("bootstrap.servers".to_owned(), broker.bootstrap.clone()),
        ("linger.ms".to_owned(), "5".to_owned()),
    ];
    let mut writer = sluice_capture::writer::KafkaWriter::new(
        &properties,
        "sluice.capture.offsets",
        "server1",
        "testDB",
        false,
    )
    .expect("writer");
    let published = Counting::default();
    let elapsed = {
        let mut counted = CountingKafka {
            inner: &mut writer,
            count: published.clone(),
        };
        tokio.block_on(capture(events, &mut counted, || {
            published.events.load(Ordering::Relaxed) >= events
        }))
    };
    println!();
    println!("| to Kafka (tansu, at-least-once) | events/s | vs bare producer |");
    println!("|---|---:|---:|");
    println!(
        "| bare rdkafka producer, {size} B records (baseline) | {:.0} | 1.00× |",
        rate(bare)
    );
    println!(
        "| capture → KafkaWriter (events, then the offset) | {:.0} | {:.2}× |",
        rate(elapsed),
        rate(elapsed) / rate(bare)
    );

    // 3. Memory: one transaction, at two part sizes.
    let updates = if quick { 50_000 } else { 500_000 };
    let instance = CaptureInstance {
        name: "dbo_customers".into(),
        table: sluice_capture::fixtures::customers(),
        start_lsn: lsn(0, 1),
    };
    let mut streamed = Vec::new();
    for batch_size in [10_000, 1_000] {
        let settings = CaptureSettings {
            batch_size,
            ..CaptureSettings::new("server1", "testDB", vec!["dbo.customers".into()])
        };
        let counting = Counting::default();
        let peak = peak_added_mib(|| {
            let mut tables = OneTransaction {
                instance: instance.clone(),
                updates,
            };
            let mut writer = counting.clone();
            let mut streamer = sluice_capture::sqlserver::stream::Streamer::new(
                settings,
                sluice_capture::system_clock(),
            );
            streamer.resume_from(Offset::Snapshot {
                commit: lsn(1, 0),
                completed: true,
            });
            tokio
                .block_on(streamer.pass(&mut tables, &mut writer))
                .expect("pass");
        });
        assert_eq!(counting.events.load(Ordering::Relaxed), updates);
        streamed.push((batch_size, peak));
    }
    let collected = peak_added_mib(|| {
        let rows: Vec<ChangeRow> = OneTransaction::rows(updates).collect();
        std::hint::black_box(&rows);
    });
    println!();
    println!(
        "| one transaction of {updates} updates ({} rows) | peak heap added | vs rows collected |",
        updates * 2
    );
    println!("|---|---:|---:|");
    println!(
        "| the rows collected in a Vec (baseline: a pass before streaming) | {collected:.1} MiB | 1.00× |"
    );
    for (batch_size, peak) in streamed {
        println!(
            "| capture pass, batch_size {batch_size}, into a counting writer | {peak:.1} MiB | {:.3}× |",
            peak / collected
        );
    }
}

/// The Kafka writer, counting what it has published (acknowledged) so far.
struct CountingKafka<'a> {
    inner: &'a mut sluice_capture::writer::KafkaWriter,
    count: Counting,
}

impl EventWriter for CountingKafka<'_> {
    async fn commit(&mut self, records: Vec<OutRecord>, offset: Offset) -> Result<(), WriteError> {
        let data = records.iter().filter(|r| r.topic == TOPIC).count();
        self.inner.commit(records, offset).await?;
        self.count.events.fetch_add(data, Ordering::Relaxed);
        Ok(())
    }
}
