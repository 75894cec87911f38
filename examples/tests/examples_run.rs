//! Runs every example as a user would, and checks what it prints and how it exits.
//!
//! The examples are `[[example]]` targets (so `cargo run --example NAME` works from the
//! repository root), and integration tests only get `CARGO_BIN_EXE_<name>` for `[[bin]]`
//! targets. `cargo test` builds every example of the packages it tests (into
//! `<target>/<profile>/examples/`) before it runs any test, so the tests start those binaries
//! directly: no `cargo run` noise, and the `distributed` example can start copies of itself
//! from `current_exe()`. When a binary is missing or older than the example sources (say,
//! after `cargo test --test examples_run`, which builds no examples), the first test to need
//! it runs `cargo build --examples -p examples` once, through `$CARGO`, into the same target
//! directory and profile. (Not unconditionally: with other feature flags, such as
//! `--workspace --all-features`, that build would recompile the dependencies for nothing.)
//!
//! Examples that need memcached get a real server spawned by `memcached-testkit` on a free
//! loopback port, passed through `MEMCACHED_SERVICE_HOST` / `MEMCACHED_SERVICE_PORT`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use memcached_testkit::MemcachedServer;

/// The longest any example may run before the test kills it.
const EXAMPLE_DEADLINE: Duration = Duration::from_secs(240);

/// Where this test binary's profile directory is: `<target>/<profile>/deps/<test>` -> `<target>/<profile>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("the test binary lives in <target>/<profile>/deps")
}

/// The newest modification time among the example package's own sources.
fn newest_source() -> Option<SystemTime> {
    fn walk(dir: &Path, newest: &mut Option<SystemTime>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if matches!(
                    path.file_name().and_then(|n| n.to_str()),
                    Some("src" | "config")
                ) {
                    walk(&path, newest);
                }
            } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                *newest = (*newest).max(Some(modified));
            }
        }
    }
    let mut newest = None;
    walk(Path::new(env!("CARGO_MANIFEST_DIR")), &mut newest);
    newest
}

fn binary_path(name: &str) -> PathBuf {
    profile_dir()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Whether every example binary exists and is newer than the example sources.
fn binaries_are_fresh() -> bool {
    let newest = newest_source();
    ["quickstart", "container", "distributed"]
        .iter()
        .all(|name| {
            std::fs::metadata(binary_path(name))
                .and_then(|m| m.modified())
                .is_ok_and(|built| newest.is_none_or(|source| built >= source))
        })
}

/// The built example `name` (built first if needed, once per test run).
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let profile = profile_dir();
    let built = BUILT.get_or_init(|| {
        if binaries_are_fresh() {
            return Ok(());
        }
        let target = profile.parent().ok_or("no target directory")?;
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args([
                "build",
                "--quiet",
                "--offline",
                "-p",
                "examples",
                "--examples",
            ])
            .arg("--target-dir")
            .arg(target)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let out = cargo
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "cargo build --examples failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    let path = binary_path(name);
    assert!(path.is_file(), "no example binary at {}", path.display());
    path
}

/// What an example run produced.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_success(&self, what: &str) {
        assert_eq!(
            self.code,
            Some(0),
            "{what} failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
    }

    fn assert_prints(&self, text: &str) {
        assert!(
            self.stdout.contains(text),
            "expected {text:?} in the output\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
    }

    fn count(&self, text: &str) -> usize {
        self.stdout.matches(text).count()
    }
}

/// Runs an example binary with `args`, from the repository root (as the README does), with
/// the memcached variables set to `server` (or removed), killing it after the deadline.
fn run(name: &str, args: &[&str], server: Option<(&str, u16)>) -> Run {
    run_with(name, args, server, &[])
}

/// [`run`] with more environment variables.
fn run_with(name: &str, args: &[&str], server: Option<(&str, u16)>, env: &[(&str, &str)]) -> Run {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("examples/ is inside the repository");
    let mut command = Command::new(example(name));
    command
        .args(args)
        .current_dir(root)
        // The examples' log level is their default (`warn`), whatever the caller's is.
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match server {
        Some((host, port)) => {
            command
                .env("MEMCACHED_SERVICE_HOST", host)
                .env("MEMCACHED_SERVICE_PORT", port.to_string());
        }
        None => {
            command
                .env_remove("MEMCACHED_SERVICE_HOST")
                .env_remove("MEMCACHED_SERVICE_PORT");
        }
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("the example starts");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("waiting works").is_some() {
            break;
        }
        if started.elapsed() > EXAMPLE_DEADLINE {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("the output is readable");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A port on loopback where nothing listens (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// An example that found no memcached fails with status 1 and tells how to get one.
fn assert_explains_how_to_start_memcached(out: &Run) {
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("apt-get install memcached"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("memcached -p 11211"), "{}", out.stderr);
}

/// How many stores (`cmd_set`) `memcached` has handled.
fn stores_seen(memcached: &MemcachedServer) -> u64 {
    let stats = memcached.stats().expect("stats");
    stats
        .iter()
        .find(|(k, _)| k == "cmd_set")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Runs example `name` against `memcached`.
fn run_on(memcached: &MemcachedServer, name: &str, args: &[&str]) -> Run {
    run(name, args, Some((memcached.host(), memcached.port())))
}

fn server() -> MemcachedServer {
    MemcachedServer::start().expect("memcached starts (scripts/test installs it)")
}

#[test]
fn container_runs_on_the_embedded_memory_config_without_any_server() {
    // Point the variables at a closed port: the memory configuration must not care.
    let port = closed_port();
    let out = run("container", &[], Some(("127.0.0.1", port)));
    out.assert_success("container (memory)");
    out.assert_prints("configuration: examples/config/memory.json (embedded)");
    out.assert_prints("lock component: pip-services:lock:memory:default:1.0");
    // 4 workers x 2 jobs, each announced by its holder.
    assert_eq!(
        out.count(" holds the job lock (fencing token "),
        8,
        "{}",
        out.stdout
    );
    for worker in 1..=4 {
        assert_eq!(
            out.count(&format!("worker-{worker} holds the job lock")),
            2,
            "{}",
            out.stdout
        );
    }
    out.assert_prints("most holders at once: 1");
    out.assert_prints("fencing tokens grew with every holder: yes");
    out.assert_prints("mutual exclusion held: one holder at a time");
    // It ends by telling the user how to switch to memcached.
    let last = out.stdout.trim_end().lines().last().unwrap_or_default();
    assert_eq!(
        last.trim(),
        "cargo run --example container -- examples/config/memcached.json",
        "{}",
        out.stdout
    );
    out.assert_prints("memcached -p 11211");
}

#[test]
fn container_runs_the_same_code_on_memcached_json() {
    let memcached = server();
    let out = run_on(&memcached, "container", &["examples/config/memcached.json"]);
    out.assert_success("container (memcached.json)");
    out.assert_prints("configuration: examples/config/memcached.json");
    out.assert_prints("lock component: pip-services:lock:memcached:default:1.0");
    assert_eq!(
        out.count(" holds the job lock (fencing token "),
        8,
        "{}",
        out.stdout
    );
    out.assert_prints("most holders at once: 1");
    out.assert_prints("fencing tokens grew with every holder: yes");
    assert!(
        !out.stdout.contains("To run the SAME code on memcached"),
        "{}",
        out.stdout
    );
    // The locks really were in this server, under the configured prefix.
    let sets = stores_seen(&memcached);
    assert!(sets >= 8, "the server saw {sets} stores");
}

/// The same code on a quorum of three servers: only the configuration file differs. The
/// servers are new, so the lock first waits out their quarantine (the acquire's wait covers
/// it).
#[test]
fn container_runs_the_same_code_on_a_quorum() {
    let servers: Vec<_> = (0..3).map(|_| server()).collect();
    let list: Vec<String> = servers.iter().map(|s| s.address()).collect();
    let out = run_with(
        "container",
        &["examples/config/memcached-quorum.json"],
        None,
        &[("MEMCACHED_QUORUM_SERVERS", &list.join(","))],
    );
    out.assert_success("container (memcached-quorum.json)");
    out.assert_prints("configuration: examples/config/memcached-quorum.json");
    out.assert_prints("most holders at once: 1");
    out.assert_prints("fencing tokens grew with every holder: yes");
    for s in &servers {
        let sets = stores_seen(s);
        assert!(
            sets >= 8,
            "every server of the quorum saw the locks ({sets} stores)"
        );
    }
}

#[test]
fn container_without_memcached_explains_how_to_start_it() {
    let out = run(
        "container",
        &["examples/config/memcached.json"],
        Some(("127.0.0.1", closed_port())),
    );
    assert_explains_how_to_start_memcached(&out);
}

#[test]
fn container_reports_a_missing_or_bad_config_file() {
    let out = run("container", &["examples/config/no-such-file.json"], None);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("no-such-file.json"), "{}", out.stderr);

    let dir = std::env::temp_dir().join(format!("examples-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let unknown = dir.join("unknown.json");
    std::fs::write(
        &unknown,
        r#"{"components": [{"descriptor": "acme:lock:zookeeper:default:1.0"}]}"#,
    )
    .expect("write");
    let out = run("container", &[unknown.to_str().expect("utf-8 path")], None);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("CANNOT_CREATE"), "{}", out.stderr);
    assert!(
        out.stderr.contains("pip-services:lock:memcached:*:1.0"),
        "{}",
        out.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quickstart_runs_against_memcached() {
    let memcached = server();
    let out = run_on(&memcached, "quickstart", &[]);
    out.assert_success("quickstart");
    out.assert_prints("try_acquire_lock(key1, 3000 ms): acquired");
    out.assert_prints("release_lock(key1): released");
    out.assert_prints("acquire_lock(key1, ttl 3 s, timeout 1 s): acquired");
    out.assert_prints("another owner's acquire_lock(key1, timeout 300 ms): LOCK_TIMEOUT");
    out.assert_prints("after the other owner's release_lock(key1), key1 is still ours: true");
    out.assert_prints("worked 2500 ms, longer than the ttl");
    out.assert_prints(
        "lease still held: true, lost: false, renewed past the first deadline: true, same fencing token: true",
    );
    out.assert_prints("LockGuard released key2: true");
    out.assert_prints("quickstart done");
}

#[test]
fn quickstart_without_memcached_explains_how_to_start_it() {
    let out = run("quickstart", &[], Some(("127.0.0.1", closed_port())));
    assert_explains_how_to_start_memcached(&out);
    assert!(
        out.stderr.contains("MEMCACHED_SERVICE_HOST"),
        "{}",
        out.stderr
    );
}

#[test]
fn distributed_runs_each_round_exactly_once_across_processes() {
    let memcached = server();
    let out = run_on(
        &memcached,
        "distributed",
        &["--workers", "3", "--rounds", "5"],
    );
    out.assert_success("distributed");
    for worker in 1..=3 {
        out.assert_prints(&format!("started worker {worker} (pid "));
        out.assert_prints(&format!("[worker {worker}] finished: ran "));
    }
    for round in 1..=5 {
        out.assert_prints(&format!("  round {round}: ran once, by worker "));
    }
    // Every worker took the lock every round; exactly one ran each round's job.
    assert_eq!(out.count("; running the job"), 5, "{}", out.stdout);
    assert_eq!(
        out.count("; the resource accepted fencing token "),
        5,
        "{}",
        out.stdout
    );
    assert_eq!(out.count("; nothing to do"), 10, "{}", out.stdout);
    out.assert_prints("each round ran exactly once: yes");
    out.assert_prints("stale tokens refused: 0 (0 expected)");
    out.assert_prints("leases lost: 0 (0 expected)");
    // Each worker's metrics summary, from its in-memory recorder.
    for worker in 1..=3 {
        out.assert_prints(&format!("[worker {worker}] metrics summary:"));
    }
    out.assert_prints("pip_lock_acquires_total: acquired=");
    out.assert_prints("pip_lock_request_duration_seconds: ");
}

#[test]
fn distributed_freeze_shows_the_lost_signal_and_fencing_refusing_a_stale_holder() {
    let memcached = server();
    let out = run_on(
        &memcached,
        "distributed",
        &["--workers", "3", "--rounds", "3", "--freeze-round", "2"],
    );
    out.assert_success("distributed --freeze-round 2");
    out.assert_prints("(the store froze the holder of round 2, pid ");
    out.assert_prints("(round 2 ran elsewhere meanwhile; the store thawed pid ");
    out.assert_prints("round 2: the lease was lost (the lost signal fired)");
    out.assert_prints("round 2: committing anyway, to show the resource refusing a stale token");
    out.assert_prints("round 2: the resource refused fencing token ");
    // The round still ran once, by a worker that took the lock after the frozen lease expired.
    for round in 1..=3 {
        out.assert_prints(&format!("  round {round}: ran once, by worker "));
    }
    out.assert_prints("each round ran exactly once: yes");
    out.assert_prints("stale tokens refused: 1 (1 expected: the frozen worker's)");
    out.assert_prints("leases lost: 1 (1 expected: the frozen worker's)");
    // The frozen worker's fmt subscriber (at `warn` by default) reported the loss, and its
    // recorder counted it.
    assert!(
        out.stderr.contains("lock lease lost"),
        "--- stderr\n{}",
        out.stderr
    );
    out.assert_prints("pip_lock_leases_lost_total: ");
}

#[test]
fn distributed_rejects_bad_arguments() {
    let out = run("distributed", &["--workers", "1"], None);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains("--workers must be a number from 2 to 16"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("usage: distributed"), "{}", out.stderr);
}
