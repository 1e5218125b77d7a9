//! The `sluice run` configuration: loaded from TOML in two stages.
//!
//! 1. Deserialize into raw structs that refuse unknown fields (a typo is an error, not a
//!    silently ignored setting).
//! 2. Validate into [`Config`], collecting **every** problem with its path
//!    (`plugin[0].limits.memory`) so a user fixes them all in one go.
//!
//! Relative paths are relative to the directory of the configuration file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use sluice_capture::config::{CaptureKind, RawAnyCapture};
use sluice_core::admin::RawAdmin;
pub use sluice_core::connector::Delivery;
pub use sluice_core::settings::{ConfigError, Problem};
use sluice_core::settings::{Problems, parse_size, topic_name};
pub use sluice_kafka::source::DEFAULT_BATCH_BYTES as DEFAULT_KAFKA_BATCH_BYTES;
use sluice_pipeline::lanes::Isolation;
pub use sluice_pipeline::manifest::{PluginConfig, load_manifest};
use sluice_pipeline::manifest::{RawPlugin, validate_plugin};
use sluice_pipeline::pipeline::PipelineSettings;
use sluice_runtime::RuntimeOptions;

use crate::connectors::{RawSink, RawSource};
pub use crate::connectors::{SinkConfig, SourceConfig};

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub source: SourceConfig,
    pub sink: SinkConfig,
    pub pipeline: PipelineSettings,
    /// When source positions are committed.
    pub delivery: Delivery,
    /// Whether each plugin runs in a lane (pipeline, consumer group) of its own.
    pub isolation: Isolation,
    /// This process's name among its peers, part of every exactly-once
    /// `transactional.id` (`None`: the host name).
    pub instance: Option<String>,
    pub runtime: RuntimeOptions,
    /// Plugins listed in the configuration file itself.
    pub plugins: Vec<PluginConfig>,
    /// A directory of plugin manifests and components, watched and hot-reloaded
    /// (see [`sluice_pipeline::reload`]).
    pub plugins_dir: Option<PathBuf>,
    /// Where the admin HTTP server (`/health`, `/ready`, `/plugins`, `/metrics`) listens.
    pub admin_listen: Option<std::net::SocketAddr>,
    /// SQL Server CDC capture in the same process (`[capture]`): it writes the Debezium
    /// topics that the Kafka source reads.
    pub capture: Option<CaptureKind>,
}

impl Config {
    /// Consumers (pipelines, plugin instances) per plugin: `source.consumers` for Kafka,
    /// one otherwise.
    pub fn consumers(&self) -> usize {
        self.source.consumers()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    source: RawSource,
    sink: RawSink,
    #[serde(default)]
    pipeline: RawPipeline,
    #[serde(default)]
    runtime: RawRuntime,
    #[serde(default, rename = "plugin")]
    plugins: Vec<RawPlugin>,
    #[serde(default)]
    admin: RawAdmin,
    capture: Option<RawAnyCapture>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    batch_size: Option<i64>,
    dead_letter_topic: Option<String>,
    lineage_headers: Option<bool>,
    shadow_examples: Option<i64>,
    isolation: Option<String>,
    delivery: Option<String>,
    instance: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    cache_dir: Option<String>,
    plugins_dir: Option<String>,
    max_plugin_size: Option<String>,
    plugin_memory: Option<String>,
}

/// Loads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, &file, base)
}

/// Parses configuration text; `file` names it in errors, `base` resolves relative paths.
pub fn parse(text: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        file: file.to_owned(),
        reason: e.to_string().trim_end().to_owned(),
    })?;
    let mut problems = Problems::default();
    let config = validate(raw, base, &mut problems);
    if problems.0.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            file: file.to_owned(),
            problems: problems.0,
        })
    }
}

fn validate(raw: RawConfig, base: &Path, problems: &mut Problems) -> Config {
    // Each kind validates its own table (`crate::connectors`).
    let source = SourceConfig::validate(raw.source, base, problems);
    let sink = SinkConfig::validate(raw.sink, base, problems);

    let mut pipeline = PipelineSettings::default();
    match raw.pipeline.batch_size {
        None => {}
        Some(n) if (1..=100_000).contains(&n) => pipeline.batch_size = n as usize,
        Some(n) => problems.add(
            "pipeline.batch_size",
            format!("{n} is out of range (1 to 100000)"),
        ),
    }
    if let Some(topic) = raw.pipeline.dead_letter_topic
        && topic_name(&topic, "pipeline.dead_letter_topic", problems)
    {
        pipeline.dead_letter_topic = topic;
    }
    if let Some(lineage) = raw.pipeline.lineage_headers {
        pipeline.lineage_headers = lineage;
    }
    match raw.pipeline.shadow_examples {
        None => {}
        Some(n) if (0..=1000).contains(&n) => pipeline.shadow_examples = n as usize,
        Some(n) => problems.add(
            "pipeline.shadow_examples",
            format!("{n} is out of range (0 to 1000)"),
        ),
    }
    let mut delivery = Delivery::AtLeastOnce;
    match raw.pipeline.delivery.as_deref() {
        None | Some("at-least-once") => {}
        Some("exactly-once") => {
            delivery = Delivery::ExactlyOnce;
            if !source.transactional() || !sink.transactional() {
                problems.add(
                    "pipeline.delivery",
                    "exactly-once needs a kafka source and a kafka sink (Kafka transactions)",
                );
            }
        }
        Some(other) => problems.add(
            "pipeline.delivery",
            format!("unknown delivery {other:?} (expected \"at-least-once\" or \"exactly-once\")"),
        ),
    }
    let instance = raw.pipeline.instance;
    if let Some(name) = &instance
        && (name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        problems.add(
            "pipeline.instance",
            format!("{name:?} must be letters, digits, '.', '_' or '-' (it is part of a transactional.id)"),
        );
    }
    let isolation = match raw.pipeline.isolation.as_deref() {
        None | Some("per-plugin") => Isolation::PerPlugin,
        Some("shared") => Isolation::Shared,
        Some(other) => {
            problems.add(
                "pipeline.isolation",
                format!("unknown isolation {other:?} (expected \"per-plugin\" or \"shared\")"),
            );
            Isolation::PerPlugin
        }
    };

    let mut runtime = RuntimeOptions {
        cache_dir: match raw.runtime.cache_dir.as_deref() {
            Some("") => None,
            Some(dir) => Some(base.join(dir)),
            None => default_cache_dir(),
        },
        ..RuntimeOptions::default()
    };
    if let Some(size) = raw.runtime.max_plugin_size.as_deref() {
        match parse_size(size) {
            Some(bytes) if bytes >= 1 << 10 => runtime.max_plugin_bytes = bytes,
            _ => problems.add(
                "runtime.max_plugin_size",
                format!("{size:?} is not a size of at least 1KiB (e.g. \"256MiB\")"),
            ),
        }
    }

    if let Some(size) = raw.runtime.plugin_memory.as_deref() {
        match parse_size(size) {
            Some(bytes) if bytes >= 1 << 20 => runtime.plugin_memory = Some(bytes),
            _ => problems.add(
                "runtime.plugin_memory",
                format!("{size:?} is not a size of at least 1MiB (e.g. \"16GiB\")"),
            ),
        }
    }

    let plugins_dir = raw.runtime.plugins_dir.as_deref().map(|dir| base.join(dir));
    if let Some(dir) = &plugins_dir
        && !dir.is_dir()
    {
        problems.add(
            "runtime.plugins_dir",
            format!("{} is not a directory", dir.display()),
        );
    }
    if raw.plugins.is_empty() && plugins_dir.is_none() {
        problems.add(
            "plugin",
            "no plugins configured; add at least one [[plugin]] table or set runtime.plugins_dir",
        );
    }
    let mut plugins = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (index, plugin) in raw.plugins.into_iter().enumerate() {
        let at = format!("plugin[{index}].");
        if let Some(name) = &plugin.name
            && !names.insert(name.clone())
        {
            {
                problems.add(
                    format!("{at}name"),
                    format!("{name:?} is used by an earlier plugin; names must be unique"),
                );
            }
        }
        if let Some(valid) = validate_plugin(plugin, base, &at, None, problems) {
            plugins.push(valid);
        }
    }
    let admin_listen = raw
        .admin
        .validate("127.0.0.1:9464")
        .unwrap_or_else(|problem| {
            problems.0.push(problem);
            None
        });
    let capture = raw
        .capture
        .map(|capture| validate_capture(capture, &source, problems));
    Config {
        source,
        sink,
        pipeline,
        delivery,
        isolation,
        instance,
        runtime,
        plugins,
        plugins_dir,
        admin_listen,
        capture,
    }
}

/// `[capture]`: capture writes Kafka topics, so the run must read them from Kafka, and
/// every captured table's topic must be one the source subscribes to (else its events
/// would pile up unread). A `^regex` subscription is librdkafka's to match; it is not
/// checked here.
fn validate_capture(
    raw: RawAnyCapture,
    source: &SourceConfig,
    problems: &mut Problems,
) -> CaptureKind {
    let properties = match source {
        SourceConfig::Kafka(settings) => settings.properties.as_slice(),
        _ => {
            problems.add(
                "capture",
                "capture writes to Kafka: set source.type = \"kafka\" to read what it captures",
            );
            &[]
        }
    };
    let capture = sluice_capture::config::validate_embedded_any(raw, properties, &mut problems.0);
    if let SourceConfig::Kafka(settings) = source {
        let regex = settings.topics.iter().any(|topic| topic.starts_with('^'));
        for topic in capture.topics() {
            if !regex && !settings.topics.contains(&topic) {
                problems.add(
                    "capture.tables",
                    format!("captured into {topic:?}, which source.topics does not read"),
                );
            }
        }
    }
    capture
}

/// `$XDG_CACHE_HOME/sluice/components`, else `$HOME/.cache/sluice/components`.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("sluice").join("components"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_plugin_config_keys_reach_the_plugin_in_order() {
        let text = r#"
            source = { type = "file" }
            sink = { type = "file" }
            runtime = { cache_dir = "" }
            [[plugin]]
            name = "p"
            path = "Cargo.toml"
            inputs = ["a"]
            outputs = ["b"]
            config = { topic = "x", decimal.handling.mode = "precise", scale = 2 }
        "#;
        let config = parse(text, "t.toml", Path::new(env!("CARGO_MANIFEST_DIR"))).expect("valid");
        assert_eq!(
            config.plugins[0].spec.config,
            vec![
                ("topic".to_owned(), "x".to_owned()),
                ("decimal.handling.mode".to_owned(), "precise".to_owned()),
                ("scale".to_owned(), "2".to_owned()),
            ]
        );
        assert_eq!(config.runtime.cache_dir, None);
    }
}
