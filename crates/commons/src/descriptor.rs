//! `Descriptor`: `group:type:kind:name:version` locators with `*` wildcards.

use std::fmt;
use std::str::FromStr;

use crate::{Error, ErrorKind, Result, codes};

/// Identifies a component (`pip-services:lock:memcached:default:1.0`) or, with `*`
/// wildcards, a set of components to look up (`*:discovery:*:*:1.0`).
///
/// ```
/// use commons::Descriptor;
///
/// let lock: Descriptor = "pip-services:lock:memcached:default:1.0".parse().unwrap();
/// let any_lock = Descriptor::new("*", "lock", "*", "*", "1.0");
/// assert!(lock.matches(&any_lock));
/// assert!(any_lock.matches(&lock));
/// assert_eq!(any_lock.to_string(), "*:lock:*:*:1.0");
/// assert!("a:b:c".parse::<Descriptor>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Descriptor {
    group: Option<String>,
    kind_type: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    version: Option<String>,
}

fn field(value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() || value == "*" {
        None
    } else {
        Some(value.to_string())
    }
}

impl Descriptor {
    /// Creates a descriptor; `*` (or an empty string) in a field is a wildcard.
    pub fn new(group: &str, type_: &str, kind: &str, name: &str, version: &str) -> Self {
        Descriptor {
            group: field(group),
            kind_type: field(type_),
            kind: field(kind),
            name: field(name),
            version: field(version),
        }
    }

    /// Parses exactly five `:`-separated fields (each trimmed); anything else fails with
    /// `BAD_DESCRIPTOR`.
    pub fn parse(value: &str) -> Result<Self> {
        let parts: Vec<&str> = value.split(':').collect();
        if parts.len() != 5 {
            return Err(Error::new(
                ErrorKind::BadRequest,
                codes::BAD_DESCRIPTOR,
                format!(
                    "descriptor '{value}' must have 5 fields group:type:kind:name:version, found {}",
                    parts.len()
                ),
            )
            .with_detail("descriptor", value));
        }
        Ok(Descriptor::new(
            parts[0], parts[1], parts[2], parts[3], parts[4],
        ))
    }

    /// The group (`None` for a wildcard).
    pub fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }
    /// The type, such as `lock` or `discovery` (`None` for a wildcard).
    pub fn type_(&self) -> Option<&str> {
        self.kind_type.as_deref()
    }
    /// The kind, such as `memcached` (`None` for a wildcard).
    pub fn kind(&self) -> Option<&str> {
        self.kind.as_deref()
    }
    /// The name (`None` for a wildcard).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// The version (`None` for a wildcard).
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Whether the two match: every field pair is equal or either side is a wildcard.
    pub fn matches(&self, other: &Descriptor) -> bool {
        fn m(a: &Option<String>, b: &Option<String>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
        }
        m(&self.group, &other.group)
            && m(&self.kind_type, &other.kind_type)
            && m(&self.kind, &other.kind)
            && m(&self.name, &other.name)
            && m(&self.version, &other.version)
    }

    /// Whether every field is equal, wildcards included.
    pub fn exact_match(&self, other: &Descriptor) -> bool {
        self == other
    }

    /// Whether no field is a wildcard.
    pub fn is_complete(&self) -> bool {
        self.group.is_some()
            && self.kind_type.is_some()
            && self.kind.is_some()
            && self.name.is_some()
            && self.version.is_some()
    }
}

impl fmt::Display for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "*".to_string());
        write!(
            f,
            "{}:{}:{}:{}:{}",
            s(&self.group),
            s(&self.kind_type),
            s(&self.kind),
            s(&self.name),
            s(&self.version)
        )
    }
}

impl FromStr for Descriptor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Descriptor::parse(s)
    }
}
