//! One server as the lock layer sees it: spoken to in the meta protocol ([`Server`]) or the
//! classic text protocol ([`ClassicServer`]), with the same method set and the same (meta)
//! request and reply vocabulary.

use commons::{Context, Error};

use super::classic::ClassicServer;
use super::codec::Request;
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

    /// The identity from the last probe.
    pub(crate) fn identity(&self) -> Option<ServerIdentity> {
        forward!(self, s => s.identity())
    }

    /// The version from the last probe.
    pub(crate) fn version(&self) -> Option<String> {
        forward!(self, s => s.version())
    }

    /// `stats evictions` from the last probe.
    pub(crate) fn evictions(&self) -> Option<u64> {
        forward!(self, s => s.evictions())
    }

    /// How many times a new connection reported a different identity than the last known.
    pub(crate) fn identity_changes(&self) -> u32 {
        forward!(self, s => s.identity_changes())
    }

    /// Whether the server is marked down right now.
    pub(crate) fn is_down(&self) -> bool {
        forward!(self, s => s.is_down())
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
