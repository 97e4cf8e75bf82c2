//! TLS for the tool's connections, with libpq's `sslmode` semantics.
//!
//! tokio-postgres understands `sslmode` disable/prefer/require only, and no `sslrootcert`; libpq
//! users write `verify-ca`, `verify-full` and `sslrootcert=...`. This module takes those options
//! out of the connection string (key=value or URI), and out of `PGSSLMODE` / `PGSSLROOTCERT`,
//! and builds the rustls configuration that does what libpq would:
//! - `disable`: no TLS; `allow`/`prefer` (the default): TLS when the server offers it;
//! - `require`: TLS, and the server certificate is checked against the root certificates only
//!   when some are given (`sslrootcert`, or `~/.postgresql/root.crt`), as libpq does;
//! - `verify-ca`: the chain must lead to a trusted root; `verify-full`: and the host name must
//!   match. Roots: `sslrootcert=<file>`, `sslrootcert=system` (the system's store), or
//!   `~/.postgresql/root.crt`.
//!
//! rustls (with the ring provider) is used rather than OpenSSL so the binary needs no system
//! TLS library.

use crate::error::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(s: &str) -> Result<Mode> {
        Ok(match s {
            "disable" => Mode::Disable,
            "allow" | "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            other => {
                return Err(Error::usage(format!(
                    "sslmode={other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )))
            }
        })
    }

    /// What to tell tokio-postgres (which then negotiates TLS through our connector).
    pub fn for_driver(self) -> tokio_postgres::config::SslMode {
        match self {
            Mode::Disable => tokio_postgres::config::SslMode::Disable,
            Mode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roots {
    /// `sslrootcert=<file>` (PEM).
    File(PathBuf),
    /// `sslrootcert=system`.
    System,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: Mode,
    pub roots: Option<Roots>,
}

/// Splits the TLS options off a connection string. Returns the string without them, and the
/// options (environment variables fill what the string does not say).
pub fn split(dsn: &str) -> Result<(String, TlsSettings)> {
    let (rest, mode, root) = if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        split_uri(dsn)
    } else {
        split_key_value(dsn)?
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mode = match mode.or_else(|| env("PGSSLMODE")) {
        Some(m) => Mode::parse(&m)?,
        None => Mode::Prefer,
    };
    let root = root.or_else(|| env("PGSSLROOTCERT"));
    let roots = match root.as_deref() {
        Some("system") => Some(Roots::System),
        Some(p) => Some(Roots::File(PathBuf::from(p))),
        None => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
            .filter(|p| p.is_file())
            .map(Roots::File),
    };
    Ok((rest, TlsSettings { mode, roots }))
}

fn split_uri(dsn: &str) -> (String, Option<String>, Option<String>) {
    let Some((base, query)) = dsn.split_once('?') else {
        return (dsn.to_string(), None, None);
    };
    let (mut mode, mut root, mut kept) = (None, None, Vec::new());
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => mode = Some(percent_decode(v)),
            "sslrootcert" => root = Some(percent_decode(v)),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, mode, root)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// key=value: values may be single-quoted, with `\\` and `\'` escapes (libpq's rules).
fn split_key_value(dsn: &str) -> Result<(String, Option<String>, Option<String>)> {
    let chars: Vec<char> = dsn.chars().collect();
    let (mut i, mut kept, mut mode, mut root) = (0, Vec::new(), None, None);
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() || chars[i] != '=' {
            return Err(Error::usage(format!(
                "the connection string is not valid near {key:?}: expected key=value"
            )));
        }
        i += 1;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
        }
        match key.as_str() {
            "sslmode" => mode = Some(value),
            "sslrootcert" => root = Some(value),
            _ => kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            )),
        }
    }
    Ok((kept.join(" "), mode, root))
}

/// The rustls configuration for `settings` (None for `disable`).
pub fn client_config(settings: &TlsSettings) -> Result<Option<rustls::ClientConfig>> {
    if settings.mode == Mode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::failed(format!("setting up TLS: {e}")))?;
    let verify = match settings.mode {
        Mode::VerifyCa | Mode::VerifyFull => true,
        // libpq: with a root certificate at hand, require (and prefer) verify the chain too.
        _ => settings.roots.is_some(),
    };
    let config = if verify {
        let roots = load_roots(settings.roots.as_ref())?;
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| Error::failed(format!("setting up TLS verification: {e}")))?;
        if settings.mode == Mode::VerifyFull {
            builder.with_webpki_verifier(webpki).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly { inner: webpki }))
                .with_no_client_auth()
        }
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified { provider }))
            .with_no_client_auth()
    };
    Ok(Some(config))
}

fn load_roots(roots: Option<&Roots>) -> Result<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Some(Roots::File(path)) => {
            let pem = std::fs::read(path).map_err(|e| {
                Error::usage(format!("cannot read sslrootcert {}: {e}", path.display()))
            })?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert =
                    cert.map_err(|e| Error::usage(format!("sslrootcert {}: {e}", path.display())))?;
                store
                    .add(cert)
                    .map_err(|e| Error::usage(format!("sslrootcert {}: {e}", path.display())))?;
            }
        }
        Some(Roots::System) | None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = store.add(cert);
            }
        }
    }
    if store.is_empty() {
        return Err(Error::usage(
            "no root certificate to verify the server with (give sslrootcert=<file>, or sslrootcert=system)",
        ));
    }
    Ok(store)
}

/// verify-ca: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// require/prefer without a root certificate: encrypted, server not authenticated (as libpq).
#[derive(Debug)]
struct Unverified {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_are_taken_out_of_key_value_strings() {
        let (rest, s) =
            split("host=db sslmode=verify-full sslrootcert='/etc/ca dir/root.crt' dbname=app")
                .unwrap();
        assert_eq!(s.mode, Mode::VerifyFull);
        assert_eq!(
            s.roots,
            Some(Roots::File(PathBuf::from("/etc/ca dir/root.crt")))
        );
        assert!(!rest.contains("ssl"));
        assert!(rest.contains("host='db'") && rest.contains("dbname='app'"));
        let c: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(c.get_dbname(), Some("app"));
    }

    #[test]
    fn tls_options_are_taken_out_of_uris() {
        let (rest, s) = split(
            "postgresql://u@db:5432/app?sslmode=require&application_name=x&sslrootcert=system",
        )
        .unwrap();
        assert_eq!(s.mode, Mode::Require);
        assert_eq!(s.roots, Some(Roots::System));
        assert_eq!(rest, "postgresql://u@db:5432/app?application_name=x");
        let (rest, _) = split("postgresql://u@db/app?sslmode=disable").unwrap();
        assert_eq!(rest, "postgresql://u@db/app");
    }

    #[test]
    fn bad_modes_and_strings_are_usage_errors() {
        assert!(split("host=db sslmode=sometimes").is_err());
        assert!(split("host").is_err());
    }

    #[test]
    fn quoted_values_keep_quotes_and_backslashes() {
        let (rest, _) = split(r"password='it\'s' host=h").unwrap();
        let c: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(c.get_password(), Some("it's".as_bytes()));
    }

    #[test]
    fn disable_needs_no_tls_config() {
        let s = TlsSettings {
            mode: Mode::Disable,
            roots: None,
        };
        assert!(client_config(&s).unwrap().is_none());
        let s = TlsSettings {
            mode: Mode::Require,
            roots: None,
        };
        assert!(client_config(&s).unwrap().is_some());
    }
}
