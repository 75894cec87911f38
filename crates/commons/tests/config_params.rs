//! ConfigParams rules (reference-semantics.md, "Keep" table).

use std::time::Duration;

use commons::{ConfigParams, ErrorKind, codes, config_params};
use serde_json::json;

#[test]
fn from_tuples_later_pairs_win() {
    let c = ConfigParams::from_tuples([("a", "1"), ("b", "2"), ("a", "3")]);
    assert_eq!(c.len(), 2);
    assert_eq!(c.get("a"), Some("3"));
    assert_eq!(c.get("b"), Some("2"));
}

#[test]
fn macro_and_from_iterator_build_the_same_map() {
    let a = config_params! { "x" => 1, "y.z" => "two" };
    let b: ConfigParams = vec![("x", "1"), ("y.z", "two")].into_iter().collect();
    assert_eq!(a, b);
    assert!(config_params! {}.is_empty());
}

#[test]
fn from_string_splits_on_semicolon_then_first_equals_and_trims() {
    let c = ConfigParams::from_string("  host = localhost ; port=11211");
    assert_eq!(c.get("host"), Some("localhost"));
    assert_eq!(c.get("port"), Some("11211"));
    assert_eq!(c.len(), 2);
}

#[test]
fn from_string_skips_empty_tokens() {
    let c = ConfigParams::from_string(";;a=1;  ;;b=2;");
    assert_eq!(c.len(), 2);
    assert_eq!(c.get("a"), Some("1"));
    assert_eq!(c.get("b"), Some("2"));
    assert!(ConfigParams::from_string("").is_empty());
    assert!(ConfigParams::from_string(" ; ; ").is_empty());
}

#[test]
fn from_string_equals_at_position_zero_keeps_the_whole_token_as_key() {
    // The originals split only when `=` is past position 0 (`index > 0`).
    let c = ConfigParams::from_string("=value;a=1; =x");
    assert_eq!(c.len(), 3);
    assert_eq!(c.get("a"), Some("1"));
    assert_eq!(c.get("=value"), Some(""));
    assert_eq!(c.get("=x"), Some(""));
    assert_eq!(c.get(""), None);
}

#[test]
fn from_string_keeps_equals_signs_in_the_value() {
    let c = ConfigParams::from_string("uri=memcached://h?a=b&c=d;x==y");
    assert_eq!(c.get("uri"), Some("memcached://h?a=b&c=d"));
    assert_eq!(c.get("x"), Some("=y"));
}

#[test]
fn from_string_token_without_equals_is_a_key_with_empty_value() {
    let c = ConfigParams::from_string("flag; other = 2");
    assert_eq!(c.get("flag"), Some(""));
    assert!(c.contains_key("flag"));
    assert_eq!(c.get("other"), Some("2"));
}

#[test]
fn keys_are_case_sensitive() {
    let c = ConfigParams::from_string("Host=a;host=b");
    assert_eq!(c.len(), 2);
    assert_eq!(c.get("Host"), Some("a"));
    assert_eq!(c.get("host"), Some("b"));
    assert_eq!(c.get("HOST"), None);
}

#[test]
fn section_is_the_keys_under_the_prefix_with_the_prefix_removed() {
    let c = ConfigParams::from_string(
        "connection.host=h;connection.port=1;connections.a.host=x;connectionx=no;other=1",
    );
    let s = c.get_section("connection");
    assert_eq!(s, ConfigParams::from_string("host=h;port=1"));
    let nested = c.get_section("connections").get_section("a");
    assert_eq!(nested.get("host"), Some("x"));
}

#[test]
fn missing_section_is_empty_not_an_error() {
    let c = ConfigParams::from_string("a=1");
    assert!(c.get_section("nothing").is_empty());
    assert!(ConfigParams::new().get_section("a").is_empty());
}

#[test]
fn section_names_are_distinct_first_segments_including_plain_keys() {
    let c = ConfigParams::from_string("b.x=1;a.y=2;b.z=3;plain=4;a.deep.k=5");
    assert_eq!(c.get_section_names(), vec!["a", "b", "plain"]);
    assert!(ConfigParams::new().get_section_names().is_empty());
}

#[test]
fn add_section_prefixes_every_key() {
    let mut c = ConfigParams::from_string("a=1");
    c.add_section("options", &ConfigParams::from_string("timeout=5;retries=3"));
    assert_eq!(c.get("options.timeout"), Some("5"));
    assert_eq!(c.get("options.retries"), Some("3"));
    assert_eq!(c.get("a"), Some("1"));
    c.add_section("", &ConfigParams::from_string("top=1"));
    assert_eq!(c.get("top"), Some("1"));
    assert_eq!(c.get_section("options").len(), 2);
}

#[test]
fn override_with_other_wins_and_returns_a_new_map() {
    let base = ConfigParams::from_string("a=1;b=2");
    let other = ConfigParams::from_string("b=20;c=30");
    let merged = base.override_with(&other);
    assert_eq!(merged, ConfigParams::from_string("a=1;b=20;c=30"));
    assert_eq!(base.get("b"), Some("2"), "the receiver is unchanged");
    assert_eq!(other.len(), 2);
}

#[test]
fn set_defaults_self_wins_and_returns_a_new_map() {
    let mine = ConfigParams::from_string("a=1;b=2");
    let defaults = ConfigParams::from_string("b=20;c=30");
    let merged = mine.set_defaults(&defaults);
    assert_eq!(merged, ConfigParams::from_string("a=1;b=2;c=30"));
    assert_eq!(mine.len(), 2, "the receiver is unchanged");
}

#[test]
fn typed_getters_fall_back_to_the_default_on_missing_or_unparsable() {
    let c = ConfigParams::from_string("n=42;f=2.5;b=yes;bad=abc;whole=12.0;B=OFF");
    assert_eq!(c.get_as_integer_with_default("n", 0), 42);
    assert_eq!(c.get_as_integer_with_default("bad", 7), 7);
    assert_eq!(c.get_as_integer_with_default("missing", 7), 7);
    assert_eq!(c.get_as_integer_with_default("whole", 0), 12);
    assert_eq!(
        c.get_as_integer_with_default("f", -1),
        -1,
        "2.5 is not an integer"
    );
    assert_eq!(c.get_as_nullable_integer("bad"), None);
    assert_eq!(c.get_as_float_with_default("f", 0.0), 2.5);
    assert_eq!(c.get_as_float_with_default("bad", 1.5), 1.5);
    assert!(c.get_as_boolean_with_default("b", false));
    assert!(!c.get_as_boolean_with_default("B", true));
    assert!(c.get_as_boolean_with_default("bad", true));
    assert_eq!(c.get_as_nullable_boolean("missing"), None);
    assert_eq!(c.get_as_string_with_default("missing", "d"), "d");
    assert_eq!(c.get_as_string_with_default("n", "d"), "42");
}

#[test]
fn strict_getters_name_the_key_and_value() {
    let c = ConfigParams::from_string("options.pool_size=five;options.flag=maybe;options.t=-3");
    let err = c.get_parsed::<u32>("options.pool_size").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(err.code(), codes::BAD_CONFIG);
    assert_eq!(err.detail("key"), Some("options.pool_size"));
    assert_eq!(err.detail("value"), Some("five"));
    let err = c.get_bool_strict("options.flag").unwrap_err();
    assert_eq!(err.detail("key"), Some("options.flag"));
    assert!(err.to_string().contains("maybe"));
    let err = c.get_millis_strict("options.t").unwrap_err();
    assert_eq!(err.detail("key"), Some("options.t"));
    assert_eq!(c.get_parsed::<u32>("options.none").unwrap(), None);
    assert_eq!(c.get_bool_strict("options.none").unwrap(), None);
    assert_eq!(c.get_millis_strict("options.none").unwrap(), None);
    let ok = ConfigParams::from_string("t=250;b=true;n=9");
    assert_eq!(
        ok.get_millis_strict("t").unwrap(),
        Some(Duration::from_millis(250))
    );
    assert_eq!(ok.get_bool_strict("b").unwrap(), Some(true));
    assert_eq!(ok.get_parsed::<u8>("n").unwrap(), Some(9));
}

#[test]
fn json_flattens_objects_arrays_and_null() {
    let value = json!({
        "connection": {"host": "h", "port": 11211, "tls": false},
        "hosts": ["a", {"host": "b"}],
        "nothing": null,
        "ratio": 0.5,
        "Key": "upper"
    });
    let c = ConfigParams::from_json(&value).unwrap();
    assert_eq!(c.get("connection.host"), Some("h"));
    assert_eq!(c.get("connection.port"), Some("11211"));
    assert_eq!(c.get("connection.tls"), Some("false"));
    assert_eq!(c.get("hosts.0"), Some("a"));
    assert_eq!(c.get("hosts.1.host"), Some("b"));
    assert_eq!(c.get("nothing"), Some(""));
    assert_eq!(c.get("ratio"), Some("0.5"));
    assert_eq!(c.get("Key"), Some("upper"));
    assert_eq!(c.get("key"), None);
    assert_eq!(c.len(), 8);
}

#[test]
fn json_top_level_array_and_text() {
    let c = ConfigParams::from_json(&json!(["x", "y"])).unwrap();
    assert_eq!(c.get("0"), Some("x"));
    assert_eq!(c.get("1"), Some("y"));
    let c = ConfigParams::from_json_str(r#"{"a": {"b": 1}}"#).unwrap();
    assert_eq!(c.get("a.b"), Some("1"));
}

#[test]
fn json_scalar_or_invalid_text_is_a_config_error() {
    for bad in [json!(3), json!("s"), json!(null), json!(true)] {
        let err = ConfigParams::from_json(&bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{bad}");
    }
    let err = ConfigParams::from_json_str("{not json").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        std::error::Error::source(&err).is_some(),
        "the JSON error is the source"
    );
}

#[test]
fn debug_masks_secrets_but_keeps_other_values() {
    let c = ConfigParams::from_string(
        "connection.password=hunter2;credential.access_key=V1;auth.token=V2;db.secret=V3;\
         api_key=V4;connection.pass=V5;connection.host=visible;connection.discovery_key=dk",
    );
    let text = format!("{c:?}");
    for secret in ["hunter2", "V1", "V2", "V3", "V4", "V5"] {
        assert!(!text.contains(secret), "{secret} leaked in {text}");
    }
    assert!(text.contains("visible"));
    assert!(text.contains("dk"), "discovery_key is not a secret: {text}");
    assert!(text.contains("***"));
}

#[test]
fn display_is_the_string_form_and_parses_back() {
    let c = ConfigParams::from_string("b=2;a=1;c.d=x");
    let text = c.to_string();
    assert_eq!(text, "a=1;b=2;c.d=x");
    assert_eq!(ConfigParams::from_string(&text), c);
}

#[test]
fn set_remove_and_iterate() {
    let mut c = ConfigParams::new();
    c.set("k", "v");
    c.set("k", "w");
    assert_eq!(c.get("k"), Some("w"));
    assert_eq!(c.keys().collect::<Vec<_>>(), vec!["k"]);
    assert_eq!(c.iter().collect::<Vec<_>>(), vec![("k", "w")]);
    assert_eq!(c.remove("k"), Some("w".to_string()));
    assert_eq!(c.remove("k"), None);
    assert!(c.is_empty());
}
