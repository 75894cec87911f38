//! The classic text protocol, spoken through `memcache-async`, for servers without reliable
//! meta commands (memcached before 1.6.13, text-only managed offerings).
//!
//! [`ClassicServer`] has the same method set as [`super::Server`] and takes the same (meta)
//! requests, translating each into classic commands:
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
//!   [`Lease`] guard that returns it to the pool only after a clean completion; a timeout, an
//!   error or a dropped future throws the connection away.
//! - It cannot say whether a request reached the socket: the stream it is given ([`Wire`])
//!   counts the bytes written, which separates "nothing sent" (`TIMEOUT`, safe to retry) from
//!   "sent, no reply" (`OUTCOME_UNKNOWN`).
//! - It trusts the server's lengths (allocates whatever a `VALUE` line announces, reads lines
//!   without bound): [`Wire`] checks every line and `VALUE` size before it sees them.
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
//!   ([`PAST_EXPIRY`]), not as a negative number.
//!
//! Its `noreply` commands (`set`, `delete`, `append`) are never used.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use commons::{Context, Error, ErrorKind, codes};
use memcache_async::ascii::Protocol;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use super::codec::{MAX_LINE, MetaFlags, Reply, ReplyShape, Request, SetMode, parse_with_limit};
use super::health::{ServerHealth, restarted, spawn_idle_reaper, timed_out};
use super::pool::ClientOptions;
use super::server::{Executed, ServerIdentity, VALUE_TOO_LARGE};

/// The expiry that deletes: memcached reads an expiry above 30 days (2,592,000 s) as an
/// absolute Unix time, and one in the past stores an item that is already expired. Checked on
/// memcached 1.6.18: `cas k 0 2592001 0 <cas>` answers `STORED` (or `EXISTS` for another CAS)
/// and a following `gets` misses.
pub(crate) const PAST_EXPIRY: u32 = 2_592_001;

// ---------------------------------------------------------------------------------------------
// The stream handed to memcache-async.

/// Checks the server's bytes as they are read: every reply line is at most [`MAX_LINE`]
/// bytes, and every `VALUE` block at most `max_value` bytes (its data is skipped, not
/// parsed).
#[derive(Debug)]
struct ReadScan {
    max_value: usize,
    line: Vec<u8>,
    /// Bytes of a `VALUE` data block (and its CRLF) still to pass.
    skip: usize,
}

impl ReadScan {
    fn new(max_value: usize) -> ReadScan {
        ReadScan {
            max_value,
            line: Vec::new(),
            skip: 0,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let (part, rest, complete) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..=i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            if self.line.len() + part.len() > MAX_LINE {
                return Err(format!("a reply line is longer than {MAX_LINE} bytes"));
            }
            self.line.extend_from_slice(part);
            bytes = rest;
            if complete {
                self.end_line()?;
            }
        }
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), String> {
        if let Some(rest) = self.line.strip_prefix(b"VALUE ") {
            // VALUE <key> <flags> <bytes> [<cas>]
            let len = std::str::from_utf8(rest)
                .ok()
                .and_then(|t| t.split_ascii_whitespace().nth(2))
                .and_then(|t| t.parse::<usize>().ok())
                .ok_or_else(|| "a VALUE line without a valid length".to_string())?;
            if len > self.max_value {
                return Err(format!(
                    "a VALUE of {len} bytes exceeds options.max_value ({} bytes)",
                    self.max_value
                ));
            }
            self.skip = len + 2;
        }
        self.line.clear();
        Ok(())
    }
}

/// The TCP stream memcache-async reads and writes: counts the bytes written (so a timeout can
/// tell whether the request left), bounds what is read ([`ReadScan`]), and gathers each
/// command's writes until its flush. memcache-async writes a store as three pieces (command
/// line, data, CRLF); with TCP_NODELAY each would leave as its own segment.
#[derive(Debug)]
struct Wire {
    stream: TcpStream,
    written: Arc<AtomicU64>,
    scan: ReadScan,
    wbuf: Vec<u8>,
    wpos: usize,
}

impl Wire {
    fn new(stream: TcpStream, written: Arc<AtomicU64>, max_value: usize) -> Wire {
        Wire {
            stream,
            written,
            scan: ReadScan::new(max_value),
            wbuf: Vec::with_capacity(256),
            wpos: 0,
        }
    }

    /// Writes out everything gathered so far.
    fn poll_drain(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        while self.wpos < self.wbuf.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.wbuf[self.wpos..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    self.wpos += n;
                    self.written.fetch_add(n as u64, Ordering::AcqRel);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => match this.scan.feed(&buf.filled()[before..]) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(why) => Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why))),
            },
            other => other,
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Gathered; memcache-async flushes after every command.
        self.get_mut().wbuf.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.stream).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.stream).poll_shutdown(cx),
            other => other,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One connection and its probe.

/// What probing a new connection learned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Probe {
    version: String,
    identity: ServerIdentity,
    evictions: Option<u64>,
    stats: Vec<(String, String)>,
}

/// One classic connection: memcache-async's protocol over a [`Wire`].
struct ClassicConn {
    proto: Protocol<Wire>,
    written: Arc<AtomicU64>,
    /// A duplicate of the socket's descriptor (non-blocking), used only to `peek` whether an
    /// idle connection was closed by the server, and to shut the socket down on drop.
    watch: std::net::TcpStream,
    identity: ServerIdentity,
    generation: u64,
    last_used: Instant,
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
    fn healthy(&self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.watch.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }
}

fn connection_error(address: &str, message: String) -> Error {
    Error::new(ErrorKind::Connection, codes::CONNECTION_FAILED, message)
        .with_detail("server", address)
}

fn protocol_error(address: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Protocol,
        codes::PROTOCOL_ERROR,
        format!("memcached at {address}: {what}"),
    )
    .with_detail("server", address)
}

/// Connects (bounded by `connect_timeout` and `deadline`), sets TCP_NODELAY, probes with
/// `version` + `stats` and hands the socket to memcache-async.
async fn open_conn(
    address: &str,
    options: &ClientOptions,
    deadline: Instant,
    live: &Arc<AtomicUsize>,
    generation: u64,
) -> Result<(ClassicConn, Probe), Error> {
    let connect_by = deadline.min(Instant::now() + options.connect_timeout);
    let mut stream = match timeout_at(connect_by, TcpStream::connect(address)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(connection_error(
                address,
                format!("cannot connect to memcached at {address}: {e}"),
            )
            .with_source(e));
        }
        Err(_) => {
            return Err(connection_error(
                address,
                format!(
                    "connecting to memcached at {address} did not finish within {:?}",
                    options.connect_timeout
                ),
            ));
        }
    };
    let socket_error = |what: &str, e: io::Error| {
        connection_error(
            address,
            format!("{what} on the connection to {address}: {e}"),
        )
        .with_source(e)
    };
    stream
        .set_nodelay(true)
        .map_err(|e| socket_error("cannot set TCP_NODELAY", e))?;
    let probe = match timeout_at(deadline, probe(&mut stream, address, options.max_value)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Error::new(
                ErrorKind::Timeout,
                codes::TIMEOUT,
                format!(
                    "memcached at {address} did not answer version/stats in time; the request was not sent"
                ),
            )
            .with_detail("server", address));
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
        live: live.clone(),
    };
    Ok((conn, probe))
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
        })?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let version =
        match read_reply(stream, &mut buf, ReplyShape::Version, address, max_value).await? {
            Reply::Version(v) => v,
            other => return Err(reply_error(address, &format!("{other:?}"), "version")),
        };
    let stats = match read_reply(stream, &mut buf, ReplyShape::Stats, address, max_value).await? {
        Reply::Stats(s) => s,
        other => return Err(reply_error(address, &format!("{other:?}"), "stats")),
    };
    if !buf.is_empty() {
        return Err(protocol_error(
            address,
            "unsolicited bytes after the stats reply",
        ));
    }
    let get = |name: &str| {
        stats
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let number = |name: &str| -> Result<i64, Error> {
        get(name)
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| protocol_error(address, &format!("stats has no numeric '{name}'")))
    };
    let pid = u32::try_from(number("pid")?)
        .map_err(|_| protocol_error(address, "stats pid out of range"))?;
    let boot_epoch = number("time")? - number("uptime")?;
    let evictions = get("evictions").and_then(|v| v.parse().ok());
    Ok(Probe {
        version,
        identity: ServerIdentity { pid, boot_epoch },
        evictions,
        stats,
    })
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
                return match reply {
                    Reply::Error | Reply::ClientError(_) | Reply::ServerError(_) => {
                        Err(reply_error(address, &format!("{reply:?}"), "the probe"))
                    }
                    reply => Ok(reply),
                };
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

fn reply_error(address: &str, reply: &str, command: &str) -> Error {
    let server_said = [
        "ERROR",
        "CLIENT_ERROR",
        "SERVER_ERROR",
        "Error",
        "ClientError",
        "ServerError",
    ]
    .iter()
    .any(|p| reply.starts_with(p));
    Error::new(
        ErrorKind::Protocol,
        if server_said {
            codes::SERVER_ERROR
        } else {
            codes::PROTOCOL_ERROR
        },
        format!("memcached at {address} answered {reply} to {command}"),
    )
    .with_detail("server", address)
    .with_retryable(false)
}

// ---------------------------------------------------------------------------------------------
// The pool.

/// The connections to one server: at most `pool_size` in use at once, idle ones kept for
/// reuse until `idle` passes.
#[derive(Debug)]
struct ClassicPool {
    address: Arc<str>,
    options: ClientOptions,
    idle: Mutex<Vec<ClassicConn>>,
    permits: Arc<Semaphore>,
    live: Arc<AtomicUsize>,
    /// When the last connect failed; no new connect before `reconnect` has passed since.
    failed_connect: Mutex<Option<Instant>>,
    /// Bumped by `close_all`: connections of an older generation are not taken back.
    generation: AtomicU64,
}

/// A connection checked out for one request. Only [`Lease::release`] returns it to the pool;
/// dropped any other way (timeout, error, cancelled future) the connection is closed, because
/// memcache-async may have left part of a reply on it.
#[derive(Debug)]
struct Lease<'a> {
    conn: Option<ClassicConn>,
    pool: &'a ClassicPool,
    _permit: OwnedSemaphorePermit,
}

impl Lease<'_> {
    fn conn(&mut self) -> Result<&mut ClassicConn, Error> {
        self.conn
            .as_mut()
            .ok_or_else(|| Error::internal("classic lease without a connection"))
    }

    fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.last_used = Instant::now();
            self.pool.take_back(conn);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ClassicPool {
    fn new(address: Arc<str>, options: ClientOptions) -> ClassicPool {
        let size = options.pool_size.max(1);
        ClassicPool {
            address,
            options,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Arc::new(Semaphore::new(size)),
            live: Arc::new(AtomicUsize::new(0)),
            failed_connect: Mutex::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// A connection for one request: an idle healthy one, or a new probed one (then `Some`
    /// probe). Waits for a free slot; callers bound the wait.
    async fn checkout(&self, deadline: Instant) -> Result<(Lease<'_>, Option<Probe>), Error> {
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| {
            connection_error(
                &self.address,
                format!("the pool for {} is closed", self.address),
            )
        })?;
        loop {
            let candidate = lock(&self.idle).pop();
            match candidate {
                Some(conn) if conn.healthy() => {
                    return Ok((
                        Lease {
                            conn: Some(conn),
                            pool: self,
                            _permit: permit,
                        },
                        None,
                    ));
                }
                Some(stale) => drop(stale),
                None => break,
            }
        }
        let now = Instant::now();
        if let Some(at) = *lock(&self.failed_connect)
            && at + self.options.reconnect > now
        {
            let wait = (at + self.options.reconnect).saturating_duration_since(now);
            return Err(connection_error(
                &self.address,
                format!(
                    "no connection to memcached at {}: reconnecting is held back for another {wait:?} after a failure (options.reconnect)",
                    self.address
                ),
            ));
        }
        let generation = self.generation.load(Ordering::Acquire);
        match open_conn(
            &self.address,
            &self.options,
            deadline,
            &self.live,
            generation,
        )
        .await
        {
            Ok((conn, probe)) => {
                *lock(&self.failed_connect) = None;
                Ok((
                    Lease {
                        conn: Some(conn),
                        pool: self,
                        _permit: permit,
                    },
                    Some(probe),
                ))
            }
            Err(e) => {
                *lock(&self.failed_connect) = Some(Instant::now());
                Err(e)
            }
        }
    }

    /// Keeps a cleanly used connection for reuse (unless the pool was closed meanwhile or
    /// already holds enough).
    fn take_back(&self, conn: ClassicConn) {
        if conn.generation != self.generation.load(Ordering::Acquire)
            || self.live.load(Ordering::Acquire) > self.options.pool_size.max(1)
        {
            return;
        }
        lock(&self.idle).push(conn);
    }

    fn reap_idle(&self, now: Instant) {
        if self.options.idle.is_zero() {
            return;
        }
        let idle = self.options.idle;
        lock(&self.idle)
            .retain(|c| now.saturating_duration_since(c.last_used) < idle && c.healthy());
    }

    fn close_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        lock(&self.idle).clear();
    }
}

// ---------------------------------------------------------------------------------------------
// The endpoint.

/// Why a classic exchange failed, before it is turned into a [`commons::Error`].
#[derive(Debug)]
enum Failure {
    /// The socket failed or the reply could not be read.
    Io(io::Error),
    /// The server answered `ERROR`, `CLIENT_ERROR` or `SERVER_ERROR`.
    Server(String),
    /// A reply that does not belong to the command.
    Unexpected(String),
    /// A store went through but the `gets` that learns its CAS did not.
    AfterStore(Box<Failure>),
}

impl Failure {
    fn from_io(e: io::Error) -> Failure {
        if e.kind() == io::ErrorKind::Other {
            // memcache-async puts the reply line it did not expect in the error.
            let line = e.to_string().trim_end().to_string();
            if ["ERROR", "CLIENT_ERROR", "SERVER_ERROR"]
                .iter()
                .any(|p| line.starts_with(p))
            {
                return Failure::Server(line);
            }
            return Failure::Unexpected(line);
        }
        Failure::Io(e)
    }

    /// memcache-async 0.10's `cas` matches `NOT FOUND` (with a space), so memcached's
    /// `NOT_FOUND` comes back as an `Other` error carrying the line.
    fn is_not_found(e: &io::Error) -> bool {
        e.kind() == io::ErrorKind::NotFound
            || (e.kind() == io::ErrorKind::Other && e.to_string().trim_end() == "NOT_FOUND")
    }
}

/// One memcached endpoint spoken to in the classic text protocol.
#[derive(Debug)]
pub(crate) struct ClassicServer {
    address: Arc<str>,
    options: ClientOptions,
    pool: Arc<ClassicPool>,
    health: ServerHealth,
    reaper: Option<JoinHandle<()>>,
}

impl Drop for ClassicServer {
    fn drop(&mut self) {
        if let Some(r) = &self.reaper {
            r.abort();
        }
        self.pool.close_all();
    }
}

/// The classic command(s) a request becomes, for messages.
fn command_name(req: &Request) -> &'static str {
    match req {
        Request::Set {
            mode: SetMode::Add, ..
        } => "add+gets",
        Request::Set {
            mode: SetMode::Cas(_),
            ..
        } => "cas+gets",
        Request::Delete { .. } => "cas (delete)",
        Request::Get { .. } => "gets",
        Request::Noop => "mn",
        Request::Version => "version",
        Request::Stats => "stats",
    }
}

impl ClassicServer {
    /// A server at `address` ("host:port"). Connects lazily; must run inside a tokio runtime
    /// (it starts the idle reaper).
    pub(crate) fn new(address: impl Into<Arc<str>>, options: ClientOptions) -> ClassicServer {
        let address = address.into();
        let pool = Arc::new(ClassicPool::new(address.clone(), options.clone()));
        let reaper = spawn_idle_reaper(&pool, options.idle, ClassicPool::reap_idle);
        ClassicServer {
            health: ServerHealth::new(address.clone(), options.failures, options.retry),
            address,
            options,
            pool,
            reaper,
        }
    }

    /// "host:port".
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Health and what the probes observed (identity, version, evictions).
    pub(crate) fn health(&self) -> &ServerHealth {
        &self.health
    }

    /// Open connections (idle or in use).
    pub(crate) fn live_connections(&self) -> usize {
        self.pool.live.load(Ordering::Acquire)
    }

    /// Closes the idle connections; those in use are closed when their request ends. New
    /// ones are made on demand.
    pub(crate) fn close(&self) {
        self.pool.close_all();
    }

    fn observe(&self, probe: &Probe) {
        self.health
            .observe(probe.identity, &probe.version, probe.evictions);
    }

    fn timeout_error(&self, while_: &str) -> Error {
        timed_out(&self.address, self.options.timeout, while_)
    }

    /// Opens (or reuses) one connection and probes it: used by `Cluster::connect`.
    pub(crate) async fn check(&self, ctx: &Context) -> Result<ServerIdentity, Error> {
        let deadline = Instant::now() + self.options.timeout;
        let (lease, fresh) = match timeout_at(deadline, self.pool.checkout(deadline)).await {
            Ok(r) => r.map_err(|e| e.with_context(ctx))?,
            Err(_) => return Err(self.timeout_error("connecting").with_context(ctx)),
        };
        if let Some(probe) = &fresh {
            self.observe(probe);
        }
        let identity = lease.conn.as_ref().map(|c| c.identity).ok_or_else(|| {
            Error::internal("classic lease without a connection").with_context(ctx)
        })?;
        lease.release();
        Ok(identity)
    }

    /// Runs `req` as classic commands on one of the pool's connections. Bounded by
    /// `options.timeout` overall; the same contract as [`super::Server::execute`]
    /// (`expect_identity`, `idempotent`, error kinds).
    pub(crate) async fn execute(
        &self,
        ctx: &Context,
        req: Request,
        idempotent: bool,
        expect_identity: Option<ServerIdentity>,
    ) -> Result<Executed, Error> {
        if let Request::Set { data, .. } = &req
            && data.len() > self.options.max_value
        {
            return Err(Error::bad_request(
                VALUE_TOO_LARGE,
                format!(
                    "value of {} bytes is larger than options.max_value ({} bytes)",
                    data.len(),
                    self.options.max_value
                ),
            )
            .with_context(ctx));
        }
        if let Some(key) = req.key()
            && !key.is_safe()
        {
            return Err(Error::bad_request(
                codes::BAD_KEY,
                "key is empty, longer than 250 bytes, or contains whitespace or control characters",
            )
            .with_context(ctx));
        }
        let deadline = Instant::now() + self.options.timeout;
        let mut attempt = 0u32;
        loop {
            let err = match self.attempt(&req, expect_identity, deadline).await {
                Ok(executed) => {
                    self.health.record_success();
                    return Ok(executed);
                }
                Err(err) => err,
            };
            self.health.record_outcome(&err);
            let repeatable = match err.code() {
                codes::SERVER_DOWN | codes::SERVER_RESTARTED => false,
                _ if idempotent => err.is_retryable() || err.kind() == ErrorKind::OutcomeUnknown,
                _ => err.kind() == ErrorKind::Connection,
            };
            if !repeatable || attempt >= self.options.retries || Instant::now() >= deadline {
                return Err(err.with_context(ctx));
            }
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        req: &Request,
        expect_identity: Option<ServerIdentity>,
        deadline: Instant,
    ) -> Result<Executed, Error> {
        self.health.check_up()?;
        if matches!(req, Request::Stats) {
            return self.fresh_stats(expect_identity, deadline).await;
        }
        let (mut lease, fresh) = match timeout_at(deadline, self.pool.checkout(deadline)).await {
            Ok(r) => r?,
            Err(_) => return Err(self.timeout_error("waiting for a connection")),
        };
        if let Some(probe) = &fresh {
            self.observe(probe);
        }
        let identity = lease.conn()?.identity;
        if let Some(expected) = expect_identity
            && expected != identity
        {
            lease.release();
            return Err(restarted(&self.address, expected, identity));
        }
        let conn = lease.conn()?;
        let before = conn.written();
        let outcome = timeout_at(deadline, run(conn, req)).await;
        let sent = lease.conn().map(|c| c.written() != before).unwrap_or(true);
        match outcome {
            Ok(Ok(reply)) => {
                lease.release();
                Ok(Executed { reply, identity })
            }
            Ok(Err(failure)) => {
                // The connection may hold part of a reply: `lease` is dropped, not released.
                drop(lease);
                Err(self.failure_error(failure, req, sent))
            }
            Err(_) => {
                drop(lease);
                if sent {
                    Err(Error::new(
                        ErrorKind::OutcomeUnknown,
                        codes::OUTCOME_UNKNOWN,
                        format!(
                            "{} to memcached at {} was sent but no reply came within {:?}: it may or may not have taken effect",
                            command_name(req),
                            self.address,
                            self.options.timeout
                        ),
                    )
                    .with_detail("server", &self.address)
                    .with_retryable(false))
                } else {
                    Err(self.timeout_error("sending"))
                }
            }
        }
    }

    /// `Stats`: memcache-async has no `stats`, so a fresh connection is opened and probed; it
    /// then joins the pool.
    async fn fresh_stats(
        &self,
        expect_identity: Option<ServerIdentity>,
        deadline: Instant,
    ) -> Result<Executed, Error> {
        let generation = self.pool.generation.load(Ordering::Acquire);
        let opened = timeout_at(
            deadline,
            open_conn(
                &self.address,
                &self.options,
                deadline,
                &self.pool.live,
                generation,
            ),
        )
        .await;
        let (conn, probe) = match opened {
            Ok(r) => r?,
            Err(_) => return Err(self.timeout_error("connecting")),
        };
        self.observe(&probe);
        let identity = probe.identity;
        self.pool.take_back(conn);
        if let Some(expected) = expect_identity
            && expected != identity
        {
            return Err(restarted(&self.address, expected, identity));
        }
        Ok(Executed {
            reply: Reply::Stats(probe.stats),
            identity,
        })
    }

    fn failure_error(&self, failure: Failure, req: &Request, sent: bool) -> Error {
        let address = &*self.address;
        let command = command_name(req);
        match failure {
            Failure::AfterStore(inner) => Error::new(
                ErrorKind::OutcomeUnknown,
                codes::OUTCOME_UNKNOWN,
                format!(
                    "{command} to memcached at {address}: the value was stored but reading it back failed ({}); the lock may be held",
                    self.failure_error(*inner, req, sent).message()
                ),
            )
            .with_detail("server", address)
            .with_retryable(false),
            Failure::Server(line) => reply_error(address, &line, command),
            Failure::Unexpected(line) => protocol_error(
                address,
                &format!("unexpected reply {:?} to {command}", truncate(&line, 64)),
            ),
            Failure::Io(e) if e.kind() == io::ErrorKind::InvalidData => {
                protocol_error(address, &format!("bad reply to {command}: {e}")).with_source(e)
            }
            Failure::Io(e) if sent => Error::new(
                ErrorKind::OutcomeUnknown,
                codes::OUTCOME_UNKNOWN,
                format!(
                    "{command} to memcached at {address} was sent but no reply came ({e}): it may or may not have taken effect"
                ),
            )
            .with_detail("server", address)
            .with_retryable(false)
            .with_source(e),
            Failure::Io(e) => connection_error(
                address,
                format!("{command} to memcached at {address} not sent: {e}"),
            )
            .with_source(e),
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The key as text (memcache-async takes `Display` keys for `add`/`cas`). Keys are checked
/// printable ASCII before this point.
fn key_text(key: &[u8]) -> Result<&str, Failure> {
    std::str::from_utf8(key).map_err(|_| Failure::Unexpected("a key that is not UTF-8".into()))
}

/// After a store: `gets` the key and return its CAS if the value is `data` (ours).
async fn confirm(conn: &mut ClassicConn, key: &[u8], data: &[u8]) -> Result<Option<u64>, Failure> {
    match conn.proto.gets_cas(key).await {
        Ok((value, cas)) if value == data => Ok(Some(cas)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::from_io(e)),
    }
}

/// One request as classic commands on `conn`.
async fn run(conn: &mut ClassicConn, req: &Request) -> Result<Reply, Failure> {
    let hd = |cas: Option<u64>| {
        Reply::Hd(MetaFlags {
            cas,
            ..MetaFlags::default()
        })
    };
    match req {
        Request::Set {
            key,
            data,
            mode: SetMode::Add,
            ttl_secs,
        } => {
            let text = key_text(key.as_bytes())?;
            match conn.proto.add(text, data, *ttl_secs).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Ok(Reply::Ns(MetaFlags::default()));
                }
                Err(e) => return Err(Failure::from_io(e)),
            }
            // memcache-async reports every reply but NOT_STORED and error lines as stored:
            // success is only reported when the item really holds our value.
            match confirm(conn, key.as_bytes(), data).await {
                Ok(Some(cas)) => Ok(hd(Some(cas))),
                // Our item is already gone and someone else's (or nothing) is there.
                Ok(None) => Ok(Reply::Ns(MetaFlags::default())),
                Err(f) => Err(Failure::AfterStore(Box::new(f))),
            }
        }
        Request::Set {
            key,
            data,
            mode: SetMode::Cas(cas),
            ttl_secs,
        } => {
            let text = key_text(key.as_bytes())?;
            match conn.proto.cas(text, data, *cas, *ttl_secs).await {
                Ok(true) => match confirm(conn, key.as_bytes(), data).await {
                    Ok(Some(new_cas)) => Ok(hd(Some(new_cas))),
                    Ok(None) => Ok(Reply::Nf(MetaFlags::default())),
                    Err(f) => Err(Failure::AfterStore(Box::new(f))),
                },
                Ok(false) => Ok(Reply::Ex(MetaFlags::default())),
                Err(e) if Failure::is_not_found(&e) => Ok(Reply::Nf(MetaFlags::default())),
                Err(e) => Err(Failure::from_io(e)),
            }
        }
        Request::Delete { key, cas } => {
            let text = key_text(key.as_bytes())?;
            // Store an empty, already-expired item, only if the CAS still matches.
            match conn.proto.cas(text, b"", *cas, PAST_EXPIRY).await {
                Ok(true) => Ok(hd(None)),
                Ok(false) => Ok(Reply::Ex(MetaFlags::default())),
                Err(e) if Failure::is_not_found(&e) => Ok(Reply::Nf(MetaFlags::default())),
                Err(e) => Err(Failure::from_io(e)),
            }
        }
        Request::Get { key } => match conn.proto.gets_cas(key.as_bytes()).await {
            Ok((data, cas)) => Ok(Reply::Va {
                data,
                flags: MetaFlags {
                    cas: Some(cas),
                    ..MetaFlags::default()
                },
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Reply::En),
            Err(e) => Err(Failure::from_io(e)),
        },
        Request::Version => conn
            .proto
            .version()
            .await
            .map(Reply::Version)
            .map_err(Failure::from_io),
        // Handled by `fresh_stats`; `mn` has no classic counterpart.
        Request::Stats | Request::Noop => Err(Failure::Unexpected(format!(
            "{} cannot be sent on a classic connection",
            command_name(req)
        ))),
    }
}

#[cfg(test)]
mod tests;
