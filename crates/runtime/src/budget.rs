//! The host's budget for plugin memory: the memory caps of every running plugin
//! instance together stay within one figure (`runtime.plugin_memory`), so that no team's
//! manifest can claim more of the host than it has, by a large cap, a high
//! `parallelism`, or both.
//!
//! A cap is a ceiling, not an allocation: an instance takes memory as it grows. The
//! budget counts ceilings because a plugin may grow to its cap at any moment, and a
//! host whose caps add up to more than its memory has promised the same memory twice:
//! when several plugins grow at once, the kernel's OOM killer stops the whole process,
//! every team's lane with it. A plugin that does not fit is refused when it starts,
//! with its name, what it asks and what is held, and the plugins already running keep
//! running. Each release is announced ([`MemoryBudget::released`]), so that a refused
//! version can be tried again once room is freed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The budget shared by the runtime and every reservation it gave out.
#[derive(Debug)]
pub struct MemoryBudget {
    total: u64,
    held: AtomicU64,
    /// Counts releases, for [`MemoryBudget::released`].
    releases: tokio::sync::watch::Sender<u64>,
}

/// What a plugin version's running instances hold of the budget; given back when the
/// last of its workers (and their instances) is dropped.
#[derive(Debug)]
pub struct MemoryReservation {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

/// A plugin whose instances' caps do not fit what is left of the budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{instances} instance(s) at its memory cap of {cap} bytes ask {asked} bytes of the host's plugin memory budget, but {held} of its {total} bytes are held by the plugins running (runtime.plugin_memory; lower the plugin's limits.memory or parallelism, or raise the budget)"
)]
pub struct OverBudget {
    pub instances: usize,
    pub cap: u64,
    pub asked: u64,
    pub held: u64,
    pub total: u64,
}

impl MemoryBudget {
    pub fn new(total: u64) -> Arc<Self> {
        Arc::new(Self {
            total,
            held: AtomicU64::new(0),
            releases: tokio::sync::watch::Sender::new(0),
        })
    }

    /// A receiver that sees a change each time a reservation is given back.
    pub fn released(&self) -> tokio::sync::watch::Receiver<u64> {
        self.releases.subscribe()
    }

    /// The budget in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes held by reservations now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Reserves `instances` × `cap` bytes, or says why not.
    pub fn reserve(
        self: &Arc<Self>,
        instances: usize,
        cap: u64,
    ) -> Result<MemoryReservation, OverBudget> {
        let asked = cap.saturating_mul(instances as u64);
        let mut held = self.held.load(Ordering::Relaxed);
        loop {
            let after = held.saturating_add(asked);
            if after > self.total {
                return Err(OverBudget {
                    instances,
                    cap,
                    asked,
                    held,
                    total: self.total,
                });
            }
            match self
                .held
                .compare_exchange_weak(held, after, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Ok(MemoryReservation {
                        budget: Arc::clone(self),
                        bytes: asked,
                    });
                }
                Err(now) => held = now,
            }
        }
    }
}

impl MemoryReservation {
    /// Bytes this reservation holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for MemoryReservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
        self.budget
            .releases
            .send_modify(|count| *count = count.wrapping_add(1));
    }
}

/// The default budget: three quarters of the memory the process may use, leaving the
/// rest to the host's own buffers, its compiles and the kernel. That memory is the
/// machine's (`MemTotal` in `/proc/meminfo`) or, in a container, its cgroup's limit
/// where that is lower (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`); unbounded
/// where neither can be read.
pub fn default_plugin_memory() -> u64 {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .as_deref()
        .and_then(mem_total);
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .map(|cgroups| cgroup_limit_files(&cgroups))
        .unwrap_or_default()
        .iter()
        .filter_map(|file| {
            std::fs::read_to_string(file)
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .min();
    match (machine, cgroup) {
        (Some(machine), Some(cgroup)) => machine.min(cgroup) / 4 * 3,
        (Some(memory), None) | (None, Some(memory)) => memory / 4 * 3,
        (None, None) => u64::MAX,
    }
}

/// The files that hold the memory limit of the process's cgroups, from the text of
/// `/proc/self/cgroup`: `memory.max` for cgroup v2 (the line with no controllers),
/// `memory.limit_in_bytes` of the `memory` controller for v1. A file that does not
/// exist, or says `max`, sets no limit.
fn cgroup_limit_files(cgroups: &str) -> Vec<std::path::PathBuf> {
    cgroups
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let path = path.trim_start_matches('/');
            if controllers.is_empty() {
                Some(
                    std::path::Path::new("/sys/fs/cgroup")
                        .join(path)
                        .join("memory.max"),
                )
            } else if controllers
                .split(',')
                .any(|controller| controller == "memory")
            {
                Some(
                    std::path::Path::new("/sys/fs/cgroup/memory")
                        .join(path)
                        .join("memory.limit_in_bytes"),
                )
            } else {
                None
            }
        })
        .collect()
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib.checked_mul(1024)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_the_budget_and_are_given_back_when_dropped() {
        let budget = MemoryBudget::new(100);
        let first = budget.reserve(2, 30).expect("60 of 100");
        assert_eq!((first.bytes(), budget.held()), (60, 60));
        let refused = budget.reserve(1, 41).expect_err("101 of 100");
        assert_eq!(
            refused,
            OverBudget {
                instances: 1,
                cap: 41,
                asked: 41,
                held: 60,
                total: 100
            }
        );
        assert!(refused.to_string().contains("runtime.plugin_memory"));
        let second = budget.reserve(1, 40).expect("exactly 100");
        assert_eq!(budget.held(), 100);
        let released = budget.released();
        assert!(!released.has_changed().expect("open"));
        drop(first);
        assert_eq!(budget.held(), 40);
        assert!(
            released.has_changed().expect("open"),
            "a release is announced"
        );
        drop(second);
        assert_eq!(budget.held(), 0);
        assert!(budget.reserve(usize::MAX, u64::MAX).is_err(), "no overflow");
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn concurrent_reservations_never_pass_the_budget() {
        let budget = MemoryBudget::new(1_000);
        let granted: Vec<Vec<MemoryReservation>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| (0..100).filter_map(|_| budget.reserve(1, 7).ok()).collect())
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("thread"))
                .collect()
        });
        let count: usize = granted.iter().map(Vec::len).sum();
        assert_eq!(count, 1_000 / 7, "as many as fit, no more");
        assert_eq!(budget.held(), 7 * count as u64);
        drop(granted);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn mem_total_is_read_in_bytes() {
        let meminfo = "MemTotal:       24576000 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total(meminfo), Some(24_576_000 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total("MemTotal: lots\n"), None);
        assert!(default_plugin_memory() > 0);
    }

    #[test]
    fn cgroup_limits_are_looked_for_in_both_versions() {
        let v1 = "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/\n";
        assert_eq!(
            cgroup_limit_files(v1),
            [std::path::PathBuf::from(
                "/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes"
            )]
        );
        assert_eq!(
            cgroup_limit_files("0::/kubepods/pod1\n"),
            [std::path::PathBuf::from(
                "/sys/fs/cgroup/kubepods/pod1/memory.max"
            )]
        );
        assert_eq!(
            cgroup_limit_files("0::/\n"),
            [std::path::PathBuf::from("/sys/fs/cgroup/memory.max")]
        );
        assert!(cgroup_limit_files("garbage\n").is_empty());
    }
}
