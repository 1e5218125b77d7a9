#!/usr/bin/env python3
"""The PyFlink comparison (issue 15, goal 5): ``customers-cdm`` over the same Debezium
``customers`` events, file in → file out, by

- a PyFlink DataStream job (``job.py``: a Python ``flat_map``), parallelism 1 and 2;
- a plain CPython loop with the same mapping (``mapping.py``), no framework;
- ``sluice run`` with the ``customers-cdm`` plugin in Rust, Python and JavaScript
  (file source → file sink), the Python and JavaScript ones also with ``parallelism = 2``
  (each batch divided by key between two instances, as PyFlink's parallelism 2 divides
  the stream);

all in one run, rounds interleaved so load drifts hit every contender alike, every output
compared equal (as sorted lines: PyFlink's parallel sink does not keep order), median of
the rounds. Prints a Markdown table for BENCHMARKS.md ("sluice against PyFlink").

    python3 tests/benches/pyflink/compare.py [--events 200000] [--rounds 3] [--quick]

Needs a release ``target/release/sluice`` (``cargo build --release -p sluice``), the
plugin components under ``target/wasm`` (any build of ``sluice-tests`` makes them from
the current source), and an interpreter with ``apache-flink`` 2.x and Java 17 on the PATH:
``$SLUICE_PYFLINK_PYTHON``, else ``python3``. Without apache-flink it says so and exits
0: it is not part of the test suite (minutes per run), and ``.ci/run`` does not install it.
Every timing is the wall-clock time of the whole command (process start, JVM start,
compile-cache load included), which is what a team running the job pays; sluice's
component cache is warmed once before the rounds.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SDK_PYTHON = ROOT / "sdk" / "python"
COMPONENTS = {
    "Rust": ROOT / "target/wasm/wasm32-wasip2/release/customers_cdm.wasm",
    "Python": ROOT / "target/wasm/python/customers_cdm_py.wasm",
    "JavaScript": ROOT / "target/wasm/js/customers_cdm_js.wasm",
}
TOPIC = "server1.testDB.dbo.customers"


def events(count: int):
    """The runtime benchmark's synthetic updates (``sluice_tests::synthetic_customer_events``),
    as keyed JSON lines of the file source."""
    for i in range(count):
        id_ = 100_000 + i

        def row(email):
            return {
                "id": id_, "first_name": f"Firstname{i}", "last_name": "Lastname-Example",
                "email": email, "credit_limit": "AYag", "birth_date": 5000 + i % 9000,
                "created_at": 1_763_000_000_000 + i, "updated_at": 1_763_900_000_123_456_789 + i,
                "customer_guid": "6F9619FF-8B86-D011-B42D-00C04FC964FF", "is_active": i % 7 != 0,
            }

        value = {
            "before": row(f"old.address.{i}@example.com"),
            "after": row(f"new.address.{i}@example.org"),
            "source": {
                "version": "3.0.0.Final", "connector": "sqlserver", "name": "server1",
                "ts_ms": 1_763_900_000_000, "snapshot": "false", "db": "testDB", "sequence": None,
                "ts_us": 1_763_900_000_000_000, "ts_ns": 1_763_900_000_000_000_000,
                "schema": "dbo", "table": "customers",
                "change_lsn": f"0000002b:{i:08x}:0002", "commit_lsn": f"0000002b:{i:08x}:0003",
                "event_serial_no": 1,
            },
            "op": "u", "ts_ms": 1_763_900_000_500, "transaction": None,
        }
        yield json.dumps({"topic": TOPIC, "key": {"id": id_}, "value": value}, separators=(",", ":"))


def sluice_config(
    work: Path, name: str, component: Path, events_file: Path, out: Path, parallelism: int = 1
) -> Path:
    """A `sluice run` configuration in ``work``; every one shares the compile cache there.
    ``parallelism``: instances each batch is divided among (the plugin's setting)."""
    config = work / f"{name}.toml"
    config.write_text(
        f"""[source]
type = "file"
path = {json.dumps(str(events_file))}

[sink]
type = "file"
path = {json.dumps(str(out))}

[pipeline]
batch_size = 256
dead_letter_topic = "sluice.dlq"

[runtime]
cache_dir = {json.dumps(str(work / "cache"))}

[[plugin]]
name = "customers-cdm"
version = "bench"
path = {json.dumps(str(component))}
inputs = [{json.dumps(TOPIC)}]
outputs = ["cdm.customer"]
parallelism = {parallelism}

[plugin.limits]
memory = "256MiB"
batch_deadline = "60s"
"""
    )
    return config


def timed(command, env=None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"`{' '.join(map(str, command))}` failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return elapsed


def read_records(path: Path):
    """The records of a file, or of every part file under a directory (PyFlink's sink),
    sorted, without the lineage headers sluice adds (``sluice.plugin``, ``sluice.source.*``:
    the other contenders have no such thing)."""
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
    )
    records = []
    for file in files:
        for line in file.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            record["headers"] = [h for h in record["headers"] if not h[0].startswith("sluice.")]
            records.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
    records.sort()
    return records


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 events, one round")
    parser.add_argument("--sluice", type=Path, default=ROOT / "target/release/sluice")
    parser.add_argument("--without", action="append", default=[], help="skip a contender (by its label's start)")
    args = parser.parse_args()
    if args.quick:
        args.events, args.rounds = 20_000, 1

    flink_python = os.environ.get("SLUICE_PYFLINK_PYTHON", "python3")
    probe = subprocess.run(
        [flink_python, "-c", "import pyflink, importlib.metadata as m; print(m.version('apache-flink'))"],
        capture_output=True, text=True,
    )
    if probe.returncode != 0:
        print(
            f"skipped: apache-flink is not installed for `{flink_python}` "
            "(`python3 -m venv v && v/bin/pip install apache-flink==2.3.0`, then "
            "SLUICE_PYFLINK_PYTHON=v/bin/python; it also needs Java 17 on the PATH)"
        )
        return
    flink_version = probe.stdout.strip()
    missing = [str(p) for p in [args.sluice, *COMPONENTS.values()] if not p.is_file()]
    if missing:
        sys.exit(
            "missing: " + ", ".join(missing) + " (`cargo build --release -p sluice` and "
            "`cargo build -p sluice-tests --benches`, which builds the plugins)"
        )

    work = Path(tempfile.mkdtemp(prefix="sluice-pyflink-"))
    try:
        events_file = work / "events.jsonl"
        with events_file.open("w", encoding="utf-8") as f:
            for line in events(args.events):
                f.write(line + "\n")
        size = events_file.stat().st_size / args.events
        env = dict(os.environ, PYTHONPATH=str(SDK_PYTHON))

        contenders = []  # (label, argv, env, where the output goes)
        for p in (1, 2):
            out = work / f"out-pyflink-{p}"
            contenders.append((
                f"PyFlink {flink_version}, parallelism {p}",
                [flink_python, HERE / "job.py", events_file, out, str(p), SDK_PYTHON],
                env,
                out,
            ))
        out = work / "out-plain.jsonl"
        contenders.append((
            "plain CPython loop, same mapping, no framework",
            [sys.executable, HERE / "mapping.py", events_file, out],
            env,
            out,
        ))
        for language, component in COMPONENTS.items():
            suffix = {"Rust": "", "Python": "-py", "JavaScript": "-js"}[language]
            # Like PyFlink at parallelism 1 and 2: the plugin on one instance, and the
            # slow ones (Python, JavaScript) also divided among two.
            for parallelism in (1, 2) if language != "Rust" else (1,):
                out = work / f"out-{component.stem}-{parallelism}.jsonl"
                config = sluice_config(
                    work, f"{component.stem}-{parallelism}", component, events_file, out, parallelism
                )
                contenders.append((
                    f"sluice + customers-cdm{suffix} ({language})"
                    + (f", parallelism {parallelism}" if parallelism > 1 else ""),
                    [args.sluice, "run", "--config", config],
                    None,
                    out,
                ))
            # Compile once into the cache; the rounds load it like any restart does.
            warm_input = work / "warm.jsonl"
            warm_input.write_text(next(events(1)) + "\n")
            warm = sluice_config(work, "warm", component, warm_input, work / "warm-out.jsonl")
            timed([args.sluice, "run", "--config", warm])
        contenders = [c for c in contenders if not any(c[0].startswith(w) for w in args.without)]

        seconds = {label: [] for label, _, _, _ in contenders}
        expected = None
        loads = [load()]
        for round_ in range(args.rounds):
            for label, command, env_, out in contenders:
                if out.is_dir():
                    shutil.rmtree(out)
                elif out.exists():
                    out.unlink()
                seconds[label].append(timed(command, env_))
                lines = read_records(out)
                if expected is None:
                    expected = lines
                    if len(expected) != args.events:
                        sys.exit(f"{label}: {len(expected)} records for {args.events} events")
                elif lines != expected:
                    diff = next((a, b) for a, b in zip(lines + [None] * len(expected), expected) if a != b)
                    sys.exit(f"{label} differs from {contenders[0][0]}: {diff[0]!r} vs {diff[1]!r}")
            loads.append(load())

        base = statistics.median(seconds[contenders[0][0]])
        plain = statistics.median(seconds.get("plain CPython loop, same mapping, no framework", [base]))
        print(
            f"{args.events:,} Debezium customers updates ({size:.0f} B per line), file in → file out, "
            f"median of {args.rounds}, outputs equal; load average {', '.join(loads)} (start, after each round)"
        )
        print()
        print(f"| contender | seconds | events/s | vs {contenders[0][0]} | vs plain CPython |")
        print("|---|---:|---:|---:|---:|")
        for label, _, _, _ in contenders:
            median = statistics.median(seconds[label])
            print(
                f"| {label} | {median:.1f} | {args.events / median:,.0f} | "
                f"{base / median:.2f}× | {plain / median:.2f}× |"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
