//! Capture offsets: Debezium's SQL Server offset (`commit_lsn`, `change_lsn`,
//! `event_serial_no`, or the snapshot markers) per `{server, database}`, encoded as Kafka
//! Connect stores it (key `["<name>",{"server":...,"database":...}]`, JSON value), and
//! Debezium's resume skip rule.

use serde::Deserialize;

use crate::sqlserver::lsn::Lsn;
use crate::sqlserver::types::push_json_string;

/// The name in offset keys (Kafka Connect puts the connector's name there).
pub const OFFSET_KEY_NAME: &str = "sluice-capture";

/// Where a change event lies in the log. Rows are read in `(__$start_lsn, __$command_id,
/// __$seqval, __$operation)` order, so `(commit, command, change)` never decreases along
/// the read; `change` alone may (a multi-row primary-key update, DBZ-2329). The serial
/// number counts the change rows at one position (an update's two images make it 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub commit: Lsn,
    pub change: Lsn,
    pub serial: i64,
    /// `__$command_id` of the change (`command_id` in the offset, which Debezium ignores):
    /// `None` in offsets Debezium wrote, which the skip rule then treats as Debezium does.
    pub command: Option<i32>,
}

/// The stored progress of one database's capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offset {
    /// A snapshot as of `commit` (the max LSN when it began); `completed` once every table
    /// was read.
    Snapshot { commit: Lsn, completed: bool },
    /// Streaming: every event up to and including this position is published; with
    /// transaction metadata, the transaction open there (its END is not published yet).
    Stream(Position, Option<Transaction>),
}

/// An open transaction as Debezium's `TransactionContext` stores it in the offset
/// (`transaction_id`, `transaction_data_collection_order_<table>`), so that a restart
/// continues its order and publishes its END when the next transaction begins.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transaction {
    /// The commit LSN, as text.
    pub id: String,
    /// Data events so far per `<db>.<schema>.<table>`.
    pub per_table: Vec<(String, i64)>,
}

/// The offset keys of a [`Transaction`]'s per-table counts.
const TABLE_COUNT_PREFIX: &str = "transaction_data_collection_order_";

impl Transaction {
    /// Data events so far (Debezium's `totalEventCount`: the per-table counts' sum).
    pub fn total(&self) -> i64 {
        self.per_table.iter().map(|(_, n)| n).sum()
    }

    /// Counts one more data event of `table`; returns its `data_collection_order`.
    pub fn count(&mut self, table: &str) -> i64 {
        match self.per_table.iter_mut().find(|(t, _)| t == table) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.per_table.push((table.to_owned(), 1));
                1
            }
        }
    }
}

impl Offset {
    /// The commit LSN the offset is at.
    pub fn commit(&self) -> Lsn {
        match self {
            Offset::Snapshot { commit, .. } => *commit,
            Offset::Stream(p, _) => p.commit,
        }
    }

    /// The offset value, as Debezium writes it.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Offset::Snapshot { commit, completed } => format!(
                r#"{{"snapshot":true,"snapshot_completed":{completed},"commit_lsn":"{commit}"}}"#
            ),
            Offset::Stream(p, transaction) => {
                let mut text = format!(
                    r#"{{"commit_lsn":"{}","change_lsn":"{}","event_serial_no":{}"#,
                    p.commit, p.change, p.serial
                );
                if let Some(command) = p.command {
                    text.push_str(&format!(r#","command_id":{command}"#));
                }
                if let Some(transaction) = transaction {
                    text.push_str(",\"transaction_id\":");
                    push_json_string(&mut text, &transaction.id);
                    for (table, count) in &transaction.per_table {
                        text.push(',');
                        push_json_string(&mut text, &format!("{TABLE_COUNT_PREFIX}{table}"));
                        text.push_str(&format!(":{count}"));
                    }
                }
                text.push('}');
                text
            }
        }
        .into_bytes()
    }

    /// Reads an offset value written by sluice or by Debezium (which may omit
    /// `change_lsn`, write it as the text `"NULL"`, or write `event_serial_no` as text).
    pub fn decode(bytes: &[u8]) -> Result<Offset, OffsetError> {
        #[derive(Deserialize)]
        struct Raw {
            commit_lsn: Option<String>,
            change_lsn: Option<String>,
            event_serial_no: Option<serde_json::Value>,
            command_id: Option<i32>,
            transaction_id: Option<String>,
            #[serde(flatten)]
            rest: std::collections::BTreeMap<String, serde_json::Value>,
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
        // Debezium's `Lsn.toString()` of an unavailable LSN is the text "NULL".
        let lsn = |text: Option<&String>| -> Result<Option<Lsn>, OffsetError> {
            text.filter(|t| t.as_str() != "NULL")
                .map(|t| Lsn::parse(t).map_err(|e| bad(e.to_string())))
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
        let transaction = raw.transaction_id.map(|id| Transaction {
            id,
            per_table: raw
                .rest
                .iter()
                .filter_map(|(key, value)| {
                    Some((
                        key.strip_prefix(TABLE_COUNT_PREFIX)?.to_owned(),
                        value.as_i64()?,
                    ))
                })
                .collect(),
        });
        let change = lsn(raw.change_lsn.as_ref())?;
        let position = match change {
            Some(change) => Position {
                commit,
                change,
                serial,
                command: raw.command_id,
            },
            // Without a change LSN only the commit is known, and Debezium re-reads it
            // (a NULL change LSN sorts before every change): position before its first
            // change, so the skip rule drops nothing of it.
            None => Position {
                commit,
                change: Lsn::ZERO,
                serial: 0,
                command: None,
            },
        };
        Ok(Offset::Stream(position, transaction))
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
/// published: every row before the stored position, and at that exact position the first
/// `event_serial_no` rows.
///
/// "Before" compares `(commit, command_id, change)`, the order rows are read in, when the
/// offset carries the command id (sluice's own). An offset without one (Debezium's)
/// compares `(commit, change)` as Debezium does, and `change` is not monotonic in the
/// read order of a multi-row primary-key update (DBZ-2329): like Debezium's
/// `changesStoppedBeingMonotonic`, once a row's position falls below the previous row's,
/// nothing more is skipped until the next transaction (duplicates rather than a loss).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkipRule {
    stored: Position,
    /// Rows seen so far at exactly the stored position.
    at_position: i64,
    /// The previous row's `(commit, change)` and whether skipping is off until the commit
    /// changes (offsets without a command id only).
    previous: Option<(Lsn, Lsn)>,
    not_monotonic: bool,
}

impl SkipRule {
    pub fn new(stored: Position) -> Self {
        Self {
            stored,
            at_position: 0,
            previous: None,
            not_monotonic: false,
        }
    }

    /// Whether the change row at `(commit, command, change)` was already published. Call
    /// once per row, in read order (both images of an update count).
    pub fn skip_row(&mut self, commit: Lsn, command: i32, change: Lsn) -> bool {
        let order = match self.stored.command {
            Some(stored_command) => (commit, command, change).cmp(&(
                self.stored.commit,
                stored_command,
                self.stored.change,
            )),
            None => {
                if let Some((previous_commit, previous_change)) = self.previous {
                    if previous_commit != commit {
                        self.not_monotonic = false;
                    } else if change < previous_change {
                        if !self.not_monotonic {
                            tracing::info!(%commit, %change, "change LSNs stopped being monotonic in this transaction: skipping nothing more of it");
                        }
                        self.not_monotonic = true;
                    }
                }
                self.previous = Some((commit, change));
                if self.not_monotonic {
                    return false;
                }
                (commit, change).cmp(&(self.stored.commit, self.stored.change))
            }
        };
        match order {
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
        let stream = Offset::Stream(
            Position {
                commit: lsn("00000027:00000ac0:0007"),
                change: lsn("00000027:00000ac0:0002"),
                serial: 2,
                command: Some(3),
            },
            None,
        );
        assert_eq!(
            String::from_utf8(stream.encode()).expect("utf8"),
            r#"{"commit_lsn":"00000027:00000ac0:0007","change_lsn":"00000027:00000ac0:0002","event_serial_no":2,"command_id":3}"#
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
        // An open transaction, as Debezium's TransactionContext stores it.
        let open = Offset::Stream(
            Position {
                commit: lsn("00000027:00000ac0:0007"),
                change: lsn("00000027:00000ac0:0002"),
                serial: 1,
                command: None,
            },
            Some(Transaction {
                id: "00000027:00000ac0:0007".into(),
                per_table: vec![("testDB.dbo.customers".into(), 2)],
            }),
        );
        assert_eq!(
            String::from_utf8(open.encode()).expect("utf8"),
            r#"{"commit_lsn":"00000027:00000ac0:0007","change_lsn":"00000027:00000ac0:0002","event_serial_no":1,"transaction_id":"00000027:00000ac0:0007","transaction_data_collection_order_testDB.dbo.customers":2}"#
        );
        assert_eq!(Offset::decode(&open.encode()), Ok(open));
        assert_eq!(
            String::from_utf8(offset_key("server1", "testDB")).expect("utf8"),
            r#"["sluice-capture",{"server":"server1","database":"testDB"}]"#
        );
    }

    #[test]
    fn decodes_debezium_variants_and_refuses_garbage() {
        let text = br#"{"commit_lsn":"00000027:00000ac0:0007","change_lsn":"00000027:00000ac0:0002","event_serial_no":"1","transaction_id":null}"#;
        let Ok(Offset::Stream(p, _)) = Offset::decode(text) else {
            panic!("stream offset")
        };
        assert_eq!(p.serial, 1);
        assert_eq!(p.command, None, "Debezium's offsets have no command id");
        // Without a change LSN (missing, or Debezium's "NULL"), the commit is read again
        // from its first change, as Debezium does.
        for only_commit in [
            &br#"{"commit_lsn":"00000027:00000ac0:0007"}"#[..],
            br#"{"commit_lsn":"00000027:00000ac0:0007","change_lsn":"NULL","event_serial_no":0}"#,
        ] {
            let Ok(Offset::Stream(p, _)) = Offset::decode(only_commit) else {
                panic!("stream offset")
            };
            let mut rule = SkipRule::new(p);
            assert!(
                !rule.skip_row(p.commit, 1, lsn("00000027:00000ab0:0001")),
                "the commit's first change is read again"
            );
        }
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
        for command in [None, Some(2)] {
            let mut rule = SkipRule::new(Position {
                commit,
                change: second,
                serial: 2,
                command,
            });
            assert!(
                rule.skip_row(lsn("00000027:00000ab0:0009"), 1, first),
                "an older commit"
            );
            assert!(rule.skip_row(commit, 1, first), "earlier in the commit");
            assert!(rule.skip_row(commit, 2, second), "update before image");
            assert!(rule.skip_row(commit, 2, second), "update after image");
            assert!(
                !rule.skip_row(commit, 2, second),
                "a third row at the same position is new"
            );
            assert!(
                !rule.skip_row(commit, 3, lsn("00000027:00000ac0:0005")),
                "later in the commit"
            );
            assert!(
                !rule.skip_row(lsn("00000027:00000ad0:0001"), 1, first),
                "a later commit"
            );
        }
    }

    /// A bulk primary-key update read in command order with falling change LSNs
    /// (DBZ-2329): the command id makes the resume exact; without it (Debezium's
    /// offsets) nothing after the fall is skipped, so nothing is lost.
    #[test]
    fn the_skip_rule_survives_change_lsns_that_are_not_monotonic() {
        let commit = lsn("00000027:00000ac0:0009");
        let rows = [
            (1, lsn("00000027:00000ac0:0005")),
            (1, lsn("00000027:00000ac0:0006")),
            (2, lsn("00000027:00000ac0:0002")),
            (2, lsn("00000027:00000ac0:0003")),
        ];
        // Published: the first two rows.
        let exact = SkipRule::new(Position {
            commit,
            change: rows[1].1,
            serial: 1,
            command: Some(1),
        });
        let debezium = SkipRule::new(Position {
            command: None,
            ..exact.stored
        });
        for (mut rule, expected) in [
            (exact, [true, true, false, false]),
            (debezium, [true, true, false, false]),
        ] {
            let skipped: Vec<bool> = rows
                .iter()
                .map(|(command, change)| rule.skip_row(commit, *command, *change))
                .collect();
            assert_eq!(skipped, expected, "{:?}", rule.stored.command);
        }
        // Published up to the third row: the command id skips exactly three; Debezium's
        // rule re-publishes the second command (duplicates, never a loss).
        let exact = SkipRule::new(Position {
            commit,
            change: rows[2].1,
            serial: 1,
            command: Some(2),
        });
        let mut rule = exact;
        let skipped: Vec<bool> = rows
            .iter()
            .map(|(command, change)| rule.skip_row(commit, *command, *change))
            .collect();
        assert_eq!(skipped, [true, true, true, false]);
    }
}
