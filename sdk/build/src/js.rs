//! JavaScript plugins: a `package.json` project whose `main` module exports `transform`
//! (built with the SDK's `sluice.transform(fn)`), bundled with the SDK by rolldown and
//! embedded in StarlingMonkey by componentize-js (`sdk/js/build.mjs` does both in node).
//!
//! The toolchain is the pinned `node_modules` of `sdk/js/package.json`, found in the
//! project's own `node_modules` (after `npm install` there), else under
//! `$SLUICE_JS_TOOLCHAIN` (a `node_modules` directory), else in this repository's
//! `sdk/js/node_modules` (`npm ci` there; `.ci/run` does).
//!
//! With `weval` at hand (`$SLUICE_WEVAL`, else `weval` on `PATH`; `cargo install weval
//! --version 0.5.1`), componentize-js compiles the engine's interpreter ahead of time for
//! the plugin (its `enableAot`): 1.14-1.24x faster plugins in BENCHMARKS.md. Without it,
//! or with `SLUICE_JS_AOT=0`, the plugin is built as before and a note says so.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{BuildError, component_stem, publish, staging_dir, write_files};

/// The toolchain `sdk/js/package.json` pins, as (package, version), which templates ask
/// for too: componentize-js, jco 1.15.1 (it keeps a componentize-js 0.19 of its own for
/// its CLI; `build.mjs` loads the pinned one), the preview2-shim componentize-js imports
/// without declaring, and rolldown.
pub const JS_TOOLCHAIN: &[(&str, &str)] = &[
    ("@bytecodealliance/componentize-js", "0.23.0"),
    ("@bytecodealliance/jco", "1.15.1"),
    ("@bytecodealliance/preview2-shim", "0.17.9"),
    ("rolldown", "1.3.2"),
];

/// The SDK and the build script, embedded so any project directory builds.
const SDK: &[(&str, &str)] = &[
    ("sdk/sluice.js", include_str!("../../js/sluice.js")),
    ("sdk/debezium.js", include_str!("../../js/debezium.js")),
    ("sdk/sluice.d.ts", include_str!("../../js/sluice.d.ts")),
    ("build.mjs", include_str!("../../js/build.mjs")),
];

const TOOLCHAIN_HINT: &str = "run `npm ci` in sdk/js of the sluice repository (`.ci/run` does), \
     set SLUICE_JS_TOOLCHAIN to a node_modules directory that has them, or run `npm install` \
     in the plugin's directory (its package.json lists them as devDependencies)";

/// Builds the JavaScript project in `dir` into `<out>/<name>.wasm`.
pub fn build(dir: &Path, out: &Path) -> Result<PathBuf, BuildError> {
    let manifest_path = dir.join("package.json");
    let (name, main) = read_manifest(&manifest_path)?;
    let entry = dir.join(&main);
    if !entry.is_file() {
        return Err(BuildError::Manifest {
            path: manifest_path,
            problem: format!("`main` names {main:?}, which is not a file"),
        });
    }
    let toolchain = find_toolchain(dir)?;
    let stem = component_stem(&name);
    let staging = staging_dir(out, &stem)?;
    write_files(&staging, SDK)?;
    let component = out.join(format!("{stem}.wasm"));
    let built = staging.join(format!("{stem}.wasm"));
    let mut node = Command::new("node");
    node.arg(staging.join("build.mjs"))
        .arg(&entry)
        .arg(staging.join("sdk"))
        .arg(staging.join("wit"))
        .arg(&toolchain)
        .arg(&built);
    let weval = find_weval(
        std::env::var_os("SLUICE_JS_AOT").as_deref(),
        std::env::var_os("SLUICE_WEVAL").as_deref(),
        std::env::var_os("PATH").as_deref(),
    )?;
    match weval {
        Some(weval) => {
            node.env("SLUICE_WEVAL_BIN", weval);
        }
        None => {
            node.env_remove("SLUICE_WEVAL_BIN");
        }
    }
    let status = node
        .status()
        .map_err(|error| BuildError::ToolchainMissing {
            language: "JavaScript",
            tool: format!("`node` ({error})"),
            hint: "install Node.js 20 or later".to_owned(),
        })?;
    if !status.success() || !built.is_file() {
        return Err(BuildError::Componentize {
            dir: dir.to_owned(),
            tool: "componentize-js",
        });
    }
    publish(&staging, &stem, &component)
}

/// The `weval` binary for ahead-of-time compilation, from the values of `SLUICE_JS_AOT`,
/// `SLUICE_WEVAL` and `PATH`: none when `SLUICE_JS_AOT=0`; else the file `SLUICE_WEVAL`
/// names (an error when it is not one); else the first `weval` on `PATH`, if any.
fn find_weval(
    aot: Option<&OsStr>,
    named: Option<&OsStr>,
    path: Option<&OsStr>,
) -> Result<Option<PathBuf>, BuildError> {
    if aot.is_some_and(|value| value == "0") {
        return Ok(None);
    }
    if let Some(named) = named {
        let weval = PathBuf::from(named);
        return if weval.is_file() {
            Ok(Some(weval))
        } else {
            Err(BuildError::ToolchainMissing {
                language: "JavaScript",
                tool: format!("weval at {} (named by SLUICE_WEVAL)", weval.display()),
                hint: "point SLUICE_WEVAL at the weval binary (`cargo install weval --version \
                       0.5.1` puts it in ~/.cargo/bin), unset it to look on PATH, or set \
                       SLUICE_JS_AOT=0 to build without ahead-of-time compilation"
                    .to_owned(),
            })
        };
    }
    Ok(path.and_then(|path| {
        std::env::split_paths(path)
            .map(|dir| dir.join("weval"))
            .find(|candidate| candidate.is_file())
    }))
}

/// `name` and `main` (default `src/index.js`) of a `package.json`.
fn read_manifest(path: &Path) -> Result<(String, String), BuildError> {
    let problem = |problem: String| BuildError::Manifest {
        path: path.to_owned(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| problem(format!("not JSON: {e}")))?;
    let name = manifest["name"]
        .as_str()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| problem("`name` is missing (it names the component)".to_owned()))?;
    let main = manifest["main"].as_str().unwrap_or("src/index.js");
    Ok((name.to_owned(), main.to_owned()))
}

/// The first `node_modules` that holds componentize-js and rolldown.
fn find_toolchain(dir: &Path) -> Result<PathBuf, BuildError> {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("../js/node_modules");
    let candidates = [
        Some(dir.join("node_modules")),
        std::env::var_os("SLUICE_JS_TOOLCHAIN").map(PathBuf::from),
        Some(repository),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|modules| {
            modules
                .join("@bytecodealliance/componentize-js/package.json")
                .is_file()
                && modules.join("rolldown/package.json").is_file()
        })
        .ok_or_else(|| BuildError::ToolchainMissing {
            language: "JavaScript",
            tool: JS_TOOLCHAIN
                .iter()
                .map(|(package, version)| format!("{package}@{version}"))
                .collect::<Vec<_>>()
                .join(", "),
            hint: TOOLCHAIN_HINT.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pins_match_the_sdk_package_json() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../js/package.json");
        let text = std::fs::read_to_string(&path).expect("sdk/js/package.json");
        let manifest: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let pinned = manifest["devDependencies"]
            .as_object()
            .expect("devDependencies");
        assert_eq!(pinned.len(), JS_TOOLCHAIN.len(), "{pinned:?}");
        for (package, version) in JS_TOOLCHAIN {
            assert_eq!(
                pinned[*package],
                *version,
                "{package} in {}",
                path.display()
            );
        }
    }

    #[test]
    fn weval_is_taken_from_sluice_weval_then_path_and_a_wrong_name_is_an_error() {
        let dir = std::env::temp_dir().join(format!("sluice-weval-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let weval = dir.join("weval");
        std::fs::write(&weval, "").expect("write");
        let path = std::env::join_paths([Path::new("/nonexistent"), &dir]).expect("PATH");
        let missing = dir.join("no-such-weval");

        let on_path = find_weval(None, None, Some(&path)).expect("found");
        assert_eq!(on_path.as_deref(), Some(weval.as_path()));
        let named = find_weval(None, Some(weval.as_os_str()), None).expect("named");
        assert_eq!(named.as_deref(), Some(weval.as_path()));
        let off = find_weval(
            Some(OsStr::new("0")),
            Some(missing.as_os_str()),
            Some(&path),
        );
        assert_eq!(off.expect("off").as_deref(), None);
        assert_eq!(
            find_weval(None, None, Some(OsStr::new("/nonexistent"))).expect("none"),
            None
        );

        let error = find_weval(None, Some(missing.as_os_str()), Some(&path))
            .expect_err("a named file that is not there")
            .to_string();
        assert!(
            error.contains("no-such-weval (named by SLUICE_WEVAL)"),
            "{error}"
        );
        assert!(error.contains("SLUICE_JS_AOT=0"), "{error}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_manifest_without_a_name_is_refused_with_its_path() {
        let dir = std::env::temp_dir().join(format!("sluice-package-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("package.json");
        std::fs::write(&path, r#"{"main": "index.js"}"#).expect("write");
        let error = read_manifest(&path).expect_err("no name").to_string();
        assert!(error.contains("package.json: `name` is missing"), "{error}");
        std::fs::write(&path, r#"{"name": "a-b"}"#).expect("write");
        let (name, main) = read_manifest(&path).expect("valid");
        assert_eq!((name.as_str(), main.as_str()), ("a-b", "src/index.js"));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
