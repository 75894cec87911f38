//! Helpers shared by pip-lock's tests: the real binary started as a separate process against
//! real memcached servers (memcached-testkit), with bounded waits everywhere so a hung
//! process fails its test instead of hanging it.

// Every test binary compiles its own copy and uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The binary under test.
pub(crate) const PIP_LOCK: &str = env!("CARGO_BIN_EXE_pip-lock");

/// The longest any single pip-lock invocation may take in these tests before it counts as
/// hung (generous: the machine may be busy with other builds).
pub(crate) const HUNG: Duration = Duration::from_secs(30);

/// A `pip-lock` command for the servers `servers` (`host:port,...`), with the environment
/// that could change its behaviour removed.
pub(crate) fn pip_lock(servers: &str) -> Command {
    let mut command = bare_pip_lock();
    command.arg("--servers").arg(servers);
    command
}

/// A `pip-lock` command without any connection flag.
pub(crate) fn bare_pip_lock() -> Command {
    let mut command = Command::new(PIP_LOCK);
    for name in [
        "PIP_LOCK_CONFIG",
        "PIP_LOCK_SERVERS",
        "PIP_LOCK_URI",
        "PIP_LOCK_USERNAME",
        "PIP_LOCK_PASSWORD",
        "PIP_LOCK_TLS",
        "PIP_LOCK_TLS_CA",
        "PIP_LOCK_TLS_CERT",
        "PIP_LOCK_TLS_KEY",
        "PIP_LOCK_LOG_LEVEL",
        "PIP_LOCK_METRICS_ADDR",
        "PIP_LOCK_KEY",
        "PIP_LOCK_FENCING_TOKEN",
        "PIP_LOCK_TTL_MS",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// How a pip-lock process ended.
#[derive(Debug)]
pub(crate) struct Finished {
    /// The exit code (`None`: ended by a signal, which pip-lock itself never should be).
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

/// Runs `command` to its end (at most [`HUNG`]).
pub(crate) fn finish(command: &mut Command) -> Finished {
    let started = Instant::now();
    let child = command.spawn().expect("start pip-lock");
    wait_for_exit(child, started)
}

/// Waits for a started pip-lock to end (at most [`HUNG`] from `started`); kills it and fails
/// the test when it does not.
pub(crate) fn wait_for_exit(mut child: Child, started: Instant) -> Finished {
    loop {
        if let Some(status) = child.try_wait().expect("wait for pip-lock") {
            let output = child.wait_with_output().expect("read pip-lock's output");
            return Finished {
                code: status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                elapsed: started.elapsed(),
            };
        }
        if started.elapsed() > HUNG {
            let _ = child.kill();
            let output = child.wait_with_output().expect("reap a hung pip-lock");
            panic!(
                "pip-lock did not exit within {HUNG:?}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A key no other test (of any running test process) uses.
pub(crate) fn unique_key(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "cli-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh, empty directory for one test's files.
pub(crate) fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("pip-lock-tests")
        .join(unique_key(name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// Waits until `path` holds a non-empty line, and returns it (trimmed).
pub(crate) fn wait_for_line(path: &Path, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') && !text.trim().is_empty() {
                return text.trim().to_string();
            }
        }
        assert!(
            started.elapsed() < limit,
            "{} was not written within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` still runs (a zombie does not count: it has ended, and only its
/// parent, possibly a reaper-less init in a container, has not collected it yet).
pub(crate) fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits until process `pid` has ended; whether it did within `limit`.
pub(crate) fn ends_within(pid: i32, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if !is_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !is_alive(pid)
}

/// Sends `signal` to process `pid` (a test's own child).
pub(crate) fn send(pid: u32, signal: Signal) {
    kill(Pid::from_raw(pid as i32), signal).expect("signal a process");
}

/// Kills a leftover process of a failed test (best effort).
pub(crate) fn kill_quietly(pid: i32) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Parses pip-lock's `--json` output.
pub(crate) fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("pip-lock printed no JSON object ({e}): {stdout}"))
}

/// `inspect KEY --json` on `servers`.
pub(crate) fn inspect(servers: &str, key: &str) -> serde_json::Value {
    let done = finish(pip_lock(servers).args(["inspect", key, "--json"]));
    assert_eq!(done.code, Some(0), "inspect failed: {}", done.stderr);
    json(&done.stdout)
}

/// Starts `pip-lock run` holding `key` (ttl `ttl`) around a command that writes `ready` to
/// `dir/ready` and then sleeps; returns once the command runs, so the key is held.
pub(crate) fn hold(servers: &str, key: &str, ttl: &str, dir: &Path) -> Child {
    let ready = dir.join(format!("{key}.ready"));
    let child = pip_lock(servers)
        .args(["run", "--ttl", ttl, "--shell", key, "--"])
        .arg(format!("echo ready > '{}'; exec sleep 60", ready.display()))
        .spawn()
        .expect("start the holder");
    wait_for_line(&ready, HUNG);
    child
}

/// A loopback port nothing listens on (bound, then released).
pub(crate) fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}
