//! Runs a [`PluginWorker`] on an OS thread of its own.
//!
//! Plugin calls are synchronous CPU work. Giving each plugin its own thread means a plugin
//! that loops until its deadline, or is just slow, occupies only its own thread: other
//! plugins and the async I/O runtime keep going. The pipeline talks to the thread over a
//! channel and awaits the reply.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::bindings::ChangeEvent;
use super::plugin::LoadedPlugin;
use super::worker::{Outcome, PluginWorker};

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
        let plugin = Arc::clone(worker.plugin());
        // One batch queued behind the one running: the pipeline awaits each batch, so
        // more would only hold memory.
        let (jobs, mut queue) = mpsc::channel::<Job>(1);
        std::thread::Builder::new()
            .name(format!("plugin-{}", plugin.name()))
            .spawn(move || {
                let mut worker = worker;
                while let Some(job) = queue.blocking_recv() {
                    let outcomes = worker.transform(&job.events);
                    let _ = job.reply.send(outcomes);
                }
            })?;
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
        let gone = || ThreadGone(self.plugin.name().to_owned());
        let (reply, response) = oneshot::channel();
        self.jobs
            .send(Job { events, reply })
            .await
            .map_err(|_| gone())?;
        response.await.map_err(|_| gone())
    }
}
