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
//! A lane that hits a fatal error (its sink refuses a batch for good, its source or its
//! plugin thread fails) stops **alone**: the error is logged with the lane's name, the
//! lane is reported by `/ready` and the `sluice_lane_failed` metric, and every other
//! lane keeps running. Its position stays at its last committed batch, so nothing is
//! lost; deploying a new version of its plugin starts it again from there. The run ends
//! with that error (exit status 1) once no lane is left running, or at shutdown.
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

use crate::manifest::Role;
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
    /// The route it was started with (`None` for the shared lane).
    route: Option<Arc<crate::pipeline::Route>>,
}

/// Runs the routes of `table` in lanes (per plugin, or one shared lane) until every lane's
/// source is exhausted or has failed, or `shutdown` resolves; then stops every lane after
/// its in-flight batch and returns the sum of their counters, or the first lane's error.
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
        task_lanes: std::collections::HashMap::new(),
        failed: BTreeMap::new(),
        first_failure: None,
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
            Some(done) = supervisor.tasks.join_next_with_id() => supervisor.finished(done),
        }
    }
    supervisor.stop_all().await;
    match supervisor.first_failure.take() {
        Some(e) => Err(e),
        None => Ok(supervisor.total),
    }
}

/// A receiver that never changes (its sender is gone).
fn closed_table(table: &watch::Receiver<Routes>) -> watch::Receiver<Routes> {
    let (_, receiver) = watch::channel(table.borrow().clone());
    receiver
}

type LaneResult = Result<PipelineStats, LaneError>;

struct Supervisor<E: Endpoints> {
    endpoints: Arc<E>,
    settings: PipelineSettings,
    telemetry: Option<Arc<Telemetry>>,
    lanes: BTreeMap<String, Lane>,
    tasks: JoinSet<LaneResult>,
    next_id: u64,
    total: PipelineStats,
    started_any: bool,
    /// The lane (name, id) each task runs, so even a task that panicked is booked to it.
    task_lanes: std::collections::HashMap<tokio::task::Id, (String, u64)>,
    /// Lanes stopped by an error, with the route they ran: not started again until
    /// their plugin changes.
    failed: BTreeMap<String, Option<Arc<crate::pipeline::Route>>>,
    first_failure: Option<LaneError>,
}

impl<E: Endpoints> Supervisor<E> {
    /// Starts, updates and stops lanes so there is exactly one per serving plugin of
    /// `routes`, running that plugin and the candidates (shadow, canary) beside it.
    fn reconcile(&mut self, routes: &Routes) {
        let serving_names: Vec<&str> = routes
            .iter()
            .filter(|route| route.role == Role::Serving)
            .map(|route| route.name())
            .collect();
        for route in routes.iter() {
            if let Some(of) = route.role.candidate_of()
                && !serving_names.contains(&of)
            {
                tracing::warn!(plugin = %route.name(), of, "no plugin of that name serves: this candidate version does not run");
            }
        }
        for route in routes.iter().filter(|route| route.role == Role::Serving) {
            let name = route.name().to_owned();
            if let Some(Some(failed)) = self.failed.get(&name) {
                if Arc::ptr_eq(failed, route) {
                    continue;
                }
                tracing::info!(lane = %name, "a new version of the failed lane's plugin: starting it again");
                self.failed.remove(&name);
                // Its other consumers may still be stopping: they finish on their own
                // (booked by id), and the new version gets a lane of its own.
                self.lanes.remove(&name);
                if let Some(telemetry) = &self.telemetry {
                    telemetry.lane_restarted(&name);
                }
            }
            let mut lane_routes = vec![Arc::clone(route)];
            lane_routes.extend(
                routes
                    .iter()
                    .filter(|candidate| candidate.role.candidate_of() == Some(name.as_str()))
                    .cloned(),
            );
            let lane_routes: Routes = Arc::new(lane_routes);
            match self.lanes.get(&name) {
                Some(lane) => {
                    // Swapped in by the lane at its next batch boundary.
                    lane.routes.send_if_modified(|current| {
                        let same = current.len() == lane_routes.len()
                            && current
                                .iter()
                                .zip(lane_routes.iter())
                                .all(|(running, wanted)| Arc::ptr_eq(running, wanted));
                        if !same {
                            *current = Arc::clone(&lane_routes);
                        }
                        !same
                    });
                }
                None => {
                    let (sender, receiver) = watch::channel(lane_routes);
                    self.spawn(name, Some((sender, Arc::clone(route))), receiver);
                }
            }
        }
        let removed: Vec<String> = self
            .lanes
            .keys()
            .filter(|name| !serving_names.contains(&name.as_str()))
            .cloned()
            .collect();
        self.failed
            .retain(|name, _| serving_names.contains(&name.as_str()));
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
        sender: Option<(watch::Sender<Routes>, Arc<crate::pipeline::Route>)>,
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
            let task = self.tasks.spawn(async move {
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
            });
            self.task_lanes.insert(task.id(), (name.clone(), id));
        }
        // The shared lane's routes come straight from the reloader's table.
        let (routes, route) = match sender {
            Some((sender, route)) => (sender, Some(route)),
            None => (watch::channel(Arc::new(Vec::new())).0, None),
        };
        self.lanes.insert(
            name,
            Lane {
                id,
                routes,
                stop,
                running: consumers,
                route,
            },
        );
    }

    /// Books a finished consumer of a lane. A lane that failed stops alone (its other
    /// consumers too): logged, reported to telemetry, and kept as the run's error.
    fn finished(&mut self, done: Result<(tokio::task::Id, LaneResult), tokio::task::JoinError>) {
        let (task, result) = match done {
            Ok((task, result)) => (task, result),
            Err(e) => (
                e.id(),
                Err(LaneError::Task {
                    lane: String::new(),
                    reason: e.to_string(),
                }),
            ),
        };
        let Some((name, id)) = self.task_lanes.remove(&task) else {
            return;
        };
        let current = self.lanes.get_mut(&name).filter(|lane| lane.id == id);
        let route = current.as_ref().and_then(|lane| lane.route.clone());
        if let Some(lane) = current {
            lane.running -= 1;
            if lane.running == 0 {
                self.lanes.remove(&name);
            }
        }
        match result {
            Ok(stats) => {
                stats.log(&name, "lane finished");
                add(&mut self.total, &stats);
            }
            Err(error) => {
                let error = match error {
                    LaneError::Task { reason, .. } => LaneError::Task {
                        lane: name.clone(),
                        reason,
                    },
                    other => other,
                };
                tracing::error!(lane = %name, error = %error, "lane stopped by an error; the other lanes keep running");
                if let Some(lane) = self.lanes.get(&name).filter(|lane| lane.id == id) {
                    let _ = lane.stop.send(true);
                }
                if let Some(telemetry) = &self.telemetry {
                    telemetry.lane_failed(&name, &error.to_string());
                }
                self.failed.insert(name, route);
                self.first_failure.get_or_insert(error);
            }
        }
    }

    /// Asks every lane to stop after its batch in flight and waits for all of them.
    async fn stop_all(&mut self) {
        for lane in self.lanes.values() {
            let _ = lane.stop.send(true);
        }
        while let Some(done) = self.tasks.join_next_with_id().await {
            self.finished(done);
        }
        self.lanes.clear();
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
