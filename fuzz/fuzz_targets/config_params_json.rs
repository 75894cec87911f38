//! `ConfigParams::from_json_str` on arbitrary text.
//!
//! Checks, besides "no panic":
//! - it succeeds exactly when the text is JSON whose top level is an object or an array;
//!   otherwise the error is a configuration error (`BAD_CONFIG`);
//! - on success there are no more keys than scalar leaves, and every value is the rendering
//!   of some leaf (a string as is, `null` as "", any other scalar as its JSON text).
#![no_main]

use commons::{ConfigParams, ErrorKind, codes};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn leaves(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
        Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
        Value::String(s) => out.push(s.clone()),
        Value::Null => out.push(String::new()),
        other => out.push(other.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    match ConfigParams::from_json_str(text) {
        Ok(config) => {
            let value = parsed.expect("from_json_str accepted text serde_json rejects");
            assert!(
                value.is_object() || value.is_array(),
                "accepted a scalar top level: {text:?}"
            );
            let mut all = Vec::new();
            leaves(&value, &mut all);
            assert!(
                config.len() <= all.len(),
                "more keys than leaves for {text:?}"
            );
            for (key, v) in config.iter() {
                assert!(
                    all.iter().any(|leaf| leaf == v),
                    "value {v:?} of {key:?} is no leaf of {text:?}"
                );
            }
            let _ = config.get_section_names();
            let _ = format!("{config:?} {config}");
        }
        Err(err) => {
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
            assert_eq!(err.code(), codes::BAD_CONFIG, "{err}");
            if let Some(value) = parsed {
                assert!(
                    !value.is_object() && !value.is_array(),
                    "rejected structured JSON {text:?}: {err}"
                );
            }
        }
    }
});
