//! Wiring: from a validated [`Config`] to a running pipeline.
//!
//! Builds the runtime, loads and starts every plugin (refusing to start if any plugin
//! fails to load or to `init`, naming it), opens the source and the sink, and runs the
//! pipeline until the source ends or `shutdown` resolves.

use std::future::Future;
use std::sync::Arc;

use crate::config::{Config, SinkConfig, SourceConfig};
use crate::debezium::RawRecord;
use crate::pipeline::{Pipeline, PipelineError, PipelineStats, Route};
use crate::reload::Reloader;
use crate::runtime::{Origin, OutputRecord};
use crate::runtime::{PluginThread, PluginWorker, Runtime, RuntimeError};
use crate::sink::file::{FileOutput, FileSink};
use crate::sink::kafka::KafkaSink;
use crate::sink::{Sink, SinkError};
use crate::source::file::{FileInput, FileSource};
use crate::source::kafka::KafkaSource;
use crate::source::{Source, SourceError};
use crate::telemetry::Telemetry;

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
    #[error("admin server: cannot listen on {address}: {source}")]
    Admin {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Loads every configured plugin, compiles it, and starts one worker thread per plugin.
pub fn start_routes(runtime: &Runtime, config: &Config) -> Result<Vec<Route>, RunError> {
    config
        .plugins
        .iter()
        .map(|plugin| {
            let loaded = runtime.load_file(plugin.spec.clone(), &plugin.path)?;
            let instance = loaded.instantiate()?;
            let thread = PluginThread::spawn(PluginWorker::new(instance)).map_err(|source| {
                RunError::Thread {
                    plugin: plugin.spec.name.clone(),
                    source,
                }
            })?;
            Ok(Route {
                plugin: thread,
                inputs: plugin.inputs.clone(),
                outputs: plugin.outputs.clone(),
            })
        })
        .collect()
}

/// Runs the configured pipeline to completion (or until `shutdown`).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<PipelineStats, RunError> {
    let runtime = Arc::new(Runtime::new(config.runtime.clone())?);
    let telemetry = Arc::new(Telemetry::default());
    let admin = match config.admin_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|source| RunError::Admin { address, source })?;
            tracing::info!(%address, "admin server listening (/health, /ready, /plugins, /metrics)");
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(crate::admin::serve(
                listener,
                Arc::clone(&telemetry),
                async move {
                    let _ = stopped.await;
                },
            ));
            Some((stop, server))
        }
        None => None,
    };
    let routes = start_routes(&runtime, &config)?;
    let mut source = match &config.source {
        SourceConfig::File { path, topic } => {
            let input = path.clone().map_or(FileInput::Stdin, FileInput::Path);
            AnySource::File(FileSource::open(input, topic.clone()).await?)
        }
        SourceConfig::Kafka(settings) => AnySource::Kafka(KafkaSource::new(settings)?),
    };
    let mut sink = match &config.sink {
        SinkConfig::File { path } => {
            let output = path.clone().map_or(FileOutput::Stdout, FileOutput::Path);
            AnySink::File(FileSink::create(output).await?)
        }
        SinkConfig::Kafka { properties } => AnySink::Kafka(KafkaSink::new(properties)?),
    };
    let (pipeline, watcher) = match &config.plugins_dir {
        None => {
            telemetry.set_plugins(routes.iter().map(Route::info).collect());
            (Pipeline::new(routes, config.pipeline.clone()), None)
        }
        Some(dir) => {
            let (reloader, table) = {
                let runtime = Arc::clone(&runtime);
                let dir = dir.clone();
                let telemetry = Some(Arc::clone(&telemetry));
                tokio::task::spawn_blocking(move || {
                    Reloader::start(runtime, dir, routes, telemetry)
                })
                .await
                .expect("the initial scan does not panic")
            };
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let watcher = tokio::spawn(reloader.watch(async move {
                let _ = stopped.await;
            }));
            (
                Pipeline::with_route_table(table, config.pipeline.clone()),
                Some((stop, watcher)),
            )
        }
    };
    let mut pipeline = pipeline.with_telemetry(Arc::clone(&telemetry));
    telemetry.set_ready(true);
    let result = pipeline.run(&mut source, &mut sink, shutdown).await;
    telemetry.set_ready(false);
    if let Some((stop, watcher)) = watcher {
        let _ = stop.send(());
        match watcher.await {
            Ok(Ok(reloader)) => {
                tracing::info!(stats = ?reloader.stats(), "plugin reloader stopped")
            }
            Ok(Err(e)) => tracing::error!(error = %e, "the plugins directory could not be watched"),
            Err(e) => tracing::error!(error = %e, "the plugin reloader failed"),
        }
    }
    if let Some((stop, server)) = admin {
        let _ = stop.send(());
        let _ = server.await;
    }
    Ok(result?)
}

/// The configured source, whichever kind it is.
enum AnySource {
    File(FileSource),
    Kafka(KafkaSource),
}

impl Source for AnySource {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<RawRecord>>, SourceError> {
        match self {
            AnySource::File(source) => source.next_batch(max).await,
            AnySource::Kafka(source) => source.next_batch(max).await,
        }
    }

    async fn commit(&mut self, last: &[Origin]) -> Result<(), SourceError> {
        match self {
            AnySource::File(source) => source.commit(last).await,
            AnySource::Kafka(source) => source.commit(last).await,
        }
    }
}

/// The configured sink, whichever kind it is.
enum AnySink {
    File(FileSink),
    Kafka(KafkaSink),
}

impl Sink for AnySink {
    async fn send(&mut self, records: Vec<OutputRecord>) -> Result<(), SinkError> {
        match self {
            AnySink::File(sink) => sink.send(records).await,
            AnySink::Kafka(sink) => sink.send(records).await,
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            AnySink::File(sink) => sink.flush().await,
            AnySink::Kafka(sink) => sink.flush().await,
        }
    }
}
