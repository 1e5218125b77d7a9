//! `customers-cdm` per guest language through the WebAssembly runtime (no I/O): Rust,
//! JavaScript (componentize-js: SpiderMonkey, interpreted) and Python (componentize-py:
//! CPython), beside the same Rust logic compiled natively, plus what each component costs
//! to load and start.
//!
//! `cargo bench -p sluice-tests --bench languages` (add `-- --quick` for a smoke run;
//! `-- --component <label>=<path>` adds another build of `customers-cdm` to the table).
//! Results and how to read them: BENCHMARKS.md, "Plugins in other languages".
//!
//! To show where a slow language spends its time, each component also runs the same
//! events marked `truncate`, which `customers-cdm` filters out before reading the row:
//! what remains is the boundary (lowering the event into the guest, lifting it into the
//! language's objects, one call of the plugin function, an empty outcome back). The
//! difference to the full run is the mapping itself (JSON parse, decoders, serialising).

use std::time::{Duration, Instant};

use sluice_runtime::debezium::{Decoded, decode};
use sluice_runtime::{ChangeEvent, Operation, PluginSpec, PluginWorker, Runtime, RuntimeOptions};
use sluice_sdk::IntoOutcome;
use sluice_sdk::bindings::sluice::transform::types as sdk;
use sluice_tests::components;

/// Distinct events; each measurement walks through them in batches.
const EVENTS: usize = 20_000;
const BATCH: usize = 256;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 1 } else { 3 };

    let events: Vec<ChangeEvent> = sluice_tests::synthetic_customer_events(EVENTS)
        .into_iter()
        .map(|raw| match decode(raw) {
            Ok(Decoded::Event(event)) => event,
            _ => panic!("synthetic events decode"),
        })
        .collect();
    let truncates: Vec<ChangeEvent> = events
        .iter()
        .cloned()
        .map(|mut event| {
            event.op = Operation::Truncate;
            event
        })
        .collect();

    let native = best_of(rounds, || run_native(&events));
    println!(
        "events: {EVENTS} distinct customers updates (~1 KB), batches of {BATCH}, best of {rounds} rounds"
    );
    println!();
    println!(
        "| customers-cdm | events/s | vs native | µs/event | boundary only (truncate) µs/event | mapping µs/event |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| native Rust (no wasm) | {native:.0} | 1.00 | {:.2} | | |",
        1e6 / native
    );
    let languages = [
        ("Rust", components::CUSTOMERS_CDM),
        ("JavaScript", components::CUSTOMERS_CDM_JS),
        ("Python", components::CUSTOMERS_CDM_PY),
    ];
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    // `--only <prefix>`: just the rows whose label starts with it, and no start-up table
    // (a quicker comparison of two builds of one language on a loaded machine).
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|at| args.get(at + 1).cloned());
    for (language, path) in languages
        .into_iter()
        .chain(extra_components())
        .filter(|(label, _)| only.as_ref().is_none_or(|prefix| label.starts_with(prefix)))
    {
        let plugin = runtime
            .load_file(spec(), std::path::Path::new(path))
            .expect("load");
        let mut worker = PluginWorker::new(plugin.instantiate().expect("instantiate"));
        let rate = best_of(rounds, || run_wasm(&mut worker, &events, 1));
        let boundary = best_of(rounds, || run_wasm(&mut worker, &truncates, 0));
        let (per_event, per_boundary) = (1e6 / rate, 1e6 / boundary);
        println!(
            "| {language} (wasm) | {rate:.0} | {:.2} | {per_event:.2} | {per_boundary:.2} | {:.2} |",
            rate / native,
            per_event - per_boundary
        );
    }
    if only.is_some() {
        return;
    }
    println!();
    println!("component size and start-up (ms, best of {rounds}):");
    println!();
    println!("| language | size | uncached compile | cached load | instantiate + init |");
    println!("|---|---:|---:|---:|---:|");
    for (language, path) in languages {
        let path = std::path::Path::new(path);
        let size = std::fs::metadata(path).map(|m| m.len()).expect("component");
        let (mut uncached, mut cached, mut instantiate) =
            (Duration::MAX, Duration::MAX, Duration::MAX);
        for _ in 0..rounds {
            let dir = tempfile::tempdir().expect("tempdir");
            let options = RuntimeOptions {
                cache_dir: Some(dir.path().to_owned()),
                ..RuntimeOptions::default()
            };
            let runtime = Runtime::new(options.clone()).expect("runtime");
            let started = Instant::now();
            runtime.load_file(spec(), path).expect("load");
            uncached = uncached.min(started.elapsed());
            let runtime = Runtime::new(options).expect("runtime");
            let started = Instant::now();
            let plugin = runtime.load_file(spec(), path).expect("load");
            cached = cached.min(started.elapsed());
            let started = Instant::now();
            plugin.instantiate().expect("instantiate");
            instantiate = instantiate.min(started.elapsed());
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {language} | {:.1} MB | {:.0} | {:.1} | {:.2} |",
            size as f64 / (1024.0 * 1024.0),
            ms(uncached),
            ms(cached),
            ms(instantiate)
        );
    }
}

/// `--component <label>=<path>` (repeatable): another build of `customers-cdm` measured
/// in the same run, e.g. one made with an earlier SDK to show what a change gained.
fn extra_components() -> Vec<(&'static str, &'static str)> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .zip(args.iter().skip(1))
        .filter(|(flag, _)| *flag == "--component")
        .map(|(_, value)| {
            let (label, path) = value.split_once('=').expect("--component <label>=<path>");
            // Leaked: a handful of strings for the life of the benchmark.
            let label: &'static str = Box::leak(label.to_owned().into_boxed_str());
            let path: &'static str = Box::leak(path.to_owned().into_boxed_str());
            (label, path)
        })
        .collect()
}

fn spec() -> PluginSpec {
    PluginSpec {
        name: "customers-cdm".to_owned(),
        version: "bench".to_owned(),
        config: vec![],
        // Deadlines stay on (their cost is part of the figure), but wide: a batch of 256
        // through an interpreter on a loaded machine outlasts the default.
        limits: sluice_runtime::PluginLimits {
            batch_deadline: Duration::from_secs(60),
            ..Default::default()
        },
    }
}

fn best_of(rounds: usize, mut measure: impl FnMut() -> Duration) -> f64 {
    let best = (0..rounds)
        .map(|_| measure())
        .min()
        .unwrap_or(Duration::MAX);
    EVENTS as f64 / best.as_secs_f64()
}

/// Runs every event through the worker; each must give `records_per_event` records.
fn run_wasm(
    worker: &mut PluginWorker,
    events: &[ChangeEvent],
    records_per_event: usize,
) -> Duration {
    let started = Instant::now();
    let mut records = 0usize;
    for chunk in events.chunks(BATCH) {
        for outcome in worker.transform(chunk) {
            match outcome {
                sluice_runtime::Outcome::Records(r) => records += r.len(),
                other => panic!("every event maps: {other:?}"),
            }
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(records, events.len() * records_per_event);
    elapsed
}

/// The same logic natively, on owned copies of the events as the guest receives them.
fn run_native(events: &[ChangeEvent]) -> Duration {
    let sdk_events: Vec<sdk::ChangeEvent> = events.iter().map(to_sdk).collect();
    // The default settings: what the component gets from an empty `[config]`.
    let settings = customers_cdm::Settings::default();
    let started = Instant::now();
    for chunk in sdk_events.chunks(BATCH) {
        let outcomes: Vec<sdk::EventOutcome> = chunk
            .iter()
            .cloned()
            .map(|e| {
                customers_cdm::customers_cdm(sluice_sdk::ChangeEvent::from_wit(e), &settings)
                    .into_outcome()
            })
            .collect();
        std::hint::black_box(outcomes);
    }
    started.elapsed()
}

/// The host's event as the SDK's (guest-side) type; the synthetic events carry no
/// transaction, headers or schema, and are all updates.
fn to_sdk(event: &ChangeEvent) -> sdk::ChangeEvent {
    let span = |s: Option<sluice_runtime::Span>| {
        s.map(|s| sdk::Span {
            start: s.start,
            len: s.len,
        })
    };
    assert!(event.transaction.is_none() && event.headers.is_empty());
    sdk::ChangeEvent {
        op: sdk::Operation::Update,
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
            snapshot: sdk::SnapshotMarker::None,
            ts_ms: event.source.ts_ms,
        },
        ts_ms: event.ts_ms,
        transaction: None,
        value_schema: span(event.value_schema),
        key: event.key.clone(),
        headers: vec![],
        origin: sdk::Origin {
            topic: event.origin.topic.clone(),
            partition: event.origin.partition,
            offset: event.origin.offset,
        },
    }
}
