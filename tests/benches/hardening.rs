//! What the loading and memory hardening costs and bounds (BENCHMARKS.md, "Hardening:
//! loading and memory"), measured in one run:
//!
//! 1. the compile bound: `wasmparser`'s shape pass against the compile it guards, per
//!    real component (and each component's shape, which the limits are set from);
//! 2. host peak memory for N plugins capped at 64 MiB that each fill their cap, try to
//!    pass it with memory and with a table bomb;
//! 3. time from SIGTERM to exit while a plugin's `init` loops, against SIGTERM to an
//!    idle pipeline (needs the `sluice` binary of the same profile).
//!
//! `cargo bench -p sluice-tests --bench hardening` (release; `--profile dev` for a quick
//! run against the debug binary).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_runtime::debezium::{Decoded, RawRecord, decode};
use sluice_runtime::{ChangeEvent, MemoryCap, PluginLimits, PluginSpec, Runtime, RuntimeOptions};
use sluice_tests::{components, sluice_bin};

const CAP_MIB: u64 = 64;
const PLUGINS: usize = 8;

fn main() {
    // Memory first: the compiles below leave the allocator holding hundreds of MiB
    // that would hide what the plugins take.
    memory_per_plugin();
    compile_bound();
    shutdown_during_init();
}

fn compile_bound() {
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    println!(
        "| component | size | functions | largest body | most locals | shape pass | compile | pass / compile |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, path) in [
        ("stamp (Rust)", components::STAMP),
        ("customers-cdm (Rust)", components::CUSTOMERS_CDM),
        ("customers-cdm (JavaScript)", components::CUSTOMERS_CDM_JS),
        ("customers-cdm (Python)", components::CUSTOMERS_CDM_PY),
    ] {
        let bytes = std::fs::read(path).expect("component");
        let mut shape = None;
        let mut pass = Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            shape = Some(sluice_runtime::compile::measure(&bytes).expect("shape"));
            pass = pass.min(started.elapsed());
        }
        let shape = shape.expect("measured");
        let started = Instant::now();
        runtime
            .engine()
            .precompile_component(&bytes)
            .expect("compiles");
        let compile = started.elapsed();
        println!(
            "| {name} | {:.1} MB | {} | {} B | {} | {:.1} ms | {:.0} ms | {:.2}% |",
            bytes.len() as f64 / 1e6,
            shape.functions,
            shape.largest_body_bytes,
            shape.most_locals,
            pass.as_secs_f64() * 1e3,
            compile.as_secs_f64() * 1e3,
            100.0 * pass.as_secs_f64() / compile.as_secs_f64()
        );
    }
    println!();
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib / 1024.0
}

fn event(fields: serde_json::Value) -> ChangeEvent {
    let value = serde_json::json!({
        "before": null, "after": fields, "op": "c", "ts_ms": 1,
        "source": {"connector": "sqlserver", "name": "s", "db": "d", "schema": "dbo", "table": "t", "snapshot": "false"},
    });
    let raw = RawRecord {
        timestamp: None,
        key: Some(b"{\"id\":1}".to_vec()),
        value: Some(value.to_string().into_bytes()),
        headers: vec![],
        origin: sluice_core::Origin {
            topic: "in".into(),
            partition: 0,
            offset: 0,
        },
        unreadable: None,
    };
    match decode(raw) {
        Ok(Decoded::Event(event)) => event,
        _ => panic!("event decodes"),
    }
}

/// A core module declaring `tables` funcref tables of `elements` each.
fn table_bomb(tables: u8, elements: u32) -> Vec<u8> {
    let mut min = Vec::new();
    let mut n = elements;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            min.push(byte);
            break;
        }
        min.push(byte | 0x80);
    }
    let mut section = vec![tables];
    for _ in 0..tables {
        section.extend([0x70, 0x00]);
        section.extend(&min);
    }
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    module.push(4);
    module.extend([
        (section.len() as u8 & 0x7f) | 0x80,
        (section.len() >> 7) as u8,
    ]);
    module.extend(section);
    module
}

fn memory_per_plugin() {
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let limits = PluginLimits {
        memory_bytes: CAP_MIB << 20,
        ..PluginLimits::default()
    };
    let bytes = std::fs::read(components::POISON).expect("poison");
    let baseline = peak_rss_mib();
    let fill = event(serde_json::json!({"id": 1, "grow_mib": CAP_MIB - 16}));
    let pass = event(serde_json::json!({"id": 2, "grow_mib": CAP_MIB * 4}));
    let bomb = wasmtime::Module::new(runtime.engine(), table_bomb(100, 1_000_000)).expect("bomb");
    let mut kept = Vec::new();
    let mut trapped = 0;
    for i in 0..PLUGINS {
        let spec = PluginSpec {
            name: format!("p{i}"),
            version: "1".into(),
            config: vec![],
            limits,
        };
        let loaded = runtime.load_bytes(spec, &bytes, "poison").expect("load");
        let mut instance = loaded.instantiate().expect("init");
        instance
            .transform_batch(std::slice::from_ref(&fill))
            .expect("fills");
        // Passing the cap traps that instance (and frees it).
        let mut other = loaded.instantiate().expect("init");
        trapped += usize::from(other.transform_batch(std::slice::from_ref(&pass)).is_err());
        // A table bomb in a store under the same cap.
        let mut store = wasmtime::Store::new(runtime.engine(), MemoryCap::new(&limits));
        store.limiter(|cap| cap);
        trapped += usize::from(wasmtime::Instance::new(&mut store, &bomb, &[]).is_err());
        kept.push(instance);
    }
    let peak = peak_rss_mib();
    println!(
        "{PLUGINS} plugins capped at {CAP_MIB} MiB, each holding {} MiB and refused past its cap \
         ({trapped}/{} attempts trapped): host peak RSS {peak:.0} MiB, {baseline:.0} MiB before loading; \
         {:.1} MiB per plugin = {:.2}x its cap",
        CAP_MIB - 16,
        2 * PLUGINS,
        (peak - baseline) / PLUGINS as f64,
        (peak - baseline) / PLUGINS as f64 / CAP_MIB as f64
    );
    println!();
    drop(kept);
}

/// Runs `sluice run` on `plugins` with standard input open; returns the process and
/// its log lines as they come.
fn start(dir: &Path, plugins: &Path) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let config = dir.join("run.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\ntype = \"file\"\npath = \"-\"\n[sink]\ntype = \"file\"\npath = \"-\"\n\
             [runtime]\nplugins_dir = {:?}\ncache_dir = {:?}\n",
            plugins.display().to_string(),
            dir.join("cache").display().to_string()
        ),
    )
    .expect("config");
    let mut child = Command::new(sluice_bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice");
    let (lines, log) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    (child, log)
}

fn sigterm_to_exit(spin: bool) -> Duration {
    let root = tempfile::tempdir().expect("tempdir");
    let team = root.path().join("plugins").join("t");
    std::fs::create_dir_all(&team).expect("dir");
    std::fs::copy(components::POISON, team.join("p.wasm")).expect("component");
    let config = if spin {
        "[config]\ninit_spin = \"true\"\n[limits]\ninit_deadline = \"60s\"\n"
    } else {
        ""
    };
    std::fs::write(
        team.join("p.toml"),
        format!("inputs = [\"in\"]\noutputs = [\"out\"]\n{config}"),
    )
    .expect("manifest");
    let (mut child, log) = start(root.path(), &root.path().join("plugins"));
    let ready = if spin {
        "plugin compiled"
    } else {
        "lane starting"
    };
    while !log
        .recv_timeout(Duration::from_secs(120))
        .expect("sluice logs")
        .contains(ready)
    {}
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    child.wait().expect("exits");
    started.elapsed()
}

fn shutdown_during_init() {
    let mut idle = Duration::MAX;
    let mut loading = Duration::MAX;
    for _ in 0..3 {
        idle = idle.min(sigterm_to_exit(false));
        loading = loading.min(sigterm_to_exit(true));
    }
    println!(
        "SIGTERM to exit, best of 3: idle pipeline {:.0} ms; during a looping init (60 s deadline) {:.0} ms ({:.1}x)",
        idle.as_secs_f64() * 1e3,
        loading.as_secs_f64() * 1e3,
        loading.as_secs_f64() / idle.as_secs_f64()
    );
}
