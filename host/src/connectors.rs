//! The source and sink kinds `sluice run` knows, one line each.
//!
//! A kind lives in its own crate or module and implements
//! [`SourceKind`] or [`SinkKind`] (`sluice_core::connector`): its `[source]`/`[sink]`
//! table, its validation, how its lanes open it. The `connectors!` invocation at the end
//! of this file registers it under its `type` name; from that one line come the types the
//! configuration and the lanes use:
//!
//! - [`SourceConfig`] / [`SinkConfig`]: the validated configuration, one variant per kind,
//!   chosen by `type` (`#[serde(tag = "type")]` over each kind's raw table, so unknown
//!   fields are refused per kind);
//! - `AnySource` / `AnySink`: a lane's endpoints, forwarding to the kind's;
//! - `SharedSink`: what the lanes of a run share (a producer, a connection pool, a file).
//!
//! Nothing else in the host names a kind, except `[capture]`, which writes to Kafka and
//! so needs a Kafka source to read what it captured ([`crate::config`]).

use std::path::Path;
use std::sync::Arc;

use sluice_core::connector::{CommitHandle, SinkKind, SinkRun, SourceKind};
use sluice_core::settings::Problems;
use sluice_core::sink::{Positions, Sink, SinkError};
use sluice_core::source::{Source, SourceError};
use sluice_core::telemetry::Telemetry;
use sluice_core::{Origin, OutputRecord, RawRecord};

use sluice_http::HttpSinkConfig;
use sluice_kafka::connector::KafkaSinkSettings;
use sluice_kafka::source::KafkaSourceSettings;
use sluice_pipeline::sink::file::FileSinkSettings;
use sluice_pipeline::source::file::FileSourceSettings;

/// Generates the configuration and endpoint enums from one `Variant = "type": Kind` line
/// per kind (see the module docs).
macro_rules! connectors {
    (
        sources { $($source:ident = $source_type:literal : $source_kind:ty),+ $(,)? }
        sinks { $($sink:ident = $sink_type:literal : $sink_kind:ty),+ $(,)? }
    ) => {
        /// `[source]` as written: the table of the kind its `type` names.
        #[derive(Debug, serde::Deserialize)]
        #[serde(tag = "type")]
        pub(crate) enum RawSource {
            $( #[serde(rename = $source_type)] $source(<$source_kind as SourceKind>::Raw), )+
        }

        /// Where events come from: the validated `[source]`, by kind.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum SourceConfig {
            $( $source($source_kind), )+
        }

        impl SourceConfig {
            /// Validates `raw` with its kind's rules.
            pub(crate) fn validate(raw: RawSource, base: &Path, problems: &mut Problems) -> Self {
                match raw {
                    $( RawSource::$source(raw) => {
                        Self::$source(<$source_kind as SourceKind>::validate(raw, base, problems))
                    } )+
                }
            }

            /// Consumers per lane ([`SourceKind::consumers`]).
            pub fn consumers(&self) -> usize {
                match self { $( Self::$source(kind) => kind.consumers(), )+ }
            }

            /// Whether the input can be read only once ([`SourceKind::read_once`]).
            pub fn read_once(&self) -> bool {
                match self { $( Self::$source(kind) => kind.read_once(), )+ }
            }

            /// Whether a transactional sink can commit its positions.
            pub fn transactional(&self) -> bool {
                match self { $( Self::$source(kind) => kind.transactional(), )+ }
            }

            /// The source of one consumer of lane `lane`.
            pub(crate) async fn open(
                &self,
                lane: &str,
                telemetry: &Arc<Telemetry>,
            ) -> Result<AnySource, SourceError> {
                Ok(match self {
                    $( Self::$source(kind) => AnySource::$source(kind.open(lane, telemetry).await?), )+
                })
            }
        }

        /// A lane's source, whichever kind it is.
        pub(crate) enum AnySource {
            $( $source(<$source_kind as SourceKind>::Source), )+
        }

        impl AnySource {
            /// What a transactional sink needs to commit this source's positions.
            pub(crate) fn commit_handle(&self) -> Option<CommitHandle> {
                match self {
                    $( Self::$source(source) => <$source_kind as SourceKind>::commit_handle(source), )+
                }
            }
        }

        impl Source for AnySource {
            async fn next_batch(
                &mut self,
                max: usize,
            ) -> Result<Option<Vec<RawRecord>>, SourceError> {
                match self { $( Self::$source(source) => source.next_batch(max).await, )+ }
            }

            async fn commit(&mut self, last: &[Origin]) -> Result<(), SourceError> {
                match self { $( Self::$source(source) => source.commit(last).await, )+ }
            }

            async fn hold(&mut self) -> Result<(), SourceError> {
                match self { $( Self::$source(source) => source.hold().await, )+ }
            }

            async fn release(&mut self) -> Result<(), SourceError> {
                match self { $( Self::$source(source) => source.release().await, )+ }
            }

            async fn rewind(&mut self, first: &[Origin]) -> Result<(), SourceError> {
                match self { $( Self::$source(source) => source.rewind(first).await, )+ }
            }
        }

        /// `[sink]` as written: the table of the kind its `type` names.
        #[derive(Debug, serde::Deserialize)]
        #[serde(tag = "type")]
        pub(crate) enum RawSink {
            $( #[serde(rename = $sink_type)] $sink(<$sink_kind as SinkKind>::Raw), )+
        }

        /// Where results go: the validated `[sink]`, by kind.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum SinkConfig {
            $( $sink($sink_kind), )+
        }

        impl SinkConfig {
            /// Validates `raw` with its kind's rules.
            pub(crate) fn validate(raw: RawSink, base: &Path, problems: &mut Problems) -> Self {
                match raw {
                    $( RawSink::$sink(raw) => {
                        Self::$sink(<$sink_kind as SinkKind>::validate(raw, base, problems))
                    } )+
                }
            }

            /// Whether it can commit a transactional source's positions.
            pub fn transactional(&self) -> bool {
                match self { $( Self::$sink(kind) => kind.transactional(), )+ }
            }

            /// Starts what the run's lanes share.
            pub(crate) async fn start(&self, run: &SinkRun) -> Result<SharedSink, SinkError> {
                Ok(match self {
                    $( Self::$sink(kind) => SharedSink::$sink(kind.start(run).await?), )+
                })
            }
        }

        /// What the lanes of a run share, whichever kind the sink is.
        pub(crate) enum SharedSink {
            $( $sink(<$sink_kind as SinkKind>::Shared), )+
        }

        impl SharedSink {
            /// The sink of one consumer of lane `lane`, given its source's commit handle.
            pub(crate) async fn open(
                &self,
                run: &SinkRun,
                lane: &str,
                commit: Option<CommitHandle>,
            ) -> Result<AnySink, SinkError> {
                Ok(match self {
                    $( Self::$sink(shared) => AnySink::$sink(
                        <$sink_kind as SinkKind>::open(shared, run, lane, commit).await?,
                    ), )+
                })
            }
        }

        /// A lane's sink, whichever kind it is.
        pub(crate) enum AnySink {
            $( $sink(<$sink_kind as SinkKind>::Sink), )+
        }

        impl Sink for AnySink {
            async fn send(&mut self, records: Vec<OutputRecord>) -> Result<(), SinkError> {
                match self { $( Self::$sink(sink) => sink.send(records).await, )+ }
            }

            async fn send_batch(
                &mut self,
                records: Vec<OutputRecord>,
                positions: &[Origin],
            ) -> Result<Positions, SinkError> {
                match self { $( Self::$sink(sink) => sink.send_batch(records, positions).await, )+ }
            }

            async fn flush(&mut self) -> Result<(), SinkError> {
                match self { $( Self::$sink(sink) => sink.flush().await, )+ }
            }
        }
    };
}

connectors! {
    sources {
        File = "file": FileSourceSettings,
        Kafka = "kafka": KafkaSourceSettings,
    }
    sinks {
        File = "file": FileSinkSettings,
        Kafka = "kafka": KafkaSinkSettings,
        Http = "http": HttpSinkConfig,
    }
}
