//! The admin HTTP server: the status page (`/`, [`crate::status`]), `/health`, `/ready`,
//! `/plugins` and `/metrics` on a local port.
//!
//! A deliberately small HTTP/1.1 responder (GET only, one request per connection, no
//! bodies) so that liveness probes and Prometheus can scrape sluice without a web
//! framework in the binary. Like mini-redis's `run`, [`serve`] takes a listener that is
//! already bound (tests bind port 0) and a shutdown future; [`AdminServer::start`] binds
//! the configured address and serves until stopped (`sluice run` and `sluice capture`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::settings::{Problem, listen_address};
use crate::status::SAMPLE_EVERY;
use crate::telemetry::Telemetry;

/// A request line and headers larger than this are refused: probes and scrapers send
/// a few hundred bytes.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// A client that does not finish its request within this is dropped, so a stuck client
/// cannot hold a task forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The most connections served at once. Probes and scrapers use one or two; past this,
/// a new connection is closed at once, so that clients that connect and stay (by
/// accident or on purpose) cannot take the process's file descriptors and memory, which
/// every lane's sources, sinks and plugin loads need.
const MAX_CONNECTIONS: usize = 64;

/// The `[admin]` table: where the admin server listens (absent: no server).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    listen: Option<String>,
}

impl RawAdmin {
    /// The validated listen address (`None`: no admin server); the problem names
    /// `example` as a valid address.
    pub fn validate(&self, example: &str) -> Result<Option<SocketAddr>, Problem> {
        let Some(text) = self.listen.as_deref() else {
            return Ok(None);
        };
        listen_address(text, example)
            .map(Some)
            .map_err(|message| Problem {
                path: "admin.listen".to_owned(),
                message,
            })
    }
}

/// Why the admin server could not start.
#[derive(Debug, thiserror::Error)]
#[error("admin server: cannot listen on {address}: {source}")]
pub struct AdminError {
    pub address: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// A running admin server; [`AdminServer::stop`] stops it.
#[derive(Debug)]
pub struct AdminServer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    sampler: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    /// Listens on `address` and serves `telemetry` until stopped. `None`: no server.
    pub async fn start(
        address: Option<SocketAddr>,
        telemetry: &Arc<Telemetry>,
    ) -> Result<Option<Self>, AdminError> {
        let Some(address) = address else {
            return Ok(None);
        };
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| AdminError { address, source })?;
        tracing::info!(%address, "admin server listening (/ status page, /health, /ready, /plugins, /metrics)");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, Arc::clone(telemetry), async move {
            let _ = stopped.await;
        }));
        let sampler = tokio::spawn(sample_status(Arc::downgrade(telemetry)));
        Ok(Some(Self {
            stop,
            task,
            sampler,
        }))
    }

    /// Stops serving and waits for the server task.
    pub async fn stop(self) {
        self.sampler.abort();
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Takes a status snapshot every [`SAMPLE_EVERY`] for the status page, until the
/// process's telemetry is dropped. Cheap (the counters, no scrape), so it runs whether or
/// not anyone looks.
async fn sample_status(telemetry: std::sync::Weak<Telemetry>) {
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(telemetry) = telemetry.upgrade() else {
            return;
        };
        telemetry.sample_status();
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    telemetry: Arc<Telemetry>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                    tracing::debug!(%peer, "admin server at its connection limit: closed");
                    drop(stream);
                    continue;
                };
                let telemetry = Arc::clone(&telemetry);
                tokio::spawn(async move {
                    if let Err(e) =
                        tokio::time::timeout(REQUEST_TIMEOUT, respond(stream, &telemetry)).await
                    {
                        tracing::debug!(error = %e, "admin request timed out");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin server could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn respond(mut stream: TcpStream, telemetry: &Telemetry) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
        if request.len() > MAX_REQUEST_BYTES {
            let _ = write(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request too large\n",
            )
            .await;
            return;
        }
    }
    let line = String::from_utf8_lossy(&request);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = match (method, path) {
        ("GET", "/") => (
            "200 OK",
            "text/html; charset=utf-8",
            telemetry.status_page(),
        ),
        ("GET", "/health") => ("200 OK", "text/plain", "ok\n".to_owned()),
        ("GET", "/ready") if !telemetry.failed_lanes().is_empty() => (
            "503 Service Unavailable",
            "text/plain",
            telemetry
                .failed_lanes()
                .iter()
                .map(|(lane, error)| format!("lane {lane} stopped: {}\n", error.replace('\n', " ")))
                .collect(),
        ),
        ("GET", "/ready") if telemetry.is_ready() => ("200 OK", "text/plain", "ready\n".to_owned()),
        ("GET", "/ready") => (
            "503 Service Unavailable",
            "text/plain",
            "not ready\n".to_owned(),
        ),
        ("GET", "/plugins") => (
            "200 OK",
            "application/json",
            serde_json::to_string_pretty(&telemetry.plugins_json())
                .unwrap_or_else(|_| "[]".to_owned())
                + "\n",
        ),
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4",
            telemetry.prometheus(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "try /, /health, /ready, /plugins or /metrics\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_owned(),
        ),
    };
    let _ = write(&mut stream, status, content_type, &body).await;
}

async fn write(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn health(address: SocketAddr) -> Option<String> {
        let mut stream = TcpStream::connect(address).await.ok()?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.ok()?;
        (!answer.is_empty()).then_some(answer)
    }

    /// Clients that connect and say nothing hold at most MAX_CONNECTIONS tasks; one
    /// more is closed at once, and the server answers again once they go.
    #[tokio::test]
    async fn idle_connections_past_the_limit_are_closed_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Arc::default(), async move {
            let _ = stopped.await;
        }));
        assert!(health(address).await.expect("answered").contains("200 OK"));

        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(TcpStream::connect(address).await.expect("connect"));
        }
        // Let the server accept them all before the next one.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        assert_eq!(health(address).await, None, "closed without an answer");
        assert!(started.elapsed() < REQUEST_TIMEOUT, "closed at once");

        drop(idle);
        let mut answered = None;
        for _ in 0..50 {
            answered = health(address).await;
            if answered.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(answered.expect("answers again").contains("200 OK"));
        stop.send(()).expect("running");
        server.await.expect("stopped");
    }
}
