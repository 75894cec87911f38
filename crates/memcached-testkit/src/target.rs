//! A server for fixture tests: an external one named by the environment, or a spawned one.

use crate::{MemcachedServer, TestkitError};

/// Environment variable naming an external server's host.
pub const HOST_VAR: &str = "MEMCACHED_SERVICE_HOST";
/// Environment variable naming an external server's port (default 11211).
pub const PORT_VAR: &str = "MEMCACHED_SERVICE_PORT";
const DEFAULT_PORT: u16 = 11211;

/// Where fixture tests find memcached: `MEMCACHED_SERVICE_HOST` / `MEMCACHED_SERVICE_PORT`
/// when set (an external server), else a server spawned for the test.
///
/// ```
/// use memcached_testkit::ServerTarget;
///
/// let target = ServerTarget::from_env_or_spawn()?;
/// println!("testing against {}", target.address());
/// # Ok::<(), memcached_testkit::TestkitError>(())
/// ```
#[derive(Debug)]
pub enum ServerTarget {
    /// A server someone else runs; the testkit cannot stop or pause it.
    External {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A server spawned for this test (killed when the target is dropped).
    Spawned(MemcachedServer),
}

impl ServerTarget {
    /// Reads `MEMCACHED_SERVICE_HOST` / `MEMCACHED_SERVICE_PORT`; spawns a server when the host
    /// is unset or empty. A port that is not a number in 1..=65535 is an error.
    pub fn from_env_or_spawn() -> Result<ServerTarget, TestkitError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env_or_spawn`](Self::from_env_or_spawn) with the variables read through
    /// `lookup` (handy in tests: setting the process environment is `unsafe` in edition 2024).
    ///
    /// ```
    /// use memcached_testkit::ServerTarget;
    ///
    /// let target = ServerTarget::from_lookup(|name| match name {
    ///     "MEMCACHED_SERVICE_HOST" => Some("cache.example".to_string()),
    ///     "MEMCACHED_SERVICE_PORT" => Some("11311".to_string()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(target.address(), "cache.example:11311");
    /// # Ok::<(), memcached_testkit::TestkitError>(())
    /// ```
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ServerTarget, TestkitError> {
        let host = lookup(HOST_VAR)
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty());
        let Some(host) = host else {
            return MemcachedServer::start().map(ServerTarget::Spawned);
        };
        let port = match lookup(PORT_VAR).map(|p| p.trim().to_string()) {
            None => DEFAULT_PORT,
            Some(p) if p.is_empty() => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => {
                    return Err(TestkitError::BadEnvironment(format!(
                        "{PORT_VAR}={p:?} is not a port number (1..=65535)"
                    )));
                }
            },
        };
        Ok(ServerTarget::External { host, port })
    }

    /// `host:port` (an IPv6 host is bracketed).
    pub fn address(&self) -> String {
        commons::host_port(&self.host(), self.port())
    }

    /// The host.
    pub fn host(&self) -> String {
        match self {
            ServerTarget::External { host, .. } => host.clone(),
            ServerTarget::Spawned(server) => server.host().to_string(),
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            ServerTarget::External { port, .. } => *port,
            ServerTarget::Spawned(server) => server.port(),
        }
    }
}
