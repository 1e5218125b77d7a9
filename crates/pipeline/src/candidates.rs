//! Candidate versions of a plugin, run beside the serving version in its lane
//! (manifest `mode`, [`crate::manifest::Role`]):
//!
//! - a **shadow** runs on the same events as the version it shadows, within its own
//!   limits, and what it produces is compared event by event with what the serving
//!   version produced ([`crate::compare`]); it is never published. It runs off the hot
//!   path: it starts beside the serving plugins and is compared when it finishes, after
//!   the batch has moved on, so a slow or trapping shadow never delays or changes the
//!   serving output. While it is still busy with one batch, the lane's next batches pass
//!   it by (counted as `dropped`).
//! - a **canary** serves a share of the serving version's events, chosen by a stable
//!   hash of the record key ([`canary_takes`]): a key is always served by the same
//!   version while the share stays, so per-key order holds; the other events stay on the
//!   serving version.
//!
//! A candidate runs only on events its own manifest's `inputs` take (it may read no
//! more than any plugin of its team), and one whose serving plugin is not in the table
//! runs nowhere. The counts (events
//! per version, shadow comparisons with the first differences) are a telemetry
//! [`Report`]: Prometheus metrics, `/plugins` and the status page.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sluice_core::OutputRecord;
use sluice_core::json_lines::record_to_json_line;
use sluice_core::record::key_hash;
use sluice_core::status::{ShadowSummary, Status};
use sluice_core::telemetry::{Report, escape, lock};
use sluice_core::topics::any_matches;
use sluice_runtime::{ChangeEvent, Outcome, ThreadGone};

use crate::compare::{Comparison, EventOrigin};
use crate::manifest::Role;
use crate::pipeline::{PipelineSettings, PipelineStats, Route, assemble_outcome, subset};

/// Whether a canary with a share of `per_mille`/1000 serves the event with `key`: a
/// stable hash of the key's bytes ([`key_hash`]), so a key never flips between versions.
pub fn canary_takes(key: Option<&[u8]>, per_mille: u32) -> bool {
    key_hash(key) % 1000 < u64::from(per_mille)
}

/// Which route runs which events of a batch.
#[derive(Debug, Default)]
pub struct Plan {
    /// Per route, the indices (ascending) of the events it runs on the hot path: a
    /// serving route its inputs less its canary's share, a canary that share, a shadow
    /// none (it runs beside, see [`start_shadows`]).
    pub assigned: Vec<Vec<usize>>,
    /// (shadow route, serving route) pairs.
    pub shadows: Vec<(usize, usize)>,
}

/// Plans a batch over `routes` (see [`Plan`]).
pub fn plan(routes: &[Arc<Route>], events: &[ChangeEvent]) -> Plan {
    let serving: HashMap<&str, usize> = routes
        .iter()
        .enumerate()
        .filter(|(_, route)| route.role == Role::Serving)
        .map(|(index, route)| (route.name(), index))
        .collect();
    // One canary per serving plugin: the first in the table.
    let mut canaries: HashMap<usize, (usize, u32)> = HashMap::new();
    let mut shadows = Vec::new();
    for (index, route) in routes.iter().enumerate() {
        match &route.role {
            Role::Serving => {}
            Role::Canary { of, per_mille } => {
                if let Some(&target) = serving.get(of.as_str()) {
                    canaries.entry(target).or_insert((index, *per_mille));
                }
            }
            Role::Shadow { of } => {
                if let Some(&target) = serving.get(of.as_str()) {
                    shadows.push((index, target));
                }
            }
        }
    }
    let mut assigned = vec![Vec::new(); routes.len()];
    for (index, route) in routes.iter().enumerate() {
        if route.role != Role::Serving {
            continue;
        }
        let canary = canaries.get(&index);
        for (event_index, event) in events.iter().enumerate() {
            if !any_matches(&route.inputs, &event.origin.topic) {
                continue;
            }
            match canary {
                // A candidate sees only what its own manifest's inputs allow.
                Some(&(canary, per_mille))
                    if canary_takes(event.key.as_deref(), per_mille)
                        && any_matches(&routes[canary].inputs, &event.origin.topic) =>
                {
                    assigned[canary].push(event_index);
                }
                _ => assigned[index].push(event_index),
            }
        }
    }
    Plan { assigned, shadows }
}

/// The shadows of one batch, running beside the serving plugins.
#[derive(Default)]
pub struct ShadowRuns {
    runs: Vec<ShadowRun>,
}

struct ShadowRun {
    shadow: Arc<Route>,
    serving: usize,
    /// The batch's events the shadow runs on (the serving version's, ascending).
    indices: Vec<usize>,
    /// Per event of `indices`, what the serving version produced.
    served: Vec<Vec<OutputRecord>>,
    events: Arc<Vec<ChangeEvent>>,
    job: tokio::task::JoinHandle<Result<Vec<Outcome>, ThreadGone>>,
    metrics: Arc<CandidateMetrics>,
}

/// Starts every shadow of the batch that is not still busy with an earlier one (those
/// are counted as dropped). Without telemetry there is no one to tell, so no shadow runs.
pub fn start_shadows(
    routes: &[Arc<Route>],
    events: &Arc<Vec<ChangeEvent>>,
    plan: &Plan,
    metrics: Option<&Arc<CandidateMetrics>>,
) -> ShadowRuns {
    let mut runs = ShadowRuns::default();
    let Some(metrics) = metrics else {
        return runs;
    };
    for &(shadow, serving) in &plan.shadows {
        // A candidate sees only what its own manifest's inputs allow.
        let indices: Vec<usize> = plan.assigned[serving]
            .iter()
            .copied()
            .filter(|&index| any_matches(&routes[shadow].inputs, &events[index].origin.topic))
            .collect();
        if indices.is_empty() {
            continue;
        }
        let shadow = Arc::clone(&routes[shadow]);
        if shadow.shadow_busy.swap(true, Ordering::AcqRel) {
            metrics.dropped(&shadow, indices.len() as u64);
            continue;
        }
        let input = subset(events, &indices);
        let runner = Arc::clone(&shadow);
        let job = tokio::spawn(async move { runner.plugin.transform(input).await });
        runs.runs.push(ShadowRun {
            served: vec![Vec::new(); indices.len()],
            shadow,
            serving,
            indices,
            events: Arc::clone(events),
            job,
            metrics: Arc::clone(metrics),
        });
    }
    runs
}

impl ShadowRuns {
    /// Books what route `route` produced for event `event` (no-op unless a shadow
    /// compares with that route).
    pub fn served(&mut self, route: usize, event: usize, records: &[OutputRecord]) {
        for run in &mut self.runs {
            if run.serving == route
                && let Ok(position) = run.indices.binary_search(&event)
            {
                run.served[position].extend_from_slice(records);
            }
        }
    }

    /// Compares each shadow with the serving output once it finishes, in a task of its
    /// own: the batch does not wait.
    pub fn compare(mut self, settings: &PipelineSettings) {
        let settings = PipelineSettings {
            lineage_headers: false,
            ..settings.clone()
        };
        for run in std::mem::take(&mut self.runs) {
            let settings = settings.clone();
            tokio::spawn(async move {
                let shadow = Arc::clone(&run.shadow);
                match run.job.await {
                    Ok(Ok(outcomes)) => {
                        let mut stats = PipelineStats::default();
                        let mut comparison = Comparison::default();
                        let pairs = run.indices.iter().zip(run.served).zip(outcomes);
                        for ((&index, served), outcome) in pairs {
                            let event = &run.events[index];
                            let mut produced = Vec::new();
                            assemble_outcome(
                                &settings,
                                &mut stats,
                                event,
                                None,
                                &shadow,
                                outcome,
                                None,
                                &mut produced,
                                false,
                            );
                            let origin = EventOrigin {
                                topic: event.origin.topic.clone(),
                                partition: event.origin.partition,
                                offset: event.origin.offset,
                            };
                            comparison.add(
                                Some(origin),
                                served,
                                produced,
                                &settings.dead_letter_topic,
                                settings.shadow_examples,
                            );
                        }
                        run.metrics
                            .add_comparison(&shadow, comparison, settings.shadow_examples);
                    }
                    // The shadow's thread is gone: nothing to compare, the batch is dropped.
                    _ => run.metrics.dropped(&shadow, run.indices.len() as u64),
                }
                shadow.shadow_busy.store(false, Ordering::Release);
            });
        }
    }
}

impl Drop for ShadowRuns {
    /// A batch that failed before its comparison: its shadows are free for the next one
    /// (their calls finish on their own threads).
    fn drop(&mut self) {
        for run in &self.runs {
            run.shadow.shadow_busy.store(false, Ordering::Release);
        }
    }
}

/// A plugin version in one mode: `(plugin, version, mode)`.
type VersionMode = (String, String, &'static str);

/// One shadow version's comparison so far.
#[derive(Debug, Default)]
struct ShadowTally {
    of: String,
    version: String,
    comparison: Comparison,
    dropped: u64,
}

/// Events per plugin version and the shadows' comparisons (see the module docs).
#[derive(Debug, Default)]
pub struct CandidateMetrics {
    /// Events run on the hot path per (plugin, version, mode).
    served: Mutex<BTreeMap<VersionMode, Arc<AtomicU64>>>,
    /// Per shadow plugin name; a new version starts over.
    shadows: Mutex<BTreeMap<String, ShadowTally>>,
}

impl CandidateMetrics {
    /// The counters of events run per route of `routes` (by plugin, version and mode),
    /// for a pipeline to add to per batch without a lock.
    pub fn served_counters(&self, routes: &[Arc<Route>]) -> Vec<Arc<AtomicU64>> {
        let mut served = lock(&self.served);
        routes
            .iter()
            .map(|route| {
                let plugin = route.plugin.plugin();
                served
                    .entry((
                        plugin.name().to_owned(),
                        plugin.version().to_owned(),
                        route.role.mode(),
                    ))
                    .or_default()
                    .clone()
            })
            .collect()
    }

    fn tally<'a>(
        shadows: &'a mut BTreeMap<String, ShadowTally>,
        shadow: &Route,
    ) -> &'a mut ShadowTally {
        let plugin = shadow.plugin.plugin();
        let tally = shadows.entry(plugin.name().to_owned()).or_default();
        if tally.version != plugin.version() {
            *tally = ShadowTally {
                of: shadow.role.candidate_of().unwrap_or_default().to_owned(),
                version: plugin.version().to_owned(),
                ..ShadowTally::default()
            };
        }
        tally
    }

    fn dropped(&self, shadow: &Route, events: u64) {
        Self::tally(&mut lock(&self.shadows), shadow).dropped += events;
    }

    fn add_comparison(&self, shadow: &Route, batch: Comparison, max_examples: usize) {
        let mut shadows = lock(&self.shadows);
        let tally = &mut Self::tally(&mut shadows, shadow).comparison;
        tally.events += batch.events;
        tally.equal += batch.equal;
        tally.differing += batch.differing;
        tally.rejected_by_one_only += batch.rejected_by_one_only;
        let room = max_examples.saturating_sub(tally.examples.len());
        tally
            .examples
            .extend(batch.examples.into_iter().take(room).map(|mut example| {
                for record in example.old.iter_mut().chain(example.new.iter_mut()) {
                    bound_example(record);
                }
                example
            }));
    }
}

impl Report for CandidateMetrics {
    fn render(&self, out: &mut String) {
        out.push_str("# HELP sluice_plugin_events_total Events each plugin version ran on, by mode (serve or canary).\n# TYPE sluice_plugin_events_total counter\n");
        for ((plugin, version, mode), events) in lock(&self.served).iter() {
            let events = events.load(Ordering::Relaxed);
            out.push_str(&format!(
                "sluice_plugin_events_total{{plugin=\"{}\",version=\"{}\",mode=\"{mode}\"}} {events}\n",
                escape(plugin),
                escape(version)
            ));
        }
        out.push_str("# HELP sluice_shadow_events_total Events a shadow version was compared on with the version it shadows, by result (dropped: passed by while the shadow was busy).\n# TYPE sluice_shadow_events_total counter\n");
        for (plugin, tally) in lock(&self.shadows).iter() {
            let comparison = &tally.comparison;
            for (result, count) in [
                ("equal", comparison.equal),
                ("differing", comparison.differing),
                ("rejected_by_one_only", comparison.rejected_by_one_only),
                ("dropped", tally.dropped),
            ] {
                out.push_str(&format!(
                    "sluice_shadow_events_total{{plugin=\"{}\",version=\"{}\",of=\"{}\",result=\"{result}\"}} {count}\n",
                    escape(plugin),
                    escape(&tally.version),
                    escape(&tally.of)
                ));
            }
        }
    }

    fn status(&self, status: &mut Status) {
        for (plugin, tally) in lock(&self.shadows).iter() {
            let comparison = &tally.comparison;
            let examples = comparison
                .examples
                .iter()
                .map(|difference| {
                    let records = |records: &[OutputRecord]| -> Vec<serde_json::Value> {
                        records
                            .iter()
                            .map(|record| {
                                serde_json::from_str(&record_to_json_line(record))
                                    .unwrap_or(serde_json::Value::Null)
                            })
                            .collect()
                    };
                    serde_json::json!({
                        "event": difference.event.as_ref().map(|event| serde_json::json!({
                            "topic": event.topic,
                            "partition": event.partition,
                            "offset": event.offset,
                        })),
                        "kind": difference.kind.to_string(),
                        "serving": records(&difference.old),
                        "shadow": records(&difference.new),
                    })
                })
                .collect();
            status.shadows.insert(
                plugin.clone(),
                ShadowSummary {
                    of: tally.of.clone(),
                    version: tally.version.clone(),
                    compared: comparison.events,
                    equal: comparison.equal,
                    differing: comparison.differing,
                    rejected_by_one_only: comparison.rejected_by_one_only,
                    dropped: tally.dropped,
                    examples,
                },
            );
        }
    }
}

/// The most bytes of a key, value or header value an example keeps: examples are kept
/// for as long as the shadow runs and shown on `/plugins`, and a record may be up to
/// `limits.max_record_bytes` (megabytes); a difference shows in far less.
const MAX_EXAMPLE_BYTES: usize = 4096;

/// Cuts `record`'s key, value and header values to [`MAX_EXAMPLE_BYTES`], each marked
/// with its full length when cut.
fn bound_example(record: &mut OutputRecord) {
    let cut = |bytes: &mut Vec<u8>| {
        if bytes.len() > MAX_EXAMPLE_BYTES {
            let total = bytes.len();
            bytes.truncate(MAX_EXAMPLE_BYTES);
            bytes.extend_from_slice(format!("... [truncated, {total} bytes in all]").as_bytes());
        }
    };
    record.key.iter_mut().for_each(cut);
    record.value.iter_mut().for_each(cut);
    for header in &mut record.headers {
        header.value.iter_mut().for_each(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canary_takes_about_its_share_and_always_the_same_keys() {
        let keys: Vec<Vec<u8>> = (0..10_000)
            .map(|id| format!("{{\"id\":{id}}}").into_bytes())
            .collect();
        let taken = |per_mille| {
            keys.iter()
                .filter(|key| canary_takes(Some(key), per_mille))
                .count()
        };
        for per_mille in [10, 100, 250, 500] {
            let share = taken(per_mille) as f64 / keys.len() as f64;
            let wanted = f64::from(per_mille) / 1000.0;
            assert!(
                (share - wanted).abs() < 0.02,
                "{per_mille}‰ took {share} of sequential keys"
            );
        }
        assert_eq!(taken(1000), keys.len());
        // A key taken at a share stays taken at any larger share.
        for key in &keys {
            if canary_takes(Some(key), 100) {
                assert!(canary_takes(Some(key), 250));
            }
        }
        assert_eq!(canary_takes(None, 300), canary_takes(Some(b""), 300));
    }

    #[test]
    fn an_example_keeps_a_bounded_prefix_of_each_large_field() {
        let mut record = OutputRecord {
            timestamp: None,
            topic: "out".into(),
            key: Some(b"k".to_vec()),
            value: Some(vec![b'x'; 10 * MAX_EXAMPLE_BYTES]),
            headers: vec![sluice_core::Header {
                key: "h".into(),
                value: Some(vec![b'y'; MAX_EXAMPLE_BYTES + 1]),
            }],
        };
        bound_example(&mut record);
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
        let value = String::from_utf8(record.value.expect("value")).expect("text");
        assert!(
            value.ends_with("... [truncated, 40960 bytes in all]"),
            "{}",
            &value[4000..]
        );
        assert!(value.len() < MAX_EXAMPLE_BYTES + 64);
        let header = record.headers[0].value.as_ref().expect("header");
        assert!(header.len() < MAX_EXAMPLE_BYTES + 64);
    }
}
