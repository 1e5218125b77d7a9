//! `sluice plugin new` → `sluice plugin build` → `sluice plugin test` for each language, as
//! an author would run them: the template must build and pass its own bundled sample. A
//! missing toolchain must fail the build with how to install it.

use std::path::Path;
use std::process::{Command, Output};

use sluice_tests::{repo_root, sluice_bin};

fn sluice(args: &[&str], extra: &[&Path]) -> Output {
    Command::new(sluice_bin())
        .args(args)
        .args(extra)
        .env("SLUICE_LOG", "warn")
        .output()
        .expect("run sluice")
}

fn succeeded(output: &Output, step: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{step} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Creates, builds and tests a `lang` project; returns the component's path.
fn new_build_test(lang: &str) -> std::path::PathBuf {
    let parent = tempfile::tempdir().expect("tempdir");
    let name = format!("smoke-{lang}");
    let created = sluice(
        &["plugin", "new", &name, "--lang", lang, "--dir"],
        &[parent.path()],
    );
    let project = parent.path().join(&name);
    assert_eq!(
        succeeded(&created, "plugin new").trim(),
        project.display().to_string()
    );

    // Rust shares the repository's wasm target directory so the SDK is compiled once.
    let target = repo_root().join("target").join("wasm");
    let mut build_args = vec!["plugin", "build"];
    if lang == "rust" {
        build_args.extend(["--target-dir", target.to_str().expect("UTF-8 path")]);
    }
    let out = parent.path().join("out");
    let built = sluice(&build_args, &[&project, Path::new("--out"), &out]);
    let component = out.join(format!("smoke_{lang}.wasm"));
    assert_eq!(
        succeeded(&built, "plugin build").trim(),
        component.display().to_string()
    );

    let tested = sluice(
        &["plugin", "test"],
        &[
            &component,
            Path::new("--input"),
            &project.join("samples/events.jsonl"),
            Path::new("--expect"),
            &project.join("samples/expected.jsonl"),
        ],
    );
    let stdout = succeeded(&tested, "plugin test");
    assert!(stdout.starts_with("ok: 4 records match"), "{stdout}");
    component
}

#[test]
fn a_new_rust_plugin_builds_and_passes_its_sample() {
    new_build_test("rust");
}

#[test]
fn a_new_javascript_plugin_builds_and_passes_its_sample() {
    new_build_test("js");
}

#[test]
fn a_new_python_plugin_builds_and_passes_its_sample() {
    new_build_test("python");
}

#[test]
fn plugin_new_refuses_an_unknown_language_and_an_existing_directory() {
    let parent = tempfile::tempdir().expect("tempdir");
    let output = sluice(
        &["plugin", "new", "x", "--lang", "cobol", "--dir"],
        &[parent.path()],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("possible values: rust, js, python"),
        "{stderr}"
    );

    std::fs::create_dir(parent.path().join("taken")).expect("dir");
    let output = sluice(&["plugin", "new", "taken", "--dir"], &[parent.path()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("taken: already exists"), "{stderr}");
}

#[test]
fn plugin_build_without_the_python_toolchain_says_how_to_install_it() {
    let output = Command::new(sluice_bin())
        .args(["plugin", "build"])
        .arg(repo_root().join("plugins").join("customers-cdm-py"))
        .env("SLUICE_COMPONENTIZE_PY", "/nonexistent/componentize-py")
        .output()
        .expect("run sluice");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("the Python toolchain is missing")
            && stderr.contains("pip install componentize-py==0.19.3"),
        "{stderr}"
    );
}
