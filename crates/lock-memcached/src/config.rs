//! The typed configuration of [`crate::MemcachedLock`], parsed once in `configure`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use commons::{ConfigParams, CredentialParams, Error, Result};

use crate::client::{ClientOptions, Credentials, TlsSettings};
pub use crate::client::{KeyDistribution, ProtocolMode, TlsConfig};
pub use crate::telemetry::TelemetryKey;

/// Every option `MemcachedLock` reads from `options.*`, with its default.
///
/// Times are milliseconds except `max_expiration`, which is seconds (as in every original).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MemcachedLockConfig {
    /// `options.max_size` (1000): how many locks one instance may hold at once; an acquire
    /// beyond it fails with a bad-request error instead of growing the lease table.
    pub max_size: usize,
    /// `options.max_key_size` (250, at most 250): longest key on the wire (after prefix and
    /// base64 encoding).
    pub max_key_size: usize,
    /// `options.max_expiration` (2592000 s = 30 days, at most that): the longest ttl.
    pub max_expiration: Duration,
    /// `options.max_value` (1048576 bytes): the largest value the client accepts in a reply.
    pub max_value: usize,
    /// `options.pool_size` (5): connections per server.
    pub pool_size: usize,
    /// `options.reconnect` (10000 ms): the least time between two reconnects of a connection.
    pub reconnect: Duration,
    /// `options.retries` (3): retries of operations that are safe to repeat.
    pub retries: u32,
    /// `options.timeout` (5000 ms): the bound on every operation (connect, send, reply).
    pub timeout: Duration,
    /// `options.connect_timeout` (defaults to `timeout`): the bound on opening a connection.
    pub connect_timeout: Duration,
    /// `options.failures` (5): consecutive failures that mark a server down.
    pub failures: u32,
    /// `options.retry` (30000 ms): how long a down server is left alone.
    pub retry: Duration,
    /// `options.idle` (5000 ms): idle connections are closed after this long.
    pub idle: Duration,
    /// `options.retry_timeout` (100 ms): the base interval between acquire attempts.
    pub retry_timeout: Duration,
    /// `options.key_prefix` (empty): a namespace put before every key.
    pub key_prefix: String,
    /// `options.base64_keys` (false): send keys base64-encoded (the text is the key in both
    /// protocols), which allows
    /// any UTF-8 or binary lock name.
    pub base64_keys: bool,
    /// `options.distribution` (`ketama`): `ketama` consistent hashing, or `modula` (CRC32 modulo,
    /// as the Go original's client) for fleets shared with it.
    pub distribution: KeyDistribution,
    /// `options.protocol` (`auto`): `auto`, `meta` or `classic`.
    pub protocol: ProtocolMode,
    /// `options.mode` (`sharded`): `sharded` (each key on one server) or `quorum` (each key on
    /// every server, held while a majority holds it; at least 3 servers).
    pub mode: LockMode,
    /// `options.max_ttl` (60000 ms; quorum mode only): the longest ttl a quorum lock takes.
    /// Every client of one quorum must use the same value (the quarantine rests on it).
    pub max_ttl: Duration,
    /// `options.quarantine` (`max_ttl`; quorum mode only, at least `max_ttl`): a server whose
    /// memory is younger than this (restarted, flushed, or its boot marker evicted) does not
    /// count towards a majority.
    pub quarantine: Duration,
    /// `options.drift` (2 ms; quorum mode only): added to 1 % of the ttl, the clock drift a
    /// quorum lease's validity allows for.
    pub drift: Duration,
    /// `options.telemetry_key` (`plain`): how the lock key appears in tracing spans: `plain`,
    /// `hash` (the first 16 hex digits of its MD5) or `none` (left out). Never a metric
    /// label, whatever the setting (docs/observability.md).
    pub telemetry_key: TelemetryKey,
    /// `credential.username` / `credential.password` (none): memcached ASCII authentication
    /// (`-Y`) on every new connection. The password is never shown.
    pub(crate) auth: Option<Arc<Credentials>>,
    /// TLS (none): on with `connection.protocol=tls` (or a `memcacheds://` uri), with the
    /// files of `credential.ssl_*` and `options.tls_server_name`; see [`TlsConfig`].
    pub tls: Option<TlsConfig>,
    /// `tls` with its files read and checked, once, when the lock is configured.
    pub(crate) tls_settings: Option<Arc<TlsSettings>>,
}

/// How keys map to servers (`options.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockMode {
    /// Each key lives on one server, chosen by `options.distribution`.
    Sharded,
    /// Each key lives on every server; a lock is granted and kept while a majority of the
    /// servers (not in quarantine) hold it.
    Quorum,
}

impl Default for MemcachedLockConfig {
    fn default() -> Self {
        MemcachedLockConfig {
            max_size: 1000,
            max_key_size: 250,
            max_expiration: Duration::from_secs(MAX_EXPIRATION_SECS),
            max_value: 1_048_576,
            pool_size: 5,
            reconnect: Duration::from_millis(10_000),
            retries: 3,
            timeout: Duration::from_millis(5_000),
            connect_timeout: Duration::from_millis(5_000),
            failures: 5,
            retry: Duration::from_millis(30_000),
            idle: Duration::from_millis(5_000),
            retry_timeout: Duration::from_millis(100),
            key_prefix: String::new(),
            base64_keys: false,
            distribution: KeyDistribution::Ketama,
            protocol: ProtocolMode::Auto,
            mode: LockMode::Sharded,
            max_ttl: Duration::from_millis(60_000),
            quarantine: Duration::from_millis(60_000),
            drift: Duration::from_millis(2),
            telemetry_key: TelemetryKey::Plain,
            auth: None,
            tls: None,
            tls_settings: None,
        }
    }
}

/// memcached reads a relative ttl above 30 days as an absolute Unix time.
pub(crate) const MAX_EXPIRATION_SECS: u64 = 2_592_000;

/// The keys of the `options` section, for the unknown-key check.
const KNOWN_OPTIONS: &[&str] = &[
    "max_size",
    "max_key_size",
    "max_expiration",
    "max_value",
    "pool_size",
    "reconnect",
    "retries",
    "timeout",
    "connect_timeout",
    "failures",
    "retry",
    "idle",
    "retry_timeout",
    "key_prefix",
    "base64_keys",
    "distribution",
    "protocol",
    "mode",
    "max_ttl",
    "quarantine",
    "drift",
    "tls_server_name",
    "telemetry_key",
];

impl MemcachedLockConfig {
    /// Parses `options.*` from `config`; every malformed or unknown option is an error naming
    /// the key and the value.
    ///
    /// ```
    /// use commons::ConfigParams;
    /// use lock_memcached::MemcachedLockConfig;
    ///
    /// let c = MemcachedLockConfig::from_config(&ConfigParams::from_string(
    ///     "options.timeout=500;options.pool_size=2",
    /// ))
    /// .unwrap();
    /// assert_eq!(c.timeout.as_millis(), 500);
    /// assert!(MemcachedLockConfig::from_config(&ConfigParams::from_string("options.pool_sise=2")).is_err());
    /// ```
    pub fn from_config(config: &ConfigParams) -> Result<Self> {
        let options = config.get_section("options");
        for key in options.keys() {
            if !KNOWN_OPTIONS.contains(&key) {
                return Err(Error::config(format!(
                    "unknown option 'options.{key}'; known options: {}",
                    KNOWN_OPTIONS.join(", ")
                ))
                .with_detail("key", format!("options.{key}")));
            }
        }
        let d = MemcachedLockConfig::default();
        let ms = |name: &str, default: Duration| -> Result<Duration> {
            Ok(config
                .get_millis_strict(&format!("options.{name}"))?
                .unwrap_or(default))
        };
        let positive = |name: &str, default: u64| -> Result<u64> {
            let key = format!("options.{name}");
            match config.get_parsed::<u64>(&key)? {
                Some(0) => Err(Error::bad_config_value(
                    &key,
                    "0",
                    "a number greater than 0",
                )),
                Some(v) => Ok(v),
                None => Ok(default),
            }
        };

        let timeout = ms("timeout", d.timeout)?;
        if timeout.is_zero() {
            return Err(Error::bad_config_value(
                "options.timeout",
                "0",
                "a timeout above 0 ms",
            ));
        }
        let max_key_size = positive("max_key_size", d.max_key_size as u64)?;
        if max_key_size > 250 {
            return Err(Error::bad_config_value(
                "options.max_key_size",
                &max_key_size.to_string(),
                "at most 250 (memcached's key limit)",
            ));
        }
        let max_expiration = positive("max_expiration", MAX_EXPIRATION_SECS)?;
        if max_expiration > MAX_EXPIRATION_SECS {
            return Err(Error::bad_config_value(
                "options.max_expiration",
                &max_expiration.to_string(),
                "at most 2592000 seconds (memcached reads longer ttls as absolute times)",
            ));
        }
        let distribution = choice(config, "options.distribution", d.distribution)?;
        let protocol = choice(config, "options.protocol", d.protocol)?;
        let mode = choice(config, "options.mode", d.mode)?;
        let telemetry_key = choice(config, "options.telemetry_key", d.telemetry_key)?;
        let max_ttl = ms("max_ttl", d.max_ttl)?;
        if max_ttl < Duration::from_secs(2) || max_ttl.as_secs() > MAX_EXPIRATION_SECS {
            return Err(Error::bad_config_value(
                "options.max_ttl",
                &max_ttl.as_millis().to_string(),
                "from 2000 ms (memcached trusts a ttl for one second less than asked) to 30 days",
            ));
        }
        let quarantine = ms("quarantine", max_ttl)?;
        if quarantine < max_ttl {
            return Err(Error::bad_config_value(
                "options.quarantine",
                &quarantine.as_millis().to_string(),
                "at least options.max_ttl: a restarted server must not count before every lock it \
                 held has expired",
            ));
        }
        let drift = ms("drift", d.drift)?;
        let tls = tls_from_config(config)?;
        let tls_settings = match &tls {
            Some(tls) => Some(Arc::new(TlsSettings::build(tls.clone())?)),
            None => None,
        };
        let key_prefix = config
            .get("options.key_prefix")
            .unwrap_or_default()
            .to_string();
        if key_prefix.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            return Err(Error::bad_config_value(
                "options.key_prefix",
                &key_prefix,
                "printable ASCII without spaces",
            ));
        }

        Ok(MemcachedLockConfig {
            max_size: positive("max_size", d.max_size as u64)? as usize,
            max_key_size: max_key_size as usize,
            max_expiration: Duration::from_secs(max_expiration),
            max_value: positive("max_value", d.max_value as u64)? as usize,
            pool_size: positive("pool_size", d.pool_size as u64)?.min(1024) as usize,
            reconnect: ms("reconnect", d.reconnect)?,
            retries: config
                .get_parsed::<u32>("options.retries")?
                .unwrap_or(d.retries),
            timeout,
            connect_timeout: ms("connect_timeout", timeout)?,
            failures: positive("failures", d.failures as u64)?.min(u32::MAX as u64) as u32,
            retry: ms("retry", d.retry)?,
            idle: ms("idle", d.idle)?,
            retry_timeout: ms("retry_timeout", d.retry_timeout)?,
            key_prefix,
            base64_keys: config
                .get_bool_strict("options.base64_keys")?
                .unwrap_or(d.base64_keys),
            distribution,
            protocol,
            mode,
            max_ttl,
            quarantine,
            drift,
            telemetry_key,
            auth: credentials_of(config)?,
            tls,
            tls_settings,
        })
    }

    /// The user name of the configured memcached authentication, if any.
    pub fn username(&self) -> Option<&str> {
        self.auth.as_deref().map(Credentials::username)
    }

    pub(crate) fn client_options(&self) -> ClientOptions {
        ClientOptions {
            pool_size: self.pool_size,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            reconnect: self.reconnect,
            retries: self.retries,
            failures: self.failures,
            retry: self.retry,
            idle: self.idle,
            max_value: self.max_value,
            distribution: self.distribution,
            auth: self.auth.clone(),
            tls: self.tls_settings.clone(),
        }
    }
}

/// The configured memcached user name and password (`credential.*` and the other forms the
/// credential resolver reads), checked now; one looked up by `store_key` is only known at
/// open (see [`memcached_credentials`]).
fn credentials_of(config: &ConfigParams) -> Result<Option<Arc<Credentials>>> {
    match CredentialParams::first_from_config(config)? {
        Some(found) if !found.uses_store() => memcached_credentials(&found),
        _ => Ok(None),
    }
}

/// The user name and password of `found` for memcached's authentication, if it has a user:
/// neither may hold a space or a line break (the protocol sends `<user> <password>` on one
/// line). A credential without a user (TLS files only) is no login.
pub(crate) fn memcached_credentials(found: &CredentialParams) -> Result<Option<Arc<Credentials>>> {
    let Some(username) = found.username() else {
        return Ok(None);
    };
    Credentials::new(username, found.password().unwrap_or_default())
        .map(|c| Some(Arc::new(c)))
        .ok_or_else(|| {
            Error::config(
                "credential.username must be non-empty, and neither it nor credential.password may contain spaces or line breaks (memcached's authentication sends them on one line)",
            )
            .with_detail("key", "credential.username")
        })
}

/// The names of `connection.protocol` (and uri schemes) that mean TLS.
const TLS_PROTOCOLS: &[&str] = &["tls", "ssl", "memcacheds"];

/// Whether a connection's protocol (or uri scheme) asks for TLS.
pub(crate) fn is_tls_protocol(protocol: &str) -> bool {
    TLS_PROTOCOLS
        .iter()
        .any(|p| protocol.trim().eq_ignore_ascii_case(p))
}

/// The TLS settings, read straight from the configuration (the one place that reads them):
/// on when a configured connection says so (`connection.protocol`,
/// `connections.<name>.protocol`, or the scheme of a `uri`), with `credential.ssl_ca_file`,
/// `credential.ssl_crt_file`, `credential.ssl_key_file` and `options.tls_server_name`.
/// Connections that disagree, or TLS files without TLS, are errors: a lock must never fall
/// back to plaintext silently.
fn tls_from_config(config: &ConfigParams) -> Result<Option<TlsConfig>> {
    let mut tls_keys = Vec::new();
    let mut plain_keys = Vec::new();
    for key in config.keys() {
        let Some(value) = config.get(key) else {
            continue;
        };
        let in_connection = key == "connection"
            || key.starts_with("connection.")
            || key.starts_with("connections.");
        let (leaf, protocol) = match key.rsplit_once('.').map_or(key, |(_, leaf)| leaf) {
            "protocol" if in_connection => ("protocol", Some(value)),
            "uri" if in_connection || key == "uri" => (
                "uri",
                value.trim().split_once("://").map(|(scheme, _)| scheme),
            ),
            _ => continue,
        };
        match protocol {
            Some(p) if is_tls_protocol(p) => tls_keys.push(key.to_string()),
            // A uri without a scheme takes the connection's protocol: it does not vote.
            None if leaf == "uri" => {}
            _ => plain_keys.push(key.to_string()),
        }
    }
    let text = |key: &str| {
        config
            .get(key)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let file = |key: &str| text(key).map(PathBuf::from);
    let tls = TlsConfig {
        ca_file: file("credential.ssl_ca_file"),
        crt_file: file("credential.ssl_crt_file"),
        key_file: file("credential.ssl_key_file"),
        server_name: text("options.tls_server_name"),
    };
    if tls_keys.is_empty() {
        if tls != TlsConfig::default() {
            return Err(Error::config(
                "TLS settings (credential.ssl_* or options.tls_server_name) are given but no \
                 connection uses TLS: set connection.protocol=tls",
            ));
        }
        return Ok(None);
    }
    if let Some(plain) = plain_keys.first() {
        return Err(Error::config(format!(
            "'{}' asks for TLS but '{plain}' does not: every server of one lock uses TLS or none",
            tls_keys[0]
        ))
        .with_detail("key", plain.as_str()));
    }
    Ok(Some(tls))
}

/// A setting chosen by name: its names (case-insensitive) and how an error lists them.
trait Named: Copy + 'static {
    const NAMES: &'static [(&'static str, Self)];
    const EXPECTED: &'static str;
}

impl Named for KeyDistribution {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("ketama", KeyDistribution::Ketama),
        ("consistent", KeyDistribution::Ketama),
        ("modula", KeyDistribution::Modula),
        ("crc32", KeyDistribution::Modula),
    ];
    const EXPECTED: &'static str = "ketama or modula";
}

impl Named for ProtocolMode {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("auto", ProtocolMode::Auto),
        ("meta", ProtocolMode::Meta),
        ("classic", ProtocolMode::Classic),
    ];
    const EXPECTED: &'static str = "auto, meta or classic";
}

impl Named for LockMode {
    const NAMES: &'static [(&'static str, Self)] =
        &[("sharded", LockMode::Sharded), ("quorum", LockMode::Quorum)];
    const EXPECTED: &'static str = "sharded or quorum";
}

impl Named for TelemetryKey {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("plain", TelemetryKey::Plain),
        ("hash", TelemetryKey::Hash),
        ("none", TelemetryKey::Omit),
    ];
    const EXPECTED: &'static str = "plain, hash or none";
}

/// The value named by `key`, `default` when absent; any other value is an error naming the
/// key, the value and the names allowed.
fn choice<T: Named>(config: &ConfigParams, key: &str, default: T) -> Result<T> {
    let Some(value) = config.get(key).map(str::trim) else {
        return Ok(default);
    };
    T::NAMES
        .iter()
        .find(|(name, _)| value.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
        .ok_or_else(|| Error::bad_config_value(key, value, T::EXPECTED))
}
