//! `${NAME:-default}` placeholders in configuration documents, filled from the environment
//! (or any lookup), so one configuration file serves several deployments.

use crate::config_params::join_path as join;
use crate::{Error, ErrorKind, Result, codes};

/// Replaces `${NAME:-default}` and `${NAME}` placeholders inside the string values of a
/// JSON document with the values `lookup` gives (an empty value counts as unset), so one
/// configuration file can take its servers from the environment.
///
/// The substitution is done on the parsed document, string by string, so a value cannot
/// change the document's structure. A placeholder whose variable is unset and that has no
/// default, or an unterminated `${`, is a configuration error naming the JSON path; the
/// document is then left unchanged.
///
/// ```
/// use serde_json::json;
///
/// let mut doc = json!({"connection": {"host": "${MEMCACHED_SERVICE_HOST:-localhost}",
///                                     "port": "${MEMCACHED_SERVICE_PORT:-11211}"}});
/// let env = |name: &str| (name == "MEMCACHED_SERVICE_PORT").then(|| "11300".to_string());
/// commons::expand_env(&mut doc, env).unwrap();
/// assert_eq!(doc, json!({"connection": {"host": "localhost", "port": "11300"}}));
///
/// let mut bad = json!({"host": "${NOT_SET}"});
/// assert!(commons::expand_env(&mut bad, |_| None).is_err());
/// assert_eq!(bad, json!({"host": "${NOT_SET}"}));
/// ```
pub fn expand_env(
    document: &mut serde_json::Value,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<()> {
    let mut expanded = document.clone();
    expand_value(&mut expanded, "", &lookup)?;
    *document = expanded;
    Ok(())
}

fn expand_value(
    value: &mut serde_json::Value,
    path: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<()> {
    match value {
        serde_json::Value::String(text) if text.contains("${") => {
            *text = expand_str(text, path, lookup)?;
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, &join(path, &i.to_string()), lookup)?;
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                expand_value(item, &join(path, key), lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(text: &str, path: &str, lookup: &impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(Error::bad_config_value(
                path,
                text,
                "placeholders of the form ${NAME} or ${NAME:-default}",
            ));
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name.trim(), Some(default)),
            None => (inner.trim(), None),
        };
        if name.is_empty() {
            return Err(Error::bad_config_value(
                path,
                text,
                "a variable name inside ${...}",
            ));
        }
        match lookup(name).filter(|v| !v.is_empty()) {
            Some(found) => out.push_str(&found),
            None => match default {
                Some(default) => out.push_str(default),
                None => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        codes::BAD_CONFIG,
                        format!(
                            "'{path}' needs the environment variable {name}, which is not set \
                             (or give a default: ${{{name}:-value}})"
                        ),
                    )
                    .with_detail("key", path)
                    .with_detail("variable", name));
                }
            },
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
