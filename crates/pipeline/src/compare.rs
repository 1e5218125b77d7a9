//! What two versions of a plugin produce for the same events, compared event by event:
//! `sluice plugin diff`, and the comparison a shadow version will be held to.
//!
//! Records are grouped by the event they came from, which the pipeline writes on every
//! output and dead letter (`sluice.source.topic`, `.partition`, `.offset`), and compared
//! as topic, key, value and headers, without the headers that name the source event and
//! the plugin build (they differ between two versions by design). Per event:
//!
//! - **equal**: both versions produced the same records in the same order, or nothing;
//! - **rejected by one only**: exactly one version sent the event to the dead-letter topic
//!   (rejected, trapped, or broke its outputs or limits);
//! - **differing**: anything else (another topic, key, value, header, count or order).
//!
//! Events that neither version produced anything for leave no record to group, so the
//! caller says how many events were compared and the rest count as equal.

use std::collections::HashMap;

use sluice_core::OutputRecord;

use crate::pipeline::headers;

/// The event an output record came from, as its lineage headers name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventOrigin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl std::fmt::Display for EventOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} partition {} offset {}",
            self.topic, self.partition, self.offset
        )
    }
}

/// How the two versions' records for one event differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DifferenceKind {
    /// Both produced records (or dead letters), not the same ones.
    Differing,
    /// Only the old version dead-lettered the event.
    RejectedByOldOnly,
    /// Only the new version dead-lettered the event.
    RejectedByNewOnly,
}

impl std::fmt::Display for DifferenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DifferenceKind::Differing => "differs",
            DifferenceKind::RejectedByOldOnly => "dead-lettered by the old version only",
            DifferenceKind::RejectedByNewOnly => "dead-lettered by the new version only",
        })
    }
}

/// One event whose records differ: what each version produced for it, without the
/// lineage headers.
#[derive(Debug, Clone)]
pub struct Difference {
    /// `None`: records that carried no lineage headers (the pipeline writes them on
    /// every record, so only records from elsewhere lack them).
    pub event: Option<EventOrigin>,
    pub kind: DifferenceKind,
    pub old: Vec<OutputRecord>,
    pub new: Vec<OutputRecord>,
}

/// The counts of a comparison, and the first differences.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Events both versions were given.
    pub events: u64,
    pub equal: u64,
    pub differing: u64,
    pub rejected_by_one_only: u64,
    /// The first differences, in the order the events were read, at most as many as asked.
    pub examples: Vec<Difference>,
}

impl Comparison {
    /// Whether any event differs.
    pub fn any_difference(&self) -> bool {
        self.differing + self.rejected_by_one_only > 0
    }
}

/// Compares what two versions produced for the same `events` input events, keeping the
/// first `max_examples` differences.
pub fn compare(
    events: u64,
    old: Vec<OutputRecord>,
    new: Vec<OutputRecord>,
    dead_letter_topic: &str,
    max_examples: usize,
) -> Comparison {
    // Groups in the order events first appear (old's records first, then new's), so
    // examples come in input order for a single-partition input.
    let mut order: Vec<Option<EventOrigin>> = Vec::new();
    let mut groups: HashMap<Option<EventOrigin>, (Vec<OutputRecord>, Vec<OutputRecord>)> =
        HashMap::new();
    for (side, records) in [(0, old), (1, new)] {
        for record in records {
            let event = event_of(&record);
            let group = groups.entry(event.clone()).or_insert_with(|| {
                order.push(event);
                Default::default()
            });
            if side == 0 {
                group.0.push(record);
            } else {
                group.1.push(record);
            }
        }
    }
    let mut comparison = Comparison::default();
    for event in order {
        let (old, new) = groups.remove(&event).unwrap_or_default();
        comparison.add(event, old, new, dead_letter_topic, max_examples);
    }
    // Events that produced nothing from either version left no group: equal. Records
    // without lineage are one group, which may stand for more than one event: never let
    // the counts go below zero.
    comparison.events = events;
    comparison.equal =
        events.saturating_sub(comparison.differing + comparison.rejected_by_one_only);
    comparison
}

impl Comparison {
    /// Compares what the two versions produced for one event (lineage and build headers,
    /// and the timestamps the host gives records, are left out), keeping it as an example
    /// while fewer than `max_examples` are kept.
    pub fn add(
        &mut self,
        event: Option<EventOrigin>,
        mut old: Vec<OutputRecord>,
        mut new: Vec<OutputRecord>,
        dead_letter_topic: &str,
        max_examples: usize,
    ) {
        self.events += 1;
        for record in old.iter_mut().chain(new.iter_mut()) {
            strip_lineage(record);
            record.timestamp = None;
        }
        if old == new {
            self.equal += 1;
            return;
        }
        let dead_lettered =
            |records: &[OutputRecord]| records.iter().any(|r| r.topic == dead_letter_topic);
        let kind = match (dead_lettered(&old), dead_lettered(&new)) {
            (true, false) => DifferenceKind::RejectedByOldOnly,
            (false, true) => DifferenceKind::RejectedByNewOnly,
            _ => DifferenceKind::Differing,
        };
        if kind == DifferenceKind::Differing {
            self.differing += 1;
        } else {
            self.rejected_by_one_only += 1;
        }
        if self.examples.len() < max_examples {
            self.examples.push(Difference {
                event,
                kind,
                old,
                new,
            });
        }
    }
}

/// The event a record came from, as its lineage headers name it.
fn event_of(record: &OutputRecord) -> Option<EventOrigin> {
    let text = |key: &str| {
        record
            .headers
            .iter()
            .rev()
            .find(|header| header.key == key)
            .and_then(|header| header.value.as_deref())
            .and_then(|value| std::str::from_utf8(value).ok())
    };
    Some(EventOrigin {
        topic: text(headers::SOURCE_TOPIC)?.to_owned(),
        partition: text(headers::SOURCE_PARTITION)?.parse().ok()?,
        offset: text(headers::SOURCE_OFFSET)?.parse().ok()?,
    })
}

/// Removes the headers that name the source event or the plugin build: they differ
/// between two versions by design.
fn strip_lineage(record: &mut OutputRecord) {
    record.headers.retain(|header| {
        !matches!(
            header.key.as_ref(),
            headers::PLUGIN
                | headers::PLUGIN_VERSION
                | headers::PLUGIN_SHA256
                | headers::SOURCE_TOPIC
                | headers::SOURCE_PARTITION
                | headers::SOURCE_OFFSET
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::Header;

    const DLQ: &str = "sluice.dlq";

    fn record(topic: &str, value: &str, offset: i64, plugin_version: &str) -> OutputRecord {
        OutputRecord {
            timestamp: None,
            topic: topic.to_owned(),
            key: Some(b"k".to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: vec![
                Header::text("team", "a"),
                Header::text(headers::PLUGIN, "p"),
                Header::text(headers::PLUGIN_VERSION, plugin_version),
                Header::text(headers::PLUGIN_SHA256, plugin_version),
                Header::text(headers::SOURCE_TOPIC, "in"),
                Header::text(headers::SOURCE_PARTITION, "0"),
                Header::text(headers::SOURCE_OFFSET, &offset.to_string()),
            ],
        }
    }

    #[test]
    fn the_same_records_from_two_builds_are_equal() {
        // The serving version's records carry their input's timestamp; a shadow's do not
        // (they are never published): the host's, not the plugin's, so not compared.
        let stamped = |mut record: OutputRecord| {
            record.timestamp = Some(1_000);
            record
        };
        let old = vec![
            stamped(record("out", "1", 0, "v1")),
            stamped(record("out", "2", 1, "v1")),
        ];
        let new = vec![record("out", "1", 0, "v2"), record("out", "2", 1, "v2")];
        let comparison = compare(3, old, new, DLQ, 10);
        assert_eq!(
            (
                comparison.equal,
                comparison.differing,
                comparison.rejected_by_one_only
            ),
            (3, 0, 0)
        );
        assert!(!comparison.any_difference());
    }

    #[test]
    fn counts_each_kind_of_difference_per_event() {
        let old = vec![
            record("out", "1", 0, "v1"),
            record("out", "2", 1, "v1"),
            record("out", "3", 2, "v1"),
            record(DLQ, "4", 3, "v1"),
            record("out", "5a", 4, "v1"),
            record("out", "5b", 4, "v1"),
        ];
        let new = vec![
            record("out", "1", 0, "v2"),
            record("out", "two", 1, "v2"),
            record(DLQ, "3", 2, "v2"),
            record("out", "4", 3, "v2"),
            // The same records for event 4, in another order.
            record("out", "5b", 4, "v2"),
            record("out", "5a", 4, "v2"),
            // Event 5 was filtered by the old version.
            record("out", "6", 5, "v2"),
        ];
        let comparison = compare(7, old, new, DLQ, 10);
        assert_eq!(comparison.differing, 3, "value, order and a new record");
        assert_eq!(comparison.rejected_by_one_only, 2);
        assert_eq!(
            comparison.equal, 2,
            "event 0 and event 6 (nothing from both)"
        );
        let kinds: Vec<(i64, DifferenceKind)> = comparison
            .examples
            .iter()
            .map(|d| (d.event.as_ref().expect("lineage").offset, d.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                (1, DifferenceKind::Differing),
                (2, DifferenceKind::RejectedByNewOnly),
                (3, DifferenceKind::RejectedByOldOnly),
                (4, DifferenceKind::Differing),
                (5, DifferenceKind::Differing),
            ]
        );
        let first = &comparison.examples[0];
        assert_eq!(first.old[0].value.as_deref(), Some(&b"2"[..]));
        assert_eq!(
            first.old[0].headers,
            [Header::text("team", "a")],
            "lineage and build headers are not part of what is compared or shown"
        );
    }

    #[test]
    fn keeps_only_the_first_examples_but_counts_them_all() {
        let old: Vec<_> = (0..5).map(|i| record("out", "a", i, "v1")).collect();
        let new: Vec<_> = (0..5).map(|i| record("out", "b", i, "v2")).collect();
        let comparison = compare(5, old, new, DLQ, 2);
        assert_eq!(comparison.differing, 5);
        assert_eq!(comparison.examples.len(), 2);
        assert_eq!(comparison.equal, 0);
    }

    #[test]
    fn a_different_header_other_than_lineage_is_a_difference() {
        let old = vec![record("out", "1", 0, "v1")];
        let mut changed = record("out", "1", 0, "v2");
        changed.headers[0] = Header::text("team", "b");
        let comparison = compare(1, old, vec![changed], DLQ, 10);
        assert_eq!(comparison.differing, 1);
    }
}
