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
//! Step 4 of one batch overlaps steps 1 to 3 of the next: while the sink publishes batch
//! N, batch N+1 is read and transformed (plugins run on threads of their own, so on a
//! machine with a core free the two really run at once). The sink still gets one batch at
//! a time: N+1 is handed over only after N is settled. If the sink aborts N, N+1's work
//! is thrown away and both are read again.
//!
//! So a record is committed only after everything it produced (outputs and dead letters)
//! is published: at-least-once. Ordering is preserved within a batch and across batches.
//! Every source and sink (file, Kafka, ...) plugs into this same loop.
//!
//! This module holds the loop (`run`); steps 1 to 3 are in `assemble`, dead letters and
//! the header names in `dead_letters`, the batch's positions in `positions`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use sluice_core::sink::{Positions, Sink, SinkError};
use sluice_core::source::{Source, SourceError};
use sluice_core::telemetry::{PluginInfo, Telemetry};
use sluice_core::topics::TopicPattern;
use sluice_core::{Origin, OutputRecord};
use sluice_runtime::{PluginThread, ThreadGone};

use crate::candidates::CandidateMetrics;
use crate::manifest::Role;
use crate::metrics::{LaneMetrics, PipelineMetrics};

mod assemble;
mod dead_letters;
mod positions;
#[cfg(test)]
mod tests;

use assemble::{DecodedBatch, SubmittedBatch, decode_batch};
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
            parallelism: self.plugin.parallelism(),
            memory_bytes: self.plugin.memory_bytes(),
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
    /// What was counted after `earlier` (a snapshot of the same counters).
    pub fn since(&self, earlier: &PipelineStats) -> PipelineStats {
        PipelineStats {
            batches: self.batches.saturating_sub(earlier.batches),
            records_in: self.records_in.saturating_sub(earlier.records_in),
            tombstones_skipped: self
                .tombstones_skipped
                .saturating_sub(earlier.tombstones_skipped),
            unrouted: self.unrouted.saturating_sub(earlier.unrouted),
            records_out: self.records_out.saturating_sub(earlier.records_out),
            malformed: self.malformed.saturating_sub(earlier.malformed),
            rejected: self.rejected.saturating_sub(earlier.rejected),
            trapped: self.trapped.saturating_sub(earlier.trapped),
            output_violations: self
                .output_violations
                .saturating_sub(earlier.output_violations),
            dead_lettered: self.dead_lettered.saturating_sub(earlier.dead_lettered),
            transactions_aborted: self
                .transactions_aborted
                .saturating_sub(earlier.transactions_aborted),
        }
    }

    /// Adds `more` (counters of the same kind) to these.
    pub fn add(&mut self, more: &PipelineStats) {
        self.batches += more.batches;
        self.records_in += more.records_in;
        self.tombstones_skipped += more.tombstones_skipped;
        self.unrouted += more.unrouted;
        self.records_out += more.records_out;
        self.malformed += more.malformed;
        self.rejected += more.rejected;
        self.trapped += more.trapped;
        self.output_violations += more.output_violations;
        self.dead_lettered += more.dead_lettered;
        self.transactions_aborted += more.transactions_aborted;
    }

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
    /// This lane's counters in `metrics` (taken when the run starts), and this pipeline's
    /// counters they hold so far.
    lane_metrics: Option<Arc<LaneMetrics>>,
    reported: PipelineStats,
    /// Events per plugin version and shadow comparisons ([`crate::candidates`]).
    candidates: Option<Arc<CandidateMetrics>>,
    /// The route table last seen and its counters of events served, per route.
    served: Option<(Routes, Vec<Arc<std::sync::atomic::AtomicU64>>)>,
    /// The route table last seen and, per route, the topics its plugin has written to
    /// (`limits.max_output_topics`).
    output_topics: Option<(Routes, Vec<assemble::OutputTopics>)>,
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
            lane_metrics: None,
            reported: PipelineStats::default(),
            candidates: None,
            served: None,
            output_topics: None,
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
    ///
    /// A lane's stages overlap over three batches: while the sink publishes batch N, the
    /// plugins (on their own threads) transform batch N+1, and this task reads and decodes
    /// batch N+2 and hands it to the plugins' queues at once, so that their threads go on
    /// to it while N+1 is assembled. Batch N+1 is handed to the sink only once N is
    /// settled (acknowledged and committed, or aborted), so the sink still sees one batch
    /// at a time, in order, and a position is committed only after everything before it
    /// is published. A batch whose publication finishes while the source is idle is
    /// committed at once. At most three batches are in memory.
    pub async fn run<S: Source, K: Sink>(
        &mut self,
        source: &mut S,
        sink: &mut K,
        shutdown: impl Future<Output = ()>,
    ) -> Result<PipelineStats, PipelineError> {
        tokio::pin!(shutdown);
        self.lane_metrics = self
            .metrics
            .as_ref()
            .map(|metrics| metrics.lane(&self.lane));
        // Fixed for a run; this copy decodes the next batch while `self` transforms one.
        let settings = self.settings.clone();
        // The sink is either idle here or lent to the batch in flight.
        let mut idle: Option<&mut K> = Some(sink);
        let mut in_flight: Option<InFlight<'_, K>> = None;
        // The next batch, read and decoded while the plugins worked on the last one (and
        // handed to them already when their queues had room).
        let mut ahead: Option<Result<Option<Prepared>, SourceError>> = None;
        // Whether the batch read ahead may be handed to the plugins before the current
        // one is assembled: not while the lane rests after traps.
        let mut hand_over_early = true;
        loop {
            let next = tokio::select! {
                biased;
                () = &mut shutdown => {
                    tracing::info!("shutdown requested; stopping after the last complete batch");
                    None
                }
                step = async {
                    match ahead.take() {
                        Some(read) => Step::Done(read),
                        None => until_published(read_and_decode(source, &settings), &mut in_flight).await,
                    }
                } => {
                    match step {
                        Step::Done(prepared) => Some(prepared?),
                        Step::Published => {
                            // The source is idle (or slow): commit and report the batch
                            // in flight now rather than when the next one arrives. The
                            // read is cancel-safe and goes on in the next round.
                            let flight = in_flight.take().expect("a publication finished");
                            match self.settle(source, flight).await? {
                                Settled::Published(sink) => idle = Some(sink),
                                Settled::Aborted { sink, first } => {
                                    idle = Some(sink);
                                    source.rewind(&first).await?;
                                }
                            }
                            continue;
                        }
                    }
                }
            };
            let prepared = match next {
                Some(Some(prepared)) => prepared,
                end => {
                    let Some(flight) = in_flight.take() else {
                        break;
                    };
                    let shutting_down = end.is_none();
                    match self.settle(source, flight).await? {
                        Settled::Published(sink) => {
                            idle = Some(sink);
                            break;
                        }
                        Settled::Aborted { sink, first } => {
                            idle = Some(sink);
                            source.rewind(&first).await?;
                            if shutting_down {
                                break;
                            }
                            // The source is exhausted but the aborted batch is read again.
                            continue;
                        }
                    }
                }
            };
            let Prepared {
                batch,
                last,
                first,
                started,
            } = prepared;
            let before = self.stats;
            let mut submitted = match batch {
                Batch::Submitted(submitted) => submitted,
                Batch::Decoded(decoded) => alongside(self.submit(decoded), &mut in_flight).await?,
            };
            // While the plugins run this batch: the one before is published, the next one
            // read and decoded, and handed to the plugins as soon as it is, so that
            // their threads go on to it while this one is assembled.
            let early = hand_over_early;
            let (outcomes, read) = reading_ahead(
                submitted.outcomes(),
                read_and_decode(source, &settings),
                &mut in_flight,
                |read| match read {
                    Ok(Some(prepared)) if early => Ok(Some(self.hand_over(prepared))),
                    other => other,
                },
            )
            .await;
            ahead = read;
            let output = self.assemble(submitted, outcomes?);
            let sink = match in_flight.take() {
                None => idle
                    .take()
                    .expect("the sink is idle when no batch is in flight"),
                Some(flight) => match self.settle(source, flight).await? {
                    Settled::Published(sink) => sink,
                    Settled::Aborted {
                        sink,
                        first: aborted,
                    } => {
                        // This batch (and the one read ahead) were read after the aborted
                        // one: all are read again. Their processing is undone with the
                        // aborted batch's counters.
                        idle = Some(sink);
                        let points = rewind_points(aborted, &first, ahead.take())?;
                        source.rewind(&points).await?;
                        continue;
                    }
                },
            };
            let by_topic = count_by_topic(&output);
            let positions = last.clone();
            let sending: Sending<'_, K> = Box::pin(async move {
                let result = sink.send_batch(output, &positions).await;
                (sink, result, Instant::now())
            });
            in_flight = Some(InFlight {
                publication: Publication::Sending(sending),
                last,
                first,
                before,
                after: self.stats,
                by_topic,
                started,
            });
            let rest = self.rest_after(&before, started.elapsed());
            hand_over_early = rest.is_zero();
            if !rest.is_zero() {
                tokio::select! {
                    biased;
                    () = &mut shutdown => {}
                    () = alongside(tokio::time::sleep(rest), &mut in_flight) => continue,
                }
                // Shut down during the rest: settle the batch in flight and stop.
                if let Some(flight) = in_flight.take() {
                    match self.settle(source, flight).await? {
                        Settled::Published(sink) => idle = Some(sink),
                        Settled::Aborted { sink, first } => {
                            idle = Some(sink);
                            let points = rewind_points(first, &[], ahead.take())?;
                            source.rewind(&points).await?;
                        }
                    }
                }
                break;
            }
        }
        if let Some(sink) = idle {
            sink.flush().await?;
        }
        Ok(self.stats)
    }

    /// Hands a batch read ahead to its plugins if their queues have room now.
    fn hand_over(&self, prepared: Prepared) -> Prepared {
        let Batch::Decoded(decoded) = prepared.batch else {
            return prepared;
        };
        let batch = match self.try_submit(decoded) {
            Ok(submitted) => Batch::Submitted(submitted),
            Err(decoded) => Batch::Decoded(*decoded),
        };
        Prepared { batch, ..prepared }
    }

    /// Waits for the batch in flight to be published (holding the source if that takes
    /// long), then commits its positions (unless the sink did) and reports it. An aborted
    /// batch restores the counters from before it (every batch read after it is undone
    /// too) and says where to read again.
    async fn settle<'a, S: Source, K: Sink>(
        &mut self,
        source: &mut S,
        flight: InFlight<'a, K>,
    ) -> Result<Settled<'a, K>, PipelineError> {
        let InFlight {
            publication,
            last,
            first,
            before,
            after,
            by_topic,
            started,
        } = flight;
        let (sink, result, published_at) = holding(source, publication.finish()).await?;
        match result {
            Ok(Positions::Pending) => source.commit(&last).await?,
            Ok(Positions::Committed) => {}
            Err(SinkError::Aborted { reason }) => {
                // Nothing of the batch took effect: count it once, when it is committed,
                // and read it again.
                self.stats = before;
                self.stats.transactions_aborted += 1;
                tracing::warn!(lane = %self.lane, %reason, "batch aborted by the sink; processing it again");
                return Ok(Settled::Aborted { sink, first });
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(metrics) = &self.lane_metrics {
            metrics.record_batch(&after.since(&self.reported), published_at - started);
            metrics.count_published(&by_topic);
            self.reported = after;
        }
        Ok(Settled::Published(sink))
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
/// error is the source's; the sink's result is in the output.
async fn holding<S: Source, T>(
    source: &mut S,
    sending: impl Future<Output = T>,
) -> Result<T, SourceError> {
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

/// A sink publishing one batch; gives the sink back with the result and the time it
/// finished.
type Sending<'a, K> =
    Pin<Box<dyn Future<Output = (&'a mut K, Result<Positions, SinkError>, Instant)> + Send + 'a>>;

/// A batch's publication: under way, or finished while the next batch was worked on.
enum Publication<'a, K> {
    Sending(Sending<'a, K>),
    Finished(&'a mut K, Result<Positions, SinkError>, Instant),
}

impl<'a, K> Publication<'a, K> {
    /// Moves the publication on; keeps its result once it finishes.
    fn poll_progress(&mut self, cx: &mut Context<'_>) {
        if let Publication::Sending(sending) = self
            && let Poll::Ready((sink, result, at)) = sending.as_mut().poll(cx)
        {
            *self = Publication::Finished(sink, result, at);
        }
    }

    async fn finish(self) -> (&'a mut K, Result<Positions, SinkError>, Instant) {
        match self {
            Publication::Sending(sending) => sending.await,
            Publication::Finished(sink, result, at) => (sink, result, at),
        }
    }
}

/// The batch handed to the sink, while the next one is read and transformed.
struct InFlight<'a, K> {
    publication: Publication<'a, K>,
    /// Per topic-partition, the batch's last record (to commit) and first (to read again
    /// from if the sink aborts it).
    last: Vec<Origin>,
    first: Vec<Origin>,
    /// The counters before the batch, and after it was processed.
    before: PipelineStats,
    after: PipelineStats,
    by_topic: Vec<(String, u64)>,
    started: Instant,
}

/// How a batch in flight ended: the sink is free again either way.
enum Settled<'a, K> {
    Published(&'a mut K),
    Aborted { sink: &'a mut K, first: Vec<Origin> },
}

/// Awaits `step` while moving the publication in flight on, so the two overlap.
async fn alongside<K, T>(
    step: impl Future<Output = T>,
    in_flight: &mut Option<InFlight<'_, K>>,
) -> T {
    let mut step = std::pin::pin!(step);
    std::future::poll_fn(|cx| {
        if let Some(flight) = in_flight.as_mut() {
            flight.publication.poll_progress(cx);
        }
        step.as_mut().poll(cx)
    })
    .await
}

/// How [`until_published`] ended.
enum Step<T> {
    /// The step finished (whether or not a publication did meanwhile).
    Done(T),
    /// The publication in flight finished first; the step was not finished.
    Published,
}

/// Awaits `step` while moving the publication in flight on, like [`alongside`], but
/// returns as soon as that publication finishes (dropping `step`, which must then be
/// cancel-safe), so that the batch is committed without waiting for `step`.
async fn until_published<K, T>(
    step: impl Future<Output = T>,
    in_flight: &mut Option<InFlight<'_, K>>,
) -> Step<T> {
    let mut step = std::pin::pin!(step);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(done) = step.as_mut().poll(cx) {
            return Poll::Ready(Step::Done(done));
        }
        match in_flight.as_mut() {
            Some(flight) => {
                flight.publication.poll_progress(cx);
                if matches!(flight.publication, Publication::Finished(..)) {
                    Poll::Ready(Step::Published)
                } else {
                    Poll::Pending
                }
            }
            None => Poll::Pending,
        }
    })
    .await
}

/// Where to read again after the sink aborted a batch (`aborted`: its first record per
/// topic-partition) when later batches were already read: the one starting at `next`
/// (empty if none) and the one read ahead, if any. Per topic-partition, the earliest of
/// them: the aborted batch's positions, then the later batches' for topic-partitions the
/// earlier ones lack. The error is the read ahead's, if it failed.
fn rewind_points(
    mut aborted: Vec<Origin>,
    next: &[Origin],
    ahead: Option<Result<Option<Prepared>, SourceError>>,
) -> Result<Vec<Origin>, SourceError> {
    let ahead = match ahead {
        Some(read) => read?.map(|prepared| prepared.first).unwrap_or_default(),
        None => Vec::new(),
    };
    for origin in next.iter().chain(&ahead) {
        if !aborted
            .iter()
            .any(|a| a.topic == origin.topic && a.partition == origin.partition)
        {
            aborted.push(origin.clone());
        }
    }
    Ok(aborted)
}

/// A batch read and decoded, with its first and last record per topic-partition and
/// when it was read.
struct Prepared {
    batch: Batch,
    last: Vec<Origin>,
    first: Vec<Origin>,
    started: Instant,
}

/// A batch read ahead: decoded, or handed to its plugins already.
enum Batch {
    Decoded(DecodedBatch),
    Submitted(SubmittedBatch),
}

/// Reads the next batch and decodes it. Cancel-safe, as [`Source::next_batch`] is.
async fn read_and_decode<S: Source>(
    source: &mut S,
    settings: &PipelineSettings,
) -> Result<Option<Prepared>, SourceError> {
    let Some(batch) = source.next_batch(settings.batch_size).await? else {
        return Ok(None);
    };
    let started = Instant::now();
    let last = last_per_partition(&batch);
    let first = first_per_partition(&batch);
    Ok(Some(Prepared {
        batch: Batch::Decoded(decode_batch(settings, batch)),
        last,
        first,
        started,
    }))
}

/// Awaits `step` (the plugins transforming a batch) while moving the publication in
/// flight on and reading the next batch (`read`); returns the read's result, passed
/// through `on_read` as soon as it is there, if it finished meanwhile, else drops it
/// (it must be cancel-safe).
async fn reading_ahead<K, T, R>(
    step: impl Future<Output = T>,
    read: impl Future<Output = R>,
    in_flight: &mut Option<InFlight<'_, K>>,
    mut on_read: impl FnMut(R) -> R,
) -> (T, Option<R>) {
    let mut step = std::pin::pin!(step);
    let mut read = std::pin::pin!(read);
    let mut read_result: Option<R> = None;
    std::future::poll_fn(|cx| {
        if let Some(flight) = in_flight.as_mut() {
            flight.publication.poll_progress(cx);
        }
        if read_result.is_none()
            && let Poll::Ready(result) = read.as_mut().poll(cx)
        {
            read_result = Some(on_read(result));
        }
        match step.as_mut().poll(cx) {
            Poll::Ready(done) => Poll::Ready((done, read_result.take())),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
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
