//! `sluice plugin new`: creates a plugin project from the templates in `host/templates/`
//! (embedded in the binary), ready for `sluice plugin build` and `sluice plugin test`.
//!
//! Every language's template maps the same bundled sample (`samples/events.jsonl`) to the
//! same expectation (`samples/expected.jsonl`), so a new project passes its test before the
//! author changes a line, whatever the language.

use std::path::{Path, PathBuf};

use sluice_plugin_build::Language;

/// Why a project could not be created.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error("{name:?} is not a plugin name: use a-z, 0-9, - and _, starting with a letter")]
    BadName { name: String },
    #[error("{}: already exists; choose another name or directory", path.display())]
    Exists { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Files every project gets: (path in the project, template).
const COMMON: &[(&str, &str)] = &[
    ("README.md", include_str!("../templates/common/README.md")),
    (".gitignore", include_str!("../templates/common/gitignore")),
    (
        "samples/events.jsonl",
        include_str!("../templates/common/events.jsonl"),
    ),
    (
        "samples/expected.jsonl",
        include_str!("../templates/common/expected.jsonl"),
    ),
];

const RUST: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
    ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
];

const JS: &[(&str, &str)] = &[
    ("package.json", include_str!("../templates/js/package.json")),
    ("src/index.js", include_str!("../templates/js/src/index.js")),
];

const PYTHON: &[(&str, &str)] = &[
    (
        "pyproject.toml",
        include_str!("../templates/python/pyproject.toml"),
    ),
    ("app.py", include_str!("../templates/python/app.py")),
];

/// Creates the project `<parent>/<name>` in `language`; returns its directory.
pub fn create(parent: &Path, name: &str, language: Language) -> Result<PathBuf, NewError> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(NewError::BadName {
            name: name.to_owned(),
        });
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(NewError::Exists { path: dir });
    }
    let (language_name, files) = match language {
        Language::Rust => ("Rust", RUST),
        Language::JavaScript => ("JavaScript", JS),
        Language::Python => ("Python", PYTHON),
    };
    // The Rust SDK of this sluice's source tree (a path dependency; sluice-sdk is not on
    // crates.io).
    let sdk_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    let sdk_path = sdk_path.canonicalize().unwrap_or(sdk_path);
    let stem = name.replace('-', "_");
    // package.json's devDependencies: the toolchain sluice-plugin-build pins.
    let js_toolchain = sluice_plugin_build::JS_TOOLCHAIN
        .iter()
        .map(|(package, version)| format!("    \"{package}\": \"{version}\""))
        .collect::<Vec<_>>()
        .join(",\n");
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{stem}}", &stem)
            .replace("{{language}}", language_name)
            .replace("{{sdk_path}}", &sdk_path.display().to_string())
            .replace("{{js_toolchain}}", &js_toolchain)
    };
    for (relative, template) in COMMON.iter().chain(files) {
        let path = dir.join(relative);
        let parent = path.parent().unwrap_or(&dir);
        std::fs::create_dir_all(parent)
            .and_then(|()| std::fs::write(&path, fill(template)))
            .map_err(|source| NewError::Write { path, source })?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_templates_and_refuses_bad_names_and_existing_directories() {
        let parent = std::env::temp_dir().join(format!("sluice-new-{}", std::process::id()));
        std::fs::create_dir_all(&parent).expect("temp dir");
        let dir = create(&parent, "orders-cdm", Language::JavaScript).expect("created");
        let package = std::fs::read_to_string(dir.join("package.json")).expect("package.json");
        assert!(package.contains("\"name\": \"orders-cdm\""), "{package}");
        assert!(
            !package.contains("{{"),
            "every placeholder is filled: {package}"
        );
        let readme = std::fs::read_to_string(dir.join("README.md")).expect("README");
        assert!(readme.contains("in JavaScript") && readme.contains("orders_cdm.wasm"));
        assert!(dir.join("samples/expected.jsonl").is_file());
        assert!(matches!(
            create(&parent, "orders-cdm", Language::Python),
            Err(NewError::Exists { .. })
        ));
        let error = create(&parent, "Orders", Language::Rust).expect_err("upper case");
        assert!(
            error
                .to_string()
                .contains("\"Orders\" is not a plugin name")
        );
        std::fs::remove_dir_all(&parent).expect("clean up");
    }
}
