//! Compiles Rust sluice plugin crates into WebAssembly components.
//!
//! Used by `sluice plugin build` and by the build script of the end-to-end tests, so a
//! plugin is always built the same way: `cargo build --release --target wasm32-wasip2`
//! in the crate's directory (so its `.cargo/config.toml` applies), with the target
//! installed through rustup first when it is missing, and with the calling cargo's
//! flags removed from the environment (they are for the host, not the guest).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
        }
    }
}

impl std::error::Error for BuildError {}

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
