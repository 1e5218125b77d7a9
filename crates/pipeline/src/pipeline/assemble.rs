//! Assembling a batch's output: decode every record, run each plugin over the events it
//! subscribes to (all plugins of the batch in parallel), then put the outcomes back in
//! source order, checking each plugin's output against its allowed topics and limits and
//! stamping lineage headers.

use std::collections::HashSet;
use std::sync::Arc;

use sluice_core::topics::{TopicPattern, any_matches, check_topic_name};
use sluice_core::{Header, Origin, OutputRecord, RawRecord};
use sluice_runtime::debezium::{self, Decoded};
use sluice_runtime::log::{plugin_message, printable};
use sluice_runtime::{
    ChangeEvent, LoadedPlugin, Outcome, PluginLimits, Submitted, ThreadGone, wit,
};

use super::dead_letters::{DeadLetter, dead_letter, header, headers, push_source};
use super::{Pipeline, PipelineSettings, PipelineStats, Route, Routes};
use crate::candidates;

/// A batch decoded, before its plugins run: each record's place (an event or its dead
/// letter already made) and what decoding counted. Independent of the plugins, so the
/// next batch is decoded while the plugins work on this one.
pub(super) struct DecodedBatch {
    slots: Vec<Slot>,
    events: Vec<ChangeEvent>,
    counted: PipelineStats,
}

/// Decodes one batch of raw records (see [`DecodedBatch`]).
pub(super) fn decode_batch(settings: &PipelineSettings, batch: Vec<RawRecord>) -> DecodedBatch {
    let mut counted = PipelineStats {
        batches: 1,
        records_in: batch.len() as u64,
        ..PipelineStats::default()
    };
    // Each record keeps its place: an event (index into `events`) or a dead letter.
    let mut slots = Vec::with_capacity(batch.len());
    let mut events = Vec::with_capacity(batch.len());
    for record in batch {
        // Events do not carry the record's timestamp (plugins do not see it); its slot
        // does, for the records made from the event.
        let timestamp = record.timestamp;
        match debezium::decode(record) {
            Ok(Decoded::Event(event)) => {
                slots.push(Slot::Event { timestamp });
                events.push(event);
            }
            Ok(Decoded::Tombstone) => counted.tombstones_skipped += 1,
            Err(malformed) => {
                let debezium::Malformed { error, record } = *malformed;
                counted.malformed += 1;
                // The topic (a file line's own `topic`) and the error (which may quote
                // the input) are made printable: input must not write lines of the log.
                tracing::warn!(
                    topic = %printable(&record.origin.topic),
                    partition = record.origin.partition,
                    offset = record.origin.offset,
                    error = %plugin_message(&error.to_string()),
                    "malformed record sent to the dead-letter topic"
                );
                let letter = DeadLetter {
                    key: record.key,
                    value: record.value,
                    headers: record.headers,
                    origin: &record.origin,
                    timestamp,
                };
                slots.push(Slot::DeadLetter(dead_letter(
                    settings,
                    &mut counted,
                    letter,
                    "decode",
                    &error.to_string(),
                    None,
                    None,
                )));
            }
        }
    }
    DecodedBatch {
        slots,
        events,
        counted,
    }
}

/// A decoded batch handed to its plugins' threads: what assembling its output takes
/// once their outcomes arrive ([`Pipeline::assemble`]). Nothing of it is counted until
/// then, so a batch handed over and then dropped (its transaction aborted, a shutdown)
/// leaves the counters as they were.
pub(super) struct SubmittedBatch {
    slots: Vec<Slot>,
    events: Arc<Vec<ChangeEvent>>,
    counted: PipelineStats,
    /// The route table the batch was planned on (a reload does not change it midway).
    routes: Routes,
    plan: candidates::Plan,
    /// Per route, its batch on the plugin's thread (`None`: no event of the batch).
    calls: Vec<Option<Submitted>>,
    /// The shadows, when started with the batch; else they start when it is assembled.
    shadows: Option<candidates::ShadowRuns>,
}

/// Per route, the outcomes of its events (`None`: it ran none).
pub(super) type RouteOutcomes = Vec<Option<Vec<Outcome>>>;

impl SubmittedBatch {
    /// The decoded batch again, as [`Pipeline::plan`] got it (before anything was handed
    /// over).
    fn unplanned(self) -> DecodedBatch {
        let SubmittedBatch {
            slots,
            events,
            counted,
            ..
        } = self;
        DecodedBatch {
            slots,
            events: Arc::try_unwrap(events).unwrap_or_else(|shared| shared.as_ref().clone()),
            counted,
        }
    }

    /// Waits for every route's outcomes. Borrows nothing, so the pipeline can hand its
    /// next batch over meanwhile.
    pub(super) fn outcomes(
        &mut self,
    ) -> impl Future<Output = Result<RouteOutcomes, ThreadGone>> + Send + 'static {
        let calls = std::mem::take(&mut self.calls);
        async move {
            let mut outcomes = Vec::with_capacity(calls.len());
            for call in calls {
                outcomes.push(match call {
                    Some(submitted) => Some(submitted.outcomes().await?),
                    None => None,
                });
            }
            Ok(outcomes)
        }
    }
}

impl Pipeline {
    /// Turns one batch of raw records into the records to publish, in order.
    pub async fn process(
        &mut self,
        batch: Vec<RawRecord>,
    ) -> Result<Vec<OutputRecord>, ThreadGone> {
        let decoded = decode_batch(&self.settings, batch);
        let mut submitted = self.submit(decoded).await?;
        let outcomes = submitted.outcomes().await?;
        Ok(self.assemble(submitted, outcomes))
    }

    /// Plans a decoded batch on the current route table.
    fn plan(&self, decoded: DecodedBatch) -> SubmittedBatch {
        let DecodedBatch {
            slots,
            events,
            counted,
        } = decoded;
        let events = Arc::new(events);
        let routes: Routes = self.routes.borrow().clone();
        let plan = candidates::plan(&routes, &events);
        SubmittedBatch {
            slots,
            events,
            counted,
            routes,
            plan,
            calls: Vec::new(),
            shadows: None,
        }
    }

    /// Hands a decoded batch to its plugins' threads (waiting for room in their queues)
    /// and starts its shadows beside them.
    pub(super) async fn submit(
        &mut self,
        decoded: DecodedBatch,
    ) -> Result<SubmittedBatch, ThreadGone> {
        let mut batch = self.plan(decoded);
        batch.shadows = Some(candidates::start_shadows(
            &batch.routes,
            &batch.events,
            &batch.plan,
            self.candidates.as_ref(),
        ));
        for (route, indices) in batch.routes.iter().zip(&batch.plan.assigned) {
            batch.calls.push(if indices.is_empty() {
                None
            } else {
                Some(route.plugin.submit(subset(&batch.events, indices)).await?)
            });
        }
        Ok(batch)
    }

    /// Hands a decoded batch to its plugins' threads if every one of them has room in
    /// its queue now (all or none); gives the batch back otherwise. Called with the batch
    /// read ahead while the plugins still run the one before, so their threads go on to
    /// it without waiting. Its shadows start when it is assembled: started now, they
    /// would find the shadows still busy with the batch before and be dropped.
    pub(super) fn try_submit(
        &self,
        decoded: DecodedBatch,
    ) -> Result<SubmittedBatch, Box<DecodedBatch>> {
        let mut batch = self.plan(decoded);
        let routes = Arc::clone(&batch.routes);
        let mut slots = Vec::with_capacity(routes.len());
        for (route, indices) in routes.iter().zip(&batch.plan.assigned) {
            if indices.is_empty() {
                slots.push(None);
                continue;
            }
            match route.plugin.try_reserve() {
                Some(slot) => slots.push(Some(slot)),
                None => {
                    drop(slots);
                    return Err(Box::new(batch.unplanned()));
                }
            }
        }
        let calls = slots
            .into_iter()
            .zip(&batch.plan.assigned)
            .map(|(slot, indices)| slot.map(|slot| slot.submit(subset(&batch.events, indices))))
            .collect();
        batch.calls = calls;
        Ok(batch)
    }

    /// Turns a submitted batch's outcomes into the records to publish, in order: its
    /// dead letters in place, each event's records in route order, checked and stamped;
    /// counts the batch.
    pub(super) fn assemble(
        &mut self,
        batch: SubmittedBatch,
        outcomes: RouteOutcomes,
    ) -> Vec<OutputRecord> {
        let SubmittedBatch {
            slots,
            events,
            counted,
            routes,
            plan,
            calls: _,
            shadows,
        } = batch;
        self.stats.add(&counted);
        self.count_served(&routes, &plan.assigned);
        let mut shadows = shadows.unwrap_or_else(|| {
            candidates::start_shadows(&routes, &events, &plan, self.candidates.as_ref())
        });
        let per_route: Vec<Vec<(usize, Outcome)>> = plan
            .assigned
            .into_iter()
            .zip(outcomes)
            .map(|(indices, outcomes)| {
                indices
                    .into_iter()
                    .zip(outcomes.unwrap_or_default())
                    .collect()
            })
            .collect();
        let mut per_event = self.outcomes_by_event(events.len(), per_route).into_iter();
        let mut topics = self.take_output_topics(&routes);
        let mut output = Vec::with_capacity(slots.len());
        let mut event_index = 0;
        for slot in slots {
            match slot {
                Slot::DeadLetter(record) => output.push(record),
                Slot::Event { timestamp } => {
                    let outcomes = per_event.next().unwrap_or_default();
                    let event = &events[event_index];
                    event_index += 1;
                    if outcomes.is_empty() {
                        self.stats.unrouted += 1;
                    }
                    for (route_index, outcome) in outcomes {
                        let before = output.len();
                        assemble_outcome(
                            &self.settings,
                            &mut self.stats,
                            event,
                            timestamp,
                            &routes[route_index],
                            outcome,
                            Some(&mut topics[route_index]),
                            &mut output,
                            true,
                        );
                        shadows.served(route_index, event_index - 1, &output[before..]);
                    }
                }
            }
        }
        self.output_topics = Some((routes, topics));
        shadows.compare(&self.settings);
        self.stats.records_out += output.len() as u64;
        output
    }

    /// Adds the events each route runs in this batch to its counter (the counters are
    /// looked up again only when the route table changed).
    fn count_served(&mut self, routes: &Routes, assigned: &[Vec<usize>]) {
        let Some(metrics) = &self.candidates else {
            return;
        };
        let current = matches!(&self.served, Some((table, _)) if Arc::ptr_eq(table, routes));
        if !current {
            self.served = Some((routes.clone(), metrics.served_counters(routes)));
        }
        if let Some((_, counters)) = &self.served {
            for (counter, events) in counters.iter().zip(assigned) {
                if !events.is_empty() {
                    counter.fetch_add(events.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }

    /// Per route of `routes`, the topics its plugin has written to: carried over from the
    /// last table for the routes still in it (a plugin version keeps its count across
    /// reloads of other plugins), empty for new ones.
    fn take_output_topics(&mut self, routes: &Routes) -> Vec<OutputTopics> {
        let (table, mut sets) = match self.output_topics.take() {
            Some((table, sets)) if Arc::ptr_eq(&table, routes) => return sets,
            Some(last) => last,
            None => (Arc::new(Vec::new()), Vec::new()),
        };
        routes
            .iter()
            .map(|route| {
                table
                    .iter()
                    .position(|old| Arc::ptr_eq(old, route))
                    .map(|at| std::mem::take(&mut sets[at]))
                    .unwrap_or_default()
            })
            .collect()
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
}

/// Turns one plugin's outcome for one event into records: its output (checked against
/// the route's allowed topics and limits, lineage headers stamped when `settings` asks)
/// or the event's dead letter. Counted in `stats`; a dead letter is logged when `log`.
/// `topics`: the topics the plugin has written to, held to `limits.max_output_topics`
/// (`None`: not held, for a shadow, whose output is compared, never published).
/// `timestamp`: the event's record's, which the records made from it get (as a Flink
/// job's output records get their input's, and Kafka Connect's dead letters theirs).
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble_outcome(
    settings: &PipelineSettings,
    stats: &mut PipelineStats,
    event: &ChangeEvent,
    timestamp: Option<i64>,
    route: &Route,
    outcome: Outcome,
    topics: Option<&mut OutputTopics>,
    output: &mut Vec<OutputRecord>,
    log: bool,
) {
    let plugin = Arc::clone(route.plugin.plugin());
    let (stage, reason, code) = match outcome {
        Outcome::Records(records) => match check_output(route, &records, topics) {
            Ok(()) => {
                for mut record in records {
                    if settings.lineage_headers {
                        push_lineage(&mut record.headers, &plugin, &event.origin);
                    }
                    record.timestamp = timestamp;
                    output.push(record);
                }
                return;
            }
            Err((stage, reason)) => {
                stats.output_violations += 1;
                (stage, reason, None)
            }
        },
        // Found while the host read the plugin's output, before it built the records.
        Outcome::OverLimit(reason) => {
            stats.output_violations += 1;
            ("limit", reason, None)
        }
        Outcome::Rejected(rejection) => {
            stats.rejected += 1;
            ("rejected", rejection.reason, rejection.code)
        }
        Outcome::Trapped(reason) => {
            stats.trapped += 1;
            ("trapped", reason, None)
        }
    };
    if log {
        // The reason is the plugin's text (often quoting the event): made printable and
        // capped, as the plugin's own log lines are, so that it cannot forge log lines.
        tracing::warn!(
            plugin = %plugin.name(),
            topic = %printable(&event.origin.topic),
            partition = event.origin.partition,
            offset = event.origin.offset,
            stage,
            reason = %plugin_message(&reason),
            "event sent to the dead-letter topic"
        );
    }
    let origin = Origin::from(event.origin.clone());
    let letter = DeadLetter {
        key: event.key.clone(),
        value: Some(event.value.clone()),
        headers: sluice_runtime::headers_out(event.headers.clone()),
        origin: &origin,
        timestamp,
    };
    output.push(dead_letter(
        settings,
        stats,
        letter,
        stage,
        &reason,
        code.as_deref(),
        Some(&plugin),
    ));
}

/// The events at `indices` (the batch itself, not a copy, when that is all of them).
pub(crate) fn subset(events: &Arc<Vec<ChangeEvent>>, indices: &[usize]) -> Arc<Vec<ChangeEvent>> {
    if indices.len() == events.len() {
        Arc::clone(events)
    } else {
        Arc::new(indices.iter().map(|&i| events[i].clone()).collect())
    }
}

/// Checks a plugin's output for one event against its allowed topics and its limits.
/// The error is the dead-letter reason.
fn check_output(
    route: &Route,
    records: &[OutputRecord],
    topics: Option<&mut OutputTopics>,
) -> Result<(), (&'static str, String)> {
    let limits = route.plugin.plugin().spec().limits;
    if let Some(reason) = limits.too_many_records(records.len()) {
        return Err(("limit", reason));
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
        let size = PluginLimits::record_size(
            record.key.as_ref().map_or(0, Vec::len),
            record.value.as_ref().map_or(0, Vec::len),
            record
                .headers
                .iter()
                .map(|h| (h.key.len(), h.value.as_ref().map_or(0, Vec::len))),
        );
        if let Some(reason) = limits.record_too_large(size, &record.topic) {
            return Err(("limit", reason));
        }
    }
    // Last, so that a refused event adds no topic: its records are all published, or
    // none is.
    if let Some(topics) = topics {
        let new = |topic: &&str| !topics.contains(topic);
        let mut added: Vec<&str> = records
            .iter()
            .map(|r| r.topic.as_str())
            .filter(new)
            .collect();
        added.sort_unstable();
        added.dedup();
        if let Some(refused) = added.get(topics.room(limits.max_output_topics)) {
            return Err(("limit", limits.too_many_topics(refused)));
        }
        for topic in added {
            topics.insert(topic);
        }
    }
    Ok(())
}

/// The distinct topics one route's plugin has written to, so that it writes to at most
/// `limits.max_output_topics` of them (see [`PluginLimits::max_output_topics`]).
#[derive(Debug, Default)]
pub(crate) struct OutputTopics {
    /// The first few, looked up by comparing: most plugins write to one topic or a
    /// handful, and a comparison of two short names costs less than hashing one.
    few: Vec<Box<str>>,
    /// The rest.
    many: HashSet<Box<str>>,
}

impl OutputTopics {
    /// How many topics are compared before [`OutputTopics::many`] is hashed.
    const FEW: usize = 8;

    fn contains(&self, topic: &str) -> bool {
        self.few.iter().any(|known| **known == *topic)
            || (!self.many.is_empty() && self.many.contains(topic))
    }

    /// How many new topics fit under `max`.
    fn room(&self, max: u32) -> usize {
        (max as usize).saturating_sub(self.few.len() + self.many.len())
    }

    fn insert(&mut self, topic: &str) {
        if self.few.len() < Self::FEW {
            self.few.push(topic.into());
        } else {
            self.many.insert(topic.into());
        }
    }
}

/// The place of one input record in a batch's output.
enum Slot {
    /// A decoded event (the next one in the batch's event list), and its record's
    /// timestamp.
    Event { timestamp: Option<i64> },
    /// A malformed record, already turned into its dead letter.
    DeadLetter(OutputRecord),
}

fn push_lineage(headers: &mut Vec<Header>, plugin: &LoadedPlugin, origin: &wit::Origin) {
    // Six headers: grown once, not twice.
    headers.reserve(6);
    headers.push(header(headers::PLUGIN, plugin.name()));
    headers.push(header(headers::PLUGIN_VERSION, plugin.version()));
    headers.push(header(headers::PLUGIN_SHA256, plugin.sha256()));
    push_source(headers, &origin.topic, origin.partition, origin.offset);
}
