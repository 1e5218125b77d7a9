//! Hostile plugin files and plugins that stall loading (issue 11, part A): special files
//! and links out of the plugins directory are refused at start-up and on hot reload; a
//! manifest cannot name a file outside its team folder; a looping `init` delays neither
//! another team's deploy nor the shutdown; a deadline too large to count in ticks does
//! not panic; a table bomb stays within the memory cap; a compile bomb is refused before
//! Cranelift sees it; a reloader whose watch fails recovers.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_pipeline::reload::Reloader;
use sluice_runtime::{PluginLimits, Runtime, RuntimeOptions, StoreMemoryExceeded};
use sluice_tests::{components, sluice_bin};

use crate::support::{create_event, create_record_of, plugin};

/// `sluice run` reading standard input, writing standard output, serving `plugins`;
/// its log lines are collected (colour codes stripped) as they come.
struct Running {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(dir: &Path, plugins: &Path) -> Self {
        let config = dir.join("run.toml");
        std::fs::write(
            &config,
            format!(
                "[source]\ntype = \"file\"\npath = \"-\"\n[sink]\ntype = \"file\"\npath = \"-\"\n\
                 [pipeline]\nbatch_size = 1\n[runtime]\ncache_dir = \"\"\nplugins_dir = {:?}\n",
                plugins.display().to_string()
            ),
        )
        .expect("config");
        let mut child = Command::new(sluice_bin())
            .args(["run", "--config"])
            .arg(&config)
            .env("SLUICE_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sluice");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().expect("log").push(strip_ansi(&line));
            }
        });
        Self { child, log }
    }

    /// Waits (at most `within`) for a log line containing every one of `parts`.
    fn wait_for_log(&self, parts: &[&str], within: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self
                .log
                .lock()
                .expect("log")
                .iter()
                .find(|line| parts.iter().all(|part| line.contains(part)))
            {
                return line.clone();
            }
            assert!(
                started.elapsed() < within,
                "no log line with {parts:?} within {within:?}; log:\n{}",
                self.log.lock().expect("log").join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// Waits (at most `within`) for the process to exit; how long it took.
    fn exits_within(&mut self, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(
                    status.success(),
                    "exit status {status}; log:\n{}",
                    self.log_text()
                );
                return started.elapsed();
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                panic!("still running after {within:?}; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn manifest(name: &str, extra: &str) -> String {
    format!("name = \"{name}\"\ninputs = [\"in\"]\noutputs = [\"out\"]\n{extra}")
}

/// A plugins directory with a good `stamp` plugin (team `crm`) and a team `evil` whose
/// files break each rule; `outside` holds a component outside the plugins directory.
fn hostile_plugins(root: &Path) -> std::path::PathBuf {
    let plugins = root.join("plugins");
    let crm = plugins.join("crm");
    let evil = plugins.join("evil");
    let outside = root.join("outside");
    for dir in [&crm, &evil, &outside] {
        std::fs::create_dir_all(dir).expect("dir");
    }
    std::fs::copy(components::STAMP, crm.join("stamp.wasm")).expect("component");
    std::fs::write(
        crm.join("stamp.toml"),
        manifest("stamp", "[config]\nstamp = \"good\"\n"),
    )
    .expect("manifest");
    std::fs::copy(components::STAMP, outside.join("stolen.wasm")).expect("component");
    // A component that is a device, a FIFO, a link out of the directory.
    std::os::unix::fs::symlink("/dev/zero", evil.join("zero.wasm")).expect("symlink");
    std::fs::write(evil.join("zero.toml"), manifest("zero", "")).expect("manifest");
    mkfifo(&evil.join("fifo.wasm"));
    std::fs::write(evil.join("fifo.toml"), manifest("fifo", "")).expect("manifest");
    std::os::unix::fs::symlink(outside.join("stolen.wasm"), evil.join("link.wasm"))
        .expect("symlink");
    std::fs::write(evil.join("link.toml"), manifest("link", "")).expect("manifest");
    // Manifests naming files outside their team folder.
    let absolute = format!(
        "path = {:?}\n",
        outside.join("stolen.wasm").display().to_string()
    );
    std::fs::write(evil.join("absolute.toml"), manifest("absolute", &absolute)).expect("manifest");
    std::fs::write(
        evil.join("climb.toml"),
        manifest("climb", "path = \"../crm/stamp.wasm\"\n"),
    )
    .expect("manifest");
    // A manifest whose file name would forge a log line.
    std::fs::copy(components::STAMP, evil.join("forged.wasm")).expect("component");
    std::fs::write(
        evil.join("x\nERROR forged line.toml"),
        manifest("forged", "path = \"forged.wasm\"\nteam = 1\n"),
    )
    .expect("manifest");
    plugins
}

/// The refusal lines each hostile file must produce: (manifest name, rule).
const REFUSALS: [(&str, &str); 6] = [
    // A link to a device leaves the folder before it is a device.
    ("zero.toml", "outside_folder"),
    ("fifo.toml", "not_regular_file"),
    ("link.toml", "outside_folder"),
    ("absolute.toml", "path_not_confined"),
    ("climb.toml", "path_not_confined"),
    ("x\\nERROR forged line.toml", "manifest"),
];

#[test]
fn hostile_plugin_files_are_refused_at_startup_and_on_hot_reload() {
    let root = tempfile::tempdir().expect("tempdir");
    let plugins = hostile_plugins(root.path());
    let mut sluice = Running::start(root.path(), &plugins);
    for (file, rule) in REFUSALS {
        sluice.wait_for_log(
            &["plugin refused", file, &format!("rule=\"{rule}\"")],
            Duration::from_secs(60),
        );
    }
    sluice.wait_for_log(&["plugin version loaded", "stamp"], Duration::from_secs(60));

    // The same files dropped in while running (another team, new names).
    let late = plugins.join("late");
    std::fs::create_dir(&late).expect("dir");
    mkfifo(&late.join("fifo2.wasm"));
    std::fs::write(late.join("fifo2.toml"), manifest("fifo2", "")).expect("manifest");
    std::os::unix::fs::symlink("/dev/urandom", late.join("random.wasm")).expect("symlink");
    std::fs::write(late.join("random.toml"), manifest("random", "")).expect("manifest");
    std::fs::write(
        late.join("steal.toml"),
        manifest("steal", "path = \"../crm/stamp.wasm\"\n"),
    )
    .expect("manifest");
    for (file, rule) in [
        ("fifo2.toml", "not_regular_file"),
        ("random.toml", "outside_folder"),
        ("steal.toml", "path_not_confined"),
    ] {
        sluice.wait_for_log(
            &["plugin refused", file, &format!("rule=\"{rule}\"")],
            Duration::from_secs(60),
        );
    }

    // The version in service kept running: an event goes through it.
    {
        let mut stdin = sluice.child.stdin.take().expect("stdin");
        writeln!(stdin, "{}", create_event(json!({"id": 7}))).expect("event");
    }
    sluice.exits_within(Duration::from_secs(30));
    let mut stdout = String::new();
    std::io::Read::read_to_string(sluice.child.stdout.as_mut().expect("stdout"), &mut stdout)
        .expect("stdout");
    assert!(
        stdout.contains(r#"\"stamp\":\"good\""#) || stdout.contains("good"),
        "the good plugin served: {stdout}"
    );
    let log = sluice.log_text();
    assert!(
        !log.lines()
            .any(|line| line.starts_with("ERROR forged line")),
        "a file name forged a log line:\n{log}"
    );
    for hostile in [
        "zero", "fifo", "link", "absolute", "climb", "steal", "random",
    ] {
        assert!(
            !log.contains(&format!("plugin=\"{hostile}\""))
                && !log.contains(&format!("plugin={hostile} ")),
            "{hostile} was loaded:\n{log}"
        );
    }
}

/// A plugin's text (a rejection's reason, which often quotes the event; an `init`
/// refusal) and the input's own (a file line's `topic`) reach the host's log: made
/// printable there, none of it can write a line of the log that looks like the host's.
/// A reason with a newline did, before: `reason=no` then a line `ERROR forged ...`.
#[test]
fn plugin_and_input_text_cannot_forge_log_lines() {
    let root = tempfile::tempdir().expect("tempdir");
    let plugins = root.path().join("plugins");
    let crm = plugins.join("crm");
    std::fs::create_dir_all(&crm).expect("dir");
    std::fs::copy(components::POISON, crm.join("poison.wasm")).expect("component");
    std::fs::write(crm.join("poison.toml"), manifest("poison", "")).expect("manifest");
    std::fs::copy(components::POISON, crm.join("refuser.wasm")).expect("component");
    std::fs::write(
        crm.join("refuser.toml"),
        manifest(
            "refuser",
            "[config]\ninit_reject = \"refused\\nERROR forged init line\"\n",
        ),
    )
    .expect("manifest");
    let mut sluice = Running::start(root.path(), &plugins);
    sluice.wait_for_log(
        &["plugin version loaded", "poison"],
        Duration::from_secs(60),
    );
    sluice.wait_for_log(
        &["plugin refused", "refuser.toml", "rule=\"init\""],
        Duration::from_secs(60),
    );
    {
        let mut stdin = sluice.child.stdin.take().expect("stdin");
        let reject = create_event(json!({"id": 1, "reject": "no\nERROR forged reason line"}));
        writeln!(stdin, "{reject}").expect("event");
        let topic = json!({"topic": "in\nERROR forged topic line", "key": {"id": 2}, "value": {"not": "an envelope"}});
        writeln!(stdin, "{topic}").expect("line");
    }
    sluice.exits_within(Duration::from_secs(30));
    let log = sluice.log_text();
    sluice.wait_for_log(
        &[
            "event sent to the dead-letter topic",
            "no\\nERROR forged reason line",
        ],
        Duration::from_secs(1),
    );
    sluice.wait_for_log(
        &[
            "malformed record sent to the dead-letter topic",
            "in\\nERROR forged topic line",
        ],
        Duration::from_secs(1),
    );
    assert!(
        !log.lines().any(|line| line.starts_with("ERROR forged")),
        "a plugin's or the input's text wrote a line of the log:\n{log}"
    );

    // `plugin check` prints an `init` refusal the same way.
    let check = Command::new(sluice_bin())
        .args(["plugin", "check"])
        .arg(&plugins)
        .env("NO_COLOR", "1")
        .output()
        .expect("sluice plugin check");
    let printed = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "{printed}");
    assert!(
        printed.contains("refused\\nERROR forged init line"),
        "{printed}"
    );
    assert!(
        !printed.lines().any(|line| line.starts_with("ERROR forged")),
        "{printed}"
    );
}

#[test]
fn plugin_check_refuses_special_files_without_hanging() {
    let root = tempfile::tempdir().expect("tempdir");
    let plugins = hostile_plugins(root.path());
    let mut child = Command::new(sluice_bin())
        .args(["plugin", "check"])
        .arg(&plugins)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice plugin check");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("sluice plugin check hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("stdout"), &mut stdout)
        .expect("stdout");
    assert_eq!(status.code(), Some(1), "{stdout}");
    for rule in ["not_regular_file", "outside_folder", "path_not_confined"] {
        assert!(stdout.contains(rule), "{rule} named:\n{stdout}");
    }
    assert!(stdout.contains("7 plugins, 6 refused"), "{stdout}");
}

/// A team folder whose `spin` plugin loops in `init` until its 60 s init deadline.
fn deploy_spinning_init(team: &Path) {
    std::fs::create_dir_all(team).expect("team");
    std::fs::copy(components::POISON, team.join("spin.wasm")).expect("component");
    std::fs::write(
        team.join("spin.toml"),
        manifest(
            "spin",
            "[config]\ninit_spin = \"true\"\n[limits]\ninit_deadline = \"60s\"\n",
        ),
    )
    .expect("manifest");
}

#[test]
fn sigterm_during_a_long_init_at_startup_exits_promptly() {
    let root = tempfile::tempdir().expect("tempdir");
    let plugins = root.path().join("plugins");
    deploy_spinning_init(&plugins.join("slow"));
    let mut sluice = Running::start(root.path(), &plugins);
    // Compiled: from here on it is in `init`, for up to 60 s.
    sluice.wait_for_log(&["plugin compiled", "spin"], Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    sluice.signal("TERM");
    let took = sluice.exits_within(Duration::from_secs(10));
    eprintln!("SIGTERM to exit during init: {took:?}");
}

#[test]
fn end_of_input_during_a_hot_reload_init_exits_promptly() {
    let root = tempfile::tempdir().expect("tempdir");
    let plugins = root.path().join("plugins");
    let crm = plugins.join("crm");
    std::fs::create_dir_all(&crm).expect("dir");
    std::fs::copy(components::STAMP, crm.join("stamp.wasm")).expect("component");
    std::fs::write(crm.join("stamp.toml"), manifest("stamp", "")).expect("manifest");
    let mut sluice = Running::start(root.path(), &plugins);
    sluice.wait_for_log(&["plugin version loaded", "stamp"], Duration::from_secs(60));
    deploy_spinning_init(&plugins.join("slow"));
    sluice.wait_for_log(&["plugin compiled", "spin"], Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    drop(sluice.child.stdin.take());
    let took = sluice.exits_within(Duration::from_secs(10));
    eprintln!("end of input to exit during a reload's init: {took:?}");
}

#[test]
fn a_looping_init_does_not_delay_another_teams_deploy() {
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        let plugins = tempfile::tempdir().expect("tempdir");
        let runtime = Arc::new(Runtime::new(RuntimeOptions::default()).expect("runtime"));
        let (reloader, mut table) = {
            let (runtime, dir) = (Arc::clone(&runtime), plugins.path().to_owned());
            tokio::task::spawn_blocking(move || Reloader::start(runtime, dir, Vec::new(), None))
                .await
                .expect("start")
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let watcher = tokio::spawn(reloader.watch(async move {
            let _ = stopped.await;
        }));
        // Team `slow` deploys a plugin stuck in `init` (60 s deadline); then team `crm`.
        deploy_spinning_init(&plugins.path().join("slow"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let crm = plugins.path().join("crm");
        std::fs::create_dir(&crm).expect("dir");
        std::fs::copy(components::STAMP, crm.join("stamp.wasm")).expect("component");
        std::fs::write(crm.join("stamp.toml"), manifest("stamp", "")).expect("manifest");
        let deployed = Instant::now();
        let serving = tokio::time::timeout(
            Duration::from_secs(40),
            table.wait_for(|routes| {
                routes
                    .iter()
                    .any(|route| route.plugin.plugin().name() == "stamp")
            }),
        )
        .await;
        let routes = serving
            .expect("crm's deploy landed while slow's init was still looping")
            .expect("table")
            .clone();
        assert!(
            routes.iter().all(|r| r.plugin.plugin().name() != "spin"),
            "the looping plugin is not serving"
        );
        eprintln!("crm deploy beside a looping init: {:?}", deployed.elapsed());
        stop.send(()).expect("watcher running");
        // Well under the init's 60 s deadline: the watch observes shutdown in its
        // debounce and while a rescan runs (the rescan is left to finish on its own).
        let stopped = tokio::time::timeout(Duration::from_secs(5), watcher).await;
        assert!(
            stopped.is_ok(),
            "the watch stops without waiting for the looping init"
        );
    });
}

/// A record the plugin's limits allow is published whole, however large: wasmtime
/// bounds what one call copies out of a guest (128 MiB by default), and the host
/// raises that bound to the plugin's memory cap, which bounds its output anyway.
#[test]
fn an_output_over_wasmtimes_default_copy_bound_but_within_the_limits_is_published() {
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let mut config = plugin("poison", components::POISON, &["in"], &["out"], &[]);
    // The guest holds the record and its outcome buffer, which grows by doubling.
    config.spec.limits.memory_bytes = 1 << 30;
    config.spec.limits.max_record_bytes = 200 << 20;
    let loaded = runtime.load_file(config.spec, &config.path).expect("load");
    let raw = create_record_of(json!({"id": 1, "huge_mib": 150}));
    let Ok(sluice_runtime::debezium::Decoded::Event(event)) = sluice_runtime::debezium::decode(raw)
    else {
        panic!("the event decodes");
    };
    let mut worker = sluice_runtime::PluginWorker::new(loaded.instantiate().expect("instantiate"));
    let outcomes = worker.transform(&[event]);
    match &outcomes[..] {
        [sluice_runtime::Outcome::Records(records)] => {
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].value.as_ref().map(Vec::len), Some(150 << 20));
        }
        other => panic!(
            "one record of 150 MiB: {:?}",
            other
                .iter()
                .map(|o| format!("{o:?}").chars().take(300).collect::<String>())
                .collect::<Vec<_>>()
        ),
    }
}

/// A plugin cannot hold its lane by sleeping. A sleep is a wait on a WASI timer inside
/// a host call, where no CPU deadline reaches; in the sandbox (its clocks are stopped)
/// every timer is due at once, so a sleep of an hour, or of longer than the host can
/// represent, returns at once.
#[test]
fn a_plugin_that_sleeps_does_not_hold_its_lane() {
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let config = plugin("poison", components::POISON, &["in"], &["out"], &[]);
    let loaded = runtime.load_file(config.spec, &config.path).expect("load");
    let events: Vec<_> = [
        json!({"id": 1, "sleep_ms": 3_600_000}),
        json!({"id": 2, "sleep_ms": u64::MAX}),
        json!({"id": 3}),
    ]
    .into_iter()
    .map(
        |row| match sluice_runtime::debezium::decode(create_record_of(row)) {
            Ok(sluice_runtime::debezium::Decoded::Event(event)) => event,
            _ => panic!("the event decodes"),
        },
    )
    .collect();
    let mut worker = sluice_runtime::PluginWorker::new(loaded.instantiate().expect("instantiate"));
    // On a thread of its own, so that a sleep that does hold it fails the test instead
    // of hanging it.
    let (done, finished) = std::sync::mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let _ = done.send(worker.transform(&events));
    });
    let outcomes = finished
        .recv_timeout(Duration::from_secs(30))
        .expect("the sleeping events return at once, not after an hour");
    assert!(
        outcomes
            .iter()
            .all(|outcome| matches!(outcome, sluice_runtime::Outcome::Records(r) if r.len() == 1)),
        "{outcomes:?}"
    );
    eprintln!("three events, two of them asleep: {:?}", started.elapsed());
}

#[test]
fn a_deadline_too_large_for_epoch_ticks_does_not_panic() {
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let mut config = plugin("stamp", components::STAMP, &["in"], &["out"], &[]);
    config.spec.limits = PluginLimits {
        batch_deadline: Duration::MAX,
        init_deadline: Duration::from_secs(u64::MAX),
        ..PluginLimits::default()
    };
    let loaded = runtime.load_file(config.spec, &config.path).expect("load");
    let mut instance = loaded.instantiate().expect("init under a huge deadline");
    let outcomes = instance
        .transform_batch(&[])
        .expect("a call under a huge deadline");
    assert!(outcomes.is_empty());
}

/// A core module declaring `tables` funcref tables of `elements` each.
fn table_bomb(tables: u32, elements: u32) -> Vec<u8> {
    fn leb(mut n: u32, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut section = Vec::new();
    leb(tables, &mut section);
    for _ in 0..tables {
        section.push(0x70); // funcref
        section.push(0x00); // limits: min only
        leb(elements, &mut section);
    }
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    module.push(4); // the table section
    leb(section.len() as u32, &mut module);
    module.extend(section);
    module
}

#[test]
fn a_table_bomb_is_refused_within_the_memory_cap() {
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let engine = runtime.engine();
    // 100 tables of a million elements: ~800 MB of host memory, against a 64 MiB cap.
    let module = wasmtime::Module::new(engine, table_bomb(100, 1_000_000)).expect("module");
    let limits = PluginLimits::default();
    let mut store = wasmtime::Store::new(engine, sluice_runtime::MemoryCap::new(&limits));
    store.limiter(|cap| cap);
    let err =
        wasmtime::Instance::new(&mut store, &module, &[]).expect_err("the tables pass the cap");
    let exceeded = err
        .downcast_ref::<StoreMemoryExceeded>()
        .unwrap_or_else(|| panic!("not the memory cap: {err:#}"));
    assert_eq!(exceeded.what, "tables");
    assert!(exceeded.current as u64 <= limits.memory_bytes, "{exceeded}");
    // Within the cap, tables are fine.
    let small = wasmtime::Module::new(engine, table_bomb(4, 1_000)).expect("module");
    let mut store = wasmtime::Store::new(engine, sluice_runtime::MemoryCap::new(&limits));
    store.limiter(|cap| cap);
    wasmtime::Instance::new(&mut store, &small, &[]).expect("small tables fit");
}

/// A component whose one core module has a function with `locals` locals.
fn locals_bomb(locals: u32) -> Vec<u8> {
    let mut body = vec![0x01]; // one group of locals
    body.extend(leb_u32(locals));
    body.push(0x7f); // i32
    body.push(0x0b); // end
    let mut code = vec![0x01]; // one body
    code.extend(leb_u32(body.len() as u32));
    code.extend(body);
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    module.extend([0x01, 0x04, 0x01, 0x60, 0x00, 0x00]); // type section: () -> ()
    module.extend([0x03, 0x02, 0x01, 0x00]); // function section: one of type 0
    module.push(0x0a); // code section
    module.extend(leb_u32(code.len() as u32));
    module.extend(code);
    let mut component = b"\0asm\x0d\0\x01\0".to_vec();
    component.push(0x01); // a core module section
    component.extend(leb_u32(module.len() as u32));
    component.extend(module);
    component
}

fn leb_u32(mut n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[test]
fn a_compile_bomb_is_refused_before_compiling() {
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let spec = plugin("bomb", components::STAMP, &["in"], &["out"], &[]).spec;
    let err = runtime
        .load_bytes(spec, &locals_bomb(50_000), "bomb.wasm")
        .expect_err("refused");
    let message = err.to_string();
    assert!(
        message.contains("bomb.wasm: too complex to compile") && message.contains("50000 locals"),
        "{message}"
    );
}

#[test]
fn a_reloader_whose_watch_fails_recovers_and_keeps_deploying() {
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        let root = tempfile::tempdir().expect("tempdir");
        let plugins = root.path().join("plugins");
        std::fs::create_dir(&plugins).expect("dir");
        let runtime = Arc::new(Runtime::new(RuntimeOptions::default()).expect("runtime"));
        let (reloader, mut table) = {
            let (runtime, dir) = (Arc::clone(&runtime), plugins.clone());
            tokio::task::spawn_blocking(move || Reloader::start(runtime, dir, Vec::new(), None))
                .await
                .expect("start")
        };
        let stats = reloader.stats_handle();
        // The directory vanishes before the watch starts (a volume remounted).
        std::fs::remove_dir(&plugins).expect("remove");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let watcher = tokio::spawn(reloader.watch(async move {
            let _ = stopped.await;
        }));
        let started = Instant::now();
        while stats.lock().expect("stats").restarts == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "failure not counted"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!watcher.is_finished(), "the reloader is still alive");
        // Back, with a plugin in it: the reloader picks it up.
        let crm = plugins.join("crm");
        std::fs::create_dir_all(&crm).expect("dir");
        std::fs::copy(components::STAMP, crm.join("stamp.wasm")).expect("component");
        std::fs::write(crm.join("stamp.toml"), manifest("stamp", "")).expect("manifest");
        tokio::time::timeout(
            Duration::from_secs(30),
            table.wait_for(|routes| !routes.is_empty()),
        )
        .await
        .expect("deployed after the watch recovered")
        .expect("table");
        stop.send(()).expect("running");
        watcher.await.expect("task").expect("clean stop");
    });
}
