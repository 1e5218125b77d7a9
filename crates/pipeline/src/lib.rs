//! sluice-pipeline: source → decode → plugins → checks → sink, then commit.
//!
//! - [`pipeline`]: one loop over one source and one sink;
//! - [`lanes`]: one pipeline per plugin (or one shared), following the route table;
//! - [`reload`]: the plugins directory watched, plugin versions swapped in at batch
//!   boundaries; [`manifest`]: a plugin's manifest (`[[plugin]]` tables and
//!   `<name>.toml` files);
//! - [`metrics`]: the pipeline's counters per lane, pushed to the process's telemetry;
//! - [`candidates`]: shadow and canary versions beside the serving one;
//! - [`compare`]: what two versions of a plugin produce for the same events, event by
//!   event (`sluice plugin diff`);
//! - [`source::file`], [`sink::file`], [`sink::memory`]: the endpoints that need no
//!   client library (JSON lines files, standard input and output, memory).
//!
//! It depends on sluice-core and sluice-runtime only. It must NOT depend on Kafka or any
//! other connector: lanes get their endpoints from a factory ([`lanes::Endpoints`]).

pub mod candidates;
pub mod compare;
pub mod lanes;
pub mod manifest;
pub mod metrics;
pub mod pipeline;
pub mod reload;

/// Endpoints that read without a client library.
pub mod source {
    pub mod file;
    mod top_level;
}

/// Endpoints that write without a client library.
pub mod sink {
    pub mod file;
    pub mod memory;
}
