//! `poison`: a test plugin that behaves per event, as the event's `after` row asks:
//! `"panic": true` panics (a trap), `"reject": "<reason>"` rejects, `"forbidden": true`
//! writes to a topic outside its allowed outputs, `"spin": true` loops forever,
//! `"grow_mib": n` allocates (and touches) n MiB, `"recurse": n` recurses n deep,
//! `"fan_out": n` returns n records, `"huge_mib": n` returns one n-MiB record,
//! `"header_flood": n` returns one record with n empty headers,
//! `"header_spread": [r, n]` returns r records of n empty headers each,
//! `"sleep_ms": n` sleeps n milliseconds (through WASI's monotonic clock) first,
//! `"write_to": "<topic>"` publishes to that topic, `"write_to_len": n` to a topic of n
//! `a`s (names Kafka refuses), `"sandbox": true` reports what it can
//! reach (environment, files, network, clocks) as its output; any other event is published to
//! `out` as `{"id": <id>}` keyed by the id. With the config `init_spin = "true"`, `init`
//! loops forever (until the host's init deadline stops it); with `init_reject = "<text>"`
//! it refuses its configuration with that text.

use serde::Deserialize;
use sluice_sdk::{ChangeEvent, Record, Reject};

#[derive(Deserialize)]
struct Row {
    id: i64,
    #[serde(default)]
    panic: bool,
    #[serde(default)]
    reject: Option<String>,
    #[serde(default)]
    forbidden: bool,
    #[serde(default)]
    spin: bool,
    #[serde(default)]
    grow_mib: usize,
    #[serde(default)]
    sandbox: bool,
    #[serde(default)]
    recurse: u64,
    #[serde(default)]
    fan_out: usize,
    #[serde(default)]
    huge_mib: usize,
    #[serde(default)]
    header_flood: usize,
    #[serde(default)]
    header_spread: Option<(usize, usize)>,
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    write_to: Option<String>,
    #[serde(default)]
    write_to_len: usize,
}

/// Recursion that the optimiser cannot turn into a loop.
fn depth(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let frame = std::hint::black_box([n; 16]);
    1 + depth(n - 1) + frame[(n % 16) as usize] % 2
}

/// `init`: loops forever when asked to (a plugin stuck in its start-up); with
/// `init_reject = "<text>"`, refuses its configuration with that text.
fn check(config: &sluice_sdk::Config) -> Result<(), String> {
    if let Some(text) = config.get("init_reject") {
        return Err(text.to_owned());
    }
    if config.get("init_spin") == Some("true") {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    Ok(())
}

#[sluice_sdk::transform(init = check)]
fn poison(event: ChangeEvent) -> Result<Vec<Record>, Reject> {
    let row: Row = event.row()?;
    if row.sleep_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(row.sleep_ms));
    }
    if row.panic {
        panic!("poison event {}", row.id);
    }
    if row.spin {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    if row.grow_mib > 0 {
        let block = vec![1u8; row.grow_mib << 20];
        std::hint::black_box(&block);
    }
    if let Some(reason) = row.reject {
        return Err(Reject::new(reason).with_code("asked"));
    }
    if row.recurse > 0 {
        let d = depth(row.recurse);
        return Ok(vec![Record::to("out").json_key(&row.id).json_value(&d)]);
    }
    if row.fan_out > 0 {
        return Ok((0..row.fan_out)
            .map(|i| Record::to("out").json_key(&i))
            .collect());
    }
    if row.header_flood > 0 {
        let record = (0..row.header_flood)
            .fold(Record::to("out").json_key(&row.id), |record, _| {
                record.header("", Vec::new())
            });
        return Ok(vec![record]);
    }
    if let Some((records, headers)) = row.header_spread {
        return Ok((0..records)
            .map(|i| {
                (0..headers).fold(Record::to("out").json_key(&i), |record, _| {
                    record.header("", Vec::new())
                })
            })
            .collect());
    }
    if row.huge_mib > 0 {
        return Ok(vec![
            Record::to("out")
                .json_key(&row.id)
                .value(vec![b'x'; row.huge_mib << 20]),
        ]);
    }
    if row.sandbox {
        let report = serde_json::json!({
            "env": std::env::vars().count(),
            "args": std::env::args().count(),
            "read_root": std::fs::read_dir("/").map(|_| "allowed".to_owned()).unwrap_or_else(|e| e.to_string()),
            "read_etc_passwd": std::fs::read("/etc/passwd").map(|_| "allowed".to_owned()).unwrap_or_else(|e| e.to_string()),
            "write_tmp": std::fs::write("/tmp/sluice-escape", b"x").map(|_| "allowed".to_owned()).unwrap_or_else(|e| e.to_string()),
            "tcp_connect": std::net::TcpStream::connect("127.0.0.1:9").map(|_| "allowed".to_owned()).unwrap_or_else(|e| e.to_string()),
            "wall_clock_ns": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(u64::MAX),
            "monotonic_moved": monotonic_moved(),
        });
        return Ok(vec![
            Record::to("out").json_key(&row.id).json_value(&report),
        ]);
    }
    let topic = match (row.write_to, row.write_to_len) {
        (Some(topic), _) => topic,
        (None, n) if n > 0 => "a".repeat(n),
        _ if row.forbidden => "secret.topic".to_owned(),
        _ => "out".to_owned(),
    };
    Ok(vec![
        Record::to(topic)
            .json_key(&row.id)
            .json_value(&serde_json::json!({ "id": row.id })),
    ])
}

/// How far the monotonic clock moves over a million loop iterations.
fn monotonic_moved() -> u64 {
    let start = std::time::Instant::now();
    let mut sum = 0u64;
    for i in 0..1_000_000u64 {
        sum = sum.wrapping_add(std::hint::black_box(i));
    }
    std::hint::black_box(sum);
    start.elapsed().as_nanos() as u64
}
