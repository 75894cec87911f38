//! A server's request metrics: one `pip_lock_request_duration_seconds` histogram per
//! command and result, registered on first use and kept, so a request only records into it.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::Histogram;

use super::codec::{Request, SetMode};
use crate::telemetry::REQUEST_DURATION;

/// How many kinds of request there are (see [`kind`]).
const KINDS: usize = 10;

/// The request latency histograms of one server, by kind of request and result.
pub(crate) struct RequestMetrics {
    server: Arc<str>,
    histograms: [[OnceLock<Histogram>; 2]; KINDS],
}

impl fmt::Debug for RequestMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestMetrics")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl RequestMetrics {
    pub(crate) fn new(server: Arc<str>) -> Self {
        RequestMetrics {
            server,
            histograms: Default::default(),
        }
    }

    /// Records one request of `req`'s kind, named `command` on the wire, that took `took`.
    pub(crate) fn record(&self, req: &Request, command: &'static str, ok: bool, took: Duration) {
        let slot = &self.histograms[kind(req)][usize::from(!ok)];
        slot.get_or_init(|| {
            metrics::histogram!(
                REQUEST_DURATION,
                "server" => self.server.to_string(),
                "command" => command,
                "result" => if ok { "ok" } else { "error" }
            )
        })
        .record(took.as_secs_f64());
    }
}

/// The kind of a request: one per command name of either transport.
fn kind(req: &Request) -> usize {
    match req {
        Request::Set {
            mode: SetMode::Add, ..
        } => 0,
        Request::Set { .. } => 1,
        Request::Acquire(_) => 2,
        Request::Raise { .. } => 3,
        Request::Delete { .. } => 4,
        Request::Get { .. } => 5,
        Request::Clock => 6,
        Request::Noop => 7,
        Request::Version => 8,
        Request::Stats => 9,
    }
}
