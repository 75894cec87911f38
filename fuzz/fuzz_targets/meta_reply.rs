//! The memcached meta-protocol reply parser on arbitrary bytes, through
//! `lock_memcached::fuzzing::parse_replies`: it parses the input as the reply stream to each
//! kind of request (`ms`, `md`, `mg` with opaque 1, `mn`, `version`, `stats`), taking whole
//! replies from the front as a connection does, and asserts that each reply used between 1
//! and the remaining number of bytes. The check here is that nothing panics.
//!
//! Built only with `--features meta_reply` (`scripts/fuzz` turns it on when lock-memcached
//! has its `fuzzing` module).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lock_memcached::fuzzing::parse_replies(data);
});
