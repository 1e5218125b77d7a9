//! `sluice plugin diff`, run as a plugin author's CI would: the binary, two real
//! components built from source, a file of events, and the exit status and report.

use std::process::{Command, Output};

use sluice_tests::{components, sluice_bin};

use crate::support::{create_event, write_lines};

/// Six creates (ids 1–6), rows 2 and 5 asking `poison` to reject them, then a tombstone.
fn events(dir: &std::path::Path) -> std::path::PathBuf {
    let mut lines: Vec<String> = (1..=6)
        .map(|id| {
            if id == 2 || id == 5 {
                create_event(serde_json::json!({"id": id, "reject": "not today"}))
            } else {
                create_event(serde_json::json!({"id": id}))
            }
        })
        .collect();
    lines.push(r#"{"topic":"in","key":{"id":7},"value":null}"#.to_owned());
    write_lines(dir, "events.jsonl", &lines)
}

fn diff(old: &str, new: &str, input: &std::path::Path, extra: &[&str]) -> (Output, String) {
    let output = Command::new(sluice_bin())
        .args(["plugin", "diff", old, new, "--input"])
        .arg(input)
        .args(extra)
        .env("SLUICE_LOG", "error")
        .output()
        .expect("run sluice");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, stdout)
}

#[test]
fn the_same_version_differs_nowhere_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = events(dir.path());
    let (output, stdout) = diff(
        components::STAMP,
        components::STAMP,
        &input,
        &["--config", "stamp=v1"],
    );
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout,
        "compared 7 events: 7 equal, 0 differ, 0 dead-lettered by one version only\n"
    );
}

#[test]
fn a_changed_field_shows_every_differing_event_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = events(dir.path());
    let (output, stdout) = diff(
        components::STAMP,
        components::STAMP,
        &input,
        &[
            "--config",
            "stamp=v1",
            "--new-config",
            "stamp=v2",
            "--max-differences",
            "2",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.ends_with(
            "(2 of 6 differing events shown; --max-differences shows more)\n\
             compared 7 events: 1 equal, 6 differ, 0 dead-lettered by one version only\n"
        ),
        "the tombstone produces nothing from either version: {stdout}"
    );
    let first: Vec<&str> = stdout.lines().take(3).collect();
    assert_eq!(first[0], "event in partition 0 offset 0: differs");
    assert!(
        first[1].starts_with("  old: ") && first[1].contains(r#""stamp":"v1""#),
        "{stdout}"
    );
    assert!(
        first[2].starts_with("  new: ") && first[2].contains(r#""stamp":"v2""#),
        "{stdout}"
    );
    assert!(
        !stdout.contains("sluice.source.offset") && !stdout.contains("sluice.plugin"),
        "lineage headers are not shown or compared: {stdout}"
    );
}

#[test]
fn events_only_the_new_version_rejects_are_counted_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = events(dir.path());
    // `stamp` publishes {"id", "stamp"} for every row; `poison` publishes {"id"} and
    // rejects rows 2 and 5.
    let (output, stdout) = diff(components::STAMP, components::POISON, &input, &[]);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.ends_with(
            "compared 7 events: 1 equal, 4 differ, 2 dead-lettered by one version only\n"
        ),
        "{stdout}"
    );
    let rejected: Vec<&str> = stdout
        .lines()
        .filter(|line| line.ends_with("dead-lettered by the new version only"))
        .collect();
    assert_eq!(
        rejected,
        [
            "event in partition 0 offset 1: dead-lettered by the new version only",
            "event in partition 0 offset 4: dead-lettered by the new version only",
        ]
    );
    assert!(
        stdout.contains("not today"),
        "the dead letter's reason is shown: {stdout}"
    );
}

#[test]
fn a_missing_input_file_is_refused_by_name_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.jsonl");
    let (output, _) = diff(components::STAMP, components::STAMP, &missing, &[]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "not 1, which means \"they differ\""
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nope.jsonl"), "{stderr}");
}
