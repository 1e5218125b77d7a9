//! The `sluice` binary's command line: errors are one clear line naming the file and the
//! problem, with a non-zero exit code. (End-to-end runs with real plugins are in the
//! repository's `tests/` crate.)

use std::process::Command;

fn sluice(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("SLUICE_LOG", "error")
        .output()
        .expect("run sluice")
}

#[test]
fn a_bad_config_is_refused_with_every_problem_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[source]\ntype = \"file\"\npath = \"nope.jsonl\"\n[sink]\ntype = \"file\"\n[[plugin]]\nname = \"x\"\ninputs = [\"a\"]\noutputs = [\"b\"]\n",
    )
    .expect("write config");
    let output = sluice(&["run", "--config", config.to_str().expect("utf-8 path")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.starts_with(&format!(
            "error: {}: invalid configuration:",
            config.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("source.path: nope.jsonl does not exist"),
        "{stderr}"
    );
    assert!(stderr.contains("plugin[0].path: missing"), "{stderr}");
}

#[test]
fn a_missing_config_file_is_named() {
    let output = sluice(&["run", "--config", "/definitely/not/here.toml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("/definitely/not/here.toml: cannot read"),
        "{stderr}"
    );
}

#[test]
fn plugin_test_names_a_missing_component() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "").expect("write");
    let output = sluice(&[
        "plugin",
        "test",
        "/no/such/plugin.wasm",
        "--input",
        input.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("/no/such/plugin.wasm: refused (unreadable): No such file"),
        "{stderr}"
    );
}

#[test]
fn help_lists_the_commands() {
    let output = sluice(&["--help"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    for command in ["run", "plugin"] {
        assert!(stdout.contains(command), "{stdout}");
    }
    let output = sluice(&["plugin", "--help"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for command in ["build", "check", "test"] {
        assert!(stdout.contains(command), "{stdout}");
    }
}
