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
