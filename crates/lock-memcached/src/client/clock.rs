//! A server's clock, read from outside, so locks can be stored with an absolute expiry.
//!
//! memcached expires items by a clock (`current_time`) that a timer advances once a second.
//! When the process stops running for a while (SIGSTOP, a frozen VM, a starved main
//! thread), the clock lags real time by the length of the stop until the timer runs again,
//! and an item stored in that window with a relative ttl (`T<secs>`) gets an expiry that is
//! early by the lag: it can vanish at once. An item stored with an absolute expiry
//! (`T<unix seconds>`, any value above 30 days) does not depend on the clock at the moment it
//! is stored, only on the clock catching up later, which it does.
//!
//! To ask for an absolute expiry the client must know the server's clock. Reading it:
//! `ma pip-locks:clock N<expiry> D0 t` (the item is created on a miss with that fixed
//! absolute expiry `codec::CLOCK_EXPIRY`), so `expiry - t` is the server's clock in unix seconds at the moment
//! it processed the read. [`ServerClock`] keeps, per server boot, the readings of the last
//! [`WINDOW`] and turns them into bounds on the offset between the server's clock and this
//! process's clock:
//!
//! - a reading never runs ahead of the server's true clock, so `reading - received` is a
//!   lower bound of the offset, whatever state the server's clock was in;
//! - a reading lags the true clock by less than [`FRESH_LAG`] while the server's timer runs
//!   (whole seconds, one tick late at most), so `reading - sent + FRESH_LAG` is an upper bound
//!   as long as at least one reading of the window was taken while the timer ran. A reading
//!   taken just as a stopped server resumes can lag more; it only makes its own bound
//!   smaller, and the largest bound of the window is used, so one such reading among fresh
//!   ones changes nothing.
//!
//! docs/safety.md ("A paused server's clock") states what this guarantees and what it assumes.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::identity::ServerIdentity;

/// Expiries up to this many seconds are relative (memcached's rule).
const RELATIVE_LIMIT: u64 = 30 * 24 * 3600;

/// How long readings are trusted: the offset between two clocks drifts slowly, so old
/// readings are dropped and [`DRIFT`] covers the drift over the window.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// Two clocks whose rates differ by at most 1,000 ppm drift apart by this much in
/// [`WINDOW`].
const DRIFT: Duration = Duration::from_millis(60);

/// How far a reading lags the server's true clock while its timer runs: the clock counts
/// whole seconds and is updated once a second, so it is at most two seconds behind.
pub(crate) const FRESH_LAG: Duration = Duration::from_secs(2);

/// memcached's clock ticks once a second: an item outlives its expiry by up to one tick.
const TICK: Duration = Duration::from_secs(1);

/// How far above the best estimate of the server's clock an absolute expiry is placed: an
/// item lives at least `ttl - 1 s` after its request left (the margin of a relative ttl)
/// even when the best reading of the window lagged by almost [`FRESH_LAG`].
const PLACEMENT: Duration = Duration::from_secs(1);

/// Readings of one server boot, in nanoseconds of offset (server clock minus this process's
/// clock, both counted from [`base`]).
#[derive(Debug, Default)]
struct Readings {
    boot: Option<ServerIdentity>,
    /// The largest `reading - sent` of the current half-window, and when it started.
    upper: Option<(i128, Instant)>,
    /// The same for the half-window before.
    upper_before: Option<(i128, Instant)>,
    /// The largest `reading - received` (a sound lower bound), with the same halves.
    lower: Option<(i128, Instant)>,
    lower_before: Option<(i128, Instant)>,
}

/// What this process knows of one server's clock.
#[derive(Debug, Default)]
pub(crate) struct ServerClock {
    readings: Mutex<Readings>,
}

/// Bounds of the offset between a server's clock and this process's clock, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offset {
    /// Never above the true offset.
    pub(crate) low: i128,
    /// Not below the true offset while the window holds one reading taken with the server's
    /// timer running.
    pub(crate) high: i128,
}

impl ServerClock {
    /// Records a clock reading of `boot`: the server said its clock was `server_secs` (unix
    /// seconds) while processing a request sent at `sent` and answered at `received` (now);
    /// returns the bounds with it counted (one lock, one clock read: this runs per acquire).
    pub(crate) fn observe(
        &self,
        boot: ServerIdentity,
        sent: Instant,
        received: Instant,
        server_secs: i64,
    ) -> Option<Offset> {
        let server = i128::from(server_secs) * 1_000_000_000;
        let upper = server - nanos(sent);
        let lower = server - nanos(received);
        let mut guard = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        let r = &mut *guard;
        if r.boot != Some(boot) {
            // A new boot has a new clock: nothing learned of the old one applies.
            *r = Readings {
                boot: Some(boot),
                ..Readings::default()
            };
        }
        keep_max(&mut r.upper, &mut r.upper_before, upper, sent);
        keep_max(&mut r.lower, &mut r.lower_before, lower, sent);
        bounds(r, received)
    }

    /// The bounds of the offset for `boot` from the readings of the last [`WINDOW`], if any.
    #[cfg(test)]
    pub(crate) fn offset(&self, boot: ServerIdentity) -> Option<Offset> {
        self.offset_at(boot, Instant::now())
    }

    /// [`ServerClock::offset`] as of `now`, a moment the caller read the clock at (the start
    /// of its operation, microseconds ago at most: next to the minute's window and its drift
    /// allowance, no reading counts measurably longer for it).
    pub(crate) fn offset_at(&self, boot: ServerIdentity, now: Instant) -> Option<Offset> {
        let r = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        if r.boot != Some(boot) {
            return None;
        }
        bounds(&r, now)
    }
}

/// The bounds from the readings that are still in the window at `now`.
fn bounds(r: &Readings, now: Instant) -> Option<Offset> {
    let best = |a: Option<(i128, Instant)>, b: Option<(i128, Instant)>| {
        [a, b]
            .into_iter()
            .flatten()
            .filter(|&(_, since)| now.saturating_duration_since(since) < WINDOW)
            .map(|(v, _)| v)
            .max()
    };
    let high = best(r.upper, r.upper_before)?;
    let low = best(r.lower, r.lower_before)?;
    let drift = DRIFT.as_nanos() as i128;
    Some(Offset {
        low: low - drift,
        high: high + FRESH_LAG.as_nanos() as i128 + drift,
    })
}

impl Offset {
    /// The absolute expiry (unix seconds) for an item asked to live `ttl_secs` from `sent`,
    /// or `None` when it cannot be written as one (memcached's 32-bit limit, or a server
    /// clock so far in the past that the number would read as a relative ttl).
    pub(crate) fn expiry(&self, sent: Instant, ttl_secs: u32) -> Option<u32> {
        // The best estimate of the server's clock: the upper bound less the lag allowance,
        // plus the placement margin.
        let estimate =
            nanos(sent) + self.high - FRESH_LAG.as_nanos() as i128 + PLACEMENT.as_nanos() as i128;
        let secs = ceil_secs(estimate).checked_add(i128::from(ttl_secs))?;
        let secs = u32::try_from(secs).ok()?;
        (u64::from(secs) > RELATIVE_LIMIT && secs < 1 << 31).then_some(secs)
    }

    /// Until when (this process's clock) an item with absolute expiry `expiry` certainly
    /// exists, as far as its expiry is concerned.
    pub(crate) fn alive_until(&self, expiry: u32) -> Instant {
        instant_at(i128::from(expiry) * 1_000_000_000 - self.high)
    }

    /// When (this process's clock) an item with absolute expiry `expiry` is certainly gone,
    /// once the server's clock runs: its expiry by the lowest offset, plus a tick of the
    /// server's clock.
    pub(crate) fn gone_by(&self, expiry: u32) -> Instant {
        instant_at(i128::from(expiry) * 1_000_000_000 - self.low + TICK.as_nanos() as i128)
    }
}

/// Keeps the largest `value` per half-window: a value moves to `before` when its half-window
/// is over, and is dropped after the next.
fn keep_max(
    current: &mut Option<(i128, Instant)>,
    before: &mut Option<(i128, Instant)>,
    value: i128,
    at: Instant,
) {
    let half = WINDOW / 2;
    if let Some((_, since)) = *current
        && at.saturating_duration_since(since) >= half
    {
        *before = current.take();
    }
    match current {
        Some((best, _)) => *best = (*best).max(value),
        None => *current = Some((value, at)),
    }
}

/// The process-wide origin of the nanosecond counts.
fn base() -> Instant {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(std::time::Instant::now);
    // tokio's clock follows std's, except when a test pauses it; the origin is shared by
    // every reading either way.
    Instant::from_std(base)
}

fn nanos(at: Instant) -> i128 {
    let base = base();
    if at >= base {
        at.duration_since(base).as_nanos() as i128
    } else {
        -(base.duration_since(at).as_nanos() as i128)
    }
}

fn instant_at(nanos: i128) -> Instant {
    let base = base();
    if nanos >= 0 {
        base + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    } else {
        base.checked_sub(Duration::from_nanos(
            u64::try_from(-nanos).unwrap_or(u64::MAX),
        ))
        .unwrap_or(base)
    }
}

fn ceil_secs(nanos: i128) -> i128 {
    nanos.div_euclid(1_000_000_000) + i128::from(nanos.rem_euclid(1_000_000_000) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: ServerIdentity = ServerIdentity {
        pid: 1,
        boot_epoch: 1,
        boot_marker: 7,
    };

    /// The unix second a server whose clock equals this process's clock plus `offset_secs`
    /// reports at `at`, lagging by `lag`.
    fn reading(at: Instant, offset_secs: i64, lag: Duration) -> i64 {
        let true_nanos = nanos(at) + i128::from(offset_secs) * 1_000_000_000;
        ((true_nanos - lag.as_nanos() as i128).div_euclid(1_000_000_000)) as i64
    }

    #[test]
    fn the_offset_bounds_hold_the_true_offset() {
        let clock = ServerClock::default();
        let offset = 1_800_000_000i64;
        let now = Instant::now();
        let rtt = Duration::from_micros(300);
        for lag_ms in [0, 250, 900, 1_500] {
            let lag = Duration::from_millis(lag_ms);
            clock.observe(BOOT, now, now + rtt, reading(now, offset, lag));
        }
        let o = clock.offset(BOOT).expect("readings");
        let truth = i128::from(offset) * 1_000_000_000;
        assert!(o.low <= truth, "{o:?}");
        assert!(o.high >= truth, "{o:?}");
        assert!(o.high - o.low < 3_500_000_000, "{o:?}");
    }

    #[test]
    fn an_absolute_expiry_outlives_the_ttl_less_a_second_and_not_much_more() {
        let clock = ServerClock::default();
        let offset = 1_800_000_000i64;
        let now = Instant::now();
        clock.observe(
            BOOT,
            now,
            now,
            reading(now, offset, Duration::from_millis(700)),
        );
        let o = clock.offset(BOOT).unwrap();
        let expiry = o.expiry(now, 5).expect("absolute");
        // The item dies when the true server clock reaches `expiry`.
        let dies = i128::from(expiry) * 1_000_000_000 - i128::from(offset) * 1_000_000_000;
        let lives = dies - nanos(now);
        assert!(lives >= 4_000_000_000, "lives {lives} ns");
        assert!(lives <= 8_000_000_000, "lives {lives} ns");
        // What the lock trusts is never past the true death.
        assert!(nanos(o.alive_until(expiry)) <= dies);
        assert!(nanos(o.gone_by(expiry)) >= dies);
    }

    #[test]
    fn a_stale_reading_among_fresh_ones_changes_nothing_and_a_new_boot_starts_over() {
        let clock = ServerClock::default();
        let now = Instant::now();
        clock.observe(BOOT, now, now, reading(now, 100_000_000, Duration::ZERO));
        let fresh = clock.offset(BOOT).unwrap();
        // A reading from a server that was stopped for 30 s.
        clock.observe(
            BOOT,
            now,
            now,
            reading(now, 100_000_000, Duration::from_secs(30)),
        );
        assert_eq!(clock.offset(BOOT).unwrap().high, fresh.high);
        let other = ServerIdentity {
            boot_marker: 8,
            ..BOOT
        };
        assert_eq!(clock.offset(other), None);
        clock.observe(other, now, now, reading(now, 5_000_000_000, Duration::ZERO));
        assert_eq!(clock.offset(BOOT), None);
        assert!(clock.offset(other).is_some());
    }

    #[test]
    fn expiries_memcached_cannot_read_as_absolute_are_refused() {
        let now = Instant::now();
        let clock = ServerClock::default();
        // A server clock in 1970: the number would read as a relative ttl.
        clock.observe(BOOT, now, now, reading(now, 0, Duration::ZERO) + 1_000);
        assert_eq!(clock.offset(BOOT).unwrap().expiry(now, 5), None);
        // A server clock past 2038.
        clock.observe(BOOT, now, now, reading(now, 2_200_000_000, Duration::ZERO));
        assert_eq!(clock.offset(BOOT).unwrap().expiry(now, 5), None);
    }

    #[test]
    fn readings_older_than_the_window_are_not_used() {
        let clock = ServerClock::default();
        let long_ago = Instant::now() - WINDOW - Duration::from_secs(1);
        clock.observe(BOOT, long_ago, long_ago, 1_800_000_000);
        assert_eq!(clock.offset(BOOT), None);
    }
}
