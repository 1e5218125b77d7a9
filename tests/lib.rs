//! Shared helpers of sluice's end-to-end tests: paths of the plugin components built
//! from source by `build.rs`, the repository layout, and the sluice binary.

use std::path::PathBuf;

/// Paths of every plugin component, built from source by `build.rs`.
pub mod components {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_owned()
}

/// A file under `samples/`.
pub fn sample(name: &str) -> PathBuf {
    repo_root().join("samples").join(name)
}

/// The `sluice` binary of this build (`cargo test --workspace` builds it for the host's
/// own CLI tests; with `cargo test -p sluice-tests` alone, `cargo build -p sluice` first).
pub fn sluice_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/<test binary> → target/<profile>/sluice
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps");
    let bin = profile_dir.join(format!("sluice{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p sluice` or run `cargo test --workspace`",
        bin.display()
    );
    bin
}
