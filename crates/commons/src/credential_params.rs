//! `CredentialParams`: one credential's settings, with its secrets kept out of every text.

use std::fmt;

use crate::config_params::{join_path as join, read_sections};
use crate::{ConfigParams, Error, Result};

/// The keys accepted at the top level of a configuration as one credential when it has
/// neither a `credentials.*` nor a `credential.*` section.
const TOP_LEVEL_KEYS: [&str; 10] = [
    "username",
    "password",
    "access_id",
    "client_id",
    "access_key",
    "client_key",
    "store_key",
    "ssl_crt_file",
    "ssl_key_file",
    "ssl_ca_file",
];

/// The parameters of one credential (Pip.Services' `CredentialParams`): `username`,
/// `password`, `access_id` (or `client_id`), `access_key` (or `client_key`), `store_key`
/// (the key under which a credential store keeps the real credential), the TLS files
/// `ssl_crt_file`, `ssl_key_file`, `ssl_ca_file`, plus any other key.
///
/// `Debug` and `Display` show secret values as `***`: `password`, `access_key` and every key
/// whose name contains `password`, `passwd`, `pwd`, `secret`, `token`, or `key` (other than
/// `store_key`), or is `pass`. The other values (the username, the file paths' names) are shown.
///
/// ```
/// use commons::{ConfigParams, CredentialParams};
///
/// let c = CredentialParams::from_config(ConfigParams::from_string("username=alice;password=s3cret"));
/// assert_eq!(c.username(), Some("alice"));
/// assert_eq!(c.password(), Some("s3cret"));
/// assert!(!c.uses_store());
/// assert_eq!(c.to_string(), "password=***;username=alice");
/// assert!(!format!("{c:?}").contains("s3cret"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CredentialParams {
    values: ConfigParams,
}

impl CredentialParams {
    /// Empty parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps one credential's section (`username=..;password=..`), as it is (see
    /// [`CredentialParams::many_from_config`] to read a component's whole configuration).
    pub fn from_config(values: ConfigParams) -> Self {
        CredentialParams { values }
    }

    /// Builds a credential from key/value pairs; later pairs win.
    ///
    /// ```
    /// use commons::CredentialParams;
    /// let c = CredentialParams::from_tuples([("access_id", "svc"), ("access_key", "k3y")]);
    /// assert_eq!(c.access_id(), Some("svc"));
    /// assert_eq!(format!("{c}"), "access_id=svc;access_key=***");
    /// ```
    pub fn from_tuples<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        CredentialParams {
            values: ConfigParams::from_tuples(pairs),
        }
    }

    /// Reads every credential a component's configuration holds, first form found wins:
    /// 1. `credentials.<name>.*`: one credential per sub-section (JSON arrays flatten to
    ///    `credentials.0.*`, ..., taken in numeric order); a sub-key holding the string form
    ///    (`credentials.a = "username=u;password=p"`) is accepted too;
    /// 2. `credential.*`: one credential;
    /// 3. the top-level keys `username`, `password`, `access_id`, `client_id`, `access_key`,
    ///    `client_key`, `store_key`, `ssl_crt_file`, `ssl_key_file`, `ssl_ca_file`.
    ///
    /// No credential at all is an empty list. Each credential is checked (see
    /// [`CredentialParams::validate`]); the first bad one fails the whole read with a
    /// `BAD_CONFIG` error naming the full key (`credentials.a.password`) but never a secret.
    ///
    /// ```
    /// use commons::{ConfigParams, CredentialParams};
    ///
    /// let config = ConfigParams::from_string(
    ///     "credentials.main.username=alice;credentials.main.password=pw;credentials.vault.store_key=cache",
    /// );
    /// let all = CredentialParams::many_from_config(&config).unwrap();
    /// assert_eq!(all.len(), 2);
    /// assert_eq!(all[0].username(), Some("alice"));
    /// assert_eq!(all[1].store_key(), Some("cache"));
    ///
    /// let bad = ConfigParams::from_string("credential.password=s3cret");
    /// let err = CredentialParams::many_from_config(&bad).unwrap_err();
    /// assert_eq!(err.detail("key"), Some("credential.password"));
    /// assert!(!err.to_string().contains("s3cret"));
    /// ```
    pub fn many_from_config(config: &ConfigParams) -> Result<Vec<CredentialParams>> {
        let read = read_credentials(config);
        for (path, credential) in &read {
            credential.check(path)?;
        }
        Ok(read.into_iter().map(|(_, c)| c).collect())
    }

    /// The first credential [`CredentialParams::many_from_config`] reads, `None` when the
    /// configuration holds none.
    pub fn first_from_config(config: &ConfigParams) -> Result<Option<CredentialParams>> {
        Ok(Self::many_from_config(config)?.into_iter().next())
    }

    /// Checks the credential: a `username` or `store_key` that is present must not be
    /// empty, a `password` needs a `username`, an `access_key` (or `client_key`) needs an
    /// `access_id` (or `client_id`). Errors are `BAD_CONFIG` naming the key, never a secret.
    ///
    /// ```
    /// use commons::{CredentialParams, ErrorKind};
    /// let mut c = CredentialParams::new();
    /// c.set_password("s3cret");
    /// let err = c.validate().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Config);
    /// assert!(err.to_string().contains("username") && !err.to_string().contains("s3cret"));
    /// c.set_username("alice");
    /// c.validate().unwrap();
    /// ```
    pub fn validate(&self) -> Result<()> {
        self.check("")
    }

    /// [`CredentialParams::validate`], naming keys under `path` (the section the
    /// credential came from, `""` for none).
    pub(crate) fn check(&self, path: &str) -> Result<()> {
        let key = |k: &str| join(path, k);
        let named = if path.is_empty() {
            "the credential".to_string()
        } else {
            format!("credential '{path}'")
        };
        for k in ["username", "store_key"] {
            if self.values.get(k).is_some_and(|v| v.trim().is_empty()) {
                return Err(Error::bad_config_value(
                    &key(k),
                    self.values.get(k).unwrap_or_default(),
                    "a non-empty value",
                ));
            }
        }
        if self.password().is_some() && self.username().is_none() {
            return Err(Error::config(format!(
                "{named} has a password but no username: set '{}'",
                key("username")
            ))
            .with_detail("key", key("password")));
        }
        if self.access_key().is_some() && self.access_id().is_none() {
            let given = if self.values.get("access_key").is_some() {
                "access_key"
            } else {
                "client_key"
            };
            return Err(Error::config(format!(
                "{named} has an {given} but no access_id: set '{}'",
                key("access_id")
            ))
            .with_detail("key", key(given)));
        }
        Ok(())
    }

    /// The user name.
    pub fn username(&self) -> Option<&str> {
        self.values.get("username")
    }

    /// Sets the user name.
    pub fn set_username(&mut self, value: impl Into<String>) {
        self.values.set("username", value);
    }

    /// The password.
    pub fn password(&self) -> Option<&str> {
        self.values.get("password")
    }

    /// Sets the password.
    pub fn set_password(&mut self, value: impl Into<String>) {
        self.values.set("password", value);
    }

    /// The access id, falling back to `client_id`.
    pub fn access_id(&self) -> Option<&str> {
        self.values
            .get("access_id")
            .or_else(|| self.values.get("client_id"))
    }

    /// Sets the access id.
    pub fn set_access_id(&mut self, value: impl Into<String>) {
        self.values.set("access_id", value);
    }

    /// The access key, falling back to `client_key`.
    pub fn access_key(&self) -> Option<&str> {
        self.values
            .get("access_key")
            .or_else(|| self.values.get("client_key"))
    }

    /// Sets the access key.
    pub fn set_access_key(&mut self, value: impl Into<String>) {
        self.values.set("access_key", value);
    }

    /// The key under which a credential store keeps the real credential.
    pub fn store_key(&self) -> Option<&str> {
        self.values
            .get("store_key")
            .filter(|k| !k.trim().is_empty())
    }

    /// Sets the store key.
    pub fn set_store_key(&mut self, value: impl Into<String>) {
        self.values.set("store_key", value);
    }

    /// Whether the credential must be looked up in a credential store (it has a
    /// `store_key`).
    pub fn uses_store(&self) -> bool {
        self.store_key().is_some()
    }

    /// The client certificate (chain) file, PEM.
    pub fn ssl_crt_file(&self) -> Option<&str> {
        self.values.get("ssl_crt_file")
    }

    /// Sets the client certificate file.
    pub fn set_ssl_crt_file(&mut self, value: impl Into<String>) {
        self.values.set("ssl_crt_file", value);
    }

    /// The client private key file, PEM.
    pub fn ssl_key_file(&self) -> Option<&str> {
        self.values.get("ssl_key_file")
    }

    /// Sets the client private key file.
    pub fn set_ssl_key_file(&mut self, value: impl Into<String>) {
        self.values.set("ssl_key_file", value);
    }

    /// The file of CA certificates the server's certificate is verified against, PEM.
    pub fn ssl_ca_file(&self) -> Option<&str> {
        self.values.get("ssl_ca_file")
    }

    /// Sets the CA file.
    pub fn set_ssl_ca_file(&mut self, value: impl Into<String>) {
        self.values.set("ssl_ca_file", value);
    }

    /// Any key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key)
    }

    /// Sets any key.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.values.set(key, value);
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The underlying map (unmasked: do not log it with `Display`).
    pub fn as_config(&self) -> &ConfigParams {
        &self.values
    }

    /// `self` with every key of `other` laid over it (other wins).
    pub fn merged_with(&self, other: &CredentialParams) -> CredentialParams {
        CredentialParams {
            values: self.values.override_with(&other.values),
        }
    }

    /// The pairs with secret values replaced by `***`.
    fn masked(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| {
            if is_secret_name(k) {
                (k, "***")
            } else {
                (k, v)
            }
        })
    }
}

impl fmt::Debug for CredentialParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Masked<'a>(&'a CredentialParams);
        impl fmt::Debug for Masked<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map().entries(self.0.masked()).finish()
            }
        }
        f.debug_tuple("CredentialParams")
            .field(&Masked(self))
            .finish()
    }
}

impl fmt::Display for CredentialParams {
    /// The `a=1;b=2` form, secret values shown as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.masked().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// Whether the value of key `name` is secret (see [`CredentialParams`]).
pub(crate) fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let last = lower.rsplit('.').next().unwrap_or(&lower);
    lower.contains("password")
        || lower.contains("passwd")
        || lower.contains("pwd")
        || lower.contains("secret")
        || lower.contains("token")
        || lower.replace("store_key", "").contains("key")
        || last == "pass"
}

/// The configured credentials with the config path each came from (for error messages).
fn read_credentials(config: &ConfigParams) -> Vec<(String, CredentialParams)> {
    read_sections(config, "credentials", "credential", &TOP_LEVEL_KEYS)
        .into_iter()
        .map(|(path, params)| (path, CredentialParams::from_config(params)))
        .collect()
}
