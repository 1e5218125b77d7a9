//! Events per second through the WebAssembly runtime (no I/O), per plugin and batch size,
//! against the same `customers-cdm` logic compiled natively, measured in one run.
//!
//! `cargo bench -p sluice-tests --bench runtime` (add `-- --quick` for a smoke run).
//! Results and how to read them: BENCHMARKS.md.
//!
//! A second table compares the two ways row images could cross the boundary (JSON
//! text, as `wit/types.wit` chose, or typed columns) with the `boundary-probe` component.

use std::time::{Duration, Instant};

use sluice_runtime::debezium::{Decoded, decode};
use sluice_runtime::{ChangeEvent, PluginSpec, PluginWorker, Runtime, RuntimeOptions};
use sluice_sdk::IntoOutcome;
use sluice_sdk::bindings::sluice::transform::types as sdk;
use sluice_tests::components;

/// Distinct events; each measurement walks through them in batches.
const EVENTS: usize = 20_000;
const BATCH_SIZES: [usize; 4] = [1, 16, 256, 1024];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--rounds <n>`: more rounds for a loaded machine (the best of each is kept).
    let rounds = match args.iter().position(|a| a == "--rounds") {
        Some(at) => args
            .get(at + 1)
            .and_then(|n| n.parse().ok())
            .expect("--rounds <n>"),
        None if quick => 1,
        None => 5,
    };
    let raw = sluice_tests::synthetic_customer_events(EVENTS);
    let avg_bytes = raw
        .iter()
        .map(|r| r.value.as_ref().map_or(0, Vec::len))
        .sum::<usize>()
        / raw.len();

    let decode_all = || -> Vec<ChangeEvent> {
        raw.iter()
            .cloned()
            .map(|r| match decode(r) {
                Ok(Decoded::Event(e)) => e,
                _ => panic!("synthetic events decode"),
            })
            .collect()
    };
    let mut events = decode_all();
    let decode_rate = best_of(rounds, || {
        let started = Instant::now();
        events = decode_all();
        started.elapsed()
    });

    println!(
        "events: {EVENTS} distinct, {avg_bytes} bytes of Debezium JSON on average; best of {rounds} rounds"
    );
    println!(
        "host-side envelope decode (not included below; includes cloning the raw records): {:.0} events/s",
        decode_rate
    );
    println!();
    println!("| plugin | batch | events/s | vs native customers-cdm |");
    println!("|---|---:|---:|---:|");

    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    if profile_only(&runtime, &events) || levers(&runtime, &events, rounds) {
        return;
    }
    if args.iter().any(|a| a == "--inlining") {
        inlining_gain(&events, rounds);
        return;
    }
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
        let plugin = runtime
            .load_file(spec(name), std::path::Path::new(path))
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
    println!();
    boundary::compare(&events, rounds);
    println!();
    swap_cost(rounds);
    println!();
    deadline_cost(&events, rounds);
    println!();
    inlining_gain(&events, rounds);
}

/// The runtime's second engine (`RuntimeOptions::inlining_max_code_bytes`): the same
/// components compiled with and without Cranelift's inlining, batches of 256, the two
/// and native `customers-cdm` measured in turn each round (`-- --inlining` runs only
/// this table).
fn inlining_gain(events: &[ChangeEvent], rounds: usize) {
    println!(
        "small components compiled with inlining (the default) and without, batches of 256 (events/s, best of {rounds}, interleaved):"
    );
    println!();
    println!(
        "| plugin | without inlining | with inlining | with / without | without vs native | with vs native |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let sdk_events: Vec<sdk::ChangeEvent> = events.iter().map(to_sdk).collect();
    let mut native = f64::MIN;
    let runtime = |inlining_max_code_bytes: u64| {
        Runtime::new(RuntimeOptions {
            inlining_max_code_bytes,
            ..RuntimeOptions::default()
        })
        .expect("runtime")
    };
    let runtimes = [runtime(0), runtime(sluice_runtime::INLINING_MAX_CODE_BYTES)];
    for (name, path) in [
        ("customers-cdm", components::CUSTOMERS_CDM),
        ("passthrough", components::PASSTHROUGH),
    ] {
        let mut workers: Vec<PluginWorker> = runtimes
            .iter()
            .map(|runtime| {
                let plugin = runtime
                    .load_file(spec(name), std::path::Path::new(path))
                    .expect("load");
                PluginWorker::new(plugin.instantiate().expect("instantiate"))
            })
            .collect();
        let mut best = [f64::MIN; 2];
        for _ in 0..rounds {
            native = native.max(best_of(1, || run_native(&sdk_events, 256)));
            for (worker, best) in workers.iter_mut().zip(&mut best) {
                *best = best.max(best_of(1, || run_wasm(worker, events, 256)));
            }
        }
        // Only `customers-cdm` has a native build to compare with.
        let versus_native = |rate: f64| match name {
            "customers-cdm" => format!("{:.2}", rate / native),
            _ => String::new(),
        };
        println!(
            "| {name} | {:.0} | {:.0} | {:.2} | {} | {} |",
            best[0],
            best[1],
            best[1] / best[0],
            versus_native(best[0]),
            versus_native(best[1])
        );
    }
}

/// Throughput with CPU deadlines (epoch interruption) on and off, batches of 256. The
/// memory limiter is consulted only when a memory grows, so it is not measured here.
fn deadline_cost(events: &[ChangeEvent], rounds: usize) {
    println!(
        "the cost of the limits: CPU deadlines (epoch interruption) and the memory limiter, batches of 256 (events/s, best of {rounds}):"
    );
    println!();
    println!("| plugin | both on | deadlines off | limiter off | both off | both on / both off |");
    println!("|---|---:|---:|---:|---:|---:|");
    let runtime = |cpu_deadlines: bool, memory_limits: bool| {
        Runtime::new(RuntimeOptions {
            cpu_deadlines,
            memory_limits,
            ..RuntimeOptions::default()
        })
        .expect("runtime")
    };
    let runtimes = [
        runtime(true, true),
        runtime(false, true),
        runtime(true, false),
        runtime(false, false),
    ];
    for (name, path) in [
        ("customers-cdm", components::CUSTOMERS_CDM),
        ("passthrough", components::PASSTHROUGH),
    ] {
        let mut rates = Vec::new();
        for runtime in &runtimes {
            let plugin = runtime
                .load_file(spec(name), std::path::Path::new(path))
                .expect("load");
            let mut worker = PluginWorker::new(plugin.instantiate().expect("instantiate"));
            rates.push(best_of(rounds, || run_wasm(&mut worker, events, 256)));
        }
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} |",
            rates[0],
            rates[1],
            rates[2],
            rates[3],
            rates[0] / rates[3]
        );
    }
}

/// What a hot reload pays before a new version serves: load (compile, or read the
/// compile cache) + instantiate + `init`. The reload's 300 ms debounce comes on top.
fn swap_cost(rounds: usize) {
    println!("plugin load + instantiate + init, the work of a hot swap (ms, best of {rounds}):");
    println!();
    println!("| component | size | uncached compile | cached load | instantiate + init |");
    println!("|---|---:|---:|---:|---:|");
    for (name, path) in [
        ("passthrough", components::PASSTHROUGH),
        ("customers-cdm", components::CUSTOMERS_CDM),
        ("poison", components::POISON),
    ] {
        let path = std::path::Path::new(path);
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let spec = || spec(name);
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
            "| {name} | {} KB | {:.1} | {:.2} | {:.2} |",
            size / 1024,
            ms(uncached),
            ms(cached),
            ms(instantiate)
        );
    }
}

/// `--profile <plugin>`: only that plugin, batches of 256, many rounds (for `perf record`).
fn profile_only(runtime: &Runtime, events: &[ChangeEvent]) -> bool {
    let args: Vec<String> = std::env::args().collect();
    let Some(at) = args.iter().position(|a| a == "--profile") else {
        return false;
    };
    let name = args
        .get(at + 1)
        .map(String::as_str)
        .unwrap_or("passthrough");
    let path = match name {
        "customers-cdm" => components::CUSTOMERS_CDM,
        _ => components::PASSTHROUGH,
    };
    let spec = PluginSpec {
        name: name.to_owned(),
        version: "profile".to_owned(),
        config: vec![],
        limits: Default::default(),
    };
    let plugin = runtime
        .load_file(spec, std::path::Path::new(path))
        .expect("load");
    let mut worker = PluginWorker::new(plugin.instantiate().expect("instantiate"));
    let rate = best_of(20, || run_wasm(&mut worker, events, 256));
    println!("{name}: {rate:.0} events/s");
    true
}

/// `--levers <dir>`: the guest-side build levers, one table. Each subdirectory of `<dir>`
/// holds `customers_cdm.wasm` and `passthrough.wasm` built one way
/// (`tests/benches/plugin-levers.sh` makes them); each is measured at batches of 256
/// against the native `customers-cdm` of the same run, rounds interleaved so that load
/// drifting on a shared machine hits every variant alike.
fn levers(runtime: &Runtime, events: &[ChangeEvent], rounds: usize) -> bool {
    let args: Vec<String> = std::env::args().collect();
    let Some(at) = args.iter().position(|a| a == "--levers") else {
        return false;
    };
    let dir = std::path::PathBuf::from(args.get(at + 1).expect("--levers <dir>"));
    let mut variants: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.join("customers_cdm.wasm").is_file())
        .collect();
    variants.sort();
    let load = |path: std::path::PathBuf, name: &str| {
        let plugin = runtime.load_file(spec(name), &path).expect("load");
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        (
            PluginWorker::new(plugin.instantiate().expect("instantiate")),
            size,
        )
    };
    let mut workers: Vec<_> = variants
        .iter()
        .map(|variant| {
            (
                load(variant.join("customers_cdm.wasm"), "customers-cdm"),
                load(variant.join("passthrough.wasm"), "passthrough"),
            )
        })
        .collect();
    let sdk_events: Vec<sdk::ChangeEvent> = events.iter().map(to_sdk).collect();
    let mut native = Duration::MAX;
    let mut best = vec![(Duration::MAX, Duration::MAX); variants.len()];
    for _ in 0..rounds {
        native = native.min(run_native(&sdk_events, 256));
        for ((cdm, passthrough), best) in workers.iter_mut().zip(&mut best) {
            best.0 = best.0.min(run_wasm(&mut cdm.0, events, 256));
            best.1 = best.1.min(run_wasm(&mut passthrough.0, events, 256));
        }
    }
    let rate = |d: Duration| EVENTS as f64 / d.as_secs_f64();
    println!("native customers-cdm: {:.0} events/s", rate(native));
    println!();
    println!(
        "| variant | customers-cdm events/s | vs native | passthrough events/s | customers-cdm size | passthrough size |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for ((variant, (cdm, passthrough)), (cdm_time, passthrough_time)) in
        variants.iter().zip(&workers).zip(&best)
    {
        let name = variant
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        println!(
            "| {} | {:.0} | {:.2} | {:.0} | {} KB | {} KB |",
            name.unwrap_or_default(),
            rate(*cdm_time),
            rate(*cdm_time) / rate(native),
            rate(*passthrough_time),
            cdm.1 / 1024,
            passthrough.1 / 1024
        );
    }
    true
}

/// A plugin spec with default limits and no config.
fn spec(name: &str) -> PluginSpec {
    PluginSpec {
        name: name.to_owned(),
        version: "bench".to_owned(),
        config: vec![],
        limits: Default::default(),
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
    // The default settings: what the component gets from an empty `[config]`.
    let settings = customers_cdm::Settings::default();
    let started = Instant::now();
    let mut outputs = 0usize;
    for chunk in events.chunks(batch) {
        let owned: Vec<sdk::ChangeEvent> = chunk.to_vec();
        let outcomes: Vec<sdk::EventOutcome> = owned
            .into_iter()
            .map(|e| {
                customers_cdm::customers_cdm(sluice_sdk::ChangeEvent::from_wit(e), &settings)
                    .into_outcome()
            })
            .collect();
        outputs += outcomes.len();
        std::hint::black_box(outcomes);
    }
    let elapsed = started.elapsed();
    assert_eq!(outputs, events.len());
    elapsed
}

/// The host's event as the SDK's (guest-side) type, field by field.
fn to_sdk(event: &ChangeEvent) -> sdk::ChangeEvent {
    use sluice_runtime::{Operation as HostOp, SnapshotMarker as HostSnap};
    let span = |s: Option<sluice_runtime::Span>| {
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

/// JSON text vs typed columns across the boundary, same rows, same guest struct.
mod boundary {
    use std::time::{Duration, Instant};

    use sluice_runtime::ChangeEvent;
    use sluice_tests::components;
    use wasmtime::component::{Component, Linker, ResourceTable};
    use wasmtime::{Engine, Store};
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

    wasmtime::component::bindgen!({ path: "plugins/boundary-probe/wit", world: "probe" });
    use exports::sluice::probe::rows::{Cell, Column};

    struct State {
        wasi: WasiCtx,
        table: ResourceTable,
    }

    impl WasiView for State {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.wasi,
                table: &mut self.table,
            }
        }
    }

    const BATCH: usize = 256;

    pub fn compare(events: &[ChangeEvent], rounds: usize) {
        let engine = Engine::default();
        let component =
            Component::from_file(&engine, components::BOUNDARY_PROBE).expect("probe component");
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("wasi");
        let mut store = Store::new(
            &engine,
            State {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        let probe = Probe::instantiate(&mut store, &component, &linker).expect("instantiate");
        let rows = probe.sluice_probe_rows();

        let after = |e: &ChangeEvent| {
            let span = e.after.expect("after");
            e.value[span.start as usize..(span.start + span.len) as usize].to_vec()
        };
        let (mut json_prep, mut json_call, mut typed_prep, mut typed_call) =
            (Duration::MAX, Duration::MAX, Duration::MAX, Duration::MAX);
        let (mut json_sum, mut typed_sum) = (0u64, 0u64);
        let (mut span_prep, mut span_call, mut span_sum) = (Duration::MAX, Duration::MAX, 0u64);
        for _ in 0..rounds {
            let (mut prep, mut call) = (Duration::ZERO, Duration::ZERO);
            let mut sum = 0u64;
            for chunk in events.chunks(BATCH) {
                let started = Instant::now();
                let batch: Vec<Vec<u8>> = chunk.iter().map(after).collect();
                prep += started.elapsed();
                let started = Instant::now();
                sum = sum.wrapping_add(rows.call_json_rows(&mut store, &batch).expect("call"));
                call += started.elapsed();
            }
            json_prep = json_prep.min(prep);
            json_call = json_call.min(call);
            json_sum = sum;

            let (mut prep, mut call) = (Duration::ZERO, Duration::ZERO);
            let mut sum = 0u64;
            for chunk in events.chunks(BATCH) {
                let started = Instant::now();
                let mut data = Vec::new();
                let mut spans = Vec::with_capacity(chunk.len());
                for event in chunk {
                    let row = after(event);
                    spans.push((data.len() as u32, row.len() as u32));
                    data.extend_from_slice(&row);
                }
                prep += started.elapsed();
                let started = Instant::now();
                sum = sum.wrapping_add(
                    rows.call_span_rows(&mut store, &data, &spans)
                        .expect("call"),
                );
                call += started.elapsed();
            }
            span_prep = span_prep.min(prep);
            span_call = span_call.min(call);
            span_sum = sum;

            let (mut prep, mut call) = (Duration::ZERO, Duration::ZERO);
            let mut sum = 0u64;
            for chunk in events.chunks(BATCH) {
                let started = Instant::now();
                let batch: Vec<Vec<Column>> = chunk.iter().map(|e| columns(&after(e))).collect();
                prep += started.elapsed();
                let started = Instant::now();
                sum = sum.wrapping_add(rows.call_typed_rows(&mut store, &batch).expect("call"));
                call += started.elapsed();
            }
            typed_prep = typed_prep.min(prep);
            typed_call = typed_call.min(call);
            typed_sum = sum;
        }
        assert_eq!(
            json_sum, typed_sum,
            "both representations carry the same rows"
        );
        assert_eq!(
            json_sum, span_sum,
            "both representations carry the same rows"
        );
        let per_event = |d: Duration| d.as_nanos() as f64 / events.len() as f64;
        println!(
            "row images across the boundary, batches of {BATCH} (ns per event, best of {rounds}):"
        );
        println!();
        println!("| representation | host prepares | boundary + guest maps to struct | total |");
        println!("|---|---:|---:|---:|");
        for (name, prep, call) in [
            ("JSON, one list<u8> per row", json_prep, json_call),
            ("JSON, spans of one buffer per batch", span_prep, span_call),
            ("typed columns", typed_prep, typed_call),
        ] {
            println!(
                "| {name} | {:.0} | {:.0} | {:.0} |",
                per_event(prep),
                per_event(call),
                per_event(prep + call)
            );
        }
    }

    /// What a host would do to send typed columns: parse the row (a DOM) and convert.
    fn columns(row: &[u8]) -> Vec<Column> {
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(row).expect("row object");
        object
            .into_iter()
            .map(|(name, value)| Column {
                name,
                value: match value {
                    serde_json::Value::Null => Cell::Null,
                    serde_json::Value::Bool(b) => Cell::Boolean(b),
                    serde_json::Value::Number(n) => match n.as_i64() {
                        Some(i) => Cell::Integer(i),
                        None => Cell::Float(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    serde_json::Value::String(s) => Cell::Text(s),
                    other => Cell::Text(other.to_string()),
                },
            })
            .collect()
    }
}
