//! The HTTP sink through the real binary: `sluice run` with `[sink] type = "http"` posting
//! to a real HTTP server (hyper) on 127.0.0.1 that the test starts and that refuses its
//! first requests.

use std::collections::VecDeque;
use std::process::Command;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sluice_tests::{components, repo_root, sample, sluice_bin};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The statuses still to answer, then 200; the bodies answered 200.
#[derive(Clone)]
struct State {
    script: Arc<Mutex<VecDeque<u16>>>,
    accepted: Arc<Mutex<Vec<String>>>,
}

async fn answer(
    state: State,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let body = request.into_body().collect().await?.to_bytes();
    let status = state
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or(200);
    if status == 200 {
        state
            .accepted
            .lock()
            .expect("lock")
            .push(String::from_utf8_lossy(&body).into_owned());
    }
    Ok(Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()))?)
}

/// Answers the statuses of `script` in turn, then 200; keeps the bodies answered 200.
async fn serve(
    listener: tokio::net::TcpListener,
    script: Vec<u16>,
    accepted: Arc<Mutex<Vec<String>>>,
) {
    let state = State {
        script: Arc::new(Mutex::new(VecDeque::from(script))),
        accepted,
    };
    while let Ok((stream, _)) = listener.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(state.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[test]
fn sluice_run_posts_every_record_in_order_through_server_errors() {
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let listener = tokio
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let accepted = Arc::new(Mutex::new(Vec::new()));
    // The first three requests fail (the receiver is restarting): each batch is retried.
    tokio.spawn(serve(listener, vec![503, 503, 500], Arc::clone(&accepted)));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("http.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\ntype = \"file\"\npath = {:?}\n\
             [sink]\ntype = \"http\"\nurl = \"http://{address}/events\"\nbackoff = \"10ms\"\ntimeout = \"10s\"\n\
             [pipeline]\nbatch_size = 2\n[runtime]\ncache_dir = \"\"\n\
             [[plugin]]\nname = \"customers-cdm\"\nversion = \"0.1.0\"\npath = {:?}\ninputs = [\"server1.testDB.dbo.customers\"]\noutputs = [\"cdm.customer\"]\n",
            sample("customers.jsonl"),
            components::CUSTOMERS_CDM
        ),
    )
    .expect("config");
    let output = Command::new(sluice_bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("SLUICE_LOG", "warn")
        .output()
        .expect("run sluice");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bodies = accepted.lock().expect("lock").clone();
    assert!(
        bodies.len() > 1,
        "batches of 2 make several requests: {bodies:?}"
    );
    // Nothing lost, nothing repeated, in order: exactly what the file sink writes.
    let lines: Vec<String> = bodies
        .iter()
        .flat_map(|body| body.lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    crate::support::assert_golden(
        &lines,
        &repo_root()
            .join("tests")
            .join("golden")
            .join("customers-cdm.jsonl"),
    );
}
