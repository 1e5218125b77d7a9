//! Decoding `pgoutput` messages (protocol versions 1 and 2, PostgreSQL's "Logical
//! Replication Message Formats"): what arrives in each XLogData of a logical replication
//! stream. Version 2 adds the streaming of in-progress transactions: Stream Start/Stop
//! around blocks of changes that each carry their (sub)transaction's xid
//! ([`streamed_change`] takes it off, leaving the version 1 form), then Stream Commit or
//! Stream Abort.
//! Values stay as the server's text form, sliced out of the message without copying
//! ([`bytes::Bytes`]); [`super::types`] maps them.

use bytes::{Buf, Bytes};

use super::offsets::Lsn;

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum {
    Null,
    /// An unchanged TOASTed value the server did not send (`u`).
    Unchanged,
    /// The value's text form (`t`).
    Text(Bytes),
}

/// A column of a `Relation` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity (the key the server sends old values of).
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    /// `atttypmod` (-1: none).
    pub type_modifier: i32,
}

/// A table's description, sent before its first change and after every schema change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    pub schema: String,
    pub table: String,
    /// `relreplident`: `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn>,
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Begin {
        /// The commit record's LSN.
        final_lsn: Lsn,
        /// Commit time, µs since 2000-01-01.
        commit_time: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: i64,
    },
    Relation(Relation),
    /// A type the server describes (user types); sluice reads its catalog instead.
    Type,
    Origin,
    Insert {
        relation: u32,
        new: Vec<Datum>,
    },
    Update {
        relation: u32,
        /// The old key (`K`, the key changed) or the whole old row (`O`, replica
        /// identity full).
        old: Option<(u8, Vec<Datum>)>,
        new: Vec<Datum>,
    },
    Delete {
        relation: u32,
        old: (u8, Vec<Datum>),
    },
    Truncate {
        /// `1`: CASCADE, `2`: RESTART IDENTITY.
        options: u8,
        relations: Vec<u32>,
    },
    /// A block of an in-progress transaction's changes begins (protocol 2).
    StreamStart {
        xid: u32,
        /// The transaction's first block.
        first: bool,
    },
    /// The block ends.
    StreamStop,
    /// A streamed transaction committed: its changes were all in earlier blocks.
    StreamCommit {
        xid: u32,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: i64,
    },
    /// A streamed transaction (`subxid == xid`) or one of its subtransactions aborted.
    StreamAbort {
        xid: u32,
        subxid: u32,
    },
    /// `pg_logical_emit_message`.
    Logical {
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: Bytes,
    },
}

/// A message that does not follow the format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed pgoutput message ({0})")]
pub struct DecodeError(pub String);

fn need(data: &Bytes, n: usize, what: &str) -> Result<(), DecodeError> {
    if data.remaining() < n {
        return Err(DecodeError(format!("{what}: truncated")));
    }
    Ok(())
}

fn string(data: &mut Bytes) -> Result<String, DecodeError> {
    let end = data
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| DecodeError("string without its terminator".into()))?;
    let text = String::from_utf8_lossy(&data[..end]).into_owned();
    data.advance(end + 1);
    Ok(text)
}

fn tuple(data: &mut Bytes) -> Result<Vec<Datum>, DecodeError> {
    need(data, 2, "tuple")?;
    let count = data.get_i16();
    let mut values = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        need(data, 1, "tuple column")?;
        values.push(match data.get_u8() {
            b'n' => Datum::Null,
            b'u' => Datum::Unchanged,
            b't' | b'b' => {
                need(data, 4, "tuple value")?;
                let len = data.get_u32() as usize;
                need(data, len, "tuple value")?;
                Datum::Text(data.split_to(len))
            }
            other => return Err(DecodeError(format!("tuple column kind {other}"))),
        });
    }
    Ok(values)
}

/// Decodes one message.
pub fn decode(mut data: Bytes) -> Result<Message, DecodeError> {
    need(&data, 1, "message")?;
    let tag = data.get_u8();
    let d = &mut data;
    Ok(match tag {
        b'B' => {
            need(d, 20, "Begin")?;
            Message::Begin {
                final_lsn: d.get_u64(),
                commit_time: d.get_i64(),
                xid: d.get_u32(),
            }
        }
        b'C' => {
            need(d, 25, "Commit")?;
            let _flags = d.get_u8();
            Message::Commit {
                commit_lsn: d.get_u64(),
                end_lsn: d.get_u64(),
                commit_time: d.get_i64(),
            }
        }
        b'O' => Message::Origin,
        b'Y' => Message::Type,
        b'R' => {
            need(d, 4, "Relation")?;
            let id = d.get_u32();
            let schema = string(d)?;
            let table = string(d)?;
            need(d, 3, "Relation")?;
            let replica_identity = d.get_u8();
            let count = d.get_i16();
            let mut columns = Vec::with_capacity(count.max(0) as usize);
            for _ in 0..count {
                need(d, 1, "Relation column")?;
                let flags = d.get_u8();
                let name = string(d)?;
                need(d, 8, "Relation column")?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name,
                    type_oid: d.get_u32(),
                    type_modifier: d.get_i32(),
                });
            }
            Message::Relation(Relation {
                id,
                schema,
                table,
                replica_identity,
                columns,
            })
        }
        b'I' => {
            need(d, 5, "Insert")?;
            let relation = d.get_u32();
            let _n = d.get_u8();
            Message::Insert {
                relation,
                new: tuple(d)?,
            }
        }
        b'U' => {
            need(d, 5, "Update")?;
            let relation = d.get_u32();
            let mut kind = d.get_u8();
            let old = if kind == b'K' || kind == b'O' {
                let old = tuple(d)?;
                need(d, 1, "Update")?;
                let k = kind;
                kind = d.get_u8();
                Some((k, old))
            } else {
                None
            };
            if kind != b'N' {
                return Err(DecodeError(format!("Update: tuple kind {kind}")));
            }
            Message::Update {
                relation,
                old,
                new: tuple(d)?,
            }
        }
        b'D' => {
            need(d, 5, "Delete")?;
            let relation = d.get_u32();
            let kind = d.get_u8();
            Message::Delete {
                relation,
                old: (kind, tuple(d)?),
            }
        }
        b'T' => {
            need(d, 5, "Truncate")?;
            let count = d.get_u32() as usize;
            let options = d.get_u8();
            need(d, count * 4, "Truncate")?;
            Message::Truncate {
                options,
                relations: (0..count).map(|_| d.get_u32()).collect(),
            }
        }
        b'S' => {
            need(d, 5, "Stream Start")?;
            Message::StreamStart {
                xid: d.get_u32(),
                first: d.get_u8() == 1,
            }
        }
        b'E' => Message::StreamStop,
        b'c' => {
            need(d, 29, "Stream Commit")?;
            let xid = d.get_u32();
            let _flags = d.get_u8();
            Message::StreamCommit {
                xid,
                commit_lsn: d.get_u64(),
                end_lsn: d.get_u64(),
                commit_time: d.get_i64(),
            }
        }
        b'A' => {
            need(d, 8, "Stream Abort")?;
            Message::StreamAbort {
                xid: d.get_u32(),
                subxid: d.get_u32(),
            }
        }
        b'M' => {
            need(d, 9, "Message")?;
            let transactional = d.get_u8() & 1 == 1;
            let lsn = d.get_u64();
            let prefix = string(d)?;
            need(d, 4, "Message")?;
            let len = d.get_u32() as usize;
            need(d, len, "Message")?;
            Message::Logical {
                transactional,
                lsn,
                prefix,
                content: d.split_to(len),
            }
        }
        other => {
            return Err(DecodeError(format!(
                "unknown message type {:?}",
                other as char
            )));
        }
    })
}

/// What a message inside a stream block is (between Stream Start and Stream Stop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InBlock<'a> {
    /// A change, relation or type of (sub)transaction `xid`, as its tag and the rest
    /// after the xid: the version 1 message split in two.
    Change { xid: u32, tag: u8, rest: &'a [u8] },
    /// Stream Stop.
    Stop,
    /// An Origin message (no xid; sluice does not use it).
    Origin,
}

/// Sorts a message received inside a stream block.
pub fn streamed_change(data: &[u8]) -> Result<InBlock<'_>, DecodeError> {
    match data.first() {
        Some(b'E') => Ok(InBlock::Stop),
        Some(b'O') => Ok(InBlock::Origin),
        Some(&tag @ (b'R' | b'Y' | b'I' | b'U' | b'D' | b'T' | b'M')) => {
            let xid = data
                .get(1..5)
                .ok_or_else(|| DecodeError(format!("streamed {:?}: truncated", tag as char)))?;
            Ok(InBlock::Change {
                xid: u32::from_be_bytes([xid[0], xid[1], xid[2], xid[3]]),
                tag,
                rest: &data[5..],
            })
        }
        Some(&other) => Err(DecodeError(format!(
            "message type {:?} inside a stream block",
            other as char
        ))),
        None => Err(DecodeError("empty message inside a stream block".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_begin_relation_insert_and_commit() {
        // As captured from PostgreSQL 15 (`INSERT INTO users (name, age) ...`).
        let begin = Bytes::from_static(&[
            66, 0, 0, 0, 0, 2, 227, 74, 224, 0, 2, 146, 73, 45, 15, 138, 230, 0, 0, 13, 228,
        ]);
        assert_eq!(
            decode(begin),
            Ok(Message::Begin {
                final_lsn: 48_450_272,
                commit_time: 723_792_939_682_534,
                xid: 3556
            })
        );
        let mut relation = vec![b'R', 0, 0, 0, 7];
        relation.extend_from_slice(b"public\0t\0d");
        relation.extend_from_slice(&[0, 2, 1]);
        relation.extend_from_slice(b"id\0");
        relation.extend_from_slice(&[0, 0, 0, 23, 255, 255, 255, 255, 0]);
        relation.extend_from_slice(b"name\0");
        relation.extend_from_slice(&[0, 0, 0, 25, 255, 255, 255, 255]);
        let Ok(Message::Relation(r)) = decode(Bytes::from(relation)) else {
            panic!("relation")
        };
        assert_eq!(
            (r.id, r.schema.as_str(), r.table.as_str()),
            (7, "public", "t")
        );
        assert!(r.columns[0].key && !r.columns[1].key);
        assert_eq!(r.columns[1].type_oid, 25);
        let mut insert = vec![b'I', 0, 0, 0, 7, b'N', 0, 3, b't', 0, 0, 0, 2];
        insert.extend_from_slice(b"42");
        insert.extend_from_slice(b"nu");
        assert_eq!(
            decode(Bytes::from(insert)),
            Ok(Message::Insert {
                relation: 7,
                new: vec![
                    Datum::Text(Bytes::from_static(b"42")),
                    Datum::Null,
                    Datum::Unchanged
                ]
            })
        );
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        for bad in [
            &b"B\0\0"[..],
            b"R\0\0\0\x07public",
            b"I\0\0\0\x07N\0\x01t\0\0\0\x09ab",
            b"Z",
        ] {
            assert!(decode(Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decodes_the_streaming_messages_of_protocol_2() {
        let start = Bytes::from_static(&[b'S', 0, 0, 2, 0, 1]);
        assert_eq!(
            decode(start),
            Ok(Message::StreamStart {
                xid: 512,
                first: true
            })
        );
        assert_eq!(decode(Bytes::from_static(b"E")), Ok(Message::StreamStop));
        let mut commit = vec![b'c', 0, 0, 2, 0, 0];
        commit.extend_from_slice(&100u64.to_be_bytes());
        commit.extend_from_slice(&108u64.to_be_bytes());
        commit.extend_from_slice(&7i64.to_be_bytes());
        assert_eq!(
            decode(Bytes::from(commit)),
            Ok(Message::StreamCommit {
                xid: 512,
                commit_lsn: 100,
                end_lsn: 108,
                commit_time: 7
            })
        );
        let abort = Bytes::from_static(&[b'A', 0, 0, 2, 0, 0, 0, 2, 1]);
        assert_eq!(
            decode(abort),
            Ok(Message::StreamAbort {
                xid: 512,
                subxid: 513
            })
        );
        assert!(decode(Bytes::from_static(&[b'c', 0, 0, 2])).is_err());

        // Inside a block a change carries its subtransaction's xid; without it, it is
        // the version 1 message.
        let streamed = [b'I', 0, 0, 2, 1, 0, 0, 0, 7, b'N', 0, 1, b'n'];
        let Ok(InBlock::Change { xid, tag, rest }) = streamed_change(&streamed) else {
            panic!("a change")
        };
        assert_eq!((xid, tag), (513, b'I'));
        let mut v1 = vec![tag];
        v1.extend_from_slice(rest);
        assert_eq!(
            decode(Bytes::from(v1)),
            Ok(Message::Insert {
                relation: 7,
                new: vec![Datum::Null]
            })
        );
        assert_eq!(streamed_change(b"E"), Ok(InBlock::Stop));
        assert!(streamed_change(&[b'I', 0, 0]).is_err(), "truncated xid");
        assert!(
            streamed_change(b"B").is_err(),
            "a Begin cannot be inside a block"
        );
    }
}
