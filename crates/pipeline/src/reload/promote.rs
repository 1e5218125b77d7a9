//! `sluice plugin promote`: makes a shadow or canary version the serving version of the
//! plugin it runs beside, by files, as a deploy would: the candidate's component and
//! manifest (without its `mode` fields) replace the serving plugin's, each written to a
//! temporary name and renamed, then the candidate's files are removed. A running sluice
//! swaps the new version in at a batch boundary like any hot reload (the replaced
//! version is kept for `sluice plugin rollback`) and stops the candidate.

use std::path::{Path, PathBuf};

use crate::manifest::{Role, load_manifest};

use super::find_manifests;

/// Manifest fields that make a version a candidate, dropped when it is promoted.
const CANDIDATE_FIELDS: [&str; 4] = ["mode", "shadows", "canary_of", "share"];

/// Promotes candidate `name` in plugins directory `dir` (see the module docs). Returns
/// what it did, one line per file.
pub fn promote(dir: &Path, name: &str) -> Result<Vec<String>, String> {
    let manifests = find_manifests(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let named = |wanted: &str| {
        manifests
            .iter()
            .filter_map(|path| {
                load_manifest(path)
                    .ok()
                    .map(|config| (path.clone(), config))
            })
            .find(|(_, config)| config.spec.name == wanted)
    };
    let (candidate_manifest, candidate) = named(name)
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
    let (target_manifest, target) = named(&target_name).ok_or_else(|| {
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
    let read = |path: &Path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    let candidate_text = String::from_utf8(read(&candidate_manifest)?)
        .map_err(|e| format!("{}: {e}", candidate_manifest.display()))?;
    let target_text = String::from_utf8(read(&target_manifest)?)
        .map_err(|e| format!("{}: {e}", target_manifest.display()))?;
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
    let component = read(&candidate.path)?;
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
