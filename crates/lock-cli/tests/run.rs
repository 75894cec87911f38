//! `pip-lock run`, as a separate process against real memcached servers: mutual exclusion,
//! the conflict exit, the command's exit codes, a lost lock, and signals.

mod support;

use std::time::{Duration, Instant};

use memcached_testkit::MemcachedServer;
use nix::sys::signal::Signal;
use support::{
    HUNG, closed_port, ends_within, finish, hold, inspect, is_alive, kill_quietly, pip_lock,
    scratch_dir, send, unique_key, wait_for_exit, wait_for_line,
};

fn server() -> MemcachedServer {
    MemcachedServer::start().expect("memcached must be installed")
}

/// Ends a holder started by `support::hold` (SIGTERM, which it forwards to its command).
fn stop(holder: std::process::Child) -> support::Finished {
    send(holder.id(), Signal::SIGTERM);
    wait_for_exit(holder, Instant::now())
}

#[test]
fn two_runs_of_one_key_never_overlap() {
    let server = server();
    let dir = scratch_dir("overlap");
    let log = dir.join("log");
    let key = unique_key("overlap");
    // Each command appends "start <id> <ns>" and, 200 ms later, "end <id> <ns>".
    let script = format!(
        "echo \"start $$ $(date +%s%N)\" >> '{log}'; sleep 0.2; echo \"end $$ $(date +%s%N)\" >> '{log}'",
        log = log.display()
    );
    let started = Instant::now();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            pip_lock(&server.address())
                .args(["run", "--wait", "20s", "--ttl", "3s", "--shell", &key, "--"])
                .arg(&script)
                .spawn()
                .expect("start pip-lock")
        })
        .collect();
    for run in runs {
        let done = wait_for_exit(run, started);
        assert_eq!(done.code, Some(0), "a run failed: {}", done.stderr);
    }
    let text = std::fs::read_to_string(&log).expect("the commands wrote the log");
    let lines: Vec<(String, String, u128)> = text
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(parts.len(), 3, "log line {line:?}");
            (
                parts[0].to_string(),
                parts[1].to_string(),
                parts[2].parse().expect("a timestamp"),
            )
        })
        .collect();
    assert_eq!(lines.len(), 8, "four starts and four ends: {text}");
    // Never overlapping: the log alternates start/end of one command, in time order.
    for (i, pair) in lines.chunks(2).enumerate() {
        let (start, end) = (&pair[0], &pair[1]);
        assert_eq!(
            (start.0.as_str(), end.0.as_str()),
            ("start", "end"),
            "{text}"
        );
        assert_eq!(start.1, end.1, "run {i} was interrupted by another: {text}");
        assert!(start.2 <= end.2, "{text}");
    }
    for w in lines.windows(2) {
        assert!(w[0].2 <= w[1].2, "times go backwards: {text}");
    }
    assert!(!inspect(&server.address(), &key)["held"].as_bool().unwrap());
}

#[test]
fn no_wait_on_a_busy_key_exits_with_the_conflict_code_and_runs_nothing() {
    let server = server();
    let dir = scratch_dir("busy");
    let key = unique_key("busy");
    let holder = hold(&server.address(), &key, "10s", &dir);
    let marker = dir.join("ran");
    let touch = format!("touch '{}'", marker.display());

    let busy = finish(
        pip_lock(&server.address())
            .args(["run", "--no-wait", "--shell", &key, "--"])
            .arg(&touch),
    );
    assert_eq!(busy.code, Some(1), "{}", busy.stderr);
    assert!(busy.stderr.contains("busy"), "{}", busy.stderr);
    assert!(
        busy.stderr.contains("pid="),
        "names the holder: {}",
        busy.stderr
    );

    let custom = finish(
        pip_lock(&server.address())
            .args(["run", "-n", "-E", "42", "--shell", &key, "--"])
            .arg(&touch),
    );
    assert_eq!(custom.code, Some(42), "{}", custom.stderr);

    let waited = finish(
        pip_lock(&server.address())
            .args(["run", "--wait", "300ms", "--shell", &key, "--"])
            .arg(&touch),
    );
    assert_eq!(waited.code, Some(1), "{}", waited.stderr);
    assert!(waited.stderr.contains("still busy"), "{}", waited.stderr);
    assert!(!marker.exists(), "a command ran without the lock");

    let holder = stop(holder);
    assert_eq!(holder.code, Some(143), "{}", holder.stderr);
    // Released on the way out: the key is free again.
    let after = finish(
        pip_lock(&server.address())
            .args(["run", "-n", "--shell", &key, "--"])
            .arg(&touch),
    );
    assert_eq!(after.code, Some(0), "{}", after.stderr);
    assert!(marker.exists());
}

#[test]
fn the_commands_exit_code_signal_and_environment_come_back() {
    let server = server();
    let key = unique_key("codes");
    let run = |args: &[&str]| {
        let done = finish(
            pip_lock(&server.address())
                .args(["run", "-n", &key])
                .args(args),
        );
        done.code
    };
    assert_eq!(run(&["--", "sh", "-c", "exit 7"]), Some(7));
    assert_eq!(run(&["--", "true"]), Some(0));
    assert_eq!(run(&["--shell", "--", "exit", "3"]), Some(3));
    // Killed by a signal: 128 + N, as a shell reports it.
    assert_eq!(run(&["--", "sh", "-c", "kill -KILL $$"]), Some(137));
    assert_eq!(run(&["--", "sh", "-c", "kill -TERM $$"]), Some(143));
    // The lease, in the environment.
    let check = format!(
        "test \"$PIP_LOCK_KEY\" = '{key}' && test \"$PIP_LOCK_TTL_MS\" = 4000 && \
         test \"$PIP_LOCK_FENCING_TOKEN\" -gt 0"
    );
    assert_eq!(run(&["--ttl", "4s", "--", "sh", "-c", &check]), Some(0));
    // A command that cannot run: the shell's codes, and the lock is released.
    assert_eq!(run(&["--", "/no/such/command"]), Some(127));
    let dir = scratch_dir("codes");
    let not_executable = dir.join("script");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    assert_eq!(run(&["--", not_executable.to_str().unwrap()]), Some(126));
    assert!(!inspect(&server.address(), &key)["held"].as_bool().unwrap());
}

/// The command of the lost-lock tests: a shell that starts a grandchild in the background,
/// records its pid, and waits; `trap_term` makes both ignore SIGTERM (ignored signals are
/// inherited), so only SIGKILL stops them.
fn family(pidfile: &std::path::Path, trap_term: bool) -> String {
    format!(
        "{}sleep 100 & echo $! > '{}'; wait",
        if trap_term { "trap '' TERM; " } else { "" },
        pidfile.display()
    )
}

#[test]
fn a_lost_lock_stops_the_commands_group_grandchild_included() {
    let mut server = server();
    let dir = scratch_dir("lost");
    let pidfile = dir.join("grandchild");
    let key = unique_key("lost");
    let started = Instant::now();
    let run = pip_lock(&server.address())
        .args([
            "run",
            "--ttl",
            "3s",
            "--kill-grace",
            "2s",
            "--shell",
            &key,
            "--",
        ])
        .arg(family(&pidfile, false))
        .spawn()
        .expect("start pip-lock");
    let grandchild: i32 = wait_for_line(&pidfile, HUNG).parse().unwrap();
    assert!(is_alive(grandchild));

    // The server goes away: renewals fail until the lease's validity (2 s) runs out.
    server.stop();
    let done = wait_for_exit(run, started);
    let gone = ends_within(grandchild, Duration::from_secs(1));
    kill_quietly(grandchild);
    assert_eq!(done.code, Some(75), "{}", done.stderr);
    assert!(done.stderr.contains("lost the lock"), "{}", done.stderr);
    assert!(gone, "the grandchild survived the lost lock");
}

#[test]
fn a_server_paused_past_the_ttl_loses_the_lock_and_a_stubborn_command_is_killed() {
    let server = server();
    let dir = scratch_dir("paused");
    let pidfile = dir.join("grandchild");
    let key = unique_key("paused");
    let started = Instant::now();
    let run = pip_lock(&server.address())
        .args([
            "-o",
            "timeout=500",
            "run",
            "--ttl",
            "3s",
            "--kill-grace",
            "1s",
        ])
        .args(["--shell", &key, "--"])
        .arg(family(&pidfile, true))
        .spawn()
        .expect("start pip-lock");
    let grandchild: i32 = wait_for_line(&pidfile, HUNG).parse().unwrap();

    // Frozen: renewals get no answer; the lease runs out at its validity deadline.
    server.pause();
    let done = wait_for_exit(run, started);
    let gone = ends_within(grandchild, Duration::from_secs(1));
    server.resume();
    kill_quietly(grandchild);
    assert_eq!(done.code, Some(75), "{}", done.stderr);
    assert!(done.stderr.contains("lost the lock"), "{}", done.stderr);
    assert!(
        done.stderr.contains("SIGKILL"),
        "the command ignored SIGTERM: {}",
        done.stderr
    );
    assert!(gone, "the grandchild survived SIGKILL to its group");
}

#[test]
fn sigterm_and_sigint_to_pip_lock_reach_the_command() {
    let server = server();
    let dir = scratch_dir("signals");
    let pidfile = dir.join("grandchild");
    let key = unique_key("signals");

    // SIGTERM: forwarded to the whole group, grandchild included; pip-lock reports the
    // command's death by the signal and releases the lock.
    let started = Instant::now();
    let run = pip_lock(&server.address())
        .args(["run", "--ttl", "3s", "--shell", &key, "--"])
        .arg(family(&pidfile, false))
        .spawn()
        .expect("start pip-lock");
    let grandchild: i32 = wait_for_line(&pidfile, HUNG).parse().unwrap();
    send(run.id(), Signal::SIGTERM);
    let done = wait_for_exit(run, started);
    let gone = ends_within(grandchild, Duration::from_secs(2));
    kill_quietly(grandchild);
    assert_eq!(done.code, Some(143), "{}", done.stderr);
    assert!(gone, "the grandchild did not get the forwarded SIGTERM");
    assert!(!inspect(&server.address(), &key)["held"].as_bool().unwrap());

    // SIGINT: the command's own handler runs and decides the exit code.
    let ready = dir.join("ready");
    let got = dir.join("got");
    let script = format!(
        "trap 'echo int > \"{got}\"; exit 5' INT; echo up > '{ready}'; while :; do sleep 0.05; done",
        got = got.display(),
        ready = ready.display()
    );
    let started = Instant::now();
    let run = pip_lock(&server.address())
        .args(["run", "--ttl", "3s", "--shell", &key, "--"])
        .arg(&script)
        .spawn()
        .expect("start pip-lock");
    wait_for_line(&ready, HUNG);
    send(run.id(), Signal::SIGINT);
    let done = wait_for_exit(run, started);
    assert_eq!(done.code, Some(5), "{}", done.stderr);
    assert_eq!(std::fs::read_to_string(&got).unwrap().trim(), "int");
}

#[test]
fn a_signal_while_waiting_for_the_lock_stops_waiting_and_runs_nothing() {
    let server = server();
    let dir = scratch_dir("waiting");
    let key = unique_key("waiting");
    let holder = hold(&server.address(), &key, "10s", &dir);
    let marker = dir.join("ran");

    let log = dir.join("waiter.log");
    let started = Instant::now();
    // No --wait: it would wait forever.
    let waiter = pip_lock(&server.address())
        .args(["--log-level", "info", "run", "--shell", &key, "--"])
        .arg(format!("touch '{}'", marker.display()))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start the waiter");
    let log_says = |what: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(what)
    };
    while !log_says("waiting for the lock") {
        assert!(started.elapsed() < HUNG, "the waiter never started waiting");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Past the first attempt, into the retry loop.
    std::thread::sleep(Duration::from_millis(300));
    send(waiter.id(), Signal::SIGTERM);
    let done = wait_for_exit(waiter, started);
    assert_eq!(done.code, Some(143), "{}", done.stderr);
    assert!(
        log_says("while waiting"),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(!marker.exists(), "the command ran after the signal");
    assert!(inspect(&server.address(), &key)["held"].as_bool().unwrap());
    stop(holder);
}

/// The body of `GET /metrics` on `127.0.0.1:port` (HTTP/1.0: the server closes when done).
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(HUNG)).expect("timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
    response
}

/// The value of the sample `name{...}` whose labels include `label`.
fn sample(body: &str, name: &str, label: &str) -> Option<f64> {
    body.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(label))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

#[test]
fn metrics_are_served_in_the_prometheus_format_while_the_command_runs() {
    let server = server();
    let dir = scratch_dir("metrics");
    let key = unique_key("metrics");
    let port = closed_port();
    let ready = dir.join("ready");
    let holder = pip_lock(&server.address())
        .args([
            "run",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--shell",
            &key,
            "--",
        ])
        .arg(format!("echo ready > '{}'; exec sleep 60", ready.display()))
        .spawn()
        .expect("start pip-lock");
    wait_for_line(&ready, HUNG);
    let body = scrape(port);
    let done = stop(holder);
    assert_eq!(
        sample(&body, "pip_lock_acquires_total", "result=\"acquired\""),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "pip_lock_held_leases", "mode=\"sharded\""),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "pip_lock_servers_up",
            &format!("server=\"{}\"", server.address())
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(done.code, Some(128 + 15), "{}", done.stderr);
}

#[test]
fn a_metrics_address_that_cannot_be_served_exits_78_before_taking_the_lock() {
    let server = server();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let key = unique_key("metrics-in-use");
    let done = finish(pip_lock(&server.address()).args([
        "run",
        "--metrics-addr",
        &addr,
        &key,
        "--",
        "true",
    ]));
    assert_eq!(done.code, Some(78), "{}", done.stderr);
    assert!(done.stderr.contains("--metrics-addr"), "{}", done.stderr);
    assert_eq!(inspect(&server.address(), &key)["held"], false);

    let done = finish(pip_lock(&server.address()).args([
        "run",
        "--metrics-addr",
        "not-an-address",
        &key,
        "--",
        "true",
    ]));
    assert_eq!(done.code, Some(2), "{}", done.stderr);
    assert!(done.stderr.contains("--metrics-addr"), "{}", done.stderr);
}
