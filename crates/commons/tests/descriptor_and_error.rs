//! Descriptor parsing/matching and the Error type.

use std::error::Error as StdError;

use commons::{Context, Descriptor, Error, ErrorKind, codes};

#[test]
fn descriptor_has_five_fields() {
    let d = Descriptor::parse("pip-services:lock:memcached:default:1.0").unwrap();
    assert_eq!(d.group(), Some("pip-services"));
    assert_eq!(d.type_(), Some("lock"));
    assert_eq!(d.kind(), Some("memcached"));
    assert_eq!(d.name(), Some("default"));
    assert_eq!(d.version(), Some("1.0"));
    assert!(d.is_complete());
}

#[test]
fn descriptor_fields_are_trimmed() {
    let d = Descriptor::parse(" g : t :k: n : 1.0 ").unwrap();
    assert_eq!(d, Descriptor::new("g", "t", "k", "n", "1.0"));
    assert_eq!(d.to_string(), "g:t:k:n:1.0");
}

#[test]
fn descriptor_star_and_empty_are_wildcards() {
    let d = Descriptor::parse("*:lock::*:1.0").unwrap();
    assert_eq!(d.group(), None);
    assert_eq!(d.kind(), None);
    assert_eq!(d.type_(), Some("lock"));
    assert!(!d.is_complete());
    assert_eq!(d.to_string(), "*:lock:*:*:1.0");
}

#[test]
fn descriptor_wildcards_match_both_ways() {
    let full = Descriptor::new("pip-services", "lock", "memory", "default", "1.0");
    let pattern = Descriptor::new("*", "lock", "*", "*", "1.0");
    assert!(full.matches(&pattern));
    assert!(pattern.matches(&full));
    let other_type = Descriptor::new("*", "discovery", "*", "*", "*");
    assert!(!full.matches(&other_type));
    assert!(!other_type.matches(&full));
    let other_version = Descriptor::new("pip-services", "lock", "memory", "default", "2.0");
    assert!(!full.matches(&other_version));
    // Partially wild on each side still matches when fields agree where both are set.
    let left = Descriptor::new("g", "*", "k", "*", "1.0");
    let right = Descriptor::new("*", "t", "k", "n", "*");
    assert!(left.matches(&right) && right.matches(&left));
    assert!(!left.exact_match(&right));
    assert!(full.exact_match(&full.clone()));
}

#[test]
fn descriptor_with_four_or_six_fields_is_bad_descriptor() {
    for bad in ["a:b:c:d", "a:b:c:d:e:f", "", "abc", "a:b:c:d:1.0:"] {
        let err = Descriptor::parse(bad).unwrap_err();
        assert_eq!(err.code(), codes::BAD_DESCRIPTOR, "{bad:?}");
        assert_eq!(err.detail("descriptor"), Some(bad));
        assert!(bad.parse::<Descriptor>().is_err());
    }
}

#[test]
fn descriptor_format_round_trips() {
    for text in [
        "pip-services:lock:memcached:default:1.0",
        "*:discovery:*:*:1.0",
        "*:*:*:*:*",
    ] {
        let d: Descriptor = text.parse().unwrap();
        assert_eq!(d.to_string(), text);
        assert_eq!(d.to_string().parse::<Descriptor>().unwrap(), d);
    }
}

#[test]
fn error_display_has_code_message_details_and_trace_id() {
    let err = Error::new(ErrorKind::Conflict, codes::LOCK_TIMEOUT, "not acquired")
        .with_detail("key", "orders")
        .with_detail("after_ms", 1000)
        .with_context(&Context::with_trace_id("t-1"));
    assert_eq!(
        err.to_string(),
        "LOCK_TIMEOUT: not acquired [after_ms=1000, key=orders] (trace id t-1)"
    );
    assert_eq!(err.message(), "not acquired");
    assert_eq!(err.status(), 409);
    assert_eq!(err.details().len(), 2);
    let plain = Error::config("bad");
    assert_eq!(plain.to_string(), "BAD_CONFIG: bad");
    assert_eq!(plain.trace_id(), None);
}

#[test]
fn error_trace_id_comes_from_the_context() {
    let ctx = Context::with_trace_id("abc");
    assert_eq!(
        Error::internal("x").with_context(&ctx).trace_id(),
        Some("abc")
    );
    // A context without a trace id keeps the one already set.
    let err = Error::internal("x")
        .with_trace_id("first")
        .with_context(&Context::new());
    assert_eq!(err.trace_id(), Some("first"));
    assert_eq!(Context::from("id").trace_id(), Some("id"));
    assert_eq!(ctx.clone(), ctx);
}

#[test]
fn error_retryable_defaults_by_kind_and_can_be_overridden() {
    let retryable = [ErrorKind::Connection, ErrorKind::Timeout];
    let not = [
        ErrorKind::Config,
        ErrorKind::InvalidState,
        ErrorKind::Conflict,
        ErrorKind::Reference,
        ErrorKind::BadRequest,
        ErrorKind::OutcomeUnknown,
        ErrorKind::Protocol,
        ErrorKind::Unsupported,
        ErrorKind::Creation,
        ErrorKind::Internal,
    ];
    for kind in retryable {
        assert!(
            Error::new(kind, codes::INTERNAL, "m").is_retryable(),
            "{kind}"
        );
    }
    for kind in not {
        assert!(
            !Error::new(kind, codes::INTERNAL, "m").is_retryable(),
            "{kind}"
        );
    }
    let forced =
        Error::new(ErrorKind::Connection, codes::CONNECTION_FAILED, "m").with_retryable(false);
    assert!(!forced.is_retryable());
    assert!(Error::config("m").with_retryable(true).is_retryable());
}

#[derive(Debug)]
struct Root;
impl std::fmt::Display for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("root cause")
    }
}
impl StdError for Root {}

/// An error whose own source is `Root`.
#[derive(Debug)]
struct Io(Root);
impl std::fmt::Display for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("io failed")
    }
}
impl StdError for Io {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn error_source_chain_is_walkable() {
    let io = Io(Root);
    let middle =
        Error::new(ErrorKind::Connection, codes::CONNECTION_FAILED, "connect").with_source(io);
    let top =
        Error::new(ErrorKind::Config, codes::NO_CONNECTION, "open failed").with_source(middle);
    let mut chain = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(&top);
    while let Some(e) = current {
        chain.push(e.to_string());
        current = e.source();
    }
    assert_eq!(chain.len(), 4, "{chain:?}");
    assert!(chain[1].starts_with("CONNECTION_FAILED"));
    assert_eq!(chain[2], "io failed");
    assert_eq!(chain[3], "root cause");
    assert!(Error::config("x").source().is_none());
    assert!(format!("{top:?}").contains("source"));
}

#[test]
fn error_codes_keep_the_original_names() {
    assert_eq!(codes::NO_CONNECTION, "NO_CONNECTION");
    assert_eq!(codes::NOT_OPENED, "NOT_OPENED");
    assert_eq!(codes::LOCK_TIMEOUT, "LOCK_TIMEOUT");
    assert_eq!(codes::REF_ERROR, "REF_ERROR");
    assert_eq!(codes::BAD_DESCRIPTOR, "BAD_DESCRIPTOR");
    assert_eq!(codes::CANNOT_CREATE, "CANNOT_CREATE");
    let e = Error::not_opened("MemcachedLock");
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::InvalidState, codes::NOT_OPENED)
    );
    let e = Error::bad_config_value("options.timeout", "x", "milliseconds");
    assert_eq!(e.detail("key"), Some("options.timeout"));
    assert_eq!(e.detail("value"), Some("x"));
}
