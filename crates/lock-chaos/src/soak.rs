//! The soak: mixed lock operations over churning unique keys against one memcached, with
//! memory, descriptors, tasks and the lease table sampled every interval.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commons::{ConfigParams, Configurable, Context, Openable};
use lock_core::{Lock, LockGuard};
use lock_memcached::MemcachedLock;
use memcached_testkit::MemcachedServer;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{numeric_flags, open_fds, rss_kib};

/// Options of a soak.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakOptions {
    /// How long to run.
    pub duration: Duration,
    /// How often to print a sample.
    pub interval: Duration,
    /// Concurrent tasks.
    pub tasks: usize,
}

impl SoakOptions {
    /// Parses `[SECONDS] [--interval-ms=N] [--tasks=N]` (defaults 600 s, 10 s, 16 tasks).
    ///
    /// ```
    /// use lock_chaos::soak::SoakOptions;
    /// let o = SoakOptions::parse(&["5".into(), "--interval-ms=1000".into()]).unwrap();
    /// assert_eq!((o.duration.as_secs(), o.interval.as_millis(), o.tasks), (5, 1000, 16));
    /// assert!(SoakOptions::parse(&["--tasks=0".into()]).is_err());
    /// ```
    pub fn parse(args: &[String]) -> Result<SoakOptions, String> {
        let mut o = SoakOptions {
            duration: Duration::from_secs(600),
            interval: Duration::from_secs(10),
            tasks: 16,
        };
        for (k, n, a) in numeric_flags(args)? {
            match k {
                "seconds" => o.duration = Duration::from_secs(n),
                "interval-ms" => o.interval = Duration::from_millis(n),
                "tasks" => o.tasks = n as usize,
                _ => return Err(format!("unknown option {a}")),
            }
        }
        if o.tasks == 0 || o.interval.is_zero() {
            return Err("--tasks and --interval-ms must be above 0".into());
        }
        Ok(o)
    }
}

#[derive(Debug, Default)]
struct Counters {
    ops: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counters {
    fn count<T>(&self, r: &commons::Result<T>) {
        self.ops.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = r {
            if let Ok(mut m) = self.errors.lock() {
                *m.entry(e.code()).or_insert(0) += 1;
            }
        }
    }

    fn errors(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.to_string(), *v)).collect())
            .unwrap_or_default()
    }
}

fn sample(
    lock: &MemcachedLock,
    elapsed: Duration,
    ops: u64,
    window_ops: u64,
    window: Duration,
    errors: u64,
) -> Value {
    json!({
        "t": "sample",
        "elapsed_s": elapsed.as_secs_f64(),
        "ops": ops,
        "ops_per_s": window_ops as f64 / window.as_secs_f64().max(1e-9),
        "rss_kib": rss_kib(),
        "open_fds": open_fds(),
        "alive_tasks": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
        "held_count": lock.held_count(),
        "errors": errors,
    })
}

/// Runs the soak, printing a JSON sample line every interval through `out`; returns the
/// summary.
pub async fn run_soak(options: SoakOptions, out: impl Fn(&Value)) -> Result<Value, String> {
    let server = MemcachedServer::start().map_err(|e| format!("memcached: {e}"))?;
    let lock = Arc::new(MemcachedLock::new());
    lock.configure(&ConfigParams::from_tuples([
        ("connection.host", server.host().to_string()),
        ("connection.port", server.port().to_string()),
    ]))
    .map_err(|e| e.to_string())?;
    lock.open(&Context::new())
        .await
        .map_err(|e| e.to_string())?;
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let deadline = start + options.duration;
    let first = sample(&lock, Duration::ZERO, 0, 0, Duration::from_secs(1), 0);
    out(&first);

    let mut tasks = Vec::new();
    for t in 0..options.tasks {
        let (lock, counters) = (lock.clone(), counters.clone());
        tasks.push(tokio::spawn(async move {
            churn(lock, counters, t, deadline).await;
        }));
    }
    let mut samples = vec![first];
    let mut last_ops = 0;
    let mut last_at = start;
    while Instant::now() < deadline {
        let next = (last_at + options.interval).min(deadline);
        tokio::time::sleep_until(next).await;
        let now = Instant::now();
        let ops = counters.ops.load(Ordering::Relaxed);
        let errors = counters.errors().values().sum();
        let s = sample(
            &lock,
            now - start,
            ops,
            ops - last_ops,
            now - last_at,
            errors,
        );
        out(&s);
        samples.push(s);
        last_ops = ops;
        last_at = now;
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = lock.close(&Context::new()).await;
    drop(server);
    let firsts = samples.get(1).cloned().unwrap_or(Value::Null);
    let lasts = samples.last().cloned().unwrap_or(Value::Null);
    let pick = |v: &Value, k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    let ops = counters.ops.load(Ordering::Relaxed);
    Ok(json!({
        "summary": "soak",
        "seconds": options.duration.as_secs_f64(),
        "tasks": options.tasks,
        "operations": ops,
        "ops_per_s_overall": ops as f64 / options.duration.as_secs_f64().max(1e-9),
        "rss_kib_start": pick(&samples[0], "rss_kib"),
        "rss_kib_after_first_window": pick(&firsts, "rss_kib"),
        "rss_kib_end": pick(&lasts, "rss_kib"),
        "rss_kib_max": samples.iter().filter_map(|s| s.get("rss_kib").and_then(Value::as_u64)).max(),
        "open_fds_start": pick(&samples[0], "open_fds"),
        "open_fds_end": pick(&lasts, "open_fds"),
        "alive_tasks_end": pick(&lasts, "alive_tasks"),
        "held_count_end": pick(&lasts, "held_count"),
        "held_count_max": samples.iter().filter_map(|s| s.get("held_count").and_then(Value::as_u64)).max(),
        "ops_per_s_first_window": pick(&firsts, "ops_per_s"),
        "ops_per_s_last_window": pick(&lasts, "ops_per_s"),
        "errors": counters.errors(),
        "samples": samples.len(),
    }))
}

/// One task's mix of operations over unique keys.
async fn churn(lock: Arc<MemcachedLock>, c: Arc<Counters>, task: usize, deadline: Instant) {
    let ctx = Context::new();
    let dyn_lock: Arc<dyn Lock> = lock.clone();
    let ttl = Duration::from_secs(3);
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let key = format!("soak-{task}-{n}");
        match n % 10 {
            0..=3 => {
                let r = lock.try_acquire_lease(&ctx, &key, ttl).await;
                c.count(&r);
                if matches!(r, Ok(Some(_))) {
                    c.count(&lock.extend_lease(&ctx, &key, ttl).await);
                    c.count(&lock.inspect_lock(&ctx, &key).await);
                    c.count(&lock.release_owned(&ctx, &key).await);
                }
            }
            4 | 5 => {
                let r = lock
                    .acquire_lease(&ctx, &key, ttl, Duration::from_millis(100))
                    .await;
                c.count(&r);
                if r.is_ok() {
                    c.count(&lock.release_owned(&ctx, &key).await);
                }
            }
            6 | 7 => {
                let r = LockGuard::try_acquire(dyn_lock.clone(), &ctx, &key, ttl).await;
                c.count(&r);
                if let Ok(Some(g)) = r {
                    c.count(&g.release().await);
                }
            }
            8 => {
                // One in a thousand iterations leaves its lock to expire (the lease table
                // must not grow for good); the others drop a guard without releasing it.
                // (Abandoned leases stay in the table until certainly expired, ttl +
                // options.timeout + 1 s: at one in a hundred, ~90 per second, the default
                // options.max_size of 1000 is reached and acquires fail TOO_MANY_LOCKS.)
                if n % 1000 == 8 {
                    c.count(
                        &lock
                            .try_acquire_lease(&ctx, &key, Duration::from_secs(1))
                            .await,
                    );
                } else {
                    let r = LockGuard::try_acquire(dyn_lock.clone(), &ctx, &key, ttl).await;
                    c.count(&r);
                    drop(r);
                }
            }
            _ => {
                c.count(&lock.inspect_lock(&ctx, &key).await);
                c.count(&lock.release_owned(&ctx, &key).await);
            }
        }
    }
}
