//! The admin HTTP server over a real socket on 127.0.0.1: health, readiness, the plugins
//! in service and Prometheus metrics of a pipeline that ran.

use std::sync::Arc;

use serde_json::{Value, json};
use sluice_core::telemetry::Telemetry;
use sluice_pipeline::pipeline::{Pipeline, PipelineSettings};
use sluice_pipeline::reload::Reloader;
use sluice_pipeline::sink::memory::MemorySink;
use sluice_pipeline::source::file::{FileInput, FileSource};
use sluice_runtime::{Runtime, RuntimeOptions};
use sluice_tests::components;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{create_event, write_lines};

async fn request(address: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn health_ready_plugins_and_metrics() {
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        let plugins = tempfile::tempdir().expect("tempdir");
        std::fs::copy(components::STAMP, plugins.path().join("stamp.wasm")).expect("component");
        std::fs::write(
            plugins.path().join("stamp.toml"),
            "version = \"2.1.0\"\ninputs = [\"in\"]\noutputs = [\"out\"]\n",
        )
        .expect("manifest");
        let telemetry = Arc::new(Telemetry::default());
        let runtime = Arc::new(Runtime::new(RuntimeOptions::default()).expect("runtime"));
        let (_reloader, table) = Reloader::start(
            runtime,
            plugins.path().to_owned(),
            Vec::new(),
            Some(Arc::clone(&telemetry)),
        );

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(sluice_core::admin::serve(
            listener,
            Arc::clone(&telemetry),
            async move {
                let _ = stopped.await;
            },
        ));

        assert_eq!(
            request(address, "GET", "/health").await,
            (200, "ok\n".to_owned())
        );
        assert_eq!(
            request(address, "GET", "/ready").await.0,
            503,
            "not ready before the pipeline runs"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let events: Vec<String> = (0..3).map(|id| create_event(json!({"id": id}))).collect();
        let input = write_lines(dir.path(), "in.jsonl", &events);
        let mut source = FileSource::open(FileInput::Path(input), None)
            .await
            .expect("source");
        let mut pipeline = Pipeline::with_route_table(table, PipelineSettings::default())
            .with_lane("stamp")
            .with_telemetry(Arc::clone(&telemetry));
        telemetry.set_ready(true);
        pipeline
            .run(
                &mut source,
                &mut MemorySink::default(),
                std::future::pending(),
            )
            .await
            .expect("pipeline");
        assert_eq!(
            request(address, "GET", "/ready").await,
            (200, "ready\n".to_owned())
        );

        let (status, body) = request(address, "GET", "/plugins").await;
        assert_eq!(status, 200);
        let plugins: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(plugins[0]["name"], "stamp");
        assert_eq!(plugins[0]["version"], "2.1.0");
        assert_eq!(plugins[0]["sha256"].as_str().map(str::len), Some(64));
        assert_eq!(plugins[0]["parallelism"], 1);
        assert_eq!(
            plugins[0]["memory_bytes"],
            64 << 20,
            "one instance at the default cap"
        );

        let (status, metrics) = request(address, "GET", "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            metrics.contains("sluice_records_in_total{lane=\"stamp\"} 3\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("sluice_records_out_total{lane=\"stamp\"} 3\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("sluice_plugin_reloads_total{result=\"loaded\"} 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("sluice_plugin_info{plugin=\"stamp\",version=\"2.1.0\""),
            "{metrics}"
        );
        assert!(
            metrics.contains("sluice_batch_duration_seconds_count{lane=\"stamp\"} 1\n"),
            "{metrics}"
        );

        assert_eq!(request(address, "GET", "/nope").await.0, 404);
        assert_eq!(request(address, "POST", "/plugins").await.0, 405);
        stop.send(()).expect("server running");
        server.await.expect("server stops");
    });
}
