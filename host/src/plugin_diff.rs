//! `sluice plugin diff`: runs two versions of a plugin over the same events, exactly as
//! `sluice run` would, and reports event by event where what they would publish differs
//! ([`sluice_pipeline::compare`]), so a plugin author's CI can see a change before it
//! is deployed.

use std::path::PathBuf;

use sluice_core::json_lines::record_to_json_line;
use sluice_pipeline::compare::{self, Comparison};
use sluice_pipeline::pipeline::PipelineSettings;

use crate::app::RunError;
use crate::plugin_test::{PluginTest, plugin_name, run_records};

/// What to compare.
#[derive(Debug, Clone)]
pub struct PluginDiff {
    pub old: PathBuf,
    pub new: PathBuf,
    /// Debezium events as JSON lines.
    pub input: PathBuf,
    /// Config entries both versions get.
    pub config: Vec<(String, String)>,
    /// Entries for one version only; they replace a `config` entry of the same key.
    pub old_config: Vec<(String, String)>,
    pub new_config: Vec<(String, String)>,
    /// Overrides the topic of every input record.
    pub topic: Option<String>,
    pub batch_size: usize,
    /// How many differing events to keep as examples (all are counted).
    pub max_differences: usize,
    pub cache_dir: Option<PathBuf>,
}

/// Runs both versions over the input (at the same time, each on its own plugin thread)
/// and compares what they produced.
pub async fn run(diff: &PluginDiff) -> Result<Comparison, RunError> {
    let side = |plugin: &PathBuf, config: &[(String, String)]| PluginTest {
        plugin: plugin.clone(),
        input: diff.input.clone(),
        config: merged(&diff.config, config),
        topic: diff.topic.clone(),
        batch_size: diff.batch_size,
        cache_dir: diff.cache_dir.clone(),
    };
    let (old, new) = (
        side(&diff.old, &diff.old_config),
        side(&diff.new, &diff.new_config),
    );
    // One name for both: dead letters name the plugin, and the name is not what changed.
    let name = plugin_name(&diff.new);
    let ((old_records, old_stats), (new_records, _)) = tokio::try_join!(
        run_records(&old, &name, true),
        run_records(&new, &name, true)
    )?;
    Ok(compare::compare(
        old_stats.records_in,
        old_records,
        new_records,
        &PipelineSettings::default().dead_letter_topic,
        diff.max_differences,
    ))
}

/// `base` with the entries of `over` added, an entry of `over` replacing one of `base`
/// with the same key.
fn merged(base: &[(String, String)], over: &[(String, String)]) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = base
        .iter()
        .filter(|(key, _)| !over.iter().any(|(replacing, _)| replacing == key))
        .cloned()
        .collect();
    entries.extend(over.iter().cloned());
    entries
}

/// The report a person reads: each kept difference with both versions' records (JSON
/// lines as the file sink writes them), then one summary line.
pub fn render(comparison: &Comparison) -> String {
    let mut text = String::new();
    for difference in &comparison.examples {
        match &difference.event {
            Some(event) => text.push_str(&format!("event {event}: {}\n", difference.kind)),
            None => text.push_str(&format!(
                "records without lineage headers: {}\n",
                difference.kind
            )),
        }
        for (side, records) in [("old", &difference.old), ("new", &difference.new)] {
            if records.is_empty() {
                text.push_str(&format!("  {side}: (nothing)\n"));
            }
            for record in records {
                text.push_str(&format!("  {side}: {}\n", record_to_json_line(record)));
            }
        }
    }
    let shown = comparison.examples.len() as u64;
    let total = comparison.differing + comparison.rejected_by_one_only;
    if shown < total {
        text.push_str(&format!(
            "({shown} of {total} differing events shown; --max-differences shows more)\n"
        ));
    }
    text.push_str(&format!(
        "compared {} events: {} equal, {} differ, {} dead-lettered by one version only\n",
        comparison.events, comparison.equal, comparison.differing, comparison.rejected_by_one_only
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_version_entry_replaces_the_shared_one() {
        let config = merged(
            &entries(&[("stamp", "both"), ("mode", "x")]),
            &entries(&[("stamp", "new")]),
        );
        assert_eq!(config, entries(&[("mode", "x"), ("stamp", "new")]));
    }
}
