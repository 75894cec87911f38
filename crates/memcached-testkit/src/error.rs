//! The testkit's error type.

use std::fmt;

/// What can go wrong while starting, restarting or talking to a test server.
///
/// ```
/// use memcached_testkit::TestkitError;
///
/// let err = TestkitError::NotReady("no answer within 5s".into());
/// assert!(err.to_string().contains("no answer"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// No `memcached` binary was found. The message says where we looked and how to install it.
    #[error("{0}")]
    NotInstalled(String),
    /// The process could not be spawned, or it exited right after spawning
    /// (for example because its port was taken). Carries memcached's stderr when there is any.
    #[error("could not start memcached: {0}")]
    Spawn(String),
    /// The process runs but did not answer `version` (and `stats` with its own pid) in time.
    #[error("memcached did not become ready: {0}")]
    NotReady(String),
    /// An I/O error while talking to the server (for example `stats` on a paused server).
    #[error("memcached I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// `MEMCACHED_SERVICE_HOST` / `MEMCACHED_SERVICE_PORT` are set but unusable.
    #[error("bad environment: {0}")]
    BadEnvironment(String),
}

impl TestkitError {
    pub(crate) fn not_installed(searched: impl fmt::Display) -> Self {
        TestkitError::NotInstalled(format!(
            "memcached not found (searched {searched}): install with `apt-get install memcached` \
             (scripts/test does it), or set MEMCACHED_BIN to the binary's path"
        ))
    }
}
