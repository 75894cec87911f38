//! Probing a new meta connection: `version` and `stats`, pipelined.

use commons::{Error, ErrorKind, codes};
use tokio::time::{Instant, timeout_at};

use super::connection::Connection;
use crate::client::auth;
use crate::client::codec::{Reply, Request, SetMode, WireKey};
use crate::client::errors::timed_out;
use crate::client::identity::{BOOT_MARKER_KEY, Probe, new_boot_marker, supports_meta};

/// Sends `version`, `stats` and the boot-marker exchange (add a fresh marker, read the one
/// in force) on a new connection, pipelined, reads the identity and refuses a server too old
/// for the meta commands the lock relies on. Bounded by `deadline`.
pub(crate) async fn probe(conn: &Connection, deadline: Instant) -> Result<Probe, Error> {
    let address = conn.address();
    let marker_key = WireKey::new_unchecked(BOOT_MARKER_KEY.to_vec(), false);
    let mut version = conn.send(Request::Version)?;
    let mut stats = conn.send(Request::Stats)?;
    let mut offer = conn.send(Request::Set {
        key: marker_key.clone(),
        data: new_boot_marker().into(),
        mode: SetMode::Add,
        // T0: never expires; only a restart, a flush or an eviction removes it.
        ttl_secs: 0,
    })?;
    let mut marker = conn.send(Request::Get { key: marker_key })?;
    let left = deadline.saturating_duration_since(Instant::now());
    let not_in_time = || timed_out(address, left, "answering version/stats");
    let version = timeout_at(deadline, version.wait())
        .await
        .map_err(|_| not_in_time())?;
    // A server started with -Y answers everything with CLIENT_ERROR until authenticated.
    let version = match version {
        Ok(Reply::ClientError(message)) if auth::is_unauthenticated(&message) => {
            return Err(auth::required(address));
        }
        other => other?,
    };
    let stats = timeout_at(deadline, stats.wait())
        .await
        .map_err(|_| not_in_time())??;
    // Decided before the marker's replies are read: a server without meta commands answers
    // them with errors that would hide the real reason.
    if let Reply::Version(v) = &version
        && !supports_meta(v)
    {
        return Err(too_old(address, v));
    }
    // Stored, or already there (`NS`); under `-M` with no memory left the add fails and the
    // read below tells whether a marker exists.
    let _ = timeout_at(deadline, offer.wait())
        .await
        .map_err(|_| not_in_time())?;
    let marker = timeout_at(deadline, marker.wait())
        .await
        .map_err(|_| not_in_time())??;
    let probe = Probe::from_replies(address, version, stats, marker)?;
    Ok(probe)
}

fn too_old(address: &str, version: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        codes::UNSUPPORTED,
        format!(
            "memcached at {address} is version {version}; the meta-protocol lock needs memcached 1.6.13 or newer"
        ),
    )
    .with_detail("server", address)
    .with_detail("version", version)
}
