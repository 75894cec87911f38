//! The lock benchmark: a load generator that prints one JSON object per scenario, then a
//! summary table with the ratios the project targets (`seq / raw_seq >= 0.95`,
//! `parallel / raw_pipelined >= 0.8`).
//!
//! Scenarios (see `docs/benchmarks.md`):
//!
//! - `raw_seq`: one raw socket, `ms <k> 1 ME T10 c` then `md <k> C<cas>`, one at a time;
//! - `raw_pipelined`: the same pairs over `pool_size` raw sockets with as many pairs in
//!   flight as `parallel` has tasks (the ceiling for `parallel`);
//! - `raw_fenced`: `raw_pipelined` sending what the lock sends: each `ms` followed by the
//!   fencing counter's `ma <counter> N<expiry> J1 v t`, the `md` after both replies (three
//!   commands per pair instead of two);
//! - `raw_max`: 8 raw sockets x 256 pairs in flight;
//! - `raw_saturate`: the same shape with the leanest generator (nothing allocated per pair,
//!   one pair in 64 timed), and the server's CPU share over the window (`server_cpu`, from
//!   its `stats rusage_*`): the server's own ceiling;
//! - `seq`, `parallel`, `contended`: `MemcachedLock` (one task; 256 tasks on unique keys;
//!   16 tasks on one key with `acquire_lock`);
//! - `memory_seq`, `memory_parallel`, `memory_contended`: the same on `MemoryLock`;
//! - `quorum_seq`, `quorum_parallel`: `seq` and `parallel` with `options.mode=quorum` over
//!   three servers (`--quorum a,b,c`, or three the bench starts);
//! - `classic_seq`, `classic_parallel`: `seq` and `parallel` with `options.protocol=classic`
//!   (two round trips per acquire, one request in flight per connection);
//! - `held_memory`: the process's resident memory per held lease, over 100,000 leases held
//!   at once by one `MemcachedLock` (`BENCH_HELD_LEASES`); a JSON line of its own, measured
//!   before every other scenario (on a fresh heap);
//! - `tls_seq`, `tls_parallel`: `seq` and `parallel` over TLS (`connection.protocol=tls`) to a
//!   memcached started with `-Z` (`--tls HOST:PORT --tls-ca FILE`, or one the bench starts
//!   with certificates it makes).
//!
//! Usage (normally through `scripts/bench`):
//!
//! ```text
//! lock_bench --bench [--quick] [--multi-thread] [--server HOST:PORT] [--quorum HOST:PORT,...]
//!            [--tls HOST:PORT --tls-ca FILE] [--svg FILE] [--only a,b,c]
//! ```
//!
//! Without `--server` (or `BENCH_SERVER`) it starts its own memcached on a free loopback
//! port. Without `--bench` (as under `cargo test --benches`) it runs a quick smoke pass.
//!
//! Environment: `BENCH_SECS` (measured seconds per scenario, default 4; quick: 0.5),
//! `BENCH_ROUNDS` (the scenarios run interleaved in this many rounds, each measuring
//! `BENCH_SECS / BENCH_ROUNDS`; default 4, quick 1), `BENCH_WARMUP_SECS` (per scenario and
//! round, default 0.2; quick: 0.1), `BENCH_TASKS` (parallel tasks, 256),
//! `BENCH_CONTENDED_TASKS` (16), `BENCH_POOL_SIZE` (the lock's `options.pool_size`, 5),
//! `BENCH_RAW_MAX_CONNS` / `BENCH_RAW_MAX_DEPTH` (8 / 256), `BENCH_TRACING` (a `tracing`
//! filter such as `info`: installs a fmt subscriber at that level writing to nowhere, to
//! measure what the spans cost; unset: no subscriber, as in an application without one).

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use commons::{ConfigParams, Configurable, Context, Openable};
use lock_core::{Lock, MemoryLock};
use lock_memcached::MemcachedLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type BoxError = Box<dyn StdError + Send + Sync>;
type Res<T> = std::result::Result<T, BoxError>;

const TTL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Settings {
    quick: bool,
    multi_thread: bool,
    server: Option<String>,
    /// The servers of the quorum scenarios (`--quorum a,b,c`); started by the bench when
    /// absent.
    quorum: Option<Vec<String>>,
    /// The TLS server of the TLS scenarios and the CA file its certificate verifies with
    /// (`--tls HOST:PORT --tls-ca FILE`); started by the bench when absent.
    tls: Option<(String, String)>,
    /// Where to write the chart (`--svg PATH`), if anywhere.
    svg: Option<String>,
    only: Option<Vec<String>>,
    /// Measured time per scenario per round.
    secs: Duration,
    /// Warm-up time per scenario per round.
    warmup: Duration,
    rounds: u32,
    tasks: usize,
    contended_tasks: usize,
    pool_size: usize,
    raw_max_conns: usize,
    raw_max_depth: usize,
}

/// `name` from the environment, parsed and accepted by `ok`, else `default`; a value that is
/// there but unusable is an error naming it and saying what was expected.
fn env_parsed<T: std::str::FromStr>(
    name: &str,
    default: T,
    ok: fn(&T) -> bool,
    expected: &str,
) -> Res<T> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse::<T>()
            .ok()
            .filter(ok)
            .ok_or_else(|| format!("{name}={v:?} is not {expected}").into()),
        Err(_) => Ok(default),
    }
}

fn env_f64(name: &str, default: f64) -> Res<f64> {
    env_parsed(
        name,
        default,
        |x| x.is_finite() && *x >= 0.0,
        "a non-negative number",
    )
}

fn env_usize(name: &str, default: usize) -> Res<usize> {
    env_parsed(name, default, |x| *x > 0, "a positive integer")
}

impl Settings {
    fn from_args() -> Res<Settings> {
        let mut quick = false;
        let mut bench = false;
        let mut multi_thread = false;
        let mut server = std::env::var("BENCH_SERVER").ok().filter(|s| !s.is_empty());
        let mut quorum = std::env::var("BENCH_QUORUM")
            .ok()
            .filter(|s| !s.is_empty())
            .map(|s| s.split(',').map(str::to_string).collect::<Vec<_>>());
        let mut only = None;
        let mut tls_server = None;
        let mut svg = None;
        let mut tls_ca = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--bench" => bench = true,
                "--multi-thread" => multi_thread = true,
                "--server" => {
                    server = Some(args.next().ok_or("--server needs HOST:PORT")?);
                }
                "--quorum" => {
                    let list = args
                        .next()
                        .ok_or("--quorum needs HOST:PORT,HOST:PORT,...")?;
                    quorum = Some(list.split(',').map(|s| s.trim().to_string()).collect());
                }
                "--svg" => svg = Some(args.next().ok_or("--svg needs a file path")?),
                "--tls" => tls_server = Some(args.next().ok_or("--tls needs HOST:PORT")?),
                "--tls-ca" => tls_ca = Some(args.next().ok_or("--tls-ca needs a PEM file")?),
                "--only" => {
                    let list = args.next().ok_or("--only needs a comma-separated list")?;
                    only = Some(list.split(',').map(|s| s.trim().to_string()).collect());
                }
                "-h" | "--help" => {
                    println!(
                        "lock_bench --bench [--quick] [--multi-thread] [--server HOST:PORT] [--quorum HOST:PORT,...] [--tls HOST:PORT --tls-ca FILE] [--svg FILE] [--only a,b]"
                    );
                    std::process::exit(0);
                }
                // cargo passes filters and flags of its own; they do not apply here.
                _ => {}
            }
        }
        // `cargo test --benches` runs this binary without `--bench`: a smoke pass only.
        let quick = quick || !bench;
        let (secs, warmup, rounds) = if quick { (0.5, 0.1, 1) } else { (4.0, 0.2, 4) };
        let rounds = env_usize("BENCH_ROUNDS", rounds)? as u32;
        let secs = env_f64("BENCH_SECS", secs)? / f64::from(rounds);
        let tls = match (tls_server, tls_ca) {
            (Some(server), Some(ca)) => Some((server, ca)),
            (None, None) => None,
            _ => return Err("--tls and --tls-ca go together".into()),
        };
        Ok(Settings {
            svg,
            tls,
            quick,
            multi_thread: multi_thread
                || std::env::var("BENCH_RUNTIME").is_ok_and(|v| v == "multi"),
            server,
            quorum,
            only,
            secs: Duration::from_secs_f64(secs),
            warmup: Duration::from_secs_f64(env_f64("BENCH_WARMUP_SECS", warmup)?),
            rounds,
            tasks: env_usize("BENCH_TASKS", 256)?,
            contended_tasks: env_usize("BENCH_CONTENDED_TASKS", 16)?,
            pool_size: env_usize("BENCH_POOL_SIZE", 5)?,
            raw_max_conns: env_usize("BENCH_RAW_MAX_CONNS", 8)?,
            raw_max_depth: env_usize("BENCH_RAW_MAX_DEPTH", 256)?,
        })
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|list| list.iter().any(|s| s == scenario))
    }
}

/// Latency samples in nanoseconds.
#[derive(Debug, Default)]
struct Samples(Vec<u64>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    fn merge(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    /// (p50, p99) in microseconds.
    fn percentiles(&mut self) -> (f64, f64) {
        if self.0.is_empty() {
            return (0.0, 0.0);
        }
        self.0.sort_unstable();
        let at = |q: f64| {
            let i = ((self.0.len() as f64 - 1.0) * q).round() as usize;
            self.0[i.min(self.0.len() - 1)] as f64 / 1000.0
        };
        (at(0.50), at(0.99))
    }
}

/// One scenario's result.
#[derive(Debug)]
struct Outcome {
    scenario: &'static str,
    backend: &'static str,
    tasks: usize,
    conns: usize,
    in_flight: usize,
    ops: u64,
    elapsed: Duration,
    latency: Samples,
    handoff: Option<Samples>,
    errors: u64,
    /// The server's CPU time (seconds, from its `stats rusage_user` + `rusage_system`) over
    /// the measured windows, where measured.
    server_cpu: Option<f64>,
}

impl Outcome {
    /// Adds another round of the same scenario.
    fn absorb(&mut self, other: Outcome) {
        self.ops += other.ops;
        self.elapsed += other.elapsed;
        self.errors += other.errors;
        self.latency.merge(other.latency);
        if let (Some(a), Some(b)) = (self.handoff.as_mut(), other.handoff) {
            a.merge(b);
        }
        if let (Some(a), Some(b)) = (self.server_cpu.as_mut(), other.server_cpu) {
            *a += b;
        }
    }

    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn json(&mut self, runtime: &str) -> String {
        let (p50, p99) = self.latency.percentiles();
        let mut v = serde_json::json!({
            "scenario": self.scenario,
            "backend": self.backend,
            "runtime": runtime,
            "tasks": self.tasks,
            "conns": self.conns,
            "in_flight": self.in_flight,
            "ops": self.ops,
            "secs": round3(self.elapsed.as_secs_f64()),
            "errors": self.errors,
        });
        if let Some(h) = self.handoff.as_mut() {
            let (h50, h99) = h.percentiles();
            v["acquisitions_per_sec"] = round1(self.rate()).into();
            v["acquire_p50_us"] = round1(p50).into();
            v["acquire_p99_us"] = round1(p99).into();
            v["handoff_p50_us"] = round1(h50).into();
            v["handoff_p99_us"] = round1(h99).into();
        } else {
            v["pairs_per_sec"] = round1(self.rate()).into();
            v["p50_us"] = round1(p50).into();
            v["p99_us"] = round1(p99).into();
        }
        if let Some(cpu) = self.server_cpu {
            // A share of one core: 1.0 = the server's thread busy all the time.
            v["server_cpu"] = round3(cpu / self.elapsed.as_secs_f64().max(1e-9)).into();
        }
        v.to_string()
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Unique key names: `<prefix>:<run>:<worker>:<n>`, written into a reused buffer.
struct KeyGen {
    buf: String,
    base_len: usize,
    n: u64,
}

impl KeyGen {
    fn new(prefix: &str, run: u64, worker: usize) -> KeyGen {
        let mut buf = String::with_capacity(64);
        let _ = write!(buf, "{prefix}:{run:x}:{worker}:");
        KeyGen {
            base_len: buf.len(),
            buf,
            n: 0,
        }
    }

    fn next(&mut self) -> &str {
        self.buf.truncate(self.base_len);
        self.n += 1;
        let _ = write!(self.buf, "{}", self.n);
        &self.buf
    }
}

/// A per-process run id, so repeated runs against one server never reuse a key.
fn run_id() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 40) ^ SEQ.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------
// Raw sockets

/// A raw meta-protocol connection: requests written as given, reply lines read in order.
struct RawConn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    rpos: usize,
}

impl RawConn {
    async fn connect(server: &str) -> Res<RawConn> {
        let stream = TcpStream::connect(server).await?;
        stream.set_nodelay(true)?;
        Ok(RawConn {
            stream,
            rbuf: Vec::with_capacity(64 * 1024),
            rpos: 0,
        })
    }

    /// The next complete reply line (without `\r\n`), reading more when needed.
    async fn line(&mut self) -> Res<Vec<u8>> {
        loop {
            if let Some(nl) = self.rbuf[self.rpos..].iter().position(|&b| b == b'\n') {
                let end = self.rpos + nl;
                let line = self.rbuf[self.rpos..end.saturating_sub(1).max(self.rpos)].to_vec();
                self.rpos = end + 1;
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    /// Reads whatever is available (at least one byte) and appends it to the buffer.
    async fn fill(&mut self) -> Res<()> {
        if self.rpos > 0 {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        let n = self.stream.read_buf(&mut self.rbuf).await?;
        if n == 0 {
            return Err("memcached closed the connection".into());
        }
        Ok(())
    }

    /// A complete line already buffered, if any.
    fn buffered_line(&mut self) -> Option<&[u8]> {
        let nl = self.rbuf[self.rpos..].iter().position(|&b| b == b'\n')?;
        let start = self.rpos;
        let end = start + nl;
        self.rpos = end + 1;
        Some(&self.rbuf[start..end.saturating_sub(1).max(start)])
    }
}

/// The CAS of an `HD c<cas>` reply.
fn hd_cas(line: &[u8]) -> Res<u64> {
    let text = std::str::from_utf8(line)?;
    let mut tokens = text.split(' ');
    if tokens.next() != Some("HD") {
        return Err(format!("expected HD c<cas>, got {text:?}").into());
    }
    tokens
        .find_map(|t| t.strip_prefix('c'))
        .and_then(|c| c.parse().ok())
        .filter(|c| *c != 0)
        .ok_or_else(|| format!("no CAS in {text:?}").into())
}

fn push_ms(buf: &mut Vec<u8>, key: &str) {
    buf.extend_from_slice(b"ms ");
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(b" 1 ME T10 c\r\nx\r\n");
}

fn push_md(buf: &mut Vec<u8>, key: &[u8], cas: u64) {
    buf.extend_from_slice(b"md ");
    buf.extend_from_slice(key);
    let _ = write!(Fmt(buf), " C{cas}\r\n");
}

/// `fmt::Write` into a byte buffer.
struct Fmt<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Fmt<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The timing of a one-task scenario: an uncounted warm-up, then `secs` measured from the
/// moment the warm-up ended (not from when it was due), so a slow last warm-up operation
/// does not eat into the measured time.
struct Window {
    warm_end: Instant,
    secs: Duration,
    warming: bool,
    /// When the measured part began (the scenario's start while still warming up).
    start: Instant,
    end: Instant,
}

impl Window {
    fn new(s: &Settings) -> Window {
        let warm_end = Instant::now() + s.warmup;
        Window {
            warm_end,
            secs: s.secs,
            warming: !s.warmup.is_zero(),
            start: Instant::now(),
            end: warm_end + s.secs,
        }
    }

    /// Whether to run another operation; ends the warm-up when its time is up.
    fn go_on(&mut self) -> bool {
        let now = Instant::now();
        if self.warming && now >= self.warm_end {
            self.warming = false;
            self.start = now;
            self.end = now + self.secs;
        }
        self.warming || now < self.end
    }

    /// Whether the operation just done counts.
    fn measuring(&self) -> bool {
        !self.warming
    }
}

async fn raw_seq(s: &Settings, server: &str) -> Res<Outcome> {
    let mut conn = RawConn::connect(server).await?;
    let mut keys = KeyGen::new("raw_seq", run_id(), 0);
    let mut wbuf = Vec::with_capacity(256);
    let mut latency = Samples::default();
    let mut ops = 0u64;
    let mut window = Window::new(s);
    while window.go_on() {
        let key = keys.next().to_string();
        let t0 = Instant::now();
        wbuf.clear();
        push_ms(&mut wbuf, &key);
        conn.stream.write_all(&wbuf).await?;
        let cas = hd_cas(&conn.line().await?)?;
        wbuf.clear();
        push_md(&mut wbuf, key.as_bytes(), cas);
        conn.stream.write_all(&wbuf).await?;
        let reply = conn.line().await?;
        if reply != b"HD" {
            return Err(format!("md answered {:?}", String::from_utf8_lossy(&reply)).into());
        }
        if window.measuring() {
            latency.push(t0.elapsed());
            ops += 1;
        }
    }
    Ok(Outcome {
        scenario: "raw_seq",
        backend: "raw",
        tasks: 1,
        conns: 1,
        in_flight: 1,
        ops,
        elapsed: window.start.elapsed(),
        latency,
        handoff: None,
        errors: 0,
        server_cpu: None,
    })
}

/// One raw connection keeping `depth` pairs in flight until `end`; replies are parsed in
/// bulk and the follow-up requests of one read go out in one write.
/// What an outstanding raw reply line answers.
#[derive(Clone, Copy, PartialEq)]
enum RawStep {
    /// `ms`: `HD c<cas>`.
    Store,
    /// `ma` (fenced pairs): the `VA <len> t<ttl>` header, then the counter's value.
    CountHeader,
    CountValue,
    /// `md`: `HD`.
    Delete,
}

/// `ma <counter> N<expiry> J1 v t`: what the lock sends behind each `ms` for its fencing
/// token (one of 4096 counters, with the clock item's absolute expiry).
fn push_ma(buf: &mut Vec<u8>, bucket: u64) {
    let _ = write!(
        Fmt(buf),
        "ma pip-locks:raw-fence:{:03x} N2145916800 J1 v t\r\n",
        bucket % 4096
    );
}

async fn raw_pipeline_conn(
    server: String,
    worker: usize,
    depth: usize,
    fenced: bool,
    measure_from: Instant,
    end: Instant,
) -> Res<(u64, Samples)> {
    let mut conn = RawConn::connect(&server).await?;
    let mut keys = KeyGen::new("raw_pipe", run_id(), worker);
    let mut buckets = 0u64;
    // What each outstanding reply line answers: (key, step, pair start, the store's CAS).
    let mut pending: VecDeque<(Vec<u8>, RawStep, Instant, u64)> =
        VecDeque::with_capacity(depth * 3);
    let mut wbuf = Vec::with_capacity(depth * 96);
    let mut latency = Samples::default();
    let mut ops = 0u64;
    let mut stopping = false;
    let mut start_pair = |wbuf: &mut Vec<u8>,
                          pending: &mut VecDeque<(Vec<u8>, RawStep, Instant, u64)>,
                          key: &str,
                          now: Instant| {
        push_ms(wbuf, key);
        pending.push_back((key.as_bytes().to_vec(), RawStep::Store, now, 0));
        if fenced {
            buckets += 1;
            push_ma(wbuf, buckets);
            pending.push_back((Vec::new(), RawStep::CountHeader, now, 0));
            pending.push_back((Vec::new(), RawStep::CountValue, now, 0));
        }
    };
    let now = Instant::now();
    for _ in 0..depth {
        let key = keys.next();
        start_pair(&mut wbuf, &mut pending, key, now);
    }
    conn.stream.write_all(&wbuf).await?;
    // The store of a fenced pair waits for its counter's reply (as the lock's acquire does)
    // before the delete goes out; the two replies may come in different reads.
    let mut stored: Option<(Vec<u8>, Instant, u64)> = None;
    while !pending.is_empty() {
        conn.fill().await?;
        wbuf.clear();
        let now = Instant::now();
        if now >= end {
            stopping = true;
        }
        while let Some(line) = conn.buffered_line() {
            let Some((key, step, t0, _)) = pending.pop_front() else {
                return Err("reply without a request".into());
            };
            match step {
                RawStep::Delete => {
                    if line != b"HD" {
                        return Err(
                            format!("md answered {:?}", String::from_utf8_lossy(line)).into()
                        );
                    }
                    if t0 >= measure_from && !stopping {
                        latency.push(now.saturating_duration_since(t0));
                        ops += 1;
                    }
                    if !stopping {
                        let key = keys.next();
                        start_pair(&mut wbuf, &mut pending, key, now);
                    }
                }
                RawStep::Store => {
                    let cas = hd_cas(line)?;
                    if fenced {
                        stored = Some((key, t0, cas));
                    } else {
                        push_md(&mut wbuf, &key, cas);
                        pending.push_back((key, RawStep::Delete, t0, 0));
                    }
                }
                RawStep::CountHeader => {
                    if !line.starts_with(b"VA ") {
                        return Err(
                            format!("ma answered {:?}", String::from_utf8_lossy(line)).into()
                        );
                    }
                }
                RawStep::CountValue => {
                    let Some((key, t0, cas)) = stored.take() else {
                        return Err("a counter value without its store".into());
                    };
                    push_md(&mut wbuf, &key, cas);
                    pending.push_back((key, RawStep::Delete, t0, 0));
                }
            }
        }

        if !wbuf.is_empty() {
            conn.stream.write_all(&wbuf).await?;
        }
    }
    Ok((ops, latency))
}

async fn raw_pipelined(
    s: &Settings,
    server: &str,
    scenario: &'static str,
    conns: usize,
    total_in_flight: usize,
    fenced: bool,
) -> Res<Outcome> {
    let (measure_from, end) = span(s);
    let mut handles = Vec::new();
    for c in 0..conns {
        // Spread the in-flight pairs as evenly as possible (the lock's pool does the same).
        let depth = total_in_flight / conns + usize::from(c < total_in_flight % conns);
        if depth == 0 {
            continue;
        }
        handles.push(tokio::spawn(raw_pipeline_conn(
            server.to_string(),
            c,
            depth,
            fenced,
            measure_from,
            end,
        )));
    }
    let mut ops = 0;
    let mut latency = Samples::default();
    for h in handles {
        let (n, l) = h.await??;
        ops += n;
        latency.merge(l);
    }
    Ok(Outcome {
        scenario,
        backend: "raw",
        tasks: 1,
        conns,
        in_flight: total_in_flight,
        ops,
        elapsed: s.secs,
        latency,
        handoff: None,
        errors: 0,
        server_cpu: None,
    })
}

/// The server's CPU time so far (seconds of user + system time, from `stats`).
async fn server_cpu_secs(server: &str) -> Res<f64> {
    let mut conn = RawConn::connect(server).await?;
    conn.stream.write_all(b"stats\r\n").await?;
    let mut total = 0.0;
    loop {
        let line = conn.line().await?;
        if line == b"END" {
            return Ok(total);
        }
        let text = String::from_utf8_lossy(&line);
        let mut parts = text.split(' ');
        if let (Some("STAT"), Some("rusage_user" | "rusage_system"), Some(v)) =
            (parts.next(), parts.next(), parts.next())
        {
            total += v
                .parse::<f64>()
                .map_err(|e| format!("stats {text:?}: {e}"))?;
        }
    }
}

/// One connection of `raw_saturate`: the same pairs as `raw_pipeline_conn` with as little
/// client work per pair as possible (keys are a fixed prefix plus a counter written in
/// place, nothing allocated per pair, one pair in 64 timed), so the server, not this
/// generator, is the limit.
async fn raw_saturate_conn(
    server: String,
    worker: usize,
    depth: usize,
    measure_from: Instant,
    end: Instant,
) -> Res<(u64, Samples)> {
    const SAMPLE_EVERY: u64 = 64;
    let mut conn = RawConn::connect(&server).await?;
    let prefix = format!("sat:{:x}:{worker}:", run_id()).into_bytes();
    let push_key = |buf: &mut Vec<u8>, n: u64| {
        buf.extend_from_slice(&prefix);
        let mut digits = [b'0'; 16];
        for (i, d) in digits.iter_mut().enumerate() {
            *d = b"0123456789abcdef"[((n >> (60 - 4 * i)) & 0xf) as usize];
        }
        buf.extend_from_slice(&digits);
    };
    // What each outstanding reply answers: (key counter, is_delete, start when timed).
    let mut pending: VecDeque<(u64, bool, Option<Instant>)> = VecDeque::with_capacity(depth * 2);
    let mut wbuf = Vec::with_capacity(depth * 64);
    let mut latency = Samples::default();
    let (mut ops, mut next) = (0u64, 0u64);
    let mut stopping = false;
    let mut start_pair = |wbuf: &mut Vec<u8>, pending: &mut VecDeque<_>, now: Instant| {
        wbuf.extend_from_slice(b"ms ");
        push_key(wbuf, next);
        wbuf.extend_from_slice(b" 1 ME T10 c\r\nx\r\n");
        let timed = (next % SAMPLE_EVERY == 0).then_some(now);
        pending.push_back((next, false, timed));
        next += 1;
    };
    let now = Instant::now();
    for _ in 0..depth {
        start_pair(&mut wbuf, &mut pending, now);
    }
    conn.stream.write_all(&wbuf).await?;
    while !pending.is_empty() {
        conn.fill().await?;
        wbuf.clear();
        let now = Instant::now();
        stopping |= now >= end;
        while let Some(line) = conn.buffered_line() {
            let Some((n, is_delete, timed)) = pending.pop_front() else {
                return Err("reply without a request".into());
            };
            if is_delete {
                if line != b"HD" {
                    return Err(format!("md answered {:?}", String::from_utf8_lossy(line)).into());
                }
                if now >= measure_from && !stopping {
                    ops += 1;
                    if let Some(t0) = timed {
                        latency.push(now.saturating_duration_since(t0));
                    }
                }
                if !stopping {
                    start_pair(&mut wbuf, &mut pending, now);
                }
            } else {
                let cas = hd_cas(line)?;
                wbuf.extend_from_slice(b"md ");
                push_key(&mut wbuf, n);
                wbuf.extend_from_slice(b" C");
                let _ = write!(Fmt(&mut wbuf), "{cas}\r\n");
                pending.push_back((n, true, timed));
            }
        }
        if !wbuf.is_empty() {
            conn.stream.write_all(&wbuf).await?;
        }
    }
    Ok((ops, latency))
}

/// `raw_saturate`: `raw_max`'s shape (`raw_max_conns` x `raw_max_depth`) with the leanest
/// client, and the server's CPU share over the window: the server's own limit.
async fn raw_saturate(s: &Settings, server: &str) -> Res<Outcome> {
    let (measure_from, end) = span(s);
    let conns = s.raw_max_conns;
    let mut handles = Vec::new();
    for c in 0..conns {
        handles.push(tokio::spawn(raw_saturate_conn(
            server.to_string(),
            c,
            s.raw_max_depth,
            measure_from,
            end,
        )));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = server_cpu_secs(server).await?;
    tokio::time::sleep_until(end.into()).await;
    let cpu_after = server_cpu_secs(server).await?;
    let mut ops = 0;
    let mut latency = Samples::default();
    for h in handles {
        let (n, l) = h.await??;
        ops += n;
        latency.merge(l);
    }
    Ok(Outcome {
        scenario: "raw_saturate",
        backend: "raw",
        tasks: 1,
        conns,
        in_flight: conns * s.raw_max_depth,
        ops,
        elapsed: s.secs,
        latency,
        handoff: None,
        errors: 0,
        server_cpu: Some(cpu_after - cpu_before),
    })
}

// ---------------------------------------------------------------------------------------
// Locks

async fn lock_seq<L: Lock + ?Sized>(
    s: &Settings,
    lock: &L,
    scenario: &'static str,
    backend: &'static str,
) -> Res<Outcome> {
    let ctx = Context::new();
    let mut keys = KeyGen::new(scenario, run_id(), 0);
    let mut latency = Samples::default();
    let mut ops = 0u64;
    let mut errors = 0u64;
    let mut window = Window::new(s);
    while window.go_on() {
        let key = keys.next();
        let t0 = Instant::now();
        let ok = lock.try_acquire_lock(&ctx, key, TTL).await?;
        lock.release_lock(&ctx, key).await?;
        if !ok {
            errors += 1;
            continue;
        }
        if window.measuring() {
            latency.push(t0.elapsed());
            ops += 1;
        }
    }
    Ok(Outcome {
        scenario,
        backend,
        tasks: 1,
        conns: 0,
        in_flight: 1,
        ops,
        elapsed: window.start.elapsed(),
        latency,
        handoff: None,
        errors,
        server_cpu: None,
    })
}

/// What an outcome is reported as.
#[derive(Debug, Clone, Copy)]
struct Labels {
    scenario: &'static str,
    backend: &'static str,
    conns: usize,
}

fn at(scenario: &'static str, backend: &'static str, conns: usize) -> Labels {
    Labels {
        scenario,
        backend,
        conns,
    }
}

/// When measuring starts (after the warm-up) and ends.
fn span(s: &Settings) -> (Instant, Instant) {
    let measure_from = Instant::now() + s.warmup;
    (measure_from, measure_from + s.secs)
}

async fn lock_parallel<L: Lock + 'static>(s: &Settings, lock: Arc<L>, at: Labels) -> Res<Outcome> {
    let run = run_id();
    let (measure_from, end) = span(s);
    let scenario = at.scenario;
    let mut handles = Vec::new();
    for w in 0..s.tasks {
        let lock = lock.clone();
        handles.push(tokio::spawn(async move {
            let ctx = Context::new();
            let mut keys = KeyGen::new(scenario, run, w);
            let mut latency = Samples::default();
            let mut ops = 0u64;
            let mut errors = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let key = keys.next();
                let ok = lock.try_acquire_lock(&ctx, key, TTL).await?;
                lock.release_lock(&ctx, key).await?;
                let t1 = Instant::now();
                if !ok {
                    errors += 1;
                } else if t0 >= measure_from && t1 < end {
                    latency.push(t1 - t0);
                    ops += 1;
                }
            }
            Ok::<_, BoxError>((ops, errors, latency))
        }));
    }
    let mut ops = 0;
    let mut errors = 0;
    let mut latency = Samples::default();
    for h in handles {
        let (n, e, l) = h.await??;
        ops += n;
        errors += e;
        latency.merge(l);
    }
    Ok(Outcome {
        scenario: at.scenario,
        backend: at.backend,
        tasks: s.tasks,
        conns: at.conns,
        in_flight: s.tasks,
        ops,
        elapsed: s.secs,
        latency,
        handoff: None,
        errors,
        server_cpu: None,
    })
}

/// `tasks` tasks take one key in turn with `acquire_lock`; the handoff is the time from the
/// moment a holder calls `release_lock` to the moment the next holder's `acquire_lock`
/// returns.
async fn lock_contended<L: Lock + 'static>(s: &Settings, lock: Arc<L>, at: Labels) -> Res<Outcome> {
    let key: Arc<str> = format!("{}:{:x}", at.scenario, run_id()).into();
    let (measure_from, end) = span(s);
    let epoch = Instant::now();
    // Nanoseconds since `epoch` of the last release call; 0 = none yet.
    let last_release = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..s.contended_tasks {
        let lock = lock.clone();
        let key = key.clone();
        let last_release = last_release.clone();
        handles.push(tokio::spawn(async move {
            let ctx = Context::new();
            let mut latency = Samples::default();
            let mut handoff = Samples::default();
            let mut ops = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let left = end.saturating_duration_since(t0);
                match lock
                    .acquire_lock(&ctx, &key, TTL, left + Duration::from_secs(30))
                    .await
                {
                    Ok(()) => {}
                    Err(e) => return Err::<_, BoxError>(e.into()),
                }
                let t1 = Instant::now();
                let released = last_release.load(Ordering::Acquire);
                if t0 >= measure_from && t1 < end {
                    latency.push(t1 - t0);
                    ops += 1;
                    if released != 0 {
                        let at = epoch + Duration::from_nanos(released);
                        handoff.push(t1.saturating_duration_since(at));
                    }
                }
                let r = Instant::now().saturating_duration_since(epoch).as_nanos() as u64;
                last_release.store(r.max(1), Ordering::Release);
                lock.release_lock(&ctx, &key).await?;
            }
            Ok((ops, latency, handoff))
        }));
    }
    let mut ops = 0;
    let mut latency = Samples::default();
    let mut handoff = Samples::default();
    for h in handles {
        let (n, l, hd) = h.await??;
        ops += n;
        latency.merge(l);
        handoff.merge(hd);
    }
    Ok(Outcome {
        scenario: at.scenario,
        backend: at.backend,
        tasks: s.contended_tasks,
        conns: at.conns,
        in_flight: s.contended_tasks,
        ops,
        elapsed: s.secs,
        latency,
        handoff: Some(handoff),
        errors: 0,
        server_cpu: None,
    })
}

async fn open_memcached(server: &str, pool_size: usize, protocol: &str) -> Res<Arc<MemcachedLock>> {
    let (host, port) = server
        .rsplit_once(':')
        .ok_or_else(|| format!("server address {server:?} is not HOST:PORT"))?;
    let lock = MemcachedLock::new();
    let pool = pool_size.to_string();
    lock.configure(&ConfigParams::from_tuples([
        ("host", host),
        ("port", port),
        ("options.pool_size", pool.as_str()),
        ("options.timeout", "30000"),
        ("options.retry_timeout", "100"),
        ("options.max_size", "100000"),
        ("options.protocol", protocol),
    ]))?;
    lock.open(&Context::new()).await?;
    Ok(Arc::new(lock))
}

/// A lock over TLS to `server`, verifying its certificate with `ca_file`.
async fn open_tls(server: &str, ca_file: &str, pool_size: usize) -> Res<Arc<MemcachedLock>> {
    let lock = MemcachedLock::new();
    lock.configure(&ConfigParams::from_tuples([
        ("connection.uri", format!("memcacheds://{server}")),
        ("credential.ssl_ca_file", ca_file.to_string()),
        ("options.pool_size", pool_size.to_string()),
        ("options.timeout", "30000".to_string()),
        ("options.retry_timeout", "100".to_string()),
        ("options.max_size", "100000".to_string()),
        ("options.protocol", "meta".to_string()),
    ]))?;
    lock.open(&Context::new()).await?;
    Ok(Arc::new(lock))
}

/// A memcached with TLS on its port (and a plaintext side listener for the testkit), with a
/// CA and a server certificate for 127.0.0.1 made here; the CA file's path, and the
/// directory to remove at the end.
fn start_tls_server() -> Res<(
    memcached_testkit::MemcachedServer,
    String,
    std::path::PathBuf,
)> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = std::env::temp_dir().join(format!("pip-locks-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let cert =
        CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(&key, &ca, &ca_key)?;
    let write = |name: &str, text: String| -> Res<String> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path.display().to_string())
    };
    let ca_file = write("ca.pem", ca.pem())?;
    let crt = write("server.crt", cert.pem())?;
    let key = write("server.key", key.serialize_pem())?;
    let server = memcached_testkit::MemcachedServer::builder()
        .threads(1)
        .memory_mb(256)
        .plain_listener()
        .arg("-Z")
        .arg("-o")
        .arg(format!("ssl_chain_cert={crt},ssl_key={key}"))
        .start()
        .map_err(|e| format!("cannot start memcached with TLS: {e}"))?;
    Ok((server, ca_file, dir))
}

/// The quorum's longest ttl and quarantine in the bench: the scenarios' ttl. Opening waits
/// it out once (new servers are in quarantine).
const QUORUM_LIMIT: Duration = TTL;

/// A quorum-mode lock over `servers`, once the servers' quarantine (counted from the boot
/// markers this open writes, on servers just started) has passed.
async fn open_quorum(servers: &[String], pool_size: usize) -> Res<Arc<MemcachedLock>> {
    let lock = MemcachedLock::new();
    let pool = pool_size.to_string();
    let limit = QUORUM_LIMIT.as_millis().to_string();
    lock.configure(&ConfigParams::from_tuples([
        (
            "connection.uri",
            format!("memcached://{}", servers.join(",")),
        ),
        ("options.mode", "quorum".to_string()),
        ("options.max_ttl", limit.clone()),
        ("options.quarantine", limit),
        ("options.pool_size", pool),
        ("options.timeout", "30000".to_string()),
        ("options.retry_timeout", "100".to_string()),
        ("options.max_size", "100000".to_string()),
    ]))?;
    lock.open(&Context::new()).await?;
    tokio::time::sleep(QUORUM_LIMIT + Duration::from_millis(300)).await;
    Ok(Arc::new(lock))
}

// ---------------------------------------------------------------------------------------

fn print_summary(results: &mut [Outcome]) {
    println!();
    println!(
        "{:<18} {:>6} {:>6} {:>14} {:>10} {:>10} {:>12} {:>12}",
        "scenario", "tasks", "conns", "ops/s", "p50 us", "p99 us", "handoff p50", "handoff p99"
    );
    for r in results.iter_mut() {
        let (p50, p99) = r.latency.percentiles();
        let (h50, h99) = match r.handoff.as_mut() {
            Some(h) => {
                let (a, b) = h.percentiles();
                (format!("{a:.1}"), format!("{b:.1}"))
            }
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<18} {:>6} {:>6} {:>14.0} {:>10.1} {:>10.1} {:>12} {:>12}",
            r.scenario,
            r.tasks,
            r.conns,
            r.rate(),
            p50,
            p99,
            h50,
            h99
        );
    }
    let rate = |name: &str| {
        results
            .iter()
            .find(|r| r.scenario == name)
            .map(Outcome::rate)
    };
    println!();
    for (num, den, target) in [
        ("seq", "raw_seq", 0.95),
        ("parallel", "raw_pipelined", 0.8),
        ("parallel", "raw_fenced", f64::NAN),
        ("raw_fenced", "raw_pipelined", f64::NAN),
        ("raw_pipelined", "raw_max", f64::NAN),
        ("raw_max", "raw_saturate", f64::NAN),
        ("parallel", "raw_saturate", f64::NAN),
        ("quorum_seq", "seq", f64::NAN),
        ("quorum_parallel", "parallel", f64::NAN),
        ("tls_seq", "seq", f64::NAN),
        ("tls_parallel", "parallel", f64::NAN),
    ] {
        if let (Some(a), Some(b)) = (rate(num), rate(den)) {
            let ratio = a / b.max(1e-9);
            let verdict = if target.is_nan() {
                String::new()
            } else if ratio >= target {
                format!("(target >= {target}: met)")
            } else {
                format!("(target >= {target}: NOT met)")
            };
            println!("ratio {num}/{den} = {ratio:.3} {verdict}");
        }
    }
}

/// The process's resident memory in bytes (`/proc/self/statm`), if readable.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// `held_memory`: resident memory per held lease. A fresh lock acquires `count` leases (256
/// tasks), the growth of the process's resident memory is divided by `count`, then every
/// lease is released. Includes the lease table's records and their values; the allocator's
/// own slack makes it an upper estimate.
async fn held_memory(server: &str, pool_size: usize, count: usize) -> Res<serde_json::Value> {
    let lock = MemcachedLock::new();
    let (host, port) = server
        .rsplit_once(':')
        .ok_or_else(|| format!("server address {server:?} is not HOST:PORT"))?;
    lock.configure(&ConfigParams::from_tuples([
        ("host", host.to_string()),
        ("port", port.to_string()),
        ("options.pool_size", pool_size.to_string()),
        ("options.max_size", (count + 1).to_string()),
        ("options.timeout", "30000".to_string()),
    ]))?;
    lock.open(&Context::new()).await?;
    let lock = Arc::new(lock);
    let before = resident_bytes().ok_or("/proc/self/statm is not readable")?;
    let tasks = 256.min(count);
    let mut handles = Vec::new();
    for w in 0..tasks {
        let lock = lock.clone();
        let share = count / tasks + usize::from(w < count % tasks);
        handles.push(tokio::spawn(async move {
            let mut keys = KeyGen::new("held", run_id(), w);
            let ctx = Context::new();
            for _ in 0..share {
                if !lock
                    .try_acquire_lock(&ctx, keys.next(), Duration::from_secs(120))
                    .await?
                {
                    return Err::<(), BoxError>("a unique key was busy".into());
                }
            }
            Ok(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let held = lock.held_count();
    let after = resident_bytes().ok_or("/proc/self/statm is not readable")?;
    lock.close(&Context::new()).await?; // releases every lease
    Ok(serde_json::json!({
        "scenario": "held_memory",
        "leases": held,
        "rss_growth_bytes": after.saturating_sub(before),
        "bytes_per_lease": round1(after.saturating_sub(before) as f64 / held.max(1) as f64),
    }))
}

/// An SVG chart of the results: pairs (or acquisitions) per second per scenario, and p50 /
/// p99 latency, the raw generators in grey next to the locks.
fn write_chart(results: &mut [Outcome], path: &str) -> Res<()> {
    use plotters::prelude::*;
    let rows: Vec<(String, f64, f64, f64, bool)> = results
        .iter_mut()
        .map(|r| {
            let (p50, p99) = r.latency.percentiles();
            (
                r.scenario.to_string(),
                r.rate(),
                p50,
                p99,
                r.backend == "raw",
            )
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let height = 90 + 2 * (40 + 26 * n as u32);
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(height / 2);
    let label = |y: &f64| {
        let i = y.round();
        if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
            rows[i as usize].0.clone()
        } else {
            String::new()
        }
    };
    let max_rate = rows.iter().map(|r| r.1).fold(1.0, f64::max) * 1.1;
    let mut rates = ChartBuilder::on(&top)
        .caption(
            "throughput (pairs/s; contended: acquisitions/s)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(130)
        .build_cartesian_2d(0.0..max_rate, -0.5..(n as f64 - 0.5))?;
    rates
        .configure_mesh()
        .y_labels(n)
        .y_label_formatter(&label)
        .x_label_formatter(&|x| format!("{:.0}k", x / 1000.0))
        .disable_y_mesh()
        .draw()?;
    rates.draw_series(rows.iter().enumerate().map(|(i, r)| {
        let color = if r.4 {
            RGBColor(150, 150, 150)
        } else {
            RGBColor(40, 100, 180)
        };
        let y = i as f64;
        Rectangle::new([(0.0, y - 0.35), (r.1, y + 0.35)], color.filled())
    }))?;
    let max_lat = rows.iter().map(|r| r.3).fold(1.0, f64::max) * 1.1;
    let mut latency = ChartBuilder::on(&bottom)
        .caption("latency (µs): p50 dark, p99 light", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(130)
        .build_cartesian_2d(0.0..max_lat, -0.5..(n as f64 - 0.5))?;
    latency
        .configure_mesh()
        .y_labels(n)
        .y_label_formatter(&label)
        .disable_y_mesh()
        .draw()?;
    latency.draw_series(rows.iter().enumerate().map(|(i, r)| {
        let y = i as f64;
        Rectangle::new(
            [(0.0, y - 0.35), (r.3, y + 0.35)],
            RGBColor(170, 200, 230).filled(),
        )
    }))?;
    latency.draw_series(rows.iter().enumerate().map(|(i, r)| {
        let color = if r.4 {
            RGBColor(110, 110, 110)
        } else {
            RGBColor(40, 100, 180)
        };
        let y = i as f64;
        Rectangle::new([(0.0, y - 0.35), (r.2, y + 0.35)], color.filled())
    }))?;
    root.present()?;
    Ok(())
}

async fn run(s: Settings) -> Res<()> {
    let runtime = if s.multi_thread {
        "multi_thread"
    } else {
        "current_thread"
    };
    // Keep a self-started server alive until the end.
    let mut own_server = None;
    let server = match &s.server {
        Some(addr) => addr.clone(),
        None => {
            let srv = memcached_testkit::MemcachedServer::builder()
                .threads(1)
                .memory_mb(256)
                .start()
                .map_err(|e| format!("cannot start memcached (pass --server HOST:PORT): {e}"))?;
            let addr = srv.address();
            own_server = Some(srv);
            addr
        }
    };
    eprintln!(
        "lock_bench: server {server}{}, runtime {runtime}, {} rounds of {} s per scenario (+ {} s warm-up){}",
        if own_server.is_some() {
            " (started by the bench)"
        } else {
            ""
        },
        s.rounds,
        s.secs.as_secs_f64(),
        s.warmup.as_secs_f64(),
        if s.quick { ", quick" } else { "" }
    );
    let mut results: Vec<Outcome> = Vec::new();
    // First, while the heap is fresh: memory the other scenarios freed would otherwise be
    // reused for the leases and the resident memory would hardly grow (a run that measured
    // it last once printed 8.6 bytes per lease).
    if s.wants("held_memory") {
        let count = env_usize("BENCH_HELD_LEASES", if s.quick { 2_000 } else { 100_000 })?;
        let held = held_memory(&server, s.pool_size, count).await?;
        println!("{held}");
        eprintln!(
            "lock_bench: {} leases held: {} bytes of resident memory each",
            held["leases"], held["bytes_per_lease"]
        );
    }
    let lock = if s.wants("seq") || s.wants("parallel") || s.wants("contended") {
        Some(open_memcached(&server, s.pool_size, "meta").await?)
    } else {
        None
    };
    let classic = if s.wants("classic_seq") || s.wants("classic_parallel") {
        Some(open_memcached(&server, s.pool_size, "classic").await?)
    } else {
        None
    };
    // Quorum scenarios: three servers (the bench's own when none are given).
    let mut own_quorum = Vec::new();
    let quorum = if s.wants("quorum_seq") || s.wants("quorum_parallel") {
        let servers = match &s.quorum {
            Some(list) => list.clone(),
            None => {
                for _ in 0..3 {
                    own_quorum.push(
                        memcached_testkit::MemcachedServer::builder()
                            .threads(1)
                            .memory_mb(256)
                            .start()
                            .map_err(|e| format!("cannot start memcached: {e}"))?,
                    );
                }
                own_quorum.iter().map(|s| s.address()).collect()
            }
        };
        eprintln!("lock_bench: quorum of {}", servers.join(", "));
        Some(open_quorum(&servers, s.pool_size).await?)
    } else {
        None
    };
    // TLS scenarios: the given TLS server, or one of the bench's own.
    let mut own_tls = None;
    let tls = if s.wants("tls_seq") || s.wants("tls_parallel") {
        let (server, ca) = match &s.tls {
            Some(given) => given.clone(),
            None => {
                let (srv, ca, dir) = start_tls_server()?;
                let addr = srv.address();
                own_tls = Some((srv, dir));
                (addr, ca)
            }
        };
        eprintln!("lock_bench: TLS server {server}");
        Some(open_tls(&server, &ca, s.pool_size).await?)
    } else {
        None
    };
    // Every round runs every scenario for `secs`: interleaving spreads the noise of a shared
    // machine over all scenarios instead of letting it hit one of them.
    for round in 0..s.rounds {
        let mut this_round: Vec<Outcome> = Vec::new();
        if s.wants("raw_seq") {
            this_round.push(raw_seq(&s, &server).await?);
        }
        if s.wants("raw_pipelined") {
            this_round.push(
                raw_pipelined(&s, &server, "raw_pipelined", s.pool_size, s.tasks, false).await?,
            );
        }
        if s.wants("raw_fenced") {
            this_round
                .push(raw_pipelined(&s, &server, "raw_fenced", s.pool_size, s.tasks, true).await?);
        }
        if s.wants("raw_max") {
            let (c, d) = (s.raw_max_conns, s.raw_max_depth);
            this_round.push(raw_pipelined(&s, &server, "raw_max", c, c * d, false).await?);
        }
        if s.wants("raw_saturate") {
            this_round.push(raw_saturate(&s, &server).await?);
        }
        // The same loops on each memcached lock that was opened.
        let opened_locks = [
            (&lock, "seq", "parallel", "memcached"),
            (&classic, "classic_seq", "classic_parallel", "classic"),
            (&quorum, "quorum_seq", "quorum_parallel", "quorum"),
            (&tls, "tls_seq", "tls_parallel", "tls"),
        ];
        for (lock, seq, parallel, backend) in opened_locks {
            let Some(lock) = lock else { continue };
            if s.wants(seq) {
                this_round.push(lock_seq(&s, &**lock, seq, backend).await?);
            }
            if s.wants(parallel) {
                let labels = at(parallel, backend, s.pool_size);
                this_round.push(lock_parallel(&s, lock.clone(), labels).await?);
            }
            if backend == "memcached" && s.wants("contended") {
                let labels = at("contended", backend, s.pool_size);
                this_round.push(lock_contended(&s, lock.clone(), labels).await?);
            }
        }
        if s.wants("memory_seq") {
            let lock = MemoryLock::new();
            this_round.push(lock_seq(&s, &lock, "memory_seq", "memory").await?);
        }
        if s.wants("memory_parallel") {
            let lock = Arc::new(MemoryLock::new());
            this_round.push(lock_parallel(&s, lock, at("memory_parallel", "memory", 0)).await?);
        }
        if s.wants("memory_contended") {
            let lock = Arc::new(MemoryLock::new());
            this_round.push(lock_contended(&s, lock, at("memory_contended", "memory", 0)).await?);
        }
        if round == 0 {
            results = this_round;
        } else {
            for (total, r) in results.iter_mut().zip(this_round) {
                total.absorb(r);
            }
        }
        eprintln!("lock_bench: round {} of {} done", round + 1, s.rounds);
    }
    for lock in [lock, classic, tls].into_iter().flatten() {
        lock.close(&Context::new()).await?;
    }
    if let Some((server, dir)) = own_tls {
        drop(server);
        let _ = std::fs::remove_dir_all(dir);
    }
    for r in &mut results {
        println!("{}", r.json(runtime));
    }
    print_summary(&mut results);
    if let Some(path) = &s.svg {
        write_chart(&mut results, path)?;
        eprintln!("lock_bench: chart written to {path}");
    }
    drop(own_server);
    Ok(())
}

/// `BENCH_TRACING=<filter>`: a fmt subscriber at that level whose output is discarded, so the
/// cost measured is the spans' and events' own, not the terminal's.
fn install_tracing() {
    let Some(filter) = std::env::var("BENCH_TRACING")
        .ok()
        .filter(|f| !f.is_empty())
    else {
        return;
    };
    eprintln!("lock_bench: a fmt subscriber at '{filter}' (output discarded)");
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::sink)
        .init();
}

fn main() {
    install_tracing();
    let result = Settings::from_args().and_then(|s| {
        let rt = if s.multi_thread {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
        };
        rt.block_on(run(s))
    });
    if let Err(e) = result {
        eprintln!("lock_bench: {e}");
        std::process::exit(1);
    }
}
