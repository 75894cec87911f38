//! One memcached server: the policy every request follows, whichever transport carries it.
//!
//! Validation before anything is sent, one deadline (`options.timeout`) over the whole call,
//! retries of what is safe to repeat, the identity check that keeps a lease's CAS away from
//! another boot of the server, health (marked down after repeated failures), the mapping of a
//! timeout to `TIMEOUT` or `OUTCOME_UNKNOWN`, and the idle reaper.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use commons::{Context, Error, ErrorKind, codes};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::codec::{Reply, Request};
use super::errors::{
    failure_of, outcome_unknown, reply_error, timed_out, unsafe_key, value_too_large,
};
use super::health::ServerHealth;
use super::identity::{Probe, ServerIdentity, restarted};
use super::late::LateSender;
use super::options::ClientOptions;
use super::tcp::Peer;
use super::telemetry::RequestMetrics;
use super::transport::{Checkout, ConnectionPool, ExchangeError, Transport};
use crate::codes::SERVER_RESTARTED;

/// How one request is run (see [`Server::call`]).
#[derive(Debug, Default, Clone)]
pub(crate) struct Call {
    /// Safe to repeat: retried after retryable errors and unknown outcomes. Otherwise only
    /// retried when nothing was sent.
    pub(crate) idempotent: bool,
    /// The connection used must talk to exactly this boot of the server, or nothing is sent
    /// (`SERVER_RESTARTED`).
    pub(crate) expect_identity: Option<ServerIdentity>,
    /// Where the reply goes if the caller stops waiting after the request left.
    pub(crate) late: Option<LateSender>,
    /// Background work: its failures do not count towards marking the server down, and it
    /// is tried even while the server is marked down.
    pub(crate) quiet: bool,
    /// When the caller started the request, if it read the clock for it already: the
    /// deadline and the latency histogram count from there (a clock read saved).
    pub(crate) started: Option<Instant>,
}

impl Call {
    /// A request that is not repeated once it may have been sent.
    pub(crate) fn once() -> Call {
        Call::default()
    }

    /// A request that is safe to repeat.
    pub(crate) fn repeatable() -> Call {
        Call {
            idempotent: true,
            ..Call::default()
        }
    }

    /// Only sent on a connection to the boot `identity` (when given).
    pub(crate) fn on(mut self, identity: Option<ServerIdentity>) -> Call {
        self.expect_identity = identity;
        self
    }
}

/// A reply together with the identity of the server boot that produced it and when it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Executed {
    pub(crate) reply: Reply,
    pub(crate) identity: ServerIdentity,
    /// When the reply arrived (was read from the socket): for the request-latency histogram
    /// and for the lock layer's reply-time bookkeeping (clock observations, when an item is
    /// certainly gone), which would otherwise read the clock again. The meta transport reads
    /// the clock once per read from the socket, for every reply that read completed.
    pub(crate) arrived: Instant,
}

/// One memcached server reached through transport `T`.
#[derive(Debug)]
pub(crate) struct Server<T: Transport> {
    address: Arc<str>,
    connects_to: SocketAddr,
    options: ClientOptions,
    transport: Arc<T>,
    health: ServerHealth,
    requests: RequestMetrics,
    reaper: Option<JoinHandle<()>>,
}

impl<T: Transport> Drop for Server<T> {
    fn drop(&mut self) {
        if let Some(r) = &self.reaper {
            r.abort();
        }
        self.transport.pool().close_all();
    }
}

impl<T: Transport> Server<T> {
    /// A server at a socket address given as text (`ip:port`), for tests.
    #[cfg(test)]
    pub(crate) fn new(address: impl AsRef<str>, options: ClientOptions) -> Self {
        let address = address.as_ref();
        let addr = address
            .parse()
            .unwrap_or_else(|e| panic!("a test server address is ip:port: {address}: {e}"));
        Self::pinned(Peer::new(address, addr), options)
    }

    /// The server `peer`. Connects lazily; must run inside a tokio runtime (it starts the
    /// idle reaper).
    pub(crate) fn pinned(peer: Peer, options: ClientOptions) -> Self {
        let address = peer.name().clone();
        let connects_to = peer.addr();
        let transport = Arc::new(T::new(peer, options.clone()));
        let reaper = spawn_idle_reaper(&transport, options.idle);
        Server {
            health: ServerHealth::new(address.clone(), options.failures, options.retry),
            requests: RequestMetrics::new(address.clone()),
            address,
            connects_to,
            options,
            transport,
            reaper,
        }
    }

    /// "host:port".
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// The socket address every connection goes to (resolved once, at open).
    pub(crate) fn connects_to(&self) -> SocketAddr {
        self.connects_to
    }

    /// `"meta"` or `"classic"`.
    pub(crate) fn protocol(&self) -> &'static str {
        T::PROTOCOL
    }

    /// Health and what the probes observed (identity, version, evictions).
    pub(crate) fn health(&self) -> &ServerHealth {
        &self.health
    }

    /// Open connections.
    pub(crate) fn live_connections(&self) -> usize {
        self.transport.pool().live_count()
    }

    /// Closes the connections (re-created on demand).
    pub(crate) fn close(&self) {
        self.transport.pool().close_all();
    }

    /// Opens (or reuses) one connection and probes it: used when the cluster opens.
    pub(crate) async fn check(&self, ctx: &Context) -> Result<ServerIdentity, Error> {
        let deadline = Instant::now() + self.options.timeout;
        // Bounded by the transport, as every checkout.
        let checkout = self
            .transport
            .checkout(None, deadline, false)
            .await
            .map_err(|e| e.with_context(ctx))?;
        self.observe(checkout.fresh);
        let identity = checkout.identity;
        self.transport.give_back(checkout.conn);
        Ok(identity)
    }

    /// [`Server::call`] with its two main options, for the client's own tests.
    #[cfg(test)]
    pub(crate) async fn execute(
        &self,
        ctx: &Context,
        req: Request,
        idempotent: bool,
        expect_identity: Option<ServerIdentity>,
    ) -> Result<Executed, Error> {
        let call = Call {
            idempotent,
            expect_identity,
            ..Call::default()
        };
        self.call(ctx, Arc::new(req), &call).await
    }

    /// Sends `req` on one of the server's connections. Bounded by `options.timeout` overall.
    ///
    /// `call.expect_identity`: when `Some`, the connection used must have exactly that
    /// identity, otherwise the call fails with `SERVER_RESTARTED` (`ErrorKind::InvalidState`)
    /// without sending anything. `call.idempotent`: `true` retries (up to `options.retries`)
    /// retryable errors and unknown outcomes; `false` retries only when nothing was sent.
    ///
    /// `req` is shared with the transport (a retry does not copy the key and data again);
    /// [`Endpoint::call`](super::Endpoint::call) puts it behind its `Arc`.
    pub(crate) async fn call(
        &self,
        ctx: &Context,
        req: Arc<Request>,
        call: &Call,
    ) -> Result<Executed, Error> {
        if let Request::Set { data, .. } = &*req
            && data.len() > self.options.max_value
        {
            return Err(value_too_large(data.len(), self.options.max_value).with_context(ctx));
        }
        if let Some(key) = req.key()
            && !key.is_safe()
        {
            return Err(unsafe_key().with_context(ctx));
        }
        let started = call.started.unwrap_or_else(Instant::now);
        let deadline = started + self.options.timeout;
        let mut attempt = 0u32;
        loop {
            let err = match self.attempt(&req, call, deadline).await {
                Ok(executed) => {
                    self.health.record_success();
                    self.finished(
                        &req,
                        executed.arrived.saturating_duration_since(started),
                        attempt,
                        None,
                    );
                    return Ok(executed);
                }
                Err(err) => err,
            };
            // Background work (cleanups) keeps trying where the caller would have given up;
            // its failures must not mark the server down on their own.
            if !call.quiet {
                self.health.record_outcome(&err);
            }
            let repeatable = match err.code() {
                codes::SERVER_DOWN | SERVER_RESTARTED => false,
                _ if call.idempotent => {
                    err.is_retryable() || err.kind() == ErrorKind::OutcomeUnknown
                }
                _ => err.kind() == ErrorKind::Connection,
            };
            if !repeatable || attempt >= self.options.retries || Instant::now() >= deadline {
                self.finished(&req, started.elapsed(), attempt, Some(&err));
                return Err(err.with_context(ctx));
            }
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        req: &Arc<Request>,
        call: &Call,
        deadline: Instant,
    ) -> Result<Executed, Error> {
        if !call.quiet {
            self.health.check_up()?;
        }
        // Bounded by the transport (only its slow paths need a timer).
        let checkout = self
            .transport
            .checkout(Some(req), deadline, call.quiet)
            .await?;
        // Taken apart at once: the probe is not kept across the exchange's await.
        let Checkout {
            conn,
            identity,
            fresh,
        } = checkout;
        self.observe(fresh);
        if let Some(expected) = call.expect_identity
            && expected != identity
        {
            self.transport.give_back(conn);
            return Err(restarted(&self.address, expected, identity));
        }
        if let Some(late) = &call.late {
            late.attach(identity);
        }
        let exchanged = self
            .transport
            .exchange(conn, req, deadline, call.late.as_ref())
            .await;
        match exchanged {
            Ok((reply, arrived)) => match failure_of(&reply) {
                Some(failure) => Err(reply_error(&self.address, failure, T::command_name(req))),
                None => Ok(Executed {
                    reply,
                    identity,
                    arrived,
                }),
            },
            Err(ExchangeError::Failed(e)) => Err(e),
            Err(ExchangeError::TimedOut { sent: true }) => Err(outcome_unknown(
                &self.address,
                T::command_name(req),
                &format!("within {:?}", self.options.timeout),
            )),
            Err(ExchangeError::TimedOut { sent: false }) => {
                Err(self.timeout_error("waiting to send"))
            }
        }
    }

    /// Records a request that ended (after `retries` retries) after `took`: its latency
    /// histogram and a `debug` event. A success is timed by its reply's arrival (see
    /// [`Executed::arrived`]): no clock read of its own.
    fn finished(&self, req: &Request, took: Duration, retries: u32, err: Option<&Error>) {
        let command = T::command_name(req);
        self.requests.record(req, command, err.is_none(), took);
        tracing::debug!(
            server.address = %self.address,
            db.operation.name = command,
            elapsed_us = took.as_micros() as u64,
            retries,
            error.type = err.map(Error::code),
            "memcached request"
        );
    }

    fn observe(&self, probe: Option<Probe>) {
        if let Some(probe) = probe {
            self.health.observe(
                probe.identity,
                &probe.version,
                probe.evictions,
                probe.boot_age,
            );
        }
    }

    fn timeout_error(&self, while_: &str) -> Error {
        timed_out(&self.address, self.options.timeout, while_)
    }
}

/// Starts the task that closes idle connections every `idle / 2`, until the transport is
/// gone. `None` when `idle` is zero (never close).
fn spawn_idle_reaper<T: Transport>(transport: &Arc<T>, idle: Duration) -> Option<JoinHandle<()>> {
    if idle.is_zero() {
        return None;
    }
    let transport: Weak<T> = Arc::downgrade(transport);
    let period = (idle / 2).max(Duration::from_millis(10));
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(transport) = transport.upgrade() else {
                return;
            };
            transport.pool().reap_idle(Instant::now());
        }
    }))
}

#[cfg(test)]
mod tests;
