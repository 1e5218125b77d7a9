//! Typed plugin configuration through the real host, in every SDK language: `customers-cdm`
//! declares its config once (a serde struct with `#[transform(config = Settings)]` in Rust,
//! a schema in JavaScript, a dataclass in Python); a good `[config]` is parsed from its
//! strings into numbers and enums and used, a bad one refuses the plugin at `init` with the
//! key, the value and the problem named, in the same words in all three.

use serde_json::json;
use sluice_tests::components;

use crate::support::{config, create_event, plugin, write_lines};

/// The three `customers-cdm` implementations, by language.
const LANGUAGES: [(&str, &str); 3] = [
    ("rust", components::CUSTOMERS_CDM),
    ("javascript", components::CUSTOMERS_CDM_JS),
    ("python", components::CUSTOMERS_CDM_PY),
];

/// Runs `component` with `settings` over one event; the host's error when refused.
fn start(component: &str, settings: &[(&str, &str)]) -> Result<Vec<serde_json::Value>, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let row = json!({"id": 7, "first_name": "Ada", "credit_limit": 1234.5});
    let input = write_lines(dir.path(), "in.jsonl", &[create_event(row)]);
    let output = dir.path().join("out.jsonl");
    let cdm = plugin("customers-cdm", component, &["*"], &["cdm.*"], settings);
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    runtime
        .block_on(sluice::app::run(
            config(&input, &output, vec![cdm], 16),
            std::future::pending(),
        ))
        .map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(&output).expect("output written");
    Ok(text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect())
}

#[test]
fn a_good_typed_config_is_parsed_from_strings_and_used() {
    for (language, component) in LANGUAGES {
        let lines = start(
            component,
            &[
                ("topic", "cdm.customer.v2"),
                ("decimal.handling.mode", "double"),
                ("credit_limit.scale", "3"),
            ],
        )
        .unwrap_or_else(|e| panic!("{language}: the plugin starts: {e}"));
        assert_eq!(lines.len(), 1, "{language}: {lines:?}");
        assert_eq!(
            lines[0]["topic"], "cdm.customer.v2",
            "{language}: the string"
        );
        // The enum (`double`) and the number (`3`) were parsed from their strings.
        assert_eq!(
            lines[0]["value"]["creditLimit"], "1234.500",
            "{language}: {:?}",
            lines[0]
        );
    }
}

#[test]
fn a_bad_typed_config_refuses_the_plugin_naming_the_key() {
    for (settings, expected) in [
        (
            &[("credit_limit.scale", "two")][..],
            "config `credit_limit.scale` = \"two\": invalid digit found in string",
        ),
        (
            &[("decimal.handling.mode", "exact")][..],
            "config `decimal.handling.mode` = \"exact\": unknown variant `exact`",
        ),
        (&[("topik", "cdm.x")][..], "config: unknown field `topik`"),
    ] {
        for (language, component) in LANGUAGES {
            let message = start(component, settings).expect_err("init refuses the config");
            assert!(
                message.contains("plugin customers-cdm@0.1.0: init refused its configuration"),
                "{language}: {message}"
            );
            assert!(
                message.contains(expected),
                "{language}: {settings:?}: {message}"
            );
        }
    }
}
