//! The client's settings. They have no defaults of their own: the lock's typed configuration
//! (`MemcachedLockConfig`) is the one place defaults live, and it builds these.

use std::sync::Arc;
use std::time::Duration;

use super::auth::Credentials;
use super::selector::KeyDistribution;
use super::tls::TlsSettings;

/// Which memcached protocol the lock speaks (`options.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolMode {
    /// Decided per server when it is probed at open: meta commands when its `version` is
    /// 1.6.13 or newer, the classic text protocol otherwise.
    Auto,
    /// Meta commands; servers older than 1.6.13 are refused at open.
    Meta,
    /// The classic text protocol for every server (`add` + `gets` to acquire, `cas` to
    /// release and extend): two round trips per acquire and extend, one request in flight
    /// per connection.
    Classic,
}

/// The client's tuning knobs (the lock's `options.*`).
#[derive(Debug, Clone)]
pub(crate) struct ClientOptions {
    /// Connections per server.
    pub(crate) pool_size: usize,
    /// Bounds every operation: connect, send and reply.
    pub(crate) timeout: Duration,
    /// Bounds one connect: TCP, and the TLS handshake when TLS is on.
    pub(crate) connect_timeout: Duration,
    /// After a failed connect, a slot is not tried again before this much time passed since
    /// that attempt. A connection that worked and then broke is replaced at once.
    pub(crate) reconnect: Duration,
    /// Retries of an operation that is safe to repeat.
    pub(crate) retries: u32,
    /// Consecutive failures that mark a server down.
    pub(crate) failures: u32,
    /// How long a server stays down before it is tried again.
    pub(crate) retry: Duration,
    /// Connections unused for this long are closed; zero disables.
    pub(crate) idle: Duration,
    /// The largest value stored or accepted in a reply.
    pub(crate) max_value: usize,
    /// How keys are spread over servers.
    pub(crate) distribution: KeyDistribution,
    /// memcached ASCII authentication (`-Y`) for every new connection, if configured.
    pub(crate) auth: Option<Arc<Credentials>>,
    /// TLS for every connection (`connection.protocol=tls`), built once at configure.
    pub(crate) tls: Option<Arc<TlsSettings>>,
}
