//! The chaos orchestrator: servers, proxies, the fenced resource, worker processes, the
//! fault scheduler and the final check.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commons::{ConfigParams, Configurable, Context, Openable};
use lock_core::Lock;
use lock_memcached::MemcachedLock;
use memcached_testkit::{FaultProxy, MemcachedServer};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::Instant;

use crate::checker::{Fault, FaultKind, Mode, check_mode, holder_from_json};
use crate::resource::FencedResource;
use crate::worker::{WorkerArgs, quorum_lock_config};
use crate::{keys_for_servers, numeric_flags, wall_ns};

/// Options of a chaos run.
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosOptions {
    /// How long the workers run.
    pub duration: Duration,
    /// Worker processes.
    pub workers: usize,
    /// Tasks per worker.
    pub tasks: usize,
    /// memcached servers (the last one is tiny and evicts); at least 2.
    pub servers: usize,
    /// Contended keys.
    pub keys: usize,
    /// Scheduler and worker seed.
    pub seed: u64,
    /// Lease ttl.
    pub ttl: Duration,
    /// `options.timeout` of the workers' locks.
    pub timeout: Duration,
    /// Probability that a holder sleeps through its lease.
    pub sleep_probability: f64,
    /// The worker executable (this binary).
    pub exe: PathBuf,
    /// Sharded (default: keys spread by `options.distribution=modula`) or quorum
    /// (`options.mode=quorum`, every key on every server; 5 servers unless `--servers`).
    pub mode: Mode,
    /// Quorum mode: `options.max_ttl` of every worker.
    pub max_ttl: Duration,
    /// Quorum mode: `options.quarantine` of every worker.
    pub quarantine: Duration,
    /// Where to write the SVG timeline of the run (none by default).
    pub svg: Option<PathBuf>,
}

impl ChaosOptions {
    /// Defaults: 60 s, 3 workers x 8 tasks, 3 servers, 3 keys, ttl 2 s, timeout 800 ms.
    pub fn new(exe: PathBuf) -> Self {
        ChaosOptions {
            duration: Duration::from_secs(60),
            workers: 3,
            tasks: 8,
            servers: 3,
            keys: 3,
            seed: 1,
            ttl: Duration::from_secs(2),
            timeout: Duration::from_millis(800),
            sleep_probability: 0.03,
            exe,
            mode: Mode::Sharded,
            max_ttl: Duration::from_millis(3000),
            quarantine: Duration::from_millis(3000),
            svg: None,
        }
    }

    /// Parses `--seconds=N --workers=N --tasks=N --servers=N --keys=N --seed=N --ttl-ms=N
    /// --timeout-ms=N --mode=sharded|quorum --max-ttl-ms=N --quarantine-ms=N --svg=PATH`
    /// (each optional), or a bare number of seconds.
    ///
    /// ```
    /// use lock_chaos::checker::Mode;
    /// use lock_chaos::orchestrator::ChaosOptions;
    /// let o = ChaosOptions::parse(&["12".into(), "--seed=7".into()], "chaos".into()).unwrap();
    /// assert_eq!((o.duration.as_secs(), o.seed, o.workers), (12, 7, 3));
    /// assert_eq!((o.mode, o.servers, o.svg), (Mode::Sharded, 3, None));
    /// assert!(ChaosOptions::parse(&["--servers=1".into()], "chaos".into()).is_err());
    /// let q = ChaosOptions::parse(&["--mode=quorum".into(), "--svg=t.svg".into()],
    ///     "chaos".into()).unwrap();
    /// assert_eq!((q.mode, q.servers, q.svg.unwrap().to_str()), (Mode::Quorum, 5, Some("t.svg")));
    /// assert!(ChaosOptions::parse(&["--mode=quorum".into(), "--servers=2".into()],
    ///     "chaos".into()).is_err());
    /// assert!(ChaosOptions::parse(&["--mode=quorum".into(), "--quarantine-ms=2500".into()],
    ///     "chaos".into()).is_err());
    /// ```
    pub fn parse(args: &[String], exe: PathBuf) -> Result<ChaosOptions, String> {
        let mut o = ChaosOptions::new(exe);
        let mut numeric = Vec::new();
        for a in args {
            if let Some(mode) = a.strip_prefix("--mode=") {
                o.mode = Mode::from_name(mode)
                    .ok_or_else(|| format!("{a}: want --mode=sharded or --mode=quorum"))?;
            } else if let Some(path) = a.strip_prefix("--svg=") {
                o.svg = (!path.is_empty()).then(|| PathBuf::from(path));
            } else {
                numeric.push(a.clone());
            }
        }
        let mut servers_given = false;
        for (k, n, a) in numeric_flags(&numeric)? {
            match k {
                "seconds" => o.duration = Duration::from_secs(n),
                "workers" => o.workers = n as usize,
                "tasks" => o.tasks = n as usize,
                "servers" => {
                    o.servers = n as usize;
                    servers_given = true;
                }
                "max-ttl-ms" => o.max_ttl = Duration::from_millis(n),
                "quarantine-ms" => o.quarantine = Duration::from_millis(n),
                "keys" => o.keys = n as usize,
                "seed" => o.seed = n,
                "ttl-ms" => o.ttl = Duration::from_millis(n),
                "timeout-ms" => o.timeout = Duration::from_millis(n),
                _ => return Err(format!("unknown option {a}")),
            }
        }
        if o.servers < 2 || o.workers == 0 || o.tasks == 0 || o.keys == 0 {
            return Err("need --servers >= 2 and at least one worker, task and key".into());
        }
        if o.ttl < Duration::from_secs(2) {
            return Err("--ttl-ms must be at least 2000 (a 1 s lease is never valid)".into());
        }
        if o.mode == Mode::Quorum {
            if !servers_given {
                o.servers = 5;
            }
            if o.servers < 3 {
                return Err("--mode=quorum needs --servers >= 3".into());
            }
            if o.max_ttl < o.ttl || o.quarantine < o.max_ttl {
                return Err("--mode=quorum needs ttl <= max-ttl <= quarantine".into());
            }
        }
        Ok(o)
    }
}

/// Everything the scheduler touches.
struct Rig {
    servers: Vec<Arc<Mutex<MemcachedServer>>>,
    proxies: Vec<FaultProxy>,
    worker_pids: Vec<u32>,
    faults: Mutex<Vec<Fault>>,
    evicted: Mutex<u64>,
}

fn lock_server(s: &Mutex<MemcachedServer>) -> std::sync::MutexGuard<'_, MemcachedServer> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl Rig {
    fn record(&self, kind: FaultKind, target: Option<usize>, start_ns: u64) {
        let end_ns = wall_ns();
        if let Ok(mut f) = self.faults.lock() {
            f.push(Fault {
                kind,
                target,
                start_ns,
                end_ns,
            });
        }
        eprintln!(
            "chaos: {} on {:?} for {} ms",
            kind.name(),
            target,
            end_ns.saturating_sub(start_ns) / 1_000_000
        );
    }

    async fn blocking<R: Send + 'static>(
        &self,
        server: usize,
        f: impl FnOnce(&mut MemcachedServer) -> R + Send + 'static,
    ) -> Option<R> {
        let s = self.servers.get(server)?.clone();
        tokio::task::spawn_blocking(move || f(&mut lock_server(&s)))
            .await
            .ok()
    }

    async fn evictions(&self, server: usize) -> u64 {
        self.blocking(server, |s| {
            s.stats().ok().and_then(|st| {
                st.iter()
                    .find(|(k, _)| k == "evictions")
                    .and_then(|(_, v)| v.parse().ok())
            })
        })
        .await
        .flatten()
        .unwrap_or(0)
    }

    /// Kills `server` (SIGKILL), keeps it down 1.1 to 1.6 s, starts it again on its port.
    async fn restart(&self, server: usize, rng: &mut StdRng) {
        self.blocking(server, |s| s.stop()).await;
        // Down long enough that the new boot gets a later boot epoch (whole seconds).
        tokio::time::sleep(Duration::from_millis(rng.random_range(1100..1600))).await;
        for _ in 0..5 {
            match self.blocking(server, |s| s.restart()).await {
                Some(Ok(())) => break,
                other => eprintln!("chaos: restart failed: {other:?}"),
            }
        }
    }

    async fn inject(&self, kind: FaultKind, rng: &mut StdRng, ttl: Duration, timeout: Duration) {
        let n = self.servers.len();
        let server = rng.random_range(0..n);
        let start = wall_ns();
        let beyond_ttl = ttl + Duration::from_millis(rng.random_range(400..1000));
        match kind {
            FaultKind::Restart => {
                self.restart(server, rng).await;
                self.record(kind, Some(server), start);
            }
            FaultKind::RestartInQuarantine => {
                // A first restart, then at once another server's, while the first one is
                // still in its quarantine (younger than `options.quarantine`): for a while
                // two servers do not count towards a majority.
                self.restart(server, rng).await;
                self.record(FaultKind::Restart, Some(server), start);
                let second = (server + rng.random_range(1..n.max(2))) % n;
                let start = wall_ns();
                self.restart(second, rng).await;
                self.record(kind, Some(second), start);
            }
            FaultKind::ServerPause => {
                self.blocking(server, |s| s.pause()).await;
                tokio::time::sleep(beyond_ttl).await;
                self.blocking(server, |s| s.resume()).await;
                self.record(kind, Some(server), start);
            }
            FaultKind::ClientPause => {
                let w = rng.random_range(0..self.worker_pids.len().max(1));
                let Some(pid) = self.worker_pids.get(w).copied() else {
                    return;
                };
                signal(pid, "-STOP");
                tokio::time::sleep(beyond_ttl).await;
                signal(pid, "-CONT");
                self.record(kind, Some(w), start);
            }
            FaultKind::ConnectionReset => {
                self.proxies[server].reset_all();
                tokio::time::sleep(Duration::from_millis(50)).await;
                self.record(kind, Some(server), start);
            }
            FaultKind::Delay => {
                let most = (timeout.as_millis() as u64 / 2).max(60);
                self.proxies[server].set_delay(Duration::from_millis(rng.random_range(20..most)));
                tokio::time::sleep(Duration::from_millis(rng.random_range(800..2000))).await;
                self.proxies[server].set_delay(Duration::ZERO);
                self.record(kind, Some(server), start);
            }
            FaultKind::Eviction => {
                let tiny = n - 1;
                let before = self.evictions(tiny).await;
                let address = lock_server(&self.servers[tiny]).socket_addr();
                let burst = Duration::from_millis(rng.random_range(1500..3000));
                if let Err(e) = fill(address, burst, rng.random()).await {
                    eprintln!("chaos: filler: {e}");
                }
                let after = self.evictions(tiny).await;
                if let Ok(mut e) = self.evicted.lock() {
                    *e += after.saturating_sub(before);
                }
                self.record(kind, Some(tiny), start);
            }
            FaultKind::HolderSleep => {} // done by the workers themselves
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Writes filler items (quiet meta sets, pipelined) straight to a server for `burst`, so
/// that a tiny memory limit makes it evict (lock items included).
async fn fill(address: std::net::SocketAddr, burst: Duration, seed: u64) -> std::io::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(address))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let until = Instant::now() + burst;
    let mut n = 0u64;
    while Instant::now() < until {
        let mut batch = Vec::with_capacity(64 * 1024);
        for _ in 0..200 {
            n += 1;
            let len = rng.random_range(40..180);
            batch.extend_from_slice(format!("ms fill-{seed:x}-{n} {len} T60 q\r\n").as_bytes());
            batch.extend(std::iter::repeat_n(b'f', len));
            batch.extend_from_slice(b"\r\n");
        }
        batch.extend_from_slice(b"mn\r\n");
        let exchange = async {
            write.write_all(&batch).await?;
            while let Some(line) = lines.next_line().await? {
                if line == "MN" {
                    return Ok(());
                }
            }
            Err(std::io::Error::other("filler connection closed"))
        };
        tokio::time::timeout(Duration::from_secs(2), exchange)
            .await
            .map_err(|_| std::io::Error::other("filler timed out"))??;
    }
    Ok(())
}

/// Runs a whole chaos run and returns the summary (its `"ok"` says whether every
/// must-be-zero figure is zero).
pub async fn run_chaos(options: ChaosOptions) -> Result<Value, String> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut servers = Vec::new();
    for i in 0..options.servers {
        let builder = if i + 1 == options.servers {
            MemcachedServer::builder().memory_mb(2)
        } else {
            MemcachedServer::builder()
        };
        let server = builder.start().map_err(|e| format!("memcached: {e}"))?;
        servers.push(Arc::new(Mutex::new(server)));
    }
    let mut proxies = Vec::new();
    for s in &servers {
        let addr = lock_server(s).socket_addr();
        proxies.push(
            FaultProxy::start(addr)
                .await
                .map_err(|e| format!("proxy: {e}"))?,
        );
    }
    let resource = FencedResource::start()
        .await
        .map_err(|e| format!("resource: {e}"))?;
    let keys = keys_for_servers(options.keys, options.servers);
    let uri = format!(
        "memcached://{}",
        proxies
            .iter()
            .map(FaultProxy::address)
            .collect::<Vec<_>>()
            .join(",")
    );

    let warmup_ms = match options.mode {
        Mode::Quorum => Some(warm_up(&uri, &options).await?),
        Mode::Sharded => None,
    };

    let started = Instant::now();
    let mut children = Vec::new();
    let mut readers = Vec::new();
    let mut worker_pids = Vec::new();
    for w in 0..options.workers {
        let args = WorkerArgs {
            id: w,
            uri: uri.clone(),
            servers: options.servers,
            keys: keys.clone(),
            resource: resource.address(),
            duration: options.duration,
            tasks: options.tasks,
            seed: options.seed,
            ttl: options.ttl,
            timeout: options.timeout,
            sleep_probability: options.sleep_probability,
            quorum: (options.mode == Mode::Quorum).then_some((options.max_ttl, options.quarantine)),
        };
        let mut child = Command::new(&options.exe)
            .arg("--worker")
            .args(args.to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawning worker: {e}"))?;
        worker_pids.push(child.id().unwrap_or(0));
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| "worker stdout".to_string())?;
        readers.push(tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut out = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                out.push(line);
            }
            out
        }));
        children.push(child);
    }

    let rig = Rig {
        servers: servers.clone(),
        proxies,
        worker_pids,
        faults: Mutex::new(Vec::new()),
        evicted: Mutex::new(0),
    };
    // The scheduler: every server-side kind once (shuffled), then at random; stops a
    // second before the workers do so that the last fault has ended.
    // A restart into quarantine is a quorum-mode fault only.
    let in_mode =
        |k: &FaultKind| options.mode == Mode::Quorum || *k != FaultKind::RestartInQuarantine;
    let mut plan: Vec<FaultKind> = FaultKind::ALL
        .into_iter()
        .filter(|k| *k != FaultKind::HolderSleep && in_mode(k))
        .collect();
    plan.shuffle(&mut rng);
    let stop_at = started + options.duration.saturating_sub(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // After the plan, at random from this mix (the mode's kinds, in this order, some weighted).
    let random_mix: Vec<FaultKind> = [
        FaultKind::Restart,
        FaultKind::RestartInQuarantine,
        FaultKind::ServerPause,
        FaultKind::ClientPause,
        FaultKind::ConnectionReset,
        FaultKind::ConnectionReset,
        FaultKind::Delay,
        FaultKind::Delay,
        FaultKind::Eviction,
    ]
    .into_iter()
    .filter(in_mode)
    .collect();
    let mut planned = plan.into_iter();
    while Instant::now() + options.ttl < stop_at {
        let kind = planned
            .next()
            .unwrap_or_else(|| random_mix[rng.random_range(0..random_mix.len())]);
        rig.inject(kind, &mut rng, options.ttl, options.timeout)
            .await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..900))).await;
    }

    // Wait for the workers (bounded), then read their records.
    let grace = options.duration + Duration::from_secs(60);
    let mut exit_codes = Vec::new();
    for mut child in children {
        let left = grace.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, child.wait()).await {
            Ok(Ok(status)) => exit_codes.push(status.code().unwrap_or(-1)),
            _ => {
                let _ = child.kill().await;
                exit_codes.push(-1);
            }
        }
    }
    let mut lines = Vec::new();
    for r in readers {
        lines.extend(r.await.unwrap_or_default());
    }

    // Evictions as the lock itself reports them (server_status), straight to the servers.
    let direct = format!(
        "memcached://{}",
        servers
            .iter()
            .map(|s| lock_server(s).address())
            .collect::<Vec<_>>()
            .join(",")
    );
    let status_lock = MemcachedLock::new();
    let mut server_evictions = Vec::new();
    if status_lock
        .configure(&ConfigParams::from_tuples([("connection.uri", direct)]))
        .is_ok()
        && status_lock.open(&Context::new()).await.is_ok()
    {
        if let Ok(status) = status_lock.server_status(&Context::new()).await {
            server_evictions = status.iter().map(|s| json!(s.evictions)).collect();
        }
        let _ = status_lock.close(&Context::new()).await;
    }

    if let Some(path) = std::env::var_os("LOCK_CHAOS_DUMP") {
        // Raw records for investigation: worker lines, then the resource's decisions.
        let mut dump = lines.join("\n");
        for w in resource.log() {
            dump.push_str(&format!(
                "\n{}",
                json!({"t": "write", "holder": w.holder, "key": w.key, "token": w.token,
                       "at_ns": w.at_ns, "accepted": w.accepted})
            ));
        }
        if let Ok(faults) = rig.faults.lock() {
            for f in faults.iter() {
                dump.push_str(&format!(
                    "\n{}",
                    json!({"t": "fault", "kind": f.kind.name(), "target": f.target,
                           "start_ns": f.start_ns, "end_ns": f.end_ns})
                ));
            }
        }
        let _ = std::fs::write(path, dump);
    }
    let mut summary = summarize(
        &options,
        &keys,
        &lines,
        &resource.log(),
        rig,
        exit_codes,
        server_evictions,
    );
    if let Some(ms) = warmup_ms {
        summary["quorum"] = json!({
            "max_ttl_ms": options.max_ttl.as_millis() as u64,
            "quarantine_ms": options.quarantine.as_millis() as u64,
            "warm_up_ms": ms,
        });
    }
    Ok(summary)
}

/// Quorum mode, before the workers start: one lock opens on every server (so each writes
/// its boot marker), then tries a warm-up key until it is granted, which happens once the
/// servers' memory is older than the quarantine (before that every acquire fails with
/// `NO_QUORUM`). Returns how long that took (ms).
async fn warm_up(uri: &str, options: &ChaosOptions) -> Result<u64, String> {
    let began = Instant::now();
    let lock = MemcachedLock::new();
    lock.configure(&quorum_lock_config(
        uri,
        options.timeout,
        options.max_ttl,
        options.quarantine,
    ))
    .map_err(|e| format!("warm-up lock: {e}"))?;
    let ctx = Context::new();
    lock.open(&ctx)
        .await
        .map_err(|e| format!("warm-up lock: {e}"))?;
    let give_up = began + options.quarantine + Duration::from_secs(20);
    let mut last = String::new();
    let granted = loop {
        if Instant::now() > give_up {
            break false;
        }
        match lock
            .try_acquire_lease(&ctx, "chaos-warm-up", options.ttl)
            .await
        {
            Ok(Some(_)) => break true,
            Ok(None) => last = "busy".into(),
            Err(e) => last = format!("{}: {}", e.code(), e.message()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if granted {
        let _ = lock.release_owned(&ctx, "chaos-warm-up").await;
    }
    let _ = lock.close(&ctx).await;
    let ms = began.elapsed().as_millis() as u64;
    if !granted {
        return Err(format!("quorum warm-up: no grant after {ms} ms ({last})"));
    }
    eprintln!("chaos: quorum warm-up granted after {ms} ms");
    Ok(ms)
}

fn summarize(
    options: &ChaosOptions,
    keys: &[String],
    lines: &[String],
    writes: &[crate::checker::Write],
    rig: Rig,
    exit_codes: Vec<i32>,
    server_evictions: Vec<Value>,
) -> Value {
    let mut faults = rig.faults.into_inner().unwrap_or_default();
    let mut holders = Vec::new();
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut unparsed = 0u64;
    let mut hang_windows: Vec<(usize, u64, u64)> = Vec::new();
    for line in lines {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            unparsed += 1;
            continue;
        };
        match v.get("t").and_then(Value::as_str) {
            Some("holder") => match holder_from_json(&v) {
                Some(h) => holders.push(h),
                None => unparsed += 1,
            },
            Some("fault") => {
                let kind = v
                    .get("kind")
                    .and_then(Value::as_str)
                    .and_then(FaultKind::from_name);
                if let Some(kind) = kind {
                    faults.push(Fault {
                        kind,
                        target: v.get("target").and_then(Value::as_u64).map(|t| t as usize),
                        start_ns: v.get("start_ns").and_then(Value::as_u64).unwrap_or(0),
                        end_ns: v.get("end_ns").and_then(Value::as_u64).unwrap_or(0),
                    });
                }
            }
            Some("hang") => {
                let u = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
                hang_windows.push((u("worker") as usize, u("start_ns"), u("end_ns")));
            }
            Some("worker") => {
                for k in [
                    "ops",
                    "acquisitions",
                    "contended",
                    "hangs",
                    "resource_errors",
                ] {
                    *totals.entry(k).or_insert(0) += v.get(k).and_then(Value::as_u64).unwrap_or(0);
                }
                if let Some(e) = v.get("errors").and_then(Value::as_object) {
                    for (code, n) in e {
                        *errors.entry(code.clone()).or_insert(0) += n.as_u64().unwrap_or(0);
                    }
                }
                if let Some(f) = v.get("failures").and_then(Value::as_array) {
                    failures.extend(f.iter().cloned());
                }
            }
            _ => unparsed += 1,
        }
    }
    let report = check_mode(&holders, writes, &faults, options.mode);
    let mut by_kind: BTreeMap<&str, u64> = FaultKind::ALL
        .iter()
        .filter(|k| options.mode == Mode::Quorum || **k != FaultKind::RestartInQuarantine)
        .map(|k| (k.name(), 0))
        .collect();
    for f in &faults {
        *by_kind.entry(f.kind.name()).or_insert(0) += 1;
    }
    // A call that outlived its bound while its own process was frozen (SIGSTOP) did not
    // hang: the process could not run. Every other one did.
    let frozen = |worker: usize, start: u64, end: u64| {
        faults.iter().any(|f| {
            f.kind == FaultKind::ClientPause
                && f.target == Some(worker)
                && f.start_ns <= end
                && f.end_ns.saturating_add(crate::checker::FAULT_SLACK_NS) >= start
        })
    };
    let hangs_while_frozen = hang_windows
        .iter()
        .filter(|(w, s, e)| frozen(*w, *s, *e))
        .count() as u64;
    let hangs_reported = totals.get("hangs").copied().unwrap_or(0);
    let hangs = hangs_reported.saturating_sub(hangs_while_frozen);
    let workers_ok = exit_codes.iter().all(|c| *c == 0);
    let ok = report.ok() && hangs == 0 && workers_ok && unparsed == 0;
    let svg = options.svg.as_ref().map(|path| {
        let title = format!(
            "chaos, mode {}, seed {}, {} s, {} servers: {} holdings, {} faults, both-valid \
             overlaps {} ({} unexplained), stale writes accepted {}",
            options.mode.name(),
            options.seed,
            options.duration.as_secs(),
            options.servers,
            holders.len(),
            faults.len(),
            report.overlaps_both_valid,
            report.overlaps_unexplained,
            report.stale_writes_accepted
        );
        let written = std::fs::write(path, crate::svg::timeline(&holders, &faults, &title));
        match written {
            Ok(()) => json!(path.display().to_string()),
            Err(e) => json!(format!("not written: {}: {e}", path.display())),
        }
    });
    json!({
        "summary": "chaos",
        "mode": options.mode.name(),
        "ok": ok,
        "seconds": options.duration.as_secs(),
        "seed": options.seed,
        "workers": options.workers,
        "tasks_per_worker": options.tasks,
        "servers": options.servers,
        "keys": keys,
        "ttl_ms": options.ttl.as_millis() as u64,
        "timeout_ms": options.timeout.as_millis() as u64,
        "faults": by_kind,
        "faults_total": faults.len(),
        "evicted_items_during_bursts": rig.evicted.into_inner().unwrap_or(0),
        "server_evictions": server_evictions,
        "operations": totals.get("ops").copied().unwrap_or(0),
        "acquisitions": totals.get("acquisitions").copied().unwrap_or(0),
        "contended": totals.get("contended").copied().unwrap_or(0),
        "errors": errors,
        "resource_errors": totals.get("resource_errors").copied().unwrap_or(0),
        "hangs": hangs,
        "hangs_while_process_frozen": hangs_while_frozen,
        "check": report.to_json(),
        "overlaps_explained": report.overlaps_explained,
        "overlaps_unexplained": report.overlaps_unexplained,
        "stale_writes_accepted": report.stale_writes_accepted,
        "stale_writes_rejected": report.writes_rejected,
        "false_acquires": report.false_acquires,
        "lost_without_signal": report.lost_without_signal,
        "worker_exit_codes": exit_codes,
        "worker_failures": failures,
        "unparsed_lines": unparsed,
        "svg": svg,
    })
}
