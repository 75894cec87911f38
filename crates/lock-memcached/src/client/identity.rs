//! Which server, and which boot of it, a connection talks to: learned by probing every new
//! connection with `version` and `stats`. Shared by both transports.

use std::time::Duration;

use commons::{Error, ErrorKind};

use super::codec::{Reply, parse_version};
use super::errors::{protocol_error, reply_error};
use crate::codes::SERVER_RESTARTED;

/// The oldest memcached whose meta commands the lock can rely on (conditional `md` was
/// broken before 1.6.13).
pub(crate) const MIN_VERSION: (u32, u32, u32) = (1, 6, 13);

/// Whether a server reporting `version` speaks the meta commands the lock needs.
pub(crate) fn supports_meta(version: &str) -> bool {
    parse_version(version).is_some_and(|v| v >= MIN_VERSION)
}

/// The item that tells the boots of a server apart: the first client to reach a boot stores a
/// random value under it (add, never expiring), and every new connection reads it. A
/// restart, a `flush_all`, an eviction of the item, or a proxy now routing to another
/// backend all show up as a different (or missing, then new) value.
pub(crate) const BOOT_MARKER_KEY: &[u8] = b"pip-locks:boot";

/// A fresh marker to offer (`add`) when a connection finds none: 16 random hex digits, then
/// when it was written (Unix milliseconds), so every client can tell how long the server's
/// memory has been what it is (a `flush_all` or an eviction of the marker empties it as a
/// restart does, without resetting `uptime`).
pub(crate) fn new_boot_marker() -> Vec<u8> {
    format!("{:016x}-{}", rand::random::<u64>(), unix_millis()).into_bytes()
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Which boot of a server a connection talks to. CAS values restart from 1 when memcached
/// restarts, so a lease taken from another boot must never be released by CAS.
///
/// Two identities are the same boot when their boot markers are equal. `pid` and
/// `boot_epoch` (from `stats`) are kept for diagnostics only: a pid namespace makes every
/// boot pid 1, two boots can start within one second, and behind a proxy `stats` describes
/// the proxy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerIdentity {
    /// The server's process id (`stats pid`).
    pub(crate) pid: u32,
    /// The server's start time in Unix seconds (`stats time - uptime`).
    pub(crate) boot_epoch: i64,
    /// The boot marker ([`BOOT_MARKER_KEY`]) read when the connection was made.
    pub(crate) boot_marker: u64,
}

impl PartialEq for ServerIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.boot_marker == other.boot_marker
    }
}

impl Eq for ServerIdentity {}

/// What probing a new connection learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe {
    pub(crate) version: String,
    pub(crate) identity: ServerIdentity,
    pub(crate) evictions: Option<u64>,
    /// Every `stats` pair, for `server_status`.
    pub(crate) stats: Vec<(String, String)>,
    /// How long this boot's memory has existed, at the probe: the shorter of `uptime` and the
    /// age of the boot marker (when its writer recorded the time).
    pub(crate) boot_age: Option<Duration>,
}

impl Probe {
    /// Reads the replies to `version`, `stats` and the read of [`BOOT_MARKER_KEY`] sent on a
    /// new connection to `address`.
    pub(crate) fn from_replies(
        address: &str,
        version: Reply,
        stats: Reply,
        marker: Reply,
    ) -> Result<Probe, Error> {
        let version = match version {
            Reply::Version(v) => v,
            other => return Err(reply_error(address, &other, "version")),
        };
        let stats = match stats {
            Reply::Stats(s) => s,
            other => return Err(reply_error(address, &other, "stats")),
        };
        let get = |name: &str| {
            stats
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let number = |name: &str| -> Result<i64, Error> {
            get(name)
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or_else(|| protocol_error(address, &format!("stats has no numeric '{name}'")))
        };
        let pid = u32::try_from(number("pid")?)
            .map_err(|_| protocol_error(address, "stats pid out of range"))?;
        let boot_epoch = number("time")? - number("uptime")?;
        let evictions = get("evictions").and_then(|v| v.parse().ok());
        let (boot_marker, marker_age) = match marker {
            Reply::Va { data, .. } => (marker_number(&data), marker_age(&data)),
            Reply::En => {
                return Err(protocol_error(
                    address,
                    "the boot marker (pip-locks:boot) was stored but cannot be read back",
                ));
            }
            other => return Err(reply_error(address, &other, "mg pip-locks:boot")),
        };
        let uptime = u64::try_from(number("uptime")?)
            .ok()
            .map(Duration::from_secs);
        let boot_age = match (uptime, marker_age) {
            (Some(u), Some(m)) => Some(u.min(m)),
            (u, m) => u.or(m),
        };
        Ok(Probe {
            boot_age,
            version,
            identity: ServerIdentity {
                pid,
                boot_epoch,
                boot_marker,
            },
            evictions,
            stats,
        })
    }
}

/// `SERVER_RESTARTED`: the connection's identity is not the lease's; nothing was sent.
pub(crate) fn restarted(
    address: &str,
    expected: ServerIdentity,
    identity: ServerIdentity,
) -> Error {
    Error::new(
        ErrorKind::InvalidState,
        SERVER_RESTARTED,
        format!(
            "memcached at {address} restarted since the lease was taken (pid {} boot {} -> pid {} boot {}); nothing was sent",
            expected.pid, expected.boot_epoch, identity.pid, identity.boot_epoch
        ),
    )
    .with_detail("server", address)
}

/// How long ago the marker was written, when its writer recorded the time.
fn marker_age(data: &[u8]) -> Option<Duration> {
    let written: u64 = std::str::from_utf8(data)
        .ok()?
        .split_once('-')?
        .1
        .parse()
        .ok()?;
    Some(Duration::from_millis(unix_millis().saturating_sub(written)))
}

/// The marker as a number: the 16 hex digits this crate writes (before the time), or (for a
/// value some other writer left) a digest of its bytes, so any value still identifies one
/// boot.
fn marker_number(data: &[u8]) -> u64 {
    let digits = data.split(|&b| b == b'-').next().unwrap_or(data);
    if digits.len() == 16
        && let Some(n) = std::str::from_utf8(digits)
            .ok()
            .and_then(|t| u64::from_str_radix(t, 16).ok())
    {
        return n;
    }
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h: u64, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
