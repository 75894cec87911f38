//! A real `memcached` process on a free loopback port, killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::TestkitError;

const HOST: &str = "127.0.0.1";
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_MEMORY_MB: u32 = 64;
const DEFAULT_THREADS: u32 = 1;
const MAX_CONNECTIONS: u32 = 1024;
/// How many fresh ports `start` tries when memcached exits because its port was taken.
const FREE_PORT_ATTEMPTS: usize = 5;
/// How much of memcached's stderr is kept (the tail is what explains a failure).
const MAX_STDERR: usize = 64 * 1024;
/// Timeout for each blocking step of a `stats`/`version` exchange.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a `memcached` binary can be found (`MEMCACHED_BIN`, `PATH`, `/usr/bin`, ...).
///
/// ```
/// if !memcached_testkit::memcached_available() {
///     eprintln!("skipping: memcached is not installed");
/// }
/// ```
pub fn memcached_available() -> bool {
    find_memcached().is_ok()
}

/// Locates the memcached binary: `MEMCACHED_BIN` if set, then each `PATH` entry, then the
/// usual system locations.
pub(crate) fn find_memcached() -> Result<PathBuf, TestkitError> {
    let mut searched = Vec::new();
    if let Some(bin) = std::env::var_os("MEMCACHED_BIN").filter(|b| !b.is_empty()) {
        let path = PathBuf::from(bin);
        if is_executable(&path) {
            return Ok(path);
        }
        searched.push(format!("MEMCACHED_BIN={}", path.display()));
    }
    if let Some(path_var) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path_var) {
            let candidate = dir.join("memcached");
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
        searched.push("$PATH".to_string());
    }
    for fixed in [
        "/usr/bin/memcached",
        "/usr/local/bin/memcached",
        "/usr/sbin/memcached",
    ] {
        let candidate = PathBuf::from(fixed);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        searched.push(fixed.to_string());
    }
    Err(TestkitError::not_installed(searched.join(", ")))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// memcached refuses to run as root without `-u`; detect root without `unsafe`
/// (`/proc/self/status` lists real, effective, saved and filesystem uids).
fn running_as_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            if let Some(line) = status.lines().find(|l| l.starts_with("Uid:")) {
                return line
                    .split_whitespace()
                    .skip(1)
                    .take(2)
                    .any(|uid| uid == "0");
            }
        }
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    })
}

/// Binds port 0 on loopback, reads the port the kernel chose and releases it.
/// Another process may grab it before memcached does; callers retry.
fn free_loopback_port() -> Result<u16, TestkitError> {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Options for a [`MemcachedServer`]; created by [`MemcachedServer::builder`].
///
/// Defaults: `-l 127.0.0.1 -p <free port> -U 0 -t 1 -m 64 -c 1024` (plus `-u root` when the
/// tests run as root). Extra arguments from [`arg`](Self::arg) come last, so they override.
///
/// ```
/// use memcached_testkit::MemcachedServer;
///
/// // A tiny server that evicts early, with CAS disabled.
/// let server = MemcachedServer::builder().memory_mb(2).threads(2).arg("-C").start()?;
/// println!("listening on {}", server.address());
/// # Ok::<(), memcached_testkit::TestkitError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    port: Option<u16>,
    memory_mb: u32,
    threads: u32,
    extra: Vec<String>,
    ready_timeout: Duration,
    auth: Option<(String, String)>,
    plain_listener: bool,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            port: None,
            memory_mb: DEFAULT_MEMORY_MB,
            threads: DEFAULT_THREADS,
            extra: Vec::new(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            auth: None,
            plain_listener: false,
        }
    }
}

impl ServerBuilder {
    /// Appends one extra command-line argument (for example `"-C"` to disable CAS, or
    /// `"-vv"`). Call it once per argument: `.arg("-o").arg("modern")`.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.extra.push(a.into());
        self
    }

    /// Item memory in megabytes (`-m`, default 64). memcached refuses less than twice its
    /// item size limit (1 MiB by default), so the smallest value that starts without
    /// `-I` is 2; for an even smaller cache add e.g. `.arg("-I").arg("256k")`.
    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }

    /// Worker threads (`-t`, default 1).
    pub fn threads(mut self, n: u32) -> Self {
        self.threads = n;
        self
    }

    /// A fixed port instead of a free one chosen by the kernel.
    pub fn port(mut self, p: u16) -> Self {
        self.port = Some(p);
        self
    }

    /// Requires ASCII authentication (`-Y`) with this one user: the auth file is written to
    /// the temporary directory, and the testkit's own `version`/`stats` exchanges
    /// authenticate first.
    pub fn auth(mut self, username: &str, password: &str) -> Self {
        self.auth = Some((username.to_string(), password.to_string()));
        self
    }

    /// Adds a second listener on another free loopback port that stays plaintext
    /// (`-l notls:127.0.0.1:<port>`), and uses it for the readiness probe and
    /// [`MemcachedServer::stats`]: with `-Z` (TLS) the main port speaks TLS only.
    ///
    /// ```no_run
    /// use memcached_testkit::MemcachedServer;
    ///
    /// let server = MemcachedServer::builder()
    ///     .plain_listener()
    ///     .arg("-Z")
    ///     .arg("-o")
    ///     .arg("ssl_chain_cert=/tmp/server.crt,ssl_key=/tmp/server.key")
    ///     .start()?;
    /// assert!(server.plain_port().is_some());
    /// # Ok::<(), memcached_testkit::TestkitError>(())
    /// ```
    pub fn plain_listener(mut self) -> Self {
        self.plain_listener = true;
        self
    }

    /// How long to wait for the new process to answer (default 5 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Spawns the server and waits until it answers `version` and reports its own pid in
    /// `stats` (so a server of someone else that holds the same port is never mistaken for it).
    pub fn start(self) -> Result<MemcachedServer, TestkitError> {
        let binary = find_memcached()?;
        let mut args = vec![
            "-l".to_string(),
            HOST.to_string(),
            "-U".to_string(),
            "0".to_string(),
            "-t".to_string(),
            self.threads.to_string(),
            "-m".to_string(),
            self.memory_mb.to_string(),
            "-c".to_string(),
            MAX_CONNECTIONS.to_string(),
        ];
        let user_given = self
            .extra
            .iter()
            .any(|a| a == "-u" || a.starts_with("--user") || (a.starts_with("-u") && a.len() > 2));
        if running_as_root() && !user_given {
            args.push("-u".to_string());
            args.push("root".to_string());
        }
        if let Some((user, password)) = &self.auth {
            static FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let file = std::env::temp_dir().join(format!(
                "memcached-testkit-auth-{}-{n}.txt",
                std::process::id()
            ));
            std::fs::write(&file, format!("{user}:{password}\n"))?;
            args.push("-Y".to_string());
            args.push(file.display().to_string());
        }
        args.extend(self.extra);

        let mut server = MemcachedServer {
            binary,
            args,
            port: self.port.unwrap_or(0),
            plain_port: self.plain_listener.then_some(0),
            pid: 0,
            child: None,
            stderr: Arc::new(Mutex::new(Vec::new())),
            ready_timeout: self.ready_timeout,
            auth: self.auth,
        };
        match self.port {
            Some(_) => server.spawn_on_fixed_port()?,
            None => server.spawn_on_free_port()?,
        }
        Ok(server)
    }
}

/// A `memcached` process spawned for a test on a loopback port.
///
/// Dropping it kills (SIGKILL) and reaps the process; several can run at once.
///
/// ```
/// use memcached_testkit::MemcachedServer;
///
/// let mut server = MemcachedServer::start()?;
/// let before = server.pid();
/// server.restart()?; // same port, new process
/// assert_ne!(before, server.pid());
/// let stats = server.stats()?;
/// assert!(stats.iter().any(|(k, _)| k == "uptime"));
/// # Ok::<(), memcached_testkit::TestkitError>(())
/// ```
pub struct MemcachedServer {
    binary: PathBuf,
    /// Every argument except `-p <port>`.
    args: Vec<String>,
    port: u16,
    /// The plaintext side listener's port ([`ServerBuilder::plain_listener`]).
    plain_port: Option<u16>,
    pid: u32,
    /// `Some` while the process has not been reaped by us, so its pid cannot be reused and
    /// signalling it is safe.
    child: Option<Child>,
    /// The one user of a server started with `-Y`.
    auth: Option<(String, String)>,
    stderr: Arc<Mutex<Vec<u8>>>,
    ready_timeout: Duration,
}

impl std::fmt::Debug for MemcachedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemcachedServer")
            .field("address", &self.address())
            .field("pid", &self.pid)
            .field("spawned", &self.child.is_some())
            .field("binary", &self.binary)
            .field("args", &self.args)
            .finish()
    }
}

/// Why one spawn attempt failed.
enum AttemptError {
    /// The process exited before answering; `port_in_use` says whether its stderr blames the
    /// port (then another attempt may succeed).
    Exited {
        message: String,
        port_in_use: bool,
    },
    Fatal(TestkitError),
}

impl MemcachedServer {
    /// Starts a server with the default flags on a free loopback port.
    ///
    /// ```
    /// let server = memcached_testkit::MemcachedServer::start()?;
    /// assert_eq!(server.host(), "127.0.0.1");
    /// # Ok::<(), memcached_testkit::TestkitError>(())
    /// ```
    pub fn start() -> Result<MemcachedServer, TestkitError> {
        ServerBuilder::default().start()
    }

    /// A builder for non-default flags.
    ///
    /// ```
    /// let server = memcached_testkit::MemcachedServer::builder().memory_mb(2).start()?;
    /// # Ok::<(), memcached_testkit::TestkitError>(())
    /// ```
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The TCP port the server listens on (kept across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Always `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The port of the plaintext side listener, when the builder asked for one
    /// ([`ServerBuilder::plain_listener`]).
    pub fn plain_port(&self) -> Option<u16> {
        self.plain_port
    }

    /// Where the probe and `stats` go: the plaintext side listener if any, else the port.
    fn control_addr(&self) -> SocketAddr {
        let port = self.plain_port.unwrap_or(self.port);
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
    }

    /// `"127.0.0.1:<port>"`.
    pub fn address(&self) -> String {
        format!("{HOST}:{}", self.port)
    }

    /// The server's socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// The pid of the current (or last) process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process is still alive (a paused process is alive).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) => {
                // Reaped now: forget it so its pid is never signalled again.
                self.child = None;
                false
            }
            Some(Err(_)) | None => false,
        }
    }

    /// Kills the process with SIGKILL and reaps it. Idempotent; works on a paused process.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process and starts a new one with the same flags on the same port, waiting
    /// until it answers. Retries while the port is still held (up to the ready timeout).
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.stop();
        self.spawn_on_fixed_port()
    }

    /// Freezes the process (SIGSTOP): connections stay open but nothing is answered.
    /// Waits until the kernel reports the process as stopped. Errors are ignored (use
    /// [`try_pause`](Self::try_pause) to see them); nothing happens after [`stop`](Self::stop).
    pub fn pause(&self) {
        let _ = self.try_pause();
    }

    /// Lets a paused process run again (SIGCONT). Errors are ignored (see
    /// [`try_resume`](Self::try_resume)).
    pub fn resume(&self) {
        let _ = self.try_resume();
    }

    /// [`pause`](Self::pause) with its error.
    pub fn try_pause(&self) -> Result<(), TestkitError> {
        self.signal("-STOP")?;
        self.wait_for_state(true);
        Ok(())
    }

    /// [`resume`](Self::resume) with its error.
    pub fn try_resume(&self) -> Result<(), TestkitError> {
        self.signal("-CONT")?;
        self.wait_for_state(false);
        Ok(())
    }

    /// Runs `stats` over a blocking connection (2 s timeouts) and returns the `STAT` pairs
    /// in order, for example `("pid", "1234")`.
    pub fn stats(&self) -> Result<Vec<(String, String)>, TestkitError> {
        stats_at(self.control_addr(), IO_TIMEOUT, self.auth.as_ref())
    }

    /// What memcached wrote to stderr so far for the current process (the last 64 KiB).
    pub fn stderr_output(&self) -> String {
        stderr_text(&self.stderr)
    }

    fn signal(&self, which: &str) -> Result<(), TestkitError> {
        if self.child.is_none() {
            return Err(TestkitError::Spawn(format!(
                "process {} is not running (stopped or exited)",
                self.pid
            )));
        }
        let status = Command::new("kill")
            .arg(which)
            .arg(self.pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(TestkitError::Io(std::io::Error::other(format!(
                "`kill {which} {}` failed: {status}",
                self.pid
            ))))
        }
    }

    /// Polls `/proc/<pid>/stat` (up to 1 s) until the process is (or is no longer) stopped,
    /// so a test that pauses a server can rely on it being frozen at once.
    fn wait_for_state(&self, stopped: bool) {
        let deadline = Instant::now() + Duration::from_secs(1);
        let path = format!("/proc/{}/stat", self.pid);
        while Instant::now() < deadline {
            let Ok(stat) = std::fs::read_to_string(&path) else {
                return; // no procfs, or gone: nothing to wait for
            };
            // The state follows the parenthesised command name: "pid (comm) S ...".
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            match state {
                Some(s) if (s == "T" || s == "t") == stopped => return,
                Some(_) => std::thread::sleep(Duration::from_millis(2)),
                None => return,
            }
        }
    }

    fn spawn_on_free_port(&mut self) -> Result<(), TestkitError> {
        let mut last = String::new();
        for _ in 0..FREE_PORT_ATTEMPTS {
            self.port = free_loopback_port()?;
            if self.plain_port.is_some() {
                self.plain_port = Some(free_loopback_port()?);
            }
            match self.spawn_once() {
                Ok(()) => return Ok(()),
                Err(AttemptError::Exited {
                    message,
                    port_in_use: true,
                }) => last = message,
                Err(AttemptError::Exited { message, .. }) => {
                    return Err(TestkitError::Spawn(message));
                }
                Err(AttemptError::Fatal(e)) => return Err(e),
            }
        }
        Err(TestkitError::Spawn(format!(
            "no free port after {FREE_PORT_ATTEMPTS} attempts; last: {last}"
        )))
    }

    fn spawn_on_fixed_port(&mut self) -> Result<(), TestkitError> {
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            match self.spawn_once() {
                Ok(()) => return Ok(()),
                Err(AttemptError::Exited {
                    message,
                    port_in_use: true,
                }) => {
                    if Instant::now() >= deadline {
                        return Err(TestkitError::Spawn(format!(
                            "port {} still in use after {:?}: {message}",
                            self.port, self.ready_timeout
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(AttemptError::Exited { message, .. }) => {
                    return Err(TestkitError::Spawn(message));
                }
                Err(AttemptError::Fatal(e)) => return Err(e),
            }
        }
    }

    /// One spawn on `self.port`, then wait until it answers or exits.
    fn spawn_once(&mut self) -> Result<(), AttemptError> {
        let mut command = Command::new(&self.binary);
        command
            .arg("-p")
            .arg(self.port.to_string())
            .args(&self.args);
        if let Some(plain) = self.plain_port {
            command.arg("-l").arg(format!("notls:{HOST}:{plain}"));
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                AttemptError::Fatal(TestkitError::Spawn(format!(
                    "{}: {e}",
                    self.binary.display()
                )))
            })?;
        let pid = child.id();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let drain = child
            .stderr
            .take()
            .map(|pipe| spawn_stderr_drain(pipe, Arc::clone(&stderr)));

        let addr = self.control_addr();
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    wait_drain(drain);
                    let text = stderr_text(&stderr);
                    let port_in_use = text.contains("in use") || text.contains("failed to listen");
                    return Err(AttemptError::Exited {
                        message: format!(
                            "memcached (port {}) exited with {status}; stderr: {}",
                            self.port,
                            text.trim()
                        ),
                        port_in_use,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(AttemptError::Fatal(e.into()));
                }
            }
            if probe(addr, pid, self.auth.as_ref()) {
                self.child = Some(child);
                self.pid = pid;
                self.stderr = stderr;
                return Ok(());
            }
            if started.elapsed() >= self.ready_timeout {
                let _ = child.kill();
                let _ = child.wait();
                wait_drain(drain);
                return Err(AttemptError::Fatal(TestkitError::NotReady(format!(
                    "memcached pid {pid} on port {} did not answer `version` within {:?}; \
                     stderr: {}",
                    self.port,
                    self.ready_timeout,
                    stderr_text(&stderr).trim()
                ))));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for MemcachedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Keeps reading the child's stderr so a chatty server (`-vv`) never blocks on a full pipe.
fn spawn_stderr_drain(
    mut pipe: std::process::ChildStderr,
    sink: Arc<Mutex<Vec<u8>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let Ok(mut out) = sink.lock() {
                        out.extend_from_slice(&buf[..n]);
                        if out.len() > MAX_STDERR {
                            let excess = out.len() - MAX_STDERR;
                            out.drain(..excess);
                        }
                    }
                }
            }
        }
    })
}

/// Gives the drain thread a moment to collect the last words of an exited process.
fn wait_drain(drain: Option<JoinHandle<()>>) {
    if let Some(handle) = drain {
        let deadline = Instant::now() + Duration::from_millis(500);
        while !handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if handle.is_finished() {
            let _ = handle.join();
        }
    }
}

fn stderr_text(buf: &Mutex<Vec<u8>>) -> String {
    buf.lock()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// True when the server at `addr` answers `version` and its `stats` report `pid`.
fn probe(addr: SocketAddr, pid: u32, auth: Option<&(String, String)>) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let attempt = || -> std::io::Result<bool> {
        stream.set_read_timeout(Some(Duration::from_millis(500)))?;
        stream.set_write_timeout(Some(Duration::from_millis(500)))?;
        let mut writer = &stream;
        let mut reader = BufReader::new(&stream);
        authenticate(&stream, &mut reader, auth)?;
        writer.write_all(b"version\r\n")?;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if !line.starts_with("VERSION ") {
            return Ok(false);
        }
        writer.write_all(b"stats\r\n")?;
        let stats = read_stats(&mut reader)?;
        Ok(stats
            .iter()
            .any(|(k, v)| k == "pid" && v.parse::<u32>() == Ok(pid)))
    };
    attempt().unwrap_or(false)
}

/// Blocking `stats` against any server.
pub(crate) fn stats_at(
    addr: SocketAddr,
    timeout: Duration,
    auth: Option<&(String, String)>,
) -> Result<Vec<(String, String)>, TestkitError> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut reader = BufReader::new(&stream);
    authenticate(&stream, &mut reader, auth)?;
    (&stream).write_all(b"stats\r\n")?;
    Ok(read_stats(&mut reader)?)
}

/// memcached's ASCII authentication on a fresh connection, when `auth` is given.
fn authenticate(
    stream: &TcpStream,
    reader: &mut impl BufRead,
    auth: Option<&(String, String)>,
) -> std::io::Result<()> {
    let Some((user, password)) = auth else {
        return Ok(());
    };
    let data = format!("{user} {password}");
    let mut writer = stream;
    writer.write_all(format!("set auth 0 0 {}\r\n{data}\r\n", data.len()).as_bytes())?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.trim_end() == "STORED" {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "authentication refused: {}",
            line.trim_end()
        )))
    }
}

/// Reads `STAT <name> <value>` lines up to `END`.
fn read_stats(reader: &mut impl BufRead) -> std::io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before END",
            ));
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed == "END" {
            return Ok(out);
        }
        match trimmed.strip_prefix("STAT ") {
            Some(rest) => {
                let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push((name.to_string(), value.to_string()));
            }
            None => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("unexpected reply to stats: {trimmed:?}"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_parser_reads_pairs_and_rejects_garbage() {
        let mut ok = &b"STAT pid 42\r\nSTAT version 1.6.18\r\nEND\r\n"[..];
        let stats = read_stats(&mut ok).unwrap();
        assert_eq!(
            stats,
            vec![
                ("pid".to_string(), "42".to_string()),
                ("version".to_string(), "1.6.18".to_string())
            ]
        );
        let mut bad = &b"STAT pid 42\r\nERROR\r\n"[..];
        assert_eq!(
            read_stats(&mut bad).unwrap_err().kind(),
            std::io::ErrorKind::InvalidData
        );
        let mut short = &b"STAT pid 42\r\n"[..];
        assert_eq!(
            read_stats(&mut short).unwrap_err().kind(),
            std::io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn not_installed_message_says_how_to_install() {
        let msg = TestkitError::not_installed("$PATH").to_string();
        assert!(msg.contains("apt-get install memcached"), "{msg}");
    }
}
