//! Real memcached processes: start, stop, restart, pause, several at once, environment target.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use memcached_testkit::{MemcachedServer, ServerTarget, TestkitError};

/// Sends one command over a fresh blocking connection and reads one reply line.
fn command(addr: &str, cmd: &str) -> std::io::Result<String> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    (&stream).write_all(cmd.as_bytes())?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    Ok(line)
}

fn stat(server: &MemcachedServer, name: &str) -> String {
    server
        .stats()
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no stat {name}"))
}

#[test]
fn start_answers_and_stop_kills() {
    let mut server = MemcachedServer::start().unwrap();
    assert!(server.is_running());
    assert_eq!(server.host(), "127.0.0.1");
    assert_eq!(server.address(), format!("127.0.0.1:{}", server.port()));
    assert_eq!(server.socket_addr().port(), server.port());
    assert!(
        command(&server.address(), "version\r\n")
            .unwrap()
            .starts_with("VERSION 1.")
    );
    assert_eq!(stat(&server, "pid"), server.pid().to_string());
    assert!(format!("{server:?}").contains(&server.address()));

    server.stop();
    assert!(!server.is_running());
    let err = TcpStream::connect(server.address()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    server.stop(); // idempotent
    server.pause(); // no-op on a stopped server, must not panic
    assert!(server.try_pause().is_err());
}

#[test]
fn drop_kills_and_reaps_the_process() {
    let server = MemcachedServer::start().unwrap();
    let pid = server.pid();
    let addr = server.address();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(server);
    // Reaped, so not even a zombie is left.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn restart_keeps_the_port_and_loses_the_data() {
    let mut server = MemcachedServer::start().unwrap();
    let (port, pid) = (server.port(), server.pid());
    assert_eq!(
        command(&server.address(), "set k 0 0 1\r\nv\r\n").unwrap(),
        "STORED\r\n"
    );
    server.restart().unwrap();
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), pid);
    assert!(server.is_running());
    assert_eq!(stat(&server, "pid"), server.pid().to_string());
    assert_eq!(command(&server.address(), "get k\r\n").unwrap(), "END\r\n");
    // A second restart right away also works (the port is reused at once).
    server.restart().unwrap();
    assert_eq!(server.port(), port);
}

#[test]
fn restart_after_stop_starts_again() {
    let mut server = MemcachedServer::start().unwrap();
    server.stop();
    server.restart().unwrap();
    assert!(server.is_running());
    assert!(
        command(&server.address(), "version\r\n")
            .unwrap()
            .starts_with("VERSION")
    );
}

#[test]
fn pause_makes_requests_time_out_and_resume_answers_them() {
    let server = MemcachedServer::start().unwrap();
    let stream = TcpStream::connect(server.address()).unwrap();
    server.pause();
    // The kernel still accepts and buffers the request; nobody answers it.
    (&stream).write_all(b"version\r\n").unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    let err = (&stream).read(&mut buf).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );
    assert!(server.stats().is_err(), "stats must time out while paused");

    server.resume();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    assert!(line.starts_with("VERSION "), "{line:?}");
}

#[test]
fn two_servers_run_at_once_and_are_independent() {
    let a = MemcachedServer::start().unwrap();
    let b = MemcachedServer::start().unwrap();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.pid(), b.pid());
    assert_eq!(
        command(&a.address(), "set only-a 0 0 1\r\nx\r\n").unwrap(),
        "STORED\r\n"
    );
    assert!(
        command(&a.address(), "get only-a\r\n")
            .unwrap()
            .starts_with("VALUE only-a")
    );
    assert_eq!(command(&b.address(), "get only-a\r\n").unwrap(), "END\r\n");
}

#[test]
fn builder_flags_reach_the_server() {
    let server = MemcachedServer::builder()
        .memory_mb(8)
        .threads(2)
        .arg("-C") // CAS disabled: meta gets report c0
        .start()
        .unwrap();
    assert_eq!(stat(&server, "threads"), "2");
    assert_eq!(
        stat(&server, "limit_maxbytes"),
        (8u64 * 1024 * 1024).to_string()
    );
    assert_eq!(
        command(&server.address(), "ms k 1 c\r\nv\r\n").unwrap(),
        "HD c0\r\n"
    );
}

#[test]
fn fixed_port_and_port_conflict() {
    let first = MemcachedServer::start().unwrap();
    // Same port as a running server: memcached exits with "Address already in use".
    let err = MemcachedServer::builder()
        .port(first.port())
        .ready_timeout(Duration::from_millis(300))
        .start()
        .unwrap_err();
    assert!(matches!(err, TestkitError::Spawn(_)), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    // The first one is untouched.
    assert_eq!(stat(&first, "pid"), first.pid().to_string());

    let port = first.port();
    drop(first);
    let second = MemcachedServer::builder().port(port).start().unwrap();
    assert_eq!(second.port(), port);
}

#[test]
fn bad_flag_is_a_spawn_error_with_memcached_s_words() {
    let err = MemcachedServer::builder()
        .arg("--no-such-flag")
        .start()
        .unwrap_err();
    assert!(matches!(err, TestkitError::Spawn(_)), "{err}");
    assert!(err.to_string().contains("exited"), "{err}");
}

#[test]
fn server_target_from_lookup() {
    let external = ServerTarget::from_lookup(|name| match name {
        "MEMCACHED_SERVICE_HOST" => Some("10.1.2.3".into()),
        "MEMCACHED_SERVICE_PORT" => Some("11311".into()),
        _ => None,
    })
    .unwrap();
    assert!(
        matches!(&external, ServerTarget::External { host, port: 11311 } if host == "10.1.2.3")
    );
    assert_eq!(external.address(), "10.1.2.3:11311");

    let default_port = ServerTarget::from_lookup(|name| {
        (name == "MEMCACHED_SERVICE_HOST").then(|| "::1".to_string())
    })
    .unwrap();
    assert_eq!(default_port.port(), 11211);
    assert_eq!(default_port.address(), "[::1]:11211");

    for bad in ["0", "65536", "abc", "-1"] {
        let err = ServerTarget::from_lookup(|name| match name {
            "MEMCACHED_SERVICE_HOST" => Some("localhost".into()),
            _ => Some(bad.to_string()),
        })
        .unwrap_err();
        assert!(
            matches!(err, TestkitError::BadEnvironment(_)),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains("MEMCACHED_SERVICE_PORT"), "{err}");
    }

    let spawned = ServerTarget::from_lookup(|_| None).unwrap();
    assert!(matches!(spawned, ServerTarget::Spawned(_)));
    assert_eq!(spawned.host(), "127.0.0.1");
    assert!(
        command(&spawned.address(), "version\r\n")
            .unwrap()
            .starts_with("VERSION")
    );
}

/// Run by `server_target_reads_the_real_environment` in a child process whose environment
/// names an external server (setting our own environment would need `unsafe`).
#[test]
#[ignore = "run as a child process by server_target_reads_the_real_environment"]
fn env_target_child() {
    let expected_port: u16 = std::env::var("TESTKIT_EXPECTED_PORT")
        .unwrap()
        .parse()
        .unwrap();
    let target = ServerTarget::from_env_or_spawn().unwrap();
    match &target {
        ServerTarget::External { host, port } => {
            assert_eq!(host, "127.0.0.1");
            assert_eq!(*port, expected_port);
        }
        ServerTarget::Spawned(s) => panic!("spawned {s:?} although the environment names one"),
    }
    assert!(
        command(&target.address(), "version\r\n")
            .unwrap()
            .starts_with("VERSION")
    );
}

#[test]
fn server_target_reads_the_real_environment() {
    let server = MemcachedServer::start().unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["env_target_child", "--exact", "--ignored", "--nocapture"])
        .env("MEMCACHED_SERVICE_HOST", "127.0.0.1")
        .env("MEMCACHED_SERVICE_PORT", server.port().to_string())
        .env("TESTKIT_EXPECTED_PORT", server.port().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The child really ran the one test (not zero tests).
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[test]
fn many_servers_start_concurrently() {
    let handles: Vec<_> = (0..6)
        .map(|_| std::thread::spawn(|| MemcachedServer::builder().memory_mb(2).start()))
        .collect();
    let servers: Vec<MemcachedServer> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    let mut ports: Vec<u16> = servers.iter().map(|s| s.port()).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), servers.len());
    for server in &servers {
        // Each port is answered by its own process, not a neighbour's.
        assert_eq!(stat(server, "pid"), server.pid().to_string());
    }
}

#[test]
fn a_paused_server_is_still_killed_on_drop_and_restartable() {
    let mut server = MemcachedServer::start().unwrap();
    server.pause();
    assert!(server.is_running(), "a stopped process is alive");
    server.restart().unwrap();
    assert!(
        command(&server.address(), "version\r\n")
            .unwrap()
            .starts_with("VERSION")
    );

    server.pause();
    let pid = server.pid();
    drop(server);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}
