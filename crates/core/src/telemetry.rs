//! What sluice reports about itself, as a registry that components push to.
//!
//! One [`Telemetry`] per process, shared behind an `Arc`. It knows readiness and the
//! plugins in service (for `/ready` and `/plugins`); every other metric belongs to the
//! component that measures it, which registers a [`Report`] (the pipeline's counters per
//! lane, the reloader's outcomes, Kafka clients' errors and lag) or a collector closure
//! (capture progress) and pushes to it. The registry imports none of their types, so any
//! component can report without the registry knowing it exists. The admin server
//! ([`crate::admin`]) renders it as Prometheus text and JSON.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::status::{History, PageInput, Status, render_page};

/// A component's metrics, rendered on every scrape.
pub trait Report: Send + Sync + 'static {
    /// Appends the Prometheus text exposition of the component's metrics to `out`.
    fn render(&self, out: &mut String);

    /// Adds what the component knows about its lanes (or reloads) to the status page's
    /// snapshot ([`crate::status`]). Most reports know nothing it shows.
    fn status(&self, _status: &mut Status) {}
}

/// A plugin version in service.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// `serve`, `shadow` or `canary`.
    pub mode: String,
    /// The serving plugin a shadow or canary runs beside.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of: Option<String>,
    /// A canary's share of the keys (`"25%"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    /// Instances each batch is divided among, by key (per consumer).
    pub parallelism: usize,
    /// What this version's instances hold of the host's plugin memory budget
    /// (`runtime.plugin_memory`): its memory cap times its instances. Absent when
    /// nothing is reserved (memory limits off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

/// One registered report: found again by its type, rendered through the trait.
struct Registered {
    kind: TypeId,
    any: Arc<dyn Any + Send + Sync>,
    report: Arc<dyn Report>,
}

/// Renders a component's own metrics as Prometheus text.
struct Collector(Box<dyn Fn() -> String + Send + Sync>);

/// The process's telemetry (see the module docs).
#[derive(Default)]
pub struct Telemetry {
    ready: AtomicBool,
    plugins: Mutex<Vec<PluginInfo>>,
    /// In registration order, which is the order of the exposition.
    reports: Mutex<Vec<Registered>>,
    collectors: Mutex<Vec<Collector>>,
    /// Lanes stopped by an error, with the error (a lane is one plugin's pipeline; the
    /// others keep running).
    failed_lanes: Mutex<BTreeMap<String, String>>,
    /// The status page's last minute of lane counters.
    history: Mutex<History>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("ready", &self.is_ready())
            .field("reports", &lock(&self.reports).len())
            .finish_non_exhaustive()
    }
}

/// Locks a registry mutex. A panic while holding one cannot leave the metrics
/// inconsistent in a way that matters more than losing telemetry; keep serving.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Telemetry {
    /// Marks the process ready (plugins loaded, pipeline running) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Books `lane` as stopped by `error`: `/ready` and `sluice_lane_failed` name it.
    pub fn lane_failed(&self, lane: &str, error: &str) {
        lock(&self.failed_lanes).insert(lane.to_owned(), error.to_owned());
    }

    /// `lane` runs again (a new version of its plugin).
    pub fn lane_restarted(&self, lane: &str) {
        lock(&self.failed_lanes).remove(lane);
    }

    /// The lanes stopped by an error, with their errors.
    pub fn failed_lanes(&self) -> Vec<(String, String)> {
        lock(&self.failed_lanes)
            .iter()
            .map(|(lane, error)| (lane.clone(), error.clone()))
            .collect()
    }

    /// Replaces the list of plugins in service.
    pub fn set_plugins(&self, plugins: Vec<PluginInfo>) {
        *lock(&self.plugins) = plugins;
    }

    pub fn plugins(&self) -> Vec<PluginInfo> {
        lock(&self.plugins).clone()
    }

    /// The process's one `R`: registered (and rendered from then on) on first use, the
    /// same `Arc` afterwards, so every lane or client of a kind pushes to one report.
    pub fn report<R: Report + Default>(&self) -> Arc<R> {
        let mut reports = lock(&self.reports);
        let kind = TypeId::of::<R>();
        if let Some(found) = reports.iter().find(|r| r.kind == kind)
            && let Ok(report) = Arc::clone(&found.any).downcast::<R>()
        {
            return report;
        }
        let report = Arc::new(R::default());
        reports.push(Registered {
            kind,
            any: Arc::clone(&report) as Arc<dyn Any + Send + Sync>,
            report: Arc::clone(&report) as Arc<dyn Report>,
        });
        report
    }

    /// What every report knows for the status page now.
    pub fn status(&self) -> Status {
        let mut status = Status::default();
        for report in self.registered() {
            report.status(&mut status);
        }
        status
    }

    /// Takes one snapshot of the lanes' counters into the status page's history (the
    /// admin server calls it every [`crate::status::SAMPLE_EVERY`]).
    pub fn sample_status(&self) {
        let lanes = self.status().lanes;
        lock(&self.history).push(Instant::now(), lanes);
    }

    /// `/plugins`: the plugin versions in service, a shadow with its comparison so far
    /// (`comparison`: counts and the first differences).
    pub fn plugins_json(&self) -> serde_json::Value {
        let shadows = self.status().shadows;
        let plugins = self
            .plugins()
            .into_iter()
            .map(|plugin| {
                let comparison = shadows.get(&plugin.name).cloned();
                let mut value = serde_json::to_value(plugin).unwrap_or_default();
                if let (Some(comparison), Some(object)) = (comparison, value.as_object_mut()) {
                    object.insert(
                        "comparison".to_owned(),
                        serde_json::to_value(comparison).unwrap_or_default(),
                    );
                }
                value
            })
            .collect();
        serde_json::Value::Array(plugins)
    }

    /// The status page (`GET /`).
    pub fn status_page(&self) -> String {
        let input = PageInput {
            ready: self.is_ready(),
            plugins: self.plugins(),
            failed_lanes: self.failed_lanes(),
            status: self.status(),
        };
        render_page(&input, &lock(&self.history))
    }

    /// The registered reports, cloned out so that no caller renders under the registry
    /// lock (a report takes its own locks).
    fn registered(&self) -> Vec<Arc<dyn Report>> {
        lock(&self.reports)
            .iter()
            .map(|r| Arc::clone(&r.report))
            .collect()
    }

    /// Adds metrics rendered by `collector` (Prometheus text) to every scrape.
    pub fn add_collector(&self, collector: impl Fn() -> String + Send + Sync + 'static) {
        lock(&self.collectors).push(Collector(Box::new(collector)));
    }

    /// The Prometheus text exposition of every report, the plugins in service and
    /// readiness.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        for report in self.registered() {
            report.render(&mut out);
        }
        out.push_str("# HELP sluice_plugin_info The plugin versions in service.\n# TYPE sluice_plugin_info gauge\n");
        for plugin in self.plugins() {
            out.push_str(&format!(
                "sluice_plugin_info{{plugin=\"{}\",version=\"{}\",sha256=\"{}\"}} 1\n",
                escape(&plugin.name),
                escape(&plugin.version),
                plugin.sha256
            ));
        }
        out.push_str("# HELP sluice_lane_failed Lanes stopped by an error (1); the others keep running.\n# TYPE sluice_lane_failed gauge\n");
        for lane in lock(&self.failed_lanes).keys() {
            out.push_str(&format!(
                "sluice_lane_failed{{lane=\"{}\"}} 1\n",
                escape(lane)
            ));
        }
        for collector in lock(&self.collectors).iter() {
            out.push_str(&(collector.0)());
        }
        out.push_str(&format!(
            "# HELP sluice_ready Whether sluice is ready.\n# TYPE sluice_ready gauge\nsluice_ready {}\n",
            u8::from(self.is_ready())
        ));
        out
    }
}

/// Escapes a Prometheus label value.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicU64);

    impl Report for Count {
        fn render(&self, out: &mut String) {
            out.push_str(&format!("count {}\n", self.0.load(Ordering::Relaxed)));
        }
    }

    #[test]
    fn reports_are_one_per_kind_and_rendered_with_plugins_and_collectors() {
        let telemetry = Telemetry::default();
        telemetry
            .report::<Count>()
            .0
            .fetch_add(2, Ordering::Relaxed);
        telemetry
            .report::<Count>()
            .0
            .fetch_add(1, Ordering::Relaxed);
        telemetry.set_plugins(vec![PluginInfo {
            name: "cdm".into(),
            version: "1\"2".into(),
            sha256: "ab".into(),
            ..PluginInfo::default()
        }]);
        telemetry.add_collector(|| "capture_rows 4\n".to_owned());
        let text = telemetry.prometheus();
        assert_eq!(text.matches("count ").count(), 1, "{text}");
        assert!(text.contains("count 3\n"), "{text}");
        assert!(
            text.contains(r#"sluice_plugin_info{plugin="cdm",version="1\"2",sha256="ab"} 1"#),
            "{text}"
        );
        assert!(text.contains("capture_rows 4\n"), "{text}");
        assert!(text.contains("sluice_ready 0\n"), "{text}");
    }
}
