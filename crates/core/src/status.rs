//! The status page: `GET /` on the admin listener, one HTML page a person reads at a
//! glance. Every lane with its plugin versions, events/s and dead letters/s over the last
//! minute (with inline SVG sparklines), consumer lag, lanes stopped by an error, and the
//! last plugin version hot reload refused and why. No external assets, no script: the
//! server renders it and the page reloads itself, so what a browser shows is what the
//! server wrote.
//!
//! Reports add what they know to a [`Status`] ([`crate::telemetry::Report::status`]):
//! the pipeline its counters per lane, Kafka consumers their lag, the reloader its last
//! refusal. The admin server takes one snapshot a second into a [`History`] of the last
//! minute; rates are differences between snapshots, never a counter of its own.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

use crate::telemetry::PluginInfo;

/// How often the admin server samples the status, and so the resolution of the rates.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Snapshots kept: the last minute at one a second (61 snapshots make 60 intervals).
pub const SAMPLES: usize = 61;

/// How often the page reloads itself: often enough to watch a deploy, rarely enough
/// that an open tab is no load.
pub const REFRESH_SECONDS: u32 = 5;

/// One lane's counters at one moment, as the reports that know them fill them in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaneCounters {
    /// Events read (the pipeline's `records_in`), since the lane started.
    pub events: u64,
    /// Records sent to the dead-letter topic, since the lane started.
    pub dead_letters: u64,
    /// Records behind the end of the lane's input, summed over its partitions (`None`:
    /// not a Kafka source, or not known yet).
    pub lag: Option<i64>,
}

/// A plugin version hot reload refused (the version in service kept running).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The manifest or component file refused.
    pub file: String,
    /// Why, as the log line says it.
    pub reason: String,
    pub at: SystemTime,
}

/// A shadow version's comparison with the version it shadows, so far.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ShadowSummary {
    /// The serving plugin it shadows.
    pub of: String,
    pub version: String,
    /// Events compared: `equal + differing + rejected_by_one_only`.
    pub compared: u64,
    pub equal: u64,
    pub differing: u64,
    /// Events exactly one of the two versions sent to the dead-letter topic.
    pub rejected_by_one_only: u64,
    /// Events the shadow passed by, busy with an earlier batch (or its thread gone).
    pub dropped: u64,
    /// The first differences: the event and both versions' records.
    pub examples: Vec<serde_json::Value>,
}

/// What the reports know now (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    pub lanes: BTreeMap<String, LaneCounters>,
    pub last_refusal: Option<Refusal>,
    /// Per shadow plugin.
    pub shadows: BTreeMap<String, ShadowSummary>,
}

/// The last minute of lane counters, one snapshot a second.
#[derive(Debug, Default)]
pub struct History {
    samples: VecDeque<(Instant, BTreeMap<String, LaneCounters>)>,
}

/// One lane over the last minute.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaneRates {
    pub events_per_second: f64,
    pub dead_letters_per_second: f64,
    /// Per-interval rates, oldest first, for the sparklines.
    pub events_series: Vec<f64>,
    pub dead_letters_series: Vec<f64>,
}

impl History {
    /// Adds the snapshot taken at `at`, dropping the oldest beyond [`SAMPLES`].
    pub fn push(&mut self, at: Instant, lanes: BTreeMap<String, LaneCounters>) {
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((at, lanes));
    }

    /// Seconds between the oldest and the newest snapshot.
    pub fn window(&self) -> Duration {
        match (self.samples.front(), self.samples.back()) {
            (Some((first, _)), Some((last, _))) => last.duration_since(*first),
            _ => Duration::ZERO,
        }
    }

    /// `lane`'s rates over the snapshots kept. A counter that went down (the lane
    /// restarted with a new plugin version) counts as the new count since then.
    pub fn rates(&self, lane: &str) -> LaneRates {
        let mut rates = LaneRates::default();
        let mut events_total = 0u64;
        let mut dead_letters_total = 0u64;
        let pairs = self.samples.iter().zip(self.samples.iter().skip(1));
        for ((before_at, before), (after_at, after)) in pairs {
            let seconds = after_at.duration_since(*before_at).as_secs_f64();
            let Some(after) = after.get(lane) else {
                rates.events_series.push(0.0);
                rates.dead_letters_series.push(0.0);
                continue;
            };
            // A lane that appears between two snapshots counted from zero.
            let zero = LaneCounters::default();
            let before = before.get(lane).unwrap_or(&zero);
            let grown = |after: u64, before: u64| {
                if after >= before {
                    after - before
                } else {
                    after
                }
            };
            let events = grown(after.events, before.events);
            let dead_letters = grown(after.dead_letters, before.dead_letters);
            events_total += events;
            dead_letters_total += dead_letters;
            let per_second = |n: u64| {
                if seconds > 0.0 {
                    n as f64 / seconds
                } else {
                    0.0
                }
            };
            rates.events_series.push(per_second(events));
            rates.dead_letters_series.push(per_second(dead_letters));
        }
        let window = self.window().as_secs_f64();
        if window > 0.0 {
            rates.events_per_second = events_total as f64 / window;
            rates.dead_letters_per_second = dead_letters_total as f64 / window;
        }
        rates
    }

    /// The newest snapshot's lanes.
    pub fn latest(&self) -> Option<&BTreeMap<String, LaneCounters>> {
        self.samples.back().map(|(_, lanes)| lanes)
    }
}

/// What the page shows besides the history.
#[derive(Debug, Clone, Default)]
pub struct PageInput {
    pub ready: bool,
    pub plugins: Vec<PluginInfo>,
    /// Lanes stopped by an error, with the error.
    pub failed_lanes: Vec<(String, String)>,
    pub status: Status,
}

/// The page (see the module docs).
pub fn render_page(input: &PageInput, history: &History) -> String {
    let mut lanes: Vec<String> = input.status.lanes.keys().cloned().collect();
    if let Some(latest) = history.latest() {
        lanes.extend(latest.keys().cloned());
    }
    lanes.extend(input.failed_lanes.iter().map(|(lane, _)| lane.clone()));
    // A lane is named after its serving plugin (or `*`, shared by all): a plugin whose
    // lane has not finished a batch yet still gets its row; candidates show in the row of
    // the plugin they run beside.
    if !lanes.iter().any(|lane| lane == "*") {
        lanes.extend(
            input
                .plugins
                .iter()
                .filter(|plugin| plugin.of.is_none())
                .map(|plugin| plugin.name.clone()),
        );
    }
    lanes.sort();
    lanes.dedup();

    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>sluice status</title><style>{STYLE}</style></head><body>\n\
         <h1>sluice <span class=\"{}\">{}</span></h1>\n",
        if input.ready { "ok" } else { "bad" },
        if input.ready { "ready" } else { "not ready" },
    );
    let _ = writeln!(
        page,
        "<p class=\"note\">{} lane(s); rates over the last {} s; refreshes every {REFRESH_SECONDS} s.</p>",
        lanes.len(),
        history.window().as_secs()
    );
    page.push_str(
        "<table><thead><tr><th>lane</th><th>plugin versions</th><th>events/s</th>\
         <th>last minute</th><th>dead letters/s</th><th>last minute</th><th>lag</th>\
         <th>state</th></tr></thead><tbody>\n",
    );
    for lane in &lanes {
        let rates = history.rates(lane);
        let versions: Vec<String> = input
            .plugins
            .iter()
            .filter(|plugin| {
                lane == "*" || &plugin.name == lane || plugin.of.as_deref() == Some(lane)
            })
            .map(|plugin| version_cell(plugin, input.status.shadows.get(&plugin.name)))
            .collect();
        let lag = input
            .status
            .lanes
            .get(lane)
            .and_then(|counters| counters.lag)
            .map_or_else(|| "–".to_owned(), |lag| lag.to_string());
        let state = match input.failed_lanes.iter().find(|(failed, _)| failed == lane) {
            Some((_, error)) => format!("<span class=\"bad\">stopped: {}</span>", html(error)),
            None => "<span class=\"ok\">running</span>".to_owned(),
        };
        let _ = writeln!(
            page,
            "<tr class=\"lane\" data-lane=\"{lane_attr}\"><td class=\"name\">{lane_text}</td><td>{versions}</td>\
             <td class=\"rate\">{events:.1}</td><td>{events_line}</td>\
             <td class=\"rate\">{dead:.1}</td><td>{dead_line}</td><td class=\"rate\">{lag}</td><td>{state}</td></tr>",
            lane_attr = html(lane),
            lane_text = html(lane),
            versions = if versions.is_empty() {
                "–".to_owned()
            } else {
                versions.join("<br>")
            },
            events = rates.events_per_second,
            events_line = sparkline(&rates.events_series, "events"),
            dead = rates.dead_letters_per_second,
            dead_line = sparkline(&rates.dead_letters_series, "dead"),
        );
    }
    if lanes.is_empty() {
        page.push_str("<tr><td colspan=\"8\">no lanes yet</td></tr>\n");
    }
    page.push_str("</tbody></table>\n");
    match &input.status.last_refusal {
        Some(refusal) => {
            let ago = SystemTime::now()
                .duration_since(refusal.at)
                .unwrap_or_default()
                .as_secs();
            let _ = writeln!(
                page,
                "<p class=\"refusal\">Last refused reload ({ago} s ago): <b>{}</b>: {} \
                 (the version in service kept running)</p>",
                html(&refusal.file),
                html(&refusal.reason)
            );
        }
        None => page.push_str("<p class=\"refusal\">No reload refused.</p>\n"),
    }
    page.push_str("</body></html>\n");
    page
}

/// One plugin version in a lane's row: name, version, mode, and for a shadow how its
/// comparison stands.
fn version_cell(plugin: &PluginInfo, shadow: Option<&ShadowSummary>) -> String {
    let mode = match (plugin.mode.as_str(), &plugin.share) {
        ("shadow", _) => "shadow".to_owned(),
        ("canary", Some(share)) => format!("canary {}", html(share)),
        _ => "serving".to_owned(),
    };
    let mode = if plugin.parallelism > 1 {
        format!("{mode} ×{}", plugin.parallelism)
    } else {
        mode
    };
    let mut cell = format!(
        "<span class=\"version\" title=\"sha256 {}\">{} {} <small>{mode}</small></span>",
        html(&plugin.sha256),
        html(&plugin.name),
        html(&plugin.version)
    );
    if let Some(shadow) = shadow {
        let class = if shadow.differing + shadow.rejected_by_one_only > 0 {
            "bad"
        } else {
            "ok"
        };
        let _ = write!(
            cell,
            "<br><small class=\"{class}\">compared {}: {} equal, {} differ, {} rejected by one only, {} dropped</small>",
            shadow.compared,
            shadow.equal,
            shadow.differing,
            shadow.rejected_by_one_only,
            shadow.dropped
        );
    }
    cell
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}.ok{color:#1a7f37}.bad{color:#c0392b}.note{color:#666}\
table{border-collapse:collapse}th,td{padding:.35em .8em;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}\
td.rate{text-align:right;font-variant-numeric:tabular-nums}.version small{color:#666}\
svg polyline{fill:none;stroke-width:1.5}svg.events polyline{stroke:#2563eb}svg.dead polyline{stroke:#c0392b}";

/// An inline SVG line of `series`, scaled to its own maximum (a flat line at the bottom
/// when all are zero).
fn sparkline(series: &[f64], class: &str) -> String {
    const WIDTH: f64 = 120.0;
    const HEIGHT: f64 = 24.0;
    let max = series.iter().copied().fold(0.0_f64, f64::max);
    let step = if series.len() > 1 {
        WIDTH / (series.len() - 1) as f64
    } else {
        0.0
    };
    let points: Vec<String> = series
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let y = if max > 0.0 {
                HEIGHT - 1.0 - (value / max) * (HEIGHT - 2.0)
            } else {
                HEIGHT - 1.0
            };
            format!("{:.1},{:.1}", i as f64 * step, y)
        })
        .collect();
    format!(
        "<svg class=\"{class}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         role=\"img\" aria-label=\"{class} per second, last minute\"><polyline points=\"{}\"/></svg>",
        points.join(" ")
    )
}

/// `text` safe in HTML text and attribute values.
fn html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(entries: &[(&str, u64, u64)]) -> BTreeMap<String, LaneCounters> {
        entries
            .iter()
            .map(|(lane, events, dead_letters)| {
                (
                    (*lane).to_owned(),
                    LaneCounters {
                        events: *events,
                        dead_letters: *dead_letters,
                        lag: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn rates_are_differences_over_the_window_and_survive_a_restart() {
        let start = Instant::now();
        let mut history = History::default();
        history.push(start, lanes(&[("a", 0, 0)]));
        history.push(start + Duration::from_secs(1), lanes(&[("a", 100, 2)]));
        history.push(start + Duration::from_secs(2), lanes(&[("a", 300, 2)]));
        // The lane restarted: its counters start again from 0.
        history.push(start + Duration::from_secs(4), lanes(&[("a", 50, 0)]));
        let rates = history.rates("a");
        assert_eq!(rates.events_series, [100.0, 200.0, 25.0]);
        assert_eq!(rates.dead_letters_series, [2.0, 0.0, 0.0]);
        assert_eq!(rates.events_per_second, 350.0 / 4.0);
        assert_eq!(rates.dead_letters_per_second, 0.5);
        assert_eq!(history.rates("unknown").events_per_second, 0.0);
    }

    #[test]
    fn keeps_the_last_minute_only() {
        let start = Instant::now();
        let mut history = History::default();
        for second in 0..100u64 {
            history.push(
                start + Duration::from_secs(second),
                lanes(&[("a", second * 10, 0)]),
            );
        }
        assert_eq!(history.window(), Duration::from_secs(60));
        assert_eq!(history.rates("a").events_series.len(), 60);
        assert_eq!(history.rates("a").events_per_second, 10.0);
    }

    #[test]
    fn the_page_shows_each_lane_escaped_with_its_version_and_state() {
        let start = Instant::now();
        let mut history = History::default();
        history.push(start, lanes(&[("orders", 0, 0)]));
        history.push(start + Duration::from_secs(2), lanes(&[("orders", 20, 4)]));
        let input = PageInput {
            ready: true,
            plugins: vec![
                PluginInfo {
                    name: "orders".into(),
                    version: "1.2.0".into(),
                    sha256: "ab".into(),
                    parallelism: 3,
                    ..PluginInfo::default()
                },
                PluginInfo {
                    name: "<script>".into(),
                    version: "0.1".into(),
                    sha256: "cd".into(),
                    ..PluginInfo::default()
                },
            ],
            failed_lanes: vec![("<script>".into(), "sink said \"no\"".into())],
            status: Status {
                lanes: BTreeMap::new(),
                shadows: BTreeMap::new(),
                last_refusal: Some(Refusal {
                    file: "team/orders.toml".into(),
                    reason: "init failed: <bad>".into(),
                    at: SystemTime::now(),
                }),
            },
        };
        let page = render_page(&input, &history);
        assert!(page.contains("<title>sluice status</title>"), "{page}");
        assert!(page.contains("http-equiv=\"refresh\""), "{page}");
        assert!(page.contains("orders 1.2.0"), "{page}");
        assert!(page.contains("<small>serving ×3</small>"), "{page}");
        assert!(
            page.contains("<td class=\"rate\">10.0</td>"),
            "20 events in 2 s: {page}"
        );
        assert!(page.contains("<td class=\"rate\">2.0</td>"), "{page}");
        assert!(!page.contains("<script>"), "names are escaped: {page}");
        assert!(page.contains("stopped: sink said &quot;no&quot;"), "{page}");
        assert!(
            page.contains("<b>team/orders.toml</b>: init failed: &lt;bad&gt;"),
            "{page}"
        );
        assert_eq!(page.matches("<tr class=\"lane\"").count(), 2, "{page}");
        assert!(
            !page.contains("src=") && !page.contains("href="),
            "no external assets"
        );
    }

    #[test]
    fn a_sparkline_scales_to_its_maximum() {
        let line = sparkline(&[0.0, 5.0, 10.0], "events");
        assert!(
            line.contains("points=\"0.0,23.0 60.0,12.0 120.0,1.0\""),
            "{line}"
        );
        let flat = sparkline(&[0.0, 0.0], "dead");
        assert!(flat.contains("points=\"0.0,23.0 120.0,23.0\""), "{flat}");
    }
}
