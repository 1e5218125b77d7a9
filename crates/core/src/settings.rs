//! Settings helpers every configuration shares: sizes, durations, listen addresses,
//! nested property tables, and the problems validation reports.
//!
//! sluice loads configuration in two stages: raw serde structs that refuse unknown fields,
//! then validation that collects **every** [`Problem`] with its path
//! (`plugin[0].limits.memory`) so a user fixes them all in one go. Each connector
//! validates its own table with these helpers.

use std::path::{Path, PathBuf};
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

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm), for
/// the places that read calendar dates without a date library (`--since` times,
/// PostgreSQL dates).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

/// The allowed range of a duration or size setting. Every duration and size has a
/// maximum: past it a value is a mistake (a batch deadline of 584 billion years), and
/// passing it on would overflow the clocks and counters it reaches (wasmtime's epoch
/// deadline, librdkafka's limits).
pub struct Range<T> {
    pub min: T,
    pub max: T,
    /// The bounds as written in messages (`1ms`, `10m`, `4GiB`).
    pub min_text: &'static str,
    pub max_text: &'static str,
    /// A valid value, for the message.
    pub example: &'static str,
}

/// How many digits `text` starts with (after spaces).
fn leading_digits(text: &str) -> usize {
    text.trim().chars().take_while(char::is_ascii_digit).count()
}

impl Range<Duration> {
    /// The duration `text` means, if it parses and lies in the range; else a problem at
    /// `path` saying which bound it breaks.
    pub fn check(&self, text: &str, path: &str, problems: &mut Problems) -> Option<Duration> {
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
    pub fn check(&self, text: &str, path: &str, problems: &mut Problems) -> Option<u64> {
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
pub fn topic_name(topic: &str, path: &str, problems: &mut Problems) -> bool {
    match crate::topics::check_topic_name(topic) {
        Ok(()) => true,
        Err(error) => {
            problems.add(path, error.to_string());
            false
        }
    }
}

/// A path setting relative to `base` (the configuration file's directory); absent or
/// `"-"` is `None` (standard input or output). With `must_exist`, a missing file is a
/// problem at `at`.
pub fn optional_path(
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
