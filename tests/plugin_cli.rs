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
