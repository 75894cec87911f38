//! One classic connection: memcache-async's protocol over a [`Wire`], probed when made.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use commons::Error;
use memcache_async::ascii::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

use super::wire::Wire;
use crate::client::auth;
use crate::client::codec::{MetaFlags, Reply, ReplyShape, parse_with_limit};
use crate::client::errors::{
    connection_error, is_error_reply, protocol_error, reply_error, timed_out,
};
use crate::client::identity::{BOOT_MARKER_KEY, Probe, ServerIdentity, new_boot_marker};
use crate::client::options::ClientOptions;
use crate::client::stream::Stream;
use crate::client::tcp::{self, Peer};
use crate::client::tls::{describe_io, refusal, tls_error};

/// The smallest bound on a value read back, whatever `options.max_value` says: the boot
/// marker (16 bytes) must always be readable.
const MIN_READ_LIMIT: usize = 64;

/// One classic connection.
pub(crate) struct ClassicConn {
    pub(crate) proto: Protocol<Wire>,
    written: Arc<AtomicU64>,
    /// A duplicate of the socket's descriptor (non-blocking), used only to `peek` whether an
    /// idle connection was closed by the server, and to shut the socket down on drop. Under
    /// TLS it is the TCP socket under the session: it sees encrypted bytes, and an idle
    /// connection has none unless the server closed it or sent something unasked.
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

    /// The counter behind [`ClassicConn::written`], to read it after the connection is gone.
    pub(crate) fn written_counter(&self) -> Arc<AtomicU64> {
        self.written.clone()
    }

    /// Connects (bounded by `connect_timeout` and `deadline`), probes with `version` +
    /// `stats` and hands the socket to memcache-async. `live` counts open connections.
    pub(crate) async fn open(
        peer: &Peer,
        options: &ClientOptions,
        deadline: Instant,
        live: &Arc<AtomicUsize>,
        generation: u64,
    ) -> Result<(ClassicConn, Probe), Error> {
        let connect_timeout = options
            .connect_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let address = &**peer.name();
        let mut stream = tcp::connect(peer, connect_timeout, options.tls.as_deref()).await?;
        auth::authenticate(
            &mut stream,
            address,
            options.auth.as_deref(),
            connect_timeout,
        )
        .await?;
        let socket_error = |what: &str, e: io::Error| {
            connection_error(
                address,
                format!("{what} on the connection to {address}: {e}"),
            )
            .with_source(e)
        };
        let not_in_time = || {
            timed_out(
                address,
                options.timeout,
                "answering version/stats on a new connection",
            )
        };
        let (version, stats) = timeout_at(
            deadline,
            version_and_stats(&mut stream, address, options.max_value),
        )
        .await
        .map_err(|_| not_in_time())??;
        // memcache-async takes the stream; keep a duplicate descriptor to watch it while idle.
        let watch = stream
            .duplicate_tcp()
            .map_err(|e| socket_error("cannot duplicate the socket", e))?;
        let written = Arc::new(AtomicU64::new(0));
        // Reads are bounded by `max_value`, but never below what the boot marker needs.
        let read_limit = options.max_value.max(MIN_READ_LIMIT);
        let mut proto = Protocol::new(Wire::new(stream, written.clone(), read_limit));
        let marker = timeout_at(deadline, boot_marker(&mut proto))
            .await
            .map_err(|_| not_in_time())?
            .map_err(|e| {
                connection_error(
                    address,
                    format!(
                        "reading the boot marker from memcached at {address} failed: {}",
                        describe_io(&e)
                    ),
                )
                .with_source(e)
            })?;
        let probe = Probe::from_replies(address, version, stats, marker)?;
        live.fetch_add(1, Ordering::AcqRel);
        let conn = ClassicConn {
            proto,
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

/// Offers a fresh boot marker (`add`, never expiring) and reads the one in force, as the meta
/// transport does (see `identity::BOOT_MARKER_KEY`). `En` when there is none even after the
/// offer.
async fn boot_marker(proto: &mut Protocol<Wire>) -> Result<Reply, io::Error> {
    let key = std::str::from_utf8(BOOT_MARKER_KEY).unwrap_or("pip-locks:boot");
    match proto.add(key, &new_boot_marker(), 0).await {
        // Stored, or another client's marker is already there.
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        // An error line (out of memory under -M): whether a marker exists decides below.
        Err(e) if e.kind() == io::ErrorKind::Other => {}
        Err(e) => return Err(e),
    }
    match proto.get(BOOT_MARKER_KEY).await {
        Ok(data) => Ok(Reply::Va {
            data,
            flags: MetaFlags::default(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Reply::En),
        Err(e) => Err(e),
    }
}

/// `version` and `stats`, pipelined, parsed with the crate's own codec (memcache-async has no
/// `stats`).
async fn version_and_stats(
    stream: &mut Stream,
    address: &str,
    max_value: usize,
) -> Result<(Reply, Reply), Error> {
    let plain = stream.is_plain();
    let written = async {
        stream.write_all(b"version\r\nstats\r\n").await?;
        // Under TLS the records may still sit in the session.
        stream.flush().await
    };
    written
        .await
        .map_err(|e| io_failure(address, "writing to", e, plain))?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let version = read_reply(stream, &mut buf, ReplyShape::Version, address, max_value).await?;
    let stats = read_reply(stream, &mut buf, ReplyShape::Stats, address, max_value).await?;
    if !buf.is_empty() {
        return Err(protocol_error(
            address,
            "unsolicited bytes after the stats reply",
        ));
    }
    Ok((version, stats))
}

async fn read_reply(
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    shape: ReplyShape,
    address: &str,
    max_value: usize,
) -> Result<Reply, Error> {
    loop {
        match parse_with_limit(buf, shape, max_value) {
            Ok(Some((reply, used))) => {
                buf.drain(..used);
                if let Reply::ClientError(message) = &reply
                    && auth::is_unauthenticated(message)
                {
                    return Err(auth::required(address));
                }
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
                    format!(
                        "memcached at {address} closed the connection during the probe{}",
                        if stream.is_plain() {
                            PLAINTEXT_HINT
                        } else {
                            ""
                        }
                    ),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(io_failure(address, "reading from", e, stream.is_plain())),
        }
    }
}

/// Said when a server drops a new plaintext connection without answering: what a TLS-only
/// memcached port does (and a server that wants authentication first may too).
const PLAINTEXT_HINT: &str = " (if its port only speaks TLS, set connection.protocol=tls)";

/// An I/O failure of the probe: `TLS_FAILED` when TLS refused (a server that wants a client
/// certificate says so at the first read), else `CONNECTION_FAILED`.
fn io_failure(address: &str, doing: &str, e: io::Error, plain: bool) -> Error {
    if let Some(reason) = refusal(&e) {
        return tls_error(address, reason).with_source(e);
    }
    let hint = match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof if plain => PLAINTEXT_HINT,
        _ => "",
    };
    connection_error(
        address,
        format!("{doing} memcached at {address} failed: {e}{hint}"),
    )
    .with_source(e)
}
