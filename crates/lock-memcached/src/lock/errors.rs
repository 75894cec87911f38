//! Errors of the lock layer that the client does not raise itself.

use commons::{Context, Error, ErrorKind, codes};

use crate::client::{Endpoint, Reply};

/// A reply the request cannot produce (the client already turned error lines into errors).
pub(super) fn unexpected(ctx: &Context, command: &str, reply: &Reply) -> Error {
    Error::new(
        ErrorKind::Protocol,
        codes::PROTOCOL_ERROR,
        format!("unexpected reply to {command}: {reply:?}"),
    )
    .with_context(ctx)
}

/// A server that stores without handing out CAS values (`-C`): nothing could be released by
/// its owner alone, so the lock refuses it.
pub(super) fn cas_disabled(ctx: &Context, server: &Endpoint) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        codes::UNSUPPORTED,
        format!(
            "memcached at {} returns CAS 0: it runs with -C (CAS disabled), which makes \
             owner-checked release impossible; restart it without -C",
            server.address()
        ),
    )
    .with_detail("server", server.address())
    .with_context(ctx)
}
