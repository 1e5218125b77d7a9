//! Hot reload: watching the plugins directory and swapping plugin versions in while the
//! pipeline runs.
//!
//! # Layout
//! A plugin is a manifest `<name>.toml` with its component `<name>.wasm` beside it
//! (`plugins/<team>/<name>.toml`; see [`crate::manifest::load_manifest`]). Manifests are
//! found in the directory and in its immediate subdirectories (one per team). Other
//! files (editor swap files, `*.tmp`, partial copies under another name) are ignored.
//!
//! # What happens on a change
//! The directory is watched with `notify`. After the first change the watcher waits
//! until nothing has changed for [`DEBOUNCE`], then rescans: every manifest whose bytes
//! or whose component's bytes changed is loaded **off the hot path** (compiled or taken
//! from the cache, linked, instantiated, `init` called) on a blocking thread. Only when
//! that succeeds does the new version get a worker thread and replace the old one in the
//! route table, which the pipeline reads once per batch: the swap happens at a batch
//! boundary, and a batch in flight finishes on the version it started with.
//!
//! A plugin that fails to load (not wasm, truncated, wrong world, `init` refuses or
//! traps, manifest error) is refused with one log line naming the file and the reason,
//! counted in [`ReloadStats::refused`], and the previous version keeps running. A
//! removed manifest removes its plugin at the next batch boundary; with a file source its
//! later events are simply not processed by it (counted as unrouted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::Watcher as _;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use sluice_core::telemetry::{Report, Telemetry, lock};
use sluice_runtime::{Runtime, start_plugin};

use crate::manifest::{PluginConfig, load_manifest};
use crate::pipeline::{Route, Routes};

/// How long the directory must be quiet before a rescan. Copy tools and editors write a
/// file in several steps (create, write in chunks, rename, chmod); 300 ms covers a
/// multi-megabyte copy on a local disk while a reload still feels immediate. A change
/// that lands after a rescan started triggers another rescan.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Counters of the reloader, for logs, metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadStats {
    /// Plugin versions loaded and swapped in (including the initial ones).
    pub loaded: u64,
    /// Plugin versions refused (the previous version, if any, kept running).
    pub refused: u64,
    /// Plugins removed because their manifest disappeared.
    pub removed: u64,
}

/// The reloader's counters as metrics, pushed after every rescan.
#[derive(Debug, Default)]
pub struct ReloadMetrics(std::sync::Mutex<ReloadStats>);

impl Report for ReloadMetrics {
    fn render(&self, out: &mut String) {
        let stats = *lock(&self.0);
        out.push_str("# HELP sluice_plugin_reloads_total Plugin versions loaded, refused and removed by hot reload.\n");
        out.push_str("# TYPE sluice_plugin_reloads_total counter\n");
        for (result, value) in [
            ("loaded", stats.loaded),
            ("refused", stats.refused),
            ("removed", stats.removed),
        ] {
            out.push_str(&format!(
                "sluice_plugin_reloads_total{{result=\"{result}\"}} {value}\n"
            ));
        }
    }
}

/// A plugin version in service.
#[derive(Debug)]
struct Active {
    fingerprint: String,
    route: Arc<Route>,
    files: VersionFiles,
}

/// The exact bytes a version was loaded from, kept so that replacing it can save them
/// for `sluice plugin rollback`.
#[derive(Debug, Clone)]
struct VersionFiles {
    manifest: (PathBuf, Vec<u8>),
    component: (PathBuf, Vec<u8>),
}

/// Where the version a reload replaced is saved, inside the plugins directory (hidden,
/// so it is never loaded): `.previous/<team>/<name>.toml` and its component.
pub const PREVIOUS_DIR: &str = ".previous";

/// Owns the route table of a plugins directory.
#[derive(Debug)]
pub struct Reloader {
    runtime: Arc<Runtime>,
    dir: PathBuf,
    /// Routes from the configuration file; always in the table, before the directory's.
    fixed: Vec<Arc<Route>>,
    /// By manifest path.
    active: BTreeMap<PathBuf, Active>,
    /// Fingerprints last refused, so an unchanged broken file is not retried (and
    /// logged) on every rescan.
    refused: BTreeMap<PathBuf, String>,
    table: watch::Sender<Routes>,
    stats: Arc<std::sync::Mutex<ReloadStats>>,
    telemetry: Option<Arc<Telemetry>>,
    /// Instances (and threads) started per plugin: one per consumer of its lane.
    workers: usize,
}

impl Reloader {
    /// Loads every plugin of `dir` and returns the reloader and the route table the
    /// pipeline should read. Plugins that fail to load are refused and logged; the rest
    /// start.
    pub fn start(
        runtime: Arc<Runtime>,
        dir: PathBuf,
        fixed: Vec<Route>,
        telemetry: Option<Arc<Telemetry>>,
    ) -> (Self, watch::Receiver<Routes>) {
        Self::start_with_workers(runtime, dir, fixed, telemetry, 1)
    }

    /// [`Reloader::start`], starting `workers` instances of every plugin it loads.
    pub fn start_with_workers(
        runtime: Arc<Runtime>,
        dir: PathBuf,
        fixed: Vec<Route>,
        telemetry: Option<Arc<Telemetry>>,
        workers: usize,
    ) -> (Self, watch::Receiver<Routes>) {
        let fixed: Vec<Arc<Route>> = fixed.into_iter().map(Arc::new).collect();
        let (table, receiver) = watch::channel(Arc::new(fixed.clone()));
        let mut reloader = Self {
            runtime,
            dir,
            fixed,
            active: BTreeMap::new(),
            refused: BTreeMap::new(),
            table,
            stats: Arc::default(),
            telemetry,
            workers: workers.max(1),
        };
        reloader.rescan();
        reloader.report();
        (reloader, receiver)
    }

    pub fn stats(&self) -> ReloadStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle that reads the counters while [`Reloader::watch`] owns the reloader.
    pub fn stats_handle(&self) -> Arc<std::sync::Mutex<ReloadStats>> {
        Arc::clone(&self.stats)
    }

    fn count(&self, update: impl FnOnce(&mut ReloadStats)) {
        update(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The plugins in service: name, version and component sha256.
    pub fn active_plugins(&self) -> Vec<(String, String, String)> {
        self.active
            .values()
            .map(|a| {
                let plugin = a.route.plugin.plugin();
                (
                    plugin.name().to_owned(),
                    plugin.version().to_owned(),
                    plugin.sha256().to_owned(),
                )
            })
            .collect()
    }

    /// Compares the directory with what is in service, loads what changed, and publishes
    /// a new route table if anything did. Blocking (it compiles): call it off the async
    /// runtime's worker threads.
    pub fn rescan(&mut self) {
        let manifests = match find_manifests(&self.dir) {
            Ok(manifests) => manifests,
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "cannot read the plugins directory; keeping the plugins in service");
                return;
            }
        };
        let mut changed = false;
        let gone: Vec<PathBuf> = self
            .active
            .keys()
            .filter(|p| !manifests.contains(p))
            .cloned()
            .collect();
        for manifest in gone {
            if let Some(active) = self.active.remove(&manifest) {
                tracing::info!(plugin = %active.route.plugin.plugin().name(), manifest = %manifest.display(), "plugin removed");
                self.count(|s| s.removed += 1);
                changed = true;
            }
        }
        for manifest in manifests {
            let fingerprint = match fingerprint(&manifest) {
                Ok(fingerprint) => fingerprint,
                // Vanished between listing and reading: the next event rescans.
                Err(_) => continue,
            };
            let unchanged = self
                .active
                .get(&manifest)
                .is_some_and(|a| a.fingerprint == fingerprint)
                || self.refused.get(&manifest) == Some(&fingerprint);
            if unchanged {
                continue;
            }
            let started = Instant::now();
            match self.load(&manifest) {
                Ok((route, files)) => {
                    let plugin = route.plugin.plugin();
                    tracing::info!(
                        plugin = %plugin.name(),
                        version = %plugin.version(),
                        sha256 = %&plugin.sha256()[..12],
                        manifest = %manifest.display(),
                        load_ms = started.elapsed().as_millis() as u64,
                        "plugin version loaded; it serves from the next batch"
                    );
                    self.refused.remove(&manifest);
                    let replaced = self.active.insert(
                        manifest,
                        Active {
                            fingerprint,
                            route: Arc::new(route),
                            files,
                        },
                    );
                    if let Some(old) = replaced {
                        self.save_previous(&old.files);
                    }
                    self.count(|s| s.loaded += 1);
                    changed = true;
                }
                Err(reason) => {
                    tracing::error!(
                        manifest = %manifest.display(),
                        %reason,
                        "plugin refused; the version in service (if any) keeps running"
                    );
                    self.refused.insert(manifest, fingerprint);
                    self.count(|s| s.refused += 1);
                }
            }
        }
        if changed {
            self.publish();
        }
        self.report();
    }

    /// Tells telemetry which plugins serve and how reloads went.
    fn report(&self) {
        if let Some(telemetry) = &self.telemetry {
            let table = self.table.borrow().clone();
            telemetry.set_plugins(table.iter().map(|route| route.info()).collect());
            *lock(&telemetry.report::<ReloadMetrics>().0) = self.stats();
        }
    }

    /// Loads one manifest and its component into a ready route.
    fn load(&self, manifest: &Path) -> Result<(Route, VersionFiles), String> {
        let manifest_bytes =
            std::fs::read(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
        let config: PluginConfig = load_manifest(manifest).map_err(|e| e.to_string())?;
        let duplicate = self.active.iter().any(|(path, active)| {
            path != manifest && active.route.plugin.plugin().name() == config.spec.name
        });
        if duplicate {
            return Err(format!(
                "{}: another manifest already provides plugin {:?}",
                manifest.display(),
                config.spec.name
            ));
        }
        // Read once: the bytes compiled are the bytes kept for a rollback.
        let component = std::fs::read(&config.path).map_err(|e| {
            format!(
                "{}: cannot read the plugin file: {e}",
                config.path.display()
            )
        })?;
        let loaded = self
            .runtime
            .load_bytes(
                config.spec.clone(),
                &component,
                &config.path.display().to_string(),
            )
            .map_err(|e| e.to_string())?;
        let thread = start_plugin(&loaded, self.workers).map_err(|e| e.to_string())?;
        let files = VersionFiles {
            manifest: (manifest.to_owned(), manifest_bytes),
            component: (config.path.clone(), component),
        };
        let route = Route {
            plugin: thread,
            inputs: config.inputs,
            outputs: config.outputs,
        };
        Ok((route, files))
    }

    /// Saves a replaced version under [`PREVIOUS_DIR`] (best effort: a failure is logged,
    /// the reload itself already succeeded).
    fn save_previous(&self, files: &VersionFiles) {
        let previous = self.dir.join(PREVIOUS_DIR);
        for (path, bytes) in [&files.manifest, &files.component] {
            let Ok(relative) = path.strip_prefix(&self.dir) else {
                continue;
            };
            let target = previous.join(relative);
            let saved = target
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&target, bytes));
            if let Err(e) = saved {
                tracing::warn!(path = %target.display(), error = %e, "could not save the previous plugin version");
            }
        }
    }

    fn publish(&self) {
        let mut routes = self.fixed.clone();
        routes.extend(self.active.values().map(|a| Arc::clone(&a.route)));
        self.table.send_replace(Arc::new(routes));
    }

    /// Watches the directory until `shutdown` resolves, rescanning after each burst of
    /// changes (see [`DEBOUNCE`]). Returns the reloader so its state can be inspected.
    pub async fn watch(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<Self, notify::Error> {
        let (events, mut changes) = mpsc::unbounded_channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok() {
                    let _ = events.send(());
                }
            })?;
        watcher.watch(&self.dir, notify::RecursiveMode::Recursive)?;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(self),
                change = changes.recv() => if change.is_none() { return Ok(self) },
            }
            // Debounce: wait until the directory has been quiet for DEBOUNCE.
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, changes.recv()).await {}
            self = tokio::task::spawn_blocking(move || {
                self.rescan();
                self
            })
            .await
            .expect("the rescan does not panic");
        }
    }
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

/// sha256 over the manifest and the component it names by default (`<stem>.wasm`), so a
/// change to either is a new version. A manifest that names another path is read for it.
fn fingerprint(manifest: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(std::fs::read(manifest)?);
    let component = load_manifest(manifest)
        .map(|config| config.path)
        .unwrap_or_else(|_| manifest.with_extension("wasm"));
    if let Ok(bytes) = std::fs::read(component) {
        hasher.update(bytes);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The result of checking one manifest with [`check_directory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub manifest: PathBuf,
    /// `name@version (sha256 …)` when it would load, else the reason it would be refused.
    pub outcome: Result<String, String>,
}

/// Validates every plugin of a directory as a reload would (manifest, component,
/// linking, `init`) without running anything else.
pub fn check_directory(runtime: &Runtime, dir: &Path) -> std::io::Result<Vec<CheckResult>> {
    let mut results = Vec::new();
    for manifest in find_manifests(dir)? {
        let outcome = load_manifest(&manifest)
            .map_err(|e| e.to_string())
            .and_then(|config| {
                let loaded = runtime
                    .load_file(config.spec, &config.path)
                    .map_err(|e| e.to_string())?;
                loaded.instantiate().map_err(|e| e.to_string())?;
                Ok(format!(
                    "{}@{} (sha256 {})",
                    loaded.name(),
                    loaded.version(),
                    &loaded.sha256()[..12]
                ))
            });
        results.push(CheckResult { manifest, outcome });
    }
    Ok(results)
}
