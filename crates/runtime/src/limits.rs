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
    /// have, in bytes. Growing past it traps that instance. It also bounds the host
    /// memory one batch's output records take ([`PluginLimits::output_over_memory_cap`]),
    /// and it is what each instance holds of the host's plugin memory budget
    /// ([`crate::budget`]).
    pub memory_bytes: u64,
    /// The most wall-clock time one `transform-batch` call may take before it is
    /// interrupted with a trap.
    pub batch_deadline: Duration,
    /// The most wall-clock time `init` may take (it may build tables, parse schemas),
    /// after which the instance is refused.
    pub init_deadline: Duration,
    /// The most host log lines one call may write; further lines are dropped and counted.
    pub log_lines_per_call: u32,
    /// The most output records one event may produce (fan-out); more sends the event to
    /// the dead-letter topic instead.
    pub max_records_per_event: u32,
    /// The largest output record in bytes, as [`PluginLimits::record_size`] counts it
    /// (key, value and headers); a larger one sends its event to the dead-letter topic
    /// instead of failing at the broker.
    pub max_record_bytes: u64,
    /// The most distinct topics one plugin version may write to in a lane; a record for
    /// a further topic sends its event to the dead-letter topic instead. A plugin
    /// allowed a pattern (`cdm.*`) could otherwise write a new topic per event: as many
    /// topics created on the broker, and metadata held by every client for each.
    pub max_output_topics: u32,
}

impl PluginLimits {
    /// 64 MiB holds a serde/JS heap for batches of thousands of ~1 KB events with room to
    /// spare, while letting dozens of plugins share a small host.
    pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
    /// A batch of 1,024 events takes milliseconds in a sane plugin; 5 s is far beyond any
    /// legitimate batch and still short enough that a stuck plugin is noticed quickly.
    pub const DEFAULT_BATCH_DEADLINE: Duration = Duration::from_secs(5);
    /// `init` runs once per instance and may do real work (compile regexes, load a
    /// lookup table from its config), but a load that takes more than 10 s is stuck.
    pub const DEFAULT_INIT_DEADLINE: Duration = Duration::from_secs(10);
    /// Enough for a plugin that logs per event at debug level in small batches.
    pub const DEFAULT_LOG_LINES_PER_CALL: u32 = 1_000;
    /// Fan-out to a handful of topics is normal; a thousand records from one change
    /// event is a bug or an attack.
    pub const DEFAULT_MAX_RECORDS_PER_EVENT: u32 = 1_000;
    /// Kafka's default `message.max.bytes` (1 MiB): a larger record would be refused by
    /// a default broker anyway, after sluice had already spent the work on it.
    pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1 << 20;
    /// A plugin routing by table writes a topic per table; a thousand distinct topics
    /// from one plugin is a bug or an attack.
    pub const DEFAULT_MAX_OUTPUT_TOPICS: u32 = 1_000;

    /// The size a record counts against [`PluginLimits::max_record_bytes`]: its key,
    /// its value, and each header's key and value with the two length prefixes Kafka
    /// writes for a header (a byte each at the least), so that a flood of empty headers
    /// counts too. `headers`: each header's key and value lengths.
    pub fn record_size(
        key: usize,
        value: usize,
        headers: impl IntoIterator<Item = (usize, usize)>,
    ) -> u64 {
        let headers: u64 = headers
            .into_iter()
            .map(|(key, value)| key as u64 + value as u64 + HEADER_FRAMING_BYTES)
            .sum();
        key as u64 + value as u64 + headers
    }

    /// Why `count` output records for one event break
    /// [`PluginLimits::max_records_per_event`], if they do. The dead-letter reason.
    pub fn too_many_records(&self, count: usize) -> Option<String> {
        (count > self.max_records_per_event as usize).then(|| {
            format!(
                "plugin produced {count} records for one event, over its limit of {} (limits.max_records_per_event)",
                self.max_records_per_event
            )
        })
    }

    /// Why a record of `size` bytes (see [`PluginLimits::record_size`]) for `topic`
    /// breaks [`PluginLimits::max_record_bytes`], if it does. The dead-letter reason.
    pub fn record_too_large(&self, size: u64, topic: &str) -> Option<String> {
        (size > self.max_record_bytes).then(|| {
            format!(
                "plugin produced a record of {size} bytes for topic {topic:?}, over its limit of {} bytes (limits.max_record_bytes)",
                self.max_record_bytes
            )
        })
    }

    /// Why a record for `topic`, a topic new to the plugin when it has written to its
    /// [`PluginLimits::max_output_topics`] already, is refused. The dead-letter reason.
    pub fn too_many_topics(&self, topic: &str) -> String {
        format!(
            "plugin wrote to topic {topic:?}, a new topic when it has written to {} distinct topics already, its limit (limits.max_output_topics)",
            self.max_output_topics
        )
    }

    /// Why output records taking `host_bytes` of host memory (the batch's so far, with
    /// this event's) break the plugin's memory cap, if they do. The dead-letter reason:
    /// the plugin's output may cost the host as much memory as the plugin may hold
    /// itself, and no more.
    pub fn output_over_memory_cap(&self, host_bytes: u64) -> Option<String> {
        (host_bytes > self.memory_bytes).then(|| {
            format!(
                "plugin produced records that would take {host_bytes} bytes of host memory with those of the events before in its batch, over its memory cap of {} bytes (limits.memory); many small records or headers cost the host more than their bytes",
                self.memory_bytes
            )
        })
    }

    /// The batch deadline in epoch ticks (see `limits::ticks`).
    pub fn deadline_ticks(&self) -> u64 {
        ticks(self.batch_deadline)
    }

    /// The init deadline in epoch ticks (see `limits::ticks`).
    pub fn init_deadline_ticks(&self) -> u64 {
        ticks(self.init_deadline)
    }
}

/// What a header costs beyond its key and value in [`PluginLimits::record_size`]: the
/// lengths of both, a byte each at the least in Kafka's record format.
pub const HEADER_FRAMING_BYTES: u64 = 2;

/// The most ticks a deadline may be. wasmtime adds the deadline to the engine's current
/// epoch with plain (overflow-checked) addition, so `u64::MAX` ticks panics inside
/// wasmtime; half the range is still ~2.9 billion years of 10 ms ticks, and the epoch
/// (one increment per tick since the process started) never reaches the other half.
pub const MAX_DEADLINE_TICKS: u64 = u64::MAX / 2;

/// A duration in epoch ticks, rounded up, at least one and at most
/// [`MAX_DEADLINE_TICKS`], whatever the duration.
pub fn ticks(deadline: Duration) -> u64 {
    let ticks = deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos());
    u64::try_from(ticks)
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_DEADLINE_TICKS)
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            memory_bytes: Self::DEFAULT_MEMORY_BYTES,
            batch_deadline: Self::DEFAULT_BATCH_DEADLINE,
            init_deadline: Self::DEFAULT_INIT_DEADLINE,
            log_lines_per_call: Self::DEFAULT_LOG_LINES_PER_CALL,
            max_records_per_event: Self::DEFAULT_MAX_RECORDS_PER_EVENT,
            max_record_bytes: Self::DEFAULT_MAX_RECORD_BYTES,
            max_output_topics: Self::DEFAULT_MAX_OUTPUT_TOPICS,
        }
    }
}

/// The error a store's limiter raises when a plugin grows its memory past its cap.
/// It becomes the trap of the call, so the reason reaches the dead-letter headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "memory cap exceeded: the plugin asked to grow its {what} from {current} to {requested} bytes (memories and tables together), over its cap of {max} bytes"
)]
pub struct StoreMemoryExceeded {
    /// `linear memory` or `tables`.
    pub what: &'static str,
    pub current: usize,
    pub requested: usize,
    pub max: usize,
}

/// What the host spends per table element: wasmtime stores a funcref or externref
/// element as one pointer (plus lazy-initialisation bits it does not allocate per
/// element), so a table of n elements costs the host about n pointers.
pub const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// The limiter of one plugin store: one budget for everything the plugin makes the host
/// allocate, so a plugin capped at 64 MiB cannot take more by growing tables instead of
/// memory, or by many memories, tables or instances.
#[derive(Debug)]
pub struct MemoryCap {
    max: usize,
    /// Bytes of all linear memories and tables of the store (a component may have
    /// several of each), tables counted at [`TABLE_ELEMENT_BYTES`] per element.
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

impl MemoryCap {
    /// Adds `growth` bytes to the store's total, or refuses with the typed error (which
    /// becomes the trap, so the reason reaches logs and dead-letter headers).
    fn grow(&mut self, what: &'static str, growth: usize) -> wasmtime::Result<bool> {
        let total = self.total.saturating_add(growth);
        if total > self.max {
            return Err(wasmtime::Error::new(StoreMemoryExceeded {
                what,
                current: self.total,
                requested: total,
                max: self.max,
            }));
        }
        self.total = total;
        Ok(true)
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow("linear memory", desired.saturating_sub(current))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Creating a table is growing it from 0 to its initial size, so a table bomb
        // (many tables, or huge ones) is counted before the host allocates it.
        let elements = desired.saturating_sub(current);
        self.grow("tables", elements.saturating_mul(TABLE_ELEMENT_BYTES))
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
    /// Ticks every engine of `engines` on one thread.
    pub fn start(engines: &[Engine]) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            let engines = engines.to_vec();
            std::thread::Builder::new()
                .name("sluice-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        for engine in &engines {
                            engine.increment_epoch();
                        }
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
        // The largest setting a config could hold must not overflow inside wasmtime.
        limits.batch_deadline = Duration::MAX;
        limits.init_deadline = Duration::from_secs(u64::MAX);
        assert_eq!(limits.deadline_ticks(), MAX_DEADLINE_TICKS);
        assert_eq!(limits.init_deadline_ticks(), MAX_DEADLINE_TICKS);
    }

    #[test]
    fn tables_count_against_the_same_cap_as_memory() {
        let limits = PluginLimits {
            memory_bytes: 64 << 20,
            ..PluginLimits::default()
        };
        let mut cap = MemoryCap::new(&limits);
        assert!(
            cap.memory_growing(0, 32 << 20, None)
                .expect("memory within cap")
        );
        // 4M elements of 8 bytes = 32 MiB: exactly the rest of the cap.
        let elements = (32 << 20) / TABLE_ELEMENT_BYTES;
        assert!(
            cap.table_growing(0, elements, None)
                .expect("table within cap")
        );
        let err = cap
            .table_growing(0, 1, None)
            .expect_err("one element past the cap");
        let exceeded = err.downcast_ref::<StoreMemoryExceeded>().expect("typed");
        assert_eq!(exceeded.what, "tables");
        assert_eq!(exceeded.max, 64 << 20);
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
                what: "linear memory",
                current: 60,
                requested: 120,
                max: 100
            }
        );
    }
}
