#!/usr/bin/env bash
# Every test of sluice: formatting, lints, unit tests, and the end-to-end tests, which
# build the plugins from source (tests/build.rs) and run them in the real host. Installs
# what is missing first (scripts/setup.sh), so it is all a fresh machine needs.
# Tests that need what this machine may lack are #[ignore]d and counted as skipped; they
# run when their variable is set: SLUICE_TEST_KAFKA_BOOTSTRAP (Apache Kafka),
# SLUICE_TEST_MSSQL_URL (SQL Server).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
command -v componentize-py >/dev/null ||
    export SLUICE_COMPONENTIZE_PY="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/componentize-py"

# docker-compose.yml cannot run here (no Docker): check that it is valid YAML and has the
# services the README promises, and that every service it depends on exists.
python3 - <<'PY'
import yaml
services = yaml.safe_load(open("docker-compose.yml"))["services"]
missing = {"kafka", "mssql", "mssql-init", "kafka-init", "sluice-capture", "sluice-run",
           "postgres", "sluice-capture-postgres", "prometheus", "grafana"} - set(services)
assert not missing, f"docker-compose.yml lacks {sorted(missing)}"
for name, service in services.items():
    for dependency in service.get("depends_on", {}):
        assert dependency in services, f"{name} depends on unknown service {dependency}"
PY

cargo fmt --all --check
(cd plugins && cargo fmt --all --check)
(cd tests/plugins && cargo fmt --all --check)
cargo clippy --workspace --all-targets --quiet -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# `cargo test` builds the sluice binary too (host/tests/cli.rs needs it), so the
# end-to-end tests in tests/ find it in target/debug.
cargo test --workspace 2>&1 | tee "$log"
# The gated tests, when what they need is named (the main run above counted them ignored).
gated=$(mktemp)
trap 'rm -f "$log" "$gated"' EXIT
if [ -n "${SLUICE_TEST_KAFKA_BOOTSTRAP:-}" ]; then
    cargo test -p sluice-tests --test tests -- --ignored apache_kafka two_processes_share_a_group 2>&1 | tee -a "$gated"
fi
if [ -n "${SLUICE_TEST_MSSQL_URL:-}" ]; then
    cargo test -p sluice-tests --test tests -- --ignored real_sql_server 2>&1 | tee -a "$gated"
fi
# The `kerberos` build (tiberius with GSSAPI; libkrb5-dev and libclang-dev, which
# scripts/setup.sh installs) still compiles and accepts integrated security.
cargo test -p sluice --features kerberos --lib kerberos 2>&1 | tee -a "$log"
# The example plugins' own unit tests, compiled for the host (their workspace builds for
# wasm32-wasip2 by default).
host_target=$(rustc -vV | sed -n 's/^host: //p')
(cd plugins && cargo test --target "$host_target") 2>&1 | tee -a "$log"

# One closing line over every test binary above (cargo's own last line is often a
# doc-test run of a crate without doc tests, "0 passed"), from cargo's own totals.
# A file without any (no gated test ran) sums to 0: grep finding nothing is not an error
# here, which `set -o pipefail` would otherwise make one and end the script silently.
total() { # total FILE WORD: the sum of "N WORD" over the "test result:" lines of FILE
    { grep -E '^test result:' "$1" || true; } | { grep -Eo "[0-9]+ $2" || true; } |
        awk '{s += $1} END {print s + 0}'
}
gated_run=$(( $(total "$gated" passed) + $(total "$gated" failed) ))
passed=$(( $(total "$log" passed) + $(total "$gated" passed) ))
failed=$(( $(total "$log" failed) + $(total "$gated" failed) ))
skipped=$(( $(total "$log" ignored) - gated_run ))
echo "sluice: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
