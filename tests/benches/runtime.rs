//! Events per second through the WebAssembly runtime (no I/O), per plugin and batch size,
//! against the same `customers-cdm` logic compiled natively, measured in one run.
//!
//! `cargo bench -p sluice-tests --bench runtime` (add `-- --quick` for a smoke run).
//! Results and how to read them: BENCHMARKS.md.

use std::time::{Duration, Instant};

use sluice::debezium::{Decoded, RawRecord, decode};
use sluice::runtime::{ChangeEvent, Origin, PluginSpec, PluginWorker, Runtime, RuntimeOptions};
use sluice_sdk::IntoOutcome;
use sluice_sdk::bindings::sluice::transform::types as sdk;
use sluice_tests::components;

/// Distinct events; each measurement walks through them in batches.
const EVENTS: usize = 20_000;
const BATCH_SIZES: [usize; 4] = [1, 16, 256, 1024];

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 1 } else { 5 };
    let raw = synthetic_events(EVENTS);
    let avg_bytes = raw
        .iter()
        .map(|r| r.value.as_ref().map_or(0, Vec::len))
        .sum::<usize>()
        / raw.len();

    let started = Instant::now();
    let events: Vec<ChangeEvent> = raw
        .iter()
        .cloned()
        .map(|r| match decode(r) {
            Ok(Decoded::Event(e)) => e,
            _ => panic!("synthetic events decode"),
        })
        .collect();
    let decode_rate = EVENTS as f64 / started.elapsed().as_secs_f64();

    println!(
        "events: {EVENTS} distinct, {avg_bytes} bytes of Debezium JSON on average; best of {rounds} rounds"
    );
    println!(
        "host-side envelope decode (not included below): {:.0} events/s",
        decode_rate
    );
    println!();
    println!("| plugin | batch | events/s | vs native customers-cdm |");
    println!("|---|---:|---:|---:|");

    let runtime = Runtime::new(RuntimeOptions { cache_dir: None }).expect("runtime");
    let mut native_by_batch = Vec::new();
    for &batch in &BATCH_SIZES {
        let sdk_events: Vec<sdk::ChangeEvent> = events.iter().map(to_sdk).collect();
        let rate = best_of(rounds, || run_native(&sdk_events, batch));
        native_by_batch.push(rate);
        println!("| customers-cdm (native Rust) | {batch} | {rate:.0} | 1.00 |");
    }
    for (name, path) in [
        ("customers-cdm", components::CUSTOMERS_CDM),
        ("passthrough", components::PASSTHROUGH),
    ] {
        let spec = PluginSpec {
            name: name.to_owned(),
            version: "bench".to_owned(),
            config: vec![],
            limits: Default::default(),
        };
        let plugin = runtime
            .load_file(spec, std::path::Path::new(path))
            .expect("load");
        let mut worker = PluginWorker::new(plugin.instantiate().expect("instantiate"));
        for (i, &batch) in BATCH_SIZES.iter().enumerate() {
            let rate = best_of(rounds, || run_wasm(&mut worker, &events, batch));
            println!(
                "| {name} (wasm) | {batch} | {rate:.0} | {:.2} |",
                rate / native_by_batch[i]
            );
        }
    }
}

fn best_of(rounds: usize, mut measure: impl FnMut() -> Duration) -> f64 {
    let best = (0..rounds)
        .map(|_| measure())
        .min()
        .unwrap_or(Duration::MAX);
    EVENTS as f64 / best.as_secs_f64()
}

fn run_wasm(worker: &mut PluginWorker, events: &[ChangeEvent], batch: usize) -> Duration {
    let started = Instant::now();
    let mut outputs = 0usize;
    for chunk in events.chunks(batch) {
        outputs += worker.transform(chunk).len();
    }
    let elapsed = started.elapsed();
    assert_eq!(outputs, events.len());
    elapsed
}

/// The native baseline does the same work per event as the component's guest code:
/// takes an owned event (the guest gets owned, lifted copies) and builds its outcome.
fn run_native(events: &[sdk::ChangeEvent], batch: usize) -> Duration {
    let started = Instant::now();
    let mut outputs = 0usize;
    for chunk in events.chunks(batch) {
        let owned: Vec<sdk::ChangeEvent> = chunk.to_vec();
        let outcomes: Vec<sdk::EventOutcome> = owned
            .into_iter()
            .map(|e| {
                customers_cdm::customers_cdm(sluice_sdk::ChangeEvent::from_wit(e)).into_outcome()
            })
            .collect();
        outputs += outcomes.len();
        std::hint::black_box(outcomes);
    }
    let elapsed = started.elapsed();
    assert_eq!(outputs, events.len());
    elapsed
}

/// ~1 KB Debezium SQL Server events of `dbo.customers`, updates with before and after.
fn synthetic_events(count: usize) -> Vec<RawRecord> {
    (0..count)
        .map(|i| {
            let id = 100_000 + i as i64;
            let row = |email: &str| {
                serde_json::json!({
                    "id": id, "first_name": format!("Firstname{i}"), "last_name": "Lastname-Example",
                    "email": email, "credit_limit": "AYag", "birth_date": 5000 + (i % 9000) as i64,
                    "created_at": 1_763_000_000_000i64 + i as i64, "updated_at": 1_763_900_000_123_456_789i64 + i as i64,
                    "customer_guid": "6F9619FF-8B86-D011-B42D-00C04FC964FF", "is_active": i % 7 != 0,
                })
            };
            let value = serde_json::json!({
                "before": row(&format!("old.address.{i}@example.com")),
                "after": row(&format!("new.address.{i}@example.org")),
                "source": {
                    "version": "3.0.0.Final", "connector": "sqlserver", "name": "server1",
                    "ts_ms": 1_763_900_000_000i64, "snapshot": "false", "db": "testDB", "sequence": null,
                    "ts_us": 1_763_900_000_000_000i64, "ts_ns": 1_763_900_000_000_000_000i64,
                    "schema": "dbo", "table": "customers",
                    "change_lsn": format!("0000002b:{:08x}:0002", i), "commit_lsn": format!("0000002b:{:08x}:0003", i),
                    "event_serial_no": 1
                },
                "op": "u", "ts_ms": 1_763_900_000_500i64, "transaction": null,
            });
            RawRecord {
                key: Some(format!(r#"{{"id":{id}}}"#).into_bytes()),
                value: Some(value.to_string().into_bytes()),
                headers: vec![],
                origin: Origin {
                    topic: "server1.testDB.dbo.customers".into(),
                    partition: 0,
                    offset: i as i64,
                },
            }
        })
        .collect()
}

/// The host's event as the SDK's (guest-side) type, field by field.
fn to_sdk(event: &ChangeEvent) -> sdk::ChangeEvent {
    use sluice::runtime::{Operation as HostOp, SnapshotMarker as HostSnap};
    let span = |s: Option<sluice::runtime::Span>| {
        s.map(|s| sdk::Span {
            start: s.start,
            len: s.len,
        })
    };
    sdk::ChangeEvent {
        op: match event.op {
            HostOp::Create => sdk::Operation::Create,
            HostOp::Update => sdk::Operation::Update,
            HostOp::Delete => sdk::Operation::Delete,
            HostOp::Read => sdk::Operation::Read,
            HostOp::Truncate => sdk::Operation::Truncate,
            HostOp::Message => sdk::Operation::Message,
        },
        value: event.value.clone(),
        before: span(event.before),
        after: span(event.after),
        source: sdk::SourceInfo {
            connector: event.source.connector.clone(),
            name: event.source.name.clone(),
            db: event.source.db.clone(),
            schema: event.source.schema.clone(),
            table: event.source.table.clone(),
            change_lsn: event.source.change_lsn.clone(),
            commit_lsn: event.source.commit_lsn.clone(),
            event_serial_no: event.source.event_serial_no,
            snapshot: match event.source.snapshot {
                HostSnap::None => sdk::SnapshotMarker::None,
                HostSnap::InProgress => sdk::SnapshotMarker::InProgress,
                HostSnap::First => sdk::SnapshotMarker::First,
                HostSnap::FirstInDataCollection => sdk::SnapshotMarker::FirstInDataCollection,
                HostSnap::LastInDataCollection => sdk::SnapshotMarker::LastInDataCollection,
                HostSnap::Last => sdk::SnapshotMarker::Last,
                HostSnap::Incremental => sdk::SnapshotMarker::Incremental,
            },
            ts_ms: event.source.ts_ms,
        },
        ts_ms: event.ts_ms,
        transaction: event.transaction.as_ref().map(|t| sdk::TransactionInfo {
            id: t.id.clone(),
            total_order: t.total_order,
            data_collection_order: t.data_collection_order,
        }),
        value_schema: span(event.value_schema),
        key: event.key.clone(),
        headers: event
            .headers
            .iter()
            .map(|h| sdk::Header {
                key: h.key.clone(),
                value: h.value.clone(),
            })
            .collect(),
        origin: sdk::Origin {
            topic: event.origin.topic.clone(),
            partition: event.origin.partition,
            offset: event.origin.offset,
        },
    }
}
