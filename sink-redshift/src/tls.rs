//! TLS for the PostgreSQL and Redshift connections, with libpq's `sslmode` meanings.
//!
//! - `disable`: plain TCP.
//! - `prefer`: TLS when the server offers it, else plain; the certificate is not verified.
//! - `require`: TLS or fail; the session is encrypted but the certificate is not verified
//!   (libpq's meaning: protects against eavesdropping, not against an active attacker).
//! - `verify-full`: TLS, the chain verified against the system's root certificates
//!   (`rustls-native-certs`; `SSL_CERT_FILE` / `SSL_CERT_DIR` override) and the host name
//!   checked against the certificate.
//!
//! The mode comes from the `sslmode` config key, else from `sslmode=` in the URL's query
//! string (or a `sslmode=` word of a `key=value` connection string), else the sink's
//! default (`prefer` for postgres, `require` for redshift). `verify-ca` is refused: use
//! `verify-full`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::Error;

/// libpq's `sslmode`, the subset the sinks support.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, else plain; certificate not verified.
    Prefer,
    /// TLS or fail; certificate not verified.
    Require,
    /// TLS or fail; chain verified against the system roots, host name checked.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(s: &str, key: &str) -> Result<SslMode, Error> {
        match s {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(Error::Config(format!(
                "{key}: sslmode {other:?} is not supported: use disable, prefer, require or \
                 verify-full"
            ))),
        }
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Removes `sslmode=...` from a connection URL or `key=value` string; returns the rest and
/// the mode found, if any. `key` names the config key in errors (never the URL: it may hold
/// a password).
pub fn split_sslmode(url: &str, key: &str) -> Result<(String, Option<SslMode>), Error> {
    let mut found = None;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslmode", v)) => found = Some(SslMode::parse(v, key)?),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, found));
    }
    let mut kept = Vec::new();
    for word in url.split_whitespace() {
        match word.strip_prefix("sslmode=") {
            Some(v) => found = Some(SslMode::parse(v.trim_matches('\''), key)?),
            None => kept.push(word),
        }
    }
    Ok((kept.join(" "), found))
}

/// The tokio-postgres config and TLS connector for `url` (without its `sslmode`) in `mode`.
/// A password missing from the URL is taken from `PGPASSWORD` when that is set.
pub fn connector(
    url: &str,
    key: &str,
    configured: Option<SslMode>,
    default: SslMode,
) -> Result<(tokio_postgres::Config, MakeRustlsConnect, SslMode), Error> {
    let (rest, in_url) = split_sslmode(url, key)?;
    let mode = configured.or(in_url).unwrap_or(default);
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| Error::Config(format!("{key} is not a PostgreSQL URL: {e}")))?;
    // As libpq does: a password not in the URL may come from PGPASSWORD, so it need not be
    // written into a config file or a command line.
    if config.get_password().is_none()
        && let Ok(password) = std::env::var("PGPASSWORD")
        && !password.is_empty()
    {
        config.password(password);
    }
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
    });
    Ok((config, make_tls(mode)?, mode))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls client config for a mode.
pub fn make_tls(mode: SslMode) -> Result<MakeRustlsConnect, Error> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?;
    let config = match mode {
        SslMode::VerifyFull => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Err(Error::Config(format!(
                    "sslmode=verify-full needs the system's root certificates and none were \
                     found{why} (install ca-certificates or set SSL_CERT_FILE)"
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// `prefer`/`require`: accepts any certificate (libpq does not verify in these modes) but
/// still checks the handshake signatures, so the session key belongs to the certificate.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sslmode_from_url() {
        let (rest, m) = split_sslmode(
            "postgres://u:p@h:5439/db?sslmode=verify-full&application_name=x",
            "k",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@h:5439/db?application_name=x");
        assert_eq!(m, Some(SslMode::VerifyFull));
        let (rest, m) = split_sslmode("postgres://u@h/db?sslmode=disable", "k").unwrap();
        assert_eq!(
            (rest.as_str(), m),
            ("postgres://u@h/db", Some(SslMode::Disable))
        );
        let (rest, m) = split_sslmode("host=h user=u sslmode=require dbname=d", "k").unwrap();
        assert_eq!(
            (rest.as_str(), m),
            ("host=h user=u dbname=d", Some(SslMode::Require))
        );
        assert_eq!(split_sslmode("postgres://h/db", "k").unwrap().1, None);
        let err = split_sslmode(
            "postgres://u:secretpw@h/db?sslmode=verify-ca",
            "sink.pg_url",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("sink.pg_url") && err.contains("verify-ca"),
            "{err}"
        );
        assert!(!err.contains("secretpw"), "{err}");
    }

    #[test]
    fn config_key_wins_over_url_and_default_applies() {
        let (c, _, m) = connector(
            "postgres://u@h/db?sslmode=disable",
            "k",
            Some(SslMode::Require),
            SslMode::Prefer,
        )
        .unwrap();
        assert_eq!(m, SslMode::Require);
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        let (c, _, m) = connector("postgres://u@h/db", "k", None, SslMode::Require).unwrap();
        assert_eq!(m, SslMode::Require);
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        let (c, _, m) = connector(
            "postgres://u@h/db?sslmode=disable",
            "k",
            None,
            SslMode::Require,
        )
        .unwrap();
        assert_eq!(m, SslMode::Disable);
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
    }
}
