//! Configuration and plugin-manifest errors as golden files: each
//! `tests/config/<case>.toml` and `tests/manifests/<case>.toml` must fail with exactly the
//! text of the `<case>.err` beside it (rewrite with `SLUICE_BLESS=1`).

use std::path::Path;

/// Runs `error_of` on every `<case>.toml` of `tests/<folder>` and compares the text with
/// `<case>.err`; returns how many cases there were.
pub(crate) fn check_golden_errors(
    folder: &str,
    error_of: impl Fn(&Path, &Path) -> String,
) -> usize {
    let dir = sluice_tests::repo_root().join("tests").join(folder);
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).expect("golden folder exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|ext| ext != "toml") {
            continue;
        }
        cases += 1;
        let error = error_of(&dir, &path);
        let golden = path.with_extension("err");
        if std::env::var_os("SLUICE_BLESS").is_some() {
            std::fs::write(&golden, format!("{error}\n")).expect("bless");
            continue;
        }
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        assert_eq!(error.trim_end(), expected.trim_end(), "{}", path.display());
    }
    cases
}

#[test]
fn every_bad_config_gives_its_golden_error() {
    let cases = check_golden_errors("config", |dir, path| {
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(path).expect("read case");
        sluice::config::parse(&text, &name, dir)
            .expect_err(&name)
            .to_string()
    });
    assert!(cases >= 4, "expected the golden cases in tests/config");
}

#[test]
fn every_bad_manifest_gives_its_golden_error() {
    let cases = check_golden_errors("manifests", |dir, path| {
        sluice::config::load_manifest(path)
            .expect_err(&path.display().to_string())
            .to_string()
            .replace(&format!("{}/", dir.display()), "")
    });
    assert!(cases >= 3, "expected the golden cases in tests/manifests");
}

#[test]
fn the_sample_configs_are_valid() {
    for name in ["customers.toml", "inventory.toml"] {
        let path = sluice_tests::sample(name);
        if let Err(e) = sluice::config::load(Path::new(&path)) {
            // The plugin paths point at built components: tests/build.rs built them.
            panic!("{e}");
        }
    }
}
