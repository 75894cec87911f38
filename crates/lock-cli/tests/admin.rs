//! `inspect`, `status` and `force-release`, configuration files, usage errors and
//! unreachable servers, as a separate process against real memcached servers.

mod support;

use std::time::{Duration, Instant};

use memcached_testkit::MemcachedServer;
use nix::sys::signal::Signal;
use support::{
    bare_pip_lock, closed_port, finish, hold, inspect, json, pip_lock, scratch_dir, send,
    unique_key, wait_for_exit,
};

fn server() -> MemcachedServer {
    MemcachedServer::start().expect("memcached must be installed")
}

#[test]
fn inspect_tells_free_from_held_and_names_the_holder() {
    let server = server();
    let dir = scratch_dir("inspect");
    let key = unique_key("inspect");

    let free = inspect(&server.address(), &key);
    assert_eq!(free["key"], key.as_str());
    assert_eq!(free["held"], false);
    assert!(free["holder"].is_null() && free["remaining_ttl_ms"].is_null());

    let holder = hold(&server.address(), &key, "10s", &dir);
    let held = inspect(&server.address(), &key);
    assert_eq!(held["held"], true);
    let remaining = held["remaining_ttl_ms"].as_u64().expect("a remaining ttl");
    // The item's expiry is placed by the server's clock, up to 2 s after the ttl (+ rounding).
    assert!(remaining > 0 && remaining <= 13_000, "{held}");
    assert_eq!(held["holder_fields"]["pid"], holder.id().to_string());
    assert_eq!(held["holder_fields"]["trace"], "pip-lock");
    assert!(held["fencing_token"].is_null());

    let text = finish(pip_lock(&server.address()).args(["inspect", &key]));
    assert_eq!(text.code, Some(0));
    assert!(text.stdout.contains("held"), "{}", text.stdout);
    assert!(
        text.stdout.contains(&format!("pid={}", holder.id())),
        "{}",
        text.stdout
    );

    send(holder.id(), Signal::SIGTERM);
    wait_for_exit(holder, Instant::now());
    let text = finish(pip_lock(&server.address()).args(["inspect", &key]));
    assert!(text.stdout.contains("free"), "{}", text.stdout);
}

#[test]
fn status_lists_every_server_and_exits_69_when_one_is_down() {
    let first = server();
    let mut second = server();
    let servers = format!("{},{}", first.address(), second.address());

    let up = finish(pip_lock(&servers).args(["status", "--json"]));
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    let report = json(&up.stdout);
    assert_eq!(report["down"], 0);
    assert_eq!(report["mode"], "sharded");
    let listed = report["servers"].as_array().expect("a server list");
    assert_eq!(listed.len(), 2);
    for (entry, server) in listed.iter().zip([&first, &second]) {
        assert_eq!(entry["address"], server.address().as_str());
        assert_eq!(entry["up"], true);
        assert_eq!(entry["pid"], server.pid().to_string());
        assert!(entry["version"].as_str().is_some_and(|v| !v.is_empty()));
        assert!(entry["protocol"].is_string());
        assert!(entry["boot_marker"].is_string());
        assert!(entry["uptime_secs"].is_u64());
        assert!(entry["items"].is_u64());
        assert!(entry["evictions"].is_u64());
        assert!(entry["server_connections"].is_u64());
        assert!(entry["ping_us"].is_u64());
        assert!(entry["in_quarantine"].is_null(), "sharded mode has none");
    }
    let text = finish(pip_lock(&servers).arg("status"));
    assert_eq!(text.code, Some(0));
    assert!(text.stdout.contains(&first.address()) && text.stdout.contains("up"));

    second.stop();
    let down = finish(pip_lock(&servers).args(["status", "--json"]));
    assert_eq!(down.code, Some(69), "{}", down.stderr);
    assert!(down.stderr.contains(&second.address()), "{}", down.stderr);
    let report = json(&down.stdout);
    assert_eq!(report["down"], 1);
    let listed = report["servers"].as_array().unwrap();
    assert_eq!(listed[0]["up"], true);
    assert_eq!(listed[1]["address"], second.address().as_str());
    assert_eq!(listed[1]["up"], false);
    assert!(listed[1]["error"].is_string());
}

#[test]
fn status_in_quorum_mode_reports_the_quarantine() {
    let servers: Vec<MemcachedServer> = (0..3).map(|_| server()).collect();
    let list: Vec<String> = servers.iter().map(|s| s.address()).collect();
    let done = finish(
        pip_lock(&list.join(","))
            .args(["-o", "mode=quorum", "-o", "quarantine=600000"])
            .args(["status", "--json"]),
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let report = json(&done.stdout);
    assert_eq!(report["mode"], "quorum");
    for entry in report["servers"].as_array().unwrap() {
        // Just started, and the quarantine is ten minutes.
        assert_eq!(entry["in_quarantine"], true, "{entry}");
    }
}

#[test]
fn force_release_is_refused_without_yes_and_frees_the_key_with_it() {
    let server = server();
    let dir = scratch_dir("force");
    let key = unique_key("force");
    let holder = hold(&server.address(), &key, "3s", &dir);
    let started = Instant::now();

    let refused = finish(pip_lock(&server.address()).args(["force-release", &key]));
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert!(refused.stderr.contains("Usage:"), "{}", refused.stderr);
    assert_eq!(inspect(&server.address(), &key)["held"], true);

    let done = finish(pip_lock(&server.address()).args(["force-release", &key, "--yes", "--json"]));
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let said = json(&done.stdout);
    assert_eq!(said["deleted"], true);
    assert!(
        said["holder"]
            .as_str()
            .is_some_and(|h| h.contains(&format!("pid={}", holder.id()))),
        "{said}"
    );
    // Logged, at the default level.
    assert!(done.stderr.contains("force-release"), "{}", done.stderr);

    // The holder's next renewal is refused: it stops its command and reports the loss.
    let holder = wait_for_exit(holder, started);
    assert_eq!(holder.code, Some(75), "{}", holder.stderr);

    let again =
        finish(pip_lock(&server.address()).args(["force-release", &key, "--yes", "--json"]));
    assert_eq!(again.code, Some(0));
    assert_eq!(json(&again.stdout)["deleted"], false);
}

#[test]
fn bad_arguments_exit_2_with_the_reason_and_the_usage() {
    let server = server();
    let address = server.address();
    let cases: &[(&[&str], &str)] = &[
        (&["run", "k"], "required"),
        (&["run", "--ttl", "1s", "k", "--", "true"], "at least 2s"),
        (
            &["run", "--wait", "ten", "k", "--", "true"],
            "not a duration",
        ),
        (
            &["run", "--no-wait", "--wait", "1s", "k", "--", "true"],
            "cannot be used",
        ),
        (
            &["run", "--bogus", "k", "--", "true"],
            "unexpected argument",
        ),
        (&["inspect"], "required"),
        (&["frobnicate"], "unrecognized subcommand"),
        (&["--log-level", "lock_cli=loud", "status"], "--log-level"),
        // A bare word that is not a level would be a tracing target: silently no logs.
        (
            &["--log-level", "verbose", "status"],
            "'verbose' is not a level",
        ),
        (
            &["--log-level", "warn,degub", "status"],
            "'degub' is not a level",
        ),
        (&["--log-level", "info,,", "status"], "an empty part"),
        (&["-o", "timeout", "status"], "KEY=VALUE"),
    ];
    for (args, reason) in cases {
        let done = finish(pip_lock(&address).args(*args));
        assert_eq!(done.code, Some(2), "{args:?}: {}", done.stderr);
        assert!(done.stderr.contains(reason), "{args:?}: {}", done.stderr);
        assert!(done.stderr.contains("Usage:"), "{args:?}: {}", done.stderr);
    }
    // Levels in any case and TARGET=LEVEL parts are filters.
    let filtered =
        finish(pip_lock(&address).args(["--log-level", "lock_cli=debug,WARN", "status"]));
    assert_eq!(filtered.code, Some(0), "{}", filtered.stderr);
    // No lock configured at all, or two ways at once.
    let none = finish(bare_pip_lock().args(["inspect", "k"]));
    assert_eq!(none.code, Some(2), "{}", none.stderr);
    assert!(none.stderr.contains("--servers"), "{}", none.stderr);
    let two = finish(
        pip_lock(&address)
            .args(["--uri", "memcached://127.0.0.1:1"])
            .args(["inspect", "k"]),
    );
    assert_eq!(two.code, Some(2), "{}", two.stderr);
    // --help shows the defaults and exits 0.
    let help = finish(pip_lock(&address).args(["run", "--help"]));
    assert_eq!(help.code, Some(0));
    // The help is wrapped to the terminal: compare with the line breaks taken out.
    let help = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for default in [
        "[default: 30s]",
        "[default: 10s]",
        "[default: 1]",
        "PIP_LOCK_SERVERS",
    ] {
        assert!(help.contains(default), "{default}: {help}");
    }
}

#[test]
fn an_unreachable_server_exits_69_and_is_named() {
    let address = format!("127.0.0.1:{}", closed_port());
    let dir = scratch_dir("unreachable");
    let marker = dir.join("ran");
    let subcommands: [&[&str]; 4] = [
        &["run", "k", "--", "touch", marker.to_str().unwrap()],
        &["inspect", "k"],
        &["status"],
        &["force-release", "k", "--yes"],
    ];
    for args in subcommands {
        let done = finish(pip_lock(&address).args(args));
        assert_eq!(done.code, Some(69), "{args:?}: {}", done.stderr);
        assert!(done.stderr.contains(&address), "{args:?}: {}", done.stderr);
    }
    assert!(!marker.exists());
}

#[test]
fn a_container_configuration_finds_the_lock_by_its_descriptor() {
    let server = server();
    let dir = scratch_dir("config");
    let key = unique_key("config");
    // The examples' own file, its server taken from the environment.
    let examples = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/config/memcached.json"
    );
    let with_env = |command: &mut std::process::Command| {
        command
            .env("MEMCACHED_SERVICE_HOST", server.host())
            .env("MEMCACHED_SERVICE_PORT", server.port().to_string());
    };
    let mut run = bare_pip_lock();
    with_env(&mut run);
    let done = finish(run.args(["--config", examples, "run", "-n", &key, "--", "true"]));
    assert_eq!(done.code, Some(0), "{}", done.stderr);

    // PIP_LOCK_CONFIG is the same as --config.
    let holder = hold(&server.address(), &key, "5s", &dir);
    let mut status = bare_pip_lock();
    with_env(&mut status);
    let done = finish(
        status
            .env("PIP_LOCK_CONFIG", examples)
            .args(["inspect", &key]),
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    // The examples' key prefix: the same key name is another lock there.
    assert!(done.stdout.contains("free"), "{}", done.stdout);
    send(holder.id(), Signal::SIGTERM);
    wait_for_exit(holder, Instant::now());

    // status and force-release need a memcached lock; a memory lock is a configuration error.
    let memory = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/config/memory.json"
    );
    let done = finish(bare_pip_lock().args(["--config", memory, "status"]));
    assert_eq!(done.code, Some(78), "{}", done.stderr);
    assert!(done.stderr.contains("memcached"), "{}", done.stderr);
    // An unreadable file, invalid JSON, a file without a lock: 78 as well.
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{ not json").unwrap();
    let empty = dir.join("empty.json");
    std::fs::write(&empty, r#"{"components": []}"#).unwrap();
    for file in [dir.join("missing.json"), broken, empty] {
        let done = finish(
            bare_pip_lock()
                .arg("--config")
                .arg(&file)
                .args(["inspect", "k"]),
        );
        assert_eq!(done.code, Some(78), "{}: {}", file.display(), done.stderr);
    }
    let _ = Duration::ZERO;
}

/// A server that requires authentication (`-Y`): `--username` with the password from
/// `PIP_LOCK_PASSWORD` works; a wrong password exits 77 naming the server, never printing
/// the password; no credentials exits 77 too.
#[test]
fn credentials_come_from_the_username_flag_and_the_password_variable() {
    let server = MemcachedServer::builder()
        .auth("operator", "op-secret")
        .start()
        .expect("memcached with -Y");
    let key = unique_key("auth");
    let ok = finish(
        pip_lock(&server.address())
            .args(["--username", "operator", "inspect", &key, "--json"])
            .env("PIP_LOCK_PASSWORD", "op-secret"),
    );
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    let wrong = finish(
        pip_lock(&server.address())
            .args(["--username", "operator", "inspect", &key])
            .env("PIP_LOCK_PASSWORD", "not-it"),
    );
    assert_eq!(wrong.code, Some(77), "{}", wrong.stderr);
    assert!(wrong.stderr.contains(&server.address()), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains("not-it"), "{}", wrong.stderr);
    let none = finish(pip_lock(&server.address()).args(["inspect", &key]));
    assert_eq!(none.code, Some(77), "{}", none.stderr);
    // With --config, credentials belong in the file.
    let mixed = finish(bare_pip_lock().args([
        "--config",
        "x.json",
        "--username",
        "operator",
        "inspect",
        &key,
    ]));
    assert_eq!(mixed.code, Some(2), "{}", mixed.stderr);
}
