//! The per-operation context (Pip.Services' `IContext`).

use std::sync::Arc;

/// The context of one operation: today its trace id (the originals' `correlation_id`).
///
/// Cheap to clone (one `Arc`); passed to every operation so that every error it produces
/// carries the trace id.
///
/// ```
/// use commons::Context;
///
/// let ctx = Context::with_trace_id("order-7");
/// assert_eq!(ctx.trace_id(), Some("order-7"));
/// assert_eq!(Context::new().trace_id(), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Context {
    trace_id: Option<Arc<str>>,
}

impl Context {
    /// A context without a trace id.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context carrying `trace_id`.
    pub fn with_trace_id(trace_id: impl Into<Arc<str>>) -> Self {
        Context {
            trace_id: Some(trace_id.into()),
        }
    }

    /// The trace id, if any.
    pub fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }

    pub(crate) fn trace_id_arc(&self) -> Option<Arc<str>> {
        self.trace_id.clone()
    }
}

impl From<&str> for Context {
    fn from(trace_id: &str) -> Self {
        Context::with_trace_id(trace_id)
    }
}
