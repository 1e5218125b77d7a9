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
//! from the cache, linked, instantiated, `init` called) on a thread of its own, so
//! loads run concurrently: a slow compile or a looping `init` delays only its own
//! plugin, and a shutdown does not wait for it. Only when a load succeeds does the new
//! version replace the old one in the route table, which the pipeline reads once per
//! batch: the swap happens at a batch boundary, and a batch in flight finishes on the
//! version it started with.
//!
//! Files are read under the plugin file rules ([`sluice_runtime::file`]: regular files,
//! bounded, inside their team folder). A plugin that fails to load (a file rule, not
//! wasm, truncated, wrong world, `init` refuses or traps, manifest error, memory caps
//! over what `runtime.plugin_memory` has left) is refused
//! with one log line naming the file, the rule and the reason, counted in
//! [`ReloadStats::refused`], and the previous version keeps running. It is tried again
//! when its files change; one refused for memory (rule `memory`) also at every rescan
//! and, while [`Reloader::watch`] runs, whenever a version gives its share of the
//! budget back (removed, replaced, or its last batch done). A
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
use sluice_runtime::Runtime;
use sluice_runtime::log::{plugin_message, printable, printable_path};

use crate::pipeline::{Route, Routes};

mod promote;
mod version;

pub use promote::promote;
use version::{Candidate, FILE_RULES, VersionFiles, load, read_version};
pub use version::{CheckResult, Refusal, check_directory, find_manifests, rollback};

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
    /// Of `refused`, those refused for their files (type, size, place; see
    /// [`sluice_runtime::file`]).
    pub refused_files: u64,
    /// Times the reloader recovered from a failure of its own (a rescan that panicked,
    /// a directory watch that could not be set up) and carried on.
    pub restarts: u64,
}

/// The reloader's counters as metrics, pushed after every rescan, and its last refusal
/// for the status page.
#[derive(Debug, Default)]
pub struct ReloadMetrics {
    stats: std::sync::Mutex<ReloadStats>,
    last_refusal: std::sync::Mutex<Option<sluice_core::status::Refusal>>,
}

impl Report for ReloadMetrics {
    fn status(&self, status: &mut sluice_core::status::Status) {
        status.last_refusal = lock(&self.last_refusal).clone();
    }

    fn render(&self, out: &mut String) {
        let stats = *lock(&self.stats);
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
        out.push_str(&format!(
            "# HELP sluice_plugin_files_refused_total Plugin versions refused for their files (type, size, place).\n\
             # TYPE sluice_plugin_files_refused_total counter\nsluice_plugin_files_refused_total {}\n\
             # HELP sluice_reloader_restarts_total Times the plugin reloader recovered from a failure of its own.\n\
             # TYPE sluice_reloader_restarts_total counter\nsluice_reloader_restarts_total {}\n",
            stats.refused_files, stats.restarts
        ));
    }
}

/// A plugin version in service.
#[derive(Debug)]
struct Active {
    fingerprint: String,
    route: Arc<Route>,
    files: VersionFiles,
}

/// A load that ran on its own thread, reported back to the reloader.
struct Finished {
    manifest: PathBuf,
    fingerprint: String,
    started: Instant,
    result: Result<(Route, VersionFiles), Refusal>,
}

/// Where the version a reload replaced is saved, inside the plugins directory (hidden,
/// so it is never loaded): `.previous/<team>/<name>.toml` and its component.
pub const PREVIOUS_DIR: &str = ".previous";

/// How long the watch waits before trying again to watch the directory after that
/// failed (inotify limits reached, directory briefly gone).
const WATCH_RETRY: Duration = Duration::from_secs(1);

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
    /// Manifests refused because their memory caps did not fit the plugin memory budget:
    /// not in `refused`, so every rescan tries them again, and [`Reloader::watch`]
    /// rescans when the budget gives memory back.
    waiting_for_memory: std::collections::BTreeSet<PathBuf>,
    /// Loads in flight, by manifest: the fingerprint being loaded. A result whose
    /// fingerprint is no longer here (a newer version started loading, or the manifest
    /// was removed) is dropped.
    loading: BTreeMap<PathBuf, String>,
    finished: mpsc::UnboundedSender<Finished>,
    /// Taken by [`Reloader::watch`] while it runs.
    results: Option<mpsc::UnboundedReceiver<Finished>>,
    table: watch::Sender<Routes>,
    stats: Arc<std::sync::Mutex<ReloadStats>>,
    telemetry: Option<Arc<Telemetry>>,
    /// Instances (and threads) started per plugin: one per consumer of its lane.
    workers: usize,
}

impl std::fmt::Debug for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finished")
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// Loads every plugin of `dir` and returns the reloader and the route table the
    /// pipeline should read. Plugins that fail to load are refused and logged; the rest
    /// start. Blocking: plugins load concurrently, each on a thread of its own, and this
    /// returns when all have loaded or been refused.
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
        let (finished, results) = mpsc::unbounded_channel();
        let mut reloader = Self {
            runtime,
            dir,
            fixed,
            active: BTreeMap::new(),
            refused: BTreeMap::new(),
            waiting_for_memory: Default::default(),
            loading: BTreeMap::new(),
            finished,
            results: Some(results),
            table,
            stats: Arc::default(),
            telemetry,
            workers: workers.max(1),
        };
        reloader.rescan();
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

    /// Compares the directory with what is in service, loads what changed and waits for
    /// those loads, publishing the route table as each one lands. Blocking: call it off
    /// the async runtime's worker threads.
    pub fn rescan(&mut self) {
        self.scan();
        let Some(mut results) = self.results.take() else {
            return;
        };
        // Polled rather than `blocking_recv`, which panics when a caller on an async
        // runtime's thread calls this (tests and tools do); loads take milliseconds to
        // seconds, so 10 ms of polling latency is noise.
        while !self.loading.is_empty() {
            match results.try_recv() {
                Ok(finished) => self.finish(finished),
                Err(mpsc::error::TryRecvError::Empty) => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        }
        self.results = Some(results);
        self.report();
    }

    /// Compares the directory with what is in service: removes the plugins whose
    /// manifest is gone, and starts a load (on a thread of its own) for every manifest
    /// whose files changed. Returns without waiting for the loads; each reports to
    /// [`Reloader::finish`]. Reads files (bounded by the size cap), so call it off the
    /// async runtime's worker threads.
    fn scan(&mut self) {
        let manifests = match find_manifests(&self.dir) {
            Ok(manifests) => manifests,
            Err(e) => {
                tracing::error!(dir = %printable_path(&self.dir), error = %e, "cannot read the plugins directory; keeping the plugins in service");
                return;
            }
        };
        let mut changed = false;
        let gone: Vec<PathBuf> = self
            .active
            .keys()
            .chain(self.loading.keys())
            .filter(|p| !manifests.contains(p))
            .cloned()
            .collect();
        for manifest in gone {
            self.loading.remove(&manifest);
            self.waiting_for_memory.remove(&manifest);
            if let Some(active) = self.active.remove(&manifest) {
                tracing::info!(plugin = %active.route.plugin.plugin().name(), manifest = %printable_path(&manifest), "plugin removed");
                self.count(|s| s.removed += 1);
                changed = true;
            }
        }
        // Removals are published before any load starts, so that the memory they give
        // back is free as soon as their last batch is done.
        if changed {
            self.publish();
        }
        for manifest in manifests {
            let candidate = read_version(&self.runtime, &self.dir, &manifest);
            let fingerprint = match &candidate {
                Ok(candidate) => candidate.fingerprint.clone(),
                // A refusal is fingerprinted by its reason: the same broken file is
                // logged once, a different problem again.
                Err(refusal) => hex::encode(Sha256::digest(refusal.reason.as_bytes())),
            };
            let unchanged = self
                .active
                .get(&manifest)
                .is_some_and(|a| a.fingerprint == fingerprint)
                || self.refused.get(&manifest) == Some(&fingerprint)
                || self.loading.get(&manifest) == Some(&fingerprint);
            if unchanged {
                continue;
            }
            match candidate {
                Ok(candidate) => self.start_load(manifest, candidate),
                Err(refusal) => {
                    // The newest files win: an older version still loading is dropped.
                    self.loading.remove(&manifest);
                    self.refuse(manifest, fingerprint, &refusal);
                }
            }
        }
        self.report();
    }

    /// Loads `candidate` on a thread of its own, so a slow compile or `init` delays
    /// only this plugin, never another team's deploy or the shutdown.
    fn start_load(&mut self, manifest: PathBuf, candidate: Candidate) {
        self.loading
            .insert(manifest.clone(), candidate.fingerprint.clone());
        let runtime = Arc::clone(&self.runtime);
        let workers = self.workers;
        let finished = self.finished.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-load".into())
            .spawn({
                let manifest = manifest.clone();
                move || {
                    let started = Instant::now();
                    let fingerprint = candidate.fingerprint.clone();
                    // A panic while loading (a bug, never the plugin's doing) refuses
                    // this version instead of killing the reloader.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        load(&runtime, candidate, workers)
                    }))
                    .unwrap_or_else(|panic| {
                        Err(Refusal::new(
                            "panic",
                            format!(
                                "{}: loading panicked: {}",
                                printable_path(&manifest),
                                panic_message(&panic)
                            ),
                        ))
                    });
                    let _ = finished.send(Finished {
                        manifest,
                        fingerprint,
                        started,
                        result,
                    });
                }
            });
        if let Err(e) = thread {
            let fingerprint = self.loading.remove(&manifest).unwrap_or_default();
            let refusal = Refusal::new("thread", format!("starting a load thread: {e}"));
            self.refuse(manifest, fingerprint, &refusal);
        }
    }

    /// Applies a load that finished: swaps the version in, or refuses it.
    fn finish(&mut self, finished: Finished) {
        let Finished {
            manifest,
            fingerprint,
            started,
            result,
        } = finished;
        if self.loading.get(&manifest) != Some(&fingerprint) {
            // Superseded by a newer version, or removed, while it loaded.
            return;
        }
        self.loading.remove(&manifest);
        let result = result.and_then(|(route, files)| {
            let name = route.plugin.plugin().name();
            let duplicate = self.active.iter().any(|(path, active)| {
                path != &manifest && active.route.plugin.plugin().name() == name
            });
            if duplicate {
                return Err(Refusal::new(
                    "duplicate",
                    format!(
                        "{}: another manifest already provides plugin {:?}",
                        printable_path(&manifest),
                        name
                    ),
                ));
            }
            Ok((route, files))
        });
        match result {
            Ok((route, files)) => {
                let plugin = route.plugin.plugin();
                tracing::info!(
                    plugin = %printable(plugin.name()),
                    version = %printable(plugin.version()),
                    sha256 = %&plugin.sha256()[..12],
                    manifest = %printable_path(&manifest),
                    load_ms = started.elapsed().as_millis() as u64,
                    "plugin version loaded; it serves from the next batch"
                );
                self.refused.remove(&manifest);
                self.waiting_for_memory.remove(&manifest);
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
                self.publish();
            }
            Err(refusal) => self.refuse(manifest, fingerprint, &refusal),
        }
        self.report();
    }

    /// Refuses a version: one log line naming the file and the rule, the counters, and
    /// the version in service (if any) keeps running.
    fn refuse(&mut self, manifest: PathBuf, fingerprint: String, refusal: &Refusal) {
        tracing::error!(
            manifest = %printable_path(&manifest),
            rule = refusal.rule,
            // Capped too: an `init` error message is the plugin's own text.
            reason = %plugin_message(&refusal.reason),
            "plugin refused; the version in service (if any) keeps running"
        );
        let file_rule = FILE_RULES.contains(&refusal.rule);
        if let Some(telemetry) = &self.telemetry {
            *lock(&telemetry.report::<ReloadMetrics>().last_refusal) =
                Some(sluice_core::status::Refusal {
                    file: printable_path(&manifest).to_string(),
                    reason: plugin_message(&refusal.reason).to_string(),
                    at: std::time::SystemTime::now(),
                });
        }
        if refusal.rule == "memory" {
            self.refused.remove(&manifest);
            self.waiting_for_memory.insert(manifest);
        } else {
            self.waiting_for_memory.remove(&manifest);
            self.refused.insert(manifest, fingerprint);
        }
        self.count(|s| {
            s.refused += 1;
            s.refused_files += u64::from(file_rule);
        });
    }

    /// Tells telemetry which plugins serve and how reloads went.
    fn report(&self) {
        if let Some(telemetry) = &self.telemetry {
            let table = self.table.borrow().clone();
            telemetry.set_plugins(table.iter().map(|route| route.info()).collect());
            *lock(&telemetry.report::<ReloadMetrics>().stats) = self.stats();
        }
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
                tracing::warn!(path = %printable_path(&target), error = %e, "could not save the previous plugin version");
            }
        }
    }

    fn publish(&self) {
        let mut routes = self.fixed.clone();
        routes.extend(self.active.values().map(|a| Arc::clone(&a.route)));
        self.table.send_replace(Arc::new(routes));
    }

    /// Watches the directory until `shutdown` resolves, rescanning after each burst of
    /// changes (see [`DEBOUNCE`]) and swapping each loaded version in as soon as its
    /// load finishes. Returns the reloader's counters. Shutdown is observed at every
    /// wait, a debounce or a rescan in progress included: a rescan (it reads and
    /// fingerprints every plugin file) is left to finish on the blocking pool, and loads
    /// still in flight are abandoned (their threads end on their own).
    ///
    /// The watch supervises itself: a rescan that panics, or a directory watch that
    /// cannot be set up, is logged, counted in [`ReloadStats::restarts`] and retried, so
    /// the reloader never dies silently while the pipeline runs on.
    pub async fn watch(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<ReloadStats, notify::Error> {
        tokio::pin!(shutdown);
        let stats = self.stats_handle();
        let counters = || *stats.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mut results) = self.results.take() else {
            return Ok(self.stats());
        };
        let (events, mut changes) = mpsc::unbounded_channel::<()>();
        let mut released = self.runtime.memory_budget().released();
        let mut watcher = None;
        loop {
            if watcher.is_none() {
                match watch_dir(&self.dir, events.clone()) {
                    Ok(w) => {
                        watcher = Some(w);
                        // Changes made while the watch was down are picked up now.
                        let _ = events.send(());
                    }
                    Err(e) => {
                        tracing::error!(dir = %printable_path(&self.dir), error = %e, "cannot watch the plugins directory; retrying");
                        self.count(|s| s.restarts += 1);
                        self.report();
                    }
                }
            }
            let retry = tokio::time::sleep(if watcher.is_some() {
                // Nothing to retry: effectively never (a year).
                Duration::from_secs(365 * 24 * 3600)
            } else {
                WATCH_RETRY
            });
            tokio::select! {
                () = &mut shutdown => break,
                () = retry => continue,
                Some(finished) = results.recv() => {
                    self.finish(finished);
                    continue;
                }
                // Memory given back while a version waits for it: rescan, as for a change.
                Ok(()) = released.changed(), if !self.waiting_for_memory.is_empty() => {}
                change = changes.recv() => if change.is_none() { break },
            }
            // Debounce: wait until the directory has been quiet for DEBOUNCE.
            loop {
                tokio::select! {
                    () = &mut shutdown => return Ok(counters()),
                    quiet = tokio::time::timeout(DEBOUNCE, changes.recv()) => {
                        if !matches!(quiet, Ok(Some(()))) {
                            break;
                        }
                    }
                }
            }
            let scanning = tokio::task::spawn_blocking(move || {
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.scan()));
                (self, outcome.err().map(|panic| panic_message(&panic)))
            });
            let scanned = tokio::select! {
                () = &mut shutdown => return Ok(counters()),
                scanned = scanning => scanned,
            };
            match scanned {
                Ok((reloader, panicked)) => {
                    self = reloader;
                    if let Some(message) = panicked {
                        tracing::error!(error = %message, "the plugin rescan panicked; the reloader carries on with the plugins in service");
                        self.count(|s| s.restarts += 1);
                        self.report();
                    }
                }
                // The closure catches panics; a JoinError here means the blocking pool
                // is shutting down, and the reloader went with it.
                Err(e) => {
                    tracing::error!(error = %e, "the plugin rescan could not run; the reloader stops");
                    return Err(notify::Error::generic(&e.to_string()));
                }
            }
        }
        drop(results);
        Ok(self.stats())
    }
}

fn watch_dir(
    dir: &Path,
    events: mpsc::UnboundedSender<()>,
) -> Result<notify::RecommendedWatcher, notify::Error> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = events.send(());
        }
    })?;
    watcher.watch(dir, notify::RecursiveMode::Recursive)?;
    Ok(watcher)
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}
