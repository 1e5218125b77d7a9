#!/usr/bin/env bash
# The main job on the embedded default, on a fresh machine with only the Rust toolchain:
# builds sluice and the example plugins (installing the wasm32-wasip2 target if
# missing), then runs the customers CDM pipeline over samples/customers.jsonl and
# prints the canonical records (JSON lines) on standard output.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p sluice
# `plugin build` installs the wasm32-wasip2 target through rustup when it is missing.
./target/debug/sluice plugin build plugins >/dev/null
exec ./target/debug/sluice run --config samples/customers.toml "$@"
