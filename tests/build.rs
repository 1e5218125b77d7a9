//! Compiles every plugin in `plugins/` (Rust, JavaScript and Python) and `tests/plugins/`
//! to a component from source (the wasmtime test-programs pattern) and emits their paths
//! as constants in `$OUT_DIR/plugins.rs`, so tests always run real components of the
//! current source.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("tests/ is inside the repository")
        .to_owned();
    let target_dir = root.join("target").join("wasm");
    let mut constants = String::new();
    for workspace in [root.join("plugins"), root.join("tests").join("plugins")] {
        let components = match sluice_plugin_build::build(&workspace, Some(&target_dir)) {
            Ok(components) => components,
            Err(e) => panic!("building the plugins in {}: {e}", workspace.display()),
        };
        for component in components {
            let name = constant_name(&component);
            writeln!(constants, "/// The `{name}` component, built from source.")
                .expect("write to String");
            writeln!(
                constants,
                "pub const {name}: &str = {:?};",
                component.display().to_string()
            )
            .expect("write to String");
        }
    }
    // The JavaScript and Python plugins beside the Rust ones, in both directories (their toolchains come from
    // npm and PyPI; `.ci/run` installs them, and a missing one fails here with how to).
    let non_rust = [root.join("plugins"), root.join("tests").join("plugins")]
        .iter()
        .flat_map(|dir| non_rust_plugins(dir))
        .collect::<Vec<_>>();
    for project in non_rust {
        let components = match sluice_plugin_build::build_plugin(&project, Some(&target_dir)) {
            Ok(components) => components,
            Err(e) => panic!("building the plugin in {}: {e}", project.display()),
        };
        for component in components {
            let name = constant_name(&component);
            writeln!(constants, "/// The `{name}` component, built from source.")
                .expect("write to String");
            writeln!(
                constants,
                "pub const {name}: &str = {:?};",
                component.display().to_string()
            )
            .expect("write to String");
        }
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("plugins.rs");
    std::fs::write(&out, constants).expect("writing plugins.rs");
    for watched in [
        "plugins",
        "tests/plugins",
        "sdk/src",
        "sdk/macro/src",
        "sdk/build/src",
        "sdk/js/sluice.js",
        "sdk/js/debezium.js",
        "sdk/js/build.mjs",
        "sdk/js/package-lock.json",
        "sdk/python/sluice_sdk",
        "wit",
    ] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
    // The JavaScript plugins are compiled ahead of time when weval is found (sdk/build/src/js.rs).
    for variable in ["SLUICE_WEVAL", "SLUICE_JS_AOT"] {
        println!("cargo::rerun-if-env-changed={variable}");
    }
}

/// The directories under `plugins` that hold a JavaScript (`package.json`) or Python
/// (`pyproject.toml`) project, in name order.
fn non_rust_plugins(plugins: &Path) -> Vec<PathBuf> {
    let entries =
        std::fs::read_dir(plugins).unwrap_or_else(|e| panic!("reading {}: {e}", plugins.display()));
    let mut projects: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|dir| {
            matches!(
                sluice_plugin_build::Language::detect(dir),
                Some(
                    sluice_plugin_build::Language::JavaScript
                        | sluice_plugin_build::Language::Python
                )
            )
        })
        .collect();
    projects.sort();
    projects
}

/// `.../customers_cdm.wasm` → `CUSTOMERS_CDM`.
fn constant_name(component: &Path) -> String {
    component
        .file_stem()
        .expect("components have file names")
        .to_string_lossy()
        .to_ascii_uppercase()
        .replace('-', "_")
}
