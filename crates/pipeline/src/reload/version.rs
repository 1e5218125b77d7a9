//! The files of a plugin version: finding manifests, reading a version from disk under
//! the plugin file rules ([`sluice_runtime::file`]), loading it, checking a directory,
//! and restoring a previous version. Used by the [`super::Reloader`] and by
//! `sluice plugin check` / `rollback`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::PREVIOUS_DIR;
use sluice_runtime::file::{self, FileRule, PluginFileError};
use sluice_runtime::log::{printable, printable_path};
use sluice_runtime::{Runtime, RuntimeError, start_plugin};

use crate::manifest::{PluginConfig, load_manifest, parse_manifest};
use crate::pipeline::Route;

/// Why a version was refused: the rule (a [`FileRule`] name, or `manifest`,
/// `component`, `init`, `duplicate`, `panic`) and the message naming the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: &'static str,
    pub reason: String,
}

impl Refusal {
    pub(super) fn new(rule: &'static str, reason: impl Into<String>) -> Self {
        Self {
            rule,
            reason: reason.into(),
        }
    }
}

impl From<PluginFileError> for Refusal {
    fn from(e: PluginFileError) -> Self {
        Self::new(e.rule.as_str(), e.to_string())
    }
}

impl From<RuntimeError> for Refusal {
    fn from(e: RuntimeError) -> Self {
        let rule = match &e {
            RuntimeError::File(file) => file.rule.as_str(),
            RuntimeError::InitRejected { .. } | RuntimeError::InitTrapped { .. } => "init",
            RuntimeError::OverBudget { .. } => "memory",
            _ => "component",
        };
        Self::new(rule, e.to_string())
    }
}

/// The exact bytes a version was loaded from, kept so that replacing it can save them
/// for `sluice plugin rollback`.
#[derive(Debug, Clone)]
pub(super) struct VersionFiles {
    pub(super) manifest: (PathBuf, Vec<u8>),
    pub(super) component: (PathBuf, Vec<u8>),
}

/// A version read from disk (files checked, manifest valid), not yet compiled.
#[derive(Debug)]
pub(super) struct Candidate {
    pub(super) config: PluginConfig,
    pub(super) files: VersionFiles,
    pub(super) fingerprint: String,
}

/// The rules of [`sluice_runtime::file`], for the `refused_files` counter.
pub(super) const FILE_RULES: [&str; 5] = [
    FileRule::OutsideFolder.as_str(),
    FileRule::PathNotConfined.as_str(),
    FileRule::NotRegularFile.as_str(),
    FileRule::TooLarge.as_str(),
    FileRule::Unreadable.as_str(),
];

/// Reads a version from disk: the manifest and its component, each checked by
/// [`sluice_runtime::file`] (a regular file within the size cap, inside the manifest's
/// team folder after symlinks), and the manifest validated. The component's `path`
/// must stay inside the manifest's folder; a manifest at the top of the plugins
/// directory may only name a file beside it (the subfolders belong to teams).
pub(super) fn read_version(
    runtime: &Runtime,
    dir: &Path,
    manifest: &Path,
) -> Result<Candidate, Refusal> {
    let folder = manifest.parent().unwrap_or(dir);
    let manifest_bytes = file::read_plugin_file(manifest, Some(folder), file::MAX_MANIFEST_BYTES)?;
    let text = std::str::from_utf8(&manifest_bytes).map_err(|e| {
        Refusal::new(
            "manifest",
            format!("{}: not UTF-8: {e}", printable_path(manifest)),
        )
    })?;
    let config =
        parse_manifest(manifest, text).map_err(|e| Refusal::new("manifest", e.to_string()))?;
    let written = config.path.strip_prefix(folder).map_err(|_| {
        Refusal::from(
            file::check_confined(manifest, &config.path)
                .err()
                .unwrap_or_else(|| PluginFileError {
                    path: manifest.to_owned(),
                    rule: FileRule::PathNotConfined,
                    detail: format!(
                        "path {} is outside the manifest's folder",
                        printable_path(&config.path)
                    ),
                }),
        )
    })?;
    file::check_confined(manifest, written)?;
    if folder == dir && written.components().count() > 1 {
        return Err(PluginFileError {
            path: manifest.to_owned(),
            rule: FileRule::PathNotConfined,
            detail: format!(
                "a manifest at the top of the plugins directory names a file beside it, not {}",
                printable_path(written)
            ),
        }
        .into());
    }
    let component = runtime.read_plugin_file(&config.path, Some(folder))?;
    let mut hasher = Sha256::new();
    hasher.update(&manifest_bytes);
    hasher.update(&component);
    let fingerprint = hex::encode(hasher.finalize());
    let files = VersionFiles {
        manifest: (manifest.to_owned(), manifest_bytes),
        component: (config.path.clone(), component),
    };
    Ok(Candidate {
        config,
        files,
        fingerprint,
    })
}

/// Compiles, links and starts a version read by [`read_version`].
pub(super) fn load(
    runtime: &Runtime,
    candidate: Candidate,
    workers: usize,
) -> Result<(Route, VersionFiles), Refusal> {
    let Candidate { config, files, .. } = candidate;
    let loaded = runtime.load_bytes(
        config.spec.clone(),
        &files.component.1,
        &printable_path(&config.path),
    )?;
    let thread = start_plugin(&loaded, workers, config.parallelism).map_err(|e| match e {
        over @ RuntimeError::OverBudget { .. } => Refusal::from(over),
        other => Refusal::new("init", other.to_string()),
    })?;
    let route = Route::new(thread, config.inputs, config.outputs, config.role);
    Ok((route, files))
}

/// Manifests in `dir` and its immediate subdirectories, sorted.
pub fn find_manifests(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut manifests = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !is_hidden(&path) {
            for inner in std::fs::read_dir(&path)? {
                let inner = inner?.path();
                if is_manifest(&inner) {
                    manifests.push(inner);
                }
            }
        } else if is_manifest(&path) {
            manifests.push(path);
        }
    }
    manifests.sort();
    Ok(manifests)
}

fn is_manifest(path: &Path) -> bool {
    path.is_file() && !is_hidden(path) && path.extension().is_some_and(|e| e == "toml")
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// Restores the version of plugin `name` that the last reload replaced (saved under
/// [`PREVIOUS_DIR`]) by writing its component and then its manifest back into place,
/// each to a temporary name and renamed. A running sluice picks it up like any deploy;
/// its compiled code is still in the compile cache, so the swap costs no compilation.
/// Returns the files restored.
pub fn rollback(dir: &Path, name: &str) -> Result<Vec<PathBuf>, String> {
    let previous = dir.join(PREVIOUS_DIR);
    let manifests =
        find_manifests(&previous).map_err(|e| format!("{}: {e}", previous.display()))?;
    let manifest = manifests
        .into_iter()
        .find(|m| {
            load_manifest(m).is_ok_and(|c| c.spec.name == name)
                || m.file_stem().is_some_and(|s| s == name)
        })
        .ok_or_else(|| {
            format!(
                "no previous version of plugin {name:?} under {}",
                previous.display()
            )
        })?;
    let relative = manifest
        .strip_prefix(&previous)
        .map_err(|e| e.to_string())?
        .to_owned();
    let component = load_manifest(&manifest)
        .map(|c| c.path)
        .unwrap_or_else(|_| manifest.with_extension("wasm"));
    let component_relative = component
        .strip_prefix(&previous)
        .map_err(|e| e.to_string())?
        .to_owned();
    let mut restored = Vec::new();
    for (from, to) in [
        (component, dir.join(component_relative)),
        (manifest, dir.join(relative)),
    ] {
        let file_name = to
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = to.with_file_name(format!(".{file_name}.rollback"));
        std::fs::copy(&from, &tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &to).map_err(|e| format!("{}: {e}", to.display()))?;
        restored.push(to);
    }
    Ok(restored)
}

/// The result of checking one manifest with [`check_directory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub manifest: PathBuf,
    /// `name@version (sha256 …)` when it would load, else the reason it would be refused.
    pub outcome: Result<String, String>,
}

/// Validates every plugin of a directory as a reload would (file rules, manifest,
/// component, linking, `init`) without running anything else.
pub fn check_directory(runtime: &Runtime, dir: &Path) -> std::io::Result<Vec<CheckResult>> {
    let mut results = Vec::new();
    for manifest in find_manifests(dir)? {
        let outcome = read_version(runtime, dir, &manifest)
            .and_then(|candidate| {
                let loaded = runtime.load_bytes(
                    candidate.config.spec,
                    &candidate.files.component.1,
                    &printable_path(&candidate.config.path),
                )?;
                loaded.instantiate()?;
                Ok(format!(
                    "{}@{} (sha256 {})",
                    printable(loaded.name()),
                    printable(loaded.version()),
                    &loaded.sha256()[..12]
                ))
            })
            .map_err(|refusal| refusal.reason);
        results.push(CheckResult { manifest, outcome });
    }
    Ok(results)
}
