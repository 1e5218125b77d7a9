//! The Debezium SQL Server options users moving from Debezium look for, checked into
//! [`CaptureSettings`](crate::CaptureSettings): table and column lists,
//! column masks, `snapshot.isolation.mode`, `snapshot.select.statement.overrides`,
//! `time.precision.mode`, `binary.handling.mode` and `database.names`. Each problem is
//! reported with its path, as the rest of the configuration.

use serde::Deserialize;
use sluice_core::settings::Problem;

use super::tables::SnapshotIsolation;
use super::types::{BinaryMode, TimePrecision};
use crate::config::add;
use crate::filters::{Filter, Patterns};
use crate::masks::{HashAlgorithm, Mask, MaskRule};

/// One `[[capture.column_masks]]` entry: `columns` (patterns over `schema.table.column`)
/// and either `chars = N` or `hash = "SHA-256"` with `salt` (and `hash_version = 2` for
/// Debezium's `column.mask.hash.v2.*`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMask {
    columns: Option<String>,
    chars: Option<i64>,
    hash: Option<String>,
    salt: Option<String>,
    hash_version: Option<i64>,
}

impl RawMask {
    /// The keys of a `[[capture.column_masks]]` entry, one per line (what `sluice
    /// capture convert` writes).
    pub fn toml_lines(columns: &str, mask: &Mask) -> String {
        let text = |t: &str| toml::Value::String(t.to_owned()).to_string();
        match mask {
            Mask::Chars(n) => format!("columns = {}\nchars = {n}\n", text(columns)),
            Mask::Hash {
                algorithm,
                salt,
                v2,
            } => format!(
                "columns = {}\nhash = \"{}\"\nsalt = {}\n{}",
                text(columns),
                algorithm.java_name(),
                text(salt),
                if *v2 { "hash_version = 2\n" } else { "" }
            ),
        }
    }
}

/// The masks, each checked at `capture.column_masks[i]`.
pub fn masks(raw: Vec<RawMask>, problems: &mut Vec<Problem>) -> Vec<MaskRule> {
    let mut rules = Vec::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let path = format!("capture.column_masks[{i}]");
        let columns = match raw.columns.as_deref().map(Patterns::parse) {
            Some(Ok(columns)) => Some(columns),
            Some(Err(message)) => {
                add(problems, &format!("{path}.columns"), message);
                None
            }
            None => {
                add(
                    problems,
                    &format!("{path}.columns"),
                    "missing (patterns over \"schema.table.column\")",
                );
                None
            }
        };
        let mask = match (raw.chars, raw.hash) {
            (Some(n), None) if (1..=10_000).contains(&n) && raw.salt.is_none() => {
                Some(Mask::Chars(n as usize))
            }
            (Some(n), None) if raw.salt.is_none() => {
                add(
                    problems,
                    &format!("{path}.chars"),
                    format!("{n} is out of range (1 to 10000)"),
                );
                None
            }
            (None, Some(name)) => match (HashAlgorithm::from_name(&name), raw.salt) {
                (Some(algorithm), Some(salt)) => match raw.hash_version {
                    None | Some(1) => Some(Mask::Hash {
                        algorithm,
                        salt,
                        v2: false,
                    }),
                    Some(2) => Some(Mask::Hash {
                        algorithm,
                        salt,
                        v2: true,
                    }),
                    Some(other) => {
                        add(
                            problems,
                            &format!("{path}.hash_version"),
                            format!("{other} is not 1 or 2"),
                        );
                        None
                    }
                },
                (None, _) => {
                    add(
                        problems,
                        &format!("{path}.hash"),
                        format!(
                            "unknown algorithm {name:?} (expected \"MD5\", \"SHA-1\", \"SHA-256\", \"SHA-384\" or \"SHA-512\")"
                        ),
                    );
                    None
                }
                (Some(_), None) => {
                    add(
                        problems,
                        &format!("{path}.salt"),
                        "missing (a hash mask needs a salt, as Debezium's column.mask.hash.<algorithm>.with.salt.<salt>)",
                    );
                    None
                }
            },
            _ => {
                add(
                    problems,
                    &path,
                    "set either chars = N, or hash = \"<algorithm>\" with salt",
                );
                None
            }
        };
        if let (Some(columns), Some(mask)) = (columns, mask) {
            rules.push(MaskRule { columns, mask });
        }
    }
    rules
}

/// `include`/`exclude` lists at `capture.<what>_include_list` / `_exclude_list`.
pub fn filter(
    include: Option<&str>,
    exclude: Option<&str>,
    what: &str,
    problems: &mut Vec<Problem>,
) -> Filter {
    Filter::from_lists(include, exclude, &format!("capture.{what}")).unwrap_or_else(
        |(path, message)| {
            add(problems, &path, message);
            Filter::All
        },
    )
}

pub fn time_precision(text: Option<&str>, problems: &mut Vec<Problem>) -> TimePrecision {
    match text {
        None | Some("adaptive") => TimePrecision::Adaptive,
        Some("connect") => TimePrecision::Connect,
        Some(other) => {
            add(
                problems,
                "capture.time_precision_mode",
                format!(
                    "unknown mode {other:?} (expected \"adaptive\" or \"connect\", as Debezium's SQL Server connector)"
                ),
            );
            TimePrecision::Adaptive
        }
    }
}

pub fn binary_mode(text: Option<&str>, problems: &mut Vec<Problem>) -> BinaryMode {
    match text {
        None | Some("bytes") => BinaryMode::Bytes,
        Some("base64") => BinaryMode::Base64,
        Some("base64-url-safe") => BinaryMode::Base64UrlSafe,
        Some("hex") => BinaryMode::Hex,
        Some(other) => {
            add(
                problems,
                "capture.binary_handling_mode",
                format!(
                    "unknown mode {other:?} (expected \"bytes\", \"base64\", \"base64-url-safe\" or \"hex\")"
                ),
            );
            BinaryMode::Bytes
        }
    }
}

pub fn snapshot_isolation(text: Option<&str>, problems: &mut Vec<Problem>) -> SnapshotIsolation {
    match text {
        None | Some("snapshot") => SnapshotIsolation::Snapshot,
        Some("repeatable_read") => SnapshotIsolation::RepeatableRead,
        Some("read_committed") => SnapshotIsolation::ReadCommitted,
        Some("read_uncommitted") => SnapshotIsolation::ReadUncommitted,
        Some("exclusive") => SnapshotIsolation::Exclusive,
        Some(other) => {
            add(
                problems,
                "capture.snapshot_isolation_mode",
                format!(
                    "unknown mode {other:?} (expected \"snapshot\", \"repeatable_read\", \"read_committed\", \"read_uncommitted\" or \"exclusive\")"
                ),
            );
            SnapshotIsolation::Snapshot
        }
    }
}

/// `[capture.snapshot_select_overrides]`: `"schema.table" = "SELECT ..."`, each a query
/// whose columns are read by name (see [`super::connection`]).
pub fn select_overrides(raw: toml::Table, problems: &mut Vec<Problem>) -> Vec<(String, String)> {
    let mut overrides = Vec::new();
    for (table, query) in raw {
        let path = format!("capture.snapshot_select_overrides.{table}");
        let parts: Vec<&str> = table.split('.').collect();
        if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
            add(
                problems,
                &path,
                format!("{table:?} is not \"schema.table\""),
            );
            continue;
        }
        match query {
            toml::Value::String(q) if q.trim().to_ascii_lowercase().starts_with("select") => {
                overrides.push((table, q));
            }
            _ => add(problems, &path, "must be a SELECT statement (a string)"),
        }
    }
    overrides
}

/// `database.names`: several databases of one server, each captured as its own
/// (topics, `source.db`, offsets and transactional id per database).
pub fn database_names(text: Option<&str>, problems: &mut Vec<Problem>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in text
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        if !crate::config::is_name(name) || name.contains('.') {
            add(
                problems,
                "capture.database_names",
                format!("{name:?} is not a database name (letters, digits, '_' or '-')"),
            );
        } else if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            add(
                problems,
                "capture.database_names",
                format!("{name:?} is listed twice"),
            );
        } else {
            names.push(name.to_owned());
        }
    }
    names
}
