//! The workspace's own memcached meta-protocol client.
//!
//! - [`codec`]: requests to bytes and bytes to replies, tested without a server;
//! - [`connection`]: one task per socket, pipelined, cancellation-safe;
//! - [`pool`]: the connections to one server, reconnect and idle policy, [`ClientOptions`];
//! - [`server`]: one endpoint: probing (version, identity), health, `execute`;
//! - [`selector`]: which server holds a key (ketama or CRC32 modulo);
//! - [`classic`]: one endpoint in the classic text protocol (through memcache-async), for
//!   servers without reliable meta commands;
//! - [`endpoint`]: either kind of endpoint behind one method set;
//! - [`cluster`]: the servers plus the selector.

// The lock layer uses these re-exports; some are only used by tests.
#![allow(unused_imports)]

mod classic;
mod cluster;
mod codec;
mod connection;
mod endpoint;
mod health;
mod pool;
mod selector;
mod server;
#[cfg(test)]
mod test_support;

pub(crate) use classic::{ClassicServer, PAST_EXPIRY};
pub(crate) use cluster::Cluster;
pub(crate) use codec::{
    MetaFlags, ProtocolError, Reply, ReplyShape, Request, SetMode, WireKey, parse, parse_with_limit,
};
pub(crate) use connection::{Connection, PendingReply};
pub(crate) use endpoint::Endpoint;
pub(crate) use pool::ClientOptions;
pub(crate) use selector::{Distribution, ServerSelector};
pub(crate) use server::{Executed, MIN_VERSION, Server, ServerIdentity, VALUE_TOO_LARGE};
