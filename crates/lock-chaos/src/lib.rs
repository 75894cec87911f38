#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod checker;
pub mod orchestrator;
pub mod resource;
pub mod soak;
pub mod svg;
pub mod worker;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock nanoseconds since the Unix epoch (shared by every process on the machine).
///
/// ```
/// assert!(lock_chaos::wall_ns() > 1_600_000_000_000_000_000);
/// ```
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The wall-clock time at which a monotonic `deadline` falls (estimate, ns).
///
/// ```
/// use std::time::Duration;
/// let later = tokio::time::Instant::now() + Duration::from_secs(1);
/// let ns = lock_chaos::deadline_wall_ns(later);
/// assert!(ns > lock_chaos::wall_ns());
/// ```
pub fn deadline_wall_ns(deadline: tokio::time::Instant) -> u64 {
    let now = tokio::time::Instant::now();
    let wall = wall_ns();
    if deadline >= now {
        wall.saturating_add(duration_ns(deadline - now))
    } else {
        wall.saturating_sub(duration_ns(now - deadline))
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Picks `count` lock keys `chaos-<i>-<n>` such that key `i` lives on server `i % servers`
/// under `options.distribution=modula` (`crc32(key) % servers`), so that faults can be
/// attributed to the keys they hit.
///
/// ```
/// let keys = lock_chaos::keys_for_servers(3, 3);
/// for (i, k) in keys.iter().enumerate() {
///     assert_eq!(crc32fast::hash(k.as_bytes()) % 3, i as u32);
/// }
/// ```
pub fn keys_for_servers(count: usize, servers: usize) -> Vec<String> {
    let servers = servers.max(1);
    (0..count)
        .map(|i| {
            let want = (i % servers) as u32;
            (0u32..)
                .map(|n| format!("chaos-{i}-{n}"))
                .find(|k| crc32fast::hash(k.as_bytes()) % servers as u32 == want)
                .unwrap_or_else(|| format!("chaos-{i}"))
        })
        .collect()
}

/// Resident memory of this process in KiB (`VmRSS` in `/proc/self/status`).
///
/// ```
/// assert!(lock_chaos::rss_kib().unwrap_or(1) > 0);
/// ```
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Open file descriptors of this process (entries of `/proc/self/fd`).
///
/// ```
/// assert!(lock_chaos::open_fds().unwrap_or(3) >= 3);
/// ```
pub fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// Splits command-line arguments `--name=N` (or a bare `N`, which names `seconds`) into
/// names and whole numbers, each with the argument it came from (for error messages): the
/// form every option of the chaos and soak binaries takes.
///
/// ```
/// let args = ["12".to_string(), "--seed=7".to_string()];
/// let flags = lock_chaos::numeric_flags(&args).unwrap();
/// assert_eq!(flags, [("seconds", 12, "12"), ("seed", 7, "--seed=7")]);
/// assert!(lock_chaos::numeric_flags(&["--seed=x".into()]).is_err());
/// ```
pub fn numeric_flags(args: &[String]) -> Result<Vec<(&str, u64, &str)>, String> {
    args.iter()
        .map(|a| {
            let (k, v) = match a.strip_prefix("--").and_then(|a| a.split_once('=')) {
                Some(kv) => kv,
                None => ("seconds", a.as_str()),
            };
            let n: u64 = v.parse().map_err(|e| format!("{a}: {e}"))?;
            Ok((k, n, a.as_str()))
        })
        .collect()
}

/// The binaries' two-thread runtime; a failure to build it ends the process with status 2
/// (a setup error), after a line naming `program`.
pub fn runtime_or_exit(program: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| exit_setup_error(&format!("{program}: runtime: {e}")))
}

/// Prints `message` and ends the process with status 2, the binaries' setup-error status.
pub fn exit_setup_error(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(2)
}
