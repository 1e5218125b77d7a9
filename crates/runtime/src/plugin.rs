//! A loaded plugin version and its instances.

use std::sync::Arc;

use wasmtime::{Engine, Store, Trap};

use super::RuntimeError;
use super::bindings::packed::{PackedTransformer, PackedTransformerPre};
use super::bindings::{ChangeEvent, Transformer, TransformerPre};
use super::budget::{MemoryBudget, MemoryReservation};
use super::cache::CacheOutcome;
use super::limits::{PluginLimits, StoreMemoryExceeded};
use super::packed;
use super::state::{LogDrops, PluginState};
use super::worker::Outcome;

/// What the host knows about a plugin before loading it (from config or manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    pub name: String,
    pub version: String,
    /// Passed to `init`, in order.
    pub config: Vec<(String, String)>,
    pub limits: PluginLimits,
}

/// How a plugin's machine code was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Compilation {
    /// Whether it came from the on-disk cache.
    pub(super) cache: CacheOutcome,
    /// Whether the runtime's inlining engine compiled it (a small component).
    pub(super) inlined: bool,
}

/// One compiled, linked and validated version of a plugin; instantiate it as often as
/// needed. Cheap to share behind an `Arc`.
pub struct LoadedPlugin {
    spec: PluginSpec,
    sha256: String,
    compilation: Compilation,
    /// `name@version`, for logs.
    label: Arc<str>,
    pre: WorldPre,
    engine: Engine,
    /// The runtime's plugin memory budget when stores get the memory limiter
    /// ([`super::RuntimeOptions::memory_limits`]); `None` when they do not.
    memory_budget: Option<Arc<MemoryBudget>>,
    drops: LogDrops,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("spec", &self.spec)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    pub(super) fn new(
        spec: PluginSpec,
        sha256: String,
        compilation: Compilation,
        pre: WorldPre,
        engine: Engine,
        memory_budget: Option<Arc<MemoryBudget>>,
        drops: LogDrops,
    ) -> Self {
        // Names come from manifests a team wrote: no control characters in log lines.
        let label = Arc::from(super::log::printable(&format!(
            "{}@{}",
            spec.name, spec.version
        )));
        Self {
            spec,
            sha256,
            compilation,
            label,
            pre,
            engine,
            memory_budget,
            drops,
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn version(&self) -> &str {
        &self.spec.version
    }

    /// The sha256 of the component bytes, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn spec(&self) -> &PluginSpec {
        &self.spec
    }

    /// The world the component exports: `transformer` or `packed-transformer`.
    pub fn world(&self) -> &'static str {
        self.pre.name()
    }

    /// Whether the compiled code came from the on-disk cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.compilation.cache
    }

    /// Whether the runtime's engine for small components compiled it, with inlining
    /// ([`super::RuntimeOptions::inlining_max_code_bytes`]).
    pub fn compiled_with_inlining(&self) -> bool {
        self.compilation.inlined
    }

    /// Reserves the memory caps of `instances` instances of this version from the
    /// runtime's plugin memory budget: held until the last clone of the reservation is
    /// dropped (its workers hold them). `None` when stores have no memory limiter.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::OverBudget`] when they do not fit what the running plugins leave.
    pub fn reserve_memory(
        &self,
        instances: usize,
    ) -> Result<Option<Arc<MemoryReservation>>, RuntimeError> {
        let Some(budget) = &self.memory_budget else {
            return Ok(None);
        };
        budget
            .reserve(instances, self.spec.limits.memory_bytes)
            .map(|reservation| Some(Arc::new(reservation)))
            .map_err(|over| RuntimeError::OverBudget {
                plugin: self.label.to_string(),
                over,
            })
    }

    /// Creates a fresh instance in a store of its own and calls `init` with the config.
    pub fn instantiate(self: &Arc<Self>) -> Result<PluginInstance, RuntimeError> {
        let limits = self.spec.limits;
        let mut store = Store::new(
            &self.engine,
            PluginState::new(Arc::clone(&self.label), &limits, self.drops.clone()),
        );
        if self.memory_budget.is_some() {
            store.limiter(|state| &mut state.memory_cap);
        }
        // wasmtime refuses to copy more than its hostcall fuel (128 MiB by default) out
        // of the guest in one call, which would trap a batch whose output the plugin's
        // own limits allow. What a plugin returns lives in its memory, so its cap bounds
        // the copy anyway (and `packed::decode_outcomes` what the records then take).
        let cap = usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX);
        store.set_hostcall_fuel(store.hostcall_fuel().max(cap));
        // Instantiation runs the components' start functions: the init deadline covers it.
        store.set_epoch_deadline(limits.init_deadline_ticks());
        store.epoch_deadline_trap();
        let bindings = match &self.pre {
            WorldPre::Transformer(pre) => pre.instantiate(&mut store).map(Bindings::Transformer),
            WorldPre::Packed(pre) => pre.instantiate(&mut store).map(Bindings::Packed),
        }
        .map_err(|e| RuntimeError::Instantiate {
            plugin: self.label.to_string(),
            detail: describe_trap(&e, None),
        })?;
        let mut instance = PluginInstance {
            plugin: Arc::clone(self),
            store,
            bindings,
            packed_batch: Vec::new(),
        };
        instance.init()?;
        Ok(instance)
    }
}

/// The packed batch buffer an instance keeps between batches, at most (bytes).
const PACKED_BATCH_KEPT: usize = 8 << 20;

/// A plugin's world, linked: which of the two exports the component has.
pub(super) enum WorldPre {
    /// `transformer`: `transform-batch` over a list of event records.
    Transformer(TransformerPre<PluginState>),
    /// `packed-transformer`: `transform-packed` over one buffer each way.
    Packed(PackedTransformerPre<PluginState>),
}

impl WorldPre {
    /// The world's name in `wit/world.wit`.
    pub(super) fn name(&self) -> &'static str {
        match self {
            WorldPre::Transformer(_) => "transformer",
            WorldPre::Packed(_) => "packed-transformer",
        }
    }
}

enum Bindings {
    Transformer(Transformer),
    Packed(PackedTransformer),
}

/// A live instance of a plugin in its own store. Not shared between threads at once.
pub struct PluginInstance {
    plugin: Arc<LoadedPlugin>,
    store: Store<PluginState>,
    bindings: Bindings,
    /// The packed batch of a `packed-transformer` plugin, reused from batch to batch.
    packed_batch: Vec<u8>,
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInstance")
            .field("plugin", &self.plugin.label)
            .finish_non_exhaustive()
    }
}

/// A call that did not return normally: the instance must be discarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct CallTrapped {
    pub reason: String,
}

impl PluginInstance {
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    fn init(&mut self) -> Result<(), RuntimeError> {
        self.begin_call(self.plugin.spec.limits.init_deadline_ticks());
        let config = self.plugin.spec.config.clone();
        let result = match &self.bindings {
            Bindings::Transformer(bindings) => bindings
                .sluice_transform_transform()
                .call_init(&mut self.store, &config),
            Bindings::Packed(bindings) => bindings
                .sluice_transform_transform_packed()
                .call_init(&mut self.store, &config),
        };
        self.store.data_mut().end_call();
        match result {
            Ok(Ok(())) => Ok(()),
            // The plugin's own text: made printable and capped, as its log lines are.
            Ok(Err(message)) => Err(RuntimeError::InitRejected {
                plugin: self.plugin.label.to_string(),
                message: crate::log::plugin_message(&message).into_owned(),
            }),
            Err(e) => Err(RuntimeError::InitTrapped {
                plugin: self.plugin.label.to_string(),
                reason: describe_trap(&e, self.store.data_mut().take_last_error()),
            }),
        }
    }

    /// Calls `transform-batch` (or `transform-packed`): one outcome per event. On `Err`
    /// the instance is unusable and must be dropped.
    pub fn transform_batch(&mut self, events: &[ChangeEvent]) -> Result<Vec<Outcome>, CallTrapped> {
        let ticks = self.plugin.spec.limits.deadline_ticks();
        self.transform_batch_within(events, ticks, &mut 0)
    }

    /// Like [`PluginInstance::transform_batch`] with a deadline of `ticks` epoch ticks
    /// instead of the plugin's batch deadline, and the host memory that output records
    /// already take for this batch (`output_host_bytes`, see `packed::host_bytes`),
    /// which the records of this call add to and which stays within the plugin's memory
    /// cap: an event whose records would pass it is [`Outcome::OverLimit`]. A worker
    /// that retries a batch's events one at a time carries it across the calls.
    pub fn transform_batch_within(
        &mut self,
        events: &[ChangeEvent],
        ticks: u64,
        output_host_bytes: &mut u64,
    ) -> Result<Vec<Outcome>, CallTrapped> {
        // Counted apart until the call succeeds: a failed call's records are dropped.
        let mut taken = *output_host_bytes;
        self.begin_call(ticks);
        let result = match &self.bindings {
            Bindings::Transformer(bindings) => bindings
                .sluice_transform_transform()
                .call_transform_batch(&mut self.store, events)
                .map(|outcomes| {
                    let mut outcomes: Vec<Outcome> =
                        outcomes.into_iter().map(Outcome::from).collect();
                    cap_output_memory(&mut outcomes, &self.plugin.spec.limits, &mut taken);
                    outcomes
                }),
            Bindings::Packed(bindings) => {
                if let Err(too_large) = packed::encode_batch(events, &mut self.packed_batch) {
                    self.store.data_mut().end_call();
                    return Err(CallTrapped {
                        reason: too_large.to_string(),
                    });
                }
                bindings
                    .sluice_transform_transform_packed()
                    .call_transform_packed(&mut self.store, &self.packed_batch)
                    .map(|outcomes| {
                        packed::decode_outcomes(
                            &outcomes,
                            events.len(),
                            &self.plugin.spec.limits,
                            &mut taken,
                        )
                    })
            }
            .and_then(|decoded| {
                decoded.map_err(|violation| {
                    wasmtime::Error::msg(format!("contract violation: {violation}"))
                })
            }),
        };
        self.store.data_mut().end_call();
        // The buffer keeps its capacity for the next batch, unless one unusually large
        // batch grew it: an idle instance does not hold that much host memory.
        if self.packed_batch.capacity() > PACKED_BATCH_KEPT {
            self.packed_batch = Vec::new();
        }
        match result {
            Ok(outcomes) if outcomes.len() == events.len() => {
                *output_host_bytes = taken;
                Ok(outcomes)
            }
            Ok(outcomes) => Err(CallTrapped {
                reason: format!(
                    "contract violation: transform-batch returned {} outcomes for {} events",
                    outcomes.len(),
                    events.len()
                ),
            }),
            Err(e) => Err(CallTrapped {
                reason: describe_trap(&e, self.store.data_mut().take_last_error()),
            }),
        }
    }

    fn begin_call(&mut self, deadline_ticks: u64) {
        let limits = self.plugin.spec.limits;
        self.store.data_mut().begin_call(&limits);
        self.store.set_epoch_deadline(deadline_ticks);
    }
}

/// The plain world's side of the memory cap on output that `packed::decode_outcomes`
/// checks before it builds records: the records of an event that would bring the
/// batch's output past the plugin's memory cap in host memory are dropped for
/// [`Outcome::OverLimit`]. wasmtime has built them by then, so this does not bound the
/// host's peak as the packed reader does; it gives the same events the same dead
/// letters whichever world a plugin is built for.
fn cap_output_memory(outcomes: &mut [Outcome], limits: &crate::PluginLimits, taken: &mut u64) {
    for outcome in outcomes {
        let Outcome::Records(records) = outcome else {
            continue;
        };
        let event: u64 = records.iter().map(packed::record_host_bytes).sum();
        match limits.output_over_memory_cap(*taken + event) {
            Some(reason) => *outcome = Outcome::OverLimit(reason),
            None => *taken += event,
        }
    }
}

/// Turns a call error into the one-line reason that goes to logs and dead-letter headers.
fn describe_trap(error: &wasmtime::Error, guest_message: Option<String>) -> String {
    if let Some(exceeded) = error.downcast_ref::<StoreMemoryExceeded>() {
        return exceeded.to_string();
    }
    let trap = error.downcast_ref::<Trap>().copied();
    let what = match trap {
        Some(Trap::Interrupt) => "CPU deadline exceeded (interrupted by epoch deadline)".to_owned(),
        Some(Trap::StackOverflow) => "stack overflow".to_owned(),
        Some(trap) => format!("wasm trap: {trap}"),
        None => format!("{error:#}"),
    };
    match guest_message {
        Some(message) => format!("{message} ({what})"),
        None => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::Rejection;
    use sluice_core::{Header, OutputRecord};

    fn record(headers: usize) -> OutputRecord {
        OutputRecord {
            timestamp: None,
            topic: "t".into(),
            key: None,
            value: None,
            headers: vec![
                Header {
                    key: "".into(),
                    value: None,
                };
                headers
            ],
        }
    }

    /// The plain world's outcomes get the packed reader's memory-cap check.
    #[test]
    fn plain_outcomes_over_the_memory_cap_become_over_limit() {
        let flood = packed::record_host_bytes(&record(100));
        let single = packed::record_host_bytes(&record(0));
        let limits = crate::PluginLimits {
            memory_bytes: 2 * flood + single,
            ..crate::PluginLimits::default()
        };
        let rejected = Outcome::Rejected(Rejection {
            reason: "no".into(),
            code: None,
        });
        let mut outcomes = vec![
            Outcome::Records(vec![record(100)]),
            rejected.clone(),
            Outcome::Records(vec![record(100)]),
            Outcome::Records(vec![record(100)]),
            Outcome::Records(vec![record(0)]),
        ];
        let mut taken = 0;
        cap_output_memory(&mut outcomes, &limits, &mut taken);
        assert_eq!(outcomes[0], Outcome::Records(vec![record(100)]));
        assert_eq!(outcomes[1], rejected);
        assert_eq!(outcomes[2], Outcome::Records(vec![record(100)]));
        let Outcome::OverLimit(reason) = &outcomes[3] else {
            panic!("over the cap: {:?}", outcomes[3]);
        };
        assert!(reason.contains("(limits.memory)"), "{reason}");
        assert_eq!(outcomes[4], Outcome::Records(vec![record(0)]));
        assert_eq!(taken, 2 * flood + single);
        // A later call of the same batch (a retry) goes on from what is taken.
        let mut again = vec![Outcome::Records(vec![record(0)])];
        cap_output_memory(&mut again, &limits, &mut taken);
        assert!(matches!(again[0], Outcome::OverLimit(_)), "{again:?}");
    }
}
