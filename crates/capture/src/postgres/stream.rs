//! Streaming: the replication connection's pgoutput messages turned into Debezium
//! events and committed to Kafka in batches; the flush position reported to the server
//! only once Kafka acknowledged the events up to it.
//!
//! Events are committed when `batch_size` are waiting, or when no message came for
//! `flush_interval`; a transaction larger than a batch is committed in parts (memory
//! stays bounded by the batch, whatever the transaction's size), with the offset's
//! `lsn_proc` saying how far it got. Up to `parts_in_flight` parts are being
//! acknowledged while the next is read and built ([`Parts`], [`EventWriter::dispatch`]):
//! the server hears of a position only once Kafka has acknowledged it and every part
//! before it. Heartbeats (`heartbeat_interval`) move the slot on
//! an idle database: the server's keepalive position is stored with the heartbeat
//! record, then reported.
//!
//! With protocol 2 the server streams a large transaction while it runs: its blocks go
//! to a file ([`super::spill`]) and, at its Stream Commit, are read back through the same
//! path as any transaction (Begin, changes, Commit), a slice per turn of the loop so
//! status updates keep flowing; the connection is not read meanwhile (later transactions
//! wait in the server, in commit order).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::time::Duration;

use crate::envelope::{Op, Snapshot, TransactionBlock, heartbeat_event, transaction_event};
use crate::sqlserver::snapshot::Progress;
use crate::{Acknowledged, Clock, EventWriter, OutRecord, WriteError};

use super::PgError;
use super::catalog::Catalog;
use super::config::PgSettings;
use super::envelope::{Change, PgSource, PgTable, key, message_event, truncate_value, value};
use super::offsets::{Lsn, Partial, PgOffset, ResumeRule, StreamPosition};
use super::pgoutput::{Datum, InBlock, Message, decode, streamed_change};
use super::protocol::{PG_EPOCH_OFFSET_US, ReplicationConnection, StreamMessage};
use super::spill::{Replay, Spills};

/// How often the flush position is reported even when the server does not ask (its
/// `wal_sender_timeout` is 60 s by default).
const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// Changes of a streamed transaction read back per turn of the loop.
const REPLAY_SLICE: usize = 1_024;

/// A committed streamed transaction being read back.
struct Replaying {
    changes: Replay,
    commit: Message,
    commit_lsn: Lsn,
}

/// The writer and the parts it holds in flight, oldest first, each with the position
/// it reaches once acknowledged.
struct Parts<'w, W> {
    writer: &'w mut W,
    in_flight: VecDeque<(StreamPosition, Acknowledged)>,
}

impl<W> Parts<'_, W> {
    /// The oldest part's acknowledgement (parts are acknowledged in order).
    async fn next_acknowledged(&mut self) -> (StreamPosition, Result<(), WriteError>) {
        match self.in_flight.front_mut() {
            Some((position, acknowledged)) => (*position, acknowledged.await),
            None => std::future::pending().await,
        }
    }
}

/// The transaction being received.
struct Transaction {
    xid: u32,
    commit_lsn: Lsn,
    /// Commit time, epoch µs.
    commit_us: i64,
    /// Published before (a restart receives it again).
    skip: bool,
    total: i64,
    /// Events per data collection, for the END event and `data_collection_order`.
    counts: BTreeMap<String, i64>,
    last_change: Lsn,
}

/// The stream's state.
pub struct Streamer<'a> {
    settings: &'a PgSettings,
    catalog: &'a mut Catalog,
    clock: Clock,
    captured: HashSet<String>,
    /// Relation id → the captured table (`None`: not captured).
    relations: HashMap<u32, Option<PgTable>>,
    rule: ResumeRule,
    /// Published and acknowledged by Kafka (reported to the server).
    published: StreamPosition,
    /// Handed to the writer (acknowledged or not): what `pending` adds to.
    dispatched: StreamPosition,
    /// What `pending` reaches once committed.
    pending_position: StreamPosition,
    pending: Vec<OutRecord>,
    tx: Option<Transaction>,
    last_commit_lsn: Option<Lsn>,
    /// The server's position from its last keepalive.
    server_lsn: Lsn,
    received: Lsn,
    /// Streamed in-progress transactions (protocol 2), `None` with protocol 1.
    spills: Option<Spills>,
    /// The transaction whose stream block is being received.
    block: Option<u32>,
    replaying: Option<Replaying>,
    /// Counts the changes `event.processing.failure.handling.mode` leaves out.
    progress: &'a Progress,
}

impl<'a> Streamer<'a> {
    pub fn new(
        settings: &'a PgSettings,
        catalog: &'a mut Catalog,
        clock: Clock,
        start: StreamPosition,
        rule: ResumeRule,
        spills: Option<Spills>,
        progress: &'a Progress,
    ) -> Streamer<'a> {
        Streamer {
            settings,
            catalog,
            clock,
            captured: settings.tables.iter().cloned().collect(),
            relations: HashMap::new(),
            rule,
            published: start,
            dispatched: start,
            pending_position: start,
            pending: Vec::new(),
            tx: None,
            last_commit_lsn: None,
            server_lsn: start.lsn,
            received: start.lsn,
            spills,
            block: None,
            replaying: None,
            progress,
        }
    }

    /// Streams until `shutdown`; commits what is pending before it returns.
    pub async fn run<W: EventWriter<PgOffset>>(
        &mut self,
        connection: &mut ReplicationConnection,
        writer: &mut W,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), PgError> {
        let mut parts = Parts {
            writer,
            in_flight: VecDeque::new(),
        };
        let writer = &mut parts;
        tokio::pin!(shutdown);
        let mut status = tokio::time::interval(STATUS_INTERVAL);
        let heartbeat_every = self
            .settings
            .heartbeat
            .unwrap_or(Duration::from_secs(3_600));
        let mut heartbeat = tokio::time::interval(heartbeat_every);
        heartbeat.tick().await;
        // When the oldest waiting event (or position) must be committed: set when the
        // first one arrives, so a steady trickle of messages cannot hold events back.
        let mut due: Option<tokio::time::Instant> = None;
        loop {
            let waiting =
                !self.pending.is_empty() || self.pending_position.lsn != self.dispatched.lsn;
            if !waiting {
                due = None;
            } else if due.is_none() {
                due = Some(tokio::time::Instant::now() + self.settings.flush_interval);
            }
            let deadline = due.unwrap_or_else(tokio::time::Instant::now);
            tokio::select! {
                biased;
                _ = &mut shutdown => {
                    if self.tx.is_none() || !self.pending.is_empty() {
                        self.flush(connection, writer).await?;
                    }
                    return self.settle(connection, writer).await;
                }
                (position, result) = writer.next_acknowledged(), if !writer.in_flight.is_empty() => {
                    writer.in_flight.pop_front();
                    self.acknowledged(connection, position, result).await?;
                }
                message = connection.next(), if self.replaying.is_none() => {
                    match message? {
                        StreamMessage::XLogData { start, end, data } => {
                            self.received = self.received.max(end);
                            self.receive(start, data).await?;
                            if self.pending.len() >= self.settings.batch_size {
                                self.flush(connection, writer).await?;
                            }
                        }
                        StreamMessage::Keepalive { end, reply } => {
                            self.server_lsn = self.server_lsn.max(end);
                            self.received = self.received.max(end);
                            if reply {
                                self.report(connection).await?;
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline), if waiting => {
                    self.flush(connection, writer).await?;
                }
                _ = status.tick() => self.report(connection).await?,
                _ = heartbeat.tick(), if self.settings.heartbeat.is_some() => {
                    self.heartbeat(connection, writer).await?;
                }
                _ = std::future::ready(()), if self.replaying.is_some() => {
                    self.replay_slice(connection, writer).await?;
                }
            }
        }
    }

    /// One XLogData message: inside a stream block to its transaction's file, else
    /// decoded and handled.
    async fn receive(&mut self, start: Lsn, data: bytes::Bytes) -> Result<(), PgError> {
        if let Some(xid) = self.block {
            let spills = self.spills.as_mut().ok_or_else(not_streaming)?;
            match streamed_change(&data)? {
                InBlock::Stop => self.block = None,
                InBlock::Origin => {}
                InBlock::Change {
                    xid: subxid,
                    tag,
                    rest,
                } => {
                    spills.append(xid, subxid, start, tag, rest).await?;
                }
            }
            return Ok(());
        }
        match decode(data)? {
            Message::StreamStart { xid, first } => {
                let spills = self.spills.as_mut().ok_or_else(not_streaming)?;
                spills.start(xid, first).await?;
                self.block = Some(xid);
            }
            Message::StreamStop => {}
            Message::StreamAbort { xid, subxid } => {
                let spills = self.spills.as_mut().ok_or_else(not_streaming)?;
                let dropped = spills.abort(xid, subxid).await?;
                tracing::debug!(xid, subxid, dropped, "a streamed transaction aborted");
            }
            Message::StreamCommit {
                xid,
                commit_lsn,
                end_lsn,
                commit_time,
            } => {
                let spills = self.spills.as_mut().ok_or_else(not_streaming)?;
                let changes = spills.commit(xid).await?;
                self.handle(
                    commit_lsn,
                    Message::Begin {
                        final_lsn: commit_lsn,
                        commit_time,
                        xid,
                    },
                )
                .await?;
                let commit = Message::Commit {
                    commit_lsn,
                    end_lsn,
                    commit_time,
                };
                match changes {
                    Some(changes) => {
                        self.replaying = Some(Replaying {
                            changes,
                            commit,
                            commit_lsn,
                        });
                    }
                    None => self.handle(commit_lsn, commit).await?,
                }
            }
            message => self.handle(start, message).await?,
        }
        Ok(())
    }

    /// Reads back a slice of the committed streamed transaction, committing parts as
    /// batches fill; at its end, its Commit.
    async fn replay_slice<'w, W: EventWriter<PgOffset>>(
        &mut self,
        connection: &mut ReplicationConnection,
        writer: &mut Parts<'w, W>,
    ) -> Result<(), PgError> {
        let Some(mut replaying) = self.replaying.take() else {
            return Ok(());
        };
        for _ in 0..REPLAY_SLICE {
            match replaying.changes.next().await? {
                Some((lsn, data)) => {
                    self.handle(lsn, decode(data)?).await?;
                    if self.pending.len() >= self.settings.batch_size {
                        self.flush(connection, writer).await?;
                    }
                }
                None => {
                    let Replaying {
                        commit, commit_lsn, ..
                    } = replaying;
                    return self.handle(commit_lsn, commit).await;
                }
            }
        }
        self.replaying = Some(replaying);
        Ok(())
    }

    async fn report(&mut self, connection: &mut ReplicationConnection) -> Result<(), PgError> {
        connection
            .send_status(self.received, self.published.lsn, (self.clock)())
            .await?;
        Ok(())
    }

    /// Waits for every part in flight, and reports each one's position.
    async fn settle<'w, W: EventWriter<PgOffset>>(
        &mut self,
        connection: &mut ReplicationConnection,
        writer: &mut Parts<'w, W>,
    ) -> Result<(), PgError> {
        self.settle_to(connection, writer, 0).await
    }

    /// Waits until at most `left` parts are in flight.
    async fn settle_to<'w, W: EventWriter<PgOffset>>(
        &mut self,
        connection: &mut ReplicationConnection,
        writer: &mut Parts<'w, W>,
        left: usize,
    ) -> Result<(), PgError> {
        while writer.in_flight.len() > left {
            let (position, result) = writer.next_acknowledged().await;
            writer.in_flight.pop_front();
            self.acknowledged(connection, position, result).await?;
        }
        Ok(())
    }

    /// A part's commit ended: on success its position is acknowledged, and reported.
    async fn acknowledged(
        &mut self,
        connection: &mut ReplicationConnection,
        position: StreamPosition,
        result: Result<(), WriteError>,
    ) -> Result<(), PgError> {
        result?;
        self.published = position;
        self.report(connection).await
    }

    /// Hands the pending events, with the position they reach, to the writer once the
    /// part before them is acknowledged.
    async fn flush<'w, W: EventWriter<PgOffset>>(
        &mut self,
        connection: &mut ReplicationConnection,
        writer: &mut Parts<'w, W>,
    ) -> Result<(), PgError> {
        if self.pending.is_empty() && self.pending_position.lsn == self.dispatched.lsn {
            return Ok(());
        }
        let position = match &self.tx {
            // In a transaction: how far it got (its last change is published).
            Some(tx) if !tx.skip && tx.last_change > 0 => StreamPosition {
                partial: Some(Partial {
                    lsn_commit: tx.commit_lsn,
                    lsn_proc: tx.last_change,
                }),
                ..self.pending_position
            },
            _ => self.pending_position,
        };
        // Room for this part among those in flight.
        let left = self.settings.parts_in_flight.max(1) - 1;
        self.settle_to(connection, writer, left).await?;
        let records = std::mem::take(&mut self.pending);
        let acknowledged = writer
            .writer
            .dispatch(records, PgOffset::Stream(position))
            .await?;
        writer.in_flight.push_back((position, acknowledged));
        self.dispatched = position;
        self.pending_position = StreamPosition {
            partial: None,
            ..position
        };
        if let Some(partial) = position.partial {
            self.rule.partial = Some(partial);
        }
        Ok(())
    }

    /// On an idle stream, a heartbeat record carries the server's position into the
    /// offsets, and the slot follows.
    async fn heartbeat<'w, W: EventWriter<PgOffset>>(
        &mut self,
        connection: &mut ReplicationConnection,
        writer: &mut Parts<'w, W>,
    ) -> Result<(), PgError> {
        if self.tx.is_some() || !self.pending.is_empty() {
            return Ok(());
        }
        let (k, v) = heartbeat_event(&self.settings.events, (self.clock)() / 1_000);
        self.pending.push(OutRecord {
            topic: format!("__debezium-heartbeat.{}", self.settings.events.prefix),
            key: Some(k),
            value: Some(v),
            headers: Vec::new(),
        });
        self.pending_position.lsn = self.pending_position.lsn.max(self.server_lsn);
        self.flush(connection, writer).await
    }

    fn source(&self, lsn: Lsn) -> PgSource {
        let tx = self.tx.as_ref();
        PgSource {
            ts_us: tx.map_or_else(|| (self.clock)(), |t| t.commit_us),
            snapshot: Snapshot::False,
            tx_id: tx.map(|t| t.xid as i64),
            lsn: Some(lsn),
            last_commit_lsn: self.last_commit_lsn,
        }
    }

    /// The `transaction` block of the next event on `table` (and counts it).
    fn transaction_block(&mut self, table: &str) -> Option<TransactionBlock> {
        let metadata = self.settings.transaction_metadata;
        let tx = self.tx.as_mut()?;
        tx.total += 1;
        let count = tx.counts.entry(table.to_owned()).or_insert(0);
        *count += 1;
        metadata.then(|| TransactionBlock {
            id: format!("{}:{}", tx.xid, tx.commit_lsn),
            total_order: tx.total,
            data_collection_order: *count,
        })
    }

    /// Undoes [`Self::transaction_block`]'s count of an event that was left out.
    fn forget_transaction_event(&mut self, table: &str) {
        if let Some(tx) = self.tx.as_mut() {
            tx.total -= 1;
            if let Some(count) = tx.counts.get_mut(table) {
                *count -= 1;
                if *count == 0 {
                    tx.counts.remove(table);
                }
            }
        }
    }

    async fn handle(&mut self, lsn: Lsn, message: Message) -> Result<(), PgError> {
        match message {
            Message::Begin {
                final_lsn,
                commit_time,
                xid,
            } => {
                let skip = self.rule.skip_transaction(final_lsn);
                self.tx = Some(Transaction {
                    xid,
                    commit_lsn: final_lsn,
                    commit_us: commit_time + PG_EPOCH_OFFSET_US,
                    skip,
                    total: 0,
                    counts: BTreeMap::new(),
                    last_change: 0,
                });
                if !skip && self.settings.transaction_metadata {
                    self.transaction_event("BEGIN", None);
                }
            }
            Message::Commit {
                commit_lsn,
                end_lsn,
                commit_time,
            } => {
                let tx = self.tx.take();
                if let Some(tx) = &tx
                    && !tx.skip
                {
                    if self.settings.transaction_metadata {
                        let counts: Vec<(String, i64)> =
                            tx.counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
                        self.tx_end(tx, &counts);
                    }
                    self.pending_position = StreamPosition {
                        lsn: end_lsn,
                        partial: None,
                        tx_id: tx.xid as i64,
                        ts_usec: commit_time + PG_EPOCH_OFFSET_US,
                    };
                } else {
                    self.pending_position.lsn = self.pending_position.lsn.max(end_lsn);
                }
                self.last_commit_lsn = Some(commit_lsn);
                if self
                    .rule
                    .partial
                    .is_some_and(|p| p.lsn_commit == commit_lsn)
                {
                    self.rule.partial = None;
                }
            }
            Message::Relation(relation) => {
                let id = format!("{}.{}", relation.schema, relation.table);
                // A table created after the start is captured when the table lists keep it.
                let captured = self.captured.contains(&id)
                    || (self.settings.lists_choose_tables() && self.settings.lists_keep(&id));
                let table = if captured {
                    // Nullability and keys from the catalog, once per schema change.
                    Some(self.catalog.table(&relation).await?)
                } else {
                    None
                };
                self.relations.insert(relation.id, table);
            }
            Message::Insert { relation, new } => {
                self.change(lsn, relation, Op::Create, None, Some(new))?
            }
            Message::Update { relation, old, new } => match old {
                // The key changed: Debezium's delete of the old key, then a create.
                Some((b'K', old)) => {
                    self.change(lsn, relation, Op::Delete, Some(old), None)?;
                    self.change(lsn, relation, Op::Create, None, Some(new))?;
                }
                Some((_, old)) => self.change(lsn, relation, Op::Update, Some(old), Some(new))?,
                None => self.change(lsn, relation, Op::Update, None, Some(new))?,
            },
            Message::Delete {
                relation,
                old: (_, old),
            } => self.change(lsn, relation, Op::Delete, Some(old), None)?,
            Message::Truncate { relations, .. } => {
                if self.settings.truncates && !self.skipped(lsn) {
                    for relation in relations {
                        let Some(Some(table)) = self.relations.get(&relation).cloned() else {
                            continue;
                        };
                        let block = self.transaction_block(&table.id());
                        let source = self.source(lsn);
                        let value = truncate_value(
                            &table,
                            &source,
                            block.as_ref(),
                            (self.clock)(),
                            &self.settings.events,
                        );
                        self.pending.push(OutRecord {
                            topic: table.topic(&self.settings.events),
                            key: None,
                            value: Some(value),
                            headers: Vec::new(),
                        });
                    }
                    self.mark(lsn);
                }
            }
            Message::Logical {
                transactional,
                lsn: at,
                prefix,
                content,
            } => {
                if !(transactional && self.skipped(at)) {
                    let source = self.source(at);
                    let (k, v) = message_event(
                        &self.settings.events,
                        &prefix,
                        &content,
                        &source,
                        (self.clock)(),
                    );
                    self.pending.push(OutRecord {
                        topic: format!("{}.message", self.settings.events.prefix),
                        key: Some(k),
                        value: Some(v),
                        headers: Vec::new(),
                    });
                    if transactional {
                        self.mark(at);
                    }
                }
            }
            Message::Type | Message::Origin => {}
            Message::StreamStart { .. }
            | Message::StreamStop
            | Message::StreamCommit { .. }
            | Message::StreamAbort { .. } => return Err(not_streaming()),
        }
        Ok(())
    }

    /// Whether the change at `lsn` of the current transaction was published before.
    fn skipped(&self, lsn: Lsn) -> bool {
        match &self.tx {
            Some(tx) => tx.skip || self.rule.skip_change(tx.commit_lsn, lsn),
            None => false,
        }
    }

    fn mark(&mut self, lsn: Lsn) {
        if let Some(tx) = self.tx.as_mut() {
            tx.last_change = lsn;
        }
    }

    fn change(
        &mut self,
        lsn: Lsn,
        relation: u32,
        op: Op,
        before: Option<Vec<Datum>>,
        after: Option<Vec<Datum>>,
    ) -> Result<(), PgError> {
        let table = match self.relations.get(&relation) {
            Some(Some(table)) => table.clone(),
            Some(None) => return Ok(()),
            None => return Err(PgError::UnknownRelation(relation)),
        };
        if self.skipped(lsn) {
            return Ok(());
        }
        let block = self.transaction_block(&table.id());
        let source = self.source(lsn);
        let events = &self.settings.events;
        let change = Change {
            op,
            before: before.as_deref(),
            after: after.as_deref(),
            source,
            transaction: block.as_ref(),
            now_us: (self.clock)(),
        };
        let row = after.as_deref().or(before.as_deref()).unwrap_or(&[]);
        let mapped = key(&table, row, events, &source)
            .and_then(|record_key| Ok((record_key, value(&table, &change, events)?)));
        let (record_key, record_value) = match mapped {
            Ok(mapped) => mapped,
            Err(error) => {
                self.settings.on_event_failure.handle(error)?;
                self.progress.add_events_skipped(1);
                // Not an event: the transaction's counts leave it out.
                self.forget_transaction_event(&table.id());
                self.mark(lsn);
                return Ok(());
            }
        };
        let topic = table.topic(events);
        self.pending.push(OutRecord {
            topic: topic.clone(),
            key: record_key.clone(),
            value: Some(record_value),
            headers: Vec::new(),
        });
        if op == Op::Delete && self.settings.tombstones {
            self.pending.push(OutRecord {
                topic,
                key: record_key,
                value: None,
                headers: Vec::new(),
            });
        }
        self.mark(lsn);
        Ok(())
    }

    fn transaction_event(&mut self, status: &str, counts: Option<&[(String, i64)]>) {
        let Some(tx) = &self.tx else { return };
        let id = format!("{}:{}", tx.xid, tx.commit_lsn);
        let (k, v) = transaction_event(
            &self.settings.events,
            status,
            &id,
            counts,
            tx.commit_us / 1_000,
        );
        self.pending.push(OutRecord {
            topic: format!("{}.transaction", self.settings.events.prefix),
            key: Some(k),
            value: Some(v),
            headers: Vec::new(),
        });
    }

    fn tx_end(&mut self, tx: &Transaction, counts: &[(String, i64)]) {
        let id = format!("{}:{}", tx.xid, tx.commit_lsn);
        let (k, v) = transaction_event(
            &self.settings.events,
            "END",
            &id,
            Some(counts),
            tx.commit_us / 1_000,
        );
        self.pending.push(OutRecord {
            topic: format!("{}.transaction", self.settings.events.prefix),
            key: Some(k),
            value: Some(v),
            headers: Vec::new(),
        });
    }
}

/// A protocol 2 message on a stream started with protocol 1, or out of place.
fn not_streaming() -> PgError {
    PgError::Decode(super::pgoutput::DecodeError(
        "a streaming message (protocol 2) where none was asked for or expected".into(),
    ))
}
