//! Runs a plugin's [`PluginWorker`]s on OS threads of their own.
//!
//! Plugin calls are synchronous CPU work. Giving each plugin its own threads means a
//! plugin that loops until its deadline, or is just slow, occupies only its own threads:
//! other plugins and the async I/O runtime keep going. The pipeline talks to the threads
//! over a channel and awaits the reply. A plugin has one worker (instance, thread) per
//! consumer of its lane, so batches of different partitions run in parallel; and with a
//! `parallelism` of N, N such pools, each batch divided by key among them: a key's events
//! always go to the same pool (with one consumer, the same instance), one batch after the
//! other, so state a plugin keeps per key stays whole and in order. The outcomes are put
//! back in the batch's order.

use std::sync::Arc;

use sluice_core::record::key_hash;
use tokio::sync::{mpsc, oneshot};

use super::RuntimeError;
use super::bindings::ChangeEvent;
use super::plugin::LoadedPlugin;
use super::worker::{Outcome, PluginWorker};

/// Instantiates `loaded` `workers × parallelism` times (each calls `init`) and starts a
/// thread per instance: `parallelism` pools of `workers` threads, each batch divided by
/// key among the pools.
pub fn start_plugin(
    loaded: &Arc<LoadedPlugin>,
    workers: usize,
    parallelism: usize,
) -> Result<PluginThread, RuntimeError> {
    // Reserved before any instance starts: a plugin that does not fit is refused before
    // its `init` runs.
    let memory = loaded.reserve_memory(parallelism.max(1) * workers.max(1))?;
    let pools = (0..parallelism.max(1))
        .map(|_| {
            (0..workers.max(1))
                .map(|_| {
                    let worker = PluginWorker::new(loaded.instantiate()?);
                    Ok(worker.holding(memory.clone()))
                })
                .collect::<Result<Vec<_>, RuntimeError>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut thread = PluginThread::spawn_pools(pools).map_err(|source| RuntimeError::Thread {
        plugin: loaded.name().to_owned(),
        source,
    })?;
    thread.memory_bytes = memory.as_ref().map(|reservation| reservation.bytes());
    Ok(thread)
}

struct Job {
    events: Arc<Vec<ChangeEvent>>,
    reply: oneshot::Sender<Vec<Outcome>>,
}

/// A share of a batch for one pool: the pool, the indices of its events in the batch
/// (`None`: all of them, in order) and those events.
struct Share {
    pool: usize,
    indices: Option<Vec<usize>>,
    events: Arc<Vec<ChangeEvent>>,
}

/// Divides `events` by key among `pools` pools (keyless events by position): a key's
/// events always go to the same pool, however small the batch. A share holding the
/// batch itself when there is one pool, or the batch's keys all belong to one.
fn divide(events: Arc<Vec<ChangeEvent>>, pools: usize) -> Vec<Share> {
    if pools < 2 {
        return vec![Share {
            pool: 0,
            indices: None,
            events,
        }];
    }
    let mut indices: Vec<Vec<usize>> = vec![Vec::new(); pools];
    for (index, event) in events.iter().enumerate() {
        let pool = match &event.key {
            Some(key) => key_hash(Some(key)) % pools as u64,
            None => index as u64 % pools as u64,
        };
        indices[pool as usize].push(index);
    }
    if let Some(pool) = indices.iter().position(|share| share.len() == events.len()) {
        // One key (or keys of one pool only) in the whole batch.
        return vec![Share {
            pool,
            indices: None,
            events,
        }];
    }
    indices
        .into_iter()
        .enumerate()
        .filter(|(_, share)| !share.is_empty())
        .map(|(pool, share)| Share {
            pool,
            events: Arc::new(share.iter().map(|&i| events[i].clone()).collect()),
            indices: Some(share),
        })
        .collect()
}

/// Handle to a plugin's thread. Dropping it stops the thread after its current batch.
#[derive(Debug)]
pub struct PluginThread {
    plugin: Arc<LoadedPlugin>,
    /// One queue per pool of threads; each batch is divided by key among them.
    pools: Vec<mpsc::Sender<Job>>,
    /// What the workers hold of the plugin memory budget, when [`start_plugin`]
    /// reserved it.
    memory_bytes: Option<u64>,
}

/// The plugin's thread is gone (it panicked, which the host never does on purpose).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the worker thread of plugin {0} has stopped")]
pub struct ThreadGone(pub String);

impl PluginThread {
    /// Starts a thread that owns `worker`.
    pub fn spawn(worker: PluginWorker) -> std::io::Result<Self> {
        Self::spawn_pool(vec![worker])
    }

    /// Starts a thread per worker (instances of one plugin version); each batch runs on
    /// whichever thread is free.
    ///
    /// # Panics
    /// If `workers` is empty.
    pub fn spawn_pool(workers: Vec<PluginWorker>) -> std::io::Result<Self> {
        Self::spawn_pools(vec![workers])
    }

    /// Starts a thread per worker of each pool; each batch is divided by key among the
    /// pools (see the module's documentation), each share runs on whichever thread of
    /// its pool is free.
    ///
    /// # Panics
    /// If there is no pool or a pool is empty.
    pub fn spawn_pools(pools: Vec<Vec<PluginWorker>>) -> std::io::Result<Self> {
        let plugin = Arc::clone(
            pools
                .first()
                .and_then(|pool| pool.first())
                .expect("at least one worker")
                .plugin(),
        );
        let mut senders = Vec::with_capacity(pools.len());
        for (pool_index, workers) in pools.into_iter().enumerate() {
            assert!(!workers.is_empty(), "at least one worker per pool");
            // Two batches queued per worker: a pipeline hands over its next batch while
            // the thread still works on the current one ([`PluginThread::try_reserve`]),
            // so the thread goes from one to the next without waiting for the pipeline to
            // take the first one's outcomes. More would only hold memory.
            let (jobs, queue) = mpsc::channel::<Job>(QUEUED_PER_WORKER * workers.len());
            let queue = Arc::new(std::sync::Mutex::new(queue));
            for (index, worker) in workers.into_iter().enumerate() {
                let queue = Arc::clone(&queue);
                std::thread::Builder::new()
                    .name(format!("plugin-{}-{pool_index}.{index}", plugin.name()))
                    .spawn(move || {
                        let mut worker = worker;
                        loop {
                            // One idle thread waits on the queue at a time; the others
                            // wait for the lock. A poisoned lock means another worker
                            // thread panicked while waiting, which cannot corrupt a
                            // receiver.
                            let job = queue
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .blocking_recv();
                            let Some(job) = job else { break };
                            let outcomes = worker.transform(&job.events);
                            let _ = job.reply.send(outcomes);
                        }
                    })?;
            }
            senders.push(jobs);
        }
        Ok(Self {
            plugin,
            pools: senders,
            memory_bytes: None,
        })
    }

    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// What this version's workers hold of the plugin memory budget (its cap times its
    /// instances), when [`start_plugin`] reserved it.
    pub fn memory_bytes(&self) -> Option<u64> {
        self.memory_bytes
    }

    /// How many pools each batch is divided among (the plugin's `parallelism`).
    pub fn parallelism(&self) -> usize {
        self.pools.len()
    }

    /// Runs one batch on the plugin's thread.
    pub async fn transform(
        &self,
        events: Arc<Vec<ChangeEvent>>,
    ) -> Result<Vec<Outcome>, ThreadGone> {
        self.submit(events).await?.outcomes().await
    }

    /// Hands a batch to the plugin's threads, waiting for room in their queues; the
    /// outcomes come through the returned [`Submitted`]. Batches start in the order
    /// they are handed over.
    pub async fn submit(&self, events: Arc<Vec<ChangeEvent>>) -> Result<Submitted, ThreadGone> {
        let total = events.len();
        let mut parts = Vec::new();
        for share in divide(events, self.pools.len()) {
            let (reply, response) = oneshot::channel();
            self.pools[share.pool]
                .send(Job {
                    events: share.events,
                    reply,
                })
                .await
                .map_err(|_| self.gone())?;
            parts.push((share.indices, response));
        }
        Ok(Submitted {
            parts,
            total,
            plugin: self.plugin.name().to_owned(),
        })
    }

    /// Reserves a place in each of the plugin's queues (one per pool a batch may be
    /// divided among) if there is one in each now, without waiting: a batch handed over
    /// through them ([`QueueSlot::submit`]) is queued at once. Reserving first lets a
    /// caller with several plugins hand a batch to all or none of them.
    pub fn try_reserve(&self) -> Option<QueueSlot<'_>> {
        let permits = self
            .pools
            .iter()
            .map(|jobs| jobs.try_reserve().ok().map(Some))
            .collect::<Option<Vec<_>>>()?;
        Some(QueueSlot {
            permits,
            plugin: self.plugin.name(),
        })
    }

    fn gone(&self) -> ThreadGone {
        ThreadGone(self.plugin.name().to_owned())
    }
}

/// How many batches wait in a plugin's queue per worker thread (see
/// [`PluginThread::spawn_pool`]).
const QUEUED_PER_WORKER: usize = 2;

/// Places in a plugin's queues for one batch, reserved by [`PluginThread::try_reserve`];
/// dropping it gives them back.
pub struct QueueSlot<'a> {
    /// One per pool; taken when a share of the batch goes to that pool.
    permits: Vec<Option<mpsc::Permit<'a, Job>>>,
    plugin: &'a str,
}

impl QueueSlot<'_> {
    /// Queues the batch in the reserved places.
    pub fn submit(mut self, events: Arc<Vec<ChangeEvent>>) -> Submitted {
        let total = events.len();
        let parts = divide(events, self.permits.len())
            .into_iter()
            .map(|share| {
                let (reply, response) = oneshot::channel();
                // `divide` makes at most one share per pool, and each pool has a place.
                if let Some(permit) = self.permits[share.pool].take() {
                    permit.send(Job {
                        events: share.events,
                        reply,
                    });
                }
                (share.indices, response)
            })
            .collect();
        Submitted {
            parts,
            total,
            plugin: self.plugin.to_owned(),
        }
    }
}

/// One share of a submitted batch: the indices of its events in the batch (`None`: all
/// of them, in order) and where its outcomes come from.
type SubmittedShare = (Option<Vec<usize>>, oneshot::Receiver<Vec<Outcome>>);

/// A batch handed to a plugin's threads ([`PluginThread::submit`]), in one share or
/// several. Dropping it leaves the batch to run; its outcomes are thrown away.
#[derive(Debug)]
pub struct Submitted {
    parts: Vec<SubmittedShare>,
    total: usize,
    plugin: String,
}

impl Submitted {
    /// The batch's outcomes, one per event in the batch's order, once the threads have
    /// run every share of it.
    pub async fn outcomes(self) -> Result<Vec<Outcome>, ThreadGone> {
        let Submitted {
            parts,
            total,
            plugin,
        } = self;
        // Only a divided batch needs putting back together (a whole one is the only share).
        let mut merged: Vec<Option<Outcome>> = Vec::new();
        for (indices, response) in parts {
            let outcomes = response.await.map_err(|_| ThreadGone(plugin.clone()))?;
            let Some(indices) = indices else {
                return Ok(outcomes);
            };
            if merged.is_empty() {
                merged.resize_with(total, || None);
            }
            for (index, outcome) in indices.into_iter().zip(outcomes) {
                merged[index] = Some(outcome);
            }
        }
        Ok(merged
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or_else(|| {
                    Outcome::Trapped("contract violation: no outcome returned".to_owned())
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debezium::{Decoded, decode};
    use sluice_core::{Origin, RawRecord};

    /// An event of key `{"id":<key>}` (none for `None`) at `offset`.
    fn event(key: Option<i64>, offset: i64) -> ChangeEvent {
        let record = RawRecord {
            timestamp: None,
            key: key.map(|id| format!(r#"{{"id":{id}}}"#).into_bytes()),
            value: Some(br#"{"before":null,"after":{"id":1},"source":{"version":"3.0.0.Final","connector":"sqlserver","name":"server1","ts_ms":1,"snapshot":"false","db":"testDB","sequence":null,"schema":"dbo","table":"customers","change_lsn":null,"commit_lsn":null,"event_serial_no":"1"},"op":"c","ts_ms":2,"transaction":null}"#.to_vec()),
            headers: Vec::new(),
            origin: Origin {
                topic: "t".into(),
                partition: 0,
                offset,
            },
            unreadable: None,
        };
        match decode(record).expect("decodes") {
            Decoded::Event(event) => event,
            Decoded::Tombstone => panic!("an event"),
        }
    }

    fn batch(keys: &[Option<i64>]) -> Arc<Vec<ChangeEvent>> {
        Arc::new(
            keys.iter()
                .enumerate()
                .map(|(offset, key)| event(*key, offset as i64))
                .collect(),
        )
    }

    /// The pool each event of `batch` went to, checking that every event went to exactly
    /// one, as itself, in order within its share.
    fn pools_of(batch: &Arc<Vec<ChangeEvent>>, pools: usize) -> Vec<usize> {
        let mut pool_of = vec![None; batch.len()];
        for share in divide(Arc::clone(batch), pools) {
            assert!(share.pool < pools);
            let indices = share.indices.unwrap_or_else(|| (0..batch.len()).collect());
            assert!(indices.windows(2).all(|w| w[0] < w[1]), "in order");
            assert_eq!(indices.len(), share.events.len());
            for (index, event) in indices.iter().zip(share.events.iter()) {
                assert_eq!(event.origin.offset, batch[*index].origin.offset);
                assert_eq!(pool_of[*index].replace(share.pool), None, "once");
            }
        }
        pool_of
            .into_iter()
            .map(|p| p.expect("every event"))
            .collect()
    }

    #[test]
    fn a_key_always_goes_to_the_same_pool() {
        let keys: Vec<Option<i64>> = (0..40).map(|n| Some(n % 7)).collect();
        let first = pools_of(&batch(&keys), 3);
        let reversed: Vec<Option<i64>> = keys.iter().rev().copied().collect();
        let second = pools_of(&batch(&reversed), 3);
        for (n, key) in keys.iter().enumerate() {
            assert_eq!(first[n], second[keys.len() - 1 - n], "key {key:?}");
            assert_eq!(
                first[n],
                (key_hash(Some(
                    format!(r#"{{"id":{}}}"#, key.expect("key")).as_bytes()
                )) % 3) as usize
            );
        }
        // Seven keys over three pools use more than one.
        assert!(first.iter().any(|&p| p != first[0]));
    }

    #[test]
    fn keyless_events_are_spread_by_position_and_small_batches_are_divided_too() {
        assert_eq!(
            pools_of(&batch(&[None, None, None, None, None]), 2),
            [0, 1, 0, 1, 0]
        );
        // A batch of two keys is divided like a large one.
        let two = pools_of(&batch(&[Some(1), Some(2)]), 4);
        let large: Vec<Option<i64>> = (0..50).map(|n| Some(n % 2 + 1)).collect();
        assert_eq!(two, pools_of(&batch(&large), 4)[..2]);
    }

    #[test]
    fn one_pool_or_one_key_keeps_the_batch_whole() {
        let events = batch(&[Some(1), Some(2), None]);
        let shares = divide(Arc::clone(&events), 1);
        assert_eq!(shares.len(), 1);
        assert!(shares[0].indices.is_none() && Arc::ptr_eq(&shares[0].events, &events));

        let same = batch(&[Some(5); 9]);
        let shares = divide(Arc::clone(&same), 4);
        assert_eq!(shares.len(), 1);
        assert_eq!(
            shares[0].pool,
            (key_hash(Some(br#"{"id":5}"#)) % 4) as usize
        );
        assert!(shares[0].indices.is_none() && Arc::ptr_eq(&shares[0].events, &same));

        let empty = divide(Arc::new(Vec::new()), 3);
        assert_eq!(empty.len(), 1);
        assert!(empty[0].events.is_empty());
    }
}
