#!/usr/bin/env bash
# Every test of sluice: formatting, lints, unit tests, and the end-to-end tests, which
# build the plugins from source (tests/build.rs) and run them in the real host.
set -euo pipefail
cd "$(dirname "$0")/.."

# The plugins' target; tests/build.rs would install it too, this just says so early.
if command -v rustup >/dev/null; then
    rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
fi

cargo fmt --all --check
(cd plugins && cargo fmt --all --check)
(cd tests/plugins && cargo fmt --all --check)
cargo clippy --workspace --all-targets --quiet -- -D warnings
# `cargo test` builds the sluice binary too (host/tests/cli.rs needs it), so the
# end-to-end tests in tests/ find it in target/debug.
cargo test --workspace
