//! Capture offsets: Debezium's SQL Server offset (`commit_lsn`, `change_lsn`,
//! `event_serial_no`, or the snapshot markers) per `{server, database}`, encoded as Kafka
//! Connect stores it (key `["<name>",{"server":...,"database":...}]`, JSON value), and
//! Debezium's resume skip rule.

use serde::Deserialize;

use crate::sqlserver::lsn::Lsn;
use crate::sqlserver::types::push_json_string;

/// The name in offset keys (Kafka Connect puts the connector's name there).
pub const OFFSET_KEY_NAME: &str = "sluice-capture";

/// Where a change event lies in the log. Events are totally ordered by
/// `(commit_lsn, change_lsn, event_serial_no)`; the serial number counts the change rows
/// at one `(commit, change)` position (an update's two images make it 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub commit: Lsn,
    pub change: Lsn,
    pub serial: i64,
}

/// The stored progress of one database's capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// A snapshot as of `commit` (the max LSN when it began); `completed` once every table
    /// was read.
    Snapshot { commit: Lsn, completed: bool },
    /// Streaming: every event up to and including this position is published.
    Stream(Position),
}

impl Offset {
    /// The commit LSN the offset is at.
    pub fn commit(&self) -> Lsn {
        match self {
            Offset::Snapshot { commit, .. } => *commit,
            Offset::Stream(p) => p.commit,
        }
    }

    /// The offset value, as Debezium writes it.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Offset::Snapshot { commit, completed } => format!(
                r#"{{"snapshot":true,"snapshot_completed":{completed},"commit_lsn":"{commit}"}}"#
            ),
            Offset::Stream(p) => format!(
                r#"{{"commit_lsn":"{}","change_lsn":"{}","event_serial_no":{}}}"#,
                p.commit, p.change, p.serial
            ),
        }
        .into_bytes()
    }

    /// Reads an offset value written by sluice or by Debezium (which may omit
    /// `change_lsn` or write `event_serial_no` as text).
    pub fn decode(bytes: &[u8]) -> Result<Offset, OffsetError> {
        #[derive(Deserialize)]
        struct Raw {
            commit_lsn: Option<String>,
            change_lsn: Option<String>,
            event_serial_no: Option<serde_json::Value>,
            #[serde(default)]
            snapshot: bool,
            #[serde(default)]
            snapshot_completed: bool,
        }
        let bad = |reason: String| OffsetError::Malformed {
            value: String::from_utf8_lossy(bytes).into_owned(),
            reason,
        };
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let lsn = |text: Option<&String>| -> Result<Option<Lsn>, OffsetError> {
            text.map(|t| Lsn::parse(t).map_err(|e| bad(e.to_string())))
                .transpose()
        };
        let commit = lsn(raw.commit_lsn.as_ref())?.ok_or_else(|| bad("no commit_lsn".into()))?;
        if raw.snapshot {
            return Ok(Offset::Snapshot {
                commit,
                completed: raw.snapshot_completed,
            });
        }
        let serial = match raw.event_serial_no {
            None | Some(serde_json::Value::Null) => 0,
            Some(serde_json::Value::Number(n)) => {
                n.as_i64().ok_or_else(|| bad("event_serial_no".into()))?
            }
            Some(serde_json::Value::String(s)) => {
                s.parse().map_err(|_| bad("event_serial_no".into()))?
            }
            Some(other) => return Err(bad(format!("event_serial_no {other}"))),
        };
        Ok(Offset::Stream(Position {
            commit,
            // Without a change LSN only the commit is known: every change of that commit
            // was published (what Debezium means by such an offset).
            change: lsn(raw.change_lsn.as_ref())?.unwrap_or(commit),
            serial,
        }))
    }
}

impl super::OffsetValue for Offset {
    fn encode(&self) -> Vec<u8> {
        Offset::encode(self)
    }
}

/// The offset record's key for `server` (the topic prefix) and `database`.
pub fn offset_key(server: &str, database: &str) -> Vec<u8> {
    let mut key = String::from("[");
    push_json_string(&mut key, OFFSET_KEY_NAME);
    key.push_str(",{\"server\":");
    push_json_string(&mut key, server);
    key.push_str(",\"database\":");
    push_json_string(&mut key, database);
    key.push_str("}]");
    key.into_bytes()
}

/// An offset that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffsetError {
    #[error("stored offset {value} is malformed: {reason}")]
    Malformed { value: String, reason: String },
}

/// Debezium's skip rule on resume: the first pass after a restart re-reads the stored
/// commit (a transaction may have been published in part) and drops what was already
/// published: every row before the stored `(commit, change)` position, and at that exact
/// position the first `event_serial_no` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkipRule {
    stored: Position,
    /// Rows seen so far at exactly the stored position.
    at_position: i64,
}

impl SkipRule {
    pub fn new(stored: Position) -> Self {
        Self {
            stored,
            at_position: 0,
        }
    }

    /// Whether the change row at `(commit, change)` was already published. Call once per
    /// row, in log order (both images of an update count).
    pub fn skip_row(&mut self, commit: Lsn, change: Lsn) -> bool {
        match (commit, change).cmp(&(self.stored.commit, self.stored.change)) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal => {
                self.at_position += 1;
                self.at_position <= self.stored.serial
            }
            std::cmp::Ordering::Greater => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsn(text: &str) -> Lsn {
        Lsn::parse(text).expect("lsn")
    }

    #[test]
    fn offsets_encode_like_debezium_and_round_trip() {
        let stream = Offset::Stream(Position {
            commit: lsn("00000027:00000ac0:0007"),
            change: lsn("00000027:00000ac0:0002"),
            serial: 2,
        });
        assert_eq!(
            String::from_utf8(stream.encode()).expect("utf8"),
            r#"{"commit_lsn":"00000027:00000ac0:0007","change_lsn":"00000027:00000ac0:0002","event_serial_no":2}"#
        );
        assert_eq!(Offset::decode(&stream.encode()), Ok(stream));
        let snapshot = Offset::Snapshot {
            commit: lsn("00000027:00000ac0:0007"),
            completed: false,
        };
        assert_eq!(
            String::from_utf8(snapshot.encode()).expect("utf8"),
            r#"{"snapshot":true,"snapshot_completed":false,"commit_lsn":"00000027:00000ac0:0007"}"#
        );
        assert_eq!(Offset::decode(&snapshot.encode()), Ok(snapshot));
        assert_eq!(
            String::from_utf8(offset_key("server1", "testDB")).expect("utf8"),
            r#"["sluice-capture",{"server":"server1","database":"testDB"}]"#
        );
    }

    #[test]
    fn decodes_debezium_variants_and_refuses_garbage() {
        let text = br#"{"commit_lsn":"00000027:00000ac0:0007","change_lsn":"00000027:00000ac0:0002","event_serial_no":"1","transaction_id":null}"#;
        let Ok(Offset::Stream(p)) = Offset::decode(text) else {
            panic!("stream offset")
        };
        assert_eq!(p.serial, 1);
        let only_commit = br#"{"commit_lsn":"00000027:00000ac0:0007"}"#;
        let Ok(Offset::Stream(p)) = Offset::decode(only_commit) else {
            panic!("stream offset")
        };
        assert_eq!(p.change, p.commit);
        for bad in [
            &b"nope"[..],
            br#"{"change_lsn":"00000027:00000ac0:0002"}"#,
            br#"{"commit_lsn":"zz"}"#,
        ] {
            assert!(Offset::decode(bad).is_err());
        }
    }

    #[test]
    fn the_skip_rule_drops_what_was_published_and_nothing_more() {
        let commit = lsn("00000027:00000ac0:0007");
        let first = lsn("00000027:00000ac0:0002");
        let second = lsn("00000027:00000ac0:0004");
        // Published: the insert at `first` and the update (two rows) at `second`.
        let mut rule = SkipRule::new(Position {
            commit,
            change: second,
            serial: 2,
        });
        assert!(
            rule.skip_row(lsn("00000027:00000ab0:0009"), first),
            "an older commit"
        );
        assert!(rule.skip_row(commit, first), "earlier in the commit");
        assert!(rule.skip_row(commit, second), "update before image");
        assert!(rule.skip_row(commit, second), "update after image");
        assert!(
            !rule.skip_row(commit, second),
            "a third row at the same position is new"
        );
        assert!(
            !rule.skip_row(commit, lsn("00000027:00000ac0:0005")),
            "later in the commit"
        );
        assert!(
            !rule.skip_row(lsn("00000027:00000ad0:0001"), first),
            "a later commit"
        );
    }
}
