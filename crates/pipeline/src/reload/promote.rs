//! `sluice plugin promote`: makes a shadow or canary version the serving version of the
//! plugin it runs beside, by files, as a deploy would: the candidate's component and
//! manifest (without its `mode` fields) replace the serving plugin's, each written to a
//! temporary name and renamed, then the candidate's files are removed. A running sluice
//! swaps the new version in at a batch boundary like any hot reload (the replaced
//! version is kept for `sluice plugin rollback`) and stops the candidate.

use std::path::{Path, PathBuf};

use sluice_runtime::file::{DEFAULT_MAX_PLUGIN_BYTES, MAX_MANIFEST_BYTES, read_plugin_file};

use crate::manifest::{Role, parse_manifest};

use super::find_manifests;

/// Manifest fields that make a version a candidate, dropped when it is promoted.
const CANDIDATE_FIELDS: [&str; 4] = ["mode", "shadows", "canary_of", "share"];

/// Promotes candidate `name` in plugins directory `dir` (see the module docs). Returns
/// what it did, one line per file.
pub fn promote(dir: &Path, name: &str) -> Result<Vec<String>, String> {
    let manifests = find_manifests(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Plugin files are not trusted: each is read under the plugin file rules (a regular
    // file, bounded, inside its folder), so a FIFO or a link to /dev/zero is refused.
    let read = |path: &Path, max_bytes: u64| {
        let folder = path.parent().unwrap_or(dir);
        read_plugin_file(path, Some(folder), max_bytes).map_err(|e| e.to_string())
    };
    let named = |wanted: &str| {
        manifests
            .iter()
            .filter_map(|path| {
                let text = String::from_utf8(read(path, MAX_MANIFEST_BYTES).ok()?).ok()?;
                let config = parse_manifest(path, &text).ok()?;
                Some((path.clone(), config, text))
            })
            .find(|(_, config, _)| config.spec.name == wanted)
    };
    let (candidate_manifest, candidate, candidate_text) = named(name)
        .ok_or_else(|| format!("no valid manifest of plugin {name:?} in {}", dir.display()))?;
    let target_name = match &candidate.role {
        Role::Serving => {
            return Err(format!(
                "{name} already serves ({}): promote takes a shadow or canary version",
                candidate_manifest.display()
            ));
        }
        Role::Shadow { of } | Role::Canary { of, .. } => of.clone(),
    };
    let (target_manifest, target, target_text) = named(&target_name).ok_or_else(|| {
        format!(
            "{name} runs beside {target_name:?}, which has no valid manifest in {}",
            dir.display()
        )
    })?;
    if candidate_manifest.parent() != target_manifest.parent() {
        return Err(format!(
            "{} and {} are in different folders: a team promotes only its own plugin's versions",
            candidate_manifest.display(),
            target_manifest.display()
        ));
    }
    let parse = |text: &str, path: &Path| {
        text.parse::<toml::Table>()
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let mut manifest = parse(&candidate_text, &candidate_manifest)?;
    let target_table = parse(&target_text, &target_manifest)?;
    for field in CANDIDATE_FIELDS.iter().chain(&["name", "path"]) {
        manifest.remove(*field);
    }
    // The serving plugin keeps its name and where its component lives.
    for field in ["name", "path"] {
        if let Some(value) = target_table.get(field) {
            manifest.insert(field.to_owned(), value.clone());
        }
    }
    let manifest = toml::to_string(&manifest).map_err(|e| e.to_string())?;

    let mut done = Vec::new();
    let component = read(&candidate.path, DEFAULT_MAX_PLUGIN_BYTES)?;
    write_by_rename(&target.path, &component)?;
    done.push(format!(
        "{} <- {}",
        target.path.display(),
        candidate.path.display()
    ));
    write_by_rename(&target_manifest, manifest.as_bytes())?;
    done.push(format!(
        "{} <- {} (without {})",
        target_manifest.display(),
        candidate_manifest.display(),
        CANDIDATE_FIELDS.join(", ")
    ));
    for path in [&candidate_manifest, &candidate.path] {
        if *path != target.path && *path != target_manifest {
            std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
            done.push(format!("removed {}", path.display()));
        }
    }
    Ok(done)
}

/// Writes `bytes` to a temporary name beside `to`, then renames it into place, so the
/// reloader never reads a half-written file.
fn write_by_rename(to: &PathBuf, bytes: &[u8]) -> Result<(), String> {
    let file_name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = to.with_file_name(format!(".{file_name}.promote"));
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, to).map_err(|e| format!("{}: {e}", to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team(dir: &Path) -> PathBuf {
        let crm = dir.join("crm");
        std::fs::create_dir_all(&crm).expect("team folder");
        std::fs::write(crm.join("orders.wasm"), b"v1").expect("component");
        std::fs::write(
            crm.join("orders.toml"),
            "version = \"1.0.0\"\ninputs = [\"in\"]\noutputs = [\"out\"]\n",
        )
        .expect("manifest");
        std::fs::write(
            crm.join("next.toml"),
            "version = \"2.0.0\"\nmode = \"shadow\"\nshadows = \"orders\"\ninputs = [\"in\"]\noutputs = [\"out\"]\n",
        )
        .expect("manifest");
        crm
    }

    #[test]
    fn promotes_by_files_and_removes_the_candidate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let crm = team(dir.path());
        std::fs::write(crm.join("next.wasm"), b"v2").expect("component");
        promote(dir.path(), "next").expect("promoted");
        assert_eq!(std::fs::read(crm.join("orders.wasm")).expect("read"), b"v2");
        let manifest = std::fs::read_to_string(crm.join("orders.toml")).expect("read");
        assert!(
            manifest.contains("2.0.0") && !manifest.contains("mode"),
            "{manifest}"
        );
        assert!(!crm.join("next.toml").exists() && !crm.join("next.wasm").exists());
        assert!(
            promote(dir.path(), "orders").is_err(),
            "a serving plugin is not promoted"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_candidate_component_that_is_not_a_regular_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let crm = team(dir.path());
        std::os::unix::fs::symlink("/dev/zero", crm.join("next.wasm")).expect("symlink");
        let error = promote(dir.path(), "next").expect_err("refused");
        assert!(error.contains("next.wasm"), "{error}");
        assert_eq!(
            std::fs::read(crm.join("orders.wasm")).expect("read"),
            b"v1",
            "the serving version is untouched"
        );
    }
}
