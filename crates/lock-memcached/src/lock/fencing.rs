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

/// The value a counter created by this acquire starts at: this client's wall clock in
/// nanoseconds plus `margin` (at least [`CLOCK_MARGIN`]), or just above the highest token this
/// process has seen, whichever is larger.
pub(super) fn initial_value(margin: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let margin = u64::try_from(margin.max(CLOCK_MARGIN).as_nanos()).unwrap_or(u64::MAX);
    now.saturating_add(margin)
        .max(HIGHEST_SEEN.load(Ordering::Relaxed).saturating_add(1))
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
    fn a_new_counter_starts_above_every_token_seen() {
        assert_eq!(token(&Reply::Count(42)), Ok(42));
        let high = u64::MAX / 2;
        assert_eq!(token(&Reply::Count(high)), Ok(high));
        assert!(initial_value(Duration::ZERO) > high);
        assert!(token(&Reply::ServerError("out of memory".into())).is_err());
        assert!(token(&Reply::ClientError("non-numeric".into())).is_err());
        assert!(token(&Reply::En).is_err());
    }
}
