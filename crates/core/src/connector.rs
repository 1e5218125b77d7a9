//! Connector kinds: what a kind of source or sink (file, Kafka, HTTP, ...) provides so
//! the host can configure it and open it for each lane, without knowing what it is.
//!
//! A kind is its validated configuration type. It names the table it is written as
//! ([`SourceKind::Raw`], `[source] type = "..."`, unknown fields refused), turns that into
//! itself with every problem collected, and opens the endpoint of one lane. The host
//! registers each kind with one line (`host/src/connectors.rs`); nothing else in the host
//! names a kind.
//!
//! Exactly-once is the endpoints' business: a source kind that can commit positions in
//! a sink's transaction hands the lane's sink a [`CommitHandle`] (for Kafka, the lane
//! consumer's group), and a transactional sink kind commits the batch's positions with
//! its records. The pipeline only sees [`crate::sink::Positions`].

use std::any::Any;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::settings::Problems;
use crate::sink::{Sink, SinkError};
use crate::source::{Source, SourceError};
use crate::telemetry::Telemetry;

/// The name of the lane every plugin shares (`pipeline.isolation = "shared"`); other
/// lanes are named after their plugin.
pub const SHARED_LANE: &str = "*";

/// When source positions are committed: the lanes' endpoints decide how (the pipeline
/// itself only reacts to what the sink did, see [`crate::sink::Positions`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Delivery {
    /// After the sink acknowledged the batch's records: a crash between the two repeats
    /// the batch (duplicates possible, loss not).
    #[default]
    AtLeastOnce,
    /// In the same transaction as the batch's records (a source and a sink that are both
    /// [`SourceKind::transactional`] / [`SinkKind::transactional`]): a `read_committed`
    /// consumer sees every event's output exactly once.
    ExactlyOnce,
}

/// What a transactional sink needs from its lane's source to commit the source's
/// positions itself: opaque to everyone but the two kinds that agree on it.
pub type CommitHandle = Arc<dyn Any + Send + Sync>;

/// What every sink of a run shares: how positions are committed, this process's name
/// among its peers (part of transactional ids), and the telemetry to report to.
#[derive(Clone)]
pub struct SinkRun {
    pub delivery: Delivery,
    pub instance: String,
    pub telemetry: Arc<Telemetry>,
}

/// The name of this machine: the default instance of a run ([`SinkRun::instance`]).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "sluice".to_owned())
}

/// A kind of source: its validated configuration.
pub trait SourceKind: Sized {
    /// The `[source]` table as written (`#[serde(deny_unknown_fields)]`).
    type Raw: DeserializeOwned;
    /// The source one consumer of a lane reads.
    type Source: Source + 'static;

    /// The validated configuration, relative paths resolved against `base`; every
    /// problem added to `problems` with its path (`source.topics`).
    fn validate(raw: Self::Raw, base: &Path, problems: &mut Problems) -> Self;

    /// Consumers per lane: sources of one consumer group, read in parallel.
    fn consumers(&self) -> usize {
        1
    }

    /// Whether the input can be read only once (standard input): then every plugin
    /// shares one lane.
    fn read_once(&self) -> bool {
        false
    }

    /// Whether a transactional sink can commit this source's positions
    /// ([`Self::commit_handle`]).
    fn transactional(&self) -> bool {
        false
    }

    /// Opens the source of one consumer of lane `lane` (a plugin name or
    /// [`SHARED_LANE`]), reporting to `telemetry`.
    fn open(
        &self,
        lane: &str,
        telemetry: &Arc<Telemetry>,
    ) -> impl Future<Output = Result<Self::Source, SourceError>> + Send;

    /// What a transactional sink needs to commit `source`'s positions.
    fn commit_handle(source: &Self::Source) -> Option<CommitHandle> {
        let _ = source;
        None
    }
}

/// A kind of sink: its validated configuration.
pub trait SinkKind: Sized {
    /// The `[sink]` table as written (`#[serde(deny_unknown_fields)]`).
    type Raw: DeserializeOwned;
    /// What the lanes of a run share (a connection pool, a producer, an open file).
    type Shared: Send + Sync + 'static;
    /// The sink one consumer of a lane writes to.
    type Sink: Sink + 'static;

    /// The validated configuration (see [`SourceKind::validate`]).
    fn validate(raw: Self::Raw, base: &Path, problems: &mut Problems) -> Self;

    /// Whether it can commit a transactional source's positions with its records.
    fn transactional(&self) -> bool {
        false
    }

    /// Starts what the lanes share, once per run.
    fn start(&self, run: &SinkRun) -> impl Future<Output = Result<Self::Shared, SinkError>> + Send;

    /// The sink of one consumer of lane `lane`; `commit` is its source's
    /// [`SourceKind::commit_handle`].
    fn open(
        shared: &Self::Shared,
        run: &SinkRun,
        lane: &str,
        commit: Option<CommitHandle>,
    ) -> impl Future<Output = Result<Self::Sink, SinkError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_name_is_never_empty() {
        assert!(!host_name().is_empty());
    }
}
