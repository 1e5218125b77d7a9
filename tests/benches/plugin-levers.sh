#!/usr/bin/env bash
# The guest-side build levers of the Rust plugins, measured in one run of the runtime
# benchmark (BENCHMARKS.md, "Rust plugins: guest-side levers"):
#
#   tests/benches/plugin-levers.sh [--quick | --build-only]
#
# Builds `customers-cdm` and `passthrough` (plugins/) once per variant, each into its own
# target directory under target/levers (so variants never overwrite each other's
# artefacts), copies the two components to target/levers/<variant>/, then runs
# `cargo bench -p sluice-tests --bench runtime -- --levers target/levers`.
# A variant is the shipped profile (plugins/Cargo.toml: opt-level 3, fat LTO, one
# codegen unit) with one setting changed through cargo's CARGO_PROFILE_RELEASE_* and
# RUSTFLAGS overrides.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/levers
mkdir -p "$out"

variant() {
    local name=$1
    shift
    echo "building $name" >&2
    env "$@" cargo build --quiet --release --manifest-path plugins/Cargo.toml \
        --target wasm32-wasip2 --target-dir "$out/build-$name" -p customers-cdm -p passthrough
    mkdir -p "$out/$name"
    cp "$out/build-$name/wasm32-wasip2/release/customers_cdm.wasm" \
        "$out/build-$name/wasm32-wasip2/release/passthrough.wasm" "$out/$name/"
}

variant 1-shipped
variant 2-no-lto-16-cgu CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
variant 3-opt-level-2 CARGO_PROFILE_RELEASE_OPT_LEVEL=2
variant 4-opt-level-s CARGO_PROFILE_RELEASE_OPT_LEVEL=s
variant 5-panic-abort CARGO_PROFILE_RELEASE_PANIC=abort
variant 6-simd128 RUSTFLAGS="-C target-feature=+simd128"
variant 7-simd128-panic-abort CARGO_PROFILE_RELEASE_PANIC=abort RUSTFLAGS="-C target-feature=+simd128"
variant 8-inline-1000 RUSTFLAGS="-C llvm-args=-inline-threshold=1000"
variant 9-inline-4000 RUSTFLAGS="-C llvm-args=-inline-threshold=4000"

if [[ ${1:-} == --build-only ]]; then
    exit 0
fi
cargo bench -p sluice-tests --bench runtime -- --levers "$out" "$@"
