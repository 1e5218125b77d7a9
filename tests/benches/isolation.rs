//! Isolation between teams, measured: the throughput of a well-behaved plugin
//! (`customers-cdm`) in its lane, alone and then beside a hostile plugin of another team
//! in a lane of its own, in one run. Hostile plugins (`tests/plugins/poison`), each on
//! every event: a loop to the CPU deadline, a memory bomb past the cap, a panic,
//! recursion past the stack limit, a write to a forbidden topic, a record past the size
//! cap, attempts to reach files, network, environment and clocks. The headline is the ratio
//! "with the hostile plugin" / "alone" for the well-behaved plugin's events/s.
//!
//! `cargo bench -p sluice-tests --bench isolation` (add `-- --quick` for a smoke run).
//! Results and how to read them: BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_core::RawRecord;
use sluice_core::sink::{Sink, SinkError};
use sluice_core::source::{Source, SourceError};
use sluice_core::topics::TopicPattern;
use sluice_core::{Origin, OutputRecord};
use sluice_pipeline::lanes::{self, Endpoints, Isolation, LaneError};
use sluice_pipeline::pipeline::{PipelineSettings, Route, Routes};
use sluice_runtime::{PluginSpec, PluginThread, PluginWorker, Runtime, RuntimeOptions};
use sluice_tests::components;

const GOOD: &str = "customers-cdm";

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (events, rounds) = if quick { (20_000, 1) } else { (100_000, 5) };
    let good_events = Arc::new(sluice_tests::synthetic_customer_events(events));
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let good = route(
        &runtime,
        GOOD,
        components::CUSTOMERS_CDM,
        &[],
        &["server1.testDB.dbo.customers"],
        &["cdm.customer"],
    );
    let hostile: [(&str, &str, serde_json::Value); 7] = [
        (
            "spin",
            "loops until the CPU deadline (5 s per batch, the default)",
            serde_json::json!({"spin": true}),
        ),
        (
            "bomb",
            "allocates past its 64 MiB memory cap",
            serde_json::json!({"grow_mib": 256}),
        ),
        (
            "panic",
            "panics (traps) on every event",
            serde_json::json!({"panic": true}),
        ),
        (
            "recurse",
            "recurses past the stack limit",
            serde_json::json!({"recurse": 100_000_000}),
        ),
        (
            "forbidden",
            "writes to a topic outside its allowed outputs",
            serde_json::json!({"forbidden": true}),
        ),
        (
            "huge",
            "returns a 2 MiB record (over its 1 MiB cap) for every event",
            serde_json::json!({"huge_mib": 2}),
        ),
        (
            "sandbox",
            "tries the filesystem, network, environment and clocks on every event",
            serde_json::json!({"sandbox": true}),
        ),
    ];
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    println!(
        "well-behaved plugin: {GOOD} over {events} events of ~1 KB; one lane per plugin; batch 256; {rounds} rounds, each measuring {GOOD} alone and then beside the hostile plugin; the ratio is the median of the rounds' ratios"
    );
    println!();
    println!(
        "| beside | what the other team's plugin does | {GOOD} alone, events/s | beside it, events/s | ratio | records the hostile lane published meanwhile (dead letters included) |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    let no_hostile = Arc::new(Vec::new());
    for (name, what, fields) in hostile {
        let plugin = route(
            &runtime,
            name,
            components::POISON,
            &[],
            &["hostile"],
            &["out"],
        );
        let inputs = Arc::new(hostile_events(fields, 4096));
        let mut alone = Vec::new();
        let mut beside = Vec::new();
        let mut dead = 0;
        for _ in 0..rounds {
            alone.push(
                tokio
                    .block_on(measure(&good, None, &good_events, &no_hostile))
                    .0,
            );
            let (seconds, dead_now) =
                tokio.block_on(measure(&good, Some(&plugin), &good_events, &inputs));
            beside.push(seconds);
            dead = dead_now;
        }
        let mut ratios: Vec<f64> = alone.iter().zip(&beside).map(|(a, b)| a / b).collect();
        ratios.sort_by(f64::total_cmp);
        let best =
            |times: &[f64]| events as f64 / times.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "| {name} | {what} | {:.0} | {:.0} | {:.2}× | {dead} |",
            best(&alone),
            best(&beside),
            ratios[ratios.len() / 2]
        );
    }
}

/// Runs the good plugin's lane over all `good_events` (and, if given, the hostile
/// plugin's lane over endless `hostile_events`); returns the seconds the good lane took
/// and how many events the hostile lane dead-lettered meanwhile.
async fn measure(
    good: &Arc<Route>,
    hostile: Option<&Arc<Route>>,
    good_events: &Arc<Vec<RawRecord>>,
    hostile_events: &Arc<Vec<RawRecord>>,
) -> (f64, u64) {
    let mut table = vec![Arc::clone(good)];
    table.extend(hostile.cloned());
    let table: Routes = Arc::new(table);
    let (_keep, table) = tokio::sync::watch::channel(table);
    let (done, finished) = tokio::sync::oneshot::channel();
    let dead = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let endpoints = Arc::new(BenchEndpoints {
        good: Arc::clone(good_events),
        hostile: Arc::clone(hostile_events),
        done: std::sync::Mutex::new(Some(done)),
        dead: Arc::clone(&dead),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(lanes::run(
        endpoints,
        table,
        Isolation::PerPlugin,
        PipelineSettings::default(),
        None,
        async move {
            let _ = stopped.await;
        },
    ));
    let seconds = match finished.await {
        Ok(elapsed) => {
            let elapsed: Duration = elapsed;
            elapsed.as_secs_f64()
        }
        Err(_) => panic!("the good lane never finished"),
    };
    let dead = dead.load(std::sync::atomic::Ordering::Relaxed);
    let _ = stop.send(());
    run.await.expect("lanes task").expect("lanes run");
    (seconds, dead)
}

fn route(
    runtime: &Runtime,
    name: &str,
    component: &str,
    config: &[(&str, &str)],
    inputs: &[&str],
    outputs: &[&str],
) -> Arc<Route> {
    let spec = PluginSpec {
        name: name.to_owned(),
        version: "1.0.0".to_owned(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        limits: Default::default(),
    };
    let loaded = runtime
        .load_file(spec, std::path::Path::new(component))
        .expect("plugin loads");
    let worker = PluginWorker::new(loaded.instantiate().expect("instantiates"));
    let pattern = |p: &&str| TopicPattern::parse(p).expect("pattern");
    Arc::new(Route::new(
        PluginThread::spawn(worker).expect("thread"),
        inputs.iter().map(pattern).collect(),
        outputs.iter().map(pattern).collect(),
        Default::default(),
    ))
}

fn hostile_events(fields: serde_json::Value, count: usize) -> Vec<RawRecord> {
    (0..count)
        .map(|i| {
            let mut after = fields.clone();
            after["id"] = serde_json::json!(i);
            let value = serde_json::json!({
                "before": null, "after": after, "op": "c", "ts_ms": 1,
                "source": {"connector": "sqlserver", "name": "s", "db": "d", "schema": "dbo", "table": "t", "snapshot": "false"},
            });
            RawRecord {
                timestamp: None,
                key: Some(format!(r#"{{"id":{i}}}"#).into_bytes()),
                value: Some(value.to_string().into_bytes()),
                headers: vec![],
                origin: Origin {
                    topic: "hostile".into(),
                    partition: 0,
                    offset: i as i64,
                },
                unreadable: None,
            }
        })
        .collect()
}

/// The good lane reads its events once; the hostile lane cycles through its own forever.
struct BenchEndpoints {
    good: Arc<Vec<RawRecord>>,
    hostile: Arc<Vec<RawRecord>>,
    done: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<Duration>>>,
    dead: Arc<std::sync::atomic::AtomicU64>,
}

struct MemorySource {
    records: Arc<Vec<RawRecord>>,
    next: usize,
    endless: bool,
}

impl Source for MemorySource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<RawRecord>>, SourceError> {
        if self.next >= self.records.len() {
            if !self.endless || self.records.is_empty() {
                return Ok(None);
            }
            self.next = 0;
        }
        let end = (self.next + max).min(self.records.len());
        let batch = self.records[self.next..end].to_vec();
        self.next = end;
        Ok(Some(batch))
    }

    async fn commit(&mut self, _last: &[Origin]) -> Result<(), SourceError> {
        Ok(())
    }
}

/// Counts what a lane publishes; the good lane reports the time its last record arrived.
struct CountingSink {
    expected: Option<usize>,
    seen: usize,
    started: Instant,
    done: Option<tokio::sync::oneshot::Sender<Duration>>,
    dead: Arc<std::sync::atomic::AtomicU64>,
}

impl Sink for CountingSink {
    async fn send(&mut self, records: Vec<OutputRecord>) -> Result<(), SinkError> {
        self.seen += records.len();
        if self.expected.is_none() {
            self.dead
                .fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        if self.expected.is_some_and(|n| self.seen >= n)
            && let Some(done) = self.done.take()
        {
            let _ = done.send(self.started.elapsed());
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

impl Endpoints for BenchEndpoints {
    type Source = MemorySource;
    type Sink = CountingSink;

    async fn open(&self, lane: &str) -> Result<(MemorySource, CountingSink), LaneError> {
        let good = lane == GOOD;
        let source = MemorySource {
            records: Arc::clone(if good { &self.good } else { &self.hostile }),
            next: 0,
            endless: !good,
        };
        let sink = CountingSink {
            expected: good.then_some(self.good.len()),
            seen: 0,
            started: Instant::now(),
            done: if good {
                self.done.lock().expect("lock").take()
            } else {
                None
            },
            dead: Arc::clone(&self.dead),
        };
        Ok((source, sink))
    }
}
