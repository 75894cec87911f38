//! Fencing tokens: a per-key counter on the key's server, advanced in the same round trip as
//! every acquire (`ma` right behind the `ms`, on the same connection), so each acquisition of a
//! key reads a larger value than every earlier one while the counter lives.
//!
//! Counters are shared by keys through a fixed number of buckets per server (memory stays
//! bounded however many keys are locked; a shared counter still grows with each acquisition
//! of every key on it) and are created with the clock item's absolute expiry, in 2038 (as
//! good as never; their remaining ttl, returned with every advance, is a clock reading). A counter the server lost (restart, `flush_all`,
//! eviction) is created again at the creating client's wall clock in nanoseconds plus a
//! margin, or just above the highest token this process has seen, whichever is larger:
//! docs/safety.md states when that keeps the tokens growing.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::client::{Reply, WireKey};

/// Counters per server. 4096 items of about 80 bytes: a third of a megabyte.
const BUCKETS: u32 = 4096;

/// The highest token this process has read, from any server.
static HIGHEST_SEEN: AtomicU64 = AtomicU64::new(0);

/// The counter that fences `key` (on the key's server).
pub(super) fn counter_key(key: &WireKey) -> WireKey {
    // The keys are made once: an acquire only clones one (a shared pointer).
    static KEYS: OnceLock<Vec<WireKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        (0..BUCKETS)
            .map(|b| WireKey::new_unchecked(format!("pip-locks:fence:{b:03x}").into_bytes(), false))
            .collect()
    });
    keys[(crc32fast::hash(key.as_bytes()) % BUCKETS) as usize].clone()
}

/// How far ahead of this client's clock a new counter starts: a counter the server lost is
/// created again from the creating client's clock, and must still start above every token
/// issued before, even when that client's clock lags the clock of the client that created
/// the lost counter. Clocks that agree within this margin (plus the time since the old
/// counter was created) keep tokens growing.
pub(super) const CLOCK_MARGIN: Duration = Duration::from_secs(60);

/// The value a counter created by an acquire started at `now` starts at: this client's wall
/// clock in nanoseconds plus `margin` (at least [`CLOCK_MARGIN`]), or just above the highest
/// token this process has seen, whichever is larger.
pub(super) fn initial_value(margin: Duration, now: Instant) -> u64 {
    let margin = u64::try_from(margin.max(CLOCK_MARGIN).as_nanos()).unwrap_or(u64::MAX);
    wall_nanos_at(now)
        .saturating_add(margin)
        .max(HIGHEST_SEEN.load(Ordering::Relaxed).saturating_add(1))
}

/// How long the wall clock is extrapolated from one reading of it.
const WALL_READ_EVERY: Duration = Duration::from_secs(1);

/// The wall clock in nanoseconds since 1970 at `now`, a monotonic reading the caller took
/// anyway: the wall clock itself is read at most once a [`WALL_READ_EVERY`] and carried
/// forward by the monotonic clock in between (every acquire would otherwise read both
/// clocks). Between two readings the estimate is off by the wall clock's adjustments of that
/// second at most: a slew of well under a millisecond, or a step, which the counters' margin
/// of a minute absorbs as it absorbs clocks that disagree.
fn wall_nanos_at(now: Instant) -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    // The wall clock less the monotonic one (in nanoseconds since `BASE`), and when that was
    // read (plus one: zero means never). Two atomics, not one lock: a reader that pairs a
    // new time of reading with the previous difference still has a difference of the last
    // second.
    static WALL_LESS_MONOTONIC: AtomicU64 = AtomicU64::new(0);
    static READ_AT: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(Instant::now);
    let since_base = |at: Instant| {
        u64::try_from(at.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX)
    };
    let at = since_base(now);
    let read_at = READ_AT.load(Ordering::Acquire);
    if read_at != 0 && at.saturating_sub(read_at - 1) < WALL_READ_EVERY.as_nanos() as u64 {
        return at.wrapping_add(WALL_LESS_MONOTONIC.load(Ordering::Relaxed));
    }
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let monotonic = since_base(Instant::now());
    WALL_LESS_MONOTONIC.store(wall.wrapping_sub(monotonic), Ordering::Relaxed);
    READ_AT.store(monotonic.saturating_add(1), Ordering::Release);
    // The caller's `now` is a little before this reading: the wall clock at that moment.
    wall.saturating_sub(monotonic.saturating_sub(at))
}

/// The token in the counter's reply, or why there is none.
pub(super) fn token(counter: &Reply) -> Result<u64, &'static str> {
    match counter {
        Reply::Count(value) => {
            HIGHEST_SEEN.fetch_max(*value, Ordering::Relaxed);
            Ok(*value)
        }
        Reply::ServerError(_) => {
            Err("the server refused to advance the fencing counter (out of memory?)")
        }
        Reply::ClientError(_) | Reply::Error => {
            Err("the fencing counter item holds something that is not a number")
        }
        _ => Err("the fencing counter gave no value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_spread_over_a_bounded_set_of_valid_keys() {
        let key = counter_key(&WireKey::new_unchecked(b"orders".to_vec(), false));
        assert!(key.is_safe());
        assert!(key.as_bytes().starts_with(b"pip-locks:fence:"));
        let distinct: std::collections::HashSet<Vec<u8>> = (0..20_000)
            .map(|i| {
                counter_key(&WireKey::new_unchecked(format!("k{i}").into_bytes(), false))
                    .as_bytes()
                    .to_vec()
            })
            .collect();
        assert!(distinct.len() <= BUCKETS as usize);
        assert!(distinct.len() > 4000, "{} buckets used", distinct.len());
    }

    #[test]
    fn the_wall_clock_is_carried_forward_between_its_readings() {
        let wall = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        };
        for _ in 0..3 {
            let before = wall();
            let estimate = wall_nanos_at(Instant::now());
            let after = wall();
            // Within the slew of a second (none on a test machine, in practice) of a reading.
            let slack = 5_000_000;
            assert!(
                estimate + slack >= before && estimate <= after + slack,
                "{before} <= {estimate} <= {after}"
            );
            std::thread::sleep(Duration::from_millis(600));
        }
    }

    #[test]
    fn a_new_counter_starts_above_every_token_seen() {
        assert_eq!(token(&Reply::Count(42)), Ok(42));
        let high = u64::MAX / 2;
        assert_eq!(token(&Reply::Count(high)), Ok(high));
        assert!(initial_value(Duration::ZERO, Instant::now()) > high);
        assert!(token(&Reply::ServerError("out of memory".into())).is_err());
        assert!(token(&Reply::ClientError("non-numeric".into())).is_err());
        assert!(token(&Reply::En).is_err());
    }
}
