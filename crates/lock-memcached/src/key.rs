//! Lock keys: validation and the form they take on the wire.
//!
//! memcached's meta commands do not reject control characters, and a newline in a key would
//! start a new command, so every key is checked here before anything is written. With
//! `options.base64_keys` the key on the wire is the base64 text of prefix + name, the same in
//! the meta and the classic protocol.

use base64::Engine as _;
use commons::{Context, Error, Result, codes};

use crate::client::WireKey;
use crate::config::MemcachedLockConfig;

/// Turns a caller's key into the key sent to memcached: prefix, then either a check that
/// every byte is printable ASCII other than space, or base64 encoding (`b` flag).
pub(crate) fn wire_key(ctx: &Context, key: &str, config: &MemcachedLockConfig) -> Result<WireKey> {
    if key.is_empty() {
        return Err(bad_key(ctx, key, "the key is empty".to_string()));
    }
    if config.base64_keys {
        let mut raw = Vec::with_capacity(config.key_prefix.len() + key.len());
        raw.extend_from_slice(config.key_prefix.as_bytes());
        raw.extend_from_slice(key.as_bytes());
        let encoded = base64::engine::general_purpose::STANDARD.encode(&raw);
        if encoded.len() > config.max_key_size {
            return Err(bad_key(
                ctx,
                key,
                format!(
                    "the key is {} bytes once prefixed and base64-encoded; the limit (options.max_key_size) is {}",
                    encoded.len(),
                    config.max_key_size
                ),
            ));
        }
        // The base64 text itself is the key, in both protocols: with the meta `b` flag
        // memcached would store the decoded bytes, a different item from the one a classic
        // client (which has no such flag) locks, and the two would not exclude each other.
        return Ok(WireKey::new_unchecked(encoded.into_bytes(), false));
    }
    if let Some((pos, byte)) = key
        .bytes()
        .enumerate()
        .find(|(_, b)| !(0x21..=0x7e).contains(b))
    {
        return Err(bad_key(
            ctx,
            key,
            format!(
                "byte 0x{byte:02x} at position {pos} is not allowed: keys are printable ASCII \
                 without spaces or control characters (set options.base64_keys=true for any name)"
            ),
        ));
    }
    let len = config.key_prefix.len() + key.len();
    if len > config.max_key_size {
        return Err(bad_key(
            ctx,
            key,
            format!(
                "the key is {len} bytes with its prefix; the limit (options.max_key_size) is {}",
                config.max_key_size
            ),
        ));
    }
    Ok(WireKey::joined_unchecked(
        config.key_prefix.as_bytes(),
        key.as_bytes(),
    ))
}

fn bad_key(ctx: &Context, key: &str, why: String) -> Error {
    // The key itself may hold control bytes: show it escaped.
    let shown: String = key
        .chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect();
    Error::bad_request(
        codes::BAD_KEY,
        format!("invalid lock key \"{shown}\": {why}"),
    )
    .with_detail("key", shown)
    .with_context(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> MemcachedLockConfig {
        MemcachedLockConfig::default()
    }

    #[test]
    fn plain_keys_pass_and_get_the_prefix() {
        let mut c = cfg();
        c.key_prefix = "app:".into();
        let k = wire_key(&Context::new(), "orders", &c).unwrap();
        assert_eq!(k.as_bytes(), b"app:orders");
        assert!(!k.is_base64());
    }

    #[test]
    fn forbidden_bytes_are_rejected() {
        for bad in ["", "a b", "a\r\nmn", "a\x01", "tab\there", "é", "a\x7f"] {
            let err = wire_key(&Context::new(), bad, &cfg()).unwrap_err();
            assert_eq!(err.code(), codes::BAD_KEY, "{bad:?}");
        }
    }

    #[test]
    fn length_limit_counts_prefix() {
        let ok = "k".repeat(250);
        assert!(wire_key(&Context::new(), &ok, &cfg()).is_ok());
        let long = "k".repeat(251);
        assert_eq!(
            wire_key(&Context::new(), &long, &cfg()).unwrap_err().code(),
            codes::BAD_KEY
        );
        let mut c = cfg();
        c.key_prefix = "p:".into();
        assert!(wire_key(&Context::new(), &ok, &c).is_err());
    }

    #[test]
    fn base64_accepts_any_name_within_the_limit() {
        let mut c = cfg();
        c.base64_keys = true;
        let k = wire_key(&Context::new(), "schlüssel mit leerzeichen\n", &c).unwrap();
        // The text is the key (no meta `b` flag): one item in both protocols.
        assert!(!k.is_base64());
        assert!(k.as_bytes().iter().all(|b| b.is_ascii_graphic()));
        let long = "k".repeat(200); // 268 bytes of base64
        assert!(wire_key(&Context::new(), &long, &c).is_err());
    }
}
