//! The positions of a batch: per topic-partition, the last record (what to commit) and the
//! first (where to read again after an aborted batch).

use sluice_core::{Origin, RawRecord};

/// The last record's origin of each topic-partition in `batch`: what to commit.
pub(super) fn last_per_partition(batch: &[RawRecord]) -> Vec<Origin> {
    per_partition(batch, |known, new| known < new)
}

/// The first record's origin of each topic-partition in `batch`: where to rewind to.
pub(super) fn first_per_partition(batch: &[RawRecord]) -> Vec<Origin> {
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
