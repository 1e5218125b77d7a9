//! The status page (`GET /` on the admin listener) of a running `sluice run` on the test
//! broker, as a person sees it: loaded in a real headless Chromium through chromedriver
//! (WebDriver, plain JSON over HTTP), its visible text checked lane by lane, and a
//! screenshot written to the test's output (`target/tmp/status-page.png`).

use std::io::{BufRead, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use sluice_tests::{
    Broker, KillOnDrop, components, free_port, http_get, run_sluice_quietly, wait_for_metrics,
};

use crate::support::create_event;

const ORDERS: usize = 40;
const PAYMENTS: usize = 30;
/// Payment rows that `poison` rejects (dead letters).
const REJECTED_PAYMENTS: [usize; 3] = [3, 7, 11];

#[test]
fn the_status_page_shows_every_lane_in_a_real_browser() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap.clone();
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        sluice_tests::create_topics(&bootstrap, &[("orders.in", 1), ("payments.in", 1)]).await;
        let producer: FutureProducer = sluice_tests::kafka_client(&bootstrap)
            .create()
            .expect("producer");
        let mut sends = Vec::new();
        for (topic, count) in [("orders.in", ORDERS), ("payments.in", PAYMENTS)] {
            for id in 0..count {
                let row = if topic == "payments.in" && REJECTED_PAYMENTS.contains(&id) {
                    json!({"id": id, "reject": "card expired"})
                } else {
                    json!({"id": id})
                };
                let line: Value = serde_json::from_str(&create_event(row)).expect("event");
                sends.push((topic, line["key"].to_string(), line["value"].to_string()));
            }
        }
        for (topic, key, value) in &sends {
            producer
                .send(
                    FutureRecord::to(topic).key(key).payload(value),
                    Duration::from_secs(30),
                )
                .await
                .expect("produced");
        }
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins.d");
    let deploy = |team: &str, name: &str, component: &str, manifest: &str| {
        let folder = plugins.join(team);
        std::fs::create_dir_all(&folder).expect("team folder");
        std::fs::copy(component, folder.join(format!("{name}.wasm"))).expect("component");
        std::fs::write(folder.join(format!("{name}.toml")), manifest).expect("manifest");
    };
    deploy(
        "crm",
        "orders",
        components::STAMP,
        "version = \"1.4.0\"\ninputs = [\"orders.in\"]\noutputs = [\"out\"]\n",
    );
    deploy(
        "billing",
        "payments",
        components::POISON,
        "version = \"2.0.1\"\ninputs = [\"payments.in\"]\noutputs = [\"out\"]\n",
    );
    let admin = free_port();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            r#"[source]
type = "kafka"
topics = ["orders.in", "payments.in"]
properties = {{ "bootstrap.servers" = "{bootstrap}", "group.id" = "status", "auto.offset.reset" = "earliest", "statistics.interval.ms" = "1000" }}

[sink]
type = "kafka"
properties = {{ "bootstrap.servers" = "{bootstrap}" }}

[runtime]
plugins_dir = {plugins:?}

[admin]
listen = "127.0.0.1:{admin}"
"#
        ),
    )
    .expect("config");
    let sluice = run_sluice_quietly(&config);

    // Every event read, the lag of both lanes known, then a broken deploy refused.
    // Each lane reads every topic of the source and skips what its plugin does not take.
    let both = ORDERS + PAYMENTS;
    wait_for_metrics(
        admin,
        &[
            &format!("sluice_records_in_total{{lane=\"orders\"}} {both}\n"),
            &format!("sluice_records_in_total{{lane=\"payments\"}} {both}\n"),
            "sluice_consumer_lag{lane=\"orders\",topic=\"orders.in\",partition=\"0\"} 0\n",
            "sluice_consumer_lag{lane=\"payments\",topic=\"payments.in\",partition=\"0\"} 0\n",
        ],
    );
    let billing = plugins.join("billing");
    std::fs::write(billing.join("broken.wasm"), b"not a component").expect("broken component");
    std::fs::write(
        billing.join("broken.toml"),
        "version = \"0.0.1\"\ninputs = [\"payments.in\"]\noutputs = [\"out\"]\n",
    )
    .expect("broken manifest");
    wait_for_metrics(
        admin,
        &["sluice_plugin_reloads_total{result=\"refused\"} 1\n"],
    );

    let (status, page) = http_get(admin, "/").expect("the admin server answers");
    assert_eq!(status, 200, "{page}");
    assert!(page.starts_with("<!doctype html>"), "{page}");

    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{admin}/"));
    let text = browser
        .run("return document.body.innerText")
        .as_str()
        .expect("text")
        .to_owned();
    assert!(text.contains("sluice ready"), "{text}");
    let rows = browser.run(
        "return [...document.querySelectorAll('tr.lane')].map(row => [...row.cells].map(cell => cell.innerText.trim()))",
    );
    let rows: Vec<Vec<String>> = serde_json::from_value(rows).expect("rows of cells");
    assert_eq!(rows.len(), 2, "one row per lane: {rows:?}\n{text}");
    let row = |lane: &str| {
        rows.iter()
            .find(|cells| cells[0] == lane)
            .unwrap_or_else(|| panic!("no row for lane {lane}: {rows:?}"))
            .clone()
    };
    let rate = |cell: &str| -> f64 {
        cell.parse()
            .unwrap_or_else(|_| panic!("{cell:?} is not a rate"))
    };
    // Columns: lane, versions, events/s, sparkline, dead letters/s, sparkline, lag, state.
    let orders = row("orders");
    assert_eq!(orders[1], "orders 1.4.0 serving", "{orders:?}");
    assert!(
        rate(&orders[2]) > 0.0,
        "events flowed this minute: {orders:?}"
    );
    assert_eq!(rate(&orders[4]), 0.0, "{orders:?}");
    assert_eq!(orders[6], "0", "lag {orders:?}");
    assert_eq!(orders[7], "running", "{orders:?}");
    let payments = row("payments");
    assert_eq!(payments[1], "payments 2.0.1 serving", "{payments:?}");
    assert!(rate(&payments[2]) > 0.0, "{payments:?}");
    assert!(
        rate(&payments[4]) > 0.0,
        "rejected payments are dead letters: {payments:?}"
    );
    assert!(
        rate(&payments[4]) < rate(&payments[2]),
        "3 of 70 events: {payments:?}"
    );
    let sparklines = browser.run("return document.querySelectorAll('tr.lane svg polyline').length");
    assert_eq!(sparklines, json!(4), "two sparklines per lane");
    assert!(
        text.contains("Last refused reload") && text.contains("broken.toml"),
        "the refused deploy and why: {text}"
    );

    let screenshot = browser.screenshot();
    assert!(
        screenshot.starts_with(b"\x89PNG\r\n\x1a\n") && screenshot.len() > 1000,
        "a PNG of the page"
    );
    let output = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    std::fs::write(&output, &screenshot).expect("write the screenshot");
    eprintln!("status page screenshot: {}", output.display());
    drop(browser);
    drop(sluice);
}

/// Debian's headless Chromium driven through chromedriver's WebDriver endpoint.
struct Browser {
    driver: KillOnDrop,
    port: u16,
    session: String,
}

impl Browser {
    fn start() -> Self {
        let port = free_port();
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map(KillOnDrop)
            .expect("chromedriver (Debian's chromium-driver; scripts/setup.sh installs it)");
        // chromedriver prints a line once it listens.
        let stdout = driver.0.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let _ = lines.next();
        std::thread::spawn(move || lines.for_each(drop));
        let deadline = Instant::now() + Duration::from_secs(30);
        while webdriver(port, "GET", "/status", None)
            .is_none_or(|status| status["value"]["ready"] != json!(true))
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                // Root needs --no-sandbox; the rest keep Chromium off the (closed) network.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--window-size=1280,720"]
            }
        }}});
        let session =
            webdriver(port, "POST", "/session", Some(&capabilities)).expect("chromedriver answers");
        let session = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"))
            .to_owned();
        Self {
            driver,
            port,
            session,
        }
    }

    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let answer = webdriver(self.port, method, &path, body)
            .unwrap_or_else(|| panic!("chromedriver did not answer {method} {path}"));
        assert!(
            answer["value"].get("error").is_none(),
            "{method} {path}: {answer}"
        );
        answer["value"].clone()
    }

    fn open(&self, url: &str) {
        self.command("POST", "/url", Some(&json!({ "url": url })));
    }

    fn run(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let encoded = self.command("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 text"))
            .expect("base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = webdriver(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = &self.driver;
    }
}

/// One WebDriver request (HTTP/1.1, one connection each): the JSON answer. chromedriver
/// keeps connections open whatever the request says, so the body is read by its
/// `Content-Length`, not to the end of the stream.
fn webdriver(port: u16, method: &str, path: &str, body: Option<&Value>) -> Option<Value> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut received = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))?
        .trim()
        .parse()
        .ok()?;
    while received.len() < head_end + length {
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&buffer[..n]);
    }
    serde_json::from_slice(&received[head_end..head_end + length]).ok()
}
