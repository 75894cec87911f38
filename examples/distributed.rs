//! Distributed: several OS processes coordinate through memcached.
//!
//! The parent process starts N copies of itself (`--worker`). They are a small fleet that
//! must run a job exactly once per round: in each round every worker takes the shared
//! `MemcachedLock` key `fleet-report` through a `LockGuard`, asks the shared resource whether
//! the round's job is done, and if not runs it and commits its result.
//!
//! The shared resource is a tiny "fenced store" served by the parent on a loopback port. It
//! remembers the highest fencing token it has accepted and refuses a commit that carries a
//! lower one: a worker whose lease silently expired (a long pause, an evicted lock) and whose
//! key was taken by someone else cannot overwrite the newer holder's work. A worker also
//! watches its guard's lost signal and abandons the job when a renewal is refused.
//!
//! At the end the parent prints a summary read from the store: each round must have run
//! exactly once, and no stale token should have been refused.
//!
//! `--freeze-round R` shows both defences at work: the worker that wins round R is frozen
//! (SIGSTOP, like a long stop-the-world pause) while it holds the lock, and thawed (SIGCONT)
//! only once another worker, after the frozen lease expired in memcached, has run the round.
//! The thawed worker's guard reports the lease lost; the worker then tries to commit anyway,
//! on purpose, and the store refuses its stale fencing token. The round still ran once.
//!
//! ```text
//! memcached -p 11211 &
//! cargo run --example distributed                     # 3 workers, 4 rounds
//! cargo run --example distributed -- --workers 5 --rounds 10
//! cargo run --example distributed -- --freeze-round 2 # a frozen holder meets fencing
//! ```
//!
//! Telemetry as an application sets it up (docs/observability.md): each process logs through
//! a `tracing` fmt subscriber on standard error, its level from `RUST_LOG` (default `warn`,
//! which shows a lost lease, a server marked down or restarted; `RUST_LOG=lock_memcached=debug`
//! shows every operation and request), and counts the lock's metrics in memory with
//! metrics-util's debugging recorder; each worker prints a short metrics summary at the end.
//!
//! The server comes from `MEMCACHED_SERVICE_HOST` / `MEMCACHED_SERVICE_PORT` (default
//! `localhost:11211`); the workers inherit them. Each run puts its keys under a fresh
//! `options.key_prefix`, so runs sharing a server do not meet.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader as StdBufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commons::{ConfigParams, Configurable, Context, Error, ErrorKind, Openable, codes};
use lock_core::{Lock, LockGuard};
use lock_memcached::MemcachedLock;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Barrier;

/// The key every worker competes for.
const JOB_KEY: &str = "fleet-report";
/// The lease's ttl; the guard renews it every third of that while the job runs.
const TTL: Duration = Duration::from_secs(3);
/// How long a worker waits for the lock.
const WAIT: Duration = Duration::from_secs(30);
/// How long the job takes.
const JOB_TIME: Duration = Duration::from_millis(150);
/// How long the parent lets the fleet run before stopping it.
const FLEET_DEADLINE: Duration = Duration::from_secs(180);

/// How long the store keeps a frozen worker stopped at most, waiting for the round to be run
/// by someone else.
const FREEZE_LIMIT: Duration = Duration::from_secs(60);

const USAGE: &str = "usage: distributed [--workers N (2..=16, default 3)] \
                     [--rounds R (1..=100, default 4)] [--freeze-round R]";

#[derive(Debug, PartialEq, Eq)]
enum Mode {
    Parent {
        workers: u32,
        rounds: u32,
        freeze_round: Option<u32>,
    },
    Worker {
        id: u32,
        rounds: u32,
        resource: String,
        prefix: String,
        freeze_round: Option<u32>,
    },
}

fn parse_args(args: &[String]) -> Result<Mode, String> {
    let mut worker = false;
    let mut values: BTreeMap<&str, &str> = BTreeMap::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--worker" => worker = true,
            flag @ ("--workers" | "--rounds" | "--id" | "--resource" | "--prefix"
            | "--freeze-round") => {
                let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
                values.insert(flag, value);
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    let number =
        |flag: &str, default: u32, range: std::ops::RangeInclusive<u32>| match values.get(flag) {
            None => Ok(default),
            Some(text) => match text.parse::<u32>() {
                Ok(n) if range.contains(&n) => Ok(n),
                _ => Err(format!(
                    "{flag} must be a number from {} to {}, not '{text}'",
                    range.start(),
                    range.end()
                )),
            },
        };
    let rounds = number("--rounds", 4, 1..=100)?;
    let freeze_round = match values.get("--freeze-round") {
        None => None,
        Some(_) => Some(number("--freeze-round", 1, 1..=rounds)?),
    };
    if worker {
        let text = |flag: &str| {
            values
                .get(flag)
                .map(|v| v.to_string())
                .ok_or_else(|| format!("--worker needs {flag}"))
        };
        Ok(Mode::Worker {
            id: number("--id", 0, 1..=16).and_then(|id| {
                if id == 0 {
                    Err("--worker needs --id".into())
                } else {
                    Ok(id)
                }
            })?,
            rounds,
            resource: text("--resource")?,
            prefix: text("--prefix")?,
            freeze_round,
        })
    } else {
        Ok(Mode::Parent {
            workers: number("--workers", 3, 2..=16)?,
            rounds,
            freeze_round,
        })
    }
}

/// Installs what an application chooses (the libraries never do): a fmt subscriber on
/// standard error, its level from `RUST_LOG` (default `warn`), and an in-memory metrics
/// recorder, before any lock is created.
fn install_telemetry() -> Snapshotter {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _ = recorder.install();
    snapshotter
}

/// One line per metric family the lock reported: counters by their `result` (or `reason`)
/// label, histograms by how many samples they took and their median.
fn metrics_summary(snapshotter: &Snapshotter) -> Vec<String> {
    let mut counters: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut histograms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let name = key.name().to_string();
        let label = key
            .labels()
            .find(|l| l.key() == "result" || l.key() == "reason")
            .map(|l| l.value().to_string())
            .unwrap_or_default();
        match value {
            DebugValue::Counter(n) if n > 0 => {
                *counters.entry(name).or_default().entry(label).or_default() += n;
            }
            DebugValue::Histogram(samples) => histograms
                .entry(name)
                .or_default()
                .extend(samples.iter().map(|v| v.0)),
            _ => {}
        }
    }
    let mut lines: Vec<String> = counters
        .into_iter()
        .map(|(name, by)| {
            let by: Vec<String> = by.iter().map(|(l, n)| format!("{l}={n}")).collect();
            format!("{name}: {}", by.join(" "))
        })
        .collect();
    for (name, mut samples) in histograms {
        if samples.is_empty() {
            continue;
        }
        samples.sort_by(f64::total_cmp);
        let median = samples[samples.len() / 2];
        lines.push(format!(
            "{name}: {} samples, median {:.0} µs",
            samples.len(),
            median * 1e6
        ));
    }
    lines
}

#[tokio::main]
async fn main() -> ExitCode {
    let metrics = install_telemetry();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match parse_args(&args) {
        Ok(mode) => mode,
        Err(message) => {
            eprintln!("distributed: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (host, port) = match examples::memcached_endpoint(|name| std::env::var(name).ok()) {
        Ok(endpoint) => endpoint,
        Err(e) => {
            eprintln!("distributed: {e}");
            return ExitCode::from(2);
        }
    };
    match mode {
        Mode::Parent {
            workers,
            rounds,
            freeze_round,
        } => parent(&host, port, workers, rounds, freeze_round).await,
        Mode::Worker {
            id,
            rounds,
            resource,
            prefix,
            freeze_round,
        } => match worker(&host, port, id, rounds, &resource, &prefix, freeze_round).await {
            Ok(()) => {
                println!("metrics summary:");
                for line in metrics_summary(&metrics) {
                    println!("  {line}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("worker {id}: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn memcached_lock(host: &str, port: u16, prefix: &str) -> commons::Result<MemcachedLock> {
    let lock = MemcachedLock::new();
    lock.configure(&ConfigParams::from_tuples([
        ("connection.host", host.to_string()),
        ("connection.port", port.to_string()),
        ("options.key_prefix", prefix.to_string()),
        ("options.retry_timeout", "50".to_string()),
    ]))?;
    Ok(lock)
}

// ---------------------------------------------------------------------------------------
// The shared resource: a fenced store served by the parent.
// ---------------------------------------------------------------------------------------

/// One accepted commit.
#[derive(Debug, Clone, Copy)]
struct Run {
    worker: u32,
    token: u64,
}

/// What the store has seen.
#[derive(Debug, Default)]
struct Ledger {
    /// The highest fencing token accepted so far.
    highest: Option<u64>,
    /// Accepted commits per round (exactly one each when the lock works).
    runs: BTreeMap<u32, Vec<Run>>,
    /// Commits refused for a stale token: (round, worker, token, highest seen).
    refused: Vec<(u32, u32, u64, u64)>,
    /// Lost-lease reports: (round, worker).
    lost: Vec<(u32, u32)>,
}

impl Ledger {
    /// Handles one request line; returns the reply line.
    ///
    /// * `STATUS <round>` -> `DONE <worker>` or `TODO`
    /// * `COMMIT <round> <worker> <token>` -> `OK`, or `STALE <highest>` when `token` is
    ///   lower than the highest accepted (the write is refused)
    /// * `LOST <round> <worker>` -> `OK` (a worker reports a lost lease)
    fn handle(&mut self, line: &str) -> String {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| parts.get(i).and_then(|p| p.parse::<u64>().ok());
        let small = |i: usize| num(i).and_then(|n| u32::try_from(n).ok());
        match (parts.first().copied(), parts.len()) {
            (Some("STATUS"), 2) => match small(1) {
                Some(round) => match self.runs.get(&round).and_then(|r| r.first()) {
                    Some(run) => format!("DONE {}", run.worker),
                    None => "TODO".to_string(),
                },
                None => "ERR bad round".to_string(),
            },
            (Some("COMMIT"), 4) => match (small(1), small(2), num(3)) {
                (Some(round), Some(worker), Some(token)) => match self.highest {
                    Some(highest) if token < highest => {
                        self.refused.push((round, worker, token, highest));
                        format!("STALE {highest}")
                    }
                    _ => {
                        self.highest = Some(token);
                        self.runs
                            .entry(round)
                            .or_default()
                            .push(Run { worker, token });
                        "OK".to_string()
                    }
                },
                _ => "ERR bad commit".to_string(),
            },
            (Some("LOST"), 3) => match (small(1), small(2)) {
                (Some(round), Some(worker)) => {
                    self.lost.push((round, worker));
                    "OK".to_string()
                }
                _ => "ERR bad report".to_string(),
            },
            _ => "ERR unknown request".to_string(),
        }
    }
}

/// Serves the store. Besides the ledger requests, `TICK` is the fleet's scheduler: it answers
/// `GO` once every worker has asked, so all of them compete for each round's job together.
///
/// `FREEZE <round> <pid>` (once per run, and only for one of the parent's own workers) stops
/// that process with SIGSTOP until the round has been committed by another worker, then
/// resumes it with SIGCONT and answers `THAWED`; otherwise it answers `SKIP`.
async fn serve(
    listener: TcpListener,
    ledger: Arc<Mutex<Ledger>>,
    tick: Arc<Barrier>,
    workers: Arc<Mutex<Vec<u32>>>,
) {
    let froze_once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (ledger, tick) = (ledger.clone(), tick.clone());
        let (workers, froze_once) = (workers.clone(), froze_once.clone());
        tokio::spawn(async move {
            let mut stream = BufReader::new(stream);
            let mut line = String::new();
            loop {
                line.clear();
                match stream.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let reply = if line.trim() == "TICK" {
                    tick.wait().await;
                    "GO".to_string()
                } else if let Some(args) = line.trim().strip_prefix("FREEZE ") {
                    freeze(args, &ledger, &workers, &froze_once).await
                } else {
                    match ledger.lock() {
                        Ok(mut ledger) => ledger.handle(line.trim()),
                        Err(_) => "ERR store unavailable".to_string(),
                    }
                };
                if stream
                    .get_mut()
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}

/// Handles `FREEZE <round> <pid>` (see [`serve`]).
async fn freeze(
    args: &str,
    ledger: &Mutex<Ledger>,
    workers: &Mutex<Vec<u32>>,
    froze_once: &std::sync::atomic::AtomicBool,
) -> String {
    let mut parts = args.split_whitespace().map(str::parse::<u32>);
    let (Some(Ok(round)), Some(Ok(pid)), None) = (parts.next(), parts.next(), parts.next()) else {
        return "ERR bad freeze".to_string();
    };
    let ours = workers.lock().is_ok_and(|w| w.contains(&pid));
    if !ours || froze_once.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return "SKIP".to_string();
    }
    if !signal(pid, "-STOP") {
        return "SKIP".to_string();
    }
    println!("(the store froze the holder of round {round}, pid {pid}, with SIGSTOP)");
    let until = tokio::time::Instant::now() + FREEZE_LIMIT;
    loop {
        let done = ledger
            .lock()
            .is_ok_and(|l| l.runs.get(&round).is_some_and(|r| !r.is_empty()));
        if done || tokio::time::Instant::now() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(pid, "-CONT");
    println!("(round {round} ran elsewhere meanwhile; the store thawed pid {pid} with SIGCONT)");
    "THAWED".to_string()
}

/// Sends a signal with the `kill` program (this workspace forbids `unsafe`, so no libc call).
fn signal(pid: u32, which: &str) -> bool {
    Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// A worker's connection to the store.
struct Store {
    stream: BufReader<TcpStream>,
}

impl Store {
    async fn connect(address: &str) -> commons::Result<Store> {
        let stream = TcpStream::connect(address).await.map_err(|e| {
            Error::new(
                ErrorKind::Connection,
                codes::CONNECTION_FAILED,
                format!("cannot reach the shared resource at {address}"),
            )
            .with_source(e)
        })?;
        Ok(Store {
            stream: BufReader::new(stream),
        })
    }

    async fn request(&mut self, line: &str) -> commons::Result<String> {
        let broken = |e: std::io::Error| {
            Error::new(
                ErrorKind::Connection,
                codes::CONNECTION_FAILED,
                "the shared resource went away",
            )
            .with_source(e)
        };
        self.stream
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(broken)?;
        let mut reply = String::new();
        self.stream.read_line(&mut reply).await.map_err(broken)?;
        if reply.is_empty() {
            return Err(Error::new(
                ErrorKind::Connection,
                codes::CONNECTION_FAILED,
                "the shared resource closed the connection",
            ));
        }
        Ok(reply.trim().to_string())
    }
}

// ---------------------------------------------------------------------------------------
// The parent: checks memcached, serves the store, runs the fleet, prints the summary.
// ---------------------------------------------------------------------------------------

async fn parent(
    host: &str,
    port: u16,
    workers: u32,
    rounds: u32,
    freeze_round: Option<u32>,
) -> ExitCode {
    // Check the server once here, so a missing memcached is reported once, clearly.
    let ctx = Context::with_trace_id("distributed-parent");
    let probe = match memcached_lock(host, port, "probe:") {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("distributed: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = probe.open(&ctx).await {
        eprintln!("distributed: {e}\n");
        if examples::is_unreachable(&e) {
            eprintln!("{}", examples::how_to_start_memcached(host, port));
        }
        return ExitCode::FAILURE;
    }
    let _ = probe.close(&ctx).await;

    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("distributed: cannot start the shared resource on loopback: {e}");
            return ExitCode::FAILURE;
        }
    };
    let resource = match listener.local_addr() {
        Ok(address) => address.to_string(),
        Err(e) => {
            eprintln!("distributed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let tick = Arc::new(Barrier::new(workers as usize));
    let pids = Arc::new(Mutex::new(Vec::new()));
    let server = tokio::spawn(serve(listener, ledger.clone(), tick, pids.clone()));

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let prefix = format!("distributed-{}-{nanos}:", std::process::id());
    println!(
        "memcached at {host}:{port}; shared resource at {resource}; \
         {workers} worker processes, {rounds} rounds, lock key '{JOB_KEY}'"
    );
    if let Some(round) = freeze_round {
        println!("the holder of round {round} will be frozen while it holds the lock");
    }

    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("distributed: cannot find this program to start the workers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut children: Vec<(u32, Child)> = Vec::new();
    let mut forwarders = Vec::new();
    let mut failed = false;
    for id in 1..=workers {
        let mut command = Command::new(&exe);
        command
            .args(["--worker", "--id", &id.to_string()])
            .args(["--rounds", &rounds.to_string()])
            .args(["--resource", &resource, "--prefix", &prefix])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(round) = freeze_round {
            command.args(["--freeze-round", &round.to_string()]);
        }
        match command.spawn() {
            Ok(mut child) => {
                if let Ok(mut pids) = pids.lock() {
                    pids.push(child.id());
                }
                if let Some(out) = child.stdout.take() {
                    forwarders.push(std::thread::spawn(move || {
                        for line in StdBufReader::new(out).lines().map_while(Result::ok) {
                            println!("[worker {id}] {line}");
                        }
                    }));
                }
                println!("started worker {id} (pid {})", child.id());
                children.push((id, child));
            }
            Err(e) => {
                eprintln!("distributed: cannot start worker {id}: {e}");
                failed = true;
            }
        }
    }

    // Wait for the fleet. If a worker fails (the others would wait for it at the next
    // tick) or the fleet overruns, stop the rest.
    if failed {
        stop_all(&mut children);
    }
    let deadline = tokio::time::Instant::now() + FLEET_DEADLINE;
    while !children.is_empty() {
        let mut i = 0;
        while i < children.len() {
            let (id, child) = &mut children[i];
            match child.try_wait() {
                Ok(None) => i += 1,
                Ok(Some(status)) => {
                    if !status.success() {
                        eprintln!("distributed: worker {id} failed ({status}); stopping the fleet");
                        failed = true;
                    }
                    children.swap_remove(i);
                }
                Err(e) => {
                    eprintln!("distributed: waiting for worker {id}: {e}");
                    failed = true;
                    children.swap_remove(i);
                }
            }
        }
        if failed {
            stop_all(&mut children);
        } else if tokio::time::Instant::now() >= deadline {
            eprintln!("distributed: the fleet overran {FLEET_DEADLINE:?}; stopping it");
            failed = true;
            stop_all(&mut children);
        } else if !children.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for forwarder in forwarders {
        let _ = forwarder.join();
    }
    server.abort();

    let Ok(ledger) = ledger.lock() else {
        eprintln!("distributed: the shared resource's ledger is unreadable");
        return ExitCode::FAILURE;
    };
    println!();
    println!("summary: {workers} worker processes, {rounds} rounds");
    let mut exactly_once = true;
    for round in 1..=rounds {
        let runs = ledger.runs.get(&round).map_or(&[][..], Vec::as_slice);
        match runs {
            [run] => println!(
                "  round {round}: ran once, by worker {} (fencing token {})",
                run.worker, run.token
            ),
            _ => {
                exactly_once = false;
                let who: Vec<String> = runs
                    .iter()
                    .map(|r| format!("worker {}", r.worker))
                    .collect();
                println!(
                    "  round {round}: ran {} times [{}]",
                    runs.len(),
                    who.join(", ")
                );
            }
        }
    }
    let mut by_worker: BTreeMap<u32, usize> = BTreeMap::new();
    for run in ledger.runs.values().flatten() {
        *by_worker.entry(run.worker).or_default() += 1;
    }
    let shares: Vec<String> = (1..=workers)
        .map(|w| format!("worker {w}: {}", by_worker.get(&w).copied().unwrap_or(0)))
        .collect();
    println!("  jobs run per worker: {}", shares.join(", "));
    println!(
        "each round ran exactly once: {}",
        if exactly_once { "yes" } else { "NO" }
    );
    // Without a freeze nothing should go stale; with one, the frozen holder's lease is lost
    // and its deliberate late commit refused: exactly one of each.
    let (expected, why) = match freeze_round {
        None => (0, ""),
        Some(_) => (1, ": the frozen worker's"),
    };
    println!(
        "stale tokens refused: {} ({expected} expected{why})",
        ledger.refused.len()
    );
    for (round, worker, token, highest) in &ledger.refused {
        println!("  round {round}: worker {worker}'s token {token} < highest accepted {highest}");
    }
    println!(
        "leases lost: {} ({expected} expected{why})",
        ledger.lost.len()
    );
    if failed || !exactly_once || ledger.refused.len() != expected || ledger.lost.len() != expected
    {
        eprintln!("distributed: the fleet did not behave as expected (see above)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Kills and reaps the remaining workers.
fn stop_all(children: &mut Vec<(u32, Child)>) {
    for (_, child) in children.iter_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    children.clear();
}

// ---------------------------------------------------------------------------------------
// A worker process.
// ---------------------------------------------------------------------------------------

async fn worker(
    host: &str,
    port: u16,
    id: u32,
    rounds: u32,
    resource: &str,
    prefix: &str,
    freeze_round: Option<u32>,
) -> commons::Result<()> {
    let ctx = Context::with_trace_id(format!("worker-{id}"));
    let memcached = Arc::new(memcached_lock(host, port, prefix)?);
    memcached.open(&ctx).await?;
    let lock: Arc<dyn Lock> = memcached.clone();
    let mut store = Store::connect(resource).await?;
    let (mut ran, mut skipped) = (0, 0);

    for round in 1..=rounds {
        // The scheduler's tick: every worker starts the round together.
        let go = store.request("TICK").await?;
        if go != "GO" {
            return Err(Error::internal(format!("the scheduler answered '{go}'")));
        }
        // A little jitter, so the winner of each round varies.
        let jitter = rand::random_range(0..60u64);
        tokio::time::sleep(Duration::from_millis(jitter)).await;

        let guard = LockGuard::acquire(lock.clone(), &ctx, JOB_KEY, TTL, WAIT).await?;
        let Some(token) = guard.fencing_token() else {
            return Err(Error::internal(
                "a MemcachedLock lease without a fencing token",
            ));
        };
        let status = store.request(&format!("STATUS {round}")).await?;
        if let Some(by) = status.strip_prefix("DONE ") {
            println!("round {round}: already done by worker {by}; nothing to do");
            skipped += 1;
            guard.release().await?;
            continue;
        }
        println!("round {round}: holding the lock (fencing token {token}); running the job");
        // In the freeze round, the store stops this process here (SIGSTOP) until another
        // worker has run the round; this process notices nothing until it runs again.
        let frozen = freeze_round == Some(round)
            && store
                .request(&format!("FREEZE {round} {}", std::process::id()))
                .await?
                == "THAWED";
        let finished = tokio::select! {
            _ = tokio::time::sleep(JOB_TIME) => !guard.is_lost(),
            _ = guard.lost() => false,
        };
        if !finished {
            // Someone else may hold the key now: do not commit; the next holder will run it.
            println!("round {round}: the lease was lost (the lost signal fired)");
            store.request(&format!("LOST {round} {id}")).await?;
            if !frozen {
                println!("round {round}: abandoning the job");
                drop(guard);
                continue;
            }
            // The demonstration: a worker that ignores the lost signal is still stopped,
            // by the resource's fencing check.
            println!(
                "round {round}: committing anyway, to show the resource refusing a stale token"
            );
        }
        let reply = store
            .request(&format!("COMMIT {round} {id} {token}"))
            .await?;
        match reply.as_str() {
            "OK" => {
                println!("round {round}: job done; the resource accepted fencing token {token}");
                ran += 1;
            }
            stale if stale.starts_with("STALE ") => {
                println!("round {round}: the resource refused fencing token {token} ({stale})");
                guard.release().await?;
                continue;
            }
            other => {
                return Err(Error::internal(format!(
                    "the shared resource answered '{other}'"
                )));
            }
        }
        guard.release().await?;
    }
    println!("finished: ran {ran} job(s); {skipped} round(s) were already done");
    memcached.close(&ctx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(
            parse_args(&[]),
            Ok(Mode::Parent {
                workers: 3,
                rounds: 4,
                freeze_round: None
            })
        );
        assert_eq!(
            parse_args(&args(&[
                "--rounds",
                "3",
                "--freeze-round",
                "3",
                "--workers",
                "2"
            ])),
            Ok(Mode::Parent {
                workers: 2,
                rounds: 3,
                freeze_round: Some(3)
            })
        );
        assert_eq!(
            parse_args(&args(&[
                "--worker",
                "--id",
                "2",
                "--rounds",
                "5",
                "--resource",
                "127.0.0.1:9",
                "--prefix",
                "p:"
            ])),
            Ok(Mode::Worker {
                id: 2,
                rounds: 5,
                resource: "127.0.0.1:9".into(),
                prefix: "p:".into(),
                freeze_round: None
            })
        );
        for bad in [
            &["--workers", "1"][..],
            &["--rounds", "3", "--freeze-round", "4"],
            &["--freeze-round", "0"],
            &["--workers"],
            &["--rounds", "x"],
            &["--bogus"],
            &["--worker", "--resource", "a", "--prefix", "p"],
            &["--worker", "--id", "1", "--prefix", "p"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_store_refuses_lower_tokens_and_records_every_run() {
        let mut ledger = Ledger::default();
        assert_eq!(ledger.handle("STATUS 1"), "TODO");
        assert_eq!(ledger.handle("COMMIT 1 2 10"), "OK");
        assert_eq!(ledger.handle("STATUS 1"), "DONE 2");
        assert_eq!(ledger.handle("COMMIT 2 1 9"), "STALE 10");
        assert_eq!(ledger.handle("COMMIT 2 1 10"), "OK");
        assert_eq!(ledger.handle("COMMIT 2 3 11"), "OK");
        assert_eq!(
            ledger.runs[&2].len(),
            2,
            "duplicates are recorded, not hidden"
        );
        assert_eq!(ledger.refused, vec![(2, 1, 9, 10)]);
        assert_eq!(ledger.handle("LOST 3 1"), "OK");
        assert_eq!(ledger.lost, vec![(3, 1)]);
        for bad in [
            "",
            "STATUS",
            "STATUS x",
            "COMMIT 1 2",
            "COMMIT 1 2 -3",
            "NOPE 1",
        ] {
            assert!(ledger.handle(bad).starts_with("ERR"), "{bad}");
        }
    }
}
