//! `ConnectionParams`: one server endpoint's settings.

use std::fmt;

use crate::ConfigParams;

/// The parameters of one connection: `host` (or `ip`), `port`, `uri`, `discovery_key`,
/// `protocol`, plus any other keys (options carried by a uri query, credentials).
///
/// ```
/// use commons::{ConfigParams, ConnectionParams};
///
/// let c = ConnectionParams::from_config(ConfigParams::from_string("ip=10.0.0.1;port=11212"));
/// assert_eq!(c.host(), Some("10.0.0.1"));
/// assert_eq!(c.port(), Some(11212));
/// assert_eq!(c.port_or(11211), 11212);
/// assert!(!c.uses_discovery());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectionParams {
    values: ConfigParams,
}

impl ConnectionParams {
    /// Empty parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps a configuration section.
    pub fn from_config(values: ConfigParams) -> Self {
        ConnectionParams { values }
    }

    /// Host and port.
    pub fn from_host_port(host: &str, port: u16) -> Self {
        let mut c = ConnectionParams::new();
        c.set_host(host);
        c.set_port(port);
        c
    }

    /// The host, falling back to `ip`.
    pub fn host(&self) -> Option<&str> {
        self.values
            .get("host")
            .or_else(|| self.values.get("ip"))
            .filter(|h| !h.trim().is_empty())
    }

    /// Sets the host.
    pub fn set_host(&mut self, host: &str) {
        self.values.set("host", host);
    }

    /// The raw port text (for error messages on bad ports).
    pub fn port_raw(&self) -> Option<&str> {
        self.values.get("port")
    }

    /// The port, `None` when missing or not a valid port number.
    pub fn port(&self) -> Option<u16> {
        self.values.get("port").and_then(|p| p.trim().parse().ok())
    }

    /// The port or `default` when missing.
    pub fn port_or(&self, default: u16) -> u16 {
        self.port().unwrap_or(default)
    }

    /// Sets the port.
    pub fn set_port(&mut self, port: u16) {
        self.values.set("port", port.to_string());
    }

    /// The connection uri, if given.
    pub fn uri(&self) -> Option<&str> {
        self.values.get("uri")
    }

    /// The protocol (`memcached`, `tcp`, ...), if given.
    pub fn protocol(&self) -> Option<&str> {
        self.values.get("protocol")
    }

    /// The discovery key, if given.
    pub fn discovery_key(&self) -> Option<&str> {
        self.values
            .get("discovery_key")
            .filter(|k| !k.trim().is_empty())
    }

    /// Whether the connection must be resolved through discovery.
    pub fn uses_discovery(&self) -> bool {
        self.discovery_key().is_some()
    }

    /// Any key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key)
    }

    /// Sets any key.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.values.set(key, value);
    }

    /// The underlying map.
    pub fn as_config(&self) -> &ConfigParams {
        &self.values
    }

    /// `self` with every key of `other` laid over it (other wins).
    pub fn merged_with(&self, other: &ConnectionParams) -> ConnectionParams {
        ConnectionParams {
            values: self.values.override_with(&other.values),
        }
    }
}

impl fmt::Debug for ConnectionParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ConfigParams' Debug masks secrets.
        f.debug_tuple("ConnectionParams")
            .field(&self.values)
            .finish()
    }
}

/// `host:port` as a socket address string; an IPv6 host is put in brackets
/// (`[::1]:11211`), one already in brackets is left as it is.
///
/// ```
/// assert_eq!(commons::host_port("cache.local", 11211), "cache.local:11211");
/// assert_eq!(commons::host_port("::1", 11211), "[::1]:11211");
/// assert_eq!(commons::host_port("[::1]", 11211), "[::1]:11211");
/// ```
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
