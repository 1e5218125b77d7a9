//! sluice-runtime: the WebAssembly host. One wasmtime `Engine` per process, components
//! compiled once per content hash, one `InstancePre` per plugin version, one `Store` per
//! plugin worker.
//!
//! - [`Runtime`] owns the engine, the linker (WASI with nothing granted, plus the
//!   `sluice:transform/host` interface), the compile cache and the epoch ticker.
//! - [`LoadedPlugin`] is one compiled, linked, validated version of a plugin.
//! - [`PluginWorker`] runs batches through instances of a plugin, isolating poison events
//!   and replacing instances after traps; [`PluginThread`] runs workers on threads.
//! - [`debezium`] decodes Debezium envelopes into the events plugins receive; the
//!   conversions between sluice-core's records and the WIT types live at the boundary
//!   (`boundary`) and move fields without copying bytes.
//!
//! It depends on sluice-core only: not on Kafka, capture or the pipeline, which give it
//! records and take its outcomes.

mod bindings;
mod boundary;
mod cache;
pub mod debezium;
mod limits;
mod plugin;
mod state;
mod thread;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

pub use bindings::{
    ChangeEvent, EventOutcome, Operation, Rejection, SnapshotMarker, SourceInfo, Span,
    TransactionInfo,
};
pub use boundary::{headers_out, records_out};
pub use cache::CacheOutcome;
pub use limits::{EPOCH_TICK, PluginLimits, StoreMemoryExceeded};
pub use plugin::{LoadedPlugin, PluginInstance, PluginSpec};
pub use state::PluginState;
pub use thread::{PluginThread, ThreadGone, start_plugin};
pub use worker::{Outcome, PluginWorker};

use cache::ComponentCache;
use limits::EpochTicker;

/// Why a plugin could not be loaded or started. Every variant names the plugin or file.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("could not set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error("{path}: cannot read the plugin file: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: not a WebAssembly component: {detail}")]
    NotAComponent { origin: String, detail: String },
    #[error("{origin}: does not fit the sluice:transform@0.1.0 `transformer` world: {detail}")]
    WrongWorld { origin: String, detail: String },
    #[error("plugin {plugin}: could not be instantiated: {detail}")]
    Instantiate { plugin: String, detail: String },
    #[error("plugin {plugin}: init refused its configuration: {message}")]
    InitRejected { plugin: String, message: String },
    #[error("plugin {plugin}: init trapped: {reason}")]
    InitTrapped { plugin: String, reason: String },
    #[error("starting the worker thread of plugin {plugin}: {source}")]
    Thread {
        plugin: String,
        #[source]
        source: std::io::Error,
    },
}

/// The WIT types of the plugin contract (`wit/types.wit`), as the bindings generate them:
/// what a plugin receives and returns. Sources and sinks use sluice-core's records instead.
pub mod wit {
    pub use crate::bindings::{Header, Origin, OutputRecord};
}

/// Settings of the runtime as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Whether calls have CPU deadlines (epoch interruption). Always on in `sluice run`;
    /// off only to measure what deadlines cost (the runtime benchmark).
    pub cpu_deadlines: bool,
    /// Whether stores have the memory limiter. Always on in `sluice run`; off only to
    /// measure what it costs (the runtime benchmark).
    pub memory_limits: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            cache_dir: None,
            cpu_deadlines: true,
            memory_limits: true,
        }
    }
}

/// The process's WebAssembly runtime. Cheap to share behind an `Arc`.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: ComponentCache,
    memory_limits: bool,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    pub fn new(options: RuntimeOptions) -> Result<Self, RuntimeError> {
        let engine = Engine::new(&engine_config(options.cpu_deadlines))
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| RuntimeError::Engine(format!("linking WASI: {e:#}")))?;
        bindings::Transformer::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| RuntimeError::Engine(format!("linking the host interface: {e:#}")))?;
        let ticker = EpochTicker::start(&engine)
            .map_err(|e| RuntimeError::Engine(format!("starting the epoch ticker: {e}")))?;
        Ok(Self {
            engine,
            linker,
            cache: ComponentCache::new(options.cache_dir),
            memory_limits: options.memory_limits,
            _ticker: ticker,
        })
    }

    /// The engine (for benchmarks and tools that compile on their own).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads, compiles (or loads from the cache), links and validates a plugin file.
    /// Does not instantiate it: [`LoadedPlugin::instantiate`] does, and runs `init`.
    pub fn load_file(
        &self,
        spec: PluginSpec,
        path: &Path,
    ) -> Result<Arc<LoadedPlugin>, RuntimeError> {
        let bytes = std::fs::read(path).map_err(|source| RuntimeError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load_bytes(spec, &bytes, &path.display().to_string())
    }

    /// Like [`Runtime::load_file`] for bytes already in memory; `origin` names them in errors.
    pub fn load_bytes(
        &self,
        spec: PluginSpec,
        bytes: &[u8],
        origin: &str,
    ) -> Result<Arc<LoadedPlugin>, RuntimeError> {
        check_is_component(bytes, origin)?;
        let sha256 = hex::encode(Sha256::digest(bytes));
        let started = std::time::Instant::now();
        let (component, cache) = self
            .cache
            .get_or_compile(&self.engine, bytes, &sha256)
            .map_err(|e| RuntimeError::NotAComponent {
                origin: origin.to_owned(),
                detail: format!("{e:#}"),
            })?;
        let instance_pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| RuntimeError::WrongWorld {
                    origin: origin.to_owned(),
                    detail: format!("{e:#}"),
                })?;
        let pre =
            bindings::TransformerPre::new(instance_pre).map_err(|e| RuntimeError::WrongWorld {
                origin: origin.to_owned(),
                detail: format!("{e:#}"),
            })?;
        tracing::info!(
            plugin = %spec.name,
            version = %spec.version,
            sha256 = %&sha256[..12],
            ?cache,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "plugin compiled"
        );
        Ok(Arc::new(LoadedPlugin::new(
            spec,
            sha256,
            cache,
            pre,
            self.engine.clone(),
            self.memory_limits,
        )))
    }
}

/// One engine configuration for the whole process.
fn engine_config(cpu_deadlines: bool) -> Config {
    let mut config = Config::new();
    // Deadlines: a cheap counter check in loops and function entries (its cost is
    // measured in BENCHMARKS.md), unlike fuel which counts every instruction.
    config.epoch_interruption(cpu_deadlines);
    // Guest stack overflow is a trap. 512 KiB is wasmtime's default and ample for
    // plugins; deep recursion past it traps the instance, never the host thread.
    config.max_wasm_stack(512 * 1024);
    config.wasm_component_model(true);
    // Memory uses the on-demand allocator with wasmtime's default 4 GiB virtual
    // reservation per linear memory, which removes bounds checks from guest code. It is
    // address space, not RAM (the limiter caps what is committed); the pooling allocator
    // and its up-front reservations (wasmtime#7637) are not used.
    config
}

/// Refuses a file that is not a component before Cranelift sees it, with a clear reason.
fn check_is_component(bytes: &[u8], origin: &str) -> Result<(), RuntimeError> {
    const MAGIC: &[u8; 4] = b"\0asm";
    let detail = if bytes.len() < 8 {
        Some(format!(
            "file is {} bytes long, too short for WebAssembly",
            bytes.len()
        ))
    } else if &bytes[..4] != MAGIC {
        Some("no WebAssembly magic number (is this a .wasm file?)".to_owned())
    } else if bytes[4..8] == [1, 0, 0, 0] {
        Some(
            "this is a core WebAssembly module, not a component; build for wasm32-wasip2 \
             (or wrap it with `wasm-tools component new`)"
                .to_owned(),
        )
    } else {
        None
    };
    match detail {
        Some(detail) => Err(RuntimeError::NotAComponent {
            origin: origin.to_owned(),
            detail,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_files_that_are_not_components() {
        let err = check_is_component(b"hello", "x.wasm").expect_err("too short");
        assert!(
            err.to_string()
                .contains("x.wasm: not a WebAssembly component: file is 5 bytes")
        );
        let err = check_is_component(b"PK\x03\x04zipfile", "y.wasm").expect_err("not wasm");
        assert!(err.to_string().contains("magic number"));
        let core = b"\0asm\x01\0\0\0";
        let err = check_is_component(core, "z.wasm").expect_err("core module");
        assert!(err.to_string().contains("core WebAssembly module"));
    }
}
