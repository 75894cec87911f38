//! Which server, and which boot of it, a connection talks to: learned by probing every new
//! connection with `version` and `stats`. Shared by both transports.

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

/// Which boot of a server a connection talks to. CAS values restart from 1 when memcached
/// restarts, so a lease taken from another boot must never be released by CAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ServerIdentity {
    /// The server's process id (`stats pid`).
    pub(crate) pid: u32,
    /// The server's start time in Unix seconds (`stats time - uptime`).
    pub(crate) boot_epoch: i64,
}

/// What probing a new connection learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe {
    pub(crate) version: String,
    pub(crate) identity: ServerIdentity,
    pub(crate) evictions: Option<u64>,
    /// Every `stats` pair, for `server_status`.
    pub(crate) stats: Vec<(String, String)>,
}

impl Probe {
    /// Reads the replies to `version` and `stats` sent on a new connection to `address`.
    pub(crate) fn from_replies(
        address: &str,
        version: Reply,
        stats: Reply,
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
        Ok(Probe {
            version,
            identity: ServerIdentity { pid, boot_epoch },
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
