//! Container: the application is built from a JSON configuration, and the lock backend is a
//! configuration choice.
//!
//! The program registers the lock factories (`default_lock_factory` for `memory`/`null`,
//! `memcached_lock_factory` for `memcached`), reads a configuration document into a
//! `commons::Container`, opens it, and looks the lock up in the shared `References` by the
//! locator `*:lock:*:*:1.0`. Several worker tasks then compete for one job lock and print who
//! holds it. Nothing in the code names a backend:
//!
//! ```text
//! cargo run --example container                                      # examples/config/memory.json (embedded)
//! cargo run --example container -- examples/config/memcached.json   # the same code on memcached
//! ```
//!
//! `examples/config/memcached.json` takes its server from the environment: its string values
//! may hold `${NAME:-default}` placeholders, which this program replaces with the value of the
//! environment variable `NAME` (or the default) in the parsed JSON document before handing the
//! document to the container (`examples::expand_env`). So `MEMCACHED_SERVICE_HOST` /
//! `MEMCACHED_SERVICE_PORT` choose the server, default `localhost:11211`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commons::{Container, Context, Descriptor};
use lock_core::{Lock, LockGuard, default_lock_factory};
use lock_memcached::memcached_lock_factory;

/// The embedded default: needs nothing installed.
const MEMORY_CONFIG: &str = include_str!("config/memory.json");
/// How many worker tasks compete.
const WORKERS: usize = 4;
/// How many times each worker runs the job.
const ROUNDS: usize = 2;
/// The lock every worker wants.
const JOB_KEY: &str = "nightly-report";
/// The job lock's ttl (a `LockGuard` renews it while the job runs).
const TTL: Duration = Duration::from_secs(5);
/// How long a worker waits for the lock before giving up.
const WAIT: Duration = Duration::from_secs(20);

/// What the workers observe together.
#[derive(Debug, Default)]
struct Observed {
    /// Workers inside the critical section right now.
    inside: AtomicUsize,
    /// The most ever inside at once (must stay 1).
    most_inside: AtomicUsize,
    /// Fencing tokens in the order the holders got them.
    tokens: Mutex<Vec<Option<u64>>>,
    /// Jobs run per worker.
    runs: Mutex<BTreeMap<usize, usize>>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let path = std::env::args().nth(1);
    let (source, text) = match &path {
        None => (
            "examples/config/memory.json (embedded)".to_string(),
            MEMORY_CONFIG.to_string(),
        ),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => (path.clone(), text),
            Err(e) => {
                eprintln!("container: cannot read the configuration file '{path}': {e}");
                eprintln!("usage: cargo run --example container [-- CONFIG.json]");
                return ExitCode::from(2);
            }
        },
    };
    let mut document: serde_json::Value = match serde_json::from_str(&text) {
        Ok(document) => document,
        Err(e) => {
            eprintln!("container: '{source}' is not valid JSON: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = examples::expand_env(&mut document, |name| std::env::var(name).ok()) {
        eprintln!("container: '{source}': {e}");
        return ExitCode::from(2);
    }

    // The application: factories plus the configuration. Nothing here names a backend.
    let mut container = Container::new();
    container.add_factory(default_lock_factory());
    container.add_factory(memcached_lock_factory());
    if let Err(e) = container.read_config(&document) {
        eprintln!("container: '{source}': {e}");
        return ExitCode::from(2);
    }
    let ctx = Context::with_trace_id("container-example");
    if let Err(e) = container.open(&ctx).await {
        eprintln!("container: opening the components of '{source}' failed: {e}");
        if examples::is_unreachable(&e) {
            let (host, port) = examples::memcached_endpoint(|name| std::env::var(name).ok())
                .unwrap_or_else(|_| (examples::DEFAULT_HOST.to_string(), examples::DEFAULT_PORT));
            eprintln!("\n{}", examples::how_to_start_memcached(&host, port));
        }
        return ExitCode::FAILURE;
    }

    let locator = Descriptor::new("*", "lock", "*", "*", "1.0");
    let lock: Arc<dyn Lock> = match container.references().get_one_required(&locator) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("container: '{source}' configures no lock component: {e}");
            let _ = container.close(&ctx).await;
            return ExitCode::FAILURE;
        }
    };
    let backends: Vec<String> = container
        .component_descriptors()
        .into_iter()
        .filter(|d| d.matches(&locator))
        .map(|d| d.to_string())
        .collect();
    println!("configuration: {source}");
    println!(
        "lock component: {} (looked up by {locator})",
        backends.join(", ")
    );
    println!("{WORKERS} workers compete for the job lock '{JOB_KEY}', {ROUNDS} jobs each");

    let observed = Arc::new(Observed::default());
    let mut tasks = Vec::new();
    for id in 1..=WORKERS {
        let (lock, ctx, observed) = (lock.clone(), ctx.clone(), observed.clone());
        tasks.push(tokio::spawn(async move {
            worker(id, lock, ctx, observed).await
        }));
    }
    let mut failed = false;
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("worker-{}: {e}", i + 1);
                failed = true;
            }
            Err(e) => {
                eprintln!("worker-{} crashed: {e}", i + 1);
                failed = true;
            }
        }
    }
    if let Err(e) = container.close(&ctx).await {
        eprintln!("container: closing failed: {e}");
        failed = true;
    }

    let most_inside = observed.most_inside.load(Ordering::SeqCst);
    let tokens = observed
        .tokens
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    let growing = tokens.windows(2).all(|w| match (w[0], w[1]) {
        (Some(a), Some(b)) => a < b,
        _ => false,
    });
    let runs = observed.runs.lock().map(|r| r.clone()).unwrap_or_default();
    let total: usize = runs.values().sum();
    let per_worker: Vec<String> = runs
        .iter()
        .map(|(id, n)| format!("worker-{id}: {n}"))
        .collect();
    println!(
        "summary: {total} jobs run ({}); most holders at once: {most_inside}; \
         fencing tokens grew with every holder: {}",
        per_worker.join(", "),
        if growing { "yes" } else { "no" }
    );
    let ok = !failed && most_inside == 1 && growing && total == WORKERS * ROUNDS;
    if !ok {
        eprintln!("container: the run did not behave as a lock should (see above)");
        return ExitCode::FAILURE;
    }
    println!("mutual exclusion held: one holder at a time");

    if path.is_none() {
        println!();
        println!(
            "This ran on the embedded in-memory lock. To run the SAME code on memcached \
             (a configuration change only), start a server and pass the other configuration:"
        );
        println!("    memcached -p 11211 &");
        println!("    cargo run --example container -- examples/config/memcached.json");
    }
    ExitCode::SUCCESS
}

/// One worker: for each round, take the job lock (a single try first, then wait for it),
/// run the job while holding it, release it.
async fn worker(
    id: usize,
    lock: Arc<dyn Lock>,
    ctx: Context,
    observed: Arc<Observed>,
) -> commons::Result<()> {
    for round in 1..=ROUNDS {
        let guard = match LockGuard::try_acquire(lock.clone(), &ctx, JOB_KEY, TTL).await {
            Ok(Some(guard)) => guard,
            Ok(None) => {
                println!("worker-{id}: the job lock is busy, waiting for it");
                LockGuard::acquire(lock.clone(), &ctx, JOB_KEY, TTL, WAIT).await?
            }
            // A passing outage (a server restarting; in quorum mode, new servers in their
            // quarantine): wait as for a busy lock.
            Err(e) if e.is_retryable() => {
                println!("worker-{id}: {}; waiting", e.message());
                LockGuard::acquire(lock.clone(), &ctx, JOB_KEY, TTL, WAIT).await?
            }
            Err(e) => return Err(e),
        };
        let inside = observed.inside.fetch_add(1, Ordering::SeqCst) + 1;
        observed.most_inside.fetch_max(inside, Ordering::SeqCst);
        let token = guard.fencing_token();
        if let Ok(mut tokens) = observed.tokens.lock() {
            tokens.push(token);
        }
        println!(
            "worker-{id} holds the job lock (fencing token {}): running job {round}/{ROUNDS}",
            token.map_or_else(|| "none".to_string(), |t| t.to_string())
        );
        // The job. Were the lease lost (a refused renewal), the job would stop here.
        let finished = tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(40)) => true,
            _ = guard.lost() => false,
        };
        observed.inside.fetch_sub(1, Ordering::SeqCst);
        if !finished {
            println!("worker-{id}: lost the job lock during job {round}; stopping it");
            continue;
        }
        if let Ok(mut runs) = observed.runs.lock() {
            *runs.entry(id).or_default() += 1;
        }
        println!("worker-{id} finished job {round}/{ROUNDS}, releasing the job lock");
        guard.release().await?;
        // Give the others a chance before trying again.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
