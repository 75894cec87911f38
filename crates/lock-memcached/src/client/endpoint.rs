//! One server as the lock layer sees it, whichever transport carries its requests: the same
//! policy ([`Server`]) over the meta or the classic transport, chosen per server at open.

use commons::{Context, Error};

use super::classic::ClassicTransport;
use super::codec::Request;
use super::health::ServerHealth;
use super::identity::ServerIdentity;
use super::meta::MetaTransport;
use super::server::{Call, Executed, Server};

/// A memcached server in either protocol.
#[derive(Debug)]
pub(crate) enum Endpoint {
    /// Meta commands, pipelined (memcached >= 1.6.13).
    Meta(Server<MetaTransport>),
    /// Classic text commands through memcache-async, one request per connection at a time.
    Classic(Server<ClassicTransport>),
}

// An enum rather than `dyn`: the hot path stays free of a boxed future per request.
macro_rules! forward {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Endpoint::Meta($s) => $e,
            Endpoint::Classic($s) => $e,
        }
    };
}

impl Endpoint {
    /// `"meta"` or `"classic"`.
    pub(crate) fn protocol(&self) -> &'static str {
        forward!(self, s => s.protocol())
    }

    /// "host:port".
    pub(crate) fn address(&self) -> &str {
        forward!(self, s => s.address())
    }

    /// The socket address every connection goes to.
    pub(crate) fn connects_to(&self) -> std::net::SocketAddr {
        forward!(self, s => s.connects_to())
    }

    /// Health and what the probes observed (identity, version, evictions).
    pub(crate) fn health(&self) -> &ServerHealth {
        forward!(self, s => s.health())
    }

    /// Live connections.
    pub(crate) fn live_connections(&self) -> usize {
        forward!(self, s => s.live_connections())
    }

    /// Closes the connections (re-created on demand).
    pub(crate) fn close(&self) {
        forward!(self, s => s.close())
    }

    /// Opens (or reuses) one connection and probes it.
    pub(crate) async fn check(&self, ctx: &Context) -> Result<ServerIdentity, Error> {
        forward!(self, s => s.check(ctx).await)
    }

    /// Runs `req`; see [`Server::execute`].
    pub(crate) async fn execute(
        &self,
        ctx: &Context,
        req: Request,
        idempotent: bool,
        expect_identity: Option<ServerIdentity>,
    ) -> Result<Executed, Error> {
        forward!(self, s => s.execute(ctx, req, idempotent, expect_identity).await)
    }

    /// Runs `req` as `call` says; see [`Server::call`].
    pub(crate) async fn call(
        &self,
        ctx: &Context,
        req: Request,
        call: &Call,
    ) -> Result<Executed, Error> {
        forward!(self, s => s.call(ctx, req, call).await)
    }
}
