//! TLS to PostgreSQL as libpq's `sslmode` and `sslrootcert` say, for both of capture's
//! connections (the catalog's, through tokio-postgres, and the replication one):
//!
//! - `disable`: plain TCP; `prefer` (libpq's default): TLS when the server offers it;
//! - `require`: TLS or nothing, the certificate not checked (unless `sslrootcert` names
//!   a CA, which then checks it, as libpq does);
//! - `verify-ca`: the certificate must chain to `sslrootcert` (or the system's CAs);
//! - `verify-full`: and name the host.
//!
//! A client certificate (`sslcert`, `sslkey`, `sslpassword`; for `cert` authentication in
//! pg_hba.conf) is sent as libpq sends it: the files named, else
//! `~/.postgresql/postgresql.crt` and `.key` when they exist; a key readable by group or
//! others is refused, as libpq refuses it; the key may be PKCS#8, PKCS#1 (RSA) or SEC1
//! (EC), encrypted or not.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require`, and none of the other keys:
//! [`split`] takes them off the connection string before it parses the rest.

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
    /// `sslcert`: the client's certificate (PEM, the chain after it).
    pub cert: Option<PathBuf>,
    /// `sslkey`: the client certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// `sslpassword`: the passphrase of an encrypted `sslkey`.
    pub password: Option<String>,
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
            "sslcert" => {
                tls.cert = Some(PathBuf::from(value));
                Ok(true)
            }
            "sslkey" => {
                tls.key = Some(PathBuf::from(value));
                Ok(true)
            }
            "sslpassword" => {
                tls.password = Some(value.to_owned());
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
        if let Some(identity) = self.identity()? {
            builder.identity(identity);
        }
        let checks_ca = matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull)
            || self.root_cert.is_some();
        builder.danger_accept_invalid_certs(!checks_ca);
        builder.danger_accept_invalid_hostnames(self.mode != SslMode::VerifyFull);
        builder.build().map(Some).map_err(|e| format!("TLS: {e}"))
    }

    /// The client certificate to present, as libpq finds it: `sslcert` (else
    /// `~/.postgresql/postgresql.crt` if it exists) with `sslkey` (else
    /// `~/.postgresql/postgresql.key`).
    fn identity(&self) -> Result<Option<native_tls::Identity>, String> {
        let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql"));
        let cert = match (&self.cert, &home) {
            (Some(path), _) => path.clone(),
            (None, Some(dir)) if dir.join("postgresql.crt").is_file() => dir.join("postgresql.crt"),
            _ => return Ok(None),
        };
        let key = match (&self.key, &home) {
            (Some(path), _) => path.clone(),
            (None, Some(dir)) => dir.join("postgresql.key"),
            (None, None) => {
                return Err(format!(
                    "sslcert {}: no sslkey given (and no HOME to find ~/.postgresql/postgresql.key)",
                    cert.display()
                ));
            }
        };
        // A FIFO or device would block the read (libpq refuses them too).
        for (what, path) in [("sslcert", &cert), ("sslkey", &key)] {
            match std::fs::metadata(path) {
                Ok(meta) if !meta.is_file() => {
                    return Err(format!("{what} {}: not a regular file", path.display()));
                }
                _ => {} // a missing file is reported by the read below
            }
        }
        let chain = std::fs::read(&cert).map_err(|e| format!("sslcert {}: {e}", cert.display()))?;
        check_key_permissions(&key)?;
        let key_pem = std::fs::read(&key).map_err(|e| {
            format!(
                "sslkey {}: {e} (the private key of sslcert {})",
                key.display(),
                cert.display()
            )
        })?;
        let pkcs8 = as_pkcs8(&key_pem, self.password.as_deref())
            .map_err(|e| format!("sslkey {}: {e}", key.display()))?;
        native_tls::Identity::from_pkcs8(&chain, &pkcs8)
            .map(Some)
            .map_err(|e| {
                format!(
                    "sslcert {} with sslkey {}: {e} (expected a PEM certificate and its key)",
                    cert.display(),
                    key.display()
                )
            })
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

/// libpq's rule: a private key readable by group or others is refused (0600 or less when
/// the current user owns it; 0640 or less when root does, for keys shared through a group).
#[cfg(unix)]
fn check_key_permissions(key: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(key).map_err(|e| format!("sslkey {}: {e}", key.display()))?;
    let mode = meta.mode() & 0o777;
    let allowed = if meta.uid() == 0 { 0o640 } else { 0o600 };
    if mode & !allowed != 0 {
        return Err(format!(
            "sslkey {}: the private key has group or world access (mode {mode:o}); it must be \
             u=rw (0600) or less, or u=rw,g=r (0640) or less if owned by root: chmod 600 it",
            key.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_permissions(_key: &std::path::Path) -> Result<(), String> {
    Ok(())
}

/// The key as unencrypted PKCS#8 PEM (what native-tls takes), from any PEM form libpq
/// reads: PKCS#8, PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`, or an encrypted one
/// with its passphrase.
#[cfg(all(unix, not(target_vendor = "apple")))]
fn as_pkcs8(pem: &[u8], password: Option<&str>) -> Result<Vec<u8>, String> {
    let key = match password {
        Some(password) => {
            openssl::pkey::PKey::private_key_from_pem_passphrase(pem, password.as_bytes())
        }
        None => openssl::pkey::PKey::private_key_from_pem_callback(pem, |_| {
            // An encrypted key and no sslpassword: say so instead of prompting.
            Err(openssl::error::ErrorStack::get())
        }),
    };
    let key = key.map_err(|e| {
        let encrypted = std::str::from_utf8(pem).is_ok_and(|t| t.contains("ENCRYPTED"));
        if encrypted && password.is_none() {
            "the private key is encrypted and no sslpassword was given".to_owned()
        } else if encrypted {
            format!("the private key could not be decrypted with sslpassword ({e})")
        } else {
            format!("not a PEM private key ({e})")
        }
    })?;
    key.private_key_to_pem_pkcs8()
        .map_err(|e| format!("the private key could not be re-encoded as PKCS#8 ({e})"))
}

/// Elsewhere native-tls's backend reads the key itself: PKCS#8 only.
#[cfg(not(all(unix, not(target_vendor = "apple"))))]
fn as_pkcs8(pem: &[u8], password: Option<&str>) -> Result<Vec<u8>, String> {
    if password.is_some() {
        return Err("sslpassword is not supported on this platform; decrypt the key".into());
    }
    Ok(pem.to_vec())
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
            ..Tls::default()
        };
        assert!(plain.connector().expect("ok").is_none());
        assert!(!plain.required());
        let required = Tls {
            mode: SslMode::Require,
            ..Tls::default()
        };
        assert!(required.required() && required.connector().expect("ok").is_some());
        let missing = Tls {
            mode: SslMode::VerifyCa,
            root_cert: Some(PathBuf::from("/nonexistent/root.crt")),
            ..Tls::default()
        };
        let error = missing.connector().expect_err("no such file");
        assert!(error.contains("/nonexistent/root.crt"), "{error}");
    }

    #[test]
    fn client_certificate_keys_are_taken_off_the_string() {
        let (rest, tls) = split(
            "host=db sslcert=/c/client.crt sslkey='/c/client key.pem' sslpassword=secret user=x",
        )
        .expect("valid");
        assert_eq!(rest, "host=db user=x");
        assert_eq!(tls.cert, Some(PathBuf::from("/c/client.crt")));
        assert_eq!(tls.key, Some(PathBuf::from("/c/client key.pem")));
        assert_eq!(tls.password.as_deref(), Some("secret"));
        let (rest, tls) =
            split("postgres://x@db/app?sslcert=%2Fc.crt&sslkey=%2Fc.key").expect("valid");
        assert_eq!(rest, "postgres://x@db/app");
        assert_eq!(tls.cert, Some(PathBuf::from("/c.crt")));
        assert_eq!(tls.key, Some(PathBuf::from("/c.key")));
    }

    #[cfg(all(unix, not(target_vendor = "apple")))]
    #[test]
    fn every_key_form_libpq_reads_becomes_pkcs8() {
        use openssl::ec::{EcGroup, EcKey};
        use openssl::nid::Nid;
        use openssl::pkey::PKey;
        use openssl::rsa::Rsa;
        use openssl::symm::Cipher;

        let rsa = Rsa::generate(2048).expect("rsa");
        let pkcs1 = rsa.private_key_to_pem().expect("pem");
        assert!(pkcs1.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("curve");
        let sec1 = EcKey::generate(&group)
            .expect("ec")
            .private_key_to_pem()
            .expect("pem");
        assert!(sec1.starts_with(b"-----BEGIN EC PRIVATE KEY-----"));
        let pkey = PKey::from_rsa(rsa.clone()).expect("pkey");
        let pkcs8 = pkey.private_key_to_pem_pkcs8().expect("pem");
        let encrypted = pkey
            .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"s3cret")
            .expect("pem");
        for (form, pem, password) in [
            ("PKCS#1", &pkcs1, None),
            ("SEC1", &sec1, None),
            ("PKCS#8", &pkcs8, None),
            ("encrypted PKCS#8", &encrypted, Some("s3cret")),
        ] {
            let out = as_pkcs8(pem, password).unwrap_or_else(|e| panic!("{form}: {e}"));
            assert!(out.starts_with(b"-----BEGIN PRIVATE KEY-----"), "{form}");
        }
        let same = PKey::private_key_from_pem(&as_pkcs8(&pkcs1, None).expect("ok")).expect("pem");
        assert!(same.public_eq(&pkey), "the same key, re-encoded");
        let error = as_pkcs8(&encrypted, None).expect_err("no password");
        assert!(error.contains("no sslpassword"), "{error}");
        let error = as_pkcs8(&encrypted, Some("wrong")).expect_err("wrong password");
        assert!(error.contains("could not be decrypted"), "{error}");
        let error = as_pkcs8(b"not a key", None).expect_err("garbage");
        assert!(error.contains("not a PEM private key"), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_others_can_read_is_refused_as_libpq_refuses_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("sluice-tls-perm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let key = dir.join("client.key");
        std::fs::write(&key, b"-----BEGIN PRIVATE KEY-----").expect("write");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        check_key_permissions(&key).expect("0600 is fine");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let owned_by_root = std::fs::metadata(&key).map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == 0
        });
        let error = check_key_permissions(&key).expect_err("world-readable");
        assert!(
            error.contains("client.key") && error.contains("644"),
            "{error}"
        );
        if owned_by_root.unwrap_or(false) {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
            check_key_permissions(&key).expect("root's key may be group-readable");
        }
        let tls = Tls {
            mode: SslMode::Require,
            cert: Some(dir.join("client.crt")),
            key: Some(key.clone()),
            ..Tls::default()
        };
        let error = tls.connector().expect_err("no certificate file");
        assert!(
            error.contains("sslcert") && error.contains("client.crt"),
            "{error}"
        );
        std::fs::write(dir.join("client.crt"), b"not read").expect("write");
        let special = Tls {
            mode: SslMode::Require,
            cert: Some(dir.join("client.crt")),
            key: Some(dir.clone()),
            ..Tls::default()
        };
        let error = special.connector().expect_err("a directory as the key");
        assert!(
            error.contains("sslkey") && error.contains("not a regular file"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
