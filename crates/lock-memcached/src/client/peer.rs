//! A server's name and the one address every connection to it goes to.

use std::net::SocketAddr;
use std::sync::Arc;

/// A server as configured (`host:port`: what messages name, and what key placement hashes)
/// and the one socket address every connection to it uses, resolved once when the cluster
/// opens: a name is never looked up again per connection, so no two connections of one
/// server can reach different machines.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    name: Arc<str>,
    addr: SocketAddr,
}

impl Peer {
    pub(crate) fn new(name: impl Into<Arc<str>>, addr: SocketAddr) -> Peer {
        Peer {
            name: name.into(),
            addr,
        }
    }

    /// `host:port` as configured.
    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Where every connection goes.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}
