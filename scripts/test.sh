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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# `cargo test` builds the sluice binary too (host/tests/cli.rs needs it), so the
# end-to-end tests in tests/ find it in target/debug.
cargo test --workspace 2>&1 | tee "$log"
# The `kerberos` build (tiberius with GSSAPI; libkrb5-dev and libclang-dev, which
# .ci/run installs) still compiles and accepts integrated security.
cargo test -p sluice --features kerberos --lib kerberos 2>&1 | tee -a "$log"
# The example plugins' own unit tests, compiled for the host (their workspace builds for
# wasm32-wasip2 by default).
host_target=$(rustc -vV | sed -n 's/^host: //p')
(cd plugins && cargo test --target "$host_target") 2>&1 | tee -a "$log"

# One closing line over every test binary above (cargo's own last line is often a
# doc-test run of a crate without doc tests, "0 passed").
passed=$(grep -Eo '^test result: .* [0-9]+ passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '^test result: .* [0-9]+ failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s += $1} END {print s + 0}')
echo "sluice: $passed passed, $failed failed"
