//! What an instance remembers of each lock it holds, the table of those records, and the
//! arithmetic of ttls and validity.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use commons::{Context, Error, Result, codes};
use dashmap::DashMap;
use lock_core::Lease;
use tokio::time::Instant;

use crate::client::{Endpoint, ServerIdentity, WireKey};
use crate::config::MemcachedLockConfig;
use crate::value::LockValue;

/// One second: memcached's clock granularity. A lease is trusted only until
/// `start + ttl rounded up - 1 s`, because the server's coarse clock can expire an item up to
/// a second early.
const GRANULARITY: Duration = Duration::from_secs(1);

/// A lease this instance holds, with what is needed to release or extend it safely.
///
/// Kept free of owned strings: the hot path clones and stores it once per acquisition.
#[derive(Debug, Clone)]
pub(super) struct HeldLease {
    pub(super) wire: WireKey,
    /// The item's CAS; `None` while the acquisition is unconfirmed (its request left, no
    /// reply came): then only its token, in the stored value, can tell the item is ours.
    pub(super) cas: Option<u64>,
    pub(super) server: Arc<Endpoint>,
    pub(super) identity: ServerIdentity,
    /// The stored value. It carries this acquisition's token, so the `Arc` itself
    /// identifies the acquisition (compared with `Arc::ptr_eq`).
    pub(super) value: Arc<[u8]>,
    /// The acquisition's fencing token, or why it has none.
    pub(super) fencing: Result<u64, &'static str>,
    pub(super) ttl: Duration,
    pub(super) acquired_at: Instant,
    pub(super) valid_until: Instant,
    /// When memcached has certainly dropped the item: the reply's arrival plus the ttl in
    /// whole seconds plus a second for its clock. Past it, the record only takes room.
    pub(super) gone_by: Instant,
}

impl HeldLease {
    /// The record of an acquire whose outcome is unknown: never valid (nothing is known to
    /// be held), kept so that the owner's release can still delete the item by its token.
    pub(super) fn unconfirmed(
        wire: &WireKey,
        server: &Arc<Endpoint>,
        value: &Arc<[u8]>,
        ttl: Duration,
        secs: u32,
        sent_at: Instant,
    ) -> Self {
        HeldLease {
            wire: wire.clone(),
            cas: None,
            // Only the token matters while unconfirmed; no CAS-checked request is built
            // from this record, so the identity is never compared.
            identity: server.health().identity().unwrap_or(ServerIdentity {
                pid: 0,
                boot_epoch: 0,
                boot_marker: 0,
            }),
            server: server.clone(),
            value: value.clone(),
            fencing: Err("the acquisition was never confirmed"),
            ttl,
            acquired_at: sent_at,
            valid_until: sent_at,
            gone_by: gone_by(secs),
        }
    }

    /// The record after the item was renewed to `ttl` under the new `cas` by a request sent
    /// at `started`, trusted until `valid_until` and certainly gone by `gone_by`.
    pub(super) fn renewed(
        &self,
        cas: u64,
        ttl: Duration,
        started: Instant,
        (valid_until, gone_by): (Instant, Instant),
    ) -> Self {
        HeldLease {
            cas: Some(cas),
            ttl,
            acquired_at: started,
            valid_until,
            gone_by,
            ..self.clone()
        }
    }
}

/// The `Lease` a caller sees for an acquisition whose stored `value` carries its token.
pub(super) fn lease_of(
    key: &str,
    value: &[u8],
    fencing: std::result::Result<u64, &'static str>,
    (ttl, acquired_at, valid_until): (Duration, Instant, Instant),
) -> Lease {
    let lease = Lease::new(
        key,
        LockValue::token(value),
        fencing.ok(),
        ttl,
        acquired_at,
        valid_until,
    );
    match fencing {
        Ok(_) => lease,
        Err(why) => lease.without_fencing(why),
    }
}

/// How many locks serialize the extends of one instance (by key hash): few enough to cost
/// nothing, enough that unrelated keys rarely wait for each other.
const EXTEND_STRIPES: usize = 64;

/// What the lease table needs to know of a record (a single-server lease, or a quorum lease).
pub(super) trait Record: Clone {
    /// The stored value, carrying the acquisition's token; the `Arc` identifies the
    /// acquisition.
    fn stored(&self) -> &Arc<[u8]>;
    /// When the item(s) have certainly expired on the server(s).
    fn gone_by(&self) -> Instant;
    /// Whether the lease is still trusted.
    fn is_valid(&self) -> bool;
    /// Whether the acquisition is known to have stored its item (not only sent).
    fn is_confirmed(&self) -> bool;
}

/// `Record` and `to_lease` for a lease type with the fields `value`, `fencing`, `ttl`,
/// `acquired_at`, `valid_until` and `gone_by`; `confirmed` says whether a record of it is
/// known to have stored its item.
macro_rules! record {
    ($lease:ty, |$held:ident| $confirmed:expr) => {
        impl $lease {
            /// The lease the caller sees.
            pub(in $crate::lock) fn to_lease(&self, key: &str) -> lock_core::Lease {
                $crate::lock::lease::lease_of(
                    key,
                    &self.value,
                    self.fencing,
                    (self.ttl, self.acquired_at, self.valid_until),
                )
            }
        }

        impl $crate::lock::lease::Record for $lease {
            fn stored(&self) -> &std::sync::Arc<[u8]> {
                &self.value
            }
            fn gone_by(&self) -> tokio::time::Instant {
                self.gone_by
            }
            fn is_valid(&self) -> bool {
                tokio::time::Instant::now() < self.valid_until
            }
            fn is_confirmed(&self) -> bool {
                let $held = self;
                $confirmed
            }
        }
    };
}
pub(super) use record;

record!(HeldLease, |held| held.cas.is_some());

/// The leases of one instance, by caller key.
#[derive(Debug)]
pub(super) struct LeaseTable<R = HeldLease> {
    leases: DashMap<String, R, foldhash::fast::RandomState>,
    /// Acquires in flight, each holding a place under `options.max_size` until it ends.
    pending: AtomicUsize,
    /// Extends of one key by this instance run one at a time: two at once would each move
    /// the item's CAS under the other and read their own lock as lost.
    extending: Box<[tokio::sync::Mutex<()>]>,
    /// `pip_lock_held_leases`: moved by one at every record inserted or removed, so the
    /// tables of several instances add up in the recorder.
    held: metrics::Gauge,
    /// The number of records, moved with `held`: the place check of every acquire reads it
    /// (`DashMap::len` would lock every shard in turn).
    records: AtomicUsize,
}

impl<R> Default for LeaseTable<R> {
    fn default() -> Self {
        LeaseTable {
            leases: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            pending: AtomicUsize::new(0),
            extending: (0..EXTEND_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            held: metrics::Gauge::noop(),
            records: AtomicUsize::new(0),
        }
    }
}

impl<R> LeaseTable<R> {
    /// A table whose records are counted in the held-leases gauge of `mode`.
    pub(super) fn counted(mode: &'static str) -> Self {
        LeaseTable {
            held: metrics::gauge!(
                crate::telemetry::HELD_LEASES,
                "backend" => crate::telemetry::BACKEND,
                "mode" => mode
            ),
            ..LeaseTable::default()
        }
    }
}

/// A place under `options.max_size`, held by one acquire until it ends (its record is then
/// in the table, or it failed).
#[derive(Debug)]
pub(super) struct Place<'a> {
    pending: &'a AtomicUsize,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<R: Record> LeaseTable<R> {
    /// Records of acquisitions known to have stored their item.
    pub(super) fn confirmed_count(&self) -> usize {
        self.leases.iter().filter(|h| h.is_confirmed()).count()
    }

    pub(super) fn get(&self, key: &str) -> Option<R> {
        self.leases.get(key).map(|h| h.clone())
    }

    /// Whether this instance holds a still-valid lease on `key`.
    pub(super) fn holds_valid(&self, key: &str) -> bool {
        self.leases.get(key).is_some_and(|h| h.is_valid())
    }

    /// Whether `data` is the value of this instance's acquisition of `key`.
    pub(super) fn holds_value(&self, key: &str, data: &[u8]) -> bool {
        self.leases
            .get(key)
            .is_some_and(|h| h.stored().as_ref() == data)
    }

    /// A place for an acquire of `key`, or `TOO_MANY_LOCKS` when `max_size` locks are held
    /// or being acquired. Exact under concurrency: every acquire in flight holds its place
    /// (counted by every other) until its record is inserted, so the table never holds more
    /// than `max_size` records. Records of items memcached has certainly expired are dropped
    /// first (locks left to expire must not fill the table for good).
    pub(super) fn reserve(&self, ctx: &Context, key: &str, max_size: usize) -> Result<Place<'_>> {
        let in_flight = self.pending.fetch_add(1, Ordering::AcqRel) + 1;
        let place = Place {
            pending: &self.pending,
        };
        // A record of this key is replaced, not added: it does not take a second place (only
        // looked up near the limit, off the hot path).
        let fits = |len: usize| {
            len + in_flight <= max_size
                || len + in_flight - usize::from(self.leases.contains_key(key)) <= max_size
        };
        if fits(self.records.load(Ordering::Acquire)) {
            return Ok(place);
        }
        let now = Instant::now();
        let mut dropped = 0u32;
        self.leases.retain(|_, h| {
            let keep = h.gone_by() > now;
            dropped += u32::from(!keep);
            keep
        });
        self.removed(dropped as usize);
        if fits(self.records.load(Ordering::Acquire)) {
            return Ok(place);
        }
        Err(Error::bad_request(
            crate::codes::TOO_MANY_LOCKS,
            format!("this instance already holds {max_size} locks (options.max_size)"),
        )
        .with_detail("key", key)
        .with_context(ctx))
    }

    /// Counts a record inserted.
    fn added(&self) {
        self.records.fetch_add(1, Ordering::AcqRel);
        self.held.increment(1.0);
    }

    /// Counts `n` records removed.
    fn removed(&self, n: usize) {
        if n > 0 {
            self.records.fetch_sub(n, Ordering::AcqRel);
            self.held.decrement(n as f64);
        }
    }

    /// Waits until no other extend of `key` by this instance is running.
    pub(super) async fn extend_turn(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(key, &mut hasher);
        let stripe = std::hash::Hasher::finish(&hasher) as usize % self.extending.len();
        self.extending[stripe].lock().await
    }

    /// Records `held` unless the key already has a record (a newer acquisition keeps its own).
    pub(super) fn insert_if_absent(&self, key: &str, held: R) {
        if let dashmap::mapref::entry::Entry::Vacant(vacant) = self.leases.entry(key.to_string()) {
            vacant.insert(held);
            self.added();
        }
    }

    pub(super) fn insert(&self, key: &str, held: R) {
        if self.leases.insert(key.to_string(), held).is_none() {
            self.added();
        }
    }

    /// Puts back a record taken out for a release that failed, unless a new acquisition
    /// replaced it meanwhile.
    pub(super) fn restore(&self, key: &str, held: R) {
        self.insert_if_absent(key, held);
    }

    /// Replaces the record of the acquisition `held` (and only that one) with `renewed`.
    pub(super) fn replace(&self, key: &str, held: &R, renewed: R) {
        if let Some(mut entry) = self.leases.get_mut(key)
            && Arc::ptr_eq(entry.stored(), held.stored())
        {
            *entry = renewed;
        }
    }

    /// Takes out the record of `key`; with `token`, only when it is that acquisition's.
    pub(super) fn take(&self, key: &str, token: Option<&str>) -> Option<R> {
        match token {
            None => self.leases.remove(key),
            Some(token) => self
                .leases
                .remove_if(key, |_, h| LockValue::token(h.stored()) == token),
        }
        .map(|(_, held)| {
            self.removed(1);
            held
        })
    }

    /// Takes out the record of `key` (see [`LeaseTable::take`]); without one, checks the key
    /// (only a valid key can be in the table, so the others are reported here, off the hot
    /// path).
    pub(super) fn take_checked(
        &self,
        ctx: &Context,
        key: &str,
        token: Option<&str>,
        config: &MemcachedLockConfig,
    ) -> Result<Option<R>> {
        match self.take(key, token) {
            Some(held) => Ok(Some(held)),
            None => crate::key::wire_key(ctx, key, config).map(|_| None),
        }
    }

    /// Forgets the acquisition whose value is `value` (a newer one of the key stays).
    pub(super) fn forget(&self, key: &str, value: &Arc<[u8]>) {
        if self
            .leases
            .remove_if(key, |_, h| Arc::ptr_eq(h.stored(), value))
            .is_some()
        {
            self.removed(1);
        }
    }

    /// Takes out every record (at close).
    pub(super) fn drain(&self) -> Vec<R> {
        let keys: Vec<String> = self.leases.iter().map(|e| e.key().clone()).collect();
        let mut held = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some((_, record)) = self.leases.remove(&key) {
                self.removed(1);
                held.push(record);
            }
        }
        held
    }
}

/// The ttl in whole seconds as sent to memcached (rounded up: rounding down could turn a
/// short ttl into 0, which means never expire), checked against `options.max_expiration`.
pub(super) fn ttl_secs(ctx: &Context, ttl: Duration, config: &MemcachedLockConfig) -> Result<u32> {
    if ttl.is_zero() {
        return Err(
            Error::bad_request(codes::BAD_TTL, "ttl must be greater than zero")
                .with_detail("ttl_ms", ttl.as_millis())
                .with_context(ctx),
        );
    }
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    if secs > config.max_expiration.as_secs() {
        return Err(Error::bad_request(
            codes::BAD_TTL,
            format!(
                "ttl of {} s exceeds options.max_expiration ({} s)",
                secs,
                config.max_expiration.as_secs()
            ),
        )
        .with_detail("ttl_ms", ttl.as_millis())
        .with_context(ctx));
    }
    Ok(secs as u32)
}

/// See [`HeldLease::gone_by`]; called when the reply has arrived.
pub(super) fn gone_by(secs: u32) -> Instant {
    gone_by_from(Instant::now(), secs)
}

/// [`gone_by`] for a reply that arrived at `arrived`.
pub(super) fn gone_by_from(arrived: Instant, secs: u32) -> Instant {
    arrived + Duration::from_secs(u64::from(secs)) + GRANULARITY
}

/// How long a lease of `secs` whole seconds (asked as `ttl`) is trusted from the moment its
/// request was sent.
pub(super) fn validity(ttl: Duration, secs: u32) -> Duration {
    Duration::from_secs(u64::from(secs))
        .saturating_sub(GRANULARITY)
        .min(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with only what the table looks at.
    #[derive(Clone)]
    struct Stub {
        value: Arc<[u8]>,
        gone_by: Instant,
    }

    impl Record for Stub {
        fn stored(&self) -> &Arc<[u8]> {
            &self.value
        }
        fn gone_by(&self) -> Instant {
            self.gone_by
        }
        fn is_valid(&self) -> bool {
            true
        }
        fn is_confirmed(&self) -> bool {
            true
        }
    }

    fn stub(token: &str, gone_by: Instant) -> Stub {
        Stub {
            value: LockValue::encode(token, "host=h;pid=1", None).into(),
            gone_by,
        }
    }

    /// The place check reads the record count, not the map: every way a record enters or
    /// leaves the table must move it.
    #[test]
    fn the_record_count_follows_every_insert_and_removal() {
        let table: LeaseTable<Stub> = LeaseTable::default();
        let ctx = Context::new();
        let count = |t: &LeaseTable<Stub>| {
            let counted = t.records.load(Ordering::Acquire);
            assert_eq!(counted, t.leases.len(), "the count drifted from the map");
            counted
        };
        let later = Instant::now() + Duration::from_secs(60);
        let a = stub("a", later);
        table.insert("a", a.clone());
        table.insert("a", stub("a2", later)); // replaced, not added
        table.insert_if_absent("a", stub("a3", later));
        table.insert_if_absent("b", stub("b", later));
        table.restore("c", stub("c", later));
        assert_eq!(count(&table), 3);
        assert!(table.take("b", Some("not-its-token")).is_none());
        assert!(table.take("b", Some("b")).is_some());
        assert!(table.take("b", None).is_none());
        assert_eq!(count(&table), 2);
        table.forget("a", &a.value); // not the current acquisition of "a": stays
        assert_eq!(count(&table), 2);
        assert_eq!(table.drain().len(), 2);
        assert_eq!(count(&table), 0);

        // Full (max_size 2): records already gone on the server are dropped to make room.
        table.insert("old", stub("old", Instant::now()));
        table.insert("new", stub("new", later));
        let place = table
            .reserve(&ctx, "third", 2)
            .expect("the gone record made room");
        assert_eq!(count(&table), 1);
        drop(place);
        table.insert("third", stub("third", later));
        let err = table.reserve(&ctx, "fourth", 2).unwrap_err();
        assert_eq!(err.code(), crate::codes::TOO_MANY_LOCKS);
        // A key that already has a record is replaced, not added.
        assert!(table.reserve(&ctx, "third", 2).is_ok());
        assert_eq!(count(&table), 2);
    }
}
