//! TLS to memcached (`-Z`): the settings, built once when the lock is configured, the
//! handshake on every new connection, and the words for what went wrong.
//!
//! rustls with the `ring` provider; the server's certificate is always verified, against
//! `credential.ssl_ca_file` or the operating system's trust store. A certificate problem is a
//! `TLS_FAILED` error of kind `Config`: retrying does not fix it, so it is neither retried
//! nor counted against the server's health; the pool's `options.reconnect` spaces the next
//! attempts anyway.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use commons::{Error, ErrorKind};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, AlertDescription, CertificateError, ClientConfig, RootCertStore};

use super::errors::connection_error;
use super::peer::Peer;
use crate::codes::TLS_FAILED;

/// What the lock's configuration says about TLS (`connection.protocol=tls` turns it on).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsConfig {
    /// `credential.ssl_ca_file` (none: the system's trust store): PEM certificates of the
    /// CAs trusted to sign the servers' certificates.
    pub ca_file: Option<PathBuf>,
    /// `credential.ssl_crt_file` (none): the client's certificate chain (PEM), for servers
    /// that require one (`ssl_verify_mode=2`). Needs `key_file`.
    pub crt_file: Option<PathBuf>,
    /// `credential.ssl_key_file` (none): the client certificate's private key (PEM). Needs
    /// `crt_file`.
    pub key_file: Option<PathBuf>,
    /// `options.tls_server_name` (none: each server's host): the name the servers'
    /// certificates must be valid for.
    pub server_name: Option<String>,
}

/// [`TlsConfig`] turned into a rustls client configuration, once; shared by every connection.
pub(crate) struct TlsSettings {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
    source: TlsConfig,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Two settings are equal when they were built from the same configuration.
impl PartialEq for TlsSettings {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl TlsSettings {
    /// Reads the files and builds the rustls configuration. Every problem is a `BAD_CONFIG`
    /// error naming the key and the file.
    pub(crate) fn build(source: TlsConfig) -> Result<TlsSettings, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config(format!("TLS: no protocol version available: {e}")))?
            .with_root_certificates(roots(source.ca_file.as_deref())?);
        let mut config = match (&source.crt_file, &source.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(crt), Some(key)) => {
                let chain = read_certificates("credential.ssl_crt_file", crt)?;
                let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    bad_file(
                        "credential.ssl_key_file",
                        key,
                        &format!("a PEM private key ({e})"),
                    )
                })?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    Error::config(format!(
                        "TLS: the client certificate {} and key {} cannot be used together: {e}",
                        crt.display(),
                        key.display()
                    ))
                    .with_detail("key", "credential.ssl_key_file")
                })?
            }
            (Some(_), None) => return Err(missing_pair("credential.ssl_key_file")),
            (None, Some(_)) => return Err(missing_pair("credential.ssl_crt_file")),
        };
        // No session resumption: connections live long, so it saves little, and memcached
        // requiring client certificates (`ssl_verify_mode`) sets no session id context, so
        // OpenSSL ends every resumed handshake with an `internal_error` alert.
        config.resumption = rustls::client::Resumption::disabled();
        let server_name = match &source.server_name {
            None => None,
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
                Error::bad_config_value(
                    "options.tls_server_name",
                    name,
                    "a DNS name or an IP address",
                )
            })?),
        };
        Ok(TlsSettings {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            source,
        })
    }

    /// Negotiates TLS on `tcp` within `left`; the server's certificate must be valid for
    /// `options.tls_server_name`, or else the host `peer` was configured with.
    pub(crate) async fn handshake(
        &self,
        peer: &Peer,
        tcp: TcpStream,
        left: Duration,
    ) -> Result<TlsStream<TcpStream>, Error> {
        let address = &**peer.name();
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => {
                let host = host_of(address);
                ServerName::try_from(host.to_string()).map_err(|_| {
                    tls_error(
                        address,
                        format!(
                            "'{host}' is not a name a certificate can be checked against; set options.tls_server_name"
                        ),
                    )
                })?
            }
        };
        match tokio::time::timeout(left, self.connector.connect(name, tcp)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(handshake_failed(address, e)),
            Err(_) => Err(connection_error(
                address,
                format!(
                    "the TLS handshake with memcached at {address} did not finish within \
                     options.connect_timeout ({left:?} were left after the TCP connect)"
                ),
            )),
        }
    }
}

/// The host part of `host:port` (`[v6]:port` included).
fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = read_certificates("credential.ssl_ca_file", path)?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(bad_file(
                    "credential.ssl_ca_file",
                    path,
                    "at least one valid CA certificate",
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(Error::config(
                    "TLS: no CA certificates found in the system's trust store; set credential.ssl_ca_file",
                )
                .with_detail("key", "credential.ssl_ca_file"));
            }
        }
    }
    Ok(roots)
}

/// Every certificate in a PEM file; none is an error.
fn read_certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad_file(key, path, &format!("a readable PEM file ({e})")))?;
    if certs.is_empty() {
        return Err(bad_file(key, path, "PEM certificates (none found)"));
    }
    Ok(certs)
}

fn bad_file(key: &str, path: &Path, expected: &str) -> Error {
    Error::bad_config_value(key, &path.display().to_string(), expected)
}

fn missing_pair(missing: &str) -> Error {
    Error::config(format!(
        "TLS: a client certificate needs both credential.ssl_crt_file and credential.ssl_key_file; {missing} is not set"
    ))
    .with_detail("key", missing)
}

/// `TLS_FAILED` (kind `Config`, not retryable): TLS cannot work with these settings.
pub(crate) fn tls_error(address: &str, reason: String) -> Error {
    Error::new(
        ErrorKind::Config,
        TLS_FAILED,
        format!("TLS with memcached at {address} failed: {reason}"),
    )
    .with_detail("server", address)
    .with_retryable(false)
}

/// A failed handshake: `TLS_FAILED` when TLS itself refused (certificate, alert, not TLS at
/// all), `CONNECTION_FAILED` when the socket failed under it.
fn handshake_failed(address: &str, e: io::Error) -> Error {
    match rustls_cause(&e) {
        Some(cause) => tls_error(address, explain(cause)).with_source(e),
        None => connection_error(
            address,
            format!(
                "the TLS handshake with memcached at {address} failed: {e} (a plaintext port, or a \
                 server that refused this client)"
            ),
        )
        .with_source(e),
    }
}

/// The TLS error carried by an I/O error of a TLS stream, if any.
pub(crate) fn rustls_cause(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// The reason TLS refused, when `e` is such a refusal (under TLS 1.3 a server that wants a
/// client certificate says so only at the first read, after the handshake).
pub(crate) fn refusal(e: &io::Error) -> Option<String> {
    rustls_cause(e).map(explain)
}

/// An I/O error of a connection in words: TLS refusals explained (under TLS 1.3 a server that
/// wants a client certificate says so only at the first read, after the handshake).
pub(crate) fn describe_io(e: &io::Error) -> String {
    match rustls_cause(e) {
        Some(cause) => format!("TLS: {}", explain(cause)),
        None => e.to_string(),
    }
}

/// What a TLS refusal means, and which setting to look at.
fn explain(e: &rustls::Error) -> String {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "the server's certificate is not signed by a trusted CA \
                 (credential.ssl_ca_file, or the system's trust store when it is not set)"
                    .to_string()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the server's certificate is not valid for the name asked for \
                     (options.tls_server_name, by default the server's host): {c}"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the server's certificate has expired: {c}")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("the server's certificate is not valid yet: {c}")
            }
            other => format!("the server's certificate was refused: {other}"),
        },
        E::AlertReceived(AlertDescription::CertificateRequired) => {
            "the server requires a client certificate (credential.ssl_crt_file and \
             credential.ssl_key_file)"
                .to_string()
        }
        E::AlertReceived(
            alert @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::AccessDenied),
        ) => format!("the server refused the client certificate (alert {alert:?})"),
        E::AlertReceived(alert) => format!("the server ended the handshake (alert {alert:?})"),
        E::InvalidMessage(_) => format!(
            "the server does not speak TLS on this port ({e}): a plaintext memcached port? \
             (then do not set connection.protocol=tls)"
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_of_strips_the_port() {
        assert_eq!(host_of("cache.example:11211"), "cache.example");
        assert_eq!(host_of("127.0.0.1:11211"), "127.0.0.1");
        assert_eq!(host_of("[::1]:11211"), "::1");
        assert_eq!(host_of("cache"), "cache");
    }
}
