//! Runs batches through a plugin and isolates poison events.
//!
//! A batch goes through one `transform-batch` call. If the call traps, the instance is
//! discarded and the batch is retried one event at a time, each on a fresh instance after
//! a trap, so that every event that does not itself trap still gets its outcome and each
//! poison event is reported alone with the trap's reason.
//!
//! During the retry each event gets its share of the batch deadline (at least
//! [`MIN_RETRY_TICKS`]), so a plugin that loops on every event costs about one batch
//! deadline in total, not one deadline per event.

use std::sync::Arc;

use sluice_core::OutputRecord;

use super::bindings::{ChangeEvent, EventOutcome, Rejection};
use super::budget::MemoryReservation;
use super::plugin::{LoadedPlugin, PluginInstance};

/// The least deadline of one event's retry, in epoch ticks: the deadline fires on the
/// `n`th tick after the call starts, which may come at once, so two ticks (10–20 ms)
/// guarantee a legitimate event (microseconds) at least one full tick.
pub const MIN_RETRY_TICKS: u64 = 2;

/// What became of one event in one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Records to publish (empty: filtered out), moved out of the plugin's result.
    Records(Vec<OutputRecord>),
    /// The plugin refused the event.
    Rejected(Rejection),
    /// The plugin trapped on this event alone (or could not be started): the reason.
    Trapped(String),
    /// The plugin's output for this event broke one of its limits (records per event,
    /// bytes per record, or the host memory of the batch's records against its memory
    /// cap), found while the host read the output, so those records were never built in
    /// host memory (in the packed world): the reason.
    OverLimit(String),
}

impl From<EventOutcome> for Outcome {
    fn from(outcome: EventOutcome) -> Self {
        match outcome {
            EventOutcome::Records(records) => Outcome::Records(crate::records_out(records)),
            EventOutcome::Rejected(rejection) => Outcome::Rejected(rejection),
        }
    }
}

/// One worker of one plugin version: owns at most one live instance at a time.
#[derive(Debug)]
pub struct PluginWorker {
    plugin: Arc<LoadedPlugin>,
    instance: Option<PluginInstance>,
    traps: u64,
    /// This worker's share of the plugin memory budget (see
    /// [`LoadedPlugin::reserve_memory`]), given back when the last worker holding it
    /// is dropped.
    _memory: Option<Arc<MemoryReservation>>,
}

impl PluginWorker {
    /// A worker for `plugin`, with `instance` already initialised (so that a plugin whose
    /// `init` fails is refused before it gets a worker).
    pub fn new(instance: PluginInstance) -> Self {
        Self {
            plugin: Arc::clone(instance.plugin()),
            instance: Some(instance),
            traps: 0,
            _memory: None,
        }
    }

    /// This worker, holding `reservation` (a share of the plugin memory budget that
    /// covers its instance, whichever instance it runs after a trap) as long as it lives.
    pub fn holding(mut self, reservation: Option<Arc<MemoryReservation>>) -> Self {
        self._memory = reservation;
        self
    }

    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// How many calls have trapped so far.
    pub fn traps(&self) -> u64 {
        self.traps
    }

    /// One outcome per event, in order. Never fails: traps become [`Outcome::Trapped`].
    pub fn transform(&mut self, events: &[ChangeEvent]) -> Vec<Outcome> {
        if events.is_empty() {
            return Vec::new();
        }
        let batch_ticks = self.plugin.spec().limits.deadline_ticks();
        // The output's host memory counts per batch (see
        // `PluginInstance::transform_batch_within`): a failed batch call's records are
        // dropped, and the retries share one count, so a plugin cannot multiply its
        // budget by trapping on purpose.
        let batch_error = match self.call(events, batch_ticks, &mut 0) {
            Ok(outcomes) => return outcomes,
            Err(reason) => reason,
        };
        if events.len() == 1 {
            return vec![Outcome::Trapped(batch_error)];
        }
        tracing::warn!(
            plugin = %self.plugin.name(),
            version = %super::log::printable(self.plugin.version()),
            events = events.len(),
            reason = %super::log::plugin_message(&batch_error),
            "batch trapped; retrying its events one at a time to isolate the poison event"
        );
        let event_ticks = (batch_ticks / events.len() as u64).max(MIN_RETRY_TICKS);
        let mut output_host_bytes = 0;
        events
            .iter()
            .map(|event| {
                match self.call(
                    std::slice::from_ref(event),
                    event_ticks,
                    &mut output_host_bytes,
                ) {
                    Ok(mut outcomes) => outcomes.pop().unwrap_or_else(|| {
                        Outcome::Trapped("contract violation: no outcome returned".to_owned())
                    }),
                    Err(reason) => Outcome::Trapped(reason),
                }
            })
            .collect()
    }

    /// One call on the current instance (created first if the last one trapped).
    fn call(
        &mut self,
        events: &[ChangeEvent],
        ticks: u64,
        output_host_bytes: &mut u64,
    ) -> Result<Vec<Outcome>, String> {
        let instance = match &mut self.instance {
            Some(instance) => instance,
            empty => match self.plugin.instantiate() {
                Ok(instance) => empty.insert(instance),
                Err(e) => return Err(format!("could not start a fresh instance: {e}")),
            },
        };
        match instance.transform_batch_within(events, ticks, output_host_bytes) {
            Ok(outcomes) => Ok(outcomes),
            Err(trapped) => {
                self.traps += 1;
                self.instance = None;
                Err(trapped.reason)
            }
        }
    }
}
