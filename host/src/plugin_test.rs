//! `sluice plugin test`: runs a plugin over a file of events, exactly as `sluice run`
//! would, and compares the records it produces with an expectation.
//!
//! Output and expectation use the file sink's JSON lines (see [`sluice_pipeline::sink::file`]);
//! rejected and trapping events appear as dead-letter records with their reason in the
//! headers. Lines are compared as JSON values, one by one, ignoring the
//! `sluice.plugin.sha256` header (it changes with every build of the plugin).

use std::path::{Path, PathBuf};

use sluice_core::OutputRecord;
use sluice_core::topics::TopicPattern;
use sluice_pipeline::pipeline::{Pipeline, PipelineSettings, PipelineStats, Route, headers};
use sluice_pipeline::sink::file::record_to_json_line;
use sluice_pipeline::sink::memory::MemorySink;
use sluice_pipeline::source::file::{FileInput, FileSource};
use sluice_runtime::{PluginSpec, PluginThread, PluginWorker, Runtime, RuntimeOptions};

use crate::app::RunError;

/// What to test.
#[derive(Debug, Clone)]
pub struct PluginTest {
    pub plugin: PathBuf,
    pub input: PathBuf,
    pub config: Vec<(String, String)>,
    /// Overrides the topic of every input record.
    pub topic: Option<String>,
    pub batch_size: usize,
    pub cache_dir: Option<PathBuf>,
}

/// What the plugin produced.
#[derive(Debug, Clone)]
pub struct PluginTestRun {
    /// The output records as JSON lines, in order.
    pub lines: Vec<String>,
    pub stats: PipelineStats,
}

/// Runs the plugin over the input.
pub async fn run(test: &PluginTest) -> Result<PluginTestRun, RunError> {
    let (records, stats) = run_records(test, &plugin_name(&test.plugin), false).await?;
    Ok(PluginTestRun {
        lines: records.iter().map(record_to_json_line).collect(),
        stats,
    })
}

/// The name a plugin file runs under when no manifest names it: its file stem.
pub fn plugin_name(plugin: &Path) -> String {
    plugin
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".to_owned())
}

/// Runs the plugin, named `name`, over the input, as `sluice run` would, with or without
/// the lineage headers; returns the records in order.
pub async fn run_records(
    test: &PluginTest,
    name: &str,
    lineage_headers: bool,
) -> Result<(Vec<OutputRecord>, PipelineStats), RunError> {
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: test.cache_dir.clone(),
        ..RuntimeOptions::default()
    })?;
    let name = name.to_owned();
    let spec = PluginSpec {
        name: name.clone(),
        version: "test".to_owned(),
        config: test.config.clone(),
        limits: Default::default(),
    };
    let loaded = runtime.load_file(spec, &test.plugin)?;
    let worker = PluginWorker::new(loaded.instantiate()?);
    let thread = PluginThread::spawn(worker).map_err(|source| RunError::Thread {
        plugin: name,
        source,
    })?;
    let everything = vec![TopicPattern::parse("*").expect("`*` is a valid pattern")];
    let route = Route::new(thread, everything.clone(), everything, Default::default());
    let settings = PipelineSettings {
        batch_size: test.batch_size,
        lineage_headers,
        ..PipelineSettings::default()
    };
    let mut source =
        FileSource::open(FileInput::Path(test.input.clone()), test.topic.clone()).await?;
    let mut sink = MemorySink::default();
    let stats = Pipeline::new(vec![route], settings)
        .run(&mut source, &mut sink, std::future::pending())
        .await?;
    Ok((sink.records, stats))
}

/// Compares produced lines with expected lines; returns one message per difference
/// (empty when they match).
pub fn compare(actual: &[String], expected: &[String]) -> Vec<String> {
    let mut differences = Vec::new();
    let expected: Vec<&String> = expected
        .iter()
        .filter(|line| !line.trim().is_empty())
        .collect();
    for (index, pair) in actual.iter().zip(expected.iter()).enumerate() {
        let (got, want) = pair;
        if normalize(got) != normalize(want) {
            differences.push(format!(
                "record {}:\n  expected: {}\n  actual:   {}",
                index + 1,
                want.trim(),
                got
            ));
        }
    }
    if actual.len() > expected.len() {
        for (index, extra) in actual.iter().enumerate().skip(expected.len()) {
            differences.push(format!(
                "record {}: not expected:\n  actual:   {extra}",
                index + 1
            ));
        }
    }
    if expected.len() > actual.len() {
        for (index, missing) in expected.iter().enumerate().skip(actual.len()) {
            differences.push(format!(
                "record {}: missing:\n  expected: {}",
                index + 1,
                missing.trim()
            ));
        }
    }
    differences
}

/// A record line as a JSON value without the headers that change from build to build.
pub fn normalize(line: &str) -> serde_json::Value {
    let mut value: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|_| serde_json::Value::String(line.to_owned()));
    if let Some(list) = value.get_mut("headers").and_then(|h| h.as_array_mut()) {
        list.retain(|pair| pair.get(0).and_then(|k| k.as_str()) != Some(headers::PLUGIN_SHA256));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_as_json_and_reports_each_difference() {
        let actual = vec![
            r#"{"topic":"a","key":1,"value":{"x":1,"y":2},"headers":[["sluice.plugin.sha256","abc"]]}"#.to_owned(),
            r#"{"topic":"b","key":null,"value":null,"headers":[]}"#.to_owned(),
        ];
        let same = vec![
            r#"{"topic":"a", "key":1, "value":{"y":2,"x":1}, "headers":[["sluice.plugin.sha256","other"]]}"#.to_owned(),
            r#"{"topic":"b","key":null,"value":null,"headers":[]}"#.to_owned(),
        ];
        assert!(
            compare(&actual, &same).is_empty(),
            "key order and the plugin hash do not matter"
        );
        let different =
            vec![r#"{"topic":"a","key":2,"value":{"x":1,"y":2},"headers":[]}"#.to_owned()];
        let diff = compare(&actual, &different);
        assert_eq!(diff.len(), 2, "{diff:?}");
        assert!(diff[0].starts_with("record 1:"));
        assert!(diff[1].contains("not expected"));
    }
}
