//! The error codes this crate adds to [`commons::codes`].
//!
//! Every error a `MemcachedLock` returns is a [`commons::Error`] whose `code()` is one of
//! these or one of `commons::codes`. The full list a caller can receive, with the kind and
//! whether it is retryable, is in the crate README ("Errors").

/// The instance already holds `options.max_size` locks; the acquire sent nothing.
pub const TOO_MANY_LOCKS: &str = "TOO_MANY_LOCKS";

/// A value larger than `options.max_value` was to be stored; nothing was sent.
pub const VALUE_TOO_LARGE: &str = "VALUE_TOO_LARGE";

/// The server restarted (or is another boot than the one a lease was taken from); the
/// CAS-checked request of that lease was not sent, and the lease is lost.
pub const SERVER_RESTARTED: &str = "SERVER_RESTARTED";

/// Quorum mode: no majority of the servers (outside quarantine) could be reached; the error
/// names each server and what it answered.
pub const NO_QUORUM: &str = "NO_QUORUM";

/// Quorum mode: a majority granted the lock, but by then its validity was used up (the
/// servers answered too slowly for the ttl); what was granted has been released.
pub const VALIDITY_USED_UP: &str = "VALIDITY_USED_UP";

/// The server refused the configured user name or password (`-Y` authentication). Not
/// retryable: the credentials must be fixed.
pub const AUTH_FAILED: &str = "AUTH_FAILED";

/// The server requires authentication (started with `-Y`) and no credentials are configured.
pub const AUTH_REQUIRED: &str = "AUTH_REQUIRED";

/// Credentials are configured but the server does not use authentication (started without
/// `-Y`): refused rather than ignored, since the deployment is not what the configuration
/// says.
pub const AUTH_NOT_REQUIRED: &str = "AUTH_NOT_REQUIRED";

/// TLS (`connection.protocol=tls`) cannot work with these settings: the server's certificate
/// was refused (unknown CA, wrong name, expired), the server refused the client's (or wants
/// one), or the port does not speak TLS. Kind `Config`, not retryable; the message names the
/// server, the reason and the setting to look at.
pub const TLS_FAILED: &str = "TLS_FAILED";
