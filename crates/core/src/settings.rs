//! Settings helpers every configuration shares: sizes, durations, listen addresses,
//! nested property tables, and the problems validation reports.
//!
//! sluice loads configuration in two stages: raw serde structs that refuse unknown fields,
//! then validation that collects **every** [`Problem`] with its path
//! (`plugin[0].limits.memory`) so a user fixes them all in one go. Each connector
//! validates its own table with these helpers.

use std::time::Duration;

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

/// The problems found so far while validating.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Adds the problem at `path`.
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Flattens nested tables into dotted keys, so `decimal.handling.mode = "precise"` (which
/// TOML reads as nested tables) reaches the plugin as the key `decimal.handling.mode`.
pub fn flatten_config(
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

/// An admin server's `listen` address (`host:port`); the error names `example`.
pub fn listen_address(text: &str, example: &str) -> Result<std::net::SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an address:port (e.g. \"{example}\")"))
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
}
