//! One classic connection: memcache-async's protocol over a [`Wire`], probed when made.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use commons::Error;
use memcache_async::ascii::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::wire::Wire;
use crate::client::codec::{Reply, ReplyShape, parse_with_limit};
use crate::client::errors::{
    connection_error, is_error_reply, protocol_error, reply_error, timed_out,
};
use crate::client::identity::{Probe, ServerIdentity};
use crate::client::options::ClientOptions;
use crate::client::tcp;

/// One classic connection.
pub(crate) struct ClassicConn {
    pub(crate) proto: Protocol<Wire>,
    written: Arc<AtomicU64>,
    /// A duplicate of the socket's descriptor (non-blocking), used only to `peek` whether an
    /// idle connection was closed by the server, and to shut the socket down on drop.
    watch: std::net::TcpStream,
    pub(crate) identity: ServerIdentity,
    /// The pool generation it was made in: a closed pool does not take it back.
    pub(crate) generation: u64,
    pub(crate) last_used: Instant,
    /// The `stats` of the probe, while a `Stats` request has not taken them: memcache-async
    /// has no `stats`, so that request is answered from a connection's own probe.
    pub(crate) fresh_stats: Option<Vec<(String, String)>>,
    live: Arc<AtomicUsize>,
}

impl std::fmt::Debug for ClassicConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClassicConn")
            .field("identity", &self.identity)
            .field("written", &self.written.load(Ordering::Relaxed))
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Drop for ClassicConn {
    fn drop(&mut self) {
        let _ = self.watch.shutdown(std::net::Shutdown::Both);
        self.live.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ClassicConn {
    /// Whether the idle connection can be reused: nothing is waiting to be read (no EOF from
    /// the server, no stray bytes) and the socket has no error.
    pub(crate) fn healthy(&self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.watch.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Bytes written so far: compared before and after a request to tell whether it left.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Connects (bounded by `connect_timeout` and `deadline`), probes with `version` +
    /// `stats` and hands the socket to memcache-async. `live` counts open connections.
    pub(crate) async fn open(
        address: &str,
        options: &ClientOptions,
        deadline: Instant,
        live: &Arc<AtomicUsize>,
        generation: u64,
    ) -> Result<(ClassicConn, Probe), Error> {
        let connect_timeout = options
            .connect_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let mut stream = tcp::connect(address, connect_timeout).await?;
        let socket_error = |what: &str, e: io::Error| {
            connection_error(
                address,
                format!("{what} on the connection to {address}: {e}"),
            )
            .with_source(e)
        };
        let probe = match timeout_at(deadline, probe(&mut stream, address, options.max_value)).await
        {
            Ok(r) => r?,
            Err(_) => {
                return Err(timed_out(
                    address,
                    options.timeout,
                    "answering version/stats on a new connection",
                ));
            }
        };
        // memcache-async takes the stream; keep a duplicate descriptor to watch it while idle.
        let std_stream = stream
            .into_std()
            .map_err(|e| socket_error("cannot detach the socket", e))?;
        let watch = std_stream
            .try_clone()
            .map_err(|e| socket_error("cannot duplicate the socket", e))?;
        let stream = TcpStream::from_std(std_stream)
            .map_err(|e| socket_error("cannot register the socket", e))?;
        let written = Arc::new(AtomicU64::new(0));
        live.fetch_add(1, Ordering::AcqRel);
        let conn = ClassicConn {
            proto: Protocol::new(Wire::new(stream, written.clone(), options.max_value)),
            written,
            watch,
            identity: probe.identity,
            generation,
            last_used: Instant::now(),
            fresh_stats: Some(probe.stats.clone()),
            live: live.clone(),
        };
        Ok((conn, probe))
    }
}

/// `version` and `stats`, pipelined, parsed with the crate's own codec (memcache-async has no
/// `stats`).
async fn probe(stream: &mut TcpStream, address: &str, max_value: usize) -> Result<Probe, Error> {
    stream
        .write_all(b"version\r\nstats\r\n")
        .await
        .map_err(|e| {
            connection_error(
                address,
                format!("writing to memcached at {address} failed: {e}"),
            )
            .with_source(e)
        })?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let version = read_reply(stream, &mut buf, ReplyShape::Version, address, max_value).await?;
    let stats = read_reply(stream, &mut buf, ReplyShape::Stats, address, max_value).await?;
    if !buf.is_empty() {
        return Err(protocol_error(
            address,
            "unsolicited bytes after the stats reply",
        ));
    }
    Probe::from_replies(address, version, stats)
}

async fn read_reply(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    shape: ReplyShape,
    address: &str,
    max_value: usize,
) -> Result<Reply, Error> {
    loop {
        match parse_with_limit(buf, shape, max_value) {
            Ok(Some((reply, used))) => {
                buf.drain(..used);
                if is_error_reply(&reply) {
                    return Err(reply_error(address, &reply, "the probe"));
                }
                return Ok(reply);
            }
            Ok(None) => {}
            Err(e) => return Err(protocol_error(address, e.message()).with_source(e)),
        }
        match stream.read_buf(buf).await {
            Ok(0) => {
                return Err(connection_error(
                    address,
                    format!("memcached at {address} closed the connection during the probe"),
                ));
            }
            Ok(_) => {}
            Err(e) => {
                return Err(connection_error(
                    address,
                    format!("reading from memcached at {address} failed: {e}"),
                )
                .with_source(e));
            }
        }
    }
}
