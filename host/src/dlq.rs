//! `sluice dlq replay`: runs the events one plugin sent to the dead-letter topic through
//! the version of that plugin now in service, and publishes what it produces.
//!
//! The dead-letter topic is read with a consumer group of the replay's own
//! (`sluice-replay.<plugin>` unless named), from its committed position up to the end the
//! topic had when the replay started, and the group commits the position after what it
//! read once everything produced is published: a second replay starts after the first and never replays an
//! event again, and a replay that stops half-way (crash, Ctrl-C) starts again from the
//! last commit (at-least-once, like the pipeline). A dead letter is the original record
//! (key, value, headers) plus sluice's `sluice.dlq.*`, `sluice.plugin*` and
//! `sluice.source.*` headers, which is how a replay selects the plugin's events and
//! restores each one's topic, partition and offset. Replayed records carry
//! `sluice.replayed.from` = `<dead-letter topic>/<partition>/<offset>`. Events the new
//! version still rejects go to the dead-letter topic again (with that header), so the
//! next fix can replay them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use sluice_core::sink::Sink;
use sluice_core::{Header, Origin, RawRecord};
use sluice_kafka::connector::KafkaSinkSettings;
pub use sluice_kafka::dead_letters::Bound;
use sluice_kafka::dead_letters::{DeadLetter, DeadLetterReader};
use sluice_kafka::sink::KafkaSink;
use sluice_pipeline::manifest::{PluginConfig, load_manifest};
use sluice_pipeline::pipeline::{Pipeline, PipelineSettings, Route, headers};
use sluice_pipeline::reload::find_manifests;
use sluice_runtime::{Runtime, start_plugin};

use crate::config::{Config, SinkConfig};

/// The header a replayed record carries: where in the dead-letter topic it came from.
pub const REPLAYED_FROM: &str = "sluice.replayed.from";

/// What to replay.
#[derive(Debug, Clone)]
pub struct Replay {
    pub plugin: String,
    pub since: Option<Bound>,
    pub until: Option<Bound>,
    /// Run and report, publish and commit nothing.
    pub dry_run: bool,
    /// The replay's consumer group (default `sluice-replay.<plugin>`).
    pub group: Option<String>,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Dead letters of the plugin run through its version in service.
    pub replayed: u64,
    /// Records published (not dead letters).
    pub published: u64,
    /// Events the version in service still dead-lettered, by reason.
    pub still_rejected: BTreeMap<String, u64>,
    /// Dead letters read that another plugin (or decoding) wrote, left alone.
    pub other: u64,
}

impl std::fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rejected: u64 = self.still_rejected.values().sum();
        writeln!(
            f,
            "replayed {}, published {}, still rejected {rejected}, other dead letters {}",
            self.replayed, self.published, self.other
        )?;
        for (reason, count) in &self.still_rejected {
            writeln!(f, "  still rejected ({count}): {reason}")?;
        }
        Ok(())
    }
}

/// Runs a replay (see the module docs).
pub async fn replay(config: &Config, replay: &Replay) -> Result<ReplayReport> {
    let SinkConfig::Kafka(KafkaSinkSettings { properties }) = &config.sink else {
        bail!(
            "dlq replay needs a kafka sink: the dead-letter topic is read from and written to Kafka"
        );
    };
    let plugin = find_plugin(config, &replay.plugin)?;
    let runtime = Runtime::new(config.runtime.clone())?;
    let loaded = Arc::new(runtime.load_file(plugin.spec.clone(), &plugin.path)?);
    let route = Route::new(
        start_plugin(&loaded, 1, plugin.parallelism)?,
        plugin.inputs.clone(),
        plugin.outputs.clone(),
        Default::default(),
    );
    let topic = config.pipeline.dead_letter_topic.clone();
    let group = replay
        .group
        .clone()
        .unwrap_or_else(|| format!("sluice-replay.{}", replay.plugin));
    let reader = DeadLetterReader::open(properties, &topic, &group, replay.since)?;
    let letters = tokio::task::block_in_place(|| reader.read_all(replay.until))?;

    let mut report = ReplayReport::default();
    let mut selected = Vec::new();
    let mut from: HashMap<(String, i32, i64), String> = HashMap::new();
    for letter in letters.iter().cloned() {
        let place = format!("{topic}/{}/{}", letter.partition, letter.offset);
        match restore(letter, &replay.plugin) {
            Some(record) => {
                let origin = &record.origin;
                from.insert(
                    (origin.topic.clone(), origin.partition, origin.offset),
                    place,
                );
                selected.push(record);
            }
            None => report.other += 1,
        }
    }
    report.replayed = selected.len() as u64;

    let settings = PipelineSettings {
        lineage_headers: true,
        ..config.pipeline.clone()
    };
    let mut pipeline = Pipeline::new(vec![route], settings.clone());
    let mut output = Vec::new();
    for batch in selected.chunks(settings.batch_size.max(1)) {
        output.extend(pipeline.process(batch.to_vec()).await?);
    }
    for record in &mut output {
        let source = |key: &str| header_text(&record.headers, key);
        let origin = (|| {
            Some((
                source(headers::SOURCE_TOPIC)?,
                source(headers::SOURCE_PARTITION)?.parse().ok()?,
                source(headers::SOURCE_OFFSET)?.parse().ok()?,
            ))
        })();
        if let Some(place) = origin.and_then(|origin| from.get(&origin)) {
            record.headers.push(Header::text(REPLAYED_FROM, place));
        }
        if record.topic == topic {
            let reason = header_text(&record.headers, headers::DLQ_REASON).unwrap_or_default();
            *report.still_rejected.entry(reason).or_default() += 1;
        } else {
            report.published += 1;
        }
    }
    if replay.dry_run {
        return Ok(report);
    }
    let mut sink = KafkaSink::new(properties, None)?;
    sink.send(output).await?;
    sink.flush().await?;
    // Everything up to the end is handled: the next replay starts there.
    tokio::task::block_in_place(|| reader.commit_through(&letters))?;
    Ok(report)
}

/// The plugin named `name`: a `[[plugin]]` of the configuration, else a manifest of the
/// plugins directory.
fn find_plugin(config: &Config, name: &str) -> Result<PluginConfig> {
    if let Some(plugin) = config.plugins.iter().find(|p| p.spec.name == name) {
        return Ok(plugin.clone());
    }
    if let Some(dir) = &config.plugins_dir {
        for manifest in find_manifests(dir).with_context(|| dir.display().to_string())? {
            if let Ok(plugin) = load_manifest(&manifest)
                && plugin.spec.name == name
            {
                return Ok(plugin);
            }
        }
    }
    Err(anyhow!(
        "no plugin {name:?} in the configuration or its plugins directory"
    ))
}

/// The original record of a dead letter that `plugin` wrote, with its topic, partition
/// and offset; `None` for another plugin's (or a decoding) dead letter.
fn restore(letter: DeadLetter, plugin: &str) -> Option<RawRecord> {
    let DeadLetter {
        key,
        value,
        mut headers,
        timestamp,
        ..
    } = letter;
    if header_text(&headers, headers::PLUGIN).as_deref() != Some(plugin) {
        return None;
    }
    let origin = Origin {
        topic: header_text(&headers, headers::SOURCE_TOPIC)?,
        partition: header_text(&headers, headers::SOURCE_PARTITION)?
            .parse()
            .ok()?,
        offset: header_text(&headers, headers::SOURCE_OFFSET)?
            .parse()
            .ok()?,
    };
    headers.retain(|header| !header.key.starts_with("sluice."));
    Some(RawRecord {
        // The failed record's (its dead letter kept it): the records replayed from it
        // get it, as they would have the first time.
        timestamp,
        key,
        value,
        headers,
        origin,
        unreadable: None,
    })
}

/// The last value of header `key`, as text.
fn header_text(headers: &[Header], key: &str) -> Option<String> {
    headers
        .iter()
        .rev()
        .find(|header| header.key == key)
        .and_then(|header| header.value.as_deref())
        .map(|value| String::from_utf8_lossy(value).into_owned())
}
