//! A fault-injecting TCP proxy for tests: delay, stall, reset, refuse and rewrite traffic
//! between a client and a real server.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A function that rewrites server-to-client bytes (see [`FaultProxy::set_reply_rewriter`]).
pub type ReplyRewriter = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// Chunks buffered per direction before the proxy stops reading (backpressure while stalled).
const CHUNKS_IN_FLIGHT: usize = 64;
const READ_BUFFER: usize = 16 * 1024;

/// State shared by the handle and every proxy task.
struct Shared {
    target: SocketAddr,
    delay_nanos: AtomicU64,
    drop_new: AtomicBool,
    rewriter: Mutex<Option<ReplyRewriter>>,
    /// `true` while stalled; writers wait for `false` before each chunk.
    stalled: watch::Sender<bool>,
    /// Bumped by `reset_all`; each connection resets when it changes.
    reset_generation: watch::Sender<u64>,
    /// `true` once the proxy shuts down.
    shutdown: watch::Sender<bool>,
    live: AtomicUsize,
}

impl Shared {
    fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay_nanos.load(Ordering::Relaxed))
    }

    fn rewriter(&self) -> Option<ReplyRewriter> {
        self.rewriter.lock().ok().and_then(|r| r.clone())
    }
}

/// Counts a proxied connection for as long as its task lives.
struct LiveGuard(Arc<Shared>);

impl LiveGuard {
    fn new(shared: Arc<Shared>) -> Self {
        shared.live.fetch_add(1, Ordering::SeqCst);
        LiveGuard(shared)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A tokio TCP proxy on `127.0.0.1:<free port>` in front of a target server, with faults
/// switched on and off while traffic flows.
///
/// Each accepted connection gets its own connection to the target and one task that pumps
/// both directions. Faults:
/// - [`set_delay`](Self::set_delay): server-to-client data is delivered `d` after it was read
///   (added latency; order is kept);
/// - [`stall`](Self::stall) / [`unstall`](Self::unstall): nothing is forwarded in either
///   direction, the bytes are held (not lost) and delivered on `unstall`;
/// - [`reset_all`](Self::reset_all): every live connection is aborted with RST on both sides;
/// - [`drop_new_connections`](Self::drop_new_connections): new clients are accepted and closed;
/// - [`set_reply_rewriter`](Self::set_reply_rewriter): server-to-client bytes are rewritten.
///
/// The proxy's tasks run on the tokio runtime that called [`start`](Self::start), so a test
/// that talks through the proxy with *blocking* sockets needs a multi-threaded runtime.
/// Dropping the proxy (or [`shutdown`](Self::shutdown)) stops accepting and closes every
/// connection.
///
/// ```
/// use std::time::Duration;
/// use memcached_testkit::{FaultProxy, MemcachedServer};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = MemcachedServer::start()?;
/// let proxy = FaultProxy::start(server.socket_addr()).await?;
/// // point the client under test at proxy.address() instead of server.address()
/// proxy.set_delay(Duration::from_millis(50));
/// proxy.stall();
/// proxy.unstall();
/// proxy.reset_all();
/// # Ok(())
/// # }
/// ```
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("address", &self.addr)
            .field("target", &self.shared.target)
            .field("delay", &self.shared.delay())
            .field("stalled", &*self.shared.stalled.borrow())
            .field(
                "drop_new_connections",
                &self.shared.drop_new.load(Ordering::Relaxed),
            )
            .field("connections", &self.connection_count())
            .finish()
    }
}

impl FaultProxy {
    /// Binds `127.0.0.1:0` and starts forwarding every accepted connection to `target`.
    /// Must be called inside a tokio runtime.
    pub async fn start(target: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            delay_nanos: AtomicU64::new(0),
            drop_new: AtomicBool::new(false),
            rewriter: Mutex::new(None),
            stalled: watch::Sender::new(false),
            reset_generation: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
            live: AtomicUsize::new(0),
        });
        tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(FaultProxy { addr, shared })
    }

    /// `"127.0.0.1:<port>"`: where clients under test should connect.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The proxy's socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// Delays server-to-client data: each chunk is delivered `d` after the proxy read it.
    /// `Duration::ZERO` switches the delay off. Applies to chunks read from now on.
    pub fn set_delay(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.shared.delay_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Stops forwarding in both directions. Bytes keep being read (up to a bound) and are
    /// held, not lost, until [`unstall`](Self::unstall).
    pub fn stall(&self) {
        self.shared.stalled.send_replace(true);
    }

    /// Resumes forwarding; held bytes are delivered in order.
    pub fn unstall(&self) {
        self.shared.stalled.send_replace(false);
    }

    /// Aborts every connection the proxy has accepted so far with RST (`SO_LINGER` 0) on
    /// both the client and the server side. Later connections are not affected. A client
    /// connection still in the listen backlog is not yet accepted; wait for
    /// [`connection_count`](Self::connection_count) when that matters.
    pub fn reset_all(&self) {
        self.shared
            .reset_generation
            .send_modify(|g| *g = g.wrapping_add(1));
    }

    /// While `yes`, new connections are accepted and closed at once (the client sees EOF),
    /// without contacting the server. Existing connections are not affected.
    pub fn drop_new_connections(&self, yes: bool) {
        self.shared.drop_new.store(yes, Ordering::SeqCst);
    }

    /// Installs (or with `None` removes) a function applied to server-to-client bytes.
    ///
    /// The rewriter sees each chunk as it was read from the server socket, not whole replies:
    /// a reply may be split across chunks and several replies may share one. Small replies to
    /// one request at a time (like `version`) arrive in one chunk in practice.
    ///
    /// ```
    /// use std::sync::Arc;
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = memcached_testkit::MemcachedServer::start()?;
    /// let proxy = memcached_testkit::FaultProxy::start(server.socket_addr()).await?;
    /// proxy.set_reply_rewriter(Some(Arc::new(|chunk: &[u8]| {
    ///     String::from_utf8_lossy(chunk)
    ///         .replace("VERSION 1.6.18", "VERSION 1.5.22")
    ///         .into_bytes()
    /// })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_reply_rewriter(&self, f: Option<ReplyRewriter>) {
        if let Ok(mut slot) = self.shared.rewriter.lock() {
            *slot = f;
        }
    }

    /// How many client connections are currently being proxied.
    pub fn connection_count(&self) -> usize {
        self.shared.live.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes every connection (normal close). Also done on drop.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of descriptors or an aborted handshake: back off briefly, keep serving.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shared.drop_new.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        // Subscribing here, before the task runs, means a reset_all issued after this accept
        // reaches the connection even if its task has not started yet.
        let reset = shared.reset_generation.subscribe();
        let guard = LiveGuard::new(Arc::clone(&shared));
        tokio::spawn(serve_connection(client, reset, guard));
    }
}

enum Ending {
    Closed,
    Reset,
}

async fn serve_connection(
    mut client: TcpStream,
    mut reset: watch::Receiver<u64>,
    guard: LiveGuard,
) {
    let shared = Arc::clone(&guard.0);
    let mut shutdown = shared.shutdown.subscribe();
    let connected = tokio::select! {
        server = TcpStream::connect(shared.target) => server.ok(),
        _ = reset.changed() => {
            let _ = client.set_zero_linger();
            return;
        }
        _ = shutdown.wait_for(|stop| *stop) => return,
    };
    let Some(mut server) = connected else {
        return; // target down: the client sees its connection closed
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);

    let ending = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let to_server = pump(client_read, server_write, &shared, false);
        let to_client = pump(server_read, client_write, &shared, true);
        tokio::select! {
            _ = async { tokio::try_join!(to_server, to_client) } => Ending::Closed,
            _ = reset.changed() => Ending::Reset,
            _ = shutdown.wait_for(|stop| *stop) => Ending::Closed,
        }
    };
    if let Ending::Reset = ending {
        // SO_LINGER 0 turns the close below into an RST. (`set_linger` is deprecated in
        // tokio because a non-zero linger blocks on drop; a zero linger never blocks.)
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
    drop(client);
    drop(server);
    drop(guard);
}

/// Forwards one direction: a reader stage timestamps chunks (and rewrites replies), a writer
/// stage delivers each when due and while not stalled. EOF is passed on as a write shutdown.
async fn pump<R, W>(
    mut reader: R,
    mut writer: W,
    shared: &Shared,
    to_client: bool,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(CHUNKS_IN_FLIGHT);
    let read_stage = async move {
        let mut buf = vec![0u8; READ_BUFFER];
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), io::Error>(()); // dropping tx tells the writer
            }
            let mut chunk = buf[..n].to_vec();
            let mut due = Instant::now();
            if to_client {
                if let Some(rewrite) = shared.rewriter() {
                    chunk = rewrite(&chunk);
                }
                // A delay too large for the clock means "never", as far as a test can tell.
                let far = Duration::from_secs(100 * 365 * 24 * 3600);
                due = due.checked_add(shared.delay()).unwrap_or_else(|| due + far);
            }
            if tx.send((due, chunk)).await.is_err() {
                return Ok(());
            }
        }
    };
    let write_stage = async {
        let mut stalled = shared.stalled.subscribe();
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            // The sender lives in `shared`, so this only returns once unstalled.
            let _ = stalled.wait_for(|s| !*s).await;
            writer.write_all(&chunk).await?;
        }
        let _ = writer.shutdown().await;
        Ok::<(), io::Error>(())
    };
    tokio::try_join!(read_stage, write_stage).map(|_| ())
}
