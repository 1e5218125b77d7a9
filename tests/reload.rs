//! Hot reload under a continuous stream: versions swapped 20 times, every event out
//! exactly once and processed by the version in service when its batch began; broken
//! drop-ins refused while the old version keeps serving.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_core::OutputRecord;
use sluice_pipeline::pipeline::{Pipeline, PipelineSettings};
use sluice_pipeline::reload::Reloader;
use sluice_pipeline::source::file::FileSource;
use sluice_runtime::{Runtime, RuntimeOptions};
use sluice_tests::components;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::support::create_event;

/// Writes a manifest for the `stamp` plugin the way a deploy tool should: to a temporary
/// name, then renamed into place.
fn deploy_stamp(dir: &Path, stamp: &str) {
    let manifest = format!(
        "name = \"stamp\"\nversion = \"1.0.{stamp}\"\nteam = \"crm\"\ninputs = [\"in\"]\noutputs = [\"out\"]\n[config]\nstamp = \"{stamp}\"\n"
    );
    let tmp = dir.join(".stamp.toml.tmp");
    std::fs::write(&tmp, manifest).expect("write manifest");
    std::fs::rename(&tmp, dir.join("stamp.toml")).expect("rename into place");
}

/// A sink that forwards every published record with the number of its batch.
struct BatchSink(mpsc::UnboundedSender<(u64, OutputRecord)>, u64);

impl sluice_core::sink::Sink for BatchSink {
    async fn send(
        &mut self,
        records: Vec<OutputRecord>,
    ) -> Result<(), sluice_core::sink::SinkError> {
        self.1 += 1;
        for record in records {
            let _ = self.0.send((self.1, record));
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), sluice_core::sink::SinkError> {
        Ok(())
    }
}

fn stamp_of(record: &OutputRecord) -> (i64, String) {
    let value: Value =
        serde_json::from_slice(record.value.as_deref().expect("value")).expect("JSON");
    (
        value["id"].as_i64().expect("id"),
        value["stamp"].as_str().expect("stamp").to_owned(),
    )
}

#[test]
fn twenty_swaps_under_a_stream_lose_and_repeat_nothing() {
    let runtime_tokio = tokio::runtime::Runtime::new().expect("tokio");
    runtime_tokio.block_on(async {
        let plugins = tempfile::tempdir().expect("tempdir");
        let team = plugins.path().join("crm");
        std::fs::create_dir(&team).expect("team dir");
        std::fs::copy(components::STAMP, team.join("stamp.wasm")).expect("component");
        deploy_stamp(&team, "0");

        let cache = tempfile::tempdir().expect("tempdir");
        let runtime = Arc::new(Runtime::new(RuntimeOptions {
 cache_dir: Some(cache.path().to_owned()),
 ..RuntimeOptions::default()
 }).expect("runtime"));
        let (reloader, table) = {
            let runtime = Arc::clone(&runtime);
            let dir = plugins.path().to_owned();
            tokio::task::spawn_blocking(move || Reloader::start(runtime, dir, Vec::new(), None)).await.expect("start")
        };
        assert_eq!(reloader.stats().loaded, 1);
        let stats = reloader.stats_handle();
        let (stop_watch, stopped) = tokio::sync::oneshot::channel::<()>();
        let watcher = tokio::spawn(reloader.watch(async move {
            let _ = stopped.await;
        }));

        // The stream: events written into a pipe the file source reads.
        let (mut writer, reader) = tokio::io::duplex(1 << 20);
        let mut source = FileSource::from_reader("pipe".into(), Box::new(tokio::io::BufReader::new(reader)), None);
        let (records, mut published) = mpsc::unbounded_channel();
        let settings = PipelineSettings { batch_size: 16, ..PipelineSettings::default() };
        let pipeline = tokio::spawn(async move {
            let mut pipeline = Pipeline::with_route_table(table, settings);
            let mut sink = BatchSink(records, 0);
            pipeline.run(&mut source, &mut sink, std::future::pending()).await
        });

        let mut next_id = 0i64;
        let mut seen: Vec<(i64, String)> = Vec::new();
        // The batch each published record came in (a partial batch leaves after the
        // linger, so batches are not all 16 events).
        let mut batches: Vec<u64> = Vec::new();
        let mut latencies = Vec::new();
        for swap in 1..=20 {
            let stamp = swap.to_string();
            deploy_stamp(&team, &stamp);
            let deployed = Instant::now();
            // Keep the stream flowing until the new version serves (bounded wait).
            loop {
                for _ in 0..8 {
                    let line = create_event(json!({"id": next_id})) + "\n";
                    writer.write_all(line.as_bytes()).await.expect("write event");
                    next_id += 1;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                while let Ok((batch, record)) = published.try_recv() {
                    seen.push(stamp_of(&record));
                    batches.push(batch);
                }
                if seen.last().is_some_and(|(_, s)| *s == stamp) {
                    latencies.push(deployed.elapsed());
                    break;
                }
                assert!(deployed.elapsed() < Duration::from_secs(20), "version {stamp} never started serving");
            }
        }
        drop(writer);
        let pipeline_stats = pipeline.await.expect("pipeline task").expect("pipeline");
        while let Some((batch, record)) = published.recv().await {
            seen.push(stamp_of(&record));
            batches.push(batch);
        }
        let _ = stop_watch.send(());
        watcher.await.expect("watcher task").expect("watcher");

        // Every event exactly once, in order.
        let ids: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, (0..next_id).collect::<Vec<_>>(), "each event exactly once, in order");
        assert_eq!(pipeline_stats.dead_lettered, 0);
        // Versions only move forward: each batch ran on the version in service when it began.
        let stamps: Vec<u32> = seen.iter().map(|(_, s)| s.parse().expect("numeric stamp")).collect();
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "versions never go back: {stamps:?}");
        // A swap happens at a batch boundary.
        for (index, pair) in seen.windows(2).enumerate().filter(|(_, w)| w[0].1 != w[1].1) {
            assert_ne!(batches[index], batches[index + 1], "version changed inside a batch at event {}", pair[1].0);
        }
        assert_eq!(stats.lock().expect("stats").loaded, 21);
        latencies.sort();
        println!(
            "swap latency (manifest renamed into place -> new version serving, incl. {} ms debounce): median {:?}, max {:?} over {} swaps, {} events",
            sluice_pipeline::reload::DEBOUNCE.as_millis(),
            latencies[latencies.len() / 2],
            latencies[latencies.len() - 1],
            latencies.len(),
            next_id
        );
    });
}

#[test]
fn broken_drop_ins_are_refused_and_the_old_version_keeps_serving() {
    let plugins = tempfile::tempdir().expect("tempdir");
    let dir = plugins.path();
    std::fs::copy(components::STAMP, dir.join("stamp.wasm")).expect("component");
    deploy_stamp(dir, "good");
    let runtime = Arc::new(Runtime::new(RuntimeOptions::default()).expect("runtime"));
    let (mut reloader, table) = Reloader::start(runtime, dir.to_owned(), Vec::new(), None);
    assert_eq!(reloader.stats().loaded, 1);
    let serving = || {
        table
            .borrow()
            .iter()
            .map(|r| {
                format!(
                    "{}@{}",
                    r.plugin.plugin().version(),
                    r.plugin.plugin().sha256()
                )
            })
            .collect::<Vec<_>>()
    };
    let good = serving();

    // Each broken version of `stamp` is refused; the good one keeps serving.
    let bytes = std::fs::read(components::STAMP).expect("component");
    let broken: [(&str, Vec<u8>); 3] = [
        ("truncated component", bytes[..bytes.len() / 3].to_vec()),
        ("not wasm", b"#!/bin/sh\necho hello\n".to_vec()),
        (
            "another world",
            std::fs::read(components::BOUNDARY_PROBE).expect("probe"),
        ),
    ];
    for (refused, (what, contents)) in broken.into_iter().enumerate() {
        std::fs::write(dir.join("stamp.wasm"), contents).expect("drop in");
        reloader.rescan();
        assert_eq!(
            reloader.stats().refused,
            refused as u64 + 1,
            "{what} is refused"
        );
        assert_eq!(serving(), good, "{what}: the old version keeps serving");
    }
    // A manifest error and a plugin whose init refuses its configuration.
    std::fs::copy(components::STAMP, dir.join("stamp.wasm")).expect("restore");
    std::fs::write(
        dir.join("stamp.toml"),
        "name = \"stamp\"\ninputs = [\"in\"]\noutputs = []\n",
    )
    .expect("bad manifest");
    reloader.rescan();
    assert_eq!(reloader.stats().refused, 4, "manifest error refused");
    assert_eq!(serving(), good);
    std::fs::copy(components::CUSTOMERS_CDM, dir.join("cdm.wasm")).expect("component");
    std::fs::write(
        dir.join("cdm.toml"),
        "inputs = [\"in\"]\noutputs = [\"cdm.customer\"]\n[config]\n\"decimal.handling.mode\" = \"bogus\"\n",
    )
    .expect("manifest");
    reloader.rescan();
    assert_eq!(reloader.stats().refused, 5, "init failure refused");
    assert_eq!(serving(), good, "and nothing else changed");

    // A fixed manifest is picked up; the version it replaced can be rolled back to.
    deploy_stamp(dir, "fixed");
    reloader.rescan();
    assert_eq!(reloader.stats().loaded, 2);
    let fixed = serving();
    let restored = sluice_pipeline::reload::rollback(dir, "stamp").expect("rollback");
    assert_eq!(restored.len(), 2, "component and manifest: {restored:?}");
    reloader.rescan();
    assert_eq!(reloader.stats().loaded, 3);
    let manifest = std::fs::read_to_string(dir.join("stamp.toml")).expect("manifest");
    assert!(
        manifest.contains("stamp = \"good\""),
        "the previous manifest is back: {manifest}"
    );
    assert_ne!(fixed, good);
    assert_eq!(serving(), good, "the previous version serves again");
    // A removed manifest removes its plugin.
    std::fs::remove_file(dir.join("stamp.toml")).expect("remove");
    reloader.rescan();
    assert_eq!(reloader.stats().removed, 1);
    assert!(serving().is_empty());
}

/// The memory caps of running instances share the host's budget: a version that does
/// not fit is refused (the versions in service keep running), and a version's share is
/// given back when it is removed or replaced.
#[test]
fn versions_whose_memory_caps_do_not_fit_the_budget_are_refused() {
    const MIB: u64 = 1 << 20;
    let plugins = tempfile::tempdir().expect("tempdir");
    let dir = plugins.path();
    std::fs::copy(components::STAMP, dir.join("stamp.wasm")).expect("component");
    std::fs::copy(components::STAMP, dir.join("greedy.wasm")).expect("component");
    deploy_stamp(dir, "one");
    let runtime = Arc::new(
        Runtime::new(RuntimeOptions {
            plugin_memory: Some(200 * MIB),
            ..RuntimeOptions::default()
        })
        .expect("runtime"),
    );
    let budget = Arc::clone(runtime.memory_budget());
    let (mut reloader, table) = Reloader::start(runtime, dir.to_owned(), Vec::new(), None);
    assert_eq!(reloader.stats().loaded, 1);
    assert_eq!(budget.held(), 64 * MIB, "one instance at the default cap");
    let serving = || {
        let mut names: Vec<String> = table
            .borrow()
            .iter()
            .map(|r| {
                format!(
                    "{}@{}",
                    r.plugin.plugin().name(),
                    r.plugin.plugin().version()
                )
            })
            .collect();
        names.sort();
        names
    };
    // The budget's held bytes drop when the last worker thread of a version is gone,
    // which is a moment after the route table lets go of it.
    let held_within = |bytes: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while budget.held() != bytes && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        budget.held()
    };
    let greedy = |parallelism: u32| {
        std::fs::write(
            dir.join("greedy.toml"),
            format!("version = \"{parallelism}\"\ninputs = [\"in\"]\noutputs = [\"out\"]\nparallelism = {parallelism}\n[config]\nstamp = \"greedy\"\n"),
        )
        .expect("manifest");
    };

    // Four instances at 64 MiB ask 256 MiB; 136 MiB are left.
    greedy(4);
    reloader.rescan();
    assert_eq!(reloader.stats().refused, 1, "refused for its memory");
    assert_eq!(serving(), ["stamp@1.0.one"]);
    assert_eq!(
        budget.held(),
        64 * MIB,
        "nothing kept of the refused version"
    );

    // Two fit.
    greedy(2);
    reloader.rescan();
    assert_eq!(reloader.stats().loaded, 2);
    assert_eq!(serving(), ["greedy@2", "stamp@1.0.one"]);
    assert_eq!(budget.held(), 192 * MIB);

    // A new version of `stamp` would hold 64 MiB beside its predecessor during the
    // swap: 256 MiB, refused; the version in service keeps serving.
    deploy_stamp(dir, "two");
    reloader.rescan();
    assert_eq!(reloader.stats().refused, 2);
    assert_eq!(serving(), ["greedy@2", "stamp@1.0.one"]);

    // Removing `greedy` gives its share back once its threads are done (the waiting
    // version is tried again by this rescan too, maybe before that). Unchanged, the
    // version refused for memory is tried again at the next rescan, and now fits; the
    // old version's share is given back after the swap.
    std::fs::remove_file(dir.join("greedy.toml")).expect("remove");
    reloader.rescan();
    let tried_again = reloader.stats().loaded == 3 || reloader.stats().refused == 3;
    assert!(tried_again, "{:?}", reloader.stats());
    assert!(matches!(held_within(64 * MIB), b if b == 64 * MIB || b == 128 * MIB));
    reloader.rescan();
    assert_eq!(serving(), ["stamp@1.0.two"]);
    assert_eq!(held_within(64 * MIB), 64 * MIB);
}

/// While the reloader watches the directory, a version refused for memory is loaded as
/// soon as another version gives its share back: no new deploy needed.
#[test]
fn a_version_waiting_for_memory_loads_when_another_gives_it_back() {
    const MIB: u64 = 1 << 20;
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let plugins = tempfile::tempdir().expect("tempdir");
    let dir = plugins.path().to_owned();
    std::fs::copy(components::STAMP, dir.join("stamp.wasm")).expect("component");
    std::fs::copy(components::STAMP, dir.join("other.wasm")).expect("component");
    deploy_stamp(&dir, "one");
    std::fs::write(
        dir.join("other.toml"),
        "inputs = [\"in\"]\noutputs = [\"out\"]\n[config]\nstamp = \"other\"\n",
    )
    .expect("manifest");
    let runtime = Arc::new(
        Runtime::new(RuntimeOptions {
            plugin_memory: Some(150 * MIB),
            ..RuntimeOptions::default()
        })
        .expect("runtime"),
    );
    tokio.block_on(async {
        let (reloader, mut table) = {
            let (runtime, dir) = (Arc::clone(&runtime), dir.clone());
            tokio::task::spawn_blocking(move || Reloader::start(runtime, dir, Vec::new(), None))
                .await
                .expect("start")
        };
        assert_eq!(reloader.stats().loaded, 2, "128 of 150 MiB held");
        let stats = reloader.stats_handle();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let watcher = tokio::spawn(reloader.watch(async move {
            let _ = stopped.await;
        }));
        // A new `stamp` needs 64 MiB beside the old one's: refused for now.
        deploy_stamp(&dir, "two");
        let deadline = Instant::now() + Duration::from_secs(20);
        while stats.lock().expect("stats").refused == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            stats.lock().expect("stats").refused,
            1,
            "refused for memory"
        );
        // Another team removes its plugin: its share comes back, and `stamp` 1.0.two
        // loads without being deployed again.
        std::fs::remove_file(dir.join("other.toml")).expect("remove");
        let serving = tokio::time::timeout(
            Duration::from_secs(30),
            table.wait_for(|routes| {
                routes.len() == 1 && routes[0].plugin.plugin().version() == "1.0.two"
            }),
        )
        .await;
        assert!(
            serving.is_ok(),
            "the waiting version loaded: {:?}",
            stats.lock().expect("stats")
        );
        // The replaced version's share comes back when its threads are done.
        let budget = runtime.memory_budget();
        let deadline = Instant::now() + Duration::from_secs(10);
        while budget.held() != 64 * MIB && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(budget.held(), 64 * MIB, "only the version in service holds");
        stop.send(()).expect("watcher running");
        let _ = tokio::time::timeout(Duration::from_secs(5), watcher).await;
    });
    // With the reloader and its table gone, every share is given back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while runtime.memory_budget().held() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(runtime.memory_budget().held(), 0);
}
