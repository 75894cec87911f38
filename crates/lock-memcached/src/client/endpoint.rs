//! One server as the lock layer sees it, whichever transport carries its requests: the same
//! policy ([`Server`]) over the meta or the classic transport, chosen per server at open.

use std::sync::Arc;

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

// An enum rather than `dyn`: the hot path stays free of a boxed future per request. Each
// method is the server's own (see `Server`), written once here as one line per method.
macro_rules! forward {
    ($($(#[doc = $doc:literal])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        $(
            $(#[doc = $doc])*
            pub(crate) fn $name(&self $(, $arg: $ty)*) -> $ret {
                match self {
                    Endpoint::Meta(s) => s.$name($($arg),*),
                    Endpoint::Classic(s) => s.$name($($arg),*),
                }
            }
        )*
    };
    ($($(#[doc = $doc:literal])* async fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        $(
            $(#[doc = $doc])*
            pub(crate) async fn $name(&self $(, $arg: $ty)*) -> $ret {
                match self {
                    Endpoint::Meta(s) => s.$name($($arg),*).await,
                    Endpoint::Classic(s) => s.$name($($arg),*).await,
                }
            }
        )*
    };
}

impl Endpoint {
    forward! {
        /// `"meta"` or `"classic"`.
        fn protocol(&self) -> &'static str;
        /// "host:port".
        fn address(&self) -> &str;
        /// The socket address every connection goes to.
        fn connects_to(&self) -> std::net::SocketAddr;
        /// Health and what the probes observed (identity, version, evictions).
        fn health(&self) -> &ServerHealth;
        /// Live connections.
        fn live_connections(&self) -> usize;
        /// Closes the connections (re-created on demand).
        fn close(&self) -> ();
    }

    forward! {
        /// Opens (or reuses) one connection and probes it.
        async fn check(&self, ctx: &Context) -> Result<ServerIdentity, Error>;
    }

    /// Runs `req` as `call` says; see [`Server::call`]. The request is put behind its `Arc`
    /// before the future is made: an `async fn` would keep the request itself in its state as
    /// well, and so would every future awaiting it.
    pub(crate) fn call<'a>(
        &'a self,
        ctx: &'a Context,
        req: Request,
        call: &'a Call,
    ) -> impl Future<Output = Result<Executed, Error>> + 'a {
        self.dispatch(ctx, Arc::new(req), call)
    }

    /// The classic transport's future is boxed: it is much larger than the meta one's, and
    /// an enum's future is as large as its largest arm (every request of the meta path would
    /// move it around).
    async fn dispatch(
        &self,
        ctx: &Context,
        req: Arc<Request>,
        call: &Call,
    ) -> Result<Executed, Error> {
        match self {
            Endpoint::Meta(s) => s.call(ctx, req, call).await,
            Endpoint::Classic(s) => Box::pin(s.call(ctx, req, call)).await,
        }
    }
}
