//! Wiring: from a validated [`Config`] to a running pipeline.
//!
//! Builds the runtime, loads and starts every plugin (refusing to start if any plugin
//! fails to load or to `init`, naming it), opens the source and the sink, and runs the
//! pipeline until the source ends or `shutdown` resolves.

use std::future::Future;

use crate::config::{Config, SinkConfig, SourceConfig};
use crate::pipeline::{Pipeline, PipelineError, PipelineStats, Route};
use crate::runtime::{PluginThread, PluginWorker, Runtime, RuntimeError};
use crate::sink::SinkError;
use crate::sink::file::{FileOutput, FileSink};
use crate::source::SourceError;
use crate::source::file::{FileInput, FileSource};

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
    let runtime = Runtime::new(config.runtime.clone())?;
    let routes = start_routes(&runtime, &config)?;
    let SourceConfig::File { path, topic } = &config.source;
    let input = path.clone().map_or(FileInput::Stdin, FileInput::Path);
    let mut source = FileSource::open(input, topic.clone()).await?;
    let SinkConfig::File { path } = &config.sink;
    let output = path.clone().map_or(FileOutput::Stdout, FileOutput::Path);
    let mut sink = FileSink::create(output).await?;
    let mut pipeline = Pipeline::new(routes, config.pipeline.clone());
    let stats = pipeline.run(&mut source, &mut sink, shutdown).await?;
    Ok(stats)
}
