//! Probing a new meta connection: `version` and `stats`, pipelined.

use commons::{Error, ErrorKind, codes};
use tokio::time::{Instant, timeout_at};

use super::connection::Connection;
use crate::client::codec::Request;
use crate::client::errors::timed_out;
use crate::client::identity::{Probe, supports_meta};

/// Sends `version` and `stats` on a new connection, reads the identity and refuses a server
/// too old for the meta commands the lock relies on. Bounded by `deadline`.
pub(crate) async fn probe(conn: &Connection, deadline: Instant) -> Result<Probe, Error> {
    let address = conn.address();
    let mut version = conn.send(Request::Version)?;
    let mut stats = conn.send(Request::Stats)?;
    let left = deadline.saturating_duration_since(Instant::now());
    let not_in_time = || timed_out(address, left, "answering version/stats");
    let version = timeout_at(deadline, version.wait())
        .await
        .map_err(|_| not_in_time())??;
    let stats = timeout_at(deadline, stats.wait())
        .await
        .map_err(|_| not_in_time())??;
    let probe = Probe::from_replies(address, version, stats)?;
    if !supports_meta(&probe.version) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            codes::UNSUPPORTED,
            format!(
                "memcached at {address} is version {}; the meta-protocol lock needs memcached 1.6.13 or newer",
                probe.version
            ),
        )
        .with_detail("server", address)
        .with_detail("version", &probe.version));
    }
    Ok(probe)
}
