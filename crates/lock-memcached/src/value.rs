//! What a lock item holds: the acquisition's token plus who holds it.

/// A fresh per-acquisition token: 128 random bits in hex.
pub(crate) fn new_token() -> String {
    let mut token = [0u8; 32];
    hex_token(&mut token);
    String::from_utf8_lossy(&token).into_owned()
}

/// Fills `out` with 128 random bits as lowercase hex.
fn hex_token(out: &mut [u8; 32]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits: u128 = rand::random();
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = HEX[((bits >> (124 - 4 * i)) & 0xf) as usize];
    }
}

/// `host=<hostname>;pid=<pid>`, computed once per lock instance.
pub(crate) fn holder_description() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let host: String = host
        .chars()
        .filter(|c| !c.is_control() && *c != ';')
        .take(64)
        .collect();
    format!("host={host};pid={}", std::process::id())
}

/// The stored value: `tok=<token>;host=..;pid=..[;trace=..]`.
pub(crate) struct LockValue;

impl LockValue {
    const MAX_TRACE: usize = 128;

    pub(crate) fn encode(token: &str, holder: &str, trace_id: Option<&str>) -> Vec<u8> {
        let mut v = String::with_capacity(token.len() + holder.len() + 16);
        v.push_str("tok=");
        v.push_str(token);
        v.push(';');
        v.push_str(holder);
        if let Some(trace) = trace_id {
            v.push_str(";trace=");
            v.extend(
                trace
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(Self::MAX_TRACE),
            );
        }
        v.into_bytes()
    }

    /// `encode` with a fresh token (no `fmt`, no separate token string: this is on the
    /// acquire path).
    pub(crate) fn encode_new(holder: &str, trace_id: Option<&str>) -> Vec<u8> {
        let mut token = [0u8; 32];
        hex_token(&mut token);
        // ASCII hex by construction, so the conversion cannot fail.
        Self::encode(
            std::str::from_utf8(&token).unwrap_or_default(),
            holder,
            trace_id,
        )
    }

    /// The token of a value made by [`LockValue::encode`] (empty for anything else).
    pub(crate) fn token(data: &[u8]) -> &str {
        let text = std::str::from_utf8(data).unwrap_or("");
        text.strip_prefix("tok=")
            .and_then(|rest| rest.split(';').next())
            .unwrap_or("")
    }

    /// A readable description of a stored value (for inspection), without the token.
    pub(crate) fn describe(data: &[u8]) -> String {
        let text = String::from_utf8_lossy(data);
        text.split(';')
            .filter(|part| !part.starts_with("tok="))
            .collect::<Vec<_>>()
            .join(";")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_hex() {
        let a = new_token();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, new_token());
    }

    #[test]
    fn value_round_trip_description() {
        let v = LockValue::encode("abc", "host=h;pid=1", Some("t-1\n"));
        assert_eq!(v, b"tok=abc;host=h;pid=1;trace=t-1");
        assert_eq!(LockValue::describe(&v), "host=h;pid=1;trace=t-1");
        assert_eq!(LockValue::token(&v), "abc");
        assert_eq!(LockValue::token(b"garbage"), "");
        let fresh = LockValue::encode_new("host=h;pid=1", None);
        assert_eq!(LockValue::token(&fresh).len(), 32);
        assert_ne!(
            LockValue::token(&fresh),
            LockValue::token(&LockValue::encode_new("h", None))
        );
        assert_eq!(LockValue::token(&v), "abc");
        assert_eq!(LockValue::token(b"garbage"), "");
    }
}
