//! The pipeline: source → decode → plugins → checks → sink, then commit.
//!
//! One loop per source partition stream. For each batch it:
//! 1. decodes every raw record ([`crate::debezium`]); tombstones are skipped, malformed
//!    records go to the dead-letter topic with the reason;
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

use std::future::Future;
use std::sync::Arc;

use sluice_core::sink::{Positions, Sink, SinkError};
use sluice_core::source::{Source, SourceError};
use sluice_core::telemetry::{PluginInfo, Telemetry};
use sluice_core::topics::{TopicPattern, any_matches, check_topic_name};
use sluice_core::{Header, Origin, OutputRecord, RawRecord};
use sluice_runtime::debezium::{self, Decoded};
use sluice_runtime::{ChangeEvent, LoadedPlugin, Outcome, PluginThread, ThreadGone, wit};

use crate::metrics::PipelineMetrics;

/// Header names sluice writes. Public so consumers and tests name them the same way.
pub mod headers {
    /// Why an event is in the dead-letter topic.
    pub const DLQ_REASON: &str = "sluice.dlq.reason";
    /// Where it failed: `decode`, `rejected`, `trapped`, `acl` (a topic outside the
    /// plugin's outputs) or `limit` (too many or too large output records).
    pub const DLQ_STAGE: &str = "sluice.dlq.stage";
    /// The rejection's code, when the plugin gave one.
    pub const DLQ_CODE: &str = "sluice.dlq.code";
    /// The plugin that rejected or trapped.
    pub const PLUGIN: &str = "sluice.plugin";
    pub const PLUGIN_VERSION: &str = "sluice.plugin.version";
    /// sha256 of the plugin component that produced the record.
    pub const PLUGIN_SHA256: &str = "sluice.plugin.sha256";
    pub const SOURCE_TOPIC: &str = "sluice.source.topic";
    pub const SOURCE_PARTITION: &str = "sluice.source.partition";
    pub const SOURCE_OFFSET: &str = "sluice.source.offset";

    /// The most bytes of a header sluice fills from data it did not choose (a dead-letter
    /// reason quoting the offending input, a plugin's rejection code): a reason says what
    /// is wrong in far less, and a record is not allowed to grow by what it quotes
    /// (a 100 KB topic name, a 500 KB parse error).
    pub const MAX_COPIED_BYTES: usize = 1024;
}

/// `text` cut to at most [`headers::MAX_COPIED_BYTES`] bytes on a character boundary,
/// with a marker saying how long it was.
pub fn bounded_header_text(text: &str) -> std::borrow::Cow<'_, str> {
    let max = headers::MAX_COPIED_BYTES;
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let marker = format!("... [truncated, {} bytes in all]", text.len());
    let mut cut = max.saturating_sub(marker.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    std::borrow::Cow::Owned(format!("{}{marker}", &text[..cut]))
}

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
}

impl Route {
    /// What telemetry reports about this route's plugin.
    pub fn info(&self) -> PluginInfo {
        let plugin = self.plugin.plugin();
        PluginInfo {
            name: plugin.name().to_owned(),
            version: plugin.version().to_owned(),
            sha256: plugin.sha256().to_owned(),
            inputs: self.inputs.iter().map(|p| p.as_str().to_owned()).collect(),
            outputs: self.outputs.iter().map(|p| p.as_str().to_owned()).collect(),
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
}

/// The lane name of a single pipeline that runs every plugin (see [`crate::lanes`]).
pub const SHARED_LANE: &str = "*";

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            // Large enough that the per-call cost (~µs) vanishes, small enough that one
            // batch of ~1 KB events is ~256 KB in flight per plugin.
            batch_size: 256,
            dead_letter_topic: "sluice.dlq".to_owned(),
            lineage_headers: true,
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

    /// Turns one batch of raw records into the records to publish, in order.
    pub async fn process(
        &mut self,
        batch: Vec<RawRecord>,
    ) -> Result<Vec<OutputRecord>, ThreadGone> {
        self.stats.batches += 1;
        self.stats.records_in += batch.len() as u64;
        // Each record keeps its place: an event (index into `events`) or a dead letter.
        let mut slots = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        for record in batch {
            match debezium::decode(record) {
                Ok(Decoded::Event(event)) => {
                    slots.push(Slot::Event);
                    events.push(event);
                }
                Ok(Decoded::Tombstone) => self.stats.tombstones_skipped += 1,
                Err(malformed) => {
                    let debezium::Malformed { error, record } = *malformed;
                    self.stats.malformed += 1;
                    tracing::warn!(
                        topic = %record.origin.topic,
                        partition = record.origin.partition,
                        offset = record.origin.offset,
                        error = %bounded_header_text(&error.to_string()),
                        "malformed record sent to the dead-letter topic"
                    );
                    let letter = DeadLetter {
                        key: record.key,
                        value: record.value,
                        headers: record.headers,
                        origin: &record.origin,
                    };
                    slots.push(Slot::DeadLetter(self.dead_letter(
                        letter,
                        "decode",
                        &error.to_string(),
                        None,
                        None,
                    )));
                }
            }
        }
        let events = Arc::new(events);
        let routes: Routes = self.routes.borrow().clone();
        let per_route = run_plugins(&routes, &events).await?;
        let mut per_event = self.outcomes_by_event(events.len(), per_route).into_iter();
        let mut output = Vec::with_capacity(slots.len());
        let mut event_index = 0;
        for slot in slots {
            match slot {
                Slot::DeadLetter(record) => output.push(record),
                Slot::Event => {
                    let outcomes = per_event.next().unwrap_or_default();
                    let event = &events[event_index];
                    event_index += 1;
                    if outcomes.is_empty() {
                        self.stats.unrouted += 1;
                    }
                    for (route_index, outcome) in outcomes {
                        self.assemble_one(event, &routes[route_index], outcome, &mut output);
                    }
                }
            }
        }
        self.stats.records_out += output.len() as u64;
        Ok(output)
    }

    /// Regroups per-route outcomes into, per event, `(route index, outcome)` in route order.
    fn outcomes_by_event(
        &self,
        events: usize,
        per_route: Vec<Vec<(usize, Outcome)>>,
    ) -> Vec<Vec<(usize, Outcome)>> {
        let mut by_event: Vec<Vec<(usize, Outcome)>> = (0..events).map(|_| Vec::new()).collect();
        for (route_index, outcomes) in per_route.into_iter().enumerate() {
            for (event_index, outcome) in outcomes {
                by_event[event_index].push((route_index, outcome));
            }
        }
        by_event
    }

    fn assemble_one(
        &mut self,
        event: &ChangeEvent,
        route: &Route,
        outcome: Outcome,
        output: &mut Vec<OutputRecord>,
    ) {
        let plugin = Arc::clone(route.plugin.plugin());
        let (stage, reason, code) = match outcome {
            Outcome::Records(records) => match check_output(route, &records) {
                Ok(()) => {
                    for mut record in records {
                        if self.settings.lineage_headers {
                            push_lineage(&mut record.headers, &plugin, &event.origin);
                        }
                        output.push(record);
                    }
                    return;
                }
                Err((stage, reason)) => {
                    self.stats.output_violations += 1;
                    (stage, reason, None)
                }
            },
            Outcome::Rejected(rejection) => {
                self.stats.rejected += 1;
                ("rejected", rejection.reason, rejection.code)
            }
            Outcome::Trapped(reason) => {
                self.stats.trapped += 1;
                ("trapped", reason, None)
            }
        };
        tracing::warn!(
            plugin = %plugin.name(),
            topic = %event.origin.topic,
            partition = event.origin.partition,
            offset = event.origin.offset,
            stage,
            reason = %bounded_header_text(&reason),
            "event sent to the dead-letter topic"
        );
        let origin = Origin::from(event.origin.clone());
        let letter = DeadLetter {
            key: event.key.clone(),
            value: Some(event.value.clone()),
            headers: sluice_runtime::headers_out(event.headers.clone()),
            origin: &origin,
        };
        output.push(self.dead_letter(letter, stage, &reason, code.as_deref(), Some(&plugin)));
    }

    fn dead_letter(
        &mut self,
        letter: DeadLetter<'_>,
        stage: &str,
        reason: &str,
        code: Option<&str>,
        plugin: Option<&LoadedPlugin>,
    ) -> OutputRecord {
        self.stats.dead_lettered += 1;
        let mut headers = letter.headers;
        headers.push(header(headers::DLQ_REASON, &bounded_header_text(reason)));
        headers.push(header(headers::DLQ_STAGE, stage));
        if let Some(code) = code {
            headers.push(header(headers::DLQ_CODE, &bounded_header_text(code)));
        }
        if let Some(plugin) = plugin {
            headers.push(header(headers::PLUGIN, plugin.name()));
            headers.push(header(headers::PLUGIN_VERSION, plugin.version()));
            headers.push(header(headers::PLUGIN_SHA256, plugin.sha256()));
        }
        push_source(
            &mut headers,
            &letter.origin.topic,
            letter.origin.partition,
            letter.origin.offset,
        );
        OutputRecord {
            topic: self.settings.dead_letter_topic.clone(),
            key: letter.key,
            value: letter.value,
            headers,
        }
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

/// Runs each route over the events it subscribes to, all routes concurrently.
/// Returns, per route, the index of each event it saw and that event's outcome.
async fn run_plugins(
    routes: &[Arc<Route>],
    events: &Arc<Vec<ChangeEvent>>,
) -> Result<Vec<Vec<(usize, Outcome)>>, ThreadGone> {
    let calls = routes.iter().map(|route| {
        let indices: Vec<usize> = (0..events.len())
            .filter(|&i| any_matches(&route.inputs, &events[i].origin.topic))
            .collect();
        let input = if indices.len() == events.len() {
            Arc::clone(events)
        } else {
            Arc::new(indices.iter().map(|&i| events[i].clone()).collect())
        };
        async move {
            if indices.is_empty() {
                return Ok(Vec::new());
            }
            let outcomes = route.plugin.transform(input).await?;
            Ok(indices.into_iter().zip(outcomes).collect())
        }
    });
    futures::future::join_all(calls).await.into_iter().collect()
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

/// The last record's origin of each topic-partition in `batch`: what to commit.
fn last_per_partition(batch: &[RawRecord]) -> Vec<Origin> {
    per_partition(batch, |known, new| known < new)
}

/// The first record's origin of each topic-partition in `batch`: where to rewind to.
fn first_per_partition(batch: &[RawRecord]) -> Vec<Origin> {
    per_partition(batch, |known, new| known > new)
}

/// One origin per topic-partition of `batch`: the one whose offset `replaces` every other.
fn per_partition(batch: &[RawRecord], replaces: impl Fn(i64, i64) -> bool) -> Vec<Origin> {
    let mut chosen: Vec<Origin> = Vec::new();
    for record in batch {
        let origin = &record.origin;
        match chosen
            .iter_mut()
            .find(|o| o.topic == origin.topic && o.partition == origin.partition)
        {
            Some(known) if replaces(known.offset, origin.offset) => *known = origin.clone(),
            Some(_) => {}
            None => chosen.push(origin.clone()),
        }
    }
    chosen
}

/// Checks a plugin's output for one event against its allowed topics and its limits.
/// The error is the dead-letter reason.
fn check_output(route: &Route, records: &[OutputRecord]) -> Result<(), (&'static str, String)> {
    let limits = route.plugin.plugin().spec().limits;
    if records.len() > limits.max_records_per_event as usize {
        return Err((
            "limit",
            format!(
                "plugin produced {} records for one event, over its limit of {} (limits.max_records_per_event)",
                records.len(),
                limits.max_records_per_event
            ),
        ));
    }
    for record in records {
        // Before the ACL: a plugin allowed `*` may still not write what no broker takes,
        // and one bad name must cost its event, not the producer call of the whole batch.
        if let Err(error) = check_topic_name(&record.topic) {
            return Err(("acl", format!("plugin wrote to an invalid topic: {error}")));
        }
        if !any_matches(&route.outputs, &record.topic) {
            let allowed: Vec<&str> = route.outputs.iter().map(TopicPattern::as_str).collect();
            return Err((
                "acl",
                format!(
                    "plugin wrote to topic {:?}, which is not among its allowed outputs [{}]",
                    record.topic,
                    allowed.join(", ")
                ),
            ));
        }
        let size = record.key.as_ref().map_or(0, Vec::len)
            + record.value.as_ref().map_or(0, Vec::len)
            + record
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.as_ref().map_or(0, Vec::len))
                .sum::<usize>();
        if size as u64 > limits.max_record_bytes {
            return Err((
                "limit",
                format!(
                    "plugin produced a record of {size} bytes for topic {:?}, over its limit of {} bytes (limits.max_record_bytes)",
                    record.topic, limits.max_record_bytes
                ),
            ));
        }
    }
    Ok(())
}

/// The place of one input record in a batch's output.
enum Slot {
    /// A decoded event (the next one in the batch's event list).
    Event,
    /// A malformed record, already turned into its dead letter.
    DeadLetter(OutputRecord),
}

/// The original record of an event that goes to the dead-letter topic.
struct DeadLetter<'a> {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<Header>,
    origin: &'a Origin,
}

fn header(key: &str, value: &str) -> Header {
    Header::text(key, value)
}

fn push_lineage(headers: &mut Vec<Header>, plugin: &LoadedPlugin, origin: &wit::Origin) {
    headers.push(header(headers::PLUGIN, plugin.name()));
    headers.push(header(headers::PLUGIN_VERSION, plugin.version()));
    headers.push(header(headers::PLUGIN_SHA256, plugin.sha256()));
    push_source(headers, &origin.topic, origin.partition, origin.offset);
}

fn push_source(headers: &mut Vec<Header>, topic: &str, partition: i32, offset: i64) {
    headers.push(header(headers::SOURCE_TOPIC, topic));
    headers.push(header(headers::SOURCE_PARTITION, &partition.to_string()));
    headers.push(header(headers::SOURCE_OFFSET, &offset.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_header_text_is_bounded_on_a_character_boundary() {
        assert_eq!(bounded_header_text("short"), "short");
        let long = "é".repeat(100_000);
        let bounded = bounded_header_text(&long);
        assert!(
            bounded.len() <= headers::MAX_COPIED_BYTES,
            "{}",
            bounded.len()
        );
        assert!(
            bounded.ends_with("... [truncated, 200000 bytes in all]"),
            "{bounded}"
        );
        assert!(bounded.starts_with("éé"));
    }
}
