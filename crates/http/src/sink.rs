//! The HTTP sink: `[sink] type = "http"`.
//!
//! Each batch is one `POST` of `application/x-ndjson` to the configured URL, one record per
//! line in the form of [`sluice_core::json_lines`] (the file sink's lines), in order. The
//! batch counts as sent only when the server answers 2xx; only then does the pipeline
//! commit the source position (at-least-once).
//!
//! - A 5xx answer, 408 or 429, a connection that fails or drops, or no answer within
//!   `timeout` is retried with exponential backoff (`backoff`, doubled per attempt up to
//!   `max_backoff`) up to `max_retries` times; then the sink fails and the lane stops
//!   without committing, so a restart sends the batch again. A server that processed a
//!   request whose answer was lost sees that batch twice: deduplicate on the
//!   `sluice.source.*` lineage headers if that matters.
//! - Any other 4xx is the request's fault and will not improve by retrying: the sink
//!   fails at once with the status and the start of the answer's body.
//!
//! One connection pool per sink, shared by every lane (clones share it).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_tls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use sluice_core::OutputRecord;
use sluice_core::connector::{CommitHandle, SinkKind, SinkRun};
use sluice_core::json_lines::write_json_line;
use sluice_core::settings::{Problems, parse_duration};
use sluice_core::sink::{Sink, SinkError};

/// How long one request may take before it counts as failed (and is retried): long
/// enough for a receiver that writes a few MiB batch to a database, short enough that a
/// hung connection is noticed within a minute.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The wait before the first retry; it doubles with each retry.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between two attempts.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Retries of one batch before the sink fails: with the defaults, about two and a half
/// minutes of a receiver being down (0.2 + 0.4 + ... + 30 s), as Kafka Connect's and
/// Redpanda Connect's HTTP sinks give up after a bounded number of tries.
pub const DEFAULT_MAX_RETRIES: u32 = 10;
/// How much of an error answer's body is quoted in the error.
const ERROR_BODY_BYTES: usize = 512;
/// The most of an answer's body read: the rest of a longer one is left unread (its
/// connection is then closed instead of reused), so an endpoint that answers with an
/// endless or huge body cannot fill the host's memory or hold the lane until the timeout.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The `[sink]` table of `type = "http"`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpSink {
    /// Where batches are POSTed (`http://` or `https://`).
    url: Option<String>,
    /// How long one request may take (`"30s"`).
    timeout: Option<String>,
    /// Retries of a batch after retriable failures.
    max_retries: Option<i64>,
    /// The wait before the first retry (`"200ms"`), doubled per retry.
    backoff: Option<String>,
    /// The longest wait between retries (`"30s"`).
    max_backoff: Option<String>,
    /// Extra request headers (e.g. `Authorization`), sent verbatim.
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

/// A validated HTTP sink configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSinkConfig {
    pub url: String,
    pub timeout: Duration,
    pub max_retries: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub headers: Vec<(String, String)>,
}

impl HttpSinkConfig {
    /// Defaults for `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            backoff: DEFAULT_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            headers: Vec::new(),
        }
    }
}

impl SinkKind for HttpSinkConfig {
    type Raw = RawHttpSink;
    /// One connection pool, shared by the lanes.
    type Shared = HttpSink;
    type Sink = HttpSink;

    fn validate(raw: RawHttpSink, _base: &std::path::Path, problems: &mut Problems) -> Self {
        raw.validate("sink", problems)
    }

    async fn start(&self, _run: &SinkRun) -> Result<HttpSink, SinkError> {
        HttpSink::new(self.clone())
    }

    async fn open(
        shared: &HttpSink,
        _run: &SinkRun,
        _lane: &str,
        _commit: Option<CommitHandle>,
    ) -> Result<HttpSink, SinkError> {
        Ok(shared.clone())
    }
}

impl RawHttpSink {
    /// Validates the table found at `at` (`sink`), adding every problem to `problems`.
    pub fn validate(self, at: &str, problems: &mut Problems) -> HttpSinkConfig {
        let url = match self.url {
            Some(url) => match url.parse::<Uri>() {
                Ok(uri)
                    if matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.host().is_some() =>
                {
                    url
                }
                _ => {
                    problems.add(
                        format!("{at}.url"),
                        format!("{url:?} is not an http:// or https:// URL"),
                    );
                    url
                }
            },
            None => {
                problems.add(format!("{at}.url"), "missing (where batches are POSTed)");
                String::new()
            }
        };
        let mut config = HttpSinkConfig::new(&url);
        let mut duration = |value: Option<String>, name: &str, default: Duration| match value {
            None => default,
            Some(text) => match parse_duration(&text) {
                Some(duration) if !duration.is_zero() && duration <= Duration::from_secs(3600) => {
                    duration
                }
                _ => {
                    problems.add(
                        format!("{at}.{name}"),
                        format!("{text:?} is not a duration from 1ms to 1h (e.g. \"30s\")"),
                    );
                    default
                }
            },
        };
        config.timeout = duration(self.timeout, "timeout", DEFAULT_TIMEOUT);
        config.backoff = duration(self.backoff, "backoff", DEFAULT_BACKOFF);
        config.max_backoff = duration(self.max_backoff, "max_backoff", DEFAULT_MAX_BACKOFF);
        match self.max_retries {
            None => {}
            Some(n) if (0..=1000).contains(&n) => config.max_retries = n as u32,
            Some(n) => problems.add(
                format!("{at}.max_retries"),
                format!("{n} is out of range (0 to 1000)"),
            ),
        }
        for (name, value) in self.headers {
            let valid = HeaderName::from_bytes(name.as_bytes()).is_ok()
                && HeaderValue::from_str(&value).is_ok();
            if valid {
                config.headers.push((name, value));
            } else {
                problems.add(
                    format!("{at}.headers.{name}"),
                    "not a valid HTTP header name and value",
                );
            }
        }
        config
    }
}

/// Why one attempt failed.
enum Attempt {
    /// Worth retrying (5xx, 408, 429, connection, timeout): the reason.
    Retriable(String),
    /// Retrying will not help (another 4xx): the reason.
    Refused(String),
}

/// POSTs batches (see the module docs). Clones share one connection pool.
#[derive(Clone)]
pub struct HttpSink {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    config: Arc<HttpSinkConfig>,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("url", &self.config.url)
            .finish_non_exhaustive()
    }
}

impl HttpSink {
    /// A sink for a validated configuration.
    pub fn new(config: HttpSinkConfig) -> Result<Self, SinkError> {
        let uri = config.url.parse::<Uri>().map_err(|e| SinkError::Io {
            output: config.url.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
        let client = Client::builder(TokioExecutor::new()).build(HttpsConnector::new());
        Ok(Self {
            client,
            uri,
            config: Arc::new(config),
        })
    }

    fn error(&self, reason: String) -> SinkError {
        SinkError::Io {
            output: self.config.url.clone(),
            source: std::io::Error::other(reason),
        }
    }

    /// One POST of `body`.
    async fn attempt(&self, body: Bytes) -> Result<(), Attempt> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, "application/x-ndjson");
        for (name, value) in &self.config.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| Attempt::Refused(format!("building the request: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| Attempt::Retriable(format!("{e:#}")))?;
            let status = response.status();
            // Read the answer to its end either way, so the connection can be reused, but
            // keep only its start and read no more than MAX_ANSWER_BYTES.
            let mut body = response.into_body();
            let mut kept = Vec::new();
            let mut read = 0usize;
            while read <= MAX_ANSWER_BYTES {
                let Some(frame) = body.frame().await else {
                    break;
                };
                let frame =
                    frame.map_err(|e| Attempt::Retriable(format!("reading the answer: {e}")))?;
                if let Ok(data) = frame.into_data() {
                    read += data.len();
                    let room = ERROR_BODY_BYTES.saturating_sub(kept.len());
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Ok((status, kept))
        };
        let (status, body) = tokio::time::timeout(self.config.timeout, exchange)
            .await
            .map_err(|_| {
                Attempt::Retriable(format!(
                    "no answer within {:?} (timeout)",
                    self.config.timeout
                ))
            })??;
        if status.is_success() {
            return Ok(());
        }
        // The endpoint's own text: made printable, as it reaches the log in the error.
        let quoted = sluice_core::text::printable(
            String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_BYTES)]).trim(),
        )
        .into_owned();
        let reason = format!("answered {status}: {quoted}");
        let retriable = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        Err(if retriable {
            Attempt::Retriable(reason)
        } else {
            Attempt::Refused(reason)
        })
    }

    /// The wait before retry number `retry` (1-based).
    fn backoff(&self, retry: u32) -> Duration {
        self.config
            .backoff
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
            .min(self.config.max_backoff)
    }
}

impl Sink for HttpSink {
    async fn send(&mut self, records: Vec<OutputRecord>) -> Result<(), SinkError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut text = Vec::new();
        for record in &records {
            write_json_line(record, &mut text);
            text.push(b'\n');
        }
        // `Bytes` clones share the buffer: a retry sends the same bytes without a copy.
        let body = Bytes::from(text);
        let mut retry = 0;
        loop {
            match self.attempt(body.clone()).await {
                Ok(()) => return Ok(()),
                Err(Attempt::Refused(reason)) => {
                    return Err(self.error(format!(
                        "POST of {} records refused (not retried): {reason}",
                        records.len()
                    )));
                }
                Err(Attempt::Retriable(reason)) if retry < self.config.max_retries => {
                    retry += 1;
                    let wait = self.backoff(retry);
                    tracing::warn!(url = %self.config.url, retry, wait_ms = wait.as_millis() as u64, %reason, "POST failed; retrying the batch");
                    tokio::time::sleep(wait).await;
                }
                Err(Attempt::Retriable(reason)) => {
                    return Err(self.error(format!(
                        "POST of {} records failed {} times, last: {reason}",
                        records.len(),
                        retry + 1
                    )));
                }
            }
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        // Every batch is sent (and answered) before `send` returns.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Against a real HTTP server on 127.0.0.1 (hyper), started by each test.

    use std::collections::VecDeque;
    use std::sync::Mutex;

    use hyper::Response;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::*;

    /// What the test server does with one request.
    #[derive(Debug, Clone, Copy)]
    enum Answer {
        Ok,
        Status(u16),
        /// Closes the connection without answering.
        Drop,
        /// Answers 200, but only after this long.
        Slow(Duration),
    }

    /// A running test server: where it listens, what it accepted, how many requests.
    struct Server {
        url: String,
        accepted: Arc<Mutex<Vec<String>>>,
        requests: Arc<Mutex<usize>>,
    }

    type BoxError = Box<dyn std::error::Error + Send + Sync>;

    /// What the server keeps: the script still to play, the bodies accepted, the count
    /// of requests.
    #[derive(Clone, Default)]
    struct State {
        script: Arc<Mutex<VecDeque<Answer>>>,
        accepted: Arc<Mutex<Vec<String>>>,
        requests: Arc<Mutex<usize>>,
    }

    async fn answer(
        state: State,
        request: Request<hyper::body::Incoming>,
    ) -> Result<Response<Full<Bytes>>, BoxError> {
        *state.requests.lock().expect("lock") += 1;
        let answer = state
            .script
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or(Answer::Ok);
        let content_type = request.headers().get(CONTENT_TYPE).cloned();
        let body = request.into_body().collect().await?.to_bytes();
        let status = match answer {
            Answer::Ok => 200,
            Answer::Status(status) => status,
            Answer::Drop => return Err(BoxError::from("dropped without an answer")),
            Answer::Slow(wait) => {
                tokio::time::sleep(wait).await;
                200
            }
        };
        if (200..300).contains(&status) {
            assert_eq!(
                content_type.as_ref().and_then(|v| v.to_str().ok()),
                Some("application/x-ndjson")
            );
            state
                .accepted
                .lock()
                .expect("lock")
                .push(String::from_utf8_lossy(&body).into_owned());
        }
        Ok(Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(format!("status {status}"))))?)
    }

    /// A server that answers requests with `script` in turn (then 200), keeping the
    /// bodies of the requests it answered 2xx.
    async fn server(script: Vec<Answer>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/ingest", listener.local_addr().expect("address"));
        let state = State {
            script: Arc::new(Mutex::new(VecDeque::from(script))),
            ..State::default()
        };
        let server = Server {
            url,
            accepted: Arc::clone(&state.accepted),
            requests: Arc::clone(&state.requests),
        };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(state.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        server
    }

    fn record(n: u32) -> OutputRecord {
        OutputRecord {
            timestamp: None,
            topic: "cdm.customer".into(),
            key: Some(format!("{{\"id\":{n}}}").into_bytes()),
            value: Some(format!("{{\"id\":{n},\"name\":\"c{n}\"}}").into_bytes()),
            headers: Vec::new(),
        }
    }

    fn sink(url: &str) -> HttpSink {
        HttpSink::new(HttpSinkConfig {
            timeout: Duration::from_millis(300),
            backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            max_retries: 5,
            ..HttpSinkConfig::new(url)
        })
        .expect("sink")
    }

    /// The record ids of the accepted bodies, in order.
    fn ids(server: &Server) -> Vec<u32> {
        server
            .accepted
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|body| body.lines().map(str::to_owned).collect::<Vec<_>>())
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
                value["key"]["id"].as_u64().expect("id") as u32
            })
            .collect()
    }

    #[tokio::test]
    async fn failed_attempts_are_retried_and_nothing_is_lost_or_reordered() {
        // Every kind of retriable failure, three times in a row at the start, then some
        // more between batches.
        let server = server(vec![
            Answer::Status(503),
            Answer::Drop,
            Answer::Slow(Duration::from_secs(2)),
            Answer::Ok,
            Answer::Status(500),
            Answer::Status(429),
        ])
        .await;
        let mut sink = sink(&server.url);
        for batch in 0..4u32 {
            let records = (batch * 10..batch * 10 + 10).map(record).collect();
            sink.send(records).await.expect("sent after retries");
        }
        let ids = ids(&server);
        // The slow answer may have been accepted after the client gave up: a duplicate of
        // the first batch is allowed (at-least-once), a loss or reordering is not.
        let unique: Vec<u32> = {
            let mut seen = std::collections::BTreeSet::new();
            ids.iter().copied().filter(|id| seen.insert(*id)).collect()
        };
        assert_eq!(
            unique,
            (0..40).collect::<Vec<_>>(),
            "every record, in order: {ids:?}"
        );
        assert!(*server.requests.lock().expect("lock") >= 4 + 5);
    }

    #[tokio::test]
    async fn a_client_error_fails_at_once_with_the_status_and_the_answer() {
        let server = server(vec![Answer::Status(400)]).await;
        let mut sink = sink(&server.url);
        let error = sink
            .send(vec![record(1)])
            .await
            .expect_err("400 is not retried")
            .to_string();
        assert!(error.contains("400 Bad Request"), "{error}");
        assert!(error.contains("status 400"), "the answer's body: {error}");
        assert!(error.contains("not retried"), "{error}");
        assert_eq!(*server.requests.lock().expect("lock"), 1);
        assert!(ids(&server).is_empty());
    }

    /// A server that answers every request with `status` and a chunked body that does
    /// not end (64 KiB chunks while the client reads, at most 4 GiB); the requests seen.
    async fn endless_answer_server(status: u16) -> (String, Arc<Mutex<usize>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/ingest", listener.local_addr().expect("address"));
        let requests = Arc::new(Mutex::new(0));
        let seen = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                *seen.lock().expect("lock") += 1;
                tokio::spawn(async move {
                    // The request: its head, then the Content-Length bytes of its body.
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 8192];
                    loop {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                        let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length: usize = text[..end]
                                .lines()
                                .find_map(|line| line.strip_prefix("content-length:"))
                                .and_then(|n| n.trim().parse().ok())
                                .unwrap_or(0);
                            if request.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    // A first line, then one that would pass for the host's in a log.
                    let head = format!(
                        "HTTP/1.1 {status} Answer\r\ntransfer-encoding: chunked\r\n\r\n\
                         15\r\nno\nERROR forged line\n\r\n"
                    );
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                    for _ in 0..(4u64 << 30) / 0x10000 {
                        if stream.write_all(chunk.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, requests)
    }

    /// An endpoint answering with an endless body: the sink reads at most
    /// MAX_ANSWER_BYTES of it and goes on (reading it all held the lane until the
    /// timeout, then retried, with the whole body in memory each time).
    #[tokio::test]
    async fn an_endless_answer_is_read_only_in_part() {
        let (url, requests) = endless_answer_server(200).await;
        let mut accepted = sink(&url);
        accepted
            .send(vec![record(1)])
            .await
            .expect("a 2xx answer is a success, whatever follows it");
        assert_eq!(*requests.lock().expect("lock"), 1, "not retried");

        let (url, requests) = endless_answer_server(400).await;
        let mut refused = sink(&url);
        let error = refused
            .send(vec![record(1)])
            .await
            .expect_err("400 is not retried")
            .to_string();
        assert!(error.contains("400 Bad Request"), "{error}");
        assert!(
            error.contains("xxxx"),
            "the answer's start is quoted: {error}"
        );
        assert!(
            error.contains("no\\nERROR forged line\\nxxxx"),
            "printable: {error}"
        );
        assert!(
            error.len() < 2 * ERROR_BODY_BYTES,
            "and only its start: {error}"
        );
        assert_eq!(*requests.lock().expect("lock"), 1);
    }

    #[tokio::test]
    async fn a_receiver_that_stays_down_fails_the_batch_after_the_retries() {
        let server = server(vec![Answer::Status(503); 10]).await;
        let mut sink = sink(&server.url);
        let error = sink
            .send(vec![record(1)])
            .await
            .expect_err("gives up")
            .to_string();
        assert!(error.contains("failed 6 times"), "{error}");
        assert_eq!(*server.requests.lock().expect("lock"), 6);
    }

    #[test]
    fn configuration_problems_name_their_path() {
        let raw: RawHttpSink = toml::from_str(
            r#"
            url = "ftp://x"
            timeout = "0s"
            max_retries = -1
            headers = { "bad header" = "v" }
            "#,
        )
        .expect("raw");
        let mut problems = Problems::default();
        raw.validate("sink", &mut problems);
        let paths: Vec<&str> = problems.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "sink.url",
                "sink.timeout",
                "sink.max_retries",
                "sink.headers.bad header"
            ]
        );
        let unknown = toml::from_str::<RawHttpSink>("url = \"http://x\"\nretries = 3\n")
            .expect_err("unknown field");
        assert!(
            unknown.to_string().contains("unknown field `retries`"),
            "{unknown}"
        );
    }
}
