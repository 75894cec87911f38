//! `Descriptor::parse` on arbitrary text.
//!
//! Checks, besides "no panic":
//! - it succeeds exactly when the text has five `:`-separated fields; otherwise the error
//!   is `BAD_DESCRIPTOR` of kind `BadRequest` naming the descriptor;
//! - a parsed descriptor formats (`Display`) and re-parses to an equal descriptor, and its
//!   fields are trimmed, non-empty and never `*` (wildcards are `None`);
//! - it matches itself and the all-wildcard locator.
#![no_main]

use commons::{Descriptor, ErrorKind, codes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fields = text.split(':').count();
    match Descriptor::parse(text) {
        Ok(d) => {
            assert_eq!(fields, 5, "accepted {text:?}");
            let shown = d.to_string();
            let again = Descriptor::parse(&shown)
                .unwrap_or_else(|e| panic!("{shown:?} (from {text:?}) does not re-parse: {e}"));
            assert_eq!(again, d, "{text:?} -> {shown:?} changed");
            assert_eq!(again.to_string(), shown);
            for f in [d.group(), d.type_(), d.kind(), d.name(), d.version()]
                .into_iter()
                .flatten()
            {
                assert!(!f.is_empty() && f == f.trim() && f != "*" && !f.contains(':'));
            }
            assert!(d.matches(&d) && d.exact_match(&d));
            assert!(d.matches(&Descriptor::new("*", "*", "*", "*", "*")));
        }
        Err(err) => {
            assert_ne!(fields, 5, "rejected {text:?}: {err}");
            assert_eq!(err.kind(), ErrorKind::BadRequest);
            assert_eq!(err.code(), codes::BAD_DESCRIPTOR);
            assert_eq!(err.detail("descriptor"), Some(text));
        }
    }
});
