//! The seam between the server policy (`server.rs`) and the two ways of
//! talking to memcached: the pipelined meta transport and the classic transport on
//! memcache-async. A transport owns its connections; the policy (validation, retries,
//! identity checks, health, idle reaping, error mapping) is written once above it.

use std::sync::Arc;

use commons::Error;
use tokio::time::Instant;

use super::codec::{Reply, Request};
use super::identity::{Probe, ServerIdentity};
use super::late::LateSender;
use super::options::ClientOptions;
use super::tcp::Peer;

/// A connection checked out for one request.
#[derive(Debug)]
pub(crate) struct Checkout<C> {
    pub(crate) conn: C,
    /// The boot of the server this connection talks to (probed when it was made).
    pub(crate) identity: ServerIdentity,
    /// The probe, when the connection was made for this checkout.
    pub(crate) fresh: Option<Probe>,
}

/// How one exchange failed.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// The request failed; the transport has already dropped a connection it no longer
    /// trusts.
    Failed(Error),
    /// The deadline passed first; `sent` says whether the request's bytes had left (then
    /// its outcome is unknown). The connection has been dropped.
    TimedOut { sent: bool },
}

/// One way of talking to one memcached server.
pub(crate) trait Transport: Send + Sync + Sized + 'static {
    /// A connection checked out for one request.
    type Conn: Send;

    /// `"meta"` or `"classic"`.
    const PROTOCOL: &'static str;

    /// The transport for `peer`. Connects lazily.
    fn new(peer: Peer, options: ClientOptions) -> Self;

    /// A connection for `req` (`None`: any connection, to probe the server): a pooled one,
    /// or a new, probed one. Bounded by `deadline`: past it, `TIMEOUT` ("waiting for a
    /// connection", nothing sent). `quiet` (background work): a new connection is tried even
    /// while `options.reconnect` holds others back, and its failure holds nobody back.
    async fn checkout(
        &self,
        req: Option<&Request>,
        deadline: Instant,
        quiet: bool,
    ) -> Result<Checkout<Self::Conn>, Error>;

    /// Returns a connection that was checked out and not used.
    fn give_back(&self, conn: Self::Conn);

    /// Sends `req` on `conn` and waits for its reply until `deadline`; the reply and when it
    /// arrived (read from the socket). Error replies (`SERVER_ERROR` and the like) are
    /// returned as replies: the policy classifies them.
    ///
    /// `late` (attached to this connection's identity): when the caller stops waiting after
    /// the request left (the deadline passed, or the future was dropped), its reply goes
    /// there once it arrives, or, where no reply can be read any more, the error that says
    /// its outcome is unknown.
    async fn exchange(
        &self,
        conn: Self::Conn,
        req: &Arc<Request>,
        deadline: Instant,
        late: Option<&LateSender>,
    ) -> Result<(Reply, Instant), ExchangeError>;

    /// The command(s) `req` becomes on the wire, for messages.
    fn command_name(req: &Request) -> &'static str;

    /// The transport's connections.
    fn pool(&self) -> &impl ConnectionPool;
}

/// What the policy asks of a transport's connections as a whole.
pub(crate) trait ConnectionPool {
    /// Open connections.
    fn live_count(&self) -> usize;

    /// Closes connections unused for longer than `options.idle`.
    fn reap_idle(&self, now: Instant);

    /// Closes every idle connection; those in use close when their request ends. New ones
    /// are made on demand.
    fn close_all(&self);
}
