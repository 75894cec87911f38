//! `ConfigParams::from_string` on arbitrary text.
//!
//! Checks, besides "no panic", what the method's documentation promises:
//! - every key is non-empty, trimmed and free of `;`; every value is trimmed and free of `;`;
//! - a key holds no `=` unless it starts with one (a token whose first `=` is at position 0
//!   is kept whole as the key);
//! - the map equals an independent model of the documented rules (split on `;`, trim, skip
//!   empty tokens, split at the first `=` unless it is at position 0, later tokens win);
//! - when no key starts with `=`, the `a=1;b=2` form (`Display`) parses back to an equal map;
//! - the section and typed accessors and the secret-masking `Debug` do not panic.
#![no_main]

use std::collections::BTreeMap;

use commons::ConfigParams;
use libfuzzer_sys::fuzz_target;

fn model(line: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for raw in line.split(';') {
        let token = raw.trim();
        if token.is_empty() {
            continue;
        }
        let (key, value) = match token.split_once('=') {
            Some((k, v)) if !k.is_empty() => (k.trim(), v.trim()),
            _ => (token, ""),
        };
        map.insert(key.to_string(), value.to_string());
    }
    map
}

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let config = ConfigParams::from_string(line);

    for (key, value) in config.iter() {
        assert!(!key.is_empty(), "empty key from {line:?}");
        assert_eq!(key, key.trim(), "untrimmed key from {line:?}");
        assert_eq!(value, value.trim(), "untrimmed value from {line:?}");
        assert!(
            !key.contains(';') && !value.contains(';'),
            "';' kept in {line:?}"
        );
        assert!(
            !key.contains('=') || key.starts_with('='),
            "key {key:?} split at the wrong '=' in {line:?}"
        );
    }

    let got: BTreeMap<String, String> = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        got,
        model(line),
        "from_string({line:?}) differs from the documented rules"
    );
    assert_eq!(config.len(), got.len());

    if config.keys().all(|k| !k.starts_with('=')) {
        let text = config.to_string();
        assert_eq!(
            ConfigParams::from_string(&text),
            config,
            "Display form {text:?} of {line:?} does not parse back"
        );
    }

    let names = config.get_section_names();
    for name in &names {
        let section = config.get_section(name);
        for (k, v) in section.iter() {
            assert_eq!(config.get(&format!("{name}.{k}")), Some(v));
        }
        let mut rebuilt = ConfigParams::new();
        rebuilt.add_section(name, &section);
        assert!(rebuilt.len() <= config.len());
    }
    for key in config.keys() {
        let _ = config.get_as_nullable_integer(key);
        let _ = config.get_as_float_with_default(key, 0.0);
        let _ = config.get_as_nullable_boolean(key);
        let _ = config.get_parsed::<u16>(key);
        let _ = config.get_millis_strict(key);
        let _ = config.get_bool_strict(key);
    }
    let _ = format!("{config:?}");
});
