//! The meta-protocol transport: pipelined connections, each owned by one task
//! ([`connection`]), a caller and the task meeting per request in one allocation
//! ([`handoff`]), `pool_size` connections per server ([`pool`]), each probed when made
//! ([`probe`]).

mod connection;
mod handoff;
mod pool;
mod probe;

use std::sync::Arc;

use commons::{Error, ErrorKind};
use tokio::time::Instant;

pub(crate) use connection::Connection;
pub(crate) use handoff::Answer;
use pool::Pool;

use super::codec::{Reply, Request};
use super::late::LateSender;
use super::options::ClientOptions;
use super::tcp::Peer;
use super::transport::{Checkout, ConnectionPool, ExchangeError, Transport};

/// Meta commands, pipelined (memcached >= 1.6.13).
#[derive(Debug)]
pub(crate) struct MetaTransport {
    pool: Pool,
}

impl Transport for MetaTransport {
    // Shared: many requests are in flight on one connection at once.
    type Conn = Arc<Connection>;

    const PROTOCOL: &'static str = "meta";

    fn new(peer: Peer, options: ClientOptions) -> Self {
        MetaTransport {
            pool: Pool::new(peer, options),
        }
    }

    async fn checkout(
        &self,
        _req: Option<&Request>,
        deadline: Instant,
        quiet: bool,
    ) -> Result<Checkout<Arc<Connection>>, Error> {
        let (conn, fresh) = self.pool.get(deadline, quiet).await?;
        let identity = conn
            .identity()
            .ok_or_else(|| Error::internal("connection without identity"))?;
        Ok(Checkout {
            conn,
            identity,
            fresh,
        })
    }

    fn give_back(&self, _conn: Arc<Connection>) {
        // The pool keeps its own handle; nothing to return.
    }

    async fn exchange(
        &self,
        conn: Arc<Connection>,
        req: &Arc<Request>,
        deadline: Instant,
        late: Option<&LateSender>,
    ) -> Result<(Reply, Instant), ExchangeError> {
        // The connection's task keeps the deadline: no timer per request here.
        let mut pending = match conn.send_with_late(req.clone(), late.cloned(), Some(deadline)) {
            Ok(p) => p,
            Err(e) => {
                self.pool.discard(&conn);
                return Err(ExchangeError::Failed(e));
            }
        };
        match pending.answer().await {
            Answer::Reply(reply, arrived) => Ok((reply, arrived)),
            Answer::Failed(e) => {
                // A refused key says nothing about the connection.
                if e.kind() != ErrorKind::BadRequest {
                    self.pool.discard(&conn);
                }
                Err(ExchangeError::Failed(e))
            }
            Answer::Expired { sent } => {
                if sent && late.is_some() {
                    // The reply still tells what happened, on this connection only: it is
                    // taken out of the pool (the server is slow or paused) but kept open
                    // until that reply arrives.
                    self.pool.retire(&conn);
                } else {
                    // A connection that let a request time out is suspect (paused server,
                    // half-open socket): close it; replies still owed are dropped with it.
                    self.pool.discard(&conn);
                }
                Err(ExchangeError::TimedOut { sent })
            }
        }
    }

    fn command_name(req: &Request) -> &'static str {
        req.command_name()
    }

    fn pool(&self) -> &impl ConnectionPool {
        &self.pool
    }
}
