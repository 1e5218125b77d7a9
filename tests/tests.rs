//! sluice's end-to-end tests: real components built from source (`build.rs`) running in
//! the real host, one module per area.

mod admin;
mod capture;
mod capture_pipeline;
mod config_errors;
mod dashboard;
mod dlq_replay;
mod exactly_once;
mod golden;
mod hardening_datapath;
mod hardening_plugins;
mod http;
mod isolation;
mod kafka;
mod lanes;
mod packed;
mod parallelism;
mod plugin_cli;
mod plugin_diff;
mod plugin_new;
mod postgres;
mod postgres_crash;
mod postgres_pipeline;
mod read_ahead;
mod reload;
mod runtime;
mod safe_deploys;
mod sdk_ports;
mod shutdown;
mod status_page;
mod support;
mod typed_config;
