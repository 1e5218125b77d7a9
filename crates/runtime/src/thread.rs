//! Runs a plugin's [`PluginWorker`]s on OS threads of their own.
//!
//! Plugin calls are synchronous CPU work. Giving each plugin its own threads means a
//! plugin that loops until its deadline, or is just slow, occupies only its own threads:
//! other plugins and the async I/O runtime keep going. The pipeline talks to the threads
//! over a channel and awaits the reply. A plugin has one worker (instance, thread) per
//! consumer of its lane, so batches of different partitions run in parallel.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::RuntimeError;
use super::bindings::ChangeEvent;
use super::plugin::LoadedPlugin;
use super::worker::{Outcome, PluginWorker};

/// Instantiates `loaded` `workers` times (each calls `init`) and starts a thread per
/// instance.
pub fn start_plugin(
    loaded: &Arc<LoadedPlugin>,
    workers: usize,
) -> Result<PluginThread, RuntimeError> {
    let workers = (0..workers.max(1))
        .map(|_| loaded.instantiate().map(PluginWorker::new))
        .collect::<Result<Vec<_>, _>>()?;
    PluginThread::spawn_pool(workers).map_err(|source| RuntimeError::Thread {
        plugin: loaded.name().to_owned(),
        source,
    })
}

struct Job {
    events: Arc<Vec<ChangeEvent>>,
    reply: oneshot::Sender<Vec<Outcome>>,
}

/// Handle to a plugin's thread. Dropping it stops the thread after its current batch.
#[derive(Debug)]
pub struct PluginThread {
    plugin: Arc<LoadedPlugin>,
    jobs: mpsc::Sender<Job>,
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
        let plugin = Arc::clone(workers.first().expect("at least one worker").plugin());
        // Two batches queued per worker: a pipeline hands over its next batch while the
        // thread still works on the current one ([`PluginThread::try_submit`]), so the
        // thread goes from one to the next without waiting for the pipeline to take the
        // first one's outcomes. More would only hold memory.
        let (jobs, queue) = mpsc::channel::<Job>(QUEUED_PER_WORKER * workers.len());
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for (index, worker) in workers.into_iter().enumerate() {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("plugin-{}-{index}", plugin.name()))
                .spawn(move || {
                    let mut worker = worker;
                    loop {
                        // One idle thread waits on the queue at a time; the others wait
                        // for the lock. A poisoned lock means another worker thread
                        // panicked while waiting, which cannot corrupt a receiver.
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
        Ok(Self { plugin, jobs })
    }

    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// Runs one batch on the plugin's thread.
    pub async fn transform(
        &self,
        events: Arc<Vec<ChangeEvent>>,
    ) -> Result<Vec<Outcome>, ThreadGone> {
        self.submit(events).await?.outcomes().await
    }

    /// Hands a batch to the plugin's threads, waiting for room in their queue; the
    /// outcomes come through the returned [`Submitted`]. Batches start in the order
    /// they are handed over.
    pub async fn submit(&self, events: Arc<Vec<ChangeEvent>>) -> Result<Submitted, ThreadGone> {
        let (reply, response) = oneshot::channel();
        self.jobs
            .send(Job { events, reply })
            .await
            .map_err(|_| self.gone())?;
        Ok(Submitted {
            response,
            plugin: self.plugin.name().to_owned(),
        })
    }

    /// Reserves a place in the plugin's queue if there is one now, without waiting: a
    /// batch handed over through it ([`QueueSlot::submit`]) is queued at once. Reserving
    /// first lets a caller with several plugins hand a batch to all or none of them.
    pub fn try_reserve(&self) -> Option<QueueSlot<'_>> {
        self.jobs.try_reserve().ok().map(|permit| QueueSlot {
            permit,
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

/// A place in a plugin's queue, reserved by [`PluginThread::try_reserve`]; dropping it
/// gives the place back.
pub struct QueueSlot<'a> {
    permit: mpsc::Permit<'a, Job>,
    plugin: &'a str,
}

impl QueueSlot<'_> {
    /// Queues the batch in the reserved place.
    pub fn submit(self, events: Arc<Vec<ChangeEvent>>) -> Submitted {
        let (reply, response) = oneshot::channel();
        self.permit.send(Job { events, reply });
        Submitted {
            response,
            plugin: self.plugin.to_owned(),
        }
    }
}

/// A batch handed to a plugin's thread ([`PluginThread::submit`]). Dropping it leaves
/// the batch to run; its outcomes are thrown away.
#[derive(Debug)]
pub struct Submitted {
    response: oneshot::Receiver<Vec<Outcome>>,
    plugin: String,
}

impl Submitted {
    /// The batch's outcomes, one per event, once the thread has run it.
    pub async fn outcomes(self) -> Result<Vec<Outcome>, ThreadGone> {
        self.response.await.map_err(|_| ThreadGone(self.plugin))
    }
}
