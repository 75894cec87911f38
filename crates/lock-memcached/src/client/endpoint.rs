//! One server as the lock layer sees it: spoken to in the meta protocol ([`Server`]) or the
//! classic text protocol ([`ClassicServer`]), with the same method set and the same (meta)
//! request and reply vocabulary.

use commons::{Context, Error};

use super::classic::ClassicServer;
use super::codec::Request;
use super::health::ServerHealth;
use super::server::{Executed, Server, ServerIdentity};

/// A memcached endpoint in either protocol.
#[derive(Debug)]
pub(crate) enum Endpoint {
    /// Meta commands, pipelined (memcached >= 1.6.13).
    Meta(Server),
    /// Classic text commands through memcache-async, one request per connection at a time.
    Classic(ClassicServer),
}

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
        match self {
            Endpoint::Meta(_) => "meta",
            Endpoint::Classic(_) => "classic",
        }
    }

    /// "host:port".
    pub(crate) fn address(&self) -> &str {
        forward!(self, s => s.address())
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

    /// Runs `req` (see [`Server::execute`] for the contract, which both protocols keep).
    pub(crate) async fn execute(
        &self,
        ctx: &Context,
        req: Request,
        idempotent: bool,
        expect_identity: Option<ServerIdentity>,
    ) -> Result<Executed, Error> {
        forward!(self, s => s.execute(ctx, req, idempotent, expect_identity).await)
    }
}
