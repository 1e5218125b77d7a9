//! The per-store state of a plugin instance: its empty WASI context, its limiter, and the
//! host interface it imports (logging).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{self, LogLevel};
use super::limits::{MemoryCap, PluginLimits};

/// What a store of one plugin holds.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) memory_cap: MemoryCap,
    /// `name@version`, for log lines.
    plugin: Arc<str>,
    log_lines_left: u32,
    log_lines_dropped: u64,
    /// Lines dropped in the current call, reported once when it ends.
    dropped_this_call: u64,
    drops: LogDrops,
    /// The last `error` line the guest logged during the current call; the Rust SDK logs
    /// its panic message there, which names the reason of a trap.
    last_error: Option<String>,
}

impl PluginState {
    pub fn new(plugin: Arc<str>, limits: &PluginLimits, drops: LogDrops) -> Self {
        Self {
            wasi: sandboxed_wasi(),
            table: ResourceTable::new(),
            memory_cap: MemoryCap::new(limits),
            plugin,
            log_lines_left: limits.log_lines_per_call,
            log_lines_dropped: 0,
            dropped_this_call: 0,
            drops,
            last_error: None,
        }
    }

    /// Resets the per-call budgets before a call into the guest.
    pub fn begin_call(&mut self, limits: &PluginLimits) {
        self.log_lines_left = limits.log_lines_per_call;
        self.dropped_this_call = 0;
        self.last_error = None;
    }

    /// Reports the log lines the call that just ended dropped: one log line per call
    /// (never per dropped line) and the per-plugin counter behind the metric.
    pub fn end_call(&mut self) {
        if self.dropped_this_call == 0 {
            return;
        }
        let dropped = std::mem::take(&mut self.dropped_this_call);
        self.drops.add(&self.plugin, dropped);
        tracing::warn!(
            plugin = %self.plugin,
            dropped,
            "plugin log lines dropped: the call logged more than limits.log_lines_per_call"
        );
    }

    /// The last error line logged during the current call (the panic message, for Rust).
    pub fn take_last_error(&mut self) -> Option<String> {
        self.last_error.take()
    }

    /// How many log lines were dropped because a call exceeded its budget.
    pub fn log_lines_dropped(&self) -> u64 {
        self.log_lines_dropped
    }
}

/// A WASI context that grants nothing: no preopened directories, no environment
/// variables or arguments, no sockets or name lookups, closed stdin, stdout/stderr that
/// discard what is written (plugins log through the host interface instead), stopped
/// clocks, and at most [`MAX_RANDOM_BYTES`] random bytes per call.
///
/// The WIT contract grants no clock, so the WASI clocks a guest's standard library links
/// read a fixed instant: the wall clock says 1970-01-01T00:00:00Z and the monotonic clock
/// says 0. A transform is then a function of its events and config alone: replaying a
/// partition (after a crash, a rewind or an aborted transaction) yields the same records,
/// and no plugin can time the host or its neighbours. Event time is in every event
/// (`ts_ms`, the source timestamps).
fn sandboxed_wasi() -> WasiCtx {
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(StoppedClock)
        .monotonic_clock(StoppedClock)
        .max_random_size(MAX_RANDOM_BYTES)
        .build()
}

/// The most random bytes one `wasi:random` call returns. The host generates them in its
/// own memory before the plugin's cap sees them, so wasmtime-wasi's default (64 MiB a
/// call) would let each plugin thread hold that much outside its cap; seeds and ids
/// need bytes, not mebibytes.
pub const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// The WASI monotonic clock's timers, as the sandbox links them: every one is due at
/// once. A guest sleeps (`std::thread::sleep`, `setTimeout`, `time.sleep`) by polling a
/// timer, and the host would wait that out in real time, inside a host call where no
/// CPU deadline reaches: a plugin that slept for an hour would hold its lane for an
/// hour, and one that slept "forever" (a duration past what the host can represent)
/// for good. In a sandbox whose clocks are stopped no time passes, so a sleep returns
/// at once and the clock still reads 0 after it.
pub(crate) fn stop_timers(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::clocks::WasiClocksView;
    use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host;
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, PluginState>, (_duration,): (u64,)| {
            Ok((store.data_mut().clocks().subscribe_duration(0)?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, PluginState>, (_when,): (u64,)| {
            Ok((store.data_mut().clocks().subscribe_duration(0)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The monotonic clock interface as wasmtime-wasi links it; guests built against older
/// 0.2 versions reach it through the linker's semver matching.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// A clock that never moves (see [`sandboxed_wasi`]).
struct StoppedClock;

impl wasmtime_wasi::HostWallClock for StoppedClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::sluice::transform::types::Host for PluginState {}

impl bindings::sluice::transform::host::Host for PluginState {
    fn log(&mut self, level: LogLevel, message: String) {
        if matches!(level, LogLevel::Error) {
            // Kept for a trap's reason (log and dead-letter header): capped and printable.
            self.last_error = Some(super::log::plugin_message(&message).into_owned());
        }
        if self.log_lines_left == 0 {
            self.log_lines_dropped += 1;
            self.dropped_this_call += 1;
            return;
        }
        self.log_lines_left -= 1;
        let plugin = &*self.plugin;
        let message = super::log::plugin_message(&message);
        match level {
            LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// Plugin log lines dropped over their per-call budget, per plugin (`name@version`),
/// shared by every store of the runtime; rendered as a metric.
#[derive(Debug, Clone, Default)]
pub struct LogDrops(Arc<Mutex<BTreeMap<String, u64>>>);

impl LogDrops {
    fn add(&self, plugin: &str, dropped: u64) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(plugin.to_owned()).or_default() += dropped;
    }

    /// Dropped lines so far, per plugin.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_gets_at_most_a_mebibyte_of_random_bytes_per_call() {
        use wasmtime_wasi::p2::bindings::random::insecure::Host as _;
        use wasmtime_wasi::p2::bindings::random::random::Host as _;
        let mut wasi = sandboxed_wasi();
        let bytes = wasi
            .random()
            .get_random_bytes(MAX_RANDOM_BYTES)
            .expect("1 MiB");
        assert_eq!(bytes.len() as u64, MAX_RANDOM_BYTES);
        assert!(
            wasi.random()
                .get_random_bytes(MAX_RANDOM_BYTES + 1)
                .is_err()
        );
        assert!(
            wasi.random()
                .get_insecure_random_bytes(MAX_RANDOM_BYTES + 1)
                .is_err()
        );
    }
}
