//! The client's errors, built in one place so both transports report a situation with the
//! same kind, code and wording.

use std::time::Duration;

use commons::{Error, ErrorKind, codes};

use super::codec::Reply;
use crate::codes::VALUE_TOO_LARGE;

/// `CONNECTION_FAILED`: the server could not be reached; nothing was sent.
pub(crate) fn connection_error(address: &str, message: String) -> Error {
    Error::new(ErrorKind::Connection, codes::CONNECTION_FAILED, message)
        .with_detail("server", address)
}

/// `CONNECTION_FAILED` without trying: the last connect failed less than
/// `options.reconnect` ago.
pub(crate) fn reconnect_held_back(address: &str, wait: Duration) -> Error {
    connection_error(
        address,
        format!(
            "no connection to memcached at {address}: reconnecting is held back for another {wait:?} after a failure (options.reconnect)"
        ),
    )
}

/// `CONNECTION_FAILED` for a request that certainly did not leave.
pub(crate) fn not_sent(address: &str, command: &str, why: &str) -> Error {
    connection_error(
        address,
        format!("{command} to memcached at {address} not sent: {why}"),
    )
}

/// `OUTCOME_UNKNOWN`: the request left but no reply came, so it may or may not have taken
/// effect. Never retried by the client: the caller decides (the lock cleans up).
pub(crate) fn outcome_unknown(address: &str, command: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::OutcomeUnknown,
        codes::OUTCOME_UNKNOWN,
        format!(
            "{command} to memcached at {address} was sent but no reply came ({why}): it may or may not have taken effect"
        ),
    )
    .with_detail("server", address)
    .with_retryable(false)
}

/// `PROTOCOL_ERROR`: the server's bytes made no sense for the request.
pub(crate) fn protocol_error(address: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Protocol,
        codes::PROTOCOL_ERROR,
        format!("memcached at {address}: {what}"),
    )
    .with_detail("server", address)
}

/// The error for a reply that reports a failure (`SERVER_ERROR` for the server's own error
/// lines) or is of no use to the request (`PROTOCOL_ERROR`). Classified by the reply's
/// variant, never by its text.
pub(crate) fn reply_error(address: &str, reply: &Reply, command: &str) -> Error {
    let (code, said) = match reply {
        Reply::ServerError(m) => (codes::SERVER_ERROR, format!("SERVER_ERROR {m}")),
        Reply::ClientError(m) => (codes::SERVER_ERROR, format!("CLIENT_ERROR {m}")),
        Reply::Error => (codes::SERVER_ERROR, "ERROR".to_string()),
        other => (codes::PROTOCOL_ERROR, format!("unexpected reply {other:?}")),
    };
    Error::new(
        ErrorKind::Protocol,
        code,
        format!("memcached at {address} answered {said} to {command}"),
    )
    .with_detail("server", address)
    .with_retryable(false)
}

/// The server's error line that fails `reply`, if any: the reply itself, or for an acquire
/// with its counter the store's reply (an error of the counter alone only costs the fencing
/// token).
pub(crate) fn failure_of(reply: &Reply) -> Option<&Reply> {
    match reply {
        Reply::ServerError(_) | Reply::ClientError(_) | Reply::Error => Some(reply),
        Reply::Acquired(pair) => failure_of(&pair.stored),
        _ => None,
    }
}

/// Whether `reply` is one of the server's error lines.
pub(crate) fn is_error_reply(reply: &Reply) -> bool {
    matches!(
        reply,
        Reply::ServerError(_) | Reply::ClientError(_) | Reply::Error
    )
}

/// `TIMEOUT` before anything was sent.
pub(crate) fn timed_out(address: &str, timeout: Duration, while_: &str) -> Error {
    Error::new(
        ErrorKind::Timeout,
        codes::TIMEOUT,
        format!(
            "memcached at {address} timed out while {while_} (options.timeout {timeout:?}); the request was not sent"
        ),
    )
    .with_detail("server", address)
}

/// `TIMEOUT` of a checkout: no connection to `address` within `options.timeout` (`timeout`);
/// each transport bounds its own checkouts (only their slow paths need a timer).
pub(crate) fn no_connection_in_time(address: &str, timeout: Duration) -> Error {
    timed_out(address, timeout, "waiting for a connection")
}

/// `VALUE_TOO_LARGE`: refused before sending.
pub(crate) fn value_too_large(len: usize, max_value: usize) -> Error {
    Error::bad_request(
        VALUE_TOO_LARGE,
        format!("value of {len} bytes is larger than options.max_value ({max_value} bytes)"),
    )
}

/// `BAD_KEY`: a key that could inject a command or that memcached refuses; never sent.
pub(crate) fn unsafe_key() -> Error {
    Error::bad_request(
        codes::BAD_KEY,
        "key is empty, longer than 250 bytes, or contains whitespace or control characters",
    )
}
