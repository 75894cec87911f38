//! A chaos worker process: many tasks contending for a few keys through `MemcachedLock`,
//! each holding recorded as a JSON line on stdout.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commons::{ConfigParams, Configurable, Context, Openable, codes};
use lock_core::{Lease, Lock, LockGuard};
use lock_memcached::MemcachedLock;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::time::Instant;

use crate::checker::{FaultKind, Holder, holder_to_json};
use crate::resource::ResourceClient;
use crate::{deadline_wall_ns, wall_ns};

/// What a worker is told on its command line.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerArgs {
    /// Worker index.
    pub id: usize,
    /// `memcached://host:port,host:port,...` (the proxies).
    pub uri: String,
    /// Number of servers behind `uri` (key `i` lives on server `i % servers`).
    pub servers: usize,
    /// The contended keys.
    pub keys: Vec<String>,
    /// The fenced resource.
    pub resource: SocketAddr,
    /// How long to run.
    pub duration: Duration,
    /// Tasks in this process.
    pub tasks: usize,
    /// RNG seed.
    pub seed: u64,
    /// Lease ttl.
    pub ttl: Duration,
    /// `options.timeout`.
    pub timeout: Duration,
    /// Probability that a holder sleeps through its lease while inside.
    pub sleep_probability: f64,
    /// Quorum mode: `Some((max_ttl, quarantine))` configures `options.mode=quorum` with
    /// these; `None` is the sharded run (`options.distribution=modula`).
    pub quorum: Option<(Duration, Duration)>,
}

impl WorkerArgs {
    /// The command-line form (after `--worker`).
    pub fn to_args(&self) -> Vec<String> {
        vec![
            format!("--id={}", self.id),
            format!("--uri={}", self.uri),
            format!("--servers={}", self.servers),
            format!("--keys={}", self.keys.join(",")),
            format!("--resource={}", self.resource),
            format!("--millis={}", self.duration.as_millis()),
            format!("--tasks={}", self.tasks),
            format!("--seed={}", self.seed),
            format!("--ttl-ms={}", self.ttl.as_millis()),
            format!("--timeout-ms={}", self.timeout.as_millis()),
            format!("--sleep-probability={}", self.sleep_probability),
            match self.quorum {
                Some((max_ttl, quarantine)) => format!(
                    "--quorum={},{}",
                    max_ttl.as_millis(),
                    quarantine.as_millis()
                ),
                None => "--quorum=off".to_string(),
            },
        ]
    }

    /// Parses [`WorkerArgs::to_args`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use lock_chaos::worker::WorkerArgs;
    /// let a = WorkerArgs { id: 1, uri: "memcached://127.0.0.1:1".into(), servers: 1,
    ///     keys: vec!["k".into()], resource: "127.0.0.1:2".parse().unwrap(),
    ///     duration: Duration::from_secs(3), tasks: 2, seed: 9, ttl: Duration::from_secs(2),
    ///     timeout: Duration::from_millis(500), sleep_probability: 0.5, quorum: None };
    /// assert_eq!(WorkerArgs::parse(&a.to_args()).unwrap(), a);
    /// let q = WorkerArgs { quorum: Some((Duration::from_secs(3), Duration::from_secs(4))), ..a };
    /// assert_eq!(WorkerArgs::parse(&q.to_args()).unwrap(), q);
    /// assert!(WorkerArgs::parse(&["--id=x".to_string()]).is_err());
    /// ```
    pub fn parse(args: &[String]) -> Result<WorkerArgs, String> {
        let mut map = BTreeMap::new();
        for a in args {
            let (k, v) = a
                .strip_prefix("--")
                .and_then(|a| a.split_once('='))
                .ok_or_else(|| format!("bad worker argument {a:?}"))?;
            map.insert(k.to_string(), v.to_string());
        }
        let get = |k: &str| map.get(k).ok_or_else(|| format!("missing --{k}"));
        let num = |k: &str| -> Result<u64, String> {
            get(k)?.parse::<u64>().map_err(|e| format!("--{k}: {e}"))
        };
        Ok(WorkerArgs {
            id: num("id")? as usize,
            uri: get("uri")?.clone(),
            servers: num("servers")? as usize,
            keys: get("keys")?.split(',').map(str::to_string).collect(),
            resource: get("resource")?
                .parse()
                .map_err(|e| format!("--resource: {e}"))?,
            duration: Duration::from_millis(num("millis")?),
            tasks: num("tasks")? as usize,
            seed: num("seed")?,
            ttl: Duration::from_millis(num("ttl-ms")?),
            timeout: Duration::from_millis(num("timeout-ms")?),
            sleep_probability: get("sleep-probability")?
                .parse()
                .map_err(|e| format!("--sleep-probability: {e}"))?,
            quorum: match map.get("quorum").map(String::as_str) {
                None | Some("off") => None,
                Some(v) => {
                    let ms = |s: &str| {
                        s.parse::<u64>()
                            .map(Duration::from_millis)
                            .map_err(|e| format!("--quorum: {e}"))
                    };
                    let (max_ttl, quarantine) = v
                        .split_once(',')
                        .ok_or_else(|| format!("--quorum={v}: want MAX_TTL_MS,QUARANTINE_MS"))?;
                    Some((ms(max_ttl)?, ms(quarantine)?))
                }
            },
        })
    }
}

#[derive(Debug, Default)]
struct Stats {
    worker: usize,
    ops: AtomicU64,
    acquisitions: AtomicU64,
    contended: AtomicU64,
    hangs: AtomicU64,
    holder_sleeps: AtomicU64,
    resource_errors: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl Stats {
    fn error(&self, code: &'static str) {
        if let Ok(mut e) = self.errors.lock() {
            *e.entry(code).or_insert(0) += 1;
        }
    }
}

fn emit(line: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs one lock call bounded by `limit`; `None` (counted as a hang) when it did not
/// complete in time.
async fn call<T>(
    stats: &Stats,
    limit: Duration,
    fut: impl Future<Output = commons::Result<T>>,
) -> Option<commons::Result<T>> {
    stats.ops.fetch_add(1, Ordering::Relaxed);
    let start_ns = wall_ns();
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => {
            if let Err(e) = &r {
                stats.error(e.code());
            }
            Some(r)
        }
        Err(_) => {
            stats.hangs.fetch_add(1, Ordering::Relaxed);
            // The orchestrator tells real hangs from this process having been frozen.
            emit(&json!({
                "t": "hang",
                "worker": stats.worker,
                "limit_ms": limit.as_millis() as u64,
                "start_ns": start_ns,
                "end_ns": wall_ns(),
            }));
            None
        }
    }
}

/// The `MemcachedLock` configuration a chaos worker uses.
///
/// ```
/// use std::time::Duration;
/// let c = lock_chaos::worker::lock_config("memcached://127.0.0.1:1", Duration::from_millis(800));
/// assert_eq!(c.get("options.distribution"), Some("modula"));
/// ```
pub fn lock_config(uri: &str, timeout: Duration) -> ConfigParams {
    ConfigParams::from_tuples([
        ("connection.uri", uri.to_string()),
        ("options.distribution", "modula".to_string()),
        ("options.timeout", timeout.as_millis().to_string()),
        ("options.connect_timeout", timeout.as_millis().to_string()),
        ("options.pool_size", "1".to_string()),
        ("options.reconnect", "100".to_string()),
        ("options.retry", "500".to_string()),
        ("options.failures", "5".to_string()),
        ("options.retry_timeout", "20".to_string()),
    ])
}

/// The quorum-mode configuration: [`lock_config`] with `options.mode=quorum`,
/// `options.max_ttl` and `options.quarantine` (every key on every server, so no
/// `options.distribution`).
///
/// ```
/// use std::time::Duration;
/// let c = lock_chaos::worker::quorum_lock_config("memcached://127.0.0.1:1",
///     Duration::from_millis(800), Duration::from_secs(3), Duration::from_secs(3));
/// assert_eq!(c.get("options.mode"), Some("quorum"));
/// assert_eq!(c.get("options.quarantine"), Some("3000"));
/// assert_eq!(c.get("options.distribution"), None);
/// ```
pub fn quorum_lock_config(
    uri: &str,
    timeout: Duration,
    max_ttl: Duration,
    quarantine: Duration,
) -> ConfigParams {
    let base = lock_config(uri, timeout);
    let mut tuples: Vec<(String, String)> = base
        .iter()
        .filter(|(k, _)| *k != "options.distribution")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tuples.push(("options.mode".into(), "quorum".into()));
    tuples.push(("options.max_ttl".into(), max_ttl.as_millis().to_string()));
    tuples.push((
        "options.quarantine".into(),
        quarantine.as_millis().to_string(),
    ));
    ConfigParams::from_tuples(tuples)
}

/// The configuration `args` call for (sharded or quorum).
pub fn config_for(args: &WorkerArgs) -> ConfigParams {
    match args.quorum {
        Some((max_ttl, quarantine)) => {
            quorum_lock_config(&args.uri, args.timeout, max_ttl, quarantine)
        }
        None => lock_config(&args.uri, args.timeout),
    }
}

async fn open_lock(args: &WorkerArgs) -> Result<Arc<MemcachedLock>, String> {
    let lock = MemcachedLock::new();
    lock.configure(&config_for(args))
        .map_err(|e| e.to_string())?;
    let mut last = String::new();
    for _ in 0..50 {
        match tokio::time::timeout(args.timeout * 3, lock.open(&Context::new())).await {
            Ok(Ok(())) => return Ok(Arc::new(lock)),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "open hung".to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last)
}

/// Runs the worker until its duration is over; returns the process exit code.
pub async fn run_worker(args: WorkerArgs) -> i32 {
    let stats = Arc::new(Stats {
        worker: args.id,
        ..Stats::default()
    });
    let deadline = Instant::now() + args.duration;
    let args = Arc::new(args);
    let mut tasks = Vec::new();
    for t in 0..args.tasks {
        let (args, stats) = (args.clone(), stats.clone());
        tasks.push(tokio::spawn(async move {
            run_task(&args, t, &stats, deadline).await
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(format!("task panicked: {e}")),
        }
    }
    let errors: BTreeMap<String, u64> = stats
        .errors
        .lock()
        .map(|e| e.iter().map(|(k, v)| (k.to_string(), *v)).collect())
        .unwrap_or_default();
    emit(&json!({
        "t": "worker",
        "id": args.id,
        "ops": stats.ops.load(Ordering::Relaxed),
        "acquisitions": stats.acquisitions.load(Ordering::Relaxed),
        "contended": stats.contended.load(Ordering::Relaxed),
        "hangs": stats.hangs.load(Ordering::Relaxed),
        "holder_sleeps": stats.holder_sleeps.load(Ordering::Relaxed),
        "resource_errors": stats.resource_errors.load(Ordering::Relaxed),
        "errors": errors,
        "failures": failures,
    }));
    if failures.is_empty() { 0 } else { 3 }
}

/// How a holding ended, from the holder's point of view.
struct Exit {
    valid: bool,
    lost_signal: bool,
    lost_without_signal: bool,
    deadline_ns: u64,
}

async fn run_task(
    args: &WorkerArgs,
    task: usize,
    stats: &Stats,
    deadline: Instant,
) -> Result<(), String> {
    let lock = open_lock(args).await?;
    let dyn_lock: Arc<dyn Lock> = lock.clone();
    let mut resource = ResourceClient::connect(args.resource)
        .await
        .map_err(|e| format!("resource: {e}"))?;
    let mut rng = StdRng::seed_from_u64(
        args.seed ^ ((args.id as u64) << 40) ^ ((task as u64) << 20) ^ 0x5eed,
    );
    let ctx = Context::with_trace_id(format!("chaos-w{}-t{task}", args.id));
    let limit = args.timeout * 3;
    let wait = Duration::from_millis(1000);
    let mut seq = 0u64;
    while Instant::now() < deadline {
        seq += 1;
        let k = rng.random_range(0..args.keys.len());
        let key = args.keys[k].as_str();
        let id = format!("w{}.t{task}.{seq}", args.id);
        let use_guard = rng.random_bool(0.4);
        let waiting = rng.random_bool(0.5);
        let mut holder = Holder {
            id: id.clone(),
            key: key.to_string(),
            server: k % args.servers.max(1),
            guard: use_guard,
            ..Holder::default()
        };
        // The guard (when the holding uses one) and the lease, or the next attempt.
        let got = if use_guard {
            let builder = LockGuard::builder(dyn_lock.clone(), key, args.ttl);
            let got = if waiting {
                call(stats, wait + limit, builder.acquire(&ctx, wait))
                    .await
                    .map(|r| r.map(Some))
            } else {
                call(stats, limit, builder.try_acquire(&ctx)).await
            };
            got.map(|r| r.map(|g| g.map(|g| (g.lease(), Some(g)))))
        } else {
            let got = if waiting {
                call(
                    stats,
                    wait + limit,
                    lock.acquire_lease(&ctx, key, args.ttl, wait),
                )
                .await
                .map(|r| r.map(Some))
            } else {
                call(stats, limit, lock.try_acquire_lease(&ctx, key, args.ttl)).await
            };
            got.map(|r| r.map(|l| l.map(|l| (l, None))))
        };
        let (lease, guard) = match got {
            Some(Ok(Some(held))) => held,
            Some(Ok(None)) => {
                stats.contended.fetch_add(1, Ordering::Relaxed);
                pause_between(&mut rng).await;
                continue;
            }
            Some(Err(e)) if e.code() == codes::LOCK_TIMEOUT => {
                stats.contended.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            _ => {
                pause_between(&mut rng).await;
                continue;
            }
        };
        stats.acquisitions.fetch_add(1, Ordering::Relaxed);
        holder.enter_ns = wall_ns();
        // The start of the attempt that succeeded (orders acquisitions of a key).
        holder.acquire_start_ns = deadline_wall_ns(lease.acquired_at);
        holder.fencing_token = lease.fencing_token;
        sample_on_server(
            &lock,
            &ctx,
            key,
            &lease,
            stats,
            limit,
            &mut rng,
            &mut holder,
        )
        .await;
        present(&mut resource, stats, &holder).await;
        match &guard {
            // Work in steps, stopping early once the guard is lost.
            Some(guard) => {
                let work = Duration::from_millis(rng.random_range(50..1200));
                let until = Instant::now() + work;
                while Instant::now() < until && !guard.is_lost() {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
            None => {
                tokio::time::sleep(Duration::from_millis(rng.random_range(5..120))).await;
            }
        }
        if rng.random_bool(args.sleep_probability) {
            holder.slept_inside_ms = sleep_inside(args, stats, &mut rng).await;
        }
        // A zombie-style write: fencing must refuse it if the lease is gone.
        present(&mut resource, stats, &holder).await;
        let exit = match &guard {
            Some(guard) => guard_exit(guard).await,
            None => Exit {
                valid: lease.is_valid(),
                lost_signal: false,
                lost_without_signal: false,
                deadline_ns: deadline_wall_ns(lease.valid_until),
            },
        };
        holder.exit_ns = wall_ns();
        holder.valid_at_exit = exit.valid;
        holder.lost_signal = exit.lost_signal;
        holder.lost_without_signal = exit.lost_without_signal;
        holder.deadline_ns = exit.deadline_ns;
        emit(&holder_to_json(&holder));
        let _ = match guard {
            Some(guard) => call(stats, limit, guard.release()).await,
            None => call(stats, limit, lock.release_owned(&ctx, key)).await,
        };
        pause_between(&mut rng).await;
    }
    let _ = tokio::time::timeout(limit, lock.close(&Context::new())).await;
    Ok(())
}

async fn pause_between(rng: &mut StdRng) {
    tokio::time::sleep(Duration::from_millis(rng.random_range(1..25))).await;
}

/// Sleeps through the lease while inside (the "client pause" a single task can do).
async fn sleep_inside(args: &WorkerArgs, stats: &Stats, rng: &mut StdRng) -> u64 {
    let ms = args.ttl.as_millis() as u64 + rng.random_range(300..900);
    let start = wall_ns();
    tokio::time::sleep(Duration::from_millis(ms)).await;
    stats.holder_sleeps.fetch_add(1, Ordering::Relaxed);
    emit(&json!({
        "t": "fault",
        "kind": FaultKind::HolderSleep.name(),
        "target": args.id,
        "start_ns": start,
        "end_ns": wall_ns(),
    }));
    ms
}

/// In about one holding in five, checks that the server holds this holder's item.
#[allow(clippy::too_many_arguments)]
async fn sample_on_server(
    lock: &MemcachedLock,
    ctx: &Context,
    key: &str,
    lease: &Lease,
    stats: &Stats,
    limit: Duration,
    rng: &mut StdRng,
    holder: &mut Holder,
) {
    if !rng.random_bool(0.2) {
        return;
    }
    if let Some(Ok(info)) = call(stats, limit, lock.inspect_lock(ctx, key)).await {
        // Only meaningful while the lease is certainly valid.
        if lease.is_valid() {
            holder.on_server = Some(info.held_by_me);
            holder.on_server_checked_ns = wall_ns();
        }
    }
}

async fn present(resource: &mut ResourceClient, stats: &Stats, holder: &Holder) {
    let Some(token) = holder.fencing_token else {
        stats.resource_errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if resource
        .write(&holder.key, token, &holder.id)
        .await
        .is_err()
    {
        stats.resource_errors.fetch_add(1, Ordering::Relaxed);
    }
}

async fn guard_exit(guard: &LockGuard) -> Exit {
    // The watch, not `is_lost()`: `is_lost()` answers from the deadline by itself, while the
    // watch shows whether the guard's task signalled the loss (what a `lost_signal()` user
    // relies on).
    let signal = guard.lost_signal();
    let lease = guard.lease();
    let mut lost = *signal.borrow();
    let mut lost_without_signal = false;
    if !lease.is_valid() && !lost {
        // The renewal task sends the signal at the deadline; give it a moment to run.
        tokio::time::sleep(Duration::from_millis(300)).await;
        lost = *signal.borrow();
        lost_without_signal = !lost;
    }
    Exit {
        valid: !lost && lease.is_valid(),
        lost_signal: lost,
        lost_without_signal,
        deadline_ns: deadline_wall_ns(lease.valid_until),
    }
}
