//! Compiles every plugin in `plugins/` and `tests/plugins/` to a component from source
//! (the wasmtime test-programs pattern) and emits their paths as constants in
//! `$OUT_DIR/plugins.rs`, so tests always run real components of the current source.

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
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("plugins.rs");
    std::fs::write(&out, constants).expect("writing plugins.rs");
    for watched in [
        "plugins",
        "tests/plugins",
        "sdk/src",
        "sdk/macro/src",
        "wit",
    ] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
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
