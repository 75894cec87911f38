#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod checker;
pub mod orchestrator;
pub mod resource;
pub mod soak;
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
