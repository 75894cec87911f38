//! `${NAME:-default}` placeholders in a configuration document, filled from the environment,
//! so the examples' configuration files (which take their servers from the environment) work
//! as they are. The same rules as the examples' `expand_env`: substitution inside string
//! values only (a value cannot change the document's structure); an empty variable counts as
//! unset; an unset variable without a default is an error naming the JSON path.

/// Replaces the placeholders in every string of `document`, or leaves it unchanged and
/// says which value was wrong.
pub(crate) fn expand(
    document: &mut serde_json::Value,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let mut expanded = document.clone();
    expand_value(&mut expanded, "", &lookup)?;
    *document = expanded;
    Ok(())
}

fn expand_value(
    value: &mut serde_json::Value,
    path: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        serde_json::Value::String(text) if text.contains("${") => {
            *text = expand_str(text, path, lookup)?;
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, &join(&i.to_string()), lookup)?;
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                expand_value(item, &join(key), lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(
    text: &str,
    path: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "'{path}' has value '{text}': an unterminated ${{ (expected ${{NAME}} or ${{NAME:-default}})"
            ));
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name.trim(), Some(default)),
            None => (inner.trim(), None),
        };
        if name.is_empty() {
            return Err(format!(
                "'{path}' has value '{text}': no variable name inside ${{...}}"
            ));
        }
        match (lookup(name).filter(|v| !v.is_empty()), default) {
            (Some(found), _) => out.push_str(&found),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(format!(
                    "'{path}' needs the environment variable {name}, which is not set \
                     (or give a default: ${{{name}:-value}})"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_take_the_environment_or_their_default() {
        let mut doc = json!({"c": [{"host": "${H:-localhost}", "port": "${P:-11211}", "n": 1}]});
        expand(&mut doc, |name| (name == "P").then(|| "11300".to_string())).unwrap();
        assert_eq!(
            doc,
            json!({"c": [{"host": "localhost", "port": "11300", "n": 1}]})
        );
        let mut bad = json!({"host": "${UNSET}"});
        let err = expand(&mut bad, |_| None).unwrap_err();
        assert!(err.contains("UNSET") && err.contains("'host'"), "{err}");
        assert_eq!(bad, json!({"host": "${UNSET}"}));
        assert!(expand(&mut json!({"a": "${OPEN"}), |_| None).is_err());
    }
}
