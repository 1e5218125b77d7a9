//! PostgreSQL capture offsets: Debezium's PostgreSQL offset (`lsn`, `lsn_commit`,
//! `lsn_proc`, `txId`, `ts_usec`, or the snapshot markers), and the resume rule that
//! drops what a restart receives again.
//!
//! `lsn` is the position reported to the server as flushed (`confirmed_flush_lsn`): the
//! end of the last transaction published whole. A transaction published in parts (larger
//! than a batch) adds `lsn_commit` (its commit LSN) and `lsn_proc` (its last published
//! change): the server sends it again after a restart, and the changes up to `lsn_proc`
//! are dropped.

use serde::Deserialize;

use crate::OffsetValue;

/// A PostgreSQL log position (`pg_lsn`), printed `X/Y` by PostgreSQL and as a number by
/// Debezium.
pub type Lsn = u64;

/// `X/Y`, as PostgreSQL prints an LSN.
pub fn lsn_text(lsn: Lsn) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// Parses `X/Y`.
pub fn parse_lsn(text: &str) -> Option<Lsn> {
    let (high, low) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

/// The stored progress of one database's capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgOffset {
    /// A snapshot as of the slot's consistent point `lsn`; `completed` once every table
    /// was read.
    Snapshot {
        lsn: Lsn,
        tx_id: i64,
        completed: bool,
    },
    /// Streaming.
    Stream(StreamPosition),
}

/// Where streaming stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamPosition {
    /// Every transaction that ended at or before this LSN is published (the flush
    /// position reported to the server).
    pub lsn: Lsn,
    /// A transaction published in part: its commit LSN and its last published change.
    pub partial: Option<Partial>,
    /// The last published transaction's id and commit time (µs), as Debezium stores them.
    pub tx_id: i64,
    pub ts_usec: i64,
}

/// A transaction of which the changes up to `lsn_proc` are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    pub lsn_commit: Lsn,
    pub lsn_proc: Lsn,
}

impl PgOffset {
    /// The position streaming resumes from (`START_REPLICATION ... LOGICAL <lsn>`).
    pub fn lsn(&self) -> Lsn {
        match self {
            PgOffset::Snapshot { lsn, .. } => *lsn,
            PgOffset::Stream(p) => p.lsn,
        }
    }

    /// Reads an offset value written by sluice (or Debezium's, which has the same keys).
    pub fn decode(bytes: &[u8]) -> Result<PgOffset, String> {
        #[derive(Deserialize)]
        struct Raw {
            lsn: Option<u64>,
            lsn_commit: Option<u64>,
            lsn_proc: Option<u64>,
            #[serde(rename = "txId")]
            tx_id: Option<i64>,
            ts_usec: Option<i64>,
            snapshot: Option<serde_json::Value>,
            last_snapshot_record: Option<bool>,
            snapshot_completed: Option<bool>,
        }
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| {
            format!(
                "stored offset {} is malformed: {e}",
                String::from_utf8_lossy(bytes)
            )
        })?;
        let lsn = raw.lsn.ok_or_else(|| {
            format!(
                "stored offset {} has no lsn",
                String::from_utf8_lossy(bytes)
            )
        })?;
        let snapshot = match raw.snapshot {
            None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => false,
            Some(_) => true,
        };
        if snapshot {
            return Ok(PgOffset::Snapshot {
                lsn,
                tx_id: raw.tx_id.unwrap_or(0),
                completed: raw
                    .snapshot_completed
                    .or(raw.last_snapshot_record)
                    .unwrap_or(false),
            });
        }
        let partial = match (raw.lsn_commit, raw.lsn_proc) {
            (Some(lsn_commit), Some(lsn_proc)) if lsn_commit > lsn => Some(Partial {
                lsn_commit,
                lsn_proc,
            }),
            _ => None,
        };
        Ok(PgOffset::Stream(StreamPosition {
            lsn,
            partial,
            tx_id: raw.tx_id.unwrap_or(0),
            ts_usec: raw.ts_usec.unwrap_or(0),
        }))
    }
}

impl OffsetValue for PgOffset {
    fn encode(&self) -> Vec<u8> {
        match self {
            PgOffset::Snapshot {
                lsn,
                tx_id,
                completed,
            } => format!(
                r#"{{"last_snapshot_record":{completed},"lsn":{lsn},"txId":{tx_id},"snapshot":"INITIAL","snapshot_completed":{completed}}}"#
            ),
            PgOffset::Stream(p) => {
                let (commit, proc) = match p.partial {
                    Some(partial) => (partial.lsn_commit, partial.lsn_proc),
                    None => (p.lsn, p.lsn),
                };
                format!(
                    r#"{{"lsn_proc":{proc},"lsn_commit":{commit},"lsn":{},"txId":{},"ts_usec":{}}}"#,
                    p.lsn, p.tx_id, p.ts_usec
                )
            }
        }
        .into_bytes()
    }
}

/// What a (re)started stream drops: whole transactions that ended at or before the
/// stored flush position (the server may send them again when its
/// `confirmed_flush_lsn` lags the stored offset), transactions that committed before the
/// snapshot's consistent point (the snapshot holds them), and the already published
/// changes of a transaction published in part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeRule {
    /// Transactions ending at or before this are published.
    pub done: Lsn,
    /// Transactions committing before this are in the snapshot.
    pub snapshot_point: Lsn,
    pub partial: Option<Partial>,
}

impl ResumeRule {
    /// Whether the transaction committing at `commit_lsn` (known from its Begin) was
    /// published whole: its commit precedes the end of the last one published (commit
    /// records do not overlap), or the snapshot holds it.
    pub fn skip_transaction(&self, commit_lsn: Lsn) -> bool {
        commit_lsn < self.done || commit_lsn < self.snapshot_point
    }

    /// Whether the change at `lsn` of the transaction committing at `commit_lsn` was
    /// published.
    pub fn skip_change(&self, commit_lsn: Lsn, lsn: Lsn) -> bool {
        matches!(self.partial, Some(p) if p.lsn_commit == commit_lsn && lsn <= p.lsn_proc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_encode_as_debezium_and_round_trip() {
        let stream = PgOffset::Stream(StreamPosition {
            lsn: 24_023_128,
            partial: Some(Partial {
                lsn_commit: 24_023_300,
                lsn_proc: 24_023_200,
            }),
            tx_id: 555,
            ts_usec: 1_559_033_904_863_000,
        });
        assert_eq!(
            String::from_utf8(stream.encode()).expect("utf8"),
            r#"{"lsn_proc":24023200,"lsn_commit":24023300,"lsn":24023128,"txId":555,"ts_usec":1559033904863000}"#
        );
        assert_eq!(PgOffset::decode(&stream.encode()), Ok(stream));
        let whole = PgOffset::Stream(StreamPosition {
            lsn: 100,
            partial: None,
            tx_id: 7,
            ts_usec: 1,
        });
        assert_eq!(PgOffset::decode(&whole.encode()), Ok(whole));
        let snapshot = PgOffset::Snapshot {
            lsn: 42,
            tx_id: 9,
            completed: false,
        };
        assert_eq!(PgOffset::decode(&snapshot.encode()), Ok(snapshot));
        assert!(PgOffset::decode(b"{}").is_err());
        assert!(PgOffset::decode(b"nope").is_err());
    }

    #[test]
    fn lsns_print_and_parse_as_postgresql_does() {
        assert_eq!(lsn_text(0x1_6B37_4D48), "1/6B374D48");
        assert_eq!(parse_lsn("1/6B374D48"), Some(0x1_6B37_4D48));
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("zz"), None);
    }

    #[test]
    fn the_resume_rule_drops_what_was_published_and_nothing_more() {
        let rule = ResumeRule {
            done: 1_000,
            snapshot_point: 0,
            partial: Some(Partial {
                lsn_commit: 2_000,
                lsn_proc: 1_500,
            }),
        };
        assert!(rule.skip_transaction(900), "ended at the flush point");
        assert!(!rule.skip_transaction(1_900));
        assert!(rule.skip_change(2_000, 1_500));
        assert!(!rule.skip_change(2_000, 1_501));
        assert!(!rule.skip_change(3_000, 1_400), "another transaction");
        let snapshot = ResumeRule {
            done: 0,
            snapshot_point: 5_000,
            partial: None,
        };
        assert!(snapshot.skip_transaction(4_999), "in the snapshot");
        assert!(!snapshot.skip_transaction(5_000));
    }
}
