//! The monitoring half of the production-like stack (`docker/`), checked without Docker:
//! every metric the Grafana dashboard queries is one sluice exports, every panel reads
//! the provisioned data source, and Prometheus scrapes the ports the sluice
//! configurations of the stack listen on.

use serde_json::Value;
use sluice_tests::repo_root;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The text of every Rust source under `crates/`, where each metric's name is written.
fn sources() -> String {
    fn walk(dir: &std::path::Path, text: &mut String) {
        for entry in std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry"))
        {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, text);
            } else if path.extension().is_some_and(|e| e == "rs") {
                text.push_str(&std::fs::read_to_string(&path).expect("read source"));
            }
        }
    }
    let mut text = String::new();
    walk(&repo_root().join("crates"), &mut text);
    text
}

#[test]
fn every_dashboard_query_names_a_metric_sluice_exports() {
    let dashboard: Value =
        serde_json::from_str(&read("docker/grafana/dashboards/sluice.json")).expect("JSON");
    let datasource = read("docker/grafana/provisioning/datasources/prometheus.yml");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "a panel per question a person asks");
    let sources = sources();
    let mut names = Vec::new();
    for panel in panels {
        let uid = panel["datasource"]["uid"].as_str().expect("datasource uid");
        assert!(
            datasource.contains(&format!("uid: {uid}")),
            "panel {} reads data source {uid}, which is not provisioned",
            panel["title"]
        );
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(at) = rest.find("sluice_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.push(name);
            }
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        assert!(
            sources.contains(&format!("\"{family}")) || sources.contains(&format!(" {family}")),
            "the dashboard queries {name}, which no sluice crate exports"
        );
    }
}

#[test]
fn prometheus_scrapes_every_admin_port_of_the_stack() {
    let prometheus = read("docker/prometheus/prometheus.yml");
    for (config, service) in [
        ("docker/run.toml", "sluice-run"),
        ("docker/capture.toml", "sluice-capture"),
        ("docker/capture-postgres.toml", "sluice-capture-postgres"),
    ] {
        let table: toml::Table = read(config).parse().expect("TOML");
        let listen = table["admin"]["listen"].as_str().expect("admin.listen");
        let port = listen.rsplit(':').next().expect("port");
        assert!(
            prometheus.contains(&format!("\"{service}:{port}\"")),
            "Prometheus does not scrape {service}:{port} ({config})"
        );
    }
}
