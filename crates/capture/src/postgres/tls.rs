//! TLS to PostgreSQL as libpq's `sslmode` and `sslrootcert` say, for both of capture's
//! connections (the catalog's, through tokio-postgres, and the replication one):
//!
//! - `disable`: plain TCP; `prefer` (libpq's default): TLS when the server offers it;
//! - `require`: TLS or nothing, the certificate not checked (unless `sslrootcert` names
//!   a CA, which then checks it, as libpq does);
//! - `verify-ca`: the certificate must chain to `sslrootcert` (or the system's CAs);
//! - `verify-full`: and name the host.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require`, and no `sslrootcert`:
//! [`split`] takes both keys off the connection string before it parses the rest.

use std::path::PathBuf;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The TLS part of a connection string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    pub mode: SslMode,
    /// `sslrootcert`: a PEM file of the CA certificates to trust.
    pub root_cert: Option<PathBuf>,
}

/// The connection string without `sslmode` and `sslrootcert` (what tokio-postgres
/// parses), and what they say. Takes both forms: `key=value ...` (values may be
/// single-quoted) and `postgresql://...?sslmode=...`.
pub fn split(connection: &str) -> Result<(String, Tls), String> {
    let mut tls = Tls::default();
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => {
                tls.mode = match value {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode {other:?} (expected disable, prefer, require, verify-ca or verify-full)"
                        ));
                    }
                };
                Ok(true)
            }
            "sslrootcert" => {
                tls.root_cert = Some(PathBuf::from(value));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if connection.starts_with("postgres://") || connection.starts_with("postgresql://") {
        match connection.split_once('?') {
            None => connection.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(key, &percent_decoded(value))? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (key, value, raw) in key_values(connection)? {
            if !take(&key, &value)? {
                kept.push(raw);
            }
        }
        kept.join(" ")
    };
    Ok((rest, tls))
}

/// `key=value` pairs of a libpq string, each with its text as written.
fn key_values(text: &str) -> Result<Vec<(String, String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            return Ok(pairs);
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            return Err(format!("{key:?} has no '=' and a value"));
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match chars.next() {
                    Some((_, '\\')) => {
                        if let Some((_, c)) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some((_, '\'')) => break,
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("the value of {key:?} has no closing quote")),
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                value.push(c);
            }
        }
        let end = chars.peek().map_or(text.len(), |&(at, _)| at);
        pairs.push((key, value, text[start..end].trim_end().to_owned()));
    }
}

/// `%XX` escapes of a URL's query value.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%'
            && let Some(hex) = text.get(at + 1..at + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Tls {
    /// The connector to use (`None`: plain TCP), checking what the mode asks.
    pub fn connector(&self) -> Result<Option<native_tls::TlsConnector>, String> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        let mut builder = native_tls::TlsConnector::builder();
        if let Some(path) = &self.root_cert {
            let pem =
                std::fs::read(path).map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            let certificate = native_tls::Certificate::from_pem(&pem).map_err(|e| {
                format!("sslrootcert {}: not a PEM certificate: {e}", path.display())
            })?;
            builder.add_root_certificate(certificate);
        }
        let checks_ca = matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull)
            || self.root_cert.is_some();
        builder.danger_accept_invalid_certs(!checks_ca);
        builder.danger_accept_invalid_hostnames(self.mode != SslMode::VerifyFull);
        builder.build().map(Some).map_err(|e| format!("TLS: {e}"))
    }

    /// Whether a server without TLS is refused.
    pub fn required(&self) -> bool {
        !matches!(self.mode, SslMode::Disable | SslMode::Prefer)
    }

    /// tokio-postgres's mode for the same connection.
    pub fn tokio_postgres_mode(&self) -> tokio_postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_keys_are_taken_off_both_forms() {
        let (rest, tls) = split(
            "host=db port=5432 user=sluice sslmode=verify-full sslrootcert='/etc/ca dir/root.crt' dbname=app",
        )
        .expect("valid");
        assert_eq!(rest, "host=db port=5432 user=sluice dbname=app");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ca dir/root.crt")));
        let (rest, tls) = split(
            "postgresql://sluice@db/app?sslmode=require&application_name=x&sslrootcert=%2Fca.pem",
        )
        .expect("valid");
        assert_eq!(rest, "postgresql://sluice@db/app?application_name=x");
        assert_eq!(tls.mode, SslMode::Require);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/ca.pem")));
        let (rest, tls) = split(r"host=db user=x password='it\'s'").expect("escaped quote");
        assert_eq!(rest, r"host=db user=x password='it\'s'");
        assert_eq!(tls.mode, SslMode::Prefer, "libpq's default");
        assert!(split("host=db sslmode=sometimes").is_err());
        assert!(split("host=db password='open").is_err());
    }

    #[test]
    fn modes_decide_what_is_checked() {
        let plain = Tls {
            mode: SslMode::Disable,
            root_cert: None,
        };
        assert!(plain.connector().expect("ok").is_none());
        assert!(!plain.required());
        let required = Tls {
            mode: SslMode::Require,
            root_cert: None,
        };
        assert!(required.required() && required.connector().expect("ok").is_some());
        let missing = Tls {
            mode: SslMode::VerifyCa,
            root_cert: Some(PathBuf::from("/nonexistent/root.crt")),
        };
        let error = missing.connector().expect_err("no such file");
        assert!(error.contains("/nonexistent/root.crt"), "{error}");
    }
}
