//! The one error type of the workspace.
//!
//! Modelled on Pip.Services' `ApplicationError`: a [`ErrorKind`] that callers
//! branch on, a stable string code, a message, key/value details, the trace id of
//! the operation that failed and the chain of underlying causes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::Context;

/// A `Result` whose error is the workspace [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Stable error codes. The first six keep the names the Pip.Services originals use.
pub mod codes {
    /// Nothing to connect to: no host, uri or discovery key configured.
    pub const NO_CONNECTION: &str = "NO_CONNECTION";
    /// The component was called before `open` or after `close`.
    pub const NOT_OPENED: &str = "NOT_OPENED";
    /// `acquire_lock` did not get the lock within its timeout.
    pub const LOCK_TIMEOUT: &str = "LOCK_TIMEOUT";
    /// A required reference is missing.
    pub const REF_ERROR: &str = "REF_ERROR";
    /// A descriptor string is not `group:type:kind:name:version`.
    pub const BAD_DESCRIPTOR: &str = "BAD_DESCRIPTOR";
    /// No factory can create the requested component.
    pub const CANNOT_CREATE: &str = "CANNOT_CREATE";
    /// A configuration value is missing or malformed.
    pub const BAD_CONFIG: &str = "BAD_CONFIG";
    /// A lock key is empty, too long or contains forbidden bytes.
    pub const BAD_KEY: &str = "BAD_KEY";
    /// A ttl is zero or larger than the backend allows.
    pub const BAD_TTL: &str = "BAD_TTL";
    /// A server could not be reached or the connection broke.
    pub const CONNECTION_FAILED: &str = "CONNECTION_FAILED";
    /// A server is marked down after repeated failures.
    pub const SERVER_DOWN: &str = "SERVER_DOWN";
    /// An operation did not complete within its timeout.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// A request was written but its reply never came: it may or may not have taken effect.
    pub const OUTCOME_UNKNOWN: &str = "OUTCOME_UNKNOWN";
    /// A server sent a reply that does not follow the protocol.
    pub const PROTOCOL_ERROR: &str = "PROTOCOL_ERROR";
    /// A server answered the request with an error of its own.
    pub const SERVER_ERROR: &str = "SERVER_ERROR";
    /// A lease was lost (expired, evicted, restarted server, or renewal refused).
    pub const LOCK_LOST: &str = "LOCK_LOST";
    /// The server or configuration asks for something this library does not do.
    pub const UNSUPPORTED: &str = "UNSUPPORTED";
    /// A bug or an impossible state.
    pub const INTERNAL: &str = "INTERNAL";
}

/// What kind of failure an [`Error`] is; cheap to copy and match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is missing something or holds a bad value.
    Config,
    /// The component is not in a state that allows the call (for example not opened).
    InvalidState,
    /// The operation conflicts with the state of the world (a lock held by someone else).
    Conflict,
    /// A required reference is missing.
    Reference,
    /// The caller passed an invalid argument (key, ttl, descriptor).
    BadRequest,
    /// A server could not be reached, or the connection broke before the request was sent.
    Connection,
    /// The operation did not complete within its timeout before anything was sent.
    Timeout,
    /// The request may have reached the server, but no reply came: its effect is unknown.
    OutcomeUnknown,
    /// The server's reply broke the protocol or reported an error.
    Protocol,
    /// The operation or server version is not supported.
    Unsupported,
    /// The server refused the credentials, or wants credentials that were not given.
    Unauthorized,
    /// A component could not be created.
    Creation,
    /// A bug or an impossible state.
    Internal,
}

impl ErrorKind {
    /// The HTTP-like status Pip.Services attaches to errors of this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::Config | ErrorKind::Internal | ErrorKind::Creation => 500,
            ErrorKind::InvalidState => 409,
            ErrorKind::Conflict => 409,
            ErrorKind::Reference => 500,
            ErrorKind::BadRequest => 400,
            ErrorKind::Connection | ErrorKind::Protocol => 503,
            ErrorKind::Timeout | ErrorKind::OutcomeUnknown => 504,
            ErrorKind::Unsupported => 501,
            ErrorKind::Unauthorized => 401,
        }
    }

    fn default_retryable(self) -> bool {
        matches!(self, ErrorKind::Connection | ErrorKind::Timeout)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorKind::Config => "configuration error",
            ErrorKind::InvalidState => "invalid state",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Reference => "reference error",
            ErrorKind::BadRequest => "bad request",
            ErrorKind::Connection => "connection error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::OutcomeUnknown => "outcome unknown",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Creation => "creation error",
            ErrorKind::Internal => "internal error",
        };
        f.write_str(name)
    }
}

type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// The error type of every fallible call in the workspace.
///
/// ```
/// use commons::{Context, Error, ErrorKind, codes};
///
/// let ctx = Context::with_trace_id("req-42");
/// let err = Error::new(ErrorKind::Conflict, codes::LOCK_TIMEOUT, "lock not acquired in time")
///     .with_detail("key", "orders")
///     .with_context(&ctx);
/// assert_eq!(err.kind(), ErrorKind::Conflict);
/// assert_eq!(err.code(), "LOCK_TIMEOUT");
/// assert_eq!(err.detail("key"), Some("orders"));
/// assert_eq!(err.trace_id(), Some("req-42"));
/// assert!(!err.is_retryable());
/// assert_eq!(err.to_string(), "LOCK_TIMEOUT: lock not acquired in time [key=orders] (trace id req-42)");
/// ```
#[derive(Clone, thiserror::Error)]
#[error("{}", self.render())]
#[non_exhaustive]
pub struct Error {
    kind: ErrorKind,
    code: &'static str,
    message: String,
    details: BTreeMap<String, String>,
    trace_id: Option<Arc<str>>,
    retryable: Option<bool>,
    #[source]
    source: Option<Source>,
}

impl Error {
    /// Creates an error of `kind` with a stable `code` (see [`codes`]) and a message.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Error {
            kind,
            code,
            message: message.into(),
            details: BTreeMap::new(),
            trace_id: None,
            retryable: None,
            source: None,
        }
    }

    /// A configuration error (`BAD_CONFIG` unless another code is given later).
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, codes::BAD_CONFIG, message)
    }

    /// A configuration error naming the offending key and value.
    pub fn bad_config_value(key: &str, value: &str, expected: &str) -> Self {
        Self::config(format!(
            "configuration key '{key}' has value '{value}': expected {expected}"
        ))
        .with_detail("key", key)
        .with_detail("value", value)
    }

    /// A bad argument from the caller.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, code, message)
    }

    /// The component is not opened (`NOT_OPENED`).
    pub fn not_opened(component: &str) -> Self {
        Self::new(
            ErrorKind::InvalidState,
            codes::NOT_OPENED,
            format!("{component} is not opened"),
        )
    }

    /// An internal error (a bug).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, codes::INTERNAL, message)
    }

    /// Adds a key/value detail.
    pub fn with_detail(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.details.insert(key.into(), value.to_string());
        self
    }

    /// Attaches the trace id of `ctx` (if it has one).
    pub fn with_context(mut self, ctx: &Context) -> Self {
        if let Some(id) = ctx.trace_id_arc() {
            self.trace_id = Some(id);
        }
        self
    }

    /// Sets the trace id explicitly.
    pub fn with_trace_id(mut self, trace_id: impl Into<Arc<str>>) -> Self {
        self.trace_id = Some(trace_id.into());
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Overrides whether the operation may be retried (by default connection and timeout
    /// errors are retryable, nothing else).
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = Some(retryable);
        self
    }

    /// The kind, for branching.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable code, for example `LOCK_TIMEOUT`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The HTTP-like status (`409` for `LOCK_TIMEOUT`, as in the originals).
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The human-readable message (without code, details or trace id).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// One detail by key.
    pub fn detail(&self, key: &str) -> Option<&str> {
        self.details.get(key).map(String::as_str)
    }

    /// All details.
    pub fn details(&self) -> &BTreeMap<String, String> {
        &self.details
    }

    /// The trace id of the operation that failed.
    pub fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }

    /// Whether repeating the same operation may succeed and is safe.
    pub fn is_retryable(&self) -> bool {
        self.retryable
            .unwrap_or_else(|| self.kind.default_retryable())
    }
}

impl Error {
    fn render(&self) -> Rendered<'_> {
        Rendered(self)
    }
}

struct Rendered<'a>(&'a Error);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let this = self.0;
        write!(f, "{}: {}", this.code, this.message)?;
        if !this.details.is_empty() {
            f.write_str(" [")?;
            for (i, (k, v)) in this.details.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}={v}")?;
            }
            f.write_str("]")?;
        }
        if let Some(id) = &this.trace_id {
            write!(f, " (trace id {id})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind)
            .field("code", &self.code)
            .field("message", &self.message);
        if !self.details.is_empty() {
            d.field("details", &self.details);
        }
        if let Some(id) = &self.trace_id {
            d.field("trace_id", id);
        }
        if let Some(src) = &self.source {
            d.field("source", &src.to_string());
        }
        d.finish()
    }
}
