//! Lanes across cores: one sluice process (this one) running K lanes of the same plugin,
//! each lane reading the same file of Debezium `customers` events from the start, file
//! sink to `/dev/null`; total events/s for each K, against K = 1 in the same run. Also
//! the plugin's runtime-only rate (its component called directly, no I/O, no decode) in
//! the same run, so a lane's own overhead shows as the ratio lane(1) / runtime-only, and
//! the process's resident memory per lane.
//!
//! `cargo bench -p sluice-tests --bench lanes` (1 and 2 lanes, 100,000 events per lane);
//! `-- --lanes 1,2,4,8,16` for a bigger machine, `-- --quick` for a smoke run, `--rounds N`
//! (best of N, default 3), `--only <plugin>` for one plugin's rows; `--stages` for the
//! CPU per event of a lane's JSON stages instead (decoding the envelope, the file sink's
//! line, and the JSON check of each by `json_scan` against `serde_json` in the same run).
//! Results and how to read them: BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice::config::{Config, PluginConfig, SinkConfig, SourceConfig};
use sluice_core::topics::TopicPattern;
use sluice_pipeline::pipeline::PipelineSettings;
use sluice_pipeline::sink::file::FileSinkSettings;
use sluice_pipeline::source::file::FileSourceSettings;
use sluice_runtime::debezium::{Decoded, decode};
use sluice_runtime::{ChangeEvent, PluginSpec, PluginWorker, Runtime, RuntimeOptions};
use sluice_tests::components;

const BATCH: usize = 256;

/// A contender: the plugin every lane runs, and its `[plugin.config]`.
struct Plugin {
    name: &'static str,
    path: &'static str,
    config: &'static [(&'static str, &'static str)],
}

const PLUGINS: [Plugin; 3] = [
    Plugin {
        name: "customers-cdm",
        path: components::CUSTOMERS_CDM,
        config: &[],
    },
    Plugin {
        name: "passthrough",
        path: components::PASSTHROUGH,
        config: &[],
    },
    // Every event dropped: no output at all, so what is left is source, decode and plugin.
    Plugin {
        name: "drop-all",
        path: components::ROUTE_BY_TABLE,
        config: &[("drop", "customers")],
    },
];

/// The plugin's spec under `name`, with its configuration.
fn spec(plugin: &Plugin, name: String) -> PluginSpec {
    PluginSpec {
        name,
        version: "1.0.0".to_owned(),
        config: plugin
            .config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        limits: Default::default(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|at| args.get(at + 1))
            .cloned()
    };
    let lanes: Vec<usize> = value_of("--lanes").map_or(vec![1, 2], |list| {
        list.split(',')
            .map(|n| n.parse().expect("--lanes 1,2,4"))
            .collect()
    });
    let rounds: usize = value_of("--rounds").map_or(if quick { 1 } else { 3 }, |n| {
        n.parse().expect("--rounds <n>")
    });
    let events = if quick { 10_000 } else { 100_000 };

    let dir = tempfile::tempdir().expect("tempdir");
    let records = sluice_tests::synthetic_customer_events(events);
    if args.iter().any(|a| a == "--stages") {
        stage_costs(&records, rounds);
        return;
    }
    let input = dir.path().join("customers.jsonl");
    let mut text = String::new();
    for record in &records {
        // The file source's keyed form (its headers would be an object; there are none).
        let utf8 = |bytes: &Option<Vec<u8>>| {
            String::from_utf8(bytes.clone().expect("present")).expect("UTF-8 JSON")
        };
        text.push_str(&format!(
            r#"{{"topic":"{}","key":{},"value":{}}}"#,
            record.origin.topic,
            utf8(&record.key),
            utf8(&record.value)
        ));
        text.push('\n');
    }
    std::fs::write(&input, text).expect("input written");
    let cache = dir.path().join("cache");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{events} events per lane ({} B of Debezium JSON each on average), batches of {BATCH}, file sink to /dev/null; {cores} cores; best of {rounds}",
        records
            .iter()
            .map(|r| r.value.as_ref().map_or(0, Vec::len))
            .sum::<usize>()
            / events
    );
    println!();
    println!(
        "| plugin | runtime only (events/s) | lanes | events/s | vs 1 lane | ÷ min(lanes, cores) | 1 lane vs runtime only | RSS growth per lane |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let decoded: Vec<ChangeEvent> = records
        .iter()
        .cloned()
        .map(|r| match decode(r) {
            Ok(Decoded::Event(event)) => event,
            _ => panic!("synthetic events decode"),
        })
        .collect();
    // `--only <plugin>`: one plugin's rows.
    let only = value_of("--only");
    for plugin in PLUGINS
        .iter()
        .filter(|p| only.as_deref().is_none_or(|name| name == p.name))
    {
        let runtime_only = runtime_only_rate(plugin, &decoded, rounds);
        // Fills the compile cache, so the runs below do not count compiling.
        run_lanes(plugin, 1, &input, &cache);
        let mut one_lane = 0.0;
        for &count in &lanes {
            let mut best = Duration::MAX;
            let mut growth = 0;
            for _ in 0..rounds {
                let (elapsed, rss) = run_lanes(plugin, count, &input, &cache);
                best = best.min(elapsed);
                growth = growth.max(rss);
            }
            let rate = (events * count) as f64 / best.as_secs_f64();
            if count == lanes[0] {
                one_lane = rate / count as f64;
            }
            let scaling = rate / one_lane;
            println!(
                "| {} | {runtime_only:.0} | {count} | {rate:.0} | {scaling:.2}× | {:.2} | {:.2}× | {:.1} MiB |",
                plugin.name,
                scaling / count.min(cores) as f64,
                one_lane / runtime_only,
                growth as f64 / count as f64 / (1024.0 * 1024.0),
            );
        }
    }
}

/// Runs `count` lanes of `plugin` over `input` to its end; returns the time taken and how
/// far the process's resident memory grew over the run at most.
fn run_lanes(plugin: &Plugin, count: usize, input: &Path, cache: &Path) -> (Duration, u64) {
    let plugins = (0..count)
        .map(|lane| PluginConfig {
            spec: spec(plugin, format!("{}-{lane}", plugin.name)),
            team: None,
            path: PathBuf::from(plugin.path),
            inputs: vec![TopicPattern::parse("*").expect("pattern")],
            outputs: vec![TopicPattern::parse("*").expect("pattern")],
            role: Default::default(),
            parallelism: 1,
        })
        .collect();
    let config = Config {
        source: SourceConfig::File(FileSourceSettings {
            path: Some(input.to_owned()),
            topic: None,
        }),
        sink: SinkConfig::File(FileSinkSettings {
            path: Some(PathBuf::from("/dev/null")),
        }),
        delivery: Default::default(),
        pipeline: PipelineSettings {
            batch_size: BATCH,
            lineage_headers: true,
            ..PipelineSettings::default()
        },
        isolation: Default::default(),
        instance: None,
        runtime: RuntimeOptions {
            cache_dir: Some(cache.to_owned()),
            ..RuntimeOptions::default()
        },
        plugins,
        plugins_dir: None,
        admin_listen: None,
        capture: None,
    };
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let before = resident_bytes();
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(resident_bytes());
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let started = Instant::now();
    let stats = tokio
        .block_on(sluice::app::run(config, std::future::pending()))
        .expect("sluice runs");
    let elapsed = started.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().expect("sampler");
    assert_eq!(
        stats.records_in as usize,
        count
            * std::fs::read_to_string(input)
                .expect("input")
                .lines()
                .count(),
        "every lane read every event"
    );
    assert_eq!(
        (stats.malformed, stats.dead_lettered),
        (0, 0),
        "every event reached the plugin"
    );
    (elapsed, peak.saturating_sub(before))
}

/// The plugin's component called directly on decoded events, batches of [`BATCH`].
fn runtime_only_rate(plugin: &Plugin, events: &[ChangeEvent], rounds: usize) -> f64 {
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let spec = spec(plugin, plugin.name.to_owned());
    let loaded = runtime
        .load_file(spec, Path::new(plugin.path))
        .expect("load");
    let mut worker = PluginWorker::new(loaded.instantiate().expect("instantiate"));
    let best = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            for chunk in events.chunks(BATCH) {
                std::hint::black_box(worker.transform(chunk));
            }
            started.elapsed()
        })
        .min()
        .unwrap_or(Duration::MAX);
    events.len() as f64 / best.as_secs_f64()
}

/// The CPU per event of a lane's JSON stages, single-threaded, best of `rounds`, in
/// batches of [`BATCH`] (records cloned per batch outside the clock, as a source makes
/// them): the decoder (the envelope checked and read, spans found), the file sink's
/// line for a `passthrough` output (the value checked as JSON, six lineage headers), and
/// the JSON check alone by `json_scan` and by `serde_json` (`&RawValue`, as the sink and
/// decoder read values before `json_scan`), so their ratio comes from the same run.
fn stage_costs(records: &[sluice_core::RawRecord], rounds: usize) {
    let per_event = |time: Duration| time.as_nanos() as f64 / records.len() as f64;
    let best =
        |stage: &dyn Fn() -> Duration| (0..rounds).map(|_| stage()).min().unwrap_or_default();
    let values: Vec<&str> = records
        .iter()
        .map(|r| std::str::from_utf8(r.value.as_deref().expect("value")).expect("UTF-8"))
        .collect();
    let decode_time = best(&|| {
        let mut spent = Duration::ZERO;
        for chunk in records.chunks(BATCH) {
            let batch = chunk.to_vec();
            let started = Instant::now();
            let decoded: Vec<_> = batch.into_iter().map(decode).collect();
            spent += started.elapsed();
            assert!(decoded.iter().all(Result::is_ok), "synthetic events decode");
        }
        spent
    });
    let outputs: Vec<sluice_core::OutputRecord> = records
        .iter()
        .map(|r| sluice_core::OutputRecord {
            timestamp: None,
            topic: format!("passthrough.{}", r.origin.topic),
            key: r.key.clone(),
            value: r.value.clone(),
            headers: [
                ("sluice.source.topic", r.origin.topic.clone()),
                ("sluice.source.partition", r.origin.partition.to_string()),
                ("sluice.source.offset", r.origin.offset.to_string()),
                ("sluice.plugin", "passthrough".to_owned()),
                ("sluice.plugin.version", "bench".to_owned()),
                ("sluice.plugin.sha256", "9f".repeat(32)),
            ]
            .into_iter()
            .map(|(key, value)| sluice_core::Header {
                key: key.into(),
                value: Some(value.into_bytes()),
            })
            .collect(),
        })
        .collect();
    let line_time = best(&|| {
        let mut buffer = Vec::with_capacity(BATCH * 2048);
        let started = Instant::now();
        for chunk in outputs.chunks(BATCH) {
            buffer.clear();
            for record in chunk {
                sluice_core::json_lines::write_json_line(record, &mut buffer);
                buffer.push(b'\n');
            }
            std::hint::black_box(&buffer);
        }
        started.elapsed()
    });
    let scanner_time = best(&|| {
        let started = Instant::now();
        for value in &values {
            assert!(sluice_core::json_scan::value_span(value).is_some());
        }
        started.elapsed()
    });
    let serde_time = best(&|| {
        let started = Instant::now();
        for value in &values {
            assert!(serde_json::from_str::<&serde_json::value::RawValue>(value).is_ok());
        }
        started.elapsed()
    });
    println!(
        "{} events ({} B of Debezium JSON each on average), 1 thread, best of {rounds}",
        records.len(),
        values.iter().map(|v| v.len()).sum::<usize>() / values.len()
    );
    println!();
    println!("| stage | ns per event |");
    println!("|---|---:|");
    println!(
        "| decode (envelope checked and read) | {:.0} |",
        per_event(decode_time)
    );
    println!(
        "| file sink line (passthrough output, 6 lineage headers) | {:.0} |",
        per_event(line_time)
    );
    println!(
        "| JSON check, `serde_json` (`&RawValue`) | {:.0} |",
        per_event(serde_time)
    );
    println!(
        "| JSON check, `json_scan` | {:.0} ({:.2}× serde_json's time) |",
        per_event(scanner_time),
        scanner_time.as_secs_f64() / serde_time.as_secs_f64()
    );
}

/// This process's resident set, in bytes (Linux).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}
