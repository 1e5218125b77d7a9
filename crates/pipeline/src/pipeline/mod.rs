//! The pipeline: source → decode → plugins → checks → sink, then commit.
//!
//! One loop per source partition stream. For each batch it:
//! 1. decodes every raw record ([`sluice_runtime::debezium`]); tombstones are skipped,
//!    malformed records go to the dead-letter topic with the reason;
//! 2. runs the decoded events through every plugin whose inputs match their topic, all
//!    plugins of the batch in parallel, each on its own thread;
//! 3. assembles the output in source order (event by event, plugin by plugin in config
//!    order), dropping to the dead-letter topic every event a plugin rejected or trapped
//!    on, or for which it wrote a topic outside its allowed outputs; stamps lineage headers;
//! 4. hands the whole batch to the sink and, once the sink has it, commits the position of
//!    the batch's last record (or lets the sink commit it with the records:
//!    [`Positions::Committed`], exactly-once); a batch the sink aborted is read again.
//!
//! So a record is committed only after everything it produced (outputs and dead letters)
//! is published: at-least-once. Ordering is preserved within a batch and across batches.
//! Every source and sink (file, Kafka, ...) plugs into this same loop.
//!
//! This module holds the loop (`run`); steps 1 to 3 are in `assemble`, dead letters and
//! the header names in `dead_letters`, the batch's positions in `positions`.

use std::future::Future;
use std::sync::Arc;

use sluice_core::OutputRecord;
use sluice_core::sink::{Positions, Sink, SinkError};
use sluice_core::source::{Source, SourceError};
use sluice_core::telemetry::{PluginInfo, Telemetry};
use sluice_core::topics::TopicPattern;
use sluice_runtime::{PluginThread, ThreadGone};

use crate::candidates::CandidateMetrics;
use crate::manifest::Role;
use crate::metrics::PipelineMetrics;

mod assemble;
mod dead_letters;
mod positions;

pub(crate) use assemble::{assemble_outcome, subset};
pub use dead_letters::{bounded_header_text, headers};
use positions::{first_per_partition, last_per_partition};

/// The routes in force. The pipeline reads it once per batch, so a new table (a hot
/// reload) takes effect at the next batch boundary, and a batch in flight finishes on the
/// routes (plugin versions) it started with.
pub type Routes = Arc<Vec<Arc<Route>>>;

/// A plugin and the topics it reads and may write.
#[derive(Debug)]
pub struct Route {
    pub plugin: PluginThread,
    pub inputs: Vec<TopicPattern>,
    pub outputs: Vec<TopicPattern>,
    /// Serving, shadow or canary ([`crate::candidates`]).
    pub role: Role,
    /// A shadow's batch in flight: while it runs, the lane's next batches pass it by
    /// (counted as dropped) rather than wait.
    pub shadow_busy: std::sync::atomic::AtomicBool,
}

impl Route {
    pub fn new(
        plugin: PluginThread,
        inputs: Vec<TopicPattern>,
        outputs: Vec<TopicPattern>,
        role: Role,
    ) -> Self {
        Self {
            plugin,
            inputs,
            outputs,
            role,
            shadow_busy: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        self.plugin.plugin().name()
    }

    /// What telemetry reports about this route's plugin.
    pub fn info(&self) -> PluginInfo {
        let plugin = self.plugin.plugin();
        PluginInfo {
            name: plugin.name().to_owned(),
            version: plugin.version().to_owned(),
            sha256: plugin.sha256().to_owned(),
            inputs: self.inputs.iter().map(|p| p.as_str().to_owned()).collect(),
            outputs: self.outputs.iter().map(|p| p.as_str().to_owned()).collect(),
            mode: self.role.mode().to_owned(),
            of: self.role.candidate_of().map(str::to_owned),
            share: self.role.share(),
        }
    }
}

/// How the pipeline batches and where dead letters go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSettings {
    /// Most records per batch (one plugin call per batch).
    pub batch_size: usize,
    pub dead_letter_topic: String,
    /// Whether output records get the `sluice.plugin*` and `sluice.source.*` headers.
    pub lineage_headers: bool,
    /// Differences a shadow version keeps as examples (the first ones; all are counted).
    pub shadow_examples: usize,
}

/// The lane name of a single pipeline that runs every plugin (see [`crate::lanes`]).
pub use sluice_core::connector::SHARED_LANE;

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            // Large enough that the per-call cost (~µs) vanishes, small enough that one
            // batch of ~1 KB events is ~256 KB in flight per plugin.
            batch_size: 256,
            dead_letter_topic: "sluice.dlq".to_owned(),
            lineage_headers: true,
            // Enough to see what kind of difference it is, few enough to read on a page.
            shadow_examples: 10,
        }
    }
}

/// Counters of one pipeline run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineStats {
    pub batches: u64,
    pub records_in: u64,
    pub tombstones_skipped: u64,
    /// Events no plugin subscribes to.
    pub unrouted: u64,
    pub records_out: u64,
    pub malformed: u64,
    pub rejected: u64,
    pub trapped: u64,
    /// Events whose output broke the plugin's allowed topics (`acl`) or limits (`limit`).
    pub output_violations: u64,
    pub dead_lettered: u64,
    /// Batches the sink aborted (exactly-once transactions; processed again).
    pub transactions_aborted: u64,
}

impl PipelineStats {
    /// Logs the counters as fields (not as a Debug blob), so log tools can read them.
    pub fn log(&self, lane: &str, what: &str) {
        tracing::info!(
            lane,
            batches = self.batches,
            records_in = self.records_in,
            records_out = self.records_out,
            tombstones_skipped = self.tombstones_skipped,
            unrouted = self.unrouted,
            malformed = self.malformed,
            rejected = self.rejected,
            trapped = self.trapped,
            output_violations = self.output_violations,
            dead_lettered = self.dead_lettered,
            transactions_aborted = self.transactions_aborted,
            "{what}"
        );
    }
}

/// Why the pipeline stopped with an error (never because of one bad event).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("reading the source: {0}")]
    Source(#[from] SourceError),
    #[error("writing the sink: {0}")]
    Sink(#[from] SinkError),
    #[error(transparent)]
    PluginThread(#[from] ThreadGone),
}

/// The pipeline over one source and one sink.
#[derive(Debug)]
pub struct Pipeline {
    routes: tokio::sync::watch::Receiver<Routes>,
    settings: PipelineSettings,
    stats: PipelineStats,
    metrics: Option<Arc<PipelineMetrics>>,
    /// Events per plugin version and shadow comparisons ([`crate::candidates`]).
    candidates: Option<Arc<CandidateMetrics>>,
    /// The lane this pipeline runs (see [`crate::lanes`]), for logs and metrics.
    lane: String,
    /// Whether the pipeline rests after batches with traps ([`TRAP_REST_FACTOR`]): true
    /// in a plugin's own lane, false in a shared pipeline, where resting would slow
    /// every plugin for one plugin's traps.
    rest_after_traps: bool,
}

/// After a batch in which its plugin trapped (or broke its output limits or ACL), a
/// plugin's lane rests for this many times the batch's duration, scaled by the share of
/// the batch's events that did. A trap
/// costs far more than a normal event (the poison event is found by retrying event by
/// event, each trap throws the instance away and instantiates a fresh one), so a plugin
/// that traps on every event would otherwise keep cores busy that other teams' plugins
/// need: resting bounds a failing lane to about 1/(1 + 4) = 20% of the time it would
/// use, and the events still reach the dead-letter topic, only later. Measured in
/// BENCHMARKS.md (isolation between teams).
pub const TRAP_REST_FACTOR: u32 = 4;

/// The longest rest after one batch, so a failing lane still drains its input.
pub const MAX_TRAP_REST: std::time::Duration = std::time::Duration::from_secs(1);

impl Pipeline {
    /// A pipeline over a fixed set of routes.
    pub fn new(routes: Vec<Route>, settings: PipelineSettings) -> Self {
        let table: Routes = Arc::new(routes.into_iter().map(Arc::new).collect());
        // With the sender gone the receiver keeps the last (only) table.
        let (_, receiver) = tokio::sync::watch::channel(table);
        Self::with_route_table(receiver, settings)
    }

    /// A pipeline whose routes are replaced while it runs (see [`crate::reload`]).
    pub fn with_route_table(
        routes: tokio::sync::watch::Receiver<Routes>,
        settings: PipelineSettings,
    ) -> Self {
        Self {
            routes,
            settings,
            stats: PipelineStats::default(),
            metrics: None,
            candidates: None,
            lane: SHARED_LANE.to_owned(),
            rest_after_traps: false,
        }
    }

    /// Names the lane this pipeline runs (a plugin name, or
    /// [`SHARED_LANE`]); a plugin's own lane rests after traps.
    pub fn with_lane(mut self, lane: &str) -> Self {
        self.lane = lane.to_owned();
        self.rest_after_traps = lane != SHARED_LANE;
        self
    }

    /// Reports counters and batch latency to `telemetry` after every batch.
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> Self {
        self.metrics = Some(telemetry.report::<PipelineMetrics>());
        self.candidates = Some(telemetry.report::<CandidateMetrics>());
        self
    }

    pub fn stats(&self) -> PipelineStats {
        self.stats
    }

    /// Runs until the source is exhausted or `shutdown` resolves. On shutdown the batch in
    /// flight is finished, published and committed before returning.
    pub async fn run<S: Source, K: Sink>(
        &mut self,
        source: &mut S,
        sink: &mut K,
        shutdown: impl Future<Output = ()>,
    ) -> Result<PipelineStats, PipelineError> {
        tokio::pin!(shutdown);
        loop {
            let batch = tokio::select! {
                biased;
                () = &mut shutdown => {
                    tracing::info!("shutdown requested; stopping after the last complete batch");
                    break;
                }
                batch = source.next_batch(self.settings.batch_size) => batch?,
            };
            let Some(batch) = batch else { break };
            let last = last_per_partition(&batch);
            let first = first_per_partition(&batch);
            let started = std::time::Instant::now();
            let before = self.stats;
            let output = self.process(batch).await?;
            let by_topic = count_by_topic(&output);
            match holding(source, sink.send_batch(output, &last)).await? {
                Ok(Positions::Pending) => source.commit(&last).await?,
                Ok(Positions::Committed) => {}
                Err(SinkError::Aborted { reason }) => {
                    // Nothing of the batch took effect: count it once, when it is
                    // committed, and read it again.
                    self.stats = before;
                    self.stats.transactions_aborted += 1;
                    tracing::warn!(lane = %self.lane, %reason, "batch aborted by the sink; processing it again");
                    source.rewind(&first).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let elapsed = started.elapsed();
            if let Some(metrics) = &self.metrics {
                metrics.record_batch(&self.lane, self.stats, elapsed);
                metrics.count_published(&self.lane, by_topic);
            }
            let rest = self.rest_after(&before, elapsed);
            if !rest.is_zero() {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(rest) => {}
                }
            }
        }
        sink.flush().await?;
        Ok(self.stats)
    }

    /// How long to rest after a batch that took `elapsed` (see [`TRAP_REST_FACTOR`]);
    /// `before` are the counters before the batch.
    fn rest_after(
        &self,
        before: &PipelineStats,
        elapsed: std::time::Duration,
    ) -> std::time::Duration {
        // Output violations (a forbidden topic, a record past the size cap) cost like
        // traps: the plugin did all the work, and it is thrown away.
        let trapped = self.stats.trapped - before.trapped + self.stats.output_violations
            - before.output_violations;
        let events = self.stats.records_in - before.records_in;
        if !self.rest_after_traps || trapped == 0 || events == 0 {
            return std::time::Duration::ZERO;
        }
        let share = trapped as f64 / events as f64;
        elapsed
            .mul_f64(share * f64::from(TRAP_REST_FACTOR))
            .min(MAX_TRAP_REST)
    }
}

/// How long the sink may take with a batch before the source is held (paused; see
/// [`Source::hold`]). Long enough that a healthy broker never triggers it.
pub const HOLD_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Awaits `sending` (the sink publishing a batch); if it takes longer than [`HOLD_AFTER`],
/// holds the source meanwhile (every [`HOLD_AFTER`]) and releases it once done. The
/// outer error is the source's, the inner result the sink's.
async fn holding<S: Source, T>(
    source: &mut S,
    sending: impl Future<Output = Result<T, SinkError>>,
) -> Result<Result<T, SinkError>, SourceError> {
    tokio::pin!(sending);
    let mut held = false;
    let result = loop {
        tokio::select! {
            result = &mut sending => break result,
            () = tokio::time::sleep(HOLD_AFTER) => {
                source.hold().await?;
                held = true;
            }
        }
    };
    if held {
        source.release().await?;
    }
    Ok(result)
}

/// How many records of `output` go to each topic.
fn count_by_topic(output: &[OutputRecord]) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = Vec::new();
    for record in output {
        match counts.iter_mut().find(|(topic, _)| *topic == record.topic) {
            Some((_, count)) => *count += 1,
            None => counts.push((record.topic.clone(), 1)),
        }
    }
    counts
}
