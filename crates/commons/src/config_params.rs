//! `ConfigParams`: the string map every component is configured with.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::{Error, Result};

/// A map of case-sensitive string keys to string values, where dots make sections
/// (`connection.host`, `options.timeout`).
///
/// Typed getters (`get_as_*_with_default`) are lenient, as in Pip.Services: a missing or
/// unparsable value yields the default. Components that turn the map into a typed config
/// use the strict [`ConfigParams::get_parsed`], which names the key and value in its error.
///
/// ```
/// use commons::ConfigParams;
///
/// let config = ConfigParams::from_string("connection.host=localhost; connection.port=11211;options.timeout=500");
/// assert_eq!(config.get("connection.host"), Some("localhost"));
/// let connection = config.get_section("connection");
/// assert_eq!(connection.get_as_integer_with_default("port", 0), 11211);
/// assert_eq!(config.get_section_names(), vec!["connection", "options"]);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConfigParams {
    values: BTreeMap<String, String>,
}

impl ConfigParams {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a map from key/value pairs; later pairs win.
    ///
    /// ```
    /// use commons::ConfigParams;
    /// let c = ConfigParams::from_tuples([("host", "localhost"), ("port", "11211")]);
    /// assert_eq!(c.len(), 2);
    /// ```
    pub fn from_tuples<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut config = ConfigParams::new();
        for (k, v) in pairs {
            config.set(k, v);
        }
        config
    }

    /// Parses `"a=1;b=2"`: splits on `;`, then at the first `=`; trims keys and values;
    /// skips empty tokens. A token without `=` is a key with an empty value. As in the
    /// Pip.Services originals, an `=` at position 0 does not split: the whole token
    /// (`=z`) is the key, with an empty value.
    ///
    /// ```
    /// use commons::ConfigParams;
    /// let c = ConfigParams::from_string(" a = 1 ;; b=x=y; c ;=z");
    /// assert_eq!(c.get("a"), Some("1"));
    /// assert_eq!(c.get("b"), Some("x=y"));
    /// assert_eq!(c.get("c"), Some(""));
    /// assert_eq!(c.get("=z"), Some(""));
    /// assert_eq!(c.len(), 4);
    /// ```
    pub fn from_string(line: &str) -> Self {
        let mut config = ConfigParams::new();
        for token in line.split(';') {
            let token = token.trim();
            if token.is_empty() {
                continue;
            }
            let (key, value) = match token.find('=') {
                Some(pos) if pos > 0 => (token[..pos].trim(), token[pos + 1..].trim()),
                _ => (token, ""),
            };
            config.set(key, value);
        }
        config
    }

    /// Builds a map from a JSON value: nested objects flatten to dotted keys, arrays to
    /// `.0`, `.1`, ...; strings are taken as they are, other scalars by their JSON text,
    /// `null` as an empty string. A scalar at the top level is an error.
    ///
    /// ```
    /// use commons::ConfigParams;
    /// let json = serde_json::json!({"connection": {"host": "h", "port": 11211}, "tags": ["a", "b"]});
    /// let c = ConfigParams::from_json(&json).unwrap();
    /// assert_eq!(c.get("connection.port"), Some("11211"));
    /// assert_eq!(c.get("tags.1"), Some("b"));
    /// ```
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let mut config = ConfigParams::new();
        match value {
            serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                flatten_json("", value, &mut config);
                Ok(config)
            }
            other => Err(Error::config(format!(
                "configuration JSON must be an object, found {}",
                json_type_name(other)
            ))),
        }
    }

    /// Parses JSON text and builds the map as [`ConfigParams::from_json`] does.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            Error::config(format!("configuration is not valid JSON: {e}")).with_source(e)
        })?;
        Self::from_json(&value)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Sets `key` to `value`, replacing any earlier value.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.values.insert(key.into(), value.into());
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.values.remove(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of `key`, or `default` when missing.
    pub fn get_as_string_with_default(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or(default).to_string()
    }

    /// The value of `key` as an integer, `None` when missing or unparsable.
    pub fn get_as_nullable_integer(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(parse_integer)
    }

    /// The value of `key` as an integer, or `default` when missing or unparsable.
    pub fn get_as_integer_with_default(&self, key: &str, default: i64) -> i64 {
        self.get_as_nullable_integer(key).unwrap_or(default)
    }

    /// The value of `key` as a float, or `default` when missing or unparsable.
    pub fn get_as_float_with_default(&self, key: &str, default: f64) -> f64 {
        self.get(key)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    }

    /// The value of `key` as a boolean (`true/false`, `yes/no`, `1/0`, `on/off`, any case),
    /// `None` when missing or unparsable.
    pub fn get_as_nullable_boolean(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(parse_boolean)
    }

    /// The value of `key` as a boolean, or `default` when missing or unparsable.
    pub fn get_as_boolean_with_default(&self, key: &str, default: bool) -> bool {
        self.get_as_nullable_boolean(key).unwrap_or(default)
    }

    /// Strict typed read: `Ok(None)` when missing, an error naming the key and value when
    /// the value does not parse as `T`.
    ///
    /// ```
    /// use commons::{ConfigParams, ErrorKind};
    /// let c = ConfigParams::from_string("options.pool_size=five");
    /// let err = c.get_parsed::<u32>("options.pool_size").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Config);
    /// assert!(err.to_string().contains("options.pool_size"));
    /// assert_eq!(c.get_parsed::<u32>("options.missing").unwrap(), None);
    /// ```
    pub fn get_parsed<T: FromStr>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => raw
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|_| Error::bad_config_value(key, raw, std::any::type_name::<T>())),
        }
    }

    /// Strict read of a boolean (accepts what [`ConfigParams::get_as_nullable_boolean`] does).
    pub fn get_bool_strict(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => parse_boolean(raw)
                .map(Some)
                .ok_or_else(|| Error::bad_config_value(key, raw, "a boolean (true/false)")),
        }
    }

    /// Strict read of a duration given in milliseconds (a non-negative integer).
    pub fn get_millis_strict(&self, key: &str) -> Result<Option<Duration>> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => raw
                .trim()
                .parse::<u64>()
                .map(|ms| Some(Duration::from_millis(ms)))
                .map_err(|_| {
                    Error::bad_config_value(key, raw, "a non-negative whole number of milliseconds")
                }),
        }
    }

    /// The keys under `name.`, with the prefix removed. A missing section is empty.
    pub fn get_section(&self, name: &str) -> ConfigParams {
        let prefix = format!("{name}.");
        ConfigParams {
            values: self
                .values
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| (k[prefix.len()..].to_string(), v.clone()))
                .collect(),
        }
    }

    /// The distinct section names: the part of each key before its first dot, or the
    /// whole key when it has no dot (in key order).
    pub fn get_section_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for key in self.values.keys() {
            let name = match key.find('.') {
                Some(pos) if pos > 0 => &key[..pos],
                _ => key.as_str(),
            };
            if names.last().map(String::as_str) != Some(name) && !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        names
    }

    /// Adds every key of `section` under `name.` (an empty name adds them at the top).
    pub fn add_section(&mut self, name: &str, section: &ConfigParams) {
        for (k, v) in &section.values {
            let key = if name.is_empty() {
                k.clone()
            } else {
                format!("{name}.{k}")
            };
            self.values.insert(key, v.clone());
        }
    }

    /// A new map with every key of `self`, overridden by every key of `other`.
    pub fn override_with(&self, other: &ConfigParams) -> ConfigParams {
        let mut result = self.clone();
        for (k, v) in &other.values {
            result.values.insert(k.clone(), v.clone());
        }
        result
    }

    /// A new map with every key of `defaults` that `self` lacks added (`self` wins).
    pub fn set_defaults(&self, defaults: &ConfigParams) -> ConfigParams {
        defaults.override_with(self)
    }
}

impl fmt::Debug for ConfigParams {
    /// Values of keys that look secret are masked so configurations can be logged: keys
    /// whose last dotted segment (any case) ends in `password`, `secret` or `token`, or is
    /// `pass`, `passwd`, `pwd`, `access_key`, `client_key`, `secret_key` or `api_key`. A `uri`
    /// is shown with its user info (`user:password@`) and secret query values masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in &self.values {
            if is_secret_key(k) {
                map.entry(k, &"***");
            } else if is_uri_key(k) {
                map.entry(k, &redact_uri(v));
            } else {
                map.entry(k, v);
            }
        }
        map.finish()
    }
}

impl fmt::Display for ConfigParams {
    /// The `a=1;b=2` form (secret values are not masked here).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for ConfigParams {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        ConfigParams::from_tuples(iter)
    }
}

/// Builds a [`ConfigParams`] from literal pairs.
///
/// ```
/// use commons::config_params;
/// let c = config_params! { "connection.host" => "localhost", "connection.port" => 11211 };
/// assert_eq!(c.get("connection.port"), Some("11211"));
/// ```
#[macro_export]
macro_rules! config_params {
    () => { $crate::ConfigParams::new() };
    ($($key:expr => $value:expr),+ $(,)?) => {{
        let mut config = $crate::ConfigParams::new();
        $( config.set($key.to_string(), $value.to_string()); )+
        config
    }};
}

/// `path.key`, or `key` at the top (`path` empty): the full name of a key, for messages.
pub(crate) fn join_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The entries of one kind of section, each with the config path it came from (for
/// messages): every `<plural>.<name>` (a section, or a `k=v;...` string), in configuration
/// order; else the `<singular>` section; else the listed top-level keys as one entry; else
/// none. How connections and credentials are read alike.
pub(crate) fn read_sections(
    config: &ConfigParams,
    plural: &str,
    singular: &str,
    top_level: &[&str],
) -> Vec<(String, ConfigParams)> {
    let many = config.get_section(plural);
    if !many.is_empty() {
        return ordered_section_names(&many)
            .into_iter()
            .map(|name| {
                let section = many.get_section(&name);
                let params = if section.is_empty() {
                    ConfigParams::from_string(many.get(&name).unwrap_or_default())
                } else {
                    section
                };
                (format!("{plural}.{name}"), params)
            })
            .collect();
    }
    let one = config.get_section(singular);
    if !one.is_empty() {
        return vec![(singular.to_string(), one)];
    }
    let top: ConfigParams = top_level
        .iter()
        .filter_map(|k| config.get(k).map(|v| (*k, v)))
        .collect();
    if top.is_empty() {
        Vec::new()
    } else {
        vec![(String::new(), top)]
    }
}

/// The section names of `config` in configuration order: names that are numbers (JSON
/// arrays flatten to `0`, `1`, ..., `10`) first, in numeric order, then the others by name.
fn ordered_section_names(config: &ConfigParams) -> Vec<String> {
    let mut names = config.get_section_names();
    names.sort_by(|a, b| match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    });
    names
}

pub(crate) fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    last.ends_with("password")
        || last.ends_with("secret")
        || last.ends_with("token")
        || matches!(
            last.as_str(),
            "pass" | "passwd" | "pwd" | "access_key" | "client_key" | "secret_key" | "api_key"
        )
}

/// A query key, escaped or not (`pass%77ord`), that names a secret.
fn is_secret_query_key(key: &str) -> bool {
    is_secret_key(key.trim()) || percent_decode(key).is_some_and(|k| is_secret_key(k.trim()))
}

fn is_uri_key(key: &str) -> bool {
    key.rsplit('.')
        .next()
        .is_some_and(|last| last.eq_ignore_ascii_case("uri"))
}

/// `uri` fit for logs and error messages: everything between the scheme and the last `@`
/// (the user info, which may hold a password with unescaped `/`, `?` or `@`) becomes `***`,
/// and so does the value of every query pair whose key looks secret (`?password=...`).
/// A uri without user info or secret query pairs comes back unchanged.
///
/// ```text
/// memcached://alice:s3cret@h1,h2?timeout=5&token=t  ->  memcached://***@h1,h2?timeout=5&token=***
/// ```
pub(crate) fn redact_uri(uri: &str) -> String {
    let start = uri.find("://").map_or(0, |p| p + 3);
    let (head, rest) = uri.split_at(start);
    let mut out = head.to_string();
    let rest = match rest.rfind('@') {
        Some(at) => {
            out.push_str("***");
            &rest[at..]
        }
        None => rest,
    };
    match rest.split_once('?') {
        Some((hosts, query)) => {
            out.push_str(hosts);
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((k, _)) if is_secret_query_key(k) => {
                        out.push_str(k);
                        out.push_str("=***");
                    }
                    _ => out.push_str(pair),
                }
            }
        }
        None => out.push_str(rest),
    }
    out
}

fn parse_integer(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    raw.parse::<i64>().ok().or_else(|| {
        // Pip.Services converters accept "12.0"-style floats for integers.
        raw.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

fn parse_boolean(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" | "t" | "y" => Some(true),
        "false" | "no" | "0" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

fn json_type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn flatten_json(prefix: &str, value: &serde_json::Value, out: &mut ConfigParams) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                flatten_json(&join(k), v, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten_json(&join(&i.to_string()), v, out);
            }
        }
        serde_json::Value::String(s) => out.set(prefix, s.clone()),
        serde_json::Value::Null => out.set(prefix, ""),
        other => out.set(prefix, other.to_string()),
    }
}

/// Decodes `%XX` escapes; `None` on a broken escape or invalid UTF-8.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
