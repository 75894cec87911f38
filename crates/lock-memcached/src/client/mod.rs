//! The workspace's own memcached client, in layers; every import points down this list.
//!
//! - [`codec`]: requests to bytes and bytes to replies, tested without a server;
//! - [`errors`], [`identity`], [`options`], [`peer`], [`tls`], [`stream`], [`tcp`]: what both
//!   transports share (the errors, which boot of a server a connection talks to, the
//!   settings, TLS, the byte stream plain or TLS, opening one);
//! - [`auth`]: memcached's ASCII authentication on a new connection, before anything else;
//! - [`late`]: where a reply goes when its caller stopped waiting;
//! - [`transport`]: the seam between the policy and the wire, implemented by
//!   - [`meta`]: pipelined meta commands, one task per socket, cancellation-safe;
//!   - [`classic`]: the classic text protocol through memcache-async, for old servers;
//! - [`clock`]: what is known of a server's clock, for absolute expiries;
//! - [`health`]: a server's failures and what its probes observed (its clock included);
//! - [`server`]: the one server policy (validation, deadline, retries, identity check,
//!   health, `TIMEOUT` vs `OUTCOME_UNKNOWN`, idle reaping) over a transport;
//! - [`telemetry`]: a server's request-latency histograms, registered once;
//! - [`endpoint`]: a server in either protocol behind one method set;
//! - [`selector`]: which server holds a key (ketama or CRC32 modulo);
//! - [`cluster`]: the servers plus the selector, opened together.

mod auth;
mod classic;
mod clock;
mod cluster;
mod codec;
mod endpoint;
mod errors;
mod health;
mod identity;
mod late;
mod meta;
mod options;
mod peer;
mod selector;
mod server;
mod stream;
mod tcp;
mod telemetry;
#[cfg(test)]
mod test_support;
mod tls;
mod transport;

pub(crate) use auth::Credentials;
pub(crate) use clock::Offset;
pub(crate) use cluster::Cluster;
#[cfg(test)]
pub(crate) use codec::MetaFlags;
pub(crate) use codec::{
    AcquireReplies, AcquireRequest, EVERY_SHAPE, Reply, Request, SetMode, WireKey, clock_reading,
    parse,
};
pub(crate) use endpoint::Endpoint;
pub(crate) use identity::ServerIdentity;
pub(crate) use late::{Late, LateReceiver, late_channel};
pub(crate) use options::ClientOptions;
pub use options::ProtocolMode;
pub use selector::KeyDistribution;
pub(crate) use server::{Call, Executed};
pub use tls::TlsConfig;
pub(crate) use tls::TlsSettings;
