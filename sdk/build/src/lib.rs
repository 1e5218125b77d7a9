//! Compiles sluice plugin projects into WebAssembly components.
//!
//! Used by `sluice plugin build` and by the build script of the end-to-end tests, so a
//! plugin is always built the same way. [`build_plugin`] picks the language from the
//! project's marker file:
//!
//! - `Cargo.toml`: Rust, `cargo build --release --target wasm32-wasip2` in the crate's
//!   directory (so its `.cargo/config.toml` applies), with the target installed through
//!   rustup first when it is missing, and with the calling cargo's flags removed from the
//!   environment (they are for the host, not the guest) — [`build`];
//! - `package.json`: JavaScript, bundled with the SDK and componentized with
//!   componentize-js (module `js`);
//! - `pyproject.toml`: Python, componentized with componentize-py (module `python`).
//!
//! The JavaScript and Python SDKs and the WIT contract are embedded in this crate, so a
//! project needs only its own sources and the toolchain.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod js;
mod python;

pub use js::JS_TOOLCHAIN;
pub use python::COMPONENTIZE_PY_VERSION;

/// The target every plugin builds for.
pub const TARGET: &str = "wasm32-wasip2";

/// Why a plugin could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// `rustup` or `cargo` could not be run.
    Spawn {
        program: String,
        error: std::io::Error,
    },
    /// `rustup target add` failed.
    TargetInstall { stderr: String },
    /// The crate did not compile; cargo's diagnostics went to standard error.
    Compile { crate_dir: PathBuf },
    /// It compiled, but produced no `.wasm` (not a `cdylib`?).
    NoComponent { crate_dir: PathBuf },
    /// The directory has none of the marker files of a plugin project.
    UnknownProject { dir: PathBuf },
    /// The project's manifest (`package.json`, `pyproject.toml`) is unreadable or lacks
    /// what the build needs.
    Manifest { path: PathBuf, problem: String },
    /// The language's toolchain is not installed; `hint` says how to install it.
    ToolchainMissing {
        language: &'static str,
        tool: String,
        hint: String,
    },
    /// The toolchain ran and failed; its diagnostics went to standard error.
    Componentize { dir: PathBuf, tool: &'static str },
    /// A file of the build could not be written.
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Spawn { program, error } => write!(f, "could not run `{program}`: {error}"),
            BuildError::TargetInstall { stderr } => {
                write!(
                    f,
                    "could not install the {TARGET} target with rustup: {}",
                    stderr.trim()
                )
            }
            BuildError::Compile { crate_dir } => {
                write!(
                    f,
                    "{}: the plugin did not compile (see cargo's errors above)",
                    crate_dir.display()
                )
            }
            BuildError::NoComponent { crate_dir } => write!(
                f,
                "{}: the build produced no .wasm file; is `crate-type = [\"cdylib\"]` set in [lib]?",
                crate_dir.display()
            ),
            BuildError::UnknownProject { dir } => write!(
                f,
                "{}: not a plugin project: no Cargo.toml (Rust), package.json (JavaScript) or pyproject.toml (Python)",
                dir.display()
            ),
            BuildError::Manifest { path, problem } => write!(f, "{}: {problem}", path.display()),
            BuildError::ToolchainMissing {
                language,
                tool,
                hint,
            } => write!(
                f,
                "the {language} toolchain is missing: {tool} not found; {hint}"
            ),
            BuildError::Componentize { dir, tool } => write!(
                f,
                "{}: the plugin did not compile (see {tool}'s errors above)",
                dir.display()
            ),
            BuildError::Io { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for BuildError {}

/// The language of a plugin project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Rust,
    JavaScript,
    Python,
}

impl Language {
    /// The language of the project in `dir`, from its marker file (`Cargo.toml`,
    /// `package.json`, `pyproject.toml`, in that order of precedence).
    pub fn detect(dir: &Path) -> Option<Language> {
        [
            ("Cargo.toml", Language::Rust),
            ("package.json", Language::JavaScript),
            ("pyproject.toml", Language::Python),
        ]
        .into_iter()
        .find(|(marker, _)| dir.join(marker).is_file())
        .map(|(_, language)| language)
    }
}

/// Builds the plugin project in `dir` in whatever language it is written and returns the
/// components it produced (`<name>.wasm`; a Rust workspace gives one per member).
/// `target_dir` is where outputs go (Rust: cargo's target directory; JavaScript and Python:
/// `<target_dir>/js` and `<target_dir>/python`); by default cargo's configuration decides
/// for Rust and `<dir>/dist` holds the others.
pub fn build_plugin(dir: &Path, target_dir: Option<&Path>) -> Result<Vec<PathBuf>, BuildError> {
    match Language::detect(dir) {
        Some(Language::Rust) => build(dir, target_dir),
        Some(Language::JavaScript) => {
            let out = target_dir.map_or_else(|| dir.join("dist"), |t| t.join("js"));
            js::build(dir, &out).map(|component| vec![component])
        }
        Some(Language::Python) => {
            let out = target_dir.map_or_else(|| dir.join("dist"), |t| t.join("python"));
            python::build(dir, &out).map(|component| vec![component])
        }
        None => Err(BuildError::UnknownProject {
            dir: dir.to_owned(),
        }),
    }
}

/// `customers-cdm` → `customers_cdm`: a component's file stem, as cargo names a cdylib.
fn component_stem(name: &str) -> String {
    name.replace('-', "_")
}

/// Writes `files` (relative path, contents) under `dir`.
fn write_files(dir: &Path, files: &[(&str, &str)]) -> Result<(), BuildError> {
    for (relative, contents) in files {
        let path = dir.join(relative);
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .and_then(|()| std::fs::write(&path, contents))
            .map_err(|error| BuildError::Io { path, error })?;
    }
    Ok(())
}

/// The WIT contract, embedded so a project outside this repository builds too.
const WIT: &[(&str, &str)] = &[
    ("wit/world.wit", include_str!("../../../wit/world.wit")),
    ("wit/host.wit", include_str!("../../../wit/host.wit")),
    (
        "wit/transform.wit",
        include_str!("../../../wit/transform.wit"),
    ),
    ("wit/types.wit", include_str!("../../../wit/types.wit")),
    ("wit/packed.wit", include_str!("../../../wit/packed.wit")),
];

/// A clean scratch directory `<out>/.build-<stem>-<pid>` for one build, holding the
/// embedded SDK and WIT next to generated files. Per process, because several cargo
/// commands (a test build and a clippy run) may run `tests/build.rs` at once.
fn staging_dir(out: &Path, stem: &str) -> Result<PathBuf, BuildError> {
    let staging = out.join(format!(".build-{stem}-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|error| BuildError::Io {
            path: staging.clone(),
            error,
        })?;
    }
    write_files(&staging, WIT)?;
    Ok(staging)
}

/// Moves a component built at `<staging>/<stem>.wasm` to `component` in one rename (a
/// concurrent reader never sees half a file) and removes the staging directory.
fn publish(staging: &Path, stem: &str, component: &Path) -> Result<PathBuf, BuildError> {
    let built = staging.join(format!("{stem}.wasm"));
    std::fs::rename(&built, component).map_err(|error| BuildError::Io {
        path: component.to_owned(),
        error,
    })?;
    // Best effort: a leftover scratch directory is harmless and replaced next time.
    let _ = std::fs::remove_dir_all(staging);
    Ok(component.to_owned())
}

/// Installs the `wasm32-wasip2` target with rustup when the active toolchain lacks it.
/// Does nothing when rustup is not installed (a toolchain without rustup must have the
/// target already, and cargo will say so if not).
pub fn ensure_target_installed() -> Result<(), BuildError> {
    let installed = match Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    {
        Ok(output) => String::from_utf8_lossy(&output.stdout)
            .lines()
            .any(|line| line.trim() == TARGET),
        Err(_) => return Ok(()),
    };
    if installed {
        return Ok(());
    }
    let output = Command::new("rustup")
        .args(["target", "add", TARGET])
        .output()
        .map_err(|error| BuildError::Spawn {
            program: "rustup".into(),
            error,
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(BuildError::TargetInstall {
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// Builds the crate (or every member of the workspace) in `crate_dir` in release mode
/// and returns the paths of the components it produced. `target_dir` overrides where
/// cargo builds (by default the crate's own configuration decides).
pub fn build(crate_dir: &Path, target_dir: Option<&Path>) -> Result<Vec<PathBuf>, BuildError> {
    ensure_target_installed()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(&cargo);
    command
        .current_dir(crate_dir)
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // Flags and settings of an enclosing cargo (when called from a build script) are for
    // the host build; the guest build must not inherit them.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(var);
    }
    if let Some(dir) = target_dir {
        command.env("CARGO_TARGET_DIR", dir);
    }
    let output = command.output().map_err(|error| BuildError::Spawn {
        program: cargo,
        error,
    })?;
    if !output.status.success() {
        return Err(BuildError::Compile {
            crate_dir: crate_dir.to_owned(),
        });
    }
    let components = components_in_messages(&String::from_utf8_lossy(&output.stdout));
    if components.is_empty() {
        return Err(BuildError::NoComponent {
            crate_dir: crate_dir.to_owned(),
        });
    }
    Ok(components)
}

/// The `.wasm` files among the artifacts of cargo's JSON messages.
fn components_in_messages(messages: &str) -> Vec<PathBuf> {
    let mut components = Vec::new();
    for line in messages.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(files) = message["filenames"].as_array() else {
            continue;
        };
        for file in files.iter().filter_map(|f| f.as_str()) {
            if file.ends_with(".wasm") {
                components.push(PathBuf::from(file));
            }
        }
    }
    components
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_wasm_artifacts_in_cargo_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","filenames":["/t/libserde.rlib"]}"#,
            "\n",
            r#"{"reason":"compiler-artifact","filenames":["/t/p.wasm","/t/libp.rlib"]}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\nnot json\n"
        );
        assert_eq!(
            components_in_messages(messages),
            vec![PathBuf::from("/t/p.wasm")]
        );
    }
}
