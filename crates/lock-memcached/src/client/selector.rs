//! Which server holds a key.
//!
//! There is deliberately no failover: if a key's server is down, its operations fail with
//! `SERVER_DOWN`. Moving a lock key to another server while the first one may still hold it
//! would let two owners hold the same lock.

use md5::{Digest, Md5};

/// How keys are spread over several servers (`options.distribution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyDistribution {
    /// Consistent hashing (libmemcached's ketama layout): adding or removing one of N
    /// servers moves about 1/N of the keys.
    Ketama,
    /// `crc32(key) % N`, exactly as the Go original's client (gomemcache's `ServerList`)
    /// picks, so a fleet shared with it agrees on where a key lives. Changing N moves most
    /// keys.
    Modula,
}

/// Picks a server index for a key.
#[derive(Debug, Clone)]
pub(crate) struct ServerSelector {
    distribution: KeyDistribution,
    servers: usize,
    /// Ketama continuum: (point, server index), sorted by point.
    ring: Vec<(u32, usize)>,
}

/// Ketama: 40 md5 digests per server, 4 points from each, so 160 points per server.
const DIGESTS_PER_SERVER: usize = 40;

impl ServerSelector {
    /// A selector over `addresses` ("host:port"), in the order given: `pick` returns an
    /// index into that list.
    ///
    /// Ketama scheme (libmemcached-compatible layout, unweighted): for server `host:port` and
    /// `n` in `0..40`, `d = md5("host:port-n")`; each digest gives four points
    /// `u32::from_le_bytes(d[4k..4k+4])` for `k` in `0..4`. A key hashes to the first four
    /// bytes of `md5(key)` read little-endian, and belongs to the server owning the first
    /// point at or after it (wrapping to the lowest point).
    pub(crate) fn new(addresses: &[String], distribution: KeyDistribution) -> ServerSelector {
        let mut ring = Vec::new();
        if distribution == KeyDistribution::Ketama {
            ring.reserve(addresses.len() * DIGESTS_PER_SERVER * 4);
            for (index, address) in addresses.iter().enumerate() {
                for n in 0..DIGESTS_PER_SERVER {
                    let digest = Md5::digest(format!("{address}-{n}").as_bytes());
                    for k in 0..4 {
                        ring.push((le_u32(&digest[4 * k..4 * k + 4]), index));
                    }
                }
            }
            // Ties between servers are broken by index, so the ring is deterministic.
            ring.sort_unstable();
        }
        ServerSelector {
            distribution,
            servers: addresses.len(),
            ring,
        }
    }

    /// The index of the server for `key` (0 when there is at most one server).
    pub(crate) fn pick(&self, key: &[u8]) -> usize {
        if self.servers <= 1 {
            return 0;
        }
        match self.distribution {
            KeyDistribution::Modula => (crc32fast::hash(key) % self.servers as u32) as usize,
            KeyDistribution::Ketama => {
                let digest = Md5::digest(key);
                let h = le_u32(&digest[0..4]);
                let at = self.ring.partition_point(|&(point, _)| point < h);
                let (_, index) = self
                    .ring
                    .get(at)
                    .or(self.ring.first())
                    .copied()
                    .unwrap_or((0, 0));
                index
            }
        }
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{}:11211", i + 1)).collect()
    }

    fn keys(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("lock-key-{i}").into_bytes())
            .collect()
    }

    #[test]
    fn modula_is_crc32_ieee_mod_n() {
        let s = ServerSelector::new(&addrs(3), KeyDistribution::Modula);
        // crc32("123456789") = 0xCBF43926 (the IEEE check value) = 3421780262; % 3 = 2.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(s.pick(b"123456789"), 2);
        for k in keys(200) {
            assert_eq!(s.pick(&k), (crc32fast::hash(&k) % 3) as usize);
        }
    }

    #[test]
    fn one_server_always_zero() {
        for d in [KeyDistribution::Ketama, KeyDistribution::Modula] {
            let s = ServerSelector::new(&addrs(1), d);
            assert!(keys(50).iter().all(|k| s.pick(k) == 0));
            let empty = ServerSelector::new(&[], d);
            assert_eq!(empty.pick(b"x"), 0);
        }
    }

    #[test]
    fn ketama_ring_layout() {
        let s = ServerSelector::new(&addrs(4), KeyDistribution::Ketama);
        assert_eq!(s.ring.len(), 4 * 160);
        assert!(s.ring.windows(2).all(|w| w[0] <= w[1]));
        // The first point of server 0 is the first 4 bytes of md5("10.0.0.1:11211-0").
        let d = Md5::digest(b"10.0.0.1:11211-0");
        assert!(s.ring.contains(&(le_u32(&d[0..4]), 0)));
    }

    #[test]
    fn both_distributions_spread_keys() {
        for d in [KeyDistribution::Ketama, KeyDistribution::Modula] {
            let n = 5;
            let s = ServerSelector::new(&addrs(n), d);
            let mut counts = vec![0usize; n];
            let total = 20_000;
            for k in keys(total) {
                counts[s.pick(&k)] += 1;
            }
            let fair = total / n;
            for c in &counts {
                // Every server gets between half and one and a half of its fair share.
                assert!(*c > fair / 2 && *c < fair * 3 / 2, "{d:?}: {counts:?}");
            }
        }
    }

    #[test]
    fn ketama_is_stable_and_moves_about_one_nth_when_a_server_leaves() {
        let n = 5;
        let all = addrs(n);
        let s1 = ServerSelector::new(&all, KeyDistribution::Ketama);
        let again = ServerSelector::new(&all, KeyDistribution::Ketama);
        let removed = 2;
        let rest: Vec<String> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != removed)
            .map(|(_, a)| a.clone())
            .collect();
        let s2 = ServerSelector::new(&rest, KeyDistribution::Ketama);
        let total = 20_000;
        let mut moved = 0;
        for k in keys(total) {
            let before = s1.pick(&k);
            assert_eq!(before, again.pick(&k), "same servers, same choice");
            let after_addr = &rest[s2.pick(&k)];
            if before != removed {
                // Keys of the remaining servers stay where they were.
                assert_eq!(&all[before], after_addr);
            } else {
                moved += 1;
            }
        }
        // About 1/5 of the keys lived on the removed server (and only those moved).
        let share = moved as f64 / total as f64;
        assert!((0.1..0.3).contains(&share), "moved share {share}");
        // Modula, by contrast, moves most keys.
        let m1 = ServerSelector::new(&all, KeyDistribution::Modula);
        let m2 = ServerSelector::new(&rest, KeyDistribution::Modula);
        let m_moved = keys(total)
            .iter()
            .filter(|k| all[m1.pick(k)] != rest[m2.pick(k)])
            .count();
        assert!(m_moved as f64 / total as f64 > 0.5);
    }
}
