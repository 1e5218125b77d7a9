//! Lanes: one pipeline per plugin, so one team's plugin cannot slow another's.
//!
//! With [`Isolation::PerPlugin`] (the default) every plugin gets a *lane*: a pipeline of
//! its own over a source and sink of its own. With Kafka a lane is a consumer of its own
//! group (`<group.id>.<plugin>`), so each plugin commits its own offsets, exactly as each
//! Flink job or Kafka Streams application has its own group: a plugin that loops to its
//! CPU deadline on every batch falls behind alone, and every other plugin keeps its pace.
//! With a file source every lane reads the file from the start. A lane may run several
//! consumers ([`Endpoints::consumers`]), each with its own pipeline over a source of the
//! same consumer group, so the group spreads the partitions over them.
//!
//! The supervisor here follows the route table the reloader publishes
//! ([`crate::reload`]): a new plugin starts a lane, a new version of a plugin is handed to
//! its running lane (which swaps it in at its next batch boundary), and a removed plugin's
//! lane finishes its batch, commits and stops. Its consumer group keeps the committed
//! position, so the same plugin deployed again resumes where it stopped, without skipping
//! or repeating an event.
//!
//! [`Isolation::Shared`] runs all plugins in one pipeline over one source (one consumer
//! group): fewer connections and one read of each record, but a slow plugin holds back
//! every other plugin's batch. Standard input can only be read once, so it is always
//! shared.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use sluice_core::sink::Sink;
use sluice_core::source::Source;
use sluice_core::telemetry::Telemetry;

pub use crate::pipeline::SHARED_LANE;
use crate::pipeline::{Pipeline, PipelineError, PipelineSettings, PipelineStats, Routes};

/// How plugins share sources and pipelines (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Isolation {
    /// A pipeline, source and consumer group per plugin.
    #[default]
    PerPlugin,
    /// One pipeline for all plugins.
    Shared,
}

/// Why a lane could not run.
#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    #[error("lane {lane}: opening its source or sink: {reason}")]
    Open { lane: String, reason: String },
    #[error("lane {lane}: {source}")]
    Pipeline {
        lane: String,
        #[source]
        source: PipelineError,
    },
    #[error("lane {lane}: its task failed: {reason}")]
    Task { lane: String, reason: String },
}

/// Opens the source and the sink of a lane.
pub trait Endpoints: Send + Sync + 'static {
    type Source: Source + 'static;
    type Sink: Sink + 'static;

    /// The source and sink for the lane named `lane` (a plugin name, or [`SHARED_LANE`]);
    /// called once per consumer of the lane.
    fn open(
        &self,
        lane: &str,
    ) -> impl Future<Output = Result<(Self::Source, Self::Sink), LaneError>> + Send;

    /// Consumers per lane: pipelines over sources of one consumer group, so partitions
    /// are processed in parallel (each by one consumer, in order).
    fn consumers(&self) -> usize {
        1
    }
}

/// A running lane.
struct Lane {
    id: u64,
    routes: watch::Sender<Routes>,
    stop: watch::Sender<bool>,
    /// Its consumers still running.
    running: usize,
}

/// Runs the routes of `table` in lanes (per plugin, or one shared lane) until every lane's
/// source is exhausted, a lane fails, or `shutdown` resolves; then stops every lane after
/// its in-flight batch and returns the sum of their counters.
pub async fn run<E: Endpoints>(
    endpoints: Arc<E>,
    mut table: watch::Receiver<Routes>,
    isolation: Isolation,
    settings: PipelineSettings,
    telemetry: Option<Arc<Telemetry>>,
    shutdown: impl Future<Output = ()>,
) -> Result<PipelineStats, LaneError> {
    let mut supervisor = Supervisor {
        endpoints,
        settings,
        telemetry,
        lanes: BTreeMap::new(),
        tasks: JoinSet::new(),
        next_id: 0,
        total: PipelineStats::default(),
        started_any: false,
    };
    if isolation == Isolation::Shared {
        // One lane follows the whole table.
        supervisor.spawn(SHARED_LANE.to_owned(), None, table.clone());
        table = closed_table(&table);
    } else {
        let current = table.borrow_and_update().clone();
        supervisor.reconcile(&current);
    }
    let mut table_open = isolation == Isolation::PerPlugin;
    let mut failure = None;
    tokio::pin!(shutdown);
    loop {
        if supervisor.tasks.is_empty() && (supervisor.started_any || !table_open) {
            break;
        }
        tokio::select! {
            () = &mut shutdown => break,
            changed = table.changed(), if table_open => match changed {
                Ok(()) => {
                    let current = table.borrow_and_update().clone();
                    supervisor.reconcile(&current);
                }
                Err(_) => table_open = false,
            },
            Some(done) = supervisor.tasks.join_next() => {
                if let Err(e) = supervisor.finished(done) {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    let stopped = supervisor.stop_all().await;
    match failure.or(stopped.err()) {
        Some(e) => Err(e),
        None => Ok(supervisor.total),
    }
}

/// A receiver that never changes (its sender is gone).
fn closed_table(table: &watch::Receiver<Routes>) -> watch::Receiver<Routes> {
    let (_, receiver) = watch::channel(table.borrow().clone());
    receiver
}

type LaneResult = (String, u64, Result<PipelineStats, LaneError>);

struct Supervisor<E: Endpoints> {
    endpoints: Arc<E>,
    settings: PipelineSettings,
    telemetry: Option<Arc<Telemetry>>,
    lanes: BTreeMap<String, Lane>,
    tasks: JoinSet<LaneResult>,
    next_id: u64,
    total: PipelineStats,
    started_any: bool,
}

impl<E: Endpoints> Supervisor<E> {
    /// Starts, updates and stops lanes so there is exactly one per plugin of `routes`.
    fn reconcile(&mut self, routes: &Routes) {
        for route in routes.iter() {
            let name = route.plugin.plugin().name().to_owned();
            let lane_routes: Routes = Arc::new(vec![Arc::clone(route)]);
            match self.lanes.get(&name) {
                Some(lane) => {
                    // Swapped in by the lane at its next batch boundary.
                    lane.routes.send_if_modified(|current| {
                        let same = current
                            .first()
                            .is_some_and(|running| Arc::ptr_eq(running, route));
                        if !same {
                            *current = Arc::clone(&lane_routes);
                        }
                        !same
                    });
                }
                None => {
                    let (sender, receiver) = watch::channel(lane_routes);
                    self.spawn(name, Some(sender), receiver);
                }
            }
        }
        let removed: Vec<String> = self
            .lanes
            .keys()
            .filter(|name| !routes.iter().any(|r| r.plugin.plugin().name() == *name))
            .cloned()
            .collect();
        for name in removed {
            if let Some(lane) = self.lanes.remove(&name) {
                tracing::info!(lane = %name, "plugin removed: its lane stops after its batch in flight; its committed position is kept");
                let _ = lane.stop.send(true);
            }
        }
    }

    fn spawn(
        &mut self,
        name: String,
        sender: Option<watch::Sender<Routes>>,
        receiver: watch::Receiver<Routes>,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        self.started_any = true;
        let (stop, stopped) = watch::channel(false);
        let consumers = self.endpoints.consumers().max(1);
        tracing::info!(lane = %name, consumers, "lane starting");
        for _ in 0..consumers {
            let endpoints = Arc::clone(&self.endpoints);
            let settings = self.settings.clone();
            let telemetry = self.telemetry.clone();
            let lane_name = name.clone();
            let receiver = receiver.clone();
            let mut stopped = stopped.clone();
            self.tasks.spawn(async move {
                let result = async {
                    let (mut source, mut sink) = endpoints.open(&lane_name).await?;
                    let mut pipeline =
                        Pipeline::with_route_table(receiver, settings).with_lane(&lane_name);
                    if let Some(telemetry) = telemetry {
                        pipeline = pipeline.with_telemetry(telemetry);
                    }
                    pipeline
                        .run(&mut source, &mut sink, async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                        })
                        .await
                        .map_err(|source| LaneError::Pipeline {
                            lane: lane_name.clone(),
                            source,
                        })
                }
                .await;
                (lane_name, id, result)
            });
        }
        // The shared lane's routes come straight from the reloader's table.
        let routes = sender.unwrap_or_else(|| watch::channel(Arc::new(Vec::new())).0);
        self.lanes.insert(
            name,
            Lane {
                id,
                routes,
                stop,
                running: consumers,
            },
        );
    }

    /// Books a finished lane; an error is returned so the run stops.
    fn finished(
        &mut self,
        done: Result<LaneResult, tokio::task::JoinError>,
    ) -> Result<(), LaneError> {
        let (name, id, result) = done.map_err(|e| LaneError::Task {
            lane: "?".to_owned(),
            reason: e.to_string(),
        })?;
        if let Some(lane) = self.lanes.get_mut(&name)
            && lane.id == id
        {
            lane.running -= 1;
            if lane.running == 0 {
                self.lanes.remove(&name);
            }
        }
        let stats = result?;
        tracing::info!(lane = %name, ?stats, "lane finished");
        add(&mut self.total, &stats);
        Ok(())
    }

    /// Asks every lane to stop after its batch in flight and waits for all of them.
    async fn stop_all(&mut self) -> Result<(), LaneError> {
        for lane in self.lanes.values() {
            let _ = lane.stop.send(true);
        }
        let mut first_error = None;
        while let Some(done) = self.tasks.join_next().await {
            if let Err(e) = self.finished(done) {
                tracing::error!(error = %e, "lane failed while stopping");
                first_error.get_or_insert(e);
            }
        }
        self.lanes.clear();
        first_error.map_or(Ok(()), Err)
    }
}

/// Adds `more` to `total`, counter by counter.
fn add(total: &mut PipelineStats, more: &PipelineStats) {
    total.batches += more.batches;
    total.records_in += more.records_in;
    total.tombstones_skipped += more.tombstones_skipped;
    total.unrouted += more.unrouted;
    total.records_out += more.records_out;
    total.malformed += more.malformed;
    total.rejected += more.rejected;
    total.trapped += more.trapped;
    total.output_violations += more.output_violations;
    total.dead_lettered += more.dead_lettered;
    total.transactions_aborted += more.transactions_aborted;
}
