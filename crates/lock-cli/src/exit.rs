//! The exit codes, one place: the README's table is this file.
//!
//! pip-lock's own codes keep out of the way of the command's: small numbers are the child's
//! usual failures, so pip-lock uses the BSD `sysexits.h` range (69-78) for its own, and the
//! shell conventions for a command that cannot be run (126, 127) or that a signal ended
//! (128 + N). A command may of course exit with any of these itself: scripts that must tell
//! them apart pick a distinctive `--conflict-exit-code` and watch stderr.

use commons::{Error, ErrorKind};

/// The command ran and exited 0 (or inspect / status / force-release succeeded).
pub(crate) const SUCCESS: u8 = 0;
/// The default `--conflict-exit-code`: the lock is busy (like `flock -E`).
pub(crate) const CONFLICT: u8 = 1;
/// A usage error: a bad flag or value, a missing argument, force-release without --yes.
pub(crate) const USAGE: u8 = 2;
/// A memcached server cannot be reached (`EX_UNAVAILABLE`); the message names it. Also
/// `status` when a server is down.
pub(crate) const UNREACHABLE: u8 = 69;
/// Any other error of the lock or a server (`EX_SOFTWARE`): a protocol error, say.
pub(crate) const FAILURE: u8 = 70;
/// The lock was lost while the command ran; the command's process group was stopped
/// (`EX_TEMPFAIL`: running again later may succeed).
pub(crate) const LOCK_LOST: u8 = 75;
/// memcached refused the credentials, or wants credentials that were not given
/// (`EX_NOPERM`).
pub(crate) const AUTH: u8 = 77;
/// The configuration is wrong: an unreadable or invalid file, no lock component in it, a
/// bad option, a `--metrics-addr` that cannot be listened on (`EX_CONFIG`).
pub(crate) const CONFIG: u8 = 78;
/// The command was found but could not be executed (as in the shell).
pub(crate) const CANNOT_EXECUTE: u8 = 126;
/// The command was not found (as in the shell).
pub(crate) const NOT_FOUND: u8 = 127;
/// Added to a signal's number: the command, or pip-lock while waiting, ended by it.
pub(crate) const SIGNAL_BASE: u8 = 128;

/// Why a subcommand ends without doing its work: the exit code and the one line that says
/// why (printed as `pip-lock: <message>`; a usage error also prints the usage).
#[derive(Debug)]
pub(crate) struct Failure {
    /// The exit code.
    pub(crate) code: u8,
    /// The reason, one line.
    pub(crate) message: String,
}

impl Failure {
    /// A usage error (exit 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: USAGE,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            code: for_error(&error),
            message: describe(&error),
        }
    }
}

/// The exit code for a library error (a busy lock is handled by the caller, which knows
/// the conflict code).
pub(crate) fn for_error(error: &Error) -> u8 {
    match error.kind() {
        ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::OutcomeUnknown => UNREACHABLE,
        ErrorKind::Config | ErrorKind::Reference | ErrorKind::Creation => CONFIG,
        ErrorKind::BadRequest => USAGE,
        ErrorKind::Unauthorized => AUTH,
        _ => FAILURE,
    }
}

/// `128 + signal`, saturating (a real signal number always fits).
pub(crate) fn for_signal(signal: i32) -> u8 {
    u8::try_from(signal)
        .ok()
        .and_then(|s| SIGNAL_BASE.checked_add(s))
        .unwrap_or(u8::MAX)
}

/// The one line that explains an error to an operator, naming the server where the error
/// names one.
pub(crate) fn describe(error: &Error) -> String {
    match (for_error(error), error.detail("server")) {
        (UNREACHABLE, Some(server)) => format!(
            "memcached server {server} cannot be reached: {}",
            error.message()
        ),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commons::codes;

    #[test]
    fn errors_map_to_their_documented_codes() {
        let down = Error::new(ErrorKind::Connection, codes::CONNECTION_FAILED, "refused")
            .with_detail("server", "10.0.0.1:11211");
        assert_eq!(for_error(&down), UNREACHABLE);
        assert!(describe(&down).contains("10.0.0.1:11211"));
        assert_eq!(for_error(&Error::config("bad")), CONFIG);
        assert_eq!(
            for_error(&Error::bad_request(codes::BAD_KEY, "empty key")),
            USAGE
        );
        assert_eq!(for_error(&Error::internal("bug")), FAILURE);
        assert_eq!(for_signal(15), 143);
        assert_eq!(for_signal(9), 137);
    }
}
