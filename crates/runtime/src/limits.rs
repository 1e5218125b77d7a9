//! Per-plugin resource limits: the memory cap (a store limiter) and the CPU deadline
//! (epoch interruption), plus the engine-wide epoch ticker that drives deadlines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Engine, ResourceLimiter};

/// How often the engine's epoch advances. A CPU deadline is rounded up to whole ticks,
/// so a plugin is stopped at most one tick after its deadline. 10 ms keeps that error
/// small next to deadlines of seconds, while the ticker thread wakes only 100 times a
/// second (each wake is one atomic increment).
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The limits one plugin runs under. Every store of the plugin gets its own copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// The most linear memory (all memories of the component together) one instance may
    /// have, in bytes. Growing past it traps that instance.
    pub memory_bytes: u64,
    /// The most wall-clock time one call (`init` or one `transform-batch`) may take
    /// before it is interrupted with a trap.
    pub batch_deadline: Duration,
    /// The most host log lines one call may write; further lines are dropped and counted.
    pub log_lines_per_call: u32,
    /// The most output records one event may produce (fan-out); more sends the event to
    /// the dead-letter topic instead.
    pub max_records_per_event: u32,
    /// The largest output record (key + value + headers) in bytes; a larger one sends
    /// its event to the dead-letter topic instead of failing at the broker.
    pub max_record_bytes: u64,
}

impl PluginLimits {
    /// 64 MiB holds a serde/JS heap for batches of thousands of ~1 KB events with room to
    /// spare, while letting dozens of plugins share a small host.
    pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
    /// A batch of 1,024 events takes milliseconds in a sane plugin; 5 s is far beyond any
    /// legitimate batch and still short enough that a stuck plugin is noticed quickly.
    pub const DEFAULT_BATCH_DEADLINE: Duration = Duration::from_secs(5);
    /// Enough for a plugin that logs per event at debug level in small batches.
    pub const DEFAULT_LOG_LINES_PER_CALL: u32 = 1_000;
    /// Fan-out to a handful of topics is normal; a thousand records from one change
    /// event is a bug or an attack.
    pub const DEFAULT_MAX_RECORDS_PER_EVENT: u32 = 1_000;
    /// Kafka's default `message.max.bytes` (1 MiB): a larger record would be refused by
    /// a default broker anyway, after sluice had already spent the work on it.
    pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1 << 20;

    /// The deadline in epoch ticks, rounded up, at least one.
    pub fn deadline_ticks(&self) -> u64 {
        let ticks = self
            .batch_deadline
            .as_nanos()
            .div_ceil(EPOCH_TICK.as_nanos());
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            memory_bytes: Self::DEFAULT_MEMORY_BYTES,
            batch_deadline: Self::DEFAULT_BATCH_DEADLINE,
            log_lines_per_call: Self::DEFAULT_LOG_LINES_PER_CALL,
            max_records_per_event: Self::DEFAULT_MAX_RECORDS_PER_EVENT,
            max_record_bytes: Self::DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// The error a store's limiter raises when a plugin grows its memory past its cap.
/// It becomes the trap of the call, so the reason reaches the dead-letter headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "memory cap exceeded: the plugin asked to grow linear memory from {current} to {requested} bytes, over its cap of {max} bytes"
)]
pub struct StoreMemoryExceeded {
    pub current: usize,
    pub requested: usize,
    pub max: usize,
}

/// The limiter of one plugin store.
#[derive(Debug)]
pub struct MemoryCap {
    max: usize,
    /// Memory of all linear memories of the store, which a component may have several of.
    total: usize,
}

impl MemoryCap {
    pub fn new(limits: &PluginLimits) -> Self {
        Self {
            max: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
            total: 0,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.total.saturating_add(growth);
        if total > self.max {
            return Err(wasmtime::Error::new(StoreMemoryExceeded {
                current: self.total,
                requested: total,
                max: self.max,
            }));
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million entries is far beyond any plugin
        // and bounds the host memory a table bomb can take (8 MiB).
        const MAX_TABLE_ELEMENTS: usize = 1 << 20;
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        // A component built from Rust, JS (StarlingMonkey) or Python has a handful of
        // core instances; 100 leaves room and stops an instance bomb.
        100
    }

    fn memories(&self) -> usize {
        100
    }

    fn tables(&self) -> usize {
        100
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own until dropped.
#[derive(Debug)]
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            let engine = engine.clone();
            std::thread::Builder::new()
                .name("sluice-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })?
        };
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_rounds_up_to_whole_ticks() {
        let mut limits = PluginLimits {
            batch_deadline: Duration::from_millis(25),
            ..PluginLimits::default()
        };
        assert_eq!(limits.deadline_ticks(), 3);
        limits.batch_deadline = Duration::ZERO;
        assert_eq!(limits.deadline_ticks(), 1);
    }

    #[test]
    fn memory_cap_counts_all_memories_of_a_store() {
        let limits = PluginLimits {
            memory_bytes: 100,
            ..PluginLimits::default()
        };
        let mut cap = MemoryCap::new(&limits);
        assert!(cap.memory_growing(0, 60, None).expect("within cap"));
        let err = cap
            .memory_growing(0, 60, None)
            .expect_err("second memory passes the cap");
        let exceeded = err
            .downcast_ref::<StoreMemoryExceeded>()
            .expect("typed error");
        assert_eq!(
            *exceeded,
            StoreMemoryExceeded {
                current: 60,
                requested: 120,
                max: 100
            }
        );
    }
}
