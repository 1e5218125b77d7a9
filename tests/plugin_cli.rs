//! `sluice plugin test`, run as a user would: the binary, a component, samples, and an
//! expectation that matches or does not.

use std::process::Command;

use sluice_tests::{components, repo_root, sample, sluice_bin};

fn plugin_test(expect: &std::path::Path) -> std::process::Output {
    Command::new(sluice_bin())
        .args(["plugin", "test", components::CUSTOMERS_CDM, "--input"])
        .arg(sample("customers.jsonl"))
        .arg("--expect")
        .arg(expect)
        .env("SLUICE_LOG", "warn")
        .output()
        .expect("run sluice")
}

#[test]
fn a_matching_expectation_passes() {
    let expect = repo_root()
        .join("tests")
        .join("golden")
        .join("customers-cdm.plugin-test.jsonl");
    let output = plugin_test(&expect);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("ok: "), "{stdout}");
}

#[test]
fn a_mismatching_expectation_fails_and_shows_the_difference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read_to_string(
        repo_root()
            .join("tests")
            .join("golden")
            .join("customers-cdm.plugin-test.jsonl"),
    )
    .expect("golden");
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    lines[0] = lines[0].replace("\"customerId\":1001", "\"customerId\":9999");
    lines.pop();
    let expect = dir.path().join("expected.jsonl");
    std::fs::write(&expect, lines.join("\n")).expect("write");
    let output = plugin_test(&expect);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("FAILED: 2 differences"), "{stdout}");
    assert!(
        stdout.contains("record 1:") && stdout.contains("9999"),
        "{stdout}"
    );
    assert!(
        stdout.contains("not expected"),
        "the missing last line is reported: {stdout}"
    );
}

#[test]
fn plugin_build_compiles_a_crate_into_a_loadable_component() {
    let out = tempfile::tempdir().expect("tempdir");
    let output = Command::new(sluice_bin())
        .args(["plugin", "build"])
        .arg(repo_root().join("plugins").join("passthrough"))
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run sluice");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let built = out.path().join("passthrough.wasm");
    assert_eq!(stdout.trim(), built.display().to_string());
    let runtime = sluice_runtime::Runtime::new(Default::default()).expect("runtime");
    let spec = sluice_runtime::PluginSpec {
        name: "passthrough".into(),
        version: "1".into(),
        config: vec![],
        limits: Default::default(),
    };
    let plugin = runtime
        .load_file(spec, &built)
        .expect("the built file is a sluice component");
    plugin.instantiate().expect("and it starts");
}

#[test]
fn plugin_build_of_a_directory_without_a_crate_fails_clearly() {
    let empty = tempfile::tempdir().expect("tempdir");
    let output = Command::new(sluice_bin())
        .args(["plugin", "build"])
        .arg(empty.path())
        .output()
        .expect("run sluice");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("not a plugin project: no Cargo.toml (Rust), package.json (JavaScript) or pyproject.toml (Python)"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&empty.path().display().to_string()),
        "{stderr}"
    );
}

#[test]
fn plugin_check_validates_a_directory_without_running_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let crm = dir.path().join("crm");
    std::fs::create_dir(&crm).expect("team dir");
    std::fs::copy(components::STAMP, crm.join("stamp.wasm")).expect("component");
    std::fs::write(
        crm.join("stamp.toml"),
        "version = \"1.0.0\"\ninputs = [\"in\"]\noutputs = [\"out\"]\n",
    )
    .expect("manifest");
    let check = || {
        Command::new(sluice_bin())
            .args(["plugin", "check"])
            .arg(dir.path())
            .env("SLUICE_LOG", "error")
            .output()
            .expect("run sluice")
    };
    let output = check();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok    ") && stdout.contains("stamp@1.0.0"),
        "{stdout}"
    );

    std::fs::write(crm.join("broken.wasm"), b"not wasm at all").expect("broken component");
    std::fs::write(
        crm.join("broken.toml"),
        "inputs = [\"in\"]\noutputs = [\"out\"]\n",
    )
    .expect("manifest");
    let output = check();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("broken.wasm: not a WebAssembly component"),
        "names the file and the problem: {stdout}"
    );
    assert!(stdout.contains("2 plugins, 1 refused"), "{stdout}");
}

#[test]
fn sluice_run_reads_stdin_and_writes_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("stdio.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\ntype = \"file\"\npath = \"-\"\n[sink]\ntype = \"file\"\npath = \"-\"\n[runtime]\ncache_dir = \"\"\n\
             [[plugin]]\nname = \"customers-cdm\"\nversion = \"0.1.0\"\npath = {:?}\ninputs = [\"server1.testDB.dbo.customers\"]\noutputs = [\"cdm.customer\"]\n",
            components::CUSTOMERS_CDM
        ),
    )
    .expect("config");
    let mut child = Command::new(sluice_bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("SLUICE_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run sluice");
    let input = std::fs::read(sample("customers.jsonl")).expect("sample");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&input).expect("feed stdin");
    }
    let output = child
        .wait_with_output()
        .expect("sluice exits at the end of its input");
    assert!(output.status.success());
    let lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    crate::support::assert_golden(
        &lines,
        &repo_root()
            .join("tests")
            .join("golden")
            .join("customers-cdm.jsonl"),
    );
}

/// A JavaScript plugin whose `transform` export is not made by `sluice.transform(fn)`
/// (the SDK builds the component's export) is refused at build time, saying so.
#[test]
fn plugin_build_refuses_a_javascript_transform_not_made_by_the_sdk() {
    let project = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        project.path().join("package.json"),
        r#"{"name": "hand-made", "main": "index.js"}"#,
    )
    .expect("package.json");
    std::fs::write(
        project.path().join("index.js"),
        "export const transform = { init() {}, transformBatch(events) { return []; } };\n",
    )
    .expect("index.js");
    let out = tempfile::tempdir().expect("tempdir");
    let output = Command::new(sluice_bin())
        .args(["plugin", "build"])
        .arg(project.path())
        .arg("--out")
        .arg(out.path())
        .env("SLUICE_JS_AOT", "0")
        .output()
        .expect("run sluice");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("the plugin's `transform` export is not made by `sluice.transform(fn)`"),
        "{stderr}"
    );
    assert!(!out.path().join("hand_made.wasm").exists());
}
