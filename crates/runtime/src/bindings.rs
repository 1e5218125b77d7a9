//! Host-side bindings of the `sluice:transform` worlds (`wit/`), private to the runtime:
//! its public API re-exports the event types, and `boundary` converts records.
//!
//! A plugin exports either `transform` (world `transformer`, one record per event) or
//! `transform-packed` (world `packed-transformer`, the batch in one buffer each way,
//! `crate::packed`); both import the same `host` interface.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "transformer",
    additional_derives: [PartialEq, Eq],
});

/// The `packed-transformer` world; its `host` import is the one above, so one linker and
/// one `Host` implementation serve both worlds.
pub mod packed {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "packed-transformer",
        with: {
            "sluice:transform/host": super::sluice::transform::host,
        },
    });
}

pub use self::sluice::transform::host::LogLevel;
pub use self::sluice::transform::types::{
    ChangeEvent, EventOutcome, Header, Operation, Origin, OutputRecord, Rejection, SnapshotMarker,
    SourceInfo, Span, TransactionInfo,
};
