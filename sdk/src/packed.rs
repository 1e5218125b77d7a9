//! The guest side of `wit/packed.wit`: the batch buffer read into the WIT event records
//! plugins see, and their outcomes written into one buffer. The host's side is
//! `crates/runtime/src/packed.rs`; `tests/packed.rs` runs both against each other.

use crate::bindings::sluice::transform::types as wit;

const NONE: u32 = u32::MAX;
const EVENT_WORDS: usize = 49;

/// The events of a packed batch, each read from the buffer when the iterator reaches it
/// (so one event's strings and bytes are in memory at a time, not the whole batch's a
/// second time). The host writes well-formed batches; a malformed one panics (a trap of
/// the batch, with the reason in the host's log).
pub(crate) fn read_batch(batch: &[u8]) -> impl ExactSizeIterator<Item = wit::ChangeEvent> + '_ {
    let words = Words(batch);
    assert_eq!(words.word(0), 1, "packed batch format version");
    let count = words.word(1) as usize;
    let stride = words.word(2) as usize;
    assert!(
        stride >= EVENT_WORDS,
        "packed batch of {stride} words per event"
    );
    let headers_at = 4 + count * stride;
    (0..count).map(move |index| {
        // The event's words, read once: one bounds check instead of four per word.
        let base = 4 + index * stride;
        let slots: [u32; EVENT_WORDS] = words.event(base);
        let w = |word: usize| slots[word];
        let text = |word: usize| words.text(w(word), w(word + 1));
        let bytes = |word: usize| words.bytes(w(word), w(word + 1));
        let span = |word: usize| {
            (w(word) != NONE).then(|| wit::Span {
                start: w(word),
                len: w(word + 1),
            })
        };
        let s64 = |word: usize| (u64::from(w(word + 1)) << 32 | u64::from(w(word))) as i64;
        let optional_s64 = |word: usize| (w(word) != 0).then(|| s64(word + 1));
        let header_count = w(43) as usize;
        let headers = (0..header_count)
            .map(|h| {
                let at = headers_at + (w(42) as usize + h) * 4;
                wit::Header {
                    key: words
                        .text(words.word(at), words.word(at + 1))
                        .unwrap_or_default(),
                    value: words.bytes(words.word(at + 2), words.word(at + 3)),
                }
            })
            .collect();
        wit::ChangeEvent {
            op: OPERATIONS[w(0) as usize],
            value: bytes(1).unwrap_or_default(),
            key: bytes(3),
            before: span(5),
            after: span(7),
            value_schema: span(9),
            source: wit::SourceInfo {
                connector: text(11).unwrap_or_default(),
                name: text(13).unwrap_or_default(),
                db: text(15).unwrap_or_default(),
                schema: text(17),
                table: text(19).unwrap_or_default(),
                change_lsn: text(21),
                commit_lsn: text(23),
                event_serial_no: optional_s64(25),
                snapshot: SNAPSHOTS[w(28) as usize],
                ts_ms: optional_s64(29),
            },
            ts_ms: optional_s64(32),
            transaction: (w(35) != 0).then(|| wit::TransactionInfo {
                id: text(36).unwrap_or_default(),
                total_order: s64(38),
                data_collection_order: s64(40),
            }),
            headers,
            origin: wit::Origin {
                topic: text(44).unwrap_or_default(),
                partition: w(46) as i32,
                offset: s64(47),
            },
        }
    })
}

const OPERATIONS: [wit::Operation; 6] = [
    wit::Operation::Create,
    wit::Operation::Update,
    wit::Operation::Delete,
    wit::Operation::Read,
    wit::Operation::Truncate,
    wit::Operation::Message,
];

const SNAPSHOTS: [wit::SnapshotMarker; 7] = [
    wit::SnapshotMarker::None,
    wit::SnapshotMarker::InProgress,
    wit::SnapshotMarker::First,
    wit::SnapshotMarker::FirstInDataCollection,
    wit::SnapshotMarker::LastInDataCollection,
    wit::SnapshotMarker::Last,
    wit::SnapshotMarker::Incremental,
];

/// A packed batch, read by words and by (offset, length).
struct Words<'a>(&'a [u8]);

impl Words<'_> {
    fn word(&self, index: usize) -> u32 {
        let at = index * 4;
        u32::from_le_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]])
    }

    /// The [`EVENT_WORDS`] words of the event starting at word `base`.
    fn event(&self, base: usize) -> [u32; EVENT_WORDS] {
        let bytes = &self.0[base * 4..(base + EVENT_WORDS) * 4];
        let mut slots = [0u32; EVENT_WORDS];
        for (slot, word) in slots.iter_mut().zip(bytes.chunks_exact(4)) {
            *slot = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        }
        slots
    }

    fn bytes(&self, offset: u32, len: u32) -> Option<Vec<u8>> {
        (offset != NONE).then(|| self.0[offset as usize..offset as usize + len as usize].to_vec())
    }

    fn text(&self, offset: u32, len: u32) -> Option<String> {
        (offset != NONE).then(|| {
            let bytes = &self.0[offset as usize..offset as usize + len as usize];
            // The host writes UTF-8 (its strings are Rust strings): checked, not repaired,
            // on the way; `from_utf8_lossy` walks the bytes chunk by chunk even then.
            match std::str::from_utf8(bytes) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(bytes).into_owned(),
            }
        })
    }
}

/// The outcome buffer of `wit/packed.wit`, written one outcome at a time.
pub(crate) struct OutcomeWriter(Vec<u8>);

impl OutcomeWriter {
    /// A writer for the outcomes of `events` events read from a batch of `batch_bytes`.
    /// Outcomes are usually about as large as their events (a mapping keeps most of a
    /// row, a mirror all of it), so the buffer starts at the batch's size: grown from a
    /// small guess by doubling, it copied its contents again at each step.
    pub(crate) fn new(events: usize, batch_bytes: usize) -> Self {
        let mut out = Vec::with_capacity(8 + (events * 64).max(batch_bytes));
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(events as u32).to_le_bytes());
        Self(out)
    }

    fn word(&mut self, word: u32) {
        self.0.extend_from_slice(&word.to_le_bytes());
    }

    fn bytes(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(bytes) => {
                self.word(bytes.len() as u32);
                self.0.extend_from_slice(bytes);
            }
            None => self.word(NONE),
        }
    }

    pub(crate) fn push(&mut self, outcome: wit::EventOutcome) {
        match outcome {
            wit::EventOutcome::Records(records) => {
                self.word(0);
                self.word(records.len() as u32);
                for record in &records {
                    self.bytes(Some(record.topic.as_bytes()));
                    self.bytes(record.key.as_deref());
                    self.bytes(record.value.as_deref());
                    self.word(record.headers.len() as u32);
                    for header in &record.headers {
                        self.bytes(Some(header.key.as_bytes()));
                        self.bytes(header.value.as_deref());
                    }
                }
            }
            wit::EventOutcome::Rejected(rejection) => {
                self.word(1);
                self.bytes(Some(rejection.reason.as_bytes()));
                self.bytes(rejection.code.as_deref().map(str::as_bytes));
            }
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}
