//! Wiring: from a validated [`Config`] to a running pipeline.
//!
//! Builds the runtime, loads and starts every plugin (refusing to start if any plugin
//! fails to load or to `init`, naming it), opens the source and the sink, and runs the
//! pipeline until the source ends or `shutdown` resolves.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

use sluice_capture::CaptureError;
use sluice_capture::config::CaptureKind;
use sluice_core::admin::{AdminError, AdminServer};
use sluice_core::connector::{Delivery, SinkRun, host_name};
use sluice_core::sink::SinkError;
use sluice_core::source::SourceError;
use sluice_core::telemetry::Telemetry;
use sluice_pipeline::lanes::{self, Endpoints, Isolation, LaneError};
use sluice_pipeline::pipeline::{PipelineError, PipelineStats, Route, Routes};
use sluice_pipeline::reload::Reloader;
use sluice_runtime::{PluginThread, Runtime, RuntimeError, start_plugin};

use crate::config::{Config, SourceConfig};
use crate::connectors::{AnySink, AnySource, SharedSink};

/// Why `sluice run` could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("starting the worker thread of plugin {plugin}: {source}")]
    Thread {
        plugin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the source: {0}")]
    Source(#[from] SourceError),
    #[error("opening the sink: {0}")]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Lane(#[from] LaneError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("loading the plugins failed: {0}")]
    Loading(String),
    #[error("capture ([capture]) stopped, and the pipeline with it: {0}")]
    Capture(#[from] CaptureError),
}

/// Loads every configured plugin, compiles it, and starts its worker threads: one
/// instance and thread per consumer of its lane ([`Config::consumers`]), times the
/// plugin's `parallelism`. Plugins load
/// concurrently, each on a thread of its own, so the slowest plugin sets the start-up
/// time, not the sum of all. Blocking.
pub fn start_routes(runtime: &Runtime, config: &Config) -> Result<Vec<Route>, RunError> {
    std::thread::scope(|scope| {
        let loads: Vec<_> = config
            .plugins
            .iter()
            .map(|plugin| {
                scope.spawn(move || {
                    let loaded = runtime.load_file(plugin.spec.clone(), &plugin.path)?;
                    Ok(Route::new(
                        start(&loaded, config.consumers(), plugin.parallelism)?,
                        plugin.inputs.clone(),
                        plugin.outputs.clone(),
                        plugin.role.clone(),
                    ))
                })
            })
            .collect();
        loads
            .into_iter()
            .map(|load| match load.join() {
                Ok(route) => route,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// [`start_plugin`], with a thread that cannot start reported as [`RunError::Thread`].
fn start(
    loaded: &Arc<sluice_runtime::LoadedPlugin>,
    workers: usize,
    parallelism: usize,
) -> Result<PluginThread, RunError> {
    start_plugin(loaded, workers, parallelism).map_err(|e| match e {
        RuntimeError::Thread { plugin, source } => RunError::Thread { plugin, source },
        other => RunError::Runtime(other),
    })
}

/// Starts the `[capture]` task: given its configuration, the run's telemetry and the
/// run's stop signal, the task's future.
pub type CaptureStarter = Box<
    dyn FnOnce(
            CaptureKind,
            Arc<Telemetry>,
            BoxFuture<'static, ()>,
        ) -> BoxFuture<'static, Result<(), CaptureError>>
        + Send,
>;

/// Runs the configured pipeline to completion (or until `shutdown`); `[capture]` reads
/// the SQL Server its connection string names.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<PipelineStats, RunError> {
    let sql_server: CaptureStarter = Box::new(|capture, telemetry, stopped| {
        Box::pin(
            async move { sluice_capture::run_embedded_any(&capture, &telemetry, stopped).await },
        )
    });
    run_with(config, sql_server, shutdown).await
}

/// [`run`], with `[capture]` started by `start_capture` (tests give it scripted CDC
/// tables through [`sluice_capture::run_on`]).
pub async fn run_with(
    config: Config,
    start_capture: CaptureStarter,
    shutdown: impl Future<Output = ()>,
) -> Result<PipelineStats, RunError> {
    let runtime = Arc::new(Runtime::new(config.runtime.clone())?);
    let telemetry = Arc::new(Telemetry::default());
    let admin = AdminServer::start(config.admin_listen, &telemetry).await?;
    register_runtime_metrics(&telemetry, &runtime);
    // Loading may take long (a compile, an `init` up to its deadline); a shutdown
    // meanwhile stops waiting for it: the loads run on blocking threads that the
    // caller's runtime does not wait for (see `main`).
    tokio::pin!(shutdown);
    let routes = {
        let (runtime, config) = (Arc::clone(&runtime), config.clone());
        let loading = tokio::task::spawn_blocking(move || start_routes(&runtime, &config));
        tokio::select! {
            routes = loading => routes.map_err(|e| RunError::Loading(e.to_string()))??,
            () = &mut shutdown => return stopped_while_loading(admin).await,
        }
    };
    // Standard input can be read only once: one shared lane.
    let isolation = if config.source.read_once() {
        Isolation::Shared
    } else {
        config.isolation
    };
    let endpoints = Arc::new(ConfiguredEndpoints::new(&config, Arc::clone(&telemetry)).await?);
    let (table, watcher) = match &config.plugins_dir {
        None => {
            telemetry.set_plugins(routes.iter().map(Route::info).collect());
            let table: Routes = Arc::new(routes.into_iter().map(Arc::new).collect());
            // With the sender gone the receiver keeps the last (only) table.
            (tokio::sync::watch::channel(table).1, None)
        }
        Some(dir) => {
            let (reloader, table) = {
                let runtime = Arc::clone(&runtime);
                let dir = dir.clone();
                let telemetry = Some(Arc::clone(&telemetry));
                let loading = tokio::task::spawn_blocking(move || {
                    Reloader::start(runtime, dir, routes, telemetry)
                });
                tokio::select! {
                    started = loading => started.map_err(|e| RunError::Loading(e.to_string()))?,
                    () = &mut shutdown => return stopped_while_loading(admin).await,
                }
            };
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let watcher = tokio::spawn(reloader.watch(async move {
                let _ = stopped.await;
            }));
            (table, Some((stop, watcher)))
        }
    };
    telemetry.set_ready(true);
    // One stop for the lanes and the capture task: the caller's shutdown, or capture
    // failing (a pipeline whose input has stopped should not look healthy).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stopping = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let mut capture = config.capture.clone().map(|capture| {
        tokio::spawn(start_capture(
            capture,
            Arc::clone(&telemetry),
            Box::pin(stopping(stopped.clone())),
        ))
    });
    let lanes = lanes::run(
        endpoints,
        table,
        isolation,
        config.pipeline.clone(),
        Some(Arc::clone(&telemetry)),
        stopping(stopped),
    );
    tokio::pin!(lanes);
    let mut capture_error = None;
    let result = loop {
        tokio::select! {
            result = &mut lanes => break result,
            _ = &mut shutdown, if !*stop.borrow() => {
                let _ = stop.send(true);
            }
            joined = async { capture.as_mut().expect("guarded").await }, if capture.is_some() => {
                capture = None;
                if let Some(error) = capture_outcome(joined) {
                    tracing::error!(%error, "capture stopped; stopping the pipeline");
                    capture_error = Some(error);
                }
                let _ = stop.send(true);
            }
        }
    };
    let _ = stop.send(true);
    if let Some(task) = capture
        && let Some(error) = capture_outcome(task.await)
    {
        capture_error = Some(error);
    }
    telemetry.set_ready(false);
    if let Some((stop, watcher)) = watcher {
        let _ = stop.send(());
        match watcher.await {
            Ok(Ok(stats)) => {
                tracing::info!(
                    loaded = stats.loaded,
                    refused = stats.refused,
                    removed = stats.removed,
                    restarts = stats.restarts,
                    "plugin reloader stopped"
                )
            }
            Ok(Err(e)) => tracing::error!(error = %e, "the plugins directory could not be watched"),
            Err(e) => tracing::error!(error = %e, "the plugin reloader failed"),
        }
    }
    if let Some(admin) = admin {
        admin.stop().await;
    }
    if let Some(error) = capture_error {
        return Err(RunError::Capture(error));
    }
    Ok(result?)
}

/// Ends a run stopped before its plugins finished loading: nothing was read, so there
/// is nothing to flush or commit.
async fn stopped_while_loading(admin: Option<AdminServer>) -> Result<PipelineStats, RunError> {
    tracing::info!(
        "shutdown requested while plugins were loading; stopping without waiting for them"
    );
    if let Some(admin) = admin {
        admin.stop().await;
    }
    Ok(PipelineStats::default())
}

/// Adds the runtime's own counters to the metrics: the plugin memory budget and what
/// the running instances' caps hold of it, and plugin log lines dropped over their
/// per-call budget.
fn register_runtime_metrics(telemetry: &Telemetry, runtime: &Arc<Runtime>) {
    let drops = runtime.log_drops().clone();
    let budget = Arc::clone(runtime.memory_budget());
    telemetry.add_collector(move || {
        let mut out = format!(
            "# HELP sluice_plugin_memory_budget_bytes What the memory caps of running plugin instances may add up to (runtime.plugin_memory).\n\
             # TYPE sluice_plugin_memory_budget_bytes gauge\n\
             sluice_plugin_memory_budget_bytes {}\n\
             # HELP sluice_plugin_memory_reserved_bytes The memory caps of the running plugin instances, added up.\n\
             # TYPE sluice_plugin_memory_reserved_bytes gauge\n\
             sluice_plugin_memory_reserved_bytes {}\n",
            budget.total(),
            budget.held()
        );
        out.push_str(
            "# HELP sluice_plugin_log_lines_dropped_total Plugin log lines dropped over limits.log_lines_per_call.\n\
             # TYPE sluice_plugin_log_lines_dropped_total counter\n",
        );
        for (plugin, dropped) in drops.snapshot() {
            let plugin = plugin.replace('\\', "\\\\").replace('"', "\\\"");
            out.push_str(&format!(
                "sluice_plugin_log_lines_dropped_total{{plugin=\"{plugin}\"}} {dropped}\n"
            ));
        }
        out
    });
}

/// The error a finished capture task ended with, if any (a panic becomes one too).
fn capture_outcome(
    joined: Result<Result<(), CaptureError>, tokio::task::JoinError>,
) -> Option<CaptureError> {
    match joined {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error),
        Err(error) => Some(CaptureError::Task(error.to_string())),
    }
}

/// Opens each lane's source and sink from the configuration: which kinds they are is
/// [`crate::connectors`]' business.
struct ConfiguredEndpoints {
    source: SourceConfig,
    sink: SharedSink,
    run: SinkRun,
    consumers: usize,
}

impl ConfiguredEndpoints {
    async fn new(config: &Config, telemetry: Arc<Telemetry>) -> Result<Self, RunError> {
        let run = SinkRun {
            delivery: config.delivery,
            instance: config.instance.clone().unwrap_or_else(host_name),
            telemetry,
        };
        Ok(Self {
            source: config.source.clone(),
            sink: config.sink.start(&run).await?,
            run,
            consumers: config.consumers(),
        })
    }
}

impl Endpoints for ConfiguredEndpoints {
    type Source = AnySource;
    type Sink = AnySink;

    fn consumers(&self) -> usize {
        self.consumers
    }

    async fn open(&self, lane: &str) -> Result<(AnySource, AnySink), LaneError> {
        let failed = |reason: String| LaneError::Open {
            lane: lane.to_owned(),
            reason,
        };
        let source = self
            .source
            .open(lane, &self.run.telemetry)
            .await
            .map_err(|e| failed(e.to_string()))?;
        // Exactly-once is the endpoints' business: a transactional sink commits the
        // positions of the lane's own source, through the handle the source gives it.
        let commit = (self.run.delivery == Delivery::ExactlyOnce)
            .then(|| source.commit_handle())
            .flatten();
        let sink = self
            .sink
            .open(&self.run, lane, commit)
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok((source, sink))
    }
}
