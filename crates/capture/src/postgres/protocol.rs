//! The replication connection: PostgreSQL's streaming replication protocol over a
//! TcpStream (start-up with `replication=database`, simple queries for
//! `IDENTIFY_SYSTEM` / `CREATE_REPLICATION_SLOT`, then `START_REPLICATION` and the
//! CopyBoth stream of XLogData, keepalives and standby status updates).
//!
//! Why hand-written: tokio-postgres (used for every ordinary query) cannot open a
//! replication connection (no `replication` start-up parameter, no CopyBoth), and the
//! candidate crates that can (`pgwire-replication`) neither create slots with an exported
//! snapshot nor leave the connection to the caller between `CREATE_REPLICATION_SLOT` and
//! `START_REPLICATION`, which the snapshot hand-off needs. The protocol part is small;
//! the message encoding and SCRAM come from `postgres-protocol`, tokio-postgres's own
//! codec.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::frontend;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::offsets::Lsn;

/// Microseconds between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch).
pub const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// A server error, with its SQLSTATE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("{what}: {reason}")]
    Io { what: String, reason: String },
    #[error("the server answered {code}: {message}")]
    Server { code: String, message: String },
    #[error("unexpected from the server: {0}")]
    Unexpected(String),
}

fn io(what: &str) -> impl Fn(std::io::Error) -> ProtocolError + '_ {
    move |e| ProtocolError::Io {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

/// Where and as whom to connect (from the connection string, through tokio-postgres's
/// parser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Vec<u8>>,
    pub database: String,
    /// `sslmode` and `sslrootcert` ([`super::tls::split`] takes them off the string).
    pub tls: super::tls::Tls,
}

impl Endpoint {
    /// From a tokio-postgres config (`host=... port=... user=... dbname=...` or a URL).
    pub fn from_config(config: &tokio_postgres::Config) -> Result<Endpoint, String> {
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            Some(_) => return Err(
                "a Unix socket host is not supported; use host=127.0.0.1 (or the server's name)"
                    .into(),
            ),
            None => "127.0.0.1".into(),
        };
        let user = config
            .get_user()
            .ok_or("no user in the connection string")?
            .to_owned();
        Ok(Endpoint {
            host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            database: config.get_dbname().unwrap_or(&user).to_owned(),
            password: config.get_password().map(<[u8]>::to_vec),
            user,
            tls: super::tls::Tls::default(),
        })
    }
}

/// One backend message: its tag and body.
#[derive(Debug)]
struct Frame {
    tag: u8,
    body: Bytes,
}

/// What the CopyBoth stream carries from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage {
    /// WAL data: a pgoutput message starting at `start`.
    XLogData { start: Lsn, end: Lsn, data: Bytes },
    /// The server's position; `reply`: answer now or be disconnected.
    Keepalive { end: Lsn, reply: bool },
}

/// The replication connection's transport: TCP, or TLS over it.
#[derive(Debug)]
enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_native_tls::TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Asks the server for TLS (`SSLRequest`) and, if it agrees, shakes hands; a server that
/// declines is refused when `tls` requires it.
async fn negotiate(mut stream: TcpStream, endpoint: &Endpoint) -> Result<Transport, ProtocolError> {
    let Some(connector) = endpoint
        .tls
        .connector()
        .map_err(ProtocolError::Unexpected)?
    else {
        return Ok(Transport::Plain(stream));
    };
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    stream.write_all(&request).await.map_err(io("SSLRequest"))?;
    let mut answer = [0u8; 1];
    stream
        .read_exact(&mut answer)
        .await
        .map_err(io("SSLRequest"))?;
    match answer[0] {
        b'S' => {
            let connector = tokio_native_tls::TlsConnector::from(connector);
            let tls = connector
                .connect(&endpoint.host, stream)
                .await
                .map_err(|e| ProtocolError::Io {
                    what: format!("TLS with {}:{}", endpoint.host, endpoint.port),
                    reason: e.to_string(),
                })?;
            Ok(Transport::Tls(Box::new(tls)))
        }
        _ if endpoint.tls.required() => Err(ProtocolError::Unexpected(format!(
            "{}:{} does not offer TLS and the connection string's sslmode requires it",
            endpoint.host, endpoint.port
        ))),
        // `prefer` on a server without TLS: the start-up goes on, in the clear.
        _ => Ok(Transport::Plain(stream)),
    }
}

/// A replication connection.
#[derive(Debug)]
pub struct ReplicationConnection {
    stream: Transport,
    read: BytesMut,
    write: BytesMut,
}

/// The session settings that fix the text form of values (what [`super::types`] parses);
/// the snapshot's connection sets the same. Each overrides what the server, the database
/// or the role may set otherwise (`ALTER DATABASE ... SET bytea_output = 'escape'`, a
/// cluster initialised in a locale whose `lc_monetary` writes `1.234,56 €`, a
/// `client_encoding` of LATIN1 that would turn every non-ASCII character into bytes
/// that are not UTF-8), so no value depends on where capture connects.
pub const SESSION_SETTINGS: [(&str, &str); 7] = [
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO"),
    ("TimeZone", "UTC"),
    ("IntervalStyle", "iso_8601"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("lc_monetary", "C"),
];

impl ReplicationConnection {
    /// Connects and authenticates (trust, password, md5 or SCRAM-SHA-256).
    pub async fn connect(endpoint: &Endpoint) -> Result<ReplicationConnection, ProtocolError> {
        let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(io(&format!(
                "connecting to {}:{}",
                endpoint.host, endpoint.port
            )))?;
        stream.set_nodelay(true).ok();
        let stream = negotiate(stream, endpoint).await?;
        let mut connection = ReplicationConnection {
            stream,
            read: BytesMut::with_capacity(64 * 1024),
            write: BytesMut::new(),
        };
        let mut parameters = vec![
            ("user", endpoint.user.as_str()),
            ("database", endpoint.database.as_str()),
            ("replication", "database"),
            ("application_name", "sluice-capture"),
        ];
        parameters.extend(SESSION_SETTINGS);
        frontend::startup_message(parameters, &mut connection.write).map_err(io("start-up"))?;
        connection.flush().await?;
        connection.authenticate(endpoint).await?;
        loop {
            let frame = connection.frame().await?;
            match frame.tag {
                b'Z' => return Ok(connection),
                b'E' => return Err(server_error(&frame.body)),
                _ => {} // ParameterStatus, BackendKeyData, notices
            }
        }
    }

    async fn authenticate(&mut self, endpoint: &Endpoint) -> Result<(), ProtocolError> {
        let password = || {
            endpoint.password.clone().ok_or_else(|| {
                ProtocolError::Unexpected(
                    "the server asks for a password and the connection string has none".into(),
                )
            })
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            let frame = self.frame().await?;
            match frame.tag {
                b'E' => return Err(server_error(&frame.body)),
                b'R' => {}
                other => {
                    return Err(ProtocolError::Unexpected(format!(
                        "message {:?} during authentication",
                        other as char
                    )));
                }
            }
            let mut body = frame.body;
            if body.remaining() < 4 {
                return Err(ProtocolError::Unexpected(
                    "short authentication message".into(),
                ));
            }
            match body.get_i32() {
                0 => return Ok(()),
                3 => {
                    frontend::password_message(&password()?, &mut self.write)
                        .map_err(io("password"))?;
                }
                5 => {
                    if body.remaining() < 4 {
                        return Err(ProtocolError::Unexpected("short md5 salt".into()));
                    }
                    let mut salt = [0; 4];
                    body.copy_to_slice(&mut salt);
                    let hash = postgres_protocol::authentication::md5_hash(
                        endpoint.user.as_bytes(),
                        &password()?,
                        salt,
                    );
                    frontend::password_message(hash.as_bytes(), &mut self.write)
                        .map_err(io("password"))?;
                }
                10 => {
                    if !body
                        .split(|&b| b == 0)
                        .any(|m| m == SCRAM_SHA_256.as_bytes())
                    {
                        return Err(ProtocolError::Unexpected(
                            "the server offers no SASL mechanism sluice speaks (SCRAM-SHA-256)"
                                .into(),
                        ));
                    }
                    let client = ScramSha256::new(&password()?, ChannelBinding::unsupported());
                    frontend::sasl_initial_response(
                        SCRAM_SHA_256,
                        client.message(),
                        &mut self.write,
                    )
                    .map_err(io("SASL"))?;
                    scram = Some(client);
                }
                11 => {
                    let client = scram
                        .as_mut()
                        .ok_or_else(|| ProtocolError::Unexpected("SASL continue".into()))?;
                    client.update(&body).map_err(io("SCRAM"))?;
                    frontend::sasl_response(client.message(), &mut self.write)
                        .map_err(io("SASL"))?;
                }
                12 => {
                    scram
                        .as_mut()
                        .ok_or_else(|| ProtocolError::Unexpected("SASL final".into()))?
                        .finish(&body)
                        .map_err(io("SCRAM: the server's signature"))?;
                    continue;
                }
                other => {
                    return Err(ProtocolError::Unexpected(format!(
                        "authentication method {other} (sluice speaks trust, password, md5 and SCRAM-SHA-256)"
                    )));
                }
            }
            self.flush().await?;
        }
    }

    async fn flush(&mut self) -> Result<(), ProtocolError> {
        self.stream
            .write_all(&self.write)
            .await
            .map_err(io("writing to the server"))?;
        self.write.clear();
        Ok(())
    }

    /// The next backend message. Cancel-safe: bytes read stay in the buffer.
    async fn frame(&mut self) -> Result<Frame, ProtocolError> {
        loop {
            if self.read.len() >= 5 {
                let len =
                    u32::from_be_bytes([self.read[1], self.read[2], self.read[3], self.read[4]])
                        as usize;
                if len < 4 {
                    return Err(ProtocolError::Unexpected(format!("message length {len}")));
                }
                if self.read.len() > len {
                    let mut frame = self.read.split_to(1 + len).freeze();
                    let tag = frame.get_u8();
                    frame.advance(4);
                    return Ok(Frame { tag, body: frame });
                }
                self.read.reserve(1 + len - self.read.len());
            }
            if self.read.capacity() - self.read.len() < 8 * 1024 {
                self.read.reserve(64 * 1024);
            }
            let n = self
                .stream
                .read_buf(&mut self.read)
                .await
                .map_err(io("reading from the server"))?;
            if n == 0 {
                return Err(ProtocolError::Io {
                    what: "reading from the server".into(),
                    reason: "the server closed the connection".into(),
                });
            }
        }
    }

    /// Runs a replication command and returns its rows (text values).
    pub async fn simple_query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, ProtocolError> {
        frontend::query(sql, &mut self.write).map_err(io("query"))?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let frame = self.frame().await?;
            match frame.tag {
                b'D' => rows.push(data_row(frame.body)?),
                b'E' => error = Some(server_error(&frame.body)),
                b'Z' => return error.map_or(Ok(rows), Err),
                _ => {}
            }
        }
    }

    /// `START_REPLICATION SLOT ... LOGICAL <from> (pgoutput options)`; the connection is
    /// in CopyBoth mode after it. `streaming`: protocol 2 with in-progress transactions
    /// streamed (PostgreSQL 14 and later), else protocol 1.
    pub async fn start_replication(
        &mut self,
        slot: &str,
        from: Lsn,
        publication: &str,
        streaming: bool,
    ) -> Result<(), ProtocolError> {
        let protocol = if streaming {
            "proto_version '2', streaming 'on'"
        } else {
            "proto_version '1'"
        };
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {} ({protocol}, publication_names {}, messages 'true')",
            quote_ident(slot),
            super::offsets::lsn_text(from),
            quote_literal(&quote_ident(publication)),
        );
        frontend::query(&sql, &mut self.write).map_err(io("START_REPLICATION"))?;
        self.flush().await?;
        loop {
            let frame = self.frame().await?;
            match frame.tag {
                b'W' => return Ok(()),
                b'E' => return Err(server_error(&frame.body)),
                _ => {}
            }
        }
    }

    /// The next message of the replication stream.
    pub async fn next(&mut self) -> Result<StreamMessage, ProtocolError> {
        loop {
            let frame = self.frame().await?;
            match frame.tag {
                b'd' => {
                    let mut body = frame.body;
                    if body.is_empty() {
                        continue;
                    }
                    match body.get_u8() {
                        b'w' if body.remaining() >= 24 => {
                            let start = body.get_u64();
                            let end = body.get_u64();
                            let _time = body.get_i64();
                            return Ok(StreamMessage::XLogData {
                                start,
                                end,
                                data: body,
                            });
                        }
                        b'k' if body.remaining() >= 17 => {
                            let end = body.get_u64();
                            let _time = body.get_i64();
                            return Ok(StreamMessage::Keepalive {
                                end,
                                reply: body.get_u8() == 1,
                            });
                        }
                        other => {
                            return Err(ProtocolError::Unexpected(format!(
                                "replication message {:?}",
                                other as char
                            )));
                        }
                    }
                }
                b'E' => return Err(server_error(&frame.body)),
                b'c' => {
                    return Err(ProtocolError::Unexpected(
                        "the server ended the replication stream".into(),
                    ));
                }
                _ => {}
            }
        }
    }

    /// A standby status update: everything up to `flushed` is safe (the server may
    /// recycle the WAL before it and moves the slot's `confirmed_flush_lsn` there).
    pub async fn send_status(
        &mut self,
        received: Lsn,
        flushed: Lsn,
        now_us: i64,
    ) -> Result<(), ProtocolError> {
        let mut payload = BytesMut::with_capacity(34);
        payload.put_u8(b'r');
        payload.put_u64(received);
        payload.put_u64(flushed);
        payload.put_u64(flushed);
        payload.put_i64(now_us - PG_EPOCH_OFFSET_US);
        payload.put_u8(0);
        frontend::CopyData::new(payload.freeze())
            .map_err(io("status update"))?
            .write(&mut self.write);
        self.flush().await
    }
}

fn data_row(mut body: Bytes) -> Result<Vec<Option<String>>, ProtocolError> {
    let short = || ProtocolError::Unexpected("short DataRow".into());
    if body.remaining() < 2 {
        return Err(short());
    }
    let count = body.get_i16();
    let mut row = Vec::new();
    for _ in 0..count {
        if body.remaining() < 4 {
            return Err(short());
        }
        let len = body.get_i32();
        if len < 0 {
            row.push(None);
            continue;
        }
        if body.remaining() < len as usize {
            return Err(short());
        }
        row.push(Some(
            String::from_utf8_lossy(&body.split_to(len as usize)).into_owned(),
        ));
    }
    Ok(row)
}

/// An ErrorResponse's SQLSTATE (`C`) and message (`M`).
fn server_error(body: &[u8]) -> ProtocolError {
    let (mut code, mut message) = (String::new(), String::new());
    for field in body.split(|&b| b == 0) {
        if let Some((&kind, value)) = field.split_first() {
            match kind {
                b'C' => code = String::from_utf8_lossy(value).into_owned(),
                b'M' => message = String::from_utf8_lossy(value).into_owned(),
                _ => {}
            }
        }
    }
    ProtocolError::Server { code, message }
}

/// `"name"`, as PostgreSQL quotes an identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, as PostgreSQL quotes a literal.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
