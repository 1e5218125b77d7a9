//! The `sluice run` configuration: loaded from TOML in two stages.
//!
//! 1. Deserialize into raw structs that refuse unknown fields (a typo is an error, not a
//!    silently ignored setting).
//! 2. Validate into [`Config`], collecting **every** problem with its path
//!    (`plugin[0].limits.memory`) so a user fixes them all in one go.
//!
//! Relative paths are relative to the directory of the configuration file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::pipeline::PipelineSettings;
use crate::runtime::{PluginLimits, PluginSpec, RuntimeOptions};
use crate::topics::TopicPattern;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub source: SourceConfig,
    pub sink: SinkConfig,
    pub pipeline: PipelineSettings,
    /// Whether each plugin runs in a lane (pipeline, consumer group) of its own.
    pub isolation: crate::lanes::Isolation,
    /// This process's name among its peers, part of every exactly-once
    /// `transactional.id` (`None`: the host name).
    pub instance: Option<String>,
    pub runtime: RuntimeOptions,
    /// Plugins listed in the configuration file itself.
    pub plugins: Vec<PluginConfig>,
    /// A directory of plugin manifests and components, watched and hot-reloaded
    /// (see [`crate::reload`]).
    pub plugins_dir: Option<PathBuf>,
    /// Where the admin HTTP server (`/health`, `/ready`, `/plugins`, `/metrics`) listens.
    pub admin_listen: Option<std::net::SocketAddr>,
    /// SQL Server CDC capture in the same process (`[capture]`): it writes the Debezium
    /// topics that the Kafka source reads.
    pub capture: Option<crate::capture::config::CaptureKind>,
}

impl Config {
    /// Consumers (pipelines, plugin instances) per plugin: `source.consumers` for Kafka,
    /// one otherwise.
    pub fn consumers(&self) -> usize {
        match &self.source {
            SourceConfig::Kafka(settings) => settings.consumers,
            SourceConfig::File { .. } => 1,
        }
    }
}

/// Where events come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    /// JSON lines from a file (`None`: standard input).
    File {
        path: Option<PathBuf>,
        topic: Option<String>,
    },
    /// Debezium change topics in Kafka.
    Kafka(crate::source::kafka::KafkaSourceSettings),
}

/// Where results go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkConfig {
    /// JSON lines to a file (`None`: standard output).
    File { path: Option<PathBuf> },
    /// Kafka topics; librdkafka producer properties, verbatim.
    Kafka { properties: Vec<(String, String)> },
}

/// One plugin to run.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    pub spec: PluginSpec,
    /// The team that owns the plugin (from its manifest), for logs and metrics.
    pub team: Option<String>,
    pub path: PathBuf,
    pub inputs: Vec<TopicPattern>,
    pub outputs: Vec<TopicPattern>,
}

/// A configuration that could not be loaded: every problem found, with its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {reason}")]
    Read { file: String, reason: String },
    #[error("{file}: not valid sluice TOML: {reason}")]
    Syntax { file: String, reason: String },
    #[error("{file}: invalid configuration:{}", format_problems(.problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
}

/// One problem: where (`plugin[0].limits.memory`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

fn format_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("\n  - {}: {}", p.path, p.message))
        .collect()
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
    capture: Option<crate::capture::config::RawAnyCapture>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    #[serde(rename = "type")]
    kind: String,
    path: Option<String>,
    topic: Option<String>,
    #[serde(default)]
    topics: Vec<String>,
    linger: Option<String>,
    consumers: Option<i64>,
    batch_bytes: Option<String>,
    #[serde(default)]
    properties: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    #[serde(rename = "type")]
    kind: String,
    path: Option<String>,
    #[serde(default)]
    properties: toml::Table,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    batch_size: Option<i64>,
    dead_letter_topic: Option<String>,
    lineage_headers: Option<bool>,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    name: Option<String>,
    version: Option<String>,
    team: Option<String>,
    path: Option<String>,
    #[serde(default)]
    inputs: Vec<String>,
    #[serde(default)]
    outputs: Vec<String>,
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory: Option<String>,
    batch_deadline: Option<String>,
    init_deadline: Option<String>,
    log_lines_per_call: Option<i64>,
    max_records_per_event: Option<i64>,
    max_record_bytes: Option<String>,
}

/// How long a Kafka batch waits for more records after its first: long enough to fill
/// batches under load, short enough to add little latency at low rates.
pub const DEFAULT_KAFKA_LINGER: Duration = Duration::from_millis(20);

/// Default cap on the key and value bytes of one Kafka batch: 256 events of ~1 KB fit
/// four times over, and a batch of large events still stays a few MiB in flight.
pub const DEFAULT_KAFKA_BATCH_BYTES: u64 = 4 << 20;

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

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

fn validate(raw: RawConfig, base: &Path, problems: &mut Problems) -> Config {
    let source = match raw.source.kind.as_str() {
        "file" => {
            if raw.source.consumers.is_some_and(|n| n != 1) {
                problems.add(
                    "source.consumers",
                    "a file is read by one consumer per plugin (consumers is for kafka)",
                );
            }
            SourceConfig::File {
                path: optional_path(
                    raw.source.path.as_deref(),
                    base,
                    "source.path",
                    problems,
                    true,
                ),
                topic: raw
                    .source
                    .topic
                    .filter(|topic| topic_name(topic, "source.topic", problems)),
            }
        }
        "kafka" => {
            let mut properties = Vec::new();
            flatten_config(
                &raw.source.properties,
                "",
                "source.properties",
                &mut properties,
                problems,
            );
            for required in ["bootstrap.servers", "group.id"] {
                if !properties.iter().any(|(k, _)| k == required) {
                    problems.add("source.properties", format!("missing {required:?}"));
                }
            }
            for (index, topic) in raw.source.topics.iter().enumerate() {
                // A `^` subscription is a regex, librdkafka's to match.
                if !topic.starts_with('^') {
                    topic_name(topic, &format!("source.topics[{index}]"), problems);
                }
            }
            if raw.source.topics.is_empty() {
                problems.add("source.topics", "list at least one topic (or a ^regex)");
            }
            let linger = raw
                .source
                .linger
                .as_deref()
                .and_then(|text| LINGER_RANGE.check(text, "source.linger", problems))
                .unwrap_or(DEFAULT_KAFKA_LINGER);
            let consumers = match raw.source.consumers {
                None => 1,
                Some(n) if (1..=64).contains(&n) => n as usize,
                Some(n) => {
                    problems.add("source.consumers", format!("{n} is out of range (1 to 64)"));
                    1
                }
            };
            let batch_bytes = raw
                .source
                .batch_bytes
                .as_deref()
                .and_then(|text| BATCH_BYTES_RANGE.check(text, "source.batch_bytes", problems))
                .unwrap_or(DEFAULT_KAFKA_BATCH_BYTES);
            SourceConfig::Kafka(crate::source::kafka::KafkaSourceSettings {
                topics: raw.source.topics,
                properties,
                linger,
                consumers,
                batch_bytes,
            })
        }
        other => {
            problems.add(
                "source.type",
                format!("unknown source type {other:?} (expected \"file\" or \"kafka\")"),
            );
            SourceConfig::File {
                path: None,
                topic: None,
            }
        }
    };
    let sink = match raw.sink.kind.as_str() {
        "file" => SinkConfig::File {
            path: optional_path(raw.sink.path.as_deref(), base, "sink.path", problems, false),
        },
        "kafka" => {
            let mut properties = Vec::new();
            flatten_config(
                &raw.sink.properties,
                "",
                "sink.properties",
                &mut properties,
                problems,
            );
            if !properties.iter().any(|(k, _)| k == "bootstrap.servers") {
                problems.add("sink.properties", "missing \"bootstrap.servers\"");
            }
            SinkConfig::Kafka { properties }
        }
        other => {
            problems.add(
                "sink.type",
                format!("unknown sink type {other:?} (expected \"file\" or \"kafka\")"),
            );
            SinkConfig::File { path: None }
        }
    };

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
    match raw.pipeline.delivery.as_deref() {
        None | Some("at-least-once") => {}
        Some("exactly-once") => {
            pipeline.delivery = crate::pipeline::Delivery::ExactlyOnce;
            if !matches!(source, SourceConfig::Kafka(_))
                || !matches!(sink, SinkConfig::Kafka { .. })
            {
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
        None | Some("per-plugin") => crate::lanes::Isolation::PerPlugin,
        Some("shared") => crate::lanes::Isolation::Shared,
        Some(other) => {
            problems.add(
                "pipeline.isolation",
                format!("unknown isolation {other:?} (expected \"per-plugin\" or \"shared\")"),
            );
            crate::lanes::Isolation::PerPlugin
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
    let admin_listen = raw.admin.listen.as_deref().and_then(|text| {
        listen_address(text, "127.0.0.1:9464")
            .map_err(|message| problems.add("admin.listen", message))
            .ok()
    });
    let capture = raw
        .capture
        .map(|capture| validate_capture(capture, &source, problems));
    Config {
        source,
        sink,
        pipeline,
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
    raw: crate::capture::config::RawAnyCapture,
    source: &SourceConfig,
    problems: &mut Problems,
) -> crate::capture::config::CaptureKind {
    let properties = match source {
        SourceConfig::Kafka(settings) => settings.properties.as_slice(),
        SourceConfig::File { .. } => {
            problems.add(
                "capture",
                "capture writes to Kafka: set source.type = \"kafka\" to read what it captures",
            );
            &[]
        }
    };
    let capture = crate::capture::config::validate_embedded_any(raw, properties, &mut problems.0);
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

/// An admin server's `listen` address (`host:port`); the error names `example`.
pub(crate) fn listen_address(text: &str, example: &str) -> Result<std::net::SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an address:port (e.g. \"{example}\")"))
}

/// Validates one plugin table. `at` prefixes problem paths (`plugin[0].` in a config
/// file, empty in a manifest); `defaults` supplies the name and component path a
/// manifest implies by its file name.
fn validate_plugin(
    raw: RawPlugin,
    base: &Path,
    at: &str,
    defaults: Option<(&str, PathBuf)>,
    problems: &mut Problems,
) -> Option<PluginConfig> {
    let before = problems.0.len();
    let (default_name, default_path) = match defaults {
        Some((name, path)) => (Some(name.to_owned()), Some(path)),
        None => (None, None),
    };
    let name = match raw.name.or(default_name) {
        Some(name) if is_plugin_name(&name) => name,
        Some(name) => {
            problems.add(
                format!("{at}name"),
                format!("{name:?} is not a plugin name (use a-z, 0-9, '-' and '_')"),
            );
            String::new()
        }
        None => {
            problems.add(format!("{at}name"), "missing");
            String::new()
        }
    };
    let path = match raw.path {
        Some(path) => {
            let resolved = base.join(&path);
            // Only existence here: what kind of file it is, how large and where it
            // leads are the plugin file rules, checked when it is read
            // (crate::runtime::file), which name the rule broken.
            if !resolved.exists() {
                problems.add(
                    format!("{at}path"),
                    format!("{path} does not exist or is not a file"),
                );
            }
            resolved
        }
        None => match default_path {
            Some(path) if path.exists() => path,
            Some(path) => {
                problems.add(
                    format!("{at}path"),
                    format!("absent, and the default {} does not exist", path.display()),
                );
                path
            }
            None => {
                problems.add(format!("{at}path"), "missing (the .wasm component to run)");
                PathBuf::new()
            }
        },
    };
    let inputs = patterns(&raw.inputs, &format!("{at}inputs"), problems);
    let outputs = patterns(&raw.outputs, &format!("{at}outputs"), problems);
    let mut limits = PluginLimits::default();
    if let Some(memory) = raw.limits.memory
        && let Some(bytes) = MEMORY_RANGE.check(&memory, &format!("{at}limits.memory"), problems)
    {
        limits.memory_bytes = bytes;
    }
    if let Some(deadline) = raw.limits.batch_deadline
        && let Some(duration) =
            DEADLINE_RANGE.check(&deadline, &format!("{at}limits.batch_deadline"), problems)
    {
        limits.batch_deadline = duration;
    }
    if let Some(deadline) = raw.limits.init_deadline {
        match parse_duration(&deadline) {
            Some(duration) if !duration.is_zero() => limits.init_deadline = duration,
            _ => problems.add(
                format!("{at}limits.init_deadline"),
                format!("{deadline:?} is not a positive duration; use ms, s or m (e.g. \"10s\")"),
            ),
        }
    }
    if let Some(lines) = raw.limits.log_lines_per_call {
        match u32::try_from(lines) {
            Ok(lines) => limits.log_lines_per_call = lines,
            Err(_) => problems.add(
                format!("{at}limits.log_lines_per_call"),
                format!("{lines} is out of range"),
            ),
        }
    }
    if let Some(records) = raw.limits.max_records_per_event {
        match u32::try_from(records) {
            Ok(records) if records > 0 => limits.max_records_per_event = records,
            _ => problems.add(
                format!("{at}limits.max_records_per_event"),
                format!("{records} is out of range (1 to 4294967295)"),
            ),
        }
    }
    if let Some(size) = raw.limits.max_record_bytes
        && let Some(bytes) =
            RECORD_BYTES_RANGE.check(&size, &format!("{at}limits.max_record_bytes"), problems)
    {
        limits.max_record_bytes = bytes;
    }
    let mut config = Vec::new();
    flatten_config(
        &raw.config,
        "",
        &format!("{at}config"),
        &mut config,
        problems,
    );
    (problems.0.len() == before).then(|| PluginConfig {
        spec: PluginSpec {
            name,
            version: raw.version.unwrap_or_else(|| "0.0.0".to_owned()),
            config,
            limits,
        },
        team: raw.team,
        path,
        inputs,
        outputs,
    })
}

/// Loads a plugin manifest (`<name>.toml`): the same fields as a `[[plugin]]` table of
/// the configuration, plus `team`. `name` defaults to the file name and `path` to the
/// `<name>.wasm` beside the manifest.
pub fn load_manifest(manifest: &Path) -> Result<PluginConfig, ConfigError> {
    let text = std::fs::read_to_string(manifest).map_err(|e| ConfigError::Read {
        file: manifest.display().to_string(),
        reason: e.to_string(),
    })?;
    parse_manifest(manifest, &text)
}

/// [`load_manifest`] for a manifest already read (the reloader reads plugin files
/// itself, with their size and type checked).
pub fn parse_manifest(manifest: &Path, text: &str) -> Result<PluginConfig, ConfigError> {
    let file = crate::runtime::log::printable_path(manifest);
    let raw: RawPlugin = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        file: file.clone(),
        reason: e.to_string().trim_end().to_owned(),
    })?;
    let base = manifest.parent().unwrap_or(Path::new("."));
    let stem = manifest
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let default_path = base.join(format!("{stem}.wasm"));
    let mut problems = Problems::default();
    let plugin = validate_plugin(raw, base, "", Some((&stem, default_path)), &mut problems);
    match plugin {
        Some(plugin) if problems.0.is_empty() => Ok(plugin),
        _ => Err(ConfigError::Invalid {
            file,
            problems: problems.0,
        }),
    }
}

fn is_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn patterns(raw: &[String], at: &str, problems: &mut Problems) -> Vec<TopicPattern> {
    if raw.is_empty() {
        problems.add(at, "must list at least one topic or pattern");
    }
    raw.iter()
        .enumerate()
        .filter_map(|(i, text)| match TopicPattern::parse(text) {
            Ok(pattern) => Some(pattern),
            Err(e) => {
                problems.add(format!("{at}[{i}]"), e.to_string());
                None
            }
        })
        .collect()
}

/// Flattens nested tables into dotted keys, so `decimal.handling.mode = "precise"` (which
/// TOML reads as nested tables) reaches the plugin as the key `decimal.handling.mode`.
fn flatten_config(
    table: &toml::Table,
    prefix: &str,
    at: &str,
    out: &mut Vec<(String, String)>,
    problems: &mut Problems,
) {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::String(text) => out.push((key, text.clone())),
            toml::Value::Integer(n) => out.push((key, n.to_string())),
            toml::Value::Float(x) => out.push((key, x.to_string())),
            toml::Value::Boolean(b) => out.push((key, b.to_string())),
            toml::Value::Table(inner) => flatten_config(inner, &key, at, out, problems),
            toml::Value::Datetime(_) | toml::Value::Array(_) => problems.add(
                format!("{at}.{key}"),
                "plugin config values must be strings, numbers or booleans",
            ),
        }
    }
}

fn optional_path(
    raw: Option<&str>,
    base: &Path,
    at: &str,
    problems: &mut Problems,
    must_exist: bool,
) -> Option<PathBuf> {
    match raw {
        None | Some("-") => None,
        Some(path) => {
            let resolved = base.join(path);
            if must_exist && !resolved.is_file() {
                problems.add(at, format!("{path} does not exist or is not a file"));
            }
            Some(resolved)
        }
    }
}

/// `$XDG_CACHE_HOME/sluice/components`, else `$HOME/.cache/sluice/components`.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("sluice").join("components"))
}

/// The allowed range of a duration or size setting. Every duration and size has a
/// maximum: past it a value is a mistake (a batch deadline of 584 billion years), and
/// passing it on would overflow the clocks and counters it reaches (wasmtime's epoch
/// deadline, librdkafka's limits).
struct Range<T> {
    min: T,
    max: T,
    /// The maximum as written in the message (`10m`, `4GiB`).
    min_text: &'static str,
    max_text: &'static str,
    example: &'static str,
}

/// `source.linger`: a consumer that waits longer than a minute for a batch only holds
/// events back (and nears `max.poll.interval.ms`, 5 minutes by default).
const LINGER_RANGE: Range<Duration> = Range {
    min: Duration::ZERO,
    max: Duration::from_secs(60),
    min_text: "0ms",
    max_text: "1m",
    example: "20ms",
};

/// `limits.batch_deadline`: a plugin that needs more than 10 minutes for one batch is
/// stuck, which is what the deadline is there to catch.
const DEADLINE_RANGE: Range<Duration> = Range {
    min: Duration::from_millis(1),
    max: Duration::from_secs(600),
    min_text: "1ms",
    max_text: "10m",
    example: "5s",
};

/// `limits.memory`: a wasm32 memory cannot grow past 4 GiB.
const MEMORY_RANGE: Range<u64> = Range {
    min: 1 << 20,
    max: 4 << 30,
    min_text: "1MiB",
    max_text: "4GiB",
    example: "64MiB",
};

/// `limits.max_record_bytes`: Kafka (`message.max.bytes`) takes no record over 1 GB.
const RECORD_BYTES_RANGE: Range<u64> = Range {
    min: 1,
    max: 1_000_000_000,
    min_text: "1B",
    max_text: "1GB",
    example: "1MiB",
};

/// `source.batch_bytes`: a batch is held in memory whole, twice (read and output).
const BATCH_BYTES_RANGE: Range<u64> = Range {
    min: 1,
    max: 1 << 30,
    min_text: "1B",
    max_text: "1GiB",
    example: "4MiB",
};

/// How many digits `text` starts with (after spaces).
fn leading_digits(text: &str) -> usize {
    text.trim().chars().take_while(char::is_ascii_digit).count()
}

impl Range<Duration> {
    /// The duration `text` means, if it parses and lies in the range; else a problem at
    /// `path` saying which bound it breaks.
    fn check(&self, text: &str, path: &str, problems: &mut Problems) -> Option<Duration> {
        let unit = text
            .trim()
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim();
        let parsed = parse_duration(text);
        let over = match parsed {
            Some(duration) => duration > self.max,
            // Digits and a known unit that still do not parse: too large to represent.
            None => matches!(unit, "ms" | "s" | "m") && leading_digits(text) > 0,
        };
        let message = match parsed {
            _ if over => format!("{text:?} is over the maximum of {}", self.max_text),
            Some(duration) if duration < self.min => {
                format!("{text:?} is below the minimum of {}", self.min_text)
            }
            Some(duration) => return Some(duration),
            None => format!(
                "{text:?} is not a duration; use ms, s or m (e.g. \"{}\")",
                self.example
            ),
        };
        problems.add(path, message);
        None
    }
}

impl Range<u64> {
    /// The size `text` means, if it parses and lies in the range; else a problem at
    /// `path` saying which bound it breaks.
    fn check(&self, text: &str, path: &str, problems: &mut Problems) -> Option<u64> {
        let parsed = parse_size(text);
        let unit = text
            .trim()
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim();
        let known_unit = matches!(unit, "" | "B" | "KiB" | "MiB" | "GiB" | "KB" | "MB" | "GB");
        let over = match parsed {
            Some(bytes) => bytes > self.max,
            None => known_unit && leading_digits(text) > 0,
        };
        let message = match parsed {
            _ if over => format!("{text:?} is over the maximum of {}", self.max_text),
            Some(bytes) if bytes < self.min => {
                format!("{text:?} is below the minimum of {}", self.min_text)
            }
            Some(bytes) => return Some(bytes),
            None => format!(
                "{text:?} is not a size; use a number with B, KiB, MiB or GiB (e.g. \"{}\")",
                self.example
            ),
        };
        problems.add(path, message);
        None
    }
}

/// Whether `topic` is a valid Kafka topic name; if not, a problem at `path` says why.
fn topic_name(topic: &str, path: &str, problems: &mut Problems) -> bool {
    match crate::topics::check_topic_name(topic) {
        Ok(()) => true,
        Err(error) => {
            problems.add(path, error.to_string());
            false
        }
    }
}

/// Parses `64MiB`, `512KiB`, `1GiB`, `1000000B`, `64MB` (decimal), or plain bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

/// Parses `500ms`, `5s`, `2m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(number)),
        "s" => Some(Duration::from_secs(number)),
        "m" => Some(Duration::from_secs(number.checked_mul(60)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("10MB"), Some(10_000_000));
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("64XB"), None);
        assert_eq!(parse_size("MiB"), None);
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), None);
    }

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
