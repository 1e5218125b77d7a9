//! Host-side bindings of the `sluice:transform/transformer` world (`wit/`), private to
//! the runtime: its public API re-exports the event types, and `boundary` converts records.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "transformer",
    additional_derives: [PartialEq, Eq],
});

pub use self::sluice::transform::host::LogLevel;
pub use self::sluice::transform::types::{
    ChangeEvent, EventOutcome, Header, Operation, Origin, OutputRecord, Rejection, SnapshotMarker,
    SourceInfo, Span, TransactionInfo,
};
