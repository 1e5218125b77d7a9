//! sluice-runtime: the WebAssembly host. Two wasmtime `Engine`s per process (the second
//! inlines small components' calls, see [`Runtime`]), components compiled once per
//! content hash, one `InstancePre` per plugin version, one `Store` per plugin worker.
//!
//! - [`Runtime`] owns the engines, their linkers (WASI with nothing granted, plus the
//!   `sluice:transform/host` interface), the compile cache and the epoch ticker.
//! - [`LoadedPlugin`] is one compiled, linked, validated version of a plugin.
//! - [`budget`] keeps the memory caps of all running instances within the host's
//!   plugin memory budget.
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
pub mod budget;
mod cache;
pub mod compile;
pub mod debezium;
pub mod file;
mod limits;
pub mod log;
pub mod packed;
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
pub use budget::{MemoryBudget, MemoryReservation, OverBudget};
pub use cache::CacheOutcome;
pub use compile::ShapeLimits;
pub use file::{FileRule, PluginFileError};
pub use limits::{EPOCH_TICK, MemoryCap, PluginLimits, StoreMemoryExceeded};
pub use plugin::{LoadedPlugin, PluginInstance, PluginSpec};
pub use state::{LogDrops, PluginState};
pub use thread::{PluginThread, QueueSlot, Submitted, ThreadGone, start_plugin};
pub use worker::{Outcome, PluginWorker};

use cache::ComponentCache;
use limits::EpochTicker;

/// Why a plugin could not be loaded or started. Every variant names the plugin or file.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("could not set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error(transparent)]
    File(#[from] PluginFileError),
    #[error("{origin}: too complex to compile: {detail}")]
    TooComplex { origin: String, detail: String },
    #[error("{origin}: not a WebAssembly component: {detail}")]
    NotAComponent { origin: String, detail: String },
    #[error(
        "{origin}: does not fit the sluice:transform@0.1.0 `transformer` or `packed-transformer` world: {detail}"
    )]
    WrongWorld { origin: String, detail: String },
    #[error("plugin {plugin}: could not be instantiated: {detail}")]
    Instantiate { plugin: String, detail: String },
    #[error("plugin {plugin}: init refused its configuration: {message}")]
    InitRejected { plugin: String, message: String },
    #[error("plugin {plugin}: init trapped: {reason}")]
    InitTrapped { plugin: String, reason: String },
    #[error("plugin {plugin}: {over}")]
    OverBudget { plugin: String, over: OverBudget },
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
    /// The largest plugin file read, in bytes (`runtime.max_plugin_size`).
    pub max_plugin_bytes: u64,
    /// What the memory caps of all running plugin instances may add up to
    /// (`runtime.plugin_memory`, see [`budget`]); `None`:
    /// [`budget::default_plugin_memory`]. Not enforced when `memory_limits` is off.
    pub plugin_memory: Option<u64>,
    /// The largest component compiled (see [`compile`]).
    pub shape_limits: ShapeLimits,
    /// How long a compile may take before the load is refused.
    pub compile_timeout: std::time::Duration,
    /// Components with at most this many bytes of function bodies are compiled with
    /// Cranelift's inlining (see [`Runtime`]); 0 compiles every component without it.
    pub inlining_max_code_bytes: u64,
}

/// The largest component compiled with inlining by default: 1 MiB of function bodies.
/// Rust plugins have ~0.3 MB; the JavaScript and Python engines (11-40 MB), for which
/// inlining gains nothing and costs gigabytes of compile memory, stay far above it. Low
/// enough that what inlining adds to a compile (3-4x the time, more memory) stays small
/// beside the shape limits a hostile component is held to anyway.
pub const INLINING_MAX_CODE_BYTES: u64 = 1 << 20;

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            cache_dir: None,
            cpu_deadlines: true,
            memory_limits: true,
            max_plugin_bytes: file::DEFAULT_MAX_PLUGIN_BYTES,
            plugin_memory: None,
            shape_limits: ShapeLimits::default(),
            compile_timeout: compile::COMPILE_TIMEOUT,
            inlining_max_code_bytes: INLINING_MAX_CODE_BYTES,
        }
    }
}

/// The process's WebAssembly runtime. Cheap to share behind an `Arc`.
///
/// It holds two engines of the same settings but one: components up to
/// [`RuntimeOptions::inlining_max_code_bytes`] of code are compiled by the second, with
/// Cranelift's inlining of small callees, which removes the per-call prologue (stack
/// and deadline checks) from their hot paths: +9-12% for a Rust `passthrough`, +5-7% for
/// `customers-cdm` (BENCHMARKS.md, "wasmtime's own settings"). Large components (the
/// JavaScript and Python engines) gain nothing from it, compile 3-4x slower and took
/// gigabytes of memory to compile with it, so they keep the first. Deadlines, limits
/// and the cache work the same for both; each engine has its own linker, since a
/// linker belongs to one engine.
pub struct Runtime {
    standard: EngineAndLinker,
    inlining: EngineAndLinker,
    inlining_max_code_bytes: u64,
    cache: ComponentCache,
    memory_limits: bool,
    memory_budget: Arc<MemoryBudget>,
    max_plugin_bytes: u64,
    shape_limits: ShapeLimits,
    compile_timeout: std::time::Duration,
    log_drops: LogDrops,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// One engine and the linker that instantiates its components.
struct EngineAndLinker {
    engine: Engine,
    linker: Linker<PluginState>,
}

impl EngineAndLinker {
    fn new(cpu_deadlines: bool, inlining: bool) -> Result<Self, RuntimeError> {
        let engine = Engine::new(&engine_config(cpu_deadlines, inlining))
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| RuntimeError::Engine(format!("linking WASI: {e:#}")))?;
        state::stop_timers(&mut linker)
            .map_err(|e| RuntimeError::Engine(format!("linking WASI's timers: {e:#}")))?;
        bindings::Transformer::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| RuntimeError::Engine(format!("linking the host interface: {e:#}")))?;
        Ok(Self { engine, linker })
    }
}

impl Runtime {
    pub fn new(options: RuntimeOptions) -> Result<Self, RuntimeError> {
        let standard = EngineAndLinker::new(options.cpu_deadlines, false)?;
        let inlining = EngineAndLinker::new(options.cpu_deadlines, true)?;
        let ticker = EpochTicker::start(&[standard.engine.clone(), inlining.engine.clone()])
            .map_err(|e| RuntimeError::Engine(format!("starting the epoch ticker: {e}")))?;
        Ok(Self {
            standard,
            inlining,
            inlining_max_code_bytes: options.inlining_max_code_bytes,
            cache: ComponentCache::new(options.cache_dir),
            memory_limits: options.memory_limits,
            memory_budget: MemoryBudget::new(
                options
                    .plugin_memory
                    .unwrap_or_else(budget::default_plugin_memory),
            ),
            max_plugin_bytes: options.max_plugin_bytes,
            shape_limits: options.shape_limits,
            compile_timeout: options.compile_timeout,
            log_drops: LogDrops::default(),
            _ticker: ticker,
        })
    }

    /// The engine of components too large for inlining (for benchmarks and tools that
    /// compile on their own).
    pub fn engine(&self) -> &Engine {
        &self.standard.engine
    }

    /// The largest plugin file this runtime reads (`runtime.max_plugin_size`).
    pub fn max_plugin_bytes(&self) -> u64 {
        self.max_plugin_bytes
    }

    /// The budget the memory caps of running plugin instances share
    /// (`runtime.plugin_memory`).
    pub fn memory_budget(&self) -> &Arc<MemoryBudget> {
        &self.memory_budget
    }

    /// Plugin log lines dropped over their per-call budget, per plugin.
    pub fn log_drops(&self) -> &LogDrops {
        &self.log_drops
    }

    /// Reads a plugin file as [`file::read_plugin_file`] does (a regular file within the
    /// size cap, inside `folder` when given).
    pub fn read_plugin_file(
        &self,
        path: &Path,
        folder: Option<&Path>,
    ) -> Result<Vec<u8>, PluginFileError> {
        file::read_plugin_file(path, folder, self.max_plugin_bytes)
    }

    /// Reads, compiles (or loads from the cache), links and validates a plugin file.
    /// Does not instantiate it: [`LoadedPlugin::instantiate`] does, and runs `init`.
    pub fn load_file(
        &self,
        spec: PluginSpec,
        path: &Path,
    ) -> Result<Arc<LoadedPlugin>, RuntimeError> {
        let bytes = self.read_plugin_file(path, None)?;
        self.load_bytes(spec, &bytes, &log::printable_path(path))
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
        let shape = compile::check_shape(bytes, origin, &self.shape_limits)?;
        let inlined =
            self.inlining_max_code_bytes > 0 && shape.code_bytes <= self.inlining_max_code_bytes;
        let chosen = if inlined {
            &self.inlining
        } else {
            &self.standard
        };
        let compiled = {
            // The two engines' artifacts of one component are cached apart.
            let cache_key = if inlined {
                format!("{sha256}-inlined")
            } else {
                sha256.clone()
            };
            let (cache, engine, bytes) =
                (self.cache.clone(), chosen.engine.clone(), bytes.to_vec());
            compile::with_timeout(origin, self.compile_timeout, move || {
                cache.get_or_compile(&engine, &bytes, &cache_key)
            })?
        };
        let (component, cache) = compiled.map_err(|e| RuntimeError::NotAComponent {
            origin: origin.to_owned(),
            detail: format!("{e:#}"),
        })?;
        let instance_pre =
            chosen
                .linker
                .instantiate_pre(&component)
                .map_err(|e| RuntimeError::WrongWorld {
                    origin: origin.to_owned(),
                    detail: format!("{e:#}"),
                })?;
        // A component exports one of the two worlds' interfaces; name both problems when
        // it fits neither.
        let pre = match bindings::TransformerPre::new(instance_pre.clone()) {
            Ok(pre) => plugin::WorldPre::Transformer(pre),
            Err(as_transformer) => {
                match bindings::packed::PackedTransformerPre::new(instance_pre) {
                    Ok(pre) => plugin::WorldPre::Packed(pre),
                    Err(as_packed) => {
                        return Err(RuntimeError::WrongWorld {
                            origin: origin.to_owned(),
                            detail: format!(
                                "as `transformer`: {as_transformer:#}; as `packed-transformer`: \
                             {as_packed:#}"
                            ),
                        });
                    }
                }
            }
        };
        tracing::info!(
            plugin = %self::log::printable(&spec.name),
            version = %self::log::printable(&spec.version),
            sha256 = %&sha256[..12],
            world = pre.name(),
            inlined,
            ?cache,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "plugin compiled"
        );
        Ok(Arc::new(LoadedPlugin::new(
            spec,
            sha256,
            plugin::Compilation { cache, inlined },
            pre,
            chosen.engine.clone(),
            self.memory_limits.then(|| Arc::clone(&self.memory_budget)),
            self.log_drops.clone(),
        )))
    }
}

/// The engines' configuration: the same for both but for `inlining`.
fn engine_config(cpu_deadlines: bool, inlining: bool) -> Config {
    let mut config = Config::new();
    // Inlining of small callees within a core module and across a component's modules.
    config.compiler_inlining(if inlining {
        wasmtime::Inlining::Yes
    } else {
        wasmtime::Inlining::No
    });
    // Deadlines: a cheap counter check in loops and function entries (its cost is
    // measured in BENCHMARKS.md), unlike fuel which counts every instruction.
    config.epoch_interruption(cpu_deadlines);
    // Guest stack overflow is a trap. 512 KiB is wasmtime's default and ample for
    // plugins; deep recursion past it traps the instance, never the host thread.
    config.max_wasm_stack(512 * 1024);
    config.wasm_component_model(true);
    // `SLUICE_WASM_PROFILER=perfmap` writes /tmp/perf-<pid>.map so that `perf report`
    // names the plugins' compiled functions instead of showing bare `[JIT]` addresses.
    if std::env::var_os("SLUICE_WASM_PROFILER").is_some_and(|v| v == "perfmap") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
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
