//! The runtime on its own: the compile cache keyed on content, and what it refuses.

use sluice_runtime::{CacheOutcome, PluginSpec, Runtime, RuntimeOptions};
use sluice_tests::components;

fn spec() -> PluginSpec {
    PluginSpec {
        name: "passthrough".into(),
        version: "1".into(),
        config: vec![],
        limits: Default::default(),
    }
}

#[test]
fn components_are_compiled_once_per_content_and_reloaded_from_the_cache() {
    let cache = tempfile::tempdir().expect("tempdir");
    let options = RuntimeOptions {
        cache_dir: Some(cache.path().to_owned()),
        ..RuntimeOptions::default()
    };
    let path = std::path::Path::new(components::PASSTHROUGH);
    let first = Runtime::new(options.clone())
        .expect("runtime")
        .load_file(spec(), path)
        .expect("load");
    assert_eq!(first.cache_outcome(), CacheOutcome::Miss);
    // A new runtime (a restart) finds the compiled code.
    let second = Runtime::new(options.clone())
        .expect("runtime")
        .load_file(spec(), path)
        .expect("load");
    assert_eq!(second.cache_outcome(), CacheOutcome::Hit);
    assert_eq!(first.sha256(), second.sha256());
    second.instantiate().expect("cached code runs");

    // A damaged artifact is never deserialized: it fails its digest and is recompiled.
    let artifact = std::fs::read_dir(cache.path())
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("an artifact");
    let mut bytes = std::fs::read(&artifact).expect("read");
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&artifact, bytes).expect("damage");
    let third = Runtime::new(options)
        .expect("runtime")
        .load_file(spec(), path)
        .expect("load");
    assert_eq!(third.cache_outcome(), CacheOutcome::Miss);
    third.instantiate().expect("recompiled code runs");
}

/// Small components are compiled by the runtime's inlining engine, larger ones (and all of
/// them with the limit at 0) by the standard one; the two artifacts of one component are
/// cached apart, and code of either engine runs, with the same outcomes.
#[test]
fn small_components_are_compiled_with_inlining_and_cached_apart() {
    let cache = tempfile::tempdir().expect("tempdir");
    let options = |inlining_max_code_bytes| RuntimeOptions {
        cache_dir: Some(cache.path().to_owned()),
        inlining_max_code_bytes,
        ..RuntimeOptions::default()
    };
    let path = std::path::Path::new(components::PASSTHROUGH);
    let load = |inlining_max_code_bytes| {
        Runtime::new(options(inlining_max_code_bytes))
            .expect("runtime")
            .load_file(spec(), path)
            .expect("load")
    };
    let inlined = load(sluice_runtime::INLINING_MAX_CODE_BYTES);
    assert!(inlined.compiled_with_inlining());
    assert_eq!(inlined.cache_outcome(), CacheOutcome::Miss);
    let standard = load(0);
    assert!(!standard.compiled_with_inlining());
    assert_eq!(
        standard.cache_outcome(),
        CacheOutcome::Miss,
        "not the inlined artifact"
    );
    // A limit below the component's code: the standard engine, from the cache.
    let below = load(1_000);
    assert!(!below.compiled_with_inlining());
    assert_eq!(below.cache_outcome(), CacheOutcome::Hit);
    let artifacts: Vec<String> = std::fs::read_dir(cache.path())
        .expect("cache dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 2, "{artifacts:?}");
    assert_eq!(
        artifacts
            .iter()
            .filter(|name| name.contains("-inlined-"))
            .count(),
        1,
        "{artifacts:?}"
    );

    let events: Vec<_> = sluice_tests::synthetic_customer_events(8)
        .into_iter()
        .map(|raw| match sluice_runtime::debezium::decode(raw) {
            Ok(sluice_runtime::debezium::Decoded::Event(event)) => event,
            _ => panic!("synthetic events decode"),
        })
        .collect();
    let run = |plugin: &std::sync::Arc<sluice_runtime::LoadedPlugin>| {
        let mut worker = sluice_runtime::PluginWorker::new(plugin.instantiate().expect("runs"));
        worker.transform(&events)
    };
    let outcomes = run(&inlined);
    assert_eq!(outcomes.len(), events.len());
    assert_eq!(outcomes, run(&standard));
}

#[test]
fn a_component_of_another_world_is_refused_with_the_reason() {
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let path = std::path::Path::new(components::BOUNDARY_PROBE);
    let error = runtime
        .load_file(spec(), path)
        .expect_err("wrong world")
        .to_string();
    assert!(error.starts_with(components::BOUNDARY_PROBE), "{error}");
    assert!(
        error.contains(
            "does not fit the sluice:transform@0.1.0 `transformer` or `packed-transformer` world"
        ),
        "{error}"
    );
    assert!(
        error.contains("sluice:transform/transform"),
        "names what is missing: {error}"
    );
}
