//! The classic text protocol, spoken through `memcache-async`, for servers without reliable
//! meta commands (memcached before 1.6.13, text-only managed offerings).
//!
//! [`ClassicTransport`] carries the same (meta) requests as the meta transport under the same
//! server policy, translating each into classic commands ([`commands`]):
//!
//! | request | classic commands | reply |
//! | --- | --- | --- |
//! | `Set { Add, ttl }` | `add <k> 0 <ttl>` then `gets <k>` | `Hd { cas }` when the stored value is ours, else `Ns` |
//! | `Set { Cas(c), ttl }` | `cas <k> 0 <ttl> .. <c>` then `gets <k>` | `Hd { new cas }`; `Ex`; `Nf` |
//! | `Delete { cas }` | `cas <k> 0 <1970> 0 <cas>` (an already-expired item) | `Hd`; `Ex`; `Nf` |
//! | `Get` | `gets <k>` | `Va { data, cas, ttl: None }`; `En` |
//! | `Version` / `Stats` | `version` / `stats` | as in meta mode |
//!
//! One request at a time per connection, `pool_size` connections per server.
//!
//! ## What memcache-async 0.10 cannot do, and how this module works around it
//!
//! - Its futures are not cancellation-safe: a reply half read, or not read at all, stays on
//!   the socket and the next command would read it as its own (a held lock read as
//!   acquired). A connection is therefore checked out by one request at a time inside a
//!   [`pool::CheckedOut`] guard that returns it to the pool only after a clean completion; a timeout, an
//!   error or a dropped future throws the connection away.
//! - It cannot say whether a request reached the socket: the stream it is given ([`wire::Wire`])
//!   counts the bytes written, which separates "nothing sent" (`TIMEOUT`, safe to retry) from
//!   "sent, no reply" (`OUTCOME_UNKNOWN`).
//! - It trusts the server's lengths (allocates whatever a `VALUE` line announces, reads lines
//!   without bound): [`wire::Wire`] checks every line and `VALUE` size before it sees them.
//! - Its `cas` looks for `NOT FOUND` (with a space) and so reports memcached's `NOT_FOUND` as
//!   an `Other` error carrying the line: that line is recognised here.
//! - Its `add` reports any reply other than `NOT_STORED` or an error line as stored: the
//!   `gets` that follows every store checks that the value is ours before success is reported.
//! - It has no `stats`: every new connection is probed (`version` + `stats`, parsed by this
//!   crate's codec) before it is handed to memcache-async, and a `Stats` request opens a fresh
//!   probed connection.
//! - It owns the socket: a duplicate of the file descriptor (`try_clone`) lets the pool check
//!   that an idle connection was not closed by the server before it is reused.
//! - Its expiries are `u32`: "in the past" is written as an absolute time in 1970
//!   ([`commands::PAST_EXPIRY`]), not as a negative number.
//!
//! Its `noreply` commands (`set`, `delete`, `append`) are never used.

mod commands;
mod conn;
mod pool;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use commons::Error;
use tokio::time::{Instant, timeout_at};

use pool::{CheckedOut, ClassicPool};

use super::codec::{Reply, Request};
use super::errors::{no_connection_in_time, outcome_unknown};
use super::late::LateSender;
use super::options::ClientOptions;
use super::tcp::Peer;
use super::transport::{Checkout, ConnectionPool, ExchangeError, Transport};

/// Tells the late receiver that the outcome is unknown when an exchange whose request left
/// ends without its reply (failed, timed out, or dropped mid-way).
struct Unanswered<'a> {
    late: Option<&'a LateSender>,
    written: Arc<AtomicU64>,
    before: u64,
    address: &'a str,
    command: &'static str,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if let Some(late) = self.late
            && self.written.load(Ordering::Acquire) != self.before
        {
            late.failed(outcome_unknown(
                self.address,
                self.command,
                "no reply can be read any more on this connection",
            ));
        }
    }
}

/// The classic text protocol through memcache-async, one request at a time per connection.
#[derive(Debug)]
pub(crate) struct ClassicTransport {
    address: Arc<str>,
    /// `options.timeout`, for the message of a checkout that did not finish by its deadline.
    timeout: std::time::Duration,
    pool: ClassicPool,
}

impl Transport for ClassicTransport {
    type Conn = CheckedOut;

    const PROTOCOL: &'static str = "classic";

    fn new(peer: Peer, options: ClientOptions) -> Self {
        ClassicTransport {
            address: peer.name().clone(),
            timeout: options.timeout,
            pool: ClassicPool::new(peer, options),
        }
    }

    async fn checkout(
        &self,
        req: Option<&Request>,
        deadline: Instant,
        quiet: bool,
    ) -> Result<Checkout<CheckedOut>, Error> {
        // A connection may have to be made, or waited for (one request per connection).
        let checked_out = timeout_at(deadline, async {
            if matches!(req, Some(Request::Stats)) {
                let (out, probe) = self.pool.fresh(deadline).await?;
                Ok((out, Some(probe)))
            } else {
                self.pool.checkout(deadline, quiet).await
            }
        });
        let (out, fresh) = match checked_out.await {
            Ok(result) => result?,
            Err(_) => return Err(no_connection_in_time(&self.address, self.timeout)),
        };
        Ok(Checkout {
            identity: out.conn.identity,
            conn: out,
            fresh,
        })
    }

    fn give_back(&self, conn: CheckedOut) {
        self.pool.take_back(conn);
    }

    async fn exchange(
        &self,
        mut out: CheckedOut,
        req: &Arc<Request>,
        deadline: Instant,
        late: Option<&LateSender>,
    ) -> Result<(Reply, Instant), ExchangeError> {
        // memcache-async cannot hand over a reply still owed: a caller that stops waiting
        // after the request left leaves its late receiver an "unknown" instead.
        let mut unanswered = Unanswered {
            late,
            written: out.conn.written_counter(),
            before: out.conn.written(),
            address: &self.address,
            command: commands::command_name(req),
        };
        let outcome = timeout_at(deadline, commands::run(&mut out.conn, req)).await;
        let arrived = Instant::now();
        let sent = out.conn.written() != unanswered.before;
        // Only a clean exchange returns the connection: after anything else memcache-async
        // may have left part of a reply on it, so `out` is dropped (closed) instead.
        match outcome {
            // An error line can leave more lines behind it: that connection is not reused.
            Ok(Ok(reply)) if reply.poisons_stream() => {
                unanswered.late = None;
                Ok((reply, arrived))
            }
            Ok(Ok(reply)) => {
                unanswered.late = None;
                self.pool.take_back(out);
                Ok((reply, arrived))
            }
            Ok(Err(commands::Failure::Server(reply))) => {
                unanswered.late = None;
                Ok((reply, arrived))
            }
            Ok(Err(failure)) => Err(ExchangeError::Failed(failure.into_error(
                &self.address,
                commands::command_name(req),
                sent,
            ))),
            Err(_) => Err(ExchangeError::TimedOut { sent }),
        }
    }

    fn command_name(req: &Request) -> &'static str {
        commands::command_name(req)
    }

    fn pool(&self) -> &impl ConnectionPool {
        &self.pool
    }
}

#[cfg(test)]
mod tests;
