//! A plugin's manifest: which component to run, the topics it reads and may write, its
//! configuration and its limits. The same table is a `[[plugin]]` of `sluice run`'s
//! configuration and a `<name>.toml` file of a plugins directory ([`crate::reload`]).
//!
//! Two stages like every sluice configuration: [`RawPlugin`] refuses unknown fields,
//! [`validate_plugin`] reports every problem with its path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sluice_core::settings::{ConfigError, Problems, Range, flatten_config, parse_duration};
use sluice_core::topics::TopicPattern;
use sluice_runtime::log::printable_path;
use sluice_runtime::{PluginLimits, PluginSpec};

/// One plugin to run.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    pub spec: PluginSpec,
    /// The team that owns the plugin (from its manifest), for logs and metrics.
    pub team: Option<String>,
    pub path: PathBuf,
    pub inputs: Vec<TopicPattern>,
    pub outputs: Vec<TopicPattern>,
    /// Serving, or a candidate version of another plugin (shadow or canary).
    pub role: Role,
    /// How many instances each batch is divided among, by key (see
    /// `sluice_runtime::start_plugin`): a Flink operator's parallelism, for plugins slower
    /// than their input. 1 by default.
    pub parallelism: usize,
}

/// The most instances a plugin's batches are divided among (each has its own memory cap
/// and thread).
pub const MAX_PARALLELISM: i64 = 64;

/// What a plugin version does in its lane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Role {
    /// Publishes what it produces (the default).
    #[default]
    Serving,
    /// Runs on the batches of plugin `of`, in its lane; what it produces is compared
    /// with what `of` produces, never published (`mode = "shadow"`, `shadows = "<of>"`).
    Shadow { of: String },
    /// Serves `per_mille`/1000 of the keys of plugin `of`'s events, in its lane; the
    /// rest stay on `of` (`mode = "canary"`, `canary_of = "<of>"`, `share = "10%"`).
    Canary { of: String, per_mille: u32 },
}

impl Role {
    /// The serving plugin a candidate runs beside (`None` for a serving plugin).
    pub fn candidate_of(&self) -> Option<&str> {
        match self {
            Role::Serving => None,
            Role::Shadow { of } | Role::Canary { of, .. } => Some(of),
        }
    }

    /// `serve`, `shadow` or `canary`, as a manifest's `mode` says it.
    pub fn mode(&self) -> &'static str {
        match self {
            Role::Serving => "serve",
            Role::Shadow { .. } => "shadow",
            Role::Canary { .. } => "canary",
        }
    }

    /// A canary's share as a percentage (`"12.5%"`).
    pub fn share(&self) -> Option<String> {
        match self {
            Role::Canary { per_mille, .. } => Some(format!("{}%", (f64::from(*per_mille) / 10.0))),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlugin {
    pub name: Option<String>,
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
    /// `serve` (default), `shadow` or `canary`.
    mode: Option<String>,
    /// The plugin a shadow is compared with.
    shadows: Option<String>,
    /// The plugin a canary takes a share of the keys from.
    canary_of: Option<String>,
    /// A canary's share of the keys: `"10%"` (0.1% steps).
    share: Option<String>,
    /// Instances each batch is divided among, by key (default 1).
    parallelism: Option<i64>,
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
    max_output_topics: Option<i64>,
}

/// `value` as a count of at least one, or a problem at `path`.
fn positive_u32(value: i64, path: &str, problems: &mut Problems) -> Option<u32> {
    match u32::try_from(value) {
        Ok(n) if n > 0 => Some(n),
        _ => {
            problems.add(path, format!("{value} is out of range (1 to 4294967295)"));
            None
        }
    }
}

/// Validates one plugin table. `at` prefixes problem paths (`plugin[0].` in a config
/// file, empty in a manifest); `defaults` supplies the name and component path a
/// manifest implies by its file name.
pub fn validate_plugin(
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
            // (sluice_runtime::file), which name the rule broken.
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
    if let Some(records) = raw.limits.max_records_per_event
        && let Some(records) = positive_u32(
            records,
            &format!("{at}limits.max_records_per_event"),
            problems,
        )
    {
        limits.max_records_per_event = records;
    }
    if let Some(topics) = raw.limits.max_output_topics
        && let Some(topics) =
            positive_u32(topics, &format!("{at}limits.max_output_topics"), problems)
    {
        limits.max_output_topics = topics;
    }
    if let Some(size) = raw.limits.max_record_bytes
        && let Some(bytes) =
            RECORD_BYTES_RANGE.check(&size, &format!("{at}limits.max_record_bytes"), problems)
    {
        limits.max_record_bytes = bytes;
    }
    let parallelism = match raw.parallelism {
        None => 1,
        Some(n) if (1..=MAX_PARALLELISM).contains(&n) => n as usize,
        Some(n) => {
            problems.add(
                format!("{at}parallelism"),
                format!("{n} is out of range (1 to {MAX_PARALLELISM})"),
            );
            1
        }
    };
    let role = validate_role(
        &name,
        raw.mode.as_deref(),
        raw.shadows,
        raw.canary_of,
        raw.share.as_deref(),
        at,
        problems,
    );
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
        role,
        parallelism,
    })
}

/// `mode` with the fields it needs: `shadows` for a shadow, `canary_of` and `share` for
/// a canary, none of them for a serving plugin.
fn validate_role(
    name: &str,
    mode: Option<&str>,
    shadows: Option<String>,
    canary_of: Option<String>,
    share: Option<&str>,
    at: &str,
    problems: &mut Problems,
) -> Role {
    let target = |field: &str, value: Option<String>, problems: &mut Problems| match value {
        Some(of) if of == name => {
            problems.add(format!("{at}{field}"), "names the plugin itself");
            String::new()
        }
        Some(of) if is_plugin_name(&of) => of,
        Some(of) => {
            problems.add(
                format!("{at}{field}"),
                format!("{of:?} is not a plugin name"),
            );
            String::new()
        }
        None => {
            problems.add(
                format!("{at}{field}"),
                "missing (the serving plugin this version runs beside)",
            );
            String::new()
        }
    };
    let unexpected = |field: &str, present: bool, problems: &mut Problems| {
        if present {
            problems.add(
                format!("{at}{field}"),
                format!(
                    "only for mode = \"{}\"",
                    if field == "shadows" {
                        "shadow"
                    } else {
                        "canary"
                    }
                ),
            );
        }
    };
    match mode.unwrap_or("serve") {
        "serve" => {
            unexpected("shadows", shadows.is_some(), problems);
            unexpected("canary_of", canary_of.is_some(), problems);
            unexpected("share", share.is_some(), problems);
            Role::Serving
        }
        "shadow" => {
            unexpected("canary_of", canary_of.is_some(), problems);
            unexpected("share", share.is_some(), problems);
            Role::Shadow {
                of: target("shadows", shadows, problems),
            }
        }
        "canary" => {
            unexpected("shadows", shadows.is_some(), problems);
            let of = target("canary_of", canary_of, problems);
            let per_mille = match share.map(parse_share) {
                Some(Some(per_mille)) => per_mille,
                Some(None) => {
                    problems.add(
                        format!("{at}share"),
                        format!(
                            "{:?} is not a share of the keys; use a percentage over 0% and up to 100%, in 0.1% steps (e.g. \"10%\")",
                            share.unwrap_or_default()
                        ),
                    );
                    0
                }
                None => {
                    problems.add(format!("{at}share"), "missing (e.g. share = \"10%\")");
                    0
                }
            };
            Role::Canary { of, per_mille }
        }
        other => {
            problems.add(
                format!("{at}mode"),
                format!("{other:?} is not a mode; use \"serve\", \"shadow\" or \"canary\""),
            );
            Role::Serving
        }
    }
}

/// `"12.5%"` → 125 (per mille), over 0 and at most 1000, in whole per mille.
fn parse_share(text: &str) -> Option<u32> {
    let percent: f64 = text.trim().strip_suffix('%')?.trim().parse().ok()?;
    let per_mille = percent * 10.0;
    let rounded = per_mille.round();
    ((rounded - per_mille).abs() < 1e-9 && (1.0..=1000.0).contains(&rounded))
        .then_some(rounded as u32)
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
    let file = printable_path(manifest);
    let raw: RawPlugin = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        file: file.clone(),
        reason: e.to_string().trim_end().to_owned(),
    })?;
    let base = manifest.parent().unwrap_or(Path::new("."));
    let stem = manifest
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // From the path itself, not the printable stem: a file name need not be UTF-8.
    let default_path = manifest.with_extension("wasm");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A team's file names need not be UTF-8: the default component is found from the
    /// manifest's own path (it was looked for under the name made printable, and the
    /// manifest refused with "does not exist").
    #[test]
    fn a_manifest_whose_file_name_is_not_utf8_finds_its_component() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let team = dir.path().join(std::ffi::OsStr::from_bytes(b"t\xffeam"));
        std::fs::create_dir(&team).expect("team folder");
        let manifest = team.join(std::ffi::OsStr::from_bytes(b"\xfe.toml"));
        let component = team.join(std::ffi::OsStr::from_bytes(b"\xfe.wasm"));
        std::fs::write(&component, b"not read here").expect("component");
        let text = "name = \"weird\"\ninputs = [\"in\"]\noutputs = [\"out\"]\n";
        let plugin = parse_manifest(&manifest, text).expect("accepted");
        assert_eq!(plugin.path, component);
    }

    #[test]
    fn shares_are_percentages_in_tenths() {
        assert_eq!(parse_share("10%"), Some(100));
        assert_eq!(parse_share("12.5 %"), Some(125));
        assert_eq!(parse_share("0.1%"), Some(1));
        assert_eq!(parse_share("100%"), Some(1000));
        for bad in ["0%", "0.05%", "100.1%", "10", "ten%", "-5%", "12.55%"] {
            assert_eq!(parse_share(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_mode_needs_its_fields_and_only_its_fields() {
        let role = |table: &str| {
            let raw: RawPlugin = toml::from_str(&format!(
                "name = \"next\"\npath = \"Cargo.toml\"\ninputs = [\"in\"]\noutputs = [\"out\"]\n{table}"
            ))
            .expect("toml");
            let mut problems = Problems::default();
            let plugin = validate_plugin(raw, Path::new("."), "", None, &mut problems);
            (plugin.map(|p| p.role), problems.0)
        };
        assert_eq!(
            role("mode = \"shadow\"\nshadows = \"orders\"").0,
            Some(Role::Shadow {
                of: "orders".into()
            })
        );
        assert_eq!(
            role("mode = \"canary\"\ncanary_of = \"orders\"\nshare = \"25%\"").0,
            Some(Role::Canary {
                of: "orders".into(),
                per_mille: 250
            })
        );
        assert_eq!(role("").0, Some(Role::Serving));
        let (_, problems) = role("mode = \"shadow\"\nshare = \"5%\"");
        assert_eq!(problems.len(), 2, "{problems:?}");
        let (_, problems) = role("mode = \"canary\"\ncanary_of = \"next\"");
        assert_eq!(problems.len(), 2, "itself, and no share: {problems:?}");
        let (_, problems) = role("mode = \"blue-green\"");
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn parallelism_is_one_by_default_and_refused_out_of_range() {
        let parallelism = |line: &str| {
            let raw: RawPlugin = toml::from_str(&format!(
                "name = \"p\"\npath = \"Cargo.toml\"\ninputs = [\"in\"]\noutputs = [\"out\"]\n{line}"
            ))
            .expect("toml");
            let mut problems = Problems::default();
            let plugin = validate_plugin(raw, Path::new("."), "plugin[0].", None, &mut problems);
            (plugin.map(|p| p.parallelism), problems.0)
        };
        assert_eq!(parallelism("").0, Some(1));
        assert_eq!(parallelism("parallelism = 4").0, Some(4));
        assert_eq!(parallelism("parallelism = 64").0, Some(64));
        for bad in ["0", "-2", "65"] {
            let (plugin, problems) = parallelism(&format!("parallelism = {bad}"));
            assert_eq!(plugin, None, "{bad}");
            assert_eq!(
                problems
                    .iter()
                    .map(|p| format!("{}: {}", p.path, p.message))
                    .collect::<Vec<_>>(),
                [format!(
                    "plugin[0].parallelism: {bad} is out of range (1 to 64)"
                )],
            );
        }
    }
}
