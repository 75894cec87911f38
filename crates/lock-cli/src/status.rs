//! `status`: every configured server, up or down, with what an operator checks first.
//!
//! Two sources: the lock's own view (`MemcachedLock::server_status`: protocol, boot identity,
//! marked down, restarts seen, evictions) and a plain probe pip-lock makes itself over a
//! fresh TCP connection (`version` for the ping latency, `stats` for uptime, items and
//! connections), which also works when the lock cannot be opened because a server is down.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use commons::{Context, ErrorKind};
use lock_memcached::{LockMode, ServerStatus};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use crate::backend::{Backend, Source};
use crate::cli::StatusArgs;
use crate::exit::{self, Failure};

/// The bound on each probe step (connect, `version`, `stats`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One server's line in the report.
#[derive(Debug, Default)]
struct Report {
    address: String,
    up: bool,
    version: Option<String>,
    protocol: Option<&'static str>,
    pid: Option<String>,
    boot_epoch: Option<i64>,
    boot_marker: Option<String>,
    uptime_secs: Option<u64>,
    /// Quorum mode only: whether the server is in quarantine (the lock's own judgement: its
    /// boot, or its boot marker, younger than `options.quarantine`).
    in_quarantine: Option<bool>,
    items: Option<u64>,
    evictions: Option<u64>,
    server_connections: Option<u64>,
    client_connections: Option<usize>,
    restarts_seen: Option<u32>,
    ping: Option<Duration>,
    error: Option<String>,
}

/// Runs the subcommand: exit 0 when every server is up, 69 otherwise.
pub(crate) async fn status(
    args: &StatusArgs,
    source: &Source,
    ctx: &Context,
) -> Result<u8, Failure> {
    let (reports, mode, open_error) = match Backend::open(source, ctx).await {
        Ok(backend) => {
            let lock = backend.memcached("status")?;
            let config = lock.config();
            let quarantine = (config.mode == LockMode::Quorum).then_some(config.quarantine);
            // Probed while the lock's connections are open, so the counts include them.
            let reports = async {
                let mut reports = Vec::new();
                for status in lock.server_status(ctx).await? {
                    reports.push(from_lock(&status, quarantine).await);
                }
                Ok::<_, commons::Error>(reports)
            }
            .await;
            backend.close(ctx, PROBE_TIMEOUT).await;
            (reports?, Some(config.mode), None)
        }
        // A server down: the lock cannot open, but every server can still be probed.
        Err(e) if matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout) => {
            let addresses = source.server_addresses(ctx).await;
            if addresses.is_empty() {
                return Err(e.into());
            }
            let mut reports = Vec::new();
            for address in addresses {
                reports.push(from_probe(&address).await);
            }
            (reports, None, Some(exit::describe(&e)))
        }
        Err(e) => return Err(e.into()),
    };
    let down = reports.iter().filter(|r| !r.up).count();
    if args.json {
        println!("{}", to_json(&reports, mode, open_error.as_deref()));
    } else {
        if let Some(error) = &open_error {
            println!("the lock cannot be opened: {error}");
        }
        for report in &reports {
            print_text(report);
        }
    }
    if down > 0 {
        eprintln!(
            "pip-lock: {down} of {} memcached servers down: {}",
            reports.len(),
            reports
                .iter()
                .filter(|r| !r.up)
                .map(|r| r.address.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(exit::UNREACHABLE);
    }
    Ok(exit::SUCCESS)
}

/// The lock's view of a server, completed by a probe.
async fn from_lock(status: &ServerStatus, quarantine: Option<Duration>) -> Report {
    let mut report = from_probe(&status.address).await;
    report.protocol = Some(status.protocol);
    report.version = status.version.clone().or(report.version);
    report.pid = status.pid.map(|p| p.to_string()).or(report.pid);
    report.boot_epoch = status.boot_epoch;
    report.boot_marker = status.boot_marker.clone();
    report.evictions = status.evictions.or(report.evictions);
    report.client_connections = Some(status.live_connections);
    report.restarts_seen = Some(status.restarts_seen);
    if status.down || status.error.is_some() {
        report.up = false;
        report.error = status.error.clone().or(report.error);
        if status.down && report.error.is_none() {
            report.error = Some("marked down after repeated failures".into());
        }
    }
    let uptime = report.uptime_secs.map(Duration::from_secs).or_else(|| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        let boot = u64::try_from(status.boot_epoch?).ok()?;
        Some(Duration::from_secs(now.saturating_sub(boot)))
    });
    // The lock's own judgement (boot age = the shorter of uptime and the boot marker's age)
    // where it has one; else the uptime against options.quarantine.
    report.in_quarantine = status
        .in_quarantine
        .or_else(|| quarantine.map(|q| uptime.is_none_or(|up| up < q)));
    report
}

/// What a fresh connection to `address` tells: reachable, the ping latency, `stats`.
async fn from_probe(address: &str) -> Report {
    let mut report = Report {
        address: address.to_string(),
        ..Report::default()
    };
    match probe(address).await {
        Ok((ping, stats)) => {
            let number = |name: &str| stats.get(name).and_then(|v| v.parse::<u64>().ok());
            report.up = true;
            report.ping = Some(ping);
            report.version = stats.get("version").cloned();
            report.pid = stats.get("pid").cloned();
            report.uptime_secs = number("uptime");
            report.items = number("curr_items");
            report.evictions = number("evictions");
            report.server_connections = number("curr_connections");
        }
        Err(e) => report.error = Some(e),
    }
    report
}

/// Connects, times one `version` round trip, and reads `stats`.
async fn probe(address: &str) -> Result<(Duration, BTreeMap<String, String>), String> {
    let step = |what: &'static str| move |_| format!("{what} took longer than {PROBE_TIMEOUT:?}");
    let stream = timeout(PROBE_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(step("connecting"))?
        .map_err(|e| format!("cannot connect: {e}"))?;
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    let started = Instant::now();
    let ping = async {
        stream.get_mut().write_all(b"version\r\n").await?;
        stream.read_line(&mut line).await
    };
    timeout(PROBE_TIMEOUT, ping)
        .await
        .map_err(step("version"))?
        .map_err(|e| format!("version failed: {e}"))?;
    let ping = started.elapsed();
    if !line.starts_with("VERSION") {
        return Err(format!("unexpected answer to version: {}", line.trim_end()));
    }
    let mut stats = BTreeMap::new();
    let read_stats = async {
        stream.get_mut().write_all(b"stats\r\n").await?;
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await? == 0 || line.starts_with("END") {
                return Ok::<_, std::io::Error>(());
            }
            if let Some(rest) = line.trim_end().strip_prefix("STAT ") {
                if let Some((name, value)) = rest.split_once(' ') {
                    stats.insert(name.to_string(), value.to_string());
                }
            }
        }
    };
    timeout(PROBE_TIMEOUT, read_stats)
        .await
        .map_err(step("stats"))?
        .map_err(|e| format!("stats failed: {e}"))?;
    Ok((ping, stats))
}

/// `{"mode": ..., "down": n, "open_error": ..., "servers": [...]}`.
fn to_json(reports: &[Report], mode: Option<LockMode>, open_error: Option<&str>) -> Value {
    let servers: Vec<Value> = reports
        .iter()
        .map(|r| {
            json!({
                "address": r.address,
                "up": r.up,
                "version": r.version,
                "protocol": r.protocol,
                "pid": r.pid,
                "boot_epoch": r.boot_epoch,
                "boot_marker": r.boot_marker,
                "uptime_secs": r.uptime_secs,
                "in_quarantine": r.in_quarantine,
                "items": r.items,
                "evictions": r.evictions,
                "server_connections": r.server_connections,
                "client_connections": r.client_connections,
                "restarts_seen": r.restarts_seen,
                "ping_us": r.ping.map(|p| p.as_micros() as u64),
                "error": r.error,
            })
        })
        .collect();
    json!({
        "mode": mode.map(|m| if m == LockMode::Quorum { "quorum" } else { "sharded" }),
        "down": reports.iter().filter(|r| !r.up).count(),
        "open_error": open_error,
        "servers": servers,
    })
}

fn print_text(r: &Report) {
    let or_unknown = |v: Option<String>| v.unwrap_or_else(|| "?".into());
    println!(
        "{}  {}  version {}  protocol {}  ping {}",
        r.address,
        if r.up { "up" } else { "DOWN" },
        or_unknown(r.version.clone()),
        r.protocol.unwrap_or("?"),
        r.ping
            .map_or_else(|| "-".into(), |p| format!("{:.2}ms", p.as_secs_f64() * 1e3)),
    );
    if let Some(error) = &r.error {
        println!("  error: {error}");
    }
    if !r.up && r.uptime_secs.is_none() {
        return;
    }
    println!(
        "  boot: pid {}, uptime {}, marker {}, restarts seen {}",
        or_unknown(r.pid.clone()),
        r.uptime_secs.map_or_else(
            || "?".into(),
            |s| humantime::format_duration(Duration::from_secs(s)).to_string()
        ),
        or_unknown(r.boot_marker.clone()),
        or_unknown(r.restarts_seen.map(|n| n.to_string())),
    );
    println!(
        "  items {}, evictions {}, connections {} ({} from this client)",
        or_unknown(r.items.map(|n| n.to_string())),
        or_unknown(r.evictions.map(|n| n.to_string())),
        or_unknown(r.server_connections.map(|n| n.to_string())),
        or_unknown(r.client_connections.map(|n| n.to_string())),
    );
    if let Some(quarantined) = r.in_quarantine {
        println!(
            "  quarantine (quorum mode): {}",
            if quarantined {
                "yes: restarted or flushed less than options.quarantine ago, not counted towards a majority"
            } else {
                "no"
            }
        );
    }
}
